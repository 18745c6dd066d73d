//! PostgreSQL: the local development server (Debian's package, its data in the state
//! directory), and the app's roles, databases and migrations on whichever server is used.
//!
//! The local server is for development and tests, not production: loopback only, superuser
//! `postgres`/`postgres`, `fsync` off.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio_postgres::NoTls;

use crate::project::Project;

/// The app's databases (`db/<name>/`), each with the owner the components log in as: the
/// seeds' credentials, which are `spin.toml`'s defaults too. Change them anywhere that matters.
pub const DATABASES: [Database; 4] = [
    Database::new("catalogue", "devops", "devops"), // seed 000
    Database::new("products_db", "postgres", "postgres"), // seed 001
    Database::new("appdb", "appuser", "password"),  // seed 004
    Database::new("time_events", "timeservice", "timeservice"), // seed 002
];

/// One of the app's databases.
pub struct Database {
    pub name: &'static str,
    pub owner: &'static str,
    pub password: &'static str,
}

impl Database {
    const fn new(name: &'static str, owner: &'static str, password: &'static str) -> Self {
        Self {
            name,
            owner,
            password,
        }
    }

    /// Where it is migrated as its owner: `<NAME>_URL` (e.g. `APPDB_URL`), or its owner on
    /// the server at `address`.
    fn url(&self, address: &str) -> String {
        std::env::var(format!("{}_URL", self.name.to_uppercase())).unwrap_or_else(|_| {
            format!(
                "postgres://{}:{}@{address}/{}",
                self.owner, self.password, self.name
            )
        })
    }
}

/// The port of the local server, and the address the app's variables default to:
/// `$PGPORT`, else 5432.
pub fn port() -> u16 {
    std::env::var("PGPORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

/// The newest installed server's `bin` directory (Debian: `/usr/lib/postgresql/<major>/bin`).
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// The local server's files and how its commands run.
pub struct LocalServer {
    bin: PathBuf,
    /// Its directory: `data/`, and `server.log`, which its own user must be able to write.
    dir: PathBuf,
    /// Root may not run the server: then its commands run as the `postgres` user.
    as_postgres: bool,
}

impl LocalServer {
    /// The server of this state directory: in `<state>/postgres`, or, when the `postgres` user
    /// cannot reach it (a private parent directory such as `mktemp -d` makes), in that user's
    /// home, under a name derived from the state directory's path.
    pub async fn locate(project: &Project) -> anyhow::Result<Self> {
        let bin = bin_dir()
            .context("no PostgreSQL server is installed (Debian: `apt-get install postgresql`)")?;
        let mut dir = project.state.join("postgres");
        let as_postgres = nix::unistd::geteuid().is_root();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")?
                .context("the PostgreSQL package created no `postgres` user")?;
            if !run_ok(
                Command::new("runuser")
                    .args(["-u", "postgres", "--", "test", "-x"])
                    .arg(&dir),
            )
            .await
            {
                let digest = Sha256::digest(project.state.as_os_str().as_encoded_bytes());
                let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                dir = user.dir.join("spinyard").join(name);
                std::fs::create_dir_all(&dir)?;
            }
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .with_context(|| format!("giving {} to postgres", dir.display()))?;
        }
        Ok(Self {
            bin,
            dir,
            as_postgres,
        })
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Whether this server is running (left by `cargo dev postgres`, or by a run that ended
    /// without stopping it).
    pub fn running(&self) -> bool {
        self.data().join("postmaster.pid").exists()
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The server's own working directory, which its user can reach.
        command.current_dir(&self.dir);
        command
    }

    /// Creates the cluster if there is none, then starts the server on `port` and waits
    /// until it accepts connections. The server runs on its own, outliving this process,
    /// until [`LocalServer::stop`].
    pub async fn start(&self, port: u16) -> anyhow::Result<()> {
        if !self.data().join("PG_VERSION").exists() {
            let password_file = self.dir.join("initial-password");
            std::fs::write(&password_file, "postgres\n")?;
            // initdb runs as `postgres` when we are root: it must be able to read the file.
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644))?;
            let created = succeed(
                self.command("initdb")
                    .arg("-D")
                    .arg(self.data())
                    .args([
                        "-U",
                        "postgres",
                        "--auth-host=scram-sha-256",
                        "--auth-local=peer",
                    ])
                    .args(["-E", "UTF8", "--locale=C.UTF-8"])
                    .arg(format!("--pwfile={}", password_file.display())),
                "initdb",
            )
            .await;
            let _ = std::fs::remove_file(&password_file);
            created?;
        }
        // max_connections: each pool of the app holds up to 64 clients per address.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=400 -c fsync=off"
        );
        succeed(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-w", "-t", "60", "start", "-o", &options]),
            "pg_ctl start",
        )
        .await
        .with_context(|| format!("PostgreSQL did not start; read {}", self.log().display()))
    }

    /// Stops the server (fast shutdown: open sessions are rolled back), if it runs.
    pub async fn stop(&self) -> anyhow::Result<()> {
        if !self.running() {
            return Ok(());
        }
        succeed(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
        .await
    }
}

/// Creates the app's roles and databases where missing (as the superuser of `PG_ADMIN_URL`,
/// default `postgres`/`postgres`), then applies each database's pending migrations as its
/// owner. Idempotent.
pub async fn provision(project: &Project, address: &str) -> anyhow::Result<()> {
    let admin_url = std::env::var("PG_ADMIN_URL")
        .unwrap_or_else(|_| format!("postgres://postgres:postgres@{address}/postgres"));
    let (client, connection) = tokio_postgres::connect(&admin_url, NoTls)
        .await
        .with_context(|| {
            format!(
                "PostgreSQL at {address} refused the administrator (PG_ADMIN_URL, default \
                 postgres/postgres): set PG_ADMIN_URL, or point the app at its own databases \
                 with SPIN_VARIABLE_*_HOST"
            )
        })?;
    let driver = tokio::spawn(connection);
    for database in &DATABASES {
        let role = format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            identifier(database.owner),
            literal(database.password)
        );
        create_unless(&client, "pg_roles WHERE rolname", database.owner, &role).await?;
        let owned = format!(
            "CREATE DATABASE {} OWNER {}",
            identifier(database.name),
            identifier(database.owner)
        );
        create_unless(&client, "pg_database WHERE datname", database.name, &owned).await?;
    }
    drop(client);
    let _ = driver.await;
    for database in &DATABASES {
        let dir = project.root.join("db").join(database.name);
        let outcome = spinyard_migrate::migrate(&database.url(address), &dir).await?;
        if !outcome.applied.is_empty() {
            eprintln!(
                "    {}: applied {}",
                database.name,
                outcome.applied.join(", ")
            );
        }
    }
    Ok(())
}

/// Runs `create` unless `SELECT 1 FROM <catalog> = name` finds a row.
async fn create_unless(
    client: &tokio_postgres::Client,
    catalog: &str,
    name: &str,
    create: &str,
) -> anyhow::Result<()> {
    let exists = client
        .query_opt(&format!("SELECT 1 FROM {catalog} = $1"), &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(create)
            .await
            .with_context(|| format!("creating {name}"))?;
    }
    Ok(())
}

/// A SQL identifier, quoted.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal, quoted.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

async fn run_ok(command: &mut Command) -> bool {
    command.output().await.is_ok_and(|out| out.status.success())
}

/// Runs `command` (`what`), failing with what it printed unless it succeeds.
async fn succeed(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {} {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn names_and_values_are_quoted_for_sql() {
        assert_eq!(identifier("app\"user"), "\"app\"\"user\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn every_database_has_its_migrations() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for database in &DATABASES {
            let migrations =
                spinyard_migrate::discover(&root.join("db").join(database.name)).unwrap();
            assert!(
                !migrations.is_empty(),
                "db/{} has no migrations",
                database.name
            );
        }
    }
}
