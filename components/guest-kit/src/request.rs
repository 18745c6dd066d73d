//! The request path, query parameters, and JSON bodies read within a limit.

use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::{Map, Value};
use spin_sdk::http::Request;

use crate::ApiError;

/// The largest JSON body a component reads (1 MiB); larger ones get a 413.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The request's path, as the client sent it (Spin passes the full path to the component).
pub fn path(request: &Request) -> &str {
    request.uri().path()
}

/// Header `name` as text; empty when absent or not text.
pub fn header(request: &Request, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

pub fn percent_decode(text: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? << 4 | hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the body as JSON (any `Content-Type`), at most [`MAX_JSON_BODY`] bytes.
pub async fn json_body(request: Request) -> Result<Value, ApiError> {
    json_body_within(request, MAX_JSON_BODY).await
}

/// Reads the body as JSON of type `T` (any `Content-Type`), at most `limit` bytes (413 beyond).
pub async fn json_body_within<T: DeserializeOwned>(
    request: Request,
    limit: usize,
) -> Result<T, ApiError> {
    let body = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body: larger than {limit} bytes"),
                )
            } else {
                ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    format!("body: unreadable: {e}"),
                )
            }
        })?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        // JSON, but not of `T`'s shape: serde names the field.
        Category::Data => ApiError::invalid("body", e),
        _ => ApiError::invalid("body", format!("malformed JSON: {e}")),
    })
}

/// Reads the body as a JSON object.
pub async fn json_object(request: Request) -> Result<Map<String, Value>, ApiError> {
    match json_body(request).await? {
        Value::Object(object) => Ok(object),
        other => Err(ApiError::invalid(
            "body",
            format!(
                "expected a JSON object, got {}",
                crate::fields::kind(&other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_percent_escapes_and_plus() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%e2%82%ac%"), "€%");
    }
}
