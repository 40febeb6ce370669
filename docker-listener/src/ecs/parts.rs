//! ECS parts more than one family writes: the executed file (`docker_listener.exec.file`, also
//! in the start-up inventory), a filesystem's name (exec and file events), argv's flags, a
//! network endpoint, its transport and address family (socket and network events).
use std::borrow::Cow;

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::Shown;
use crate::ebpf::record::{Args, Endpoint, ExeFile};

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;
pub const AF_PACKET: u16 = 17;
pub(crate) const SOCK_RAW: u16 = 3;
pub(crate) const SOCK_PACKET: u16 = 10;

/// `docker_listener.exec.file`: the executed file as the kernel has it.
#[derive(Serialize)]
pub(crate) struct FileOut {
    pub inode: u64,
    pub device: crate::ebpf::record::Device,
    pub filesystem: Cow<'static, str>,
    /// When its content or attributes last changed (the inode's ctime), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctime: Option<crate::ecs::Rfc3339>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unlinked: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub memfd: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outside_root: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub chroot: bool,
    /// Run from memory (`ExeFile::fileless`), and why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fileless: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fileless_reason: Option<&'static str>,
    /// On the container's writable layer, not as its image has it (`ExeFile::drift`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
}

impl FileOut {
    pub fn of(f: &ExeFile) -> FileOut {
        FileOut {
            inode: f.ino,
            device: f.device(),
            filesystem: filesystem(f.magic),
            ctime: (f.ctime_ns != 0).then_some(crate::ecs::Rfc3339(f.ctime_ns as i64)),
            unlinked: f.unlinked,
            memfd: f.is_memfd(),
            outside_root: f.outside_root,
            path_truncated: f.path_truncated,
            chroot: f.chroot,
            fileless: f.fileless().is_some(),
            fileless_reason: f.fileless(),
            drift: f.drift(),
        }
    }
}

/// The filesystem a magic number (`statfs.f_type`, `super_block.s_magic`) names.
pub fn filesystem(fs_magic: u32) -> Cow<'static, str> {
    use docker_listener_common::magic;
    let name = match fs_magic {
        magic::TMPFS => "tmpfs",
        magic::OVERLAYFS => "overlay",
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        magic::HUGETLBFS => "hugetlbfs",
        magic::RAMFS => "ramfs",
        magic::PROC => "proc",
        magic::CGROUP => "cgroup",
        0x6265_6572 => "sysfs",
        0x6969 => "nfs",
        0x7371_7368 => "squashfs",
        0x6573_5546 => "fuse",
        0x2fc1_2fc1 => "zfs",
        0x1373 => "devfs",
        0x0102_1997 => "9p",
        0xf2f5_2010 => "f2fs",
        0x4d44 => "vfat",
        0 => "unknown",
        other => return Cow::Owned(format!("0x{other:x}")),
    };
    Cow::Borrowed(name)
}

/// `docker_listener.args_truncated`, `.args_omitted_bytes`, `.args_unavailable`, when they apply.
pub(crate) fn write_args_flags<M: SerializeMap>(args: &Args, m: &mut M) -> Result<(), M::Error> {
    if args.truncated {
        m.serialize_entry("args_truncated", &true)?;
        if args.omitted_bytes > 0 {
            m.serialize_entry("args_omitted_bytes", &args.omitted_bytes)?;
        }
    }
    if args.unavailable {
        m.serialize_entry("args_unavailable", &true)?;
    }
    if args.redacted {
        m.serialize_entry("args_redacted", &true)?;
    }
    Ok(())
}

/// `network.transport`: from the protocol, else the socket type.
pub(crate) fn transport(sock_type: u16, protocol: u16, family: u16) -> Option<&'static str> {
    match (sock_type, protocol) {
        (_, 6) => Some("tcp"),
        (_, 17) => Some("udp"),
        (_, 1) | (_, 58) if family != AF_PACKET => Some("icmp"),
        (_, 132) => Some("sctp"),
        (SOCK_RAW, _) => Some("raw"),
        (1, 0) => Some("stream"),
        (2, 0) => Some("dgram"),
        _ => None,
    }
}

/// `network.type`.
pub(crate) fn family_name(family: u16) -> Option<&'static str> {
    match family {
        AF_INET => Some("ipv4"),
        AF_INET6 => Some("ipv6"),
        AF_UNIX => Some("unix"),
        AF_PACKET => Some("packet"),
        AF_NETLINK => Some("netlink"),
        _ => None,
    }
}

pub(crate) struct EndpointOut<'a>(pub(crate) &'a Endpoint);

impl Serialize for EndpointOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match self.0 {
            Endpoint::Ip(ip, port) => {
                m.serialize_entry("ip", &Shown(ip))?;
                m.serialize_entry("port", port)?;
            }
            Endpoint::Unix(path) => m.serialize_entry("address", path)?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystems_by_magic() {
        assert_eq!(filesystem(0x0102_1994), "tmpfs");
        assert_eq!(filesystem(0x1234), "0x1234");
    }
}
