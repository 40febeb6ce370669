//! A realistic, deterministic Docker event log, and its HTTP chunked encoding.
//!
//! The events are what dockerd 20.10 (API 1.41) writes on `/events`: one JSON object per line,
//! Go's `json.Encoder` output — fields in moby's `events.Message` order (`status`, `id`, `from`
//! for container and image events, then `Type`, `Action`, `Actor`, `scope`, `time`,
//! `timeNano`), `Actor.Attributes` keys sorted (Go sorts map keys), and `<`, `>`, `&` escaped
//! as `\u003c`, `\u003e`, `\u0026` (Go's HTML-safe escaping).
//!
//! The log is a sequence of container lifecycles, the way a busy host produces them: CI-style
//! `docker run` containers and long-running services with healthchecks, a share of them started
//! by Compose (labels make those events 1-2 KB), with the network, volume and image events
//! around them. Most events are 200-700 bytes (540 on average), about 9% over 1 KiB.
//! `timeNano` strictly increases (random gaps of 1 µs to 5 ms), and `time` is always
//! `timeNano / 1e9`.
//!
//! Everything comes from a seeded PRNG, so every run streams the same bytes.
use std::collections::BTreeMap;

/// The time base of the log, in nanoseconds since the epoch: 2026-11-27, the time of the
/// sample `create` event in the daemon's `docker::event` tests.
pub const BASE_TIME_NANO: i64 = 1_795_792_475_014_659_607;

/// The seed of every benchmark log.
pub const SEED: u64 = 0x00d0_c4e2_1157_e2e5;

/// How a stream is cut into HTTP chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Chunks of a random size in `min..=max` bytes, cut anywhere: several events per chunk,
    /// events straddling chunks (what a reader sees when many events are in flight).
    Sized { min: usize, max: usize },
    /// One chunk per event, newline included: dockerd's own framing (moby's events handler
    /// flushes after every event).
    PerEvent,
}

impl std::fmt::Display for Chunking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chunking::Sized { min, max } => write!(f, "{}-{} KiB HTTP chunks", min >> 10, max >> 10),
            Chunking::PerEvent => write!(f, "one HTTP chunk per event"),
        }
    }
}

/// The body of an `/events` response, HTTP chunked framing included (without the terminating
/// zero-length chunk: the stream stays open), plus what the checks need.
pub struct EncodedStream {
    /// `<hex len>\r\n<data>\r\n` repeated.
    pub body: Vec<u8>,
    pub events: u64,
    /// Bytes of event JSON, newlines excluded.
    pub event_bytes: u64,
    pub chunks: u64,
    /// The first and the last few event lines, without their newline, to compare with the
    /// frames the daemon sends.
    pub first: Vec<Vec<u8>>,
    pub last: Vec<Vec<u8>>,
    /// Events by size: under 512 bytes, 512-1023, 1024 and more.
    pub size_classes: [u64; 3],
    pub max_event: usize,
}

/// How many first/last events [`EncodedStream`] keeps.
pub const KEEP: usize = 3;

/// How many distinct event bodies a stream cycles through (about 25 MB).
pub const POOL: usize = 50_000;

impl EncodedStream {
    /// Generates `events` events and frames them as `chunking` says.
    ///
    /// The first [`POOL`] events come from [`EventLog`]; after that their bodies repeat (IDs
    /// included) with fresh, still increasing times: the daemon does not care, and generating
    /// millions of distinct events would cost more time than the benchmark runs take.
    pub fn generate(events: u64, chunking: Chunking) -> EncodedStream {
        let mut log = EventLog::new(SEED);
        let mut rng = Rng(SEED ^ 0x5eed_c4a2_6e00_0001);
        let mut out = EncodedStream {
            body: Vec::with_capacity((events as usize).saturating_mul(540)),
            events,
            event_bytes: 0,
            chunks: 0,
            first: Vec::new(),
            last: Vec::new(),
            size_classes: [0; 3],
            max_event: 0,
        };
        let mut pool: Vec<Vec<u8>> = Vec::new();
        let mut pending: Vec<u8> = Vec::with_capacity(128 << 10);
        let mut next_size = out.next_chunk_size(chunking, &mut rng);
        let mut line = Vec::with_capacity(4096);
        for i in 0..events {
            let slot = (i % POOL as u64) as usize;
            if slot == pool.len() {
                let mut head = Vec::new();
                log.next_head(&mut head);
                pool.push(head);
            }
            line.clear();
            line.extend_from_slice(&pool[slot]);
            write_time(log.clock.tick(), &mut line);
            out.account(&line, i);
            line.push(b'\n');
            match chunking {
                Chunking::PerEvent => out.push_chunk(&line),
                Chunking::Sized { .. } => {
                    pending.extend_from_slice(&line);
                    while pending.len() >= next_size {
                        out.push_chunk(&pending[..next_size]);
                        pending.drain(..next_size);
                        next_size = out.next_chunk_size(chunking, &mut rng);
                    }
                }
            }
        }
        if !pending.is_empty() {
            out.push_chunk(&pending);
        }
        out
    }

    fn next_chunk_size(&self, chunking: Chunking, rng: &mut Rng) -> usize {
        match chunking {
            Chunking::Sized { min, max } => min + rng.below((max - min + 1) as u64) as usize,
            Chunking::PerEvent => 0,
        }
    }

    fn push_chunk(&mut self, data: &[u8]) {
        write_hex(data.len(), &mut self.body);
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
        self.chunks += 1;
    }

    fn account(&mut self, line: &[u8], index: u64) {
        self.event_bytes += line.len() as u64;
        self.max_event = self.max_event.max(line.len());
        self.size_classes[match line.len() {
            0..512 => 0,
            512..1024 => 1,
            _ => 2,
        }] += 1;
        if index < KEEP as u64 {
            self.first.push(line.to_vec());
        }
        if index + KEEP as u64 >= self.events {
            self.last.push(line.to_vec());
        }
    }
}

/// The HTTP chunk at `offset` of an encoded body (`<hex>\r\n<data>\r\n`): its data's range and
/// where the next chunk starts; `Ok(None)` when `body` ends before the chunk does.
pub fn chunk_at(body: &[u8], offset: usize) -> anyhow::Result<Option<(std::ops::Range<usize>, usize)>> {
    let rest = body.get(offset..).unwrap_or_default();
    let Some(line) = rest.iter().position(|&b| b == b'\r') else { return Ok(None) };
    let size = std::str::from_utf8(&rest[..line])
        .ok()
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .ok_or_else(|| anyhow::anyhow!("a bad chunk size at byte {offset}"))?;
    let data = offset + line + 2;
    let end = data + size + 2;
    Ok((end <= body.len()).then_some((data..data + size, end)))
}

/// SplitMix64: small, fast, good enough to vary IDs and sizes; deterministic.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A Docker object ID: 64 lowercase hex digits.
    fn id64(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next_u64())).collect()
    }
}

/// An image containers run from, with the labels Docker copies into container events.
struct Image {
    reference: &'static str,
    labels: &'static [(&'static str, &'static str)],
    /// Healthcheck commands, as they appear in `exec_create: <cmd>` actions.
    healthchecks: &'static [&'static str],
}

const OCI_LABELS: &[(&str, &str)] = &[
    ("org.opencontainers.image.created", "2026-10-02T08:14:55Z"),
    ("org.opencontainers.image.description", "Shop API service: orders, carts and payment callbacks"),
    ("org.opencontainers.image.licenses", "Apache-2.0"),
    ("org.opencontainers.image.revision", "9f2c1e7d4b8a6f3e0d5c2b1a9e8f7d6c5b4a3e2f"),
    ("org.opencontainers.image.source", "https://git.example.com/shop/api"),
    ("org.opencontainers.image.title", "shop-api"),
    ("org.opencontainers.image.url", "https://git.example.com/shop/api/-/releases/v2.14.3"),
    ("org.opencontainers.image.vendor", "Example Shop Ltd"),
    ("org.opencontainers.image.version", "2.14.3"),
];

/// The index in [`IMAGES`] of the image Compose lifecycles use (the last one).
const COMPOSE_IMAGE: usize = IMAGES.len() - 1;

const IMAGES: &[Image] = &[
    Image {
        reference: "nginx:1.21",
        labels: &[("maintainer", "NGINX Docker Maintainers <docker-maint@nginx.com>")],
        healthchecks: &["/bin/sh -c curl -fsS http://localhost/ || exit 1"],
    },
    Image { reference: "redis:6.2-alpine", labels: &[], healthchecks: &["redis-cli ping"] },
    Image { reference: "postgres:13.8", labels: &[], healthchecks: &["pg_isready -U postgres -d app"] },
    Image { reference: "busybox:1.35", labels: &[], healthchecks: &[] },
    Image { reference: "alpine:3.16", labels: &[], healthchecks: &[] },
    Image {
        reference: "registry.example.com/shop/api:2.14.3",
        labels: OCI_LABELS,
        healthchecks: &["/bin/sh -c wget -q -O- http://127.0.0.1:8080/healthz && test -f /tmp/ready"],
    },
];

const NAMES: &[&str] = &[
    "quirky_pike",
    "festive_hopper",
    "web-1",
    "ci-job-4821",
    "eager_lovelace",
    "cache",
    "db",
    "shop-api-7f9c",
    "nostalgic_turing",
    "runner-x8k2p-project-1412-concurrent-0-build",
];

const NETWORKS: &[(&str, &str)] = &[("bridge", "bridge"), ("shop_default", "bridge"), ("backend", "bridge")];

/// One event before it gets its time.
struct Spec {
    kind: &'static str,
    action: String,
    actor_id: String,
    attributes: BTreeMap<String, String>,
    /// API < 1.52 adds `status`/`id` (and `from` when the image is known) to container and image
    /// events.
    legacy: bool,
}

/// Event times: strictly increasing, 1 µs to 5 ms apart.
pub struct Clock {
    rng: Rng,
    time_nano: i64,
}

impl Clock {
    pub fn tick(&mut self) -> i64 {
        self.time_nano += 1_000 + self.rng.below(5_000_000) as i64;
        self.time_nano
    }
}

/// The generator: lifecycles of containers, rendered one event at a time.
pub struct EventLog {
    rng: Rng,
    pub clock: Clock,
    queue: std::collections::VecDeque<Spec>,
    networks: Vec<String>,
}

impl EventLog {
    pub fn new(seed: u64) -> EventLog {
        let mut rng = Rng(seed);
        let networks = NETWORKS.iter().map(|_| rng.id64()).collect();
        let clock = Clock { rng: Rng(seed ^ 0xc10c_c10c_c10c_c10c), time_nano: BASE_TIME_NANO };
        EventLog { rng, clock, queue: Default::default(), networks }
    }

    /// Appends the next event (one JSON object, no newline) to `out`.
    #[cfg(test)]
    pub fn next_event(&mut self, out: &mut Vec<u8>) {
        self.next_head(out);
        write_time(self.clock.tick(), out);
    }

    /// Appends the next event up to its time: everything before the value of `time`.
    pub fn next_head(&mut self, out: &mut Vec<u8>) {
        if self.queue.is_empty() {
            self.lifecycle();
        }
        if let Some(spec) = self.queue.pop_front() {
            render_head(&spec, out);
        }
    }

    /// Queues the events of one container's life, with the network, volume and image events
    /// around it.
    fn lifecycle(&mut self) {
        let r = &mut self.rng;
        // About one lifecycle in twelve is a Compose service of the (heavily labelled) shop API image;
        // the rest run stock images.
        let compose = r.chance(8);
        let image = if compose { &IMAGES[COMPOSE_IMAGE] } else { r.pick(&IMAGES[..COMPOSE_IMAGE]) };
        let container = r.id64();
        let name = if compose {
            format!("shop-{}-{}", ["api", "worker", "web"][r.below(3) as usize], 1 + r.below(3))
        } else {
            (*r.pick(NAMES)).to_owned()
        };
        let net = r.below(self.networks.len() as u64) as usize;
        let (net_id, (net_name, net_type)) = (self.networks[net].clone(), NETWORKS[net]);
        let volume = r.chance(30).then(|| r.id64());
        let pulls = r.chance(3);

        let mut base: BTreeMap<String, String> = BTreeMap::new();
        base.insert("image".into(), image.reference.into());
        base.insert("name".into(), name.clone());
        for (k, v) in image.labels {
            base.insert((*k).into(), (*v).into());
        }
        if compose {
            let project = "shop";
            let hash = r.id64();
            let image_id = format!("sha256:{}", r.id64());
            for (k, v) in [
                ("com.docker.compose.config-hash", hash.as_str()),
                ("com.docker.compose.container-number", "1"),
                ("com.docker.compose.depends_on", "db:service_healthy,cache:service_started"),
                ("com.docker.compose.image", image_id.as_str()),
                ("com.docker.compose.oneoff", "False"),
                ("com.docker.compose.project", project),
                ("com.docker.compose.project.config_files", "/srv/shop/docker-compose.yml"),
                ("com.docker.compose.project.working_dir", "/srv/shop"),
                ("com.docker.compose.service", "api"),
                ("com.docker.compose.version", "2.17.2"),
            ] {
                base.insert(k.into(), v.into());
            }
        }
        let with = |extra: &[(&str, String)]| {
            let mut a = base.clone();
            for (k, v) in extra {
                a.insert((*k).into(), v.clone());
            }
            a
        };
        let container_event = |action: String, attributes| Spec {
            kind: "container",
            action,
            actor_id: container.clone(),
            attributes,
            legacy: true,
        };
        let q = &mut self.queue;

        if pulls {
            let mut attrs = BTreeMap::new();
            attrs.insert("name".into(), image.reference.split(':').next().unwrap_or_default().to_owned());
            q.push_back(Spec {
                kind: "image",
                action: "pull".into(),
                actor_id: image.reference.into(),
                attributes: attrs,
                legacy: true,
            });
            let mut attrs = BTreeMap::new();
            attrs.insert("name".into(), image.reference.into());
            let id = format!("sha256:{}", r.id64());
            q.push_back(Spec { kind: "image", action: "tag".into(), actor_id: id, attributes: attrs, legacy: true });
        }
        if let Some(v) = &volume {
            q.push_back(Spec {
                kind: "volume",
                action: "create".into(),
                actor_id: v.clone(),
                attributes: attrs(&[("driver", "local")]),
                legacy: false,
            });
        }
        q.push_back(container_event("create".into(), with(&[])));
        q.push_back(Spec {
            kind: "network",
            action: "connect".into(),
            actor_id: net_id.clone(),
            attributes: attrs(&[("container", &container), ("name", net_name), ("type", net_type)]),
            legacy: false,
        });
        if let Some(v) = &volume {
            let a = attrs(&[
                ("container", &container),
                ("destination", "/data"),
                ("driver", "local"),
                ("propagation", ""),
                ("read/write", "true"),
            ]);
            q.push_back(Spec {
                kind: "volume",
                action: "mount".into(),
                actor_id: v.clone(),
                attributes: a,
                legacy: false,
            });
        }
        q.push_back(container_event("start".into(), with(&[])));
        // Healthchecks (services) or `docker exec` sessions (CI containers).
        let execs = if image.healthchecks.is_empty() { r.below(3) } else { 2 + r.below(7) };
        for n in 0..execs {
            let cmd = match image.healthchecks {
                [] => (*r.pick(&["sh", "/bin/sh -c cat /etc/os-release", "ls -la /data"])).to_owned(),
                h => (*r.pick(h)).to_owned(),
            };
            let exec_id = r.id64();
            q.push_back(container_event(format!("exec_create: {cmd}"), with(&[("execID", exec_id.clone())])));
            q.push_back(container_event(format!("exec_start: {cmd}"), with(&[("execID", exec_id.clone())])));
            q.push_back(container_event(
                "exec_die".into(),
                with(&[("execID", exec_id), ("exitCode", if r.chance(95) { "0".into() } else { "1".into() })]),
            ));
            if n == 0 && !image.healthchecks.is_empty() {
                q.push_back(container_event("health_status: healthy".into(), with(&[])));
            }
        }
        q.push_back(container_event("kill".into(), with(&[("signal", "15".into())])));
        q.push_back(container_event("die".into(), with(&[("exitCode", "0".into())])));
        q.push_back(Spec {
            kind: "network",
            action: "disconnect".into(),
            actor_id: net_id,
            attributes: attrs(&[("container", &container), ("name", net_name), ("type", net_type)]),
            legacy: false,
        });
        if let Some(v) = &volume {
            q.push_back(Spec {
                kind: "volume",
                action: "unmount".into(),
                actor_id: v.clone(),
                attributes: attrs(&[("container", &container), ("driver", "local")]),
                legacy: false,
            });
        }
        q.push_back(container_event("stop".into(), with(&[])));
        q.push_back(container_event("destroy".into(), with(&[])));
        if let Some(v) = volume {
            q.push_back(Spec {
                kind: "volume",
                action: "destroy".into(),
                actor_id: v,
                attributes: attrs(&[("driver", "local")]),
                legacy: false,
            });
        }
    }
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Writes one event the way Go's `json.Encoder` writes moby's `events.Message`, up to the
/// value of `time` ([`write_time`] finishes it).
fn render_head(spec: &Spec, out: &mut Vec<u8>) {
    out.push(b'{');
    if spec.legacy {
        out.extend_from_slice(b"\"status\":");
        go_string(&spec.action, out);
        out.extend_from_slice(b",\"id\":");
        go_string(&spec.actor_id, out);
        if spec.kind == "container"
            && let Some(image) = spec.attributes.get("image")
        {
            out.extend_from_slice(b",\"from\":");
            go_string(image, out);
        }
        out.push(b',');
    }
    out.extend_from_slice(b"\"Type\":");
    go_string(spec.kind, out);
    out.extend_from_slice(b",\"Action\":");
    go_string(&spec.action, out);
    out.extend_from_slice(b",\"Actor\":{\"ID\":");
    go_string(&spec.actor_id, out);
    out.extend_from_slice(b",\"Attributes\":{");
    for (i, (k, v)) in spec.attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        go_string(k, out);
        out.push(b':');
        go_string(v, out);
    }
    out.extend_from_slice(b"}},\"scope\":\"local\",\"time\":");
}

/// Ends an event after [`render_head`]: `<seconds>,"timeNano":<nanoseconds>}`.
fn write_time(time_nano: i64, out: &mut Vec<u8>) {
    write_decimal(time_nano.div_euclid(1_000_000_000) as u64, out);
    out.extend_from_slice(b",\"timeNano\":");
    write_decimal(time_nano as u64, out);
    out.push(b'}');
}

fn write_decimal(mut v: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn write_hex(mut v: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[v % 16];
        v /= 16;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A JSON string as Go's encoding/json writes it (HTML-safe: `<`, `>`, `&` as `\u00XX`).
fn go_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_found_whole_or_not_at_all() {
        let body = b"3\r\nab\n\r\n1a\r\nshort";
        assert_eq!(chunk_at(body, 0).unwrap(), Some((3..6, 8)));
        assert_eq!(chunk_at(body, 8).unwrap(), None);
        assert_eq!(chunk_at(body, body.len()).unwrap(), None);
        assert!(chunk_at(b"zz\r\nab\r\n", 0).is_err());
    }

    fn lines(n: u64) -> Vec<String> {
        let mut log = EventLog::new(SEED);
        (0..n)
            .map(|_| {
                let mut v = Vec::new();
                log.next_event(&mut v);
                String::from_utf8(v).expect("generated events are UTF-8")
            })
            .collect()
    }

    #[test]
    fn events_look_like_dockerd_20_10() {
        let lines = lines(2000);
        let mut last_time = 0i64;
        for l in &lines {
            assert!(l.starts_with('{') && l.ends_with('}'), "{l}");
            assert!(!l.contains('\n') && !l.contains('<') && !l.contains('&'), "{l}");
            let t: i64 =
                l.rsplit_once("\"timeNano\":").and_then(|(_, t)| t.trim_end_matches('}').parse().ok()).unwrap_or(0);
            assert!(t > last_time, "timeNano must increase: {l}");
            assert!(l.contains(&format!("\"time\":{},", t / 1_000_000_000)), "{l}");
            last_time = t;
            let container = l.contains("\"Type\":\"container\"");
            assert_eq!(container, l.starts_with("{\"status\":") && l.contains("\"from\":"), "{l}");
        }
        let sizes: Vec<usize> = lines.iter().map(String::len).collect();
        let avg = sizes.iter().sum::<usize>() / sizes.len();
        assert!((350..=800).contains(&avg), "average event size {avg}");
        assert!(sizes.iter().any(|&s| s > 1500), "some events carry labels");
        for action in [
            "create",
            "start",
            "exec_create: ",
            "exec_start: ",
            "exec_die",
            "die",
            "stop",
            "destroy",
            "connect",
            "disconnect",
            "tag",
        ] {
            assert!(lines.iter().any(|l| l.contains(&format!("\"Action\":\"{action}"))), "no {action}");
        }
        assert!(lines.iter().any(|l| l.contains("\\u0026\\u0026")), "Go escapes & in actions");
    }

    #[test]
    fn chunking_keeps_every_byte_and_event() {
        for chunking in [Chunking::Sized { min: 1000, max: 3000 }, Chunking::PerEvent] {
            let s = EncodedStream::generate(500, chunking);
            // Undo the framing.
            let mut body = &s.body[..];
            let mut data = Vec::new();
            while !body.is_empty() {
                let (head, rest) = body.split_at(body.iter().position(|&b| b == b'\r').unwrap_or(0));
                let len = usize::from_str_radix(std::str::from_utf8(head).unwrap_or(""), 16).unwrap_or(0);
                data.extend_from_slice(&rest[2..2 + len]);
                assert_eq!(&rest[2 + len..4 + len], b"\r\n");
                body = &rest[4 + len..];
            }
            let want: Vec<u8> = lines(500).iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            assert_eq!(data, want, "{chunking}");
            assert_eq!(s.first[0], lines(1)[0].as_bytes());
            assert_eq!(s.last.len(), KEEP);
        }
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        write_decimal(0, &mut v);
        v.push(b' ');
        write_decimal(1795792475014659607, &mut v);
        v.push(b' ');
        write_hex(0xfa3, &mut v);
        assert_eq!(v, b"0 1795792475014659607 fa3");
    }

    /// The criterion and allocation benchmarks of the daemon read a sample of this log from
    /// `docker-listener/benches/data/events.ndjson`; it must stay the generator's output.
    #[test]
    fn daemon_bench_fixture_is_this_log() {
        let fixture = std::fs::read_to_string(FIXTURE).unwrap_or_default();
        let n = fixture.lines().count() as u64;
        assert!(n > 0, "{FIXTURE} is missing: write it with {REGENERATE}");
        let want: String = lines(n).iter().map(|l| format!("{l}\n")).collect();
        assert!(fixture == want, "{FIXTURE} differs from the generator: rewrite it with {REGENERATE}");
    }

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-listener/benches/data/events.ndjson");
    const REGENERATE: &str = "cargo test -p xtask -- --ignored write_daemon_bench_fixture";

    /// Writes the fixture above (the first 1000 events of the log).
    #[test]
    #[ignore = "writes docker-listener/benches/data/events.ndjson"]
    fn write_daemon_bench_fixture() {
        let text: String = lines(1000).iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(FIXTURE, text).expect("cannot write the fixture");
    }
}
