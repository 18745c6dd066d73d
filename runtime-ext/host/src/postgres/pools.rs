//! One connection pool per PostgreSQL address, created on first use, and the session reset a
//! client gets before another guest may use it, when it needs one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// Clients per address; requests beyond it wait up to [`CHECKOUT_TIMEOUT`].
const POOL_SIZE: usize = 64;
/// How long a guest waits for a free client, or for a new connection, before `connection-failed`.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// The dial timeout when the address sets no `connect_timeout`: a down database must
/// fail fast enough for the guest to degrade (the catalogue falls back to JSON).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The server-side bound on one statement, unless the address sets `statement_timeout`: longer
/// than any request should take, short enough that a runaway query cannot hold a connection
/// and a server process for long.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Run before a client a guest may have left state in is reused: ends a transaction left open
/// (the guest may have trapped mid-way), then resets session state like `DISCARD ALL`, except
/// prepared statements, which stay cached per client.
const RESET_SESSION: &str = "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// Statements that only read or write rows: one of them leaves nothing in the session (a
/// prepared statement is a single statement, so nothing can follow it).
const ROW_STATEMENTS: [&str; 7] = [
    "select", "insert", "update", "delete", "with", "values", "table",
];

/// Words that may leave state in a session even inside a row statement: functions that set
/// settings, session locks or sequence caches, and temporary tables. Matching more than needed
/// (a column named `temperature`) only costs a reset.
const SESSION_WORDS: [&str; 9] = [
    "set_config",
    "advisory_lock",
    "nextval",
    "setval",
    "currval",
    "lastval",
    "temp",
    "dblink",
    "lo_",
];

/// Whether running `statement` can leave state in the session for the next user of the client.
/// Sequences advanced implicitly (a `serial` column's default) are not seen: `lastval()` may
/// then report another request's value, as it would for two requests on one client anyway.
pub fn may_leave_session_state(statement: &str) -> bool {
    let lower = statement.trim_start().to_ascii_lowercase();
    let first_word = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    !ROW_STATEMENTS.contains(&first_word) || SESSION_WORDS.iter().any(|word| lower.contains(word))
}

/// A client a guest holds: back to its pool when the guest drops it, reset first (off the
/// request path) if a statement it ran may have left state in the session, or closed if a
/// statement was abandoned on it.
pub struct Pooled {
    object: Option<Object>,
    needs_reset: AtomicBool,
    abandoned: AtomicBool,
}

/// A statement in progress on a [`Pooled`] client: dropped before [`Running::finished`] (the
/// guest's future dropped, or the host giving up on it), it cancels the statement on the server,
/// where it would otherwise run on, and marks the client to be closed, never pooled: another
/// guest's statement on it could meet the cancel request instead.
#[must_use]
pub struct Running<'a> {
    client: &'a Pooled,
    done: bool,
}

impl Running<'_> {
    pub fn finished(mut self) {
        self.done = true;
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.client.abandoned.store(true, Ordering::Relaxed);
        let token = self.client.client().cancel_token();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = token.cancel_query(NoTls).await {
                    tracing::warn!("cannot cancel an abandoned PostgreSQL statement: {error}");
                }
            });
        }
    }
}

impl Pooled {
    pub fn client(&self) -> &Object {
        self.object.as_ref().expect("present until dropped")
    }

    /// A statement about to run on this client, cancelled if dropped unfinished.
    pub fn running(&self) -> Running<'_> {
        Running {
            client: self,
            done: false,
        }
    }

    /// Notes a statement about to run on this client.
    pub fn note(&self, statement: &str) {
        if may_leave_session_state(statement) {
            self.needs_reset.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        if *self.abandoned.get_mut() {
            drop(Object::take(object));
            return;
        }
        if !*self.needs_reset.get_mut() {
            return; // Straight back to the pool.
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(Object::take(object)); // Nothing to reset it on: close it instead.
            return;
        };
        runtime.spawn(async move {
            let reset = tokio::time::timeout(CHECKOUT_TIMEOUT, object.simple_query(RESET_SESSION));
            if !matches!(reset.await, Ok(Ok(_))) {
                tracing::warn!("closing a PostgreSQL connection whose session could not be reset");
                drop(Object::take(object));
            }
        });
    }
}

/// One address's pool and the endpoints it dials.
struct AddressPool {
    pool: Pool,
    endpoints: Arc<[Endpoint]>,
}

/// A host and port an address dials (the port is `None` for the scheme's default).
pub struct Endpoint {
    pub host: tokio_postgres::config::Host,
    pub port: Option<u16>,
}

/// The app's pools, keyed by the guest's address string (credentials included, so two
/// users of one server never share a session).
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, AddressPool>>,
}

impl Pools {
    /// What `address` dials; an address that does not parse is `Err`.
    pub fn endpoints(&self, address: &str) -> anyhow::Result<Arc<[Endpoint]>> {
        if let Some(known) = self.lock().get(address) {
            return Ok(known.endpoints.clone());
        }
        // Parsed again, not kept: only an address whose endpoints were allowed gets a pool.
        Ok(parse(address)?.1)
    }

    /// A client for `address`, whose [`Self::endpoints`] the caller has allowed; the address's
    /// pool is created on first use.
    pub async fn client(&self, address: &str) -> anyhow::Result<Pooled> {
        let pool = {
            let mut pools = self.lock();
            match pools.get(address) {
                Some(known) => known.pool.clone(),
                None => {
                    let (config, endpoints) = parse(address)?;
                    let pool = new_pool(config)?;
                    let known = AddressPool {
                        pool: pool.clone(),
                        endpoints,
                    };
                    pools.insert(address.to_owned(), known);
                    pool
                }
            }
        };
        Ok(Pooled {
            object: Some(pool.get().await?),
            needs_reset: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AddressPool>> {
        self.pools.lock().expect("pool map poisoned")
    }
}

/// The driver's configuration of `address`, and every host and port it may dial: each `host`
/// and each `hostaddr` (which the driver dials instead of the `host` at its position, or
/// alone), so that an allow-list check of the endpoints covers what is actually dialled.
fn parse(address: &str) -> anyhow::Result<(tokio_postgres::Config, Arc<[Endpoint]>)> {
    let config = address
        .parse::<tokio_postgres::Config>()
        .context("invalid address")?;
    let ports = config.get_ports();
    // Ports pair with hosts by position; a single port applies to every host.
    let port = |index: usize| {
        ports
            .get(index)
            .or(ports.first().filter(|_| ports.len() == 1))
            .copied()
    };
    let hosts = config.get_hosts().iter().cloned().enumerate();
    let addresses = config.get_hostaddrs().iter().enumerate();
    let endpoints = hosts
        .chain(addresses.map(|(index, ip)| (index, Host::Tcp(ip.to_string()))))
        .map(|(index, host)| Endpoint {
            host,
            port: port(index),
        })
        .collect();
    Ok((config, endpoints))
}

fn new_pool(mut config: tokio_postgres::Config) -> anyhow::Result<Pool> {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A bound on every statement, unless the address sets its own (`options=-c statement_timeout=…`).
    let options = config.get_options().unwrap_or_default().to_owned();
    if !options.contains("statement_timeout") {
        let timeout = STATEMENT_TIMEOUT.as_millis();
        config.options(format!("{options} -c statement_timeout={timeout}").trim_start());
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Checked only for being closed: the reset is [`Pooled`]'s, when needed.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .timeouts(Timeouts {
            wait: Some(CHECKOUT_TIMEOUT),
            create: Some(CHECKOUT_TIMEOUT),
            recycle: Some(CHECKOUT_TIMEOUT),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the connection pool")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_statements_leave_no_session_state() {
        for statement in [
            "SELECT id, name FROM products ORDER BY id",
            "  select 1",
            "INSERT INTO products (name) VALUES ($1) RETURNING id",
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert!(!may_leave_session_state(statement), "{statement}");
        }
    }

    #[test]
    fn anything_else_needs_a_reset() {
        for statement in [
            "BEGIN",
            "SET search_path TO x",
            "LISTEN channel",
            "CREATE TEMP TABLE t (a int)",
            "SELECT set_config('a.b', 'c', false)",
            "SELECT pg_advisory_lock(1)",
            "SELECT nextval('s')",
            "SELECT * INTO TEMPORARY t FROM products",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "PREPARE p AS SELECT 1",
            "",
        ] {
            assert!(may_leave_session_state(statement), "{statement}");
        }
    }
}
