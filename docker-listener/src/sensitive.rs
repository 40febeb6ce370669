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
//!
//! The map is shared by every container, and a container's root can make files and directories
//! where sensitive ones are: what one container puts in it is bounded, so that it cannot fill
//! the map and blind the others.
//!
//! - Below one sensitive directory, `SUBDIR_MAX` directories at most (itself included),
//!   shallowest first; a wildcard component takes `SUBDIR_MAX` names at most. What a resolution
//!   left out (`Cut`) is logged, at most once per container root per `REFRESH`.
//! - A container holds `CONTAINER_MAX` entries at most. Its resolved set is kept in this order:
//!   the entries of the fixed files (`/etc/shadow`, `/etc/sudoers`: no `*`, no `/` at the end)
//!   and their parent directories first, then every other configured entry in turn, each
//!   taking its next entry, shallowest first (so a tree made under `/home/*/.ssh/` does not
//!   push `/run/secrets/` out), files created meanwhile last. A file created later (`add`) is
//!   taken while there is room, the last `FIXED_RESERVE` places being kept for the fixed
//!   files; nothing already in a set is displaced, the container's nor another's. What is left
//!   out is counted (`left_out`) and logged once per container per refresh: those files are
//!   not watched by inode until a refresh takes them.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use docker_listener_common::family::file::access;

/// Directory levels below a sensitive directory whose files are matched (`/var/run/secrets/`
/// holds `kubernetes.io/serviceaccount/token`).
pub const SUBDIR_DEPTH: usize = 3;
/// Directories taken from one sensitive directory (itself included), at most; also the names
/// a wildcard component takes (`/home/*`).
pub const SUBDIR_MAX: usize = 64;
/// Entries read from one directory listing, at most (whatever their type or name).
const LIST_MAX: usize = 4096;
/// How often each container's set is made again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// `REFRESH`, or in test builds `DL_TEST_SENSITIVE_REFRESH_SECS` (a test sees a refresh without
/// waiting a minute).
pub fn refresh_period() -> Duration {
    let for_tests = cfg!(debug_assertions)
        .then(|| std::env::var("DL_TEST_SENSITIVE_REFRESH_SECS").ok()?.parse().ok())
        .flatten()
        .map(Duration::from_secs);
    for_tests.unwrap_or(REFRESH)
}
/// Inodes the kernel's map holds (its `max_entries`).
pub const MAP_MAX: usize = 16384;
/// Entries one container's set holds, at most: a sixteenth of the map. The default entries
/// make some tens of entries in a usual container (its fixed files and their directories, the
/// sensitive directories and the few below them), a few hundred with many home directories; a
/// thousand leaves room for those and for files created since the last refresh, while a
/// container that creates files where sensitive ones belong (`touch /etc/cron{1..20000}`) or
/// makes directory trees below sensitive ones takes a sixteenth of the map at most: sixteen
/// such containers would be needed to fill it.
pub const CONTAINER_MAX: usize = 1024;
/// Of a container's `CONTAINER_MAX` places, those only the fixed files' entries (and their
/// directories') may take: a fixed file created after its set was made (`/etc/ld.so.preload`)
/// still joins a set that created files filled.
pub const FIXED_RESERVE: usize = 64;

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
pub const PSEUDO: [(&str, &str); 8] = [
    ("mem", "/proc/*/mem"),
    ("core_pattern", "/proc/sys/kernel/core_pattern"),
    ("sysrq-trigger", "/proc/sysrq-trigger"),
    ("release_agent", "/sys/fs/cgroup/*/release_agent"),
    ("notify_on_release", "/sys/fs/cgroup/*/notify_on_release"),
    ("modprobe", "/proc/sys/kernel/modprobe"),
    ("uevent_helper", "/sys/kernel/uevent_helper"),
    ("register", "/proc/sys/fs/binfmt_misc/register"),
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
    /// A fixed file: no wildcard, not a directory (`/etc/shadow`, `/etc/sudoers`).
    pub fn is_fixed(&self) -> bool {
        !self.dir && !self.components.iter().any(|c| c.contains('*'))
    }

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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// What a resolution left out, its bounds reached.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Directories below a sensitive directory not taken (`SUBDIR_MAX` reached), at least.
    pub dirs: usize,
    /// Directories taken whose own directories were not all looked at (`SUBDIR_MAX` reached,
    /// or a listing stopped at `LIST_MAX` entries), and directories a wildcard's names were
    /// looked for in that were not all listed (`/etc` with more than `LIST_MAX` entries: a
    /// `cron.d` past them is not in the set).
    pub unlisted: usize,
    /// Names a wildcard component matched beyond the `SUBDIR_MAX` taken (`/etc/cron*`).
    pub matches: usize,
}

impl Cut {
    pub fn is_empty(&self) -> bool {
        *self == Cut::default()
    }
}

/// Resolves the entries inside the filesystem whose root is `root` (`/proc/<pid>/root`); what
/// its bounds left out is logged (`resolve_with_cut`).
pub fn resolve(root: &Path, patterns: &[Pattern]) -> std::io::Result<Vec<Entry>> {
    let (out, cut, id) = resolve_inner(root, patterns)?;
    if !cut.is_empty() && first_cut_in_refresh(id) {
        tracing::warn!(
            root = %root.display(),
            dirs_left_out = cut.dirs,
            dirs_not_listed = cut.unlisted,
            matches_left_out = cut.matches,
            max = SUBDIR_MAX,
            "a container has more directories below its sensitive directories (or more names matching \
             a wildcard entry) than are taken: those left out are not watched (a file opened or created \
             in one is not reported; a change by name, rename, unlink or chmod, still is by its path); \
             many directories where sensitive files are is itself suspicious (logged once per {}s)",
            REFRESH.as_secs()
        );
    }
    Ok(out)
}

/// `resolve`, with what its bounds left out, unlogged.
pub fn resolve_with_cut(root: &Path, patterns: &[Pattern]) -> std::io::Result<(Vec<Entry>, Cut)> {
    resolve_inner(root, patterns).map(|(out, cut, _)| (out, cut))
}

/// `resolve_with_cut`, with the root directory's (inode, st_dev).
fn resolve_inner(root: &Path, patterns: &[Pattern]) -> std::io::Result<(Vec<Entry>, Cut, (u64, u64))> {
    let root = open_path(None, root.as_os_str().as_encoded_bytes(), libc::O_DIRECTORY)?;
    let root_id = fstat(&root).map_or((0, 0), |(ino, dev, _)| (ino, dev));
    let mut out = Vec::new();
    let mut cut = Cut::default();
    for (i, p) in patterns.iter().enumerate() {
        let mut found = Vec::new();
        expand(&root, String::new(), &p.components, &mut found, &mut cut);
        for path in found {
            let Ok(fd) = open_path(Some(&root), path.as_bytes(), 0) else { continue };
            let Ok(meta) = fstat(&fd) else { continue };
            let parent_path = path.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
            if let Ok(pfd) = open_path(Some(&root), parent_path.as_bytes(), libc::O_DIRECTORY)
                && let Ok(pm) = fstat(&pfd)
            {
                out.push(entry(pm, access::PARENT | p.access, i, parent_path));
            }
            if meta.2 == libc::S_IFDIR {
                walk(&root, &path, i, p.access, &mut out, &mut cut);
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
    Ok((out, cut, root_id))
}

/// The sensitive directory `top` (pattern `i`) and the directories below it, to `SUBDIR_DEPTH`
/// levels, `SUBDIR_MAX` in all, shallowest first: each is an entry. A directory is listed only
/// while the bound is not reached, and only the names the listing says are directories are
/// opened (to check they are, without following a symlink): a tree of any size costs
/// `SUBDIR_MAX` listings and about as many opens.
fn walk(root: &OwnedFd, top: &str, i: usize, acc: u32, out: &mut Vec<Entry>, cut: &mut Cut) {
    let mut dirs = VecDeque::from([(top.to_owned(), 0usize)]);
    let mut queued = 1;
    while let Some((d, depth)) = dirs.pop_front() {
        let Ok(dfd) = open_path(Some(root), d.as_bytes(), libc::O_DIRECTORY) else { continue };
        let Ok(dm) = fstat(&dfd) else { continue };
        out.push(entry(dm, access::DIR | acc, i, &d));
        if depth >= SUBDIR_DEPTH {
            continue;
        }
        if queued >= SUBDIR_MAX {
            cut.unlisted += 1;
            continue;
        }
        let (names, whole) = listing(&dfd, maybe_dir);
        if !whole {
            cut.unlisted += 1;
        }
        for name in names {
            if queued >= SUBDIR_MAX {
                cut.dirs += 1;
                continue;
            }
            let child = format!("{d}/{name}");
            if let Ok(cfd) = open_path(Some(root), child.as_bytes(), libc::O_DIRECTORY | libc::O_NOFOLLOW)
                && fstat(&cfd).is_ok_and(|(_, _, kind)| kind == libc::S_IFDIR)
            {
                dirs.push_back((child, depth + 1));
                queued += 1;
            }
        }
    }
}

/// An entry of the file `fstat` described.
fn entry((ino, dev, _): (u64, u64, u32), bits: u32, pattern: usize, path: &str) -> Entry {
    Entry { ino, dev: kernel_dev(dev), bits, pattern, path: path.to_owned() }
}

/// The paths (from the root, "/a/b") the components name, wildcards expanded.
/// A wildcard component takes `SUBDIR_MAX` names at most (by name), the others are counted.
fn expand(root: &OwnedFd, prefix: String, rest: &[String], out: &mut Vec<String>, cut: &mut Cut) {
    let Some((first, rest)) = rest.split_first() else {
        out.push(prefix);
        return;
    };
    if !first.contains('*') {
        expand(root, format!("{prefix}/{first}"), rest, out, cut);
        return;
    }
    let dir = if prefix.is_empty() { "/".to_owned() } else { prefix.clone() };
    let Ok(dfd) = open_path(Some(root), dir.as_bytes(), libc::O_DIRECTORY) else { return };
    let (names, whole) = listing(&dfd, |_| true);
    if !whole {
        // Names past the bound may match: said, as a directory not all looked at.
        cut.unlisted += 1;
    }
    let names: Vec<String> = names.into_iter().filter(|n| glob(first, n)).collect();
    cut.matches += names.len().saturating_sub(SUBDIR_MAX);
    for n in names.into_iter().take(SUBDIR_MAX) {
        expand(root, format!("{prefix}/{n}"), rest, out, cut);
    }
}

/// Opens `path` (inside `root` when given, resolved as if `root` were `/`) for reading its
/// metadata or listing it.
fn open_path(root: Option<&OwnedFd>, path: &[u8], flags: i32) -> std::io::Result<OwnedFd> {
    open_path_resolving(root, path, flags, 0)
}

/// `open_path`, with openat2's `resolve` flags `extra` too (inside `root` only).
fn open_path_resolving(root: Option<&OwnedFd>, path: &[u8], flags: i32, extra: u64) -> std::io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mode = if flags & libc::O_DIRECTORY != 0 { libc::O_RDONLY } else { libc::O_PATH };
    // struct open_how { u64 flags; u64 mode; u64 resolve; } (libc's is non-exhaustive).
    let how: [u64; 3] = [
        (mode | flags | libc::O_CLOEXEC) as u64,
        0,
        if root.is_some() { libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | extra } else { 0 },
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

/// (inode, st_dev, file type: `st_mode & S_IFMT`) of an open file (fstat works on O_PATH
/// descriptors, and describes a symlink opened with O_NOFOLLOW, not its target).
fn fstat(fd: &OwnedFd) -> std::io::Result<(u64, u64, u32)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: a valid descriptor and a buffer of the right type.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstat filled it.
    let st = unsafe { st.assume_init() };
    Ok((st.st_ino, st.st_dev, st.st_mode & libc::S_IFMT))
}

/// The socket file a container's process bound by the absolute `name`, in its root (`root`:
/// `/proc/<pid>/root`): (inode, the kernel's dev_t). Found inside that root (its symlinks
/// resolved there: `/var/run` is often one to `/run`), crossing no mount, and not through a
/// symlink as its last component: a host socket mounted in, or a symlink to one put where the
/// container's own socket was, is never taken for a socket the container made. (A listener on
/// a volume or a tmpfs of the container's is not found this way.)
pub fn own_socket_file(root: &Path, name: &str) -> Option<(u64, u32)> {
    let root = open_path(None, root.as_os_str().as_encoded_bytes(), libc::O_DIRECTORY).ok()?;
    let strict = libc::RESOLVE_NO_XDEV;
    let fd = open_path_resolving(Some(&root), name.as_bytes(), libc::O_NOFOLLOW, strict).ok()?;
    let (ino, dev, kind) = fstat(&fd).ok()?;
    (kind == libc::S_IFSOCK).then(|| (ino, kernel_dev(dev)))
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

/// Whether a path component is a process or thread id, as procfs names its directories.
pub fn is_pid(c: &str) -> bool {
    !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())
}

/// A path through a process's root in the container's procfs (`/proc/self/root/etc/passwd`,
/// `/proc/1/root/...`, `/proc/thread-self/root`, `/proc/<pid>/task/<tid>/root`, as often as
/// it is repeated): the path below that root, the container's (the caller's own, or another
/// of its processes'), which the daemon could not reach through those magic links in the
/// container's procfs (`RESOLVE_NO_MAGICLINKS`). Other paths as they are.
pub fn below_proc_root(path: &str) -> std::borrow::Cow<'_, str> {
    let mut parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut changed = false;
    loop {
        let skip = match parts.as_slice() {
            ["proc", "self" | "thread-self", "root", ..] => 3,
            ["proc", p, "root", ..] if is_pid(p) => 3,
            ["proc", p, "task", t, "root", ..] if is_pid(p) && is_pid(t) => 5,
            _ => break,
        };
        parts.drain(..skip);
        changed = true;
    }
    if changed && path.starts_with('/') {
        std::borrow::Cow::Owned(format!("/{}", parts.join("/")))
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// A name as written, relative names from `base`, with `.`, `..` and repeated slashes applied
/// (symlinks are not: nothing is resolved), through a process's root in procfs too
/// (`below_proc_root`).
pub fn lexical(base: Option<&str>, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let full = if name.starts_with('/') { name.to_owned() } else { format!("{}/{name}", base?) };
    let full = below_proc_root(&full);
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
    // Through a process's root in procfs: the container's root (`below_proc_root`).
    locate_from(root, &root.0, id, &below_proc_root(&full), follow, want, set)
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

/// A directory's listing, read through its descriptor (`/proc/self/fd/N`): the names of those
/// of its first `LIST_MAX` entries that `keep` keeps, in name order; and whether those were all
/// of them. The bound counts every entry read, whatever `keep` says of it and whatever its name
/// (a name that is not UTF-8 is counted and left out), so that a directory of any size costs
/// `LIST_MAX` entries at most. A listing that fails part-way ends there, not whole; a directory
/// that cannot be listed at all has no names (and is whole: nothing of it is there to miss).
fn listing(fd: &OwnedFd, keep: impl Fn(&std::fs::DirEntry) -> bool) -> (Vec<String>, bool) {
    let Ok(rd) = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { return (Vec::new(), true) };
    let mut names = Vec::new();
    let mut whole = true;
    for (i, e) in rd.enumerate() {
        // An entry past the bound, or an error reading on: not all of it was looked at.
        let Ok(e) = e else {
            whole = false;
            break;
        };
        if i == LIST_MAX {
            whole = false;
            break;
        }
        if keep(&e)
            && let Ok(n) = e.file_name().into_string()
        {
            names.push(n);
        }
    }
    names.sort();
    (names, whole)
}

/// Whether an entry of a listing may be a directory (`listing`): by the type the listing gives
/// (a symlink is not; one whose type it does not give is kept).
fn maybe_dir(e: &std::fs::DirEntry) -> bool {
    !matches!(e.file_type(), Ok(t) if !t.is_dir())
}

/// Whether a resolution of the container whose root directory is `id` (inode, st_dev) that
/// left something out is the first in `REFRESH` to: its log says so once per refresh, however
/// many resolutions changes by name ask for.
fn first_cut_in_refresh(id: (u64, u64)) -> bool {
    static SAID: Mutex<Vec<((u64, u64), Instant)>> = Mutex::new(Vec::new());
    let now = Instant::now();
    let mut said = SAID.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    said.retain(|(_, at)| now.duration_since(*at) < REFRESH);
    if said.iter().any(|(r, _)| *r == id) {
        return false;
    }
    said.push((id, now));
    true
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
    /// Every process of the container is in another root than the container's own (the root
    /// filesystem Docker made for it, else the one its set was first resolved in,
    /// `SensitiveSet::root_of`, or none yet that can be a container's): one changed its root (a
    /// `chroot` into a decoy tree). The set is kept as it was.
    RootMoved,
}

/// The entries a set may hold when it takes one of `class` (`SensitiveSet::class`).
fn room(class: u8) -> usize {
    if class == 0 { CONTAINER_MAX } else { CONTAINER_MAX - FIXED_RESERVE }
}

/// One container's set.
#[derive(Debug, Default)]
struct Held {
    /// `CONTAINER_MAX` at most, each once.
    entries: Vec<Entry>,
    /// The same, to find one at once.
    index: HashSet<Entry>,
    /// That some were left out (`CONTAINER_MAX`) since the last refresh was logged.
    said: bool,
}

impl Held {
    /// Takes `e` if it is not there and there is room for it (`class`: `SensitiveSet::class`);
    /// whether it was taken, and if not, whether for want of room.
    fn take(&mut self, e: Entry, class: u8) -> Result<(), bool> {
        if self.index.contains(&e) {
            return Err(false);
        }
        if self.entries.len() >= room(class) {
            return Err(true);
        }
        self.index.insert(e.clone());
        self.entries.push(e);
        Ok(())
    }
}

/// Every container's set, and what the kernel's map holds.
#[derive(Debug, Default)]
pub struct SensitiveSet {
    pub patterns: Vec<Pattern>,
    by_container: HashMap<String, Held>,
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
    /// Entries left out of their container's set for want of room (`CONTAINER_MAX`), since the
    /// start.
    left_out: u64,
    /// The root each container's set was first resolved in (its directory's inode and device):
    /// later resolutions are made in that root only, so that a process of the container that
    /// changes its root (its first process `chroot`ing into a decoy tree, whose `etc/shadow` is
    /// another file) cannot swap the container's set for the decoy's. Forgotten with the set,
    /// and at the container's start (a new run mounts its root again).
    roots: HashMap<String, (u64, u32)>,
    /// Containers whose processes all left their root, said once (`RootMoved`).
    moved_said: std::collections::HashSet<String>,
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
    /// is not lost); the map changes that makes. `CONTAINER_MAX` of them at most, in the order
    /// the module says (`rank`); those left out are counted and logged.
    pub fn update(&mut self, id: &str, entries: Vec<Entry>) -> Vec<MapChange> {
        let added = self.added_during.remove(id).unwrap_or_default();
        let (held, left_out) = self.rank(entries, added);
        if left_out > 0 {
            self.left_out += left_out as u64;
            tracing::warn!(
                container = %id,
                left_out,
                max = CONTAINER_MAX,
                "a container's sensitive files and directories are more than a container's share of the \
                 kernel's map: those left out (the deepest directories, the files created last) are not \
                 watched by inode until a refresh takes them (an open of one is reported only if its \
                 directory is watched; creations where sensitive files belong and changes by name still \
                 are by their path); its fixed files and the other containers' are kept; many files or \
                 directories where sensitive ones belong is itself suspicious (logged once per refresh)"
            );
        }
        self.resolved.insert(id.to_owned());
        let old = self.by_container.insert(id.to_owned(), held);
        if old.is_none() {
            self.arrivals += 1;
        }
        let old = old.map(|h| h.entries).unwrap_or_default();
        release(&mut self.holders, &old);
        let new = &self.by_container[id].entries;
        hold(&mut self.holders, new);
        let mut touched: Vec<u64> = old.iter().map(|e| e.ino).collect();
        touched.extend(new.iter().map(|e| e.ino));
        self.recompute(touched)
    }

    /// 0 for the entries of a fixed file (`Pattern::is_fixed`: the file and its directory),
    /// which the last `FIXED_RESERVE` places of a set are kept for; 1 for the others.
    fn class(&self, e: &Entry) -> u8 {
        u8::from(!self.patterns.get(e.pattern).is_some_and(Pattern::is_fixed))
    }

    /// A container's set of `resolved` and `added` (entries once each), `CONTAINER_MAX` at
    /// most, and how many were left out. Those resolved first, then those added (however many
    /// files were created meanwhile, the resolution's entries stay); in each, the fixed files'
    /// entries first, then each configured entry's in turn (its first, then every entry's
    /// second...), each entry's shallowest first.
    fn rank(&self, resolved: Vec<Entry>, added: Vec<Entry>) -> (Held, usize) {
        let mut seen = HashSet::new();
        let all: Vec<(Entry, bool)> = resolved
            .into_iter()
            .map(|e| (e, false))
            .chain(added.into_iter().map(|e| (e, true)))
            .filter(|(e, _)| seen.insert(e.clone()))
            .collect();
        // Depth below the configured entry's own (its parent directories: 0).
        let depth = |e: &Entry| {
            let own = self.patterns.get(e.pattern).map_or(0, |p| p.components.len());
            e.path.split('/').filter(|c| !c.is_empty()).count().saturating_sub(own)
        };
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&k| (all[k].0.pattern, all[k].1, depth(&all[k].0), k));
        // Each entry's place among its configured entry's.
        let mut turn = vec![0usize; all.len()];
        let mut last = None;
        let mut n = 0;
        for &k in &order {
            if last != Some(all[k].0.pattern) {
                (last, n) = (Some(all[k].0.pattern), 0);
            }
            turn[k] = n;
            n += 1;
        }
        order.sort_by_key(|&k| (all[k].1, self.class(&all[k].0), turn[k], all[k].0.pattern, k));
        // Taken in that order; kept in the resolution's (the first configured entry naming an
        // inode is the one `find` gives, as before).
        let mut keep = vec![false; all.len()];
        let mut taken = 0;
        for k in order {
            if taken < room(self.class(&all[k].0)) {
                keep[k] = true;
                taken += 1;
            }
        }
        let left_out = all.len() - taken;
        let mut held = Held::default();
        for ((e, _), _) in all.into_iter().zip(keep).filter(|(_, keep)| *keep) {
            held.index.insert(e.clone());
            held.entries.push(e);
        }
        held.said = left_out > 0;
        (held, left_out)
    }

    /// Adds one inode to a container's set (a sensitive file created since it was made), if
    /// there is room (`CONTAINER_MAX`, `FIXED_RESERVE`): nothing in the set is displaced. One
    /// left out is counted, and logged once per container until its next refresh.
    pub fn add(&mut self, id: &str, e: Entry) -> Vec<MapChange> {
        let ino = e.ino;
        let class = self.class(&e);
        let held = match self.by_container.entry(id.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.arrivals += 1;
                v.insert(Held::default())
            }
        };
        match held.take(e.clone(), class) {
            Ok(()) => {}
            Err(false) => return Vec::new(),
            Err(true) => {
                self.left_out += 1;
                if !held.said {
                    held.said = true;
                    tracing::warn!(
                        container = %id,
                        path = %e.path,
                        max = CONTAINER_MAX,
                        "a container has created more sensitive files than its share of the kernel's map \
                         holds: this one and those created after it are not watched by inode until the \
                         next refresh (an open of one is reported only if its directory is watched; \
                         creations where sensitive files belong and changes by name still are by their \
                         path); its fixed files and the other containers' are kept; so many files created \
                         where sensitive ones belong is itself suspicious (logged once per refresh)"
                    );
                }
                return Vec::new();
            }
        }
        if let Some(during) = self.added_during.get_mut(id) {
            during.push(e.clone());
        }
        hold(&mut self.holders, std::slice::from_ref(&e));
        self.recompute(vec![ino])
    }

    /// A resolution of a container's files ended without a result (its processes' roots could
    /// not be read for a moment): its last set stays, with what was added meanwhile, until the
    /// next resolution; forgetting it would leave its files unwatched until then.
    pub fn unresolved(&mut self, id: &str) {
        self.added_during.remove(id);
    }

    /// The root the container's set was first resolved in, if it was.
    pub fn root_of(&self, id: &str) -> Option<(u64, u32)> {
        self.roots.get(id).copied()
    }

    /// Keeps `root` as the one a resolved container's sets are made in, unless one is kept.
    pub fn keep_root(&mut self, id: &str, root: (u64, u32)) {
        if self.resolved.contains(id) {
            self.roots.entry(id.to_owned()).or_insert(root);
        }
    }

    /// Keeps `root`, the root filesystem Docker made for the container, as the one its sets are
    /// made in, in place of one kept before (a decoy's, resolved before the inspection answered).
    pub fn set_root(&mut self, id: &str, root: (u64, u32)) {
        if self.resolved.contains(id) {
            self.roots.insert(id.to_owned(), root);
        }
    }

    /// The container started (again): its next resolution is made in its new root.
    pub fn started(&mut self, id: &str) {
        self.roots.remove(id);
        self.moved_said.remove(id);
    }

    /// Every process of the container left the root its set was resolved in: the set is kept;
    /// the first time, said.
    pub fn root_moved(&mut self, id: &str) {
        self.added_during.remove(id);
        if self.moved_said.insert(id.to_owned()) {
            tracing::warn!(
                container = %id,
                "every process of this container is in another root than the container's own (a chroot): its \
                 sensitive files are kept as they were found in its own root, if they were, and the files of \
                 the new root are not watched by inode. A container's process escaping the file watch that way \
                 is suspicious"
            );
        }
    }

    /// Forgets a container (gone or ignored).
    pub fn forget(&mut self, id: &str) -> Vec<MapChange> {
        self.added_during.remove(id);
        self.resolved.remove(id);
        self.roots.remove(id);
        self.moved_said.remove(id);
        let old = self.by_container.remove(id).map(|h| h.entries).unwrap_or_default();
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

    /// Entries left out of their container's set for want of room (`CONTAINER_MAX`) since the
    /// start (a refresh that leaves out the same ones again counts them again).
    pub fn left_out(&self) -> u64 {
        self.left_out
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
        let own = self.by_container.get(id).and_then(|h| h.entries.iter().filter(ok).find(|e| e.dev == dev));
        own.or_else(|| if overlay { self.by_container.values().flat_map(|h| &h.entries).find(ok) } else { None })
    }

    /// The configured entry a path (as the kernel walked it) is, or is below.
    pub fn pattern_of(&self, path: &str, want: u32) -> Option<usize> {
        self.patterns.iter().position(|p| p.access & want != 0 && p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    /// Every pseudo-file the kernel matches by name has the entry events name it by.
    #[test]
    fn every_pseudo_file_of_the_kernel_has_its_entry() {
        use docker_listener_common::family::file::pseudo::FILES;
        assert_eq!(FILES.len(), super::PSEUDO.len());
        for (_, name, _) in FILES {
            let name = std::str::from_utf8(&name[..name.len() - 1]).unwrap();
            assert!(super::PSEUDO.iter().any(|(n, _)| *n == name), "{name}");
        }
    }
    #[test]
    fn a_path_through_a_process_s_root_in_procfs_is_the_path_below_it() {
        for (path, want) in [
            ("/proc/self/root/etc/passwd", "/etc/passwd"),
            ("/proc/1/root/etc/ld.so.preload", "/etc/ld.so.preload"),
            ("/proc/thread-self/root//etc/./shadow", "/etc/shadow"),
            ("/proc/7/task/9/root/etc/cron.d/x", "/etc/cron.d/x"),
            ("/proc/self/root/proc/1/root/etc/shadow", "/etc/shadow"),
            ("//proc/self/root/etc/passwd", "/etc/passwd"),
            ("/proc/self/root", "/"),
            ("/proc/self/cwd/etc/passwd", "/proc/self/cwd/etc/passwd"),
            ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/core_pattern"),
            ("/etc/passwd", "/etc/passwd"),
            ("proc/self/root/etc/passwd", "proc/self/root/etc/passwd"),
        ] {
            assert_eq!(super::below_proc_root(path), want, "{path}");
        }
        assert_eq!(super::lexical(None, "/proc/self/root/etc/../etc/shadow").as_deref(), Some("/etc/shadow"));
        assert_eq!(super::lexical(Some("/"), "proc/1/root/etc/shadow").as_deref(), Some("/etc/shadow"));
    }
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A socket a container made is found by its name in its root, its directories' symlinks
    /// resolved there; a symlink to a socket, a file of another kind are not.
    #[test]
    fn a_socket_file_is_found_in_its_root_and_not_as_a_symlink() {
        let dir = std::env::temp_dir().join(format!("dl-own-sock-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(dir.join("run/own.sock")).unwrap();
        let meta = std::fs::metadata(dir.join("run/own.sock")).unwrap();
        let want = Some((meta.ino(), kernel_dev(meta.dev())));
        assert_eq!(own_socket_file(&dir, "/run/own.sock"), want);
        assert_eq!(own_socket_file(&dir, "/run/../run/own.sock"), want, "inside the root");
        std::os::unix::fs::symlink("/run/own.sock", dir.join("link.sock")).unwrap();
        assert_eq!(own_socket_file(&dir, "/link.sock"), None, "a symlink, even to its own socket");
        std::os::unix::fs::symlink("/run", dir.join("varrun")).unwrap();
        assert_eq!(own_socket_file(&dir, "/varrun/own.sock"), want, "an absolute symlink, in the root");
        std::os::unix::fs::symlink("/../../../../run", dir.join("up")).unwrap();
        assert_eq!(own_socket_file(&dir, "/up/own.sock"), want, "no way out of the root");
        std::fs::write(dir.join("run/plain"), b"x").unwrap();
        assert_eq!(own_socket_file(&dir, "/run/plain"), None, "not a socket");
        assert_eq!(own_socket_file(&dir, "/nope"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

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

    /// The root a container's set was first resolved in is kept until the container starts
    /// again or is forgotten; a container not resolved keeps none. A resolution that found every
    /// process elsewhere keeps the set.
    #[test]
    fn the_first_root_is_kept_until_the_container_starts_again() {
        let mut s = SensitiveSet::new(vec![p("/etc/shadow")]);
        s.keep_root("a", (2, 40));
        assert_eq!(s.root_of("a"), None, "not resolved");
        s.update("a", vec![e(10, 40, access::READ)]);
        s.keep_root("a", (2, 40));
        s.keep_root("a", (3, 41));
        assert_eq!(s.root_of("a"), Some((2, 40)), "the first one");
        s.root_moved("a");
        assert_eq!(s.by_container["a"].entries, vec![e(10, 40, access::READ)], "the set kept");
        s.started("a");
        assert_eq!(s.root_of("a"), None, "a new run mounts its root again");
        s.keep_root("a", (3, 41));
        s.forget("a");
        assert_eq!(s.root_of("a"), None);
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
                for x in s.by_container.values().flat_map(|h| &h.entries) {
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

    /// `mkdir -p /root/.ssh/{1..100}/{1..100}`: the sensitive directory and `SUBDIR_MAX - 1`
    /// below it (the shallowest first) are entries, what is left out is counted, and the
    /// container's other entries are still resolved.
    #[test]
    fn a_tree_below_a_sensitive_directory_takes_at_most_its_bound() {
        let dir = std::env::temp_dir().join(format!("dl-sensitive-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for a in 0..100 {
            for b in 0..100 {
                std::fs::create_dir_all(dir.join(format!("root/.ssh/{a}/{b}"))).unwrap();
            }
            // Files are not directories: not opened, not counted.
            std::fs::write(dir.join(format!("root/.ssh/key{a}")), "").unwrap();
        }
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/shadow"), "root:*:1::::::\n").unwrap();
        let pats = vec![p("/root/.ssh/"), p("/etc/shadow")];
        let (got, cut) = resolve_with_cut(&dir, &pats).unwrap();
        let dirs: Vec<&Entry> = got.iter().filter(|e| e.bits & access::DIR != 0).collect();
        assert_eq!(dirs.len(), SUBDIR_MAX, "{cut:?}");
        assert!(dirs.iter().all(|e| e.pattern == 0 && e.path.starts_with("/root/.ssh")));
        assert!(dirs.iter().any(|e| e.path == "/root/.ssh"), "the sensitive directory itself");
        // Shallowest first: the first level fills the bound, nothing deeper is taken.
        assert!(dirs.iter().all(|e| e.path.matches('/').count() <= 3), "{dirs:?}");
        assert_eq!(cut.dirs, 100 - (SUBDIR_MAX - 1), "{cut:?}");
        assert_eq!(cut.unlisted, SUBDIR_MAX - 1, "the taken ones are not listed: {cut:?}");
        let shadow = std::fs::metadata(dir.join("etc/shadow")).unwrap().ino();
        assert!(got.iter().any(|e| e.ino == shadow && e.pattern == 1));
        assert!(got.len() <= SUBDIR_MAX + 4, "{}", got.len());
        // The same through the set: bounded, and the map too.
        let mut set = SensitiveSet::new(pats.clone());
        set.update("c", resolve(&dir, &pats).unwrap());
        assert!(set.len() <= SUBDIR_MAX + 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A wildcard takes `SUBDIR_MAX` names, counted beyond.
    #[test]
    fn a_wildcard_takes_at_most_its_bound_of_names() {
        let dir = std::env::temp_dir().join(format!("dl-sensitive-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        for n in 0..200 {
            std::fs::write(dir.join(format!("etc/cron{n}")), "").unwrap();
        }
        let (got, cut) = resolve_with_cut(&dir, &[p("write:/etc/cron*")]).unwrap();
        assert_eq!(got.iter().filter(|e| e.bits & access::PARENT == 0).count(), SUBDIR_MAX);
        assert_eq!(cut, Cut { matches: 200 - SUBDIR_MAX, ..Cut::default() });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A listing keeps what its filter keeps (a symlink to a directory is no directory), leaves
    /// out names that are not UTF-8, and reads `LIST_MAX` entries at most, those names counted.
    #[test]
    fn a_listing_reads_at_most_its_bound_whatever_its_entries() {
        use std::{ffi::OsStr, os::unix::ffi::OsStrExt};
        let dir = std::env::temp_dir().join(format!("dl-sensitive-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("small/d")).unwrap();
        std::fs::create_dir_all(dir.join("small/e")).unwrap();
        std::fs::create_dir_all(dir.join("small").join(OsStr::from_bytes(b"x\xff"))).unwrap();
        std::fs::write(dir.join("small/f"), "").unwrap();
        std::os::unix::fs::symlink("d", dir.join("small/l")).unwrap();
        let open = |rel: &str| open_path(None, dir.join(rel).as_os_str().as_bytes(), libc::O_DIRECTORY).unwrap();
        let small = open("small");
        assert_eq!(listing(&small, |_| true), (vec!["d".into(), "e".into(), "f".into(), "l".into()], true));
        assert_eq!(listing(&small, maybe_dir), (vec!["d".into(), "e".into()], true));
        // Not a directory: nothing to list, nothing left unread.
        let file = open_path(None, dir.join("small/f").as_os_str().as_bytes(), 0).unwrap();
        assert_eq!(listing(&file, |_| true), (Vec::new(), true));
        // `LIST_MAX` entries, 20 of them not UTF-8: all read, those 20 left out.
        std::fs::create_dir_all(dir.join("big")).unwrap();
        for n in 0..20u8 {
            std::fs::write(dir.join("big").join(OsStr::from_bytes(&[b'y', 0xff, b'a' + n])), "").unwrap();
        }
        for n in 0..LIST_MAX - 20 {
            std::fs::write(dir.join(format!("big/{n}")), "").unwrap();
        }
        let (names, whole) = listing(&open("big"), |_| true);
        assert_eq!((names.len(), whole), (LIST_MAX - 20, true));
        assert!(names.is_sorted());
        // One more: the listing stops at `LIST_MAX` entries, the one left unread any of them
        // (so 19 or 20 of those read are not UTF-8).
        std::fs::write(dir.join("big/last"), "").unwrap();
        let (names, whole) = listing(&open("big"), |_| true);
        assert!(!whole);
        assert!((LIST_MAX - 20..=LIST_MAX - 19).contains(&names.len()), "{}", names.len());
        assert_eq!(listing(&open("big"), maybe_dir), (Vec::new(), false), "files only");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn at(ino: u64, pattern: usize, bits: u32, path: &str) -> Entry {
        Entry { ino, dev: 40, bits, pattern, path: path.into() }
    }

    /// The default entries' patterns, and a container's usual set of them.
    fn defaults() -> (Vec<Pattern>, Vec<Entry>) {
        let pats: Vec<Pattern> = DEFAULT.iter().map(|s| p(s)).collect();
        let idx = |t: &str| pats.iter().position(|p| p.text == t).unwrap();
        let set = vec![
            at(1, idx("/etc/shadow"), access::READ | access::WRITE, "/etc/shadow"),
            at(2, idx("/etc/shadow"), access::PARENT | access::READ | access::WRITE, "/etc"),
            at(3, idx("/etc/sudoers"), access::READ | access::WRITE, "/etc/sudoers"),
            at(4, idx("/root/.ssh/"), access::DIR | access::READ | access::WRITE, "/root/.ssh"),
            at(5, idx("/root/.ssh/"), access::PARENT | access::READ | access::WRITE, "/root"),
            at(6, idx("/run/secrets/"), access::DIR | access::READ | access::WRITE, "/run/secrets"),
        ];
        (pats, set)
    }

    /// `touch /etc/cron{1..20000}` in one container: its set stops growing at its bound, its
    /// fixed files and directories stay, another container's set is untouched, what was left
    /// out is counted; a fixed file created then still joins (its reserve).
    #[test]
    fn a_container_creating_many_sensitive_files_takes_its_share_only() {
        let (pats, set) = defaults();
        let cron = pats.iter().position(|p| p.text == "/etc/cron*").unwrap();
        let preload = pats.iter().position(|p| p.text == "/etc/ld.so.preload").unwrap();
        let mut s = SensitiveSet::new(pats);
        s.update("a", set.clone());
        let other: Vec<Entry> = set.iter().map(|e| Entry { ino: e.ino + 1_000_000, dev: 41, ..e.clone() }).collect();
        s.update("b", other.clone());
        let before = s.len();
        let mut changes = 0;
        for n in 0..20_000u64 {
            changes += s.add("a", at(100 + n, cron, access::WRITE, &format!("/etc/cron{n}"))).len();
        }
        let held = &s.by_container["a"].entries;
        assert_eq!(held.len(), CONTAINER_MAX - FIXED_RESERVE);
        assert_eq!(changes, CONTAINER_MAX - FIXED_RESERVE - set.len());
        assert_eq!(s.len(), before + changes, "the map holds what the sets hold");
        assert_eq!(s.left_out(), (20_000 - changes) as u64);
        for e in &set {
            assert!(s.find("a", e.ino, 40, false, |x| x == e).is_some(), "{e:?} kept");
        }
        assert_eq!(s.by_container["b"].entries, other, "another container's set is untouched");
        for e in &other {
            assert!(s.find("b", e.ino, 41, false, |x| x == e).is_some());
        }
        // The reserve: /etc/ld.so.preload created now still joins, up to the bound.
        let made = at(50_000, preload, access::READ | access::WRITE, "/etc/ld.so.preload");
        assert_eq!(s.add("a", made.clone()), vec![(50_000, Some(access::READ | access::WRITE))]);
        for n in 0..100u64 {
            s.add("a", at(60_000 + n, preload, access::READ, "/etc/ld.so.preload"));
        }
        assert_eq!(s.by_container["a"].entries.len(), CONTAINER_MAX);
        assert!(s.find("a", 50_000, 40, false, |x| *x == made).is_some());
        // An entry already there is no new one, and a second container still gets its own.
        assert!(s.add("a", set[0].clone()).is_empty());
        assert_eq!(s.add("c", at(7, cron, access::WRITE, "/etc/crontab")), vec![(7, Some(access::WRITE))]);
    }

    /// Files created while the container's first resolution ran (`add` before `update`), as
    /// many as it allows, do not push the resolved set out: the resolution's entries are
    /// taken first, the created ones in the room left.
    #[test]
    fn the_resolved_set_comes_before_files_created_meanwhile() {
        let (pats, set) = defaults();
        let cron = pats.iter().position(|p| p.text == "/etc/cron*").unwrap();
        let preload = pats.iter().position(|p| p.text == "/etc/ld.so.preload").unwrap();
        let mut s = SensitiveSet::new(pats);
        s.begin("a");
        for n in 0..5_000u64 {
            s.add("a", at(100 + n, cron, access::WRITE, &format!("/etc/cron{n}")));
        }
        // A fixed file made again and again: the reserve fills, no more.
        for n in 0..500u64 {
            s.add("a", at(20_000 + n, preload, access::READ, "/etc/ld.so.preload"));
        }
        assert_eq!(s.by_container["a"].entries.len(), CONTAINER_MAX);
        s.update("a", set.clone());
        let held = &s.by_container["a"].entries;
        // The fixed files' places taken first, the others have the rest of theirs.
        assert_eq!(held.len(), CONTAINER_MAX - FIXED_RESERVE);
        for e in &set {
            assert!(held.contains(e), "{e:?} kept");
        }
        assert_eq!(held.iter().filter(|e| e.pattern == preload).count(), FIXED_RESERVE);
        assert_eq!(s.len(), held.len());
        assert_eq!(s.left_out(), (5_000 + 500 - (CONTAINER_MAX - FIXED_RESERVE) + set.len()) as u64);
    }

    /// A resolution making more entries than a container may have (a tree below each of 64
    /// home directories): the fixed files first, then every configured entry has its turn, so
    /// `/run/secrets/`'s directories below are not pushed out by the homes'.
    #[test]
    fn a_resolved_set_beyond_the_bound_keeps_every_entry_s_share() {
        let (pats, mut set) = defaults();
        let home = pats.iter().position(|p| p.text == "/home/*/.ssh/").unwrap();
        let secrets = pats.iter().position(|p| p.text == "/run/secrets/").unwrap();
        let mut homes = Vec::new();
        for h in 0..64u64 {
            for d in 0..64u64 {
                let path = if d == 0 { format!("/home/u{h}/.ssh") } else { format!("/home/u{h}/.ssh/d{d}") };
                homes.push(at(10_000 + h * 64 + d, home, access::DIR | access::READ, &path));
            }
        }
        let deep = at(9_999, secrets, access::DIR | access::READ, "/run/secrets/kubernetes.io/serviceaccount");
        // The fixed files last, as if their entries came after: the order does not matter.
        let fixed: Vec<Entry> = set.drain(..3).collect();
        let all: Vec<Entry> = set.iter().cloned().chain(homes).chain([deep.clone()]).chain(fixed.clone()).collect();
        let mut s = SensitiveSet::new(pats);
        s.update("a", all);
        let held = &s.by_container["a"].entries;
        assert_eq!(held.len(), CONTAINER_MAX - FIXED_RESERVE);
        for e in fixed.iter().chain(&set).chain([&deep]) {
            assert!(held.contains(e), "{e:?} kept");
        }
        // Every home's .ssh before any directory below one.
        assert!(held.iter().filter(|e| e.pattern == home && !e.path.contains("/d")).count() == 64);
        assert_eq!(s.left_out() as usize, 64 * 64 + 1 + 6 - (CONTAINER_MAX - FIXED_RESERVE));
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
