//! `ptrace`: ptrace(2) requests that take control of another process or write into it (ATTACH,
//! SEIZE, POKE*, SETREGS, SETFPREGS, SETREGSET, SETSIGINFO, SET_SYSCALL_INFO...) and
//! process_vm_writev(2), by a traced process, reported at their exit by the raw exit program
//! (`syscall_exit.rs`), refused ones included. Reads (PEEK*, GETREGS...) and the tracee's own
//! TRACEME are not reported.
use docker_listener_common::{
    RecordKind,
    family::ptrace::{PtraceRecord, op, request},
};

use crate::{
    budget::{admit_call, class, failed},
    kernel::{caller_pid_ns, tracee},
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
                | request::SETFPREGS
                | request::SETFPXREGS
                | request::SET_THREAD_AREA
                | request::ARCH_PRCTL
                | request::SETREGSET
                | request::SETSIGINFO
                | request::SET_SYSCALL_INFO
        )
    {
        return;
    }
    // process_vm_writev with nothing to write returns 0 before it looks for the process.
    if op == op::VM_WRITEV && ret == 0 {
        return;
    }
    let target = if op == op::VM_WRITEV { a[0] } else { a[1] } as u32;
    if !admit_call(class::PTRACE, u64::from(op) << 40 | ((req as u64) & 0xffff) << 1 | failed(ret)) {
        return;
    }
    let Some((mut entry, header)) = reserve::<PtraceRecord>(RecordKind::Ptrace) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op, ret, flags);
        (*r).request = req;
        (*r).target = target as i32;
        (*r).addr = addr;
        // Who an attach took hold of, or a write went into, when it is the caller's tracee
        // (named by the pid the caller gave, in its pid namespace: whatever the call's outcome,
        // a tracee with that pid is the process it named), read before anyone can end it or
        // reuse its pid.
        let (tgid, start) = tracee((*r).target).unwrap_or((0, 0));
        (*r).tracee_tgid = tgid;
        (*r).tracee_start_ns = start;
        // Where the caller's pids are, for the target of what the kernel does not link (a
        // refused attach, process_vm_writev) to be found in /proc when the caller is gone.
        let (level, ns) = caller_pid_ns().unwrap_or((0, 0));
        (*r).caller_pid_level = level;
        (*r).caller_pid_ns = ns;
    }
    submit(entry);
}
