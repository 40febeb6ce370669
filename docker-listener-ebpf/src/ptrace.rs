//! `ptrace`: ptrace(2) requests that take control of another process or write into it (ATTACH,
//! SEIZE, POKE*, SETREGS, SETREGSET) and process_vm_writev(2), by a traced process, reported at
//! their exit by the raw exit program (`syscall_exit.rs`), refused ones included. Reads
//! (PEEK*, GETREGS...) and the tracee's own TRACEME are not reported.
use docker_listener_common::{
    RecordKind,
    family::ptrace::{PtraceRecord, op, request},
};

use crate::{
    budget::{admit_call, class, failed},
    kernel::tracee,
    maps::{reserve, submit},
    syscall_exit::call_head,
};

/// ptrace(request, pid, addr, data); process_vm_writev(pid, local_iov, liovcnt, remote_iov,
/// riovcnt, flags).
#[inline(always)]
pub fn on_exit(op: u32, a: &[u64; 6], ret: i64, flags: u32) {
    let (req, addr) = if op == op::PTRACE { (a[0] as i64, a[2]) } else { (0, a[4]) };
    if op == op::PTRACE
        && !matches!(
            req,
            request::ATTACH
                | request::SEIZE
                | request::POKETEXT
                | request::POKEDATA
                | request::POKEUSER
                | request::SETREGS
                | request::SETREGSET
        )
    {
        return;
    }
    if !admit_call(class::PTRACE, u64::from(op) << 40 | ((req as u64) & 0xffff) << 1 | failed(ret)) {
        return;
    }
    let Some((mut entry, header)) = reserve::<PtraceRecord>(RecordKind::Ptrace) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op, ret, flags);
        (*r).request = req;
        (*r).target = a[1] as i32;
        if op == op::VM_WRITEV {
            (*r).target = a[0] as i32;
        }
        (*r).addr = addr;
        // Who an attach took hold of, read before anyone can end it or reuse its pid.
        let (tgid, start) = if ret == 0 && matches!(req, request::ATTACH | request::SEIZE) {
            tracee(a[1] as i32).unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        (*r).tracee_tgid = tgid;
        (*r).tracee_start_ns = start;
    }
    submit(entry);
}
