//! The HTTP listener: accepts connections, hands each request to the app, and drains
//! in-flight requests on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime_wasi_http::Error as HttpError;

use crate::app::AppRuntime;

/// How long in-flight requests, and then the instances' work after their responses, may take
/// together to finish after a shutdown signal: under Kubernetes' default grace period (30 s),
/// after which the pod is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Serves `app` on `listener` until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(app: Arc<AppRuntime>, listener: TcpListener) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    println!("\nServing http://{local}");
    println!("Available Routes:");
    for (component, route) in app.routes() {
        let wildcard = if route.is_wildcard() {
            " (wildcard)"
        } else {
            ""
        };
        println!(
            "  {component}: http://{local}{}{wildcard}",
            route.component_route()
        );
    }

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            async move {
                let request = request.map(|body| body.map_err(HttpError::from).boxed_unsync());
                Ok::<_, Infallible>(app.handle(request, client).await)
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%client, "connection ended: {error}");
            }
        });
    }
    tracing::info!("shutting down; waiting for in-flight requests");
    drop(listener);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    app.shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler at start-up");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
