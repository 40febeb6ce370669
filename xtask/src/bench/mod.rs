//! `cargo xtask bench [--quick]`: performance scenarios that run the real daemon.
//!
//! Each scenario ([`Scenario`]) runs the release binary against fakes of its surroundings,
//! repeats the measurement, and returns a results [`Table`] (median, min, max, target). The
//! tables are printed, and — for a full run — written into their section of `BENCHMARKS.md`
//! at the workspace root, between markers, so hand-written sections and other scenarios'
//! results survive.
//!
//! `--quick` runs every scenario once on a small input: it checks the scenarios work (every
//! frame delivered and correct), in well under a minute after the build, and asserts nothing
//! about timings; it does not touch BENCHMARKS.md.
//!
//! The fakes share the CPUs with the daemon, so they run optimised: under `cargo xtask` (a
//! debug build) this command builds xtask in release mode and re-runs itself from there.
//! Each run also reports how much CPU other processes used meanwhile: on a busy machine the
//! numbers mean little.
//!
//! Environment:
//! - `DL_BENCH_DAEMON=<binary>`: measure that daemon instead of building this tree's (the
//!   package's static build, what administrators install);
//! - `DL_BENCH_FLOOR=<binary>`: the exec storm's floor (`docker-listener/examples/exec_floor.rs`)
//!   to run instead of `ebpf_peer::FLOOR`, built beside the static daemon;
//! - `DL_BENCH_BASELINE=<binary>`: a second daemon (typically an older commit's static build,
//!   `cargo build --release -p docker-listener --target x86_64-unknown-linux-musl`: the same
//!   allocator as the current one)
//!   measured in the same run, side by side, by the scenarios that compare variants: the eBPF
//!   storms and the system call loops then run, in each round, without an agent, with the
//!   baseline and with the current daemon, the order reversed every other round (see
//!   `variants`), and report each daemon against the no-agent run of the same round. Two builds
//!   measured an hour apart on this VM differ by 10-20% for no reason of theirs; in one run,
//!   interleaved, the drift hits both alike. The other scenarios ignore it;
//! - `DL_BENCH_BASELINE_CONFIG=<JSON>`: settings the baseline's agents run with in the eBPF
//!   scenarios (the inside of `{"docker-listener": ...}`); with `DL_BENCH_BASELINE` the same
//!   binary as the current one, `{"ebpf": {"file_access": false}}` measures that family alone;
//! - `DL_BENCH_ONLY=<scenario id>`: run one scenario (BENCHMARKS.md is then left alone); the
//!   eBPF ones are `exec-storm-container`, `exec-storm-host`, `connect-storm`,
//!   `syscall-loop-host`, `syscall-loop-container`, `latency`, `loss-small-ring`,
//!   `loss-default-ring`, `density`;
//! - `DL_BENCH_ROUNDS=<n>`: n rounds for every scenario that repeats, instead of 3 to 7 (a
//!   scenario measured by hand in less time; its tables say how many rounds they hold);
//! - `DL_BENCH_EXTRA_CONFIG=', "key": value'`: more members for the Docker-path scenarios'
//!   daemon config (e.g. `, "healthchecks": "forward"` to measure a stage's cost by its absence;
//!   the tables print the config used);
//! - `DL_BENCH_PERF=<prefix>`, `DL_BENCH_PERF_ARGS`: record one extra run per scenario with
//!   `perf record` (see `docker_path`; the eBPF storms do the same, see `ebpf_storm`).
//!
//! The eBPF scenarios need root, the running dockerd and the test image (`cargo xtask test`
//! makes it); they start containers named `dlbench-<pid>-...` and always remove them (a run
//! killed by a signal leaves them to the next run, which removes them first).
//!
//! Adding a scenario: implement [`Scenario`] (see `docker_path.rs`) and list it in
//! [`scenarios`]; give it its own [`SectionInfo`] or share an existing one.
//!
//! The pieces:
//! - `daemon`: the daemon process under test (start, log, stop, final counters) and `perf`;
//! - `docker_path`: the Docker-events path, fake dockerd → daemon → fake Wazuh queue;
//! - `ebpf*`: process and socket events (eBPF) with the real dockerd and real containers:
//!   storms and their overhead (`ebpf_storm`, its table in `ebpf_storm_table`), the cost of
//!   the programs on every system call (`ebpf_syscalls`), density (`ebpf_density`), latency
//!   (`ebpf_latency`), loss accounting (`ebpf_loss`); shared pieces in `ebpf`, the collecting
//!   sink in `ebpf_sink`, the load generator (`xtask bench-worker`) in `ebpf_worker`;
//! - `variants`: no agent / baseline / current daemon in alternating order, round after round;
//! - `events`: the realistic, deterministic Docker event log and its HTTP chunked encoding;
//! - `fake_api`: the fake Docker Engine API;
//! - `sink`: the fast datagram sink standing in for Wazuh's queue socket;
//! - `system`: /proc readings, the `max_dgram_qlen` sysctl, scratch directories, the machine;
//! - `report`: metrics, tables, and the BENCHMARKS.md writer.
mod daemon;
mod docker_path;
mod ebpf;
mod ebpf_density;
mod ebpf_forks;
mod ebpf_idle;
mod ebpf_latency;
mod ebpf_loss;
mod ebpf_peer;
mod ebpf_sink;
mod ebpf_storm;
mod ebpf_storm_table;
mod ebpf_syscalls;
pub mod ebpf_worker;
mod events;
mod fake_api;
mod floor;
mod report;
mod sink;
mod system;
mod variants;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result};

use self::{
    docker_path::DockerPath,
    ebpf::Mode,
    ebpf_density::Density,
    ebpf_forks::ForkStorm,
    ebpf_idle::Idle,
    ebpf_latency::Latency,
    ebpf_loss::LossStorm,
    ebpf_peer::ExecPeer,
    ebpf_storm::{Kind, Storm},
    ebpf_syscalls::SyscallLoop,
    events::Chunking,
    report::{Section, Table},
    system::Machine,
};

/// What every scenario gets.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The release daemon binary.
    pub daemon: PathBuf,
    /// Another daemon to measure side by side with it (`DL_BENCH_BASELINE`).
    pub baseline: Option<PathBuf>,
    /// Settings (the inside of `{"docker-listener": ...}`) every eBPF scenario's agent of
    /// `daemon` runs with, over the scenario's own.
    pub settings: Option<serde_json::Value>,
    /// The baseline's (`DL_BENCH_BASELINE_CONFIG`): the same binary with a family off measures
    /// that family alone.
    pub baseline_settings: Option<serde_json::Value>,
}

/// A BENCHMARKS.md section scenarios write into.
#[derive(Debug, Clone, Copy)]
pub struct SectionInfo {
    /// The marker id (`<!-- xtask-bench:begin ID -->`).
    pub id: &'static str,
    pub title: &'static str,
    /// What the section's scenarios measure and how (Markdown).
    pub about: &'static str,
}

pub trait Scenario {
    /// A short name (`DL_BENCH_ONLY`, file names).
    fn id(&self) -> &'static str;
    fn name(&self) -> String;
    fn section(&self) -> SectionInfo;
    /// Runs the scenario (all its repetitions) and returns its results.
    fn run(&self, ctx: &Context) -> Result<Table>;
}

/// The scenarios, in the order they run. Budget for a full run: about 3 minutes for the
/// Docker path, about 9 for the eBPF scenarios (2 of them for density's 500 containers, 3 for
/// the system call loops: each of their runs with a daemon starts a fresh agent, ~2.5 s of BTF
/// parsing, and times 2 × 2M calls and 200k open + close twice); `--quick`: about a minute for
/// all of them.
fn scenarios(quick: bool) -> Vec<Box<dyn Scenario>> {
    let size = |full: u64| if quick { 20_000 } else { full };
    // `DL_BENCH_ROUNDS`: fewer (or more) rounds than a full run's, for one scenario measured
    // by hand (the figures say how many rounds they are the median of).
    let rounds = std::env::var(ROUNDS).ok().and_then(|r| r.parse::<usize>().ok()).filter(|&r| r > 0);
    let runs = |full: usize| if quick { 1 } else { rounds.unwrap_or(full) };
    let mode = if quick { Mode::Quick } else { Mode::Full };
    let sized = Chunking::Sized { min: 16 << 10, max: 64 << 10 };
    // Offered load for the sustained scenarios: 5% above the 200k events/s target, so that
    // keeping up shows as a measured rate above the target.
    let sustained = Some(210_000);
    vec![
        // The realistic load first: the headline (issue 15).
        Box::new(DockerPath {
            id: "paced-10k",
            label: "realistic: 10k events/s, one write and one HTTP chunk per event as dockerd sends them, sink queue 1024",
            events: if quick { 10_000 } else { 200_000 },
            runs: runs(5),
            chunking: Chunking::PerEvent,
            qlen: 1024,
            buffer_bytes: 16 << 20,
            offered: Some(10_000),
            per_chunk_writes: true,
            cpu_goal: 3.0,
            compare: true,
        }),
        Box::new(DockerPath {
            id: "saturation",
            label: "saturation: as fast as the daemon reads, 16-64 KiB chunks, sink queue 1024",
            events: size(2_000_000),
            runs: runs(5),
            chunking: sized,
            qlen: 1024,
            buffer_bytes: 16 << 20,
            offered: None,
            per_chunk_writes: false,
            cpu_goal: 2.0,
            compare: false,
        }),
        Box::new(DockerPath {
            id: "sustained",
            label: "sustained: 210k events/s offered, 16-64 KiB chunks, sink queue 1024",
            events: size(1_000_000),
            runs: runs(5),
            chunking: sized,
            qlen: 1024,
            buffer_bytes: 16 << 20,
            offered: sustained,
            per_chunk_writes: false,
            cpu_goal: 2.0,
            compare: false,
        }),
        Box::new(DockerPath {
            id: "sustained-per-event-chunks",
            label: "sustained, dockerd's framing: 210k events/s offered, one HTTP chunk per event, sink queue 1024",
            events: size(1_000_000),
            runs: runs(3),
            chunking: Chunking::PerEvent,
            qlen: 1024,
            buffer_bytes: 16 << 20,
            offered: sustained,
            per_chunk_writes: false,
            cpu_goal: 2.0,
            compare: false,
        }),
        Box::new(DockerPath {
            id: "sustained-qlen10",
            label: "sustained, kernel-default queue: 210k events/s offered, 16-64 KiB chunks, sink queue 10",
            events: size(1_000_000),
            runs: runs(3),
            chunking: sized,
            qlen: 10,
            buffer_bytes: 16 << 20,
            offered: sustained,
            per_chunk_writes: false,
            cpu_goal: 2.0,
            compare: false,
        }),
        Box::new(Storm {
            id: "exec-storm-container",
            label: "exec storm in a container: fork + exec of /bin/true, one at a time",
            kind: Kind::ExecInContainer,
            count: mode.pick(500, 5_000),
            pairs: runs(7),
            max_ratio: 1.03,
            mode,
        }),
        Box::new(ExecPeer {
            id: "exec-peer-bpftrace",
            label: "exec storm in a container, the agent beside bpftrace printing one line per exec",
            count: mode.pick(500, 5_000),
            rounds: runs(5),
            mode,
        }),
        Box::new(Storm {
            id: "exec-storm-host",
            label: "exec storm on the host, host tracing off: fork + exec of /bin/true, one at a time",
            kind: Kind::ExecOnHost,
            count: mode.pick(500, 5_000),
            pairs: runs(7),
            max_ratio: 1.01,
            mode,
        }),
        Box::new(Storm {
            id: "connect-storm",
            label: "connect storm in a container: TCP connects on the container's loopback",
            kind: Kind::ConnectInContainer,
            count: mode.pick(5_000, 100_000),
            pairs: runs(7),
            max_ratio: 1.05,
            mode,
        }),
        Box::new(SyscallLoop {
            id: "syscall-loop-host",
            label: "system call loop on the host: getppid() and munmap(1, 4096), as fast as possible",
            in_container: false,
            count: mode.pick(100_000, 2_000_000),
            rounds: runs(7),
            mode,
        }),
        Box::new(SyscallLoop {
            id: "syscall-loop-container",
            label: "system call loop in a container: getppid() and munmap(1, 4096), as fast as possible",
            in_container: true,
            count: mode.pick(100_000, 2_000_000),
            rounds: runs(7),
            mode,
        }),
        Box::new(Latency {
            id: "latency",
            label: "latency at 10k events/s: kernel timestamp → datagram at the sink",
            connects_per_sec: 5_000,
            secs: mode.pick(1, 5),
            runs: runs(3),
            mode,
        }),
        Box::new(LossStorm {
            id: "loss-small-ring",
            label: "loss accounting, heaviest storm, 64 KiB ring buffer",
            ring_buffer_bytes: Some(65_536),
            exec_workers: 2,
            execs: mode.pick(300, 3_000),
            connect_workers: 2,
            connects: mode.pick(5_000, 50_000),
            mode,
        }),
        Box::new(LossStorm {
            id: "loss-default-ring",
            label: "loss accounting, heaviest storm, default 4 MiB ring buffer",
            ring_buffer_bytes: None,
            exec_workers: 2,
            execs: mode.pick(300, 3_000),
            connect_workers: 2,
            connects: mode.pick(5_000, 50_000),
            mode,
        }),
        Box::new(ForkStorm {
            id: "fork-storm",
            label: "fork storm: 100,000 short-lived processes in one container, 20,000 held in another",
            forks: mode.pick(2_000, 100_000),
            live: mode.pick(300, 20_000),
            // 50 ms apart: past the agent's first process-table sweep (60 s after its start).
            execs: mode.pick(20, 1_600),
            mode,
        }),
        Box::new(Idle {
            id: "idle",
            label: "idle: 100 containers doing nothing",
            containers: mode.pick(5, 100),
            parallel: 12,
            // Past Tokio's 10 s keep-alive of the start-up's blocking threads.
            settle: mode.pick(Duration::from_secs(1), Duration::from_secs(12)),
            // A minute: one round of each of the agent's once-a-minute tasks.
            window: mode.pick(Duration::from_secs(3), Duration::from_secs(60)),
            rounds: runs(3),
            mode,
        }),
        Box::new(Density {
            id: "density",
            label: "density: the agent starting among running containers",
            containers: mode.pick(5, 500),
            parallel: 12,
            window: Duration::from_secs(7),
            rounds: runs(3),
            mode,
        }),
    ]
}

/// `xtask bench-worker`: the eBPF scenarios' load generator (see `ebpf_worker`).
pub fn worker(args: ebpf_worker::WorkerArgs) -> Result<()> {
    ebpf_worker::main(args)
}

/// Set in the optimised re-run of xtask (see [`run`]).
/// Every variable that changes what `cargo xtask bench` measures or how: `cargo xtask test`
/// clears them, so that none can narrow the suite's quick run of every scenario.
pub const SETTINGS: [&str; 9] =
    [ONLY, ROUNDS, DAEMON, FLOOR, BASELINE, OPTIMISED, "DL_BENCH_EXTRA_CONFIG", "DL_BENCH_PERF", "DL_BENCH_PERF_ARGS"];

const OPTIMISED: &str = "DL_BENCH_OPTIMISED";
/// Run only the scenario with this id (for profiling or development).
const ONLY: &str = "DL_BENCH_ONLY";
/// The rounds of every scenario that repeats (instead of a full run's 3 to 7).
const ROUNDS: &str = "DL_BENCH_ROUNDS";
/// The daemon measured unless [`DAEMON`] names another: the package's static build.
const DEFAULT_DAEMON: &str = crate::package::STATIC_BINARY;
/// Benchmark this daemon binary instead of building [`DEFAULT_DAEMON`] (to
/// compare builds, or to measure a clean checkout while the working tree does not build).
const DAEMON: &str = "DL_BENCH_DAEMON";
/// Run this build of the exec storm's floor instead of `ebpf_peer::FLOOR`.
pub(crate) const FLOOR: &str = "DL_BENCH_FLOOR";
/// A second daemon binary the storms and system call loops measure in the same rounds.
const BASELINE: &str = "DL_BENCH_BASELINE";
/// Settings the baseline's agents run with in the eBPF scenarios (JSON, the inside of
/// `{"docker-listener": ...}`), e.g. `{"ebpf": {"file_access": false}}` with `DL_BENCH_BASELINE`
/// the same binary as the current one: what one family costs.
const BASELINE_CONFIG: &str = "DL_BENCH_BASELINE_CONFIG";

/// Binaries already built, which the quick run of `cargo xtask test` measures instead of
/// building the release ones (see [`run_quick_with`]).
pub struct Built<'a> {
    /// The daemon.
    pub daemon: &'a Path,
    /// The exec storm's floor (`docker-listener/examples/exec_floor.rs`).
    pub floor: &'a Path,
}

/// `cargo xtask bench`: set up, build the release daemon, run every scenario, report.
///
/// The fake dockerd and the sink share the CPUs with the daemon, so they must cost as little
/// as possible; `cargo xtask` builds xtask in debug mode, so this builds xtask in
/// release mode and runs the scenarios from that binary.
pub fn run(quick: bool) -> Result<()> {
    run_with(quick, None)
}

/// `cargo xtask test`'s quick run of every scenario, with binaries the suite has built already:
/// its timings are not meaningful, so a third build of the daemon (the release one, whole-program
/// LTO, minutes on two CPUs) and of the floor would buy nothing. The suite gives the static
/// release binary of the package, the very one administrators install, and the floor `cargo
/// test` built.
pub fn run_quick_with(built: Built<'_>) -> Result<()> {
    run_with(true, Some(built))
}

fn run_with(quick: bool, built: Option<Built<'_>>) -> Result<()> {
    if std::env::var_os(OPTIMISED).is_none() {
        if built.is_none() && std::env::var_os(DAEMON).is_none() {
            crate::setup::run()?;
            // What administrators install (the package's static build: musl, mimalloc), not the
            // dynamic build `cargo xtask build` makes, whose allocator is glibc's.
            crate::package::build_static()?;
            // The floor under the agent's CPU per exec (`ebpf_peer`), built as the daemon is.
            crate::util::cargo(&[
                "build",
                "--release",
                "--package",
                "docker-listener",
                "--target",
                crate::package::TARGET,
                "--example",
                "exec_floor",
            ])?;
        }
        // The eBPF and density scenarios run real containers: like `xtask test`, start a
        // dockerd if none answers and make the local image (both no-ops when already there).
        if crate::util::is_root() {
            crate::docker::ensure_daemon()?;
            crate::docker::ensure_image()?;
        }
        if let Some(b) = &built {
            // Read by `measure`, here or in the optimised re-run, which inherits them.
            // SAFETY: single-threaded here: nothing else reads the environment meanwhile.
            unsafe {
                std::env::set_var(DAEMON, b.daemon);
                std::env::set_var(FLOOR, b.floor);
            }
        }
        if cfg!(debug_assertions) {
            crate::util::cargo(&["build", "--release", "--quiet", "--package", "xtask"])?;
            let mut cmd = std::process::Command::new("target/release/xtask");
            cmd.arg("bench").args(quick.then_some("--quick")).env(OPTIMISED, "1");
            return crate::util::run(&mut cmd);
        }
    }
    measure(quick)
}

fn measure(quick: bool) -> Result<()> {
    let root = std::env::current_dir()?;
    let daemon_override = std::env::var_os(DAEMON).map(PathBuf::from);
    let daemon = daemon_override.clone().unwrap_or_else(|| root.join(DEFAULT_DAEMON));
    if !daemon.is_file() {
        anyhow::bail!("no daemon binary at {}", daemon.display());
    }
    let baseline = std::env::var_os(BASELINE).filter(|b| !b.is_empty()).map(PathBuf::from);
    if let Some(b) = &baseline {
        if !b.is_file() {
            anyhow::bail!(
                "{BASELINE}={}: no such file; give the path of another build's daemon, built as the current one is \
                 (e.g. a checkout of an older commit built with `cargo build --release -p docker-listener --target \
                 x86_64-unknown-linux-musl`: target/x86_64-unknown-linux-musl/release/docker-listener)",
                b.display()
            );
        }
        println!(
            "xtask bench: {BASELINE}={}: the storms and system call loops run it side by side with {}",
            b.display(),
            daemon.display()
        );
    }
    let baseline_settings = match std::env::var(BASELINE_CONFIG) {
        Ok(text) if !text.trim().is_empty() => {
            if baseline.is_none() {
                anyhow::bail!("{BASELINE_CONFIG} is set but {BASELINE} is not: name the baseline's binary too");
            }
            let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{BASELINE_CONFIG}={text}: not JSON; give settings as in a config file's \"docker-listener\" object"
                )
            })?;
            if !v.is_object() {
                anyhow::bail!(
                    "{BASELINE_CONFIG}={text}: give a JSON object, e.g. {{\"ebpf\": {{\"file_access\": false}}}}"
                );
            }
            println!(
                "xtask bench: {BASELINE_CONFIG}={v}: the baseline's agents run with it in the eBPF scenarios (the Docker path's ignore it)"
            );
            Some(v)
        }
        _ => None,
    };
    let ctx = Context { daemon, baseline, settings: None, baseline_settings };
    let machine = Machine::describe();
    let command = if quick { "cargo xtask bench --quick" } else { "cargo xtask bench" };
    println!(
        "xtask bench: {} CPUs ({}), kernel {}, {} RAM, {}, commit {}; {}",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.memory,
        machine.rustc,
        machine.commit,
        machine.costs_text()
    );
    if !crate::util::is_root() {
        println!(
            "xtask bench: not root: net.unix.max_dgram_qlen cannot be raised; the scenarios run with its current value"
        );
    }

    let only = std::env::var(ONLY).ok();
    let selected: Vec<Box<dyn Scenario>> =
        scenarios(quick).into_iter().filter(|s| only.as_deref().is_none_or(|o| s.id() == o)).collect();
    if selected.is_empty() {
        anyhow::bail!("{ONLY}={}: no such scenario", only.unwrap_or_default());
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut tables = Vec::new();
    for scenario in selected {
        println!("\nxtask bench: {}", scenario.name());
        let table = scenario.run(&ctx).with_context(|| scenario.name())?;
        let info = scenario.section();
        let section = match sections.iter_mut().find(|s| s.id == info.id) {
            Some(s) => s,
            None => {
                let intro = intro(&info, &machine, command, daemon_override.as_deref());
                sections.push(Section { id: info.id, title: info.title, intro, tables: Vec::new() });
                sections.last_mut().context("a section was just added")?
            }
        };
        section.tables.push(table.clone());
        tables.push(table);
    }

    println!();
    for t in &tables {
        println!("{}", t.to_text());
    }
    if only.is_some() && !quick {
        println!("xtask bench: {ONLY} is set: BENCHMARKS.md left as it is (it holds complete runs only)");
    } else if quick {
        println!(
            "xtask bench: quick run: every scenario works (BENCHMARKS.md left as it is; timings are not meaningful)"
        );
    } else {
        let path = root.join("BENCHMARKS.md");
        let measured = match &daemon_override {
            Some(d) => format!(" The daemon measured: `{}` (`{DAEMON}`).", d.display()),
            None => format!(
                " The daemon measured: the package's static build, `{DEFAULT_DAEMON}` (what administrators install)."
            ),
        };
        let compared = match &ctx.baseline {
            Some(b) => format!(
                " Where a scenario runs a baseline (`{BASELINE}`), its figure is beside the current build's: `{}`.",
                b.display()
            ),
            None => String::new(),
        };
        sections.insert(
            0,
            Section {
                id: "summary",
                title: "Summary against the targets",
                intro: vec![
                    format!(
                        "Every target of the run below, by the median of its runs, with their spread (min–max) and, \
                         where the target lies inside that spread, the words \"inside the noise\". Written by \
                         `{command}` at commit `{}` on {} CPUs ({}), kernel {}.{measured}{compared} On this machine {} \
                         ({}): a forwarder's CPU per event is at least its sleeps per event (voluntary context \
                         switches; a preemption costs about a microsecond) times the first, which the tables give \
                         as \"sleeping and waking\".",
                        machine.commit,
                        machine.cpus,
                        machine.cpu_model,
                        machine.kernel,
                        machine.costs_text(),
                        system::Costs::METHOD
                    ),
                    report::summary(&tables),
                ],
                tables: Vec::new(),
            },
        );
        report::write_sections(&path, &sections)?;
        println!("xtask bench: results written to {}", path.display());
    }
    Ok(())
}

fn intro(info: &SectionInfo, machine: &Machine, command: &str, daemon: Option<&std::path::Path>) -> Vec<String> {
    let binary = match daemon {
        Some(d) => format!(" The daemon binary was `{}` ({DAEMON}), not this tree's build.", d.display()),
        None => String::new(),
    };
    vec![
        info.about.to_owned(),
        format!(
            "Produced by `{command}` (as root, which lets it set `net.unix.max_dgram_qlen`) at commit `{}`.{binary} \
             Machine: {} CPUs, {} (from /proc/cpuinfo), {} RAM, kernel {} (`uname -r`); {}; on it {} (measured at the \
             start of the run).",
            machine.commit,
            machine.cpus,
            machine.cpu_model,
            machine.memory,
            machine.kernel,
            machine.rustc,
            machine.costs_text()
        ),
    ]
}
