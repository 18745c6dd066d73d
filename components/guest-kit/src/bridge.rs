//! The kafka-bridge sidecar (`runtime-ext/kafka-bridge`): producing to Kafka, MongoDB access,
//! and the batches it delivers to the components' consumer routes.
//!
//! The wire format is `kafka-bridge-protocol`'s, which the bridge shares.
//!
//! Component variables: `kafka_bridge_address` (`host:port`, also in the component's
//! `allowed_outbound_hosts`) and `kafka_bridge_secret`, the bearer token the bridge checks;
//! deliveries carry `kafka_bridge_delivery_secret` instead.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use http::{StatusCode, header};
use kafka_bridge_protocol::{ErrorBody, MAX_DELIVERY_BODY, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, Request};
use subtle::ConstantTimeEq;

use crate::log::{Level, Log};
use crate::metrics::{Counter, Histogram, Metrics};
use crate::trace::{TRACEPARENT, Trace};
use crate::{ApiError, ApiResult, Response, json, variable};

/// Seed 003's consumer metrics, kept by every consumer route: messages by outcome
/// (`success` / `error`)...
pub static MESSAGES_PROCESSED: Counter = Counter {
    name: "kafka_messages_processed_total",
    help: "Kafka messages processed",
    labels: &["status"],
};

/// ...and the time each took (a batch's time shared among its messages).
pub static MESSAGE_PROCESSING: Histogram = Histogram {
    name: "kafka_message_processing_seconds",
    help: "Kafka message processing time in seconds",
    labels: &[],
};

/// A message to publish.
#[derive(Debug, Serialize)]
pub struct Outgoing<'a, T: Serialize> {
    /// Messages with the same key keep their order (same partition).
    pub key: &'a str,
    pub headers: BTreeMap<&'a str, &'a str>,
    pub value: &'a T,
}

/// Where a message was stored.
#[derive(Debug, Deserialize)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
}

/// What a consumer route receives: messages of `topic`, in order per partition.
pub type Delivery = kafka_bridge_protocol::Delivery<'static>;

/// What a consumer needs of a delivered message besides the protocol's fields.
pub trait Delivered {
    /// The producer's trace continued: a child of the message's `traceparent` header.
    fn trace(&self) -> Trace;

    /// The value as a `T`; otherwise a 422 naming the message (`what` it should have been), so
    /// the bridge retries the batch one message at a time and dead-letters this one.
    fn parse<T: for<'de> Deserialize<'de>>(&self, topic: &str, what: &str) -> ApiResult<T>;
}

impl Delivered for kafka_bridge_protocol::Message<'_> {
    fn trace(&self) -> Trace {
        Trace::child_of(self.headers.get(TRACEPARENT).map(String::as_str))
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self, topic: &str, what: &str) -> ApiResult<T> {
        self.value_as().map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}: not {what}: {e}", self.origin(topic)),
            )
        })
    }
}

/// A connection to the bridge, from the component's variables, within the request's trace.
pub struct Bridge {
    base: String,
    secret: String,
    traceparent: String,
}

impl Bridge {
    /// Calls carry `trace` as their `traceparent`, and so do the messages produced (as a Kafka
    /// header, unless a message sets its own), so a consumer continues the producer's trace.
    pub async fn from_variables(trace: &Trace) -> ApiResult<Self> {
        let address = variable("kafka_bridge_address").await?;
        let secret = variable("kafka_bridge_secret").await?;
        Ok(Self {
            base: format!("http://{address}"),
            secret,
            traceparent: trace.traceparent(),
        })
    }

    /// The produce request body, every message carrying the trace.
    fn messages_body<T: Serialize>(&self, messages: &[Outgoing<'_, T>]) -> Value {
        let mut body = serde_json::json!({ "messages": messages });
        if let Some(messages) = body["messages"].as_array_mut() {
            for message in messages {
                if let Some(headers) = message["headers"].as_object_mut() {
                    headers
                        .entry(TRACEPARENT)
                        .or_insert_with(|| self.traceparent.clone().into());
                }
            }
        }
        body
    }

    /// Publishes `messages` to `topic` and waits for the broker's acknowledgement of each.
    pub async fn produce<T: Serialize>(
        &self,
        topic: &str,
        messages: &[Outgoing<'_, T>],
    ) -> ApiResult<Vec<Stored>> {
        #[derive(Deserialize)]
        struct Acked {
            results: Vec<Stored>,
        }
        let path = format!("/v1/topics/{topic}/messages");
        let body = self.messages_body(messages);
        let acked: Acked = self.call(http::Method::POST, &path, Some(&body)).await?;
        Ok(acked.results)
    }

    /// Queues `messages` without waiting for the broker (fire-and-forget events): `Ok` means
    /// the bridge took them and Kafka was reachable a moment ago.
    pub async fn publish_and_forget<T: Serialize>(
        &self,
        topic: &str,
        messages: &[Outgoing<'_, T>],
    ) -> ApiResult<()> {
        let path = format!("/v1/topics/{topic}/messages?wait=false");
        let body = self.messages_body(messages);
        self.call::<Value>(http::Method::POST, &path, Some(&body))
            .await
            .map(drop)
    }

    /// `operation` (`insert`, `find`, `count`, `sum`) on `database.collection`.
    pub async fn mongo<R: for<'de> Deserialize<'de>>(
        &self,
        database: &str,
        collection: &str,
        operation: &str,
        body: &Value,
    ) -> ApiResult<R> {
        let path = format!("/v1/mongo/{database}/{collection}/{operation}");
        self.call(http::Method::POST, &path, Some(body)).await
    }

    /// Calls the bridge. Its 503s stay 503s. A refused secret, and a topic or collection it
    /// does not serve (404), are 503s too: the deployment is wrong, not the request, so a
    /// delivery pauses until it is fixed instead of dead-lettering good messages. Its other
    /// 4xx are 422s: the content is at fault. Anything else is a 502.
    pub async fn call<R: for<'de> Deserialize<'de>>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> ApiResult<R> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.secret))
            .header(header::CONTENT_TYPE, "application/json")
            .header(TRACEPARENT, &self.traceparent)
            .body(FullBody::new(Bytes::from(body)))
            .map_err(|e| ApiError::unavailable(format!("kafka-bridge request: {e}")))?;
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| ApiError::unavailable(format!("kafka-bridge unavailable: {e}")))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| ApiError::unavailable(format!("kafka-bridge response: {e:?}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("kafka-bridge answer: {e}"))
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|body| body.error.into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(match status {
            StatusCode::SERVICE_UNAVAILABLE => ApiError::unavailable(message),
            StatusCode::UNAUTHORIZED => {
                ApiError::unavailable(format!("kafka-bridge refused our credentials: {message}"))
            }
            StatusCode::NOT_FOUND => ApiError::unavailable(format!(
                "kafka-bridge configuration does not match the component's: {message}"
            )),
            // The bridge refused what we sent (too large, invalid for MongoDB): the content is at
            // fault, so a 422 — for a delivery, the bridge then isolates and dead-letters it.
            _ if status.is_client_error() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("kafka-bridge refused the request ({status}): {message}"),
            ),
            _ => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("kafka-bridge answered {status}: {message}"),
            ),
        })
    }
}

/// A consumer route: accepts the delivery ([`accept_delivery`]), runs `store` on it, counts
/// its messages in [`MESSAGES_PROCESSED`] and [`MESSAGE_PROCESSING`], and logs each message in
/// its producer's trace. `store`'s answer is the response; its error tells the bridge what to
/// do (see the bridge's README section).
pub async fn consume(
    service: &'static str,
    request: Request,
    log: &Log,
    store: impl AsyncFnOnce(&Delivery) -> ApiResult<Value>,
) -> ApiResult<Response> {
    let delivery = accept_delivery(request).await?;
    let started = Instant::now();
    let outcome = store(&delivery).await;
    let count = delivery.messages.len() as u64;
    // Only final outcomes count: a batch refused while a dependency is down is delivered again,
    // and a refused batch of several is retried one message at a time (see the bridge).
    let processed = match &outcome {
        Ok(_) => Some("success"),
        Err(e) if count == 1 && Outcome::of(e.status) != Outcome::Unavailable => Some("error"),
        Err(_) => None,
    };
    if let Some(status) = processed {
        let metrics = Metrics::new(service);
        metrics.count(&MESSAGES_PROCESSED, &[status], count);
        let seconds = started.elapsed().as_secs_f64();
        metrics.observe(&MESSAGE_PROCESSING, &[], seconds, count);
    }
    let (level, message) = match &outcome {
        Ok(_) => (Level::Info, "kafka message processed"),
        Err(_) => (Level::Warning, "kafka message not processed"),
    };
    for delivered in &delivery.messages {
        let mut fields = serde_json::json!({
            "topic": delivery.topic,
            "partition": delivered.partition,
            "offset": delivered.offset,
            "key": delivered.key,
        });
        if let Err(e) = &outcome {
            fields["error"] = e.message.clone().into();
        }
        log.in_trace(delivered.trace())
            .event(level, message, fields);
    }
    outcome.map(|answer| json(StatusCode::OK, &answer))
}

/// Reads a delivery from the bridge, after checking its bearer token against
/// `kafka_bridge_delivery_secret` (constant time; an unset secret refuses every delivery). It
/// is not `kafka_bridge_secret`, which components send the bridge: holding that one does not
/// let a component forge deliveries.
pub async fn accept_delivery(request: Request) -> ApiResult<Delivery> {
    let secret = variable("kafka_bridge_delivery_secret")
        .await
        .unwrap_or_default();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if secret.is_empty() || !bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "deliveries need the kafka-bridge bearer token",
        ));
    }
    crate::request::json_body_within(request, MAX_DELIVERY_BODY).await
}
