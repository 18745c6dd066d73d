//! Key-value stores, variables, environment, files, and start-up errors, through the real host.

mod common;

use common::{AppDir, fixture, get_json, start_failure};

fn kv_manifest(extra: &str) -> String {
    let kv = fixture("kv");
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "kv"
[[trigger.http]]
route = "/kv/..."
component = "counter"
[component.counter]
source = "{kv}"
key_value_stores = ["default"{extra}]
"#
    )
}

async fn post_json(host: &common::Host, path: &str) -> (u16, serde_json::Value) {
    let response = common::client()
        .post(format!("{}{path}", host.base))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn key_value_persists_across_requests_and_restarts() {
    let app = AppDir::new(&kv_manifest(""));
    {
        let host = app.start(&[], &[]);
        for expected in 1..=3 {
            let (status, json) = post_json(&host, "/kv/visits").await;
            assert_eq!(status, 200, "{json}");
            assert_eq!(json["count"], expected);
        }
        assert_eq!(
            get_json(&host, "/kv/visits").await.1["keys"],
            serde_json::json!(["visits"])
        );
    }
    assert!(
        app.path().join(".spin/sqlite_key_value.db").exists(),
        "Spin's default store location"
    );
    let host = app.start(&[], &[]);
    let (_, json) = post_json(&host, "/kv/visits").await;
    assert_eq!(json["count"], 4, "the count survived a restart");
}

/// The kv app with its `default` store (SQLite) and `shared` on a Redis server of its own; the
/// server and the app's folder live as long as the values returned.
fn kv_app_with_redis_store() -> (common::infra::Server, AppDir, common::Host) {
    let redis = common::infra::redis();
    let app = AppDir::new(&kv_manifest(", \"shared\""));
    let runtime_config = app.path().join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        format!(
            "[key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://{}\"\n",
            redis.address()
        ),
    )
    .unwrap();
    let host = app.start(
        &["--runtime-config-file", runtime_config.to_str().unwrap()],
        &[],
    );
    (redis, app, host)
}

/// Many concurrent atomic increments of one key are all counted, in each kind of store: the
/// SQLite file `spin up` uses by default, and Redis. Each increment sees its own value, so the
/// values answered are exactly 1 to N: a lost update would repeat one and miss the last.
#[tokio::test]
async fn concurrent_increments_of_one_key_are_all_counted_in_sqlite_and_redis() {
    const INCREMENTS: u64 = 200;
    let (_redis, _app, host) = kv_app_with_redis_store();
    for store in ["default", "shared"] {
        let path = format!("/kv/hits?atomic&store={store}");
        let requests = (0..INCREMENTS).map(|_| post_json(&host, &path));
        let mut counts: Vec<u64> = futures::future::join_all(requests)
            .await
            .into_iter()
            .map(|(status, json)| {
                assert_eq!(status, 200, "{store}: {json}");
                json["count"].as_u64().unwrap()
            })
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=INCREMENTS).collect::<Vec<_>>(), "{store}");
    }
}

/// Listing a Redis store's keys (`SCAN`, several rounds of its cursor) returns each key once.
#[tokio::test]
async fn a_redis_store_lists_every_key_once() {
    let (_redis, _app, host) = kv_app_with_redis_store();
    let mut listed = serde_json::Value::Null;
    for i in 0..60 {
        let (status, json) = post_json(&host, &format!("/kv/key-{i}?store=shared")).await;
        assert_eq!(status, 200, "{json}");
        listed = json["keys"].clone();
    }
    let mut keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort_unstable();
    let mut expected: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn undeclared_store_is_access_denied_and_configured_store_works() {
    let app = AppDir::new(&kv_manifest(", \"cache\""));
    std::fs::write(
        app.path().join("runtime-config.toml"),
        "[key_value_store.cache]\ntype = \"spin\"\npath = \"data/cache.db\"\n",
    )
    .unwrap();
    let runtime_config = app.path().join("runtime-config.toml");
    let host = app.start(
        &["--runtime-config-file", runtime_config.to_str().unwrap()],
        &[],
    );
    let (status, json) = post_json(&host, "/kv/x?store=cache").await;
    assert_eq!(
        (status, &json["count"]),
        (200, &serde_json::json!(1)),
        "{json}"
    );
    assert!(
        app.path().join("data/cache.db").exists(),
        "path relative to the runtime config"
    );
    let (status, json) = post_json(&host, "/kv/x?store=other").await;
    assert_eq!(status, 403);
    assert!(
        json["error"].as_str().unwrap().contains("AccessDenied"),
        "{json}"
    );
}

#[test]
fn undefined_store_label_fails_at_start_up() {
    let app = AppDir::new(&kv_manifest(", \"nowhere\""));
    let stderr = start_failure(&app.manifest(), &[]);
    assert!(
        stderr.contains("component `counter`") && stderr.contains("nowhere"),
        "{stderr}"
    );
}

fn inspect_manifest() -> String {
    let inspect = fixture("inspect");
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "config"
[variables]
greeting = {{ default = "hello" }}
api_token = {{ required = true, secret = true }}
[[trigger.http]]
route = "/..."
component = "inspect"
[component.inspect]
source = "{inspect}"
environment = {{ MODE = "test" }}
files = ["static", {{ source = "config/app.json", destination = "/etc/app.json" }}]
[component.inspect.variables]
message = "{{{{ greeting }}}}, world"
token = "{{{{ api_token }}}}"
"#
    )
}

fn inspect_app() -> AppDir {
    inspect_app_from(&inspect_manifest())
}

/// The inspect app's directory, with the files its manifest names, for `manifest`.
fn inspect_app_from(manifest: &str) -> AppDir {
    let app = AppDir::new(manifest);
    std::fs::create_dir_all(app.path().join("static")).unwrap();
    std::fs::write(app.path().join("static/hello.txt"), "hi from a file").unwrap();
    std::fs::create_dir_all(app.path().join("config")).unwrap();
    std::fs::write(app.path().join("config/app.json"), "{\"a\":1}").unwrap();
    app
}

#[tokio::test]
async fn variables_environment_and_files() {
    let app = inspect_app();
    let host = app.start(
        &[],
        &[
            ("SPIN_VARIABLE_API_TOKEN", "t0k3n"),
            ("SPIN_VARIABLE_GREETING", "howdy"),
        ],
    );
    let lookup = |json: serde_json::Value| json["lookup"].clone();
    assert_eq!(
        lookup(get_json(&host, "/?var=message").await.1)["value"],
        "howdy, world"
    );
    assert_eq!(
        lookup(get_json(&host, "/?var=token").await.1)["value"],
        "t0k3n"
    );
    let undefined = lookup(get_json(&host, "/?var=greeting").await.1);
    assert!(
        undefined["error"].as_str().unwrap().contains("Undefined"),
        "{undefined}"
    );
    let invalid = lookup(get_json(&host, "/?var=Bad-Name").await.1);
    assert!(
        invalid["error"].as_str().unwrap().contains("InvalidName"),
        "{invalid}"
    );
    assert_eq!(
        lookup(get_json(&host, "/?env=MODE").await.1)["value"],
        "test"
    );
    assert_eq!(
        lookup(get_json(&host, "/?env=HOME").await.1)["value"],
        serde_json::Value::Null
    );
    assert_eq!(
        lookup(get_json(&host, "/?file=/static/hello.txt").await.1)["value"],
        "hi from a file"
    );
    assert_eq!(
        lookup(get_json(&host, "/?file=/etc/app.json").await.1)["value"],
        "{\"a\":1}"
    );
    let outside = lookup(get_json(&host, "/?file=/spin.toml").await.1);
    assert!(
        outside["error"].is_string(),
        "only declared files are visible: {outside}"
    );
}

#[test]
fn required_variable_unset_fails_at_start_up() {
    let app = inspect_app();
    let stderr = start_failure(&app.manifest(), &[]);
    assert!(
        stderr.contains("api_token") && stderr.contains("SPIN_VARIABLE_API_TOKEN"),
        "{stderr}"
    );
}

#[test]
fn manifest_error_names_component_and_field() {
    let app = AppDir::new(&inspect_manifest().replace(
        "environment =",
        "allowed_outbound_hosts = [\"example.com\"]\nenvironment =",
    ));
    let stderr = start_failure(&app.manifest(), &[]);
    assert!(stderr.contains("component `inspect`"), "{stderr}");
    assert!(stderr.contains("allowed_outbound_hosts"), "{stderr}");
    assert!(stderr.contains("missing a scheme"), "{stderr}");
}

/// A variable's value is data, never a template: one that contains `{{x}}` does not turn the
/// entry it fills into "anything"; the app does not start, and says why.
#[test]
fn a_variable_holding_a_template_opens_no_destination() {
    let app = inspect_app_from(&inspect_manifest().replace(
        "environment =",
        "allowed_outbound_hosts = [\"https://{{ greeting }}\"]\nenvironment =",
    ));
    let stderr = start_failure(
        &app.manifest(),
        &[
            ("SPIN_VARIABLE_API_TOKEN", "t"),
            ("SPIN_VARIABLE_GREETING", "{{x}}"),
        ],
    );
    assert!(stderr.contains("allowed_outbound_hosts"), "{stderr}");
    assert!(stderr.contains("https://{{x}}"), "{stderr}");
    assert!(stderr.contains("cannot itself be a template"), "{stderr}");
}

#[test]
fn unknown_field_is_rejected_as_spin_does() {
    let app = AppDir::new(&inspect_manifest().replace("environment =", "enviroment ="));
    let stderr = start_failure(&app.manifest(), &[]);
    assert!(stderr.contains("unknown field `enviroment`"), "{stderr}");
}

#[test]
fn missing_host_interface_names_interface_and_component() {
    let unsupported = fixture("unsupported");
    let app = AppDir::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\n\
         component = \"needs-sqlite\"\n[component.needs-sqlite]\nsource = \"{unsupported}\"\n"
    ));
    let stderr = start_failure(&app.manifest(), &[]);
    assert!(stderr.contains("component `needs-sqlite`"), "{stderr}");
    assert!(stderr.contains("spin:sqlite/sqlite@3.1.0"), "{stderr}");
}
