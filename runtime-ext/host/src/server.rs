//! The HTTP trigger's server: hands each request the listener (`spinyard-listener`: timeouts,
//! connection cap) accepts to the app, and drains in-flight requests on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use spinyard_listener::Limits;
use tokio::net::TcpListener;
use wasmtime_wasi_http::Error as HttpError;

use crate::app::AppRuntime;

/// How long in-flight requests, and then the instances' work after their responses, may take
/// together to finish after a shutdown signal: under Kubernetes' default grace period (30 s),
/// after which the pod is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Serves `app` on `listener` within `limits` until SIGINT or SIGTERM, then lets in-flight
/// requests finish.
pub async fn serve(
    app: Arc<AppRuntime>,
    listener: TcpListener,
    limits: Limits,
) -> anyhow::Result<()> {
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

    let service = |client| {
        let app = app.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            async move {
                let request = request.map(|body| body.map_err(HttpError::from).boxed_unsync());
                Ok::<_, Infallible>(app.handle(request, client).await)
            }
        })
    };
    let limits = Limits {
        drain: SHUTDOWN_GRACE,
        ..limits
    };
    let began = spinyard_listener::serve(listener, limits, service, shutdown_signal()).await;
    tracing::info!("in-flight requests done; stopping the instances");
    let deadline = began + SHUTDOWN_GRACE;
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
