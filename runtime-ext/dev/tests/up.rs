//! `cargo dev up` end to end, as a user runs it (without its build step: the binaries and
//! components `scripts/test.sh` built are used): the platform comes up with every local
//! service started here (PostgreSQL on a port of its own, so that the test suite's server is
//! not the one found), every curl example of the five seeds answers as the seed documents,
//! Ctrl-C stops everything the run started, and a second run finds the first one's data in
//! PostgreSQL and MongoDB. (The broker's file is reopened too, but nothing here tells its
//! contents from a fresh broker's: the bridge recreates the topics.)

mod examples;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use spinyard_dev::dependency::answers;
use spinyard_dev::project::Project;

/// The addresses the local services take (`kafka-bridge.toml`'s defaults).
const LOCAL_SERVICES: [(&str, &str); 3] = [
    ("kafka", "127.0.0.1:9092"),
    ("mongodb", "127.0.0.1:27017"),
    ("kafka-bridge", "127.0.0.1:3100"),
];

fn workspace_root() -> PathBuf {
    Project::locate().unwrap().root
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `cargo dev up`; interrupted when dropped (a failed assertion included), so that
/// it does not hold the services' ports for the next run.
struct Up {
    child: Child,
    /// Everything it printed so far.
    output: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    fn start(state: &Path, listen: &str, pg_port: u16) -> Self {
        let bin_dir = workspace_root().join("target/debug");
        for binary in ["spinyard", "kafka-bridge"] {
            assert!(
                bin_dir.join(binary).exists(),
                "{}/{binary} is missing: scripts/test.sh builds it before this test",
                bin_dir.display()
            );
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_spinyard-dev"));
        command
            .args([
                "up",
                "--no-build",
                "--bin-dir",
                "target/debug",
                "--listen",
                listen,
            ])
            .env("SPINYARD_DEV_DIR", state)
            .env("PGPORT", pg_port.to_string())
            .env_remove("KAFKA_BROKERS")
            .env_remove("MONGODB_URI")
            .env_remove("PG_ADMIN_URL")
            .current_dir(workspace_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("SPIN_VARIABLE_") || name.ends_with("_URL") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().unwrap();
        let (sender, output) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("| {line}");
                    let _ = sender.send(line);
                }
            });
        }
        Self {
            child,
            output,
            seen: Vec::new(),
        }
    }

    /// Waits for the line saying the platform is ready; fails with everything printed if the
    /// run ends first.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match self.output.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let ready = line.starts_with("Ready in ");
                    self.seen.push(line);
                    if ready {
                        return;
                    }
                }
                Err(_) => {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        panic!("cargo dev up ended ({status}) before it was ready");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "cargo dev up was not ready in 300 s"
                    );
                }
            }
        }
    }

    /// Ctrl-C, as the terminal sends it; returns once it has exited, successfully.
    fn interrupt(mut self) {
        let status = self.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "cargo dev up exited with {status:?} after Ctrl-C (None: not within 120 s)"
        );
    }

    /// SIGINT, then up to 120 s for it to exit, then SIGKILL.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The table's row for `service`.
    fn row(&self, service: &str) -> &str {
        self.seen
            .iter()
            .find(|line| line.split_whitespace().next() == Some(service))
            .unwrap_or_else(|| panic!("no row for {service} in the table"))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes a `cargo dev up` with state directory `dir` started, or their descendants:
/// every one inherits `SPINYARD_DEV_DIR` (PostgreSQL's server too, through runuser and pg_ctl).
fn processes_of(dir: &Path) -> Vec<String> {
    let marker = format!("SPINYARD_DEV_DIR={}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

async fn purchases(client: &reqwest::Client, base: &str, userid: &str) -> Value {
    client
        .get(format!("{base}/getAllUserBuys/{userid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn up(state: &Path, listen: &str, pg_port: u16) -> Up {
    tokio::task::block_in_place(|| {
        let mut up = Up::start(state, listen, pg_port);
        up.wait_ready();
        up
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_comes_up_answers_every_seed_example_and_stops_on_ctrl_c() {
    for (service, address) in LOCAL_SERVICES {
        assert!(
            !answers(address),
            "{address} is in use: this test starts a local {service} there (stop any `cargo dev`)"
        );
    }
    // Under target/ and open to others: the `postgres` user runs the server and must reach its
    // data directory. (A checkout it cannot reach keeps the server in that user's home, which
    // this test leaves there.)
    let state = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir_in(workspace_root().join("target"))
        .unwrap();
    let pg_port = free_port();
    let pg_address = format!("127.0.0.1:{pg_port}");
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let client = reqwest::Client::new();

    let first = up(state.path(), &listen, pg_port);
    for service in ["postgres", "kafka", "mongodb", "kafka-bridge"] {
        assert!(
            first.row(service).contains("started here"),
            "{service} was not started locally: {}",
            first.row(service)
        );
    }
    assert!(first.row("app").contains(&base));
    assert!(first.row("postgres").contains(&pg_address));

    let failures = examples::check_all(&base, &run).await;
    assert!(
        failures.is_empty(),
        "seed examples that failed:\n{}",
        failures.join("\n")
    );

    // A product and a purchase of this run, to find again after a restart.
    let product: Value = client
        .post(format!("{base}/products"))
        .json(&json!({"name": format!("restart-{run}"), "price": 1.5, "category": "test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product_id = product["id"].as_i64().expect("the new product's id");
    let userid = format!("restart-{run}");
    let bought = client
        .post(format!("{base}/buy"))
        .json(&json!({"username": "restart", "userid": userid, "price": 12.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(bought.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    while purchases(&client, &base, &userid).await["count"] != 1 {
        assert!(
            Instant::now() < deadline,
            "the purchase was not stored within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    tokio::task::block_in_place(|| first.interrupt());
    for (service, address) in LOCAL_SERVICES {
        assert!(!answers(address), "{service} still answers after Ctrl-C");
    }
    assert!(!answers(&pg_address), "postgres still answers after Ctrl-C");
    assert!(!answers(&listen), "the app still answers after Ctrl-C");
    let left = processes_of(state.path());
    assert!(left.is_empty(), "processes left behind: {left:#?}");

    // The second run: the same state directory, so the same data.
    let second = up(state.path(), &listen, pg_port);
    let stored = purchases(&client, &base, &userid).await;
    assert_eq!(stored["count"], 1, "after a restart: {stored}");
    assert_eq!(stored["total_spent"], 12.5);
    let again = client
        .get(format!("{base}/products/{product_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the product after a restart");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["name"], product["name"], "after a restart");
    tokio::task::block_in_place(|| second.interrupt());
    assert!(!answers(&pg_address), "postgres still answers after Ctrl-C");
    let left = processes_of(state.path());
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}
