//! Producing: `POST /v1/topics/{topic}/messages` publishes a batch of JSON messages and answers
//! once the broker acknowledged every one (acks=all, idempotent producer), or at once with
//! `?wait=false` for fire-and-forget events. Also the producer-side status and flush.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::Bridge;
use crate::config::KafkaConfig;
use crate::error::{ApiError, ApiResult};
use crate::kafka::{BridgeContext, client_config};

/// How long `GET /v1/kafka/status` waits for the cluster's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the brokers are probed while they are down.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long the probes may fail before the producer is renewed.
const RENEW_AFTER: Duration = Duration::from_secs(5);
/// How long `POST /v1/flush` waits for queued messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub type BridgeProducer = FutureProducer<BridgeContext>;

/// The idempotent producer: acks=all, retries that cannot reorder or duplicate.
pub fn producer(kafka: &KafkaConfig, context: BridgeContext) -> anyhow::Result<BridgeProducer> {
    Ok(client_config(kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", kafka.produce_timeout_ms.to_string())
        .create_with_context(context)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    messages: Vec<OutgoingMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutgoingMessage {
    /// Messages with the same key go to the same partition, in order.
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Any JSON; its text is the message payload.
    value: Box<RawValue>,
}

#[derive(Deserialize)]
pub struct ProduceOptions {
    /// `false`: answer 202 once the messages are queued (the seed's fire-and-forget events).
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

pub async fn produce(
    State(bridge): State<Arc<Bridge>>,
    Path(topic): Path<String>,
    Query(options): Query<ProduceOptions>,
    body: Result<Json<ProduceRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(request) = body?;
    if !bridge.config.kafka.topics.iter().any(|t| t.name == topic) {
        return Err(ApiError::not_found(
            "topic",
            format!("topic `{topic}` is not served by this bridge"),
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "at least one message is required",
        ));
    }
    let counter = |result: &str| bridge.metrics.produced.with_label_values(&[&topic, result]);
    if bridge.brokers.known_down() {
        counter("unavailable").inc_by(request.messages.len() as u64);
        return Err(ApiError::unavailable(
            "Kafka unavailable: no broker connection",
        ));
    }
    let started = Instant::now();
    let producer = bridge.producer();
    let mut deliveries = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::to(&topic)
            .payload(message.value.get())
            .headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                counter("rejected").inc();
                return Err(ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    ..ApiError::invalid("messages", "a message is larger than Kafka accepts")
                });
            }
            Err((error, _)) => {
                counter("unavailable").inc();
                return Err(ApiError::unavailable(format!("Kafka unavailable: {error}")));
            }
        }
    }
    if !options.wait {
        let metrics = bridge.metrics.clone();
        let count = deliveries.len() as u64;
        tokio::spawn(async move {
            let failed = join_all(deliveries)
                .await
                .into_iter()
                .filter(|d| !matches!(d, Ok(Ok(_))))
                .count() as u64;
            metrics
                .produced
                .with_label_values(&[&topic, "queued"])
                .inc_by(count - failed);
            metrics
                .produced
                .with_label_values(&[&topic, "failed"])
                .inc_by(failed);
        });
        return Ok((StatusCode::ACCEPTED, Json(json!({ "queued": count }))));
    }
    let mut results = Vec::with_capacity(deliveries.len());
    let mut failure = None;
    for delivery in join_all(deliveries).await {
        match delivery {
            Ok(Ok(delivery)) => {
                results.push(json!({ "partition": delivery.partition, "offset": delivery.offset }))
            }
            Ok(Err((error, _))) => failure = Some(error.to_string()),
            Err(_canceled) => failure = Some("the producer shut down".into()),
        }
    }
    bridge
        .metrics
        .produce_latency
        .with_label_values(&[&topic])
        .observe(started.elapsed().as_secs_f64());
    counter("acked").inc_by(results.len() as u64);
    if !results.is_empty() {
        // An acknowledgement is the best evidence: no need to wait for the next statistics.
        bridge.brokers.set(true, &bridge.metrics);
    }
    if let Some(error) = failure {
        let failed = request.messages.len() - results.len();
        counter("failed").inc_by(failed as u64);
        return Err(ApiError::unavailable(format!(
            "Kafka did not acknowledge {failed} of {} messages: {error}",
            request.messages.len()
        )));
    }
    Ok((
        StatusCode::OK,
        Json(json!({ "topic": topic, "results": results })),
    ))
}

/// `GET /v1/kafka/status`: the cluster's brokers and the bridge's topics, fetched now; 503 when
/// the cluster does not answer.
pub async fn status(State(bridge): State<Arc<Bridge>>) -> ApiResult<Json<Value>> {
    let producer = bridge.producer();
    let metadata = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, Timeout::After(METADATA_TIMEOUT))
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("Kafka status: {e}")))?
    .map_err(|e| ApiError::unavailable(format!("Kafka unavailable: {e}")))?;
    let brokers: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    let topics: Vec<Value> = metadata
        .topics()
        .iter()
        .filter(|t| {
            bridge
                .config
                .kafka
                .topics
                .iter()
                .any(|c| c.name == t.name())
        })
        .map(|t| json!({ "name": t.name(), "partitions": t.partitions().len() }))
        .collect();
    Ok(Json(
        json!({ "status": "UP", "brokers": brokers, "topics": topics }),
    ))
}

/// `POST /v1/flush`: waits until every queued message is acknowledged; 503 if some are not
/// within the flush timeout.
pub async fn flush(State(bridge): State<Arc<Bridge>>) -> ApiResult<Json<Value>> {
    let producer = bridge.producer();
    tokio::task::spawn_blocking(move || producer.flush(Timeout::After(FLUSH_TIMEOUT)))
        .await
        .map_err(|e| ApiError::unavailable(format!("flush: {e}")))?
        .map_err(|e| ApiError::unavailable(format!("Kafka flush incomplete: {e}")))?;
    Ok(Json(json!({ "status": "flushed" })))
}

/// While the brokers are known to be down, asks them for metadata every [`PROBE_INTERVAL`]:
/// librdkafka connects on demand, and a producer refusing requests at once would otherwise
/// never try again. The first answer marks them up (and wakes topic re-creation).
pub async fn probe_while_down(bridge: Arc<Bridge>) {
    let mut failed_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        if !bridge.brokers.known_down() {
            failed_since = None;
            continue;
        }
        let producer = bridge.producer();
        let probe = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Timeout::After(PROBE_INTERVAL))
                .is_ok()
        });
        // A probe stuck past its own timeout counts as failed.
        let answered = matches!(
            tokio::time::timeout(PROBE_INTERVAL * 4, probe).await,
            Ok(Ok(true))
        );
        if answered {
            tracing::info!("brokers answer again");
            bridge.brokers.set(true, &bridge.metrics);
            continue;
        }
        // A producer that keeps failing while the brokers may be back is replaced: a fresh
        // client connects at creation, and its statistics report the brokers as they are.
        let since = *failed_since.get_or_insert_with(Instant::now);
        if since.elapsed() > RENEW_AFTER {
            tracing::warn!("brokers still unreachable; renewing the producer");
            if let Err(error) = bridge.renew_producer() {
                tracing::error!("cannot renew the producer: {error:#}");
            }
            failed_since = Some(Instant::now());
        }
    }
}
