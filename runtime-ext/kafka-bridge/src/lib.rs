//! # kafka-bridge
//!
//! A native sidecar connecting Kafka and MongoDB to Spin components over HTTP. Components
//! cannot hold a Kafka connection or run a background consumer, so the bridge does both:
//! it produces for them (answering only once the broker acknowledged), consumes for them
//! (delivering batches to their HTTP routes and committing only after a 2xx), and gives them
//! a narrow MongoDB API. A shared secret authenticates each side to the other.
//!
//! # Layout
//! - [`config`]: the TOML file and its environment overrides.
//! - [`server`]: the HTTP API, its bearer-token check, `/health` and `/metrics`.
//! - [`produce`]: the idempotent producer behind `POST /v1/topics/{topic}/messages`.
//! - [`consume`]: one delivery loop per subscription: retries, pauses, the dead-letter topic.
//! - [`mongo`]: insert (idempotent by key), find, count and sum.
//! - [`kafka`]: client settings, broker state, topic creation at start-up.
//! - [`metrics`]: the Prometheus metrics.
//! - [`error`]: the JSON error every endpoint answers with.

pub mod config;
pub mod consume;
pub mod error;
pub mod kafka;
pub mod metrics;
pub mod mongo;
pub mod produce;
pub mod server;

use std::sync::Arc;

use config::Config;
use kafka::{BridgeContext, BrokerState};
use metrics::Metrics;

/// Everything the HTTP handlers and the subscriptions share.
pub struct Bridge {
    pub config: Config,
    pub producer: produce::BridgeProducer,
    pub brokers: Arc<BrokerState>,
    pub mongo: Option<mongodb::Client>,
    /// Connection pool for deliveries to components.
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
}

impl Bridge {
    pub async fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::new());
        let brokers = Arc::new(BrokerState::default());
        let context = BridgeContext {
            metrics: metrics.clone(),
            brokers: Some(brokers.clone()),
            group: None,
        };
        let producer = produce::producer(&config.kafka, context)?;
        let mongo = mongo::client(&config.mongodb).await?;
        Ok(Arc::new(Self {
            producer,
            brokers,
            mongo,
            http: reqwest::Client::builder().build()?,
            metrics,
            config,
        }))
    }
}

/// Serves the API on `listener`, creates topics and indexes, then starts every subscription.
/// Kafka and MongoDB may be down at start: the API answers 503 until they are up.
pub async fn run(bridge: Arc<Bridge>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let server = tokio::spawn(server::serve(bridge.clone(), listener));
    if let Some(client) = bridge.mongo.clone() {
        tokio::spawn(mongo::create_indexes(
            client,
            bridge.config.mongodb.collections.clone(),
        ));
    }
    let (created, topics_ready) = tokio::sync::oneshot::channel();
    let topics = tokio::spawn(kafka::keep_topics(
        bridge.config.kafka.clone(),
        bridge.brokers.clone(),
        created,
    ));
    if topics_ready.await.is_err() {
        return topics.await?;
    }
    for subscription in bridge.config.subscriptions.clone() {
        let bridge = bridge.clone();
        tokio::spawn(async move {
            let group = subscription.group.clone();
            if let Err(error) = consume::run(bridge, subscription).await {
                tracing::error!(group, "subscription stopped: {error:#}");
            }
        });
    }
    server.await?
}
