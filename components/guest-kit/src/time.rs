//! Timestamps formatted as the Python originals format them (`datetime.isoformat()`).

use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};

/// `2024-12-14T21:30:00`, with `.ffffff` only when there are microseconds, like Python.
/// Written field by field: chrono's `format` interprets its pattern on every call, and rows of
/// timestamps are formatted on the request path.
pub fn isoformat(value: NaiveDateTime) -> String {
    let mut text = String::with_capacity(26);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        value.year(),
        value.month(),
        value.day(),
        value.hour(),
        value.minute(),
        value.second()
    );
    let micros = value.nanosecond() / 1000 % 1_000_000;
    if micros != 0 {
        let _ = write!(text, ".{micros:06}");
    }
    text
}

/// The current UTC time (from `wasi:clocks`; chrono's `clock` feature is not needed).
pub fn utc_now() -> DateTime<Utc> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    DateTime::from_timestamp(since_epoch.as_secs() as i64, since_epoch.subsec_nanos())
        .unwrap_or_default()
}

/// The current UTC time, as [`isoformat`] formats it.
pub fn now() -> String {
    isoformat(utc_now().naive_utc())
}

/// The current UTC time with an explicit offset (`2024-12-14T21:30:00.123456+00:00`).
pub fn now_utc_rfc3339() -> String {
    utc_now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python_isoformat() {
        let whole =
            NaiveDateTime::parse_from_str("2024-12-14 21:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(isoformat(whole), "2024-12-14T21:30:00");
        let fraction = whole + chrono::Duration::microseconds(1500);
        assert_eq!(isoformat(fraction), "2024-12-14T21:30:00.001500");
        let early =
            NaiveDateTime::parse_from_str("0987-01-02 03:04:05", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(isoformat(early), "0987-01-02T03:04:05");
    }
}
