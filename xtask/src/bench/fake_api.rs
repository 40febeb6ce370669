//! A fast fake Docker Engine API (dockerd 20.10, API 1.41) on a Unix socket.
//!
//! It answers what the daemon asks before streaming — `GET /_ping` and `GET /version`, on
//! keep-alive connections that may carry several requests — and serves the first
//! `GET /v1.41/events` with a pre-encoded chunked body written in large slices — as fast as the
//! daemon reads, or paced at a given rate — so that the fake costs next to nothing and the
//! daemon, not the fake, is what the benchmark measures.
//! After the body the response stays open (no terminating chunk), like dockerd's: ending it
//! would make the daemon reconnect and ask again with `since`.
//!
//! Right before the first byte of events goes out the fake hands control to the benchmark
//! (a rendezvous on a channel), which samples the daemon's CPU time and then lets it go on.
//! Plain std threads and blocking I/O: one thread for `accept`, one per connection.
use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::events::chunk_at;

/// Headers dockerd 20.10.24 sends on every answer.
const SERVER_HEADERS: &str =
    "Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24 (linux)\r\n";

const VERSION_JSON: &str = r#"{"Platform":{"Name":"Docker Engine - Community"},"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.24","GitCommit":"5d6db84","GoVersion":"go1.19.7","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0-bench","BuildTime":"2023-04-04T10:29:01.000000000+00:00"}"#;

/// How many bytes of the body one `write` call offers the socket: as much as it takes when
/// streaming flat out, about a hundred events at a time when paced.
const WRITE_SLICE: usize = 1 << 20;
const PACED_SLICE: usize = 48 << 10;

/// How the fake offers the body when it does not stream it as fast as the daemon reads.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many bytes per second, written in slices of about a hundred events.
    Bytes(f64),
    /// This many HTTP chunks per second, each written on its own at its due time (chunk `i` at
    /// `i / rate` s): dockerd's way, which flushes after every event. The fake notes when it
    /// wrote each chunk ([`FakeDockerApi::chunk_times`]), for the delivery latency.
    Chunks(f64),
}

/// Sent by the fake when an `/events` request arrived and the stream is about to start; the
/// stream starts when the receiver answers on `go`.
pub struct StreamStarting {
    pub go: mpsc::SyncSender<()>,
}

pub struct FakeDockerApi {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// Request lines received, e.g. "GET /v1.41/events HTTP/1.1".
    requests: Arc<Mutex<Vec<String>>>,
    accept_thread: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// With [`Pace::Chunks`]: when each chunk of the first stream was handed to the socket.
    chunk_times: Arc<Mutex<Vec<Instant>>>,
}

impl FakeDockerApi {
    /// Listens on `path` and serves `body` (HTTP chunked, see `events::EncodedStream`) to the
    /// first `/events` request; later `/events` requests get an empty, open stream. The
    /// returned receiver yields once, when the first stream is about to start.
    /// `pace`: offer the body at this rate instead of as fast as the daemon reads it.
    pub fn start(
        path: &Path,
        body: Arc<Vec<u8>>,
        pace: Option<Pace>,
    ) -> Result<(FakeDockerApi, mpsc::Receiver<StreamStarting>)> {
        let listener = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (starting_tx, starting_rx) = mpsc::sync_channel(1);
        let chunk_times = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            stop: stop.clone(),
            requests: requests.clone(),
            body,
            pace,
            starting: Mutex::new(Some(starting_tx)),
            chunk_times: chunk_times.clone(),
        };
        let shared = Arc::new(shared);
        let conns = connections.clone();
        let accept_thread = std::thread::Builder::new().name("fake-dockerd".into()).spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let shared = shared.clone();
                        let spawned = std::thread::Builder::new()
                            .name("fake-dockerd-conn".into())
                            .spawn(move || serve(conn, &shared));
                        if let Ok(handle) = spawned {
                            conns.lock().unwrap_or_else(PoisonError::into_inner).push(handle);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })?;
        let fake = FakeDockerApi {
            path: path.to_owned(),
            stop,
            requests,
            accept_thread: Some(accept_thread),
            connections,
            chunk_times,
        };
        Ok((fake, starting_rx))
    }

    /// How many `/events` requests arrived (1 in a good run: more means the daemon reconnected).
    pub fn event_requests(&self) -> usize {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).iter().filter(|r| r.contains("/events")).count()
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// With [`Pace::Chunks`]: when each chunk written so far went out (just before its `write`).
    pub fn chunk_times(&self) -> Vec<Instant> {
        self.chunk_times.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for FakeDockerApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let handles = std::mem::take(&mut *self.connections.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handles {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Shared {
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    body: Arc<Vec<u8>>,
    pace: Option<Pace>,
    /// Taken by the first `/events` request.
    starting: Mutex<Option<mpsc::SyncSender<StreamStarting>>>,
    chunk_times: Arc<Mutex<Vec<Instant>>>,
}

/// Serves one connection until the client closes it or the fake stops.
fn serve(conn: UnixStream, shared: &Shared) {
    // A read timeout lets an idle connection notice `stop`.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(read_half) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut w = conn;
    while let Some(request_line) = read_request(&mut reader, &shared.stop) {
        shared.requests.lock().unwrap_or_else(PoisonError::into_inner).push(request_line.clone());
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        let ok = if path.ends_with("/_ping") {
            respond(&mut w, "200 OK", "text/plain; charset=utf-8", b"OK")
        } else if path.ends_with("/version") {
            respond(&mut w, "200 OK", "application/json", VERSION_JSON.as_bytes())
        } else if path.ends_with("/events") {
            stream_events(&mut w, shared);
            // The stream never ends on our side: wait for the client to hang up.
            hold(&mut reader, &shared.stop);
            return;
        } else {
            respond(&mut w, "404 Not Found", "application/json", br#"{"message":"page not found"}"#)
        };
        if !ok {
            return;
        }
    }
}

/// Reads one request's head (our clients send GETs without a body); returns its request line,
/// or `None` when the connection closed or the fake stopped.
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
                // read_line keeps what it read before the timeout in `line`: carry on.
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

/// The `/events` answer: the head, then (first request only) the whole body, as fast as the
/// socket takes it or at the paced rate.
fn stream_events(w: &mut UnixStream, shared: &Shared) {
    let head = format!(
        "HTTP/1.1 200 OK\r\n{SERVER_HEADERS}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    if w.write_all(head.as_bytes()).is_err() {
        return;
    }
    let starting = shared.starting.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(starting) = starting else { return };
    let (go_tx, go_rx) = mpsc::sync_channel(1);
    if starting.send(StreamStarting { go: go_tx }).is_err() || go_rx.recv().is_err() {
        return;
    }
    // A write timeout lets a blocked write notice `stop` (a daemon that stopped reading).
    let _ = w.set_write_timeout(Some(Duration::from_millis(100)));
    let body = &shared.body[..];
    if let Some(Pace::Chunks(per_sec)) = shared.pace {
        write_chunks(w, body, per_sec, shared);
        return;
    }
    let started = Instant::now();
    let mut offset = 0;
    while offset < body.len() {
        let end = match shared.pace {
            Some(Pace::Bytes(bytes_per_sec)) => {
                // Sleep until the schedule allows the next slice.
                let due = Duration::from_secs_f64(offset as f64 / bytes_per_sec);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
                (offset + PACED_SLICE).min(body.len())
            }
            _ => (offset + WRITE_SLICE).min(body.len()),
        };
        if !write_all(w, &body[offset..end], &shared.stop) {
            return;
        }
        offset = end;
    }
}

/// [`Pace::Chunks`]: each HTTP chunk of `body` written on its own when it is due, its time
/// noted. A chunk that is late (the fake was not scheduled in time) goes out at once: the
/// latency measured from its due time would blame the daemon for the fake's delay.
fn write_chunks(w: &mut UnixStream, body: &[u8], per_sec: f64, shared: &Shared) {
    let started = Instant::now();
    let mut times = Vec::with_capacity(body.len() / 512);
    let mut offset = 0;
    let mut i = 0u64;
    while let Some((_, end)) = chunk_at(body, offset).ok().flatten() {
        let due = Duration::from_secs_f64(i as f64 / per_sec);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        times.push(Instant::now());
        if !write_all(w, &body[offset..end], &shared.stop) {
            break;
        }
        offset = end;
        i += 1;
    }
    *shared.chunk_times.lock().unwrap_or_else(PoisonError::into_inner) = times;
}

/// Writes all of `data`, retrying timeouts until `stop`; false when the connection is gone.
fn write_all(w: &mut UnixStream, mut data: &[u8], stop: &AtomicBool) -> bool {
    while !data.is_empty() {
        match w.write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
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
