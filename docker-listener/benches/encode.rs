//! Criterion micro-benchmarks of the Docker path's per-event steps, on a realistic event log.
//!
//! The input is `data/events.ndjson`: the first 1000 events of the log `cargo xtask bench`
//! streams (dockerd 20.10 events: container lifecycles with healthcheck execs, network, volume
//! and image events; 540 bytes on average, a few Compose-labelled ones near 1.8 KB). It is cut
//! into 16-64 KiB chunks the way hyper hands them to the daemon: slices of one shared buffer.
//!
//! Every benchmark reports a throughput in events, so criterion's time per iteration divided by
//! the event count is the cost per event:
//!
//! - `split/mix`: `LineSplitter::push` over the chunks (1000 events);
//! - `parse/mix`, `parse/typical`: `DockerEvent::parse` over the 1000 events, and of one
//!   typical event (a container `start`, 362 bytes, no escapes);
//! - `encode/typical`, `encode/mix`: `Encoder::docker` (no legacy fields, fits);
//! - `hash/typical`: `event_hash` (the daemon hashes each event's bytes once, in
//!   `DockerEvent::parse`, for the resume cursor);
//! - `pipeline/mix`: what the source and the sink do per event besides I/O: split, parse,
//!   hash, cursor, encode, spool push (a chunk's frames at once), pop (batches of 64, as the
//!   sink) and the delivered cursor.
//!
//! Run: `cargo bench -p docker-listener --bench encode` (add `-- --quick` for a short run).
use std::{hint::black_box, sync::Arc};

mod common;

use bytes::Bytes;
use common::{EVENTS, MAX_LINE, chunks, pop_batch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use docker_listener::{
    docker::{
        DockerEvent,
        split::{LineSplitter, Piece},
    },
    encode::{Encoder, Origin, event_hash},
    sink::Spool,
    state::Cursor,
    stats::Stats,
};

fn lines() -> Vec<Bytes> {
    let all = Bytes::from_static(EVENTS.as_bytes());
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in EVENTS.bytes().enumerate() {
        if b == b'\n' {
            out.push(all.slice(start..i));
            start = i + 1;
        }
    }
    out
}

/// A typical event: the first container `start` without labels.
fn typical() -> Bytes {
    lines()
        .into_iter()
        .find(|l| l.starts_with(b"{\"status\":\"start\"") && !l.windows(4).any(|w| w == b"com."))
        .expect("the fixture has a container start event")
}

fn encoder() -> Encoder {
    Encoder::new(65535, false, Arc::new(Stats::default()))
}

fn split(c: &mut Criterion) {
    let chunks = chunks(0x2545_f491_4f6c_dd1d);
    let n = lines().len() as u64;
    let mut g = c.benchmark_group("split");
    g.throughput(Throughput::Elements(n));
    g.bench_function("mix", |b| {
        let mut splitter = LineSplitter::new(MAX_LINE);
        b.iter(|| {
            for chunk in &chunks {
                splitter.push(chunk.clone(), |p| {
                    black_box(p);
                });
            }
        })
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    let lines = lines();
    let one = typical();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("mix", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(DockerEvent::parse(l.clone()));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("typical", |b| b.iter(|| black_box(DockerEvent::parse(black_box(one.clone())))));
    g.finish();
}

fn encode(c: &mut Criterion) {
    let events: Vec<DockerEvent> = lines().into_iter().filter_map(|l| DockerEvent::parse(l).ok()).collect();
    let one = DockerEvent::parse(typical()).expect("the typical event parses");
    let enc = encoder();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("typical", |b| b.iter(|| black_box(enc.docker(black_box(&one)))));
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("mix", |b| {
        b.iter(|| {
            for ev in &events {
                black_box(enc.docker(ev));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Elements(1));
    g.bench_function("typical", |b| b.iter(|| black_box(event_hash(black_box(&one.raw)))));
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let chunks = chunks(0x2545_f491_4f6c_dd1d);
    let n = lines().len() as u64;
    let enc = encoder();
    let stats = Arc::new(Stats::default());
    let spool = Spool::new(16 << 20, stats);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(n));
    g.bench_function("mix", |b| {
        let mut splitter = LineSplitter::new(MAX_LINE);
        let mut read = Cursor::default();
        let mut delivered = Cursor::default();
        let mut frames = Vec::new();
        let mut batch = Vec::with_capacity(docker_listener::sink::output::BATCH);
        b.iter(|| {
            for chunk in &chunks {
                splitter.push(chunk.clone(), |p| {
                    if let Piece::Line(raw) = p
                        && let Ok(ev) = DockerEvent::parse(raw)
                    {
                        read.advance(ev.time_nano, event_hash(&ev.raw));
                        frames.push(enc.docker(&ev));
                    }
                });
                spool.push_all(frames.drain(..));
                while pop_batch(&spool, &mut batch) {
                    for f in batch.drain(..) {
                        if let Origin::Docker { time_nano, hash } = f.origin {
                            delivered.advance(time_nano, hash);
                        }
                        black_box(f);
                    }
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, split, parse, encode, pipeline);
criterion_main!(benches);
