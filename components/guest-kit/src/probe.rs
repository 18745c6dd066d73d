//! The probes and info endpoint the seed-004 services share: `health/live`, `health/ready`,
//! `api/v1/info`, each served under the service's own prefix (README's route rule).

use http::StatusCode;

use crate::routes::Routes;
use crate::{Response, json};

/// The service's identity.
pub struct Service<'a> {
    /// The component id, which is also the path prefix: `/<name>/health/live`.
    pub name: &'a str,
    pub version: &'a str,
}

/// The three probes, each a route of the service (see [`crate::service_routes`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probe {
    Live,
    Ready,
    Info,
}

/// A seed-004 service's route table: the service's own `routes` (its endpoints, which
/// `api/v1/info` lists), then its probes (`GET /<name>/health/live`, `/health/ready` and
/// `/api/v1/info`, dispatched to `probe(Probe::…)`) and `GET /<name>/metrics` (to `metrics`).
/// The probes are labelled by their seed paths; the metrics scrape is not counted.
#[macro_export]
macro_rules! service_routes {
    ($name:literal, $probe:expr, $metrics:expr, [$($route:expr),* $(,)?]) => {
        $crate::routes::Routes(&[
            $($route,)*
            $crate::routes::Route {
                path: concat!("/", $name, "/health/live"),
                label: Some("/health/live"),
                methods: &[($crate::routes::Method::GET, $probe($crate::probe::Probe::Live))],
            },
            $crate::routes::Route {
                path: concat!("/", $name, "/health/ready"),
                label: Some("/health/ready"),
                methods: &[($crate::routes::Method::GET, $probe($crate::probe::Probe::Ready))],
            },
            $crate::routes::Route {
                path: concat!("/", $name, "/api/v1/info"),
                label: Some("/api/v1/info"),
                methods: &[($crate::routes::Method::GET, $probe($crate::probe::Probe::Info))],
            },
            $crate::routes::Route {
                path: concat!("/", $name, "/metrics"),
                label: None,
                methods: &[($crate::routes::Method::GET, $metrics)],
            },
        ])
    };
}

/// The probe's answer. `api/v1/info` lists the service's own endpoints: its routes outside
/// its `/<name>/` prefix.
pub async fn answer<E: Copy>(service: &Service<'_>, routes: &Routes<E>, probe: Probe) -> Response {
    match probe {
        Probe::Live => live(service.name),
        Probe::Ready => ready(service.name).await,
        Probe::Info => {
            let endpoints = routes.paths_outside(&format!("/{}/", service.name));
            info(service.name, service.version, &endpoints).await
        }
    }
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
