//! Types shared by the kernel side (`docker-listener-ebpf`) and the daemon.
//!
//! Everything here is `#[repr(C)]` plain old data: the eBPF programs write these records into
//! the ring buffer and maps, the daemon reads them back byte for byte. Changing a layout means
//! changing both sides in one commit; `RECORD_VERSION` lets the daemon refuse a mismatched object.
#![no_std]

/// Bumped whenever a record layout below changes.
pub const RECORD_VERSION: u32 = 1;

/// Length of `task_struct::comm` (TASK_COMM_LEN in the kernel).
pub const COMM_LEN: usize = 16;

/// Record kinds. Spaced out so related kinds can be added next to each other; userspace converts
/// with `TryFrom<u32>` and counts unknown kinds instead of trusting them.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Exec = 100,
}

impl TryFrom<u32> for RecordKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            100 => Ok(RecordKind::Exec),
            other => Err(other),
        }
    }
}

/// Header at the start of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    /// A `RecordKind` value.
    pub kind: u32,
    /// CPU the record was produced on; sequence numbers are per CPU.
    pub cpu: u32,
    /// Per-CPU sequence number, incremented for every record the programs *tried* to emit, so
    /// userspace sees gaps when a record was dropped.
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

/// `sched:sched_process_exec`: a task replaced its program image.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub header: RecordHeader,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all types are #[repr(C)], contain only integers and byte arrays, and every bit
    // pattern is valid for them.
    unsafe impl aya::Pod for super::RecordHeader {}
    unsafe impl aya::Pod for super::ExecRecord {}
}
