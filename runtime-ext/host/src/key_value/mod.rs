//! `spin:key-value@3.0.0` (here) and `wasi:keyvalue@0.2.0-draft2` ([`wasi`]): labelled stores
//! backed by SQLite (`spin`) or Redis.
//!
//! A component may open only the labels in its `key_value_stores`; every such label must be
//! defined (`default` always is), or the app does not start, as under Spin.

mod redis;
mod sqlite;
mod wasi;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::bail;
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

use crate::bindings::key_value as wit;
use crate::bindings::wasi_keyvalue;
use crate::manifest::Component;
use crate::runtime_config::KeyValueStoreConfig;

pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;
pub use self::wasi::{Bucket, Cas};

/// A store backend.
#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Redis(RedisStore),
}

impl Backend {
    async fn get(&self, key: String) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Self::Sqlite(store) => store.get(key).await,
            Self::Redis(store) => store.get(key).await,
        }
    }

    async fn set(&self, key: String, value: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(store) => store.set(key, value).await,
            Self::Redis(store) => store.set(key, value).await,
        }
    }

    async fn delete(&self, key: String) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete(key).await,
            Self::Redis(store) => store.delete(key).await,
        }
    }

    async fn exists(&self, key: String) -> anyhow::Result<bool> {
        match self {
            Self::Sqlite(store) => store.exists(key).await,
            Self::Redis(store) => store.exists(key).await,
        }
    }

    async fn keys(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Self::Sqlite(store) => store.keys().await,
            Self::Redis(store) => store.keys().await,
        }
    }

    async fn increment(&self, key: String, delta: i64) -> anyhow::Result<i64> {
        match self {
            Self::Sqlite(store) => store.increment(key, delta).await,
            Self::Redis(store) => store.increment(key, delta).await,
        }
    }

    async fn get_many(&self, keys: Vec<String>) -> anyhow::Result<Vec<(String, Option<Vec<u8>>)>> {
        match self {
            Self::Sqlite(store) => store.get_many(keys).await,
            Self::Redis(store) => store.get_many(keys).await,
        }
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(store) => store.set_many(entries).await,
            Self::Redis(store) => store.set_many(entries).await,
        }
    }

    async fn delete_many(&self, keys: Vec<String>) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_many(keys).await,
            Self::Redis(store) => store.delete_many(keys).await,
        }
    }

    async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> anyhow::Result<bool> {
        match self {
            Self::Sqlite(store) => store.swap(key, expected, new).await,
            Self::Redis(store) => store.swap(key, expected, new).await,
        }
    }
}

/// Every store some component uses, opened once at start-up.
pub type Stores = HashMap<String, Backend>;

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
            let backend = match config {
                KeyValueStoreConfig::Spin { path } => {
                    Backend::Sqlite(SqliteStore::open(label, path.as_deref())?)
                }
                KeyValueStoreConfig::Redis { url } => {
                    Backend::Redis(RedisStore::connect(url).await?)
                }
            };
            stores.insert(label.clone(), backend);
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

/// An open store handed to the guest as a `store` resource.
pub struct OpenStore {
    backend: Backend,
}

/// A component's key-value access: its allowed labels and the app's stores.
#[derive(Clone)]
pub struct KeyValueAccess {
    allowed: Arc<HashSet<String>>,
    stores: Arc<Stores>,
}

impl KeyValueAccess {
    pub fn new(component: &Component, stores: Arc<Stores>) -> Self {
        Self {
            allowed: Arc::new(component.key_value_stores.iter().cloned().collect()),
            stores,
        }
    }

    /// The store behind `label`, if this component may open it.
    fn backend(&self, label: &str) -> Result<Backend, OpenError> {
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

impl wit::Host for KeyValueView<'_> {}

impl wit::HostStore for KeyValueView<'_> {
    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

fn other(error: anyhow::Error) -> wit::Error {
    wit::Error::Other(format!("{error:#}"))
}

/// The backend behind a guest's handle; an unknown handle is a guest bug and traps.
fn backend_of<T>(
    accessor: &Accessor<T, KeyValueHost>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<Backend> {
    accessor.with(|mut access| Ok(access.get().table.get(store)?.backend.clone()))
}

impl<T> wit::HostStoreWithStore<T> for KeyValueHost {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, wit::Error>> {
        accessor.with(|mut access| {
            let view = access.get();
            let backend = match view.access.backend(&label) {
                Ok(backend) => backend,
                Err(OpenError::AccessDenied) => return Ok(Err(wit::Error::AccessDenied)),
                Err(OpenError::NoSuchStore) => return Ok(Err(wit::Error::NoSuchStore)),
            };
            Ok(view
                .table
                .push(OpenStore { backend })
                .map_err(|_| wit::Error::StoreTableFull))
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wit::Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.get(key).await.map_err(other))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.set(key, value).await.map_err(other))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.delete(key).await.map_err(other))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit::Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.exists(key).await.map_err(other))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), wit::Error>>)> {
        let backend = backend_of(accessor, &store)?;
        let (keys, outcome) = match backend.keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(error) => (Vec::new(), Err(other(error))),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let outcome =
                FutureReader::new(&mut access, async move { wasmtime::error::Ok(outcome) })?;
            Ok((keys, outcome))
        })
    }
}
