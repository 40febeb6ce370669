//! The `/events` response, read straight off the Unix socket.
//!
//! dockerd flushes every event on its own: one HTTP chunk, one socket write, one wake-up of the
//! reader per event. At 10k events/s those wake-ups (the scheduler, `epoll_wait`, hyper's
//! connection task and the body channel's wakers between it and ours) cost about 20 µs per
//! event, ten times the event's own work (issue 15). So this reader has two modes:
//!
//! - **watched** while events are sparse: the socket is in Tokio's epoll set, and an event wakes
//!   us as soon as it arrives;
//! - **polled** while they come close together (two reads less than [`BUSY`] apart): the socket
//!   leaves the epoll set (so dockerd's writes wake no one) and is read every [`TICK`], all that
//!   arrived meanwhile at once, or at once again after a read of [`HEAVY`] bytes or more (a
//!   flood: then every read finds plenty, and waiting would let dockerd's side fill up). The
//!   first tick that finds nothing puts it back in the set; the kernel then reports data that
//!   came in between at once, so nothing waits longer than a tick.
//!
//! The HTTP/1.1 answer is parsed with `httparse` (the parser hyper itself uses): the head, then a
//! body that is chunked (Docker's), `Content-Length` long, or runs until the connection closes.
//! The body's data goes out as `Bytes` cut from the read buffer, without copying, when a read
//! filled a good part of it. A slice keeps its whole buffer alive (at least [`READ_SIZE`]), so
//! the few events of a sparse read are copied out instead ([`SMALL_READ`]): otherwise a
//! 600-byte event waiting in the spool while Wazuh is down would hold 32 KiB, and a full spool
//! (`buffer_bytes`, which counts the events' own bytes) fifty times its size.
use std::{
    io,
    time::{Duration, Instant},
};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::AsyncWriteExt as _;

/// How often a polled socket is read. 2 ms (tokio's millisecond timer makes it 2 to 3): each
/// tick is a timer wake-up of ~15-25 µs of CPU on these VMs, shared by the events it finds;
/// at 10k events/s one chunk per event, 2 ms instead of 1 cut the daemon's CPU per event by
/// ~9% (5.10 → 4.65 µs) for p99 delivery 2.3 → 3.3 ms, inside issue 15's 5 ms budget (3 ms
/// cut ~13% and left p99 at 4.3 ms, too close to it: BENCHMARKS.md, "the Docker path's tick"). The
/// benchmark's floor forwarder (`xtask/src/bench/floor.rs`) ticks the same.
pub const TICK: Duration = Duration::from_millis(2);
/// Reads closer together than this switch to polling.
const BUSY: Duration = Duration::from_millis(2);
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 32 << 10;
/// A polled socket that gave at least this much at one wake-up is read again at once (after
/// the other tasks had their turn) instead of a tick later: at such a rate (60k one-chunk
/// events/s and up) every read finds plenty, and a sender writing one event at a time would
/// fill its socket buffer (~170 events) within a few ticks.
const HEAVY: usize = 32 << 10;
/// Data decoded from a read that filled less than this share of its buffer's room (1/4) is
/// copied out to a buffer of its own size: the slices of a zero-copy hand-over keep their whole
/// read buffer alive, so this bounds the memory held per byte of events to 4 (the read buffer
/// stays free for the next read, which then allocates nothing).
const SMALL_READ: usize = 4;
/// At most this much is read at one wake-up before the data is handed on.
const READ_LIMIT: usize = 128 << 10;
/// The response head may not be larger.
const MAX_HEAD: usize = 64 << 10;
/// A chunk-size line (hex digits and extensions) or trailer line may not be longer.
const MAX_LINE: usize = 4 << 10;
const MAX_HEADERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("reading the Docker socket failed: {0}")]
    Io(#[from] io::Error),
    #[error("Docker's answer is not valid HTTP/1.1 ({0}): is --docker-host a Docker Engine socket?")]
    Malformed(String),
    #[error("the connection closed in the middle of {0}")]
    Cut(&'static str),
}

/// The socket, in the epoll set or out of it.
enum Socket {
    Watched(tokio::net::UnixStream),
    Polled(std::os::unix::net::UnixStream),
    /// Only while switching.
    Switching,
}

/// How the body is delimited, and where the decoder is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk: this many bytes to go.
    ChunkData(u64),
    /// After a chunk's data: its CRLF.
    ChunkEnd,
    /// After the last (empty) chunk: trailer lines until an empty one.
    Trailers,
    /// `Content-Length`: this many bytes to go.
    Length(u64),
    /// Until the connection closes.
    UntilClose,
    Done,
}

/// An HTTP answer's head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub content_type: String,
}

/// A response being read: its head is parsed, its body comes through [`ResponseBody::next_data`].
pub struct ResponseBody {
    socket: Socket,
    buf: BytesMut,
    body: Body,
    eof: bool,
    last_read: Option<Instant>,
    /// The bytes the last wake-up read.
    last_bytes: usize,
    /// The room of the read buffer at the last read (its capacity from the data on): what the
    /// data decoded from it would keep alive if handed over as slices.
    room: usize,
}

impl ResponseBody {
    /// Sends `GET <uri>` on `stream` and reads the answer's head.
    pub async fn get(mut stream: tokio::net::UnixStream, uri: &str) -> Result<(Head, ResponseBody), StreamError> {
        let request = format!("GET {uri} HTTP/1.1\r\nHost: docker\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        loop {
            stream.readable().await?;
            let eof = match stream.try_read_buf(&mut buf) {
                Ok(n) => n == 0,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some((used, head, body)) = parse_head(&buf)? {
                buf.advance(used);
                let reader = ResponseBody {
                    socket: Socket::Watched(stream),
                    buf,
                    body,
                    eof,
                    last_read: None,
                    last_bytes: 0,
                    room: 0,
                };
                return Ok((head, reader));
            }
            if eof {
                return Err(StreamError::Cut("the answer's head"));
            }
            if buf.len() > MAX_HEAD {
                return Err(StreamError::Malformed(format!("a head larger than {} KiB", MAX_HEAD >> 10)));
            }
            buf.reserve(READ_SIZE);
        }
    }

    /// Waits for body data, then appends to `out` all that is available now. `Ok(false)`: the
    /// body ended cleanly (nothing more will come), possibly after data appended by this call;
    /// `Ok(true)` with `out` still empty does not happen. Cancel-safe: data read is kept for
    /// the next call.
    pub async fn next_data(&mut self, out: &mut Vec<Bytes>) -> Result<bool, StreamError> {
        loop {
            self.decode(out)?;
            if self.body == Body::Done {
                return Ok(false);
            }
            if self.eof {
                return match self.body {
                    Body::UntilClose => Ok(false),
                    Body::ChunkData(_) | Body::ChunkEnd => Err(StreamError::Cut("a chunk")),
                    Body::Length(_) => Err(StreamError::Cut("a body of known length")),
                    Body::ChunkSize | Body::Trailers if !self.buf.is_empty() => {
                        Err(StreamError::Cut("a chunk's size line"))
                    }
                    // Docker's stream never ends with its last chunk: a close between chunks is
                    // dockerd stopping, the way it always ends.
                    _ => Ok(false),
                };
            }
            if !out.is_empty() {
                return Ok(true);
            }
            self.wait().await?;
            let read = self.read_available()?;
            self.switch_mode(read)?;
        }
    }

    /// Waits until the socket may have data: its readiness when watched, the next tick when
    /// polled.
    async fn wait(&mut self) -> io::Result<()> {
        match &self.socket {
            Socket::Watched(s) => s.readable().await,
            Socket::Polled(_) if self.last_bytes >= HEAVY => {
                tokio::task::yield_now().await;
                Ok(())
            }
            Socket::Polled(_) => {
                tokio::time::sleep(TICK).await;
                Ok(())
            }
            Socket::Switching => Err(lost_switching()),
        }
    }

    /// Reads what the socket holds (up to [`READ_LIMIT`]); the bytes read.
    fn read_available(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while total < READ_LIMIT {
            self.buf.reserve(READ_SIZE);
            if total == 0 {
                // The room this wake-up's reads start from (`decode` measures a read by it).
                self.room = self.buf.capacity();
            }
            let n = match &mut self.socket {
                Socket::Watched(s) => match s.try_read_buf(&mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                },
                Socket::Polled(s) => match read_into(s, &mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                },
                Socket::Switching => return Err(lost_switching()),
            };
            if n == 0 {
                self.eof = true;
                break;
            }
            total += n;
        }
        Ok(total)
    }

    /// Polls a busy socket, watches a quiet one.
    fn switch_mode(&mut self, read: usize) -> io::Result<()> {
        self.last_bytes = read;
        let now = Instant::now();
        let busy = read > 0 && self.last_read.is_some_and(|t| now.duration_since(t) < BUSY);
        if read > 0 {
            self.last_read = Some(now);
        }
        self.socket = match std::mem::replace(&mut self.socket, Socket::Switching) {
            Socket::Watched(s) if busy => Socket::Polled(s.into_std()?),
            Socket::Polled(s) if read == 0 && !self.eof => Socket::Watched(tokio::net::UnixStream::from_std(s)?),
            other => other,
        };
        Ok(())
    }

    /// Whether the socket is out of the epoll set now (for tests).
    #[cfg(test)]
    fn polled(&self) -> bool {
        matches!(self.socket, Socket::Polled(_))
    }

    /// Takes the body's data out of the buffer, as far as it goes: as slices of it, or copied
    /// when they are a small part of its room ([`SMALL_READ`]).
    fn decode(&mut self, out: &mut Vec<Bytes>) -> Result<(), StreamError> {
        let from = out.len();
        let result = decode(&mut self.buf, &mut self.body, out);
        let got: usize = out[from..].iter().map(Bytes::len).sum();
        if got > 0 && got.saturating_mul(SMALL_READ) < self.room {
            copy_out(&mut out[from..], got);
        }
        result
    }

    /// Reads the rest of a short body (an error's message), at most `limit` bytes.
    pub async fn collect(&mut self, limit: usize) -> Result<Bytes, StreamError> {
        let mut out = Vec::new();
        let mut all = BytesMut::new();
        loop {
            let open = self.next_data(&mut out).await?;
            for b in out.drain(..) {
                all.extend_from_slice(&b);
            }
            if !open || all.len() >= limit {
                break;
            }
        }
        all.truncate(limit);
        Ok(all.freeze())
    }
}

/// Replaces slices of the read buffer (`got` bytes in all) by slices of one buffer of that size.
fn copy_out(pieces: &mut [Bytes], got: usize) {
    let mut all = BytesMut::with_capacity(got);
    for p in pieces.iter() {
        all.extend_from_slice(p);
    }
    let mut all = all.freeze();
    for p in pieces.iter_mut() {
        *p = all.split_to(p.len());
    }
}

/// A failed switch between modes left no socket (`into_std`/`from_std` failed): the stream ends
/// and the source reconnects.
fn lost_switching() -> io::Error {
    io::Error::other("the Docker socket was lost while switching between epoll and polling")
}

/// One `read(2)` of a non-blocking socket into `buf`'s spare capacity (without zeroing it first,
/// as a `&mut [u8]` would need: 32 KiB of memset per read was 3% of the daemon's time).
fn read_into(s: &std::os::unix::net::UnixStream, buf: &mut BytesMut) -> io::Result<usize> {
    use std::os::fd::AsRawFd as _;
    let spare = buf.spare_capacity_mut();
    // SAFETY: the fd is open (owned by `s`); the kernel writes at most `spare.len()` bytes into
    // memory `buf` owns and does not otherwise touch; `set_len` covers exactly the bytes it wrote.
    let n = unsafe { libc::read(s.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the first `n` spare bytes were just initialised by `read`.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// The head, if `buf` holds all of it: its length, what it says, how the body is delimited.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head, Body)>, StreamError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(StreamError::Malformed(format!("bad response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let headers: &[httparse::Header<'_>] = resp.headers;
    let header = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
    };
    let chunked = header("transfer-encoding")
        .flat_map(|v| v.split(','))
        .last()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        Body::ChunkSize
    } else if let Some(len) = header("content-length").next() {
        let len = len.trim().parse::<u64>().map_err(|_| StreamError::Malformed(format!("Content-Length {len:?}")))?;
        if len == 0 { Body::Done } else { Body::Length(len) }
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Body::Done
    } else {
        Body::UntilClose
    };
    let head = Head {
        status,
        reason: resp.reason.unwrap_or("").to_owned(),
        content_type: header("content-type").next().unwrap_or("").to_owned(),
    };
    Ok(Some((used, head, body)))
}

/// Moves the body's data from `buf` to `out` (slices of `buf`'s memory), as far as `buf` goes.
fn decode(buf: &mut BytesMut, body: &mut Body, out: &mut Vec<Bytes>) -> Result<(), StreamError> {
    loop {
        match *body {
            Body::Done => return Ok(()),
            Body::UntilClose => {
                if !buf.is_empty() {
                    out.push(buf.split().freeze());
                }
                return Ok(());
            }
            Body::Length(left) | Body::ChunkData(left) => {
                if buf.is_empty() {
                    return Ok(());
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                out.push(buf.split_to(n).freeze());
                let left = left - n as u64;
                *body = match (*body, left) {
                    (Body::Length(_), 0) => Body::Done,
                    (Body::Length(_), _) => Body::Length(left),
                    (_, 0) => Body::ChunkEnd,
                    _ => Body::ChunkData(left),
                };
            }
            Body::ChunkEnd => {
                if buf.len() < 2 {
                    return Ok(());
                }
                if &buf[..2] != b"\r\n" {
                    return Err(StreamError::Malformed("a chunk longer than its size".into()));
                }
                buf.advance(2);
                *body = Body::ChunkSize;
            }
            // httparse takes a line with no digit for size 0, the last chunk: it is not one.
            Body::ChunkSize if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                let line = &buf[..buf.len().min(40)];
                return Err(StreamError::Malformed(format!(
                    "a chunk-size line without a size {:?}",
                    String::from_utf8_lossy(line)
                )));
            }
            Body::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buf.advance(used);
                    *body = if size == 0 { Body::Trailers } else { Body::ChunkData(size) };
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_LINE => {
                    return Err(StreamError::Malformed("a chunk-size line too long".into()));
                }
                Ok(httparse::Status::Partial) => return Ok(()),
                Err(_) => {
                    let line = &buf[..buf.len().min(40)];
                    return Err(StreamError::Malformed(format!(
                        "a bad chunk size {:?}",
                        String::from_utf8_lossy(line)
                    )));
                }
            },
            Body::Trailers => match memchr::memmem::find(buf, b"\r\n") {
                Some(0) => {
                    buf.advance(2);
                    *body = Body::Done;
                }
                Some(i) => buf.advance(i + 2),
                None if buf.len() > MAX_LINE => {
                    return Err(StreamError::Malformed("a trailer line too long".into()));
                }
                None => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn chunked(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Feeds `wire` in pieces cut at `cuts`; the data decoded, and the decoder's last state.
    fn feed(wire: &[u8], cuts: &[usize], mut body: Body) -> Result<(Vec<u8>, Body), StreamError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([&wire.len()]) {
            let c = c.clamp(at, wire.len());
            buf.extend_from_slice(&wire[at..c]);
            at = c;
            decode(&mut buf, &mut body, &mut out)?;
        }
        Ok((out.concat(), body))
    }

    #[test]
    fn docker_s_head_is_read_and_the_body_is_chunked() {
        let head = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nServer: Docker/20.10.24 (linux)\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n";
        let (used, h, body) = parse_head(head).unwrap().unwrap();
        assert_eq!((h.status, h.content_type.as_str(), body), (200, "application/json", Body::ChunkSize));
        assert_eq!(&head[used..], b"1a\r\n");
        assert!(parse_head(&head[..30]).unwrap().is_none());
        let (_, h, body) = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.status, h.reason.as_str(), body), (404, "Not Found", Body::Length(5)));
        let (_, _, body) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(body, Body::UntilClose);
        assert!(matches!(parse_head(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), Err(StreamError::Malformed(_))));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n"),
            Err(StreamError::Malformed(_))
        ));
    }

    #[test]
    fn bad_chunk_framing_is_an_error() {
        for wire in [&b"zz\r\nabc"[..], b"3\r\nabcd\r\n", b"3;ext=1\r\nabcXY"] {
            assert!(matches!(feed(wire, &[], Body::ChunkSize), Err(StreamError::Malformed(_))), "{wire:?}");
        }
        let long = vec![b'1'; MAX_LINE + 10];
        assert!(matches!(feed(&long, &[], Body::ChunkSize), Err(StreamError::Malformed(_))));
        // Extensions and a last chunk with trailers are HTTP/1.1.
        let (data, state) = feed(b"3;name=v\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", &[], Body::ChunkSize).unwrap();
        assert_eq!((data.as_slice(), state), (&b"abc"[..], Body::Done));
    }

    #[test]
    fn a_known_length_ends_the_body() {
        let (data, state) = feed(b"hello, and more", &[2, 4], Body::Length(5)).unwrap();
        assert_eq!((data.as_slice(), state), (&b"hello"[..], Body::Done));
    }

    proptest! {
        /// However the wire is cut into reads, the data comes out whole and in order.
        #[test]
        fn any_cut_of_the_wire_gives_the_same_data(
            parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..20),
            mut cuts in prop::collection::vec(0usize..8000, 0..30),
        ) {
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let wire = chunked(&parts);
            cuts.sort_unstable();
            let (data, state) = feed(&wire, &cuts, Body::ChunkSize).unwrap();
            prop_assert_eq!(data, parts.concat());
            prop_assert_eq!(state, Body::ChunkSize);
        }
    }

    /// A fake dockerd on a socket pair: the head, then events as `writes` say, each a chunk.
    async fn answer(lines: usize, gap: Duration) -> (String, bool, usize) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let writer = tokio::spawn(async move {
            let mut theirs = theirs;
            let mut req = [0u8; 512];
            theirs.readable().await.unwrap();
            let _ = theirs.try_read(&mut req);
            theirs
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for i in 0..lines {
                let line = format!("{{\"n\":{i}}}\n");
                theirs.write_all(&chunked(&[line.as_bytes()])).await.unwrap();
                tokio::time::sleep(gap).await;
            }
        });
        let (head, mut body) = ResponseBody::get(ours, "/v1.41/events").await.unwrap();
        assert_eq!(head.status, 200);
        let mut data = Vec::new();
        let mut out = Vec::new();
        let mut was_polled = false;
        let mut calls = 0;
        loop {
            let open = body.next_data(&mut out).await.unwrap();
            // The data read with the end comes with `false`.
            data.extend(out.drain(..).flat_map(|b| b.to_vec()));
            if !open {
                break;
            }
            calls += 1;
            was_polled |= body.polled();
        }
        writer.await.unwrap();
        (String::from_utf8(data).unwrap(), was_polled, calls)
    }

    fn expected(lines: usize) -> String {
        (0..lines).map(|i| format!("{{\"n\":{i}}}\n")).collect()
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_chunk_or_its_size_line_is_an_error_and_between_chunks_an_end() {
        for (tail, cut) in [(&b"1a\r\n{\"n\""[..], true), (b"1", true), (b"3\r\nab\n\r\n", false)] {
            let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
            let writer = tokio::spawn(async move {
                let mut req = [0u8; 512];
                theirs.readable().await.unwrap();
                let _ = theirs.try_read(&mut req);
                theirs.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
                theirs.write_all(tail).await.unwrap();
            });
            let (_, mut body) = ResponseBody::get(ours, "/events").await.unwrap();
            writer.await.unwrap();
            let mut out = Vec::new();
            let end = loop {
                match body.next_data(&mut out).await {
                    Ok(true) => out.clear(),
                    other => break other,
                }
            };
            assert_eq!(matches!(end, Err(StreamError::Cut(_))), cut, "{tail:?}: {end:?}");
            assert_eq!(!cut, matches!(end, Ok(false)), "{tail:?}: {end:?}");
        }
    }

    #[test]
    fn a_chunk_size_line_without_a_size_is_malformed_not_the_last_chunk() {
        // httparse reads "\r\n" as size 0: the data after it would be skipped as trailers.
        let wire = b"3\r\nabc\r\n\r\n5\r\nhello\r\n";
        assert!(matches!(feed(wire, &[], Body::ChunkSize), Err(StreamError::Malformed(_))));
        assert!(matches!(feed(b" 5\r\nhello\r\n", &[], Body::ChunkSize), Err(StreamError::Malformed(_))));
        // Cut anywhere, a good stream still decodes.
        for cut in 0..wire.len() {
            let (data, _) = feed(b"3\r\nabc\r\n5\r\nhello\r\n0\r\n\r\n", &[cut], Body::ChunkSize).unwrap();
            assert_eq!(data, b"abchello");
        }
    }

    /// A small event read alone is copied out of the read buffer (a slice would keep all of it
    /// alive while the event waits in the spool); a read that fills a good part of the buffer
    /// is handed over as slices of it, without a copy.
    #[tokio::test]
    async fn a_sparse_event_does_not_keep_its_read_buffer_alive() {
        let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
        let mut req = [0u8; 512];
        let writer = tokio::spawn(async move {
            theirs.readable().await.unwrap();
            let _ = theirs.try_read(&mut req);
            theirs.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
            theirs
        });
        let (_, mut body) = ResponseBody::get(ours, "/events").await.unwrap();
        let mut theirs = writer.await.unwrap();
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for i in 0..3 {
            theirs.write_all(&chunked(&[format!("{{\"n\":{i}}}\n").as_bytes()])).await.unwrap();
            assert!(body.next_data(&mut out).await.unwrap());
            assert_eq!(out.len(), 1);
            assert!(out[0].is_unique(), "a small read's event is a buffer of its own");
            kept.append(&mut out);
        }
        let big = vec![b'x'; READ_SIZE - 1024];
        theirs.write_all(&chunked(&[&big])).await.unwrap();
        let mut got = 0;
        while got < big.len() {
            assert!(body.next_data(&mut out).await.unwrap());
            got += out.iter().map(Bytes::len).sum::<usize>();
            assert!(out.iter().all(|b| !b.is_unique()), "a big read is handed over as slices of the read buffer");
            kept.append(&mut out);
        }
        assert_eq!(kept.concat(), [&b"{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n"[..], &big].concat());
    }

    #[tokio::test]
    async fn close_events_are_polled_and_sparse_ones_watched_and_every_byte_arrives() {
        // 300 events 100 µs apart: polled, several per read.
        let (data, polled, calls) = answer(300, Duration::from_micros(100)).await;
        assert_eq!(data, expected(300));
        assert!(polled, "a busy stream is polled");
        assert!(calls < 300, "{calls} reads for 300 events");
        // 5 events 20 ms apart: never polled, one read each (the last may come with the close,
        // which ends the stream between chunks).
        let (data, polled, calls) = answer(5, Duration::from_millis(20)).await;
        assert_eq!(data, expected(5));
        assert!(!polled, "a quiet stream is watched");
        assert!((4..=5).contains(&calls), "{calls} reads");
    }
}
