//! Outbound HTTP (`wasi:http/client`): each request checked against the component's
//! [`AllowedHosts`], then sent over the app's connection pool (`http://`), wasmtime-wasi-http's
//! client (`https://`), or chained in-process to another component (`*.spin.internal`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime::AsContextMut;
use wasmtime::component::{Accessor, GuestTaskId, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::http::client;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttp, WasiHttpHooks, WasiHttpView,
};

use crate::allowed_hosts::AllowedHosts;
use crate::chaining::{self, Chain};

/// How long a pooled connection may stay idle before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout of pooled connections (a request's own `connect-timeout` cannot apply to a
/// connection that may already exist).
const POOL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// wasi:http's default when a request sets no first-byte timeout.
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(600);

/// Kept-alive HTTP/1 connections for outbound `http://` requests, as Spin pools them: a
/// component calling the same service per request reuses connections instead of dialling.
pub type HttpPool = Client<HttpConnector, WasiBody>;

pub fn http_pool() -> HttpPool {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(POOL_CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// Sends `request` over a pooled connection.
fn send_pooled(
    pool: HttpPool,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendFuture {
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);
    Box::new(async move {
        let response = tokio::time::timeout(first_byte_timeout, pool.request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(|e| {
                if e.is_connect() {
                    HttpError::ConnectionRefused
                } else {
                    HttpError::InternalError(Some(format!("{e:#}")))
                }
            })?;
        let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
        Ok((response, Box::new(async { Ok(()) }) as IoFuture))
    })
}

/// A future reporting the I/O outcome of a request or response body.
type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The spans of the requests an instance is serving, by the guest task serving each: requests
/// run concurrently in one instance, and an outbound request carries the span of its own.
#[derive(Clone, Default)]
pub struct TaskTraces(Arc<Mutex<HashMap<GuestTaskId, opentelemetry::Context>>>);

impl TaskTraces {
    /// Makes `context` the span of `task` until the guard is dropped.
    pub fn enter(&self, task: GuestTaskId, context: opentelemetry::Context) -> TaskTrace {
        self.lock().insert(task, context);
        TaskTrace {
            traces: self.clone(),
            task,
        }
    }

    fn get(&self, task: GuestTaskId) -> Option<opentelemetry::Context> {
        self.lock().get(&task).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GuestTaskId, opentelemetry::Context>> {
        // The map is consistent after any panic (single inserts and removes).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A task's span, for as long as the task is the request's.
pub struct TaskTrace {
    traces: TaskTraces,
    task: GuestTaskId,
}

impl Drop for TaskTrace {
    fn drop(&mut self) {
        self.traces.lock().remove(&self.task);
    }
}

/// An instance's outbound-HTTP policy: the allow-list, and service chaining in-process.
pub struct Outbound {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    /// Chained requests are served by the app, which owns this instance (hence weak).
    chain: Weak<dyn Chain>,
    /// The app's connections for `http://` requests.
    pool: HttpPool,
    /// The spans of the requests in flight, when telemetry is on.
    pub traces: TaskTraces,
    /// The span of the request whose task is sending right now (set by [`add_to_linker`]'s
    /// `send` just before wasmtime-wasi-http calls [`WasiHttpHooks::send_request`]).
    sending: Option<opentelemetry::Context>,
}

impl Outbound {
    pub fn new(
        component: Arc<str>,
        allowed: Arc<AllowedHosts>,
        chain: Weak<dyn Chain>,
        pool: HttpPool,
    ) -> Self {
        Self {
            component,
            allowed,
            chain,
            pool,
            traces: TaskTraces::default(),
            sending: None,
        }
    }

    fn deny(&self, scheme: &str, authority: &str) -> SendFuture {
        tracing::error!(
            component = %self.component,
            "Outbound network destination not allowed: {scheme}://{authority}; to allow it, add \
             'allowed_outbound_hosts = [\"{scheme}://{authority}\"]' to the component's manifest section"
        );
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

/// The interface whose `send` [`add_to_linker`] wraps.
const CLIENT_INTERFACE: &str = "wasi:http/client@0.3.0";

/// Links `wasi:http@0.3.0` (wasmtime-wasi-http's), with `client.send` wrapped to note first which
/// request's task is sending: the hook that sends ([`Outbound`]'s `send_request`) is not told.
/// `outbound` is an instance's [`Outbound`], the hooks its [`WasiHttpView`] hands out.
pub fn add_to_linker<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    outbound: fn(&mut T) -> &mut Outbound,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    linker.allow_shadowing(true);
    linker.instance(CLIENT_INTERFACE)?.func_wrap_concurrent(
        "send",
        move |accessor: &Accessor<T>, (request,): (Resource<wasmtime_wasi_http::p3::Request>,)| {
            Box::pin(async move {
                accessor.with(|mut access| -> wasmtime::Result<()> {
                    // The oldest task on the stack is the export call serving the request.
                    let task = access.as_context_mut().async_call_stack()?.last();
                    let outbound = outbound(access.data_mut());
                    outbound.sending = task.and_then(|task| outbound.traces.get(task));
                    Ok(())
                })?;
                let http = accessor.with_getter::<WasiHttp>(T::http);
                let sent = <WasiHttp as client::HostWithStore<T>>::send(&http, request).await;
                // An error code goes to the guest; anything else traps, as unwrapped.
                let sent = match sent {
                    Ok(response) => Ok(response),
                    Err(error) => Err(error.downcast()?),
                };
                Ok((sent,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_io: IoFuture,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let Some(authority) = uri.authority().cloned() else {
            return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
        };
        let host = authority.host().to_ascii_lowercase();
        if !self.allowed.allows(&scheme, &host, authority.port_u16()) {
            return self.deny(&scheme, authority.as_str());
        }
        if let Some(trace) = self.sending.take() {
            crate::telemetry::inject(&trace, request.headers_mut());
        }
        // Only a stopping app is gone while its instances run: nothing goes out then.
        let Some(chain) = self.chain.upgrade() else {
            return Box::new(async { Err(HttpError::DestinationUnavailable) });
        };
        if let Some(target) = chaining::target(&host) {
            let target = target.to_string();
            return Box::new(async move {
                let response = chain.chain(target, request).await?;
                Ok((response, Box::new(async { Ok(()) }) as IoFuture))
            });
        }
        if scheme == "http" {
            return send_pooled(self.pool.clone(), request, options);
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}
