//! The correlator: joins kernel records with Docker's view of the containers.
//!
//! In: decoded eBPF records, container details (inventory, inspect answers, Docker's container
//! events). Out: ECS events with their container, and requests for the monitor to act on
//! (inspect a container, stop or start tracing a cgroup, find an unknown cgroup).
//!
//! The process part of an event is built when its record arrives, from what the kernel recorded
//! (the executed file, the image generations that say which of the parent's images forked the
//! process); the container part is added when the container is known. A record from a container
//! whose details are still being fetched (an exec racing Docker's start event) is held, not
//! emitted with an empty or wrong container; after `HOLD` it goes out with the container id the
//! cgroup path gave, marked `container_unresolved`.
use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{
    config::EbpfConfig,
    ebpf::record::{Endpoint, Exec, Meta, Record},
    ecs::{Body, Clock, Event, ExecBody, Inventory, IoUringBody, Lineup, ProcRef, SocketBody},
    family::{
        CallBody, Context as CallContext, Detail, HostNamespaces, RuntimeBinaries,
        file::Verdict,
        socket::{PeerBound, SockOp, UnixListeners},
    },
    inventory,
    labels::LabelBudget,
    procs::{Image, Lineage, ProcessTable, Version},
    registry::{Container, ContainerRegistry, GRACE, Lookup, container_of_path},
    sensitive::{MapChange, Resolved, SensitiveSet},
};

/// A finished event: its `event.action` (for the counters) and its JSON.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub action: &'static str,
    pub json: Bytes,
    /// Set for the events a healthcheck summary may fold (`crate::health`).
    pub fold: Option<Fold>,
    /// `encode::owner_of` its container (0: none).
    pub owner: u64,
}

/// What the healthcheck stage needs to know of a process or socket event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub container_id: String,
    /// The process's entry leader: the first process of its exec session.
    pub leader: u32,
    /// Events of the same command (`crate::health` sends the first of each) have the same:
    /// container, `ecs::Event::routine`'s key (the program: executable, applet, the file's
    /// device and inode, for an exec its ctime; for a socket call also the address), and for
    /// an exec its arguments, user and group (`ecs::Event::command_detail`). Not the parent: a `docker exec`
    /// session's first process is run by runc, or by the shim once runc has exited.
    pub command_key: u64,
    /// Identical events (`crate::repeats`) have the same: `command_key`'s parts and an exec's
    /// parent program (`ecs::Event::repeat_detail`).
    pub repeat_key: u64,
}

impl Emitted {
    fn new(event: &Event, container: Option<&Container>, container_id: &str) -> Emitted {
        let mut e = Emitted::of(event, &event.with_container(container, container_id));
        e.owner = crate::encode::owner_of(container_id);
        if container.is_some() {
            e.fold = event.routine().map(|(leader, program)| {
                let (command_key, repeat_key) = fold_keys(container_id, &program, event);
                Fold { container_id: container_id.to_owned(), leader, command_key, repeat_key }
            });
        }
        e
    }

    /// An event of a traced cgroup that no container was found for.
    fn unknown(event: &Event) -> Emitted {
        Emitted::of(event, &event.without_known_container())
    }

    /// Serialised into a buffer kept between events, then copied out at its exact size: an
    /// exec event (1-2 KB) no longer grows a fresh buffer once or twice on the way, and the
    /// events waiting for the output hold no spare capacity.
    fn of(event: &Event, with: &crate::ecs::WithContainer<'_>) -> Emitted {
        /// Beyond this (a rare huge event), the buffer is not kept.
        const KEEP: usize = 64 << 10;
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(4096));
        }
        let json = SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            // Serialising into memory cannot fail (every map key is a string).
            let _ = crate::json::write(buf, with);
            let json = Bytes::copy_from_slice(buf);
            if buf.capacity() > KEEP {
                *buf = Vec::with_capacity(4096);
            }
            json
        });
        Emitted { action: event.action(), json, fold: None, owner: 0 }
    }

    /// The JSON as a value (tests).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).unwrap_or_default()
    }
}

/// Identifies identical events for repeat folding (`crate::repeats`), which sends the first and
/// counts the others: a SipHash keyed at random once per process. With a known key (std's
/// `DefaultHasher::new()`, whose key is zero), two argvs with the same 64-bit key can be found
/// offline in about 2^32 tries; an attacker in a container could then run the harmless one and,
/// within the window, the other, which would be counted as a repeat of the first and never
/// shown. A secret key leaves nothing to search offline, and the keys never leave the agent.
/// (The same holds for `Fold::command_key`, a healthcheck's first of each command.)
fn fold_keys(container_id: &str, program: &str, event: &Event) -> (u64, u64) {
    use std::hash::BuildHasher as _;
    static KEY: std::sync::LazyLock<std::hash::RandomState> = std::sync::LazyLock::new(std::hash::RandomState::new);
    fold_keys_by(KEY.build_hasher(), container_id, program, event)
}

/// `(command_key, repeat_key)`: the second goes on hashing from where the first stopped.
fn fold_keys_by(mut h: impl std::hash::Hasher + Clone, container_id: &str, program: &str, event: &Event) -> (u64, u64) {
    use std::hash::Hash as _;
    container_id.hash(&mut h);
    program.hash(&mut h);
    event.command_detail(&mut h);
    let command = h.clone().finish();
    event.repeat_detail(&mut h);
    (command, h.finish())
}

/// How long an event waits for its container's details.
pub const HOLD: Duration = Duration::from_secs(5);
/// At most this many events wait at once; beyond it the oldest go out unresolved.
pub const HOLD_MAX: usize = 20_000;

/// What the monitor must do for the correlator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Fetch this container's details (`GET /containers/{id}/json`).
    Inspect(String),
    /// Find which container this cgroup id belongs to (`pid` is a process seen in it).
    FindCgroup { cgroup: u64, pid: u32 },
    /// Add this cgroup id to the kernel filter.
    Track(u64),
    /// Remove this cgroup id from the kernel filter.
    Untrack(u64),
    /// Resolve the sensitive files inside this container's filesystem (`crate::sensitive`),
    /// from its init process when known, else from a process of its cgroup.
    ResolveFiles { id: String, pid: Option<u32> },
    /// Write these changes to the kernel's sensitive-file map.
    SensitiveMap(Vec<MapChange>),
    /// End this cgroup's first moments (its opens no longer all sent): after the map changes
    /// that made its container's set, when they are requested together.
    Settle(u64),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub events: u64,
    pub held: u64,
    pub released_unresolved: u64,
    pub filtered: u64,
    /// Cgroups that looked like a container's but that Docker does not know: untracked.
    pub rejected_cgroups: u64,
    /// Records from those cgroups: not container activity, dropped.
    pub not_container: u64,
    /// Exit-reported calls made by the runtime (its binary, by inode) setting a container up:
    /// not sent.
    pub runtime_setup: u64,
    /// File-access records that are no sensitive file (an inode number that is another file's
    /// elsewhere, a file created where a sensitive one may be, a change by name of another
    /// file): not sent.
    pub file_unmatched: u64,
}

struct Held {
    since: Instant,
    cgroup_id: u64,
    event: Event,
}

pub struct Correlator {
    pub registry: ContainerRegistry,
    pub procs: ProcessTable,
    cfg: EbpfConfig,
    clock: Clock,
    held: VecDeque<Held>,
    /// cgroup ids already asked about, so a burst of records asks once.
    asked: HashMap<u64, Instant>,
    /// cgroups removed (rmdir), forgotten by the registry GRACE later: a container that
    /// restarts (or makes and removes cgroups below its own) does not pile up old ones.
    removed_cgroups: VecDeque<(u64, Instant)>,
    /// cgroups Docker said are no container of its own, and when: their records are dropped.
    rejected: HashMap<u64, Instant>,
    /// Container-shaped cgroups seen created, not yet confirmed by Docker: their paths.
    unconfirmed: HashMap<u64, String>,
    /// The host's namespaces (a setns into one is an escape).
    host_ns: HostNamespaces,
    /// The container runtime's binaries: their calls are the runtime's, not the container's...
    runtime: RuntimeBinaries,
    /// ...unless a process of the container ran one (an exec record of it in a traced cgroup),
    /// or descends from one that did: those processes, whose calls are reported.
    runtime_started_here: HashSet<u32>,
    /// Which processes the kernel marks as the runtime's (their calls then never reach here):
    /// the others' calls are not dropped by their file.
    pub runtime_marks: RuntimeMarks,
    /// The Unix listeners container processes bound, by file: whose listener a connect reached.
    unix_listeners: UnixListeners,
    /// The sensitive files of every traced container (`file-access`).
    pub sensitive: SensitiveSet,
    /// When the sensitive sets were last made again.
    sensitive_refreshed: Option<Instant>,
    /// `(registry.removals(), sensitive.arrivals())` when the sets were last checked against
    /// the registry: a set can only have lost its container since if one of them changed.
    sensitive_checked: (u64, u64),
    pub counters: Counters,
}

/// Which processes the kernel marks as the container runtime's (`runtime.rs` in the eBPF
/// crate): each whose exec or fork it saw, in the host's mount namespace, unless its map had
/// no room. Those calls never reach the daemon; a call from another process whose file is a
/// runtime binary is the container's, and is sent: a process of the container can make its
/// executable file a runtime binary (`PR_SET_MM_EXE_FILE` to a mounted `docker-init`), or run
/// the host's runc with its exec record held back by the budget, and must not pass for the
/// runtime by that. The daemon knows the runtime by its file only where the kernel may have
/// missed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeMarks {
    /// The boot-clock time from which every process of the runtime is marked (the programs
    /// were attached by then): a process started earlier may not be. `None`: the kernel marks
    /// none (it cannot tell the host's mount namespace, or does not see execs and forks).
    pub from: Option<u64>,
    /// The kernel had no room to mark one (`RUNTIME_TASKS` full): from then on any may be
    /// unmarked.
    pub failed: bool,
}

impl RuntimeMarks {
    /// Whether a process started at `start_ns` (0: unknown) may be the runtime's unmarked.
    pub fn may_have_missed(&self, start_ns: u64) -> bool {
        match self.from {
            None => true,
            Some(from) => self.failed || start_ns == 0 || start_ns < from,
        }
    }
}

impl Correlator {
    pub fn new(procs: ProcessTable, cfg: EbpfConfig, clock: Clock) -> Correlator {
        let patterns = cfg.sensitive_files.iter().filter_map(|f| f.parse().ok()).collect();
        Correlator {
            registry: ContainerRegistry::new(LabelBudget {
                max_count: cfg.labels_max,
                max_bytes: cfg.labels_max_bytes,
            }),
            procs,
            cfg,
            clock,
            held: VecDeque::new(),
            asked: HashMap::new(),
            removed_cgroups: VecDeque::new(),
            rejected: HashMap::new(),
            unconfirmed: HashMap::new(),
            host_ns: HostNamespaces::read(),
            runtime: RuntimeBinaries::find(),
            runtime_started_here: HashSet::new(),
            runtime_marks: RuntimeMarks::default(),
            unix_listeners: UnixListeners::default(),
            sensitive: SensitiveSet::new(patterns),
            sensitive_refreshed: None,
            sensitive_checked: (0, 0),
            counters: Counters::default(),
        }
    }

    /// A Unix listener a process of `cgroup` holds, bound before the agent saw it (found in
    /// /proc): known as its bind would have made it known.
    pub fn unix_bound(&mut self, cgroup: u64, file: (u64, u32), name: &str) {
        let id = self.registry.container_id_of(cgroup).unwrap_or("");
        self.unix_listeners.bound(file, id, name);
    }

    /// Re-reads the wall-clock offset of the kernel's boot clock, so that `@timestamp` follows
    /// NTP steps and `settimeofday` (called every second).
    pub fn resync_clock(&mut self) {
        self.clock = Clock::now();
    }

    /// Handles one record; pushes finished events to `out` and requests to `req`.
    pub fn on_record(&mut self, rec: Record, now: Instant, out: &mut Vec<Emitted>, req: &mut Vec<Request>) {
        match rec {
            Record::Cgroup(c) => {
                // Made by a process of a container: that container's, wherever it is (a process
                // moving into a cgroup of its own making stays its container's). Else the
                // container the path names (runc making a container's cgroup).
                let creator = self.registry.container_id_of(c.meta.cgroup_id).map(str::to_owned);
                let Some(id) = creator.as_deref().or_else(|| container_of_path(&c.path)) else {
                    // Matched a prefix but names no container: nothing to join it with, and no
                    // set will be resolved for it.
                    tracing::debug!(path = %c.path, "a traced cgroup names no container");
                    if c.created {
                        req.push(Request::Settle(c.id));
                    }
                    return;
                };
                let id = id.to_owned();
                let id = id.as_str();
                if c.created {
                    // The kernel put it in its filter; the bit set beside the filter is the
                    // daemon's to keep exact (`EbpfProbes::track`).
                    req.push(Request::Track(c.id));
                    self.registry.bind_cgroup(id, c.id);
                    self.rejected.remove(&c.id);
                    if self.registry.get(id).is_none() {
                        // Kept until Docker answers: whether the cgroup still exists then tells
                        // a lookalike from a container already gone.
                        self.unconfirmed.insert(c.id, c.path.clone());
                        req.push(Request::Inspect(id.to_owned()));
                    } else {
                        self.release(c.id, out, req);
                    }
                } else {
                    self.unconfirmed.remove(&c.id);
                    // The registry keeps the cgroup a while: events of a short-lived container
                    // may still be waiting for its details.
                    self.procs.remove_cgroup(c.id);
                    self.removed_cgroups.push_back((c.id, now));
                }
            }
            Record::Fork(f) => {
                // A parent the table does not know yet (it was in the container before the agent
                // looked): from /proc, if the pid still names it.
                if self.procs.instance(f.meta.tgid, f.parent_start_ns).is_none()
                    && let Some(p) = self.procs.read_proc(f.meta.tgid, f.meta.cgroup_id, Some(f.parent_start_ns))
                {
                    self.procs.insert(p);
                }
                if self.runtime_started_here.contains(&f.meta.tgid) {
                    self.runtime_started_here.insert(f.child_tgid);
                }
                self.procs.on_fork(
                    (f.meta.tgid, f.parent_start_ns),
                    f.parent_exec_id,
                    f.child_tgid,
                    f.child_start_ns,
                    f.meta.cgroup_id,
                )
            }
            Record::Exit(e) => {
                if self.procs.on_exit(e.meta.tgid, e.start_ns).is_some()
                    || self.procs.instance(e.meta.tgid, 0).is_none()
                {
                    self.runtime_started_here.remove(&e.meta.tgid);
                }
            }
            Record::Exec(e) => {
                let own = [e.meta.cgroup_id];
                let cgroups = match self.registry.container_cgroups(e.meta.cgroup_id) {
                    [] => &own[..],
                    all => all,
                };
                let meta = e.meta;
                if e.exe.as_ref().is_some_and(|x| self.runtime.contains((x.ino, x.dev))) {
                    // A runtime binary run from inside a container (the host's runc, reached
                    // through a mount): its calls and its children's are the container's.
                    self.runtime_started_here.insert(meta.tgid);
                }
                let body = exec_body(&mut self.procs, e, cgroups, self.clock);
                let event = Event::new(meta, self.clock, Body::Exec(body));
                self.route(meta.cgroup_id, meta.tgid, event, now, out, req);
            }
            Record::Socket(s) => {
                if s.plumbing() {
                    self.counters.filtered += 1;
                    return;
                }
                let (process, version) = self.caller(&s.meta, s.start_ns, s.exec_id, s.exe);
                let mut body = SocketBody::new(&s, process, version);
                if let Some(file) = s.unix_file {
                    let id = self.registry.container_id_of(s.meta.cgroup_id).unwrap_or("");
                    match (s.op, &s.addr) {
                        (SockOp::Bind, Some(Endpoint::Unix(name))) => self.unix_listeners.bound(file, id, name),
                        (SockOp::Connect, _) => {
                            body.peer_bound = self.unix_listeners.binder(file, s.peer.as_deref()).map(|binder| {
                                let container = self.registry.get(binder).map_or(binder, |c| c.name.as_str());
                                PeerBound { container: container.to_owned(), same: binder == id }
                            });
                        }
                        _ => {}
                    }
                }
                let mut event = Event::new(s.meta, self.clock, Body::Socket(body));
                event.leader = self.leader_of(s.meta.tgid, s.start_ns, s.meta.cgroup_id);
                self.route(s.meta.cgroup_id, s.meta.tgid, event, now, out, req);
            }
            Record::IoUring(u) => {
                let process = self.process_of(&u.meta, u.start_ns, u.exec_id, u.exe);
                let event = Event::new(u.meta, self.clock, Body::IoUring(IoUringBody::new(&u, process)));
                self.route(u.meta.cgroup_id, u.meta.tgid, event, now, out, req);
            }
            Record::Call(mut c) => {
                let meta = c.meta;
                if self.runtime.contains(c.exe)
                    && !self.runtime_started_here.contains(&meta.tgid)
                    && self.runtime_marks.may_have_missed(c.start_ns)
                {
                    // The runtime's own process (runc making the container's mounts and
                    // namespaces, or entering them for a `docker exec`), known by its file, and
                    // not started from inside the container, which the kernel may not have
                    // marked as the runtime's. Counted, not sent: every container start makes
                    // dozens.
                    self.counters.runtime_setup += 1;
                    return;
                }
                if matches!(c.detail, Detail::File(_) | Detail::FileChange(_)) {
                    let id = self.registry.container_id_of(meta.cgroup_id).unwrap_or("").to_owned();
                    // Names are resolved in the caller's filesystem while it lives, else its
                    // container's (its init's): a short-lived `rm` is often gone already.
                    // (An open of a container's first moments is decided by its walked path alone,
                    // and most are not sensitive: no root to open, no mismatch to count.)
                    let pending = matches!(&c.detail, Detail::File(f) if f.is_pending());
                    let init = self.registry.get(&id).and_then(|c| c.pid);
                    let root = (!pending)
                        .then(|| {
                            crate::sensitive::Root::open(
                                [Some(meta.pid), Some(meta.tgid), init]
                                    .into_iter()
                                    .flatten()
                                    .map(|p| std::path::PathBuf::from(format!("/proc/{p}/root"))),
                            )
                        })
                        .flatten();
                    if let Detail::FileChange(f) = &mut c.detail {
                        f.names_from_proc(meta.pid, meta.tgid);
                        f.base_from_proc(meta.pid, meta.tgid);
                        f.base2_from_proc(meta.pid, meta.tgid);
                    }
                    if !self.file_verdict(&mut c.detail, &id, root.as_ref(), req) {
                        if !pending {
                            self.counters.file_unmatched += 1;
                        }
                        return;
                    }
                }
                let process = self.process_of(&meta, c.start_ns, c.exec_id, c.exe);
                // (Host tracing: a process outside any known container is not remembered.)
                let parent = self
                    .procs
                    .instance(meta.tgid, c.start_ns)
                    .and_then(|p| p.lineage.parent.as_deref().map(ProcRef::of));
                let own = [meta.cgroup_id];
                let cgroups = match self.registry.container_cgroups(meta.cgroup_id) {
                    [] => &own[..],
                    all => all,
                };
                let container = self.registry.container_id_of(meta.cgroup_id).map(|id| (&self.registry, id));
                let ctx = CallContext { procs: &self.procs, cgroups, host_ns: &self.host_ns, container };
                let body = CallBody::new(c, process, parent, &ctx);
                if let Some(creds) = body.credentials_after() {
                    self.procs.set_creds(meta.tgid, creds);
                }
                let event = Event::new(meta, self.clock, Body::Call(body));
                self.route(meta.cgroup_id, meta.tgid, event, now, out, req);
            }
        }
    }

    /// The entry leader of a known process (`crate::procs::Lineage::entry_leader`); 0 if the
    /// process is not in the table.
    fn leader_of(&self, tgid: u32, start_ns: u64, cgroup_id: u64) -> u32 {
        let own = [cgroup_id];
        let cgroups = match self.registry.container_cgroups(cgroup_id) {
            [] => &own[..],
            all => all,
        };
        self.procs.instance(tgid, start_ns).map_or(0, |p| p.lineage.entry_leader(cgroups))
    }

    /// The process a record came from (`meta`, started at `start_ns`), running the image it ran
    /// at `exec_id`: from the table, else from /proc when the pid still names it (and remembered).
    ///
    /// `exe`, the caller's executable as the record names it (inode, device; zeros when the
    /// kernel could not read it; every call, socket and io_uring record has it): when /proc shows
    /// another file, the process executed it since the call (a process the table did not know,
    /// such as one that joined the container from outside, calls `unshare` and then executes a
    /// shell): the call is not the shell's, and its image is left unknown.
    fn process_of(&mut self, meta: &Meta, start_ns: u64, exec_id: u64, exe: (u64, u32)) -> ProcRef {
        self.caller(meta, start_ns, exec_id, exe).0
    }

    /// The process a record was made by (`process_of`), and the version of the file it ran
    /// then, when known.
    fn caller(&mut self, meta: &Meta, start_ns: u64, exec_id: u64, exe: (u64, u32)) -> (ProcRef, Option<Version>) {
        if let Some(p) = self.procs.instance(meta.tgid, start_ns) {
            return match p.image_at(exec_id) {
                Some(i) if Arc::ptr_eq(i, p.image()) => (ProcRef::of(&p.lineage), i.version),
                Some(i) => (ProcRef::of(&p.lineage.with_image(i.clone())), i.version),
                // An exec not seen since (`image_at`): the process, not a program it left.
                None => (ProcRef::of(&p.lineage.with_image(Arc::new(Image::unknown()))), None),
            };
        }
        let p = match self.procs.read_proc(meta.tgid, meta.cgroup_id, Some(start_ns)) {
            Some(p) => {
                // The file /proc shows, as stat'ed for the image's version (not stat'ed again).
                let now = p.image().version.map(|v| (v.ino, v.dev)).or_else(|| crate::procs::exe_identity(meta.tgid));
                match (exe, now) {
                    (said, Some(now)) if said.0 != 0 && said != now => p.image_unknown(),
                    _ => p,
                }
            }
            None => self.procs.placeholder(meta.tgid, start_ns, meta.cgroup_id),
        };
        let r = (ProcRef::of(&p.lineage), p.image().version);
        if !self.cfg.trace_host || self.registry.lookup(meta.cgroup_id) != Lookup::Unknown {
            self.procs.insert(p);
        }
        r
    }

    /// Emits the event with its container, or holds it until the container is known. `pid` is
    /// the process the record came from (to find an unknown cgroup by).
    fn route(
        &mut self,
        cgroup_id: u64,
        pid: u32,
        event: Event,
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        if self.rejected.contains_key(&cgroup_id) {
            self.counters.not_container += 1;
            return;
        }
        match self.registry.lookup(cgroup_id) {
            Lookup::Known(c) => {
                if c.is_ignored(&self.cfg) {
                    self.counters.filtered += 1;
                    return;
                }
                out.push(Emitted::new(&event, Some(c), &c.id));
                self.counters.events += 1;
            }
            Lookup::Unknown if self.cfg.trace_host => {
                // Host tracing: a process outside any container we know; no container fields.
                self.counters.events += 1;
                out.push(Emitted::new(&event, None, ""));
            }
            lookup => {
                if lookup == Lookup::Unknown && !self.asked.contains_key(&cgroup_id) {
                    self.asked.insert(cgroup_id, now);
                    req.push(Request::FindCgroup { cgroup: cgroup_id, pid });
                }
                self.counters.held += 1;
                self.held.push_back(Held { since: now, cgroup_id, event });
                while self.held.len() > HOLD_MAX {
                    if let Some(h) = self.held.pop_front() {
                        self.emit_unresolved(h, out);
                    }
                }
            }
        }
    }

    /// A cgroup that FindCgroup could not place: its held events go out without a container.
    pub fn cgroup_not_found(&mut self, cgroup_id: u64, out: &mut Vec<Emitted>) {
        let (mine, rest): (VecDeque<Held>, VecDeque<Held>) =
            self.held.drain(..).partition(|h| h.cgroup_id == cgroup_id);
        self.held = rest;
        for h in mine {
            self.emit_unresolved(h, out);
        }
    }

    /// An event the agent made from /proc (start-up inventory) for process `pid` of `cgroup_id`.
    pub fn inventory_event(
        &mut self,
        cgroup_id: u64,
        pid: u32,
        body: Inventory,
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        let meta = Meta { cpu: 0, seq: 0, ktime_ns: Clock::boot_now(), cgroup_id, pid, tgid: pid };
        let event = Event::new(meta, self.clock, Body::Inventory(body));
        self.route(cgroup_id, pid, event, now, out, req);
    }

    /// The `process-running` events of processes just learned from /proc in `cgroup_id`.
    pub fn running_events(
        &mut self,
        cgroup_id: u64,
        pids: &[u32],
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        let own = [cgroup_id];
        let cgroups = match self.registry.container_cgroups(cgroup_id) {
            [] => own.to_vec(),
            all => all.to_vec(),
        };
        let (max_bytes, max_args) = (self.cfg.argv_max_bytes as usize, self.cfg.argv_max_args as usize);
        for &pid in pids {
            if let Some(body) = inventory::running(&self.procs, pid, &cgroups, max_bytes, max_args) {
                self.inventory_event(cgroup_id, pid, body, now, out, req);
            }
        }
    }

    /// Docker does not know the container a traced cgroup's path names (inspect: no such
    /// container). If the cgroup still exists (`alive`, given its path), it only looked like a
    /// container's: it is untracked, and its records, held or to come, are dropped (counted):
    /// they are not container activity. If it is gone, it was a container Docker has already
    /// removed (a short-lived one, whose events Docker has not yet told us about): its held
    /// events go out with the id the path gave, marked unresolved. A container Docker told us
    /// about meanwhile is kept.
    pub fn not_docker(
        &mut self,
        id: &str,
        alive: impl Fn(&str) -> bool,
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        if self.registry.get(id).is_some() {
            return;
        }
        let cgroups = self.registry.cgroups_of(id).to_vec();
        let removed = |cg: u64, me: &Self| {
            me.removed_cgroups.iter().any(|(c, _)| *c == cg) || me.unconfirmed.get(&cg).is_some_and(|path| !alive(path))
        };
        if !cgroups.is_empty() && cgroups.iter().all(|&cg| removed(cg, self)) {
            for cg in cgroups {
                self.unconfirmed.remove(&cg);
                self.cgroup_not_found(cg, out);
            }
            return;
        }
        for cg in self.registry.forget(id) {
            tracing::info!(
                cgroup = cg,
                id,
                "a cgroup shaped like a container's belongs to no Docker container: not traced"
            );
            self.unconfirmed.remove(&cg);
            self.counters.rejected_cgroups += 1;
            self.rejected.insert(cg, now);
            req.push(Request::Untrack(cg));
            self.procs.remove_cgroup(cg);
            let before = self.held.len();
            self.held.retain(|h| h.cgroup_id != cg);
            self.counters.not_container += (before - self.held.len()) as u64;
        }
    }

    /// Container details arrived (inventory, inspect, start event).
    pub fn on_container(
        &mut self,
        c: Container,
        cgroup_id: Option<u64>,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        let id = c.id.clone();
        if let Some(cg) = cgroup_id {
            self.registry.bind_cgroup(&id, cg);
            self.asked.remove(&cg);
            self.rejected.remove(&cg);
        }
        for cg in self.registry.cgroups_of(&id) {
            self.unconfirmed.remove(cg);
        }
        let pid = c.pid;
        // Another first process than the one known: a new run (a restart whose start event was
        // missed, or not handled yet), whose root is mounted again.
        if pid.is_some() && self.registry.get(&id).and_then(|k| k.pid).is_some_and(|known| Some(known) != pid) {
            self.sensitive.started(&id);
        }
        let ignored = c.is_ignored(&self.cfg);
        self.registry.upsert(c);
        for cg in self.registry.cgroups_of(&id).to_vec() {
            self.release(cg, out, req);
        }
        if self.cfg.file_access && !ignored && !self.sensitive.patterns.is_empty() {
            req.push(Request::ResolveFiles { id, pid });
        } else if ignored {
            req.push(Request::SensitiveMap(self.sensitive.forget(&id)));
        }
    }

    /// Whether a file-access record is an event (`resolve` of its family), with what it adds
    /// to the container's set: a sensitive file created joins it; after a sensitive file was
    /// deleted, renamed or linked, the set is made again (its inode number is free for another
    /// file).
    fn file_verdict(
        &mut self,
        detail: &mut Detail,
        id: &str,
        root: Option<&crate::sensitive::Root>,
        req: &mut Vec<Request>,
    ) -> bool {
        match detail {
            Detail::File(f) => match f.resolve(id, root, &self.sensitive) {
                Verdict::Keep => true,
                Verdict::KeepAndAdd(new) => {
                    for e in new {
                        req.push(Request::SensitiveMap(self.sensitive.add(id, e)));
                    }
                    true
                }
                Verdict::Drop => false,
            },
            Detail::FileChange(f) => {
                if !f.resolve(id, root, &self.sensitive) {
                    return false;
                }
                if f.changes_names() && !id.is_empty() {
                    let pid = self.registry.get(id).and_then(|c| c.pid);
                    req.push(Request::ResolveFiles { id: id.to_owned(), pid });
                }
                true
            }
            _ => true,
        }
    }

    /// A container's sensitive files were resolved, or could not be (`Resolved`).
    pub fn sensitive_resolved(&mut self, id: &str, resolved: Resolved, req: &mut Vec<Request>) {
        let known = self.registry.get(id).is_some_and(|c| !c.is_ignored(&self.cfg));
        let changes = match resolved {
            Resolved::Files(e) if known => self.sensitive.update(id, e),
            // A failed resolution keeps the last set (the next one comes with the period).
            Resolved::Failed if known => {
                self.sensitive.unresolved(id);
                return;
            }
            Resolved::RootMoved if known => {
                self.sensitive.root_moved(id);
                return;
            }
            // Stopped (no process), gone or ignored: its inodes leave the kernel's map.
            _ => self.sensitive.forget(id),
        };
        if !changes.is_empty() {
            req.push(Request::SensitiveMap(changes));
        }
    }

    /// Sends the held events of a cgroup whose container is now known; untracks ignored ones.
    fn release(&mut self, cgroup_id: u64, out: &mut Vec<Emitted>, req: &mut Vec<Request>) {
        let Lookup::Known(c) = self.registry.lookup(cgroup_id) else { return };
        let ignored = c.is_ignored(&self.cfg);
        if ignored {
            req.push(Request::Untrack(cgroup_id));
        }
        let (mine, rest): (VecDeque<Held>, VecDeque<Held>) =
            self.held.drain(..).partition(|h| h.cgroup_id == cgroup_id);
        self.held = rest;
        for h in mine {
            if ignored {
                self.counters.filtered += 1;
                continue;
            }
            out.push(Emitted::new(&h.event, Some(c), &c.id));
            self.counters.events += 1;
        }
    }

    /// Docker's container events keep the registry current.
    #[allow(clippy::too_many_arguments)] // the event's fields, plus the output buffers the monitor reuses
    pub fn on_docker_event(
        &mut self,
        kind: &str,
        action: &str,
        id: &str,
        time_nano: i64,
        attributes: &BTreeMap<String, String>,
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        if kind != "container" || id.is_empty() {
            return;
        }
        match action {
            "start" => {
                self.registry.restarted(id);
                self.sensitive.started(id);
                let c = Container::from_start_event(id, time_nano, attributes);
                self.on_container(c, None, out, req);
                // The image id, the init pid and exact labels.
                req.push(Request::Inspect(id.to_owned()));
            }
            "rename" => {
                if let Some(name) = attributes.get("name") {
                    self.registry.rename(id, name);
                }
            }
            "destroy" => self.registry.mark_removed(id, now),
            _ => {}
        }
    }

    /// Periodic work: events held too long go out; forgotten containers are untracked.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Emitted>, req: &mut Vec<Request>) {
        while self.held.front().is_some_and(|h| now.duration_since(h.since) >= HOLD) {
            if let Some(h) = self.held.pop_front() {
                self.emit_unresolved(h, out);
            }
        }
        self.asked.retain(|_, t| now.duration_since(*t) < HOLD);
        self.rejected.retain(|_, t| now.duration_since(*t) < GRACE);
        while let Some(&(cg, _)) = self.removed_cgroups.front().filter(|(_, t)| now.duration_since(*t) >= GRACE) {
            self.removed_cgroups.pop_front();
            self.registry.unbind_cgroup(cg);
            // The kernel dropped it from its filter at rmdir; a start-up inventory racing the
            // removal may have put it back.
            req.push(Request::Untrack(cg));
        }
        for cg in self.registry.expire(now) {
            self.procs.remove_cgroup(cg);
            req.push(Request::Untrack(cg));
        }
        // The sensitive sets: those of containers forgotten go, the others are made again
        // (a file replaced by a rename is another inode). Checked only after a container was
        // forgotten or got a set: looking every container up each second costs an idle host
        // more than the rest of the tick (a cold cache line or two per container).
        let mark = (self.registry.removals(), self.sensitive.arrivals());
        if mark != self.sensitive_checked {
            self.sensitive_checked = mark;
            let gone: Vec<String> =
                self.sensitive.containers().filter(|id| self.registry.get(id).is_none()).map(str::to_owned).collect();
            for id in gone {
                req.push(Request::SensitiveMap(self.sensitive.forget(&id)));
            }
            // (By its cgroups too: a container whose inspect has not answered yet keeps its.)
            let registry = &self.registry;
            self.unix_listeners.retain(|id| registry.get(id).is_some() || !registry.cgroups_of(id).is_empty());
        }
        if self.sensitive_refreshed.is_none_or(|t| now.duration_since(t) >= crate::sensitive::refresh_period()) {
            if self.sensitive_refreshed.is_some() && self.cfg.file_access && !self.sensitive.patterns.is_empty() {
                // Every known container, not only those with a set: one whose set could not be
                // made (no process found at the time) gets another chance.
                for c in self.registry.containers().filter(|c| !c.is_ignored(&self.cfg)) {
                    req.push(Request::ResolveFiles { id: c.id.clone(), pid: c.pid });
                }
            }
            self.sensitive_refreshed = Some(now);
        }
        // Exit records lost to a full ring buffer would leave pids behind.
        let procs = &self.procs;
        self.runtime_started_here.retain(|&pid| procs.get(pid).is_some());
    }

    fn emit_unresolved(&mut self, h: Held, out: &mut Vec<Emitted>) {
        self.counters.events += 1;
        match self.registry.lookup(h.cgroup_id) {
            Lookup::Known(c) => out.push(Emitted::new(&h.event, Some(c), &c.id)),
            Lookup::Pending(id) => {
                out.push(Emitted::new(&h.event, None, id));
                self.counters.released_unresolved += 1;
            }
            Lookup::Unknown if self.cfg.trace_host => {
                out.push(Emitted::new(&h.event, None, ""));
                self.counters.released_unresolved += 1;
            }
            Lookup::Unknown => {
                out.push(Emitted::unknown(&h.event));
                self.counters.released_unresolved += 1;
            }
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The exec event of a record: a successful exec gives the process its new image (the file the
/// kernel executed); a failed one describes the attempt by the process that made it.
pub fn exec_body(procs: &mut ProcessTable, e: Exec, cgroups: &[u64], clock: Clock) -> ExecBody {
    let Exec {
        meta,
        ppid,
        uid,
        gid,
        ret,
        start_ns,
        parent_start_ns,
        exec_id,
        parent_exec_id,
        comm,
        filename,
        exe,
        args,
        compat,
        creds,
    } = e;
    // Without the kernel's answer (no BTF): the path given, else the kernel's comm.
    let said = if filename.is_empty() { comm.as_str() } else { filename.as_str() };
    let executable = match &exe {
        Some(x) => x.path.as_str(),
        None => said,
    };
    // The version of the file that ran, which the process's socket calls are keyed by.
    let version = exe.as_ref().map(|x| Version {
        ino: x.ino,
        dev: x.dev,
        ctime_ns: x.ctime_ns,
        fresh: crate::family::exec::fresh(x.ctime_ns, clock.wall_ns(meta.ktime_ns)),
    });
    let image = Arc::new(Image::new(executable, &args.args).with_version(version));
    let lineage = if ret == 0 {
        procs.on_exec(
            meta.tgid,
            start_ns,
            exec_id,
            ppid,
            parent_start_ns,
            parent_exec_id,
            image.clone(),
            meta.cgroup_id,
        )
    } else {
        // Nothing changed in the caller: it is named by its pid, with what it tried to run.
        let parent = match procs.instance(meta.tgid, start_ns) {
            Some(p) => p.lineage.parent.clone(),
            None => procs.parent_lineage(ppid, parent_start_ns, Some(parent_exec_id)),
        };
        Arc::new(Lineage::new(meta.tgid, procs.entity_id(meta.tgid, start_ns), image.clone(), meta.cgroup_id, parent))
    };
    let reparented_to = match lineage.parent.as_deref() {
        Some(p) if ppid != 0 && p.pid != ppid => Some(ProcRef {
            pid: ppid,
            entity_id: procs.entity_id(ppid, parent_start_ns),
            executable: None,
            name: None,
            applet: None,
            applet_hidden: false,
        }),
        _ => None,
    };
    if let Some(c) = creds {
        procs.set_creds(meta.tgid, c);
    }
    ExecBody {
        lineup: Lineup::of(&lineage, cgroups),
        uid,
        gid,
        ret,
        args,
        filename,
        comm,
        exe,
        compat,
        reparented_to,
        creds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::record::{Args, Cgroup, ExeFile, Exec, Meta};
    use crate::ecs::parts;

    const ID: &str = "570fefe78429d3600b750fb59149623a7a7d6c644403383ad4a30df5b8e18384";

    fn exec(cgroup_id: u64, tgid: u32) -> Record {
        Record::Exec(Exec {
            meta: Meta { cpu: 0, seq: 1, ktime_ns: 5, cgroup_id, pid: tgid, tgid },
            ppid: 1,
            uid: 0,
            gid: 0,
            ret: 0,
            start_ns: 10,
            parent_start_ns: 1,
            exec_id: 1,
            parent_exec_id: 0,
            comm: "sh".into(),
            filename: "/bin/sh".into(),
            exe: Some(ExeFile { path: "/bin/busybox".into(), ino: 5, ..ExeFile::default() }),
            args: Args { args: vec!["sh".into()], ..Args::default() },
            compat: false,
            creds: None,
        })
    }

    /// A successful native TCP connect by `tgid` in cgroup 82, whose caller runs the file the
    /// `exec` fixture's does (inode 5, device 0).
    fn connect(tgid: u32, seq: u64, ktime_ns: u64) -> crate::family::socket::Socket {
        crate::family::socket::Socket {
            meta: Meta { cpu: 0, seq, ktime_ns, cgroup_id: 82, pid: tgid, tgid },
            ret: 0,
            start_ns: 10,
            exe: (5, 0),
            addr: None,
            local: None,
            ..crate::family::socket::tests::connect()
        }
    }

    fn correlator() -> Correlator {
        Correlator::new(ProcessTable::new("b".into(), 100), EbpfConfig::default(), Clock::fixed(0))
    }

    /// A correlator that knows container "web" (`ID`) on cgroup 82, its start handled.
    fn web_started_on_82() -> Correlator {
        let mut c = correlator();
        c.registry.bind_cgroup(ID, 82);
        started(&mut c, &mut Vec::new(), &mut Vec::new());
        c
    }

    fn started(c: &mut Correlator, out: &mut Vec<Emitted>, req: &mut Vec<Request>) {
        let attrs: BTreeMap<String, String> =
            [("name".to_owned(), "web".to_owned()), ("image".to_owned(), "busybox".to_owned())].into();
        c.on_docker_event("container", "start", ID, 77, &attrs, Instant::now(), out, req);
    }

    #[test]
    fn each_known_container_s_sensitive_files_are_resolved_then_again_every_period() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        started(&mut c, &mut out, &mut req);
        let resolves =
            |req: &[Request]| req.iter().filter(|r| matches!(r, Request::ResolveFiles { id, .. } if id == ID)).count();
        assert!(resolves(&req) >= 1, "{req:?}");
        req.clear();
        let now = Instant::now();
        c.tick(now, &mut out, &mut req);
        c.tick(now + Duration::from_secs(1), &mut out, &mut req);
        assert_eq!(resolves(&req), 0, "not before the period");
        // Its set could not be made (no process found): it is tried again all the same.
        c.sensitive_resolved(ID, Resolved::NoProcess, &mut req);
        c.tick(now + crate::sensitive::REFRESH, &mut out, &mut req);
        assert_eq!(resolves(&req), 1, "{req:?}");
    }

    /// The tick checks the sets against the registry only after a container was forgotten or
    /// got a set: each of the two still takes the set of a container the registry no longer
    /// knows out of the kernel's map at the next tick.
    #[test]
    fn the_set_of_a_container_no_longer_known_leaves_the_map_at_the_next_tick() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        started(&mut c, &mut out, &mut req);
        let shadow = crate::sensitive::Entry { ino: 41, dev: 5, bits: 1, pattern: 0, path: "/etc/shadow".into() };
        c.sensitive_resolved(ID, Resolved::Files(vec![shadow.clone()]), &mut req);
        let now = Instant::now();
        let maps = |req: &mut Vec<Request>| -> Vec<Vec<MapChange>> {
            req.drain(..).filter_map(|r| if let Request::SensitiveMap(ch) = r { Some(ch) } else { None }).collect()
        };
        req.clear();
        c.tick(now, &mut out, &mut req);
        c.tick(now + Duration::from_secs(1), &mut out, &mut req);
        assert!(maps(&mut req).is_empty(), "a known container keeps its set");
        // Forgotten by the registry (Docker has no such container).
        c.registry.forget(ID);
        c.tick(now + Duration::from_secs(2), &mut out, &mut req);
        assert_eq!(maps(&mut req), vec![vec![(41, None)]]);
        // A set made for an id the registry does not know (a file created in a cgroup whose
        // container is still being inspected, then found to be no container).
        assert_eq!(c.sensitive.add("not-a-container", shadow.clone()), vec![(41, Some(1))]);
        c.tick(now + Duration::from_secs(3), &mut out, &mut req);
        assert_eq!(maps(&mut req), vec![vec![(41, None)]]);
        assert!(c.sensitive.is_empty());
    }

    /// A container's set is made in the root it was first found in until a new run of the
    /// container: its start event, or an inspection naming another first process (a restart
    /// whose start event was missed). A resolution that found every process elsewhere keeps it.
    #[test]
    fn a_container_s_set_stays_in_its_root_until_a_new_run() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        started(&mut c, &mut out, &mut req);
        let shadow = crate::sensitive::Entry { ino: 41, dev: 5, bits: 1, pattern: 0, path: "/etc/shadow".into() };
        let known = c.registry.get(ID).unwrap().clone();
        let run = |pid| Container { pid: Some(pid), ..known.clone() };
        c.on_container(run(9), None, &mut out, &mut req);
        c.sensitive_resolved(ID, Resolved::Files(vec![shadow.clone()]), &mut req);
        c.sensitive.keep_root(ID, (2, 40));
        req.clear();
        c.sensitive_resolved(ID, Resolved::RootMoved, &mut req);
        assert!(req.is_empty(), "{req:?}");
        assert!(c.sensitive.find(ID, 41, 5, false, |_| true).is_some(), "the set kept");
        c.on_container(run(9), None, &mut out, &mut req);
        assert_eq!(c.sensitive.root_of(ID), Some((2, 40)), "the same run");
        c.on_container(run(10), None, &mut out, &mut req);
        assert_eq!(c.sensitive.root_of(ID), None, "another first process: a new run");
        c.sensitive.keep_root(ID, (3, 41));
        started(&mut c, &mut out, &mut req);
        assert_eq!(c.sensitive.root_of(ID), None, "a start event");
    }

    #[test]
    fn a_failed_resolution_keeps_the_container_s_files_watched() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        started(&mut c, &mut out, &mut req);
        let shadow = crate::sensitive::Entry { ino: 41, dev: 5, bits: 1, pattern: 0, path: "/etc/shadow".into() };
        req.clear();
        c.sensitive_resolved(ID, Resolved::Files(vec![shadow.clone()]), &mut req);
        assert!(matches!(&req[..], [Request::SensitiveMap(ch)] if ch == &[(41, Some(1))]), "{req:?}");
        // The next resolution finds no readable root for a moment: the inode stays in the map.
        req.clear();
        c.sensitive.begin(ID);
        c.sensitive_resolved(ID, Resolved::Failed, &mut req);
        assert!(req.is_empty(), "{req:?}");
        assert_eq!(c.sensitive.len(), 1);
        assert!(c.sensitive.find(ID, 41, 5, false, |_| true).is_some());
        // A container forgotten (gone) takes its inodes out.
        c.sensitive_resolved("gone", Resolved::Failed, &mut req);
        assert!(req.is_empty(), "an unknown container had nothing to take out: {req:?}");
        c.registry.forget(ID);
        c.sensitive_resolved(ID, Resolved::Failed, &mut req);
        assert!(matches!(&req[..], [Request::SensitiveMap(ch)] if ch == &[(41, None)]), "{req:?}");
        // A stopped container (no process left) takes them out too, known or not.
        req.clear();
        started(&mut c, &mut out, &mut req);
        c.sensitive_resolved(ID, Resolved::Files(vec![shadow.clone()]), &mut req);
        req.clear();
        c.sensitive_resolved(ID, Resolved::NoProcess, &mut req);
        assert!(matches!(&req[..], [Request::SensitiveMap(ch)] if ch == &[(41, None)]), "{req:?}");
        assert!(!c.sensitive.is_resolved(ID));
    }

    /// Netlink sockets are plumbing, filtered by the family the kernel read from the socket.
    /// A 32-bit call's socket is read at its exit only (whatever another thread put under its
    /// descriptor by then), and a swapped call's not at all: neither says what the call was
    /// made on, so neither is ever filtered.
    #[test]
    fn only_a_native_unswapped_netlink_socket_is_filtered_as_plumbing() {
        let mut c = web_started_on_82();
        let mut out = Vec::new();
        let netlink = |compat: bool, swapped: bool, seq: u64| {
            Record::Socket(crate::family::socket::Socket {
                exe: (5, 1),
                family: parts::AF_NETLINK,
                sock_type: 3,
                protocol: 0,
                compat,
                swapped,
                ..connect(100, seq, 5)
            })
        };
        c.on_record(netlink(false, false, 1), Instant::now(), &mut out, &mut Vec::new());
        assert!(
            out.is_empty(),
            "a native netlink socket is plumbing: {:?}",
            out.iter().map(|e| e.value()).collect::<Vec<_>>()
        );
        for (compat, swapped) in [(true, false), (false, true)] {
            c.on_record(netlink(compat, swapped, 2), Instant::now(), &mut out, &mut Vec::new());
            let sent =
                out.pop().map(|e| e.value()).unwrap_or_else(|| panic!("compat {compat}, swapped {swapped}: filtered"));
            assert_eq!(sent["event"]["action"], "connect", "{sent}");
            assert_eq!(sent["container"]["name"], "web", "{sent}");
        }
    }

    /// A connect is keyed by the version of the file its caller's exec ran (`procs::Version`):
    /// a program rewritten in place (the same inode, a new ctime) makes connects that are not
    /// repeats of the old program's, and one run just after it was written makes connects that
    /// are repeats of its own process's only.
    #[test]
    fn a_connect_is_keyed_by_the_version_of_the_program_that_made_it() {
        let mut c = web_started_on_82();
        let exec_at = 10_000_000_000;
        let connect_by = |c: &mut Correlator, tgid: u32, ctime_ns: u64| {
            let Record::Exec(mut e) = exec(82, tgid) else { unreachable!() };
            e.meta.ktime_ns = exec_at;
            e.exe.as_mut().expect("the fixture's file").ctime_ns = ctime_ns;
            c.on_record(Record::Exec(e), Instant::now(), &mut Vec::new(), &mut Vec::new());
            let connect = connect(tgid, 2, exec_at + 1);
            let mut out = Vec::new();
            c.on_record(Record::Socket(connect), Instant::now(), &mut out, &mut Vec::new());
            out.pop().expect("a connect in a known container").fold.map(|f| f.command_key)
        };
        let old = connect_by(&mut c, 100, 1_000).expect("a routine connect");
        assert_eq!(connect_by(&mut c, 101, 1_000), Some(old), "the same program again");
        assert_ne!(connect_by(&mut c, 102, 2_000), Some(old), "rewritten in place");
        let fresh = connect_by(&mut c, 103, exec_at - 1_000_000).expect("a routine connect");
        assert_ne!(fresh, old, "written just before it ran");
        assert_ne!(connect_by(&mut c, 104, exec_at - 1_000_000), Some(fresh), "the same version, another process");
    }

    #[test]
    fn an_exec_racing_the_start_event_is_held_then_attributed() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        let now = Instant::now();
        // The kernel saw the cgroup appear, then the init's exec, before Docker's start event.
        c.on_record(
            Record::Cgroup(Cgroup {
                meta: Meta { cpu: 0, seq: 0, ktime_ns: 1, cgroup_id: 1, pid: 9, tgid: 9 },
                created: true,
                id: 82,
                path: format!("/docker/{ID}"),
            }),
            now,
            &mut out,
            &mut req,
        );
        assert_eq!(req, vec![Request::Track(82), Request::Inspect(ID.into())]);
        c.on_record(exec(82, 100), now, &mut out, &mut req);
        assert!(out.is_empty(), "held, not emitted without its container");
        started(&mut c, &mut out, &mut req);
        assert_eq!(out.len(), 1);
        let v = out[0].value();
        assert_eq!(v["container"]["name"], "web");
        assert_eq!(v["container"]["id"], ID);
        assert_eq!(v["docker_listener"]["container_started_time_nano"], 77);
    }

    /// A container's `container` object is serialised once and then copied (`ObjectCache`):
    /// every change Docker reports must still reach the next event, whole and valid, hostile
    /// label text included.
    #[test]
    fn the_container_object_follows_a_rename_and_new_details() {
        let mut c = web_started_on_82();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        let now = Instant::now();
        let exec_in_82 = |c: &mut Correlator, tgid: u32| {
            let mut out = Vec::new();
            c.on_record(exec(82, tgid), now, &mut out, &mut Vec::new());
            assert_eq!(out.len(), 1);
            out[0].value()["container"].clone()
        };
        let first = exec_in_82(&mut c, 100);
        assert_eq!(first["name"], "web");
        assert_eq!(exec_in_82(&mut c, 101), first, "the copy");
        let attrs: BTreeMap<String, String> = [("name".to_owned(), "/web2".to_owned())].into();
        c.on_docker_event("container", "rename", ID, 78, &attrs, now, &mut out, &mut req);
        assert_eq!(exec_in_82(&mut c, 102)["name"], "web2");
        // Inspect's answer: the image id and labels, one of them hostile.
        let hostile = "a\"b\\c\u{1}\u{2028}é</script>";
        let mut inspected = c.registry.get(ID).cloned().expect("known");
        inspected.image_id = Some("sha256:abc".into());
        inspected.labels = [("team".to_owned(), hostile.to_owned())].into();
        c.on_container(inspected, Some(82), &mut out, &mut req);
        assert_eq!(
            exec_in_82(&mut c, 103),
            serde_json::json!({
                "id": ID,
                "name": "web2",
                "image": {"name": "busybox", "id": "sha256:abc"},
                "labels": {"team": hostile},
                "runtime": "docker",
            })
        );
        assert!(c.registry.get(ID).is_some_and(|k| k.object.get().is_some()), "kept after its first event");
    }

    /// Repeat folding's key is not std's zero-keyed SipHash (whose collisions an attacker can
    /// search for offline), and it still tells apart what it must.
    #[test]
    fn the_repeat_key_is_secret_keyed_and_tells_argvs_apart() {
        let mut c = web_started_on_82();
        // argv as the exec record gives it (`record::decode_args`, with its digest).
        let argv = |args: &[&str]| {
            let raw: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
            crate::ebpf::record::decode_args(&raw, b"", raw.len() as u64, false, 64)
        };
        let with_args = |c: &mut Correlator, tgid: u32, args: &[&str]| {
            let Record::Exec(mut e) = exec(82, tgid) else { unreachable!() };
            e.args = argv(args);
            let mut out = Vec::new();
            c.on_record(Record::Exec(e), Instant::now(), &mut out, &mut Vec::new());
            out.pop().and_then(|e| e.fold).expect("a routine exec in a known container")
        };
        let a = with_args(&mut c, 100, &["sh", "-c", "true"]);
        let again = with_args(&mut c, 101, &["sh", "-c", "true"]);
        let other = with_args(&mut c, 102, &["sh", "-c", "false"]);
        assert_eq!(a.repeat_key, again.repeat_key, "the same exec again");
        assert_ne!(a.repeat_key, other.repeat_key, "another argv");
        // The same command line run by another program: pid 300, known as an xargs.
        let Record::Exec(mut xargs) = exec(82, 300) else { unreachable!() };
        xargs.args = argv(&["xargs"]);
        c.on_record(Record::Exec(xargs), Instant::now(), &mut Vec::new(), &mut Vec::new());
        let Record::Exec(mut child) = exec(82, 301) else { unreachable!() };
        child.args = argv(&["sh", "-c", "true"]);
        (child.ppid, child.parent_start_ns, child.parent_exec_id) = (300, 10, 1);
        let mut out = Vec::new();
        c.on_record(Record::Exec(child), Instant::now(), &mut out, &mut Vec::new());
        let from_xargs = out.pop().and_then(|e| e.fold).expect("a routine exec");
        assert_ne!(a.repeat_key, from_xargs.repeat_key, "the same argv from another program");
        assert_eq!(a.command_key, from_xargs.command_key, "the same command, for a healthcheck's first of each");
        assert_ne!(a.command_key, other.command_key, "another argv, another command");
        // The same path and argv, another file (replaced on a volume), or another group.
        let Record::Exec(mut replaced) = exec(82, 302) else { unreachable!() };
        replaced.args = argv(&["sh", "-c", "true"]);
        replaced.exe.as_mut().expect("the fixture's file").ino += 1;
        let Record::Exec(mut grouped) = exec(82, 303) else { unreachable!() };
        grouped.args = argv(&["sh", "-c", "true"]);
        grouped.gid = 50;
        // The same argv as shown, another as read (a redacted secret, an argument left out:
        // `decode_args`' own test shows the digests differ).
        let Record::Exec(mut hidden) = exec(82, 304) else { unreachable!() };
        hidden.args = argv(&["sh", "-c", "true"]);
        hidden.args.digest ^= 1;
        for (other, what) in
            [(replaced, "another file at the same path"), (grouped, "another group"), (hidden, "another argv as read")]
        {
            let mut out = Vec::new();
            c.on_record(Record::Exec(other), Instant::now(), &mut out, &mut Vec::new());
            let fold = out.pop().and_then(|e| e.fold).expect("a routine exec");
            assert_ne!(a.repeat_key, fold.repeat_key, "{what}");
            assert_ne!(a.command_key, fold.command_key, "{what}");
        }
        // The same event, keyed like std's `DefaultHasher::new()`: another key.
        let Record::Exec(e) = exec(82, 400) else { unreachable!() };
        let event = Event::new(
            e.meta,
            Clock::fixed(0),
            Body::Exec(exec_body(&mut ProcessTable::new("b".into(), 100), e, &[82], Clock::fixed(0))),
        );
        assert_eq!(fold_keys(ID, "k", &event), fold_keys(ID, "k", &event));
        let (command, repeat) = fold_keys(ID, "k", &event);
        let (std_command, std_repeat) = fold_keys_by(std::hash::DefaultHasher::new(), ID, "k", &event);
        assert!(command != std_command && repeat != std_repeat, "keyed like std's DefaultHasher::new()");
    }

    #[test]
    fn held_events_go_out_unresolved_after_the_hold() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        let now = Instant::now();
        c.registry.bind_cgroup(ID, 82);
        c.on_record(exec(82, 100), now, &mut out, &mut req);
        c.tick(now + HOLD / 2, &mut out, &mut req);
        assert!(out.is_empty());
        c.tick(now + HOLD, &mut out, &mut req);
        assert_eq!(out.len(), 1);
        let v = out[0].value();
        assert_eq!(v["container"]["id"], ID);
        assert_eq!(v["docker_listener"]["container_unresolved"], true);
    }

    #[test]
    fn unknown_cgroups_are_looked_up_once() {
        let mut c = correlator();
        let (mut out, mut req) = (Vec::new(), Vec::new());
        let now = Instant::now();
        c.on_record(exec(99, 100), now, &mut out, &mut req);
        c.on_record(exec(99, 101), now, &mut out, &mut req);
        assert_eq!(req, vec![Request::FindCgroup { cgroup: 99, pid: 100 }]);
        c.on_container(
            Container {
                id: ID.into(),
                name: "db".into(),
                image: "pg".into(),
                image_id: None,
                labels: BTreeMap::new(),
                pid: None,
                namespaces: None,
                root_dir: None,
                started_time_nano: None,
                shown_labels: Default::default(),
                object: Default::default(),
            },
            Some(99),
            &mut out,
            &mut req,
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| e.value()["container"]["name"] == "db"));
    }

    #[test]
    fn ignored_containers_are_untracked_and_their_events_dropped() {
        let cfg = EbpfConfig { ignore_containers: vec!["web".into()], ..EbpfConfig::default() };
        let mut c = Correlator::new(ProcessTable::new("b".into(), 100), cfg, Clock::fixed(0));
        let (mut out, mut req) = (Vec::new(), Vec::new());
        c.registry.bind_cgroup(ID, 82);
        c.on_record(exec(82, 100), Instant::now(), &mut out, &mut req);
        started(&mut c, &mut out, &mut req);
        assert!(out.is_empty());
        assert!(req.contains(&Request::Untrack(82)));
        assert_eq!(c.counters.filtered, 1);
    }

    fn mount_by(tgid: u32, exe: (u64, u32)) -> Record {
        use crate::family::{Call, Detail, namespace::NsCall};
        Record::Call(Call {
            meta: Meta { cpu: 0, seq: 2, ktime_ns: 6, cgroup_id: 82, pid: tgid, tgid },
            start_ns: 10,
            exec_id: 1,
            ret: 0,
            compat: false,
            truncated: false,
            result_known: true,
            exe,
            uid: 0,
            gid: 0,
            detail: Detail::Namespace(NsCall {
                op: docker_listener_common::family::namespace::op::MOUNT,
                flags: 0,
                ns_ino: 0,
                fd: -1,
                source: "proc".into(),
                target: "/proc".into(),
                fstype: "proc".into(),
                joined: [0; 6],
                host_namespace: None,
            }),
        })
    }

    #[test]
    fn a_call_the_table_did_not_know_the_caller_of_names_its_file_only_if_it_still_runs_it() {
        // This test's own process stands for the caller: /proc has it, and its file.
        let me = std::process::id();
        let now_runs = crate::procs::exe_identity(me).expect("/proc/self/exe");
        let start_ns = crate::procs::proc_stat(me).expect("/proc/self/stat").start_ticks * 10_000_000;
        let executable = |record_exe: (u64, u32)| {
            let mut c = correlator();
            let (mut out, mut req) = (Vec::new(), Vec::new());
            c.registry.bind_cgroup(ID, 82);
            started(&mut c, &mut out, &mut req);
            out.clear();
            let Record::Call(mut call) = mount_by(me, record_exe) else { unreachable!() };
            call.start_ns = start_ns;
            c.on_record(Record::Call(call), Instant::now(), &mut out, &mut req);
            assert_eq!(out.len(), 1);
            out[0].value()["process"]["executable"].clone()
        };
        let mine = std::fs::read_link("/proc/self/exe").expect("/proc/self/exe");
        assert_eq!(executable(now_runs), serde_json::json!(mine.to_string_lossy()));
        // The call was made by another file: the caller executed this one since.
        assert_eq!(executable((now_runs.0 + 1, now_runs.1)), serde_json::Value::Null);
    }

    #[test]
    fn the_runtime_s_calls_are_counted_unless_the_container_ran_the_runtime() {
        let mut c = correlator();
        c.runtime = RuntimeBinaries::of(vec![(99, 7)]);
        let (mut out, mut req) = (Vec::new(), Vec::new());
        let now = Instant::now();
        c.registry.bind_cgroup(ID, 82);
        started(&mut c, &mut out, &mut req);
        // runc setting the container up: its file is the runtime's; not sent.
        c.on_record(mount_by(300, (99, 7)), now, &mut out, &mut req);
        assert!(out.is_empty());
        assert_eq!(c.counters.runtime_setup, 1);
        // Another program's mount is the container's.
        c.on_record(mount_by(301, (5, 7)), now, &mut out, &mut req);
        assert_eq!(out.len(), 1);
        // The host's runc run from inside the container (through a mount of the host's
        // filesystem): its exec was seen here, so its calls, and its children's, are reported.
        let Record::Exec(mut e) = exec(82, 302) else { unreachable!() };
        e.exe = Some(ExeFile { path: "/host/usr/sbin/runc".into(), ino: 99, dev: 7, ..ExeFile::default() });
        c.on_record(Record::Exec(e), now, &mut out, &mut req);
        c.on_record(
            Record::Fork(crate::ebpf::record::Fork {
                meta: Meta { cpu: 0, seq: 3, ktime_ns: 7, cgroup_id: 82, pid: 302, tgid: 302 },
                child_tgid: 303,
                child_start_ns: 20,
                parent_start_ns: 10,
                parent_exec_id: 1,
            }),
            now,
            &mut out,
            &mut req,
        );
        out.clear();
        c.on_record(mount_by(302, (99, 7)), now, &mut out, &mut req);
        c.on_record(mount_by(303, (99, 7)), now, &mut out, &mut req);
        assert_eq!(out.len(), 2, "no place to hide behind the runtime's file");
        assert_eq!(c.counters.runtime_setup, 1);
        // Where the kernel marks the runtime's processes, a call that reached here is not one
        // of them, whatever its file says...
        out.clear();
        c.runtime_marks = RuntimeMarks { from: Some(5), failed: false };
        c.on_record(mount_by(304, (99, 7)), now, &mut out, &mut req);
        assert_eq!(out.len(), 1, "a process the kernel would have marked");
        // ...unless the process started before the programs were attached, or a mark failed.
        c.runtime_marks = RuntimeMarks { from: Some(u64::MAX), failed: false };
        c.on_record(mount_by(305, (99, 7)), now, &mut out, &mut req);
        c.runtime_marks = RuntimeMarks { from: Some(5), failed: true };
        c.on_record(mount_by(306, (99, 7)), now, &mut out, &mut req);
        assert_eq!(out.len(), 1);
        assert_eq!(c.counters.runtime_setup, 3);
    }
}
