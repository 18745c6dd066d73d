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

/// An app of one component answering `GET /ok`.
fn minimal_app() -> AppDir {
    AppDir::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"edge\"\n[[trigger.http]]\n\
         route = \"/ok\"\ncomponent = \"minimal\"\n[component.minimal]\nsource = \"{}\"\n",
        fixture("minimal")
    ))
}

#[tokio::test]
async fn the_host_closes_a_thousand_slow_clients_and_serves_meanwhile() {
    let app = minimal_app();
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

/// The whole app, with a small instance pool given one request per instance: a component
/// flooded can take at most its share.
fn small_pool_app(extra: &[&str]) -> common::Host {
    let mut args = vec![
        "--max-instances",
        "40",
        "--max-instance-concurrent-reuse-count",
        "1",
    ];
    args.extend_from_slice(extra);
    let port = common::pg_port().to_string();
    common::start(
        &common::workspace_root().join("spin.toml"),
        &args,
        &[
            ("SPIN_VARIABLE_BACKEND_SLOW_DELAY_SECONDS", "4"),
            ("SPIN_VARIABLE_CATALOGUE_DB_PORT", &port),
        ],
    )
}

#[tokio::test]
async fn a_flooded_slow_route_leaves_the_other_components_answering() {
    let host = small_pool_app(&[]);
    let flood: Vec<_> = (0..100)
        .map(|_| {
            let url = format!("{}/slow", host.base);
            tokio::spawn(async move { common::client().get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..20 {
        let asked = Instant::now();
        let (status, _) = get(&host, "/api/products/1").await;
        assert_eq!(status, 200, "the catalogue answers during the flood");
        assert!(asked.elapsed() < Duration::from_secs(2));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for request in flood {
        let status = request.await.unwrap().unwrap().as_u16();
        *statuses.entry(status).or_insert(0) += 1;
    }
    println!("/slow flood of 100: {statuses:?}");
    // Half the pool (20) is the backend's: those are served, the rest told to come back.
    assert_eq!(statuses.get(&200), Some(&20), "{statuses:?}");
    assert_eq!(statuses.get(&503), Some(&80), "{statuses:?}");
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_at_the_deadline() {
    let host = small_pool_app(&["--body-read-timeout", "2s"]);
    let address = host.base.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let dripping = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut answer)).await;
    let n = read.expect("an answer before the body ends").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    dripping.abort();
    println!(
        "after {:?}: {}",
        started.elapsed(),
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(get(&host, "/api/products/1").await.0, 200);
}

#[tokio::test]
async fn a_content_length_that_is_not_a_number_is_a_400() {
    let app = minimal_app();
    let host = app.start(&[], &[]);
    let address = host.base.trim_start_matches("http://").to_owned();
    for (length, expected) in [("abc", "HTTP/1.1 400"), ("99999999999", "HTTP/1.1 413")] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let request = format!(
            "POST /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {length}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        assert!(answer.starts_with(expected), "{length}: {answer}");
    }
}
