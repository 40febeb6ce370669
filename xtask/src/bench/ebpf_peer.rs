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
//!
//! A fourth way is the floor under the agent (`docker-listener/examples/exec_floor.rs`): the
//! agent's own eBPF programs, ring buffer and sender with none of its work between them (it
//! drains the ring on the agent's 3 ms timer and sends one datagram of an exec event's size per
//! exec record). What any consumer of these records pays per exec to deliver each one to
//! Wazuh's queue within the agent's latency budget on this machine; the agent's CPU above it is
//! its own work (decoding, the process table, the container, the JSON, the stages).
use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, Load, Mode, StormContainer, Worker, WorkerRun},
    ebpf_sink::FrameSink,
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

/// Where `cargo xtask bench` builds the floor (`docker-listener/examples/exec_floor.rs`), run
/// unless `DL_BENCH_FLOOR` names another build of it.
pub const FLOOR: &str = "target/x86_64-unknown-linux-musl/release/examples/exec_floor";

/// The floor this run runs: `DL_BENCH_FLOOR`'s, else [`FLOOR`].
fn floor_path() -> Result<std::path::PathBuf> {
    Ok(match std::env::var_os(super::FLOOR) {
        Some(given) => std::path::PathBuf::from(given),
        None => std::env::current_dir()?.join(FLOOR),
    })
}

/// One round of bpftrace or the floor: the storm's wall time, its CPU, the storm's lines or
/// datagrams.
struct PeerRound {
    wall: Duration,
    cpu: Duration,
    /// bpftrace's context switches over the same span.
    switches: system::Switches,
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
        let floor = floor_path()?;
        if !floor.is_file() {
            bail!(
                "no floor at {}: `cargo xtask bench` builds it; with {} set, build it first with `cargo build \
                 --release -p docker-listener --target x86_64-unknown-linux-musl --example exec_floor` (after \
                 `cargo xtask setup`, which installs musl-gcc and the target), or name a build of it in {} (for a \
                 glibc daemon, the glibc floor: `cargo build --release -p docker-listener --example exec_floor`, \
                 target/release/examples/exec_floor)",
                floor.display(),
                super::DAEMON,
                super::FLOOR
            );
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
        let base = self.floor_round(&floor, &container, next()).context("warm-up round (the floor)")?;
        println!(
            "  warm-up rounds: {:.0} ms with the agent, {:.0} ms with bpftrace, {:.0} ms with the floor",
            ms(warm.wall),
            ms(peer.wall),
            ms(base.wall)
        );
        let mut rounds: Vec<PeerRounds> = Vec::new();
        for i in 0..self.rounds {
            let (mut none, mut with, mut peer, mut base) = (None, None, None, None);
            let order: [u8; 4] = if i % 2 == 0 { [0, 1, 2, 3] } else { [3, 2, 1, 0] };
            for which in order {
                match which {
                    0 => none = Some(storm.round(None, Some(&container), next(), None)?),
                    1 => with = Some(storm.round(Some(&agent), Some(&container), next(), None)?),
                    2 => peer = Some(self.bpftrace_round(&container, next())?),
                    _ => base = Some(self.floor_round(&floor, &container, next())?),
                }
            }
            let (Some(none), Some(with), Some(peer), Some(floor)) = (none, with, peer, base) else {
                bail!("a round did not run")
            };
            let a = with.agent.as_ref().context("the agent's round has no agent results")?;
            println!(
                "  round {}: {:.0} ms without; agent ×{:.3}, {:.1} µs CPU per exec, {} delivered; bpftrace ×{:.3}, \
                 {:.1} µs CPU per exec, {} lines; floor {:.1} µs CPU per exec, {} datagrams; other load \
                 {:.2}/{:.2}/{:.2}/{:.2} CPUs",
                i + 1,
                ms(none.wall),
                with.wall.as_secs_f64() / none.wall.as_secs_f64(),
                per_op_us(a.cpu, self.count),
                a.delivered,
                peer.wall.as_secs_f64() / none.wall.as_secs_f64(),
                per_op_us(peer.cpu, self.count),
                peer.delivered,
                per_op_us(floor.cpu, self.count),
                floor.delivered,
                none.other_load,
                with.other_load,
                peer.other_load,
                floor.other_load
            );
            rounds.push(PeerRounds { none, with, peer, floor });
        }
        drop(container);
        Ok(self.table(&rounds))
    }
}

/// One round of each: no tracer, the agent, bpftrace, the floor.
struct PeerRounds {
    none: Round,
    with: Round,
    peer: PeerRound,
    floor: PeerRound,
}

impl ExecPeer {
    fn table(&self, rounds: &[PeerRounds]) -> Table {
        let full = self.mode == Mode::Full;
        let goal = |g| full.then_some(g);
        let mut agent_cpu = Metric::new("agent CPU per exec", "µs", 1, goal(Goal::AtMost(8.0)));
        let mut peer_cpu = Metric::new("bpftrace CPU per exec", "µs", 1, None);
        let mut ratio = Metric::new("agent CPU / bpftrace CPU, per round", "×", 2, goal(Goal::AtMost(1.0)));
        let mut agent_switches = system::switch_rows("agent ", "exec", "", 2);
        let mut peer_switches = system::switch_rows("bpftrace ", "exec", "", 2);
        let mut agent_wall = Metric::new("storm wall time with the agent / without", "×", 3, None);
        let mut peer_wall = Metric::new("storm wall time with bpftrace / without", "×", 3, None);
        let mut agent_delivered = Metric::new("execs delivered by the agent", "% of storm", 2, None);
        let mut peer_delivered = Metric::new("execs printed by bpftrace", "% of storm", 2, None);
        let mut floor_cpu = Metric::new("floor CPU per exec", "µs", 1, None);
        let mut above = Metric::new("agent CPU above the floor per exec, per round", "µs", 1, None);
        let mut floor_switches = system::switch_rows("floor ", "exec", "", 2);
        let mut floor_delivered = Metric::new("execs sent by the floor", "% of storm", 2, None);
        let count = self.count as f64;
        for PeerRounds { none, with, peer, floor } in rounds {
            let Some(a) = with.agent.as_ref() else { continue };
            let (ac, pc, fc) =
                (per_op_us(a.cpu, self.count), per_op_us(peer.cpu, self.count), per_op_us(floor.cpu, self.count));
            agent_cpu.samples.push(ac);
            peer_cpu.samples.push(pc);
            ratio.samples.push(ac / pc);
            floor_cpu.samples.push(fc);
            above.samples.push(ac - fc);
            system::push_switches(&mut floor_switches, floor.switches, count);
            floor_delivered.samples.push(100.0 * floor.delivered as f64 / count);
            system::push_switches(&mut agent_switches, a.switches, count);
            system::push_switches(&mut peer_switches, peer.switches, count);
            agent_wall.samples.push(with.wall.as_secs_f64() / none.wall.as_secs_f64());
            peer_wall.samples.push(peer.wall.as_secs_f64() / none.wall.as_secs_f64());
            agent_delivered.samples.push(100.0 * a.delivered as f64 / count);
            peer_delivered.samples.push(100.0 * peer.delivered as f64 / count);
        }
        let notes = vec![
            format!(
                "{} execs per round (fork + exec of the container's `/bin/true <marker>`, one at a time), {} rounds, \
                 each without a tracer, with the agent (this build, default configuration), with `bpftrace -e '{}'` \
                 writing to a file and with the floor; the order reversed every other round, after one warm-up round \
                 of each tracer",
                self.count, self.rounds, PROGRAM
            ),
            format!(
                "the floor (`docker-listener/examples/exec_floor.rs`, `{}`): the agent's own eBPF programs (no \
                 budget, as the agent here), ring buffer and sender, traced to the storm's container, with none of \
                 the agent's work between them: on the agent's 3 ms timer (back to sleeping on the ring after two \
                 empty drains, as the agent) it reads every record and sends one datagram of {} bytes (an exec \
                 event's size) per exec record with the agent's `sendmmsg`. What any consumer of these records pays \
                 per exec to deliver each to Wazuh's queue within the agent's latency budget, here; the agent's CPU \
                 above it is its own work (decoding, process table, container, JSON, stages)",
                floor_path().map_or_else(|_| FLOOR.to_owned(), |p| p.display().to_string()),
                EVENT_BYTES
            ),
            "bpftrace does less per exec than the agent: no container filter, identity or labels, no parent or \
             executable's path, no JSON and no datagram; it prints the argv as the caller passed it"
                .into(),
            "CPU: the run time of the tracer process's threads (/proc/<pid>/task/*/schedstat, to the nanosecond) \
             from just before the storm until its output has been idle for 300 ms, per exec (the programs' time \
             in the kernel is the exec's, not the tracer's, for both); context switches over the same span, as \
             sleeps (each ended by a wake-up, priced at the machine's cost of one as \"sleeping and waking\") and \
             preemptions"
                .into(),
        ];
        // The sleeps at the machine's price of a wake-up.
        let waking = [
            system::waking(&agent_switches[0], 1),
            system::waking(&peer_switches[0], 1),
            system::waking(&floor_switches[0], 1),
        ];
        let mut metrics = vec![agent_cpu, peer_cpu, ratio, floor_cpu, above];
        metrics.extend(agent_switches.into_iter().chain(peer_switches).chain(floor_switches));
        metrics.extend(waking.into_iter().flatten());
        metrics.extend([agent_wall, peer_wall, agent_delivered, peer_delivered, floor_delivered]);
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
        let text = std::fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
        let delivered = text.lines().filter(|l| l.contains(&marker)).count() as u64;
        self.peer_round(&worker, &before, &after, delivered)
    }

    /// One storm with the floor draining the agent's programs' records (see the module's doc).
    fn floor_round(&self, floor: &Path, container: &StormContainer, n: usize) -> Result<PeerRound> {
        let marker = format!("floor-{}-{n}", std::process::id());
        let mut worker = Worker::start(&ebpf::exec_args(Some(container.pid), self.count, &marker))?;
        let dir = ScratchDir::new("floor")?;
        let queue = dir.join("queue");
        let sink = FrameSink::bind(&queue)?;
        let mut proc = Floor::start(floor, &queue, container.pid, &dir.join("stderr"))?;
        let before = Load::sample(Some(proc.pid()))?;
        worker.go()?;
        let worker = worker.wait()?;
        let delivered = sink.wait_idle(Duration::from_millis(300), Duration::from_secs(60));
        let after = Load::sample(Some(proc.pid()))?;
        proc.stop()?;
        sink.finish()?;
        let round = self.peer_round(&worker, &before, &after, delivered)?;
        // Exactly one datagram per exec of the storm: the floor sees nothing else (the container
        // runs only `sleep` and the storm), and a floor that lost records would flatter itself.
        if delivered != self.count {
            bail!("the floor sent {delivered} datagrams for the storm's {} execs", self.count);
        }
        Ok(round)
    }

    /// A round of a tracer other than the agent, from its process's load before and after the
    /// storm: fails if any of the storm's execs failed.
    fn peer_round(&self, worker: &WorkerRun, before: &Load, after: &Load, delivered: u64) -> Result<PeerRound> {
        let failed = worker.get("failed")?;
        if failed > 0 {
            bail!("{failed} of the storm's {} execs failed", self.count);
        }
        Ok(PeerRound {
            wall: worker.elapsed()?,
            cpu: after.agent_since(before),
            switches: after.agent_switches_since(before),
            delivered,
            other_load: after.others_since(before, worker.cpu),
        })
    }
}

/// The exec event's size the floor sends per exec (`exec_floor.rs`'s `EVENT_BYTES`).
const EVENT_BYTES: usize = 1335;

/// A child process, killed and reaped if dropped while it runs (a round that failed midway).
struct Running(Child);

impl Running {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A running floor; killed if dropped before `stop`.
struct Floor(Running);

impl Floor {
    /// Starts it on the cgroup of `pid` and waits until its programs are attached and the
    /// cgroup traced (`ready`).
    fn start(binary: &Path, queue: &Path, pid: u32, stderr: &Path) -> Result<Floor> {
        let err = std::fs::File::create(stderr)?;
        let mut child = Command::new(binary)
            .arg(queue)
            .arg(pid.to_string())
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start the floor {}", binary.display()))?;
        let out: ChildStdout = child.stdout.take().context("the floor's stdout")?;
        let floor = Floor(Running(child));
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).context("reading the floor's stdout")?;
        if line.trim() != "ready" {
            let why = std::fs::read_to_string(stderr).unwrap_or_default();
            bail!("the floor did not start: {}", why.trim());
        }
        Ok(floor)
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn stop(&mut self) -> Result<()> {
        system::kill(self.0.pid(), libc::SIGTERM)?;
        self.0.0.wait().context("waiting for the floor")?;
        Ok(())
    }
}

/// A running bpftrace; killed if dropped before `stop`.
struct Bpftrace(Running);

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
        Ok(Bpftrace(Running(child)))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
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
            if let Some(status) = self.0.0.try_wait()? {
                bail!("bpftrace exited ({status}) before attaching");
            }
            if Instant::now() > deadline {
                bail!("bpftrace did not attach within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> Result<()> {
        system::kill(self.0.pid(), libc::SIGINT)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.0.0.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.0.0.kill();
                bail!("bpftrace did not stop within 20 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
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
