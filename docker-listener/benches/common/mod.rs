//! What the `encode` and `alloc` benchmarks share: the event log, cut into chunks as hyper
//! hands them over, and a non-waiting `Spool::pop_batch`.
use bytes::{Bytes, BytesMut};
use docker_listener::{
    encode::Frame,
    sink::{Spool, output::BATCH},
};

/// The first 1000 events of the log the Docker-path scenario of `cargo xtask bench` streams.
pub const EVENTS: &str = include_str!("../data/events.ndjson");
/// The daemon's limit on one raw event line (`docker::source::MAX_RAW_EVENT`).
pub const MAX_LINE: usize = 16 << 20;

/// One pass over the log: chunks of 16-64 KiB (sizes from `seed`, deterministic), sliced from
/// one buffer like hyper's.
pub fn chunks(seed: u64) -> Vec<Bytes> {
    let mut buf = BytesMut::from(EVENTS.as_bytes());
    let mut s = seed | 1;
    let mut out = Vec::new();
    while !buf.is_empty() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let size = (16 << 10) + (s % (48 << 10)) as usize;
        out.push(buf.split_to(size.min(buf.len())).freeze());
    }
    out
}

/// `Spool::pop_batch` of up to the sink's `BATCH` frames when frames are waiting (it then
/// completes without waiting); false when the spool is empty.
pub fn pop_batch(spool: &Spool, out: &mut Vec<Frame>) -> bool {
    if spool.is_empty() {
        return false;
    }
    let mut fut = std::pin::pin!(spool.pop_batch(out, BATCH));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(true))
}
