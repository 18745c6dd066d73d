//! The embedded product catalogue (the seed's JSON data source).

use serde::{Deserialize, Serialize};

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

/// Every product of the embedded catalogue, in file order.
///
/// The file is checked at build time by the integration tests; parsing it per request costs
/// a few microseconds and keeps the component stateless, as a fresh instance serves each request.
pub fn embedded() -> anyhow::Result<Vec<Product>> {
    Ok(serde_json::from_str(EMBEDDED_CATALOGUE)?)
}

/// Why a product id from the path could not be used.
#[derive(Debug, PartialEq)]
pub enum IdError {
    /// Not a positive whole number, e.g. `abc`, `-1`, `1.5`.
    Malformed,
}

/// Parses the `{id}` path segment: a positive integer, as the seed's `SERIAL` key.
pub fn parse_id(raw: &str) -> Result<i64, IdError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(IdError::Malformed),
    }
}
