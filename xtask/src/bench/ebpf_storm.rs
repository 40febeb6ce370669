//! Storms: what the agent costs the workload, measured as wall-time ratios with/without it.
//!
//! Three kinds of storm, each in rounds that alternate with and without the agent (after one
//! unmeasured warm-up round with it):
//!
//! - **exec storm in a container**: `count` fork + exec of `/bin/true mark-<round>`, one after
//!   another, by a worker inside a `--network none` busybox container (its cgroups and
//!   namespaces). Every exec is an event the agent must deliver with its argv: the round fails
//!   unless each exec carrying the round's marker arrives exactly once with the container's id
//!   (or is accounted for by the agent's kernel-side loss counter). Also: agent CPU per exec,
//!   exec events/s delivered.
//! - **exec storm on the host**: the same storm as a plain host process (`/bin/true` of the
//!   host). With `trace_host` off (the default) the agent must produce nothing for it: the
//!   round fails if any event carries its marker. Its cost is the in-kernel filter (one map
//!   lookup per tracepoint hit).
//! - **connect storm in a container**: `count` TCP connects to a listener on the container's
//!   own loopback, each accepted and closed; every connect is an event (and every accept
//!   another). The round fails unless each connect to the listener's port arrives with the
//!   container's id (or is accounted for as lost).
//!
//! Each round runs the storm without the agent and with each daemon under test (see
//! `variants`: with `DL_BENCH_BASELINE`, the baseline and the current daemon side by side),
//! the order reversed every other round, after one unmeasured warm-up round per daemon. Both
//! daemons get the same checks: they use only what every build's events have (`event.action`,
//! `process.args` with the marker, `process.pid`, `container.id`, `destination.port`). The
//! table is built in `ebpf_storm_table`.
//!
//! With `DL_BENCH_PERF=<prefix>` one extra, unmeasured round with the current daemon runs
//! with `perf record` attached to it (`<prefix>-<id>.data`; arguments from
//! `DL_BENCH_PERF_ARGS`, default `-e cpu-clock -F 999 -g`).
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, AgentRun, Load, Mode, ProbeTime, StormContainer, Worker},
    ebpf_storm_table,
    report::Table,
    system,
    variants::Variants,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ExecInContainer,
    ExecOnHost,
    ConnectInContainer,
}

pub struct Storm {
    pub id: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    /// Execs or connects per round.
    pub count: u64,
    /// Rounds: each runs the storm without the agent and with each daemon (a pair of runs,
    /// or three with `DL_BENCH_BASELINE`).
    pub pairs: usize,
    /// The target for the with/without wall-time ratio.
    pub max_ratio: f64,
    pub mode: Mode,
}

/// What the agent did in one with-agent round.
pub struct AgentSide {
    pub cpu: Duration,
    /// The agent's context switches during the storm (`Load::agent_switches_since`).
    pub switches: super::system::Switches,
    /// Time the kernel spent in the agent's BPF programs during the storm, and their runs
    /// (`kernel.bpf_stats_enabled`); the compat programs' share of it.
    pub probes: ProbeTime,
    /// Events of this storm delivered (execs with the marker, or connects to the port).
    pub delivered: u64,
    /// Accepts of a connect storm, and how many of them show local port 0.
    pub accepts: u64,
    pub accepts_port0: u64,
    /// Storm events delivered per second (first to last arrival).
    pub rate: f64,
    /// Records lost in the kernel (`ebpf_lost`) and frames dropped by the agent's output buffer
    /// (`dropped_buffer_full`), from its final counters.
    pub lost: u64,
    pub dropped: u64,
}

/// One run of the storm, with one daemon or without any.
pub struct Round {
    pub wall: Duration,
    pub other_load: f64,
    pub agent: Option<AgentSide>,
}

impl Scenario for Storm {
    fn id(&self) -> &'static str {
        self.id
    }

    fn name(&self) -> String {
        format!("eBPF, {}", self.label)
    }

    fn section(&self) -> SectionInfo {
        ebpf::SECTION
    }

    fn run(&self, ctx: &Context) -> Result<Table> {
        let _qlen = ebpf::raise_qlen();
        let _stats = system::BpfStats::enable()?;
        let container = match self.kind {
            Kind::ExecOnHost => None,
            _ => Some(StormContainer::start(self.id)?),
        };
        let c = container.as_ref();
        let variants = Variants::new(ctx);
        let mut round_no = 0;
        let mut next = |daemon: Option<&Context>, perf: Option<&Path>| -> Result<Round> {
            round_no += 1;
            self.round(daemon, c, round_no, perf)
        };
        let current = variants.daemons().last().and_then(|(_, v)| v.daemon.clone()).context("no daemon to run")?;
        if let Some(prefix) = std::env::var_os("DL_BENCH_PERF") {
            let out = PathBuf::from(format!("{}-{}.data", Path::new(&prefix).display(), self.id));
            println!("  profiling one extra with-agent round with perf (not counted) into {}", out.display());
            next(Some(&current), Some(&out)).context("the profiled round")?;
        }
        for (_, v) in variants.daemons() {
            let warm = next(v.daemon.as_ref(), None).with_context(|| format!("warm-up round ({})", v.label))?;
            println!("  warm-up round with the {}: {:.0} ms", v.label, ms(warm.wall));
        }
        let mut rounds = Vec::new();
        for i in 0..self.pairs {
            let set = variants.round(i, |v| next(v.daemon.as_ref(), None))?;
            let without = &set[0];
            let mut line = format!("  round {}: {:.0} ms without", i + 1, ms(without.wall));
            for (j, v) in variants.daemons() {
                let with = &set[j];
                let a = with.agent.as_ref().context("a with-agent round without agent results")?;
                line.push_str(&format!(
                    "; {:.0} ms with the {} (×{:.3}), agent {:.1} µs CPU per {op}, probes {:.0} ns per {op}, {} delivered",
                    ms(with.wall),
                    v.label,
                    with.wall.as_secs_f64() / without.wall.as_secs_f64(),
                    per_op_us(a.cpu, self.count),
                    a.probes.ns as f64 / self.count as f64,
                    a.delivered,
                    op = self.op(),
                ));
            }
            let loads: Vec<String> = set.iter().map(|r| format!("{:.2}", r.other_load)).collect();
            println!("{line}; other load {} CPUs", loads.join("/"));
            rounds.push(set);
        }
        drop(container);
        Ok(ebpf_storm_table::table(self, &variants, &rounds))
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn per_op_us(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

impl Storm {
    pub fn op(&self) -> &'static str {
        match self.kind {
            Kind::ConnectInContainer => "connect",
            _ => "exec",
        }
    }

    /// One storm: with `daemon` running, or without an agent.
    pub(super) fn round(
        &self,
        daemon: Option<&Context>,
        container: Option<&StormContainer>,
        n: usize,
        perf: Option<&Path>,
    ) -> Result<Round> {
        let marker = match self.kind {
            Kind::ExecOnHost => format!("hostmark-{}-{n}", std::process::id()),
            _ => format!("mark-{}-{n}", std::process::id()),
        };
        let args = match (self.kind, container) {
            (Kind::ExecInContainer, Some(c)) => ebpf::exec_args(Some(c.pid), self.count, &marker),
            (Kind::ExecOnHost, _) => ebpf::exec_args(None, self.count, &marker),
            (Kind::ConnectInContainer, Some(c)) => ebpf::connect_args(c.pid, self.count, None),
            _ => bail!("a container storm without its container"),
        };
        // The worker joins the container first, so the agent's inventory finds it there.
        let mut worker = Worker::start(&args)?;
        let mut run = daemon.map(|d| AgentRun::start(d, self.id, None)).transpose()?;
        let agent_pid = run.as_ref().map(|r| r.agent.pid());
        let perf = match (perf, agent_pid) {
            (Some(out), Some(pid)) => Some(ebpf::Perf::attach(pid, out)?),
            _ => None,
        };
        let before = Load::sample(agent_pid)?;
        let probes_before = agent_pid.map(ProbeTime::read).transpose()?;
        worker.go()?;
        let worker = worker.wait()?;
        if let Some(r) = &run {
            r.sink.wait_idle(Duration::from_millis(300), Duration::from_secs(60));
        }
        let after = Load::sample(agent_pid)?;
        let probes = match (probes_before, agent_pid) {
            (Some(b), Some(pid)) => ProbeTime::read(pid)?.since(&b),
            _ => ProbeTime::default(),
        };
        if let Some(p) = perf {
            p.stop()?;
        }
        let failed = worker.get("failed")?;
        if failed > 0 {
            bail!("{failed} of the storm's {} {}s failed", self.count, self.op());
        }
        let wall = worker.elapsed()?;
        let other_load = after.others_since(&before, worker.cpu);
        let Some(r) = run.take() else { return Ok(Round { wall, other_load, agent: None }) };
        let (stats, frames) = r.finish()?;
        let received = ebpf::parse_frames(&frames)?;
        let lost = stats.get("ebpf_lost").copied().unwrap_or(0);
        let dropped = stats.get("dropped_buffer_full").copied().unwrap_or(0);
        let cid = container.map_or("", |c| c.started.id.as_str());
        let mut arrivals = Vec::new();
        let mut pids = HashSet::new();
        let mut accepts = 0;
        let mut accepts_port0 = 0;
        let port = worker.result.get("port").copied();
        for (ev, at) in &received.events {
            let mine = match self.kind {
                Kind::ExecInContainer | Kind::ExecOnHost => ev.action() == "exec" && ev.has_arg(&marker),
                Kind::ConnectInContainer => {
                    let local_port = ev.destination.as_ref().and_then(|d| d.port).map(u64::from);
                    // The storm is all that runs in the container. An accept of a connection the
                    // peer has already reset reads local port 0 (see the table's notes).
                    if ev.action() == "accept" && ev.container_id() == cid {
                        accepts += 1;
                        accepts_port0 += u64::from(local_port == Some(0));
                        arrivals.push(*at);
                    }
                    ev.action() == "connect" && local_port == port
                }
            };
            if !mine {
                continue;
            }
            if ev.container_id() != cid {
                bail!(
                    "an event of the storm carries container {:?}, the storm ran in {cid:?}: {ev:?}",
                    ev.container_id()
                );
            }
            if let Some(pid) = ev.process.pid
                && self.kind != Kind::ConnectInContainer
                && !pids.insert(pid)
            {
                bail!("two exec events for pid {pid}");
            }
            arrivals.push(*at);
            if self.kind == Kind::ExecOnHost {
                bail!("the agent reported a host exec with host tracing off: {ev:?}");
            }
        }
        let delivered = match self.kind {
            Kind::ConnectInContainer => arrivals.len() as u64 - accepts,
            _ => arrivals.len() as u64,
        };
        // Anything not delivered must be counted: records lost in the kernel (ring buffer full),
        // or frames the agent's bounded output buffer dropped (oldest first).
        if self.kind != Kind::ExecOnHost && delivered + lost + dropped < self.count {
            bail!(
                "{} {}s made, {delivered} delivered, {lost} records lost in the kernel and {dropped} frames dropped \
                 by the output buffer reported by the agent: {} missing without a trace",
                self.count,
                self.op(),
                self.count - delivered - lost - dropped
            );
        }
        if delivered > self.count {
            bail!("{delivered} events for {} {}s: duplicates", self.count, self.op());
        }
        arrivals.sort_unstable();
        let rate = match (arrivals.first(), arrivals.last()) {
            (Some(a), Some(b)) if b > a => (arrivals.len() - 1) as f64 * 1e9 / (b - a) as f64,
            _ => f64::NAN,
        };
        let cpu = after.agent_since(&before);
        let switches = after.agent_switches_since(&before);
        Ok(Round {
            wall,
            other_load,
            agent: Some(AgentSide { cpu, switches, probes, delivered, accepts, accepts_port0, rate, lost, dropped }),
        })
    }
}
