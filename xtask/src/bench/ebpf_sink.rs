//! The Wazuh queue stand-in of the eBPF scenarios: an AF_UNIX datagram socket drained by a
//! thread that keeps every frame, with the wall-clock time it arrived.
//!
//! The Docker-path sink (`sink.rs`) checks Docker frames on the fly and keeps almost nothing;
//! the eBPF scenarios need the frames themselves afterwards (which exec events carry the
//! round's marker, which container, the kernel timestamp of each event), and they must not
//! spend CPU on JSON while the storm is being measured. So this sink only copies: `recvmmsg`
//! (64 datagrams per call), one `CLOCK_REALTIME` reading per call (the arrival time of the
//! batch: the event timestamps are wall-clock too), the bytes appended to one arena. Parsing
//! happens once the round is over ([`Frames`]).
use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::sink::{RecvBatch, raise_rcvbuf};

/// The frames one sink received.
#[derive(Default)]
pub struct Frames {
    data: Vec<u8>,
    /// (start in `data`, length, arrival in ns since the Unix epoch).
    index: Vec<(usize, usize, i64)>,
    /// Datagrams longer than 64 KiB (cut).
    pub truncated: u64,
}

impl Frames {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Each frame with its arrival time (ns since the Unix epoch).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], i64)> {
        self.index.iter().map(|&(start, len, at)| (&self.data[start..start + len], at))
    }
}

pub struct FrameSink {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    datagrams: Arc<AtomicU64>,
    thread: Option<JoinHandle<Frames>>,
}

impl FrameSink {
    /// Binds `path` and starts receiving.
    pub fn bind(path: &Path) -> Result<FrameSink> {
        let sock =
            UnixDatagram::bind(path).with_context(|| format!("cannot bind the sink socket {}", path.display()))?;
        raise_rcvbuf(&sock);
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let datagrams = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, datagrams) = (stop.clone(), datagrams.clone());
            std::thread::Builder::new().name("ebpf-sink".into()).spawn(move || receive(&sock, &stop, &datagrams))?
        };
        Ok(FrameSink { path: path.to_owned(), stop, datagrams, thread: Some(thread) })
    }

    pub fn datagrams(&self) -> u64 {
        self.datagrams.load(Ordering::Acquire)
    }

    /// Waits until nothing has arrived for `idle` (or `max` has passed); returns the count.
    pub fn wait_idle(&self, idle: Duration, max: Duration) -> u64 {
        let deadline = Instant::now() + max;
        let mut seen = (self.datagrams(), Instant::now());
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let n = self.datagrams();
            if n != seen.0 {
                seen = (n, Instant::now());
            } else if seen.1.elapsed() >= idle {
                break;
            }
        }
        seen.0
    }

    /// Stops receiving (after taking what is queued) and returns every frame.
    pub fn finish(mut self) -> Result<Frames> {
        self.stop.store(true, Ordering::Release);
        let Some(t) = self.thread.take() else { bail!("the sink was already finished") };
        t.join().map_err(|_| anyhow::anyhow!("the sink thread panicked"))
    }
}

impl Drop for FrameSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Wall-clock time now, in ns since the Unix epoch (the clock of the events' `@timestamp`).
pub fn realtime_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn receive(sock: &UnixDatagram, stop: &AtomicBool, count: &AtomicU64) -> Frames {
    let mut frames = Frames { data: Vec::with_capacity(4 << 20), ..Frames::default() };
    let mut batch = RecvBatch::new();
    let mut stopping = false;
    loop {
        // Once told to stop, take what is queued without waiting, then return.
        if !stopping && stop.load(Ordering::Acquire) {
            stopping = true;
        }
        let flags = if stopping { libc::MSG_DONTWAIT } else { libc::MSG_WAITFORONE };
        let n = batch.recv(sock, flags);
        if n == 0 {
            if stopping {
                break;
            }
            continue;
        }
        let at = realtime_ns();
        for i in 0..n {
            let (datagram, truncated) = batch.datagram(i);
            if truncated {
                frames.truncated += 1;
            }
            let start = frames.data.len();
            frames.data.extend_from_slice(datagram);
            frames.index.push((start, datagram.len(), at));
        }
        count.fetch_add(n as u64, Ordering::AcqRel);
    }
    frames
}
