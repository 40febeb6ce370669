//! `file-access`: opens of sensitive files by a container process, matched by what was opened
//! (the descriptor's inode, its parent directory's inode, or for pseudo-files the kernel's own
//! dentry name), never by the string the caller passed.
use super::{ARG_PATH_CAP, CallHead};
use crate::{EXE_PATH_CAP, ExeFile};

pub mod op {
    pub const OPEN: u32 = 1;
    pub const CREAT: u32 = 2;
    pub const OPENAT: u32 = 3;
    pub const OPENAT2: u32 = 4;
    pub const OPEN_BY_HANDLE_AT: u32 = 5;
}

/// Bits of a `SENSITIVE` map value (which accesses are reported), and of `FileRecord::access`
/// (what the open asked for).
pub mod access {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    /// Map value: the inode is a directory whose entries are sensitive (the READ/WRITE bits
    /// then apply to them), not a file.
    pub const DIR: u32 = 4;
    /// Map value: a directory where a sensitive file or directory may be created (the parent
    /// of an entry): an open with O_CREAT in it, or in a directory just below it, is sent up,
    /// and the daemon keeps it when the path the kernel walked is an entry's.
    pub const PARENT: u32 = 8;
}

/// How an open was matched (`FileRecord::matched`).
pub mod matched {
    /// The opened file's inode is in the set.
    pub const FILE: u32 = 1;
    /// Its parent directory's inode is in the set (a file of a sensitive directory, one created
    /// after the set was made included).
    pub const DIR: u32 = 2;
    /// A pseudo-file, by the name its dentry has on procfs or cgroup v1 (`pseudo`).
    pub const PSEUDO: u32 = 4;
    /// An O_CREAT open in (or one level below) a directory marked `access::PARENT`: the daemon
    /// decides by the walked path.
    pub const CREATED: u32 = 8;
}

/// The pseudo-files matched by name on their filesystem (the kernel's dentry, not a string the
/// caller passed): (filesystem magic, name, accesses reported).
pub mod pseudo {
    use super::access::{READ, WRITE};
    pub const PROC_SUPER_MAGIC: u32 = 0x9fa0;
    pub const CGROUP_SUPER_MAGIC: u32 = 0x0027_e0eb;
    /// Longest name below (with its NUL).
    pub const NAME_CAP: usize = 24;
    pub const FILES: [(u32, &[u8], u32); 5] = [
        // Another process's memory: read (secrets) or written (code injection).
        (PROC_SUPER_MAGIC, b"mem\0", READ | WRITE),
        // The host's core dump handler: a container that writes it runs a program on the host.
        (PROC_SUPER_MAGIC, b"core_pattern\0", WRITE),
        (PROC_SUPER_MAGIC, b"sysrq-trigger\0", WRITE),
        // cgroup v1's release agent: the classic privileged-container escape.
        (CGROUP_SUPER_MAGIC, b"release_agent\0", WRITE),
        (CGROUP_SUPER_MAGIC, b"notify_on_release\0", WRITE),
    ];
}

/// Open flags (x86, either ABI) the kernel side needs.
pub mod oflag {
    pub const ACCMODE: u32 = 3;
    pub const WRONLY: u32 = 1;
    pub const RDWR: u32 = 2;
    pub const CREAT: u32 = 0o100;
    pub const TRUNC: u32 = 0o1000;
    pub const APPEND: u32 = 0o2000;
}

/// The accesses an open asks for: writing when it may change the file (write mode, O_TRUNC,
/// O_CREAT, O_APPEND), reading when it may read it; an O_PATH or O_WRONLY open does not read.
#[inline(always)]
pub const fn access_of(flags: u32) -> u32 {
    let mode = flags & oflag::ACCMODE;
    let mut a = 0;
    if mode != oflag::WRONLY {
        a |= access::READ;
    }
    if mode != 0 || flags & (oflag::CREAT | oflag::TRUNC | oflag::APPEND) != 0 {
        a |= access::WRITE;
    }
    a
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileRecord {
    pub call: CallHead,
    /// The descriptor the open returned.
    pub fd: i32,
    /// The flags as the caller passed them (openat2: `open_how.flags`; creat: O_CREAT|O_WRONLY|
    /// O_TRUNC).
    pub open_flags: u32,
    /// The mode (with O_CREAT).
    pub mode: u32,
    /// `matched` bits.
    pub matched: u32,
    /// `access_of(open_flags)`.
    pub access: u32,
    /// Bytes of `requested` used.
    pub requested_len: u32,
    /// The parent directory's inode number.
    pub parent_ino: u64,
    /// The opened file: inode, device, filesystem, links, and its path walked by the kernel
    /// (as an executed file's: `ExeFile`).
    pub file: ExeFile,
    /// The path as the caller passed it (relative, with `..`, through a symlink...).
    pub requested: [u8; ARG_PATH_CAP],
    /// The file's path components, leaf first (see `ExeFile`).
    pub path: [u8; EXE_PATH_CAP],
}

/// Key of the kernel's `SENSITIVE` map: an inode number. The device is left out on purpose: a
/// file of an image's layer has the same inode number in every container of that image (Docker's
/// overlay2 on one filesystem), each container's overlay being another device; the daemon
/// checks the device of each match.
pub type SensitiveKey = u64;
