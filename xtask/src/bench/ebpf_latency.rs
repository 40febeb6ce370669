//! Latency: from the kernel seeing an event to its datagram arriving at the queue socket.
//!
//! fork + exec costs about 0.5 ms on this machine, so exec events cannot reach 10k/s; connects
//! can. A worker in a `--network none` container makes TCP connects to its own listener on the
//! container's loopback at a fixed rate (`connects_per_sec`, each connect also an accept: twice
//! that many events per second) for `secs`. For every connect and accept event of the
//! container: latency = arrival at the sink (`CLOCK_REALTIME` when `recvmmsg` returned its
//! batch) − the event's `@timestamp` (the kernel's `bpf_ktime_get_boot_ns()` when the record
//! was made, converted by the agent to wall-clock time with the offset between CLOCK_REALTIME
//! and CLOCK_BOOTTIME it read at start). Both clocks are the same machine's, so no skew; the
//! latency includes the agent's 3 ms ring-buffer poll and its sink batching.
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, AgentRun, Load, Mode, StormContainer, Worker},
    report::{Goal, Metric, Table, group_thousands, median},
};

pub struct Latency {
    pub id: &'static str,
    pub label: &'static str,
    pub connects_per_sec: u64,
    pub secs: u64,
    pub runs: usize,
    pub mode: Mode,
}

struct Run {
    p50: f64,
    p99: f64,
    max: f64,
    events: usize,
    rate: f64,
    /// CPUs used by other processes meanwhile.
    other_load: f64,
}

impl Scenario for Latency {
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
        let container = StormContainer::start(self.id)?;
        let mut runs = Vec::new();
        for i in 0..self.runs {
            let r = self.run_once(ctx, &container).with_context(|| format!("run {} of {}", i + 1, self.runs))?;
            println!(
                "  run {}: {} events at {:.0}/s: latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; other load {:.2} CPUs",
                i + 1,
                r.events,
                r.rate,
                r.p50,
                r.p99,
                r.max,
                r.other_load
            );
            runs.push(r);
        }
        drop(container);
        let full = self.mode == Mode::Full;
        let metric = |name: &str, decimals, goal: Option<Goal>, f: &dyn Fn(&Run) -> f64| {
            let unit = if name.contains("events/s") { "events/s" } else { "ms" };
            let mut m = Metric::new(name, unit, decimals, goal.filter(|_| full));
            m.samples = runs.iter().map(f).collect();
            m
        };
        let metrics = vec![
            metric("events/s offered (connect + accept)", 0, None, &|r| r.rate),
            metric("latency p50", 2, None, &|r| r.p50),
            metric("latency p99", 2, Some(Goal::AtMost(5.0)), &|r| r.p99),
            metric("latency max", 2, None, &|r| r.max),
        ];
        let notes = vec![
            format!(
                "event type: connect and accept (TCP on the container's loopback), {} connects/s = {} events/s for \
                 {} s per run; {} events measured per run (median), every connect delivered",
                group_thousands(&self.connects_per_sec.to_string()),
                group_thousands(&(2 * self.connects_per_sec).to_string()),
                self.secs,
                median(&runs.iter().map(|r| r.events as f64).collect::<Vec<_>>())
            ),
            {
                let other: Vec<f64> = runs.iter().map(|r| r.other_load).collect();
                format!(
                    "other processes (not the agent, the worker, or the benchmark) used {:.2} CPUs during the runs \
                     (median; max {:.2}){}",
                    median(&other),
                    other.iter().copied().fold(0.0, f64::max),
                    if other.iter().any(|&o| o > 0.2) { ": the runs above 0.2 are disturbed" } else { "" }
                )
            },
            "latency = the sink's CLOCK_REALTIME when the datagram arrived − the event's `@timestamp` (the kernel's \
             boot-clock time of the record, converted to wall-clock time by the agent)"
                .into(),
        ];
        Ok(Table { caption: self.label.to_owned(), runs: runs.len(), metrics, notes: ebpf::with_docker_note(notes) })
    }
}

impl Latency {
    fn run_once(&self, ctx: &Context, container: &StormContainer) -> Result<Run> {
        let count = self.connects_per_sec * self.secs;
        let mut worker = Worker::start(&ebpf::connect_args(container.pid, count, Some(self.connects_per_sec)))?;
        let run = AgentRun::start(ctx, self.id, None)?;
        let before = Load::sample(Some(run.agent.pid()))?;
        worker.go()?;
        let worker = worker.wait()?;
        let after = Load::sample(Some(run.agent.pid()))?;
        let other_load = after.others_since(&before, worker.cpu);
        run.sink.wait_idle(Duration::from_millis(300), Duration::from_secs(30));
        let (_, frames) = run.finish()?;
        if worker.get("failed")? > 0 {
            bail!("{} of {count} connects failed", worker.get("failed")?);
        }
        let port = worker.get("port")?;
        let received = ebpf::parse_frames(&frames)?;
        let cid = container.started.id.as_str();
        let mut latencies = Vec::new();
        let mut connects = 0;
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for (ev, at) in &received.events {
            let action = ev.action();
            if ev.container_id() != cid || !matches!(action, "connect" | "accept") {
                continue;
            }
            if action == "connect" && ev.destination.as_ref().and_then(|d| d.port).map(u64::from) == Some(port) {
                connects += 1;
            }
            let t = ev.time_ns().with_context(|| format!("an event without @timestamp: {ev:?}"))?;
            first = first.min(t);
            last = last.max(t);
            latencies.push((at - t) as f64 / 1e6);
        }
        if connects != count {
            bail!("{count} connects made, {connects} connect events delivered");
        }
        if latencies.iter().any(|l| *l < -1.0) {
            bail!("events arrived before their timestamp: the agent's clock conversion is off");
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        let span = (last - first).max(1) as f64 / 1e9;
        Ok(Run {
            p50: pct(0.50),
            p99: pct(0.99),
            max: pct(1.0),
            events: latencies.len(),
            rate: (latencies.len() - 1) as f64 / span,
            other_load,
        })
    }
}
