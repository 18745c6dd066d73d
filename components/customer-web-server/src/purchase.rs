//! A purchase request, validated with the seed's exact messages.

use guest_kit::ApiError;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The fields `POST /buy` requires, in the order the seed's message lists them.
const REQUIRED: [&str; 3] = ["username", "userid", "price"];
/// User ids travel in URL paths (`/getAllUserBuys/{userid}`): kept short, without `/`.
const MAX_ID_LENGTH: usize = 128;
/// User names are labels, not documents.
const MAX_NAME_LENGTH: usize = 200;
/// The highest price: a user's `total_spent` must stay a finite number (a float sum of prices
/// near `f64::MAX` overflows to infinity, which JSON cannot carry). The management API refuses
/// a purchase above it too (`store::MAX_PRICE` there).
pub const MAX_PRICE: f64 = 1e12;

/// The request header that makes `POST /buy` safe to retry (README, "Retrying a purchase").
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const MAX_KEY_LENGTH: usize = 255;
/// Purchase ids derived from an idempotency key are UUIDv5 names in this namespace.
const PURCHASE_NAMESPACE: Uuid = uuid::uuid!("ff0bb6c7-fcf6-4a97-8969-91d8133cc089");

/// The message published to the `purchases` topic, and the document the management API stores.
#[derive(Debug, Serialize, PartialEq)]
pub struct Purchase {
    /// The idempotency key: a redelivered message is stored once.
    pub purchase_id: String,
    pub username: String,
    pub userid: String,
    pub price: f64,
    pub timestamp: String,
}

/// Validates a `/buy` body like the seed (`Missing required fields: ['userid', 'price']`,
/// `Price must be a valid number`), and more strictly: names must be non-empty strings, the
/// price a finite, non-negative number (or numeric string, as Python's `float()` takes).
/// `idempotency_key` is the request's header, if any (see [`purchase_id`]).
pub fn validate(
    body: &Map<String, Value>,
    idempotency_key: Option<&[u8]>,
    timestamp: String,
) -> Result<Purchase, ApiError> {
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|field| !body.contains_key(*field))
        .collect();
    if let Some(first) = missing.first() {
        let listed: Vec<String> = missing.iter().map(|f| format!("'{f}'")).collect();
        return Err(seed_error(
            first,
            format!("Missing required fields: [{}]", listed.join(", ")),
        ));
    }
    let username = name(body, "username", "Username", MAX_NAME_LENGTH)?;
    let userid = name(body, "userid", "User id", MAX_ID_LENGTH)?;
    if userid.contains('/') {
        return Err(seed_error("userid", "User id must not contain '/'"));
    }
    let price = match &body["price"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|p| p.is_finite())
    .ok_or_else(|| seed_error("price", "Price must be a valid number"))?;
    if price < 0.0 {
        return Err(seed_error("price", "Price must not be negative"));
    }
    if price > MAX_PRICE {
        return Err(seed_error(
            "price",
            format!("Price must be at most {MAX_PRICE}"),
        ));
    }
    let purchase_id = purchase_id(&userid, idempotency_key)?;
    Ok(Purchase {
        purchase_id,
        username,
        userid,
        price,
        timestamp,
    })
}

/// A new random id; or, with an idempotency key, the id derived from the user and the key: a
/// retry of the same purchase publishes the same id, which the consumer stores once.
pub fn purchase_id(userid: &str, idempotency_key: Option<&[u8]>) -> Result<String, ApiError> {
    let Some(key) = idempotency_key else {
        return Ok(Uuid::new_v4().to_string());
    };
    let printable = key.iter().all(|b| (b' '..=b'~').contains(b));
    if key.trim_ascii().is_empty() || key.len() > MAX_KEY_LENGTH || !printable {
        return Err(ApiError {
            message: format!(
                "Idempotency-Key: must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
            ),
            ..ApiError::invalid("Idempotency-Key", "")
        });
    }
    let name = [userid.as_bytes(), b"\n", key].concat();
    Ok(Uuid::new_v5(&PURCHASE_NAMESPACE, &name).to_string())
}

fn name(
    body: &Map<String, Value>,
    field: &str,
    label: &str,
    max_chars: usize,
) -> Result<String, ApiError> {
    match &body[field] {
        Value::String(s) if s.trim().is_empty() => Err(seed_error(
            field,
            format!("{label} must be a non-empty string"),
        )),
        Value::String(s) if s.chars().count() > max_chars => Err(seed_error(
            field,
            format!("{label} must be at most {max_chars} characters"),
        )),
        Value::String(s) => Ok(s.clone()),
        _ => Err(seed_error(
            field,
            format!("{label} must be a non-empty string"),
        )),
    }
}

/// A 400 whose message is exactly the seed's, with the field named beside it.
fn seed_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        message: message.into(),
        ..ApiError::invalid(field, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<Purchase, ApiError> {
        let body: Map<String, Value> = serde_json::from_str(body).unwrap();
        validate(&body, None, "2024-01-15T10:30:00.123456".into())
    }

    #[test]
    fn an_idempotency_key_fixes_the_id_per_user() {
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"username": "j", "userid": "u1", "price": 1}"#).unwrap();
        let once = |key: &[u8]| validate(&body, Some(key), String::new()).map(|p| p.purchase_id);
        assert_eq!(once(b"order-7").unwrap(), once(b"order-7").unwrap());
        assert_ne!(once(b"order-7").unwrap(), once(b"order-8").unwrap());
        assert_ne!(
            once(b"order-7").unwrap(),
            purchase_id("u2", Some(b"order-7")).unwrap(),
            "another user's key is another purchase"
        );
        let random = |_| validate(&body, None, String::new()).unwrap().purchase_id;
        assert_ne!(random(1), random(2));
        for bad in [&b""[..], b"  ", b"caf\xc3\xa9", &[b'k'; 256]] {
            let error = once(bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("Idempotency-Key"), "{bad:?}");
            assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn seed_messages() {
        let error = check(r#"{"username": "john"}"#).unwrap_err();
        assert_eq!(
            error.message,
            "Missing required fields: ['userid', 'price']"
        );
        assert_eq!(error.field.as_deref(), Some("userid"));
        let error =
            check(r#"{"username": "john", "userid": "user123", "price": "invalid"}"#).unwrap_err();
        assert_eq!(error.message, "Price must be a valid number");
        assert_eq!(error.field.as_deref(), Some("price"));
    }

    #[test]
    fn prices_as_python_float_takes_them_but_finite_and_non_negative() {
        let ok = check(r#"{"username": "john", "userid": "u", "price": " 15.50 "}"#).unwrap();
        assert_eq!(ok.price, 15.5);
        for bad in [r#""nan""#, r#""inf""#, "true", "null", "[1]"] {
            let body = format!(r#"{{"username": "j", "userid": "u", "price": {bad}}}"#);
            assert_eq!(
                check(&body).unwrap_err().message,
                "Price must be a valid number",
                "{bad}"
            );
        }
        let negative = check(r#"{"username": "j", "userid": "u", "price": -1}"#).unwrap_err();
        assert_eq!(negative.message, "Price must not be negative");
        let huge = check(r#"{"username": "j", "userid": "u", "price": 1.7976931348623157e308}"#);
        assert_eq!(
            huge.unwrap_err().message,
            "Price must be at most 1000000000000"
        );
        assert!(check(r#"{"username": "j", "userid": "u", "price": "1e12"}"#).is_ok());
    }

    #[test]
    fn names_must_be_non_empty_strings() {
        let error = check(r#"{"username": " ", "userid": "u", "price": 1}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("username"));
        let error = check(r#"{"username": "j", "userid": 7, "price": 1}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("userid"));
        let long = format!(
            r#"{{"username": "j", "userid": "{}", "price": 1}}"#,
            "u".repeat(129)
        );
        assert_eq!(check(&long).unwrap_err().field.as_deref(), Some("userid"));
        let long = format!(
            r#"{{"username": "{}", "userid": "u", "price": 1}}"#,
            "j".repeat(201)
        );
        assert_eq!(check(&long).unwrap_err().field.as_deref(), Some("username"));
        let slash = r#"{"username": "j", "userid": "a/b", "price": 1}"#;
        assert_eq!(check(slash).unwrap_err().field.as_deref(), Some("userid"));
    }
}
