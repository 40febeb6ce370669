//! `network`: sends on IP sockets, at their exit (`syscall_exit.rs`), either ABI, refused ones
//! included. Two things are reported, each with its own switch:
//!
//! - a DNS query: any send to port 53 (UDP or TCP; write, writev, sendto, sendmsg, sendmmsg,
//!   and the 32-bit socketcall's), with the head of the message (the daemon reads the question);
//! - a UDP flow: a send that names its destination (sendto, sendmsg with a name: no connect
//!   made it visible), the first time a socket sends to that destination (`FLOWS`).
//!
//! This is a program of its own (`raw_sys_exit_net`), which the exit program tail-calls for the
//! send calls, so that its verification does not add to the exit program's. write and writev
//! are what every process does most: only those of processes that connected a socket to port
//! 53 (`DNS_WRITERS`, set by the connect exit in `socket.rs`) go further than a bit test. Every candidate's descriptor is checked to be a socket, and its destination is
//! the kernel's (the connected peer) or the call's own argument.
use aya_ebpf::{
    helpers::generated::{bpf_get_current_task_btf, bpf_probe_read_user},
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
    kernel::{AF_INET, AF_INET6, SocketState, socket_of_fd, socket_state},
    maps::{DNS_WRITERS, FLOW_KEY, FLOWS, FlowKey, NET_SCRATCH, bit_set, config, reserve, set_bit, submit, traced},
    syscall_exit::{
        call_head, in_compat, reg,
        regs::{BP, BX, CX, DI, DX, ORIG_AX, R8, R9, R10, SI},
    },
};

const IPPROTO_UDP: u16 = 17;

/// A send being looked at (`NET_SCRATCH`): the call, its socket, its messages.
#[repr(C)]
pub struct NetScratch {
    pub op: u32,
    pub fd: i32,
    pub sock: u64,
    pub ret: i64,
    pub fl: u32,
    pub _pad: u32,
    pub st: SocketState,
    pub msgs: [Message; MMSG_MAX as usize],
}

/// Marks process `tgid` as one whose writes may be DNS queries (it connected a socket to port 53).
#[inline(always)]
pub fn mark_dns_writer(tgid: u32) {
    if config!(families) & switch::DNS != 0 {
        set_bit(&DNS_WRITERS, u64::from(tgid));
    }
}

/// One message: its first buffer, the length asked, and the name given with it (0: none).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Message {
    buf: u64,
    len: u64,
    name: u64,
    name_len: u64,
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

/// A `struct msghdr` (`compat_msghdr`): name, name length, iov, iov count.
#[inline(always)]
unsafe fn msghdr(at: u64, compat: bool) -> Message {
    let w = if compat { 4 } else { 8 };
    unsafe {
        let name = word(at, compat);
        let mut name_len = 0u32;
        bpf_probe_read_user((&mut name_len as *mut u32).cast(), 4, (at + w) as *const _);
        let (buf, len) = first_iov(word(at + 2 * w, compat), word(at + 3 * w, compat), compat);
        Message { buf, len, name, name_len: u64::from(name_len) }
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
                let (buf, len) = first_iov(a[1], a[2], compat);
                (*m)[0] = Message { buf, len, ..Message::default() };
                1
            }
            op::SENDTO => {
                (*m)[0] = Message { buf: a[1], len: a[2], name: a[4], name_len: a[5] };
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

/// A `sockaddr_in` or `sockaddr_in6` from the caller's memory (any other family: none).
#[inline(always)]
unsafe fn user_sockaddr(at: u64, len: u64) -> Option<SockAddr> {
    if at == 0 || len < 8 {
        return None;
    }
    let mut family = 0u16;
    unsafe {
        if bpf_probe_read_user((&mut family as *mut u16).cast(), 2, at as *const _) != 0 {
            return None;
        }
        let mut port = 0u16;
        bpf_probe_read_user((&mut port as *mut u16).cast(), 2, (at + 2) as *const _);
        let mut out = SockAddr { family, port: u16::from_be(port), ..SockAddr::default() };
        if family == AF_INET {
            bpf_probe_read_user(out.addr.as_mut_ptr().cast(), 4, (at + 4) as *const _);
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
        x64::WRITE | x64::WRITEV | x64::SENDTO | x64::SENDMSG | x64::SENDMMSG => true,
        ia32::WRITE | ia32::WRITEV | ia32::SENDTO | ia32::SENDMSG | ia32::SENDMMSG => true,
        ia32::SOCKETCALL => {
            matches!(reg(regs, BX) as u32, call::SEND | call::SENDTO | call::SENDMSG | call::SENDMMSG)
        }
        _ => false,
    }
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
    if op == op::WRITE || op == op::WRITEV {
        // A load or two for every write of the host: the process's bit first.
        let tgid: u32 =
            unsafe { core::ptr::read_volatile(task.wrapping_add(config!(offsets.task_tgid) as usize).cast()) };
        if !bit_set(&DNS_WRITERS, u64::from(tgid)) {
            return 0;
        }
    }
    if !traced() {
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
    on_send(op, &a, ret, if compat { flags::COMPAT } else { 0 });
    0
}

/// A traced process's send: reported when it is a DNS query or a new UDP flow. Its state is in
/// a per-CPU scratch map (`NET_SCRATCH`): a program's frames share 512 bytes of stack.
#[inline(always)]
fn on_send(op: u32, a: &[u64; 6], ret: i64, fl: u32) {
    let Some(c) = NET_SCRATCH.get_ptr_mut(0) else { return };
    let fd = a[0] as i32;
    let Some(sock) = (unsafe { socket_of_fd(fd) }) else { return };
    unsafe {
        if !socket_into(sock, &mut (*c).st) {
            return;
        }
        if (*c).st.local.family != AF_INET && (*c).st.local.family != AF_INET6 {
            return;
        }
        (*c).op = op;
        (*c).fd = fd;
        (*c).sock = sock as u64;
        (*c).ret = ret;
        (*c).fl = fl;
        let n = messages(op, a, fl & flags::COMPAT != 0, &mut (*c).msgs);
        one(&*c, 0);
        if n > 1 {
            one(&*c, 1);
        }
    }
}

/// `socket_state` written in place.
#[inline(always)]
unsafe fn socket_into(sock: *const u8, out: &mut SocketState) -> bool {
    match unsafe { socket_state(sock) } {
        Some(st) => {
            *out = st;
            true
        }
        None => false,
    }
}

/// Message `index` of a send.
#[inline(always)]
fn one(c: &NetScratch, index: u32) {
    let m = &c.msgs[(index & 1) as usize];
    let given = unsafe { user_sockaddr(m.name, m.name_len) };
    let explicit = given.is_some();
    let dst = given.unwrap_or(c.st.remote);
    let on = config!(families);
    let what = if dst.port == DNS_PORT && on & switch::DNS != 0 {
        what::DNS
    } else if explicit && c.st.protocol == IPPROTO_UDP && on & switch::UDP_FLOW != 0 {
        let Some(key) = FLOW_KEY.get_ptr_mut(0) else { return };
        unsafe {
            *key = FlowKey { sock: c.sock, addr: dst.addr, port: dst.port, family: dst.family, _pad: 0 };
            if FLOWS.get(&*key).is_some() {
                return;
            }
            let _ = FLOWS.insert(&*key, &1, 0);
        }
        what::FLOW
    } else {
        return;
    };
    let Some((mut entry, header)) = reserve::<NetRecord>(RecordKind::Network) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, c.op, c.ret, c.fl);
        (*r).what = what;
        (*r).fd = c.fd;
        (*r).sock_type = c.st.sock_type;
        (*r).protocol = c.st.protocol;
        (*r).index = index;
        (*r).len = m.len;
        (*r).explicit = u32::from(explicit);
        (*r).dst = dst;
        (*r).src = c.st.local;
        (*r).payload_len = 0;
        if what == what::DNS && m.buf != 0 {
            let cap = (PAYLOAD_CAP - 1) as u64;
            let len = (if m.len < cap { m.len } else { cap }) as u32;
            // black_box: the mask must be applied to the register the call takes (6.1's
            // verifier forgets a bound checked before the value was spilled to the stack).
            let len = core::hint::black_box(len) & (PAYLOAD_CAP as u32 - 1);
            if len > 0 && bpf_probe_read_user((*r).payload.as_mut_ptr().cast(), len, m.buf as *const _) == 0 {
                (*r).payload_len = len;
            }
        }
    }
    submit(entry);
}
