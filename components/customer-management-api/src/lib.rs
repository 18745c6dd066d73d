//! # Customer management API
//!
//! Seed `003`'s internal service: purchases consumed from Kafka (delivered by the
//! kafka-bridge) are stored in MongoDB `purchase_db.purchases`, and queried per user.
//!
//! Routes (README's route rule):
//! - `GET /purchases/{userid}`: `{userid, purchases, count, total_spent}`.
//! - `GET /customer-management-api/health`: `{"status": "healthy", "mongodb": "connected"}`.
//! - `POST /customer-management-api/kafka/purchases`: the bridge's deliveries of topic
//!   `purchases` (bearer token required).
//!
//! # Layout
//! - [`store`]: storing delivered purchases (idempotent by `purchase_id`) and reading them.

mod store;

use guest_kit::{ApiError, ApiResult, Response, json};
use http::StatusCode;
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> Response {
    route(request).await.unwrap_or_else(ApiError::into_response)
}

async fn route(request: Request) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request).to_owned();
    let method = request.method().clone();
    if let Some(userid) = path.strip_prefix("/purchases/") {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        let userid = guest_kit::request::percent_decode(userid);
        if userid.is_empty() || userid.contains('/') {
            return Err(ApiError::not_found(format!("no route for {path}")));
        }
        return Ok(json(StatusCode::OK, &store::user_purchases(&userid).await?));
    }
    match (path.trim_end_matches('/'), method) {
        ("/customer-management-api/kafka/purchases", Method::POST) => {
            let delivery = guest_kit::bridge::accept_delivery(request).await?;
            Ok(json(StatusCode::OK, &store::save(&delivery).await?))
        }
        ("/customer-management-api/health", Method::GET) => Ok(store::health().await),
        ("/customer-management-api/kafka/purchases" | "/customer-management-api/health", _) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
