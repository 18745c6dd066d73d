//! The seed's `GET /` answer: who asked, through which proxies, and where it was served.

use serde_json::{Value, json};
use spin_sdk::http::Request;

/// `{message, timestamp, user_ip, proxy_chain, hostname, os, pod_ip, kafka_status}`.
/// The host name and pod IP come from variables (`pod_name`, `pod_ip`; SpinKube sets them from
/// the pod's fields), as a WebAssembly component cannot ask the operating system.
pub async fn answer(request: &Request, kafka_up: bool) -> Value {
    let header = |name| guest_kit::request::header(request, name);
    let kafka_status = if kafka_up { "UP" } else { "NOT UP" };
    json!({
        "message": format!("Hello, Kafka is {kafka_status}"),
        "timestamp": timestamp(),
        "user_ip": client_ip(&header("spin-client-addr")),
        "proxy_chain": header("x-forwarded-for"),
        "hostname": variable_or_unknown("pod_name").await,
        "os": "WASI",
        "pod_ip": variable_or_unknown("pod_ip").await,
        "kafka_status": kafka_status,
    })
}

/// `2026-02-03T10:30:45.123456Z`.
pub fn timestamp() -> String {
    guest_kit::time::utc_now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The IP of Spin's `spin-client-addr` (`ip:port`, `[v6]:port`).
pub fn client_ip(address: &str) -> String {
    match address.rsplit_once(':') {
        Some((ip, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            ip.trim_start_matches('[').trim_end_matches(']').to_owned()
        }
        _ => address.to_owned(),
    }
}

async fn variable_or_unknown(name: &str) -> String {
    guest_kit::variable(name)
        .await
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn client_ip_drops_the_port() {
        assert_eq!(client_ip("192.168.1.100:51234"), "192.168.1.100");
        assert_eq!(client_ip("[::1]:8080"), "::1");
        assert_eq!(client_ip(""), "");
    }
}
