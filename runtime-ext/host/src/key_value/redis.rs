//! The `redis` key-value backend.

use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

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

    pub async fn get(&self, key: String) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.connection.clone().get(key).await?)
    }

    pub async fn set(&self, key: String, value: Vec<u8>) -> anyhow::Result<()> {
        Ok(self.connection.clone().set(key, value).await?)
    }

    pub async fn delete(&self, key: String) -> anyhow::Result<()> {
        Ok(self.connection.clone().del(key).await?)
    }

    pub async fn exists(&self, key: String) -> anyhow::Result<bool> {
        Ok(self.connection.clone().exists(key).await?)
    }

    /// Every key, read with `SCAN`: `KEYS *` would block the server for as long as it walks the
    /// whole keyspace, on every call (every metrics scrape lists the store).
    pub async fn keys(&self) -> anyhow::Result<Vec<String>> {
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
    }

    pub async fn increment(&self, key: String, delta: i64) -> anyhow::Result<i64> {
        Ok(self.connection.clone().incr(key, delta).await?)
    }

    pub async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> anyhow::Result<Vec<(String, Option<Vec<u8>>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.connection.clone().mget(&keys).await?;
        Ok(keys.into_iter().zip(values).collect())
    }

    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        Ok(self.connection.clone().mset(&entries).await?)
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> anyhow::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        Ok(self.connection.clone().del(keys).await?)
    }

    /// Compare-and-set in one Lua script: atomic on a shared, multiplexed connection (where
    /// WATCH/MULTI would not be).
    pub async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> anyhow::Result<bool> {
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
    }
}
