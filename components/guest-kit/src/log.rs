//! Structured logs: one JSON line per event on stdout, with the seed-001 fields (`service`,
//! `timestamp` in UTC, `level`, `message`, `trace_id`, `span_id`) and the event's own fields.

use std::io::Write;

use serde_json::{Map, Value};

use crate::trace::Trace;

/// The levels the seeds log at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

/// A logger bound to a service and the request's trace.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    service: &'static str,
    trace: Trace,
}

impl Log {
    pub fn new(service: &'static str, trace: Trace) -> Self {
        Self { service, trace }
    }

    /// The request's trace, for calls that pass it on.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The same service, in another trace (a consumed message's).
    pub fn in_trace(&self, trace: Trace) -> Self {
        Self { trace, ..*self }
    }

    pub fn info(&self, message: &str, fields: Value) {
        self.event(Level::Info, message, fields);
    }

    pub fn warning(&self, message: &str, fields: Value) {
        self.event(Level::Warning, message, fields);
    }

    pub fn error(&self, message: &str, fields: Value) {
        self.event(Level::Error, message, fields);
    }

    /// Writes the event; `fields` (a JSON object, or `null` for none) cannot override the
    /// standard keys.
    pub fn event(&self, level: Level, message: &str, fields: Value) {
        let timestamp = crate::time::utc_now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // A closed stdout loses the line; it must not fail the request.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            self.line(level, message, fields, &timestamp)
        );
    }

    fn line(&self, level: Level, message: &str, fields: Value, timestamp: &str) -> String {
        let mut line = match fields {
            Value::Object(fields) => fields,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_owned(), other)]),
        };
        for (key, value) in [
            ("service", self.service.to_owned()),
            ("timestamp", timestamp.to_owned()),
            ("level", level.as_str().to_owned()),
            ("message", message.to_owned()),
            ("trace_id", self.trace.trace_id()),
            ("span_id", self.trace.span_id()),
        ] {
            line.insert(key.to_owned(), Value::String(value));
        }
        Value::Object(line).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_the_standard_fields_and_the_event_fields() {
        let trace = Trace::child_of(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let log = Log::new("backend", trace);
        let line = log.line(
            Level::Warning,
            "slow query",
            serde_json::json!({ "count": 10, "level": "spoofed" }),
            "2026-01-02T03:04:05.000006Z",
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["service"], "backend");
        assert_eq!(parsed["timestamp"], "2026-01-02T03:04:05.000006Z");
        assert_eq!(parsed["level"], "WARNING");
        assert_eq!(parsed["message"], "slow query");
        assert_eq!(parsed["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed["span_id"], trace.span_id());
        assert_eq!(parsed["count"], 10);
        assert!(!line.contains('\n'));
    }
}
