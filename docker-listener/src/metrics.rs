//! Monitoring: every counter in Prometheus text format.
//!
//! Always served on `<state_dir>/stats.sock` (a Unix socket only root can open), which
//! `docker-listener stats` reads; also on a loopback TCP port or another Unix socket when the
//! `metrics` config key is set. Both answer any HTTP GET with the same text, so
//! `curl --unix-socket /var/lib/docker-listener/stats.sock http://x/metrics` works too.
use std::{
    fmt::Write as _,
    io,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, UnixListener},
};
use tokio_util::sync::CancellationToken;

use crate::{
    sink::Spool,
    stats::{DOCKER_TYPES, EBPF_ACTIONS, Stats},
};

/// Where the metrics endpoint listens (the `metrics` config key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.starts_with('/') {
                Ok(Endpoint::Unix(PathBuf::from(p)))
            } else {
                Err("accepted: unix:/absolute/path".into())
            };
        }
        match s.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Ok(Endpoint::Tcp(a)),
            Ok(_) => Err("accepted: a loopback address (127.0.0.1:PORT or [::1]:PORT) or unix:/path; \
                          the metrics are not meant for the network, put a proxy in front if needed"
                .into()),
            Err(_) => Err("accepted: 127.0.0.1:PORT, [::1]:PORT or unix:/absolute/path".into()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The stats socket of a state directory.
pub fn stats_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("stats.sock")
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP docker_listener_{name} {help}\n# TYPE docker_listener_{name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "docker_listener_{name} {v}");
        } else {
            let _ = writeln!(out, "docker_listener_{name}{{{labels}}} {v}");
        }
    }
}

/// The metrics, in Prometheus text format.
pub fn render(stats: &Stats, spool: &Spool) -> String {
    let g = Stats::get;
    let mut out = String::with_capacity(4096);
    let by_type: Vec<(String, u64)> = DOCKER_TYPES
        .iter()
        .zip(&stats.docker_by_type)
        .map(|(t, c)| (format!("source=\"docker\",type=\"{t}\""), g(c)))
        .collect();
    let by_action: Vec<(String, u64)> = EBPF_ACTIONS
        .iter()
        .zip(&stats.ebpf_by_action)
        .map(|(a, c)| (format!("source=\"ebpf\",type=\"{a}\""), g(c)))
        .collect();
    let mut events_in: Vec<(&str, u64)> = by_type.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    events_in.push(("source=\"ebpf\",type=\"record\"", g(&stats.ebpf_records)));
    metric(
        &mut out,
        "events_in_total",
        "counter",
        "Events received, by source and type (eBPF: kernel records).",
        &events_in,
    );
    let mut events_out: Vec<(&str, u64)> = vec![("source=\"docker\",type=\"all\"", g(&stats.frames_out_docker))];
    events_out.extend(by_action.iter().map(|(l, v)| (l.as_str(), *v)));
    metric(
        &mut out,
        "events_out_total",
        "counter",
        "Events built for the output, by source and type (Docker: delivered).",
        &events_out,
    );
    metric(
        &mut out,
        "frames_out_total",
        "counter",
        "Datagrams (or lines) written to the output.",
        &[("", g(&stats.frames_out))],
    );
    metric(&mut out, "bytes_out_total", "counter", "Bytes written to the output.", &[("", g(&stats.bytes_out))]);
    metric(
        &mut out,
        "dropped_total",
        "counter",
        "Events lost, by reason. Each is also logged; output and eBPF losses are reported in loss events.",
        &[
            ("reason=\"output_buffer_full\"", g(&stats.dropped_buffer_full)),
            ("reason=\"output_rejected\"", g(&stats.dropped_rejected)),
            ("reason=\"ebpf_kernel\"", g(&stats.ebpf_lost)),
            ("reason=\"ebpf_undecodable\"", g(&stats.ebpf_undecodable)),
            ("reason=\"docker_malformed\"", g(&stats.docker_malformed)),
            ("reason=\"docker_oversized\"", g(&stats.docker_oversized_raw)),
            ("reason=\"docker_upstream_gap\"", g(&stats.docker_upstream_gaps)),
            ("reason=\"oversized\"", g(&stats.events_lost_oversized)),
        ],
    );
    metric(
        &mut out,
        "ebpf_cgroups_rejected_total",
        "counter",
        "Cgroups shaped like a container's that Docker does not know: not traced.",
        &[("", g(&stats.ebpf_cgroups_rejected))],
    );
    metric(
        &mut out,
        "ebpf_not_container_total",
        "counter",
        "Records from those cgroups before Docker answered: not container activity, not sent.",
        &[("", g(&stats.ebpf_not_container))],
    );
    metric(
        &mut out,
        "ebpf_runtime_setup_total",
        "counter",
        "Namespace, mount and other calls of the runtime (runc) setting a container up: not sent.",
        &[("", g(&stats.ebpf_runtime_setup))],
    );
    metric(
        &mut out,
        "ebpf_file_unmatched_total",
        "counter",
        "File-access records that are no sensitive file (an inode number of another filesystem, a file created beside a sensitive one, a change by name of another file): not sent.",
        &[("", g(&stats.ebpf_file_unmatched))],
    );
    metric(
        &mut out,
        "ebpf_sensitive_map_full_total",
        "counter",
        "Sensitive files the kernel's map had no room for: opens of them are not reported (each time logged).",
        &[("", g(&stats.ebpf_sensitive_map_full))],
    );
    metric(
        &mut out,
        "containers_untraced_total",
        "counter",
        "Running containers whose cgroup could not be found: their processes are not traced (each is logged).",
        &[("", g(&stats.containers_untraced))],
    );
    metric(
        &mut out,
        "containers_traced_late_total",
        "counter",
        "Containers whose cgroup was found only after they started: traced from then on (each is logged).",
        &[("", g(&stats.containers_traced_late))],
    );
    metric(
        &mut out,
        "filtered_total",
        "counter",
        "Docker events not forwarded because of ignore_actions.",
        &[("", g(&stats.docker_events_filtered))],
    );
    metric(
        &mut out,
        "held_back_total",
        "counter",
        "Exec, fork, exit, socket and network records held back in the kernel by a container's budget \
         (ebpf.budget_per_second): each container's are reported in an events-held-back event.",
        &[("", g(&stats.ebpf_held_back))],
    );
    metric(
        &mut out,
        "repeats_folded_total",
        "counter",
        "Process and socket events not sent because an identical one was sent within repeat_window \
         (each window's count goes out in an events-repeated event).",
        &[("", g(&stats.repeats_folded))],
    );
    metric(
        &mut out,
        "repeat_summaries_total",
        "counter",
        "events-repeated summaries sent.",
        &[("", g(&stats.repeat_summaries))],
    );
    metric(
        &mut out,
        "healthchecks_total",
        "counter",
        "Healthcheck runs by what became of them (`healthchecks`): folded into a summary (or dropped), \
         failed (forwarded), unrecognised (the check's command, not recorded by dockerd as a check: \
         forwarded).",
        &[
            ("result=\"folded\"", g(&stats.health_checks_folded)),
            ("result=\"failed\"", g(&stats.health_checks_failed)),
            ("result=\"unrecognised\"", g(&stats.health_sessions_unrecognised)),
        ],
    );
    metric(
        &mut out,
        "healthcheck_frames_folded_total",
        "counter",
        "Events of recognised passing healthchecks not sent one by one (Docker's and their processes').",
        &[("", g(&stats.health_frames_folded))],
    );
    metric(
        &mut out,
        "healthcheck_summaries_total",
        "counter",
        "Healthcheck summaries sent.",
        &[("", g(&stats.health_summaries))],
    );
    metric(
        &mut out,
        "duplicates_dropped_total",
        "counter",
        "Replayed Docker events dropped at a resume boundary.",
        &[("", g(&stats.docker_events_duplicate))],
    );
    metric(
        &mut out,
        "truncated_total",
        "counter",
        "Events shrunk to max_event_size and marked truncated.",
        &[("", g(&stats.events_truncated))],
    );
    metric(
        &mut out,
        "docker_partial_events_total",
        "counter",
        "Docker streams that ended in the middle of an event (the event is replayed after reconnecting).",
        &[("", g(&stats.docker_partial_at_eof))],
    );
    metric(
        &mut out,
        "docker_connected",
        "gauge",
        "1 while the Docker event stream is open.",
        &[("", g(&stats.docker_connected))],
    );
    metric(
        &mut out,
        "docker_reconnects_total",
        "counter",
        "Reconnections to the Docker event stream after the first connection.",
        &[("", g(&stats.docker_connects).saturating_sub(1))],
    );
    metric(
        &mut out,
        "queue_send_errors_total",
        "counter",
        "Failed sends to the output (queue missing, not bound, full).",
        &[("", g(&stats.send_errors))],
    );
    let (frames, bytes) = spool.len();
    metric(&mut out, "buffer_frames", "gauge", "Frames waiting for the output.", &[("", frames as u64)]);
    metric(&mut out, "buffer_bytes", "gauge", "Bytes waiting for the output.", &[("", bytes as u64)]);
    metric(
        &mut out,
        "buffer_capacity_bytes",
        "gauge",
        "The buffer's limit (buffer_bytes).",
        &[("", spool.capacity() as u64)],
    );
    let (rss, cpu_ms) = self_usage();
    metric(&mut out, "resident_memory_bytes", "gauge", "Resident set size of the agent.", &[("", rss)]);
    let _ = writeln!(
        out,
        "# HELP docker_listener_cpu_seconds_total CPU time used by the agent (user + system).\n\
         # TYPE docker_listener_cpu_seconds_total counter\ndocker_listener_cpu_seconds_total {}.{:03}",
        cpu_ms / 1000,
        cpu_ms % 1000
    );
    out
}

/// (VmRSS in bytes, utime + stime in ms) of this process.
fn self_usage() -> (u64, u64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (rss, ticks * 1000 / tck)
}

/// Requests answered at once, at most: more connections are closed at once (a scraper that
/// opens hundreds cannot make the agent hold hundreds).
const CONCURRENT: usize = 8;

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut conn: S,
    stats: Arc<Stats>,
    spool: Arc<Spool>,
) -> io::Result<()> {
    // Read the request head (any GET gets the metrics), bounded in size and time.
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    let read = async {
        while n < buf.len() {
            let m = conn.read(&mut buf[n..]).await?;
            if m == 0 {
                break;
            }
            n += m;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || buf[..n].windows(2).any(|w| w == b"\n\n") {
                break;
            }
        }
        io::Result::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    // Rendered off the pipeline's thread (the daemon runs on one): /proc reads and formatting.
    let body = tokio::task::spawn_blocking(move || render(&stats, &spool)).await.map_err(io::Error::other)?;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// Binds the endpoint; the socket file of a Unix endpoint is replaced and made owner-only.
pub async fn bind(endpoint: &Endpoint) -> io::Result<Listener> {
    Ok(match endpoint {
        Endpoint::Tcp(a) => Listener::Tcp(TcpListener::bind(a).await?),
        Endpoint::Unix(p) => {
            let _ = std::fs::remove_file(p);
            let l = UnixListener::bind(p)?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
            Listener::Unix(l, p.clone())
        }
    })
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Serves the metrics until `shutdown`; removes a Unix socket file afterwards.
pub async fn serve(listener: Listener, stats: Arc<Stats>, spool: Arc<Spool>, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
                    Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
                }
            } => a,
        };
        match accepted {
            Ok(conn) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!("metrics endpoint: {CONCURRENT} requests already in progress, connection closed");
                    continue;
                };
                let (stats, spool) = (stats.clone(), spool.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let r = match conn {
                        Conn::Tcp(s) => answer(s, stats, spool).await,
                        Conn::Unix(s) => answer(s, stats, spool).await,
                    };
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if let Listener::Unix(_, p) = listener {
        let _ = std::fs::remove_file(p);
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// `docker-listener stats`: the metrics of the agent running with this state directory.
pub fn fetch(state_dir: &Path) -> Result<String, String> {
    use std::io::{Read, Write};
    let path = stats_socket(state_dir);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "no running docker-listener answers on {} ({e}): start it, or pass the --state-dir (or \
             --config) it runs with",
            path.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    match reply.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_owned()),
        None => Err(format!("unexpected answer from {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_loopback_or_unix() {
        assert_eq!("127.0.0.1:9700".parse::<Endpoint>().unwrap(), Endpoint::Tcp("127.0.0.1:9700".parse().unwrap()));
        assert!("[::1]:9700".parse::<Endpoint>().is_ok());
        assert_eq!("unix:/run/dl.sock".parse::<Endpoint>().unwrap(), Endpoint::Unix("/run/dl.sock".into()));
        assert!("0.0.0.0:9700".parse::<Endpoint>().unwrap_err().contains("loopback"));
        assert!("unix:rel".parse::<Endpoint>().is_err());
        assert!("9700".parse::<Endpoint>().is_err());
    }

    #[test]
    fn renders_every_counter() {
        let stats = Arc::new(Stats::default());
        stats.count_docker_type("network");
        stats.count_docker_type("weird");
        stats.count_ebpf_action("exec");
        Stats::add(&stats.dropped_buffer_full, 3);
        let spool = Spool::new(1 << 20, stats.clone());
        let text = render(&stats, &spool);
        assert!(text.contains("docker_listener_events_in_total{source=\"docker\",type=\"network\"} 1"), "{text}");
        assert!(text.contains("docker_listener_events_in_total{source=\"docker\",type=\"other\"} 1"));
        assert!(text.contains("docker_listener_events_out_total{source=\"ebpf\",type=\"exec\"} 1"));
        assert!(text.contains("docker_listener_dropped_total{reason=\"output_buffer_full\"} 3"));
        assert!(text.contains("docker_listener_buffer_capacity_bytes 1048576"));
        assert!(text.contains("docker_listener_resident_memory_bytes "));
        // Every sample line is "name{labels} value" or "name value".
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<f64>().is_ok()), "{line}");
        }
    }
}
