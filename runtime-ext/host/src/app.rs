//! The running application: the request path from an HTTP request, routed, checked and
//! rewritten, to its component's instances ([`crate::instances`]) and back; chained requests
//! ([`crate::chaining`]) join it at the component.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::chaining::Chain;
use crate::engine::PoolLimits;
use crate::headers::{self, SpinHeaders};
use crate::instances::{InstanceSettings, Instances, Lifecycle, ReuseConfig};
use crate::loader;
use crate::manifest::App;
use crate::outbound_http;
use crate::routes::{Route, Router};
use crate::status::{empty, plain};
use crate::telemetry::{self, RequestSpan, Telemetry};

/// Spin's health endpoint, answered by the host itself.
const HEALTH_PATH: &str = "/.well-known/spin/health";
/// Paths under this prefix belong to the host, never to a component.
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// Knobs of the runtime, from the command line.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub runtime_config: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub reuse: ReuseConfig,
    pub max_memory_bytes: usize,
    pub max_request_body: u64,
    /// The longest a request's body may take to arrive, from when its headers did.
    pub body_read_timeout: Duration,
    pub max_instances: u32,
    /// Requests of one component in flight at once.
    pub max_component_requests: usize,
}

/// The app as it runs.
pub struct AppRuntime {
    components: HashMap<String, Instances>,
    lifecycle: Arc<Lifecycle>,
    router: Router,
    options: RuntimeOptions,
    /// Where the server listens; request URLs use it when a client sends no `Host`.
    listen_addr: SocketAddr,
    /// Request spans, when OpenTelemetry export is on.
    telemetry: Option<Telemetry>,
    /// Staged `files`; deleted when the app stops.
    _staging: tempfile::TempDir,
}

impl AppRuntime {
    /// Loads, compiles (or takes from the cache) and links every component of `app`.
    pub async fn load(
        app: &App,
        options: RuntimeOptions,
        listen_addr: SocketAddr,
    ) -> anyhow::Result<Arc<Self>> {
        let loaded = loader::load(
            app,
            options.runtime_config.as_deref(),
            &options.cache_dir,
            PoolLimits {
                instances: options.max_instances,
                max_memory_bytes: options.max_memory_bytes,
            },
        )
        .await?;
        let telemetry = Telemetry::from_env()?;
        let settings = InstanceSettings {
            engine: loaded.engine,
            reuse: options.reuse,
            max_memory_bytes: options.max_memory_bytes,
            lifecycle: Arc::new(Lifecycle::default()),
            http_pool: outbound_http::http_pool(),
            max_component_requests: options.max_component_requests,
        };
        Ok(Arc::new_cyclic(|app: &Weak<Self>| Self {
            components: loaded
                .components
                .into_iter()
                .map(|(component, service)| {
                    let id = component.id.to_string();
                    (
                        id,
                        Instances::new(component, service, app.clone(), &settings),
                    )
                })
                .collect(),
            lifecycle: settings.lifecycle.clone(),
            router: loaded.router,
            options,
            listen_addr,
            telemetry,
            _staging: loaded.staging,
        }))
    }

    /// The public routes, for the start-up banner.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.router.public()
    }

    /// Serves a request from a client.
    pub async fn handle(
        self: &Arc<Self>,
        mut request: Request<WasiBody>,
        client: SocketAddr,
    ) -> Response<WasiBody> {
        let path = request.uri().path().to_string();
        if path == HEALTH_PATH {
            return plain(StatusCode::OK, "OK");
        }
        if path.starts_with(WELL_KNOWN_PREFIX) {
            return empty(StatusCode::NOT_FOUND);
        }
        let Some((entry, route, found)) = self.router.route(&path) else {
            return empty(StatusCode::NOT_FOUND);
        };
        if let Some(length) = request.headers().get(http::header::CONTENT_LENGTH) {
            match length
                .to_str()
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
            {
                None => return empty(StatusCode::BAD_REQUEST),
                Some(n) if n > self.options.max_request_body => {
                    return empty(StatusCode::PAYLOAD_TOO_LARGE);
                }
                Some(_) => {}
            }
        }
        let component = &self.components[&entry.component];
        match headers::absolute_uri(&request, self.listen_addr) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return empty(StatusCode::BAD_REQUEST),
        }
        SpinHeaders::routed(route, found, client).apply(&mut request);
        let limit = self.options.max_request_body as usize;
        let deadline = self.options.body_read_timeout;
        let request = request.map(|body| {
            let limited = http_body_util::Limited::new(body, limit).map_err(|error| match error
                .downcast::<HttpError>(
            ) {
                Ok(inner) => *inner,
                Err(_) => HttpError::HttpRequestBodySize(None),
            });
            crate::body::Deadline::new(limited, deadline).boxed_unsync()
        });
        let span = self.telemetry.as_ref().map(|telemetry| {
            telemetry.request_span(
                request.headers(),
                request.method().as_str(),
                route.raw(),
                &path,
            )
        });
        let trace = span.as_ref().map(RequestSpan::context);
        let response = component.handle(request, trace).await;
        if let Some(span) = span {
            span.end(response.status().as_u16());
        }
        response
    }

    /// Once the server has stopped taking requests: lets every instance finish what it does
    /// after its responses (bounded by `grace`), then exports the spans still queued.
    pub async fn shutdown(&self, grace: Duration) {
        if tokio::time::timeout(grace, self.lifecycle.stop())
            .await
            .is_err()
        {
            tracing::warn!("instances still running after {grace:?}; exiting anyway");
        }
        if let Some(telemetry) = &self.telemetry {
            telemetry.shutdown().await;
        }
    }

    /// Serves a request chained from another component to `http://<target>.spin.internal`.
    async fn chained(
        &self,
        target: &str,
        mut request: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        // Only components with a trigger (private ones included) are loaded.
        let Some(component) = self.components.get(target) else {
            tracing::error!("service chaining: unknown routing destination '{target}'");
            return Err(HttpError::DestinationNotFound);
        };
        request.headers_mut().remove(http::header::HOST);
        SpinHeaders::chained(request.uri().path()).apply(&mut request);
        // The caller's span, which its outbound request carries, is the callee's context.
        let trace = self
            .telemetry
            .as_ref()
            .map(|_| telemetry::extract(request.headers()));
        Ok(component.handle(request, trace).await)
    }
}

impl Chain for AppRuntime {
    fn chain(
        self: Arc<Self>,
        target: String,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>> {
        Box::pin(async move { self.chained(&target, request).await })
    }
}
