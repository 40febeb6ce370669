//! Fork storm: what a container that forks as fast as it can, and one that holds tens of
//! thousands of processes, cost the agent, and what they take from everyone else.
//!
//! With the agent running, three containers start together:
//!
//! - a **holder** starts `live` processes (`sleep 3600 &`) and keeps them;
//! - a **stormer** forks `forks` short-lived processes one after the other (`( : )`, a subshell
//!   that exits at once: a fork and an exit record each, no exec);
//! - a **bystander** runs `execs` execs of `/bin/echo by-<n>`, 50 ms apart.
//!
//! Measured: the storm's rate; the agent's process table at its largest (`procs_tracked_peak`,
//! from the agent's final counters) against the live processes it had to hold; the agent's
//! CPU per fork; its peak and final memory; and for the bystander, every exec delivered with its
//! container and each one's delay (kernel timestamp → datagram at the sink), whose maximum
//! shows whether anything (the storm's records, the process table's /proc sweep) held the
//! pipeline. The agent runs with its per-container budget off, as in the other storms: every
//! record reaches it. Runs once (it is not a ratio).
use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, Agent, Containers, Load, Mode, docker_output},
    ebpf_sink::FrameSink,
    report::{Goal, Metric, Table, group_thousands},
    system::{self, ScratchDir},
};

pub struct ForkStorm {
    pub id: &'static str,
    pub label: &'static str,
    pub forks: u64,
    pub live: u64,
    pub execs: u64,
    pub mode: Mode,
}

/// Processes in the cgroup of container `id` (its main process's cgroup v2 directory).
fn processes_in(id: &str) -> Result<u64> {
    let pid = docker_output(Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", id]))?;
    let pid = pid.trim();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("the container's cgroup")?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::")).context("no cgroup v2 line")?;
    let root = crate::vm::guest::cgroup2_mount().context("cgroup v2 is not mounted")?;
    let file = format!("{}{path}/cgroup.procs", root.display());
    let procs = std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?;
    Ok(procs.lines().count() as u64)
}

impl Scenario for ForkStorm {
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
        let dir = ScratchDir::new("forks")?;
        let queue = dir.join("queue");
        let sink = FrameSink::bind(&queue)?;
        let mut agent = Agent::start(ctx, &dir, &queue, None)?;
        agent.wait_ready()?;
        let pid = agent.pid();
        let before = Load::sample(Some(pid))?;

        let (holder, stormer, bystander) =
            (Containers::new("forks-hold")?, Containers::new("forks-storm")?, Containers::new("forks-by")?);
        let hold = format!("i=0; while [ $i -lt {} ]; do sleep 3600 & i=$((i+1)); done; wait", self.live);
        let storm = format!("i=0; while [ $i -lt {} ]; do ( : ); i=$((i+1)); done", self.forks);
        let by = format!(
            "sleep 1; i=0; while [ $i -lt {} ]; do /bin/echo by-$i; sleep 0.05; i=$((i+1)); done; sleep 3600",
            self.execs
        );
        let t = Instant::now();
        let h = holder.start(1, 1, &["sh", "-c", &hold])?.remove(0);
        let s = stormer.start(1, 1, &["sh", "-c", &storm])?.remove(0);
        let b = bystander.start(1, 1, &["sh", "-c", &by])?.remove(0);
        // The storm ends when its container does.
        docker_output(Command::new("docker").args(["wait", &s.id]))?;
        let storm_secs = t.elapsed().as_secs_f64();
        // The holder's processes all started, the bystander's execs all made.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut held = 0;
        while Instant::now() < deadline {
            held = processes_in(&h.id)?;
            if held > self.live {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if held <= self.live {
            bail!("the holder has {held} processes after 5 minutes, {} wanted", self.live + 1);
        }
        // The bystander's last echo printed (it then sleeps: its process count cannot tell).
        let last = format!("by-{}", self.execs.saturating_sub(1));
        let by_deadline = Instant::now() + Duration::from_secs(60 + self.execs / 5);
        loop {
            let tail = docker_output(Command::new("docker").args(["logs", "--tail", "1", &b.id]))?;
            if tail.lines().any(|l| l.trim() == last) {
                break;
            }
            if Instant::now() >= by_deadline {
                bail!(
                    "the bystander has not printed {last} after {} s: `docker logs {}` says what it did",
                    60 + self.execs / 5,
                    b.id
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
        sink.wait_idle(Duration::from_millis(500), Duration::from_secs(60));
        let after = Load::sample(Some(pid))?;
        let memory = system::memory(pid)?;
        let stats = agent.stop()?;
        let frames = sink.finish()?;
        let received = ebpf::parse_frames(&frames)?;
        for c in [&holder, &stormer, &bystander] {
            c.remove_all()?;
        }

        // The bystander: each exec once, with its container, and its delay.
        let mut seen = vec![false; self.execs as usize];
        let mut delays = Vec::new();
        for (ev, at) in &received.events {
            if ev.action() != "exec" || ev.container_id() != b.id {
                continue;
            }
            let Some(n) = ev.process.args.iter().find_map(|a| a.strip_prefix("by-")?.parse::<usize>().ok()) else {
                continue;
            };
            if let Some(s) = seen.get_mut(n) {
                *s = true;
            }
            if let Some(t) = ev.time_ns() {
                delays.push((at - t) as f64 / 1e6);
            }
        }
        let delivered = seen.iter().filter(|s| **s).count();
        delays.sort_by(f64::total_cmp);
        let pct = |p: f64| delays.get(((delays.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0);
        let stat = |k: &str| stats.get(k).copied().unwrap_or(0);
        let peak = stat("procs_tracked_peak");
        let agent_cpu = after.agent_since(&before).as_secs_f64();
        println!(
            "  {} forks in {storm_secs:.1} s; holder {held} processes; process table peak {peak}; bystander {delivered}/{} \
             execs, delay p99 {:.1} ms max {:.1} ms; agent CPU {agent_cpu:.1} s, peak RSS {} MiB",
            self.forks,
            self.execs,
            pct(0.99),
            pct(1.0),
            memory.hwm >> 20
        );

        let full = self.mode == Mode::Full;
        let goal = |g| full.then_some(g);
        let one = Metric::single;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        // The table holds the traced containers' live processes; more would be entries whose
        // exit record was lost, which the sweep removes (a slice a second).
        let bound = (self.live + 2 + 4) as f64;
        let metrics = vec![
            one("storm: forks per second", "forks/s", 0, None, self.forks as f64 / storm_secs),
            one("process table at its largest", "processes", 0, goal(Goal::AtMost(bound)), peak as f64),
            one(
                "agent CPU per process started (the storm's fork + exit, the holder's fork + exec)",
                "µs",
                1,
                None,
                agent_cpu * 1e6 / (self.forks + self.live) as f64,
            ),
            one("agent peak RSS (VmHWM)", "MiB", 1, None, mib(memory.hwm)),
            one("agent RSS at the end, holding the processes", "MiB", 1, None, mib(memory.rss)),
            one(
                "bystander execs delivered",
                "% of execs",
                1,
                goal(Goal::AtLeast(100.0)),
                100.0 * delivered as f64 / self.execs as f64,
            ),
            one("bystander exec delay p99", "ms", 1, None, pct(0.99)),
            one("bystander exec delay max", "ms", 1, None, pct(1.0)),
            one("records lost in the kernel", "records", 0, None, stat("ebpf_lost") as f64),
        ];
        let notes = vec![
            format!(
                "holder: `sh -c 'i=0; while [ $i -lt {live} ]; do sleep 3600 & i=$((i+1)); done; wait'`; stormer: {} \
                 subshells `( : )` one after the other; bystander: {} `/bin/echo by-<n>` 50 ms apart (over a minute \
                 in a full run: the agent's first sweep of the process table, at 60 s, runs while it does); all \
                 `--network none`, started together once the agent was ready; the agent's budget off",
                group_thousands(&self.forks.to_string()),
                group_thousands(&self.execs.to_string()),
                live = self.live,
            ),
            format!(
                "the process table's bound: the traced containers' live processes ({} here: the holder's {} and its \
                 shell, the bystander's shell and sleep, the stormer's shell and a subshell), plus entries whose exit \
                 record was lost, removed by the sweep (every 60 s, 512 a second); its peak is the agent's \
                 `procs_tracked_peak`. Agent counters at exit: ebpf_records={} ebpf_lost={} procs_swept={} \
                 procs_tracked={}",
                bound,
                self.live,
                stat("ebpf_records"),
                stat("ebpf_lost"),
                stat("procs_swept"),
                stat("procs_tracked")
            ),
        ];
        Ok(Table { caption: self.label.to_owned(), runs: 1, metrics, notes: ebpf::with_docker_note(notes) })
    }
}
