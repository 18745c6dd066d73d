//! Calls to other components (Spin service chaining, `http://<id>.spin.internal`, or a Service
//! URL from a variable), answered with the callee's response as is.

use bytes::Bytes;
use http::{HeaderValue, header};
use spin_sdk::http::FullBody;
use spin_sdk::http::body::IncomingBodyExt;

use crate::trace::{TRACEPARENT, Trace};
use crate::{ApiError, ApiResult, Response};

/// GETs `url` within `trace` and relays the answer.
pub async fn get(url: &str, trace: &Trace) -> ApiResult<Response> {
    let request = http::Request::get(url).header(TRACEPARENT, trace.traceparent());
    relay(request, Bytes::new()).await
}

/// POSTs `body` as JSON to `url` within `trace` and relays the answer.
pub async fn post_json(url: &str, body: &serde_json::Value, trace: &Trace) -> ApiResult<Response> {
    let request = http::Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(TRACEPARENT, trace.traceparent());
    relay(request, Bytes::from(body.to_string())).await
}

/// An unreachable callee is a 503 naming its URL.
async fn relay(request: http::request::Builder, body: Bytes) -> ApiResult<Response> {
    let url = request
        .uri_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let request = request
        .body(FullBody::new(body))
        .map_err(|e| ApiError::unavailable(format!("{url}: {e}")))?;
    let response = spin_sdk::http::send(request)
        .await
        .map_err(|e| ApiError::unavailable(format!("{url} unavailable: {e}")))?;
    let (parts, incoming) = response.into_parts();
    let bytes = incoming
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable(format!("{url}: response body: {e:?}")))?;
    let mut relayed = Response::new(FullBody::new(bytes));
    *relayed.status_mut() = parts.status;
    relayed.headers_mut().insert(
        header::CONTENT_TYPE,
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    Ok(relayed)
}
