//! # Catalogue
//!
//! The Craftista product catalogue (seed `000`) as a Spin component.
//!
//! Routes:
//! - `GET /api/products`: every product, as a JSON array.
//! - `GET /api/products/{id}`: one product, or a JSON 404 for an unknown or malformed id.
//! - `GET /catalogue/`: the home page with system info (`/` in the seed; see README's route rule).
//! - `GET /catalogue/health`: `{"status": "healthy"}` (`/health` in the seed).
//! - `GET /catalogue/metrics`: seed 000's Prometheus families (`/metrics` in the seed).
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

use std::rc::Rc;

use guest_kit::metrics::{Gauge, GaugeValue, HttpMetrics};
use guest_kit::routes::{Route, Routes};
use guest_kit::{ApiError, ApiResult, Log, Response, Service, json};
use http::{HeaderValue, StatusCode};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

use crate::config::{Config, DataSource};
use crate::products::{Product, Source};

/// Tells clients (and tests) where a product response came from: `db` or `json`.
const DATA_SOURCE_HEADER: &str = "x-data-source";

/// Seed 000's metric families: `endpoint` is the route's name, as Flask names endpoints.
static SERVICE: Service = Service {
    name: "catalogue",
    http: HttpMetrics {
        requests: "catalogue_http_requests_total",
        requests_help: "Total number of HTTP requests",
        duration: "catalogue_http_request_duration_seconds",
        duration_help: "HTTP request duration in seconds",
        route_label: "endpoint",
        duration_by_status: false,
    },
    counters: &[],
    histograms: &[],
    gauges: &[],
    route_of: |path| ROUTES.label(path),
};

static DB_CONNECTION_STATUS: Gauge = Gauge {
    name: "catalogue_db_connection_status",
    help: "Database connection status (1=connected, 0=disconnected)",
    labels: &[],
};

static PRODUCTS_TOTAL: Gauge = Gauge {
    name: "catalogue_products_total",
    help: "Total number of products in catalogue",
    labels: &[],
};

#[derive(Clone, Copy)]
enum Endpoint {
    Products,
    Product,
    NoProduct,
    Home,
    Health,
    Metrics,
}

/// Labelled with the Flask endpoint names of the seed's routes.
static ROUTES: Routes<Endpoint> = Routes(&[
    Route {
        path: "/api/products",
        label: Some("get_products"),
        methods: &[(Method::GET, Endpoint::Products)],
    },
    Route {
        path: "/api/products/:id",
        label: Some("get_product"),
        methods: &[(Method::GET, Endpoint::Product)],
    },
    // Flask has no such route; the product's JSON 404 answers it, as for a malformed id.
    Route {
        path: "/api/products/...",
        label: Some("unmatched"),
        methods: &[(Method::GET, Endpoint::NoProduct)],
    },
    Route {
        path: "/catalogue",
        label: Some("home"),
        methods: &[(Method::GET, Endpoint::Home)],
    },
    Route {
        path: "/catalogue/health",
        label: Some("health"),
        methods: &[(Method::GET, Endpoint::Health)],
    },
    Route {
        path: "/catalogue/metrics",
        label: None,
        methods: &[(Method::GET, Endpoint::Metrics)],
    },
]);

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, log: Log) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request);
    let matched = ROUTES.find(&request).map_err(|e| match e.status {
        // The catalogue's own words for it.
        StatusCode::METHOD_NOT_ALLOWED => ApiError {
            message: "only GET is supported here".into(),
            ..e
        },
        _ => e,
    })?;
    Ok(match matched.endpoint {
        Endpoint::Products => {
            let (products, source) = products::all(&*config(&log).await?, &log).await;
            with_source(json(StatusCode::OK, &*products), source)
        }
        Endpoint::Product => {
            let raw_id = matched.param("id");
            match products::parse_id(raw_id) {
                Ok(id) => match products::one(&*config(&log).await?, id, &log).await {
                    (Some(product), source) => with_source(json(StatusCode::OK, &product), source),
                    (None, source) => with_source(not_found(raw_id), source),
                },
                Err(products::IdError::Malformed) => not_found(raw_id),
            }
        }
        Endpoint::NoProduct => {
            let rest = path.trim_end_matches('/').strip_prefix("/api/products/");
            not_found(rest.unwrap_or_default())
        }
        Endpoint::Home => home(&*config(&log).await?, &request, &log).await,
        // Liveness does not depend on configuration or the database.
        Endpoint::Health => json(StatusCode::OK, &serde_json::json!({ "status": "healthy" })),
        Endpoint::Metrics => return metrics(&*config(&log).await?, &log).await,
    })
}

/// The configuration now (see [`config`]); a 500 naming the problem when it is invalid.
async fn config(log: &Log) -> ApiResult<Rc<Config>> {
    Config::current(log).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration: {e}"),
        )
    })
}

/// `GET /catalogue/metrics`: the request families, and the two gauges measured now: whether
/// the configured database answers, and how many products the source in use holds.
async fn metrics(config: &Config, log: &Log) -> ApiResult<Response> {
    let (products, source) = products::all(config, log).await;
    let connected = config.data_source == DataSource::Db && source == Source::Db;
    SERVICE.render_metrics(vec![
        GaugeValue {
            gauge: &DB_CONNECTION_STATUS,
            labels: vec![],
            value: if connected { 1.0 } else { 0.0 },
        },
        GaugeValue {
            gauge: &PRODUCTS_TOTAL,
            labels: vec![],
            value: products.len() as f64,
        },
    ])
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
async fn home(config: &Config, request: &Request, log: &Log) -> Response {
    let (products, source) = products::all(config, log).await;
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
