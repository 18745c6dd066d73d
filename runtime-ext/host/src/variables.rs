//! Application and component variables (`spin:variables@3.0.0`'s data).
//!
//! Application variables come from `[variables]` defaults, overridden by the environment
//! provider (`SPIN_VARIABLE_<NAME>`, as Spin's). Component variables are templates over
//! them, e.g. `db_url = "postgres://{{ db_host }}/app"`, resolved once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, bail};
use wasmtime::component::{Accessor, HasData, Linker};

use crate::bindings::variables as wit;
use crate::manifest::VariableDecl;

/// The prefix of the environment provider's variables.
const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// One piece of a template: literal text or a `{{ name }}` reference.
#[derive(Debug, PartialEq)]
enum Part<'a> {
    Literal(&'a str),
    Reference(&'a str),
}

fn parse_template(template: &str) -> anyhow::Result<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Literal(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unclosed `{{{{` in `{template}`");
        };
        let name = after[..end].trim();
        if name.is_empty() {
            bail!("empty `{{{{ }}}}` in `{template}`");
        }
        parts.push(Part::Reference(name));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Ok(parts)
}

/// The application variables a template refers to.
pub fn template_references(template: &str) -> anyhow::Result<Vec<String>> {
    Ok(parse_template(template)?
        .into_iter()
        .filter_map(|part| match part {
            Part::Reference(name) => Some(name.to_string()),
            Part::Literal(_) => None,
        })
        .collect())
}

/// Application variables with their values resolved.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    /// Resolves every declared variable: the environment provider first, then the default.
    /// A required variable nobody set is a start-up error naming it and its variable.
    pub fn resolve(
        declared: &BTreeMap<String, VariableDecl>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut values = HashMap::new();
        for (name, decl) in declared {
            let env_name = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
            let value = match (env(&env_name), &decl.default) {
                (Some(value), _) => value,
                (None, Some(default)) => default.clone(),
                (None, None) => bail!(
                    "variable `{name}` is required but not set: set the environment variable `{env_name}`"
                ),
            };
            values.insert(name.clone(), value);
        }
        Ok(Self { values })
    }

    /// Renders a template over these variables.
    pub fn render(&self, template: &str) -> anyhow::Result<String> {
        parse_template(template)?
            .into_iter()
            .map(|part| match part {
                Part::Literal(text) => Ok(text.to_string()),
                Part::Reference(name) => {
                    self.values.get(name).cloned().with_context(|| {
                        format!("`{{{{ {name} }}}}` is not an application variable")
                    })
                }
            })
            .collect()
    }

    /// Resolves a component's `[component.<id>.variables]` table.
    pub fn component_values(
        &self,
        templates: &BTreeMap<String, String>,
    ) -> anyhow::Result<HashMap<String, String>> {
        templates
            .iter()
            .map(|(name, template)| {
                let value = self
                    .render(template)
                    .with_context(|| format!("variable `{name}`"))?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

/// One component's resolved variables, as `spin:variables/get` serves them.
#[derive(Debug, Clone)]
pub struct ComponentVariables {
    component: Arc<str>,
    values: Arc<HashMap<String, String>>,
}

impl ComponentVariables {
    pub fn new(component: &str, values: HashMap<String, String>) -> Self {
        Self {
            component: component.into(),
            values: Arc::new(values),
        }
    }

    /// Spin's answer for `get(name)`: a malformed name is `invalid-name`, an undeclared one `undefined`.
    fn get(&self, name: &str) -> Result<String, wit::Error> {
        crate::manifest::check_variable_name(name)
            .map_err(|error| wit::Error::InvalidName(format!("{error:#}")))?;
        self.values.get(name).cloned().ok_or_else(|| {
            wit::Error::Undefined(format!("no variable for {:?}.{name:?}", self.component))
        })
    }
}

/// Links `spin:variables`; `variables` are an instance's.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    variables: fn(&mut T) -> &ComponentVariables,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, VariablesHost>(linker, variables)
}

/// The `HasData` marker the variables bindings are implemented on.
pub struct VariablesHost;

impl HasData for VariablesHost {
    type Data<'a> = &'a ComponentVariables;
}

impl wit::Host for &ComponentVariables {}

impl<T> wit::HostWithStore<T> for VariablesHost {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, wit::Error>> {
        Ok(accessor.with(|mut access| access.get().get(&name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(default: Option<&str>) -> VariableDecl {
        VariableDecl {
            default: default.map(str::to_string),
            required: default.is_none(),
            secret: false,
            description: None,
        }
    }

    #[test]
    fn environment_overrides_default_and_required_must_be_set() {
        let declared = BTreeMap::from([
            ("db_host".to_string(), decl(Some("localhost"))),
            ("token".to_string(), decl(None)),
        ]);
        let env = |name: &str| (name == "SPIN_VARIABLE_TOKEN").then(|| "s3cret".to_string());
        let vars = AppVariables::resolve(&declared, env).unwrap();
        assert_eq!(
            vars.render("{{db_host}}:{{ token }}").unwrap(),
            "localhost:s3cret"
        );

        let error = AppVariables::resolve(&declared, |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`token`") && error.contains("SPIN_VARIABLE_TOKEN"),
            "{error}"
        );
    }

    #[test]
    fn guest_lookups_follow_spin_errors() {
        let vars = ComponentVariables::new(
            "web",
            HashMap::from([("greeting".to_string(), "hi".to_string())]),
        );
        assert_eq!(vars.get("greeting").unwrap(), "hi");
        assert!(
            matches!(vars.get("other"), Err(wit::Error::Undefined(message)) if message.contains("\"web\""))
        );
        assert!(matches!(
            vars.get("Greeting"),
            Err(wit::Error::InvalidName(_))
        ));
    }

    #[test]
    fn templates_are_parsed_strictly() {
        assert_eq!(template_references("a{{ x }}b{{y}}").unwrap(), ["x", "y"]);
        assert!(template_references("{{ x").is_err());
        assert!(template_references("{{ }}").is_err());
        assert_eq!(template_references("plain").unwrap(), Vec::<String>::new());
    }
}
