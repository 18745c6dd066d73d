//! # Catalogue
//!
//! The Craftista product catalogue (seed `000`) as a Spin component.
//!
//! Routes (relative to the component's route `/api/products/...`):
//! - `GET /api/products`: every product, as a JSON array.
//! - `GET /api/products/{id}`: one product, or a JSON 404 for an unknown or malformed id.
//!
//! # Layout
//! - [`products`]: the embedded catalogue and id parsing.

mod products;

use spin_sdk::http::{IntoResponse, Json, Method, Request, StatusCode};
use spin_sdk::http_service;

/// The header real Spin and spinyard set to the part of the path after the matched route.
const PATH_INFO_HEADER: &str = "spin-path-info";

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    if request.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported here");
    }
    let path_info = request
        .headers()
        .get(PATH_INFO_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let catalogue = match products::embedded() {
        Ok(catalogue) => catalogue,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("catalogue unreadable: {e}"),
            );
        }
    };
    match path_info.trim_matches('/') {
        "" => (StatusCode::OK, Json(serde_json::json!(catalogue))),
        raw_id => match products::parse_id(raw_id) {
            Ok(id) => match catalogue.into_iter().find(|product| product.id == id) {
                Some(product) => (StatusCode::OK, Json(serde_json::json!(product))),
                None => not_found(raw_id),
            },
            Err(products::IdError::Malformed) => not_found(raw_id),
        },
    }
}

fn not_found(raw_id: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "Product not found", "id": raw_id })),
    )
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Json<serde_json::Value>) {
    (status, Json(serde_json::json!({ "error": message })))
}
