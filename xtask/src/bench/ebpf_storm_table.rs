//! The results table of a storm (`ebpf_storm`): one set of rows per daemon, each against the
//! no-agent run of its own round.
//!
//! With one daemon the rows and notes are those the storms have always had ("with the agent");
//! with `DL_BENCH_BASELINE` every per-daemon row appears once per daemon, named ", baseline" and
//! ", current" and listed next to each other, plus the current daemon's wall time over the
//! baseline's in the same round. The ratio target applies to the current daemon only; the
//! delivery targets (every exec or connect delivered, nothing for a host storm) to both.
use super::{
    ebpf::{self, Mode},
    ebpf_storm::{Kind, Round, Storm, ms, per_op_us},
    report::{Goal, Metric, Table, group_thousands, median},
    system,
    variants::{Variant, Variants},
};

/// Other load (CPUs) above which a round is flagged as disturbed.
pub const DISTURBED: f64 = 0.2;

/// One daemon's rows, and what its notes need.
struct PerDaemon {
    label: &'static str,
    with: Metric,
    ratio: Metric,
    cpu: Metric,
    /// Sleeps and preemptions per operation (`system::switch_rows`).
    switches: [Metric; 2],
    probe: Metric,
    runs: Metric,
    /// The compat programs' part of `probe` (empty for a build without them).
    compat: Metric,
    share: Metric,
    rate: Metric,
    delivered: Metric,
    host_events: Metric,
    lost: Vec<u64>,
    dropped: Vec<u64>,
    accepts: Vec<u64>,
    port0: Vec<u64>,
}

impl PerDaemon {
    fn new(storm: &Storm, v: &Variant, compared: bool, current: bool) -> PerDaemon {
        let goal = |g| (storm.mode == Mode::Full).then_some(g);
        let op = storm.op();
        let label = if compared { format!(", {}", v.label) } else { String::new() };
        let name = |base: &str| format!("{base}{label}");
        PerDaemon {
            label: v.label,
            with: Metric::new(&name("storm wall time with the agent"), "ms", 0, None),
            ratio: Metric::new(
                &name("with / without"),
                "×",
                3,
                goal(Goal::AtMost(storm.max_ratio)).filter(|_| current),
            ),
            cpu: Metric::new(&name(&format!("agent CPU per {op}")), "µs", 1, None),
            switches: system::switch_rows("agent ", op, &label, 2),
            probe: Metric::new(&name(&format!("in-kernel probe time per {op}")), "ns", 0, None),
            runs: Metric::new(&name(&format!("probe runs per {op}")), "runs", 1, None),
            compat: Metric::new(
                &name(&format!("of which compat programs (on every system call of the host) per {op}")),
                "ns",
                0,
                None,
            ),
            share: Metric::new(&name(&format!("probe time, % of an {op} without the agent")), "%", 2, None),
            rate: Metric::new(&name("storm events delivered per second"), "events/s", 0, None),
            delivered: Metric::new(
                &name(&format!("{op}s delivered as events")),
                "% of storm",
                2,
                goal(Goal::AtLeast(100.0)).filter(|_| storm.kind != Kind::ExecOnHost),
            ),
            host_events: Metric::new(&name("events for the host storm"), "events", 0, goal(Goal::AtMost(0.0))),
            lost: Vec::new(),
            dropped: Vec::new(),
            accepts: Vec::new(),
            port0: Vec::new(),
        }
    }

    fn add(&mut self, storm: &Storm, without: &Round, with: &Round) {
        let count = storm.count as f64;
        self.with.samples.push(ms(with.wall));
        self.ratio.samples.push(with.wall.as_secs_f64() / without.wall.as_secs_f64());
        let Some(a) = &with.agent else { return };
        self.cpu.samples.push(per_op_us(a.cpu, storm.count));
        system::push_switches(&mut self.switches, a.switches, count);
        let probe_per_op = a.probes.ns as f64 / count;
        self.probe.samples.push(probe_per_op);
        self.runs.samples.push(a.probes.runs as f64 / count);
        if a.probes.compat_runs > 0 {
            self.compat.samples.push(a.probes.compat_ns as f64 / count);
        }
        self.share.samples.push(100.0 * probe_per_op / (without.wall.as_secs_f64() * 1e9 / count));
        self.rate.samples.push(a.rate);
        self.delivered.samples.push(100.0 * a.delivered as f64 / count);
        self.host_events.samples.push(a.delivered as f64);
        self.lost.push(a.lost);
        self.dropped.push(a.dropped);
        self.accepts.push(a.accepts);
        self.port0.push(a.accepts_port0);
    }
}

/// `rounds[i][j]`: round `i`'s run of variant `j` of `variants` (0: no agent).
pub fn table(storm: &Storm, variants: &Variants, rounds: &[Vec<Round>]) -> Table {
    let op = storm.op();
    let compared = variants.compared();
    let daemons: Vec<(usize, &Variant)> = variants.daemons().collect();
    let mut per: Vec<PerDaemon> = daemons
        .iter()
        .enumerate()
        .map(|(k, (_, v))| PerDaemon::new(storm, v, compared, k + 1 == daemons.len()))
        .collect();
    let mut without = Metric::new("storm wall time without the agent", "ms", 0, None);
    let mut ops = Metric::new(&format!("{op}s per second without the agent"), "/s", 0, None);
    let mut versus = Metric::new("wall time, current / baseline", "×", 3, None);
    for set in rounds {
        let wo = &set[0];
        without.samples.push(ms(wo.wall));
        ops.samples.push(storm.count as f64 / wo.wall.as_secs_f64());
        for ((j, _), p) in daemons.iter().zip(&mut per) {
            p.add(storm, wo, &set[*j]);
        }
        if let (Some((b, _)), Some((c, _))) = (daemons.first(), daemons.last()) {
            versus.samples.push(set[*c].wall.as_secs_f64() / set[*b].wall.as_secs_f64());
        }
    }
    let rows = |f: fn(&PerDaemon) -> &Metric| per.iter().map(|p| f(p).clone()).collect::<Vec<_>>();
    let mut metrics = vec![without];
    metrics.extend(rows(|p| &p.with));
    metrics.extend(rows(|p| &p.ratio));
    if compared {
        metrics.push(versus);
    }
    metrics.extend(rows(|p| &p.cpu));
    metrics.extend(rows(|p| &p.switches[0]));
    metrics.extend(rows(|p| &p.switches[1]));
    // The sleeps at the machine's price of a wake-up.
    metrics.extend(per.iter().filter_map(|p| system::waking(&p.switches[0], 1)));
    metrics.extend(rows(|p| &p.probe));
    metrics.extend(per.iter().filter(|p| !p.compat.samples.is_empty()).map(|p| p.compat.clone()));
    metrics.extend(rows(|p| &p.runs));
    metrics.extend(rows(|p| &p.share));
    match storm.kind {
        Kind::ExecOnHost => metrics.extend(rows(|p| &p.host_events)),
        _ => {
            metrics.extend(rows(|p| &p.rate));
            metrics.extend(rows(|p| &p.delivered));
        }
    }
    metrics.push(ops);
    Table { caption: storm.label.to_owned(), runs: rounds.len(), metrics, notes: notes(storm, variants, rounds, &per) }
}

fn notes(storm: &Storm, variants: &Variants, rounds: &[Vec<Round>], per: &[PerDaemon]) -> Vec<String> {
    let op = storm.op();
    let compared = variants.compared();
    let count = group_thousands(&storm.count.to_string());
    let ratios = |p: &PerDaemon| p.ratio.samples.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ");
    let mut notes = vec![if compared {
        format!(
            "{count} {op}s per round, {} round{}, each {} (+1 warm-up round per daemon); with / without ratio of \
             each round, in order: {}",
            rounds.len(),
            if rounds.len() == 1 { "" } else { "s" },
            variants.describe_order(),
            per.iter().map(|p| format!("{}: {}", p.label, ratios(p))).collect::<Vec<_>>().join("; ")
        )
    } else {
        format!(
            "{count} {op}s per round, {} pairs of rounds (+1 warm-up); ratio of each pair, in order: {}",
            rounds.len(),
            per.first().map(ratios).unwrap_or_default()
        )
    }];
    if compared {
        notes
            .push(format!("daemons: {} (`DL_BENCH_BASELINE`); both get the same delivery checks", variants.binaries()));
    }
    notes.extend(kind_notes(storm, per, compared));
    // "baseline [1, 2]; current [0, 0]", or "[0, 0]" with one daemon.
    let per_round = |f: fn(&PerDaemon) -> &Vec<u64>| {
        per.iter()
            .map(|p| if compared { format!("{} {:?}", p.label, f(p)) } else { format!("{:?}", f(p)) })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if per.iter().any(|p| p.lost.iter().chain(&p.dropped).any(|&n| n > 0)) {
        notes.push(format!(
            "not every event was delivered, and the agent counted and reported every one missing: records lost in \
             the kernel (ring buffer full) per round {}; frames dropped by its output buffer (`buffer_bytes`, 16 MiB, \
             oldest first) per round {}. Why the output buffer overflows: {}",
            per_round(|p| &p.lost),
            per_round(|p| &p.dropped),
            ebpf::OUTPUT_OVERFLOW
        ));
    }
    notes.push(format!(
        "in-kernel probe time: the `run_time_ns` of the agent's BPF programs (/proc/<agent>/fdinfo, with \
         `kernel.bpf_stats_enabled` = 1 during this scenario, which itself adds two clock reads per program run) \
         over the storm, per {op}: the part of the slow-down spent in the kernel on the storm's own CPU, free of \
         the wall-time noise"
    ));
    if per.iter().any(|p| !p.compat.samples.is_empty()) {
        notes.push(format!(
            "the compat programs (`compat_sys_*`, the 32-bit ABI's) run on every system call \
             of the host, so their part of the probe time (and of the runs) counts every process's system calls \
             during the storm, the agent's own included, not only the storm's; per system call see the system \
             call loops (section \"32-bit ABI\"), per {op} this row"
        ));
    }
    let other: Vec<f64> = rounds.iter().flatten().map(|r| r.other_load).collect();
    let disturbed: Vec<usize> = rounds
        .iter()
        .enumerate()
        .filter(|(_, set)| set.iter().any(|r| r.other_load > DISTURBED))
        .map(|(i, _)| i + 1)
        .collect();
    notes.push(format!(
        "other processes (not the agent, the worker and its children, or the benchmark) used {:.2} CPUs during the \
         rounds (median; max {:.2}){}",
        median(&other),
        other.iter().copied().fold(0.0, f64::max),
        if disturbed.is_empty() {
            String::new()
        } else {
            format!(
                ": {} {disturbed:?} shared the machine with other work and are disturbed",
                if compared { "rounds" } else { "pairs" }
            )
        }
    ));
    ebpf::with_docker_note(notes)
}

/// What the storm is and, for connects, what the accepts showed.
fn kind_notes(storm: &Storm, per: &[PerDaemon], compared: bool) -> Vec<String> {
    match storm.kind {
        Kind::ExecInContainer => vec![
            "the storm: fork + `execve(\"/bin/true\", [\"/bin/true\", \"mark-<round>\"])` + `waitpid`, one at a time, \
             by `xtask bench-worker` inside the container (cgroups and ipc/uts/net/pid/mnt namespaces); delivered = \
             exec events with the round's marker and the container's id, each pid once"
                .into(),
        ],
        Kind::ExecOnHost => vec![
            "the storm: the same worker as a plain host process (host `/bin/true`, coreutils); the agent runs with \
             its default configuration (`trace_host` off), and every round checks it sent no event with the \
             round's marker"
                .into(),
        ],
        Kind::ConnectInContainer => {
            let med = |v: &[u64]| median(&v.iter().map(|&a| a as f64).collect::<Vec<_>>());
            let any_port0 = per.iter().any(|p| med(&p.port0) > 0.0);
            let counts: Vec<String> = per
                .iter()
                .map(|p| {
                    let who = if compared { format!("{} ", p.label) } else { String::new() };
                    format!(
                        "{who}{:.0} (median), of which {:.0} show `destination.port` 0",
                        med(&p.accepts),
                        med(&p.port0)
                    )
                })
                .collect();
            vec![
                "the storm: TCP connects from the worker inside the container (its cgroups and network namespace) \
                 to a listener of its own on 127.0.0.1, accepted and closed by a second thread of the worker; the \
                 connecting side closes with SO_LINGER 0 (a reset: no TIME_WAIT). Each connect is two events for \
                 the agent (connect, accept), and events/s counts both; agent CPU is per connect, i.e. per two \
                 events; delivered = connect events to the listener's port with the container's id"
                    .into(),
                format!(
                    "accept events per round: {}{}",
                    counts.join("; "),
                    if any_port0 {
                        ": when the client's reset arrives before `accept()` returns, the kernel has already \
                         unhashed the accepted socket (its local port reads 0) by the time the probe reads it at \
                         `sys_exit_accept4` (checked separately: with a graceful close instead of a reset, no accept \
                         event shows port 0)"
                    } else {
                        ""
                    }
                ),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use super::*;
    use crate::bench::{Context, ebpf::ProbeTime, ebpf_storm::AgentSide};

    fn storm() -> Storm {
        Storm {
            id: "exec-storm-container",
            label: "exec storm",
            kind: Kind::ExecInContainer,
            count: 100,
            pairs: 2,
            max_ratio: 1.03,
            mode: Mode::Full,
        }
    }

    fn round(ms: u64, compat_runs: u64) -> Round {
        Round {
            wall: Duration::from_millis(ms),
            other_load: 0.0,
            agent: (ms != 100).then_some(AgentSide {
                cpu: Duration::from_millis(1),
                switches: system::Switches { slept: 40, preempted: 10 },
                probes: ProbeTime {
                    ns: 500_000,
                    runs: 500,
                    compat_ns: 1000 * compat_runs,
                    compat_runs,
                    compat_programs: 1,
                },
                delivered: 100,
                accepts: 0,
                accepts_port0: 0,
                rate: 1000.0,
                lost: 0,
                dropped: 0,
            }),
        }
    }

    fn names(t: &Table) -> Vec<&str> {
        t.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn one_daemon_keeps_the_rows_it_always_had() {
        let v = Variants::new(&Context { daemon: PathBuf::from("/new"), ..Context::default() });
        let rounds = vec![vec![round(100, 0), round(103, 0)], vec![round(100, 0), round(101, 0)]];
        let t = table(&storm(), &v, &rounds);
        // The wake-ups at this machine's price, when it could be measured.
        let waking = "agent sleeping and waking per exec, sleeps × a wake-up's cost";
        match system::costs() {
            Some(c) => {
                let row = t.metrics.iter().find(|m| m.name == waking).expect("waking row");
                let us = c.wake_up.as_secs_f64() * 1e6;
                assert!(row.samples.len() == 2 && row.samples.iter().all(|s| (s - 0.4 * us).abs() < 1e-9), "{row:?}");
            }
            None => assert!(t.metrics.iter().all(|m| m.name != waking)),
        }
        assert_eq!(
            names(&t).into_iter().filter(|n| *n != waking).collect::<Vec<_>>(),
            [
                "storm wall time without the agent",
                "storm wall time with the agent",
                "with / without",
                "agent CPU per exec",
                "agent sleeps per exec",
                "agent preemptions per exec",
                "in-kernel probe time per exec",
                "probe runs per exec",
                "probe time, % of an exec without the agent",
                "storm events delivered per second",
                "execs delivered as events",
                "execs per second without the agent",
            ]
        );
        assert!(t.notes[0].contains("2 pairs of rounds (+1 warm-up); ratio of each pair, in order: 1.030, 1.010"));
        let row = |name: &str| t.metrics.iter().find(|m| m.name == name).map(|m| m.samples.clone());
        assert_eq!(row("agent sleeps per exec"), Some(vec![0.4, 0.4]));
        assert_eq!(row("agent preemptions per exec"), Some(vec![0.1, 0.1]));
    }

    #[test]
    fn two_daemons_side_by_side() {
        let ctx =
            Context { daemon: PathBuf::from("/new"), baseline: Some(PathBuf::from("/old")), ..Context::default() };
        let v = Variants::new(&ctx);
        let rounds = vec![vec![round(100, 0), round(102, 0), round(104, 50)]];
        let t = table(&storm(), &v, &rounds);
        let n = names(&t);
        assert_eq!(
            &n[..6],
            [
                "storm wall time without the agent",
                "storm wall time with the agent, baseline",
                "storm wall time with the agent, current",
                "with / without, baseline",
                "with / without, current",
                "wall time, current / baseline",
            ]
        );
        // The compat share only for the build that has the programs.
        assert!(n.contains(&"of which compat programs (on every system call of the host) per exec, current"));
        assert!(!n.iter().any(|x| x.starts_with("of which") && x.ends_with("baseline")));
        // Each daemon's sleeps at the machine's price, named like its other rows.
        if system::costs().is_some() {
            for who in ["baseline", "current"] {
                let row = format!("agent sleeping and waking per exec, sleeps × a wake-up's cost, {who}");
                assert!(n.contains(&row.as_str()), "no row {row}");
            }
        }
        // The ratio target is the current daemon's only.
        let goal = |name: &str| t.metrics.iter().find(|m| m.name == name).and_then(|m| m.goal);
        assert!(goal("with / without, baseline").is_none());
        assert!(goal("with / without, current").is_some());
        let versus = t.metrics.iter().find(|m| m.name == "wall time, current / baseline").map(|m| m.median());
        assert!(versus.is_some_and(|r| (r - 104.0 / 102.0).abs() < 1e-9));
    }
}
