//! One connection pool per PostgreSQL address, created on first use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

/// Clients per address; requests beyond it wait up to [`CHECKOUT_TIMEOUT`].
const POOL_SIZE: usize = 64;
/// How long a guest waits for a free client, or for a new connection, before `connection-failed`.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// The dial timeout when the address sets no `connect_timeout`: a down database must
/// fail fast enough for the guest to degrade (the catalogue falls back to JSON).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Run before a client is reused: ends a transaction a guest left open (it may have trapped
/// mid-way), then resets session state like `DISCARD ALL`, except prepared statements,
/// which stay cached per client.
const RESET_SESSION: &str = "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// The app's pools, keyed by the guest's address string (credentials included, so two
/// users of one server never share a session).
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, Pool>>,
}

impl Pools {
    /// A client for `address` (already parsed as `config`).
    pub async fn client(
        &self,
        address: &str,
        mut config: tokio_postgres::Config,
    ) -> anyhow::Result<Object> {
        let pool = {
            let mut pools = self.pools.lock().expect("pool map poisoned");
            match pools.get(address) {
                Some(pool) => pool.clone(),
                None => {
                    if config.get_connect_timeout().is_none() {
                        config.connect_timeout(CONNECT_TIMEOUT);
                    }
                    let manager = Manager::from_config(
                        config,
                        NoTls,
                        ManagerConfig {
                            recycling_method: RecyclingMethod::Custom(RESET_SESSION.into()),
                        },
                    );
                    let pool = Pool::builder(manager)
                        .max_size(POOL_SIZE)
                        .timeouts(Timeouts {
                            wait: Some(CHECKOUT_TIMEOUT),
                            create: Some(CHECKOUT_TIMEOUT),
                            recycle: Some(CHECKOUT_TIMEOUT),
                        })
                        .runtime(Runtime::Tokio1)
                        .build()
                        .context("building the connection pool")?;
                    pools.insert(address.to_owned(), pool.clone());
                    pool
                }
            }
        };
        pool.get().await.map_err(anyhow::Error::from)
    }
}
