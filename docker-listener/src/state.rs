//! The state directory: the instance lock and the resume cursor.
//!
//! The cursor is the `timeNano` of the last Docker event delivered to the output, plus the
//! hashes of the events delivered with exactly that `timeNano` (Docker's `since` is inclusive, so
//! those come back on resume and are dropped as duplicates).
//!
//! It is kept in two copies, `cursor.json` and `cursor.b.json`, overwritten in place in turn
//! ([`CursorWriter`]): each write carries a sequence number and a checksum and is synced with
//! `fdatasync` before the next one goes to the other copy. A power cut in the middle of a write
//! can tear only the copy being written; the other still holds the cursor before it, and
//! [`StateDir::load_cursor`] takes the newest copy whose checksum holds. So after any crash the
//! cursor is the old one or the new one, never empty or torn, and a save costs one write and one
//! `fdatasync` (no file created, renamed or directory synced): about a quarter of the CPU of a
//! temporary file renamed over the old one, measured on this project's VMs.
use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
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
        let mut file = open_state_file(path, true).map_err(|e| StateError::io(path, e))?;
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
        // The pid only names the holder in a second instance's error: a full disk must not stop
        // this one (the cursor's saves say so themselves when they fail).
        if let Err(e) = file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id())) {
            tracing::warn!(path = %path.display(), error = %e, "could not write this process's pid into the instance lock (a full disk?); the lock holds");
        }
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
    /// Records that an event was delivered (or, for the reader, enqueued). A first start's
    /// cursor (`at_start`: no event's hash, this host's time) gives way to the first event,
    /// even one older than it (a remote dockerd's clock behind ours): from then on it names
    /// the events it is at.
    pub fn advance(&mut self, time_nano: i64, hash: u64) {
        if time_nano == 0 {
            return; // an event without a time cannot move the cursor
        }
        if time_nano > self.time_nano || self.delivered_at_time.is_empty() {
            self.time_nano = time_nano;
            self.delivered_at_time.clear();
            self.delivered_at_time.push(hash);
        } else if time_nano == self.time_nano && !self.delivered_at_time.contains(&hash) {
            self.delivered_at_time.push(hash);
        }
    }

    /// Adds what `other` records (its time and the hashes at it), as `advance` would each.
    pub fn merge(&mut self, other: &Cursor) {
        for &h in &other.delivered_at_time {
            self.advance(other.time_nano, h);
        }
    }

    /// Whether an event replayed by `since` was already delivered. A cursor with no event's hash
    /// is a first start's (`at_start`), on this host's clock: it covers nothing, since dockerd
    /// replays nothing older than `since`, and a live event older than it is a clock's skew
    /// (a remote dockerd's), not a duplicate.
    pub fn covers(&self, time_nano: i64, hash: u64) -> bool {
        time_nano != 0
            && !self.delivered_at_time.is_empty()
            && (time_nano < self.time_nano || self.holds(time_nano, hash))
    }

    /// A first start's cursor: what Docker sends from `time_nano` on is to be delivered.
    pub fn at_start(time_nano: i64) -> Cursor {
        Cursor { time_nano, delivered_at_time: Vec::new() }
    }

    /// Whether this very event (its time and hash) is the cursor's, or one beside it.
    pub fn holds(&self, time_nano: i64, hash: u64) -> bool {
        time_nano == self.time_nano && self.delivered_at_time.contains(&hash)
    }

    pub fn is_set(&self) -> bool {
        self.time_nano != 0
    }
}

/// One copy of the cursor as written: `{"version":1,"seq":..,"time_nano":..,"delivered_at_time":[..],"check":..}`,
/// padded with spaces to the copy's length. `seq` and `check` are absent from a cursor written
/// by a version before the two copies (read as sequence 0, unchecked).
#[derive(Serialize, Deserialize)]
struct CursorFile {
    version: u32,
    #[serde(default)]
    seq: u64,
    #[serde(flatten)]
    cursor: Cursor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<u64>,
}

impl CursorFile {
    /// The checksum of everything but itself.
    fn checksum(&self) -> u64 {
        let body = CursorFile { version: self.version, seq: self.seq, cursor: self.cursor.clone(), check: None };
        crate::encode::event_hash(&serde_json::to_vec(&body).unwrap_or_default())
    }
}

/// What one copy of the cursor holds.
enum Copy {
    /// No file, or an empty one (created, never written).
    Missing,
    Valid {
        seq: u64,
        cursor: Cursor,
    },
    /// Unreadable: a torn write, or damaged by hand.
    Corrupt(String),
}

/// Opens a state file for reading, and with `create` for writing too, created owner-only if
/// missing; a symbolic link is refused (ELOOP).
fn open_state_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn read_copy(path: &Path) -> Result<Copy, StateError> {
    let text = match open_state_file(path, false).and_then(|mut f| {
        let mut t = Vec::new();
        io::Read::read_to_end(&mut f, &mut t).map(|_| t)
    }) {
        Ok(t) if t.is_empty() => return Ok(Copy::Missing),
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Copy::Missing),
        Err(e) => return Err(StateError::io(path, e)),
    };
    Ok(match serde_json::from_slice::<CursorFile>(&text) {
        Ok(f) if f.version != 1 => Copy::Corrupt(format!("unknown version {}", f.version)),
        Ok(f) if f.check.is_some_and(|c| c != f.checksum()) => {
            Copy::Corrupt("its checksum does not match (a write cut short)".into())
        }
        Ok(f) => Copy::Valid { seq: f.seq, cursor: f.cursor },
        Err(e) => Copy::Corrupt(e.to_string()),
    })
}

fn read_copies(paths: &[PathBuf; 2]) -> Result<[Copy; 2], StateError> {
    Ok([read_copy(&paths[0])?, read_copy(&paths[1])?])
}

/// The newest good copy: its index, sequence and cursor.
fn newest(copies: &[Copy; 2]) -> Option<(usize, u64, &Cursor)> {
    copies
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c {
            Copy::Valid { seq, cursor } => Some((i, *seq, cursor)),
            _ => None,
        })
        .max_by_key(|&(_, seq, _)| seq)
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

    /// The cursor's first copy (the only one before the two copies).
    pub fn cursor_path(&self) -> PathBuf {
        self.dir.join("cursor.json")
    }

    /// Both copies of the cursor.
    pub fn cursor_paths(&self) -> [PathBuf; 2] {
        [self.cursor_path(), self.dir.join("cursor.b.json")]
    }

    /// Creates the directory owner-only (0700), or checks an existing one: a symbolic link, a
    /// directory another user owns, or one others may write to is refused (its files could be
    /// replaced under the agent, which runs as root).
    pub fn prepare(&self) -> Result<(), StateError> {
        private_dir(&self.dir)
    }

    /// Reads the cursor: the newest of its two copies whose checksum holds. No copy is
    /// `Ok(None)` (first start). A copy torn by a crash beside a good one is reported and
    /// overwritten at the next save; when no copy is readable, each is moved aside as
    /// `<name>.corrupt`, the error is reported, and the agent starts from "now".
    pub fn load_cursor(&self) -> Result<Option<Cursor>, StateError> {
        let paths = self.cursor_paths();
        let copies = read_copies(&paths)?;
        let newest = newest(&copies);
        for (path, copy) in paths.iter().zip(&copies) {
            let Copy::Corrupt(why) = copy else { continue };
            if newest.is_some() {
                tracing::warn!(
                    path = %path.display(), error = %why,
                    "one copy of the resume cursor is unreadable (a write cut short by a crash): \
                     resuming from the other, which is overwritten at the next save"
                );
                continue;
            }
            let aside = PathBuf::from(format!("{}.corrupt", path.display()));
            let moved_to = match fs::rename(path, &aside) {
                Ok(()) => aside.display().to_string(),
                Err(e) => format!("(not moved aside: {e}; it is overwritten at the first delivery)"),
            };
            tracing::error!(
                path = %path.display(), moved_to = %moved_to, error = %why,
                "the resume cursor is unreadable: starting from now. Docker events emitted \
                 while docker-listener was stopped are not replayed this time"
            );
        }
        Ok(newest.map(|(_, _, c)| c.clone()))
    }

    /// Opens the cursor's two copies for [`CursorWriter::save`], creating missing ones (and
    /// syncing the directory, once, so that they survive a power cut).
    pub fn cursor_writer(&self) -> Result<CursorWriter, StateError> {
        let paths = self.cursor_paths();
        let newest = newest(&read_copies(&paths)?).map(|(i, seq, _)| (i, seq));
        let existed = paths.iter().all(|p| p.exists());
        let open = |p: &PathBuf| open_state_file(p, true).map_err(|e| StateError::io(p, e));
        let files = [open(&paths[0])?, open(&paths[1])?];
        if !existed {
            fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| StateError::io(&self.dir, e))?;
        }
        let mut lens = [0; 2];
        for (len, (f, p)) in lens.iter_mut().zip(files.iter().zip(&paths)) {
            *len = f.metadata().map_err(|e| StateError::io(p, e))?.len();
        }
        Ok(CursorWriter {
            files,
            paths,
            lens,
            // Never over the newest good copy.
            next: newest.map_or(0, |(i, _)| 1 - i),
            seq: newest.map_or(1, |(_, s)| s + 1),
        })
    }

    /// Saves the cursor once (opens the copies, writes one): for tools and tests; the daemon
    /// keeps a [`CursorWriter`].
    pub fn save_cursor(&self, cursor: &Cursor) -> Result<(), StateError> {
        self.cursor_writer()?.save(cursor)
    }
}

/// The cursor's two copies, open, written in turn in place.
#[derive(Debug)]
pub struct CursorWriter {
    files: [File; 2],
    paths: [PathBuf; 2],
    /// Each copy's length: a shorter cursor is padded to it, so a write changes the file's size
    /// only for a cursor longer than any before; otherwise `fdatasync` has no metadata to flush.
    lens: [u64; 2],
    /// The copy the next save overwrites: never the one holding the newest good cursor.
    next: usize,
    seq: u64,
}

impl CursorWriter {
    /// Writes the cursor over the older copy and syncs it. On an error the same copy is written
    /// next time (the other still holds the previous cursor).
    pub fn save(&mut self, cursor: &Cursor) -> Result<(), StateError> {
        let i = self.next;
        let path = &self.paths[i];
        let mut file = CursorFile { version: 1, seq: self.seq, cursor: cursor.clone(), check: None };
        file.check = Some(file.checksum());
        let mut text = serde_json::to_vec(&file).map_err(|e| StateError::io(path, io::Error::other(e)))?;
        let len = self.lens[i].max(text.len() as u64 + 1);
        text.resize(len as usize - 1, b' ');
        text.push(b'\n');
        self.files[i]
            .write_all_at(&text, 0)
            .and_then(|()| self.files[i].sync_data())
            .map_err(|e| StateError::io(path, e))?;
        self.lens[i] = len;
        self.next = 1 - i;
        self.seq += 1;
        Ok(())
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
    fn a_first_start_s_cursor_covers_no_event_and_a_delivered_one_moves_it() {
        // On this host's clock: a remote dockerd's live events stamped before it are not taken
        // for replayed duplicates.
        let mut c = Cursor::at_start(1_000);
        assert!(c.is_set());
        assert!(!c.covers(999, 7) && !c.covers(1_000, 7));
        c.advance(1_500, 7);
        assert!(c.covers(1_500, 7) && c.covers(1_200, 8) && !c.covers(1_500, 8));
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

    fn cursor(time_nano: i64, hashes: &[u64]) -> Cursor {
        Cursor { time_nano, delivered_at_time: hashes.to_vec() }
    }

    #[test]
    fn the_two_copies_are_written_in_turn_and_the_newest_is_read() {
        let (_guard, dir) = tempdir();
        let s = StateDir::new(&dir);
        let mut w = s.cursor_writer().unwrap();
        for t in 1..=5 {
            w.save(&cursor(t, &[t as u64])).unwrap();
            assert_eq!(s.load_cursor().unwrap(), Some(cursor(t, &[t as u64])));
        }
        // The last write went to one copy, the one before to the other.
        let [a, b] = s.cursor_paths().map(|p| fs::read_to_string(p).unwrap());
        assert!(a.contains("\"time_nano\":5") && b.contains("\"time_nano\":4"), "{a}\n{b}");
        // A writer opened afresh (a restart) never starts over the newest copy.
        let mut w = s.cursor_writer().unwrap();
        w.save(&cursor(6, &[])).unwrap();
        let [a, b] = s.cursor_paths().map(|p| fs::read_to_string(p).unwrap());
        assert!(a.contains("\"time_nano\":5") && b.contains("\"time_nano\":6"), "{a}\n{b}");
    }

    #[test]
    fn a_copy_torn_by_a_crash_gives_way_to_the_other() {
        let (_guard, dir) = tempdir();
        let s = StateDir::new(&dir);
        let mut w = s.cursor_writer().unwrap();
        w.save(&cursor(10, &[1, 2])).unwrap();
        w.save(&cursor(11, &[3])).unwrap();
        let newest = &s.cursor_paths()[1];
        let text = fs::read_to_string(newest).unwrap();
        // The first sector new, the rest old: here, a digit that is no longer what was summed.
        let torn = text.replacen("\"time_nano\":11", "\"time_nano\":19", 1);
        assert_ne!(torn, text);
        fs::write(newest, &torn).unwrap();
        assert_eq!(s.load_cursor().unwrap(), Some(cursor(10, &[1, 2])), "the copy before the torn one");
        // Cut short: no closing brace.
        fs::write(newest, &text[..text.len() / 2]).unwrap();
        assert_eq!(s.load_cursor().unwrap(), Some(cursor(10, &[1, 2])));
        assert!(newest.exists(), "a torn copy beside a good one is not moved aside");
        // The next save goes over the torn copy, not over the good one.
        s.cursor_writer().unwrap().save(&cursor(12, &[])).unwrap();
        assert_eq!(s.load_cursor().unwrap(), Some(cursor(12, &[])));
        assert!(fs::read_to_string(&s.cursor_paths()[0]).unwrap().contains("\"time_nano\":10"));
    }

    #[test]
    fn a_cursor_written_before_the_two_copies_is_read_and_kept_until_overwritten() {
        let (_guard, dir) = tempdir();
        let s = StateDir::new(&dir);
        fs::write(s.cursor_path(), r#"{"version":1,"time_nano":7,"delivered_at_time":[9]}"#).unwrap();
        assert_eq!(s.load_cursor().unwrap(), Some(cursor(7, &[9])));
        s.save_cursor(&cursor(8, &[])).unwrap();
        assert!(fs::read_to_string(s.cursor_path()).unwrap().contains("\"time_nano\":7"), "written to the other copy");
        assert_eq!(s.load_cursor().unwrap(), Some(cursor(8, &[])));
    }

    #[test]
    fn a_shorter_cursor_is_padded_so_a_copy_never_changes_size() {
        let (_guard, dir) = tempdir();
        let s = StateDir::new(&dir);
        let mut w = s.cursor_writer().unwrap();
        let many: Vec<u64> = (0..200).map(|i| u64::MAX - i).collect();
        w.save(&cursor(1, &many)).unwrap();
        let len = fs::metadata(s.cursor_path()).unwrap().len();
        w.save(&cursor(2, &[])).unwrap();
        w.save(&cursor(3, &[5])).unwrap();
        assert_eq!(fs::metadata(s.cursor_path()).unwrap().len(), len);
        assert_eq!(s.load_cursor().unwrap(), Some(cursor(3, &[5])));
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
