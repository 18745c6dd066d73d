//! The JSON error every component answers with, the protocol's [`ErrorBody`]:
//! `{"error": "...", "field": "..."}`, as the kafka-bridge does.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use kafka_bridge_protocol::ErrorBody;
use spin_sdk::http::FullBody;

/// What every route answers: a complete body, JSON or text.
pub type Response = http::Response<FullBody<Bytes>>;

/// A request that cannot be served, as the status and JSON body the client gets.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<String>,
    /// For a 405: the methods the route serves, sent as the `Allow` header (RFC 9110 requires it).
    pub allow: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
            allow: None,
        }
    }

    /// A 400 naming the field at fault: `{"error": "price: must be ...", "field": "price"}`.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("{field}: {problem}"),
            field: Some(field.to_owned()),
            allow: None,
        }
    }

    /// This error, for a field nested in `prefix` (e.g. `records[3]` + `type`).
    pub fn within(self, prefix: &str) -> Self {
        match &self.field {
            Some(field) => {
                let field = format!("{prefix}.{field}");
                let problem = self
                    .message
                    .split_once(": ")
                    .map_or(self.message.as_str(), |(_, p)| p);
                Self::invalid(&field, problem)
            }
            None => self,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A 405 for a route that serves only `allow` (e.g. `"GET, POST"`), which it names in `Allow`.
    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        Self {
            allow: Some(allow.into()),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        }
    }

    /// A dependency is down or refused us: the client may retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message.into(),
            field: self.field.map(Into::into),
        };
        let mut response = json(self.status, &body);
        // Method names are tokens, always a valid header value.
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::try_from(a).ok()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    // Serializing a `serde_json::Value` or a derived struct cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(FullBody::new(bytes.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
