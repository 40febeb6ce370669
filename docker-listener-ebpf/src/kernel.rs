//! Reading kernel structures at offsets the daemon resolved from BTF (Rust eBPF has no CO-RE
//! relocations). Every read goes through bpf_probe_read_kernel: a wrong pointer yields an error,
//! never a crash.
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use docker_listener_common::SockAddr;

use crate::maps::config;

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

#[inline(always)]
pub fn offsets_valid() -> bool {
    config!(offsets.valid) != 0
}

/// Reads a `T` at `base + off`.
#[inline(always)]
pub unsafe fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    if base.is_null() {
        return Err(-14);
    }
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

/// Reads a `T` at `base + off`, zero when it cannot (the helper zeroes its destination on
/// failure): no branch on the result, which the verifier would follow both ways at every read
/// of a loop.
#[inline(always)]
pub unsafe fn read0<T: Copy>(base: *const u8, off: u32) -> T {
    let mut v = core::mem::MaybeUninit::<T>::zeroed();
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            v.as_mut_ptr().cast(),
            size_of::<T>() as u32,
            base.wrapping_add(off as usize).cast(),
        );
        v.assume_init()
    }
}

/// `ptr` as a BTF-typed (untrusted, read-only) pointer to the kernel type `type_id`, read by
/// plain loads where a helper call costs tens of nanoseconds: the kfunc `bpf_rdonly_cast`.
/// Only where `offsets.file_type_id` says the daemon made the calls real; elsewhere it made
/// them `r0 = 0` (`docker_listener_common::RDONLY_CAST_CALL`), and a caller tests that
/// constant first, so the verifier never walks a use of the null.
#[inline(always)]
pub unsafe fn rdonly_cast(ptr: *const u8, type_id: u32) -> *const u8 {
    unsafe {
        let f: unsafe extern "C" fn(*const u8, u32) -> *const u8 =
            core::mem::transmute(docker_listener_common::RDONLY_CAST_CALL as usize);
        f(ptr, type_id)
    }
}

#[inline(always)]
pub fn current_task() -> *const u8 {
    unsafe { bpf_get_current_task() as *const u8 }
}

/// (tgid, process start time) of the task's real parent.
#[inline(always)]
pub unsafe fn parent_of(task: *const u8) -> (u32, u64) {
    let parent: *const u8 = unsafe { read(task, config!(offsets.task_real_parent)) }.unwrap_or(core::ptr::null());
    let tgid = unsafe { read::<u32>(parent, config!(offsets.task_tgid)) }.unwrap_or(0);
    (tgid, unsafe { process_start(parent) })
}

/// `start_boottime` of the task's process (its thread-group leader): with the tgid, it names a
/// process instance. (A thread's own start time differs; exec copies the leader's.)
#[inline(always)]
pub unsafe fn process_start(task: *const u8) -> u64 {
    if !offsets_valid() {
        return 0;
    }
    let leader: *const u8 = unsafe { read(task, config!(offsets.task_group_leader)) }.unwrap_or(core::ptr::null());
    unsafe { read::<u64>(leader, config!(offsets.task_start_boottime)) }.unwrap_or(0)
}

/// `task->signal->live`: the threads of the task's group not yet exiting (`do_exit` takes its
/// own out before `sched_process_exit`); `None` when the offsets are unknown or unreadable.
#[inline(always)]
pub unsafe fn live_threads(task: *const u8) -> Option<i32> {
    let (signal_off, live_off) = (config!(offsets.task_signal), config!(offsets.signal_live));
    if !offsets_valid() || signal_off == 0 || live_off == 0 {
        return None;
    }
    let signal: *const u8 = unsafe { read(task, signal_off) }.ok()?;
    unsafe { read::<i32>(signal, live_off) }.ok()
}

/// Pid namespaces nest at most this deep (the kernel's `MAX_PID_NS_LEVEL`).
const MAX_PID_NS_LEVEL: u32 = 32;

/// Tracees looked at for a ptrace request's target, newest first.
const MAX_TRACEES: usize = 16;

/// The pid namespace `task` sees pids in (its own: `thread_pid->numbers[level].ns`), and its
/// level; `None` when the offsets are unknown.
#[inline(always)]
unsafe fn pid_ns(task: *const u8) -> Option<(u32, u64)> {
    if !offsets_valid() || config!(offsets.tracee_valid) == 0 {
        return None;
    }
    let mine: *const u8 = unsafe { read(task, config!(offsets.task_thread_pid)) }.ok()?;
    let level = unsafe { read::<u32>(mine, config!(offsets.pid_level)) }.ok()?;
    if level > MAX_PID_NS_LEVEL {
        return None;
    }
    let at = config!(offsets.pid_numbers) + level * config!(offsets.upid_size);
    let ns = unsafe { read::<u64>(mine, at + config!(offsets.upid_ns)) }.ok()?;
    Some((level, ns))
}

/// `enum pid_type`'s `PIDTYPE_TGID`: a thread group's pid, as `SO_PEERCRED` keeps it.
const PIDTYPE_TGID: u32 = 1;

/// Whether `cgroup_of_process` can be asked: the offsets it reads were resolved.
#[inline(always)]
pub fn process_cgroups_known() -> bool {
    config!(offsets.pid_tasks) != 0 && config!(offsets.task_pid_links) != 0 && config!(offsets.direct_valid) != 0
}

/// The cgroup (its id) of the process `pid` names (a thread group's `struct pid`): its leader's
/// `cgroups->dfl_cgrp->kn->id`. `None` when the process is gone (or, unless
/// `process_cgroups_known`, when the offsets are unknown).
#[inline(always)]
pub unsafe fn cgroup_of_process(pid: *const u8) -> Option<u64> {
    let (tasks, links) = (config!(offsets.pid_tasks), config!(offsets.task_pid_links));
    if pid.is_null() || !process_cgroups_known() {
        return None;
    }
    // `tasks[]` is of `struct hlist_head` (a pointer), `pid_links[]` of `struct hlist_node`
    // (two).
    let node: *const u8 = unsafe { read(pid, tasks + 8 * PIDTYPE_TGID) }.ok()?;
    if node.is_null() {
        return None;
    }
    let task = node.wrapping_sub((links + 16 * PIDTYPE_TGID) as usize);
    let css: *const u8 = unsafe { read(task, config!(offsets.task_cgroups)) }.ok()?;
    let cgrp: *const u8 = unsafe { read(css, config!(offsets.css_set_dfl_cgrp)) }.ok()?;
    let kn: *const u8 = unsafe { read(cgrp, config!(offsets.cgroup_kn)) }.ok()?;
    unsafe { read::<u64>(kn, config!(offsets.kernfs_node_id)) }.ok()
}

/// The current task's pid namespace, as a caller's pid names a process in it: its level (0:
/// the host's) and its inode number (`/proc/<pid>/ns/pid`); `None` when unknown.
#[inline(always)]
pub unsafe fn caller_pid_ns() -> Option<(u32, u32)> {
    let (level, ns) = unsafe { pid_ns(current_task()) }?;
    let inum = unsafe { read::<u32>(ns as *const u8, config!(offsets.pidns_inum)) }.ok()?;
    Some((level, inum))
}

/// The tracee of the current task whose pid in the caller's pid namespace is `target`: the
/// process a successful PTRACE_ATTACH/SEIZE took hold of (`__ptrace_link` adds it first to
/// `ptraced`), or the one a POKE*/SETREGS wrote into, at the call's exit. A thread's id names
/// its thread (each is traced alone); its process is what is returned. Among the newest
/// `MAX_TRACEES`; a tracee unlinked meanwhile is not there, and no other is named in its place.
/// Its thread group id and start; `None` when the offsets are unknown or it is not there.
#[inline(always)]
pub unsafe fn tracee(target: i32) -> Option<(u32, u64)> {
    let task = current_task();
    let (level, ns) = unsafe { pid_ns(task) }?;
    let (thread_pid, level_off) = (config!(offsets.task_thread_pid), config!(offsets.pid_level));
    let at = config!(offsets.pid_numbers) + level * config!(offsets.upid_size);
    let ns_off = at + config!(offsets.upid_ns);
    let head = task.wrapping_add(config!(offsets.task_ptraced) as usize);
    let mut node: *const u8 = unsafe { read(task, config!(offsets.task_ptraced)) }.ok()?;
    for _ in 0..MAX_TRACEES {
        if node.is_null() || node == head {
            return None;
        }
        let tracee = node.wrapping_sub(config!(offsets.task_ptrace_entry) as usize);
        let theirs: *const u8 = unsafe { read(tracee, thread_pid) }.ok()?;
        if unsafe { read::<u32>(theirs, level_off) }.ok()? >= level
            && unsafe { read::<i32>(theirs, at) }.ok()? == target
            && unsafe { read::<u64>(theirs, ns_off) }.ok()? == ns
        {
            let tgid = unsafe { read::<u32>(tracee, config!(offsets.task_tgid)) }.ok()?;
            return Some((tgid, unsafe { process_start(tracee) }));
        }
        // `list_head.next`, first.
        node = unsafe { read(node, 0) }.ok()?;
    }
    None
}

/// `task->self_exec_id`: which image of its process the task runs (exec increments it, fork
/// copies it). Read as its low 32 bits, which is the whole field before 5.7 (u32) and what
/// matters of the u64 after.
#[inline(always)]
pub unsafe fn exec_id(task: *const u8) -> u64 {
    if !offsets_valid() {
        return 0;
    }
    u64::from(unsafe { read::<u32>(task, config!(offsets.task_self_exec_id)) }.unwrap_or(0))
}

/// x86's `TS_COMPAT`: set in `thread_info.status` while a 32-bit (ia32) system call runs, whether
/// it came from a 32-bit program or from `int $0x80` in a 64-bit one.
pub const TS_COMPAT: u32 = 0x0002;

/// Whether `task` is in a 32-bit system call.
#[inline(always)]
pub unsafe fn in_compat_syscall(task: *const u8) -> bool {
    offsets_valid() && unsafe { read::<u32>(task, config!(offsets.task_ti_status)) }.unwrap_or(0) & TS_COMPAT != 0
}

/// `task->parent_exec_id`: the parent's `self_exec_id` when it forked this task.
#[inline(always)]
pub unsafe fn parent_exec_id(task: *const u8) -> u64 {
    if !offsets_valid() {
        return 0;
    }
    u64::from(unsafe { read::<u32>(task, config!(offsets.task_parent_exec_id)) }.unwrap_or(0))
}

/// The `struct socket *` behind a file descriptor of the current task, if it is a socket:
/// task->files->fdt->fd[fd]->private_data, checked by the socket's back-pointer to its file.
#[inline(always)]
pub unsafe fn socket_of_fd(fd: i32) -> Option<*const u8> {
    unsafe { socket_of_file(file_of_fd(fd)?) }
}

/// The `struct socket *` of an open file, if it is a socket: its private_data, checked by the
/// socket's back-pointer to the file.
#[inline(always)]
pub unsafe fn socket_of_file(file: *const u8) -> Option<*const u8> {
    unsafe {
        let sock: *const u8 = read(file, config!(offsets.file_private_data)).ok()?;
        let back: *const u8 = read(sock, config!(offsets.socket_file)).ok()?;
        (back == file).then_some(sock)
    }
}

/// The `struct file *` of a file descriptor of the current task: task->files->fdt->fd[fd].
#[inline(always)]
pub unsafe fn file_of_fd(fd: i32) -> Option<*const u8> {
    if !offsets_valid() || !(0..(1 << 20)).contains(&fd) {
        return None;
    }
    unsafe {
        let files: *const u8 = read(current_task(), config!(offsets.task_files)).ok()?;
        let fdt: *const u8 = read(files, config!(offsets.files_fdt)).ok()?;
        let fds: *const u8 = read(fdt, config!(offsets.fdtable_fd)).ok()?;
        let file: *const u8 = read(fds, (fd as u32) * 8).ok()?;
        (!file.is_null()).then_some(file)
    }
}

/// The task's executable (`mm->exe_file`): its inode number and its device (the kernel's
/// dev_t), zeros when unknown.
#[inline(always)]
pub unsafe fn exe_identity(task: *const u8) -> (u64, u32) {
    if config!(offsets.exe_valid) == 0 {
        return (0, 0);
    }
    unsafe {
        let mm: *const u8 = read(task, config!(offsets.task_mm)).unwrap_or(core::ptr::null());
        let file: *const u8 = read(mm, config!(offsets.mm_exe_file)).unwrap_or(core::ptr::null());
        inode_identity(read(file, config!(offsets.file_f_inode)).unwrap_or(core::ptr::null()))
    }
}

/// An inode's number and its filesystem's device (the kernel's dev_t): zeros when unknown (a
/// null inode).
#[inline(always)]
pub unsafe fn inode_identity(inode: *const u8) -> (u64, u32) {
    unsafe {
        let sb: *const u8 = read0(inode, config!(offsets.inode_i_sb));
        (read0(inode, config!(offsets.inode_i_ino)), read0(sb, config!(offsets.sb_s_dev)))
    }
}

/// A file's inode number (`file->f_inode->i_ino`), 0 when it cannot be read.
#[inline(always)]
pub unsafe fn file_ino(file: *const u8) -> u64 {
    if config!(offsets.exe_valid) == 0 {
        return 0;
    }
    unsafe {
        let inode: *const u8 = read(file, config!(offsets.file_f_inode)).unwrap_or(core::ptr::null());
        read::<u64>(inode, config!(offsets.inode_i_ino)).unwrap_or(0)
    }
}

/// Copies a file's name (its dentry's, the last component of its path) into `dst` (`cap`
/// bytes); returns its length, 0 when it cannot be read.
#[inline(always)]
pub unsafe fn file_name(file: *const u8, dst: *mut u8, cap: u32) -> u32 {
    if config!(offsets.exe_valid) == 0 {
        return 0;
    }
    unsafe {
        let dentry: *const u8 =
            read(file, config!(offsets.file_f_path) + config!(offsets.path_dentry)).unwrap_or(core::ptr::null());
        let name: *const u8 =
            read(dentry, config!(offsets.dentry_d_name) + config!(offsets.qstr_name)).unwrap_or(core::ptr::null());
        if name.is_null() {
            return 0;
        }
        let n = aya_ebpf::helpers::generated::bpf_probe_read_kernel_str(dst.cast(), cap, name.cast());
        if n <= 0 { 0 } else { (n - 1) as u32 }
    }
}

/// What the kernel knows of a socket: (type, protocol, family, local address, remote address).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SocketState {
    pub sock_type: u16,
    pub protocol: u16,
    pub local: SockAddr,
    pub remote: SockAddr,
}

#[inline(always)]
pub unsafe fn socket_state(sock: *const u8) -> Option<SocketState> {
    unsafe {
        let sock_type: u16 = read(sock, config!(offsets.socket_type)).unwrap_or(0);
        let sk: *const u8 = read(sock, config!(offsets.socket_sk)).ok()?;
        let family: u16 = read(sk, config!(offsets.sk_family)).ok()?;
        let protocol: u16 = read(sk, config!(offsets.sk_protocol)).unwrap_or(0);
        let local_port: u16 = read(sk, config!(offsets.sk_num)).unwrap_or(0);
        let remote_port: u16 = u16::from_be(read(sk, config!(offsets.sk_dport)).unwrap_or(0));
        let mut local = SockAddr { family, port: local_port, ..SockAddr::default() };
        let mut remote = SockAddr { family, port: remote_port, ..SockAddr::default() };
        if family == AF_INET {
            let l: [u8; 4] = read(sk, config!(offsets.sk_rcv_saddr)).unwrap_or([0; 4]);
            let r: [u8; 4] = read(sk, config!(offsets.sk_daddr)).unwrap_or([0; 4]);
            local.addr[..4].copy_from_slice(&l);
            remote.addr[..4].copy_from_slice(&r);
        } else if family == AF_INET6 && config!(offsets.sk_v6_daddr) != 0 {
            local.addr = read(sk, config!(offsets.sk_v6_rcv_saddr)).unwrap_or([0; 16]);
            remote.addr = read(sk, config!(offsets.sk_v6_daddr)).unwrap_or([0; 16]);
        }
        Some(SocketState { sock_type, protocol, local, remote })
    }
}
