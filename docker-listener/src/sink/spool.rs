//! The bounded buffer between the sources and the output.
//!
//! Sources push and never wait: Docker gives each subscriber 100 ms to take an event before it
//! silently skips it, and the kernel ring buffer fills if it is not drained. So the buffer is
//! bounded by bytes, and when it is full the *oldest* frames are dropped and counted (the newest
//! events are usually the ones an analyst needs). The sink pops from the front and, when the
//! output cannot take a frame right now, puts it back at the front.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::Notify;

use crate::{
    encode::{Frame, Origin},
    stats::Stats,
};

/// Loss reports kept while they cannot be sent (see `Inner::reports`).
const REPORTS_MAX: usize = 64;

#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
    notify: Notify,
    capacity: usize,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Loss reports: sent before anything else, never evicted to make room for frames. At most
    /// [`REPORTS_MAX`] wait (one per second while Wazuh is away); beyond that the oldest goes:
    /// every report carries the running total (`loss.events_total`), so the next one covers it.
    reports: VecDeque<Frame>,
    frames: VecDeque<Frame>,
    bytes: usize,
    /// Bytes of `frames` by `Frame::owner` (the container each is about): when the buffer is
    /// full, a container holding at least twice as many bytes as any other loses its own oldest
    /// frames first, so a storm in one container costs its own frames, not the others'.
    owners: HashMap<u64, usize>,
    /// Frames dropped since the last report, and the total.
    dropped_unreported: u64,
    closed: bool,
}

impl Inner {
    fn add(&mut self, f: &Frame) {
        self.bytes += f.len();
        *self.owners.entry(f.owner).or_default() += f.len();
    }

    fn sub(&mut self, f: &Frame) {
        self.bytes -= f.len();
        if let Some(b) = self.owners.get_mut(&f.owner) {
            *b = b.saturating_sub(f.len());
            if *b == 0 {
                self.owners.remove(&f.owner);
            }
        }
    }

    /// Removes the oldest frame of the owner holding at least twice as many bytes as any other
    /// (a container storming); when none stands out that way, the oldest frame of all.
    fn drop_noisiest(&mut self) -> bool {
        let (mut top, mut second) = ((0u64, 0usize), 0usize);
        for (&owner, &bytes) in &self.owners {
            if bytes > top.1 {
                second = top.1;
                top = (owner, bytes);
            } else if bytes > second {
                second = bytes;
            }
        }
        let at = if top.1 > 0 && top.1 >= 2 * second {
            self.frames.iter().position(|f| f.owner == top.0).unwrap_or(0)
        } else {
            0
        };
        let Some(f) = self.frames.remove(at) else { return false };
        self.sub(&f);
        true
    }
}

impl Spool {
    pub fn new(capacity: usize, stats: Arc<Stats>) -> Spool {
        Spool { inner: Mutex::new(Inner::default()), notify: Notify::new(), capacity, stats }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data (every update is a
        // single push/pop plus counters), so keep going rather than poisoning the pipeline.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends frames; drops the oldest while over capacity. Never waits.
    pub fn push_all(&self, frames: impl IntoIterator<Item = Frame>) {
        let mut inner = self.lock();
        for f in frames {
            inner.add(&f);
            inner.frames.push_back(f);
        }
        self.evict(inner);
        self.notify.notify_one();
    }

    pub fn push(&self, frame: Frame) {
        self.push_all(std::iter::once(frame));
    }

    /// Queues a loss report: it goes out before the buffered frames and is never dropped to
    /// make room (a report of losses must not itself be lost).
    pub fn push_report(&self, frame: Frame) {
        let mut inner = self.lock();
        if inner.reports.len() >= REPORTS_MAX {
            inner.reports.pop_front();
        }
        inner.reports.push_back(frame.report());
        drop(inner);
        self.notify.notify_one();
    }

    /// Puts a frame the output could not take back at the front.
    pub fn unpop(&self, frame: Frame) {
        self.unpop_all(std::iter::once(frame));
    }

    /// Puts frames the output could not take back at the front, in their order.
    pub fn unpop_all(&self, frames: impl DoubleEndedIterator<Item = Frame>) {
        let mut inner = self.lock();
        for f in frames.rev() {
            if f.origin == Origin::Report {
                inner.reports.push_front(f);
            } else {
                inner.add(&f);
                inner.frames.push_front(f);
            }
        }
        // Over capacity: the frames just put back are the oldest, so they go first.
        self.evict(inner);
    }

    /// Drops frames while over capacity (`Inner::drop_noisiest`); counts them, releases the
    /// lock.
    fn evict(&self, mut inner: std::sync::MutexGuard<'_, Inner>) {
        let mut dropped = 0u64;
        while inner.bytes > self.capacity {
            if !inner.drop_noisiest() {
                break;
            }
            dropped += 1;
        }
        inner.dropped_unreported += dropped;
        drop(inner);
        if dropped > 0 {
            Stats::add(&self.stats.dropped_buffer_full, dropped);
        }
    }

    pub fn try_pop(&self) -> Option<Frame> {
        let mut inner = self.lock();
        if let Some(r) = inner.reports.pop_front() {
            return Some(r);
        }
        let f = inner.frames.pop_front()?;
        inner.sub(&f);
        Some(f)
    }

    /// Waits for a frame; `None` once the spool is closed and empty.
    pub async fn pop(&self) -> Option<Frame> {
        let mut one = Vec::with_capacity(1);
        self.pop_batch(&mut one, 1).await.then(|| one.pop()).flatten()
    }

    /// Waits for frames and moves up to `max` of them, oldest first, into `out` (one lock for
    /// the batch). False once the spool is closed and empty.
    pub async fn pop_batch(&self, out: &mut Vec<Frame>, max: usize) -> bool {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if let Some(report) = inner.reports.pop_front() {
                    out.push(report);
                    return true;
                }
                if !inner.frames.is_empty() {
                    let n = max.min(inner.frames.len());
                    let start = out.len();
                    out.extend(inner.frames.drain(..n));
                    for f in &out[start..] {
                        inner.sub(f);
                    }
                    return true;
                }
                if inner.closed {
                    return false;
                }
            }
            notified.await;
        }
    }

    /// No more frames will be pushed; `pop` returns `None` once the spool is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Takes the count of drops not yet reported in a stats event.
    pub fn take_unreported_drops(&self) -> u64 {
        std::mem::take(&mut self.lock().dropped_unreported)
    }

    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.frames.len() + inner.reports.len(), inner.bytes)
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.frames.is_empty() && inner.reports.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(n: usize, tag: u8) -> Frame {
        Frame::agent(Bytes::from(vec![tag; n]))
    }

    #[test]
    fn a_full_buffer_drops_the_noisiest_container_s_frames_first() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        let s = Spool::new(6 * (hdr + 10), stats.clone());
        let of = |owner: u64, tag: u8| Frame { owner, ..frame(10, tag) };
        // A quiet container's frame first, then a storm from another.
        s.push(of(1, 100));
        for tag in 0..8 {
            s.push(of(2, tag));
        }
        let got: Vec<(u64, u8)> = std::iter::from_fn(|| s.try_pop()).map(|f| (f.owner, f.parts[1][0])).collect();
        assert_eq!(
            got,
            [(1, 100), (2, 3), (2, 4), (2, 5), (2, 6), (2, 7)],
            "the storm lost its oldest, the quiet frame stayed"
        );
        assert_eq!(stats.dropped_buffer_full.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(s.len(), (0, 0));
    }

    #[test]
    fn when_no_container_stands_out_the_oldest_frames_go_first() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        let s = Spool::new(4 * (hdr + 10), stats.clone());
        let of = |owner: u64, tag: u8| Frame { owner, ..frame(10, tag) };
        for tag in 0..6u8 {
            s.push(of(u64::from(tag % 3) + 1, tag));
        }
        let got: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(got, [2, 3, 4, 5]);
    }

    #[test]
    fn drops_oldest_when_full_and_counts() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        let s = Spool::new(3 * (hdr + 10), stats.clone());
        for tag in 0..5 {
            s.push(frame(10, tag));
        }
        assert_eq!(Stats::get(&stats.dropped_buffer_full), 2);
        assert_eq!(s.take_unreported_drops(), 2);
        assert_eq!(s.take_unreported_drops(), 0);
        let tags: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(tags, vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn batches_come_out_in_order_and_go_back_in_order() {
        let s = Spool::new(1 << 20, Arc::new(Stats::default()));
        for tag in 0..5 {
            s.push(frame(1, tag));
        }
        let mut batch = Vec::new();
        assert!(s.pop_batch(&mut batch, 3).await);
        assert_eq!(batch.iter().map(|f| f.parts[1][0]).collect::<Vec<_>>(), vec![0, 1, 2]);
        s.unpop_all(batch.drain(1..));
        let tags: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(tags, vec![1, 2, 3, 4]);
        assert_eq!(s.len(), (0, 0));
    }

    #[test]
    fn reports_go_first_and_are_never_evicted() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        let s = Spool::new(2 * (hdr + 10), stats.clone());
        s.push(frame(10, 1));
        s.push_report(frame(10, 9));
        for tag in 2..6 {
            s.push(frame(10, tag));
        }
        let tags: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(tags, vec![9, 4, 5]);
        assert_eq!(Stats::get(&stats.dropped_buffer_full), 3);
    }

    #[test]
    fn waiting_reports_are_bounded_and_the_newest_kept() {
        let s = Spool::new(1 << 20, Arc::new(Stats::default()));
        for tag in 0..(REPORTS_MAX as u8 + 10) {
            s.push_report(frame(10, tag));
        }
        let tags: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(tags.len(), REPORTS_MAX);
        assert_eq!(tags.first(), Some(&10));
        assert_eq!(tags.last(), Some(&(REPORTS_MAX as u8 + 9)));
    }

    #[test]
    fn unpop_keeps_order() {
        let s = Spool::new(1 << 20, Arc::new(Stats::default()));
        s.push(frame(1, 1));
        s.push(frame(1, 2));
        let f = s.try_pop().unwrap();
        s.unpop(f);
        let tags: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(tags, vec![1, 2]);
    }

    #[tokio::test]
    async fn pop_waits_and_ends_when_closed() {
        let s = Arc::new(Spool::new(1 << 20, Arc::new(Stats::default())));
        let s2 = s.clone();
        let t = tokio::spawn(async move { (s2.pop().await.is_some(), s2.pop().await.is_none()) });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        s.push(frame(1, 1));
        s.close();
        assert_eq!(t.await.unwrap(), (true, true));
    }
}
