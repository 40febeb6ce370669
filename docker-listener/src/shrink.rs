//! Shrinks a JSON object so its serialisation fits a byte budget, keeping it valid JSON with the
//! same keys in the same order. Used for the rare event larger than Wazuh's datagram limit.
//!
//! Strategy, cheapest information loss first:
//! 1. cut the longest string values down to a common cap ("water-filling": one pass finds the
//!    largest cap that frees enough bytes), each cut marked with a trailing `…`;
//! 2. if the keys and short values alone are still too big, keep only a skeleton: the fields
//!    that say what happened, to what, where (each kind of event names its own: Docker's
//!    `DOCKER_SKELETON`, ours `ecs::SKELETON`), with their strings capped the same way;
//! 3. failing that, nothing: the caller counts the event as lost. An empty object is never a
//!    valid event.
use serde_json::{Map, Value};

/// Strings are not cut shorter than this (plus the marker)...
const MIN_KEEP: usize = 32;
/// ...unless the skeleton needs it (strings of control characters, six bytes each in JSON).
const LAST_KEEP: usize = 4;
const MARK: &str = "…";

/// What a Docker event keeps when it is shrunk to its skeleton, by path. With strings capped at
/// `LAST_KEEP`, it always fits `config::MAX_EVENT_SIZE_MIN` (tested below).
pub const DOCKER_SKELETON: &[&[&str]] = &[
    &["status"],
    &["id"],
    &["from"],
    &["Type"],
    &["Action"],
    &["Actor", "ID"],
    &["Actor", "Attributes", "name"],
    &["Actor", "Attributes", "image"],
    &["scope"],
    &["time"],
    &["timeNano"],
];

/// Returns the serialisation of `value` shrunk to at most `budget` bytes, or `None` when not
/// even its `skeleton` fits. The result is a JSON object when `value` is one.
pub fn shrink_to_fit(mut value: Value, budget: usize, skeleton: &[&[&str]]) -> Option<Vec<u8>> {
    if let Some(out) = cap_until_fits(&mut value, budget) {
        return Some(out);
    }
    let mut skeleton = skeleton_of(&value, skeleton);
    cap_until_fits(&mut skeleton, budget).or_else(|| cap_until_fits_keeping(&mut skeleton, budget, LAST_KEEP))
}

fn cap_until_fits(value: &mut Value, budget: usize) -> Option<Vec<u8>> {
    cap_until_fits_keeping(value, budget, MIN_KEEP)
}

fn cap_until_fits_keeping(value: &mut Value, budget: usize, keep: usize) -> Option<Vec<u8>> {
    for _ in 0..4 {
        let out = to_vec(value);
        if out.len() <= budget {
            return Some(out);
        }
        if !cap_longest_strings(value, out.len() - budget, keep) {
            break;
        }
    }
    let out = to_vec(value);
    (out.len() <= budget).then_some(out)
}

fn to_vec(v: &Value) -> Vec<u8> {
    // Serialising a Value cannot fail (its map keys are strings).
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// Cuts the longest strings to a common cap so that at least `excess` bytes are freed (cutting
/// n raw bytes frees at least n serialised bytes, escapes only make it more). Returns false if
/// nothing could be cut.
fn cap_longest_strings(value: &mut Value, excess: usize, keep: usize) -> bool {
    let mut lens = Vec::new();
    collect_string_lens(value, &mut lens);
    lens.retain(|&l| l > keep + MARK.len());
    if lens.is_empty() {
        return false;
    }
    lens.sort_unstable_by(|a, b| b.cmp(a));
    // Largest cap such that sum(len - cap for len > cap) >= excess, the cap counting the marker.
    let mut freed_above = 0usize; // sum of lens[..k]
    let mut cap = keep + MARK.len();
    for k in 1..=lens.len() {
        freed_above += lens[k - 1];
        let next = lens.get(k).copied().unwrap_or(keep + MARK.len()).max(keep + MARK.len());
        // With cap c in [next, lens[k-1]], the first k strings free freed_above - k*c.
        if freed_above.saturating_sub(k * next) >= excess {
            let c = (freed_above - excess) / k;
            cap = c.clamp(next, lens[k - 1]);
            break;
        }
    }
    cap_strings(value, cap);
    true
}

fn collect_string_lens(v: &Value, out: &mut Vec<usize>) {
    match v {
        Value::String(s) => out.push(s.len()),
        Value::Array(a) => a.iter().for_each(|x| collect_string_lens(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_string_lens(x, out)),
        _ => {}
    }
}

fn cap_strings(v: &mut Value, cap: usize) {
    match v {
        Value::String(s) if s.len() > cap => {
            let mut keep = cap.saturating_sub(MARK.len());
            while !s.is_char_boundary(keep) {
                keep -= 1;
            }
            s.truncate(keep);
            s.push_str(MARK);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| cap_strings(x, cap)),
        Value::Object(m) => m.values_mut().for_each(|x| cap_strings(x, cap)),
        _ => {}
    }
}

fn skeleton_of(v: &Value, skeleton: &[&[&str]]) -> Value {
    let mut out = Map::new();
    for path in skeleton {
        if let Some(found) = path.iter().try_fold(v, |cur, k| cur.get(k)) {
            insert_path(&mut out, path, found.clone());
        }
    }
    Value::Object(out)
}

fn insert_path(map: &mut Map<String, Value>, path: &[&str], leaf: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert((*last).to_owned(), leaf);
        }
        [first, rest @ ..] => {
            let child = map.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                insert_path(m, rest, leaf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn small_values_are_untouched() {
        let v = json!({"b": 1, "a": "x"});
        assert_eq!(shrink_to_fit(v, 100, DOCKER_SKELETON).unwrap(), br#"{"b":1,"a":"x"}"#.to_vec());
    }

    #[test]
    fn the_longest_value_is_cut_first_and_order_is_kept() {
        let v = json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"big": "y".repeat(10_000), "name": "n"}}});
        let out = shrink_to_fit(v, 1000, DOCKER_SKELETON).unwrap();
        assert!(out.len() <= 1000, "{}", out.len());
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["Actor"]["Attributes"]["name"], "n");
        assert_eq!(back["Action"], "start");
        assert!(back["Actor"]["Attributes"]["big"].as_str().unwrap().ends_with('…'));
        let keys: Vec<_> = back.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["Type", "Action", "Actor"]);
    }

    #[test]
    fn many_medium_strings_are_capped_together() {
        let attrs: Map<String, Value> = (0..500).map(|i| (format!("l{i}"), Value::String("z".repeat(2000)))).collect();
        let v = json!({"Type": "container", "Actor": {"Attributes": attrs}});
        let out = shrink_to_fit(v, 60_000, DOCKER_SKELETON).unwrap();
        assert!(out.len() <= 60_000 && out.len() > 50_000, "{}", out.len());
    }

    #[test]
    fn too_many_keys_falls_back_to_the_skeleton() {
        let attrs: Map<String, Value> = (0..5000).map(|i| (format!("label{i}"), Value::from(i))).collect();
        let v = json!({"Type": "container", "Action": "create", "Actor": {"ID": "abc", "Attributes": attrs}, "timeNano": 5});
        let out = shrink_to_fit(v, 2000, DOCKER_SKELETON).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, json!({"Type": "container", "Action": "create", "Actor": {"ID": "abc"}, "timeNano": 5}));
    }

    #[test]
    fn the_docker_skeleton_always_fits_the_smallest_max_event_size() {
        // Control characters are escaped six bytes each: the worst case for the JSON's length.
        for huge in ["é".repeat(100_000), "\u{1}".repeat(100_000)] {
            let v = json!({"status": huge, "id": huge, "from": huge, "Type": huge, "Action": huge,
                "Actor": {"ID": huge, "Attributes": {"name": huge, "image": huge}}, "scope": huge,
                "time": i64::MAX, "timeNano": i64::MAX});
            // What encode::Encoder::docker leaves for the event at the smallest max_event_size.
            let budget = crate::config::MAX_EVENT_SIZE_MIN
                - crate::wazuh::DOCKER_EVENT_PREFIX.len()
                - crate::encode::TRUNCATED_SUFFIX.len();
            let out = shrink_to_fit(v, budget, DOCKER_SKELETON).expect("always fits");
            assert!(out.len() <= budget);
        }
    }

    #[test]
    fn our_events_keep_their_own_skeleton_or_are_lost() {
        let labels: Map<String, Value> = (0..5000).map(|i| (format!("label{i}"), Value::from(i))).collect();
        let v = json!({"integration": "docker", "event": {"action": "exec", "outcome": "success"},
            "process": {"pid": 7, "executable": "/bin/sh", "name": "sh", "args": vec!["a"; 100]},
            "container": {"id": "abc", "name": "web", "labels": labels},
            "docker_listener": {"cpu": 1, "syscall": {"name": "execve", "ret": 0}}});
        let out = shrink_to_fit(v.clone(), 2000, crate::ecs::SKELETON).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["process"]["executable"], "/bin/sh");
        assert_eq!(back["container"]["name"], "web");
        assert_eq!(back["event"]["action"], "exec");
        assert!(back["container"].get("labels").is_none());
        assert_eq!(shrink_to_fit(v, 20, crate::ecs::SKELETON), None, "nothing rather than {{}}");
        // Hostile strings in everything a process in a container chooses (its file names and
        // argv: executable, name, applet, the path given to execve, its parent's executable),
        // long ones elsewhere: the skeleton still fits the smallest budget.
        let h = "\u{1}".repeat(50_000);
        let long = "x".repeat(5_000);
        let v = json!({"integration": "docker", "@timestamp": "2026-12-01T17:53:01.289385331Z",
            "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec",
                      "outcome": "success", "module": "docker-listener", "dataset": "docker_listener.process",
                      "sequence": 1},
            "process": {"pid": 7, "entity_id": "0123456789abcdef", "executable": h, "name": h, "applet": h,
                        "parent": {"pid": 1, "executable": h}, "args": [long]},
            "container": {"id": long, "name": long, "image": {"name": long}},
            "docker_listener": {"syscall": {"name": "execve", "ret": 0, "abi": "ia32"}, "exec": {"filename": h}}});
        let budget = crate::config::MAX_EVENT_SIZE_MIN - crate::wazuh::FRAME_HEADER.len();
        let out = shrink_to_fit(v, budget, crate::ecs::SKELETON).expect("the skeleton fits");
        assert!(out.len() <= budget);
    }

    #[test]
    fn multibyte_characters_are_not_split() {
        let v = json!({"a": "é".repeat(1000)});
        let out = shrink_to_fit(v, 300, DOCKER_SKELETON).unwrap();
        assert!(out.len() <= 300);
        assert!(std::str::from_utf8(&out).is_ok());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,300}".prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}]{0,50}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 200, 20, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
                prop::collection::vec((".{0,20}", inner), 0..20).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn always_fits_and_stays_a_valid_object(
            members in prop::collection::vec((".{0,20}", arb_json()), 0..20),
            budget in 2usize..5000,
        ) {
            let v = Value::Object(members.into_iter().collect());
            let Some(out) = shrink_to_fit(v.clone(), budget, DOCKER_SKELETON) else {
                // Only when not even the skeleton of what it has fits.
                prop_assert!(budget < 1024);
                return Ok(());
            };
            prop_assert!(out.len() <= budget, "{} > {}", out.len(), budget);
            let back: Value = serde_json::from_slice(&out).unwrap();
            prop_assert!(back.is_object());
            if serde_json::to_vec(&v).unwrap().len() <= budget {
                prop_assert_eq!(back, v);
            }
        }
    }
}
