//! A deliberately misbehaving Docker API on a Unix socket, for fault injection: it answers
//! `/_ping` and `/version` like dockerd, and serves each `/events` request from a script that
//! can send malformed JSON, huge events, a wrong content type, or cut the stream mid-chunk.
use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// One step of an `/events` response.
#[derive(Clone, Debug)]
pub enum Step {
    /// One HTTP chunk carrying these bytes.
    Chunk(Vec<u8>),
    /// Bytes written as they are (e.g. a chunk header with only half its data).
    Raw(Vec<u8>),
    Sleep(Duration),
    /// Close the connection right now (no terminating chunk).
    Cut,
    /// Keep the response open until the fake is dropped.
    Hold,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub content_type: String,
    pub steps: Vec<Step>,
}

impl Script {
    pub fn json(steps: Vec<Step>) -> Script {
        Script { content_type: "application/json".into(), steps }
    }
}

pub struct FakeDocker {
    pub path: PathBuf,
    /// Request lines received, e.g. "GET /v1.52/events?since=1.000000005 HTTP/1.1".
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDocker {
    /// Serves `scripts` to successive `/events` requests; after the last, holds responses open
    /// with no events.
    pub fn start(path: &Path, api_version: &str, scripts: Vec<Script>) -> FakeDocker {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let scripts = Arc::new(Mutex::new(scripts.into_iter()));
        let (r, s, api) = (requests.clone(), stop.clone(), api_version.to_owned());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, s, scripts, api) = (r.clone(), s.clone(), scripts.clone(), api.clone());
                        std::thread::spawn(move || serve(conn, &api, &r, &s, &scripts));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeDocker { path: path.to_owned(), requests, stop, thread: Some(thread) }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn event_requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().filter(|l| l.contains("/events")).cloned().collect()
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    conn: UnixStream,
    api: &str,
    requests: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    scripts: &Mutex<std::vec::IntoIter<Script>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request_line = line.trim().to_owned();
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        let _ = reader.read_exact(&mut body);
        requests.lock().unwrap().push(request_line.clone());
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        if path.ends_with("/_ping") {
            respond(&mut w, "text/plain", b"OK");
        } else if path.contains("/version") {
            let v = format!(
                r#"{{"Platform":{{"Name":"fake"}},"Version":"99.0.0-fake","ApiVersion":"{api}","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64","KernelVersion":"6.0","GitCommit":"fake","GoVersion":"go1","BuildTime":"now"}}"#
            );
            respond(&mut w, "application/json", v.as_bytes());
        } else if path.contains("/events") {
            let script = scripts.lock().unwrap().next();
            let script = script.unwrap_or_else(|| Script::json(vec![Step::Hold]));
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nApi-Version: {api}\r\nTransfer-Encoding: chunked\r\n\r\n",
                script.content_type
            );
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            for step in script.steps {
                match step {
                    Step::Chunk(b) => {
                        let _ = write!(w, "{:x}\r\n", b.len());
                        let _ = w.write_all(&b);
                        let _ = w.write_all(b"\r\n");
                    }
                    Step::Raw(b) => {
                        let _ = w.write_all(&b);
                    }
                    Step::Sleep(d) => std::thread::sleep(d),
                    Step::Cut => {
                        let _ = w.flush();
                        let _ = w.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    Step::Hold => {
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        return;
                    }
                }
                let _ = w.flush();
            }
            let _ = w.write_all(b"0\r\n\r\n");
            return;
        } else {
            let msg = br#"{"message":"page not found"}"#;
            let _ = write!(
                w,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                msg.len()
            );
            let _ = w.write_all(msg);
        }
    }
}

fn respond(w: &mut UnixStream, content_type: &str, body: &[u8]) {
    let _ = write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nApi-Version: 1.52\r\n\r\n",
        body.len()
    );
    let _ = w.write_all(body);
}

/// A Docker event as API >= 1.52 sends it (no legacy status/id/from).
pub fn event(kind: &str, action: &str, id: &str, name: &str, time_nano: i64) -> String {
    serde_json::json!({
        "Type": kind,
        "Action": action,
        "Actor": {"ID": id, "Attributes": {"image": "busybox:latest", "name": name}},
        "scope": "local",
        "time": time_nano / 1_000_000_000,
        "timeNano": time_nano,
    })
    .to_string()
}
