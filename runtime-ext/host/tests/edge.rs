//! The network edge of the host and the bridge: slow or idle clients are closed after the
//! header-read timeout, and do not keep anyone else out.

mod common;

use std::time::{Duration, Instant};

use common::infra::{Options, Pipeline};
use common::{AppDir, fixture, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `count` connections to `address`: half of them send half a request's headers, the rest
/// nothing at all.
async fn slow_clients(address: &str, count: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect(address).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nx-slow: ")
                .await
                .unwrap();
        }
        clients.push(stream);
    }
    clients
}

/// Waits until the server has closed every one of `clients`; returns how long that took.
async fn all_closed(clients: Vec<TcpStream>, within: Duration) -> Duration {
    let started = Instant::now();
    let closed = clients.into_iter().map(|mut stream| async move {
        let mut rest = Vec::new();
        // An answer (408) or none: either way the read ends with the connection.
        let _ = stream.read_to_end(&mut rest).await;
    });
    tokio::time::timeout(within, futures::future::join_all(closed))
        .await
        .expect("every slow client closed by the server");
    started.elapsed()
}

#[tokio::test]
async fn the_host_closes_a_thousand_slow_clients_and_serves_meanwhile() {
    let app = AppDir::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"edge\"\n[[trigger.http]]\n\
         route = \"/ok\"\ncomponent = \"minimal\"\n[component.minimal]\nsource = \"{}\"\n",
        fixture("minimal")
    ));
    let host = app.start(&["--header-read-timeout", "2s"], &[]);
    let address = host.base.trim_start_matches("http://").to_owned();
    let clients = slow_clients(&address, 1000).await;
    let asked = Instant::now();
    assert_eq!(get(&host, "/ok").await, (200, "ok\n".to_string()));
    assert!(asked.elapsed() < Duration::from_secs(1), "served meanwhile");
    let took = all_closed(clients, Duration::from_secs(20)).await;
    println!("1000 slow clients closed {took:?} after the last connected");
    assert_eq!(get(&host, "/ok").await, (200, "ok\n".to_string()));
}

#[tokio::test]
async fn the_bridge_closes_slow_clients_and_serves_meanwhile() {
    let pipeline = Pipeline::start_with(Options {
        bridge_settings: "header_read_timeout_ms = 1000",
        ..Options::default()
    });
    let address = pipeline
        .bridge
        .base
        .trim_start_matches("http://")
        .to_owned();
    let clients = slow_clients(&address, 200).await;
    let (status, _) = pipeline.bridge.readiness().await;
    assert!(
        status == 200 || status == 503,
        "the bridge answers: {status}"
    );
    let live = reqwest::get(format!("{}/health/live", pipeline.bridge.base))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    all_closed(clients, Duration::from_secs(15)).await;
}
