//! The `spinyard` command line: `build` and `up`, with `spin`'s flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spinyard::app::{AppRuntime, RuntimeOptions};
use spinyard::instances::{self, Range, ReuseConfig};
use spinyard::manifest::App;

/// Every request allocates and frees a store's worth of small objects from several threads;
/// mimalloc's per-thread free lists halve the time glibc's malloc takes there (bench/run.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "spinyard",
    version,
    about = "Run a Spin application (spin.toml) of WASIp3 components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every component's build command, like `spin build`.
    Build {
        /// The manifest.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        from: PathBuf,
        /// Build only these components.
        #[arg(short = 'c', long = "component-id")]
        components: Vec<String>,
    },
    /// Serve the application, like `spin up`.
    Up(Box<UpArgs>),
    /// Apply a directory of versioned SQL migrations (`db/<database>/`) to one database.
    Migrate {
        /// The database, e.g. `postgres://user:password@127.0.0.1:5432/appdb`.
        #[arg(long, env = "DATABASE_URL")]
        url: String,
        /// The migrations directory.
        dir: PathBuf,
    },
}

#[derive(Parser)]
struct UpArgs {
    /// The manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Address to listen on; port 0 picks a free one (printed at start-up).
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Key-value stores (and other runtime settings), as for `spin up`.
    #[arg(long, env = "RUNTIME_CONFIG_FILE")]
    runtime_config_file: Option<PathBuf>,
    /// Build the components first.
    #[arg(long)]
    build: bool,
    /// Requests one instance serves before it is dropped (default 128), as a count or a range
    /// (`1..8`) to pick from per instance; 1 gives every request a fresh instance.
    #[arg(long, value_parser = instances::parse_count_range)]
    max_instance_reuse_count: Option<Range<usize>>,
    /// Requests one instance serves at once (default 16), as a count or a range.
    #[arg(long, value_parser = instances::parse_count_range)]
    max_instance_concurrent_reuse_count: Option<Range<usize>>,
    /// The longest a request may take to answer before it gets a 504 and its instance is
    /// retired (none by default, as Spin), e.g. `30s` or a range `10..30s`.
    #[arg(long, value_parser = instances::parse_duration_range)]
    request_timeout: Option<Range<Duration>>,
    /// How long an instance without work is kept for the next request, e.g. `1s` (the default)
    /// or a range.
    #[arg(long, value_parser = instances::parse_duration_range)]
    idle_instance_timeout: Option<Range<Duration>>,
    /// The most linear memory one instance may use, in MiB; past it the instance fails (500).
    #[arg(long, default_value_t = 128)]
    max_memory_mib: usize,
    /// The largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = 16 << 20)]
    max_request_body: u64,
    /// Component instances alive at once, across all components.
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
    /// Requests of one component in flight at once (so also its busy instances); more get a
    /// 503 with `Retry-After`. Default: half of --max-instances, so that no one component can
    /// take the whole pool.
    #[arg(long)]
    max_component_requests: Option<usize>,
    /// The longest a request's body may take to arrive, from its headers; then the component
    /// reading it gets `connection-read-timeout`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    body_read_timeout: Duration,
    /// The longest a client may take to send a request's headers, counted from when the
    /// connection waits for one: also how long a kept-alive connection may stay idle.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// Client connections open at once; more wait to be accepted.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Where compiled components are cached.
    #[arg(long, env = "SPINYARD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "spinyard=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Build { from, components } => {
            spinyard::build::build(&App::load(&from)?, &components)
        }
        Command::Up(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(up(args)),
        Command::Migrate { url, dir } => {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(spinyard_migrate::migrate(&url, &dir))?;
            for name in &outcome.applied {
                println!("applied {name}");
            }
            println!(
                "{}: {} applied, {} already applied",
                dir.display(),
                outcome.applied.len(),
                outcome.already_applied
            );
            Ok(())
        }
    }
}

async fn up(args: Box<UpArgs>) -> anyhow::Result<()> {
    let app = App::load(&args.from)?;
    if args.build {
        spinyard::build::build(&app, &[])?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let reuse = reuse_config(&args);
    let options = RuntimeOptions {
        runtime_config: args.runtime_config_file,
        cache_dir: args
            .cache_dir
            .unwrap_or_else(spinyard::engine::default_cache_dir),
        reuse,
        max_memory_bytes: args.max_memory_mib << 20,
        max_request_body: args.max_request_body,
        max_instances: args.max_instances,
        max_component_requests: args
            .max_component_requests
            .unwrap_or((args.max_instances as usize / 2).max(1)),
        body_read_timeout: args.body_read_timeout,
    };
    let runtime = AppRuntime::load(&app, options, listener.local_addr()?).await?;
    let limits = spinyard_listener::Limits {
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections,
        ..Default::default()
    };
    spinyard::server::serve(runtime, listener, limits).await
}

/// The reuse flags over Spin's defaults.
fn reuse_config(args: &UpArgs) -> ReuseConfig {
    let default = ReuseConfig::default();
    ReuseConfig {
        max_reuse: args.max_instance_reuse_count.unwrap_or(default.max_reuse),
        max_concurrent: args
            .max_instance_concurrent_reuse_count
            .unwrap_or(default.max_concurrent),
        request_timeout: args.request_timeout,
        idle_timeout: args.idle_instance_timeout.unwrap_or(default.idle_timeout),
    }
}
