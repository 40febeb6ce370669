//! The Docker Engine API the checker gives the agent: one synthetic running container.
//!
//! The kernel matrix boots kernels with no Docker in them (and on the host it must not depend on
//! the real dockerd's containers), so the container is made up: a cgroup the checker creates
//! where Docker's cgroupfs driver would (`<cgroup2>/docker/<id>`), and this fake, which answers
//! what the agent asks about it:
//!
//! - `GET /_ping`, `GET /version` (bollard's version negotiation; API 1.41, dockerd 20.10);
//! - `GET /containers/json`: the container, running (the agent's start-up inventory);
//! - `GET /containers/{id}/json`: its inspect (`Id`, `Name`, `Image`, `Config.Image`,
//!   `Config.Labels`, `State.Pid`, `State.StartedAt`); any other id is 404 like dockerd's;
//! - `GET /events`: a stream that stays open and sends nothing (an empty chunked body never
//!   terminated, like dockerd's when nothing happens); ending it would make the agent reconnect.
//!
//! Plain std threads and blocking I/O (one for `accept`, one per connection), as in the
//! benchmark's fake (`bench/fake_api.rs`, which serves a pre-encoded event log instead).
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result};
use serde_json::json;

const SERVER_HEADERS: &str =
    "Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24 (linux)\r\n";

const VERSION_JSON: &str = r#"{"Platform":{"Name":"Docker Engine - Community"},"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.24","GitCommit":"5d6db84","GoVersion":"go1.19.7","Os":"linux","Arch":"amd64","KernelVersion":"kernel-matrix","BuildTime":"2023-04-04T10:29:01.000000000+00:00"}"#;

/// The synthetic container, as Docker would describe it.
#[derive(Debug, Clone)]
pub struct Container {
    /// 64 lowercase hex digits, like Docker's ids (the agent finds it in the cgroup path).
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    pub image: String,
    /// `sha256:<64 hex>`.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    /// `State.StartedAt`, RFC 3339 with nanoseconds, and the same instant in ns since the epoch
    /// (what the agent reports as `docker_listener.container_started_time_nano`).
    pub started_at: String,
    pub started_ns: i64,
}

impl Container {
    fn summary_json(&self) -> String {
        json!([{
            "Id": self.id,
            "Names": [format!("/{}", self.name)],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": "sh",
            "Created": self.started_ns / 1_000_000_000,
            "Labels": self.labels,
            "State": "running",
            "Status": "Up 1 second",
        }])
        .to_string()
    }

    fn inspect_json(&self, pid: u32) -> String {
        json!({
            "Id": self.id,
            "Name": format!("/{}", self.name),
            "Image": self.image_id,
            "Created": self.started_at,
            "Config": {"Image": self.image, "Labels": self.labels},
            "State": {
                "Status": "running",
                "Running": true,
                "Pid": pid,
                "StartedAt": self.started_at,
                "FinishedAt": "0001-01-01T00:00:00Z",
            },
        })
        .to_string()
    }
}

pub struct FakeDocker {
    path: PathBuf,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    container: Container,
    /// `State.Pid`: the checker's own until it starts the container's first process. A real
    /// container has its init there from the start; the agent resolves the container's
    /// sensitive files in that process's root at its first inspect, and the checker's root is
    /// the synthetic container's (the VM's). (With 0 the set waited for another trigger: on
    /// 6.1 the workload's io_uring rename, which a kernel without that door never sends.)
    pid: AtomicU32,
    stop: AtomicBool,
    /// Request lines received, e.g. "GET /v1.41/containers/json?all=false HTTP/1.1".
    requests: Mutex<Vec<String>>,
}

impl FakeDocker {
    pub fn start(path: &Path, container: Container) -> Result<FakeDocker> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            container,
            pid: AtomicU32::new(std::process::id()),
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept_thread = std::thread::Builder::new().name("fake-dockerd".into()).spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        // Connection threads are not joined: each notices `stop` within 100 ms.
                        let _ =
                            std::thread::Builder::new().name("fake-dockerd-conn".into()).spawn(move || serve(conn, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })?;
        Ok(FakeDocker { path: path.to_owned(), shared, accept_thread: Some(accept_thread) })
    }

    /// `unix://<path>`, for `--docker-host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn set_pid(&self, pid: u32) {
        self.shared.pid.store(pid, Ordering::Relaxed);
    }

    /// Whether the agent has asked for the container's inspect (then it knows its image id and
    /// start time, which every event of the container carries).
    pub fn inspected(&self) -> bool {
        let wanted = format!("/containers/{}/json", self.shared.container.id);
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|r| r.contains(&wanted))
    }

    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves one keep-alive connection until the client closes it or the fake stops.
fn serve(conn: UnixStream, shared: &Shared) {
    // A read timeout lets an idle connection notice `stop`.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(read_half) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut w = conn;
    while let Some(request_line) = read_request(&mut reader, &shared.stop) {
        shared.requests.lock().unwrap_or_else(PoisonError::into_inner).push(request_line.clone());
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or(target);
        let c = &shared.container;
        let ok = if path.ends_with("/_ping") {
            respond(&mut w, "200 OK", "text/plain; charset=utf-8", b"OK")
        } else if path.ends_with("/version") {
            respond(&mut w, "200 OK", "application/json", VERSION_JSON.as_bytes())
        } else if path.ends_with("/events") {
            let head = format!(
                "HTTP/1.1 200 OK\r\n{SERVER_HEADERS}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            if w.write_all(head.as_bytes()).is_ok() {
                hold(&mut reader, &shared.stop);
            }
            return;
        } else if path.ends_with("/containers/json") {
            respond(&mut w, "200 OK", "application/json", c.summary_json().as_bytes())
        } else if let Some(id) = inspected_id(path) {
            // dockerd also accepts a unique id prefix or the name.
            if id.len() >= 12 && c.id.starts_with(id) || id == c.name {
                let body = c.inspect_json(shared.pid.load(Ordering::Relaxed));
                respond(&mut w, "200 OK", "application/json", body.as_bytes())
            } else {
                let body = json!({"message": format!("No such container: {id}")}).to_string();
                respond(&mut w, "404 Not Found", "application/json", body.as_bytes())
            }
        } else {
            respond(&mut w, "404 Not Found", "application/json", br#"{"message":"page not found"}"#)
        };
        if !ok {
            return;
        }
    }
}

/// `{id}` of `.../containers/{id}/json`.
fn inspected_id(path: &str) -> Option<&str> {
    let rest = path.strip_suffix("/json")?;
    let (before, id) = rest.rsplit_once('/')?;
    before.ends_with("/containers").then_some(id)
}

/// Reads one request's head (the agent sends GETs without a body); its request line, or `None`
/// when the connection closed or the fake stopped.
fn read_request(reader: &mut BufReader<UnixStream>, stop: &AtomicBool) -> Option<String> {
    let mut request_line = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                continue;
            }
            Err(_) => return None,
        }
        if line == "\r\n" || line == "\n" {
            if request_line.is_empty() {
                continue;
            }
            return Some(request_line);
        }
        if request_line.is_empty() {
            request_line = line.trim().to_owned();
        }
    }
}

fn respond(w: &mut UnixStream, status: &str, content_type: &str, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 {status}\r\n{SERVER_HEADERS}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes()).and_then(|()| w.write_all(body)).is_ok()
}

/// Keeps an answered connection open until the client closes it or the fake stops.
fn hold(reader: &mut BufReader<UnixStream>, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// RFC 3339 in UTC with nanoseconds ("2026-12-01T17:00:00.123456789Z"), as dockerd writes
/// `StartedAt`, from ns since the epoch.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // As `date -u -d @1795817069` and `date -u -d @951782400` print them.
        assert_eq!(rfc3339(1_795_817_069_523_792_396), "2026-11-27T22:04:29.523792396Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn finds_the_inspected_id() {
        assert_eq!(inspected_id("/v1.41/containers/abc/json"), Some("abc"));
        assert_eq!(inspected_id("/v1.41/containers/json"), None);
        assert_eq!(inspected_id("/v1.41/images/abc/json"), None);
    }
}
