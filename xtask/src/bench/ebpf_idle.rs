//! Idle: the agent on a host whose containers do nothing (issue 15's idle and memory targets).
//!
//! `containers` busybox containers (`--network none`, `sleep 3600`) are started once. Then, in
//! each round, every daemon under test (the current one; with `DL_BENCH_BASELINE` also the
//! baseline, alternating which goes first) starts among them and is measured:
//!
//! - **CPU**: the agent's run time over `window`, all its threads, those that ended in the window
//!   too (the agent is moved into a cgroup v2 of the benchmark's own at its start: `cpu.stat`'s
//!   `usage_usec`), once `settle` has passed after its "container inventory loaded" line, as a
//!   share of one CPU (target: under 0.1%). The window is a minute long, so that it holds one
//!   round of each of the agent's once-a-minute tasks (the sensitive files' refresh in every
//!   container, the process table's sweep), as a day of idling does;
//! - **wake-ups**: the agent's context switches over the window (voluntary and involuntary,
//!   each thread's own from /proc/PID/task/*/status) per second (target: under 30): each is a
//!   time one of its threads was woken, by a timer or an event (a thread that ended within the
//!   window takes its switches with it: the refresh's blocking threads, a few a minute);
//! - **memory**: VmHWM, the peak resident set from the agent's start to the end of the window
//!   (start-up included: BTF parsing, the programs' load, the inventory; target: at most 32 MiB,
//!   the DaemonSet's limit is set against it), and VmRSS at the end.
//!
//! The containers are removed at the end, also on error.
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, Agent, Containers, Load, Mode},
    ebpf_sink::FrameSink,
    report::{Goal, Metric, Table},
    system::{self, ScratchDir},
    variants::{Variant, Variants},
};

pub struct Idle {
    pub id: &'static str,
    pub label: &'static str,
    pub containers: usize,
    pub parallel: usize,
    /// After the inventory line, before the window: the start-up's last tasks (inspects).
    pub settle: Duration,
    pub window: Duration,
    pub rounds: usize,
    pub mode: Mode,
}

/// What one daemon did over one window.
#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_percent: f64,
    wakeups_per_s: f64,
    hwm_mib: f64,
    rss_mib: f64,
    others: f64,
}

impl Idle {
    fn measure(&self, ctx: &Context) -> Result<Sample> {
        let dir = ScratchDir::new("idle")?;
        let queue = dir.join("queue");
        let sink = FrameSink::bind(&queue)?;
        let cgroup = system::CpuCgroup::new("idle")?;
        let mut agent = Agent::start(ctx, &dir, &queue, None)?;
        let pid = agent.pid();
        cgroup.adopt(pid)?;
        agent.wait_ready()?;
        std::thread::sleep(self.settle);
        let (l0, t0, th0, c0) = (Load::sample(Some(pid))?, Instant::now(), system::threads(pid)?, cgroup.cpu()?);
        std::thread::sleep(self.window);
        let (c1, th1, l1) = (cgroup.cpu()?, system::threads(pid)?, Load::sample(Some(pid))?);
        let secs = t0.elapsed().as_secs_f64();
        let (_, switches) = system::threads_delta(&th0, &th1);
        let cpu = c1.saturating_sub(c0).as_nanos();
        let memory = system::memory(pid)?;
        agent.stop()?;
        sink.finish()?;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        Ok(Sample {
            cpu_percent: 100.0 * cpu as f64 / 1e9 / secs,
            wakeups_per_s: switches.total() as f64 / secs,
            hwm_mib: mib(memory.hwm),
            rss_mib: mib(memory.rss),
            others: l1.others_since(&l0, Duration::ZERO),
        })
    }
}

impl Scenario for Idle {
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
        let containers = Containers::new("idle")?;
        let t = Instant::now();
        let started = containers.start(self.containers, self.parallel, &["sleep", "3600"])?;
        println!("  started {} idle containers in {:.1} s", started.len(), t.elapsed().as_secs_f64());
        let variants = Variants::new(ctx);
        let mut rounds: Vec<Vec<Option<Sample>>> = Vec::new();
        for round in 0..self.rounds {
            let r = variants.round(round, |v: &Variant| match &v.daemon {
                None => Ok(None),
                Some(c) => {
                    let s = self.measure(c)?;
                    println!(
                        "  round {} {}: {:.3}% of a CPU, {:.1} wake-ups/s, peak RSS {:.1} MiB, RSS {:.1} MiB \
                         (others {:.2} CPUs)",
                        round + 1,
                        v.label,
                        s.cpu_percent,
                        s.wakeups_per_s,
                        s.hwm_mib,
                        s.rss_mib,
                        s.others
                    );
                    Ok(Some(s))
                }
            })?;
            rounds.push(r);
        }
        containers.remove_all()?;

        let full = self.mode == Mode::Full;
        let compared = variants.compared();
        let mut metrics = Vec::new();
        let last = variants.daemons().last().map(|(j, _)| j);
        for (j, v) in variants.daemons() {
            let who = if compared { v.label } else { "agent" };
            // The targets are the current build's; a baseline's rows are for comparison.
            let goal = |g| (full && Some(j) == last).then_some(g);
            let series = |f: fn(&Sample) -> f64| rounds.iter().filter_map(|r| r[j].as_ref().map(f)).collect();
            let mut cpu = Metric::new(&format!("CPU, idle, {who}"), "% of a CPU", 3, goal(Goal::AtMost(0.1)));
            cpu.samples = series(|s| s.cpu_percent);
            let mut wake = Metric::new(&format!("wake-ups, idle, {who}"), "per s", 1, goal(Goal::AtMost(30.0)));
            wake.samples = series(|s| s.wakeups_per_s);
            let mut hwm =
                Metric::new(&format!("peak RSS from start (VmHWM), {who}"), "MiB", 1, goal(Goal::AtMost(32.0)));
            hwm.samples = series(|s| s.hwm_mib);
            let mut rss = Metric::new(&format!("RSS at the end (VmRSS), {who}"), "MiB", 1, None);
            rss.samples = series(|s| s.rss_mib);
            metrics.extend([cpu, wake, hwm, rss]);
        }
        let others: Vec<String> = rounds.iter().flatten().flatten().map(|s| format!("{:.2}", s.others)).collect();
        let mut notes = vec![format!(
            "{} containers `docker run -d --network none {} sleep 3600`; each daemon started among them, \
             measured over {:.0} s beginning {:.0} s after its \"container inventory loaded\" line; {} round{} ({}); \
             CPU is the agent's own cgroup's (`cpu.stat` usage_usec: every thread, those that ended too); \
             wake-ups are the agent's context switches (voluntary and involuntary, its threads living at the \
             window's end); CPU other \
             processes used meanwhile, per window: {}",
            self.containers,
            ebpf::IMAGE,
            self.window.as_secs_f64(),
            self.settle.as_secs_f64(),
            self.rounds,
            if self.rounds == 1 { "" } else { "s" },
            variants.describe_order(),
            others.join(", ")
        )];
        if compared {
            notes.push(variants.binaries());
        }
        Ok(Table { caption: self.label.to_owned(), runs: self.rounds, metrics, notes: ebpf::with_docker_note(notes) })
    }
}
