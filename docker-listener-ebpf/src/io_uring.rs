//! What io_uring does without system calls the socket programs see.
//!
//! - `sock:inet_sock_set_state`: a TCP socket going from CLOSE to SYN_SENT is a connect, whatever
//!   made it: a connect(2) (already reported by its system call, so skipped here: a native one's
//!   pairing entry is in flight on this thread; a 32-bit one is recognised by its number in the
//!   saved registers, in the `_compat` variant loaded when `compat.rs` reports 32-bit connects),
//!   a TCP Fast Open `sendto`/`sendmsg`, or an io_uring `IORING_OP_CONNECT`, run inline by the
//!   submitting task or by one of the process's io-wq worker threads, in the process's cgroup
//!   either way.
//! - `io_uring:io_uring_create`: a traced process set up a ring. What else it does through the
//!   ring (accept, send, file access) no system call shows: the event makes the blind spot
//!   visible.
//! - `io_uring:io_uring_submit_req`: a request was submitted. A rename, unlink or link by name
//!   (`IORING_OP_RENAMEAT`, `_UNLINKAT`, `_LINKAT`) of a traced process has its record made
//!   from the request's names, kept until it completes.
//! - `io_uring:io_uring_complete`: a request completed. A change by name kept at its submission
//!   is sent with its result. An open (`IORING_OP_OPENAT`,
//!   `IORING_OP_OPENAT2`) that made a descriptor, or put its file in a slot of the ring's own
//!   file table (a fixed file, which only the ring's requests use), goes to the file-access
//!   family, which matches the file as it matches an open(2)'s (`file::on_uring_open`).
//! - `io_uring:io_uring_cqe_overflow`: a completion found the completion queue full; where such
//!   completions are not traced (6.18), the ring's first one is an event: the blind spot told.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, raw_tracepoint, tracepoint},
    maps::LruHashMap,
    programs::{RawTracePointContext, TracePointContext},
};
use docker_listener_common::{
    RecordHeader, RecordKind, SockAddr,
    family::{
        file::{FIXED_FILE, REQ_F_CQE_SKIP, op as file_op, uring_op},
        io_uring::IoUringRecord,
        socket::{SocketRecord, sock_op},
    },
    flags,
};

use crate::{
    compat::in_reported_connect,
    kernel::{
        AF_INET, AF_INET6, AF_UNIX, current_task, exe_identity, exec_id, in_compat_syscall, process_start, read0,
    },
    maps::{PENDING_SOCK, config, reserve, submit, traced},
};

const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;
const IPPROTO_TCP: u16 = 6;
const SOCK_STREAM: u16 = 1;

/// inet_sock_set_state: skaddr at 8, oldstate at 16, newstate at 20, sport at 24, dport at 26
/// (host order), family at 28, protocol at 30, saddr at 32, daddr at 36, saddr_v6 at 40,
/// daddr_v6 at 56 (checked against tracefs by the daemon before it attaches this).
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    on_state_change::<false>(&ctx)
}

/// The same, for when the 32-bit connects are reported by `compat.rs`: it reads the task's
/// saved registers (`bpf_task_pt_regs`, Linux 5.15; before it, at the top of the task's stack),
/// which the plain one does without.
#[tracepoint]
pub fn inet_sock_set_state_compat(ctx: TracePointContext) -> u32 {
    on_state_change::<true>(&ctx)
}

#[inline(always)]
fn on_state_change<const COMPAT: bool>(ctx: &TracePointContext) -> u32 {
    let old: i32 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let new: i32 = unsafe { ctx.read_at(20) }.unwrap_or(0);
    if old != TCP_CLOSE || new != TCP_SYN_SENT || !traced() {
        return 0;
    }
    if unsafe { PENDING_SOCK.get(&bpf_get_current_pid_tgid()) }.is_some() {
        // A native connect(2) in flight: its own record says it.
        return 0;
    }
    if COMPAT && in_reported_connect() {
        return 0;
    }
    let family: u16 = unsafe { ctx.read_at(28) }.unwrap_or(0);
    let protocol: u16 = unsafe { ctx.read_at(30) }.unwrap_or(0);
    if protocol != IPPROTO_TCP {
        return 0;
    }
    if !crate::budget::admit() {
        return 0;
    }
    let Some((mut entry, header)) = reserve::<SocketRecord>(RecordKind::Socket) else { return 0 };
    let r = entry.as_mut_ptr();
    unsafe {
        connect_head(r, header, SOCK_STREAM, IPPROTO_TCP, flags::TCP_STATE);
        let mut local = SockAddr { family, port: ctx.read_at(24).unwrap_or(0), ..SockAddr::default() };
        let mut remote = SockAddr { family, port: ctx.read_at(26).unwrap_or(0), ..SockAddr::default() };
        if family == AF_INET {
            local.addr[..4].copy_from_slice(&ctx.read_at::<[u8; 4]>(32).unwrap_or([0; 4]));
            remote.addr[..4].copy_from_slice(&ctx.read_at::<[u8; 4]>(36).unwrap_or([0; 4]));
        } else if family == AF_INET6 {
            local.addr = ctx.read_at(40).unwrap_or([0; 16]);
            remote.addr = ctx.read_at(56).unwrap_or([0; 16]);
        }
        (*r).addr = remote;
        (*r).local = local;
    }
    submit(entry);
    0
}

/// A connect's completion (`IORING_OP_CONNECT`) by a traced process: a Unix socket's (no system
/// call carries it, and no TCP state change: the Docker socket reached through a ring) is
/// reported with the listener it reached; others are the TCP-state program's.
#[inline(always)]
fn on_uring_connect(req: *const u8) {
    if config!(offsets.io_connect_valid) == 0 || !traced() {
        return;
    }
    let res: i32 = unsafe { read0(req, config!(offsets.io_kiocb_res)) };
    let file: *const u8 = unsafe { read0(req, config!(offsets.io_kiocb_file)) };
    let sock: *const u8 = unsafe { read0(file, config!(offsets.file_private_data)) };
    let sk: *const u8 = unsafe { read0(sock, config!(offsets.socket_sk)) };
    let family: u16 = unsafe { read0(sk, config!(offsets.sk_family)) };
    // (A refused one has no listener to name: left out.)
    // Over its budget, a container's first connect to each listener still goes
    // (`budget::admit_connect`).
    if res != 0
        || sk.is_null()
        || family != AF_UNIX
        || !crate::budget::admit_connect(|| unsafe { crate::socket::unix_listener(sk) })
    {
        return;
    }
    let Some((mut entry, header)) = reserve::<SocketRecord>(RecordKind::Socket) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        connect_head(r, header, read0(sock, config!(offsets.socket_type)), 0, flags::URING);
        (*r).addr = SockAddr { family: AF_UNIX, ..SockAddr::default() };
        (*r).local = SockAddr::default();
        // (The request's own file: the socket the ring connected.)
        crate::socket::unix_peer_path(r, sock, true);
    }
    submit(entry);
}

/// The head of a connect seen without its system call (no descriptor, succeeded or under way),
/// by the current task: all but the addresses.
#[inline(always)]
unsafe fn connect_head(r: *mut SocketRecord, header: RecordHeader, sock_type: u16, protocol: u16, how: u32) {
    let task = current_task();
    unsafe {
        (*r).header = header;
        (*r).op = sock_op::CONNECT;
        (*r).fd = -1;
        (*r).ret = 0;
        (*r).start_ns = process_start(task);
        (*r).exec_id = exec_id(task);
        ((*r).exe_ino, (*r).exe_dev) = exe_identity(task);
        (*r).sock_type = sock_type;
        (*r).protocol = protocol;
        (*r).flags = how;
        (*r).backlog = 0;
        (*r).unix_path_len = 0;
        (*r).peer_path_len = 0;
        (*r).unix_dev = 0;
        (*r).unix_pad = 0;
        (*r).unix_ino = 0;
    }
}

/// io_uring_create: fd at 8, ctx at 16, sq_entries at 24, cq_entries at 28, flags at 32
/// (checked against tracefs by the daemon before it attaches this).
#[tracepoint]
pub fn io_uring_create(ctx: TracePointContext) -> u32 {
    if !traced() {
        return 0;
    }
    let compat = if unsafe { in_compat_syscall(current_task()) } { flags::COMPAT } else { 0 };
    let (fd, sq, cq, setup) = unsafe {
        (
            ctx.read_at(8).unwrap_or(-1),
            ctx.read_at(24).unwrap_or(0),
            ctx.read_at(28).unwrap_or(0),
            ctx.read_at(32).unwrap_or(0),
        )
    };
    send_ring_record(fd, (sq, cq, setup), compat);
    0
}

/// Sends an `IoUringRecord` of the current process: the ring's descriptor, its (submission
/// entries, completion entries, setup flags) and the record's flags.
#[inline(always)]
fn send_ring_record(fd: i32, (sq_entries, cq_entries, setup_flags): (u32, u32, u32), flags: u32) {
    let Some((mut entry, header)) = reserve::<IoUringRecord>(RecordKind::IoUring) else { return };
    let r = entry.as_mut_ptr();
    let task = current_task();
    unsafe {
        (*r).header = header;
        (*r).start_ns = process_start(task);
        (*r).exec_id = exec_id(task);
        (*r).fd = fd;
        (*r).sq_entries = sq_entries;
        (*r).cq_entries = cq_entries;
        (*r).setup_flags = setup_flags;
        (*r).flags = flags;
        ((*r).exe_ino, (*r).exe_dev) = exe_identity(task);
    }
    submit(entry);
}

/// io_uring_cqe_overflow, as a raw tracepoint (`TP_PROTO(ctx, user_data, res, cflags, ocqe)`
/// on 6.1 and 6.18): a completion found its ring's completion queue full and went to the
/// overflow list. Where the kernel traces `io_uring_complete` only for a completion that got a
/// place (6.18), such completions are not seen (`io_uring_complete` above): a process that leaves
/// its completions unread would open and change files unseen. So the first overflow of each
/// ring of a traced process is an event of its own (an `IoUringRecord` with `CQ_OVERFLOW`):
/// the blind spot is told, not silent. Rare: the container filter first.
#[raw_tracepoint(tracepoint = "io_uring_cqe_overflow")]
pub fn io_uring_cqe_overflow(ctx: RawTracePointContext) -> u32 {
    if !traced() {
        return 0;
    }
    let ring: u64 = ctx.arg(0);
    if unsafe { OVERFLOWED.get(&ring) }.is_some() {
        return 0;
    }
    let _ = OVERFLOWED.insert(&ring, &1, 0);
    if !crate::budget::admit() {
        return 0;
    }
    send_ring_record(-1, (0, 0, 0), flags::CQ_OVERFLOW);
    0
}

/// Rings (their `struct io_ring_ctx`) whose first overflow was reported; the least recently
/// used make room (a ring freed and its address reused is reported again, at worst).
#[map]
static OVERFLOWED: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);

/// io_uring_complete, as a raw tracepoint: the kernel builds no trace record for it (a classic
/// tracepoint's record doubled the cost of a completion that does nothing, a NOP's), and the
/// program reads only the request, the one argument every kernel passes at the same place
/// (`TP_PROTO(ctx, req, ...)`: 6.1 passes the result next, 6.18 a `struct io_uring_cqe *`).
/// Every completion of every ring of the host comes here: the operation code (one helper read)
/// rejects all but opens and changes by name. A change's record kept at its submission goes
/// with its result. An open's file is matched as an open(2)'s is; when no sensitive file is
/// there (the slot or descriptor may hold another file by now), or the open was refused, its
/// record by name kept at submission goes instead, for the daemon to resolve.
#[raw_tracepoint(tracepoint = "io_uring_complete")]
pub fn io_uring_complete(ctx: RawTracePointContext) -> u32 {
    let off = crate::maps::config!(offsets.io_kiocb_opcode);
    if off == 0 {
        return 0;
    }
    let req: u64 = ctx.arg(1);
    let opcode: u8 = unsafe { crate::kernel::read0(req as *const u8, off) };
    let op = match opcode {
        uring_op::CONNECT => {
            on_uring_connect(req as *const u8);
            return 0;
        }
        uring_op::OPENAT => file_op::URING_OPENAT,
        uring_op::OPENAT2 => file_op::URING_OPENAT2,
        uring_op::RENAMEAT | uring_op::UNLINKAT | uring_op::LINKAT => {
            let res: i32 =
                unsafe { crate::kernel::read0(req as *const u8, crate::maps::config!(offsets.io_kiocb_res)) };
            crate::file::on_uring_change(req, change_op(opcode), res);
            return 0;
        }
        _ => return 0,
    };
    let named = if opcode == uring_op::OPENAT { file_op::URING_OPENAT_NAMED } else { file_op::URING_OPENAT2_NAMED };
    let key = req;
    let req = req as *const u8;
    let res: i32 = unsafe { crate::kernel::read0(req, crate::maps::config!(offsets.io_kiocb_res)) };
    if res < 0 {
        // Refused (as open(2)'s refused opens are reported); any other failure is no event.
        if res == -1 || res == -13 || res == -30 {
            crate::file::on_uring_change(key, named, res);
        } else {
            crate::file::forget_uring_change(key);
        }
        return 0;
    }
    // An open into the ring's file table (`sqe->file_index`): no descriptor, a slot.
    let file_slot: u32 = if crate::maps::config!(offsets.io_open_file_slot) != 0 {
        unsafe { crate::kernel::read0(req, crate::maps::config!(offsets.io_open_file_slot)) }
    } else {
        0
    };
    if !crate::file::uring_opens_wanted() {
        crate::file::forget_uring_change(key);
        return 0;
    }
    if file_slot != 0 && crate::maps::config!(offsets.io_fixed_valid) == 0 {
        // The ring's table cannot be read here: the open's name goes to the daemon.
        crate::file::on_uring_change(key, named, res);
        return 0;
    }
    let (fd, file, flags) = if file_slot == 0 {
        (res, unsafe { crate::kernel::file_of_fd(res) }, 0)
    } else {
        // The slot named (file_index - 1), or the one the kernel picked, which is the result.
        let slot = if file_slot == IORING_FILE_INDEX_ALLOC { res as u32 } else { file_slot - 1 };
        (slot as i32, unsafe { fixed_file(req, slot) }, FIXED_FILE)
    };
    // Opaque copies: both ways reach the match as one state (the verifier walks it once; with
    // the two ways' constants it walked it twice, 136,671 instructions on 6.1 against 59,019).
    let opaque = |v: usize| crate::path::opaque(v);
    let matched = match file {
        Some(file) => crate::file::on_uring_open(
            op,
            opaque(fd as usize) as i32,
            opaque(file as usize) as *const u8,
            opaque(flags as usize) as u32,
        ),
        None => false,
    };
    if matched {
        crate::file::forget_uring_change(key);
    } else {
        // Not a sensitive file there now: the open's name goes to the daemon.
        crate::file::on_uring_change(key, named, res);
    }
    0
}

/// io_uring_submit_req, as a raw tracepoint (`TP_PROTO(req)` on 6.1 and 6.18): a request was
/// submitted, its arguments prepared. A rename, unlink or link by name has its names copied
/// into the kernel now and freed when it runs, so its record is made here, from the request's
/// command (`io_rename`, `io_link`, `io_unlink`), and sent at its completion with the result
/// (`file::on_uring_submit`, `on_uring_change`). A request with `IOSQE_CQE_SKIP_SUCCESS` has no
/// completion to see when it succeeds: such a change is sent now, its result unknown, and such
/// an open (else matched at its completion by its file) too, by its name. Every submission of
/// every ring of the host comes here: the operation code (one helper read) rejects all but
/// those five.
#[raw_tracepoint(tracepoint = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: RawTracePointContext) -> u32 {
    use crate::{kernel::read0, maps::config};
    if config!(offsets.io_changes_valid) == 0 {
        return 0;
    }
    let req: u64 = ctx.arg(0);
    let opcode: u8 = unsafe { read0(req as *const u8, config!(offsets.io_kiocb_opcode)) };
    if !matches!(
        opcode,
        uring_op::OPENAT | uring_op::OPENAT2 | uring_op::UNLINKAT | uring_op::RENAMEAT | uring_op::LINKAT
    ) {
        return 0;
    }
    // Whatever an earlier request at this address left (one whose completion was not seen) is
    // not this one's.
    crate::file::forget_uring_change(req);
    let cmd = (req as *const u8).wrapping_add(config!(offsets.io_kiocb_cmd) as usize);
    let int = |off: u32| -> u64 { unsafe { read0::<i32>(cmd, off) as i64 as u64 } };
    // A `struct filename *`'s string.
    let name = |off: u32| -> u64 {
        let f: *const u8 = unsafe { read0(cmd, off) };
        unsafe { read0(f, config!(offsets.filename_name)) }
    };
    // No completion entry when it succeeds: nothing will show its end.
    let flags: u32 = unsafe { read0(req as *const u8, config!(offsets.io_kiocb_flags)) };
    let unseen_end = flags & REQ_F_CQE_SKIP != 0;
    let (op, a) = match opcode {
        // An open is matched at its completion by the file it made. Its record by name is made
        // now too: sent at once when its completion will not be seen, else kept and sent at the
        // completion if the file there is no sensitive one (the descriptor or slot may hold
        // another file by then: completions are posted after the whole submitted batch ran).
        // The daemon resolves it as a refused open's.
        uring_op::OPENAT | uring_op::OPENAT2 => {
            let how = config!(offsets.io_open_how);
            (
                if opcode == uring_op::OPENAT { file_op::URING_OPENAT_NAMED } else { file_op::URING_OPENAT2_NAMED },
                [
                    int(config!(offsets.io_open_dfd)),
                    name(config!(offsets.io_open_filename)),
                    unsafe { read0::<u64>(cmd, how) },
                    unsafe { read0::<u64>(cmd, how + 8) },
                    // `open_how.resolve` (0 for IORING_OP_OPENAT).
                    unsafe { read0::<u64>(cmd, how + 16) },
                    0,
                ],
            )
        }
        uring_op::UNLINKAT => (
            change_op(opcode),
            [
                int(config!(offsets.io_unlink_dfd)),
                name(config!(offsets.io_unlink_filename)),
                int(config!(offsets.io_unlink_flags)),
                0,
                0,
                0,
            ],
        ),
        uring_op::RENAMEAT | uring_op::LINKAT => (
            change_op(opcode),
            [
                int(config!(offsets.io_rename_old_dfd)),
                name(config!(offsets.io_rename_oldpath)),
                int(config!(offsets.io_rename_new_dfd)),
                name(config!(offsets.io_rename_newpath)),
                int(config!(offsets.io_rename_flags)),
                0,
            ],
        ),
        _ => return 0,
    };
    // Opaque copies: every way here reaches the record's walk as one state (the verifier
    // walks it once, not once per operation).
    let opaque = |v: usize| crate::path::opaque(v);
    crate::file::on_uring_submit(req, opaque(op as usize) as u32, &a, opaque(unseen_end as usize) != 0);
    0
}

/// The `PathRecord` operation of a ring's change by name.
#[inline(always)]
fn change_op(opcode: u8) -> u32 {
    match opcode {
        uring_op::RENAMEAT => file_op::URING_RENAMEAT,
        uring_op::LINKAT => file_op::URING_LINKAT,
        _ => file_op::URING_UNLINKAT,
    }
}

/// `sqe->file_index` asking the kernel to pick a free slot.
const IORING_FILE_INDEX_ALLOC: u32 = u32::MAX;

/// The file in slot `slot` of the request's ring's file table (`KernelOffsets::io_fixed_*`).
#[inline(always)]
unsafe fn fixed_file(req: *const u8, slot: u32) -> Option<*const u8> {
    use crate::{kernel::read0, maps::config};
    unsafe {
        let ctx: *const u8 = read0(req, config!(offsets.io_kiocb_ctx));
        let slots: *const u8 = read0(ctx, config!(offsets.io_ctx_fixed_files));
        let mut entry: *const u8 = slots.wrapping_add(slot as usize * 8);
        if config!(offsets.io_fixed_indirect) != 0 {
            entry = read0(entry, 0);
        }
        let ptr: u64 = read0(entry, config!(offsets.io_fixed_file_ptr));
        // The pointer's low bits are flags (FFS_NOWAIT, FFS_ISREG...): files are aligned.
        let file = (ptr & !7) as *const u8;
        (!file.is_null() && !entry.is_null()).then_some(file)
    }
}
