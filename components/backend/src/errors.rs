//! `GET /error`: the seed's "random error for testing error handling", documented here so a
//! client knows what it may get. Each is a JSON body `{"error", "type"}`.

use guest_kit::{Response, json};
use http::StatusCode;

/// The errors `/error` picks from, uniformly: (type, status, message).
pub const CATALOGUE: [(&str, StatusCode, &str); 4] = [
    (
        "bad_request",
        StatusCode::BAD_REQUEST,
        "Simulated client error",
    ),
    (
        "not_found",
        StatusCode::NOT_FOUND,
        "Simulated missing resource",
    ),
    (
        "internal",
        StatusCode::INTERNAL_SERVER_ERROR,
        "Simulated internal server error",
    ),
    (
        "unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "Simulated dependency outage",
    ),
];

/// Answers with the named error, or a random one; an unknown name is a 400 listing the names.
pub fn respond(requested: Option<String>) -> Response {
    let index = match requested {
        None => random_index(CATALOGUE.len()),
        Some(name) => match CATALOGUE.iter().position(|(kind, ..)| *kind == name) {
            Some(index) => index,
            None => {
                let names: Vec<&str> = CATALOGUE.iter().map(|(kind, ..)| *kind).collect();
                return guest_kit::ApiError::invalid(
                    "type",
                    format!("must be one of {}", names.join(", ")),
                )
                .into_response();
            }
        },
    };
    let (kind, status, message) = CATALOGUE[index];
    json(
        status,
        &serde_json::json!({ "error": message, "type": kind }),
    )
}

/// A random index below `len`, from `wasi:random` (std seeds its hashers from it).
fn random_index(len: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (random % len as u64) as usize
}
