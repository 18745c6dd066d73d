//! The bridge's configuration: a TOML file (`kafka-bridge.toml` at the project root is the
//! application's), with the deployment-specific values overridable from the environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the bridge's HTTP API listens (`KAFKA_BRIDGE_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the components' delivery routes are served (`KAFKA_BRIDGE_COMPONENTS_URL`): the
    /// Spin application's base URL, joined with each subscription's `route`.
    #[serde(default = "default_components_url")]
    pub components_url: String,
    /// The secret components send to the bridge's API, as `Authorization: Bearer …`
    /// (`KAFKA_BRIDGE_SECRET`; the app's `kafka_bridge_secret`). Never in the file.
    #[serde(skip)]
    pub secret: String,
    /// The secret the bridge sends with its deliveries, which the delivery routes check
    /// (`KAFKA_BRIDGE_DELIVERY_SECRET`; the app's `kafka_bridge_delivery_secret`). A different
    /// one: a component able to call the bridge cannot thereby forge deliveries. Never in the
    /// file.
    #[serde(skip)]
    pub delivery_secret: String,
    /// How long a shutdown (SIGTERM, Ctrl-C) may take: in-flight deliveries finish and are
    /// committed, consumers leave their groups, the producer flushes. Keep it below the
    /// orchestrator's grace period (Kubernetes: 30 s by default).
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// The longest a client may take to send a request's headers, counted from when the
    /// connection waits for one (so also how long a kept-alive connection may idle).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Client connections open at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub mongodb: MongoConfig,
    #[serde(default, rename = "subscription")]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers (`KAFKA_BROKERS`), comma separated.
    pub brokers: String,
    /// How long a produce may wait for the broker's acknowledgement before it is a 503.
    #[serde(default = "default_produce_timeout_ms")]
    pub produce_timeout_ms: u64,
    /// Consumer group session timeout; short in tests so a restarted consumer rejoins quickly.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// Longest a consumer's fetch waits for data (librdkafka's `fetch.wait.max.ms`). Brokers that
    /// answer only when it expires (tansu does) make it the floor of delivery latency.
    #[serde(default = "default_fetch_wait_max_ms")]
    pub fetch_wait_max_ms: u64,
    /// Topics the bridge creates at start-up and the only ones components may produce to.
    #[serde(rename = "topic")]
    pub topics: Vec<Topic>,
    /// librdkafka properties for every client the bridge makes, over its own: what a cluster
    /// needs (`security.protocol`, `sasl.mechanisms`, `ssl.ca.location`, ...) or tuning
    /// (`compression.type`, `linger.ms`). An unknown property stops the bridge at start-up.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication")]
    pub replication: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string (`MONGODB_URI`); without it the MongoDB API answers 503.
    #[serde(default)]
    pub uri: Option<String>,
    /// The only collections the API serves.
    #[serde(default, rename = "collection")]
    pub collections: Vec<Collection>,
    /// How durable a write must be before the API answers it (and a delivery's offset is
    /// committed after it).
    #[serde(default)]
    pub write_concern: WriteConcern,
}

/// MongoDB's write concern for inserts. The default survives the crash of a replica set's
/// primary: acknowledged by a majority, in their journals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteConcern {
    /// `"majority"`, or how many members must acknowledge (`"1"`).
    #[serde(default = "default_write_concern_w")]
    pub w: String,
    /// Acknowledged only once in the on-disk journal.
    #[serde(default = "yes")]
    pub journal: bool,
    /// How long MongoDB may wait for the acknowledgements before the write is a 503.
    #[serde(default = "default_write_concern_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for WriteConcern {
    fn default() -> Self {
        Self {
            w: default_write_concern_w(),
            journal: true,
            timeout_ms: default_write_concern_timeout_ms(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    pub database: String,
    pub name: String,
    /// The field identifying a document: a unique index on it makes inserts idempotent.
    pub key: String,
    /// Further single-field ascending indexes.
    #[serde(default)]
    pub indexes: Vec<String>,
}

/// Messages of `topic`, read as consumer group `group`, delivered to the component `route`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub topic: String,
    pub group: String,
    /// A path on `components_url`, or an absolute URL.
    pub route: String,
    /// Where messages go after `max_attempts` rejections (created at start-up).
    pub dead_letter_topic: String,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Messages delivered per request at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long a batch waits for more messages once it has one.
    #[serde(default = "default_batch_linger_ms")]
    pub batch_linger_ms: u64,
    /// How long the subscription may have messages waiting without any delivery being answered
    /// before it counts as stuck, and the bridge as not ready (`/health/ready`).
    #[serde(default = "default_stuck_after_ms")]
    pub stuck_after_ms: u64,
}

impl Subscription {
    pub fn url(&self, components_url: &str) -> String {
        if self.route.starts_with("http://") || self.route.starts_with("https://") {
            self.route.clone()
        } else {
            format!("{}{}", components_url.trim_end_matches('/'), self.route)
        }
    }

    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
}

impl Config {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The API listener's limits.
    pub fn listener_limits(&self) -> spinyard_listener::Limits {
        spinyard_listener::Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
            drain: self.shutdown_grace(),
        }
    }
}

/// The shortest secret accepted: 32 characters, e.g. 16 random bytes in hex (`openssl rand
/// -hex 32` makes 64).
const MIN_SECRET_LENGTH: usize = 32;
/// Values that have appeared in this project's documents and manifests, or are guessed first.
const KNOWN_SECRETS: [&str; 6] = [
    "dev-secret",
    "test-bridge-secret",
    "changeme",
    "secret",
    "password",
    "replace-me",
];

/// Refuses a secret that is short, known, or made of one repeated character.
fn check_secret(name: &str, secret: &str) -> anyhow::Result<()> {
    let lower = secret.to_ascii_lowercase();
    if KNOWN_SECRETS.iter().any(|known| lower.contains(known)) {
        bail!(
            "{name} is a published or guessable value: generate one, e.g. `openssl rand -hex 32`"
        );
    }
    if secret.chars().count() < MIN_SECRET_LENGTH {
        bail!(
            "{name} has {} characters; at least {MIN_SECRET_LENGTH} are needed: generate one, e.g. `openssl rand -hex 32`",
            secret.chars().count()
        );
    }
    let mut chars = secret.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        bail!("{name} is one character repeated: generate one, e.g. `openssl rand -hex 32`");
    }
    Ok(())
}

fn default_listen() -> String {
    "127.0.0.1:3100".into()
}
fn default_components_url() -> String {
    "http://127.0.0.1:3000".into()
}
fn default_shutdown_grace_ms() -> u64 {
    20_000
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    1024
}
fn default_write_concern_w() -> String {
    "majority".into()
}
fn yes() -> bool {
    true
}
fn default_write_concern_timeout_ms() -> u64 {
    5_000
}
fn default_stuck_after_ms() -> u64 {
    60_000
}
fn default_produce_timeout_ms() -> u64 {
    5_000
}
fn default_session_timeout_ms() -> u64 {
    10_000
}
fn default_fetch_wait_max_ms() -> u64 {
    20
}
fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i32 {
    1
}
fn default_max_attempts() -> u32 {
    5
}
fn default_batch_size() -> usize {
    500
}
fn default_batch_linger_ms() -> u64 {
    2
}

/// The environment variables that override the file, by name.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Reads `path`, applies the environment, and checks the result.
    pub fn load(path: &Path, env: &impl Environment) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, env).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str, env: &impl Environment) -> anyhow::Result<Self> {
        let mut config: Config = toml::from_str(text)?;
        if let Some(listen) = env.var("KAFKA_BRIDGE_LISTEN") {
            config.listen = listen;
        }
        if let Some(url) = env.var("KAFKA_BRIDGE_COMPONENTS_URL") {
            config.components_url = url;
        }
        if let Some(brokers) = env.var("KAFKA_BROKERS") {
            config.kafka.brokers = brokers;
        }
        if let Some(uri) = env.var("MONGODB_URI") {
            config.mongodb.uri = Some(uri);
        }
        config.secret = env.var("KAFKA_BRIDGE_SECRET").context(
            "KAFKA_BRIDGE_SECRET is not set: components authenticate to the bridge with it",
        )?;
        config.delivery_secret = env.var("KAFKA_BRIDGE_DELIVERY_SECRET").context(
            "KAFKA_BRIDGE_DELIVERY_SECRET is not set: the bridge authenticates its deliveries with it",
        )?;
        check_secret("KAFKA_BRIDGE_SECRET", &config.secret)?;
        check_secret("KAFKA_BRIDGE_DELIVERY_SECRET", &config.delivery_secret)?;
        if config.secret == config.delivery_secret {
            bail!("KAFKA_BRIDGE_SECRET and KAFKA_BRIDGE_DELIVERY_SECRET must differ");
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let topics: BTreeSet<&str> = self.kafka.topics.iter().map(|t| t.name.as_str()).collect();
        for topic in &self.kafka.topics {
            if topic.partitions < 1 || topic.replication < 1 {
                bail!(
                    "topic `{}`: partitions and replication must be at least 1",
                    topic.name
                );
            }
        }
        for sub in &self.subscriptions {
            for name in [&sub.topic, &sub.dead_letter_topic] {
                if !topics.contains(name.as_str()) {
                    bail!(
                        "subscription of group `{}`: topic `{name}` is not declared in [[kafka.topic]]",
                        sub.group
                    );
                }
            }
            if sub.max_attempts == 0 || sub.batch_size == 0 {
                bail!(
                    "subscription of group `{}`: max_attempts and batch_size must be at least 1",
                    sub.group
                );
            }
        }
        let w = &self.mongodb.write_concern.w;
        if w != "majority" && w.parse::<u32>().is_err() {
            bail!("mongodb.write_concern.w: `{w}` is neither \"majority\" nor a number");
        }
        for collection in &self.mongodb.collections {
            for field in std::iter::once(&collection.key).chain(&collection.indexes) {
                crate::mongo::check_field_name(field).map_err(|problem| {
                    anyhow::anyhow!(
                        "collection `{}.{}`: index field `{field}`: {problem}",
                        collection.database,
                        collection.name
                    )
                })?;
            }
        }
        Ok(())
    }

    pub fn collection(&self, database: &str, name: &str) -> Option<&Collection> {
        self.mongodb
            .collections
            .iter()
            .find(|c| c.database == database && c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    impl Environment for HashMap<&str, &str> {
        fn var(&self, name: &str) -> Option<String> {
            self.get(name).map(|v| v.to_string())
        }
    }

    const FILE: &str = r#"
        [kafka]
        brokers = "kafka:9092"
        [[kafka.topic]]
        name = "purchases"
        [[kafka.topic]]
        name = "purchases.dead-letter"
        partitions = 1
        [[subscription]]
        topic = "purchases"
        group = "purchase-consumer-group"
        route = "/deliver"
        dead_letter_topic = "purchases.dead-letter"
    "#;

    /// Two strong, different secrets.
    fn secrets() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("KAFKA_BRIDGE_SECRET", "4a7d1ed414474e4033ac29ccb8653d9b"),
            (
                "KAFKA_BRIDGE_DELIVERY_SECRET",
                "b0f00a0860303ae22b998861bce3b28f",
            ),
        ])
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut env = secrets();
        env.insert("KAFKA_BROKERS", "127.0.0.1:19092");
        let config = Config::parse(FILE, &env).unwrap();
        assert_eq!(config.kafka.brokers, "127.0.0.1:19092");
        assert_eq!(config.secret, secrets()["KAFKA_BRIDGE_SECRET"]);
        assert_eq!(config.kafka.topics[0].partitions, 3);
        assert_eq!(
            config.subscriptions[0].url("http://app:80/"),
            "http://app:80/deliver"
        );
    }

    #[test]
    fn writes_are_durable_unless_configured_otherwise() {
        let env = secrets();
        let durable = &Config::parse(FILE, &env).unwrap().mongodb.write_concern;
        assert_eq!((durable.w.as_str(), durable.journal), ("majority", true));
        let file = format!("{FILE}\n[mongodb.write_concern]\nw = \"1\"\njournal = false\n");
        let relaxed = Config::parse(&file, &env).unwrap().mongodb.write_concern;
        assert_eq!((relaxed.w.as_str(), relaxed.journal), ("1", false));
        let file = format!("{FILE}\n[mongodb.write_concern]\nw = \"most\"\n");
        let error = Config::parse(&file, &env).unwrap_err().to_string();
        assert!(error.contains("write_concern.w"), "{error}");
    }

    #[test]
    fn secret_is_required() {
        let error = Config::parse(FILE, &HashMap::new()).unwrap_err();
        assert!(format!("{error:#}").contains("KAFKA_BRIDGE_SECRET"));
    }

    #[test]
    fn weak_known_or_shared_secrets_are_refused() {
        let strong = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let other = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
        for (api, delivery, expected) in [
            ("dev-secret", other, "KAFKA_BRIDGE_SECRET is a published"),
            (
                strong,
                "Dev-Secret-padded-to-be-long-enough-000000",
                "published",
            ),
            (strong, "short-but-random-9f86d0", "at least 32"),
            (strong, &"a".repeat(40), "one character repeated"),
            (strong, strong, "must differ"),
        ] {
            let env = HashMap::from([
                ("KAFKA_BRIDGE_SECRET", api),
                ("KAFKA_BRIDGE_DELIVERY_SECRET", delivery),
            ]);
            let error = format!("{:#}", Config::parse(FILE, &env).unwrap_err());
            assert!(error.contains(expected), "{api} / {delivery}: {error}");
        }
        let env = HashMap::from([
            ("KAFKA_BRIDGE_SECRET", strong),
            ("KAFKA_BRIDGE_DELIVERY_SECRET", other),
        ]);
        let config = Config::parse(FILE, &env).unwrap();
        assert_eq!(
            (config.secret.as_str(), config.delivery_secret.as_str()),
            (strong, other)
        );
    }

    #[test]
    fn subscriptions_name_declared_topics() {
        let file = FILE.replace(
            "dead_letter_topic = \"purchases.dead-letter\"",
            "dead_letter_topic = \"dlq\"",
        );
        let env = secrets();
        let error = Config::parse(&file, &env).unwrap_err().to_string();
        assert!(error.contains("`dlq` is not declared"), "{error}");
    }
}
