//! The catalogue's layered configuration, in the seed's priority order:
//!
//! 1. Spin variables (`SPIN_VARIABLE_CATALOGUE_*` locally, Secrets/ConfigMaps on SpinKube): the
//!    seed's environment variables. An empty value means "not set here".
//! 2. Secret files: `/app/secrets/<key>`.
//! 3. Config files: `/app/db-config/db-config.properties` (`key=value` lines).
//! 4. `/app/config.json`.
//! 5. The seed's defaults.
//!
//! Files 2-4 are the component's `files` (`components/catalogue/config/` → `/app`). The
//! database host and port come from variables only: they also make up the component's
//! `allowed_outbound_hosts`, and a file must not be able to widen the network policy.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use guest_kit::Log;

/// Where the file layers are, and their names in it.
const APP_DIR: &str = "/app";
const SECRETS_DIR: &str = "secrets";
const PROPERTIES_DIR: &str = "db-config";
const PROPERTIES_FILE: &str = "db-config.properties";
const CONFIG_FILE: &str = "config.json";

/// Where the products come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSource {
    Json,
    Db,
}

impl DataSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Db => "db",
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub app_version: String,
    pub data_source: DataSource,
    pub db_address: String,
    /// `host:port/name`, for logs and the home page (no credentials).
    pub db_location: String,
}

/// The layered keys and their defaults (seed 000's table).
const DEFAULTS: [(&str, &str); 5] = [
    ("app_version", "1.0.0"),
    ("data_source", "json"),
    ("db_name", "catalogue"),
    ("db_user", "devops"),
    ("db_password", "devops"),
];

thread_local! {
    /// The configuration, read once per instance: its layers do not change while it lives.
    static CURRENT: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

impl Config {
    /// The configuration, from this instance's first read of it; an error is not kept, so the
    /// next request reads again.
    pub async fn current(log: &Log) -> Result<Rc<Self>, String> {
        guest_kit::per_instance(&CURRENT, async || Self::load(log).await.map(Rc::new)).await
    }

    /// Reads every layer; a malformed file is reported and skipped, never fatal.
    async fn load(log: &Log) -> Result<Self, String> {
        let files = FileLayers::read(log);
        let mut values = HashMap::new();
        for (key, default) in DEFAULTS {
            let from_variable = guest_kit::variable(key).await.map_err(|e| e.message)?;
            let value = Some(from_variable)
                .filter(|v| !v.is_empty())
                .or_else(|| files.get(key))
                .unwrap_or_else(|| default.to_owned());
            values.insert(key, value);
        }
        let data_source = match values["data_source"].to_ascii_lowercase().as_str() {
            "db" => DataSource::Db,
            "json" => DataSource::Json,
            other => return Err(format!("data_source: `{other}` is neither `json` nor `db`")),
        };
        let host = guest_kit::variable("db_host")
            .await
            .map_err(|e| e.message)?;
        let port = guest_kit::variable("db_port")
            .await
            .map_err(|e| e.message)?;
        let name = &values["db_name"];
        Ok(Self {
            app_version: values["app_version"].clone(),
            data_source,
            db_address: guest_kit::db::address(
                &host,
                &port,
                name,
                &values["db_user"],
                &values["db_password"],
            ),
            db_location: format!("{host}:{port}/{name}"),
        })
    }
}

/// The file layers, highest priority first.
struct FileLayers {
    secrets: HashMap<String, String>,
    properties: HashMap<String, String>,
    config_json: HashMap<String, String>,
}

impl FileLayers {
    /// Reads the layers that are there. Only files their directory lists are opened: opening
    /// one that is not there is an error the host builds (with a backtrace, under
    /// `RUST_BACKTRACE`), and most layers are usually absent.
    fn read(log: &Log) -> Self {
        let app = names(APP_DIR);
        let listed_dir = |name: &str| {
            app.contains(name)
                .then(|| names(&format!("{APP_DIR}/{name}")))
        };
        let secrets = listed_dir(SECRETS_DIR)
            .map(|listed| {
                DEFAULTS
                    .iter()
                    .filter(|(key, _)| listed.contains(*key))
                    .filter_map(|(key, _)| {
                        let path = format!("{APP_DIR}/{SECRETS_DIR}/{key}");
                        let text = std::fs::read_to_string(path).ok()?;
                        Some((key.to_string(), text.trim().to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let properties = listed_dir(PROPERTIES_DIR)
            .filter(|listed| listed.contains(PROPERTIES_FILE))
            .and_then(|_| {
                let path = format!("{APP_DIR}/{PROPERTIES_DIR}/{PROPERTIES_FILE}");
                std::fs::read_to_string(path).ok()
            })
            .map(|text| parse_properties(&text))
            .unwrap_or_default();
        let config_json = app
            .contains(CONFIG_FILE)
            .then(|| std::fs::read_to_string(format!("{APP_DIR}/{CONFIG_FILE}")).ok())
            .flatten();
        let config_json = match config_json {
            Some(text) => parse_config_json(&text).unwrap_or_else(|e| {
                log.warning(
                    &format!("{APP_DIR}/{CONFIG_FILE}: {e}; ignoring it"),
                    serde_json::Value::Null,
                );
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        Self {
            secrets,
            properties,
            config_json,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        [&self.secrets, &self.properties, &self.config_json]
            .into_iter()
            .find_map(|layer| layer.get(key).filter(|v| !v.is_empty()).cloned())
    }
}

/// The names in directory `path`; none if it cannot be read.
fn names(path: &str) -> HashSet<String> {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `key=value` lines; `#` and `!` start comments, as in Java properties files.
fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The string (or number) members of a JSON object.
fn parse_config_json(text: &str) -> Result<HashMap<String, String>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = value.as_object().ok_or("not a JSON object")?;
    Ok(object
        .iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(s) => Some((key.clone(), s.clone())),
            serde_json::Value::Number(n) => Some((key.clone(), n.to_string())),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_json_layers_parse() {
        let props =
            parse_properties("# comment\ndb_name = catalogue\ndb_host=db.svc\n\nbroken line\n");
        assert_eq!(props["db_name"], "catalogue");
        assert_eq!(props.len(), 2);
        let json =
            parse_config_json(r#"{"app_version": "2.0.0", "port": 5000, "nested": {}}"#).unwrap();
        assert_eq!(json["app_version"], "2.0.0");
        assert_eq!(json["port"], "5000");
        assert!(!json.contains_key("nested"));
        assert!(parse_config_json("[1]").is_err());
    }

    #[test]
    fn secrets_outrank_properties_and_config_json() {
        let layer = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let files = FileLayers {
            secrets: layer(&[("db_password", "from-secret")]),
            properties: layer(&[("db_password", "from-properties"), ("db_name", "props-db")]),
            config_json: layer(&[
                ("db_name", "json-db"),
                ("db_user", "json-user"),
                ("app_version", ""),
            ]),
        };
        assert_eq!(files.get("db_password").as_deref(), Some("from-secret"));
        assert_eq!(files.get("db_name").as_deref(), Some("props-db"));
        assert_eq!(files.get("db_user").as_deref(), Some("json-user"));
        assert_eq!(files.get("app_version"), None);
    }
}
