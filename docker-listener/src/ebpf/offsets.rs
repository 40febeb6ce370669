//! Offsets of the kernel struct members the eBPF programs read, resolved from the running
//! kernel's BTF (`/sys/kernel/btf/vmlinux`). Rust eBPF has no CO-RE relocations, so the daemon
//! does what libbpf's CO-RE would: look each member up by name, here, once at start.
use std::path::Path;

use super::{
    btf::{Btf, kind},
    kfunc::RdonlyCast,
};
use docker_listener_common::{CTIME_UNKNOWN, KernelOffsets};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("cannot read the kernel's BTF at {VMLINUX_BTF} ({0}): the kernel needs CONFIG_DEBUG_INFO_BTF")]
    Btf(String),
    #[error("kernel BTF has no member {0}: this kernel's layout is not supported for that field")]
    Missing(String),
}

struct Resolver<'b> {
    btf: Btf<'b>,
}

impl Resolver<'_> {
    /// The struct named `name` that has members (a forward declaration has none).
    fn struct_type(&self, name: &str) -> Result<u32, OffsetsError> {
        self.btf
            .ids_by_name(name, Some(kind::STRUCT))
            .find(|&id| !self.btf.members(id).is_empty())
            .ok_or_else(|| OffsetsError::Missing(format!("struct {name}")))
    }

    /// Byte offset of `name` in composite `id`, looking through anonymous struct/union members;
    /// with the member's type.
    fn find(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        for m in self.btf.members(id) {
            let mname = self.btf.name(m.name_off);
            if mname == name {
                if m.bitfield_size != 0 || m.bit_offset % 8 != 0 {
                    return None; // a bitfield cannot be read as a whole field
                }
                return Some((m.bit_offset / 8, m.type_id));
            }
            if mname.is_empty()
                && let Some(inner) = self.btf.composite(m.type_id)
                && let Some((off, ty)) = self.find(inner, name, depth + 1)
            {
                return Some((m.bit_offset / 8 + off, ty));
            }
        }
        None
    }

    /// Offset of a member that must be a pointer (the programs read it as one): a kernel that
    /// made it something else (an embedded struct) is not read.
    fn pointer(&self, strukt: &str, member: &str) -> Result<u32, OffsetsError> {
        let s = self.struct_type(strukt)?;
        match self.find(s, member, 0) {
            Some((off, ty)) if self.btf.is_pointer(ty) => Ok(off),
            Some(_) => Err(OffsetsError::Missing(format!("{strukt}.{member} as a pointer"))),
            None => Err(OffsetsError::Missing(format!("{strukt}.{member}"))),
        }
    }

    /// Offset of a member path such as `sock.__sk_common.skc_family`.
    fn offset(&self, strukt: &str, path: &[&str]) -> Result<u32, OffsetsError> {
        let missing = || OffsetsError::Missing(format!("{strukt}.{}", path.join(".")));
        let mut s = self.struct_type(strukt)?;
        let mut total = 0;
        for (i, name) in path.iter().enumerate() {
            let (off, ty) = self.find(s, name, 0).ok_or_else(missing)?;
            total += off;
            if i + 1 < path.len() {
                s = self.btf.composite(ty).ok_or_else(missing)?;
            }
        }
        Ok(total)
    }
}

/// What the kernel's BTF tells, read in one parse (a parse costs tens of MiB and most of a
/// second): the offsets the programs read, and what decides which doors open.
#[derive(Debug, Clone, Default)]
pub struct KernelInfo {
    pub offsets: KernelOffsets,
    /// Why exec events cannot name the executed file (a member of the walk missing), if so.
    pub exe_walk: Option<String>,
    /// Why exec events cannot say whether the executed file is on a container's writable layer
    /// (`drift`), if so: overlayfs's `struct ovl_inode` is not in the kernel's BTF.
    pub drift: Option<String>,
    /// The `struct pt_regs` members the exit program reads, with their offsets.
    pub pt_regs: Vec<(&'static str, u32)>,
    /// Why io_uring's opens cannot be read at their completion, if so: the members missing from
    /// the kernel's BTF (5.10's `io_kiocb` has no `cqe`).
    pub uring_opens: Option<String>,
    /// The kernel was built with the x32 ABI (`CONFIG_X86_X32_ABI`: 64-bit programs with 32-bit
    /// pointers, system call numbers | 0x40000000), whose calls neither the native tracepoints
    /// nor the 32-bit programs see: its dispatcher is in the BTF when it is built in.
    pub x32: bool,
    /// The kernel's BTF up to the typedefs the BTF tracepoints attach by (see [`Btf::prefix`]).
    pub attach_btf: AttachBtf,
    /// The kfunc `bpf_rdonly_cast` (6.2+) and the ids it is called with, when the BTF has them.
    pub rdonly_cast: Option<RdonlyCast>,
}

/// BTF bytes for aya (its `Debug` gives their size, not 3 MiB of numbers).
#[derive(Clone, Default)]
pub struct AttachBtf(pub Option<Vec<u8>>);

impl std::fmt::Debug for AttachBtf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttachBtf({:?} bytes)", self.0.as_ref().map(Vec::len))
    }
}

/// Reads the kernel's BTF once. Socket details are optional (their absence only blanks those
/// fields): an IPv6-less kernel has no `skc_v6_daddr`.
pub fn inspect(path: &Path) -> Result<KernelInfo, OffsetsError> {
    let btf = Btf::read(path, None).map_err(|e| OffsetsError::Btf(e.to_string()))?;
    let r = Resolver { btf };
    let sk = |field: &str| r.offset("sock", &["__sk_common", field]);
    let mut o = KernelOffsets {
        valid: 1,
        task_real_parent: r.offset("task_struct", &["real_parent"])?,
        task_group_leader: r.offset("task_struct", &["group_leader"])?,
        task_tgid: r.offset("task_struct", &["tgid"])?,
        task_start_boottime: r.offset("task_struct", &["start_boottime"])?,
        task_mm: r.offset("task_struct", &["mm"])?,
        task_exit_code: r.offset("task_struct", &["exit_code"])?,
        task_files: r.offset("task_struct", &["files"])?,
        mm_arg_start: r.offset("mm_struct", &["arg_start"])?,
        mm_arg_end: r.offset("mm_struct", &["arg_end"])?,
        files_fdt: r.offset("files_struct", &["fdt"])?,
        fdtable_fd: r.offset("fdtable", &["fd"])?,
        file_private_data: r.offset("file", &["private_data"])?,
        socket_type: r.offset("socket", &["type"])?,
        socket_sk: r.offset("socket", &["sk"])?,
        socket_file: r.offset("socket", &["file"])?,
        sk_family: sk("skc_family")?,
        sk_protocol: r.offset("sock", &["sk_protocol"]).unwrap_or(0),
        sk_daddr: sk("skc_daddr")?,
        sk_rcv_saddr: sk("skc_rcv_saddr")?,
        sk_dport: sk("skc_dport")?,
        sk_num: sk("skc_num")?,
        sk_v6_daddr: sk("skc_v6_daddr").unwrap_or(0),
        sk_v6_rcv_saddr: sk("skc_v6_rcv_saddr").unwrap_or(0),
        task_self_exec_id: r.offset("task_struct", &["self_exec_id"])?,
        // x86's thread_info, embedded in task_struct: only the 32-bit programs read it.
        task_ti_status: r.offset("task_struct", &["thread_info", "status"]).unwrap_or(0),
        task_stack: r.offset("task_struct", &["stack"]).unwrap_or(0),
        pt_regs_size: r.offset("pt_regs", &["ss"]).map_or(0, |ss| ss + 8),
        task_parent_exec_id: r.offset("task_struct", &["parent_exec_id"])?,
        // Whether an exit ends its thread group, before 6.16's `group_dead` (optional: without
        // them, the leader's exit is taken for the group's).
        task_signal: r.offset("task_struct", &["signal"]).unwrap_or(0),
        signal_live: r.offset("signal_struct", &["live"]).unwrap_or(0),
        ..KernelOffsets::default()
    };
    // The executed file's walk: optional as a whole (without it, exec events name only the path
    // given to execve, and carry no `exec.file`), so one missing member does not cost the rest.
    let exe_walk = match exe_walk(&r, &mut o) {
        Ok(()) => {
            o.exe_valid = 1;
            None
        }
        Err(e) => Some(e.to_string()),
    };
    // The direct loads of the file-access family's first checks: optional as a whole (without
    // them, every open takes the helper-call path).
    if let (Ok(cg), Ok(dfl), Ok(kn), Ok(id), Ok(arr)) = (
        r.offset("task_struct", &["cgroups"]),
        r.offset("css_set", &["dfl_cgrp"]),
        r.offset("cgroup", &["kn"]),
        r.offset("kernfs_node", &["id"]),
        r.offset("files_struct", &["fd_array"]),
    ) {
        (o.task_cgroups, o.css_set_dfl_cgrp, o.cgroup_kn, o.kernfs_node_id, o.files_fd_array) = (cg, dfl, kn, id, arr);
        o.direct_valid = 1;
    }
    // Who a ptrace request took hold of or wrote into, and where the caller's pids are:
    // optional as a whole (without it, the target is looked for in /proc from the caller's own
    // entry, and is not named once the caller is gone). `struct upid` is
    // `{ int nr; struct pid_namespace *ns; }`: `nr` first, `ns` last, a pointer.
    if let (Ok(ptraced), Ok(entry), Ok(thread_pid), Ok(level), Ok(numbers), Ok(0), Ok(ns), Ok(inum)) = (
        r.offset("task_struct", &["ptraced"]),
        r.offset("task_struct", &["ptrace_entry"]),
        r.pointer("task_struct", "thread_pid"),
        r.offset("pid", &["level"]),
        r.offset("pid", &["numbers"]),
        r.offset("upid", &["nr"]),
        r.pointer("upid", "ns"),
        r.offset("pid_namespace", &["ns", "inum"]),
    ) {
        (o.task_ptraced, o.task_ptrace_entry, o.task_thread_pid) = (ptraced, entry, thread_pid);
        (o.pid_level, o.pid_numbers, o.upid_ns, o.upid_size) = (level, numbers, ns, ns + 8);
        o.pidns_inum = inum;
        o.tracee_valid = 1;
    }
    // Where a setns took its caller (the namespaces after it): optional as a whole (without
    // it, a setns by a pidfd is not known to have entered a host namespace). `mnt_namespace`,
    // `pid_namespace`, `net`, `uts_namespace`, `ipc_namespace`, `cgroup_namespace` each embed a
    // `struct ns_common ns`.
    let joined = [
        ("mnt_ns", "mnt_namespace"),
        ("pid_ns_for_children", "pid_namespace"),
        ("net_ns", "net"),
        ("uts_ns", "uts_namespace"),
        ("ipc_ns", "ipc_namespace"),
        ("cgroup_ns", "cgroup_namespace"),
    ]
    .map(|(member, strukt)| Ok::<_, OffsetsError>((r.pointer("nsproxy", member)?, r.offset(strukt, &["ns", "inum"])?)));
    if let Ok(found) = joined.into_iter().collect::<Result<Vec<_>, _>>() {
        for (i, (member, inum)) in found.into_iter().enumerate() {
            (o.nsproxy_ns[i], o.ns_inum[i]) = (member, inum);
        }
        o.joined_valid = 1;
    }
    // The listener a Unix connect reached, by its bound name: optional as a whole (without it,
    // a connect names only the path the caller gave). `struct unix_sock` begins with its
    // `struct sock`, so its members are at these offsets from the socket's `sk`.
    if let (Ok(peer), Ok(addr), Ok(len), Ok(name), Ok(dentry)) = (
        r.pointer("unix_sock", "peer"),
        r.pointer("unix_sock", "addr"),
        r.offset("unix_address", &["len"]),
        r.offset("unix_address", &["name"]),
        r.offset("unix_sock", &["path", "dentry"]),
    ) {
        (o.unix_sock_peer, o.unix_sock_addr, o.unix_address_len, o.unix_address_name) = (peer, addr, len, name);
        o.unix_sock_path_dentry = dentry;
        o.unix_peer_valid = 1;
    }
    // Who made a Unix listener listen, as a connected socket has it (without it, every
    // listener over the budget is taken for one outside the container: `budget::admit_connect`).
    o.sk_peer_pid = r.pointer("sock", "sk_peer_pid").unwrap_or(0);
    if let (Ok(tasks), Ok(links)) = (r.offset("pid", &["tasks"]), r.offset("task_struct", &["pid_links"])) {
        (o.pid_tasks, o.task_pid_links) = (tasks, links);
    }
    // Credentials: optional as a whole (without them, privilege-change events carry no ids and
    // exec events no setuid/capability marks).
    let cred = |f: &str| r.offset("cred", &[f]);
    if let (
        Ok(task_real_cred),
        Ok(uid),
        Ok(euid),
        Ok(suid),
        Ok(fsuid),
        Ok(gid),
        Ok(egid),
        Ok(sgid),
        Ok(fsgid),
        Ok(eff),
        Ok(perm),
    ) = (
        r.offset("task_struct", &["real_cred"]),
        cred("uid"),
        cred("euid"),
        cred("suid"),
        cred("fsuid"),
        cred("gid"),
        cred("egid"),
        cred("sgid"),
        cred("fsgid"),
        cred("cap_effective"),
        cred("cap_permitted"),
    ) {
        o.task_real_cred = task_real_cred;
        (o.cred_uid, o.cred_euid, o.cred_suid, o.cred_fsuid) = (uid, euid, suid, fsuid);
        (o.cred_gid, o.cred_egid, o.cred_sgid, o.cred_fsgid) = (gid, egid, sgid, fsgid);
        (o.cred_cap_effective, o.cred_cap_permitted) = (eff, perm);
        // The programs read the eight ids, and the permitted and effective sets, each in one
        // go: they must lie in that order, back to back (they do in every kernel since 2.6.29).
        let ids = [uid, gid, suid, sgid, euid, egid, fsuid, fsgid];
        let contiguous = ids.windows(2).all(|w| w[1] == w[0] + 4) && eff == perm + 8;
        o.cred_valid = u32::from(contiguous);
    }
    // io_uring's opens (the file-access family, at their completion): optional as a whole.
    let uring = (
        r.offset("io_kiocb", &["opcode"]),
        r.offset("io_kiocb", &["cqe", "res"]),
        r.offset("file", &["f_flags"]),
        r.offset("file", &["f_mode"]),
    );
    let uring_opens = {
        let missing: Vec<String> = [&uring.0, &uring.1, &uring.2, &uring.3]
            .into_iter()
            .filter_map(|r| {
                r.as_ref().err().map(|e| match e {
                    OffsetsError::Missing(member) => member.clone(),
                    e => e.to_string(),
                })
            })
            .collect();
        (!missing.is_empty()).then(|| {
            let why = if r.struct_type("io_kiocb").is_err() { " (no io_kiocb: io_uring is not built in)" } else { "" };
            format!("the kernel's BTF lacks {}{why}", missing.join(", "))
        })
    };
    if let (Ok(op), Ok(res), Ok(flags), Ok(mode)) = uring {
        (o.io_kiocb_opcode, o.io_kiocb_res, o.file_f_flags, o.file_f_mode) = (op, res, flags, mode);
        // A connect's socket, at its completion (a Unix one: no other way shows it).
        if let Ok(file) = r.pointer("io_kiocb", "file") {
            o.io_kiocb_file = file;
            o.io_connect_valid = 1;
        }
        // Changes by name through a ring: without these, they are not seen.
        if let Ok(c) = uring_changes(&r) {
            (o.io_kiocb_cmd, o.filename_name) = (c[0], c[1]);
            (o.io_rename_old_dfd, o.io_rename_oldpath, o.io_rename_new_dfd, o.io_rename_newpath, o.io_rename_flags) =
                (c[2], c[3], c[4], c[5], c[6]);
            (o.io_unlink_dfd, o.io_unlink_filename, o.io_unlink_flags) = (c[7], c[8], c[9]);
            (o.io_kiocb_flags, o.io_open_dfd, o.io_open_filename, o.io_open_how) = (c[10], c[11], c[12], c[13]);
            o.io_changes_valid = 1;
        }
        // Opens into the ring's file table: without these, such an open is not seen. Where an
        // open says its slot is known, an open into a slot is never taken for a descriptor's.
        if let (Ok(cmd), Ok(slot)) = (r.offset("io_kiocb", &["cmd"]), r.offset("io_open", &["file_slot"])) {
            o.io_open_file_slot = cmd + slot;
        }
        if let Ok(fixed) = fixed_files(&r) {
            (o.io_open_file_slot, o.io_kiocb_ctx, o.io_ctx_fixed_files) = (fixed.slot, fixed.ctx, fixed.files);
            (o.io_fixed_file_ptr, o.io_fixed_indirect, o.io_fixed_valid) = (fixed.file_ptr, fixed.indirect, 1);
        }
    }
    let drift = match overlay(&r) {
        Ok((vfs_inode, upper)) => {
            (o.ovl_inode_vfs_inode, o.ovl_inode_upperdentry, o.ovl_valid) = (vfs_inode, upper, 1);
            None
        }
        Err(e) => Some(e),
    };
    let pt_regs = ["bp", "bx", "r10", "r9", "r8", "cx", "dx", "si", "di", "orig_ax"]
        .into_iter()
        .filter_map(|f| r.offset("pt_regs", &[f]).ok().map(|off| (f, off)))
        .collect();
    let x32 = r.btf.ids_by_name("x32_sys_call", None).next().is_some();
    // The typedefs `btf_trace_<event>` the BTF tracepoint programs attach by: aya looks them up
    // in a BTF of its own, given the kernel's cut after the last of them.
    // (Each lookup reads every type: each typedef is looked up once.)
    let typedefs: Vec<(&str, Option<u32>)> = super::attach::BTF_TRACEPOINTS
        .iter()
        .map(|&event| (event, r.btf.ids_by_name(&format!("btf_trace_{event}"), Some(kind::TYPEDEF)).next()))
        .collect();
    let last = typedefs.iter().filter_map(|&(_, id)| id).max().unwrap_or(1);
    let attach_btf = AttachBtf(r.btf.prefix(last));
    // The probe program of the cast loads as the exit program does, by `sys_exit`'s typedef.
    let sys_exit = typedefs.iter().find(|&&(event, _)| event == "sys_exit").and_then(|&(_, id)| id);
    let rdonly_cast =
        match (r.btf.ids_by_name("bpf_rdonly_cast", Some(kind::FUNC)).next(), r.struct_type("file"), sys_exit) {
            (Some(func), Ok(file), Some(attach)) => Some(RdonlyCast { func, file, attach }),
            _ => None,
        };
    Ok(KernelInfo { offsets: o, exe_walk, drift, pt_regs, uring_opens, x32, attach_btf, rdonly_cast })
}

/// Where an io_uring rename, link or unlink keeps its arguments until it runs (see
/// `KernelOffsets::io_kiocb_cmd`): the command's offset, `filename.name`, `io_rename`'s five
/// members, `io_unlink`'s three; the request's flags and `io_open`'s directory, name and
/// `open_how` (for an open whose completion will not be seen). A link's command (`io_link`, `io_hardlink` before 6.0) must be
/// laid out as a rename's is (it is, in every kernel that has them).
fn uring_changes(r: &Resolver) -> Result<[u32; 14], OffsetsError> {
    // (The names are `struct filename *`s: pointers, checked, as later kernels may change them.)
    let member =
        |s: &str, m: &str| if m.ends_with("path") || m == "filename" { r.pointer(s, m) } else { r.offset(s, &[m]) };
    let ren = |m: &str| member("io_rename", m);
    let link = |m: &str| member("io_link", m).or_else(|_| member("io_hardlink", m));
    let members = ["old_dfd", "oldpath", "new_dfd", "newpath", "flags"];
    let mut rename = [0; 5];
    for (i, m) in members.iter().enumerate() {
        rename[i] = ren(m)?;
        if link(m)? != rename[i] {
            return Err(OffsetsError::Missing(format!("io_link.{m} where io_rename.{m} is")));
        }
    }
    let unl = |m: &str| member("io_unlink", m);
    Ok([
        r.offset("io_kiocb", &["cmd"])?,
        r.offset("filename", &["name"])?,
        rename[0],
        rename[1],
        rename[2],
        rename[3],
        rename[4],
        unl("dfd")?,
        unl("filename")?,
        unl("flags")?,
        r.offset("io_kiocb", &["flags"])?,
        r.offset("io_open", &["dfd"])?,
        r.pointer("io_open", "filename")?,
        r.offset("io_open", &["how"])?,
    ])
}

/// Where an io_uring open into the ring's file table put its file (see `KernelOffsets`).
struct FixedFiles {
    slot: u32,
    ctx: u32,
    files: u32,
    file_ptr: u32,
    indirect: u32,
}

fn fixed_files(r: &Resolver) -> Result<FixedFiles, OffsetsError> {
    let slot = r.offset("io_kiocb", &["cmd"])? + r.offset("io_open", &["file_slot"])?;
    let ctx = r.offset("io_kiocb", &["ctx"])?;
    // Since 6.13: an array of pointers to `io_rsrc_node`s; before, of `io_fixed_file`s.
    let (files, file_ptr, indirect) = match r.offset("io_ring_ctx", &["file_table", "data", "nodes"]) {
        Ok(nodes) => (nodes, r.offset("io_rsrc_node", &["file_ptr"])?, 1),
        Err(_) => (r.offset("io_ring_ctx", &["file_table", "files"])?, r.offset("io_fixed_file", &["file_ptr"])?, 0),
    };
    Ok(FixedFiles { slot, ctx, files, file_ptr, indirect })
}

/// Where overlayfs's module BTF is when overlay is a module (it is loaded with the first
/// overlay mount: Docker's first container).
pub const OVERLAY_BTF: &str = "/sys/kernel/btf/overlay";

/// `struct ovl_inode`'s `vfs_inode` and `__upperdentry`: from vmlinux's BTF when overlayfs is
/// built in, else from the overlay module's (split) BTF. The reason when neither has them.
fn overlay(r: &Resolver) -> Result<(u32, u32), String> {
    let members = |r: &Resolver| -> Result<(u32, u32), OffsetsError> {
        Ok((r.offset("ovl_inode", &["vfs_inode"])?, r.offset("ovl_inode", &["__upperdentry"])?))
    };
    if let Ok(found) = members(r) {
        return Ok(found);
    }
    if !Path::new(OVERLAY_BTF).exists() {
        return Err(format!(
            "overlayfs is not built into this kernel and its module is not loaded ({OVERLAY_BTF} is missing): \
             start dockerd (or `modprobe overlay`) before the agent"
        ));
    }
    let module = Btf::read(Path::new(OVERLAY_BTF), Some(&r.btf)).map_err(|e| e.to_string())?;
    members(&Resolver { btf: module }).map_err(|e| format!("{e} (in {OVERLAY_BTF})"))
}

/// The members the walk from `mm->exe_file` up to the task's root reads.
fn exe_walk(r: &Resolver, o: &mut KernelOffsets) -> Result<(), OffsetsError> {
    o.task_fs = r.offset("task_struct", &["fs"])?;
    o.mm_exe_file = r.offset("mm_struct", &["exe_file"])?;
    o.fs_root = r.offset("fs_struct", &["root"])?;
    o.fs_pwd = r.offset("fs_struct", &["pwd"])?;
    o.file_f_path = r.offset("file", &["f_path"])?;
    o.file_f_inode = r.offset("file", &["f_inode"])?;
    o.path_mnt = r.offset("path", &["mnt"])?;
    o.path_dentry = r.offset("path", &["dentry"])?;
    o.dentry_d_parent = r.offset("dentry", &["d_parent"])?;
    // (Not the executable's walk: the file-access family's parent directory.)
    o.dentry_d_inode = r.offset("dentry", &["d_inode"])?;
    o.dentry_d_name = r.offset("dentry", &["d_name"])?;
    o.qstr_len = r.offset("qstr", &["len"])?;
    o.qstr_name = r.offset("qstr", &["name"])?;
    o.inode_i_ino = r.offset("inode", &["i_ino"])?;
    o.inode_i_sb = r.offset("inode", &["i_sb"])?;
    o.inode_i_nlink = r.offset("inode", &["__i_nlink"]).or_else(|_| r.offset("inode", &["i_nlink"]))?;
    (o.inode_ctime_sec, o.inode_ctime_nsec, o.inode_ctime_unknown) =
        inode_ctime(r).map_or((o.inode_i_ino, o.inode_i_ino, CTIME_UNKNOWN), |(sec, nsec)| (sec, nsec, 0));
    o.sb_s_dev = r.offset("super_block", &["s_dev"])?;
    o.sb_s_magic = r.offset("super_block", &["s_magic"])?;
    o.mount_mnt = r.offset("mount", &["mnt"])?;
    o.mount_mnt_parent = r.offset("mount", &["mnt_parent"])?;
    o.mount_mnt_mountpoint = r.offset("mount", &["mnt_mountpoint"])?;
    o.vfsmount_mnt_root = r.offset("vfsmount", &["mnt_root"])?;
    o.task_nsproxy = r.offset("task_struct", &["nsproxy"])?;
    o.nsproxy_mnt_ns = r.offset("nsproxy", &["mnt_ns"])?;
    o.mnt_ns_root = r.offset("mnt_namespace", &["root"])?;
    o.mnt_ns_inum = r.offset("mnt_namespace", &["ns", "inum"]).unwrap_or(0);
    Ok(())
}

/// Where `inode`'s ctime is, seconds and nanoseconds: `i_ctime_sec` and `i_ctime_nsec` since
/// 6.11, a `struct timespec64` named `__i_ctime` from 6.6, `i_ctime` before. `None` when none
/// is found: the files' records then carry no ctime, and repeat folding tells a program
/// rewritten in place from the old one by nothing but its arguments (`ExecBody::routine`).
fn inode_ctime(r: &Resolver) -> Option<(u32, u32)> {
    let pair = |sec: &[&str], nsec: &[&str]| Some((r.offset("inode", sec).ok()?, r.offset("inode", nsec).ok()?));
    pair(&["i_ctime_sec"], &["i_ctime_nsec"])
        .or_else(|| pair(&["__i_ctime", "tv_sec"], &["__i_ctime", "tv_nsec"]))
        .or_else(|| pair(&["i_ctime", "tv_sec"], &["i_ctime", "tv_nsec"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against this machine's own kernel: the offsets exist and are plausible.
    #[test]
    fn resolves_the_running_kernel() {
        if !Path::new(VMLINUX_BTF).exists() {
            // Under `cargo xtask test` (DL_E2E=1) the machine is the kind we ship for: it has BTF,
            // and this test must really run. Elsewhere (a developer's `cargo test`), say so.
            assert!(std::env::var("DL_E2E").as_deref() != Ok("1"), "{VMLINUX_BTF} is missing on the test machine");
            eprintln!("no kernel BTF here; skipping");
            return;
        }
        let info = inspect(Path::new(VMLINUX_BTF)).unwrap();
        assert!(info.exe_walk.is_none() && info.pt_regs.len() == 10 && !info.x32);
        let o = info.offsets;
        assert_eq!(o.valid, 1);
        assert!(o.task_tgid > 0 && o.task_real_parent > o.task_tgid);
        assert_ne!(o.task_group_leader, 0);
        assert!(o.mm_arg_end == o.mm_arg_start + 8, "arg_start/arg_end are adjacent longs");
        // struct sock starts with struct sock_common: its fields have small offsets.
        assert!(o.sk_family < 64 && o.sk_daddr < 16 && o.sk_rcv_saddr == o.sk_daddr + 4);
        assert_eq!(o.sk_num, o.sk_dport + 2, "skc_dport and skc_num share skc_portpair");
        assert_ne!(o.sk_protocol, 0);
        assert_eq!(o.exe_valid, 1, "every member of the executed file's walk");
        assert_eq!(o.cred_valid, 1, "every credential member");
        assert_eq!(o.path_dentry, o.path_mnt + 8, "struct path is {{ mnt, dentry }}");
        assert_eq!(o.qstr_name, 8, "qstr: hash_len, then name");
        assert!(o.task_parent_exec_id != o.task_self_exec_id && o.task_self_exec_id > 0);
        // Whether an exit ends its thread group (kernels before 6.16 read it there).
        assert!(o.task_signal > 0, "task_struct.signal");
        assert!(o.signal_live > 0 && o.signal_live < 64, "signal_struct.live, after its refcount: {}", o.signal_live);
        assert_eq!(o.tracee_valid, 1, "ptrace's tracee: task_struct.ptraced, thread_pid, struct pid, struct upid");
        assert_eq!((o.upid_ns, o.upid_size), (8, 16), "struct upid on x86-64");
        assert!(o.pidns_inum > 0, "pid_namespace.ns.inum, past the namespace's idr");
        assert_eq!(o.unix_peer_valid, 1, "a Unix socket's peer and its bound name");
        assert_eq!(o.joined_valid, 1, "nsproxy's namespaces and their inode numbers");
        assert_eq!((o.io_connect_valid, o.io_kiocb_file), (1, 0), "io_kiocb: its file first");
        assert_eq!(o.nsproxy_ns[0], o.nsproxy_mnt_ns, "the mount namespace first");
        assert_eq!(o.ns_inum[0], o.mnt_ns_inum);
        assert_eq!(o.ns_inum[1], o.pidns_inum);
        assert!(o.unix_sock_addr > 0 && o.unix_sock_peer > o.unix_sock_addr, "unix_sock: its sock first, then addr");
        assert!(o.sk_peer_pid > 0, "sock.sk_peer_pid");
        assert!(o.pid_tasks > o.pid_level && o.pid_tasks < o.pid_numbers, "struct pid: level, tasks[], numbers[] last");
        assert!(o.task_pid_links > 0, "task_struct.pid_links");
        assert!(o.unix_address_len == 4 && o.unix_address_name > o.unix_address_len, "unix_address: refcnt, len, name");
        assert!(o.task_ti_status > 0 && o.task_ti_status < 64, "thread_info comes first in task_struct");
        // overlayfs is built in here (or its module is loaded: Docker runs on this kind).
        assert_eq!(info.drift, None);
        assert_eq!(o.ovl_valid, 1);
        assert!(o.ovl_inode_upperdentry > o.ovl_inode_vfs_inode, "__upperdentry follows vfs_inode");
        // io_uring's doors: the ring's file table (6.13+: nodes by pointer), the requests'
        // commands (their names are pointers), the mount namespace's number.
        assert_eq!((o.io_fixed_valid, o.io_fixed_indirect, o.io_changes_valid), (1, 1, 1));
        assert_eq!(o.io_open_file_slot, 12, "io_open: file, dfd, file_slot (the command at 0)");
        assert!(o.io_rename_newpath == o.io_rename_oldpath + 8 && o.filename_name == 0, "{o:?}");
        assert_ne!(o.mnt_ns_inum, 0);
        // 6.11+: i_ctime_sec among the other times' seconds, i_ctime_nsec after them.
        assert!(o.inode_ctime_sec > o.inode_i_nlink && o.inode_ctime_nsec > o.inode_ctime_sec, "{o:?}");
        assert_eq!(o.inode_ctime_unknown, 0);
    }
}
