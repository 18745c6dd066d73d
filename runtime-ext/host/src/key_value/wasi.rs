//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) over the same labelled stores.
//!
//! An identifier passed to `store.open` is a `key_value_stores` label, as in Spin.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::{KeyValueView, OpenError, Store};
use crate::bindings::wasi_keyvalue::{atomics, batch, store};

/// An open bucket handed to the guest.
pub struct Bucket {
    store: Arc<dyn Store>,
}

/// A compare-and-swap in progress: the value `current` saw (outer `None`: not read yet).
pub struct Cas {
    store: Arc<dyn Store>,
    key: String,
    seen: Option<Option<Vec<u8>>>,
}

impl From<OpenError> for store::Error {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::AccessDenied => Self::AccessDenied,
            OpenError::NoSuchStore => Self::NoSuchStore,
        }
    }
}

fn other(error: anyhow::Error) -> store::Error {
    store::Error::Other(format!("{error:#}"))
}

impl KeyValueView<'_> {
    /// The store behind a guest's bucket handle; an unknown handle is a guest bug and traps.
    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Arc<dyn Store>> {
        Ok(self.table.get(bucket)?.store.clone())
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        let store = match self.access.open(&identifier) {
            Ok(store) => store,
            Err(error) => return Ok(Err(error.into())),
        };
        Ok(Ok(self.table.push(Bucket { store })?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(self.bucket(&bucket)?.get(key).await.map_err(other))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self.bucket(&bucket)?.set(key, value).await.map_err(other))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self.bucket(&bucket)?.delete(key).await.map_err(other))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        Ok(self.bucket(&bucket)?.exists(key).await.map_err(other))
    }

    /// Every key at once, with no cursor; a cursor is refused (as Spin answers both).
    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        if cursor.is_some() {
            return Ok(Err(store::Error::Other(
                "list_keys: cursor not supported".into(),
            )));
        }
        let keys = self.bucket(&bucket)?.keys().await;
        Ok(keys
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(other))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        Ok(self
            .bucket(&bucket)?
            .increment(key, delta)
            .await
            .map_err(other))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { store, key, seen } = self.table.delete(cas)?;
        let expected = match seen {
            Some(seen) => seen,
            // Never read: compare against what is there now.
            None => match store.get(key.clone()).await {
                Ok(value) => value,
                Err(error) => return Ok(Err(atomics::CasError::StoreError(other(error)))),
            },
        };
        match store.swap(key.clone(), expected, value).await {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                let retry = self.table.push(Cas {
                    store,
                    key,
                    seen: None,
                })?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
            Err(error) => Ok(Err(atomics::CasError::StoreError(other(error)))),
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let store = self.bucket(&bucket)?;
        Ok(Ok(self.table.push(Cas {
            store,
            key,
            seen: None,
        })?))
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (store, key) = {
            let cas = self.table.get(&cas)?;
            (cas.store.clone(), cas.key.clone())
        };
        let value = match store.get(key).await {
            Ok(value) => value,
            Err(error) => return Ok(Err(other(error))),
        };
        self.table.get_mut(&cas)?.seen = Some(value.clone());
        Ok(Ok(value))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        Ok(self.bucket(&bucket)?.get_many(keys).await.map_err(other))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self
            .bucket(&bucket)?
            .set_many(key_values)
            .await
            .map_err(other))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self.bucket(&bucket)?.delete_many(keys).await.map_err(other))
    }
}
