//! Calls to the business-logic and data-ingest components through Spin service chaining.

use bytes::Bytes;
use guest_kit::{ApiError, ApiResult, Response};
use http::{HeaderValue, header};
use spin_sdk::http::FullBody;
use spin_sdk::http::body::IncomingBodyExt;

/// The component ids the gateway chains to (each in `allowed_outbound_hosts`).
pub const BUSINESS_LOGIC: &str = "business-logic";
pub const DATA_INGEST: &str = "data-ingest";

/// POSTs `body` as JSON to `path` on `component`, and answers with its response as is.
/// An unreachable component is a 503 naming it.
pub async fn post_json(
    component: &str,
    path: &str,
    body: &serde_json::Value,
) -> ApiResult<Response> {
    let url = format!("http://{component}.spin.internal{path}");
    let request = http::Request::post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(FullBody::new(Bytes::from(body.to_string())))
        .map_err(|e| ApiError::unavailable(format!("{component}: {e}")))?;
    let response = spin_sdk::http::send(request)
        .await
        .map_err(|e| ApiError::unavailable(format!("{component} unavailable: {e}")))?;
    let (parts, incoming) = response.into_parts();
    let bytes = incoming
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable(format!("{component}: response body: {e:?}")))?;
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
