//! The local services as processes: the Kafka-protocol broker, the MongoDB-wire server, the
//! kafka-bridge and the app itself, with the settings that tie them together.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use rand::Rng;
use serde::Deserialize;
use tokio::process::Command;

use crate::process::Service;
use crate::project::Project;

/// The defaults of the bridge's configuration file (`kafka-bridge.toml`), which the local
/// services take, so that a local run needs no override. Other fields are the bridge's own.
#[derive(Debug, Deserialize)]
pub struct BridgeDefaults {
    pub listen: String,
    pub kafka: KafkaDefaults,
    pub mongodb: MongoDefaults,
}

#[derive(Debug, Deserialize)]
pub struct KafkaDefaults {
    pub brokers: String,
}

#[derive(Debug, Deserialize)]
pub struct MongoDefaults {
    pub uri: String,
}

impl BridgeDefaults {
    pub fn read(project: &Project) -> anyhow::Result<Self> {
        let path = project.root.join("kafka-bridge.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// The first bootstrap broker, `host:port`.
    pub fn broker(&self) -> &str {
        self.kafka
            .brokers
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
    }

    /// MongoDB's `host:port`, from a `mongodb://host:port/…` URI.
    pub fn mongodb(&self) -> &str {
        mongodb_address(&self.mongodb.uri)
    }
}

/// `host:port` of a single-host `mongodb://` URI.
fn mongodb_address(uri: &str) -> &str {
    let rest = uri.strip_prefix("mongodb://").unwrap_or(uri);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?', ',']).next().unwrap_or_default()
}

/// tansu, storing in a SQLite file under `<state>/kafka`, so topics, messages and committed
/// offsets survive a restart.
pub fn broker(project: &Project, address: &str) -> anyhow::Result<Service> {
    let dir = project.state.join("kafka");
    std::fs::create_dir_all(&dir)?;
    let mut command = broker_command(project, address, "sqlite://tansu.db");
    command.current_dir(&dir);
    Service::spawn("kafka", command.into(), Some(&project.log("kafka")))
}

/// tansu's command line: a broker on `address` (`host:port`), storing at `storage`
/// (`sqlite://file` relative to its working directory, or `memory://tansu/`, as the tests do).
pub fn broker_command(project: &Project, address: &str, storage: &str) -> std::process::Command {
    let url = format!("tcp://{address}");
    let mut command = std::process::Command::new(project.tansu());
    command.args(["broker", "--storage-engine", storage]).args([
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
    ]);
    command
}

/// SecantusDB, storing under `<state>/mongodb`.
pub fn mongodb(project: &Project, address: &str) -> anyhow::Result<Service> {
    let dir = project.state.join("mongodb");
    std::fs::create_dir_all(&dir)?;
    let mut command = mongodb_command(project, address, &dir)?;
    command.current_dir(&dir);
    Service::spawn("mongodb", command.into(), Some(&project.log("mongodb")))
}

/// SecantusDB's command line: a server on `address` (`host:port`), storing under `dir`.
pub fn mongodb_command(
    project: &Project,
    address: &str,
    dir: &Path,
) -> anyhow::Result<std::process::Command> {
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("no port in the MongoDB address {address}"))?;
    let mut command = std::process::Command::new(project.secantusd());
    command
        .args(["--host", host, "--port", port, "--storage-path"])
        .arg(dir);
    Ok(command)
}

/// What the bridge connects: the broker, MongoDB, the app, and the two secrets it shares with it.
pub struct BridgeSettings<'a> {
    pub listen: &'a str,
    pub brokers: &'a str,
    pub mongodb_uri: &'a str,
    pub app: SocketAddr,
    pub secret: &'a str,
    pub delivery_secret: &'a str,
}

/// The kafka-bridge, with the project's `kafka-bridge.toml` and `settings` from the environment
/// it reads (`KAFKA_BROKERS`, `MONGODB_URI`, …).
pub fn bridge(
    project: &Project,
    bin_dir: &Path,
    settings: &BridgeSettings,
) -> anyhow::Result<Service> {
    let mut command = Command::new(bin_dir.join("kafka-bridge"));
    command
        .args(["--config", "kafka-bridge.toml"])
        .env("KAFKA_BRIDGE_LISTEN", settings.listen)
        .env("KAFKA_BROKERS", settings.brokers)
        .env("MONGODB_URI", settings.mongodb_uri)
        .env(
            "KAFKA_BRIDGE_COMPONENTS_URL",
            format!("http://{}", settings.app),
        )
        .env("KAFKA_BRIDGE_SECRET", settings.secret)
        .env("KAFKA_BRIDGE_DELIVERY_SECRET", settings.delivery_secret)
        .current_dir(&project.root);
    Service::spawn("kafka-bridge", command, Some(&project.log("kafka-bridge")))
}

/// The app: `spinyard up` on the project's `spin.toml`, its output (the components' JSON log
/// lines) on the terminal as `spin up` shows it. `variables` are `SPIN_VARIABLE_*` settings
/// that tie it to the local services; `extra` are more `spinyard up` flags.
pub fn app(
    project: &Project,
    bin_dir: &Path,
    listen: SocketAddr,
    variables: &[(String, String)],
    extra: &[String],
) -> anyhow::Result<Service> {
    let mut command = Command::new(bin_dir.join("spinyard"));
    command
        .args(["up", "--from", "spin.toml", "--listen", &listen.to_string()])
        .args(extra)
        .envs(variables.iter().map(|(k, v)| (k, v)))
        .current_dir(&project.root);
    Service::spawn("app", command, None)
}

/// A secret the local bridge and the app share: generated on first use (32 random bytes,
/// hex) into `<state>/<file>`, readable by its owner only, and kept.
pub fn secret(project: &Project, file: &str) -> anyhow::Result<String> {
    let path = project.state.join(file);
    if let Ok(secret) = std::fs::read_to_string(&path)
        && !secret.trim().is_empty()
    {
        return Ok(secret.trim().to_owned());
    }
    let bytes: [u8; 32] = rand::rng().random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(&project.state)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(secret.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongodb_addresses_come_from_single_host_uris() {
        assert_eq!(
            mongodb_address("mongodb://127.0.0.1:27017"),
            "127.0.0.1:27017"
        );
        assert_eq!(
            mongodb_address("mongodb://user:p%40ss@db:27018/purchase_db?authSource=admin"),
            "db:27018"
        );
    }

    #[test]
    fn the_secret_is_generated_once_private_and_kept() {
        let state = tempfile::tempdir().unwrap();
        let project = Project {
            root: state.path().to_owned(),
            state: state.path().join("state"),
        };
        let first = secret(&project, "kafka-bridge.secret").unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(secret(&project, "kafka-bridge.secret").unwrap(), first);
        assert_ne!(
            secret(&project, "kafka-bridge-delivery.secret").unwrap(),
            first
        );
        let mode = std::fs::metadata(project.state.join("kafka-bridge.secret"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let other = Project {
            root: state.path().to_owned(),
            state: state.path().join("other"),
        };
        assert_ne!(
            secret(&other, "kafka-bridge.secret").unwrap(),
            first,
            "each state directory has its own"
        );
    }

    #[test]
    fn the_defaults_are_the_bridge_files() {
        let defaults = BridgeDefaults::read(&Project::locate().unwrap()).unwrap();
        assert_eq!(defaults.broker(), "127.0.0.1:9092");
        assert_eq!(defaults.mongodb(), "127.0.0.1:27017");
        assert_eq!(defaults.listen, "127.0.0.1:3100");
    }
}
