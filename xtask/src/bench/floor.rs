//! The floor of the Docker path: the least a forwarder must do per event on this machine, at
//! the same load, measured in the same run as the daemons.
//!
//! A thread of the benchmark asks the fake dockerd for `/events` like the daemon, then every
//! [`TICK`] (the daemon's tick while events come close together) reads all the socket holds
//! with `read(2)`, finds the HTTP chunks (one per event) and sends each event to the sink as
//! one Wazuh datagram (`1:Wazuh-Docker:{"integration":"docker","docker":<event>}`, by
//! `sendmmsg`, 64 at a time, the frame's three parts as an iovec: no copy). No JSON parsing,
//! no cursor, no counters, no checks: the system calls every forwarder of Docker's one-write
//! -per-event stream into Wazuh's one-datagram-per-event queue pays, and the wake-ups of the
//! daemon's tick (a thread's sleep of exactly [`TICK`]; the daemon's Tokio timer rounds up to
//! its next millisecond, so the floor wakes, if anything, a little more often than the daemon).
//! Its CPU time (the thread's own, from /proc/thread-self/schedstat, in ns) from the first byte
//! of events to the last datagram, per event, is what the daemon's CPU per event is compared
//! with: the rest is the daemon's own work.
use std::{
    io::{Read as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::net::{UnixDatagram, UnixStream},
    },
    path::Path,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{events::chunk_at, sink::DOCKER_FRAME_PREFIX, system::Switches};

/// Datagrams per `sendmmsg`.
const BATCH: usize = 64;
/// The daemon's `docker::stream::TICK` (a unit test keeps the two equal).
pub const TICK: Duration = Duration::from_millis(2);
/// Gives up after this long without a byte (the fake stopped).
const SILENCE: Duration = Duration::from_secs(10);

/// A running floor forwarder.
pub struct Floor(JoinHandle<Result<(Duration, Switches)>>);

impl Floor {
    /// Connects to `docker_sock`, asks for `/events`, reads the head, and forwards `events`
    /// events to `queue`.
    pub fn start(docker_sock: &Path, queue: &Path, events: u64) -> Result<Floor> {
        let mut stream = UnixStream::connect(docker_sock)
            .with_context(|| format!("the floor cannot connect to {}", docker_sock.display()))?;
        let out = UnixDatagram::unbound()?;
        out.connect(queue).with_context(|| format!("the floor cannot connect to {}", queue.display()))?;
        stream.write_all(b"GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n\r\n")?;
        let thread =
            std::thread::Builder::new().name("bench-floor".into()).spawn(move || forward(stream, &out, events))?;
        Ok(Floor(thread))
    }

    /// Waits for the forwarder to finish; its CPU time and context switches from the first
    /// byte of events on.
    pub fn finish(self) -> Result<(Duration, Switches)> {
        self.0.join().map_err(|_| anyhow::anyhow!("the floor thread panicked"))?
    }
}

fn forward(mut stream: UnixStream, out: &UnixDatagram, events: u64) -> Result<(Duration, Switches)> {
    // The head (the fake sends it before it waits for the benchmark's go).
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    let body_start = loop {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            bail!("the fake dockerd closed before its head");
        }
        len += n;
        if let Some(i) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    buf.copy_within(body_start..len, 0);
    len -= body_start;
    stream.set_nonblocking(true)?;
    let (start_cpu, start_switches) = (thread_cpu()?, thread_switches()?);
    let mut sent = 0u64;
    let mut events_in_buf: Vec<(usize, usize)> = Vec::with_capacity(1024);
    let mut silent = Duration::ZERO;
    while sent < events {
        std::thread::sleep(TICK);
        let mut got = 0;
        loop {
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match stream.read(&mut buf[len..]) {
                Ok(0) => bail!("the fake dockerd closed the stream after {sent} events"),
                Ok(n) => {
                    len += n;
                    got += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        silent = if got == 0 { silent + TICK } else { Duration::ZERO };
        if silent > SILENCE {
            bail!("no data for {} s after {sent} events", SILENCE.as_secs());
        }
        // Whole chunks: `<hex>\r\n<event>\n\r\n`.
        events_in_buf.clear();
        let mut at = 0;
        while let Some((data, end)) = chunk_at(&buf[..len], at).context("from the fake dockerd")? {
            // The event without its newline.
            events_in_buf.push((data.start, data.end.saturating_sub(1).max(data.start)));
            at = end;
        }
        for batch in events_in_buf.chunks(BATCH) {
            send(out, &buf, batch)?;
            sent += batch.len() as u64;
        }
        buf.copy_within(at..len, 0);
        len -= at;
    }
    Ok((thread_cpu()?.saturating_sub(start_cpu), thread_switches()?.since(start_switches)))
}

/// One `sendmmsg` of these events as Wazuh frames (blocking while the sink's queue is full).
fn send(out: &UnixDatagram, buf: &[u8], events: &[(usize, usize)]) -> Result<()> {
    let mut iovecs: Vec<[libc::iovec; 3]> = events
        .iter()
        .map(|&(s, e)| {
            let part = |b: &[u8]| libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: b.len() };
            [part(DOCKER_FRAME_PREFIX), part(&buf[s..e]), part(b"}")]
        })
        .collect();
    // SAFETY: an all-zero mmsghdr is valid (no address, no control data).
    let mut msgs: Vec<libc::mmsghdr> = (0..events.len()).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovecs.iter_mut()) {
        m.msg_hdr.msg_iov = iov.as_mut_ptr();
        m.msg_hdr.msg_iovlen = 3;
    }
    let mut done = 0;
    while done < msgs.len() {
        // SAFETY: the headers point at iovecs and buffers that outlive the call.
        let n = unsafe {
            libc::sendmmsg(out.as_raw_fd(), msgs[done..].as_mut_ptr(), (msgs.len() - done) as libc::c_uint, 0)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("the floor's sendmmsg failed");
        }
        done += n as usize;
    }
    Ok(())
}

/// This thread's context switches so far.
fn thread_switches() -> Result<Switches> {
    let status = std::fs::read_to_string("/proc/thread-self/status").context("cannot read /proc/thread-self/status")?;
    Ok(super::system::status_switches(&status))
}

/// This thread's CPU time, to the nanosecond (the scheduler's own accounting).
fn thread_cpu() -> Result<Duration> {
    Ok(Duration::from_nanos(super::system::schedstat_ns(Path::new("/proc/thread-self/schedstat"))?))
}

#[cfg(test)]
mod tests {
    use super::TICK;

    /// The floor is measured at the daemon's tick: a floor that woke more or less often than the
    /// daemon would not be the daemon's floor.
    #[test]
    fn the_floor_ticks_as_the_daemon_does() {
        let source = include_str!("../../../docker-listener/src/docker/stream.rs");
        let line = source
            .lines()
            .find(|l| l.starts_with("pub const TICK: Duration = Duration::from_millis("))
            .expect("docker::stream::TICK is a `Duration::from_millis` constant");
        let ms: u64 = line
            .trim_start_matches("pub const TICK: Duration = Duration::from_millis(")
            .trim_end_matches(");")
            .parse()
            .expect("TICK's milliseconds");
        assert_eq!(TICK, std::time::Duration::from_millis(ms), "floor.rs's TICK differs from the daemon's: {line}");
    }
}
