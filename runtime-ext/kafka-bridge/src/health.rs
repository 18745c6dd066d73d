//! What the probes and `/health` report, kept up to date in the background so that a probe
//! answers at once and never waits on Kafka or MongoDB:
//!
//! - MongoDB's reachability, pinged every [`MONGODB_PING_INTERVAL`] (and updated by every
//!   MongoDB API call);
//! - per subscription: its assigned partitions (from the consumer's rebalance callbacks), its
//!   lag per partition (the group's committed offsets against the partitions' ends, read by a
//!   client of its own every [`LAG_INTERVAL`], assigned or not), when it last made progress and
//!   whether its component is refusing deliveries for now.
//!
//! A subscription is *stuck* when it has lag and has neither made progress nor had a delivery
//! answered for longer than its `stuck_after_ms`: no partition assigned (a dead member not yet
//! expired by the group), or a consumer that stopped fetching. Readiness fails then, and while
//! the bridge shuts down. A subscription whose component answers "unavailable" is *paused*,
//! not stuck: its dependency is down, which no restart of the bridge fixes, and failing
//! readiness then would also take `POST /buy` away while Kafka is fine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::Bridge;
use crate::config::Subscription;
use crate::kafka::client_config;
use crate::metrics::Metrics;

/// How often MongoDB is pinged, and how long a ping may take.
const MONGODB_PING_INTERVAL: Duration = Duration::from_secs(2);
const MONGODB_PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How often each subscription's lag is read, and how long one read may take.
const LAG_INTERVAL: Duration = Duration::from_secs(2);
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// A dependency's state as last seen: unknown (0) until first seen.
#[derive(Default)]
pub struct Reachability(AtomicU8);

const CONNECTED: u8 = 1;
const DISCONNECTED: u8 = 2;

impl Reachability {
    pub fn set(&self, up: bool, metrics: &Metrics) {
        self.0
            .store(if up { CONNECTED } else { DISCONNECTED }, Ordering::Relaxed);
        metrics.mongodb_up.set(i64::from(up));
    }

    fn describe(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            CONNECTED => "connected",
            DISCONNECTED => "disconnected",
            _ => "unknown",
        }
    }
}

/// One subscription's health, shared by its delivery loop, its consumer's callbacks and the
/// lag reader.
pub struct SubscriptionHealth {
    pub group: String,
    pub topic: String,
    stuck_after: Duration,
    state: Mutex<State>,
}

struct State {
    assigned: Vec<i32>,
    /// Per partition; `None` while it cannot be read (Kafka unreachable): then nothing is
    /// judged stuck, since no restart of the bridge would help.
    lag: Option<BTreeMap<i32, i64>>,
    /// Messages settled (delivered or dead-lettered), or no lag: the subscription is caught up.
    last_progress: Instant,
    /// The component answered a delivery, whatever it said.
    last_answer: Instant,
    /// Why the last delivery could not be made, until one is.
    paused: Option<String>,
}

/// A subscription's condition, as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Ok,
    Paused,
    Stuck,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub group: String,
    pub topic: String,
    pub condition: Condition,
    pub assigned_partitions: Vec<i32>,
    /// Messages not yet committed, over all partitions; `null` when Kafka cannot be asked.
    pub lag: Option<i64>,
    pub seconds_since_progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SubscriptionHealth {
    pub fn new(subscription: &Subscription) -> Self {
        let now = Instant::now();
        Self {
            group: subscription.group.clone(),
            topic: subscription.topic.clone(),
            stuck_after: Duration::from_millis(subscription.stuck_after_ms),
            state: Mutex::new(State {
                assigned: Vec::new(),
                lag: None,
                last_progress: now,
                last_answer: now,
                paused: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer's assignment changed (rebalance callbacks).
    pub fn assigned(&self, partitions: Vec<i32>) {
        self.state().assigned = partitions;
    }

    /// The component answered: `Ok` when it accepted, `Err` with why it could not take the
    /// messages now (the subscription pauses). A rejection is `Ok` here: it is progress.
    pub fn answered(&self, result: Result<(), String>) {
        let mut state = self.state();
        let now = Instant::now();
        state.last_answer = now;
        match result {
            Ok(()) => {
                state.last_progress = now;
                state.paused = None;
            }
            Err(reason) => state.paused = Some(reason),
        }
    }

    /// Messages were settled without a delivery (dead-lettered before one).
    pub fn progressed(&self) {
        self.state().last_progress = Instant::now();
    }

    fn set_lag(&self, lag: Option<BTreeMap<i32, i64>>) {
        let mut state = self.state();
        if lag.as_ref().is_some_and(|l| l.values().all(|&n| n == 0)) {
            state.last_progress = Instant::now();
        }
        state.lag = lag;
    }

    pub fn report(&self) -> Report {
        let state = self.state();
        let lag = state.lag.as_ref().map(|l| l.values().sum::<i64>());
        let idle = state.last_progress.max(state.last_answer).elapsed();
        let condition = if lag.is_some_and(|n| n > 0) && idle > self.stuck_after {
            Condition::Stuck
        } else if state.paused.is_some() {
            Condition::Paused
        } else {
            Condition::Ok
        };
        let reason = match condition {
            Condition::Stuck if state.assigned.is_empty() => Some(format!(
                "no partition assigned for {:.0} s while messages wait",
                idle.as_secs_f64()
            )),
            Condition::Stuck => Some(format!(
                "no delivery for {:.0} s while messages wait",
                idle.as_secs_f64()
            )),
            _ => state.paused.clone(),
        };
        Report {
            group: self.group.clone(),
            topic: self.topic.clone(),
            condition,
            assigned_partitions: state.assigned.clone(),
            lag,
            seconds_since_progress: state.last_progress.elapsed().as_secs_f64(),
            reason,
        }
    }
}

/// The bridge's health as a whole.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub status: &'static str,
    pub ready: bool,
    pub kafka: &'static str,
    pub mongodb: &'static str,
    pub subscriptions: Vec<Report>,
}

/// Everything the health endpoints read.
pub struct Health {
    pub mongodb: Reachability,
    /// In the order of the configuration's subscriptions.
    pub subscriptions: Vec<Arc<SubscriptionHealth>>,
}

impl Health {
    pub fn new(subscriptions: &[Subscription]) -> Self {
        Self {
            mongodb: Reachability::default(),
            subscriptions: subscriptions
                .iter()
                .map(|s| Arc::new(SubscriptionHealth::new(s)))
                .collect(),
        }
    }
}

impl Bridge {
    /// The current health, from state only (no I/O).
    pub fn overview(&self) -> Overview {
        let subscriptions: Vec<Report> = self
            .health
            .subscriptions
            .iter()
            .map(|s| s.report())
            .collect();
        let stopping = self.stopping.is_cancelled();
        let ready = !stopping
            && subscriptions
                .iter()
                .all(|s| s.condition != Condition::Stuck);
        Overview {
            status: match (stopping, ready) {
                (true, _) => "stopping",
                (false, true) => "healthy",
                (false, false) => "unhealthy",
            },
            ready,
            kafka: if self.brokers.is_up() { "UP" } else { "NOT UP" },
            mongodb: match self.mongo {
                None => "not configured",
                Some(_) => self.health.mongodb.describe(),
            },
            subscriptions,
        }
    }
}

/// Pings MongoDB every [`MONGODB_PING_INTERVAL`] until the bridge stops.
pub async fn watch_mongodb(bridge: Arc<Bridge>) {
    let Some(client) = bridge.mongo.clone() else {
        return;
    };
    loop {
        let up = matches!(
            tokio::time::timeout(MONGODB_PING_TIMEOUT, crate::mongo::ping(&client)).await,
            Ok(true)
        );
        bridge.health.mongodb.set(up, &bridge.metrics);
        tokio::select! {
            _ = tokio::time::sleep(MONGODB_PING_INTERVAL) => {}
            _ = bridge.stopping.cancelled() => return,
        }
    }
}

/// Reads `health`'s lag every [`LAG_INTERVAL`] with a client of its own, which shares the
/// group's id to read its committed offsets but never joins it.
pub async fn watch_lag(bridge: Arc<Bridge>, health: Arc<SubscriptionHealth>) {
    let reader: Arc<BaseConsumer> = match client_config(&bridge.config.kafka)
        .set("group.id", &health.group)
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(reader) => Arc::new(reader),
        Err(error) => {
            tracing::error!(%error, group = health.group, "cannot read the lag");
            return;
        }
    };
    loop {
        let (reader_now, topic) = (reader.clone(), health.topic.clone());
        let lag = tokio::task::spawn_blocking(move || read_lag(&reader_now, &topic))
            .await
            .ok()
            .and_then(|lag| {
                lag.map_err(|error| tracing::debug!(%error, "reading the lag failed"))
                    .ok()
            });
        for (partition, messages) in lag.iter().flatten() {
            bridge
                .metrics
                .consumer_lag
                .with_label_values(&[&health.group, &health.topic, &partition.to_string()])
                .set(*messages);
        }
        health.set_lag(lag);
        bridge.metrics.record_subscription(&health.report());
        tokio::select! {
            _ = tokio::time::sleep(LAG_INTERVAL) => {}
            _ = bridge.stopping.cancelled() => break,
        }
    }
    // Dropping a client may wait for its threads: not on an async worker.
    tokio::task::spawn_blocking(move || drop(reader));
}

/// Per partition of `topic`: its end offset minus the group's committed one (or minus its
/// start, when the group committed nothing: it reads from the earliest message).
fn read_lag(reader: &BaseConsumer, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let metadata = reader.fetch_metadata(Some(topic), LAG_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for &partition in &partitions {
        list.add_partition(topic, partition);
    }
    let committed = reader.committed_offsets(list, LAG_TIMEOUT)?;
    let mut lag = BTreeMap::new();
    for partition in partitions {
        let (low, high) = reader.fetch_watermarks(topic, partition, LAG_TIMEOUT)?;
        let position = match committed
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(offset)) => offset,
            _ => low,
        };
        lag.insert(partition, (high - position).max(0));
    }
    Ok(lag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(stuck_after_ms: u64) -> SubscriptionHealth {
        let mut config: Subscription = toml::from_str(
            r#"
            topic = "t"
            group = "g"
            route = "/r"
            dead_letter_topic = "t.dl"
            "#,
        )
        .unwrap();
        config.stuck_after_ms = stuck_after_ms;
        SubscriptionHealth::new(&config)
    }

    #[test]
    fn lag_without_answers_past_the_threshold_is_stuck() {
        let health = subscription(0);
        assert_eq!(health.report().condition, Condition::Ok, "lag unknown");
        health.set_lag(Some(BTreeMap::from([(0, 0), (1, 0)])));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(health.report().condition, Condition::Ok, "no lag");
        health.set_lag(Some(BTreeMap::from([(0, 3), (1, 0)])));
        std::thread::sleep(Duration::from_millis(2));
        let report = health.report();
        assert_eq!(report.condition, Condition::Stuck);
        assert_eq!(report.lag, Some(3));
        assert!(report.reason.unwrap().contains("no partition assigned"));
        health.set_lag(None);
        assert_eq!(
            health.report().condition,
            Condition::Ok,
            "Kafka unreachable"
        );
    }

    #[test]
    fn a_refusing_component_pauses_and_an_answer_is_not_stuck() {
        let health = subscription(60_000);
        health.set_lag(Some(BTreeMap::from([(0, 5)])));
        health.answered(Err("503: MongoDB unavailable".into()));
        let report = health.report();
        assert_eq!(report.condition, Condition::Paused);
        assert_eq!(report.reason.as_deref(), Some("503: MongoDB unavailable"));
        health.answered(Ok(()));
        assert_eq!(health.report().condition, Condition::Ok);
    }
}
