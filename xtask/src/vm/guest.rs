//! `vm-guest`: the checker of `cargo xtask kernel-matrix`, the same binary in every VM and on
//! the host.
//!
//! It runs the agent against a made-up container and checks, field by field, the process and
//! socket events the agent reports for it:
//!
//! 1. a fake Docker Engine API on a Unix socket, with one running container ([`fake_docker`]);
//! 2. a Unix datagram socket where Wazuh's queue would be, collecting every datagram;
//! 3. the container's cgroup, `<cgroup2 mount>/docker/<id>`, where Docker's cgroupfs driver puts
//!    one: the agent's default `ebpf.cgroup_prefixes` match it, so its kernel filter traces it;
//! 4. the agent (`--queue`, `--docker-host`, `--state-dir`), until it logs that its container
//!    inventory is loaded and it has inspected the container;
//! 5. the workload ([`expect::script`]): busybox's shell, moved into the cgroup and into a
//!    network namespace of its own between fork and exec, running busybox's applets and the two
//!    C programs of `--programs` (32-bit system calls, io_uring);
//! 6. the checks ([`expect::expected`], evaluated by [`check`], and the doors the agent's
//!    start-up log must say are open, [`expect::DOORS`]), one line each, then
//!    `vm-guest: PASS <n> checks` or `vm-guest: FAIL ...` (and a non-zero exit). The agent is
//!    always stopped, and the cgroup removed.
use std::{
    collections::hash_map::RandomState,
    ffi::{CStr, CString},
    hash::{BuildHasher as _, Hasher as _},
    io::{BufRead as _, BufReader},
    os::unix::{ffi::OsStrExt as _, net::UnixDatagram, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};

use super::{
    check::{self, CheckResult},
    expect::{self, ExecFile, Facts},
    fake_docker::{self, Container, FakeDocker},
};

/// What the host looks for in the checker's output.
pub const PASS: &str = "vm-guest: PASS";
pub const FAIL: &str = "vm-guest: FAIL";

/// Generous: under qemu's software emulation the agent's start-up (BTF, the BPF verifier) is
/// several times slower than on the host.
const AGENT_READY: Duration = Duration::from_secs(120);
const WORKLOAD: Duration = Duration::from_secs(60);
const EVENTS: Duration = Duration::from_secs(60);
const AGENT_STOP: Duration = Duration::from_secs(30);
/// Printing the rest of the agent's log (on a serial console, a verifier log of thousands of
/// lines) after it exited: at most this long.
const LOG_PRINTED: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The docker-listener binary to check.
    #[arg(long)]
    pub agent: PathBuf,
    /// busybox (its shell and applets are the workload).
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// The directory of the workload's static C programs (compat_net_32, uring_connect), which
    /// `cargo xtask kernel-matrix` builds into target/kernel-matrix and the VMs' /programs.
    #[arg(long, default_value = "/programs")]
    pub programs: PathBuf,
    /// Where to make the scratch directory (sockets, the agent's state), removed at the end.
    #[arg(long, default_value = "/tmp")]
    pub tmp: PathBuf,
}

/// Runs the checks; prints one line per check, then (on failure) what the agent sent and the
/// workload printed, then the verdict. An error is a FAIL too.
pub fn main(args: Args) -> Result<()> {
    let report = match run(&args) {
        Ok(r) => r,
        Err(e) => {
            println!("{FAIL}: {e:#}");
            bail!("the checks could not run (the reason is printed above)");
        }
    };
    let results = &report.results;
    let failed: Vec<&CheckResult> = results.iter().filter(|r| !r.ok).collect();
    for r in results {
        println!("vm-guest: {} {}", if r.ok { "ok  " } else { "FAIL" }, r.line);
    }
    if failed.is_empty() {
        println!("{PASS} {} checks", results.len());
        return Ok(());
    }
    for line in &report.diagnostics {
        println!("vm-guest: {line}");
    }
    let mut names: Vec<&str> = Vec::new();
    for name in failed.iter().map(|r| r.line.split(':').next().unwrap_or("?")) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    println!("{FAIL} {} of {} checks failed ({})", failed.len(), results.len(), names.join("; "));
    bail!("{} of {} checks failed (see the lines above)", failed.len(), results.len())
}

struct Report {
    results: Vec<CheckResult>,
    /// What helps read a failure: the container's events as received, the workload's output.
    diagnostics: Vec<String>,
}

fn run(args: &Args) -> Result<Report> {
    describe_kernel();
    let started = Instant::now();
    let scratch = Scratch::new(&args.tmp)?;
    let container = synthetic_container();
    let marker = format!("kmx-{}", &container.id[..12]);
    // The files the workload will execute, as the kernel will name them (looked at before it
    // runs: the checks compare the agent's events with these).
    let busybox = ExecFile::of(&args.busybox)?;
    let marker_program = ExecFile::of(Path::new(expect::MARKER_PROGRAM))?;
    let program = |name: &str| {
        ExecFile::of(&args.programs.join(name)).with_context(|| {
            format!(
                "the workload's program {name} is not in {} (cargo xtask kernel-matrix builds it from \
                 tests/programs/{name}.c; --programs names the directory)",
                args.programs.display()
            )
        })
    };
    let compat = program(expect::COMPAT_PROGRAM)?;
    let uring = program(expect::URING_PROGRAM)?;
    let uring_open = program(expect::URING_OPEN_PROGRAM)?;
    let uring_change = program(expect::URING_CHANGE_PROGRAM)?;
    let open_in_root = program(expect::OPEN_IN_ROOT_PROGRAM)?;
    let thread_exec = program(expect::THREAD_EXEC_PROGRAM)?;
    let memfd = program(expect::MEMFD_PROGRAM)?;
    let ptrace = program(expect::PTRACE_PROGRAM)?;
    let unix_connect = program(expect::UNIX_CONNECT_PROGRAM)?;
    let pidfd_setns = program(expect::PIDFD_SETNS_PROGRAM)?;
    let docker_socket = scratch.0.join("docker.sock");
    let docker_socket_name = docker_socket.display().to_string();
    let docker_symlink = scratch.0.join("api");
    std::os::unix::fs::symlink(&docker_socket, &docker_symlink)
        .with_context(|| format!("cannot make the symlink {}", docker_symlink.display()))?;
    let docker_symlink_name = docker_symlink.display().to_string();
    let env = expect::program_env(
        [
            &compat,
            &uring,
            &uring_open,
            &uring_change,
            &open_in_root,
            &thread_exec,
            &memfd,
            &ptrace,
            &unix_connect,
            &pidfd_setns,
        ],
        &busybox,
        &docker_symlink_name,
    );
    let script = expect::script(&marker);
    // The shell's argv (sh, -c, the script, each NUL-terminated) must fit in what the agent
    // keeps, or its exec event comes cut and its check fails for a reason of the checker's.
    let argv = expect::shell_argv_bytes(&script);
    if argv > expect::AGENT_ARGV_MAX {
        bail!(
            "the workload's script makes the shell's argv {argv} bytes, over the agent's {} (its default \
             ebpf.argv_max_bytes): shorten expect::script",
            expect::AGENT_ARGV_MAX
        );
    }
    println!(
        "vm-guest: the workload runs {} ({}, inode {}, device {}, {}); {} is {}",
        busybox.given,
        busybox.path,
        busybox.inode,
        busybox.device,
        busybox.filesystem.unwrap_or("a filesystem this checker does not name"),
        marker_program.given,
        marker_program.path
    );
    println!(
        "vm-guest: and the programs {}, {}, {}, {}, {}, {}, {}, {}, {} and {}",
        compat.path,
        uring.path,
        uring_open.path,
        uring_change.path,
        open_in_root.path,
        thread_exec.path,
        memfd.path,
        ptrace.path,
        unix_connect.path,
        pidfd_setns.path
    );
    let fake = FakeDocker::start(&docker_socket, container.clone())?;
    let queue = Queue::bind(&scratch.0.join("queue"))?;
    let cgroup = ContainerCgroup::create(&container.id)?;
    println!("vm-guest: container {} ({}), cgroup {}", container.name, container.id, cgroup.dir.display());

    let mut agent = Agent::start(&args.agent, &queue.path, &fake.host(), &scratch.0.join("state"))?;
    let ready = agent.wait_ready(AGENT_READY)?;
    wait_until(Duration::from_secs(30), || fake.inspected()).with_context(|| {
        format!("the agent never inspected the container; requests to the fake Docker API: {:?}", fake.requests())
    })?;
    // The filter map is written right after the inventory's log line (see bench::ebpf::wait_ready).
    std::thread::sleep(Duration::from_millis(100));
    println!("vm-guest: agent ready after {:.1} s: {ready}", started.elapsed().as_secs_f64());

    let workload_started = Instant::now();
    let (sh_pid, status, output) = run_workload(&args.busybox, &cgroup, &scratch.0, &script, &env, &fake)?;
    println!("vm-guest: workload (pid {sh_pid}) ran in {:.1} s, {status}", workload_started.elapsed().as_secs_f64());
    let facts = Facts {
        container: &container,
        marker: &marker,
        script: &script,
        checker_pid: std::process::id(),
        sh_pid,
        busybox: &busybox,
        marker_program: &marker_program,
        compat: &compat,
        uring: &uring,
        uring_open: &uring_open,
        uring_change: &uring_change,
        open_in_root: &open_in_root,
        thread_exec: &thread_exec,
        memfd: &memfd,
        ptrace: &ptrace,
        unix_connect: &unix_connect,
        pidfd_setns: &pidfd_setns,
        docker_socket: &docker_socket_name,
        docker_symlink: &docker_symlink_name,
    };
    // The events of the doors this kernel does not have are not expected (the log must say
    // the doors are closed, below).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let closed = expect::closed_doors(release.trim());
    let expected: Vec<_> = expect::expected(&facts)
        .into_iter()
        .filter(|e| match expect::NEEDS.iter().find(|(name, door)| *name == e.name && closed.contains(door)) {
            Some((_, door)) => {
                println!("vm-guest: not expected here: {} (its door, {door}, is closed on {})", e.name, release.trim());
                false
            }
            None => true,
        })
        .collect();
    let waited = Instant::now();
    let all_there = wait_until(EVENTS, || {
        let events = check::container_events(&queue.frames(), &container.id);
        expected.iter().all(|e| check::find(&events, e).is_some())
    });
    if all_there.is_ok() {
        println!("vm-guest: every expected event arrived within {:.1} s", waited.elapsed().as_secs_f64());
    }
    let frames = queue.frames();
    let events = check::container_events(&frames, &container.id);
    let mut results = check::evaluate(&expected, &events);
    results.push(check::frame_check(&frames));
    let open: Vec<&str> = expect::DOORS.iter().copied().filter(|d| !closed.contains(d)).collect();
    results.extend(check::door_checks(&agent.log(), &open));
    results.extend(check::closed_door_checks(&agent.log(), closed));
    let exit = agent.stop();
    results.push(match exit {
        Ok(s) if s.success() => CheckResult { ok: true, line: "agent: exits 0 on SIGTERM".into() },
        Ok(s) => CheckResult { ok: false, line: format!("agent: exits 0 on SIGTERM: it exited with {s}") },
        Err(e) => CheckResult { ok: false, line: format!("agent: exits 0 on SIGTERM: {e:#}") },
    });
    let complaints = agent.complaints();
    println!(
        "vm-guest: the agent logged {} WARN/ERROR lines{}",
        complaints.len(),
        if complaints.is_empty() { "" } else { ":" }
    );
    for line in &complaints {
        println!("vm-guest:   {line}");
    }
    // The events in full, the workload's output, then what a CI excerpt (the output's last
    // lines) must show: the agent's counters that are not zero (losses, records held back,
    // events without their container...) and one short line per event.
    let mut diagnostics = vec![format!("the container's events as received ({}):", events.len())];
    diagnostics.extend(events.iter().map(|e| format!("  {e}")));
    diagnostics.push("the workload's output:".into());
    diagnostics.extend(output.lines().map(|l| format!("  {l}")));
    diagnostics.push(format!("the agent's counters at exit, those not zero: {}", nonzero_stats(&agent.log())));
    diagnostics.push(match complaints.len() {
        0 => "the agent's WARN and ERROR lines: none".to_owned(),
        n => format!("the agent's WARN and ERROR lines: {n} (all printed above), the first 5:"),
    });
    diagnostics.extend(complaints.iter().take(5).map(|l| format!("  {l}")));
    diagnostics.push(format!("the same {} events in short:", events.len()));
    diagnostics.extend(events.iter().map(|e| format!("  {}", check::summary(e))));
    Ok(Report { results, diagnostics })
}

/// Prints what the checks depend on in this kernel, so a failure can be read against it.
fn describe_kernel() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let present = |p: &str| if Path::new(p).exists() { "present" } else { "MISSING" };
    println!(
        "vm-guest: kernel {}; BTF (/sys/kernel/btf/vmlinux) {}; tracefs (/sys/kernel/tracing/events) {}; cgroup2 at {}",
        release.trim(),
        present("/sys/kernel/btf/vmlinux"),
        present("/sys/kernel/tracing/events"),
        cgroup2_mount().map_or_else(|| "NONE".to_owned(), |p| p.display().to_string()),
    );
}

/// A container id no real one has (64 hex digits from this process's random hasher keys, the
/// time and the pid), and Docker's description of it.
fn synthetic_container() -> Container {
    let state = RandomState::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let id: String = (0..4u64)
        .map(|i| {
            let mut h = state.build_hasher();
            h.write_u64(i);
            h.write_u128(now.as_nanos());
            h.write_u32(std::process::id());
            format!("{:016x}", h.finish())
        })
        .collect();
    let started_ns = i64::try_from(now.as_nanos()).unwrap_or(i64::MAX);
    Container {
        image_id: format!("sha256:{}", id.chars().rev().collect::<String>()),
        id,
        name: "kernel-matrix".into(),
        image: "docker-listener-test/busybox:latest".into(),
        labels: [("org.docker-listener.check".to_owned(), "kernel-matrix".to_owned())].into_iter().collect(),
        started_at: fake_docker::rfc3339(started_ns),
        started_ns,
    }
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host),
/// from /proc/self/mountinfo, the way the agent finds it.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

/// Polls `done` every 50 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// The pieces

/// The scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tmp: &Path) -> Result<Scratch> {
        let dir = tmp.join(format!("dl-vm-guest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A datagram socket bound where Wazuh's queue would be; a thread keeps every datagram.
struct Queue {
    path: PathBuf,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Queue {
    fn bind(path: &Path) -> Result<Queue> {
        let sock = UnixDatagram::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frames.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("queue".into()).spawn(move || {
            let mut buf = vec![0u8; 1 << 17];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    f.lock().unwrap_or_else(PoisonError::into_inner).push(buf[..n].to_vec());
                }
            }
        })?;
        Ok(Queue { path: path.to_owned(), frames, stop, thread: Some(thread) })
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The container's cgroup v2 directory; on drop, whatever still runs in it is killed and it is
/// removed (and `<mount>/docker` too when this made it and it is empty).
struct ContainerCgroup {
    dir: PathBuf,
    made_parent: Option<PathBuf>,
}

impl ContainerCgroup {
    fn create(id: &str) -> Result<ContainerCgroup> {
        let mount = cgroup2_mount().context(
            "no cgroup2 mount in /proc/self/mountinfo: the agent traces containers by their cgroup v2 \
             (mount -t cgroup2 cgroup2 /sys/fs/cgroup)",
        )?;
        let parent = mount.join("docker");
        let made_parent = if parent.is_dir() {
            None
        } else {
            std::fs::create_dir(&parent).with_context(|| format!("cannot create the cgroup {}", parent.display()))?;
            Some(parent.clone())
        };
        let dir = parent.join(id);
        let cgroup = ContainerCgroup { dir, made_parent };
        std::fs::create_dir(&cgroup.dir)
            .with_context(|| format!("cannot create the container's cgroup {} (not root?)", cgroup.dir.display()))?;
        Ok(cgroup)
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() && std::fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            for pid in pids {
                // SAFETY: plain kill(2) of a process in the cgroup we made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(p) = &self.made_parent {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// The agent under test; stopped (SIGTERM, then SIGKILL) on drop if still running.
struct Agent {
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// Prints the log as `agent| ...` lines, apart from the thread that reads it: a serial
    /// console prints a verifier log of thousands of lines far slower than the agent writes it,
    /// and the checker must see all of it at once.
    printer: Option<JoinHandle<()>>,
}

impl Agent {
    fn start(bin: &Path, queue: &Path, docker_host: &str, state: &Path) -> Result<Agent> {
        let mut child = Command::new(bin)
            .arg("--queue")
            .arg(queue)
            .arg("--docker-host")
            .arg(docker_host)
            .arg("--state-dir")
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                let hint = if bin.is_file() {
                    " (it exists: are its dynamic loader and shared libraries there? `ldd` lists them)"
                } else {
                    ""
                };
                format!("cannot start the agent {}{hint}", bin.display())
            })?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut printer = None;
        if let Some(stderr) = child.stderr.take() {
            let l = log.clone();
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            std::thread::Builder::new().name("agent-log".into()).spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    l.lock().unwrap_or_else(PoisonError::into_inner).push(line.clone());
                    let _ = tx.send(line);
                }
            })?;
            printer = Some(std::thread::Builder::new().name("agent-print".into()).spawn(move || {
                for line in rx {
                    println!("agent| {line}");
                }
            })?);
        }
        Ok(Agent { child: Some(child), log, printer })
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits for the inventory line and checks the probes are attached; returns the line that
    /// lists them. Fails at once when the agent says it cannot load its eBPF programs (it would
    /// go on with Docker events only, and log no inventory).
    fn wait_ready(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(at) = log.iter().position(|l| l.contains(EBPF_UNAVAILABLE)) {
                // The verifier's log follows the warning's first line: wait for the next record
                // (the agent goes on without eBPF) or its exit.
                let _ = wait_until(Duration::from_secs(10), || {
                    self.log().iter().skip(at + 1).any(|l| is_record_start(l))
                        || self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
                });
                bail!(
                    "the agent cannot load its eBPF programs on this kernel:\n{}",
                    log_digest(&self.log(), &[EBPF_UNAVAILABLE])
                );
            }
            if log.iter().any(|l| l.contains("container inventory loaded")) {
                let attached = log.iter().find(|l| l.contains("eBPF probes attached")).cloned();
                return attached.with_context(|| {
                    format!(
                        "the agent runs without eBPF (it never logged \"eBPF probes attached\"):\n{}",
                        log_digest(&log, &[])
                    )
                });
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the agent exited ({status}) before loading its container inventory:\n{}", log_digest(&log, &[]));
            }
            if Instant::now() > deadline {
                bail!(
                    "the agent did not log \"container inventory loaded\" within {timeout:?}:\n{}",
                    log_digest(&log, &[])
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait (SIGKILL after AGENT_STOP); its exit status.
    fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("the agent was already stopped")?;
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + AGENT_STOP;
        loop {
            if let Some(status) = child.try_wait()? {
                self.printed(LOG_PRINTED);
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent did not exit within {AGENT_STOP:?} of SIGTERM (killed)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `timeout`) until the printer has printed every line the agent wrote, so
    /// that what the checker prints next comes after them. The agent must have exited.
    fn printed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.printer.as_ref().is_some_and(|p| !p.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(p) = self.printer.take_if(|p| p.is_finished()) {
            let _ = p.join();
        }
    }

    /// Its WARN and ERROR lines.
    fn complaints(&self) -> Vec<String> {
        self.log().into_iter().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// The counters of the agent's \"docker-listener stopped\" line that are not zero.
fn nonzero_stats(log: &[String]) -> String {
    let Some(line) = log.iter().rev().find(|l| l.contains("docker-listener stopped")) else {
        return "(the agent did not log its counters at exit)".into();
    };
    let counters: Vec<&str> = line
        .split_whitespace()
        .map(|w| w.strip_prefix("stats=").unwrap_or(w))
        .filter(|w| w.split_once('=').is_some_and(|(k, v)| !k.is_empty() && v != "0"))
        .collect();
    counters.join(" ")
}

/// What the agent logs when it falls back to Docker events only.
const EBPF_UNAVAILABLE: &str = "eBPF is unavailable";

/// For an error message, the agent's log in short (all of it was printed above as `agent|`
/// lines, and is in the run's log file): each record (a line starting with a timestamp, and the
/// lines continuing it, such as a verifier log) that contains one of `needles` or is a WARN or
/// ERROR, as its first line and the last lines of its continuation, where a verifier log gives
/// its reason; then the log's last lines.
fn log_digest(log: &[String], needles: &[&str]) -> String {
    const FIRST_LINE: usize = 600;
    const CONTINUATION: usize = 12;
    const LAST: usize = 10;
    let cut = |l: &str| match l.char_indices().nth(FIRST_LINE) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_owned(),
    };
    let starts: Vec<usize> = (0..log.len()).filter(|&i| is_record_start(&log[i])).collect();
    let mut out = Vec::new();
    // The lines shown so far end here; the log's last lines follow unless already shown.
    let mut shown_to = 0;
    for (n, &start) in starts.iter().enumerate() {
        let first = &log[start];
        let end = starts.get(n + 1).copied().unwrap_or(log.len());
        let wanted = needles.iter().any(|w| first.contains(w)) || first.contains(" WARN ") || first.contains(" ERROR ");
        if !wanted {
            continue;
        }
        out.push(format!("  {}", cut(first)));
        let more = &log[start + 1..end];
        if more.len() > CONTINUATION {
            out.push(format!("  [{} lines left out]", more.len() - CONTINUATION));
        }
        out.extend(more[more.len().saturating_sub(CONTINUATION)..].iter().map(|l| format!("  {}", cut(l))));
        shown_to = end;
    }
    let last = log.len().saturating_sub(LAST).max(shown_to);
    if last < log.len() {
        let n = log.len() - last;
        out.push(format!("the agent's last {n} line{}:", if n == 1 { "" } else { "s" }));
        out.extend(log[last..].iter().map(|l| format!("  {}", cut(l))));
    }
    out.join("\n")
}

/// Whether an agent's log line starts a record: `2026-12-01T17:52:10.963238Z ...`.
fn is_record_start(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// Starts `busybox sh -c <script>` (with `env`: the programs' paths) as the container's first
/// process and waits for it: between fork and exec the child moves itself into the container's
/// cgroup (so even its exec is traced) and into a new network namespace (only `lo`, which the
/// script brings up: its sockets reach nothing but itself, in a VM or on the host). Returns its
/// pid, exit status and output.
fn run_workload(
    busybox: &Path,
    cgroup: &ContainerCgroup,
    scratch: &Path,
    script: &str,
    env: &[(&str, String)],
    fake: &FakeDocker,
) -> Result<(u32, ExitStatus, String)> {
    let procs = CString::new(cgroup.dir.join("cgroup.procs").as_os_str().as_bytes())
        .context("the cgroup path has a NUL byte")?;
    let out_path = scratch.join("workload.out");
    let out = std::fs::File::create(&out_path)?;
    let mut cmd = Command::new(busybox);
    cmd.arg0("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", "/bin:/usr/bin")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: the closure makes only async-signal-safe system calls and allocates nothing.
    unsafe { cmd.pre_exec(move || join_and_isolate(&procs)) };
    let mut child = cmd.spawn().with_context(|| {
        format!("cannot start {} in the container's cgroup {}", busybox.display(), cgroup.dir.display())
    })?;
    let pid = child.id();
    fake.set_pid(pid);
    let deadline = Instant::now() + WORKLOAD;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&out_path).unwrap_or_default();
            bail!("the workload did not finish within {WORKLOAD:?} (killed); its output:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((pid, status, std::fs::read_to_string(&out_path).unwrap_or_default()))
}

/// In the child, before exec: join the cgroup (writing "0" to `cgroup.procs` moves the writer),
/// bind a Unix socket to `expect::CHECKER_SOCKET` and leave the host's network namespace.
fn join_and_isolate(procs: &CStr) -> std::io::Result<()> {
    // SAFETY: open/write/close/socket/bind/unshare on valid arguments; no allocation.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != 1 {
            return Err(err);
        }
        // A socket call before the exec, the first of the child's records the agent meets: a
        // Unix socket bound to an abstract name (no file), which is not the shell's either.
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let name = expect::CHECKER_SOCKET.as_bytes();
        for (i, b) in name.iter().enumerate() {
            // sun_path[0] stays 0: an abstract name.
            addr.sun_path[1 + i] = *b as libc::c_char;
        }
        let len = (size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
        let r = libc::bind(s, (&raw const addr).cast(), len);
        let err = std::io::Error::last_os_error();
        libc::close(s);
        if r != 0 {
            return Err(err);
        }
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_counters_that_are_not_zero() {
        let log = vec![
            "agent| 2026-12-03T07:26:33.170176Z  INFO docker-listener stopped stats=docker_events_in=0 frames_out=58 ebpf_loss_args_read=1 x=0".to_owned(),
        ];
        assert_eq!(nonzero_stats(&log), "frames_out=58 ebpf_loss_args_read=1");
        assert!(nonzero_stats(&[]).contains("did not log"));
    }

    #[test]
    fn digests_the_log_to_its_warnings_and_the_verifier_s_reason() {
        let mut log = vec!["2026-12-01T17:52:07.302631Z  INFO docker-listener starting".to_owned()];
        log.push(format!("2026-12-01T17:52:10.963238Z  WARN {EBPF_UNAVAILABLE}: ... Verifier output: 0: R1=ctx()"));
        log.extend((0..100).map(|i| format!("{i}: (bf) r7 = r1")));
        log.push("math between alloc_mem pointer and register with unbounded min value is not allowed".into());
        log.push("2026-12-01T17:52:12.912375Z  INFO connected to Docker".into());
        let d = log_digest(&log, &[EBPF_UNAVAILABLE]);
        assert!(!d.contains("docker-listener starting"), "{d}");
        assert!(d.contains("WARN eBPF is unavailable"), "{d}");
        assert!(d.contains("[89 lines left out]"), "{d}");
        assert!(d.contains("unbounded min value is not allowed"), "{d}");
        assert!(!d.contains("\n  10: (bf)"), "{d}");
        assert!(
            d.ends_with("the agent's last 1 line:\n  2026-12-01T17:52:12.912375Z  INFO connected to Docker"),
            "{d}"
        );
        assert_eq!(d.matches("unbounded min value").count(), 1, "shown once: {d}");
        assert!(!is_record_start("0: R1=ctx(off=0,imm=0) R10=fp0"));
    }
}
