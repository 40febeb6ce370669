//! The outputs frames are written to: the Wazuh queue socket, or lines on stdout / in a file.
use std::{
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::Duration,
};

use std::os::unix::net::UnixDatagram;

use tokio::io::{AsyncWrite, AsyncWriteExt, Interest, unix::AsyncFd};

use crate::{config, encode::Frame};

/// Why the output cannot take frames right now. All of these are retried; the frames wait in
/// the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The socket file does not exist (ENOENT): Wazuh is not installed or not started.
    Missing,
    /// Nobody is bound to it (ECONNREFUSED): Wazuh is stopped or restarting.
    NotBound,
    /// Permission denied (EACCES): we may not write to it.
    Permission,
    /// Any other I/O error.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{}: {source}", describe(*.kind, path))]
    Unavailable { kind: Unavailable, path: PathBuf, source: io::Error },
    /// The output refused this frame for good (EMSGSIZE...): it is dropped and counted.
    #[error("the output rejected a {len}-byte frame: {source}")]
    Rejected { len: usize, source: io::Error },
}

fn describe(kind: Unavailable, path: &Path) -> String {
    let p = path.display();
    match kind {
        Unavailable::Missing => format!(
            "the Wazuh queue socket {p} does not exist: is Wazuh (manager or agent) installed and \
             running? Events are buffered until it appears (--queue sets another path; --output \
             stdout shows events without Wazuh)"
        ),
        Unavailable::NotBound => format!(
            "nothing is listening on the Wazuh queue socket {p} (connection refused): Wazuh is \
             stopped or restarting. Events are buffered until it is back"
        ),
        Unavailable::Permission => format!(
            "permission denied on the Wazuh queue socket {p}: run docker-listener as root or in \
             the wazuh group. Events are buffered meanwhile"
        ),
        Unavailable::Other => format!(
            "cannot write to {p}: is it Wazuh's queue socket (a Unix datagram socket that \
             wazuh-analysisd binds)? Events are buffered meanwhile"
        ),
    }
}

/// `--output file:PATH`, opened for appending, owner-only (0600) when created, never through a
/// symbolic link. Events carry command lines, labels and secrets that escaped redaction, and a
/// file Wazuh reads is believed: who else may read, change or replace it matters.
///
/// The directory is opened once; its checks are on that descriptor and the file is opened
/// through it (`openat`), so a directory swapped after the checks (it, or a component of its
/// path, replaced by a symbolic link) cannot take the file elsewhere.
///
/// - In a directory everyone may write to: without the sticky bit, refused (anyone could remove
///   or replace the file); with it (`/tmp`), the file is created exclusively, and one that
///   already exists must be this process's user's, with no other name (a hard link to a file the
///   agent must not append to), or it is refused (a trap laid before the agent started).
/// - A named pipe nobody reads, or a socket, is refused rather than waited on.
/// - What is allowed but lets others read or change the events is returned as warnings for the
///   caller to log, each with its fix: an existing file others may read or anyone but its owner
///   and group may change (mode 0600 or 0640 is what is asked for), one another user owns, a
///   directory its group may change (unless a daemon's log group of a directory root or this
///   process's user owns, see `trusted_group`) or another user owns.
fn open_output_file(path: &Path) -> io::Result<(std::fs::File, Vec<String>)> {
    open_output_file_with(path, || {})
}

/// `open_output_file`, calling `between` after the directory's checks and before the file is
/// opened: where tests swap the directory.
fn open_output_file_with(path: &Path, between: impl FnOnce()) -> io::Result<(std::fs::File, Vec<String>)> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let p = path.display();
    let refuse = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, format!("refusing {p}: {why}"));
    let me = euid();
    let (dir, name) = split_file_path(path)?;
    let d = dir.display();
    let no_dir = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(
            e.kind(),
            format!("its directory {d} does not exist: create it (`mkdir -p {d}`) or write elsewhere"),
        ),
        _ => e,
    };
    // O_PATH: only searching the directory is needed, as for opening the file by its path.
    let dir_fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map_err(no_dir)?;
    let dir_meta = dir_fd.metadata()?;
    let dir_mode = dir_meta.mode() & 0o7777;
    let shared_dir = dir_mode & 0o002 != 0;
    if shared_dir && dir_mode & 0o1000 == 0 {
        return Err(refuse(format!(
            "its directory {d} is writable by everyone without the sticky bit (mode {dir_mode:04o}): anyone could \
             remove or replace the file. Run `chmod o-w {d}` (or `chmod +t {d}`), or write elsewhere"
        )));
    }
    between();
    let opened = (|| {
        // Created here, or there already (opened without O_CREAT: the kernel's protection of
        // others' files in sticky directories does not apply, the checks below say what is
        // wrong); gone in between (removed by whoever may), tried again.
        for _ in 0..3 {
            match open_in(&dir_fd, name, true) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => return other.map(|f| (f, true)),
            }
            match open_in(&dir_fd, name, false) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => return other.map(|f| (f, false)),
            }
        }
        Err(io::Error::other(format!(
            "{p} kept appearing and disappearing while it was opened: is something removing it?"
        )))
    })();
    let (file, created) = opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => {
            refuse("it is a symbolic link (an output file is never followed): give the real path".into())
        }
        Some(libc::ENXIO) => {
            refuse("it is a named pipe nobody reads, or a socket, not a file: give the path of a regular file".into())
        }
        _ => e,
    })?;
    // Writes wait for room again (a pipe's reader), as for any file.
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns and keeps open; F_GETFL and F_SETFL read or
    // write no memory of ours.
    let blocking = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
    };
    if !blocking {
        return Err(io::Error::last_os_error());
    }
    let meta = file.metadata()?;
    let mut warnings = Vec::new();
    if !created {
        if shared_dir && meta.uid() != me {
            return Err(refuse(format!(
                "it is in a directory everyone may write to and belongs to uid {}, not to this process (uid {me}): \
                 remove it or write elsewhere",
                meta.uid()
            )));
        }
        if shared_dir && meta.nlink() > 1 {
            return Err(refuse(format!(
                "it is in a directory everyone may write to and has {} names (hard links): another name could be a \
                 file the agent must not append to. Remove it or write elsewhere",
                meta.nlink()
            )));
        }
        if meta.is_file() && meta.uid() != me {
            warnings.push(format!(
                "{p} belongs to uid {}, not to this process (uid {me}): that user can read every event written to it \
                 (command lines, labels, secrets that escaped redaction) and change or remove them. Run `chown {me} \
                 {p}`, or write elsewhere",
                meta.uid()
            ));
        }
        let mode = meta.mode() & 0o7777;
        if meta.is_file() && mode & 0o026 != 0 {
            let who = [
                (0o004, "every user may read it"),
                (0o002, "every user may change it"),
                (0o020, "its group may change it"),
            ]
            .into_iter()
            .filter(|&(bit, _)| mode & bit != 0)
            .map(|(_, who)| who)
            .collect::<Vec<_>>()
            .join(", ");
            warnings.push(format!(
                "{p} is not private (mode {mode:04o}: {who}): events carry command lines, labels and secrets that \
                 escaped redaction, and lines written by others would pass for events. Run `chmod 600 {p}` (or 640 for a log \
                 reader's group)"
            ));
        }
    }
    if !shared_dir {
        let m = &dir_meta;
        if m.mode() & 0o020 != 0 && m.mode() & 0o1000 == 0 && !trusted_group(m.uid(), m.gid(), me) {
            warnings.push(format!(
                "its directory {d} may be changed by its group (gid {}, mode {dir_mode:04o}): its members can remove \
                 or replace {p}. Run `chmod g-w {d}`, or write elsewhere",
                m.gid()
            ));
        }
        if m.uid() != me && m.uid() != 0 {
            warnings.push(format!(
                "its directory {d} belongs to uid {}, not to this process (uid {me}) or root: that user can remove or \
                 replace {p}. Write to a directory root or uid {me} owns",
                m.uid()
            ));
        }
    }
    Ok((file, warnings))
}

/// The directory and the name of the file `path` names; an error naming the fix when its last
/// component is no file's name (`file:/var/log/`, `.`, `..`). The configuration is checked with
/// it too, so that such a path is an invalid configuration (exit 2) before anything starts.
pub(crate) fn split_file_path(path: &Path) -> io::Result<(&Path, &std::ffi::OsStr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let (dir, name): (&[u8], &[u8]) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &bytes[1..]),
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (b".", bytes),
    };
    if matches!(name, b"" | b"." | b"..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} names a directory, not a file: give the path of the file to append to, e.g. file:{}",
                path.display(),
                path.join("docker-listener.ndjson").display()
            ),
        ));
    }
    Ok((Path::new(std::ffi::OsStr::from_bytes(dir)), std::ffi::OsStr::from_bytes(name)))
}

/// The file `name` in the directory `dir` (no `/` in it), for appending; created (exclusively,
/// 0600) when `create`. Never through a symbolic link; a named pipe with no reader is an error
/// (ENXIO, O_NONBLOCK), not a wait forever.
fn open_in(dir: &std::fs::File, name: &std::ffi::OsStr, create: bool) -> io::Result<std::fs::File> {
    use std::os::{fd::FromRawFd, unix::ffi::OsStrExt};
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a file name with a NUL byte"))?;
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NONBLOCK
        | if create { libc::O_CREAT | libc::O_EXCL } else { 0 };
    // SAFETY: `dir` is an open directory descriptor and `c` a NUL-terminated name, both alive
    // for the call; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// The groups a directory root or this process's user owns may leave writable without a
/// warning: those of the daemons that write logs there (Debian's /var/log is root:syslog 0775;
/// Wazuh's own directories are its group's). Other system groups hold people (`adm`, `staff`,
/// `sudo`, `wheel`, `docker`, `users`: `/var/local` is root:staff 2775), so "below 1000" would
/// not do.
const TRUSTED_GROUPS: &[&str] = &["root", "syslog", "wazuh", "ossec"];

/// Whether a directory owned by `uid` may be left writable by its group `gid` without a warning:
/// one of `TRUSTED_GROUPS`, in a directory root or this process's user owns (another owner is
/// warned about anyway, and its choice of group is not vouched for).
fn trusted_group(uid: u32, gid: u32, me: u32) -> bool {
    (uid == 0 || uid == me) && (gid == 0 || group_name(gid).is_some_and(|n| TRUSTED_GROUPS.contains(&n.as_str())))
}

/// The name of group `gid` (the system's group database), if it has one.
fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: an all-zero `group` is valid; getgrgid_r fills it with pointers into `buf`, which
    // outlives their use below, and sets `found` to it or to null.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || grp.gr_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(grp.gr_name).to_str().ok().map(str::to_owned)
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Where frames go.
pub enum Output {
    Queue(QueueSocket),
    Lines(LineWriter),
}

impl Output {
    pub async fn open(cfg: &config::Output, queue: &Path) -> io::Result<Output> {
        Ok(match cfg {
            config::Output::Queue => Output::Queue(QueueSocket::new(queue)),
            config::Output::Stdout => Output::Lines(LineWriter::new(Box::new(tokio::io::stdout()), "stdout".into())),
            config::Output::File(path) => {
                let (f, warnings) = open_output_file(path)?;
                for w in warnings {
                    tracing::warn!(output = %path.display(), "{w}");
                }
                Output::Lines(LineWriter::new(Box::new(tokio::fs::File::from_std(f)), path.clone()))
            }
        })
    }

    /// Writes one frame. Waits while the output is merely busy (a full queue); returns an
    /// error when it is unavailable or refuses the frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), OutputError> {
        self.send_batch(std::slice::from_ref(frame)).await.map(|_| ()).map_err(|(_, e)| e)
    }

    /// Writes frames in order. `Err((n, e))`: the first `n` were written, then `e` stopped it.
    ///
    /// The future may be dropped before it ends (the sink's abort at shutdown) after some frames
    /// went out: [`Output::taken`] then says how many. It is set to 0 by this call itself, not
    /// by the future's first poll, so a future dropped unpolled leaves it at 0 too.
    pub fn send_batch<'a>(
        &'a mut self,
        frames: &'a [Frame],
    ) -> impl Future<Output = Result<usize, (usize, OutputError)>> + 'a {
        match self {
            Output::Queue(q) => q.taken = 0,
            Output::Lines(l) => l.taken = 0,
        }
        async move {
            match self {
                Output::Queue(q) => q.send_batch(frames).await,
                Output::Lines(l) => {
                    for f in frames {
                        l.send(f).await.map_err(|e| (l.taken, e))?;
                        l.taken += 1;
                    }
                    Ok(l.taken)
                }
            }
        }
    }

    /// How many frames of the last [`Output::send_batch`] the output took, the first ones: sent
    /// (the queue socket's kernel has them) or in a line output's buffer (`flush` writes them).
    /// Right whether that call's future ended or was dropped part-way.
    pub fn taken(&self) -> usize {
        match self {
            Output::Queue(q) => q.taken,
            Output::Lines(l) => l.taken,
        }
    }

    /// How many of the frames the output took are not known to be written out yet, the last
    /// ones: a line output's since its last flush that left nothing behind (in its buffer, or
    /// written to a writer that has not flushed them); none for the queue socket, whose kernel
    /// has a datagram once it is sent.
    pub fn unwritten(&self) -> usize {
        match self {
            Output::Queue(_) => 0,
            Output::Lines(l) => l.unwritten,
        }
    }

    /// How many of the frames the output took were lost to a failed write or flush since the
    /// last call, and resets the count: a line output's frames handed to its writer when it
    /// failed ([`LineWriter`]); none for the queue socket. A failure ends the call that met it
    /// (`send_batch`, `flush`), so among the frames taken since the caller last asked, those
    /// written out come first, then these, then the [`Output::unwritten`] ones.
    pub fn take_failed(&mut self) -> usize {
        match self {
            Output::Queue(_) => 0,
            Output::Lines(l) => std::mem::take(&mut l.failed),
        }
    }

    /// Pushes out anything buffered (line outputs); called when the spool is empty.
    pub async fn flush(&mut self) -> Result<(), OutputError> {
        match self {
            Output::Queue(_) => Ok(()),
            Output::Lines(l) => l.flush().await,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Output::Queue(q) => format!("Wazuh queue socket {}", q.path.display()),
            Output::Lines(l) => format!("lines on {}", l.name.display()),
        }
    }
}

/// The Wazuh queue: an AF_UNIX SOCK_DGRAM socket connected to `path`, one datagram per frame,
/// sent with one `sendmsg` whose iovec points at the frame's pieces (no concatenation copy).
///
/// The socket is in the runtime's epoll set only while the reader's queue is full. Registered
/// for good (as `tokio::net::UnixDatagram` is), it woke the agent each time the reader freed
/// the datagrams of a batch (`unix_write_space`): a wake-up and a context switch for nothing,
/// about one per batch (docs/ARCHITECTURE.md, "Batching").
pub struct QueueSocket {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    /// Frames of the current `send_batch` sent so far: a field, not a local, so that it
    /// outlives a `send_batch` future dropped while it waits for room ([`Output::taken`]).
    taken: usize,
}

impl QueueSocket {
    pub fn new(path: &Path) -> QueueSocket {
        QueueSocket { path: path.to_owned(), sock: None, taken: 0 }
    }

    fn unavailable(&self, source: io::Error) -> OutputError {
        let kind = match source.kind() {
            io::ErrorKind::NotFound => Unavailable::Missing,
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected | io::ErrorKind::BrokenPipe => {
                Unavailable::NotBound
            }
            io::ErrorKind::PermissionDenied => Unavailable::Permission,
            _ => Unavailable::Other,
        };
        OutputError::Unavailable { kind, path: self.path.clone(), source }
    }

    fn connect(&mut self) -> Result<&UnixDatagram, OutputError> {
        if self.sock.is_none() {
            let sock = UnixDatagram::unbound().map_err(|e| self.unavailable(e))?;
            sock.connect(&self.path).map_err(|e| self.unavailable(e))?;
            sock.set_nonblocking(true).map_err(|e| self.unavailable(e))?;
            self.sock = Some(sock);
        }
        // Just set above when it was None.
        self.sock.as_ref().ok_or_else(|| self.unavailable(io::Error::other("socket vanished")))
    }

    /// Sends frames as datagrams, up to `BATCH` per `sendmmsg` call, each datagram's pieces
    /// gathered by its iovec (no copy into a contiguous buffer). A call may send some, then wait
    /// for room (a partial `sendmmsg`, a full queue): `self.taken` counts what went out.
    pub async fn send_batch(&mut self, frames: &[Frame]) -> Result<usize, (usize, OutputError)> {
        self.taken = 0;
        let mut nobufs_retries = 0;
        while self.taken < frames.len() {
            let done = self.taken;
            let chunk = &frames[done..frames.len().min(done + BATCH)];
            let sock = self.connect().map_err(|e| (done, e))?;
            match sendmmsg(sock.as_raw_fd(), chunk) {
                Ok(n) => self.taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The reader's queue is full (net.unix.max_dgram_qlen): wait until it drains.
                    if let Err(e) = self.writable().await {
                        self.sock = None;
                        return Err((done, self.unavailable(e)));
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && nobufs_retries < 100 => {
                    nobufs_retries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    return Err((done, OutputError::Rejected { len: chunk[0].len(), source: e }));
                }
                Err(e) => {
                    // The peer went away (Wazuh restarted: its socket is a new one) or another
                    // error: reconnect on the next attempt.
                    self.sock = None;
                    return Err((done, self.unavailable(e)));
                }
            }
        }
        Ok(self.taken)
    }

    /// Waits until the connected socket may send again, registered with the runtime for that
    /// wait only. Registering polls the socket at once (`ep_insert`), so a queue that drained
    /// between the refused send and now is seen: no wake-up can be missed.
    async fn writable(&mut self) -> io::Result<()> {
        let sock = self.sock.take().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        // SAFETY: the socket owns its descriptor, which stays open and the same until
        // `into_inner` below gives the socket back.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::WRITABLE) }.map_err(io::Error::from)?;
        let ready = fd.writable().await.map(|mut guard| guard.clear_ready());
        self.sock = Some(fd.into_inner());
        ready
    }
}

#[cfg(test)]
impl QueueSocket {
    /// Connected at once, with a send buffer of `bytes` (the kernel doubles it, to at least
    /// ~4.5 KiB): a reader that does not read then holds only a few datagrams of ~1 KiB before
    /// the sender must wait for room, whatever the machine's `wmem_default`.
    pub(crate) fn with_send_buffer(path: &Path, bytes: libc::c_int) -> io::Result<QueueSocket> {
        let sock = UnixDatagram::unbound()?;
        // SAFETY: the option's value is a c_int that outlives the call, and its size is given.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&raw const bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        sock.connect(path)?;
        sock.set_nonblocking(true)?;
        Ok(QueueSocket { path: path.to_owned(), sock: Some(sock), taken: 0 })
    }
}

/// Datagrams per sendmmsg call.
pub const BATCH: usize = 64;

/// One `sendmmsg` of up to BATCH frames on a connected datagram socket; the number sent.
fn sendmmsg(fd: std::os::fd::RawFd, frames: &[Frame]) -> io::Result<usize> {
    let n = frames.len().min(BATCH);
    // SAFETY: all-zero iovec/mmsghdr values are valid (null pointers, zero lengths).
    let mut iov: [libc::iovec; 3 * BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (i, f) in frames[..n].iter().enumerate() {
        for (j, part) in f.parts.iter().enumerate() {
            iov[3 * i + j] = libc::iovec { iov_base: part.as_ptr() as *mut libc::c_void, iov_len: part.len() };
        }
        msgs[i].msg_hdr.msg_iov = iov[3 * i..].as_mut_ptr();
        msgs[i].msg_hdr.msg_iovlen = 3;
    }
    // SAFETY: `msgs[..n]` point at `iov`, which point into `frames`' buffers; all outlive the
    // call, and the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT as _) };
    if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(sent as usize) }
}

/// One frame per line, for `--output stdout` and `--output file:PATH`. A frame is either in
/// the buffer whole or not at all: a write error while making room leaves the frame to the
/// sink's retry, and what was already written is never written again (no half or doubled
/// lines after, say, a full disk, or a write cut short by the sink's abort).
pub struct LineWriter {
    w: Box<dyn AsyncWrite + Unpin + Send>,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written by a `write_out` that has not finished: a
    /// field, not a local, so that a `write_out` dropped part-way (the sink's abort) leaves
    /// the next one to go on after them.
    written: usize,
    name: PathBuf,
    /// Frames of the current `Output::send_batch` in `buf` ([`Output::taken`]).
    taken: usize,
    /// Frames taken since the last flush that left nothing behind: in `buf`, or handed to `w`
    /// but not flushed ([`Output::unwritten`]).
    unwritten: usize,
    /// Frames handed to `w` (whole or in part) when a write or flush failed: lost
    /// ([`Output::take_failed`]).
    failed: usize,
    /// Whether `buf` starts at a line's start (not with the rest of a line partly written).
    at_line_start: bool,
}

const LINE_BUFFER: usize = 64 << 10;

impl LineWriter {
    pub fn new(w: Box<dyn AsyncWrite + Unpin + Send>, name: PathBuf) -> LineWriter {
        LineWriter {
            w,
            buf: Vec::with_capacity(LINE_BUFFER),
            written: 0,
            name,
            taken: 0,
            unwritten: 0,
            failed: 0,
            at_line_start: true,
        }
    }

    fn error(&self, source: io::Error) -> OutputError {
        OutputError::Unavailable { kind: Unavailable::Other, path: self.name.clone(), source }
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), OutputError> {
        if self.buf.len() + frame.len() + 1 > LINE_BUFFER {
            self.write_out().await?;
        }
        for p in &frame.parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.push(b'\n');
        self.unwritten += 1;
        Ok(())
    }

    /// Writes the buffer out and flushes the writer; on an error, keeps what was not written
    /// (and only that). Dropped part-way, it leaves what it wrote counted in `written`, and the
    /// next call starts there.
    ///
    /// The flush is what says the bytes are out: tokio's stdout and files take a write at once
    /// and make it on a blocking thread, which may hang (a reader of stdout that stopped
    /// reading) or fail after the write returned; their flush waits for it and reports its error.
    ///
    /// Such a failed write is not made again: tokio drops its buffer and reports the error once,
    /// at the next write or flush, after which the writer takes writes again. So on an error,
    /// every frame handed to the writer (whole or in part) since the last successful flush is
    /// lost: moved from `unwritten` to `failed`, never counted written out by a later flush.
    /// Only the frames still whole in `buf`, not begun, stay unwritten (the next call writes
    /// them).
    async fn write_out(&mut self) -> Result<(), OutputError> {
        let result = loop {
            if self.written == self.buf.len() {
                break Ok(());
            }
            match self.w.write(&self.buf[self.written..]).await {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let written = std::mem::take(&mut self.written);
        if written > 0 {
            self.at_line_start = self.buf[written - 1] == b'\n';
        }
        self.buf.drain(..written);
        let result = match result {
            Ok(()) => self.w.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let lines = self.buf.iter().filter(|&&b| b == b'\n').count();
            let not_begun = lines - usize::from(!self.at_line_start && lines > 0);
            let not_begun = not_begun.min(self.unwritten);
            self.failed += self.unwritten - not_begun;
            self.unwritten = not_begun;
            return Err(self.error(e));
        }
        self.unwritten = 0;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), OutputError> {
        self.write_out().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(i: usize) -> Frame {
        Frame::agent(Bytes::from(format!("{{\"n\":{i}}}")))
    }

    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn refused(path: &Path) -> String {
        let e = open_output_file(path).expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        e.to_string()
    }

    fn warnings(path: &Path) -> Vec<String> {
        open_output_file(path).expect("opened").1
    }

    fn is_root() -> bool {
        euid() == 0
    }

    #[test]
    fn a_new_output_file_is_owner_only_and_appended_to() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.ndjson");
        let (mut f, w) = open_output_file(&path).expect("created");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(std::fs::metadata(&path).expect("metadata").mode() & 0o777, 0o600);
        std::io::Write::write_all(&mut f, b"one\n").expect("write");
        let (mut f, w) = open_output_file(&path).expect("opened again");
        assert!(w.is_empty(), "{w:?}");
        std::io::Write::write_all(&mut f, b"two\n").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"one\ntwo\n");
        // Group-readable is what a log reader's group may be given: no warning.
        chmod(&path, 0o640);
        assert!(warnings(&path).is_empty());
    }

    #[test]
    fn a_symbolic_link_is_never_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("target");
        std::fs::write(&target, "").expect("write");
        let link = dir.path().join("events.ndjson");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(refused(&link).contains("symbolic link"));
        // Nor one that points nowhere yet (it would create its target).
        let nowhere = dir.path().join("nowhere");
        let dangling = dir.path().join("dangling.ndjson");
        std::os::unix::fs::symlink(&nowhere, &dangling).expect("symlink");
        assert!(refused(&dangling).contains("symbolic link"));
        assert!(!nowhere.exists());
        assert_eq!(std::fs::metadata(&target).expect("metadata").len(), 0);
    }

    #[test]
    fn an_existing_file_others_may_read_or_change_is_reported_with_its_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "").expect("write");
        for (mode, says) in [
            (0o644, "every user may read it"),
            (0o660, "its group may change it"),
            (0o666, "every user may read it, every user may change it, its group may change it"),
        ] {
            chmod(&path, mode);
            let w = warnings(&path);
            assert_eq!(w.len(), 1, "{w:?}");
            assert!(w[0].contains(&format!("mode {mode:04o}: {says})")), "{}", w[0]);
            assert!(w[0].contains(&format!("chmod 600 {}", path.display())), "{}", w[0]);
        }
        // The agent leaves the mode as it found it: the fix is the operator's.
        assert_eq!(std::fs::metadata(&path).expect("metadata").mode() & 0o777, 0o666);
    }

    #[test]
    fn a_world_writable_directory_without_the_sticky_bit_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o777);
        let path = dir.path().join("events.ndjson");
        let e = refused(&path);
        assert!(e.contains("without the sticky bit") && e.contains("chmod o-w"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn in_a_sticky_shared_directory_only_an_own_file_with_one_name_is_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o1777);
        let path = dir.path().join("events.ndjson");
        assert!(warnings(&path).is_empty(), "created exclusively");
        assert!(warnings(&path).is_empty(), "ours: opened again");
        // A second name (planted by whoever may write there) could be a file to protect.
        let other = dir.path().join("other-name");
        std::fs::hard_link(&path, &other).expect("hard link");
        assert!(refused(&path).contains("hard links"));
        std::fs::remove_file(&other).expect("remove");
        if is_root() {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
            let e = refused(&path);
            assert!(e.contains("uid 65534") && e.contains("remove it or write elsewhere"), "{e}");
        }
    }

    #[test]
    fn another_user_s_file_or_directory_is_reported_with_its_fix() {
        if !is_root() {
            return; // Giving a file away takes root.
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "").expect("write");
        chmod(&path, 0o600);
        std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
        let w = warnings(&path);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("belongs to uid 65534") && w[0].contains("chown 0"), "{}", w[0]);
        let sub = dir.path().join("theirs");
        std::fs::create_dir(&sub).expect("mkdir");
        std::os::unix::fs::chown(&sub, Some(65534), None).expect("chown");
        let w = warnings(&sub.join("events.ndjson"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("directory") && w[0].contains("belongs to uid 65534"), "{}", w[0]);
    }

    #[test]
    fn a_directory_its_group_may_change_is_reported_with_its_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o770);
        let path = dir.path().join("events.ndjson");
        if !is_root() {
            // Our own directory, our own group: a warning unless it is a daemon's log group.
            let gid = std::fs::metadata(dir.path()).expect("metadata").gid();
            assert_eq!(warnings(&path).len(), usize::from(!trusted_group(euid(), gid, euid())));
            return;
        }
        // Any group but a daemon's: ordinary users, and the system groups that hold people
        // (adm 4, staff 50, users 100, docker...).
        for gid in [1000, 4242, 100, 4, 50, 999] {
            if group_name(gid).is_some_and(|n| TRUSTED_GROUPS.contains(&n.as_str())) {
                continue;
            }
            std::os::unix::fs::chown(dir.path(), None, Some(gid)).expect("chown");
            let w = warnings(&path);
            assert_eq!(w.len(), 1, "gid {gid}: {w:?}");
            assert!(
                w[0].contains(&format!("changed by its group (gid {gid}")) && w[0].contains("chmod g-w"),
                "{}",
                w[0]
            );
        }
        // root's group, and a daemon's log group by its name (Debian's /var/log is
        // root:syslog 0775): no warning.
        std::os::unix::fs::chown(dir.path(), None, Some(0)).expect("chown");
        assert!(warnings(&path).is_empty(), "gid 0");
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert!(TRUSTED_GROUPS.contains(&"syslog") && TRUSTED_GROUPS.contains(&"wazuh"));
        chmod(dir.path(), 0o775);
        assert!(warnings(&path).is_empty());
        // Another user's directory: its group is not vouched for, and its owner is named.
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(4)).expect("chown");
        let w = warnings(&path);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("changed by its group (gid 4") && w[1].contains("belongs to uid 65534"), "{w:?}");
    }

    #[test]
    fn a_path_that_names_no_file_is_an_error_that_says_what_to_give() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display();
        for (given, example) in [
            (format!("{d}/"), format!("{d}/docker-listener.ndjson")),
            (format!("{d}/."), format!("{d}/./docker-listener.ndjson")),
            (format!("{d}/.."), format!("{d}/../docker-listener.ndjson")),
            ("/".to_owned(), "/docker-listener.ndjson".to_owned()),
        ] {
            let e = open_output_file(Path::new(&given)).expect_err("no file named");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{given}: {e}");
            let e = e.to_string();
            assert!(e.contains("names a directory, not a file") && e.contains(&format!("e.g. file:{example}")), "{e}");
        }
        // Nothing was created anywhere.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        // A directory that does not exist is named with its fix.
        let e = open_output_file(&dir.path().join("missing/events.ndjson")).expect_err("no directory");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("mkdir -p"), "{e}");
        // A relative path is in the current directory, and a file's name is taken as it is.
        assert_eq!(split_file_path(Path::new("events.ndjson")).expect("split").0, Path::new("."));
        assert_eq!(split_file_path(Path::new("/events")).expect("split").0, Path::new("/"));
        assert_eq!(split_file_path(Path::new("a//.b")).expect("split"), (Path::new("a/"), ".b".as_ref()));
    }

    /// Swaps the checked directory for a symbolic link to a directory everyone may write to,
    /// between its checks and the file's open: the file is still opened in the directory checked.
    #[test]
    fn the_file_is_opened_in_the_directory_that_was_checked() {
        let top = tempfile::tempdir().expect("temp dir");
        let checked = top.path().join("logs");
        std::fs::create_dir(&checked).expect("mkdir");
        chmod(&checked, 0o700);
        let open = top.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        chmod(&open, 0o777);
        let moved = top.path().join("logs.checked");
        let path = checked.join("events.ndjson");
        let (mut f, w) = open_output_file_with(&path, || {
            std::fs::rename(&checked, &moved).expect("rename");
            std::os::unix::fs::symlink(&open, &checked).expect("symlink");
        })
        .expect("opened");
        assert!(w.is_empty(), "{w:?}");
        std::io::Write::write_all(&mut f, b"one\n").expect("write");
        assert_eq!(std::fs::read(moved.join("events.ndjson")).expect("in the checked directory"), b"one\n");
        assert_eq!(std::fs::read_dir(&open).expect("list").count(), 0, "nothing in the swapped-in directory");
        // Opened by its path now, the directory is the world-writable one: refused on what the
        // descriptor shows.
        let e = refused(&path);
        assert!(e.contains("without the sticky bit") && e.contains("mode 0777"), "{e}");
        // Same when a component above the directory is swapped.
        let deep = top.path().join("a/b");
        std::fs::create_dir_all(&deep).expect("mkdir");
        let open_b = open.join("b");
        std::fs::create_dir(&open_b).expect("mkdir");
        chmod(&open_b, 0o777);
        let (_, w) = open_output_file_with(&deep.join("events.ndjson"), || {
            std::fs::rename(top.path().join("a"), top.path().join("a.checked")).expect("rename");
            std::os::unix::fs::symlink(&open, top.path().join("a")).expect("symlink");
        })
        .expect("opened");
        assert!(w.is_empty(), "{w:?}");
        assert!(top.path().join("a.checked/b/events.ndjson").exists());
        assert_eq!(std::fs::read_dir(&open_b).expect("list").count(), 0);
    }

    #[test]
    fn a_named_pipe_nobody_reads_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.ndjson");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("a path without NUL");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || tx.send(open_output_file(&p).map(|_| ()).map_err(|e| e.to_string())));
        let r = rx.recv_timeout(Duration::from_secs(10)).expect("no wait for a reader");
        assert!(r.expect_err("refused").contains("named pipe"));
    }

    /// A reader that starts late and then reads slowly fills the queue: the sender waits on the
    /// socket's writability (registered for that wait only) and loses and reorders nothing.
    #[tokio::test]
    async fn a_full_queue_is_waited_out_and_nothing_is_lost_or_reordered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue");
        let reader = UnixDatagram::bind(&path).expect("bind the reader");
        const N: usize = 3_000;
        let read = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut got = Vec::with_capacity(N);
            let mut buf = [0u8; 256];
            while got.len() < N {
                let n = reader.recv(&mut buf).expect("recv");
                got.push(buf[..n].to_vec());
                if got.len() % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            got
        });
        let frames: Vec<Frame> = (0..N).map(frame).collect();
        let mut q = QueueSocket::new(&path);
        let sent = tokio::time::timeout(Duration::from_secs(10), q.send_batch(&frames))
            .await
            .expect("a wake-up when the queue drains (no hang)")
            .map_err(|(n, e)| format!("{n} sent, then {e}"))
            .expect("send all");
        assert_eq!(sent, N);
        let got = read.join().expect("reader thread");
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &frames[i].to_vec(), "datagram {i}");
        }
        // The socket came back from its wait and still sends.
        assert!(q.sock.is_some());
    }

    /// A writer that takes at most `step` bytes per write, every other write pending (and
    /// waking itself at once): the line output's writes are cut into many awaits.
    struct Trickle {
        out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        step: usize,
        pending: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.pending = !self.pending;
            if self.pending {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            let n = buf.len().min(self.step);
            self.out.lock().expect("not poisoned").extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A line output's batch dropped while it writes its full buffer out (the sink's abort):
    /// `taken` counts the frames in the buffer, and the final flush writes each of them once
    /// (the bytes written before the drop are not written again).
    #[tokio::test]
    async fn a_line_batch_dropped_mid_write_takes_whole_frames_and_writes_each_once() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = Trickle { out: out.clone(), step: 100, pending: false };
        let mut output = Output::Lines(LineWriter::new(Box::new(w), "test".into()));
        // ~1 KiB each: the 64 KiB buffer fills at about the 64th.
        let frames: Vec<Frame> = (0..200)
            .map(|i| Frame::agent(Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(1000)))))
            .collect();
        {
            let mut send = std::pin::pin!(output.send_batch(&frames));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // Until the buffer is full and part of it written.
            while out.lock().expect("not poisoned").is_empty() {
                assert!(send.as_mut().poll(&mut cx).is_pending(), "the batch cannot end before the first write");
            }
        }
        let taken = output.taken();
        assert!(0 < taken && taken < frames.len(), "{taken} taken");
        output.flush().await.expect("flush");
        let lines: Vec<u8> = frames[..taken]
            .iter()
            .flat_map(|f| {
                let mut l = f.to_vec();
                l.push(b'\n');
                l
            })
            .collect();
        assert!(*out.lock().expect("not poisoned") == lines, "the frames taken, each written once, whole");
    }

    /// A reader gone while the sender waits for room: the wait ends with an error, not a hang,
    /// and the next send reconnects.
    #[tokio::test]
    async fn a_reader_gone_during_the_wait_is_an_error_and_the_socket_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue");
        let reader = UnixDatagram::bind(&path).expect("bind the reader");
        let frames: Vec<Frame> = (0..5_000).map(frame).collect();
        let mut q = QueueSocket::new(&path);
        let close = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(reader);
        });
        let r = tokio::time::timeout(Duration::from_secs(10), q.send_batch(&frames)).await.expect("no hang");
        close.join().expect("closer thread");
        let (n, e) = r.expect_err("the reader went away");
        assert!(n < frames.len());
        assert!(matches!(e, OutputError::Unavailable { .. }), "{e}");
        assert!(q.sock.is_none());
    }

    /// A writer that takes `step` bytes of its first write, fails its second with EIO, then
    /// takes everything.
    struct FailsSecondWrite {
        out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        step: usize,
        writes: usize,
    }

    impl AsyncWrite for FailsSecondWrite {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.writes += 1;
            let n = match self.writes {
                1 => buf.len().min(self.step),
                2 => return std::task::Poll::Ready(Err(io::Error::from_raw_os_error(libc::EIO))),
                _ => buf.len(),
            };
            self.out.lock().expect("not poisoned").extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A write error after part of the buffer went out: the frame begun is lost (`failed`),
    /// the frames not begun stay unwritten and are written by the next flush; nothing is counted
    /// twice.
    #[tokio::test]
    async fn a_write_error_fails_the_frames_handed_over_and_keeps_those_not_begun() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = FailsSecondWrite { out: out.clone(), step: 3, writes: 0 };
        let mut output = Output::Lines(LineWriter::new(Box::new(w), "test".into()));
        let frames: Vec<Frame> = (0..3).map(frame).collect();
        assert_eq!(output.send_batch(&frames).await.map_err(|(_, e)| e.to_string()), Ok(3));
        assert_eq!((output.unwritten(), output.take_failed()), (3, 0));
        output.flush().await.expect_err("EIO");
        assert_eq!((output.unwritten(), output.take_failed()), (2, 1), "frame 0 begun, 1 and 2 not");
        assert_eq!(output.take_failed(), 0, "taken once");
        output.flush().await.expect("flush");
        assert_eq!((output.unwritten(), output.take_failed()), (0, 0));
        // What was taken is not written again.
        let all: Vec<u8> = frames.iter().flat_map(|f| [f.to_vec(), b"\n".to_vec()].concat()).collect();
        assert!(*out.lock().expect("not poisoned") == all);
        // A flush error loses every frame handed over.
        output.send_batch(&frames).await.map_err(|(_, e)| e.to_string()).expect("taken");
        if let Output::Lines(l) = &mut output {
            l.w = Box::new(FailsFlush);
        }
        output.flush().await.expect_err("ENOSPC");
        assert_eq!((output.unwritten(), output.take_failed()), (0, 3));
    }

    /// A writer that takes every write and fails every flush with ENOSPC.
    struct FailsFlush;

    impl AsyncWrite for FailsFlush {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Err(io::Error::from_raw_os_error(libc::ENOSPC)))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }
}
