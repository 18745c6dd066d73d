//! # Frontend API
//!
//! Seed `004`'s gateway: users on PostgreSQL, validated by the business-logic service, and
//! data ingestion proxied to the data-ingest service, both through Spin service chaining
//! (`http://<component>.spin.internal`), so no request leaves the host.
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

use guest_kit::{ApiError, ApiResult, Response, probe};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const SERVICE: probe::Service = probe::Service {
    name: "frontend-api",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &["/api/v1/users", "/api/v1/data/ingest"],
};

#[http_service]
async fn handle(request: Request) -> Response {
    route(request).await.unwrap_or_else(ApiError::into_response)
}

async fn route(request: Request) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request)
        .trim_end_matches('/')
        .to_owned();
    let method = request.method().clone();
    if let Some(answer) = probe::serve(&SERVICE, &method, &path).await {
        return answer;
    }
    match (path.as_str(), method) {
        ("/api/v1/users", Method::GET) => {
            let limit = guest_kit::request::query_param(&request, "limit");
            users::list(limit.as_deref()).await
        }
        ("/api/v1/users", Method::POST) => users::create(request).await,
        ("/api/v1/data/ingest", Method::POST) => {
            let body = guest_kit::request::json_body(request).await?;
            chain::post_json(chain::DATA_INGEST, "/api/v1/ingest", &body).await
        }
        (endpoint, _) if SERVICE.endpoints.contains(&endpoint) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
