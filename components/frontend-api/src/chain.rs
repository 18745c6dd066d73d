//! Calls to the business-logic and data-ingest components: Spin service chaining
//! (`<id>.spin.internal`) when they are in this app, their Service when deployed apart.

use guest_kit::{ApiResult, Response, Trace, variable};

/// The variables holding each callee's host (each also in `allowed_outbound_hosts`).
pub const BUSINESS_LOGIC: &str = "business_logic_host";
pub const DATA_INGEST: &str = "data_ingest_host";

/// POSTs `body` as JSON to `path` on the host in variable `callee`, within `trace`, and
/// answers with its response as is.
pub async fn post_json(
    callee: &str,
    path: &str,
    body: &serde_json::Value,
    trace: &Trace,
) -> ApiResult<Response> {
    let host = variable(callee).await?;
    guest_kit::chain::post_json(&format!("http://{host}{path}"), body, trace).await
}
