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
/// symbolic link. In a sticky directory others may write to (`/tmp`), a file that already
/// exists must be this process's own user's (someone else's could be read by them, or be a
/// trap laid before the agent started): refused otherwise.
fn open_output_file(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let refuse =
        |why: String| io::Error::new(io::ErrorKind::PermissionDenied, format!("refusing {}: {why}", path.display()));
    let shared_dir = path
        .parent()
        .and_then(|d| std::fs::metadata(if d.as_os_str().is_empty() { Path::new(".") } else { d }).ok())
        .is_some_and(|m| m.permissions().mode() & 0o1002 == 0o1002);
    let open = |create_new: bool| {
        std::fs::OpenOptions::new()
            .append(true)
            .create(!create_new)
            .create_new(create_new)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    let opened = if shared_dir {
        match open(true) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open(false),
            other => other,
        }
    } else {
        open(false)
    };
    let file = opened.map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refuse("it is a symbolic link (an output file is never followed): give the real path".into())
        } else {
            e
        }
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let meta = file.metadata()?;
    if shared_dir && meta.uid() != me {
        return Err(refuse(format!(
            "it is in a directory everyone may write to and belongs to uid {}, not to this process (uid {me}): \
             remove it or write elsewhere",
            meta.uid()
        )));
    }
    Ok(file)
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
                let f = open_output_file(path)?;
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
}

const LINE_BUFFER: usize = 64 << 10;

impl LineWriter {
    pub fn new(w: Box<dyn AsyncWrite + Unpin + Send>, name: PathBuf) -> LineWriter {
        LineWriter { w, buf: Vec::with_capacity(LINE_BUFFER), written: 0, name, taken: 0 }
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
        Ok(())
    }

    /// Writes the buffer out; on an error, keeps what was not written (and only that). Dropped
    /// part-way, it leaves what it wrote counted in `written`, and the next call starts there.
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
        self.buf.drain(..std::mem::take(&mut self.written));
        result.map_err(|e| self.error(e))
    }

    pub async fn flush(&mut self) -> Result<(), OutputError> {
        self.write_out().await?;
        self.w.flush().await.map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(i: usize) -> Frame {
        Frame::agent(Bytes::from(format!("{{\"n\":{i}}}")))
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
}
