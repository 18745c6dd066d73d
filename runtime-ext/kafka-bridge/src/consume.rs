//! Consuming: one loop per subscription reads batches, delivers them to the component's route
//! (the HTTP trigger), and commits offsets only after a 2xx. At-least-once; the components
//! make the effect exactly-once with an idempotency key.
//!
//! What a component's answer means:
//! Each batch is split by partition, and the partitions are delivered concurrently.
//!
//! - 2xx: every message in the batch is done; its offsets are committed.
//! - 503, 502, 504, 429, no answer: the component's dependency is down, not the messages' fault;
//!   401, 403, 404, 405: the deployment is not right yet (secret, route), not their fault either.
//!   The same batch is retried with backoff, without limit: the subscription pauses.
//! - anything else: a message is bad. The batch is retried one message at a time; a message
//!   rejected `max_attempts` times goes to the dead-letter topic, and the others go on.
//!
//! Payloads that are not JSON go to the dead-letter topic without a delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::Bridge;
use crate::config::Subscription;
use crate::kafka::{BridgeContext, client_config};

/// The first pause after a failed delivery; it doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a component may take to answer one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after the consumer itself reports an error (e.g. the broker went away).
const CONSUMER_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Headers a dead-lettered message carries besides its own.
pub const DEAD_LETTER_REASON: &str = "dead-letter-reason";
const DEAD_LETTER_ORIGIN: &str = "dead-letter-origin";

/// Runs `subscription` until the process ends. After a broker outage the consumer is made
/// anew: a cluster that lost its state would otherwise be read from stale positions; one that
/// kept it resumes from the committed offsets (uncommitted messages come again, harmlessly).
pub async fn run(bridge: Arc<Bridge>, subscription: Subscription) -> anyhow::Result<()> {
    let mut recoveries = bridge.brokers.recoveries();
    let delivery = Delivery {
        url: subscription.url(&bridge.config.components_url),
        labels: [subscription.group.clone(), subscription.topic.clone()],
        bridge: bridge.clone(),
        subscription,
    };
    tracing::info!(
        topic = delivery.subscription.topic,
        group = delivery.subscription.group,
        url = delivery.url,
        "subscription started"
    );
    loop {
        let consumer = match consumer(&bridge, &delivery.subscription) {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::error!(
                    group = delivery.subscription.group,
                    "cannot create the consumer: {error:#}; retrying"
                );
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                batch = next_batch(&consumer, &delivery.subscription) => {
                    delivery.process(&batch).await;
                    commit(&consumer, &batch);
                }
                _ = recoveries.changed() => break,
            }
        }
        tracing::info!(
            group = delivery.subscription.group,
            "brokers are back: renewing the consumer"
        );
        // Closing a consumer may wait for the group coordinator: not on an async worker.
        tokio::task::spawn_blocking(move || drop(consumer));
    }
}

/// A consumer of the subscription's topic in its group, committing only explicitly.
fn consumer(
    bridge: &Arc<Bridge>,
    subscription: &Subscription,
) -> anyhow::Result<StreamConsumer<BridgeContext>> {
    let kafka = &bridge.config.kafka;
    let context = BridgeContext {
        metrics: bridge.metrics.clone(),
        brokers: None,
        group: Some(subscription.group.clone()),
    };
    let consumer: StreamConsumer<BridgeContext> = client_config(kafka)
        .set("group.id", &subscription.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", kafka.session_timeout_ms.to_string())
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (kafka.session_timeout_ms / 3).to_string(),
        )
        .create_with_context(context)?;
    consumer.subscribe(&[&subscription.topic])?;
    Ok(consumer)
}

/// Waits for one message, then takes whatever else arrives within the linger time.
async fn next_batch(
    consumer: &StreamConsumer<BridgeContext>,
    subscription: &Subscription,
) -> Vec<OwnedMessage> {
    let first = loop {
        match consumer.recv().await {
            Ok(message) => break message.detach(),
            Err(error) => {
                tracing::warn!(%error, group = subscription.group, "consumer error");
                tokio::time::sleep(CONSUMER_ERROR_PAUSE).await;
            }
        }
    };
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + subscription.batch_linger();
    while batch.len() < subscription.batch_size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message.detach()),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    batch
}

/// Commits the offset after the last message of each partition in `batch`.
fn commit(consumer: &StreamConsumer<BridgeContext>, batch: &[OwnedMessage]) {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let offset = next
            .entry((message.topic(), message.partition()))
            .or_default();
        *offset = (*offset).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::with_capacity(next.len());
    for ((topic, partition), offset) in next {
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, topic, partition, "cannot commit offset");
        }
    }
    // A failed commit only means redelivery, which the components tolerate.
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(%error, "commit failed; the messages will be redelivered");
    }
}

/// What a component's answer to one delivery means.
enum Outcome {
    Delivered,
    /// Retry the same messages later, without limit.
    Unavailable(String),
    /// One of the messages is bad.
    Rejected(String),
}

/// One subscription's delivery to its component.
struct Delivery {
    bridge: Arc<Bridge>,
    subscription: Subscription,
    url: String,
    /// `[group, topic]`, the metrics' labels.
    labels: [String; 2],
}

/// The JSON a delivery route receives.
#[derive(Serialize)]
struct Batch<'a> {
    topic: &'a str,
    group: &'a str,
    messages: Vec<Delivered<'a>>,
}

#[derive(Serialize)]
struct Delivered<'a> {
    partition: i32,
    offset: i64,
    key: Option<String>,
    headers: BTreeMap<&'a str, String>,
    /// Milliseconds since the epoch, when the producer set it.
    timestamp: Option<i64>,
    value: &'a RawValue,
}

impl Delivery {
    /// Delivers each partition's messages as one request, the partitions concurrently (order
    /// holds within a partition, which is all Kafka orders).
    async fn process(&self, batch: &[OwnedMessage]) {
        let mut partitions: BTreeMap<i32, Vec<(&OwnedMessage, &RawValue)>> = BTreeMap::new();
        for message in batch {
            match json_payload(message) {
                Ok(value) => partitions
                    .entry(message.partition())
                    .or_default()
                    .push((message, value)),
                Err(problem) => self.dead_letter(message, problem).await,
            }
        }
        join_all(
            partitions
                .values()
                .map(|messages| self.deliver_with_retries(messages)),
        )
        .await;
    }

    /// Delivers until the component accepts, pausing while it is unavailable; on a
    /// rejection, goes one message at a time so one bad message cannot hold the others.
    async fn deliver_with_retries(&self, messages: &[(&OwnedMessage, &RawValue)]) {
        let mut backoff = INITIAL_BACKOFF;
        let mut rejections = 0;
        loop {
            match self.deliver(messages).await {
                Outcome::Delivered => return,
                Outcome::Unavailable(reason) => {
                    tracing::warn!(url = self.url, reason, "component unavailable; pausing");
                }
                Outcome::Rejected(reason) if messages.len() > 1 => {
                    tracing::warn!(
                        url = self.url,
                        reason,
                        "batch rejected; delivering one by one"
                    );
                    for message in messages {
                        Box::pin(self.deliver_with_retries(std::slice::from_ref(message))).await;
                    }
                    return;
                }
                Outcome::Rejected(reason) => {
                    rejections += 1;
                    if rejections >= self.subscription.max_attempts {
                        let problem = format!("rejected {rejections} times: {reason}");
                        self.dead_letter(messages[0].0, problem).await;
                        return;
                    }
                }
            }
            self.bridge
                .metrics
                .retries
                .with_label_values(&self.labels)
                .inc();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn deliver(&self, messages: &[(&OwnedMessage, &RawValue)]) -> Outcome {
        let batch = Batch {
            topic: &self.subscription.topic,
            group: &self.subscription.group,
            messages: messages
                .iter()
                .map(|(message, value)| Delivered {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| {
                                    let value = h.value.map(String::from_utf8_lossy);
                                    (h.key, value.unwrap_or_default().into_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp: message.timestamp().to_millis(),
                    value,
                })
                .collect(),
        };
        let started = Instant::now();
        let answer = self
            .bridge
            .http
            .post(&self.url)
            .bearer_auth(&self.bridge.config.secret)
            .header(header::CONTENT_TYPE, "application/json")
            .json(&batch)
            .timeout(DELIVERY_TIMEOUT)
            .send()
            .await;
        self.bridge
            .metrics
            .delivery_latency
            .with_label_values(&self.labels)
            .observe(started.elapsed().as_secs_f64());
        let outcome = match answer {
            Err(error) => Outcome::Unavailable(error.to_string()),
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let reason = format!("{status}: {}", body.chars().take(500).collect::<String>());
                // A down dependency, or a deployment that is not right yet (wrong secret, route
                // not deployed): never the message's fault, so never the dead-letter topic.
                // guest-kit's `bridge::retried_whole` counts consumer metrics by this list.
                if matches!(
                    status,
                    StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::GATEWAY_TIMEOUT
                        | StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::UNAUTHORIZED
                        | StatusCode::FORBIDDEN
                        | StatusCode::NOT_FOUND
                        | StatusCode::METHOD_NOT_ALLOWED
                ) {
                    Outcome::Unavailable(reason)
                } else {
                    Outcome::Rejected(reason)
                }
            }
        };
        let result = match outcome {
            Outcome::Delivered => "ok",
            Outcome::Unavailable(_) => "unavailable",
            Outcome::Rejected(_) => "rejected",
        };
        self.bridge
            .metrics
            .deliveries
            .with_label_values(&[&self.labels[0], &self.labels[1], result])
            .inc();
        outcome
    }

    /// Publishes `message` as is to the dead-letter topic, with the reason and its origin in
    /// headers; retries until the broker acknowledges, so the offset is never committed first.
    async fn dead_letter(&self, message: &OwnedMessage, problem: String) {
        let origin = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        tracing::warn!(origin, problem, "dead-lettering message");
        let mut headers = message.headers().cloned().unwrap_or_else(OwnedHeaders::new);
        headers = headers
            .insert(Header {
                key: DEAD_LETTER_REASON,
                value: Some(&problem),
            })
            .insert(Header {
                key: DEAD_LETTER_ORIGIN,
                value: Some(&origin),
            });
        let mut backoff = INITIAL_BACKOFF;
        let mut payload = message.payload();
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.subscription.dead_letter_topic).headers(headers.clone());
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            let producer = self.bridge.producer();
            match producer.send(record, Duration::ZERO).await {
                Ok(_) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))
                    if payload.is_some() =>
                {
                    // The headers grew it past the limit: keep the origin and reason, not the payload.
                    tracing::warn!(origin, "dead-lettering without the payload: too large");
                    payload = None;
                    headers = headers.insert(Header {
                        key: DEAD_LETTER_REASON,
                        value: Some("payload omitted: too large for the dead-letter topic"),
                    });
                }
                Err((error, _)) => {
                    tracing::warn!(%error, "dead-lettering failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.bridge
            .metrics
            .dead_lettered
            .with_label_values(&self.labels)
            .inc();
    }
}

/// The payload as JSON text, or why it cannot be delivered.
fn json_payload(message: &OwnedMessage) -> Result<&RawValue, String> {
    let payload = message.payload().ok_or("the message has no payload")?;
    serde_json::from_slice(payload).map_err(|e| format!("the payload is not JSON: {e}"))
}
