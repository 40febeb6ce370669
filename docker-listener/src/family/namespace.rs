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
        namespace::{NamespaceRecord, op},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{Context, Detail, Family, bit_names, text};
use crate::{
    ebpf::record::{RecordError, pod},
    ecs::Kind,
};

pub const FAMILY: Family = Family {
    name: "namespace-change",
    kind: RecordKind::Namespace,
    switch: switch::NAMESPACE,
    enabled: |c| c.namespace,
    decode,
    sees: "namespace changes and mounts (unshare, setns, clone with new namespaces, mount, umount, pivot_root, chroot)",
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
    /// setns: the host namespace the descriptor names, if it is one.
    pub host_namespace: Option<&'static str>,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r: NamespaceRecord = pod(bytes)?;
    Ok(Detail::Namespace(NsCall {
        op: head.op,
        flags: r.ns_flags,
        ns_ino: r.ns_ino,
        fd: r.fd,
        source: text(&r.source, r.source_len),
        target: text(&r.target, r.target_len),
        fstype: text(&r.fstype, r.fstype_len),
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

/// umount2(2)'s flags.
const UMOUNT_FLAGS: &[(u64, &str)] = &[(1, "MNT_FORCE"), (2, "MNT_DETACH"), (4, "MNT_EXPIRE"), (8, "UMOUNT_NOFOLLOW")];

impl NsCall {
    pub fn resolve(&mut self, ctx: &Context<'_>) {
        if self.op == op::SETNS {
            self.host_namespace = ctx.host_ns.which(self.ns_ino);
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
            _ => "chroot",
        }
    }

    pub fn kind(&self) -> Kind {
        let action = match self.op {
            op::UMOUNT => "umount",
            _ => self.syscall(),
        };
        Kind { kind: "event", category: "process", types: &["change"], action, dataset: "docker_listener.namespace" }
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
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
        #[derive(Serialize)]
        struct MountOut<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            source: Option<&'a str>,
            target: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            fstype: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            put_old: Option<&'a str>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            flags: Vec<Cow<'static, str>>,
        }
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
                    target: &self.target,
                    fstype: (!self.fstype.is_empty()).then_some(self.fstype.as_str()),
                    put_old: None,
                    // Old callers put MS_MGC_VAL (0xC0ED) in the high half: not a flag.
                    flags: bit_names(
                        if self.flags >> 16 == 0xc0ed { self.flags & 0xffff } else { self.flags },
                        MOUNT_FLAGS,
                    ),
                },
            ),
            op::UMOUNT => m.serialize_entry(
                "mount",
                &MountOut {
                    source: None,
                    target: &self.target,
                    fstype: None,
                    put_old: None,
                    flags: bit_names(self.flags, UMOUNT_FLAGS),
                },
            ),
            op::PIVOT_ROOT => m.serialize_entry(
                "mount",
                &MountOut {
                    source: None,
                    target: &self.target,
                    fstype: None,
                    put_old: Some(self.source.as_str()),
                    flags: Vec::new(),
                },
            ),
            _ => m.serialize_entry("chroot", &serde_json::json!({ "path": self.target })),
        }
    }
}
