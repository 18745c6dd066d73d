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
use guest_kit::probe::{self, Probe};
use guest_kit::routes::{Route, Routes};
use guest_kit::{ApiResult, Log, Response, Service};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const INFO: probe::Service = probe::Service {
    name: "data-ingest",
    version: env!("CARGO_PKG_VERSION"),
};

/// Seed 004 names no metrics; the request families carry the seed-001 names.
static SERVICE: Service = Service {
    name: "data-ingest",
    http: metrics::HTTP_REQUESTS,
    counters: &[],
    histograms: &[],
    gauges: &[],
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    Ingest,
    IngestBatch,
    Stats,
    Recent,
    Probe(Probe),
    Metrics,
}

/// The service's endpoints (listed by its `api/v1/info`), then its probes and metrics.
static ROUTES: Routes<Endpoint> = guest_kit::service_routes!(
    "data-ingest",
    Endpoint::Probe,
    Endpoint::Metrics,
    [
        Route {
            path: "/api/v1/ingest",
            label: Some("/api/v1/ingest"),
            methods: &[(Method::POST, Endpoint::Ingest)],
        },
        Route {
            path: "/api/v1/ingest/batch",
            label: Some("/api/v1/ingest/batch"),
            methods: &[(Method::POST, Endpoint::IngestBatch)],
        },
        Route {
            path: "/api/v1/ingest/stats",
            label: Some("/api/v1/ingest/stats"),
            methods: &[(Method::GET, Endpoint::Stats)],
        },
        Route {
            path: "/api/v1/ingest/recent",
            label: Some("/api/v1/ingest/recent"),
            methods: &[(Method::GET, Endpoint::Recent)],
        },
    ]
);

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, _log: Log) -> ApiResult<Response> {
    match ROUTES.find(&request)?.endpoint {
        Endpoint::Ingest => records::ingest(request).await,
        Endpoint::IngestBatch => records::ingest_batch(request).await,
        Endpoint::Stats => records::stats().await,
        Endpoint::Recent => {
            let limit = guest_kit::request::query_param(&request, "limit");
            records::recent(limit.as_deref()).await
        }
        Endpoint::Probe(probe) => Ok(probe::answer(&INFO, &ROUTES, probe).await),
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
    }
}
