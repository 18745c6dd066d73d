//! # Business logic
//!
//! Seed `004`'s business-logic service: user validation, order processing, analytics.
//!
//! Routes (seed paths; the colliding ones under `/business-logic`, see README's route rule):
//! - `POST /api/v1/validate/user`: `{username, email}` → 200 valid, 400 malformed, 409 taken.
//! - `POST /api/v1/process/order`: `{user_id, amount}` → 201 with the order, 404 unknown user.
//! - `GET /api/v1/analytics/summary`: users, orders, revenue.
//! - `GET /business-logic/health/live`, `/business-logic/health/ready`, `/business-logic/api/v1/info`.
//!
//! The gateway (`frontend-api`) calls `validate/user` through service chaining.
//!
//! # Layout
//! - [`users`]: the user rules.
//! - [`orders`]: order processing and the analytics summary.

mod orders;
mod users;

use guest_kit::metrics;
use guest_kit::{ApiError, ApiResult, Log, Response, Service, probe};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const INFO: probe::Service = probe::Service {
    name: "business-logic",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &[
        "/api/v1/validate/user",
        "/api/v1/process/order",
        "/api/v1/analytics/summary",
    ],
};

/// Seed 004 names no metrics; the request families carry the seed-001 names.
static SERVICE: Service = Service {
    name: "business-logic",
    http: metrics::HTTP_REQUESTS,
    counters: &[],
    histograms: &[],
    gauges: &[],
    route_of: |path| probe::route_of(&INFO, path),
};

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, _log: Log) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request)
        .trim_end_matches('/')
        .to_owned();
    let method = request.method().clone();
    if let Some(answer) = probe::serve(&INFO, &method, &path).await {
        return answer;
    }
    match (path.as_str(), method) {
        ("/business-logic/metrics", Method::GET) => SERVICE.render_metrics(vec![]),
        ("/api/v1/validate/user", Method::POST) => users::validate(request).await,
        ("/api/v1/process/order", Method::POST) => orders::process(request).await,
        ("/api/v1/analytics/summary", Method::GET) => orders::summary().await,
        ("/api/v1/validate/user" | "/api/v1/process/order", _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        ("/api/v1/analytics/summary" | "/business-logic/metrics", _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
