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
use guest_kit::probe::{self, Probe};
use guest_kit::routes::{Route, Routes};
use guest_kit::{ApiResult, Log, Response, Service};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const INFO: probe::Service = probe::Service {
    name: "business-logic",
    version: env!("CARGO_PKG_VERSION"),
};

/// Seed 004 names no metrics; the request families carry the seed-001 names.
static SERVICE: Service = Service {
    name: "business-logic",
    http: metrics::HTTP_REQUESTS,
    counters: &[],
    histograms: &[],
    gauges: &[],
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    ValidateUser,
    ProcessOrder,
    Summary,
    Probe(Probe),
    Metrics,
}

/// The service's endpoints (listed by its `api/v1/info`), then its probes and metrics.
static ROUTES: Routes<Endpoint> = guest_kit::service_routes!(
    "business-logic",
    Endpoint::Probe,
    Endpoint::Metrics,
    [
        Route {
            path: "/api/v1/validate/user",
            label: Some("/api/v1/validate/user"),
            methods: &[(Method::POST, Endpoint::ValidateUser)],
        },
        Route {
            path: "/api/v1/process/order",
            label: Some("/api/v1/process/order"),
            methods: &[(Method::POST, Endpoint::ProcessOrder)],
        },
        Route {
            path: "/api/v1/analytics/summary",
            label: Some("/api/v1/analytics/summary"),
            methods: &[(Method::GET, Endpoint::Summary)],
        },
    ]
);

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, _log: Log) -> ApiResult<Response> {
    match ROUTES.find(&request)?.endpoint {
        Endpoint::ValidateUser => users::validate(request).await,
        Endpoint::ProcessOrder => orders::process(request).await,
        Endpoint::Summary => orders::summary().await,
        Endpoint::Probe(probe) => Ok(probe::answer(&INFO, &ROUTES, probe).await),
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
    }
}
