//! The `spin` key-value backend: a SQLite file, in Spin's own table layout.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Lookup, Store};

/// Spin's schema, so a `.spin/sqlite_key_value.db` is interchangeable between spin and spinyard.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)";

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
    ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";

/// One label's view of a SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    label: Arc<str>,
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one.
    pub fn open(label: &str, path: Option<&Path>) -> anyhow::Result<Self> {
        let connection = match path {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let connection = Connection::open(path).with_context(|| {
                    format!("cannot open key-value database {}", path.display())
                })?;
                // First, so that the statements below also wait for another process opening
                // the same file (hosts started side by side) instead of failing "locked".
                connection.busy_timeout(std::time::Duration::from_secs(5))?;
                // WAL lets readers proceed during a write; NORMAL sync is durable across
                // process crashes, which is what a key-value store behind HTTP needs.
                connection.pragma_update(None, "journal_mode", "WAL")?;
                connection.pragma_update(None, "synchronous", "NORMAL")?;
                connection
            }
            None => Connection::open_in_memory()?,
        };
        connection.execute(SCHEMA, [])?;
        Ok(Self {
            label: label.into(),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `op` on the locked connection, off the async threads.
    async fn locked<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection, &str) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = store
                .connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            op(&mut connection, &store.label)
        })
        .await?
    }

    /// Runs `op`, statements SQLite makes atomic one by one.
    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.locked(|connection, label| Ok(op(connection, label)?))
            .await
    }

    /// Runs `op` in one transaction, committed if it succeeds. Immediate, so a read-then-write
    /// (`increment`) waits for another writer of the file rather than failing.
    async fn in_transaction<T: Send + 'static>(
        &self,
        op: impl FnOnce(&rusqlite::Transaction, &str) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.locked(|connection, label| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = op(&tx, label)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }
}

impl Store for SqliteStore {
    fn get(&self, key: String) -> BoxFuture<'_, anyhow::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.with(move |db, store| {
                db.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .query_row(params![store, key], |row| row.get(0))
                    .optional()
            })
            .await
        })
    }

    fn set(&self, key: String, value: Vec<u8>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.with(move |db, store| {
                db.prepare_cached(UPSERT)?
                    .execute(params![store, key, value])
                    .map(drop)
            })
            .await
        })
    }

    fn delete(&self, key: String) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.with(move |db, store| {
                db.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .execute(params![store, key])
                    .map(drop)
            })
            .await
        })
    }

    fn exists(&self, key: String) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move {
            self.with(move |db, store| {
                db.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .query_row(params![store, key], |_| Ok(()))
                    .optional()
                    .map(|found| found.is_some())
            })
            .await
        })
    }

    fn keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            self.with(|db, store| {
                db.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                    .query_map(params![store], |row| row.get(0))?
                    .collect()
            })
            .await
        })
    }

    /// Adds `delta` in one transaction; the value is an `i64` in little-endian bytes, as Spin
    /// stores it, so only `increment` (not `get`) reads it portably.
    fn increment(&self, key: String, delta: i64) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            self.in_transaction(move |tx, label| {
                let current: Option<Vec<u8>> = tx
                    .prepare_cached(
                        "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    )?
                    .query_row(params![label, key], |row| row.get(0))
                    .optional()?;
                let current = match current {
                    None => 0,
                    Some(bytes) => i64::from_le_bytes(bytes.try_into().map_err(|_| {
                        anyhow::anyhow!("the value of `{key}` is not a counter (8-byte integer)")
                    })?),
                };
                let next = current
                    .checked_add(delta)
                    .with_context(|| format!("counter `{key}` would overflow"))?;
                tx.prepare_cached(UPSERT)?
                    .execute(params![label, key, next.to_le_bytes()])?;
                Ok(next)
            })
            .await
        })
    }

    /// Every key with its value, `None` for a key the store lacks.
    fn get_many(&self, keys: Vec<String>) -> BoxFuture<'_, anyhow::Result<Vec<Lookup>>> {
        Box::pin(async move {
            self.with(move |db, store| {
                let mut select = db.prepare_cached(
                    "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                )?;
                keys.into_iter()
                    .map(|key| {
                        let value = select
                            .query_row(params![store, key], |row| row.get(0))
                            .optional()?;
                        Ok((key, value))
                    })
                    .collect()
            })
            .await
        })
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.in_transaction(move |tx, label| {
                for (key, value) in entries {
                    tx.prepare_cached(UPSERT)?
                        .execute(params![label, key, value])?;
                }
                Ok(())
            })
            .await
        })
    }

    fn delete_many(&self, keys: Vec<String>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.with(move |db, store| {
                let mut delete =
                    db.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
                for key in keys {
                    delete.execute(params![store, key])?;
                }
                Ok(())
            })
            .await
        })
    }

    /// Sets `key` to `new` only if it still holds `expected` (`None`: absent); whether it did.
    fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move {
            self.with(move |db, store| {
            let changed = match expected {
                Some(old) => db
                    .prepare_cached(
                        "UPDATE spin_key_value SET value = ?4 WHERE store = ?1 AND key = ?2 AND value = ?3",
                    )?
                    .execute(params![store, key, old, new])?,
                None => db
                    .prepare_cached(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (store, key) DO NOTHING",
                    )?
                    .execute(params![store, key, new])?,
            };
            Ok(changed == 1)
        })
        .await
        })
    }
}
