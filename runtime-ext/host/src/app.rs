//! The running application: every component pre-linked, the router, and the request path
//! from an HTTP request to a fresh component instance and back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime::component::Component as Compiled;
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpCtx};

use crate::engine::{self, PoolLimits};
use crate::key_value::{self, KeyValueAccess};
use crate::manifest::{App, RouteSpec};
use crate::outbound::{AllowedHosts, Outbound};
use crate::postgres::{Pools, PostgresAccess};
use crate::routes::{Route, RouteEntry, Router};
use crate::runtime_config::RuntimeConfig;
use crate::state::RequestState;
use crate::telemetry::{self, RequestSpan, Telemetry};
use crate::variables::{AppVariables, ComponentVariables};

/// Spin's health endpoint, answered by the host itself.
const HEALTH_PATH: &str = "/.well-known/spin/health";
/// Paths under this prefix belong to the host, never to a component.
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";
/// How long past its deadline a request may take to unwind before it is abandoned.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);
/// The client address Spin reports for a chained request.
const CHAINED_CLIENT: &str = "0.0.0.0:0";

/// Knobs of the runtime, from the command line.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub runtime_config: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub request_timeout: Duration,
    pub max_memory_bytes: usize,
    pub max_request_body: u64,
    pub max_instances: u32,
}

/// One component, compiled, linked and configured.
struct LoadedComponent {
    id: Arc<str>,
    service: ServicePre<RequestState>,
    environment: Vec<(String, String)>,
    files_root: Option<PathBuf>,
    allowed_hosts: Arc<AllowedHosts>,
    key_value: KeyValueAccess,
    postgres: PostgresAccess,
    variables: ComponentVariables,
}

/// The app as it runs.
pub struct AppRuntime {
    engine: Engine,
    components: HashMap<String, LoadedComponent>,
    router: Router,
    options: RuntimeOptions,
    /// Where the server listens; request URLs use it when a client sends no `Host`.
    listen_addr: SocketAddr,
    /// Kept-alive connections for outbound `http://` requests, shared by every component.
    pub(crate) http_pool: crate::outbound::HttpPool,
    /// Request spans, when OpenTelemetry export is on.
    telemetry: Option<Telemetry>,
    /// Staged `files`; deleted when the app stops.
    _staging: tempfile::TempDir,
}

/// Why an invocation produced no response of the guest's own.
#[derive(Debug)]
enum Failure {
    /// The instance could not be created (e.g. every pooled slot is in use).
    Unavailable(String),
    /// The guest trapped, panicked, ran out of memory or returned an error code.
    Fault(String),
    /// The guest ran past the request time limit.
    TimedOut,
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

        let mut components = HashMap::new();
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
            components.insert(
                id.clone(),
                LoadedComponent {
                    id: id.as_str().into(),
                    service,
                    environment: component.environment.clone().into_iter().collect(),
                    files_root: has_files.then_some(files_root),
                    key_value: KeyValueAccess::new(component, stores.clone()),
                    postgres: PostgresAccess {
                        allowed: allowed_hosts.clone(),
                        pools: pg_pools.clone(),
                    },
                    allowed_hosts,
                    variables: ComponentVariables::new(id, values),
                },
            );
        }
        Ok(Arc::new(Self {
            engine,
            components,
            router,
            options,
            listen_addr,
            http_pool: crate::outbound::http_pool(),
            telemetry: Telemetry::from_env()?,
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
        request: Request<WasiBody>,
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
        if let Some(length) = request.headers().get(http::header::CONTENT_LENGTH)
            && length
                .to_str()
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .is_none_or(|n| n > self.options.max_request_body)
        {
            return empty(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let component = &self.components[&entry.component];
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| self.listen_addr.to_string());
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let mut request = request;
        match http::Uri::builder()
            .scheme("http")
            .authority(host.as_str())
            .path_and_query(path_and_query.as_str())
            .build()
        {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return empty(StatusCode::BAD_REQUEST),
        }
        SpinHeaders {
            path_info: found.path_info,
            matched_route: route.raw(),
            component_route: route.component_route(),
            client_addr: &client.to_string(),
            params: &found.params,
        }
        .apply(&mut request);
        let limit = self.options.max_request_body as usize;
        let request = request.map(|body| {
            http_body_util::Limited::new(body, limit)
                .map_err(|error| match error.downcast::<HttpError>() {
                    Ok(inner) => *inner,
                    Err(_) => HttpError::HttpRequestBodySize(None),
                })
                .boxed_unsync()
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
        let response = respond(&component.id, self.invoke(component, request, trace).await);
        if let Some(span) = span {
            span.end(response.status().as_u16());
        }
        response
    }

    /// Exports the spans still queued; called once the server has stopped.
    pub async fn shutdown_telemetry(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.shutdown().await;
        }
    }

    /// Serves a request chained from another component to `http://<target>.spin.internal`.
    pub async fn chain(
        self: &Arc<Self>,
        target: &str,
        mut request: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        // Only components with a trigger (private ones included) are loaded.
        let Some(component) = self.components.get(target) else {
            tracing::error!("service chaining: unknown routing destination '{target}'");
            return Err(HttpError::DestinationNotFound);
        };
        request.headers_mut().remove(http::header::HOST);
        // Spin's synthetic route for chained requests: `/...` with the whole path as path info.
        SpinHeaders {
            path_info: request.uri().path().to_string(),
            matched_route: "/...",
            component_route: "",
            client_addr: CHAINED_CLIENT,
            params: &[],
        }
        .apply(&mut request);
        // The caller's span, which its outbound request carries, is the callee's context.
        let trace = self
            .telemetry
            .as_ref()
            .map(|_| telemetry::extract(request.headers()));
        Ok(respond(
            &component.id,
            self.invoke(component, request, trace).await,
        ))
    }

    fn request_state(
        self: &Arc<Self>,
        component: &LoadedComponent,
        trace: Option<opentelemetry::Context>,
    ) -> anyhow::Result<RequestState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&component.environment)
            .inherit_stdout()
            .inherit_stderr();
        if let Some(root) = &component.files_root {
            wasi.preopened_dir(root, "/", FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)?;
        }
        Ok(RequestState {
            table: Default::default(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound {
                component: component.id.clone(),
                allowed: component.allowed_hosts.clone(),
                app: self.clone(),
                trace,
            },
            key_value: component.key_value.clone(),
            postgres: component.postgres.clone(),
            variables: component.variables.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.options.max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
        })
    }

    /// Runs one request in a fresh instance of `component`.
    async fn invoke(
        self: &Arc<Self>,
        component: &LoadedComponent,
        request: Request<WasiBody>,
        trace: Option<opentelemetry::Context>,
    ) -> Result<Response<WasiBody>, Failure> {
        let state = self
            .request_state(component, trace)
            .map_err(|error| Failure::Fault(format!("{error:#}")))?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let deadline = Instant::now() + self.options.request_timeout;
        // Yield to the executor at every epoch tick; trap once the deadline has passed.
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);
        let service: Service = component
            .service
            .instantiate_async(&mut store)
            .await
            .map_err(|error| Failure::Unavailable(format!("{error:#}")))?;
        let (request, request_io) =
            wasmtime_wasi_http::p3::Request::from_http(&mut store.data_mut().outbound, request);

        let (reply, replied) = tokio::sync::oneshot::channel();
        let id = component.id.clone();
        let instance = async move {
            let mut reply = Some(reply);
            let outcome = store
                .run_concurrent(async |accessor| -> wasmtime::Result<()> {
                    let response = match service.handle(accessor, request).await? {
                        Ok(response) => {
                            accessor.with(|access| response.into_http(access, request_io))?
                        }
                        Err(code) => wasmtime::bail!("the component answered with error {code:?}"),
                    };
                    if let Some(reply) = reply.take() {
                        let _ = reply.send(Ok(response));
                    }
                    // Keep the instance running until it has written the whole body.
                    std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                    Ok(())
                })
                .await
                .and_then(|result| result);
            if let Err(error) = outcome {
                let failure = classify(&error);
                match reply.take() {
                    Some(reply) => drop(reply.send(Err(failure))),
                    None => {
                        tracing::error!(component = %id, "failed after its response began: {failure:?}")
                    }
                }
            }
        };
        let wall_clock = tokio::time::Instant::from_std(deadline + DEADLINE_GRACE);
        // The instance task owns the store: it keeps streaming the body after we return.
        tokio::spawn(async move {
            if tokio::time::timeout_at(wall_clock, instance).await.is_err() {
                tracing::warn!("abandoned an instance past its deadline");
            }
        });
        match replied.await {
            Ok(result) => result,
            // The instance was abandoned at its wall-clock deadline (e.g. blocked on I/O).
            Err(_) => Err(Failure::TimedOut),
        }
    }
}

/// Pre-links a component; a missing import names the interface, as wasmtime reports it.
fn link(
    linker: &wasmtime::component::Linker<RequestState>,
    compiled: &Compiled,
) -> anyhow::Result<ServicePre<RequestState>> {
    let pre = linker.instantiate_pre(compiled)?;
    ServicePre::new(pre).map_err(anyhow::Error::from).context("it does not export `wasi:http/handler@0.3.0` (build it with spin-sdk 7's `#[http_service]`)")
}

fn classify(error: &wasmtime::Error) -> Failure {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::TimedOut,
        _ => Failure::Fault(format!("{error:?}")),
    }
}

/// Turns an invocation's outcome into the response the caller gets; failures are logged.
fn respond(component: &str, outcome: Result<Response<WasiBody>, Failure>) -> Response<WasiBody> {
    match outcome {
        Ok(response) => response,
        Err(Failure::TimedOut) => {
            tracing::error!(%component, "request exceeded its time limit");
            empty(StatusCode::GATEWAY_TIMEOUT)
        }
        Err(Failure::Unavailable(reason)) => {
            tracing::error!(%component, "cannot instantiate: {reason}");
            empty(StatusCode::SERVICE_UNAVAILABLE)
        }
        Err(Failure::Fault(reason)) => {
            tracing::error!(%component, "Error processing request: {reason}");
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The `spin-*` request headers; `spin-full-url` is the request's (absolute) URI.
struct SpinHeaders<'a> {
    path_info: String,
    matched_route: &'a str,
    component_route: &'a str,
    client_addr: &'a str,
    params: &'a [(String, String)],
}

impl SpinHeaders<'_> {
    /// Sets the headers, replacing any a client sent under the same names.
    fn apply(self, request: &mut Request<WasiBody>) {
        let full_url = request.uri().to_string();
        let headers = request.headers_mut();
        let mut set = |name: &str, value: &str| {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                headers.insert(name, value);
            }
        };
        set("spin-path-info", &self.path_info);
        set("spin-full-url", &full_url);
        set("spin-matched-route", self.matched_route);
        set("spin-base-path", "/");
        set("spin-raw-component-route", self.matched_route);
        set("spin-component-route", self.component_route);
        set("spin-client-addr", self.client_addr);
        for (name, value) in self.params {
            set(
                &format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value,
            );
        }
    }
}

fn empty(status: StatusCode) -> Response<WasiBody> {
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
