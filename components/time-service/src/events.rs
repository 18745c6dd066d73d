//! The events: what one HTTP exchange sends to Kafka (fire-and-forget, as the seed's producer
//! does), custom events, and storing the events the bridge delivers back.

use std::time::Instant;

use guest_kit::bridge::{Bridge, Delivered, Delivery, Outgoing};
use guest_kit::{ApiError, ApiResult, Log, Trace, db, fields, variable};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

/// Custom event names are short labels.
const MAX_EVENT_TYPE: usize = 100;

/// One event, as published to the events topic (`event_type` tells which).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
enum Event {
    Request {
        event_id: String,
        request_id: String,
        timestamp: String,
        method: String,
        path: String,
        user_ip: String,
        user_agent: String,
    },
    Response {
        event_id: String,
        request_id: String,
        timestamp: String,
        status_code: u16,
        duration_ms: f64,
    },
    Error {
        event_id: String,
        request_id: String,
        timestamp: String,
        path: String,
        error: String,
    },
    Custom {
        event_id: String,
        timestamp: String,
        name: String,
        data: Value,
    },
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One HTTP exchange's request event, waiting for its response.
pub struct Exchange {
    request_id: String,
    request: Event,
    path: String,
}

impl Exchange {
    pub fn new(request: &Request, path: &str) -> Self {
        let header = |name| guest_kit::request::header(request, name);
        let request_id = new_id();
        Self {
            request: Event::Request {
                event_id: new_id(),
                request_id: request_id.clone(),
                timestamp: crate::metadata::timestamp(),
                method: request.method().to_string(),
                path: path.to_owned(),
                user_ip: crate::metadata::client_ip(&header("spin-client-addr")),
                user_agent: header("user-agent"),
            },
            request_id,
            path: path.to_owned(),
        }
    }

    /// Queues the request, response and (for failures) error events in one call to the bridge.
    /// True when the bridge took them, which is what `kafka_status` reports; a failure is only
    /// logged: the service answers either way.
    pub async fn emit(
        self,
        status: StatusCode,
        error: Option<String>,
        started: Instant,
        log: &Log,
    ) -> bool {
        let timestamp = crate::metadata::timestamp();
        let mut events = vec![Event::Response {
            event_id: new_id(),
            request_id: self.request_id.clone(),
            timestamp: timestamp.clone(),
            status_code: status.as_u16(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        }];
        if let Some(error) = error {
            events.push(Event::Error {
                event_id: new_id(),
                request_id: self.request_id.clone(),
                timestamp,
                path: self.path.clone(),
                error,
            });
        }
        events.insert(0, self.request);
        let sent: ApiResult<()> = async {
            let topic = variable("events_topic").await?;
            let messages: Vec<_> = events
                .iter()
                .map(|event| Outgoing {
                    key: &self.request_id,
                    headers: Default::default(),
                    value: event,
                })
                .collect();
            Bridge::from_variables(log.trace())
                .await?
                .publish_and_forget(&topic, &messages)
                .await
        }
        .await;
        if let Err(e) = &sent {
            log.warning(
                "Kafka unavailable, events not sent",
                json!({ "error": e.message }),
            );
        }
        sent.is_ok()
    }
}

/// `POST /kafka/publish` (`{"event_type": "...", "data": {...}}`): publishes a custom event
/// and waits for Kafka's acknowledgement; 503 when Kafka is down.
pub async fn publish_custom(body: Map<String, Value>, trace: &Trace) -> ApiResult<Value> {
    let name = fields::text(&body, "event_type", MAX_EVENT_TYPE)?;
    let data = body.get("data").cloned().unwrap_or_else(|| json!({}));
    if fields::contains_nul(&data) {
        // The consumer stores it as `jsonb`, which cannot hold one: it would be dead-lettered.
        return Err(ApiError::invalid("data", "must not contain NUL characters"));
    }
    let event_id = new_id();
    let event = Event::Custom {
        event_id: event_id.clone(),
        timestamp: crate::metadata::timestamp(),
        name,
        data,
    };
    let topic = variable("events_topic").await?;
    let message = Outgoing {
        key: &event_id,
        headers: Default::default(),
        value: &event,
    };
    let stored = Bridge::from_variables(trace)
        .await?
        .produce(&topic, &[message])
        .await?;
    let stored = stored
        .first()
        .ok_or_else(|| ApiError::unavailable("Kafka gave no offset"))?;
    Ok(json!({
        "status": "published",
        "event_id": event_id,
        "topic": topic,
        "partition": stored.partition,
        "offset": stored.offset,
    }))
}

/// Columns of one table, filled from a batch of events.
#[derive(Default)]
struct Columns(Vec<Vec<Option<String>>>);

impl Columns {
    fn push(&mut self, row: Vec<String>) {
        self.0.resize_with(row.len(), Vec::new);
        for (column, value) in self.0.iter_mut().zip(row) {
            column.push(Some(value));
        }
    }
}

/// Stores a delivered batch: each table in one statement, and an event already stored (a
/// redelivery) is skipped by its `event_id`. A message that is not an event rejects the batch
/// with a 422 naming it; a database failure is a 503 (the bridge pauses and retries).
pub async fn store(delivery: &Delivery) -> ApiResult<Value> {
    let mut requests = Columns::default();
    let mut responses = Columns::default();
    let mut errors = Columns::default();
    let mut custom = Columns::default();
    for message in &delivery.messages {
        let event: Event = message.parse(&delivery.topic, "an event")?;
        match event {
            Event::Request {
                event_id,
                request_id,
                timestamp,
                method,
                path,
                user_ip,
                user_agent,
            } => requests.push(vec![
                event_id, request_id, timestamp, method, path, user_ip, user_agent,
            ]),
            Event::Response {
                event_id,
                request_id,
                timestamp,
                status_code,
                duration_ms,
            } => responses.push(vec![
                event_id,
                request_id,
                timestamp,
                status_code.to_string(),
                duration_ms.to_string(),
            ]),
            Event::Error {
                event_id,
                request_id,
                timestamp,
                path,
                error,
            } => errors.push(vec![event_id, request_id, timestamp, path, error]),
            Event::Custom {
                event_id,
                timestamp,
                name,
                data,
            } => custom.push(vec![event_id, timestamp, name, data.to_string()]),
        }
    }
    let connection = db::connect().await?;
    let tables = [
        (
            requests,
            "INSERT INTO http_requests (event_id, request_id, occurred_at, method, path, user_ip, user_agent) \
             SELECT e, r, t::timestamptz, m, p, i, a \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
                 AS x(e, r, t, m, p, i, a) \
             ON CONFLICT (event_id) DO NOTHING",
        ),
        (
            responses,
            "INSERT INTO http_responses (event_id, request_id, occurred_at, status_code, duration_ms) \
             SELECT e, r, t::timestamptz, s::integer, d::double precision \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(e, r, t, s, d) \
             ON CONFLICT (event_id) DO NOTHING",
        ),
        (
            errors,
            "INSERT INTO errors (event_id, request_id, occurred_at, path, error) \
             SELECT e, r, t::timestamptz, p, m \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(e, r, t, p, m) \
             ON CONFLICT (event_id) DO NOTHING",
        ),
        (
            custom,
            "INSERT INTO custom_events (event_id, occurred_at, name, data) \
             SELECT e, t::timestamptz, n, d::jsonb \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(e, t, n, d) \
             ON CONFLICT (event_id) DO NOTHING",
        ),
    ];
    for (columns, statement) in tables {
        if columns.0.is_empty() {
            continue;
        }
        let params = columns
            .0
            .into_iter()
            .map(ParameterValue::ArrayStr)
            .collect();
        connection.rows(statement, params).await?;
    }
    Ok(json!({ "stored": delivery.messages.len() }))
}
