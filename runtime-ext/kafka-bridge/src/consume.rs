//! Consuming: one loop per subscription reads batches, delivers them to the component's route
//! (the HTTP trigger), and commits offsets only after a 2xx. At-least-once; the components
//! make the effect exactly-once with an idempotency key.
//!
//! Each batch is split by partition, and the partitions are delivered concurrently, each as a
//! [`protocol::Delivery`]. What a component's answer means ([`Outcome::of`], in
//! `kafka-bridge-protocol`, which guest-kit follows too):
//!
//! - 2xx: every message in the batch is done; its offsets are committed.
//! - 503, 502, 504, 429, no answer: the component's dependency is down, not the messages' fault;
//!   401, 403, 404, 405: the deployment is not right yet (secret, route), not their fault either.
//!   The same batch is retried with backoff, without limit: the subscription pauses.
//! - any other 4xx (400, 413, 422, ...): a message is bad, and the component says no retry can
//!   change that (data the database refuses, JSON of the wrong shape). The batch is delivered
//!   one message at a time; a message refused alone goes to the dead-letter topic at once, and
//!   the others go on: a poison message costs one round trip, not a pause of the partitions.
//! - any other 5xx (500: the component failed, e.g. it trapped): perhaps the message, perhaps
//!   not. One message at a time too; a message failing `max_attempts` times, with backoff, goes
//!   to the dead-letter topic.
//!
//! Payloads that are not JSON go to the dead-letter topic without a delivery.
//!
//! When the bridge stops, a subscription fetches nothing more and retries nothing more; the
//! deliveries in flight finish, and what they settled is committed before the consumer leaves
//! its group (so the group hands its partitions to another bridge at once).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use futures::future::join_all;
use kafka_bridge_protocol::{self as protocol, Outcome};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::value::RawValue;

use crate::Bridge;
use crate::config::Subscription;
use crate::health::SubscriptionHealth;
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

/// Runs `subscription` until the bridge stops. After a broker outage the consumer is made
/// anew: a cluster that lost its state would otherwise be read from stale positions; one that
/// kept it resumes from the committed offsets (uncommitted messages come again, harmlessly).
pub async fn run(
    bridge: Arc<Bridge>,
    subscription: Subscription,
    health: Arc<SubscriptionHealth>,
) -> anyhow::Result<()> {
    let mut recoveries = bridge.brokers.recoveries();
    let delivery = Delivery {
        url: subscription.url(&bridge.config.components_url),
        labels: [subscription.group.clone(), subscription.topic.clone()],
        bridge: bridge.clone(),
        subscription,
        health,
    };
    tracing::info!(
        topic = delivery.subscription.topic,
        group = delivery.subscription.group,
        url = delivery.url,
        "subscription started"
    );
    let stopping = &bridge.stopping;
    while !stopping.is_cancelled() {
        let consumer = match consumer(&bridge, &delivery) {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::error!(
                    group = delivery.subscription.group,
                    "cannot create the consumer: {error:#}; retrying"
                );
                tokio::select! {
                    _ = tokio::time::sleep(MAX_BACKOFF) => continue,
                    _ = stopping.cancelled() => break,
                }
            }
        };
        loop {
            tokio::select! {
                biased;
                _ = stopping.cancelled() => break,
                _ = recoveries.changed() => {
                    tracing::info!(
                        group = delivery.subscription.group,
                        "brokers are back: renewing the consumer"
                    );
                    break;
                }
                batch = next_batch(&consumer, &delivery.subscription) => {
                    let settled = delivery.process(&batch).await;
                    // The last commit before leaving the group must be done when it leaves.
                    let mode = match stopping.is_cancelled() {
                        true => CommitMode::Sync,
                        false => CommitMode::Async,
                    };
                    let offsets = next_offsets(&batch, &settled);
                    commit(&consumer, &delivery.subscription.topic, &offsets, mode);
                }
            }
        }
        // Closing a consumer leaves its group, waiting for the coordinator: not on an async
        // worker, and awaited, so that a stopping bridge exits only once it has left.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }
    tracing::info!(
        group = delivery.subscription.group,
        "subscription stopped: consumer group left"
    );
    Ok(())
}

/// A consumer of the subscription's topic in its group, committing only explicitly.
fn consumer(
    bridge: &Arc<Bridge>,
    delivery: &Delivery,
) -> anyhow::Result<StreamConsumer<BridgeContext>> {
    let kafka = &bridge.config.kafka;
    let subscription = &delivery.subscription;
    let context = BridgeContext {
        metrics: bridge.metrics.clone(),
        brokers: None,
        subscription: Some(delivery.health.clone()),
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

/// A message's place: partition and offset.
type Position = (i32, i64);

/// Per partition, the offset to commit: the one after the last message settled with every
/// message before it in the batch also settled (a message left unsettled, because the bridge
/// stopped, comes again with all that follows it). Partitions with nothing settled are absent.
fn next_offsets(batch: &[OwnedMessage], settled: &BTreeSet<Position>) -> BTreeMap<i32, i64> {
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for message in batch {
        by_partition
            .entry(message.partition())
            .or_default()
            .push(message.offset());
    }
    let mut next = BTreeMap::new();
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        let prefix = offsets
            .iter()
            .take_while(|&&offset| settled.contains(&(partition, offset)))
            .last();
        if let Some(offset) = prefix {
            next.insert(partition, offset + 1);
        }
    }
    next
}

/// Commits `offsets` of `topic`.
fn commit(
    consumer: &StreamConsumer<BridgeContext>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    mode: CommitMode,
) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::with_capacity(offsets.len());
    for (&partition, &offset) in offsets {
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, topic, partition, "cannot commit offset");
        }
    }
    // A failed commit only means redelivery, which the components tolerate.
    if let Err(error) = consumer.commit(&list, mode) {
        tracing::warn!(%error, "commit failed; the messages will be redelivered");
    }
}

/// One subscription's delivery to its component.
struct Delivery {
    bridge: Arc<Bridge>,
    subscription: Subscription,
    url: String,
    /// `[group, topic]`, the metrics' labels.
    labels: [String; 2],
    health: Arc<SubscriptionHealth>,
}

impl Delivery {
    /// Delivers each partition's messages as one request, the partitions concurrently (order
    /// holds within a partition, which is all Kafka orders). Returns the messages settled:
    /// delivered or dead-lettered.
    async fn process(&self, batch: &[OwnedMessage]) -> BTreeSet<Position> {
        let mut settled = BTreeSet::new();
        let mut partitions: BTreeMap<i32, Vec<(&OwnedMessage, &RawValue)>> = BTreeMap::new();
        for message in batch {
            match json_payload(message) {
                Ok(value) => partitions
                    .entry(message.partition())
                    .or_default()
                    .push((message, value)),
                Err(problem) => {
                    if self.dead_letter(message, problem).await {
                        settled.insert((message.partition(), message.offset()));
                    }
                }
            }
        }
        let delivered = join_all(partitions.values().map(|messages| async move {
            let count = self.deliver_with_retries(messages).await;
            messages[..count]
                .iter()
                .map(|(m, _)| (m.partition(), m.offset()))
                .collect::<Vec<_>>()
        }))
        .await;
        settled.extend(delivered.into_iter().flatten());
        settled
    }

    /// Delivers until the component accepts, pausing while it is unavailable; on a
    /// rejection, goes one message at a time so one bad message cannot hold the others.
    /// Returns how many of `messages`, from the first, are settled: all of them, unless the
    /// bridge stops while the component is unavailable.
    async fn deliver_with_retries(&self, messages: &[(&OwnedMessage, &RawValue)]) -> usize {
        let mut backoff = INITIAL_BACKOFF;
        let mut rejections = 0;
        loop {
            let (outcome, reason) = self.deliver(messages).await;
            match outcome {
                Outcome::Delivered => return messages.len(),
                Outcome::Unavailable => {
                    tracing::warn!(url = self.url, reason, "component unavailable; pausing");
                }
                Outcome::Rejected { .. } if messages.len() > 1 => {
                    tracing::warn!(
                        url = self.url,
                        reason,
                        "batch rejected; delivering one by one"
                    );
                    let mut settled = 0;
                    for message in messages {
                        if Box::pin(self.deliver_with_retries(std::slice::from_ref(message))).await
                            == 0
                        {
                            break;
                        }
                        settled += 1;
                    }
                    return settled;
                }
                Outcome::Rejected { permanent } => {
                    rejections += 1;
                    if permanent || rejections >= self.subscription.max_attempts {
                        let problem = if permanent {
                            format!("refused: {reason}")
                        } else {
                            format!("failed {rejections} times: {reason}")
                        };
                        return usize::from(self.dead_letter(messages[0].0, problem).await);
                    }
                }
            }
            self.bridge
                .metrics
                .retries
                .with_label_values(&self.labels)
                .inc();
            if !self.pause(&mut backoff).await {
                return 0;
            }
        }
    }

    /// Waits `backoff` before a retry, and doubles it; false when the bridge stops meanwhile.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let stopping = &self.bridge.stopping;
        if stopping.is_cancelled() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = stopping.cancelled() => return false,
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        true
    }

    /// Delivers `messages` once: what the answer means, and why (empty when delivered).
    async fn deliver(&self, messages: &[(&OwnedMessage, &RawValue)]) -> (Outcome, String) {
        let batch = protocol::Delivery {
            topic: self.subscription.topic.as_str().into(),
            group: self.subscription.group.as_str().into(),
            messages: messages
                .iter()
                .map(|(message, value)| protocol::Message {
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
                                    let value = value.unwrap_or_default().into_owned();
                                    (h.key.to_owned(), value)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp: message.timestamp().to_millis(),
                    value: Cow::Borrowed(*value),
                })
                .collect(),
        };
        let started = Instant::now();
        let answer = self
            .bridge
            .http
            .post(&self.url)
            .bearer_auth(&self.bridge.config.delivery_secret)
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
        let (outcome, reason) = match answer {
            Err(error) => (Outcome::Unavailable, error.to_string()),
            Ok(response) if response.status().is_success() => (Outcome::Delivered, String::new()),
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let reason = format!("{status}: {}", body.chars().take(500).collect::<String>());
                (Outcome::of(status), reason)
            }
        };
        let result = match &outcome {
            Outcome::Delivered => "ok",
            Outcome::Unavailable => "unavailable",
            Outcome::Rejected { .. } => "rejected",
        };
        self.health.answered(match &outcome {
            Outcome::Unavailable => Err(reason.clone()),
            Outcome::Delivered | Outcome::Rejected { .. } => Ok(()),
        });
        self.bridge
            .metrics
            .deliveries
            .with_label_values(&[&self.labels[0], &self.labels[1], result])
            .inc();
        (outcome, reason)
    }

    /// Publishes `message` as is to the dead-letter topic, with the reason and its origin in
    /// headers; retries until the broker acknowledges, so the offset is never committed first.
    /// False if the bridge stopped before that.
    async fn dead_letter(&self, message: &OwnedMessage, problem: String) -> bool {
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
                    if !self.pause(&mut backoff).await {
                        return false;
                    }
                }
            }
        }
        self.bridge
            .metrics
            .dead_lettered
            .with_label_values(&self.labels)
            .inc();
        self.health.progressed();
        true
    }
}

/// The payload as JSON text, or why it cannot be delivered.
fn json_payload(message: &OwnedMessage) -> Result<&RawValue, String> {
    let payload = message.payload().ok_or("the message has no payload")?;
    serde_json::from_slice(payload).map_err(|e| format!("the payload is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;

    use super::*;

    fn message(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "t".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn commits_the_settled_prefix_of_each_partition() {
        let batch = [
            message(0, 10),
            message(1, 4),
            message(0, 11),
            message(0, 12),
            message(2, 7),
        ];
        let settled = BTreeSet::from([(0, 10), (0, 12), (1, 4)]);
        // Partition 0: 11 is not settled, so 12 comes again; 2: nothing settled.
        assert_eq!(
            next_offsets(&batch, &settled),
            BTreeMap::from([(0, 11), (1, 5)])
        );
        let all: BTreeSet<Position> = batch.iter().map(|m| (m.partition(), m.offset())).collect();
        assert_eq!(
            next_offsets(&batch, &all),
            BTreeMap::from([(0, 13), (1, 5), (2, 8)])
        );
    }
}
