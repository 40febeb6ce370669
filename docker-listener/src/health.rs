//! Healthchecks (`healthchecks`: `forward` | `summarize` | `drop`).
//!
//! dockerd runs a container's configured healthcheck as an exec session: three Docker events
//! (`exec_create: CMD`, `exec_start: CMD`, `exec_die`) and, with eBPF, the session's process and
//! socket events, every interval. On a dense host that is most of what reaches Wazuh. This stage
//! recognises those sessions and, when they pass, counts them into one summary per container
//! per period instead of forwarding them.
//!
//! A session is a healthcheck's only on dockerd's own evidence, never on its command line alone
//! (a `docker exec` of the same command must still be reported):
//! 1. the container has a healthcheck (`Config.Healthcheck`, from inspect: asked once per
//!    container, when it first shows a `health_status` event or at start-up when its status says
//!    it has one) and the session runs its exact command (`exec_create: <cmd>`);
//! 2. it exited 0 (`exec_die`'s `exitCode`); a failing check is forwarded at once, whole;
//! 3. dockerd recorded that check: an entry of `State.Health.Log` (from inspect, after the exec
//!    ended) that started before the session was created, ended after it died, exited 0, and
//!    accounts for no other session: of the sessions created within one entry, the first
//!    (dockerd notes the check's start, then creates its session). A `docker exec` of the same
//!    command at the same moment is a second session no entry accounts for: forwarded, even
//!    when it ends first.
//!
//! The session's processes are known by their entry leader (the session's first process, whose
//! host pid is the exec's `Pid` from `GET /exec/{id}/json`). While a candidate session of a
//! container is undecided, that container's exec-session process and socket events wait here;
//! when it is decided, those of a recognised session are folded and the others forwarded.
//!
//! Never folded: the first event of each command in a container (`Fold::command_key`: an
//! exec's program, arguments, user and group; a socket call's program and address),
//! failed calls, and every event that is marked (fileless, drift, privileges,
//! the 32-bit ABI: `ecs::Event::routine`) or of another family. A session nothing decides within
//! its timeout is forwarded. At shutdown, everything held is forwarded and the summaries sent.
//!
//! Docker events of a recognised check are the one place docker-listener does not forward
//! Docker's events one for one; `healthchecks: forward` keeps exact parity with Wazuh's listener.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    correlate::Fold,
    docker::{DockerClient, DockerEvent},
    encode::{Encoder, Frame},
    registry::rfc3339_ns,
    sink::Spool,
    stats::Stats,
};

/// What to do with the sessions of a container's healthcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every event, as Wazuh's listener does.
    Forward,
    /// Passing checks counted into one summary per container per period.
    #[default]
    Summarize,
    /// Passing checks counted in the agent's statistics only.
    Drop,
}

/// How long after a passing check's `exec_die` its verdict is asked: dockerd appends the check
/// to `State.Health.Log` only after the exec ended, and the log keeps five checks.
const VERDICT_DELAY: Duration = Duration::from_millis(500);
/// A second look when the first did not find the check yet (dockerd slow to record it).
const VERDICT_RETRY: Duration = Duration::from_millis(1500);
/// Beyond the healthcheck's own timeout, how long a session may stay undecided.
const SESSION_SLACK: Duration = Duration::from_secs(10);
/// dockerd's default healthcheck timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a recognised session's leader still folds late events.
const LEADER_MEMORY: Duration = Duration::from_secs(5);
/// Events held per container while a session is undecided; beyond it they are forwarded.
const HELD_MAX: usize = 4096;
/// First-seen keys remembered per container; beyond it nothing more is folded (sent instead).
const FIRST_KEYS_MAX: usize = 4096;
/// Log entries remembered per container as already accounting for a session.
const CLAIMED_MAX: usize = 16;
/// Containers asked about per second, at most (and at once): one inspect costs the agent about
/// as much as 30 Docker events. On a real host healthchecked containers start a few a minute;
/// under heavier churn the others' checks are forwarded one by one until there is budget.
const ASK_RATE: f64 = 20.0;
const ASK_BURST: f64 = 50.0;

/// A container's healthcheck, as dockerd runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    /// What follows `exec_create: ` in Docker's event: the entrypoint, a space, the arguments
    /// joined by spaces (moby `daemon/health.go`).
    command: String,
    timeout: Duration,
}

#[derive(Debug)]
enum Known {
    /// Not asked yet: the budget of questions to dockerd was spent (`ASK_RATE`); asked at its
    /// next check.
    Later,
    Asking,
    None,
    Some(Check),
}

#[derive(Debug, Default, Clone)]
struct Summary {
    checks: u64,
    failures: u64,
    last_exit_code: Option<i64>,
    min_ns: Option<i64>,
    max_ns: Option<i64>,
    docker_events: u64,
    process_events: u64,
    first_sent: u64,
    /// Wall-clock start of the period (ns).
    since_ns: i64,
}

struct HeldEvent {
    leader: u32,
    /// `Fold::command_key`.
    key: u64,
    frame: Frame,
}

struct Ctr {
    known: Known,
    name: String,
    image: String,
    /// Candidate sessions not decided yet.
    open: usize,
    held: Vec<HeldEvent>,
    /// Leaders of recognised sessions, and when.
    leaders: VecDeque<(u32, Instant)>,
    /// `State.Health.Log` entries (their start) that already account for a session.
    claimed: VecDeque<i64>,
    /// The commands of checks already sent once (`Fold::command_key`).
    first: HashSet<u64>,
    summary: Summary,
}

impl Ctr {
    fn new(known: Known) -> Ctr {
        Ctr {
            known,
            name: String::new(),
            image: String::new(),
            open: 0,
            held: Vec::new(),
            leaders: VecDeque::new(),
            claimed: VecDeque::new(),
            first: HashSet::new(),
            summary: Summary { since_ns: crate::ecs::now_wall_ns(), ..Summary::default() },
        }
    }

    /// A routine event of a recognised session: sent when it is the first of its command here
    /// (the same program with other arguments, user or group is another command: a check that
    /// starts running other command lines shows each new one at once).
    fn fold(&mut self, key: u64, frame: Frame, out: &mut Vec<Frame>) {
        if self.first.contains(&key) {
            self.summary.process_events += 1;
        } else {
            if self.first.len() < FIRST_KEYS_MAX {
                self.first.insert(key);
            }
            self.summary.first_sent += 1;
            out.push(frame);
        }
    }
}

struct Session {
    container: String,
    frames: Vec<Frame>,
    create_ns: i64,
    die_ns: i64,
    opened: Instant,
    timeout: Duration,
}

#[derive(Default)]
struct State {
    containers: HashMap<String, Ctr>,
    sessions: HashMap<String, Session>,
    last_summary: Option<Instant>,
    /// Questions to dockerd left (`ASK_RATE`), and when it was counted.
    ask_tokens: f64,
    ask_counted: Option<Instant>,
}

impl State {
    /// Whether one more container may be asked about now.
    fn may_ask(&mut self) -> bool {
        let now = Instant::now();
        let refill = self.ask_counted.map_or(ASK_BURST, |t| now.duration_since(t).as_secs_f64() * ASK_RATE);
        self.ask_tokens = (self.ask_tokens + refill).min(ASK_BURST);
        self.ask_counted = Some(now);
        if self.ask_tokens >= 1.0 {
            self.ask_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Asks about container `id` if the budget allows, else leaves it for its next check.
    fn ask(&mut self, id: &str, work: &mpsc::UnboundedSender<Work>) {
        let known = if self.may_ask() {
            let _ = work.send(Work::Inspect(id.to_owned()));
            Known::Asking
        } else {
            Known::Later
        };
        match self.containers.get_mut(id) {
            Some(c) => c.known = known,
            None => {
                self.containers.insert(id.to_owned(), Ctr::new(known));
            }
        }
    }
}

/// What the stage's task must ask dockerd.
#[derive(Debug)]
pub enum Work {
    Inspect(String),
    Verdict { exec_id: String, container: String, retry: bool },
}

/// One recorded check of `State.Health.Log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    pub start_ns: i64,
    pub end_ns: i64,
    pub exit_code: i64,
}

pub struct Health {
    mode: Mode,
    period: Duration,
    state: Mutex<State>,
    spool: Arc<Spool>,
    encoder: Encoder,
    stats: Arc<Stats>,
    work: mpsc::UnboundedSender<Work>,
}

/// `Actor.Attributes` of an exec event: only what this stage reads.
#[derive(Deserialize)]
struct ExecEvent {
    #[serde(rename = "Actor", default)]
    actor: Option<ExecActor>,
}

#[derive(Deserialize)]
struct ExecActor {
    #[serde(rename = "Attributes", default)]
    attributes: Option<ExecAttributes>,
}

#[derive(Deserialize)]
struct ExecAttributes {
    #[serde(rename = "execID", default)]
    exec_id: Option<String>,
    #[serde(rename = "exitCode", default)]
    exit_code: Option<String>,
}

fn exec_attributes(ev: &DockerEvent) -> Option<ExecAttributes> {
    serde_json::from_slice::<ExecEvent>(&ev.raw).ok()?.actor?.attributes
}

impl Health {
    pub fn new(
        mode: Mode,
        period: Duration,
        spool: Arc<Spool>,
        encoder: Encoder,
        stats: Arc<Stats>,
    ) -> (Arc<Health>, mpsc::UnboundedReceiver<Work>) {
        let (work, rx) = mpsc::unbounded_channel();
        (Arc::new(Health { mode, period, state: Mutex::default(), spool, encoder, stats, work }), rx)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A Docker event, on its way to the output: its frame goes into `out`, now or (for a
    /// candidate session's events) when the session is decided.
    pub fn docker(&self, ev: &DockerEvent, frame: Frame, out: &mut Vec<Frame>) {
        let action = ev.action();
        if ev.kind() != "container"
            || !(action.starts_with("exec_")
                || action.starts_with("health_status")
                || action == "die"
                || action == "destroy")
        {
            out.push(frame);
            return;
        }
        let id = ev.actor_id();
        let mut st = self.lock();
        if let Some(command) = action.strip_prefix(crate::redact::EXEC_CREATE) {
            if matches!(st.containers.get(id).map(|c| &c.known), Some(Known::Later)) {
                st.ask(id, &self.work);
            }
            // While dockerd is asked about the container, its sessions are sent whole at once,
            // and counted: holding them for the answer (up to the API's timeout) would send them
            // behind later events, which a crash meanwhile would lose past the cursor, and any
            // `docker exec` among them with them.
            let timeout = match st.containers.get(id).map(|c| &c.known) {
                Some(Known::Some(check)) if check.command == command => check.timeout,
                Some(Known::Asking) => {
                    Stats::inc(&self.stats.health_sessions_before_known);
                    return out.push(frame);
                }
                _ => return out.push(frame),
            };
            let Some(exec_id) = exec_attributes(ev).and_then(|a| a.exec_id) else { return out.push(frame) };
            if let Some(c) = st.containers.get_mut(id) {
                c.open += 1;
            }
            st.sessions.insert(
                exec_id,
                Session {
                    container: id.to_owned(),
                    frames: vec![frame],
                    create_ns: ev.time_nano,
                    die_ns: 0,
                    opened: Instant::now(),
                    timeout,
                },
            );
            return;
        }
        if action.starts_with(crate::redact::EXEC_START) || action == "exec_die" {
            if st.sessions.is_empty() {
                return out.push(frame);
            }
            let Some(attrs) = exec_attributes(ev) else { return out.push(frame) };
            let Some(exec_id) = attrs.exec_id else { return out.push(frame) };
            let Some(session) = st.sessions.get_mut(&exec_id) else { return out.push(frame) };
            session.frames.push(frame);
            if action == "exec_die" {
                session.die_ns = ev.time_nano;
                let code = attrs.exit_code.as_deref().and_then(|c| c.parse::<i64>().ok());
                self.ended(&mut st, exec_id, code, out);
            }
            return;
        }
        if action.starts_with("health_status") {
            if !st.containers.contains_key(id) {
                st.ask(id, &self.work);
            }
            return out.push(frame);
        }
        // die, destroy: the container's summary goes before them.
        let destroy = action == "destroy";
        if let Some(c) = st.containers.get_mut(id) {
            self.summarize(id, c, out);
            if destroy {
                out.extend(c.held.drain(..).map(|h| h.frame));
            }
        }
        if destroy {
            st.containers.remove(id);
            let gone: Vec<String> =
                st.sessions.iter().filter(|(_, s)| s.container == id).map(|(k, _)| k.clone()).collect();
            for k in gone {
                if let Some(s) = st.sessions.remove(&k) {
                    // dockerd's record of the container's checks went with it.
                    Stats::inc(&self.stats.health_sessions_undecided);
                    out.extend(s.frames);
                }
            }
        }
        out.push(frame);
    }

    /// A process or socket event a summary may fold: returned when it is to be sent now.
    pub fn agent(&self, fold: &Fold, frame: Frame) -> Option<Frame> {
        let mut st = self.lock();
        let Some(c) = st.containers.get_mut(&fold.container_id) else { return Some(frame) };
        if c.open > 0 && c.held.len() < HELD_MAX {
            c.held.push(HeldEvent { leader: fold.leader, key: fold.command_key, frame });
            return None;
        }
        if c.leaders.iter().any(|(l, at)| *l == fold.leader && at.elapsed() < LEADER_MEMORY) {
            let mut out = Vec::new();
            c.fold(fold.command_key, frame, &mut out);
            return out.pop();
        }
        Some(frame)
    }

    /// A candidate session's `exec_die`: a passing check waits for dockerd's record of it; a
    /// failing one is forwarded at once, whole.
    fn ended(&self, st: &mut State, exec_id: String, code: Option<i64>, out: &mut Vec<Frame>) {
        if code == Some(0) {
            let Some(s) = st.sessions.get(&exec_id) else { return };
            let container = s.container.clone();
            let _ = self.work.send(Work::Verdict { exec_id, container, retry: false });
            return;
        }
        let Some(s) = st.sessions.remove(&exec_id) else { return };
        out.extend(s.frames);
        if let Some(c) = st.containers.get_mut(&s.container) {
            c.summary.failures += 1;
            c.summary.last_exit_code = code;
            Self::close_session(c, out);
        }
        Stats::inc(&self.stats.health_checks_failed);
    }

    /// A candidate session of `c` was decided: when none is left, what waited is sent.
    fn close_session(c: &mut Ctr, out: &mut Vec<Frame>) {
        c.open = c.open.saturating_sub(1);
        if c.open == 0 {
            out.extend(c.held.drain(..).map(|h| h.frame));
        }
    }

    /// dockerd's answer about a passing session: the exec's leader pid and the container's
    /// recorded checks. Returns `false` when the log does not hold the check yet and this was
    /// the first look (ask again later).
    pub fn verdict(&self, exec_id: &str, pid: Option<u32>, log: Option<&[LogEntry]>, last_look: bool) -> bool {
        let mut out = Vec::new();
        let mut st = self.lock();
        let Some(s) = st.sessions.get(exec_id) else { return true };
        // dockerd notes a check's start, then creates its session: of the sessions inside one
        // entry, the check is the first created. A `docker exec` of the same command that
        // started after it (and may end first, so be asked about first) is not the entry's.
        let entry = log.and_then(|log| {
            log.iter().find(|e| e.exit_code == 0 && e.start_ns <= s.create_ns && e.end_ns >= s.die_ns).copied()
        });
        let entry = entry.filter(|e| {
            !st.sessions.iter().any(|(id, o)| {
                id != exec_id && o.container == s.container && (e.start_ns..s.create_ns).contains(&o.create_ns)
            })
        });
        let claimed_before =
            entry.is_some_and(|e| st.containers.get(&s.container).is_some_and(|c| c.claimed.contains(&e.start_ns)));
        if entry.is_none() && !last_look {
            return false;
        }
        let Some(s) = st.sessions.remove(exec_id) else { return true };
        let Some(c) = st.containers.get_mut(&s.container) else {
            drop(st);
            self.spool.push_all(s.frames);
            return true;
        };
        match entry {
            Some(e) if !claimed_before => {
                if c.claimed.len() >= CLAIMED_MAX {
                    c.claimed.pop_front();
                }
                c.claimed.push_back(e.start_ns);
                let took = s.die_ns.saturating_sub(s.create_ns).max(0);
                let sum = &mut c.summary;
                sum.checks += 1;
                sum.last_exit_code = Some(0);
                sum.min_ns = Some(sum.min_ns.map_or(took, |m| m.min(took)));
                sum.max_ns = Some(sum.max_ns.map_or(took, |m| m.max(took)));
                sum.docker_events += s.frames.len() as u64;
                Stats::inc(&self.stats.health_checks_folded);
                Stats::add(&self.stats.health_frames_folded, s.frames.len() as u64);
                // Not sent, yet handled: the resume cursor moves past them in their turn.
                out.extend(s.frames.into_iter().filter_map(Frame::skipped));
                if let Some(pid) = pid {
                    c.leaders.retain(|(_, at)| at.elapsed() < LEADER_MEMORY);
                    c.leaders.push_back((pid, Instant::now()));
                    let held = std::mem::take(&mut c.held);
                    for h in held {
                        if h.leader == pid {
                            let before = out.len();
                            c.fold(h.key, h.frame, &mut out);
                            if out.len() == before {
                                Stats::inc(&self.stats.health_frames_folded);
                            }
                        } else {
                            c.held.push(h);
                        }
                    }
                }
            }
            _ => {
                // Not a check dockerd recorded (a `docker exec` of the same command), or no
                // answer: forwarded.
                Stats::inc(&self.stats.health_sessions_unrecognised);
                out.extend(s.frames);
            }
        }
        Self::close_session(c, &mut out);
        drop(st);
        if !out.is_empty() {
            self.spool.push_all(out);
        }
        true
    }

    /// The container's healthcheck (from inspect), or that it has none (`None`: no such
    /// container).
    pub fn learned(&self, id: &str, inspected: Option<&bollard::models::ContainerInspectResponse>) {
        let mut st = self.lock();
        if inspected.is_none() && !st.containers.contains_key(id) {
            // Destroyed while dockerd was asked about it: nothing to keep (an entry made now
            // would never be removed).
            return;
        }
        let c = st.containers.entry(id.to_owned()).or_insert_with(|| Ctr::new(Known::Asking));
        c.known = match inspected.and_then(check_of) {
            Some(check) => Known::Some(check),
            None => Known::None,
        };
        if let Some(r) = inspected {
            c.name = r.name.as_deref().unwrap_or("").trim_start_matches('/').to_owned();
            c.image = r.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
        }
    }

    /// dockerd did not answer about container `id` (down, overloaded): asked again at its next
    /// check rather than taken for a container without a healthcheck for the rest of its life.
    pub fn unanswered(&self, id: &str) {
        let mut st = self.lock();
        let Some(c) = st.containers.get_mut(id) else { return };
        c.known = Known::Later;
    }

    /// Containers the start-up listing says have a healthcheck: asked about.
    pub fn discovered(&self, ids: impl IntoIterator<Item = String>) {
        let mut st = self.lock();
        for id in ids {
            if !st.containers.contains_key(&id) {
                st.ask(&id, &self.work);
            }
        }
    }

    /// Once a second: sessions past their timeout are forwarded; summaries when the period ends.
    pub fn tick(&self, now: Instant) {
        let mut out = Vec::new();
        let mut st = self.lock();
        let late: Vec<String> = st
            .sessions
            .iter()
            .filter(|(_, s)| now.duration_since(s.opened) > s.timeout + SESSION_SLACK)
            .map(|(k, _)| k.clone())
            .collect();
        for k in late {
            if let Some(s) = st.sessions.remove(&k) {
                Stats::inc(&self.stats.health_sessions_unrecognised);
                out.extend(s.frames);
                if let Some(c) = st.containers.get_mut(&s.container) {
                    Self::close_session(c, &mut out);
                }
            }
        }
        let due = st.last_summary.is_none_or(|t| now.duration_since(t) >= self.period);
        if st.last_summary.is_none() {
            st.last_summary = Some(now);
        } else if due {
            st.last_summary = Some(now);
            for (id, c) in st.containers.iter_mut() {
                self.summarize(id, c, &mut out);
            }
        }
        drop(st);
        if !out.is_empty() {
            self.spool.push_all(out);
        }
    }

    /// Everything held, and the summaries: at shutdown.
    pub fn flush(&self) {
        let mut out = Vec::new();
        let mut st = self.lock();
        let sessions: Vec<Session> = st.sessions.drain().map(|(_, s)| s).collect();
        for s in sessions {
            out.extend(s.frames);
        }
        for (id, c) in st.containers.iter_mut() {
            self.summarize(id, c, &mut out);
            out.extend(c.held.drain(..).map(|h| h.frame));
            c.open = 0;
        }
        drop(st);
        if !out.is_empty() {
            self.spool.push_all(out);
        }
    }

    /// The container's summary of the period now ending, when it counted anything.
    fn summarize(&self, id: &str, c: &mut Ctr, out: &mut Vec<Frame>) {
        let sum =
            std::mem::replace(&mut c.summary, Summary { since_ns: crate::ecs::now_wall_ns(), ..Summary::default() });
        if sum.checks == 0 || self.mode != Mode::Summarize {
            return;
        }
        let command = match &c.known {
            Known::Some(check) => check.command.trim_end().to_owned(),
            _ => String::new(),
        };
        let value = summary_event(id, &c.name, &c.image, &command, &sum, crate::ecs::now_wall_ns());
        if let Some(f) = self.encoder.agent(&value) {
            Stats::inc(&self.stats.health_summaries);
            out.push(f);
        }
    }

    /// The stage's task: asks dockerd what the sessions need, ticks the timeouts and summaries.
    pub async fn run(
        self: Arc<Self>,
        mut work: mpsc::UnboundedReceiver<Work>,
        mut client_rx: watch::Receiver<Option<DockerClient>>,
        shutdown: CancellationToken,
        mut ticks: crate::seconds::Ticks,
    ) {
        let mut listed = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Ok(()) = ticks.changed() => self.tick(Instant::now()),
                changed = client_rx.changed() => {
                    if changed.is_err() {
                        // The Docker source is gone: only shutdown is left.
                        shutdown.cancelled().await;
                        return;
                    }
                    let client = client_rx.borrow_and_update().clone();
                    if let (false, Some(client)) = (listed, client) {
                        listed = true;
                        tokio::spawn(discover(self.clone(), client));
                    }
                }
                w = work.recv() => {
                    let Some(w) = w else { return };
                    let client = client_rx.borrow().clone();
                    tokio::spawn(self.clone().ask(w, client));
                }
            }
        }
    }

    async fn ask(self: Arc<Self>, w: Work, client: Option<DockerClient>) {
        match w {
            Work::Inspect(id) => {
                let Some(client) = client else { return self.unanswered(&id) };
                match client.api().inspect_container(&id, None).await {
                    Ok(r) => self.learned(&id, Some(&r)),
                    Err(e) if crate::docker::is_not_found(&e) => self.learned(&id, None),
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "inspect for the healthcheck failed");
                        self.unanswered(&id);
                    }
                }
            }
            Work::Verdict { exec_id, container, retry } => {
                tokio::time::sleep(if retry { VERDICT_RETRY } else { VERDICT_DELAY }).await;
                let Some(client) = client else {
                    self.verdict(&exec_id, None, None, true);
                    return;
                };
                let pid = client
                    .api()
                    .inspect_exec(&exec_id)
                    .await
                    .ok()
                    .and_then(|e| e.pid)
                    .filter(|p| *p > 0)
                    .map(|p| p as u32);
                let log = client.api().inspect_container(&container, None).await.ok().map(|r| health_log(&r));
                if !self.verdict(&exec_id, pid, log.as_deref(), retry) {
                    let _ = self.work.send(Work::Verdict { exec_id, container, retry: true });
                }
            }
        }
    }
}

/// Lists the running containers once the client is there; those whose status shows a
/// healthcheck ("(healthy)", "(health: starting)"...) are asked about.
async fn discover(health: Arc<Health>, client: DockerClient) {
    let opts = bollard::query_parameters::ListContainersOptions { all: false, ..Default::default() };
    let Ok(list) = client.api().list_containers(Some(opts)).await else { return };
    health.discovered(
        list.into_iter().filter(|s| s.status.as_deref().is_some_and(|st| st.contains("health"))).filter_map(|s| s.id),
    );
}

/// The healthcheck dockerd runs for this container, as its `exec_create` action names it.
fn check_of(r: &bollard::models::ContainerInspectResponse) -> Option<Check> {
    let config = r.config.as_ref()?;
    let hc = config.healthcheck.as_ref()?;
    let test = hc.test.as_ref()?;
    let cmd: Vec<String> = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => {
            let shell = config.shell.clone().unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.into_iter().chain(test[1..].iter().cloned()).collect()
        }
        _ => return None,
    };
    let (first, rest) = cmd.split_first()?;
    let timeout = match hc.timeout {
        Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => DEFAULT_TIMEOUT,
    };
    // dockerd's event names the command as it is (`exec_create: ` and the argv joined with
    // spaces); the Docker source redacts secrets in that Action: the same here, read the same way
    // (as an argv's words, not a shell's), or a command with a `;` in an argument would differ.
    let command = format!("{first} {}", rest.join(" "));
    let command = match crate::redact::current() {
        Some(r) => r.action(&command),
        None => command,
    };
    Some(Check { command, timeout })
}

/// `State.Health.Log`: the last checks dockerd recorded.
fn health_log(r: &bollard::models::ContainerInspectResponse) -> Vec<LogEntry> {
    let log = r.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.log.as_ref());
    log.into_iter()
        .flatten()
        .filter_map(|e| {
            Some(LogEntry {
                start_ns: rfc3339_ns(e.start.as_deref()?)?,
                end_ns: rfc3339_ns(e.end.as_deref()?)?,
                exit_code: e.exit_code?,
            })
        })
        .collect()
}

fn summary_event(id: &str, name: &str, image: &str, command: &str, s: &Summary, end_ns: i64) -> serde_json::Value {
    let ms = |ns: Option<i64>| ns.map(|n| (n as f64 / 1e6 * 1000.0).round() / 1000.0);
    json!({
        "integration": "docker",
        "@timestamp": crate::ecs::rfc3339(end_ns),
        "event": {
            "kind": "metric",
            "category": ["process"],
            "type": ["info"],
            "module": crate::ecs::MODULE,
            "action": "healthcheck-summary",
            "dataset": "docker_listener.health",
            "outcome": "success",
            "start": crate::ecs::rfc3339(s.since_ns),
            "end": crate::ecs::rfc3339(end_ns),
        },
        "container": {"id": id, "name": name, "image": {"name": image}},
        "docker_listener": {"healthcheck": {
            "command": command,
            "passed": s.checks,
            "failed": s.failures,
            "last_exit_code": s.last_exit_code,
            "duration_ms": {"min": ms(s.min_ns), "max": ms(s.max_ns)},
            "folded": {"docker_events": s.docker_events, "process_events": s.process_events},
            "first_of_kind_sent": s.first_sent,
        }},
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const C: &str = "c0ffee";

    fn stage(mode: Mode) -> (Arc<Health>, mpsc::UnboundedReceiver<Work>, Arc<Spool>) {
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let encoder = Encoder::new(65_000, false, stats.clone());
        let (h, rx) = Health::new(mode, Duration::from_secs(60), spool.clone(), encoder, stats);
        (h, rx, spool)
    }

    fn ev(action: &str, t: i64, attrs: serde_json::Value) -> DockerEvent {
        let raw = json!({"Type": "container", "Action": action, "Actor": {"ID": C, "Attributes": attrs},
            "scope": "local", "time": t / 1_000_000_000, "timeNano": t});
        DockerEvent::parse(Bytes::from(raw.to_string())).unwrap()
    }

    fn frame_of(e: &DockerEvent) -> Frame {
        Frame::agent(e.raw.clone())
    }

    fn feed(h: &Health, e: DockerEvent) -> Vec<String> {
        let mut out = Vec::new();
        h.docker(&e, frame_of(&e), &mut out);
        out.iter().map(text).collect()
    }

    fn text(f: &Frame) -> String {
        String::from_utf8_lossy(&f.parts[1]).into_owned()
    }

    fn drain(spool: &Spool) -> Vec<String> {
        std::iter::from_fn(|| spool.try_pop()).map(|f| text(&f)).collect()
    }

    /// A container with `CMD-SHELL curl -f localhost` as its healthcheck.
    fn learn(h: &Health) {
        let r: bollard::models::ContainerInspectResponse = serde_json::from_value(json!({
            "Id": C, "Name": "/web-1",
            "Config": {"Image": "shop/web:1", "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"], "Timeout": 3_000_000_000i64}},
        }))
        .unwrap();
        h.learned(C, Some(&r));
    }

    const CMD: &str = "/bin/sh -c curl -f localhost";

    fn session(h: &Health, exec_id: &str, t: i64, code: &str) -> Vec<String> {
        let mut sent = feed(h, ev(&format!("exec_create: {CMD}"), t, json!({"execID": exec_id})));
        sent.extend(feed(h, ev(&format!("exec_start: {CMD}"), t + 1, json!({"execID": exec_id}))));
        sent.extend(feed(h, ev("exec_die", t + 2, json!({"execID": exec_id, "exitCode": code}))));
        sent
    }

    fn fold(leader: u32, key: &str) -> Fold {
        use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
        let command_key = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        Fold { container_id: C.into(), leader, command_key, repeat_key: 0 }
    }

    #[test]
    fn the_healthcheck_command_is_what_dockerd_puts_in_exec_create() {
        let r: bollard::models::ContainerInspectResponse = serde_json::from_value(json!({
            "Config": {"Healthcheck": {"Test": ["CMD", "/bin/true"]}}}))
        .unwrap();
        assert_eq!(check_of(&r).unwrap().command, "/bin/true ");
        let r: bollard::models::ContainerInspectResponse = serde_json::from_value(json!({
            "Config": {"Shell": ["/bin/bash", "-ec"], "Healthcheck": {"Test": ["CMD-SHELL", "pg_isready"]}}}))
        .unwrap();
        assert_eq!(check_of(&r).unwrap().command, "/bin/bash -ec pg_isready");
        assert_eq!(check_of(&r).unwrap().timeout, DEFAULT_TIMEOUT);
        let r: bollard::models::ContainerInspectResponse = serde_json::from_value(json!({
            "Config": {"Healthcheck": {"Test": ["NONE"]}}}))
        .unwrap();
        assert!(check_of(&r).is_none());
        // Redacted as the Docker source redacts the Action (an argv's words: the `(` is an
        // argument's character, and `-p` is mysqladmin's; read as a shell's, it would open a
        // command of its own and the secret would stay).
        let r: bollard::models::ContainerInspectResponse = serde_json::from_value(json!({
            "Config": {"Healthcheck": {"Test": ["CMD", "mysqladmin", "ping", "-h", "db(x", "-phunter2"]}}}))
        .unwrap();
        let action = "exec_create: mysqladmin ping -h db(x -phunter2";
        let redacted = crate::redact::current().unwrap().text(action);
        assert_eq!(format!("exec_create: {}", check_of(&r).unwrap().command), redacted);
        assert_eq!(check_of(&r).unwrap().command, "mysqladmin ping -h db(x -p[REDACTED]");
    }

    #[test]
    fn a_recorded_passing_check_is_folded_with_its_processes_and_summarised() {
        let (h, mut work, spool) = stage(Mode::Summarize);
        learn(&h);
        assert!(session(&h, "e1", 1_000, "0").is_empty(), "held until dockerd's record decides");
        assert!(matches!(work.try_recv(), Ok(Work::Verdict { .. })));
        // The session's processes wait; another container's event and an event of this
        // container outside the session wait too while a session is undecided.
        assert!(h.agent(&fold(700, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"sh"))).is_none());
        assert!(h.agent(&fold(700, "exec /usr/bin/curl"), Frame::agent(Bytes::from_static(b"curl"))).is_none());
        assert!(h.agent(&fold(900, "exec /bin/ls"), Frame::agent(Bytes::from_static(b"ls-other"))).is_none());
        let other = Fold { container_id: "other".into(), ..fold(700, "exec /bin/sh") };
        assert!(h.agent(&other, Frame::agent(Bytes::from_static(b"x"))).is_some());
        let log = [LogEntry { start_ns: 900, end_ns: 1_100, exit_code: 0 }];
        assert!(h.verdict("e1", Some(700), Some(&log), false));
        // First of each command in the container: sent; the unrelated session's: sent.
        assert_eq!(drain(&spool), ["sh", "curl", "ls-other"]);
        // The second check: nothing but the summary.
        session(&h, "e2", 2_000, "0");
        assert!(h.agent(&fold(701, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"sh"))).is_none());
        assert!(h.verdict("e2", Some(701), Some(&[LogEntry { start_ns: 1_900, end_ns: 2_100, exit_code: 0 }]), false));
        assert!(drain(&spool).is_empty());
        let out = feed(&h, ev("die", 3_000, json!({"exitCode": "0"})));
        assert_eq!(out.len(), 2, "{out:?}");
        let summary: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(summary["event"]["action"], "healthcheck-summary");
        assert_eq!(summary["container"]["name"], "web-1");
        let hc = &summary["docker_listener"]["healthcheck"];
        assert_eq!((hc["passed"].as_u64(), hc["failed"].as_u64()), (Some(2), Some(0)));
        assert_eq!(hc["folded"]["docker_events"], 6);
        assert_eq!(hc["folded"]["process_events"], 1);
        assert_eq!(hc["first_of_kind_sent"], 2);
        assert_eq!(hc["command"], CMD);
        assert!(out[1].contains("\"die\""));
    }

    #[test]
    fn a_failing_check_is_forwarded_at_once_and_counted() {
        let (h, _work, spool) = stage(Mode::Summarize);
        learn(&h);
        let mut sent = feed(&h, ev(&format!("exec_create: {CMD}"), 1_000, json!({"execID": "e1"})));
        assert!(h.agent(&fold(700, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"sh"))).is_none());
        sent.extend(feed(&h, ev("exec_die", 1_002, json!({"execID": "e1", "exitCode": "1"}))));
        assert_eq!(sent.len(), 3, "create, die, then the held process: {sent:?}");
        assert!(sent[1].contains("exec_die"));
        assert_eq!(sent[2], "sh");
        assert!(drain(&spool).is_empty());
    }

    #[test]
    fn a_docker_exec_of_the_same_command_that_dockerd_did_not_record_is_forwarded() {
        let (h, _work, spool) = stage(Mode::Summarize);
        learn(&h);
        session(&h, "manual", 5_000, "0");
        assert!(h.agent(&fold(800, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"sh"))).is_none());
        // The log holds a check, but not around this session: asked again, then forwarded.
        let log = [LogEntry { start_ns: 1_000, end_ns: 1_500, exit_code: 0 }];
        assert!(!h.verdict("manual", Some(800), Some(&log), false));
        assert!(h.verdict("manual", Some(800), Some(&log), true));
        let got = drain(&spool);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].contains("exec_create"));
        assert_eq!(got[3], "sh");
    }

    #[test]
    fn one_recorded_check_accounts_for_one_session_only() {
        let (h, _work, spool) = stage(Mode::Summarize);
        learn(&h);
        // dockerd's check and a `docker exec` of the same command, inside the same window.
        session(&h, "check", 1_000, "0");
        session(&h, "manual", 1_010, "0");
        let log = [LogEntry { start_ns: 900, end_ns: 1_100, exit_code: 0 }];
        assert!(h.verdict("check", Some(700), Some(&log), true));
        assert!(h.verdict("manual", Some(701), Some(&log), true));
        let got = drain(&spool);
        assert_eq!(got.len(), 3, "the second session is forwarded whole: {got:?}");
    }

    #[test]
    fn a_docker_exec_inside_a_check_that_ends_first_is_not_taken_for_the_check() {
        let (h, _work, spool) = stage(Mode::Summarize);
        learn(&h);
        // dockerd's check is created first; a `docker exec` of its command starts during it and
        // ends first, so its verdict is asked first.
        session(&h, "check", 1_000, "0");
        session(&h, "manual", 1_010, "0");
        assert!(h.agent(&fold(800, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"manual-sh"))).is_none());
        let log = [LogEntry { start_ns: 900, end_ns: 1_100, exit_code: 0 }];
        assert!(!h.verdict("manual", Some(800), Some(&log), false), "not the check's: asked again");
        assert!(h.verdict("check", Some(700), Some(&log), false), "the check claims its entry");
        assert!(drain(&spool).is_empty(), "the check is folded");
        assert!(h.verdict("manual", Some(800), Some(&log), false));
        let got = drain(&spool);
        assert_eq!(got.len(), 4, "the docker exec is forwarded whole, its process too: {got:?}");
        assert_eq!(got[3], "manual-sh");
    }

    #[test]
    fn marked_events_are_never_held_and_containers_without_healthcheck_pass() {
        let (h, _work, _spool) = stage(Mode::Summarize);
        // No healthcheck known: every exec event passes at once.
        assert_eq!(session(&h, "e1", 1_000, "0").len(), 3);
        let r: bollard::models::ContainerInspectResponse =
            serde_json::from_value(json!({"Config": {"Healthcheck": {"Test": ["NONE"]}}})).unwrap();
        h.learned(C, Some(&r));
        assert_eq!(session(&h, "e2", 2_000, "0").len(), 3);
        assert!(h.agent(&fold(1, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"sh"))).is_some());
    }

    #[test]
    fn an_undecided_session_is_forwarded_after_its_timeout_and_everything_at_shutdown() {
        let (h, _work, spool) = stage(Mode::Summarize);
        learn(&h);
        session(&h, "e1", 1_000, "0");
        h.tick(Instant::now());
        assert!(drain(&spool).is_empty());
        h.tick(Instant::now() + Duration::from_secs(3) + SESSION_SLACK + Duration::from_secs(1));
        assert_eq!(drain(&spool).len(), 3);
        session(&h, "e2", 2_000, "0");
        assert!(h.agent(&fold(700, "exec /bin/sh"), Frame::agent(Bytes::from_static(b"sh"))).is_none());
        h.flush();
        assert_eq!(drain(&spool).len(), 4);
    }

    #[test]
    fn dockerd_is_asked_about_at_most_a_burst_of_containers_at_once_the_rest_at_their_next_check() {
        let (h, mut work, _spool) = stage(Mode::Summarize);
        let status = |id: &str| {
            let raw =
                json!({"Type": "container", "Action": "health_status: healthy", "Actor": {"ID": id}, "timeNano": 1});
            DockerEvent::parse(Bytes::from(raw.to_string())).unwrap()
        };
        for i in 0..(ASK_BURST as usize + 10) {
            let e = status(&format!("c{i}"));
            assert_eq!(feed(&h, e).len(), 1, "health_status events pass");
        }
        let asked = std::iter::from_fn(|| work.try_recv().ok()).count();
        assert_eq!(asked, ASK_BURST as usize, "a burst, then the budget");
        // A later container's next check asks again once the budget refilled.
        std::thread::sleep(Duration::from_millis(120));
        let late = format!("c{}", ASK_BURST as usize + 5);
        let raw = json!({"Type": "container", "Action": format!("exec_create: {CMD}"), "Actor": {"ID": late, "Attributes": {"execID": "x"}}, "timeNano": 2});
        let e = DockerEvent::parse(Bytes::from(raw.to_string())).unwrap();
        assert_eq!(feed(&h, e).len(), 1, "not known yet: forwarded");
        assert!(matches!(work.try_recv(), Ok(Work::Inspect(id)) if id == late));
    }

    fn status(h: &Health) -> Vec<String> {
        feed(h, ev("health_status: healthy", 500, json!({})))
    }

    #[test]
    fn sessions_created_while_dockerd_is_asked_about_the_container_are_sent_at_once_and_counted() {
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let encoder = Encoder::new(65_000, false, stats.clone());
        let (h, mut work) = Health::new(Mode::Summarize, Duration::from_secs(60), spool, encoder, stats.clone());
        // The first check comes before the first health_status: not known, sent.
        assert_eq!(session(&h, "first", 100, "0").len(), 3);
        assert_eq!(status(&h).len(), 1);
        assert!(matches!(work.try_recv(), Ok(Work::Inspect(id)) if id == C));
        // The answer is late: a check and a docker exec of another command meanwhile are sent
        // whole, in their place among the other events (held, they would go out behind later
        // events, and a crash meanwhile would lose them past the cursor), and counted.
        assert_eq!(session(&h, "passing", 1_000, "0").len(), 3);
        assert_eq!(feed(&h, ev("exec_create: /bin/ls", 2_500, json!({"execID": "ls"}))).len(), 1);
        assert_eq!(Stats::get(&stats.health_sessions_before_known), 2);
        learn(&h);
        assert_eq!(session(&h, "later", 3_000, "0").len(), 0, "known now: a candidate");
        assert_eq!(Stats::get(&stats.health_sessions_before_known), 2);
    }

    #[test]
    fn a_container_dockerd_did_not_answer_about_is_asked_again_at_its_next_check() {
        let (h, mut work, _spool) = stage(Mode::Summarize);
        status(&h);
        assert!(matches!(work.try_recv(), Ok(Work::Inspect(_))));
        h.unanswered(C);
        // Not taken for a container without a healthcheck: its next check asks again.
        assert_eq!(session(&h, "e2", 2_000, "0").len(), 3);
        assert!(matches!(work.try_recv(), Ok(Work::Inspect(id)) if id == C));
        learn(&h);
        assert!(session(&h, "e3", 3_000, "0").is_empty());
        assert!(matches!(work.try_recv(), Ok(Work::Verdict { exec_id, .. }) if exec_id == "e3"));
    }

    #[test]
    fn a_check_without_an_answer_from_dockerd_is_asked_again_before_it_is_sent() {
        let (h, _work, spool) = stage(Mode::Summarize);
        learn(&h);
        session(&h, "e1", 1_000, "0");
        assert!(!h.verdict("e1", Some(700), None, false), "inspect failed: asked again");
        assert!(h.verdict("e1", Some(700), Some(&[LogEntry { start_ns: 900, end_ns: 1_100, exit_code: 0 }]), true));
        assert!(drain(&spool).is_empty(), "folded");
    }

    #[test]
    fn a_check_undecided_when_its_container_is_removed_is_sent_and_counted() {
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let encoder = Encoder::new(65_000, false, stats.clone());
        let (h, _work) = Health::new(Mode::Summarize, Duration::from_secs(60), spool, encoder, stats.clone());
        learn(&h);
        assert!(session(&h, "e1", 1_000, "0").is_empty());
        let out = feed(&h, ev("destroy", 3_000, json!({})));
        assert_eq!(out.len(), 4, "the session, then destroy: {out:?}");
        assert_eq!(Stats::get(&stats.health_sessions_undecided), 1);
        assert!(h.verdict("e1", Some(700), None, true), "decided already");
    }

    #[test]
    fn dockerd_s_answer_about_a_container_destroyed_meanwhile_leaves_nothing_behind() {
        let (h, _work, _spool) = stage(Mode::Summarize);
        status(&h);
        feed(&h, ev("destroy", 3_000, json!({})));
        h.learned(C, None);
        assert!(!h.lock().containers.contains_key(C));
    }

    #[test]
    fn drop_mode_sends_no_summary() {
        let (h, _work, spool) = stage(Mode::Drop);
        learn(&h);
        session(&h, "e1", 1_000, "0");
        assert!(h.verdict("e1", Some(700), Some(&[LogEntry { start_ns: 900, end_ns: 1_100, exit_code: 0 }]), false));
        assert_eq!(feed(&h, ev("die", 3_000, json!({}))).len(), 1);
        assert!(drain(&spool).is_empty());
    }
}
