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
//! The sink sends what it finds as soon as it finds it: the sources hand frames over in batches
//! (the Docker source once per 2 ms tick under load, the monitor once per 3 ms ring-buffer poll),
//! so one wake-up of the sink is already one `sendmmsg` of a batch. (It used to linger 1 ms
//! after a partial batch, from when sources pushed every event on its own; that only added a
//! timer wake-up per batch.)
pub mod output;
pub mod spool;

use std::{
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
    /// Runs until the spool is closed and empty, or until `abort` fires (shutdown grace period
    /// over); returns the number of frames left undelivered.
    pub async fn run(mut self, abort: CancellationToken) -> usize {
        let mut down: Option<(Instant, Unavailable)> = None;
        let mut retry = RETRY_MIN;
        // Drops not yet reported. The report is not a spool frame (it could itself be dropped):
        // it is rebuilt from this count and sent before anything else until it gets through.
        let mut unreported = 0u64;
        let mut batch: Vec<Frame> = Vec::with_capacity(output::BATCH);
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
            }
            let result = tokio::select! {
                biased;
                _ = abort.cancelled() => {
                    // The send was cut short, maybe after some frames went out (then it waited
                    // for room): those are delivered, only the others go back.
                    let sent = self.output.taken().min(batch.len());
                    if sent > 0 {
                        self.delivered(&batch[..sent], is_report, unreported);
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
                self.delivered(&batch[..sent], is_report, unreported);
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
                    if self.spool.is_empty() {
                        let flushed = tokio::select! {
                            biased;
                            _ = abort.cancelled() => break,
                            r = self.output.flush() => r,
                        };
                        if let Err(e) = flushed {
                            tracing::warn!(error = %e, "flush failed");
                        }
                    }
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
        match tokio::time::timeout(FINAL_FLUSH, self.output.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                error = %e,
                "the last frames taken by the output could not be written out at shutdown: they are lost"
            ),
            Err(_) => tracing::error!(
                secs = FINAL_FLUSH.as_secs(),
                "the last frames taken by the output were not written out in time at shutdown (a reader of \
                 the output that stopped reading?): they are lost"
            ),
        }
        self.spool.len().0
    }

    /// Accounts for frames the output took: counters, the delivered-events cursor, the report.
    fn delivered(&mut self, frames: &[Frame], is_report: bool, reported: u64) {
        Stats::add(&self.stats.frames_out, frames.len() as u64);
        Stats::add(&self.stats.bytes_out, frames.iter().map(|f| f.len() as u64).sum());
        if is_report {
            tracing::warn!(
                dropped = reported,
                dropped_total = Stats::get(&self.stats.dropped_buffer_full),
                buffer_limit_bytes = self.spool.capacity(),
                "the output buffer overflowed while the output was unavailable: the oldest \
                 events were dropped (reported in a loss event). Raise buffer_bytes to ride out \
                 longer Wazuh outages"
            );
            return;
        }
        let mut docker = 0;
        self.delivered.send_if_modified(|c| {
            let before = (c.time_nano, c.delivered_at_time.len());
            for f in frames {
                if let Origin::Docker { time_nano, hash } = f.origin {
                    docker += 1;
                    c.advance(time_nano, hash);
                }
            }
            before != (c.time_nano, c.delivered_at_time.len())
        });
        Stats::add(&self.stats.frames_out_docker, docker);
    }
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
        let (delivered, cursor) = watch::channel(Cursor::default());
        let sink = Sink {
            spool: spool.clone(),
            output: Output::Queue(QueueSocket::with_send_buffer(&path, 4096).expect("the sender")),
            encoder: Encoder::new(64 << 10, false, stats.clone()),
            delivered,
            stats: stats.clone(),
        };
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
        assert_eq!(left, N - sent, "undelivered: the frames not sent, only those");
        let back: Vec<Vec<u8>> = std::iter::from_fn(|| spool.try_pop()).map(|f| f.to_vec()).collect();
        let unsent: Vec<Vec<u8>> = frames[sent..].iter().map(Frame::to_vec).collect();
        assert!(back == unsent, "the spool holds exactly the unsent frames, in order");
        assert_eq!(Stats::get(&stats.frames_out), sent as u64);
        assert_eq!(Stats::get(&stats.frames_out_docker), sent as u64);
        let c = cursor.borrow().clone();
        assert_eq!(c.time_nano, sent as i64, "the cursor is at the last frame sent");
        assert_eq!(c.delivered_at_time, [sent as u64 - 1]);
    }
}
