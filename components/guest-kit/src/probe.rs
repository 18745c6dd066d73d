//! The probes and info endpoint the seed-004 services share: `health/live`, `health/ready`,
//! `api/v1/info`, each served under the service's own prefix (README's route rule).

use http::{Method, StatusCode};

use crate::{ApiError, Response, json};

/// The service's identity for [`serve`].
pub struct Service<'a> {
    /// The component id, which is also the path prefix: `/<name>/health/live`.
    pub name: &'a str,
    pub version: &'a str,
    /// The service's own endpoints, listed by `api/v1/info`.
    pub endpoints: &'a [&'a str],
}

/// Answers `GET /<name>/health/live`, `/<name>/health/ready` and `/<name>/api/v1/info` (405 for
/// other methods); `None` when `path` is none of them.
pub async fn serve(
    service: &Service<'_>,
    method: &Method,
    path: &str,
) -> Option<Result<Response, ApiError>> {
    let probe = path.strip_prefix('/')?.strip_prefix(service.name)?;
    if !matches!(probe, "/health/live" | "/health/ready" | "/api/v1/info") {
        return None;
    }
    if method != Method::GET {
        return Some(Err(ApiError::method_not_allowed("GET")));
    }
    Some(Ok(match probe {
        "/health/live" => live(service.name),
        "/health/ready" => ready(service.name).await,
        _ => info(service.name, service.version, service.endpoints).await,
    }))
}

/// The route a seed-004 path is counted under: one of the service's endpoints or probes,
/// `None` for its `/metrics`, `unmatched` otherwise (so label values stay few).
pub fn route_of(service: &Service<'static>, path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    let own = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(service.name));
    if own == Some("/metrics") {
        return None;
    }
    let probe = ["/health/live", "/health/ready", "/api/v1/info"]
        .into_iter()
        .find(|probe| own == Some(probe));
    Some(
        probe
            .or_else(|| service.endpoints.iter().copied().find(|e| *e == path))
            .unwrap_or("unmatched"),
    )
}

/// Liveness: the component answers (an instance lives for a bounded number of requests and
/// keeps no state that could go stale).
fn live(service: &str) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "alive", "service": service, "timestamp": crate::time::now() }),
    )
}

/// Readiness: the database answers; 503 naming the problem otherwise.
async fn ready(service: &str) -> Response {
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
async fn info(service: &str, version: &str, endpoints: &[&str]) -> Response {
    let region = crate::variable("region")
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
