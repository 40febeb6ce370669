//! `ptrace` (`event.action`: `ptrace`, `process-vm-write`): a container process takes control
//! of another process or writes into its memory or registers (PTRACE_ATTACH, SEIZE, POKE*,
//! SETREGS, SETFPREGS, SETREGSET, SETSIGINFO, SET_SYSCALL_INFO...; process_vm_writev), refused
//! attempts included. The target is named by the pid the
//! caller used (its pid namespace's) and, found from that, as the host and the agent know it.
use std::borrow::Cow;

use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        ptrace::{PtraceRecord, op, request},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{AtExit, Context, Detail, Family, Reported};
use crate::{
    ebpf::record::{RecordError, pod_ref},
    ecs::{Kind, ProcRef},
    procs::EntityId,
};

pub const FAMILY: Family = Family {
    name: "ptrace",
    kind: RecordKind::Ptrace,
    enabled: |c| c.ptrace,
    reported: Reported::AtExit(AtExit {
        switch: switch::PTRACE,
        decode,
        sees: "ptrace attaches and writes into other processes, process_vm_writev",
    }),
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ptrace {
    pub op: u32,
    pub request: i64,
    /// The target's pid as the caller named it.
    pub target: i32,
    pub addr: u64,
    /// The process the kernel made the caller's tracee (a successful ATTACH or SEIZE) or the
    /// one it wrote into (POKE*, SETREGS...): its thread group id and start, read at the call's
    /// exit.
    pub tracee: Option<(u32, u64)>,
    /// Where the caller's pids are, as the kernel had it at the call.
    pub caller: Option<Level>,
    /// The kernel found no process with that pid in the caller's pid namespace (`ESRCH`).
    pub no_such_process: bool,
    /// The target as the host knows it, when it could be found.
    pub resolved: Option<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its pid on the host.
    pub host_pid: u32,
    /// The process, when the agent knows it or /proc still has it.
    pub process: Option<ProcRef>,
    /// Its entity id, from the kernel's tracee even when the process is gone.
    pub entity_id: Option<EntityId>,
    /// Whether it runs in the caller's container (unknown for a process gone that the agent
    /// did not know).
    pub same_container: Option<bool>,
}

/// At most this many processes are looked at to find a target.
const MAX_SEARCH: usize = 4096;
/// /proc entries read to find targets, at most, per second and at once, by each container: a
/// container looping on refused attaches (or on its own threads' ids, which name no process)
/// must neither keep the agent reading /proc (a read costs ~20 µs) while the ring buffer fills,
/// nor spend what the others' targets are found with. Beyond it a target is named by its pid
/// (and, the caller's tracee, by the kernel's host pid and start) only.
const SEARCH_RATE: f64 = 4096.0;
const SEARCH_BURST: f64 = 8192.0;
/// What naming a process /proc has costs of the budget: its stat, executable, command line and
/// cgroup.
const PROC_READS: usize = 4;

/// What is left of each container's search budget (`SEARCH_RATE`), and when it was last filled,
/// by the container's key (its first cgroup).
type Budgets = std::collections::HashMap<u64, (f64, std::time::Instant)>;
static SEARCH: std::sync::Mutex<Option<Budgets>> = std::sync::Mutex::new(None);

/// Takes up to `want` reads of `container`'s search budget; how many were granted.
fn search_budget(container: u64, want: usize) -> usize {
    let mut b = SEARCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let budgets = b.get_or_insert_with(Budgets::new);
    let now = std::time::Instant::now();
    let full =
        |left: f64, at: std::time::Instant| left + now.duration_since(at).as_secs_f64() * SEARCH_RATE >= SEARCH_BURST;
    if budgets.len() >= 1024 {
        // Those full again are as good as new.
        budgets.retain(|_, (left, at)| !full(*left, *at));
    }
    let (left, at) = budgets.entry(container).or_insert((SEARCH_BURST, now));
    *left = (*left + now.duration_since(*at).as_secs_f64() * SEARCH_RATE).min(SEARCH_BURST);
    *at = now;
    let granted = (*left as usize).min(want);
    *left -= granted as f64;
    granted
}

/// Returns reads not spent to `container`'s search budget.
fn search_refund(container: u64, unspent: usize) {
    let mut b = SEARCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((left, _)) = b.as_mut().and_then(|b| b.get_mut(&container)) {
        *left = (*left + unspent as f64).min(SEARCH_BURST);
    }
}

/// The process with host pid `pid` as /proc has it (started at `start_ns` when given), and
/// whether it is in the caller's container; within `container`'s search budget.
fn from_proc(ctx: &Context<'_>, container: u64, pid: u32, start_ns: Option<u64>) -> (Option<ProcRef>, Option<bool>) {
    if search_budget(container, PROC_READS) < PROC_READS {
        return (None, None);
    }
    match ctx.procs.read_proc(pid, 0, start_ns) {
        Some(p) => (Some(ProcRef::of(&p.lineage)), cgroup_of(pid).map(|id| ctx.cgroups.contains(&id))),
        None => (None, None),
    }
}

/// The cgroup v2 id of a process /proc still has.
fn cgroup_of(pid: u32) -> Option<u64> {
    static MOUNT: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let mount = MOUNT.get_or_init(crate::registry::cgroup2_mount).as_deref()?;
    crate::registry::cgroup_id(&crate::registry::cgroup_dir_of_pid(mount, pid)?).ok()
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<PtraceRecord>(bytes)?;
    let tracee = (r.tracee_tgid != 0).then_some((r.tracee_tgid, r.tracee_start_ns));
    let caller = (r.caller_pid_ns != 0)
        .then(|| Level { depth: r.caller_pid_level as usize, ns: Some(u64::from(r.caller_pid_ns)) });
    Ok(Detail::Ptrace(Ptrace {
        op: head.op,
        request: r.request,
        target: r.target,
        addr: r.addr,
        tracee,
        caller,
        no_such_process: head.ret == -i64::from(libc::ESRCH),
        resolved: None,
    }))
}

/// The pids a process (or thread: `/proc/<pid>/task/<tid>`) has in each pid namespace it is
/// in, outermost first (`NSpid:` in its status), and how many threads its process has.
fn ns_pids_at(dir: &str) -> Option<(Vec<u32>, u32)> {
    let status = status_at(dir)?;
    let pids = status_field(&status, "NSpid:")?.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    Some((pids, status_field(&status, "Threads:").and_then(|t| t.trim().parse().ok()).unwrap_or(1)))
}

/// The text of `<dir>/status` (a process's or a thread's /proc directory).
fn status_at(dir: &str) -> Option<String> {
    std::fs::read_to_string(format!("{dir}/status")).ok()
}

/// A status file's field (`name` with its colon), after the name.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(name))
}

/// [`ns_pids_at`] of a process by its host pid.
fn ns_pids(pid: u32) -> Option<(Vec<u32>, u32)> {
    ns_pids_at(&format!("/proc/{pid}"))
}

/// The `NSpid:` of each thread of process `pid` but its leader's, up to `budget` reads (the
/// listing one of them); the reads made.
fn threads_ns_pids(pid: u32, budget: usize) -> (Vec<Vec<u32>>, usize) {
    if budget == 0 {
        return (Vec::new(), 0);
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return (Vec::new(), 1) };
    let tids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&tid| tid != pid)
        .take(budget.saturating_sub(1))
        .collect();
    // Every read tried is charged, those of threads gone meanwhile too.
    let found = tids.iter().filter_map(|tid| ns_pids_at(&format!("/proc/{pid}/task/{tid}")).map(|(v, _)| v)).collect();
    (found, 1 + tids.len())
}

/// The process of host thread id `tid` (its thread group id, `Tgid:`), when /proc has it.
fn tgid_of(tid: u32) -> Option<u32> {
    status_field(&status_at(&format!("/proc/{tid}"))?, "Tgid:")?.trim().parse().ok()
}

/// The pid namespace `up` levels above the one a process is in (0: its own), by its inode:
/// /proc/<pid>/ns/pid, then `NS_GET_PARENT` `up` times. `None` when the process is gone (or
/// the namespace is not below the agent's own).
fn ns_above(pid: u32, up: usize) -> Option<u64> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let mut ns = OwnedFd::from(std::fs::File::open(format!("/proc/{pid}/ns/pid")).ok()?);
    for _ in 0..up {
        // SAFETY: NS_GET_PARENT reads no memory of ours; it returns a new descriptor (owned
        // below) or -1.
        let parent = unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_PARENT) };
        if parent < 0 {
            return None;
        }
        // SAFETY: `parent` is a descriptor the ioctl just opened, owned by nothing else.
        ns = unsafe { OwnedFd::from_raw_fd(parent) };
    }
    use std::os::unix::fs::MetadataExt as _;
    std::fs::File::from(ns).metadata().ok().map(|m| m.ino())
}

/// Where a caller's pids are: how many pid namespaces are above its own, and its own (its
/// inode number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    depth: usize,
    ns: Option<u64>,
}

/// The host pid of the process a caller at `level` names `target`, among `candidates` (host
/// pids, with `ns_pids`, `threads` and `ns_above` to read them).
///
/// `target` may be a thread's id, which names its process to ptrace and process_vm_writev
/// alike: when no process has it, the threads of those with more than one are looked at.
///
/// A candidate matches when its pid at the caller's depth is `target` and its pid namespace at
/// that depth is the caller's own (checked whether the candidate is at that depth or in a
/// namespace below it: a sibling namespace, another `unshare -p` in the container, has its own
/// pid `target`, and so may one below it). Pids are unique in a namespace: the first match is
/// the one. Without the caller's namespace (it went between two reads of /proc), the target is
/// named only when one process matches at the caller's depth. Where the caller's pids are is
/// never guessed: a caller gone before its level was read names nothing (a process whose
/// innermost pid is `target` may be a decoy in a namespace beside the caller's).
fn find_target(
    target: u32,
    level: &Level,
    candidates: impl IntoIterator<Item = u32>,
    mut ns_pids: impl FnMut(u32) -> Option<(Vec<u32>, u32)>,
    mut threads: impl FnMut(u32) -> Vec<Vec<u32>>,
    ns_above: impl Fn(u32, usize) -> Option<u64>,
) -> Option<u32> {
    if level.depth == 0 {
        return Some(target);
    }
    // Whether `pid`, with `v` as its (or its thread's) pids, is the one; `Err` when it cannot be
    // told (two match, the caller's namespace unknown).
    let mut found = None;
    let mut is = |pid: u32, v: &[u32]| -> Result<bool, ()> {
        if v.get(level.depth) != Some(&target) {
            return Ok(false);
        }
        if let Some(ns) = level.ns {
            return Ok(ns_above(pid, v.len() - 1 - level.depth) == Some(ns));
        }
        match found.replace(pid) {
            None => Ok(false),
            Some(_) => Err(()),
        }
    };
    let mut threaded = Vec::new();
    for pid in candidates {
        let Some((v, n)) = ns_pids(pid) else { continue };
        match is(pid, &v) {
            Ok(true) => return Some(pid),
            Ok(false) if n > 1 => threaded.push(pid),
            Ok(false) => {}
            Err(()) => return None,
        }
    }
    for pid in threaded {
        for v in threads(pid) {
            match is(pid, &v) {
                Ok(true) => return Some(pid),
                Ok(false) => {}
                Err(()) => return None,
            }
        }
    }
    found
}

impl Ptrace {
    /// Finds the target on the host. The tracee the kernel named at the call's exit (a
    /// successful ATTACH or SEIZE, a write into a tracee), even if it is gone now. Otherwise
    /// (a refused attach, process_vm_writev) the caller named it in its own pid namespace: the
    /// process whose pid at the caller's level of pid namespaces (`NSpid:`) is that, in the
    /// caller's namespace or one below it (or a thread's id, among their threads), the
    /// container's processes first, then the others
    /// the agent knows (`--pid=container:X`); when the caller has no pid namespace of its own
    /// (`--pid=host`), that pid itself. Where the caller's pids are is the kernel's word at the
    /// call, else /proc's while the caller is there (after, nothing is named).
    ///
    /// Not searched: a target the kernel said does not exist (`ESRCH`), the writes that follow
    /// an attach when the kernel did not name their tracee (among the caller's 16 newest; an
    /// injector makes them by the thousand; its attach's event names the target), and beyond the
    /// container's search budget (`SEARCH_RATE`), which a tracee /proc is read for also takes
    /// from.
    pub fn resolve(&mut self, caller: u32, ctx: &Context<'_>) {
        let container = ctx.cgroups.first().copied().unwrap_or(0);
        if let Some((tgid, start_ns)) = self.tracee {
            let (process, same_container) = match ctx.procs.instance(tgid, start_ns) {
                Some(p) => (Some(ProcRef::of(&p.lineage)), Some(ctx.cgroups.contains(&p.cgroup_id))),
                None => from_proc(ctx, container, tgid, (start_ns != 0).then_some(start_ns)),
            };
            let entity_id = (start_ns != 0).then(|| ctx.procs.entity_id(tgid, start_ns));
            self.resolved = Some(Target { host_pid: tgid, process, entity_id, same_container });
            return;
        }
        let Ok(target) = u32::try_from(self.target) else { return };
        let takes_hold = self.op == op::VM_WRITEV || matches!(self.request, request::ATTACH | request::SEIZE);
        if target == 0 || !takes_hold || self.no_such_process {
            return;
        }
        let level = self.caller.clone().or_else(|| {
            let depth = ns_pids(caller)?.0.len().checked_sub(1)?;
            Some(Level { depth, ns: ns_above(caller, 0) })
        });
        let Some(level) = level else { return };
        let host_pid = if level.depth == 0 {
            // The host's pid, maybe a thread's: its process is the target.
            Some(if ctx.procs.get(target).is_some() { target } else { tgid_of(target).unwrap_or(target) })
        } else {
            // The container's processes first; the others only when the namespace is checked.
            let mut candidates = ctx.procs.pids_in(ctx.cgroups);
            if level.ns.is_some() {
                candidates.extend(ctx.procs.pids_not_in(ctx.cgroups));
            }
            let granted = search_budget(container, candidates.len().min(MAX_SEARCH));
            let read = std::cell::Cell::new(0);
            let ns_pids = |pid| {
                read.set(read.get() + 1);
                ns_pids(pid)
            };
            // A process's threads, from what is left of the budget.
            let threads = |pid| {
                let g = search_budget(container, MAX_SEARCH);
                let (found, reads) = threads_ns_pids(pid, g);
                search_refund(container, g.saturating_sub(reads));
                found
            };
            let found = find_target(target, &level, candidates.into_iter().take(granted), ns_pids, threads, ns_above);
            search_refund(container, granted.saturating_sub(read.get()));
            found
        };
        let Some(host_pid) = host_pid else { return };
        let (process, same_container) = match ctx.procs.get(host_pid) {
            Some(p) => (Some(ProcRef::of(&p.lineage)), Some(ctx.cgroups.contains(&p.cgroup_id))),
            None => from_proc(ctx, container, host_pid, None),
        };
        self.resolved = Some(Target { host_pid, process, entity_id: None, same_container });
    }

    pub fn syscall(&self) -> &'static str {
        if self.op == op::VM_WRITEV { "process_vm_writev" } else { "ptrace" }
    }

    pub fn kind(&self) -> Kind {
        let action = if self.op == op::VM_WRITEV { "process-vm-write" } else { "ptrace" };
        Kind { kind: "event", category: "process", types: &["access"], action, dataset: "docker_listener.process" }
    }

    fn request_name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self.request {
            request::ATTACH => "PTRACE_ATTACH",
            request::SEIZE => "PTRACE_SEIZE",
            request::POKETEXT => "PTRACE_POKETEXT",
            request::POKEDATA => "PTRACE_POKEDATA",
            request::POKEUSER => "PTRACE_POKEUSER",
            request::SETREGS => "PTRACE_SETREGS",
            request::SETFPREGS => "PTRACE_SETFPREGS",
            request::SETFPXREGS => "PTRACE_SETFPXREGS",
            request::SET_THREAD_AREA => "PTRACE_SET_THREAD_AREA",
            request::ARCH_PRCTL => "PTRACE_ARCH_PRCTL",
            request::SETREGSET => "PTRACE_SETREGSET",
            request::SETSIGINFO => "PTRACE_SETSIGINFO",
            request::SET_SYSCALL_INFO => "PTRACE_SET_SYSCALL_INFO",
            other => return Cow::Owned(other.to_string()),
        })
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            request: Option<Cow<'static, str>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            address: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            remote_iovecs: Option<u64>,
            target: TargetOut<'a>,
        }
        /// The target: the pid the caller named, and when it was found, the process on the host.
        #[derive(Serialize)]
        struct TargetOut<'a> {
            pid: i32,
            #[serde(skip_serializing_if = "Option::is_none")]
            host_pid: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            entity_id: Option<EntityId>,
            #[serde(skip_serializing_if = "Option::is_none")]
            executable: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            same_container: Option<bool>,
        }
        let r = self.resolved.as_ref();
        let p = r.and_then(|r| r.process.as_ref());
        let poke = matches!(self.request, request::POKETEXT | request::POKEDATA | request::POKEUSER);
        m.serialize_entry(
            "ptrace",
            &Out {
                request: (self.op == op::PTRACE).then(|| self.request_name()),
                address: (self.op == op::PTRACE && poke).then(|| format!("0x{:x}", self.addr)),
                remote_iovecs: (self.op == op::VM_WRITEV).then_some(self.addr),
                target: TargetOut {
                    pid: self.target,
                    host_pid: r.map(|r| r.host_pid),
                    entity_id: p.map(|p| p.entity_id).or_else(|| r.and_then(|r| r.entity_id)),
                    executable: p.and_then(|p| p.executable.as_deref()),
                    name: p.and_then(|p| p.name.as_deref()),
                    same_container: r.and_then(|r| r.same_container),
                },
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host pid, NSpid, and the pid namespaces it is in, outermost first: a container (ns 10)
    /// with its init, a process, and sibling pid namespaces made inside it (20, 22, 30), each
    /// with a pid 2, and namespaces below two of them (26 below 20, 35 below 30), each with a
    /// pid 3 at depth 2. The decoys come first.
    const PROCS: &[(u32, &[u32], &[u64])] = &[
        (250, &[250, 16, 2, 5], &[1, 10, 22, 25]),
        (260, &[260, 17, 3, 1], &[1, 10, 20, 26]),
        (100, &[100, 1], &[1, 10]),
        (101, &[101, 2], &[1, 10]),
        (200, &[200, 7, 1], &[1, 10, 20]),
        (201, &[201, 8, 2], &[1, 10, 20]),
        (300, &[300, 9, 1], &[1, 10, 30]),
        (301, &[301, 10, 2], &[1, 10, 30]),
        (350, &[350, 11, 3, 1], &[1, 10, 30, 35]),
    ];
    /// Threads but the leader, by their process's host pid: 301's thread is pid 4 in ns 30;
    /// 260's (a decoy, in the sibling 20 below 26) is pid 4 at depth 2 too.
    const THREADS: &[(u32, &[u32])] = &[(260, &[262, 18, 4, 2]), (301, &[302, 12, 4])];

    fn find(target: u32, level: Level) -> Option<u32> {
        let threads_of = |pid: u32| THREADS.iter().filter(|t| t.0 == pid).map(|t| t.1.to_vec()).collect::<Vec<_>>();
        let ns_pids =
            |pid: u32| PROCS.iter().find(|p| p.0 == pid).map(|p| (p.1.to_vec(), 1 + threads_of(pid).len() as u32));
        let ns_above = |pid: u32, up: usize| {
            PROCS.iter().find(|p| p.0 == pid).and_then(|p| p.2.len().checked_sub(up + 1).map(|i| p.2[i]))
        };
        find_target(target, &level, PROCS.iter().map(|p| p.0), ns_pids, threads_of, ns_above)
    }

    #[test]
    fn the_target_is_found_at_the_caller_s_level_of_pid_namespaces() {
        // A caller in the container's namespace: pid 2 is the container's, 8 the nested one's
        // (it sees the nested namespace's processes by their pids in its own).
        assert_eq!(find(2, Level { depth: 1, ns: Some(10) }), Some(101));
        assert_eq!(find(8, Level { depth: 1, ns: Some(10) }), Some(201));
        // A caller in the second nested namespace: its pid 2 is 301, not the first's 201, nor
        // 250's (below a sibling, looked at first), nor the container's 101.
        assert_eq!(find(2, Level { depth: 2, ns: Some(30) }), Some(301));
        assert_eq!(find(2, Level { depth: 2, ns: Some(20) }), Some(201));
        // A process below the caller's level, found by its pid at that level, in the caller's
        // namespace: 350 is pid 3 in ns 30; 260, looked at first, is pid 3 in the sibling 20.
        assert_eq!(find(3, Level { depth: 2, ns: Some(30) }), Some(350));
        assert_eq!(find(3, Level { depth: 2, ns: Some(20) }), Some(260));
        assert_eq!(find(2, Level { depth: 2, ns: Some(22) }), Some(250));
        assert_eq!(find(16, Level { depth: 1, ns: Some(10) }), Some(250));
        assert_eq!(find(5, Level { depth: 3, ns: Some(25) }), Some(250));
        // A pid its namespace does not have.
        assert_eq!(find(5, Level { depth: 2, ns: Some(30) }), None);
        assert_eq!(find(3, Level { depth: 2, ns: Some(22) }), None);
        // A caller in the host's namespace (`--pid=host`): the pid is the host's.
        assert_eq!(find(4242, Level { depth: 0, ns: Some(1) }), Some(4242));
    }

    #[test]
    fn a_thread_s_id_names_its_process() {
        // 301's thread: pid 4 in ns 30, pid 12 in the container's; not 260's in the sibling 20.
        assert_eq!(find(4, Level { depth: 2, ns: Some(30) }), Some(301));
        assert_eq!(find(12, Level { depth: 1, ns: Some(10) }), Some(301));
        assert_eq!(find(4, Level { depth: 2, ns: Some(20) }), Some(260));
        // The namespace unknown: two threads have pid 4 at depth 2, which is meant cannot be told.
        assert_eq!(find(4, Level { depth: 2, ns: None }), None);
        assert_eq!(find(12, Level { depth: 1, ns: None }), Some(301));
    }

    #[test]
    fn one_container_spending_its_search_budget_leaves_the_others_theirs() {
        let (a, b) = (u64::MAX - 1, u64::MAX - 2);
        assert_eq!(search_budget(a, 5000), 5000);
        assert!(search_budget(a, 5000) < 3300, "the burst is 8,192 reads");
        assert_eq!(search_budget(b, 4096), 4096, "another container's budget is its own");
        search_refund(b, 4096);
        assert_eq!(search_budget(b, 8192), 8192, "reads not spent come back");
    }

    #[test]
    fn without_the_caller_s_namespace_a_target_is_named_only_when_one_process_matches() {
        // The caller's depth known, its namespace not (it went between the two reads).
        assert_eq!(find(2, Level { depth: 2, ns: None }), None);
        assert_eq!(find(7, Level { depth: 1, ns: None }), Some(200));
    }
}
