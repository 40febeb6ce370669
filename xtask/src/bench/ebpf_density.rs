//! Density: the agent starting on a host with hundreds of running containers.
//!
//! `count` busybox containers (`--network none`) are started, `parallel` at a time, each running
//! `sh -c 'while :; do sleep 5; /bin/true tick-$HOSTNAME; done'` ($HOSTNAME is Docker's 12-digit
//! short id). Then, in each of `rounds` rounds, every daemon under test (the current one; with
//! `DL_BENCH_BASELINE` also the baseline, alternating which goes first) starts among them, and
//! we measure:
//!
//! - **start-up**: wall time from just before the agent is spawned to the timestamp of its log
//!   line "container inventory loaded" (eBPF load, Docker connection, container list, each
//!   container's cgroup found and its processes read from /proc); and the `took_ms` that line
//!   reports (the monitor's own handling of the list);
//! - **memory**: VmRSS and VmHWM of the agent once it has run for `window` with every container
//!   exec'ing (registry and process table full, inspects done);
//! - **attribution**: every exec event with a `tick-<short id>` argument must carry the
//!   container whose id starts with that short id and its name, and every container must have
//!   at least one such event within the window.
//!
//! The containers are removed at the end, also on error.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, Agent, Containers, Load, Mode},
    ebpf_sink::FrameSink,
    report::{Goal, Metric, Table},
    system::{self, ScratchDir},
    variants::{Variant, Variants},
};

pub struct Density {
    pub id: &'static str,
    pub label: &'static str,
    pub containers: usize,
    pub parallel: usize,
    /// How long the agent runs with every container exec'ing before memory is read.
    pub window: Duration,
    pub rounds: usize,
    pub mode: Mode,
}

/// What one daemon's start among the containers gave.
#[derive(Debug, Clone, Copy)]
struct Sample {
    startup_s: f64,
    took_ms: f64,
    listed: f64,
    processes: f64,
    rss_mib: f64,
    hwm_mib: f64,
    attributed_percent: f64,
    cpu_percent: f64,
    execs: usize,
    ticks: usize,
    events_per_s: f64,
    ebpf_events: u64,
    ebpf_lost: u64,
    frames_out: u64,
}

const TICK: &str = "while :; do sleep 5; /bin/true tick-$HOSTNAME; done";

impl Density {
    /// Starts `ctx`'s daemon among the containers (`names`: id → name), measures it, stops it.
    fn measure(&self, ctx: &Context, names: &BTreeMap<&str, &str>) -> Result<Sample> {
        let dir = ScratchDir::new("density")?;
        let queue = dir.join("queue");
        let sink = FrameSink::bind(&queue)?;
        let mut agent = Agent::start(ctx, &dir, &queue, None)?;
        let line = agent.wait_ready()?;
        let ready = Load::sample(Some(agent.pid()))?;
        let inventory = ebpf::key_values(&line);
        let logged_at = line
            .split_whitespace()
            .next()
            .and_then(ebpf::rfc3339_ns)
            .with_context(|| format!("no timestamp on the agent's line {line:?}"))?;
        let startup = Duration::from_nanos(logged_at.saturating_sub(agent.started_ns).max(0) as u64);
        let listed = inventory.get("containers").copied().unwrap_or(0);
        std::thread::sleep(self.window);
        let memory = system::memory(agent.pid())?;
        let steady = Load::sample(Some(agent.pid()))?;
        let steady_cpu = steady.agent_since(&ready).as_secs_f64() / self.window.as_secs_f64();
        let stats = agent.stop()?;
        let frames = sink.finish()?;
        let received = ebpf::parse_frames(&frames)?;

        // Attribution: each tick names its container by short id.
        let mut ticks: BTreeMap<&str, u64> = BTreeMap::new();
        let mut tick_events = 0;
        for (ev, _) in &received.events {
            if ev.action() != "exec" {
                continue;
            }
            let Some(short) = ev.process.args.iter().find_map(|a| a.strip_prefix("tick-")) else { continue };
            let Some((&id, &name)) = names.iter().find(|(id, _)| id.starts_with(short)) else { continue };
            tick_events += 1;
            let got = ev.container.as_ref();
            if got.map(|c| c.id.as_str()) != Some(id) || got.and_then(|c| c.name.as_deref()) != Some(name) {
                bail!(
                    "the exec of `/bin/true tick-{short}` (container {name}, {id}) was attributed to {:?}",
                    got.map(|c| (&c.id, &c.name))
                );
            }
            *ticks.entry(id).or_default() += 1;
        }
        let missing: Vec<&str> = names.iter().filter(|(id, _)| !ticks.contains_key(*id)).map(|(_, n)| *n).collect();
        if !missing.is_empty() {
            bail!(
                "{} of {} containers have no tick exec event within {:?} of the agent's start: {}",
                missing.len(),
                names.len(),
                self.window,
                missing.iter().take(10).copied().collect::<Vec<_>>().join(", ")
            );
        }
        if listed < self.containers as u64 {
            bail!("the agent's inventory listed {listed} containers, {} run", self.containers);
        }

        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let stat = |k: &str| stats.get(k).copied().unwrap_or(0);
        Ok(Sample {
            startup_s: startup.as_secs_f64(),
            took_ms: inventory.get("took_ms").copied().unwrap_or(0) as f64,
            listed: listed as f64,
            processes: inventory.get("processes").copied().unwrap_or(0) as f64,
            rss_mib: mib(memory.rss),
            hwm_mib: mib(memory.hwm),
            attributed_percent: 100.0 * ticks.len() as f64 / names.len() as f64,
            cpu_percent: 100.0 * steady_cpu,
            execs: received.events.iter().filter(|(e, _)| e.action() == "exec").count(),
            ticks: tick_events,
            events_per_s: received.events.len() as f64 / self.window.as_secs_f64(),
            ebpf_events: stat("ebpf_events"),
            ebpf_lost: stat("ebpf_lost"),
            frames_out: stat("frames_out"),
        })
    }
}

impl Scenario for Density {
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
        let containers = Containers::new("density")?;
        let t = Instant::now();
        let started = containers.start(self.containers, self.parallel, &["sh", "-c", TICK])?;
        let start_time = t.elapsed();
        println!(
            "  started {} containers in {:.1} s ({} at a time)",
            started.len(),
            start_time.as_secs_f64(),
            self.parallel
        );
        let names: BTreeMap<&str, &str> = started.iter().map(|s| (s.id.as_str(), s.name.as_str())).collect();

        let variants = Variants::new(ctx);
        let mut rounds: Vec<Vec<Option<Sample>>> = Vec::new();
        for round in 0..self.rounds {
            let r = variants.round(round, |v: &Variant| match &v.daemon {
                None => Ok(None),
                Some(c) => {
                    let s = self.measure(c, &names)?;
                    println!(
                        "  round {} {}: inventory loaded {:.0} ms after its start ({} containers, {} processes, \
                         took_ms={}), RSS {:.1} MiB, peak {:.1} MiB",
                        round + 1,
                        v.label,
                        s.startup_s * 1e3,
                        s.listed,
                        s.processes,
                        s.took_ms,
                        s.rss_mib,
                        s.hwm_mib
                    );
                    Ok(Some(s))
                }
            })?;
            rounds.push(r);
        }
        let t = Instant::now();
        let removed = containers.remove_all()?;
        let remove_time = t.elapsed();
        println!("  removed {removed} containers in {:.1} s", remove_time.as_secs_f64());

        let full = self.mode == Mode::Full;
        let compared = variants.compared();
        let last = variants.daemons().last().map(|(j, _)| j);
        let mut metrics = Vec::new();
        for (j, v) in variants.daemons() {
            let who = if compared { format!(", {}", v.label) } else { String::new() };
            // The targets are the current build's; a baseline's rows are for comparison.
            let goal = |g| (full && Some(j) == last).then_some(g);
            let metric = |name: &str, unit: &'static str, decimals, goal, f: fn(&Sample) -> f64| {
                let mut m = Metric::new(&format!("{name}{who}"), unit, decimals, goal);
                m.samples = rounds.iter().filter_map(|r| r[j].as_ref().map(f)).collect();
                m
            };
            metrics.extend([
                metric("agent start → \"container inventory loaded\"", "s", 3, goal(Goal::AtMost(2.0)), |s| {
                    s.startup_s
                }),
                metric("took_ms in that line", "ms", 0, None, |s| s.took_ms),
                metric("containers in the inventory", "containers", 0, None, |s| s.listed),
                metric("processes found in them", "processes", 0, None, |s| s.processes),
                metric("RSS, steady (VmRSS)", "MiB", 1, goal(Goal::AtMost(32.0)), |s| s.rss_mib),
                metric("peak RSS (VmHWM)", "MiB", 1, None, |s| s.hwm_mib),
                metric(
                    "containers whose execs were all attributed right",
                    "% of containers",
                    2,
                    goal(Goal::AtLeast(100.0)),
                    |s| s.attributed_percent,
                ),
                metric("agent CPU during the window", "% of a CPU", 1, None, |s| s.cpu_percent),
            ]);
        }
        let windows: Vec<String> = rounds
            .iter()
            .flatten()
            .flatten()
            .map(|s| {
                format!(
                    "{} exec events ({} `tick-`), {:.0} events/s, ebpf_events={} ebpf_lost={} frames_out={}",
                    s.execs, s.ticks, s.events_per_s, s.ebpf_events, s.ebpf_lost, s.frames_out
                )
            })
            .collect();
        let mut notes = vec![
            format!(
                "{} containers `docker run -d --network none {} sh -c '{TICK}'`, started {} at a time in {:.0} s \
                 ({:.1}/s) and removed afterwards in {:.0} s; {} round{} ({})",
                self.containers,
                ebpf::IMAGE,
                self.parallel,
                start_time.as_secs_f64(),
                self.containers as f64 / start_time.as_secs_f64(),
                remove_time.as_secs_f64(),
                self.rounds,
                if self.rounds == 1 { "" } else { "s" },
                variants.describe_order()
            ),
            format!(
                "memory read {:.0} s after the inventory line; meanwhile the containers' `tick-` execs were every \
                 one attributed to the container their argument names, with its name; per run, in order: {}",
                self.window.as_secs_f64(),
                windows.join("; ")
            ),
        ];
        if compared {
            notes.push(variants.binaries());
        }
        Ok(Table { caption: self.label.to_owned(), runs: self.rounds, metrics, notes: ebpf::with_docker_note(notes) })
    }
}
