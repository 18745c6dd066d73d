//! The probes and info endpoint the seed-004 services share: `health/live`, `health/ready`,
//! `api/v1/info`.

use http::StatusCode;

use crate::{Response, json};

/// Liveness: the component answers (a fresh instance per request has no state to go stale).
pub fn live(service: &str) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "alive", "service": service, "timestamp": crate::time::now() }),
    )
}

/// Readiness: the database answers; 503 naming the problem otherwise.
pub async fn ready(service: &str) -> Response {
    let timestamp = crate::time::now();
    match crate::db::ping().await {
        Ok(()) => json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ready", "service": service, "database": "connected", "timestamp": timestamp,
            }),
        ),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({
                "status": "not ready", "service": service, "database": "disconnected",
                "error": e.message, "timestamp": timestamp,
            }),
        ),
    }
}

/// Service information: name, version, region (the `region` variable), and its endpoints.
pub async fn info(service: &str, version: &str, endpoints: &[&str]) -> Response {
    let region = spin_sdk::variables::get("region")
        .await
        .unwrap_or_else(|_| "unknown".to_owned());
    json(
        StatusCode::OK,
        &serde_json::json!({
            "service": service,
            "version": version,
            "region": region,
            "runtime": "spin",
            "endpoints": endpoints,
            "timestamp": crate::time::now(),
        }),
    )
}
