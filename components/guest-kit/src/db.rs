//! PostgreSQL access: the address built from Spin variables, errors as clear 503s.
//!
//! A request opens its connection and drops it when done: the host keeps the pool. (Keeping one
//! per instance saves about a tenth of a query's cost, but holds a pooled connection for as long
//! as the instance lives, and under high concurrency the app has more instances than the pool
//! has connections: requests then wait seconds for one.)
//!
//! Every database component declares the same component variables (`db_host`, `db_port`,
//! `db_name`, `db_user`, `db_password`), each bound in `spin.toml` to its system's
//! application variables, and `allowed_outbound_hosts = ["postgres://{{ db_host }}:{{ db_port }}"]`.

use std::cell::RefCell;
use std::rc::Rc;

use spin_sdk::pg::{Connection, DbValue, Decode, Error, ParameterValue, PgError};

use crate::ApiError;

/// The component variables that make up the address.
pub const ADDRESS_VARIABLES: [&str; 5] =
    ["db_host", "db_port", "db_name", "db_user", "db_password"];

thread_local! {
    /// The component's database address, built once per instance.
    static ADDRESS: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// `postgres://user:password@host:port/name` from the component's variables.
pub async fn address_from_variables() -> Result<Rc<str>, ApiError> {
    crate::per_instance(&ADDRESS, async || {
        let mut values = Vec::with_capacity(ADDRESS_VARIABLES.len());
        for name in ADDRESS_VARIABLES {
            let value = crate::variable(name).await.map_err(|e| {
                ApiError::unavailable(format!("database configuration: {}", e.message))
            })?;
            values.push(value);
        }
        let [host, port, name, user, password] =
            <[String; 5]>::try_from(values).expect("five values");
        Ok(address(&host, &port, &name, &user, &password).into())
    })
    .await
}

/// A connection address with the credentials percent-encoded.
pub fn address(host: &str, port: &str, name: &str, user: &str, password: &str) -> String {
    format!(
        "postgres://{}:{}@{host}:{port}/{}?sslmode=disable",
        encode(user),
        encode(password),
        encode(name)
    )
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A connection to `address`.
pub async fn open(address: &str) -> Result<Db, Error> {
    Ok(Db(Connection::open(address).await?))
}

/// A connection to the component's database; failure is a 503.
pub async fn connect() -> Result<Db, ApiError> {
    let address = address_from_variables().await?;
    open(&address).await.map_err(unavailable)
}

/// An open connection, reading results in batches.
pub struct Db(Connection);

impl Db {
    /// Runs `statement` and reads every row, as many at a time as the host has ready
    /// (spin-sdk's own `collect` reads them one per call).
    pub async fn read_rows(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<Vec<Row>, Error> {
        let (columns, rows, outcome) = self.0.query(statement, params).await?.into_inner();
        let columns: Rc<[String]> = columns.into_iter().map(|column| column.name).collect();
        let rows = rows.collect().await;
        outcome.await?;
        Ok(rows
            .into_iter()
            .map(|values| Row {
                columns: columns.clone(),
                values,
            })
            .collect())
    }

    /// Runs `statement` and reads every row; failure is a [`failure`].
    pub async fn rows(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<Vec<Row>, ApiError> {
        self.read_rows(statement, params).await.map_err(failure)
    }
}

/// A result row, addressed by column name or position, as spin-sdk's `Row` is.
pub struct Row {
    columns: Rc<[String]>,
    values: Vec<DbValue>,
}

impl Row {
    /// The value of column `name` as `T`; `None` if there is no such column or it is not a `T`.
    pub fn get<T: Decode>(&self, name: &str) -> Option<T> {
        let index = self.columns.iter().position(|column| column == name)?;
        T::decode(self.values.get(index)?).ok()
    }
}

impl std::ops::Index<usize> for Row {
    type Output = DbValue;

    fn index(&self, index: usize) -> &DbValue {
        &self.values[index]
    }
}

/// Runs one statement on the component's database, reading every row; failure is a
/// [`failure`].
pub async fn query(statement: &str, params: Vec<ParameterValue>) -> Result<Vec<Row>, ApiError> {
    connect().await?.rows(statement, params).await
}

/// A round trip to the database (`SELECT 1`), for health and readiness checks.
pub async fn ping() -> Result<(), ApiError> {
    let rows = query("SELECT 1", vec![]).await?;
    match rows.first().map(|row| &row[0]) {
        Some(DbValue::Int32(1)) => Ok(()),
        _ => Err(ApiError::unavailable(
            "database answered `SELECT 1` unexpectedly",
        )),
    }
}

/// A failed statement as the answer to give. Data PostgreSQL refuses for what it is (SQLSTATE
/// class 22, data exception, e.g. `\u0000` in `jsonb`; class 23, integrity constraint
/// violation) will never be stored, whoever retries: a 422, which a consumer route's bridge
/// dead-letters. Anything else (the server down, a missing table, a timeout) may pass or needs
/// the deployment fixed: a 503, on which clients retry and the bridge pauses.
pub fn failure(error: Error) -> ApiError {
    match sqlstate(&error).map(|code| code.get(..2)) {
        Some(Some("22" | "23")) => ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("the database refused the data: {}", describe(&error)),
        ),
        _ => unavailable(error),
    }
}

/// A failed database call as a 503 the client can act on.
pub fn unavailable(error: Error) -> ApiError {
    ApiError::unavailable(format!("database unavailable: {}", describe(&error)))
}

/// The server's message for a database error, the driver's otherwise.
pub fn describe(error: &Error) -> String {
    match error {
        Error::PgError(PgError::QueryFailed(spin_sdk::pg::QueryError::DbError(db))) => {
            format!("{} ({})", db.message, db.code)
        }
        Error::PgError(PgError::QueryFailed(spin_sdk::pg::QueryError::Text(text)))
        | Error::PgError(PgError::ConnectionFailed(text))
        | Error::PgError(PgError::BadParameter(text))
        | Error::PgError(PgError::ValueConversionFailed(text))
        | Error::PgError(PgError::Other(text)) => text.clone(),
        Error::Decode(text) => text.clone(),
    }
}

/// The SQLSTATE of a server error, if it was one (e.g. `23505` for a unique violation).
pub fn sqlstate(error: &Error) -> Option<&str> {
    match error {
        Error::PgError(PgError::QueryFailed(spin_sdk::pg::QueryError::DbError(db))) => {
            Some(&db.code)
        }
        _ => None,
    }
}

/// A `numeric` column's value as `f64` (the originals return JSON numbers).
pub fn decimal(value: &DbValue) -> Option<f64> {
    match value {
        DbValue::Decimal(text) => text.parse().ok(),
        DbValue::Floating64(n) => Some(*n),
        DbValue::Int64(n) => Some(*n as f64),
        DbValue::Int32(n) => Some(f64::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_percent_encoded() {
        assert_eq!(
            address("db", "5432", "app db", "us@r", "p:ss/word"),
            "postgres://us%40r:p%3Ass%2Fword@db:5432/app%20db?sslmode=disable"
        );
    }
}
