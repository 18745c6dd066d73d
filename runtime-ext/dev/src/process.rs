//! A local service as a child process: its output in a log file (or the terminal), its
//! readiness awaited while watching that it has not died, and a graceful stop.
//!
//! Each child runs in a process group of its own, so the terminal's Ctrl-C reaches only
//! `cargo dev`, which then stops the services in order (the app before the bridge, the bridge
//! before the broker). Each child also gets SIGTERM from the kernel should `cargo dev` itself
//! die, so nothing is left behind either way.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A running child process.
pub struct Service {
    pub name: &'static str,
    /// Where its output goes; `None`: the terminal.
    pub log: Option<PathBuf>,
    /// Where this run's output starts in the log (earlier runs' output is above it).
    log_start: u64,
    child: Child,
}

impl Service {
    /// Starts `command` as the service `name`, its output appended to `log` (or, without one,
    /// on the terminal).
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        command
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut log_start = 0;
        if let Some(log) = log {
            std::fs::create_dir_all(log.parent().context("a log file has a directory")?)?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .with_context(|| format!("opening {}", log.display()))?;
            log_start = file.metadata()?.len();
            command.stdout(file.try_clone()?).stderr(file);
        }
        // The signal comes when the *thread* that forked exits, so only a thread that lives as
        // long as the process may spawn: `cargo dev`'s main thread (a current-thread runtime).
        debug_assert_eq!(nix::unistd::gettid(), nix::unistd::getpid());
        let parent = nix::unistd::getpid();
        // SAFETY: prctl, getppid and kill are async-signal-safe, and nothing else runs between
        // fork and exec.
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
                // The parent died before the line above took effect: act on it now.
                if nix::unistd::getppid() != parent {
                    kill(nix::unistd::getpid(), Signal::SIGTERM)?;
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("{name}: cannot start {:?}", command.as_std()))?;
        Ok(Self {
            name,
            log: log.map(Path::to_owned),
            log_start,
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for `ready` to hold, failing early, with the log's end, if the
    /// process exits meanwhile.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut ready: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) while starting{}",
                    self.name,
                    self.log_tail()
                );
            }
            if ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready within {}s{}",
                    self.name,
                    timeout.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines this run wrote to its log, to quote in an error, and where to read the
    /// rest.
    pub fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let mut text = Vec::new();
        if let Ok(mut file) = std::fs::File::open(log) {
            let end = file.metadata().map_or(0, |m| m.len());
            // The last 64 KiB of this run's output are plenty for 15 lines.
            let from = self.log_start.max(end.saturating_sub(64 << 10));
            let _ = file
                .seek(SeekFrom::Start(from))
                .and_then(|_| file.read_to_end(&mut text));
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
        format!("; the end of its log, {}:\n    {tail}", log.display())
    }

    /// SIGTERM to its process group, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.pid() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "    {} did not stop within {}s: killed",
                self.name,
                grace.as_secs()
            );
            let _ = self.child.kill().await;
        }
    }
}
