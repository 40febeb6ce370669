//! The process monitor: drives the eBPF side.
//!
//! One task owns the ring buffer, the kernel filter map, the correlator (container registry and
//! process table): no locks. It reads records, feeds Docker's container events and inspect
//! answers to the correlator, runs the start-up inventory whenever the Docker connection is
//! (re)established, and every second reports losses and releases events held too long.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use crate::correlate::Emitted;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    config::EbpfConfig,
    correlate::{Correlator, Request},
    docker::{DockerClient, DockerEvent},
    ebpf::{EbpfError, EbpfProbes, record},
    ecs::{self, Clock, Inventory, ProcRef},
    encode::{Encoder, Frame},
    inventory::{self, Listener},
    procs::ProcessTable,
    registry::{self, Container},
    sink::Spool,
    stats::Stats,
};

/// Inspect requests in flight at once (start-up inventory of hundreds of containers).
const INSPECT_CONCURRENCY: usize = 8;
/// Records handled per drain before the events go to the output.
const DRAIN_MAX: usize = 1024;
/// While records keep coming, the monitor drains the ring on this timer and the programs commit
/// without waking it (see `EbpfProbes::set_polling`): one timer wake-up per period instead of a
/// kernel wake-up (irq_work and IPI on the traced task's CPU) plus a context switch each time
/// the ring was emptied. It bounds the latency added under a flow (docs/ARCHITECTURE.md,
/// "Batching"); 3 ms rather than 2 costs a millisecond of latency (p99 4.3 ms at 10k events/s)
/// for a fifth of the CPU per exec (BENCHMARKS.md, "the drain period").
const POLL_EVERY: Duration = Duration::from_millis(3);
/// Empty polls in a row after which the monitor goes back to sleeping until the kernel wakes it.
const IDLE_POLLS: u32 = 2;
/// How long a new cgroup's opens are all sent (`family::file::matched::PENDING`) when its
/// container's sensitive files are not resolved sooner (Docker slow to answer, a cgroup made
/// inside a container, a lookalike Docker does not know).
const PENDING_MAX: Duration = Duration::from_secs(10);
/// How often the kernel's map of traced cgroups is read for ones marked pending whose record
/// the daemon did not read, when no record was reported lost (a safety net: a lost record is
/// the known way to miss one, and after a loss the map is read every `PENDING_MAX`).
const ADOPT_EVERY: Duration = Duration::from_secs(60);
/// How often processes whose exit record was lost are swept from the table.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Entries of the process table checked against /proc per tick of the monitor (one a second):
/// ~5 µs each, so at most a few milliseconds at a time; a table of 20,000 in 40 s.
const SWEEP_SLICE: usize = 512;

/// A running container of the start-up inventory, with its cgroup (id and directory) and the
/// cgroups below it (systemd or Docker inside the container), whose processes are its too.
struct Found {
    container: Container,
    cgroup: u64,
    dir: PathBuf,
    below: Vec<(u64, PathBuf)>,
}

/// Answers from the helper tasks the monitor spawns.
enum Info {
    /// The running containers whose cgroup was found, the ids of all of them, and when the
    /// listing was asked for.
    Inventory {
        found: Vec<Found>,
        listed: HashSet<String>,
        asked_at: Instant,
        /// Running containers whose cgroup could not be found: (id, name).
        untraced: Vec<(String, String)>,
    },
    InventoryFailed(String),
    /// The listening sockets of the inventory's containers, found after it (reading the
    /// network namespaces' socket tables takes milliseconds each: the containers are traced
    /// first).
    Listeners(Vec<Listener>),
    Container(Container, Option<u64>),
    InspectFailed(String),
    /// A container's sensitive files, resolved in its filesystem (or why not).
    Sensitive(Resolution),
    /// Docker has no such container (inspect: 404); the cgroup that named it, if not bound yet.
    NotDocker {
        id: String,
        cgroup: Option<u64>,
    },
    CgroupNotFound(u64),
}

pub struct Monitor {
    pub probes: EbpfProbes,
    pub correlator: Correlator,
    pub encoder: Encoder,
    pub spool: Arc<Spool>,
    pub stats: Arc<Stats>,
    pub cfg: EbpfConfig,
    /// Docker's container events (start, rename, destroy), from the Docker source.
    pub docker_events: mpsc::UnboundedReceiver<DockerEvent>,
    /// The Docker client, published by the Docker source at each (re)connection.
    pub client: watch::Receiver<Option<DockerClient>>,
    /// The healthcheck stage, which may hold or fold the events of healthcheck sessions.
    pub health: Option<Arc<crate::health::Health>>,
    /// Repeat folding (`repeat_window`); `None` when off.
    pub repeats: Option<crate::repeats::Repeats>,
    /// The first inventory reported the listening sockets (later ones, after a reconnection to
    /// Docker, would repeat them).
    /// The start-up listeners were asked for (once: a Docker reconnection's inventory does not
    /// report them again).
    listeners_asked: bool,
}

impl Monitor {
    pub fn new(
        probes: EbpfProbes,
        cfg: EbpfConfig,
        encoder: Encoder,
        spool: Arc<Spool>,
        stats: Arc<Stats>,
        docker_events: mpsc::UnboundedReceiver<DockerEvent>,
        client: watch::Receiver<Option<DockerClient>>,
    ) -> Monitor {
        let mut correlator = Correlator::new(ProcessTable::for_this_host(), cfg.clone(), Clock::now());
        correlator.runtime_marks.from = probes.runtime_marked_from;
        Monitor {
            probes,
            correlator,
            encoder,
            spool,
            stats,
            cfg,
            docker_events,
            client,
            health: None,
            repeats: None,
            listeners_asked: false,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken, mut ticks: crate::seconds::Ticks) -> Result<(), EbpfError> {
        tracing::info!(
            programs = self.probes.attached.len(),
            ring_buffer_bytes = self.cfg.ring_buffer_bytes,
            trace_host = self.cfg.trace_host,
            "eBPF probes attached: {}",
            self.probes.attached.join(" ")
        );
        if let Some(why) = &self.probes.degraded {
            tracing::warn!(reason = %why, "eBPF runs degraded: no parent pids, argv, socket details or fork records");
            self.spool.push_report(self.encoder.report(&ecs::agent_health_event(
                "ebpf",
                "degraded",
                why,
                "no parent pids, argv, socket details or fork records",
            )));
        }
        for door in &self.probes.doors {
            match door.state {
                crate::ebpf::attach::DoorState::Active => tracing::info!("seen: {door}"),
                // Off by the operator's choice: said in the log, no alert.
                crate::ebpf::attach::DoorState::Off => tracing::warn!("not seen: {door}"),
                crate::ebpf::attach::DoorState::Unavailable(_) => {
                    tracing::warn!("not seen: {door}");
                    self.spool.push_report(self.encoder.report(&ecs::agent_health_event(
                        door.name,
                        "blind",
                        &door.to_string(),
                        door.blind,
                    )));
                }
            }
        }
        tracing::info!("not seen on any kernel: {}", crate::ebpf::attach::ALWAYS_BLIND);
        let mount = registry::cgroup2_mount();
        if mount.is_none() {
            tracing::warn!(
                "no cgroup v2 mount found in /proc/self/mountinfo: containers that already run are not traced"
            );
        }
        let (info_tx, mut info_rx) = mpsc::unbounded_channel::<Info>();
        let inspect_slots = Arc::new(tokio::sync::Semaphore::new(INSPECT_CONCURRENCY));
        let mut inspecting: HashSet<String> = HashSet::new();
        let mut resolving = Resolutions::default();
        let mut last_sweep = Instant::now();
        let mut last_adopt = Instant::now();
        let mut lost_reported: u64 = 0;
        let mut lost_at_adopt: u64 = 0;
        let mut held_reported: HashMap<(u64, usize), u64> = HashMap::new();
        let mut drain_ctx = Drain { received: 0, max_args: self.cfg.argv_max_args as usize, stats: self.stats.clone() };
        // Polling: the programs commit without waking us and the timer drains the ring.
        // Settling: they wake us again; one more timed drain before sleeping on the ring.
        let mut polling = false;
        let mut settling = false;
        let mut idle_polls: u32 = 0;
        let poll_timer = tokio::time::sleep(POLL_EVERY);
        tokio::pin!(poll_timer);
        let mut out: Vec<Emitted> = Vec::new();
        let mut req: Vec<Request> = Vec::new();
        let mut docker_open = true;
        if self.client.borrow().is_some() {
            self.client.mark_changed();
        }

        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                guard = self.probes.ring.readable_mut(), if !polling => {
                    let mut guard = guard?;
                    let n = drain(guard.get_inner_mut(), &mut drain_ctx, &mut self.correlator, &mut out, &mut req);
                    if n == 0 {
                        // Empty: sleep until the kernel wakes us.
                        guard.clear_ready();
                    } else {
                        // A flow starts: poll while it lasts. The cached readiness stays set on
                        // purpose: going back to sleeping first drains whatever was committed
                        // during the switch.
                        drop(guard);
                        polling = self.start_polling(poll_timer.as_mut(), n);
                    }
                }
                () = &mut poll_timer, if polling => {
                    let n = drain(self.probes.ring.get_mut(), &mut drain_ctx, &mut self.correlator, &mut out, &mut req);
                    if settling {
                        // One period after the programs were told to wake us again, every
                        // program that still read "polling" has long committed: what it left
                        // was drained just now, and the next record wakes us.
                        settling = false;
                        idle_polls = 0;
                        if n == 0 {
                            polling = false;
                        } else {
                            polling = self.start_polling(poll_timer.as_mut(), n);
                        }
                    } else {
                        idle_polls = if n == 0 { idle_polls.saturating_add(1) } else { 0 };
                        // Exactly at the threshold: if the map write fails, polling goes on
                        // (logged once) until records flow and stop again.
                        if idle_polls == IDLE_POLLS && !self.set_polling(false) {
                            settling = true;
                        }
                        poll_timer.as_mut().reset(next_poll(n));
                    }
                }
                Some(ev) = self.docker_events.recv(), if docker_open => {
                    let attributes = attributes_of(&ev);
                    self.correlator.on_docker_event(ev.kind(), ev.action(), ev.actor_id(), ev.time_nano, &attributes, Instant::now(), &mut out, &mut req);
                }
                changed = self.client.changed() => {
                    if changed.is_err() {
                        // The Docker source is gone (shutdown): keep draining the kernel side.
                        docker_open = false;
                        continue;
                    }
                    let client = self.client.borrow_and_update().clone();
                    if let Some(client) = client {
                        let listeners = !self.listeners_asked;
                        self.listeners_asked = true;
                        spawn_inventory(client, mount.clone(), self.cfg.cgroup_prefixes.clone(), listeners, info_tx.clone());
                    }
                }
                Some(info) = info_rx.recv() => {
                    self.apply(info, mount.as_deref(), (&mut inspecting, &mut resolving), &mut out, &mut req);
                }
                Ok(()) = ticks.changed() => {
                    if !polling {
                        // A program that read "polling" just before the switch back may have
                        // committed after the last drain without waking us; nothing else would
                        // wake us while that record waits.
                        let n = drain(self.probes.ring.get_mut(), &mut drain_ctx, &mut self.correlator, &mut out, &mut req);
                        if n > 0 {
                            polling = self.start_polling(poll_timer.as_mut(), n);
                        }
                    }
                    let now = Instant::now();
                    self.correlator.resync_clock();
                    Stats::set(&self.stats.ebpf_not_container, self.correlator.counters.not_container);
                    Stats::set(&self.stats.ebpf_runtime_setup, self.runtime_setup());
                    Stats::set(&self.stats.ebpf_file_unmatched, self.correlator.counters.file_unmatched);
                    Stats::set(&self.stats.ebpf_sensitive_left_out, self.correlator.sensitive.left_out());
                    self.correlator.tick(now, &mut out, &mut req);
                    self.check_runtime_marks();
                    lost_reported = self.report_losses(drain_ctx.received, lost_reported);
                    self.report_held_back(&mut held_reported, None);
                    self.close_repeats(now, false);
                    // The process table's entries whose exit record was lost: a slice per tick,
                    // so that a container of 20,000 processes never holds the pipeline.
                    // (A sweep starts once the previous one is through.)
                    if now.duration_since(last_sweep) >= SWEEP_EVERY && !self.correlator.procs.sweeping() {
                        last_sweep = now;
                        self.correlator.procs.start_sweep();
                    }
                    // Every `PENDING_MAX` after a record was lost (a cgroup_mkdir record among
                    // them leaves a marked cgroup the daemon never noted), else every
                    // `ADOPT_EVERY`: the walk reads the whole map, which an idle host feels.
                    let since = now.duration_since(last_adopt);
                    if since >= ADOPT_EVERY || (since >= PENDING_MAX && lost_reported != lost_at_adopt) {
                        last_adopt = now;
                        lost_at_adopt = lost_reported;
                        self.probes.adopt_pending(now);
                    }
                    let settled = self.probes.settle_older(now, PENDING_MAX);
                    if settled > 0 {
                        tracing::debug!(settled, "cgroups whose container's files were not resolved in time: their opens are no longer all sent");
                    }
                    let (gone, _left) = self.correlator.procs.sweep_step(SWEEP_SLICE);
                    if gone > 0 {
                        tracing::debug!(gone, "swept processes whose exit record was lost");
                        Stats::add(&self.stats.procs_swept, gone as u64);
                    }
                    let tracked = self.correlator.procs.len() as u64;
                    Stats::set(&self.stats.procs_tracked, tracked);
                    self.stats.procs_tracked_peak.fetch_max(tracked, std::sync::atomic::Ordering::Relaxed);
                }
            }
            self.flush(&mut out);
            for r in req.drain(..) {
                match r {
                    Request::Track(cg) => {
                        if let Err(e) = self.probes.track(cg) {
                            tracing::error!(error = %e, "a container cannot be traced");
                        }
                        if self.cfg.file_access {
                            // Its opens are all sent until its container's files are resolved;
                            // at once if they already are (a cgroup made inside the container),
                            // or if no file is configured (no set will ever be made).
                            self.probes.note_pending(cg, Instant::now());
                            let id = self.correlator.registry.container_id_of(cg);
                            if self.correlator.sensitive.patterns.is_empty()
                                || id.is_some_and(|id| self.correlator.sensitive.is_resolved(id))
                            {
                                self.probes.settle(cg);
                            }
                        }
                    }
                    Request::Settle(cg) => self.probes.settle(cg),
                    Request::Untrack(cg) => {
                        self.report_held_back(&mut held_reported, Some(cg));
                        self.probes.untrack(cg);
                    }
                    Request::Inspect(id) => {
                        if inspecting.insert(id.clone()) {
                            spawn_inspect(
                                self.client.borrow().clone(),
                                id,
                                None,
                                inspect_slots.clone(),
                                info_tx.clone(),
                            );
                        }
                    }
                    Request::ResolveFiles { id, pid } => {
                        if resolving.ask(&id) {
                            self.correlator.sensitive.begin(&id);
                            let root = self.correlator.sensitive.root_of(&id);
                            let root_dir = self.correlator.registry.get(&id).and_then(|c| c.root_dir.clone());
                            spawn_resolve_files(
                                id,
                                ResolveAt { pid, root, root_dir },
                                mount.clone(),
                                self.cfg.cgroup_prefixes.clone(),
                                self.correlator.sensitive.patterns.clone(),
                                info_tx.clone(),
                            );
                        }
                    }
                    Request::SensitiveMap(changes) => {
                        let failed = self.probes.apply_sensitive(&changes);
                        if failed > 0 {
                            Stats::add(&self.stats.ebpf_sensitive_map_full, failed as u64);
                            tracing::error!(
                                failed,
                                max = crate::sensitive::MAP_MAX,
                                "the kernel's map of sensitive files is full: opens of these files are not reported; \
                                 list fewer sensitive files (ebpf.sensitive_files) or trace fewer containers"
                            );
                        }
                    }
                    Request::FindCgroup { cgroup: cg, pid } => {
                        spawn_find_cgroup(
                            self.client.borrow().clone(),
                            mount.clone(),
                            self.cfg.cgroup_prefixes.clone(),
                            cg,
                            pid,
                            info_tx.clone(),
                        );
                    }
                }
            }
        }
        // Last drain, so the final counts are exact.
        while drain(self.probes.ring.get_mut(), &mut drain_ctx, &mut self.correlator, &mut out, &mut req) == DRAIN_MAX {
        }
        self.flush(&mut out);
        self.report_losses(drain_ctx.received, lost_reported);
        self.report_held_back(&mut held_reported, None);
        self.close_repeats(Instant::now(), true);
        let generated = self.probes.generated();
        Stats::add(&self.stats.ebpf_seq_gaps, generated.saturating_sub(drain_ctx.received));
        let (execs, socks) = self.probes.pending();
        Stats::set(&self.stats.ebpf_pending_exec, execs);
        Stats::set(&self.stats.ebpf_pending_sock, socks);
        Stats::set(&self.stats.ebpf_not_container, self.correlator.counters.not_container);
        Stats::set(&self.stats.ebpf_runtime_setup, self.runtime_setup());
        Stats::set(&self.stats.ebpf_file_unmatched, self.correlator.counters.file_unmatched);
        Stats::set(&self.stats.ebpf_sensitive_left_out, self.correlator.sensitive.left_out());
        Ok(())
    }

    /// Once the kernel had no room to mark a process of the runtime, the correlator knows the
    /// runtime by its file too (`correlate::RuntimeMarks`).
    fn check_runtime_marks(&mut self) {
        if self.correlator.runtime_marks.failed || self.correlator.runtime_marks.from.is_none() {
            return;
        }
        let unmarked = self.probes.runtime_unmarked();
        if unmarked > 0 {
            tracing::warn!(
                unmarked,
                "the kernel's map of the container runtime's processes was full: from now on a container \
                 process whose executable file is a runtime binary is taken for the runtime, and its calls \
                 are counted (ebpf_runtime_setup), not sent (the map holds 8,192 processes at once)"
            );
            self.correlator.runtime_marks.failed = true;
        }
    }

    /// The container runtime's calls not sent: those the kernel knew by their process (not
    /// sent at all, `runtime.rs`) and those the correlator knew by their file.
    fn runtime_setup(&self) -> u64 {
        self.probes.runtime_calls() + self.correlator.counters.runtime_setup
    }

    /// After a drain of `n` records (> 0): poll from now on, the next drain due per `next_poll`.
    /// Returns whether polling is in force (see `set_polling`).
    fn start_polling(&mut self, timer: std::pin::Pin<&mut tokio::time::Sleep>, n: usize) -> bool {
        timer.reset(next_poll(n));
        self.set_polling(true)
    }

    /// Switches the programs' wake-ups off (`on`: the monitor polls) or back on; returns the
    /// mode now in force, which stays as it was if the map cannot be written.
    fn set_polling(&mut self, on: bool) -> bool {
        match self.probes.set_polling(on) {
            Ok(()) => on,
            Err(e) => {
                tracing::error!(error = %e, "the eBPF wake-up mode stays as it was");
                !on
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Emitted>) {
        if out.is_empty() {
            return;
        }
        Stats::add(&self.stats.ebpf_events, out.len() as u64);
        let (stats, encoder, health, repeats) = (&self.stats, &self.encoder, &self.health, &mut self.repeats);
        let (now, wall) = (Instant::now(), ecs::now_wall_ns());
        let mut summaries = Vec::new();
        let mut frames: Vec<Frame> = out
            .drain(..)
            .filter_map(|e| {
                stats.count_ebpf_action(e.action);
                let mut frame = encoder.agent_json(e.json)?;
                frame.owner = e.owner;
                let Some(fold) = &e.fold else { return Some(frame) };
                // A healthcheck's events first (they may wait for, or fold into, its summary),
                // then repeats.
                if let Some(h) = health {
                    frame = h.agent(fold, frame)?;
                }
                if let Some(r) = repeats.as_mut()
                    && !r.admit(fold.repeat_key, &frame.parts[1], now, wall, &mut summaries)
                {
                    Stats::inc(&stats.repeats_folded);
                    return None;
                }
                Some(frame)
            })
            .collect();
        frames.extend(summaries.iter().filter_map(|v| encoder.agent(v)));
        Stats::add(&self.stats.repeat_summaries, summaries.len() as u64);
        self.spool.push_all(frames);
    }

    fn apply(
        &mut self,
        info: Info,
        mount: Option<&std::path::Path>,
        (inspecting, resolving): (&mut HashSet<String>, &mut Resolutions),
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        let now = Instant::now();
        match info {
            Info::Inventory { found: list, listed, asked_at, untraced } => {
                let started = Instant::now();
                let mut processes = 0;
                let count = list.len();
                for (id, name) in &untraced {
                    Stats::inc(&self.stats.containers_untraced);
                    tracing::warn!(container = %id, name = %name, "no cgroup found for a running container: its processes are not traced (counted in containers_untraced)");
                }
                for Found { container: c, cgroup, dir, below } in list {
                    let ignored = c.is_ignored(&self.cfg);
                    let id = c.id.clone();
                    self.correlator.on_container(c, Some(cgroup), out, req);
                    if ignored {
                        continue;
                    }
                    // Traced before /proc is read: a process started meanwhile is then either in
                    // the scan or seen by the kernel, never in neither.
                    self.track_now(cgroup);
                    for (cg, _) in &below {
                        self.correlator.registry.bind_cgroup(&id, *cg);
                        self.track_now(*cg);
                    }
                    for (cg, d) in std::iter::once((cgroup, dir)).chain(below) {
                        let learned = self.correlator.procs.scan_cgroup(&d, cg);
                        processes += learned.len();
                        self.correlator.running_events(cg, &learned, now, out, req);
                    }
                    // The init pid and start time come from inspect, in the background.
                    req.push(Request::Inspect(id));
                }
                // Containers that went away while Docker was unreachable (a start brings them back).
                self.correlator.registry.mark_unlisted_removed(&listed, asked_at, Instant::now());
                tracing::info!(
                    containers = count,
                    processes,
                    took_ms = started.elapsed().as_millis() as u64,
                    "container inventory loaded: their processes are traced"
                );
            }
            Info::Listeners(listeners) => self.listening_events(&listeners, now, out, req),
            Info::InventoryFailed(e) => {
                // The next connection's inventory reports the listeners instead.
                self.listeners_asked = false;
                tracing::error!(error = %e, "listing containers failed: containers started before docker-listener are traced only once Docker reports them")
            }
            Info::Container(c, cgroup) => {
                inspecting.remove(&c.id);
                let (id, pid, ignored) = (c.id.clone(), c.pid, c.is_ignored(&self.cfg));
                self.correlator.on_container(c, cgroup, out, req);
                if !ignored && self.correlator.registry.cgroups_of(&id).is_empty() {
                    self.trace_late(&id, pid, mount, now, out, req);
                }
            }
            Info::InspectFailed(id) => {
                inspecting.remove(&id);
            }
            Info::Sensitive(Resolution { id, resolved, root, expected, docker }) => {
                let again = resolving.done(&id);
                let files = matches!(resolved, crate::sensitive::Resolved::Files(_));
                // (A resolution made for a run that has ended since, the root of the new run not
                // known yet, says nothing of it: another follows.)
                let stale = matches!(resolved, crate::sensitive::Resolved::RootMoved)
                    && self.correlator.sensitive.root_of(&id) != expected;
                if !stale {
                    self.correlator.sensitive_resolved(&id, resolved, req);
                }
                match root {
                    // Docker's root replaces one kept before the inspection answered (a decoy).
                    Some(root) if docker => self.correlator.sensitive.set_root(&id, root),
                    Some(root) => self.correlator.sensitive.keep_root(&id, root),
                    None => {}
                }
                // Its first moments are over once its inodes are in the kernel's map (the
                // requests run in order): its opens are matched by inode from then on. (Not
                // when the resolution failed: they stay sent until the next or `PENDING_MAX`.)
                if files {
                    let cgroups = self.correlator.registry.cgroups_of(&id);
                    req.extend(cgroups.iter().filter(|&&cg| self.probes.is_pending(cg)).map(|&cg| Request::Settle(cg)));
                }
                // (Not for a container just forgotten: gone, or ignored.)
                if again && let Some(c) = self.correlator.registry.get(&id).filter(|c| !c.is_ignored(&self.cfg)) {
                    let pid = c.pid;
                    req.push(Request::ResolveFiles { id, pid });
                }
            }
            Info::NotDocker { id, cgroup } => {
                inspecting.remove(&id);
                let before = self.correlator.counters.rejected_cgroups;
                if let Some(cg) = cgroup {
                    self.correlator.registry.bind_cgroup(&id, cg);
                }
                let alive = |path: &str| mount.is_some_and(|m| m.join(path.trim_start_matches('/')).is_dir());
                self.correlator.not_docker(&id, alive, now, out, req);
                Stats::add(&self.stats.ebpf_cgroups_rejected, self.correlator.counters.rejected_cgroups - before);
            }
            Info::CgroupNotFound(cg) => {
                tracing::debug!(cgroup = cg, "a traced cgroup matches no container");
                self.correlator.cgroup_not_found(cg, out);
            }
        }
    }

    /// A running container with no traced cgroup (its cgroup has a shape and a place nothing
    /// recognised): found through its init process, traced from now on, and what already runs
    /// in it reported; else said and counted.
    fn trace_late(
        &mut self,
        id: &str,
        pid: Option<u32>,
        mount: Option<&std::path::Path>,
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        let found = match (mount, pid) {
            (Some(m), Some(pid)) => registry::cgroup_dir_of_pid(m, pid)
                .and_then(|d| registry::cgroup_id(&d).ok().map(|cg| (cg, d)))
                .filter(|(cg, _)| *cg != 1),
            _ => None,
        };
        let Some((cg, dir)) = found else {
            Stats::inc(&self.stats.containers_untraced);
            tracing::warn!(container = %id, "no cgroup found for a running container: its processes are not traced (counted in containers_untraced)");
            return;
        };
        tracing::warn!(container = %id, cgroup = %dir.display(), "a container's cgroup was not recognised when it was created: traced from now on; what ran in it before is reported as running processes");
        Stats::inc(&self.stats.containers_traced_late);
        let below = registry::cgroups_below(&dir, registry::BELOW_DEPTH, registry::BELOW_MAX);
        let mut pids = Vec::new();
        for (cg, d) in std::iter::once((cg, dir)).chain(below) {
            self.correlator.registry.bind_cgroup(id, cg);
            self.track_now(cg);
            let learned = self.correlator.procs.scan_cgroup(&d, cg);
            self.correlator.running_events(cg, &learned, now, out, req);
            pids.extend(learned);
        }
        self.listening_events(&inventory::listeners(&pids), now, out, req);
    }

    /// Starts tracing a cgroup at once (not after the current batch of work).
    fn track_now(&mut self, cgroup: u64) {
        if let Err(e) = self.probes.track(cgroup) {
            tracing::error!(error = %e, "a container cannot be traced");
        }
    }

    /// `socket-listening` events for the listeners the inventory found.
    fn listening_events(
        &mut self,
        listeners: &[Listener],
        now: Instant,
        out: &mut Vec<Emitted>,
        req: &mut Vec<Request>,
    ) {
        let mut unix = 0;
        for l in listeners {
            let Some(p) = self.correlator.procs.get(l.pid) else { continue };
            let (process, cg) = (ProcRef::of(&p.lineage), p.cgroup_id);
            if let (Some(file), crate::ebpf::record::Endpoint::Unix(name)) = (l.file, &l.endpoint) {
                // Not an event: whose listener a connect reaches (a runtime of the container's
                // own, started before the agent, as its bind would have said).
                self.correlator.unix_bound(cg, file, name);
                unix += 1;
                continue;
            }
            let body = Inventory::Listening { process, transport: l.transport, server: l.endpoint.clone() };
            self.correlator.inventory_event(cg, l.pid, body, now, out, req);
        }
        if unix > 0 {
            tracing::debug!(listeners = unix, "Unix listeners of running containers known by their socket files");
        }
    }

    /// Sends the summaries of the repeat windows that are over (`all`: every window).
    fn close_repeats(&mut self, now: Instant, all: bool) {
        let Some(r) = self.repeats.as_mut() else { return };
        let mut summaries = Vec::new();
        if all {
            r.flush(&mut summaries);
        } else {
            r.tick(now, &mut summaries);
        }
        if summaries.is_empty() {
            return;
        }
        Stats::add(&self.stats.repeat_summaries, summaries.len() as u64);
        let encoder = &self.encoder;
        self.spool.push_all(summaries.iter().filter_map(|v| encoder.agent(v)));
    }

    /// Emits one `events-held-back` event per container whose budget held records back since
    /// the last report (`only`: that cgroup's, which is then forgotten: it is being untracked).
    /// `reported`: what was reported of each (cgroup, class).
    fn report_held_back(&mut self, reported: &mut HashMap<(u64, usize), u64>, only: Option<u64>) {
        // Each tick: only when the kernel counted a record held back since the last walk.
        if only.is_none() && !self.probes.held_back_moved() {
            return;
        }
        // Per cgroup: what each class held back since the last report, and the totals.
        let mut moved: BTreeMap<u64, ecs::HeldBackReport> = BTreeMap::new();
        for h in self.probes.held_back() {
            if only.is_some_and(|o| o != h.cgroup) {
                continue;
            }
            let r = moved.entry(h.cgroup).or_default();
            r.total += h.total;
            let before = reported.insert((h.cgroup, h.class), h.total).unwrap_or(0);
            if h.total > before {
                r.delta += h.total - before;
                let name = docker_listener_common::budget::NAMES.get(h.class).copied().unwrap_or("other");
                *r.by_class.entry(name).or_default() += h.total - before;
            }
        }
        for (cg, r) in moved {
            if r.delta > 0 {
                Stats::add(&self.stats.ebpf_held_back, r.delta);
                let container = match self.correlator.registry.lookup(cg) {
                    crate::registry::Lookup::Known(c) => Some(c),
                    _ => None,
                };
                tracing::info!(
                    container = container.map(|c| c.name.as_str()),
                    cgroup = cg,
                    records = r.delta,
                    by_class = ?r.by_class,
                    "a container went over its budget (ebpf.budget_per_second): records held back"
                );
                let event = ecs::held_back_event(container, cg, &r, &self.cfg);
                self.spool.push_report(self.encoder.report(&event));
            }
            if only.is_some() {
                reported.retain(|(c, _), _| *c != cg);
                self.probes.forget_held(cg);
            }
        }
    }

    /// Emits a loss event when the kernel's loss counters moved; returns the new reported total.
    fn report_losses(&mut self, received: u64, reported: u64) -> u64 {
        let losses = self.probes.losses();
        use docker_listener_common::loss;
        let lost = losses[loss::RINGBUF_FULL as usize]
            + losses[loss::PENDING_MAP_FULL as usize]
            + losses[loss::CGROUP_MAP_FULL as usize]
            + losses[loss::UNREAD_AT_FALLBACK as usize]
            + losses[loss::HELD_MAP_FULL as usize];
        Stats::set(&self.stats.ebpf_lost, lost);
        if lost <= reported {
            return reported;
        }
        let generated = self.probes.generated();
        let mut by_reason = Map::new();
        for (name, v) in loss::NAMES.iter().zip(losses) {
            by_reason.insert((*name).to_owned(), Value::from(v));
        }
        tracing::warn!(
            lost = lost - reported,
            lost_total = lost,
            ring_buffer_full = losses[loss::RINGBUF_FULL as usize],
            held_map_full = losses[loss::HELD_MAP_FULL as usize],
            "eBPF records were lost in the kernel (reported in a loss event). If ring_buffer_full grows, raise \
             ebpf.ring_buffer_bytes; if held_map_full does, thousands of cgroups are over their budget \
             (ebpf.budget_per_second)"
        );
        self.spool.push_report(self.encoder.report(&ecs::ebpf_loss_event(
            lost - reported,
            lost,
            by_reason,
            generated,
            received,
        )));
        lost
    }
}

/// What draining the ring needs besides the correlator.
struct Drain {
    /// Records read since start (the loss accounting compares it with the kernel's numbering).
    received: u64,
    max_args: usize,
    stats: Arc<Stats>,
}

/// Hands up to `DRAIN_MAX` records to the correlator; returns how many there were.
fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    ctx: &mut Drain,
    correlator: &mut Correlator,
    out: &mut Vec<Emitted>,
    req: &mut Vec<Request>,
) -> usize {
    let now = Instant::now();
    let mut n = 0;
    while n < DRAIN_MAX {
        let Some(item) = ring.next() else { break };
        n += 1;
        match record::parse(&item, ctx.max_args) {
            Ok(rec) => correlator.on_record(rec, now, out, req),
            Err(e) => {
                Stats::inc(&ctx.stats.ebpf_undecodable);
                tracing::error!(error = %e, "undecodable eBPF record skipped (counted in ebpf_undecodable)");
            }
        }
    }
    ctx.received += n as u64;
    Stats::add(&ctx.stats.ebpf_records, n as u64);
    n
}

/// When to poll next after a drain of `n` records: at once if the drain stopped at its limit
/// (after the events just built have gone to the output), else after the polling period.
fn next_poll(n: usize) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    if n >= DRAIN_MAX { now } else { now + POLL_EVERY }
}

/// `Actor.Attributes` of a container event (labels, name, image...).
fn attributes_of(ev: &DockerEvent) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Ev {
        #[serde(rename = "Actor", default)]
        actor: Option<Actor>,
    }
    #[derive(serde::Deserialize)]
    struct Actor {
        #[serde(rename = "Attributes", default)]
        attributes: BTreeMap<String, String>,
    }
    serde_json::from_slice::<Ev>(&ev.raw).ok().and_then(|e| e.actor).map(|a| a.attributes).unwrap_or_default()
}

/// Lists the running containers and finds each one's cgroups; then, if `listeners`, their
/// listening sockets.
fn spawn_inventory(
    client: DockerClient,
    mount: Option<PathBuf>,
    prefixes: Vec<String>,
    listeners: bool,
    tx: mpsc::UnboundedSender<Info>,
) {
    tokio::spawn(async move {
        let opts = bollard::query_parameters::ListContainersOptions { all: false, ..Default::default() };
        let asked_at = Instant::now();
        let list = match client.api().list_containers(Some(opts)).await {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Info::InventoryFailed(e.to_string()));
                return;
            }
        };
        let listed: HashSet<String> = list.iter().filter_map(|s| s.id.clone()).collect();
        let Some(mount) = mount else {
            let _ = tx.send(Info::Inventory { found: Vec::new(), listed, asked_at, untraced: Vec::new() });
            return;
        };
        let mut found = Vec::new();
        let mut untraced = Vec::new();
        for summary in &list {
            let Some(c) = Container::from_summary(summary) else { continue };
            let dir = match registry::find_cgroup_dir(&mount, &prefixes, &c.id) {
                Some(d) => Some(d),
                // A layout the prefixes do not describe: ask the init process.
                None => match client.api().inspect_container(&c.id, None).await {
                    Ok(r) => Container::from_inspect(&r)
                        .and_then(|i| i.pid)
                        .and_then(|pid| registry::cgroup_dir_of_pid(&mount, pid)),
                    Err(_) => None,
                },
            };
            match dir.as_deref().map(registry::cgroup_id) {
                Some(Ok(cg)) => {
                    found.push(Found { container: c, cgroup: cg, dir: dir.unwrap_or_default(), below: Vec::new() })
                }
                _ => untraced.push((c.id.clone(), c.name.clone())),
            }
        }
        // The walk below each container's cgroup reads directories: off the runtime's thread.
        let found = tokio::task::spawn_blocking(move || {
            for f in &mut found {
                f.below = registry::cgroups_below(&f.dir, registry::BELOW_DEPTH, registry::BELOW_MAX);
            }
            found
        })
        .await;
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Info::InventoryFailed(format!("walking the containers' cgroups failed: {e}")));
                return;
            }
        };
        let dirs: Vec<Vec<PathBuf>> = if listeners {
            found
                .iter()
                .map(|f| std::iter::once(&f.dir).chain(f.below.iter().map(|(_, d)| d)).cloned().collect())
                .collect()
        } else {
            Vec::new()
        };
        let _ = tx.send(Info::Inventory { found, listed, asked_at, untraced });
        if dirs.is_empty() {
            return;
        }
        // After the inventory is applied (the channel keeps the order), so every process these
        // sockets belong to is known.
        let listening = tokio::task::spawn_blocking(move || {
            dirs.iter()
                .flat_map(|d| {
                    inventory::listeners(&d.iter().flat_map(|d| registry::cgroup_pids(d)).collect::<Vec<_>>())
                })
                .collect()
        })
        .await;
        match listening {
            Ok(l) => {
                let _ = tx.send(Info::Listeners(l));
            }
            Err(e) => tracing::warn!(error = %e, "the listening sockets of running containers could not be read"),
        }
    });
}

fn spawn_inspect(
    client: Option<DockerClient>,
    id: String,
    cgroup: Option<u64>,
    slots: Arc<tokio::sync::Semaphore>,
    tx: mpsc::UnboundedSender<Info>,
) {
    tokio::spawn(async move {
        let _slot = slots.acquire_owned().await;
        let info = match client {
            Some(client) => match client.api().inspect_container(&id, None).await {
                Ok(r) => match Container::from_inspect(&r) {
                    Some(c) => Info::Container(c, cgroup),
                    None => Info::InspectFailed(id),
                },
                Err(e) if crate::docker::is_not_found(&e) => Info::NotDocker { id, cgroup },
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "inspect failed");
                    Info::InspectFailed(id)
                }
            },
            None => Info::InspectFailed(id),
        };
        let _ = tx.send(info);
    });
}

/// Containers whose sensitive files are resolved at once, at most: at start every running
/// container asks, and one blocking thread each made a thread per container (100 threads for
/// 100 containers, 500 on a dense host), each left idle for 10 s. The others wait their turn.
const RESOLVING_AT_ONCE: usize = 4;
static RESOLVING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(RESOLVING_AT_ONCE);

/// Resolves a container's sensitive files in its filesystem, seen through one of its processes
/// (`/proc/<pid>/root`): its init process when known, else one found in its cgroup (or, none
/// being in the root filesystem Docker made for it, in that directory: `resolve_files`); at
/// most [`RESOLVING_AT_ONCE`] containers at a time.
fn spawn_resolve_files(
    id: String,
    at: ResolveAt,
    mount: Option<PathBuf>,
    prefixes: Vec<String>,
    patterns: Vec<crate::sensitive::Pattern>,
    tx: mpsc::UnboundedSender<Info>,
) {
    tokio::spawn(async move {
        // (The semaphore is never closed: a permit always comes.)
        let Ok(_slot) = RESOLVING.acquire().await else { return };
        let _ = tokio::task::spawn_blocking(move || resolve_files(id, at, mount, prefixes, patterns, tx)).await;
    });
}

/// Containers whose sensitive files are being resolved, and whether a change asked for another
/// resolution meanwhile: the one in flight may have read the files before that change, so
/// another follows it (once, however many asked).
#[derive(Default)]
struct Resolutions(HashMap<String, bool>);

impl Resolutions {
    /// Whether a resolution of `id` starts now; if one is in flight, another will follow it.
    fn ask(&mut self, id: &str) -> bool {
        match self.0.get_mut(id) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                self.0.insert(id.to_owned(), false);
                true
            }
        }
    }

    /// The resolution of `id` ended: whether another was asked for meanwhile.
    fn done(&mut self, id: &str) -> bool {
        self.0.remove(id).unwrap_or(false)
    }
}

/// Where a container's sensitive files are looked for.
struct ResolveAt {
    /// Its first process.
    pid: Option<u32>,
    /// The root its set was first resolved in.
    root: Option<(u64, u32)>,
    /// The root filesystem Docker made for it (`Container::root_dir`).
    root_dir: Option<Box<Path>>,
}

/// One container's sensitive files, resolved in its filesystem (a blocking thread): in the root
/// filesystem Docker made for it (`root_dir`, where the host has it as an overlay mount), else
/// in the root the set was first resolved in (`root`), else in the first of its processes'
/// roots that can be a container's.
fn resolve_files(
    id: String,
    ResolveAt { pid, root, root_dir }: ResolveAt,
    mount: Option<PathBuf>,
    prefixes: Vec<String>,
    patterns: Vec<crate::sensitive::Pattern>,
    tx: mpsc::UnboundedSender<Info>,
) {
    // (A few of the cgroup's processes: when the first one has left the container's root, a
    // `docker exec`'s may still be there.)
    let from_cgroup = || {
        let m = mount.as_deref()?;
        let dir = registry::find_cgroup_dir(m, &prefixes, &id)?;
        Some(registry::cgroup_pids(&dir).into_iter().take(ROOT_CANDIDATES))
    };
    let mut pids: Vec<u32> = pid.into_iter().collect();
    pids.extend(from_cgroup().into_iter().flatten().filter(|p| Some(*p) != pid));
    // (Looked for only for a process at the host's root.)
    let runtime = std::cell::OnceCell::new();
    // (Docker's over the first one: a resolution asked before the inspection answered may have
    // been made in a decoy that looks like a container's root.)
    let docker = root_dir.as_deref().and_then(docker_root);
    let expected = docker.as_ref().map(|(_, r)| *r).or(root);
    let (mut resolved, mut found) =
        resolve_in_roots(&id, &pids, expected, &patterns, |p| is_runtime_process(p, &runtime));
    // No process of the container in Docker's root (every one chrooted elsewhere), and no set
    // made there yet (none, or a decoy's made before the inspection answered): its files there
    // as the host sees them. (Without the container's own mounts, a volume's, a secret's, which
    // only a process in its root sees: a set made there already is kept instead, as it was.)
    if let (crate::sensitive::Resolved::RootMoved, Some((dir, r))) = (&resolved, &docker)
        && root != Some(*r)
    {
        match crate::sensitive::resolve(dir, &patterns) {
            Ok(files) => (resolved, found) = (crate::sensitive::Resolved::Files(files), Some(*r)),
            Err(e) => tracing::debug!(container = %id, error = %e, "sensitive files not resolved in Docker's root"),
        }
    }
    let docker = found.is_some() && found == docker.map(|(_, r)| r);
    let _ = tx.send(Info::Sensitive(Resolution { id, resolved, root: found, expected: root, docker }));
}

/// A container's sensitive files, resolved in its filesystem (or why not).
struct Resolution {
    id: String,
    resolved: crate::sensitive::Resolved,
    /// The root the set was resolved in.
    root: Option<(u64, u32)>,
    /// The root it was to be resolved in (`SensitiveSet::root_of` when asked).
    expected: Option<(u64, u32)>,
    /// Whether `root` is the root filesystem Docker made for the container.
    docker: bool,
}

/// The root filesystem Docker made for a container (`root_dir`, its `MergedDir`), where the
/// host has it as it should be, the root of an overlay mount: the path to reach it, and its
/// identity. Looked for in pid 1's mount namespace first (where dockerd mounts it; an agent
/// run in a container of its own, with the host's pids, sees it there), then in the agent's. A
/// first process in any other root (a decoy it `chroot`ed into, even one with proc mounted at
/// its `proc`, which CAP_SYS_ADMIN allows) is then not in the container's root. `None` where
/// neither is that (another storage driver's layout, an agent that sees no host's mounts): the
/// processes' roots are judged by their look alone (`is_container_root`).
fn docker_root(root_dir: &Path) -> Option<(PathBuf, (u64, u32))> {
    let in_host = Path::new("/proc/1/root").join(root_dir.strip_prefix("/").ok()?);
    [in_host, root_dir.to_path_buf()].into_iter().find_map(|dir| {
        let overlay =
            dir.to_str().and_then(crate::inventory::fs_magic) == Some(docker_listener_common::magic::OVERLAYFS);
        let id = (overlay && is_mount_root(&dir)).then(|| crate::sensitive::file_id(&dir)).flatten()?;
        Some((dir, id))
    })
}

/// The container's processes whose roots a resolution looks at, beside its first one.
const ROOT_CANDIDATES: usize = 8;

/// A container's sensitive files, resolved in the root of the first of `pids` that is in the
/// container's filesystem (`is_container_root`: not a directory or another mount a process
/// `chroot`ed into, a decoy with an `etc/shadow` of its own made by its first process before
/// the agent looked). The runtime's `runc init` (`is_runtime`), put in the new cgroup while
/// still at the host's root, is the one process of a container being created: resolved
/// there, the set would hold the host's files, the container's first moments would end on it,
/// and its very first read of its own /etc/shadow would be matched against the host's inode and
/// missed. (Another process at the host's root is taken: a container that shares the host's
/// root, as the kernel matrix's does.) Given the container's root (`expected`: Docker's, or
/// the one its set was first resolved in), only a process there is taken (`Resolved::RootMoved`
/// when none is).
/// Returns the root the set was resolved in.
fn resolve_in_roots(
    id: &str,
    pids: &[u32],
    expected: Option<(u64, u32)>,
    patterns: &[crate::sensitive::Pattern],
    is_runtime: impl Fn(u32) -> bool,
) -> (crate::sensitive::Resolved, Option<(u64, u32)>) {
    use crate::sensitive::{Resolved, file_id};
    // The host's root: the agent's own, and pid 1's where the agent may read it (an agent
    // run in a container of its own, with the host's pids).
    let host: Vec<_> = ["/", "/proc/1/root"].into_iter().filter_map(file_id).collect();
    // The processes still there (a stopped container has none).
    let mut at_host_root = false;
    let mut moved = false;
    let roots: Vec<(u32, PathBuf, (u64, u32))> = pids
        .iter()
        .map(|&p| (p, PathBuf::from(format!("/proc/{p}/root"))))
        .filter_map(|(p, root)| match file_id(&root) {
            Some(r) if host.contains(&r) && is_runtime(p) => {
                at_host_root = true;
                None
            }
            Some(r) if expected.is_some_and(|e| e != r) || !is_container_root(&root) => {
                moved = true;
                None
            }
            found => found.map(|r| (p, root, r)),
        })
        .collect();
    if roots.is_empty() {
        if at_host_root {
            // Another resolution follows (the container's start, or the period); its opens
            // are all sent until then.
            tracing::debug!(container = %id, "sensitive files not resolved yet: the runtime has not moved the container's process into its root yet");
            return (Resolved::Failed, None);
        }
        if moved {
            return (Resolved::RootMoved, None);
        }
        return (Resolved::NoProcess, None);
    }
    roots
        .iter()
        .find_map(|(p, root, id_of_root)| {
            crate::sensitive::resolve(root, patterns)
                .map_err(|e| tracing::debug!(container = %id, pid = p, error = %e, "sensitive files not resolved"))
                .ok()
                .map(|files| (Resolved::Files(files), Some(*id_of_root)))
        })
        .unwrap_or((Resolved::Failed, None))
}

/// Whether `root` (a process's `/proc/PID/root`) can be a container's root: the root of a mount
/// with the proc filesystem mounted at its `proc` (the runtime mounts it there). Not a directory
/// a process `chroot`ed into, nor another mount of the container's own (`/dev/shm`, a volume, a
/// `--tmpfs`) holding a decoy `etc/shadow`: mounting proc there takes CAP_SYS_ADMIN.
fn is_container_root(root: &std::path::Path) -> bool {
    let proc = root.join("proc");
    let procfs = proc.to_str().and_then(crate::inventory::fs_magic) == Some(docker_listener_common::magic::PROC);
    procfs && is_mount_root(root) && is_mount_root(&proc)
}

/// Whether `path` is the root directory of a mount (`STATX_ATTR_MOUNT_ROOT`, Linux 5.8); true
/// when the kernel cannot say.
fn is_mount_root(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return true };
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: a valid path and a buffer of the right size.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_INO, stx.as_mut_ptr()) };
    if r != 0 {
        return true;
    }
    // SAFETY: filled by the successful call.
    let stx = unsafe { stx.assume_init() };
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    stx.stx_attributes_mask & bit == 0 || stx.stx_attributes & bit != 0
}

/// Whether process `pid` is the container runtime's (`runc init` setting a container up): by
/// the name runc gives its stages (`runc:[0:PARENT]`, `runc:[1:CHILD]`, `runc:[2:INIT]`), by
/// its file (`runtime`, found once; runc 1.1's clone of itself is a bind mount of the same
/// file), by a runtime's file name (runc 1.2's sealed copy is another file), or as a copy in
/// memory (`/memfd:runc_cloned...`). Taken for the runtime's wrongly, a process only delays
/// its container's set.
fn is_runtime_process(pid: u32, runtime: &std::cell::OnceCell<crate::family::RuntimeBinaries>) -> bool {
    use crate::family::RuntimeBinaries;
    let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.starts_with(b"runc:[") {
        return true;
    }
    let exe = format!("/proc/{pid}/exe");
    let link = std::fs::read_link(&exe).unwrap_or_default();
    let name = link.file_name().map(|n| n.to_string_lossy().trim_end_matches(" (deleted)").to_owned());
    link.as_os_str().as_encoded_bytes().starts_with(b"/memfd:")
        || name.is_some_and(|n| RuntimeBinaries::NAMES.contains(&n.as_str()))
        || crate::sensitive::file_id(&exe).is_some_and(|f| runtime.get_or_init(RuntimeBinaries::find).contains(f))
}

/// Places a cgroup id no record introduced (its creation record was lost, or it predates the
/// agent): by the cgroup of the process `pid` seen in it, else by scanning the prefixes'
/// directories for its inode; then asks Docker about the container its path names.
fn spawn_find_cgroup(
    client: Option<DockerClient>,
    mount: Option<PathBuf>,
    prefixes: Vec<String>,
    cgroup: u64,
    pid: u32,
    tx: mpsc::UnboundedSender<Info>,
) {
    tokio::spawn(async move {
        let found = match mount {
            Some(m) => tokio::task::spawn_blocking(move || {
                registry::container_of_pid_cgroup(&m, pid, cgroup)
                    .or_else(|| registry::find_cgroup_by_id(&m, &prefixes, cgroup).map(|(id, _)| id))
            })
            .await
            .ok()
            .flatten(),
            None => None,
        };
        let info = match (found, client) {
            (Some(id), Some(client)) => match client.api().inspect_container(&id, None).await {
                Ok(r) => match Container::from_inspect(&r) {
                    Some(c) => Info::Container(c, Some(cgroup)),
                    None => Info::CgroupNotFound(cgroup),
                },
                Err(e) if crate::docker::is_not_found(&e) => Info::NotDocker { id, cgroup: Some(cgroup) },
                Err(_) => Info::CgroupNotFound(cgroup),
            },
            _ => Info::CgroupNotFound(cgroup),
        };
        let _ = tx.send(info);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolution_asked_for_while_one_runs_follows_it_once() {
        let mut r = Resolutions::default();
        assert!(r.ask("a"), "none in flight: it starts");
        assert!(!r.ask("a") && !r.ask("a"), "in flight: asked again, twice");
        assert!(r.ask("b"), "another container's is its own");
        assert!(r.done("a"), "one follows");
        assert!(r.ask("a"));
        assert!(!r.done("a"), "none asked meanwhile: none follows");
        assert!(!r.done("gone"), "an unknown one");
        assert!(!r.done("b") && r.ask("b"));
    }

    /// The runtime's process at the host's root (`runc init` before it moves into the
    /// container's root) is not where a container's files are resolved: the set would be the
    /// host's. This test process is at the host's root: taken as the runtime's, no set; as
    /// another process's (a container sharing the host's root), the set.
    #[test]
    fn the_runtime_s_process_still_at_the_host_s_root_resolves_no_container_files() {
        use crate::sensitive::Resolved;
        let patterns: Vec<crate::sensitive::Pattern> =
            crate::sensitive::DEFAULT.iter().map(|s| s.parse().expect("a default entry")).collect();
        let me = std::process::id();
        let resolve =
            |pids: &[u32], expected, runtime: bool| resolve_in_roots("c", pids, expected, &patterns, |_| runtime).0;
        assert!(matches!(resolve(&[me], None, true), Resolved::Failed), "not the host's set");
        assert!(matches!(resolve(&[me], None, false), Resolved::Files(_)));
        assert!(matches!(resolve(&[], None, true), Resolved::NoProcess));
        assert!(matches!(resolve(&[u32::MAX], None, true), Resolved::NoProcess), "gone");
        // Once resolved in a root, only there: a process in another root (a chroot) is not taken.
        let root = crate::sensitive::file_id("/").expect("this process's root");
        let (resolved, found) = resolve_in_roots("c", &[me], Some(root), &patterns, |_| false);
        assert!(matches!(resolved, Resolved::Files(_)) && found == Some(root));
        assert!(matches!(resolve(&[me], Some((1, 1)), false), Resolved::RootMoved), "every process elsewhere");
        // A container's root is a mount's root with proc at its `proc`; a directory a process
        // chrooted into is not, nor another mount without proc (this test's /dev/shm, a tmpfs).
        assert!(is_mount_root(std::path::Path::new("/")));
        assert!(is_container_root(std::path::Path::new("/")));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sub = dir.path().join("decoy");
        std::fs::create_dir(&sub).expect("a directory in it");
        assert!(!is_mount_root(&sub) && !is_container_root(&sub));
        if is_mount_root(std::path::Path::new("/dev/shm")) {
            assert!(!is_container_root(std::path::Path::new("/dev/shm")));
        }
        // Docker's root for a container counts only as an overlay mount's root: not a plain
        // directory (a stopped container's, another driver's), nor a path that is not there.
        assert_eq!(docker_root(&sub), None);
        assert_eq!(docker_root(&dir.path().join("gone")), None);
    }

    /// runc's stages are known by the names runc gives them, and by a runtime's file name; this
    /// test process is no runtime's.
    #[test]
    fn the_runtime_s_process_is_known_by_its_name() {
        let runtime = std::cell::OnceCell::new();
        assert!(!is_runtime_process(std::process::id(), &runtime));
        let dir = std::env::temp_dir().join(format!("dl-runc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
        // (A file just written may be held open a moment by another test thread's fork: the
        // exec is tried again while it is busy.)
        let spawn = |program: &std::path::Path| {
            for _ in 0..100 {
                match std::process::Command::new(program).arg("5").spawn() {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    other => return other.unwrap(),
                }
            }
            panic!("{} stayed busy", program.display())
        };
        for name in ["runc:[2:INIT]", "runc"] {
            let copy = dir.join(name);
            std::fs::copy(&sleep, &copy).unwrap();
            let mut child = spawn(&copy);
            // Its name is the executed file's once the exec is done.
            let mut seen = false;
            for _ in 0..100 {
                seen = is_runtime_process(child.id(), &runtime);
                if seen {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(seen, "{name}");
        }
        let copy = dir.join("sleepy");
        std::fs::copy(&sleep, &copy).unwrap();
        let mut child = spawn(&copy);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let other = is_runtime_process(child.id(), &runtime);
        let _ = child.kill();
        let _ = child.wait();
        assert!(!other, "another program");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
