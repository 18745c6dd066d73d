//! # Catalogue
//!
//! The Craftista product catalogue (seed `000`) as a Spin component.
//!
//! Routes:
//! - `GET /api/products`: every product, as a JSON array.
//! - `GET /api/products/{id}`: one product, or a JSON 404 for an unknown or malformed id.
//! - `GET /catalogue/`: the home page with system info (`/` in the seed; see README's route rule).
//! - `GET /catalogue/health`: `{"status": "healthy"}` (`/health` in the seed).
//!
//! Products come from PostgreSQL when `data_source` is `db`, and from the embedded JSON
//! catalogue otherwise, or when the database fails (logged as the seed logs it). Every
//! product response says which in its `x-data-source` header.
//!
//! # Layout
//! - [`config`]: the seed's layered configuration over Spin variables and `files`.
//! - [`products`]: the embedded catalogue, id parsing, and the database queries.

mod config;
mod products;

use guest_kit::{ApiError, Response, json};
use http::{HeaderValue, StatusCode};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

use crate::config::{Config, DataSource};
use crate::products::{Product, Source};

/// Tells clients (and tests) where a product response came from: `db` or `json`.
const DATA_SOURCE_HEADER: &str = "x-data-source";

#[http_service]
async fn handle(request: Request) -> Response {
    let path = guest_kit::request::path(&request).to_owned();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if request.method() != Method::GET {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported here")
            .into_response();
    }
    if segments == ["catalogue", "health"] {
        // Liveness does not depend on configuration or the database.
        return json(StatusCode::OK, &serde_json::json!({ "status": "healthy" }));
    }
    let config = match Config::load().await {
        Ok(config) => config,
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("configuration: {e}"),
            )
            .into_response();
        }
    };
    match segments.as_slice() {
        ["api", "products"] => {
            let (products, source) = products::all(&config).await;
            with_source(json(StatusCode::OK, &products), source)
        }
        ["api", "products", raw_id] => match products::parse_id(raw_id) {
            Ok(id) => match products::one(&config, id).await {
                (Some(product), source) => with_source(json(StatusCode::OK, &product), source),
                (None, source) => with_source(not_found(raw_id), source),
            },
            Err(products::IdError::Malformed) => not_found(raw_id),
        },
        ["api", "products", rest @ ..] => not_found(&rest.join("/")),
        ["catalogue"] => home(&config, &request).await,
        _ => ApiError::not_found(format!("no route for {path}")).into_response(),
    }
}

fn with_source(mut response: Response, source: Source) -> Response {
    response.headers_mut().insert(
        DATA_SOURCE_HEADER,
        HeaderValue::from_static(source.as_str()),
    );
    response
}

fn not_found(raw_id: &str) -> Response {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": "Product not found", "id": raw_id }),
    )
}

/// The seed's home page: the service, its version and data source, and the request's view
/// of the system (a Wasm component has no hostname or OS of its own to report).
async fn home(config: &Config, request: &Request) -> Response {
    let (products, source) = products::all(config).await;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_owned()
    };
    let info = serde_json::json!({
        "service": "catalogue",
        "app_version": config.app_version,
        "data_source": {
            "configured": config.data_source.as_str(),
            "in_use": source.as_str(),
            "database": (config.data_source == DataSource::Db).then_some(&config.db_location),
        },
        "products_total": products.len(),
        "system": {
            "runtime": "Spin (WebAssembly component, wasi:http 0.3)",
            "architecture": std::env::consts::ARCH,
            "os": std::env::consts::OS,
            "client_address": header("spin-client-addr"),
            "url": header("spin-full-url"),
        },
    });
    let wants_html = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return json(StatusCode::OK, &info);
    }
    let rows: String = products
        .iter()
        .map(|Product { id, name, .. }| format!("<li>{id}: {}</li>", escape_html(name)))
        .collect();
    let page = format!(
        "<!doctype html><html><head><title>Craftista catalogue</title></head><body>\
         <h1>Craftista catalogue</h1><pre>{}</pre><ul>{rows}</ul></body></html>",
        escape_html(&serde_json::to_string_pretty(&info).unwrap_or_default())
    );
    let mut response = Response::new(spin_sdk::http::FullBody::new(page.into()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
