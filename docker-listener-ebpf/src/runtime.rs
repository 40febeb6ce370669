//! The container runtime's own processes: runc setting a container up (about 170 mounts and
//! privilege changes) or entering it for a `docker exec` (about 100), in the container's
//! cgroup. Those calls are not the container's: the exit-reported families neither send them
//! nor count them against the container's budgets (`budget::admit_call`); they are counted
//! here (`RUNTIME_CALLS`), which the daemon reports as `ebpf_runtime_setup`.
//!
//! A process is the runtime's (`RUNTIME_TASKS`, by tgid) from its exec of a runtime binary
//! (`RUNTIME_FILES`: the executed file as the kernel has it, `mm->exe_file`'s inode and device,
//! which nothing in a container can be: runc's "cloned binary" is a read-only bind mount of the
//! same file) made outside every traced container (containerd's shim running runc, runc
//! starting `runc init`), or made by a process that already ran that same file for the runtime
//! (runc re-executing itself, also where it starts `runc init` straight into the container's
//! cgroup); its children are, from their fork. No process is, from its exec of any other file,
//! or once it has exited. So a container's process that runs the host's runtime binary (reached
//! through a mount of the host's filesystem) is not the runtime's: its exec is made in the
//! container's cgroup by a process that was not; nor is the container's first program, which
//! runc executes (nor `docker-init`, another runtime binary, which it executes in the
//! container).
//!
//! The exit program asks one lookup, by tgid, and only for a call its family reports; the
//! file's identity is read at each exec, once (`on_exec`). Measured with the kernel's BPF
//! statistics: a host's exec costs about 0.3 µs more, a fork or an exit 0.05 µs; thirty
//! `docker exec`s cost the exec program 0.7 ms more (the runtime's marks) and the exit program
//! 1.5 ms less (runc's records not made).
use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid},
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use docker_listener_common::FileId;

use crate::{
    kernel::{current_task, exe_identity},
    maps::CONTAINERS,
};

/// The runtime's binaries (runc, crun, ... where they are installed), written by the daemon
/// before it attaches the programs (`RuntimeBinaries::find`).
#[map]
pub static RUNTIME_FILES: HashMap<FileId, u8> = HashMap::with_max_entries(64, 0);

/// The runtime's processes, by tgid: the runtime binary each runs. Entries leave at the
/// process's exec of another file and at its exit. A process the map has no room for is not
/// marked: its calls are sent, and the daemon drops them (it knows the runtime's files too).
/// (A plain hash map: an LRU one's inserts cost the same here, measured, and would drop marks
/// silently.)
#[map]
pub static RUNTIME_TASKS: HashMap<u32, FileId> = HashMap::with_max_entries(8192, 0);

/// The runtime's calls not sent, per CPU (never reset).
#[map]
pub static RUNTIME_CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Whether the current process is the runtime's; counts its call if so.
#[inline(always)]
pub fn own_call() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if unsafe { RUNTIME_TASKS.get(&tgid) }.is_none() {
        return false;
    }
    if let Some(n) = RUNTIME_CALLS.get_ptr_mut(0) {
        unsafe { *n += 1 };
    }
    true
}

/// At every exec of the host (`sched_process_exec`, the new image in place): whether the
/// process `tgid` is the runtime's from now on.
#[inline(always)]
pub fn on_exec(tgid: u32) {
    let (ino, dev) = unsafe { exe_identity(current_task()) };
    let file = FileId { ino, dev, _pad: 0 };
    if ino != 0 && unsafe { RUNTIME_FILES.get(&file) }.is_some() {
        let outside = unsafe { CONTAINERS.get(&bpf_get_current_cgroup_id()) }.is_none();
        if outside || unsafe { RUNTIME_TASKS.get(&tgid) }.is_some_and(|f| f.ino == ino && f.dev == dev) {
            mark(tgid, &file);
            return;
        }
    }
    unmark(tgid);
}

/// The runtime binary the process `tgid` runs for the runtime, if it is the runtime's.
#[inline(always)]
pub fn file_of(tgid: u32) -> Option<FileId> {
    unsafe { RUNTIME_TASKS.get(&tgid) }.copied()
}

/// Marks the process `tgid` as the runtime's, running `file`: at its exec (`on_exec`), and at
/// a fork of the host (a new process, not a thread) whose parent is the runtime's (`file_of`),
/// the child.
#[inline(always)]
pub fn mark(tgid: u32, file: &FileId) {
    let _ = RUNTIME_TASKS.insert(&tgid, file, 0);
}

/// Unmarks the process `tgid`: at its exit (its last thread, or its leader where the kernel
/// does not say), and at its exec of a file that does not keep it the runtime's (`on_exec`).
#[inline(always)]
pub fn unmark(tgid: u32) {
    // (A lookup first: a deletion takes the map's lock, and most processes have no entry.)
    if unsafe { RUNTIME_TASKS.get(&tgid) }.is_some() {
        let _ = RUNTIME_TASKS.remove(&tgid);
    }
}
