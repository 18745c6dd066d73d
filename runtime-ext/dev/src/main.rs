//! `cargo dev`: the platform for development (see the crate's documentation, `lib.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use spinyard_dev::postgres::{self, LocalServer};
use spinyard_dev::project::Project;
use spinyard_dev::setup::{self, Needs};
use spinyard_dev::{step, up};

#[derive(Parser)]
#[command(
    name = "cargo dev",
    about = "Build and serve the app with what it depends on: a local PostgreSQL, Kafka-protocol \
             broker, MongoDB-wire server and kafka-bridge wherever none is configured",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    up: UpArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Build, start what the app depends on, and serve the app (the default).
    Up(UpArgs),
    /// Prepare this machine for the tests: the wasm target, Debian's PostgreSQL, python3-venv
    /// and Redis, tansu and SecantusDB.
    Setup,
    /// Start the local PostgreSQL unless one answers on 127.0.0.1:$PGPORT (it keeps running;
    /// `cargo dev stop` stops it), then `db`.
    Postgres,
    /// Create the app's roles and databases where missing and apply pending migrations, on the
    /// server at 127.0.0.1:$PGPORT (PG_ADMIN_URL, <DATABASE>_URL override).
    Db,
    /// Stop the local PostgreSQL that `cargo dev postgres` left running.
    Stop,
}

#[derive(Args)]
struct UpArgs {
    /// Where the app listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Use the binaries and components already built.
    #[arg(long)]
    no_build: bool,
    /// Where the `spinyard` and `kafka-bridge` binaries are (with --no-build: a build always
    /// goes to target/release).
    #[arg(long, default_value = "target/release", requires = "no_build")]
    bin_dir: PathBuf,
    /// More `spinyard up` flags, after `--`.
    #[arg(last = true)]
    spinyard_args: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let project = Project::locate()?;
    let address = format!("127.0.0.1:{}", postgres::port());
    match cli.command.unwrap_or(Command::Up(cli.up)) {
        Command::Up(args) => {
            let options = up::Options {
                listen: args.listen,
                build: !args.no_build,
                bin_dir: project.root.join(args.bin_dir),
                spinyard_args: args.spinyard_args,
            };
            up::up(&project, options).await
        }
        Command::Setup => {
            setup::wasm_target(&project).await?;
            let needs = Needs {
                postgres: true,
                mongodb: true,
                bridge_build: true,
                redis: true,
            };
            setup::packages(&project, needs).await?;
            setup::tansu(&project).await?;
            setup::secantus(&project).await?;
            Ok(())
        }
        Command::Postgres => {
            if !spinyard_dev::dependency::answers(&address) {
                step::announce("Starting PostgreSQL", None);
                let server = LocalServer::locate(&project).await?;
                server.start(postgres::port()).await?;
                eprintln!(
                    "    PostgreSQL on {address}, data in {}, log {}",
                    server.data().display(),
                    server.log().display()
                );
            }
            postgres::provision(&project, &address).await
        }
        Command::Db => postgres::provision(&project, &address).await,
        Command::Stop => LocalServer::locate(&project).await?.stop().await,
    }
}
