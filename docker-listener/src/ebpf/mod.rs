//! The eBPF source: loads docker-listener-ebpf's programs with this run's settings (which
//! probes, argv limits, ring size, container cgroup prefixes, kernel struct offsets from BTF),
//! attaches them, and gives the monitor the ring buffer and the maps.
pub mod attach;
pub mod btf;
pub mod elf;
pub mod kfunc;
pub mod offsets;
pub mod preload;
pub mod record;

use std::{collections::HashSet, io, path::Path};

use aya::{
    Btf, Ebpf, EbpfLoader, Endianness,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use docker_listener_common::{FileId, PREFIX_CAP, PREFIXES, ProbeConfig, budget, container_state, loss, runtime_count};
use tokio::io::unix::AsyncFd;

use crate::config::{EbpfConfig, PathWalk};

/// The eBPF object built by build.rs from docker-listener-ebpf, its path walks unrolled: for
/// kernels without `bpf_loop` (before 5.17).
static OBJECT: std::sync::Mutex<Object<OBJECT_LEN>> = std::sync::Mutex::new(Object {
    _align: [],
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/docker-listener-ebpf")),
});
const OBJECT_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/docker-listener-ebpf")).len();

/// The same sources built with the `bpf-loop` feature: each path walk is a `bpf_loop`
/// callback, which the verifier walks for the states reaching the call, not for each of 64
/// unrolled steps (start-up: BENCHMARKS.md). For kernels with the helper (5.17+).
static LOOP_OBJECT: std::sync::Mutex<Object<LOOP_OBJECT_LEN>> = std::sync::Mutex::new(Object {
    _align: [],
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/docker-listener-ebpf-loop")),
});
const LOOP_OBJECT_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/docker-listener-ebpf-loop")).len();

/// An eBPF object's bytes, aligned as the ELF parser wants them, in writable memory (the
/// statics have interior mutability, so they live in `.data`): its kfunc calls are rewritten in
/// place before it is loaded and put back after (`kfunc`), which dirties the few pages they are
/// on where a copy would add its 3.5 MB to the start-up's memory peak (measured: VmHWM 28.6 ->
/// 32.5 MiB with a copy). Only the object loaded is read, so only its pages are in memory.
#[repr(C)]
struct Object<const N: usize> {
    _align: [u64; 0],
    bytes: [u8; N],
}

/// One of the two objects, locked for as long as it is read or rewritten.
enum Locked {
    Unrolled(std::sync::MutexGuard<'static, Object<OBJECT_LEN>>),
    Loop(std::sync::MutexGuard<'static, Object<LOOP_OBJECT_LEN>>),
}

/// Runs `test` on each embedded object (`looped`, its bytes), or skips it when the build has no
/// objects (`AYA_BUILD_SKIP`), which the end-to-end build (`DL_E2E=1`) must not be.
#[cfg(test)]
fn each_object(mut test: impl FnMut(bool, &mut [u8])) {
    for looped in [false, true] {
        let mut object = Locked::take(looped);
        if object.bytes().is_empty() {
            assert!(std::env::var("DL_E2E").as_deref() != Ok("1"), "the test build has no eBPF object");
            eprintln!("built without the eBPF object (AYA_BUILD_SKIP); skipping");
            return;
        }
        test(looped, object.bytes());
    }
}

impl Locked {
    /// The object with the path walk as a `bpf_loop` callback when `looped`, else the other.
    fn take(looped: bool) -> Locked {
        use std::sync::PoisonError;
        if looped {
            Locked::Loop(LOOP_OBJECT.lock().unwrap_or_else(PoisonError::into_inner))
        } else {
            Locked::Unrolled(OBJECT.lock().unwrap_or_else(PoisonError::into_inner))
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Locked::Unrolled(o) => &mut o.bytes,
            Locked::Loop(o) => &mut o.bytes,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "this binary was built without its eBPF object (AYA_BUILD_SKIP was set): rebuild with \
         `cargo xtask build`"
    )]
    NoObject,
    #[error(
        "not permitted to load eBPF programs: run docker-listener as root (or with CAP_BPF, \
         CAP_PERFMON and CAP_SYS_RESOURCE); the kernel said: {0}"
    )]
    NotPermitted(String),
    #[error(
        "tracefs is not mounted, so tracepoints cannot be attached: run `mount -t tracefs tracefs \
         /sys/kernel/tracing` (cargo xtask setup does it)"
    )]
    NoTracefs,
    #[error(
        "loading the eBPF object failed: {0}. `docker-listener doctor` checks the kernel's BPF, BTF \
         and tracefs; --no-ebpf runs with Docker events only"
    )]
    Load(String),
    #[error(
        "the kernel ({kernel}) refused the eBPF program {program}: its verifier said: {log}. The agent is \
         tested on Linux 5.10, 6.1, 6.12 and 6.18 (docs/KERNELS.md); on another kernel, report this with the \
         verifier's last lines, or run with --no-ebpf for Docker events only"
    )]
    Refused { program: &'static str, kernel: String, log: String },
    #[error("the eBPF object has no {0}: the object and the daemon were built from different sources")]
    Missing(&'static str),
    #[error(
        "attaching {program} failed: {detail}. `docker-listener doctor` checks tracefs and the \
         kernel; --no-ebpf runs with Docker events only"
    )]
    Attach { program: &'static str, detail: String },
    #[error(
        "the kernel filter map is full or refused cgroup {cgroup}: {detail}. Its events are not \
         traced; ebpf.ignore_images / ignore_labels / ignore_containers keep containers out of it"
    )]
    Map { cgroup: u64, detail: String },
    #[error(
        "cannot switch the eBPF programs' wake-up mode (the WAKEUP map): {0}. Events keep flowing, \
         at worst a second late; restart docker-listener if this repeats"
    )]
    Wakeup(String),
    #[error("reading the ring buffer failed: {0}. Restart docker-listener; if it repeats, report it")]
    Ring(#[from] io::Error),
}

impl EbpfError {
    fn from_load(e: impl std::fmt::Display + std::fmt::Debug) -> EbpfError {
        let text = format!("{e}: {e:?}");
        // EPERM is the missing capability. EACCES (also `PermissionDenied` to Rust) is the
        // verifier refusing a program, or an LSM refusing the call: not a matter of privileges.
        if text.contains("EPERM") || text.contains("Operation not permitted") {
            EbpfError::NotPermitted(cut_middle(&e.to_string(), LOAD_ERROR_MAX))
        } else {
            if text.len() > LOAD_ERROR_MAX {
                tracing::debug!(error = %text, "a program's load failed: the verifier's whole log");
            }
            EbpfError::Load(cut_middle(&text, LOAD_ERROR_MAX))
        }
    }
}

/// A program's load error: the verifier's refusal names the program and the kernel; the rest
/// as [`EbpfError::from_load`] says.
fn program_load_error(program: &'static str, e: aya::programs::ProgramError) -> EbpfError {
    if let aya::programs::ProgramError::LoadError { io_error, verifier_log } = &e
        && let Some(refused) = refused(program, io_error, &verifier_log.to_string(), kernel_release)
    {
        return refused;
    }
    EbpfError::from_load(e)
}

/// A failed `BPF_PROG_LOAD` that is the verifier's refusal: any error but EPERM (no
/// capability) that came with a verifier log (an LSM's EACCES comes without one).
fn refused(program: &'static str, error: &io::Error, log: &str, kernel: fn() -> String) -> Option<EbpfError> {
    if error.raw_os_error() == Some(libc::EPERM) || log.trim().is_empty() {
        return None;
    }
    let text = format!("{error}: {}", log.trim_end());
    if text.len() > LOAD_ERROR_MAX {
        tracing::debug!(program, log = %text, "the verifier's whole log of the refused program");
    }
    Some(EbpfError::Refused { program, kernel: kernel(), log: cut_middle(&text, LOAD_ERROR_MAX) })
}

/// Fault injection for the end-to-end tests, in test builds only (`debug_assertions`; the
/// release build and the packages never read it): with `DL_TEST_REFUSE_BPF_LOOP` set, the loop
/// object's `bpf_loop` calls are made calls of a helper no kernel has, and the verifier refuses
/// its walking programs as a kernel would that took `bpf_loop` but not these callbacks.
fn refuse_loops_for_tests() -> bool {
    cfg!(debug_assertions) && std::env::var_os("DL_TEST_REFUSE_BPF_LOOP").is_some()
}

/// With `DL_TEST_REFUSE_BPF_LOOP=hold` (test builds only), the refused first load runs a second
/// longer before it is replaced, so that a test sees its records counted as lost.
fn hold_replaced_for_tests() -> Option<std::time::Duration> {
    (cfg!(debug_assertions) && std::env::var_os("DL_TEST_REFUSE_BPF_LOOP").is_some_and(|v| v == "hold"))
        .then_some(std::time::Duration::from_secs(1))
}

/// Whether a tracepoint program may call `helper` here (a two-instruction program loaded to
/// see). A probe that cannot tell is taken for yes, and said: the programs then call it, and a
/// kernel without it refuses them by name.
fn has_helper(helper: aya::sys::BpfHelper, name: &str) -> bool {
    match aya::sys::is_helper_supported(aya::programs::ProgramType::TracePoint, helper) {
        Ok(has) => has,
        Err(e) => {
            // (Without the capabilities, the load that follows fails and says so.)
            let eperm = matches!(&e, aya::programs::ProgramError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::EPERM));
            if eperm {
                tracing::debug!(helper = name, error = %e, "cannot probe an eBPF helper without the capabilities");
            } else {
                tracing::warn!(helper = name, error = %e, "cannot tell whether this kernel has an eBPF helper: assuming it has");
            }
            true
        }
    }
}

/// `uname -r`, or what stands in for it.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "release unknown".into(), |r| r.trim().into())
}

/// Bytes of a load error kept in the start-up log, `doctor` and the agent-health event: the
/// verifier's log of a refused program runs to megabytes (every instruction it walked), which
/// no datagram holds; its head says what was loaded, its end why it was refused.
const LOAD_ERROR_MAX: usize = 4096;

/// `text` with its middle left out when it is longer than `max` bytes: its first quarter and
/// its last three quarters, and how much is missing between.
fn cut_middle(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut head = max / 4;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - (max - head);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} [… {} bytes of the verifier's log left out (RUST_LOG=debug logs them) …] {}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// A count of records one container's budget held back (`EbpfProbes::held_back`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBack {
    pub cgroup: u64,
    /// The budget's class (`docker_listener_common::budget`).
    pub class: usize,
    /// Since the agent started.
    pub total: u64,
}

/// Loaded and attached programs, ready to be drained.
pub struct EbpfProbes {
    /// Owns the programs and their links: dropping it detaches everything.
    _ebpf: Ebpf,
    pub ring: AsyncFd<RingBuf<MapData>>,
    containers: HashMap<MapData, u64, u32>,
    /// The same cgroups as bits (`CONTAINER_BITS`), and the cgroups this daemon tracks.
    container_bits: Array<MapData, u64>,
    tracked: HashSet<u64>,
    /// Cgroups the kernel may have marked `SET_PENDING` (made since the start: their opens are
    /// all sent until their container's sensitive files are resolved), since when, and the same
    /// as bits (`PENDING_BITS`).
    pending: std::collections::HashMap<u64, std::time::Instant>,
    pending_bits: Array<MapData, u64>,
    /// Entry 0 tells the programs whether to wake the monitor on commit (see `set_polling`).
    wakeup: Array<MapData, u32>,
    seq: PerCpuArray<MapData, u64>,
    loss: PerCpuArray<MapData, u64>,
    /// The container runtime's calls the programs did not send (`runtime.rs`).
    runtime_calls: PerCpuArray<MapData, u64>,
    /// The boot-clock time from which the kernel marks every process of the runtime (the
    /// programs attached); `None` when it marks none (`correlate::RuntimeMarks`).
    pub runtime_marked_from: Option<u64>,
    /// Records held back by the per-container budget, per cgroup (`budget.rs`).
    held: PerCpuHashMap<MapData, u64, u64>,
    /// Records held back in all (`HELD_COUNT`), and its value at the last walk of `held`.
    held_count: PerCpuArray<MapData, u64>,
    held_walked: u64,
    /// The enter/exit pairing maps (values as bytes: only their entries are counted; their
    /// sizes are docker-listener-ebpf's `PendingExec` and `PendingSock`, checked at the load).
    pending_exec: HashMap<MapData, u64, [u8; 24]>,
    pending_sock: HashMap<MapData, u64, [u8; 64]>,
    /// The sensitive files' inodes (`crate::sensitive`), and as bits (`SENSITIVE_BITS`).
    sensitive: HashMap<MapData, u64, u32>,
    sensitive_bits: Array<MapData, u64>,
    sensitive_inos: HashSet<u64>,
    /// Programs attached, for the log.
    pub attached: Vec<&'static str>,
    /// The ways activity reaches the agent here, and which are open (`attach`).
    pub doors: Vec<attach::Door>,
    /// Why parts are degraded (no BTF: no ppid/argv/socket details/fork records).
    pub degraded: Option<String>,
    /// Records of a first load replaced before anything read them (`loss::UNREAD_AT_FALLBACK`).
    unread_at_fallback: u64,
}

/// `bpf_map_update_elem` flags: only a new entry, only an existing one.
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// The word of a kernel bit set that holds `value`'s bit, and the bit in it: a value's bit is
/// `value % 65536` (`maps::bit_set` in the programs).
fn bit_of(value: u64) -> (u32, u64) {
    ((value as u32 >> 6) % docker_listener_common::BITS_WORDS, 1 << (value & 63))
}

/// Rewrites the word of a bit set (`CONTAINER_BITS`, `SENSITIVE_BITS`) that holds `value`'s
/// bit, from the values the set now holds.
fn write_bits(map: &mut Array<MapData, u64>, set: &HashSet<u64>, value: u64) {
    let slot = bit_of(value).0;
    let word = set.iter().map(|&v| bit_of(v)).filter(|(s, _)| *s == slot).fold(0u64, |w, (_, bit)| w | bit);
    if let Err(e) = map.set(slot, word, 0) {
        tracing::error!(error = %e, "a kernel bit set cannot be written: some opens are not checked");
    }
}

/// Sets or clears `value`'s bit in `PENDING_BITS`, keeping the word's other bits as the map
/// has them: the cgroup_mkdir program sets bits of cgroups the daemon has not heard of yet,
/// which a word rewritten from the daemon's own set would clear.
fn update_bit(map: &mut Array<MapData, u64>, value: u64, on: bool) {
    let (slot, mask) = bit_of(value);
    let written = map.get(&slot, 0).and_then(|w| map.set(slot, if on { w | mask } else { w & !mask }, 0));
    if let Err(e) = written {
        tracing::error!(
            error = %e,
            "the kernel's PENDING_BITS cannot be read or written: a new container's first opens may go unchecked \
             (on) or its opens stay sent to the agent (off); restart docker-listener if this repeats"
        );
    }
}

/// Gives the heap pages freed after loading back to the kernel: aya's parse of the kernel's BTF
/// in `EbpfLoader::new()` makes ~18 MiB of small allocations that are all freed by now but would
/// otherwise stay in the process's RSS (measured before the other parses were removed: 24 MiB
/// steady without this, see BENCHMARKS.md, density).
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl EbpfProbes {
    /// Loads the object with this run's settings and attaches the enabled probes.
    pub fn load(cfg: &EbpfConfig) -> Result<EbpfProbes, EbpfError> {
        if OBJECT_LEN == 0 || LOOP_OBJECT_LEN == 0 {
            return Err(EbpfError::NoObject);
        }
        // aya's `EbpfLoader::new()` parses all of the kernel's BTF into its own types (~18 MiB
        // for a moment), whatever it is told next; made first, before anything else of the
        // start-up is alive, that moment is the agent's memory peak, and the rest of the start
        // fits under it (measured: VmHWM 26 MiB, from 48 MiB with it made last; BENCHMARKS.md).
        // The loader is given no BTF: it would use it for CO-RE relocations, which the programs
        // have none of (the members they read are at the offsets `offsets::inspect` finds; a
        // unit test checks the object).
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        raise_memlock_limit();
        let mut pc = ProbeConfig::zeroed();
        pc.agent_tgid = std::process::id();
        pc.trace_host = u32::from(cfg.trace_host);
        pc.args_max = cfg.argv_max_bytes;
        pc.budget_rate = cfg.budget_per_second;
        pc.budget_burst = cfg.budget_burst;
        // Linux 5.11's helper; before it, the plain one, whose task the programs probe-read.
        let task_btf = has_helper(aya::sys::BpfHelper::BPF_FUNC_get_current_task_btf, "bpf_get_current_task_btf");
        pc.task_btf = u32::from(task_btf);
        // Linux 5.15's; before it, the registers are found on the task's stack.
        pc.task_pt_regs = u32::from(has_helper(aya::sys::BpfHelper::BPF_FUNC_task_pt_regs, "bpf_task_pt_regs"));
        pc.host_mnt_ns = crate::family::HostNamespaces::read()
            .inodes
            .iter()
            .find(|(_, t)| *t == "mnt")
            .and_then(|(ino, _)| u32::try_from(*ino).ok())
            .unwrap_or(0);
        for (i, p) in cfg.cgroup_prefixes.iter().take(PREFIXES).enumerate() {
            let n = p.len().min(PREFIX_CAP);
            pc.prefixes[i][..n].copy_from_slice(&p.as_bytes()[..n]);
            pc.prefix_len[i] = n as u32;
            pc.prefix_count = i as u32 + 1;
        }
        pc.exit_group_dead = exit_group_dead_offset().unwrap_or(0);
        use docker_listener_common::family::socket::sock_op;
        for (on, bit) in [
            (cfg.exec, docker_listener_common::COMPAT_EXEC),
            (cfg.connect, 1 << sock_op::CONNECT),
            (cfg.bind, 1 << sock_op::BIND),
            (cfg.listen, 1 << sock_op::LISTEN),
            (cfg.accept, 1 << sock_op::ACCEPT),
            (cfg.raw_sockets, 1 << sock_op::SOCKET),
        ] {
            if on {
                pc.compat_ops |= bit;
            }
        }
        set_exit_numbers(&mut pc, cfg);
        let mut degraded = None;
        let vmlinux = Path::new(offsets::VMLINUX_BTF);
        let info = match offsets::inspect(vmlinux) {
            Ok(info) => info,
            Err(e) => {
                degraded = Some(e.to_string());
                offsets::KernelInfo { exe_walk: Some("the kernel has no BTF".into()), ..offsets::KernelInfo::default() }
            }
        };
        pc.offsets = info.offsets;
        let o = &pc.offsets;
        if degraded.is_none()
            && (o.unix_peer_valid == 0 || o.sk_peer_pid == 0 || o.pid_tasks == 0 || o.direct_valid == 0)
        {
            tracing::warn!(
                "this kernel's BTF lacks a Unix socket's peer, sock.sk_peer_pid, struct pid's tasks or a task's \
                 cgroup: over a container's budget, its connects to Unix listeners of its own are not told from \
                 connects to listeners outside it (the Docker socket), and share their firsts' budget, so enough of \
                 them can hold back a connect to the Docker socket (counted, rule 100060); please report this with \
                 `uname -r`"
            );
        }
        if degraded.is_none() && info.exe_walk.is_none() && o.inode_ctime_unknown != 0 {
            tracing::warn!(
                "this kernel's BTF names no inode ctime (i_ctime, __i_ctime or i_ctime_sec): exec events carry no \
                 docker_listener.exec.file.ctime, and repeat and healthcheck folding cannot tell a program rewritten \
                 in place from the old one (its execs only by their arguments, its socket calls not at all); please \
                 report this with `uname -r`"
            );
        }
        // The kfunc calls, made real where a program calling the kfunc loads, else null.
        const HELPER_READS: &str = "files of grown descriptor tables (a process that had more than 64 descriptors \
                                    open) are read with helper calls: the same events, ~90 ns more per open";
        let cast = match info.rdonly_cast {
            Some(c) => match kfunc::probe(&c) {
                Ok(()) => Some(c),
                Err(e) => {
                    tracing::info!(error = %e, "this kernel refuses bpf_rdonly_cast to tracing programs: {HELPER_READS}");
                    None
                }
            },
            None => {
                tracing::info!("this kernel has no bpf_rdonly_cast (6.2+): {HELPER_READS}");
                None
            }
        };
        pc.offsets.file_type_id = cast.map_or(0, |c| c.file);
        // The BTF tracepoints' loads need a BTF of aya's own: the kernel's, cut after the types
        // they attach by (a few MiB, where all of it would be another ~18).
        let btf = match info.attach_btf.0.as_deref().map(|b| Btf::parse(b, Endianness::default())) {
            Some(Ok(btf)) => Some(btf),
            Some(Err(e)) => {
                // Not expected (offsets::inspect read the same bytes): the doors that need it
                // say they are closed, as on a kernel without BTF.
                tracing::warn!(
                    error = %e,
                    "aya cannot parse the kernel's BTF: the process tree (fork) and the system-call exit programs \
                     stay off (`docker-listener doctor` lists them); please report this with `uname -r`"
                );
                None
            }
            None => None,
        };
        drop(info.attach_btf);
        // Linux 5.17's: the path walks as its callback (far less for the verifier to walk).
        let looped = match cfg.path_walk {
            PathWalk::Unrolled => {
                tracing::info!(
                    "ebpf.path_walk is \"unrolled\": the path walks are unrolled, which the verifier takes longer \
                     to check at start-up"
                );
                false
            }
            PathWalk::Auto => {
                let looped = has_helper(aya::sys::BpfHelper::BPF_FUNC_loop, "bpf_loop");
                if !looped {
                    tracing::info!(
                        "this kernel has no bpf_loop (Linux 5.17): the path walks are unrolled, which the verifier \
                         takes longer to check at start-up"
                    );
                }
                looped
            }
        };
        let mut kernel = attach::Kernel {
            btf: btf.as_ref(),
            offsets: degraded.is_none(),
            exe_walk: info.exe_walk.clone().map_or(Ok(()), Err),
            drift: info.drift.clone().map_or(Ok(()), Err),
            compat_status: pc.offsets.task_ti_status != 0,
            pt_regs: &info.pt_regs,
            x32: info.x32,
            uring_opens: match &info.uring_opens {
                Some(why) => Err(why.clone()),
                None => info.exe_walk.clone().map_or(Ok(()), Err),
            },
            uring_changes: if pc.offsets.io_changes_valid == 0 {
                Err("the kernel's BTF lacks io_kiocb.cmd, filename.name, or io_rename's, io_link's or io_unlink's \
                     members"
                    .into())
            } else {
                Ok(())
            },
            walk_loop: looped,
            uring_fixed_opens: if pc.offsets.io_fixed_valid == 0 {
                Err("the kernel's BTF lacks where a ring's file table keeps its files (io_kiocb.ctx, io_open.file_slot, \
                     io_ring_ctx.file_table's nodes or files)"
                    .into())
            } else {
                Ok(())
            },
        };
        let runtime = crate::family::RuntimeBinaries::find();
        // Records of loads replaced before anything read them (`loss::UNREAD_AT_FALLBACK`).
        let unread = std::cell::Cell::new(0u64);
        // One object loaded and its programs attached.
        let mut attempt = |kernel: &attach::Kernel| -> Result<(Ebpf, attach::Attached), EbpfError> {
            let mut object = Locked::take(kernel.walk_loop);
            let rewritten = kfunc::rewrite(object.bytes(), cast.map(|c| c.func), task_btf)
                .map_err(|e| EbpfError::Load(e.to_string()))?;
            if !task_btf {
                tracing::info!(
                    calls = rewritten.task_calls(),
                    "this kernel has no bpf_get_current_task_btf (Linux 5.11): its calls are bpf_get_current_task's"
                );
            }
            if cast.is_some() {
                tracing::debug!(
                    calls = rewritten.calls(),
                    "files of grown descriptor tables are read through typed pointers (bpf_rdonly_cast)"
                );
            }
            let faulty = (kernel.walk_loop && refuse_loops_for_tests()).then(|| kfunc::refuse_loops(rewritten.bytes()));
            let loaded = loader
                .override_global("CONFIG", &pc, true)
                .map_max_entries("EVENTS", cfg.ring_buffer_bytes)
                .load(faulty.as_deref().unwrap_or(rewritten.bytes()));
            // (aya has copied the instructions: the object's calls are put back.)
            drop(rewritten);
            drop(object);
            let mut ebpf = loaded.map_err(EbpfError::from_load)?;
            // The runtime's binaries, before any program runs: its processes are known from
            // their exec on (`runtime.rs`).
            write_runtime_files(&mut ebpf, &runtime)?;
            match attach::attach(&mut ebpf, cfg, kernel) {
                Ok(attached) => Ok((ebpf, attached)),
                Err(e) => {
                    // The programs attached before the refusal ran meanwhile.
                    unread.set(unread.get() + unread_records(ebpf));
                    Err(e)
                }
            }
        };
        let discard = |outcome: Result<(Ebpf, attach::Attached), EbpfError>| {
            if let Ok((replaced, _)) = outcome {
                unread.set(unread.get() + unread_records(replaced));
            }
        };
        let mut outcome = attempt(&kernel);
        if looped {
            // A kernel with bpf_loop whose verifier refuses a walk as its callback (none of those
            // tested does: docs/KERNELS.md) still has the unrolled walk, which every verifier
            // since 5.10 takes.
            let refused: Vec<(&str, String)> = match &outcome {
                Ok((_, a)) => a.refused.clone(),
                Err(e @ EbpfError::Refused { program, .. }) if attach::WALKING.contains(program) => {
                    vec![(program, e.to_string())]
                }
                Err(_) => Vec::new(),
            };
            if let Some((_, first)) = refused.first() {
                tracing::warn!(
                    programs = refused.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "),
                    first = %first,
                    "this kernel refused the path walk as a bpf_loop callback: loading the unrolled walk instead \
                     (the same events; start-up takes longer). Set ebpf.path_walk to \"unrolled\" to load it \
                     first, and please report this with `uname -r` and the refusal"
                );
                let first_ok = outcome.is_ok();
                // The first object's programs are detached and unloaded before the second is
                // loaded: one set of maps and one ring buffer at a time. What they recorded
                // meanwhile (a container started then has its cgroup traced by the kernel) is
                // counted as lost.
                discard(outcome);
                kernel.walk_loop = false;
                outcome = match attempt(&kernel) {
                    Ok((ebpf, a)) if !first_ok || a.refused.len() < refused.len() => Ok((ebpf, a)),
                    second if !first_ok => second,
                    second => {
                        tracing::warn!("the unrolled walk fared no better: loading the bpf_loop walk again");
                        discard(second);
                        kernel.walk_loop = true;
                        attempt(&kernel)
                    }
                };
            }
        }
        let (mut ebpf, attach::Attached { programs: attached, doors, .. }) = outcome?;
        // Every process of the runtime started from now on is marked by the kernel, where it
        // can tell the host's mount namespace and sees execs and forks (`runtime.rs`); those
        // already running are marked now, so that their children are at their fork.
        let marks = pc.host_mnt_ns != 0
            && pc.offsets.mnt_ns_inum != 0
            && attached.contains(&"sched_process_exec")
            && attached.contains(&"sched_process_fork");
        let runtime_marked_from =
            (marks && mark_running_runtime(&mut ebpf, &runtime, pc.host_mnt_ns)).then(crate::ecs::Clock::boot_now);
        let unread_at_fallback = unread.get();
        if unread_at_fallback > 0 {
            tracing::warn!(
                records = unread_at_fallback,
                "the records of the eBPF object replaced at start were not read: reported as lost \
                 (`unread_at_fallback`). Setting ebpf.path_walk to \"unrolled\" avoids the replacement"
            );
        }
        if btf.is_none() {
            degraded.get_or_insert_with(|| "the kernel has no BTF".into());
        }

        let take = |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(EbpfError::Missing(name));
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let containers =
            HashMap::try_from(take(&mut ebpf, "CONTAINERS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let wakeup = Array::try_from(take(&mut ebpf, "WAKEUP")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let seq = PerCpuArray::try_from(take(&mut ebpf, "SEQ")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let loss = PerCpuArray::try_from(take(&mut ebpf, "LOSS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let held = PerCpuHashMap::try_from(take(&mut ebpf, "HELD")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let held_count =
            PerCpuArray::try_from(take(&mut ebpf, "HELD_COUNT")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let runtime_calls =
            PerCpuArray::try_from(take(&mut ebpf, "RUNTIME_CALLS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let pending_exec =
            HashMap::try_from(take(&mut ebpf, "PENDING_EXEC")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let pending_sock =
            HashMap::try_from(take(&mut ebpf, "PENDING_SOCK")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let sensitive = HashMap::try_from(take(&mut ebpf, "SENSITIVE")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let container_bits =
            Array::try_from(take(&mut ebpf, "CONTAINER_BITS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let sensitive_bits =
            Array::try_from(take(&mut ebpf, "SENSITIVE_BITS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        let pending_bits =
            Array::try_from(take(&mut ebpf, "PENDING_BITS")?).map_err(|e| EbpfError::Load(e.to_string()))?;
        // SAFETY: the RingBuf owns its map fd and keeps it open, unreplaced, for as long as the
        // AsyncFd (which owns the RingBuf) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| EbpfError::Ring(e.into()))?;
        let probes = EbpfProbes {
            _ebpf: ebpf,
            ring,
            containers,
            container_bits,
            tracked: HashSet::new(),
            pending: std::collections::HashMap::new(),
            pending_bits,
            wakeup,
            seq,
            loss,
            held,
            held_count,
            held_walked: 0,
            runtime_calls,
            runtime_marked_from,
            pending_exec,
            pending_sock,
            sensitive,
            sensitive_bits,
            sensitive_inos: HashSet::new(),
            attached,
            doors,
            degraded,
            unread_at_fallback,
        };
        drop(btf);
        release_freed_heap();
        Ok(probes)
    }

    /// Starts tracing a container cgroup.
    /// (An entry the cgroup_mkdir program made is left as it is: its `SET_PENDING` state is
    /// cleared by `settle`.)
    pub fn track(&mut self, cgroup: u64) -> Result<(), EbpfError> {
        match self.containers.insert(cgroup, container_state::TRACED, BPF_NOEXIST) {
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
            r => r.map_err(|e| EbpfError::Map { cgroup, detail: e.to_string() })?,
        }
        self.tracked.insert(cgroup);
        write_bits(&mut self.container_bits, &self.tracked, cgroup);
        Ok(())
    }

    /// Stops tracing a cgroup (ignored container, container gone).
    pub fn untrack(&mut self, cgroup: u64) {
        let _ = self.containers.remove(&cgroup);
        self.tracked.remove(&cgroup);
        write_bits(&mut self.container_bits, &self.tracked, cgroup);
        if self.pending.remove(&cgroup).is_some() {
            self.clear_pending_bit(cgroup);
        }
    }

    /// A cgroup the cgroup_mkdir program made (its record): the kernel marked it `SET_PENDING`
    /// when the file-access family is on. Its bit is set again here: the kernel's `|=` and
    /// the daemon's clearing of another cgroup's bit in the same word may each have lost it
    /// before the daemon read this record (a few milliseconds in all).
    pub fn note_pending(&mut self, cgroup: u64, now: std::time::Instant) {
        let marked = self.containers.get(&cgroup, 0).is_ok_and(|v| v & container_state::SET_PENDING != 0);
        if !marked {
            return;
        }
        self.pending.entry(cgroup).or_insert(now);
        update_bit(&mut self.pending_bits, cgroup, true);
    }

    /// Ends a cgroup's first moments: its container's sensitive files are in the kernel's map,
    /// or none will be (no container, an empty list, `PENDING_MAX` passed). Its opens are
    /// matched by inode from now on, no longer all sent. A write that fails is tried again by
    /// `settle_older` (within `PENDING_MAX`).
    pub fn settle(&mut self, cgroup: u64) {
        // Only an entry still there (not one removed with its cgroup meanwhile).
        match self.containers.insert(cgroup, container_state::TRACED, BPF_EXIST) {
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                tracing::warn!(
                    cgroup,
                    error = %e,
                    "a cgroup's first moments cannot be ended in the kernel (its CONTAINERS entry cannot be written): \
                     its opens stay sent to the agent, which keeps only sensitive ones; tried again within 10 s, \
                     restart docker-listener if this repeats"
                );
                self.pending.entry(cgroup).or_insert_with(std::time::Instant::now);
                return;
            }
            Ok(()) => {}
        }
        self.pending.remove(&cgroup);
        self.clear_pending_bit(cgroup);
    }

    /// Clears a cgroup's bit in `PENDING_BITS`, unless another pending cgroup it knows has the
    /// same bit.
    fn clear_pending_bit(&mut self, cgroup: u64) {
        let bit = bit_of(cgroup);
        if !self.pending.keys().any(|&v| bit_of(v) == bit) {
            update_bit(&mut self.pending_bits, cgroup, false);
        }
    }

    /// Whether the cgroup's first moments are known not to be over.
    pub fn is_pending(&self, cgroup: u64) -> bool {
        self.pending.contains_key(&cgroup)
    }

    /// Settles the cgroups pending for longer than `max` (a cgroup made inside a container
    /// whose files were resolved before it, a container Docker never reported, a resolution
    /// that keeps failing); returns how many.
    pub fn settle_older(&mut self, now: std::time::Instant, max: std::time::Duration) -> usize {
        let old: Vec<u64> =
            self.pending.iter().filter(|(_, since)| now.duration_since(**since) >= max).map(|(cg, _)| *cg).collect();
        for &cg in &old {
            self.settle(cg);
        }
        old.len()
    }

    /// Takes in the cgroups the kernel marked whose record the daemon never read (lost to a
    /// full ring buffer), so that `settle_older` ends their first moments too.
    pub fn adopt_pending(&mut self, now: std::time::Instant) {
        let marked: Vec<u64> = self
            .containers
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| v & container_state::SET_PENDING != 0)
            .map(|(cg, _)| cg)
            .collect();
        for cg in marked {
            self.pending.entry(cg).or_insert(now);
        }
    }

    /// Writes changes to the sensitive-file map; returns how many could not be written (the map
    /// is full: those files are not matched).
    pub fn apply_sensitive(&mut self, changes: &[crate::sensitive::MapChange]) -> usize {
        let mut failed = 0;
        for &(ino, bits) in changes {
            match bits {
                Some(b) if self.sensitive.insert(ino, b, 0).is_ok() => {
                    self.sensitive_inos.insert(ino);
                }
                Some(_) => failed += 1,
                None => {
                    let _ = self.sensitive.remove(&ino);
                    self.sensitive_inos.remove(&ino);
                }
            }
            write_bits(&mut self.sensitive_bits, &self.sensitive_inos, ino);
        }
        failed
    }

    /// Polling on (the monitor drains the ring on a timer: the programs commit without waking
    /// it) or off (they wake it when the ring goes from empty to non-empty). Fails only if the
    /// map cannot be written, in which case the mode is unchanged.
    pub fn set_polling(&mut self, on: bool) -> Result<(), EbpfError> {
        self.wakeup.set(0, u32::from(on), 0).map_err(|e| EbpfError::Wakeup(e.to_string()))
    }

    /// Whether records were held back since the last call (the kernel's count moved): if not,
    /// `held_back` has nothing new, and its walk (every bucket of a 16,384-entry map) is
    /// skipped. A count that cannot be read says yes.
    pub fn held_back_moved(&mut self) -> bool {
        let Ok(count) = self.held_count.get(&0, 0).map(|v| v.iter().sum::<u64>()) else { return true };
        let moved = count != self.held_walked;
        self.held_walked = count;
        moved
    }

    /// Records held back by the per-container budget since start, by cgroup id and class
    /// (`docker_listener_common::budget`).
    pub fn held_back(&self) -> Vec<HeldBack> {
        self.held
            .iter()
            .filter_map(Result::ok)
            .map(|(key, per_cpu)| HeldBack {
                cgroup: key & ((1 << budget::SHIFT) - 1),
                class: (key >> budget::SHIFT) as usize,
                total: per_cpu.iter().sum(),
            })
            .collect()
    }

    /// Forgets a removed container's held-back counts (after they were reported).
    pub fn forget_held(&mut self, cgroup: u64) {
        for class in 0..budget::NAMES.len() as u64 {
            let _ = self.held.remove(&(cgroup | class << budget::SHIFT));
        }
    }

    /// Records the programs tried to emit (sum of the per-CPU sequence numbers).
    pub fn generated(&self) -> u64 {
        self.seq.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }

    /// The container runtime's calls the programs did not send (summed over CPUs, since start).
    pub fn runtime_calls(&self) -> u64 {
        self.runtime_calls.get(&runtime_count::CALLS, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }

    /// Processes of the runtime the kernel had no room to mark (summed over CPUs, since start);
    /// a count that cannot be read says one.
    pub fn runtime_unmarked(&self) -> u64 {
        self.runtime_calls.get(&runtime_count::UNMARKED, 0).map_or(1, |v| v.iter().sum())
    }

    /// Entries in the pairing maps (execve, socket calls in flight): at shutdown, once the
    /// containers are quiet, anything left would be a leak.
    pub fn pending(&self) -> (u64, u64) {
        (self.pending_exec.keys().count() as u64, self.pending_sock.keys().count() as u64)
    }

    /// The per-reason loss counters, summed over CPUs.
    pub fn losses(&self) -> [u64; loss::NAMES.len()] {
        let mut out = [0; loss::NAMES.len()];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.loss.get(&(i as u32), 0).map(|v| v.iter().sum()).unwrap_or(0);
        }
        out[loss::UNREAD_AT_FALLBACK as usize] = self.unread_at_fallback;
        out
    }
}

/// Detaches and unloads a loaded object's programs, then counts the records they left in its
/// ring buffer, which nothing will read.
fn unread_records(mut ebpf: Ebpf) -> u64 {
    if let Some(hold) = hold_replaced_for_tests() {
        std::thread::sleep(hold);
    }
    let ring = ebpf.take_map("EVENTS");
    drop(ebpf);
    let Some(mut ring) = ring.and_then(|m| RingBuf::try_from(m).ok()) else { return 0 };
    let mut n = 0;
    while ring.next().is_some() {
        n += 1;
    }
    n
}

/// Marks the runtime's processes already running in `RUNTIME_TASKS`, as the kernel would have
/// at their exec: a process running a runtime binary in the host's mount namespace (`host_mnt`),
/// in no container's cgroup. Their children forked from now on are the runtime's too. Whether
/// every one was marked: if not, the daemon knows the runtime by its file (`RuntimeMarks`).
fn mark_running_runtime(ebpf: &mut Ebpf, runtime: &crate::family::RuntimeBinaries, host_mnt: u32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if runtime.is_empty() {
        return true;
    }
    let Some(mut tasks) = ebpf.map_mut("RUNTIME_TASKS").and_then(|m| HashMap::<_, u32, FileId>::try_from(m).ok())
    else {
        return false;
    };
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    let runs = |pid: u32| crate::sensitive::file_id(format!("/proc/{pid}/exe")).filter(|f| runtime.contains(*f));
    let mut all = true;
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Some((ino, dev)) = runs(pid) else { continue };
        let in_host_mnt =
            std::fs::metadata(format!("/proc/{pid}/ns/mnt")).is_ok_and(|m| m.ino() == u64::from(host_mnt));
        let in_container = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.lines().any(|l| crate::registry::container_of_path(l).is_some()));
        if !in_host_mnt || in_container {
            continue;
        }
        all &= tasks.insert(pid, FileId { ino, dev, _pad: 0 }, 0).is_ok();
        // Gone meanwhile (its exit, before the mark, did not clear it): the pid may be reused.
        if runs(pid) != Some((ino, dev)) {
            let _ = tasks.remove(&pid);
        }
    }
    all
}

/// Writes the container runtime's binaries into `RUNTIME_FILES`, by (inode, the kernel's dev_t).
fn write_runtime_files(ebpf: &mut Ebpf, runtime: &crate::family::RuntimeBinaries) -> Result<(), EbpfError> {
    if runtime.is_empty() {
        tracing::warn!(
            "no container runtime binary (runc, crun...) found in {}: the runtime's own mounts and namespace \
             changes at every container start will be reported as the container's",
            crate::family::RuntimeBinaries::DIRS.join(", ")
        );
    }
    let map = ebpf.map_mut("RUNTIME_FILES").ok_or(EbpfError::Missing("RUNTIME_FILES"))?;
    let mut files: HashMap<_, FileId, u8> = HashMap::try_from(map).map_err(|e| EbpfError::Load(e.to_string()))?;
    for &(ino, dev) in runtime.files() {
        // (A full map leaves that file's calls to the daemon, which drops them: it knows the
        // same files.)
        if let Err(e) = files.insert(FileId { ino, dev, _pad: 0 }, 1, 0) {
            tracing::warn!(error = %e, ino, dev, "a container runtime binary cannot be written to the kernel's map");
        }
    }
    Ok(())
}

/// Which exit-reported families are on, and the system call numbers the raw exit program looks
/// at: those of the families on (both ABIs; the 32-bit ones only with `ebpf.compat`), and the
/// 32-bit execs and socket calls whose settings are on.
fn set_exit_numbers(pc: &mut ProbeConfig, cfg: &EbpfConfig) {
    use docker_listener_common::{
        family::switch,
        syscalls::{COMPAT_NRS, FAMILY_NRS},
    };
    let mut set = |nr: i64| {
        if let Ok(nr) = usize::try_from(nr)
            && nr < docker_listener_common::EXIT_NR_WORDS * 64
        {
            pc.exit_nrs[nr / 64] |= 1 << (nr % 64);
        }
    };
    for (_, f) in crate::family::at_exit().filter(|(f, _)| (f.enabled)(cfg)) {
        pc.families |= f.switch;
        // The network family's halves have a setting each.
        if !cfg.dns {
            pc.families &= !switch::DNS;
        }
        if !cfg.udp_flows {
            pc.families &= !switch::UDP_FLOW;
        }
        for &(switch, x64, ia32) in FAMILY_NRS.iter().filter(|(s, ..)| *s == f.switch) {
            debug_assert_eq!(switch, f.switch);
            x64.iter().for_each(|&n| set(n));
            if cfg.compat {
                ia32.iter().for_each(|&n| set(n));
            }
        }
    }
    if cfg.compat {
        for &(bit, nrs) in COMPAT_NRS {
            if pc.compat_ops & bit != 0 {
                nrs.iter().for_each(|&n| set(n));
            }
        }
    }
}

/// The offset of `group_dead` in the `sched_process_exit` tracepoint's record, from its format
/// file in tracefs ("field:bool group_dead;\toffset:32;\tsize:1;..."); `None` on kernels
/// whose record has no such field (before 6.16).
fn exit_group_dead_offset() -> Option<u32> {
    attach::parse_field_offset(&attach::format_file("sched", "sched_process_exit")?, "group_dead")
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so loading does not fail there.
fn raise_memlock_limit() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if ret != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::{attach::parse_field_offset, *};

    #[test]
    fn a_load_error_keeps_the_head_and_the_end_of_the_verifiers_log() {
        let log =
            format!("load failed: {}processed 1000001 insns (limit 1000000)", "0: (bf) r6 = r1 ✓\n".repeat(100_000));
        let err = EbpfError::from_load(&log);
        let EbpfError::Load(text) = &err else { panic!("{err:?}") };
        assert!(text.len() <= LOAD_ERROR_MAX + 100, "{}", text.len());
        assert!(text.starts_with("load failed: 0: (bf)"), "{}", &text[..40]);
        // ({e}: {e:?}: the Debug form, quoted, ends it.)
        assert!(text[text.len() - 60..].contains("processed 1000001 insns (limit 1000000)"), "the reason, at the end");
        assert!(text.contains("bytes of the verifier's log left out"));
        assert_eq!(cut_middle("short", 10), "short");
    }

    #[test]
    fn a_program_the_verifier_refuses_is_named_not_blamed_on_privileges() {
        let log = format!(
            "{}invalid variable-offset read from stack R1\nprocessed 3950 insns",
            "0: (bf) r6 = r1\n".repeat(50_000)
        );
        let kernel = || "5.10.0-46-cloud-amd64".to_owned();
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        let err = refused("cgroup_mkdir", &eacces, &log, kernel).expect("the verifier's refusal");
        let text = err.to_string();
        assert!(text.contains("refused the eBPF program cgroup_mkdir"), "{text}");
        assert!(text.contains("5.10.0-46-cloud-amd64"), "{text}");
        assert!(text.contains("invalid variable-offset read from stack"), "the reason: {text}");
        assert!(!text.contains("run docker-listener as root"), "{text}");
        assert!(text.len() < LOAD_ERROR_MAX + 600, "{}", text.len());
        // No capability: EPERM, whatever the log; an LSM's EACCES has no verifier log.
        assert!(refused("cgroup_mkdir", &io::Error::from_raw_os_error(libc::EPERM), &log, kernel).is_none());
        assert!(refused("cgroup_mkdir", &eacces, " \n", kernel).is_none());
        let not_permitted = EbpfError::from_load(io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(not_permitted, EbpfError::NotPermitted(_)), "{not_permitted:?}");
        let lsm = EbpfError::from_load(eacces);
        assert!(matches!(lsm, EbpfError::Load(_)), "EACCES is no missing capability: {lsm:?}");
    }

    #[test]
    fn group_dead_offset_is_read_from_the_tracepoint_format() {
        let new = "name: sched_process_exit\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
                   \tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\
                   \tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n";
        assert_eq!(parse_field_offset(new, "group_dead"), Some(32));
        assert_eq!(parse_field_offset(new, "pid"), Some(24));
        let old = new.lines().filter(|l| !l.contains("group_dead")).collect::<Vec<_>>().join("\n");
        assert_eq!(parse_field_offset(&old, "group_dead"), None, "kernels before 6.16");
        // This machine's kernel, when tracefs is mounted: the same answer as its format file.
        if let Some(off) = exit_group_dead_offset() {
            assert!(off >= 32, "after comm, pid and prio: {off}");
        }
    }

    /// The loader is given no kernel BTF (see `EbpfProbes::load`): that holds only while the
    /// programs have no CO-RE relocations (`.BTF.ext`'s `core_relo_len` is 0).
    #[test]
    fn the_programs_have_no_core_relocations() {
        each_object(|_, elf| {
            let ext =
                elf::section_named(elf, ".BTF.ext").expect("the object's section headers").expect("a .BTF.ext section");
            let u16_at = |at: usize| u16::from_le_bytes([ext[at], ext[at + 1]]);
            let u32_at = |at: usize| u32::from_le_bytes(ext[at..at + 4].try_into().unwrap());
            // btf_ext_header: magic, version, flags, hdr_len, func_info off/len, line_info
            // off/len, core_relo off/len (when hdr_len covers them).
            assert_eq!(u16_at(0), 0xeb9f);
            let core_relo_len = if u32_at(4) >= 32 { u32_at(28) } else { 0 };
            assert_eq!(core_relo_len, 0, "the programs have CO-RE relocations: give the loader the kernel's BTF");
        });
    }

    /// The two objects are the same programs but for the path walk: the loop object calls
    /// `bpf_loop` (helper 181), the other never does (5.10 would refuse it).
    #[test]
    fn only_the_loop_object_calls_bpf_loop() {
        each_object(|looped, elf| {
            let mut loop_calls = 0;
            for s in elf::sections(elf).expect("the object's section headers") {
                if s.flags & elf::SHF_EXECINSTR == 0 {
                    continue;
                }
                let code = &elf[s.range(elf).expect("a section inside the object")];
                // A helper call: opcode 0x85 (BPF_JMP | BPF_CALL), source register 0, imm 181.
                loop_calls += code
                    .chunks_exact(8)
                    .filter(|i| i[0] == 0x85 && i[1] >> 4 == 0 && i[4..8] == 181i32.to_le_bytes())
                    .count();
            }
            assert_eq!(
                loop_calls > 0,
                looped,
                "bpf_loop calls in the {} object: {loop_calls}",
                if looped { "loop" } else { "unrolled" }
            );
        });
    }
}
