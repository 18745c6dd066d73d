//! # kafka-bridge
//!
//! A native sidecar connecting Kafka and MongoDB to Spin components over HTTP. Components
//! cannot hold a Kafka connection or run a background consumer, so the bridge does both:
//! it produces for them (answering only once the broker acknowledged), consumes for them
//! (delivering batches to their HTTP routes and committing only after a 2xx), and gives them
//! a narrow MongoDB API. Two secrets authenticate each side to the other: one for components
//! calling the bridge, another for the bridge's deliveries to them. On SIGTERM it
//! stops gracefully (see [`run`]), so the next bridge takes over the partitions at once.
//!
//! # Layout
//! - [`config`]: the TOML file and its environment overrides.
//! - [`server`]: the HTTP API, its bearer-token check, the health probes and `/metrics`.
//! - [`health`]: what the probes report, kept up to date in the background.
//! - [`produce`]: the idempotent producer behind `POST /v1/topics/{topic}/messages`.
//! - [`consume`]: one delivery loop per subscription: retries, pauses, the dead-letter topic.
//! - [`mongo`]: insert (idempotent by key), find, count and sum.
//! - [`kafka`]: client settings, broker state, topic creation at start-up.
//! - [`metrics`]: the Prometheus metrics.
//! - [`error`]: the JSON error every endpoint answers with.

pub mod config;
pub mod consume;
pub mod error;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod mongo;
pub mod produce;
pub mod server;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use config::Config;
use health::Health;
use kafka::{BridgeContext, BrokerState};
use metrics::Metrics;
use rdkafka::producer::Producer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Everything the HTTP handlers and the subscriptions share.
pub struct Bridge {
    pub config: Config,
    /// Replaced after a broker outage (see [`recover_after_outages`]); read with [`Bridge::producer`].
    producer: RwLock<produce::BridgeProducer>,
    pub brokers: Arc<BrokerState>,
    pub mongo: Option<mongodb::Client>,
    /// Set once every collection's indexes exist: before that, an insert could slip a
    /// duplicate past the unique key, so the MongoDB API answers 503.
    pub indexes_ready: std::sync::atomic::AtomicBool,
    /// Connection pool for deliveries to components.
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// Cancelled when the bridge starts shutting down: the subscriptions stop fetching and
    /// retrying, and readiness fails.
    pub stopping: CancellationToken,
}

impl Bridge {
    pub async fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::new());
        metrics.initialize(&config);
        let brokers = Arc::new(BrokerState::default());
        let context = BridgeContext {
            metrics: metrics.clone(),
            brokers: Some(brokers.clone()),
            subscription: None,
        };
        let producer = RwLock::new(produce::producer(&config.kafka, context)?);
        let mongo = mongo::client(&config.mongodb).await?;
        Ok(Arc::new(Self {
            producer,
            brokers,
            mongo,
            indexes_ready: Default::default(),
            // A redirect would turn a delivery's POST into a GET whose 2xx commits unprocessed
            // messages: deliveries go exactly where configured.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            metrics,
            health: Health::new(&config.subscriptions),
            stopping: CancellationToken::new(),
            config,
        }))
    }
}

impl Bridge {
    /// The current producer (a cheap handle).
    pub fn producer(&self) -> produce::BridgeProducer {
        self.producer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the producer with a new session (after an outage, or when it stays unreachable).
    pub fn renew_producer(&self) -> anyhow::Result<()> {
        let context = BridgeContext {
            metrics: self.metrics.clone(),
            brokers: Some(self.brokers.clone()),
            subscription: None,
        };
        let fresh = produce::producer(&self.config.kafka, context)?;
        let stale = std::mem::replace(
            &mut *self.producer.write().unwrap_or_else(|e| e.into_inner()),
            fresh,
        );
        // Dropping a producer may wait for its threads: not on an async worker.
        tokio::task::spawn_blocking(move || drop(stale));
        Ok(())
    }
}

/// After every outage: a new producer session (a cluster that lost its state no longer knows
/// the idempotent producer's id, and would refuse it until the produce timeout), and the
/// topics again (a rebuilt cluster may not have them). Consumers renew themselves likewise.
async fn recover_after_outages(bridge: Arc<Bridge>) -> anyhow::Result<()> {
    let mut recoveries = bridge.brokers.recoveries();
    while recoveries.changed().await.is_ok() {
        tracing::info!("brokers are back: renewing the producer, making sure the topics exist");
        if let Err(error) = bridge.renew_producer() {
            tracing::error!("cannot renew the producer: {error:#}");
        }
        kafka::create_topics(&bridge.config.kafka, &bridge.config.kafka.topics).await?;
    }
    Ok(())
}

/// Serves the API on `listener`, creates topics and indexes, then starts every subscription.
/// Kafka and MongoDB may be down at start: the API answers 503 until they are up. Runs until
/// `shutdown` completes, then stops as [`stop`] says.
pub async fn run(
    bridge: Arc<Bridge>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let server_stop = CancellationToken::new();
    let mut server = tokio::spawn(server::serve(
        bridge.clone(),
        listener,
        server_stop.clone().cancelled_owned(),
    ));
    tokio::spawn(produce::probe_while_down(bridge.clone()));
    tokio::spawn(health::watch_mongodb(bridge.clone()));
    if let Some(client) = bridge.mongo.clone() {
        let bridge = bridge.clone();
        tokio::spawn(async move {
            mongo::create_indexes(client, bridge.config.mongodb.collections.clone()).await;
            bridge
                .indexes_ready
                .store(true, std::sync::atomic::Ordering::Release);
        });
    }
    tokio::pin!(shutdown);
    let subscriptions = tokio::select! {
        result = &mut server => return result?,
        _ = &mut shutdown => JoinSet::new(),
        started = start_consuming(bridge.clone()) => {
            let subscriptions = started?;
            tokio::select! {
                result = &mut server => return result?,
                _ = &mut shutdown => subscriptions,
            }
        }
    };
    stop(&bridge, subscriptions, server_stop, server).await;
    Ok(())
}

/// Creates the topics (waiting for Kafka), then starts each subscription and its lag reader.
async fn start_consuming(bridge: Arc<Bridge>) -> anyhow::Result<JoinSet<()>> {
    kafka::create_topics(&bridge.config.kafka, &bridge.config.kafka.topics).await?;
    tokio::spawn(recover_after_outages(bridge.clone()));
    let mut subscriptions = JoinSet::new();
    let healths = bridge.health.subscriptions.clone();
    for (subscription, health) in bridge.config.subscriptions.clone().into_iter().zip(healths) {
        tokio::spawn(health::watch_lag(bridge.clone(), health.clone()));
        let bridge = bridge.clone();
        subscriptions.spawn(async move {
            let group = subscription.group.clone();
            if let Err(error) = consume::run(bridge, subscription, health).await {
                tracing::error!(group, "subscription stopped: {error:#}");
            }
        });
    }
    Ok(subscriptions)
}

/// Stops within the configured grace period: the subscriptions stop fetching, finish their
/// in-flight deliveries, commit and leave their groups (the API keeps serving meanwhile: a
/// delivery's component may still call it); then the API stops accepting connections and
/// finishes its requests; then the producer flushes what it queued.
async fn stop(
    bridge: &Bridge,
    mut subscriptions: JoinSet<()>,
    server_stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    tracing::info!("shutting down: finishing deliveries, leaving the consumer groups");
    let deadline = tokio::time::Instant::now() + bridge.config.shutdown_grace();
    bridge.stopping.cancel();
    let left = async { while subscriptions.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, left).await.is_err() {
        tracing::warn!("grace period over: deliveries abandoned uncommitted (they come again)");
    }
    server_stop.cancel();
    if tokio::time::timeout_at(deadline, server).await.is_err() {
        tracing::warn!("grace period over: HTTP requests abandoned");
    }
    let remaining = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(100));
    let producer = bridge.producer();
    match tokio::task::spawn_blocking(move || producer.flush(remaining)).await {
        Ok(Ok(())) => tracing::info!("stopped"),
        _ => tracing::warn!("grace period over: queued messages not acknowledged"),
    }
}
