//! Loss accounting under the heaviest storm this machine makes: nothing may be lost silently.
//!
//! Several storms at once, each in its own `--network none` container: `exec_workers` exec
//! storms (fork + exec of `/bin/true lossmark-<n>`) and `connect_workers` connect storms
//! (unpaced TCP connects on the container's loopback), optionally with a small ring buffer
//! (`ebpf.ring_buffer_bytes`) so the kernel side must drop records. Then, from the agent's
//! final log line on SIGTERM (`ebpf_records=R ebpf_lost=L ebpf_seq_gaps=G ebpf_events=E`) and
//! from the frames the sink received, the run fails unless:
//!
//! - `L == G`: the kernel's loss counters and the per-CPU sequence gaps agree, i.e. records
//!   received + records counted lost == records generated (the kernel numbered R + G);
//! - for each storm, its events delivered + `L` + the frames the agent's bounded output buffer
//!   dropped (`dropped_buffer_full`, oldest first, counted; see [`ebpf::OUTPUT_OVERFLOW`]) ≥
//!   the execs or connects it made (a lost record can be any kind: fork, exit, exec, connect,
//!   accept);
//! - the `output_buffer_full` loss events sum to `dropped_buffer_full`, and the process and
//!   socket events the sink received (loss reports aside) are at most `E` and at least `E`
//!   minus the dropped frames (which may also be Docker events or loss reports);
//! - the `docker_listener.loss.events` of the kernel loss events (`event.action` =
//!   `events-lost`, reason `ebpf`) sum to `L`: every loss was reported to Wazuh. The one
//!   exception is not an error of the benchmark but a finding it reports (a MISSED row): a
//!   kernel loss report is an ordinary frame in the output buffer, and an overflow of that
//!   buffer can drop it;
//! - and from the records' own sequence numbers (`event.sequence`, per CPU `docker_listener.cpu`,
//!   numbered from 0 by each CPU at load): no record is delivered twice (each (CPU, sequence)
//!   once), and the numbers the events carry never go beyond what the agent says the kernel
//!   numbered: on each CPU the highest seen + 1, summed over the CPUs, ≤ R + L. An agent that
//!   under-counted its losses (or the kernel's records) would deliver numbers past that. The
//!   numbers missing among those seen are shown (lost records, and records that are not events
//!   of their own: forks, exits, threads); they cannot be checked against L one by one, since
//!   the records that are not events leave the same holes.
use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    Context, Scenario, SectionInfo,
    ebpf::{self, AgentRun, Containers, Mode, Worker},
    report::{Goal, Metric, Table, group_thousands},
};

pub struct LossStorm {
    pub id: &'static str,
    pub label: &'static str,
    /// `ebpf.ring_buffer_bytes`; the default (4 MiB) when `None`.
    pub ring_buffer_bytes: Option<u64>,
    pub exec_workers: usize,
    pub execs: u64,
    pub connect_workers: usize,
    pub connects: u64,
    pub mode: Mode,
}

impl Scenario for LossStorm {
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
        let containers = Containers::new(self.id)?;
        let n = self.exec_workers + self.connect_workers;
        let started = containers.start(n, 8, &["sleep", "3600"])?;
        let pids = started.iter().map(|s| ebpf::init_pid(&s.id)).collect::<Result<Vec<_>>>()?;
        let config = self.ring_buffer_bytes.map(|b| format!("{{\"ebpf\": {{\"ring_buffer_bytes\": {b}}}}}"));

        // Every storm at once; the workers join their containers before the agent starts.
        let markers: Vec<String> =
            (0..self.exec_workers).map(|i| format!("lossmark-{}-{i}", std::process::id())).collect();
        let mut pending = Vec::new();
        for (i, pid) in pids.iter().enumerate() {
            let args = if i < self.exec_workers {
                ebpf::exec_args(Some(*pid), self.execs, &markers[i])
            } else {
                ebpf::connect_args(*pid, self.connects, None)
            };
            pending.push(Worker::start(&args)?);
        }
        let run = AgentRun::start(ctx, self.id, config.as_deref())?;
        for w in &mut pending {
            w.go()?;
        }
        let workers = pending.into_iter().map(Worker::wait).collect::<Result<Vec<_>>>()?;
        run.sink.wait_idle(Duration::from_millis(500), Duration::from_secs(60));
        let (stats, frames) = run.finish()?;
        drop(containers);

        let stat =
            |k: &str| stats.get(k).copied().with_context(|| format!("no {k} in the agent's final line: {stats:?}"));
        let (records, lost, gaps, events) =
            (stat("ebpf_records")?, stat("ebpf_lost")?, stat("ebpf_seq_gaps")?, stat("ebpf_events")?);
        let received = ebpf::parse_frames(&frames)?;
        let reported: u64 = received.events.iter().filter_map(|(e, _)| e.ebpf_lost()).sum();
        let loss_events = received.events.iter().filter(|(e, _)| e.ebpf_lost().is_some()).count();
        let dropped = stats.get("dropped_buffer_full").copied().unwrap_or(0);
        let output_reported: u64 = received.events.iter().filter_map(|(e, _)| e.output_lost()).sum();
        let output_reports = received.events.iter().filter(|(e, _)| e.output_lost().is_some()).count() as u64;
        // Process and socket events received (loss reports aside: whether the agent counts its
        // kernel loss reports in `ebpf_events` has changed between versions).
        let emitted_received = received.events.len() as u64 - output_reports - loss_events as u64;

        // What each storm made and got delivered.
        let mut made = BTreeMap::from([("exec", 0u64), ("connect", 0u64)]);
        let mut delivered = BTreeMap::from([("exec", 0u64), ("connect", 0u64)]);
        let mut problems = Vec::new();
        let mut longest = Duration::ZERO;
        for (i, (w, s)) in workers.iter().zip(&started).enumerate() {
            longest = longest.max(w.elapsed()?);
            let ok = w.get("count")? - w.get("failed")?;
            let got = if i < self.exec_workers {
                *made.entry("exec").or_default() += ok;
                let n = received
                    .events
                    .iter()
                    .filter(|(e, _)| e.action() == "exec" && e.has_arg(&markers[i]) && e.container_id() == s.id)
                    .count() as u64;
                *delivered.entry("exec").or_default() += n;
                n
            } else {
                *made.entry("connect").or_default() += ok;
                let port = w.get("port")?;
                let n = received
                    .events
                    .iter()
                    .filter(|(e, _)| {
                        e.action() == "connect"
                            && e.container_id() == s.id
                            && e.destination.as_ref().and_then(|d| d.port).map(u64::from) == Some(port)
                    })
                    .count() as u64;
                *delivered.entry("connect").or_default() += n;
                n
            };
            if got + lost + dropped < ok {
                problems.push(format!(
                    "storm {i} made {ok}, {got} delivered, only {lost} records lost in the kernel and {dropped} frames \
                     dropped by the output buffer reported"
                ));
            }
            if got > ok {
                problems.push(format!("storm {i} made {ok}, {got} delivered: duplicates"));
            }
        }
        // The records' own sequence numbers.
        let mut seen = HashSet::new();
        let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
        let mut duplicates = 0u64;
        for id in received.events.iter().filter_map(|(e, _)| e.record_id()) {
            if !seen.insert(id) {
                duplicates += 1;
            }
            let top = highest.entry(id.0).or_default();
            *top = (*top).max(id.1 + 1);
        }
        let spanned: u64 = highest.values().sum();
        let missing = spanned - seen.len() as u64;
        if duplicates > 0 {
            problems.push(format!("{duplicates} records delivered twice (the same CPU and sequence number)"));
        }
        if spanned > records + lost {
            problems.push(format!(
                "the events carry sequence numbers up to {spanned} records (summed over {} CPUs), but the agent \
                 counted {records} received + {lost} lost",
                highest.len()
            ));
        }
        if seen.is_empty() {
            problems.push("no event carries a sequence number (event.sequence, docker_listener.cpu)".to_owned());
        }
        if lost != gaps {
            problems.push(format!(
                "ebpf_lost={lost} but ebpf_seq_gaps={gaps}: the loss counters and the sequence numbers disagree"
            ));
        }
        // A kernel loss report is an ordinary frame in the agent's output buffer: when that buffer
        // overflows, the report can be among the frames it drops (counted and reported as output
        // drops), and the kernel losses it carried are then never reported on their own. Shown
        // in the table; any other mismatch is an error.
        let unreported = lost.saturating_sub(reported);
        let evicted_report = unreported > 0 && dropped > 0;
        if reported > lost || (unreported > 0 && !evicted_report) {
            problems.push(format!(
                "the loss events report {reported} lost records ({loss_events} events), the agent counted {lost}"
            ));
        }
        if emitted_received > events || emitted_received + loss_events as u64 + dropped < events {
            problems.push(format!(
                "the agent emitted {events} events and dropped {dropped} frames, the sink received {emitted_received}"
            ));
        }
        if output_reported != dropped {
            problems.push(format!(
                "the agent's output buffer dropped {dropped} frames, its loss events report {output_reported}"
            ));
        }
        println!(
            "  {} execs + {} connects in {:.1} s: records R={records} lost L={lost} gaps G={gaps}, {} loss events \
             reporting {reported}; output buffer dropped {dropped} (reported {output_reported}); delivered {} execs, \
             {} connects",
            made["exec"],
            made["connect"],
            longest.as_secs_f64(),
            loss_events,
            delivered["exec"],
            delivered["connect"]
        );
        if !problems.is_empty() {
            bail!("loss accounting is wrong:\n  {}", problems.join("\n  "));
        }

        if evicted_report {
            println!(
                "  warning: {unreported} of the {lost} records lost in the kernel were never reported in a loss event: \
                 the report was dropped by the overflowing output buffer"
            );
        }
        let one = |name: &str, unit: &'static str, decimals, v: f64| {
            let mut m = Metric::new(name, unit, decimals, None);
            m.samples.push(v);
            m
        };
        let goal = (self.mode == Mode::Full).then_some(Goal::AtMost(0.0));
        let storm_ops = (made["exec"] + made["connect"]) as f64;
        let metrics = vec![
            one("storm operations made (execs + connects)", "ops", 0, storm_ops),
            one("storm rate", "ops/s", 0, storm_ops / longest.as_secs_f64()),
            one("kernel records generated (R + G)", "records", 0, (records + gaps) as f64),
            one("records received (R)", "records", 0, records as f64),
            one("records counted lost (L)", "records", 0, lost as f64),
            one("sequence gaps (G)", "records", 0, gaps as f64),
            one("distinct sequence numbers in the events", "records", 0, seen.len() as f64),
            one("highest sequence number + 1, summed over CPUs (≤ R + L)", "records", 0, spanned as f64),
            one("sequence numbers missing below it (lost, or not events: forks, exits)", "records", 0, missing as f64),
            one("lost, as the loss events report", "records", 0, reported as f64),
            {
                let mut m =
                    Metric::new("kernel losses missing from the loss events (L − reported)", "records", 0, goal);
                m.samples.push(unreported as f64);
                m
            },
            one("frames dropped by the agent's output buffer", "frames", 0, dropped as f64),
            one("execs delivered as events", "% of execs", 2, pct(delivered["exec"], made["exec"])),
            one("connects delivered as events", "% of connects", 2, pct(delivered["connect"], made["connect"])),
        ];
        let notes = vec![
            format!(
                "{} exec storms of {} execs and {} connect storms of {} connects at once, each in its own container; \
                 agent config {}",
                self.exec_workers,
                group_thousands(&self.execs.to_string()),
                self.connect_workers,
                group_thousands(&self.connects.to_string()),
                config.map_or("default (ring buffer 4 MiB)".to_owned(), |c| format!("`{c}`"))
            ),
            format!(
                "checked: L == G ({lost} == {gaps}), so received + lost == generated ({records} + {lost} == {}); every \
                 storm's events delivered + L + output-buffer drops ≥ what it made; the output-buffer drops \
                 ({dropped}) are all reported ({output_reports} loss events); the sink got {emitted_received} process \
                 and socket events of the {events} events the agent counted as emitted; the {loss_events} kernel loss \
                 events report {reported} of the L = {lost} records lost; from the records' own sequence numbers: \
                 {} events, each (CPU, sequence) once, numbered up to {spanned} ≤ R + L = {} on {} CPUs",
                records + gaps,
                seen.len(),
                records + lost,
                highest.len()
            ),
        ];
        let mut notes = notes;
        if dropped > 0 {
            notes.push(format!(
                "the agent's output buffer (`buffer_bytes`, 16 MiB) overflowed and dropped {dropped} frames, oldest \
                 first, counted and reported{}. Why it overflows: {}",
                if evicted_report {
                    format!(
                        "; a kernel loss report was among the frames dropped, so {unreported} of the L = {lost} \
                         kernel-side losses never reached Wazuh as such (only inside the output-drop count)"
                    )
                } else {
                    String::new()
                },
                ebpf::OUTPUT_OVERFLOW
            ));
        }
        Ok(Table { caption: self.label.to_owned(), runs: 1, metrics, notes: ebpf::with_docker_note(notes) })
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 { f64::NAN } else { 100.0 * a as f64 / b as f64 }
}
