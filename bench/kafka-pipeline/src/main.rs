//! Measures the purchase pipeline (`POST /buy` → bridge → Kafka → bridge → management API →
//! MongoDB) beside a direct rdkafka produce → consume baseline on the same broker, in one run.
//! `bench/kafka.sh` starts the servers and runs it; it prints one figure per line.
//!
//! - throughput: `--clients` concurrent `POST /buy` loops for `--seconds`, then until MongoDB
//!   holds every acknowledged purchase; sustained buys/s = purchases / time until all visible.
//! - latency: buys at `--rate`/s for `--seconds`; a poller counts the run's stored purchases
//!   every 2 ms (by `userid`, indexed), and the k-th acknowledged buy counts as visible when the count reaches
//!   k (purchases are stored in about the order they were bought; 3 partitions may reorder a
//!   few, which moves single samples, not the distribution).
//! - per hop: the bridge's produce call (HTTP, ack from the broker) against rdkafka's own
//!   produce-to-ack time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

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

/// A purchase of the run by one of `users` users (1 for the latency phase, so its poller counts
/// through the `userid` index instead of scanning the collection, which would slow the server).
fn buy_body(run: &str, i: u64, users: u64) -> Value {
    let userid = if users == 1 {
        run.to_owned()
    } else {
        format!("{run}-{}", i % users)
    };
    json!({ "username": run, "userid": userid, "price": 1.25 })
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
                        .json(&buy_body(&run, i, 100))
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

async fn latency(args: &Arc<Args>, run: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let total = args.rate * args.seconds;
    let started = Instant::now();
    let acked_at = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total as usize)));
    let done = Arc::new(AtomicBool::new(false));
    // Poller: (time, count) whenever the stored count grows.
    let poller = {
        let (client, args, run, done) =
            (client.clone(), args.clone(), run.to_owned(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                if let Ok(count) = stored(&client, &args, "userid", &run).await
                    && count > last
                {
                    seen.push((started.elapsed(), count));
                    last = count;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        })
    };
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut buys = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let (client, args, run, acked_at) = (
            client.clone(),
            args.clone(),
            run.to_owned(),
            acked_at.clone(),
        );
        buys.push(tokio::spawn(async move {
            let sent = started.elapsed();
            let answer = client
                .post(format!("{}/buy", args.app))
                .json(&buy_body(&run, i, 1))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status() == 201) {
                acked_at.lock().unwrap().push((sent, started.elapsed()));
            }
        }));
    }
    futures::future::join_all(buys).await;
    let acked = acked_at.lock().unwrap().len() as u64;
    let wait_until = Instant::now() + Duration::from_secs(60);
    while stored(&client, args, "userid", run).await? < acked && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    done.store(true, Ordering::Relaxed);
    let seen = poller.await?;
    let mut sends = acked_at.lock().unwrap().clone();
    sends.sort_by_key(|(_, acked)| *acked);
    let (mut to_visible, mut to_ack) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    let mut step = seen.iter();
    let mut current = step.next();
    for (k, (sent, acked)) in sends.iter().enumerate() {
        while let Some((_, count)) = current {
            if *count > k as u64 {
                break;
            }
            current = step.next();
        }
        to_ack.record(micros(*acked - *sent)).ok();
        if let Some((visible, _)) = current {
            to_visible
                .record(micros(visible.saturating_sub(*sent)))
                .ok();
        }
    }
    println!(
        "pipeline at {}/s: {acked} of {total} buys acknowledged",
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
