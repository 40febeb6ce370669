//! Each event family's record, one module per family. Exec, sockets and io_uring setups have
//! programs of their own; the families reported at the system call's exit
//! (`raw_syscalls:sys_exit`: kernel modules, BPF, ptrace, namespaces and mounts, privilege
//! changes, sensitive files, sends for DNS queries and UDP flows) share one, and their records
//! start with a [`CallHead`]; their operations are `op` values of their own.
pub mod bpf;
pub mod cred;
pub mod exec;
pub mod file;
pub mod io_uring;
pub mod kmod;
pub mod namespace;
pub mod net;
pub mod ptrace;
pub mod socket;

use crate::RecordHeader;

/// What every exit-reported call's record starts with.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CallHead {
    pub header: RecordHeader,
    /// The process's start time (with the tgid, its instance) and its image generation.
    pub start_ns: u64,
    pub exec_id: u64,
    /// The system call's return value (a negative errno when it failed, also when seccomp
    /// refused it).
    pub ret: i64,
    /// The family's operation (which system call).
    pub op: u32,
    /// `crate::flags` bits (COMPAT).
    pub flags: u32,
    /// The caller's executable as the kernel has it (`mm->exe_file`): inode and device (the
    /// kernel's dev_t), 0 when unknown. Tells the container runtime's own processes (runc
    /// setting a container up) from the container's, by the file, not by a name.
    pub exe_ino: u64,
    pub exe_dev: u32,
    /// The caller's real user and group ids (ECS `process.user.id`, `process.group.id`, as an
    /// exec event's).
    pub uid: u32,
    pub gid: u32,
    pub _pad: u32,
}

/// Bits of `ProbeConfig::families`: which exit-reported families are on.
pub mod switch {
    pub const KERNEL_MODULE: u32 = 1;
    pub const BPF: u32 = 2;
    pub const PTRACE: u32 = 4;
    pub const NAMESPACE: u32 = 8;
    pub const PRIVILEGE: u32 = 16;
    pub const FILE: u32 = 32;
    /// The network family's two halves: DNS queries, and UDP flows (a record of either turns
    /// the family's calls on).
    pub const DNS: u32 = 64;
    pub const UDP_FLOW: u32 = 128;
    pub const NETWORK: u32 = DNS | UDP_FLOW;
}

/// Bytes of a path or name argument kept (a path longer than this is cut, and flagged).
pub const ARG_PATH_CAP: usize = 256;
/// `CallHead` flag: a string argument was longer than the record holds.
pub const STRING_TRUNCATED: u32 = 1 << 16;
/// `CallHead` flag: the call's result is not known (`ret` is 0): sent before it ran, and
/// nothing will show its end (an io_uring request with `IOSQE_CQE_SKIP_SUCCESS`).
pub const RESULT_UNKNOWN: u32 = 1 << 18;
