//! System call numbers the raw exit program (`syscall_exit.rs`) routes, by ABI. The daemon
//! sets the bits of those its settings want in `ProbeConfig::exit_nrs`.

/// x86-64 (arch/x86/entry/syscalls/syscall_64.tbl).
pub mod x64 {
    pub const TRUNCATE: i64 = 76;
    pub const RENAME: i64 = 82;
    pub const LINK: i64 = 86;
    pub const UNLINK: i64 = 87;
    pub const CHMOD: i64 = 90;
    pub const FCHMOD: i64 = 91;
    pub const CHOWN: i64 = 92;
    pub const FCHOWN: i64 = 93;
    pub const LCHOWN: i64 = 94;
    pub const FCHOWNAT: i64 = 260;
    pub const UNLINKAT: i64 = 263;
    pub const RENAMEAT: i64 = 264;
    pub const LINKAT: i64 = 265;
    pub const SYMLINK: i64 = 88;
    pub const SYMLINKAT: i64 = 266;
    pub const FCHMODAT: i64 = 268;
    pub const RENAMEAT2: i64 = 316;
    pub const FCHMODAT2: i64 = 452;
    pub const OPEN: i64 = 2;
    pub const CREAT: i64 = 85;
    pub const OPENAT: i64 = 257;
    pub const OPEN_BY_HANDLE_AT: i64 = 304;
    pub const OPENAT2: i64 = 437;
    pub const CLONE: i64 = 56;
    pub const PTRACE: i64 = 101;
    pub const PIVOT_ROOT: i64 = 155;
    pub const CHROOT: i64 = 161;
    pub const MOUNT: i64 = 165;
    pub const UMOUNT2: i64 = 166;
    pub const INIT_MODULE: i64 = 175;
    pub const DELETE_MODULE: i64 = 176;
    pub const UNSHARE: i64 = 272;
    pub const SETNS: i64 = 308;
    pub const PROCESS_VM_WRITEV: i64 = 311;
    pub const FINIT_MODULE: i64 = 313;
    pub const BPF: i64 = 321;
    pub const CLONE3: i64 = 435;
    pub const SETUID: i64 = 105;
    pub const SETGID: i64 = 106;
    pub const SETREUID: i64 = 113;
    pub const SETREGID: i64 = 114;
    pub const SETRESUID: i64 = 117;
    pub const SETRESGID: i64 = 119;
    pub const CAPSET: i64 = 126;
    pub const SETGROUPS: i64 = 116;
    pub const SETFSUID: i64 = 122;
    pub const SETFSGID: i64 = 123;
    pub const PRCTL: i64 = 157;
    pub const WRITE: i64 = 1;
    pub const WRITEV: i64 = 20;
    pub const OPEN_TREE: i64 = 428;
    pub const MOVE_MOUNT: i64 = 429;
    pub const FSOPEN: i64 = 430;
    pub const FSCONFIG: i64 = 431;
    pub const FSMOUNT: i64 = 432;
    pub const FSPICK: i64 = 433;
    pub const MOUNT_SETATTR: i64 = 442;
    pub const SENDTO: i64 = 44;
    pub const SENDMSG: i64 = 46;
    pub const SENDMMSG: i64 = 307;
}

/// ia32 (arch/x86/entry/syscalls/syscall_32.tbl).
pub mod ia32 {
    pub const LINK: i64 = 9;
    pub const UNLINK: i64 = 10;
    pub const CHMOD: i64 = 15;
    pub const LCHOWN16: i64 = 16;
    pub const RENAME: i64 = 38;
    pub const TRUNCATE: i64 = 92;
    pub const FCHMOD: i64 = 94;
    pub const FCHOWN16: i64 = 95;
    pub const CHOWN16: i64 = 182;
    pub const TRUNCATE64: i64 = 193;
    pub const LCHOWN: i64 = 198;
    pub const FCHOWN: i64 = 207;
    pub const CHOWN: i64 = 212;
    pub const FCHOWNAT: i64 = 298;
    pub const UNLINKAT: i64 = 301;
    pub const RENAMEAT: i64 = 302;
    pub const LINKAT: i64 = 303;
    pub const SYMLINK: i64 = 83;
    pub const SYMLINKAT: i64 = 304;
    pub const FCHMODAT: i64 = 306;
    pub const RENAMEAT2: i64 = 353;
    pub const FCHMODAT2: i64 = 452;
    pub const OPEN: i64 = 5;
    pub const CREAT: i64 = 8;
    pub const OPENAT: i64 = 295;
    pub const OPEN_BY_HANDLE_AT: i64 = 342;
    pub const OPENAT2: i64 = 437;
    pub const EXECVE: i64 = 11;
    pub const MOUNT: i64 = 21;
    pub const UMOUNT: i64 = 22;
    pub const PTRACE: i64 = 26;
    pub const UMOUNT2: i64 = 52;
    pub const CHROOT: i64 = 61;
    pub const SOCKETCALL: i64 = 102;
    pub const CLONE: i64 = 120;
    pub const INIT_MODULE: i64 = 128;
    pub const DELETE_MODULE: i64 = 129;
    pub const PIVOT_ROOT: i64 = 217;
    pub const UNSHARE: i64 = 310;
    pub const SETNS: i64 = 346;
    pub const PROCESS_VM_WRITEV: i64 = 348;
    pub const FINIT_MODULE: i64 = 350;
    pub const BPF: i64 = 357;
    pub const EXECVEAT: i64 = 358;
    pub const SOCKET: i64 = 359;
    pub const BIND: i64 = 361;
    pub const CONNECT: i64 = 362;
    pub const LISTEN: i64 = 363;
    pub const ACCEPT4: i64 = 364;
    pub const CLONE3: i64 = 435;
    // The 16-bit uid/gid calls, and their 32-bit ids successors.
    pub const SETUID16: i64 = 23;
    pub const SETGID16: i64 = 46;
    pub const SETREUID16: i64 = 70;
    pub const SETREGID16: i64 = 71;
    pub const SETRESUID16: i64 = 164;
    pub const SETRESGID16: i64 = 170;
    pub const CAPSET: i64 = 185;
    pub const SETREUID: i64 = 203;
    pub const SETREGID: i64 = 204;
    pub const SETRESUID: i64 = 208;
    pub const SETRESGID: i64 = 210;
    pub const SETUID: i64 = 213;
    pub const SETGID: i64 = 214;
    pub const WRITE: i64 = 4;
    pub const WRITEV: i64 = 146;
    pub const SENDMMSG: i64 = 345;
    pub const SENDTO: i64 = 369;
    pub const SENDMSG: i64 = 370;
    pub const SETGROUPS16: i64 = 81;
    pub const SETFSUID16: i64 = 138;
    pub const SETFSGID16: i64 = 139;
    pub const PRCTL: i64 = 172;
    pub const SETGROUPS: i64 = 206;
    pub const SETFSUID: i64 = 215;
    pub const SETFSGID: i64 = 216;
    // The system calls added since 4.18 have one number in every ABI.
    pub use super::x64::{FSCONFIG, FSMOUNT, FSOPEN, FSPICK, MOUNT_SETATTR, MOVE_MOUNT, OPEN_TREE};
}

use crate::family::switch;

/// Each exit-reported family's numbers: (switch, x86-64 numbers, ia32 numbers).
pub const FAMILY_NRS: &[(u32, &[i64], &[i64])] = &[
    (
        switch::KERNEL_MODULE,
        &[x64::INIT_MODULE, x64::FINIT_MODULE, x64::DELETE_MODULE],
        &[ia32::INIT_MODULE, ia32::FINIT_MODULE, ia32::DELETE_MODULE],
    ),
    (switch::BPF, &[x64::BPF], &[ia32::BPF]),
    (switch::PTRACE, &[x64::PTRACE, x64::PROCESS_VM_WRITEV], &[ia32::PTRACE, ia32::PROCESS_VM_WRITEV]),
    (
        switch::NAMESPACE,
        &[
            x64::UNSHARE,
            x64::SETNS,
            x64::CLONE,
            x64::CLONE3,
            x64::MOUNT,
            x64::UMOUNT2,
            x64::PIVOT_ROOT,
            x64::CHROOT,
            x64::FSOPEN,
            x64::FSCONFIG,
            x64::FSMOUNT,
            x64::MOVE_MOUNT,
            x64::OPEN_TREE,
            x64::FSPICK,
            x64::MOUNT_SETATTR,
        ],
        &[
            ia32::UNSHARE,
            ia32::SETNS,
            ia32::CLONE,
            ia32::CLONE3,
            ia32::MOUNT,
            ia32::UMOUNT,
            ia32::UMOUNT2,
            ia32::PIVOT_ROOT,
            ia32::CHROOT,
            ia32::FSOPEN,
            ia32::FSCONFIG,
            ia32::FSMOUNT,
            ia32::MOVE_MOUNT,
            ia32::OPEN_TREE,
            ia32::FSPICK,
            ia32::MOUNT_SETATTR,
        ],
    ),
    (switch::PRIVILEGE, PRIVILEGE_X64, PRIVILEGE_IA32),
    (switch::FILE, FILE_X64, FILE_IA32),
    (
        switch::NETWORK,
        &[x64::WRITE, x64::WRITEV, x64::SENDTO, x64::SENDMSG, x64::SENDMMSG],
        // (socketcall's sends too: the 32-bit socket code hands them over.)
        &[ia32::WRITE, ia32::WRITEV, ia32::SENDTO, ia32::SENDMSG, ia32::SENDMMSG, ia32::SOCKETCALL],
    ),
];

/// The file-access family's numbers: opens, then the calls that change a file by its name or
/// descriptor.
pub const FILE_X64: &[i64] = &[
    x64::OPEN,
    x64::CREAT,
    x64::OPENAT,
    x64::OPENAT2,
    x64::OPEN_BY_HANDLE_AT,
    x64::UNLINK,
    x64::UNLINKAT,
    x64::RENAME,
    x64::RENAMEAT,
    x64::RENAMEAT2,
    x64::CHMOD,
    x64::FCHMODAT,
    x64::FCHMODAT2,
    x64::CHOWN,
    x64::LCHOWN,
    x64::FCHOWNAT,
    x64::LINK,
    x64::LINKAT,
    x64::SYMLINK,
    x64::SYMLINKAT,
    x64::TRUNCATE,
    x64::FCHMOD,
    x64::FCHOWN,
];
pub const FILE_IA32: &[i64] = &[
    ia32::OPEN,
    ia32::CREAT,
    ia32::OPENAT,
    ia32::OPENAT2,
    ia32::OPEN_BY_HANDLE_AT,
    ia32::UNLINK,
    ia32::UNLINKAT,
    ia32::RENAME,
    ia32::RENAMEAT,
    ia32::RENAMEAT2,
    ia32::CHMOD,
    ia32::FCHMODAT,
    ia32::FCHMODAT2,
    ia32::CHOWN,
    ia32::LCHOWN,
    ia32::CHOWN16,
    ia32::LCHOWN16,
    ia32::FCHOWNAT,
    ia32::LINK,
    ia32::LINKAT,
    ia32::SYMLINK,
    ia32::SYMLINKAT,
    ia32::TRUNCATE,
    ia32::TRUNCATE64,
    ia32::FCHMOD,
    ia32::FCHOWN,
    ia32::FCHOWN16,
];

/// The privilege-change family's numbers.
pub const PRIVILEGE_X64: &[i64] = &[
    x64::SETUID,
    x64::SETGID,
    x64::SETREUID,
    x64::SETREGID,
    x64::SETRESUID,
    x64::SETRESGID,
    x64::CAPSET,
    x64::SETFSUID,
    x64::SETFSGID,
    x64::SETGROUPS,
    x64::PRCTL,
];
pub const PRIVILEGE_IA32: &[i64] = &[
    ia32::SETFSUID16,
    ia32::SETFSGID16,
    ia32::SETGROUPS16,
    ia32::SETFSUID,
    ia32::SETFSGID,
    ia32::SETGROUPS,
    ia32::PRCTL,
    ia32::SETUID16,
    ia32::SETGID16,
    ia32::SETREUID16,
    ia32::SETREGID16,
    ia32::SETRESUID16,
    ia32::SETRESGID16,
    ia32::CAPSET,
    ia32::SETREUID,
    ia32::SETREGID,
    ia32::SETRESUID,
    ia32::SETRESGID,
    ia32::SETUID,
    ia32::SETGID,
];

/// The 32-bit execs (failed ones) and socket calls (`compat.rs`): (`ProbeConfig::compat_ops`
/// bit, numbers).
pub const COMPAT_NRS: &[(u32, &[i64])] = &[
    (crate::COMPAT_EXEC, &[ia32::EXECVE, ia32::EXECVEAT]),
    (1 << crate::family::socket::sock_op::SOCKET, &[ia32::SOCKET, ia32::SOCKETCALL]),
    (1 << crate::family::socket::sock_op::BIND, &[ia32::BIND, ia32::SOCKETCALL]),
    (1 << crate::family::socket::sock_op::CONNECT, &[ia32::CONNECT, ia32::SOCKETCALL]),
    (1 << crate::family::socket::sock_op::LISTEN, &[ia32::LISTEN, ia32::SOCKETCALL]),
    (1 << crate::family::socket::sock_op::ACCEPT, &[ia32::ACCEPT4, ia32::SOCKETCALL]),
];
