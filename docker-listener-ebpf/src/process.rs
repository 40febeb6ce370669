//! Process lifecycle, so the daemon knows the process tree inside containers and can forget
//! processes that ended: a fork record for each new process (threads are skipped), an exit
//! record when a process's last thread exits.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use docker_listener_common::{ExitRecord, ForkRecord, RecordKind};

use crate::{
    kernel::{current_task, exec_id, live_threads, offsets_valid, process_start, read},
    maps::{config, reserve, submit, traced},
};

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`, BTF-typed so
/// the child's tgid can be read (the classic tracepoint only gives its thread id). Runs in the
/// parent, so the parent's cgroup (which the child inherits) decides.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    // The container runtime's children are the runtime's, traced or not (runc forks on the
    // host before it moves into the container's cgroup).
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let runtime = crate::runtime::file_of(tgid);
    let traced = traced();
    if (runtime.is_none() && !traced) || !offsets_valid() {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    let Ok(child_tgid) = (unsafe { read::<u32>(child, config!(offsets.task_tgid)) }) else { return 0 };
    if child_tgid == tgid {
        // A new thread, not a process.
        return 0;
    }
    if let Some(file) = runtime {
        crate::runtime::mark(child_tgid, &file);
    }
    if !traced {
        return 0;
    }
    // A storm of processes is a storm of forks and exits too: the container's budget applies.
    if !crate::budget::admit() {
        return 0;
    }
    let Some((mut entry, header)) = reserve::<ForkRecord>(RecordKind::Fork) else { return 0 };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).header = header;
        (*r).child_tgid = child_tgid;
        (*r)._pad = 0;
        (*r).child_start_ns = read::<u64>(child, config!(offsets.task_start_boottime)).unwrap_or(0);
        (*r).parent_start_ns = process_start(current_task());
        (*r).parent_exec_id = exec_id(current_task());
    }
    submit(entry);
    0
}

/// `sched_process_exit`: comm at 8, pid at 24, prio at 28, and from kernel 6.16 `bool
/// group_dead` (its offset, read from tracefs by the daemon, is in CONFIG). Reports the exit of
/// the whole thread group: `group_dead` where the kernel has it, else its source, the group's
/// count of live threads (`signal->live`, 0 once the last one exits), else the leader's exit.
///
/// The leader's exit is not the group's when other threads live on: a thread that calls
/// `execve` has the leader killed first (`de_thread`), and a leader may `pthread_exit`. Taking
/// it for the group's would drop the process from the agent's table before its exec, and the
/// exec would then name whoever the kernel reparented it to: a way to hide a parent.
#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let off = config!(exit_group_dead);
    let group_exit = if off != 0 {
        unsafe { ctx.read_at::<u8>(off as usize) }.unwrap_or(0) != 0
    } else {
        match unsafe { live_threads(current_task()) } {
            Some(live) => live == 0,
            None => {
                let pid_tgid = bpf_get_current_pid_tgid();
                pid_tgid as u32 == (pid_tgid >> 32) as u32
            }
        }
    };
    if !group_exit {
        return 0;
    }
    crate::runtime::unmark((bpf_get_current_pid_tgid() >> 32) as u32);
    if !traced() {
        return 0;
    }
    if !crate::budget::admit() {
        return 0;
    }
    let Some((mut entry, header)) = reserve::<ExitRecord>(RecordKind::Exit) else { return 0 };
    let r = entry.as_mut_ptr();
    let task = current_task();
    unsafe {
        (*r).header = header;
        (*r).exit_code =
            if offsets_valid() { read::<i32>(task, config!(offsets.task_exit_code)).unwrap_or(0) } else { 0 };
        (*r)._pad = 0;
        (*r).start_ns = process_start(task);
    }
    submit(entry);
    0
}
