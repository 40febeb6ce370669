//! The docker-listener process a scenario measures, as both the Docker-path and the eBPF
//! scenarios run it: its log (stderr) in a file, stopped with SIGTERM, its final counters read
//! from the shutdown line; and `perf record` attached to it on request.
use std::{
    collections::BTreeMap,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::system;

/// A running daemon; killed when dropped if it is still running.
pub struct DaemonProcess {
    child: Child,
    log: PathBuf,
}

impl DaemonProcess {
    /// Starts `cmd` (the daemon and its arguments) without RUST_LOG or DOCKER_HOST from our
    /// environment, stdout discarded, its log into `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<DaemonProcess> {
        let log_file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = cmd
            .env_remove("RUST_LOG")
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        Ok(DaemonProcess { child, log: log.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, a clean exit within `within`, and the counters of its final log line.
    pub fn stop(&mut self, within: Duration) -> Result<BTreeMap<String, u64>> {
        system::kill(self.pid(), libc::SIGTERM)?;
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("docker-listener did not stop within {} s of SIGTERM\n{}", within.as_secs(), self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !status.success() {
            bail!("docker-listener exited with {status} after SIGTERM\n{}", self.log_tail());
        }
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("docker-listener stopped"))
            .with_context(|| format!("no final stats line in the daemon's log\n{}", self.log_tail()))?;
        Ok(key_values(line))
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!("  daemon log (last lines):\n    {}", lines[lines.len().saturating_sub(15)..].join("\n    "))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `name=number` pairs of a log line, e.g. the shutdown line
/// `... docker-listener stopped stats=a=1 b=2 ...` or the inventory line.
pub fn key_values(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .map(|t| t.strip_prefix("stats=").unwrap_or(t))
        .filter_map(|t| t.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim_matches('"').parse().ok()?)))
        .collect()
}

/// `perf record` attached to the daemon for one run (`DL_BENCH_PERF_ARGS`, default
/// `-e cpu-clock -F 999 -g`).
pub struct Perf(Child);

impl Perf {
    pub fn attach(pid: u32, out: &Path) -> Result<Perf> {
        let args = std::env::var("DL_BENCH_PERF_ARGS").unwrap_or_else(|_| "-e cpu-clock -F 999 -g".into());
        let child = Command::new("perf")
            .arg("record")
            .args(args.split_whitespace())
            .arg("-o")
            .arg(out)
            .arg("-p")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start perf (apt-get install linux-perf)")?;
        // perf needs a moment to attach to every thread.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Perf(child))
    }

    pub fn stop(mut self) -> Result<()> {
        system::kill(self.0.id(), libc::SIGINT)?;
        let status = self.0.wait()?;
        // perf writes its data on SIGINT and then ends by that signal.
        if !status.success() && status.signal() != Some(libc::SIGINT) {
            bail!("perf record failed: {status}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shutdown_stats() {
        let line = "2026-01-01T00:00:00Z  INFO docker-listener stopped stats=docker_events_in=5 frames_out=4 dropped_buffer_full=1";
        let s = key_values(line);
        assert_eq!(s.get("docker_events_in"), Some(&5));
        assert_eq!(s.get("frames_out"), Some(&4));
        assert_eq!(s.get("dropped_buffer_full"), Some(&1));
    }
}
