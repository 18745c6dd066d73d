//! Versioned SQL migrations: applies a directory of them (`db/<database>/`) to one database.
//! `spinyard migrate` and `spinyard-dev db` both run [`migrate`].
//!
//! Files are named `NNNN_description.sql` and applied in version order, each in its own
//! transaction together with its row in [`HISTORY_TABLE`], so a failed migration leaves
//! nothing behind. Applied versions are skipped (the command is idempotent); an applied
//! file whose contents changed since is an error, naming the file. Concurrent migrators
//! serialize on an advisory lock.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

/// Where applied migrations are recorded, in the migrated database.
pub const HISTORY_TABLE: &str = "spinyard_schema_migrations";
/// The advisory lock key migrators hold while applying (any constant unlikely to collide).
const LOCK_KEY: i64 = 0x5350_494e_5941_5244; // "SPINYARD"

/// One migration file.
#[derive(Debug, PartialEq)]
pub struct Migration {
    pub version: i32,
    pub name: String,
    pub path: PathBuf,
}

/// What a run did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub applied: Vec<String>,
    pub already_applied: usize,
}

/// The migrations in `dir`, in version order; rejects malformed names and duplicate versions.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<Migration>> {
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "sql") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let version = name
            .split_once('_')
            .and_then(|(number, _)| number.parse::<i32>().ok())
            .with_context(|| {
                format!(
                    "{}: migration files are named `NNNN_description.sql`",
                    path.display()
                )
            })?;
        migrations.push(Migration {
            version,
            name,
            path,
        });
    }
    migrations.sort_by_key(|m| m.version);
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        bail!(
            "{} and {} share version {}",
            pair[0].path.display(),
            pair[1].path.display(),
            pair[0].version
        );
    }
    Ok(migrations)
}

/// Applies the pending migrations of `dir` to the database at `url`.
pub async fn migrate(url: &str, dir: &Path) -> anyhow::Result<Outcome> {
    let migrations = discover(dir)?;
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    let driver = tokio::spawn(connection);
    let result = apply(&mut client, &migrations).await;
    drop(client);
    let _ = driver.await;
    result
}

async fn apply(
    client: &mut tokio_postgres::Client,
    migrations: &[Migration],
) -> anyhow::Result<Outcome> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )"
        ))
        .await
        .context("creating the migration history table")?;
    let mut outcome = Outcome::default();
    for migration in migrations {
        let sql = std::fs::read_to_string(&migration.path)
            .with_context(|| format!("reading {}", migration.path.display()))?;
        let checksum = format!("{:x}", Sha256::digest(sql.as_bytes()));
        let transaction = client.transaction().await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        let recorded = transaction
            .query_opt(
                &format!("SELECT checksum FROM {HISTORY_TABLE} WHERE version = $1"),
                &[&migration.version],
            )
            .await?;
        match recorded {
            Some(row) => {
                let recorded: String = row.get(0);
                if recorded != checksum {
                    bail!(
                        "{}: already applied with different contents; add a new migration instead \
                         of editing an applied one",
                        migration.path.display()
                    );
                }
                outcome.already_applied += 1;
            }
            None => {
                transaction
                    .batch_execute(&sql)
                    .await
                    .with_context(|| format!("applying {}", migration.path.display()))?;
                transaction
                    .execute(
                        &format!(
                            "INSERT INTO {HISTORY_TABLE} (version, name, checksum) VALUES ($1, $2, $3)"
                        ),
                        &[&migration.version, &migration.name, &checksum],
                    )
                    .await?;
                outcome.applied.push(migration.name.clone());
            }
        }
        transaction.commit().await?;
    }
    Ok(outcome)
}

/// `url` with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_in_version_order_and_rejects_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["0002_b.sql", "0001_a.sql", "notes.txt"] {
            std::fs::write(dir.path().join(name), "SELECT 1;").unwrap();
        }
        let found = discover(dir.path()).unwrap();
        let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["0001_a", "0002_b"]);

        std::fs::write(dir.path().join("0002_again.sql"), "").unwrap();
        assert!(
            discover(dir.path())
                .unwrap_err()
                .to_string()
                .contains("share version 2")
        );
        std::fs::remove_file(dir.path().join("0002_again.sql")).unwrap();
        std::fs::write(dir.path().join("schema.sql"), "").unwrap();
        assert!(
            discover(dir.path())
                .unwrap_err()
                .to_string()
                .contains("NNNN_description")
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
