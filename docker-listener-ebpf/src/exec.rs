//! Process execution.
//!
//! - `sched_process_exec` reports every successful exec: the file the kernel executed (the new
//!   image's `mm->exe_file`, its inode and its path walked up to the task's root: `path.rs`), the
//!   path the caller gave (`bprm->filename`), the new image's argv read from
//!   `mm->arg_start..arg_end` (its head and its tail when it is longer than the limit), the
//!   parent, and the image generations (`self_exec_id`) that tie the event to the parent's image
//!   of the moment it forked.
//! - `sys_enter_execve[at]` remembers the filename and argv pointers; `sys_exit_execve[at]` with a
//!   negative result reports the failed exec from them (the old image is still there). The 32-bit
//!   calls' exit (`compat.rs`) reports theirs through the same `report_failed`.
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use docker_listener_common::{
    ARGS_CAP, ExeFile, FILENAME_CAP, RecordHeader, RecordKind, exe_flags, family::exec::ExecRecord, flags, loss,
};

use crate::{
    kernel::{current_task, exec_id, offsets_valid, parent_exec_id, parent_of, process_start, read},
    maps::{PENDING_EXEC, PendingExec, bump_loss, config, reserve, submit, traced},
    path::exe_of,
};

/// Failed execs: argv entries read from the argument array (each string into a half-buffer
/// window, so the verifier can bound every write).
const MAX_ARGV_ENTRIES: usize = 32;
const HALF: usize = ARGS_CAP / 2;

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    // pid_t old_pid at 16: the calling thread (an exec from a thread other than the leader
    // changes its pid). The native enter's entry says the call was a native one; without one
    // the call came through the 32-bit ABI, the one other way to exec that runs this (TS_COMPAT
    // says only what the new image is: exec sets it for a 32-bit program whatever the caller
    // was; the 32-bit calls have no enter program: compat.rs). The entry is done with: a
    // successful exec reports nothing at its exit, and the exit may never come to the program
    // that would delete it (a native execve of an i386 image leaves the kernel with the 32-bit
    // execve's number, which the native exit tracepoint ignores; a non-leader's pid is gone).
    // Deleted here, traced or not (the container may have been untracked meanwhile).
    let pid_tgid = bpf_get_current_pid_tgid();
    let old_pid: u32 = unsafe { ctx.read_at(16) }.unwrap_or(pid_tgid as u32);
    let key = (pid_tgid >> 32 << 32) | u64::from(old_pid);
    let abi = if unsafe { PENDING_EXEC.get(&key) }.is_some() { 0 } else { flags::COMPAT };
    let _ = PENDING_EXEC.remove(&key);
    // Whether the process is the container runtime's from now on, traced or not (runc is
    // started outside the container it sets up).
    crate::runtime::on_exec((pid_tgid >> 32) as u32);
    if traced() {
        on_exec(&ctx, abi);
    }
    0
}

/// Fills what every exec record has: header, ids, comm, parent, start time.
#[inline(always)]
unsafe fn fill_common(r: *mut ExecRecord, header: RecordHeader, ret: i32) {
    let uid_gid = bpf_get_current_uid_gid();
    let task = current_task();
    unsafe {
        (*r).header = header;
        (*r).uid = uid_gid as u32;
        (*r).gid = (uid_gid >> 32) as u32;
        (*r).ret = ret;
        (*r).flags = 0;
        (*r).args_len = 0;
        (*r).args_head_len = 0;
        (*r).args_total = 0;
        (*r).filename_len = 0;
        (*r).exe_ctime_nsec = docker_listener_common::CTIME_UNKNOWN;
        (*r).exe_ctime_sec = 0;
        (*r).exec_id = exec_id(task);
        (*r).parent_exec_id = parent_exec_id(task);
        (*r).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if offsets_valid() {
            let (ppid, parent_start) = parent_of(task);
            (*r).ppid = ppid;
            (*r).parent_start_ns = parent_start;
            (*r).start_ns = process_start(task);
        } else {
            (*r).ppid = 0;
            (*r).parent_start_ns = 0;
            (*r).start_ns = 0;
        }
    }
}

fn on_exec(ctx: &TracePointContext, abi: u32) {
    // sched_process_exec: __data_loc char[] filename at 8, pid_t pid at 12, pid_t old_pid at 16.
    // (The leader's enter-time entry is deleted by its execve exit, which sees success.)

    // Over its container's budget (and not the first exec of this file there): held back.
    if !crate::budget::admit_exec(current_task()) {
        return;
    }
    let Some((mut entry, header)) = reserve::<ExecRecord>(RecordKind::Exec) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_common(r, header, 0);
        (*r).flags |= abi;
        let loc: u32 = ctx.read_at(8).unwrap_or(0);
        let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
        let n = bpf_probe_read_kernel_str((*r).filename.as_mut_ptr().cast(), FILENAME_CAP as u32, src.cast());
        if n > 0 {
            (*r).filename_len = (n - 1) as u32;
            if n as usize >= FILENAME_CAP {
                (*r).flags |= flags::FILENAME_TRUNCATED;
            }
        } else {
            bump_loss(loss::FILENAME_READ);
        }
        read_args_from_mm(r);
        ((*r).exe_ctime_nsec, (*r).exe_ctime_sec) = exe_of(current_task(), &mut (*r).exe, (*r).exe_path.as_mut_ptr());
        // The credentials the new image runs with: a setuid or setgid file, or file
        // capabilities, changed them at this exec.
        match crate::cred::creds_of(current_task()) {
            Some(c) => {
                (*r).creds = c;
                (*r).flags |= flags::CREDS;
            }
            None => (*r).creds = Default::default(),
        }
    }
    submit(entry);
}

/// argv of the new image, read from `mm->arg_start..arg_end` (NUL-separated strings): all of
/// it when it fits the limit, else its head and its tail, half the limit each (a command
/// hidden behind padding is in the tail).
#[inline(always)]
unsafe fn read_args_from_mm(r: *mut ExecRecord) {
    unsafe {
        if !offsets_valid() {
            (*r).flags |= flags::ARGS_UNAVAILABLE;
            return;
        }
        let mm: *const u8 = read(current_task(), config!(offsets.task_mm)).unwrap_or(core::ptr::null());
        let start: u64 = read(mm, config!(offsets.mm_arg_start)).unwrap_or(0);
        let end: u64 = read(mm, config!(offsets.mm_arg_end)).unwrap_or(0);
        if start == 0 || end <= start {
            (*r).flags |= flags::ARGS_UNAVAILABLE;
            bump_loss(loss::ARGS_READ);
            return;
        }
        let total = end - start;
        (*r).args_total = if total > u64::from(u32::MAX) { u32::MAX } else { total as u32 };
        let max = u64::from(config!(args_max));
        if total <= max {
            let len = (total as u32) & (ARGS_CAP as u32 - 1);
            if bpf_probe_read_user((*r).args.as_mut_ptr().cast(), len, start as *const _) == 0 {
                (*r).args_len = len;
                (*r).args_head_len = len;
            } else {
                (*r).flags |= flags::ARGS_UNAVAILABLE;
                bump_loss(loss::ARGS_READ);
            }
            return;
        }
        (*r).flags |= flags::ARGS_TRUNCATED;
        let half = (HALF - 1) as u64;
        let head = if max / 2 > half { half } else { max / 2 };
        let tail = if max - head > half { half } else { max - head };
        let (head, tail) = ((head as u32) & (HALF as u32 - 1), (tail as u32) & (HALF as u32 - 1));
        if bpf_probe_read_user((*r).args.as_mut_ptr().cast(), head, start as *const _) != 0 {
            (*r).flags |= flags::ARGS_UNAVAILABLE;
            bump_loss(loss::ARGS_READ);
            return;
        }
        (*r).args_head_len = head;
        (*r).args_len = head;
        let dst = (*r).args.as_mut_ptr().wrapping_add((head as usize) & (HALF - 1));
        if bpf_probe_read_user(dst.cast(), tail, (end - u64::from(tail)) as *const _) == 0 {
            (*r).args_len = head + tail;
        } else {
            bump_loss(loss::ARGS_READ);
        }
    }
}

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    // filename at 16, argv at 24.
    remember(&ctx, 16, 24);
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    // fd at 16, filename at 24, argv at 32.
    remember(&ctx, 24, 32);
    0
}

#[inline(always)]
fn remember(ctx: &TracePointContext, filename_at: usize, argv_at: usize) {
    if !traced() {
        return;
    }
    remember_args(unsafe { ctx.read_at(filename_at) }.unwrap_or(0), unsafe { ctx.read_at(argv_at) }.unwrap_or(0));
}

/// Keeps a native execve's filename and argv pointers until its exit.
#[inline(always)]
fn remember_args(filename: u64, argv: u64) {
    let pending = PendingExec { filename, argv, flags: 0, _pad: 0 };
    if PENDING_EXEC.insert(&bpf_get_current_pid_tgid(), &pending, 0).is_err() {
        bump_loss(loss::PENDING_MAP_FULL);
    }
}

#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

/// Reports a failed exec; a successful one was reported by sched_process_exec.
fn on_exit(ctx: &TracePointContext) {
    report_failure(unsafe { ctx.read_at(16) }.unwrap_or(0));
}

/// The exit of the native execve in flight on this thread, if any: reports it if it failed.
#[inline(always)]
fn report_failure(ret: i64) {
    let key = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { PENDING_EXEC.get(&key) }).copied() else { return };
    let _ = PENDING_EXEC.remove(&key);
    if ret < 0 {
        report_failed(&pending, ret);
    }
}

/// Reports a failed exec from its arguments (`flags::COMPAT`: a 32-bit caller's pointers).
#[inline(always)]
pub fn report_failed(pending: &PendingExec, ret: i64) {
    let Some((mut entry, header)) = reserve::<ExecRecord>(RecordKind::Exec) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        fill_common(r, header, ret as i32);
        (*r).flags |= pending.flags;
        // Nothing was executed: only the path the caller gave is known.
        (*r).creds = Default::default();
        (*r).exe = ExeFile { flags: exe_flags::UNAVAILABLE, ..ExeFile::default() };
        let n = bpf_probe_read_user_str(
            (*r).filename.as_mut_ptr().cast(),
            FILENAME_CAP as u32,
            pending.filename as *const _,
        );
        if n > 0 {
            (*r).filename_len = (n - 1) as u32;
            if n as usize >= FILENAME_CAP {
                (*r).flags |= flags::FILENAME_TRUNCATED;
            }
        } else {
            bump_loss(loss::FILENAME_READ);
        }
        if pending.flags & flags::COMPAT != 0 {
            read_args_from_argv::<u32>(r, pending.argv);
        } else {
            read_args_from_argv::<u64>(r, pending.argv);
        }
    }
    submit(entry);
}

/// A user pointer as a 64-bit or a 32-bit program stores it.
pub trait UserPtr: Copy + Default {
    fn addr(self) -> u64;
}

impl UserPtr for u64 {
    fn addr(self) -> u64 {
        self
    }
}

impl UserPtr for u32 {
    fn addr(self) -> u64 {
        u64::from(self)
    }
}

/// argv from the user's pointer array (the image that called execve is still mapped), whose
/// pointers are `P`s (a 32-bit caller's are 4 bytes).
#[inline(always)]
unsafe fn read_args_from_argv<P: UserPtr>(r: *mut ExecRecord, argv: u64) {
    let argv = argv as *const P;
    unsafe {
        if argv.is_null() {
            return;
        }
        let mut limit = config!(args_max) as usize;
        if limit > HALF - 1 {
            limit = HALF - 1;
        }
        let mut off: usize = 0;
        // Whether the loop stopped before argv's end (its NULL) or a failed read: more than
        // MAX_ARGV_ENTRIES arguments, the rest not read.
        let mut more = true;
        for i in 0..MAX_ARGV_ENTRIES {
            let mut ptr = P::default();
            if bpf_probe_read_user((&mut ptr as *mut P).cast(), size_of::<P>() as u32, argv.wrapping_add(i).cast()) != 0
            {
                (*r).flags |= flags::ARGS_UNAVAILABLE;
                bump_loss(loss::ARGS_READ);
                more = false;
                break;
            }
            let p = ptr.addr();
            if p == 0 {
                more = false;
                break;
            }
            if off >= limit {
                (*r).flags |= flags::ARGS_TRUNCATED;
                break;
            }
            let dst = (*r).args.as_mut_ptr().wrapping_add(off & (HALF - 1));
            let n = bpf_probe_read_user_str(dst.cast(), HALF as u32, p as *const _);
            if n <= 0 {
                more = false;
                break;
            }
            off += n as usize;
        }
        if more {
            // All MAX_ARGV_ENTRIES read: cut if argv goes on.
            let mut ptr = P::default();
            let next = argv.wrapping_add(MAX_ARGV_ENTRIES).cast();
            if bpf_probe_read_user((&mut ptr as *mut P).cast(), size_of::<P>() as u32, next) != 0 || ptr.addr() != 0 {
                (*r).flags |= flags::ARGS_TRUNCATED;
            }
        }
        if off > limit {
            off = limit;
            (*r).flags |= flags::ARGS_TRUNCATED;
        }
        (*r).args_len = off as u32;
        (*r).args_head_len = off as u32;
    }
}
