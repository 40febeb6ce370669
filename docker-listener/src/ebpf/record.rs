//! Ring-buffer records, decoded from the kernel's `#[repr(C)]` layouts into owned values.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use docker_listener_common as common;
use docker_listener_common::{
    CgroupRecord, ExecRecord, ExitRecord, ForkRecord, RecordHeader, RecordKind, SockAddr, SocketRecord, flags,
};

/// What every record says about where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub cpu: u32,
    pub seq: u64,
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub meta: Meta,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// 0, or the negative errno of a failed execve.
    pub ret: i32,
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub comm: String,
    pub filename: String,
    pub args: Vec<String>,
    pub args_truncated: bool,
    pub args_unavailable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    pub meta: Meta,
    pub child_tgid: u32,
    pub child_start_ns: u64,
    pub parent_start_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub meta: Meta,
    pub exit_code: i32,
    pub start_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOp {
    Connect,
    Bind,
    Listen,
    Accept,
}

impl SockOp {
    pub fn name(self) -> &'static str {
        match self {
            SockOp::Connect => "connect",
            SockOp::Bind => "bind",
            SockOp::Listen => "listen",
            SockOp::Accept => "accept",
        }
    }
}

/// An endpoint: an IP address and port, or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Ip(IpAddr, u16),
    Unix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub meta: Meta,
    pub op: SockOp,
    pub fd: i32,
    pub ret: i64,
    pub start_ns: u64,
    /// AF_INET / AF_INET6 / AF_UNIX from the address or the socket, 0 if unknown.
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub backlog: i32,
    /// The address the call named (connect: destination; bind/listen: bound; accept: peer).
    pub addr: Option<Endpoint>,
    /// The socket's own address after the call (connect: the source; accept: the server side).
    pub local: Option<Endpoint>,
    pub socket_unavailable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub meta: Meta,
    pub created: bool,
    pub id: u64,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Socket(Socket),
    Cgroup(Cgroup),
}

impl Record {
    pub fn meta(&self) -> &Meta {
        match self {
            Record::Exec(r) => &r.meta,
            Record::Fork(r) => &r.meta,
            Record::Exit(r) => &r.meta,
            Record::Socket(r) => &r.meta,
            Record::Cgroup(r) => &r.meta,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {len} bytes is shorter than its kind needs ({need})")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

fn pod<T: Copy>(bytes: &[u8]) -> Result<T, RecordError> {
    if bytes.len() < size_of::<T>() {
        return Err(RecordError::Short { len: bytes.len(), need: size_of::<T>() });
    }
    // SAFETY: the length was checked, T is a plain-old-data record (every bit pattern valid),
    // and read_unaligned copes with the ring buffer's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The bytes of a NUL-terminated (or full) C string buffer, at most `len` long.
fn cstr(buf: &[u8], len: usize) -> String {
    let buf = &buf[..len.min(buf.len())];
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn meta(h: &RecordHeader) -> Meta {
    Meta { cpu: h.cpu, seq: h.seq, ktime_ns: h.ktime_ns, cgroup_id: h.cgroup_id, pid: h.pid, tgid: h.tgid }
}

/// Splits NUL-separated arguments; keeps at most `max_args`.
fn split_args(buf: &[u8], max_args: usize) -> (Vec<String>, bool) {
    let mut args: Vec<String> = buf.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    // A trailing NUL leaves an empty last piece.
    if buf.last() == Some(&0) {
        args.pop();
    }
    let cut = args.len() > max_args;
    args.truncate(max_args);
    (args, cut)
}

fn endpoint(a: &SockAddr) -> Option<Endpoint> {
    match a.family {
        2 => {
            let ip = Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3]);
            Some(Endpoint::Ip(IpAddr::V4(ip), a.port))
        }
        10 => {
            let ip = Ipv6Addr::from(a.addr);
            // A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d: report them as IPv4.
            Some(Endpoint::Ip(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4), a.port))
        }
        _ => None,
    }
}

/// Decodes one ring-buffer record.
pub fn parse(bytes: &[u8], max_args: usize) -> Result<Record, RecordError> {
    let header: RecordHeader = pod(bytes)?;
    let kind = RecordKind::try_from(header.kind).map_err(RecordError::UnknownKind)?;
    Ok(match kind {
        RecordKind::Exec => {
            let r: ExecRecord = pod(bytes)?;
            let args_len = (r.args_len as usize).min(common::ARGS_CAP);
            let (args, cut) = split_args(&r.args[..args_len], max_args);
            Record::Exec(Exec {
                meta: meta(&r.header),
                ppid: r.ppid,
                uid: r.uid,
                gid: r.gid,
                ret: r.ret,
                start_ns: r.start_ns,
                parent_start_ns: r.parent_start_ns,
                comm: cstr(&r.comm, common::COMM_LEN),
                filename: cstr(&r.filename, r.filename_len as usize),
                args,
                args_truncated: cut || r.flags & flags::ARGS_TRUNCATED != 0,
                args_unavailable: r.flags & flags::ARGS_UNAVAILABLE != 0,
            })
        }
        RecordKind::Fork => {
            let r: ForkRecord = pod(bytes)?;
            Record::Fork(Fork {
                meta: meta(&r.header),
                child_tgid: r.child_tgid,
                child_start_ns: r.child_start_ns,
                parent_start_ns: r.parent_start_ns,
            })
        }
        RecordKind::Exit => {
            let r: ExitRecord = pod(bytes)?;
            Record::Exit(Exit { meta: meta(&r.header), exit_code: r.exit_code, start_ns: r.start_ns })
        }
        RecordKind::Socket => {
            let r: SocketRecord = pod(bytes)?;
            let op = match r.op {
                common::sock_op::CONNECT => SockOp::Connect,
                common::sock_op::BIND => SockOp::Bind,
                common::sock_op::LISTEN => SockOp::Listen,
                _ => SockOp::Accept,
            };
            let family = if r.addr.family != 0 { r.addr.family } else { r.local.family };
            let addr = if r.addr.family == 1 {
                let len = (r.unix_path_len as usize).min(common::UNIX_PATH_CAP);
                let raw = &r.unix_path[..len];
                Some(Endpoint::Unix(match raw.first() {
                    // Abstract names: shown with a leading '@', like ss(8).
                    Some(0) => format!("@{}", String::from_utf8_lossy(&raw[1..]).trim_end_matches('\0')),
                    _ => cstr(raw, len),
                }))
            } else {
                endpoint(&r.addr)
            };
            Record::Socket(Socket {
                meta: meta(&r.header),
                op,
                fd: r.fd,
                ret: r.ret,
                start_ns: r.start_ns,
                family,
                sock_type: r.sock_type,
                protocol: r.protocol,
                backlog: r.backlog,
                addr,
                local: endpoint(&r.local),
                socket_unavailable: r.flags & flags::SOCKET_UNAVAILABLE != 0,
            })
        }
        RecordKind::Cgroup => {
            let r: CgroupRecord = pod(bytes)?;
            Record::Cgroup(Cgroup {
                meta: meta(&r.header),
                created: r.op == common::cgroup_op::MKDIR,
                id: r.id,
                path: cstr(&r.path, r.path_len as usize),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain-old-data value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header(kind: RecordKind) -> RecordHeader {
        RecordHeader { kind: kind as u32, cpu: 1, seq: 7, ktime_ns: 9, cgroup_id: 82, pid: 100, tgid: 100 }
    }

    #[test]
    fn exec_records_decode_args_and_paths() {
        let mut r: ExecRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Exec);
        r.ppid = 50;
        let args = b"sh\0-c\0echo hi\0";
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = args.len() as u32;
        r.filename[..7].copy_from_slice(b"/bin/sh");
        r.filename_len = 7;
        r.comm[..2].copy_from_slice(b"sh");
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(e.args, ["sh", "-c", "echo hi"]);
        assert_eq!(e.filename, "/bin/sh");
        assert_eq!(e.comm, "sh");
        assert_eq!(e.meta.cgroup_id, 82);
        assert!(!e.args_truncated);
        let Record::Exec(e) = parse(&bytes_of(&r), 2).unwrap() else { panic!() };
        assert_eq!(e.args, ["sh", "-c"]);
        assert!(e.args_truncated);
    }

    #[test]
    fn socket_records_decode_addresses() {
        let mut r: SocketRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Socket);
        r.op = common::sock_op::CONNECT;
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
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(parse(&[0; 8], 64), Err(RecordError::Short { .. })));
        let mut h = header(RecordKind::Exec);
        h.kind = 999;
        assert_eq!(parse(&bytes_of(&h), 64), Err(RecordError::UnknownKind(999)));
        let h = header(RecordKind::Exec);
        assert!(matches!(parse(&bytes_of(&h), 64), Err(RecordError::Short { .. })));
    }
}
