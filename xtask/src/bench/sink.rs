//! A fast stand-in for Wazuh's queue socket: an AF_UNIX SOCK_DGRAM socket read in a tight loop.
//!
//! It must not be the bottleneck: a datagram socket's receive queue holds only
//! `net.unix.max_dgram_qlen` datagrams (10 by default), after which the daemon's `sendmsg`
//! would wait. So a dedicated thread drains it with `recvmmsg` (up to 64 datagrams per system
//! call into a 4 MiB buffer) and does only cheap checks per datagram:
//!
//! - counts datagrams and bytes, and notes when the first and the latest arrived;
//! - checks every datagram is a Wazuh frame of a Docker event
//!   (`1:Wazuh-Docker:{"integration":"docker","docker":` ... `}`), and counts the others
//!   (e.g. the daemon's own loss reports);
//! - reads the event's `timeNano` from the frame's tail and checks it strictly increases: no
//!   reordering, no duplicates;
//! - keeps copies of the first and last few frames for an exact comparison afterwards.
//!
//! The thread signals when the `expected`-th datagram arrives (the end of a run).
use std::{
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// What precedes every Docker event in a frame (docker-listener's `wazuh::DOCKER_EVENT_PREFIX`).
pub const DOCKER_FRAME_PREFIX: &[u8] = b"1:Wazuh-Docker:{\"integration\":\"docker\",\"docker\":";
/// What every frame of ours starts with.
const FRAME_HEADER: &[u8] = b"1:Wazuh-Docker:";

/// Datagrams per `recvmmsg` call, and the buffer for each (Wazuh reads at most 65535 bytes).
const BATCH: usize = 64;
const SLOT: usize = 1 << 16;
/// How many first and last frames are kept.
const KEEP: usize = 3;
/// Receive buffer asked for (SO_RCVBUFFORCE as root, else capped by net.core.rmem_max).
const RCVBUF: libc::c_int = 32 << 20;

/// Counters the benchmark polls while the run goes on.
#[derive(Default)]
pub struct Progress {
    pub datagrams: AtomicU64,
    /// Nanoseconds after `DatagramSink::epoch` at which the latest datagram arrived.
    last_arrival_ns: AtomicU64,
}

/// What the sink saw, once it stopped.
#[derive(Debug, Default)]
pub struct SinkReport {
    pub datagrams: u64,
    pub bytes: u64,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    /// Frames with the Docker event prefix and a readable `timeNano`.
    pub docker_frames: u64,
    /// Other well-formed frames of ours (`1:Wazuh-Docker:` + an object that is not a Docker
    /// event: loss reports).
    pub agent_frames: u64,
    /// Datagrams that are not frames at all, or Docker frames without a readable `timeNano`.
    pub malformed: u64,
    /// Datagrams longer than the receive slot (64 KiB): cut.
    pub truncated: u64,
    /// Docker frames whose `timeNano` did not exceed the previous one.
    pub out_of_order: u64,
    pub first_problem: Option<String>,
    pub first_frames: Vec<Vec<u8>>,
    pub last_frames: Vec<Vec<u8>>,
    /// CPU time of the receiving thread (to show the sink is not what limits the daemon).
    pub cpu: Option<Duration>,
    /// When each Docker frame arrived, in order (only when asked for: [`DatagramSink::bind_timed`]).
    pub arrivals: Vec<Instant>,
}

pub struct DatagramSink {
    path: PathBuf,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<SinkReport>>,
}

impl DatagramSink {
    /// Binds `path` and starts draining it. The receiver yields once the `expected`-th
    /// datagram has arrived.
    pub fn bind(path: &Path, expected: u64) -> Result<(DatagramSink, mpsc::Receiver<()>)> {
        Self::bind_with(path, expected, false)
    }

    /// As [`bind`](Self::bind), also noting when each Docker frame arrived
    /// ([`SinkReport::arrivals`]).
    pub fn bind_timed(path: &Path, expected: u64) -> Result<(DatagramSink, mpsc::Receiver<()>)> {
        Self::bind_with(path, expected, true)
    }

    fn bind_with(path: &Path, expected: u64, timed: bool) -> Result<(DatagramSink, mpsc::Receiver<()>)> {
        let sock =
            UnixDatagram::bind(path).with_context(|| format!("cannot bind the sink socket {}", path.display()))?;
        raise_rcvbuf(&sock);
        // Wake up now and then to notice `stop`.
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let epoch = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let (s, p) = (stop.clone(), progress.clone());
        let thread = std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || receive(&sock, epoch, expected, timed, &s, &p, &done_tx))?;
        Ok((DatagramSink { path: path.to_owned(), epoch, stop, progress, thread: Some(thread) }, done_rx))
    }

    /// Datagrams so far, and when the latest arrived.
    pub fn progress(&self) -> (u64, Option<Instant>) {
        let n = self.progress.datagrams.load(Ordering::Acquire);
        let at = self.progress.last_arrival_ns.load(Ordering::Acquire);
        (n, (n > 0).then(|| self.epoch + Duration::from_nanos(at)))
    }

    /// Stops the receiving thread and returns what it saw.
    pub fn finish(mut self) -> Result<SinkReport> {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else { bail!("the sink was already finished") };
        thread.join().map_err(|_| anyhow::anyhow!("the sink thread panicked"))
    }
}

impl Drop for DatagramSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Asks for a [`RCVBUF`]-byte receive buffer (SO_RCVBUFFORCE as root, else SO_RCVBUF).
pub fn raise_rcvbuf(sock: &UnixDatagram) {
    let fd = sock.as_raw_fd();
    let size = RCVBUF;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&size as *const libc::c_int).cast();
    // SAFETY: fd is an open socket; the option value is a c_int that outlives the calls.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, ptr, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, ptr, len);
        }
    }
}

/// Buffers for `recvmmsg` of up to [`BATCH`] datagrams of up to [`SLOT`] bytes each.
pub struct RecvBatch {
    buf: Vec<u8>,
    /// Point into `buf`, and `msgs` point at them: heap buffers, which never move.
    _iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        let mut buf = vec![0u8; BATCH * SLOT];
        let mut iovecs: Vec<libc::iovec> = buf
            .chunks_mut(SLOT)
            .map(|slot| libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: SLOT })
            .collect();
        // SAFETY: an all-zero mmsghdr is valid (null name, no control data).
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, iov) in msgs.iter_mut().zip(iovecs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        RecvBatch { buf, _iovecs: iovecs, msgs }
    }

    /// One `recvmmsg` with `flags`: how many datagrams arrived (0 after the read timeout,
    /// EAGAIN or EINTR).
    pub fn recv(&mut self, sock: &UnixDatagram, flags: libc::c_int) -> usize {
        // SAFETY: msgs points at BATCH headers whose iovecs point into `buf`, all owned by self.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        n.max(0) as usize
    }

    /// Datagram `i` of the last `recv`: its bytes (cut at [`SLOT`]) and whether it was longer.
    pub fn datagram(&self, i: usize) -> (&[u8], bool) {
        let m = &self.msgs[i];
        let len = (m.msg_len as usize).min(SLOT);
        (&self.buf[i * SLOT..i * SLOT + len], m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0)
    }
}

fn receive(
    sock: &UnixDatagram,
    epoch: Instant,
    expected: u64,
    timed: bool,
    stop: &AtomicBool,
    progress: &Progress,
    done: &mpsc::SyncSender<()>,
) -> SinkReport {
    let mut report = SinkReport::default();
    if timed {
        report.arrivals.reserve(expected as usize);
    }
    let mut last_time_nano = i64::MIN;
    let mut batch = RecvBatch::new();
    while !stop.load(Ordering::Relaxed) {
        let n = batch.recv(sock, libc::MSG_WAITFORONE);
        if n == 0 {
            // The read timeout, or EINTR: look at `stop` and go on.
            continue;
        }
        let now = Instant::now();
        report.first_at.get_or_insert(now);
        report.last_at = Some(now);
        let before = report.datagrams;
        for i in 0..n {
            let (frame, truncated) = batch.datagram(i);
            if truncated {
                report.truncated += 1;
            }
            let docker_before = report.docker_frames;
            check(frame, &mut report, &mut last_time_nano);
            if timed && report.docker_frames > docker_before {
                report.arrivals.push(now);
            }
            if report.first_frames.len() < KEEP {
                report.first_frames.push(frame.to_vec());
            }
            if i + KEEP >= n {
                if report.last_frames.len() == KEEP {
                    report.last_frames.remove(0);
                }
                report.last_frames.push(frame.to_vec());
            }
        }
        report.datagrams += n as u64;
        progress.last_arrival_ns.store(now.duration_since(epoch).as_nanos() as u64, Ordering::Release);
        progress.datagrams.store(report.datagrams, Ordering::Release);
        if before < expected && report.datagrams >= expected {
            let _ = done.try_send(());
        }
    }
    report.cpu = super::system::thread_cpu_time().ok();
    report
}

/// Checks one datagram: a frame, of a Docker event, in `timeNano` order.
fn check(frame: &[u8], report: &mut SinkReport, last_time_nano: &mut i64) {
    report.bytes += frame.len() as u64;
    let problem = |report: &mut SinkReport, what: &str| {
        report.malformed += 1;
        report.first_problem.get_or_insert_with(|| format!("{what}: {}", preview(frame)));
    };
    if !frame.starts_with(DOCKER_FRAME_PREFIX) {
        if frame.starts_with(FRAME_HEADER) && frame.get(FRAME_HEADER.len()) == Some(&b'{') && frame.ends_with(b"}") {
            report.agent_frames += 1;
        } else {
            problem(report, "not a Wazuh frame");
        }
        return;
    }
    match frame_time_nano(frame) {
        Some(t) => {
            report.docker_frames += 1;
            if t <= *last_time_nano {
                report.out_of_order += 1;
                report.first_problem.get_or_insert_with(|| format!("timeNano {t} after {last_time_nano}"));
            }
            *last_time_nano = t;
        }
        None => problem(report, "a Docker frame without a trailing timeNano"),
    }
}

/// `timeNano` from a frame ending in `"timeNano":<digits>}}` (dockerd writes it last).
pub fn frame_time_nano(frame: &[u8]) -> Option<i64> {
    let body = frame.strip_suffix(b"}}")?;
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let (head, number) = body.split_at(body.len() - digits);
    if !head.ends_with(b"\"timeNano\":") {
        return None;
    }
    number.iter().try_fold(0i64, |acc, d| acc.checked_mul(10)?.checked_add(i64::from(d - b'0')))
}

fn preview(frame: &[u8]) -> String {
    let s = String::from_utf8_lossy(&frame[..frame.len().min(160)]).into_owned();
    if frame.len() > 160 { format!("{s}… ({} bytes)", frame.len()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_time_nano_from_the_tail() {
        let f =
            br#"1:Wazuh-Docker:{"integration":"docker","docker":{"Type":"x","time":1,"timeNano":1795792475014659607}}"#;
        assert_eq!(frame_time_nano(f), Some(1795792475014659607));
        assert_eq!(frame_time_nano(br#"{"a":1}}"#), None);
        assert_eq!(frame_time_nano(br#"{"timeNano":}}"#), None);
    }

    #[test]
    fn counts_and_orders_datagrams() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("dl-sink-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("queue");
        let _ = std::fs::remove_file(&path);
        let (sink, done) = DatagramSink::bind(&path, 3)?;
        let tx = UnixDatagram::unbound()?;
        for t in [5, 7, 6] {
            let frame = format!("1:Wazuh-Docker:{{\"integration\":\"docker\",\"docker\":{{\"timeNano\":{t}}}}}");
            tx.send_to(frame.as_bytes(), &path)?;
        }
        done.recv_timeout(Duration::from_secs(5))?;
        let r = sink.finish()?;
        assert_eq!((r.datagrams, r.docker_frames, r.out_of_order, r.malformed), (3, 3, 1, 0));
        assert_eq!(r.first_frames.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
