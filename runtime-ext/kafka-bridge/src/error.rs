//! The bridge's errors, answered as the protocol's [`ErrorBody`]: `{"error": "...", "field": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kafka_bridge_protocol::ErrorBody;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("{field}: {problem}"),
            field: Some(field),
        }
    }

    pub fn not_found(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            field: Some(field),
        }
    }

    /// A dependency (Kafka, MongoDB) is down: the caller may retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong bearer token (KAFKA_BRIDGE_SECRET)".into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message.into(),
            field: self.field.map(Into::into),
        };
        (self.status, Json(body)).into_response()
    }
}

/// Turns axum's JSON extraction failures into the same JSON error, naming the body.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        Self {
            status: rejection.status(),
            message: format!("body: {}", rejection.body_text()),
            field: Some("body"),
        }
    }
}
