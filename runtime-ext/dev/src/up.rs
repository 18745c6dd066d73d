//! `cargo dev up`: set the machine up, build once, start what the app depends on, serve the
//! app, print where everything is, and stop what was started on Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

use crate::dependency::{Source, answers, configured_by, configured_or, decide};
use crate::postgres::{self, LocalServer};
use crate::process::Service;
use crate::project::Project;
use crate::services::{self, BridgeDefaults, BridgeSettings};
use crate::setup::{self, Needs};
use crate::step;

/// The app's PostgreSQL variables: any of them set means the databases are configured.
const POSTGRES_VARIABLES: [&str; 8] = [
    "SPIN_VARIABLE_CATALOGUE_DB_HOST",
    "SPIN_VARIABLE_CATALOGUE_DB_PORT",
    "SPIN_VARIABLE_BACKEND_DB_HOST",
    "SPIN_VARIABLE_BACKEND_DB_PORT",
    "SPIN_VARIABLE_APPDB_HOST",
    "SPIN_VARIABLE_APPDB_PORT",
    "SPIN_VARIABLE_TIME_EVENTS_DB_HOST",
    "SPIN_VARIABLE_TIME_EVENTS_DB_PORT",
];
const BRIDGE_ADDRESS: &str = "SPIN_VARIABLE_KAFKA_BRIDGE_ADDRESS";
const BRIDGE_SECRET: &str = "SPIN_VARIABLE_KAFKA_BRIDGE_SECRET";
const BRIDGE_DELIVERY_SECRET: &str = "SPIN_VARIABLE_KAFKA_BRIDGE_DELIVERY_SECRET";
/// The files under `.spinyard/` that keep the local bridge's two secrets.
const SECRET_FILES: [&str; 2] = ["kafka-bridge.secret", "kafka-bridge-delivery.secret"];

/// What `cargo dev up` was asked.
pub struct Options {
    pub listen: SocketAddr,
    pub build: bool,
    /// Where the `spinyard` and `kafka-bridge` binaries are (`target/release`).
    pub bin_dir: PathBuf,
    /// More `spinyard up` flags.
    pub spinyard_args: Vec<String>,
}

/// The plan of a run: where each dependency comes from.
struct Plan {
    postgres: Source,
    /// `None` when the bridge is configured: Kafka and MongoDB are then its business.
    kafka: Option<Source>,
    mongodb: Option<Source>,
    bridge: Source,
}

/// One line of the final table.
struct Row {
    service: &'static str,
    address: String,
    source: String,
    data: String,
    log: String,
}

/// What this run started, stopped in reverse order at its end.
#[derive(Default)]
struct Started {
    postgres: Option<LocalServer>,
    services: Vec<Service>,
}

impl Started {
    async fn stop(&mut self) {
        while let Some(mut service) = self.services.pop() {
            eprintln!("==> Stopping {}", service.name);
            // The app finishes the requests in flight; the others stop at once (the bridge
            // has no graceful shutdown yet: its consumers rejoin after the session timeout).
            service.stop(Duration::from_secs(30)).await;
        }
        if let Some(server) = self.postgres.take() {
            eprintln!("==> Stopping postgres");
            if let Err(e) = server.stop().await {
                eprintln!("    {e:#}");
            }
        }
    }

    /// Waits until one of the services exits, and names it.
    async fn first_exit(&mut self) -> anyhow::Error {
        loop {
            for service in &mut self.services {
                if let Some(status) = service.exited() {
                    return anyhow::anyhow!(
                        "{} exited ({status}){}",
                        service.name,
                        service.log_tail()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every step of a run, timed: what each took, for the line that says the platform is ready.
type Steps = Vec<(&'static str, Duration)>;

pub async fn up(project: &Project, options: Options) -> anyhow::Result<()> {
    let begun = Instant::now();
    let defaults = BridgeDefaults::read(project)?;
    if options.listen.port() == 0 {
        bail!("--listen needs a port: the kafka-bridge delivers to the app's address");
    }
    if answers(&options.listen.to_string()) {
        bail!(
            "{} is in use: stop what listens there (another `cargo dev`?) or pass --listen",
            options.listen
        );
    }
    // The machine is checked before the long builds against this plan; the services start
    // after them against a fresh one, as the builds may take long enough for things to change.
    let before_build = plan(&defaults)?;
    let mut steps = build(project, &options, &before_build).await?;
    let plan = plan(&defaults)?;
    setup::packages(project, needs(&plan, &options, true)).await?;
    if plan.kafka == Some(Source::Local)
        && let Some(took) = setup::tansu(project).await?
    {
        steps.push(("tansu", took));
    }
    if plan.mongodb == Some(Source::Local)
        && let Some(took) = setup::secantus(project).await?
    {
        steps.push(("SecantusDB", took));
    }
    serve(project, &options, &defaults, &plan, begun, &steps).await
}

/// What the machine needs for `plan`, the binaries being `built` already or not.
fn needs(plan: &Plan, options: &Options, built: bool) -> Needs {
    Needs {
        postgres: plan.postgres == Source::Local,
        mongodb: plan.mongodb == Some(Source::Local),
        bridge_build: options.build && !built,
        redis: false,
    }
}

/// The machine's missing parts first, then the host, the bridge and the components, once.
async fn build(project: &Project, options: &Options, plan: &Plan) -> anyhow::Result<Steps> {
    let built =
        options.bin_dir.join("spinyard").exists() && options.bin_dir.join("kafka-bridge").exists();
    if options.build {
        setup::wasm_target(project).await?;
    }
    setup::packages(project, needs(plan, options, built)).await?;
    if !options.build {
        if !built {
            bail!(
                "no spinyard or kafka-bridge in {}: run without --no-build",
                options.bin_dir.display()
            );
        }
        return Ok(Vec::new());
    }
    let host = step::run(
        "Building the host (spinyard) and the kafka-bridge, release",
        (!built).then_some(
            "first time: about 10 minutes on 2 cores, most of it wasmtime and librdkafka; \
             later runs take seconds",
        ),
        Command::new("cargo")
            .args(["build", "--release", "-p", "spinyard", "-p", "kafka-bridge"])
            .current_dir(&project.root),
    )
    .await?;
    let components = step::run(
        "Building the components (spinyard build: each component's build command)",
        None,
        Command::new(options.bin_dir.join("spinyard"))
            .arg("build")
            .current_dir(&project.root),
    )
    .await?;
    Ok(vec![("host and bridge", host), ("components", components)])
}

/// Starts the services, prints the table, and runs until Ctrl-C, SIGTERM, SIGHUP or a
/// service's exit; then stops what it started.
async fn serve(
    project: &Project,
    options: &Options,
    defaults: &BridgeDefaults,
    plan: &Plan,
    begun: Instant,
    steps: &Steps,
) -> anyhow::Result<()> {
    // Ctrl-C, a `kill`, or the terminal closing.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut started = Started::default();
    let starting = Instant::now();
    let outcome = tokio::select! {
        rows = start(project, options, defaults, plan, &mut started) => rows.map(Some),
        _ = interrupt.recv() => Ok(None),
        _ = terminate.recv() => Ok(None),
        _ = hangup.recv() => Ok(None),
    };
    let outcome = match outcome {
        Ok(Some(rows)) => {
            print_table(&rows);
            let builds: Vec<String> = steps
                .iter()
                .map(|(what, took)| format!("{what} {}", step::minutes(*took)))
                .collect();
            println!(
                "\nReady in {} (services {}{}{}): http://{} — Ctrl-C stops what this run started.\n",
                step::minutes(begun.elapsed()),
                step::minutes(starting.elapsed()),
                if builds.is_empty() { "" } else { "; builds: " },
                builds.join(", "),
                options.listen
            );
            tokio::select! {
                _ = interrupt.recv() => Ok(()),
                _ = terminate.recv() => Ok(()),
                _ = hangup.recv() => Ok(()),
                error = started.first_exit() => Err(error),
            }
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    started.stop().await;
    outcome
}

/// Where each dependency comes from now. The bridge is never found running: its secret would
/// be unknown.
fn plan(defaults: &BridgeDefaults) -> anyhow::Result<Plan> {
    let postgres_address = format!("127.0.0.1:{}", postgres::port());
    let bridge = decide(configured_by(&[BRIDGE_ADDRESS]), || false);
    let local_bridge = bridge == Source::Local;
    if local_bridge && answers(&defaults.listen) {
        bail!(
            "{} (the kafka-bridge's address) is in use: stop what listens there, or set \
             {BRIDGE_ADDRESS}, {BRIDGE_SECRET} and {BRIDGE_DELIVERY_SECRET} to use it",
            defaults.listen
        );
    }
    Ok(Plan {
        postgres: decide(configured_by(&POSTGRES_VARIABLES), || {
            answers(&postgres_address)
        }),
        kafka: local_bridge.then(|| {
            decide(configured_by(&["KAFKA_BROKERS"]), || {
                answers(defaults.broker())
            })
        }),
        mongodb: local_bridge.then(|| {
            decide(configured_by(&["MONGODB_URI"]), || {
                answers(defaults.mongodb())
            })
        }),
        bridge,
    })
}

/// Starts (or checks) each dependency in order, then the app; returns the table's rows.
async fn start(
    project: &Project,
    options: &Options,
    defaults: &BridgeDefaults,
    plan: &Plan,
    started: &mut Started,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut variables: Vec<(String, String)> = Vec::new();
    let client = reqwest::Client::new();

    let postgres_address = format!("127.0.0.1:{}", postgres::port());
    match &plan.postgres {
        Source::Configured(_) => rows.push(Row {
            service: "postgres",
            address: "SPIN_VARIABLE_*_HOST / _PORT".into(),
            source: plan.postgres.to_string(),
            data: "-".into(),
            log: "-".into(),
        }),
        source => {
            let mut row = Row {
                service: "postgres",
                address: postgres_address.clone(),
                source: source.to_string(),
                data: "-".into(),
                log: "-".into(),
            };
            if *source == Source::Local {
                step::announce("Starting PostgreSQL", None);
                // Owned before it starts: a Ctrl-C while it starts still stops it.
                let server = started.postgres.insert(LocalServer::locate(project).await?);
                server.start(postgres::port()).await?;
                row.data = project.display(&server.data());
                row.log = project.display(&server.log());
            } else if postgres::bin_dir().is_some()
                && let server = LocalServer::locate(project).await?
                && server.running()
            {
                // This project's own server, left running by `cargo dev postgres`.
                row.source = "already running (`cargo dev stop` stops it)".into();
                row.data = project.display(&server.data());
                row.log = project.display(&server.log());
            }
            step::announce("Migrating the app's databases", None);
            postgres::provision(project, &postgres_address).await?;
            if postgres::port() != 5432 {
                for name in POSTGRES_VARIABLES.iter().filter(|v| v.ends_with("_PORT")) {
                    variables.push(((*name).into(), postgres::port().to_string()));
                }
            }
            rows.push(row);
        }
    }

    let (bridge_address, secrets) = match &plan.bridge {
        Source::Configured(_) => {
            let secrets = [BRIDGE_SECRET, BRIDGE_DELIVERY_SECRET].map(|name| {
                let secret = std::env::var(name).ok().filter(|s| !s.is_empty());
                secret.with_context(|| {
                    format!("{BRIDGE_ADDRESS} is set, so {name} must be too: the bridge's secret")
                })
            });
            let [secret, delivery_secret] = secrets;
            let secrets = (secret?, delivery_secret?);
            let address = std::env::var(BRIDGE_ADDRESS)?;
            rows.push(Row {
                service: "kafka-bridge",
                address: address.clone(),
                source: plan.bridge.to_string(),
                data: "Kafka and MongoDB: the bridge's own".into(),
                log: "-".into(),
            });
            (address, secrets)
        }
        _ => {
            let brokers = configured_or("KAFKA_BROKERS", defaults.broker());
            let kafka = plan.kafka.clone().unwrap_or(Source::Local);
            let mut row = external_row("kafka", &brokers, &kafka);
            if kafka == Source::Local {
                step::announce("Starting the Kafka-protocol broker (tansu)", None);
                let broker = services::broker(project, &brokers)?;
                let data = project.state.join("kafka/tansu.db");
                keep_when_listening(project, started, broker, &brokers, &data, &mut row).await?;
            }
            rows.push(row);

            let mongodb_uri = configured_or("MONGODB_URI", &defaults.mongodb.uri);
            let mongodb = plan.mongodb.clone().unwrap_or(Source::Local);
            let mut row = external_row("mongodb", &mongodb_uri, &mongodb);
            if mongodb == Source::Local {
                step::announce("Starting the MongoDB-wire server (SecantusDB)", None);
                let address = defaults.mongodb();
                let server = services::mongodb(project, address)?;
                let data = project.state.join("mongodb");
                keep_when_listening(project, started, server, address, &data, &mut row).await?;
            }
            rows.push(row);

            // Each secret from the environment, or else the one generated into its file.
            let [secret, delivery_secret] = [
                (BRIDGE_SECRET, SECRET_FILES[0]),
                (BRIDGE_DELIVERY_SECRET, SECRET_FILES[1]),
            ]
            .map(|(name, file)| match std::env::var(name) {
                Ok(secret) if !secret.is_empty() => Ok(secret),
                _ => services::secret(project, file),
            });
            let (secret, delivery_secret) = (secret?, delivery_secret?);
            step::announce("Starting the kafka-bridge", None);
            let mut bridge = services::bridge(
                project,
                &options.bin_dir,
                &BridgeSettings {
                    listen: &defaults.listen,
                    brokers: &brokers,
                    mongodb_uri: &mongodb_uri,
                    app: options.listen,
                    secret: &secret,
                    delivery_secret: &delivery_secret,
                },
            )?;
            let health = format!("http://{}/health", defaults.listen);
            bridge
                .wait_ready(Duration::from_secs(30), || bridge_up(&client, &health))
                .await
                .with_context(|| {
                    format!(
                        "the kafka-bridge waits for Kafka at {brokers} ({kafka}) and MongoDB at \
                         {mongodb_uri} ({mongodb})"
                    )
                })?;
            rows.push(Row {
                service: "kafka-bridge",
                address: defaults.listen.clone(),
                source: Source::Local.to_string(),
                data: format!(
                    "secrets: {}",
                    project.display(&project.state.join("kafka-bridge*.secret"))
                ),
                log: project.display(&project.log("kafka-bridge")),
            });
            started.services.push(bridge);
            (defaults.listen.clone(), (secret, delivery_secret))
        }
    };
    variables.push((BRIDGE_ADDRESS.into(), bridge_address));
    variables.push((BRIDGE_SECRET.into(), secrets.0));
    variables.push((BRIDGE_DELIVERY_SECRET.into(), secrets.1));

    step::announce("Starting the app (spinyard up)", None);
    let mut app = services::app(
        project,
        &options.bin_dir,
        options.listen,
        &variables,
        &options.spinyard_args,
    )?;
    let health = format!("http://{}/.well-known/spin/health", options.listen);
    app.wait_ready(Duration::from_secs(120), || async {
        client
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await?;
    started.services.push(app);
    rows.push(Row {
        service: "app",
        address: format!("http://{}", options.listen),
        source: Source::Local.to_string(),
        data: "key-value: .spin/sqlite_key_value.db".into(),
        log: "this terminal".into(),
    });
    Ok(rows)
}

/// A local server just spawned: waits until it answers at `address`, then keeps it (stopped at
/// the run's end) and names its data and log in its row.
async fn keep_when_listening(
    project: &Project,
    started: &mut Started,
    mut server: Service,
    address: &str,
    data: &Path,
    row: &mut Row,
) -> anyhow::Result<()> {
    server
        .wait_ready(Duration::from_secs(60), || async { answers(address) })
        .await?;
    row.data = project.display(data);
    row.log = server
        .log
        .as_deref()
        .map_or_else(|| "this terminal".into(), |log| project.display(log));
    started.services.push(server);
    Ok(())
}

fn external_row(service: &'static str, address: &str, source: &Source) -> Row {
    Row {
        service,
        address: address.to_owned(),
        source: source.to_string(),
        data: "-".into(),
        log: "-".into(),
    }
}

/// Whether the bridge answers its health check with Kafka up and MongoDB connected.
async fn bridge_up(client: &reqwest::Client, url: &str) -> bool {
    let Ok(response) = client.get(url).send().await else {
        return false;
    };
    let Ok(health) = response.json::<serde_json::Value>().await else {
        return false;
    };
    health["kafka"] == "UP" && health["mongodb"] == "connected"
}

fn print_table(rows: &[Row]) {
    let header = Row {
        service: "SERVICE",
        address: "ADDRESS".into(),
        source: "SOURCE".into(),
        data: "DATA".into(),
        log: "LOG".into(),
    };
    let width = |f: fn(&Row) -> usize| {
        std::iter::once(&header)
            .chain(rows)
            .map(f)
            .max()
            .unwrap_or(0)
    };
    let widths = [
        width(|r| r.service.len()),
        width(|r| r.address.len()),
        width(|r| r.source.len()),
        width(|r| r.data.len()),
    ];
    println!();
    for row in std::iter::once(&header).chain(rows) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            row.service,
            row.address,
            row.source,
            row.data,
            row.log,
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    }
}
