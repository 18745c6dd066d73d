//! `allowed_outbound_hosts`: which network destinations a component may reach.
//!
//! Grammar (Spin's): `scheme://host[:port]`, where `scheme` may be `*`; `host` is a name,
//! an IP, `*`, `*.suffix`, or `self` (this app); `port` is a number, a half-open range `a..b`, or `*`.
//! A missing port means the scheme's well-known port. `{{ var }}` templates are resolved
//! against application variables before parsing, once: a `{{` or `}}` left afterwards came from a
//! variable's value and is refused, never read as "anything". IPv6 literals (`[::1]`) compare as
//! addresses, however they are written.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{Context, bail};
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

use crate::app::AppRuntime;
use crate::state::InstanceState;

/// The suffix of service-chaining hosts: `http://<component-id>.spin.internal`.
const CHAINING_SUFFIX: &str = ".spin.internal";

/// A denied destination: the guest gets `HttpRequestDenied`, and this names what to allow.
#[derive(Debug, thiserror::Error)]
#[error(
    "destination `{url}` is not allowed for component `{component}`; add `{suggestion}` to its `allowed_outbound_hosts`"
)]
pub struct Denied {
    pub component: String,
    pub url: String,
    pub suggestion: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Subdomain(String),
    /// `self`: the app itself (relative URLs), which spinyard does not route yet.
    SelfApp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// One parsed entry of `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// The well-known port of a scheme, used when the entry or the URL names none.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    /// Parses an entry whose templates have been resolved.
    pub fn parse(entry: &str) -> anyhow::Result<Self> {
        if entry.contains("{{") || entry.contains("}}") {
            bail!(
                "`{{{{` or `}}}}` after the app's variables were substituted: a variable's value cannot itself be a template"
            );
        }
        let Some((scheme, rest)) = entry.split_once("://") else {
            bail!("missing a scheme: write e.g. `https://{entry}`");
        };
        if scheme.is_empty() {
            bail!("empty scheme");
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("paths are not allowed, only scheme, host and port");
        }
        let (host_text, port) = split_host_port(rest);
        let host = match host_text {
            "" => bail!("missing a host"),
            "*" => HostPattern::Any,
            "self" | "self.alt" => HostPattern::SelfApp,
            wildcard if wildcard.starts_with("*.") => {
                HostPattern::Subdomain(wildcard[1..].to_ascii_lowercase())
            }
            name if name.contains('*') => {
                bail!("`*` may only stand alone or as the first label of a host")
            }
            name => HostPattern::Exact(canonical_host(name)),
        };
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(port) => match port.split_once("..") {
                Some((low, end)) => {
                    let (low, end) = (parse_port(low)?, parse_port(end)?);
                    if low >= end {
                        bail!("port range `{port}` is empty");
                    }
                    PortPattern::Range(low, end - 1)
                }
                None => {
                    let port = parse_port(port)?;
                    PortPattern::Range(port, port)
                }
            },
            None if scheme == "*" => PortPattern::Any,
            None => match default_port(scheme) {
                Some(port) => PortPattern::Range(port, port),
                None => bail!(
                    "scheme `{scheme}` has no well-known port: give one, e.g. `{scheme}://{host_text}:1234`"
                ),
            },
        };
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self
            .scheme
            .as_deref()
            .is_none_or(|allowed| allowed == scheme);
        let host = canonical_host(host);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(name) => *name == host,
            HostPattern::Subdomain(suffix) => {
                host.ends_with(suffix.as_str()) && host.len() > suffix.len()
            }
            HostPattern::SelfApp => false,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(low, high) => (low..=high).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// A host as compared: a name in lower case; an IP address in its canonical form, without the
/// brackets a URL puts around an IPv6 literal.
fn canonical_host(host: &str) -> String {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn parse_port(text: &str) -> anyhow::Result<u16> {
    text.parse()
        .with_context(|| format!("`{text}` is not a port number"))
}

/// A component's whole allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses the entries, after their `{{ var }}` templates have been resolved.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let entries = entries
            .iter()
            .map(|entry| AllowedHost::parse(entry).with_context(|| format!("`{entry}`")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { entries })
    }

    /// Whether `scheme://host:port` may be reached; `port` defaults to the scheme's.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.entries
            .iter()
            .any(|entry| entry.allows(scheme, host, port))
    }
}

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
    app: Weak<AppRuntime>,
    /// The spans of the requests in flight, when telemetry is on.
    pub traces: TaskTraces,
    /// The span of the request whose task is sending right now (set by [`add_to_linker`]'s
    /// `send` just before wasmtime-wasi-http calls [`WasiHttpHooks::send_request`]).
    sending: Option<opentelemetry::Context>,
}

impl Outbound {
    pub fn new(component: Arc<str>, allowed: Arc<AllowedHosts>, app: Weak<AppRuntime>) -> Self {
        Self {
            component,
            allowed,
            app,
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
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    linker.allow_shadowing(true);
    linker.instance(CLIENT_INTERFACE)?.func_wrap_concurrent(
        "send",
        |accessor: &Accessor<InstanceState>,
         (request,): (Resource<wasmtime_wasi_http::p3::Request>,)| {
            Box::pin(async move {
                accessor.with(|mut access| -> wasmtime::Result<()> {
                    // The oldest task on the stack is the export call serving the request.
                    let task = access.as_context_mut().async_call_stack()?.last();
                    let outbound = &mut access.data_mut().outbound;
                    outbound.sending = task.and_then(|task| outbound.traces.get(task));
                    Ok(())
                })?;
                let http = accessor.with_getter::<WasiHttp>(<InstanceState as WasiHttpView>::http);
                let sent =
                    <WasiHttp as client::HostWithStore<InstanceState>>::send(&http, request).await;
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
        // Only a stopping app is gone while its instances run.
        let Some(app) = self.app.upgrade() else {
            return Box::new(async { Err(HttpError::DestinationUnavailable) });
        };
        if let Some(target) = host.strip_suffix(CHAINING_SUFFIX)
            && !target.contains('.')
        {
            let target = target.to_string();
            return Box::new(async move {
                let response = app.chain(&target, request).await?;
                Ok((response, Box::new(async { Ok(()) }) as IoFuture))
            });
        }
        if scheme == "http" {
            return send_pooled(app.http_pool.clone(), request, options);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_host_with_default_port() {
        let allowed = hosts(&["https://api.example.com"]);
        assert!(allowed.allows("https", "api.example.com", None));
        assert!(allowed.allows("https", "API.example.com", Some(443)));
        assert!(!allowed.allows("https", "api.example.com", Some(8443)));
        assert!(!allowed.allows("http", "api.example.com", None));
        assert!(!allowed.allows("https", "evil.com", None));
    }

    #[test]
    fn wildcards_and_ranges() {
        let allowed = hosts(&[
            "*://*.spin.internal:*",
            "http://127.0.0.1:8000..8100",
            "postgres://db",
        ]);
        assert!(allowed.allows("http", "users.spin.internal", None));
        assert!(!allowed.allows("http", "spin.internal", None));
        assert!(allowed.allows("http", "127.0.0.1", Some(8080)));
        assert!(!allowed.allows("http", "127.0.0.1", Some(8100)));
        assert!(allowed.allows("postgres", "db", None));
        assert!(!allowed.allows("postgres", "db", Some(5433)));
    }

    #[test]
    fn ipv6_literals_match_however_written() {
        let allowed = hosts(&["http://[::1]:8080", "postgres://[2001:db8::0:1]"]);
        assert!(allowed.allows("http", "[::1]", Some(8080)), "a URL's host");
        assert!(
            allowed.allows("http", "::1", Some(8080)),
            "a socket address's"
        );
        assert!(allowed.allows("http", "[0:0::1]", Some(8080)));
        assert!(!allowed.allows("http", "[::2]", Some(8080)));
        assert!(allowed.allows("postgres", "2001:db8::1", None));
    }

    #[test]
    fn a_template_left_after_rendering_is_refused() {
        for entry in ["https://{{x}}", "*://{{ host }}:*", "http://a}}"] {
            let message = format!("{:#}", AllowedHost::parse(entry).unwrap_err());
            assert!(
                message.contains("cannot itself be a template"),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn self_is_not_a_host_name() {
        let allowed = hosts(&["http://self"]);
        assert!(!allowed.allows("http", "self", None));
    }

    #[test]
    fn malformed_entries_are_explained() {
        for (entry, expected) in [
            ("example.com", "missing a scheme"),
            ("https://example.com/path", "paths are not allowed"),
            ("https://ex*ample.com", "`*` may only"),
            ("https://example.com:http", "not a port"),
            ("foo://example.com", "no well-known port"),
        ] {
            let message = format!("{:#}", AllowedHost::parse(entry).unwrap_err());
            assert!(message.contains(expected), "{entry}: {message}");
        }
    }
}
