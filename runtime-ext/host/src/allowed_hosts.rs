//! `allowed_outbound_hosts`: which network destinations a component may reach.
//!
//! Grammar (Spin's): `scheme://host[:port]`, where `scheme` may be `*`; `host` is a name,
//! an IP, `*`, `*.suffix`, or `self` (this app); `port` is a number, a half-open range `a..b`, or `*`.
//! A missing port means the scheme's well-known port. `{{ var }}` templates are resolved
//! against application variables before parsing, once: a `{{` or `}}` left afterwards came from a
//! variable's value and is refused, never read as "anything". IPv6 literals (`[::1]`) compare as
//! addresses, however they are written.

use anyhow::{Context, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Subdomain(String),
    /// `self`: the app itself (relative URLs), which spinyard does not route yet.
    SelfApp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// One parsed entry of `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// The well-known port of a scheme, used when the entry or the URL names none.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    /// Parses an entry whose templates have been resolved.
    pub fn parse(entry: &str) -> anyhow::Result<Self> {
        if entry.contains("{{") || entry.contains("}}") {
            bail!(
                "`{{{{` or `}}}}` after the app's variables were substituted: a variable's value cannot itself be a template"
            );
        }
        let Some((scheme, rest)) = entry.split_once("://") else {
            bail!("missing a scheme: write e.g. `https://{entry}`");
        };
        if scheme.is_empty() {
            bail!("empty scheme");
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("paths are not allowed, only scheme, host and port");
        }
        let (host_text, port) = split_host_port(rest);
        let host = match host_text {
            "" => bail!("missing a host"),
            "*" => HostPattern::Any,
            "self" | "self.alt" => HostPattern::SelfApp,
            wildcard if wildcard.starts_with("*.") => {
                HostPattern::Subdomain(wildcard[1..].to_ascii_lowercase())
            }
            name if name.contains('*') => {
                bail!("`*` may only stand alone or as the first label of a host")
            }
            name => HostPattern::Exact(canonical_host(name)),
        };
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(port) => match port.split_once("..") {
                Some((low, end)) => {
                    let (low, end) = (parse_port(low)?, parse_port(end)?);
                    if low >= end {
                        bail!("port range `{port}` is empty");
                    }
                    PortPattern::Range(low, end - 1)
                }
                None => {
                    let port = parse_port(port)?;
                    PortPattern::Range(port, port)
                }
            },
            None if scheme == "*" => PortPattern::Any,
            None => match default_port(scheme) {
                Some(port) => PortPattern::Range(port, port),
                None => bail!(
                    "scheme `{scheme}` has no well-known port: give one, e.g. `{scheme}://{host_text}:1234`"
                ),
            },
        };
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self
            .scheme
            .as_deref()
            .is_none_or(|allowed| allowed == scheme);
        let host = canonical_host(host);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(name) => *name == host,
            HostPattern::Subdomain(suffix) => {
                host.ends_with(suffix.as_str()) && host.len() > suffix.len()
            }
            HostPattern::SelfApp => false,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(low, high) => (low..=high).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// A host as compared: a name in lower case; an IP address in its canonical form, without the
/// brackets a URL puts around an IPv6 literal.
fn canonical_host(host: &str) -> String {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn parse_port(text: &str) -> anyhow::Result<u16> {
    text.parse()
        .with_context(|| format!("`{text}` is not a port number"))
}

/// A component's whole allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses the entries, after their `{{ var }}` templates have been resolved.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let entries = entries
            .iter()
            .map(|entry| AllowedHost::parse(entry).with_context(|| format!("`{entry}`")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { entries })
    }

    /// Whether `scheme://host:port` may be reached; `port` defaults to the scheme's.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.entries
            .iter()
            .any(|entry| entry.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_host_with_default_port() {
        let allowed = hosts(&["https://api.example.com"]);
        assert!(allowed.allows("https", "api.example.com", None));
        assert!(allowed.allows("https", "API.example.com", Some(443)));
        assert!(!allowed.allows("https", "api.example.com", Some(8443)));
        assert!(!allowed.allows("http", "api.example.com", None));
        assert!(!allowed.allows("https", "evil.com", None));
    }

    #[test]
    fn wildcards_and_ranges() {
        let allowed = hosts(&[
            "*://*.spin.internal:*",
            "http://127.0.0.1:8000..8100",
            "postgres://db",
        ]);
        assert!(allowed.allows("http", "users.spin.internal", None));
        assert!(!allowed.allows("http", "spin.internal", None));
        assert!(allowed.allows("http", "127.0.0.1", Some(8080)));
        assert!(!allowed.allows("http", "127.0.0.1", Some(8100)));
        assert!(allowed.allows("postgres", "db", None));
        assert!(!allowed.allows("postgres", "db", Some(5433)));
    }

    #[test]
    fn ipv6_literals_match_however_written() {
        let allowed = hosts(&["http://[::1]:8080", "postgres://[2001:db8::0:1]"]);
        assert!(allowed.allows("http", "[::1]", Some(8080)), "a URL's host");
        assert!(
            allowed.allows("http", "::1", Some(8080)),
            "a socket address's"
        );
        assert!(allowed.allows("http", "[0:0::1]", Some(8080)));
        assert!(!allowed.allows("http", "[::2]", Some(8080)));
        assert!(allowed.allows("postgres", "2001:db8::1", None));
    }

    #[test]
    fn a_template_left_after_rendering_is_refused() {
        for entry in ["https://{{x}}", "*://{{ host }}:*", "http://a}}"] {
            let message = format!("{:#}", AllowedHost::parse(entry).unwrap_err());
            assert!(
                message.contains("cannot itself be a template"),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn self_is_not_a_host_name() {
        let allowed = hosts(&["http://self"]);
        assert!(!allowed.allows("http", "self", None));
    }

    #[test]
    fn malformed_entries_are_explained() {
        for (entry, expected) in [
            ("example.com", "missing a scheme"),
            ("https://example.com/path", "paths are not allowed"),
            ("https://ex*ample.com", "`*` may only"),
            ("https://example.com:http", "not a port"),
            ("foo://example.com", "no well-known port"),
        ] {
            let message = format!("{:#}", AllowedHost::parse(entry).unwrap_err());
            assert!(message.contains(expected), "{entry}: {message}");
        }
    }
}
