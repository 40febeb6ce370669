//! Process and socket events as ECS-style JSON (the schema in docs/EVENTS.md), in the same
//! Wazuh frame as Docker events (`integration: docker`) but never under the `docker` key.
//!
//! An [`Event`] is captured when its record arrives (the process table is current then) and
//! serialised, with its container, when the container is known. Serialisation writes straight
//! into the frame's buffer from borrowed fields: no JSON tree is built (building one cost about
//! 9 us per exec event; this costs about 1).
use std::{borrow::Cow, fmt, sync::Arc};

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Value, json};

use crate::{
    ebpf::record::{Endpoint, Exec, Meta, SockOp, Socket},
    procs::{EntityId, Proc, ProcessTable, process_name},
    registry::Container,
};

/// `event.module` of every event this agent makes itself.
pub const MODULE: &str = "docker-listener";

/// Wall-clock time of a kernel boot-time stamp.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    boot_wall_ns: i64,
}

impl Clock {
    /// From the current CLOCK_REALTIME and CLOCK_BOOTTIME.
    pub fn now() -> Clock {
        let read = |id| {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: a valid pointer to a timespec.
            unsafe { libc::clock_gettime(id, &mut ts) };
            ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        };
        Clock { boot_wall_ns: read(libc::CLOCK_REALTIME) - read(libc::CLOCK_BOOTTIME) }
    }

    pub fn fixed(boot_wall_ns: i64) -> Clock {
        Clock { boot_wall_ns }
    }

    pub fn wall_ns(&self, ktime_ns: u64) -> i64 {
        self.boot_wall_ns + ktime_ns as i64
    }
}

/// "2026-11-27T15:14:35.014659607Z".
pub fn rfc3339(ns: i64) -> String {
    Rfc3339(ns).to_string()
}

/// A time (ns since the epoch) shown as RFC 3339 UTC with nanoseconds, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339(pub i64);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Civil date from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, sod % 3600 / 60, sod % 60)
    }
}

/// Names of the errno values a failed exec or socket call commonly returns.
pub fn errno_name(errno: i64) -> Cow<'static, str> {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        8 => "ENOEXEC",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        20 => "ENOTDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        26 => "ETXTBSY",
        36 => "ENAMETOOLONG",
        40 => "ELOOP",
        88 => "ENOTSOCK",
        93 => "EPROTONOSUPPORT",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        106 => "EISCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return Cow::Owned(format!("E{errno}")),
    };
    Cow::Borrowed(name)
}

/// A process as events refer to it (`process.parent`, `entry_leader`, ancestors).
#[derive(Debug, Clone, Serialize)]
pub struct ProcRef {
    pub pid: u32,
    pub entity_id: EntityId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
}

impl ProcRef {
    fn of(p: &Proc) -> ProcRef {
        ProcRef {
            pid: p.tgid,
            entity_id: p.entity_id,
            executable: Some(p.executable.clone()),
            name: Some(p.name.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    Exec {
        uid: u32,
        gid: u32,
        ret: i32,
        args: Vec<String>,
        args_truncated: bool,
        args_unavailable: bool,
        parent: ProcRef,
        entry_leader: ProcRef,
        ancestors: Vec<ProcRef>,
    },
    Socket {
        op: SockOp,
        fd: i32,
        ret: i64,
        family: u16,
        sock_type: u16,
        protocol: u16,
        backlog: i32,
        addr: Option<Endpoint>,
        local: Option<Endpoint>,
        /// The kernel could not read the socket behind the fd (type, protocol, local address).
        socket_unavailable: bool,
    },
}

/// One process or socket event, waiting for its container.
#[derive(Debug, Clone)]
pub struct Event {
    pub meta: Meta,
    /// Wall-clock time of the kernel's record.
    pub time: Rfc3339,
    /// The process the event is about (for a failed exec: what was attempted).
    pub process: ProcRef,
    pub body: Body,
}

impl Event {
    /// An exec (successful or failed). `procs` must already reflect a successful exec.
    pub fn exec(e: &Exec, procs: &ProcessTable, parent_fallback: Option<&Proc>, clock: Clock) -> Event {
        Event::exec_in(e, procs, parent_fallback, clock, &[e.meta.cgroup_id])
    }

    /// An exec whose container has these cgroups (its own and those below it): the parent
    /// chain goes on through all of them.
    pub fn exec_in(
        e: &Exec,
        procs: &ProcessTable,
        parent_fallback: Option<&Proc>,
        clock: Clock,
        container_cgroups: &[u64],
    ) -> Event {
        let executable = if e.filename.is_empty() { e.comm.as_str() } else { e.filename.as_str() };
        let process = ProcRef {
            pid: e.meta.tgid,
            entity_id: procs.entity_id(e.meta.tgid, e.start_ns),
            executable: Some(Arc::from(executable)),
            name: Some(Arc::from(process_name(executable, &e.args))),
        };
        let ancestors: Vec<ProcRef> = procs.ancestors(e.ppid, container_cgroups).into_iter().map(ProcRef::of).collect();
        let parent = match ancestors.first() {
            Some(p) => p.clone(),
            None => match parent_fallback {
                Some(p) => ProcRef::of(p),
                None => ProcRef {
                    pid: e.ppid,
                    entity_id: procs.entity_id(e.ppid, e.parent_start_ns),
                    executable: None,
                    name: None,
                },
            },
        };
        // The container's init: the top of the chain inside the container, or this process itself
        // when its parent is outside (it is the init, or a `docker exec`).
        let entry_leader = ancestors.last().cloned().unwrap_or_else(|| process.clone());
        Event {
            meta: e.meta,
            time: Rfc3339(clock.wall_ns(e.meta.ktime_ns)),
            process,
            body: Body::Exec {
                uid: e.uid,
                gid: e.gid,
                ret: e.ret,
                args: e.args.clone(),
                args_truncated: e.args_truncated,
                args_unavailable: e.args_unavailable,
                parent,
                entry_leader,
                ancestors,
            },
        }
    }

    /// A connect, bind, listen or accept.
    pub fn socket(s: &Socket, process: &Proc, clock: Clock) -> Event {
        Event {
            meta: s.meta,
            time: Rfc3339(clock.wall_ns(s.meta.ktime_ns)),
            process: ProcRef::of(process),
            body: Body::Socket {
                op: s.op,
                fd: s.fd,
                ret: s.ret,
                family: s.family,
                sock_type: s.sock_type,
                protocol: s.protocol,
                backlog: s.backlog,
                addr: s.addr.clone(),
                local: s.local.clone(),
                socket_unavailable: s.socket_unavailable,
            },
        }
    }

    /// `event.action`.
    pub fn action(&self) -> &'static str {
        match &self.body {
            Body::Exec { .. } => "exec",
            Body::Socket { op, .. } => op.name(),
        }
    }

    fn succeeded(&self) -> bool {
        match &self.body {
            Body::Exec { ret, .. } => *ret >= 0,
            // A non-blocking connect in progress is a connect under way.
            Body::Socket { op, ret, .. } => *ret >= 0 || (*op == SockOp::Connect && *ret == -115),
        }
    }

    /// The event with its container: `container` when known, else only `container_id` (from
    /// the cgroup path; empty for a host process).
    pub fn with_container<'a>(&'a self, container: Option<&'a Container>, container_id: &'a str) -> WithContainer<'a> {
        WithContainer { event: self, container, container_id }
    }
}

/// An [`Event`] ready to serialise.
pub struct WithContainer<'a> {
    event: &'a Event,
    container: Option<&'a Container>,
    container_id: &'a str,
}

#[derive(Serialize)]
struct EventMetaOut<'a> {
    kind: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    types: &'a [&'static str],
    action: &'static str,
    outcome: &'static str,
    module: &'static str,
    dataset: &'static str,
    sequence: u64,
}

#[derive(Serialize)]
struct ProcessOut<'a> {
    pid: u32,
    thread: ThreadOut,
    entity_id: EntityId,
    executable: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<JoinedArgs<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<IdOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<IdOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a ProcRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_leader: Option<&'a ProcRef>,
}

#[derive(Serialize)]
struct ThreadOut {
    id: u32,
}

/// A uid or gid, as a string (ECS `user.id`).
#[derive(Serialize)]
struct IdOut {
    id: Shown<u32>,
}

/// Any `Display` value serialised as a string, without allocating.
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// argv joined with spaces, written without building the string.
struct JoinedArgs<'a>(&'a [String]);

impl fmt::Display for JoinedArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(a)?;
        }
        Ok(())
    }
}

impl Serialize for JoinedArgs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct EndpointOut<'a>(&'a Endpoint);

impl Serialize for EndpointOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match self.0 {
            Endpoint::Ip(ip, port) => {
                m.serialize_entry("ip", &Shown(ip))?;
                m.serialize_entry("port", port)?;
            }
            Endpoint::Unix(path) => m.serialize_entry("address", path)?,
        }
        m.end()
    }
}

#[derive(Serialize)]
struct NetworkOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    family: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorOut {
    code: Cow<'static, str>,
    message: String,
}

#[derive(Serialize)]
struct ContainerOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    runtime: &'static str,
}

#[derive(Serialize)]
struct ImageOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

#[derive(Serialize)]
struct SyscallOut {
    name: &'static str,
    ret: i64,
}

#[derive(Serialize)]
struct SocketOut {
    fd: i32,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    sock_type: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backlog: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_fd: Option<i64>,
}

#[derive(Serialize)]
struct ListenerOut<'a> {
    cpu: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ancestors: Option<&'a [ProcRef]>,
    syscall: SyscallOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket: Option<SocketOut>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    args_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    args_unavailable: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    socket_unavailable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_started_time_nano: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    container_unresolved: bool,
}

fn is_unspecified(ep: &Endpoint) -> bool {
    matches!(ep, Endpoint::Ip(ip, 0) if ip.is_unspecified())
}

impl Serialize for WithContainer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.event;
        let ok = ev.succeeded();
        let action = ev.action();
        let (category, types, dataset): (&str, &[&'static str], &str) = match ev.body {
            Body::Exec { .. } => ("process", &["start"], "docker_listener.process"),
            Body::Socket { op: SockOp::Connect | SockOp::Accept, .. } => {
                ("network", &["connection", "start"], "docker_listener.network")
            }
            Body::Socket { .. } => ("network", &["start"], "docker_listener.network"),
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("integration", "docker")?;
        m.serialize_entry("@timestamp", &ev.time)?;
        m.serialize_entry(
            "event",
            &EventMetaOut {
                kind: "event",
                category: [category],
                types,
                action,
                outcome: if ok { "success" } else { "failure" },
                module: MODULE,
                dataset,
                sequence: ev.meta.seq,
            },
        )?;
        let executable = ev.process.executable.as_deref().unwrap_or("");
        let name = ev.process.name.as_deref().unwrap_or("");
        let thread = ThreadOut { id: ev.meta.pid };
        let (listener, error) = match &ev.body {
            Body::Exec { uid, gid, ret, args, args_truncated, args_unavailable, parent, entry_leader, ancestors } => {
                m.serialize_entry(
                    "process",
                    &ProcessOut {
                        pid: ev.process.pid,
                        thread,
                        entity_id: ev.process.entity_id,
                        executable,
                        name,
                        args: Some(args),
                        args_count: Some(args.len()),
                        command_line: Some(JoinedArgs(args)),
                        user: Some(IdOut { id: Shown(*uid) }),
                        group: Some(IdOut { id: Shown(*gid) }),
                        parent: Some(parent),
                        entry_leader: Some(entry_leader),
                    },
                )?;
                let error = (*ret < 0).then(|| {
                    let code = errno_name(-i64::from(*ret));
                    ErrorOut { message: format!("execve failed: {code}"), code }
                });
                let listener = ListenerOut {
                    cpu: ev.meta.cpu,
                    ancestors: Some(ancestors),
                    syscall: SyscallOut { name: "execve", ret: i64::from(*ret) },
                    socket: None,
                    args_truncated: *args_truncated,
                    args_unavailable: *args_unavailable,
                    socket_unavailable: false,
                    container_started_time_nano: None,
                    container_unresolved: false,
                };
                (listener, error)
            }
            Body::Socket { op, fd, ret, family, sock_type, protocol, backlog, addr, local, socket_unavailable } => {
                m.serialize_entry(
                    "process",
                    &ProcessOut {
                        pid: ev.process.pid,
                        thread,
                        entity_id: ev.process.entity_id,
                        executable,
                        name,
                        args: None,
                        args_count: None,
                        command_line: None,
                        user: None,
                        group: None,
                        parent: None,
                        entry_leader: None,
                    },
                )?;
                // ECS direction: source is who initiated. connect: us -> addr; accept: peer -> us;
                // bind/listen: the local address is the server's.
                let local = local.as_ref().filter(|l| !is_unspecified(l) || *op != SockOp::Connect);
                match op {
                    SockOp::Connect => {
                        if let Some(l) = local {
                            m.serialize_entry("source", &EndpointOut(l))?;
                        }
                        if let Some(a) = addr {
                            m.serialize_entry("destination", &EndpointOut(a))?;
                        }
                    }
                    SockOp::Accept => {
                        if let Some(a) = addr {
                            m.serialize_entry("source", &EndpointOut(a))?;
                        }
                        if let Some(l) = local {
                            m.serialize_entry("destination", &EndpointOut(l))?;
                        }
                    }
                    SockOp::Bind | SockOp::Listen => {
                        if let Some(a) = addr.as_ref().or(local) {
                            m.serialize_entry("server", &EndpointOut(a))?;
                        }
                    }
                }
                let transport = match (sock_type, protocol) {
                    (_, 6) => Some("tcp"),
                    (_, 17) => Some("udp"),
                    (_, 1) | (_, 58) => Some("icmp"),
                    (_, 132) => Some("sctp"),
                    (1, 0) => Some("stream"),
                    (2, 0) => Some("dgram"),
                    _ => None,
                };
                let family_name = match family {
                    2 => Some("ipv4"),
                    10 => Some("ipv6"),
                    1 => Some("unix"),
                    _ => None,
                };
                if transport.is_some() || family_name.is_some() {
                    m.serialize_entry("network", &NetworkOut { transport, family: family_name })?;
                }
                let error = (!ok).then(|| {
                    let code = errno_name(-*ret);
                    ErrorOut { message: format!("{} failed: {code}", op.name()), code }
                });
                let sock_type = match sock_type {
                    0 => None,
                    1 => Some(Cow::Borrowed("SOCK_STREAM")),
                    2 => Some(Cow::Borrowed("SOCK_DGRAM")),
                    3 => Some(Cow::Borrowed("SOCK_RAW")),
                    5 => Some(Cow::Borrowed("SOCK_SEQPACKET")),
                    t => Some(Cow::Owned(t.to_string())),
                };
                let listener = ListenerOut {
                    cpu: ev.meta.cpu,
                    ancestors: None,
                    syscall: SyscallOut { name: op.name(), ret: *ret },
                    socket: Some(SocketOut {
                        fd: *fd,
                        sock_type,
                        protocol: (*protocol != 0).then_some(*protocol),
                        backlog: (*op == SockOp::Listen).then_some(*backlog),
                        accepted_fd: (*op == SockOp::Accept && *ret >= 0).then_some(*ret),
                    }),
                    args_truncated: false,
                    args_unavailable: false,
                    socket_unavailable: *socket_unavailable,
                    container_started_time_nano: None,
                    container_unresolved: false,
                };
                (listener, error)
            }
        };
        if let Some(e) = &error {
            m.serialize_entry("error", e)?;
        }
        match self.container {
            Some(c) => m.serialize_entry(
                "container",
                &ContainerOut {
                    id: &c.id,
                    name: Some(&c.name),
                    image: Some(ImageOut { name: &c.image, id: c.image_id.as_deref() }),
                    labels: Some(&c.labels),
                    runtime: "docker",
                },
            )?,
            None if !self.container_id.is_empty() => m.serialize_entry(
                "container",
                &ContainerOut { id: self.container_id, name: None, image: None, labels: None, runtime: "docker" },
            )?,
            None => {}
        }
        let listener = ListenerOut {
            container_started_time_nano: self.container.and_then(|c| c.started_time_nano),
            container_unresolved: self.container.is_none() && !self.container_id.is_empty(),
            ..listener
        };
        m.serialize_entry("docker_listener", &listener)?;
        m.end()
    }
}

/// Loss report for the eBPF side.
pub fn ebpf_loss_event(
    delta: u64,
    total: u64,
    by_reason: serde_json::Map<String, Value>,
    generated: u64,
    received: u64,
) -> Value {
    json!({
        "integration": "docker",
        "event": {"kind": "metric", "module": MODULE, "action": "events-lost", "dataset": "docker_listener.loss"},
        "docker_listener": {"loss": {
            "reason": "ebpf",
            "events": delta,
            "events_total": total,
            "by_reason": by_reason,
            "sequence": {"generated": generated, "received": received, "gaps": generated.saturating_sub(received)},
        }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::record::Meta;

    fn meta() -> Meta {
        Meta { cpu: 0, seq: 3, ktime_ns: 1_000, cgroup_id: 82, pid: 30, tgid: 30 }
    }

    #[test]
    fn rfc3339_round_trips_with_the_parser() {
        for ns in [0, 1_795_792_475_014_659_607, 951_782_400_000_000_001] {
            assert_eq!(crate::registry::rfc3339_ns(&rfc3339(ns)), Some(ns), "{}", rfc3339(ns));
        }
        assert_eq!(rfc3339(1_795_792_475_014_659_607), "2026-11-27T15:14:35.014659607Z");
    }

    fn json(e: &Event, c: Option<&Container>, id: &str) -> Value {
        serde_json::to_value(e.with_container(c, id)).unwrap()
    }

    #[test]
    fn exec_events_carry_the_chain_and_failures() {
        let mut t = ProcessTable::new("b".into(), 100);
        t.on_exec(20, 10, 2_000_000_000, "/bin/sh", &[], 82);
        let e = Exec {
            meta: meta(),
            ppid: 20,
            uid: 0,
            gid: 0,
            ret: 0,
            start_ns: 3_000_000_000,
            parent_start_ns: 2_000_000_000,
            comm: "echo".into(),
            filename: "/bin/echo".into(),
            args: vec!["echo".into(), "hi".into()],
            args_truncated: false,
            args_unavailable: false,
        };
        t.on_exec(30, 20, e.start_ns, "/bin/echo", &e.args, 82);
        let v = json(&Event::exec(&e, &t, None, Clock::fixed(0)), None, "");
        assert_eq!(v["process"]["executable"], "/bin/echo");
        assert_eq!(v["process"]["command_line"], "echo hi");
        assert_eq!(v["process"]["user"]["id"], "0");
        assert_eq!(v["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(v["process"]["parent"]["pid"], 20);
        assert_eq!(v["process"]["parent"]["entity_id"], t.entity_id(20, 2_000_000_000).to_string());
        assert_eq!(v["process"]["entry_leader"]["pid"], 20);
        assert_eq!(v["event"]["outcome"], "success");
        let failed = Exec { ret: -2, filename: "/nope".into(), args: vec!["/nope".into()], ..e };
        let v = json(&Event::exec(&failed, &t, None, Clock::fixed(0)), None, "");
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["error"]["code"], "ENOENT");
        assert_eq!(v["process"]["name"], "nope");
    }

    #[test]
    fn socket_events_put_addresses_in_ecs_directions() {
        let p = Proc {
            tgid: 30,
            ppid: 20,
            start_ticks: 1,
            entity_id: EntityId(14),
            executable: "/bin/nc".into(),
            name: "nc".into(),
            cgroup_id: 82,
        };
        let s = Socket {
            meta: meta(),
            op: SockOp::Connect,
            fd: 3,
            ret: -111,
            start_ns: 1,
            family: 2,
            sock_type: 1,
            protocol: 6,
            backlog: 0,
            addr: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 9)),
            local: Some(Endpoint::Ip("0.0.0.0".parse().unwrap(), 0)),
            socket_unavailable: false,
        };
        let v = json(&Event::socket(&s, &p, Clock::fixed(0)), None, "");
        assert_eq!(v["destination"], json!({"ip": "127.0.0.1", "port": 9}));
        assert_eq!(v["process"]["entity_id"], "000000000000000e");
        assert!(v.get("container").is_none());
        assert!(v.get("source").is_none(), "an unbound source is not an address");
        assert_eq!(v["network"], json!({"transport": "tcp", "type": "ipv4"}));
        assert_eq!(v["error"]["code"], "ECONNREFUSED");
        assert!(v["docker_listener"].get("socket_unavailable").is_none());
        let blind = Socket { sock_type: 0, protocol: 0, local: None, socket_unavailable: true, ..s.clone() };
        let v = json(&Event::socket(&blind, &p, Clock::fixed(0)), None, "");
        assert_eq!(v["docker_listener"]["socket_unavailable"], true);
        let accept = Socket {
            op: SockOp::Accept,
            ret: 4,
            addr: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 40000)),
            local: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 8080)),
            ..s
        };
        let v = json(&Event::socket(&accept, &p, Clock::fixed(0)), None, "abc");
        assert_eq!(v["container"], json!({"id": "abc", "runtime": "docker"}));
        assert_eq!(v["docker_listener"]["container_unresolved"], true);
        assert_eq!(v["source"]["port"], 40000);
        assert_eq!(v["destination"]["port"], 8080);
        assert_eq!(v["docker_listener"]["socket"]["accepted_fd"], 4);
        assert_eq!(v["event"]["outcome"], "success");
    }
}
