//! What the producer and the consumers share: client settings, the broker connection state
//! learnt from librdkafka's statistics and errors, and topic creation at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

use crate::config::{KafkaConfig, Topic};
use crate::health::SubscriptionHealth;
use crate::metrics::Metrics;

/// How often librdkafka reports statistics: broker states and consumer lag.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound of librdkafka's reconnect backoff, so a restarted broker is found within a second.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Whether any broker connection is up, as far as librdkafka has told us.
pub struct BrokerState {
    state: AtomicU8,
    /// Counts the times the brokers came back after being down.
    recoveries: watch::Sender<u64>,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl Default for BrokerState {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(UNKNOWN),
            recoveries: watch::Sender::new(0),
        }
    }
}

impl BrokerState {
    /// True once librdkafka reported that no broker is reachable, until one is again:
    /// producing would only wait for the timeout.
    pub fn known_down(&self) -> bool {
        self.state.load(Ordering::Relaxed) == DOWN
    }

    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UP
    }

    /// Changes each time the brokers are reachable again after an outage.
    pub fn recoveries(&self) -> watch::Receiver<u64> {
        self.recoveries.subscribe()
    }

    /// Records what librdkafka or a probe found.
    pub fn set(&self, up: bool, metrics: &Metrics) {
        let previous = self
            .state
            .swap(if up { UP } else { DOWN }, Ordering::Relaxed);
        metrics.kafka_up.set(i64::from(up));
        if up && previous == DOWN {
            self.recoveries.send_modify(|count| *count += 1);
        }
    }
}

/// The librdkafka callbacks of every client the bridge makes.
#[derive(Clone)]
pub struct BridgeContext {
    pub metrics: Arc<Metrics>,
    /// Set from the producer's callbacks only: the consumers' connections say nothing new.
    pub brokers: Option<Arc<BrokerState>>,
    /// A consumer's subscription, told of each assignment.
    pub subscription: Option<Arc<SubscriptionHealth>>,
}

impl ClientContext for BridgeContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(brokers) = &self.brokers {
            let up = statistics
                .brokers
                .values()
                .any(|b| b.nodeid >= 0 && b.state == "UP");
            brokers.set(up, &self.metrics);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if let (Some(brokers), KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)) =
            (&self.brokers, &error)
        {
            brokers.set(false, &self.metrics);
        }
        tracing::warn!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for BridgeContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(subscription) = &self.subscription else {
            return;
        };
        // The default (eager) protocol hands out a whole new assignment each time.
        let partitions = match rebalance {
            Rebalance::Assign(list) => list.elements().iter().map(|p| p.partition()).collect(),
            Rebalance::Revoke(_) | Rebalance::Error(_) => Vec::new(),
        };
        tracing::info!(
            group = subscription.group,
            ?partitions,
            "partitions assigned"
        );
        subscription.assigned(partitions);
    }
}

/// Settings every client shares, then the configuration's `[kafka.client]`.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set(
            "statistics.interval.ms",
            STATISTICS_INTERVAL.as_millis().to_string(),
        )
        .set(
            "reconnect.backoff.max.ms",
            RECONNECT_BACKOFF_MAX.as_millis().to_string(),
        );
    for (key, value) in &kafka.client {
        config.set(key, value);
    }
    config
}

/// Creates `topics` that do not exist yet, retrying until the brokers answer: production
/// clusters often disable auto-creation, and the bridge may start before Kafka.
/// The bridge runs it again whenever the brokers come back (see `recover_after_outages`).
pub async fn create_topics(kafka: &KafkaConfig, topics: &[Topic]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(t.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let mut backoff = Duration::from_millis(200);
    loop {
        match admin.create_topics(&new_topics, &options).await {
            Ok(results) => {
                let mut pending = false;
                for result in results {
                    match result {
                        Ok(name) => tracing::info!(topic = name, "created topic"),
                        Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            tracing::debug!(topic = name, "topic exists")
                        }
                        Err((name, code)) => {
                            tracing::warn!(topic = name, %code, "creating topic failed; retrying");
                            pending = true;
                        }
                    }
                }
                if !pending {
                    return Ok(());
                }
            }
            Err(error) => tracing::warn!(%error, "creating topics failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
