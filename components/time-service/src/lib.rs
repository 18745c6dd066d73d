//! # Time service
//!
//! Seed `002`: request metadata, with request / response / error events sent to Kafka
//! fire-and-forget through the kafka-bridge. The service works fully with Kafka down: its
//! answers then say `"kafka_status": "NOT UP"`. A consumer route persists the events in
//! PostgreSQL (the seed's SQLite tables `http_requests`, `http_responses`, `errors`).
//!
//! Routes (README's route rule):
//! - `GET /time-service/` (the seed's `GET /`): timestamp, user IP, proxy chain, hostname,
//!   OS, pod IP, `kafka_status`.
//! - `GET /healthz`: `{"status": "healthy"}`.
//! - `POST /kafka/publish` (`{event_type, data}`), `GET /kafka/status` (503 when Kafka is
//!   down), `POST /kafka/flush`.
//! - `POST /time-service/kafka/events`: the bridge's deliveries (bearer token required).
//! - `GET /time-service/metrics`: Prometheus families (the seed's `GET /metrics`).
//!
//! # Layout
//! - [`metadata`]: the request metadata answer.
//! - [`events`]: the events, publishing them, and storing delivered ones.

mod events;
mod metadata;

use std::time::Instant;

use guest_kit::bridge::{self, Bridge};
use guest_kit::metrics;
use guest_kit::{ApiError, ApiResult, Log, Response, Service, Trace, json};
use http::StatusCode;
use serde_json::Value;
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

/// The routes that emit request / response events (probes and deliveries do not).
const EVENTFUL: [&str; 4] = [
    "/time-service",
    "/kafka/publish",
    "/kafka/status",
    "/kafka/flush",
];

/// Seed 002's metric families (prometheus-flask-exporter's), and the consumer's.
static SERVICE: Service = Service {
    name: "time-service",
    http: metrics::FLASK_EXPORTER,
    counters: &[&bridge::MESSAGES_PROCESSED],
    histograms: &[&bridge::MESSAGE_PROCESSING],
    gauges: &[],
    route_of,
};

fn route_of(path: &str) -> Option<&'static str> {
    Some(match path.trim_end_matches('/') {
        "/time-service" => "/",
        "/healthz" => "/healthz",
        "/kafka/publish" => "/kafka/publish",
        "/kafka/status" => "/kafka/status",
        "/kafka/flush" => "/kafka/flush",
        "/time-service/kafka/events" => "/kafka/events",
        "/time-service/metrics" => return None,
        _ => "unmatched",
    })
}

#[http_service]
async fn handle(request: Request) -> Response {
    guest_kit::serve(&SERVICE, request, with_events).await
}

/// Routes the request, sending its request / response / error events for the eventful routes.
async fn with_events(request: Request, log: Log) -> ApiResult<Response> {
    let started = Instant::now();
    let path = guest_kit::request::path(&request)
        .trim_end_matches('/')
        .to_owned();
    let method = request.method().clone();
    if !EVENTFUL.contains(&path.as_str()) {
        return route(request, &path, &method, &log).await;
    }
    let exchange = events::Exchange::new(&request, &path);
    if path == "/time-service" && method == Method::GET {
        // The answer reports whether the events reached the bridge: they go first.
        let kafka_up = exchange.emit(StatusCode::OK, None, started, &log).await;
        return Ok(json(
            StatusCode::OK,
            &metadata::answer(&request, kafka_up).await,
        ));
    }
    let response = route(request, &path, &method, &log)
        .await
        .unwrap_or_else(ApiError::into_response);
    let error = (!response.status().is_success()).then(|| response.status().to_string());
    exchange.emit(response.status(), error, started, &log).await;
    Ok(response)
}

async fn route(request: Request, path: &str, method: &Method, log: &Log) -> ApiResult<Response> {
    match (path, method) {
        ("/healthz", &Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "status": "healthy" }),
        )),
        ("/kafka/publish", &Method::POST) => {
            let body = guest_kit::request::json_object(request).await?;
            Ok(json(
                StatusCode::OK,
                &events::publish_custom(body, log.trace()).await?,
            ))
        }
        ("/kafka/status", &Method::GET) => kafka_status(log.trace()).await,
        ("/kafka/flush", &Method::POST) => {
            let bridge = Bridge::from_variables(log.trace()).await?;
            let answer: Value = bridge.call(Method::POST, "/v1/flush", None).await?;
            Ok(json(StatusCode::OK, &answer))
        }
        ("/time-service/kafka/events", &Method::POST) => {
            bridge::consume(SERVICE.name, request, log, async |delivery| {
                events::store(delivery).await
            })
            .await
        }
        ("/time-service/metrics", &Method::GET) => SERVICE.render_metrics(vec![]),
        ("/kafka/publish" | "/kafka/flush" | "/time-service/kafka/events", _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        ("/healthz" | "/time-service" | "/kafka/status" | "/time-service/metrics", _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}

/// The cluster as the bridge sees it now; 503 `{"status": "NOT UP", ...}` when unreachable.
async fn kafka_status(trace: &Trace) -> ApiResult<Response> {
    let answer: ApiResult<Value> = async {
        let bridge = Bridge::from_variables(trace).await?;
        bridge.call(Method::GET, "/v1/kafka/status", None).await
    }
    .await;
    Ok(match answer {
        Ok(status) => json(StatusCode::OK, &status),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "NOT UP", "error": e.message }),
        ),
    })
}
