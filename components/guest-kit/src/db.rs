//! PostgreSQL access: the address built from Spin variables, errors as clear 503s.
//!
//! Every database component declares the same component variables (`db_host`, `db_port`,
//! `db_name`, `db_user`, `db_password`), each bound in `spin.toml` to its system's
//! application variables, and `allowed_outbound_hosts = ["postgres://{{ db_host }}:{{ db_port }}"]`.

use spin_sdk::pg::{Connection, DbValue, Error, ParameterValue, PgError, Row};
use spin_sdk::variables;

use crate::ApiError;

/// The component variables that make up the address.
pub const ADDRESS_VARIABLES: [&str; 5] =
    ["db_host", "db_port", "db_name", "db_user", "db_password"];

/// `postgres://user:password@host:port/name` from the component's variables.
pub async fn address_from_variables() -> Result<String, ApiError> {
    let mut values = Vec::with_capacity(ADDRESS_VARIABLES.len());
    for name in ADDRESS_VARIABLES {
        let value = variables::get(name).await.map_err(|e| {
            ApiError::unavailable(format!("database configuration: variable `{name}`: {e}"))
        })?;
        values.push(value);
    }
    let [host, port, name, user, password] = <[String; 5]>::try_from(values).expect("five values");
    Ok(address(&host, &port, &name, &user, &password))
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

/// Opens a connection to the component's database; failure is a 503.
pub async fn connect() -> Result<Connection, ApiError> {
    let address = address_from_variables().await?;
    Connection::open(address).await.map_err(unavailable)
}

/// Runs `statement` on `connection` and reads every row; failure is a 503.
pub async fn rows(
    connection: &Connection,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<Vec<Row>, ApiError> {
    connection
        .query(statement, params)
        .await
        .map_err(unavailable)?
        .collect()
        .await
        .map_err(unavailable)
}

/// Connects and runs one statement, reading every row; failure is a 503.
pub async fn query(statement: &str, params: Vec<ParameterValue>) -> Result<Vec<Row>, ApiError> {
    rows(&connect().await?, statement, params).await
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
