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
    /// Opens run by io_uring (`IORING_OP_OPENAT`, `IORING_OP_OPENAT2`), no system call of
    /// their own: seen at their completion (`io_uring:io_uring_complete`).
    pub const URING_OPENAT: u32 = 6;
    pub const URING_OPENAT2: u32 = 7;
    // Calls that change a file by its name (a `PathRecord`), from here on.
    pub const FIRST_PATH_OP: u32 = 16;
    pub const UNLINK: u32 = 16;
    pub const UNLINKAT: u32 = 17;
    pub const RENAME: u32 = 18;
    pub const RENAMEAT: u32 = 19;
    pub const RENAMEAT2: u32 = 20;
    pub const CHMOD: u32 = 21;
    pub const FCHMODAT: u32 = 22;
    pub const FCHMODAT2: u32 = 23;
    pub const CHOWN: u32 = 24;
    pub const LCHOWN: u32 = 25;
    pub const FCHOWNAT: u32 = 26;
    pub const LINK: u32 = 27;
    pub const LINKAT: u32 = 28;
    pub const TRUNCATE: u32 = 29;
    /// ia32's 16-bit-id chown and lchown.
    pub const CHOWN16: u32 = 30;
    pub const LCHOWN16: u32 = 31;
    // ...and by a descriptor (matched in the kernel, as opens are).
    pub const FCHMOD: u32 = 32;
    pub const FCHOWN: u32 = 33;
    pub const FCHOWN16: u32 = 34;
    // Opens the kernel refused (`refused_open`): nothing was opened, so they are sent as the
    // changes by name are, with the name and the directory it starts from, for the daemon to
    // resolve in the container. Arguments as openat's: (dirfd, name, flags, mode), then
    // openat2's `open_how.resolve` (`in_root`).
    pub const REFUSED_OPEN: u32 = 35;
    pub const REFUSED_CREAT: u32 = 36;
    pub const REFUSED_OPENAT: u32 = 37;
    pub const REFUSED_OPENAT2: u32 = 38;
    /// open_by_handle_at, every call whatever its result (`by_handle`): a handle names a file
    /// of the filesystem behind `mount_fd` with no path, so nothing bounds it to the container's
    /// files ("shocker": a container allowed it reads the host's). Arguments: (mount_fd, handle,
    /// flags, the descriptor walked for `base`: the opened file, or `mount_fd` when the call
    /// failed).
    pub const BY_HANDLE: u32 = 40;
    /// Changes by name run by io_uring (`IORING_OP_UNLINKAT`, `_RENAMEAT`, `_LINKAT`), no
    /// system call of their own: their names read at the request's submission
    /// (`io_uring:io_uring_submit_req`), the record sent at its completion with its result.
    /// Arguments as unlinkat's (dirfd, name, flags) and renameat2's (olddirfd, old, newdirfd,
    /// new, flags), the names' pointers cleared.
    pub const URING_UNLINKAT: u32 = 41;
    pub const URING_RENAMEAT: u32 = 42;
    pub const URING_LINKAT: u32 = 43;
    /// An io_uring open (`IORING_OP_OPENAT`, `_OPENAT2`) whose completion no tracepoint will
    /// show (`IOSQE_CQE_SKIP_SUCCESS`: no completion entry, so no `io_uring_complete`, when it
    /// succeeds): sent at its submission by its name, as a refused open is, for the daemon to
    /// resolve (`is_named_open`), its result unknown (`RESULT_UNKNOWN`). Arguments as
    /// openat's (dirfd, name, flags, mode), the name's pointer cleared, then `open_how.resolve`.
    pub const URING_OPENAT_NAMED: u32 = 44;
    pub const URING_OPENAT2_NAMED: u32 = 45;
    /// symlink(target, linkpath), symlinkat(target, newdirfd, linkpath): the link made is the
    /// first name (walked from its directory), the target, a string kept as given, the second.
    pub const SYMLINK: u32 = 46;
    pub const SYMLINKAT: u32 = 47;
}

/// `CallHead` flag of an io_uring open (`URING_OPENAT`, `URING_OPENAT2`) into the ring's own
/// file table: `FileRecord::fd` is the file's slot there (a fixed file has no descriptor).
pub const FIXED_FILE: u32 = 1 << 17;

/// `CallHead` flag of a `PathRecord`: its base is the directory the second name starts from
/// (the first name is absolute, the second relative: `mv /tmp/x ld.so.preload` in /etc).
pub const BASE_OF_NAME2: u32 = 1 << 19;

/// Bytes of a `struct file_handle` a `BY_HANDLE` record keeps (in `name2`): its 8-byte head
/// (`handle_bytes`, `handle_type`) and up to 40 bytes of the handle (the kernel's largest,
/// `MAX_HANDLE_SZ`, is 128; the filesystems a container sits on use 8 to 40).
pub const HANDLE_CAP: usize = 48;

/// The `PathRecord` call of an open_by_handle_at that returned `ret`: (operation, arguments).
#[inline(always)]
pub const fn by_handle(a: &[u64; 6], ret: i64) -> (u32, [u64; 6]) {
    let base = if ret >= 0 { ret as u64 } else { a[0] };
    (op::BY_HANDLE, [a[0], a[1], a[2], base, 0, 0])
}

/// The errors that make a failed open an attempt worth reporting: the caller was refused the
/// file (EPERM, EACCES) or writing to it (EROFS). A missing file (ENOENT, by far the most
/// frequent failure: library and `$PATH` searches) and every other error are not.
pub const REFUSED_ERRNOS: [i64; 3] = [1, 13, 30];

/// The `PathRecord` operation of an open (`OPEN`..=`OPENAT2`) that failed with `ret`, 0 when
/// it is not reported.
#[inline(always)]
pub const fn refused_open(op: u32, ret: i64) -> u32 {
    if ret != -REFUSED_ERRNOS[0] && ret != -REFUSED_ERRNOS[1] && ret != -REFUSED_ERRNOS[2] {
        return 0;
    }
    match op {
        op::OPEN => op::REFUSED_OPEN,
        op::CREAT => op::REFUSED_CREAT,
        op::OPENAT => op::REFUSED_OPENAT,
        op::OPENAT2 => op::REFUSED_OPENAT2,
        _ => 0,
    }
}

/// Whether a `PathRecord` operation is a refused open.
pub const fn is_refused_open(op: u32) -> bool {
    op >= op::REFUSED_OPEN && op <= op::REFUSED_OPENAT2
}

/// Whether a `PathRecord` operation is an open sent by its name (refused, or run by io_uring
/// with no completion to see): arguments as openat's.
pub const fn is_named_open(op: u32) -> bool {
    is_refused_open(op) || op == op::URING_OPENAT_NAMED || op == op::URING_OPENAT2_NAMED
}

/// `open_how.resolve`'s `RESOLVE_IN_ROOT`, a named open's `args[4]` (openat2,
/// `IORING_OP_OPENAT2`): the name is resolved with its directory descriptor (or the working
/// directory) as the root: an absolute name, `..` and absolute symlinks stay below it (`/shadow`
/// from `/etc` is `/etc/shadow`). The kernel side then walks that directory even for an
/// absolute name, and the daemon resolves the name below it.
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// Where a `PathRecord` call's names and directory descriptors are among its arguments:
/// (name, directory descriptor of the name, second name, its directory descriptor); `NONE`
/// when the call has none (the descriptor is then `AT_FDCWD`). fchmod and fchown: the
/// descriptor as the first name's "directory".
pub const NONE: usize = 6;
pub const fn name_args(op: u32) -> (usize, usize, usize, usize) {
    // (Read by the kernel program too: `names_at`.)
    match op {
        op::UNLINK | op::CHMOD | op::CHOWN | op::LCHOWN | op::CHOWN16 | op::LCHOWN16 | op::TRUNCATE => {
            (0, NONE, NONE, NONE)
        }
        op::UNLINKAT | op::FCHMODAT | op::FCHMODAT2 | op::FCHOWNAT | op::URING_UNLINKAT => (1, 0, NONE, NONE),
        op::REFUSED_OPEN
        | op::REFUSED_CREAT
        | op::REFUSED_OPENAT
        | op::REFUSED_OPENAT2
        | op::URING_OPENAT_NAMED
        | op::URING_OPENAT2_NAMED => (1, 0, NONE, NONE),
        op::RENAME | op::LINK => (0, NONE, 1, NONE),
        op::SYMLINK => (1, NONE, 0, NONE),
        op::SYMLINKAT => (2, 1, 0, NONE),
        op::RENAMEAT | op::RENAMEAT2 | op::LINKAT | op::URING_RENAMEAT | op::URING_LINKAT => (1, 0, 3, 2),
        // No name; the base is the file the call opened, or the mount's it named.
        op::BY_HANDLE => (NONE, 3, NONE, NONE),
        // fchmod, fchown.
        _ => (NONE, 0, NONE, NONE),
    }
}

/// `AT_FDCWD`: a path relative to the working directory.
pub const AT_FDCWD: i32 = -100;
/// `AT_EMPTY_PATH`: with an empty name, the call is on the descriptor's file.
pub const AT_EMPTY_PATH: u32 = 0x1000;

/// A call that changes a file by its name or its descriptor: unlink, rename, chmod, chown,
/// link, truncate (and fchmod, fchown). The kernel cannot resolve a name without the kernel's
/// path lookup (which no tracepoint exposes), so these are reported for every traced process
/// with the names as passed and the directory a relative name starts from, walked by the
/// kernel; the daemon resolves them inside the container and keeps those that are a sensitive
/// file's. A descriptor's file is matched in the kernel, as opens are.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PathRecord {
    pub call: CallHead,
    /// The call's arguments as passed (the daemon reads the directory descriptors, mode, ids
    /// and flags from them by call: `name_args`).
    pub args: [u64; 6],
    /// Bytes of `name`, `name2` used.
    pub name_len: u32,
    pub name2_len: u32,
    /// fchmod, fchown: how the descriptor's file matched (`matched` bits).
    pub matched: u32,
    /// The directory descriptor the first name starts from (`AT_FDCWD` when none), or fchmod's
    /// and fchown's descriptor, as the kernel side used it.
    pub dirfd: i32,
    /// The directory the first name starts from when it is relative (the working directory or
    /// `dirfd`'s), or the descriptor's file: as the kernel walked it.
    pub base: ExeFile,
    /// The names as the caller passed them: the file (rename, link: the old name), the new name.
    pub name: [u8; ARG_PATH_CAP],
    pub name2: [u8; ARG_PATH_CAP],
    pub base_path: [u8; EXE_PATH_CAP],
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
    /// open_by_handle_at: every one is reported, the base is the file it opened (or the
    /// mount's, refused).
    pub const HANDLE: u32 = 16;
    /// None of the above, in a container whose sensitive files the daemon has not resolved
    /// yet (its first moments: `container_state::SET_PENDING`): every successful open is sent,
    /// and the daemon decides by the path the kernel walked.
    pub const PENDING: u32 = 32;
}

/// The pseudo-files matched by name on their filesystem (the kernel's dentry, not a string the
/// caller passed): (filesystem magic, name, accesses reported).
pub mod pseudo {
    use super::access::{READ, WRITE};
    pub use crate::magic::{
        BINFMTFS as BINFMTFS_MAGIC, CGROUP as CGROUP_SUPER_MAGIC, PROC as PROC_SUPER_MAGIC, SYSFS as SYSFS_MAGIC,
    };
    /// Longest name below (with its NUL).
    pub const NAME_CAP: usize = 24;
    pub const FILES: [(u32, &[u8], u32); 8] = [
        // Another process's memory: read (secrets) or written (code injection).
        (PROC_SUPER_MAGIC, b"mem\0", READ | WRITE),
        // The host's core dump handler: a container that writes it runs a program on the host.
        (PROC_SUPER_MAGIC, b"core_pattern\0", WRITE),
        (PROC_SUPER_MAGIC, b"sysrq-trigger\0", WRITE),
        // cgroup v1's release agent: the classic privileged-container escape.
        (CGROUP_SUPER_MAGIC, b"release_agent\0", WRITE),
        (CGROUP_SUPER_MAGIC, b"notify_on_release\0", WRITE),
        // The program the kernel runs to load a module, and the one it runs for every device
        // event: a container that writes either runs a program on the host.
        (PROC_SUPER_MAGIC, b"modprobe\0", WRITE),
        (SYSFS_MAGIC, b"uevent_helper\0", WRITE),
        // binfmt_misc's registration: an interpreter the kernel runs for matching files, for
        // every process of the namespace (the host's, before Linux 6.7).
        (BINFMTFS_MAGIC, b"register\0", WRITE),
    ];
}

/// io_uring's operation codes (`IORING_OP_*`, the kernel's ABI) of the opens.
/// `IOSQE_CQE_SKIP_SUCCESS`'s bit in a request's flags (`io_kiocb.flags`: the first bits are
/// the SQE's `IOSQE_*` ones): no completion entry when it succeeds.
pub const REQ_F_CQE_SKIP: u32 = 1 << 6;

pub mod uring_op {
    pub const CONNECT: u8 = 16;
    pub const OPENAT: u8 = 18;
    pub const OPENAT2: u8 = 28;
    pub const RENAMEAT: u8 = 35;
    pub const UNLINKAT: u8 = 36;
    pub const LINKAT: u8 = 39;
}

/// `file.f_mode` bits: the file was opened for reading, for writing (as `access`'s).
pub const FMODE_READ: u32 = 1;
pub const FMODE_WRITE: u32 = 2;

/// Open flags (x86, either ABI) the kernel side needs.
pub mod oflag {
    pub const ACCMODE: u32 = 3;
    pub const WRONLY: u32 = 1;
    pub const RDWR: u32 = 2;
    pub const CREAT: u32 = 0o100;
    pub const TRUNC: u32 = 0o1000;
    pub const APPEND: u32 = 0o2000;
    pub const NOFOLLOW: u32 = 0o400000;
    pub const DIRECTORY: u32 = 0o200000;
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
