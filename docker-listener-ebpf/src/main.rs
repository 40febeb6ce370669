//! docker-listener's eBPF programs. Each entry point is a thin wrapper: read, filter, reserve in
//! the ring buffer, submit. Every path that fails to deliver bumps a per-CPU counter instead of
//! vanishing.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns},
    macros::{map, tracepoint},
    maps::{PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use docker_listener_common::{ExecRecord, RecordHeader, RecordKind};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Per-CPU sequence number of the next record.
#[map]
static SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU loss counters, indexed by `LOSS_*`.
#[map]
static LOSS: PerCpuArray<u64> = PerCpuArray::with_max_entries(8, 0);

const LOSS_RINGBUF_FULL: u32 = 0;

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, idx: u32) -> u64 {
    match map.get_ptr_mut(idx) {
        Some(p) => unsafe {
            let v = *p;
            *p = v + 1;
            v
        },
        None => 0,
    }
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let seq = bump(&SEQ, 0);
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        bump(&LOSS, LOSS_RINGBUF_FULL);
        return 0;
    };
    let uid_gid = bpf_get_current_uid_gid();
    let rec = ExecRecord {
        header: RecordHeader {
            kind: RecordKind::Exec as u32,
            cpu: unsafe { aya_ebpf::helpers::bpf_get_smp_processor_id() },
            seq,
            ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            pid: ctx.pid(),
            tgid: ctx.tgid(),
        },
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm: ctx.command().unwrap_or([0; 16]),
    };
    entry.write(rec);
    entry.submit(0);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
