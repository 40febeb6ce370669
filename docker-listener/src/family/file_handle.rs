//! `file-access`'s opens by handle (`event.action`: `file-open-by-handle`): every
//! `open_by_handle_at` of a container process, whatever its result.
//!
//! A file handle names a file of the filesystem behind a descriptor (`mount_fd`) by its inode,
//! with no path: nothing bounds it to the files the container can reach. A container allowed
//! the call (`CAP_DAC_READ_SEARCH`) opens the host's `/etc/shadow` through any file the host
//! bind-mounted into it (`/etc/hostname`): the "shocker" escape. Docker's default seccomp
//! profile refuses the call, so in a default container it is an attempt; applications that use
//! it legitimately (file servers) are rare in containers. So it is never matched against the
//! sensitive files: each call is an event.
//!
//! The kernel sends the handle as passed (its type and bytes) and walks the file the call
//! opened (refused: the file of `mount_fd`). A file opened outside the part of the filesystem
//! the mount shows is reached by no path of the container's: the walk ends at the filesystem's
//! root, not at the container's, and the path is from that root (`outside_mount`).
use docker_listener_common::family::{
    CallHead,
    file::{HANDLE_CAP, PathRecord},
};
use serde::{Serialize, ser::SerializeMap};

use super::{Detail, FileOut, file::open_flag_names};
use crate::{
    ebpf::record::{ExeFile, RecordError, file_of, pod_ref},
    ecs::{Kind, parts::filesystem},
};

/// `struct file_handle` as the caller passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    /// `handle_bytes`: the size the caller declared.
    pub size: u32,
    /// `handle_type`: the filesystem's encoding (`FILEID_*`).
    pub kind: i32,
    /// The handle's bytes the record holds (at most `size`).
    pub bytes: Vec<u8>,
}

impl Handle {
    /// From the record's copy of the structure (`len` bytes of it read).
    fn parse(raw: &[u8], len: usize) -> Option<Handle> {
        let raw = raw.get(..len.min(raw.len()))?;
        let size = u32::from_ne_bytes(raw.get(..4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(raw.get(4..8)?.try_into().ok()?);
        let rest = &raw[8..];
        let bytes = rest[..rest.len().min(size as usize)].to_vec();
        Some(Handle { size, kind, bytes })
    }

    /// The inode number the handle names, for the encoding of ext2/3/4 and most others
    /// (`FILEID_INO32_GEN` and its `_PARENT` form: the inode, then its generation).
    pub fn inode(&self) -> Option<u32> {
        if !matches!(self.kind, 1 | 2) {
            return None;
        }
        Some(u32::from_ne_bytes(self.bytes.get(..4)?.try_into().ok()?))
    }

    fn hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenByHandle {
    pub mount_fd: i32,
    pub flags: u32,
    /// `None` when the caller's memory could not be read.
    pub handle: Option<Handle>,
    /// The call succeeded: `file` is the file it opened; else the file of `mount_fd`.
    pub opened: bool,
    /// As the kernel walked it; `None` when it could not (a bad descriptor).
    pub file: Option<ExeFile>,
}

pub(super) fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<PathRecord>(bytes)?;
    Ok(Detail::FileHandle(OpenByHandle {
        mount_fd: r.args[0] as i32,
        flags: r.args[2] as u32,
        handle: Handle::parse(&r.name2[..HANDLE_CAP], r.name2_len as usize),
        opened: head.ret >= 0,
        file: file_of(&r.base, &r.base_path),
    }))
}

impl OpenByHandle {
    pub fn syscall(&self) -> &'static str {
        "open_by_handle_at"
    }

    /// The opened file is reached by no path below the mount's root: the walk ended at the
    /// filesystem's root, or outside the process's mount tree.
    pub fn outside_mount(&self) -> bool {
        self.opened && self.file.as_ref().is_some_and(|f| f.detached || f.outside_root)
    }

    pub fn kind(&self) -> Kind {
        Kind {
            kind: "event",
            category: "file",
            types: &["access"],
            action: "file-open-by-handle",
            dataset: "docker_listener.file",
        }
    }

    /// ECS `file`: the file the call opened (a refused call opened none).
    pub(crate) fn write_file<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        match &self.file {
            Some(f) if self.opened => m.serialize_entry("file", &FileOut::new(&f.path, Some((f.ino, f.device())))),
            _ => Ok(()),
        }
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        struct HandleOut {
            #[serde(rename = "type")]
            kind: i32,
            size: u32,
            bytes: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            inode: Option<u32>,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "match")]
            how: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            handle: Option<HandleOut>,
            flags: Vec<std::borrow::Cow<'static, str>>,
            mount_fd: i32,
            /// A refused call: the file `mount_fd` is (often a file the host bind-mounted).
            #[serde(skip_serializing_if = "Option::is_none")]
            mount_file: Option<&'a str>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            outside_mount: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            filesystem: Option<std::borrow::Cow<'static, str>>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            path_truncated: bool,
        }
        let handle =
            self.handle.as_ref().map(|h| HandleOut { kind: h.kind, size: h.size, bytes: h.hex(), inode: h.inode() });
        m.serialize_entry(
            "file_access",
            &Out {
                how: "handle",
                handle,
                flags: open_flag_names(self.flags),
                mount_fd: self.mount_fd,
                mount_file: self.file.as_ref().filter(|_| !self.opened).map(|f| f.path.as_str()),
                outside_mount: self.outside_mount(),
                filesystem: self.file.as_ref().map(|f| filesystem(f.magic)),
                path_truncated: self.file.as_ref().is_some_and(|f| f.path_truncated),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(size: u32, kind: i32, body: &[u8]) -> Vec<u8> {
        let mut v = size.to_ne_bytes().to_vec();
        v.extend(kind.to_ne_bytes());
        v.extend(body);
        v.resize(HANDLE_CAP, 0);
        v
    }

    #[test]
    fn handles_are_read_as_declared_and_ext4s_names_its_inode() {
        let h = Handle::parse(&raw(8, 1, &[2, 0, 0, 0, 7, 0, 0, 0]), HANDLE_CAP).unwrap();
        assert_eq!((h.size, h.kind, h.hex().as_str(), h.inode()), (8, 1, "0200000007000000", Some(2)));
        // A size larger than the record holds: what it holds.
        let h = Handle::parse(&raw(128, 0x81, &[1; 40]), HANDLE_CAP).unwrap();
        assert_eq!((h.bytes.len(), h.inode()), (40, None));
        // Only the head was readable; nothing was.
        let h = Handle::parse(&raw(8, 1, &[2, 0, 0, 0]), 8).unwrap();
        assert_eq!((h.bytes.len(), h.inode()), (0, None));
        assert_eq!(Handle::parse(&raw(8, 1, &[]), 0), None);
    }

    #[test]
    fn only_a_file_opened_beyond_the_mount_is_outside_it() {
        let file = |detached| ExeFile { path: "/etc/shadow".into(), detached, ..ExeFile::default() };
        let call = |opened, f| OpenByHandle { mount_fd: 3, flags: 0, handle: None, opened, file: Some(f) };
        assert!(call(true, file(true)).outside_mount());
        assert!(!call(true, file(false)).outside_mount());
        // Refused: the file is the mount's own, not one it opened.
        assert!(!call(false, file(true)).outside_mount());
    }
}
