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
use guest_kit::routes::{Route, Routes};
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
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    UserPurchases,
    Deliveries,
    Health,
    Metrics,
}

/// Labelled with the seed's paths (prometheus-flask-exporter's `path`).
static ROUTES: Routes<Endpoint> = Routes(&[
    Route {
        path: "/purchases/:userid",
        label: Some("/purchases/{userid}"),
        methods: &[(Method::GET, Endpoint::UserPurchases)],
    },
    Route {
        path: "/customer-management-api/kafka/purchases",
        label: Some("/kafka/purchases"),
        methods: &[(Method::POST, Endpoint::Deliveries)],
    },
    Route {
        path: "/customer-management-api/health",
        label: Some("/health"),
        methods: &[(Method::GET, Endpoint::Health)],
    },
    Route {
        path: "/customer-management-api/metrics",
        label: None,
        methods: &[(Method::GET, Endpoint::Metrics)],
    },
]);

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, route).await
}

async fn route(request: Request, log: Log) -> ApiResult<Response> {
    let matched = ROUTES.find(&request)?;
    match matched.endpoint {
        Endpoint::UserPurchases => {
            let userid = guest_kit::request::percent_decode(matched.param("userid"));
            if userid.contains('/') {
                let path = guest_kit::request::path(&request);
                return Err(ApiError::not_found(format!("no route for {path}")));
            }
            Ok(json(
                StatusCode::OK,
                &store::user_purchases(&userid, log.trace()).await?,
            ))
        }
        Endpoint::Deliveries => {
            let trace = *log.trace();
            bridge::consume(SERVICE.name, request, &log, async |delivery| {
                store::save(delivery, trace).await
            })
            .await
        }
        Endpoint::Health => Ok(store::health(log.trace()).await),
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
    }
}
