//! What the eBPF scenarios share: the agent under test (the release daemon with its eBPF probes,
//! against the machine's dockerd, or the one `$DOCKER_HOST` names), the containers the storms
//! run in (always removed), the load generator ([`ebpf_worker`](super::ebpf_worker)) and how
//! to start and wait for it, the events as the sink received them, and the machine's load.
//!
//! The scenarios themselves:
//! - `ebpf_storm`: exec storms in a container and on the host, a connect storm in a container
//!   (overhead ratios, delivery, agent CPU per event);
//! - `ebpf_density`: 500 running containers (start-up inventory, RSS, attribution);
//! - `ebpf_latency`: kernel timestamp → datagram arrival at a fixed event rate;
//! - `ebpf_loss`: the heaviest storm, with the kernel-side loss accounting checked.
use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

pub use super::daemon::{Perf, key_values};
use super::{
    Context, SectionInfo,
    daemon::DaemonProcess,
    ebpf_sink::{FrameSink, Frames},
    ebpf_worker,
    system::{self, ScratchDir},
};

pub const SECTION: SectionInfo = SectionInfo {
    id: "ebpf",
    title: "Process and socket events (eBPF)",
    about: "The agent is `docker-listener --queue <sink> --state-dir <tmp>` (the package's static build, \
            `target/x86_64-unknown-linux-musl/release/docker-listener`, unless named) with its \
            eBPF probes and the default configuration (every exec with its argv, connect, bind, \
            listen and accept, in containers only), attached to the real dockerd \
            (/var/run/docker.sock, or `$DOCKER_HOST`); a Rust sink bound in place of Wazuh's queue \
            socket keeps every datagram with its arrival time (`CLOCK_REALTIME`) and parses them \
            after each round. The load comes from `xtask bench-worker`, a small release binary that \
            moves itself into the container's cgroups (v2, and v1 on this hybrid host) and enters \
            its namespaces (`setns` on /proc/<init pid>/ns/*) before running the storm, so the storm \
            is really in the container without measuring `docker exec` or a shell; it joins before \
            the agent starts, so the agent's start-up inventory finds it like any process already \
            running there. Exec storms are fork + `execve(\"/bin/true\", [\"/bin/true\", \
            \"<marker>\"])` + `waitpid` one after another (the container's busybox); connect storms \
            are TCP connects to a listener of the worker's own on 127.0.0.1 in the container's \
            network namespace (accepted and closed by a second thread; the connecting side closes \
            with `SO_LINGER` 0). Containers run `docker-listener-test/busybox` with `--network none` \
            and are always removed. Overheads are ratios of the storm's wall time with the agent \
            running to without, measured side by side: rounds alternate (without/with, then \
            with/without) after one unmeasured warm-up round, and each with-round starts a fresh \
            agent and waits for its \"container inventory loaded\" log line before the storm. With \
            `DL_BENCH_BASELINE` each round of a storm runs three times, without the agent, with the baseline \
            daemon and with the current one (the order reversed every other round, one warm-up round per daemon), \
            and each daemon's rows are given against the no-agent run of the same round. \
            Agent CPU: the run time of its threads (/proc/<pid>/task/*/schedstat, to the nanosecond) \
            from the storm's start until the sink has been idle for 300 ms, per exec or connect; over \
            the same span its context switches (summed over its threads from /proc/<pid>/task/*/status) \
            as sleeps (voluntary: each ends with a wake-up, which costs these VMs tens of microseconds; the \
            machine's price of one is in the line above, and the tables give the sleeps at that price as \
            \"sleeping and waking\") and preemptions (involuntary: a switch to another runnable thread, \
            about a microsecond here, not priced). \
            net.unix.max_dgram_qlen is 1024 during these \
            scenarios (restored afterwards), as for the Docker path.",
};

/// Why a storm overflows the agent's output buffer (a note for the tables that show it).
pub const OUTPUT_OVERFLOW: &str = "the output buffer holds `buffer_bytes` of encoded frames (JSON, several \
     times the size of their ring records); when the sender falls behind the decoder for longer than that, the \
     oldest frames are dropped and counted. The monitor hands over at most 1024 decoded events per wake-up \
     (`monitor::DRAIN_MAX`) so that, on the single-threaded runtime, the sender runs between batches";

/// Container names start with this, then our pid: `dlbench-<pid>-<label>-<n>`. Leftovers of a
/// run that died are removed by the next one.
const PREFIX: &str = "dlbench-";
/// The image: busybox with its applets under /bin (`cargo xtask test` makes it).
pub const IMAGE: &str = crate::docker::IMAGE;

/// Whether this is a full run (targets apply) or `--quick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quick,
    Full,
}

impl Mode {
    pub fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Mode::Quick => quick,
            Mode::Full => full,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The agent

/// The daemon under test, with eBPF, against the machine's dockerd.
pub struct Agent {
    process: DaemonProcess,
    /// Wall-clock time just before it was started (ns since the epoch).
    pub started_ns: i64,
}

/// `over`'s members into `base`, objects member by member, anything else replaced.
fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Whether `daemon` knows `ebpf.budget_per_second` and `repeat_window` (a previous build
/// measured side by side may not): asked once per binary with `check-config`.
fn has_budget(daemon: &Path, dir: &ScratchDir) -> Result<bool> {
    static KNOWN: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, b)) = known.iter().find(|(p, _)| p == daemon) {
        return Ok(*b);
    }
    let probe = dir.join("budget-probe.json");
    std::fs::write(&probe, r#"{"docker-listener": {"repeat_window": 0, "ebpf": {"budget_per_second": 0}}}"#)?;
    let ok = Command::new(daemon)
        .arg("check-config")
        .arg("--config")
        .arg(&probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?
        .success();
    let _ = std::fs::remove_file(&probe);
    known.push((daemon.to_owned(), ok));
    Ok(ok)
}

impl Agent {
    /// Starts the agent writing to the queue socket `queue`, its state in `dir`, with `config`
    /// (the inside of `{"docker-listener": ...}`) when given.
    pub fn start(ctx: &Context, dir: &ScratchDir, queue: &Path, config: Option<&str>) -> Result<Agent> {
        let mut cmd = Command::new(&ctx.daemon);
        cmd.arg("--queue").arg(queue).arg("--state-dir").arg(dir.join("state"));
        // The dockerd the `docker` commands of the benchmark talk to.
        if let Some(host) = docker_host() {
            cmd.arg("--docker-host").arg(host);
        }
        // The storms measure the pipeline for every record, as builds before the per-container
        // budget and repeat folding delivered them: both are off where the binary has them.
        let mut members: serde_json::Value = match config {
            Some(c) => serde_json::from_str(c)?,
            None => serde_json::json!({}),
        };
        if let Some(s) = &ctx.settings {
            merge(&mut members, s);
        }
        if has_budget(&ctx.daemon, dir)? {
            members["ebpf"]["budget_per_second"] = 0.into();
            members["repeat_window"] = 0.into();
        }
        if members.as_object().is_some_and(|m| !m.is_empty()) {
            let path = dir.join("config.json");
            std::fs::write(&path, format!("{{\"docker-listener\": {members}}}\n"))?;
            cmd.arg("--config").arg(path);
        }
        let started_ns = super::ebpf_sink::realtime_ns();
        let process = DaemonProcess::spawn(&mut cmd, &dir.join("agent.log"))?;
        Ok(Agent { process, started_ns })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.process.log().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if let Some(status) = self.process.try_wait()? {
                bail!("docker-listener exited ({status}) before logging {needle:?}\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("docker-listener did not log {needle:?} within {timeout:?}\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the start-up inventory is loaded (running containers are traced from then
    /// on) and checks the eBPF probes are attached; returns the inventory line.
    pub fn wait_ready(&mut self) -> Result<String> {
        let line = self.wait_for_log("container inventory loaded", Duration::from_secs(60))?;
        if !self.process.log().contains("eBPF probes attached") {
            bail!("the agent runs without eBPF (not root? see its log)\n{}", self.log_tail());
        }
        // The filter map is written right after that line, in the same loop iteration.
        std::thread::sleep(Duration::from_millis(50));
        Ok(line)
    }

    /// SIGTERM, a clean exit, and the counters of its final log line.
    pub fn stop(&mut self) -> Result<BTreeMap<String, u64>> {
        self.process.stop(Duration::from_secs(30))
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// `$DOCKER_HOST` when set: the `docker` commands use it, and so does the agent. Unset, both use
/// /var/run/docker.sock.
pub fn docker_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
}

/// Adds the note every eBPF table carries when the benchmark ran against another dockerd.
pub fn with_docker_note(mut notes: Vec<String>) -> Vec<String> {
    if let Some(host) = docker_host() {
        notes.push(format!("dockerd: the one at `{host}` (`DOCKER_HOST`), not /var/run/docker.sock"));
    }
    notes
}

/// "2026-11-27T16:36:35.838163Z" (any number of fraction digits, UTC) → ns since the epoch.
pub fn rfc3339_ns(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if frac.is_empty() { 0 } else { frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32) };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + nanos)
}

/// A sink and an agent writing to it, in one scratch directory.
pub struct AgentRun {
    pub dir: ScratchDir,
    pub sink: FrameSink,
    pub agent: Agent,
}

impl AgentRun {
    /// Binds a sink, starts the agent, waits until it traces the running containers.
    pub fn start(ctx: &Context, label: &str, config: Option<&str>) -> Result<AgentRun> {
        let dir = ScratchDir::new(label)?;
        let queue = dir.join("queue");
        let sink = FrameSink::bind(&queue)?;
        let mut agent = Agent::start(ctx, &dir, &queue, config)?;
        agent.wait_ready()?;
        Ok(AgentRun { dir, sink, agent })
    }

    /// Waits for delivery to go quiet, stops the agent, returns its final counters and every
    /// frame the sink received.
    pub fn finish(mut self) -> Result<(BTreeMap<String, u64>, Frames)> {
        let stats = self.agent.stop()?;
        let frames = self.sink.finish()?;
        if frames.truncated > 0 {
            bail!("{} datagrams longer than 64 KiB", frames.truncated);
        }
        if let Some(&sent) = stats.get("frames_out")
            && sent != frames.len() as u64
        {
            bail!("the agent says it sent {sent} frames, the sink received {}", frames.len());
        }
        drop(self.dir);
        Ok((stats, frames))
    }
}

// ---------------------------------------------------------------------------------------------
// Events

/// The fields of our own events the scenarios look at (docs/EVENTS.md).
#[derive(Debug, Default, Deserialize)]
pub struct Event {
    #[serde(rename = "@timestamp")]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub event: EventMeta,
    #[serde(default)]
    pub process: Process,
    pub container: Option<ContainerRef>,
    pub destination: Option<Endpoint>,
    #[serde(default)]
    pub docker_listener: AgentFields,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventMeta {
    pub action: Option<String>,
    /// The kernel's per-CPU sequence number of the record (with `docker_listener.cpu`).
    pub sequence: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Process {
    pub pid: Option<u64>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContainerRef {
    #[serde(default)]
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Endpoint {
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentFields {
    pub loss: Option<Loss>,
    pub cpu: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Loss {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub events: u64,
}

impl Event {
    pub fn action(&self) -> &str {
        self.event.action.as_deref().unwrap_or("")
    }

    pub fn container_id(&self) -> &str {
        self.container.as_ref().map_or("", |c| c.id.as_str())
    }

    pub fn has_arg(&self, arg: &str) -> bool {
        self.process.args.iter().any(|a| a == arg)
    }

    /// The kernel's timestamp of the event, ns since the epoch.
    pub fn time_ns(&self) -> Option<i64> {
        self.timestamp.as_deref().and_then(rfc3339_ns)
    }

    /// (CPU, sequence number) of an event made from a kernel record.
    pub fn record_id(&self) -> Option<(u32, u64)> {
        Some((self.docker_listener.cpu?, self.event.sequence?))
    }

    /// `docker_listener.loss.events` of a kernel-side loss report.
    pub fn ebpf_lost(&self) -> Option<u64> {
        self.lost("ebpf")
    }

    /// `docker_listener.loss.events` of a report of frames the agent's output buffer dropped.
    pub fn output_lost(&self) -> Option<u64> {
        self.lost("output_buffer_full")
    }

    fn lost(&self, reason: &str) -> Option<u64> {
        let loss = self.docker_listener.loss.as_ref()?;
        (self.action() == "events-lost" && loss.reason == reason).then_some(loss.events)
    }
}

/// Frames sorted out: Docker events counted, our own events parsed (with their arrival time).
pub struct Received {
    pub docker: u64,
    pub events: Vec<(Event, i64)>,
}

const FRAME_HEADER: &[u8] = b"1:Wazuh-Docker:";
const DOCKER_BODY: &[u8] = b"{\"integration\":\"docker\",\"docker\":";

pub fn parse_frames(frames: &Frames) -> Result<Received> {
    let mut out = Received { docker: 0, events: Vec::with_capacity(frames.len()) };
    for (frame, at) in frames.iter() {
        let Some(body) = frame.strip_prefix(FRAME_HEADER) else {
            bail!("not a Wazuh frame: {}", String::from_utf8_lossy(&frame[..frame.len().min(200)]));
        };
        if body.starts_with(DOCKER_BODY) {
            out.docker += 1;
            continue;
        }
        let ev: Event = serde_json::from_slice(body)
            .with_context(|| format!("an agent frame that is not JSON: {}", String::from_utf8_lossy(body)))?;
        out.events.push((ev, at));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Containers

/// Containers started for a scenario; all of them (by name prefix) are removed when this is
/// dropped, also on error or panic.
pub struct Containers {
    prefix: String,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub name: String,
    pub id: String,
}

impl Containers {
    /// Removes the leftovers of benchmark runs that are gone, and names this scenario's
    /// containers `dlbench-<our pid>-<label>-<n>`.
    pub fn new(label: &str) -> Result<Containers> {
        remove_stale()?;
        Ok(Containers { prefix: format!("{PREFIX}{}-{label}-", std::process::id()) })
    }

    /// Runs `count` containers (`docker run -d --network none IMAGE cmd...`), `parallel` at a
    /// time; returns them in order.
    pub fn start(&self, count: usize, parallel: usize, cmd: &[&str]) -> Result<Vec<Started>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Started>>>> = Mutex::new((0..count).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..parallel.clamp(1, count.max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        let name = format!("{}{i}", self.prefix);
                        let r = docker_output(
                            Command::new("docker")
                                .args(["run", "-d", "--network", "none", "--name", &name, IMAGE])
                                .args(cmd),
                        )
                        .map(|id| Started { name: name.clone(), id: id.trim().to_owned() });
                        let failed = r.is_err();
                        if let Ok(mut v) = results.lock() {
                            v[i] = Some(r);
                        }
                        if failed {
                            // Stop handing out work; the error is reported below.
                            next.store(count, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let results = results.into_inner().map_err(|_| anyhow::anyhow!("a starter thread panicked"))?;
        let mut out = Vec::with_capacity(count);
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(Ok(s)) if s.id.len() == 64 => out.push(s),
                Some(Ok(s)) => bail!("docker run printed {:?} instead of a container id", s.id),
                Some(Err(e)) => return Err(e.context(format!("starting container {i} of {count}"))),
                None => bail!("container {i} of {count} was not started (an earlier one failed)"),
            }
        }
        Ok(out)
    }

    /// Removes every container of this scenario (`docker rm -f`, in parallel batches).
    pub fn remove_all(&self) -> Result<usize> {
        remove_matching(&self.prefix)
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        if let Err(e) = self.remove_all() {
            eprintln!("xtask bench: could not remove the containers named {}*: {e:#}", self.prefix);
        }
    }
}

/// Removes every container whose name starts with `prefix`; returns how many. Two at a time
/// (one `docker rm -f` of 2, one after the other): many concurrent removals made dockerd 20.10.24
/// deadlock here (see [`DOCKER_TIMEOUT`]); removing ~4 containers per second is slow but safe.
fn remove_matching(prefix: &str) -> Result<usize> {
    let ids = docker_output(Command::new("docker").args([
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("name=^/{prefix}"),
    ]))?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let mut errors = Vec::new();
    for chunk in ids.chunks(2) {
        if let Err(e) = docker_output(Command::new("docker").args(["rm", "-f"]).args(chunk)) {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!("docker rm -f failed: {}", errors.join("; "));
    }
    Ok(ids.len())
}

/// Removes `dlbench-<pid>-*` containers whose xtask is no longer running.
fn remove_stale() -> Result<()> {
    let names = docker_output(Command::new("docker").args([
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("name=^/{PREFIX}"),
    ]))?;
    let mut dead: Vec<u32> = names
        .lines()
        .filter_map(|n| n.strip_prefix(PREFIX)?.split('-').next()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim() != "xtask"
        })
        .collect();
    dead.sort_unstable();
    dead.dedup();
    for pid in dead {
        let n = remove_matching(&format!("{PREFIX}{pid}-"))?;
        println!("  removed {n} containers left over by an earlier benchmark run (pid {pid})");
    }
    Ok(())
}

/// The host pid of a running container's init process.
pub fn init_pid(id: &str) -> Result<u32> {
    let out = docker_output(Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", id]))?;
    let pid: u32 = out.trim().parse().with_context(|| format!("docker inspect gave pid {out:?}"))?;
    if pid == 0 {
        bail!("container {id} is not running");
    }
    Ok(pid)
}

/// How long one docker command may take. dockerd 20.10 before 20.10.27 can deadlock in
/// libnetwork under many concurrent container removals (moby/moby#46661): every later container
/// operation then hangs, and only restarting dockerd helps. A timeout turns that into an error
/// that says so instead of a benchmark that never ends.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a docker command; its stdout, or an error with its stderr (also after
/// [`DOCKER_TIMEOUT`], when the command is killed).
pub(super) fn docker_output(cmd: &mut Command) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("{cmd:?}: no pipes");
    };
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        }),
    );
    let deadline = Instant::now() + DOCKER_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{cmd:?} did not finish within {}s: dockerd is not answering. dockerd 20.10 before 20.10.27 can \
                 deadlock under many concurrent container removals (moby/moby#46661); `docker inspect` of the \
                 containers then hangs too, and only restarting dockerd helps",
                DOCKER_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = readers.0.join().unwrap_or_default();
    let err = readers.1.join().unwrap_or_default();
    if !status.success() {
        bail!("{cmd:?} failed ({status}): {}", err.trim());
    }
    Ok(out)
}

/// A long-running container to run storms in.
pub struct StormContainer {
    /// Removes the container when dropped.
    _containers: Containers,
    pub started: Started,
    pub pid: u32,
}

impl StormContainer {
    pub fn start(label: &str) -> Result<StormContainer> {
        let containers = Containers::new(label)?;
        let started = containers.start(1, 1, &["sleep", "3600"])?.pop().context("docker run gave no container")?;
        let pid = init_pid(&started.id)?;
        Ok(StormContainer { _containers: containers, started, pid })
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

/// A finished worker: its result line and the CPU it and its children used.
#[derive(Debug)]
pub struct WorkerRun {
    pub result: BTreeMap<String, u64>,
    pub cpu: Duration,
}

impl WorkerRun {
    pub fn get(&self, key: &str) -> Result<u64> {
        self.result.get(key).copied().with_context(|| format!("the worker reported no {key}: {:?}", self.result))
    }

    /// The storm's own duration, as the worker timed it.
    pub fn elapsed(&self) -> Result<Duration> {
        Ok(Duration::from_nanos(self.get("elapsed_ns")?))
    }
}

/// A running `xtask bench-worker`: in its container and waiting for [`Worker::go`].
pub struct Worker {
    child: Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Worker {
    /// Starts `xtask bench-worker args...` and waits until it has joined its container.
    pub fn start(args: &[String]) -> Result<Worker> {
        let mut child = ebpf_worker::command()?
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the bench worker")?;
        let stdout = child.stdout.take().context("the worker has no stdout")?;
        let mut w = Worker { child, stdout: std::io::BufReader::new(stdout) };
        let mut line = String::new();
        std::io::BufRead::read_line(&mut w.stdout, &mut line)?;
        if line.trim() != "ready" {
            let mut err = String::new();
            if let Some(mut e) = w.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = w.child.kill();
            let _ = w.child.wait();
            bail!("the bench worker did not get ready: {}{}", line.trim(), err.trim());
        }
        Ok(w)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the storm.
    pub fn go(&mut self) -> Result<()> {
        let mut stdin = self.child.stdin.take().context("the worker was already started")?;
        std::io::Write::write_all(&mut stdin, b"go\n").context("the bench worker is gone")?;
        Ok(())
    }

    /// For a worker that takes commands (`syscalls`): sends `command` as one line and returns
    /// the result line it answers with (`ok key=value ...`).
    pub fn pass(&mut self, command: &str) -> Result<BTreeMap<String, u64>> {
        let stdin = self.child.stdin.as_mut().context("the worker's stdin is closed")?;
        std::io::Write::write_all(stdin, format!("{command}\n").as_bytes()).context("the bench worker is gone")?;
        std::io::Write::flush(stdin).context("the bench worker is gone")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.stdout, &mut line)?;
        if line.is_empty() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("the bench worker ended instead of answering {command:?}: {}", err.trim());
        }
        ebpf_worker::parse_result(&line)
    }

    /// Waits for the end of the storm (a worker that takes commands: closes its stdin, which
    /// ends it); the worker's result, and its CPU time including its children's (wait4's
    /// rusage).
    pub fn wait(mut self) -> Result<WorkerRun> {
        drop(self.child.stdin.take());
        let mut stdout = String::new();
        let mut stderr = String::new();
        self.stdout.read_to_string(&mut stdout)?;
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut stderr)?;
        }
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; the pid is our child, not yet reaped.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = self.child.id() as libc::pid_t;
        if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
            bail!("wait4 on the worker failed: {}", std::io::Error::last_os_error());
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!("the bench worker failed (status {status:#x}): {}", stderr.trim());
        }
        let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
        Ok(WorkerRun { result: ebpf_worker::parse_result(&stdout)?, cpu: tv(usage.ru_utime) + tv(usage.ru_stime) })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Reaped by `wait`; otherwise (an error on the way) stop it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Arguments of an exec storm: in the container of `join` (host pid), or on the host.
pub fn exec_args(join: Option<u32>, count: u64, marker: &str) -> Vec<String> {
    let mut a = vec!["exec".to_owned(), "--count".into(), count.to_string(), "--marker".into(), marker.into()];
    if let Some(pid) = join {
        a.extend(["--join".into(), pid.to_string()]);
    }
    a
}

/// Arguments of a worker that makes system calls on command, in the container of `join` (host
/// pid) or on the host.
pub fn syscall_args(join: Option<u32>) -> Vec<String> {
    let mut a = vec!["syscalls".to_owned()];
    if let Some(pid) = join {
        a.extend(["--join".into(), pid.to_string()]);
    }
    a
}

/// Arguments of a connect storm in the container of `join`.
pub fn connect_args(join: u32, count: u64, rate: Option<u64>) -> Vec<String> {
    let mut a = vec!["connect".to_owned(), "--join".into(), join.to_string(), "--count".into(), count.to_string()];
    if let Some(r) = rate {
        a.extend(["--rate".into(), r.to_string()]);
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Probe time

/// Name prefixes of the programs that run at every system call of the host, not only the
/// storm's: the 32-bit ABI's (`compat_sys_exit`, in builds before the exit-reported families)
/// and the raw exit program that serves it and those families (`raw_sys_exit`). The kernel
/// keeps 15 bytes of a name.
pub const COMPAT_PREFIXES: [&str; 2] = ["compat_sys_", "raw_sys_exit"];

/// Whether a program runs at every system call of the host. Not those the exit program
/// tail-calls, the network family's (`raw_sys_exit_net`, "raw_sys_exit_ne" in the kernel) and
/// the file-access family's two (`raw_sys_exit_file`, "raw_sys_exit_fi", and
/// `raw_sys_exit_handle`, "raw_sys_exit_ha"): a tail call is not a run of its own: its time is
/// in the exit program's run.
pub fn on_every_syscall(name: &str) -> bool {
    COMPAT_PREFIXES.iter().any(|p| name.starts_with(p)) && !TAIL_CALLED.iter().any(|p| name.starts_with(p))
}

/// The kernel's names (15 bytes) of the programs the exit program tail-calls.
const TAIL_CALLED: [&str; 3] = ["raw_sys_exit_ne", "raw_sys_exit_fi", "raw_sys_exit_ha"];

/// The kernel's accounting of an agent's BPF programs (`kernel.bpf_stats_enabled` must be on):
/// all of them, and the compat programs among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeTime {
    pub ns: u64,
    pub runs: u64,
    pub compat_ns: u64,
    pub compat_runs: u64,
    /// How many compat programs there are (each runs once per system call).
    pub compat_programs: u64,
}

impl ProbeTime {
    pub fn read(agent: u32) -> Result<ProbeTime> {
        let mut t = ProbeTime::default();
        for p in system::bpf_programs(agent)? {
            t.ns += p.run_time_ns;
            t.runs += p.run_cnt;
            if on_every_syscall(&p.name) {
                t.compat_ns += p.run_time_ns;
                t.compat_runs += p.run_cnt;
                t.compat_programs += 1;
            }
        }
        Ok(t)
    }

    /// Whether the agent has compat programs at all (they always run, so they have runs).
    pub fn has_compat(agent: u32) -> Result<bool> {
        Ok(system::bpf_programs(agent)?.iter().any(|p| on_every_syscall(&p.name)))
    }

    pub fn since(&self, earlier: &ProbeTime) -> ProbeTime {
        ProbeTime {
            ns: self.ns.saturating_sub(earlier.ns),
            runs: self.runs.saturating_sub(earlier.runs),
            compat_ns: self.compat_ns.saturating_sub(earlier.compat_ns),
            compat_runs: self.compat_runs.saturating_sub(earlier.compat_runs),
            compat_programs: self.compat_programs,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// Busy time of the machine, the agent, and this process at one moment.
pub struct Load {
    at: Instant,
    machine: Duration,
    /// The agent's threads: (CPU ns from their schedstat, context switches). Its CPU is the
    /// scheduler's own count to the nanosecond, not /proc/PID/stat's 10 ms ticks (over a 5,000-exec
    /// storm a tick is 2 µs per exec); its context switches are its wake-ups, which on these VMs
    /// cost far more than the work they wake it for.
    agent_threads: BTreeMap<u32, (u64, system::Switches)>,
    /// The agent's utime + stime in ticks, which keeps the time of threads that ended: a check.
    agent_ticks: Duration,
    own: Duration,
}

impl Load {
    pub fn sample(agent: Option<u32>) -> Result<Load> {
        Ok(Load {
            at: Instant::now(),
            machine: system::machine_busy()?,
            agent_threads: agent.map(system::threads).transpose()?.unwrap_or_default(),
            agent_ticks: agent.map(system::cpu_time).transpose()?.unwrap_or_default(),
            own: system::cpu_time(std::process::id())?,
        })
    }

    /// The agent's context switches since `earlier` (a thread born meanwhile from zero; one that
    /// ended meanwhile takes its own with it: a lower bound, exact for the one-thread runtime's
    /// storms).
    pub fn agent_switches_since(&self, earlier: &Load) -> system::Switches {
        system::threads_delta(&earlier.agent_threads, &self.agent_threads).1
    }

    /// CPU the agent used since `earlier`, to the nanosecond. Should a thread that worked
    /// meanwhile have ended (its schedstat gone with it, the ticks keeping its time), the ticks'
    /// figure, said on stdout.
    pub fn agent_since(&self, earlier: &Load) -> Duration {
        let exact = Duration::from_nanos(system::threads_delta(&earlier.agent_threads, &self.agent_threads).0);
        let ticks = self.agent_ticks.saturating_sub(earlier.agent_ticks);
        let tick = Duration::from_secs_f64(1.0 / system::clock_ticks_per_second() as f64);
        // Ticks sample: each reading may be a tick off either way, and a busy stretch shorter
        // than a tick can be charged a whole one.
        if ticks > exact + 3 * tick + exact / 10 {
            println!(
                "  note: the agent's threads account for {:.1} ms of CPU, its ticks for {:.0} ms: a thread that worked \
                 ended meanwhile; the ticks' figure is used",
                exact.as_secs_f64() * 1e3,
                ticks.as_secs_f64() * 1e3
            );
            return ticks;
        }
        exact
    }

    /// CPUs' worth of work by everything else (not the agent, not us, not `workers` CPU) since
    /// `earlier`: a busy machine makes the numbers unreliable.
    pub fn others_since(&self, earlier: &Load, workers: Duration) -> f64 {
        let s = |d: Duration| d.as_secs_f64();
        let others = s(self.machine.saturating_sub(earlier.machine))
            - s(self.agent_since(earlier))
            - s(self.own.saturating_sub(earlier.own))
            - s(workers);
        others.max(0.0) / self.at.duration_since(earlier.at).as_secs_f64().max(1e-3)
    }
}

/// `net.unix.max_dgram_qlen` = 1024 while it lives (like the Docker path), when we may.
pub fn raise_qlen() -> Option<system::DgramQlen> {
    match system::DgramQlen::set(1024) {
        Ok(g) => Some(g),
        Err(e) => {
            println!("  warning: {e:#}: the sink's queue keeps its current length");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_member_by_member() {
        let mut base = serde_json::json!({"ebpf": {"budget_per_second": 0}, "repeat_window": 0});
        merge(&mut base, &serde_json::json!({"ebpf": {"file_access": false}, "repeat_window": 5}));
        assert_eq!(
            base,
            serde_json::json!({"ebpf": {"budget_per_second": 0, "file_access": false}, "repeat_window": 5})
        );
    }

    #[test]
    fn only_the_attached_exit_programs_run_at_every_system_call() {
        // The kernel's 15-byte names.
        for name in ["raw_sys_exit", "compat_sys_exit"] {
            assert!(on_every_syscall(name), "{name}");
        }
        for name in ["raw_sys_exit_ne", "raw_sys_exit_fi", "raw_sys_exit_ha", "sys_exit_connect", "io_uring_compl"] {
            assert!(!on_every_syscall(name), "{name}");
        }
    }

    #[test]
    fn parses_timestamps() {
        assert_eq!(rfc3339_ns("2026-11-27T15:14:35.014659607Z"), Some(1_795_792_475_014_659_607));
        assert_eq!(rfc3339_ns("2026-11-27T15:14:35.014659Z"), Some(1_795_792_475_014_659_000));
        assert_eq!(rfc3339_ns("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(rfc3339_ns("2000-03-01T00:00:00Z"), Some(951_868_800_000_000_000));
        assert_eq!(rfc3339_ns("2026-11-27 15:14:35Z"), None);
    }

    #[test]
    fn reads_log_counters() {
        let l = "2026-11-27T16:36:35.838163Z  INFO container inventory loaded: their processes are traced containers=1 processes=1 took_ms=0";
        let kv = key_values(l);
        assert_eq!(kv.get("containers"), Some(&1));
        assert_eq!(kv.get("took_ms"), Some(&0));
        let s = key_values("INFO docker-listener stopped stats=ebpf_records=4 ebpf_lost=0");
        assert_eq!(s.get("ebpf_records"), Some(&4));
    }

    #[test]
    fn parses_agent_events() -> Result<()> {
        let frame = br#"1:Wazuh-Docker:{"integration":"docker","@timestamp":"2026-11-27T16:36:38.195738028Z","event":{"kind":"event","action":"exec"},"process":{"pid":8311,"args":["/bin/true","mark-1"]},"container":{"id":"9d45","name":"x"}}"#;
        let ev: Event = serde_json::from_slice(&frame[FRAME_HEADER.len()..])?;
        assert!(ev.has_arg("mark-1"));
        assert_eq!(ev.container_id(), "9d45");
        assert_eq!(ev.time_ns(), rfc3339_ns("2026-11-27T16:36:38.195738028Z"));
        let loss = br#"{"integration":"docker","event":{"kind":"metric","action":"events-lost"},"docker_listener":{"loss":{"reason":"ebpf","events":3,"events_total":3}}}"#;
        let ev: Event = serde_json::from_slice(loss)?;
        assert_eq!(ev.ebpf_lost(), Some(3));
        Ok(())
    }
}
