//! A child's output, streamed line by line as it comes (prefixed with a label), kept with the
//! time each line arrived, written to a log file, with a hard deadline: the qemu serial console
//! and the checker on the host both go through here.
use std::{
    io::{BufRead as _, BufReader, Read, Write as _},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

pub struct Line {
    /// Since the child was started.
    pub at: Duration,
    pub text: String,
}

pub struct Captured {
    pub lines: Vec<Line>,
    /// `None` when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
    /// The first line that contained one of `stream`'s `fatal` needles.
    pub fatal: Option<usize>,
}

impl Captured {
    /// The first line containing `needle` (the kernel's messages share the console with the
    /// guest's output, so a line may start with something else).
    pub fn find(&self, needle: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.text.contains(needle))
    }

    /// The last line containing `needle`.
    pub fn find_last(&self, needle: &str) -> Option<&Line> {
        self.lines.iter().rev().find(|l| l.text.contains(needle))
    }

    /// For an error message: the lines containing `needle` (the failed checks), then the last
    /// `n` lines; lines over 300 characters are cut (the log file has them whole).
    pub fn excerpt(&self, needle: &str, n: usize) -> String {
        let cut = |t: &str| match t.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &t[..i]),
            None => t.to_owned(),
        };
        let start = self.lines.len().saturating_sub(n);
        let marked = self.lines[..start].iter().filter(|l| l.text.contains(needle));
        marked.chain(&self.lines[start..]).map(|l| cut(&l.text)).collect::<Vec<_>>().join("\n")
    }
}

/// After a line containing one of `stream`'s `fatal` needles, how long the child may still run:
/// time to print the rest of the report (a kernel's backtrace) and, should it recover after all,
/// to finish. Generous beside a whole run (under a minute): a soft lockup can be a warning that
/// a guest on a loaded host recovers from.
pub const FATAL_GRACE: Duration = Duration::from_secs(90);

/// Runs `cmd` to its end or to `timeout` (then kills it), printing each line of its stdout and
/// stderr as `  [label] line` and appending it to `log`. The first line containing one of
/// `fatal` brings the deadline forward to `FATAL_GRACE` after it: a guest kernel that reported a
/// lockup or an Oops is not left to the whole timeout.
pub fn stream(cmd: &mut Command, label: &str, timeout: Duration, fatal: &[&str], log: &Path) -> Result<Captured> {
    stream_with_grace(cmd, label, timeout, fatal, FATAL_GRACE, log)
}

fn stream_with_grace(
    cmd: &mut Command,
    label: &str,
    timeout: Duration,
    fatal: &[&str],
    grace: Duration,
    log: &Path,
) -> Result<Captured> {
    let mut log_file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let readers: Vec<Box<dyn Read + Send>> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for r in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let text = plain(&String::from_utf8_lossy(&buf));
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
                buf.clear();
            }
        });
    }
    drop(tx);
    let mut deadline = started + timeout;
    let mut lines = Vec::new();
    let mut fatal_line = None;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, text)) => {
                println!("  [{label}] {text}");
                let _ = writeln!(log_file, "{text}");
                if fatal_line.is_none() && fatal.iter().any(|f| text.contains(f)) {
                    fatal_line = Some(lines.len());
                    deadline = deadline.min(at + grace);
                }
                lines.push(Line { at: at.duration_since(started), text });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    // Output ended (or time is up): the child should be exiting.
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if timed_out || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Captured { lines, status, elapsed: started.elapsed(), fatal: fatal_line })
}

/// A console line without its line ending and terminal escapes (SeaBIOS and the kernel clear the
/// screen: `ESC c`, `ESC [2J`...).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // ESC [ parameters final-byte, or ESC and one character.
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_terminal_escapes() {
        assert_eq!(plain("\u{1b}c\u{1b}[?7l\u{1b}[2Jinit: up\r\n"), "init: up");
        assert_eq!(plain("\u{1b}[0mSeaBIOS (version 1.16)\n"), "SeaBIOS (version 1.16)");
        assert_eq!(plain("plain"), "plain");
    }

    #[test]
    fn excerpts_keep_the_marked_lines_and_the_tail() {
        let text = ["a FAIL 1", "b", "c FAIL 2", "d", "e"].map(|t| Line { at: Duration::ZERO, text: t.into() });
        let out = Captured { lines: text.into(), status: None, elapsed: Duration::ZERO, fatal: None };
        assert_eq!(out.excerpt("FAIL", 2), "a FAIL 1\nc FAIL 2\nd\ne");
        let long = Captured { lines: vec![Line { at: Duration::ZERO, text: "x".repeat(400) }], ..out };
        assert_eq!(long.excerpt("FAIL", 1).chars().count(), 301);
    }

    #[test]
    fn a_fatal_line_brings_the_deadline_forward() {
        let dir = std::env::temp_dir().join(format!("xtask-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        // Stands for a kernel that locks up: the report, then silence until killed.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo booted; echo '[ 60.6] watchdog: BUG: soft lockup - CPU#1 stuck for 22s!'; sleep 30"]);
        let started = Instant::now();
        let needles = ["soft lockup"];
        let out =
            stream_with_grace(&mut cmd, "t", Duration::from_secs(120), &needles, Duration::from_millis(500), &log)
                .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "killed at the grace, not the timeout");
        assert!(out.status.is_none(), "killed");
        assert_eq!(out.fatal, Some(1));
        assert!(out.lines[1].text.contains("soft lockup"));
        // Without the needle, the same child runs to its end.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo '[ 1.0] all well'; sleep 1"]);
        let out =
            stream_with_grace(&mut cmd, "t", Duration::from_secs(120), &needles, Duration::from_millis(100), &log)
                .unwrap();
        assert!(out.status.is_some_and(|s| s.success()));
        assert_eq!(out.fatal, None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
