//! Structured logs: one JSON line per event on stdout, with the seed-001 fields (`service`,
//! `timestamp` in UTC, `level`, `message`, `trace_id`, `span_id`) and the event's own fields.

use std::io::Write;

use serde_json::Value;

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

/// The keys every line has; an event's fields cannot replace them.
const STANDARD_KEYS: [&str; 6] = [
    "service",
    "timestamp",
    "level",
    "message",
    "trace_id",
    "span_id",
];

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
        let mut line = self.line(level, message, fields, &timestamp);
        line.push(b'\n');
        // One write per line, whatever its length (stdout's line buffer holds only 1 KiB), so
        // lines of concurrent requests never interleave. A closed stdout loses the line; it
        // must not fail the request.
        let _ = std::io::stdout().lock().write_all(&line);
    }

    /// The line's JSON, written straight out: the standard keys, then the event's own.
    fn line(&self, level: Level, message: &str, fields: Value, timestamp: &str) -> Vec<u8> {
        let mut line = Vec::with_capacity(256);
        put(&mut line, "service", self.service);
        put(&mut line, "timestamp", timestamp);
        put(&mut line, "level", level.as_str());
        put(&mut line, "message", message);
        put(&mut line, "trace_id", &self.trace.trace_id());
        put(&mut line, "span_id", &self.trace.span_id());
        match fields {
            Value::Object(fields) => {
                for (key, value) in &fields {
                    if !STANDARD_KEYS.contains(&key.as_str()) {
                        put(&mut line, key, value);
                    }
                }
            }
            Value::Null => {}
            other => put(&mut line, "value", &other),
        }
        line.push(b'}');
        line
    }
}

/// Appends `"key":value` to the JSON object `line` is writing.
fn put(line: &mut Vec<u8>, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    line.push(if line.is_empty() { b'{' } else { b',' });
    // Serializing into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *line, key);
    line.push(b':');
    let _ = serde_json::to_writer(&mut *line, value);
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
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed["service"], "backend");
        assert_eq!(parsed["timestamp"], "2026-01-02T03:04:05.000006Z");
        assert_eq!(parsed["level"], "WARNING");
        assert_eq!(parsed["message"], "slow query");
        assert_eq!(parsed["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed["span_id"], trace.span_id());
        assert_eq!(parsed["count"], 10);
        assert!(!line.contains(&b'\n'));
    }
}
