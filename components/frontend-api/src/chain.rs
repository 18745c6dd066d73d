//! Calls to the business-logic and data-ingest components through Spin service chaining.

use guest_kit::{ApiResult, Response};

/// The component ids the gateway chains to (each in `allowed_outbound_hosts`).
pub const BUSINESS_LOGIC: &str = "business-logic";
pub const DATA_INGEST: &str = "data-ingest";

/// POSTs `body` as JSON to `path` on `component`, and answers with its response as is.
pub async fn post_json(
    component: &str,
    path: &str,
    body: &serde_json::Value,
) -> ApiResult<Response> {
    guest_kit::chain::post_json(&format!("http://{component}.spin.internal{path}"), body).await
}
