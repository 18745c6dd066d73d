//! For each dependency of the app, where it comes from: configured in the environment (used
//! as it is, never started here), found answering at its default address (used, not managed),
//! or started here as a local development service.

use std::fmt;
use std::net::ToSocketAddrs;
use std::time::Duration;

/// Where a dependency comes from in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Set by the named environment variable: used as it is, whether or not it answers.
    Configured(String),
    /// Not configured, but something answers at the default address: used, left alone.
    Running,
    /// Not configured and nothing answers: started by this run, stopped at its end.
    Local,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Configured(by) => write!(f, "configured by {by}"),
            Source::Running => f.write_str("already running"),
            Source::Local => f.write_str("started here"),
        }
    }
}

/// The first of `variables` set in the environment, if any.
pub fn configured_by(variables: &[&str]) -> Option<String> {
    variables
        .iter()
        .find(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        .map(|name| (*name).to_owned())
}

/// `variable`'s value if it is set (to something), else `default`.
pub fn configured_or(variable: &str, default: &str) -> String {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Where a dependency comes from, given its configuration and whether its default address
/// answers (asked only when it is not configured).
pub fn decide(configured_by: Option<String>, answers: impl FnOnce() -> bool) -> Source {
    match configured_by {
        Some(variable) => Source::Configured(variable),
        None if answers() => Source::Running,
        None => Source::Local,
    }
}

/// Whether a TCP connection to `address` (`host:port`) opens within half a second.
pub fn answers(address: &str) -> bool {
    let Ok(addresses) = address.to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_wins_without_probing() {
        let source = decide(Some("KAFKA_BROKERS".into()), || panic!("probed"));
        assert_eq!(source, Source::Configured("KAFKA_BROKERS".into()));
    }

    #[test]
    fn an_unconfigured_dependency_is_used_if_it_answers_else_started() {
        assert_eq!(decide(None, || true), Source::Running);
        assert_eq!(decide(None, || false), Source::Local);
    }

    #[test]
    fn a_closed_port_does_not_answer_and_an_open_one_does() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        assert!(answers(&address));
        drop(listener);
        assert!(!answers(&address));
    }
}
