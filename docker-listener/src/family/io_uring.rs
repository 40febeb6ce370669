//! io_uring setups (`event.action: io_uring_setup`): a container process created an io_uring
//! instance. Its TCP connects are reported (by their state change); what else it does through
//! the ring no system call shows, so the setup itself is the event. And a ring's first
//! completion that found its completion queue full (`io_uring_overflow`): where the kernel does
//! not trace such completions (6.18), the opens and changes they end are not seen.
use docker_listener_common::{RecordKind, family::io_uring::IoUringRecord, flags};
use serde::{Serialize, ser::SerializeMap};

use super::{Family, Reported};
use crate::{
    ebpf::record::{Meta, Record, RecordError, meta, pod_ref},
    ecs::{ErrorOut, Kind, ProcRef, ProcessRefOut, SyscallOut, ThreadOut},
};

pub const FAMILY: Family =
    Family { name: "io_uring", kind: RecordKind::IoUring, enabled: |c| c.io_uring, reported: Reported::Own(decode) };

/// An io_uring instance set up by a traced process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoUring {
    pub meta: Meta,
    pub start_ns: u64,
    pub exec_id: u64,
    /// The caller's executable (inode, device), zeros when unknown.
    pub exe: (u64, u32),
    pub fd: i32,
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub setup_flags: u32,
    pub compat: bool,
    /// Not a setup: the ring's first completion-queue overflow.
    pub overflow: bool,
}

fn decode(bytes: &[u8], _max_args: usize) -> Result<Record, RecordError> {
    let r = pod_ref::<IoUringRecord>(bytes)?;
    Ok(Record::IoUring(IoUring {
        meta: meta(&r.header),
        start_ns: r.start_ns,
        exec_id: r.exec_id,
        exe: (r.exe_ino, r.exe_dev),
        fd: r.fd,
        sq_entries: r.sq_entries,
        cq_entries: r.cq_entries,
        setup_flags: r.setup_flags,
        compat: r.flags & flags::COMPAT != 0,
        overflow: r.flags & flags::CQ_OVERFLOW != 0,
    }))
}

#[derive(Debug, Clone)]
pub struct IoUringBody {
    pub process: ProcRef,
    pub fd: i32,
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub setup_flags: u32,
    pub compat: bool,
    pub overflow: bool,
}

#[derive(Serialize)]
struct RingOut {
    fd: i32,
    sq_entries: u32,
    cq_entries: u32,
    setup_flags: u32,
}

impl IoUringBody {
    pub fn new(r: &IoUring, process: ProcRef) -> IoUringBody {
        IoUringBody {
            process,
            fd: r.fd,
            sq_entries: r.sq_entries,
            cq_entries: r.cq_entries,
            setup_flags: r.setup_flags,
            compat: r.compat,
            overflow: r.overflow,
        }
    }

    pub fn kind(&self) -> Kind {
        Kind {
            kind: "event",
            category: "process",
            types: &["info"],
            action: if self.overflow { "io_uring_overflow" } else { "io_uring_setup" },
            dataset: "docker_listener.process",
        }
    }

    pub fn outcome(&self) -> &'static str {
        "success"
    }

    pub(crate) fn write_top<M: SerializeMap>(
        &self,
        thread: ThreadOut,
        m: &mut M,
    ) -> Result<Option<ErrorOut>, M::Error> {
        m.serialize_entry(
            "process",
            &ProcessRefOut { process: &self.process, thread, user: None, group: None, parent: None },
        )?;
        Ok(None)
    }

    pub(crate) fn write_listener<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        if self.overflow {
            // No system call: a completion of the ring's found its completion queue full.
            return m.serialize_entry("io_uring", &serde_json::json!({"completions_overflowed": true}));
        }
        m.serialize_entry("syscall", &SyscallOut::new("io_uring_setup", i64::from(self.fd), self.compat))?;
        m.serialize_entry(
            "io_uring",
            &RingOut {
                fd: self.fd,
                sq_entries: self.sq_entries,
                cq_entries: self.cq_entries,
                setup_flags: self.setup_flags,
            },
        )
    }
}
