//! `xtask bench-worker`: the load generator of the eBPF scenarios (a hidden subcommand).
//!
//! The eBPF probes trace a process by its cgroup, and a container's processes also live in its
//! namespaces, so a storm meant to run "in a container" must really be there. `docker exec`
//! would put it there but measures dockerd, runc and busybox's shell as much as the exec or
//! connect itself; instead this worker, started by the benchmark on the host:
//!
//! 1. moves itself into every cgroup of the container's init process (`/proc/<pid>/cgroup`:
//!    the cgroup v2 one is what the kernel filter looks at; the v1 ones on hybrid hosts too,
//!    best effort), through the hierarchies' mount points in `/proc/self/mountinfo`;
//! 2. while still single-threaded, enters the container's namespaces with `setns` on
//!    `/proc/<pid>/ns/*`: ipc, uts, net, pid (for its children) and mnt (so `/bin/true` is the
//!    container's busybox) for an exec storm; net only for a connect storm;
//! 3. prints `ready` and waits for a line on stdin (so the benchmark can start the agent now:
//!    its start-up inventory then finds the worker in the container, like any process that
//!    was running there before the agent, instead of learning about it from /proc at every
//!    exec of one of its children);
//! 4. runs the storm and prints one line of `key=value` results on stdout.
//!
//! Storms:
//! - `exec`: `count` times fork + `execve(program, [program, marker])` + `waitpid`, one at a
//!   time. The marker is how the benchmark finds this storm's exec events.
//! - `connect`: listens on 127.0.0.1 (an ephemeral port, in the joined network namespace: the
//!   container's own loopback), accepts in a second thread (accept + close), and makes `count`
//!   TCP connects from the main thread (socket + connect + close with `SO_LINGER` 0, so no
//!   TIME_WAIT pile-up exhausts the ephemeral ports), as fast as it can or paced at `rate`
//!   connects per second.
//! - `syscalls`: system calls as fast as it can, on command: after `ready`, each line on stdin
//!   is `<call> <count>` ([`Syscall`]) and is answered by one result line with the loop's time;
//!   the end of stdin ends the worker. Several loops in one process let the benchmark change
//!   what the kernel accounts between them (`kernel.bpf_stats_enabled`) without a new worker
//!   or a new agent. For the programs that see every system call of the host (the 32-bit ABI's,
//!   `compat.rs`), whose cost is per call and tiny, so only a loop of millions shows it; and for
//!   those that look at every open (the file-access family, at the open's exit), whose cost is
//!   per open: `open` loops on open + close of `/`, a file no rule names.
//!
//! Without `--join` the storm runs where the worker is: a plain host process.
use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(subcommand)]
    storm: Storm,
}

#[derive(Subcommand, Debug)]
enum Storm {
    /// fork + exec `program marker`, `count` times.
    Exec {
        /// Join the container whose init process has this (host) pid.
        #[arg(long)]
        join: Option<u32>,
        #[arg(long)]
        count: u64,
        /// The argument passed to every exec, to find its events.
        #[arg(long)]
        marker: String,
        #[arg(long, default_value = "/bin/true")]
        program: String,
    },
    /// TCP connects to a listener of our own on 127.0.0.1.
    Connect {
        #[arg(long)]
        join: Option<u32>,
        #[arg(long)]
        count: u64,
        /// Connects per second; as fast as possible when absent.
        #[arg(long)]
        rate: Option<u64>,
    },
    /// System call loops, one per line `<call> <count>` on stdin (`getppid`, `munmap`, `open`).
    Syscalls {
        #[arg(long)]
        join: Option<u32>,
    },
}

/// The system calls a `syscalls` worker loops on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    /// `getppid()`: a number no program of the agent looks at, the cheapest way through the
    /// system call entry and exit.
    Getppid,
    /// `munmap(1, 4096)`: fails at once with EINVAL (the address is not page-aligned) after
    /// taking the mm's lock. Its x86-64 number, 11, is ia32's `execve`, so a program that
    /// filters ia32 calls by number goes one step further for it (reads the task's TS_COMPAT):
    /// the worst case for native code.
    Munmap,
    /// `openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)` then `close(fd)`: one open
    /// per iteration, of a file no rule names. The file-access family inspects every open by a
    /// container process at the open's exit (the fd's file, its inode, the set of sensitive
    /// files), within 100 ns per open that is not of a sensitive file: this loop measures that.
    /// `/` is there in every mount namespace (the container's too), is always cached and needs
    /// no permission; the close keeps the fd table from growing. The loop runs in a child the
    /// worker forks, whose descriptor table is the default one (64 slots, embedded in its
    /// `files_struct`), as in a process runc starts in a container: the family reads the
    /// descriptor's file through typed pointers there.
    Open,
    /// The same loop in the worker itself, whose descriptor table has grown (it inherits the
    /// 256-slot table of the `cargo`/`xtask` processes it descends from; exec does not shrink
    /// it), as in a server that has had more than 64 descriptors open: the family then reads
    /// the descriptor's file with `bpf_probe_read_kernel`.
    OpenGrown,
    /// `openat(AT_FDCWD, "/nonexistent-...", O_RDONLY | O_CLOEXEC)`, failing with ENOENT: the
    /// most frequent failed open (the dynamic loader's and a shell's searches). A failed open
    /// opened nothing, so the file-access family compares the error with the refusals it
    /// reports (EPERM, EACCES, EROFS) and stops: this loop measures what that costs.
    OpenMissing,
    /// `write(fd, buf, 1)` to `/dev/null`: the most frequent system call of all. The network
    /// family looks at writes to find DNS queries on connected sockets, only those of processes
    /// that connected a socket to port 53 beyond a bit test: this loop measures what every
    /// other write pays.
    Write,
    /// `sendto(fd, 32 bytes, 127.0.0.1:PORT)` on an unconnected UDP socket, to one destination,
    /// received by a socket the worker bound there and never reads (the datagrams the full
    /// buffer refuses are dropped silently, as on a busy network): a UDP send storm. The network
    /// family inspects each (the socket, the destination, the flow map, which says it has been
    /// reported already).
    UdpSend,
    /// io_uring NOPs, 32 per `io_uring_enter`: a completion does nothing else. The file-access
    /// family's program for io_uring opens runs at every completion of every ring of the host
    /// (it reads the request's operation and stops for all but opens): this loop measures what
    /// every other completion pays.
    UringNop,
    /// `IORING_OP_OPENAT` of `/` (as `Open`), one request per `io_uring_enter`, then
    /// `close(fd)`: an io_uring open of a file no rule names. The file-access family makes each
    /// io_uring open's record by name at its submission (its directory's path walked, as for a
    /// refused open), keeps it until the completion, and there looks at the file the request
    /// opened: this loop measures what that costs an ordinary open.
    UringOpen,
}

/// NOPs per `io_uring_enter` in the `UringNop` loop.
pub const URING_BATCH: u32 = 32;

impl Syscall {
    pub const ALL: [Syscall; 9] = [
        Syscall::Getppid,
        Syscall::Munmap,
        Syscall::Open,
        Syscall::OpenGrown,
        Syscall::OpenMissing,
        Syscall::Write,
        Syscall::UdpSend,
        Syscall::UringNop,
        Syscall::UringOpen,
    ];

    /// The loop's word on the worker's stdin.
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Getppid => "getppid",
            Syscall::Munmap => "munmap",
            Syscall::Open => "open",
            Syscall::OpenGrown => "open-grown",
            Syscall::OpenMissing => "open-missing",
            Syscall::Write => "write",
            Syscall::UdpSend => "udp-send",
            Syscall::UringNop => "uring-nop",
            Syscall::UringOpen => "uring-open",
        }
    }

    /// How the tables show it.
    pub fn call(self) -> &'static str {
        match self {
            Syscall::Getppid => "getppid()",
            Syscall::Munmap => "munmap(1, 4096)",
            Syscall::Open => "openat(\"/\") + close()",
            Syscall::OpenGrown => "openat(\"/\") + close(), grown fd table",
            Syscall::OpenMissing => "openat(a missing file): ENOENT",
            Syscall::Write => "write(/dev/null, 1 byte)",
            Syscall::UdpSend => "sendto(UDP, 32 bytes, 127.0.0.1)",
            Syscall::UringNop => "io_uring NOP (32 per io_uring_enter)",
            Syscall::UringOpen => "io_uring OPENAT(\"/\") + close()",
        }
    }

    /// What one iteration of the loop is, as the tables' rows count it ("ns per ...").
    pub fn per(self) -> &'static str {
        match self {
            Syscall::Getppid | Syscall::Munmap | Syscall::Write | Syscall::UdpSend | Syscall::OpenMissing => "call",
            Syscall::Open | Syscall::OpenGrown | Syscall::UringOpen => "open+close (one open)",
            Syscall::UringNop => "completion",
        }
    }

    /// System calls per iteration (an io_uring NOP: a 32nd of one, counted as none).
    pub fn calls(self) -> u64 {
        match self {
            Syscall::Getppid | Syscall::Munmap | Syscall::Write | Syscall::UdpSend | Syscall::OpenMissing => 1,
            Syscall::Open | Syscall::OpenGrown | Syscall::UringOpen => 2,
            Syscall::UringNop => 0,
        }
    }

    /// Iterations of a loop given `count` calls per loop: an open + close costs 10-20 getppid
    /// (a path walk, a `struct file` allocated and freed; more in a container, whose `/` is an
    /// overlay), so a tenth of them makes a loop one to two times as long as the others' instead
    /// of ten to twenty, still with enough opens for a steady figure.
    pub fn iterations(self, count: u64) -> u64 {
        match self {
            Syscall::Getppid | Syscall::Munmap | Syscall::Write | Syscall::UringNop => count,
            // A loopback send is a whole trip through the network stack: ~10 getppid.
            Syscall::Open | Syscall::OpenGrown | Syscall::UringOpen | Syscall::UdpSend => (count / 10).max(1),
            // A path walk that fails at its last component: ~5 getppid.
            Syscall::OpenMissing => (count / 5).max(1),
        }
    }

    /// What each iteration must do; the worker counts those that did not.
    pub fn expected(self) -> &'static str {
        match self {
            Syscall::Getppid => "return",
            Syscall::Munmap => "fail with EINVAL",
            Syscall::Open | Syscall::OpenGrown => "open and close `/`",
            Syscall::OpenMissing => "fail with ENOENT",
            Syscall::Write => "write one byte",
            Syscall::UdpSend => "send 32 bytes",
            Syscall::UringNop => "complete",
            Syscall::UringOpen => "open `/` through the ring and close it",
        }
    }

    fn parse(name: &str) -> Result<Syscall> {
        Syscall::ALL.into_iter().find(|c| c.name() == name).with_context(|| {
            let names: Vec<&str> = Syscall::ALL.iter().map(|c| c.name()).collect();
            format!("unknown system call {name:?}: one of {}", names.join(", "))
        })
    }
}

pub fn main(args: WorkerArgs) -> Result<()> {
    match args.storm {
        Storm::Exec { join, count, marker, program } => {
            if let Some(pid) = join {
                join_container(pid, &["ipc", "uts", "net", "pid", "mnt"])?;
            }
            wait_for_go()?;
            let r = exec_storm(count, &program, &marker)?;
            println!("ok count={count} failed={} elapsed_ns={}", r.failed, r.elapsed.as_nanos());
        }
        Storm::Connect { join, count, rate } => {
            if let Some(pid) = join {
                join_container(pid, &["net"])?;
            }
            wait_for_go()?;
            let r = connect_storm(count, rate)?;
            println!(
                "ok count={count} failed={} accepted={} port={} elapsed_ns={}",
                r.failed,
                r.accepted,
                r.port,
                r.elapsed.as_nanos()
            );
        }
        Storm::Syscalls { join } => {
            if let Some(pid) = join {
                join_container(pid, &["ipc", "uts", "net", "pid", "mnt"])?;
            }
            serve_syscall_loops()?;
        }
    }
    Ok(())
}

/// Says `ready`, then runs one loop per line of stdin and answers each with
/// `ok count=N failed=F elapsed_ns=T`; at the end of stdin, `ok loops=L`.
fn serve_syscall_loops() -> Result<()> {
    use std::io::{BufRead as _, Write as _};
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut loops = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read stdin")?;
        let mut words = line.split_whitespace();
        let (Some(call), Some(count)) = (words.next(), words.next()) else {
            bail!("expected `<call> <count>`, got {line:?}");
        };
        let call = Syscall::parse(call)?;
        let count: u64 = count.parse().with_context(|| format!("not a count: {count:?}"))?;
        let (failed, elapsed) = syscall_loop(call, count);
        writeln!(out, "ok count={count} failed={failed} elapsed_ns={}", elapsed.as_nanos())?;
        out.flush()?;
        loops += 1;
    }
    writeln!(out, "ok loops={loops}")?;
    Ok(())
}

/// `count` iterations of `call`, back to back; how many did not end as expected, and the time.
fn syscall_loop(call: Syscall, count: u64) -> (u64, Duration) {
    let mut failed = 0;
    let started = Instant::now();
    match call {
        Syscall::Getppid => {
            for _ in 0..count {
                // SAFETY: no arguments, no memory touched.
                std::hint::black_box(unsafe { libc::getppid() });
            }
        }
        Syscall::Munmap => {
            // Not page-aligned: EINVAL whatever is mapped, nothing is ever unmapped.
            let addr = std::hint::black_box(1usize) as *mut libc::c_void;
            for _ in 0..count {
                // SAFETY: an unaligned address is refused before anything is looked up.
                if unsafe { libc::munmap(addr, 4096) } != -1 {
                    failed += 1;
                }
            }
        }
        Syscall::OpenGrown => failed = open_loop(count),
        Syscall::OpenMissing => {
            for _ in 0..count {
                // SAFETY: a NUL-terminated path; nothing is opened.
                let fd = unsafe {
                    libc::openat(libc::AT_FDCWD, c"/nonexistent-dl-bench".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
                };
                if fd != -1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
                    failed += 1;
                }
            }
        }
        Syscall::Write => failed = write_loop(count),
        Syscall::UringNop => failed = uring_nop_loop(count),
        Syscall::UringOpen => failed = uring_open_loop(count),
        Syscall::UdpSend => failed = udp_loop(count),
        Syscall::Open => {
            // A child with the default descriptor table (see `Syscall::Open`); its exit status
            // says whether every iteration went as expected (the fork and the wait are ~0.1 ms
            // of a loop of about a second).
            // A fork's table is sized by the highest descriptor open in the parent: the worker
            // needs only 0-2, and closes what it inherited above them (cargo's jobserver pipe,
            // numbered in the hundreds), else the child's table would be the grown one again.
            // SAFETY: closing descriptors this process does not use.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            // SAFETY: the worker is single-threaded; the child only loops and exits.
            match unsafe { libc::fork() } {
                0 => {
                    let bad = open_loop(count);
                    // SAFETY: leaving the child at once, without running the parent's cleanup.
                    unsafe { libc::_exit(i32::from(bad > 0)) }
                }
                pid if pid > 0 => {
                    let mut status = 0;
                    // SAFETY: our own child.
                    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                    if waited != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                        failed = count;
                    }
                }
                _ => failed = count,
            }
        }
    }
    (failed, started.elapsed())
}

/// `count` opens and closes of `/`; how many did not succeed.
fn open_loop(count: u64) -> u64 {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let mut failed = 0;
    for _ in 0..count {
        // SAFETY: a NUL-terminated path; the fd is ours and closed at once.
        let fd = unsafe { libc::openat(libc::AT_FDCWD, c"/".as_ptr(), flags) };
        if fd < 0 || unsafe { libc::close(fd) } != 0 {
            failed += 1;
        }
    }
    failed
}

/// `count` io_uring NOPs, `URING_BATCH` per submission; how many did not complete with 0 (all,
/// if no ring can be made: io_uring refused).
fn uring_nop_loop(count: u64) -> u64 {
    use io_uring::{IoUring, opcode};
    let Ok(mut ring) = IoUring::new(URING_BATCH * 2) else { return count };
    let mut failed = 0;
    let mut left = count;
    while left > 0 {
        let n = left.min(u64::from(URING_BATCH)) as usize;
        for _ in 0..n {
            let nop = opcode::Nop::new().build();
            // SAFETY: a NOP refers to no buffer; the queue has room for a batch.
            if unsafe { ring.submission().push(&nop) }.is_err() {
                failed += 1;
            }
        }
        if ring.submit_and_wait(n).is_err() {
            return count;
        }
        failed += ring.completion().filter(|c| c.result() != 0).count() as u64;
        left -= n as u64;
    }
    failed
}

/// `count` opens of `/` through an io_uring (`IORING_OP_OPENAT`, one per submission), each
/// descriptor closed; how many did not open (all, if no ring can be made: io_uring refused).
fn uring_open_loop(count: u64) -> u64 {
    use io_uring::{IoUring, opcode, types};
    let Ok(mut ring) = IoUring::new(4) else { return count };
    let mut failed = 0;
    for _ in 0..count {
        let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), c"/".as_ptr())
            .flags(libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .build();
        // SAFETY: the path is a static NUL-terminated string; the queue has room for one.
        if unsafe { ring.submission().push(&open) }.is_err() || ring.submit_and_wait(1).is_err() {
            return count;
        }
        match ring.completion().next().map(|c| c.result()) {
            // SAFETY: closing the descriptor the ring just opened for this process.
            Some(fd) if fd >= 0 => unsafe {
                libc::close(fd);
            },
            _ => failed += 1,
        }
    }
    failed
}

/// `count` one-byte writes to /dev/null; how many did not write it (all, if it cannot be opened).
fn write_loop(count: u64) -> u64 {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else { return count };
    let fd = null.as_raw_fd();
    let mut failed = 0;
    for _ in 0..count {
        // SAFETY: one byte from a valid buffer to our own descriptor.
        if unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) } != 1 {
            failed += 1;
        }
    }
    failed
}

/// `count` 32-byte sendto from one unconnected UDP socket to a receiver bound on 127.0.0.1
/// that never reads; how many were refused (all, if the sockets cannot be made).
fn udp_loop(count: u64) -> u64 {
    use std::net::UdpSocket;
    let (Ok(rx), Ok(tx)) = (UdpSocket::bind("127.0.0.1:0"), UdpSocket::bind("0.0.0.0:0")) else { return count };
    let Ok(to) = rx.local_addr() else { return count };
    let mut failed = 0;
    for _ in 0..count {
        if tx.send_to(&[0u8; 32], to).is_err() {
            failed += 1;
        }
    }
    failed
}

/// Says `ready` on stdout and waits for a line (or the end) on stdin.
fn wait_for_go() -> Result<()> {
    use std::io::{BufRead as _, Write as _};
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read stdin")?;
    Ok(())
}

/// Moves this process into the cgroups of `pid` and enters its namespaces `ns` (in that order:
/// the cgroup files are host paths, which `mnt` would hide). Must run before any thread starts.
fn join_container(pid: u32, ns: &[&str]) -> Result<()> {
    join_cgroups(pid)?;
    // Open them all first: after entering the pid or mnt namespace, /proc/<pid> may not resolve.
    let mut fds = Vec::new();
    for name in ns {
        let path = format!("/proc/{pid}/ns/{name}");
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        fds.push((name, OwnedFd::from(file)));
    }
    for (name, fd) in &fds {
        // SAFETY: fd is an open namespace file; 0 lets the kernel check its type.
        if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
            bail!("cannot enter the {name} namespace of pid {pid}: {}", std::io::Error::last_os_error());
        }
    }
    if ns.contains(&"mnt") {
        std::env::set_current_dir("/").context("cannot chdir to the container's root")?;
    }
    Ok(())
}

/// Writes our pid into `cgroup.procs` of each of `pid`'s cgroups. The v2 one is required (it is
/// what the eBPF filter sees); v1 ones (hybrid hosts) are joined when their hierarchy is mounted.
fn join_cgroups(pid: u32) -> Result<()> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("cannot read /proc/{pid}/cgroup (is the container running?)"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    let mounts = cgroup_mounts(&mountinfo);
    let me = std::process::id().to_string();
    let mut joined_v2 = false;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Some(dir) = hierarchy_dir(&mounts, controllers, path) else {
            if controllers.is_empty() {
                bail!("no cgroup2 mount in /proc/self/mountinfo: cannot join the container's cgroup");
            }
            continue;
        };
        let procs = dir.join("cgroup.procs");
        match std::fs::write(&procs, &me) {
            Ok(()) => joined_v2 |= controllers.is_empty(),
            Err(e) if controllers.is_empty() => {
                return Err(e).with_context(|| format!("cannot join the container's cgroup: {}", procs.display()));
            }
            Err(e) => eprintln!("bench-worker: cannot join {} (v1, not needed): {e}", procs.display()),
        }
    }
    if !joined_v2 {
        bail!("pid {pid} has no cgroup v2 line in /proc/{pid}/cgroup");
    }
    Ok(())
}

/// A cgroup hierarchy's mount: its controllers (empty for cgroup2), the root it shows, and where.
struct CgroupMount {
    controllers: Vec<String>,
    root: String,
    mount_point: PathBuf,
}

/// cgroup and cgroup2 mounts from /proc/self/mountinfo:
/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTS`.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let l: Vec<&str> = left.split_whitespace().collect();
        let r: Vec<&str> = right.split_whitespace().collect();
        let (Some(root), Some(mount_point), Some(fstype)) = (l.get(3), l.get(4), r.first()) else { continue };
        let controllers = match *fstype {
            "cgroup2" => Vec::new(),
            "cgroup" => r
                .get(2)
                .map(|o| o.split(',').filter(|c| !matches!(*c, "rw" | "ro")).map(str::to_owned).collect())
                .unwrap_or_default(),
            _ => continue,
        };
        out.push(CgroupMount { controllers, root: (*root).to_owned(), mount_point: PathBuf::from(mount_point) });
    }
    out
}

/// The directory of cgroup `path` of the hierarchy with `controllers` ("" = cgroup v2).
fn hierarchy_dir(mounts: &[CgroupMount], controllers: &str, path: &str) -> Option<PathBuf> {
    let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
    let m = mounts.iter().find(|m| {
        if wanted.is_empty() {
            m.controllers.is_empty()
        } else {
            !m.controllers.is_empty() && wanted.iter().all(|w| m.controllers.iter().any(|c| c == w))
        }
    })?;
    let rel = path.strip_prefix(m.root.trim_end_matches('/')).unwrap_or(path);
    Some(m.mount_point.join(rel.trim_start_matches('/')))
}

struct ExecResult {
    failed: u64,
    elapsed: Duration,
}

/// `count` times: fork, exec `program marker` in the child, wait for it.
fn exec_storm(count: u64, program: &str, marker: &str) -> Result<ExecResult> {
    let prog = CString::new(program).context("the program path has a NUL byte")?;
    let mark = CString::new(marker).context("the marker has a NUL byte")?;
    let path_env = CString::new("PATH=/bin:/usr/bin").context("static string")?;
    let argv = [prog.as_ptr(), mark.as_ptr(), std::ptr::null()];
    let envp = [path_env.as_ptr(), std::ptr::null()];
    let mut failed = 0;
    let started = Instant::now();
    for _ in 0..count {
        // SAFETY: the worker is single-threaded here; the child only calls execve and _exit,
        // with pointers prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork failed: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            unsafe {
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child just forked.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            bail!("waitpid failed: {}", std::io::Error::last_os_error());
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            failed += 1;
        }
    }
    Ok(ExecResult { failed, elapsed: started.elapsed() })
}

struct ConnectResult {
    failed: u64,
    accepted: u64,
    port: u16,
    elapsed: Duration,
}

fn check(ret: libc::c_int, what: &str) -> Result<libc::c_int> {
    if ret < 0 {
        bail!("{what} failed: {}", std::io::Error::last_os_error());
    }
    Ok(ret)
}

fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A TCP socket (close-on-exec).
fn tcp_socket() -> Result<OwnedFd> {
    // SAFETY: plain system call; the fd is owned from here on.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }, "socket")?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn connect_storm(count: u64, rate: Option<u64>) -> Result<ConnectResult> {
    let listener = tcp_socket()?;
    let addr = loopback(0);
    // SAFETY: valid socket and sockaddr for the calls below.
    unsafe {
        check(libc::bind(listener.as_raw_fd(), (&addr as *const libc::sockaddr_in).cast(), SOCKADDR_IN_LEN), "bind")?;
        check(libc::listen(listener.as_raw_fd(), 4096), "listen")?;
    }
    let mut bound = loopback(0);
    let mut len = SOCKADDR_IN_LEN;
    // SAFETY: bound is a sockaddr_in of len bytes.
    check(
        unsafe { libc::getsockname(listener.as_raw_fd(), (&mut bound as *mut libc::sockaddr_in).cast(), &mut len) },
        "getsockname",
    )?;
    let port = u16::from_be(bound.sin_port);
    let listener = Arc::new(listener);
    let done = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let (listener, done) = (listener.clone(), done.clone());
        std::thread::Builder::new().name("acceptor".into()).spawn(move || {
            let mut accepted = 0u64;
            while accepted < count {
                // SAFETY: plain system call on our listening socket.
                let fd = unsafe {
                    libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
                };
                if fd >= 0 {
                    accepted += 1;
                    unsafe { libc::close(fd) };
                } else if done.load(Ordering::Acquire) {
                    break;
                }
            }
            accepted
        })?
    };

    let target = loopback(port);
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let interval = rate.filter(|r| *r > 0).map(|r| Duration::from_secs_f64(1.0 / r as f64));
    let mut failed = 0;
    let started = Instant::now();
    for i in 0..count {
        if let Some(iv) = interval {
            let due = started + iv.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let sock = tcp_socket()?;
        // SAFETY: valid socket, sockaddr and linger for the calls.
        unsafe {
            if libc::connect(sock.as_raw_fd(), (&target as *const libc::sockaddr_in).cast(), SOCKADDR_IN_LEN) != 0 {
                failed += 1;
            }
            // Reset instead of FIN: no TIME_WAIT left behind on this side.
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(sock);
    }
    let elapsed = started.elapsed();
    // Every successful connect is accepted; wake the acceptor if some failed.
    let waited = Instant::now();
    while !acceptor.is_finished() && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Release);
    // SAFETY: shutting down our listener makes a blocked accept return.
    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    let accepted = acceptor.join().map_err(|_| anyhow::anyhow!("the acceptor thread panicked"))?;
    Ok(ConnectResult { failed, accepted, port, elapsed })
}

/// How the benchmark starts a worker: this very binary (the release xtask) with `bench-worker`.
pub fn command() -> Result<std::process::Command> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench-worker");
    Ok(cmd)
}

/// Parses a worker's result line: `ok key=value ...`.
pub fn parse_result(stdout: &str) -> Result<std::collections::BTreeMap<String, u64>> {
    let line =
        stdout.lines().find(|l| l.starts_with("ok ")).with_context(|| format!("no result line in {stdout:?}"))?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_each_hierarchy() {
        let m = cgroup_mounts(MOUNTINFO);
        assert_eq!(m.len(), 3);
        let id = "/docker/0a36";
        assert_eq!(hierarchy_dir(&m, "", id), Some(PathBuf::from("/sys/fs/cgroup/unified/docker/0a36")));
        assert_eq!(hierarchy_dir(&m, "cpu", id), Some(PathBuf::from("/sys/fs/cgroup/cpu/docker/0a36")));
        assert_eq!(hierarchy_dir(&m, "name=systemd", id), Some(PathBuf::from("/sys/fs/cgroup/systemd/docker/0a36")));
        assert_eq!(hierarchy_dir(&m, "memory", id), None);
    }

    #[test]
    fn parses_results() -> Result<()> {
        let r = parse_result("noise\nok count=5 failed=0 elapsed_ns=123\n")?;
        assert_eq!(r.get("count"), Some(&5));
        assert_eq!(r.get("elapsed_ns"), Some(&123));
        Ok(())
    }
}
