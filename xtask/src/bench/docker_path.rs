//! The Docker path, end to end, with real processes: fake dockerd → docker-listener → fake
//! Wazuh queue.
//!
//! Each run starts the release daemon (`--no-ebpf`) against a [`FakeDockerApi`] that streams a
//! fixed event log — as fast as the daemon reads it (saturation: the daemon's capacity, and how
//! it sheds load) or paced at a fixed rate (sustained: the cost per event at a given load, and
//! whether it keeps up without loss) — and a [`DatagramSink`] standing in for Wazuh's queue
//! socket. Measured per run:
//!
//! - **throughput**: Docker frames received / time from the first to the last datagram;
//! - **CPU per event**: the daemon's utime + stime (/proc/<pid>/stat) sampled right before the
//!   first event is served and right after the last datagram arrived, divided by the frames
//!   delivered;
//! - **memory**: VmRSS and VmHWM (/proc/<pid>/status) at the end, with everything delivered
//!   (steady state; the peak includes the spool at its fullest);
//! - **delivery**: frames delivered vs events generated; a shortfall must be accounted for by
//!   the daemon's own `dropped_buffer_full` counter (its shutdown stats line), else the run
//!   fails. Every frame is checked (Wazuh framing, `timeNano` order) and the first and last
//!   ones compared byte for byte with the events streamed.
//!
//! With `DL_BENCH_PERF=<prefix>` set, one extra, unmeasured run of each variant is recorded
//! with `perf record -p <daemon pid>` into `<prefix>-<variant id>.data` (arguments from
//! `DL_BENCH_PERF_ARGS`, default `-e cpu-clock -F 999 -g`).
use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    daemon::{DaemonProcess, Perf},
    events::{Chunking, EncodedStream},
    fake_api::{FakeDockerApi, Pace},
    floor::{self, Floor},
    report::{Goal, Metric, Table, group_thousands},
    sink::{DOCKER_FRAME_PREFIX, DatagramSink, SinkReport},
    system::{self, DgramQlen, Memory, ScratchDir},
};

pub const SECTION: SectionInfo = SectionInfo {
    id: "docker-path",
    title: "Docker path",
    about: "End to end with real processes: a fake dockerd 20.10 (API 1.41) on a Unix socket \
            streams a fixed, realistic event log (container lifecycles with healthcheck execs, \
            network, volume and image events: mostly 200-700 bytes, about 9% of them 1-1.8 KB \
            with Compose and image labels) to `docker-listener --no-ebpf` (the package's static \
            build, `target/x86_64-unknown-linux-musl/release/docker-listener`, unless named), \
            either as fast as the daemon reads (saturation), paced at a fixed rate in large \
            writes (sustained), or, the realistic load and the headline, paced at 10k events/s \
            with one write per event as dockerd flushes them, where the delivery latency of each \
            event is measured too and a minimal forwarder (the floor: reads and datagrams only) \
            runs in the same runs; a Rust datagram sink bound in place of Wazuh's queue socket drains the \
            frames with `recvmmsg` and checks each (framing, `timeNano` order, the first and \
            last byte for byte). Events/s: frames received / time from the first to the last \
            datagram. CPU: the daemon's utime+stime from /proc/<pid>/stat, sampled right before \
            the first event is served and right after the last datagram arrived, per frame \
            delivered; its context switches over the same span (all threads), as sleeps (voluntary: \
            each a wake-up, priced at the machine's cost of one as \"sleeping and waking\") and \
            preemptions (involuntary: a switch to a runnable thread, about a microsecond here, \
            not priced). RSS: VmRSS/VmHWM from /proc/<pid>/status at the end of the run, \
            everything delivered. Reference, not measured here: Wazuh's Python listener does \
            about 16-18k events/s at 56-64 µs CPU/event and 30 MiB RSS.",
};

/// One variant of the scenario.
pub struct DockerPath {
    /// Short name, for file names (`DL_BENCH_PERF`).
    pub id: &'static str,
    pub label: &'static str,
    pub events: u64,
    pub runs: usize,
    pub chunking: Chunking,
    /// `net.unix.max_dgram_qlen` for the run (the sink's queue length).
    pub qlen: u32,
    /// The daemon's `buffer_bytes`.
    pub buffer_bytes: u64,
    /// Events per second the fake dockerd offers; `None`: as fast as the daemon reads.
    pub offered: Option<u64>,
    /// With `offered`: each chunk written on its own at its due time, as dockerd does (else
    /// about a hundred events per write); the delivery latency is then measured too.
    pub per_chunk_writes: bool,
    /// The target CPU per event delivered (µs), at a sustained load.
    pub cpu_goal: f64,
    /// With `DL_BENCH_BASELINE`: run the baseline daemon too, alternating with the current one
    /// in every run (baseline first in even runs).
    pub compare: bool,
}

/// Delivery latency: from the fake's write of an event's chunk to its datagram at the sink.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// What one run measured.
struct Run {
    delivered: u64,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
    /// The forwarder's context switches (its sleeps and preemptions) during the run.
    switches: system::Switches,
    memory: Memory,
    daemon_stats: BTreeMap<String, u64>,
    /// CPU time of the sink's receiving thread.
    sink_cpu: Option<Duration>,
    /// CPUs' worth of work by other processes (neither the daemon nor this benchmark) during
    /// the run: a busy machine makes the numbers unreliable.
    other_load: f64,
    latency: Option<Latency>,
}

/// Busy time of the machine, the daemon and this process at one moment.
struct Load {
    at: Instant,
    machine: Duration,
    daemon: Duration,
    /// The daemon's context switches, summed over its threads.
    daemon_switches: system::Switches,
    own: Duration,
}

impl Load {
    fn sample(daemon_pid: u32) -> Result<Load> {
        Ok(Load {
            at: Instant::now(),
            machine: system::machine_busy()?,
            daemon: system::cpu_time(daemon_pid)?,
            daemon_switches: system::threads(daemon_pid)?.values().map(|&(_, switches)| switches).sum(),
            own: system::cpu_time(std::process::id())?,
        })
    }

    /// CPUs used by other processes between `self` and `later`.
    fn others_until(&self, later: &Load) -> f64 {
        let secs = |d: Duration| d.as_secs_f64();
        let others = secs(later.machine.saturating_sub(self.machine))
            - secs(later.daemon.saturating_sub(self.daemon))
            - secs(later.own.saturating_sub(self.own));
        others.max(0.0) / later.at.duration_since(self.at).as_secs_f64().max(1e-3)
    }
}

impl Scenario for DockerPath {
    fn id(&self) -> &'static str {
        self.id
    }

    fn name(&self) -> String {
        format!("Docker path, {}", self.label)
    }

    fn section(&self) -> SectionInfo {
        SECTION
    }

    fn run(&self, ctx: &Context) -> Result<Table> {
        let started = Instant::now();
        let mut stream = EncodedStream::generate(self.events, self.chunking);
        println!(
            "  generated {} events ({:.0} MiB, {} HTTP chunks) in {:.1}s",
            stream.events,
            stream.body.len() as f64 / (1 << 20) as f64,
            stream.chunks,
            started.elapsed().as_secs_f64()
        );
        // The fake dockerd shares the body with every run; the rest of `stream` is for checks.
        let body = Arc::new(std::mem::take(&mut stream.body));
        let previous_qlen = system::max_dgram_qlen()?;
        let qlen_guard = match DgramQlen::set(self.qlen) {
            Ok(g) => Some(g),
            Err(e) => {
                println!("  warning: {e:#}: running with net.unix.max_dgram_qlen = {previous_qlen}");
                None
            }
        };
        let qlen = system::max_dgram_qlen()?;

        if let Some(perf_out) = std::env::var_os("DL_BENCH_PERF") {
            let out = format!("{}-{}.data", Path::new(&perf_out).display(), self.id);
            let _ = std::fs::remove_file(&out);
            println!("  profiling one extra run with perf (not counted) into {out}");
            self.run_once(ctx, &stream, &body, Some(Path::new(&out)))?;
        }
        let baseline = ctx.baseline.as_ref().filter(|_| self.compare);
        // `None`: the floor (a minimal forwarder in a thread of ours, `floor.rs`).
        let mut daemons: Vec<(&str, Option<Context>)> = match baseline {
            Some(b) => vec![
                ("baseline", Some(Context { daemon: b.clone(), ..Context::default() })),
                ("current", Some(Context { daemon: ctx.daemon.clone(), ..Context::default() })),
            ],
            None => vec![("agent", Some(Context { daemon: ctx.daemon.clone(), ..Context::default() }))],
        };
        if self.compare {
            daemons.push(("floor", None));
        }
        let mut runs: Vec<Vec<Run>> = daemons.iter().map(|_| Vec::new()).collect();
        for i in 0..self.runs {
            let mut order: Vec<usize> = (0..daemons.len()).collect();
            if i % 2 == 1 {
                order.reverse();
            }
            for j in order {
                let (who, daemon) = &daemons[j];
                let r = match daemon {
                    Some(d) => self.run_once(d, &stream, &body, None),
                    None => self.run_floor(&stream, &body),
                }
                .with_context(|| format!("run {} of {} ({who})", i + 1, self.runs))?;
                println!(
                    "  run {} {who}: {:.0} events/s, {:.3} µs CPU/event, RSS {:.1} MiB (peak {:.1}), {} of {} delivered{}, other load {:.2} CPUs",
                    i + 1,
                    rate(&r),
                    cpu_per_event(&r),
                    mib(r.memory.rss),
                    mib(r.memory.hwm),
                    r.delivered,
                    stream.events,
                    r.latency.map_or(String::new(), |l| format!(
                        ", latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                        ms(l.p50),
                        ms(l.p99),
                        ms(l.max)
                    )),
                    r.other_load
                );
                runs[j].push(r);
            }
        }
        drop(qlen_guard);
        let named = daemons.len() > 1;
        let mut table: Option<Table> = None;
        let mut binaries = Vec::new();
        for (j, ((who, daemon), runs)) in daemons.iter().zip(&runs).enumerate() {
            let is_current = daemon.is_some() && daemons[j + 1..].iter().all(|(_, d)| d.is_none());
            let mut t = self.table(&stream, runs, qlen, previous_qlen, named.then_some(*who), is_current);
            match daemon {
                Some(d) => binaries.push(format!("{who}: `{}`", d.daemon.display())),
                None => {
                    t.metrics.retain(|m| {
                        m.name.contains("CPU per event delivered")
                            || m.name.contains(" sleeps per ")
                            || m.name.contains(" preemptions per ")
                            || m.name.contains("sleeping and waking")
                            || m.name.contains("latency")
                    });
                    for m in &mut t.metrics {
                        m.goal = None;
                        m.name = m
                            .name
                            .replace("daemon CPU", "CPU")
                            .replace("daemon sleeps", "sleeps")
                            .replace("daemon preemptions", "preemptions")
                            .replace("daemon sleeping", "sleeping");
                    }
                }
            }
            table = Some(match table {
                None => t,
                Some(mut first) => {
                    first.metrics.append(&mut t.metrics);
                    // The notes are the current daemon's (the same load for all).
                    if is_current {
                        first.notes = t.notes;
                    }
                    first
                }
            });
        }
        let mut table = table.context("nothing ran")?;
        if named {
            table.notes.push(format!(
                "{}; in each run every one of them, in this order in odd runs and the reverse in even runs",
                binaries.join("; ")
            ));
        }
        if daemons.iter().any(|(_, d)| d.is_none()) {
            table.notes.push(format!(
                "floor: a minimal forwarder in a thread of the benchmark (`xtask/src/bench/floor.rs`): every {} ms (the \
                 daemon's tick) it reads all the socket holds and sends each event as one Wazuh datagram (`sendmmsg`, 64 at a time), \
                 nothing else (no JSON, cursor, counters, healthcheck or secret handling); its CPU from the thread's \
                 schedstat (ns), its context switches from the thread's status. What any forwarder of dockerd's one-write-per-event stream into Wazuh's \
                 one-datagram-per-event queue pays on this machine; the daemon's CPU above it is its own work",
                floor::TICK.as_millis()
            ));
        }
        Ok(table)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rate(r: &Run) -> f64 {
    if r.delivered < 2 || r.wall.is_zero() {
        return f64::NAN;
    }
    (r.delivered - 1) as f64 / r.wall.as_secs_f64()
}

fn cpu_per_event(r: &Run) -> f64 {
    if r.delivered == 0 {
        return f64::NAN;
    }
    r.cpu.as_secs_f64() * 1e6 / r.delivered as f64
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

impl DockerPath {
    /// The table of one daemon's runs; `who` names it in every metric when two are compared,
    /// `goals`: whether the targets apply to it (the current build's).
    fn table(
        &self,
        stream: &EncodedStream,
        runs: &[Run],
        qlen: u32,
        previous_qlen: u32,
        who: Option<&str>,
        goals: bool,
    ) -> Table {
        // The targets apply to a full run. Throughput is a target everywhere (at saturation it is
        // the daemon's capacity); CPU, memory and loss only at a sustained, paced load: at
        // saturation the spool is full by construction (RSS includes buffer_bytes of frames) and
        // the CPU spent on dropped events inflates the cost per event delivered.
        let full = runs.len() >= 3;
        let sustained = self.offered.is_some();
        let goal = |g, applies: bool| (full && goals && applies).then_some(g);
        let name = |n: &str| match who {
            Some(w) => format!("{n}, {w}"),
            None => n.to_owned(),
        };
        let label = who.map(|w| format!(", {w}")).unwrap_or_default();
        // Throughput is the daemon's capacity only when the load is not paced far below it.
        let capacity = self.offered.is_none_or(|r| r >= 200_000);
        let mut throughput = Metric::new(&name("throughput"), "events/s", 0, goal(Goal::AtLeast(200_000.0), capacity));
        let mut cpu =
            Metric::new(&name("daemon CPU per event delivered"), "µs", 3, goal(Goal::AtMost(self.cpu_goal), sustained));
        let mut cpu_read = Metric::new(&name("daemon CPU per event read"), "µs", 3, None);
        let mut switches = system::switch_rows("daemon ", "event", &label, 3);
        let mut rss = Metric::new(&name("RSS at end (VmRSS)"), "MiB", 1, goal(Goal::AtMost(10.0), sustained));
        let mut hwm = Metric::new(&name("peak RSS (VmHWM)"), "MiB", 1, None);
        let mut delivered = Metric::new(&name("delivered"), "% of events", 2, goal(Goal::AtLeast(100.0), sustained));
        let mut p50 = Metric::new(&name("delivery latency p50"), "ms", 2, None);
        let mut p99 = Metric::new(&name("delivery latency p99"), "ms", 2, goal(Goal::AtMost(5.0), true));
        let mut max = Metric::new(&name("delivery latency max"), "ms", 2, None);
        for r in runs {
            if let Some(l) = r.latency {
                p50.samples.push(ms(l.p50));
                p99.samples.push(ms(l.p99));
                max.samples.push(ms(l.max));
            }
            throughput.samples.push(rate(r));
            cpu.samples.push(cpu_per_event(r));
            system::push_switches(&mut switches, r.switches, r.delivered.max(1) as f64);
            let read = r.daemon_stats.get("docker_events_in").copied().unwrap_or(r.delivered).max(1);
            cpu_read.samples.push(r.cpu.as_secs_f64() * 1e6 / read as f64);
            rss.samples.push(mib(r.memory.rss));
            hwm.samples.push(mib(r.memory.hwm));
            delivered.samples.push(100.0 * r.delivered as f64 / stream.events as f64);
        }
        let dropped_any = runs.iter().any(|r| r.delivered < stream.events);
        let mut metrics = vec![throughput, cpu];
        if dropped_any {
            metrics.push(cpu_read);
        }
        let waking = system::waking(&switches[0], 2);
        metrics.extend(switches);
        metrics.extend(waking);
        if !p99.samples.is_empty() {
            metrics.extend([p50, p99, max]);
        }
        metrics.extend([rss, hwm, delivered]);
        let avg_event = stream.event_bytes as f64 / stream.events as f64;
        let share = |n: u64| 100.0 * n as f64 / stream.events.max(1) as f64;
        let offered = match self.offered {
            Some(r) if self.per_chunk_writes => format!(
                "offered at {} events/s, each event's chunk written on its own when due, as dockerd flushes every event; \
                 latency: from just before that write to the datagram's arrival at the sink",
                group_thousands(&r.to_string())
            ),
            Some(r) => format!("offered at {} events/s", group_thousands(&r.to_string())),
            None => "offered as fast as the daemon reads".into(),
        };
        let mut notes = vec![
            format!(
                "{} events per run ({offered}), {:.0} bytes on average (largest {}; {:.0}% under 512 B, {:.0}% 512-1023 B, {:.0}% ≥ 1 KiB), {}; \
                 daemon config `{{\"buffer_bytes\": {}{}}}`, net.unix.max_dgram_qlen = {qlen}{}",
                group_thousands(&stream.events.to_string()),
                avg_event,
                stream.max_event,
                share(stream.size_classes[0]),
                share(stream.size_classes[1]),
                share(stream.size_classes[2]),
                self.chunking,
                self.buffer_bytes,
                std::env::var("DL_BENCH_EXTRA_CONFIG").unwrap_or_default(),
                if qlen == previous_qlen {
                    String::new()
                } else {
                    format!(" (restored to {previous_qlen} afterwards)")
                },
            ),
            format!(
                "MB/s of frames delivered: median {:.0}",
                super::report::median(
                    &runs.iter().map(|r| r.bytes as f64 / 1e6 / r.wall.as_secs_f64().max(1e-9)).collect::<Vec<_>>()
                )
            ),
        ];
        let sink_cpu: Vec<f64> =
            runs.iter().filter_map(|r| Some(r.sink_cpu?.as_secs_f64() * 1e6 / r.delivered.max(1) as f64)).collect();
        if !sink_cpu.is_empty() {
            notes.push(format!(
                "the sink's receiving thread used {:.2} µs CPU per datagram (median; recvmmsg, 64 per call, plus the checks)",
                super::report::median(&sink_cpu)
            ));
        }
        let other: Vec<f64> = runs.iter().map(|r| r.other_load).collect();
        let disturbed: Vec<usize> = other.iter().enumerate().filter(|(_, o)| **o > 0.2).map(|(i, _)| i + 1).collect();
        notes.push(format!(
            "other processes used {:.2} CPUs during the runs (median; max {:.2}){}",
            super::report::median(&other),
            other.iter().copied().fold(0.0, f64::max),
            if disturbed.is_empty() {
                String::new()
            } else {
                format!(": runs {disturbed:?} shared the machine with other work and are disturbed")
            }
        ));
        let drops: Vec<u64> =
            runs.iter().map(|r| r.daemon_stats.get("dropped_buffer_full").copied().unwrap_or(0)).collect();
        if drops.iter().any(|&d| d > 0) {
            notes.push(format!(
                "the daemon dropped events, each counted and reported (dropped_buffer_full, loss events): {drops:?} per \
                 run. The Docker side reads and encodes faster than the output sends, so with input arriving faster \
                 than the output drains, the bounded spool (buffer_bytes) fills and drops its oldest frames, as \
                 designed. CPU per event delivered therefore also pays for the events dropped; CPU per event read does not"
            ));
        }
        Table { caption: self.label.to_owned(), runs: runs.len(), metrics, notes }
    }

    /// How the fake dockerd offers the body: as fast as it is read, or paced.
    fn pace(&self, stream: &EncodedStream, body: &[u8]) -> Option<Pace> {
        self.offered.map(|rate| match self.per_chunk_writes {
            true => Pace::Chunks(rate as f64 * stream.chunks as f64 / stream.events as f64),
            false => Pace::Bytes(rate as f64 * body.len() as f64 / stream.events as f64),
        })
    }

    /// A run's figures from what the sink saw and the forwarder's measures.
    fn measured(
        &self,
        report: &SinkReport,
        written: &[Instant],
        (cpu, switches): (Duration, system::Switches),
        memory: Memory,
        daemon_stats: BTreeMap<String, u64>,
        other_load: f64,
    ) -> Result<Run> {
        let (Some(first), Some(last)) = (report.first_at, report.last_at) else { bail!("no datagram arrived") };
        let latency = self.per_chunk_writes.then(|| latency(written, &report.arrivals)).transpose()?;
        Ok(Run {
            latency,
            delivered: report.docker_frames,
            bytes: report.bytes,
            wall: last.duration_since(first),
            cpu,
            switches,
            memory,
            daemon_stats,
            sink_cpu: report.cpu,
            other_load,
        })
    }

    /// One run of the floor forwarder (`floor.rs`) against the same fake dockerd and sink.
    fn run_floor(&self, stream: &EncodedStream, body: &Arc<Vec<u8>>) -> Result<Run> {
        let dir = ScratchDir::new("floor")?;
        let docker_sock = dir.join("docker.sock");
        let queue = dir.join("queue");
        let pace = self.pace(stream, body);
        let (fake, starting) = FakeDockerApi::start(&docker_sock, body.clone(), pace)?;
        let (sink, done) = DatagramSink::bind_timed(&queue, stream.events)?;
        let floor = Floor::start(&docker_sock, &queue, stream.events)?;
        let start =
            starting.recv_timeout(Duration::from_secs(30)).context("the floor's /events request never arrived")?;
        let before = Load::sample(std::process::id())?;
        start.go.send(()).context("the fake dockerd is gone")?;
        let floor_measure = floor.finish()?;
        done.recv_timeout(Duration::from_secs(30)).context("the sink did not receive every frame of the floor")?;
        let after = Load::sample(std::process::id())?;
        let written = fake.chunk_times();
        drop(fake);
        let report = sink.finish()?;
        self.measured(&report, &written, floor_measure, Memory::default(), BTreeMap::new(), before.others_until(&after))
    }

    fn run_once(
        &self,
        ctx: &Context,
        stream: &EncodedStream,
        body: &Arc<Vec<u8>>,
        perf_out: Option<&Path>,
    ) -> Result<Run> {
        let dir = ScratchDir::new("docker")?;
        let docker_sock = dir.join("docker.sock");
        let queue = dir.join("queue");
        let state = dir.join("state");
        let config = dir.join("config.json");
        let log = dir.join("daemon.log");
        let extra = std::env::var("DL_BENCH_EXTRA_CONFIG").unwrap_or_default();
        std::fs::write(
            &config,
            format!("{{\"docker-listener\": {{\"buffer_bytes\": {}{extra}}}}}\n", self.buffer_bytes),
        )?;

        let pace = self.pace(stream, body);
        let (fake, starting) = FakeDockerApi::start(&docker_sock, body.clone(), pace)?;
        let (sink, done) = match self.per_chunk_writes {
            true => DatagramSink::bind_timed(&queue, stream.events)?,
            false => DatagramSink::bind(&queue, stream.events)?,
        };
        let mut daemon = Daemon::start(ctx, &docker_sock, &queue, &state, &config, &log)?;
        let pid = daemon.pid();

        // The daemon connects, negotiates the API version and asks for /events.
        let start = wait_for(&starting, Duration::from_secs(30), &mut daemon, "the daemon to request /events")?;
        let load_before = Load::sample(pid)?;
        let perf = perf_out.map(|out| Perf::attach(pid, out)).transpose()?;
        start.go.send(()).context("the fake dockerd is gone")?;

        let complete = wait_for_frames(&sink, &done, stream.events, &mut daemon)?;
        let load_after = Load::sample(pid)?;
        let memory = system::memory(pid)?;
        if let Some(p) = perf {
            p.stop()?;
        }
        let daemon_stats = daemon.stop()?;
        let event_requests = fake.event_requests();
        let requests = fake.requests();
        let written = fake.chunk_times();
        drop(fake);
        let report = sink.finish()?;

        if event_requests != 1 {
            bail!(
                "the daemon sent {event_requests} /events requests (it reconnected): {requests:?}\n{}",
                daemon.log_tail()
            );
        }
        check_frames(&report, stream, &daemon_stats, complete).map_err(|e| e.context(daemon.log_tail()))?;
        let cpu = load_after.daemon.saturating_sub(load_before.daemon);
        let switches = load_after.daemon_switches.since(load_before.daemon_switches);
        self.measured(&report, &written, (cpu, switches), memory, daemon_stats, load_before.others_until(&load_after))
    }
}

/// The delivery latency of each event: its frame's arrival (in order, one per event) less its
/// chunk's write (one chunk per event).
fn latency(written: &[Instant], arrived: &[Instant]) -> Result<Latency> {
    if written.len() != arrived.len() || written.is_empty() {
        bail!("{} chunks written, {} frames timed at the sink: cannot pair them", written.len(), arrived.len());
    }
    let mut l: Vec<Duration> = written.iter().zip(arrived).map(|(w, a)| a.saturating_duration_since(*w)).collect();
    l.sort_unstable();
    let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
    Ok(Latency { p50: at(0.5), p99: at(0.99), max: at(1.0) })
}

/// Waits for the sink to have `expected` datagrams. Returns false when delivery stopped short
/// (nothing new for a while): the caller then checks the daemon accounted for the rest.
fn wait_for_frames(sink: &DatagramSink, done: &mpsc::Receiver<()>, expected: u64, daemon: &mut Daemon) -> Result<bool> {
    const IDLE: Duration = Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_secs(expected / 20_000);
    let mut last_seen = (0, Instant::now());
    loop {
        match done.recv_timeout(Duration::from_millis(100)) {
            Ok(()) => return Ok(true),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the sink thread stopped"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        daemon.check_alive()?;
        let (n, _) = sink.progress();
        if n != last_seen.0 {
            last_seen = (n, Instant::now());
        } else if n > 0 && last_seen.1.elapsed() >= IDLE {
            return Ok(false);
        } else if n == 0 && last_seen.1.elapsed() >= Duration::from_secs(30) {
            bail!("no frame arrived within 30 s of the stream's start\n{}", daemon.log_tail());
        }
        if Instant::now() > deadline {
            bail!("timed out with {n} of {expected} frames delivered\n{}", daemon.log_tail());
        }
    }
}

fn wait_for<T>(rx: &mpsc::Receiver<T>, timeout: Duration, daemon: &mut Daemon, what: &str) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(v) => return Ok(v),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the fake dockerd stopped while waiting for {what}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        daemon.check_alive()?;
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}\n{}", daemon.log_tail());
        }
    }
}

/// Every frame well-formed and in order; the first and last byte-identical to the events
/// streamed; any shortfall accounted for by the daemon's drop counter.
fn check_frames(
    report: &SinkReport,
    stream: &EncodedStream,
    stats: &BTreeMap<String, u64>,
    complete: bool,
) -> Result<()> {
    if report.malformed > 0 || report.out_of_order > 0 || report.truncated > 0 {
        bail!(
            "bad frames: {} malformed, {} out of order, {} truncated; first: {}",
            report.malformed,
            report.out_of_order,
            report.truncated,
            report.first_problem.as_deref().unwrap_or("?")
        );
    }
    let dropped = stats.get("dropped_buffer_full").copied().unwrap_or(0);
    let frames_out = stats.get("frames_out").copied();
    if frames_out.is_some_and(|n| n != report.datagrams) {
        bail!("the daemon says it sent {frames_out:?} frames, the sink received {}", report.datagrams);
    }
    if report.docker_frames + dropped != stream.events {
        bail!(
            "{} events streamed, {} delivered, {dropped} reported dropped by the daemon: {} lost without a trace",
            stream.events,
            report.docker_frames,
            stream.events as i64 - report.docker_frames as i64 - dropped as i64
        );
    }
    let frame = |event: &[u8]| [DOCKER_FRAME_PREFIX, event, b"}"].concat();
    let compare = |got: &[Vec<u8>], want: &[Vec<u8>], which: &str| -> Result<()> {
        for (g, w) in got.iter().zip(want) {
            let w = frame(w);
            if *g != w {
                bail!(
                    "the {which} frames differ from the events streamed:\n  got  {}\n  want {}",
                    String::from_utf8_lossy(g),
                    String::from_utf8_lossy(&w)
                );
            }
        }
        Ok(())
    };
    if complete && dropped == 0 {
        compare(&report.first_frames, &stream.first, "first")?;
    }
    if report.agent_frames == 0 {
        // The newest events are never the ones dropped.
        compare(&report.last_frames, &stream.last, "last")?;
    }
    Ok(())
}

/// The daemon under test.
struct Daemon(DaemonProcess);

impl Daemon {
    fn start(
        ctx: &Context,
        docker_sock: &Path,
        queue: &Path,
        state: &Path,
        config: &Path,
        log: &Path,
    ) -> Result<Daemon> {
        let mut cmd = Command::new(&ctx.daemon);
        cmd.arg("--docker-host")
            .arg(format!("unix://{}", docker_sock.display()))
            .arg("--queue")
            .arg(queue)
            .arg("--state-dir")
            .arg(state)
            .arg("--no-ebpf")
            .arg("--config")
            .arg(config);
        Ok(Daemon(DaemonProcess::spawn(&mut cmd, log)?))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.0.try_wait()? {
            bail!("docker-listener exited early ({status})\n{}", self.log_tail());
        }
        Ok(())
    }

    /// SIGTERM, wait for a clean exit, and read the counters of its last log line.
    fn stop(&mut self) -> Result<BTreeMap<String, u64>> {
        self.0.stop(Duration::from_secs(20))
    }

    fn log_tail(&self) -> String {
        self.0.log_tail()
    }
}
