//! Starts the real `spinyard` binary on an ephemeral port with a manifest written for the test.

#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

pub mod exposition;
pub mod infra;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workspace root (this crate lives in `runtime-ext/host`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The compiled fixture `name` (crate `fixture-<name>`), built by `scripts/test.sh`.
pub fn fixture(name: &str) -> String {
    let path = workspace_root().join(format!("target/wasm32-wasip2/release/fixture_{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the wasm fixtures first (scripts/test.sh does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// A running host; killed when dropped.
pub struct Host {
    pub base: String,
    child: Child,
    pub stderr_log: PathBuf,
    /// The host's stdout: the components' JSON log lines.
    pub stdout_log: PathBuf,
}

impl Host {
    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The JSON log lines `service` has written with exactly `message`.
    pub fn logged(&self, service: &str, message: &str) -> Vec<serde_json::Value> {
        self.log_events()
            .into_iter()
            .filter(|e| e["service"] == service && e["message"] == message)
            .collect()
    }

    /// Every JSON log line the components have written so far.
    pub fn log_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.stdout_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the host to exit; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app directory holding `spin.toml`.
pub struct AppDir {
    pub dir: tempfile::TempDir,
}

impl AppDir {
    pub fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("spin.toml")
    }

    pub fn start(&self, args: &[&str], env: &[(&str, &str)]) -> Host {
        start(&self.manifest(), args, env)
    }
}

/// Flags every test host gets besides its own, from `SPINYARD_TEST_UP_ARGS` (whitespace
/// separated): scripts/test.sh runs suites again with `--max-instance-reuse-count 1`.
fn suite_args() -> Vec<String> {
    std::env::var("SPINYARD_TEST_UP_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn command(manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spinyard"));
    command
        .args(["up", "--listen", "127.0.0.1:0", "--from"])
        .arg(manifest)
        .args(suite_args())
        .args(args)
        .envs(env.iter().copied())
        .env(
            "SPINYARD_CACHE_DIR",
            workspace_root().join("target/spinyard-cache"),
        );
    command
}

/// Starts the host and waits for its `Serving http://…` line.
pub fn start(manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
    let temp_file = || {
        tempfile::NamedTempFile::new()
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap()
    };
    let (stderr_log, stdout_log) = (temp_file(), temp_file());
    let mut child = command(manifest, args, env)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .expect("spawning spinyard");
    let stdout = child.stdout.take().unwrap();
    let mut stdout_copy = std::fs::File::create(&stdout_log).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("Serving ") {
                let _ = tx.send(address.to_string());
            }
            let _ = writeln!(stdout_copy, "{line}");
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(base) => Host {
            base,
            child,
            stderr_log,
            stdout_log,
        },
        Err(_) => {
            let _ = child.kill();
            panic!(
                "spinyard did not start: {}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        }
    }
}

/// Runs the host expecting it to refuse to start; returns its stderr.
pub fn start_failure(manifest: &Path, env: &[(&str, &str)]) -> String {
    let mut child = command(manifest, &[], env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running spinyard");
    // A host that starts serves until killed: give it a deadline instead of hanging the test.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("spinyard started although it should not have");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "spinyard exited successfully although it should have failed"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// GETs `path` and returns status and body.
pub async fn get(host: &Host, path: &str) -> (u16, String) {
    let response = client()
        .get(format!("{}{path}", host.base))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

pub async fn get_json(host: &Host, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(host, path).await;
    let json =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body:?}"));
    (status, json)
}

/// The port of the test PostgreSQL server (`cargo dev postgres` starts one; `PGPORT`, default 5432).
pub fn pg_port() -> u16 {
    let port = std::env::var("PGPORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "no PostgreSQL on 127.0.0.1:{port}: run `cargo dev postgres` (scripts/test.sh does)"
    );
    port
}

/// A client of the tests' PostgreSQL server, as `user` on database `db`; its connection runs on
/// a task of the test's runtime.
pub async fn pg_connect(user: &str, password: &str, db: &str) -> tokio_postgres::Client {
    let port = pg_port();
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} password={password} dbname={db}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to {db} as {user}: {e}"));
    tokio::spawn(connection);
    client
}

/// POSTs `body` (sent as is) and returns status and JSON body.
pub async fn post(host: &Host, path: &str, body: &str) -> (u16, serde_json::Value) {
    let response = client()
        .post(format!("{}{path}", host.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text:?}"));
    (status, json)
}

/// Lint findings the seeds' own names cause: seed 000 names a gauge `catalogue_products_total`
/// and dashboards query it by that name.
const SEED_MANDATED_LINTS: [&str; 1] =
    [r#"catalogue_products_total non-counter metrics should not have "_total" suffix"#];

/// `promtool check metrics` (Debian's `prometheus` package; scripts/test.sh installs it):
/// parses the exposition (exit 1 on a parse error) and lints names, types and help (exit 3);
/// only the seed-mandated lint findings are accepted.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (apt-get install prometheus; scripts/test.sh does it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let only_mandated_lints = output.status.code() == Some(3)
        && findings
            .lines()
            .filter(|line| !line.trim().is_empty())
            .all(|line| SEED_MANDATED_LINTS.contains(&line.trim()));
    assert!(
        output.status.success() || only_mandated_lints,
        "promtool check metrics ({}): {findings}\n{text}",
        output.status
    );
}
