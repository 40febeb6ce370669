//! The exec family's record: a program started (`sched_process_exec`) or failed to start
//! (`sys_exit_execve[at]` < 0, or the 32-bit ABI's at the system call's exit).
use crate::{ARGS_CAP, COMM_LEN, EXE_PATH_CAP, ExeFile, FILENAME_CAP, RecordHeader, family::cred::Creds};

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub header: RecordHeader,
    /// `real_parent->tgid`.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// 0 for a successful exec, else the negative errno execve returned.
    pub ret: i32,
    /// `task->start_boottime` of the process and of its parent (ns since boot): with the pid,
    /// they identify a process instance (`process.entity_id`).
    pub start_ns: u64,
    pub parent_start_ns: u64,
    /// `task->self_exec_id`: the image generation of this process (exec increments it; a child
    /// starts with its parent's). After a successful exec, the new image's.
    pub exec_id: u64,
    /// `task->parent_exec_id`: the parent's `self_exec_id` when it forked this process, i.e.
    /// which of the parent's images started it.
    pub parent_exec_id: u64,
    pub flags: u32,
    /// Bytes of `args` used (NUL-separated arguments); the first `args_head_len` come from the
    /// start of argv, the rest from its end (when argv was longer than the limit).
    pub args_len: u32,
    pub args_head_len: u32,
    /// The whole argv's length in bytes (`arg_end - arg_start`), 0 when unknown.
    pub args_total: u32,
    pub filename_len: u32,
    /// The executed file's ctime (`inode->i_ctime`: when its content or attributes last
    /// changed, which no caller can set; a file rewritten in place keeps its inode but not its
    /// ctime): nanoseconds, the kernel's flag bits cleared, `CTIME_UNKNOWN` set when the record
    /// has none; seconds. Here, not in `ExeFile`: 8 bytes more in the file-access records'
    /// `ExeFile`s made Linux 5.10's verifier take minutes over their unrolled walks.
    pub exe_ctime_nsec: u32,
    pub exe_ctime_sec: u64,
    pub exe: ExeFile,
    /// The credentials after a successful exec (`flags::CREDS`).
    pub creds: Creds,
    pub comm: [u8; COMM_LEN],
    /// The path given to execve (`bprm->filename`), as the caller spelled it.
    pub filename: [u8; FILENAME_CAP],
    pub args: [u8; ARGS_CAP],
    /// The executed file's path components, leaf first, each NUL-terminated (see `ExeFile`).
    pub exe_path: [u8; EXE_PATH_CAP],
}
