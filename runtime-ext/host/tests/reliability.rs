//! Nothing lost, nothing stuck: the purchase and event pipeline (seeds 002 and 003) under bridge
//! restarts, poison data, a MongoDB outage, client retries and a deployment mistake, over the
//! same real servers as `pipeline.rs`.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::infra::{Options, Pipeline, eventually};
use common::post;
use serde_json::{Value, json};

/// How long a purchase may take from `201` to visible when nothing goes wrong.
const VISIBLE_WITHIN: Duration = Duration::from_secs(60);

/// `GET base + path`: status and JSON body (`null` when it is not JSON).
async fn get(base: &str, path: &str) -> (u16, Value) {
    let response = common::client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /buy` on the app at `base`, with an `Idempotency-Key` if given; status 0 when the
/// request failed.
async fn buy(base: &str, userid: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = common::client()
        .post(format!("{base}/buy"))
        .json(&json!({ "username": "rel", "userid": userid, "price": 2.5 }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(error) => (0, json!(error.to_string())),
    }
}

/// The purchase ids stored for `userid`, once `ready` accepts them.
async fn stored_when(
    base: &str,
    userid: &str,
    within: Duration,
    ready: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    eventually(within, &format!("the purchases of {userid}"), || async {
        let (status, body) = get(base, &format!("/getAllUserBuys/{userid}")).await;
        if status != 200 {
            return None;
        }
        let ids: Vec<String> = body["purchases"]
            .as_array()?
            .iter()
            .map(|p| p["purchase_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ready(&ids).then_some(ids)
    })
    .await
}

/// Buys for `userid` in a loop until `stop` is set; returns the ids acknowledged with 201.
fn buy_until(
    base: &str,
    userid: &'static str,
    stop: Arc<Mutex<bool>>,
) -> tokio::task::JoinHandle<HashSet<String>> {
    let base = base.to_owned();
    tokio::spawn(async move {
        let mut acknowledged = HashSet::new();
        while !*stop.lock().unwrap() {
            let (status, body) = buy(&base, userid, None).await;
            if status == 201 {
                acknowledged.insert(body["data"]["purchase_id"].as_str().unwrap().to_owned());
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        acknowledged
    })
}

/// Finding 1: a bridge stopped by SIGTERM commits what it delivered and leaves its consumer
/// groups, so the next one takes the partitions over at once, not once the group expires the
/// old member (set here to a minute). Purchases acknowledged throughout are all stored, once.
#[tokio::test]
async fn after_sigterm_the_next_bridge_delivers_within_seconds_nothing_lost_or_doubled() {
    let mut pipeline = Pipeline::start_with(Options {
        bridge_replace: &[("session_timeout_ms = 6000", "session_timeout_ms = 60000")],
        ..Options::default()
    });
    let warmup = buy(&pipeline.host.base, "handover-warmup", None).await;
    assert_eq!(warmup.0, 201, "{}", warmup.1);
    stored_when(
        &pipeline.host.base,
        "handover-warmup",
        VISIBLE_WITHIN,
        |ids| ids.len() == 1,
    )
    .await;

    let stop = Arc::new(Mutex::new(false));
    let buyer = buy_until(&pipeline.host.base, "handover", stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (took, status) = pipeline.bridge.terminate();
    assert!(status.success(), "the bridge exits cleanly: {status}");
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    pipeline.bridge.restart();
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    *stop.lock().unwrap() = true;
    let acknowledged = buyer.await.unwrap();
    assert!(
        acknowledged.len() > 10,
        "buys went on: {}",
        acknowledged.len()
    );

    let stored = stored_when(
        &pipeline.host.base,
        "handover",
        Duration::from_secs(20),
        |ids| ids.len() >= acknowledged.len(),
    )
    .await;
    eprintln!(
        "{} purchases acknowledged, all stored {:?} after the new bridge started",
        acknowledged.len(),
        restarted.elapsed()
    );
    assert_eq!(stored.len(), acknowledged.len(), "none twice");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), acknowledged);
}

/// Findings 1 and 2: a bridge killed outright leaves its member in the group, which holds the
/// partitions until it expires. The next bridge then has messages waiting and nothing
/// assigned: its readiness fails, saying why, until the group hands the partitions over.
#[tokio::test]
async fn a_subscription_without_partitions_while_messages_wait_fails_readiness() {
    let mut pipeline = Pipeline::start_with(Options {
        bridge_replace: &[("session_timeout_ms = 6000", "session_timeout_ms = 30000")],
        ..Options::default()
    });
    assert_eq!(buy(&pipeline.host.base, "stuck-warmup", None).await.0, 201);
    stored_when(&pipeline.host.base, "stuck-warmup", VISIBLE_WITHIN, |ids| {
        ids.len() == 1
    })
    .await;
    let (status, ready) = pipeline.bridge.readiness().await;
    assert_eq!(status, 200, "{ready}");

    pipeline.bridge.stop();
    pipeline.bridge.restart_with(&[(
        "max_attempts = 3\n",
        "max_attempts = 3\nstuck_after_ms = 3000\n",
    )]);
    let mut acknowledged = HashSet::new();
    while acknowledged.len() < 5 {
        let (status, body) = buy(&pipeline.host.base, "stuck", None).await;
        if status == 201 {
            acknowledged.insert(body["data"]["purchase_id"].as_str().unwrap().to_owned());
        }
    }
    let report = eventually(Duration::from_secs(20), "readiness to fail", || async {
        let (status, report) = pipeline.bridge.readiness().await;
        (status == 503).then_some(report)
    })
    .await;
    let purchases = report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["group"] == "purchase-consumer-group")
        .unwrap()
        .clone();
    assert_eq!(purchases["condition"], "stuck", "{report}");
    assert!(
        purchases["reason"]
            .as_str()
            .unwrap()
            .contains("no partition assigned"),
        "{report}"
    );
    assert!(purchases["lag"].as_i64().unwrap() >= 1, "{report}");
    let bridge = &pipeline.bridge;
    let stuck = [
        ("condition", "stuck"),
        ("group", "purchase-consumer-group"),
        ("topic", "purchases"),
    ];
    eventually(Duration::from_secs(10), "the stuck gauge", || async {
        let stuck = bridge
            .metric("kafka_bridge_subscription_condition", &stuck)
            .await;
        (stuck == 1.0).then_some(())
    })
    .await;

    // Once the group expires the killed member, the partitions come, and so does everything.
    let stored = stored_when(
        &pipeline.host.base,
        "stuck",
        Duration::from_secs(90),
        |ids| ids.len() >= acknowledged.len(),
    )
    .await;
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), acknowledged);
    eventually(Duration::from_secs(10), "readiness back", || async {
        (pipeline.bridge.readiness().await.0 == 200).then_some(())
    })
    .await;
}

/// Finding 3: an event PostgreSQL can never store (`\u0000` in `jsonb`, SQLSTATE 22P05) is
/// dead-lettered with the database's reason, and events after it are stored.
#[tokio::test]
async fn an_event_postgresql_refuses_is_dead_lettered_and_later_events_are_stored() {
    let pipeline = Pipeline::start();
    let host = &pipeline.host;
    let marker = format!("after-poison-{}", std::process::id());
    // `POST /kafka/publish` refuses such data (400), so the poison is put on the topic the way
    // another producer, or an older time service, would: through the bridge.
    let (status, body) = post(
        host,
        "/kafka/publish",
        r#"{"event_type": "poison", "data": {"k": "\u0000"}}"#,
    )
    .await;
    assert_eq!((status, &body["field"]), (400, &json!("data")), "{body}");
    let poison = json!({ "messages": [{ "key": "poison", "value": {
        "event_type": "custom", "event_id": format!("poison-{marker}"),
        "timestamp": "2024-01-15T10:30:00.123456", "name": "poison", "data": { "k": "\u{0}" },
    } }] });
    let (status, body) = pipeline
        .bridge
        .call("/v1/topics/simple-time-events/messages", poison)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        host,
        "/kafka/publish",
        &json!({ "event_type": "fine", "data": { "marker": marker } }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let client = common::pg_connect("timeservice", "timeservice", "time_events").await;
    eventually(
        VISIBLE_WITHIN,
        "the event after the poison stored",
        || async {
            let stored: i64 = client
                .query_one(
                    "SELECT count(*) FROM custom_events WHERE data->>'marker' = $1",
                    &[&marker],
                )
                .await
                .unwrap()
                .get(0);
            (stored == 1).then_some(())
        },
    )
    .await;
    let dead = pipeline.read_topic("simple-time-events.dead-letter", 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (payload, reason) = &dead[0];
    assert!(
        String::from_utf8_lossy(payload).contains("poison"),
        "{payload:?}"
    );
    assert!(reason.contains("22P05"), "{reason}");
    assert!(reason.starts_with("refused: 422"), "{reason}");
}

/// Finding 4: with MongoDB stopped, the probes answer at once and say ready, and purchases are
/// still accepted: Kafka is fine.
#[tokio::test]
async fn mongodb_down_leaves_the_probes_fast_and_purchases_accepted() {
    let mut pipeline = Pipeline::start();
    assert_eq!(buy(&pipeline.host.base, "probe-warmup", None).await.0, 201);
    stored_when(&pipeline.host.base, "probe-warmup", VISIBLE_WITHIN, |ids| {
        ids.len() == 1
    })
    .await;
    pipeline.mongo.stop();
    let report = eventually(Duration::from_secs(20), "MongoDB seen down", || async {
        let (_, report) = get(&pipeline.bridge.base, "/health").await;
        (report["mongodb"] == "disconnected").then_some(report)
    })
    .await;
    assert_eq!(report["ready"], true, "{report}");
    let client = common::client();
    for path in ["/health/live", "/health/ready", "/health"] {
        for _ in 0..20 {
            let asked = Instant::now();
            let response = client
                .get(format!("{}{path}", pipeline.bridge.base))
                .send()
                .await
                .unwrap();
            let took = asked.elapsed();
            assert_eq!(response.status(), 200, "{path}");
            assert!(took < Duration::from_millis(100), "{path} took {took:?}");
        }
    }
    let (status, body) = buy(&pipeline.host.base, "probe", None).await;
    assert_eq!(status, 201, "{body}");
    let report = eventually(
        Duration::from_secs(20),
        "the subscription paused",
        || async {
            let (_, report) = pipeline.bridge.readiness().await;
            let paused = report["subscriptions"]
                .as_array()?
                .iter()
                .any(|s| s["condition"] == "paused");
            paused.then_some(report)
        },
    )
    .await;
    assert_eq!(report["ready"], true, "paused is not stuck: {report}");
    pipeline.mongo.start();
    stored_when(&pipeline.host.base, "probe", VISIBLE_WITHIN, |ids| {
        ids.len() == 1
    })
    .await;
}

/// Finding 5: a client that retries `POST /buy` with the same `Idempotency-Key` stores one
/// purchase, also when the first attempt's answer was lost to a broker outage.
#[tokio::test]
async fn the_same_idempotency_key_stores_one_purchase_also_across_a_broker_outage() {
    // A broker that keeps its data across the restart, as Kafka does.
    let storage = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::start_with(Options {
        broker_storage: Some(storage.path()),
        ..Options::default()
    });
    let (status, first) = buy(&pipeline.host.base, "keyed", Some("order-1")).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = buy(&pipeline.host.base, "keyed", Some("order-1")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(first["data"]["purchase_id"], again["data"]["purchase_id"]);
    let (status, other) = buy(&pipeline.host.base, "keyed", Some("order-2")).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(first["data"]["purchase_id"], other["data"]["purchase_id"]);
    let (status, bad) = buy(&pipeline.host.base, "keyed", Some("")).await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (400, Some("Idempotency-Key")),
        "{bad}"
    );

    pipeline.broker.stop();
    eventually(
        Duration::from_secs(20),
        "a 503 while the broker is down",
        || async { (buy(&pipeline.host.base, "keyed-probe", None).await.0 == 503).then_some(()) },
    )
    .await;
    let (status, body) = buy(&pipeline.host.base, "keyed", Some("order-3")).await;
    assert_eq!(status, 503, "{body}");
    pipeline.broker.start();
    let (_, third) = eventually(VISIBLE_WITHIN, "order-3 acknowledged", || async {
        let (status, body) = buy(&pipeline.host.base, "keyed", Some("order-3")).await;
        (status == 201).then_some((status, body))
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            buy(&pipeline.host.base, "keyed", Some("order-3")).await.0,
            201
        );
    }
    let expected: HashSet<String> = [&first, &other, &third]
        .iter()
        .map(|b| b["data"]["purchase_id"].as_str().unwrap().to_owned())
        .collect();
    let stored = stored_when(&pipeline.host.base, "keyed", VISIBLE_WITHIN, |ids| {
        ids.len() >= 3
    })
    .await;
    // Let any duplicate that was going to arrive arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, answer) = get(&pipeline.host.base, "/getAllUserBuys/keyed").await;
    assert_eq!(answer["count"], 3, "{answer}");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), expected);
}

/// Finding 6: an app pointed at a collection the bridge does not serve is a deployment
/// mistake: deliveries pause (and say why) and nothing is dead-lettered.
#[tokio::test]
async fn a_collection_the_bridge_does_not_serve_pauses_deliveries_and_dead_letters_nothing() {
    let pipeline = Pipeline::start_with(Options {
        app_env: &[("SPIN_VARIABLE_PURCHASES_MONGODB_COLLECTION", "elsewhere")],
        ..Options::default()
    });
    let (status, body) = buy(&pipeline.host.base, "misrouted", None).await;
    assert_eq!(status, 201, "{body}");
    let report = eventually(VISIBLE_WITHIN, "deliveries paused", || async {
        let (_, report) = pipeline.bridge.readiness().await;
        let purchases = report["subscriptions"]
            .as_array()?
            .iter()
            .find(|s| s["group"] == "purchase-consumer-group")?
            .clone();
        (purchases["condition"] == "paused").then_some(purchases)
    })
    .await;
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.starts_with("503"), "{reason}");
    assert!(reason.contains("not served by this bridge"), "{reason}");
    let bridge = &pipeline.bridge;
    bridge.refused_deliveries(4.0).await;
    assert_eq!(
        bridge
            .metric(
                "kafka_bridge_dead_lettered_total",
                &[("group", "purchase-consumer-group")]
            )
            .await,
        0.0
    );
    assert!(
        pipeline
            .read_topic("purchases.dead-letter", 1, Duration::from_secs(3))
            .is_empty()
    );
}

/// A message that fits Kafka's limit alone but not with the dead-letter headers added is
/// dead-lettered without its payload, keeping its origin and reasons.
#[tokio::test]
async fn an_oversized_poison_message_is_dead_lettered_without_its_payload() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let pipeline = Pipeline::start();
    // librdkafka's default message.max.bytes is 1,000,000: this fits, with the few bytes a
    // record adds, and the dead-letter headers push it over.
    let payload = vec![b'x'; 999_900];
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", pipeline.broker.address())
        .create()
        .unwrap();
    producer
        .send(BaseRecord::to("purchases").key("huge").payload(&payload))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let dead = pipeline.read_topic("purchases.dead-letter", 1, Duration::from_secs(60));
    assert_eq!(dead.len(), 1, "nothing dead-lettered");
    let (payload, reason) = &dead[0];
    assert!(payload.is_empty(), "{} bytes kept", payload.len());
    assert!(reason.starts_with("the payload is not JSON"), "{reason}");
    assert!(reason.contains("payload omitted"), "{reason}");
    // And the subscription goes on.
    let (status, body) = buy(&pipeline.host.base, "after-huge", None).await;
    assert_eq!(status, 201, "{body}");
    stored_when(&pipeline.host.base, "after-huge", VISIBLE_WITHIN, |ids| {
        ids.len() == 1
    })
    .await;
}

/// A bridge killed part-way through a batch: the component has stored some of the batch's rows
/// (its requests) and is blocked on the rest (a lock held on `custom_events`) when the bridge
/// dies. Nothing of that batch was committed, so the next bridge delivers it again, and every
/// event ends up stored exactly once.
#[tokio::test]
async fn a_bridge_killed_part_way_through_a_batch_redelivers_it_and_stores_each_event_once() {
    let mut pipeline = Pipeline::start();
    let base = pipeline.host.base.clone();
    let agent = format!("part-way-{}-{base}", std::process::id());
    let group = ("simple-time-group", "simple-time-events");
    let at_end = |offsets: &[(i64, i64)]| offsets.iter().all(|(at, end)| at == end || *end == 0);
    let db = common::pg_connect("timeservice", "timeservice", "time_events").await;
    let count = |statement: &'static str| {
        let (db, agent) = (&db, agent.clone());
        async move {
            let row = db.query_one(statement, &[&agent]).await.unwrap();
            row.get::<_, i64>(0)
        }
    };
    const CUSTOM: &str = "SELECT count(*) FROM custom_events WHERE data->>'marker' = $1";
    const REQUESTS: &str = "SELECT count(*) FROM http_requests WHERE user_agent = $1";

    // The lock is held by a second session, in a transaction left open.
    let locker = common::pg_connect("timeservice", "timeservice", "time_events").await;
    locker
        .batch_execute("BEGIN; LOCK TABLE custom_events IN EXCLUSIVE MODE")
        .await
        .unwrap();

    const EVENTS: i64 = 5;
    for _ in 0..EVENTS {
        let response = common::client()
            .post(format!("{base}/kafka/publish"))
            .header("user-agent", &agent)
            .header("content-type", "application/json")
            .body(json!({ "event_type": "part-way", "data": { "marker": agent } }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Part-way: the first batch's requests are stored, and the insert of its custom events waits
    // (with the batches behind it).
    eventually(VISIBLE_WITHIN, "the batch's requests stored", || async {
        (count(REQUESTS).await >= 1).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the insert blocked", || async {
        let waiting = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO custom_events%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        (waiting >= 1).then_some(())
    })
    .await;
    assert_eq!(count(CUSTOM).await, 0);
    assert!(
        !at_end(&pipeline.offsets(group.0, group.1)),
        "committed before stored"
    );

    pipeline.bridge.stop();
    locker.batch_execute("COMMIT").await.unwrap();
    pipeline.bridge.restart();

    eventually(
        VISIBLE_WITHIN,
        "the batch delivered again and committed",
        || async { at_end(&pipeline.offsets(group.0, group.1)).then_some(()) },
    )
    .await;
    assert_eq!(count(CUSTOM).await, EVENTS, "each custom event once");
    assert_eq!(count(REQUESTS).await, EVENTS, "each request once");
}
