//! `spinyard build`: runs each component's `[component.<id>.build] command`, like `spin build`.

use std::process::Command;

use anyhow::{Context, bail};

use crate::manifest::App;

/// The target spin-sdk components are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Runs the build commands of every component (or only of `only`), in manifest order.
pub fn build(app: &App, only: &[String]) -> anyhow::Result<()> {
    for id in only {
        if !app.manifest.component.contains_key(id) {
            bail!("no component `{id}` in the manifest");
        }
    }
    let mut target_checked = false;
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
            if !target_checked && command.contains(WASM_TARGET) {
                add_wasm_target(&workdir)?;
                target_checked = true;
            }
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

/// Adds the wasm target to the toolchain `dir` builds with, if rustup manages it and lacks it.
/// `rust-toolchain.toml` names the target, but rustup adds it only when it installs the
/// toolchain, not to one a machine already has. Without rustup, cargo's own error says it.
fn add_wasm_target(dir: &std::path::Path) -> anyhow::Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .output()
    else {
        return Ok(());
    };
    if !installed.status.success()
        || String::from_utf8_lossy(&installed.stdout)
            .lines()
            .any(|line| line.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    println!(
        "Adding the {WASM_TARGET} target to the Rust toolchain (rustup target add {WASM_TARGET})"
    );
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .current_dir(dir)
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed with {status}");
    }
    Ok(())
}
