//! `file-access`: a traced process's successful opens of sensitive files, reported at the
//! open's exit by the raw exit program (`syscall_exit.rs`), whatever the ABI, and at an io_uring
//! open's completion (`on_uring_open`, from `io_uring.rs`); its changes by name and refused opens
//! (`on_path_exit`); every open_by_handle_at (`raw_sys_exit_handle`, a program of its own).
//!
//! What was opened is the descriptor's file, as the kernel has it: its inode number is looked up
//! in `SENSITIVE` (the daemon resolved the configured paths inside each container's filesystem
//! into inodes), then its parent directory's (a file of a sensitive directory, also one created
//! after the set was made), then, on procfs and cgroup v1 only, its dentry's name (pseudo-files
//! whose inodes come and go: `/proc/<pid>/mem`, `core_pattern`, `release_agent`). No string the
//! caller passed is compared, so `..`, `//`, symlinks, relative paths, a directory descriptor,
//! `/proc/self/root/...` or a hard link (same inode) cannot evade it.
//!
//! Opens are the most frequent calls this program sees, on the host as in containers, and on
//! kernels whose calls are expensive (return-stack mitigations) every helper call costs tens of
//! nanoseconds. So the first checks are loads alone, through the BTF-typed task pointer and the
//! typed pointers read from it (the JIT makes them plain loads with a fault handler; before
//! Linux 5.11, which has no typed task, the same reads by the helper): the
//! task's cgroup id against a bit set of the traced cgroups (`CONTAINER_BITS`), the descriptor's
//! file from the table's embedded array (descriptors below 64, until the table grows), its
//! inode number and its directory's against a bit set of the sensitive ones (`SENSITIVE_BITS`),
//! its filesystem's magic. Only a hit goes on to the hash lookups (`SENSITIVE`, then the exact
//! container filter `CONTAINERS`) and the record. A descriptor the embedded array does not hold
//! takes the same checks through a pointer the kfunc `bpf_rdonly_cast` typed (6.2+), or where
//! the kernel has none, through `bpf_probe_read_kernel`.
//!
//! A container's first moments come before the daemon can have resolved its files (runc starts
//! its command before Docker reports the start): while its cgroup is marked `SET_PENDING` (a
//! bit of `PENDING_BITS` first, loads again), an open that matched nothing is sent all the same
//! (`matched::PENDING`) and the daemon decides by the path the kernel walked.
use aya_ebpf::{
    helpers::generated::{bpf_get_current_task_btf, bpf_probe_read_kernel_str, bpf_probe_read_user},
    macros::{btf_tracepoint, map},
    maps::{HashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use docker_listener_common::{
    ExeFile, RecordHeader, RecordKind, container_state, exe_flags,
    family::{
        ARG_PATH_CAP, RESULT_UNKNOWN, STRING_TRUNCATED,
        file::{
            AT_FDCWD, BASE_OF_NAME2, FMODE_READ, FMODE_WRITE, FileRecord, HANDLE_CAP, PathRecord, RESOLVE_IN_ROOT,
            access, access_of, by_handle, is_named_open, matched, name_args, oflag, op, pseudo,
        },
        switch,
    },
    flags, loss,
    syscalls::{ia32, x64},
};

use crate::{
    budget::{admit_call, class, failed},
    kernel::read0,
    maps::{CONTAINER_BITS, CONTAINERS, PENDING_BITS, SENSITIVE, SENSITIVE_BITS, bit_set, config},
    maps::{bump_loss, reserve, submit},
    path,
    syscall_exit::{Route, call_arguments, call_head, in_compat, kernel_str, reg, regs, route, user_str},
};

/// How the checks read kernel memory: plain loads through BTF-typed pointers, or the helper.
trait Mem {
    unsafe fn get<T: Copy>(base: *const u8, off: u32) -> T;
    /// Two pointer-sized members of one object.
    unsafe fn pair(base: *const u8, a: u32, b: u32) -> (u64, u64);
}

/// Loads through a BTF-typed pointer (a faulting address reads as zero). Before Linux 5.11 the
/// task is no typed pointer (`task_btf` 0, a load-time constant): the helper reads instead,
/// and each kernel's verifier walks one of the two.
struct Direct;
impl Mem for Direct {
    #[inline(always)]
    unsafe fn get<T: Copy>(base: *const u8, off: u32) -> T {
        if config!(task_btf) == 0 {
            return unsafe { Probe::get(base, off) };
        }
        unsafe { core::ptr::read_volatile(base.wrapping_add(off as usize) as *const T) }
    }
    #[inline(always)]
    unsafe fn pair(base: *const u8, a: u32, b: u32) -> (u64, u64) {
        if config!(task_btf) == 0 {
            return unsafe { Probe::pair(base, a, b) };
        }
        unsafe { (Self::get(base, a), Self::get(base, b)) }
    }
}

/// Bytes one helper call reads for a pair of members (`Probe::pair`).
const SPAN: u32 = 64;

/// `bpf_probe_read_kernel` (zero when it cannot): each call costs tens of nanoseconds where
/// returns are mitigated, so two members close together are read in one.
struct Probe;
impl Mem for Probe {
    #[inline(always)]
    unsafe fn get<T: Copy>(base: *const u8, off: u32) -> T {
        unsafe { read0(base, off) }
    }
    #[inline(always)]
    unsafe fn pair(base: *const u8, a: u32, b: u32) -> (u64, u64) {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        if hi + 8 - lo > SPAN {
            return unsafe { (read0(base, a), read0(base, b)) };
        }
        // (The offsets are load-time constants: the verifier knows every value below.)
        let mut buf = [0u64; (SPAN / 8) as usize];
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                buf.as_mut_ptr().cast(),
                hi + 8 - lo,
                base.wrapping_add(lo as usize).cast(),
            );
        }
        let at = |off: u32| buf[((off - lo) / 8) as usize & ((SPAN / 8) as usize - 1)];
        (at(a), at(b))
    }
}

/// (flags, mode, path argument) of an open, from its arguments.
#[inline(always)]
fn arguments(op: u32, a: &[u64; 6]) -> (u32, u32, u64) {
    match op {
        op::OPEN => (a[1] as u32, a[2] as u32, a[0]),
        op::CREAT => (oflag::CREAT | oflag::WRONLY | oflag::TRUNC, a[1] as u32, a[0]),
        op::OPENAT => (a[2] as u32, a[3] as u32, a[1]),
        op::OPENAT2 => {
            // openat2(dirfd, path, struct open_how *how, size): how = { u64 flags, u64 mode, .. }.
            let mut how = [0u64; 2];
            unsafe { bpf_probe_read_user(how.as_mut_ptr().cast(), 16, a[2] as *const _) };
            (how[0] as u32, how[1] as u32, a[1])
        }
        // (open_by_handle_at is a `PathRecord` call: `by_handle`.)
        _ => (0, 0, 0),
    }
}

/// An open the kernel refused (`refused_open`: EPERM, EACCES, EROFS), as a `PathRecord` call:
/// its operation and its arguments as openat's (dirfd, name, flags, mode). `None`: not
/// reported (most failures: a missing file).
#[inline(always)]
pub fn refused(op: u32, a: &[u64; 6], ret: i64) -> Option<(u32, [u64; 6])> {
    let r = docker_listener_common::family::file::refused_open(op, ret);
    if r == 0 {
        return None;
    }
    let (flags, mode, name) = arguments(op, a);
    let dirfd = if op == op::OPENAT || op == op::OPENAT2 { a[0] } else { AT_FDCWD as i64 as u64 };
    // openat2's `open_how.resolve` (after flags and mode): `RESOLVE_IN_ROOT` changes what the
    // name names. Read for every refused open, without a test of the call (the third argument
    // of the others is no pointer, or a stale one: the daemon reads this for openat2 only), so
    // that the verifier goes through the record's fill once, not twice (+29,000 instructions
    // on 6.1 with the test).
    let mut resolve = 0u64;
    unsafe { bpf_probe_read_user((&raw mut resolve).cast(), 8, a[2].wrapping_add(16) as *const _) };
    Some((r, [dirfd, name, flags as u64, mode as u64, resolve, 0]))
}

/// The value `SENSITIVE` has for an inode, 0 when none: the bit set first (loads), the hash
/// map on a hit.
#[inline(always)]
fn sensitive(ino: u64) -> u32 {
    if !bit_set(&SENSITIVE_BITS, ino) {
        return 0;
    }
    unsafe { SENSITIVE.get(&ino) }.copied().unwrap_or(0)
}

/// The current task's cgroup id if it may be traced, by loads through the typed task pointer:
/// not the agent, and its cgroup (task->cgroups->dfl_cgrp->kn->id) in the containers' bit set
/// (exact only after `CONTAINERS` says so: see `on_exit`). 0 when it is not.
#[inline(always)]
pub(crate) unsafe fn maybe_traced(task: *const u8) -> u64 {
    unsafe {
        if Direct::get::<u32>(task, config!(offsets.task_tgid)) == config!(agent_tgid) {
            return 0;
        }
        let css: *const u8 = Direct::get(task, config!(offsets.task_cgroups));
        let cgrp: *const u8 = Direct::get(css, config!(offsets.css_set_dfl_cgrp));
        let kn: *const u8 = Direct::get(cgrp, config!(offsets.cgroup_kn));
        let id: u64 = Direct::get(kn, config!(offsets.kernfs_node_id));
        if config!(trace_host) != 0 || bit_set(&CONTAINER_BITS, id) { id.max(1) } else { 0 }
    }
}

/// Whether nothing the current task (`task`) does to a file can be reported: the family has
/// no offsets, or the task is not one `maybe_traced` lets through (the exact filters of
/// `on_exit` and `on_path_exit` would refuse it). Loads alone: `may_report` asks it for the
/// changes and the refusals (an open's `opened` makes the same test first).
#[inline(always)]
pub(crate) fn untraced(task: *const u8) -> bool {
    config!(offsets.exe_valid) == 0 || (config!(offsets.direct_valid) != 0 && unsafe { maybe_traced(task) } == 0)
}

/// The task's tgid, by a load where the task is typed (the helper before Linux 5.11).
#[inline(always)]
pub(crate) unsafe fn task_tgid(task: *const u8) -> u32 {
    unsafe { Direct::get(task, config!(offsets.task_tgid)) }
}

/// The file of descriptor `fd` from the table's embedded array, as a typed pointer; null when
/// the table has grown past it (its `fd` no longer points there) or `fd` is not below 64.
#[inline(always)]
pub(crate) unsafe fn embedded_file(task: *const u8, fd: u32) -> *const u8 {
    unsafe {
        let files: *const u8 = Direct::get(task, config!(offsets.task_files));
        let fdt: *const u8 = Direct::get(files, config!(offsets.files_fdt));
        let array = config!(offsets.files_fd_array);
        let fds: *const u8 = Direct::get(fdt, config!(offsets.fdtable_fd));
        if fds != files.wrapping_add(array as usize) {
            return core::ptr::null();
        }
        // A constant offset in each arm: the verifier allows only those through typed pointers.
        macro_rules! arms {
            ($($n:literal)*) => {
                match fd {
                    $($n => Direct::get(files, array + $n * 8),)*
                    _ => core::ptr::null(),
                }
            };
        }
        arms!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
              32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63)
    }
}

/// The file of descriptor `fd` in a table that has grown past the embedded array: the table is
/// reached through typed pointers, its slot (an array of pointers, which the verifier gives no
/// type) with the helper.
#[inline(always)]
pub(crate) unsafe fn grown_table_file(task: *const u8, fd: u32) -> *const u8 {
    if fd >= 1 << 20 {
        return core::ptr::null();
    }
    unsafe {
        let files: *const u8 = Direct::get(task, config!(offsets.task_files));
        let fdt: *const u8 = Direct::get(files, config!(offsets.files_fdt));
        let fds: u64 = Direct::get(fdt, config!(offsets.fdtable_fd));
        read0(fds as *const u8, fd * 8)
    }
}

/// Whether the dentry's name is one of the pseudo-files of its filesystem that `want` asks for.
#[inline(always)]
unsafe fn pseudo_match(dentry: *const u8, magic: u32, want: u32) -> bool {
    if magic != pseudo::PROC_SUPER_MAGIC
        && magic != pseudo::CGROUP_SUPER_MAGIC
        && magic != pseudo::SYSFS_MAGIC
        && magic != pseudo::BINFMTFS_MAGIC
    {
        return false;
    }
    let mut name = [0u8; pseudo::NAME_CAP];
    unsafe {
        let p: *const u8 = read0(dentry, config!(offsets.dentry_d_name) + config!(offsets.qstr_name));
        if bpf_probe_read_kernel_str(name.as_mut_ptr().cast(), pseudo::NAME_CAP as u32, p.cast()) <= 0 {
            return false;
        }
    }
    for (m, n, acc) in pseudo::FILES {
        if m == magic && acc & want != 0 && name.starts_with(n) {
            return true;
        }
    }
    false
}

/// How `file` matches (`matched` bits, 0: not sensitive), read with `M`.
#[inline(always)]
unsafe fn classify<M: Mem>(file: *const u8, open_flags: u32, want: u32) -> u32 {
    unsafe {
        let (inode, dentry) =
            M::pair(file, config!(offsets.file_f_inode), config!(offsets.file_f_path) + config!(offsets.path_dentry));
        let (inode, dentry) = (inode as *const u8, dentry as *const u8);
        let (ino, sb) = M::pair(inode, config!(offsets.inode_i_ino), config!(offsets.inode_i_sb));
        let v = sensitive(ino);
        if v & (access::DIR | access::PARENT) == 0 && v & want != 0 {
            return matched::FILE;
        }
        let parent: *const u8 = M::get(dentry, config!(offsets.dentry_d_parent));
        let pinode: *const u8 = M::get(parent, config!(offsets.dentry_d_inode));
        let v = sensitive(M::get(pinode, config!(offsets.inode_i_ino)));
        if v & access::DIR != 0 && v & want != 0 {
            return matched::DIR;
        }
        if open_flags & oflag::CREAT != 0 {
            if v & access::PARENT != 0 {
                return matched::CREATED;
            }
            // One level below: a directory just made where a sensitive one belongs.
            let up: *const u8 = M::get(parent, config!(offsets.dentry_d_parent));
            let uinode: *const u8 = M::get(up, config!(offsets.dentry_d_inode));
            if sensitive(M::get(uinode, config!(offsets.inode_i_ino))) & access::PARENT != 0 {
                return matched::CREATED;
            }
        }
        let magic: u32 = M::get(sb as *const u8, config!(offsets.sb_s_magic));
        if pseudo_match(dentry, magic, want) { matched::PSEUDO } else { 0 }
    }
}

/// What an open that returned a descriptor (`ret`) opened and how it matched (`matched`), with
/// the task's cgroup, by loads alone (the helper's reads where the kernel's types say so):
/// `None` for the opens no event is made of, which are most. Not the exact filter yet (the
/// bits may be another cgroup's). `task` is the current task, BTF-typed from Linux 5.11
/// (before it, `Direct` reads it with the helper). The exit program asks this before it
/// tail-calls the family's program, which asks it again (`on_exit`).
#[inline(always)]
pub(crate) fn opened(task: *const u8, op: u32, a: &[u64; 6], ret: i64) -> Option<(*const u8, u32, u64)> {
    // A failed open opened nothing: there is no file to match here (a refused one goes to
    // `on_path_exit` by `refused`).
    if ret < 0 || config!(offsets.exe_valid) == 0 || config!(offsets.direct_valid) == 0 {
        return None;
    }
    let cgroup = unsafe { maybe_traced(task) };
    if cgroup == 0 {
        return None;
    }
    let (open_flags, _, _) = arguments(op, a);
    let want = access_of(open_flags);
    let typed = unsafe { embedded_file(task, ret as u32) };
    let (file, how) = if !typed.is_null() {
        (typed, unsafe { classify::<Direct>(typed, open_flags, want) })
    } else {
        let file = unsafe { grown_table_file(task, ret as u32) };
        if file.is_null() {
            return None;
        }
        // Typed by the kfunc where the kernel has it (6.2+): plain loads, as above. The test is
        // of a load-time constant, so each kernel's verifier walks one of the two ways.
        let type_id = config!(offsets.file_type_id);
        let how = if type_id != 0 {
            unsafe { classify::<Direct>(crate::kernel::rdonly_cast(file, type_id), open_flags, want) }
        } else {
            unsafe { classify::<Probe>(file, open_flags, want) }
        };
        (file, how)
    };
    // Nothing matched: sent all the same in a container's first moments, before the daemon
    // has resolved its sensitive files (a bit, then the exact state in `on_exit`).
    if how != 0 {
        Some((file, how, cgroup))
    } else if bit_set(&PENDING_BITS, cgroup) {
        Some((file, matched::PENDING, cgroup))
    } else {
        None
    }
}

/// Whether the exit of file call `op` (`Route::File`) by the current task may make an event:
/// what the family's program would look at first, by loads, so that the exit program
/// tail-calls it only then. A process the family cannot report on (the host's), an open that
/// matched nothing, a failure that is not a refusal (a missing file) end there.
#[inline(always)]
pub(crate) fn may_report(task: *const u8, op: u32, a: &[u64; 6], ret: i64) -> bool {
    // The cheapest test first; `opened` makes `untraced`'s own.
    if op >= op::FIRST_PATH_OP {
        !untraced(task)
    } else if ret < 0 {
        docker_listener_common::family::file::refused_open(op, ret) != 0 && !untraced(task)
    } else {
        opened(task, op, a, ret).is_some()
    }
}

/// open, creat, openat, openat2: `ret` is the new descriptor.
#[inline(always)]
pub fn on_exit(task: *const u8, op: u32, a: &[u64; 6], ret: i64, flags: u32) {
    let Some((file, how, cgroup)) = opened(task, op, a, ret) else { return };
    let (open_flags, mode, requested) = arguments(op, a);
    let want = access_of(open_flags);
    // The exact filter, now that the open is one to report: the bit may have been another
    // cgroup's.
    let state = unsafe { CONTAINERS.get(&cgroup) }.copied().unwrap_or(0);
    if (config!(trace_host) == 0 && state == 0)
        || (how == matched::PENDING && state & container_state::SET_PENDING == 0)
    {
        return;
    }
    report(file, Open { op, ret, flags, open_flags, mode, how, want, requested });
}

/// A file opened by io_uring (`IORING_OP_OPENAT`, `_OPENAT2`: `op` is `URING_OPENAT*`), at the
/// request's completion: `file`, and `fd` the descriptor it made, or with `flags`
/// `FIXED_FILE`, its slot in the ring's file table. Run by the process's thread that submitted
/// it or by one of its io_uring workers: threads of the process, in its cgroup, with its
/// descriptor table (`uring_opens_wanted` checked it). The request's arguments are gone by then
/// (its path is freed): the flags and the access are the file's own (`f_flags`, `f_mode`), and
/// there is no requested path. Rare: the exact container filter first, helper reads.
#[inline(always)]
pub fn on_uring_open(op: u32, fd: i32, file: *const u8, flags: u32) -> bool {
    let open_flags: u32 = unsafe { read0(file, config!(offsets.file_f_flags)) };
    let fmode: u32 = unsafe { read0(file, config!(offsets.file_f_mode)) };
    let want = fmode & (FMODE_READ | FMODE_WRITE);
    // (The kernel clears O_CREAT from a file's flags once it is open: a file created in a
    // sensitive directory is matched by its directory, not as created.)
    let how = unsafe { classify::<Probe>(file, 0, want) };
    if how == 0 {
        return false;
    }
    report(file, Open { op, ret: fd as i64, flags, open_flags, mode: 0, how, want, requested: 0 });
    true
}

/// Whether io_uring's opens are matched here, and this one is a traced process's: asked before
/// the open's file is looked for.
#[inline(always)]
pub fn uring_opens_wanted() -> bool {
    config!(offsets.exe_valid) != 0 && config!(offsets.file_f_mode) != 0 && crate::maps::traced()
}

/// What a `FileRecord` says of an open, beside the file.
struct Open {
    op: u32,
    ret: i64,
    flags: u32,
    open_flags: u32,
    mode: u32,
    how: u32,
    want: u32,
    /// The caller's path argument (0: none).
    requested: u64,
}

/// Sends the record of an open that matched.
#[inline(always)]
fn report(file: *const u8, o: Open) {
    // The kind: the file (its inode, unique while in use: a sensitive one, or one made in a
    // sensitive directory), the access, the outcome.
    let inode: u64 = unsafe { read0(file, config!(offsets.file_f_inode)) };
    let class = if o.how == matched::PENDING { class::FIRST_MOMENTS } else { class::FILE_OPEN };
    if !admit_call(class, (inode & 0xffff_ffff_ffff) << 3 | u64::from(o.want & 3) << 1 | failed(o.ret)) {
        return;
    }
    let Some((mut entry, header)) = reserve::<FileRecord>(RecordKind::FileAccess) else { return };
    let r = entry.as_mut_ptr();
    let (ret, requested) = (o.ret, o.requested);
    unsafe {
        (*r).call = call_head(header, o.op, ret, o.flags);
        (*r).fd = ret as i32;
        (*r).open_flags = o.open_flags;
        (*r).mode = o.mode;
        (*r).matched = o.how;
        (*r).access = o.want;
        let dentry: *const u8 = read0(file, config!(offsets.file_f_path) + config!(offsets.path_dentry));
        let parent: *const u8 = read0(dentry, config!(offsets.dentry_d_parent));
        let pinode: *const u8 = read0(parent, config!(offsets.dentry_d_inode));
        (*r).parent_ino = read0(pinode, config!(offsets.inode_i_ino));
        let (n, cut) = user_str(requested, (*r).requested.as_mut_ptr(), ARG_PATH_CAP as u32);
        (*r).requested_len = n;
        if cut {
            (*r).call.flags |= STRING_TRUNCATED;
        }
        // An opaque copy: the typed and the helper-read pointer reach the walk as one state,
        // so the verifier walks it once, not once per way here.
        let file = path::opaque(file as usize) as *const u8;
        path::file_of(crate::kernel::current_task(), file, &mut (*r).file, (*r).path.as_mut_ptr());
    }
    submit(entry);
}

/// The calls that change a file by its name (unlink, rename, chmod, chown, link, truncate) or by
/// its descriptor (fchmod, fchown), failed ones included: `op_` is a `PathRecord` operation.
/// A name is sent with the directory it starts from (walked by the kernel) for the daemon to
/// resolve in the container; a descriptor's file is matched here, as an open's is. Rare calls:
/// the exact container filter first.
///
/// Which arguments are names and descriptors depends on the call (`name_args`); past that
/// choice, everything is the same for every call, and the positions are made opaque, so that
/// the verifier goes through the rest (two strings, a descriptor, the walk) once, not once per
/// call.
#[inline(always)]
pub fn on_path_exit<const HANDLE: bool>(op_: u32, a: &[u64; 6], ret: i64, flags: u32) {
    if config!(offsets.exe_valid) == 0 || !crate::maps::traced() {
        return;
    }
    let by_fd = !HANDLE && matches!(op_, op::FCHMOD | op::FCHOWN | op::FCHOWN16);
    let mut how = 0;
    if by_fd {
        let Some(f) = (unsafe { crate::kernel::file_of_fd(a[0] as i32) }) else { return };
        how = unsafe { classify::<Probe>(f, 0, access::WRITE) };
        if how == 0 {
            return;
        }
    }
    if HANDLE {
        how = matched::HANDLE;
    }
    // The kind: an open by handle's outcome; a change's call and outcome.
    let admitted = if HANDLE {
        admit_call(class::FILE_HANDLE, failed(ret))
    } else {
        admit_call(class::FILE_CHANGE, u64::from(op_) << 1 | failed(ret))
    };
    if !admitted {
        return;
    }
    let at = names_at(op_);
    let Some((mut entry, header)) = reserve::<PathRecord>(RecordKind::FileAccess) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op_, ret, flags);
        fill_path::<HANDLE, false>(r, at, a, how);
    }
    submit(entry);
}

/// Where a call's names and directory descriptors are among its arguments (`name_args`),
/// opaque to the verifier.
#[inline(always)]
fn names_at(op_: u32) -> (usize, usize, usize, usize) {
    let (ni, di, n2i, d2i) = name_args(op_);
    (path::opaque(ni), path::opaque(di), path::opaque(n2i), path::opaque(d2i))
}

/// Fills a `PathRecord` after its head: the arguments, the names (from the caller's memory, or
/// with `KERNEL_NAMES` the kernel's: io_uring's copies), the base walked.
#[inline(always)]
unsafe fn fill_path<const HANDLE: bool, const KERNEL_NAMES: bool>(
    r: *mut PathRecord,
    (ni, di, n2i, d2i): (usize, usize, usize, usize),
    a: &[u64; 6],
    how: u32,
) {
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    let string = |src: u64, dst: *mut u8| unsafe {
        if KERNEL_NAMES { kernel_str(src, dst, ARG_PATH_CAP as u32) } else { user_str(src, dst, ARG_PATH_CAP as u32) }
    };
    unsafe {
        (*r).args = *a;
        (*r).matched = how;
        (*r).dirfd = if di < 6 { arg(di) as i32 } else { AT_FDCWD };
        let (n, cut) = string(arg(ni), (*r).name.as_mut_ptr());
        (*r).name_len = n;
        let (n2, cut2) = string(arg(n2i), (*r).name2.as_mut_ptr());
        (*r).name2_len = n2;
        if HANDLE {
            // The handle (binary, not a string): its head and bytes, or its head alone when the
            // whole would cross into unmapped memory.
            let h = arg(1) as *const core::ffi::c_void;
            let dst = (*r).name2.as_mut_ptr().cast();
            (*r).name2_len = if bpf_probe_read_user(dst, HANDLE_CAP as u32, h) == 0 {
                HANDLE_CAP as u32
            } else if bpf_probe_read_user(dst, 8, h) == 0 {
                8
            } else {
                0
            };
        }
        if cut || cut2 {
            (*r).call.flags |= STRING_TRUNCATED;
        }
        // The base: the descriptor's file; the directory a relative first name starts from.
        let task = crate::kernel::current_task();
        let dirfd = core::ptr::read_volatile(&(*r).dirfd);
        let by_fd = core::ptr::read_volatile(&(*r).matched) != 0;
        // An io_uring open with `RESOLVE_IN_ROOT` (in `a[4]`) starts from its directory even
        // when its name is absolute: walked too, while the request's descriptor is there. (A
        // refused openat2's is read by the daemon from /proc: the test here would cost the exit
        // program's verification some 30,000 instructions on 6.1.)
        let in_root = KERNEL_NAMES && is_named_open((*r).call.op) && a[4] & RESOLVE_IN_ROOT != 0;
        let mut relative = core::ptr::read_volatile(&(*r).name_len) > 0
            && (in_root || core::ptr::read_volatile(&(*r).name[0]) != b'/');
        // The first name absolute and the second relative (`mv /tmp/x ld.so.preload` in
        // /etc): the second's directory is the one walked.
        let mut dirfd = dirfd;
        if !relative
            && !by_fd
            && n2i < 6
            && core::ptr::read_volatile(&(*r).name2_len) > 0
            && core::ptr::read_volatile(&(*r).name2[0]) != b'/'
        {
            relative = true;
            dirfd = if d2i < 6 { arg(d2i) as i32 } else { AT_FDCWD };
            (*r).call.flags |= BASE_OF_NAME2;
        }
        let null = core::ptr::null();
        let (mnt, dentry, inode) = if by_fd || (relative && dirfd != AT_FDCWD) {
            match crate::kernel::file_of_fd(dirfd) {
                Some(d) => path::file_parts(d),
                None => (null, null, null),
            }
        } else if relative {
            let fs: *const u8 = read0(task, config!(offsets.task_fs));
            path::path_parts(fs.wrapping_add(config!(offsets.fs_pwd) as usize))
        } else {
            (null, null, null)
        };
        if dentry.is_null() {
            (*r).base = ExeFile { flags: exe_flags::UNAVAILABLE, ..ExeFile::default() };
        } else {
            path::walk(task, mnt, dentry, inode, &mut (*r).base, (*r).base_path.as_mut_ptr());
        }
    }
}

/// A change by name or an open submitted to a ring (`op_` a `URING_*` one, an open's
/// `URING_OPENAT*_NAMED`; `a` its arguments with the names' kernel copies, `req` the request):
/// its record is made now, while the names exist (the request frees them when it runs), and
/// kept until the request completes (`on_uring_change`); with `unseen_end` (no completion will
/// show), sent now. Every io_uring open of a traced process takes a token of its container's
/// io_uring opens' budget here, sensitive or not (a budget of its own: a file server's ordinary
/// io_uring opens spend nothing of the container's changes' budget, whose renames into
/// /etc/cron.d are then held back no more than without them); a change, of its changes'
/// budget. A container that opens thousands of files a second through a ring has the excess
/// held back and reported, as a storm of unlinks would.
#[inline(always)]
pub fn on_uring_submit(req: u64, op_: u32, a: &[u64; 6], unseen_end: bool) {
    if config!(offsets.exe_valid) == 0 || !crate::maps::traced() {
        return;
    }
    // (Its outcome is not known yet: each call counts as its successes do.)
    let class = if is_named_open(op_) { class::URING_OPEN } else { class::FILE_CHANGE };
    if !admit_call(class, u64::from(op_) << 1) {
        return;
    }
    let Some(r) = URING_SCRATCH.get_ptr_mut(0) else { return };
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    let header = RecordHeader {
        kind: RecordKind::FileAccess as u32,
        cgroup_id: unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() },
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        ..RecordHeader::default()
    };
    unsafe {
        (*r).call = call_head(header, op_, 0, 0);
        fill_path::<false, true>(r, names_at(op_), a, 0);
        // The names' kernel addresses are not for the record.
        (*r).args[1] = 0;
        if !is_named_open(op_) {
            (*r).args[3] = 0;
        }
        if unseen_end {
            (*r).call.flags |= RESULT_UNKNOWN;
            send_kept(r, 0);
        } else if URING_CHANGES.insert(&req, &*r, 0).is_err() {
            bump_loss(loss::PENDING_MAP_FULL);
        }
    }
}

/// Sends a copy of a record made at a request's submission, with `res` and a fresh header
/// under the submitter's thread and cgroup (the request may have run in one of the process's
/// io-wq workers, or a kernel worker where the process was exiting).
#[inline(always)]
unsafe fn send_kept(kept: *const PathRecord, res: i32) {
    let Some((mut entry, header)) = reserve::<PathRecord>(RecordKind::FileAccess) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(r.cast(), size_of::<PathRecord>() as u32, kept.cast());
        let submitter = (*r).call.header;
        (*r).call.header =
            RecordHeader { pid: submitter.pid, tgid: submitter.tgid, cgroup_id: submitter.cgroup_id, ..header };
        (*r).call.ret = i64::from(res);
    }
    submit(entry);
}

/// A ring's request completed with `res`: the record of the change by name it was, if one was
/// kept at its submission, goes now with the result.
#[inline(always)]
pub fn on_uring_change(req: u64, op_: u32, res: i32) {
    let Some(kept) = URING_CHANGES.get_ptr(&req) else { return };
    // (`forget_uring_change` at every submission of these operations leaves no other
    // request's record here; the operation is checked all the same.)
    if unsafe { (*kept).call.op } == op_ {
        unsafe { send_kept(kept, res) };
    }
    let _ = URING_CHANGES.remove(&req);
}

/// Drops what a request at `req` left in `URING_CHANGES` (one whose completion was not seen).
#[inline(always)]
pub fn forget_uring_change(req: u64) {
    if unsafe { URING_CHANGES.get(&req) }.is_some() {
        let _ = URING_CHANGES.remove(&req);
    }
}

/// Where `on_uring_submit` builds a record (too large for the stack).
#[map]
static URING_SCRATCH: PerCpuArray<PathRecord> = PerCpuArray::with_max_entries(1, 0);

/// The records of changes by name submitted to rings and not completed yet, by request (a
/// cancelled request completes too, with -ECANCELED). A plain hash map: a full one refuses the
/// record, counted as a loss (`PENDING_MAP_FULL`), where an LRU one would evict another
/// request's silently. An entry whose completion is not seen (the completion ring overflowed)
/// goes at the next submission of a change by name at its address.
#[map]
static URING_CHANGES: HashMap<u64, PathRecord> = HashMap::with_max_entries(1024, 0);

/// The file-access family's program for the opens and the changes by name or descriptor:
/// `sys_exit` like the exit program, which tail-calls it for those calls when `may_report`
/// says they may make an event (it is attached to nothing itself). Verified on its own, as
/// the program for open_by_handle_at below is: with this family inside it, the exit program
/// verified 819,000 of the verifier's limit of 1,000,000 instructions on Debian 12's 6.1, most
/// of them in the file walks.
#[btf_tracepoint(function = "sys_exit")]
pub fn raw_sys_exit_file(ctx: BtfTracePointContext) -> u32 {
    let regs: *const u8 = ctx.arg(0);
    let id = reg(regs, regs::ORIG_AX) as i64;
    // The BTF-typed task: loads through it (and the pointers read from it) are plain loads.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let compat = in_compat(task);
    let Some(Route::File(op)) = route(id, compat) else { return 0 };
    if config!(families) & switch::FILE == 0 {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let (a, fl) = call_arguments(regs, compat);
    // An open is matched again (`on_exit`: what `may_report` asked, then the exact filter). A
    // refused open (nothing opened) is sent as a change by name is: one place for both.
    let (op, args) = if op >= op::FIRST_PATH_OP {
        (op, a)
    } else if ret >= 0 {
        on_exit(task, op, &a, ret, fl);
        return 0;
    } else {
        match refused(op, &a, ret) {
            Some(r) => r,
            None => return 0,
        }
    };
    on_path_exit::<false>(op, &args, ret, fl);
    0
}

/// The file-access family's program for open_by_handle_at: `sys_exit` like the exit program,
/// which tail-calls it for that call's numbers (it is attached to nothing itself). Every call
/// of a traced process is reported (within its budget, `budget.rs`), whatever its result, as a
/// `PathRecord` (`op::BY_HANDLE`):
/// the handle as passed, and the file the call opened (refused: `mount_fd`'s), walked. Verified
/// on its own: on 6.1 the exit program verifies 880,000 of the verifier's 1,000,000
/// instructions, and this walk inside it passed the limit (the program refused as a whole).
#[btf_tracepoint(function = "sys_exit")]
pub fn raw_sys_exit_handle(ctx: BtfTracePointContext) -> u32 {
    let regs: *const u8 = ctx.arg(0);
    let id = reg(regs, regs::ORIG_AX) as i64;
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let compat = in_compat(task);
    let ours = if compat { id == ia32::OPEN_BY_HANDLE_AT } else { id == x64::OPEN_BY_HANDLE_AT };
    if !ours || config!(families) & switch::FILE == 0 {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let (a, fl) = if compat {
        let r = |off| reg(regs, off) & 0xffff_ffff;
        ([r(regs::BX), r(regs::CX), r(regs::DX), 0, 0, 0], flags::COMPAT)
    } else {
        let r = |off| reg(regs, off);
        ([r(regs::DI), r(regs::SI), r(regs::DX), 0, 0, 0], 0)
    };
    let (op_, args) = by_handle(&a, ret);
    on_path_exit::<true>(op_, &args, ret, fl);
    0
}
