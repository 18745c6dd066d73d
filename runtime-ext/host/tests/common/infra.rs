//! Real servers for the Kafka / MongoDB tests, one set per test so a test can stop and restart
//! them: a Kafka-protocol broker (tansu, memory storage), a MongoDB-wire server (SecantusDB),
//! the kafka-bridge, and the host serving the app's own `spin.toml`.
//! `cargo dev setup` installs the servers (runtime-ext/dev); `scripts/test.sh` runs it.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spinyard_dev::project::Project;
use spinyard_dev::services;

use super::{Host, pg_port, start, workspace_root};

/// The secret components send the bridge in tests (`KAFKA_BRIDGE_SECRET`).
pub const SECRET: &str = "0d5f1c2e9a7b4c3d8e6f0a1b2c3d4e5f";
/// The secret the bridge's deliveries carry in tests (`KAFKA_BRIDGE_DELIVERY_SECRET`).
pub const DELIVERY_SECRET: &str = "7e3a9c1f5b2d8e4a6c0f1b3d5e7a9c2b";

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The project, once `tool` is installed (`cargo dev setup`).
fn installed(tool: fn(&Project) -> PathBuf) -> Project {
    let project = Project::locate().unwrap();
    let path = tool(&project);
    assert!(
        path.exists(),
        "{} is missing: run `cargo dev setup` (scripts/test.sh does)",
        path.display()
    );
    project
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process, killed when dropped, its output in a log file.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(mut command: Command, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        Self { child }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on a fixed port that a test may stop and start again.
pub struct Server {
    pub port: u16,
    name: &'static str,
    command: Box<dyn Fn() -> Command + Send>,
    log: PathBuf,
    process: Option<Process>,
}

impl Server {
    fn new(name: &'static str, port: u16, command: Box<dyn Fn() -> Command + Send>) -> Self {
        let log = std::env::temp_dir().join(format!("spinyard-{name}-{port}.log"));
        let mut server = Self {
            port,
            name,
            command,
            log,
            process: None,
        };
        server.start();
        server
    }

    pub fn start(&mut self) {
        self.process = Some(Process::spawn((self.command)(), &self.log));
        wait_for_port(self.port, self.name, &self.log);
    }

    /// Kills the server, as a crash or a lost node would.
    pub fn stop(&mut self) {
        self.process = None;
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// tansu, a Kafka-protocol broker, storing in memory (a restart starts empty), started as
/// `cargo dev` starts it.
pub fn broker() -> Server {
    let port = free_port();
    let project = installed(Project::tansu);
    Server::new(
        "tansu",
        port,
        Box::new(move || {
            services::broker_command(&project, &format!("127.0.0.1:{port}"), "memory://tansu/")
        }),
    )
}

/// tansu storing in a SQLite file in `dir`, so that a restart keeps topics, messages and
/// committed offsets (as `cargo dev` runs it).
pub fn persistent_broker(dir: &Path) -> Server {
    let port = free_port();
    let project = installed(Project::tansu);
    let dir = dir.to_owned();
    Server::new(
        "tansu",
        port,
        Box::new(move || {
            let mut command = services::broker_command(
                &project,
                &format!("127.0.0.1:{port}"),
                "sqlite://tansu.db",
            );
            command.current_dir(&dir);
            command
        }),
    )
}

/// SecantusDB, a MongoDB-wire server, storing in a directory that survives its restarts,
/// started as `cargo dev` starts it.
pub fn mongo() -> (Server, tempfile::TempDir) {
    let port = free_port();
    let storage = tempfile::tempdir().unwrap();
    let path = storage.path().to_owned();
    let project = installed(Project::secantusd);
    let server = Server::new(
        "secantus",
        port,
        Box::new(move || {
            services::mongodb_command(&project, &format!("127.0.0.1:{port}"), &path).unwrap()
        }),
    );
    (server, storage)
}

/// Debian's `redis-server` (`cargo dev setup` installs it), in memory only.
pub fn redis() -> Server {
    let port = free_port();
    assert!(
        Path::new("/usr/bin/redis-server").exists(),
        "redis-server is missing: run `cargo dev setup` (scripts/test.sh does)"
    );
    Server::new(
        "redis",
        port,
        Box::new(move || {
            let mut command = Command::new("/usr/bin/redis-server");
            command.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
            command.args(["--save", "", "--appendonly", "no"]);
            command
        }),
    )
}

/// The kafka-bridge binary with a configuration written for the test.
pub struct Bridge {
    pub base: String,
    pub port: u16,
    config: PathBuf,
    /// Its `KAFKA_BRIDGE_SECRET` and `KAFKA_BRIDGE_DELIVERY_SECRET`: [`SECRET`] and
    /// [`DELIVERY_SECRET`] unless a test changes them.
    secrets: (String, String),
    process: Option<Process>,
    pub log: PathBuf,
}

/// The bridge configuration the tests use: the app's topics, collection and subscriptions,
/// with short timeouts so outages show quickly.
pub fn bridge_config(broker: &Server, mongo: &Server, port: u16, components_url: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:{port}"
components_url = "{components_url}"

[kafka]
brokers = "{broker}"
produce_timeout_ms = 3000
session_timeout_ms = 6000

# One message per record batch. tansu 0.6 answers a fetch from an offset inside a record batch
# with the batches after it (tansu-storage dynostore.rs, `offsets.split_off(&offset)`), where
# Kafka returns the batch that holds it: a consumer resuming from an offset committed mid-batch
# (a bridge restart, a rebalance) would never see the rest of that batch.
[kafka.client]
"batch.num.messages" = "1"

[[kafka.topic]]
name = "purchases"
partitions = 3

[[kafka.topic]]
name = "purchases.dead-letter"
partitions = 1

[[kafka.topic]]
name = "simple-time-events"
partitions = 1

[[kafka.topic]]
name = "simple-time-events.dead-letter"
partitions = 1

[mongodb]
uri = "mongodb://{mongo}"

[[mongodb.collection]]
database = "purchase_db"
name = "purchases"
key = "purchase_id"
indexes = ["userid"]

[[subscription]]
topic = "purchases"
group = "purchase-consumer-group"
route = "/customer-management-api/kafka/purchases"
dead_letter_topic = "purchases.dead-letter"
max_attempts = 3

[[subscription]]
topic = "simple-time-events"
group = "simple-time-group"
route = "/time-service/kafka/events"
dead_letter_topic = "simple-time-events.dead-letter"
max_attempts = 3
"#,
        broker = broker.address(),
        mongo = mongo.address(),
    )
}

impl Bridge {
    pub fn start(config: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("kafka-bridge.toml");
        std::fs::write(&path, config).unwrap();
        let mut bridge = Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            config: path,
            secrets: (SECRET.into(), DELIVERY_SECRET.into()),
            process: None,
            log: dir.join("kafka-bridge.log"),
        };
        bridge.restart();
        bridge
    }

    /// Restarts the bridge with settings replaced in its configuration: `(from, to)`.
    pub fn restart_with(&mut self, replace: &[(&str, &str)]) {
        let mut config = std::fs::read_to_string(&self.config).unwrap();
        for (from, to) in replace {
            assert!(
                config.contains(from),
                "`{from}` is not in the bridge's configuration"
            );
            config = config.replace(from, to);
        }
        std::fs::write(&self.config, config).unwrap();
        self.restart();
    }

    /// Restarts the bridge with these as its `KAFKA_BRIDGE_SECRET` and
    /// `KAFKA_BRIDGE_DELIVERY_SECRET`.
    pub fn restart_with_secrets(&mut self, secret: &str, delivery_secret: &str) {
        self.secrets = (secret.into(), delivery_secret.into());
        self.restart();
    }

    /// (Re)starts the bridge and waits until it serves.
    pub fn restart(&mut self) {
        self.process = None;
        let binary = workspace_root().join("target/debug/kafka-bridge");
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build -p kafka-bridge` (scripts/test.sh does)",
            binary.display()
        );
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(&self.config)
            .env("KAFKA_BRIDGE_SECRET", &self.secrets.0)
            .env("KAFKA_BRIDGE_DELIVERY_SECRET", &self.secrets.1)
            .env("RUST_LOG", "info,rdkafka=warn");
        let log = std::fs::File::create(&self.log).unwrap();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawning kafka-bridge");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Serving ") {
                    let _ = tx.send(());
                }
            }
        });
        self.process = Some(Process { child });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "kafka-bridge did not start: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
    }

    /// What the running bridge has logged (each restart starts a new log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the bridge (SIGKILL), as a crash or a lost node would.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Stops the bridge as an orchestrator does (SIGTERM) and waits for it to exit; returns how
    /// long it took and its exit status.
    pub fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut process = self.process.take().expect("the bridge runs");
        let started = Instant::now();
        let pid = process.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        loop {
            if let Some(status) = process.child.try_wait().unwrap() {
                return (started.elapsed(), status);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the bridge did not exit after SIGTERM: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /health/ready`: its status and report.
    pub async fn readiness(&self) -> (u16, serde_json::Value) {
        let response = reqwest::get(format!("{}/health/ready", self.base))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The bridge's Prometheus text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The sum of the series of `name` whose labels include `labels`; panics when the bridge
    /// exposes no such series (a "stays 0" check must not pass on a missing one).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.metrics().await;
        super::exposition::sum(&text, name, labels)
            .unwrap_or_else(|| panic!("the bridge exposes no {name} with {labels:?}:\n{text}"))
    }

    /// Waits until the bridge has counted at least `count` deliveries its components refused as
    /// unavailable (the subscriptions paused).
    pub async fn refused_deliveries(&self, count: f64) {
        eventually(Duration::from_secs(30), "refused deliveries", || async {
            let refused = self
                .metric(
                    "kafka_bridge_deliveries_total",
                    &[("result", "unavailable")],
                )
                .await;
            (refused >= count).then_some(())
        })
        .await;
    }

    /// Calls the bridge's API with the shared secret.
    pub async fn call(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = super::client()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.secrets.0)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// The whole purchase and event pipeline: broker, MongoDB, the host serving `spin.toml`, and
/// the bridge delivering to it.
pub struct Pipeline {
    pub broker: Server,
    pub mongo: Server,
    _mongo_storage: tempfile::TempDir,
    pub host: Host,
    pub bridge: Bridge,
}

/// How a test's pipeline differs from the default.
pub struct Options<'a> {
    /// The app's `kafka_bridge_secret` (the bridge keeps [`SECRET`]).
    pub app_secret: &'a str,
    /// The app's `kafka_bridge_delivery_secret` (the bridge keeps [`DELIVERY_SECRET`]).
    pub app_delivery_secret: &'a str,
    /// Further variables for the app.
    pub app_env: &'a [(&'a str, &'a str)],
    /// Lines added to the bridge's configuration, at its top level.
    pub bridge_settings: &'a str,
    /// Settings replaced in the bridge's configuration: `(from, to)`.
    pub bridge_replace: &'a [(&'a str, &'a str)],
    /// A broker that keeps its data across restarts, in this folder (memory storage otherwise).
    pub broker_storage: Option<&'a Path>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            app_secret: SECRET,
            app_delivery_secret: DELIVERY_SECRET,
            app_env: &[],
            bridge_settings: "",
            bridge_replace: &[],
            broker_storage: None,
        }
    }
}

impl Pipeline {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// The pipeline with the app given other secrets than the bridge's (which keeps
    /// [`SECRET`] and [`DELIVERY_SECRET`]), to test a misconfigured deployment.
    pub fn start_with_app_secrets(app_secret: &str, app_delivery_secret: &str) -> Self {
        Self::start_with(Options {
            app_secret,
            app_delivery_secret,
            ..Options::default()
        })
    }

    pub fn start_with(options: Options<'_>) -> Self {
        let app_secret = options.app_secret;
        let broker = match options.broker_storage {
            Some(dir) => persistent_broker(dir),
            None => broker(),
        };
        let (mongo, mongo_storage) = mongo();
        let bridge_port = free_port();
        let bridge_address = format!("127.0.0.1:{bridge_port}");
        let pg_port = pg_port().to_string();
        let mut env = vec![
            (
                "SPIN_VARIABLE_KAFKA_BRIDGE_ADDRESS",
                bridge_address.as_str(),
            ),
            ("SPIN_VARIABLE_KAFKA_BRIDGE_SECRET", app_secret),
            (
                "SPIN_VARIABLE_KAFKA_BRIDGE_DELIVERY_SECRET",
                options.app_delivery_secret,
            ),
            ("SPIN_VARIABLE_TIME_EVENTS_DB_PORT", pg_port.as_str()),
            ("SPIN_VARIABLE_POD_NAME", "test-pod"),
            ("SPIN_VARIABLE_POD_IP", "10.0.0.5"),
        ];
        env.extend_from_slice(options.app_env);
        let host = start(&workspace_root().join("spin.toml"), &[], &env);
        let mut config = format!(
            "{}\n{}",
            options.bridge_settings,
            bridge_config(&broker, &mongo, bridge_port, &host.base)
        );
        for (from, to) in options.bridge_replace {
            assert!(
                config.contains(from),
                "`{from}` is not in the bridge's configuration"
            );
            config = config.replace(from, to);
        }
        let bridge = Bridge::start(&config, bridge_port);
        Self {
            broker,
            mongo,
            _mongo_storage: mongo_storage,
            host,
            bridge,
        }
    }
}

impl Pipeline {
    /// Messages of `topic` from its start, with their `dead-letter-reason` headers (joined by
    /// "; ", empty when absent), read until there are `count` or `within` has passed.
    pub fn read_topic(
        &self,
        topic: &str,
        count: usize,
        within: Duration,
    ) -> Vec<(Vec<u8>, String)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.broker.address())
            .set("group.id", format!("reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut messages = Vec::new();
        let deadline = Instant::now() + within;
        while messages.len() < count && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                let reasons: Vec<String> = message
                    .headers()
                    .into_iter()
                    .flat_map(|h| h.iter())
                    .filter(|h| h.key == "dead-letter-reason")
                    .filter_map(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                let reason = reasons.join("; ");
                messages.push((message.payload().unwrap_or_default().to_vec(), reason));
            }
        }
        messages
    }

    /// The state of consumer group `group` and its members' ids, as the broker sees them.
    pub fn group(&self, group: &str) -> (String, Vec<String>) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.broker.address())
            .create()
            .unwrap();
        let list = reader
            .fetch_group_list(Some(group), Duration::from_secs(5))
            .unwrap();
        let info = &list.groups()[0];
        let members = info.members().iter().map(|m| m.id().to_owned()).collect();
        (info.state().to_owned(), members)
    }

    /// Per partition of `topic`: the offset `group` has committed (-1 for none) and the
    /// partition's end, read by a client of the test's own that never joins the group.
    pub fn offsets(&self, group: &str, topic: &str) -> Vec<(i64, i64)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.broker.address())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let timeout = Duration::from_secs(5);
        let metadata = reader.fetch_metadata(Some(topic), timeout).unwrap();
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        let committed = reader.committed_offsets(list, timeout).unwrap();
        (0..partitions)
            .map(|partition| {
                let at = committed.find_partition(topic, partition).unwrap().offset();
                let (_, end) = reader.fetch_watermarks(topic, partition, timeout).unwrap();
                (at.to_raw().unwrap_or(-1), end)
            })
            .collect()
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
