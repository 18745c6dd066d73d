//! Users: listing, and creation after the business-logic service accepted them.

use guest_kit::db::Row;
use guest_kit::{ApiError, ApiResult, Response, Trace, db, fields, json};
use http::StatusCode;
use serde_json::Value;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::chain;

/// `GET /api/v1/users` without `limit`, and its upper bound.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// A user as the API shows it (fields in the order the original's sorted JSON has them).
#[derive(serde::Serialize)]
struct User {
    created_at: Option<String>,
    email: Option<String>,
    id: Option<i32>,
    username: Option<String>,
}

fn user(row: &Row) -> User {
    User {
        created_at: row.get("created_at").map(guest_kit::time::isoformat),
        email: row.get("email"),
        id: row.get("id"),
        username: row.get("username"),
    }
}

/// `GET /api/v1/users`' body.
#[derive(serde::Serialize)]
struct Users {
    count: usize,
    users: Vec<User>,
}

/// `GET /api/v1/users?limit=N`: by id.
pub async fn list(limit: Option<&str>) -> ApiResult<Response> {
    let limit = fields::limit(limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let rows = db::query(
        "SELECT id, username, email, created_at FROM users ORDER BY id LIMIT $1",
        vec![ParameterValue::Int64(limit)],
    )
    .await?;
    let users: Vec<User> = rows.iter().map(user).collect();
    Ok(json(
        StatusCode::OK,
        &Users {
            count: users.len(),
            users,
        },
    ))
}

/// `POST /api/v1/users`: business-logic validates (format and uniqueness), then we insert;
/// a duplicate that slips in between is still a 409, from the unique constraints.
pub async fn create(request: Request, trace: &Trace) -> ApiResult<Response> {
    let body = guest_kit::request::json_object(request).await?;
    let verdict = chain::post_json(
        chain::BUSINESS_LOGIC,
        "/api/v1/validate/user",
        &Value::Object(body.clone()),
        trace,
    )
    .await?;
    if verdict.status() != StatusCode::OK {
        return Ok(verdict);
    }
    let username = fields::text(&body, "username", 50)?;
    let email = fields::text(&body, "email", 255)?;
    let rows = db::connect()
        .await?
        .read_rows(
            "INSERT INTO users (username, email) VALUES ($1, $2) RETURNING id, username, email, created_at",
            vec![ParameterValue::Str(username), ParameterValue::Str(email)],
        )
        .await;
    match rows {
        Ok(rows) => match rows.first() {
            Some(row) => Ok(json(StatusCode::CREATED, &user(row))),
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "insert returned no row",
            )),
        },
        Err(e) if db::sqlstate(&e) == Some("23505") => {
            let field = if db::describe(&e).contains("email") {
                "email"
            } else {
                "username"
            };
            let mut conflict = ApiError::invalid(field, "is already taken");
            conflict.status = StatusCode::CONFLICT;
            Err(conflict)
        }
        Err(e) => Err(db::failure(e)),
    }
}
