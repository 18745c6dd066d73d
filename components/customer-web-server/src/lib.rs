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
use guest_kit::routes::{Route, Routes};
use guest_kit::{ApiResult, Log, Response, Service, Trace, json, variable};
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
    route_of: |path| ROUTES.label(path),
};

#[derive(Clone, Copy)]
enum Endpoint {
    Buy,
    UserBuys,
    Health,
    Metrics,
}

/// Labelled with the seed's paths (prometheus-flask-exporter's `path`).
static ROUTES: Routes<Endpoint> = Routes(&[
    Route {
        path: "/buy",
        label: Some("/buy"),
        methods: &[(Method::POST, Endpoint::Buy)],
    },
    Route {
        path: "/getAllUserBuys/:userid",
        label: Some("/getAllUserBuys/{userid}"),
        methods: &[(Method::GET, Endpoint::UserBuys)],
    },
    Route {
        path: "/customer-web-server/health",
        label: Some("/health"),
        methods: &[(Method::GET, Endpoint::Health)],
    },
    Route {
        path: "/customer-web-server/metrics",
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
        Endpoint::Buy => buy(request, log.trace()).await,
        Endpoint::UserBuys => user_buys(matched.param("userid"), log.trace()).await,
        Endpoint::Health => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "status": "healthy" }),
        )),
        Endpoint::Metrics => SERVICE.render_metrics(vec![]),
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
    let host = variable("customer_mgmt_api_host").await?;
    let url = format!("http://{host}/purchases/{userid}");
    guest_kit::chain::get(&url, trace).await
}
