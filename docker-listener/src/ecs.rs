//! Process and socket events as ECS-style JSON (the schema in docs/EVENTS.md), in the same
//! Wazuh frame as Docker events (`integration: docker`) but never under the `docker` key.
use serde_json::{Map, Value, json};

use crate::{
    ebpf::record::{Endpoint, Exec, SockOp, Socket},
    procs::{Proc, ProcessTable, process_name},
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
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Names of the errno values a failed exec or socket call commonly returns.
pub fn errno_name(errno: i64) -> String {
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
        _ => return format!("E{errno}"),
    };
    name.to_owned()
}

fn proc_ref(p: &Proc) -> Value {
    json!({"pid": p.tgid, "entity_id": p.entity_id, "executable": p.executable, "name": p.name})
}

fn base_event(category: &str, types: &[&str], action: &str, outcome: &str, ktime_ns: u64, seq: u64, cpu: u32, clock: Clock) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("integration".into(), json!("docker"));
    m.insert("@timestamp".into(), json!(rfc3339(clock.wall_ns(ktime_ns))));
    m.insert(
        "event".into(),
        json!({
            "kind": "event",
            "category": [category],
            "type": types,
            "action": action,
            "outcome": outcome,
            "module": MODULE,
            "dataset": format!("docker_listener.{category}"),
            "sequence": seq,
        }),
    );
    m.insert("docker_listener".into(), json!({"cpu": cpu}));
    m
}

fn listener_field(m: &mut Map<String, Value>) -> &mut Map<String, Value> {
    // Inserted by base_event.
    m.entry("docker_listener").or_insert_with(|| json!({})).as_object_mut().expect("an object")
}

/// An exec (successful or failed). `procs` must already reflect a successful exec.
pub fn exec_event(e: &Exec, procs: &ProcessTable, parent_fallback: Option<&Proc>, clock: Clock) -> Map<String, Value> {
    let failed = e.ret < 0;
    let mut m = base_event("process", &["start"], "exec", if failed { "failure" } else { "success" }, e.meta.ktime_ns, e.meta.seq, e.meta.cpu, clock);
    let executable = if e.filename.is_empty() { e.comm.clone() } else { e.filename.clone() };
    let name = process_name(&executable, &e.args);
    let mut process = json!({
        "pid": e.meta.tgid,
        "thread": {"id": e.meta.pid},
        "entity_id": procs.entity_id(e.meta.tgid, e.start_ns),
        "executable": executable,
        "name": name,
        "args": e.args,
        "args_count": e.args.len(),
        "command_line": e.args.join(" "),
        "user": {"id": e.uid.to_string()},
        "group": {"id": e.gid.to_string()},
    });
    let ancestors = procs.ancestors(e.ppid, e.meta.cgroup_id);
    let parent = ancestors.first().copied().or(parent_fallback);
    process["parent"] = match parent {
        Some(p) => proc_ref(p),
        None => json!({"pid": e.ppid, "entity_id": procs.entity_id(e.ppid, e.parent_start_ns)}),
    };
    // The container's init: the top of the chain inside the container, or this process itself
    // when its parent is outside (it is the init, or a `docker exec`).
    process["entry_leader"] = match ancestors.last() {
        Some(p) => proc_ref(p),
        None => json!({"pid": e.meta.tgid, "entity_id": procs.entity_id(e.meta.tgid, e.start_ns), "executable": process["executable"], "name": process["name"]}),
    };
    m.insert("process".into(), process);
    if failed {
        m.insert("error".into(), json!({"code": errno_name(-i64::from(e.ret)), "message": format!("execve failed: {}", errno_name(-i64::from(e.ret)))}));
    }
    let l = listener_field(&mut m);
    l.insert("ancestors".into(), Value::Array(ancestors.iter().map(|p| proc_ref(p)).collect()));
    l.insert("syscall".into(), json!({"name": "execve", "ret": e.ret}));
    if e.args_truncated {
        l.insert("args_truncated".into(), json!(true));
    }
    if e.args_unavailable {
        l.insert("args_unavailable".into(), json!(true));
    }
    m
}

fn endpoint_json(ep: &Endpoint) -> Value {
    match ep {
        Endpoint::Ip(ip, port) => json!({"ip": ip.to_string(), "port": port}),
        Endpoint::Unix(path) => json!({"address": path}),
    }
}

fn is_unspecified(ep: &Endpoint) -> bool {
    matches!(ep, Endpoint::Ip(ip, 0) if ip.is_unspecified())
}

/// A connect, bind, listen or accept.
pub fn socket_event(s: &Socket, process: &Proc, clock: Clock) -> Map<String, Value> {
    let ok = s.ret >= 0 || (s.op == SockOp::Connect && s.ret == -115);
    let types: &[&str] = match s.op {
        SockOp::Connect | SockOp::Accept => &["connection", "start"],
        SockOp::Bind | SockOp::Listen => &["start"],
    };
    let mut m = base_event("network", types, s.op.name(), if ok { "success" } else { "failure" }, s.meta.ktime_ns, s.meta.seq, s.meta.cpu, clock);
    m.insert(
        "process".into(),
        json!({"pid": s.meta.tgid, "thread": {"id": s.meta.pid}, "entity_id": process.entity_id, "executable": process.executable, "name": process.name}),
    );
    // ECS direction: source is who initiated. connect: us -> addr; accept: peer -> us;
    // bind/listen: the local address is the server's.
    let local = s.local.as_ref().filter(|l| !is_unspecified(l) || s.op != SockOp::Connect);
    match s.op {
        SockOp::Connect => {
            if let Some(l) = local {
                m.insert("source".into(), endpoint_json(l));
            }
            if let Some(a) = &s.addr {
                m.insert("destination".into(), endpoint_json(a));
            }
        }
        SockOp::Accept => {
            if let Some(a) = &s.addr {
                m.insert("source".into(), endpoint_json(a));
            }
            if let Some(l) = local {
                m.insert("destination".into(), endpoint_json(l));
            }
        }
        SockOp::Bind | SockOp::Listen => {
            if let Some(a) = s.addr.as_ref().or(local) {
                m.insert("server".into(), endpoint_json(a));
            }
        }
    }
    let mut network = Map::new();
    let transport = match (s.sock_type, s.protocol) {
        (_, 6) => Some("tcp"),
        (_, 17) => Some("udp"),
        (_, 1) | (_, 58) => Some("icmp"),
        (_, 132) => Some("sctp"),
        (1, 0) => Some("stream"),
        (2, 0) => Some("dgram"),
        _ => None,
    };
    if let Some(t) = transport {
        network.insert("transport".into(), json!(t));
    }
    let family_name = match s.family {
        2 => Some("ipv4"),
        10 => Some("ipv6"),
        1 => Some("unix"),
        _ => None,
    };
    if let Some(f) = family_name {
        network.insert("type".into(), json!(f));
    }
    if !network.is_empty() {
        m.insert("network".into(), Value::Object(network));
    }
    if !ok {
        let e = errno_name(-s.ret);
        m.insert("error".into(), json!({"code": e, "message": format!("{} failed: {e}", s.op.name())}));
    }
    let sock_type = match s.sock_type {
        1 => "SOCK_STREAM".to_owned(),
        2 => "SOCK_DGRAM".to_owned(),
        3 => "SOCK_RAW".to_owned(),
        5 => "SOCK_SEQPACKET".to_owned(),
        0 => String::new(),
        t => t.to_string(),
    };
    let mut socket = json!({"fd": s.fd});
    if !sock_type.is_empty() {
        socket["type"] = json!(sock_type);
    }
    if s.protocol != 0 {
        socket["protocol"] = json!(s.protocol);
    }
    if s.op == SockOp::Listen {
        socket["backlog"] = json!(s.backlog);
    }
    if s.op == SockOp::Accept && s.ret >= 0 {
        socket["accepted_fd"] = json!(s.ret);
    }
    let l = listener_field(&mut m);
    l.insert("syscall".into(), json!({"name": s.op.name(), "ret": s.ret}));
    l.insert("socket".into(), socket);
    m
}

/// Adds the container's fields (or, for a container whose details are not known, its id).
pub fn add_container(m: &mut Map<String, Value>, c: Option<&Container>, id: &str) {
    let container = match c {
        Some(c) => {
            let mut image = json!({"name": c.image});
            if let Some(i) = &c.image_id {
                image["id"] = json!(i);
            }
            json!({"id": c.id, "name": c.name, "image": image, "labels": c.labels, "runtime": "docker"})
        }
        None => json!({"id": id, "runtime": "docker"}),
    };
    m.insert("container".into(), container);
    let l = listener_field(m);
    match c.and_then(|c| c.started_time_nano) {
        Some(t) => {
            l.insert("container_started_time_nano".into(), json!(t));
        }
        None if c.is_none() => {
            l.insert("container_unresolved".into(), json!(true));
        }
        None => {}
    }
}

/// Loss report for the eBPF side.
pub fn ebpf_loss_event(delta: u64, total: u64, by_reason: Map<String, Value>, generated: u64, received: u64) -> Value {
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
        let v = Value::Object(exec_event(&e, &t, None, Clock::fixed(0)));
        assert_eq!(v["process"]["executable"], "/bin/echo");
        assert_eq!(v["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(v["process"]["parent"]["pid"], 20);
        assert_eq!(v["process"]["parent"]["entity_id"], t.entity_id(20, 2_000_000_000));
        assert_eq!(v["process"]["entry_leader"]["pid"], 20);
        assert_eq!(v["event"]["outcome"], "success");
        let failed = Exec { ret: -2, filename: "/nope".into(), args: vec!["/nope".into()], ..e };
        let v = Value::Object(exec_event(&failed, &t, None, Clock::fixed(0)));
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["error"]["code"], "ENOENT");
        assert_eq!(v["process"]["name"], "nope");
    }

    #[test]
    fn socket_events_put_addresses_in_ecs_directions() {
        let p = Proc { tgid: 30, ppid: 20, start_ticks: 1, entity_id: "e".into(), executable: "/bin/nc".into(), name: "nc".into(), cgroup_id: 82 };
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
        let v = Value::Object(socket_event(&s, &p, Clock::fixed(0)));
        assert_eq!(v["destination"], json!({"ip": "127.0.0.1", "port": 9}));
        assert!(v.get("source").is_none(), "an unbound source is not an address");
        assert_eq!(v["network"], json!({"transport": "tcp", "type": "ipv4"}));
        assert_eq!(v["error"]["code"], "ECONNREFUSED");
        let accept = Socket {
            op: SockOp::Accept,
            ret: 4,
            addr: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 40000)),
            local: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 8080)),
            ..s
        };
        let v = Value::Object(socket_event(&accept, &p, Clock::fixed(0)));
        assert_eq!(v["source"]["port"], 40000);
        assert_eq!(v["destination"]["port"], 8080);
        assert_eq!(v["docker_listener"]["socket"]["accepted_fd"], 4);
        assert_eq!(v["event"]["outcome"], "success");
    }
}
