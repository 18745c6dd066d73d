//! The products: the embedded JSON catalogue, and the PostgreSQL table with fallback to it.

use std::rc::Rc;

use guest_kit::Log;
use serde::{Deserialize, Serialize};
use spin_sdk::pg::ParameterValue;

use crate::config::{Config, DataSource};

/// The catalogue shipped inside the component: the seed's `products.json`.
const EMBEDDED_CATALOGUE: &str = include_str!("../products.json");

/// One catalogue entry, in the column order of the seed's `products` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub image_url: String,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Db,
    Json,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Db => "db",
            Self::Json => "json",
        }
    }
}

thread_local! {
    /// The embedded catalogue, parsed once per instance.
    static EMBEDDED: Rc<Vec<Product>> = Rc::new(
        serde_json::from_str(EMBEDDED_CATALOGUE).expect("products.json is valid (checked by tests)"),
    );
}

/// Every product of the embedded catalogue, in file order.
pub fn embedded() -> Rc<Vec<Product>> {
    EMBEDDED.with(Rc::clone)
}

/// Why a product id from the path could not be used.
#[derive(Debug, PartialEq)]
pub enum IdError {
    /// Not a positive whole number, e.g. `abc`, `-1`, `1.5`.
    Malformed,
}

/// Parses the `{id}` path segment: a positive integer, as the seed's `SERIAL` key.
pub fn parse_id(raw: &str) -> Result<i32, IdError> {
    match raw.parse::<i32>() {
        Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(IdError::Malformed),
    }
}

const SELECT_ALL: &str = "SELECT id, name, description, image_url FROM products ORDER BY id";
const SELECT_ONE: &str = "SELECT id, name, description, image_url FROM products WHERE id = $1";

/// Every product, from the configured source; the JSON catalogue if the database fails.
pub async fn all(config: &Config, log: &Log) -> (Rc<Vec<Product>>, Source) {
    if config.data_source == DataSource::Db {
        match query(config, SELECT_ALL, vec![], log).await {
            Ok(products) => return (Rc::new(products), Source::Db),
            Err(e) => log_fallback(&e, log),
        }
    }
    (embedded(), Source::Json)
}

/// One product, from the configured source; the JSON catalogue if the database fails.
pub async fn one(config: &Config, id: i32, log: &Log) -> (Option<Product>, Source) {
    if config.data_source == DataSource::Db {
        match query(config, SELECT_ONE, vec![ParameterValue::Int32(id)], log).await {
            Ok(products) => return (products.into_iter().next(), Source::Db),
            Err(e) => log_fallback(&e, log),
        }
    }
    let product = embedded().iter().find(|p| p.id == i64::from(id)).cloned();
    (product, Source::Json)
}

fn log_fallback(error: &str, log: &Log) {
    // The seed's messages, which its LogQL queries ("Database error", "Falling back to JSON") match.
    log.error(&format!("Database error: {error}"), serde_json::Value::Null);
    log.info("Falling back to JSON data source", serde_json::Value::Null);
}

async fn query(
    config: &Config,
    statement: &str,
    params: Vec<ParameterValue>,
    log: &Log,
) -> Result<Vec<Product>, String> {
    let describe = |e: spin_sdk::pg::Error| guest_kit::db::describe(&e);
    let rows = guest_kit::db::open(&config.db_address)
        .await
        .map_err(describe)?
        .read_rows(statement, params)
        .await
        .map_err(describe)?;
    log.info("Using database as data source", serde_json::Value::Null);
    rows.iter()
        .map(|row| {
            Ok(Product {
                id: row
                    .get::<i32>("id")
                    .map(i64::from)
                    .ok_or("column id: not an integer")?,
                name: row
                    .get::<Option<String>>("name")
                    .flatten()
                    .unwrap_or_default(),
                description: row
                    .get::<Option<String>>("description")
                    .flatten()
                    .unwrap_or_default(),
                image_url: row
                    .get::<Option<String>>("image_url")
                    .flatten()
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_parses_with_unique_ids() {
        let products = embedded();
        assert!(!products.is_empty());
        let ids: std::collections::BTreeSet<_> = products.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), products.len(), "an id appears twice");
    }

    #[test]
    fn ids_are_positive_decimal_integers() {
        assert_eq!(parse_id("3"), Ok(3));
        for raw in ["0", "-1", "1.5", "abc", "+1", "99999999999", ""] {
            assert_eq!(parse_id(raw), Err(IdError::Malformed), "{raw}");
        }
    }
}
