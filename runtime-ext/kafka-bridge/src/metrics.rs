//! The bridge's Prometheus metrics, served as text at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
    /// Messages behind the partition's end, per consumer group (from librdkafka's statistics).
    pub consumer_lag: IntGaugeVec,
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
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_bridge_consumer_lag",
                "Messages not yet consumed, per group and partition",
            ),
            &["group", "topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
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
            consumer_lag,
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
