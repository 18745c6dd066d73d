//! The OpenAPI document of every public route (`api/openapi.yaml`), checked against the whole
//! app: the real `spin.toml` served by the host, with PostgreSQL, a Kafka broker, a MongoDB
//! server and the kafka-bridge (as `pipeline.rs` starts them). schemathesis, from PyPI into
//! `target/fuzz-venv` (`scripts/fuzz-venv.sh`), generates requests from the document — valid
//! ones and invalid ones: wrong types, huge and unicode values, missing fields — and checks
//! every answer against it: no 5xx but the documented deliberate ones of `GET /error`, every
//! status code, content type, header and body as documented, invalid input refused
//! (`api/schemathesis.toml` lists the checks).
//!
//! Reproducible: `FUZZ_SEED` (default [`DEFAULT_SEED`]) seeds the generation, and
//! `FUZZ_EXAMPLES` (default [`DEFAULT_EXAMPLES`]) bounds the cases per operation; the run must
//! send at least `FUZZ_MIN_REQUESTS` requests (default [`DEFAULT_MIN_REQUESTS`]). Each share of
//! the operations ([`SHARES`]) leaves its reports in `target/api-fuzz/<share>/`: schemathesis's
//! output, the JSON summary, the NDJSON events, JUnit, and a pytest file replaying any failure
//! (`st replay` needs the same app: rerun the test).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::infra::{Options, Pipeline, eventually};
use common::{get_json, pg_connect, pg_port, workspace_root};
use serde_json::Value;

const DEFAULT_SEED: u64 = 20_261_202;
/// Cases per operation in the fuzzing phase: with the coverage and stateful phases, about 11,000
/// requests (more than [`DEFAULT_MIN_REQUESTS`]) in about three minutes on two cores.
const DEFAULT_EXAMPLES: u64 = 450;
const DEFAULT_MIN_REQUESTS: u64 = 10_000;
/// `GET /slow`'s delay during the fuzz (the default is 5 s: one call would cost more than
/// thousands of others).
const SLOW_DELAY_SECONDS: &str = "0.05";

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a whole number")),
        Err(_) => default,
    }
}

/// `target/fuzz-venv`, made on first use by `scripts/fuzz-venv.sh` (once per test binary).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/fuzz-venv.sh"))
            .status()
            .expect("running scripts/fuzz-venv.sh");
        assert!(status.success(), "scripts/fuzz-venv.sh: {status}");
        root.join("target/fuzz-venv")
    })
}

fn document() -> PathBuf {
    workspace_root().join("api/openapi.yaml")
}

/// Loads the document as schemathesis does and validates it against the OpenAPI 3.1 schema;
/// prints each operation as `METHOD path` (one a line).
const LOAD_AND_VALIDATE: &str = r#"
import sys, schemathesis
schema = schemathesis.openapi.from_path(sys.argv[1])
if not str(schema.raw_schema.get("openapi", "")).startswith("3.1."):
    sys.exit("not an OpenAPI 3.1 document")
try:
    schema.validate()
except Exception as error:
    sys.exit(f"not valid OpenAPI 3.1: {str(error)[:2000]}")
for result in schema.get_all_operations():
    operation = result.ok()
    print(operation.method.upper(), operation.path)
"#;

/// The document is valid OpenAPI 3.1, and it covers every route of `spin.toml`: each trigger's
/// route has at least one documented path under it (the bridge's two delivery routes are not
/// public: they need the bridge's secret).
#[test]
fn openapi_document_is_valid_and_covers_every_route() {
    let output = Command::new(venv().join("bin/python"))
        .args(["-c", LOAD_AND_VALIDATE])
        .arg(document())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let operations: Vec<(String, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (method, path) = line.split_once(' ').unwrap();
            (method.to_owned(), path.to_owned())
        })
        .collect();
    println!("{} operations", operations.len());

    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap())
            .unwrap();
    let private = [
        "/customer-management-api/kafka/purchases",
        "/time-service/kafka/events",
    ];
    let triggers = manifest["trigger"]["http"].as_array().unwrap();
    for trigger in triggers {
        let route = trigger["route"].as_str().unwrap();
        let prefix = route.trim_end_matches("/...");
        let covered = operations
            .iter()
            .any(|(_, path)| path == prefix || path.starts_with(&format!("{prefix}/")));
        assert!(covered, "spin.toml's route {route} has no documented path");
    }
    for (_, path) in &operations {
        assert!(!private.contains(&path.as_str()), "{path} is not public");
    }
    let documented = |method: &str, path: &str| {
        operations
            .iter()
            .any(|(m, p)| m.as_str() == method && p.as_str() == path)
    };
    // The host's own route and every component's metrics, which no trigger names alone.
    assert!(documented("GET", "/.well-known/spin/health"));
    for component in manifest["component"].as_table().unwrap().keys() {
        assert!(
            documented("GET", &format!("/{component}/metrics")),
            "/{component}/metrics is not documented"
        );
    }
}

/// Row ids of the tables the fuzz writes to, so the rows it added can be removed afterwards
/// (the databases outlive the test: without this each run would add hundreds of rows).
struct Tables {
    products_db: i64,
    users: i64,
    orders: i64,
    ingested: i64,
}

async fn max_id(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(
            &format!("SELECT coalesce(max(id), 0)::bigint FROM {table}"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

impl Tables {
    async fn now() -> Self {
        let products = pg_connect("postgres", "postgres", "products_db").await;
        let app = pg_connect("appuser", "password", "appdb").await;
        Self {
            products_db: max_id(&products, "products").await,
            users: max_id(&app, "users").await,
            orders: max_id(&app, "orders").await,
            ingested: max_id(&app, "ingested_data").await,
        }
    }

    /// Deletes the rows added since [`Tables::now`]. Test binaries run one at a time, so they
    /// are this test's.
    async fn remove_added(&self) {
        let products = pg_connect("postgres", "postgres", "products_db").await;
        let app = pg_connect("appuser", "password", "appdb").await;
        let deleted = products
            .execute(
                "DELETE FROM products WHERE id > $1::bigint",
                &[&self.products_db],
            )
            .await
            .unwrap();
        let mut counts = vec![("products", deleted)];
        for (table, above) in [
            ("orders", self.orders),
            ("ingested_data", self.ingested),
            ("users", self.users),
        ] {
            let statement = format!("DELETE FROM {table} WHERE id > $1::bigint");
            let deleted = app.execute(&statement, &[&above]).await.unwrap();
            counts.push((table, deleted));
        }
        println!("rows the fuzz added, removed: {counts:?}");
    }
}

/// Two schemathesis processes run at once, each over a share of the operations (by tag), as
/// Python generates on one core and the machine has two. A share keeps the operations whose
/// data links them (a user created, then ordered for; a purchase bought, then listed), so the
/// stateful phase still follows those links.
const SHARES: [(&str, &[&str]); 2] = [
    (
        "seed-004",
        &["frontend-api", "business-logic", "data-ingest"],
    ),
    (
        "others",
        &[
            "catalogue",
            "backend",
            "time-service",
            "customer-web-server",
            "customer-management-api",
            "host",
        ],
    ),
];

/// What schemathesis's reports say about a run.
#[derive(Debug, Default)]
struct Totals {
    /// Requests sent: the interactions its NDJSON event stream recorded.
    requests: u64,
    /// Test cases generated, from the JSON report.
    cases: u64,
    /// Test cases that failed a check.
    failures: u64,
    /// Operations or cases schemathesis itself could not run.
    errors: u64,
    /// Operations tested, and in the whole document.
    tested: u64,
    operations: u64,
}

fn totals(json_report: &Path, ndjson_report: &Path) -> Totals {
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let report: Value = serde_json::from_str(&read(json_report)).unwrap();
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("the JSON report has no {pointer}: {report}"))
    };
    let listed_errors = report["errors"].as_array().map_or(0, Vec::len) as u64;
    let requests = read(ndjson_report)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|event| {
            let interactions = event.pointer("/ScenarioFinished/recorder/interactions")?;
            Some(interactions.as_object()?.len() as u64)
        })
        .sum();
    Totals {
        requests,
        cases: number("/test_cases/generated"),
        failures: number("/test_cases/with_failures"),
        errors: number("/test_cases/errored") + listed_errors,
        tested: number("/operations/tested"),
        operations: number("/operations/total"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzz_every_route_against_the_document() {
    let seed = env_number("FUZZ_SEED", DEFAULT_SEED);
    let examples = env_number("FUZZ_EXAMPLES", DEFAULT_EXAMPLES);
    let min_requests = env_number("FUZZ_MIN_REQUESTS", DEFAULT_MIN_REQUESTS);
    let schemathesis = venv().join("bin/schemathesis");

    let pg_text = pg_port().to_string();
    let tables = Tables::now().await;
    let pipeline = Pipeline::start_with(Options {
        app_env: &[
            ("SPIN_VARIABLE_CATALOGUE_DB_PORT", &pg_text),
            ("SPIN_VARIABLE_BACKEND_DB_PORT", &pg_text),
            ("SPIN_VARIABLE_APPDB_PORT", &pg_text),
            ("SPIN_VARIABLE_CATALOGUE_DATA_SOURCE", "db"),
            ("SPIN_VARIABLE_CATALOGUE_DB_USER", "devops"),
            (
                "SPIN_VARIABLE_BACKEND_SLOW_DELAY_SECONDS",
                SLOW_DELAY_SECONDS,
            ),
        ],
        ..Options::default()
    });
    let host = &pipeline.host;
    // Every dependency up before the first request: Kafka through the bridge, and MongoDB
    // (which the bridge pings every 2 s).
    for path in ["/kafka/status", "/customer-management-api/health"] {
        eventually(Duration::from_secs(60), path, || async {
            (get_json(host, path).await.0 == 200).then_some(())
        })
        .await;
    }

    let reports = workspace_root().join("target/api-fuzz");
    let _ = std::fs::remove_dir_all(&reports);
    let started = Instant::now();
    let runs: Vec<_> = SHARES
        .iter()
        .map(|(name, tags)| {
            let dir = reports.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let mut command = Command::new(&schemathesis);
            command
                .current_dir(workspace_root())
                .arg("--config-file")
                .arg("api/schemathesis.toml")
                .args(["run", "api/openapi.yaml", "--url", &host.base])
                .args(["--seed", &seed.to_string()])
                .args(["--max-examples", &examples.to_string()]);
            for tag in *tags {
                command.args(["--include-tag", tag]);
            }
            command
                .args(["--report", "json,ndjson,junit,pytest", "--report-dir"])
                .arg(&dir)
                .arg("--report-json-path")
                .arg(dir.join("report.json"))
                .arg("--report-ndjson-path")
                .arg(dir.join("events.ndjson"))
                .arg("--no-color")
                .env("PYTHONHASHSEED", "0");
            println!("{command:?}");
            let output = std::fs::File::create(dir.join("output.txt")).unwrap();
            let child = command
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .expect("running schemathesis");
            (dir, child)
        })
        .collect();
    let mut all = Totals::default();
    let mut statuses = Vec::new();
    for (dir, mut child) in runs {
        let status = child.wait().unwrap();
        println!(
            "--- {} ---\n{}",
            dir.display(),
            std::fs::read_to_string(dir.join("output.txt")).unwrap()
        );
        let totals = totals(&dir.join("report.json"), &dir.join("events.ndjson"));
        println!("{}: {status}, {totals:?}", dir.display());
        all.requests += totals.requests;
        all.cases += totals.cases;
        all.failures += totals.failures;
        all.errors += totals.errors;
        all.tested += totals.tested;
        all.operations = totals.operations;
        statuses.push(status);
    }
    println!(
        "seed {seed}, {examples} examples per operation: {} requests, {} cases, {} failures, \
         {} errors, {} of {} operations, in {:.0?} (reports: {})",
        all.requests,
        all.cases,
        all.failures,
        all.errors,
        all.tested,
        all.operations,
        started.elapsed(),
        reports.display()
    );
    drop(pipeline);
    tables.remove_added().await;

    assert!(
        statuses.iter().all(|status| status.success()) && (all.failures, all.errors) == (0, 0),
        "schemathesis found problems: see above, and {}",
        reports.display()
    );
    assert_eq!(
        all.tested, all.operations,
        "an operation has no tag of SHARES"
    );
    assert!(
        all.requests >= min_requests,
        "only {} requests were sent, fewer than {min_requests}",
        all.requests
    );
}
