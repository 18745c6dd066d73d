//! A long step: announced with what it does (and, the first time, how long that takes on a
//! small machine), a line each minute while it runs so a quiet link step is not mistaken for a
//! hang, and its wall time at the end. The times are summed up when the platform is ready.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

/// Prints the header of a step.
pub fn announce(what: &str, first_time: Option<&str>) {
    match first_time {
        Some(estimate) => eprintln!("==> {what} ({estimate})"),
        None => eprintln!("==> {what}"),
    }
}

/// Runs `command` as the step `what`, its output passed through; fails naming the step.
pub async fn run(
    what: &str,
    first_time: Option<&str>,
    command: &mut Command,
) -> anyhow::Result<Duration> {
    announce(what, first_time);
    let started = Instant::now();
    let mut child = command
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("{what}: cannot start {:?}", command.as_std().get_program()))?;
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = heartbeat.tick() => eprintln!(
                "    … {what}: {} so far",
                minutes(started.elapsed())
            ),
        }
    };
    if !status.success() {
        bail!("{what} failed ({status}); its output is above");
    }
    let took = started.elapsed();
    eprintln!("    {what}: done in {}", minutes(took));
    Ok(took)
}

/// `1m05s`, `12.3s`.
pub fn minutes(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(minutes(Duration::from_millis(1_300)), "1.3s");
        assert_eq!(minutes(Duration::from_secs(65)), "1m05s");
        assert_eq!(minutes(Duration::from_secs(27 * 60)), "27m00s");
    }
}
