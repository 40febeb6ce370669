//! Density: the agent starting on a host with hundreds of running containers.
//!
//! `count` busybox containers (`--network none`) are started, `parallel` at a time, each running
//! `sh -c 'while :; do sleep 5; /bin/true tick-$HOSTNAME; done'` ($HOSTNAME is Docker's 12-digit
//! short id). Then the agent starts, and we measure:
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
//! The containers are removed at the end, also on error. This runs once (it is not a ratio).
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
};

pub struct Density {
    pub id: &'static str,
    pub label: &'static str,
    pub containers: usize,
    pub parallel: usize,
    /// How long the agent runs with every container exec'ing before memory is read.
    pub window: Duration,
    pub mode: Mode,
}

const TICK: &str = "while :; do sleep 5; /bin/true tick-$HOSTNAME; done";

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
        println!(
            "  agent: inventory loaded {:.0} ms after its start ({listed} containers, {} processes, took_ms={})",
            startup.as_secs_f64() * 1e3,
            inventory.get("processes").copied().unwrap_or(0),
            inventory.get("took_ms").copied().unwrap_or(0)
        );
        std::thread::sleep(self.window);
        let memory = system::memory(agent.pid())?;
        let steady = Load::sample(Some(agent.pid()))?;
        let steady_cpu = steady.agent_since(&ready).as_secs_f64() / self.window.as_secs_f64();
        let stats = agent.stop()?;
        let frames = sink.finish()?;
        let received = ebpf::parse_frames(&frames)?;
        let t = Instant::now();
        let removed = containers.remove_all()?;
        let remove_time = t.elapsed();
        println!("  removed {removed} containers in {:.1} s", remove_time.as_secs_f64());

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

        let full = self.mode == Mode::Full;
        let goal = |g| full.then_some(g);
        let one = Metric::single;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let metrics = vec![
            one("agent start → \"container inventory loaded\"", "s", 3, goal(Goal::AtMost(2.0)), startup.as_secs_f64()),
            one("took_ms in that line", "ms", 0, None, inventory.get("took_ms").copied().unwrap_or(0) as f64),
            one("containers in the inventory", "containers", 0, None, listed as f64),
            one(
                "processes found in them",
                "processes",
                0,
                None,
                inventory.get("processes").copied().unwrap_or(0) as f64,
            ),
            one("RSS, steady (VmRSS)", "MiB", 1, goal(Goal::AtMost(32.0)), mib(memory.rss)),
            one("peak RSS (VmHWM)", "MiB", 1, None, mib(memory.hwm)),
            one(
                "containers whose execs were all attributed right",
                "% of containers",
                2,
                goal(Goal::AtLeast(100.0)),
                100.0 * ticks.len() as f64 / names.len() as f64,
            ),
            one("agent CPU during the window", "% of a CPU", 1, None, 100.0 * steady_cpu),
        ];
        let notes = vec![
            format!(
                "{} containers `docker run -d --network none {} sh -c '{TICK}'`, started {} at a time in {:.0} s \
                 ({:.1}/s) and removed afterwards in {:.0} s",
                self.containers,
                ebpf::IMAGE,
                self.parallel,
                start_time.as_secs_f64(),
                self.containers as f64 / start_time.as_secs_f64(),
                remove_time.as_secs_f64()
            ),
            format!(
                "memory read {:.0} s after the inventory line; meanwhile the containers made {} exec events ({} of \
                 them `tick-` execs, every one attributed to the container its argument names, with its name), \
                 {:.0} events/s; the agent's counters at exit: ebpf_events={} ebpf_lost={} frames_out={}",
                self.window.as_secs_f64(),
                received.events.iter().filter(|(e, _)| e.action() == "exec").count(),
                tick_events,
                received.events.len() as f64 / self.window.as_secs_f64(),
                stats.get("ebpf_events").copied().unwrap_or(0),
                stats.get("ebpf_lost").copied().unwrap_or(0),
                stats.get("frames_out").copied().unwrap_or(0)
            ),
        ];
        Ok(Table { caption: self.label.to_owned(), runs: 1, metrics, notes: ebpf::with_docker_note(notes) })
    }
}
