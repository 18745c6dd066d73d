//! The user rules: what a username and an email must look like, and that neither is taken.

use guest_kit::{ApiError, ApiResult, Response, db, fields, json};
use http::StatusCode;
use serde_json::{Map, Value, json};
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

/// Usernames: 3 to 50 of `A-Z a-z 0-9 _ . -`.
const USERNAME_CHARS: &str = "letters, digits, `_`, `.` and `-`";

/// The problems with a candidate user, field by field (empty when it is well-formed).
pub fn problems(body: &Map<String, Value>) -> Vec<ApiError> {
    let mut problems = Vec::new();
    match fields::text(body, "username", 50) {
        Err(e) => problems.push(e),
        Ok(name) if name.chars().count() < 3 => problems.push(ApiError::invalid(
            "username",
            "must be at least 3 characters",
        )),
        Ok(name)
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) =>
        {
            problems.push(ApiError::invalid(
                "username",
                format!("may contain only {USERNAME_CHARS}"),
            ))
        }
        Ok(_) => {}
    }
    match fields::text(body, "email", 255) {
        Err(e) => problems.push(e),
        Ok(email) if !is_email(&email) => problems.push(ApiError::invalid(
            "email",
            "must be an address like name@example.com",
        )),
        Ok(_) => {}
    }
    problems
}

/// `local@domain.tld`, no spaces, one `@`: what a form would accept, not full RFC 5322.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

fn rejection(status: StatusCode, problems: &[ApiError]) -> Response {
    let first = &problems[0];
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({ "field": p.field, "message": p.message }))
        .collect();
    json(
        status,
        &json!({ "valid": false, "error": first.message, "field": first.field, "errors": errors }),
    )
}

/// `POST /api/v1/validate/user`.
pub async fn validate(request: Request) -> ApiResult<Response> {
    let body = guest_kit::request::json_object(request).await?;
    let problems = problems(&body);
    if !problems.is_empty() {
        return Ok(rejection(StatusCode::BAD_REQUEST, &problems));
    }
    let username = fields::text(&body, "username", 50)?;
    let email = fields::text(&body, "email", 255)?;
    let taken = db::query(
        "SELECT username = $1 AS username_taken, lower(email) = lower($2) AS email_taken \
             FROM users WHERE username = $1 OR lower(email) = lower($2)",
        vec![
            ParameterValue::Str(username.clone()),
            ParameterValue::Str(email.clone()),
        ],
    )
    .await?;
    let mut conflicts = Vec::new();
    if taken
        .iter()
        .any(|row| row.get::<bool>("username_taken") == Some(true))
    {
        conflicts.push(ApiError::invalid("username", "is already taken"));
    }
    if taken
        .iter()
        .any(|row| row.get::<bool>("email_taken") == Some(true))
    {
        conflicts.push(ApiError::invalid("email", "is already registered"));
    }
    if !conflicts.is_empty() {
        return Ok(rejection(StatusCode::CONFLICT, &conflicts));
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "valid": true, "username": username, "email": email }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: Value) -> Vec<Option<String>> {
        problems(value.as_object().unwrap())
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn well_formed_users_pass() {
        assert!(
            check(json!({ "username": "testuser123", "email": "test@example.com" })).is_empty()
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            check(json!({})),
            [Some("username".into()), Some("email".into())]
        );
        assert_eq!(
            check(json!({ "username": "ab", "email": "x@y.z" })),
            [Some("username".into())]
        );
        assert_eq!(
            check(json!({ "username": "bob'; DROP TABLE users;--", "email": "a b@c.d" })),
            [Some("username".into()), Some("email".into())]
        );
        assert_eq!(
            check(json!({ "username": "bob", "email": "bob@localhost" })),
            [Some("email".into())]
        );
    }
}
