//! `spin.toml` (manifest version 2), read as real Spin reads it.
//!
//! Unknown fields are rejected, as Spin rejects them, so an app that starts under spinyard
//! also starts under `spin up`. Every error names the component (or variable) and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The only manifest version spinyard (like Spin 2 and later) accepts.
const SUPPORTED_MANIFEST_VERSION: u32 = 2;

/// The parsed, validated manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    /// Application-level trigger settings, e.g. `[application.trigger.http]`; kept for
    /// compatibility, spinyard has nothing to configure there.
    #[serde(default)]
    pub trigger: Option<toml::Table>,
}

/// An application variable: `{ default = "…" }`, `{ required = true }`, either with `secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: RouteSpec,
    pub component: String,
    #[serde(default)]
    pub executor: Option<toml::Table>,
}

/// `route = "/path"` or `route = { private = true }` (reachable only by service chaining).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteSpec {
    Path(String),
    Private(PrivateRoute),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateRoute {
    pub private: bool,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub source: ComponentSource,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub build: Option<BuildConfig>,
    #[serde(default)]
    pub tool: Option<toml::Table>,
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
    #[serde(default)]
    pub dependencies: Option<toml::Table>,
}

/// `source = "path.wasm"`; a registry or URL source needs a download spinyard does not do.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentSource {
    Local(String),
    Remote(toml::Table),
}

/// `files = ["glob", { source = "dir", destination = "/dir" }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    Pattern(String),
    Placement(FilePlacement),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePlacement {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    pub command: BuildCommand,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// `command = "…"` or `command = ["…", "…"]` (run in order).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuildCommand {
    One(String),
    Many(Vec<String>),
}

impl BuildCommand {
    pub fn commands(&self) -> Vec<&str> {
        match self {
            Self::One(command) => vec![command.as_str()],
            Self::Many(commands) => commands.iter().map(String::as_str).collect(),
        }
    }
}

/// A manifest together with the directory its relative paths resolve against.
#[derive(Debug, Clone)]
pub struct App {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

impl App {
    /// Reads and validates `path`; every problem found is reported with its component and field.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let manifest = Manifest::parse(&text)
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self { manifest, dir })
    }

    /// The local `.wasm` path of a component.
    pub fn component_path(&self, id: &str) -> anyhow::Result<PathBuf> {
        let component = &self.manifest.component[id];
        match &component.source {
            ComponentSource::Local(path) => Ok(self.dir.join(path)),
            ComponentSource::Remote(_) => bail!(
                "component `{id}`: field `source`: only local paths are supported by spinyard \
                 (pull registry or URL sources with `spin` first)"
            ),
        }
    }
}

impl Manifest {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.spin_manifest_version != SUPPORTED_MANIFEST_VERSION {
            bail!(
                "field `spin_manifest_version`: version {} is not supported (expected {SUPPORTED_MANIFEST_VERSION})",
                self.spin_manifest_version
            );
        }
        for (name, decl) in &self.variables {
            check_variable_name(name).with_context(|| format!("variable `{name}`"))?;
            if decl.required == decl.default.is_some() {
                bail!("variable `{name}`: must be `required` OR have a `default`");
            }
        }
        for (id, component) in &self.component {
            check_component_id(id).with_context(|| format!("component `{id}`"))?;
            component
                .validate(&self.variables)
                .with_context(|| format!("component `{id}`"))?;
        }
        if let Some(base) = self.http_base()
            && base != "/"
        {
            bail!(
                "field `application.trigger.http.base`: `{base}` is not supported (removed in Spin 3): \
                 prepend it to each [[trigger.http]] route instead"
            );
        }
        for (index, trigger) in self.trigger.http.iter().enumerate() {
            let label = trigger
                .id
                .clone()
                .unwrap_or_else(|| format!("trigger.http[{index}]"));
            if !self.component.contains_key(&trigger.component) {
                bail!(
                    "{label}: field `component`: no component `{}` is defined in the manifest",
                    trigger.component
                );
            }
            match &trigger.route {
                RouteSpec::Path(route) => {
                    crate::routes::Route::parse(route).with_context(|| {
                        format!("component `{}`: field `route`", trigger.component)
                    })?;
                }
                RouteSpec::Private(PrivateRoute { private: false }) => bail!(
                    "component `{}`: field `route`: a table route must be `{{ private = true }}`",
                    trigger.component
                ),
                RouteSpec::Private(_) => {}
            }
            if trigger.executor.is_some() {
                bail!(
                    "component `{}`: field `executor`: only the default (WASI HTTP) executor is supported",
                    trigger.component
                );
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// `[application.trigger.http] base`, deprecated in Spin 2.7: only `/` is still accepted.
    pub fn http_base(&self) -> Option<&str> {
        self.application
            .trigger
            .as_ref()?
            .get("http")?
            .get("base")?
            .as_str()
    }
}

impl Component {
    fn validate(&self, app_variables: &BTreeMap<String, VariableDecl>) -> anyhow::Result<()> {
        if let ComponentSource::Local(path) = &self.source
            && path.is_empty()
        {
            bail!("field `source`: must name a .wasm file");
        }
        for host in &self.allowed_outbound_hosts {
            let context = || format!("field `allowed_outbound_hosts`: `{host}`");
            // An entry with templates is parsed once they are resolved, when the app loads.
            if crate::variables::template_references(host)
                .with_context(context)?
                .is_empty()
            {
                crate::allowed_hosts::AllowedHost::parse(host).with_context(context)?;
            }
        }
        for label in &self.key_value_stores {
            if label.is_empty() {
                bail!("field `key_value_stores`: a store label cannot be empty");
            }
        }
        for (name, template) in &self.variables {
            check_variable_name(name).with_context(|| format!("field `variables`: `{name}`"))?;
            for reference in crate::variables::template_references(template)
                .with_context(|| format!("field `variables`: `{name}`"))?
            {
                if !app_variables.contains_key(&reference) {
                    bail!(
                        "field `variables`: `{name}` refers to `{{{{ {reference} }}}}`, which is not an application variable"
                    );
                }
            }
        }
        if !self.sqlite_databases.is_empty() {
            bail!("field `sqlite_databases`: SQLite is not provided by spinyard yet");
        }
        if !self.ai_models.is_empty() {
            bail!("field `ai_models`: LLM inference is not provided by spinyard");
        }
        if self.dependencies.is_some() {
            bail!("field `dependencies`: component dependencies are not supported by spinyard");
        }
        // `..` would place a file outside the component's own folder (another component's, or
        // anywhere the host may write), or read one from outside the application.
        let climbs = |path: &str| {
            std::path::Path::new(path)
                .components()
                .any(|part| part == std::path::Component::ParentDir)
        };
        for mount in &self.files {
            if let FileMount::Placement(placement) = mount {
                if !placement.destination.starts_with('/') {
                    bail!(
                        "field `files`: destination `{}` must be an absolute path",
                        placement.destination
                    );
                }
                for path in [&placement.destination, &placement.source] {
                    if climbs(path) {
                        bail!("field `files`: `{path}` must not contain `..`");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Variable names: lower-case letters, digits and underscores, starting with a letter (as Spin).
pub fn check_variable_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__");
    if !valid {
        bail!(
            "invalid name `{name}`: use lower-case letters, digits and single underscores, starting with a letter"
        );
    }
    Ok(())
}

/// Component ids (Spin's kebab-case): `-`-separated words of ASCII letters and digits, each
/// all lower- or all upper-case; the first starts with a letter.
fn check_component_id(id: &str) -> anyhow::Result<()> {
    let valid = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id.split('-').all(|word| {
            !word.is_empty()
                && word.chars().all(|c| c.is_ascii_alphanumeric())
                && (word == word.to_ascii_lowercase() || word == word.to_ascii_uppercase())
        });
    if !valid {
        bail!("invalid id `{id}`: use kebab-case (letters and digits, words joined by `-`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "demo"
        [[trigger.http]]
        route = "/..."
        component = "hello"
        [component.hello]
        source = "hello.wasm"
    "#;

    #[test]
    fn parses_a_minimal_manifest() {
        let manifest = Manifest::parse(MINIMAL).unwrap();
        assert_eq!(manifest.trigger.http.len(), 1);
        assert!(manifest.component.contains_key("hello"));
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", Manifest::parse(text).unwrap_err())
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"hello.wasm\"\nallowed_hosts = []",
        );
        assert!(
            error_of(&text).contains("allowed_hosts"),
            "{}",
            error_of(&text)
        );
    }

    #[test]
    fn trigger_to_missing_component_names_it() {
        let text = MINIMAL.replace("component = \"hello\"", "component = \"nope\"");
        assert!(error_of(&text).contains("no component `nope`"));
    }

    #[test]
    fn bad_outbound_host_names_component_and_field() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"hello.wasm\"\nallowed_outbound_hosts = [\"example.com\"]",
        );
        let message = error_of(&text);
        assert!(message.contains("component `hello`"), "{message}");
        assert!(message.contains("allowed_outbound_hosts"), "{message}");
    }

    #[test]
    fn files_cannot_climb_out_with_dot_dot() {
        for files in [
            r#"{ source = "static", destination = "/../../tmp/x" }"#,
            r#"{ source = "../secrets", destination = "/s" }"#,
        ] {
            let text = MINIMAL.replace(
                "source = \"hello.wasm\"",
                &format!("source = \"hello.wasm\"\nfiles = [{files}]"),
            );
            let message = error_of(&text);
            assert!(
                message.contains("must not contain `..`"),
                "{files}: {message}"
            );
        }
    }

    #[test]
    fn component_variable_must_reference_declared_variable() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"hello.wasm\"\nvariables = { greeting = \"{{ missing }}\" }",
        );
        let message = error_of(&text);
        assert!(
            message.contains("component `hello`") && message.contains("missing"),
            "{message}"
        );
    }

    #[test]
    fn base_other_than_root_is_rejected() {
        let text = MINIMAL.replace(
            "name = \"demo\"",
            "name = \"demo\"\ntrigger.http.base = \"/api\"",
        );
        assert!(error_of(&text).contains("base"), "{}", error_of(&text));
        let root = MINIMAL.replace(
            "name = \"demo\"",
            "name = \"demo\"\ntrigger.http.base = \"/\"",
        );
        assert!(Manifest::parse(&root).is_ok());
    }

    #[test]
    fn variable_needs_exactly_one_of_required_and_default() {
        let text =
            format!("{MINIMAL}\n[variables]\nboth = {{ required = true, default = \"x\" }}\n");
        assert!(error_of(&text).contains("variable `both`"));
    }

    #[test]
    fn ids_and_names_follow_spin_rules() {
        assert!(check_component_id("kafka-bridge2").is_ok());
        assert!(check_component_id("MY-COMP").is_ok());
        assert!(check_component_id("mIx").is_err());
        assert!(check_component_id("a--b").is_err());
        assert!(check_component_id("a_b").is_err());
        assert!(check_variable_name("db_host").is_ok());
        assert!(check_variable_name("DB_HOST").is_err());
        assert!(check_variable_name("1x").is_err());
    }
}
