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
    pub const ATTACH: i64 = 16;
    pub const SETREGSET: i64 = 0x4205;
    pub const SEIZE: i64 = 0x4206;
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
}
