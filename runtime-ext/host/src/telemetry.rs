//! OpenTelemetry traces, exported as real Spin exports them: on when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not, over OTLP
//! HTTP/protobuf (the exporter reads the endpoint, headers and batching variables itself).
//!
//! Each request gets a server span named `{method} {route}`, a child of its incoming
//! `traceparent`; the components' outbound requests carry that span's `traceparent`, replacing
//! one the guest set, as Spin's outbound HTTP does. With telemetry off nothing is injected and
//! a guest's own `traceparent` goes out as it wrote it. As in Spin, the guest sees the incoming
//! `traceparent` unchanged: a request that arrives without one is logged by the guest in a trace
//! of its own, while the exported span starts another (see README, Observability).

use anyhow::{Context as _, bail};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "spinyard";

/// How long the last spans may take to export when the server stops.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter and the tracer requests are traced with.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

impl Telemetry {
    /// Telemetry as the environment asks for it; `None` when it is off.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let wanted =
            env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        if !wanted || env_set("OTEL_SDK_DISABLED") {
            return Ok(None);
        }
        let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|_| "http/protobuf".into());
        if protocol != "http/protobuf" {
            bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL=`{protocol}`: spinyard exports traces over \
                 `http/protobuf` only (Spin's default)"
            );
        }
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
            .unwrap_or_default();
        if endpoint.starts_with("https://") {
            bail!(
                "OTLP endpoint `{endpoint}`: spinyard exports over plain `http://` only \
                 (use a collector sidecar or an http:// endpoint)"
            );
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .context("OTLP trace exporter")?;
        let named = env_set("OTEL_SERVICE_NAME")
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
        let mut resource = Resource::builder();
        if !named {
            resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
        }
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("spinyard");
        Ok(Some(Self { provider, tracer }))
    }

    /// Starts the server span of a request that matched `route`.
    pub fn request_span(
        &self,
        headers: &http::HeaderMap,
        method: &str,
        route: &str,
        path: &str,
    ) -> RequestSpan {
        let parent = extract(headers);
        let span = self
            .tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("url.path", path.to_owned()),
            ])
            .start_with_context(&self.tracer, &parent);
        RequestSpan {
            context: parent.with_span(span),
        }
    }

    /// Exports what is still queued. The processor's shutdown blocks until its task (on this
    /// runtime) has exported, so it runs on the blocking pool, bounded.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let exported = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, exported).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!("exporting the last spans failed: {error}"),
            Ok(Err(error)) => tracing::warn!("exporting the last spans failed: {error}"),
            Err(_) => {
                tracing::warn!("the last spans were not exported within {SHUTDOWN_TIMEOUT:?}")
            }
        }
    }
}

/// A request's server span, ended with its response status.
pub struct RequestSpan {
    context: Context,
}

impl RequestSpan {
    /// The context outbound requests are made in.
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    pub fn end(self, status: u16) {
        let span = self.context.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error(format!("status {status}")));
        }
        span.end();
    }
}

/// The trace context `headers` carry (empty when they carry none).
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `context`'s `traceparent` into `headers`, replacing the guest's.
pub fn inject(context: &Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
