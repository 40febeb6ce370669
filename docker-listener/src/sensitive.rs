//! The sensitive files of the `file-access` family: the configured paths (`ebpf.sensitive_files`)
//! resolved inside each container's filesystem into the inodes the kernel compares every open
//! against (`SENSITIVE`, docker-listener-ebpf's `file.rs`), and the way back from an inode the
//! kernel matched to the configured entry an event names.
//!
//! A path is resolved from the container's root (`/proc/<pid>/root`) with `openat2`'s
//! `RESOLVE_IN_ROOT`, as the container's own processes resolve it: its symlinks (`/var/run` →
//! `/run`) stay inside it. What goes to the kernel, per entry:
//!
//! - a file: its inode, with the accesses reported (read, write);
//! - a directory (an entry ending in `/`, or one that names a directory): its inode and those of
//!   the directories below it (depth `SUBDIR_DEPTH`), marked as directories whose entries are
//!   sensitive, so a file created there later is matched by its parent;
//! - the parent directory of every entry, marked as a place where a sensitive file may be
//!   created: an open with O_CREAT there (or one level below, for a directory entry that does
//!   not exist yet, `/root/.ssh/` made by the attacker) is sent up, and kept when the path the
//!   kernel walked matches an entry (the new file's inode then joins the set).
//!
//! The sets are made again every `REFRESH` (a file replaced by a rename is another inode).
use std::{
    collections::HashMap,
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    time::Duration,
};

use docker_listener_common::family::file::access;

/// Directory levels below a sensitive directory whose files are matched (`/var/run/secrets/`
/// holds `kubernetes.io/serviceaccount/token`).
pub const SUBDIR_DEPTH: usize = 3;
/// Directories taken below one sensitive directory, at most.
pub const SUBDIR_MAX: usize = 64;
/// How often each container's set is made again.
pub const REFRESH: Duration = Duration::from_secs(60);
/// Inodes the kernel's map holds (its `max_entries`).
pub const MAP_MAX: usize = 16384;

/// The default entries. `write:` reports only opens that may change the file.
pub const DEFAULT: [&str; 13] = [
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d/",
    "write:/etc/passwd",
    "write:/etc/group",
    "/root/.ssh/",
    "/home/*/.ssh/",
    "/etc/ld.so.preload",
    "write:/etc/cron*",
    "write:/var/spool/cron/",
    "/var/run/secrets/",
    "/run/secrets/",
];

/// The pseudo-files the kernel matches by name (docker-listener-common's `family::file::pseudo`),
/// as events name the entry.
pub const PSEUDO: [(&str, &str); 5] = [
    ("mem", "/proc/*/mem"),
    ("core_pattern", "/proc/sys/kernel/core_pattern"),
    ("sysrq-trigger", "/proc/sysrq-trigger"),
    ("release_agent", "/sys/fs/cgroup/*/release_agent"),
    ("notify_on_release", "/sys/fs/cgroup/*/notify_on_release"),
];

/// One configured entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// As configured, without its access prefix ("/home/*/.ssh/").
    pub text: String,
    /// `access` bits reported.
    pub access: u32,
    /// Ends in `/`: a directory whose entries are sensitive.
    pub dir: bool,
    components: Vec<String>,
}

impl std::str::FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Pattern, String> {
        let (acc, path) = match s.split_once(':') {
            Some(("read", p)) => (access::READ, p),
            Some(("write", p)) => (access::WRITE, p),
            Some(("any", p)) => (access::READ | access::WRITE, p),
            Some((other, _)) => {
                return Err(format!("unknown access {other:?} in {s:?}: accepted \"read:\", \"write:\" or none"));
            }
            None => (access::READ | access::WRITE, s),
        };
        if !path.starts_with('/') {
            return Err(format!("{s:?} is not an absolute path (as the container sees it, e.g. \"/etc/shadow\")"));
        }
        let components: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect();
        if components.is_empty() {
            return Err(format!("{s:?} names the root directory: every open would match"));
        }
        if components.iter().any(|c| c == "." || c == "..") {
            return Err(format!("{s:?} has a \".\" or \"..\" component: write the path it means"));
        }
        if components.iter().any(|c| c.contains(['?', '[', '{'])) {
            return Err(format!("{s:?}: only \"*\" is accepted as a wildcard (within one component)"));
        }
        Ok(Pattern { text: path.to_owned(), access: acc, dir: path.ends_with('/'), components })
    }
}

impl Pattern {
    /// Whether a path (as the kernel walked it, from the container's root) is this entry or, for
    /// a directory, below it.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if parts.len() < self.components.len() {
            return false;
        }
        let head = self.components.iter().zip(&parts).all(|(p, c)| glob(p, c));
        head && (parts.len() == self.components.len() || self.dir || self.is_dir_like(parts.len()))
    }

    /// A file entry with a wildcard (`/etc/cron*`) also names directories (`/etc/cron.d`):
    /// their files match.
    fn is_dir_like(&self, depth: usize) -> bool {
        depth <= self.components.len() + SUBDIR_DEPTH && self.components.last().is_some_and(|c| c.contains('*'))
    }
}

/// `*` matches any run of characters (none included) within one component; a leading `*` does
/// not match a leading dot, as in a shell.
pub fn glob(pattern: &str, name: &str) -> bool {
    if pattern.starts_with('*') && name.starts_with('.') {
        return false;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// One inode of a container's set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ino: u64,
    /// The kernel's dev_t (major << 20 | minor).
    pub dev: u32,
    /// `access` bits, with `access::DIR` and `access::PARENT` for directories.
    pub bits: u32,
    /// Index of the configured entry.
    pub pattern: usize,
    /// The path in the container.
    pub path: String,
}

/// The kernel's dev_t of a userspace st_dev.
pub fn kernel_dev(dev: u64) -> u32 {
    ((libc::major(dev) << 20) | libc::minor(dev)) as u32
}

/// The file at `path` (a link followed) as the kernel's records name one: (inode, the kernel's
/// dev_t); None when it cannot be looked at.
pub fn file_id(path: impl AsRef<Path>) -> Option<(u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), kernel_dev(m.dev())))
}

/// Resolves the entries inside the filesystem whose root is `root` (`/proc/<pid>/root`).
pub fn resolve(root: &Path, patterns: &[Pattern]) -> std::io::Result<Vec<Entry>> {
    let root = open_path(None, root.as_os_str().as_encoded_bytes(), libc::O_DIRECTORY)?;
    let mut out = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let mut found = Vec::new();
        expand(&root, String::new(), &p.components, &mut found);
        for path in found {
            let Ok(fd) = open_path(Some(&root), path.as_bytes(), 0) else { continue };
            let Ok(meta) = fstat(&fd) else { continue };
            let parent_path = path.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
            if let Ok(pfd) = open_path(Some(&root), parent_path.as_bytes(), libc::O_DIRECTORY)
                && let Ok(pm) = fstat(&pfd)
            {
                out.push(entry(pm, access::PARENT | p.access, i, parent_path));
            }
            if meta.2 {
                let mut dirs = vec![(path.clone(), 0usize)];
                let mut taken = 0;
                while let Some((d, depth)) = dirs.pop() {
                    let Ok(dfd) = open_path(Some(&root), d.as_bytes(), libc::O_DIRECTORY) else { continue };
                    let Ok(dm) = fstat(&dfd) else { continue };
                    out.push(entry(dm, access::DIR | p.access, i, &d));
                    taken += 1;
                    if depth < SUBDIR_DEPTH && taken < SUBDIR_MAX {
                        for name in list_dir(&dfd) {
                            let child = format!("{d}/{name}");
                            if let Ok(cfd) =
                                open_path(Some(&root), child.as_bytes(), libc::O_DIRECTORY | libc::O_NOFOLLOW)
                                && fstat(&cfd).is_ok_and(|(_, _, dir)| dir)
                            {
                                dirs.push((child, depth + 1));
                            }
                        }
                    }
                }
            } else {
                out.push(entry(meta, p.access, i, &path));
            }
        }
        // An entry naming a directory that does not exist yet (`/root/.ssh/`): its parent is
        // where it may be made.
        if p.dir && !p.components.iter().any(|c| c.contains('*')) {
            let parent: String = p.components[..p.components.len() - 1].iter().map(|c| format!("/{c}")).collect();
            let parent = if parent.is_empty() { "/".to_owned() } else { parent };
            if let Ok(pfd) = open_path(Some(&root), parent.as_bytes(), libc::O_DIRECTORY)
                && let Ok(pm) = fstat(&pfd)
            {
                out.push(entry(pm, access::PARENT | p.access, i, &parent));
            }
        }
    }
    Ok(out)
}

/// An entry of the file `fstat` described.
fn entry((ino, dev, _): (u64, u64, bool), bits: u32, pattern: usize, path: &str) -> Entry {
    Entry { ino, dev: kernel_dev(dev), bits, pattern, path: path.to_owned() }
}

/// The paths (from the root, "/a/b") the components name, wildcards expanded.
fn expand(root: &OwnedFd, prefix: String, rest: &[String], out: &mut Vec<String>) {
    let Some((first, rest)) = rest.split_first() else {
        out.push(prefix);
        return;
    };
    if !first.contains('*') {
        expand(root, format!("{prefix}/{first}"), rest, out);
        return;
    }
    let dir = if prefix.is_empty() { "/".to_owned() } else { prefix.clone() };
    let Ok(dfd) = open_path(Some(root), dir.as_bytes(), libc::O_DIRECTORY) else { return };
    let mut names: Vec<String> = list_dir(&dfd).into_iter().filter(|n| glob(first, n)).collect();
    names.sort();
    for n in names.into_iter().take(SUBDIR_MAX) {
        expand(root, format!("{prefix}/{n}"), rest, out);
    }
}

/// Opens `path` (inside `root` when given, resolved as if `root` were `/`) for reading its
/// metadata or listing it.
fn open_path(root: Option<&OwnedFd>, path: &[u8], flags: i32) -> std::io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mode = if flags & libc::O_DIRECTORY != 0 { libc::O_RDONLY } else { libc::O_PATH };
    // struct open_how { u64 flags; u64 mode; u64 resolve; } (libc's is non-exhaustive).
    let how: [u64; 3] = [
        (mode | flags | libc::O_CLOEXEC) as u64,
        0,
        if root.is_some() { libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS } else { 0 },
    ];
    let dirfd = root.map_or(libc::AT_FDCWD, |r| r.as_raw_fd());
    // SAFETY: `c` and `how` outlive the call; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_openat2, dirfd, c.as_ptr(), how.as_ptr(), size_of::<[u64; 3]>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// (inode, st_dev, is a directory) of an open file (fstat works on O_PATH descriptors, and
/// describes a symlink opened with O_NOFOLLOW, not its target).
fn fstat(fd: &OwnedFd) -> std::io::Result<(u64, u64, bool)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: a valid descriptor and a buffer of the right type.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstat filled it.
    let st = unsafe { st.assume_init() };
    Ok((st.st_ino, st.st_dev, st.st_mode & libc::S_IFMT == libc::S_IFDIR))
}

/// Whether an entry's path still leads to its inode in the filesystem whose root is `root`: an
/// inode number freed by a deleted file is given to the next file made, which is not the entry.
pub fn still(root: &Root, e: &Entry) -> bool {
    open_path(Some(&root.0), e.path.as_bytes(), 0).and_then(|f| fstat(&f)).is_ok_and(|(ino, _, _)| ino == e.ino)
}

/// A container's root directory, open: it stays usable when the process it was reached through
/// exits (a short-lived `rm` is often exiting while its call is read).
#[derive(Debug)]
pub struct Root(OwnedFd);

impl Root {
    /// The first of `candidates` (`/proc/<pid>/root` of the caller, then of its container's
    /// init) that can be opened.
    pub fn open(candidates: impl IntoIterator<Item = std::path::PathBuf>) -> Option<Root> {
        candidates
            .into_iter()
            .find_map(|p| open_path(None, p.as_os_str().as_encoded_bytes(), libc::O_DIRECTORY).ok())
            .map(Root)
    }
}

/// Where a name a call passed is, in the container, and which entry it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file's path in the container, its directory resolved (symlinks, `..`).
    pub path: String,
    /// The configured entry.
    pub entry: Option<String>,
    /// `file` (its inode is an entry's), `directory` (its directory's is), `name` (its path is an
    /// entry's: a file that was or will be one).
    pub how: &'static str,
    /// The call's second name (rename's and link's new name).
    pub second: bool,
}

/// A name as written, relative names from `base`, with `.`, `..` and repeated slashes applied
/// (symlinks are not: nothing is resolved).
pub fn lexical(base: Option<&str>, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let full = if name.starts_with('/') { name.to_owned() } else { format!("{}/{name}", base?) };
    let mut parts: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// A name resolved with `base` as its root (`RESOLVE_IN_ROOT`), as written: an absolute name
/// and its `..` stay below `base` (symlinks are not resolved).
pub fn lexical_in_root(base: Option<&str>, name: &str) -> Option<String> {
    let inner = lexical(None, &format!("/{name}"))?;
    Some(format!("{}{inner}", base?.trim_end_matches('/')))
}

/// Resolves `name` (relative names from `base`, a directory's path in the container) in the
/// filesystem whose root is `root`, as the container's processes would, and says which sensitive
/// entry of container `id` it is, if any. `follow`: the call follows a final symlink (chmod,
/// chown, truncate, an open without `O_NOFOLLOW`). `want`: the `access` bits the call is (a
/// change: `WRITE`; a refused open: what it asked for); an entry for other accesses is not it.
pub fn locate(
    root: &Root,
    id: &str,
    base: Option<&str>,
    name: &str,
    follow: bool,
    want: u32,
    set: &SensitiveSet,
) -> Option<Located> {
    if name.is_empty() {
        return None;
    }
    let full = if name.starts_with('/') { name.to_owned() } else { format!("{}/{name}", base?.trim_end_matches('/')) };
    locate_from(root, &root.0, id, &full, follow, want, set)
}

/// `locate` for a name resolved with its directory as the root (openat2's `RESOLVE_IN_ROOT`):
/// `name`, absolute or not, its `..` and its absolute symlinks stay below `base` (the
/// directory's path in the container), as the kernel resolved them: `/shadow` from `/etc` is
/// `/etc/shadow`.
pub fn locate_in_root(
    root: &Root,
    id: &str,
    base: Option<&str>,
    name: &str,
    follow: bool,
    want: u32,
    set: &SensitiveSet,
) -> Option<Located> {
    if name.is_empty() {
        return None;
    }
    let start = open_path(Some(&root.0), base?.as_bytes(), libc::O_DIRECTORY).ok()?;
    let full = format!("/{}", name.trim_start_matches('/'));
    locate_from(root, &start, id, &full, follow, want, set)
}

/// `locate`'s resolution of `full` (absolute) below `start` (the container's root, or the
/// directory a `RESOLVE_IN_ROOT` name starts from); `root` is the container's.
fn locate_from(
    root: &Root,
    start: &OwnedFd,
    id: &str,
    full: &str,
    follow: bool,
    want: u32,
    set: &SensitiveSet,
) -> Option<Located> {
    let trimmed = full.trim_end_matches('/');
    let (dir, leaf) = trimmed.rsplit_once('/')?;
    let dir = if dir.is_empty() { "/" } else { dir };
    let rootfd = start;
    let dfd = open_path(Some(rootfd), dir.as_bytes(), libc::O_DIRECTORY).ok()?;
    let (dino, ddev, _) = fstat(&dfd).ok()?;
    // The directory's path in the container (the kernel's, from the descriptor).
    let canon_dir = std::fs::read_link(format!("/proc/self/fd/{}", dfd.as_raw_fd())).ok()?;
    let canon_dir = canon_dir.to_string_lossy();
    let path = if canon_dir == "/" { format!("/{leaf}") } else { format!("{canon_dir}/{leaf}") };
    let mut sfs = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: a valid descriptor and a buffer of the right type.
    let overlay = unsafe { libc::fstatfs(dfd.as_raw_fd(), sfs.as_mut_ptr()) } == 0
        // SAFETY: fstatfs filled it.
        && unsafe { sfs.assume_init() }.f_type as u32 == docker_listener_common::magic::OVERLAYFS;
    let text = |i: usize| set.patterns.get(i).map(|p| p.text.clone());
    let not_dir = |e: &Entry| e.bits & (access::DIR | access::PARENT) == 0 && e.bits & want != 0 && still(root, e);
    // The file itself, where it is still there (chmod, chown, truncate, a link's old name, a
    // refused unlink): by its inode, so a hard link or a symlinked directory is the file.
    let flags = if follow { 0 } else { libc::O_NOFOLLOW };
    if let Ok(f) = open_path(Some(rootfd), trimmed.as_bytes(), flags)
        && let Ok((ino, dev, _)) = fstat(&f)
        && let Some(e) = set.find(id, ino, kernel_dev(dev), overlay, not_dir)
    {
        return Some(Located { path, entry: text(e.pattern), how: "file", second: false });
    }
    if let Some(e) = set.find(id, dino, kernel_dev(ddev), overlay, |e| e.bits & access::DIR != 0 && e.bits & want != 0)
    {
        return Some(Located { path, entry: text(e.pattern), how: "directory", second: false });
    }
    set.pattern_of(&path, want).map(|i| Located { path, entry: text(i), how: "name", second: false })
}

fn list_dir(fd: &OwnedFd) -> Vec<String> {
    match std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        Ok(rd) => rd.flatten().filter_map(|e| e.file_name().into_string().ok()).take(4096).collect(),
        Err(_) => Vec::new(),
    }
}

/// What a resolution of a container's files found.
#[derive(Debug)]
pub enum Resolved {
    /// Its set.
    Files(Vec<Entry>),
    /// No process of the container to resolve them in: it has stopped (or is gone).
    NoProcess,
    /// A process's root could not be read for a moment.
    Failed,
}

/// Every container's set, and what the kernel's map holds.
#[derive(Debug, Default)]
pub struct SensitiveSet {
    pub patterns: Vec<Pattern>,
    by_container: HashMap<String, Vec<Entry>>,
    /// The map's content: inode → bits (the union over containers).
    kernel: HashMap<u64, u32>,
    /// Per inode, the bits of every entry naming it, whichever container's: an inode's bits
    /// are made again from its own entries, not from every set (the containers of one image
    /// share their lower layers' inodes; each refresh would otherwise read every set once per
    /// inode of every container).
    holders: HashMap<u64, Vec<u32>>,
    /// Entries `add`ed while a resolution of the container was in flight (`begin`): that
    /// resolution may have read the filesystem before them, so its `update` keeps them.
    added_during: HashMap<String, Vec<Entry>>,
    /// Containers resolved at least once since they were last forgotten.
    resolved: std::collections::HashSet<String>,
    /// Containers that got a set so far (`arrivals`).
    arrivals: u64,
}

/// A change to make to the kernel's map: the inode's new bits, or `None` to remove it.
pub type MapChange = (u64, Option<u32>);

/// Counts `entries` among their inodes' holders.
fn hold(holders: &mut HashMap<u64, Vec<u32>>, entries: &[Entry]) {
    for e in entries {
        holders.entry(e.ino).or_default().push(e.bits);
    }
}

/// Takes `entries` (counted by `hold` before) out of their inodes' holders.
fn release(holders: &mut HashMap<u64, Vec<u32>>, entries: &[Entry]) {
    for e in entries {
        if let Some(held) = holders.get_mut(&e.ino) {
            if let Some(i) = held.iter().position(|&b| b == e.bits) {
                held.swap_remove(i);
            }
            if held.is_empty() {
                holders.remove(&e.ino);
            }
        }
    }
}

impl SensitiveSet {
    pub fn new(patterns: Vec<Pattern>) -> SensitiveSet {
        SensitiveSet { patterns, ..SensitiveSet::default() }
    }

    /// A resolution of a container's files starts (its `update` comes later).
    pub fn begin(&mut self, id: &str) {
        self.added_during.insert(id.to_owned(), Vec::new());
    }

    /// Replaces a container's set with a resolution's entries and what was added while it ran
    /// (a file created at the container's start, while its first resolution read the disk,
    /// is not lost); the map changes that makes.
    pub fn update(&mut self, id: &str, mut entries: Vec<Entry>) -> Vec<MapChange> {
        for e in self.added_during.remove(id).unwrap_or_default() {
            if !entries.contains(&e) {
                entries.push(e);
            }
        }
        self.resolved.insert(id.to_owned());
        let old = self.by_container.insert(id.to_owned(), entries);
        if old.is_none() {
            self.arrivals += 1;
        }
        let old = old.unwrap_or_default();
        release(&mut self.holders, &old);
        hold(&mut self.holders, &self.by_container[id]);
        let mut touched: Vec<u64> = old.iter().map(|e| e.ino).collect();
        touched.extend(self.by_container[id].iter().map(|e| e.ino));
        self.recompute(touched)
    }

    /// Adds one inode to a container's set (a sensitive file created since it was made).
    pub fn add(&mut self, id: &str, e: Entry) -> Vec<MapChange> {
        let ino = e.ino;
        let list = match self.by_container.entry(id.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.arrivals += 1;
                v.insert(Vec::new())
            }
        };
        if list.contains(&e) {
            return Vec::new();
        }
        if let Some(during) = self.added_during.get_mut(id) {
            during.push(e.clone());
        }
        hold(&mut self.holders, std::slice::from_ref(&e));
        list.push(e);
        self.recompute(vec![ino])
    }

    /// A resolution of a container's files ended without a result (its processes' roots could
    /// not be read for a moment): its last set stays, with what was added meanwhile, until the
    /// next resolution; forgetting it would leave its files unwatched until then.
    pub fn unresolved(&mut self, id: &str) {
        self.added_during.remove(id);
    }

    /// Forgets a container (gone or ignored).
    pub fn forget(&mut self, id: &str) -> Vec<MapChange> {
        self.added_during.remove(id);
        self.resolved.remove(id);
        let old = self.by_container.remove(id).unwrap_or_default();
        release(&mut self.holders, &old);
        self.recompute(old.iter().map(|e| e.ino).collect())
    }

    /// Whether the container's files have been resolved (and it was not forgotten since).
    pub fn is_resolved(&self, id: &str) -> bool {
        self.resolved.contains(id)
    }

    pub fn containers(&self) -> impl Iterator<Item = &str> {
        self.by_container.keys().map(String::as_str)
    }

    /// How many times a container got a set (none before, or forgotten since) since the start:
    /// the containers with a set are the same until this changes or one is `forget`ten.
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// Inodes in the kernel's map.
    pub fn len(&self) -> usize {
        self.kernel.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kernel.is_empty()
    }

    fn recompute(&mut self, mut inos: Vec<u64>) -> Vec<MapChange> {
        inos.sort_unstable();
        inos.dedup();
        let mut changes = Vec::new();
        for ino in inos {
            let bits = self.holders.get(&ino).map_or(0, |held| held.iter().fold(0, |b, x| b | x));
            let now = (bits != 0).then_some(bits);
            if self.kernel.get(&ino).copied() != now {
                match now {
                    Some(b) => self.kernel.insert(ino, b),
                    None => self.kernel.remove(&ino),
                };
                changes.push((ino, now));
            }
        }
        changes
    }

    /// The entry an inode the kernel matched belongs to: the container's own (same device),
    /// else one of another container on an overlay of the same image (a file of a shared layer
    /// has the same inode number there) when `overlay`; `ok` says which entries qualify.
    pub fn find(&self, id: &str, ino: u64, dev: u32, overlay: bool, ok: impl Fn(&Entry) -> bool) -> Option<&Entry> {
        let ok = |e: &&Entry| e.ino == ino && ok(e);
        let own = self.by_container.get(id).and_then(|l| l.iter().filter(ok).find(|e| e.dev == dev));
        own.or_else(|| if overlay { self.by_container.values().flatten().find(ok) } else { None })
    }

    /// The configured entry a path (as the kernel walked it) is, or is below.
    pub fn pattern_of(&self, path: &str, want: u32) -> Option<usize> {
        self.patterns.iter().position(|p| p.access & want != 0 && p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn p(s: &str) -> Pattern {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_with_their_access_and_bad_ones_say_why() {
        let w = p("write:/etc/passwd");
        assert_eq!((w.access, w.dir, w.text.as_str()), (access::WRITE, false, "/etc/passwd"));
        assert!(p("/root/.ssh/").dir);
        assert_eq!(p("/etc/shadow").access, access::READ | access::WRITE);
        for bad in ["etc/shadow", "/", "/etc/../shadow", "/etc/[ab]", "rw:/etc/x"] {
            let e = bad.parse::<Pattern>().unwrap_err();
            assert!(e.contains(bad) || e.contains("rw"), "{bad}: {e}");
        }
        for d in DEFAULT {
            d.parse::<Pattern>().unwrap();
        }
    }

    #[test]
    fn lexical_paths_apply_dots_and_slashes_only() {
        assert_eq!(lexical(Some("/etc"), "../etc//shadow").as_deref(), Some("/etc/shadow"));
        assert_eq!(lexical(None, "/a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(lexical(None, "rel"), None, "a relative name needs its base");
        assert_eq!(lexical(Some("/"), "../../x").as_deref(), Some("/x"));
        assert_eq!(lexical_in_root(Some("/etc"), "../../shadow").as_deref(), Some("/etc/shadow"));
        assert_eq!(lexical_in_root(Some("/etc/"), "/a/../shadow").as_deref(), Some("/etc/shadow"));
        assert_eq!(lexical_in_root(None, "/shadow"), None, "no directory");
    }

    #[test]
    fn globs_and_paths_match_as_a_shell_would() {
        assert!(glob("cron*", "cron.d") && glob("cron*", "crontab") && glob("*", "alice"));
        assert!(!glob("*", ".hidden") && !glob("cron*", "anacron") && glob("a*b*c", "aXbYc"));
        assert!(p("/home/*/.ssh/").matches("/home/alice/.ssh/authorized_keys"));
        assert!(!p("/home/*/.ssh/").matches("/home/alice/notes"));
        assert!(p("/etc/shadow").matches("/etc/shadow") && !p("/etc/shadow").matches("/etc/shadow-"));
        assert!(!p("/etc/shadow").matches("/etc/shadow/x"), "a file entry has nothing below it");
        assert!(p("write:/etc/cron*").matches("/etc/cron.d/evil") && p("write:/etc/cron*").matches("/etc/crontab"));
    }

    fn e(ino: u64, dev: u32, bits: u32) -> Entry {
        Entry { ino, dev, bits, pattern: 0, path: "/etc/shadow".into() }
    }

    #[test]
    fn the_kernel_map_holds_the_union_and_forgets_what_no_container_has() {
        let mut s = SensitiveSet::new(vec![p("/etc/shadow")]);
        assert_eq!(s.update("a", vec![e(10, 40, access::READ)]), vec![(10, Some(access::READ))]);
        assert_eq!(s.update("b", vec![e(10, 41, access::WRITE)]), vec![(10, Some(access::READ | access::WRITE))]);
        assert_eq!(s.forget("a"), vec![(10, Some(access::WRITE))]);
        assert!(s.update("b", vec![e(10, 41, access::WRITE)]).is_empty(), "no change, nothing to write");
        assert_eq!(s.forget("b"), vec![(10, None)]);
        assert!(s.is_empty());
    }

    /// The changes each call returns, applied in turn to a map, leave it holding what the
    /// naive union over every container's set says, whatever the order of updates, additions,
    /// resolutions in flight and forgotten containers (containers sharing inodes, entries
    /// repeated in one set).
    #[test]
    fn the_changes_keep_the_kernel_map_the_union_of_the_sets() {
        use proptest::prelude::*;
        let bits = prop::sample::select(vec![access::READ, access::WRITE, access::READ | access::WRITE, access::DIR]);
        let entry = (0u64..6, bits).prop_map(|(ino, b)| e(ino, 40, b));
        // (what, container, entries): 0 update, 1 add, 2 begin, 3 forget, 4 unresolved.
        let op = (0u8..5, 0usize..3, prop::collection::vec(entry, 0..5));
        proptest!(ProptestConfig::with_cases(2048), |(ops in prop::collection::vec(op, 1..40))| {
            let mut s = SensitiveSet::new(vec![p("/etc/shadow")]);
            let mut map: HashMap<u64, u32> = HashMap::new();
            for (what, c, entries) in ops {
                let id = ["a", "b", "c"][c];
                let changes = match what {
                    0 => s.update(id, entries),
                    1 => entries.into_iter().flat_map(|x| s.add(id, x)).collect(),
                    2 => { s.begin(id); Vec::new() }
                    3 => s.forget(id),
                    _ => { s.unresolved(id); Vec::new() }
                };
                for (ino, b) in changes {
                    match b {
                        Some(b) => map.insert(ino, b),
                        None => map.remove(&ino),
                    };
                }
                let mut union: HashMap<u64, u32> = HashMap::new();
                for x in s.by_container.values().flatten() {
                    *union.entry(x.ino).or_default() |= x.bits;
                }
                union.retain(|_, b| *b != 0);
                prop_assert_eq!(&map, &union);
                prop_assert_eq!(&s.kernel, &union);
            }
        });
    }

    /// A file created while the container's resolution read the disk (its start: an image's
    /// entrypoint writing /etc/ld.so.preload) joins the set by `add`; the resolution's older
    /// entries do not take it out again.
    #[test]
    fn what_is_added_while_a_resolution_runs_survives_its_update() {
        let mut s = SensitiveSet::new(vec![p("/etc/shadow")]);
        s.update("a", vec![e(10, 40, access::READ)]);
        s.begin("a");
        assert_eq!(s.add("a", e(11, 40, access::READ)), vec![(11, Some(access::READ))]);
        // The resolution read the disk before 11 was made.
        let changes = s.update("a", vec![e(10, 40, access::READ)]);
        assert!(changes.is_empty(), "11 stays in the map: {changes:?}");
        assert!(s.find("a", 11, 40, true, |_| true).is_some());
        // Without a resolution in flight, an update is the whole truth (a file since removed
        // leaves the set), and one that added nothing keeps nothing extra.
        assert_eq!(s.update("a", vec![e(10, 40, access::READ)]), vec![(11, None)]);
        s.begin("a");
        assert!(s.update("a", vec![e(10, 40, access::READ)]).is_empty());
        assert!(s.find("a", 11, 40, true, |_| true).is_none());
    }

    #[test]
    fn a_match_is_the_containers_own_or_a_shared_layers() {
        let mut s = SensitiveSet::new(vec![p("/etc/shadow")]);
        s.update("a", vec![e(10, 40, access::READ | access::WRITE)]);
        let read = |e: &Entry| e.bits & access::READ != 0;
        assert!(s.find("a", 10, 40, true, read).is_some());
        // Container b of the same image: another overlay, the same inode number.
        assert!(s.find("b", 10, 41, true, read).is_some());
        // Not on an overlay: the same number on another filesystem is another file.
        assert!(s.find("b", 10, 41, false, read).is_none());
        assert!(s.find("a", 10, 40, true, |e| e.bits & access::DIR != 0).is_none(), "a file entry is no directory");
    }

    /// openat2's `RESOLVE_IN_ROOT`: the name starts from its directory as from a root, so
    /// `/shadow` and `../../shadow` from `/etc` are `/etc/shadow`, and so is an absolute
    /// symlink's target; read from the container's root they name nothing.
    #[test]
    fn a_name_resolved_in_its_directory_as_root_is_found_there() {
        let dir = std::env::temp_dir().join(format!("dl-in-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/shadow"), "root:*:1::::::\n").unwrap();
        std::os::unix::fs::symlink("/shadow", dir.join("etc/link")).unwrap();
        let pats = vec![p("/etc/shadow")];
        let mut set = SensitiveSet::new(pats.clone());
        set.update("c", resolve(&dir, &pats).unwrap());
        let root = Root::open([dir.clone()]).unwrap();
        for name in ["/shadow", "../../shadow", "shadow", "/link"] {
            let l = locate_in_root(&root, "c", Some("/etc"), name, true, access::READ, &set)
                .unwrap_or_else(|| panic!("{name} from /etc as root"));
            assert_eq!((l.how, l.entry.as_deref()), ("file", Some("/etc/shadow")), "{name}");
            // The path is the name's (the entry says which file it leads to).
            let leaf = name.rsplit('/').next().unwrap_or(name);
            assert!(l.path.ends_with(&format!("/etc/{leaf}")), "{name}: {l:?}");
        }
        assert_eq!(locate(&root, "c", Some("/etc"), "/shadow", true, access::READ, &set), None);
        assert_eq!(locate_in_root(&root, "c", None, "/shadow", true, access::READ, &set), None, "no directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolves_inside_a_root_without_leaving_it() {
        let dir = std::env::temp_dir().join(format!("dl-sensitive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/sudoers.d/deep")).unwrap();
        std::fs::create_dir_all(dir.join("home/alice/.ssh")).unwrap();
        std::fs::create_dir_all(dir.join("run/secrets")).unwrap();
        std::fs::create_dir_all(dir.join("var")).unwrap();
        std::fs::write(dir.join("etc/shadow"), "root:*:1::::::\n").unwrap();
        // A symlink that leaves the root resolves inside it: /var/run -> /run, not the host's.
        std::os::unix::fs::symlink("/run", dir.join("var/run")).unwrap();
        let pats: Vec<Pattern> =
            ["/etc/shadow", "/etc/sudoers.d/", "/home/*/.ssh/", "/var/run/secrets/", "/root/.ssh/"]
                .iter()
                .map(|s| p(s))
                .collect();
        let got = resolve(&dir, &pats).unwrap();
        let ino = |rel: &str| std::fs::metadata(dir.join(rel)).unwrap().ino();
        let has = |rel: &str, bits: u32| got.iter().any(|e| e.ino == ino(rel) && e.bits & bits == bits);
        assert!(has("etc/shadow", access::READ | access::WRITE));
        assert!(has("etc", access::PARENT));
        assert!(has("etc/sudoers.d", access::DIR) && has("etc/sudoers.d/deep", access::DIR));
        assert!(has("home/alice/.ssh", access::DIR));
        assert!(has("run/secrets", access::DIR), "{got:?}");
        // /root/.ssh/ does not exist: / is where it may be made. (No /root either: nothing.)
        assert!(!got.iter().any(|e| e.path.starts_with("/root")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
