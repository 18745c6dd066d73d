//! Every curl example of the five seed documents (`shared/seeds/000`…`004`), sent to the whole
//! platform and checked against what the seed documents, plus each endpoint a seed lists
//! without a curl example (labelled with the list it comes from), so every seed route is hit.
//!
//! How an example is translated:
//! - the seed's host and port (`localhost:5000`, `:8080`, `:30080`, a `kubectl exec … curl` or a
//!   port-forward) become `base`;
//! - README's route rule: a path only one seed uses is kept (`/buy`, `/products`, `/healthz`,
//!   `/api/v1/users`, …); a path several seeds use (`/`, `/health`, `/metrics`, `/health/live`,
//!   `/health/ready`, `/api/v1/info`) gets the component id in front: 000's `/health` is
//!   `/catalogue/health`, 003's management API `/health` is `/customer-management-api/health`,
//!   002's `/` is `/time-service/`, 004's business-logic `/health/live` is
//!   `/business-logic/health/live`;
//! - data an example creates is made unique with the run's tag (`testuser123-<tag>`,
//!   `test-<tag>@example.com`, user ids `user123-<tag>`), so a second run against the same
//!   databases gets the documented 201 again; the documented conflicts (a taken username: 409)
//!   are produced within the run, by creating and repeating;
//! - a status the seed leaves implicit is README's (201 for a creation, 400 for bad input); the
//!   random `GET /error` must answer one of README's four errors, and `?type=` checks each;
//! - fields that vary (timestamps, ids, hostnames, IPs, offsets) are checked for presence and
//!   type only; numbers are compared as numbers (`1199` equals `1199.0`); where the seed shows
//!   a whole body (`{"status": "healthy"}`), the whole body must be it;
//! - what is asynchronous is polled: the purchase walkthrough (seed 003, Kafka → consumer →
//!   MongoDB) up to 30 s, and a `/metrics` scrape up to 10 s (a request's samples reach the
//!   store just after its response);
//! - `GET /slow` must take the seed's 5 s (`SLOW_ENDPOINT_DELAY`'s default: the platform runs
//!   with `backend_slow_delay_seconds` left at 5).
//!
//! The platform must be up and ready: PostgreSQL migrated and seeded (`db/`), the broker and
//! MongoDB running, the kafka-bridge connected to both.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{Value, json};

/// How long a purchase may take from its `201` to `GET /getAllUserBuys/{userid}`.
const CONSUMER_WITHIN: Duration = Duration::from_secs(30);
/// How long a request's metric samples may take to show in a scrape.
const METRICS_WITHIN: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Above `/slow`'s 5 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// `GET /slow` waits 5 s; a little tolerance for the clocks.
const SLOW_AT_LEAST: Duration = Duration::from_millis(4_900);

/// Runs every seed example against `base`; returns one line per failed check (empty = all passed),
/// each naming the seed, the request and what differed. `run` is a string unique to this run,
/// used to keep examples that create data (usernames, emails, user ids) from colliding with
/// data an earlier run left in the persistent databases.
pub async fn check_all(base: &str, run: &str) -> Vec<String> {
    let client = match Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => return vec![format!("no HTTP client: {e}")],
    };
    let mut checks = Checks {
        client,
        base: base.trim_end_matches('/').to_owned(),
        passed: 0,
        failures: Vec::new(),
    };
    let tag = tag(run);
    seed_000_catalogue(&mut checks).await;
    seed_001_backend(&mut checks).await;
    seed_002_time_service(&mut checks, &tag).await;
    seed_003_purchases(&mut checks, &tag).await;
    seed_004_microservices(&mut checks, &tag).await;
    println!(
        "seed examples: {} checks passed, {} failed",
        checks.passed,
        checks.failures.len()
    );
    checks.failures
}

// --- seed 000: the catalogue --------------------------------------------------------------

async fn seed_000_catalogue(c: &mut Checks) {
    const SEED: &str = "000";
    // "Health Checks" and "Development / Local Setup": curl http://localhost:5000/health
    c.check(
        SEED,
        "Health Endpoint",
        get("/catalogue/health"),
        status(200).body(json!({ "status": "healthy" })),
    )
    .await;

    // "API Endpoints" (no curl example): `/`, `/api/products`, `/api/products/<id>`.
    c.check(
        SEED,
        "API Endpoints: home page with system info",
        get("/catalogue/"),
        status(200)
            .string("/app_version")
            .satisfies("/data_source/in_use", "\"json\" or \"db\"", |v: &Value| {
                v == "json" || v == "db"
            })
            .object("/system"),
    )
    .await;
    c.check(
        SEED,
        "API Endpoints: all products",
        get("/api/products"),
        status(200)
            .satisfies("", "a non-empty array", |v: &Value| {
                v.as_array().is_some_and(|a| !a.is_empty())
            })
            .integer("/0/id")
            .string("/0/name")
            .string("/0/description")
            .string("/0/image_url"),
    )
    .await;
    // The schema's first sample row: 'Origami Paper Set', '/static/images/origami/001-origami.png'.
    c.check(
        SEED,
        "API Endpoints: one product (the first sample row)",
        get("/api/products/1"),
        status(200)
            .is("/id", 1)
            .is("/name", "Origami Paper Set")
            .is("/image_url", "/static/images/origami/001-origami.png")
            .string("/description"),
    )
    .await;

    // "Metrics (Prometheus)" and "Development / Local Setup": curl http://localhost:5000/metrics
    c.poll(
        SEED,
        "Metrics Endpoint",
        get("/catalogue/metrics"),
        status(200)
            .content_type("text/plain")
            .contains("# TYPE catalogue_http_requests_total counter")
            .contains("# TYPE catalogue_http_request_duration_seconds histogram")
            .contains("# TYPE catalogue_db_connection_status gauge")
            .contains("# TYPE catalogue_products_total gauge")
            // "endpoint: Flask endpoint name (get_products, get_product, etc.)"
            .contains("endpoint=\"get_products\""),
        METRICS_WITHIN,
    )
    .await;
}

// --- seed 001: the products backend -------------------------------------------------------

async fn seed_001_backend(c: &mut Checks) {
    const SEED: &str = "001";
    // The first of init_db.py's 10 sample products, as the seed's example answer shows it.
    let macbook = |prefix: &str| {
        status(200)
            .is(format!("{prefix}/id"), 1)
            .is(format!("{prefix}/name"), "MacBook Pro 16\"")
            .is(format!("{prefix}/price"), 2899.99)
            .is(format!("{prefix}/category"), "Ordinateurs")
            .string(format!("{prefix}/created_at"))
    };
    // "Récupérer tous les produits": curl http://localhost:5000/products
    c.check(
        SEED,
        "Récupérer tous les produits",
        get("/products"),
        macbook("/0").satisfies(
            "",
            "an array of at least the 10 sample products",
            |v: &Value| v.as_array().is_some_and(|a| a.len() >= 10),
        ),
    )
    .await;
    // "Récupérer un produit spécifique": curl http://localhost:5000/products/1
    c.check(
        SEED,
        "Récupérer un produit spécifique",
        get("/products/1"),
        macbook(""),
    )
    .await;
    // "Créer un nouveau produit" (the seed's answer shows id 11 on a fresh database).
    c.check(
        SEED,
        "Créer un nouveau produit",
        post(
            "/products",
            json!({ "name": "iPad Pro", "price": 1199.00, "category": "Tablettes" }),
        ),
        status(201)
            .satisfies("/id", "an id after the 10 sample products", |v: &Value| {
                v.as_i64().is_some_and(|id| id > 10)
            })
            .is("/name", "iPad Pro")
            .is("/price", 1199.0)
            .is("/category", "Tablettes")
            .string("/created_at"),
    )
    .await;
    // "Tester l'endpoint lent": curl http://localhost:5000/slow ("attend 5 secondes")
    c.check(
        SEED,
        "Tester l'endpoint lent",
        get("/slow"),
        status(200).took_at_least(SLOW_AT_LEAST),
    )
    .await;
    // "Générer une erreur": curl http://localhost:5000/error, a random error (README: one of
    // four, and `?type=` picks one).
    c.check(
        SEED,
        "Générer une erreur (random)",
        get("/error"),
        statuses(&[400, 404, 500, 503]).string("/error"),
    )
    .await;
    for (kind, code) in [
        ("bad_request", 400),
        ("not_found", 404),
        ("internal", 500),
        ("unavailable", 503),
    ] {
        c.check(
            SEED,
            "Générer une erreur (README: ?type= picks it)",
            get(format!("/error?type={kind}")),
            status(code).string("/error").is("/type", kind),
        )
        .await;
    }
    // "Healthcheck": curl http://localhost:5000/health
    c.check(
        SEED,
        "Healthcheck",
        get("/backend/health"),
        status(200)
            .is("/status", "UP")
            .is("/service", "backend")
            .is("/database", "connected")
            .string("/timestamp"),
    )
    .await;
    // "Métriques Prometheus": curl http://localhost:5000/metrics
    c.poll(
        SEED,
        "Métriques Prometheus",
        get("/backend/metrics"),
        status(200)
            .content_type("text/plain")
            .contains("# TYPE http_requests_total counter")
            .contains("# TYPE http_request_duration_seconds histogram")
            .contains("# TYPE database_queries_total counter")
            .contains("# TYPE database_connection_pool gauge")
            .contains("path=\"/products\""),
        METRICS_WITHIN,
    )
    .await;
}

// --- seed 002: the time service -----------------------------------------------------------

async fn seed_002_time_service(c: &mut Checks, tag: &str) {
    const SEED: &str = "002";
    let healthy = || status(200).body(json!({ "status": "healthy" }));
    // "Response Example" with Kafka up (the platform runs a broker).
    let metadata = || {
        status(200)
            .is("/message", "Hello, Kafka is UP")
            .is("/kafka_status", "UP")
            .string("/timestamp")
            .string("/user_ip")
            .string("/proxy_chain")
            .string("/hostname")
            .string("/os")
            .string("/pod_ip")
    };
    // "Running Locally", then test: curl http://localhost:8080/healthz; curl http://localhost:8080/
    c.check(SEED, "Running Locally", get("/healthz"), healthy())
        .await;
    c.check(SEED, "Running Locally", get("/time-service/"), metadata())
        .await;
    // "Response Example": `proxy_chain` is the chain of proxies the request came through.
    let chain = "203.0.113.45, 198.51.100.23";
    c.check(
        SEED,
        "Response Example (through two proxies)",
        get("/time-service/").header("x-forwarded-for", chain),
        metadata().is("/proxy_chain", chain),
    )
    .await;
    // "Health Checks / Liveness Probe": curl http://localhost:8080/healthz
    c.check(
        SEED,
        "Health Checks: Liveness Probe",
        get("/healthz"),
        healthy(),
    )
    .await;
    // "Health Checks / Readiness Check": curl http://localhost:8080/ (200 OK)
    c.check(
        SEED,
        "Health Checks: Readiness Check",
        get("/time-service/"),
        metadata(),
    )
    .await;
    // "Troubleshooting / Kafka not working": curl http://localhost:8080/kafka/status
    // ("503 if Kafka unavailable, or status details if available": it is available).
    c.check(
        SEED,
        "Troubleshooting: Kafka not working",
        get("/kafka/status"),
        status(200)
            .is("/status", "UP")
            .satisfies("/brokers", "a non-empty list of brokers", |v: &Value| {
                v.as_array().is_some_and(|a| !a.is_empty())
            })
            .satisfies(
                "/topics",
                "a list of topics naming simple-time-events",
                |v: &Value| {
                    v.as_array()
                        .is_some_and(|a| a.iter().any(|t| t["name"] == "simple-time-events"))
                },
            ),
    )
    .await;
    // "Key Features / Core Endpoints" without a curl example: POST /kafka/publish (a custom
    // event, acknowledged: README "200 with partition/offset"), POST /kafka/flush, GET /metrics.
    c.check(
        SEED,
        "Core Endpoints: publish a custom event",
        post(
            "/kafka/publish",
            json!({ "event_type": "seed-example", "data": { "run": tag } }),
        ),
        status(200).integer("/partition").integer("/offset"),
    )
    .await;
    c.check(
        SEED,
        "Core Endpoints: flush Kafka messages",
        post_without_body("/kafka/flush"),
        status(200),
    )
    .await;
    c.poll(
        SEED,
        "Core Endpoints: Prometheus metrics",
        get("/time-service/metrics"),
        status(200)
            .content_type("text/plain")
            .contains("# TYPE flask_http_request_total counter")
            .contains("# TYPE flask_http_request_duration_seconds histogram"),
        METRICS_WITHIN,
    )
    .await;
}

// --- seed 003: purchases (customer web server, customer management API) -------------------

async fn seed_003_purchases(c: &mut Checks, tag: &str) {
    const SEED: &str = "003";
    let user123 = format!("user123-{tag}");
    let user456 = format!("user456-{tag}");
    let healthy = || status(200).body(json!({ "status": "healthy" }));
    let johns_three = [("john", 29.99), ("john", 15.50), ("john", 42.00)];

    // "Testing the System / Access the API": curl http://localhost:30080/health
    c.check(
        SEED,
        "Access the API",
        get("/customer-web-server/health"),
        healthy(),
    )
    .await;

    // "Test 1: Create a Purchase"
    c.check(
        SEED,
        "Test 1: Create a Purchase",
        buy("john", &user123, 29.99),
        bought("john", &user123, 29.99),
    )
    .await;
    // "Test 2: Get User Purchases" ("wait a moment for Kafka to process")
    c.poll(
        SEED,
        "Test 2: Get User Purchases",
        get(format!("/getAllUserBuys/{user123}")),
        purchases(&user123, &johns_three[..1], 29.99),
        CONSUMER_WITHIN,
    )
    .await;

    // "Test 3: Multiple Purchases": two more buys, then the total.
    for price in [15.50, 42.00] {
        c.check(
            SEED,
            "Test 3: Multiple Purchases",
            buy("john", &user123, price),
            bought("john", &user123, price),
        )
        .await;
    }
    c.poll(
        SEED,
        "Test 3: Multiple Purchases (count 3, total_spent 87.49)",
        get(format!("/getAllUserBuys/{user123}")),
        purchases(&user123, &johns_three, 87.49),
        CONSUMER_WITHIN,
    )
    .await;

    // "Test 4: Different Users": jane's purchase, then each user separately (jane's first, so
    // that john's answer is checked once hers is stored).
    c.check(
        SEED,
        "Test 4: Different Users",
        buy("jane", &user456, 99.99),
        bought("jane", &user456, 99.99),
    )
    .await;
    c.poll(
        SEED,
        "Test 4: Different Users (user456)",
        get(format!("/getAllUserBuys/{user456}")),
        purchases(&user456, &[("jane", 99.99)], 99.99),
        CONSUMER_WITHIN,
    )
    .await;
    c.check(
        SEED,
        "Test 4: Different Users (user123 unchanged)",
        get(format!("/getAllUserBuys/{user123}")),
        purchases(&user123, &johns_three, 87.49),
    )
    .await;

    // "API Reference / Customer Management API" (internal, no curl example):
    // GET /purchases/{userid}, which /getAllUserBuys relays.
    c.check(
        SEED,
        "API Reference: GET /purchases/{userid}",
        get(format!("/purchases/{user123}")),
        purchases(&user123, &johns_three, 87.49),
    )
    .await;

    // "Test 5: Error Handling"
    c.check(
        SEED,
        "Test 5: Error Handling (missing required field)",
        post("/buy", json!({ "username": "john" })),
        status(400).is("/error", "Missing required fields: ['userid', 'price']"),
    )
    .await;
    c.check(
        SEED,
        "Test 5: Error Handling (invalid price)",
        post(
            "/buy",
            json!({ "username": "john", "userid": user123, "price": "invalid" }),
        ),
        status(400).is("/error", "Price must be a valid number"),
    )
    .await;
    let nobody = format!("nonexistent-{tag}");
    c.check(
        SEED,
        "Test 5: Error Handling (user with no purchases)",
        get(format!("/getAllUserBuys/{nobody}")),
        status(200).body(json!({
            "userid": nobody, "purchases": [], "count": 0, "total_spent": 0
        })),
    )
    .await;

    // "Test 6: Health Checks"
    c.check(
        SEED,
        "Test 6: Health Checks (web server)",
        get("/customer-web-server/health"),
        healthy(),
    )
    .await;
    c.check(
        SEED,
        "Test 6: Health Checks (management API, via port-forward)",
        get("/customer-management-api/health"),
        status(200).body(json!({ "status": "healthy", "mongodb": "connected" })),
    )
    .await;

    // "Troubleshooting 5": curl -X POST .../buy -d '{"username":"test","userid":"test","price":10}'
    let test = format!("test-{tag}");
    c.check(
        SEED,
        "Troubleshooting: generate some traffic",
        post(
            "/buy",
            json!({ "username": "test", "userid": test, "price": 10 }),
        ),
        bought("test", &test, 10.0),
    )
    .await;

    // "Monitoring & Observability / Exposed Metrics" (no curl example): both services' /metrics.
    c.poll(
        SEED,
        "Exposed Metrics (customer web server)",
        get("/customer-web-server/metrics"),
        status(200)
            .content_type("text/plain")
            .contains("# TYPE flask_http_request_total counter")
            .contains("# TYPE flask_http_request_duration_seconds histogram")
            .contains("path=\"/buy\""),
        METRICS_WITHIN,
    )
    .await;
    c.poll(
        SEED,
        "Exposed Metrics (customer management API)",
        get("/customer-management-api/metrics"),
        status(200)
            .content_type("text/plain")
            .contains("# TYPE flask_http_request_total counter")
            .contains("# TYPE flask_http_request_duration_seconds histogram")
            .contains("# TYPE kafka_messages_processed_total counter")
            .contains("kafka_messages_processed_total{status=\"success\"}")
            .contains("# TYPE kafka_message_processing_seconds histogram"),
        METRICS_WITHIN,
    )
    .await;
}

/// `POST /buy` with the seed's body.
fn buy(username: &str, userid: &str, price: f64) -> Request {
    post(
        "/buy",
        json!({ "username": username, "userid": userid, "price": price }),
    )
}

/// Test 1's expected response: 201 (README), and the purchase as recorded.
fn bought(username: &str, userid: &str, price: f64) -> Expect {
    status(201)
        .is("/status", "success")
        .is("/message", "Purchase recorded")
        .is("/data/username", username)
        .is("/data/userid", userid)
        .is("/data/price", price)
        .string("/data/timestamp")
}

/// `{userid, purchases: [{username, userid, price, timestamp}…], count, total_spent}`, the
/// purchases in the order they were made.
fn purchases(userid: &str, made: &[(&str, f64)], total_spent: f64) -> Expect {
    let mut expect = status(200)
        .is("/userid", userid)
        .length("/purchases", made.len())
        .is("/count", made.len() as u64)
        .is("/total_spent", total_spent);
    for (i, (username, price)) in made.iter().enumerate() {
        expect = expect
            .is(format!("/purchases/{i}/username"), *username)
            .is(format!("/purchases/{i}/userid"), userid)
            .is(format!("/purchases/{i}/price"), *price)
            .string(format!("/purchases/{i}/timestamp"));
    }
    expect
}

// --- seed 004: frontend API, business logic, data ingest ----------------------------------

async fn seed_004_microservices(c: &mut Checks, tag: &str) {
    const SEED: &str = "004";
    let alive = || status(200).is("/status", "alive");
    let ready = || status(200).is("/status", "ready");
    let info = |service: &str| {
        status(200)
            .is("/service", service)
            .string("/version")
            .string("/region")
    };

    // "Test Health Endpoints" (frontend pod, :8080)
    c.check(
        SEED,
        "Test Health Endpoints: liveness",
        get("/frontend-api/health/live"),
        alive(),
    )
    .await;
    c.check(
        SEED,
        "Test Health Endpoints: readiness",
        get("/frontend-api/health/ready"),
        ready(),
    )
    .await;

    // "Test API Endpoints" (frontend pod, :8080)
    c.check(
        SEED,
        "Test API Endpoints: service info",
        get("/frontend-api/api/v1/info"),
        info("frontend-api"),
    )
    .await;
    c.check(
        SEED,
        "Test API Endpoints: list users",
        get("/api/v1/users"),
        status(200).integer("/count").satisfies(
            "/users",
            "a list of at most 100 users (the default limit)",
            |v: &Value| v.as_array().is_some_and(|a| a.len() <= 100),
        ),
    )
    .await;
    let username = format!("testuser123-{tag}");
    let email = format!("test-{tag}@example.com");
    let user = json!({ "username": username, "email": email });
    c.check(
        SEED,
        "Test API Endpoints: create a user",
        post("/api/v1/users", user.clone()),
        status(201)
            .integer("/id")
            .is("/username", username.as_str())
            .is("/email", email.as_str())
            .string("/created_at"),
    )
    .await;
    c.check(
        SEED,
        "Test API Endpoints: create the same user again (README: 409 taken)",
        post("/api/v1/users", user.clone()),
        status(409).string("/error").is("/field", "username"),
    )
    .await;
    c.check(
        SEED,
        "Test API Endpoints: ingest data",
        post(
            "/api/v1/data/ingest",
            json!({
                "type": "sensor",
                "data": { "temperature": 25.5, "humidity": 60 },
                "source": "api"
            }),
        ),
        status(201).is("/ingested", 1).length("/ids", 1),
    )
    .await;

    // "Test Business Logic Service" (business-logic pod, :8081)
    c.check(
        SEED,
        "Test Business Logic Service: analytics summary",
        get("/api/v1/analytics/summary"),
        status(200)
            .at_least("/total_users", 1.0)
            .integer("/total_orders")
            .number("/total_revenue")
            .number("/average_order_value")
            .integer("/orders_last_24h"),
    )
    .await;
    c.check(
        SEED,
        "Test Business Logic Service: process an order",
        post(
            "/api/v1/process/order",
            json!({ "user_id": 1, "amount": 99.99 }),
        ),
        status(201)
            .integer("/order_id")
            .is("/user_id", 1)
            .is("/amount", 99.99)
            .string("/status"),
    )
    .await;

    // "Test Data Ingest Service" (data-ingest pod, :8082)
    c.check(
        SEED,
        "Test Data Ingest Service: ingestion stats",
        get("/api/v1/ingest/stats"),
        status(200)
            .at_least("/total_records", 1.0)
            .at_least("/by_type/sensor", 1.0)
            .at_least("/by_source/api", 1.0),
    )
    .await;
    c.check(
        SEED,
        "Test Data Ingest Service: recent ingestions",
        get("/api/v1/ingest/recent?limit=10"),
        status(200)
            .integer("/count")
            .satisfies("/records", "1 to 10 records", |v: &Value| {
                v.as_array().is_some_and(|a| (1..=10).contains(&a.len()))
            })
            .integer("/records/0/id")
            .string("/records/0/type")
            .string("/records/0/source"),
    )
    .await;

    // "Troubleshooting / Service Communication Issues":
    // curl -v http://business-logic:8081/health/live
    c.check(
        SEED,
        "Troubleshooting: Service Communication Issues",
        get("/business-logic/health/live"),
        alive(),
    )
    .await;

    // "Services Overview" endpoints without a curl example.
    c.check(
        SEED,
        "Services Overview: data ingest liveness",
        get("/data-ingest/health/live"),
        alive(),
    )
    .await;
    for service in ["business-logic", "data-ingest"] {
        c.check(
            SEED,
            "Services Overview: readiness",
            get(format!("/{service}/health/ready")),
            ready(),
        )
        .await;
        c.check(
            SEED,
            "Services Overview: service information",
            get(format!("/{service}/api/v1/info")),
            info(service),
        )
        .await;
    }
    let newcomer = json!({
        "username": format!("newuser-{tag}"),
        "email": format!("new-{tag}@example.com")
    });
    c.check(
        SEED,
        "Services Overview: validate user data (a new user)",
        post("/api/v1/validate/user", newcomer),
        status(200).is("/valid", true),
    )
    .await;
    c.check(
        SEED,
        "Services Overview: validate user data (a taken user, README: 409)",
        post("/api/v1/validate/user", user),
        status(409)
            .is("/valid", false)
            .is("/errors/0/field", "username")
            .string("/errors/0/message"),
    )
    .await;
    let reading = |temperature: f64| {
        json!({
            "type": "sensor",
            "data": { "temperature": temperature },
            "source": "seed-example"
        })
    };
    c.check(
        SEED,
        "Services Overview: ingest multiple records",
        post("/api/v1/ingest", json!([reading(20.5), reading(21.0)])),
        status(201).is("/ingested", 2).length("/ids", 2),
    )
    .await;
    c.check(
        SEED,
        "Services Overview: batch ingestion",
        post(
            "/api/v1/ingest/batch",
            json!({ "records": [reading(22.5), reading(23.0)] }),
        ),
        status(201).length("/ids", 2),
    )
    .await;
}

// --- the checks ---------------------------------------------------------------------------

/// The run's tag, for the data examples create: usable in a username (`A-Z a-z 0-9 _ . -`, at
/// most 50 with its prefix), an email and a URL path. `run` itself when it fits, else its
/// first characters and a hash of it.
fn tag(run: &str) -> String {
    let fits = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if !run.is_empty() && run.len() <= 24 && run.chars().all(fits) {
        return run.to_owned();
    }
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    run.hash(&mut hasher);
    let prefix: String = run.chars().filter(|c| fits(*c)).take(8).collect();
    format!("{prefix}{:016x}", hasher.finish())
}

/// One request of an example.
struct Request {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

fn get(path: impl Into<String>) -> Request {
    Request {
        method: Method::GET,
        path: path.into(),
        headers: Vec::new(),
        body: None,
    }
}

/// A POST with a JSON body (`Content-Type: application/json`, as the seeds' curls send).
fn post(path: impl Into<String>, body: Value) -> Request {
    Request {
        body: Some(body),
        method: Method::POST,
        ..get(path)
    }
}

fn post_without_body(path: impl Into<String>) -> Request {
    Request {
        method: Method::POST,
        ..get(path)
    }
}

impl Request {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        for (name, value) in &self.headers {
            write!(f, " [{name}: {value}]")?;
        }
        if let Some(body) = &self.body {
            write!(f, " {body}")?;
        }
        Ok(())
    }
}

/// What an example must answer: one of `statuses`, and every field / text / timing below.
struct Expect {
    statuses: Vec<u16>,
    /// JSON pointer (`""` is the whole body) → what must be there.
    fields: Vec<(String, Want)>,
    /// Text the body must contain (the Prometheus expositions).
    text: Vec<String>,
    content_type: Option<&'static str>,
    min_time: Option<Duration>,
}

fn status(code: u16) -> Expect {
    statuses(&[code])
}

fn statuses(codes: &[u16]) -> Expect {
    Expect {
        statuses: codes.to_vec(),
        fields: Vec::new(),
        text: Vec::new(),
        content_type: None,
        min_time: None,
    }
}

impl Expect {
    fn want(mut self, pointer: impl Into<String>, want: Want) -> Self {
        self.fields.push((pointer.into(), want));
        self
    }
    /// The field equals `value` (numbers compared as numbers).
    fn is(self, pointer: impl Into<String>, value: impl Into<Value>) -> Self {
        self.want(pointer, Want::Is(value.into()))
    }
    /// The whole body equals `value`.
    fn body(self, value: Value) -> Self {
        self.is("", value)
    }
    fn string(self, pointer: impl Into<String>) -> Self {
        self.want(pointer, Want::Kind(Kind::String))
    }
    fn number(self, pointer: impl Into<String>) -> Self {
        self.want(pointer, Want::Kind(Kind::Number))
    }
    fn integer(self, pointer: impl Into<String>) -> Self {
        self.want(pointer, Want::Kind(Kind::Integer))
    }
    fn object(self, pointer: impl Into<String>) -> Self {
        self.want(pointer, Want::Kind(Kind::Object))
    }
    /// The field is an array of `items` elements.
    fn length(self, pointer: impl Into<String>, items: usize) -> Self {
        self.want(pointer, Want::Length(items))
    }
    fn at_least(self, pointer: impl Into<String>, min: f64) -> Self {
        self.want(pointer, Want::AtLeast(min))
    }
    fn satisfies(
        self,
        pointer: impl Into<String>,
        what: &'static str,
        test: fn(&Value) -> bool,
    ) -> Self {
        self.want(pointer, Want::Satisfies(what, test))
    }
    fn contains(mut self, text: impl Into<String>) -> Self {
        self.text.push(text.into());
        self
    }
    fn content_type(mut self, prefix: &'static str) -> Self {
        self.content_type = Some(prefix);
        self
    }
    fn took_at_least(mut self, time: Duration) -> Self {
        self.min_time = Some(time);
        self
    }

    /// What differs in `answer` (empty: it is as expected).
    fn problems(&self, answer: &Answer) -> Vec<String> {
        if !self.statuses.contains(&answer.status) {
            let expected: Vec<String> = self.statuses.iter().map(u16::to_string).collect();
            return vec![format!(
                "status {}, expected {}",
                answer.status,
                expected.join(" or ")
            )];
        }
        let mut problems = Vec::new();
        if let Some(prefix) = self.content_type
            && !answer.content_type.starts_with(prefix)
        {
            problems.push(format!(
                "content-type `{}`, expected {prefix}…",
                answer.content_type
            ));
        }
        if let Some(min) = self.min_time
            && answer.elapsed < min
        {
            problems.push(format!(
                "answered after {:.2} s, expected at least {:.2} s",
                answer.elapsed.as_secs_f64(),
                min.as_secs_f64()
            ));
        }
        for needle in &self.text {
            if !answer.text.contains(needle.as_str()) {
                problems.push(format!("body lacks `{needle}`"));
            }
        }
        if !self.fields.is_empty() {
            match serde_json::from_str::<Value>(&answer.text) {
                Err(e) => problems.push(format!("body is not JSON ({e})")),
                Ok(body) => {
                    for (pointer, want) in &self.fields {
                        if let Some(problem) = want.problem(body.pointer(pointer)) {
                            let name = if pointer.is_empty() { "body" } else { pointer };
                            problems.push(format!("{name} {problem}"));
                        }
                    }
                }
            }
        }
        problems
    }
}

/// What one field must be.
enum Want {
    Is(Value),
    Kind(Kind),
    Length(usize),
    AtLeast(f64),
    Satisfies(&'static str, fn(&Value) -> bool),
}

#[derive(Clone, Copy)]
enum Kind {
    String,
    Number,
    Integer,
    Object,
}

impl Want {
    fn problem(&self, got: Option<&Value>) -> Option<String> {
        let Some(got) = got else {
            return Some(format!("is missing, expected {}", self.describe()));
        };
        let fine = match self {
            Want::Is(want) => same(got, want),
            Want::Kind(Kind::String) => got.is_string(),
            Want::Kind(Kind::Number) => got.is_number(),
            Want::Kind(Kind::Integer) => got.is_i64() || got.is_u64(),
            Want::Kind(Kind::Object) => got.is_object(),
            Want::Length(items) => got.as_array().is_some_and(|a| a.len() == *items),
            Want::AtLeast(min) => got.as_f64().is_some_and(|n| n >= *min),
            Want::Satisfies(_, test) => test(got),
        };
        (!fine).then(|| {
            format!(
                "is {}, expected {}",
                excerpt(&got.to_string(), 200),
                self.describe()
            )
        })
    }

    fn describe(&self) -> String {
        match self {
            Want::Is(want) => want.to_string(),
            Want::Kind(Kind::String) => "a string".to_owned(),
            Want::Kind(Kind::Number) => "a number".to_owned(),
            Want::Kind(Kind::Integer) => "an integer".to_owned(),
            Want::Kind(Kind::Object) => "an object".to_owned(),
            Want::Length(items) => format!("an array of {items}"),
            Want::AtLeast(min) => format!("a number ≥ {min}"),
            Want::Satisfies(what, _) => (*what).to_owned(),
        }
    }
}

/// JSON equality with numbers compared by value (`1199` = `1199.0`, `0` = `0.0`).
fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => match (g.as_f64(), w.as_f64()) {
            (Some(g), Some(w)) => (g - w).abs() < 1e-9,
            _ => false,
        },
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(g, w)| same(g, w))
        }
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len() && w.iter().all(|(k, w)| g.get(k).is_some_and(|g| same(g, w)))
        }
        _ => got == want,
    }
}

/// The first `max` characters of `text`, on one line.
fn excerpt(text: &str, max: usize) -> String {
    let mut short: String = text
        .chars()
        .take(max)
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        short.push('…');
    }
    short
}

/// One response, as received.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
    elapsed: Duration,
}

struct Checks {
    client: Client,
    base: String,
    passed: usize,
    failures: Vec<String>,
}

impl Checks {
    async fn send(&self, request: &Request) -> Result<Answer, String> {
        let url = format!("{}{}", self.base, request.path);
        let mut builder = self.client.request(request.method.clone(), url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let started = Instant::now();
        let response = builder
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response
            .text()
            .await
            .map_err(|e| format!("status {status}, body unreadable: {e}"))?;
        Ok(Answer {
            status,
            content_type,
            text,
            elapsed: started.elapsed(),
        })
    }

    /// Sends `request` once; its answer must be as `expect`ed.
    async fn check(&mut self, seed: &str, example: &str, request: Request, expect: Expect) {
        self.poll(seed, example, request, expect, Duration::ZERO)
            .await;
    }

    /// Sends `request` until its answer is as `expect`ed, for at most `within` (something
    /// asynchronous must happen first); the last answer's problems are the failure.
    async fn poll(
        &mut self,
        seed: &str,
        example: &str,
        request: Request,
        expect: Expect,
        within: Duration,
    ) {
        let started = Instant::now();
        loop {
            let (problems, answer) = match self.send(&request).await {
                Ok(answer) => (expect.problems(&answer), Some(answer)),
                Err(e) => (vec![e], None),
            };
            let waited = if within.is_zero() {
                String::new()
            } else {
                format!(", after {:.1} s", started.elapsed().as_secs_f64())
            };
            match answer {
                Some(answer) if problems.is_empty() => {
                    println!(
                        "ok {seed} {} {} → {} ({example}{waited})",
                        request.method, request.path, answer.status
                    );
                    self.passed += 1;
                    return;
                }
                _ if started.elapsed() < within => tokio::time::sleep(POLL_EVERY).await,
                answer => {
                    let answered = answer
                        .map(|a| format!(" — answered {}: {}", a.status, excerpt(&a.text, 300)))
                        .unwrap_or_default();
                    let failure = format!(
                        "{seed} {example}: {request}: {}{waited}{answered}",
                        problems.join("; ")
                    );
                    println!("FAILED {failure}");
                    self.failures.push(excerpt(&failure, 2_000));
                    return;
                }
            }
        }
    }
}
