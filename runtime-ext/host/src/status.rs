//! The host's own answers: a request refused before it reaches a component, and a request its
//! component's instance failed to answer, mapped to a status as Spin maps it.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<WasiBody> {
    plain(status, "")
}

/// A response with a fixed text body.
pub fn plain(status: StatusCode, body: &'static str) -> Response<WasiBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// A component at its limit of requests in flight: 503, to be retried in a second.
pub fn busy() -> Response<WasiBody> {
    let mut busy = empty(StatusCode::SERVICE_UNAVAILABLE);
    let retry = HeaderValue::from_static("1");
    busy.headers_mut().insert(http::header::RETRY_AFTER, retry);
    busy
}

/// The answer to a request `component` failed to serve, the failure logged: 504 past its
/// deadline (or lost with an instance that ended timed out), 503 if no instance could be made,
/// 500 otherwise. `D` is the data the request was handed to its instance with.
pub fn failure<D: Send + Sync + 'static>(
    component: &str,
    error: wasmtime::Error,
    instance_timed_out: bool,
) -> Response<WasiBody> {
    if error.is::<ExpirationError>() || instance_timed_out {
        tracing::error!(%component, "request exceeded its time limit");
        empty(StatusCode::GATEWAY_TIMEOUT)
    } else if error.is::<InstantiationError<D>>() {
        tracing::error!(%component, "cannot instantiate: {error:?}");
        empty(StatusCode::SERVICE_UNAVAILABLE)
    } else if error.is::<TrapOrPanicError>() {
        // The instance's own error is logged once, as it is retired.
        tracing::error!(%component, "request lost with its instance, which failed");
        empty(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        tracing::error!(%component, "Error processing request: {error:?}");
        empty(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(error: wasmtime::Error, instance_timed_out: bool) -> StatusCode {
        failure::<()>("web", error, instance_timed_out).status()
    }

    #[test]
    fn failures_map_to_spins_statuses() {
        let trap = || wasmtime::Error::new(TrapOrPanicError);
        assert_eq!(
            status(wasmtime::Error::new(ExpirationError), false),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(status(trap(), true), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status(trap(), false), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status(wasmtime::Error::msg("guest error"), false),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn busy_asks_to_retry() {
        let busy = busy();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[http::header::RETRY_AFTER], "1");
    }
}
