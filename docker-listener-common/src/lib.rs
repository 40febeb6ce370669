//! Types shared by the kernel side (`docker-listener-ebpf`) and the daemon.
//!
//! Everything here is `#[repr(C)]` plain old data: the eBPF programs write these records into
//! the ring buffer, the daemon reads them back byte for byte. Changing a layout means changing
//! both sides in one commit (they are built together: the daemon embeds the object).
#![no_std]

pub mod family;
pub mod syscalls;

/// Length of `task_struct::comm` (TASK_COMM_LEN in the kernel).
pub const COMM_LEN: usize = 16;
/// Bytes of the executable path kept (`bprm->filename`, or the path given to a failed execve).
pub const FILENAME_CAP: usize = 256;
/// Bytes of argv kept, NUL-separated as in the process image. A power of two: the programs mask
/// offsets with it to satisfy the verifier. The configurable limit is at most `ARGS_CAP - 1`.
pub const ARGS_CAP: usize = 2048;
/// `sizeof(sockaddr_un.sun_path)`.
pub const UNIX_PATH_CAP: usize = 108;
/// Bytes of the executed file's path kept, as the kernel walked it: the components from the file
/// up to the task's root, leaf first, each NUL-terminated. A power of two plus one name: the
/// programs write each component at an offset masked with `EXE_PATH_MASK` (the verifier must
/// bound every write), at most `EXE_NAME_MAX` bytes long.
pub const EXE_PATH_CAP: usize = 1280;
pub const EXE_PATH_MASK: usize = 1023;
/// NAME_MAX + 1: a path component and its NUL.
pub const EXE_NAME_MAX: usize = 256;
/// Steps of the path walk (components and mount crossings). A deeper path is cut at the root
/// end and flagged (`exe_flags::TRUNCATED`).
pub const EXE_WALK_STEPS: usize = 64;
/// Bytes of a cgroup path kept.
pub const CGROUP_PATH_CAP: usize = 256;
/// Cgroup path prefixes that mark a container's cgroup (e.g. "/docker/"), and their capacity.
pub const PREFIXES: usize = 4;
pub const PREFIX_CAP: usize = 64;

/// Record kinds. Spaced out so related kinds can be added next to each other; userspace
/// converts with `TryFrom<u32>` and counts unknown kinds instead of trusting them.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A successful exec (`sched_process_exec`) or a failed one (`sys_exit_execve*` < 0).
    Exec = 100,
    /// A new process (not a thread) was forked.
    Fork = 110,
    /// A process ended (its last thread exited).
    Exit = 120,
    /// connect / bind / listen / accept.
    Socket = 200,
    /// An io_uring instance was created (`io_uring_setup`).
    IoUring = 210,
    /// A container cgroup was created (and is now traced) or removed.
    Cgroup = 300,
    /// Families reported at the system call's exit (`family`).
    KernelModule = 400,
    Bpf = 410,
    Ptrace = 420,
    Namespace = 430,
    Privilege = 440,
    FileAccess = 450,
    Network = 460,
}

impl TryFrom<u32> for RecordKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            100 => RecordKind::Exec,
            110 => RecordKind::Fork,
            120 => RecordKind::Exit,
            200 => RecordKind::Socket,
            210 => RecordKind::IoUring,
            300 => RecordKind::Cgroup,
            400 => RecordKind::KernelModule,
            410 => RecordKind::Bpf,
            420 => RecordKind::Ptrace,
            430 => RecordKind::Namespace,
            440 => RecordKind::Privilege,
            450 => RecordKind::FileAccess,
            460 => RecordKind::Network,
            other => return Err(other),
        })
    }
}

/// Reasons the kernel side failed to deliver something; indexes of the per-CPU `LOSS` array.
pub mod loss {
    /// A record did not fit in the ring buffer: the record is lost (a sequence gap).
    pub const RINGBUF_FULL: u32 = 0;
    /// An enter/exit pairing entry could not be stored: that syscall's record is lost.
    pub const PENDING_MAP_FULL: u32 = 1;
    /// A new container cgroup could not be added to the filter map: it is not traced.
    pub const CGROUP_MAP_FULL: u32 = 2;
    /// argv could not be read: the record is delivered without (or with partial) arguments.
    pub const ARGS_READ: u32 = 3;
    /// The executable path could not be read: the record is delivered without it.
    pub const FILENAME_READ: u32 = 4;
    /// A socket address could not be read: the record is delivered without it.
    pub const ADDR_READ: u32 = 5;
    /// The executed file could not be read (no `mm->exe_file`): the record is delivered with
    /// only the path given to execve.
    pub const EXE_READ: u32 = 6;
    /// Counted by the daemon, never by a program: records the first load of the object made
    /// before the daemon replaced it with the unrolled walk (a kernel refusing `bpf_loop`'s
    /// walk), which nothing read.
    pub const UNREAD_AT_FALLBACK: u32 = 7;
    /// A record held back by the per-container budget whose container's count could not be
    /// stored (the held-back map full): held, and reported by no container's count.
    pub const HELD_MAP_FULL: u32 = 8;
    pub const COUNT: u32 = 9;
    /// Names, by index, as the daemon reports them.
    pub const NAMES: [&str; 9] = [
        "ringbuf_full",
        "pending_map_full",
        "cgroup_map_full",
        "args_read",
        "filename_read",
        "addr_read",
        "exe_read",
        "unread_at_fallback",
        "held_map_full",
    ];
}

/// Slots of the kernel's `RUNTIME_CALLS` counters (per CPU, never reset).
pub mod runtime_count {
    /// The container runtime's calls the programs did not send.
    pub const CALLS: u32 = 0;
    /// Processes of the runtime the programs had no room to mark (`RUNTIME_TASKS` full).
    pub const UNMARKED: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// The per-container budget's classes of records (the kernel's `budget.rs`): each has a bucket
/// of its own, and what each holds back is counted apart (`HELD`'s key: the cgroup's id, the
/// class in its top byte).
pub mod budget {
    /// Exec, fork, exit, socket and network records: one bucket.
    pub const PROCESS: u64 = 0;
    pub const FILE_OPEN: u64 = 1;
    pub const FILE_CHANGE: u64 = 2;
    pub const FILE_HANDLE: u64 = 3;
    pub const PRIVILEGE: u64 = 4;
    pub const NAMESPACE: u64 = 5;
    pub const PTRACE: u64 = 6;
    pub const KERNEL_MODULE: u64 = 7;
    pub const BPF: u64 = 8;
    /// Opens through io_uring, each sent by its name unless its file is matched at its
    /// completion: a budget of their own, so that a container's ordinary io_uring traffic (a
    /// file server's) does not spend its changes' budget.
    pub const URING_OPEN: u64 = 9;
    /// Opens of a container's first moments, sent unmatched (`family::file::matched::PENDING`):
    /// a budget of their own, so that a large start (thousands of files opened) does not spend
    /// the budget its sensitive opens are matched on afterwards.
    pub const FIRST_MOMENTS: u64 = 10;
    /// Names, by class, as the daemon reports them.
    pub const NAMES: [&str; 11] = [
        "process",
        "file-open",
        "file-change",
        "file-open-by-handle",
        "privilege-change",
        "namespace-change",
        "ptrace",
        "kernel-module",
        "bpf",
        "io_uring-open",
        "file-open-first-moments",
    ];
    /// The class's place in a bucket's or a `HELD` key (a cgroup id, kernfs' inode number, is
    /// far below it).
    pub const SHIFT: u32 = 56;
}

/// Bits of the `flags` fields.
pub mod flags {
    /// argv was longer than the configured limit and was cut.
    pub const ARGS_TRUNCATED: u32 = 1;
    /// argv could not be read at all.
    pub const ARGS_UNAVAILABLE: u32 = 2;
    /// The path was longer than FILENAME_CAP.
    pub const FILENAME_TRUNCATED: u32 = 4;
    /// The remote address of a socket record could not be read.
    pub const REMOTE_UNAVAILABLE: u32 = 8;
    /// The socket's kernel state (type, protocol, local address) could not be read.
    pub const SOCKET_UNAVAILABLE: u32 = 16;
    /// The call came through the 32-bit (ia32) system call ABI.
    pub const COMPAT: u32 = 32;
    /// No system call: a TCP connection seen by its state change (io_uring, or another path
    /// that makes no connect(2)).
    pub const TCP_STATE: u32 = 64;
    /// `ExecRecord::creds` holds the new image's credentials.
    pub const CREDS: u32 = 128;
    /// `IoUringRecord`: not a setup but a ring's first completion that found its completion
    /// ring full (`io_uring_cqe_overflow`): from then on its completions are not all seen.
    pub const CQ_OVERFLOW: u32 = 256;
    /// A `SocketRecord` of a connect seen at its io_uring completion (`IORING_OP_CONNECT` of a
    /// Unix socket, which no system call and no TCP state change carries).
    pub const URING: u32 = 512;
    /// A native connect or bind whose descriptor held another socket at the call's exit than at
    /// its entry (another thread's `dup2` or `close` during the call): the socket the call
    /// was made on is not read (neither its state nor its listener), since the one under the
    /// descriptor now is another.
    pub const SOCKET_SWAPPED: u32 = 1024;
    /// A native connect or bind whose address in the caller's memory at the call's exit is not
    /// the one it had at the entry, which the kernel copied (another thread rewrote it during
    /// the call): the record's address is the entry's, or the kernel's destination.
    pub const REMOTE_REWRITTEN: u32 = 2048;
}

/// Bits of `ExeFile::flags`: how the walk from the executed file to the task's root ended.
pub mod exe_flags {
    /// The kernel gave no executed file (no offsets, no `mm->exe_file`): only `filename` is known.
    pub const UNAVAILABLE: u32 = 1;
    /// The walk met a dentry that is its own parent without being a mount's root: a file of an
    /// internal filesystem (memfd, shm of `shmem_file_setup`) or a disconnected one. The path is
    /// that dentry's name alone ("memfd:NAME").
    pub const DETACHED: u32 = 2;
    /// The walk reached the top of a mount tree other than the process's mount namespace's: the
    /// file is not in the process's namespace (reached through a descriptor passed in or a
    /// detached mount); the path is relative to that tree's root.
    pub const OUTSIDE_ROOT: u32 = 4;
    /// The path was deeper than the walk's steps: its leading components are missing.
    pub const TRUNCATED: u32 = 8;
    /// The path was longer than the record holds: its middle components are missing (an empty
    /// component marks where), its top-most and its last ones are kept.
    pub const GAP: u32 = 16;
    /// The process runs chrooted: its root is not its mount namespace's. The path is the
    /// namespace's (what the container sees from its real root), not the process's.
    pub const CHROOT: u32 = 32;
    /// The file is on an overlay filesystem and has a copy in its upper (writable) layer: it
    /// was created, or copied up to be modified, after the overlay was mounted (for a
    /// container's root: after it started). Only set when `KernelOffsets::ovl_valid`.
    pub const UPPER: u32 = 64;
}

/// Filesystem magic numbers (`super_block->s_magic`, `statfs.f_type`), low 32 bits.
pub mod magic {
    pub const OVERLAYFS: u32 = 0x794c_7630;
    pub const TMPFS: u32 = 0x0102_1994;
    pub const RAMFS: u32 = 0x8584_58f6;
    pub const HUGETLBFS: u32 = 0x9584_58f6;
    pub const PROC: u32 = 0x9fa0;
    pub const CGROUP: u32 = 0x0027_e0eb;
    pub const SYSFS: u32 = 0x6265_6572;
    pub const BINFMTFS: u32 = 0x4249_4e4d;
}

/// Header at the start of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// A `RecordKind` value.
    pub kind: u32,
    /// CPU the record was produced on; sequence numbers are per CPU.
    pub cpu: u32,
    /// Per-CPU sequence number, taken just before the ring-buffer reservation, so a record lost
    /// to a full ring buffer leaves a gap.
    pub seq: u64,
    /// `bpf_ktime_get_boot_ns()` when the record was produced.
    pub ktime_ns: u64,
    /// `bpf_get_current_cgroup_id()`: the cgroup v2 inode the task runs in.
    pub cgroup_id: u64,
    /// Thread id (kernel "pid").
    pub pid: u32,
    /// Process id (kernel "tgid").
    pub tgid: u32,
}

/// The file a successful exec ran (`mm->exe_file` of the new image), as the kernel has it: no
/// string the caller passed is involved.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExeFile {
    /// `inode->i_ino` and `super_block->s_dev` (the kernel's dev_t: major << 20 | minor).
    pub ino: u64,
    pub dev: u32,
    /// `super_block->s_magic` (low 32 bits): the filesystem (TMPFS_MAGIC, OVERLAYFS_SUPER_MAGIC...).
    pub magic: u32,
    /// `inode->i_nlink`: 0 when the file was unlinked (deleted, or a memfd).
    pub nlink: u32,
    /// `exe_flags` bits.
    pub flags: u32,
    /// Bytes of `ExecRecord::exe_path` used.
    pub path_len: u32,
    pub _pad: u32,
}

/// Set in `ExecRecord::exe_ctime_nsec` when the record has no ctime.
pub const CTIME_UNKNOWN: u32 = 1 << 31;

/// A file as the kernel knows it: `inode->i_ino` and `super_block->s_dev` (the kernel's dev_t).
/// The key of the container runtime's binaries (`RUNTIME_FILES`, written by the daemon) and
/// the value of the runtime's processes (`RUNTIME_TASKS`): the file each runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

/// A new process. The header describes the forking task (the parent).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    pub header: RecordHeader,
    pub child_tgid: u32,
    pub _pad: u32,
    pub child_start_ns: u64,
    pub parent_start_ns: u64,
    /// The forking task's `self_exec_id`: which of its images made the child.
    pub parent_exec_id: u64,
}

/// The end of a process. The header describes its last thread.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub header: RecordHeader,
    /// `task->exit_code`: (status << 8) | signal.
    pub exit_code: i32,
    pub _pad: u32,
    pub start_ns: u64,
}

/// An address as the kernel gives it: `family` AF_INET/AF_INET6/AF_UNIX (0 if unknown), `port`
/// in host order, `addr` the 4 or 16 address bytes in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockAddr {
    pub family: u16,
    pub port: u16,
    pub _pad: u32,
    pub addr: [u8; 16],
}

pub mod cgroup_op {
    pub const MKDIR: u32 = 1;
    pub const RMDIR: u32 = 2;
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupRecord {
    pub header: RecordHeader,
    pub op: u32,
    pub path_len: u32,
    /// The cgroup's id (the inode of its directory in the v2 hierarchy).
    pub id: u64,
    pub path: [u8; CGROUP_PATH_CAP],
}

/// Offsets (bytes) of the kernel struct members the programs read, resolved from the running
/// kernel's BTF by the daemon (no CO-RE relocations in Rust eBPF). A zero `valid` means BTF was
/// unavailable: the programs then skip what needs them (ppid, argv, socket details).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    pub valid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_tgid: u32,
    pub task_start_boottime: u32,
    pub task_mm: u32,
    pub task_exit_code: u32,
    pub task_files: u32,
    pub task_fs: u32,
    pub task_self_exec_id: u32,
    pub task_parent_exec_id: u32,
    /// `task_struct.signal` and `signal_struct.live` (an `atomic_t`: the thread group's threads
    /// not yet exiting; `do_exit` counts itself out before `sched_process_exit`, so 0 there means
    /// the whole group ended). 0 when unknown.
    pub task_signal: u32,
    pub signal_live: u32,
    /// `task_struct.thread_info.status` (x86: `TS_COMPAT` is set while a 32-bit syscall runs).
    pub task_ti_status: u32,
    /// `task_struct.stack` and the end of `struct pt_regs` (its size, `ss` the last member):
    /// where a task's saved registers are before Linux 5.15's `bpf_task_pt_regs`, at the top
    /// of its kernel stack (x86-64's `task_pt_regs`). 0 when unknown.
    pub task_stack: u32,
    pub pt_regs_size: u32,
    pub task_nsproxy: u32,
    pub nsproxy_mnt_ns: u32,
    pub mnt_ns_root: u32,
    /// `mnt_namespace.ns.inum`: a mount namespace's inode number (0 when unresolved).
    pub mnt_ns_inum: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_type: u32,
    pub socket_sk: u32,
    pub socket_file: u32,
    pub sk_family: u32,
    pub sk_protocol: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    // The executed file and the walk of its path (the kernel's d_path, done by hand).
    pub mm_exe_file: u32,
    pub fs_root: u32,
    /// `fs_struct.pwd` (the file-access family's base directory of a relative path).
    pub fs_pwd: u32,
    pub file_f_path: u32,
    pub file_f_inode: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_inode: u32,
    pub dentry_d_name: u32,
    pub qstr_len: u32,
    pub qstr_name: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub inode_i_nlink: u32,
    /// `inode`'s ctime: its seconds and its nanoseconds (`i_ctime.tv_sec` before 6.6,
    /// `__i_ctime.tv_sec` until 6.11, `i_ctime_sec` since). When the BTF names none of them,
    /// `i_ino`'s, and `inode_ctime_unknown` is `CTIME_UNKNOWN`: the programs read and mark
    /// without a branch (one would double the states the verifier walks after it).
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    pub inode_ctime_unknown: u32,
    pub sb_s_dev: u32,
    pub sb_s_magic: u32,
    /// Offset of `struct vfsmount mnt` inside `struct mount` (container_of).
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    pub vfsmount_mnt_root: u32,
    /// 1 when every offset of the executed file's walk was resolved.
    pub exe_valid: u32,
    // Credentials (`task->real_cred`): ids and capability sets.
    pub task_real_cred: u32,
    pub cred_uid: u32,
    pub cred_euid: u32,
    pub cred_suid: u32,
    pub cred_fsuid: u32,
    pub cred_gid: u32,
    pub cred_egid: u32,
    pub cred_sgid: u32,
    pub cred_fsgid: u32,
    pub cred_cap_effective: u32,
    pub cred_cap_permitted: u32,
    /// 1 when every credential offset was resolved.
    pub cred_valid: u32,
    // The file-access family's loads through BTF-typed pointers (no helper calls): the current
    // task's cgroup id (task->cgroups->dfl_cgrp->kn->id) and the descriptor table's embedded
    // array (`files_struct.fd_array`, the first 64 descriptors until the table grows).
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    pub files_fd_array: u32,
    /// 1 when every offset above was resolved.
    pub direct_valid: u32,
    /// `struct ovl_inode` (overlayfs, from vmlinux's BTF or the overlay module's): where its
    /// `vfs_inode` and its `__upperdentry` are, so an overlay inode's upper copy can be found.
    pub ovl_inode_vfs_inode: u32,
    pub ovl_inode_upperdentry: u32,
    /// 1 when both were resolved.
    pub ovl_valid: u32,
    /// `io_kiocb.opcode` (io_uring's request: which operation completed); 0 when unresolved
    /// (the member is never first: the request's file is).
    pub io_kiocb_opcode: u32,
    /// `file.f_flags` and `file.f_mode` (an io_uring open's flags and access, read from the
    /// file it made); 0 when unresolved.
    pub file_f_flags: u32,
    pub file_f_mode: u32,
    /// `io_kiocb.cqe.res`: the request's result (an open's descriptor).
    pub io_kiocb_res: u32,
    /// An open into the ring's file table (a fixed file: a slot, no descriptor): the request's
    /// `io_open.file_slot` (in `io_kiocb.cmd`; the slot + 1, 0 for an open that makes a
    /// descriptor), its ring (`io_kiocb.ctx`), and in the ring the slots' array
    /// (`io_ring_ctx.file_table`: `.data.nodes`, of `struct io_rsrc_node *`, since 6.13;
    /// `.files`, of `struct io_fixed_file`, before), the file pointer in an entry
    /// (`io_rsrc_node.file_ptr`, `io_fixed_file.file_ptr`; its low bits are flags), and whether
    /// the array holds pointers to the entries (1) or the entries (0). `io_fixed_valid`: 1 when
    /// all were resolved.
    pub io_open_file_slot: u32,
    pub io_kiocb_ctx: u32,
    pub io_ctx_fixed_files: u32,
    pub io_fixed_file_ptr: u32,
    pub io_fixed_indirect: u32,
    pub io_fixed_valid: u32,
    /// io_uring's changes by name, at their submission: the request's command (`io_kiocb.cmd`)
    /// as `struct io_rename` (and `io_link`, laid out the same) and `struct io_unlink`
    /// (their directory descriptors, `struct filename *`s and flags), and `filename.name`.
    /// `io_changes_valid`: 1 when all were resolved.
    pub io_kiocb_cmd: u32,
    pub io_rename_old_dfd: u32,
    pub io_rename_oldpath: u32,
    pub io_rename_new_dfd: u32,
    pub io_rename_newpath: u32,
    pub io_rename_flags: u32,
    pub io_unlink_dfd: u32,
    pub io_unlink_filename: u32,
    pub io_unlink_flags: u32,
    pub filename_name: u32,
    /// The request's flags (`io_kiocb.flags`), and as `struct io_open` its directory
    /// descriptor, name and `struct open_how` (flags, then mode): an open whose completion will
    /// not be seen is sent at its submission by its name.
    pub io_kiocb_flags: u32,
    pub io_open_dfd: u32,
    pub io_open_filename: u32,
    pub io_open_how: u32,
    pub io_changes_valid: u32,
    /// The BTF type id of `struct file` in the kernel's BTF, when the programs' calls to
    /// `bpf_rdonly_cast` were made real ([`RDONLY_CAST_CALL`]); 0 when not (they return null).
    pub file_type_id: u32,
    /// Who a successful PTRACE_ATTACH/SEIZE took hold of: a tracer's tracees
    /// (`task_struct.ptraced`, a list of their `task_struct.ptrace_entry`) and a task's pid in
    /// each pid namespace (`task_struct.thread_pid`, `pid.level`, `pid.numbers[]`: `struct upid`s
    /// `upid_size` bytes apart, each `nr` at 0 and `ns` at `upid_ns`), and a pid namespace's inode
    /// number. `tracee_valid`: 1 when all were resolved.
    pub task_ptraced: u32,
    pub task_ptrace_entry: u32,
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_ns: u32,
    pub upid_size: u32,
    /// `pid_namespace.ns.inum`: a pid namespace's inode number.
    pub pidns_inum: u32,
    pub tracee_valid: u32,
    /// A Unix socket's peer and the address that peer was bound to (`unix_sock.peer`,
    /// `unix_sock.addr`; `unix_address.len`, `unix_address.name`, a `sockaddr_un`): the socket a
    /// connect reached, whatever name the caller gave (a symlink, another mount of it).
    /// `unix_sock.path.dentry`: the file the peer was bound to (its inode, whatever name leads
    /// to it). `unix_peer_valid`: 1 when all were resolved.
    pub unix_sock_peer: u32,
    pub unix_sock_path_dentry: u32,
    pub unix_sock_addr: u32,
    pub unix_address_len: u32,
    pub unix_address_name: u32,
    pub unix_peer_valid: u32,
    /// `sock.sk_peer_pid`: on a connected Unix stream socket, the process that made its
    /// listener listen (`SO_PEERCRED`'s, copied at the connect), so the kernel can tell a
    /// container's own listener from one made by a process of another cgroup (the Docker
    /// socket); 0 when unresolved (a member at offset 0 is not this one): every listener then
    /// counts as outside.
    pub sk_peer_pid: u32,
    /// That process's task, to read its cgroup: `pid.tasks[PIDTYPE_TGID]` (its thread group's
    /// leader's `task_struct.pid_links[PIDTYPE_TGID]`); 0 when unresolved (as above: every
    /// listener then counts as outside).
    pub pid_tasks: u32,
    pub task_pid_links: u32,
    /// A task's namespaces (`nsproxy`'s members, `family::namespace::JOINED`'s order) and the
    /// offset of each one's `ns.inum`; `joined_valid`: 1 when all were resolved.
    pub nsproxy_ns: [u32; 6],
    pub ns_inum: [u32; 6],
    pub joined_valid: u32,
    /// `io_kiocb.file` (the request's file: a connect's socket); `io_connect_valid`: 1 when it
    /// and io_uring's completions (`io_kiocb_opcode`, `io_kiocb_res`) were resolved.
    pub io_kiocb_file: u32,
    pub io_connect_valid: u32,
}

/// The helper number the programs' calls to the kfunc `bpf_rdonly_cast` (6.2+: an untyped
/// kernel pointer made a BTF-typed one, read by plain loads) are compiled as. aya 0.14
/// relocates no kfunc calls, so the daemon rewrites each `call RDONLY_CAST_CALL` of the object
/// before loading it: into the kfunc's call where the kernel has it, into `r0 = 0` where not
/// (the programs then take their helper reads). No helper has this number.
pub const RDONLY_CAST_CALL: u32 = 0x6b66_6331;

/// `CONTAINERS` values: what the kernel knows of a traced cgroup.
pub mod container_state {
    /// Traced (every entry has it).
    pub const TRACED: u32 = 1;
    /// Made since the agent started (the cgroup_mkdir program sets it, with the cgroup's bit
    /// in `PENDING_BITS`) and its container's sensitive files not resolved yet: its opens are
    /// all sent (`family::file::matched::PENDING`) until the daemon clears it.
    pub const SET_PENDING: u32 = 2;
}

/// Words of the kernel's bit sets (`CONTAINER_BITS`, `SENSITIVE_BITS`, `PENDING_BITS`): 65536 bits, a value's
/// bit being `value % 65536`.
pub const BITS_WORDS: u32 = 1024;

/// Words of `ProbeConfig::exit_nrs` (512 system call numbers).
pub const EXIT_NR_WORDS: usize = 8;

/// `ProbeConfig::compat_ops` bit for execve/execveat.
pub const COMPAT_EXEC: u32 = 1 << 16;

/// Settings the daemon writes into the object's `.rodata` before loading it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProbeConfig {
    /// The daemon's own tgid: never traced.
    pub agent_tgid: u32,
    /// Trace every cgroup, not only containers'.
    pub trace_host: u32,
    /// Bytes of argv read (at most ARGS_CAP - 1).
    pub args_max: u32,
    /// How many of `prefixes` are set.
    pub prefix_count: u32,
    /// Offset of `group_dead` in the `sched_process_exit` record (kernel 6.16+), from tracefs;
    /// 0 where the kernel has none (the group leader's exit then stands for the process's).
    pub exit_group_dead: u32,
    /// Which 32-bit calls the compat programs report: `1 << sock_op::*`, and `COMPAT_EXEC`
    /// (the same switches as the native programs').
    pub compat_ops: u32,
    /// Which exit-reported families are on (`family::switch`).
    pub families: u32,
    /// Per-container budget of the high-volume records (exec, socket, network), records per
    /// second; 0: no budget. What is over it is held back and counted per cgroup (`HELD`).
    pub budget_rate: u32,
    /// The budget's burst: records a quiet container may send at once.
    pub budget_burst: u32,
    /// The host's mount namespace (`/proc/1/ns/mnt`'s inode; 0: unknown): a process becomes or
    /// stays the container runtime's only by an exec made there (`runtime.rs`).
    pub host_mnt_ns: u32,
    /// 1 where the kernel has `bpf_get_current_task_btf` (Linux 5.11) and the programs read the
    /// task it returns by plain loads; 0 where the daemon made its calls `bpf_get_current_task`
    /// (an untyped pointer, read by probe reads).
    pub task_btf: u32,
    /// 1 where the kernel has `bpf_task_pt_regs` (Linux 5.15); 0: the programs find the saved
    /// registers at the top of the task's kernel stack (`offsets.task_stack`).
    pub task_pt_regs: u32,
    /// System call numbers (below 512) the raw exit program looks at, either ABI: a bitmap the
    /// daemon fills from the families that are on. Every other call leaves after one load.
    pub exit_nrs: [u64; EXIT_NR_WORDS],
    pub prefix_len: [u32; PREFIXES],
    /// Cgroup v2 path prefixes of container cgroups ("/docker/", "/system.slice/docker-").
    pub prefixes: [[u8; PREFIX_CAP]; PREFIXES],
    pub offsets: KernelOffsets,
}

impl ProbeConfig {
    pub const fn zeroed() -> ProbeConfig {
        // SAFETY: ProbeConfig is made only of integers and arrays of integers: all zeros is a
        // valid value (and the one the object's .rodata starts with).
        unsafe { core::mem::zeroed() }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: every type is #[repr(C)], made only of integers and byte arrays, with explicit
    // padding fields, so every bit pattern is valid.
    unsafe impl aya::Pod for super::RecordHeader {}
    unsafe impl aya::Pod for super::family::exec::ExecRecord {}
    unsafe impl aya::Pod for super::ExeFile {}
    unsafe impl aya::Pod for super::FileId {}
    unsafe impl aya::Pod for super::ForkRecord {}
    unsafe impl aya::Pod for super::ExitRecord {}
    unsafe impl aya::Pod for super::family::socket::SocketRecord {}
    unsafe impl aya::Pod for super::CgroupRecord {}
    unsafe impl aya::Pod for super::family::io_uring::IoUringRecord {}
    unsafe impl aya::Pod for super::ProbeConfig {}
    unsafe impl aya::Pod for super::family::CallHead {}
    unsafe impl aya::Pod for super::family::kmod::KernelModuleRecord {}
    unsafe impl aya::Pod for super::family::bpf::BpfRecord {}
    unsafe impl aya::Pod for super::family::ptrace::PtraceRecord {}
    unsafe impl aya::Pod for super::family::namespace::NamespaceRecord {}
    unsafe impl aya::Pod for super::family::cred::CredRecord {}
    unsafe impl aya::Pod for super::family::file::FileRecord {}
    unsafe impl aya::Pod for super::family::file::PathRecord {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{
        family::{exec::ExecRecord, io_uring::IoUringRecord, socket::SocketRecord},
        *,
    };

    #[test]
    fn layouts_have_no_implicit_padding() {
        // Sizes are sums of the fields: a change that adds implicit padding fails here.
        assert_eq!(size_of::<RecordHeader>(), 40);
        assert_eq!(size_of::<ExeFile>(), 8 + 4 * 6);
        assert_eq!(
            size_of::<ExecRecord>(),
            40 + 4 * 4
                + 8 * 4
                + 4 * 6
                + 8
                + size_of::<ExeFile>()
                + size_of::<family::cred::Creds>()
                + COMM_LEN
                + FILENAME_CAP
                + ARGS_CAP
                + EXE_PATH_CAP
        );
        assert_eq!(size_of::<ForkRecord>(), 40 + 4 + 4 + 8 * 3);
        assert_eq!(size_of::<SockAddr>(), 24);
        assert_eq!(
            size_of::<SocketRecord>(),
            40 + 4
                + 4
                + 8
                + 8
                + 8
                + 2
                + 2
                + 4
                + 4
                + 4
                + 24
                + 24
                + UNIX_PATH_CAP
                + 4
                + UNIX_PATH_CAP
                + 4
                + 8
                + 4
                + 4
                + 8
        );
        assert!(EXE_PATH_MASK + 1 + EXE_NAME_MAX <= EXE_PATH_CAP && (EXE_PATH_MASK + 1).is_power_of_two());
        assert_eq!(size_of::<CgroupRecord>(), 40 + 4 + 4 + 8 + CGROUP_PATH_CAP);
        assert_eq!(size_of::<IoUringRecord>(), 40 + 8 + 8 + 4 * 6 + 8);
        assert!(ARGS_CAP.is_power_of_two());
        use family::*;
        assert_eq!(size_of::<CallHead>(), 40 + 8 * 3 + 4 * 2 + 8 + 4 * 4);
        assert_eq!(size_of::<kmod::KernelModuleRecord>(), size_of::<CallHead>() + 4 * 6 + 2 * ARG_PATH_CAP);
        assert_eq!(size_of::<bpf::BpfRecord>(), size_of::<CallHead>() + 4 * 4 + bpf::PROG_NAME_CAP);
        assert_eq!(size_of::<ptrace::PtraceRecord>(), size_of::<CallHead>() + 8 + 4 + 4 + 8 + 8 + 4 + 4);
        assert_eq!(size_of::<cred::Creds>(), 4 * 8 + 8 * 2);
        assert_eq!(size_of::<cred::CredRecord>(), size_of::<CallHead>() + 4 * 4 + size_of::<cred::Creds>());
        assert_eq!(
            size_of::<namespace::NamespaceRecord>(),
            size_of::<CallHead>()
                + 8 * 2
                + 4 * 4
                + 4 * namespace::JOINED.len()
                + 2 * ARG_PATH_CAP
                + namespace::FSTYPE_CAP
        );
        assert_eq!(
            size_of::<file::FileRecord>(),
            size_of::<CallHead>() + 4 * 6 + 8 + size_of::<ExeFile>() + ARG_PATH_CAP + EXE_PATH_CAP
        );
        assert_eq!(
            size_of::<file::PathRecord>(),
            size_of::<CallHead>() + 8 * 6 + 4 * 4 + size_of::<ExeFile>() + 2 * ARG_PATH_CAP + EXE_PATH_CAP
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            RecordKind::Exec,
            RecordKind::Fork,
            RecordKind::Exit,
            RecordKind::Socket,
            RecordKind::IoUring,
            RecordKind::Cgroup,
            RecordKind::KernelModule,
            RecordKind::Bpf,
            RecordKind::Ptrace,
            RecordKind::Namespace,
            RecordKind::Privilege,
            RecordKind::FileAccess,
        ] {
            assert_eq!(RecordKind::try_from(k as u32), Ok(k));
        }
        assert_eq!(RecordKind::try_from(7), Err(7));
    }
}
