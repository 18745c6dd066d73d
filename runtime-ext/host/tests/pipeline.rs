//! Seeds 002 and 003 end to end over real servers: `POST /buy` → kafka-bridge → Kafka (tansu)
//! → kafka-bridge → customer-management-api → MongoDB (SecantusDB), the time service's events,
//! and what happens when the broker, MongoDB or a message goes bad.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::infra::{DELIVERY_SECRET, Options, Pipeline, SECRET, eventually};
use common::{Host, get_json, post};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};

/// How long a purchase may take from `201` to visible in these tests (the broker, MongoDB and
/// the consumer group join all start with the test).
const VISIBLE_WITHIN: Duration = Duration::from_secs(60);

async fn buy(host: &Host, username: &str, userid: &str, price: Value) -> (u16, Value) {
    let body = json!({ "username": username, "userid": userid, "price": price });
    post(host, "/buy", &body.to_string()).await
}

/// Waits until `userid` has `count` purchases and returns the answer.
async fn purchases_when(host: &Host, userid: &str, count: u64) -> Value {
    eventually(
        VISIBLE_WITHIN,
        &format!("{count} purchases of {userid}"),
        || async {
            let (status, body) = get_json(host, &format!("/getAllUserBuys/{userid}")).await;
            (status == 200 && body["count"] == count).then_some(body)
        },
    )
    .await
}

#[tokio::test]
async fn seed_walkthrough_three_buys_other_users_and_unknown_user() {
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    let (status, body) = buy(host, "john", "user123", json!(29.99)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Purchase recorded");
    assert_eq!(body["data"]["username"], "john");
    assert_eq!(body["data"]["userid"], "user123");
    assert_eq!(body["data"]["price"], 29.99);
    let timestamp = body["data"]["timestamp"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(),
        "{timestamp}"
    );
    let first = purchases_when(host, "user123", 1).await;
    assert_eq!(first["total_spent"], 29.99);
    assert_eq!(first["purchases"][0]["price"], 29.99);
    assert!(first["purchases"][0].get("_id").is_none());

    assert_eq!(buy(host, "john", "user123", json!(15.50)).await.0, 201);
    assert_eq!(buy(host, "john", "user123", json!(42.00)).await.0, 201);
    assert_eq!(buy(host, "jane", "user456", json!(99.99)).await.0, 201);
    let john = purchases_when(host, "user123", 3).await;
    assert_eq!(john["userid"], "user123");
    assert_eq!(john["total_spent"], 87.49);
    let prices: Vec<f64> = john["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"].as_f64().unwrap())
        .collect();
    assert_eq!(prices, [29.99, 15.5, 42.0]);
    let jane = purchases_when(host, "user456", 1).await;
    assert_eq!(jane["total_spent"], 99.99);
    assert_eq!(jane["purchases"][0]["username"], "jane");

    let (status, nobody) = get_json(host, "/getAllUserBuys/nonexistent").await;
    assert_eq!(status, 200);
    assert_eq!(
        nobody,
        json!({ "userid": "nonexistent", "purchases": [], "count": 0, "total_spent": 0 })
    );

    let (status, health) = get_json(host, "/customer-web-server/health").await;
    assert_eq!((status, health), (200, json!({ "status": "healthy" })));
    let (status, health) = get_json(host, "/customer-management-api/health").await;
    assert_eq!(
        (status, health),
        (200, json!({ "status": "healthy", "mongodb": "connected" }))
    );

    // The bridge's own: a valid exposition, and a health report naming each subscription.
    common::promtool_check(&pipeline.bridge.metrics().await);
    let report: Value = reqwest::get(format!("{}/health/ready", pipeline.bridge.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &report["status"],
            &report["ready"],
            &report["kafka"],
            &report["mongodb"]
        ),
        (
            &json!("healthy"),
            &json!(true),
            &json!("UP"),
            &json!("connected")
        ),
        "{report}"
    );
    let subscriptions = report["subscriptions"].as_array().unwrap();
    let groups: Vec<&str> = subscriptions
        .iter()
        .map(|s| s["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        ["purchase-consumer-group", "simple-time-group"],
        "{report}"
    );
    let purchases = &subscriptions[0];
    assert_eq!(purchases["topic"], "purchases");
    assert_eq!(purchases["condition"], "ok");
    assert_eq!(
        purchases["assigned_partitions"],
        json!([0, 1, 2]),
        "{report}"
    );
    assert!(
        purchases["seconds_since_progress"].as_f64().is_some(),
        "{report}"
    );
}

#[tokio::test]
async fn a_purchase_carries_its_trace_through_kafka_to_the_consumer() {
    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    let response = common::client()
        .post(format!("{}/buy", host.base))
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
        .json(&json!({ "username": "trace", "userid": "traced-user", "price": 1.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let purchase_id = response.json::<Value>().await.unwrap()["data"]["purchase_id"].clone();
    purchases_when(host, "traced-user", 1).await;

    // The producer's span, and the consumer's, each in the caller's trace (the consumer logs
    // once its store answered, which may be just after the purchase became visible).
    let (produced, consumed) = eventually(VISIBLE_WITHIN, "both log lines", || async {
        let consumed = host
            .logged("customer-management-api", "kafka message processed")
            .into_iter()
            .find(|e| e["key"] == "traced-user")?;
        Some((
            host.logged("customer-web-server", "POST /buy 201").pop()?,
            consumed,
        ))
    })
    .await;
    assert_eq!(produced["trace_id"], TRACE_ID);
    assert_eq!(consumed["trace_id"], TRACE_ID, "{consumed}");
    assert_eq!(consumed["topic"], "purchases");
    assert_ne!(produced["span_id"], consumed["span_id"]);

    // The header itself, as a plain Kafka client reads it.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", pipeline.broker.address())
        .set("group.id", "trace-test")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["purchases"]).unwrap();
    let header = eventually(VISIBLE_WITHIN, "the purchase on the topic", || async {
        let message = consumer.poll(Duration::from_millis(500))?.ok()?;
        let value: Value = serde_json::from_slice(message.payload()?).ok()?;
        if value["purchase_id"] != purchase_id {
            return None;
        }
        let headers = message.headers()?;
        headers
            .iter()
            .find(|h| h.key == "traceparent")
            .and_then(|h| Some(String::from_utf8(h.value?.to_vec()).unwrap()))
    })
    .await;
    assert!(header.starts_with(&format!("00-{TRACE_ID}-")), "{header}");

    let (status, text) = common::get(host, "/customer-management-api/metrics").await;
    assert_eq!(status, 200);
    common::promtool_check(&text);
    assert!(
        text.contains("# TYPE kafka_messages_processed_total counter")
            && text.contains(r#"kafka_messages_processed_total{status="success"}"#)
            && text.contains("kafka_message_processing_seconds_count"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_purchases_get_the_seed_messages_and_are_not_published() {
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    let (status, body) = post(host, "/buy", r#"{"username": "john"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "Missing required fields: ['userid', 'price']"
    );
    assert_eq!(body["field"], "userid");
    let (status, body) = buy(host, "john", "user123", json!("invalid")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Price must be a valid number");
    assert_eq!(body["field"], "price");
    let cases = [
        ("not json", "body"),
        ("[1, 2]", "body"),
        (r#"{"username": "", "userid": "u", "price": 1}"#, "username"),
        (r#"{"username": "j", "userid": null, "price": 1}"#, "userid"),
        (r#"{"username": "j", "userid": "u", "price": -5}"#, "price"),
        (
            r#"{"username": "j", "userid": "u", "price": "NaN"}"#,
            "price",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = post(host, "/buy", body).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }
    let published = || {
        pipeline
            .bridge
            .metric("kafka_bridge_produce_total", &[("topic", "purchases")])
    };
    assert_eq!(published().await, 0.0, "a rejected purchase reached Kafka");
    // The counter does move: a valid purchase is counted.
    assert_eq!(buy(host, "ok", "counted", json!(1)).await.0, 201);
    assert_eq!(published().await, 1.0);
}

#[tokio::test]
async fn broker_down_means_503_not_a_false_success_and_the_flow_resumes() {
    // A broker that keeps its data across the restart, as Kafka does.
    let storage = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::start_with(Options {
        broker_storage: Some(storage.path()),
        ..Options::default()
    });
    let host = &pipeline.host;
    let mut acknowledged = HashSet::new();
    for price in [1.0, 2.0, 3.0] {
        let (status, body) = buy(host, "ann", "outage-user", json!(price)).await;
        assert_eq!(status, 201, "{body}");
        acknowledged.insert(body["data"]["purchase_id"].as_str().unwrap().to_owned());
    }
    purchases_when(host, "outage-user", 3).await;

    pipeline.broker.stop();
    // Once the bridge has noticed, every buy is refused at once and none is recorded.
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = buy(host, "ann", "outage-user", json!(9.0)).await;
        match status {
            201 => acknowledged.insert(body["data"]["purchase_id"].as_str().unwrap().to_owned()),
            _ => break (status, body),
        };
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no 503 after the broker stopped"
        );
    };
    assert!(body["error"].as_str().unwrap().contains("Kafka"), "{body}");
    assert_eq!(status, 503);
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, _) = buy(host, "ann", "outage-user", json!(9.0)).await;
        assert_eq!(status, 503);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "a slow 503: {:?}",
            asked.elapsed()
        );
    }
    eprintln!("first 503 {:?} after the broker stopped", started.elapsed());

    // The time service answers while Kafka is down, and says so.
    let (status, meta) = get_json(host, "/time-service/").await;
    assert_eq!(status, 200);
    assert_eq!(meta["kafka_status"], "NOT UP");
    let (status, _) = get_json(host, "/kafka/status").await;
    assert_eq!(status, 503);

    pipeline.broker.start();
    let (_, body) = eventually(
        Duration::from_secs(60),
        "a 201 after the broker came back",
        || async {
            let (status, body) = buy(host, "ann", "outage-user", json!(10.0)).await;
            (status == 201).then_some((status, body))
        },
    )
    .await;
    acknowledged.insert(body["data"]["purchase_id"].as_str().unwrap().to_owned());
    // Every acknowledged purchase arrives, once: nothing acknowledged is lost.
    let answer = purchases_when(host, "outage-user", acknowledged.len() as u64).await;
    let stored: HashSet<String> = answer["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purchase_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, acknowledged);
}

#[tokio::test]
async fn mongodb_down_pauses_the_consumer_without_committing_then_it_catches_up_once() {
    let mut pipeline = Pipeline::start();
    let host = &pipeline.host;
    assert_eq!(buy(host, "bo", "warmup", json!(1)).await.0, 201);
    purchases_when(host, "warmup", 1).await;
    let group = ("purchase-consumer-group", "purchases");
    // At the end of every partition that has messages.
    let at_end = |offsets: &[(i64, i64)]| offsets.iter().all(|(at, end)| at == end || *end == 0);
    // Delivered, so committed.
    let caught_up = eventually(Duration::from_secs(10), "the warm-up committed", || async {
        let offsets = pipeline.offsets(group.0, group.1);
        at_end(&offsets).then_some(offsets)
    })
    .await;
    assert!(caught_up.iter().any(|(at, _)| *at > 0), "{caught_up:?}");

    pipeline.mongo.stop();
    let mut ids = HashSet::new();
    for i in 0..20 {
        let (status, body) = buy(host, "bo", "mongo-outage", json!(i)).await;
        assert_eq!(status, 201, "Kafka is up: buys are still recorded ({body})");
        ids.insert(body["data"]["purchase_id"].as_str().unwrap().to_owned());
    }
    let (status, body) = get_json(host, "/getAllUserBuys/mongo-outage").await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = get_json(host, "/customer-management-api/health").await;
    assert_eq!(status, 503);
    let bridge = &pipeline.bridge;
    bridge.refused_deliveries(1.0).await;
    // Nothing was committed while the component refused, so a new bridge process gets the same
    // messages again.
    let during = pipeline.offsets(group.0, group.1);
    let committed = |offsets: &[(i64, i64)]| offsets.iter().map(|(at, _)| *at).collect::<Vec<_>>();
    assert_eq!(
        committed(&during),
        committed(&caught_up),
        "committed while refused"
    );
    let waiting: i64 = during.iter().map(|(at, end)| end - at.max(&0)).sum();
    assert_eq!(waiting, 20, "{during:?}");
    let bridge = &mut pipeline.bridge;
    bridge.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipeline.mongo.start();

    let answer = purchases_when(host, "mongo-outage", 20).await;
    let stored: Vec<&str> = answer["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purchase_id"].as_str().unwrap())
        .collect();
    assert_eq!(stored.len(), 20, "no duplicates");
    assert_eq!(
        stored
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>(),
        ids
    );
    assert_eq!(
        pipeline
            .bridge
            .metric("kafka_bridge_dead_lettered_total", &[])
            .await,
        0.0,
        "an unavailable dependency is not the messages' fault"
    );
    // The counter does move: a payload that is not JSON is dead-lettered at once.
    let producer: BaseProducer = kafka_config(&pipeline).create().unwrap();
    let record = BaseRecord::to("purchases").key("x").payload("not json");
    producer.send(record).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let bridge = &pipeline.bridge;
    eventually(Duration::from_secs(30), "a dead letter counted", || async {
        let dead = bridge.metric("kafka_bridge_dead_lettered_total", &[]).await;
        (dead == 1.0).then_some(())
    })
    .await;
    // Once stored, committed: the group is at the end again, and the bridge's lag is 0.
    eventually(
        Duration::from_secs(10),
        "the outage's messages committed",
        || async { at_end(&pipeline.offsets(group.0, group.1)).then_some(()) },
    )
    .await;
    let health = format!("{}/health", pipeline.bridge.base);
    eventually(Duration::from_secs(10), "no lag reported", || async {
        let report: Value = reqwest::get(&health).await.ok()?.json().await.ok()?;
        (report["subscriptions"][0]["lag"] == 0).then_some(())
    })
    .await;
}

/// A Kafka client of the test's own, on the pipeline's broker.
fn kafka_config(pipeline: &Pipeline) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", pipeline.broker.address());
    config
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_rest_flows() {
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    // Published around the bridge, as a buggy or hostile producer would.
    let producer: BaseProducer = kafka_config(&pipeline).create().unwrap();
    let not_json = BaseRecord::to("purchases")
        .key("poison")
        .payload("{not json");
    producer.send(not_json).map_err(|(e, _)| e).unwrap();
    let not_a_purchase = BaseRecord::to("purchases")
        .key("poison")
        .payload(r#"{"hello": "world"}"#);
    producer.send(not_a_purchase).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(buy(host, "cy", "after-poison", json!(5)).await.0, 201);
    purchases_when(host, "after-poison", 1).await;

    let reasons = pipeline.read_topic("purchases.dead-letter", 2, Duration::from_secs(60));
    assert_eq!(reasons.len(), 2, "dead-lettered: {reasons:?}");
    assert_eq!(reasons[0].0, b"{not json");
    assert!(reasons[0].1.contains("not JSON"), "{}", reasons[0].1);
    assert!(reasons[1].1.contains("not a purchase"), "{}", reasons[1].1);
    assert!(reasons[1].1.starts_with("refused: 422"), "{}", reasons[1].1);
}

#[tokio::test]
async fn redelivered_purchases_are_stored_once_and_deliveries_need_the_secret() {
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    let delivery = json!({
        "topic": "purchases",
        "group": "purchase-consumer-group",
        "messages": [{
            "partition": 0, "offset": 7, "key": "dup-user", "headers": {},
            "value": {
                "purchase_id": "fixed-id-1", "username": "dee", "userid": "dup-user",
                "price": 12.5, "timestamp": "2024-01-15T10:30:00.123456",
            },
        }],
    });
    let url = format!("{}/customer-management-api/kafka/purchases", host.base);
    let client = common::client();
    let refused = client.post(&url).json(&delivery).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // A guess, and the secret components send the bridge: neither makes a delivery.
    for wrong_token in ["guess", SECRET] {
        let wrong = client
            .post(&url)
            .bearer_auth(wrong_token)
            .json(&delivery)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{wrong_token}");
    }
    for expected in [
        json!({"inserted": 1, "existing": 0}),
        json!({"inserted": 0, "existing": 1}),
    ] {
        // A 503 (MongoDB still starting) is what the bridge would retry: so does the test.
        let answer = eventually(VISIBLE_WITHIN, "a delivery MongoDB takes", || async {
            let response = client
                .post(&url)
                .bearer_auth(DELIVERY_SECRET)
                .json(&delivery)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status != 503).then_some((status, response.json::<Value>().await.unwrap()))
        })
        .await;
        assert_eq!(answer, (200, expected));
    }
    let answer = purchases_when(host, "dup-user", 1).await;
    assert_eq!(answer["total_spent"], 12.5);

    // The bridge's own API wants the secret too, and serves only its configured resources.
    let unauthenticated = client
        .post(format!(
            "{}/v1/topics/purchases/messages",
            pipeline.bridge.base
        ))
        .json(&json!({ "messages": [{ "value": 1 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let (status, body) = pipeline
        .bridge
        .call(
            "/v1/topics/other/messages",
            json!({ "messages": [{ "value": 1 }] }),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (404, Some("topic")));
    let (status, body) = pipeline
        .bridge
        .call(
            "/v1/mongo/purchase_db/purchases/find",
            json!({ "filter": { "userid": { "$ne": null } } }),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("filter")),
        "{body}"
    );
}

#[tokio::test]
async fn time_service_reports_metadata_and_persists_its_events() {
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    // The database outlives the run: every check below counts only this run's rows.
    let agent = format!("pipeline-test-{}-{}", std::process::id(), host.base);
    let response = common::client()
        .get(format!("{}/time-service/", host.base))
        .header("x-forwarded-for", "203.0.113.45, 198.51.100.23")
        .header("user-agent", &agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let meta: Value = response.json().await.unwrap();
    assert_eq!(meta["message"], "Hello, Kafka is UP");
    assert_eq!(meta["kafka_status"], "UP");
    assert_eq!(meta["user_ip"], "127.0.0.1");
    assert_eq!(meta["proxy_chain"], "203.0.113.45, 198.51.100.23");
    assert_eq!(meta["hostname"], "test-pod");
    assert_eq!(meta["pod_ip"], "10.0.0.5");
    assert!(meta["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        get_json(host, "/healthz").await,
        (200, json!({ "status": "healthy" }))
    );

    let (status, kafka) = get_json(host, "/kafka/status").await;
    assert_eq!((status, &kafka["status"]), (200, &json!("UP")), "{kafka}");
    let marker = format!("marker-{agent}");
    let (status, published) = post(
        host,
        "/kafka/publish",
        &json!({ "event_type": "signup", "data": { "marker": marker } }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["status"], "published");
    let refused = common::client()
        .post(format!("{}/kafka/publish", host.base))
        .header("user-agent", &agent)
        .header("content-type", "application/json")
        .body(r#"{"data": {}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let (status, flushed) = post(host, "/kafka/flush", "").await;
    assert_eq!((status, flushed), (200, json!({ "status": "flushed" })));

    // The consumer route stores the events in PostgreSQL.
    let client = common::pg_connect("timeservice", "timeservice", "time_events").await;
    let count = |statement: &'static str, marker: String| {
        let client = &client;
        async move {
            let row = client.query_one(statement, &[&marker]).await.unwrap();
            row.get::<_, i64>(0)
        }
    };
    eventually(
        VISIBLE_WITHIN,
        "this run's events in PostgreSQL",
        || async {
            let custom = count(
                "SELECT count(*) FROM custom_events WHERE data->>'marker' = $1",
                marker.clone(),
            )
            .await;
            let requests = count(
                "SELECT count(*) FROM http_requests r JOIN http_responses s USING (request_id) \
             WHERE r.user_agent = $1 AND r.path = '/time-service' AND s.status_code = 200",
                agent.clone(),
            )
            .await;
            // The 400 of /kafka/publish, recorded as an error event.
            let errors = count(
                "SELECT count(*) FROM errors e JOIN http_requests r USING (request_id) \
             WHERE r.user_agent = $1 AND e.path = '/kafka/publish'",
                agent.clone(),
            )
            .await;
            (custom == 1 && requests == 1 && errors == 1).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn time_service_works_with_kafka_and_the_bridge_down() {
    let mut pipeline = Pipeline::start();
    pipeline.broker.stop();
    let host = &pipeline.host;
    let (status, meta) = eventually(Duration::from_secs(20), "NOT UP", || async {
        let (status, meta) = get_json(host, "/time-service/").await;
        (meta["kafka_status"] == "NOT UP").then_some((status, meta))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(meta["message"], "Hello, Kafka is NOT UP");
    assert_eq!(get_json(host, "/kafka/status").await.0, 503);
    let (status, _) = post(host, "/kafka/publish", r#"{"event_type": "x"}"#).await;
    assert_eq!(status, 503);

    pipeline.bridge.stop();
    let (status, meta) = get_json(host, "/time-service/").await;
    assert_eq!((status, &meta["kafka_status"]), (200, &json!("NOT UP")));
    assert_eq!(get_json(host, "/healthz").await.0, 200);
}

#[tokio::test]
async fn a_wrong_secret_pauses_deliveries_instead_of_dead_lettering_them() {
    const APP_SECRET: &str = "ad1c0ffee0ddf00d5eedfacefeedbeef";
    const APP_DELIVERY_SECRET: &str = "0badc0de5ca1ab1ef005ba11ca7f00d5";
    let pipeline = Pipeline::start_with_app_secrets(APP_SECRET, APP_DELIVERY_SECRET);
    // The app cannot produce: the bridge refuses its token, and the client is told so.
    let (status, body) = buy(&pipeline.host, "eve", "misconfigured", json!(1)).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("credentials"),
        "{body}"
    );
    // A purchase published with the bridge's own token reaches a component that refuses the
    // bridge's token (401): a deployment fault, so the message waits instead of being lost.
    let message = json!({ "messages": [{ "key": "misconfigured", "value": {
        "purchase_id": "wrong-secret-1", "username": "eve", "userid": "misconfigured",
        "price": 1.0, "timestamp": "2024-01-15T10:30:00.123456",
    } }] });
    let (status, _) = pipeline
        .bridge
        .call("/v1/topics/purchases/messages", message)
        .await;
    assert_eq!(status, 200);
    let bridge = &pipeline.bridge;
    bridge.refused_deliveries(3.0).await;
    let dead = pipeline.read_topic("purchases.dead-letter", 1, Duration::from_secs(3));
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
    // The deployment fixed (the bridge given the app's secrets), the waiting purchase arrives.
    let mut pipeline = pipeline;
    pipeline
        .bridge
        .restart_with_secrets(APP_SECRET, APP_DELIVERY_SECRET);
    let answer = purchases_when(&pipeline.host, "misconfigured", 1).await;
    assert_eq!(answer["purchases"][0]["purchase_id"], "wrong-secret-1");
    let dead = pipeline.read_topic("purchases.dead-letter", 1, Duration::from_secs(3));
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
}
