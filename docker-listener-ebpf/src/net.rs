//! `network`: sends on IP sockets, at their exit (`syscall_exit.rs`), either ABI, refused ones
//! included. Two things are reported, each with its own switch:
//!
//! - a DNS query: any send to port 53 (UDP or TCP; write, writev, sendto, sendmsg, sendmmsg,
//!   and the 32-bit socketcall's), with the head of the message (the daemon reads the question);
//! - a UDP flow: a send that names its destination (sendto, sendmsg with a name: no connect
//!   made it visible), the first time a socket sends to that destination (`FLOWS`).
//!
//! This is a program of its own (`raw_sys_exit_net`), which the exit program tail-calls for the
//! send calls, so that its verification does not add to the exit program's. Sends are among the
//! most frequent calls, so the checks go from cheap to dear: a send to the connected peer (write,
//! writev, send, a sendmsg without a name) can only be a DNS query from a process that connected
//! a socket to port 53 (`DNS_WRITERS`, set by the connect exit in `socket.rs`: a bit test); the
//! container filter is loads and a bit test (`file.rs`'s); a send to an address of its own that
//! this socket has reported as a flow ends at the flow map (`FLOWS`, keyed by the `struct file`)
//! before the socket is read; only what will be reported pays for the socket's state.
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_task_btf, bpf_probe_read_user},
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use docker_listener_common::{
    RecordKind, SockAddr,
    family::{
        net::{DNS_PORT, MMSG_MAX, NetRecord, PAYLOAD_CAP, op, what},
        switch,
    },
    flags,
    syscalls::{ia32, x64},
};

use crate::{
    file::{embedded_file, grown_table_file, maybe_traced},
    kernel::{AF_INET, AF_INET6, SocketState, file_of_fd, socket_of_file, socket_state},
    maps::{
        CONTAINERS, DNS_WRITERS, FLOW_KEY, FLOWS, FlowKey, NET_SCRATCH, bit_set, config, reserve, set_bit, submit,
        traced,
    },
    syscall_exit::{
        call_head, in_compat, reg,
        regs::{BP, BX, CX, DI, DX, ORIG_AX, R8, R9, R10, SI},
    },
};

const IPPROTO_UDP: u16 = 17;

/// Marks process `tgid` as one whose writes may be DNS queries (it connected a socket to port 53).
#[inline(always)]
pub fn mark_dns_writer(tgid: u32) {
    if config!(families) & switch::DNS != 0 {
        set_bit(&DNS_WRITERS, u64::from(tgid));
    }
}

/// One message: where its data is (a buffer, or an iovec array whose first buffer is read when
/// the message is reported), and the name given with it (0: none).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Message {
    buf: u64,
    len: u64,
    iov: u64,
    iov_count: u64,
    name: u64,
    name_len: u64,
}

impl Message {
    /// The message's first buffer and its length.
    #[inline(always)]
    unsafe fn buffer(&self, compat: bool) -> (u64, u64) {
        if self.iov == 0 { (self.buf, self.len) } else { unsafe { first_iov(self.iov, self.iov_count, compat) } }
    }
}

/// A user pointer-sized word of the caller's ABI at `at`.
#[inline(always)]
unsafe fn word(at: u64, compat: bool) -> u64 {
    unsafe {
        if compat {
            let mut v = 0u32;
            bpf_probe_read_user((&mut v as *mut u32).cast(), 4, at as *const _);
            u64::from(v)
        } else {
            let mut v = 0u64;
            bpf_probe_read_user((&mut v as *mut u64).cast(), 8, at as *const _);
            v
        }
    }
}

/// The first buffer of an iovec array (`struct iovec` / `compat_iovec`), or the second when
/// the first is two bytes and more follow: DNS over TCP's length prefix, which resolvers
/// (glibc) send as a buffer of its own before the message.
#[inline(always)]
unsafe fn first_iov(iov: u64, count: u64, compat: bool) -> (u64, u64) {
    if iov == 0 || count == 0 {
        return (0, 0);
    }
    let w = if compat { 4 } else { 8 };
    unsafe {
        let (buf, len) = (word(iov, compat), word(iov + w, compat));
        if len == 2 && count > 1 {
            return (word(iov + 2 * w, compat), word(iov + 3 * w, compat));
        }
        (buf, len)
    }
}

/// A `struct msghdr` (`compat_msghdr`): name, name length, iov, iov count, in one read.
#[inline(always)]
unsafe fn msghdr(at: u64, compat: bool) -> Message {
    unsafe {
        if compat {
            let mut h = [0u32; 4];
            bpf_probe_read_user(h.as_mut_ptr().cast(), 16, at as *const _);
            let [name, name_len, iov, count] = h.map(u64::from);
            Message { name, name_len, iov, iov_count: count, ..Message::default() }
        } else {
            let mut h = [0u64; 4];
            bpf_probe_read_user(h.as_mut_ptr().cast(), 32, at as *const _);
            Message { name: h[0], name_len: h[1] & 0xffff_ffff, iov: h[2], iov_count: h[3], ..Message::default() }
        }
    }
}

/// The system call's arguments as messages, into `m` (two at most): how many.
#[inline(always)]
unsafe fn messages(op: u32, a: &[u64; 6], compat: bool, m: *mut [Message; MMSG_MAX as usize]) -> u32 {
    unsafe {
        match op {
            op::WRITE => {
                (*m)[0] = Message { buf: a[1], len: a[2], ..Message::default() };
                1
            }
            op::WRITEV => {
                (*m)[0] = Message { iov: a[1], iov_count: a[2], ..Message::default() };
                1
            }
            op::SENDTO => {
                (*m)[0] = Message { buf: a[1], len: a[2], name: a[4], name_len: a[5], ..Message::default() };
                1
            }
            op::SENDMSG => {
                (*m)[0] = msghdr(a[1], compat);
                1
            }
            _ => {
                // sendmmsg(fd, msgvec, vlen, flags): `struct mmsghdr` is a msghdr and its sent
                // length (64 bytes; 32 for compat_mmsghdr).
                let size = if compat { 32 } else { 64 };
                let n = if a[2] < u64::from(MMSG_MAX) { a[2] as u32 } else { MMSG_MAX };
                (*m)[0] = msghdr(a[1], compat);
                if n > 1 {
                    (*m)[1] = msghdr(a[1] + size, compat);
                }
                n
            }
        }
    }
}

/// A `sockaddr_in` or `sockaddr_in6` from the caller's memory (any other family: none): its
/// first 8 bytes (family, port, an IPv4 address) in one read.
#[inline(always)]
unsafe fn user_sockaddr(at: u64, len: u64) -> Option<SockAddr> {
    if at == 0 || len < 8 {
        return None;
    }
    let mut head = [0u8; 8];
    unsafe {
        if bpf_probe_read_user(head.as_mut_ptr().cast(), 8, at as *const _) != 0 {
            return None;
        }
        let family = u16::from_ne_bytes([head[0], head[1]]);
        let mut out = SockAddr { family, port: u16::from_be_bytes([head[2], head[3]]), ..SockAddr::default() };
        if family == AF_INET {
            out.addr[..4].copy_from_slice(&head[4..]);
        } else if family == AF_INET6 && len >= 24 {
            bpf_probe_read_user(out.addr.as_mut_ptr().cast(), 16, (at + 8) as *const _);
        } else {
            return None;
        }
        Some(out)
    }
}

/// socketcall(2)'s sends (include/uapi/linux/net.h).
mod call {
    pub const SEND: u32 = 9;
    pub const SENDTO: u32 = 11;
    pub const SENDMSG: u32 = 16;
    pub const SENDMMSG: u32 = 20;
}

/// Whether the exit program should hand call `id` to this family's program: a send's number in
/// either ABI (this program tells which ABI it was), or socketcall with a send's call number.
#[inline(always)]
pub fn carries_send(id: i64, regs: *const u8) -> bool {
    match id {
        // Writes, the most frequent calls of all: only a process that connected a socket to
        // port 53 may be writing a DNS query (the number's other ABI's calls, exit, getpid,
        // stat and sched_get_priority_max, are nothing here either).
        x64::WRITE | x64::WRITEV | ia32::WRITE | ia32::WRITEV => {
            bit_set(&DNS_WRITERS, bpf_get_current_pid_tgid() >> 32)
        }
        // sendmsg's number is the 32-bit setgid16's (the privilege family's): which ABI.
        x64::SENDMSG => !in_compat(unsafe { bpf_get_current_task_btf() } as *const u8),
        x64::SENDTO | x64::SENDMMSG => true,
        ia32::SENDTO | ia32::SENDMSG | ia32::SENDMMSG => true,
        ia32::SOCKETCALL => {
            matches!(reg(regs, BX) as u32, call::SEND | call::SENDTO | call::SENDMSG | call::SENDMMSG)
        }
        _ => false,
    }
}

/// Whether `id` is in the exit program's bitmap for this family alone: not socketcall (also the
/// 32-bit socket code's), nor sendmsg's number (also the 32-bit setgid16's), whose other calls
/// go on to the other families. No other number of these is another family's in the other ABI
/// (x64 1, 20, 44, 307 are ia32 exit, getpid, prof, faccessat; ia32 4, 146, 345, 369, 370 are
/// x64 stat, sched_get_priority_max and unassigned).
#[inline(always)]
pub fn only_sends(id: i64) -> bool {
    matches!(
        id,
        x64::WRITE
            | x64::WRITEV
            | x64::SENDTO
            | x64::SENDMMSG
            | ia32::WRITE
            | ia32::WRITEV
            | ia32::SENDTO
            | ia32::SENDMSG
            | ia32::SENDMMSG
    )
}

/// The network family's program: `sys_exit` like the exit program, which tail-calls it for the
/// calls `carries_send` names (it is attached to nothing itself). Verified on its own.
#[btf_tracepoint(function = "sys_exit")]
pub fn raw_sys_exit_net(ctx: BtfTracePointContext) -> u32 {
    let regs: *const u8 = ctx.arg(0);
    let id = reg(regs, ORIG_AX) as i64;
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let compat = in_compat(task);
    let op = if compat {
        match id {
            ia32::WRITE => op::WRITE,
            ia32::WRITEV => op::WRITEV,
            ia32::SENDTO => op::SENDTO,
            ia32::SENDMSG => op::SENDMSG,
            ia32::SENDMMSG => op::SENDMMSG,
            ia32::SOCKETCALL => 0,
            _ => return 0,
        }
    } else {
        match id {
            x64::WRITE => op::WRITE,
            x64::WRITEV => op::WRITEV,
            x64::SENDTO => op::SENDTO,
            x64::SENDMSG => op::SENDMSG,
            x64::SENDMMSG => op::SENDMMSG,
            _ => return 0,
        }
    };
    let tgid: u32 = unsafe { crate::file::task_tgid(task) };
    // A send without a destination of its own goes to the connected peer: only a process that
    // connected a socket to port 53 may be sending a DNS query that way (a load and a test for
    // every write, send and sendmsg of the host's other processes).
    let dns_writer = bit_set(&DNS_WRITERS, u64::from(tgid));
    if (op == op::WRITE || op == op::WRITEV) && !dns_writer {
        return 0;
    }
    // The container filter, by loads (the exact one when there is something to report).
    // (Without the direct loads' offsets, the helper's filter, exact: `u64::MAX` says so.)
    let cgroup = if config!(offsets.direct_valid) != 0 {
        unsafe { maybe_traced(task) }
    } else if traced() {
        u64::MAX
    } else {
        0
    };
    if cgroup == 0 {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let a = if compat {
        let r = |off| reg(regs, off) & 0xffff_ffff;
        [r(BX), r(CX), r(DX), r(SI), r(DI), r(BP)]
    } else {
        [reg(regs, DI), reg(regs, SI), reg(regs, DX), reg(regs, R10), reg(regs, R8), reg(regs, R9)]
    };
    let (op, a) = if op != 0 {
        (op, a)
    } else {
        // socketcall(call, args): the call's arguments are 32-bit words in the caller's memory
        // (as many as the call takes: reading more could fault at the end of a page and lose
        // the call).
        let (op, size) = match a[0] as u32 {
            call::SEND => (op::SENDTO, 16),
            call::SENDTO => (op::SENDTO, 24),
            call::SENDMSG => (op::SENDMSG, 12),
            call::SENDMMSG => (op::SENDMMSG, 16),
            _ => return 0,
        };
        let mut w = [0u32; 6];
        if unsafe { bpf_probe_read_user(w.as_mut_ptr().cast(), size, a[1] as *const _) } != 0 {
            return 0;
        }
        // send(fd, buf, len, flags) is sendto without a name (words 4 and 5 stay 0).
        (op, w.map(u64::from))
    };
    let fl = if compat { flags::COMPAT } else { 0 };
    let Some(c) = NET_SCRATCH.get_ptr_mut(0) else { return 0 };
    unsafe {
        let fd = a[0] as i32;
        let file = fd_file(task, fd);
        if file.is_null() {
            return 0;
        }
        (*c).op = op;
        (*c).fd = fd;
        (*c).file = file as u64;
        (*c).cgroup = cgroup;
        (*c).ret = ret;
        (*c).fl = fl;
        (*c).dns_writer = u32::from(dns_writer);
        (*c).state = 0;
        let n = messages(op, &a, compat, &mut (*c).msgs);
        one(&mut *c, 0);
        if n > 1 {
            one(&mut *c, 1);
        }
    }
    0
}

/// The `struct file` of descriptor `fd` of the current task (`task`, BTF-typed from Linux 5.11; read through `Direct`, probe reads before).
#[inline(always)]
unsafe fn fd_file(task: *const u8, fd: i32) -> *const u8 {
    if fd < 0 {
        return core::ptr::null();
    }
    unsafe {
        if config!(offsets.direct_valid) == 0 {
            return file_of_fd(fd).unwrap_or(core::ptr::null());
        }
        let typed = embedded_file(task, fd as u32);
        if typed.is_null() { grown_table_file(task, fd as u32) } else { typed }
    }
}

/// A send being looked at (`NET_SCRATCH`): the call, its file, its messages, and the socket
/// once it was read (`state`: 0 not yet, 1 read, 2 not an IP socket).
#[repr(C)]
pub struct NetScratch {
    pub op: u32,
    pub fd: i32,
    pub file: u64,
    pub cgroup: u64,
    pub ret: i64,
    pub fl: u32,
    pub dns_writer: u32,
    pub state: u32,
    pub _pad: u32,
    pub st: SocketState,
    pub msgs: [Message; MMSG_MAX as usize],
}

/// The socket behind the call's file, read once for the call's messages: whether it is an IP
/// socket.
#[inline(always)]
unsafe fn ip_socket(c: &mut NetScratch) -> bool {
    unsafe {
        if c.state == 0 {
            c.state = 2;
            if let Some(sock) = socket_of_file(c.file as *const u8)
                && let Some(st) = socket_state(sock)
                && (st.local.family == AF_INET || st.local.family == AF_INET6)
            {
                c.st = st;
                c.state = 1;
            }
        }
        c.state == 1
    }
}

/// Message `index` of a send.
#[inline(always)]
fn one(c: &mut NetScratch, index: u32) {
    let m = c.msgs[(index & 1) as usize];
    let given = unsafe { user_sockaddr(m.name, m.name_len) };
    let on = config!(families);
    match given {
        // To the connected peer: a DNS query only from a process that connected to port 53.
        None if c.dns_writer == 0 || on & switch::DNS == 0 => return,
        // To an address of its own: a flow this socket has reported makes nothing more, which
        // the flow map says before the socket is read.
        Some(d) if d.port != DNS_PORT => {
            if on & switch::UDP_FLOW == 0 {
                return;
            }
            let Some(key) = FLOW_KEY.get_ptr_mut(0) else { return };
            unsafe {
                *key = FlowKey { sock: c.file, addr: d.addr, port: d.port, family: d.family, _pad: 0 };
                if FLOWS.get(&*key).is_some() {
                    return;
                }
            }
        }
        _ => {}
    }
    // Something to report, if the process is in a container (exactly) and this is an IP socket.
    if config!(trace_host) == 0 && c.cgroup != u64::MAX && unsafe { CONTAINERS.get(&c.cgroup) }.is_none() {
        return;
    }
    if !unsafe { ip_socket(c) } {
        return;
    }
    let explicit = given.is_some();
    let dst = given.unwrap_or(c.st.remote);
    let what = if dst.port == DNS_PORT && on & switch::DNS != 0 {
        what::DNS
    } else if explicit && c.st.protocol == IPPROTO_UDP && on & switch::UDP_FLOW != 0 {
        if let Some(key) = FLOW_KEY.get_ptr_mut(0) {
            let _ = FLOWS.insert(unsafe { &*key }, &1, 0);
        }
        what::FLOW
    } else {
        return;
    };
    if !crate::budget::admit() {
        return;
    }
    let (buf, len) = unsafe { m.buffer(c.fl & flags::COMPAT != 0) };
    let Some((mut entry, header)) = reserve::<NetRecord>(RecordKind::Network) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, c.op, c.ret, c.fl);
        (*r).what = what;
        (*r).fd = c.fd;
        (*r).sock_type = c.st.sock_type;
        (*r).protocol = c.st.protocol;
        (*r).index = index;
        (*r).len = len;
        (*r).explicit = u32::from(explicit);
        (*r).dst = dst;
        (*r).src = c.st.local;
        (*r).payload_len = 0;
        if what == what::DNS && buf != 0 {
            let cap = (PAYLOAD_CAP - 1) as u64;
            let n = (if len < cap { len } else { cap }) as u32;
            // black_box: the mask must be applied to the register the call takes (6.1's
            // verifier forgets a bound checked before the value was spilled to the stack).
            let n = core::hint::black_box(n) & (PAYLOAD_CAP as u32 - 1);
            if n > 0 && bpf_probe_read_user((*r).payload.as_mut_ptr().cast(), n, buf as *const _) == 0 {
                (*r).payload_len = n;
            }
        }
    }
    submit(entry);
}
