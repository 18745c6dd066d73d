//! The HTTP edge of spinyard's native processes (the host and the kafka-bridge): accepts
//! connections and serves each with a hyper service, within limits that keep one client from
//! exhausting the process, then drains on shutdown.
//!
//! What a public listener needs and hyper leaves off by default:
//! - a **header-read timeout** (hyper has none without a timer): it runs from the moment the
//!   connection waits for a request, so it also closes a kept-alive connection left idle, and a
//!   slowloris client that sends its headers a byte at a time. It covers the connection's first
//!   bytes too, which hyper-util reads on its own, without a timeout, to tell HTTP/1 from HTTP/2;
//! - a **connection cap**: at the cap the listener stops accepting, so new clients wait in the
//!   kernel's backlog instead of the process running out of file descriptors;
//! - **backoff on accept errors**: `EMFILE` and its kind repeat until a descriptor is freed; a
//!   loop retrying at once would spin a core;
//! - HTTP/2 **keep-alive pings**, so a dead peer's connection is closed.
//!
//! A request body's pace is the service's to bound (spinyard's body-read timeout): the listener
//! sees only connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How long the listener pauses after a failed `accept` (out of descriptors, most likely).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The limits of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From waiting for a request to having all its headers; also the longest a kept-alive
    /// connection may stay idle.
    pub header_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain: Duration::from_secs(25),
        }
    }
}

/// Serves `listener` until `shutdown` completes: each connection gets `service(peer)`. Then
/// stops accepting and lets in-flight requests finish within `limits.drain`. Returns the
/// moment shutdown began, from which callers budget their own remaining work.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    limits: Limits,
    service: F,
    shutdown: impl Future<Output = ()>,
) -> Instant
where
    F: Fn(SocketAddr) -> S,
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, graceful_watcher) = (builder.clone(), graceful.watcher());
        let service = service(peer);
        let timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            if tokio::time::timeout(timeout, version_known(&stream))
                .await
                .is_err()
            {
                tracing::debug!(%peer, "closed: no request within {timeout:?}");
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = graceful_watcher.watch(connection).await {
                tracing::debug!(%peer, "connection ended: {error}");
            }
            drop(slot);
        });
    }
    let began = Instant::now();
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests still running after {:?}; going on without them",
            limits.drain
        );
    }
    began
}

/// The client's first bytes of HTTP/2's preface: a connection starting with them is HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits, without reading them, for enough bytes to tell HTTP/1 from HTTP/2 (or the end of
/// the stream), so that hyper-util's own detection never waits.
async fn version_known(stream: &tokio::net::TcpStream) {
    let mut seen = [0; H2_PREFACE.len()];
    loop {
        match stream.peek(&mut seen).await {
            Ok(0) | Err(_) => return,
            Ok(n) if n == seen.len() || seen[..n] != H2_PREFACE[..n] => return,
            // A prefix of the preface so far: more is needed, and peek would return at once.
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The next connection, once a slot is free; `None` after a failed accept (and a pause).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let slot = slots.clone().acquire_owned().await.expect("never closed");
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(error) => {
            tracing::warn!("accept failed: {error}; pausing {ACCEPT_BACKOFF:?}");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = |_| {
            hyper::service::service_fn(|_| async {
                Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                    hyper::body::Bytes::from_static(b"ok"),
                )))
            })
        };
        tokio::spawn(serve(listener, limits, service, async {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    async fn get(address: SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn half_sent_headers_are_closed_after_the_timeout() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (address, _stop) = start(limits).await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost:").await.unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest));
        read.await.expect("closed by the listener").ok();
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(get(address).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn at_the_cap_new_connections_wait_until_one_closes() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 1,
            ..Limits::default()
        };
        let (address, _stop) = start(limits).await;
        let idle = TcpStream::connect(address).await.unwrap();
        // Served only once the idle connection is closed by its timeout.
        let started = std::time::Instant::now();
        assert!(get(address).await.starts_with("HTTP/1.1 200"));
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        drop(idle);
    }
}
