//! # Data ingest
//!
//! Seed `004`'s data-ingest service: records of `{type, data, source}` stored as JSONB.
//!
//! Routes (seed paths; the colliding ones under `/data-ingest`, see README's route rule):
//! - `POST /api/v1/ingest`: one record (an object) or several (an array, at most
//!   [`records::MAX_PER_INGEST`]) → 201 `{status, ingested, ids}`.
//! - `POST /api/v1/ingest/batch`: `{"records": [...]}`, at most [`records::MAX_PER_BATCH`],
//!   all or nothing → 201 `{status, batch_size, ids}`.
//! - `GET /api/v1/ingest/stats`: totals by type and source.
//! - `GET /api/v1/ingest/recent?limit=N`: the newest N (1..=100, default 10).
//! - `GET /data-ingest/health/live`, `/data-ingest/health/ready`, `/data-ingest/api/v1/info`.
//!
//! # Layout
//! - [`records`]: validation, storage and queries.

mod records;

use guest_kit::metrics;
use guest_kit::{ApiError, ApiResult, Log, Response, Service, probe};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const INFO: probe::Service = probe::Service {
    name: "data-ingest",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &[
        "/api/v1/ingest",
        "/api/v1/ingest/batch",
        "/api/v1/ingest/stats",
        "/api/v1/ingest/recent",
    ],
};

/// Seed 004 names no metrics; the request families carry the seed-001 names.
static SERVICE: Service = Service {
    name: "data-ingest",
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
        ("/data-ingest/metrics", Method::GET) => SERVICE.render_metrics(vec![]),
        ("/api/v1/ingest", Method::POST) => records::ingest(request).await,
        ("/api/v1/ingest/batch", Method::POST) => records::ingest_batch(request).await,
        ("/api/v1/ingest/stats", Method::GET) => records::stats().await,
        ("/api/v1/ingest/recent", Method::GET) => {
            let limit = guest_kit::request::query_param(&request, "limit");
            records::recent(limit.as_deref()).await
        }
        ("/api/v1/ingest" | "/api/v1/ingest/batch", _) => Err(ApiError::method_not_allowed("POST")),
        ("/api/v1/ingest/stats" | "/api/v1/ingest/recent" | "/data-ingest/metrics", _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
