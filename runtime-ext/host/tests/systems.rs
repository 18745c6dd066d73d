//! The seed systems on PostgreSQL, served from the app's own `spin.toml` by the real host:
//! catalogue (000), products backend (001), users / business logic / data ingest (004).
//! The database is the one `cargo dev postgres` starts and migrates.

mod common;

use std::time::Duration;

use common::{Host, get, get_json, pg_port, post, start, workspace_root};
use serde_json::{Value, json};

/// Points every system at the test server; `extra` overrides (e.g. a dead port).
fn host(extra: &[(&str, &str)]) -> Host {
    let port = pg_port().to_string();
    let mut env = vec![
        ("SPIN_VARIABLE_CATALOGUE_DB_PORT", port.as_str()),
        ("SPIN_VARIABLE_BACKEND_DB_PORT", port.as_str()),
        ("SPIN_VARIABLE_APPDB_PORT", port.as_str()),
    ];
    env.extend_from_slice(extra);
    start(&workspace_root().join("spin.toml"), &[], &env)
}

/// A value unique to this test run, to find our rows among other tests'.
fn nonce() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn response(host: &Host, path: &str) -> reqwest::Response {
    common::client()
        .get(format!("{}{path}", host.base))
        .send()
        .await
        .unwrap()
}

// --- catalogue (seed 000) -----------------------------------------------------------------

#[tokio::test]
async fn catalogue_db_mode_reads_postgres() {
    let host = host(&[
        ("SPIN_VARIABLE_CATALOGUE_DATA_SOURCE", "db"),
        ("SPIN_VARIABLE_CATALOGUE_DB_USER", "devops"),
    ]);
    let response = response(&host, "/api/products").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-data-source"], "db");
    let products: Value = response.json().await.unwrap();
    let embedded: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("components/catalogue/products.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        products, embedded,
        "the migrated rows are the embedded catalogue"
    );
    let one = response_json(&host, "/api/products/3").await;
    assert_eq!(one["name"], "Origami Guide");
    let (status, missing) = get_json(&host, "/api/products/999").await;
    assert_eq!(
        (status, &missing["error"]),
        (404, &json!("Product not found"))
    );
}

async fn response_json(host: &Host, path: &str) -> Value {
    let (status, json) = get_json(host, path).await;
    assert_eq!(status, 200, "{path}: {json}");
    json
}

#[tokio::test]
async fn catalogue_falls_back_to_json_when_the_database_is_down() {
    let host = host(&[
        ("SPIN_VARIABLE_CATALOGUE_DATA_SOURCE", "db"),
        ("SPIN_VARIABLE_CATALOGUE_DB_PORT", "1"),
    ]);
    let response = response(&host, "/api/products/2").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-data-source"], "json");
    let product: Value = response.json().await.unwrap();
    assert_eq!(product["id"], 2);
    let logged = |events: &[Value], level: &str, message: &str| {
        events.iter().any(|e| {
            e["service"] == "catalogue"
                && e["level"] == level
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
        })
    };
    // The log lines reach the host's output on their own schedule, not before the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let events = loop {
        let events = host.log_events();
        let both = logged(&events, "ERROR", "Database error: ")
            && logged(&events, "INFO", "Falling back to JSON data source");
        if both || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(logged(&events, "ERROR", "Database error: "), "{events:?}");
    assert!(
        logged(&events, "INFO", "Falling back to JSON data source"),
        "{events:?}"
    );
}

#[tokio::test]
async fn catalogue_configuration_layers_and_home_page() {
    // config.json (lowest layer) sets version 1.0.0 and data source json.
    let home = response_json(&host(&[]), "/catalogue/").await;
    assert_eq!(home["app_version"], "1.0.0");
    assert_eq!(home["data_source"]["configured"], "json");
    assert_eq!(home["products_total"], 6);
    // A variable (the environment layer) outranks the files.
    let home = response_json(
        &host(&[("SPIN_VARIABLE_CATALOGUE_APP_VERSION", "2.5.0")]),
        "/catalogue",
    )
    .await;
    assert_eq!(home["app_version"], "2.5.0");
    let host = host(&[("SPIN_VARIABLE_CATALOGUE_DATA_SOURCE", "yaml")]);
    let (status, error) = get_json(&host, "/api/products").await;
    assert_eq!(status, 500);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("data_source: `yaml`"),
        "{error}"
    );
    assert_eq!(
        response_json(&host, "/catalogue/health").await,
        json!({ "status": "healthy" })
    );
}

// --- products backend (seed 001) ----------------------------------------------------------

#[tokio::test]
async fn backend_seed_examples() {
    let host = host(&[("SPIN_VARIABLE_BACKEND_SLOW_DELAY_SECONDS", "0.3")]);
    let products = response_json(&host, "/products").await;
    let products = products.as_array().unwrap();
    assert!(products.len() >= 10);
    assert_eq!(
        products[0],
        json!({ "id": 1, "name": "MacBook Pro 16\"", "price": 2899.99, "category": "Ordinateurs",
                "created_at": "2024-12-14T20:00:00" })
    );
    assert_eq!(response_json(&host, "/products/1").await, products[0]);

    let (status, created) = post(
        &host,
        "/products",
        r#"{
    "name": "iPad Pro",
    "price": 1199.00,
    "category": "Tablettes"
  }"#,
    )
    .await;
    assert_eq!(status, 201);
    assert!(created["id"].as_i64().unwrap() > 10);
    assert_eq!(
        (&created["name"], &created["price"], &created["category"]),
        (&json!("iPad Pro"), &json!(1199.0), &json!("Tablettes"))
    );
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        created_at.len() >= 19 && &created_at[10..11] == "T",
        "{created_at}"
    );
    assert_eq!(
        response_json(&host, &format!("/products/{}", created["id"])).await,
        created
    );

    let started = std::time::Instant::now();
    let slow = response_json(&host, "/slow").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow["delay_seconds"], 0.3);

    for (kind, status) in [
        ("bad_request", 400),
        ("not_found", 404),
        ("internal", 500),
        ("unavailable", 503),
    ] {
        let (got, body) = get_json(&host, &format!("/error?type={kind}")).await;
        assert_eq!((got, &body["type"]), (status, &json!(kind)));
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        let (status, _) = get(&host, "/error").await;
        assert!([400, 404, 500, 503].contains(&status));
        seen.insert(status);
    }
    assert!(seen.len() > 1, "/error is random: {seen:?}");

    let health = response_json(&host, "/backend/health").await;
    assert_eq!(
        (&health["status"], &health["service"], &health["database"]),
        (&json!("UP"), &json!("backend"), &json!("connected"))
    );
}

#[tokio::test]
async fn backend_rejects_bad_input_naming_the_field_and_writes_nothing() {
    let host = host(&[]);
    let marker = format!("bad-{}", nonce());
    let cases = [
        ("not json", "body"),
        ("[1, 2]", "body"),
        ("", "body"),
        (r#"{"price": 1, "category": "c"}"#, "name"),
        (
            &format!(r#"{{"name": "{marker}", "category": "c"}}"#),
            "price",
        ),
        (
            &format!(r#"{{"name": "{marker}", "price": "12", "category": "c"}}"#),
            "price",
        ),
        (
            &format!(r#"{{"name": "{marker}", "price": -0.01, "category": "c"}}"#),
            "price",
        ),
        (
            &format!(r#"{{"name": "{marker}", "price": 1e999, "category": "c"}}"#),
            "body",
        ),
        (
            &format!(r#"{{"name": "{marker}", "price": 1, "category": 5}}"#),
            "category",
        ),
        (
            &format!(r#"{{"name": "{marker}", "price": 1, "category": "   "}}"#),
            "category",
        ),
        (
            &format!(
                r#"{{"name": "{marker}{}", "price": 1, "category": "c"}}"#,
                "x".repeat(200)
            ),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (status, json) = post(&host, "/products", body).await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_eq!(json["field"], field, "{body}: {json}");
        assert!(json["error"].as_str().unwrap().starts_with(field), "{json}");
    }
    for id in ["abc", "0", "-3", "1.5", "99999999999"] {
        let (status, json) = get_json(&host, &format!("/products/{id}")).await;
        assert_eq!(status, 404, "{id}: {json}");
    }
    let (status, _) = post(&host, "/products", &"x".repeat(2 << 20)).await;
    assert_eq!(status, 413);
    // Asked of PostgreSQL itself: the list is paged, and this run's rows need not be on a page.
    let db = common::pg_connect("postgres", "postgres", "products_db").await;
    let written: i64 = db
        .query_one(
            "SELECT count(*) FROM products WHERE strpos(name, $1) > 0",
            &[&marker],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 0, "a rejected product was written");

    // SQL metacharacters are data, not SQL.
    let sneaky = format!("{marker}'); DELETE FROM products; --");
    let (status, created) = post(
        &host,
        "/products",
        &json!({ "name": sneaky, "price": 0, "category": "\"; DROP TABLE products" }).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], sneaky);
    assert!(
        response_json(&host, "/products")
            .await
            .as_array()
            .unwrap()
            .len()
            >= 10
    );
}

#[tokio::test]
async fn backend_200_concurrent_creates_are_200_rows() {
    let host = host(&[]);
    let category = format!("concurrency-{}", nonce());
    let client = common::client();
    let requests = (0..200).map(|i| {
        let request = client.post(format!("{}/products", host.base)).json(
            &json!({ "name": format!("item {i}"), "price": i as f64 / 4.0, "category": category }),
        );
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    });
    let results = futures::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for (status, body) in &results {
        assert_eq!(*status, 201, "{body}");
        ids.insert(body["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 200);
    // Each created row, read back by its id (the list is paged, and other runs' rows are in it).
    let host = &host;
    let reads = ids.iter().map(|id| {
        let path = format!("/products/{id}");
        async move { response_json(host, &path).await }
    });
    let stored: Vec<Value> = futures::future::join_all(reads)
        .await
        .into_iter()
        .filter(|p| p["category"] == category.as_str())
        .collect();
    assert_eq!(stored.len(), 200);
    let names: std::collections::HashSet<_> = stored
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 200);
}

#[tokio::test]
async fn backend_answers_503_when_the_database_is_down() {
    let host = host(&[("SPIN_VARIABLE_BACKEND_DB_PORT", "1")]);
    for path in ["/products", "/products/1"] {
        let (status, json) = get_json(&host, path).await;
        assert_eq!(status, 503, "{path}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .starts_with("database unavailable"),
            "{json}"
        );
    }
    let (status, json) = post(
        &host,
        "/products",
        r#"{"name":"n","price":1,"category":"c"}"#,
    )
    .await;
    assert_eq!(status, 503, "{json}");
    let (status, health) = get_json(&host, "/backend/health").await;
    assert_eq!(
        (status, &health["status"], &health["database"]),
        (503, &json!("DOWN"), &json!("disconnected"))
    );
}

// --- users / business logic / data ingest (seed 004) ---------------------------------------

/// Sign-ups racing with one email in different cases: business-logic's check cannot see the
/// others' rows yet, so the database's index on `lower(email)` decides: one 201, the rest 409
/// naming `email`.
#[tokio::test]
async fn concurrent_sign_ups_with_one_email_in_different_cases_store_one() {
    let host = host(&[]);
    let suffix = nonce().replace('-', "");
    let local = format!("race{}", &suffix[suffix.len() - 12..]);
    let sign_ups = (0..12).map(|i| {
        // `race…@example.com` with a different letter upper-cased each time.
        let mut email: Vec<char> = format!("{local}@example.com").chars().collect();
        email[i] = email[i].to_ascii_uppercase();
        let email: String = email.into_iter().collect();
        let body = json!({ "username": format!("{local}u{i}"), "email": email }).to_string();
        let host = &host;
        async move { post(host, "/api/v1/users", &body).await }
    });
    let answers = futures::future::join_all(sign_ups).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_eq!((*status, &body["field"]), (409, &json!("email")), "{body}");
    }
}

#[tokio::test]
async fn gateway_seed_examples_through_service_chaining() {
    let host = host(&[]);
    let suffix = nonce().replace('-', "");
    for service in ["frontend-api", "business-logic", "data-ingest"] {
        assert_eq!(
            response_json(&host, &format!("/{service}/health/live")).await["status"],
            "alive"
        );
        let ready = response_json(&host, &format!("/{service}/health/ready")).await;
        assert_eq!(
            (&ready["status"], &ready["database"]),
            (&json!("ready"), &json!("connected"))
        );
        let info = response_json(&host, &format!("/{service}/api/v1/info")).await;
        assert_eq!(
            (&info["service"], &info["region"]),
            (&json!(service), &json!("local"))
        );
    }

    let username = format!("testuser{}", &suffix[suffix.len() - 12..]);
    let email = format!("{username}@example.com");
    let body = json!({ "username": username, "email": email }).to_string();
    let users_before = response_json(&host, "/api/v1/analytics/summary").await["total_users"]
        .as_i64()
        .unwrap();
    let (status, user) = post(&host, "/api/v1/users", &body).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        (&user["username"], &user["email"]),
        (&json!(username), &json!(email))
    );
    let (status, again) = post(&host, "/api/v1/users", &body).await;
    assert_eq!(
        (status, &again["valid"], &again["field"]),
        (409, &json!(false), &json!("username"))
    );
    let listed = response_json(&host, "/api/v1/users?limit=1000").await;
    assert!(
        listed["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == username.as_str())
    );

    let (status, bad) = post(
        &host,
        "/api/v1/users",
        r#"{"username":"x y","email":"nope"}"#,
    )
    .await;
    assert_eq!(status, 400);
    let fields: Vec<&Value> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["field"])
        .collect();
    assert_eq!(fields, [&json!("username"), &json!("email")]);

    let sensor = format!("sensor-{suffix}");
    let (status, ingested) = post(
        &host,
        "/api/v1/data/ingest",
        &json!({"type": sensor, "data": {"temperature": 25.5, "humidity": 60}, "source": "api"})
            .to_string(),
    )
    .await;
    assert_eq!(
        (status, &ingested["status"], &ingested["ingested"]),
        (201, &json!("success"), &json!(1))
    );
    let recent = response_json(&host, "/api/v1/ingest/recent?limit=10").await;
    assert!(
        recent["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == sensor.as_str()
                && r["data"] == json!({"temperature": 25.5, "humidity": 60}))
    );

    let user_id = user["id"].as_i64().unwrap();
    let before = response_json(&host, "/api/v1/analytics/summary").await;
    let (status, order) = post(
        &host,
        "/api/v1/process/order",
        &json!({"user_id": user_id, "amount": 99.99}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        (&order["user_id"], &order["amount"], &order["status"]),
        (&json!(user_id), &json!(99.99), &json!("processed"))
    );
    let after = response_json(&host, "/api/v1/analytics/summary").await;
    assert!(after["total_orders"].as_i64() > before["total_orders"].as_i64());
    // The database outlives the run: counted from this run's user, not from old rows.
    assert!(
        after["total_users"].as_i64().unwrap() > users_before,
        "this run's user is not counted: {after}"
    );
    let (status, _) = post(
        &host,
        "/api/v1/process/order",
        r#"{"user_id": 2147483647, "amount": 5}"#,
    )
    .await;
    assert_eq!(status, 404);
}

/// `GET /products` is paged (`limit`, default 100, at most 1000; `offset`), in id order.
#[tokio::test]
async fn backend_product_list_is_paged() {
    let host = host(&[]);
    let first = response_json(&host, "/products?limit=3").await;
    let ids: Vec<i64> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let next = response_json(&host, "/products?limit=2&offset=1").await;
    assert_eq!(next[0]["id"].as_i64(), Some(ids[1]), "{next}");
    assert_eq!(next[1]["id"].as_i64(), Some(ids[2]), "{next}");
    let page = response_json(&host, "/products").await;
    assert!(page.as_array().unwrap().len() <= 100);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
    ] {
        let (status, body) = get_json(&host, &format!("/products?{query}")).await;
        assert_eq!(
            (status, &body["field"]),
            (400, &json!(field)),
            "{query}: {body}"
        );
    }
}

/// `recent` carries at most 4 MiB of records: six records of 900 kB do not all come, however
/// large `limit` is, and the answer is a 200, not a result too large for the host.
#[tokio::test]
async fn recent_records_stay_within_their_byte_budget() {
    let host = host(&[]);
    let kind = format!("big-{}", nonce());
    let blob = "x".repeat(900_000);
    for _ in 0..6 {
        let record = json!({ "type": kind, "data": { "blob": blob }, "source": "test" });
        let (status, body) = post(&host, "/api/v1/ingest", &record.to_string()).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, recent) = get_json(&host, "/api/v1/ingest/recent?limit=100").await;
    assert_eq!(status, 200, "{recent}");
    let records = recent["records"].as_array().unwrap();
    let ours = records.iter().filter(|r| r["type"] == json!(kind)).count();
    assert!((1..6).contains(&ours), "{ours} of the six 900 kB records");
    let bytes: usize = records.iter().map(|r| r["data"].to_string().len()).sum();
    assert!(bytes < 5 << 20, "{bytes} bytes");
}

#[tokio::test]
async fn ingestion_single_multiple_batch_and_stats() {
    let host = host(&[]);
    let kind = format!("kind-{}", nonce());
    let record = |n: i32| json!({ "type": kind, "data": { "n": n }, "source": "test" });
    let (status, many) = post(
        &host,
        "/api/v1/ingest",
        &json!([record(1), record(2), record(3)]).to_string(),
    )
    .await;
    assert_eq!((status, &many["ingested"]), (201, &json!(3)));
    // A full batch: this run's type then outnumbers the small groups other runs (the API fuzz)
    // leave, so it is among the largest groups `stats` shows.
    let (status, batch) = post(
        &host,
        "/api/v1/ingest/batch",
        &json!({ "records": (4..1000).map(record).collect::<Vec<_>>() }).to_string(),
    )
    .await;
    assert_eq!((status, &batch["batch_size"]), (201, &json!(996)));
    let ids = batch["ids"].as_array().unwrap();
    assert!(
        ids.windows(2).all(|w| w[0].as_i64() < w[1].as_i64()),
        "ids in request order: {ids:?}"
    );

    // One bad record fails the whole batch: nothing of it is stored.
    let poisoned =
        json!({ "records": [record(100), { "type": kind, "source": "test" }, record(101)] });
    let (status, error) = post(&host, "/api/v1/ingest/batch", &poisoned.to_string()).await;
    assert_eq!((status, &error["field"]), (400, &json!("records[1].data")));
    let stats = response_json(&host, "/api/v1/ingest/stats").await;
    assert_eq!(stats["by_type"][&kind], 999, "{stats}");
    assert!(stats["total_records"].as_i64().unwrap() >= 999);
    // Types and sources are free text: only the 100 largest groups of each are listed.
    for dimension in ["by_type", "by_source"] {
        assert!(
            stats[dimension].as_object().unwrap().len() <= 100,
            "{stats}"
        );
    }

    for (path, body, field) in [
        ("/api/v1/ingest", r#"{"data": 1}"#.to_owned(), "type"),
        ("/api/v1/ingest", r#"{"type": "t"}"#.to_owned(), "data"),
        ("/api/v1/ingest", "[]".to_owned(), "body"),
        (
            "/api/v1/ingest",
            json!((0..101).map(record).collect::<Vec<_>>()).to_string(),
            "body",
        ),
        (
            "/api/v1/ingest/batch",
            r#"{"records": {}}"#.to_owned(),
            "records",
        ),
        (
            "/api/v1/ingest/batch",
            r#"{"records": [1]}"#.to_owned(),
            "records[0].record",
        ),
    ] {
        let (status, json) = post(&host, path, &body).await;
        assert_eq!(
            (status, json["field"].as_str()),
            (400, Some(field)),
            "{path} {body}: {json}"
        );
    }
    for limit in ["0", "101", "ten", "-1"] {
        let (status, json) = get_json(&host, &format!("/api/v1/ingest/recent?limit={limit}")).await;
        assert_eq!((status, &json["field"]), (400, &json!("limit")), "{limit}");
    }
    let recent = response_json(&host, "/api/v1/ingest/recent?limit=3").await;
    assert_eq!(recent["count"], 3);
}

#[tokio::test]
async fn seed_004_services_answer_503_when_the_database_is_down() {
    let host = host(&[("SPIN_VARIABLE_APPDB_PORT", "1")]);
    let (status, json) = get_json(&host, "/api/v1/users").await;
    assert_eq!(status, 503, "{json}");
    let (status, json) = post(&host, "/api/v1/data/ingest", r#"{"type":"t","data":1}"#).await;
    assert_eq!(status, 503, "relayed from data-ingest: {json}");
    for service in ["frontend-api", "business-logic", "data-ingest"] {
        let (status, ready) = get_json(&host, &format!("/{service}/health/ready")).await;
        assert_eq!((status, &ready["status"]), (503, &json!("not ready")));
        let (status, _) = get_json(&host, &format!("/{service}/health/live")).await;
        assert_eq!(status, 200);
    }
}
