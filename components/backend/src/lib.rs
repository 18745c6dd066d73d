//! # Backend
//!
//! The products backend (seed `001`): a products API on PostgreSQL, plus endpoints that
//! exercise latency and errors.
//!
//! Routes:
//! - `GET /products?limit=N&offset=M` (a page), `GET /products/{id}`, `POST /products` (`name`, `price`, `category`).
//! - `GET /slow`: answers after `slow_delay_seconds` (default 5).
//! - `GET /error`: a random error from [`errors::CATALOGUE`]; `?type=NAME` picks one.
//! - `GET /backend/health`: the database check (`/health` in the seed; see README's route rule).
//! - `GET /backend/metrics`: seed 001's Prometheus families (`/metrics` in the seed).
//!
//! # Layout
//! - [`products`]: the table's rows, validation, and queries.
//! - [`errors`]: the errors `/error` answers with.

mod errors;
mod products;

use guest_kit::metrics;
use guest_kit::routes::{Route, Routes};
use guest_kit::{ApiError, ApiResult, Log, Response, Service, json};
use http::StatusCode;
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

/// Seed 001's metric families.
static SERVICE: Service = Service {
    name: "backend",
    http: metrics::HTTP_REQUESTS,
    counters: &[&products::DATABASE_QUERIES],
    histograms: &[],
    gauges: &[&products::DATABASE_CONNECTIONS],
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    ListProducts,
    CreateProduct,
    GetProduct,
    Slow,
    Error,
    Health,
    Metrics,
}

/// Labelled with the seed's route templates, so an id in the path does not make a new series.
static ROUTES: Routes<Endpoint> = Routes(&[
    Route {
        path: "/products",
        label: Some("/products"),
        methods: &[
            (Method::GET, Endpoint::ListProducts),
            (Method::POST, Endpoint::CreateProduct),
        ],
    },
    Route {
        path: "/products/:id",
        label: Some("/products/{id}"),
        methods: &[(Method::GET, Endpoint::GetProduct)],
    },
    Route {
        path: "/slow",
        label: Some("/slow"),
        methods: &[(Method::GET, Endpoint::Slow)],
    },
    Route {
        path: "/error",
        label: Some("/error"),
        methods: &[(Method::GET, Endpoint::Error)],
    },
    Route {
        path: "/backend/health",
        label: Some("/health"),
        methods: &[(Method::GET, Endpoint::Health)],
    },
    Route {
        path: "/backend/metrics",
        label: None,
        methods: &[(Method::GET, Endpoint::Metrics)],
    },
]);

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, log: Log) -> ApiResult<Response> {
    let matched = ROUTES.find(&request)?;
    let query = |name| guest_kit::request::query_param(&request, name);
    match matched.endpoint {
        Endpoint::ListProducts => {
            products::list(query("limit").as_deref(), query("offset").as_deref(), &log).await
        }
        Endpoint::CreateProduct => products::create(request, &log).await,
        Endpoint::GetProduct => products::get(matched.param("id"), &log).await,
        Endpoint::Slow => slow().await,
        Endpoint::Error => Ok(errors::respond(query("type"))),
        Endpoint::Health => Ok(health().await),
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
    }
}

/// Waits `slow_delay_seconds` (the seed's `SLOW_ENDPOINT_DELAY`), then answers.
async fn slow() -> ApiResult<Response> {
    let raw = guest_kit::variable("slow_delay_seconds")
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.message))?;
    let seconds: f64 = raw
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 300.0)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("slow_delay_seconds: `{raw}` is not a number of seconds between 0 and 300"),
            )
        })?;
    spin_sdk::wasip3::clocks::monotonic_clock::wait_for((seconds * 1e9) as u64).await;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "message": "slow response", "delay_seconds": seconds }),
    ))
}

/// The seed's health check: `UP` with the database connected, `DOWN` (503) otherwise.
async fn health() -> Response {
    let database = match guest_kit::db::ping().await {
        Ok(()) => Ok("connected"),
        Err(e) => Err(e),
    };
    let (status, up, db, error) = match &database {
        Ok(state) => (StatusCode::OK, "UP", *state, None),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "DOWN",
            "disconnected",
            Some(e.message.clone()),
        ),
    };
    let mut body = serde_json::json!({
        "status": up,
        "service": "backend",
        "database": db,
        "timestamp": guest_kit::time::now(),
    });
    if let Some(error) = error {
        body["error"] = error.into();
    }
    json(status, &body)
}
