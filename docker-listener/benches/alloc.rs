//! Heap allocations per event on the Docker path, counted by a wrapping global allocator.
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
