//! `spinyard build`: runs each component's `[component.<id>.build] command`, like `spin build`.

use std::process::Command;

use anyhow::{Context, bail};

use crate::manifest::App;

/// Runs the build commands of every component (or only of `only`), in manifest order.
pub fn build(app: &App, only: &[String]) -> anyhow::Result<()> {
    for id in only {
        if !app.manifest.component.contains_key(id) {
            bail!("no component `{id}` in the manifest");
        }
    }
    for (id, component) in &app.manifest.component {
        if !only.is_empty() && !only.contains(id) {
            continue;
        }
        let Some(build) = &component.build else {
            tracing::info!(component = %id, "no build command; skipping");
            continue;
        };
        let workdir = app.dir.join(build.workdir.as_deref().unwrap_or("."));
        for command in build.command.commands() {
            println!("Building component {id} with `{command}`");
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&workdir)
                .status()
                .with_context(|| {
                    format!("component `{id}`: cannot run build command `{command}`")
                })?;
            if !status.success() {
                bail!("component `{id}`: build command `{command}` failed with {status}");
            }
        }
    }
    println!("Finished building all Spin components");
    Ok(())
}
