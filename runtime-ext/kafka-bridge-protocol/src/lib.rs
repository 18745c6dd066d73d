//! # kafka-bridge-protocol
//!
//! What kafka-bridge (`runtime-ext/kafka-bridge`) and the components (through guest-kit's
//! `bridge`) say to each other over HTTP, written once for both sides:
//!
//! - a [`Delivery`]: the batch the bridge POSTs to a component's consumer route, at most
//!   [`MAX_DELIVERY_BODY`] bytes;
//! - what the route's answer means to the bridge ([`Outcome::of`]): delivered, deliver the same
//!   batch again later, or a message refused;
//! - the JSON error both sides answer with ([`ErrorBody`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The largest delivery: a full batch of the bridge's default size. The bridge's own request
/// limit is the same, so whatever a component may produce, it can also be delivered.
pub const MAX_DELIVERY_BODY: usize = 16 * 1024 * 1024;

/// The messages of one topic for one consumer group, in order per partition.
///
/// The bridge serializes it from borrowed messages; a component reads an owned one
/// (`Delivery<'static>`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivery<'a> {
    pub topic: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub messages: Vec<Message<'a>>,
}

/// One delivered Kafka message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Message<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Milliseconds since the epoch, when the producer set it.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// The payload: JSON, which the bridge checked, passed on as its text.
    pub value: Cow<'a, RawValue>,
}

impl Message<'_> {
    /// `topic/partition/offset`, for error messages and dead letters.
    pub fn origin(&self, topic: &str) -> String {
        format!("{topic}/{}/{}", self.partition, self.offset)
    }

    /// The payload as a `T`.
    pub fn value_as<'de, T: Deserialize<'de>>(&'de self) -> serde_json::Result<T> {
        serde_json::from_str(self.value.get())
    }
}

/// What a consumer route's answer means for the messages it was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: the bridge commits them.
    Delivered,
    /// A dependency is down or the deployment is not right yet (wrong secret, route not
    /// deployed): never the messages' fault. The bridge delivers the same batch again later,
    /// without limit, and never dead-letters it.
    Unavailable,
    /// A message is at fault. The bridge retries a batch one message at a time, then retries
    /// the message up to its subscription's `max_attempts` and dead-letters it; `permanent`
    /// (a 4xx) means no retry can help, so it is dead-lettered at once.
    Rejected { permanent: bool },
}

impl Outcome {
    pub fn of(status: StatusCode) -> Self {
        match status {
            _ if status.is_success() => Self::Delivered,
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED => Self::Unavailable,
            _ => Self::Rejected {
                permanent: status.is_client_error(),
            },
        }
    }
}

/// The body of every error answer, the bridge's and the components': `{"error": "...",
/// "field": "..."}`, `field` naming the request field at fault when there is one.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody<'a> {
    pub error: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_deliver_pause_refuse_or_fail() {
        let outcome = |code: u16| match Outcome::of(StatusCode::from_u16(code).unwrap()) {
            Outcome::Delivered => "delivered",
            Outcome::Unavailable => "pause",
            Outcome::Rejected { permanent: true } => "refused",
            Outcome::Rejected { permanent: false } => "failed",
        };
        for code in [200, 201, 204] {
            assert_eq!(outcome(code), "delivered", "{code}");
        }
        for code in [503, 502, 504, 429, 401, 403, 404, 405] {
            assert_eq!(outcome(code), "pause", "{code}");
        }
        for code in [400, 409, 413, 422] {
            assert_eq!(outcome(code), "refused", "{code}");
        }
        for code in [500, 501, 507] {
            assert_eq!(outcome(code), "failed", "{code}");
        }
    }

    #[test]
    fn a_borrowed_delivery_reads_back_owned_with_its_payload_verbatim() {
        let payload = RawValue::from_string(r#"{"price": 1.50, "n": [1,2]}"#.into()).unwrap();
        let sent = Delivery {
            topic: "purchases".into(),
            group: "g".into(),
            messages: vec![Message {
                partition: 2,
                offset: 41,
                key: Some("u1".into()),
                headers: BTreeMap::from([("traceparent".into(), "00-ab-cd-01".into())]),
                timestamp: None,
                value: Cow::Borrowed(&payload),
            }],
        };
        let text = serde_json::to_string(&sent).unwrap();
        let read: Delivery<'static> = serde_json::from_str(&text).unwrap();
        let message = &read.messages[0];
        assert_eq!((&*read.topic, &*read.group), ("purchases", "g"));
        assert_eq!((message.partition, message.offset), (2, 41));
        assert_eq!(message.headers["traceparent"], "00-ab-cd-01");
        // The text is passed on untouched: `1.50` stays `1.50`.
        assert_eq!(message.value.get(), r#"{"price": 1.50, "n": [1,2]}"#);
        assert_eq!(message.origin(&read.topic), "purchases/2/41");
        let value: serde_json::Value = message.value_as().unwrap();
        assert_eq!(value["n"][1], 2);
    }

    #[test]
    fn a_delivery_without_optional_fields_reads() {
        let read: Delivery<'static> = serde_json::from_str(
            r#"{"topic":"t","group":"g","messages":[{"partition":0,"offset":1,"key":null,"value":3}]}"#,
        )
        .unwrap();
        assert!(read.messages[0].headers.is_empty());
        assert_eq!(read.messages[0].timestamp, None);
        assert_eq!(read.messages[0].value.get(), "3");
    }

    #[test]
    fn an_error_body_names_its_field_only_when_it_has_one() {
        let plain = ErrorBody {
            error: "down".into(),
            field: None,
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"error":"down"}"#
        );
        let field = ErrorBody {
            error: "price: too big".into(),
            field: Some("price".into()),
        };
        assert_eq!(
            serde_json::to_string(&field).unwrap(),
            r#"{"error":"price: too big","field":"price"}"#
        );
    }
}
