//! The labels our events carry (`container.labels`): within a count and a byte budget, so that a
//! container with thousands of labels, or one huge label, cannot push its process and socket
//! events past `max_event_size` (where they would be shrunk, and at worst lost). The registry
//! keeps every label (`ignore_labels` matches them all); only what is shown is cut.
//!
//! What is kept: first the labels analysts join on (Compose, Kubernetes, OCI image metadata),
//! then the others in key order, up to `max_count`. If they are still over `max_bytes`, the
//! longest values are cut to a common length (ending in `…`), then the last labels dropped.
//! A cut set is marked (`docker_listener.labels_truncated`, `labels_total`).
use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};

/// Labels kept before any other, by key prefix.
const FIRST: &[&str] =
    &["com.docker.compose.", "com.docker.stack.", "com.docker.swarm.", "io.kubernetes.", "org.opencontainers.image."];
/// No key is longer than this (cut and marked).
const KEY_MAX: usize = 256;
/// Values are never cut shorter than this (plus the mark).
const VALUE_MIN: usize = 16;
const MARK: &str = "…";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelBudget {
    pub max_count: usize,
    pub max_bytes: usize,
}

/// The labels an event shows, and whether some were cut or left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownLabels {
    pub labels: Vec<(String, String)>,
    pub cut: bool,
}

impl Serialize for ShownLabels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.labels.len()))?;
        for (k, v) in &self.labels {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut keep = max.saturating_sub(MARK.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{MARK}", &s[..keep])
}

impl LabelBudget {
    pub fn apply(&self, all: &BTreeMap<String, String>) -> ShownLabels {
        let first = |k: &str| FIRST.iter().any(|p| k.starts_with(p));
        let mut cut_any = all.len() > self.max_count;
        // Two long keys can be cut to the same one (or to one that exists uncut): the first
        // shown keeps it, so the JSON object never has a key twice (a reader would keep either).
        let mut shown = std::collections::HashSet::new();
        let mut labels: Vec<(String, String)> = all
            .iter()
            .filter(|(k, _)| first(k))
            .chain(all.iter().filter(|(k, _)| !first(k)))
            .filter_map(|(k, v)| {
                let key = cut(k, KEY_MAX);
                cut_any |= k.len() > KEY_MAX;
                shown.insert(key.clone()).then(|| (key, v.clone()))
            })
            .take(self.max_count)
            .collect();
        let size = |l: &[(String, String)]| l.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let total = size(&labels);
        if total > self.max_bytes {
            cut_any = true;
            // Water-filling: the largest cap on value lengths that brings the total within budget.
            let keys: usize = labels.iter().map(|(k, _)| k.len()).sum();
            let room = self.max_bytes.saturating_sub(keys);
            let mut lens: Vec<usize> = labels.iter().map(|(_, v)| v.len()).collect();
            lens.sort_unstable();
            let mut cap = VALUE_MIN + MARK.len();
            let mut used = 0;
            for (i, &l) in lens.iter().enumerate() {
                let rest = lens.len() - i;
                if used + l * rest > room {
                    cap = ((room - used) / rest).max(VALUE_MIN + MARK.len());
                    break;
                }
                used += l;
                cap = l;
            }
            for (_, v) in &mut labels {
                if v.len() > cap {
                    *v = cut(v, cap);
                }
            }
            while size(&labels) > self.max_bytes && !labels.is_empty() {
                labels.pop();
            }
            labels.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            labels.sort_by(|a, b| a.0.cmp(&b.0));
        }
        ShownLabels { labels, cut: cut_any }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: LabelBudget = LabelBudget { max_count: 64, max_bytes: 4096 };

    #[test]
    fn small_sets_are_shown_whole_in_key_order() {
        let all: BTreeMap<String, String> = [("b", "2"), ("a", "1")].map(|(k, v)| (k.into(), v.into())).into();
        let s = B.apply(&all);
        assert!(!s.cut);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn thousands_of_labels_keep_the_known_ones_first() {
        let mut all: BTreeMap<String, String> = (0..5000).map(|i| (format!("a{i:05}"), "v".repeat(10))).collect();
        all.insert("com.docker.compose.project".into(), "shop".into());
        let s = B.apply(&all);
        assert!(s.cut);
        assert_eq!(s.labels.len(), 64);
        assert!(s.labels.iter().any(|(k, v)| k == "com.docker.compose.project" && v == "shop"));
    }

    #[test]
    fn one_huge_label_is_cut_not_the_others() {
        let mut all: BTreeMap<String, String> = (0..10).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        all.insert("big".into(), "x".repeat(60_000));
        let s = B.apply(&all);
        assert!(s.cut);
        let size: usize = s.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size <= 4096, "{size}");
        assert_eq!(s.labels.len(), 11);
        let big = &s.labels.iter().find(|(k, _)| k == "big").unwrap().1;
        assert!(big.ends_with('…') && big.len() > 3000, "{}", big.len());
        assert!(s.labels.iter().any(|(k, v)| k == "k9" && v == "v9"));
    }

    #[test]
    fn huge_keys_are_cut_and_the_budget_always_holds() {
        let all: BTreeMap<String, String> =
            (0..64).map(|i| (format!("{i}{}", "k".repeat(10_000)), "v".into())).collect();
        let s = B.apply(&all);
        let size: usize = s.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size <= 4096 && s.cut && !s.labels.is_empty());
        assert!(s.labels.iter().all(|(k, _)| k.len() <= KEY_MAX));
    }

    #[test]
    fn keys_cut_to_the_same_one_are_shown_once() {
        let long = "k".repeat(300);
        let all: BTreeMap<String, String> =
            [(format!("{long}a"), "first"), (format!("{long}b"), "second"), ("z".into(), "z")]
                .map(|(k, v)| (k, v.to_owned()))
                .into();
        let s = B.apply(&all);
        assert!(s.cut);
        assert_eq!(s.labels.len(), 2, "{:?}", s.labels);
        let json = serde_json::to_string(&s).unwrap();
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(s.labels[0].1, "first");
    }
}
