//! `file-access`'s changes by name (`event.action`: `file-delete`, `file-rename`,
//! `file-link`, `file-chmod`, `file-chown`, `file-truncate`): unlink, rename, link, chmod,
//! chown and truncate of a sensitive file by a container process, refused ones included; and
//! fchmod, fchown of one by its descriptor; the same unlinks, renames and links run by io_uring
//! (`IORING_OP_UNLINKAT`, `_RENAMEAT`, `_LINKAT`: no system call). Also the opens the kernel refused (EPERM, EACCES,
//! EROFS: `file-read`, `file-write`, `file-create` with `event.outcome: failure`): nothing was
//! opened, so there is no inode for the kernel to match, and they are resolved here as a name.
//!
//! The kernel sends every such call of a traced process with the names as passed and the
//! directory a relative name starts from (walked by the kernel): no tracepoint resolves a name.
//! The daemon resolves each name in the container's filesystem (`sensitive::locate`): the file
//! by its inode (a hard link, a symlinked directory, `..` lead to the same inode), its
//! directory by its inode (a file of a sensitive directory), or the directory's path and the
//! name against the entries (a file that will be, or was, one: `rename x /etc/cron.d/job`,
//! `unlink /etc/ld.so.preload`). What is none of those is dropped, counted. A descriptor's
//! file was matched in the kernel.
use docker_listener_common::family::{
    CallHead,
    file::{
        AT_EMPTY_PATH, AT_FDCWD, BASE_OF_NAME2, PathRecord, RESOLVE_IN_ROOT, access, access_of, is_named_open, matched,
        name_args, oflag, op,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{Detail, file::MatchOut, text};
use crate::{
    ebpf::record::{ExeFile, RecordError, file_of, pod_ref},
    ecs::Kind,
    sensitive::{Located, SensitiveSet},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub op: u32,
    pub dirfd: i32,
    pub dirfd2: i32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub at_flags: u32,
    /// A refused open's flags (`O_*`).
    pub open_flags: u32,
    /// A named open's `open_how.resolve` (openat2, `IORING_OP_OPENAT2`): `RESOLVE_*` bits.
    pub resolve: u64,
    /// How the kernel matched the descriptor's file (fchmod, fchown).
    pub matched: u32,
    pub name: String,
    pub name2: String,
    /// A call on its descriptor's file (`AT_EMPTY_PATH` and an empty name: `fchownat(fd, "",
    /// .., AT_EMPTY_PATH)`): the file is `base`, where /proc says the descriptor leads
    /// (`base_from_proc`).
    pub empty_path: bool,
    /// The names as passed, when a magic link of the caller's in them (`/proc/self/fd/3`,
    /// `/proc/self/cwd/x`) was replaced by where it led (`names_from_proc`).
    pub requested: Option<(String, String)>,
    /// The directory a relative name starts from, or the descriptor's file, as the kernel
    /// walked it.
    pub base: Option<ExeFile>,
    /// `base` was read from /proc after the call (`base_from_proc`), not walked by the kernel.
    pub base_from_proc: bool,
    /// The directory a relative second name starts from when the first's is not it: walked by
    /// the kernel (`BASE_OF_NAME2`: the first name absolute), else read from /proc
    /// (`base2_from_proc`).
    pub base2: Option<String>,
    /// Set by `resolve`: the file (the first name, or for rename and link whichever of the two
    /// is sensitive) and the configured entry.
    pub located: Option<Located>,
}

/// Where a name through the caller's magic links in its procfs leads (`/proc/self/fd/N[/rest]`,
/// `/proc/self/cwd[/rest]`, `self` or `thread-self`), read from the host's /proc for thread
/// `pid` (else process `tgid`): `None` for other names, a link that is not a path (a socket, a
/// pipe), or a caller gone.
fn magic_link_target(name: &str, pid: u32, tgid: u32) -> Option<String> {
    let parts: Vec<&str> = name.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let (link, rest) = match parts.as_slice() {
        ["proc", "self" | "thread-self", "fd", n, rest @ ..] if crate::sensitive::is_pid(n) => {
            (format!("fd/{n}"), rest)
        }
        ["proc", "self" | "thread-self", "cwd", rest @ ..] => ("cwd".to_owned(), rest),
        _ => return None,
    };
    if !name.starts_with('/') || link.starts_with("fd/0") && link.len() > 4 {
        return None;
    }
    // A chrooted caller's `/proc/self/...` is whatever its root holds there, not its procfs.
    let unrooted = |p: u32| std::fs::read_link(format!("/proc/{p}/root")).is_ok_and(|r| r == std::path::Path::new("/"));
    if !unrooted(pid) && !unrooted(tgid) {
        return None;
    }
    let at = |p: u32| std::fs::read_link(format!("/proc/{p}/{link}"));
    let target = at(pid).or_else(|_| at(tgid)).ok()?;
    let target = target.to_str().filter(|t| t.starts_with('/'))?;
    Some(if rest.is_empty() {
        target.to_owned()
    } else {
        format!("{}/{}", target.trim_end_matches('/'), rest.join("/"))
    })
}

/// Whether a path goes through a process's descriptor or working directory in procfs
/// (`/proc/<pid>/fd/N`, `/proc/<pid>/cwd`, `/proc/<pid>/task/<tid>/fd/N`, `self` or
/// `thread-self` for `<pid>`).
fn through_magic_link(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let process = |c: &str| c == "self" || c == "thread-self" || crate::sensitive::is_pid(c);
    parts.windows(3).any(|w| w[0] == "proc" && process(w[1]) && matches!(w[2], "fd" | "cwd" | "task"))
}

/// The directory `dirfd` names (`AT_FDCWD`: the working directory) for thread `pid`, else its
/// process `tgid`, as /proc has it now.
fn dir_from_proc(dirfd: i32, pid: u32, tgid: u32) -> Option<String> {
    let link = |p: u32| match dirfd {
        AT_FDCWD => format!("/proc/{p}/cwd"),
        fd => format!("/proc/{p}/fd/{fd}"),
    };
    let dir = std::fs::read_link(link(pid)).or_else(|_| std::fs::read_link(link(tgid))).ok()?;
    dir.is_absolute().then(|| dir.to_string_lossy().into_owned())
}

pub(super) fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<PathRecord>(bytes)?;
    let a = r.args;
    let fd = |i: usize| if i < 6 { a[i] as i32 } else { AT_FDCWD };
    let (_, _, _, d2) = name_args(head.op);
    // (mode, uid, gid, flags) by call; u32::MAX ids are "unchanged".
    let none = u32::MAX;
    let (mode, uid, gid, at_flags) = match head.op {
        op::UNLINKAT | op::URING_UNLINKAT => (0, none, none, a[2] as u32),
        op::RENAMEAT2 | op::LINKAT | op::URING_RENAMEAT | op::URING_LINKAT => (0, none, none, a[4] as u32),
        op::CHMOD | op::FCHMOD => (a[1] as u32, none, none, 0),
        op::FCHMODAT => (a[2] as u32, none, none, 0),
        op::FCHMODAT2 => (a[2] as u32, none, none, a[3] as u32),
        op::CHOWN | op::LCHOWN | op::CHOWN16 | op::LCHOWN16 | op::FCHOWN | op::FCHOWN16 => {
            (0, a[1] as u32, a[2] as u32, 0)
        }
        op::FCHOWNAT => (0, a[2] as u32, a[3] as u32, a[4] as u32),
        op::TRUNCATE => (a[1] as u32, none, none, 0),
        // A refused open: arguments as openat's (dirfd, name, flags, mode).
        o if is_named_open(o) => (a[3] as u32, none, none, 0),
        _ => (0, none, none, 0),
    };
    let open_flags = if is_named_open(head.op) { a[2] as u32 } else { 0 };
    // (Only openat2's is one: the kernel side reads it for every refused open.)
    let resolve = if matches!(head.op, op::REFUSED_OPENAT2 | op::URING_OPENAT2_NAMED) { a[4] } else { 0 };
    // The directory walked is the second name's when the kernel says so.
    let walked = file_of(&r.base, &r.base_path);
    let (base, base2) = if head.flags & BASE_OF_NAME2 != 0 { (None, walked.map(|b| b.path)) } else { (walked, None) };
    let (name, name2) = (text(&r.name, r.name_len), text(&r.name2, r.name2_len));
    let empty_path = matches!(head.op, op::FCHOWNAT | op::FCHMODAT2 | op::LINKAT | op::URING_LINKAT)
        && r.name_len == 0
        && at_flags & AT_EMPTY_PATH != 0;
    Ok(Detail::FileChange(FileChange {
        op: head.op,
        dirfd: r.dirfd,
        dirfd2: fd(d2),
        mode,
        uid,
        gid,
        at_flags,
        open_flags,
        resolve,
        matched: r.matched,
        empty_path,
        name,
        name2,
        requested: None,
        base,
        base2,
        base_from_proc: false,
        located: None,
    }))
}

impl FileChange {
    /// A delete, a rename or a link: which file a name (and an inode number) is changes.
    pub fn changes_names(&self) -> bool {
        matches!(self.action(), "file-delete" | "file-rename" | "file-link")
    }

    /// A refused open.
    pub fn is_open(&self) -> bool {
        is_named_open(self.op)
    }

    /// The `access` bits the call is: a refused open's, as it asked; a change is a write.
    fn wants(&self) -> u32 {
        if self.is_open() { access_of(self.open_flags) } else { access::WRITE }
    }

    /// The name starts from its directory as from a root (`RESOLVE_IN_ROOT`).
    fn in_root(&self) -> bool {
        self.is_open() && self.resolve & RESOLVE_IN_ROOT != 0
    }

    /// The readings of the name: below its directory as a root (`RESOLVE_IN_ROOT`, when the
    /// directory is known), and as written (a plain open's; and an in-root one's whose directory
    /// the kernel did not walk: read from /proc after the call, or unknown, so the name is also
    /// read from the container's root, as before `resolve` was kept, rather than missed).
    fn readings(&self) -> (bool, bool) {
        let below = self.in_root() && self.base.is_some();
        (below, !below || self.base_from_proc)
    }

    /// A `RESOLVE_IN_ROOT` open of an absolute name whose directory the kernel did not walk
    /// (a refused openat2's; io_uring's are walked at submission): the directory as the caller
    /// has it now, from /proc (`fd/<dirfd>`, or `cwd`), of the thread `pid`, else its process
    /// `tgid` (it may have changed or gone since: `readings`).
    pub fn base_from_proc(&mut self, pid: u32, tgid: u32) {
        // (And the descriptor's file a call with AT_EMPTY_PATH and an empty name is on.)
        if !(self.in_root() || self.empty_path) || self.base.is_some() {
            return;
        }
        if let Some(dir) = dir_from_proc(self.dirfd, pid, tgid) {
            self.base = Some(ExeFile { path: dir, ..ExeFile::default() });
            self.base_from_proc = true;
        }
    }

    fn by_fd(&self) -> bool {
        matches!(self.op, op::FCHMOD | op::FCHOWN | op::FCHOWN16)
    }

    /// The directory the second name starts from: the first's when both start from the same
    /// directory and the kernel walked it, else what /proc said (`base2_from_proc`: `mv
    /// /tmp/x ld.so.preload` in /etc, the first name absolute and nothing walked).
    fn second_base(&self) -> Option<&str> {
        let walked = self.base.as_ref().filter(|_| self.dirfd2 == self.dirfd).map(|f| f.path.as_str());
        walked.or(self.base2.as_deref())
    }

    fn is_symlink(&self) -> bool {
        matches!(self.op, op::SYMLINK | op::SYMLINKAT)
    }

    /// Names through the caller's own descriptors or working directory in its procfs
    /// (`chmod 666 /proc/self/fd/3` on an O_PATH descriptor of /etc/shadow, `/proc/self/cwd/x`):
    /// where those links lead now, read from the host's /proc for thread `pid`, else its process
    /// `tgid` (the magic links cannot be followed from the container's root); not for a chrooted
    /// caller. A caller gone by then leaves the names as they are (`magic_link` says them).
    pub fn names_from_proc(&mut self, pid: u32, tgid: u32) {
        let first = magic_link_target(&self.name, pid, tgid);
        let second = magic_link_target(&self.name2, pid, tgid);
        if first.is_none() && second.is_none() {
            return;
        }
        let passed = (self.name.clone(), self.name2.clone());
        if let Some(n) = first {
            self.name = n;
        }
        if let Some(n) = second {
            self.name2 = n;
        }
        self.requested = Some(passed);
    }

    /// A relative second name whose directory the kernel did not walk (it walks the first
    /// name's, or the second's when the first is absolute): that directory as the caller has it
    /// now, from /proc (`fd/<dirfd2>`, or `cwd`), of the thread `pid`, else its process `tgid`
    /// (it may have changed since, as `base_from_proc`'s may).
    pub fn base2_from_proc(&mut self, pid: u32, tgid: u32) {
        let walked = self.base2.is_some() || self.base.is_some() && (self.dirfd2 == self.dirfd);
        if self.name2.is_empty() || self.name2.starts_with('/') || self.is_symlink() || walked {
            return;
        }
        self.base2 = dir_from_proc(self.dirfd2, pid, tgid);
    }

    /// Finds the sensitive file the call names, in the filesystem whose root is `root` (the
    /// calling process's, else its container's); false when it names none (not an event).
    pub fn resolve(&mut self, id: &str, root: Option<&crate::sensitive::Root>, set: &SensitiveSet) -> bool {
        if self.empty_path
            && let Some(file) = self.base.take()
        {
            // The descriptor's file, by the path /proc gave for it, resolved as that name is (a
            // hard link of a sensitive file is that file).
            self.name = file.path;
        }
        if self.by_fd() {
            // Matched in the kernel: the descriptor's file, as the kernel walked it.
            let path = self.base.as_ref().map(|f| f.path.clone()).unwrap_or_default();
            let entry = if self.matched & matched::PSEUDO != 0 {
                let leaf = path.rsplit('/').next().unwrap_or("");
                crate::sensitive::PSEUDO.iter().find(|(n, _)| *n == leaf).map(|(_, e)| (*e).to_owned())
            } else {
                set.pattern_of(&path, docker_listener_common::family::file::access::WRITE)
                    .map(|i| set.patterns[i].text.clone())
            };
            self.located = Some(Located { path, entry, how: "file", second: false });
            return true;
        }
        let base = self.base.as_ref().map(|f| f.path.as_str());
        let Some(root) = root else {
            // No process of the container is left to resolve in (a one-shot container gone
            // before the record was read): the names as written, `.` and `..` applied, against
            // the entries' paths, marked as such.
            let (below, as_written) = self.readings();
            let paths = [
                below.then(|| crate::sensitive::lexical_in_root(base, &self.name)).flatten(),
                as_written.then(|| crate::sensitive::lexical(base, &self.name)).flatten(),
                (!self.is_symlink()).then(|| crate::sensitive::lexical(self.second_base(), &self.name2)).flatten(),
            ];
            for (i, path) in paths.into_iter().enumerate() {
                if let Some(path) = path
                    && let Some(p) = set.pattern_of(&path, self.wants())
                {
                    let entry = Some(set.patterns[p].text.clone());
                    self.located = Some(Located { path, entry, how: "name-unresolved", second: i == 2 });
                    return true;
                }
            }
            self.located = self.magic_link();
            return self.located.is_some();
        };
        // rename and link: the old name (a sensitive file moved or linked away) or the new one
        // (a file put in a sensitive one's place).
        let follow = matches!(
            self.op,
            op::CHMOD | op::FCHMODAT | op::FCHMODAT2 | op::CHOWN | op::CHOWN16 | op::FCHOWNAT | op::TRUNCATE
        ) || (self.is_open() && self.open_flags & oflag::NOFOLLOW == 0);
        let (below, as_written) = self.readings();
        let first = below
            .then(|| crate::sensitive::locate_in_root(root, id, base, &self.name, follow, self.wants(), set))
            .flatten()
            .or_else(|| {
                as_written
                    .then(|| crate::sensitive::locate(root, id, base, &self.name, follow, self.wants(), set))
                    .flatten()
            });
        // A symlink's target is a string kept as given, no name it changes.
        let second = if self.name2.is_empty() || self.is_symlink() {
            None
        } else {
            crate::sensitive::locate(root, id, self.second_base(), &self.name2, false, access::WRITE, set)
                .map(|l| Located { second: true, ..l })
        };
        self.located = first.or(second).or_else(|| self.magic_link());
        self.located.is_some()
    }

    /// A name through a process's descriptor or working directory in procfs that was not
    /// followed (`/proc/$$/fd/3`, `//proc/self/fd/3`, `cd /proc/self/fd; chmod 666 3`, the caller
    /// gone before its link was read): said, not dropped, whatever it led to.
    fn magic_link(&self) -> Option<Located> {
        if self.empty_path && (self.name.is_empty() || self.name.ends_with(" (deleted)")) {
            // The descriptor's file could not be read (its caller gone), or its name is gone
            // (`/tmp/h (deleted)`: a hard link of /etc/shadow unlinked before the call): what it
            // is cannot be told.
            let path = if self.name.is_empty() { format!("/proc/self/fd/{}", self.dirfd) } else { self.name.clone() };
            return Some(Located { path, entry: None, how: "magic-link", second: false });
        }
        let base = self.base.as_ref().map(|f| f.path.as_str());
        let names = [(base, self.name.as_str(), false), (self.second_base(), self.name2.as_str(), true)];
        names.into_iter().find_map(|(base, name, second)| {
            let path = crate::sensitive::lexical(base, name).unwrap_or_else(|| name.to_owned());
            through_magic_link(&path).then_some(Located { path, entry: None, how: "magic-link", second })
        })
    }

    pub fn syscall(&self) -> &'static str {
        match self.op {
            op::REFUSED_OPEN => "open",
            op::REFUSED_CREAT => "creat",
            op::REFUSED_OPENAT => "openat",
            op::REFUSED_OPENAT2 => "openat2",
            op::URING_OPENAT_NAMED => "IORING_OP_OPENAT",
            op::URING_OPENAT2_NAMED => "IORING_OP_OPENAT2",
            op::UNLINK => "unlink",
            op::UNLINKAT => "unlinkat",
            op::RENAME => "rename",
            op::RENAMEAT => "renameat",
            op::RENAMEAT2 => "renameat2",
            op::CHMOD => "chmod",
            op::FCHMODAT => "fchmodat",
            op::FCHMODAT2 => "fchmodat2",
            op::CHOWN | op::CHOWN16 => "chown",
            op::LCHOWN | op::LCHOWN16 => "lchown",
            op::FCHOWNAT => "fchownat",
            op::LINK => "link",
            op::LINKAT => "linkat",
            op::SYMLINK => "symlink",
            op::SYMLINKAT => "symlinkat",
            op::URING_UNLINKAT => "IORING_OP_UNLINKAT",
            op::URING_RENAMEAT => "IORING_OP_RENAMEAT",
            op::URING_LINKAT => "IORING_OP_LINKAT",
            op::TRUNCATE => "truncate",
            op::FCHMOD => "fchmod",
            _ => "fchown",
        }
    }

    fn action(&self) -> &'static str {
        if self.is_open() {
            // A file that is not there (matched by its name) would have been made.
            let absent = self.located.as_ref().is_some_and(|l| l.how == "name");
            return if absent && self.open_flags & oflag::CREAT != 0 {
                "file-create"
            } else if self.wants() & access::WRITE != 0 {
                "file-write"
            } else {
                "file-read"
            };
        }
        match self.op {
            op::UNLINK | op::UNLINKAT | op::URING_UNLINKAT => "file-delete",
            op::RENAME | op::RENAMEAT | op::RENAMEAT2 | op::URING_RENAMEAT => "file-rename",
            op::LINK | op::LINKAT | op::URING_LINKAT | op::SYMLINK | op::SYMLINKAT => "file-link",
            op::CHMOD | op::FCHMODAT | op::FCHMODAT2 | op::FCHMOD => "file-chmod",
            op::TRUNCATE => "file-truncate",
            _ => "file-chown",
        }
    }

    pub fn kind(&self) -> Kind {
        let types: &'static [&'static str] = match self.action() {
            "file-delete" => &["deletion"],
            "file-link" | "file-create" => &["creation"],
            "file-read" => &["access"],
            _ => &["change"],
        };
        Kind { kind: "event", category: "file", types, action: self.action(), dataset: "docker_listener.file" }
    }

    /// ECS `file`: the sensitive file, by its path in the container.
    pub(crate) fn write_file<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let Some(l) = &self.located else { return Ok(()) };
        m.serialize_entry("file", &super::FileOut::new(&l.path, None))
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            matched: MatchOut<'a>,
            #[serde(skip_serializing_if = "str::is_empty")]
            requested: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            new_name: &'a str,
            /// A symlink's target, as given.
            #[serde(skip_serializing_if = "str::is_empty")]
            symlink_target: &'a str,
            /// Which name is the sensitive file's: rename and link's second (where it goes).
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            new_name_sensitive: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            access: Option<Vec<&'static str>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            flags: Option<Vec<std::borrow::Cow<'static, str>>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            resolve: Option<Vec<std::borrow::Cow<'static, str>>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            mode: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            uid: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            gid: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            fd: Option<i32>,
        }
        let l = self.located.as_ref();
        let id = |v: u32| {
            let unchanged =
                v == u32::MAX || (matches!(self.op, op::CHOWN16 | op::LCHOWN16 | op::FCHOWN16) && v == 0xffff);
            (!unchanged).then_some(v)
        };
        let chown = self.action() == "file-chown";
        m.serialize_entry(
            "file_access",
            &Out {
                matched: MatchOut { sensitive: l.and_then(|l| l.entry.as_deref()), how: l.map_or("file", |l| l.how) },
                requested: match (&self.requested, self.empty_path) {
                    (_, true) => "",
                    (Some((n, _)), _) => n,
                    (None, _) => &self.name,
                },
                new_name: match (&self.requested, self.is_symlink()) {
                    (_, true) => "",
                    (Some((_, n2)), _) => n2,
                    (None, _) => &self.name2,
                },
                symlink_target: if self.is_symlink() { &self.name2 } else { "" },
                new_name_sensitive: l.is_some_and(|l| l.second),
                access: self.is_open().then(|| super::file::access_names(self.wants())),
                flags: self.is_open().then(|| super::file::open_flag_names(self.open_flags)),
                resolve: (self.resolve != 0).then(|| resolve_names(self.resolve)),
                mode: (self.action() == "file-chmod"
                    || (self.is_open() && (self.open_flags & oflag::CREAT != 0 || self.op == op::REFUSED_CREAT)))
                    .then(|| format!("{:04o}", self.mode & 0o7777)),
                uid: if chown { id(self.uid) } else { None },
                gid: if chown { id(self.gid) } else { None },
                fd: (self.by_fd() || self.empty_path).then_some(self.dirfd),
            },
        )
    }
}

/// openat2's `RESOLVE_*` bits by name (`docker_listener.file_access.resolve`); an unknown bit
/// as its hexadecimal value.
fn resolve_names(resolve: u64) -> Vec<std::borrow::Cow<'static, str>> {
    const NAMES: [(u64, &str); 6] = [
        (libc::RESOLVE_NO_XDEV, "no_xdev"),
        (libc::RESOLVE_NO_MAGICLINKS, "no_magiclinks"),
        (libc::RESOLVE_NO_SYMLINKS, "no_symlinks"),
        (libc::RESOLVE_BENEATH, "beneath"),
        (libc::RESOLVE_IN_ROOT, "in_root"),
        (libc::RESOLVE_CACHED, "cached"),
    ];
    super::bit_names(resolve, &NAMES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_bits_are_named_and_unknown_ones_kept() {
        assert_eq!(resolve_names(RESOLVE_IN_ROOT), ["in_root"]);
        assert_eq!(resolve_names(0x08 | 0x04 | 0x100), ["no_symlinks", "beneath", "0x100"]);
    }

    fn open_in_root(name: &str) -> FileChange {
        FileChange {
            op: op::REFUSED_OPENAT2,
            dirfd: 3,
            dirfd2: AT_FDCWD,
            mode: 0,
            uid: u32::MAX,
            gid: u32::MAX,
            at_flags: 0,
            open_flags: 0,
            resolve: RESOLVE_IN_ROOT,
            matched: 0,
            name: name.into(),
            name2: String::new(),
            empty_path: false,
            requested: None,
            base: Some(ExeFile { path: "/etc".into(), ..ExeFile::default() }),
            base_from_proc: false,
            base2: None,
            located: None,
        }
    }

    /// `mv /tmp/x ld.so.preload` in /etc, `ln -s /tmp/p /etc/ld.so.preload`: the second name's
    /// directory from /proc when the kernel walked none; a symlink's link is its first name,
    /// its target no name.
    #[test]
    fn a_relative_new_name_and_a_symlink_s_link_are_located() {
        let set = SensitiveSet::new(vec!["/etc/ld.so.preload".parse().unwrap(), "/etc/shadow".parse().unwrap()]);
        let change = |op_: u32, name: &str, name2: &str| FileChange {
            op: op_,
            resolve: 0,
            name: name.into(),
            name2: name2.into(),
            base: None,
            dirfd: AT_FDCWD,
            ..open_in_root("")
        };
        let mut mv = change(op::RENAME, "/tmp/payload", "ld.so.preload");
        assert!(!mv.clone().resolve("c", None, &set), "no directory for the new name: unresolved");
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap().to_string_lossy().into_owned();
        mv.base2_from_proc(me, me);
        assert_eq!(mv.base2.as_deref(), Some(cwd.as_str()), "the caller's working directory");
        mv.base2 = Some("/etc".into());
        assert!(mv.resolve("c", None, &set));
        let l = mv.located.unwrap();
        assert_eq!((l.path.as_str(), l.second), ("/etc/ld.so.preload", true));
        let mut ln = change(op::SYMLINK, "/etc/ld.so.preload", "/tmp/evil.so");
        assert!(ln.resolve("c", None, &set));
        assert_eq!(ln.located.as_ref().map(|l| (l.path.as_str(), l.second)), Some(("/etc/ld.so.preload", false)));
        assert_eq!(ln.kind().action, "file-link");
        // A link to a sensitive file is no change of it.
        let mut to = change(op::SYMLINK, "/tmp/s", "/etc/shadow");
        assert!(!to.resolve("c", None, &set));
        // fchownat(fd, "", .., AT_EMPTY_PATH): the descriptor's file, as /proc gave it.
        let on_fd = FileChange {
            empty_path: true,
            base: Some(ExeFile { path: "/etc/shadow".into(), ..ExeFile::default() }),
            dirfd: 3,
            ..change(op::FCHOWNAT, "", "")
        };
        let mut f = on_fd.clone();
        assert!(f.resolve("c", None, &set));
        assert_eq!(f.located.as_ref().map(|l| l.path.as_str()), Some("/etc/shadow"));
        // Its caller gone before /proc was read, or a path that leads to no file now: said, as a
        // magic link.
        let mut f = FileChange { base: None, ..on_fd.clone() };
        assert!(f.resolve("c", None, &set));
        assert_eq!(f.located.as_ref().map(|l| (l.path.as_str(), l.how)), Some(("/proc/self/fd/3", "magic-link")));
        let gone = ExeFile { path: "/tmp/h (deleted)".into(), ..ExeFile::default() };
        let mut f = FileChange { base: Some(gone), ..on_fd.clone() };
        assert!(f.resolve("c", None, &set));
        assert_eq!(f.located.as_ref().map(|l| (l.path.as_str(), l.how)), Some(("/tmp/h (deleted)", "magic-link")));
        // An ordinary file: not sensitive, no event.
        let plain = ExeFile { path: "/tmp/ordinary".into(), ..ExeFile::default() };
        assert!(!FileChange { base: Some(plain), ..on_fd.clone() }.resolve("c", None, &set));
        // Without AT_EMPTY_PATH an empty name names nothing.
        let mut f = FileChange {
            empty_path: false,
            base: Some(ExeFile { path: "/etc".into(), ..ExeFile::default() }),
            ..on_fd
        };
        assert!(!f.resolve("c", None, &SensitiveSet::new(vec!["/etc".parse().unwrap()])));
    }

    /// `chmod 666 /proc/self/fd/3` (an O_PATH descriptor of the file), `/proc/self/cwd/x`: the
    /// names where those links of the caller lead, the names as passed kept for the event.
    #[test]
    fn names_through_the_caller_s_magic_links_are_where_they_lead() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shadow");
        std::fs::write(&path, "x").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let me = std::process::id();
        let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        let mut f = FileChange { op: op::CHMOD, resolve: 0, name: by_fd.clone(), base: None, ..open_in_root("") };
        f.names_from_proc(me, me);
        assert_eq!(f.name, path.to_string_lossy());
        assert_eq!(f.requested, Some((by_fd.clone(), String::new())));
        let cwd = std::env::current_dir().unwrap();
        let mut f = FileChange { name: "/proc/thread-self/cwd/x".into(), requested: None, ..f };
        f.names_from_proc(me, me);
        assert_eq!(f.name, format!("{}/x", cwd.to_string_lossy().trim_end_matches('/')));
        // Other names, and links that are no path, stay as they are.
        for other in ["/proc/1/fd/3", "/etc/shadow", "proc/self/fd/3", "/proc/self/fd/99999"] {
            let mut f = FileChange { name: other.into(), requested: None, ..f.clone() };
            f.names_from_proc(me, me);
            assert_eq!((f.name.as_str(), &f.requested), (other, &None));
        }
    }

    /// A change by a name through a process's descriptor or directory in procfs that was not
    /// followed is said (`match: magic-link`), whatever it led to; other unmatched names are not.
    #[test]
    fn a_magic_link_not_followed_is_said_not_dropped() {
        let set = SensitiveSet::new(vec!["/etc/shadow".parse().unwrap()]);
        for name in
            ["/proc/1/fd/5", "//proc/self/fd/3", "/proc/./thread-self/fd/3", "/proc/7/task/7/fd/3", "/proc/self/cwd/x"]
        {
            let mut f = FileChange { op: op::CHMOD, resolve: 0, name: name.into(), base: None, ..open_in_root("") };
            assert!(f.resolve("c", None, &set), "{name}");
            assert_eq!(f.located.as_ref().map(|l| (l.how, l.entry.clone())), Some(("magic-link", None)), "{name}");
        }
        // Relative, from a working directory in procfs (`cd /proc/self/fd; chmod 666 3`).
        let mut f = FileChange {
            op: op::CHMOD,
            resolve: 0,
            name: "3".into(),
            base: Some(ExeFile { path: "/proc/12/fd".into(), ..ExeFile::default() }),
            ..open_in_root("")
        };
        assert!(f.resolve("c", None, &set));
        for other in ["/tmp/x", "/proc/self/root/tmp/x", "/proc/sys/kernel/x"] {
            let mut f = FileChange { op: op::CHMOD, resolve: 0, name: other.into(), base: None, ..open_in_root("") };
            assert!(!f.resolve("c", None, &set), "{other}");
        }
    }

    /// A refused openat2's directory the kernel did not walk (an absolute name) is read from
    /// /proc: the caller's descriptor, or its working directory.
    #[test]
    fn a_directory_not_walked_is_read_from_proc() {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open("/proc/self").unwrap();
        let me = std::process::id();
        let mut f = open_in_root("/shadow");
        f.base = None;
        f.dirfd = dir.as_raw_fd();
        f.base_from_proc(me, me);
        assert_eq!(f.base.as_ref().map(|b| b.path.clone()), Some(format!("/proc/{me}")));
        assert!(f.base_from_proc);
        f.base = None;
        f.dirfd = AT_FDCWD;
        f.base_from_proc(me, me);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(f.base.map(|b| b.path), Some(cwd.to_string_lossy().into_owned()));
        let mut walked = open_in_root("/shadow");
        walked.base_from_proc(me, me);
        assert!(!walked.base_from_proc);
        assert_eq!(walked.base.map(|b| b.path).as_deref(), Some("/etc"), "the kernel's walk is kept");
    }

    /// With no process left to resolve in, the name is read lexically below its directory:
    /// its `..` stop there, as the kernel's did.
    #[test]
    fn a_name_in_its_directory_as_root_is_read_below_it_when_unresolved() {
        let set = SensitiveSet::new(vec!["/etc/shadow".parse().unwrap()]);
        for name in ["/shadow", "../../shadow", "shadow"] {
            let mut f = open_in_root(name);
            assert!(f.resolve("c", None, &set), "{name}");
            let l = f.located.unwrap();
            assert_eq!((l.path.as_str(), l.how), ("/etc/shadow", "name-unresolved"), "{name}");
        }
        let mut plain = open_in_root("/shadow");
        plain.resolve = 0;
        assert!(!plain.resolve("c", None, &set), "without RESOLVE_IN_ROOT, /shadow is /shadow");
        // Below a directory the kernel walked, /etc/shadow from /tmp/r is /tmp/r/etc/shadow.
        let mut other_root = open_in_root("/etc/shadow");
        other_root.base = Some(ExeFile { path: "/tmp/r".into(), ..ExeFile::default() });
        assert!(!other_root.resolve("c", None, &set));
        // A directory read from /proc after the call may not be the one the kernel used, and an
        // unknown one is no directory: the name is also read as written.
        let mut guessed = open_in_root("/etc/shadow");
        guessed.base = Some(ExeFile { path: "/tmp/r".into(), ..ExeFile::default() });
        guessed.base_from_proc = true;
        assert!(guessed.resolve("c", None, &set));
        let mut unknown = open_in_root("/etc/shadow");
        unknown.base = None;
        assert!(unknown.resolve("c", None, &set));
        assert_eq!(unknown.located.map(|l| l.path).as_deref(), Some("/etc/shadow"));
    }
}
