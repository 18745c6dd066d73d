//! Typed, named validation of JSON object fields: each failure is a 400 naming the field.

use serde_json::{Map, Value};

use crate::ApiError;

/// How a JSON value is described in an error ("a string", "null", ...).
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a Value, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid(field, "is required")),
        Some(value) => Ok(value),
    }
}

/// A required string, trimmed, 1..=`max_chars` characters.
pub fn text(
    object: &Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<String, ApiError> {
    let value = required(object, field)?;
    let Value::String(text) = value else {
        return Err(ApiError::invalid(
            field,
            format!("must be a string, got {}", kind(value)),
        ));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL characters"));
    }
    Ok(text.to_owned())
}

/// An optional string: absent or null gives `default`.
pub fn optional_text(
    object: &Map<String, Value>,
    field: &str,
    max_chars: usize,
    default: &str,
) -> Result<String, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(_) => text(object, field, max_chars),
    }
}

/// A required finite number ≥ `min` (JSON cannot carry NaN or infinities; huge exponents
/// are rejected when the body is parsed).
pub fn number_at_least(
    object: &Map<String, Value>,
    field: &str,
    min: f64,
) -> Result<f64, ApiError> {
    let value = required(object, field)?;
    let number = value
        .as_f64()
        .filter(|_| value.is_number())
        .ok_or_else(|| {
            ApiError::invalid(field, format!("must be a number, got {}", kind(value)))
        })?;
    if !number.is_finite() {
        return Err(ApiError::invalid(field, "must be a finite number"));
    }
    if number < min {
        return Err(ApiError::invalid(field, format!("must be at least {min}")));
    }
    Ok(number)
}

/// A required number > 0.
pub fn positive_number(object: &Map<String, Value>, field: &str) -> Result<f64, ApiError> {
    let number = number_at_least(object, field, 0.0)?;
    if number == 0.0 {
        return Err(ApiError::invalid(field, "must be greater than 0"));
    }
    Ok(number)
}

/// A required positive integer that fits PostgreSQL's `integer`.
pub fn id(object: &Map<String, Value>, field: &str) -> Result<i32, ApiError> {
    let value = required(object, field)?;
    value
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid(field, format!("must be a positive integer, got {value}")))
}

/// The `limit` query parameter: absent or empty gives `default`, else a whole number in `1..=max`.
pub fn limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    query_number(raw, "limit", default, 1..=max)
}

/// An `offset` query parameter: absent means 0; otherwise a whole number from 0 to
/// 1,000,000,000 (a page further than that is a mistake), or a 400 naming `offset`.
pub fn offset(raw: Option<&str>) -> Result<i64, ApiError> {
    query_number(raw, "offset", 0, 0..=1_000_000_000)
}

/// A whole-number query parameter `name`: absent or empty gives `default`; outside `range`, or
/// not a number, a 400 naming it.
fn query_number(
    raw: Option<&str>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    match raw {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                let (low, high) = (range.start(), range.end());
                ApiError::invalid(
                    name,
                    format!("must be a whole number from {low} to {high}, got `{raw}`"),
                )
            }),
    }
}

/// Whether a NUL character is in any string or key of `value`: PostgreSQL's `jsonb` cannot
/// store one (a JSON text holding the six characters `\u0000` as such is fine).
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(object) => object
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A path segment as a positive `integer` id; anything else is a 404 naming `what`.
pub fn path_id(segment: &str, what: &str) -> Result<i32, ApiError> {
    segment
        .parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::not_found(format!("{what} not found: `{segment}` is not a valid id"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn text_names_the_field_and_problem() {
        let body = object(json!({ "name": 7, "empty": "  ", "long": "abcdef" }));
        assert_eq!(
            text(&body, "name", 10).unwrap_err().message,
            "name: must be a string, got a number"
        );
        assert_eq!(
            text(&body, "empty", 10).unwrap_err().message,
            "empty: must not be empty"
        );
        assert_eq!(
            text(&body, "long", 3).unwrap_err().message,
            "long: must be at most 3 characters"
        );
        assert_eq!(
            text(&body, "missing", 3).unwrap_err().field.as_deref(),
            Some("missing")
        );
    }

    #[test]
    fn numbers_reject_strings_negatives_and_zero_where_asked() {
        let body = object(json!({ "a": "1", "b": -0.5, "c": 0, "d": 2.5 }));
        assert!(number_at_least(&body, "a", 0.0).is_err());
        assert!(number_at_least(&body, "b", 0.0).is_err());
        assert_eq!(number_at_least(&body, "c", 0.0).unwrap(), 0.0);
        assert!(positive_number(&body, "c").is_err());
        assert_eq!(positive_number(&body, "d").unwrap(), 2.5);
    }

    #[test]
    fn ids_are_positive_32_bit_integers() {
        let body = object(json!({ "a": 1, "b": 1.5, "c": 3_000_000_000i64, "d": "1", "e": 0 }));
        assert_eq!(id(&body, "a").unwrap(), 1);
        for field in ["b", "c", "d", "e"] {
            assert!(id(&body, field).is_err(), "{field}");
        }
        assert!(path_id("12abc", "product").is_err());
        assert_eq!(limit(None, 10, 100).unwrap(), 10);
        assert_eq!(limit(Some("100"), 10, 100).unwrap(), 100);
        for raw in ["0", "101", "ten", "-1"] {
            assert_eq!(
                limit(Some(raw), 10, 100).unwrap_err().field.as_deref(),
                Some("limit")
            );
        }
        assert_eq!(path_id("12", "product").unwrap(), 12);
    }

    #[test]
    fn nul_characters_are_found_at_any_depth_but_not_in_escaped_text() {
        assert!(contains_nul(&json!({ "a": [1, { "b": "x\u{0}y" }] })));
        assert!(contains_nul(&json!({ "k\u{0}": 1 })));
        assert!(!contains_nul(&json!({ "a": ["\\u0000", 1.5, null, true] })));
    }
}
