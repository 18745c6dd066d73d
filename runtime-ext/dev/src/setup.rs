//! What a fresh machine lacks, found and fixed before any long build: the wasm target, the
//! Debian packages the local services need (and Redis, which only the tests start), and the
//! two servers the tests and local development start: tansu (a Kafka-protocol broker, from
//! crates.io) and SecantusDB (a MongoDB-wire server, from PyPI), both installed into `target/`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::project::Project;
use crate::step;

/// The target spin-sdk components are built for (`rust-toolchain.toml` names it too).
const WASM_TARGET: &str = "wasm32-wasip2";
const TANSU_VERSION: &str = "0.6.0";
/// `dynostore` gives the tests' in-memory storage, `libsql` local development's SQLite file.
const TANSU_FEATURES: &str = "dynostore,libsql";
const SECANTUS_VERSION: &str = "0.7.0b3";

/// Adds the wasm target to the toolchain the checkout builds with, if rustup manages it and
/// lacks it: rustup adds `rust-toolchain.toml`'s targets only when it installs the toolchain,
/// not to one the machine already has. Done before the host's long build, so that a missing
/// target is not found only after it.
pub async fn wasm_target(project: &Project) -> anyhow::Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(&project.root)
        .output()
        .await
    else {
        return Ok(()); // No rustup: the toolchain is the user's business, and cargo says what lacks.
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    step::run(
        &format!("Adding the {WASM_TARGET} target to the Rust toolchain"),
        None,
        Command::new("rustup")
            .args(["target", "add", WASM_TARGET])
            .current_dir(&project.root),
    )
    .await
    .map(drop)
}

/// What a run will start locally, and so which packages it needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub postgres: bool,
    pub mongodb: bool,
    /// librdkafka is built from source with the bridge.
    pub bridge_build: bool,
    /// The tests' Redis key-value store (`type = "redis"` in a runtime config).
    pub redis: bool,
}

/// A Debian package and why it is needed.
struct Package {
    name: &'static str,
    why: &'static str,
}

/// Installs the Debian packages `needs` calls for and the machine lacks (when running as root
/// with apt), or fails naming the exact command, before anything long has run.
pub async fn packages(project: &Project, needs: Needs) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if needs.postgres && crate::postgres::bin_dir().is_none() {
        missing.push(Package {
            name: "postgresql",
            why: "the local PostgreSQL server",
        });
    }
    if needs.bridge_build && !has_command("make").await {
        missing.push(Package {
            name: "make",
            why: "building librdkafka for the kafka-bridge",
        });
    }
    if needs.mongodb && !project.secantusd().exists() && !python_venv().await {
        missing.push(Package {
            name: "python3-venv",
            why: "installing SecantusDB, the local MongoDB-wire server",
        });
    }
    if needs.redis && !has_command("redis-server").await {
        missing.push(Package {
            name: "redis-server",
            why: "the tests' Redis key-value store",
        });
    }
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let reasons: Vec<String> = missing
        .iter()
        .map(|p| format!("{} ({})", p.name, p.why))
        .collect();
    let root = nix::unistd::geteuid().is_root();
    if !root || !has_command("apt-get").await {
        bail!(
            "this machine lacks {}. Install them, e.g. `sudo apt-get install -y {}`, then run the \
             command again.",
            reasons.join(", "),
            names.join(" ")
        );
    }
    // A fresh image often ships without package lists.
    let lists_empty = std::fs::read_dir("/var/lib/apt/lists").map_or(true, |entries| {
        !entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
    });
    if lists_empty {
        update_package_lists().await?;
    }
    let what = format!("Installing Debian packages: {}", reasons.join(", "));
    let mut install = apt(&["install", "-y", "-qq"]);
    install.args(&names);
    if step::run(&what, None, &mut install).await.is_err() {
        if lists_empty {
            bail!("{what} failed; its output is above");
        }
        // Stale lists: refresh them and try once more.
        update_package_lists().await?;
        step::run(&what, None, &mut install).await?;
    }
    if names.contains(&"postgresql") {
        drop_debian_cluster().await;
    }
    Ok(())
}

fn apt(args: &[&str]) -> Command {
    let mut command = Command::new("apt-get");
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    command
}

async fn update_package_lists() -> anyhow::Result<()> {
    step::run(
        "Fetching Debian's package lists",
        None,
        &mut apt(&["update", "-qq"]),
    )
    .await
    .map(drop)
}

/// Debian's `postgresql` package creates a cluster `main` and, where services may start (a VM,
/// WSL), runs it on port 5432, where a later run would find a server whose superuser has no
/// password. The package was installed just now for the local server, so that cluster holds
/// nothing: drop it.
async fn drop_debian_cluster() {
    let Some(version) = crate::postgres::bin_dir()
        .and_then(|bin| Some(bin.parent()?.file_name()?.to_string_lossy().into_owned()))
    else {
        return;
    };
    if Path::new("/etc/postgresql")
        .join(&version)
        .join("main")
        .exists()
    {
        eprintln!("    dropping the empty cluster {version}/main that Debian's package created");
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &version, "main"])
            .output()
            .await;
    }
}

async fn has_command(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .await
        .is_ok_and(|out| out.status.success())
}

/// Whether `python3 -m venv` works (Debian ships `ensurepip` separately, in `python3-venv`).
async fn python_venv() -> bool {
    Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .await
        .is_ok_and(|out| out.status.success())
}

/// Installs tansu into `target/tools` unless this version and feature set is there.
pub async fn tansu(project: &Project) -> anyhow::Result<Option<Duration>> {
    let root = project.tools();
    let stamp = root.join("tansu.installed");
    let wanted = format!("{TANSU_VERSION} {TANSU_FEATURES}");
    if project.tansu().exists() && read(&stamp).as_deref() == Some(wanted.as_str()) {
        return Ok(None);
    }
    let took = step::run(
        &format!(
            "Installing tansu {TANSU_VERSION}, the local Kafka-protocol broker, from crates.io"
        ),
        Some("first time: it compiles from source, about 10 minutes on 2 cores"),
        Command::new("cargo")
            .args(["install", "--locked", "--root"])
            .arg(&root)
            .args([
                "tansu",
                "--version",
                TANSU_VERSION,
                "--features",
                TANSU_FEATURES,
            ])
            .current_dir(&project.root),
    )
    .await?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(Some(took))
}

/// Installs SecantusDB into its own virtual environment, `target/mongo-venv`, unless there.
pub async fn secantus(project: &Project) -> anyhow::Result<Option<Duration>> {
    let venv = project.mongo_venv();
    let stamp = venv.join("secantus.installed");
    if project.secantusd().exists() && read(&stamp).as_deref() == Some(SECANTUS_VERSION) {
        return Ok(None);
    }
    let created = step::run(
        "Creating a Python environment for SecantusDB",
        None,
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )
    .await?;
    let installed = step::run(
        &format!(
            "Installing SecantusDB {SECANTUS_VERSION}, the local MongoDB-wire server, from PyPI"
        ),
        Some("about a minute"),
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("SecantusDB=={SECANTUS_VERSION}")),
    )
    .await?;
    let took = created + installed;
    std::fs::write(&stamp, SECANTUS_VERSION)
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(Some(took))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}
