//! `namespace-change`: unshare, setns, clone and clone3 with new namespaces, mount, umount,
//! pivot_root and chroot, and the mount API that needs no mount(2) (fsopen, fsconfig, fsmount,
//! move_mount, open_tree, fspick, mount_setattr), by a traced process, reported at their exit by the raw exit program
//! (`syscall_exit.rs`): those Docker's seccomp profile refuses are reported as the failures
//! they are. Paths are the strings the caller passed; setns names the namespace by its inode
//! (the kernel's, from the descriptor).
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use docker_listener_common::{
    RecordKind,
    family::{
        ARG_PATH_CAP, STRING_TRUNCATED,
        namespace::{
            CLONE_NEW_MASK, CLONE_NEWNS, CLONE_NEWUSER, FSCONFIG_STRING_CMDS, FSTYPE_CAP, JOINED, NamespaceRecord, op,
        },
    },
};

use crate::{
    budget::{admit_call, class, failed},
    kernel::{current_task, file_ino, file_of_fd, read0},
    maps::{config, reserve, submit},
    syscall_exit::{call_head, user_str},
};

/// Routes of the raw exit program beyond the record's operations: clone3 (its flags are in a
/// struct in the caller's memory) and the 32-bit umount (no flags argument).
pub const CLONE3: u32 = 100;
pub const UMOUNT_NO_FLAGS: u32 = 101;

#[inline(always)]
pub fn on_exit(route: u32, a: &[u64; 6], ret: i64, flags: u32) {
    let (op, ns_flags) = match route {
        CLONE3 => {
            // clone3(struct clone_args *args, size): flags is its first member.
            let mut f: u64 = 0;
            unsafe { bpf_probe_read_user((&mut f as *mut u64).cast(), 8, a[0] as *const _) };
            (op::CLONE, f)
        }
        UMOUNT_NO_FLAGS => (op::UMOUNT, 0),
        op::MOUNT => (op::MOUNT, a[3]),
        // fsopen(fsname, flags); fsmount(fs_fd, flags, attr_flags); open_tree(dfd, path, flags);
        // fspick(dfd, path, flags); move_mount(from_dfd, from, to_dfd, to, flags);
        // fsconfig(fd, cmd, key, value, aux).
        op::FSOPEN => (op::FSOPEN, a[1]),
        op::FSMOUNT => (op::FSMOUNT, a[2] << 32 | (a[1] & 0xffff_ffff)),
        op::OPEN_TREE | op::FSPICK => (route, a[2]),
        op::MOVE_MOUNT => (op::MOVE_MOUNT, a[4]),
        op::FSCONFIG => (op::FSCONFIG, a[1]),
        op::MOUNT_SETATTR => {
            // mount_setattr(dfd, path, flags, struct mount_attr *attr, size): attr_set, then
            // attr_clr.
            let mut attr = [0u64; 2];
            unsafe { bpf_probe_read_user(attr.as_mut_ptr().cast(), 16, a[3] as *const _) };
            (op::MOUNT_SETATTR, (attr[0] & 0xffff_ffff) | attr[1] << 32)
        }
        op::UMOUNT => (op::UMOUNT, a[1]),
        op::SETNS => (op::SETNS, a[1]),
        op::PIVOT_ROOT | op::CHROOT => (route, 0),
        _ => (route, a[0]),
    };
    // A clone without new namespaces is a fork; the child's own exit from clone (0) is not the
    // call.
    if op == op::CLONE && (ns_flags & CLONE_NEW_MASK == 0 || ret == 0) {
        return;
    }
    // The kind: the call, its outcome, and for unshare, clone and setns whether it asks for a
    // user or a mount namespace.
    let ns = if matches!(op, op::UNSHARE | op::CLONE | op::SETNS) {
        (ns_flags & CLONE_NEWUSER != 0) as u64 | ((ns_flags & CLONE_NEWNS != 0) as u64) << 1
    } else {
        0
    };
    if !admit_call(class::NAMESPACE, u64::from(op) << 3 | ns << 1 | failed(ret)) {
        return;
    }
    let Some((mut entry, header)) = reserve::<NamespaceRecord>(RecordKind::Namespace) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op, ret, flags);
        (*r).ns_flags = ns_flags;
        (*r).ns_ino = 0;
        (*r).fd = -1;
        (*r).source_len = 0;
        (*r).target_len = 0;
        (*r).fstype_len = 0;
        (*r).joined = [0; JOINED.len()];
        let cap = ARG_PATH_CAP as u32;
        let (source, target, fstype) = match op {
            op::MOUNT => (a[0], a[1], a[2]),
            op::UMOUNT | op::CHROOT => (0, a[0], 0),
            op::PIVOT_ROOT => (a[1], a[0], 0),
            op::FSOPEN => (0, 0, a[0]),
            op::MOVE_MOUNT => (a[1], a[3], 0),
            op::OPEN_TREE => (a[1], 0, 0),
            op::FSPICK | op::MOUNT_SETATTR => (0, a[1], 0),
            // The value, for the commands whose value is a string; the key.
            op::FSCONFIG if FSCONFIG_STRING_CMDS.contains(&a[1]) => (a[3], a[2], 0),
            op::FSCONFIG => (0, a[2], 0),
            _ => (0, 0, 0),
        };
        match op {
            op::SETNS => {
                (*r).fd = a[0] as i32;
                // A namespace's file (nsfs) names it by its inode; another (a pidfd) does not.
                if let Some(file) = file_of_fd(a[0] as i32)
                    && is_nsfs(file)
                {
                    (*r).ns_ino = file_ino(file);
                }
                joined(r, ret);
            }
            op::FSCONFIG | op::FSMOUNT | op::MOVE_MOUNT | op::OPEN_TREE | op::FSPICK | op::MOUNT_SETATTR => {
                (*r).fd = a[0] as i32;
            }
            _ => {}
        }
        let (n, cut_s) = user_str(source, (*r).source.as_mut_ptr(), cap);
        (*r).source_len = n;
        let (n, cut_t) = user_str(target, (*r).target.as_mut_ptr(), cap);
        (*r).target_len = n;
        let (n, cut_f) = user_str(fstype, (*r).fstype.as_mut_ptr(), FSTYPE_CAP as u32);
        (*r).fstype_len = n;
        if cut_s || cut_t || cut_f {
            (*r).call.flags |= STRING_TRUNCATED;
        }
    }
    submit(entry);
}

/// After a setns that succeeded: the caller's namespaces, by their inode numbers (a pidfd names
/// a process, not a namespace: these say where the call took the caller).
#[inline(always)]
unsafe fn joined(r: *mut NamespaceRecord, ret: i64) {
    if ret != 0 || config!(offsets.joined_valid) == 0 {
        return;
    }
    unsafe {
        let nsproxy: *const u8 = read0(current_task(), config!(offsets.task_nsproxy));
        for i in 0..JOINED.len() {
            let ns: *const u8 = read0(nsproxy, config!(offsets.nsproxy_ns[i]));
            (*r).joined[i] = if ns.is_null() { 0 } else { read0(ns, config!(offsets.ns_inum[i])) };
        }
    }
}

/// Whether an open file is on nsfs (one of `/proc/<pid>/ns/*`).
#[inline(always)]
unsafe fn is_nsfs(file: *const u8) -> bool {
    const NSFS_MAGIC: u32 = 0x6e73_6673;
    unsafe {
        let inode: *const u8 = read0(file, config!(offsets.file_f_inode));
        let sb: *const u8 = read0(inode, config!(offsets.inode_i_sb));
        read0::<u32>(sb, config!(offsets.sb_s_magic)) == NSFS_MAGIC
    }
}
