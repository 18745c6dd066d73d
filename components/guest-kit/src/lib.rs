//! # guest-kit
//!
//! What the spinyard components share, so each component's `lib.rs` is only its routes.
//!
//! # Layout
//! - [`error`]: [`ApiError`], the JSON error every component answers with.
//! - [`request`]: the request path, query parameters, and JSON bodies read within a limit.
//! - [`fields`]: typed, named validation of JSON object fields.
//! - [`bridge`]: the kafka-bridge sidecar: producing, MongoDB, deliveries from consumers.
//! - [`chain`]: calls to other components, relayed as they answer.
//! - [`db`]: the PostgreSQL address from Spin variables; database errors as 503s.
//! - [`probe`]: `health/live`, `health/ready` and `api/v1/info` for the seed-004 services.
//! - [`time`]: timestamps formatted as the Python originals format them.
//! - [`routes`]: a component's route table: dispatch, metrics labels, 404 and 405.
//! - [`serve`]: the entry around every component's routes: trace, log line, metrics.
//! - [`trace`]: W3C `traceparent`: this request's trace and span ids, passed on to callees.
//! - [`log`]: one JSON line per event on stdout, with the trace ids.
//! - [`metrics`]: Prometheus counters and histograms in the key-value store, and `/metrics`.

pub mod bridge;
pub mod chain;
pub mod db;
pub mod error;
pub mod fields;
pub mod log;
pub mod metrics;
pub mod probe;
pub mod request;
pub mod routes;
pub mod serve;
pub mod time;
pub mod trace;

pub use error::{ApiError, ApiResult, Response, json};
pub use log::Log;
pub use serve::{Service, serve};
pub use trace::Trace;

thread_local! {
    /// Variables this instance has read.
    static VARIABLES: std::cell::RefCell<std::collections::HashMap<String, String>> =
        Default::default();
}

/// The component variable `name`, read from the host once per instance (an instance lives for
/// a bounded number of requests, and a variable's value is the app's configuration: not meant
/// to change between two requests); one that cannot be read is a 503 naming it.
pub async fn variable(name: &str) -> ApiResult<String> {
    if let Some(value) = VARIABLES.with_borrow(|read| read.get(name).cloned()) {
        return Ok(value);
    }
    let value = spin_sdk::variables::get(name)
        .await
        .map_err(|e| ApiError::unavailable(format!("variable `{name}`: {e}")))?;
    VARIABLES.with_borrow_mut(|read| read.insert(name.to_owned(), value.clone()));
    Ok(value)
}

/// The value `cell` holds, or the one `compute` gives, kept in `cell` for the instance's later
/// requests: work that is the same for every request is done once per instance. An error is
/// not kept, so the next request computes again.
pub async fn per_instance<T: Clone, E>(
    cell: &'static std::thread::LocalKey<std::cell::RefCell<Option<T>>>,
    compute: impl AsyncFnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if let Some(value) = cell.with_borrow(Option::clone) {
        return Ok(value);
    }
    let value = compute().await?;
    cell.set(Some(value.clone()));
    Ok(value)
}
