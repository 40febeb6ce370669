//! `ptrace`: ptrace(2) requests that take control of or write into another process, and
//! process_vm_writev(2).
use super::CallHead;

pub mod op {
    pub const PTRACE: u32 = 1;
    pub const VM_WRITEV: u32 = 2;
}

/// The ptrace requests reported (include/uapi/linux/ptrace.h, asm/ptrace-abi.h).
pub mod request {
    pub const POKETEXT: i64 = 4;
    pub const POKEDATA: i64 = 5;
    pub const POKEUSER: i64 = 6;
    pub const SETREGS: i64 = 13;
    pub const SETFPREGS: i64 = 15;
    pub const ATTACH: i64 = 16;
    /// i386's (its FPU and SSE registers).
    pub const SETFPXREGS: i64 = 19;
    /// i386's (a TLS descriptor of the tracee).
    pub const SET_THREAD_AREA: i64 = 26;
    /// x86-64's (the tracee's FS or GS base).
    pub const ARCH_PRCTL: i64 = 30;
    pub const SETSIGINFO: i64 = 0x4203;
    pub const SETREGSET: i64 = 0x4205;
    pub const SEIZE: i64 = 0x4206;
    /// Linux 6.16: a stopped tracee's system call, its number and arguments.
    pub const SET_SYSCALL_INFO: i64 = 0x4212;
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PtraceRecord {
    pub call: CallHead,
    /// The ptrace request (0 for process_vm_writev).
    pub request: i64,
    /// The target's pid as the caller named it (in the caller's pid namespace).
    pub target: i32,
    /// A successful ATTACH or SEIZE: the process the kernel made the caller's tracee, as the host
    /// knows it (its thread group id), 0 when not known; and its start (`start_boottime` of its
    /// group leader).
    pub tracee_tgid: u32,
    /// POKE*: the address written; process_vm_writev: the number of remote iovecs.
    pub addr: u64,
    pub tracee_start_ns: u64,
    /// The caller's pid namespace, in which `target` is a pid: its level (0: the host's) and
    /// inode number (`/proc/<pid>/ns/pid`); the inode 0 when not known.
    pub caller_pid_level: u32,
    pub caller_pid_ns: u32,
}
