//! The file a process executes, named by the kernel's own objects: `mm->exe_file`, its inode,
//! and its path walked dentry by dentry up to the task's root (what the kernel's d_path does,
//! which tracepoint programs may not call). No string the caller passed is involved, so
//! `exec -a`, relative paths, symlinks, `/proc/self/exe` and `/dev/fd/N` all resolve to the file
//! that really runs.
//!
//! The walk writes the components leaf first, each NUL-terminated, into the record; the daemon
//! reverses them. It stops at the task's root (`fs->root`: inside a container, the container's
//! root, so the path is the one the container sees), and says how it ended otherwise
//! (`exe_flags`).
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_probe_read_kernel_str};
use docker_listener_common::{EXE_NAME_MAX, EXE_PATH_MASK, EXE_WALK_STEPS, ExeFile, exe_flags};

use crate::{
    kernel::read,
    maps::{bump_loss, config},
};

/// The same value, unknown to the verifier. The walk's offset is the only value carried from
/// one step to the next that the verifier would track exactly; each path through a step gives it
/// another range, so no two steps' states would ever match and the walk's paths would multiply
/// past the verifier's budget. Bounded again at each step, an opaque offset lets the states of
/// all paths merge at the top of the loop.
#[inline(always)]
fn opaque(v: usize) -> usize {
    let copy = v;
    unsafe { bpf_probe_read_kernel(&copy as *const usize) }.unwrap_or(usize::MAX)
}

/// Writes `dentry`'s name at `off`; returns the bytes written with the NUL, or <= 0.
#[inline(always)]
unsafe fn append_name(path: *mut u8, off: usize, dentry: *const u8) -> i64 {
    unsafe {
        let name: *const u8 =
            read(dentry, config!(offsets.dentry_d_name) + config!(offsets.qstr_name)).unwrap_or(core::ptr::null());
        bpf_probe_read_kernel_str(path.wrapping_add(off & EXE_PATH_MASK).cast(), EXE_NAME_MAX as u32, name.cast())
    }
}

/// Fills `exe` and `path` (`EXE_PATH_CAP` bytes) with the executable of `task`'s current image.
#[inline(always)]
pub unsafe fn exe_of(task: *const u8, exe: *mut ExeFile, path: *mut u8) {
    unsafe {
        (*exe) = ExeFile::default();
        if config!(offsets.exe_valid) == 0 {
            (*exe).flags = exe_flags::UNAVAILABLE;
            return;
        }
        let mm: *const u8 = read(task, config!(offsets.task_mm)).unwrap_or(core::ptr::null());
        let file: *const u8 = read(mm, config!(offsets.mm_exe_file)).unwrap_or(core::ptr::null());
        if file.is_null() {
            (*exe).flags = exe_flags::UNAVAILABLE;
            bump_loss(docker_listener_common::loss::EXE_READ);
            return;
        }
        let inode: *const u8 = read(file, config!(offsets.file_f_inode)).unwrap_or(core::ptr::null());
        (*exe).ino = read(inode, config!(offsets.inode_i_ino)).unwrap_or(0);
        (*exe).nlink = read(inode, config!(offsets.inode_i_nlink)).unwrap_or(0);
        let sb: *const u8 = read(inode, config!(offsets.inode_i_sb)).unwrap_or(core::ptr::null());
        (*exe).dev = read(sb, config!(offsets.sb_s_dev)).unwrap_or(0);
        (*exe).magic = read(sb, config!(offsets.sb_s_magic)).unwrap_or(0);

        let f_path = config!(offsets.file_f_path);
        let p_mnt = config!(offsets.path_mnt);
        let p_dentry = config!(offsets.path_dentry);
        let mut dentry: *const u8 = read(file, f_path + p_dentry).unwrap_or(core::ptr::null());
        let mut vfsmnt: *const u8 = read(file, f_path + p_mnt).unwrap_or(core::ptr::null());
        let fs: *const u8 = read(task, config!(offsets.task_fs)).unwrap_or(core::ptr::null());
        let root_dentry: *const u8 = read(fs, config!(offsets.fs_root) + p_dentry).unwrap_or(core::ptr::null());
        let root_mnt: *const u8 = read(fs, config!(offsets.fs_root) + p_mnt).unwrap_or(core::ptr::null());
        let mount_mnt = config!(offsets.mount_mnt) as usize;
        let mut mnt = vfsmnt.wrapping_sub(mount_mnt);

        let mut off: usize = 0;
        let mut flags = exe_flags::TRUNCATED;
        for _ in 0..EXE_WALK_STEPS {
            if dentry.is_null() {
                flags = exe_flags::UNAVAILABLE;
                break;
            }
            if dentry == root_dentry && vfsmnt == root_mnt {
                flags = 0;
                break;
            }
            let mnt_root: *const u8 = read(vfsmnt, config!(offsets.vfsmount_mnt_root)).unwrap_or(core::ptr::null());
            if dentry == mnt_root {
                // The root of a mount: go on from where it is mounted, in the parent mount.
                let parent: *const u8 = read(mnt, config!(offsets.mount_mnt_parent)).unwrap_or(core::ptr::null());
                if parent.is_null() || parent == mnt {
                    flags = exe_flags::OUTSIDE_ROOT;
                    if off == 0 {
                        // The file is itself the root of a mount no one else's tree reaches
                        // (a file bind-mounted in a private namespace, as runc does with its
                        // own binary): its name is all there is.
                        flags |= exe_flags::DETACHED;
                        let n = append_name(path, 0, dentry);
                        off = if n > 0 { n as usize } else { 0 };
                    }
                    break;
                }
                dentry = read(mnt, config!(offsets.mount_mnt_mountpoint)).unwrap_or(core::ptr::null());
                mnt = parent;
                vfsmnt = mnt.wrapping_add(mount_mnt);
                continue;
            }
            let parent: *const u8 = read(dentry, config!(offsets.dentry_d_parent)).unwrap_or(core::ptr::null());
            if off > EXE_PATH_MASK {
                break;
            }
            let n = append_name(path, off, dentry);
            if n <= 0 {
                flags = exe_flags::UNAVAILABLE;
                break;
            }
            off = opaque(off + n as usize);
            if parent == dentry || parent.is_null() {
                // Its own parent, yet not a mount's root: an internal filesystem's file
                // (memfd, anonymous shared memory) or a disconnected dentry.
                flags = exe_flags::DETACHED;
                break;
            }
            dentry = parent;
        }
        (*exe).flags = flags;
        (*exe).path_len =
            if off > EXE_PATH_MASK + EXE_NAME_MAX { (EXE_PATH_MASK + EXE_NAME_MAX) as u32 } else { off as u32 };
    }
}
