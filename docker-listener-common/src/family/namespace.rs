//! `namespace-change`: unshare, setns, clone/clone3 with new namespaces, mount, umount,
//! pivot_root, chroot.
use super::{ARG_PATH_CAP, CallHead};

pub mod op {
    pub const UNSHARE: u32 = 1;
    pub const SETNS: u32 = 2;
    pub const CLONE: u32 = 3;
    pub const MOUNT: u32 = 4;
    pub const UMOUNT: u32 = 5;
    pub const PIVOT_ROOT: u32 = 6;
    pub const CHROOT: u32 = 7;
}

/// The `CLONE_NEW*` bits (and `CLONE_NEWTIME`): clone calls with none of them are not reported.
pub const CLONE_NEW_MASK: u64 = 0x7e02_0080;

/// Bytes of a filesystem type kept.
pub const FSTYPE_CAP: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NamespaceRecord {
    pub call: CallHead,
    /// unshare, clone: the flags; setns: the namespace type asked for; mount, umount: their
    /// flags.
    pub ns_flags: u64,
    /// setns: the inode of the namespace the descriptor names (what `/proc/<pid>/ns/*` links
    /// show), 0 when unknown.
    pub ns_ino: u64,
    /// setns: the descriptor.
    pub fd: i32,
    /// Bytes used of `source`, `target`, `fstype`.
    pub source_len: u32,
    pub target_len: u32,
    pub fstype_len: u32,
    /// mount: the source; pivot_root: put_old.
    pub source: [u8; ARG_PATH_CAP],
    /// mount, umount, chroot: the path; pivot_root: new_root.
    pub target: [u8; ARG_PATH_CAP],
    pub fstype: [u8; FSTYPE_CAP],
}
