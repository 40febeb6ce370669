//! What the metrics say: every counter of [`Stats`] and the output buffer's state, read at
//! scrape time by a `prometheus-client` collector and written in the Prometheus text format
//! (0.0.4). The names are the agent's documented ones (`docker_listener_*`, README
//! "Monitoring"); the library writes the `_total` of a counter, the HELP and TYPE lines and the
//! escaping of label values.
use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{
    sink::Spool,
    stats::{DOCKER_TYPES, EBPF_ACTIONS, Stats},
};

/// The `Content-Type` of what [`Exposition::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry the endpoints render: built once, read at each scrape.
#[derive(Debug)]
pub struct Exposition(Registry);

impl Exposition {
    pub fn new(stats: Arc<Stats>, spool: Arc<Spool>) -> Self {
        let mut registry = Registry::with_prefix("docker_listener");
        registry.register_collector(Box::new(Agent { stats, spool }));
        Exposition(registry)
    }

    /// The metrics, in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String fails only if a collector does, and ours does not.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0) {
            tracing::warn!(error = %e, "metrics: rendering failed");
        }
        out
    }
}

#[derive(Debug)]
struct Agent {
    stats: Arc<Stats>,
    spool: Arc<Spool>,
}

type Labels<'a> = &'a [(&'a str, &'a str)];

/// One metric family: its name without the prefix (and, for a counter, without `_total`).
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    kind: MetricType,
    help: &str,
    samples: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    if let [(labels, v)] = samples
        && labels.is_empty()
    {
        return match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(m),
            _ => ConstGauge::new(*v).encode(m),
        };
    }
    for (labels, v) in samples {
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(m.encode_family(labels)?)?,
            _ => ConstGauge::new(*v).encode(m.encode_family(labels)?)?,
        }
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    family(enc, name, MetricType::Counter, help, &[(&[], v)])
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    family(enc, name, MetricType::Gauge, help, &[(&[], v)])
}

impl Collector for Agent {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (s, g) = (&*self.stats, Stats::get);
        let e = &mut enc;

        let by_type: Vec<[(&str, &str); 2]> =
            DOCKER_TYPES.iter().map(|t| [("source", "docker"), ("type", *t)]).collect();
        let mut events_in: Vec<(Labels, u64)> =
            by_type.iter().zip(&s.docker_by_type).map(|(l, c)| (&l[..], g(c))).collect();
        events_in.push((&[("source", "ebpf"), ("type", "record")], g(&s.ebpf_records)));
        family(
            e,
            "events_in",
            MetricType::Counter,
            "Events received, by source and type (eBPF: kernel records).",
            &events_in,
        )?;
        let by_action: Vec<[(&str, &str); 2]> =
            EBPF_ACTIONS.iter().map(|a| [("source", "ebpf"), ("type", *a)]).collect();
        let mut events_out: Vec<(Labels, u64)> =
            vec![(&[("source", "docker"), ("type", "all")], g(&s.frames_out_docker))];
        events_out.extend(by_action.iter().zip(&s.ebpf_by_action).map(|(l, c)| (&l[..], g(c))));
        family(
            e,
            "events_out",
            MetricType::Counter,
            "Events built for the output, by source and type (Docker: delivered).",
            &events_out,
        )?;
        counter(e, "frames_out", "Datagrams (or lines) written to the output.", g(&s.frames_out))?;
        counter(e, "bytes_out", "Bytes written to the output.", g(&s.bytes_out))?;
        family(
            e,
            "dropped",
            MetricType::Counter,
            "Events lost, by reason. Each is also logged; output and eBPF losses are reported in loss events.",
            &[
                (&[("reason", "output_buffer_full")], g(&s.dropped_buffer_full)),
                (&[("reason", "output_rejected")], g(&s.dropped_rejected)),
                (&[("reason", "output_write_failed")], g(&s.dropped_output_write_failed)),
                (&[("reason", "output_unwritten_at_shutdown")], g(&s.dropped_unwritten_at_shutdown)),
                (&[("reason", "left_in_buffer_at_shutdown")], g(&s.dropped_left_at_shutdown)),
                (&[("reason", "ebpf_kernel")], g(&s.ebpf_lost)),
                (&[("reason", "ebpf_undecodable")], g(&s.ebpf_undecodable)),
                (&[("reason", "docker_malformed")], g(&s.docker_malformed)),
                (&[("reason", "docker_oversized")], g(&s.docker_oversized_raw)),
                (&[("reason", "docker_upstream_gap")], g(&s.docker_upstream_gaps)),
                (&[("reason", "oversized")], g(&s.events_lost_oversized)),
            ],
        )?;
        counter(
            e,
            "ebpf_cgroups_rejected",
            "Cgroups shaped like a container's that Docker does not know: not traced.",
            g(&s.ebpf_cgroups_rejected),
        )?;
        counter(
            e,
            "ebpf_not_container",
            "Records from those cgroups before Docker answered: not container activity, not sent.",
            g(&s.ebpf_not_container),
        )?;
        counter(
            e,
            "ebpf_runtime_setup",
            "Namespace, mount and other calls of the runtime (runc) setting a container up: not sent.",
            g(&s.ebpf_runtime_setup),
        )?;
        counter(
            e,
            "ebpf_file_unmatched",
            "File-access records that are no sensitive file (an inode number of another filesystem, a file \
             created beside a sensitive one, a change by name of another file): not sent.",
            g(&s.ebpf_file_unmatched),
        )?;
        counter(
            e,
            "ebpf_sensitive_map_full",
            "Sensitive files the kernel's map had no room for: opens of them are not reported (each time logged).",
            g(&s.ebpf_sensitive_map_full),
        )?;
        counter(
            e,
            "ebpf_sensitive_left_out",
            "Sensitive files and directories left out of a container's set for want of room (its share of the \
             kernel's map): not watched by inode until a refresh takes them (logged; counted again at each \
             refresh that leaves them out).",
            g(&s.ebpf_sensitive_left_out),
        )?;
        counter(
            e,
            "containers_untraced",
            "Running containers whose cgroup could not be found: their processes are not traced (each is logged).",
            g(&s.containers_untraced),
        )?;
        counter(
            e,
            "containers_traced_late",
            "Containers whose cgroup was found only after they started: traced from then on (each is logged).",
            g(&s.containers_traced_late),
        )?;
        counter(e, "filtered", "Docker events not forwarded because of ignore_actions.", g(&s.docker_events_filtered))?;
        counter(
            e,
            "held_back",
            "Exec, fork, exit, socket and network records held back in the kernel by a container's budget \
             (ebpf.budget_per_second): each container's are reported in an events-held-back event.",
            g(&s.ebpf_held_back),
        )?;
        counter(
            e,
            "repeats_folded",
            "Process and socket events not sent because an identical one was sent within repeat_window \
             (each window's count goes out in an events-repeated event).",
            g(&s.repeats_folded),
        )?;
        counter(e, "repeat_summaries", "events-repeated summaries sent.", g(&s.repeat_summaries))?;
        family(
            e,
            "healthchecks",
            MetricType::Counter,
            "Healthcheck runs by what became of them (`healthchecks`): folded into a summary (or dropped), \
             failed (forwarded), unrecognised (the check's command, not recorded by dockerd as a check: \
             forwarded), undecided (its container removed before dockerd's record was read: forwarded), \
             before_known (a session while dockerd was being asked about the container's healthcheck: \
             forwarded, check or not).",
            &[
                (&[("result", "folded")], g(&s.health_checks_folded)),
                (&[("result", "failed")], g(&s.health_checks_failed)),
                (&[("result", "unrecognised")], g(&s.health_sessions_unrecognised)),
                (&[("result", "undecided")], g(&s.health_sessions_undecided)),
                (&[("result", "before_known")], g(&s.health_sessions_before_known)),
            ],
        )?;
        counter(
            e,
            "healthcheck_frames_folded",
            "Events of recognised passing healthchecks not sent one by one (Docker's and their processes').",
            g(&s.health_frames_folded),
        )?;
        counter(e, "healthcheck_summaries", "Healthcheck summaries sent.", g(&s.health_summaries))?;
        counter(
            e,
            "duplicates_dropped",
            "Replayed Docker events dropped at a resume boundary.",
            g(&s.docker_events_duplicate),
        )?;
        counter(e, "truncated", "Events shrunk to max_event_size and marked truncated.", g(&s.events_truncated))?;
        counter(
            e,
            "docker_partial_events",
            "Docker streams that ended in the middle of an event (the event is replayed after reconnecting).",
            g(&s.docker_partial_at_eof),
        )?;
        gauge(e, "docker_connected", "1 while the Docker event stream is open.", g(&s.docker_connected))?;
        counter(
            e,
            "docker_reconnects",
            "Reconnections to the Docker event stream after the first connection.",
            g(&s.docker_connects).saturating_sub(1),
        )?;
        counter(
            e,
            "queue_send_errors",
            "Failed sends to the output (queue missing, not bound, full).",
            g(&s.send_errors),
        )?;
        gauge(
            e,
            "processes_tracked",
            "Processes in the process table (traced containers' processes; those whose exit record was lost \
             until a sweep finds them gone).",
            g(&s.procs_tracked),
        )?;
        counter(
            e,
            "processes_swept",
            "Process-table entries dropped by a sweep: their exit record was lost.",
            g(&s.procs_swept),
        )?;
        let (frames, bytes) = self.spool.len();
        gauge(e, "buffer_frames", "Frames waiting for the output.", frames as u64)?;
        gauge(e, "buffer_bytes", "Bytes waiting for the output.", bytes as u64)?;
        gauge(e, "buffer_capacity_bytes", "The buffer's limit (buffer_bytes).", self.spool.capacity() as u64)?;
        let (rss, cpu_ms) = self_usage();
        gauge(e, "resident_memory_bytes", "Resident set size of the agent.", rss)?;
        let cpu = ConstCounter::new(cpu_ms as f64 / 1000.0);
        cpu.encode(e.encode_descriptor(
            "cpu_seconds",
            "CPU time used by the agent (user + system).",
            None,
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

/// (VmRSS in bytes, utime + stime in ms) of this process.
fn self_usage() -> (u64, u64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (rss, ticks * 1000 / tck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_with_its_documented_name() {
        let stats = Arc::new(Stats::default());
        stats.count_docker_type("network");
        stats.count_docker_type("weird");
        stats.count_ebpf_action("exec");
        Stats::add(&stats.dropped_buffer_full, 3);
        Stats::add(&stats.dropped_output_write_failed, 5);
        Stats::add(&stats.dropped_unwritten_at_shutdown, 2);
        Stats::add(&stats.dropped_left_at_shutdown, 4);
        Stats::set(&stats.ebpf_sensitive_left_out, 7);
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let text = Exposition::new(stats, spool).render();
        assert!(text.contains("docker_listener_events_in_total{source=\"docker\",type=\"network\"} 1\n"), "{text}");
        assert!(text.contains("docker_listener_events_in_total{source=\"docker\",type=\"other\"} 1\n"));
        assert!(text.contains("docker_listener_events_out_total{source=\"ebpf\",type=\"exec\"} 1\n"));
        assert!(text.contains("docker_listener_dropped_total{reason=\"output_buffer_full\"} 3\n"));
        assert!(text.contains("docker_listener_dropped_total{reason=\"output_write_failed\"} 5\n"));
        assert!(text.contains("docker_listener_dropped_total{reason=\"output_unwritten_at_shutdown\"} 2\n"));
        assert!(text.contains("docker_listener_dropped_total{reason=\"left_in_buffer_at_shutdown\"} 4\n"));
        assert!(text.contains("\ndocker_listener_frames_out_total 0\n"));
        assert!(text.contains("\ndocker_listener_ebpf_sensitive_left_out_total 7\n"));
        assert!(text.contains("# TYPE docker_listener_buffer_capacity_bytes gauge\n"));
        assert!(text.contains("\ndocker_listener_buffer_capacity_bytes 1048576\n"));
        assert!(text.contains("# TYPE docker_listener_cpu_seconds_total counter\n"));
        assert!(text.contains("\ndocker_listener_resident_memory_bytes "));
        // Every sample line is "name{labels} value" or "name value"; every family has HELP and TYPE.
        let mut families = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families += 1;
                assert!(rest.starts_with("docker_listener_"), "{line}");
            } else if !line.starts_with("# HELP ") {
                assert!(line.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<f64>().is_ok()), "{line}");
            }
        }
        assert_eq!(families, text.lines().filter(|l| l.starts_with("# HELP ")).count());
        assert!(families >= 30, "{families}");
    }

    /// Every name the agent served before the exposition library took over (dashboards and
    /// alerts use them) is still served, with the same type.
    #[test]
    fn names_and_types_are_kept() {
        let stats = Arc::new(Stats::default());
        let spool = Arc::new(Spool::new(1 << 20, stats.clone()));
        let text = Exposition::new(stats, spool).render();
        let counters = "events_in events_out frames_out bytes_out dropped ebpf_cgroups_rejected ebpf_not_container \
             ebpf_runtime_setup ebpf_file_unmatched ebpf_sensitive_map_full ebpf_sensitive_left_out \
             containers_untraced containers_traced_late filtered held_back repeats_folded repeat_summaries \
             healthchecks healthcheck_frames_folded healthcheck_summaries duplicates_dropped truncated \
             docker_partial_events docker_reconnects queue_send_errors cpu_seconds processes_swept";
        let gauges =
            "docker_connected buffer_frames buffer_bytes buffer_capacity_bytes resident_memory_bytes processes_tracked";
        for (names, kind, suffix) in [(counters, "counter", "_total"), (gauges, "gauge", "")] {
            for name in names.split_whitespace() {
                let full = format!("docker_listener_{name}{suffix}");
                assert!(text.contains(&format!("# TYPE {full} {kind}\n")), "{full} {kind} not served:\n{text}");
                assert!(
                    text.lines().any(|l| l.strip_prefix(&full).is_some_and(|r| r.starts_with([' ', '{']))),
                    "no sample of {full}"
                );
            }
        }
    }
}
