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
    state::Cursor,
    stats::Stats,
};

/// Loss reports kept while they cannot be sent (see `Inner::reports`).
const REPORTS_MAX: usize = 64;

/// Slots `Inner::frames` keeps once a backlog has drained. A full spool's slots (16 MiB of 544
/// byte frames: 30,000 slots of 128 bytes, 4 MiB) would otherwise stay with the process for
/// good after a flood; beyond four times this many the slots go when the spool empties, and
/// the allocator is asked to give back what the backlog's frames held (`allocator::release`).
const SLOTS_KEPT: usize = 1024;

/// The shortest time between two such releases of memory.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// `Inner::head` at the start: room for 2^63 frames put back at the front and as many pushed
/// at the back, so sequence numbers never wrap.
const HEAD_START: u64 = 1 << 63;

#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
    notify: Notify,
    capacity: usize,
    stats: Arc<Stats>,
}

#[derive(Debug)]
struct Inner {
    /// Loss reports: sent before anything else, never evicted to make room for frames. At most
    /// [`REPORTS_MAX`] wait (one per second while Wazuh is away); beyond that the oldest goes:
    /// every report carries the running total (`loss.events_total`), so the next one covers it.
    reports: VecDeque<Frame>,
    /// The buffered frames, oldest first. `None` is a hole: a frame evicted from the middle
    /// (`drop_noisiest`), left in place so that the others keep their positions; pops skip
    /// holes, and `compact` removes them once they are more than an eighth of the frames.
    frames: VecDeque<Option<Frame>>,
    /// Holes in `frames`.
    holes: usize,
    /// The sequence number of `frames[0]`; `frames[i]`'s is `head + i`. Counts down when frames
    /// are put back at the front, up when they are popped.
    head: u64,
    bytes: usize,
    /// Bytes of `frames` by `Frame::owner` (the container each is about): when the buffer is
    /// full, a container holding at least twice as many bytes as any other loses its own oldest
    /// frames first, so a storm in one container costs its own frames, not the others'.
    owners: HashMap<u64, Owner>,
    /// Docker events handled without a frame (`Origin::Skipped`), in the order read: by the
    /// sequence number the next frame pushed after them got, as a cursor (each added to it:
    /// the latest time, the hashes at it). Passed once every frame before them is popped
    /// (`head` reached it): the sink then moves its cursor past them. At most one entry per
    /// slot of `frames` and one more (those passed are merged into the first).
    skips: VecDeque<(u64, Cursor)>,
    /// Frames dropped since the last report, and the total.
    dropped_unreported: u64,
    closed: bool,
    /// When the memory was last given back (`release_if_drained`).
    released: Option<std::time::Instant>,
    /// Slots looked at by `take_oldest_of` (tests bound the eviction's work with it).
    #[cfg(test)]
    scanned: usize,
}

#[derive(Debug)]
struct Owner {
    bytes: usize,
    /// No frame of this owner has a sequence number below this one: the search for its oldest
    /// frame starts there, not at the front, where the other containers' frames pile up while
    /// a storm in this one is being evicted (a scan from the front was O(frames) per eviction).
    from: u64,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            reports: VecDeque::new(),
            frames: VecDeque::new(),
            holes: 0,
            head: HEAD_START,
            bytes: 0,
            owners: HashMap::new(),
            skips: VecDeque::new(),
            dropped_unreported: 0,
            closed: false,
            released: None,
            #[cfg(test)]
            scanned: 0,
        }
    }
}

impl Inner {
    /// Frames buffered (holes not counted).
    fn live(&self) -> usize {
        self.frames.len() - self.holes
    }

    fn push_back(&mut self, f: Frame) {
        let seq = self.head + self.frames.len() as u64;
        if let Origin::Skipped { time_nano, hash } = f.origin {
            // Those already passed are one: while the sink cannot take them (Wazuh away), they
            // take no more room than that.
            while self.skips.len() >= 2 && self.skips[1].0 <= self.head {
                if let Some((_, second)) = self.skips.remove(1) {
                    self.skips[0].1.merge(&second);
                }
            }
            match self.skips.back_mut() {
                Some((last, c)) if *last == seq => c.advance(time_nano, hash),
                _ => {
                    let mut c = Cursor::default();
                    c.advance(time_nano, hash);
                    self.skips.push_back((seq, c));
                }
            }
            return;
        }
        self.add(&f, seq);
        self.frames.push_back(Some(f));
    }

    /// Whether a skipped event has no frame left before it.
    fn skip_passed(&self) -> bool {
        self.skips.front().is_some_and(|s| s.0 <= self.head)
    }

    fn push_front(&mut self, f: Frame) {
        self.head -= 1;
        self.add(&f, self.head);
        self.frames.push_front(Some(f));
    }

    fn add(&mut self, f: &Frame, seq: u64) {
        self.bytes += f.len();
        let o = self.owners.entry(f.owner).or_insert(Owner { bytes: 0, from: seq });
        o.bytes += f.len();
        o.from = o.from.min(seq);
    }

    fn sub(&mut self, f: &Frame) {
        self.bytes -= f.len();
        if let Some(o) = self.owners.get_mut(&f.owner) {
            o.bytes = o.bytes.saturating_sub(f.len());
            if o.bytes == 0 {
                self.owners.remove(&f.owner);
            }
        }
    }

    /// Takes the oldest frame (holes before it go).
    fn pop_front(&mut self) -> Option<Frame> {
        loop {
            let slot = self.frames.pop_front()?;
            self.head += 1;
            match slot {
                Some(f) => {
                    self.sub(&f);
                    return Some(f);
                }
                None => self.holes -= 1,
            }
        }
    }

    /// Once no frame is left (holes only, or nothing): the holes go (as pops would take them),
    /// and a backlog's slots go with them (`SLOTS_KEPT`). Whether they did: the memory its
    /// frames held is then to be given back, once the lock is released.
    fn settle(&mut self) -> bool {
        if self.live() > 0 {
            return false;
        }
        self.head += self.frames.len() as u64;
        self.frames.clear();
        self.holes = 0;
        if self.frames.capacity() > 4 * SLOTS_KEPT {
            self.frames.shrink_to(SLOTS_KEPT);
            self.skips.shrink_to(SLOTS_KEPT);
            // (No frame left: no owner either.)
            self.owners.shrink_to_fit();
            return true;
        }
        false
    }

    /// Removes the oldest frame of the owner holding at least twice as many bytes as any other
    /// (a container storming), leaving a hole; when none stands out that way, the oldest frame
    /// of all.
    fn drop_noisiest(&mut self) -> bool {
        let (mut top, mut second) = ((0u64, 0usize), 0usize);
        for (&owner, o) in &self.owners {
            if o.bytes > top.1 {
                second = top.1;
                top = (owner, o.bytes);
            } else if o.bytes > second {
                second = o.bytes;
            }
        }
        if top.1 > 0
            && top.1 >= 2 * second
            && let Some(f) = self.take_oldest_of(top.0)
        {
            self.sub(&f);
            self.compact();
            return true;
        }
        self.pop_front().is_some()
    }

    /// Takes `owner`'s oldest frame out of `frames`, leaving a hole; searches from its `from`.
    fn take_oldest_of(&mut self, owner: u64) -> Option<Frame> {
        let from = self.owners.get(&owner)?.from.max(self.head);
        let start = usize::try_from(from - self.head).ok()?.min(self.frames.len());
        let at = start + self.frames.range(start..).position(|s| s.as_ref().is_some_and(|f| f.owner == owner))?;
        #[cfg(test)]
        {
            self.scanned += at - start + 1;
        }
        let f = self.frames.get_mut(at)?.take()?;
        self.holes += 1;
        if let Some(o) = self.owners.get_mut(&owner) {
            o.from = self.head + at as u64 + 1;
        }
        // Holes at the front go at once: with one owner storming alone, every frame taken is
        // the oldest, and none piles up for `compact` to move.
        while let Some(None) = self.frames.front() {
            self.frames.pop_front();
            self.head += 1;
            self.holes -= 1;
        }
        Some(f)
    }

    /// Removes the holes once they are more than 64 and more than an eighth of the frames:
    /// each slot moved (and each slot searched again after it) is paid for by the evictions
    /// that made the holes, about 8 per eviction, and while a storm is evicted the holes take
    /// at most an eighth more room than the frames. Positions change, so every owner's search
    /// starts at the front again.
    fn compact(&mut self) {
        if self.holes <= 64 || self.holes <= self.live() / 8 {
            return;
        }
        // The skipped events keep their place among the frames: their sequence numbers lose
        // the holes before them, as the frames after those holes do.
        let (mut holes, mut at) = (0u64, 0usize);
        for (seq, _) in self.skips.iter_mut() {
            let upto = usize::try_from(seq.saturating_sub(self.head)).unwrap_or(usize::MAX).min(self.frames.len());
            if upto > at {
                holes += self.frames.range(at..upto).filter(|f| f.is_none()).count() as u64;
                at = upto;
            }
            *seq -= holes.min(seq.saturating_sub(self.head));
        }
        self.frames.retain(Option::is_some);
        self.holes = 0;
        for o in self.owners.values_mut() {
            o.from = self.head;
        }
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
            inner.push_back(f);
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
                inner.push_front(f);
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
        let f = inner.pop_front();
        let drained = inner.settle();
        self.release_if_drained(inner, drained);
        f
    }

    /// After a backlog drained (`SLOTS_KEPT`), with the lock released: the memory its frames
    /// held goes back to the kernel, so that the agent's RSS after a flood is what it was
    /// before, not the flood's. Once per backlog of more than 4,096 frames, and at most once
    /// every `RELEASE_EVERY`: the allocator's walk holds up the agent's one thread while it
    /// runs, and bursts of that size in a row need not pay it each time.
    fn release_if_drained(&self, mut inner: std::sync::MutexGuard<'_, Inner>, drained: bool) {
        // (The clock is read only after a drained backlog, not on every pop.)
        let due = drained && {
            let now = std::time::Instant::now();
            let due = inner.released.is_none_or(|at| now.duration_since(at) >= RELEASE_EVERY);
            if due {
                inner.released = Some(now);
            }
            due
        };
        drop(inner);
        if due {
            crate::allocator::release();
        }
    }

    /// Waits for a frame; `None` once the spool is closed and empty.
    pub async fn pop(&self) -> Option<Frame> {
        let mut one = Vec::with_capacity(1);
        self.pop_batch(&mut one, 1).await.then(|| one.pop()).flatten()
    }

    /// The Docker events handled without a frame that no frame is left before (every frame
    /// before them popped: taken by the caller, which puts back those it could not send before
    /// it asks), as one cursor; `None` when there is none.
    pub fn take_passed_skips(&self) -> Option<Cursor> {
        let mut inner = self.lock();
        let mut passed: Option<Cursor> = None;
        while inner.skip_passed() {
            if let Some((_, c)) = inner.skips.pop_front() {
                match &mut passed {
                    Some(p) => p.merge(&c),
                    None => passed = Some(c),
                }
            }
        }
        passed
    }

    /// Waits for frames and moves up to `max` of them, oldest first, into `out` (one lock for
    /// the batch); returns with none when only skipped events wait, all passed
    /// (`take_passed_skips`). False once the spool is closed and empty.
    pub async fn pop_batch(&self, out: &mut Vec<Frame>, max: usize) -> bool {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if let Some(report) = inner.reports.pop_front() {
                    out.push(report);
                    return true;
                }
                if inner.live() > 0 {
                    let n = max.min(inner.live());
                    out.extend(std::iter::from_fn(|| inner.pop_front()).take(n));
                    let drained = inner.settle();
                    self.release_if_drained(inner, drained);
                    return true;
                }
                if inner.skip_passed() {
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
        (inner.live() + inner.reports.len(), inner.bytes)
    }

    /// Calls `f` with the origin of every frame buffered (the reports, then the frames oldest
    /// first): a walk over the whole buffer under its lock, for shutdown's accounting
    /// (`sink::account_left`), not for the hot path.
    pub fn for_each_origin(&self, mut f: impl FnMut(Origin)) {
        let inner = self.lock();
        inner.reports.iter().chain(inner.frames.iter().flatten()).for_each(|fr| f(fr.origin));
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.live() == 0 && inner.reports.is_empty()
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

    /// A drained backlog gives its slots back (a flood's 4 MiB of them stayed with the process
    /// for good); a small one keeps them, and so does a backlog still draining.
    #[test]
    fn a_drained_backlog_gives_its_slots_back() {
        let s = Spool::new(usize::MAX, Arc::new(Stats::default()));
        let fill = |n: usize| s.push_all((0..n).map(|i| frame(10, i as u8)));
        fill(3 * SLOTS_KEPT);
        while s.try_pop().is_some() {}
        assert!(s.lock().frames.capacity() >= 3 * SLOTS_KEPT, "a small backlog keeps its slots");
        fill(8 * SLOTS_KEPT);
        let mut batch = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(s.pop_batch(&mut batch, 4 * SLOTS_KEPT));
        assert!(s.lock().frames.capacity() >= 8 * SLOTS_KEPT, "still draining");
        rt.block_on(s.pop_batch(&mut batch, 4 * SLOTS_KEPT));
        assert_eq!(batch.len(), 8 * SLOTS_KEPT);
        let inner = s.lock();
        assert!(inner.frames.capacity() <= SLOTS_KEPT + 64, "{}", inner.frames.capacity());
        assert!(inner.released.is_some(), "the memory was given back once the lock was released");
    }

    /// Holes left behind the last frame (a storm's frames evicted from the middle) do not keep
    /// a drained backlog's slots: they go with them, as pops would have taken them, and a
    /// skipped event behind them is passed.
    #[test]
    fn holes_behind_the_last_frame_do_not_keep_a_backlog_s_slots() {
        let s = Spool::new(usize::MAX, Arc::new(Stats::default()));
        s.push_all((0..8 * SLOTS_KEPT).map(|i| Frame { owner: 1 + (i % 2) as u64, ..frame(10, i as u8) }));
        s.push(Frame { origin: Origin::Skipped { time_nano: 5, hash: 5 }, ..frame(0, 0) });
        {
            // The last frames of owner 2, evicted from the middle: holes at the back.
            let mut inner = s.lock();
            for _ in 0..10 {
                let at = inner.frames.iter().rposition(|f| f.as_ref().is_some_and(|f| f.owner == 2)).expect("a frame");
                let f = inner.frames[at].take().expect("a frame");
                inner.sub(&f);
                inner.holes += 1;
            }
        }
        // Drained by batches, which take the frames and leave the holes behind them.
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let mut batch = Vec::new();
        while s.lock().live() > 0 {
            rt.block_on(s.pop_batch(&mut batch, 4 * SLOTS_KEPT));
        }
        let inner = s.lock();
        assert!(inner.frames.is_empty() && inner.holes == 0, "{} slots, {} holes", inner.frames.len(), inner.holes);
        assert!(inner.frames.capacity() <= SLOTS_KEPT + 64, "{}", inner.frames.capacity());
        assert!(inner.skip_passed(), "the skipped event behind the holes is passed");
        assert_eq!((inner.bytes, inner.owners.len()), (0, 0));
    }

    /// Frames evicted from the middle (holes) are left out; reports are in.
    #[test]
    fn every_frame_buffered_is_walked_holes_left_out() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        let s = Spool::new(6 * (hdr + 10), stats.clone());
        let docker = Origin::Docker { time_nano: 1, hash: 1 };
        s.push(Frame { origin: docker, owner: 1, ..frame(10, 0) });
        for tag in 0..8 {
            s.push(Frame { owner: 2, ..frame(10, tag) });
        }
        s.push_report(frame(10, 9));
        assert!(s.lock().holes > 0, "the storm's oldest went from behind the quiet frame");
        let mut origins = Vec::new();
        s.for_each_origin(|o| origins.push(o));
        assert_eq!(
            origins,
            [Origin::Report, docker, Origin::Agent, Origin::Agent, Origin::Agent, Origin::Agent, Origin::Agent]
        );
        assert_eq!(origins.len(), s.len().0);
    }

    /// One container storming alone: each frame evicted is the oldest of all, taken from the
    /// front; no hole is left for a compaction to move under the lock.
    #[test]
    fn a_storm_alone_is_evicted_from_the_front_without_holes() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        let s = Spool::new(100 * (hdr + 10), stats.clone());
        for i in 0..10_000 {
            s.push(Frame { owner: 7, ..frame(10, (i % 250) as u8) });
            assert_eq!(s.lock().holes, 0);
        }
        assert_eq!(Stats::get(&stats.dropped_buffer_full), 9_900);
        let got: Vec<u8> = std::iter::from_fn(|| s.try_pop()).map(|f| f.parts[1][0]).collect();
        assert_eq!(got, (9_900..10_000).map(|i| (i % 250) as u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_skipped_event_is_passed_once_every_frame_before_it_is_popped_and_stays_so_only_if_not_put_back() {
        let spool = Spool::new(1 << 20, Arc::new(Stats::default()));
        let agent = || Frame::agent(bytes::Bytes::from_static(b"{}"));
        let at = |t: i64, h: &[u64]| Some(Cursor { time_nano: t, delivered_at_time: h.to_vec() });
        spool.push_all([agent(), Frame::skip(6, 1), Frame::skip(5, 2), Frame::skip(6, 3), agent(), Frame::skip(7, 4)]);
        assert_eq!(spool.take_passed_skips(), None, "frames before them");
        let first = spool.try_pop().expect("a frame");
        assert_eq!(
            spool.take_passed_skips(),
            at(6, &[1, 3]),
            "a run of them as a cursor: the latest, every hash at it"
        );
        spool.unpop(first);
        let second = (spool.try_pop(), spool.try_pop());
        spool.unpop_all([second.0.expect("a frame"), second.1.expect("a frame")].into_iter());
        assert_eq!(spool.take_passed_skips(), None, "the frames were put back");
        assert!(spool.try_pop().is_some() && spool.try_pop().is_some());
        assert_eq!(spool.take_passed_skips(), at(7, &[4]));
    }

    /// Skipped events the sink does not take (Wazuh away) take one entry once passed, however
    /// many; and they keep their place among the frames when holes are removed.
    #[test]
    fn skipped_events_take_bounded_room_and_keep_their_place_through_a_compaction() {
        let spool = Spool::new(20_000, Arc::new(Stats::default()));
        let frame = |owner: u64, n: usize| Frame { owner, ..Frame::agent(bytes::Bytes::from(vec![b'x'; n])) };
        for i in 0..10_000 {
            spool.push_all([frame(0, 10), Frame::skip(i + 1, i as u64)]);
            let _ = spool.try_pop();
        }
        assert!(spool.lock().skips.len() <= 2, "{} entries", spool.lock().skips.len());
        assert_eq!(spool.take_passed_skips().map(|c| c.time_nano), Some(10_000));
        // A quiet frame, a storm behind it, a skipped event, then one big frame: the storm is
        // evicted into holes, compacted away; the skipped event passes once the frames before
        // it are popped.
        spool.push_all(std::iter::once(frame(1, 10)).chain((0..400).map(|_| frame(2, 40))));
        spool.push_all([Frame::skip(20_000, 9), frame(3, 3_000)]);
        assert!(spool.lock().holes < 64, "compacted");
        while spool.take_passed_skips().is_none() {
            assert!(spool.try_pop().is_some(), "the skipped event never passed");
        }
        assert!(spool.try_pop().is_some_and(|f| f.owner == 3), "passed just before the frame after it");
    }

    /// A storm evicted behind many quiet frames: each eviction looks at a few slots, not at
    /// every quiet frame in front of the storm's oldest; the holes stay a small part of the
    /// buffer; what is kept and its order are drop-oldest's.
    #[test]
    fn evicting_a_storm_behind_quiet_frames_is_not_a_scan_from_the_front() {
        let stats = Arc::new(Stats::default());
        let hdr = crate::wazuh::FRAME_HEADER.len();
        const QUIET: usize = 900; // 300 containers, 3 frames each
        const STORM: usize = 20_000;
        let s = Spool::new(1_000 * (hdr + 10), stats.clone());
        let of = |owner: u64, tag: u8| Frame { owner, ..frame(10, tag) };
        for i in 0..QUIET {
            s.push(of(1 + (i % 300) as u64, 1));
        }
        for i in 0..STORM {
            s.push(of(1_000, (i % 200) as u8 + 2));
            let inner = s.lock();
            assert!(inner.holes <= 64.max(inner.live() / 8), "{} holes for {} frames", inner.holes, inner.live());
        }
        let evicted = STORM - 100;
        assert_eq!(Stats::get(&stats.dropped_buffer_full), evicted as u64);
        let scanned = s.lock().scanned;
        // A scan from the front: ~QUIET slots per eviction (19 million in all); here about 8.
        assert!(scanned < 10 * evicted, "{scanned} slots looked at for {evicted} evictions");
        let got: Vec<(u64, u8)> = std::iter::from_fn(|| s.try_pop()).map(|f| (f.owner, f.parts[1][0])).collect();
        let want: Vec<(u64, u8)> = (0..QUIET)
            .map(|i| (1 + (i % 300) as u64, 1))
            .chain((STORM - 100..STORM).map(|i| (1_000, (i % 200) as u8 + 2)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(s.len(), (0, 0));
    }

    /// The spool's eviction as it was before holes and `Owner::from` (drop_noisiest scanned
    /// from the front and removed from the middle): the reference the spool must match.
    struct Model {
        frames: VecDeque<Frame>,
        capacity: usize,
        dropped: u64,
    }

    impl Model {
        fn bytes(&self) -> usize {
            self.frames.iter().map(Frame::len).sum()
        }

        fn evict(&mut self) {
            while self.bytes() > self.capacity {
                let mut owners: HashMap<u64, usize> = HashMap::new();
                for f in &self.frames {
                    *owners.entry(f.owner).or_default() += f.len();
                }
                let (mut top, mut second) = ((0u64, 0usize), 0usize);
                for (&owner, &bytes) in &owners {
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
                self.frames.remove(at);
                self.dropped += 1;
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Frames pushed together: (owner, padding).
        Push(Vec<(u64, usize)>),
        /// A batch popped, then its last `n` put back (an output that took only the first ones).
        Pop { max: usize, back: usize },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => prop::collection::vec((0u64..4, 0usize..40), 1..8).prop_map(Op::Push),
            1 => (1usize..10, 0usize..10).prop_map(|(max, back)| Op::Pop { max, back }),
        ]
    }

    proptest::proptest! {
        /// Any pushes, batches popped and frames put back: the same frames come out, in the
        /// same order, and the same ones are dropped, as with the scan from the front.
        #[test]
        fn eviction_with_holes_matches_the_scan_from_the_front(
            capacity in 100usize..800,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let stats = Arc::new(Stats::default());
            let s = Spool::new(capacity, stats.clone());
            let mut model = Model { frames: VecDeque::new(), capacity, dropped: 0 };
            let mut id = 0u32;
            for op in ops {
                match op {
                    Op::Push(frames) => {
                        let frames: Vec<Frame> = frames
                            .into_iter()
                            .map(|(owner, pad)| {
                                id += 1;
                                let mut body = id.to_le_bytes().to_vec();
                                body.resize(4 + pad, 0);
                                Frame { owner, ..Frame::agent(Bytes::from(body)) }
                            })
                            .collect();
                        model.frames.extend(frames.iter().cloned());
                        model.evict();
                        s.push_all(frames);
                    }
                    Op::Pop { max, back } => {
                        let mut batch = Vec::new();
                        if model.frames.is_empty() {
                            proptest::prop_assert!(s.is_empty());
                            continue;
                        }
                        proptest::prop_assert!(rt.block_on(s.pop_batch(&mut batch, max)));
                        let want: Vec<Frame> = model.frames.drain(..max.min(model.frames.len())).collect();
                        proptest::prop_assert_eq!(
                            batch.iter().map(Frame::to_vec).collect::<Vec<_>>(),
                            want.iter().map(Frame::to_vec).collect::<Vec<_>>()
                        );
                        let keep = batch.len().saturating_sub(back);
                        for f in want[keep..].iter().rev() {
                            model.frames.push_front(f.clone());
                        }
                        model.evict();
                        s.unpop_all(batch.drain(keep..));
                    }
                }
                proptest::prop_assert_eq!(s.len(), (model.frames.len(), model.bytes()));
                proptest::prop_assert_eq!(Stats::get(&stats.dropped_buffer_full), model.dropped);
            }
            let rest: Vec<Vec<u8>> = std::iter::from_fn(|| s.try_pop()).map(|f| f.to_vec()).collect();
            proptest::prop_assert_eq!(rest, model.frames.iter().map(Frame::to_vec).collect::<Vec<_>>());
        }
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
