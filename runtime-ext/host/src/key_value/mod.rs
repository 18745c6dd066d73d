//! Key-value stores: `spin:key-value@3.0.0` ([`spin`]) and `wasi:keyvalue@0.2.0-draft2`
//! ([`wasi`]) over labelled stores, each a [`Store`]: SQLite ([`sqlite`], type `spin`) or Redis
//! ([`redis`]).
//!
//! A component may open only the labels in its `key_value_stores`; every such label must be
//! defined (`default` always is), or the app does not start, as under Spin.

mod redis;
mod spin;
mod sqlite;
mod wasi;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::bail;
use futures::future::BoxFuture;
use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::bindings::key_value as wit;
use crate::bindings::wasi_keyvalue;
use crate::manifest::Component;
use crate::runtime_config::KeyValueStoreConfig;

use self::redis::RedisStore;
use self::sqlite::SqliteStore;
// The guest's resources, named by the bindings.
pub use self::spin::OpenStore;
pub use self::wasi::{Bucket, Cas};

/// A key with its value, `None` for a key the store lacks.
pub type Lookup = (String, Option<Vec<u8>>);

/// A store backend: what both interfaces do with an open store. Each call is one operation
/// on the backend; futures are boxed so that the app's stores are one `dyn Store` map.
pub trait Store: Send + Sync {
    fn get(&self, key: String) -> BoxFuture<'_, anyhow::Result<Option<Vec<u8>>>>;
    fn set(&self, key: String, value: Vec<u8>) -> BoxFuture<'_, anyhow::Result<()>>;
    fn delete(&self, key: String) -> BoxFuture<'_, anyhow::Result<()>>;
    fn exists(&self, key: String) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// Every key of the store.
    fn keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    /// Adds `delta` to the counter at `key` (absent: 0), atomically; the new value.
    fn increment(&self, key: String, delta: i64) -> BoxFuture<'_, anyhow::Result<i64>>;
    /// Every key with its value.
    fn get_many(&self, keys: Vec<String>) -> BoxFuture<'_, anyhow::Result<Vec<Lookup>>>;
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> BoxFuture<'_, anyhow::Result<()>>;
    fn delete_many(&self, keys: Vec<String>) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Sets `key` to `new` only if it still holds `expected` (`None`: absent), atomically;
    /// whether it did.
    fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> BoxFuture<'_, anyhow::Result<bool>>;
}

/// Every store some component uses, opened once at start-up.
pub type Stores = HashMap<String, Arc<dyn Store>>;

/// Opens the stores named by any component's `key_value_stores`.
pub async fn open_stores(
    components: &BTreeMap<String, Component>,
    configured: &BTreeMap<String, KeyValueStoreConfig>,
) -> anyhow::Result<Stores> {
    let mut stores = Stores::new();
    for (id, component) in components {
        for label in &component.key_value_stores {
            if stores.contains_key(label) {
                continue;
            }
            let Some(config) = configured.get(label) else {
                bail!(
                    "component `{id}`: field `key_value_stores`: unknown label `{label}` \
                     (define it in the runtime config as `[key_value_store.{label}]`)"
                );
            };
            let store: Arc<dyn Store> = match config {
                KeyValueStoreConfig::Spin { path } => {
                    Arc::new(SqliteStore::open(label, path.as_deref())?)
                }
                KeyValueStoreConfig::Redis { url } => Arc::new(RedisStore::connect(url).await?),
            };
            stores.insert(label.clone(), store);
        }
    }
    Ok(stores)
}

/// Links `spin:key-value` and `wasi:keyvalue` (store, atomics, batch); `view` is an instance's
/// [`KeyValueView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, KeyValueHost>(linker, view)?;
    wasi_keyvalue::store::add_to_linker::<_, KeyValueHost>(linker, view)?;
    wasi_keyvalue::atomics::add_to_linker::<_, KeyValueHost>(linker, view)?;
    wasi_keyvalue::batch::add_to_linker::<_, KeyValueHost>(linker, view)?;
    Ok(())
}

/// A component's key-value access: its allowed labels and the app's stores.
#[derive(Clone)]
pub struct KeyValueAccess {
    allowed: Arc<HashSet<String>>,
    stores: Arc<Stores>,
}

impl KeyValueAccess {
    /// The access of a component whose `key_value_stores` are `labels`.
    pub fn new(labels: &[String], stores: Arc<Stores>) -> Self {
        Self {
            allowed: Arc::new(labels.iter().cloned().collect()),
            stores,
        }
    }

    /// The store behind `label`, if this component may open it.
    fn open(&self, label: &str) -> Result<Arc<dyn Store>, OpenError> {
        if !self.allowed.contains(label) {
            return Err(OpenError::AccessDenied);
        }
        self.stores
            .get(label)
            .cloned()
            .ok_or(OpenError::NoSuchStore)
    }
}

/// Why a label cannot be opened; both interfaces report these as their own error variants.
#[derive(Debug, PartialEq)]
enum OpenError {
    AccessDenied,
    NoSuchStore,
}

/// What a request's store exposes to the key-value host functions.
pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub access: &'a KeyValueAccess,
}

/// The `HasData` marker the bindings are implemented on.
pub struct KeyValueHost;

impl HasData for KeyValueHost {
    type Data<'a> = KeyValueView<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_store(label: &str) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(label, None).unwrap())
    }

    fn access(labels: &[&str], stores: &[&str]) -> KeyValueAccess {
        let labels: Vec<String> = labels.iter().map(|label| label.to_string()).collect();
        let stores = stores
            .iter()
            .map(|label| (label.to_string(), memory_store(label)))
            .collect();
        KeyValueAccess::new(&labels, Arc::new(stores))
    }

    fn component(labels: &[&str]) -> Component {
        toml::from_str(&format!(
            "source = \"app.wasm\"\nkey_value_stores = {labels:?}"
        ))
        .unwrap()
    }

    #[test]
    fn a_component_opens_only_the_labels_it_lists() {
        let access = access(&["default"], &["default", "cache"]);
        assert!(access.open("default").is_ok());
        assert_eq!(access.open("cache").err(), Some(OpenError::AccessDenied));
        assert_eq!(access.open("unknown").err(), Some(OpenError::AccessDenied));
    }

    #[test]
    fn a_listed_label_without_a_store_is_no_such_store() {
        let access = access(&["default", "gone"], &["default"]);
        assert_eq!(access.open("gone").err(), Some(OpenError::NoSuchStore));
    }

    #[test]
    fn both_interfaces_report_their_own_variants() {
        use crate::bindings::wasi_keyvalue::store;
        assert!(matches!(
            wit::Error::from(OpenError::AccessDenied),
            wit::Error::AccessDenied
        ));
        assert!(matches!(
            wit::Error::from(OpenError::NoSuchStore),
            wit::Error::NoSuchStore
        ));
        assert!(matches!(
            store::Error::from(OpenError::AccessDenied),
            store::Error::AccessDenied
        ));
        assert!(matches!(
            store::Error::from(OpenError::NoSuchStore),
            store::Error::NoSuchStore
        ));
    }

    #[tokio::test]
    async fn each_label_is_opened_once_and_shared() {
        let components = BTreeMap::from([
            ("a".to_string(), component(&["default", "cache"])),
            ("b".to_string(), component(&["cache"])),
            ("c".to_string(), component(&[])),
        ]);
        let configured = BTreeMap::from([
            (
                "default".to_string(),
                KeyValueStoreConfig::Spin { path: None },
            ),
            (
                "cache".to_string(),
                KeyValueStoreConfig::Spin { path: None },
            ),
            (
                "unused".to_string(),
                KeyValueStoreConfig::Spin { path: None },
            ),
        ]);
        let stores = Arc::new(open_stores(&components, &configured).await.unwrap());
        let mut labels: Vec<_> = stores.keys().map(String::as_str).collect();
        labels.sort_unstable();
        assert_eq!(
            labels,
            ["cache", "default"],
            "only the labels a component lists"
        );

        let a = KeyValueAccess::new(&components["a"].key_value_stores, stores.clone());
        let b = KeyValueAccess::new(&components["b"].key_value_stores, stores.clone());
        a.open("cache")
            .unwrap()
            .set("k".into(), b"v".to_vec())
            .await
            .unwrap();
        let seen = b.open("cache").unwrap().get("k".into()).await.unwrap();
        assert_eq!(seen.as_deref(), Some(&b"v"[..]), "one store behind a label");
        assert_eq!(b.open("default").err(), Some(OpenError::AccessDenied));
    }

    #[tokio::test]
    async fn a_label_the_runtime_config_lacks_stops_the_app() {
        let components = BTreeMap::from([("web".to_string(), component(&["sessions"]))]);
        let configured = BTreeMap::from([(
            "default".to_string(),
            KeyValueStoreConfig::Spin { path: None },
        )]);
        let error = open_stores(&components, &configured).await.err().unwrap();
        let message = format!("{error:#}");
        assert!(
            message.contains("component `web`")
                && message.contains("unknown label `sessions`")
                && message.contains("[key_value_store.sessions]"),
            "{message}"
        );
    }
}
