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
use guest_kit::{ApiError, ApiResult, Log, Response, Service, probe};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const INFO: probe::Service = probe::Service {
    name: "frontend-api",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &["/api/v1/users", "/api/v1/data/ingest"],
};

/// Seed 004 names no metrics; the request families carry the seed-001 names.
static SERVICE: Service = Service {
    name: "frontend-api",
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

async fn route(request: Request, log: Log) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request)
        .trim_end_matches('/')
        .to_owned();
    let method = request.method().clone();
    if let Some(answer) = probe::serve(&INFO, &method, &path).await {
        return answer;
    }
    match (path.as_str(), method) {
        ("/frontend-api/metrics", Method::GET) => SERVICE.render_metrics(vec![]),
        ("/api/v1/users", Method::GET) => {
            let limit = guest_kit::request::query_param(&request, "limit");
            users::list(limit.as_deref()).await
        }
        ("/api/v1/users", Method::POST) => users::create(request, log.trace()).await,
        ("/api/v1/data/ingest", Method::POST) => {
            let body = guest_kit::request::json_body(request).await?;
            chain::post_json(chain::DATA_INGEST, "/api/v1/ingest", &body, log.trace()).await
        }
        ("/api/v1/users", _) => Err(ApiError::method_not_allowed("GET, POST")),
        ("/api/v1/data/ingest", _) => Err(ApiError::method_not_allowed("POST")),
        ("/frontend-api/metrics", _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
