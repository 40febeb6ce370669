//! The 32-bit (ia32) system call ABI's execs and socket calls on x86-64: a static i386 program,
//! or `int $0x80` from a 64-bit one, makes system calls the `syscalls:sys_enter_*`/`sys_exit_*`
//! tracepoints never see. The raw exit program (`syscall_exit.rs`) sees every system call of
//! every ABI and hands the 32-bit socket calls (direct ones and those multiplexed through
//! `socketcall(2)`) and failed execs to this module, which reports them through the same code as
//! the native ones (`socket::report_call`, `exec::report_failed`). A successful 32-bit exec is
//! reported by `sched_process_exec`, like every exec.
//!
//! A 32-bit call's arguments are still in the saved registers (ebx, ecx, edx) at its exit: the
//! call does not change them, and the memory they point to is read at the exit as the native
//! programs read theirs.
use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_probe_read_user, bpf_task_pt_regs};
use docker_listener_common::{COMPAT_EXEC, family::socket::sock_op, flags};

use crate::{
    exec::report_failed,
    kernel::{current_task, in_compat_syscall, read},
    maps::{PendingExec, PendingSock, config},
    socket::{call, report_call, socket_call},
    syscall_exit::regs::{BX, CS, ORIG_AX},
};

use docker_listener_common::syscalls::ia32 as nr;

/// socketcall(2)'s call numbers (include/uapi/linux/net.h).
mod call {
    pub const SOCKET: u32 = 1;
    pub const BIND: u32 = 2;
    pub const CONNECT: u32 = 3;
    pub const LISTEN: u32 = 4;
    pub const ACCEPT: u32 = 5;
    pub const ACCEPT4: u32 = 18;
}

/// Whether the setting of the native program for this call is on (`ebpf.exec`, `.connect`...).
#[inline(always)]
fn on(bit: u32) -> bool {
    config!(compat_ops) & bit != 0
}

/// `p` if socket operation `op`'s setting is on.
#[inline(always)]
fn sock(op: u32, p: impl FnOnce() -> Option<PendingSock>) -> Option<PendingSock> {
    if on(1 << op) { p() } else { None }
}

/// socketcall(call, args): the call's arguments are 32-bit words in the caller's memory (as
/// many as the call takes: reading more could fault at the end of a page and lose the call).
#[inline(always)]
unsafe fn socketcall(number: u32, args: u64) -> Option<PendingSock> {
    let (op, words) = match number {
        call::SOCKET => (sock_op::SOCKET, 3),
        call::BIND => (sock_op::BIND, 3),
        call::CONNECT => (sock_op::CONNECT, 3),
        call::LISTEN => (sock_op::LISTEN, 2),
        call::ACCEPT | call::ACCEPT4 => (sock_op::ACCEPT, 3),
        _ => return None,
    };
    if !on(1 << op) {
        return None;
    }
    let mut a = [0u32; 3];
    let size = if words == 2 { 8 } else { 12 };
    if unsafe { bpf_probe_read_user(a.as_mut_ptr().cast(), size, args as *const _) } != 0 {
        return None;
    }
    let (a0, a1, a2) = (a[0], u64::from(a[1]), u64::from(a[2]));
    match op {
        sock_op::SOCKET => socket_call(u64::from(a0), a1, a2, flags::COMPAT),
        sock_op::LISTEN => Some(call(op, a0 as i32, 0, a1, flags::COMPAT)),
        _ => Some(call(op, a0 as i32, a1, a2, flags::COMPAT)),
    }
}

/// A 32-bit exec or socket call at its exit (`syscall_exit.rs` routes them here): `a` holds
/// its first arguments (ebx, ecx, edx).
#[inline(always)]
pub fn on_exit(id: i64, a: &[u64; 6], ret: i64) {
    let (a1, a2, a3) = (a[0], a[1], a[2]);
    unsafe {
        if id == nr::EXECVE || id == nr::EXECVEAT {
            // A successful exec was reported by sched_process_exec (the exit of one that
            // loaded an i386 image has execve's 32-bit number whatever the caller was).
            // execve(filename, argv, envp); execveat(dirfd, filename, argv, envp, flags).
            let (filename, argv) = if id == nr::EXECVE { (a1, a2) } else { (a2, a3) };
            if ret < 0 && on(COMPAT_EXEC) {
                report_failed(&PendingExec { filename, argv, flags: flags::COMPAT, _pad: 0 }, ret);
            }
            return;
        }
        let sock_call = match id {
            nr::SOCKET => sock(sock_op::SOCKET, || socket_call(a1, a2, a3, flags::COMPAT)),
            nr::BIND => sock(sock_op::BIND, || Some(call(sock_op::BIND, a1 as i32, a2, a3, flags::COMPAT))),
            nr::CONNECT => sock(sock_op::CONNECT, || Some(call(sock_op::CONNECT, a1 as i32, a2, a3, flags::COMPAT))),
            nr::LISTEN => sock(sock_op::LISTEN, || Some(call(sock_op::LISTEN, a1 as i32, 0, a2, flags::COMPAT))),
            nr::ACCEPT4 => sock(sock_op::ACCEPT, || Some(call(sock_op::ACCEPT, a1 as i32, a2, a3, flags::COMPAT))),
            nr::SOCKETCALL => socketcall(a1 as u32, a2),
            _ => None,
        };
        if let Some(p) = sock_call {
            report_call(&p, ret);
        }
    }
}

/// Whether `id` is a 32-bit exec or socket call this module handles.
#[inline(always)]
pub fn handles(id: i64) -> bool {
    matches!(
        id,
        nr::EXECVE | nr::SOCKETCALL | nr::EXECVEAT | nr::SOCKET | nr::BIND | nr::CONNECT | nr::LISTEN | nr::ACCEPT4
    )
}

/// x86-64's kernel stack (`THREAD_SIZE` without KASAN).
const THREAD_SIZE: u32 = 16 * 1024;

/// x86-64's 32-bit user code segment (`__USER32_CS`): the `cs` a 32-bit task's saved registers hold.
const USER32_CS: u64 = 0x23;

/// Whether the current task is in a 32-bit connect (direct or through socketcall) that this
/// program reports at its exit: `sock:inet_sock_set_state` skips the one it sees (it would
/// say the same connect again, without its result). For any program type: the task's saved
/// registers through `bpf_task_pt_regs` (Linux 5.15), or before it at the top of the task's
/// kernel stack, and probe reads.
#[inline(always)]
pub fn in_reported_connect() -> bool {
    if !on(1 << sock_op::CONNECT) || !unsafe { in_compat_syscall(current_task()) } {
        return false;
    }
    let regs = if config!(task_pt_regs) != 0 {
        unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u8 }
    } else {
        // Before Linux 5.15 (a load-time constant: the other way is never verified there): x86-64's
        // `task_pt_regs`, the registers saved at the top of the task's kernel stack, whose size
        // is THREAD_SIZE (16 KiB; 32 KiB with KASAN). The saved `cs` must be the 32-bit user
        // segment: where the stack is not where this looks, the words read are no saved
        // registers, and the connect is reported twice rather than skipped on a stale word.
        let (size, at) = (config!(offsets.pt_regs_size), config!(offsets.task_stack));
        if size == 0 || at == 0 {
            return false;
        }
        let stack: *const u8 = unsafe { crate::kernel::read0(current_task(), at) };
        if stack.is_null() {
            return false;
        }
        let regs = stack.wrapping_add((THREAD_SIZE - size) as usize);
        if unsafe { read::<u64>(regs, CS as u32) }.unwrap_or(0) != USER32_CS {
            return false;
        }
        regs
    };
    let id = unsafe { read::<u64>(regs, ORIG_AX as u32) }.unwrap_or(0) as i64;
    id == nr::CONNECT || (id == nr::SOCKETCALL && unsafe { read::<u32>(regs, BX as u32) }.unwrap_or(0) == call::CONNECT)
}
