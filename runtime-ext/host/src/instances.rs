//! Component instances, reused as Spin reuses WASIp3 instances (`crates/trigger-http`): one
//! instance serves up to `--max-instance-reuse-count` requests (default 128), up to
//! `--max-instance-concurrent-reuse-count` of them at once (default 16), and is dropped after
//! `--idle-instance-timeout` without work (default 1 s). A request past `--request-timeout` (none
//! by default) is answered 504 and its instance takes no more requests. Each bound may be a range
//! (`1..8`, `1..8s`), sampled per instance.
//!
//! The dispatch is wasmtime-wasi-http's `ProxyHandler`, the one Spin uses: it hands a request to
//! an instance that can take it or starts a new one. What this module adds is what Spin adds to
//! it: how an instance is made (its store, limits and context), when it takes requests, when it
//! expires, and what its failures mean to the client ([`crate::status`] maps them to statuses).
//! A fault (trap, memory limit, timeout) retires the instance: it is never reused, requests in
//! flight in it get a 500 (a 504 for the one that timed out), and every other instance goes on.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use rand::Rng;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpView};

use crate::chaining::Chain;
use crate::loader::LoadedComponent;
use crate::outbound_http::{HttpPool, Outbound};
use crate::state::InstanceState;
use crate::status;

/// Spin's defaults for WASIp3 components.
const DEFAULT_MAX_REUSE: usize = 128;
const DEFAULT_MAX_CONCURRENT_REUSE: usize = 16;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// A value, or a half-open range `a..b` to pick one from at random for each new instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range<T> {
    Value(T),
    Bounds(T, T),
}

impl<T: rand::distr::uniform::SampleUniform + PartialOrd + Copy> Range<T> {
    fn sample(self) -> T {
        match self {
            Self::Value(value) => value,
            Self::Bounds(low, high) => rand::rng().random_range(low..high),
        }
    }
}

impl<T: PartialOrd> Range<T> {
    fn parse_with(text: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        match text.split_once("..") {
            None => Ok(Self::Value(parse(text)?)),
            Some((low, high)) => {
                let (low, high) = (parse(low)?, parse(high)?);
                if low >= high {
                    return Err(format!("the range `{text}` is empty"));
                }
                Ok(Self::Bounds(low, high))
            }
        }
    }
}

/// `--max-instance-reuse-count` and `--max-instance-concurrent-reuse-count`: a count, or a range
/// of counts. Zero would make an instance that takes no request.
pub fn parse_count_range(text: &str) -> Result<Range<usize>, String> {
    Range::parse_with(text, |part| match part.trim().parse::<usize>() {
        Ok(0) => Err("a count must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(error) => Err(format!(
            "expected a count or a range like 1..8, got `{text}`: {error}"
        )),
    })
}

/// `--request-timeout` and `--idle-instance-timeout`: a duration (a bare number is seconds; `ms`,
/// `us`, `ns`, `s` suffixes as Spin accepts them, and humantime's `1m` etc.), or a range of them.
pub fn parse_duration_range(text: &str) -> Result<Range<Duration>, String> {
    // `1..8s`: the unit of the upper bound applies to a bare lower bound, as people write it.
    let unit = text
        .split_once("..")
        .map(|(_, high)| high.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'))
        .unwrap_or("");
    Range::parse_with(text, |part| {
        let part = part.trim();
        let bare = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if bare && unit.is_empty() {
            return part
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|e| e.to_string());
        }
        let with_unit = if bare {
            format!("{part}{unit}")
        } else {
            part.to_owned()
        };
        humantime::parse_duration(&with_unit).map_err(|error| {
            format!("expected a duration like 500ms or 1..8s, got `{text}`: {error}")
        })
    })
}

/// How instances are reused: the four flags `spin up` has for them.
#[derive(Debug, Clone, Copy)]
pub struct ReuseConfig {
    pub max_reuse: Range<usize>,
    pub max_concurrent: Range<usize>,
    pub request_timeout: Option<Range<Duration>>,
    pub idle_timeout: Range<Duration>,
}

impl Default for ReuseConfig {
    fn default() -> Self {
        Self {
            max_reuse: Range::Value(DEFAULT_MAX_REUSE),
            max_concurrent: Range::Value(DEFAULT_MAX_CONCURRENT_REUSE),
            request_timeout: None,
            idle_timeout: Range::Value(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// The instances alive across the app, so a stopping server can wait for their work after the
/// response (a component's post-return tasks) to finish, and tell idle ones to go at once.
#[derive(Default)]
pub struct Lifecycle {
    live: AtomicUsize,
    changed: tokio::sync::Notify,
    stopping: CancellationToken,
}

impl Lifecycle {
    /// Stops idle instances now and waits until every instance has ended.
    pub async fn stop(&self) {
        self.stopping.cancel();
        loop {
            let changed = self.changed.notified();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            changed.await;
        }
    }

    fn started(&self) {
        self.live.fetch_add(1, Ordering::AcqRel);
    }

    fn ended(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }
}

/// What makes the instances of one component; the `HandlerState` of its `ProxyHandler`.
struct Factory {
    engine: Engine,
    component: Arc<LoadedComponent>,
    service: ServicePre<InstanceState>,
    /// Chained requests go back through the app (a weak link: the app owns this factory).
    chain: Weak<dyn Chain>,
    /// Outbound `http://` connections, shared by the app's components.
    http_pool: HttpPool,
    reuse: ReuseConfig,
    max_memory_bytes: usize,
    lifecycle: Arc<Lifecycle>,
}

impl Factory {
    fn state(&self) -> wasmtime::Result<InstanceState> {
        let component = &self.component;
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&component.environment)
            .inherit_stdout()
            .inherit_stderr();
        if let Some(root) = &component.files_root {
            wasi.preopened_dir(root, "/", FsPerms::ReadOnly)?;
        }
        Ok(InstanceState {
            table: Default::default(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(
                component.id.clone(),
                component.allowed_hosts.clone(),
                self.chain.clone(),
                self.http_pool.clone(),
            ),
            key_value: component.key_value.clone(),
            postgres: component.postgres.clone(),
            variables: component.variables.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
        })
    }
}

impl HandlerState for Factory {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<InstanceState, Expiration, Worker>> {
        let mut store = Store::new(&self.engine, self.state()?);
        store.limiter(|state| &mut state.limits);
        // Yield to the executor at every epoch tick, so that a guest computing without pause
        // cannot hold a thread, and its instance's expiry is checked while it runs.
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        store.set_epoch_deadline(1);
        let service = self.service.instantiate_async(&mut store).await?;
        self.lifecycle.started();
        tracing::debug!(component = %self.component.id, "instance started");
        let request_timeout = self.reuse.request_timeout.map(Range::sample);
        let timed_out = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <InstanceState as WasiHttpView>::http,
            expiration: Expiration {
                idle_timeout: self.reuse.idle_timeout.sample(),
                request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
                stopping: Box::pin(self.lifecycle.stopping.clone().cancelled_owned()),
                timed_out: timed_out.clone(),
            },
            state: Worker {
                component: self.component.id.clone(),
                timed_out,
                request_timeout,
                max_reuse: self.reuse.max_reuse.sample(),
                max_concurrent: self.reuse.max_concurrent.sample(),
                lifecycle: self.lifecycle.clone(),
            },
        })
    }
}

/// When an instance ends: idle past its idle timeout (or when the server stops), or busy past
/// its request timeout (the guest may be stuck where the request's own timer cannot fire).
pub struct Expiration {
    idle_timeout: Duration,
    request_timeout: Option<Duration>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Set when the instance ends busy past its request timeout: the requests still in it when
    /// it does have all run that long (it is measured from the latest), so they get a 504.
    timed_out: Arc<AtomicBool>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => {
                if self.stopping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                Some(self.idle_timeout)
            }
            // Work after the last response (e.g. a flush the guest spawned) gets the same bound.
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let Some(deadline) = timeout.and_then(|timeout| since.checked_add(timeout)) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let expired = self.sleep.as_mut().poll(cx);
        if expired.is_ready() && status != WorkerStatus::Idle {
            self.timed_out.store(true, Ordering::Release);
        }
        expired
    }
}

/// One instance's limits, and what it reports when it ends.
pub struct Worker {
    component: Arc<str>,
    timed_out: Arc<AtomicBool>,
    request_timeout: Option<Duration>,
    max_reuse: usize,
    max_concurrent: usize,
    lifecycle: Arc<Lifecycle>,
}

/// What travels with a request into its instance: its span, for its outbound requests, and a
/// place to learn whether the instance it ran in ended timed out.
pub struct RequestData {
    trace: Option<opentelemetry::Context>,
    instance_timed_out: Arc<OnceLock<Arc<AtomicBool>>>,
}

impl WorkerState for Worker {
    type StoreData = InstanceState;
    type RequestData = RequestData;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, InstanceState>,
        request: RequestData,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let _ = request.instance_timed_out.set(self.timed_out.clone());
        // The span is the request's for as long as it awaits its response (this future lives
        // that long); outbound requests of its task carry it.
        let span = request
            .trace
            .map(|context| store.data_mut().outbound.traces.enter(task, context));
        let timeout = self.request_timeout;
        Box::pin(async move {
            let _span = span;
            match timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        })
    }

    fn drop(&self, store: Store<InstanceState>, outcome: wasmtime::Result<()>) {
        if let Err(error) = outcome {
            tracing::error!(component = %self.component, "instance retired: {error:?}");
        }
        drop(store);
        self.lifecycle.ended();
    }
}

/// The instances of one component, and its share of the host: at most `max_requests` of its
/// requests in flight (so at most that many instances busy), so that one component flooded
/// (a slow route, slow uploads) cannot take the instance pool from the others.
pub struct Instances {
    handler: ProxyHandler<Factory>,
    in_flight: tokio::sync::Semaphore,
}

/// What [`Instances::new`] needs besides the component.
pub struct InstanceSettings {
    pub engine: Engine,
    pub reuse: ReuseConfig,
    pub max_memory_bytes: usize,
    pub lifecycle: Arc<Lifecycle>,
    /// Outbound `http://` connections, shared by the app's components.
    pub http_pool: HttpPool,
    /// Requests of one component in flight at once; more get a 503 at once.
    pub max_component_requests: usize,
}

impl Instances {
    pub fn new(
        component: Arc<LoadedComponent>,
        service: ServicePre<InstanceState>,
        chain: Weak<dyn Chain>,
        settings: &InstanceSettings,
    ) -> Self {
        Self {
            handler: ProxyHandler::new(Factory {
                engine: settings.engine.clone(),
                component,
                service,
                chain,
                http_pool: settings.http_pool.clone(),
                reuse: settings.reuse,
                max_memory_bytes: settings.max_memory_bytes,
                lifecycle: settings.lifecycle.clone(),
            }),
            in_flight: tokio::sync::Semaphore::new(settings.max_component_requests),
        }
    }

    /// Serves `request` in an instance; a failure is logged and answered with its status.
    pub async fn handle(
        &self,
        request: Request<WasiBody>,
        trace: Option<opentelemetry::Context>,
    ) -> Response<WasiBody> {
        let component = &*self.handler.state().component.id;
        let Ok(_slot) = self.in_flight.try_acquire() else {
            tracing::warn!(%component, "at its limit of requests in flight: 503");
            return status::busy();
        };
        let instance_timed_out = Arc::new(OnceLock::new());
        let data = RequestData {
            trace,
            instance_timed_out: instance_timed_out.clone(),
        };
        self.handler
            .handle(data, request)
            .await
            .unwrap_or_else(|error| {
                let timed_out = instance_timed_out
                    .get()
                    .is_some_and(|timed_out| timed_out.load(Ordering::Acquire));
                status::failure::<RequestData>(component, error, timed_out)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ranges_parse_as_spin_takes_them() {
        assert_eq!(parse_count_range("128"), Ok(Range::Value(128)));
        assert_eq!(parse_count_range("1..8"), Ok(Range::Bounds(1, 8)));
        assert!(parse_count_range("0").is_err());
        assert!(parse_count_range("8..1").is_err());
        assert!(parse_count_range("many").is_err());
        for _ in 0..100 {
            let picked = Range::Bounds(1, 8).sample();
            assert!((1..8).contains(&picked), "{picked}");
        }
    }

    #[test]
    fn durations_and_ranges_parse_as_spin_takes_them() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration_range("30"), Ok(Range::Value(secs(30))));
        assert_eq!(parse_duration_range("2s"), Ok(Range::Value(secs(2))));
        assert_eq!(
            parse_duration_range("250ms"),
            Ok(Range::Value(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_duration_range("1..8s"),
            Ok(Range::Bounds(secs(1), secs(8)))
        );
        assert_eq!(
            parse_duration_range("1..8"),
            Ok(Range::Bounds(secs(1), secs(8)))
        );
        assert_eq!(
            parse_duration_range("100ms..2s"),
            Ok(Range::Bounds(Duration::from_millis(100), secs(2)))
        );
        assert!(parse_duration_range("soon").is_err());
        assert!(parse_duration_range("2s..1s").is_err());
    }
}
