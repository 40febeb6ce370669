//! Wires the stages together and runs them until SIGINT/SIGTERM.
//!
//! ```text
//! DockerSource ─┐
//!               ├─> Spool (bounded, drop-oldest) ─> Sink ─> Output (Wazuh queue / lines)
//! EbpfProbes  ──┘                                    └─> delivered cursor ─> state file
//! ```
//! Shutdown: the sources stop first, then the sink gets a grace period to deliver what is
//! buffered, then the cursor of the last delivered event is saved.
use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    signal::unix::SignalKind,
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, ConfigError, Output as OutputKind},
    docker::{DockerError, DockerSource},
    ebpf::{EbpfError, EbpfProbes},
    encode::{Encoder, event_hash},
    metrics,
    monitor::Monitor,
    sink::{self, Left, Output, Sink, Spool},
    state::{Cursor, CursorWriter, InstanceLock, StateDir, StateError},
    stats::Stats,
};

/// How long the sink may keep delivering buffered frames after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Minimum time between two writes of the cursor file.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("{0} (ebpf.required is set, so docker-listener does not fall back to Docker events only)")]
    Ebpf(#[from] EbpfError),
    #[error("the eBPF monitor stopped: {0} (ebpf.required is set, so docker-listener stops with it)")]
    EbpfRuntime(EbpfError),
    #[error("cannot open the output {output}: {source}")]
    Output { output: String, source: std::io::Error },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("internal error: a pipeline task panicked ({0}); please report it")]
    Panic(String),
    #[error(transparent)]
    Privilege(crate::privilege::PrivilegeError),
}

impl DaemonError {
    /// The process exit code (documented in the README and `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => 2,
            DaemonError::State(StateError::Locked { .. }) => 4,
            DaemonError::State(StateError::PermissionDenied { .. } | StateError::Unsafe { .. }) => 3,
            DaemonError::Privilege(_) => 3,
            DaemonError::Docker(e) if e.is_permission() => 3,
            DaemonError::Ebpf(EbpfError::NotPermitted(_)) => 3,
            DaemonError::Output { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => 3,
            _ => 1,
        }
    }
}

/// Runs the daemon until a shutdown signal.
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    if !cfg.enabled {
        tracing::info!("docker-listener is disabled in the configuration (\"enabled\": false): exiting");
        return Ok(());
    }
    // Before any event: the secrets to take out of command lines. Patterns that cannot be used
    // leave the built-in ones, never no redaction at all.
    let redactor = match cfg.redact.enabled.then(|| crate::redact::Redactor::new(&cfg.redact.patterns)) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            tracing::error!(
                error = %e,
                "cannot use the secret patterns: only the built-in ones are applied, not redact.patterns. \
                 Fix or remove the pattern named in `error` and restart"
            );
            let builtin = crate::redact::Redactor::new(&[]).map_err(|e| ConfigError::Value {
                origin: "docker-listener".into(),
                key: "redact.enabled".into(),
                value: "true".into(),
                accepted: format!("{e}; to start without redaction, set redact.enabled to false"),
            })?;
            Some(builtin)
        }
    };
    crate::redact::install(redactor);
    let docker_socket = cfg.docker_socket()?;
    let output_kind = cfg.output.clone().unwrap_or(OutputKind::Queue);
    let queue = cfg.queue_path();

    let state = StateDir::new(&cfg.state_dir);
    state.prepare()?;
    let lock = InstanceLock::acquire(&state.lock_path())?;
    let _queue_lock = match output_kind {
        OutputKind::Queue => queue_lock(&queue)?,
        _ => None,
    };
    // (An older version saved an empty cursor when nothing was delivered: none either.)
    let saved = state.load_cursor()?.filter(Cursor::is_set);
    // A first start reads from its start (`since` its start time: no history before it is
    // forwarded, and what dockerd logged while it was not reached yet, down or restarting, is),
    // and saves a cursor there (below, once the output and the probes are up), the point the
    // next start replays from: a first run that delivers none of its Docker events (Wazuh away)
    // leaves them to the next start, instead of a next start that streams live again and loses
    // them. (A cursor with no event's hash: it covers none, whatever dockerd's clock says.)
    let first_start = saved.is_none().then(|| Cursor::at_start(crate::ecs::now_wall_ns()));
    let cursor = saved.clone().or_else(|| first_start.clone()).unwrap_or_default();

    let stats = Arc::new(Stats::default());
    let encoder = Encoder::new(cfg.max_event_size, cfg.legacy_fields, stats.clone());
    let spool = Arc::new(Spool::new(cfg.buffer_bytes, stats.clone()));
    let output = Output::open(&output_kind, &queue)
        .await
        .map_err(|source| DaemonError::Output { output: output_kind.to_string(), source })?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        output = %output.describe(),
        docker = %docker_socket.display(),
        state = %lock.path().display(),
        resume_from_time_nano = cursor.is_set().then_some(cursor.time_nano),
        max_event_size = cfg.max_event_size,
        buffer_bytes = cfg.buffer_bytes,
        "docker-listener starting"
    );

    // The eBPF side: it gets Docker's container events and client from the Docker source.
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (client_tx, client_rx) = watch::channel(None);
    let mut monitor = None;
    if cfg.ebpf.enabled {
        match EbpfProbes::load(&cfg.ebpf) {
            Ok(probes) => {
                monitor = Some(Monitor::new(
                    probes,
                    cfg.ebpf.clone(),
                    encoder.clone(),
                    spool.clone(),
                    stats.clone(),
                    events_rx,
                    client_rx,
                ));
            }
            Err(e) if cfg.ebpf.required => return Err(e.into()),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "eBPF is unavailable: running with Docker events only (no process or socket \
                     events). Fix the cause given in `error`, or pass --no-ebpf to silence this warning"
                );
                spool.push_report(encoder.report(&crate::ecs::agent_health_event(
                    "ebpf",
                    "unavailable",
                    &e.to_string(),
                    "Docker events only: no process, socket, file or other in-container events until the cause \
                     is fixed and docker-listener restarted",
                )));
            }
        }
    } else {
        tracing::info!("eBPF disabled (--no-ebpf or ebpf.enabled = false): Docker events only");
    }
    let has_monitor = monitor.is_some();
    // Healthchecks: recognised and summarised unless `healthchecks: forward`.
    let health = (cfg.healthchecks != crate::health::Mode::Forward).then(|| {
        crate::health::Health::new(
            cfg.healthchecks,
            cfg.healthcheck_period(),
            spool.clone(),
            encoder.clone(),
            stats.clone(),
        )
    });
    let health_client = client_tx.subscribe();
    if let (Some(m), Some((h, _))) = (monitor.as_mut(), health.as_ref()) {
        m.health = Some(h.clone());
    }
    if let Some(m) = monitor.as_mut() {
        m.repeats = cfg.repeat_window().map(crate::repeats::Repeats::new);
    }
    // From here on, SIGINT/SIGTERM mean an orderly shutdown.
    let mut signals = Signals::install()?;

    let shutdown = CancellationToken::new();
    let abort_sink = CancellationToken::new();
    // The delivered cursor starts where the next start would replay from: a first start's own,
    // once saved.
    let first_start = first_start.filter(|c| match state.save_cursor(c) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot save a first resume cursor: the Docker events this run does not deliver are not replayed \
                 by the next start (counted lost at shutdown). Check the state directory"
            );
            false
        }
    });
    let (delivered_tx, delivered_rx) = watch::channel(first_start.or(saved).unwrap_or_default());

    let sink =
        Sink { spool: spool.clone(), output, encoder: encoder.clone(), delivered: delivered_tx, stats: stats.clone() };
    let sink_task = tokio::spawn(sink.run(abort_sink.clone()));
    let last_delivered = delivered_rx.clone();
    let cursor_task = tokio::spawn(persist_cursor(state.clone(), delivered_rx));

    // Monitoring: always on the state directory's stats socket, and where `metrics` says.
    let mut endpoints = vec![metrics::Endpoint::Unix(metrics::stats_socket(&cfg.state_dir))];
    endpoints.extend(cfg.metrics.clone());
    let stop_metrics = CancellationToken::new();
    let mut metrics_tasks = Vec::new();
    for endpoint in endpoints {
        match metrics::bind(&endpoint).await {
            Ok(listener) => {
                tracing::info!(endpoint = %endpoint, "serving metrics");
                metrics_tasks.push(tokio::spawn(metrics::serve(
                    listener,
                    stats.clone(),
                    spool.clone(),
                    stop_metrics.clone(),
                )));
            }
            Err(e) => {
                tracing::error!(endpoint = %endpoint, error = %e, "cannot serve metrics there (a port taken, a path taken by a file): the agent runs without its metrics endpoint")
            }
        }
    }

    // Everything that needs privileges is open or attached: keep only what the running work
    // needs (the eBPF maps, /proc of container processes, the queue socket).
    if let Some(user) = &cfg.user {
        // Validated with the configuration; only the switch itself can fail here.
        let to = crate::privilege::resolve(user, &cfg.groups).map_err(|why| {
            DaemonError::Privilege(crate::privilege::PrivilegeError::Switch {
                user: user.clone(),
                step: "resolve",
                source: std::io::Error::other(why),
                hint: crate::privilege::switch_hint(),
            })
        })?;
        crate::privilege::switch_user(&to).map_err(DaemonError::Privilege)?;
        tracing::info!(user = %to.name, uid = to.uid, gid = to.gid, groups = ?to.groups, "running as user");
    }
    if cfg.drop_privileges || cfg.user.is_some() {
        match crate::privilege::drop_to_needed(has_monitor, output_kind == OutputKind::Queue || cfg.user.is_some()) {
            Ok(kept) => tracing::info!(
                kept = %kept.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
                "dropped every capability the running agent does not need; no_new_privs set"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "kept the capabilities it started with (set \"drop_privileges\": false to silence this)"
            ),
        }
    }
    let mut sources: JoinSet<Result<(), DaemonError>> = JoinSet::new();
    let docker = DockerSource {
        socket: docker_socket,
        wait_time: cfg.wait_time(),
        max_wait_time: cfg.max_wait_time(),
        encoder: encoder.clone(),
        spool: spool.clone(),
        stats: stats.clone(),
        ignore_actions: cfg.ignore_actions.clone(),
        cursor,
        events_tx: has_monitor.then_some(events_tx),
        client_tx: (has_monitor || health.is_some()).then_some(client_tx),
        health: health.as_ref().map(|(h, _)| h.clone()),
    };
    let token = shutdown.clone();
    sources.spawn(async move { docker.run(token).await.map_err(DaemonError::from) });
    // The one-second tick of the stages that keep time in seconds: one wake-up for all.
    let ticks = crate::seconds::start(shutdown.clone());
    let health = health.map(|(h, work)| {
        let token = shutdown.clone();
        tokio::spawn(h.clone().run(work, health_client, token, ticks.clone()));
        h
    });
    if let Some(monitor) = monitor {
        let token = shutdown.clone();
        let required = cfg.ebpf.required;
        let (health_spool, health_encoder) = (spool.clone(), encoder.clone());
        sources.spawn(async move {
            match monitor.run(token.clone(), ticks).await {
                Ok(()) => Ok(()),
                Err(e) if required => Err(DaemonError::EbpfRuntime(e)),
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "the eBPF monitor stopped: no more process or socket events until \
                         docker-listener is restarted; Docker events go on"
                    );
                    health_spool.push_report(health_encoder.report(&crate::ecs::agent_health_event(
                        "ebpf",
                        "stopped",
                        &e.to_string(),
                        "no more process, socket, file or other in-container events until docker-listener is \
                         restarted; Docker events go on",
                    )));
                    token.cancelled().await;
                    Ok(())
                }
            }
        });
    }

    let mut sink_task = Some(sink_task);
    let mut cursor_task = Some(cursor_task);
    let result = wait_for_shutdown(&mut signals, &shutdown, &mut sources, &mut sink_task, &mut cursor_task).await;
    shutdown.cancel();
    while sources.join_next().await.is_some() {}
    if let Some(h) = &health {
        h.flush();
    }
    spool.close();
    let grace = tokio::spawn({
        let abort = abort_sink.clone();
        async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            abort.cancel();
        }
    });
    // A sink that failed (or ended before shutdown) left the spool as it was: counted the same.
    let account = || sink::account_left(&spool, &last_delivered.borrow().clone(), &stats);
    let left = match sink_task {
        Some(task) => task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the output stage failed while delivering the last frames");
            account()
        }),
        None => account(),
    };
    grace.abort();
    log_left_at_shutdown(left, &stats);
    if let Some(Err(e)) = match cursor_task {
        Some(task) => Some(task.await),
        None => None,
    } {
        tracing::error!(error = %e, "the cursor writer failed: the resume cursor may be older than the last delivered event");
    }
    stop_metrics.cancel();
    for t in metrics_tasks {
        let _ = t.await;
    }
    let summary: Vec<String> = stats.snapshot().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    tracing::info!(stats = %summary.join(" "), "docker-listener stopped");
    drop(lock);
    result
}

/// What the output did not take within the grace period: the events the next start cannot
/// replay are lost (counted by `sink::account_left`), the other Docker events are replayed.
fn log_left_at_shutdown(left: Left, stats: &Stats) {
    const WHY: &str = "The output did not take them within the shutdown grace period (Wazuh's queue missing, \
                       full or slow, or a line output stuck): keep Wazuh's agent running until \
                       docker-listener has stopped (the packaged unit is ordered after wazuh-agent.service, \
                       so systemd stops docker-listener first), and after an outage stop it once its backlog \
                       is delivered (buffer_frames near 0 in `docker-listener stats`)";
    if left.lost() > 0 {
        tracing::error!(
            ebpf_events_lost = left.agent,
            docker_events_lost = left.docker_lost,
            docker_events_replayed = left.docker_replayed,
            reports_lost = left.reports,
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            dropped_total = Stats::get(&stats.dropped_left_at_shutdown),
            "shutting down with events still in the output buffer: {} of our own (eBPF: processes, sockets, \
             files...) and {} Docker events the next start cannot replay (no cursor saved yet, behind it, or \
             older than the last 256 that dockerd keeps) \
             are lost (counted in dropped_left_at_shutdown); the other {} Docker events are replayed from \
             the saved cursor at the next start (if dockerd still holds them). {WHY}",
            left.agent,
            left.docker_lost,
            left.docker_replayed,
        );
    } else if left.total() > 0 {
        tracing::warn!(
            docker_events_replayed = left.docker_replayed,
            reports_lost = left.reports,
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "shutting down with {} Docker events still in the output buffer: they are replayed from the \
             saved cursor at the next start (if dockerd still holds them). {WHY}",
            left.docker_replayed,
        );
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            term: tokio::signal::unix::signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            int: tokio::signal::unix::signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
        })
    }
}

/// Waits for SIGINT/SIGTERM, or for a task to stop on its own: a source stops only on a fatal
/// error, the sink and the cursor writer never before shutdown (if one does, it is taken out of
/// its slot and the daemon stops with an error rather than run on with nothing delivered).
async fn wait_for_shutdown(
    signals: &mut Signals,
    shutdown: &CancellationToken,
    sources: &mut JoinSet<Result<(), DaemonError>>,
    sink: &mut Option<tokio::task::JoinHandle<Left>>,
    cursor: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), DaemonError> {
    let ended = |what: &str, res: Result<(), tokio::task::JoinError>| {
        DaemonError::Panic(match res {
            Ok(()) => format!("the {what} stopped before shutdown"),
            Err(e) => format!("the {what} failed: {e}"),
        })
    };
    tokio::select! {
        _ = signals.term.recv() => { tracing::info!("SIGTERM: shutting down"); Ok(()) }
        _ = signals.int.recv() => { tracing::info!("SIGINT: shutting down"); Ok(()) }
        _ = shutdown.cancelled() => Ok(()),
        Some(res) = sources.join_next() => match res {
            Ok(r) => r,
            Err(e) => Err(DaemonError::Panic(e.to_string())),
        },
        res = async { match sink.as_mut() { Some(t) => t.await, None => std::future::pending().await } }, if sink.is_some() => {
            *sink = None;
            Err(ended("output stage", res.map(drop)))
        }
        res = async { match cursor.as_mut() { Some(t) => t.await, None => std::future::pending().await } }, if cursor.is_some() => {
            *cursor = None;
            Err(ended("cursor writer", res))
        }
    }
}

/// Saves the delivered cursor whenever it moves (at most every CURSOR_SAVE_INTERVAL), and once
/// more when the sink has finished.
async fn persist_cursor(state: StateDir, mut rx: watch::Receiver<Cursor>) {
    let mut failing = false;
    // Opened at the first save, kept open; dropped after an error and opened again at the next.
    let mut writer: Option<CursorWriter> = None;
    loop {
        let done = rx.changed().await.is_err();
        let cursor = rx.borrow_and_update().clone();
        // The write ends with an fdatasync, which may take milliseconds on a busy disk: off the
        // pipeline's thread.
        let saved = {
            let state = state.clone();
            let open = writer.take();
            tokio::task::spawn_blocking(move || {
                let mut w = match open {
                    Some(w) => w,
                    None => state.cursor_writer()?,
                };
                w.save(&cursor).map(|()| w)
            })
            .await
        };
        match saved
            .unwrap_or_else(|e| Err(StateError::Io { path: state.cursor_path(), source: std::io::Error::other(e) }))
        {
            Ok(w) => {
                writer = Some(w);
                failing = false;
            }
            Err(e) if !failing => {
                tracing::error!(error = %e, "cannot save the resume cursor; after a restart, events may be replayed or missed");
                failing = true;
            }
            Err(_) => {}
        }
        if done {
            return;
        }
        tokio::time::sleep(CURSOR_SAVE_INTERVAL).await;
    }
}

/// One instance per queue socket, whatever its state directory: a lock under /run named after
/// the queue path. Skipped, with a warning, where /run/docker-listener cannot be written (a
/// read-only container without it mounted from the host).
fn queue_lock(queue: &std::path::Path) -> Result<Option<InstanceLock>, StateError> {
    let dir = PathBuf::from("/run/docker-listener");
    let name = format!("queue-{:016x}.lock", event_hash(queue.as_os_str().as_encoded_bytes()));
    match InstanceLock::acquire(&dir.join(name)) {
        Ok(l) => Ok(Some(l)),
        Err(StateError::Locked { pid, .. }) => Err(StateError::Locked { pid, path: queue.to_owned() }),
        Err(e) => {
            tracing::warn!(
                error = %e,
                queue = %queue.display(),
                "no per-queue instance lock: another docker-listener (the wodle, the service, a \
                 container) could send the same events to this queue. Make /run/docker-listener \
                 writable (in a container: mount it from the host)"
            );
            Ok(None)
        }
    }
}
