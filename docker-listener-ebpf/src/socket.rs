//! Socket access: connect, bind, listen, accept/accept4 (AF_INET, AF_INET6, AF_UNIX, and any
//! other family the daemon chooses to report), and the creation of raw and packet sockets, as
//! syscall enter/exit pairs keyed by pid_tgid: the enter side remembers the arguments, the exit
//! side reports them with the result and what the kernel knows of the socket afterwards (type,
//! protocol, local address, and for accept the peer).
//!
//! The `syscalls:sys_*` tracepoints here see the native (x86-64) system calls; `compat.rs` hands
//! the 32-bit ones, whose arguments it reads at their exit, to the same `report_call`.
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_kernel, bpf_probe_read_user},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use docker_listener_common::{
    RecordKind, SockAddr, UNIX_PATH_CAP,
    family::{
        net::DNS_PORT,
        socket::{SocketRecord, sock_op},
    },
    flags, loss,
};

use crate::{
    budget::{Listener, Side},
    kernel::{
        AF_INET, AF_INET6, AF_UNIX, SocketState, current_task, exe_identity, exec_id, inode_identity, process_start,
        read0, socket_of_fd, socket_state,
    },
    maps::{PENDING_SOCK, PendingSock, bump_loss, config, reserve, submit, traced},
};

/// Enter: `fd` at 16, then the op's arguments at 24 and 32 (sockaddr pointer and its length;
/// for accept a pointer to the length; for listen the backlog at 24).
#[inline(always)]
fn enter(ctx: &TracePointContext, op: u32) {
    if !traced() {
        return;
    }
    let fd: u64 = unsafe { ctx.read_at(16) }.unwrap_or(u64::MAX);
    let (addr, len) = if op == sock_op::LISTEN {
        (0, unsafe { ctx.read_at::<u64>(24) }.unwrap_or(0))
    } else {
        (unsafe { ctx.read_at::<u64>(24) }.unwrap_or(0), unsafe { ctx.read_at::<u64>(32) }.unwrap_or(0))
    };
    let mut pending = call(op, fd as i32, addr, len, 0);
    if op == sock_op::CONNECT || op == sock_op::BIND {
        pending.sock = unsafe { socket_of_fd(fd as i32) }.map_or(0, |s| s as u64);
        pending.asked = unsafe { ip_sockaddr(addr, len) }.unwrap_or_default();
    }
    remember(pending);
}

/// A socket call's arguments (`flags` marks the ABI).
#[inline(always)]
pub fn call(op: u32, fd: i32, addr: u64, len: u64, flags: u32) -> PendingSock {
    PendingSock { op, fd, flags, _pad: 0, addr, len, sock: 0, asked: SockAddr::default() }
}

/// Keeps a native socket call's arguments until its exit.
#[inline(always)]
fn remember(pending: PendingSock) {
    if PENDING_SOCK.insert(&bpf_get_current_pid_tgid(), &pending, 0).is_err() {
        bump_loss(loss::PENDING_MAP_FULL);
    }
}

#[inline(always)]
fn exit(ctx: &TracePointContext) {
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    report(ret);
}

/// Reports the native socket call in flight on this thread, if any, with its result.
#[inline(always)]
fn report(ret: i64) {
    let key = bpf_get_current_pid_tgid();
    let Some(p) = (unsafe { PENDING_SOCK.get(&key) }).copied() else { return };
    let _ = PENDING_SOCK.remove(&key);
    report_call(&p, ret);
}

/// Whether socket call `p`, which succeeded, may be sent: within its container's budget, or
/// over it a Unix connect that is the container's first to its listener
/// (`budget::admit_connect`). A Unix connect whose listener cannot be named goes too: a native
/// one with another socket at its exit than at its entry (`swapped`), and a 32-bit one (seen at
/// its exit only: the descriptor, and for socketcall its number, read then).
#[inline(always)]
fn admitted(p: &PendingSock, ret: i64) -> bool {
    if p.op != sock_op::CONNECT || ret != 0 {
        return crate::budget::admit();
    }
    crate::budget::admit_connect(|| unsafe {
        let sock = socket_of_fd(p.fd).map_or(0, |s| s as u64);
        if swapped(p, sock) {
            return Listener::Unnamed(Side::Unknown);
        }
        let listener = unix_listener(read0(sock as *const u8, config!(offsets.socket_sk)));
        if p.flags & flags::COMPAT == 0 {
            return listener;
        }
        // A 32-bit connect: its descriptor (and socketcall's arguments) read at the exit only.
        match listener {
            Listener::Named { side, .. } | Listener::Unnamed(side) => Listener::Unnamed(side),
            Listener::None => Listener::Unnamed(Side::Unknown),
        }
    })
}

/// Whether a native connect's or bind's descriptor holds another socket (`sock`, 0 for none)
/// at the call's exit than at its entry: another thread's `dup2` or `close` during the call.
#[inline(always)]
fn swapped(p: &PendingSock, sock: u64) -> bool {
    p.flags & flags::COMPAT == 0 && (p.op == sock_op::CONNECT || p.op == sock_op::BIND) && sock != p.sock
}

/// The listener a connected Unix socket (`sk`) reached: its `unix_sock.addr` (the listener's,
/// which every connection it accepts shares; a datagram socket's peer's own), and whether the
/// process that made it listen (`sk_peer_pid`, copied onto the connection) is the container's
/// own or outside it. A datagram socket's peer has no such process: the container's own.
/// Unknown offsets: outside, named by its address when that is known.
#[inline(always)]
pub(crate) unsafe fn unix_listener(sk: *const u8) -> Listener {
    unsafe {
        let family: u16 = read0(sk, config!(offsets.sk_family));
        if sk.is_null() || family != AF_UNIX {
            return Listener::None;
        }
        if config!(offsets.unix_peer_valid) == 0 {
            return Listener::Unnamed(Side::Unknown);
        }
        let peer: *const u8 = read0(sk, config!(offsets.unix_sock_peer));
        let addr: *const u8 = read0(peer, config!(offsets.unix_sock_addr));
        if addr.is_null() {
            return Listener::None;
        }
        let side = match config!(offsets.sk_peer_pid) {
            0 => Side::Outside,
            at => listener_side(read0(sk, at)),
        };
        Listener::Named { addr: addr as u64, side }
    }
}

/// Whose a listener is, by the process that made it listen (`pid`, its `SO_PEERCRED` one): the
/// container's own when that process is in the caller's cgroup (the caller in a pid namespace
/// nested in the container's included), or is gone (a server that listened, then forked and
/// exited: the Docker socket's dockerd, or systemd for a socket-activated one, lives), or there
/// is none (a datagram socket's peer). Outside: a process of another cgroup (the host's
/// dockerd, for a `--pid host` container too; docker-in-docker's inner dockerd, for the
/// containers it makes; another container's), or offsets unknown.
#[inline(always)]
unsafe fn listener_side(pid: *const u8) -> Side {
    if pid.is_null() {
        return Side::Own;
    }
    if !crate::kernel::process_cgroups_known() {
        return Side::Outside;
    }
    match unsafe { crate::kernel::cgroup_of_process(pid) } {
        Some(cgroup) if cgroup != unsafe { bpf_get_current_cgroup_id() } => Side::Outside,
        _ => Side::Own,
    }
}

/// Reports socket call `p` with its result, at the call's exit (the caller's memory the
/// arguments point to and the socket are read now).
#[inline(always)]
pub fn report_call(p: &PendingSock, ret: i64) {
    // A call that succeeded, over its container's budget: held back (failed calls never are).
    // A connect to port 53 still marks its process, whose writes may be DNS queries.
    let succeeded = ret >= 0 || (p.op == sock_op::CONNECT && ret == EINPROGRESS);
    if succeeded && !admitted(p, ret) {
        if p.op == sock_op::CONNECT
            && unsafe { socket_of_fd(p.fd).and_then(|s| socket_state(s)) }.is_some_and(|st| st.remote.port == DNS_PORT)
        {
            crate::net::mark_dns_writer((bpf_get_current_pid_tgid() >> 32) as u32);
        }
        return;
    }
    let Some((mut entry, header)) = reserve::<SocketRecord>(RecordKind::Socket) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).header = header;
        (*r).op = p.op;
        (*r).fd = p.fd;
        (*r).ret = ret;
        (*r).start_ns = process_start(current_task());
        (*r).exec_id = exec_id(current_task());
        ((*r).exe_ino, (*r).exe_dev) = exe_identity(current_task());
        (*r).sock_type = 0;
        (*r).protocol = 0;
        (*r).flags = p.flags;
        (*r).backlog = if p.op == sock_op::LISTEN { p.len as i32 } else { 0 };
        (*r).unix_path_len = 0;
        (*r).peer_path_len = 0;
        (*r).unix_dev = 0;
        (*r).unix_pad = 0;
        (*r).unix_ino = 0;
        (*r).addr = SockAddr::default();
        (*r).local = SockAddr::default();
        if p.op == sock_op::SOCKET {
            // The arguments say it all: domain, type, protocol; the result is the descriptor.
            (*r).addr.family = p.addr as u16;
            (*r).sock_type = (p.len >> 32) as u16 & SOCK_TYPE_MASK;
            (*r).protocol = p.len as u16;
            (*r).fd = if ret >= 0 { ret as i32 } else { -1 };
            submit(entry);
            return;
        }

        // The address the caller named (for accept: where the kernel wrote the peer).
        if p.addr != 0 && (p.op != sock_op::ACCEPT || ret >= 0) {
            let len = if p.op == sock_op::ACCEPT {
                let mut l: u32 = 0;
                bpf_probe_read_user((&mut l as *mut u32).cast(), 4, p.len as *const _);
                u64::from(l)
            } else {
                p.len
            };
            if !read_sockaddr(r, p.addr, len) {
                (*r).flags |= flags::REMOTE_UNAVAILABLE;
            }
        }
        // A native connect or bind: the address as the caller's memory had it at the entry,
        // just before the kernel copied it. Memory saying another at the exit was rewritten during
        // the call (another thread's write while a connect waited for its handshake, to pass
        // it off as one to another address); the record keeps the entry's IP address (a Unix
        // one is named by the listener the kernel reached, `peer_path`).
        // (An exit read that failed, a page of the caller's paged out meanwhile, is no rewrite.)
        if p.asked.family != 0 {
            let now = (*r).addr;
            let unread = (*r).flags & flags::REMOTE_UNAVAILABLE != 0;
            let differs = now.family != p.asked.family || now.port != p.asked.port || now.addr != p.asked.addr;
            if differs && !unread {
                (*r).flags |= flags::REMOTE_REWRITTEN;
            }
            if (differs || unread) && (p.asked.family == AF_INET || p.asked.family == AF_INET6) {
                (*r).addr = p.asked;
                (*r).unix_path_len = 0;
                (*r).flags &= !flags::REMOTE_UNAVAILABLE;
            }
        }
        // The socket as the kernel has it now: accept's new socket, else the fd's; none when
        // the descriptor holds another socket than the call was made on (then flagged: the
        // socket read would be another's, its listener a name the caller chose).
        let fd = if p.op == sock_op::ACCEPT { ret as i32 } else { p.fd };
        let sock = socket_of_fd(fd);
        let sock = if swapped(p, sock.map_or(0, |s| s as u64)) {
            (*r).flags |= flags::SOCKET_SWAPPED;
            None
        } else {
            sock
        };
        // A Unix socket by the kernel's family (not the caller's memory, which another thread
        // may rewrite).
        let unix = match sock {
            Some(s) if ret == 0 => {
                let family: u16 = read0(read0::<*const u8>(s, config!(offsets.socket_sk)), config!(offsets.sk_family));
                if family == AF_UNIX { Some(s) } else { None }
            }
            _ => None,
        };
        // The socket file (whose listener it is, to the daemon) only from the socket the call
        // was made on: a native call's, as at its entry (another thread's dup2 onto the
        // descriptor meanwhile would put another socket's there: then none is read at all). A
        // 32-bit call is seen at its exit only: its listener's name, never its file.
        let verified = p.flags & flags::COMPAT == 0 && unix.is_some_and(|s| s as u64 == p.sock);
        if let Some(s) = unix {
            if p.op == sock_op::CONNECT {
                // Where a symlink, another mount or a procfs name of it led: the listener's
                // own name.
                unix_peer_path(r, s, verified);
            } else if p.op == sock_op::BIND && verified {
                // The file bound: a connect that reaches this listener names the same one.
                unix_file(r, read0(s, config!(offsets.socket_sk)));
            }
        }
        match sock.and_then(|s| socket_state(s)) {
            Some(state) => {
                if p.op == sock_op::CONNECT && state.remote.port == DNS_PORT {
                    // Its writes may be DNS queries (the network family's, `net.rs`).
                    crate::net::mark_dns_writer((bpf_get_current_pid_tgid() >> 32) as u32);
                }
                (*r).sock_type = state.sock_type;
                (*r).protocol = state.protocol;
                (*r).local = state.local;
                if p.op == sock_op::ACCEPT && state.local.port == 0 {
                    // The peer reset the connection before accept() returned: the accepted
                    // socket is already unhashed. The listening socket has the port.
                    if let Some(listening) = socket_of_fd(p.fd).and_then(|s| socket_state(s)) {
                        (*r).local = listening.local;
                    }
                }
                if (*r).addr.family == 0 && p.op == sock_op::ACCEPT {
                    // accept(fd, NULL, NULL), or a peer address the caller's memory did not
                    // give: the peer from the new socket (an address read from it only: a Unix
                    // peer's name, an IPv6 one with its offsets unknown, stay unavailable).
                    (*r).addr = state.remote;
                    if ip_known(&state.remote) {
                        (*r).flags &= !flags::REMOTE_UNAVAILABLE;
                    }
                }
                if p.op == sock_op::LISTEN {
                    (*r).addr = state.local;
                }
                // (A connect refused keeps what it asked for: a second connect of a connected
                // socket, refused with EISCONN, asked for another destination than its own.)
                if p.op == sock_op::CONNECT && matches!(ret, 0 | EINPROGRESS | EINTR | ERESTARTSYS) {
                    kernel_destination(r, &state);
                }
            }
            None => (*r).flags |= flags::SOCKET_UNAVAILABLE,
        }
        // Counted as lost only when neither the address at the entry nor the kernel's socket
        // gave the record an IP address. (A Unix connect's name as the caller gave it is lost
        // even when the kernel names the listener reached, `peer_path`.)
        if (*r).flags & flags::REMOTE_UNAVAILABLE != 0 {
            bump_loss(loss::ADDR_READ);
        }
    }
    submit(entry);
}

/// An IP address read from the kernel's socket: of its family, and not all zeros (which is what
/// a failed read, or an IPv6 socket's with the offsets unknown, leaves).
#[inline(always)]
fn ip_known(a: &SockAddr) -> bool {
    (a.family == AF_INET || a.family == AF_INET6) && a.addr != [0; 16]
}

/// `-EINPROGRESS`: a non-blocking connect under way (its destination set).
const EINPROGRESS: i64 = -115;
/// `-EINTR`, `-ERESTARTSYS`: a blocking connect a signal interrupted while it waited for its
/// handshake, which goes on (its destination set).
const EINTR: i64 = -4;
const ERESTARTSYS: i64 = -512;

/// An IP connect's destination as the kernel connected the socket (its `daddr`, `dport`),
/// whatever the caller's memory says: the address the kernel copied at the entry, as a
/// socket-address hook (a cgroup `connect4` program's load balancing) may have changed it. A
/// socket with no destination (a connect the kernel undid, `AF_UNSPEC`) keeps the memory's; a
/// raw or ping socket's has an address and no port.
#[inline(always)]
unsafe fn kernel_destination(r: *mut SocketRecord, state: &SocketState) {
    let to = state.remote;
    if (to.family != AF_INET && to.family != AF_INET6) || (to.port == 0 && to.addr == [0; 16]) {
        return;
    }
    unsafe {
        (*r).addr = to;
        (*r).flags &= !flags::REMOTE_UNAVAILABLE;
    }
}

/// A connected Unix socket's peer's bound address (`unix_sock.peer->addr->name.sun_path`) into
/// `peer_path`, and with `file` the peer's socket file: nothing when the kernel's layout is
/// unknown or the peer has no name.
#[inline(always)]
pub(crate) unsafe fn unix_peer_path(r: *mut SocketRecord, sock: *const u8, file: bool) {
    if config!(offsets.unix_peer_valid) == 0 {
        return;
    }
    unsafe {
        let sk: *const u8 = read0(sock, config!(offsets.socket_sk));
        let peer: *const u8 = read0(sk, config!(offsets.unix_sock_peer));
        let addr: *const u8 = read0(peer, config!(offsets.unix_sock_addr));
        if addr.is_null() {
            return;
        }
        // Which socket it is, by whatever name it was reached: its file.
        if file {
            unix_file(r, peer);
        }
        // `len` counts `sun_family` (2 bytes) and the path (an abstract name's leading NUL
        // included, a filesystem name's trailing NUL sometimes).
        let len: i32 = read0(addr, config!(offsets.unix_address_len));
        if len <= 2 {
            return;
        }
        let plen = (len - 2) as u32;
        let plen = if plen > UNIX_PATH_CAP as u32 { UNIX_PATH_CAP as u32 } else { plen };
        let plen = plen & 127;
        let plen = if plen > UNIX_PATH_CAP as u32 { UNIX_PATH_CAP as u32 } else { plen };
        let name = addr.wrapping_add(config!(offsets.unix_address_name) as usize + 2);
        if plen > 0 && bpf_probe_read_kernel((*r).peer_path.as_mut_ptr().cast(), plen, name.cast()) == 0 {
            (*r).peer_path_len = plen;
        }
    }
}

/// A Unix socket's file (`unix_sock.path.dentry`'s inode), the one its `bind` made, into
/// `unix_ino`, `unix_dev`: zeros when it has none (abstract, unnamed) or the layout is unknown.
#[inline(always)]
pub(crate) unsafe fn unix_file(r: *mut SocketRecord, sk: *const u8) {
    if config!(offsets.unix_peer_valid) == 0 {
        return;
    }
    unsafe {
        let dentry: *const u8 = read0(sk, config!(offsets.unix_sock_path_dentry));
        ((*r).unix_ino, (*r).unix_dev) = inode_identity(read0(dentry, config!(offsets.dentry_d_inode)));
    }
}

/// A user sockaddr's family, and its address and port for AF_INET and AF_INET6; `None` when
/// it cannot be read.
#[inline(always)]
unsafe fn ip_sockaddr(uaddr: u64, len: u64) -> Option<SockAddr> {
    // sockaddr_in6 is the largest INET form: family(2) port(2) flowinfo(4) addr(16) scope(4).
    let mut buf = [0u8; 28];
    let n: u32 = if len < 28 { len as u32 } else { 28 };
    if n < 2 || uaddr == 0 {
        return None;
    }
    if unsafe { bpf_probe_read_user(buf.as_mut_ptr().cast(), n & 31, uaddr as *const _) } != 0 {
        return None;
    }
    let family = u16::from_ne_bytes([buf[0], buf[1]]);
    let mut a = SockAddr { family, ..SockAddr::default() };
    if family == AF_INET && n >= 8 {
        a.port = u16::from_be_bytes([buf[2], buf[3]]);
        a.addr[..4].copy_from_slice(&buf[4..8]);
    } else if family == AF_INET6 && n >= 24 {
        a.port = u16::from_be_bytes([buf[2], buf[3]]);
        a.addr.copy_from_slice(&buf[8..24]);
    }
    Some(a)
}

/// Parses a user sockaddr into the record: AF_INET/AF_INET6 address and port, AF_UNIX path.
#[inline(always)]
unsafe fn read_sockaddr(r: *mut SocketRecord, uaddr: u64, len: u64) -> bool {
    unsafe {
        let Some(a) = ip_sockaddr(uaddr, len) else { return false };
        (*r).addr = a;
        if a.family == AF_UNIX {
            let mut plen = len.saturating_sub(2);
            if plen > UNIX_PATH_CAP as u64 {
                plen = UNIX_PATH_CAP as u64;
            }
            let plen = (plen as u32) & 127;
            let plen = if plen > UNIX_PATH_CAP as u32 { UNIX_PATH_CAP as u32 } else { plen };
            if plen > 0 && bpf_probe_read_user((*r).unix_path.as_mut_ptr().cast(), plen, (uaddr + 2) as *const _) == 0 {
                (*r).unix_path_len = plen;
            }
        }
    }
    true
}

/// `type & SOCK_TYPE_MASK` is the socket type (the rest are SOCK_NONBLOCK and SOCK_CLOEXEC).
const SOCK_TYPE_MASK: u16 = 0xf;
const SOCK_RAW: u64 = 3;
/// The obsolete packet interface: `socket(AF_INET, SOCK_PACKET, ...)` makes a packet socket.
const SOCK_PACKET: u64 = 10;
const AF_PACKET: u64 = 17;

/// socket(family at 16, type at 24, protocol at 32).
#[tracepoint]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    let family: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let sock_type: u64 = unsafe { ctx.read_at(24) }.unwrap_or(0);
    let protocol: u64 = unsafe { ctx.read_at(32) }.unwrap_or(0);
    if let Some(p) = socket_call(family, sock_type, protocol, 0) {
        if traced() {
            remember(p);
        }
    }
    0
}

/// Only raw IP sockets and packet sockets are reported (what sniffing and forging packets take;
/// netlink's SOCK_RAW is plumbing), and the arguments are checked before anything else, so every
/// other socket() of the host costs a few instructions here and a map lookup at the exit.
#[inline(always)]
pub fn socket_call(family: u64, sock_type: u64, protocol: u64, flags: u32) -> Option<PendingSock> {
    let t = sock_type & u64::from(SOCK_TYPE_MASK);
    let raw_ip = t == SOCK_RAW && (family == u64::from(AF_INET) || family == u64::from(AF_INET6));
    let old_packet = t == SOCK_PACKET && family == u64::from(AF_INET);
    if !raw_ip && !old_packet && family != AF_PACKET {
        return None;
    }
    Some(call(sock_op::SOCKET, -1, family, (sock_type << 32) | (protocol & 0xffff), flags))
}

#[tracepoint]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_op::CONNECT);
    0
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_bind(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_op::BIND);
    0
}

#[tracepoint]
pub fn sys_exit_bind(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_listen(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_op::LISTEN);
    0
}

#[tracepoint]
pub fn sys_exit_listen(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_op::ACCEPT);
    0
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_op::ACCEPT);
    0
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}
