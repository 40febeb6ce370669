//! `bpf`: bpf(2) calls by a traced process that load a program or attach one (PROG_LOAD,
//! PROG_ATTACH, RAW_TRACEPOINT_OPEN, LINK_CREATE), reported at their exit by the raw exit
//! program (`syscall_exit.rs`), refused ones included. Map reads and writes and the other
//! commands are not reported (they are what a program's user does all day).
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use docker_listener_common::{
    RecordKind,
    family::bpf::{BpfRecord, PROG_NAME_CAP, cmd},
};

use crate::{
    budget::{admit_call, class, failed},
    maps::{reserve, submit},
    syscall_exit::call_head,
};

/// Bytes of `union bpf_attr` read: up to PROG_LOAD's `expected_attach_type` (offset 68).
const ATTR_READ: u32 = 72;

/// bpf(cmd, attr, size).
#[inline(always)]
pub fn on_exit(a: &[u64; 6], ret: i64, flags: u32) {
    let command = a[0] as u32;
    if !matches!(command, cmd::PROG_LOAD | cmd::PROG_ATTACH | cmd::RAW_TRACEPOINT_OPEN | cmd::LINK_CREATE) {
        return;
    }
    if !admit_call(class::BPF, u64::from(command) << 1 | failed(ret)) {
        return;
    }
    let Some((mut entry, header)) = reserve::<BpfRecord>(RecordKind::Bpf) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, command, ret, flags);
        (*r).prog_type = 0;
        (*r).insn_cnt = 0;
        (*r).attach_type = 0;
        (*r).attr_unavailable = 0;
        (*r).prog_name = [0; PROG_NAME_CAP];
        let mut attr = [0u8; ATTR_READ as usize];
        // As many bytes as the caller said it passed (a shorter attr is zero-extended).
        let size = if a[2] < u64::from(ATTR_READ) { a[2] as u32 } else { ATTR_READ };
        if size == 0 || bpf_probe_read_user(attr.as_mut_ptr().cast(), size & 127, a[1] as *const _) != 0 {
            (*r).attr_unavailable = 1;
        } else {
            let u32_at = |off: usize| u32::from_ne_bytes([attr[off], attr[off + 1], attr[off + 2], attr[off + 3]]);
            match command {
                cmd::PROG_LOAD => {
                    (*r).prog_type = u32_at(0);
                    (*r).insn_cnt = u32_at(4);
                    (*r).attach_type = u32_at(68);
                    (*r).prog_name.copy_from_slice(&attr[48..48 + PROG_NAME_CAP]);
                }
                cmd::PROG_ATTACH | cmd::LINK_CREATE => (*r).attach_type = u32_at(8),
                _ => {}
            }
        }
    }
    submit(entry);
}
