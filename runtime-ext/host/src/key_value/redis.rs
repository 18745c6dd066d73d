//! The `redis` key-value backend.

use anyhow::Context;
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{Lookup, Store};

/// A store backed by one Redis database; the connection reconnects by itself.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
}

impl RedisStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(url).with_context(|| format!("invalid Redis URL `{url}`"))?;
        let connection = ConnectionManager::new(client)
            .await
            .with_context(|| format!("cannot connect to Redis at `{url}`"))?;
        Ok(Self { connection })
    }
}

impl Store for RedisStore {
    fn get(&self, key: String) -> BoxFuture<'_, anyhow::Result<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(self.connection.clone().get(key).await?) })
    }

    fn set(&self, key: String, value: Vec<u8>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.connection.clone().set(key, value).await?) })
    }

    fn delete(&self, key: String) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.connection.clone().del(key).await?) })
    }

    fn exists(&self, key: String) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.connection.clone().exists(key).await?) })
    }

    /// Every key, read with `SCAN`: `KEYS *` would block the server for as long as it walks the
    /// whole keyspace, on every call (every metrics scrape lists the store).
    fn keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut scan: redis::AsyncIter<String> = connection.scan().await?;
            let mut keys = Vec::new();
            while let Some(key) = scan.next_item().await {
                keys.push(key?);
            }
            // SCAN may return a key more than once (when the table is rehashed meanwhile).
            keys.sort_unstable();
            keys.dedup();
            Ok(keys)
        })
    }

    fn increment(&self, key: String, delta: i64) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move { Ok(self.connection.clone().incr(key, delta).await?) })
    }

    fn get_many(&self, keys: Vec<String>) -> BoxFuture<'_, anyhow::Result<Vec<Lookup>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<Vec<u8>>> = self.connection.clone().mget(&keys).await?;
            Ok(keys.into_iter().zip(values).collect())
        })
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            Ok(self.connection.clone().mset(&entries).await?)
        })
    }

    fn delete_many(&self, keys: Vec<String>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            Ok(self.connection.clone().del(keys).await?)
        })
    }

    /// Compare-and-set in one Lua script: atomic on a shared, multiplexed connection (where
    /// WATCH/MULTI would not be).
    fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move {
            let script = match expected {
                Some(_) => redis::Script::new(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0",
                ),
                None => redis::Script::new(
                    "if redis.call('SET', KEYS[1], ARGV[2], 'NX') then return 1 end return 0",
                ),
            };
            let swapped: i64 = script
                .key(key)
                .arg(expected.unwrap_or_default())
                .arg(new)
                .invoke_async(&mut self.connection.clone())
                .await?;
            Ok(swapped == 1)
        })
    }
}
