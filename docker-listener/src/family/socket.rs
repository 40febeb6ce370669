//! Socket events (`event.action`: `connect`, `bind`, `listen`, `accept`, and `socket` for the
//! creation of a raw or packet socket), with the addresses in ECS directions.
use std::borrow::Cow;

use docker_listener_common::{
    RecordKind, UNIX_PATH_CAP,
    family::socket::{SocketRecord, sock_op},
    flags,
};
use serde::{Serialize, Serializer, ser::SerializeMap};

use super::{Family, Reported};
use crate::{
    ebpf::record::{Endpoint, Meta, Record, RecordError, cstr, endpoint, meta, pod_ref},
    ecs::{
        ErrorOut, Kind, ProcRef, ProcessRefOut, Shown, SyscallOut, ThreadOut,
        parts::{EndpointOut, SOCK_PACKET, family_name, transport},
    },
    procs::Version,
};

pub const FAMILY: Family = Family {
    name: "socket",
    kind: RecordKind::Socket,
    enabled: |c| c.connect || c.bind || c.listen || c.accept || c.raw_sockets,
    reported: Reported::Own(decode),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOp {
    Connect,
    Bind,
    Listen,
    Accept,
    /// A raw or packet socket was created.
    Socket,
}

impl SockOp {
    pub fn name(self) -> &'static str {
        match self {
            SockOp::Connect => "connect",
            SockOp::Bind => "bind",
            SockOp::Listen => "listen",
            SockOp::Accept => "accept",
            SockOp::Socket => "socket",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub meta: Meta,
    pub op: SockOp,
    pub fd: i32,
    pub ret: i64,
    pub start_ns: u64,
    /// Which image of the process made the call.
    pub exec_id: u64,
    /// The caller's executable (inode, device), zeros when unknown.
    pub exe: (u64, u32),
    /// AF_INET / AF_INET6 / AF_UNIX / AF_PACKET... from the address or the socket, 0 if unknown.
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub backlog: i32,
    /// The address the call named (connect: destination; bind/listen: bound; accept: peer).
    pub addr: Option<Endpoint>,
    /// The socket's own address after the call (connect: the source; accept: the server side).
    pub local: Option<Endpoint>,
    /// A Unix connect that succeeded: the name its listener was bound by (the socket reached,
    /// whatever name the caller gave: a symlink, another mount of it).
    pub peer: Option<String>,
    /// A Unix connect or bind that succeeded: the socket file (inode, device) of the listener
    /// reached, or of the bind; the same file whatever name led to it.
    pub unix_file: Option<(u64, u32)>,
    pub socket_unavailable: bool,
    /// Made through the 32-bit (ia32) system call ABI.
    pub compat: bool,
    /// No system call: a TCP connect seen by its state change (io_uring...).
    pub tcp_state: bool,
    /// No system call: a Unix connect seen at its io_uring completion.
    pub uring: bool,
    /// A native connect or bind whose descriptor held another socket at its exit than at its
    /// entry (another thread's `dup2` or `close` during the call): its socket was not read.
    pub swapped: bool,
    /// A native connect or bind whose address in the caller's memory at the exit was not the one
    /// it had at the entry, which the kernel copied (another thread rewrote it during the call).
    pub rewritten: bool,
}

impl Socket {
    /// Plumbing, not reported: a netlink socket (`ip`, libc's interface lookups) and the like.
    /// What carries traffic or sniffs it is reported: IP, Unix, packet, and every raw socket
    /// made. A call whose socket was swapped during it has no family the kernel read, and a
    /// 32-bit one's socket is read at its exit only, whatever another thread put under its
    /// descriptor: neither is plumbing.
    pub fn plumbing(&self) -> bool {
        use crate::ecs::parts::{AF_INET, AF_INET6, AF_PACKET, AF_UNIX};
        !self.swapped && !self.compat && !matches!(self.family, AF_UNIX | AF_INET | AF_INET6 | AF_PACKET)
    }
}

fn decode(bytes: &[u8], _max_args: usize) -> Result<Record, RecordError> {
    let r = pod_ref::<SocketRecord>(bytes)?;
    let op = match r.op {
        sock_op::CONNECT => SockOp::Connect,
        sock_op::BIND => SockOp::Bind,
        sock_op::LISTEN => SockOp::Listen,
        sock_op::SOCKET => SockOp::Socket,
        _ => SockOp::Accept,
    };
    // The kernel's family of the socket where it was read; else the address's (the caller's
    // memory, read at the exit: another thread may have rewritten it meanwhile, to pass a Unix
    // connect off as a netlink one, say) or the domain `socket()` was asked for.
    let family = if r.local.family != 0 { r.local.family } else { r.addr.family };
    let uring = r.flags & flags::URING != 0;
    let addr = if uring || (r.local.family == 1 && r.addr.family != 1) {
        // The name the request gave is not read: only the listener reached (`peer`). Nor an
        // address of another family than the kernel's Unix socket's: the caller's memory
        // rewritten during the call (an IP address shown for a Unix connect would be a lie).
        None
    } else if r.addr.family == 1 {
        Some(Endpoint::Unix(unix_name(&r.unix_path, r.unix_path_len)))
    } else {
        endpoint(&r.addr)
    };
    let peer = (r.peer_path_len > 0).then(|| unix_name(&r.peer_path, r.peer_path_len));
    Ok(Record::Socket(Socket {
        meta: meta(&r.header),
        op,
        fd: r.fd,
        ret: r.ret,
        start_ns: r.start_ns,
        exec_id: r.exec_id,
        exe: (r.exe_ino, r.exe_dev),
        family,
        sock_type: r.sock_type,
        protocol: r.protocol,
        backlog: r.backlog,
        addr,
        local: endpoint(&r.local),
        peer,
        unix_file: (r.unix_ino != 0).then_some((r.unix_ino, r.unix_dev)),
        socket_unavailable: r.flags & flags::SOCKET_UNAVAILABLE != 0,
        compat: r.flags & flags::COMPAT != 0,
        tcp_state: r.flags & flags::TCP_STATE != 0,
        uring,
        swapped: r.flags & flags::SOCKET_SWAPPED != 0,
        rewritten: r.flags & flags::REMOTE_REWRITTEN != 0,
    }))
}

/// A Unix socket's name from its first `len` bytes: abstract ones with a leading '@', like
/// ss(8).
fn unix_name(path: &[u8; UNIX_PATH_CAP], len: u32) -> String {
    let len = (len as usize).min(UNIX_PATH_CAP);
    let raw = &path[..len];
    match raw.first() {
        Some(0) => format!("@{}", String::from_utf8_lossy(&raw[1..]).trim_end_matches('\0')),
        _ => cstr(raw, len),
    }
}

#[derive(Debug, Clone)]
pub struct SocketBody {
    pub process: ProcRef,
    pub op: SockOp,
    pub fd: i32,
    pub ret: i64,
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub backlog: i32,
    pub addr: Option<Endpoint>,
    pub local: Option<Endpoint>,
    /// A Unix connect: the name its listener was bound by, when it is not the name given.
    pub peer: Option<String>,
    /// A Unix connect: the container whose process bound the listener reached, when the
    /// agent saw that bind (`UnixListeners`).
    pub peer_bound: Option<PeerBound>,
    /// A Unix connect: the listener's socket file (inode, device), when the kernel read it.
    pub peer_file: Option<(u64, u32)>,
    /// The kernel could not read the socket behind the fd (type, protocol, local address).
    pub socket_unavailable: bool,
    /// Through the 32-bit system call ABI.
    pub compat: bool,
    /// No system call: a TCP connect seen by its state change (io_uring...).
    pub tcp_state: bool,
    /// No system call: a Unix connect seen at its io_uring completion.
    pub uring: bool,
    /// Another socket under the descriptor at the call's exit than at its entry.
    pub swapped: bool,
    /// The address in the caller's memory was rewritten during the call.
    pub rewritten: bool,
    /// The caller's executable file (inode, device), zeros when unknown.
    pub exe: (u64, u32),
    /// The version of that file the caller's exec ran (its ctime), when the process table knows
    /// it.
    pub version: Option<Version>,
}

impl SocketBody {
    pub fn new(s: &Socket, process: ProcRef, version: Option<Version>) -> SocketBody {
        SocketBody {
            process,
            op: s.op,
            fd: s.fd,
            ret: s.ret,
            family: s.family,
            sock_type: s.sock_type,
            protocol: s.protocol,
            backlog: s.backlog,
            addr: s.addr.clone(),
            local: s.local.clone(),
            // Shown only when it says something the destination does not.
            peer: s.peer.clone().filter(|p| !matches!(&s.addr, Some(Endpoint::Unix(a)) if a == p)),
            peer_bound: None,
            peer_file: s.unix_file.filter(|_| s.op == SockOp::Connect),
            socket_unavailable: s.socket_unavailable,
            compat: s.compat,
            tcp_state: s.tcp_state,
            uring: s.uring,
            swapped: s.swapped,
            rewritten: s.rewritten,
            exe: s.exe,
            // Only the version of the file the kernel says the caller runs.
            version: version.filter(|v| (v.ino, v.dev) == s.exe),
        }
    }

    pub fn kind(&self) -> Kind {
        let (types, action): (&'static [&'static str], _) = match self.op {
            SockOp::Connect | SockOp::Accept => (&["connection", "start"], self.op.name()),
            SockOp::Socket => (&["creation"], "socket"),
            SockOp::Bind | SockOp::Listen => (&["start"], self.op.name()),
        };
        Kind { kind: "event", category: "network", types, action, dataset: "docker_listener.network" }
    }

    fn succeeded(&self) -> bool {
        // A non-blocking connect in progress is a connect under way.
        self.ret >= 0 || (self.op == SockOp::Connect && self.ret == -115)
    }

    /// A connect seen by its TCP state change has started; how it ends is not seen.
    /// For a socket call that succeeded through the native ABI: what makes it new in its
    /// container (call, program, address). Only such events may be folded into a healthcheck
    /// summary (`crate::health`); the first of each is still sent. The program is the caller's
    /// executable, applet and file (inode, device) and the file's ctime at its exec, as for an
    /// exec (`ExecBody::routine`): the calls of a program rewritten in place are not repeats of
    /// the old program's. A program run just after it was written (`family::exec::fresh`: a
    /// version rewritten within the kernel's clock tick keeps its ctime) is its process alone:
    /// its calls are keyed by the process too, so they fold into the same process's calls
    /// only, not into another process's run of an older version of the file.
    pub fn routine(&self) -> Option<String> {
        let fresh = self.version.is_some_and(|v| v.fresh).then_some(self.process.entity_id);
        (self.succeeded() && !self.compat && !self.tcp_state && !self.uring && !self.swapped && !self.rewritten).then(
            || {
                // Where: the destination (connect) or peer (accept), the address served (bind,
                // listen); a connect's ephemeral local port is no difference. A Unix connect's
                // listener too: a name the healthcheck uses, made a symlink to the runtime's socket,
                // is another place; and by its file and whose it is, not only its name (a listener
                // of the container's own bound by the runtime socket's name, then the runtime's
                // socket by the same name from outside a chroot: the second is no repeat of the
                // first, whose rule is lowered).
                let place = match self.op {
                    SockOp::Bind | SockOp::Listen => &self.local,
                    _ => &self.addr,
                };
                format!(
                    "{} {} {} {}:{}:{} {:?} {}/{}/{} {:?} {:?} {:?} {:?}",
                    self.op.name(),
                    self.process.executable.as_deref().unwrap_or(""),
                    self.process.applet.as_deref().unwrap_or(""),
                    self.exe.1,
                    self.exe.0,
                    self.version.map_or(0, |v| v.ctime_ns),
                    fresh,
                    self.family,
                    self.sock_type,
                    self.protocol,
                    place,
                    self.peer,
                    self.peer_file,
                    self.peer_bound,
                )
            },
        )
    }

    pub fn outcome(&self) -> &'static str {
        match (self.tcp_state, self.succeeded()) {
            (true, _) => "unknown",
            (false, true) => "success",
            (false, false) => "failure",
        }
    }

    pub(crate) fn write_top<M: SerializeMap>(
        &self,
        thread: ThreadOut,
        m: &mut M,
    ) -> Result<Option<ErrorOut>, M::Error> {
        m.serialize_entry(
            "process",
            &ProcessRefOut { process: &self.process, thread, user: None, group: None, parent: None },
        )?;
        // ECS direction: source is who initiated. connect: us -> addr; accept: peer -> us;
        // bind/listen: the local address is the server's.
        let local = self.local.as_ref().filter(|l| !is_unspecified(l) || self.op != SockOp::Connect);
        match self.op {
            SockOp::Connect => {
                // A connect seen at SYN_SENT has its source address, not yet its port.
                if let Some(l) = local {
                    m.serialize_entry("source", &SourceOut(l))?;
                }
                if let Some(a) = &self.addr {
                    m.serialize_entry("destination", &EndpointOut(a))?;
                }
            }
            SockOp::Accept => {
                if let Some(a) = &self.addr {
                    m.serialize_entry("source", &EndpointOut(a))?;
                }
                if let Some(l) = local {
                    m.serialize_entry("destination", &EndpointOut(l))?;
                }
            }
            SockOp::Bind | SockOp::Listen => {
                if let Some(a) = self.addr.as_ref().or(local) {
                    m.serialize_entry("server", &EndpointOut(a))?;
                }
            }
            SockOp::Socket => {}
        }
        let transport = transport(self.sock_type, self.protocol, self.family);
        // socket(AF_INET, SOCK_PACKET) makes a packet socket.
        let family = if self.sock_type == SOCK_PACKET { Some("packet") } else { family_name(self.family) };
        if transport.is_some() || family.is_some() {
            m.serialize_entry("network", &NetworkOut { transport, family })?;
        }
        Ok((self.outcome() == "failure").then(|| ErrorOut::of_call(self.op.name(), self.ret)))
    }

    pub(crate) fn write_listener<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        if self.tcp_state {
            // No system call made it: io_uring's, or the kernel's own.
            m.serialize_entry("seen_by", "tcp_state")?;
        } else if self.uring {
            // No system call: a ring's request, at its completion.
            m.serialize_entry("seen_by", "io_uring")?;
        } else {
            m.serialize_entry("syscall", &SyscallOut::new(self.op.name(), self.ret, self.compat))?;
        }
        let sock_type = match self.sock_type {
            0 => None,
            1 => Some(Cow::Borrowed("SOCK_STREAM")),
            2 => Some(Cow::Borrowed("SOCK_DGRAM")),
            3 => Some(Cow::Borrowed("SOCK_RAW")),
            4 => Some(Cow::Borrowed("SOCK_RDM")),
            5 => Some(Cow::Borrowed("SOCK_SEQPACKET")),
            10 => Some(Cow::Borrowed("SOCK_PACKET")),
            t => Some(Cow::Owned(t.to_string())),
        };
        let created = self.op == SockOp::Socket;
        m.serialize_entry(
            "socket",
            &SocketOut {
                fd: if (created && self.ret < 0) || self.fd < 0 { None } else { Some(self.fd) },
                sock_type,
                protocol: (self.protocol != 0).then_some(self.protocol),
                family: created
                    .then(|| family_name(self.family).map_or(Cow::Owned(self.family.to_string()), Cow::Borrowed)),
                backlog: (self.op == SockOp::Listen).then_some(self.backlog),
                accepted_fd: (self.op == SockOp::Accept && self.ret >= 0).then_some(self.ret),
                peer_address: self.peer.as_deref(),
                peer_container: self.peer_bound.as_ref().map(|b| b.container.as_str()),
                peer_same_container: self.peer_bound.as_ref().is_some_and(|b| b.same),
                swapped: self.swapped,
                address_rewritten: self.rewritten,
            },
        )?;
        if self.socket_unavailable {
            m.serialize_entry("socket_unavailable", &true)?;
        }
        Ok(())
    }
}

/// A connect's own side: like `EndpointOut`, without a port the kernel has not picked yet.
struct SourceOut<'a>(&'a Endpoint);

impl Serialize for SourceOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Endpoint::Ip(ip, 0) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("ip", &Shown(ip))?;
                m.end()
            }
            other => EndpointOut(other).serialize(s),
        }
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
struct SocketOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    sock_type: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backlog: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_fd: Option<i64>,
    /// A Unix connect's listener, by the name it was bound with, when the caller gave another.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_address: Option<&'a str>,
    /// The container whose process bound that listener (its name), when the agent saw the bind.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_container: Option<&'a str>,
    /// That container is the caller's own: the listener is no host service's (a runtime of the
    /// container's own, as docker-in-docker runs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    peer_same_container: bool,
    /// Another thread put another socket (or none) under the descriptor during the call: the
    /// socket the call was made on, and where it connected, are unknown.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    swapped: bool,
    /// Another thread rewrote the address in the caller's memory during the call: the one shown
    /// is what the kernel copied at the entry, or the destination it connected to.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    address_rewritten: bool,
}

/// The container whose process bound a Unix listener a connect reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerBound {
    /// Its name.
    pub container: String,
    /// It is the connecting process's own container.
    pub same: bool,
}

/// The Unix listeners container processes bound, by their socket file: which container's a
/// connect reached, known from the kernel's file of the listener (no name a caller gives, and
/// no symlink or mount made in a container, can make the host's socket one of these). Bounded
/// per container (its newest `PER_CONTAINER` binds: a container binding and unlinking sockets
/// in a loop pushes out only its own) and in all (`MAX`: then a new container's binds are not
/// kept); a connect to a listener not kept is reported as to any listener, so nothing is
/// hidden by it. A removed container's entries go (`retain`).
#[derive(Debug, Default)]
pub struct UnixListeners {
    /// (inode, device) -> (container id, the name it was bound by).
    bound: std::collections::HashMap<(u64, u32), (String, String)>,
    /// Each container's files, oldest first.
    order: std::collections::HashMap<String, std::collections::VecDeque<(u64, u32)>>,
}

impl UnixListeners {
    pub const MAX: usize = 16384;
    pub const PER_CONTAINER: usize = 64;

    /// A bind of `name` to the socket file `file` by a process of container `id`.
    pub fn bound(&mut self, file: (u64, u32), id: &str, name: &str) {
        if id.is_empty() || (self.bound.len() >= Self::MAX && !self.order.contains_key(id)) {
            return;
        }
        if let Some((old, _)) = self.bound.insert(file, (id.to_owned(), name.to_owned()))
            && let Some(files) = self.order.get_mut(&old)
        {
            files.retain(|f| *f != file);
        }
        let files = self.order.entry(id.to_owned()).or_default();
        files.push_back(file);
        // (Full: a known container's new bind takes its own oldest's place.)
        while files.len() > Self::PER_CONTAINER || (self.bound.len() > Self::MAX && files.len() > 1) {
            if let Some(gone) = files.pop_front() {
                self.bound.remove(&gone);
            }
        }
    }

    /// The container whose process bound the listener `file`, bound by the name `peer` (the
    /// name the kernel has for it now: a file of the same inode number made since, on the same
    /// device, under another name, is not taken for it).
    pub fn binder(&self, file: (u64, u32), peer: Option<&str>) -> Option<&str> {
        let (id, name) = self.bound.get(&file)?;
        (peer == Some(name.as_str())).then_some(id.as_str())
    }

    /// Keeps the entries of the containers `keep` says are there.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.order.retain(|id, _| keep(id));
        let order = &self.order;
        self.bound.retain(|_, (id, _)| order.contains_key(id.as_str()));
    }

    pub fn len(&self) -> usize {
        self.bound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }
}

fn is_unspecified(ep: &Endpoint) -> bool {
    matches!(ep, Endpoint::Ip(ip, 0) if ip.is_unspecified())
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        ebpf::record::{
            parse,
            tests::{bytes_of, header},
        },
        ecs::{
            parts::{AF_INET, AF_PACKET, SOCK_RAW},
            tests::{json, meta as a_meta},
        },
    };
    use crate::{
        ecs::{Body, Clock, Event},
        procs::EntityId,
    };
    use docker_listener_common::SockAddr;

    fn process() -> ProcRef {
        ProcRef {
            pid: 30,
            entity_id: EntityId(14),
            executable: Some("/bin/busybox".into()),
            name: Some("busybox".into()),
            applet: Some("nc".into()),
            applet_hidden: false,
        }
    }

    fn event(s: &Socket) -> Event {
        Event::new(s.meta, Clock::fixed(0), Body::Socket(SocketBody::new(s, process(), None)))
    }

    /// A refused native TCP connect to 127.0.0.1:9 (other modules' tests start from it too).
    pub(crate) fn connect() -> Socket {
        Socket {
            meta: a_meta(),
            op: SockOp::Connect,
            fd: 3,
            ret: -111,
            start_ns: 1,
            exec_id: 1,
            exe: (0, 0),
            family: 2,
            sock_type: 1,
            protocol: 6,
            backlog: 0,
            addr: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 9)),
            local: Some(Endpoint::Ip("0.0.0.0".parse().unwrap(), 0)),
            peer: None,
            unix_file: None,
            socket_unavailable: false,
            compat: false,
            tcp_state: false,
            uring: false,
            swapped: false,
            rewritten: false,
        }
    }

    /// A Unix connect names the listener it reached by the name that listener was bound with
    /// when the caller gave another (a symlink to the runtime's socket), and a healthcheck's
    /// connect whose name comes to lead elsewhere is no longer routine.
    #[test]
    fn a_unix_connect_names_the_listener_it_reached() {
        let unix = |peer: Option<&str>| Socket {
            ret: 0,
            family: 1,
            protocol: 0,
            addr: Some(Endpoint::Unix("/tmp/d".into())),
            local: None,
            peer: peer.map(Into::into),
            ..connect()
        };
        let v = json(&event(&unix(Some("/var/run/docker.sock"))), None, "");
        assert_eq!(v["destination"]["address"], "/tmp/d");
        assert_eq!(v["docker_listener"]["socket"]["peer_address"], "/var/run/docker.sock");
        let same =
            Socket { addr: Some(Endpoint::Unix("/var/run/docker.sock".into())), ..unix(Some("/var/run/docker.sock")) };
        let v = json(&event(&same), None, "");
        assert!(v["docker_listener"]["socket"].get("peer_address").is_none(), "said once: {v}");
        let v = json(&event(&unix(None)), None, "");
        assert!(v["docker_listener"]["socket"].get("peer_address").is_none());
        let key = |s: &Socket| SocketBody::new(s, process(), None).routine();
        assert_ne!(key(&unix(Some("/run/health.sock"))), key(&unix(Some("/var/run/docker.sock"))));
    }

    /// A socket call's program, for healthcheck summaries and repeats, is its executable,
    /// applet and file: busybox's `wget` is not its `nc`, and a program replaced at the same
    /// path is another.
    #[test]
    fn a_socket_call_s_program_is_its_path_applet_and_file() {
        let ok = Socket { ret: 0, exe: (77, 5), ..connect() };
        let key = |s: &Socket, applet: &str| {
            let process = ProcRef { applet: Some(applet.into()), ..process() };
            SocketBody::new(s, process, None).routine().expect("a plain connect")
        };
        let first = key(&ok, "nc");
        assert_eq!(key(&ok, "nc"), first);
        assert_ne!(key(&ok, "wget"), first, "another applet of the same file");
        assert_ne!(key(&Socket { exe: (78, 5), ..ok.clone() }, "nc"), first, "another file at the same path");
    }

    /// A program rewritten in place (the same file, a new ctime at its exec) makes calls that
    /// are not repeats of the old program's; one written just before its exec makes calls that
    /// are repeats of its own process's only; a version of another file than the one the kernel
    /// names is not used.
    #[test]
    fn a_socket_call_s_program_is_the_version_of_its_file_that_ran() {
        let ok = Socket { ret: 0, exe: (77, 5), ..connect() };
        let version = |ctime_ns: u64, fresh: bool| Some(Version { ino: 77, dev: 5, ctime_ns, fresh });
        let key = |v: Option<Version>| SocketBody::new(&ok, process(), v).routine();
        let old = key(version(1_000, false)).expect("a plain connect");
        assert_eq!(key(version(1_000, false)), Some(old.clone()), "the same version");
        let new = key(version(2_000, false)).expect("a plain connect");
        assert_ne!(new, old, "rewritten in place");
        let fresh = key(version(2_000, true)).expect("a plain connect");
        assert_ne!(fresh, new, "written just before it ran: not a repeat of another process's run");
        assert_eq!(key(version(2_000, true)), Some(fresh.clone()), "but of its own process's");
        let other = ProcRef { entity_id: EntityId(15), ..process() };
        assert_ne!(SocketBody::new(&ok, other, version(2_000, true)).routine(), Some(fresh), "another process");
        let other_file = Some(Version { ino: 78, ..version(2_000, true).expect("a version") });
        assert_eq!(key(other_file), key(None), "not the file the kernel names: as if unknown");
        assert!(key(None).is_some());
    }

    #[test]
    fn socket_events_put_addresses_in_ecs_directions() {
        let s = connect();
        let v = json(&event(&s), None, "");
        assert_eq!(v["destination"], json!({"ip": "127.0.0.1", "port": 9}));
        assert_eq!(v["process"]["entity_id"], "000000000000000e");
        assert_eq!(v["process"]["thread"]["id"], 30);
        assert_eq!(v["process"]["applet"], "nc");
        assert!(v.get("container").is_none());
        assert!(v.get("source").is_none(), "an unbound source is not an address");
        assert_eq!(v["network"], json!({"transport": "tcp", "type": "ipv4"}));
        assert_eq!(v["error"]["code"], "ECONNREFUSED");
        assert!(v["docker_listener"].get("socket_unavailable").is_none());
        let blind = Socket { sock_type: 0, protocol: 0, local: None, socket_unavailable: true, ..s.clone() };
        let v = json(&event(&blind), None, "");
        assert_eq!(v["docker_listener"]["socket_unavailable"], true);
        let accept = Socket {
            op: SockOp::Accept,
            ret: 4,
            addr: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 40000)),
            local: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 8080)),
            ..s
        };
        let v = json(&event(&accept), None, "abc");
        assert_eq!(v["container"], json!({"id": "abc", "runtime": "docker"}));
        assert_eq!(v["docker_listener"]["container_unresolved"], true);
        assert_eq!(v["source"]["port"], 40000);
        assert_eq!(v["destination"]["port"], 8080);
        assert_eq!(v["docker_listener"]["socket"]["accepted_fd"], 4);
        assert_eq!(v["event"]["outcome"], "success");
    }

    #[test]
    fn raw_and_packet_socket_creation() {
        let raw = Socket {
            op: SockOp::Socket,
            ret: 5,
            fd: 5,
            family: AF_INET,
            sock_type: SOCK_RAW,
            protocol: 1,
            addr: None,
            local: None,
            ..connect()
        };
        let v = json(&event(&raw), None, "");
        assert_eq!(v["event"]["action"], "socket");
        assert_eq!(v["event"]["type"], json!(["creation"]));
        assert_eq!(v["network"], json!({"transport": "icmp", "type": "ipv4"}));
        assert_eq!(
            v["docker_listener"]["socket"],
            json!({"fd": 5, "type": "SOCK_RAW", "protocol": 1, "family": "ipv4"})
        );
        let packet = Socket { family: AF_PACKET, sock_type: 2, protocol: 0x0300, ret: -1, ..raw };
        let v = json(&event(&packet), None, "");
        assert_eq!(v["network"]["type"], "packet");
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["error"]["code"], "EPERM");
        assert!(v["docker_listener"]["socket"].get("fd").is_none());
    }

    #[test]
    fn compat_calls_and_io_uring_connects_say_how_they_came() {
        let v = json(&event(&Socket { compat: true, ..connect() }), None, "");
        assert_eq!(v["docker_listener"]["syscall"], json!({"name": "connect", "ret": -111, "abi": "ia32"}));
        let uring = Socket {
            tcp_state: true,
            fd: -1,
            ret: 0,
            local: Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 0)),
            ..connect()
        };
        let v = json(&event(&uring), None, "");
        assert_eq!(v["source"], json!({"ip": "127.0.0.1"}), "no port yet at SYN_SENT");
        assert_eq!(v["event"]["outcome"], "unknown");
        assert!(v.get("error").is_none());
        assert!(v["docker_listener"].get("syscall").is_none());
        assert_eq!(v["docker_listener"]["seen_by"], "tcp_state");
        assert!(v["docker_listener"]["socket"].get("fd").is_none());
    }

    #[test]
    fn socket_records_decode_addresses() {
        let mut r: SocketRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Socket);
        r.op = sock_op::CONNECT;
        r.addr = SockAddr { family: 2, port: 8080, _pad: 0, addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
        r.local =
            SockAddr { family: 2, port: 40000, _pad: 0, addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
        r.ret = -111;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(s.op, SockOp::Connect);
        assert_eq!(s.addr, Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 8080)));
        assert_eq!(s.local, Some(Endpoint::Ip("127.0.0.1".parse().unwrap(), 40000)));
        r.addr.family = 1;
        r.unix_path[..9].copy_from_slice(b"\0abstract");
        r.unix_path_len = 9;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(s.addr, Some(Endpoint::Unix("@abstract".into())));
        assert_eq!(s.peer, None);
        r.peer_path[..21].copy_from_slice(b"/var/run/docker.sock\0");
        r.peer_path_len = 21;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(s.peer.as_deref(), Some("/var/run/docker.sock"));
        // Seen at its io_uring completion: the name the request gave is not read, the
        // listener reached is; no system call, never routine.
        r.flags = flags::URING;
        r.ret = 0;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!((s.addr.as_ref(), s.peer.as_deref()), (None, Some("/var/run/docker.sock")));
        let v = json(&event(&s), None, "");
        assert_eq!(v["docker_listener"]["seen_by"], "io_uring", "{v}");
        assert!(v["docker_listener"].get("syscall").is_none(), "{v}");
        assert!(v.get("destination").is_none(), "{v}");
        assert_eq!(v["docker_listener"]["socket"]["peer_address"], "/var/run/docker.sock");
        assert_eq!(SocketBody::new(&s, process(), None).routine(), None);
        assert_eq!(s.unix_file, None, "no file read");
        (r.unix_ino, r.unix_dev) = (77, 0x2d);
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(s.unix_file, Some((77, 0x2d)));
    }

    /// The family is the kernel's where it read the socket: a Unix connect whose address
    /// another thread rewrote to netlink's before the exit read it is still a Unix one (the
    /// daemon does not report netlink sockets). A connect whose socket was swapped during the
    /// call says so, and is never routine.
    #[test]
    fn the_family_is_the_kernel_s_and_a_swapped_socket_is_said() {
        let mut r: SocketRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Socket);
        r.op = sock_op::CONNECT;
        r.addr.family = 16;
        r.local.family = 1;
        r.peer_path[..21].copy_from_slice(b"/var/run/docker.sock\0");
        r.peer_path_len = 21;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(s.family, 1, "the kernel's");
        assert!(!s.swapped);
        let v = json(&event(&s), None, "");
        assert_eq!(v["docker_listener"]["socket"]["peer_address"], "/var/run/docker.sock", "{v}");
        assert!(SocketBody::new(&s, process(), None).routine().is_some());
        // No socket read (swapped): the address's family, as the caller's memory had it.
        r.local.family = 0;
        r.peer_path_len = 0;
        r.flags = flags::SOCKET_SWAPPED | flags::SOCKET_UNAVAILABLE;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(s.family, 16);
        assert!(s.swapped);
        let v = json(&event(&s), None, "");
        assert_eq!(v["docker_listener"]["socket"]["swapped"], true, "{v}");
        assert_eq!(SocketBody::new(&s, process(), None).routine(), None, "never folded");
        let v = json(&event(&connect()), None, "");
        assert!(v["docker_listener"]["socket"].get("swapped").is_none(), "{v}");
    }

    /// A connect whose address the caller's memory said otherwise at the exit than at the entry
    /// says so, and is never routine; its address is the record's (the entry's or the
    /// kernel's).
    #[test]
    fn a_connect_whose_destination_was_rewritten_in_memory_says_so() {
        let mut r: SocketRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Socket);
        r.op = sock_op::CONNECT;
        (r.addr.family, r.addr.port) = (2, 4444);
        r.addr.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        (r.local.family, r.sock_type, r.protocol) = (2, 1, 6);
        r.flags = flags::REMOTE_REWRITTEN;
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert!(s.rewritten);
        let v = json(&event(&s), None, "");
        assert_eq!(v["docker_listener"]["socket"]["address_rewritten"], true, "{v}");
        assert_eq!((&v["destination"]["ip"], &v["destination"]["port"]), (&json!("127.0.0.1"), &json!(4444)), "{v}");
        assert_eq!(SocketBody::new(&s, process(), None).routine(), None, "never folded");
        let v = json(&event(&connect()), None, "");
        assert!(v["docker_listener"]["socket"].get("address_rewritten").is_none(), "{v}");
        // A Unix connect whose memory was rewritten to an IP address shows no IP address.
        r.local.family = 1;
        r.addr.addr[..4].copy_from_slice(&[169, 254, 169, 254]);
        let Record::Socket(s) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        let v = json(&event(&s), None, "");
        assert!(v.get("destination").is_none(), "{v}");
    }

    /// The listener a connect reached is known by its file, bound by the name the kernel still
    /// has for it: another file of that inode number, bound by another name, is not it.
    #[test]
    fn a_listener_is_the_binding_container_s_by_its_file_and_name() {
        let mut l = UnixListeners::default();
        l.bound((5, 9), "dind", "/var/run/docker.sock");
        l.bound((6, 9), "", "/ignored");
        assert_eq!(l.binder((5, 9), Some("/var/run/docker.sock")), Some("dind"));
        assert_eq!(l.binder((5, 9), Some("/run/other.sock")), None, "another name: another file since");
        assert_eq!(l.binder((5, 9), None), None);
        assert_eq!(l.binder((5, 10), Some("/var/run/docker.sock")), None, "the host's: another device");
        assert_eq!(l.binder((6, 9), Some("/ignored")), None, "a bind of no container");
        // A container binding in a loop pushes out its own oldest, not another's.
        for i in 0..10_000u64 {
            l.bound((100 + i, 9), "flood", "/x");
        }
        assert_eq!(l.len(), 1 + UnixListeners::PER_CONTAINER, "bounded");
        assert_eq!(l.binder((5, 9), Some("/var/run/docker.sock")), Some("dind"), "another's kept");
        assert_eq!(l.binder((100 + 9_999, 9), Some("/x")), Some("flood"), "its newest kept");
        assert_eq!(l.binder((100, 9), Some("/x")), None, "its oldest gone");
        // The same file bound again by another container (an inode number used again) is its.
        l.bound((5, 9), "other", "/var/run/docker.sock");
        assert_eq!(l.binder((5, 9), Some("/var/run/docker.sock")), Some("other"));
        l.retain(|id| id != "flood");
        assert_eq!(l.len(), 1);
        l.retain(|id| id != "other");
        assert!(l.is_empty());
        // In all: past `MAX`, a new container's binds are not kept; known containers' still are.
        for c in 0..=(UnixListeners::MAX / UnixListeners::PER_CONTAINER) as u64 {
            for i in 0..UnixListeners::PER_CONTAINER as u64 {
                l.bound((c * 1000 + i, 1), &format!("c{c}"), "/y");
            }
        }
        assert_eq!(l.len(), UnixListeners::MAX);
        l.bound((99_999_999, 1), "late", "/y");
        assert_eq!(l.binder((99_999_999, 1), Some("/y")), None);
        l.bound((99_999_998, 1), "c0", "/y");
        assert_eq!(l.binder((99_999_998, 1), Some("/y")), Some("c0"), "a known container's newest");
        assert_eq!(l.len(), UnixListeners::MAX, "in place of its oldest");
    }

    /// A connect to a listener of the container's own and one to another listener by the same
    /// name (the runtime's socket, from outside a chroot) are not repeats of each other.
    #[test]
    fn connects_by_one_name_to_two_listeners_are_no_repeats() {
        let unix = |file: u64| Socket {
            ret: 0,
            family: 1,
            sock_type: 1,
            protocol: 0,
            addr: Some(Endpoint::Unix("/var/run/docker.sock".into())),
            peer: Some("/var/run/docker.sock".into()),
            unix_file: Some((file, 9)),
            ..connect()
        };
        let mut own = SocketBody::new(&unix(5), process(), None);
        own.peer_bound = Some(PeerBound { container: "c".into(), same: true });
        let host = SocketBody::new(&unix(6), process(), None);
        assert!(own.routine().is_some() && host.routine().is_some());
        assert_ne!(own.routine(), host.routine());
        let mut own_again = SocketBody::new(&unix(5), process(), None);
        own_again.peer_bound = Some(PeerBound { container: "c".into(), same: true });
        assert_eq!(own.routine(), own_again.routine(), "a repeat");
        let mut unknown_same_file = SocketBody::new(&unix(5), process(), None);
        unknown_same_file.peer_bound = None;
        assert_ne!(own.routine(), unknown_same_file.routine(), "whose it is, too");
        assert_ne!(unknown_same_file.routine(), host.routine(), "the listener's file, too");
    }

    #[test]
    fn a_listener_of_the_caller_s_own_container_is_said() {
        let unix = Socket {
            ret: 0,
            family: 1,
            addr: Some(Endpoint::Unix("/var/run/docker.sock".into())),
            peer: Some("/var/run/docker.sock".into()),
            ..connect()
        };
        let mut body = SocketBody::new(&unix, process(), None);
        let v = json(&Event::new(unix.meta, Clock::fixed(0), Body::Socket(body.clone())), None, "");
        assert!(v["docker_listener"]["socket"].get("peer_container").is_none(), "{v}");
        assert!(v["docker_listener"]["socket"].get("peer_same_container").is_none(), "{v}");
        body.peer_bound = Some(PeerBound { container: "dind".into(), same: true });
        let v = json(&Event::new(unix.meta, Clock::fixed(0), Body::Socket(body.clone())), None, "");
        assert_eq!(v["docker_listener"]["socket"]["peer_container"], "dind", "{v}");
        assert_eq!(v["docker_listener"]["socket"]["peer_same_container"], true, "{v}");
        body.peer_bound = Some(PeerBound { container: "other".into(), same: false });
        let v = json(&Event::new(unix.meta, Clock::fixed(0), Body::Socket(body)), None, "");
        assert_eq!(v["docker_listener"]["socket"]["peer_container"], "other", "{v}");
        assert!(v["docker_listener"]["socket"].get("peer_same_container").is_none(), "{v}");
    }
}
