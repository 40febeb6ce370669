//! `namespace-change` (`event.action`: `unshare`, `setns`, `clone`, `mount`, `umount`,
//! `pivot_root`, `chroot`): the namespace and mount calls a container escape is made of, by a
//! container process, refused ones included (Docker's seccomp profile refuses most of them in a
//! default container: the attempt is the event). Paths are the strings the caller passed; a
//! setns names the namespace by its inode, and says when it is one of the host's.
use std::borrow::Cow;

use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        namespace::{JOINED, NamespaceRecord, op},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{AtExit, Context, Detail, Family, Reported, bit_names, text};
use crate::{
    ebpf::record::{RecordError, pod_ref},
    ecs::Kind,
};

pub const FAMILY: Family = Family {
    name: "namespace-change",
    kind: RecordKind::Namespace,
    enabled: |c| c.namespace,
    reported: Reported::AtExit(AtExit {
        switch: switch::NAMESPACE,
        decode,
        sees: "namespace changes and mounts (unshare, setns, clone with new namespaces, mount, umount, pivot_root, chroot; \
           fsopen, fsconfig, fsmount, move_mount, open_tree, fspick, mount_setattr)",
    }),
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsCall {
    pub op: u32,
    pub flags: u64,
    pub ns_ino: u64,
    pub fd: i32,
    pub source: String,
    pub target: String,
    pub fstype: String,
    /// setns that succeeded: the caller's namespaces after it (`JOINED`'s order, 0 unknown).
    pub joined: [u32; JOINED.len()],
    /// setns: the host namespace the descriptor names, or one a descriptor that names none (a
    /// pidfd) took the caller into, among those the call asked for.
    pub host_namespace: Option<&'static str>,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<NamespaceRecord>(bytes)?;
    Ok(Detail::Namespace(NsCall {
        op: head.op,
        flags: r.ns_flags,
        ns_ino: r.ns_ino,
        fd: r.fd,
        source: text(&r.source, r.source_len),
        target: text(&r.target, r.target_len),
        fstype: text(&r.fstype, r.fstype_len),
        joined: r.joined,
        host_namespace: None,
    }))
}

/// `CLONE_NEW*` (include/uapi/linux/sched.h), by the name `/proc/<pid>/ns/` gives each.
const NAMESPACES: &[(u64, &str)] = &[
    (0x0002_0000, "mnt"),
    (0x0200_0000, "cgroup"),
    (0x0400_0000, "uts"),
    (0x0800_0000, "ipc"),
    (0x1000_0000, "user"),
    (0x2000_0000, "pid"),
    (0x4000_0000, "net"),
    (0x0000_0080, "time"),
];

/// mount(2)'s flags (include/uapi/linux/mount.h), the ones that say what a mount is.
const MOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (32, "MS_REMOUNT"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 15, "MS_SILENT"),
];

/// `MOUNT_ATTR_*` (fsmount's attr_flags, mount_setattr's attr_set and attr_clr).
const MOUNT_ATTRS: &[(u64, &str)] = &[
    (1, "MOUNT_ATTR_RDONLY"),
    (2, "MOUNT_ATTR_NOSUID"),
    (4, "MOUNT_ATTR_NODEV"),
    (8, "MOUNT_ATTR_NOEXEC"),
    (0x10, "MOUNT_ATTR_RELATIME"),
    (0x20, "MOUNT_ATTR_NOATIME"),
    (0x80, "MOUNT_ATTR_NODIRATIME"),
    (0x0010_0000, "MOUNT_ATTR_IDMAP"),
    (0x0020_0000, "MOUNT_ATTR_NOSYMFOLLOW"),
];

/// open_tree's flags: a clone of the tree (a bind mount to be), recursively.
const OPEN_TREE_FLAGS: &[(u64, &str)] = &[(1, "OPEN_TREE_CLONE"), (0x8000, "AT_RECURSIVE")];

/// fsconfig's commands.
fn fsconfig_cmd(cmd: u64) -> Cow<'static, str> {
    Cow::Borrowed(match cmd {
        0 => "FSCONFIG_SET_FLAG",
        1 => "FSCONFIG_SET_STRING",
        2 => "FSCONFIG_SET_BINARY",
        3 => "FSCONFIG_SET_PATH",
        4 => "FSCONFIG_SET_PATH_EMPTY",
        5 => "FSCONFIG_SET_FD",
        6 => "FSCONFIG_CMD_CREATE",
        7 => "FSCONFIG_CMD_RECONFIGURE",
        8 => "FSCONFIG_CMD_CREATE_EXCL",
        other => return Cow::Owned(other.to_string()),
    })
}

/// umount2(2)'s flags.
const UMOUNT_FLAGS: &[(u64, &str)] = &[(1, "MNT_FORCE"), (2, "MNT_DETACH"), (4, "MNT_EXPIRE"), (8, "UMOUNT_NOFOLLOW")];

impl NsCall {
    pub fn resolve(&mut self, ctx: &Context<'_>) {
        if self.op == op::SETNS {
            self.host_namespace = ctx.host_ns.which(self.ns_ino).or_else(|| {
                // By a pidfd: the namespaces asked for that the caller is in now, but those its
                // container was made to share with the host (`--network=host`, `--uts=host`:
                // entering them is no way out). By Docker's record of the container, not by its
                // processes' namespaces now, which a process of the container can change (its
                // first process entering the host's would hide every later entry).
                JOINED.iter().zip(self.joined).find_map(|(&(flag, name), ino)| {
                    (self.flags & flag != 0
                        && ctx.host_ns.which(u64::from(ino)) == Some(name)
                        && !ctx.container.is_some_and(|(known, id)| known.shares_host_namespace(id, name)))
                    .then_some(name)
                })
            });
        }
    }

    pub fn syscall(&self) -> &'static str {
        match self.op {
            op::UNSHARE => "unshare",
            op::SETNS => "setns",
            op::CLONE => "clone",
            op::MOUNT => "mount",
            op::UMOUNT => "umount2",
            op::PIVOT_ROOT => "pivot_root",
            op::FSOPEN => "fsopen",
            op::FSCONFIG => "fsconfig",
            op::FSMOUNT => "fsmount",
            op::MOVE_MOUNT => "move_mount",
            op::OPEN_TREE => "open_tree",
            op::FSPICK => "fspick",
            op::MOUNT_SETATTR => "mount_setattr",
            _ => "chroot",
        }
    }

    pub fn kind(&self) -> Kind {
        let action = match self.op {
            op::UMOUNT => "umount",
            // The mount API's steps are each a part of a mount: the mount rules see them.
            op::FSOPEN
            | op::FSCONFIG
            | op::FSMOUNT
            | op::MOVE_MOUNT
            | op::OPEN_TREE
            | op::FSPICK
            | op::MOUNT_SETATTR => "mount",
            _ => self.syscall(),
        };
        Kind { kind: "event", category: "process", types: &["change"], action, dataset: "docker_listener.namespace" }
    }

    pub(crate) fn write<'a, M: SerializeMap>(&'a self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        struct NamespaceOut {
            /// The namespaces the call makes or enters.
            types: Vec<Cow<'static, str>>,
            flags: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            fd: Option<i32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            inode: Option<u64>,
            /// setns into one of the host's namespaces: which.
            #[serde(skip_serializing_if = "Option::is_none")]
            host: Option<&'static str>,
        }
        #[derive(Serialize, Default)]
        struct MountOut<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            source: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            target: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            fstype: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            put_old: Option<&'a str>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            flags: Vec<Cow<'static, str>>,
            /// mount_setattr: the attributes cleared.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            flags_cleared: Vec<Cow<'static, str>>,
            /// fsconfig: the command, the key, and a value that is not the source.
            #[serde(skip_serializing_if = "Option::is_none")]
            command: Option<Cow<'static, str>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            key: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            value: Option<&'a str>,
            /// The descriptor the call works on (a filesystem context, a mount, a directory).
            #[serde(skip_serializing_if = "Option::is_none")]
            fd: Option<i32>,
        }
        let some = |s: &'a str| (!s.is_empty()).then_some(s);
        match self.op {
            op::UNSHARE | op::CLONE | op::SETNS => {
                let setns = self.op == op::SETNS;
                let types = if setns && self.flags == 0 {
                    // nstype 0: whatever the descriptor names.
                    vec![Cow::Borrowed("any")]
                } else {
                    bit_names(self.flags & docker_listener_common::family::namespace::CLONE_NEW_MASK, NAMESPACES)
                };
                m.serialize_entry(
                    "namespace",
                    &NamespaceOut {
                        types,
                        flags: format!("0x{:x}", self.flags),
                        fd: setns.then_some(self.fd),
                        inode: (setns && self.ns_ino != 0).then_some(self.ns_ino),
                        host: self.host_namespace,
                    },
                )
            }
            op::MOUNT => m.serialize_entry(
                "mount",
                &MountOut {
                    source: Some(self.source.as_str()),
                    target: Some(&self.target),
                    fstype: some(&self.fstype),
                    // Old callers put MS_MGC_VAL (0xC0ED) in the high half: not a flag.
                    flags: bit_names(
                        if self.flags >> 16 == 0xc0ed { self.flags & 0xffff } else { self.flags },
                        MOUNT_FLAGS,
                    ),
                    ..MountOut::default()
                },
            ),
            op::UMOUNT => m.serialize_entry(
                "mount",
                &MountOut {
                    target: Some(&self.target),
                    flags: bit_names(self.flags, UMOUNT_FLAGS),
                    ..MountOut::default()
                },
            ),
            op::PIVOT_ROOT => m.serialize_entry(
                "mount",
                &MountOut { target: Some(&self.target), put_old: Some(self.source.as_str()), ..MountOut::default() },
            ),
            op::FSOPEN => m.serialize_entry("mount", &MountOut { fstype: some(&self.fstype), ..MountOut::default() }),
            op::FSCONFIG => {
                // The "source" key's value is the mount's source (a device, for a host disk).
                let source = (self.target == "source").then(|| some(&self.source)).flatten();
                m.serialize_entry(
                    "mount",
                    &MountOut {
                        source,
                        command: Some(fsconfig_cmd(self.flags)),
                        key: some(&self.target),
                        value: if source.is_some() { None } else { some(&self.source) },
                        fd: Some(self.fd),
                        ..MountOut::default()
                    },
                )
            }
            op::FSMOUNT => m.serialize_entry(
                "mount",
                &MountOut { flags: bit_names(self.flags >> 32, MOUNT_ATTRS), fd: Some(self.fd), ..MountOut::default() },
            ),
            op::MOVE_MOUNT => m.serialize_entry(
                "mount",
                &MountOut {
                    source: some(&self.source),
                    target: some(&self.target),
                    flags: vec![Cow::Owned(format!("0x{:x}", self.flags))],
                    fd: Some(self.fd),
                    ..MountOut::default()
                },
            ),
            op::OPEN_TREE => m.serialize_entry(
                "mount",
                &MountOut {
                    source: some(&self.source),
                    flags: bit_names(self.flags, OPEN_TREE_FLAGS),
                    fd: Some(self.fd),
                    ..MountOut::default()
                },
            ),
            op::FSPICK => m.serialize_entry(
                "mount",
                &MountOut { target: some(&self.target), fd: Some(self.fd), ..MountOut::default() },
            ),
            op::MOUNT_SETATTR => m.serialize_entry(
                "mount",
                &MountOut {
                    target: some(&self.target),
                    flags: bit_names(self.flags & 0xffff_ffff, MOUNT_ATTRS),
                    flags_cleared: bit_names(self.flags >> 32, MOUNT_ATTRS),
                    fd: Some(self.fd),
                    ..MountOut::default()
                },
            ),
            _ => m.serialize_entry("chroot", &serde_json::json!({ "path": self.target })),
        }
    }
}
