//! What the benchmarks read from and set on the machine: a process's CPU time and memory from
//! /proc, the `net.unix.max_dgram_qlen` sysctl (raised for a run, restored afterwards), the
//! machine's description for the results (with what a wake-up and a system call cost on it), and
//! scratch directories.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// CPU time a process has used (user + system, all its threads, as /proc/<pid>/stat counts
/// it: in clock ticks, usually 10 ms).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    stat_cpu_time(&format!("/proc/{pid}/stat"))
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Result<Duration> {
    stat_cpu_time("/proc/thread-self/stat")
}

fn stat_cpu_time(path: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // The command name (field 2) is in parentheses and may contain spaces: fields count from
    // the last ')'. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unexpected /proc/<pid>/stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).with_context(|| format!("no field {} in {path}", i + 3))
    };
    let ticks = field(11)? + field(12)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64))
}

/// The run time in ns a `/proc/.../schedstat` file gives (its first field: the scheduler's own
/// accounting, to the nanosecond, where /proc/PID/stat counts 10 ms ticks).
pub fn schedstat_ns(path: &std::path::Path) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no run time in {}", path.display()))
}

/// What this machine charges a thread in CPU for one sleep and wake-up, and for one system call:
/// the floor under any forwarder's CPU per event is its sleeps per event times the first (a
/// preemption, a switch between two running threads, costs about a microsecond: BENCHMARKS.md,
/// "what the Docker path's excess over the floor is"). On a VM whose guest pages through the hypervisor (`nested_pvm`), a wake-up costs as
/// much as a hundred system calls.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// Per `epoll_wait` on an empty set that sleeps 1 ms and wakes on its timeout.
    pub wake_up: Duration,
    /// Per `getppid()`.
    pub syscall: Duration,
}

impl Costs {
    /// How the figures are measured, for the notes.
    pub const METHOD: &'static str = "a thread of the benchmark at the start of the run, on the otherwise idle \
        machine: CPU (its schedstat, ns) per `epoll_wait` on an empty set with a 1 ms timeout, 3 × 200, and per \
        `getppid()`, 3 × 100,000; the median of the three";

    /// `wake_up` × `switches` in µs: the part of a forwarder's CPU its sleeps and wake-ups
    /// account for, at this machine's price.
    pub fn waking_us(&self, switches: f64) -> f64 {
        switches * self.wake_up.as_secs_f64() * 1e6
    }
}

/// The row that gives `sleeps` (a "… sleeps per <op>…" row) at this machine's price of a
/// wake-up: "… sleeping and waking per <op>, sleeps × a wake-up's cost…", in µs, each sample from
/// the sleeps' sample of the same run. `None` when the price could not be measured (or the row
/// is not one of sleeps per operation).
pub fn waking(sleeps: &super::report::Metric, decimals: usize) -> Option<super::report::Metric> {
    let c = costs()?;
    let (who, rest) = sleeps.name.split_once("sleeps per ")?;
    let (op, label) = match rest.split_once(',') {
        Some((op, label)) => (op, format!(",{label}")),
        None => (rest, String::new()),
    };
    let mut row = super::report::Metric::new(
        &format!("{who}sleeping and waking per {op}, sleeps × a wake-up's cost{label}"),
        "µs",
        decimals,
        None,
    );
    row.samples = sleeps.samples.iter().map(|&s| c.waking_us(s)).collect();
    Some(row)
}

/// A thread's context switches, as its `/proc/.../status` counts them: the times it slept
/// (voluntary: it waited for something, and a wake-up brought it back) and the times it was
/// preempted (involuntary: it could have run on, another thread got the CPU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    pub slept: u64,
    pub preempted: u64,
}

impl Switches {
    pub fn total(self) -> u64 {
        self.slept + self.preempted
    }

    /// Those since `earlier` (a counter that went back, from zero).
    pub fn since(self, earlier: Switches) -> Switches {
        Switches {
            slept: self.slept.saturating_sub(earlier.slept),
            preempted: self.preempted.saturating_sub(earlier.preempted),
        }
    }
}

impl std::ops::Add for Switches {
    type Output = Switches;
    fn add(self, o: Switches) -> Switches {
        Switches { slept: self.slept + o.slept, preempted: self.preempted + o.preempted }
    }
}

impl std::iter::Sum for Switches {
    fn sum<I: Iterator<Item = Switches>>(iter: I) -> Switches {
        iter.fold(Switches::default(), |a, b| a + b)
    }
}

/// The two rows of a run's [`Switches`] per operation: "<who>sleeps per <op><label>" and
/// "<who>preemptions per <op><label>" (the first is what [`waking`] prices).
pub fn switch_rows(who: &str, op: &str, label: &str, decimals: usize) -> [super::report::Metric; 2] {
    [
        super::report::Metric::new(&format!("{who}sleeps per {op}{label}"), "sleeps", decimals, None),
        super::report::Metric::new(&format!("{who}preemptions per {op}{label}"), "preemptions", decimals, None),
    ]
}

/// Adds one run's `switches` over `ops` operations to the two [`switch_rows`].
pub fn push_switches(rows: &mut [super::report::Metric; 2], switches: Switches, ops: f64) {
    rows[0].samples.push(switches.slept as f64 / ops);
    rows[1].samples.push(switches.preempted as f64 / ops);
}

/// This machine's [`Costs`], measured once (the first call takes about a second); `None` if they
/// could not be (said once on stderr).
pub fn costs() -> Option<Costs> {
    static COSTS: std::sync::OnceLock<Option<Costs>> = std::sync::OnceLock::new();
    *COSTS.get_or_init(|| match std::thread::spawn(measure_costs).join() {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            eprintln!("xtask bench: the cost of a wake-up could not be measured: {e:#}");
            None
        }
        Err(_) => {
            eprintln!("xtask bench: the cost of a wake-up could not be measured: the thread panicked");
            None
        }
    })
}

fn measure_costs() -> Result<Costs> {
    let own = std::path::Path::new("/proc/thread-self/schedstat");
    // SAFETY: epoll_create1 takes no pointers; the descriptor is closed below.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        bail!("epoll_create1: {}", std::io::Error::last_os_error());
    }
    let per = |n: u32, f: &mut dyn FnMut()| -> Result<Duration> {
        let mut each = Vec::new();
        for _ in 0..3 {
            let start = schedstat_ns(own)?;
            for _ in 0..n {
                f();
            }
            each.push((schedstat_ns(own)? - start) / u64::from(n));
        }
        each.sort_unstable();
        Ok(Duration::from_nanos(each[1]))
    };
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: a valid descriptor and one event's room; nothing is registered, so it times out.
    let wake_up = per(200, &mut || unsafe {
        libc::epoll_wait(epfd, &mut ev, 1, 1);
    });
    // SAFETY: no arguments.
    let syscall = per(100_000, &mut || unsafe {
        libc::getppid();
    });
    // SAFETY: the descriptor made above, closed once.
    unsafe { libc::close(epfd) };
    Ok(Costs { wake_up: wake_up?, syscall: syscall? })
}

/// Per thread of `pid` (by tid): (CPU time in ns from `/proc/PID/task/TID/schedstat`, the
/// scheduler's own accounting to the nanosecond where /proc/PID/stat counts 10 ms ticks;
/// context switches from its `status`).
pub fn threads(pid: u32) -> Result<BTreeMap<u32, (u64, Switches)>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        let path = task?.path();
        let Some(tid) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let (Ok(ns), Ok(status)) =
            (schedstat_ns(&path.join("schedstat")), std::fs::read_to_string(path.join("status")))
        else {
            continue;
        };
        let switches = status_switches(&status);
        out.insert(tid, (ns, switches));
    }
    Ok(out)
}

/// The context switches a `/proc/.../status` text counts.
pub fn status_switches(status: &str) -> Switches {
    let count = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    Switches { slept: count("voluntary_ctxt_switches:"), preempted: count("nonvoluntary_ctxt_switches:") }
}

/// (CPU ns, context switches) between two readings: each thread's own difference, a thread born
/// meanwhile from zero. A thread that ended meanwhile is not counted (the settle time lets the
/// start-up's blocking threads end first: Tokio keeps an idle one 10 s).
pub fn threads_delta(
    before: &BTreeMap<u32, (u64, Switches)>,
    after: &BTreeMap<u32, (u64, Switches)>,
) -> (u64, Switches) {
    after.iter().fold((0, Switches::default()), |(ns, sw), (tid, (a_ns, a_sw))| {
        let (b_ns, b_sw) = before.get(tid).copied().unwrap_or_default();
        (ns + a_ns.saturating_sub(b_ns), sw + a_sw.since(b_sw))
    })
}

/// CPU time the whole machine has spent busy (all CPUs; user, nice, system, irq, softirq and
/// steal from the `cpu` line of /proc/stat), to tell how much else ran during a measurement.
pub fn machine_busy() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
    let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    Ok(Duration::from_secs_f64(busy as f64 / clock_ticks_per_second() as f64))
}

/// `sysconf(_SC_CLK_TCK)`: the unit of /proc's CPU times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Resident memory now and at its peak (VmRSS, VmHWM), in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = |key: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
            .with_context(|| format!("no {key} in {path}"))
    };
    Ok(Memory { rss: kib("VmRSS:")?, hwm: kib("VmHWM:")? })
}

/// Sends `signal` to `pid`.
pub fn kill(pid: u32, signal: libc::c_int) -> Result<()> {
    // SAFETY: plain system call; pid is a child we started.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
        bail!("cannot signal pid {pid}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

const MAX_DGRAM_QLEN: &str = "/proc/sys/net/unix/max_dgram_qlen";

pub fn max_dgram_qlen() -> Result<u32> {
    let v = std::fs::read_to_string(MAX_DGRAM_QLEN).with_context(|| format!("cannot read {MAX_DGRAM_QLEN}"))?;
    v.trim().parse().with_context(|| format!("{MAX_DGRAM_QLEN}: unexpected {v:?}"))
}

/// Sets `net.unix.max_dgram_qlen` while it lives and puts the old value back when dropped.
/// The value applies to sockets created afterwards (the kernel copies it into each new socket),
/// so the sink must be bound after this is set.
pub struct DgramQlen {
    previous: u32,
}

impl DgramQlen {
    /// Sets the sysctl to `value` (needs root). Returns the guard, or an error that says why
    /// it could not.
    pub fn set(value: u32) -> Result<DgramQlen> {
        let previous = max_dgram_qlen()?;
        if previous != value {
            std::fs::write(MAX_DGRAM_QLEN, format!("{value}\n"))
                .with_context(|| format!("cannot write {MAX_DGRAM_QLEN} (root needed)"))?;
        }
        Ok(DgramQlen { previous })
    }
}

impl Drop for DgramQlen {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(MAX_DGRAM_QLEN, format!("{}\n", self.previous)) {
            eprintln!("xtask bench: could not restore {MAX_DGRAM_QLEN} to {}: {e}", self.previous);
        }
    }
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns on the kernel's per-program run-time accounting (`kernel.bpf_stats_enabled`) while it
/// lives, and puts the old value back when dropped. Costs two clock reads per program run.
pub struct BpfStats {
    previous: String,
}

impl BpfStats {
    pub fn enable() -> Result<BpfStats> {
        BpfStats::set(true)
    }

    /// Turns the accounting on or off while the guard lives (off: to time what the programs
    /// cost without the accounting's own clock reads).
    pub fn set(on: bool) -> Result<BpfStats> {
        let previous = std::fs::read_to_string(BPF_STATS).with_context(|| format!("cannot read {BPF_STATS}"))?;
        std::fs::write(BPF_STATS, if on { "1\n" } else { "0\n" })
            .with_context(|| format!("cannot write {BPF_STATS} (root needed)"))?;
        Ok(BpfStats { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(BPF_STATS, &self.previous) {
            eprintln!("xtask bench: could not restore {BPF_STATS} to {}: {e}", self.previous.trim());
        }
    }
}

/// One BPF program a process holds open, with its kernel accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfProg {
    pub id: u32,
    /// The kernel's name of it: at most 15 bytes (`BPF_OBJ_NAME_LEN` - 1), so longer names are
    /// cut (`inet_sock_set_state_compat` is `inet_sock_set_s`).
    pub name: String,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// Every BPF program `pid` holds open: ids, `run_time_ns` and `run_cnt` from
/// /proc/<pid>/fdinfo (counted only while [`BpfStats`] is on), names from the kernel
/// (`BPF_PROG_GET_FD_BY_ID`, `BPF_OBJ_GET_INFO_BY_FD`; root). A program shared by several
/// descriptors is listed once.
pub fn bpf_programs(pid: u32) -> Result<Vec<BpfProg>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut out: Vec<BpfProg> = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else { continue };
        if !text.contains("prog_type:") {
            continue;
        }
        let field = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
        };
        let id = u32::try_from(field("prog_id:")).context("a BPF program id above 2^32 in fdinfo")?;
        if id == 0 || out.iter().any(|p| p.id == id) {
            continue;
        }
        out.push(BpfProg {
            id,
            name: bpf_prog_name(id)?,
            run_time_ns: field("run_time_ns:"),
            run_cnt: field("run_cnt:"),
        });
    }
    Ok(out)
}

/// The name the kernel keeps for BPF program `id`.
fn bpf_prog_name(id: u32) -> Result<String> {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    /// `struct bpf_prog_info` up to and including `name` (offset 64, 16 bytes): the kernel
    /// fills as much of it as we give.
    const INFO_LEN: usize = 80;
    const NAME: std::ops::Range<usize> = 64..80;
    // SAFETY: the attributes are the kernel's `union bpf_attr` members for each command (a
    // prog id; an fd, a length and a pointer to a buffer of that length), zero-padded.
    let mut by_id = [0u32; 3];
    by_id[0] = id;
    let fd =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_GET_FD_BY_ID, by_id.as_ptr(), std::mem::size_of_val(&by_id)) };
    if fd < 0 {
        bail!("cannot open BPF program {id} (root needed): {}", std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as libc::c_int) };
    let mut info = [0u8; INFO_LEN];
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = InfoAttr {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: INFO_LEN as u32,
        info: info.as_mut_ptr() as u64,
    };
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &attr as *const InfoAttr, std::mem::size_of::<InfoAttr>())
    };
    if r != 0 {
        bail!("cannot read the info of BPF program {id}: {}", std::io::Error::last_os_error());
    }
    let name = &info[NAME];
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..len]).into_owned())
}

/// A scratch directory, removed when dropped. Short paths: Unix socket paths are limited to
/// 107 bytes.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(label: &str) -> Result<ScratchDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("dl-bench-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cgroup (v2) of the benchmark's own, holding one process: the CPU time of all its threads,
/// those that ended too (`threads` loses a thread's time when it ends: the agent's blocking
/// threads live 10 s after their last task). Removed when dropped, its processes moved back up.
pub struct CpuCgroup(PathBuf);

impl CpuCgroup {
    pub fn new(label: &str) -> Result<CpuCgroup> {
        static N: AtomicU32 = AtomicU32::new(0);
        let mount = crate::vm::guest::cgroup2_mount().context(
            "no cgroup2 mount in /proc/self/mountinfo: the idle scenario measures the agent's CPU in a cgroup v2",
        )?;
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = mount.join(format!("dl-bench-{}-{label}-{n}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
        Ok(CpuCgroup(dir))
    }

    /// Moves `pid` (all its threads) into the cgroup.
    pub fn adopt(&self, pid: u32) -> Result<()> {
        let procs = self.0.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .with_context(|| format!("cannot move pid {pid} into {}", procs.display()))
    }

    /// The CPU time its processes used since they were moved in (`cpu.stat`'s `usage_usec`).
    pub fn cpu(&self) -> Result<Duration> {
        let path = self.0.join("cpu.stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let usec = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .with_context(|| format!("no usage_usec in {}", path.display()))?;
        Ok(Duration::from_micros(usec))
    }
}

impl Drop for CpuCgroup {
    /// Moves what still runs in it up, then removes it. A process killed a moment before (an
    /// error path of the scenario) may still be exiting and keep the cgroup busy: the move and
    /// the removal are retried for up to a second, and a cgroup still busy then is named.
    fn drop(&mut self) {
        for _ in 0..50 {
            if let (Ok(procs), Some(parent)) = (std::fs::read_to_string(self.0.join("cgroup.procs")), self.0.parent()) {
                for pid in procs.lines() {
                    let _ = std::fs::write(parent.join("cgroup.procs"), pid);
                }
            }
            match std::fs::remove_dir(&self.0) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!(
            "xtask bench: the cgroup {} is still busy and stays behind; remove it with `rmdir {}`",
            self.0.display(),
            self.0.display()
        );
    }
}

/// The machine the numbers come from, for the results.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory: String,
    pub rustc: String,
    pub commit: String,
    /// What a sleep and wake-up and a system call cost a thread here.
    pub costs: Option<Costs>,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel =
            std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()).unwrap_or_default();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(|v| v.trim().to_owned()))
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "unknown".into());
        let run = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| "unknown".into())
        };
        Machine {
            cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            cpu_model,
            kernel,
            memory,
            rustc: run("rustc", &["--version"]),
            commit: run("git", &["describe", "--always", "--dirty", "--abbrev=12"]),
            costs: costs(),
        }
    }

    /// "a sleep and wake-up costs a thread 31.2 µs of CPU, a system call 0.24 µs", for the
    /// results.
    pub fn costs_text(&self) -> String {
        match self.costs {
            Some(c) => format!(
                "a sleep and wake-up costs a thread {:.1} µs of CPU, a system call {:.2} µs",
                c.wake_up.as_secs_f64() * 1e6,
                c.syscall.as_secs_f64() * 1e6
            ),
            None => "the cost of a wake-up could not be measured".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_gives_sleeps_and_preemptions_apart() {
        let status = "Name:\tdl\nvoluntary_ctxt_switches:\t7460\nnonvoluntary_ctxt_switches:\t13078\n";
        let s = status_switches(status);
        assert_eq!(s, Switches { slept: 7460, preempted: 13078 });
        assert_eq!(s.total(), 20538);
        let earlier = Switches { slept: 460, preempted: 13100 };
        // A counter that went back (a thread that is not the same) counts from zero.
        assert_eq!(s.since(earlier), Switches { slept: 7000, preempted: 0 });
        assert_eq!(status_switches("Name:\tdl\n"), Switches::default());
    }

    #[test]
    fn only_sleeps_are_priced() {
        let Some(c) = costs() else { return };
        let mut rows = switch_rows("daemon ", "event", ", current", 3);
        push_switches(&mut rows, Switches { slept: 10, preempted: 30 }, 100.0);
        let [sleeps, preemptions] = rows;
        assert_eq!(sleeps.name, "daemon sleeps per event, current");
        assert_eq!(preemptions.samples, [0.3]);
        let row = waking(&sleeps, 2).expect("a row of sleeps");
        assert_eq!(row.name, "daemon sleeping and waking per event, sleeps × a wake-up's cost, current");
        assert!((row.samples[0] - 0.1 * c.wake_up.as_secs_f64() * 1e6).abs() < 1e-9);
        assert!(waking(&preemptions, 2).is_none());
    }
}
