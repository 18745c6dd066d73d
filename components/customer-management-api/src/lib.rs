//! # Customer management API
//!
//! Seed `003`'s internal service: purchases consumed from Kafka (delivered by the
//! kafka-bridge) are stored in MongoDB `purchase_db.purchases`, and queried per user.
//!
//! Routes (README's route rule):
//! - `GET /purchases/{userid}`: `{userid, purchases, count, total_spent}`.
//! - `GET /customer-management-api/health`: `{"status": "healthy", "mongodb": "connected"}`.
//! - `GET /customer-management-api/metrics`: seed 003's Prometheus families.
//! - `POST /customer-management-api/kafka/purchases`: the bridge's deliveries of topic
//!   `purchases` (bearer token required).
//!
//! # Layout
//! - [`store`]: storing delivered purchases (idempotent by `purchase_id`) and reading them.

mod store;

use guest_kit::bridge;
use guest_kit::metrics;
use guest_kit::{ApiError, ApiResult, Log, Response, Service, json};
use http::StatusCode;
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

/// Seed 003's metric families (prometheus-flask-exporter's names and labels).
static SERVICE: Service = Service {
    name: "customer-management-api",
    http: metrics::FLASK_EXPORTER,
    counters: &[&bridge::MESSAGES_PROCESSED],
    histograms: &[&bridge::MESSAGE_PROCESSING],
    gauges: &[],
    route_of,
};

fn route_of(path: &str) -> Option<&'static str> {
    Some(match path.trim_end_matches('/') {
        p if p.starts_with("/purchases/") => "/purchases/{userid}",
        "/customer-management-api/kafka/purchases" => "/kafka/purchases",
        "/customer-management-api/health" => "/health",
        "/customer-management-api/metrics" => return None,
        _ => "unmatched",
    })
}

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, log: Log) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request).to_owned();
    let method = request.method().clone();
    if let Some(userid) = path.strip_prefix("/purchases/") {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed("GET"));
        }
        let userid = guest_kit::request::percent_decode(userid);
        if userid.is_empty() || userid.contains('/') {
            return Err(ApiError::not_found(format!("no route for {path}")));
        }
        return Ok(json(
            StatusCode::OK,
            &store::user_purchases(&userid, log.trace()).await?,
        ));
    }
    match (path.trim_end_matches('/'), method) {
        ("/customer-management-api/kafka/purchases", Method::POST) => {
            let trace = *log.trace();
            bridge::consume(SERVICE.name, request, &log, async |delivery| {
                store::save(delivery, trace).await
            })
            .await
        }
        ("/customer-management-api/health", Method::GET) => Ok(store::health(log.trace()).await),
        ("/customer-management-api/metrics", Method::GET) => SERVICE.render_metrics(vec![]),
        ("/customer-management-api/kafka/purchases", _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        ("/customer-management-api/health" | "/customer-management-api/metrics", _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
