//! # Customer web server
//!
//! Seed `003`'s customer-facing API: purchases go to Kafka topic `purchases` through the
//! kafka-bridge, and purchase queries go to the customer-management-api component.
//!
//! Routes (README's route rule):
//! - `POST /buy` (`{username, userid, price}`): 201 only once Kafka acknowledged the purchase;
//!   503 when Kafka is unavailable (nothing acknowledged; it may still be recorded, so a
//!   client retries with the same `Idempotency-Key` header, which makes the purchase id).
//! - `GET /getAllUserBuys/{userid}`: the management API's `GET /purchases/{userid}`, relayed.
//! - `GET /customer-web-server/health`.
//! - `GET /customer-web-server/metrics`: seed 003's Prometheus families.
//!
//! # Layout
//! - [`purchase`]: the purchase message and its validation.

mod purchase;

use guest_kit::bridge::{Bridge, Outgoing};
use guest_kit::metrics;
use guest_kit::{ApiError, ApiResult, Log, Response, Service, Trace, json, variable};
use http::StatusCode;
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

/// Seed 003's metric families (prometheus-flask-exporter's names and labels).
static SERVICE: Service = Service {
    name: "customer-web-server",
    http: metrics::FLASK_EXPORTER,
    counters: &[],
    histograms: &[],
    gauges: &[],
    route_of,
};

fn route_of(path: &str) -> Option<&'static str> {
    Some(match path.trim_end_matches('/') {
        "/buy" => "/buy",
        p if p.starts_with("/getAllUserBuys/") => "/getAllUserBuys/{userid}",
        "/customer-web-server/health" => "/health",
        "/customer-web-server/metrics" => return None,
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
    if let Some(userid) = path.strip_prefix("/getAllUserBuys/") {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed("GET"));
        }
        return user_buys(userid, log.trace()).await;
    }
    match (path.trim_end_matches('/'), method) {
        ("/buy", Method::POST) => buy(request, log.trace()).await,
        ("/customer-web-server/health", Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "status": "healthy" }),
        )),
        ("/customer-web-server/metrics", Method::GET) => SERVICE.render_metrics(vec![]),
        ("/buy", _) => Err(ApiError::method_not_allowed("POST")),
        ("/customer-web-server/health" | "/customer-web-server/metrics", _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}

async fn buy(request: Request, trace: &Trace) -> ApiResult<Response> {
    let key = request
        .headers()
        .get(purchase::IDEMPOTENCY_KEY)
        .map(|v| v.as_bytes().to_vec());
    let body = guest_kit::request::json_object(request).await?;
    let purchase = purchase::validate(&body, key.as_deref(), guest_kit::time::now())?;
    let topic = variable("purchases_topic").await?;
    let bridge = Bridge::from_variables(trace).await?;
    let message = Outgoing {
        key: &purchase.userid,
        headers: Default::default(),
        value: &purchase,
    };
    bridge.produce(&topic, &[message]).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "status": "success", "message": "Purchase recorded", "data": purchase }),
    ))
}

/// Relays the management API's answer for `userid` (still percent-encoded, as it came).
async fn user_buys(userid: &str, trace: &Trace) -> ApiResult<Response> {
    if userid.is_empty() || userid.contains('/') {
        return Err(ApiError::not_found("no route for this path"));
    }
    let host = variable("customer_mgmt_api_host").await?;
    let url = format!("http://{host}/purchases/{userid}");
    guest_kit::chain::get(&url, trace).await
}
