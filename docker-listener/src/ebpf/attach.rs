//! The attach layer: which kernel hook serves each way activity reaches the agent, on this
//! kernel, and what the agent cannot see when a hook is not there. The programs are attached
//! here; the result ([`Door`]s) is what the start-up log and `docker-listener doctor` show.
//!
//! What loads on the machines this is tested on (TOOLCHAIN.md): classic tracepoints, BTF raw
//! tracepoints; not kprobes, fentry or BPF LSM. So: the `syscalls:*` tracepoints for native
//! system calls, `raw_syscalls` as BTF raw tracepoints for the 32-bit ABI, and ABI-independent
//! tracepoints (`sched_process_exec`, `inet_sock_set_state`, `io_uring_create`) where they fit.
use std::{fmt, path::Path};

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
};

use super::{EbpfError, preload::Ahead};
use crate::{config::EbpfConfig, family};

/// Which setting a program belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    /// Always on: container cgroups and the process tree.
    Core,
    Exec,
    Connect,
    Bind,
    Listen,
    Accept,
    RawSocket,
}

fn enabled(p: Probe, cfg: &EbpfConfig) -> bool {
    match p {
        Probe::Core => true,
        Probe::Exec => cfg.exec,
        Probe::Connect => cfg.connect,
        Probe::Bind => cfg.bind,
        Probe::Listen => cfg.listen,
        Probe::Accept => cfg.accept,
        Probe::RawSocket => cfg.raw_sockets,
    }
}

/// Tracepoints every kernel the agent supports has: (program, category, name, probe). A failure
/// to attach one of them is an error.
const TRACEPOINTS: &[(&str, &str, &str, Probe)] = &[
    ("cgroup_mkdir", "cgroup", "cgroup_mkdir", Probe::Core),
    ("cgroup_rmdir", "cgroup", "cgroup_rmdir", Probe::Core),
    ("sched_process_exit", "sched", "sched_process_exit", Probe::Core),
    ("sched_process_exec", "sched", "sched_process_exec", Probe::Exec),
    ("sys_enter_execve", "syscalls", "sys_enter_execve", Probe::Exec),
    ("sys_exit_execve", "syscalls", "sys_exit_execve", Probe::Exec),
    ("sys_enter_execveat", "syscalls", "sys_enter_execveat", Probe::Exec),
    ("sys_exit_execveat", "syscalls", "sys_exit_execveat", Probe::Exec),
    ("sys_enter_connect", "syscalls", "sys_enter_connect", Probe::Connect),
    ("sys_exit_connect", "syscalls", "sys_exit_connect", Probe::Connect),
    ("sys_enter_bind", "syscalls", "sys_enter_bind", Probe::Bind),
    ("sys_exit_bind", "syscalls", "sys_exit_bind", Probe::Bind),
    ("sys_enter_listen", "syscalls", "sys_enter_listen", Probe::Listen),
    ("sys_exit_listen", "syscalls", "sys_exit_listen", Probe::Listen),
    ("sys_enter_accept", "syscalls", "sys_enter_accept", Probe::Accept),
    ("sys_exit_accept", "syscalls", "sys_exit_accept", Probe::Accept),
    ("sys_enter_accept4", "syscalls", "sys_enter_accept4", Probe::Accept),
    ("sys_exit_accept4", "syscalls", "sys_exit_accept4", Probe::Accept),
    ("sys_enter_socket", "syscalls", "sys_enter_socket", Probe::RawSocket),
    ("sys_exit_socket", "syscalls", "sys_exit_socket", Probe::RawSocket),
];

/// A record's fields and the offsets a program reads them at.
type Fields = &'static [(&'static str, u32)];

/// Tracepoints whose record the programs read at fixed offsets: (program, category, name,
/// fields). Attached only where the kernel's format file agrees; else the door is reported
/// closed.
const STATE_TRACEPOINTS: &[(&str, &str, &str, Fields)] = &[
    (
        "inet_sock_set_state",
        "sock",
        "inet_sock_set_state",
        &[
            ("oldstate", 16),
            ("newstate", 20),
            ("sport", 24),
            ("dport", 26),
            ("family", 28),
            ("protocol", 30),
            ("saddr", 32),
            ("daddr", 36),
            ("saddr_v6", 40),
            ("daddr_v6", 56),
        ],
    ),
    (
        "io_uring_create",
        "io_uring",
        "io_uring_create",
        &[("fd", 8), ("sq_entries", 24), ("cq_entries", 28), ("flags", 32)],
    ),
];

/// The program at every system call's exit (the 32-bit ABI, the exit-reported families).
pub const EXIT_PROGRAM: &str = "raw_sys_exit";
/// The events of the BTF tracepoints (`tp_btf/<event>`) the programs attach to.
pub const BTF_TRACEPOINTS: [&str; 2] = ["sched_process_fork", "sys_exit"];
/// The network family's program, which the exit program tail-calls (slot 0 of `NET_PROGRAM`).
pub const NET_PROGRAM: &str = "raw_sys_exit_net";
/// The file-access family's program for opens and changes of files, tail-called by the exit
/// program (slot 0 of `FILE_PROGRAM`).
pub const FILE_PROGRAM: &str = "raw_sys_exit_file";
/// The file-access family's program for open_by_handle_at, tail-called by the exit program
/// (slot 0 of `HANDLE_PROGRAM`).
pub const HANDLE_PROGRAM: &str = "raw_sys_exit_handle";
/// The file-access family's program for io_uring's opens (`raw_tp/io_uring_complete`), which
/// also sends its changes by name.
pub const URING_OPEN_PROGRAM: &str = "io_uring_complete";
/// The file-access family's program for io_uring's changes by name, at their submission
/// (`raw_tp/io_uring_submit_req`).
pub const URING_SUBMIT_PROGRAM: &str = "io_uring_submit_req";
/// The io_uring family's program for a ring's first completion-queue overflow.
pub const URING_OVERFLOW_PROGRAM: &str = "io_uring_cqe_overflow";
/// The programs that walk a file's path to its root: what the two objects differ in (the walk
/// unrolled, or as a `bpf_loop` callback). A refusal of one of them by a kernel that has
/// `bpf_loop` is what makes `EbpfProbes::load` try the unrolled object.
pub const WALKING: [&str; 5] =
    ["sched_process_exec", FILE_PROGRAM, HANDLE_PROGRAM, URING_OPEN_PROGRAM, URING_SUBMIT_PROGRAM];
/// Its event, by the names kernels gave it (`io_uring_submit_sqe` before 6.4; `TP_PROTO(req)`
/// since 5.19 under either name).
const URING_SUBMIT_EVENTS: [&str; 2] = ["io_uring_submit_req", "io_uring_submit_sqe"];

/// The offsets in `struct pt_regs` the exit program reads (syscall_exit.rs).
const PT_REGS: &[(&str, u32)] = &[
    ("bp", 32),
    ("bx", 40),
    ("r10", 56),
    ("r9", 64),
    ("r8", 72),
    ("cx", 88),
    ("dx", 96),
    ("si", 104),
    ("di", 112),
    ("orig_ax", 120),
];

/// One way activity reaches the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Door {
    /// What it lets the agent see.
    pub name: &'static str,
    /// The kernel hook that serves it.
    pub hook: &'static str,
    pub state: DoorState,
    /// What goes unseen while it is not active.
    pub blind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorState {
    Active,
    /// Turned off in the configuration.
    Off,
    /// The kernel does not allow it here: why.
    Unavailable(String),
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            DoorState::Active => write!(f, "{}: active ({})", self.name, self.hook),
            DoorState::Off => write!(f, "{}: off in the configuration; not seen: {}", self.name, self.blind),
            DoorState::Unavailable(why) => {
                write!(f, "{}: unavailable ({}: {why}); not seen: {}", self.name, self.hook, self.blind)
            }
        }
    }
}

/// What no hook here can show: always said, so the operator knows.
pub const ALWAYS_BLIND: &str = "io_uring operations other than TCP connects, opens, renames, links and \
                                unlinks (accept, send, receive, mkdir, symlink...) are not seen; each io_uring setup \
                                by a container process is reported instead";

/// What is known of the kernel before attaching.
pub struct Kernel<'a> {
    pub btf: Option<&'a Btf>,
    /// The struct offsets the programs read resolved (BTF): parent pids, argv, socket details.
    pub offsets: bool,
    /// The executed file's walk resolved; else why not.
    pub exe_walk: Result<(), String>,
    /// overlayfs's `ovl_inode` resolved (the drift mark); else why not.
    pub drift: Result<(), String>,
    /// `thread_info.status` resolved (the 32-bit ABI check).
    pub compat_status: bool,
    /// The `struct pt_regs` members the 32-bit programs read, as this kernel lays them out.
    pub pt_regs: &'a [(&'static str, u32)],
    /// The kernel has the x32 ABI built in.
    pub x32: bool,
    /// What io_uring's opens need resolved (the request's operation, the file's flags and
    /// mode, and the walk); else why not.
    pub uring_opens: Result<(), String>,
    /// What io_uring's opens into the ring's file table need resolved (where the table keeps
    /// the files); else why not.
    pub uring_fixed_opens: Result<(), String>,
    /// What io_uring's changes by name need resolved (their requests' commands); else why not.
    pub uring_changes: Result<(), String>,
    /// The object loaded walks paths with `bpf_loop` (else unrolled, and slower to verify).
    pub walk_loop: bool,
}

/// What `attach` attached and left closed.
#[derive(Debug, Default)]
pub struct Attached {
    pub programs: Vec<&'static str>,
    pub doors: Vec<Door>,
    /// The programs of [`WALKING`] whose door closed because the kernel's verifier refused
    /// them, with the refusal.
    pub refused: Vec<(&'static str, String)>,
}

/// A door closed by `e`; a walking program the verifier refused is noted in `refused`.
fn closed(prog: &'static str, e: EbpfError, refused: &mut Vec<(&'static str, String)>) -> DoorState {
    let why = e.to_string();
    if matches!(e, EbpfError::Refused { .. }) && WALKING.contains(&prog) {
        refused.push((prog, why.clone()));
    }
    DoorState::Unavailable(why)
}

/// Attaches every enabled program this kernel allows; returns the programs attached and the
/// doors. Fails only when something every supported kernel has cannot be attached (or the
/// verifier refuses the exec program: `EbpfError::Refused`).
pub fn attach(ebpf: &mut Ebpf, cfg: &EbpfConfig, k: &Kernel) -> Result<Attached, EbpfError> {
    super::preload::load(ebpf, k.btf, &ahead(cfg, k));
    let mut attached = Vec::new();
    let mut doors = Vec::new();
    let mut refused = Vec::new();
    for &(prog, category, name, probe) in TRACEPOINTS {
        if enabled(probe, cfg) {
            tracepoint(ebpf, prog, category, name)?;
            attached.push(prog);
        }
    }
    // The exec and socket families' system call tracepoints.
    let any_syscall = (family::exec::FAMILY.enabled)(cfg) || (family::socket::FAMILY.enabled)(cfg);
    doors.push(Door {
        name: "native system calls",
        hook: "syscalls:sys_enter_*/sys_exit_* tracepoints",
        state: if any_syscall { DoorState::Active } else { DoorState::Off },
        blind: "failed execs and socket calls",
    });
    doors.push(Door {
        name: "successful execs",
        hook: "sched:sched_process_exec",
        state: if cfg.exec { DoorState::Active } else { DoorState::Off },
        blind: "programs started",
    });
    doors.push(Door {
        name: "executed files",
        hook: "mm->exe_file walked to the process's root",
        state: match (&k.exe_walk, cfg.exec) {
            (_, false) => DoorState::Off,
            (Ok(()), true) => DoorState::Active,
            (Err(why), true) => DoorState::Unavailable(why.clone()),
        },
        blind: "the file an exec ran: events name the path given to execve, which the caller chooses",
    });
    doors.push(Door {
        name: "drifted executables",
        hook: "overlayfs ovl_inode->__upperdentry of the executed file",
        state: match (&k.exe_walk, &k.drift, cfg.exec) {
            (_, _, false) => DoorState::Off,
            (Err(why), _, true) | (Ok(()), Err(why), true) => DoorState::Unavailable(why.clone()),
            (Ok(()), Ok(()), true) => DoorState::Active,
        },
        blind: "programs written into a container after it started (exec events carry no `drift` mark)",
    });

    // Fork records need the BTF-typed tracepoint (the child's tgid) and the offsets.
    let fork = match (k.btf, k.offsets) {
        (Some(btf), true) => {
            btf_tracepoint(ebpf, btf, "sched_process_fork", "sched_process_fork")?;
            attached.push("sched_process_fork");
            DoorState::Active
        }
        _ => DoorState::Unavailable("the kernel has no BTF".into()),
    };
    doors.push(Door {
        name: "process tree",
        hook: "tp_btf/sched_process_fork",
        state: fork,
        blind: "parents of processes that do not exec, and lineage as it was at each fork",
    });

    // One program at every system call's exit serves the 32-bit ABI and the exit-reported
    // families (docker-listener-ebpf's syscall_exit.rs).
    let families = || family::at_exit().filter(|(f, _)| (f.enabled)(cfg));
    let exit = if !cfg.compat && families().next().is_none() {
        DoorState::Off
    } else if !cfg!(target_arch = "x86_64") {
        DoorState::Unavailable("not an x86-64 host".into())
    } else if !k.offsets {
        DoorState::Unavailable("the kernel has no BTF".into())
    } else {
        match k.btf.ok_or_else(|| "the kernel has no BTF".to_owned()).and_then(|btf| {
            pt_regs_matches(k.pt_regs)?;
            btf_tracepoint(ebpf, btf, EXIT_PROGRAM, "sys_exit").map_err(|e| e.to_string())
        }) {
            Ok(()) => {
                attached.push(EXIT_PROGRAM);
                DoorState::Active
            }
            Err(why) => DoorState::Unavailable(why),
        }
    };
    let compat = match (&exit, cfg.compat) {
        (_, false) => DoorState::Off,
        (DoorState::Active, true) if !k.compat_status => {
            DoorState::Unavailable("the kernel's BTF has no thread_info.status".into())
        }
        (state, true) => state.clone(),
    };
    // The network family's own program, tail-called by the exit program for sends, and the
    // file-access family's for opens and changes of files.
    let mut tail = |ebpf: &mut Ebpf, wanted: bool, slot: (&'static str, &'static str)| {
        tail_door(ebpf, &exit, wanted, k.btf, slot, &mut attached, &mut refused)
    };
    let net = tail(ebpf, cfg.dns || cfg.udp_flows, (NET_PROGRAM, "NET_PROGRAM"));
    let file = tail(ebpf, cfg.file_access, (FILE_PROGRAM, "FILE_PROGRAM"));
    let handle = tail(ebpf, cfg.file_access, (HANDLE_PROGRAM, "HANDLE_PROGRAM"));
    for (f, at_exit) in family::at_exit() {
        let own = match f.kind {
            docker_listener_common::RecordKind::Network => Some(&net),
            docker_listener_common::RecordKind::FileAccess => Some(&file),
            _ => None,
        };
        doors.push(Door {
            name: f.name,
            hook: if own.is_some() {
                "tp_btf/sys_exit (raw_syscalls), tail call"
            } else {
                "tp_btf/sys_exit (raw_syscalls)"
            },
            state: match ((f.enabled)(cfg), own) {
                (false, _) => DoorState::Off,
                (true, Some(state)) => state.clone(),
                (true, None) => exit.clone(),
            },
            blind: at_exit.sees,
        });
    }
    // The file-access family's own program for open_by_handle_at, tail-called by the exit
    // program. Without it, such a call is matched as an open is (a sensitive file by its inode).
    doors.push(Door {
        name: "opens by handle",
        hook: "tp_btf/sys_exit (raw_syscalls), tail call",
        state: handle,
        blind: "open_by_handle_at calls (the shocker escape) other than opens of sensitive files",
    });
    let compat_connects = compat == DoorState::Active && cfg.connect;
    doors.push(Door {
        name: "32-bit system calls",
        hook: "tp_btf/sys_exit (raw_syscalls)",
        state: compat,
        blind: "socket calls and failed execs made through the ia32 ABI (i386 programs, int $0x80)",
    });
    if k.x32 {
        doors.push(Door {
            name: "x32 system calls",
            hook: "none",
            state: DoorState::Unavailable("this kernel is built with the x32 ABI, which no program here sees".into()),
            blind: "socket calls, failed execs, ptrace and process_vm_writev, and the calls of every \
                    exit-reported family (modules, bpf, namespaces, mounts, privileges, file access) made by x32 \
                    programs (boot with syscall.x32=n to refuse them)",
        });
    }

    for (i, &(prog, category, name, fields)) in STATE_TRACEPOINTS.iter().enumerate() {
        // The TCP-state connect is a connect: `ebpf.connect` turns it off too.
        let wanted = cfg.io_uring && (i != 0 || cfg.connect);
        let state = if !wanted {
            DoorState::Off
        } else {
            match format_matches(category, name, fields)
                .and_then(|()| state_tracepoint(ebpf, prog, category, name, i == 0 && compat_connects))
            {
                Ok(prog) => {
                    attached.push(prog);
                    DoorState::Active
                }
                Err(why) => DoorState::Unavailable(why),
            }
        };
        doors.push(match i {
            0 => Door {
                name: "TCP connects without connect(2)",
                hook: "sock:inet_sock_set_state",
                state,
                blind: "TCP connections opened through io_uring",
            },
            _ => Door {
                name: "io_uring setups",
                hook: "io_uring:io_uring_create",
                state,
                blind: "processes that set up io_uring (whose other operations no system call shows)",
            },
        });
    }
    // io_uring's opens, the file-access family's, at each request's completion (a raw
    // tracepoint: the program reads the request, not a trace record).
    let uring_opens = match (cfg.io_uring && cfg.file_access, &k.uring_opens) {
        (false, _) => DoorState::Off,
        (true, Err(why)) => DoorState::Unavailable(why.clone()),
        (true, Ok(())) => match raw_tracepoint(ebpf, URING_OPEN_PROGRAM, "io_uring_complete") {
            Ok(()) => {
                attached.push(URING_OPEN_PROGRAM);
                DoorState::Active
            }
            Err(e) => closed(URING_OPEN_PROGRAM, e, &mut refused),
        },
    };
    // Opens into the ring's own file table: the same program, if it finds the table.
    let fixed = match (&uring_opens, &k.uring_fixed_opens) {
        (DoorState::Active, Err(why)) => DoorState::Unavailable(why.clone()),
        (state, _) => state.clone(),
    };
    doors.push(Door {
        name: "io_uring opens",
        hook: "raw_tp/io_uring_complete",
        state: uring_opens.clone(),
        blind: "sensitive files opened through io_uring (IORING_OP_OPENAT, IORING_OP_OPENAT2)",
    });
    doors.push(Door {
        name: "io_uring opens into fixed files",
        hook: "raw_tp/io_uring_complete, the ring's file table",
        state: fixed,
        blind: "sensitive files opened through io_uring into the ring's file table (sqe->file_index: a slot, no \
                descriptor), which only the ring's own requests read",
    });
    // io_uring's changes by name: made at submission (the names are freed when the request
    // runs), sent at completion by the opens' program.
    let changes = match (&uring_opens, &k.uring_changes) {
        (DoorState::Active, Ok(())) => match raw_tracepoint_named(ebpf, URING_SUBMIT_PROGRAM, &URING_SUBMIT_EVENTS) {
            Ok(()) => {
                attached.push(URING_SUBMIT_PROGRAM);
                DoorState::Active
            }
            Err(e) => closed(URING_SUBMIT_PROGRAM, e, &mut refused),
        },
        (DoorState::Active, Err(why)) => DoorState::Unavailable(why.clone()),
        (state, _) => state.clone(),
    };
    // The first completion-queue overflow of each ring: where overflowing completions are not
    // traced (6.18), what they were is not seen; the event says so.
    let overflows = match &uring_opens {
        DoorState::Active => match raw_tracepoint(ebpf, URING_OVERFLOW_PROGRAM, "io_uring_cqe_overflow") {
            Ok(()) => {
                attached.push(URING_OVERFLOW_PROGRAM);
                DoorState::Active
            }
            Err(e) => DoorState::Unavailable(e.to_string()),
        },
        state => state.clone(),
    };
    doors.push(Door {
        name: "io_uring completion overflows",
        hook: "raw_tp/io_uring_cqe_overflow",
        state: overflows,
        blind: "that a ring's completions overflowed, which hides its opens and changes on kernels that trace only \
                the completions that fit (6.18)",
    });
    doors.push(Door {
        name: "io_uring changes by name",
        hook: "raw_tp/io_uring_submit_req, raw_tp/io_uring_complete",
        state: changes,
        blind: "sensitive files renamed, linked or deleted through io_uring (IORING_OP_RENAMEAT, IORING_OP_LINKAT, \
                IORING_OP_UNLINKAT)",
    });
    Ok(Attached { programs: attached, doors, refused })
}

/// The programs slowest to verify that `attach` below loads with this configuration on this
/// kernel, for `preload` to load ahead. The conditions follow `attach`'s: one listed here that
/// `attach` then leaves out is merely loaded for nothing, one left out is loaded in order.
/// Weights: their load times on 6.18, one at a time, with the object this kernel gets (the
/// path walks as a `bpf_loop` callback, or unrolled: BENCHMARKS.md, 2026-12-04, late).
fn ahead(cfg: &EbpfConfig, k: &Kernel) -> Vec<Ahead> {
    let weight = |looped: u32, unrolled: u32| if k.walk_loop { looped } else { unrolled };
    let mut ahead = Vec::new();
    if cfg.exec {
        ahead.push(Ahead { name: "sched_process_exec", btf_event: None, weight: weight(4, 180) });
    }
    let exit = (cfg.compat || family::at_exit().any(|(f, _)| (f.enabled)(cfg)))
        && cfg!(target_arch = "x86_64")
        && k.offsets
        && k.btf.is_some()
        && pt_regs_matches(k.pt_regs).is_ok();
    if exit {
        ahead.push(Ahead { name: EXIT_PROGRAM, btf_event: Some("sys_exit"), weight: weight(176, 173) });
        if cfg.dns || cfg.udp_flows {
            ahead.push(Ahead { name: NET_PROGRAM, btf_event: Some("sys_exit"), weight: weight(154, 150) });
        }
        if cfg.file_access {
            ahead.push(Ahead { name: FILE_PROGRAM, btf_event: Some("sys_exit"), weight: weight(188, 488) });
            ahead.push(Ahead { name: HANDLE_PROGRAM, btf_event: Some("sys_exit"), weight: weight(3, 124) });
        }
    }
    if cfg.io_uring && cfg.file_access && k.uring_opens.is_ok() {
        ahead.push(Ahead { name: URING_OPEN_PROGRAM, btf_event: None, weight: weight(5, 143) });
        if k.uring_changes.is_ok() {
            ahead.push(Ahead { name: URING_SUBMIT_PROGRAM, btf_event: None, weight: weight(3, 128) });
        }
    }
    ahead
}

/// Attaches a state tracepoint's program. The TCP-state connect has a variant that skips the
/// 32-bit connects the compat program reports (`skip_compat`); where it does not load (it reads
/// the task's saved registers), the plain one does, and those connects are reported twice.
fn state_tracepoint(
    ebpf: &mut Ebpf,
    prog: &'static str,
    category: &str,
    name: &str,
    skip_compat: bool,
) -> Result<&'static str, String> {
    if skip_compat {
        match tracepoint(ebpf, "inet_sock_set_state_compat", category, name) {
            Ok(()) => return Ok("inet_sock_set_state_compat"),
            Err(e) => tracing::warn!(
                "32-bit TCP connects will be reported twice, by their system call and by their TCP state \
                 change: the program that tells them apart does not load here ({e})"
            ),
        }
    }
    tracepoint(ebpf, prog, category, name).map_err(|e| e.to_string())?;
    Ok(prog)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, prog: &'static str) -> Result<&'a mut T, EbpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(prog)
        .ok_or(EbpfError::Missing(prog))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| EbpfError::Load(e.to_string()))
}

/// Attaches a raw tracepoint program to the first of `names` this kernel has.
fn raw_tracepoint_named(ebpf: &mut Ebpf, prog: &'static str, names: &[&str]) -> Result<(), EbpfError> {
    let started = std::time::Instant::now();
    let p: &mut RawTracePoint = program(ebpf, prog)?;
    // (Unless `preload` has loaded it.)
    if p.fd().is_err() {
        p.load().map_err(|e| super::program_load_error(prog, e))?;
        loaded(ebpf, prog, started);
    }
    let program: &mut RawTracePoint = program(ebpf, prog)?;
    let mut errors = Vec::new();
    for name in names {
        match program.attach(name) {
            Ok(_) => return Ok(()),
            Err(e) => errors.push(format!("{name}: {e}: {e:?}")),
        }
    }
    Err(EbpfError::Attach { program: prog, detail: errors.join("; ") })
}

fn raw_tracepoint(ebpf: &mut Ebpf, prog: &'static str, name: &str) -> Result<(), EbpfError> {
    raw_tracepoint_named(ebpf, prog, &[name])
}

fn tracepoint(ebpf: &mut Ebpf, prog: &'static str, category: &str, name: &str) -> Result<(), EbpfError> {
    let started = std::time::Instant::now();
    let p: &mut TracePoint = program(ebpf, prog)?;
    if p.fd().is_err() {
        p.load().map_err(|e| super::program_load_error(prog, e))?;
        loaded(ebpf, prog, started);
    }
    let program: &mut TracePoint = program(ebpf, prog)?;
    program.attach(category, name).map_err(|e| {
        if !Path::new("/sys/kernel/tracing/events").exists() && !Path::new("/sys/kernel/debug/tracing/events").exists()
        {
            EbpfError::NoTracefs
        } else {
            EbpfError::Attach { program: prog, detail: format!("{e}: {e:?}") }
        }
    })?;
    Ok(())
}

/// The door of a program the exit program tail-calls (`prog`, in slot 0 of the program array
/// `map`): off unless `wanted`; loaded and in its slot when the exit program is active; else
/// closed as the exit program's door is.
fn tail_door(
    ebpf: &mut Ebpf,
    exit: &DoorState,
    wanted: bool,
    btf: Option<&Btf>,
    (prog, map): (&'static str, &'static str),
    attached: &mut Vec<&'static str>,
    refused: &mut Vec<(&'static str, String)>,
) -> DoorState {
    match (exit, wanted, btf) {
        (_, false, _) => DoorState::Off,
        (DoorState::Active, true, Some(btf)) => match tail_program(ebpf, btf, prog, map) {
            Ok(()) => {
                attached.push(prog);
                DoorState::Active
            }
            Err(TailError::Load(e)) => closed(prog, e, refused),
            Err(TailError::Slot(why)) => DoorState::Unavailable(why),
        },
        (state, true, _) => state.clone(),
    }
}

/// Why a tail-called program is not in its slot.
enum TailError {
    /// Not loaded (the verifier's refusal among others).
    Load(EbpfError),
    /// Loaded, but not put in its slot.
    Slot(String),
}

/// Loads a program the exit program tail-calls (for `sys_exit`, attached to nothing: the
/// network family's, the file-access family's two) and puts it in slot 0 of
/// `map`, where the exit program looks.
fn tail_program(ebpf: &mut Ebpf, btf: &Btf, prog: &'static str, map: &str) -> Result<(), TailError> {
    let started = std::time::Instant::now();
    let p: &mut BtfTracePoint = program(ebpf, prog).map_err(TailError::Load)?;
    if p.fd().is_err() {
        p.load("sys_exit", btf).map_err(|e| TailError::Load(super::program_load_error(prog, e)))?;
        loaded(ebpf, prog, started);
    }
    let slot = |e: &dyn std::fmt::Display| TailError::Slot(e.to_string());
    let program: &mut BtfTracePoint = program(ebpf, prog).map_err(|e| slot(&e))?;
    let fd = program.fd().map_err(|e| slot(&e))?.try_clone().map_err(|e| slot(&e))?;
    let slots = ebpf.map_mut(map).ok_or_else(|| TailError::Slot(format!("the object has no {map} map")))?;
    let mut slots = aya::maps::ProgramArray::try_from(slots).map_err(|e| slot(&e))?;
    slots.set(0, &fd, 0).map_err(|e| TailError::Slot(format!("cannot put {prog} in {map}: {e}")))
}

/// Logs what loading a program cost when it was noticeable (the kernel's verifier): where
/// start-up time goes, and how close a program is to the verifier's limit of a million
/// instructions on older kernels.
fn loaded(ebpf: &Ebpf, prog: &str, started: std::time::Instant) {
    let took = started.elapsed();
    if took < LOG_LOAD_FROM {
        return;
    }
    let verified = ebpf.program(prog).and_then(|p| p.info().ok()).and_then(|i| i.verified_instruction_count());
    log_load(prog, took, verified);
}

/// Loads that took less are not logged.
const LOG_LOAD_FROM: std::time::Duration = std::time::Duration::from_millis(100);

/// The start-up log line of a program that took `took` to load (from 100 ms on).
pub(super) fn log_load(prog: &str, took: std::time::Duration, verified: Option<u32>) {
    if took < LOG_LOAD_FROM {
        return;
    }
    tracing::info!(
        program = prog,
        took_ms = took.as_millis() as u64,
        verified_instructions = verified,
        "eBPF program loaded (verified by the kernel)"
    );
}

fn btf_tracepoint(ebpf: &mut Ebpf, btf: &Btf, prog: &'static str, event: &str) -> Result<(), EbpfError> {
    let started = std::time::Instant::now();
    let p: &mut BtfTracePoint = program(ebpf, prog)?;
    if p.fd().is_err() {
        p.load(event, btf).map_err(|e| super::program_load_error(prog, e))?;
        loaded(ebpf, prog, started);
    }
    let program: &mut BtfTracePoint = program(ebpf, prog)?;
    program.attach().map_err(|e| EbpfError::Attach { program: prog, detail: format!("{e}: {e:?}") })?;
    Ok(())
}

/// The tracepoint's format file in tracefs.
pub fn format_file(category: &str, name: &str) -> Option<String> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|t| std::fs::read_to_string(format!("{t}/events/{category}/{name}/format")).ok())
}

/// Whether the tracepoint exists and has each field at the offset the program reads.
fn format_matches(category: &str, name: &str, fields: &[(&str, u32)]) -> Result<(), String> {
    let format =
        format_file(category, name).ok_or_else(|| format!("the kernel has no {category}:{name} tracepoint"))?;
    for &(field, want) in fields {
        match parse_field_offset(&format, field) {
            Some(off) if off == want => {}
            Some(off) => {
                return Err(format!("{category}:{name}'s {field} is at offset {off}, the program reads {want}"));
            }
            None => return Err(format!("{category}:{name} has no field {field}")),
        }
    }
    Ok(())
}

/// `struct pt_regs` as the 32-bit programs read it.
fn pt_regs_matches(resolved: &[(&str, u32)]) -> Result<(), String> {
    for &(field, want) in PT_REGS {
        match resolved.iter().find(|(f, _)| *f == field) {
            Some(&(_, off)) if off == want => {}
            Some(&(_, off)) => return Err(format!("pt_regs.{field} is at offset {off}, the program reads {want}")),
            None => return Err(format!("the kernel's BTF has no pt_regs.{field}")),
        }
    }
    Ok(())
}

/// A field's offset in a tracepoint format file.
pub fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    let line = format.lines().find(|l| {
        l.trim_start().starts_with("field:")
            && l.split(';').next().is_some_and(|decl| {
                let decl = decl.split('[').next().unwrap_or(decl);
                decl.ends_with(&format!(" {field}")) || decl.ends_with(&format!("*{field}"))
            })
    })?;
    line.split(';').find_map(|part| part.trim().strip_prefix("offset:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kernel: every fixed offset the programs read is the kernel's.
    #[test]
    fn the_fixed_offsets_are_this_kernel_s() {
        if format_file("sched", "sched_process_exec").is_none() {
            assert!(std::env::var("DL_E2E").as_deref() != Ok("1"), "tracefs is not mounted on the test machine");
            eprintln!("tracefs is not mounted here; skipping");
            return;
        }
        for &(_, category, name, fields) in STATE_TRACEPOINTS {
            format_matches(category, name, fields).unwrap();
        }
        let info = crate::ebpf::offsets::inspect(Path::new(crate::ebpf::offsets::VMLINUX_BTF)).unwrap();
        pt_regs_matches(&info.pt_regs).unwrap();
    }

    #[test]
    fn array_fields_are_found_by_name() {
        let f = "\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n";
        assert_eq!(parse_field_offset(f, "saddr"), Some(32));
        assert_eq!(parse_field_offset(f, "skaddr"), Some(8));
        assert_eq!(parse_field_offset(f, "addr"), None);
    }
}
