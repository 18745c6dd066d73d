//! The entry every component's `#[http_service]` calls: the request's trace context, its JSON
//! log line and its metrics, around the component's own routes.

use std::future::Future;
use std::time::Instant;

use spin_sdk::http::Request;

use crate::log::{Level, Log};
use crate::metrics::{Counter, Gauge, GaugeValue, Histogram, HttpMetrics, Metrics};
use crate::trace::{TRACEPARENT, Trace};
use crate::{ApiResult, Response};

/// What a component is called and what it measures.
pub struct Service {
    /// The log's `service` and the metrics' namespace in the store.
    pub name: &'static str,
    pub http: HttpMetrics,
    /// The service's own counters and histograms, for `/metrics`.
    pub counters: &'static [&'static Counter],
    pub histograms: &'static [&'static Histogram],
    /// Gauges kept in the store (moved with [`Metrics::adjust`]).
    pub gauges: &'static [&'static Gauge],
    /// The route a path is counted under (a template, so label values stay few), or `None`
    /// for a request not to count (the scrape of `/metrics` itself).
    pub route_of: fn(&str) -> Option<&'static str>,
}

impl Service {
    /// `GET /metrics`: every family in the Prometheus text format, with `gauges` measured now
    /// (besides the stored ones); 503 when the store cannot be opened.
    pub fn render_metrics(&self, gauges: Vec<GaugeValue>) -> ApiResult<Response> {
        Metrics::new(self.name).render(
            &self.http,
            self.counters,
            self.histograms,
            self.gauges,
            gauges,
        )
    }
}

/// Runs `route` for `request`, then counts and logs the exchange. An error becomes its JSON
/// response (5xx are logged as errors with their message).
pub async fn serve<F, Fut>(service: &'static Service, request: Request, route: F) -> Response
where
    F: FnOnce(Request, Log) -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    let started = Instant::now();
    let parent = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok());
    let log = Log::new(service.name, Trace::child_of(parent));
    let method = request.method().to_string();
    // Any token is a valid method: only the standard ones become label values.
    let method_label = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
        | "PATCH") => m,
        _ => "other",
    };
    let path = crate::request::path(&request).to_owned();

    let (mut response, error) = match route(request, log).await {
        Ok(response) => (response, None),
        Err(error) => (error.clone().into_response(), Some(error.message)),
    };
    // The body is complete: say how long it is, so the host sends it as is, not in chunks.
    let length = http_body::Body::size_hint(response.body()).exact();
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, length.into());
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status();

    if let Some(route) = (service.route_of)(&path) {
        Metrics::new(service.name).record_request(method_label, route, status.as_u16(), seconds);
    }
    crate::metrics::flush_after_response();
    let level = if status.is_server_error() {
        Level::Error
    } else if status.is_client_error() {
        Level::Warning
    } else {
        Level::Info
    };
    let mut fields = serde_json::json!({
        "method": method,
        "path": path,
        "status": status.as_u16(),
        "duration_ms": (seconds * 1e6).round() / 1e3,
    });
    if let Some(error) = error {
        fields["error"] = error.into();
    }
    log.event(
        level,
        &format!("{method} {path} {}", status.as_u16()),
        fields,
    );
    response
}
