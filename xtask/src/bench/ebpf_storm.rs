//! Storms: what the agent costs the workload, measured as wall-time ratios with/without it.
//!
//! Three variants, each in rounds that alternate with and without the agent (after one
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
//! With `DL_BENCH_PERF=<prefix>` one extra, unmeasured with-agent round of each variant runs
//! with `perf record` attached to the agent (`<prefix>-<id>.data`; arguments from
//! `DL_BENCH_PERF_ARGS`, default `-e cpu-clock -F 999 -g`).
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, AgentRun, Load, Mode, StormContainer, Worker},
    report::{Goal, Metric, Table, group_thousands, median},
    system,
};

/// Other load (CPUs) above which a round is flagged as disturbed.
const DISTURBED: f64 = 0.2;

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
    /// Pairs of rounds (one with, one without the agent).
    pub pairs: usize,
    /// The target for the with/without wall-time ratio.
    pub max_ratio: f64,
    pub mode: Mode,
}

/// What the agent did in one with-agent round.
struct AgentSide {
    cpu: Duration,
    /// Time the kernel spent in the agent's BPF programs during the storm, and their runs
    /// (`kernel.bpf_stats_enabled`).
    probe_ns: u64,
    probe_runs: u64,
    /// Events of this storm delivered (execs with the marker, or connects to the port).
    delivered: u64,
    /// Accepts of a connect storm, and how many of them show local port 0.
    accepts: u64,
    accepts_port0: u64,
    /// Storm events delivered per second (first to last arrival).
    rate: f64,
    /// Records lost in the kernel (`ebpf_lost`) and frames dropped by the agent's output buffer
    /// (`dropped_buffer_full`), from its final counters.
    lost: u64,
    dropped: u64,
}

struct Round {
    wall: Duration,
    other_load: f64,
    agent: Option<AgentSide>,
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
        let mut round_no = 0;
        let mut next = |with: bool, perf: Option<&Path>| -> Result<Round> {
            round_no += 1;
            self.round(ctx, c, round_no, with, perf)
                .with_context(|| format!("round {round_no} ({} the agent)", if with { "with" } else { "without" }))
        };
        if let Some(prefix) = std::env::var_os("DL_BENCH_PERF") {
            let out = PathBuf::from(format!("{}-{}.data", Path::new(&prefix).display(), self.id));
            println!("  profiling one extra with-agent round with perf (not counted) into {}", out.display());
            next(true, Some(&out))?;
        }
        let warm = next(true, None)?;
        println!("  warm-up round with the agent: {:.0} ms", ms(warm.wall));
        let mut pairs = Vec::new();
        for i in 0..self.pairs {
            // Alternate which goes first, so a drift in the machine's speed cancels out.
            let (without, with) = if i % 2 == 0 {
                let w = next(false, None)?;
                (w, next(true, None)?)
            } else {
                let a = next(true, None)?;
                (next(false, None)?, a)
            };
            let a = with.agent.as_ref().context("a with-agent round without agent results")?;
            println!(
                "  pair {}: {:.0} ms without, {:.0} ms with the agent (×{:.3}); agent {:.1} µs CPU per {}, probes {:.0} ns \
                 per {5}, {} delivered, other load {:.2}/{:.2} CPUs",
                i + 1,
                ms(without.wall),
                ms(with.wall),
                with.wall.as_secs_f64() / without.wall.as_secs_f64(),
                per_op_us(a.cpu, self.count),
                self.op(),
                a.probe_ns as f64 / self.count as f64,
                a.delivered,
                without.other_load,
                with.other_load,
            );
            pairs.push((without, with));
        }
        drop(container);
        Ok(self.table(&pairs))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_op_us(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

impl Storm {
    fn op(&self) -> &'static str {
        match self.kind {
            Kind::ConnectInContainer => "connect",
            _ => "exec",
        }
    }

    fn round(
        &self,
        ctx: &Context,
        container: Option<&StormContainer>,
        n: usize,
        with_agent: bool,
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
        let mut run = with_agent.then(|| AgentRun::start(ctx, self.id, None)).transpose()?;
        let agent_pid = run.as_ref().map(|r| r.agent.pid());
        let perf = match (perf, agent_pid) {
            (Some(out), Some(pid)) => Some(ebpf::Perf::attach(pid, out)?),
            _ => None,
        };
        let before = Load::sample(agent_pid)?;
        let probes_before = agent_pid.map(system::bpf_prog_runs).transpose()?;
        worker.go()?;
        let worker = worker.wait()?;
        if let Some(r) = &run {
            r.sink.wait_idle(Duration::from_millis(300), Duration::from_secs(60));
        }
        let after = Load::sample(agent_pid)?;
        let probes = match (probes_before, agent_pid) {
            (Some((ns, runs)), Some(pid)) => {
                let (ns2, runs2) = system::bpf_prog_runs(pid)?;
                (ns2.saturating_sub(ns), runs2.saturating_sub(runs))
            }
            _ => (0, 0),
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
        Ok(Round {
            wall,
            other_load,
            agent: Some(AgentSide {
                cpu,
                probe_ns: probes.0,
                probe_runs: probes.1,
                delivered,
                accepts,
                accepts_port0,
                rate,
                lost,
                dropped,
            }),
        })
    }

    fn table(&self, pairs: &[(Round, Round)]) -> Table {
        let full = self.mode == Mode::Full;
        let goal = |g| full.then_some(g);
        let op = self.op();
        let mut without = Metric::new("storm wall time without the agent", "ms", 0, None);
        let mut with = Metric::new("storm wall time with the agent", "ms", 0, None);
        let mut ratio = Metric::new("with / without", "×", 3, goal(Goal::AtMost(self.max_ratio)));
        let cpu_name = format!("agent CPU per {op}");
        let mut cpu = Metric::new(&cpu_name, "µs", 1, None);
        let probe_name = format!("in-kernel probe time per {op}");
        let mut probe = Metric::new(&probe_name, "ns", 0, None);
        let runs_name = format!("probe runs per {op}");
        let mut runs = Metric::new(&runs_name, "runs", 1, None);
        let share_name = format!("probe time, % of an {op} without the agent");
        let mut share = Metric::new(&share_name, "%", 2, None);
        let mut rate = Metric::new("storm events delivered per second", "events/s", 0, None);
        let delivered_name = format!("{op}s delivered as events");
        let mut delivered = Metric::new(
            &delivered_name,
            "% of storm",
            2,
            goal(Goal::AtLeast(100.0)).filter(|_| self.kind != Kind::ExecOnHost),
        );
        let mut host_events = Metric::new("events for the host storm", "events", 0, goal(Goal::AtMost(0.0)));
        let mut ops = Metric::new(&format!("{op}s per second without the agent"), "/s", 0, None);
        let mut lost = Vec::new();
        let mut dropped = Vec::new();
        let mut accepts = Vec::new();
        let mut port0 = Vec::new();
        for (wo, w) in pairs {
            without.samples.push(ms(wo.wall));
            with.samples.push(ms(w.wall));
            ratio.samples.push(w.wall.as_secs_f64() / wo.wall.as_secs_f64());
            ops.samples.push(self.count as f64 / wo.wall.as_secs_f64());
            if let Some(a) = &w.agent {
                cpu.samples.push(per_op_us(a.cpu, self.count));
                let probe_per_op = a.probe_ns as f64 / self.count as f64;
                probe.samples.push(probe_per_op);
                runs.samples.push(a.probe_runs as f64 / self.count as f64);
                share.samples.push(100.0 * probe_per_op / (wo.wall.as_secs_f64() * 1e9 / self.count as f64));
                rate.samples.push(a.rate);
                delivered.samples.push(100.0 * a.delivered as f64 / self.count as f64);
                host_events.samples.push(a.delivered as f64);
                lost.push(a.lost);
                dropped.push(a.dropped);
                accepts.push(a.accepts);
                port0.push(a.accepts_port0);
            }
        }
        let mut metrics = vec![without, with, ratio, cpu, probe, runs, share];
        match self.kind {
            Kind::ExecOnHost => metrics.push(host_events),
            _ => metrics.extend([rate, delivered]),
        }
        metrics.push(ops);
        let ratios: Vec<String> =
            pairs.iter().map(|(wo, w)| format!("{:.3}", w.wall.as_secs_f64() / wo.wall.as_secs_f64())).collect();
        let mut notes = vec![format!(
            "{} {op}s per round, {} pairs of rounds (+1 warm-up); ratio of each pair, in order: {}",
            group_thousands(&self.count.to_string()),
            pairs.len(),
            ratios.join(", ")
        )];
        match self.kind {
            Kind::ExecInContainer => notes.push(
                "the storm: fork + `execve(\"/bin/true\", [\"/bin/true\", \"mark-<round>\"])` + `waitpid`, one at a time, \
                 by `xtask bench-worker` inside the container (cgroups and ipc/uts/net/pid/mnt namespaces); delivered = \
                 exec events with the round's marker and the container's id, each pid once"
                    .into(),
            ),
            Kind::ExecOnHost => notes.push(
                "the storm: the same worker as a plain host process (host `/bin/true`, coreutils); the agent runs with \
                 its default configuration (`trace_host` off), and every round checks it sent no event with the \
                 round's marker"
                    .into(),
            ),
            Kind::ConnectInContainer => {
                notes.push(
                    "the storm: TCP connects from the worker inside the container (its cgroups and network namespace) \
                     to a listener of its own on 127.0.0.1, accepted and closed by a second thread of the worker; the \
                     connecting side closes with SO_LINGER 0 (a reset: no TIME_WAIT). Each connect is two events for \
                     the agent (connect, accept), and events/s counts both; agent CPU is per connect, i.e. per two \
                     events; delivered = connect events to the listener's port with the container's id"
                        .into(),
                );
                let med = |v: &[u64]| median(&v.iter().map(|&a| a as f64).collect::<Vec<_>>());
                let port0 = med(&port0);
                notes.push(format!(
                    "accept events per round: {:.0} (median), of which {port0:.0} show `destination.port` 0{}",
                    med(&accepts),
                    if port0 > 0.0 {
                        ": when the client's reset arrives before `accept()` returns, the kernel has already \
                         unhashed the accepted socket (its local port reads 0) by the time the probe reads it at \
                         `sys_exit_accept4` (checked separately: with a graceful close instead of a reset, no accept \
                         event shows port 0)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if lost.iter().chain(&dropped).any(|&n| n > 0) {
            notes.push(format!(
                "not every event was delivered, and the agent counted and reported every one missing: records lost in \
                 the kernel (ring buffer full) per round {lost:?}; frames dropped by its output buffer (`buffer_bytes`, \
                 16 MiB, oldest first) per round {dropped:?}. Why the output buffer overflows: {}",
                ebpf::OUTPUT_OVERFLOW
            ));
        }
        notes.push(format!(
            "in-kernel probe time: the `run_time_ns` of the agent's BPF programs (/proc/<agent>/fdinfo, with \
             `kernel.bpf_stats_enabled` = 1 during this scenario, which itself adds two clock reads per program run) \
             over the storm, per {op}: the part of the slow-down spent in the kernel on the storm's own CPU, free of \
             the wall-time noise"
        ));
        let other: Vec<f64> = pairs.iter().flat_map(|(a, b)| [a.other_load, b.other_load]).collect();
        let disturbed: Vec<usize> = pairs
            .iter()
            .enumerate()
            .filter(|(_, (a, b))| a.other_load.max(b.other_load) > DISTURBED)
            .map(|(i, _)| i + 1)
            .collect();
        notes.push(format!(
            "other processes (not the agent, the worker and its children, or the benchmark) used {:.2} CPUs during the \
             rounds (median; max {:.2}){}",
            median(&other),
            other.iter().copied().fold(0.0, f64::max),
            if disturbed.is_empty() {
                String::new()
            } else {
                format!(": pairs {disturbed:?} shared the machine with other work and are disturbed")
            }
        ));
        Table { caption: self.label.to_owned(), runs: pairs.len(), metrics, notes: ebpf::with_docker_note(notes) }
    }
}
