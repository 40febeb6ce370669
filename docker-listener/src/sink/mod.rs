//! The sink: takes frames from the [`Spool`] in order and writes them to the [`Output`].
//!
//! In: frames from every source, via the spool. Out: datagrams on the Wazuh queue (or lines),
//! and the delivered-events cursor (a `watch` channel the state writer persists).
//!
//! When the output is unavailable the frame goes back to the front of the spool and the sink
//! retries with a short back-off; state changes (down, back up) are logged once each. After a
//! period in which frames were dropped, the first successful delivery is followed by a loss
//! event that says how many.
//!
//! At shutdown, once the grace period is over, `abort` cuts a send short: the frames of the batch
//! the output had already taken ([`Output::taken`]: a partial `sendmmsg`, then a wait for room)
//! count as delivered (cursor, counters), and only the others go back to the spool, so the next
//! start neither replays nor reports as undelivered what Wazuh already has.
//!
//! Shutdown's abort leaves in the spool what the output did not take in time (Wazuh away or
//! slow): the Docker events there at or after the cursor are replayed at the next start; the
//! others, and our own events, are counted lost (`dropped_left_at_shutdown`, [`account_left`]).
//!
//! A line output's frames count as delivered (counters, cursor) once written out and flushed,
//! not when its buffer takes them ([`Output::unwritten`]): those it could not write out by the
//! end of shutdown's last flush (a full disk, a reader of stdout that stopped reading) are
//! counted lost (`dropped_unwritten_at_shutdown`), and the Docker events among them are replayed
//! from the cursor at the next start, as are those a crash leaves in the buffer. Those it had
//! handed to its writer when a write or flush failed (tokio's file and stdout write on a blocking
//! thread and drop what failed) are lost at once ([`Output::take_failed`]): counted
//! (`dropped_output_write_failed`), never delivered, the cursor not moved past them (but the next
//! event delivered moves it on).
//!
//! The sink sends what it finds as soon as it finds it: the sources hand frames over in batches
//! (the Docker source once per 2 ms tick under load, the monitor once per 3 ms ring-buffer poll),
//! so one wake-up of the sink is already one `sendmmsg` of a batch. (It used to linger 1 ms
//! after a partial batch, from when sources pushed every event on its own; that only added a
//! timer wake-up per batch.)
pub mod output;
pub mod spool;

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use self::{
    output::{Output, OutputError, Unavailable},
    spool::Spool,
};
use crate::{
    encode::{Encoder, Frame, Origin},
    state::Cursor,
    stats::Stats,
};

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How long shutdown waits for the output to write out what it took, after the grace period.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

pub struct Sink {
    pub spool: Arc<Spool>,
    pub output: Output,
    pub encoder: Encoder,
    pub delivered: watch::Sender<Cursor>,
    pub stats: Arc<Stats>,
}

impl Sink {
    /// Flushes the output and accounts what it wrote out of `unwritten`; false when `abort` came
    /// first.
    async fn flush(&mut self, abort: &CancellationToken, unwritten: &mut VecDeque<Taken>) -> bool {
        let flushed = tokio::select! {
            biased;
            _ = abort.cancelled() => return false,
            r = self.output.flush() => r,
        };
        if let Err(e) = &flushed {
            tracing::warn!(error = %e, "flush failed");
        }
        self.written_out(unwritten);
        true
    }

    /// Runs until the spool is closed and empty, or until `abort` fires (shutdown grace period
    /// over); returns the frames left in the spool, counted ([`account_left`]).
    pub async fn run(mut self, abort: CancellationToken) -> Left {
        let mut down: Option<(Instant, Unavailable)> = None;
        let mut retry = RETRY_MIN;
        // Drops not yet reported. The report is not a spool frame (it could itself be dropped):
        // it is rebuilt from this count and sent before anything else until it gets through.
        let mut unreported = 0u64;
        let mut batch: Vec<Frame> = Vec::with_capacity(output::BATCH);
        // Frames the output took but has not written out yet, oldest first: a line output's.
        let mut unwritten: VecDeque<Taken> = VecDeque::new();
        // Docker events handled without a frame, passed (every frame before them taken), not
        // yet counted delivered: they are once the frames taken before them are written out.
        let mut skipped: Option<Cursor> = None;
        loop {
            unreported += self.spool.take_unreported_drops();
            let is_report = unreported > 0;
            batch.clear();
            if is_report {
                let total = Stats::get(&self.stats.dropped_buffer_full);
                batch.push(loss_frame(&self.encoder, "output_buffer_full", unreported, total));
            } else {
                tokio::select! {
                    biased;
                    _ = abort.cancelled() => break,
                    more = self.spool.pop_batch(&mut batch, output::BATCH) => if !more { break },
                }
                if batch.is_empty() {
                    // Only Docker events handled without a frame wait, every frame before them
                    // taken: the cursor moves past them once those are written out.
                    if !unwritten.is_empty() && !self.flush(&abort, &mut unwritten).await {
                        break;
                    }
                    self.skipped(&mut skipped, &unwritten);
                    continue;
                }
            }
            let result = tokio::select! {
                biased;
                _ = abort.cancelled() => {
                    // The send was cut short, maybe after some frames went out (then it waited
                    // for room): those are delivered, only the others go back.
                    let sent = self.output.taken().min(batch.len());
                    if sent > 0 {
                        self.took(&batch[..sent], is_report, unreported, &mut unwritten);
                    }
                    if !is_report { self.spool.unpop_all(batch.drain(sent..)); }
                    break
                }
                r = self.output.send_batch(&batch) => r,
            };
            let (sent, error) = match result {
                Ok(n) => (n, None),
                Err((n, e)) => (n, Some(e)),
            };
            if sent > 0 {
                self.took(&batch[..sent], is_report, unreported, &mut unwritten);
                if is_report {
                    unreported = 0;
                }
                if let Some((since, _)) = down.take() {
                    let (frames, bytes) = self.spool.len();
                    tracing::info!(
                        output = %self.output.describe(),
                        down_for_secs = since.elapsed().as_secs_f64(),
                        buffered_frames = frames,
                        buffered_bytes = bytes,
                        "delivering again"
                    );
                    retry = RETRY_MIN;
                }
            }
            match error {
                None => {
                    if self.spool.is_empty() && !self.flush(&abort, &mut unwritten).await {
                        break;
                    }
                    self.skipped(&mut skipped, &unwritten);
                }
                Some(OutputError::Rejected { len, source }) => {
                    Stats::inc(&self.stats.send_errors);
                    Stats::inc(&self.stats.dropped_rejected);
                    tracing::error!(
                        len,
                        error = %source,
                        dropped_total = Stats::get(&self.stats.dropped_rejected),
                        "the output rejected a frame (counted in dropped_rejected): it is dropped, the \
                         others go on. If the error is 'message too long', lower max_event_size or \
                         raise net.core.wmem_default"
                    );
                    if !is_report {
                        self.spool.unpop_all(batch.drain(sent + 1..));
                    }
                }
                Some(e @ OutputError::Unavailable { kind, .. }) => {
                    Stats::inc(&self.stats.send_errors);
                    // Frames a line output lost to the error, when it took none of this batch.
                    self.written_out(&mut unwritten);
                    if down.map(|(_, k)| k) != Some(kind) {
                        tracing::warn!(error = %e, buffer_limit_bytes = self.spool.capacity(), "output unavailable");
                        down = Some((down.map_or_else(Instant::now, |(t, _)| t), kind));
                    }
                    if !is_report {
                        self.spool.unpop_all(batch.drain(sent..));
                    }
                    tokio::select! {
                        _ = abort.cancelled() => break,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        let error = match tokio::time::timeout(FINAL_FLUSH, self.output.flush()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "not written out within {}s (a reader of the output that stopped reading?)",
                FINAL_FLUSH.as_secs()
            )),
        };
        self.written_out(&mut unwritten);
        if let Some(error) = error.filter(|_| !unwritten.is_empty()) {
            Stats::add(&self.stats.dropped_unwritten_at_shutdown, unwritten.len() as u64);
            tracing::error!(
                error = %error,
                frames = unwritten.len(),
                docker_events = unwritten.iter().filter(|t| matches!(t.origin, Origin::Docker { .. })).count(),
                dropped_total = Stats::get(&self.stats.dropped_unwritten_at_shutdown),
                "the last frames taken by the output could not be written out at shutdown (counted in \
                 dropped_unwritten_at_shutdown): they are lost; the Docker events among them were not counted \
                 delivered and are replayed from the saved cursor at the next start (if a cursor was saved before, and dockerd still holds them)"
            );
        }
        self.skipped(&mut skipped, &unwritten);
        let cursor = self.delivered.borrow().clone();
        account_left(&self.spool, &cursor, &self.stats)
    }

    /// Moves the delivered-events cursor past the Docker events handled without a frame that
    /// no frame waits before any more (`Spool::take_passed_skips`): filtered ones, passing
    /// healthchecks folded into a summary. Without it, a restart after a quiet hour of
    /// healthchecks read them all again: forwarded one by one as if unrecognised, and, beyond
    /// dockerd's 256, reported as a gap upstream.
    ///
    /// Those passed are taken from the spool into `pending` at once (so that the spool does not
    /// wake the sink for them again); they move the cursor only once `unwritten` is empty: a
    /// line output's frames taken before them written out.
    fn skipped(&mut self, pending: &mut Option<Cursor>, unwritten: &VecDeque<Taken>) {
        if let Some(passed) = self.spool.take_passed_skips() {
            match pending {
                Some(p) => p.merge(&passed),
                None => *pending = Some(passed),
            }
        }
        if !unwritten.is_empty() {
            return;
        }
        let Some(p) = pending.take() else { return };
        self.delivered.send_if_modified(|c| {
            let before = (c.time_nano, c.delivered_at_time.len());
            c.merge(&p);
            before != (c.time_nano, c.delivered_at_time.len())
        });
    }

    /// Frames the output took: the report's log line now; counters and the cursor once the
    /// output has written them out (at once for the queue socket).
    fn took(&mut self, frames: &[Frame], is_report: bool, reported: u64, unwritten: &mut VecDeque<Taken>) {
        if is_report {
            tracing::warn!(
                dropped = reported,
                dropped_total = Stats::get(&self.stats.dropped_buffer_full),
                buffer_limit_bytes = self.spool.capacity(),
                "the output buffer overflowed while the output was unavailable: the oldest \
                 events were dropped (reported in a loss event). Raise buffer_bytes to ride out \
                 longer Wazuh outages"
            );
        }
        unwritten.extend(frames.iter().map(|f| Taken { len: f.len(), origin: f.origin }));
        self.written_out(unwritten);
    }

    /// Accounts for the frames of `unwritten` the output has written out since (the first ones):
    /// counters, the delivered-events cursor; then for those it lost to a failed write or flush
    /// (the next ones, [`Output::take_failed`]): counted lost, the cursor not moved past them.
    fn written_out(&mut self, unwritten: &mut VecDeque<Taken>) {
        let failed = self.output.take_failed().min(unwritten.len());
        let n = unwritten.len().saturating_sub(self.output.unwritten() + failed);
        self.delivered_first(n, unwritten);
        if failed == 0 {
            return;
        }
        let docker = unwritten.drain(..failed).filter(|t| matches!(t.origin, Origin::Docker { .. })).count();
        Stats::add(&self.stats.dropped_output_write_failed, failed as u64);
        tracing::error!(
            output = %self.output.describe(),
            frames = failed,
            docker_events = docker,
            dropped_total = Stats::get(&self.stats.dropped_output_write_failed),
            "the output failed to write frames it had taken (counted in dropped_output_write_failed): they are \
             lost. The cursor was not moved past the Docker events among them, but the next event delivered moves \
             it on: they are replayed at the next start only if none is. Free space on the output's filesystem, \
             or check the output (an I/O error, a reader of stdout that went away); the next frames are written \
             when it takes writes again"
        );
    }

    /// Counts the first `n` frames of `unwritten` written out, takes them off it and moves the
    /// delivered-events cursor past their Docker events.
    fn delivered_first(&mut self, n: usize, unwritten: &mut VecDeque<Taken>) {
        if n == 0 {
            return;
        }
        let (mut bytes, mut docker) = (0, 0);
        self.delivered.send_if_modified(|c| {
            let before = (c.time_nano, c.delivered_at_time.len());
            for t in unwritten.drain(..n) {
                bytes += t.len as u64;
                if let Origin::Docker { time_nano, hash } = t.origin {
                    docker += 1;
                    c.advance(time_nano, hash);
                }
            }
            before != (c.time_nano, c.delivered_at_time.len())
        });
        Stats::add(&self.stats.frames_out, n as u64);
        Stats::add(&self.stats.bytes_out, bytes);
        Stats::add(&self.stats.frames_out_docker, docker);
    }
}

/// What shutdown left in the spool, by what becomes of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// Our own events (eBPF: processes, sockets, files...; summaries): lost.
    pub agent: usize,
    /// Docker events at or after the cursor: the next start replays them (`since` the cursor),
    /// if dockerd still holds them.
    pub docker_replayed: usize,
    /// Docker events the next start does not replay: no cursor was ever saved (nothing
    /// delivered yet: the next start begins at its own time), the cursor passed them (an
    /// event a healthcheck held back while later ones went out), or more of them are left than
    /// dockerd keeps for a replay (its last 256 events: the oldest beyond those). Lost.
    pub docker_lost: usize,
    /// Loss and health reports: not events (the losses they report are counted already).
    pub reports: usize,
}

impl Left {
    /// Events lost for good.
    pub fn lost(&self) -> usize {
        self.agent + self.docker_lost
    }

    pub fn total(&self) -> usize {
        self.agent + self.docker_replayed + self.docker_lost + self.reports
    }
}

/// Counts what shutdown leaves in the spool once the sink is done, against `cursor`, the last
/// delivered event's: the events the next start cannot replay are lost
/// (`dropped_left_at_shutdown`).
pub fn account_left(spool: &Spool, cursor: &Cursor, stats: &Stats) -> Left {
    let mut left = Left::default();
    spool.for_each_origin(|o| match o {
        Origin::Docker { time_nano, .. } if cursor.is_set() && time_nano >= cursor.time_nano => {
            left.docker_replayed += 1
        }
        Origin::Docker { .. } => left.docker_lost += 1,
        Origin::Agent => left.agent += 1,
        Origin::Report => left.reports += 1,
        // Never buffered (`Spool::push_all` keeps them apart).
        Origin::Skipped { .. } => {}
    });
    // dockerd replays at most its last events: the oldest beyond them are not there any more.
    let beyond = left.docker_replayed.saturating_sub(crate::docker::DOCKER_EVENTS_LIMIT);
    (left.docker_replayed, left.docker_lost) = (left.docker_replayed - beyond, left.docker_lost + beyond);
    Stats::add(&stats.dropped_left_at_shutdown, left.lost() as u64);
    left
}

/// What the sink keeps of a frame the output took until it is written out.
struct Taken {
    len: usize,
    origin: Origin,
}

/// Our own loss report, in the Wazuh frame, under its own top-level key (never `docker`).
pub fn loss_frame(encoder: &Encoder, reason: &str, events: u64, total: u64) -> Frame {
    encoder.report(&json!({
        "integration": "docker",
        "event": {"kind": "metric", "module": "docker-listener", "action": "events-lost"},
        "docker_listener": {"loss": {"reason": reason, "events": events, "events_total": total}},
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use bytes::Bytes;

    use super::{output::QueueSocket, *};
    use crate::wazuh::FRAME_HEADER;

    /// A sink from `spool` into `output`, its delivered-events cursor starting at `cursor`.
    fn sink_into(
        spool: &Arc<Spool>,
        output: Output,
        cursor: Cursor,
        stats: &Arc<Stats>,
    ) -> (Sink, watch::Receiver<Cursor>) {
        let (delivered, cursor) = watch::channel(cursor);
        let encoder = Encoder::new(64 << 10, false, stats.clone());
        (Sink { spool: spool.clone(), output, encoder, delivered, stats: stats.clone() }, cursor)
    }

    /// Docker event `i` (its `timeNano` is `i + 1`), about 1 KiB.
    fn docker_frame(i: usize) -> Frame {
        let body = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(1000));
        Frame {
            parts: [Bytes::from_static(FRAME_HEADER), Bytes::from(body), Bytes::new()],
            origin: Origin::Docker { time_nano: i as i64 + 1, hash: i as u64 },
            owner: 0,
        }
    }

    /// Shutdown's abort while a batch waits for room after part of it went out: the part that
    /// went out is delivered (cursor, counters) and not put back; only the rest is.
    #[tokio::test]
    async fn an_abort_during_a_send_puts_back_only_the_frames_not_sent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue");
        // Bound, never read until the end: its queue fills after a few datagrams.
        let reader = UnixDatagram::bind(&path).expect("bind the reader");
        const N: usize = 40; // one batch (below output::BATCH)
        let frames: Vec<Frame> = (0..N).map(docker_frame).collect();
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        spool.push_all(frames.iter().cloned());
        let (sink, cursor) = sink_into(
            &spool,
            Output::Queue(QueueSocket::with_send_buffer(&path, 4096).expect("the sender")),
            Cursor::default(),
            &stats,
        );
        let abort = CancellationToken::new();
        let (left, ()) = tokio::time::timeout(Duration::from_secs(10), async {
            // The sink sends what fits, then waits for room; the grace period runs out.
            tokio::join!(sink.run(abort.clone()), async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                abort.cancel();
            })
        })
        .await
        .expect("the abort ends the run");

        reader.set_nonblocking(true).expect("non-blocking reader");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = reader.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        let sent = got.len();
        assert!(0 < sent && sent < N, "{sent} of {N} sent: the batch should have been cut part-way");
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &frames[i].to_vec(), "datagram {i}");
        }
        assert_eq!(
            left,
            Left { docker_replayed: N - sent, ..Left::default() },
            "undelivered: the frames not sent, only those"
        );
        let back: Vec<Vec<u8>> = std::iter::from_fn(|| spool.try_pop()).map(|f| f.to_vec()).collect();
        let unsent: Vec<Vec<u8>> = frames[sent..].iter().map(Frame::to_vec).collect();
        assert!(back == unsent, "the spool holds exactly the unsent frames, in order");
        assert_eq!(Stats::get(&stats.frames_out), sent as u64);
        assert_eq!(Stats::get(&stats.frames_out_docker), sent as u64);
        let c = cursor.borrow().clone();
        assert_eq!(c.time_nano, sent as i64, "the cursor is at the last frame sent");
        assert_eq!(c.delivered_at_time, [sent as u64 - 1]);
    }

    /// A Docker event handled without a frame (filtered, folded) moves the cursor once the
    /// frames before it are delivered, never before: with Wazuh away, it stays behind them.
    #[tokio::test]
    async fn the_cursor_moves_past_a_skipped_event_only_after_the_frames_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue");
        let run = |bound: bool| {
            let path = path.clone();
            async move {
                let reader = bound.then(|| UnixDatagram::bind(&path).expect("bind the reader"));
                let stats = Arc::new(Stats::default());
                let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
                spool.push_all([docker_frame(0), Frame::skip(10, 99), Frame::skip(11, 98)]);
                assert_eq!(spool.len().0, 1, "a skipped event is no frame");
                let (sink, cursor) =
                    sink_into(&spool, Output::Queue(QueueSocket::new(&path)), Cursor::default(), &stats);
                let abort = CancellationToken::new();
                let (left, ()) = tokio::time::timeout(Duration::from_secs(10), async {
                    tokio::join!(sink.run(abort.clone()), async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        spool.close();
                        abort.cancel();
                    })
                })
                .await
                .expect("the run ends");
                drop(reader);
                let _ = std::fs::remove_file(&path);
                (left, Stats::get(&stats.frames_out), cursor.borrow().clone())
            }
        };
        let (left, out, c) = run(false).await;
        assert_eq!((left.docker_replayed, out), (0, 0), "{left:?}: no cursor, so not replayable");
        assert_eq!(c.time_nano, 0, "not past the frame before it, undelivered");
        let (left, out, c) = run(true).await;
        assert_eq!((left, out), (Left::default(), 1));
        assert_eq!((c.time_nano, c.delivered_at_time), (11, vec![98]), "past the skipped events, in order");
    }

    /// Our event `i`.
    fn agent_frame(i: usize) -> Frame {
        Frame::agent(Bytes::from(format!("{{\"exec\":{i}}}")))
    }

    /// Runs a sink on `frames` and a report with Wazuh's queue missing, from `cursor` (the one a
    /// previous run saved), until shutdown's abort; what it left, its counters, its cursor then.
    async fn left_with_wazuh_away(frames: Vec<Frame>, cursor: Cursor) -> (Left, Arc<Stats>, Cursor) {
        let dir = tempfile::tempdir().expect("temp dir");
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let n = frames.len();
        spool.push_all(frames);
        spool.push_report(agent_frame(0));
        // Nothing bound there: Wazuh's queue is missing.
        let (sink, cursor) =
            sink_into(&spool, Output::Queue(QueueSocket::new(&dir.path().join("queue"))), cursor, &stats);
        let abort = CancellationToken::new();
        let (left, ()) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(sink.run(abort.clone()), async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                spool.close();
                abort.cancel();
            })
        })
        .await
        .expect("the abort ends the run");
        assert_eq!(spool.len().0, n + 1, "nothing taken out of the spool");
        assert_eq!(Stats::get(&stats.frames_out), 0);
        assert_eq!(Stats::get(&stats.frames_out_docker), 0);
        let c = cursor.borrow().clone();
        (left, stats, c)
    }

    /// Shutdown's grace period runs out with Wazuh away: of the frames left in the spool, our
    /// own events are counted lost; the Docker events after the cursor are not (nor the
    /// report), and the cursor stays where it was, so that the next start replays them.
    #[tokio::test]
    async fn our_events_left_in_the_spool_at_shutdown_are_counted_lost_docker_events_are_not() {
        const EBPF: usize = 7;
        const DOCKER: usize = 5;
        let frames = (0..EBPF.max(DOCKER))
            .flat_map(|i| [(i < EBPF).then(|| agent_frame(i)), (i < DOCKER).then(|| docker_frame(i + 10))])
            .flatten()
            .collect();
        let before = Cursor { time_nano: 10, delivered_at_time: vec![42] };
        let (left, stats, cursor) = left_with_wazuh_away(frames, before.clone()).await;
        assert_eq!(left, Left { agent: EBPF, docker_replayed: DOCKER, docker_lost: 0, reports: 1 });
        assert_eq!(Stats::get(&stats.dropped_left_at_shutdown), EBPF as u64);
        assert_eq!(cursor, before, "the cursor did not move");
    }

    /// Docker events the next start cannot replay are lost too: with no cursor saved yet (it
    /// starts at its own time), or behind the cursor (a healthcheck's, held back while later
    /// events went out).
    #[tokio::test]
    async fn docker_events_left_that_the_next_start_cannot_replay_are_counted_lost() {
        let (left, stats, cursor) = left_with_wazuh_away((0..4).map(docker_frame).collect(), Cursor::default()).await;
        assert_eq!(left, Left { agent: 0, docker_replayed: 0, docker_lost: 4, reports: 1 });
        assert_eq!(Stats::get(&stats.dropped_left_at_shutdown), 4);
        assert_eq!(cursor, Cursor::default());

        // Times 1 to 6; the cursor at 3: 1 and 2 are behind it, 3 (not among its hashes) on.
        let before = Cursor { time_nano: 3, delivered_at_time: vec![42] };
        let (left, stats, _) = left_with_wazuh_away((0..6).map(docker_frame).collect(), before).await;
        assert_eq!(left, Left { agent: 0, docker_replayed: 4, docker_lost: 2, reports: 1 });
        assert_eq!(Stats::get(&stats.dropped_left_at_shutdown), 2);

        // More left than dockerd keeps for a replay (its last 256): the oldest beyond are lost.
        let (left, stats, _) = left_with_wazuh_away((0..300).map(docker_frame).collect(), Cursor::default()).await;
        assert_eq!(left.docker_lost, 300, "no cursor: none replayable");
        let before = Cursor { time_nano: 1, delivered_at_time: vec![42] };
        let (left, stats2, _) = left_with_wazuh_away((0..300).map(docker_frame).collect(), before).await;
        assert_eq!((left.docker_replayed, left.docker_lost), (256, 44));
        assert_eq!(
            (Stats::get(&stats.dropped_left_at_shutdown), Stats::get(&stats2.dropped_left_at_shutdown)),
            (300, 44)
        );
    }

    /// The spool emptied before the grace period ran out: nothing is counted lost.
    #[tokio::test]
    async fn nothing_is_counted_lost_when_the_spool_is_emptied_in_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue");
        let _reader = UnixDatagram::bind(&path).expect("bind the reader");
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        spool.push_all((0..3).map(agent_frame));
        spool.push_all((0..3).map(docker_frame));
        spool.close();
        let (sink, _cursor) = sink_into(&spool, Output::Queue(QueueSocket::new(&path)), Cursor::default(), &stats);
        let left = tokio::time::timeout(Duration::from_secs(10), sink.run(CancellationToken::new()))
            .await
            .expect("a closed spool, emptied, ends the run");
        assert_eq!(left, Left::default());
        assert_eq!(Stats::get(&stats.dropped_left_at_shutdown), 0);
        assert_eq!(Stats::get(&stats.frames_out), 6);
    }

    /// A line output's writer that writes and flushes until it has flushed `flushes` times, then
    /// hangs for good: at the next write (a disk that stopped answering), or, with
    /// `takes_writes`, only at the flush (tokio's stdout whose reader stopped reading: a write is
    /// handed to a blocking thread at once, and the flush waits for that thread).
    struct Stalling {
        /// What was written and then flushed.
        out: Arc<std::sync::Mutex<Vec<u8>>>,
        unflushed: Vec<u8>,
        flushes: usize,
        takes_writes: bool,
    }

    impl tokio::io::AsyncWrite for Stalling {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            if self.flushes == 0 && !self.takes_writes {
                return std::task::Poll::Pending; // never woken
            }
            self.unflushed.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.flushes == 0 {
                return std::task::Poll::Pending; // never woken
            }
            self.flushes -= 1;
            let written = std::mem::take(&mut self.unflushed);
            self.out.lock().expect("not poisoned").extend_from_slice(&written);
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Runs a sink into a line output on a [`Stalling`] writer, on Docker frames pushed in
    /// `phases` (the sink is left 20 ms for each), until shutdown's abort and last flush are
    /// over; its counters, its cursor, and how many of the frames the writer wrote and flushed.
    async fn shut_down_on(phases: &[usize], flushes: usize, takes_writes: bool) -> (Arc<Stats>, Cursor, usize) {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = Stalling { out: out.clone(), unflushed: Vec::new(), flushes, takes_writes };
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let (sink, cursor) = sink_into(
            &spool,
            Output::Lines(output::LineWriter::new(Box::new(writer), "test".into())),
            Cursor::default(),
            &stats,
        );
        let abort = CancellationToken::new();
        let (left, ()) = tokio::time::timeout(FINAL_FLUSH + Duration::from_secs(10), async {
            tokio::join!(sink.run(abort.clone()), async {
                let mut next = 0;
                for &n in phases {
                    spool.push_all((next..next + n).map(docker_frame));
                    next += n;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                spool.close();
                abort.cancel();
            })
        })
        .await
        .expect("the abort and the last flush's time limit end the run");
        assert_eq!(left, Left::default(), "the output took every frame");
        let c = cursor.borrow().clone();
        let out = out.lock().expect("not poisoned").clone();
        let written = out.iter().filter(|&&b| b == b'\n').count();
        let lines: Vec<u8> = (0..written)
            .flat_map(|i| {
                let mut l = docker_frame(i).to_vec();
                l.push(b'\n');
                l
            })
            .collect();
        assert!(out == lines, "whole lines, in order, each once");
        (stats, c, written)
    }

    /// What the line output took (all of it fits its buffer) and never wrote (`takes_writes`
    /// false), or handed to a writer whose flush never ends (stdout with a reader that stopped
    /// reading: taken is not written): counted lost, not out, and the cursor stays where it
    /// was, so that the next start replays those events.
    #[tokio::test]
    async fn frames_a_line_output_never_wrote_out_are_counted_lost_and_not_delivered() {
        for takes_writes in [false, true] {
            let (stats, cursor, written) = shut_down_on(&[10], 0, takes_writes).await;
            assert_eq!(written, 0);
            assert_eq!(Stats::get(&stats.dropped_unwritten_at_shutdown), 10, "takes writes: {takes_writes}");
            assert_eq!(Stats::get(&stats.frames_out), 0);
            assert_eq!(Stats::get(&stats.bytes_out), 0);
            assert_eq!(Stats::get(&stats.frames_out_docker), 0);
            assert_eq!(cursor, Cursor::default(), "the cursor did not move");
        }
    }

    /// The writer writes out the first frames (the spool emptied: flushed), then hangs: those
    /// are delivered (counters, cursor), the next ones lost and counted.
    #[tokio::test]
    async fn the_cursor_moves_only_past_the_frames_a_line_output_wrote_out() {
        let (stats, cursor, written) = shut_down_on(&[10, 10], 1, false).await;
        assert_eq!(written, 10);
        assert_eq!(Stats::get(&stats.frames_out), 10);
        assert_eq!(Stats::get(&stats.frames_out_docker), 10);
        assert_eq!(Stats::get(&stats.dropped_unwritten_at_shutdown), 10);
        assert_eq!(cursor.time_nano, 10, "the cursor is at the last frame written out");
        assert_eq!(cursor.delivered_at_time, [9]);
    }

    /// A full line buffer written out while the spool still holds frames is flushed and
    /// delivered then, not at the next empty spool (which a steady load may never leave): the
    /// cursor keeps moving under load. The writer hangs after that one buffer.
    #[tokio::test]
    async fn a_full_line_buffer_written_out_is_delivered_without_waiting_for_an_empty_spool() {
        const N: usize = 100; // ~1 KiB each: more than the line output's 64 KiB buffer
        let (stats, cursor, written) = shut_down_on(&[N], 1, false).await;
        assert!(0 < written && written < N, "{written} of {N} written: one buffer's worth");
        assert_eq!(Stats::get(&stats.frames_out), written as u64);
        assert_eq!(Stats::get(&stats.frames_out_docker), written as u64);
        assert_eq!(Stats::get(&stats.dropped_unwritten_at_shutdown), (N - written) as u64);
        assert_eq!(cursor.time_nano, written as i64, "the cursor is at the last frame written out");
        assert_eq!(cursor.delivered_at_time, [written as u64 - 1]);
    }

    /// A line output's writer that takes every write at once and fails its first flush with
    /// ENOSPC, dropping what it had taken (tokio's file and stdout: the write made on a blocking
    /// thread failed, its buffer is gone, the error is reported once), then flushes normally.
    struct FailsFirstFlush {
        /// What was written and then flushed.
        out: Arc<std::sync::Mutex<Vec<u8>>>,
        unflushed: Vec<u8>,
        /// Flushes asked for so far.
        flushes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncWrite for FailsFirstFlush {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.unflushed.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let written = std::mem::take(&mut self.unflushed);
            if self.flushes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                return std::task::Poll::Ready(Err(std::io::Error::from_raw_os_error(libc::ENOSPC)));
            }
            self.out.lock().expect("not poisoned").extend_from_slice(&written);
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// The frames a line output had handed to its writer when its flush failed (a full disk)
    /// are lost: counted in dropped_output_write_failed, not in frames_out, and the cursor does
    /// not move past them; the later frames, flushed once there is room again, are delivered
    /// normally. (Before, the next successful flush counted the lost frames delivered too.)
    #[tokio::test]
    async fn frames_a_line_output_lost_to_a_failed_flush_are_counted_lost_not_delivered() {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let flushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = FailsFirstFlush { out: out.clone(), unflushed: Vec::new(), flushes: flushes.clone() };
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let (sink, cursor) = sink_into(
            &spool,
            Output::Lines(output::LineWriter::new(Box::new(writer), "test".into())),
            Cursor::default(),
            &stats,
        );
        // The sink has flushed `n` times (it accounts for a flush in the same poll).
        let flushed = |n: usize| {
            let flushes = flushes.clone();
            async move {
                while flushes.load(std::sync::atomic::Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        let abort = CancellationToken::new();
        let (left, ()) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(sink.run(abort.clone()), async {
                spool.push_all((0..5).map(docker_frame));
                flushed(1).await; // failed: ENOSPC
                assert_eq!(Stats::get(&stats.dropped_output_write_failed), 5);
                assert_eq!(Stats::get(&stats.frames_out), 0);
                assert_eq!(*cursor.borrow(), Cursor::default(), "the cursor did not move past the lost frames");
                spool.push_all((5..10).map(docker_frame));
                flushed(2).await; // room again
                spool.close();
                abort.cancel();
            })
        })
        .await
        .expect("the run ends");
        assert_eq!(left, Left::default());
        assert_eq!(Stats::get(&stats.dropped_output_write_failed), 5);
        assert_eq!(Stats::get(&stats.frames_out), 5, "only the frames written out are delivered");
        assert_eq!(Stats::get(&stats.frames_out_docker), 5);
        assert_eq!(Stats::get(&stats.bytes_out), (5..10).map(|i| docker_frame(i).len() as u64).sum::<u64>());
        assert_eq!(Stats::get(&stats.dropped_unwritten_at_shutdown), 0);
        let c = cursor.borrow().clone();
        assert_eq!(c.time_nano, 10, "the cursor is at the last frame written out");
        assert_eq!(c.delivered_at_time, [9]);
        let lines: Vec<u8> = (5..10)
            .flat_map(|i| {
                let mut l = docker_frame(i).to_vec();
                l.push(b'\n');
                l
            })
            .collect();
        assert!(*out.lock().expect("not poisoned") == lines, "the later frames, each once");
    }
}
