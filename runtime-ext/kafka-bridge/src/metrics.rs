//! The bridge's Prometheus metrics, served as text at `GET /metrics`.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::health::{Condition, Report};

/// Latency buckets (seconds) for produce and delivery: sub-millisecond to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    registry: Registry,
    /// Produce requests by topic and result (`acked`, `queued`, `failed`, `unavailable`).
    pub produced: IntCounterVec,
    /// Time from a produce request to the broker's acknowledgement.
    pub produce_latency: HistogramVec,
    /// Delivery requests to components by topic, group and result (`ok`, `unavailable`, `rejected`).
    pub deliveries: IntCounterVec,
    /// Time a component took to answer a delivery.
    pub delivery_latency: HistogramVec,
    /// Deliveries repeated after a failure.
    pub retries: IntCounterVec,
    /// Messages moved to the dead-letter topic.
    pub dead_lettered: IntCounterVec,
    /// Messages behind the partition's end, per consumer group (read by `health`).
    pub consumer_lag: IntGaugeVec,
    /// Per subscription: partitions assigned to this bridge.
    pub assigned_partitions: IntGaugeVec,
    /// Per subscription: seconds since messages were last settled or it was caught up.
    pub since_progress: GaugeVec,
    /// Per subscription and condition (`ok`, `paused`, `stuck`): 1 for the current one.
    pub subscription_condition: IntGaugeVec,
    /// 1 while at least one broker connection is up.
    pub kafka_up: IntGauge,
    /// 1 while MongoDB answers.
    pub mongodb_up: IntGauge,
    /// MongoDB API calls by collection, operation and result.
    pub mongo_operations: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let metric = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let since_progress = GaugeVec::new(
            Opts::new(
                "kafka_bridge_subscription_seconds_since_progress",
                "Seconds since the subscription last settled messages or was caught up",
            ),
            &["group", "topic"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(since_progress.clone()))
            .expect("registered once");
        Self {
            produced: counter(
                "kafka_bridge_produce_total",
                "Produce requests by topic and result",
                &["topic", "result"],
            ),
            produce_latency: histogram(
                "kafka_bridge_produce_latency_seconds",
                "Time from a produce request to the broker's acknowledgement",
                &["topic"],
            ),
            deliveries: counter(
                "kafka_bridge_deliveries_total",
                "Deliveries to components by result",
                &["group", "topic", "result"],
            ),
            delivery_latency: histogram(
                "kafka_bridge_delivery_latency_seconds",
                "Time a component took to answer a delivery",
                &["group", "topic"],
            ),
            retries: counter(
                "kafka_bridge_retries_total",
                "Deliveries repeated after a failure",
                &["group", "topic"],
            ),
            dead_lettered: counter(
                "kafka_bridge_dead_lettered_total",
                "Messages moved to the dead-letter topic",
                &["group", "topic"],
            ),
            consumer_lag: gauges(
                "kafka_bridge_consumer_lag",
                "Messages not yet committed, per group and partition",
                &["group", "topic", "partition"],
            ),
            assigned_partitions: gauges(
                "kafka_bridge_subscription_assigned_partitions",
                "Partitions assigned to this bridge, per subscription",
                &["group", "topic"],
            ),
            since_progress,
            subscription_condition: gauges(
                "kafka_bridge_subscription_condition",
                "1 for the subscription's current condition (ok, paused, stuck)",
                &["group", "topic", "condition"],
            ),
            kafka_up: gauge("kafka_bridge_kafka_up", "1 while a broker connection is up"),
            mongodb_up: gauge("kafka_bridge_mongodb_up", "1 while MongoDB answers"),
            mongo_operations: counter(
                "kafka_bridge_mongodb_operations_total",
                "MongoDB API calls by collection, operation and result",
                &["collection", "operation", "result"],
            ),
            registry,
        }
    }

    /// Exposes every counter series the configuration implies at 0, so that a dashboard's rate
    /// and a test's "stays 0" see a series from the start rather than none.
    pub fn initialize(&self, config: &crate::config::Config) {
        for topic in &config.kafka.topics {
            for result in ["acked", "queued", "failed", "unavailable", "rejected"] {
                self.produced.with_label_values(&[&topic.name, result]);
            }
        }
        for subscription in &config.subscriptions {
            let labels = [subscription.group.as_str(), subscription.topic.as_str()];
            for result in ["ok", "unavailable", "rejected"] {
                self.deliveries
                    .with_label_values(&[labels[0], labels[1], result]);
            }
            self.retries.with_label_values(&labels);
            self.dead_lettered.with_label_values(&labels);
        }
    }

    /// A subscription's health, as gauges.
    pub fn record_subscription(&self, report: &Report) {
        let labels = [report.group.as_str(), report.topic.as_str()];
        self.assigned_partitions
            .with_label_values(&labels)
            .set(report.assigned_partitions.len() as i64);
        self.since_progress
            .with_label_values(&labels)
            .set(report.seconds_since_progress);
        for (condition, name) in [
            (Condition::Ok, "ok"),
            (Condition::Paused, "paused"),
            (Condition::Stuck, "stuck"),
        ] {
            self.subscription_condition
                .with_label_values(&[labels[0], labels[1], name])
                .set(i64::from(report.condition == condition));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
