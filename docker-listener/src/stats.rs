//! Counters shared by every stage. Each is a relaxed atomic: cheap on the hot path, read by the
//! periodic report, the shutdown summary and (later) the metrics endpoint.
use std::sync::atomic::{AtomicU64, Ordering};

/// Docker event types counted one by one (`Type`); anything else is "other".
pub const DOCKER_TYPES: [&str; 11] =
    ["container", "image", "network", "volume", "plugin", "service", "node", "secret", "config", "daemon", "other"];
/// Process and socket event actions counted one by one.
pub const EBPF_ACTIONS: [&str; 9] =
    ["exec", "connect", "bind", "listen", "accept", "socket", "io_uring_setup", "process-running", "socket-listening"];

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Process-wide counters. Names are stable: they appear in logs and stats events.
        #[derive(Default, Debug)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: AtomicU64, )*
            /// Docker events read, by `DOCKER_TYPES`.
            pub docker_by_type: [AtomicU64; DOCKER_TYPES.len()],
            /// Process and socket events emitted, by `EBPF_ACTIONS`.
            pub ebpf_by_action: [AtomicU64; EBPF_ACTIONS.len()],
            /// 1 while the Docker event stream is open.
            pub docker_connected: AtomicU64,
        }

        impl Stats {
            /// `(name, value)` for every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name.load(Ordering::Relaxed)), )*]
            }
        }
    };
}

counters! {
    /// Docker events read from the /events stream (valid JSON objects).
    docker_events_in,
    /// Docker events skipped because their action matched `ignore_actions`.
    docker_events_filtered,
    /// Replayed events dropped at a resume boundary because they had already been delivered.
    docker_events_duplicate,
    /// Lines from Docker that were not a JSON object (or not UTF-8): skipped, logged.
    docker_malformed,
    /// Lines longer than the hard limit on a raw Docker event: skipped, logged.
    docker_oversized_raw,
    /// A stream that ended in the middle of an event (the partial event is replayed by `since`).
    docker_partial_at_eof,
    /// Times Docker's 256-event replay buffer had already overflowed when we resumed.
    docker_upstream_gaps,
    /// Successful (re)connections to the /events stream.
    docker_connects,
    /// Events shrunk to fit `max_event_size` and marked `"truncated": true`.
    events_truncated,
    /// Exec, fork, exit, socket and network records a container's budget held back in the kernel.
    ebpf_held_back,
    /// Our events not sent because an identical one was sent within `repeat_window`.
    repeats_folded,
    /// `events-repeated` summaries sent.
    repeat_summaries,
    /// Passing healthchecks recognised and counted into a summary (or dropped: `healthchecks`).
    health_checks_folded,
    /// Of their events (Docker's and the session's processes'), those not sent.
    health_frames_folded,
    /// Failing healthchecks: forwarded at once.
    health_checks_failed,
    /// Sessions that ran a healthcheck's command but that dockerd did not record as a check (a
    /// `docker exec` of the same command) or that nothing decided in time: forwarded.
    health_sessions_unrecognised,
    /// Sessions created while dockerd was being asked about their container's healthcheck
    /// (after its first `health_status`): forwarded whole, whether they ran the check or not.
    health_sessions_before_known,
    /// Candidate sessions still undecided when their container was removed (dockerd's record of
    /// its checks went with it): forwarded.
    health_sessions_undecided,
    /// Healthcheck summaries sent.
    health_summaries,
    /// Datagrams/lines written to the output.
    frames_out,
    /// Of those, Docker events.
    frames_out_docker,
    /// Bytes written to the output.
    bytes_out,
    /// Frames dropped because the output buffer (`buffer_bytes`) was full: oldest first.
    dropped_buffer_full,
    /// Frames the output refused for good (e.g. larger than the socket's send buffer): dropped,
    /// logged one by one.
    dropped_rejected,
    /// Frames a line output (`stdout`, `file:`) had handed to its writer when a write or flush
    /// failed (ENOSPC, EIO, EPIPE): tokio's file and stdout write on a blocking thread and drop
    /// what failed, so they are lost, not counted in `frames_out`. The cursor does not move
    /// past their Docker events, but it is a high-water mark: the next event delivered passes
    /// them, so they are replayed at the next start only if none is.
    dropped_output_write_failed,
    /// Frames the line output had taken (in its buffer, or written but not flushed) and could
    /// not write out by the end of shutdown: lost, not counted in `frames_out`; their Docker
    /// events are replayed at the next start (the cursor did not move past them) if dockerd
    /// still holds them.
    dropped_unwritten_at_shutdown,
    /// Events still in the output buffer when the shutdown grace period ran out (Wazuh away or
    /// too slow) that the next start cannot replay: our own (eBPF, summaries), and Docker events
    /// behind the cursor or with none saved. The Docker events at or after the cursor are not
    /// counted: they are replayed at the next start.
    dropped_left_at_shutdown,
    /// Send attempts that failed with a transient error (queue missing, not bound, full).
    send_errors,
    /// eBPF records read from the ring buffer.
    ebpf_records,
    /// eBPF records received that could not be decoded (truncated or unknown kind): skipped,
    /// logged.
    ebpf_undecodable,
    /// eBPF records lost in the kernel (ring buffer full, pairing map full, filter map full),
    /// from the per-CPU loss counters.
    ebpf_lost,
    /// Records the kernel numbered but userspace never received (sequence gaps), computed at
    /// shutdown; equals the ring-buffer-full losses when the accounting is right.
    ebpf_seq_gaps,
    /// Process and socket events emitted.
    ebpf_events,
    /// Entries left in the execve and socket-call pairing maps at shutdown: calls in flight then
    /// (a blocked accept), or entries no program deleted.
    ebpf_pending_exec,
    ebpf_pending_sock,
    /// Cgroups shaped like a container's that Docker does not know: untracked.
    ebpf_cgroups_rejected,
    /// Records from those cgroups before they were untracked: not container activity, dropped.
    ebpf_not_container,
    /// Namespace, mount and other exit-reported calls made by the runtime (runc) setting a
    /// container up or entering it: processes that never ran a program in the container. Not
    /// sent: the kernel does not send those of the processes it knows as the runtime's (from
    /// their exec of its file), and the correlator drops the rest by the caller's file.
    ebpf_runtime_setup,
    /// File-access records that are no sensitive file: an open the kernel matched by an inode
    /// number that is another file's here, a file created where a sensitive one may be that is
    /// none, a change by name (unlink, rename, chmod...) of another file. Not sent.
    ebpf_file_unmatched,
    /// Sensitive files' inodes the kernel's map had no room for: opens of them are not reported.
    ebpf_sensitive_map_full,
    /// Sensitive files' and directories' entries left out of their container's set for want of
    /// room (`sensitive::CONTAINER_MAX`): not watched by inode until a refresh takes them;
    /// counted again at each refresh that leaves them out.
    ebpf_sensitive_left_out,
    /// Running containers whose cgroup could not be found: their processes are not traced.
    containers_untraced,
    /// Containers whose cgroup was found only after they started (not recognised at creation):
    /// traced from then on.
    containers_traced_late,
    /// Our events dropped because even shrunk they could not keep what says what happened
    /// (see `shrink`); never sent as an empty object.
    events_lost_oversized,
    /// Processes in the process table now (traced containers' live processes, and those whose
    /// exit record was lost until a sweep finds them gone), and the most it has held.
    procs_tracked,
    procs_tracked_peak,
    /// Process-table entries a sweep dropped: their exit record was lost.
    procs_swept,
}

impl Stats {
    pub fn count_docker_type(&self, kind: &str) {
        let i = DOCKER_TYPES.iter().position(|t| *t == kind).unwrap_or(DOCKER_TYPES.len() - 1);
        Self::inc(&self.docker_by_type[i]);
    }

    pub fn count_ebpf_action(&self, action: &str) {
        if let Some(i) = EBPF_ACTIONS.iter().position(|a| *a == action) {
            Self::inc(&self.ebpf_by_action[i]);
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(counter: &AtomicU64, v: u64) {
        counter.store(v, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
