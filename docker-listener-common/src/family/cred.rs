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
    pub const SETFSUID: u32 = 8;
    pub const SETFSGID: u32 = 9;
    pub const SETGROUPS: u32 = 10;
    /// prctl with an option that changes privileges (`prctl_option`).
    pub const PRCTL: u32 = 11;
    /// Route flag of the raw exit program: the 16-bit uid/gid calls of the ia32 ABI (their -1 is
    /// 0xffff).
    pub const ID16: u32 = 1 << 8;
}

/// The prctl options reported (include/uapi/linux/prctl.h): those that keep, drop or raise
/// capabilities or change how they are kept, and those that change the executable file the
/// kernel names for the process (`PR_SET_MM`'s `EXE_FILE`, with CAP_SYS_RESOURCE, and `MAP`,
/// whose `exe_fd` takes CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN in the caller's user namespace:
/// a process can make its `/proc/PID/exe`, and the file its later records carry, another file,
/// a runtime binary or a harmless one; a CRIU restore makes `MAP` calls too). Every other
/// option (thread names, the dumpable
/// flag...) is not a privilege change, and prctl is frequent: the kernel program drops them.
pub mod prctl_option {
    pub const SET_KEEPCAPS: u64 = 8;
    pub const CAPBSET_DROP: u64 = 24;
    pub const SET_SECUREBITS: u64 = 28;
    pub const SET_MM: u64 = 35;
    pub const CAP_AMBIENT: u64 = 47;
    /// `PR_CAP_AMBIENT`'s operations that change the set (raise, lower, clear all), not
    /// `IS_SET`.
    pub const AMBIENT_CHANGES: [u64; 3] = [2, 3, 4];
    /// `PR_SET_MM_EXE_FILE`: the executable file, from a descriptor.
    pub const MM_EXE_FILE: u64 = 13;
    /// `PR_SET_MM_MAP`: the whole layout at once, its `exe_fd` included (CRIU's restore).
    pub const MM_MAP: u64 = 14;

    /// Whether prctl(option, arg2, ...) is one the family reports.
    pub fn reported(option: u64, arg2: u64) -> bool {
        match option {
            SET_KEEPCAPS | CAPBSET_DROP | SET_SECUREBITS => true,
            CAP_AMBIENT => AMBIENT_CHANGES.contains(&arg2),
            // (The kernel takes PR_SET_MM's operation as an int: its upper half is ignored.)
            SET_MM => matches!(arg2 & 0xffff_ffff, MM_EXE_FILE | MM_MAP),
            _ => false,
        }
    }
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
    /// set*, setfs*: the id), `u32::MAX` for "unchanged". capset: the effective and permitted
    /// sets asked for (low 32 bits of each), and the target pid. setgroups: the count and the
    /// first group. prctl: the option and its next two arguments (low 32 bits).
    pub requested: [u32; 3],
    /// 1 when the credentials could not be read.
    pub creds_unavailable: u32,
    /// The process's credentials after the call.
    pub creds: Creds,
}
