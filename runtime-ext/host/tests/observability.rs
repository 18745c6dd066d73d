//! Observability of the app's own `spin.toml`, served by the real host: Prometheus metrics kept
//! in the key-value store (exact under concurrency, valid for `promtool check metrics`), JSON
//! log lines with the request's trace, and `traceparent` carried through service chaining.

mod common;

use std::time::Duration;

use common::{Host, client, exposition, pg_port, promtool_check, start, workspace_root};
use serde_json::Value;

/// A W3C `traceparent` from a caller outside the app.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The app with its `default` store in memory (as deploy/spinkube configures it per pod), so
/// this host's counters are its own; database ports point at the test server.
fn host() -> Host {
    host_with(&[])
}

fn host_with(env: &[(&str, &str)]) -> Host {
    let dir = tempfile::tempdir().unwrap().keep();
    let runtime_config = dir.join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        "[key_value_store.default]\ntype = \"spin\"\n",
    )
    .unwrap();
    let port = pg_port().to_string();
    start(
        &workspace_root().join("spin.toml"),
        &["--runtime-config-file", runtime_config.to_str().unwrap()],
        &[
            &[
                ("SPIN_VARIABLE_BACKEND_DB_PORT", port.as_str()),
                ("SPIN_VARIABLE_APPDB_PORT", port.as_str()),
            ],
            env,
        ]
        .concat(),
    )
}

async fn eventually<T, Fut>(what: &str, check: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    common::infra::eventually(Duration::from_secs(10), what, check).await
}

async fn scrape(host: &Host, path: &str) -> String {
    let response = client()
        .get(format!("{}{path}", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{path}"
    );
    let text = response.text().await.unwrap();
    promtool_check(&text);
    text
}

/// Scrapes `path` until its exposition shows every one of `expected`, and returns it. An
/// expected `# ...` line must be there as it is; any other is a sample, `name{labels} value`,
/// whose series must have exactly that value (parsed: `} 1` does not match `} 10`). Without a
/// name, `{labels} value` asks for some series with at least those labels and that value.
async fn scrape_containing(host: &Host, path: &str, expected: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(host, path).await;
        let missing: Vec<_> = expected.iter().filter(|e| !shows(&text, e)).collect();
        if missing.is_empty() {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never showed {missing:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn shows(text: &str, expected: &str) -> bool {
    if expected.starts_with('#') {
        return text.lines().any(|line| line == expected);
    }
    let want = &exposition::parse(expected)[0];
    let labels: Vec<(&str, &str)> = want
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if want.name.is_empty() {
        let samples = exposition::parse(text);
        return exposition::matching_labels(&samples, &labels).any(|s| s.value == want.value);
    }
    exposition::value(text, &want.name, &labels) == Some(want.value)
}

/// The value of `series` (`name{labels}`, exactly as exposed); `None` when it is not exposed.
fn sample(text: &str, series: &str) -> Option<f64> {
    let want = &exposition::parse(&format!("{series} 0"))[0];
    let labels: Vec<(&str, &str)> = want
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    exposition::value(text, &want.name, &labels)
}

#[tokio::test]
async fn request_counters_are_exact_under_concurrency() {
    let host = host();
    let before = scrape(&host, "/catalogue/metrics").await;
    let ok = r#"catalogue_http_requests_total{method="GET",endpoint="get_products",status="200"}"#;
    let missing =
        r#"catalogue_http_requests_total{method="GET",endpoint="get_product",status="404"}"#;
    let count =
        r#"catalogue_http_request_duration_seconds_count{method="GET",endpoint="get_products"}"#;
    // Nothing counted yet: the series is not there, or 0.
    assert!(matches!(sample(&before, ok), None | Some(0.0)), "{before}");

    const FOUND: usize = 200;
    const NOT_FOUND: usize = 60;
    let client = client();
    let requests = (0..FOUND + NOT_FOUND).map(|i| {
        let path = if i < FOUND {
            "/api/products"
        } else {
            "/api/products/999"
        };
        let request = client.get(format!("{}{path}", host.base)).send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), FOUND);
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), NOT_FOUND);

    // Samples reach the store just after their responses (guest-kit's flush): wait for the
    // last of them, then check nothing more arrives.
    eventually("every request counted", || async {
        let text = scrape(&host, "/catalogue/metrics").await;
        let at_least = |series, n: usize| sample(&text, series).is_some_and(|v| v >= n as f64);
        (at_least(ok, FOUND) && at_least(missing, NOT_FOUND)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = scrape(&host, "/catalogue/metrics").await;
    assert_eq!(sample(&after, ok), Some(FOUND as f64), "{after}");
    assert_eq!(sample(&after, missing), Some(NOT_FOUND as f64), "{after}");
    assert_eq!(sample(&after, count), Some(FOUND as f64), "{after}");
    let inf = r#"catalogue_http_request_duration_seconds_bucket{method="GET",endpoint="get_products",le="+Inf"}"#;
    assert_eq!(sample(&after, inf), Some(FOUND as f64), "{after}");
    let sum =
        r#"catalogue_http_request_duration_seconds_sum{method="GET",endpoint="get_products"}"#;
    assert!(sample(&after, sum).is_some_and(|v| v > 0.0), "{after}");
    // Scrapes are not counted; the gauges are measured at scrape time.
    assert!(!after.contains(r#"endpoint="metrics""#), "{after}");
    let products: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("components/catalogue/products.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        sample(&after, "catalogue_products_total"),
        Some(products.len() as f64)
    );
    assert_eq!(sample(&after, "catalogue_db_connection_status"), Some(0.0));
}

#[tokio::test]
async fn every_component_exposes_valid_metrics_with_the_seed_names() {
    let host = host();
    let client = client();
    for path in [
        "/products",
        "/products/1",
        "/error?type=ValueError",
        "/backend/health",
        "/healthz",
        "/customer-web-server/health",
        "/frontend-api/health/live",
        "/business-logic/health/live",
        "/data-ingest/health/live",
    ] {
        client
            .get(format!("{}{path}", host.base))
            .send()
            .await
            .unwrap();
    }
    scrape_containing(
        &host,
        "/backend/metrics",
        &[
            "# TYPE http_requests_total counter",
            r#"http_requests_total{method="GET",path="/products/{id}",status="200"} 1"#,
            "# TYPE http_request_duration_seconds histogram",
            r#"database_queries_total{operation="select",table="products"} 2"#,
            r#"database_connection_pool{status="checked_out"} 0"#,
        ],
    )
    .await;
    scrape_containing(
        &host,
        "/time-service/metrics",
        &[r#"flask_http_request_total{method="GET",path="/healthz",status="200"} 1"#],
    )
    .await;
    scrape_containing(
        &host,
        "/customer-web-server/metrics",
        &["# TYPE flask_http_request_duration_seconds histogram"],
    )
    .await;
    for component in ["frontend-api", "business-logic", "data-ingest"] {
        scrape_containing(
            &host,
            &format!("/{component}/metrics"),
            &[r#"{path="/health/live",status="200"} 1"#],
        )
        .await;
    }
    // The management API has served nothing yet: no samples, still a valid exposition.
    scrape(&host, "/customer-management-api/metrics").await;
}

#[tokio::test]
async fn log_lines_are_json_with_the_callers_trace() {
    let host = host();
    let response = client()
        .get(format!("{}/api/products/2", host.base))
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = eventually("the request's log line", || async {
        host.log_events()
            .into_iter()
            .find(|e| e["message"] == "GET /api/products/2 200")
    })
    .await;
    assert_eq!(line["service"], "catalogue");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["trace_id"], TRACE_ID);
    let span = line["span_id"].as_str().unwrap();
    assert_eq!(span.len(), 16);
    assert_ne!(
        span, "00f067aa0ba902b7",
        "the request gets a span of its own"
    );
    assert_eq!(line["status"], 200);
    let timestamp = line["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
        "{timestamp}"
    );

    // Without a traceparent, each request starts a trace of its own.
    for _ in 0..2 {
        client()
            .get(format!("{}/catalogue/health", host.base))
            .send()
            .await
            .unwrap();
    }
    let traces: Vec<Value> = eventually("two health log lines", || async {
        let lines: Vec<Value> = host
            .log_events()
            .into_iter()
            .filter(|e| e["message"] == "GET /catalogue/health 200")
            .map(|e| e["trace_id"].clone())
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .await;
    assert_ne!(traces[0], traces[1]);
    assert_eq!(traces[0].as_str().unwrap().len(), 32);
}

/// `POST /api/v1/users` (a fresh user named from `prefix`) with the caller's [`PARENT`]; the
/// gateway chains to business-logic to validate it.
async fn create_user_in_callers_trace(host: &Host, prefix: &str) -> reqwest::Response {
    let name = format!("{prefix}{}", std::process::id());
    client()
        .post(format!("{}/api/v1/users", host.base))
        .header("traceparent", PARENT)
        .json(&serde_json::json!({ "username": name, "email": format!("{name}@example.com") }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_trace_follows_service_chaining() {
    let host = host();
    let response = create_user_in_callers_trace(&host, "trace").await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let (gateway, callee) = eventually("both services' log lines", || async {
        Some((
            host.logged("frontend-api", "POST /api/v1/users 201")
                .pop()?,
            host.logged("business-logic", "POST /api/v1/validate/user 200")
                .pop()?,
        ))
    })
    .await;
    assert_eq!(gateway["trace_id"], TRACE_ID);
    assert_eq!(callee["trace_id"], TRACE_ID);
    assert_ne!(gateway["span_id"], callee["span_id"]);
}

/// An OTLP/HTTP receiver: keeps the body of every `POST /v1/traces` and answers 200.
async fn otlp_collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let received = bodies.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let received = received.clone();
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let body = request.into_body().collect().await?.to_bytes();
                        if path == "/v1/traces" {
                            received.lock().unwrap().push(body.to_vec());
                        }
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::new(),
                        )))
                    }
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (address, bodies)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn request_spans_are_exported_over_otlp_in_the_callers_trace() {
    let (endpoint, bodies) = otlp_collector().await;
    let host = host_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "spinyard-otlp-test"),
    ]);
    let response = create_user_in_callers_trace(&host, "otel").await;
    assert_eq!(response.status(), 201);

    // The spans are protobuf: the trace id as its 16 raw bytes, the names as strings.
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let exported = eventually("the request span at the collector", || async {
        let bodies = bodies.lock().unwrap();
        let all: Vec<u8> = bodies.concat();
        (contains(&all, &trace_id) && contains(&all, b"POST /api/v1/users")).then_some(all)
    })
    .await;
    assert!(contains(&exported, b"spinyard-otlp-test"), "service.name");
    assert!(contains(&exported, b"http.response.status_code"));

    // The chained call went out in the gateway's span: the callee is in the same trace.
    let callee = eventually("business-logic's log line", || async {
        host.logged("business-logic", "POST /api/v1/validate/user 200")
            .pop()
    })
    .await;
    assert_eq!(callee["trace_id"], TRACE_ID);
}

#[tokio::test]
async fn concurrent_requests_each_pass_on_their_own_span() {
    let (endpoint, bodies) = otlp_collector().await;
    let host = host_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    // Without an incoming `traceparent`, the gateway logs a trace of its own making while the
    // host's span starts another; the chained call carries the host span's (see README).
    const REQUESTS: usize = 6;
    let requests = (0..REQUESTS).map(|i| {
        let name = format!("span{i}x{}", std::process::id());
        client()
            .post(format!("{}/api/v1/users", host.base))
            .json(&serde_json::json!({ "username": name, "email": format!("{name}@example.com") }))
            .send()
    });
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 201);
    }
    let trace_ids = |service: &str, message: &str| -> Vec<String> {
        host.logged(service, message)
            .iter()
            .map(|e| e["trace_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (gateway, callee) = eventually("every request's two log lines", || async {
        let gateway = trace_ids("frontend-api", "POST /api/v1/users 201");
        let callee = trace_ids("business-logic", "POST /api/v1/validate/user 200");
        (gateway.len() == REQUESTS && callee.len() == REQUESTS).then_some((gateway, callee))
    })
    .await;
    let distinct: std::collections::HashSet<_> = callee.iter().collect();
    assert_eq!(
        distinct.len(),
        REQUESTS,
        "a span went out with another request: {callee:?}"
    );
    for trace in &callee {
        assert!(
            !gateway.contains(trace),
            "the host's span was not passed on: {trace}"
        );
        let raw: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        eventually("the host's span at the collector", || async {
            contains(&bodies.lock().unwrap().concat(), &raw).then_some(())
        })
        .await;
    }
}

#[test]
fn the_exposition_parser_reads_escaped_labels_and_tells_1_from_10() {
    let text = "# HELP x y\nx_total{path=\"/a,b\",q=\"say \\\"hi\\\"\"} 10\nx_total{path=\"/c\"} 1\nup 1\nh_bucket{le=\"+Inf\"} 3\n";
    assert_eq!(
        exposition::value(text, "x_total", &[("path", "/c")]),
        Some(1.0)
    );
    assert_eq!(
        exposition::value(text, "x_total", &[("path", "/a,b"), ("q", "say \"hi\"")]),
        Some(10.0)
    );
    assert_eq!(
        exposition::value(text, "x_total", &[("path", "/a,b")]),
        None,
        "exact labels"
    );
    assert_eq!(exposition::sum(text, "x_total", &[]), Some(11.0));
    assert_eq!(exposition::sum(text, "y_total", &[]), None);
    assert_eq!(exposition::value(text, "up", &[]), Some(1.0));
    assert_eq!(
        exposition::value(text, "h_bucket", &[("le", "+Inf")]),
        Some(3.0)
    );
}
