//! Routing, `spin-*` headers, private routes and service chaining, through the real host.

mod common;

use common::{AppDir, fixture, get, get_json};

fn manifest() -> String {
    let inspect = fixture("inspect");
    let outbound = fixture("outbound");
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "routing"

[[trigger.http]]
route = "/..."
component = "root"
[[trigger.http]]
route = "/api/..."
component = "api"
[[trigger.http]]
route = "/api/products/..."
component = "products"
[[trigger.http]]
route = "/api/products/special"
component = "special"
[[trigger.http]]
route = "/users/:id/..."
component = "user"
[[trigger.http]]
route = {{ private = true }}
component = "hidden"
[[trigger.http]]
route = "/fetch"
component = "fetcher"

[component.root]
source = "{inspect}"
[component.api]
source = "{inspect}"
[component.products]
source = "{inspect}"
[component.special]
source = "{inspect}"
[component.user]
source = "{inspect}"
[component.hidden]
source = "{inspect}"
[component.fetcher]
source = "{outbound}"
allowed_outbound_hosts = ["http://hidden.spin.internal", "http://api.spin.internal"]
"#
    )
}

async fn matched_route(host: &common::Host, path: &str) -> String {
    let (status, json) = get_json(host, path).await;
    assert_eq!(status, 200, "{path}");
    json["headers"]["spin-matched-route"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn precedence_exact_over_wildcard_and_longest_prefix() {
    let app = AppDir::new(&manifest());
    let host = app.start(&[], &[]);
    for (path, route) in [
        ("/", "/..."),
        ("/elsewhere/deep", "/..."),
        ("/api", "/api/..."),
        ("/api/orders", "/api/..."),
        ("/api/products", "/api/products/..."),
        ("/api/products/7", "/api/products/..."),
        ("/api/products/special", "/api/products/special"),
        ("/api/products/special/", "/api/products/special"),
        ("/api/products/special/x", "/api/products/..."),
        ("/users/42/orders", "/users/:id/..."),
    ] {
        assert_eq!(matched_route(&host, path).await, route, "{path}");
    }
}

#[tokio::test]
async fn spin_headers_match_spin() {
    let app = AppDir::new(&manifest());
    let host = app.start(&[], &[]);
    let (status, json) = get_json(&host, "/api/products/1?x=2").await;
    assert_eq!(status, 200);
    let headers = &json["headers"];
    let authority = host.base.trim_start_matches("http://");
    assert_eq!(
        headers["spin-full-url"],
        format!("http://{authority}/api/products/1?x=2")
    );
    assert_eq!(headers["spin-path-info"], "/1");
    assert_eq!(headers["spin-matched-route"], "/api/products/...");
    assert_eq!(headers["spin-raw-component-route"], "/api/products/...");
    assert_eq!(headers["spin-component-route"], "/api/products");
    assert_eq!(headers["spin-base-path"], "/");
    let client = headers["spin-client-addr"].as_str().unwrap();
    assert!(
        client.starts_with("127.0.0.1:") && !client.ends_with(":0"),
        "{client}"
    );
    assert_eq!(
        json["uri"],
        format!("http://{authority}/api/products/1?x=2")
    );

    let (_, json) = get_json(&host, "/users/42/orders/").await;
    assert_eq!(json["headers"]["spin-path-match-id"], "42");
    assert_eq!(json["headers"]["spin-path-info"], "/orders/");
}

#[tokio::test]
async fn client_cannot_spoof_spin_headers() {
    let app = AppDir::new(&manifest());
    let host = app.start(&[], &[]);
    let response = common::client()
        .get(format!("{}/api/x", host.base))
        .header("spin-client-addr", "10.0.0.1:1")
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = response.json().await.unwrap();
    assert!(
        json["headers"]["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[tokio::test]
async fn unmatched_and_well_known_paths() {
    let app = AppDir::new(&manifest().replace(
        "route = \"/...\"\ncomponent = \"root\"",
        "route = \"/root\"\ncomponent = \"root\"",
    ));
    let host = app.start(&[], &[]);
    assert_eq!(get(&host, "/nothing/here").await.0, 404);
    assert_eq!(
        get(&host, "/.well-known/spin/health").await,
        (200, "OK".to_string())
    );
    assert_eq!(get(&host, "/.well-known/spin/other").await.0, 404);
}

#[tokio::test]
async fn private_route_only_through_chaining() {
    let app = AppDir::new(&manifest().replace(
        "route = \"/...\"\ncomponent = \"root\"",
        "route = \"/root\"\ncomponent = \"root\"",
    ));
    let host = app.start(&[], &[]);
    // Nothing public routes to `hidden`...
    assert_eq!(get(&host, "/hidden").await.0, 404);
    // ...but chaining reaches it, with Spin's synthetic route headers.
    let (status, json) = get_json(
        &host,
        "/fetch?url=http://hidden.spin.internal/inner/path?q=1",
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], 200);
    let inner: serde_json::Value = serde_json::from_str(json["body"].as_str().unwrap()).unwrap();
    let headers = &inner["headers"];
    assert_eq!(headers["spin-matched-route"], "/...");
    assert_eq!(headers["spin-component-route"], "");
    assert_eq!(headers["spin-path-info"], "/inner/path");
    assert_eq!(headers["spin-client-addr"], "0.0.0.0:0");
    assert_eq!(
        headers["spin-full-url"],
        "http://hidden.spin.internal/inner/path?q=1"
    );
}

#[tokio::test]
async fn chaining_needs_permission_and_a_known_component() {
    let app = AppDir::new(&manifest());
    let host = app.start(&[], &[]);
    // `root` is not in the fetcher's allowed_outbound_hosts.
    let (status, json) = get_json(&host, "/fetch?url=http://root.spin.internal/").await;
    assert_eq!(status, 502);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{json}"
    );
    // A denied network host is the same clear error, never a hang.
    let (status, json) = get_json(&host, "/fetch?url=http://127.0.0.1:9/").await;
    assert_eq!(status, 502);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{json}"
    );
}
