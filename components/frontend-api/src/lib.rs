//! # Frontend API
//!
//! Seed `004`'s gateway: users on PostgreSQL, validated by the business-logic service, and
//! data ingestion proxied to the data-ingest service, both through Spin service chaining
//! (`http://<component>.spin.internal`, so no request leaves the host) unless the variables
//! `business_logic_host` / `data_ingest_host` name Services (deployed apart, on SpinKube).
//!
//! Routes (seed paths; the colliding ones under `/frontend-api`, see README's route rule):
//! - `GET /api/v1/users?limit=N`, `POST /api/v1/users` (`{username, email}`).
//! - `POST /api/v1/data/ingest`: forwarded to data-ingest's `POST /api/v1/ingest`.
//! - `GET /frontend-api/health/live`, `/frontend-api/health/ready`, `/frontend-api/api/v1/info`.
//!
//! # Layout
//! - [`users`]: listing and creating users.
//! - [`chain`]: calls to the other two services.

mod chain;
mod users;

use guest_kit::metrics;
use guest_kit::probe::{self, Probe};
use guest_kit::routes::{Route, Routes};
use guest_kit::{ApiResult, Log, Response, Service};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const INFO: probe::Service = probe::Service {
    name: "frontend-api",
    version: env!("CARGO_PKG_VERSION"),
};

/// Seed 004 names no metrics; the request families carry the seed-001 names.
static SERVICE: Service = Service {
    name: "frontend-api",
    http: metrics::HTTP_REQUESTS,
    counters: &[],
    histograms: &[],
    gauges: &[],
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    ListUsers,
    CreateUser,
    Ingest,
    Probe(Probe),
    Metrics,
}

/// The service's endpoints (listed by its `api/v1/info`), then its probes and metrics.
static ROUTES: Routes<Endpoint> = guest_kit::service_routes!(
    "frontend-api",
    Endpoint::Probe,
    Endpoint::Metrics,
    [
        Route {
            path: "/api/v1/users",
            label: Some("/api/v1/users"),
            methods: &[
                (Method::GET, Endpoint::ListUsers),
                (Method::POST, Endpoint::CreateUser),
            ],
        },
        Route {
            path: "/api/v1/data/ingest",
            label: Some("/api/v1/data/ingest"),
            methods: &[(Method::POST, Endpoint::Ingest)],
        },
    ]
);

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, log: Log) -> ApiResult<Response> {
    match ROUTES.find(&request)?.endpoint {
        Endpoint::ListUsers => {
            let limit = guest_kit::request::query_param(&request, "limit");
            users::list(limit.as_deref()).await
        }
        Endpoint::CreateUser => users::create(request, log.trace()).await,
        Endpoint::Ingest => {
            let body = guest_kit::request::json_body(request).await?;
            chain::post_json(chain::DATA_INGEST, "/api/v1/ingest", &body, log.trace()).await
        }
        Endpoint::Probe(probe) => Ok(probe::answer(&INFO, &ROUTES, probe).await),
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
    }
}
