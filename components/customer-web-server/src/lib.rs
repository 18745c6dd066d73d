//! # Customer web server
//!
//! Seed `003`'s customer-facing API: purchases go to Kafka topic `purchases` through the
//! kafka-bridge, and purchase queries go to the customer-management-api component.
//!
//! Routes (README's route rule):
//! - `POST /buy` (`{username, userid, price}`): 201 only once Kafka acknowledged the purchase;
//!   503 when Kafka is unavailable (nothing recorded).
//! - `GET /getAllUserBuys/{userid}`: the management API's `GET /purchases/{userid}`, relayed.
//! - `GET /customer-web-server/health`.
//!
//! # Layout
//! - [`purchase`]: the purchase message and its validation.

mod purchase;

use guest_kit::bridge::{Bridge, Outgoing};
use guest_kit::{ApiError, ApiResult, Response, json, variable};
use http::StatusCode;
use spin_sdk::http::{Method, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> Response {
    route(request).await.unwrap_or_else(ApiError::into_response)
}

async fn route(request: Request) -> ApiResult<Response> {
    let path = guest_kit::request::path(&request).to_owned();
    let method = request.method().clone();
    if let Some(userid) = path.strip_prefix("/getAllUserBuys/") {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        return user_buys(userid).await;
    }
    match (path.trim_end_matches('/'), method) {
        ("/buy", Method::POST) => buy(request).await,
        ("/customer-web-server/health", Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "status": "healthy" }),
        )),
        ("/buy" | "/customer-web-server/health", _) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}

async fn buy(request: Request) -> ApiResult<Response> {
    let body = guest_kit::request::json_object(request).await?;
    let purchase = purchase::validate(
        &body,
        uuid::Uuid::new_v4().to_string(),
        guest_kit::time::now(),
    )?;
    let topic = variable("purchases_topic").await?;
    let bridge = Bridge::from_variables().await?;
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
async fn user_buys(userid: &str) -> ApiResult<Response> {
    if userid.is_empty() || userid.contains('/') {
        return Err(ApiError::not_found("no route for this path"));
    }
    let host = variable("customer_mgmt_api_host").await?;
    let url = format!("http://{host}/purchases/{userid}");
    guest_kit::chain::get(&url).await
}
