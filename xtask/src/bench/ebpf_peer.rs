//! A peer on the same storm: the agent's CPU per exec beside bpftrace's (issue 15, item 2).
//!
//! The exec storm in a container (`ebpf_storm`: fork + exec of `/bin/true <marker>`, one at a
//! time, by a worker inside the container) runs in each round three ways, in alternating order:
//! without any tracer, with the agent (the current build, every check of the exec storm), and
//! with `bpftrace` printing one line per exec to a file, execsnoop.bt's way:
//!
//! ```text
//! tracepoint:syscalls:sys_enter_execve { printf("%d %s ", pid, comm); join(args->argv); }
//! ```
//!
//! bpftrace does less than the agent (no container filter or identity, no parent, no
//! executable's path, no JSON, no datagram, and the argument vector as the caller passed it
//! rather than as the kernel used it), so it is the lower bound of a tracer that says
//! something per exec. Each tracer's CPU is the run time of its process's threads (schedstat, to
//! the nanosecond) from just before the storm until its output has been idle for 300 ms, per
//! exec, with its context switches over the same span; bpftrace's lines carrying the round's
//! marker are counted like the agent's events.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, Load, Mode, StormContainer, Worker},
    ebpf_storm::{Kind, Round, Storm, ms, per_op_us},
    report::{Goal, Metric, Table},
    system::{self, ScratchDir},
};

/// What bpftrace runs: one line per exec with the pid, the caller's name and the argv.
pub const PROGRAM: &str = r#"tracepoint:syscalls:sys_enter_execve { printf("%d %s ", pid, comm); join(args->argv); }"#;

pub struct ExecPeer {
    pub id: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub rounds: usize,
    pub mode: Mode,
}

/// One round of bpftrace: the storm's wall time, bpftrace's CPU, the lines of the storm.
struct PeerRound {
    wall: Duration,
    cpu: Duration,
    /// bpftrace's context switches over the same span.
    switches: u64,
    delivered: u64,
    other_load: f64,
}

impl Scenario for ExecPeer {
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
        if !crate::setup::have("bpftrace") {
            bail!("bpftrace is not installed: `cargo xtask setup` installs it (apt-get install bpftrace)");
        }
        let _qlen = ebpf::raise_qlen();
        let _stats = system::BpfStats::enable()?;
        let container = StormContainer::start(self.id)?;
        let storm = Storm {
            id: self.id,
            label: self.label,
            kind: Kind::ExecInContainer,
            count: self.count,
            pairs: self.rounds,
            max_ratio: 1.03,
            mode: self.mode,
        };
        let agent = Context { daemon: ctx.daemon.clone(), settings: ctx.settings.clone(), ..Context::default() };
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        let warm = storm.round(Some(&agent), Some(&container), next(), None).context("warm-up round (agent)")?;
        let peer = self.bpftrace_round(&container, next()).context("warm-up round (bpftrace)")?;
        println!("  warm-up rounds: {:.0} ms with the agent, {:.0} ms with bpftrace", ms(warm.wall), ms(peer.wall));
        let mut rounds: Vec<(Round, Round, PeerRound)> = Vec::new();
        for i in 0..self.rounds {
            let (mut none, mut with, mut peer) = (None, None, None);
            let order: [u8; 3] = if i % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for which in order {
                match which {
                    0 => none = Some(storm.round(None, Some(&container), next(), None)?),
                    1 => with = Some(storm.round(Some(&agent), Some(&container), next(), None)?),
                    _ => peer = Some(self.bpftrace_round(&container, next())?),
                }
            }
            let (Some(none), Some(with), Some(peer)) = (none, with, peer) else { bail!("a round did not run") };
            let a = with.agent.as_ref().context("the agent's round has no agent results")?;
            println!(
                "  round {}: {:.0} ms without; agent ×{:.3}, {:.1} µs CPU per exec, {} delivered; bpftrace ×{:.3}, \
                 {:.1} µs CPU per exec, {} lines; other load {:.2}/{:.2}/{:.2} CPUs",
                i + 1,
                ms(none.wall),
                with.wall.as_secs_f64() / none.wall.as_secs_f64(),
                per_op_us(a.cpu, self.count),
                a.delivered,
                peer.wall.as_secs_f64() / none.wall.as_secs_f64(),
                per_op_us(peer.cpu, self.count),
                peer.delivered,
                none.other_load,
                with.other_load,
                peer.other_load
            );
            rounds.push((none, with, peer));
        }
        drop(container);
        Ok(self.table(&rounds))
    }
}

impl ExecPeer {
    fn table(&self, rounds: &[(Round, Round, PeerRound)]) -> Table {
        let full = self.mode == Mode::Full;
        let goal = |g| full.then_some(g);
        let mut agent_cpu = Metric::new("agent CPU per exec", "µs", 1, goal(Goal::AtMost(8.0)));
        let mut peer_cpu = Metric::new("bpftrace CPU per exec", "µs", 1, None);
        let mut ratio = Metric::new("agent CPU / bpftrace CPU, per round", "×", 2, goal(Goal::AtMost(1.0)));
        let mut agent_switches = Metric::new("agent context switches per exec", "switches", 2, None);
        let mut peer_switches = Metric::new("bpftrace context switches per exec", "switches", 2, None);
        let mut agent_wall = Metric::new("storm wall time with the agent / without", "×", 3, None);
        let mut peer_wall = Metric::new("storm wall time with bpftrace / without", "×", 3, None);
        let mut agent_delivered = Metric::new("execs delivered by the agent", "% of storm", 2, None);
        let mut peer_delivered = Metric::new("execs printed by bpftrace", "% of storm", 2, None);
        let count = self.count as f64;
        for (none, with, peer) in rounds {
            let Some(a) = with.agent.as_ref() else { continue };
            let (ac, pc) = (per_op_us(a.cpu, self.count), per_op_us(peer.cpu, self.count));
            agent_cpu.samples.push(ac);
            peer_cpu.samples.push(pc);
            ratio.samples.push(ac / pc);
            agent_switches.samples.push(a.switches as f64 / count);
            peer_switches.samples.push(peer.switches as f64 / count);
            agent_wall.samples.push(with.wall.as_secs_f64() / none.wall.as_secs_f64());
            peer_wall.samples.push(peer.wall.as_secs_f64() / none.wall.as_secs_f64());
            agent_delivered.samples.push(100.0 * a.delivered as f64 / count);
            peer_delivered.samples.push(100.0 * peer.delivered as f64 / count);
        }
        let notes = vec![
            format!(
                "{} execs per round (fork + exec of the container's `/bin/true <marker>`, one at a time), {} rounds, \
                 each without a tracer, with the agent (this build, default configuration) and with `bpftrace -e '{}'` \
                 writing to a file; the order reversed every other round, after one warm-up round of each tracer",
                self.count, self.rounds, PROGRAM
            ),
            "bpftrace does less per exec than the agent: no container filter, identity or labels, no parent or \
             executable's path, no JSON and no datagram; it prints the argv as the caller passed it"
                .into(),
            "CPU: the run time of the tracer process's threads (/proc/<pid>/task/*/schedstat, to the nanosecond) \
             from just before the storm until its output has been idle for 300 ms, per exec (the programs' time \
             in the kernel is the exec's, not the tracer's, for both); context switches over the same span"
                .into(),
        ];
        // The switches at the machine's price of a wake-up.
        let waking = [system::waking(&agent_switches, 1), system::waking(&peer_switches, 1)];
        let mut metrics = vec![agent_cpu, peer_cpu, ratio, agent_switches, peer_switches];
        metrics.extend(waking.into_iter().flatten());
        metrics.extend([agent_wall, peer_wall, agent_delivered, peer_delivered]);
        Table { caption: self.label.to_owned(), runs: rounds.len(), metrics, notes: ebpf::with_docker_note(notes) }
    }

    /// One storm with bpftrace tracing it.
    fn bpftrace_round(&self, container: &StormContainer, n: usize) -> Result<PeerRound> {
        let marker = format!("peer-{}-{n}", std::process::id());
        let mut worker = Worker::start(&ebpf::exec_args(Some(container.pid), self.count, &marker))?;
        let dir = ScratchDir::new("bpftrace")?;
        let out = dir.join("out");
        let mut bpftrace = Bpftrace::start(&out, &dir.join("stderr"))?;
        bpftrace.wait_attached(&out)?;
        let before = Load::sample(Some(bpftrace.pid()))?;
        worker.go()?;
        let worker = worker.wait()?;
        wait_idle(&out, Duration::from_millis(300), Duration::from_secs(60))?;
        let after = Load::sample(Some(bpftrace.pid()))?;
        bpftrace.stop()?;
        let failed = worker.get("failed")?;
        if failed > 0 {
            bail!("{failed} of the storm's {} execs failed", self.count);
        }
        let text = std::fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
        let delivered = text.lines().filter(|l| l.contains(&marker)).count() as u64;
        Ok(PeerRound {
            wall: worker.elapsed()?,
            cpu: after.agent_since(&before),
            switches: after.agent_switches_since(&before),
            delivered,
            other_load: after.others_since(&before, worker.cpu),
        })
    }
}

/// A running bpftrace; killed if dropped before `stop`.
struct Bpftrace(Child);

impl Bpftrace {
    fn start(out: &Path, stderr: &Path) -> Result<Bpftrace> {
        let err = std::fs::File::create(stderr)?;
        let child = Command::new("bpftrace")
            .arg("-o")
            .arg(out)
            .args(["-e", PROGRAM])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("cannot start bpftrace")?;
        Ok(Bpftrace(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Until bpftrace says its probe is attached (its first output line).
    fn wait_attached(&mut self, out: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::fs::read_to_string(out).is_ok_and(|t| t.contains("Attaching")) {
                // The line is written just before the attach itself.
                std::thread::sleep(Duration::from_millis(500));
                return Ok(());
            }
            if let Some(status) = self.0.try_wait()? {
                bail!("bpftrace exited ({status}) before attaching");
            }
            if Instant::now() > deadline {
                bail!("bpftrace did not attach within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> Result<()> {
        system::kill(self.0.id(), libc::SIGINT)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.0.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.0.kill();
                bail!("bpftrace did not stop within 20 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Until `path` has not grown for `quiet` (at most `limit`).
fn wait_idle(path: &Path, quiet: Duration, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last = (0, Instant::now());
    while start.elapsed() < limit {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("bpftrace's output kept growing for {} s", limit.as_secs())
}
