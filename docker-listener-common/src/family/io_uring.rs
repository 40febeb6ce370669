//! The io_uring family's record: an io_uring instance set up by a traced process
//! (`io_uring:io_uring_create`).
use crate::RecordHeader;

/// An io_uring instance made by a traced process: what it may do through the ring (beyond TCP
/// connects) no system call shows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoUringRecord {
    pub header: RecordHeader,
    pub start_ns: u64,
    pub exec_id: u64,
    pub fd: i32,
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// `IORING_SETUP_*` flags.
    pub setup_flags: u32,
    /// `flags` bits (COMPAT).
    pub flags: u32,
    /// The caller's executable as the kernel has it (`mm->exe_file`): device (the kernel's
    /// dev_t) and inode, 0 when unknown; tells the image that made the call when the agent
    /// meets the process only later, from /proc (as `CallHead::exe_ino`).
    pub exe_dev: u32,
    pub exe_ino: u64,
}
