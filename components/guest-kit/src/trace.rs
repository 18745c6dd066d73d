//! W3C trace context: the request's trace and span ids, and the `traceparent` it passes on.
//!
//! An incoming `traceparent` makes this request's span its child (same trace id, new span id);
//! without one (or with a malformed one) the request starts a new trace.

/// The header that carries the context between services, and in Kafka message headers.
pub const TRACEPARENT: &str = "traceparent";

/// `sampled`: the only trace flag defined by W3C Trace Context level 1.
const SAMPLED: u8 = 0x01;

/// The trace this request belongs to and its own span in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl Trace {
    /// A child span of `traceparent` when it is valid; a new sampled trace otherwise.
    pub fn child_of(traceparent: Option<&str>) -> Self {
        let random = random_bytes();
        let span_id = random[16..].try_into().expect("8 bytes");
        match traceparent.and_then(parse) {
            Some((trace_id, flags)) => Self {
                trace_id,
                span_id,
                flags,
            },
            None => Self {
                trace_id: random[..16].try_into().expect("16 bytes"),
                span_id,
                flags: SAMPLED,
            },
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// This span's id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` that makes the callee's span a child of this one.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.flags
        )
    }
}

/// The trace id and flags of a valid `traceparent` (its parent span id is not needed: only
/// this span's own id is reported). Flags other than `sampled` are not passed on (level 1).
fn parse(value: &str) -> Option<([u8; 16], u8)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    // Version 00 has exactly four fields; a later version may append more.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let _: [u8; 1] = unhex(version)?;
    let trace_id: [u8; 16] = unhex(trace_id)?;
    let parent_id: [u8; 8] = unhex(parent_id)?;
    let [flags] = unhex(flags)?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some((trace_id, flags & SAMPLED))
}

/// Lowercase hex of exactly `N` bytes; uppercase is invalid in `traceparent`.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut bytes = [0; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// 24 random bytes: a trace id and a span id.
#[cfg(target_arch = "wasm32")]
fn random_bytes() -> [u8; 24] {
    spin_sdk::wasip3::random::random::get_random_bytes(24)
        .try_into()
        .expect("the host returns the bytes asked for")
}

/// Native unit tests: any distinct ids will do.
#[cfg(not(target_arch = "wasm32"))]
fn random_bytes() -> [u8; 24] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let mut bytes = [0x5a; 24];
    bytes[8..16].copy_from_slice(&n);
    bytes[16..].copy_from_slice(&n);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_parent_keeps_its_trace_and_gets_a_new_span() {
        let trace = Trace::child_of(Some(PARENT));
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(trace.span_id(), "00f067aa0ba902b7");
        assert_eq!(trace.span_id().len(), 16);
        assert_eq!(
            trace.traceparent(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", trace.span_id())
        );
    }

    #[test]
    fn unsampled_flags_are_kept() {
        let unsampled = PARENT.replace("-01", "-00");
        assert!(
            Trace::child_of(Some(&unsampled))
                .traceparent()
                .ends_with("-00")
        );
    }

    #[test]
    fn malformed_parents_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let trace = Trace::child_of(Some(bad));
            assert_ne!(
                trace.trace_id(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
            assert!(trace.traceparent().ends_with("-01"), "{bad}");
        }
    }

    #[test]
    fn unknown_flags_are_dropped() {
        let flagged = PARENT.replace("-01", "-ff");
        assert!(
            Trace::child_of(Some(&flagged))
                .traceparent()
                .ends_with("-01")
        );
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert_eq!(
            Trace::child_of(Some(future)).trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn new_traces_differ() {
        assert_ne!(Trace::child_of(None), Trace::child_of(None));
    }
}
