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

use guest_kit::{ApiError, ApiResult, Response, probe};
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

const SERVICE: &str = "business-logic";

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
        "/api/v1/validate/user" | "/api/v1/process/order" => Method::POST,
        "/api/v1/analytics/summary"
        | "/business-logic/health/live"
        | "/business-logic/health/ready"
        | "/business-logic/api/v1/info" => Method::GET,
        _ => return Err(ApiError::not_found(format!("no route for {path}"))),
    };
    if method != expected {
        return Err(ApiError::method_not_allowed());
    }
    match path.as_str() {
        "/api/v1/validate/user" => users::validate(request).await,
        "/api/v1/process/order" => orders::process(request).await,
        "/api/v1/analytics/summary" => orders::summary().await,
        "/business-logic/health/live" => Ok(probe::live(SERVICE)),
        "/business-logic/health/ready" => Ok(probe::ready(SERVICE).await),
        _ => Ok(probe::info(
            SERVICE,
            env!("CARGO_PKG_VERSION"),
            &[
                "/api/v1/validate/user",
                "/api/v1/process/order",
                "/api/v1/analytics/summary",
            ],
        )
        .await),
    }
}
