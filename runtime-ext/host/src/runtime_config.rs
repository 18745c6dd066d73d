//! `runtime-config.toml`: where key-value stores live, as `spin up --runtime-config-file` reads it.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                     # SQLite; `path` relative to this file
//! path = ".spin/kv.db"
//!
//! [key_value_store.cache]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Where Spin keeps the default store, relative to the app directory.
pub const DEFAULT_KV_PATH: &str = ".spin/sqlite_key_value.db";

/// The label every app gets without configuration.
pub const DEFAULT_STORE_LABEL: &str = "default";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeConfigFile {
    #[serde(default)]
    key_value_store: BTreeMap<String, KeyValueStoreConfig>,
}

/// One `[key_value_store.<label>]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeyValueStoreConfig {
    /// SQLite; without `path`, an in-memory database (as Spin).
    Spin {
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
}

/// Every key-value store label the app can open, with its backend.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, KeyValueStoreConfig>,
}

impl RuntimeConfig {
    /// The default store in `app_dir`, plus (and overridden by) what `file` declares.
    pub fn load(app_dir: &Path, file: Option<&Path>) -> anyhow::Result<Self> {
        let mut key_value_stores = BTreeMap::from([(
            DEFAULT_STORE_LABEL.to_string(),
            KeyValueStoreConfig::Spin {
                path: Some(app_dir.join(DEFAULT_KV_PATH)),
            },
        )]);
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read runtime config {}", file.display()))?;
            let parsed: RuntimeConfigFile = toml::from_str(&text)
                .with_context(|| format!("invalid runtime config {}", file.display()))?;
            let base = file.parent().unwrap_or(Path::new("."));
            for (label, mut store) in parsed.key_value_store {
                if let KeyValueStoreConfig::Spin { path: Some(path) } = &mut store
                    && path.is_relative()
                {
                    *path = base.join(&*path);
                }
                key_value_stores.insert(label, store);
            }
        }
        Ok(Self { key_value_stores })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_default_and_resolves_paths_against_itself() {
        let dir = std::env::temp_dir().join(format!("spinyard-rc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("runtime-config.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"spin\"\npath = \"data/kv.db\"\n\
             [key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
        )
        .unwrap();
        let config = RuntimeConfig::load(Path::new("/app"), Some(&file)).unwrap();
        assert_eq!(
            config.key_value_stores["default"],
            KeyValueStoreConfig::Spin {
                path: Some(dir.join("data/kv.db"))
            }
        );
        assert!(matches!(
            config.key_value_stores["cache"],
            KeyValueStoreConfig::Redis { .. }
        ));

        std::fs::write(&file, "[key_value_store.x]\ntype = \"dynamo\"\n").unwrap();
        let error = format!(
            "{:#}",
            RuntimeConfig::load(Path::new("/app"), Some(&file)).unwrap_err()
        );
        assert!(error.contains("dynamo"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_store_lives_under_dot_spin() {
        let config = RuntimeConfig::load(Path::new("/app"), None).unwrap();
        assert_eq!(
            config.key_value_stores["default"],
            KeyValueStoreConfig::Spin {
                path: Some(PathBuf::from("/app/.spin/sqlite_key_value.db"))
            }
        );
    }
}
