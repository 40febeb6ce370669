//! The eBPF source: loads docker-listener-ebpf's programs, attaches them to their tracepoints
//! and drains the ring buffer.
use std::{
    io,
    os::fd::AsRawFd,
    sync::Arc,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
};
use docker_listener_common::{ExecRecord, RecordHeader, RecordKind};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

/// The eBPF object built by build.rs from docker-listener-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/docker-listener-ebpf"));

/// Tracepoints and the programs attached to them.
const TRACEPOINTS: &[(&str, &str, &str)] = &[("sched_process_exec", "sched", "sched_process_exec")];

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "this binary was built without its eBPF object (AYA_BUILD_SKIP was set): rebuild with \
         `cargo xtask build`"
    )]
    NoObject,
    #[error(
        "not permitted to load eBPF programs: run docker-listener as root (or with CAP_BPF, \
         CAP_PERFMON and CAP_SYS_RESOURCE); kernel said: {0}"
    )]
    NotPermitted(String),
    #[error(
        "tracefs is not mounted, so tracepoints cannot be attached: run `mount -t tracefs tracefs \
         /sys/kernel/tracing` (cargo xtask setup does it)"
    )]
    NoTracefs,
    #[error("loading the eBPF object failed: {0}")]
    Load(String),
    #[error("the eBPF object has no {0}: the object and the daemon were built from different sources")]
    Missing(&'static str),
    #[error("attaching to tracepoint {category}:{name} failed: {detail}")]
    Attach { category: &'static str, name: &'static str, detail: String },
    #[error("reading the ring buffer failed: {0}")]
    Ring(#[from] io::Error),
}

impl EbpfError {
    fn from_load(e: impl std::fmt::Display + std::fmt::Debug) -> EbpfError {
        let text = format!("{e}: {e:?}");
        if text.contains("EPERM") || text.contains("Operation not permitted") || text.contains("PermissionDenied") {
            EbpfError::NotPermitted(e.to_string())
        } else {
            EbpfError::Load(e.to_string())
        }
    }
}

/// Loaded and attached programs, ready to be drained.
pub struct EbpfProbes {
    _ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    loss: PerCpuArray<MapData, u64>,
}

impl EbpfProbes {
    /// Loads the object and attaches every program.
    pub fn load() -> Result<EbpfProbes, EbpfError> {
        if OBJECT.is_empty() {
            return Err(EbpfError::NoObject);
        }
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new().load(OBJECT).map_err(EbpfError::from_load)?;
        for &(prog, category, name) in TRACEPOINTS {
            let program: &mut TracePoint = ebpf
                .program_mut(prog)
                .ok_or(EbpfError::Missing("tracepoint program"))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| EbpfError::Load(e.to_string()))?;
            program.load().map_err(EbpfError::from_load)?;
            program.attach(category, name).map_err(|e| {
                if !std::path::Path::new("/sys/kernel/tracing/events").exists()
                    && !std::path::Path::new("/sys/kernel/debug/tracing/events").exists()
                {
                    EbpfError::NoTracefs
                } else {
                    EbpfError::Attach { category, name, detail: format!("{e}: {e:?}") }
                }
            })?;
        }
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").ok_or(EbpfError::Missing("EVENTS map"))?)
            .map_err(|e| EbpfError::Load(e.to_string()))?;
        let loss = PerCpuArray::try_from(ebpf.take_map("LOSS").ok_or(EbpfError::Missing("LOSS map"))?)
            .map_err(|e| EbpfError::Load(e.to_string()))?;
        // SAFETY: the RingBuf owns its map fd and keeps it open, unreplaced, for as long as the
        // AsyncFd (which owns the RingBuf) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| EbpfError::Ring(e.into()))?;
        Ok(EbpfProbes { _ebpf: ebpf, ring, loss })
    }

    /// Drains the ring buffer until `shutdown`.
    pub async fn run(mut self, stats: Arc<Stats>, shutdown: CancellationToken) -> Result<(), EbpfError> {
        tracing::info!(fd = self.ring.get_ref().as_raw_fd(), "eBPF programs attached: {}", TRACEPOINTS.len());
        let mut lost_seen = 0u64;
        loop {
            let mut guard = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                g = self.ring.readable_mut() => g?,
            };
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                Stats::inc(&stats.ebpf_records);
                handle_record(&item);
            }
            guard.clear_ready();
            let lost = self.lost_total();
            if lost > lost_seen {
                Stats::add(&stats.ebpf_lost, lost - lost_seen);
                tracing::warn!(lost = lost - lost_seen, lost_total = lost, "eBPF records lost in the kernel (ring buffer full)");
                lost_seen = lost;
            }
        }
    }

    fn lost_total(&self) -> u64 {
        self.loss.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}

fn handle_record(bytes: &[u8]) {
    if bytes.len() < size_of::<RecordHeader>() {
        return;
    }
    // SAFETY: RecordHeader is plain old data and the length was checked; read_unaligned copes
    // with any alignment.
    let header: RecordHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if let Ok(RecordKind::Exec) = RecordKind::try_from(header.kind)
        && bytes.len() >= size_of::<ExecRecord>()
    {
        // SAFETY: as above.
        let rec: ExecRecord = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let comm = rec.comm.split(|&b| b == 0).next().unwrap_or_default();
        tracing::trace!(pid = rec.header.tgid, cgroup = rec.header.cgroup_id, comm = %String::from_utf8_lossy(comm), "exec");
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so loading does not fail there.
fn raise_memlock_limit() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if ret != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK: {}", io::Error::last_os_error());
    }
}
