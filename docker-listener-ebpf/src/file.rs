//! `file-access`: a traced process's successful opens of sensitive files, reported at the
//! open's exit by the raw exit program (`syscall_exit.rs`), whatever the ABI.
//!
//! What was opened is the descriptor's file, as the kernel has it: its inode number is looked up
//! in `SENSITIVE` (the daemon resolved the configured paths inside each container's filesystem
//! into inodes), then its parent directory's (a file of a sensitive directory, also one created
//! after the set was made), then, on procfs and cgroup v1 only, its dentry's name (pseudo-files
//! whose inodes come and go: `/proc/<pid>/mem`, `core_pattern`, `release_agent`). No string the
//! caller passed is compared, so `..`, `//`, symlinks, relative paths, a directory descriptor,
//! `/proc/self/root/...` or a hard link (same inode) cannot evade it. A non-sensitive open costs
//! the descriptor table walk and two hash lookups.
use aya_ebpf::helpers::generated::{bpf_probe_read_kernel_str, bpf_probe_read_user};
use docker_listener_common::{
    RecordKind,
    family::{
        ARG_PATH_CAP, STRING_TRUNCATED,
        file::{FileRecord, access, access_of, matched, oflag, op, pseudo},
    },
};

use crate::{
    kernel::{current_task, file_of_fd, read0},
    maps::{SENSITIVE, config, reserve, submit},
    path,
    syscall_exit::{call_head, user_str},
};

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
        // open_by_handle_at(mount_fd, handle, flags): no path.
        _ => (a[2] as u32, 0, 0),
    }
}

/// The value `SENSITIVE` has for an inode, 0 when none.
#[inline(always)]
fn sensitive(ino: u64) -> u32 {
    unsafe { SENSITIVE.get(&ino) }.copied().unwrap_or(0)
}

/// Whether the dentry's name is one of the pseudo-files of its filesystem that `want` asks for.
#[inline(always)]
unsafe fn pseudo_match(dentry: *const u8, magic: u32, want: u32) -> bool {
    if magic != pseudo::PROC_SUPER_MAGIC && magic != pseudo::CGROUP_SUPER_MAGIC {
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

/// Whether an O_CREAT open's directory (`v`, its `SENSITIVE` value; `dir`, its dentry) or the
/// one above it is where a sensitive file may be created (`access::PARENT`).
#[inline(always)]
unsafe fn created_below_parent(v: u32, dir: *const u8) -> bool {
    if v & access::PARENT != 0 {
        return true;
    }
    unsafe {
        let up: *const u8 = read0(dir, config!(offsets.dentry_d_parent));
        let inode: *const u8 = read0(up, config!(offsets.dentry_d_inode));
        sensitive(read0(inode, config!(offsets.inode_i_ino))) & access::PARENT != 0
    }
}

/// open, creat, openat, openat2, open_by_handle_at: `ret` is the new descriptor.
#[inline(always)]
pub fn on_exit(op: u32, a: &[u64; 6], ret: i64, flags: u32) {
    // A failed open opened nothing: there is no file to match (see docs/EVENTS.md).
    if ret < 0 || config!(offsets.exe_valid) == 0 {
        return;
    }
    let Some(file) = (unsafe { file_of_fd(ret as i32) }) else { return };
    let (open_flags, mode, requested) = arguments(op, a);
    let want = access_of(open_flags);
    let how = unsafe {
        let inode: *const u8 = read0(file, config!(offsets.file_f_inode));
        let ino: u64 = read0(inode, config!(offsets.inode_i_ino));
        let v = sensitive(ino);
        if v & access::DIR == 0 && v & want != 0 {
            matched::FILE
        } else {
            let dentry: *const u8 = read0(file, config!(offsets.file_f_path) + config!(offsets.path_dentry));
            let parent: *const u8 = read0(dentry, config!(offsets.dentry_d_parent));
            let pinode: *const u8 = read0(parent, config!(offsets.dentry_d_inode));
            let v = sensitive(read0(pinode, config!(offsets.inode_i_ino)));
            if v & access::DIR != 0 && v & want != 0 {
                matched::DIR
            } else if open_flags & oflag::CREAT != 0 && created_below_parent(v, parent) {
                matched::CREATED
            } else {
                let sb: *const u8 = read0(inode, config!(offsets.inode_i_sb));
                if pseudo_match(dentry, read0(sb, config!(offsets.sb_s_magic)), want) { matched::PSEUDO } else { 0 }
            }
        }
    };
    if how == 0 {
        return;
    }
    let Some((mut entry, header)) = reserve::<FileRecord>(RecordKind::FileAccess) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op, ret, flags);
        (*r).fd = ret as i32;
        (*r).open_flags = open_flags;
        (*r).mode = mode;
        (*r).matched = how;
        (*r).access = want;
        let dentry: *const u8 = read0(file, config!(offsets.file_f_path) + config!(offsets.path_dentry));
        let parent: *const u8 = read0(dentry, config!(offsets.dentry_d_parent));
        let pinode: *const u8 = read0(parent, config!(offsets.dentry_d_inode));
        (*r).parent_ino = read0(pinode, config!(offsets.inode_i_ino));
        let (n, cut) = user_str(requested, (*r).requested.as_mut_ptr(), ARG_PATH_CAP as u32);
        (*r).requested_len = n;
        if cut {
            (*r).call.flags |= STRING_TRUNCATED;
        }
        path::file_of(current_task(), file, &mut (*r).file, (*r).path.as_mut_ptr());
    }
    submit(entry);
}
