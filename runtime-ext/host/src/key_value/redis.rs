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

    pub async fn keys(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.connection.clone().keys("*").await?)
    }
}
