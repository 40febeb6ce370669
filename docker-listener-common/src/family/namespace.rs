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
    // The mount API of Linux 5.2 (`fsopen` ... `move_mount`) and 5.12 (`mount_setattr`): a
    // mount made without mount(2).
    pub const FSOPEN: u32 = 8;
    pub const FSCONFIG: u32 = 9;
    pub const FSMOUNT: u32 = 10;
    pub const MOVE_MOUNT: u32 = 11;
    pub const OPEN_TREE: u32 = 12;
    pub const FSPICK: u32 = 13;
    pub const MOUNT_SETATTR: u32 = 14;
}

/// fsconfig(2)'s commands whose value is a string (`FSCONFIG_SET_STRING`, `_SET_PATH`,
/// `_SET_PATH_EMPTY`).
pub const FSCONFIG_STRING_CMDS: [u64; 3] = [1, 3, 4];

/// The `CLONE_NEW*` bits (and `CLONE_NEWTIME`): clone calls with none of them are not reported.
pub const CLONE_NEW_MASK: u64 = 0x7e02_0080;
/// A new (or joined) user namespace, and mount namespace.
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWNS: u64 = 0x0002_0000;

/// The namespaces a setns can join (`nsproxy`'s, `pid` being the one its children get), with
/// their `CLONE_NEW*` flag and their name in `/proc/<pid>/ns`: `NamespaceRecord::joined`'s order.
pub const JOINED: [(u64, &str); 6] = [
    (CLONE_NEWNS, "mnt"),
    (0x2000_0000, "pid"),
    (0x4000_0000, "net"),
    (0x0400_0000, "uts"),
    (0x0800_0000, "ipc"),
    (0x0200_0000, "cgroup"),
];

/// Bytes of a filesystem type kept.
pub const FSTYPE_CAP: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NamespaceRecord {
    pub call: CallHead,
    /// unshare, clone: the flags; setns: the namespace type asked for; mount, umount: their
    /// flags; fsopen, fsmount, move_mount, open_tree, fspick: theirs; fsconfig: the command;
    /// mount_setattr: the attributes set, and those cleared << 32.
    pub ns_flags: u64,
    /// setns: the inode of the namespace the descriptor names (what `/proc/<pid>/ns/*` links
    /// show), 0 when unknown.
    pub ns_ino: u64,
    /// setns: the descriptor; fsconfig, fsmount: the filesystem context's; move_mount,
    /// open_tree, fspick, mount_setattr: the directory the path starts from.
    pub fd: i32,
    /// Bytes used of `source`, `target`, `fstype`.
    pub source_len: u32,
    pub target_len: u32,
    pub fstype_len: u32,
    /// A setns that succeeded: the caller's namespaces after it, in [`JOINED`]'s order (their
    /// inode numbers, 0 when unknown): where a descriptor that names no namespace (a pidfd) took
    /// it.
    pub joined: [u32; JOINED.len()],
    /// mount: the source; pivot_root: put_old; move_mount: the path moved from; open_tree:
    /// the path; fsconfig: the value (a string command's).
    pub source: [u8; ARG_PATH_CAP],
    /// mount, umount, chroot: the path; pivot_root: new_root; move_mount: the path moved to;
    /// fspick, mount_setattr: the path; fsconfig: the key.
    pub target: [u8; ARG_PATH_CAP],
    /// mount: the filesystem type; fsopen: the filesystem's name.
    pub fstype: [u8; FSTYPE_CAP],
}
