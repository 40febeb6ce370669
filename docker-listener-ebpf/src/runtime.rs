//! The container runtime's own processes: runc setting a container up (about 170 mounts and
//! privilege changes) or entering it for a `docker exec` (about 100), in the container's
//! cgroup. Those calls are not the container's: the exit-reported families neither send them
//! nor count them against the container's budgets (`budget::admit_call`); they are counted
//! here (`RUNTIME_CALLS`), which the daemon reports as `ebpf_runtime_setup`.
//!
//! A process is the runtime's (`RUNTIME_TASKS`, by tgid) from its exec of a runtime binary
//! (`RUNTIME_FILES`: the executed file as the kernel has it, `mm->exe_file`'s inode and device)
//! made outside every traced container and in the host's mount namespace (containerd's shim
//! running runc); its children are, from their fork; it stays so across an exec made in the
//! host's mount namespace (runc starting `runc init` from its cloned copy, or its sealed one,
//! another file, since runc 1.2; also where it starts it straight into the container's cgroup).
//! No process is, from an exec made in any other mount namespace, or once it has exited. So
//! the container's first program, which `runc init` executes in the container's mount
//! namespace, is not the runtime's, even were it runc itself (`/proc/self/exe`); nor is a
//! container's process that runs the host's runtime binary through a mount of the host's
//! filesystem.
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
use docker_listener_common::{FileId, runtime_count};

use crate::{
    kernel::{current_task, exe_identity, read0},
    maps::{CONTAINERS, config},
};

/// The runtime's binaries (runc, crun, ... where they are installed), written by the daemon
/// before it attaches the programs (`RuntimeBinaries::find`).
#[map]
pub static RUNTIME_FILES: HashMap<FileId, u8> = HashMap::with_max_entries(64, 0);

/// The runtime's processes, by tgid: the runtime binary that made each the runtime's (the
/// shim's exec of it). Entries leave at the process's exec in another mount namespace than the
/// host's and at its exit. A process the map has no room for is not marked, and counted
/// (`runtime_count::UNMARKED`): its calls are sent, and the daemon, told so, drops them by
/// their file (it knows the runtime's files too).
/// (A plain hash map: an LRU one's inserts cost the same here, measured, and would drop marks
/// silently.)
#[map]
pub static RUNTIME_TASKS: HashMap<u32, FileId> = HashMap::with_max_entries(8192, 0);

/// Per CPU, never reset (`docker_listener_common::runtime_count`): the runtime's calls not
/// sent, and the processes of the runtime `RUNTIME_TASKS` had no room to mark (the daemon then
/// knows the runtime by its file too).
#[map]
pub static RUNTIME_CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(runtime_count::COUNT, 0);

/// Whether the current process is the runtime's; counts its call if so.
#[inline(always)]
pub fn own_call() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if unsafe { RUNTIME_TASKS.get(&tgid) }.is_none() {
        return false;
    }
    if let Some(n) = RUNTIME_CALLS.get_ptr_mut(runtime_count::CALLS) {
        unsafe { *n += 1 };
    }
    true
}

/// At every exec of the host (`sched_process_exec`, the new image in place): whether the
/// process `tgid` is the runtime's from now on. Only an exec made in the host's mount namespace
/// makes or keeps a process the runtime's: of a runtime binary, outside every traced container
/// (containerd's shim running runc); or of any file, by a process that already is (runc
/// starting `runc init` from its cloned or sealed copy, which is another file in runc 1.2, and
/// straight into the container's cgroup; the runtime's hooks). An exec in a container's mount
/// namespace never does: `runc init` running the container's command (were it
/// `/proc/self/exe`, runc itself) leaves the runtime's there.
#[inline(always)]
pub fn on_exec(tgid: u32) {
    let task = current_task();
    if !in_host_mount_namespace(task) {
        unmark(tgid);
        return;
    }
    if unsafe { RUNTIME_TASKS.get(&tgid) }.is_some() {
        return;
    }
    let (ino, dev) = unsafe { exe_identity(task) };
    let file = FileId { ino, dev, _pad: 0 };
    if ino != 0
        && unsafe { RUNTIME_FILES.get(&file) }.is_some()
        && unsafe { CONTAINERS.get(&bpf_get_current_cgroup_id()) }.is_none()
    {
        mark(tgid, &file);
    }
}

/// Whether the task runs in the host's mount namespace (`ProbeConfig::host_mnt_ns`); false
/// when either is unknown.
#[inline(always)]
fn in_host_mount_namespace(task: *const u8) -> bool {
    let host = config!(host_mnt_ns);
    if host == 0 || config!(offsets.mnt_ns_inum) == 0 {
        return false;
    }
    unsafe {
        let nsproxy: *const u8 = read0(task, config!(offsets.task_nsproxy));
        let mnt_ns: *const u8 = read0(nsproxy, config!(offsets.nsproxy_mnt_ns));
        read0::<u32>(mnt_ns, config!(offsets.mnt_ns_inum)) == host
    }
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
    if RUNTIME_TASKS.insert(&tgid, file, 0).is_err()
        && let Some(n) = RUNTIME_CALLS.get_ptr_mut(runtime_count::UNMARKED)
    {
        unsafe { *n += 1 };
    }
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
