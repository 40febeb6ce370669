//! `file-access` (`event.action`: `file-read`, `file-write`, `file-create`): a container
//! process opened one of the sensitive files (`ebpf.sensitive_files`, see `crate::sensitive`),
//! matched in the kernel by what was opened: the file's inode, its directory's, or a
//! pseudo-file's name on procfs or cgroup v1. The event names the file by the path the kernel
//! walked (`file.path`), the configured entry it matched (`docker_listener.file_access.sensitive`)
//! and the string the caller passed (`requested`), which may say nothing of the file (`../x`,
//! a symlink, `/proc/self/root/...`).
use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        file::{FIXED_FILE, FileRecord, access, matched, oflag, op},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{AtExit, Detail, Family, Reported, bit_names, text};
use crate::{
    ebpf::record::{ExeFile, RecordError, file_of, pod_ref},
    ecs::{Kind, parts::filesystem},
    sensitive::{Entry, PSEUDO, SensitiveSet},
};

pub const FAMILY: Family = Family {
    name: "file-access",
    kind: RecordKind::FileAccess,
    enabled: |c| c.file_access,
    reported: Reported::AtExit(AtExit {
        switch: switch::FILE,
        decode,
        sees: "opens and changes of sensitive files (open, creat, openat, openat2, and their refused opens; unlink, \
           rename, link, chmod, chown, truncate and their *at forms; fchmod, fchown) and every open_by_handle_at",
    }),
};

use docker_listener_common::magic::OVERLAYFS as OVERLAYFS_SUPER_MAGIC;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAccess {
    pub op: u32,
    /// The descriptor the open made, or for an io_uring open into the ring's file table
    /// (`fixed`), the file's slot there.
    pub fd: i32,
    pub fixed: bool,
    pub flags: u32,
    pub mode: u32,
    /// `matched` bits: how the kernel matched it.
    pub matched: u32,
    /// `access` bits the open asked for.
    pub access: u32,
    pub parent_ino: u64,
    /// The opened file as the kernel has it; `None` when its path could not be walked.
    pub file: Option<ExeFile>,
    /// The path as the caller passed it.
    pub requested: String,
    /// The configured entry it is (set by `resolve`).
    pub entry: Option<String>,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    if head.op == op::BY_HANDLE {
        return super::file_handle::decode(head, bytes);
    }
    if head.op >= op::FIRST_PATH_OP {
        return super::file_change::decode(head, bytes);
    }
    let r = pod_ref::<FileRecord>(bytes)?;
    Ok(Detail::File(FileAccess {
        op: head.op,
        fd: r.fd,
        fixed: head.flags & FIXED_FILE != 0,
        flags: r.open_flags,
        mode: r.mode,
        matched: r.matched,
        access: r.access,
        parent_ino: r.parent_ino,
        file: file_of(&r.file, &r.path),
        requested: text(&r.requested, r.requested_len),
        entry: None,
    }))
}

/// The entry an opened file makes as it joins a container's set: of the configured entry
/// `pattern`, with its `access` bits.
fn joining(file: &ExeFile, access: u32, pattern: usize) -> Entry {
    Entry { ino: file.ino, dev: file.dev, bits: access, pattern, path: file.path.clone() }
}

/// What to do with an open the kernel matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An event.
    Keep,
    /// An event, and the new file (and the new sensitive directory it is in) join the
    /// container's set.
    KeepAndAdd(Vec<Entry>),
    /// Not an event: the kernel's inode number is another file's (a number is unique per
    /// filesystem only), or a file created where a sensitive one may be is not one.
    Drop,
}

impl FileAccess {
    /// Names the configured entry the open is, with the container's set (`id`: its container).
    pub fn resolve(&mut self, id: &str, root: Option<&crate::sensitive::Root>, set: &SensitiveSet) -> Verdict {
        if self.is_pending() {
            return self.resolve_pending(set);
        }
        let Some(file) = &self.file else {
            // The kernel matched it but could not walk its path: keep it, unnamed.
            return Verdict::Keep;
        };
        let overlay = file.magic == OVERLAYFS_SUPER_MAGIC;
        let name = |e: &Entry| set.patterns.get(e.pattern).map(|p| p.text.clone());
        let want = self.access;
        if self.matched & matched::PSEUDO != 0 {
            let leaf = file.path.rsplit('/').next().unwrap_or("");
            self.entry = PSEUDO.iter().find(|(n, _)| *n == leaf).map(|(_, e)| (*e).to_owned());
            return Verdict::Keep;
        }
        if self.matched & matched::FILE != 0
            && let Some(e) = set.find(id, file.ino, file.dev, overlay, |e| {
                // Another path to the inode (a hard link) is the file while the entry's path
                // still leads to it; else the number is a new file's (the entry was deleted).
                e.bits & (access::DIR | access::PARENT) == 0
                    && e.bits & want != 0
                    && (e.path == file.path || root.is_none_or(|r| crate::sensitive::still(r, e)))
            })
        {
            self.entry = name(e);
            return Verdict::Keep;
        }
        if self.matched & matched::DIR != 0
            && let Some(e) =
                set.find(id, self.parent_ino, file.dev, overlay, |e| e.bits & access::DIR != 0 && e.bits & want != 0)
        {
            self.entry = name(e);
            return Verdict::Keep;
        }
        if self.matched & matched::CREATED != 0
            && let Some(i) = set.pattern_of(&file.path, want)
        {
            let p = &set.patterns[i];
            self.entry = Some(p.text.clone());
            let mut add = vec![joining(file, p.access, i)];
            // A sensitive directory made since the set was (`/root/.ssh/`): its other files too.
            let dir = file.path.rsplit_once('/').map_or("", |(d, _)| d);
            if p.dir && p.matches(dir) && !dir.is_empty() {
                add.push(Entry {
                    ino: self.parent_ino,
                    dev: file.dev,
                    bits: access::DIR | p.access,
                    pattern: i,
                    path: dir.to_owned(),
                });
            }
            return Verdict::KeepAndAdd(add);
        }
        Verdict::Drop
    }

    pub fn syscall(&self) -> &'static str {
        match self.op {
            op::OPEN => "open",
            op::CREAT => "creat",
            op::OPENAT => "openat",
            // No system call: io_uring's operations, by their name in its ABI.
            op::URING_OPENAT => "IORING_OP_OPENAT",
            op::URING_OPENAT2 => "IORING_OP_OPENAT2",
            _ => "openat2",
        }
    }

    /// An open of a container's first moments, sent unmatched (`matched::PENDING`): the path
    /// the kernel walked decides (the file as the container sees it, not a name the caller
    /// passed). Not a directory opened as one (`ls /root/.ssh`: no file of it is read, and
    /// such opens are not reported later either), nor one whose path could not be walked.
    fn resolve_pending(&mut self, set: &SensitiveSet) -> Verdict {
        let Some(file) = &self.file else { return Verdict::Drop };
        if self.flags & oflag::DIRECTORY != 0 || file.detached || file.outside_root {
            return Verdict::Drop;
        }
        let Some(i) = set.pattern_of(&file.path, self.access) else { return Verdict::Drop };
        let p = &set.patterns[i];
        self.entry = Some(p.text.clone());
        if self.flags & oflag::CREAT == 0 {
            return Verdict::Keep;
        }
        // Maybe made just now: it joins the set, which a resolution in flight may have made
        // from the disk before it.
        Verdict::KeepAndAdd(vec![joining(file, p.access, i)])
    }

    /// Sent unmatched, in its container's first moments (`matched::PENDING`).
    pub fn is_pending(&self) -> bool {
        self.matched & matched::PENDING != 0
    }

    fn created(&self) -> bool {
        self.matched & matched::CREATED != 0
    }

    pub fn kind(&self) -> Kind {
        let (types, action): (&'static [&'static str], _) = if self.created() {
            (&["creation"], "file-create")
        } else if self.access & access::WRITE != 0 {
            (&["change"], "file-write")
        } else {
            (&["access"], "file-read")
        };
        Kind { kind: "event", category: "file", types, action, dataset: "docker_listener.file" }
    }

    /// ECS `file`: the opened file.
    pub(crate) fn write_file<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let Some(f) = &self.file else { return Ok(()) };
        m.serialize_entry("file", &super::FileOut::new(&f.path, Some((f.ino, f.device()))))
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            matched: MatchOut<'a>,
            access: Vec<&'static str>,
            flags: Vec<std::borrow::Cow<'static, str>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            mode: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            fd: Option<i32>,
            /// An io_uring open into the ring's file table: the slot (no descriptor).
            #[serde(skip_serializing_if = "Option::is_none")]
            fixed_file: Option<i32>,
            #[serde(skip_serializing_if = "str::is_empty")]
            requested: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            filesystem: Option<std::borrow::Cow<'static, str>>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            path_truncated: bool,
        }
        let how = match self.matched {
            m if m & matched::FILE != 0 => "file",
            m if m & matched::DIR != 0 => "directory",
            m if m & matched::PSEUDO != 0 => "pseudo-file",
            m if m & matched::PENDING != 0 => "path",
            _ => "created",
        };
        m.serialize_entry(
            "file_access",
            &Out {
                matched: MatchOut { sensitive: self.entry.as_deref(), how },
                access: access_names(self.access),
                flags: open_flag_names(self.flags),
                mode: (self.flags & 0o100 != 0 || self.op == op::CREAT).then(|| format!("{:04o}", self.mode & 0o7777)),
                fd: (!self.fixed).then_some(self.fd),
                fixed_file: self.fixed.then_some(self.fd),
                requested: &self.requested,
                filesystem: self.file.as_ref().map(|f| filesystem(f.magic)),
                path_truncated: self.file.as_ref().is_some_and(|f| f.path_truncated),
            },
        )
    }
}

/// What every file-access event says of its match: the configured entry, and how.
#[derive(Serialize)]
pub(super) struct MatchOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<&'a str>,
    #[serde(rename = "match")]
    pub how: &'static str,
}

/// `access` bits by name: `read`, `write`.
pub fn access_names(bits: u32) -> Vec<&'static str> {
    [(access::READ, "read"), (access::WRITE, "write")]
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n)
        .collect()
}

/// The open flags by name (x86, either ABI): the access mode first.
pub fn open_flag_names(flags: u32) -> Vec<std::borrow::Cow<'static, str>> {
    const NAMES: [(u64, &str); 13] = [
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
    ];
    let mode = match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    // O_SYNC is __O_SYNC | O_DSYNC; O_TMPFILE is __O_TMPFILE | O_DIRECTORY.
    let mut rest = u64::from(flags & !3);
    let mut extra = Vec::new();
    for (bits, name) in [(0o4010000u64, "O_SYNC"), (0o20200000u64, "O_TMPFILE")] {
        if rest & bits == bits {
            extra.push(std::borrow::Cow::Borrowed(name));
            rest &= !bits;
        }
    }
    let mut out = vec![std::borrow::Cow::Borrowed(mode)];
    out.extend(extra);
    out.extend(bit_names(rest, &NAMES));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::Pattern;

    fn open(matched: u32, acc: u32, path: &str, ino: u64, magic: u32) -> FileAccess {
        FileAccess {
            op: op::OPENAT,
            fd: 3,
            fixed: false,
            flags: 0o2000000,
            mode: 0,
            matched,
            access: acc,
            parent_ino: 50,
            file: Some(ExeFile { path: path.into(), ino, dev: 40, magic, ..ExeFile::default() }),
            requested: "../../etc//shadow".into(),
            entry: None,
        }
    }

    fn set() -> SensitiveSet {
        let pats: Vec<Pattern> =
            ["/etc/shadow", "/root/.ssh/", "write:/etc/passwd"].iter().map(|s| s.parse().unwrap()).collect();
        let mut s = SensitiveSet::new(pats);
        s.update(
            "c1",
            vec![
                Entry { ino: 10, dev: 40, bits: access::READ | access::WRITE, pattern: 0, path: "/etc/shadow".into() },
                Entry { ino: 50, dev: 40, bits: access::DIR | 3, pattern: 1, path: "/root/.ssh".into() },
                Entry { ino: 60, dev: 40, bits: access::PARENT | 3, pattern: 1, path: "/root".into() },
            ],
        );
        s
    }

    #[test]
    fn matches_are_named_by_their_entry_and_stray_inodes_dropped() {
        let s = set();
        let mut f = open(matched::FILE, access::READ, "/etc/shadow", 10, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c1", None, &s), Verdict::Keep);
        assert_eq!(f.entry.as_deref(), Some("/etc/shadow"));
        // The same number on another filesystem (tmpfs): another file.
        let mut f = open(matched::FILE, access::READ, "/dev/shm/x", 10, 0x0102_1994);
        assert_eq!(f.resolve("c9", None, &s), Verdict::Drop);
        let mut f = open(matched::DIR, access::WRITE, "/root/.ssh/authorized_keys", 77, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c1", None, &s), Verdict::Keep);
        assert_eq!(f.entry.as_deref(), Some("/root/.ssh/"));
    }

    #[test]
    fn a_created_file_is_kept_only_when_its_walked_path_is_an_entry() {
        let s = set();
        let mut f = open(matched::CREATED, access::WRITE, "/root/.ssh/authorized_keys", 78, OVERLAYFS_SUPER_MAGIC);
        match f.resolve("c1", None, &s) {
            Verdict::KeepAndAdd(e) => {
                assert_eq!((e[0].ino, e[0].pattern), (78, 1));
                assert_eq!((e[1].ino, e[1].bits & access::DIR, e[1].path.as_str()), (50, access::DIR, "/root/.ssh"));
            }
            v => panic!("{v:?}"),
        }
        let mut f = open(matched::CREATED, access::WRITE, "/root/notes.txt", 79, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c1", None, &s), Verdict::Drop);
        assert_eq!(f.kind().action, "file-create");
    }

    #[test]
    fn an_open_of_a_container_s_first_moments_is_decided_by_its_walked_path() {
        // A new container: no set yet ("c2"), its opens sent unmatched.
        let s = set();
        let mut f = open(matched::PENDING, access::READ, "/etc/shadow", 901, OVERLAYFS_SUPER_MAGIC);
        assert!(f.is_pending());
        assert_eq!(f.resolve("c2", None, &s), Verdict::Keep);
        assert_eq!(f.entry.as_deref(), Some("/etc/shadow"));
        let mut f = open(matched::PENDING, access::WRITE, "/root/.ssh/authorized_keys", 902, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c2", None, &s), Verdict::Keep);
        assert_eq!(f.entry.as_deref(), Some("/root/.ssh/"));
        // /etc/passwd is sensitive for writing only; /etc/hostname not at all; a name the
        // caller passed (`requested`: ../../etc//shadow here) decides nothing.
        let mut f = open(matched::PENDING, access::READ, "/etc/passwd", 903, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c2", None, &s), Verdict::Drop);
        let mut f = open(matched::PENDING, access::WRITE, "/etc/passwd", 903, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c2", None, &s), Verdict::Keep);
        let mut f = open(matched::PENDING, access::READ, "/etc/hostname", 904, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c2", None, &s), Verdict::Drop);
        // One made (O_CREAT) joins the set.
        let mut f = open(matched::PENDING, access::WRITE, "/root/.ssh/id_rsa", 906, OVERLAYFS_SUPER_MAGIC);
        f.flags |= oflag::CREAT;
        match f.resolve("c2", None, &s) {
            Verdict::KeepAndAdd(e) => {
                assert_eq!((e[0].ino, e[0].pattern, e[0].path.as_str()), (906, 1, "/root/.ssh/id_rsa"))
            }
            v => panic!("{v:?}"),
        }
        // Not a directory opened as one, nor a path that could not be walked.
        let mut f = open(matched::PENDING, access::READ, "/root/.ssh", 905, OVERLAYFS_SUPER_MAGIC);
        f.flags |= oflag::DIRECTORY;
        assert_eq!(f.resolve("c2", None, &s), Verdict::Drop);
        let mut f = open(matched::PENDING, access::READ, "/etc/shadow", 901, OVERLAYFS_SUPER_MAGIC);
        f.file = None;
        assert_eq!(f.resolve("c2", None, &s), Verdict::Drop);
        // Shown as matched by its path.
        let mut f = open(matched::PENDING, access::READ, "/etc/shadow", 901, OVERLAYFS_SUPER_MAGIC);
        assert_eq!(f.resolve("c2", None, &s), Verdict::Keep);
        struct W<'a>(&'a FileAccess);
        impl Serialize for W<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                self.0.write(&mut m)?;
                m.end()
            }
        }
        let v = serde_json::to_string(&W(&f)).unwrap();
        assert!(v.contains(r#""match":"path""#), "{v}");
    }

    #[test]
    fn flags_are_named() {
        let n = open_flag_names(0o2000000 | 0o100 | 0o1000 | 1);
        assert_eq!(n, vec!["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]);
        assert_eq!(open_flag_names(0o20200000 | 2), vec!["O_RDWR", "O_TMPFILE"]);
        assert_eq!(open_flag_names(0), vec!["O_RDONLY"]);
    }
}
