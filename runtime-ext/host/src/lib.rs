//! # spinyard
//!
//! A Spin-compatible host: it runs a `spin.toml` (manifest version 2) of spin-sdk 7
//! components (WASIp3, `wasi:http/handler@0.3.0`) the way `spin up` does.
//!
//! # Layout
//! - [`manifest`]: `spin.toml`, parsed and validated as Spin does.
//! - [`routes`]: route patterns, precedence, path info.
//! - [`headers`]: the request as a component gets it: absolute URI, Spin's `spin-*` headers.
//! - [`variables`]: application / component variables and `spin:variables`.
//! - [`runtime_config`]: `runtime-config.toml` (key-value stores).
//! - [`key_value`]: `spin:key-value` and `wasi:keyvalue` over one `Store` trait: SQLite or Redis.
//! - [`postgres`]: `spin:postgres` on pooled tokio-postgres clients.
//! - [`allowed_hosts`]: the `allowed_outbound_hosts` grammar and matching (HTTP and PostgreSQL).
//! - [`outbound_http`]: outbound HTTP: the allow-list check, the connection pool.
//! - [`chaining`]: service chaining (`*.spin.internal`), behind the narrow [`chaining::Chain`].
//! - [`files`]: staging each component's `files` read-only at its `/`.
//! - [`engine`]: wasmtime configuration, compiled-component cache, the linker (each capability
//!   links itself: `key_value`, `postgres`, `variables`, `outbound_http::add_to_linker`).
//! - [`state`]: the per-instance store data.
//! - [`loader`]: loading an app: stores, pools, router, every component compiled and linked.
//! - [`instances`]: instance reuse as Spin does it for WASIp3, with its deadlines.
//! - [`status`]: the host's own answers, and a failed request's status.
//! - [`app`]: the running app: a request routed, checked and rewritten, to its component.
//! - [`body`]: the deadline of a request's body.
//! - [`server`]: the HTTP trigger's server on `spinyard-listener`, and graceful shutdown.
//! - [`telemetry`]: OpenTelemetry request spans over OTLP, and `traceparent` propagation.
//! - [`build`]: `spinyard build`.

pub mod allowed_hosts;
pub mod app;
mod bindings;
pub mod body;
pub mod build;
pub mod chaining;
pub mod engine;
pub mod files;
pub mod headers;
pub mod instances;
pub mod key_value;
pub mod loader;
pub mod manifest;
pub mod outbound_http;
pub mod postgres;
pub mod routes;
pub mod runtime_config;
pub mod server;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod variables;
