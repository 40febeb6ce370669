//! Repeat folding (`repeat_window`): identical routine events of a container within a window are
//! sent once; the window's repeats follow as one `events-repeated` event with their count.
//!
//! Identical means (`correlate::Fold::repeat_key`): the same container, action, program (its
//! executable, applet, and the file's device and inode, and for an exec its ctime: a binary
//! replaced at the same path, or rewritten in place, is another program), outcome, and for an exec the same
//! arguments (as read: `Args::digest`), user, group and parent program, for a socket call the
//! same address. Only routine events fold
//! (`ecs::Event::routine`): a failed call, a marked exec (fileless, drift, privileges, the
//! 32-bit ABI) and every event of the other families are always sent, so the first occurrence
//! of anything, and everything that matters on its own, is never folded.
//!
//! Memory is bounded: at most `MAX_KEYS` windows are open; a new key beyond that closes the
//! oldest window early (its summary is sent then).
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::{Value, json};

/// Windows open at once, at most.
pub const MAX_KEYS: usize = 16_384;

struct Window {
    opened: Instant,
    /// The first event's JSON: what the summary says the repeats were.
    first: Bytes,
    /// Repeats not sent.
    count: u64,
    first_ns: i64,
    last_ns: i64,
}

pub struct Repeats {
    window: Duration,
    open: HashMap<u64, Window>,
    /// Keys in the order their windows opened (a key may be listed again after it reopened:
    /// an entry whose window is not the one that opened then is skipped).
    order: VecDeque<(Instant, u64)>,
}

impl Repeats {
    pub fn new(window: Duration) -> Repeats {
        Repeats { window, open: HashMap::new(), order: VecDeque::new() }
    }

    /// Whether an event with `key` and body `json` is sent now (the first in its window); a
    /// repeat is counted instead. `out` gets the summaries of windows closed to make room.
    pub fn admit(&mut self, key: u64, json: &Bytes, now: Instant, wall_ns: i64, out: &mut Vec<Value>) -> bool {
        if let Some(w) = self.open.get_mut(&key) {
            if now.duration_since(w.opened) < self.window {
                w.count += 1;
                w.last_ns = wall_ns;
                return false;
            }
            // Its window is over (the tick has not closed it yet): close it, open a new one.
            if let Some(w) = self.open.remove(&key) {
                out.extend(summary(&w, self.window));
            }
        }
        while self.open.len() >= MAX_KEYS {
            let Some((opened, k)) = self.order.pop_front() else { break };
            if self.open.get(&k).is_some_and(|w| w.opened == opened)
                && let Some(w) = self.open.remove(&k)
            {
                out.extend(summary(&w, self.window));
            }
        }
        self.open
            .insert(key, Window { opened: now, first: json.clone(), count: 0, first_ns: wall_ns, last_ns: wall_ns });
        self.order.push_back((now, key));
        true
    }

    /// Closes the windows that are over; their summaries go into `out`.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Value>) {
        while let Some(&(opened, k)) = self.order.front() {
            if now.duration_since(opened) < self.window {
                break;
            }
            self.order.pop_front();
            if self.open.get(&k).is_some_and(|w| w.opened == opened)
                && let Some(w) = self.open.remove(&k)
            {
                out.extend(summary(&w, self.window));
            }
        }
    }

    /// Every open window, closed now (shutdown).
    pub fn flush(&mut self, out: &mut Vec<Value>) {
        self.order.clear();
        for (_, w) in self.open.drain() {
            out.extend(summary(&w, self.window));
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// The `events-repeated` event of a window that counted repeats: what they were (the first
/// event's container, process and addresses), how many, and when.
fn summary(w: &Window, window: Duration) -> Option<Value> {
    if w.count == 0 {
        return None;
    }
    let first: Value = serde_json::from_slice(&w.first).ok()?;
    let mut v = json!({
        "integration": "docker",
        "@timestamp": crate::ecs::rfc3339(w.last_ns),
        "event": {
            "kind": "metric",
            "module": crate::ecs::MODULE,
            "action": "events-repeated",
            "dataset": "docker_listener.repeat",
            "outcome": first["event"]["outcome"],
            "start": crate::ecs::rfc3339(w.first_ns),
            "end": crate::ecs::rfc3339(w.last_ns),
        },
        "docker_listener": {"repeat": {
            "action": first["event"]["action"],
            "count": w.count,
            "window_seconds": window.as_secs_f64(),
        }},
    });
    for k in ["container", "source", "destination", "server", "client"] {
        if !first[k].is_null() {
            v[k] = first[k].clone();
        }
    }
    let p = &first["process"];
    // The program and, for an exec, the command and its user and group: what the key held.
    v["process"] = fields_of(p, &["executable", "name", "applet", "args", "command_line", "user", "group"]);
    // An exec's repeats share their parent's program too (`ecs::Event::repeat_detail`).
    if first["event"]["action"] == "exec" && p["parent"].is_object() {
        v["process"]["parent"] = fields_of(&p["parent"], &["executable", "name", "applet"]);
    }
    Some(v)
}

/// The fields of `from` named by `keys` that it has, in that order.
fn fields_of(from: &Value, keys: &[&str]) -> Value {
    Value::Object(keys.iter().filter(|k| !from[**k].is_null()).map(|k| ((*k).to_owned(), from[*k].clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(args: &str) -> Bytes {
        Bytes::from(
            json!({"event": {"action": "exec", "outcome": "success"}, "container": {"id": "c1", "name": "web"},
                "process": {"executable": "/bin/true", "name": "true", "args": [args], "group": {"id": "101"},
                    "parent": {"pid": 7, "executable": "/bin/busybox", "name": "busybox", "applet": "crond"}}})
            .to_string(),
        )
    }

    #[test]
    fn the_first_is_sent_the_repeats_are_counted_and_summarised_when_the_window_closes() {
        let mut r = Repeats::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert!(r.admit(1, &exec("a"), t0, 100, &mut out));
        for i in 0..999 {
            assert!(!r.admit(1, &exec("a"), t0 + Duration::from_millis(i), 200 + i as i64, &mut out));
        }
        // A different event in between: at once.
        assert!(r.admit(2, &exec("b"), t0 + Duration::from_secs(1), 300, &mut out));
        r.tick(t0 + Duration::from_secs(9), &mut out);
        assert!(out.is_empty());
        r.tick(t0 + Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 1, "key 2 counted no repeat: no summary");
        let s = &out[0];
        assert_eq!(s["event"]["action"], "events-repeated");
        assert_eq!(s["docker_listener"]["repeat"]["count"], 999);
        assert_eq!(s["docker_listener"]["repeat"]["action"], "exec");
        assert_eq!(s["process"]["args"][0], "a");
        assert_eq!(
            s["process"]["parent"],
            json!({"executable": "/bin/busybox", "name": "busybox", "applet": "crond"}),
            "the program every repeat came from, not one parent's pid"
        );
        assert_eq!(s["process"]["group"], json!({"id": "101"}), "the group is in the key: shown");
        assert!(s["process"].get("applet").is_none(), "no applet in the first event: none shown");
        assert_eq!(s["container"]["name"], "web");
        // A new window: the next one is sent again.
        assert!(r.admit(1, &exec("a"), t0 + Duration::from_secs(11), 400, &mut out));
    }

    #[test]
    fn memory_is_bounded_by_closing_the_oldest_window() {
        let mut r = Repeats::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let mut out = Vec::new();
        for k in 0..MAX_KEYS as u64 {
            assert!(r.admit(k, &exec("x"), t0, 1, &mut out));
        }
        assert!(!r.admit(0, &exec("x"), t0, 2, &mut out), "a repeat of the oldest");
        assert!(r.admit(u64::MAX, &exec("y"), t0, 3, &mut out));
        assert_eq!(r.len(), MAX_KEYS);
        assert_eq!(out.len(), 1, "the oldest window, closed early, with its repeat");
        assert_eq!(out[0]["docker_listener"]["repeat"]["count"], 1);
        let mut rest = Vec::new();
        r.flush(&mut rest);
        assert!(rest.is_empty(), "no other window counted a repeat");
        assert!(r.is_empty());
    }
}
