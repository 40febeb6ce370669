//! System call loops: what the agent costs every system call of the host.
//!
//! The program at every system call's exit (`raw_sys_exit`, docker-listener-ebpf's
//! `syscall_exit.rs`; `compat_sys_exit` in earlier builds) sits on the raw `sys_exit`
//! tracepoint: it runs on every system call of every process, in containers or not, and rejects
//! all but the numbers that matter in its first instructions. Its cost is tens of
//! nanoseconds per call, invisible in the storms (an exec is ~500 µs), so this scenario makes
//! millions of the cheapest calls and times them:
//!
//! - `getppid()`: a number the programs reject at once;
//! - `munmap(1, 4096)` (EINVAL): x86-64's number 11, ia32's `execve`, for which the programs also
//!   read the task's `TS_COMPAT`: the worst case for native code;
//! - `openat(AT_FDCWD, "/", O_RDONLY|O_DIRECTORY|O_CLOEXEC)` + `close(fd)`: one open per
//!   iteration, of a file no rule names. The file-access family inspects every open by a
//!   container process at the open's exit (the fd's file → its inode → the set of sensitive
//!   files), within 100 ns more per such open; this loop is what measures it, in the container
//!   scenario (on the host, where the family looks at nothing, it shows what the exit program
//!   costs an open that is not a container's). An open + close costs 10-20 getppid (more in a
//!   container, whose `/` is an overlay), so the loop makes a tenth of `count` iterations
//!   ([`Syscall::iterations`]) and lasts one to two times as long as the others.
//!
//! Each run starts an `xtask bench-worker syscalls` (on the host, or joined to a `--network none`
//! container like the storms' workers), then the daemon of the variant (none, the baseline, the
//! current one; `variants`), and sends it the three loops. Those are timed with
//! `kernel.bpf_stats_enabled` = 0: the accounting adds two clock reads per program run, about as
//! much as a program that rejects a call. Then, when the daemon has such a program,
//! the same loops run again with the accounting on, and their `run_time_ns`/`run_cnt` give the
//! programs' own time per call (per open + close for the open loop, where every program of the
//! agent is counted too: the file-access family's may be one of its own, not the exit program).
//! The ratio to the no-agent run of the same round is the cost a process sees; it includes the
//! kernel's slow path for system calls that any attached syscall tracepoint switches on for every
//! task (both builds attach `syscalls:sys_enter_connect` and others), which the baseline already
//! pays.
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, AgentRun, Load, Mode, ProbeTime, StormContainer, Worker},
    ebpf_storm_table::DISTURBED,
    ebpf_worker::Syscall,
    report::{Metric, Table, group_thousands, median},
    system::{self, BpfStats},
    variants::{Variant, Variants},
};

pub const SECTION: SectionInfo = SectionInfo {
    id: "compat",
    title: "32-bit ABI: the programs on every system call",
    about: "A BTF raw tracepoint program (`raw_sys_exit`; `compat_sys_exit` in builds before the exit-reported \
            families) runs at the exit of every system call of the host, in containers or not, to catch the 32-bit \
            (ia32) failed execs and socket calls and the calls of the exit-reported families (modules, bpf, ptrace, \
            namespaces and mounts, either ABI); its first instructions look the call's number up in a bitmap of those \
            that matter and only for those read the task's `TS_COMPAT`. What that costs \
            is measured on loops of the cheapest system calls, made by `xtask bench-worker syscalls` on the host \
            or inside a `--network none` container (its cgroups and namespaces, joined like the storms' worker): \
            `getppid()`, a number the programs reject at once, and `munmap(1, 4096)` (EINVAL at once), x86-64's \
            number 11, which is ia32's `execve`, so the programs also read `TS_COMPAT`: the worst case for \
            native code; and `openat(AT_FDCWD, \"/\", O_RDONLY|O_DIRECTORY|O_CLOEXEC)` + `close(fd)`, one open \
            of a file no rule names per iteration: the file-access family inspects every open by a container \
            process at the open's exit (the fd's file, its inode, the set of sensitive files) within 100 ns more \
            per such open, and the container's loop is how that is measured (an open + close costs 10-20 \
            getppid, so that loop makes a tenth of the calls and lasts one to two times as long). Each round \
            runs the loops without an agent and with each daemon (with `DL_BENCH_BASELINE`, the previous build \
            too), the order reversed every other round; each run with a daemon starts a fresh agent with the \
            default configuration and waits for its \"container inventory loaded\" line. ns per call (per \
            open+close) = the loop's wall time / its iterations, timed with `kernel.bpf_stats_enabled` = 0; \
            the programs' own time comes from a second pass of the same loops with it on (for the open loop, \
            every program of the agent's too, not only those on every system call). Any attached syscall \
            tracepoint (both builds attach `syscalls:sys_enter_connect` and others) puts every system call of \
            every task on the kernel's tracepoint path: the baseline's ratio is that, the current daemon's adds \
            its compat programs.",
};

pub struct SyscallLoop {
    pub id: &'static str,
    pub label: &'static str,
    /// In a container (the worker joins it), or a plain host process.
    pub in_container: bool,
    /// Calls per loop (the open loop makes fewer iterations: [`Syscall::iterations`]).
    pub count: u64,
    pub rounds: usize,
    pub mode: Mode,
}

/// The compat programs' accounting over one loop, per iteration (a call; an open + close).
#[derive(Debug, Clone, Copy)]
struct Compat {
    /// Their time per iteration: programs × Δrun_time_ns / Δrun_cnt (their time per system
    /// call, averaged over all of the host's) × the iteration's system calls.
    ns_per_call: f64,
    /// Δrun_cnt / the loop's iterations: programs × system calls per iteration when nothing
    /// else made system calls meanwhile.
    runs_per_call: f64,
    /// The loop's own ns per iteration during this pass: above the timed one by what the
    /// accounting itself costs (its clock reads), part of which `run_time_ns` also counts.
    loop_ns_per_call: f64,
    /// Every program of the agent: Δrun_time_ns / the loop's iterations. For the open loop, where
    /// a family's own program at the open's exit (file-access) may run besides the compat ones;
    /// it also counts what other processes' events ran meanwhile (`all_runs_per_call` shows it).
    all_ns_per_call: f64,
    /// Every program of the agent: Δrun_cnt / the loop's iterations.
    all_runs_per_call: f64,
}

/// One run of the loops with one variant.
struct Run {
    /// ns per iteration, in the order of [`Syscall::ALL`].
    ns: Vec<f64>,
    /// The compat programs' accounting per loop, when the daemon has them.
    compat: Option<Vec<Compat>>,
    other_load: f64,
}

impl Scenario for SyscallLoop {
    fn id(&self) -> &'static str {
        self.id
    }

    fn name(&self) -> String {
        format!("eBPF, {}", self.label)
    }

    fn section(&self) -> SectionInfo {
        SECTION
    }

    fn run(&self, ctx: &Context) -> Result<Table> {
        // Off for the timed loops; each accounting pass turns it on for itself.
        let _stats_off = BpfStats::set(false)?;
        let container = if self.in_container { Some(StormContainer::start(self.id)?) } else { None };
        let join = container.as_ref().map(|c| c.pid);
        let variants = Variants::new(ctx);
        if self.mode == Mode::Full {
            for (_, v) in variants.daemons() {
                self.run_once(v, join).with_context(|| format!("warm-up run ({})", v.label))?;
            }
        }
        let mut rounds = Vec::new();
        for i in 0..self.rounds {
            let set = variants.round(i, |v| self.run_once(v, join))?;
            println!("  round {}: {}", i + 1, self.describe(&variants, &set));
            rounds.push(set);
        }
        drop(container);
        Ok(self.table(&variants, &rounds))
    }
}

impl SyscallLoop {
    fn run_once(&self, v: &Variant, join: Option<u32>) -> Result<Run> {
        // The worker joins first, so the agent's inventory finds it in its container.
        let mut worker = Worker::start(&ebpf::syscall_args(join))?;
        let run = v.daemon.as_ref().map(|d| AgentRun::start(d, self.id, None)).transpose()?;
        let agent = run.as_ref().map(|r| r.agent.pid());
        let before = Load::sample(agent)?;
        let worker_before = system::cpu_time(worker.pid())?;
        let mut ns = Vec::new();
        for call in Syscall::ALL {
            ns.push(self.pass(&mut worker, call)?.as_nanos() as f64 / self.iterations(call) as f64);
        }
        let worker_cpu = system::cpu_time(worker.pid())?.saturating_sub(worker_before);
        let other_load = Load::sample(agent)?.others_since(&before, worker_cpu);
        let compat = match agent {
            Some(pid) if ProbeTime::has_compat(pid)? => Some(self.accounted(&mut worker, pid)?),
            _ => None,
        };
        worker.wait()?;
        if let Some(r) = run {
            r.finish()?;
        }
        Ok(Run { ns, compat, other_load })
    }

    /// Iterations of the loop of `call`.
    fn iterations(&self, call: Syscall) -> u64 {
        call.iterations(self.count)
    }

    /// One loop of `call`; its wall time as the worker measured it.
    fn pass(&self, worker: &mut Worker, call: Syscall) -> Result<Duration> {
        let n = self.iterations(call);
        let r = worker.pass(&format!("{} {n}", call.name()))?;
        let failed = r.get("failed").copied().context("the worker's answer has no `failed`")?;
        if failed > 0 {
            bail!("{failed} of {n} {} did not {} as they must", call.call(), call.expected());
        }
        Ok(Duration::from_nanos(r.get("elapsed_ns").copied().context("the worker's answer has no `elapsed_ns`")?))
    }

    /// The loops again, with the kernel's accounting on: the programs' time per iteration.
    fn accounted(&self, worker: &mut Worker, agent: u32) -> Result<Vec<Compat>> {
        let _stats = BpfStats::set(true)?;
        let mut out = Vec::new();
        for call in Syscall::ALL {
            let before = ProbeTime::read(agent)?;
            let elapsed = self.pass(worker, call)?;
            let d = ProbeTime::read(agent)?.since(&before);
            let (ns, runs) = (d.compat_ns as f64, d.compat_runs as f64);
            let n = self.iterations(call) as f64;
            out.push(Compat {
                ns_per_call: if runs > 0.0 {
                    d.compat_programs as f64 * ns / runs * call.calls() as f64
                } else {
                    f64::NAN
                },
                runs_per_call: runs / n,
                loop_ns_per_call: elapsed.as_nanos() as f64 / n,
                all_ns_per_call: d.ns as f64 / n,
                all_runs_per_call: d.runs as f64 / n,
            });
        }
        Ok(out)
    }

    /// "getppid() 210.3 ns per call without, 251.0 with the baseline (×1.194), ...; other load ...".
    fn describe(&self, variants: &Variants, set: &[Run]) -> String {
        let mut parts = Vec::new();
        for (k, call) in Syscall::ALL.iter().enumerate() {
            let mut p = format!("{} {:.1} ns per {} without", call.call(), set[0].ns[k], call.per());
            for (j, v) in variants.daemons() {
                let r = &set[j];
                p.push_str(&format!(", {:.1} with the {} (×{:.3})", r.ns[k], v.label, r.ns[k] / set[0].ns[k]));
                if let Some(c) = r.compat.as_ref().and_then(|c| c.get(k)) {
                    p.push_str(&format!(" of which compat {:.1} ns ({:.2} runs)", c.ns_per_call, c.runs_per_call));
                    if matches!(
                        call,
                        Syscall::Open
                            | Syscall::OpenGrown
                            | Syscall::OpenMissing
                            | Syscall::UringNop
                            | Syscall::UringOpen
                    ) {
                        p.push_str(&format!(", all programs {:.1} ns", c.all_ns_per_call));
                    }
                }
            }
            parts.push(p);
        }
        let loads: Vec<String> = set.iter().map(|r| format!("{:.2}", r.other_load)).collect();
        format!("{}; other load {} CPUs", parts.join("; "), loads.join("/"))
    }

    fn table(&self, variants: &Variants, rounds: &[Vec<Run>]) -> Table {
        let compared = variants.compared();
        let who = |v: &Variant| if compared { v.label.to_owned() } else { "with the agent".to_owned() };
        let daemons: Vec<(usize, &Variant)> = variants.daemons().collect();
        let mut metrics = Vec::new();
        let mut ratio_notes = Vec::new();
        for (k, call) in Syscall::ALL.iter().enumerate() {
            let (c, per) = (call.call(), call.per());
            let mut m = Metric::new(&format!("{c}: ns per {per}, no agent"), "ns", 1, None);
            m.samples = rounds.iter().map(|s| s[0].ns[k]).collect();
            metrics.push(m);
            for &(j, v) in &daemons {
                let mut m = Metric::new(&format!("{c}: ns per {per}, {}", who(v)), "ns", 1, None);
                m.samples = rounds.iter().map(|s| s[j].ns[k]).collect();
                metrics.push(m);
            }
            for &(j, v) in &daemons {
                let mut m = Metric::new(&format!("{c}: × no agent, {}", who(v)), "×", 3, None);
                m.samples = rounds.iter().map(|s| s[j].ns[k] / s[0].ns[k]).collect();
                ratio_notes.push(format!(
                    "{c} {}: {}",
                    who(v),
                    m.samples.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
                ));
                metrics.push(m);
            }
            if let (true, Some(&(b, _)), Some(&(cur, _))) = (compared, daemons.first(), daemons.last()) {
                let mut m = Metric::new(&format!("{c}: current / baseline"), "×", 3, None);
                m.samples = rounds.iter().map(|s| s[cur].ns[k] / s[b].ns[k]).collect();
                let mut d = Metric::new(&format!("{c}: current − baseline"), "ns", 1, None);
                d.samples = rounds.iter().map(|s| s[cur].ns[k] - s[b].ns[k]).collect();
                metrics.extend([m, d]);
            }
            for &(j, v) in &daemons {
                let compat: Vec<Compat> =
                    rounds.iter().filter_map(|s| s[j].compat.as_ref().and_then(|c| c.get(k).copied())).collect();
                if compat.is_empty() {
                    continue;
                }
                let mut time =
                    Metric::new(&format!("{c}: compat programs in the kernel per {per}, {}", who(v)), "ns", 1, None);
                time.samples = compat.iter().map(|x| x.ns_per_call).collect();
                let mut runs = Metric::new(&format!("{c}: compat program runs per {per}, {}", who(v)), "runs", 2, None);
                runs.samples = compat.iter().map(|x| x.runs_per_call).collect();
                let mut on = Metric::new(&format!("{c}: ns per {per} with bpf_stats on, {}", who(v)), "ns", 1, None);
                on.samples = compat.iter().map(|x| x.loop_ns_per_call).collect();
                metrics.extend([time, runs, on]);
                if matches!(
                    call,
                    Syscall::Open | Syscall::OpenGrown | Syscall::OpenMissing | Syscall::UringNop | Syscall::UringOpen
                ) {
                    let mut all =
                        Metric::new(&format!("{c}: all programs in the kernel per {per}, {}", who(v)), "ns", 1, None);
                    all.samples = compat.iter().map(|x| x.all_ns_per_call).collect();
                    let mut runs =
                        Metric::new(&format!("{c}: all program runs per {per}, {}", who(v)), "runs", 2, None);
                    runs.samples = compat.iter().map(|x| x.all_runs_per_call).collect();
                    metrics.extend([all, runs]);
                }
            }
        }
        let mut notes = vec![format!(
            "{} calls per loop, except {} (and the same with a grown descriptor table): {} iterations, one open of `/` each (`openat(AT_FDCWD, \"/\", \
             O_RDONLY|O_DIRECTORY|O_CLOEXEC)` then `close(fd)`), a tenth as many since one costs 10-20 getppid(); \
             the first in a child the worker forks, whose descriptor table is the default (64 slots), as in a process \
             runc starts; the second in the worker, whose table has grown (256 slots, inherited), as in a server \
             that has had more than 64 descriptors open; {} as many again, each an `IORING_OP_OPENAT` of `/` \
             with the same flags, one request per `io_uring_enter`, then `close(fd)`, in the worker; \
             {} round{}, each {}{}; ratio to no agent of each round, in order: {}",
            group_thousands(&self.count.to_string()),
            Syscall::Open.call(),
            group_thousands(&self.iterations(Syscall::Open).to_string()),
            Syscall::UringOpen.call(),
            rounds.len(),
            if rounds.len() == 1 { "" } else { "s" },
            variants.describe_order(),
            if self.mode == Mode::Full { " (+1 unmeasured run per daemon first)" } else { "" },
            ratio_notes.join("; ")
        )];
        if compared {
            notes.push(format!("daemons: {} (`DL_BENCH_BASELINE`)", variants.binaries()));
        }
        notes.push(if self.in_container {
            "the loops: `xtask bench-worker syscalls` inside the container (cgroups and ipc/uts/net/pid/mnt \
             namespaces), joined before the agent starts"
                .to_owned()
        } else {
            "the loops: `xtask bench-worker syscalls` as a plain host process".to_owned()
        });
        for &(j, v) in &daemons {
            if rounds.iter().all(|s| s[j].compat.is_none()) {
                notes.push(format!(
                    "{}: no BPF program named `compat_sys_*` or `raw_sys_exit` (not in this build, or not attached)",
                    v.label
                ));
            }
        }
        notes.push(
            "compat programs in the kernel per call: over a second pass of the same loop with \
             `kernel.bpf_stats_enabled` = 1, programs × Δ`run_time_ns` / Δ`run_cnt` of the `compat_sys_*` programs \
             (/proc/<agent>/fdinfo; names from the kernel): their time per system call, averaged over every system \
             call of the host during the pass; runs per call = Δ`run_cnt` / the loop's calls, above the number of \
             programs by the system calls other processes made meanwhile. For the open loop, per open+close: that \
             time × its 2 system calls, and the runs of both; \"all programs\" = Δ`run_time_ns` (Δ`run_cnt`) of \
             every program of the agent / the iterations, which counts a family's own program at the open's exit \
             (file-access) and also what other processes' events ran meanwhile. `run_time_ns` spans the \
             program between two clock reads and so counts about one of them per run; \"ns per call with bpf_stats \
             on\" is that pass's loop, slower than the timed one by the accounting's two clock reads per run. The \
             cost a process sees is the timed loop's (ns per call, and current − baseline)"
                .into(),
        );
        let other: Vec<f64> = rounds.iter().flatten().map(|r| r.other_load).collect();
        let disturbed: Vec<usize> = rounds
            .iter()
            .enumerate()
            .filter(|(_, s)| s.iter().any(|r| r.other_load > DISTURBED))
            .map(|(i, _)| i + 1)
            .collect();
        notes.push(format!(
            "other processes (not the agent, the worker, or the benchmark) used {:.2} CPUs during the timed loops \
             (median; max {:.2}){}",
            median(&other),
            other.iter().copied().fold(0.0, f64::max),
            if disturbed.is_empty() {
                String::new()
            } else {
                format!(": rounds {disturbed:?} shared the machine with other work and are disturbed")
            }
        ));
        Table { caption: self.label.to_owned(), runs: rounds.len(), metrics, notes: ebpf::with_docker_note(notes) }
    }
}
