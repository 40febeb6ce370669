//! The floor under the agent's CPU per exec: the least any consumer of these records must do to
//! deliver each exec of a container to Wazuh's queue within the agent's latency budget.
//!
//! It loads the agent's own eBPF programs (the same kernel side, the same ring buffer, the same
//! records), traces the cgroup of one container's process, and then does what the monitor and the sink do, minus
//! the agent's own work: every `POLL_EVERY` (3 ms, on the same Tokio timer, the programs told not
//! to wake it) it reads every record the ring holds, and for each exec record sends one datagram
//! of the size of the agent's exec event (1,335 bytes: the record's bytes, then padding) through
//! the agent's own sender (`QueueSocket::send_batch`, `sendmmsg`). No decoding beyond the record's
//! kind, no process table, no container, no JSON, no healthcheck or repeat stage.
//!
//! Not part of the agent: a measuring instrument, run in every round of `cargo xtask bench`'s
//! `exec-peer-bpftrace` (BENCHMARKS.md, "the floor under the exec target"). By hand, as root:
//!
//! ```text
//! cargo build --release --target x86_64-unknown-linux-musl --example exec_floor
//! target/x86_64-unknown-linux-musl/release/examples/exec_floor <queue socket> <pid> [<seconds>]
//! ```
//!
//! `<pid>` is a process of the container (its main one: `docker inspect -f '{{.State.Pid}}'`),
//! whose cgroup v2 is traced, found as the agent finds it (`registry::cgroup_dir_of_pid`). It
//! says `ready` once its programs are attached, runs for `<seconds>` (default 60) and then prints
//! the datagrams it sent; its CPU is read from outside (`/proc/<pid>/task/*/schedstat`).
use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use aya::maps::{MapData, RingBuf};
use bytes::Bytes;
use docker_listener::{
    config::EbpfConfig,
    ebpf::{EbpfProbes, record},
    encode::{Encoder, Frame},
    registry,
    sink::output::QueueSocket,
};
use docker_listener_common::RecordKind;

/// The agent's drain period while records flow (`monitor::POLL_EVERY`).
const POLL_EVERY: Duration = Duration::from_millis(3);
/// The size of the agent's exec event in the exec storm (`benches/alloc.rs`, "exec").
const EVENT_BYTES: usize = 1335;

/// As the agent's static build: the same allocator, with the same settings.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    // SAFETY: first in `main`: no other thread exists yet.
    unsafe { docker_listener::allocator::configure() };
    let mut args = std::env::args().skip(1);
    let (Some(queue), Some(pid)) = (args.next(), args.next()) else {
        bail!("usage: exec_floor <queue socket> <pid of a process in the container> [<seconds>]");
    };
    let queue = PathBuf::from(queue);
    let pid: u32 = pid.parse().context("the pid of a process in the container: a number")?;
    let mount = registry::cgroup2_mount().context("no cgroup v2 mount in /proc/self/mountinfo")?;
    let dir = registry::cgroup_dir_of_pid(&mount, pid).with_context(|| format!("no cgroup v2 for pid {pid}"))?;
    let cgroup = registry::cgroup_id(&dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    let seconds: u64 = args.next().map(|s| s.parse()).transpose().context("seconds: a number")?.unwrap_or(60);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(queue, cgroup, Duration::from_secs(seconds)))
}

async fn run(queue: PathBuf, cgroup: u64, how_long: Duration) -> Result<()> {
    // As the agent runs in the benchmark's storms: no per-container budget (every record sent).
    let cfg = EbpfConfig { budget_per_second: 0, ..EbpfConfig::default() };
    let mut probes = EbpfProbes::load(&cfg).context("loading the agent's eBPF programs")?;
    probes.track(cgroup).context("tracing the cgroup")?;
    probes.set_polling(true).context("switching the programs' wake-ups off")?;
    let encoder = Encoder::new(65535, false, Default::default());
    let mut out = QueueSocket::new(&queue);
    let mut frames: Vec<Frame> = Vec::new();
    let (mut sent, mut records) = (0u64, 0u64);
    let end = tokio::time::Instant::now() + how_long;
    println!("ready");
    // As the monitor: one timer, reset to a period from now right after each drain; after two
    // empty drains the programs wake it again, one more timed drain, then it sleeps on the ring.
    let timer = tokio::time::sleep(POLL_EVERY);
    tokio::pin!(timer);
    let (mut polling, mut settling, mut empty) = (true, false, 0u32);
    while tokio::time::Instant::now() < end {
        let n = if polling {
            timer.as_mut().await;
            drain(probes.ring.get_mut(), &encoder, &mut frames)
        } else {
            let mut guard = probes.ring.readable_mut().await?;
            let n = drain(guard.get_inner_mut(), &encoder, &mut frames);
            if n == 0 {
                guard.clear_ready();
                continue;
            }
            drop(guard);
            probes.set_polling(true)?;
            polling = true;
            n
        };
        records += n as u64;
        timer.as_mut().reset(tokio::time::Instant::now() + POLL_EVERY);
        if settling {
            settling = false;
            polling = n > 0;
            if polling {
                probes.set_polling(true)?;
            }
        } else {
            empty = if n == 0 { empty + 1 } else { 0 };
            if empty == 2 {
                probes.set_polling(false)?;
                settling = true;
                empty = 0;
            }
        }
        if !frames.is_empty() {
            let n = out.send_batch(&frames).await.map_err(|(_, e)| e).context("sending")?;
            sent += n as u64;
            frames.clear();
        }
    }
    println!("sent {sent} exec datagrams, read {records} records");
    Ok(())
}

/// Reads every record the ring holds; a frame for each exec record. Returns the records read.
fn drain(ring: &mut RingBuf<MapData>, encoder: &Encoder, frames: &mut Vec<Frame>) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        if !record::header(&item).is_ok_and(|h| h.kind == RecordKind::Exec as u32) {
            continue;
        }
        let mut json = Vec::with_capacity(EVENT_BYTES);
        json.extend_from_slice(&item[..item.len().min(EVENT_BYTES)]);
        json.resize(EVENT_BYTES, b' ');
        if let Some(f) = encoder.agent_json(Bytes::from(json)) {
            frames.push(f);
        }
    }
    n
}
