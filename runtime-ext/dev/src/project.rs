//! Where things are: the checkout, the state directory and the tools installed into `target/`.

use std::path::{Path, PathBuf};

/// The checkout `cargo dev` runs from, and where it keeps state.
#[derive(Debug, Clone)]
pub struct Project {
    /// The workspace root: `spin.toml`, `kafka-bridge.toml`, `db/`.
    pub root: PathBuf,
    /// Data, logs and the bridge's secret of the local services: `.spinyard/`, or
    /// `$SPINYARD_DEV_DIR`. Kept across runs (and across `cargo clean`).
    pub state: PathBuf,
}

impl Project {
    /// The checkout this binary was built from, which is where `cargo dev` runs it.
    pub fn locate() -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()?;
        let state = match std::env::var_os("SPINYARD_DEV_DIR") {
            Some(dir) => std::path::absolute(dir)?,
            None => root.join(".spinyard"),
        };
        Ok(Self { root, state })
    }

    /// The log file of a local service.
    pub fn log(&self, service: &str) -> PathBuf {
        self.state.join("logs").join(format!("{service}.log"))
    }

    /// Where `cargo install` puts the tools (`setup::tansu`).
    pub fn tools(&self) -> PathBuf {
        self.root.join("target/tools")
    }

    /// The Kafka-protocol broker the tests and local development start.
    pub fn tansu(&self) -> PathBuf {
        self.tools().join("bin/tansu")
    }

    /// SecantusDB's own Python environment (`setup::secantus`).
    pub fn mongo_venv(&self) -> PathBuf {
        self.root.join("target/mongo-venv")
    }

    /// The MongoDB-wire server the tests and local development start.
    pub fn secantusd(&self) -> PathBuf {
        self.mongo_venv().join("bin/secantusd-py")
    }

    /// `path` as a reader wants it: relative to the checkout when inside it.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}
