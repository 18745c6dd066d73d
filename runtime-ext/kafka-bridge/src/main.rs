//! `kafka-bridge --config kafka-bridge.toml`: see the crate documentation.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kafka_bridge::config::{Config, ProcessEnv};

#[derive(Parser)]
#[command(version, about = "Kafka and MongoDB for Spin components, over HTTP")]
struct Args {
    /// The configuration file.
    #[arg(long, env = "KAFKA_BRIDGE_CONFIG", default_value = "kafka-bridge.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(&Args::parse().config, &ProcessEnv)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("Serving http://{}", listener.local_addr()?);
    let bridge = kafka_bridge::Bridge::new(config).await?;
    kafka_bridge::run(bridge, listener, stop_signal()?).await
}

/// Completes on SIGTERM (an orchestrator stopping the pod) or SIGINT (Ctrl-C).
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
