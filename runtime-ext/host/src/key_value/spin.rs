//! `spin:key-value@3.0.0` over the labelled stores.

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{KeyValueHost, KeyValueView, OpenError, Store};
use crate::bindings::key_value as wit;

/// An open store handed to the guest as a `store` resource.
pub struct OpenStore {
    store: Arc<dyn Store>,
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

/// The store behind a guest's handle; an unknown handle is a guest bug and traps.
fn store_of<T>(
    accessor: &Accessor<T, KeyValueHost>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<Arc<dyn Store>> {
    accessor.with(|mut access| Ok(access.get().table.get(store)?.store.clone()))
}

impl From<OpenError> for wit::Error {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::AccessDenied => Self::AccessDenied,
            OpenError::NoSuchStore => Self::NoSuchStore,
        }
    }
}

impl<T> wit::HostStoreWithStore<T> for KeyValueHost {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, wit::Error>> {
        accessor.with(|mut access| {
            let view = access.get();
            let store = match view.access.open(&label) {
                Ok(store) => store,
                Err(error) => return Ok(Err(error.into())),
            };
            Ok(view
                .table
                .push(OpenStore { store })
                .map_err(|_| wit::Error::StoreTableFull))
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wit::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.get(key).await.map_err(other))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.set(key, value).await.map_err(other))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.delete(key).await.map_err(other))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.exists(key).await.map_err(other))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), wit::Error>>)> {
        let store = store_of(accessor, &store)?;
        let (keys, outcome) = match store.keys().await {
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
