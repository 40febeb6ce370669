//! The loop that keeps the Docker event stream open.
//!
//! - Never waits on the output: frames go into the spool, which drops oldest when full.
//! - Reconnects with back-off (`wait_time`, doubling up to `max_wait_time`), logging each state
//!   change once.
//! - Resumes with `since` = the last event read (or, at start, the last event delivered before
//!   the previous run stopped), and drops the replayed events already handled.
//! - Skips malformed or oversized data from the API with a logged, counted error, and keeps the
//!   stream.
use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    DockerClient, DockerError, DockerEvent,
    split::{LineSplitter, Piece},
};
use crate::{
    encode::{Encoder, Frame},
    sink::Spool,
    state::Cursor,
    stats::Stats,
};

/// Hard limit on one raw Docker event line. Larger events than `max_event_size` are shrunk
/// to fit (and marked); lines beyond this are not events Docker would send and are skipped.
pub const MAX_RAW_EVENT: usize = 16 << 20;

/// Frames handed to the spool at once, at most.
const PUSH_BATCH: usize = 256;

/// How many events dockerd keeps for `since` replays (moby daemon/events/events.go,
/// `eventsLimit`).
pub const DOCKER_EVENTS_LIMIT: usize = 256;
/// A stream that ends sooner than this after connecting is retried with back-off.
const SHORT_STREAM: Duration = Duration::from_secs(1);

pub struct DockerSource {
    pub socket: PathBuf,
    pub wait_time: Duration,
    pub max_wait_time: Duration,
    pub encoder: Encoder,
    pub spool: Arc<Spool>,
    pub stats: Arc<Stats>,
    pub ignore_actions: Vec<String>,
    /// The last event read. Starts at the persisted delivered cursor.
    pub cursor: Cursor,
    /// Container start/rename/destroy events (before filtering) also go here, for the
    /// container registry.
    pub events_tx: Option<mpsc::UnboundedSender<DockerEvent>>,
    /// Told the negotiated client after each (re)connection, for the registry.
    pub client_tx: Option<tokio::sync::watch::Sender<Option<DockerClient>>>,
    /// The healthcheck stage (`healthchecks` other than `forward`).
    pub health: Option<Arc<crate::health::Health>>,
}

enum StreamEnd {
    Shutdown,
    /// The stream ended after it had been open: cleanly, or cut (dockerd stopping).
    Ended(Option<super::StreamError>),
}

/// Tracks the replay Docker sends first after a `since` subscription, to detect that its
/// 256-event buffer had already dropped events we never saw.
struct Replay {
    cursor_time: i64,
    /// The cursor names the events at its time (their hashes): dockerd, if it still holds the
    /// last of them, sends it first (`since` is inclusive).
    cursor_named: bool,
    /// The first event of the subscription was looked at.
    judged: bool,
    subscribed_at: i64,
    count: usize,
    first: Option<i64>,
    /// Still dropping events the cursor covers.
    at_boundary: bool,
    /// The last `RECENT` events handled (time, hash): what a subscription's race sends twice.
    recent: std::collections::VecDeque<(i64, u64)>,
}

/// How many of the last events handled an event older than the cursor is compared with: as
/// many as dockerd replays, so that a burst in a subscription's race (a `compose up`) has
/// every live copy met by its replayed one. Compared only for an event older than the cursor
/// (a race's copy, or a clock set back), never on the way of events in order.
const RECENT: usize = DOCKER_EVENTS_LIMIT;

impl DockerSource {
    /// Runs until `shutdown`. Returns an error only for problems retrying cannot fix
    /// (permission denied on the Docker socket).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), DockerError> {
        let mut attempt: u32 = 0;
        let mut last_failure: Option<std::mem::Discriminant<DockerError>> = None;
        loop {
            let started = std::time::Instant::now();
            match self.stream_once(&shutdown, &mut last_failure).await {
                Ok(StreamEnd::Shutdown) => return Ok(()),
                Ok(StreamEnd::Ended(cut)) => {
                    // A stream that ends as soon as it opens (a proxy in front of the socket
                    // that closes it, say) must not become a tight reconnection loop.
                    let delay = if started.elapsed() < SHORT_STREAM {
                        attempt = attempt.saturating_add(1);
                        self.backoff(attempt - 1)
                    } else {
                        attempt = 0;
                        Duration::ZERO
                    };
                    match &cut {
                        Some(e) => tracing::warn!(
                            error = %e,
                            retry_in_secs = delay.as_secs_f64(),
                            "the Docker event stream broke off: reconnecting; the events in between \
                             are asked for again from the cursor (dockerd replays those it still \
                             holds: its last 256, none after dockerd itself restarted)"
                        ),
                        None => tracing::warn!(
                            retry_in_secs = delay.as_secs_f64(),
                            "Docker closed the event stream (dockerd stopping or restarting?): \
                             reconnecting; the events in between are asked for again from the \
                             cursor (dockerd replays those it still holds: its last 256, none \
                             after dockerd itself restarted)"
                        ),
                    }
                    last_failure = None;
                    if !delay.is_zero() {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
                Err(e) if e.is_permission() => return Err(e),
                Err(e) => {
                    let delay = self.backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    let kind = std::mem::discriminant(&e);
                    if last_failure != Some(kind) {
                        tracing::warn!(
                            error = %e,
                            retry_in_secs = delay.as_secs_f64(),
                            "Docker is unreachable; retrying with back-off up to {}s (this is \
                             logged again only when the situation changes)",
                            self.max_wait_time.as_secs_f64()
                        );
                        last_failure = Some(kind);
                    } else {
                        tracing::debug!(error = %e, attempt, "Docker still unreachable");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.wait_time.saturating_mul(factor).min(self.max_wait_time)
    }

    async fn stream_once(
        &mut self,
        shutdown: &CancellationToken,
        last_failure: &mut Option<std::mem::Discriminant<DockerError>>,
    ) -> Result<StreamEnd, DockerError> {
        let client = tokio::select! {
            _ = shutdown.cancelled() => return Ok(StreamEnd::Shutdown),
            c = DockerClient::connect(&self.socket) => c?,
        };
        let since = self.cursor.is_set().then_some(self.cursor.time_nano);
        let subscribed_at = crate::ecs::now_wall_ns();
        let mut stream = tokio::select! {
            _ = shutdown.cancelled() => return Ok(StreamEnd::Shutdown),
            s = client.events(since) => s?,
        };
        Stats::inc(&self.stats.docker_connects);
        Stats::set(&self.stats.docker_connected, 1);
        let _connected = ResetOnDrop(self.stats.clone());
        tracing::info!(
            socket = %self.socket.display(),
            docker_version = client.server_version(),
            api_version = client.api_version(),
            resume_from_time_nano = since,
            reconnected = last_failure.is_some() || Stats::get(&self.stats.docker_connects) > 1,
            "connected to Docker: streaming events"
        );
        *last_failure = None;
        if let Some(tx) = &self.client_tx {
            tx.send_replace(Some(client.clone()));
        }
        if !stream.content_type().starts_with("application/json") {
            tracing::error!(
                content_type = stream.content_type(),
                "Docker's /events answer is not application/json: is --docker-host really a \
                 Docker socket? Reading it anyway; lines that are not JSON events are skipped"
            );
        }
        if since.is_some_and(|t| t > subscribed_at) {
            tracing::error!(
                resume_from_time_nano = since,
                now_time_nano = subscribed_at,
                "the last delivered Docker event is newer than this host's clock (the clock was \
                 set back?): live events are forwarded as usual, but until the clock passes that \
                 time a reconnection cannot replay what Docker emitted while disconnected. Check \
                 the host's time synchronisation"
            );
        }
        let mut replay = Replay {
            cursor_time: self.cursor.time_nano,
            cursor_named: !self.cursor.delivered_at_time.is_empty(),
            judged: false,
            subscribed_at,
            count: 0,
            first: None,
            // (A first start's cursor names no event: nothing at its time to drop.)
            at_boundary: since.is_some() && !self.cursor.delivered_at_time.is_empty(),
            recent: std::collections::VecDeque::with_capacity(RECENT + 1),
        };
        let mut splitter = LineSplitter::new(MAX_RAW_EVENT);
        let mut frames: Vec<Frame> = Vec::new();
        let mut data: Vec<bytes::Bytes> = Vec::new();
        loop {
            // All the data that arrived since the last wake-up (dockerd sends one chunk per
            // event; while they come close together the stream is read a tick at a time), then
            // one hand-over to the spool: a push (lock, wake-up) per event would cost more than
            // the event itself.
            let read = tokio::select! {
                _ = shutdown.cancelled() => return Ok(StreamEnd::Shutdown),
                r = stream.next_data(&mut data) => r,
            };
            for bytes in data.drain(..) {
                splitter.push(bytes, |piece| self.handle(piece, &mut replay, &mut frames));
                if frames.len() >= PUSH_BATCH {
                    self.spool.push_all(frames.drain(..));
                }
            }
            if !frames.is_empty() {
                self.spool.push_all(frames.drain(..));
            }
            let end = match read {
                Ok(true) => continue,
                Ok(false) => None,
                Err(e) => Some(e),
            };
            if splitter.pending() > 0 {
                Stats::inc(&self.stats.docker_partial_at_eof);
                tracing::warn!(
                    bytes = splitter.pending(),
                    "the Docker stream ended in the middle of an event: discarded the \
                     partial event; it is asked for again after reconnecting (dockerd replays \
                     it if it still holds it: not after dockerd itself restarted)"
                );
            }
            return Ok(StreamEnd::Ended(end));
        }
    }

    fn handle(&mut self, piece: Piece, replay: &mut Replay, frames: &mut Vec<Frame>) {
        let raw = match piece {
            Piece::Line(raw) => raw,
            Piece::Oversized { len } => {
                Stats::inc(&self.stats.docker_oversized_raw);
                tracing::error!(
                    len,
                    limit = MAX_RAW_EVENT,
                    "skipped a line from the Docker API longer than the limit on one event"
                );
                return;
            }
        };
        let ev = match DockerEvent::parse(raw.clone()) {
            Ok(ev) => ev,
            Err(e) => {
                Stats::inc(&self.stats.docker_malformed);
                tracing::error!(
                    error = %e,
                    len = raw.len(),
                    start = %String::from_utf8_lossy(&raw[..raw.len().min(120)]),
                    "skipped malformed data from the Docker API (not one JSON event); the stream goes on"
                );
                return;
            }
        };
        Stats::inc(&self.stats.docker_events_in);
        self.stats.count_docker_type(ev.kind());
        let hash = ev.hash;
        self.check_replay(replay, ev.time_nano);
        if replay.at_boundary && ev.time_nano > replay.subscribed_at && ev.time_nano < self.cursor.time_nano {
            // Older than the cursor, so not replayed by `since` (which sends the cursor's time
            // and later), yet newer than the subscription: live, with the cursor ahead of it
            // because the clock was set back since. Never a duplicate. (Docker's replay of the
            // events at the cursor's own time still goes through `covers` below.)
            replay.at_boundary = false;
        }
        if replay.at_boundary {
            if self.cursor.covers(ev.time_nano, hash) {
                Stats::inc(&self.stats.docker_events_duplicate);
                return;
            }
            if ev.time_nano > self.cursor.time_nano {
                replay.at_boundary = false;
            }
        } else if self.cursor.holds(ev.time_nano, hash)
            || (ev.time_nano < self.cursor.time_nano && replay.recent.contains(&(ev.time_nano, hash)))
        {
            // The same event again: dockerd publishes an event to its subscribers after it
            // stored it for replay (and let go of its lock), so those that land while we
            // subscribe come both replayed and live, the live copies after all the replayed
            // ones (`e1 e2 e1 e2`): one of the last `RECENT` handled.
            Stats::inc(&self.stats.docker_events_duplicate);
            return;
        }
        self.cursor.advance(ev.time_nano, hash);
        if replay.recent.len() == RECENT {
            replay.recent.pop_front();
        }
        replay.recent.push_back((ev.time_nano, hash));
        if let Some(tx) = &self.events_tx
            && ev.kind() == "container"
            && matches!(ev.action(), "start" | "rename" | "destroy")
        {
            let _ = tx.send(ev.clone());
        }
        if self.ignore_actions.iter().any(|p| ev.action().starts_with(p.as_str())) {
            Stats::inc(&self.stats.docker_events_filtered);
            // Not sent, yet handled: the cursor moves past it in its turn.
            frames.push(Frame::skip(ev.time_nano, hash));
            return;
        }
        let ev = if ev.kind() == "container" && ev.action().starts_with("exec_") { redacted(ev) } else { ev };
        let frame = self.encoder.docker(&ev);
        match &self.health {
            Some(h) => h.docker(&ev, frame, frames),
            None => frames.push(frame),
        }
    }

    /// Counts the events Docker replays from its buffer (those older than the subscription):
    /// a full buffer that starts after the cursor means events were evicted before we saw them.
    ///
    /// And, for a cursor that names its events: the first event after the subscription newer
    /// than the cursor means dockerd no longer holds the last event we read (evicted by 256
    /// later ones, or dockerd restarted since): what it logged in between may be lost, whatever
    /// the number replayed (a full buffer is not needed to say so).
    fn check_replay(&self, replay: &mut Replay, time_nano: i64) {
        if !std::mem::replace(&mut replay.judged, true) && replay.cursor_named && time_nano > replay.cursor_time {
            // (The rule below would count the same gap again.)
            let cursor_time = std::mem::take(&mut replay.cursor_time);
            Stats::inc(&self.stats.docker_upstream_gaps);
            tracing::error!(
                cursor_time_nano = cursor_time,
                first_time_nano = time_nano,
                "dockerd no longer holds the last Docker event docker-listener read (more than \
                 {DOCKER_EVENTS_LIMIT} events since, or dockerd restarted): the events it logged between \
                 these times while docker-listener was disconnected or stopped may be lost upstream"
            );
        }
        if replay.cursor_time == 0 || time_nano > replay.subscribed_at {
            return;
        }
        replay.count += 1;
        let first = *replay.first.get_or_insert(time_nano);
        if replay.count == DOCKER_EVENTS_LIMIT && first > replay.cursor_time {
            Stats::inc(&self.stats.docker_upstream_gaps);
            tracing::error!(
                cursor_time_nano = replay.cursor_time,
                oldest_replayed_time_nano = first,
                "Docker's replay buffer (its last {DOCKER_EVENTS_LIMIT} events) no longer reaches \
                 back to the last event we delivered: events between these times were lost \
                 upstream, in dockerd, while docker-listener was disconnected or stopped"
            );
        }
    }
}

/// An `exec_*` event whose command holds a secret (`crate::redact`): a copy with it replaced in
/// `Action` and the legacy `status`, keeping the original's time and hash (the cursor's identity
/// of the event). Every other event is returned as it is, Docker's bytes untouched.
fn redacted(ev: DockerEvent) -> DockerEvent {
    let Some(r) = crate::redact::current() else { return ev };
    let std::borrow::Cow::Owned(action) = r.text(ev.action()) else { return ev };
    if action == ev.action() {
        return ev;
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&ev.raw) else { return ev };
    let old = ev.action().to_owned();
    v["Action"] = action.clone().into();
    if v.get("status").and_then(|s| s.as_str()) == Some(old.as_str()) {
        v["status"] = action.into();
    }
    let Ok(raw) = serde_json::to_vec(&v) else { return ev };
    match DockerEvent::parse(bytes::Bytes::from(raw)) {
        Ok(mut copy) => {
            copy.hash = ev.hash;
            copy.time_nano = ev.time_nano;
            copy
        }
        Err(_) => ev,
    }
}

/// Clears the "connected" gauge when the stream ends, however it ends.
struct ResetOnDrop(Arc<Stats>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        Stats::set(&self.0.docker_connected, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> DockerEvent {
        let raw = serde_json::json!({"status": action, "id": "c1", "Type": "container", "Action": action,
            "Actor": {"ID": "c1", "Attributes": {"execID": "e1", "name": "db"}}, "scope": "local", "time": 1, "timeNano": 1_000_000_001i64});
        DockerEvent::parse(bytes::Bytes::from(raw.to_string())).unwrap()
    }

    #[test]
    fn an_exec_event_with_a_secret_is_a_redacted_copy_with_the_original_identity() {
        let ev = event("exec_create: mysql -uroot -phunter2 shop");
        let (hash, raw) = (ev.hash, ev.raw.clone());
        let copy = redacted(ev);
        assert_eq!(copy.action(), "exec_create: mysql -uroot -p[REDACTED] shop");
        assert_eq!((copy.hash, copy.time_nano), (hash, 1_000_000_001));
        let v: serde_json::Value = serde_json::from_slice(&copy.raw).unwrap();
        assert_eq!(v["status"], "exec_create: mysql -uroot -p[REDACTED] shop");
        assert_eq!(v["Actor"]["Attributes"]["execID"], "e1");
        assert!(!String::from_utf8_lossy(&copy.raw).contains("hunter2"));
        assert_ne!(copy.raw, raw);
        // Keys in Docker's order.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["status", "id", "Type", "Action", "Actor", "scope", "time", "timeNano"]);
    }

    #[test]
    fn an_exec_event_without_a_secret_keeps_docker_s_bytes() {
        let ev = event("exec_start: sh -c echo hi");
        let raw = ev.raw.clone();
        assert_eq!(redacted(ev).raw, raw);
    }
}
