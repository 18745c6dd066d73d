//! The PostgreSQL baseline of `bench/run.sh`: the endpoints the catalogue, backend and
//! frontend-api components serve from PostgreSQL, with the same bodies, status codes and
//! content types, served natively (axum, tokio-postgres, a pool of 64 clients per database,
//! prepared statements cached). No logs, metrics or tracing: what native Rust can do.
//!
//! Usage: `native-pg-baseline <listen-addr>`, the databases' URLs in `CATALOGUE_DSN`,
//! `PRODUCTS_DSN` and `APPDB_DSN`.

use std::error::Error;
use std::fmt::Display;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use guest_kit::fields;
use guest_kit::time::isoformat;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

const POOL_SIZE: usize = 64;
/// The largest JSON body read (guest-kit's `MAX_JSON_BODY`); larger ones get a 413.
const MAX_JSON_BODY: usize = 1024 * 1024;
/// The catalogue's header saying where products came from (always the database here).
const DATA_SOURCE: [(&str, &str); 1] = [("x-data-source", "db")];

const CATALOGUE_ALL: &str = "SELECT id, name, description, image_url FROM products ORDER BY id";
const CATALOGUE_ONE: &str = "SELECT id, name, description, image_url FROM products WHERE id = $1";
/// The backend's first page (`GET /products` without `limit`): 100 rows.
const PRODUCTS_ALL: &str =
    "SELECT id, name, price, category, created_at FROM products ORDER BY id LIMIT 100";
const PRODUCTS_ONE: &str =
    "SELECT id, name, price, category, created_at FROM products WHERE id = $1";
const PRODUCTS_INSERT: &str = "INSERT INTO products (name, price, category) VALUES ($1, $2, $3) \
                               RETURNING id, name, price, category, created_at";
const USERS: &str = "SELECT id, username, email, created_at FROM users ORDER BY id LIMIT $1";

#[derive(Clone)]
struct Pools {
    catalogue: Pool,
    products: Pool,
    appdb: Pool,
}

/// guest-kit's `ApiError`: `{"error": "...", "field": "..."}` with its status.
#[derive(Serialize)]
struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
        }
    }

    /// A 400 naming the field at fault.
    fn invalid(field: &'static str, problem: impl Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: format!("{field}: {problem}"),
            field: Some(field.to_owned()),
        }
    }

    fn unavailable(problem: impl Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {problem}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// The components' own validation errors (guest-kit's `fields`), answered the same way.
impl From<guest_kit::ApiError> for ApiError {
    fn from(error: guest_kit::ApiError) -> Self {
        Self {
            status: error.status,
            error: error.message,
            field: error.field,
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::unavailable(error)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    /// The server's message and SQLSTATE when it sent one, as guest-kit describes errors.
    fn from(error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => Self::unavailable(format_args!("{} ({})", db.message(), db.code().code())),
            None => Self::unavailable(error),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs `statement` (prepared once per pooled connection) and reads every row.
async fn query(
    pool: &Pool,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> ApiResult<Vec<Row>> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(statement).await?;
    Ok(client.query(&statement, params).await?)
}

// --- catalogue: GET /api/products, GET /api/products/{id} -------------------------------

#[derive(Serialize)]
struct CatalogueProduct {
    id: i64,
    name: String,
    description: String,
    image_url: String,
}

impl CatalogueProduct {
    fn from_row(row: &Row) -> ApiResult<Self> {
        let text = |column| {
            row.try_get::<_, Option<String>>(column)
                .map(Option::unwrap_or_default)
        };
        Ok(Self {
            id: row.try_get::<_, i32>("id")?.into(),
            name: text("name")?,
            description: text("description")?,
            image_url: text("image_url")?,
        })
    }
}

async fn catalogue_products(State(pools): State<Pools>) -> ApiResult<Response> {
    let rows = query(&pools.catalogue, CATALOGUE_ALL, &[]).await?;
    let products = rows
        .iter()
        .map(CatalogueProduct::from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((DATA_SOURCE, Json(products)).into_response())
}

async fn catalogue_product(
    State(pools): State<Pools>,
    Path(raw_id): Path<String>,
) -> ApiResult<Response> {
    let not_found = || {
        let body = serde_json::json!({ "error": "Product not found", "id": raw_id });
        (StatusCode::NOT_FOUND, Json(body))
    };
    // A positive decimal integer, as the component parses it; anything else is unknown.
    let id = raw_id
        .parse::<i32>()
        .ok()
        .filter(|id| *id > 0 && raw_id.bytes().all(|b| b.is_ascii_digit()));
    let Some(id) = id else {
        return Ok(not_found().into_response());
    };
    let rows = query(&pools.catalogue, CATALOGUE_ONE, &[&id]).await?;
    Ok(match rows.first() {
        Some(row) => (DATA_SOURCE, Json(CatalogueProduct::from_row(row)?)).into_response(),
        None => (DATA_SOURCE, not_found()).into_response(),
    })
}

// --- backend: GET /products, GET /products/{id}, POST /products ---------------------------

#[derive(Serialize)]
struct Product {
    id: i32,
    name: String,
    price: f64,
    category: String,
    created_at: String,
}

impl Product {
    fn from_row(row: &Row) -> ApiResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            price: row.try_get("price")?,
            category: row.try_get("category")?,
            created_at: isoformat(row.try_get::<_, NaiveDateTime>("created_at")?),
        })
    }
}

async fn list_products(State(pools): State<Pools>) -> ApiResult<Json<Vec<Product>>> {
    let rows = query(&pools.products, PRODUCTS_ALL, &[]).await?;
    Ok(Json(
        rows.iter()
            .map(Product::from_row)
            .collect::<ApiResult<_>>()?,
    ))
}

async fn get_product(
    State(pools): State<Pools>,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Product>> {
    let id = raw_id
        .parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("product not found: `{raw_id}` is not a valid id"),
            )
        })?;
    let rows = query(&pools.products, PRODUCTS_ONE, &[&id]).await?;
    match rows.first() {
        Some(row) => Ok(Json(Product::from_row(row)?)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("product {id} not found"),
        )),
    }
}

async fn create_product(
    State(pools): State<Pools>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    let body = json_object(body)?;
    let name = fields::text(&body, "name", 200)?;
    let price = fields::number_at_least(&body, "price", 0.0)?;
    let category = fields::text(&body, "category", 100)?;
    let rows = query(
        &pools.products,
        PRODUCTS_INSERT,
        &[&name, &price, &category],
    )
    .await?;
    let row = rows.first().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "insert returned no row")
    })?;
    Ok((StatusCode::CREATED, Json(Product::from_row(row)?)))
}

// --- frontend-api: GET /api/v1/users?limit=N ----------------------------------------------

/// The component builds users with `json!`, whose keys serde_json sorts: so these fields are
/// in alphabetical order.
#[derive(Serialize)]
struct User {
    created_at: String,
    email: String,
    id: i32,
    username: String,
}

#[derive(Serialize)]
struct Users {
    count: usize,
    users: Vec<User>,
}

async fn list_users(
    State(pools): State<Pools>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Users>> {
    let limit = match params.iter().find(|(key, _)| key == "limit") {
        None => 100,
        Some((_, raw)) if raw.is_empty() => 100,
        Some((_, raw)) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("must be a whole number from 1 to 1000, got `{raw}`"),
                )
            })?,
    };
    let rows = query(&pools.appdb, USERS, &[&limit]).await?;
    let users = rows
        .iter()
        .map(|row| {
            Ok(User {
                created_at: isoformat(row.try_get::<_, NaiveDateTime>("created_at")?),
                email: row.try_get("email")?,
                id: row.try_get("id")?,
                username: row.try_get("username")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Users {
        count: users.len(),
        users,
    }))
}

// --- guest-kit's request validation ------------------------------------------------------

/// The body as a JSON object, whatever its `Content-Type`.
fn json_object(body: Result<Bytes, BytesRejection>) -> ApiResult<Map<String, Value>> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: larger than {MAX_JSON_BODY} bytes"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body: unreadable: {}", rejection.body_text()),
        ),
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ApiError::invalid(
            "body",
            format!("expected a JSON object, got {}", fields::kind(&other)),
        )),
        Err(e) => Err(ApiError::invalid("body", format!("malformed JSON: {e}"))),
    }
}

// --- server ------------------------------------------------------------------------------

fn pool(dsn_variable: &str) -> Result<Pool, Box<dyn Error>> {
    let dsn = std::env::var(dsn_variable).map_err(|_| format!("{dsn_variable} is not set"))?;
    let manager = Manager::from_config(
        dsn.parse()?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(POOL_SIZE).build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let addr = std::env::args()
        .nth(1)
        .ok_or("usage: native-pg-baseline <listen-addr>")?;
    let pools = Pools {
        catalogue: pool("CATALOGUE_DSN")?,
        products: pool("PRODUCTS_DSN")?,
        appdb: pool("APPDB_DSN")?,
    };
    let app = Router::new()
        .route("/api/products", get(catalogue_products))
        .route("/api/products/{id}", get(catalogue_product))
        .route("/products", get(list_products).post(create_product))
        .route("/products/{id}", get(get_product))
        .route("/api/v1/users", get(list_users))
        .fallback(|uri: Uri| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no route for {}", uri.path()),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(pools);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("Serving http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
