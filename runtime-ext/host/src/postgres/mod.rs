//! `spin:postgres@4.2.0` on tokio-postgres: one connection pool per address, shared by
//! the app's components; a connection handed to a guest is a pooled client, returned to
//! its pool when the guest drops it (after a session reset if the guest may have left state
//! in the session, see [`pools`]).
//!
//! As under Spin, an address is checked against the component's `allowed_outbound_hosts`
//! (`postgres://host:port`) before anything is dialled; every failure reaches the guest as
//! the interface's `error`, with the server's own message for database errors.
//!
//! A statement the guest abandons (its instance dropped at a deadline, or a result too large)
//! is cancelled on the server, and its connection closed rather than pooled; every connection
//! also has a `statement_timeout` (see [`pools`]).

// The interface's `error` carries the server's whole structured error; it is what the guest gets.
#![allow(clippy::result_large_err)]

mod convert;
mod pools;

use std::sync::Arc;

use futures::TryStreamExt;
use tokio_postgres::types::ToSql;
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::postgres as wit;

use self::pools::Pooled;
pub use self::pools::Pools;

/// A guest's open connection: a client checked out of its address's pool.
pub struct Connection {
    client: Arc<Pooled>,
}

/// A guest's `connection-builder`: the address, until `build`.
pub struct ConnectionBuilder {
    address: String,
}

/// A component's PostgreSQL access: its allow-list and the app's pools.
#[derive(Clone)]
pub struct PostgresAccess {
    pub allowed: Arc<AllowedHosts>,
    pub pools: Arc<Pools>,
}

impl PostgresAccess {
    /// Checks every host of `address` against the allow-list, then checks out a client.
    async fn connect(&self, address: &str) -> Result<Connection, wit::Error> {
        let failed = |e: anyhow::Error| wit::Error::ConnectionFailed(format!("{e:#}"));
        for endpoint in self.pools.endpoints(address).map_err(failed)?.iter() {
            let tokio_postgres::config::Host::Tcp(host) = &endpoint.host else {
                return Err(wit::Error::ConnectionFailed(
                    "Unix sockets are not supported on WebAssembly".into(),
                ));
            };
            if !self.allowed.allows("postgres", host, endpoint.port) {
                let port = endpoint.port.map(|p| format!(":{p}")).unwrap_or_default();
                return Err(wit::Error::ConnectionFailed(format!(
                    "address postgres://{host}{port} is not permitted"
                )));
            }
        }
        let client = self.pools.client(address).await.map_err(failed)?;
        Ok(Connection {
            client: Arc::new(client),
        })
    }
}

/// Links `spin:postgres`; `view` is an instance's [`PostgresView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> PostgresView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, PostgresHost>(linker, view)
}

/// What a request's store exposes to the PostgreSQL host functions.
pub struct PostgresView<'a> {
    pub table: &'a mut ResourceTable,
    pub access: &'a PostgresAccess,
}

/// The `HasData` marker the bindings are implemented on.
pub struct PostgresHost;

impl HasData for PostgresHost {
    type Data<'a> = PostgresView<'a>;
}

/// The prepared (and cached) statement with the guest's parameters converted for it.
async fn prepare(
    client: &Pooled,
    statement: &str,
    params: &[wit::ParameterValue],
) -> Result<(tokio_postgres::Statement, Vec<Parameter>), wit::Error> {
    client.note(statement);
    let prepared = client
        .client()
        .prepare_cached(statement)
        .await
        .map_err(query_failed)?;
    Ok((prepared, parameters(params)?))
}

/// The most a query's rows may hold, as the guest would get them: the host buffers a result
/// before the guest reads it, outside the guest's memory limit, so a query that would return
/// more is refused (and cancelled) instead.
const MAX_RESULT_BYTES: usize = 16 << 20;
/// The most rows a query may return.
const MAX_RESULT_ROWS: usize = 100_000;

/// Runs a query and reads its rows (the guest gets them as one stream), within
/// [`MAX_RESULT_ROWS`] and [`MAX_RESULT_BYTES`].
async fn query(
    client: &Pooled,
    statement: &str,
    params: &[wit::ParameterValue],
) -> Result<wit::RowSet, wit::Error> {
    let (prepared, params) = prepare(client, statement, params).await?;
    let running = client.running();
    // A failed statement has ended on the server: nothing to cancel, and the client stays pooled.
    let stream = match client
        .client()
        .query_raw(&prepared, param_refs(&params))
        .await
    {
        Ok(stream) => stream,
        Err(error) => {
            running.finished();
            return Err(query_failed(error));
        }
    };
    let mut stream = std::pin::pin!(stream);
    let (mut rows, mut bytes) = (Vec::new(), 0);
    loop {
        let row = match stream.try_next().await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(error) => {
                running.finished();
                return Err(query_failed(error));
            }
        };
        let values = (0..row.len())
            .map(|i| convert::db_value(&row, i))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| wit::Error::QueryFailed(wit::QueryError::Text(format!("{e:#}"))))?;
        bytes += values.iter().map(convert::size).sum::<usize>();
        rows.push(values);
        if rows.len() > MAX_RESULT_ROWS || bytes > MAX_RESULT_BYTES {
            // `running` cancels the rest of the query on the server as it drops.
            return Err(wit::Error::QueryFailed(wit::QueryError::Text(format!(
                "the result is too large: more than {MAX_RESULT_ROWS} rows or {} MiB \
                 (page the query with LIMIT)",
                MAX_RESULT_BYTES >> 20
            ))));
        }
    }
    running.finished();
    let columns = prepared
        .columns()
        .iter()
        .map(|column| wit::Column {
            name: column.name().to_owned(),
            data_type: convert::data_type(column.type_()),
        })
        .collect();
    Ok(wit::RowSet { columns, rows })
}

async fn execute(
    client: &Pooled,
    statement: &str,
    params: &[wit::ParameterValue],
) -> Result<u64, wit::Error> {
    let (prepared, params) = prepare(client, statement, params).await?;
    let running = client.running();
    let result = client
        .client()
        .execute(&prepared, &param_refs(&params))
        .await
        .map_err(query_failed);
    running.finished();
    result
}

type Parameter = Box<dyn ToSql + Send + Sync>;

fn parameters(params: &[wit::ParameterValue]) -> Result<Vec<Parameter>, wit::Error> {
    params
        .iter()
        .enumerate()
        .map(|(index, value)| {
            convert::parameter(value)
                .map_err(|e| wit::Error::BadParameter(format!("parameter ${}: {e:#}", index + 1)))
        })
        .collect()
}

fn param_refs(params: &[Parameter]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A driver error as the interface's `query-failed`, structured when the server sent one.
fn query_failed(error: tokio_postgres::Error) -> wit::Error {
    let Some(db) = error.as_db_error() else {
        // tokio-postgres keeps the useful part (e.g. the I/O error) in `source()`.
        let text = format!("{:#}", anyhow::Error::new(error));
        return wit::Error::QueryFailed(wit::QueryError::Text(text));
    };
    let mut extras = Vec::new();
    let mut extra = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            extras.push((name.to_owned(), value));
        }
    };
    extra("schema", db.schema().map(str::to_owned));
    extra("table", db.table().map(str::to_owned));
    extra("column", db.column().map(str::to_owned));
    extra("datatype", db.datatype().map(str::to_owned));
    extra("constraint", db.constraint().map(str::to_owned));
    extra("hint", db.hint().map(str::to_owned));
    extra("where", db.where_().map(str::to_owned));
    extra("routine", db.routine().map(str::to_owned));
    wit::Error::QueryFailed(wit::QueryError::DbError(wit::DbError {
        as_text: db.to_string(),
        severity: db.severity().to_owned(),
        code: db.code().code().to_owned(),
        message: db.message().to_owned(),
        detail: db.detail().map(str::to_owned),
        extras,
    }))
}

fn client_of(
    table: &ResourceTable,
    connection: &Resource<Connection>,
) -> wasmtime::Result<Arc<Pooled>> {
    Ok(table.get(connection)?.client.clone())
}

impl PostgresView<'_> {
    fn push(&mut self, connection: Connection) -> Result<Resource<Connection>, wit::Error> {
        self.table
            .push(connection)
            .map_err(|_| wit::Error::ConnectionFailed("too many connections".into()))
    }
}

impl wit::Host for PostgresView<'_> {}

impl wit::HostConnectionBuilder for PostgresView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<ConnectionBuilder>> {
        Ok(self.table.push(ConnectionBuilder { address })?)
    }

    async fn set_ca_root(
        &mut self,
        _builder: Resource<ConnectionBuilder>,
        _certificate: String,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        Ok(Err(wit::Error::Other(
            "TLS connections are not supported by spinyard; use `sslmode=disable` or `prefer`"
                .into(),
        )))
    }

    async fn build(
        &mut self,
        builder: Resource<ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
        let address = self.table.get(&builder)?.address.clone();
        Ok(self
            .access
            .connect(&address)
            .await
            .and_then(|c| self.push(c)))
    }

    async fn drop(&mut self, builder: Resource<ConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl wit::HostConnection for PostgresView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
        Ok(self
            .access
            .connect(&address)
            .await
            .and_then(|c| self.push(c)))
    }

    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<wit::ParameterValue>,
    ) -> wasmtime::Result<Result<wit::RowSet, wit::Error>> {
        let client = client_of(self.table, &connection)?;
        Ok(query(&client, &statement, &params).await)
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<wit::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, wit::Error>> {
        let client = client_of(self.table, &connection)?;
        Ok(execute(&client, &statement, &params).await)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// Opens a connection from inside the store: the allow-check and dial happen outside it.
async fn open_with_accessor<T>(
    accessor: &Accessor<T, PostgresHost>,
    address: &str,
) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
    let access = accessor.with(|mut view| view.get().access.clone());
    Ok(access
        .connect(address)
        .await
        .and_then(|c| accessor.with(|mut view| view.get().push(c))))
}

impl<T> wit::HostConnectionBuilderWithStore<T> for PostgresHost {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
        let address = accessor.with(|mut view| -> wasmtime::Result<String> {
            Ok(view.get().table.get(&builder)?.address.clone())
        })?;
        open_with_accessor(accessor, &address).await
    }
}

impl<T> wit::HostConnectionWithStore<T> for PostgresHost {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
        open_with_accessor(accessor, &address).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<wit::ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<wit::Column>,
                StreamReader<wit::Row>,
                FutureReader<Result<(), wit::Error>>,
            ),
            wit::Error,
        >,
    > {
        let client = accessor.with(|mut view| client_of(view.get().table, &connection))?;
        let set = match query(&client, &statement, &params).await {
            Ok(set) => set,
            Err(error) => return Ok(Err(error)),
        };
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, set.rows)?;
            let outcome = FutureReader::new(&mut access, async { wasmtime::error::Ok(Ok(())) })?;
            Ok(Ok((set.columns, rows, outcome)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<wit::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, wit::Error>> {
        let client = accessor.with(|mut view| client_of(view.get().table, &connection))?;
        Ok(execute(&client, &statement, &params).await)
    }
}
