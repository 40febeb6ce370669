//! `privilege-change`: the setuid/setgid family and capset, with the credentials the call left
//! the process with (the kernel's, read at the exit).
use super::CallHead;

pub mod op {
    pub const SETUID: u32 = 1;
    pub const SETGID: u32 = 2;
    pub const SETREUID: u32 = 3;
    pub const SETREGID: u32 = 4;
    pub const SETRESUID: u32 = 5;
    pub const SETRESGID: u32 = 6;
    pub const CAPSET: u32 = 7;
    /// Route flag of the raw exit program: the 16-bit uid/gid calls of the ia32 ABI (their -1 is
    /// 0xffff).
    pub const ID16: u32 = 1 << 8;
}

/// A process's credentials (`struct cred`): ids and capability sets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CredRecord {
    pub call: CallHead,
    /// The ids the caller asked for (setres*: real, effective, saved; setre*: real, effective;
    /// set*: the id), `u32::MAX` for "unchanged". capset: the effective and permitted sets asked
    /// for (low 32 bits of each), and the target pid.
    pub requested: [u32; 3],
    /// 1 when the credentials could not be read.
    pub creds_unavailable: u32,
    /// The process's credentials after the call.
    pub creds: Creds,
}
