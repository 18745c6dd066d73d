//! The `products` table (seed 001): rows, validation, and queries.

use guest_kit::db::Row;
use guest_kit::metrics::{Counter, Gauge, Metrics};
use guest_kit::{ApiError, ApiResult, Log, Response, db, fields, json};
use http::StatusCode;
use serde::Serialize;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

/// A product as the seed's API returns it.
#[derive(Debug, Serialize)]
pub struct Product {
    pub id: i32,
    pub name: String,
    pub price: f64,
    pub category: String,
    pub created_at: String,
}

const COLUMNS: &str = "id, name, price, category, created_at";

fn from_row(row: &Row) -> ApiResult<Product> {
    let broken = |column: &str| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("products.{column}: unexpected value"),
        )
    };
    Ok(Product {
        id: row.get("id").ok_or_else(|| broken("id"))?,
        name: row.get("name").ok_or_else(|| broken("name"))?,
        price: row.get("price").ok_or_else(|| broken("price"))?,
        category: row.get("category").ok_or_else(|| broken("category"))?,
        created_at: row
            .get("created_at")
            .map(guest_kit::time::isoformat)
            .ok_or_else(|| broken("created_at"))?,
    })
}

/// `database_queries_total{operation, table}`, as the seed counts its queries.
pub static DATABASE_QUERIES: Counter = Counter {
    name: "database_queries_total",
    help: "Database queries by operation and table",
    labels: &["operation", "table"],
};

/// `database_connection_pool{status="checked_out"}`: connections the component holds (as of
/// its last flush). A request opens its own connection (the host pools them, out of the
/// guest's sight), so there is no `size` to report.
pub static DATABASE_CONNECTIONS: Gauge = Gauge {
    name: "database_connection_pool",
    help: "Database connections by status",
    labels: &["status"],
};

/// Runs one `operation` (`select`, `insert`) on the products table, counted and logged.
async fn select(
    operation: &str,
    statement: &str,
    params: Vec<ParameterValue>,
    log: &Log,
) -> ApiResult<Vec<Product>> {
    let metrics = Metrics::new(crate::SERVICE.name);
    metrics.count(&DATABASE_QUERIES, &[operation, "products"], 1);
    metrics.adjust(&DATABASE_CONNECTIONS, &["checked_out"], 1);
    let rows = db::query(statement, params).await;
    metrics.adjust(&DATABASE_CONNECTIONS, &["checked_out"], -1);
    let products: Vec<Product> = rows?.iter().map(from_row).collect::<ApiResult<_>>()?;
    log.info(
        &format!("db_query_products: {operation}"),
        serde_json::json!({ "db.type": "postgresql", "db.statement": statement, "count": products.len() }),
    );
    Ok(products)
}

/// `GET /products` without `limit`, and the most one page may hold.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// `GET /products?limit=N&offset=M`: one page of the products, by id (`POST /products` is
/// public, so the table has no bound: the seed's "every product" would grow without one).
pub async fn list(limit: Option<&str>, offset: Option<&str>, log: &Log) -> ApiResult<Response> {
    let limit = fields::limit(limit, DEFAULT_PAGE, MAX_PAGE)?;
    let offset = fields::offset(offset)?;
    let products = select(
        "select",
        &format!("SELECT {COLUMNS} FROM products ORDER BY id LIMIT $1 OFFSET $2"),
        vec![ParameterValue::Int64(limit), ParameterValue::Int64(offset)],
        log,
    )
    .await?;
    Ok(json(StatusCode::OK, &products))
}

/// `GET /products/{id}`.
pub async fn get(raw_id: &str, log: &Log) -> ApiResult<Response> {
    let id = fields::path_id(raw_id, "product")?;
    let products = select(
        "select",
        &format!("SELECT {COLUMNS} FROM products WHERE id = $1"),
        vec![ParameterValue::Int32(id)],
        log,
    )
    .await?;
    match products.into_iter().next() {
        Some(product) => Ok(json(StatusCode::OK, &product)),
        None => Err(ApiError::not_found(format!("product {id} not found"))),
    }
}

/// `POST /products`: validates every field before touching the database; 201 with the row.
pub async fn create(request: Request, log: &Log) -> ApiResult<Response> {
    let body = guest_kit::request::json_object(request).await?;
    let name = fields::text(&body, "name", 200)?;
    let price = fields::number_at_least(&body, "price", 0.0)?;
    let category = fields::text(&body, "category", 100)?;
    let mut created = select(
        "insert",
        &format!(
            "INSERT INTO products (name, price, category) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
        ),
        vec![
            ParameterValue::Str(name),
            ParameterValue::Floating64(price),
            ParameterValue::Str(category),
        ],
        log,
    )
    .await?;
    let product = created.pop().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "insert returned no row")
    })?;
    Ok(json(StatusCode::CREATED, &product))
}
