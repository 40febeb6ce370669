//! Every event family, one file each: its decoder, what the correlator adds to it, its ECS
//! writer; [`FAMILIES`] registers them, with the setting that turns each on. The records are in
//! docker-listener-common's `family` (one module each), the programs in docker-listener-ebpf
//! (one file each). The stages around a family (attach, correlation, container, noise, frame)
//! are shared.
//!
//! Two ways a family's records reach the agent ([`Reported`]): exec, sockets and io_uring
//! setups by programs of their own (`ebpf::attach` attaches them by setting); the others (kernel
//! modules, BPF, ptrace, namespaces and mounts, privilege changes, sensitive files, DNS queries
//! and UDP flows) at a system call's exit, by the one program there (the kernel's
//! `syscall_exit.rs`), as a [`Call`] whose `detail` the family decodes.
pub mod bpf;
pub mod cred;
pub mod exec;
pub mod file;
pub mod file_change;
pub mod file_handle;
pub mod io_uring;
pub mod kmod;
pub mod namespace;
pub mod net;
pub mod ptrace;
pub mod socket;

use std::borrow::Cow;

use docker_listener_common::{
    RecordKind,
    family::{CallHead, RESULT_UNKNOWN, STRING_TRUNCATED},
    flags,
};
use serde::ser::SerializeMap;

use crate::{
    config::EbpfConfig,
    ebpf::record::{Meta, Record, RecordError, meta, pod},
    ecs::{Decimal, ErrorOut, IdOut, Kind, ProcRef, ProcessRefOut, SyscallOut},
    procs::ProcessTable,
};

/// A family: its record kind, its setting, how its records are decoded.
pub struct Family {
    /// The name docs/EVENTS.md and the start-up log use.
    pub name: &'static str,
    pub kind: RecordKind,
    /// Its setting (`ebpf.<key>`; sockets have one per call).
    pub enabled: fn(&EbpfConfig) -> bool,
    pub reported: Reported,
}

/// How a family's records reach the agent, and how they are decoded.
pub enum Reported {
    /// By programs of its own: its record decoded whole (`max_args`: the arguments an argv
    /// keeps).
    Own(fn(bytes: &[u8], max_args: usize) -> Result<Record, RecordError>),
    /// By the program at every system call's exit: a [`Call`].
    AtExit(AtExit),
}

/// An exit-reported family's part of the exit program.
pub struct AtExit {
    /// Its bit in the kernel's `ProbeConfig::families` (its system calls: `FAMILY_NRS`).
    pub switch: u32,
    /// Its record after the [`CallHead`].
    pub decode: fn(&CallHead, &[u8]) -> Result<Detail, RecordError>,
    /// What it lets the agent see (the door's name, and what goes unseen when it is off).
    pub sees: &'static str,
}

/// Every family. Adding one: its files (here, in docker-listener-common's `family` and in
/// docker-listener-ebpf), for an exit-reported one a `Detail` variant, an entry here.
pub const FAMILIES: &[Family] = &[
    exec::FAMILY,
    socket::FAMILY,
    io_uring::FAMILY,
    kmod::FAMILY,
    bpf::FAMILY,
    ptrace::FAMILY,
    namespace::FAMILY,
    cred::FAMILY,
    file::FAMILY,
    net::FAMILY,
];

/// The family a record kind belongs to.
pub fn of_kind(kind: RecordKind) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.kind == kind)
}

/// The exit-reported families, with their part of the exit program.
pub fn at_exit() -> impl Iterator<Item = (&'static Family, &'static AtExit)> {
    FAMILIES.iter().filter_map(|f| match &f.reported {
        Reported::AtExit(a) => Some((f, a)),
        Reported::Own(_) => None,
    })
}

/// Decodes a record of a family.
pub fn decode_record(family: &Family, bytes: &[u8], max_args: usize) -> Result<Record, RecordError> {
    match &family.reported {
        Reported::Own(decode) => decode(bytes, max_args),
        Reported::AtExit(a) => decode(a, bytes).map(Record::Call),
    }
}

/// A decoded call of an exit-reported family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub meta: Meta,
    pub start_ns: u64,
    pub exec_id: u64,
    pub ret: i64,
    pub compat: bool,
    /// A string argument was longer than the record holds.
    pub truncated: bool,
    /// `ret` is the call's result (else it was sent before it ran, and nothing showed its end:
    /// `RESULT_UNKNOWN`).
    pub result_known: bool,
    /// The caller's executable: (inode, the kernel's dev_t), zeros when unknown.
    pub exe: (u64, u32),
    /// The caller's real user and group ids.
    pub uid: u32,
    pub gid: u32,
    pub detail: Detail,
}

/// What each family's record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    KernelModule(kmod::Module),
    Bpf(bpf::BpfCall),
    Ptrace(ptrace::Ptrace),
    Namespace(namespace::NsCall),
    Privilege(cred::CredChange),
    File(file::FileAccess),
    FileChange(file_change::FileChange),
    FileHandle(file_handle::OpenByHandle),
    Net(net::Send),
}

/// Decodes a record of an exit-reported family.
fn decode(family: &AtExit, bytes: &[u8]) -> Result<Call, RecordError> {
    let head: CallHead = pod(bytes)?;
    Ok(Call {
        meta: meta(&head.header),
        start_ns: head.start_ns,
        exec_id: head.exec_id,
        ret: head.ret,
        compat: head.flags & flags::COMPAT != 0,
        truncated: head.flags & STRING_TRUNCATED != 0,
        result_known: head.flags & RESULT_UNKNOWN == 0,
        exe: (head.exe_ino, head.exe_dev),
        uid: head.uid,
        gid: head.gid,
        detail: (family.decode)(&head, bytes)?,
    })
}

/// What the correlator knows when a call's event is made: the process table, the container's
/// cgroups, the host's namespaces.
pub struct Context<'a> {
    pub procs: &'a ProcessTable,
    pub cgroups: &'a [u64],
    pub host_ns: &'a HostNamespaces,
    /// The containers known, and the caller's container's id, when known: which namespaces it
    /// was made to share with the host.
    pub container: Option<(&'a crate::registry::ContainerRegistry, &'a str)>,
}

/// The inodes of the host's namespaces (`/proc/1/ns/*`): a setns into one of them is a way out
/// of the container.
#[derive(Debug, Clone, Default)]
pub struct HostNamespaces {
    pub inodes: Vec<(u64, &'static str)>,
}

impl HostNamespaces {
    pub const TYPES: [&'static str; 8] = ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"];

    /// The host init's (`/proc/1/ns`), or where those cannot be read (pid 1 in another user
    /// namespace), the agent's own, which runs in the host's namespaces.
    pub fn read() -> HostNamespaces {
        use std::os::unix::fs::MetadataExt;
        let ino = |pid: &str, t: &str| std::fs::metadata(format!("/proc/{pid}/ns/{t}")).ok().map(|m| m.ino());
        let inodes =
            Self::TYPES.iter().filter_map(|t| ino("1", t).or_else(|| ino("self", t)).map(|i| (i, *t))).collect();
        HostNamespaces { inodes }
    }

    /// The host namespace an inode is, if any.
    pub fn which(&self, ino: u64) -> Option<&'static str> {
        self.inodes.iter().find(|(i, _)| *i == ino && ino != 0).map(|(_, t)| *t)
    }
}

/// The container runtime's binaries, by (inode, the kernel's dev_t): a call made by a process
/// running one of them is the runtime setting a container up (runc's dozens of mounts, its
/// unshare and pivot_root at every start; its setns at every `docker exec`). Known by the file
/// the kernel says the process runs, which nothing in a container can be (runc's "cloned
/// binary" is a read-only bind mount of the same file).
#[derive(Debug, Clone, Default)]
pub struct RuntimeBinaries {
    files: Vec<(u64, u32)>,
}

impl RuntimeBinaries {
    /// The runtimes Docker and containerd start, where distributions and their own packages put
    /// them.
    pub const NAMES: [&'static str; 6] = ["runc", "crun", "docker-runc", "youki", "runsc", "docker-init"];
    pub const DIRS: [&'static str; 6] =
        ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/libexec/docker", "/bin"];

    /// (Silent: the eBPF loader, which uses them first, says when none is found.)
    pub fn find() -> RuntimeBinaries {
        let mut files = Vec::new();
        for dir in Self::DIRS {
            for name in Self::NAMES {
                if let Some(file) = crate::sensitive::file_id(format!("{dir}/{name}"))
                    && !files.contains(&file)
                {
                    files.push(file);
                }
            }
        }
        RuntimeBinaries { files }
    }

    /// These files (tests).
    pub fn of(files: Vec<(u64, u32)>) -> RuntimeBinaries {
        RuntimeBinaries { files }
    }

    /// The files: (inode, the kernel's dev_t).
    pub fn files(&self) -> &[(u64, u32)] {
        &self.files
    }

    pub fn contains(&self, exe: (u64, u32)) -> bool {
        exe.0 != 0 && self.files.contains(&exe)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The event of a call: its process, its parent, and what its family adds.
#[derive(Debug, Clone)]
pub struct CallBody {
    pub process: ProcRef,
    pub parent: Option<ProcRef>,
    pub call: Call,
}

impl CallBody {
    pub fn new(mut call: Call, process: ProcRef, parent: Option<ProcRef>, ctx: &Context<'_>) -> CallBody {
        match &mut call.detail {
            Detail::Ptrace(p) => p.resolve(call.meta.tgid, ctx),
            Detail::Namespace(n) => n.resolve(ctx),
            Detail::Privilege(c) => c.resolve(call.meta.tgid, ctx),
            // (Resolved before: the correlator drops what is not an event.)
            Detail::KernelModule(_)
            | Detail::Bpf(_)
            | Detail::File(_)
            | Detail::FileChange(_)
            | Detail::FileHandle(_)
            | Detail::Net(_) => {}
        }
        CallBody { process, parent, call }
    }

    /// The credentials a successful privilege change left the process with.
    pub fn credentials_after(&self) -> Option<docker_listener_common::family::cred::Creds> {
        match &self.call.detail {
            Detail::Privilege(c) if self.call.ret >= 0 => c.after,
            _ => None,
        }
    }

    pub fn kind(&self) -> Kind {
        match &self.call.detail {
            Detail::KernelModule(d) => d.kind(),
            Detail::Bpf(d) => d.kind(),
            Detail::Ptrace(d) => d.kind(),
            Detail::Namespace(d) => d.kind(),
            Detail::Privilege(d) => d.kind(),
            Detail::File(d) => d.kind(),
            Detail::FileChange(d) => d.kind(),
            Detail::FileHandle(d) => d.kind(),
            Detail::Net(d) => d.kind(),
        }
    }

    fn syscall(&self) -> &'static str {
        match &self.call.detail {
            Detail::KernelModule(d) => d.syscall(),
            Detail::Bpf(_) => "bpf",
            Detail::Ptrace(d) => d.syscall(),
            Detail::Namespace(d) => d.syscall(),
            Detail::Privilege(d) => d.syscall(),
            Detail::File(d) => d.syscall(),
            Detail::FileChange(d) => d.syscall(),
            Detail::FileHandle(d) => d.syscall(),
            Detail::Net(d) => d.syscall(),
        }
    }

    pub fn outcome(&self) -> &'static str {
        match (self.call.result_known, self.call.ret >= 0) {
            (false, _) => "unknown",
            (true, true) => "success",
            (true, false) => "failure",
        }
    }

    pub(crate) fn write_top<M: SerializeMap>(
        &self,
        thread: crate::ecs::ThreadOut,
        m: &mut M,
    ) -> Result<Option<ErrorOut>, M::Error> {
        m.serialize_entry(
            "process",
            &ProcessRefOut {
                process: &self.process,
                thread,
                user: Some(IdOut { id: Decimal(self.call.uid) }),
                group: Some(IdOut { id: Decimal(self.call.gid) }),
                parent: self.parent.as_ref(),
            },
        )?;
        match &self.call.detail {
            Detail::File(f) => f.write_file(m)?,
            Detail::FileChange(f) => f.write_file(m)?,
            Detail::FileHandle(f) => f.write_file(m)?,
            Detail::Net(n) => n.write_top(m)?,
            _ => {}
        }
        Ok((self.call.ret < 0).then(|| ErrorOut::of_call(self.syscall(), self.call.ret)))
    }

    pub(crate) fn write_listener<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let mut syscall = SyscallOut::new(self.syscall(), self.call.ret, self.call.compat);
        if !self.call.result_known {
            syscall.ret = None;
        }
        m.serialize_entry("syscall", &syscall)?;
        match &self.call.detail {
            Detail::KernelModule(d) => d.write(m)?,
            Detail::Bpf(d) => d.write(m)?,
            Detail::Ptrace(d) => d.write(m)?,
            Detail::Namespace(d) => d.write(m)?,
            Detail::Privilege(d) => d.write(m)?,
            Detail::File(d) => d.write(m)?,
            Detail::FileChange(d) => d.write(m)?,
            Detail::FileHandle(d) => d.write(m)?,
            Detail::Net(d) => d.write(m)?,
        }
        if self.call.truncated {
            m.serialize_entry("arguments_truncated", &true)?;
        }
        Ok(())
    }
}

/// ECS `file` of a file-access event: the path, its directory and name ("/" for a file at the
/// root; no directory for a name without one, such as `memfd:x`), and the inode and device
/// when the kernel named them.
#[derive(serde::Serialize)]
pub(crate) struct FileOut<'a> {
    path: &'a str,
    name: &'a str,
    directory: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    inode: Option<crate::ecs::Decimal<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<crate::ebpf::record::Device>,
}

impl<'a> FileOut<'a> {
    pub(crate) fn new(path: &'a str, ino_dev: Option<(u64, crate::ebpf::record::Device)>) -> FileOut<'a> {
        let (directory, name) = match path.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((dir, name)) => (dir, name),
            None => ("", path),
        };
        let (inode, device) = ino_dev.map_or((None, None), |(i, d)| (Some(crate::ecs::Decimal(i)), Some(d)));
        FileOut { path, name, directory, inode, device }
    }
}

/// The bytes of a record's string field, `len` of them at most, as text.
pub(crate) fn text(buf: &[u8], len: u32) -> String {
    crate::ebpf::record::cstr(buf, len as usize)
}

/// Names of the bits set in `value` (`names`: bit, name), and what is left as hex.
pub(crate) fn bit_names(value: u64, names: &[(u64, &'static str)]) -> Vec<Cow<'static, str>> {
    let mut out = Vec::new();
    let mut rest = value;
    for &(bit, name) in names {
        if value & bit == bit && bit != 0 {
            out.push(Cow::Borrowed(name));
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(Cow::Owned(format!("0x{rest:x}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use docker_listener_common::{
        RecordHeader,
        family::{kmod::KernelModuleRecord, namespace::NamespaceRecord, ptrace::PtraceRecord},
    };
    use serde_json::json;

    use super::*;
    use crate::{
        ebpf::record::{Record, parse},
        ecs::{Body, Clock, Event, tests::json},
        procs::{Image, Lineage},
    };

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain-old-data value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn head(kind: RecordKind, op: u32, ret: i64, flags: u32) -> CallHead {
        CallHead {
            header: RecordHeader { kind: kind as u32, cpu: 1, seq: 9, ktime_ns: 5, cgroup_id: 82, pid: 40, tgid: 40 },
            start_ns: 7,
            exec_id: 1,
            ret,
            op,
            flags,
            exe_ino: 123,
            exe_dev: 5 << 20 | 1,
            uid: 1000,
            gid: 1000,
            _pad: 0,
        }
    }

    fn event(call: Call, host_ns: &HostNamespaces) -> serde_json::Value {
        event_in(call, host_ns, None)
    }

    /// `call`'s event, made by a process of container `container` (its id) among `known`.
    fn event_in(
        call: Call,
        host_ns: &HostNamespaces,
        container: Option<(&crate::registry::ContainerRegistry, &str)>,
    ) -> serde_json::Value {
        let procs = ProcessTable::new("b".into(), 100);
        let ctx = Context { procs: &procs, cgroups: &[82], host_ns, container };
        let image = Arc::new(Image::new("/bin/busybox", &["unshare".into()]));
        let lineage = Lineage::new(40, procs.entity_id(40, 7), image, 82, None);
        let meta = call.meta;
        let body = CallBody::new(call, ProcRef::of(&lineage), None, &ctx);
        json(&Event::new(meta, Clock::fixed(0), Body::Call(body)), None, "")
    }

    use std::sync::Arc;

    fn decoded(bytes: &[u8]) -> Call {
        match parse(bytes, 64).unwrap() {
            Record::Call(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_mount_is_decoded_and_written_with_its_strings_and_flags() {
        let mut r: NamespaceRecord = unsafe { std::mem::zeroed() };
        r.call = head(
            RecordKind::Namespace,
            docker_listener_common::family::namespace::op::MOUNT,
            -1,
            flags::COMPAT | STRING_TRUNCATED,
        );
        r.ns_flags = 0xc0ed_0000 | 4096 | 16384;
        for (buf, len, text) in
            [(&mut r.source[..], &mut r.source_len, "/dev/sda1"), (&mut r.target[..], &mut r.target_len, "/mnt/host")]
        {
            buf[..text.len()].copy_from_slice(text.as_bytes());
            *len = text.len() as u32;
        }
        r.fstype[..4].copy_from_slice(b"ext4");
        r.fstype_len = 4;
        let call = decoded(&bytes_of(&r));
        assert!(call.compat && call.truncated);
        assert_eq!(call.exe, (123, 5 << 20 | 1));
        assert_eq!((call.uid, call.gid), (1000, 1000));
        let v = event(call, &HostNamespaces::default());
        assert_eq!((&v["process"]["user"]["id"], &v["process"]["group"]["id"]), (&json!("1000"), &json!("1000")));
        assert_eq!(v["event"]["action"], "mount");
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["error"]["code"], "EPERM");
        assert_eq!(v["docker_listener"]["syscall"], json!({"name": "mount", "ret": -1, "abi": "ia32"}));
        assert_eq!(
            v["docker_listener"]["mount"],
            json!({"source": "/dev/sda1", "target": "/mnt/host", "fstype": "ext4", "flags": ["MS_BIND", "MS_REC"]}),
            "MS_MGC_VAL in the high half is not a flag"
        );
        assert_eq!(v["docker_listener"]["arguments_truncated"], true);
        assert_eq!(v["process"]["executable"], "/bin/busybox");
    }

    #[test]
    fn a_setns_into_a_host_namespace_names_it() {
        let mut r: NamespaceRecord = unsafe { std::mem::zeroed() };
        r.call = head(RecordKind::Namespace, docker_listener_common::family::namespace::op::SETNS, 0, 0);
        r.ns_flags = 0x0400_0000;
        r.ns_ino = 4_026_531_838;
        r.fd = 3;
        let host = HostNamespaces { inodes: vec![(4_026_531_838, "uts"), (4_026_531_840, "mnt")] };
        let v = event(decoded(&bytes_of(&r)), &host);
        assert_eq!(
            v["docker_listener"]["namespace"],
            json!({"types": ["uts"], "flags": "0x4000000", "fd": 3, "inode": 4_026_531_838u64, "host": "uts"})
        );
        // Another namespace: no `host`.
        r.ns_ino = 77;
        let v = event(decoded(&bytes_of(&r)), &host);
        assert!(v["docker_listener"]["namespace"].get("host").is_none(), "{v}");
        assert_eq!(host.which(0), None, "an unknown inode is no host namespace");
        // By a pidfd (the descriptor names no namespace): where the call took the caller, among
        // the namespaces it asked for.
        r.ns_ino = 0;
        r.ns_flags = 0x0402_0000; // CLONE_NEWUTS | CLONE_NEWNS
        r.joined = [4_026_531_840, 0, 0, 4_026_531_838, 0, 0];
        let v = event(decoded(&bytes_of(&r)), &host);
        assert_eq!(v["docker_listener"]["namespace"]["host"], "mnt", "{v}");
        assert!(v["docker_listener"]["namespace"].get("inode").is_none(), "{v}");
        r.ns_flags = 0x4000_0000; // CLONE_NEWNET: the caller was already in the host's mnt and uts
        let v = event(decoded(&bytes_of(&r)), &host);
        assert!(v["docker_listener"]["namespace"].get("host").is_none(), "{v}");
    }

    #[test]
    fn a_setns_by_a_pidfd_into_a_namespace_docker_made_shared_names_no_host_namespace() {
        let id = "c".repeat(64);
        let mut known = crate::registry::ContainerRegistry::default();
        let inspected: bollard::models::ContainerInspectResponse = serde_json::from_value(json!({
            "Id": &id, "Name": "/web", "HostConfig": {"UTSMode": "host", "NetworkMode": "none"}
        }))
        .unwrap();
        known.upsert(crate::registry::Container::from_inspect(&inspected).unwrap());
        let mut r: NamespaceRecord = unsafe { std::mem::zeroed() };
        r.call = head(RecordKind::Namespace, docker_listener_common::family::namespace::op::SETNS, 0, 0);
        let host = HostNamespaces { inodes: vec![(4_026_531_838, "uts"), (4_026_531_840, "net")] };
        // By a pidfd, into the host's UTS and network namespaces (`JOINED`'s order: mnt, pid,
        // net, uts, ipc, cgroup): the UTS one is shared (`--uts=host`), the network one is not.
        r.ns_flags = 0x4400_0000; // CLONE_NEWNET | CLONE_NEWUTS
        r.joined = [0, 0, 4_026_531_840, 4_026_531_838, 0, 0];
        let v = event_in(decoded(&bytes_of(&r)), &host, Some((&known, &id)));
        assert_eq!(v["docker_listener"]["namespace"]["host"], "net", "{v}");
        r.ns_flags = 0x0400_0000; // CLONE_NEWUTS alone: shared, no way out
        let v = event_in(decoded(&bytes_of(&r)), &host, Some((&known, &id)));
        assert!(v["docker_listener"]["namespace"].get("host").is_none(), "{v}");
        // A container not inspected yet: what it shares is not known, the entry is named.
        let v = event_in(decoded(&bytes_of(&r)), &host, Some((&known, &"d".repeat(64))));
        assert_eq!(v["docker_listener"]["namespace"]["host"], "uts", "{v}");
    }

    #[test]
    fn module_and_ptrace_records_say_what_was_asked() {
        let mut m: KernelModuleRecord = unsafe { std::mem::zeroed() };
        m.call = head(RecordKind::KernelModule, docker_listener_common::family::kmod::op::FINIT_MODULE, -38, 0);
        m.fd = 3;
        m.name[..6].copy_from_slice(b"evil.k");
        m.name_len = 6;
        let v = event(decoded(&bytes_of(&m)), &HostNamespaces::default());
        assert_eq!(v["event"]["action"], "module-load");
        assert_eq!(v["error"]["code"], "ENOSYS");
        assert_eq!(v["docker_listener"]["kernel_module"], json!({"file_name": "evil.k", "fd": 3, "flags": 0}));

        let mut p: PtraceRecord = unsafe { std::mem::zeroed() };
        p.call = head(RecordKind::Ptrace, docker_listener_common::family::ptrace::op::PTRACE, 0, 0);
        p.request = docker_listener_common::family::ptrace::request::POKETEXT;
        p.target = 12;
        p.addr = 0x4000;
        let v = event(decoded(&bytes_of(&p)), &HostNamespaces::default());
        assert_eq!(v["event"]["action"], "ptrace");
        assert_eq!(
            v["docker_listener"]["ptrace"],
            json!({"request": "PTRACE_POKETEXT", "address": "0x4000", "target": {"pid": 12}}),
            "a target not found among the container's processes is named by its pid only"
        );

        // A successful ATTACH: the kernel named its tracee at the call's exit; the process is gone
        // by now (no /proc entry started then), and is still named, as the host knew it.
        p.call = head(RecordKind::Ptrace, docker_listener_common::family::ptrace::op::PTRACE, 0, 0);
        p.request = docker_listener_common::family::ptrace::request::ATTACH;
        p.target = 2;
        (p.tracee_tgid, p.tracee_start_ns) = (4242, 987_654_321_000);
        let v = event(decoded(&bytes_of(&p)), &HostNamespaces::default());
        let entity_id = ProcessTable::new("b".into(), 100).entity_id(4242, 987_654_321_000);
        assert_eq!(
            v["docker_listener"]["ptrace"],
            json!({"request": "PTRACE_ATTACH", "target": {"pid": 2, "host_pid": 4242, "entity_id": entity_id}}),
        );
        // A write into a tracee: the kernel named it too (a thread's id names its process).
        p.request = docker_listener_common::family::ptrace::request::POKEDATA;
        p.target = 7;
        let v = event(decoded(&bytes_of(&p)), &HostNamespaces::default());
        assert_eq!(
            v["docker_listener"]["ptrace"],
            json!({"request": "PTRACE_POKEDATA", "address": "0x4000", "target": {"pid": 7, "host_pid": 4242, "entity_id": entity_id}}),
        );
    }

    #[test]
    fn an_open_by_handle_is_written_with_its_handle_and_where_its_file_is() {
        use docker_listener_common::family::file::{HANDLE_CAP, PathRecord, op};
        let mut r: PathRecord = unsafe { std::mem::zeroed() };
        r.call = head(RecordKind::FileAccess, op::BY_HANDLE, 4, 0);
        // open_by_handle_at(3, handle, O_RDONLY) opened fd 4: the walk reached the filesystem's
        // root ("/", then DETACHED), beyond the mount of fd 3.
        r.args = [3, 0x7000, 0, 4, 0, 0];
        r.matched = docker_listener_common::family::file::matched::HANDLE;
        r.base.ino = 817;
        r.base.dev = 254 << 20;
        r.base.magic = 0xef53; // ext2/3/4
        r.base.flags = docker_listener_common::exe_flags::DETACHED;
        let walked = b"shadow\0etc\0/\0";
        r.base_path[..walked.len()].copy_from_slice(walked);
        r.base.path_len = walked.len() as u32;
        let handle = [8u8, 0, 0, 0, 1, 0, 0, 0, 0x31, 3, 0, 0, 0, 0, 0, 0];
        r.name2[..handle.len()].copy_from_slice(&handle);
        r.name2_len = HANDLE_CAP as u32;
        let v = event(decoded(&bytes_of(&r)), &HostNamespaces::default());
        assert_eq!(
            (v["event"]["action"].as_str(), v["event"]["outcome"].as_str()),
            (Some("file-open-by-handle"), Some("success"))
        );
        assert_eq!(v["file"]["path"], "/etc/shadow", "{v}");
        assert_eq!(v["file"]["inode"], "817");
        assert_eq!(v["docker_listener"]["syscall"]["name"], "open_by_handle_at");
        assert_eq!(
            v["docker_listener"]["file_access"],
            json!({
                "match": "handle",
                "handle": {"type": 1, "size": 8, "bytes": "3103000000000000", "inode": 817},
                "flags": ["O_RDONLY"],
                "mount_fd": 3,
                "outside_mount": true,
                "filesystem": "ext4"
            })
        );
        // Refused: the file walked is the mount's, not one opened.
        r.call = head(RecordKind::FileAccess, op::BY_HANDLE, -1, flags::COMPAT);
        r.base.flags = 0;
        let walked = b"hostname\0etc\0";
        r.base_path = [0; docker_listener_common::EXE_PATH_CAP];
        r.base_path[..walked.len()].copy_from_slice(walked);
        r.base.path_len = walked.len() as u32;
        let v = event(decoded(&bytes_of(&r)), &HostNamespaces::default());
        assert!(v.get("file").is_none(), "{v}");
        assert_eq!(v["error"]["code"], "EPERM");
        assert_eq!(v["docker_listener"]["syscall"]["abi"], "ia32");
        let fa = &v["docker_listener"]["file_access"];
        assert_eq!((fa["mount_file"].as_str(), fa.get("outside_mount")), (Some("/etc/hostname"), None), "{v}");
    }

    #[test]
    fn opens_run_by_io_uring_are_named_by_their_operation() {
        use docker_listener_common::family::file::{FileRecord, access, matched, op};
        let mut r: FileRecord = unsafe { std::mem::zeroed() };
        r.call = head(RecordKind::FileAccess, op::URING_OPENAT2, 5, 0);
        r.fd = 5;
        r.open_flags = 0o100000;
        r.matched = matched::FILE;
        r.access = access::READ;
        let Detail::File(f) = decoded(&bytes_of(&r)).detail else { panic!("an open") };
        assert_eq!((f.syscall(), f.kind().action), ("IORING_OP_OPENAT2", "file-read"));
        r.call.op = op::URING_OPENAT;
        let Detail::File(f) = decoded(&bytes_of(&r)).detail else { panic!("an open") };
        assert_eq!(f.syscall(), "IORING_OP_OPENAT");
        let v = event(decoded(&bytes_of(&r)), &HostNamespaces::default());
        let fa = &v["docker_listener"]["file_access"];
        assert_eq!((&fa["fd"], fa.get("fixed_file")), (&json!(5), None), "{v}");
        // Into the ring's file table: a slot, no descriptor.
        r.call.flags |= docker_listener_common::family::file::FIXED_FILE;
        r.fd = 0;
        let v = event(decoded(&bytes_of(&r)), &HostNamespaces::default());
        let fa = &v["docker_listener"]["file_access"];
        assert_eq!((fa.get("fd"), &fa["fixed_file"]), (None, &json!(0)), "{v}");
    }

    #[test]
    fn every_family_is_registered_once_with_its_numbers() {
        use docker_listener_common::syscalls::FAMILY_NRS;
        for f in FAMILIES {
            assert_eq!(FAMILIES.iter().filter(|g| g.kind == f.kind || g.name == f.name).count(), 1, "{}", f.name);
        }
        for (f, a) in at_exit() {
            assert_eq!(at_exit().filter(|(_, b)| b.switch == a.switch).count(), 1, "{}", f.name);
            assert_eq!(FAMILY_NRS.iter().filter(|(s, ..)| *s == a.switch).count(), 1, "{}: its numbers", f.name);
        }
        assert_eq!(FAMILY_NRS.len(), at_exit().count());
        // Every number fits the kernel's bitmap.
        for (_, x64, ia32) in FAMILY_NRS {
            assert!(x64.iter().chain(ia32.iter()).all(|&n| (0..512).contains(&n)));
        }
        // Every record kind is a family's, but the process tree's and the cgroups' (which
        // every family stands on).
        let kinds: Vec<RecordKind> = (0..1000).filter_map(|k| RecordKind::try_from(k).ok()).collect();
        assert!(kinds.len() >= FAMILIES.len() + 3, "{kinds:?}");
        for kind in kinds {
            let core = matches!(kind, RecordKind::Fork | RecordKind::Exit | RecordKind::Cgroup);
            assert_eq!(of_kind(kind).is_none(), core, "{kind:?}");
        }
    }

    #[test]
    fn runtime_binaries_are_known_by_inode_and_device() {
        let found = RuntimeBinaries { files: vec![(42, 8 << 20 | 1)] };
        assert!(found.contains((42, 8 << 20 | 1)));
        assert!(!found.contains((42, 8 << 20 | 2)), "the same inode on another device is another file");
        assert!(!RuntimeBinaries::default().contains((0, 0)));
        // This machine's runc, when it has one, converts to the kernel's dev_t.
        if let Ok(m) = std::fs::metadata("/usr/sbin/runc") {
            use std::os::unix::fs::MetadataExt;
            let all = RuntimeBinaries::find();
            assert!(all.files.iter().any(|&(ino, _)| ino == m.ino()), "{all:?}");
        }
    }

    #[test]
    fn bit_names_keep_unknown_bits_as_hex() {
        assert_eq!(bit_names(0x20000 | 0x1, &[(0x20000, "mnt")]), vec![Cow::Borrowed("mnt"), Cow::Owned("0x1".into())]);
        assert!(bit_names(0, &[(1, "a")]).is_empty());
    }
}
