//! Loading an app: the manifest's variables, the runtime config, the stores and pools, the
//! router, and every routed component compiled (or taken from the cache), linked and configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::{Component as Compiled, Linker};
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::allowed_hosts::AllowedHosts;
use crate::engine::{self, PoolLimits};
use crate::key_value::{self, KeyValueAccess};
use crate::manifest::{App, RouteSpec};
use crate::postgres::{Pools, PostgresAccess};
use crate::routes::{Route, RouteEntry, Router};
use crate::runtime_config::RuntimeConfig;
use crate::state::InstanceState;
use crate::variables::{AppVariables, ComponentVariables};

/// One component, configured: what each of its instances is given.
pub struct LoadedComponent {
    pub id: Arc<str>,
    pub environment: Vec<(String, String)>,
    pub files_root: Option<PathBuf>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub key_value: KeyValueAccess,
    pub postgres: PostgresAccess,
    pub variables: ComponentVariables,
}

/// An app ready to run.
pub struct LoadedApp {
    pub engine: Engine,
    pub router: Router,
    /// Every component a trigger names, with its pre-linked service.
    pub components: Vec<(Arc<LoadedComponent>, ServicePre<InstanceState>)>,
    /// Staged `files`; deleted when dropped.
    pub staging: tempfile::TempDir,
}

/// Loads `app`: `runtime_config` is `--runtime-config-file`, compiled components are cached in
/// `cache_dir`, and the engine's instance pool is sized by `limits`.
pub async fn load(
    app: &App,
    runtime_config: Option<&Path>,
    cache_dir: &Path,
    limits: PoolLimits,
) -> anyhow::Result<LoadedApp> {
    let manifest = &app.manifest;
    if manifest.http_base() == Some("/") {
        tracing::warn!(
            "This application has the deprecated trigger 'base' set to the default value '/'."
        );
    }
    let variables = AppVariables::resolve(&manifest.variables, |name| std::env::var(name).ok())?;
    let runtime_config = RuntimeConfig::load(&app.dir, runtime_config)?;
    let pg_pools = Arc::new(Pools::default());
    let stores = Arc::new(
        key_value::open_stores(&manifest.component, &runtime_config.key_value_stores).await?,
    );
    let engine = engine::new_engine(limits)?;
    let linker = engine::new_linker(&engine)?;
    let staging = tempfile::Builder::new()
        .prefix("spinyard-files-")
        .tempdir()?;

    let mut entries = Vec::new();
    for trigger in &manifest.trigger.http {
        let route = match &trigger.route {
            RouteSpec::Path(route) => Some(Route::parse(route)?),
            RouteSpec::Private(_) => None,
        };
        entries.push(RouteEntry {
            component: trigger.component.clone(),
            route,
        });
    }
    let router = Router::new(entries);
    for (route, shadowed, effective) in router.duplicates() {
        tracing::error!(
            "duplicate route, never used: {shadowed}: {route} (duplicate of {effective})"
        );
    }

    let mut components = Vec::new();
    for (id, component) in &manifest.component {
        if router.by_component(id).is_none() {
            continue; // As Spin: a component no trigger names is never instantiated.
        }
        let context = || format!("component `{id}`");
        let wasm = app.component_path(id)?;
        let compiled = {
            let (engine, cache_dir) = (engine.clone(), cache_dir.to_path_buf());
            tokio::task::spawn_blocking(move || engine::load_component(&engine, &wasm, &cache_dir))
                .await?
                .with_context(context)?
        };
        let service = link(&linker, &compiled).with_context(context)?;
        let allowed_hosts = component
            .allowed_outbound_hosts
            .iter()
            .map(|entry| variables.render(entry))
            .collect::<anyhow::Result<Vec<_>>>()
            .and_then(|entries| AllowedHosts::parse(&entries))
            .with_context(|| format!("component `{id}`: field `allowed_outbound_hosts`"))?;
        let allowed_hosts = Arc::new(allowed_hosts);
        let files_root = crate::files::component_root(staging.path(), id);
        let has_files =
            crate::files::stage(&app.dir, component, &files_root).with_context(context)?;
        let values = variables
            .component_values(&component.variables)
            .with_context(context)?;
        components.push((
            Arc::new(LoadedComponent {
                id: id.as_str().into(),
                environment: component.environment.clone().into_iter().collect(),
                files_root: has_files.then_some(files_root),
                key_value: KeyValueAccess::new(&component.key_value_stores, stores.clone()),
                postgres: PostgresAccess {
                    allowed: allowed_hosts.clone(),
                    pools: pg_pools.clone(),
                },
                allowed_hosts,
                variables: ComponentVariables::new(id, values),
            }),
            service,
        ));
    }
    Ok(LoadedApp {
        engine,
        router,
        components,
        staging,
    })
}

/// Pre-links a component; a missing import names the interface, as wasmtime reports it.
fn link(
    linker: &Linker<InstanceState>,
    compiled: &Compiled,
) -> anyhow::Result<ServicePre<InstanceState>> {
    let pre = linker.instantiate_pre(compiled)?;
    ServicePre::new(pre).map_err(anyhow::Error::from).context("it does not export `wasi:http/handler@0.3.0` (build it with spin-sdk 7's `#[http_service]`)")
}
