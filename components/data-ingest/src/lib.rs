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

use guest_kit::{ApiError, ApiResult, Response, probe};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const SERVICE: &str = "data-ingest";

#[http_service]
async fn handle(request: Request) -> Response {
    route(request).await.unwrap_or_else(ApiError::into_response)
}

async fn route(request: Request) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request)
        .trim_end_matches('/')
        .to_owned();
    let method = request.method().clone();
    let expected = match path.as_str() {
        "/api/v1/ingest" | "/api/v1/ingest/batch" => Method::POST,
        "/api/v1/ingest/stats"
        | "/api/v1/ingest/recent"
        | "/data-ingest/health/live"
        | "/data-ingest/health/ready"
        | "/data-ingest/api/v1/info" => Method::GET,
        _ => return Err(ApiError::not_found(format!("no route for {path}"))),
    };
    if method != expected {
        return Err(ApiError::method_not_allowed());
    }
    match path.as_str() {
        "/api/v1/ingest" => records::ingest(request).await,
        "/api/v1/ingest/batch" => records::ingest_batch(request).await,
        "/api/v1/ingest/stats" => records::stats().await,
        "/api/v1/ingest/recent" => {
            let limit = guest_kit::request::query_param(&request, "limit");
            records::recent(limit.as_deref()).await
        }
        "/data-ingest/health/live" => Ok(probe::live(SERVICE)),
        "/data-ingest/health/ready" => Ok(probe::ready(SERVICE).await),
        _ => Ok(probe::info(
            SERVICE,
            env!("CARGO_PKG_VERSION"),
            &[
                "/api/v1/ingest",
                "/api/v1/ingest/batch",
                "/api/v1/ingest/stats",
                "/api/v1/ingest/recent",
            ],
        )
        .await),
    }
}
