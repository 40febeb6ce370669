//! Shrinks a JSON object so its serialisation fits a byte budget, keeping it valid JSON with the
//! same keys in the same order. Used for the rare event larger than Wazuh's datagram limit.
//!
//! Each kind of event names its skeleton: the fields that say what happened, to what, where
//! (Docker's `DOCKER_SKELETON`, ours `ecs::SKELETON`), and among them those kept whole, what
//! Docker, the kernel or the agent wrote and no container chooses (`DOCKER_WHOLE`,
//! `ecs::WHOLE`: a container's id, a pid, what happened). So what a container chooses (its
//! labels, argv, even its name) never pushes out what the event is about, however much of it
//! there is.
//!
//! Strategy, cheapest information loss first:
//! 1. cut the longest strings outside the skeleton down to a common cap ("water-filling": one
//!    pass finds the largest cap that frees enough bytes), each cut marked with a trailing `…`;
//! 2. cut the skeleton's own long strings (a hostile container name), not below `SKELETON_KEEP`,
//!    those kept whole untouched, every key still kept;
//! 3. if that is still too big, keep only the skeleton, its strings cut the same way, those kept
//!    whole last: one too long for the budget by itself (a volume's id is its name, which its
//!    creator chose) is cut too rather than the event lost;
//! 4. failing that, nothing: the caller counts the event as lost. An empty object is never a
//!    valid event.
use serde_json::{Map, Value};

/// Strings outside the skeleton are not cut shorter than this (plus the marker)...
const MIN_KEEP: usize = 32;
/// ...nor the skeleton's while anything else is kept (no name, image or path meant to be read
/// is longer)...
const SKELETON_KEEP: usize = 256;
/// ...and only the skeleton's are cut shorter than `MIN_KEEP`, when it needs it (strings of
/// control characters, six bytes each in JSON).
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

/// What of a Docker event is cut only when its skeleton cannot fit otherwise: what dockerd
/// writes itself (a container's id, the kind of object, the time), not what its client chose
/// (a name, an image, labels, an exec's command line in `Action` and `status`).
pub const DOCKER_WHOLE: &[&[&str]] = &[&["id"], &["Type"], &["Actor", "ID"], &["scope"], &["time"], &["timeNano"]];

/// Returns the serialisation of `value` shrunk to at most `budget` bytes, or `None` when not
/// even its `skeleton` fits. The strings at `whole` (and below it) are cut last, after every
/// other string of the skeleton; `whole` is part of the skeleton. The result is a JSON object
/// when `value` is one.
pub fn shrink_to_fit(mut value: Value, budget: usize, skeleton: &[&[&str]], whole: &[&[&str]]) -> Option<Vec<u8>> {
    let paths = Paths { skeleton, whole };
    if let Some(out) = cap_until_fits(&mut value, budget, &paths, Tier::Rest, MIN_KEEP) {
        return Some(out);
    }
    // Taken before the skeleton's strings are cut to `SKELETON_KEEP` (next): if the rest of the
    // event still does not fit then, the skeleton alone keeps them as they were.
    let mut skeleton = skeleton_of(&value, &paths);
    if let Some(out) = cap_until_fits(&mut value, budget, &paths, Tier::Skeleton, SKELETON_KEEP) {
        return Some(out);
    }
    [(Tier::Skeleton, MIN_KEEP), (Tier::Skeleton, LAST_KEEP), (Tier::Whole, MIN_KEEP), (Tier::Whole, LAST_KEEP)]
        .into_iter()
        .find_map(|(upto, keep)| cap_until_fits(&mut skeleton, budget, &paths, upto, keep))
}

/// How long a string is kept, by where it is: the higher, the later it is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Rest,
    Skeleton,
    Whole,
}

struct Paths<'p> {
    skeleton: &'p [&'p [&'p str]],
    whole: &'p [&'p [&'p str]],
}

impl Paths<'_> {
    /// The tier of what is at `path` (object keys from the top; an array's items are at their
    /// array's path): a path's tier holds for everything below it.
    fn tier(&self, path: &[&str]) -> Tier {
        if self.whole.iter().any(|p| path.starts_with(p)) {
            Tier::Whole
        } else if self.skeleton.iter().any(|p| path.starts_with(p)) {
            Tier::Skeleton
        } else {
            Tier::Rest
        }
    }
}

/// Cuts the strings of tier `upto` or lower, not below `keep` bytes (plus the marker), until
/// the serialisation fits `budget`; `None` if it cannot.
fn cap_until_fits(value: &mut Value, budget: usize, paths: &Paths, upto: Tier, keep: usize) -> Option<Vec<u8>> {
    for _ in 0..4 {
        let out = to_vec(value);
        if out.len() <= budget {
            return Some(out);
        }
        if !cap_longest_strings(value, out.len() - budget, paths, upto, keep) {
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

/// Cuts the longest strings of tier `upto` or lower to a common cap so that at least `excess`
/// bytes are freed (cutting n raw bytes frees at least n serialised bytes, escapes only make it
/// more). Returns false if nothing could be cut.
fn cap_longest_strings(value: &mut Value, excess: usize, paths: &Paths, upto: Tier, keep: usize) -> bool {
    let mut lens = Vec::new();
    collect_string_lens(value, &mut Vec::new(), paths, upto, &mut lens);
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
    cap_strings(value, &mut Vec::new(), paths, upto, cap);
    true
}

fn collect_string_lens<'v>(v: &'v Value, path: &mut Vec<&'v str>, paths: &Paths, upto: Tier, out: &mut Vec<usize>) {
    match v {
        Value::String(s) if paths.tier(path) <= upto => out.push(s.len()),
        Value::Array(a) => a.iter().for_each(|x| collect_string_lens(x, path, paths, upto, out)),
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k);
                collect_string_lens(x, path, paths, upto, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn cap_strings<'v>(v: &'v mut Value, path: &mut Vec<&'v str>, paths: &Paths, upto: Tier, cap: usize) {
    match v {
        Value::String(s) if s.len() > cap && paths.tier(path) <= upto => {
            let mut keep = cap.saturating_sub(MARK.len());
            while !s.is_char_boundary(keep) {
                keep -= 1;
            }
            s.truncate(keep);
            s.push_str(MARK);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| cap_strings(x, path, paths, upto, cap)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                path.push(k);
                cap_strings(x, path, paths, upto, cap);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The skeleton's paths (and those kept whole) of `v`, in the skeleton's order.
fn skeleton_of(v: &Value, paths: &Paths) -> Value {
    let mut out = Map::new();
    for path in paths.skeleton.iter().chain(paths.whole) {
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
        assert_eq!(shrink_to_fit(v, 100, DOCKER_SKELETON, DOCKER_WHOLE).unwrap(), br#"{"b":1,"a":"x"}"#.to_vec());
    }

    #[test]
    fn the_longest_value_is_cut_first_and_order_is_kept() {
        let v = json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"big": "y".repeat(10_000), "name": "n"}}});
        let out = shrink_to_fit(v, 1000, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
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
        let out = shrink_to_fit(v, 60_000, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
        assert!(out.len() <= 60_000 && out.len() > 50_000, "{}", out.len());
    }

    #[test]
    fn too_many_keys_falls_back_to_the_skeleton() {
        let attrs: Map<String, Value> = (0..5000).map(|i| (format!("label{i}"), Value::from(i))).collect();
        let v = json!({"Type": "container", "Action": "create", "Actor": {"ID": "abc", "Attributes": attrs}, "timeNano": 5});
        let out = shrink_to_fit(v, 2000, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
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
            let out = shrink_to_fit(v, budget, DOCKER_SKELETON, DOCKER_WHOLE).expect("always fits");
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
        let out = shrink_to_fit(v.clone(), 2000, crate::ecs::SKELETON, crate::ecs::WHOLE).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["process"]["executable"], "/bin/sh");
        assert_eq!(back["container"]["name"], "web");
        assert_eq!(back["event"]["action"], "exec");
        assert!(back["container"].get("labels").is_none());
        assert_eq!(shrink_to_fit(v, 20, crate::ecs::SKELETON, crate::ecs::WHOLE), None, "nothing rather than {{}}");
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
        let out = shrink_to_fit(v, budget, crate::ecs::SKELETON, crate::ecs::WHOLE).expect("the skeleton fits");
        assert!(out.len() <= budget);
    }

    const ID: &str = "51aa4df537fa610da0dd65276a9b13114acec85ad824caad8b699caaf7bf5a32";

    /// A container event with everything its creator chooses hostile: `n` labels of `len`
    /// bytes, and a name, an image and an exec's command line of `hostile`.
    fn hostile_docker_event(n: usize, len: usize, hostile: &str) -> Value {
        let mut attrs: Map<String, Value> = (0..n).map(|i| (format!("l{i}"), Value::String("v".repeat(len)))).collect();
        attrs.insert("name".into(), hostile.into());
        attrs.insert("image".into(), hostile.into());
        json!({"status": format!("exec_start: {hostile}"), "id": ID, "from": hostile, "Type": "container",
            "Action": format!("exec_start: {hostile}"), "Actor": {"ID": ID, "Attributes": attrs},
            "scope": "local", "time": 1796277374, "timeNano": 1796277374713068557_i64})
    }

    fn docker_budget(max_event_size: usize) -> usize {
        max_event_size - crate::wazuh::DOCKER_EVENT_PREFIX.len() - crate::encode::TRUNCATED_SUFFIX.len()
    }

    #[test]
    fn what_dockerd_writes_outlasts_everything_a_container_chooses() {
        for hostile in ["é".repeat(100_000), "\u{1}".repeat(100_000), "web".into()] {
            for (n, len) in [(1000, 2000), (5000, 1), (3, 10)] {
                let v = hostile_docker_event(n, len, &hostile);
                for max in [crate::config::MAX_EVENT_SIZE_MIN, 4096, 65535] {
                    let budget = docker_budget(max);
                    let Some(out) = shrink_to_fit(v.clone(), budget, DOCKER_SKELETON, DOCKER_WHOLE) else {
                        assert!(serde_json::to_vec(&v).unwrap().len() <= budget, "lost at {max}");
                        continue;
                    };
                    assert!(out.len() <= budget);
                    let back: Value = serde_json::from_slice(&out).unwrap();
                    for key in ["id", "Type", "scope", "time", "timeNano"] {
                        assert_eq!(back[key], v[key], "{key} at {max}, {n} labels");
                    }
                    assert_eq!(back["Actor"]["ID"], ID, "at {max}, {n} labels");
                    let name = back["Actor"]["Attributes"]["name"].as_str().unwrap();
                    if hostile.len() > 100 {
                        assert!(name.ends_with('…') && hostile.starts_with(name.trim_end_matches('…')));
                    } else {
                        assert_eq!(name, hostile, "at {max}, {n} labels");
                        assert_eq!(back["Action"], v["Action"], "at {max}, {n} labels");
                    }
                }
            }
        }
    }

    #[test]
    fn the_skeleton_s_own_long_strings_are_cut_before_the_rest_is_left_out() {
        // A hostile name and a few short labels: the name is cut (to no less than
        // SKELETON_KEEP), the labels stay whole.
        let v = hostile_docker_event(3, 10, &"x".repeat(100_000));
        let out = shrink_to_fit(v, 4000, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["Actor"]["Attributes"]["l0"], "v".repeat(10));
        let name = back["Actor"]["Attributes"]["name"].as_str().unwrap();
        assert!(name.len() >= SKELETON_KEEP && name.ends_with('…'), "{}", name.len());
        assert_eq!(back["Actor"]["ID"], ID);
        // Labels whose keys alone are over the budget are left out first, and a name no
        // longer than SKELETON_KEEP is kept whole.
        let v = hostile_docker_event(5000, 1, &"x".repeat(200));
        let out = shrink_to_fit(v, 4000, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["Actor"]["Attributes"]["name"], "x".repeat(200));
        assert!(back["Actor"]["Attributes"].get("l0").is_none());
        // A name (and image, from, action) longer than SKELETON_KEEP among labels left out:
        // the skeleton alone has room for them whole, and keeps them so.
        let v = hostile_docker_event(5000, 1, &"x".repeat(600));
        let out = shrink_to_fit(v, 4000, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["Actor"]["Attributes"]["name"], "x".repeat(600));
        assert_eq!(back["from"], "x".repeat(600));
        assert!(back["Actor"]["Attributes"].get("l0").is_none());
    }

    #[test]
    fn the_paths_kept_whole_are_in_the_skeleton() {
        for (skeleton, whole) in [(DOCKER_SKELETON, DOCKER_WHOLE), (crate::ecs::SKELETON, crate::ecs::WHOLE)] {
            for w in whole {
                assert!(skeleton.iter().any(|p| w.starts_with(p)), "{w:?}");
            }
        }
    }

    #[test]
    fn multibyte_characters_are_not_split() {
        let v = json!({"a": "é".repeat(1000)});
        let out = shrink_to_fit(v, 300, DOCKER_SKELETON, DOCKER_WHOLE).unwrap();
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
        // Each case shrinks events of up to ~1 MB several times: fewer cases.
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever a container's creator chooses (labels, name, image, an exec's command line),
        /// what dockerd writes is kept whole at any max_event_size.
        #[test]
        fn a_container_s_identity_is_never_cut(
            attrs in prop::collection::btree_map(".{1,40}", (".{0,40}", 1usize..100), 0..60),
            hostile in "(.|[\u{0}-\u{1f}]){0,200}",
            repeat in 1usize..500,
            max in crate::config::MAX_EVENT_SIZE_MIN..=65535,
        ) {
            let hostile = hostile.repeat(repeat);
            let mut v = hostile_docker_event(0, 0, &hostile);
            for (k, (x, n)) in attrs {
                v["Actor"]["Attributes"][k] = Value::String(x.repeat(n));
            }
            let budget = docker_budget(max);
            let out = shrink_to_fit(v.clone(), budget, DOCKER_SKELETON, DOCKER_WHOLE).expect("the skeleton fits");
            prop_assert!(out.len() <= budget);
            let back: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&back["Actor"]["ID"], ID);
            for key in ["id", "Type", "scope", "time", "timeNano"] {
                prop_assert_eq!(&back[key], &v[key]);
            }
        }
    }

    proptest! {
        #[test]
        fn always_fits_and_stays_a_valid_object(
            members in prop::collection::vec((".{0,20}", arb_json()), 0..20),
            budget in 2usize..5000,
        ) {
            let v = Value::Object(members.into_iter().collect());
            let Some(out) = shrink_to_fit(v.clone(), budget, DOCKER_SKELETON, DOCKER_WHOLE) else {
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
