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
use guest_kit::routes::{Route, Routes};
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
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    Metadata,
    Health,
    Publish,
    KafkaStatus,
    Flush,
    Deliveries,
    Metrics,
}

/// Labelled with the seed's paths (prometheus-flask-exporter's `path`).
static ROUTES: Routes<Endpoint> = Routes(&[
    Route {
        path: "/time-service",
        label: Some("/"),
        methods: &[(Method::GET, Endpoint::Metadata)],
    },
    Route {
        path: "/healthz",
        label: Some("/healthz"),
        methods: &[(Method::GET, Endpoint::Health)],
    },
    Route {
        path: "/kafka/publish",
        label: Some("/kafka/publish"),
        methods: &[(Method::POST, Endpoint::Publish)],
    },
    Route {
        path: "/kafka/status",
        label: Some("/kafka/status"),
        methods: &[(Method::GET, Endpoint::KafkaStatus)],
    },
    Route {
        path: "/kafka/flush",
        label: Some("/kafka/flush"),
        methods: &[(Method::POST, Endpoint::Flush)],
    },
    Route {
        path: "/time-service/kafka/events",
        label: Some("/kafka/events"),
        methods: &[(Method::POST, Endpoint::Deliveries)],
    },
    Route {
        path: "/time-service/metrics",
        label: None,
        methods: &[(Method::GET, Endpoint::Metrics)],
    },
]);

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
    let mut exchange = EVENTFUL
        .contains(&path.as_str())
        .then(|| events::Exchange::new(&request, &path));
    let answer = route(request, &mut exchange, started, &log).await;
    let Some(exchange) = exchange else {
        return answer;
    };
    let response = answer.unwrap_or_else(ApiError::into_response);
    let error = (!response.status().is_success()).then(|| response.status().to_string());
    exchange.emit(response.status(), error, started, &log).await;
    Ok(response)
}

/// Answers the request; an endpoint that sends its events itself takes them from `exchange`.
async fn route(
    request: Request,
    exchange: &mut Option<events::Exchange>,
    started: Instant,
    log: &Log,
) -> ApiResult<Response> {
    match ROUTES.find(&request)?.endpoint {
        Endpoint::Metadata => {
            // The answer reports whether the events reached the bridge: they go first.
            let kafka_up = match exchange.take() {
                Some(exchange) => exchange.emit(StatusCode::OK, None, started, log).await,
                None => false,
            };
            Ok(json(
                StatusCode::OK,
                &metadata::answer(&request, kafka_up).await,
            ))
        }
        Endpoint::Health => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "status": "healthy" }),
        )),
        Endpoint::Publish => {
            let body = guest_kit::request::json_object(request).await?;
            Ok(json(
                StatusCode::OK,
                &events::publish_custom(body, log.trace()).await?,
            ))
        }
        Endpoint::KafkaStatus => kafka_status(log.trace()).await,
        Endpoint::Flush => {
            let bridge = Bridge::from_variables(log.trace()).await?;
            let answer: Value = bridge.call(Method::POST, "/v1/flush", None).await?;
            Ok(json(StatusCode::OK, &answer))
        }
        Endpoint::Deliveries => {
            bridge::consume(SERVICE.name, request, log, async |delivery| {
                events::store(delivery).await
            })
            .await
        }
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
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
