//! Timestamps formatted as the Python originals format them (`datetime.isoformat()`).

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};

/// `2024-12-14T21:30:00`, with `.ffffff` only when there are microseconds, like Python.
pub fn isoformat(value: NaiveDateTime) -> String {
    if value.nanosecond() / 1000 == 0 {
        value.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        value.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
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
    }
}
