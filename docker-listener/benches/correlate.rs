//! Criterion micro-benchmarks of the process-event path: the correlator's container lookup
//! (cgroup id -> container, among 500 containers) and the whole per-record work for an exec in a
//! known container (process table update, parent chain, the ECS event serialised into a Wazuh
//! frame), and the argv's decoding from the record.
//!
//! Run: `cargo bench -p docker-listener --bench correlate` (add `-- --quick` for a short run).
use std::{collections::BTreeMap, hint::black_box, time::Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use docker_listener::{
    config::EbpfConfig,
    correlate::exec_body,
    correlate::{Correlator, Emitted, Request},
    ebpf::record::{Args, ExeFile, Exec, Meta, Record, argv_digest, decode_args, parse},
    ecs::{Body, Clock, Event},
    encode::Encoder,
    procs::ProcessTable,
    registry::{Container, ContainerRegistry},
};

const CONTAINERS: u64 = 500;

fn container(i: u64) -> Container {
    Container {
        id: format!("{i:064x}"),
        name: format!("service-{i}"),
        image: "registry.example/team/app:1.2.3".into(),
        image_id: Some(format!("sha256:{i:064x}")),
        labels: BTreeMap::from([
            ("com.docker.compose.project".to_owned(), "shop".to_owned()),
            ("com.docker.compose.service".to_owned(), format!("svc{i}")),
        ]),
        pid: Some(1000 + i as u32),
        namespaces: None,
        root_dir: None,
        started_time_nano: Some(1_795_792_475_014_659_607),
        shown_labels: Default::default(),
        object: Default::default(),
    }
}

/// The exec's argv as its record carries it.
const ARGV_BYTES: &[u8] = b"curl\0-s\0http://127.0.0.1:8080/health\0";
/// That argv decoded (with the digest of the argv as read).
static ARGV: std::sync::LazyLock<Args> =
    std::sync::LazyLock::new(|| decode_args(ARGV_BYTES, b"", ARGV_BYTES.len() as u64, false, 64));

fn exec(cgroup_id: u64, tgid: u32, ppid: u32) -> Exec {
    Exec {
        meta: Meta { cpu: 0, seq: 1, ktime_ns: 5_000_000_000, cgroup_id, pid: tgid, tgid },
        ppid,
        uid: 0,
        gid: 0,
        ret: 0,
        // Each process's start time is its own, and the parent's the one its record gave, so
        // that the parent is found in the table (a mismatch would read /proc in every round).
        start_ns: 4_000_000_000 + u64::from(tgid),
        parent_start_ns: 4_000_000_000 + u64::from(ppid),
        exec_id: 2,
        parent_exec_id: 1,
        comm: "curl".into(),
        filename: "/usr/bin/curl".into(),
        exe: Some(ExeFile {
            path: "/usr/bin/curl".into(),
            ino: 4242,
            dev: 51,
            magic: 0x794c_7630,
            ..ExeFile::default()
        }),
        args: ARGV.clone(),
        compat: false,
        creds: None,
    }
}

/// An exec record of `/usr/bin/curl` with `ARGV_BYTES`, in 8-byte words as the ring buffer
/// aligns its records.
fn exec_record_bytes() -> Vec<u64> {
    use docker_listener_common::{RecordKind, family::exec::ExecRecord};
    // SAFETY: a plain-old-data record, every field an integer or a byte array: zero is valid.
    let mut r: ExecRecord = unsafe { std::mem::zeroed() };
    r.header.kind = RecordKind::Exec as u32;
    r.header.cgroup_id = 10_042;
    r.header.tgid = 501;
    r.header.pid = 501;
    r.ppid = 500;
    r.args[..ARGV_BYTES.len()].copy_from_slice(ARGV_BYTES);
    r.args_len = ARGV_BYTES.len() as u32;
    r.args_head_len = r.args_len;
    r.args_total = r.args_len;
    r.filename[..13].copy_from_slice(b"/usr/bin/curl");
    r.filename_len = 13;
    r.comm[..4].copy_from_slice(b"curl");
    let path = b"curl\0bin\0usr\0";
    r.exe_path[..path.len()].copy_from_slice(path);
    r.exe.path_len = path.len() as u32;
    r.exe.ino = 4242;
    let mut words = vec![0u64; size_of::<ExecRecord>().div_ceil(8)];
    // SAFETY: `words` holds at least `size_of::<ExecRecord>()` bytes.
    unsafe { std::ptr::write_unaligned(words.as_mut_ptr().cast::<ExecRecord>(), r) };
    words
}

fn exec_record_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: any u64 is 8 initialised bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), size_of_val(words)) }
}

fn benches(c: &mut Criterion) {
    let mut registry = ContainerRegistry::default();
    for i in 0..CONTAINERS {
        let c = container(i);
        registry.bind_cgroup(&c.id, 10_000 + i);
        registry.upsert(c);
    }
    let mut g = c.benchmark_group("correlate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("lookup/500-containers", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7) % CONTAINERS;
            black_box(registry.lookup(black_box(10_000 + i)));
        })
    });

    let mut correlator = Correlator::new(ProcessTable::new("boot".into(), 100), EbpfConfig::default(), Clock::fixed(0));
    let (mut out, mut req) = (Vec::<Emitted>::new(), Vec::<Request>::new());
    for i in 0..CONTAINERS {
        correlator.on_container(container(i), Some(10_000 + i), &mut out, &mut req);
    }
    // An init process in container 42, which then execs a child.
    correlator.on_record(
        Record::Exec(Exec {
            filename: "/bin/sh".into(),
            exe: Some(ExeFile { path: "/bin/sh".into(), ..ExeFile::default() }),
            ..exec(10_042, 500, 1)
        }),
        Instant::now(),
        &mut out,
        &mut req,
    );
    let encoder = Encoder::new(65535, false, Default::default());
    g.bench_function("exec-record-to-frame", |b| {
        b.iter(|| {
            out.clear();
            correlator.on_record(Record::Exec(exec(10_042, 501, 500)), Instant::now(), &mut out, &mut req);
            for e in out.drain(..) {
                black_box(encoder.agent_json(e.json));
            }
        })
    });
    let mut table = ProcessTable::new("boot".into(), 100);
    let init = exec(10_042, 500, 1);
    exec_body(&mut table, Exec { filename: "/bin/sh".into(), ..init }, &[10_042], Clock::fixed(0));
    let c42 = {
        let mut r = ContainerRegistry::default();
        r.upsert(container(42));
        r.get(&container(42).id).cloned().expect("just added")
    };
    let e = exec(10_042, 501, 500);
    let event = Event::new(e.meta, Clock::fixed(0), Body::Exec(exec_body(&mut table, e, &[10_042], Clock::fixed(0))));
    g.bench_function("exec-event-serialise", |b| {
        b.iter(|| black_box(encoder.agent(&event.with_container(Some(&c42), &c42.id))))
    });
    // The argv from the record's bytes (this exec's), and the part of it that is the keyed
    // hash of the argv as read (`Args::digest`), side by side.
    let len = ARGV_BYTES.len() as u64;
    g.bench_function("exec-argv-decode", |b| {
        b.iter(|| black_box(decode_args(black_box(ARGV_BYTES), b"", len, false, 64)))
    });
    g.bench_function("exec-argv-digest", |b| b.iter(|| black_box(argv_digest(black_box(ARGV_BYTES), b"", len, false))));
    // The whole record decoded from where the ring buffer holds it (8-byte aligned).
    let record = exec_record_bytes();
    g.bench_function("exec-record-parse", |b| {
        b.iter(|| black_box(parse(black_box(exec_record_as_bytes(&record)), 64)))
    });
    g.finish();
}

criterion_group!(name = group; config = Criterion::default(); targets = benches);
criterion_main!(group);
