//! Turns events into Wazuh frames.
//!
//! In: a [`DockerEvent`] (raw bytes) or an already-serialised JSON object of ours. Out: a
//! [`Frame`], the exact bytes of one datagram, as up to three [`Bytes`] pieces so that the
//! common case — a Docker event that needs no change — reaches the socket without its bytes being
//! copied or re-serialised: `[static prefix, Docker's bytes, static suffix]`.
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    docker::DockerEvent,
    shrink::{DOCKER_SKELETON, DOCKER_WHOLE, shrink_to_fit},
    stats::Stats,
    wazuh::{DOCKER_EVENT_PREFIX, DOCKER_EVENT_SUFFIX, FRAME_HEADER},
};

/// Closes a shrunk Docker event's frame: the event is followed by the truncation mark.
pub const TRUNCATED_SUFFIX: &[u8] = b",\"truncated\":true}";

/// Where a frame came from; the sink uses it to advance the resume cursor once delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Docker event with its `timeNano` and the hash of its raw bytes.
    Docker { time_nano: i64, hash: u64 },
    /// Our own events (process and socket events).
    Agent,
    /// A loss report: never dropped to make room in the output buffer.
    Report,
    /// A Docker event handled without a frame (an `ignore_actions` one, a passing healthcheck's
    /// folded into its summary): nothing is sent; the resume cursor moves past it once every
    /// frame before it is delivered (`Spool::push_all`), so that a restart does not read it
    /// again.
    Skipped { time_nano: i64, hash: u64 },
}

/// One datagram: the concatenation of `parts`.
#[derive(Debug, Clone)]
pub struct Frame {
    pub parts: [Bytes; 3],
    pub origin: Origin,
    /// The container it is about (`owner_of` its id; 0: none), so that a full output buffer
    /// drops the noisiest container's frames first (`sink::Spool`).
    pub owner: u64,
}

/// A container's key for `Frame::owner`: never 0 for a non-empty id.
pub fn owner_of(container_id: &str) -> u64 {
    if container_id.is_empty() { 0 } else { event_hash(container_id.as_bytes()) | 1 }
}

impl Frame {
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one contiguous buffer (copies; for tests and line-oriented outputs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for p in &self.parts {
            v.extend_from_slice(p);
        }
        v
    }

    /// The same frame, marked as a loss report.
    pub fn report(self) -> Frame {
        Frame { origin: Origin::Report, ..self }
    }

    /// The mark of a Docker event handled without sending it (`Origin::Skipped`); `None` for a
    /// frame of no Docker event.
    pub fn skipped(self) -> Option<Frame> {
        match self.origin {
            Origin::Docker { time_nano, hash } => Some(Frame::skip(time_nano, hash)),
            _ => None,
        }
    }

    /// The mark of the Docker event `(time_nano, hash)` handled without sending it.
    pub fn skip(time_nano: i64, hash: u64) -> Frame {
        Frame { parts: Default::default(), origin: Origin::Skipped { time_nano, hash }, owner: 0 }
    }

    /// A frame for one of our own JSON objects (`body` starts with `{`): the header in front.
    pub fn agent(body: Bytes) -> Frame {
        Frame { parts: [Bytes::from_static(FRAME_HEADER), body, Bytes::new()], origin: Origin::Agent, owner: 0 }
    }
}

/// A stable 64-bit hash of an event's raw bytes, for the duplicate check at a resume boundary:
/// the same across runs and builds (unlike std's randomly keyed SipHash), since the cursor file
/// stores it. Eight bytes per step (a byte-at-a-time FNV-1a cost a quarter of the Docker path's
/// CPU); only events with the very same `timeNano` are ever compared, so collisions do not
/// matter in practice.
pub fn event_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

#[derive(Debug, Clone)]
pub struct Encoder {
    max_event_size: usize,
    legacy_fields: bool,
    stats: Arc<Stats>,
}

impl Encoder {
    pub fn new(max_event_size: usize, legacy_fields: bool, stats: Arc<Stats>) -> Encoder {
        Encoder { max_event_size, legacy_fields, stats }
    }

    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// `1:Wazuh-Docker:{"integration":"docker","docker":<event>}`, never longer than
    /// `max_event_size`.
    pub fn docker(&self, ev: &DockerEvent) -> Frame {
        let origin = Origin::Docker { time_nano: ev.time_nano, hash: ev.hash };
        let owner = if ev.kind() == "container" { owner_of(ev.actor_id()) } else { 0 };
        let body = match self.legacy_fields.then(|| ev.legacy_members()).flatten() {
            Some(members) => with_leading_members(&ev.raw, &members),
            None => ev.raw.clone(),
        };
        let fixed = DOCKER_EVENT_PREFIX.len() + DOCKER_EVENT_SUFFIX.len();
        if fixed + body.len() <= self.max_event_size {
            return Frame {
                parts: [Bytes::from_static(DOCKER_EVENT_PREFIX), body, Bytes::from_static(DOCKER_EVENT_SUFFIX)],
                origin,
                owner,
            };
        }
        let budget = self.max_event_size - DOCKER_EVENT_PREFIX.len() - TRUNCATED_SUFFIX.len();
        // The skeleton always fits (max_event_size is at least MAX_EVENT_SIZE_MIN; tested in
        // shrink), and Docker's bytes were validated as a JSON object when they were read.
        let shrunk = serde_json::from_slice(&body)
            .ok()
            .and_then(|value| shrink_to_fit(value, budget, DOCKER_SKELETON, DOCKER_WHOLE))
            .unwrap_or_else(|| b"{}".to_vec());
        self.count_truncated(ev.raw.len());
        Frame {
            parts: [Bytes::from_static(DOCKER_EVENT_PREFIX), Bytes::from(shrunk), Bytes::from_static(TRUNCATED_SUFFIX)],
            origin,
            owner,
        }
    }

    /// A frame for one of our own events (`value` must serialise to a JSON object), written
    /// straight into the frame's buffer. Shrunk and marked `"truncated": true` at the top level
    /// when it does not fit; `None` (counted, logged) when not even its skeleton fits.
    pub fn agent<T: serde::Serialize + ?Sized>(&self, value: &T) -> Option<Frame> {
        self.agent_json(serialise(value))
    }

    /// A frame for one of the agent's own reports (loss reports: a few hundred bytes, far below
    /// the smallest `max_event_size`). One that carries text from outside (an agent-health
    /// event's reason: a kernel's error) is shrunk as events are when it does not fit; if not
    /// even its skeleton fits (counted as `events_lost_oversized`), it goes whole, for the
    /// output to refuse and count.
    pub fn report<T: serde::Serialize + ?Sized>(&self, value: &T) -> Frame {
        let json = serialise(value);
        if FRAME_HEADER.len() + json.len() <= self.max_event_size {
            return Frame::agent(json).report();
        }
        self.agent_json(json.clone()).unwrap_or_else(|| Frame::agent(json)).report()
    }

    /// A frame for one of our own events already serialised (a JSON object); see `agent`.
    pub fn agent_json(&self, json: Bytes) -> Option<Frame> {
        if FRAME_HEADER.len() + json.len() <= self.max_event_size {
            return Some(Frame::agent(json));
        }
        let original = json.len();
        let mut value: serde_json::Value = serde_json::from_slice(&json).ok()?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("truncated".into(), serde_json::Value::Bool(true));
        }
        let mut skeleton: Vec<&[&str]> = crate::ecs::SKELETON.to_vec();
        skeleton.push(&["truncated"]);
        match shrink_to_fit(value, self.max_event_size - FRAME_HEADER.len(), &skeleton, crate::ecs::WHOLE) {
            Some(shrunk) => {
                self.count_truncated(original);
                Some(Frame::agent(Bytes::from(shrunk)))
            }
            None => {
                let n = self.stats.events_lost_oversized.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::error!(
                        original_bytes = original,
                        max_event_size = self.max_event_size,
                        lost_total = n + 1,
                        "an event could not be shrunk to max_event_size without losing what it is about: not \
                         sent (counted in events_lost_oversized). Raise max_event_size"
                    );
                }
                None
            }
        }
    }

    fn count_truncated(&self, original: usize) {
        let n = self.stats.events_truncated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Warn on the first and then once per 1000, with the running count.
        if n.is_multiple_of(1000) {
            tracing::warn!(
                original_bytes = original,
                max_event_size = self.max_event_size,
                truncated_total = n + 1,
                "an event was larger than max_event_size: sent shrunk and marked \"truncated\": true \
                 (labels, argv and other long values cut first; ids kept). Raise max_event_size (up to 65535) if this is frequent."
            );
        }
    }
}

fn serialise<T: serde::Serialize + ?Sized>(value: &T) -> Bytes {
    let mut buf = Vec::with_capacity(1024);
    // Serialising into memory fails only for maps with non-string keys, which we never build.
    let _ = crate::json::write(&mut buf, value);
    Bytes::from(buf)
}

/// `{` + members + `,` + the rest of the object (or `}` if it was empty).
fn with_leading_members(raw: &[u8], members: &str) -> Bytes {
    let open = raw.iter().position(|&b| b == b'{').unwrap_or(0);
    let rest = &raw[open + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = BytesMut::with_capacity(raw.len() + members.len() + 2);
    out.put_u8(b'{');
    out.put_slice(members.as_bytes());
    if !empty {
        out.put_u8(b',');
    }
    out.put_slice(if empty { b"}" } else { rest });
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn enc(max: usize, legacy: bool) -> Encoder {
        Encoder::new(max, legacy, Arc::new(Stats::default()))
    }

    fn ev(raw: &str) -> DockerEvent {
        DockerEvent::parse(Bytes::copy_from_slice(raw.as_bytes())).unwrap()
    }

    const START: &str = r#"{"status":"start","id":"c1","from":"img","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"image":"img","name":"web"}},"scope":"local","time":1,"timeNano":1000000001}"#;

    #[test]
    fn the_event_hash_is_stable_and_sees_every_byte() {
        // Pinned: cursor files store these values.
        assert_eq!(event_hash(b""), 17_923_080_556_155_263_046);
        let a = event_hash(START.as_bytes());
        let mut changed = START.as_bytes().to_vec();
        for i in [0, 7, 8, START.len() - 1] {
            changed[i] ^= 1;
            assert_ne!(event_hash(&changed), a, "byte {i}");
            changed[i] ^= 1;
        }
        assert_ne!(event_hash(b"ab"), event_hash(b"ab\0"));
    }

    #[test]
    fn frame_is_wazuh_s_exact_framing_around_docker_s_bytes() {
        let e = ev(START);
        let f = enc(65535, false).docker(&e);
        let bytes = f.to_vec();
        let expected = format!("1:Wazuh-Docker:{{\"integration\":\"docker\",\"docker\":{START}}}");
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
        // Zero copy: the middle part is Docker's buffer itself.
        assert_eq!(f.parts[1].as_ptr(), e.raw.as_ptr());
        assert_eq!(f.origin, Origin::Docker { time_nano: 1000000001, hash: event_hash(START.as_bytes()) });
    }

    #[test]
    fn legacy_fields_are_added_only_when_missing() {
        let with = enc(65535, true).docker(&ev(START));
        assert_eq!(with.parts[1], Bytes::from_static(START.as_bytes()));
        let api152 = r#"{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"0","image":"img","name":"web"}},"scope":"local","time":1,"timeNano":2}"#;
        let f = enc(65535, true).docker(&ev(api152));
        let v: Value = serde_json::from_slice(&f.to_vec()["1:Wazuh-Docker:".len()..]).unwrap();
        assert_eq!(v["docker"]["status"], "die");
        assert_eq!(v["docker"]["id"], "c1");
        assert_eq!(v["docker"]["from"], "img");
        let keys: Vec<_> = v["docker"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]);
        let off = enc(65535, false).docker(&ev(api152));
        assert_eq!(off.parts[1], Bytes::from_static(api152.as_bytes()));
        let empty = enc(65535, true).docker(&ev(r#"{ }"#));
        assert_eq!(empty.parts[1], Bytes::from_static(b"{ }"));
        assert_eq!(&with_leading_members(b" { } ", "\"a\":1")[..], b"{\"a\":1}");
    }

    #[test]
    fn an_oversized_report_is_shrunk_not_dropped() {
        let e = enc(65535, false);
        let health = crate::ecs::agent_health_event("ebpf", "blind", &"verifier log line\n".repeat(70_000), "x");
        let f = e.report(&health);
        let bytes = f.to_vec();
        assert!(bytes.len() <= 65535, "{}", bytes.len());
        assert_eq!(f.origin, Origin::Report);
        let v: Value = serde_json::from_slice(&bytes[FRAME_HEADER.len()..]).unwrap();
        assert_eq!((v["truncated"].as_bool(), v["event"]["action"].as_str()), (Some(true), Some("agent-health")));
        assert_eq!(v["docker_listener"]["agent"]["status"], "blind");
    }

    #[test]
    fn oversized_events_are_shrunk_marked_and_counted() {
        let raw = json!({"Type": "container", "Action": "create", "Actor": {"ID": "c1", "Attributes": {"label": "x".repeat(1 << 20)}}, "timeNano": 7}).to_string();
        let e = enc(65535, false);
        let f = e.docker(&ev(&raw));
        let bytes = f.to_vec();
        assert!(bytes.len() <= 65535, "{}", bytes.len());
        let v: Value = serde_json::from_slice(&bytes[FRAME_HEADER.len()..]).unwrap();
        assert_eq!(v["truncated"], true);
        assert_eq!(v["integration"], "docker");
        assert_eq!(v["docker"]["Action"], "create");
        assert_eq!(Stats::get(&e.stats.events_truncated), 1);
        assert_eq!(f.origin, Origin::Docker { time_nano: 7, hash: event_hash(raw.as_bytes()) });
    }

    #[test]
    fn agent_frames_fit_too() {
        let e = enc(2048, false);
        let f = e.agent(&json!({"integration": "docker", "process": {"args": ["a".repeat(5000)]}})).unwrap();
        let bytes = f.to_vec();
        assert!(bytes.len() <= 2048);
        assert!(bytes.starts_with(FRAME_HEADER));
        let v: Value = serde_json::from_slice(&bytes[FRAME_HEADER.len()..]).unwrap();
        assert_eq!(v["truncated"], true);
    }

    const CONTAINER_ID: &str = "51aa4df537fa610da0dd65276a9b13114acec85ad824caad8b699caaf7bf5a32";

    /// A container whose labels (the image's author's to choose) are far over the limit: a
    /// thousand of them, 2,000 bytes each.
    fn labelled_start(name: &str) -> (String, Value) {
        let mut attrs: serde_json::Map<String, Value> =
            (0..1000).map(|i| (format!("l{i:04}"), Value::String("v".repeat(2000)))).collect();
        attrs.insert("image".into(), "registry.example.com/shop/web:1.2.3".into());
        attrs.insert("name".into(), name.into());
        let event = json!({"status": "start", "id": CONTAINER_ID, "from": "registry.example.com/shop/web:1.2.3",
            "Type": "container", "Action": "start", "Actor": {"ID": CONTAINER_ID, "Attributes": attrs},
            "scope": "local", "time": 1796277374, "timeNano": 1796277374713068557_i64});
        (event.to_string(), event)
    }

    /// The Docker event inside a shrunk frame, checked for the framing and the size.
    fn shrunk_docker(f: &Frame, max: usize) -> Value {
        let bytes = f.to_vec();
        assert!(bytes.len() <= max, "{} > {max}", bytes.len());
        assert!(bytes.starts_with(DOCKER_EVENT_PREFIX) && bytes.ends_with(TRUNCATED_SUFFIX));
        let v: Value = serde_json::from_slice(&bytes[FRAME_HEADER.len()..]).expect("valid JSON");
        assert_eq!((&v["integration"], &v["truncated"]), (&json!("docker"), &json!(true)));
        v["docker"].clone()
    }

    #[test]
    fn labels_cannot_push_a_container_s_identity_out_of_a_shrunk_event() {
        let (raw, event) = labelled_start("web-1");
        for max in [65535, 16384, 4096, 1024] {
            let docker = shrunk_docker(&enc(max, false).docker(&ev(&raw)), max);
            for key in ["status", "id", "from", "Type", "Action", "scope", "time", "timeNano"] {
                assert_eq!(docker[key], event[key], "{key} at {max}");
            }
            assert_eq!(docker["Actor"]["ID"], CONTAINER_ID, "at {max}");
            assert_eq!(docker["Actor"]["Attributes"]["name"], "web-1", "at {max}");
            assert_eq!(docker["Actor"]["Attributes"]["image"], "registry.example.com/shop/web:1.2.3", "at {max}");
            // The labels kept are cut and marked; those left out leave the skeleton.
            let attrs = docker["Actor"]["Attributes"].as_object().expect("attributes");
            for (k, v) in attrs.iter().filter(|(k, _)| !["name", "image"].contains(&k.as_str())) {
                assert!(v.as_str().is_some_and(|s| s.ends_with('…') && s.len() < 2000), "{k} at {max}");
            }
        }
    }

    #[test]
    fn a_hostile_container_name_is_cut_but_not_the_container_s_id() {
        let (raw, event) = labelled_start(&"\u{1}".repeat(100_000));
        for max in [65535, 4096, 1024] {
            let docker = shrunk_docker(&enc(max, false).docker(&ev(&raw)), max);
            assert_eq!(docker["Actor"]["ID"], CONTAINER_ID, "at {max}");
            assert_eq!(docker["id"], CONTAINER_ID, "at {max}");
            for key in ["Type", "Action", "scope", "time", "timeNano"] {
                assert_eq!(docker[key], event[key], "{key} at {max}");
            }
            let name = docker["Actor"]["Attributes"]["name"].as_str().expect("the name, cut");
            assert!(name.starts_with('\u{1}') && name.ends_with('…'), "at {max}");
        }
    }

    #[test]
    fn args_and_labels_cannot_push_a_process_s_container_out_of_a_shrunk_event() {
        let labels: serde_json::Map<String, Value> =
            (0..64).map(|i| (format!("label{i}"), Value::String("v".repeat(60)))).collect();
        for container_name in ["web-1".to_owned(), "n".repeat(100_000)] {
            let event = json!({"integration": "docker", "@timestamp": "2026-12-01T17:53:01.289385331Z",
                "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec",
                          "outcome": "success", "module": "docker-listener", "dataset": "docker_listener.process"},
                "process": {"pid": 4242, "entity_id": "0123456789abcdef", "executable": "/bin/sh", "name": "sh",
                            "args": vec!["\u{1}".repeat(2000); 100]},
                "container": {"id": CONTAINER_ID, "name": container_name,
                              "image": {"name": "registry.example.com/shop/web:1.2.3"}, "labels": labels},
                "docker_listener": {"syscall": {"name": "execve", "ret": 0}}});
            for max in [65535, 4096, 1024] {
                let f = enc(max, false).agent(&event).expect("the skeleton fits");
                let bytes = f.to_vec();
                assert!(bytes.len() <= max && bytes.starts_with(FRAME_HEADER), "{} > {max}", bytes.len());
                let v: Value = serde_json::from_slice(&bytes[FRAME_HEADER.len()..]).expect("valid JSON");
                assert_eq!(v["truncated"], true);
                assert_eq!(v["container"]["id"], CONTAINER_ID, "at {max}");
                assert_eq!(v["process"]["pid"], 4242);
                assert_eq!(v["event"], event["event"], "at {max}");
                assert_eq!(v["@timestamp"], event["@timestamp"]);
                assert_eq!(v["container"]["image"]["name"], "registry.example.com/shop/web:1.2.3", "at {max}");
                let name = v["container"]["name"].as_str().expect("the name");
                if container_name.len() < 100 {
                    assert_eq!(name, container_name, "at {max}");
                } else {
                    assert!(name.starts_with("nnn") && name.ends_with('…'), "at {max}");
                }
                for a in v["process"]["args"].as_array().into_iter().flatten() {
                    assert!(a.as_str().is_some_and(|s| s.ends_with('…')), "at {max}");
                }
            }
        }
    }

    proptest! {
        /// Any JSON object Docker could send becomes a valid frame no longer than the limit,
        /// carrying the same event when it fits.
        #[test]
        fn any_event_round_trips_into_a_valid_bounded_frame(
            attrs in prop::collection::btree_map("[a-zA-Z0-9._-]{1,30}", ".{0,3000}", 0..40),
            action in ".{0,200}",
            max in 1024usize..=65535,
            legacy in any::<bool>(),
        ) {
            let event = json!({"Type": "container", "Action": action, "Actor": {"ID": "abc", "Attributes": attrs}, "scope": "local", "time": 1, "timeNano": 1000000001});
            let raw = serde_json::to_string(&event).unwrap();
            let f = enc(max, legacy).docker(&ev(&raw));
            let bytes = f.to_vec();
            prop_assert!(bytes.len() <= max);
            prop_assert!(bytes.starts_with(FRAME_HEADER));
            let v: Value = serde_json::from_slice(&bytes[FRAME_HEADER.len()..]).unwrap();
            prop_assert_eq!(&v["integration"], "docker");
            if v.get("truncated").is_none() {
                let mut docker = v["docker"].clone();
                if legacy {
                    let o = docker.as_object_mut().unwrap();
                    prop_assert_eq!(o.remove("status"), Some(Value::String(action.clone())));
                    prop_assert_eq!(o.remove("id"), Some(Value::String("abc".into())));
                }
                prop_assert_eq!(docker, event);
            }
        }
    }
}
