//! One program at the exit of every system call of the host: `raw_syscalls:sys_exit` as a BTF
//! raw tracepoint, the one hook that sees every call of every ABI, including those seccomp
//! refused (they never reach the `sys_enter` tracepoints, but they exit) and those the kernel
//! has no tracepoint for (`init_module` on a kernel built without modules). It serves:
//!
//! - the 32-bit ABI's execs and socket calls (`compat.rs`);
//! - the families reported at the exit, whatever the ABI: kernel modules (`kmod.rs`), BPF
//!   (`bpf.rs`), ptrace (`ptrace.rs`), namespaces and mounts (`namespace.rs`), privilege
//!   changes (`cred.rs`), opens and changes of sensitive files (`file.rs`), sends (DNS
//!   queries, UDP flows: `net.rs`). The last two are programs of their own, which this one
//!   tail-calls: each is verified alone, and one the kernel refuses costs its family alone.
//!
//! Its first instructions reject every other call: the call's number (`regs->orig_ax`, a direct
//! load through the BTF-typed pointer) is looked up in a bitmap of the numbers that matter with
//! this run's settings (`ProbeConfig::exit_nrs`, written by the daemon), so a disabled family
//! costs nothing. Only for those is the task's `TS_COMPAT` read, the number mapped to its
//! handler in the ABI's table, and the container filter asked. The arguments are in the saved
//! registers at the exit (the call does not change them): rdi, rsi, rdx, r10, r8, r9 for a
//! native call, ebx, ecx, edx, esi, edi, ebp for a 32-bit one.
use aya_ebpf::{
    helpers::generated::{bpf_get_current_task_btf, bpf_probe_read_user_str},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use docker_listener_common::{
    EXIT_NR_WORDS, RecordHeader,
    family::{CallHead, cred, file, kmod, namespace, ptrace, switch},
    flags,
    syscalls::{ia32, x64},
};

use crate::{
    bpf, compat, cred as cred_family, file as file_family,
    kernel::{TS_COMPAT, current_task, exe_identity, exec_id, process_start},
    kmod as kmod_family,
    maps::{FILE_PROGRAM, HANDLE_PROGRAM, NET_PROGRAM},
    maps::{config, traced},
    namespace as ns_family, net as net_family, ptrace as ptrace_family,
};

/// Offsets in x86-64's `struct pt_regs`. The layout is the ptrace ABI's (`user_regs_struct`)
/// and has not changed since x86-64 began; the daemon checks it against the kernel's BTF.
pub mod regs {
    pub const BP: usize = 32;
    pub const BX: usize = 40;
    pub const R10: usize = 56;
    pub const R9: usize = 64;
    pub const R8: usize = 72;
    pub const CX: usize = 88;
    pub const DX: usize = 96;
    pub const SI: usize = 104;
    pub const DI: usize = 112;
    pub const ORIG_AX: usize = 120;
    pub const CS: usize = 136;
}

/// Where a call goes: a family and its operation, or the 32-bit exec/socket code. Every
/// variant carries an operation (0 where there is none): a variant without one leaves its
/// register undefined, which the compiler may still spill, and the verifier rejects reading an
/// uninitialised register ("R4 !read_ok").
#[derive(Clone, Copy)]
pub(crate) enum Route {
    #[allow(dead_code)]
    Compat(u32),
    KernelModule(u32),
    #[allow(dead_code)]
    Bpf(u32),
    Ptrace(u32),
    Namespace(u32),
    Privilege(u32),
    File(u32),
}

impl Route {
    #[inline(always)]
    fn switch(self) -> u32 {
        match self {
            Route::Compat(_) => 0,
            Route::KernelModule(_) => switch::KERNEL_MODULE,
            Route::Bpf(_) => switch::BPF,
            Route::Ptrace(_) => switch::PTRACE,
            Route::Namespace(_) => switch::NAMESPACE,
            Route::Privilege(_) => switch::PRIVILEGE,
            Route::File(_) => switch::FILE,
        }
    }
}

/// The route of call `id` in the task's ABI.
#[inline(always)]
pub(crate) fn route(id: i64, compat: bool) -> Option<Route> {
    if compat { route_ia32(id) } else { route_x64(id) }
}

#[inline(always)]
fn route_x64(id: i64) -> Option<Route> {
    use cred::op as c;
    use namespace::op as n;
    Some(match id {
        x64::INIT_MODULE => Route::KernelModule(kmod::op::INIT_MODULE),
        x64::FINIT_MODULE => Route::KernelModule(kmod::op::FINIT_MODULE),
        x64::DELETE_MODULE => Route::KernelModule(kmod::op::DELETE_MODULE),
        x64::BPF => Route::Bpf(0),
        x64::PTRACE => Route::Ptrace(ptrace::op::PTRACE),
        x64::PROCESS_VM_WRITEV => Route::Ptrace(ptrace::op::VM_WRITEV),
        x64::UNSHARE => Route::Namespace(n::UNSHARE),
        x64::SETNS => Route::Namespace(n::SETNS),
        x64::CLONE => Route::Namespace(n::CLONE),
        x64::CLONE3 => Route::Namespace(ns_family::CLONE3),
        x64::MOUNT => Route::Namespace(n::MOUNT),
        x64::UMOUNT2 => Route::Namespace(n::UMOUNT),
        x64::PIVOT_ROOT => Route::Namespace(n::PIVOT_ROOT),
        x64::CHROOT => Route::Namespace(n::CHROOT),
        x64::FSOPEN => Route::Namespace(n::FSOPEN),
        x64::FSCONFIG => Route::Namespace(n::FSCONFIG),
        x64::FSMOUNT => Route::Namespace(n::FSMOUNT),
        x64::MOVE_MOUNT => Route::Namespace(n::MOVE_MOUNT),
        x64::OPEN_TREE => Route::Namespace(n::OPEN_TREE),
        x64::FSPICK => Route::Namespace(n::FSPICK),
        x64::MOUNT_SETATTR => Route::Namespace(n::MOUNT_SETATTR),
        x64::SETUID => Route::Privilege(c::SETUID),
        x64::SETGID => Route::Privilege(c::SETGID),
        x64::SETREUID => Route::Privilege(c::SETREUID),
        x64::SETREGID => Route::Privilege(c::SETREGID),
        x64::SETRESUID => Route::Privilege(c::SETRESUID),
        x64::SETRESGID => Route::Privilege(c::SETRESGID),
        x64::CAPSET => Route::Privilege(c::CAPSET),
        x64::SETFSUID => Route::Privilege(c::SETFSUID),
        x64::SETFSGID => Route::Privilege(c::SETFSGID),
        x64::SETGROUPS => Route::Privilege(c::SETGROUPS),
        x64::PRCTL => Route::Privilege(c::PRCTL),
        x64::OPEN => Route::File(file::op::OPEN),
        x64::CREAT => Route::File(file::op::CREAT),
        x64::OPENAT => Route::File(file::op::OPENAT),
        x64::OPENAT2 => Route::File(file::op::OPENAT2),
        x64::OPEN_BY_HANDLE_AT => Route::File(file::op::OPEN_BY_HANDLE_AT),
        x64::UNLINK => Route::File(file::op::UNLINK),
        x64::UNLINKAT => Route::File(file::op::UNLINKAT),
        x64::RENAME => Route::File(file::op::RENAME),
        x64::RENAMEAT => Route::File(file::op::RENAMEAT),
        x64::RENAMEAT2 => Route::File(file::op::RENAMEAT2),
        x64::CHMOD => Route::File(file::op::CHMOD),
        x64::FCHMODAT => Route::File(file::op::FCHMODAT),
        x64::FCHMODAT2 => Route::File(file::op::FCHMODAT2),
        x64::CHOWN => Route::File(file::op::CHOWN),
        x64::LCHOWN => Route::File(file::op::LCHOWN),
        x64::FCHOWNAT => Route::File(file::op::FCHOWNAT),
        x64::LINK => Route::File(file::op::LINK),
        x64::LINKAT => Route::File(file::op::LINKAT),
        x64::SYMLINK => Route::File(file::op::SYMLINK),
        x64::SYMLINKAT => Route::File(file::op::SYMLINKAT),
        x64::TRUNCATE => Route::File(file::op::TRUNCATE),
        x64::FCHMOD => Route::File(file::op::FCHMOD),
        x64::FCHOWN => Route::File(file::op::FCHOWN),
        _ => return None,
    })
}

#[inline(always)]
fn route_ia32(id: i64) -> Option<Route> {
    use cred::op as c;
    use namespace::op as n;
    if compat::handles(id) {
        return Some(Route::Compat(0));
    }
    Some(match id {
        ia32::INIT_MODULE => Route::KernelModule(kmod::op::INIT_MODULE),
        ia32::FINIT_MODULE => Route::KernelModule(kmod::op::FINIT_MODULE),
        ia32::DELETE_MODULE => Route::KernelModule(kmod::op::DELETE_MODULE),
        ia32::BPF => Route::Bpf(0),
        ia32::PTRACE => Route::Ptrace(ptrace::op::PTRACE),
        ia32::PROCESS_VM_WRITEV => Route::Ptrace(ptrace::op::VM_WRITEV),
        ia32::UNSHARE => Route::Namespace(n::UNSHARE),
        ia32::SETNS => Route::Namespace(n::SETNS),
        ia32::CLONE => Route::Namespace(n::CLONE),
        ia32::CLONE3 => Route::Namespace(ns_family::CLONE3),
        ia32::MOUNT => Route::Namespace(n::MOUNT),
        // umount(name): umount2 without flags (the register holding them is not an argument).
        ia32::UMOUNT => Route::Namespace(ns_family::UMOUNT_NO_FLAGS),
        ia32::UMOUNT2 => Route::Namespace(n::UMOUNT),
        ia32::PIVOT_ROOT => Route::Namespace(n::PIVOT_ROOT),
        ia32::CHROOT => Route::Namespace(n::CHROOT),
        ia32::FSOPEN => Route::Namespace(n::FSOPEN),
        ia32::FSCONFIG => Route::Namespace(n::FSCONFIG),
        ia32::FSMOUNT => Route::Namespace(n::FSMOUNT),
        ia32::MOVE_MOUNT => Route::Namespace(n::MOVE_MOUNT),
        ia32::OPEN_TREE => Route::Namespace(n::OPEN_TREE),
        ia32::FSPICK => Route::Namespace(n::FSPICK),
        ia32::MOUNT_SETATTR => Route::Namespace(n::MOUNT_SETATTR),
        ia32::SETUID => Route::Privilege(c::SETUID),
        ia32::SETGID => Route::Privilege(c::SETGID),
        ia32::SETREUID => Route::Privilege(c::SETREUID),
        ia32::SETREGID => Route::Privilege(c::SETREGID),
        ia32::SETRESUID => Route::Privilege(c::SETRESUID),
        ia32::SETRESGID => Route::Privilege(c::SETRESGID),
        ia32::SETUID16 => Route::Privilege(c::SETUID | c::ID16),
        ia32::SETGID16 => Route::Privilege(c::SETGID | c::ID16),
        ia32::SETREUID16 => Route::Privilege(c::SETREUID | c::ID16),
        ia32::SETREGID16 => Route::Privilege(c::SETREGID | c::ID16),
        ia32::SETRESUID16 => Route::Privilege(c::SETRESUID | c::ID16),
        ia32::SETRESGID16 => Route::Privilege(c::SETRESGID | c::ID16),
        ia32::CAPSET => Route::Privilege(c::CAPSET),
        ia32::SETFSUID16 => Route::Privilege(c::SETFSUID | c::ID16),
        ia32::SETFSGID16 => Route::Privilege(c::SETFSGID | c::ID16),
        ia32::SETGROUPS16 => Route::Privilege(c::SETGROUPS | c::ID16),
        ia32::SETFSUID => Route::Privilege(c::SETFSUID),
        ia32::SETFSGID => Route::Privilege(c::SETFSGID),
        ia32::SETGROUPS => Route::Privilege(c::SETGROUPS),
        ia32::PRCTL => Route::Privilege(c::PRCTL),
        ia32::OPEN => Route::File(file::op::OPEN),
        ia32::CREAT => Route::File(file::op::CREAT),
        ia32::OPENAT => Route::File(file::op::OPENAT),
        ia32::OPENAT2 => Route::File(file::op::OPENAT2),
        ia32::OPEN_BY_HANDLE_AT => Route::File(file::op::OPEN_BY_HANDLE_AT),
        ia32::UNLINK => Route::File(file::op::UNLINK),
        ia32::UNLINKAT => Route::File(file::op::UNLINKAT),
        ia32::RENAME => Route::File(file::op::RENAME),
        ia32::RENAMEAT => Route::File(file::op::RENAMEAT),
        ia32::RENAMEAT2 => Route::File(file::op::RENAMEAT2),
        ia32::CHMOD => Route::File(file::op::CHMOD),
        ia32::FCHMODAT => Route::File(file::op::FCHMODAT),
        ia32::FCHMODAT2 => Route::File(file::op::FCHMODAT2),
        ia32::CHOWN => Route::File(file::op::CHOWN),
        ia32::LCHOWN => Route::File(file::op::LCHOWN),
        ia32::CHOWN16 => Route::File(file::op::CHOWN16),
        ia32::LCHOWN16 => Route::File(file::op::LCHOWN16),
        ia32::FCHOWNAT => Route::File(file::op::FCHOWNAT),
        ia32::LINK => Route::File(file::op::LINK),
        ia32::LINKAT => Route::File(file::op::LINKAT),
        ia32::SYMLINK => Route::File(file::op::SYMLINK),
        ia32::SYMLINKAT => Route::File(file::op::SYMLINKAT),
        // (Both truncates: the length's high half, truncate64's third argument, is not kept.)
        ia32::TRUNCATE | ia32::TRUNCATE64 => Route::File(file::op::TRUNCATE),
        ia32::FCHMOD => Route::File(file::op::FCHMOD),
        ia32::FCHOWN => Route::File(file::op::FCHOWN),
        ia32::FCHOWN16 => Route::File(file::op::FCHOWN16),
        _ => return None,
    })
}

/// Whether the call's number is in this run's bitmap.
#[inline(always)]
fn wanted(id: i64) -> bool {
    if !(0..(EXIT_NR_WORDS as i64 * 64)).contains(&id) {
        return false;
    }
    let id = id as usize;
    // One load: the word, not the whole bitmap (a volatile read of the array would copy it).
    let word = config!(exit_nrs[(id >> 6) & (EXIT_NR_WORDS - 1)]);
    (word >> (id & 63)) & 1 != 0
}

/// Whether the current task is in a 32-bit system call: `thread_info.status & TS_COMPAT`, read
/// directly through the BTF-typed task pointer (a load, no helper call; before Linux 5.11,
/// whose task is untyped, a probe read).
#[inline(always)]
pub fn in_compat(task: *const u8) -> bool {
    let off = config!(offsets.task_ti_status) as usize;
    if off == 0 {
        return false;
    }
    // A typed pointer is read by a plain load; before Linux 5.11 the task is untyped (`task_btf`,
    // a load-time constant: each kernel's verifier walks one of the two).
    let status = if config!(task_btf) != 0 {
        unsafe { core::ptr::read_volatile(task.wrapping_add(off) as *const u32) }
    } else {
        unsafe { crate::kernel::read::<u32>(task, off as u32) }.unwrap_or(0)
    };
    status & TS_COMPAT != 0
}

#[inline(always)]
pub fn reg(regs: *const u8, off: usize) -> u64 {
    // A direct load: the argument is a BTF-typed pointer the verifier lets tracing programs read.
    unsafe { core::ptr::read_volatile(regs.wrapping_add(off) as *const u64) }
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[btf_tracepoint(function = "sys_exit")]
pub fn raw_sys_exit(ctx: BtfTracePointContext) -> u32 {
    let regs: *const u8 = ctx.arg(0);
    let id = reg(regs, regs::ORIG_AX) as i64;
    if !wanted(id) {
        return 0;
    }
    // Sends (DNS queries, UDP flows) are the network family's own program (`net.rs`), reached
    // by a tail call from here, the program's first frame (a tail call from a function whose
    // callers' stack is 256 bytes or more is refused): verified on its own, it does not add to
    // this program's verification, which slow and old kernels' verifiers already take seconds
    // over. An empty slot (the family off, or its program refused) falls through.
    if net_family::carries_send(id, regs) {
        unsafe { NET_PROGRAM.tail_call(&ctx, 0) };
    }
    if net_family::only_sends(id) {
        return 0;
    }
    // open_by_handle_at: every call is reported, with a walk of its file, by the file-access
    // family's own program (`file::raw_sys_exit_handle`), verified on its own for the same
    // reason. (The number in the other ABI is no call this program reports.) An empty slot
    // falls through: the call is then matched as an open.
    if id == x64::OPEN_BY_HANDLE_AT || id == ia32::OPEN_BY_HANDLE_AT {
        unsafe { HANDLE_PROGRAM.tail_call(&ctx, 0) };
    }
    dispatch(&ctx, regs, id)
}

/// A call whose number is in the bitmap, past the sends and open_by_handle_at. A function of
/// its own, not inlined: the test above, which every system call of the host runs, stays in
/// the program's entry, with no call (and no return, which return-stack mitigations make
/// costly) and no more stack before it. (It may tail-call: the frame above it is small.)
#[inline(never)]
fn dispatch(ctx: &BtfTracePointContext, regs: *const u8, id: i64) -> u32 {
    // The other opens and changes of files: the file-access family's program for them
    // (`file::raw_sys_exit_file`), verified on its own too. The ABI decides: a number may be a
    // file call in one and another family's call in the other. What the family's program would
    // look at first is asked here, by loads (`file::may_report`): the host's opens, the opens
    // of files that match nothing and the missing files end here, without the tail call, at
    // what they cost before the family had a program of its own. An empty slot (the family
    // off, or its program refused) means no file call is reported.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let compat = in_compat(task);
    let Some(route) = route(id, compat) else { return 0 };
    if let Route::File(op) = route {
        let (a, _) = call_arguments(regs, compat);
        if config!(families) & switch::FILE != 0 && file_family::may_report(task, op, &a, ctx.arg(1)) {
            unsafe { FILE_PROGRAM.tail_call(ctx, 0) };
        }
        return 0;
    }
    // (The 32-bit exec and socket calls have no family switch: their numbers are in the
    // bitmap only when their settings are on.)
    if route.switch() & config!(families) != route.switch() {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let (a, fl) = call_arguments(regs, compat);
    // Every fork of the host exits clone twice (the child with 0): only a clone that makes a
    // namespace is the family's, which its flags say before the container filter is asked.
    if let Route::Namespace(op) = route
        && (op == namespace::op::CLONE || op == ns_family::CLONE3)
        && (ret == 0 || (op == namespace::op::CLONE && a[0] & namespace::CLONE_NEW_MASK == 0))
    {
        return 0;
    }
    // prctl is frequent (thread names): only the options that change privileges go on.
    if let Route::Privilege(op) = route
        && op == cred::op::PRCTL
        && !cred::prctl_option::reported(a[0] & 0xffff_ffff, a[1])
    {
        return 0;
    }
    if !traced() {
        return 0;
    }
    match route {
        Route::Compat(_) => compat::on_exit(id, &a, ret),
        Route::KernelModule(op) => kmod_family::on_exit(op, &a, ret, fl),
        Route::Bpf(_) => bpf::on_exit(&a, ret, fl),
        Route::Ptrace(op) => ptrace_family::on_exit(op, &a, ret, fl),
        Route::Namespace(op) => ns_family::on_exit(op, &a, ret, fl),
        Route::Privilege(op) => cred_family::on_exit(op, &a, ret, fl),
        // (The file-access family's program, above.)
        Route::File(_) => {}
    }
    0
}

/// The call's six arguments from the saved registers (zero-extended for a 32-bit call), and
/// the record flag of its ABI.
#[inline(always)]
pub fn call_arguments(regs: *const u8, compat: bool) -> ([u64; 6], u32) {
    if compat {
        let r = |off| reg(regs, off) & 0xffff_ffff;
        ([r(regs::BX), r(regs::CX), r(regs::DX), r(regs::SI), r(regs::DI), r(regs::BP)], flags::COMPAT)
    } else {
        let r = |off| reg(regs, off);
        ([r(regs::DI), r(regs::SI), r(regs::DX), r(regs::R10), r(regs::R8), r(regs::R9)], 0)
    }
}

/// The head of an exit-reported family's record.
#[inline(always)]
pub fn call_head(header: RecordHeader, op: u32, ret: i64, flags: u32) -> CallHead {
    let task = current_task();
    let (exe_ino, exe_dev) = unsafe { exe_identity(task) };
    // SAFETY: no arguments; the current task's ids.
    let ids = unsafe { aya_ebpf::helpers::generated::bpf_get_current_uid_gid() };
    CallHead {
        header,
        start_ns: unsafe { process_start(task) },
        exec_id: unsafe { exec_id(task) },
        ret,
        op,
        flags,
        exe_ino,
        exe_dev,
        uid: ids as u32,
        gid: (ids >> 32) as u32,
        _pad: 0,
    }
}

/// Copies a NUL-terminated string from the caller's memory at `src` into `dst` (`cap` bytes):
/// its length without the NUL, and whether it filled `dst` (it may have been longer). A null
/// pointer or an unreadable one gives an empty string.
#[inline(always)]
pub unsafe fn user_str(src: u64, dst: *mut u8, cap: u32) -> (u32, bool) {
    if src == 0 {
        return (0, false);
    }
    let n = unsafe { bpf_probe_read_user_str(dst.cast(), cap, src as *const _) };
    if n <= 0 { (0, false) } else { ((n - 1) as u32, n as u32 >= cap) }
}

/// The same for a string in kernel memory (io_uring's copies of a request's names).
#[inline(always)]
pub unsafe fn kernel_str(src: u64, dst: *mut u8, cap: u32) -> (u32, bool) {
    if src == 0 {
        return (0, false);
    }
    let n = unsafe { aya_ebpf::helpers::generated::bpf_probe_read_kernel_str(dst.cast(), cap, src as *const _) };
    if n <= 0 { (0, false) } else { ((n - 1) as u32, n as u32 >= cap) }
}
