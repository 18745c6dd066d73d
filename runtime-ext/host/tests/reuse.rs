//! Instances reused as Spin reuses WASIp3 instances: several requests in turn and at once in
//! one instance, within the reuse flags; a fault retires the instance, never reused after it.
//! The `faulty` fixture names its instance (`/instance`: a random id and the requests served).

mod common;

use std::time::Duration;

use common::{AppDir, client, fixture, get};
use serde_json::Value;

fn app() -> AppDir {
    let faulty = fixture("faulty");
    AppDir::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "reuse"
[[trigger.http]]
route = "/..."
component = "faulty"
[component.faulty]
source = "{faulty}"
"#
    ))
}

/// `(instance id, requests it has served)` of the instance that served `/instance`.
async fn instance(host: &common::Host) -> (String, u64) {
    let (status, body) = get(host, "/instance").await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    (
        json["instance"].as_str().unwrap().to_owned(),
        json["served"].as_u64().unwrap(),
    )
}

/// Two `/together` requests at once: each says whether it met the other in its instance.
/// An instance is warm first, and the second request follows once the first waits in it: a
/// request that finds no instance free starts one of its own (as in Spin).
async fn two_together(host: &common::Host) -> [Value; 2] {
    instance(host).await;
    let url = format!("{}/together", host.base);
    let send = || {
        let request = client().get(&url).send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = tokio::spawn(send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = send().await;
    [first.await.unwrap(), second]
}

#[tokio::test]
async fn one_instance_serves_requests_in_turn() {
    let app = app();
    let host = app.start(&[], &[]);
    let (first, served) = instance(&host).await;
    assert_eq!(served, 1);
    for expected in 2..=4 {
        assert_eq!(instance(&host).await, (first.clone(), expected));
    }
}

#[tokio::test]
async fn requests_run_at_once_in_one_instance() {
    let app = app();
    let host = app.start(&[], &[]);
    let [a, b] = two_together(&host).await;
    assert_eq!(a["met"], true, "{a} {b}");
    assert_eq!(b["met"], true, "{a} {b}");
    assert_eq!(a["instance"], b["instance"]);
}

#[tokio::test]
async fn a_concurrent_reuse_count_of_one_keeps_requests_apart() {
    let app = app();
    let host = app.start(&["--max-instance-concurrent-reuse-count", "1"], &[]);
    let [a, b] = two_together(&host).await;
    assert_eq!(a["met"], false, "{a} {b}");
    assert_eq!(b["met"], false, "{a} {b}");
    assert_ne!(a["instance"], b["instance"]);
}

#[tokio::test]
async fn a_reuse_count_of_one_gives_every_request_a_fresh_instance() {
    let app = app();
    let host = app.start(&["--max-instance-reuse-count", "1"], &[]);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let (id, served) = instance(&host).await;
        assert_eq!(served, 1);
        assert!(seen.insert(id), "an instance was reused");
    }
}

#[tokio::test]
async fn an_instance_retires_after_its_reuse_count() {
    let app = app();
    // A range is sampled per instance; `2..3` can only give 2.
    let host = app.start(&["--max-instance-reuse-count", "2..3"], &[]);
    let mut ids = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..6 {
        let (id, served) = instance(&host).await;
        ids.push(id);
        counts.push(served);
    }
    assert_eq!(counts, [1, 2, 1, 2, 1, 2]);
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_eq!(ids[2], ids[3]);
}

#[tokio::test]
async fn an_idle_instance_is_dropped_after_the_idle_timeout() {
    let app = app();
    let host = app.start(&["--idle-instance-timeout", "200ms"], &[]);
    let (first, _) = instance(&host).await;
    assert_eq!(instance(&host).await.0, first, "reused while warm");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (after_idle, served) = instance(&host).await;
    assert_ne!(after_idle, first);
    assert_eq!(served, 1);
}

/// Sends `path`, which faults, to the warm instance of a host started with `args`: the client
/// gets `status` within `limit`, and the next request a new instance.
async fn a_fault_retires_the_instance(args: &[&str], path: &str, status: u16, limit: Duration) {
    let app = app();
    let host = app.start(args, &[]);
    let (before, _) = instance(&host).await;
    let started = std::time::Instant::now();
    assert_eq!(get(&host, path).await.0, status, "{path}");
    assert!(started.elapsed() < limit, "{path}: {:?}", started.elapsed());
    let (after, served) = instance(&host).await;
    assert_ne!(after, before, "an instance was reused after {path}");
    assert_eq!(served, 1);
}

#[tokio::test]
async fn a_trap_retires_its_instance_and_the_next_request_succeeds() {
    a_fault_retires_the_instance(&[], "/trap", 500, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_memory_limit_failure_retires_its_instance() {
    let args = ["--max-memory-mib", "32"];
    a_fault_retires_the_instance(&args, "/oom", 500, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_timeout_is_a_504_and_retires_its_instance() {
    let args = ["--request-timeout", "1s"];
    a_fault_retires_the_instance(&args, "/loop", 504, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn requests_in_flight_in_an_instance_that_traps_get_a_500() {
    let app = app();
    let host = app.start(&[], &[]);
    let (before, _) = instance(&host).await;
    // `/sleep` waits in the (only, idle) instance; `/trap` arrives while it waits and is given
    // to the same instance, which takes concurrent requests.
    let sleeping = tokio::spawn(client().get(format!("{}/sleep", host.base)).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&host, "/trap").await.0, 500);
    let sleeping = sleeping.await.unwrap().unwrap();
    assert_eq!(sleeping.status(), 500, "{:?}", sleeping.text().await);
    let (after, _) = instance(&host).await;
    assert_ne!(after, before);
    assert_eq!(
        get(&host, "/fine").await,
        (200, "still healthy\n".to_owned())
    );
}
