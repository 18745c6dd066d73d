//! # spinyard-dev
//!
//! `cargo dev` (an alias of `cargo run -p spinyard-dev`, `.cargo/config.toml`): the whole
//! platform on one machine, for development. It builds the host, the bridge and the components
//! once, then serves the app together with what it depends on. A dependency configured in the
//! environment is used as it is; one that is not configured and does not answer at its default
//! address is started here as a local development service, as Quarkus Dev Services and .NET
//! Aspire do, with its data and log under the state directory (`.spinyard/`). Ctrl-C stops what
//! the run started; the data stays for the next run.
//!
//! # Layout
//! - [`project`]: where things are: the checkout, the state directory, the installed tools.
//! - [`step`]: a long step, announced, kept alive with a heartbeat, and timed.
//! - [`setup`]: a fresh machine: the wasm target, Debian packages, tansu and SecantusDB.
//! - [`process`]: a supervised child process, its log, its readiness and its stop.
//! - [`dependency`]: for each dependency, whether it is configured, running, or to start.
//! - [`postgres`]: the local PostgreSQL server; the app's roles, databases and migrations.
//! - [`services`]: the broker, the MongoDB server, the bridge and the app, as processes.
//! - [`up`]: `cargo dev up`: everything above in order, the table, Ctrl-C.

pub mod dependency;
pub mod postgres;
pub mod process;
pub mod project;
pub mod services;
pub mod setup;
pub mod step;
pub mod up;
