//! Measures the purchase pipeline (`POST /buy` → bridge → Kafka → bridge → management API →
//! MongoDB) beside a direct rdkafka produce → consume baseline on the same broker, in one run.
//! `bench/kafka.sh` starts the servers and runs it; it prints one figure per line.
//!
//! - throughput: `--clients` concurrent `POST /buy` loops for `--seconds`, then until MongoDB
//!   holds every acknowledged purchase; sustained buys/s = purchases / time until all visible.
//! - latency: buys at `--rate`/s for `--seconds`, each block of `BLOCK` by one user; a poller
//!   counts the current block's stored purchases every `POLL_INTERVAL` through the `userid`
//!   index, and the j-th acknowledged buy of a block counts as visible when its count passes j
//!   (a block is one key, one partition: stored in order).
//! - store ceiling: batches of 100 purchases inserted through the bridge's MongoDB API alone,
//!   as fast as they go: what the MongoDB server absorbs, the pipeline's upper bound here.
//! - per hop: the bridge's produce call (HTTP, ack from the broker) against rdkafka's own
//!   produce-to-ack time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

/// How often the latency phase counts the stored purchases: the resolution of buy-to-visible,
/// and a load on the (single-threaded) test MongoDB server, so not more often.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Parser)]
struct Args {
    /// The host serving spin.toml.
    #[arg(long)]
    app: String,
    /// The kafka-bridge.
    #[arg(long)]
    bridge: String,
    #[arg(long)]
    secret: String,
    #[arg(long)]
    brokers: String,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 1000)]
    rate: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let run = format!("bench-{}", std::process::id());
    baseline(&args, &run).await?;
    store_ceiling(&args, &format!("{run}-m")).await?;
    throughput(&args, &format!("{run}-t")).await?;
    latency(&args, &format!("{run}-l")).await?;
    hop(&args).await?;
    Ok(())
}

/// rdkafka alone: an idempotent producer at the latency rate, and a consumer timing each
/// message from send to receipt; then as fast as it goes.
async fn baseline(args: &Args, run: &str) -> anyhow::Result<()> {
    let topic = "purchases.dead-letter"; // a topic nobody consumes in the bench
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", run)
        .set("auto.offset.reset", "latest")
        // As the bridge's consumers (kafka-bridge.toml): tansu answers a fetch only when it expires.
        .set("fetch.wait.max.ms", "20")
        .create()?;
    consumer.subscribe(&[topic])?;
    tokio::time::sleep(Duration::from_secs(3)).await; // join the group before producing
    let started = Instant::now();
    let total = args.rate * args.seconds;
    let receiver = tokio::spawn(async move {
        let mut latency = Histogram::<u64>::new(3).unwrap();
        let mut seen = 0;
        while seen < total {
            let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await
            else {
                break;
            };
            let sent: u64 = std::str::from_utf8(message.payload().unwrap_or_default())
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            latency
                .record(micros(started.elapsed()).saturating_sub(sent))
                .ok();
            seen += 1;
        }
        latency
    });
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut acks = Histogram::<u64>::new(3)?;
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..total {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let producer = producer.clone();
        pending.push(async move {
            let sent = Instant::now();
            let payload = micros(started.elapsed()).to_string();
            let record = FutureRecord::to(topic).key("k").payload(&payload);
            producer.send(record, Duration::ZERO).await.ok();
            sent.elapsed()
        });
        while let Some(Some(ack)) =
            futures::FutureExt::now_or_never(futures::StreamExt::next(&mut pending))
        {
            acks.record(micros(ack)).ok();
        }
    }
    while let Some(ack) = futures::StreamExt::next(&mut pending).await {
        acks.record(micros(ack)).ok();
    }
    report(
        &format!("baseline rdkafka produce→consume at {}/s", args.rate),
        &receiver.await?,
    );
    report("baseline rdkafka produce→ack", &acks);

    let burst = 50_000;
    let started = Instant::now();
    let sends: Vec<_> = (0..burst)
        .map(|_| {
            producer.send(
                FutureRecord::to(topic).key("k").payload("{}"),
                Duration::from_secs(10),
            )
        })
        .collect();
    futures::future::join_all(sends).await;
    println!(
        "baseline rdkafka produce throughput: {:.0} msg/s ({burst} messages, acks=all)",
        burst as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn store_ceiling(args: &Args, run: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut inserted = 0u64;
    while started.elapsed() < Duration::from_secs(args.seconds / 2) {
        let documents: Vec<Value> = (0..100)
            .map(|i| {
                json!({
                    "purchase_id": format!("{run}-{inserted}-{i}"), "username": run,
                    "userid": format!("{run}-{}", i % 10), "price": 1.25,
                    "timestamp": "2026-01-01T00:00:00.000000",
                })
            })
            .collect();
        client
            .post(format!(
                "{}/v1/mongo/purchase_db/purchases/insert",
                args.bridge
            ))
            .bearer_auth(&args.secret)
            .json(&json!({ "documents": documents }))
            .send()
            .await?
            .error_for_status()?;
        inserted += 100;
    }
    println!(
        "store ceiling: {:.0} purchases/s inserted through the bridge's MongoDB API (batches of 100)",
        inserted as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A purchase of the run by one of 100 users.
fn buy_body(run: &str, i: u64) -> Value {
    json!({ "username": run, "userid": format!("{run}-{}", i % 100), "price": 1.25 })
}

/// How many of the run's purchases MongoDB holds (`field`: `username` or `userid`).
async fn stored(
    client: &reqwest::Client,
    args: &Args,
    field: &str,
    run: &str,
) -> anyhow::Result<u64> {
    let answer: Value = client
        .post(format!(
            "{}/v1/mongo/purchase_db/purchases/count",
            args.bridge
        ))
        .bearer_auth(&args.secret)
        .json(&json!({ "filter": { field: run } }))
        .send()
        .await?
        .json()
        .await?;
    answer["count"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("count: {answer}"))
}

async fn throughput(args: &Arc<Args>, run: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.clients as u64)
        .map(|worker| {
            let (client, args, acked, failed, run) = (
                client.clone(),
                args.clone(),
                acked.clone(),
                failed.clone(),
                run.to_owned(),
            );
            tokio::spawn(async move {
                let mut i = worker;
                while Instant::now() < deadline {
                    let sent = client
                        .post(format!("{}/buy", args.app))
                        .json(&buy_body(&run, i))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => acked.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += args.clients as u64;
                }
            })
        })
        .collect();
    futures::future::join_all(workers).await;
    let sending = started.elapsed();
    let acked = acked.load(Ordering::Relaxed);
    // Polled slowly: counting by `username` scans the collection.
    while stored(&client, args, "username", run).await? < acked {
        anyhow::ensure!(
            started.elapsed() < sending + Duration::from_secs(120),
            "purchases missing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let visible = started.elapsed();
    println!(
        "pipeline: {acked} buys acknowledged in {:.1} s ({:.0}/s accepted, {} failed), all visible after {:.1} s: {:.0} buys/s sustained",
        sending.as_secs_f64(),
        acked as f64 / sending.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        visible.as_secs_f64(),
        acked as f64 / visible.as_secs_f64()
    );
    Ok(())
}

/// Buys per user in the latency phase: the poller counts one small block at a time through the
/// `userid` index, so counting stays cheap for the (single-threaded) test MongoDB server.
const BLOCK: u64 = 100;

async fn latency(args: &Arc<Args>, run: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let total = args.rate * args.seconds;
    let blocks = total.div_ceil(BLOCK);
    let started = Instant::now();
    // Per block: (send, ack) times of its acknowledged buys.
    let acked_at = Arc::new(std::sync::Mutex::new(vec![Vec::new(); blocks as usize]));
    let sent_blocks = Arc::new(AtomicU64::new(0));
    // Poller: per block, (time, count) whenever its stored count grows; one block after another.
    let poller = {
        let (client, args, run, acked_at, sent_blocks) = (
            client.clone(),
            args.clone(),
            run.to_owned(),
            acked_at.clone(),
            sent_blocks.clone(),
        );
        tokio::spawn(async move {
            let mut seen = vec![Vec::new(); blocks as usize];
            let mut block = 0;
            let deadline = started + Duration::from_secs(args.seconds + 60);
            while block < blocks && Instant::now() < deadline {
                let userid = format!("{run}-{block}");
                if let Ok(count) = stored(&client, &args, "userid", &userid).await {
                    let last = seen[block as usize].last().map_or(0, |&(_, c)| c);
                    if count > last {
                        seen[block as usize].push((started.elapsed(), count));
                    }
                    let sending_done = sent_blocks.load(Ordering::Relaxed) > block;
                    let acked = acked_at.lock().unwrap()[block as usize].len() as u64;
                    if sending_done && count >= acked {
                        block += 1;
                        continue;
                    }
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            seen
        })
    };
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut buys: Vec<Vec<_>> = (0..blocks).map(|_| Vec::new()).collect();
    for i in 0..total {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let (client, args, run, acked_at) = (
            client.clone(),
            args.clone(),
            run.to_owned(),
            acked_at.clone(),
        );
        let block = i / BLOCK;
        buys[block as usize].push(tokio::spawn(async move {
            let sent = started.elapsed();
            let body =
                json!({ "username": run, "userid": format!("{run}-{block}"), "price": 1.25 });
            let answer = client
                .post(format!("{}/buy", args.app))
                .json(&body)
                .send()
                .await;
            if answer.is_ok_and(|r| r.status() == 201) {
                acked_at.lock().unwrap()[block as usize].push((sent, started.elapsed()));
            }
        }));
        if (i + 1) % BLOCK == 0 || i + 1 == total {
            // Mark the block sent once all its buys are answered (without holding up sending).
            let (pending, sent_blocks) = (
                std::mem::take(&mut buys[block as usize]),
                sent_blocks.clone(),
            );
            tokio::spawn(async move {
                futures::future::join_all(pending).await;
                sent_blocks.fetch_max(block + 1, Ordering::Relaxed);
            });
        }
    }
    let seen = poller.await?;
    let acked_at = acked_at.lock().unwrap().clone();
    let acked: usize = acked_at.iter().map(Vec::len).sum();
    let (mut to_visible, mut to_ack) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    let mut unseen = 0;
    for (mut sends, seen) in acked_at.into_iter().zip(seen) {
        // The j-th buy of a block (in acknowledgement order) is visible once its count passes j.
        sends.sort_by_key(|&(_, acked)| acked);
        for (j, (sent, acked)) in sends.iter().enumerate() {
            to_ack.record(micros(*acked - *sent)).ok();
            match seen.iter().find(|&&(_, count)| count > j as u64) {
                Some((visible, _)) => {
                    to_visible
                        .record(micros(visible.saturating_sub(*sent)))
                        .ok();
                }
                None => unseen += 1,
            }
        }
    }
    println!(
        "pipeline at {}/s: {acked} of {total} buys acknowledged, {unseen} not seen stored",
        args.rate
    );
    report(&format!("pipeline buy→201 at {}/s", args.rate), &to_ack);
    report(
        &format!("pipeline buy→visible at {}/s", args.rate),
        &to_visible,
    );
    Ok(())
}

/// One hop: a produce through the bridge's HTTP API, sequentially, against rdkafka's own.
async fn hop(args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()?;
    let (mut bridge, mut direct) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    for _ in 0..2000 {
        let sent = Instant::now();
        client
            .post(format!(
                "{}/v1/topics/purchases.dead-letter/messages",
                args.bridge
            ))
            .bearer_auth(&args.secret)
            .json(&json!({ "messages": [{ "key": "k", "value": {} }] }))
            .send()
            .await?
            .error_for_status()?;
        bridge.record(micros(sent.elapsed())).ok();
        let sent = Instant::now();
        producer
            .send(
                FutureRecord::to("purchases.dead-letter")
                    .key("k")
                    .payload("{}"),
                Duration::ZERO,
            )
            .await
            .map_err(|(e, _)| e)?;
        direct.record(micros(sent.elapsed())).ok();
    }
    report("hop: produce through the bridge (HTTP → ack)", &bridge);
    report("hop: produce with rdkafka directly (→ ack)", &direct);
    Ok(())
}
