//! Shared helpers for the end-to-end tests: a real Unix datagram socket bound where the Wazuh
//! queue would be, the real daemon binary, the real Docker CLI.
#![allow(dead_code)]

pub mod agent;
pub mod fake_docker;
pub mod rules;

#[allow(unused_imports)]
pub use agent::*;

use std::{
    io::{BufRead, BufReader},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

pub const HEADER: &str = "1:Wazuh-Docker:";
pub const DOCKER_PREFIX: &str = "1:Wazuh-Docker:{\"integration\":\"docker\",\"docker\":";

/// End-to-end tests need root, a Docker daemon and the test image; `cargo xtask test` provides
/// all three and sets DL_E2E=1. Running them any other way fails here, loudly, rather than
/// passing without testing anything.
pub fn e2e() {
    assert!(
        std::env::var("DL_E2E").as_deref() == Ok("1"),
        "end-to-end tests need root, dockerd and the test image: run them with `cargo xtask test`"
    );
}

pub fn image() -> String {
    std::env::var("DL_TEST_IMAGE").unwrap_or_else(|_| "docker-listener-test/busybox:latest".into())
}

/// Serialises the tests of one binary that use the shared Docker daemon, so that a window of
/// Docker's event log holds only the events of the test that opened it.
pub fn docker_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// `since`/`until` argument for the Docker CLI and API: seconds.nanoseconds.
pub fn docker_time(ns: i64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// A unique name for this test run.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("dltest-{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(name));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real AF_UNIX SOCK_DGRAM socket bound at a path, like Wazuh's analysisd binds its queue;
/// a thread collects every datagram.
pub struct QueueReceiver {
    pub path: PathBuf,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl QueueReceiver {
    pub fn bind(path: &Path) -> QueueReceiver {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 17];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    f.lock().unwrap().push(buf[..n].to_vec());
                }
            }
        });
        QueueReceiver { path: path.to_owned(), frames, stop, thread: Some(thread) }
    }

    pub fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap().clone()
    }

    /// Waits until `done(frames)` holds; panics with the frames on timeout.
    pub fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&[Vec<u8>]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let frames = self.frames();
            if done(&frames) {
                return;
            }
            if Instant::now() > deadline {
                let last: Vec<String> = frames.iter().rev().take(5).map(|f| shown(f)).collect();
                // Every frame in a line (the last 100), for a failure seen only in a CI log.
                let all: Vec<String> = frames.iter().rev().take(100).rev().map(|f| summary(f)).collect();
                // The frames first, what was awaited last: the end of the message is what an
                // excerpt of a CI log keeps.
                panic!(
                    "{} frames, in short: {all:#?}\nlast ones: {last:#?}\ntimed out after {timeout:?} waiting for {what}",
                    frames.len()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops reading and removes the socket file (Wazuh stopped).
    pub fn close(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let _ = std::fs::remove_file(&self.path);
        self.frames()
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks a frame is `1:Wazuh-Docker:{"integration":"docker","docker":<event>}` and returns
/// the event's raw bytes.
pub fn docker_event_bytes(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(DOCKER_PREFIX.as_bytes())?;
    rest.strip_suffix(b"}")
}

/// The Docker events among frames (the `docker` member), parsed, in arrival order.
pub fn docker_events(frames: &[Vec<u8>]) -> Vec<Value> {
    frames.iter().filter(|f| f.starts_with(DOCKER_PREFIX.as_bytes())).map(|f| frame_json(f)["docker"].take()).collect()
}

/// A frame for a failure message: the start of it.
pub fn shown(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame);
    if text.len() > 300 {
        format!("{}… ({} bytes)", &text[..text.floor_char_boundary(300)], text.len())
    } else {
        text.into_owned()
    }
}

/// A frame in a line: what it says happened, to whom (the full frame is `shown`).
pub fn summary(frame: &[u8]) -> String {
    let Some(v) = frame.strip_prefix(HEADER.as_bytes()).and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
        return shown(frame);
    };
    let s = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    if v["docker"].is_object() {
        let d = &v["docker"];
        let name = &d["Actor"]["Attributes"]["name"];
        return format!("docker {} {} {}", s(&d["Type"]), s(&d["Action"]), s(name));
    }
    format!(
        "{} container={} process={}/{} file={} sensitive={} match={}",
        s(&v["event"]["action"]),
        s(&v["container"]["name"]),
        s(&v["process"]["pid"]),
        s(&v["process"]["name"]),
        s(&v["file"]["path"]),
        s(&v["docker_listener"]["file_access"]["sensitive"]),
        s(&v["docker_listener"]["file_access"]["match"]),
    )
}

/// Every frame parsed as JSON after the header (asserting the header).
pub fn frame_json(frame: &[u8]) -> Value {
    let body = frame.strip_prefix(HEADER.as_bytes()).unwrap_or_else(|| panic!("no Wazuh header: {}", shown(frame)));
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", shown(frame)))
}

pub fn time_nano(ev: &Value) -> i64 {
    ev["timeNano"].as_i64().unwrap_or(0)
}

/// Canonical text of a JSON value: same keys, same order, same values give the same text.
pub fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// The daemon under test (the debug build cargo made for this test binary).
pub struct Daemon {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn daemon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-listener")
}

impl Daemon {
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with(Command::new(daemon_bin()).args(args))
    }

    pub fn start_with(cmd: &mut Command) -> Daemon {
        Self::start_with_stdout(cmd, Stdio::null())
    }

    /// Like `start_with`, the daemon's standard output going to `stdout`.
    pub fn start_with_stdout(cmd: &mut Command, stdout: Stdio) -> Daemon {
        let mut child = cmd
            .env("RUST_LOG", "info,docker_listener=debug")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[daemon] {line}");
                l.lock().unwrap().push(line);
            }
        });
        Daemon { child: Some(child), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// A counter from the "docker-listener stopped" line the daemon logs at shutdown.
    pub fn final_stat(&self, key: &str) -> u64 {
        let log = self.log_text();
        let line = log.lines().rev().find(|l| l.contains("docker-listener stopped")).expect("final stats line");
        let v = line
            .split_whitespace()
            .find_map(|w| {
                w.strip_prefix("stats=").unwrap_or(w).trim_start_matches('"').strip_prefix(&format!("{key}="))
            })
            .unwrap_or_else(|| panic!("no {key} in {line}"));
        v.trim_matches('"').parse().unwrap_or_else(|e| panic!("{key}={v}: {e}"))
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count_log(needle) == 0 {
            assert!(Instant::now() < deadline, "daemon never logged {needle:?}; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn stop(&mut self) -> i32 {
        let mut child = self.child.take().expect("already stopped");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut child, Duration::from_secs(15))
    }

    /// SIGKILL, no chance to save anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("already stopped");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits for the daemon to exit on its own; returns the exit code.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().expect("already stopped");
        wait_exit(&mut child, timeout)
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the Docker CLI (against `host` if given); panics with its stderr on failure.
pub fn docker_at(host: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("docker");
    if let Some(h) = host {
        cmd.args(["-H", h]);
    }
    let out = cmd.args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn docker(args: &[&str]) -> String {
    docker_at(None, args)
}

/// Docker's own event log for a window, as `docker events --since --until --format '{{json .}}'`
/// prints it.
pub fn docker_log_window(host: Option<&str>, since_ns: i64, until_ns: i64) -> Vec<Value> {
    let out = docker_at(
        host,
        &["events", "--since", &docker_time(since_ns), "--until", &docker_time(until_ns), "--format", "{{json .}}"],
    );
    out.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A config file in `dir` with the given members under "docker-listener".
pub fn write_config(dir: &TempDir, members: Value) -> PathBuf {
    let path = dir.path("config.json");
    std::fs::write(&path, serde_json::json!({ "docker-listener": members }).to_string()).unwrap();
    path
}

/// The daemon against a fake Docker API, Docker events only, with `config` (members under
/// "docker-listener"), its state in `dir/state`.
pub fn start_against_fake(
    dir: &TempDir,
    fake: &fake_docker::FakeDocker,
    queue: &QueueReceiver,
    config: Value,
) -> Daemon {
    let config = write_config(dir, config);
    Daemon::start(&[
        "--config",
        config.to_str().unwrap(),
        "--docker-host",
        &fake.host(),
        "--queue",
        queue.path.to_str().unwrap(),
        "--state-dir",
        dir.path("state").to_str().unwrap(),
        "--no-ebpf",
    ])
}

/// Asserts two lists of Docker events are the same events, in the same order, with the same
/// keys in the same order and the same values.
pub fn assert_same_events(ours: &[Value], docker: &[Value]) {
    let a: Vec<String> = ours.iter().map(canonical).collect();
    let b: Vec<String> = docker.iter().map(canonical).collect();
    if a != b {
        let missing: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
        let extra: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
        panic!(
            "forwarded events differ from Docker's log: {} forwarded, {} in Docker's log\nmissing: {missing:#?}\nextra: {extra:#?}",
            a.len(),
            b.len()
        );
    }
}

/// Shell (busybox) that waits, up to 10 s, until `condition` holds: a fixed sleep would race a
/// server started in the background on a loaded machine.
pub fn shell_wait(condition: &str) -> String {
    format!("for i in $(seq 200); do {condition} && break; sleep 0.05; done")
}

/// `shell_wait` for a TCP listener on `port` (busybox's netstat, inside a container).
pub fn until_listening(port: u16) -> String {
    shell_wait(&format!("netstat -ltn | grep -q ':{port} '"))
}

/// The small C programs of tests/programs, built static (they run inside the busybox test
/// image, which has no libc) once per test binary into the target's scratch directory; mount
/// the directory in a container with `-v <dir>:/t:ro` and run `/t/<name>`. `NAME_32.c` is built
/// for i386 (`-m32`: Debian's gcc-multilib), the 32-bit system call ABI's tests.
pub fn programs() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("programs-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "c") {
                continue;
            }
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let m32: &[&str] = if name.ends_with("_32") { &["-m32"] } else { &[] };
            let built = Command::new("gcc")
                .args(m32)
                .args(["-O2", "-static", "-Wall", "-o"])
                .arg(out.join(&name))
                .arg(&path)
                .output()
                .expect("gcc (the tests build their C programs with it; cargo xtask setup installs gcc-multilib)");
            assert!(built.status.success(), "building {}: {}", path.display(), String::from_utf8_lossy(&built.stderr));
        }
        out
    })
}

/// `-v <programs>:/t:ro`, for `docker run`.
pub fn programs_volume() -> String {
    format!("{}:/t:ro", programs().display())
}

/// Runs `cmd` to its exit with its output captured; a run that does not exit within 30 s is
/// killed and fails the test (a daemon that should have refused to start and did not, say)
/// instead of hanging it.
pub fn run_to_exit(cmd: &mut Command) -> std::process::Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("{cmd:?} did not exit within 30 s (killed)")
        }
    }
}
