//! Heap allocations per event on the Docker path, and per exec on the eBPF path (`exec_path`
//! below), counted by a wrapping global allocator.
//!
//! Runs the steady-state pipeline pieces the daemon runs per event — split → parse → hash →
//! cursor → encode → spool push → spool pop (batches of 64, as the sink) → delivered cursor —
//! over 100,000 events (100
//! passes over `data/events.ndjson`, cut into 16-64 KiB chunks like hyper's), after a warm-up
//! pass that lets buffers and queues reach their working size. Each stage is also run alone,
//! to tell where allocations come from. The chunks themselves are made before counting: in the
//! daemon they are hyper's read buffer, not our code's.
//!
//! Not a criterion benchmark: `harness = false`, a plain `main`. Run:
//! `cargo bench -p docker-listener --bench alloc`. With `ALLOC_TRACE=N`, the first N
//! allocations of each stage print a backtrace (frames of docker_listener, bytes, serde).
use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

mod common;

use bytes::Bytes;
use common::{EVENTS, MAX_LINE, chunks, pop_batch};
use docker_listener::{
    docker::{
        DockerEvent,
        split::{LineSplitter, Piece},
    },
    encode::{Encoder, Frame, Origin, event_hash},
    sink::Spool,
    state::Cursor,
    stats::Stats,
};

/// `System`, counting calls that obtain memory (alloc, alloc_zeroed, realloc) and their bytes.
/// Frees are not counted: every allocation of a steady state is freed again.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Allocations still to trace on this thread (`ALLOC_TRACE`), and a guard against tracing
    /// the tracer's own allocations.
    static TRACE: Cell<u32> = const { Cell::new(0) };
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// Counts one allocation (unless it is the tracer's own) and traces it if asked.
fn note(counter: &AtomicU64, kind: &str, size: usize) {
    if IN_TRACE.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    counter.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    let wanted = TRACE.try_with(Cell::get).unwrap_or(0);
    if wanted == 0 {
        return;
    }
    IN_TRACE.with(|g| g.set(true));
    TRACE.with(|t| t.set(wanted - 1));
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    let frames: Vec<&str> = bt
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.starts_with("at ") && (l.contains("docker_listener") || l.contains("bytes::") || l.contains("serde"))
        })
        .take(6)
        .collect();
    eprintln!("    {kind} {size} bytes from:\n      {}", frames.join("\n      "));
    IN_TRACE.with(|g| g.set(false));
}

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS, "alloc", layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS, "alloc_zeroed", layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(&REALLOCS, "realloc", new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy)]
struct Count {
    allocs: u64,
    reallocs: u64,
    bytes: u64,
}

fn count() -> Count {
    Count {
        allocs: ALLOCS.load(Ordering::Relaxed),
        reallocs: REALLOCS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
    }
}

const PASSES: usize = 100;

/// The daemon's per-event work, minus I/O; which stages run is up to the caller.
struct Pipeline {
    splitter: LineSplitter,
    encoder: Encoder,
    spool: Spool,
    read: Cursor,
    delivered: Cursor,
    lines: Vec<Bytes>,
    events: Vec<DockerEvent>,
    frames: Vec<Frame>,
    /// The sink's batch buffer (reused, as in `Sink::run`).
    batch: Vec<Frame>,
}

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Split,
    Parse,
    Encode,
    Spool,
    All,
}

impl Pipeline {
    fn new() -> Pipeline {
        let stats = Arc::new(Stats::default());
        Pipeline {
            splitter: LineSplitter::new(MAX_LINE),
            encoder: Encoder::new(65535, false, stats.clone()),
            spool: Spool::new(16 << 20, stats),
            read: Cursor::default(),
            delivered: Cursor::default(),
            lines: Vec::new(),
            events: Vec::new(),
            frames: Vec::new(),
            batch: Vec::with_capacity(docker_listener::sink::output::BATCH),
        }
    }

    /// Feeds one chunk. Outside `All`, the stages before `stage` run uncounted beforehand
    /// (see `measure`), and only `stage` runs here.
    fn chunk(&mut self, chunk: Bytes, stage: Stage) -> u64 {
        let mut n = 0;
        match stage {
            Stage::Split => {
                let lines = &mut self.lines;
                self.splitter.push(chunk, |p| {
                    if let Piece::Line(l) = p {
                        lines.push(l);
                    }
                });
                n = self.lines.len() as u64;
                self.lines.clear();
            }
            Stage::Parse => {
                for l in self.lines.drain(..) {
                    if let Ok(ev) = DockerEvent::parse(l) {
                        black_box(&ev);
                        n += 1;
                    }
                }
            }
            Stage::Encode => {
                for ev in self.events.drain(..) {
                    black_box(self.encoder.docker(&ev));
                    n += 1;
                }
            }
            Stage::Spool => {
                n = self.frames.len() as u64;
                self.spool.push_all(self.frames.drain(..));
                while pop_batch(&self.spool, &mut self.batch) {
                    black_box(self.batch.drain(..));
                }
            }
            Stage::All => {
                let (read, encoder, frames) = (&mut self.read, &self.encoder, &mut self.frames);
                self.splitter.push(chunk, |p| {
                    // As DockerSource::handle: parse, hash, cursor, encode.
                    if let Piece::Line(raw) = p
                        && let Ok(ev) = DockerEvent::parse(raw)
                    {
                        read.advance(ev.time_nano, event_hash(&ev.raw));
                        frames.push(encoder.docker(&ev));
                    }
                });
                n = self.frames.len() as u64;
                self.spool.push_all(self.frames.drain(..));
                // As Sink::run: pop a batch, (send it), advance the delivered cursor.
                while pop_batch(&self.spool, &mut self.batch) {
                    for f in self.batch.drain(..) {
                        if let Origin::Docker { time_nano, hash } = f.origin {
                            self.delivered.advance(time_nano, hash);
                        }
                        black_box(f);
                    }
                }
            }
        }
        n
    }

    /// Prepares what `stage` consumes from `chunk`, uncounted.
    fn prepare(&mut self, chunk: &Bytes, stage: Stage) {
        if matches!(stage, Stage::Split | Stage::All) {
            return;
        }
        let mut splitter = LineSplitter::new(MAX_LINE);
        let mut lines = Vec::new();
        splitter.push(chunk.clone(), |p| {
            if let Piece::Line(l) = p {
                lines.push(l);
            }
        });
        match stage {
            Stage::Parse => self.lines = lines,
            Stage::Encode => self.events = lines.into_iter().filter_map(|l| DockerEvent::parse(l).ok()).collect(),
            Stage::Spool => {
                self.frames = lines
                    .into_iter()
                    .filter_map(|l| DockerEvent::parse(l).ok())
                    .map(|e| self.encoder.docker(&e))
                    .collect();
            }
            Stage::Split | Stage::All => {}
        }
    }
}

/// Allocations per event of `stage`, after a warm-up pass.
fn measure(name: &str, stage: Stage, trace_first: u32) {
    let mut p = Pipeline::new();
    // Stages fed from whole chunks see lines cut at chunk boundaries differently from the
    // splitter's own stitching: only `Split` and `All` carry lines across chunks, and the
    // other stages see only the lines wholly inside each chunk, which is fine for counting.
    for c in chunks(1) {
        p.prepare(&c, stage);
        p.chunk(c, stage);
    }
    let passes: Vec<Vec<Bytes>> = (0..PASSES as u64).map(|i| chunks(i + 2)).collect();
    let mut events = 0u64;
    let mut counted = Count { allocs: 0, reallocs: 0, bytes: 0 };
    TRACE.with(|t| t.set(0));
    for pass in passes {
        for c in pass {
            p.prepare(&c, stage);
            TRACE.with(|t| t.set(trace_first.saturating_sub(counted.allocs as u32 + counted.reallocs as u32)));
            let before = count();
            events += p.chunk(c, stage);
            let after = count();
            TRACE.with(|t| t.set(0));
            counted.allocs += after.allocs - before.allocs;
            counted.reallocs += after.reallocs - before.reallocs;
            counted.bytes += after.bytes - before.bytes;
        }
    }
    let per = |x: u64| x as f64 / events.max(1) as f64;
    println!(
        "{name:<44} {events:>8} events  {:>7.3} allocs/event  {:>7.3} reallocs/event  {:>8.1} bytes/event",
        per(counted.allocs),
        per(counted.reallocs),
        per(counted.bytes)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let trace_first: u32 = std::env::var("ALLOC_TRACE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    println!(
        "Heap allocations per event, steady state ({PASSES} passes over {} events, 16-64 KiB chunks):",
        EVENTS.lines().count()
    );
    measure("split (LineSplitter::push)", Stage::Split, trace_first);
    measure("parse (DockerEvent::parse)", Stage::Parse, trace_first);
    measure("encode (Encoder::docker)", Stage::Encode, trace_first);
    measure("spool (push_all + pop_batch)", Stage::Spool, trace_first);
    measure("all: split+parse+hash+cursor+encode+spool", Stage::All, trace_first);
    let escaped = EVENTS.lines().filter(|l| action_escaped(l)).count();
    println!(
        "({escaped} of {} events have an escape in their Action, which DockerEvent::parse unescapes into an owned copy)",
        EVENTS.lines().count()
    );
    exec_path::measure(trace_first);
}

/// Whether the `Action` string of an event line contains a backslash escape.
fn action_escaped(line: &str) -> bool {
    line.split_once("\"Action\":\"")
        .and_then(|(_, rest)| {
            let mut prev = ' ';
            for c in rest.chars() {
                if c == '"' && prev != '\\' {
                    return Some(false);
                }
                if c == '\\' {
                    return Some(true);
                }
                prev = c;
            }
            None
        })
        .unwrap_or(false)
}

mod exec_path {
    //! Allocations per exec on the eBPF path, as an exec storm in a container makes them:
    //! per process a fork record, its exec record and its exit record through the correlator,
    //! and the exec event's frame (`Encoder::agent_json`). The records are made before
    //! counting: in the daemon `record::parse` makes them (its own allocations, the record's
    //! strings, are counted on their own line).
    use std::{collections::BTreeMap, hint::black_box, time::Instant};

    use docker_listener::{
        config::EbpfConfig,
        correlate::{Correlator, Emitted, Request},
        ebpf::record::{Args, ExeFile, Exec, Exit, Fork, Meta, Record},
        ecs::Clock,
        encode::Encoder,
        procs::ProcessTable,
        registry::Container,
    };

    const CGROUP: u64 = 10_042;
    const INIT: u32 = 500;

    fn container() -> Container {
        Container {
            id: format!("{:064x}", 42),
            name: "service-42".into(),
            image: "registry.example/team/app:1.2.3".into(),
            image_id: Some(format!("sha256:{:064x}", 42)),
            labels: BTreeMap::from([
                ("com.docker.compose.project".to_owned(), "shop".to_owned()),
                ("com.docker.compose.service".to_owned(), "svc42".to_owned()),
            ]),
            pid: Some(1042),
            namespaces: None,
            root_dir: None,
            started_time_nano: Some(1_795_792_475_014_659_607),
            shown_labels: Default::default(),
            object: Default::default(),
        }
    }

    fn meta(tgid: u32) -> Meta {
        Meta { cpu: 0, seq: 1, ktime_ns: 5_000_000_000, cgroup_id: CGROUP, pid: tgid, tgid }
    }

    fn start(tgid: u32) -> u64 {
        4_000_000_000 + u64::from(tgid)
    }

    fn exec(tgid: u32, ppid: u32, exec_id: u64) -> Exec {
        Exec {
            meta: meta(tgid),
            ppid,
            uid: 0,
            gid: 0,
            ret: 0,
            start_ns: start(tgid),
            parent_start_ns: start(ppid),
            exec_id,
            parent_exec_id: 1,
            comm: "true".into(),
            filename: "/bin/true".into(),
            exe: Some(ExeFile {
                path: "/bin/true".into(),
                ino: 4242,
                dev: 51,
                magic: 0x794c_7630,
                ..ExeFile::default()
            }),
            args: Args { args: vec!["/bin/true".into(), format!("mark-7-{tgid}")], ..Args::default() },
            compat: false,
            creds: None,
        }
    }

    /// The three records of one short-lived process `tgid`, forked by the container's init.
    fn records(tgid: u32) -> [Record; 3] {
        [
            Record::Fork(Fork {
                meta: meta(INIT),
                child_tgid: tgid,
                child_start_ns: start(tgid),
                parent_start_ns: start(INIT),
                parent_exec_id: 1,
            }),
            Record::Exec(exec(tgid, INIT, 2)),
            Record::Exit(Exit { meta: meta(tgid), exit_code: 0, start_ns: start(tgid) }),
        ]
    }

    pub fn measure(trace_first: u32) {
        let mut correlator =
            Correlator::new(ProcessTable::new("boot".into(), 100), EbpfConfig::default(), Clock::fixed(0));
        let (mut out, mut req) = (Vec::<Emitted>::new(), Vec::<Request>::new());
        correlator.on_container(container(), Some(CGROUP), &mut out, &mut req);
        let now = Instant::now();
        correlator.on_record(
            Record::Exec(Exec { comm: "sh".into(), filename: "/bin/sh".into(), ..exec(INIT, 1, 1) }),
            now,
            &mut out,
            &mut req,
        );
        let encoder = Encoder::new(65535, false, Default::default());
        let mut run = |from: u32, n: u32, counted: bool| {
            let (mut allocs, mut reallocs, mut bytes) = (0, 0, 0);
            for tgid in from..from + n {
                let recs = records(tgid);
                out.clear();
                req.clear();
                if counted {
                    super::TRACE.with(|t| t.set(trace_first.saturating_sub((allocs + reallocs) as u32)));
                }
                let before = super::count();
                for r in recs {
                    correlator.on_record(r, now, &mut out, &mut req);
                }
                for e in out.drain(..) {
                    black_box(encoder.agent_json(e.json));
                }
                let after = super::count();
                super::TRACE.with(|t| t.set(0));
                allocs += after.allocs - before.allocs;
                reallocs += after.reallocs - before.reallocs;
                bytes += after.bytes - before.bytes;
            }
            (allocs, reallocs, bytes)
        };
        run(1000, 1000, false);
        const N: u32 = 20_000;
        let (allocs, reallocs, bytes) = run(10_000, N, true);
        let per = |x: u64| x as f64 / f64::from(N);
        println!(
            "{:<44} {N:>8} execs   {:>7.3} allocs/exec   {:>7.3} reallocs/exec   {:>8.1} bytes/exec",
            "exec: fork+exec+exit records → frame",
            per(allocs),
            per(reallocs),
            per(bytes)
        );
        let before = super::count();
        for tgid in 0..N {
            black_box(records(tgid));
        }
        let after = super::count();
        println!(
            "{:<44} {N:>8} execs   {:>7.3} allocs/exec   (the strings `record::parse` makes)",
            "  the records themselves",
            per(after.allocs - before.allocs)
        );
    }
}
