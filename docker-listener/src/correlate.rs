//! The correlator: joins kernel records with Docker's view of the containers.
//!
//! In: decoded eBPF records, container details (inventory, inspect answers, Docker's container
//! events). Out: ECS events with their container, and requests for the monitor to act on
//! (inspect a container, stop or start tracing a cgroup, find an unknown cgroup).
//!
//! The process part of an event is built when its record arrives (the process table is current
//! then); the container part is added when the container is known. A record from a container
//! whose details are still being fetched (an exec racing Docker's start event) is held, not
//! emitted with an empty or wrong container; after `HOLD` it goes out with the container id the
//! cgroup path gave, marked `container_unresolved`.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{
    config::EbpfConfig,
    ebpf::record::{Record, Socket},
    ecs::{Clock, Event},
    procs::{Proc, ProcessTable},
    registry::{Container, ContainerRegistry, GRACE, Lookup, container_of_path},
};

/// A finished event: its `event.action` (for the counters) and its JSON.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub action: &'static str,
    pub json: Bytes,
}

impl Emitted {
    fn new(event: &Event, container: Option<&Container>, container_id: &str) -> Emitted {
        let mut json = Vec::with_capacity(1024);
        // Serialising into memory cannot fail (every map key is a string).
        let _ = serde_json::to_writer(&mut json, &event.with_container(container, container_id));
        Emitted { action: event.action(), json: Bytes::from(json) }
    }

    /// The JSON as a value (tests).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).unwrap_or_default()
    }
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
    /// Find which container this cgroup id belongs to.
    FindCgroup(u64),
    /// Add this cgroup id to the kernel filter.
    Track(u64),
    /// Remove this cgroup id from the kernel filter.
    Untrack(u64),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub events: u64,
    pub held: u64,
    pub released_unresolved: u64,
    pub filtered: u64,
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
    pub counters: Counters,
}

impl Correlator {
    pub fn new(procs: ProcessTable, cfg: EbpfConfig, clock: Clock) -> Correlator {
        Correlator {
            registry: ContainerRegistry::default(),
            procs,
            cfg,
            clock,
            held: VecDeque::new(),
            asked: HashMap::new(),
            removed_cgroups: VecDeque::new(),
            counters: Counters::default(),
        }
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
                let Some(id) = container_of_path(&c.path) else {
                    // Matched a prefix but names no container: nothing to join it with.
                    tracing::debug!(path = %c.path, "a traced cgroup names no container");
                    return;
                };
                if c.created {
                    self.registry.bind_cgroup(id, c.id);
                    if self.registry.get(id).is_none() {
                        req.push(Request::Inspect(id.to_owned()));
                    } else {
                        self.release(c.id, out, req);
                    }
                } else {
                    // The registry keeps the cgroup a while: events of a short-lived container
                    // may still be waiting for its details.
                    self.procs.remove_cgroup(c.id);
                    self.removed_cgroups.push_back((c.id, now));
                }
            }
            Record::Fork(f) => self.procs.on_fork(f.meta.tgid, f.child_tgid, f.child_start_ns, f.meta.cgroup_id),
            Record::Exit(e) => {
                self.procs.on_exit(e.meta.tgid);
            }
            Record::Exec(mut e) => {
                // `/proc/self/exe` (busybox applets, re-exec of self) names the image the process
                // ran before this exec: resolve it from the table.
                if is_self_exe(&e.filename)
                    && let Some(prev) =
                        self.procs.get(e.meta.tgid).map(|p| p.executable.clone()).filter(|x| !x.is_empty())
                {
                    e.filename = prev.to_string();
                }
                if e.ret == 0 {
                    self.procs.on_exec(e.meta.tgid, e.ppid, e.start_ns, &e.filename, &e.args, e.meta.cgroup_id);
                }
                // A parent outside the container (runc, the shim) is not in the table.
                let fallback = match self.procs.get(e.ppid) {
                    Some(_) => None,
                    None => self.procs.read_proc(e.ppid, 0),
                };
                let own = [e.meta.cgroup_id];
                let cgroups = match self.registry.container_cgroups(e.meta.cgroup_id) {
                    [] => &own[..],
                    all => all,
                };
                let event = Event::exec_in(&e, &self.procs, fallback.as_ref(), self.clock, cgroups);
                self.route(e.meta.cgroup_id, event, now, out, req);
            }
            Record::Socket(s) => {
                // AF_INET, AF_INET6 and AF_UNIX only: netlink and packet sockets are plumbing.
                if !matches!(s.family, 1 | 2 | 10) {
                    self.counters.filtered += 1;
                    return;
                }
                let process = self.process_of(&s);
                let event = Event::socket(&s, &process, self.clock);
                self.route(s.meta.cgroup_id, event, now, out, req);
            }
        }
    }

    /// The process a socket record came from: from the table, else from /proc (and remembered).
    fn process_of(&mut self, s: &Socket) -> Proc {
        if let Some(p) = self.procs.get(s.meta.tgid) {
            return p.clone();
        }
        let p = self.procs.read_proc(s.meta.tgid, s.meta.cgroup_id).unwrap_or_else(|| Proc {
            tgid: s.meta.tgid,
            ppid: 0,
            start_ticks: self.procs.ticks(s.start_ns),
            entity_id: self.procs.entity_id(s.meta.tgid, s.start_ns),
            executable: "".into(),
            name: "".into(),
            cgroup_id: s.meta.cgroup_id,
        });
        if !self.cfg.trace_host || self.registry.lookup(s.meta.cgroup_id) != Lookup::Unknown {
            self.procs.insert(p.clone());
        }
        p
    }

    /// Emits the event with its container, or holds it until the container is known.
    fn route(&mut self, cgroup_id: u64, event: Event, now: Instant, out: &mut Vec<Emitted>, req: &mut Vec<Request>) {
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
                    req.push(Request::FindCgroup(cgroup_id));
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
        }
        self.registry.upsert(c);
        for cg in self.registry.cgroups_of(&id).to_vec() {
            self.release(cg, out, req);
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
    }

    fn emit_unresolved(&mut self, h: Held, out: &mut Vec<Emitted>) {
        self.counters.events += 1;
        match self.registry.lookup(h.cgroup_id) {
            Lookup::Known(c) => out.push(Emitted::new(&h.event, Some(c), &c.id)),
            Lookup::Pending(id) => {
                out.push(Emitted::new(&h.event, None, id));
                self.counters.released_unresolved += 1;
            }
            Lookup::Unknown => {
                out.push(Emitted::new(&h.event, None, ""));
                self.counters.released_unresolved += 1;
            }
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// `/proc/self/exe` or `/proc/<pid>/exe`.
fn is_self_exe(path: &str) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.strip_suffix("/exe"))
        .is_some_and(|who| who == "self" || (!who.is_empty() && who.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::record::{Cgroup, Exec, Meta};

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
            comm: "sh".into(),
            filename: "/bin/sh".into(),
            args: vec!["sh".into()],
            args_truncated: false,
            args_unavailable: false,
        })
    }

    fn correlator() -> Correlator {
        Correlator::new(ProcessTable::new("b".into(), 100), EbpfConfig::default(), Clock::fixed(0))
    }

    fn started(c: &mut Correlator, out: &mut Vec<Emitted>, req: &mut Vec<Request>) {
        let attrs: BTreeMap<String, String> =
            [("name".to_owned(), "web".to_owned()), ("image".to_owned(), "busybox".to_owned())].into();
        c.on_docker_event("container", "start", ID, 77, &attrs, Instant::now(), out, req);
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
        assert_eq!(req, vec![Request::Inspect(ID.into())]);
        c.on_record(exec(82, 100), now, &mut out, &mut req);
        assert!(out.is_empty(), "held, not emitted without its container");
        started(&mut c, &mut out, &mut req);
        assert_eq!(out.len(), 1);
        let v = out[0].value();
        assert_eq!(v["container"]["name"], "web");
        assert_eq!(v["container"]["id"], ID);
        assert_eq!(v["docker_listener"]["container_started_time_nano"], 77);
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
        assert_eq!(req, vec![Request::FindCgroup(99)]);
        c.on_container(
            Container {
                id: ID.into(),
                name: "db".into(),
                image: "pg".into(),
                image_id: None,
                labels: BTreeMap::new(),
                pid: None,
                started_time_nano: None,
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
}
