//! The running application: every component pre-linked, the router, and the request path
//! from an HTTP request to a component instance ([`crate::instances`]) and back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime::component::Component as Compiled;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::allowed_hosts::AllowedHosts;
use crate::chaining::Chain;
use crate::engine::{self, PoolLimits};
use crate::headers::{self, SpinHeaders};
use crate::instances::{InstanceSettings, Instances, Lifecycle, ReuseConfig};
use crate::key_value::{self, KeyValueAccess};
use crate::manifest::{App, RouteSpec};
use crate::outbound_http;
use crate::postgres::{Pools, PostgresAccess};
use crate::routes::{Route, RouteEntry, Router};
use crate::runtime_config::RuntimeConfig;
use crate::state::InstanceState;
use crate::telemetry::{self, RequestSpan, Telemetry};
use crate::variables::{AppVariables, ComponentVariables};

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

/// One component, configured: what each of its instances is given.
pub struct LoadedComponent {
    pub id: Arc<str>,
    pub environment: Vec<(String, String)>,
    pub files_root: Option<PathBuf>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub key_value: KeyValueAccess,
    pub postgres: PostgresAccess,
    pub variables: ComponentVariables,
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
        let manifest = &app.manifest;
        if manifest.http_base() == Some("/") {
            tracing::warn!(
                "This application has the deprecated trigger 'base' set to the default value '/'."
            );
        }
        let variables =
            AppVariables::resolve(&manifest.variables, |name| std::env::var(name).ok())?;
        let runtime_config = RuntimeConfig::load(&app.dir, options.runtime_config.as_deref())?;
        let pg_pools = Arc::new(Pools::default());
        let stores = Arc::new(
            key_value::open_stores(&manifest.component, &runtime_config.key_value_stores).await?,
        );
        let engine = engine::new_engine(PoolLimits {
            instances: options.max_instances,
            max_memory_bytes: options.max_memory_bytes,
        })?;
        let linker = engine::new_linker(&engine)?;
        let staging = tempfile::Builder::new()
            .prefix("spinyard-files-")
            .tempdir()?;

        let mut entries = Vec::new();
        for trigger in &manifest.trigger.http {
            let route = match &trigger.route {
                RouteSpec::Path(route) => Some(Route::parse(route)?),
                RouteSpec::Private(_) => None,
            };
            entries.push(RouteEntry {
                component: trigger.component.clone(),
                route,
            });
        }
        let router = Router::new(entries);
        for (route, shadowed, effective) in router.duplicates() {
            tracing::error!(
                "duplicate route, never used: {shadowed}: {route} (duplicate of {effective})"
            );
        }

        let mut loaded = Vec::new();
        for (id, component) in &manifest.component {
            if router.by_component(id).is_none() {
                continue; // As Spin: a component no trigger names is never instantiated.
            }
            let context = || format!("component `{id}`");
            let wasm = app.component_path(id)?;
            let compiled = {
                let (engine, cache_dir) = (engine.clone(), options.cache_dir.clone());
                tokio::task::spawn_blocking(move || {
                    engine::load_component(&engine, &wasm, &cache_dir)
                })
                .await?
                .with_context(context)?
            };
            let service = link(&linker, &compiled).with_context(context)?;
            let allowed_hosts = component
                .allowed_outbound_hosts
                .iter()
                .map(|entry| variables.render(entry))
                .collect::<anyhow::Result<Vec<_>>>()
                .and_then(|entries| AllowedHosts::parse(&entries))
                .with_context(|| format!("component `{id}`: field `allowed_outbound_hosts`"))?;
            let allowed_hosts = Arc::new(allowed_hosts);
            let files_root = crate::files::component_root(staging.path(), id);
            let has_files =
                crate::files::stage(&app.dir, component, &files_root).with_context(context)?;
            let values = variables
                .component_values(&component.variables)
                .with_context(context)?;
            loaded.push((
                Arc::new(LoadedComponent {
                    id: id.as_str().into(),
                    environment: component.environment.clone().into_iter().collect(),
                    files_root: has_files.then_some(files_root),
                    key_value: KeyValueAccess::new(&component.key_value_stores, stores.clone()),
                    postgres: PostgresAccess {
                        allowed: allowed_hosts.clone(),
                        pools: pg_pools.clone(),
                    },
                    allowed_hosts,
                    variables: ComponentVariables::new(id, values),
                }),
                service,
            ));
        }
        let telemetry = Telemetry::from_env()?;
        let settings = InstanceSettings {
            engine,
            reuse: options.reuse,
            max_memory_bytes: options.max_memory_bytes,
            lifecycle: Arc::new(Lifecycle::default()),
            http_pool: outbound_http::http_pool(),
            max_component_requests: options.max_component_requests,
        };
        Ok(Arc::new_cyclic(|app: &Weak<Self>| Self {
            components: loaded
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
            router,
            options,
            listen_addr,
            telemetry,
            _staging: staging,
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

/// Pre-links a component; a missing import names the interface, as wasmtime reports it.
fn link(
    linker: &wasmtime::component::Linker<InstanceState>,
    compiled: &Compiled,
) -> anyhow::Result<ServicePre<InstanceState>> {
    let pre = linker.instantiate_pre(compiled)?;
    ServicePre::new(pre).map_err(anyhow::Error::from).context("it does not export `wasi:http/handler@0.3.0` (build it with spin-sdk 7's `#[http_service]`)")
}

pub(crate) fn empty(status: StatusCode) -> Response<WasiBody> {
    plain(status, "")
}

fn plain(status: StatusCode, body: &'static str) -> Response<WasiBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}
