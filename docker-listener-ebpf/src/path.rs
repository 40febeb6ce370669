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
use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use docker_listener_common::{EXE_NAME_MAX, EXE_PATH_MASK, EXE_WALK_STEPS, ExeFile, exe_flags, magic};

/// Names are written while the offset is at most this: room is left for the gap and the
/// top-most name of a path too long to keep whole.
const APPEND_LIMIT: usize = EXE_PATH_MASK - EXE_NAME_MAX - 1;

use crate::{
    kernel::read0,
    maps::{bump_loss, config},
};

/// The same value, unknown to the verifier. The walk's offset is the only value carried from
/// one step to the next that the verifier would track exactly; each path through a step gives it
/// another range, so no two steps' states would ever match and the walk's paths would multiply
/// past the verifier's budget. Bounded again at each step, an opaque offset lets the states of
/// all paths merge at the top of the loop.
#[inline(always)]
pub fn opaque(v: usize) -> usize {
    let copy = v;
    unsafe { read0(&copy as *const usize as *const u8, 0) }
}

/// Writes `dentry`'s name at `off`; returns the bytes written with the NUL, or <= 0.
#[inline(always)]
unsafe fn append_name(path: *mut u8, off: usize, dentry: *const u8) -> i64 {
    unsafe {
        let name: *const u8 = read0(dentry, config!(offsets.dentry_d_name) + config!(offsets.qstr_name));
        // black_box: the mask must reach the verifier. The compiler would drop it where the
        // caller's bound makes it redundant, and older verifiers (6.1) forget that bound once
        // the offset has been spilled to the stack: "math between alloc_mem pointer and
        // register with unbounded min value".
        bpf_probe_read_kernel_str(
            path.wrapping_add(core::hint::black_box(off) & EXE_PATH_MASK).cast(),
            EXE_NAME_MAX as u32,
            name.cast(),
        )
    }
}

/// Fills `exe` and `path` (`EXE_PATH_CAP` bytes) with the executable of `task`'s current image;
/// returns its ctime, nanoseconds (`CTIME_UNKNOWN` set when not read) and seconds.
#[inline(always)]
pub unsafe fn exe_of(task: *const u8, exe: *mut ExeFile, path: *mut u8) -> (u32, u64) {
    const NONE: (u32, u64) = (docker_listener_common::CTIME_UNKNOWN, 0);
    unsafe {
        (*exe) = ExeFile::default();
        if config!(offsets.exe_valid) == 0 {
            (*exe).flags = exe_flags::UNAVAILABLE;
            return NONE;
        }
        let mm: *const u8 = read0(task, config!(offsets.task_mm));
        let file: *const u8 = read0(mm, config!(offsets.mm_exe_file));
        if file.is_null() {
            (*exe).flags = exe_flags::UNAVAILABLE;
            bump_loss(docker_listener_common::loss::EXE_READ);
            return NONE;
        }
        file_of(task, file, exe, path);
        let inode: *const u8 = read0(file, config!(offsets.file_f_inode));
        let ctime = inode_ctime(inode);
        if (*exe).magic == magic::OVERLAYFS && config!(offsets.ovl_valid) != 0 {
            // An overlay inode is the `vfs_inode` of an `ovl_inode`, whose `__upperdentry` is
            // set once the file has a copy in the upper layer (created there, or copied up to
            // be written): for a container's root, a file that was not in its image as it is.
            let ovl = inode.wrapping_sub(config!(offsets.ovl_inode_vfs_inode) as usize);
            let upper: *const u8 = read0(ovl, config!(offsets.ovl_inode_upperdentry));
            if !upper.is_null() {
                (*exe).flags |= exe_flags::UPPER;
            }
        }
        ctime
    }
}

/// An inode's ctime: nanoseconds (`CTIME_UNKNOWN` set when the kernel's BTF did not say where
/// it is) and seconds. Read and marked without a branch (`KernelOffsets::inode_ctime_unknown`).
/// 6.13+ keeps a flag in the top bit of i_ctime_nsec (I_CTIME_QUERIED): not the time.
#[inline(always)]
pub unsafe fn inode_ctime(inode: *const u8) -> (u32, u64) {
    unsafe {
        (
            (read0::<u32>(inode, config!(offsets.inode_ctime_nsec)) & 0x3fff_ffff)
                | config!(offsets.inode_ctime_unknown),
            read0::<u64>(inode, config!(offsets.inode_ctime_sec)),
        )
    }
}

/// Fills `out` and `path` (`EXE_PATH_CAP` bytes) with what the kernel has of `file`, an open
/// file of `task`: its inode, and its path walked up to the root of the task's mount namespace.
#[inline(always)]
pub unsafe fn file_of(task: *const u8, file: *const u8, exe: *mut ExeFile, path: *mut u8) {
    unsafe {
        let f_path = config!(offsets.file_f_path);
        let dentry: *const u8 = read0(file, f_path + config!(offsets.path_dentry));
        let vfsmnt: *const u8 = read0(file, f_path + config!(offsets.path_mnt));
        let inode: *const u8 = read0(file, config!(offsets.file_f_inode));
        walk(task, vfsmnt, dentry, inode, exe, path);
    }
}

/// (vfsmount, dentry, inode) of an open file.
#[inline(always)]
pub unsafe fn file_parts(file: *const u8) -> (*const u8, *const u8, *const u8) {
    unsafe {
        let f_path = config!(offsets.file_f_path);
        (
            read0(file, f_path + config!(offsets.path_mnt)),
            read0(file, f_path + config!(offsets.path_dentry)),
            read0(file, config!(offsets.file_f_inode)),
        )
    }
}

/// (vfsmount, dentry, inode) of a `struct path` (a task's working directory).
#[inline(always)]
pub unsafe fn path_parts(p: *const u8) -> (*const u8, *const u8, *const u8) {
    unsafe {
        let dentry: *const u8 = read0(p, config!(offsets.path_dentry));
        (read0(p, config!(offsets.path_mnt)), dentry, read0(dentry, config!(offsets.dentry_d_inode)))
    }
}

/// The walk of `file_of`, from a (vfsmount, dentry, inode) triple. Each call site is verified
/// on its own (64 unrolled steps, or the `bpf_loop` callback: `steps`): callers choose their
/// triple first and call it once.
#[inline(always)]
pub unsafe fn walk(
    task: *const u8,
    vfsmnt: *const u8,
    dentry: *const u8,
    inode: *const u8,
    exe: *mut ExeFile,
    path: *mut u8,
) {
    unsafe {
        (*exe).ino = read0(inode, config!(offsets.inode_i_ino));
        (*exe).nlink = read0(inode, config!(offsets.inode_i_nlink));
        let sb: *const u8 = read0(inode, config!(offsets.inode_i_sb));
        (*exe).dev = read0(sb, config!(offsets.sb_s_dev));
        (*exe).magic = read0(sb, config!(offsets.sb_s_magic));

        let p_mnt = config!(offsets.path_mnt);
        let p_dentry = config!(offsets.path_dentry);
        let mnt = vfsmnt.wrapping_sub(config!(offsets.mount_mnt) as usize);

        // The top of the walk is the root of the process's mount namespace (in a container, its
        // root filesystem), not the process's own root: a chroot would let it choose the path.
        let nsproxy: *const u8 = read0(task, config!(offsets.task_nsproxy));
        let mnt_ns: *const u8 = read0(nsproxy, config!(offsets.nsproxy_mnt_ns));
        let ns_root: *const u8 = read0(mnt_ns, config!(offsets.mnt_ns_root));
        let fs: *const u8 = read0(task, config!(offsets.task_fs));
        let root_dentry: *const u8 = read0(fs, config!(offsets.fs_root) + p_dentry);
        let root_mnt: *const u8 = read0(fs, config!(offsets.fs_root) + p_mnt);

        // Loop-carried: only pointers (unknown to the verifier) and the opaque offset, so the
        // states of every path through a step merge at the top of the next one. Past
        // APPEND_LIMIT, names are no longer written, but the walk goes on: `top` is the last
        // dentry walked, written after the loop (after an empty component, the gap).
        let mut w = Walk {
            dentry,
            vfsmnt,
            mnt,
            top: dentry,
            off: 0,
            // Where the walk passed the process's own root (`fs->root`): the components written
            // after it are the path of that root in the namespace, none unless the process is
            // chrooted.
            root_off: opaque(usize::MAX),
            end: exe_flags::TRUNCATED,
            path,
            root_dentry,
            root_mnt,
            ns_root,
        };
        steps(&mut w);
        let Walk { dentry, top, mut off, root_off, end, .. } = w;
        let mut flags = end;
        if off == 0 && end & exe_flags::OUTSIDE_ROOT != 0 {
            // The file is itself the root of a mount no one else's tree reaches (a file
            // bind-mounted in a private namespace, as runc does with its own binary): its name
            // is all there is.
            flags |= exe_flags::DETACHED;
            let n = append_name(path, 0, dentry);
            off = if n > 0 { n as usize } else { 0 };
        }
        // Chrooted (judged before the gap and the top-most name are written): the process's
        // root is below its namespace's (components above it), or the file is not below the
        // process's root at all.
        if end & (exe_flags::TRUNCATED | exe_flags::UNAVAILABLE | exe_flags::DETACHED | exe_flags::OUTSIDE_ROOT) == 0
            && (root_off == usize::MAX || root_off < off)
        {
            flags |= exe_flags::CHROOT;
        }
        if off > APPEND_LIMIT {
            flags |= exe_flags::GAP;
            if end & exe_flags::TRUNCATED == 0 && off <= APPEND_LIMIT + EXE_NAME_MAX {
                // The gap (an empty component), then the top-most name.
                *path.wrapping_add(core::hint::black_box(off) & EXE_PATH_MASK) = 0;
                let n = append_name(path, (off + 1) & EXE_PATH_MASK, top);
                off = if n > 0 { off + 1 + n as usize } else { off };
            }
        }
        (*exe).flags = flags;
        (*exe).path_len =
            if off > EXE_PATH_MASK + EXE_NAME_MAX { (EXE_PATH_MASK + EXE_NAME_MAX) as u32 } else { off as u32 };
    }
}

/// What one step of the walk reads and what it carries to the next (the fields before `path`).
#[repr(C)]
struct Walk {
    dentry: *const u8,
    vfsmnt: *const u8,
    /// The `struct mount` of `vfsmnt`.
    mnt: *const u8,
    /// The last dentry walked once the names no longer fit.
    top: *const u8,
    /// Bytes of names written (opaque to the verifier).
    off: usize,
    /// `off` where the walk passed the task's own root, else opaque `usize::MAX`.
    root_off: usize,
    /// How the walk ended (`exe_flags`); `TRUNCATED` while it goes on.
    end: u32,
    path: *mut u8,
    root_dentry: *const u8,
    root_mnt: *const u8,
    ns_root: *const u8,
}

/// Up to `EXE_WALK_STEPS` steps. Kernels with `bpf_loop` (5.17+) get the object built with the
/// `bpf-loop` feature: the step is a function the kernel calls, which the verifier walks for as
/// many states as reach its entry (a few), not for each of the 64 unrolled steps; the daemon
/// loads that object where the helper exists. Older kernels may refuse a program that takes a
/// function's address at all (5.10 knows no such instruction: 5.13 added it), even in code
/// that never runs, so their object unrolls the loop.
#[inline(always)]
unsafe fn steps(w: &mut Walk) {
    #[cfg(feature = "bpf-loop")]
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            EXE_WALK_STEPS as u32,
            walk_step as *const () as *mut core::ffi::c_void,
            (w as *mut Walk).cast(),
            0,
        );
    }
    #[cfg(not(feature = "bpf-loop"))]
    for _ in 0..EXE_WALK_STEPS {
        if unsafe { step(w) } {
            break;
        }
    }
}

/// `bpf_loop`'s callback: 1 stops the loop.
///
/// The kernel does not know that 1 stops it: since Linux 6.7 it verifies the callback as if
/// called again after every return, until the state at its entry is one it has seen, compared
/// exactly (before, it verified one call). Each of the
/// step's paths leaves the carried values another way (a constant `end`, a pointer known not
/// null, an offset known past the limit), and their combinations never repeat within the
/// verifier's budget. So the step's carried values are copied onto themselves by a helper at
/// its end, which leaves them unknown to the verifier: from the second entry on, every entry is
/// the same state, and the callback is verified twice per state reaching the call.
#[cfg(feature = "bpf-loop")]
#[inline(never)]
unsafe extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    unsafe {
        let w = ctx.cast::<Walk>();
        let stop = step(&mut *w);
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            w.cast(),
            core::mem::offset_of!(Walk, path) as u32,
            w.cast_const().cast(),
        );
        i64::from(stop)
    }
}

/// One step up: a component, or a mount crossed. True when the walk ends (`w.end` says how).
#[inline(always)]
unsafe fn step(w: &mut Walk) -> bool {
    unsafe {
        if w.dentry.is_null() {
            w.end = exe_flags::UNAVAILABLE;
            return true;
        }
        if w.dentry == w.root_dentry && w.vfsmnt == w.root_mnt {
            w.root_off = w.off;
        }
        let mnt_root: *const u8 = read0(w.vfsmnt, config!(offsets.vfsmount_mnt_root));
        if w.dentry == mnt_root {
            // The root of a mount: go on from where it is mounted, in the parent mount.
            let parent: *const u8 = read0(w.mnt, config!(offsets.mount_mnt_parent));
            if parent.is_null() || parent == w.mnt {
                // The top of a mount tree: the namespace's root, or a detached tree.
                w.end = if w.mnt == w.ns_root { 0 } else { exe_flags::OUTSIDE_ROOT };
                return true;
            }
            w.dentry = read0(w.mnt, config!(offsets.mount_mnt_mountpoint));
            w.mnt = parent;
            w.vfsmnt = parent.wrapping_add(config!(offsets.mount_mnt) as usize);
            return false;
        }
        let parent: *const u8 = read0(w.dentry, config!(offsets.dentry_d_parent));
        if w.off <= APPEND_LIMIT {
            let n = append_name(w.path, w.off, w.dentry);
            if n <= 0 {
                w.end = exe_flags::UNAVAILABLE;
                return true;
            }
            w.off = opaque(w.off + n as usize);
        } else {
            w.top = w.dentry;
        }
        if parent == w.dentry || parent.is_null() {
            // Its own parent, yet not a mount's root: an internal filesystem's file
            // (memfd, anonymous shared memory) or a disconnected dentry.
            w.end = exe_flags::DETACHED;
            return true;
        }
        w.dentry = parent;
        false
    }
}
