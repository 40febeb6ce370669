//! The state directory: the instance lock and the resume cursor.
//!
//! The cursor is the `timeNano` of the last Docker event delivered to the output, plus the
//! hashes of the events delivered with exactly that `timeNano` (Docker's `since` is inclusive, so
//! those come back on resume and are dropped as duplicates). It is written atomically
//! (temporary file + rename), so a crash leaves either the old or the new cursor, never a torn one.
use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "another docker-listener (pid {pid}) is already running with {path}: only one instance may \
         use a state directory / queue. Stop it first, or give this one its own --state-dir and queue"
    )]
    Locked { pid: String, path: PathBuf },
    #[error(
        "permission denied on {path}: docker-listener keeps its lock and resume cursor there. Run it \
         as root, or choose a writable --state-dir"
    )]
    PermissionDenied { path: PathBuf },
    #[error(
        "cannot use {path}: {source}. docker-listener keeps its lock and resume cursor in the state \
         directory: choose one on a writable, local file system with --state-dir"
    )]
    Io { path: PathBuf, source: io::Error },
    /// A path another user could redirect or tamper with: refused (the agent runs as root).
    #[error("refusing {path}: {why}. {fix}")]
    Unsafe { path: PathBuf, why: String, fix: String },
}

impl StateError {
    fn io(path: &Path, source: io::Error) -> StateError {
        if source.raw_os_error() == Some(libc::ELOOP) {
            return StateError::Unsafe {
                path: path.to_owned(),
                why: "it is a symbolic link (files in the state directory are never followed)".into(),
                fix: "Remove the link; docker-listener creates the file itself".into(),
            };
        }
        if source.kind() == io::ErrorKind::PermissionDenied {
            StateError::PermissionDenied { path: path.to_owned() }
        } else {
            StateError::Io { path: path.to_owned(), source }
        }
    }
}

/// An exclusive lock on a file, held for the life of the value; the file holds the holder's pid.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(path: &Path) -> Result<InstanceLock, StateError> {
        if let Some(dir) = path.parent() {
            private_dir(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| StateError::io(path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(path).unwrap_or_default().trim().to_owned();
                return Err(StateError::Locked {
                    pid: if pid.is_empty() { "unknown".into() } else { pid },
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(StateError::io(path, e)),
        }
        file.set_len(0).map_err(|e| StateError::io(path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| StateError::io(path, e))?;
        Ok(InstanceLock { _file: file, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where the last delivered Docker event was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `timeNano` of the last delivered event.
    pub time_nano: i64,
    /// Hashes (FNV-1a of the raw bytes) of the delivered events with that `timeNano`.
    pub delivered_at_time: Vec<u64>,
}

impl Cursor {
    /// Records that an event was delivered (or, for the reader, enqueued).
    pub fn advance(&mut self, time_nano: i64, hash: u64) {
        if time_nano == 0 {
            return; // an event without a time cannot move the cursor
        }
        if time_nano > self.time_nano {
            self.time_nano = time_nano;
            self.delivered_at_time.clear();
            self.delivered_at_time.push(hash);
        } else if time_nano == self.time_nano && !self.delivered_at_time.contains(&hash) {
            self.delivered_at_time.push(hash);
        }
    }

    /// Whether an event replayed by `since` was already delivered.
    pub fn covers(&self, time_nano: i64, hash: u64) -> bool {
        time_nano != 0 && (time_nano < self.time_nano || self.holds(time_nano, hash))
    }

    /// Whether this very event (its time and hash) is the cursor's, or one beside it.
    pub fn holds(&self, time_nano: i64, hash: u64) -> bool {
        time_nano == self.time_nano && self.delivered_at_time.contains(&hash)
    }

    pub fn is_set(&self) -> bool {
        self.time_nano != 0
    }
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    version: u32,
    #[serde(flatten)]
    cursor: Cursor,
}

/// The state directory's files.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: &Path) -> StateDir {
        StateDir { dir: dir.to_owned() }
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("docker-listener.lock")
    }

    pub fn cursor_path(&self) -> PathBuf {
        self.dir.join("cursor.json")
    }

    /// Creates the directory owner-only (0700), or checks an existing one: a symbolic link, a
    /// directory another user owns, or one others may write to is refused (its files could be
    /// replaced under the agent, which runs as root).
    pub fn prepare(&self) -> Result<(), StateError> {
        private_dir(&self.dir)
    }

    /// Reads the cursor. A missing file is `Ok(None)` (first start); an unreadable one is moved
    /// aside as `cursor.json.corrupt` and reported, and the agent starts from "now".
    pub fn load_cursor(&self) -> Result<Option<Cursor>, StateError> {
        let path = self.cursor_path();
        let read = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path).and_then(
            |mut f| {
                let mut t = String::new();
                io::Read::read_to_string(&mut f, &mut t).map(|_| t)
            },
        );
        let text = match read {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StateError::io(&path, e)),
        };
        match serde_json::from_str::<CursorFile>(&text) {
            Ok(f) if f.version == 1 => Ok(Some(f.cursor)),
            other => {
                let why = match other {
                    Ok(f) => format!("unknown version {}", f.version),
                    Err(e) => e.to_string(),
                };
                let aside = path.with_extension("json.corrupt");
                let moved_to = match fs::rename(&path, &aside) {
                    Ok(()) => aside.display().to_string(),
                    Err(e) => format!("(not moved aside: {e}; it is overwritten at the first delivery)"),
                };
                tracing::error!(
                    path = %path.display(), moved_to = %moved_to, error = %why,
                    "the resume cursor is unreadable: starting from now. Docker events emitted \
                     while docker-listener was stopped are not replayed this time"
                );
                Ok(None)
            }
        }
    }

    /// Writes the cursor atomically and durably: a temporary file, synced, renamed over the old
    /// one, and the directory synced, so that after a power cut the file is the old cursor or
    /// the new one, never empty.
    pub fn save_cursor(&self, cursor: &Cursor) -> Result<(), StateError> {
        let path = self.cursor_path();
        // A name no one else can have chosen first, created exclusively, never followed.
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp =
            self.dir.join(format!(".cursor.json.{}.{}.tmp", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let text = serde_json::to_vec(&CursorFile { version: 1, cursor: cursor.clone() })
            .map_err(|e| StateError::io(&tmp, io::Error::other(e)))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| StateError::io(&tmp, e))?;
        let written = file.write_all(&text).and_then(|()| file.sync_data());
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(StateError::io(&path, e));
        }
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| StateError::io(&self.dir, e))
    }
}

/// `dir`, created owner-only with its parents if missing; refused if it is a symbolic link,
/// not a directory, owned by another user, or writable by others.
fn private_dir(dir: &Path) -> Result<(), StateError> {
    let unsafe_dir = |why: String, fix: String| StateError::Unsafe { path: dir.to_owned(), why, fix };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(|e| StateError::io(parent, e))?;
            }
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return private_dir(dir),
                Err(e) => return Err(StateError::io(dir, e)),
            }
            Ok(())
        }
        Err(e) => Err(StateError::io(dir, e)),
        Ok(m) if m.file_type().is_symlink() => Err(unsafe_dir(
            "it is a symbolic link".into(),
            "Give the real directory with --state-dir (a link could be pointed elsewhere by whoever owns it)".into(),
        )),
        Ok(m) if !m.is_dir() => {
            Err(unsafe_dir("it is not a directory".into(), "Choose a directory with --state-dir".into()))
        }
        Ok(m) if m.uid() != euid() => Err(unsafe_dir(
            format!("it is owned by uid {}, not by this process (uid {})", m.uid(), euid()),
            format!("Run `chown {} {}`, or choose another --state-dir", euid(), dir.display()),
        )),
        Ok(m) if m.permissions().mode() & 0o022 != 0 => Err(unsafe_dir(
            format!("others may write to it (mode {:o})", m.permissions().mode() & 0o7777),
            format!("Run `chmod go-w {}` (0700 is what docker-listener creates)", dir.display()),
        )),
        Ok(_) => Ok(()),
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed with the guard.
    fn tempdir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::Builder::new().prefix("dl-state-").tempdir().unwrap();
        let d = t.path().to_path_buf();
        (t, d)
    }

    #[test]
    fn cursor_round_trips_and_survives_corruption() {
        let (_guard, dir) = tempdir();
        let s = StateDir::new(&dir);
        assert_eq!(s.load_cursor().unwrap(), None);
        let mut c = Cursor::default();
        c.advance(5, 1);
        c.advance(5, 2);
        c.advance(5, 2);
        s.save_cursor(&c).unwrap();
        assert_eq!(s.load_cursor().unwrap(), Some(Cursor { time_nano: 5, delivered_at_time: vec![1, 2] }));
        fs::write(s.cursor_path(), "{not json").unwrap();
        assert_eq!(s.load_cursor().unwrap(), None);
        assert!(dir.join("cursor.json.corrupt").exists());
    }

    #[test]
    fn cursor_covers_the_boundary_only() {
        let mut c = Cursor::default();
        c.advance(10, 7);
        assert!(c.covers(10, 7));
        assert!(!c.covers(10, 8));
        assert!(c.covers(9, 1));
        assert!(!c.covers(11, 7));
        assert!(!c.covers(0, 7));
        c.advance(11, 8);
        assert_eq!(c.delivered_at_time, vec![8]);
        c.advance(0, 9);
        assert_eq!(c.time_nano, 11);
    }

    #[test]
    fn unsafe_state_directories_and_files_are_refused() {
        let (_guard, dir) = tempdir();
        let fresh = dir.join("new/state");
        StateDir::new(&fresh).prepare().unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        // A link to a directory.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let e = StateDir::new(&link).prepare().unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // Writable by others.
        let open = dir.join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let e = StateDir::new(&open).prepare().unwrap_err().to_string();
        assert!(e.contains("others may write") && e.contains("chmod go-w"), "{e}");
        // A symlinked cursor: never followed.
        let s = StateDir::new(&fresh);
        std::os::unix::fs::symlink("/etc/hostname", s.cursor_path()).unwrap();
        let e = s.load_cursor().unwrap_err();
        assert!(matches!(e, StateError::Unsafe { .. }), "{e}");
        fs::remove_file(s.cursor_path()).unwrap();
        // Files created owner-only; no temporary file left.
        s.save_cursor(&Cursor::default()).unwrap();
        assert_eq!(fs::metadata(s.cursor_path()).unwrap().permissions().mode() & 0o777, 0o600);
        let lock = InstanceLock::acquire(&s.lock_path()).unwrap();
        assert_eq!(fs::metadata(lock.path()).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<String> =
            fs::read_dir(&fresh).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn second_lock_names_the_holder() {
        let (_guard, dir) = tempdir();
        let path = dir.join("lock");
        let _held = InstanceLock::acquire(&path).unwrap();
        let e = InstanceLock::acquire(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    }
}
