//! The HTTP API. Everything under `/v1` needs `Authorization: Bearer <KAFKA_BRIDGE_SECRET>`;
//! the health probes and `/metrics` are open, for the orchestrator and Prometheus:
//! - `GET /health/live`: 200 while the process serves; it looks at nothing else.
//! - `GET /health/ready`: 200, or 503 while a subscription is stuck or the bridge is stopping,
//!   with the report of `GET /health` (which always answers 200). Both read state kept up to
//!   date in the background ([`crate::health`]): no probe waits on Kafka or MongoDB.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::{Bridge, mongo, produce};

pub fn router(bridge: Arc<Bridge>) -> Router {
    let api = Router::new()
        .route("/v1/topics/{topic}/messages", post(produce::produce))
        .route("/v1/kafka/status", get(produce::status))
        .route("/v1/flush", post(produce::flush))
        .route(
            "/v1/mongo/{database}/{collection}/insert",
            post(mongo::insert),
        )
        .route("/v1/mongo/{database}/{collection}/find", post(mongo::find))
        .route(
            "/v1/mongo/{database}/{collection}/count",
            post(mongo::count),
        )
        .route("/v1/mongo/{database}/{collection}/sum", post(mongo::sum))
        .route_layer(middleware::from_fn_with_state(bridge.clone(), authenticate))
        // As large as a component's delivery: its documents come back here in one insert.
        .layer(DefaultBodyLimit::max(
            kafka_bridge_protocol::MAX_DELIVERY_BODY,
        ));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(bridge)
}

/// Serves until `stop` completes, then finishes the requests in progress: on
/// `spinyard-listener`, for its header-read timeout and connection cap.
pub async fn serve(
    bridge: Arc<Bridge>,
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "kafka-bridge listening");
    let limits = bridge.config.listener_limits();
    let router = router(bridge);
    let service = |_| TowerToHyperService::new(router.clone());
    spinyard_listener::serve(listener, limits, service, stop).await;
    Ok(())
}

/// Lets a request through only with the API secret (`KAFKA_BRIDGE_SECRET`), compared in
/// constant time.
async fn authenticate(State(bridge): State<Arc<Bridge>>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(token) if bool::from(token.as_bytes().ct_eq(bridge.config.secret.as_bytes())) => {
            next.run(request).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}

/// Kafka's, MongoDB's and each subscription's state, as last seen.
async fn health(State(bridge): State<Arc<Bridge>>) -> impl IntoResponse {
    Json(bridge.overview())
}

async fn live() -> impl IntoResponse {
    Json(json!({ "status": "alive" }))
}

async fn ready(State(bridge): State<Arc<Bridge>>) -> impl IntoResponse {
    let overview = bridge.overview();
    let status = if overview.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(overview))
}

async fn metrics(State(bridge): State<Arc<Bridge>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        bridge.metrics.render(),
    )
}
