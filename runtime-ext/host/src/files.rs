//! `files`: what a component sees of the app directory, as `spin up` mounts it.
//!
//! Spin copies each component's files into a private directory and preopens it read-only at
//! `/`; so does spinyard. Patterns are app-relative files, directories or globs; a
//! `{ source, destination }` places a file or directory at an absolute guest path.

use std::path::{Component as PathPart, Path, PathBuf};

use anyhow::{Context, bail};

use crate::manifest::{Component, FileMount};

/// Copies `component`'s files under `root` (its guest `/`). Returns whether anything is mounted.
pub fn stage(app_dir: &Path, component: &Component, root: &Path) -> anyhow::Result<bool> {
    if component.files.is_empty() {
        return Ok(false);
    }
    let excluded: Vec<glob::Pattern> = component
        .exclude_files
        .iter()
        .map(|pattern| {
            glob::Pattern::new(pattern)
                .with_context(|| format!("field `exclude_files`: `{pattern}`"))
        })
        .collect::<anyhow::Result<_>>()?;
    let is_excluded = |relative: &Path| {
        excluded
            .iter()
            .any(|pattern| pattern.matches_path(relative))
    };
    for mount in &component.files {
        match mount {
            FileMount::Pattern(pattern) => {
                check_relative(pattern)?;
                let source = app_dir.join(pattern);
                if source.is_file() || source.is_dir() {
                    copy_tree(
                        &source,
                        &root.join(pattern),
                        Path::new(pattern),
                        &is_excluded,
                    )?;
                    continue;
                }
                if !pattern.contains(['*', '?', '[']) {
                    bail!(
                        "field `files`: \"{pattern}\" does not exist and doesn't appear to be a glob pattern"
                    );
                }
                let full = app_dir.join(pattern);
                for entry in glob::glob(&full.to_string_lossy())
                    .with_context(|| format!("field `files`: `{pattern}`"))?
                {
                    let path = entry?;
                    let relative = path.strip_prefix(app_dir)?.to_path_buf();
                    if path.is_file() && !is_excluded(&relative) {
                        copy_file(&path, &root.join(&relative))?;
                    }
                }
            }
            FileMount::Placement(placement) => {
                let source = app_dir.join(&placement.source);
                if !source.exists() {
                    bail!(
                        "field `files`: File or directory \"{}\" does not exist",
                        placement.source
                    );
                }
                let destination = root.join(placement.destination.trim_start_matches('/'));
                copy_tree(
                    &source,
                    &destination,
                    Path::new(&placement.source),
                    &|_: &Path| false,
                )?;
            }
        }
    }
    Ok(true)
}

fn check_relative(pattern: &str) -> anyhow::Result<()> {
    let path = Path::new(pattern);
    if path.is_absolute()
        || path
            .components()
            .any(|part| matches!(part, PathPart::ParentDir | PathPart::CurDir))
    {
        bail!("field `files`: \"{pattern}\" must be a path inside the application directory");
    }
    Ok(())
}

fn copy_tree(
    source: &Path,
    destination: &Path,
    relative: &Path,
    excluded: &dyn Fn(&Path) -> bool,
) -> anyhow::Result<()> {
    if source.is_file() {
        if !excluded(relative) {
            copy_file(source, destination)?;
        }
        return Ok(());
    }
    for entry in
        std::fs::read_dir(source).with_context(|| format!("cannot read {}", source.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        copy_tree(
            &entry.path(),
            &destination.join(&name),
            &relative.join(&name),
            excluded,
        )?;
    }
    Ok(())
}

fn copy_file(source: &Path, destination: &Path) -> anyhow::Result<()> {
    if let Some(dir) = destination.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(source, destination).with_context(|| {
        format!(
            "cannot copy {} to {}",
            source.display(),
            destination.display()
        )
    })?;
    Ok(())
}

/// The directory a component's files are staged in, below the app's staging root.
pub fn component_root(staging: &Path, component_id: &str) -> PathBuf {
    staging.join(component_id)
}
