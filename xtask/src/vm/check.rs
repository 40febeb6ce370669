//! The checks: the agent's datagrams, against the expected events of
//! [`expect::expected`](super::expect::expected), field by field; one result per field.
use serde_json::Value;

use super::expect::{Expected, Want};

/// Every datagram starts with this (Wazuh's LOCALFILE queue and the Docker location).
const HEADER: &[u8] = b"1:Wazuh-Docker:";
/// The agent's Docker-event frames start with this; its own events are everything else.
const DOCKER_PREFIX: &[u8] = b"1:Wazuh-Docker:{\"integration\":\"docker\",\"docker\":";

pub struct CheckResult {
    pub ok: bool,
    /// `<event>: <field> = <expected>[, got <value>]`.
    pub line: String,
}

/// The agent's own events (not Docker's) of the container, parsed, in arrival order.
pub fn container_events(frames: &[Vec<u8>], id: &str) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| !f.starts_with(DOCKER_PREFIX))
        .filter_map(|f| serde_json::from_slice::<Value>(f.strip_prefix(HEADER)?).ok())
        .filter(|e| e.pointer("/container/id").and_then(Value::as_str) == Some(id))
        .collect()
}

/// An event in one short line: its action and outcome, pid, executable, the head of its
/// arguments and the markers that explain a missing field (`args_unavailable`, ...).
pub fn summary(e: &Value) -> String {
    let s = |path: &str| match field(e, path) {
        Value::Null => "-".to_owned(),
        Value::String(v) => v.clone(),
        v => v.to_string(),
    };
    let args: Vec<String> = match field(e, "process.args") {
        Value::Array(a) => a.iter().take(3).map(|v| v.as_str().unwrap_or("?").chars().take(24).collect()).collect(),
        _ => Vec::new(),
    };
    let mut markers = Vec::new();
    for flag in ["args_unavailable", "args_truncated", "container_unresolved"] {
        if field(e, &format!("docker_listener.{flag}")) != &Value::Null {
            markers.push(flag);
        }
    }
    format!(
        "seq {} {} {} pid {} parent {} exe {} args {:?}{}",
        s("event.sequence"),
        s("event.action"),
        s("event.outcome"),
        s("process.pid"),
        s("process.parent.pid"),
        s("process.executable"),
        args,
        if markers.is_empty() { String::new() } else { format!(" [{}]", markers.join(", ")) }
    )
}

/// A dotted path ("process.parent.pid", "docker_listener.ancestors.0.pid": a number indexes an
/// array) in an event; `Null` when absent.
fn field<'a>(event: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(event, |v, key| match (v, key.parse::<usize>()) {
            (Value::Array(items), Ok(i)) => items.get(i),
            _ => v.get(key),
        })
        .unwrap_or(&Value::Null)
}

fn selected(event: &Value, e: &Expected) -> bool {
    e.select.iter().all(|(path, want)| field(event, path) == want)
}

/// The first event the expectation selects.
pub fn find<'a>(events: &'a [Value], e: &Expected) -> Option<&'a Value> {
    events.iter().find(|ev| selected(ev, e))
}

/// One result per expected field; an event not found fails each of its fields, so a run always
/// has the same number of checks.
pub fn evaluate(expected: &[Expected], events: &[Value]) -> Vec<CheckResult> {
    let found = |name: &str| expected.iter().find(|e| e.name == name).and_then(|e| find(events, e));
    let mut out = Vec::new();
    for e in expected {
        let event = find(events, e);
        for (path, want) in &e.fields {
            let (ok, line) = match event {
                None => {
                    let by: Vec<String> = e.select.iter().map(|(p, v)| format!("{p}={v}")).collect();
                    (false, format!("{}: {path}: no such event ({})", e.name, by.join(", ")))
                }
                Some(ev) => {
                    let got = field(ev, path);
                    match want {
                        Want::Is(v) => (got == v, format!("{}: {path} = {v}{}", e.name, got_if(got, got == v))),
                        Want::Once(v) => {
                            let n = events.iter().filter(|ev| selected(ev, e)).count();
                            let ok = got == v && n == 1;
                            (
                                ok,
                                format!(
                                    "{}: {path} = {v}{}, in the one event selected (found {n})",
                                    e.name,
                                    got_if(got, got == v)
                                ),
                            )
                        }
                        Want::AtLeast(n) => {
                            let ok = got.as_u64().is_some_and(|g| g >= *n);
                            (ok, format!("{}: {path} = {got} (at least {n})", e.name))
                        }
                        Want::NonEmptyString => {
                            let ok = got.as_str().is_some_and(|s| !s.is_empty());
                            (ok, format!("{}: {path} = {got} (any non-empty string)", e.name))
                        }
                        Want::EndsWith(tail) => {
                            let ok = got.as_str().is_some_and(|s| s.ends_with(tail.as_str()));
                            (ok, format!("{}: {path} = {got} (ending in {tail:?})", e.name))
                        }
                        Want::Absent => {
                            let ok = got.is_null();
                            (ok, format!("{}: {path} absent{}", e.name, got_if(got, ok)))
                        }
                        Want::Not(v) => {
                            let ok = got != v;
                            (ok, format!("{}: {path} is not {v}{}", e.name, got_if(got, ok)))
                        }
                        Want::SameAs(other, other_path) => match found(other) {
                            Some(o) => {
                                let v = field(o, other_path);
                                let ok = got == v && !v.is_null();
                                (ok, format!("{}: {path} = {v}, as {other}'s {other_path}{}", e.name, got_if(got, ok)))
                            }
                            None => (false, format!("{}: {path}: {other} was not found to compare with", e.name)),
                        },
                    }
                }
            };
            out.push(CheckResult { ok, line });
        }
    }
    out
}

fn got_if(got: &Value, ok: bool) -> String {
    if ok { String::new() } else { format!(", got {got}") }
}

/// Every datagram is Wazuh's frame around one JSON object with `"integration": "docker"`.
pub fn frame_check(frames: &[Vec<u8>]) -> CheckResult {
    let bad: Vec<String> = frames
        .iter()
        .filter(|f| {
            let body = f.strip_prefix(HEADER).and_then(|b| serde_json::from_slice::<Value>(b).ok());
            body.as_ref().and_then(|v| v.get("integration")).and_then(Value::as_str) != Some("docker")
        })
        .map(|f| String::from_utf8_lossy(&f[..f.len().min(200)]).into_owned())
        .collect();
    let line = format!("frames: all {} datagrams are `1:Wazuh-Docker:` + JSON with integration docker", frames.len());
    if bad.is_empty() {
        CheckResult { ok: true, line }
    } else {
        CheckResult { ok: false, line: format!("{line}: {} are not, e.g. {:?}", bad.len(), bad[0]) }
    }
}

/// One check per door: the agent's start-up log says, once, that it is open (`seen: <door>:
/// active (<hook>)`). A door the kernel refuses is logged as `not seen: <door>: unavailable
/// (<why>)`: the failure shows that line, which says why.
pub fn door_checks(log: &[String], doors: &[&str]) -> Vec<CheckResult> {
    doors
        .iter()
        .map(|door| {
            let open = format!("seen: {door}: active");
            let line = format!("doors: the start-up log says \"{open}\" once");
            let said = log.iter().filter(|l| l.contains(&open) && !l.contains("not seen:")).count();
            if said == 1 {
                return CheckResult { ok: true, line };
            }
            let about = format!(": {door}: ");
            let instead: Vec<&str> = log.iter().filter(|l| l.contains(&about)).map(String::as_str).collect();
            let got = match instead.as_slice() {
                [] => "it never names this door".to_owned(),
                lines => format!("it says {said} times; its lines about the door: {}", lines.join(" | ")),
            };
            CheckResult { ok: false, line: format!("{line}: {got}") }
        })
        .collect()
}

/// That the start-up log says each of `doors` is closed on this kernel, once (with its reason).
pub fn closed_door_checks(log: &[String], doors: &[&str]) -> Vec<CheckResult> {
    doors
        .iter()
        .map(|door| {
            let closed = format!("not seen: {door}: unavailable");
            let line = format!("doors: the start-up log says \"{closed}\" once (closed on this kernel)");
            let said = log.iter().filter(|l| l.contains(&closed)).count();
            let open = log.iter().any(|l| l.contains(&format!("seen: {door}: active")) && !l.contains("not seen:"));
            match (said, open) {
                (1, false) => CheckResult { ok: true, line },
                (_, true) => CheckResult { ok: false, line: format!("{line}: it says the door is open") },
                (n, false) => CheckResult { ok: false, line: format!("{line}: it says so {n} times") },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_dotted_fields() {
        let ev = json!({"process": {"parent": {"pid": 7}}, "container": {"labels": {"a.b": "c"}}});
        assert_eq!(field(&ev, "process.parent.pid"), &json!(7));
        assert_eq!(field(&ev, "process.nope.pid"), &Value::Null);
        assert_eq!(field(&ev, "container.labels"), &json!({"a.b": "c"}));
        let ev = json!({"docker_listener": {"ancestors": [{"pid": 3}, {"pid": 1}]}});
        assert_eq!(field(&ev, "docker_listener.ancestors.1.pid"), &json!(1));
        assert_eq!(field(&ev, "docker_listener.ancestors.2"), &Value::Null);
    }

    #[test]
    fn once_fails_when_a_second_event_is_selected() {
        let expected =
            vec![Expected { name: "c", select: vec![("k", json!("c"))], fields: vec![("ip", Want::Once(json!("a")))] }];
        let one = [json!({"k": "c", "ip": "a"}), json!({"k": "d", "ip": "a"})];
        assert!(evaluate(&expected, &one)[0].ok);
        let two = [json!({"k": "c", "ip": "a"}), json!({"k": "c", "ip": "a", "seen_by": "tcp_state"})];
        let r = evaluate(&expected, &two);
        assert!(!r[0].ok);
        assert!(r[0].line.ends_with("(found 2)"), "{}", r[0].line);
    }

    #[test]
    fn sums_an_event_up_in_one_line_with_what_explains_a_missing_field() {
        let e = json!({
            "event": {"action": "exec", "outcome": "success", "sequence": 7},
            "process": {"pid": 9, "parent": {"pid": 1}, "executable": "/bin/busybox", "args": []},
            "docker_listener": {"args_unavailable": true}
        });
        assert_eq!(summary(&e), "seq 7 exec success pid 9 parent 1 exe /bin/busybox args [] [args_unavailable]");
        assert_eq!(summary(&json!({})), "seq - - - pid - parent - exe - args []");
    }

    #[test]
    fn compares_with_other_events_and_reports_what_it_got() {
        let expected = vec![
            Expected { name: "a", select: vec![("k", json!("a"))], fields: vec![("pid", Want::Is(json!(1)))] },
            Expected {
                name: "b",
                select: vec![("k", json!("b"))],
                fields: vec![
                    ("pid", Want::SameAs("a", "pid")),
                    ("x", Want::NonEmptyString),
                    ("z", Want::Absent),
                    ("x", Want::Absent),
                    ("n", Want::AtLeast(4)),
                    ("n", Want::AtLeast(5)),
                    ("x", Want::AtLeast(0)),
                ],
            },
            Expected { name: "c", select: vec![("k", json!("c"))], fields: vec![("pid", Want::Is(json!(3)))] },
        ];
        let events = vec![json!({"k": "a", "pid": 2}), json!({"k": "b", "pid": 2, "x": "y", "n": 4})];
        let r = evaluate(&expected, &events);
        let ok: Vec<bool> = r.iter().map(|r| r.ok).collect();
        assert_eq!(ok, [false, true, true, true, false, true, false, false, false]);
        assert!(r[0].line.ends_with("got 2"), "{}", r[0].line);
        assert!(r[4].line.ends_with("x absent, got \"y\""), "{}", r[4].line);
        assert!(r[5].line.ends_with("n = 4 (at least 4)"), "{}", r[5].line);
        assert!(r[6].line.ends_with("n = 4 (at least 5)"), "{}", r[6].line);
        assert!(r[7].line.ends_with("x = \"y\" (at least 0)"), "{}", r[7].line);
        assert!(r[8].line.contains("no such event"), "{}", r[8].line);
    }

    #[test]
    fn finds_each_door_open_once() {
        let log: Vec<String> = [
            "2026-12-01T18:26:30.703352Z  INFO seen: 32-bit system calls: active (tp_btf/sys_exit (raw_syscalls))",
            "2026-12-01T18:26:30.703738Z  WARN not seen: io_uring setups: unavailable (io_uring:io_uring_create: \
             no such tracepoint); not seen: processes that set up io_uring",
        ]
        .map(String::from)
        .to_vec();
        let r = door_checks(&log, &["32-bit system calls", "io_uring setups", "executed files"]);
        let ok: Vec<bool> = r.iter().map(|r| r.ok).collect();
        assert_eq!(ok, [true, false, false]);
        assert!(r[1].line.contains("no such tracepoint"), "{}", r[1].line);
        assert!(r[2].line.ends_with("it never names this door"), "{}", r[2].line);
    }

    #[test]
    fn a_door_closed_on_this_kernel_must_be_said_closed() {
        let log: Vec<String> = [
            "2026-12-03T21:12:09.594871Z  INFO seen: kernel-module: active (tp_btf/sys_exit (raw_syscalls))",
            "2026-12-03T21:14:56.916390Z  WARN not seen: io_uring opens: unavailable (raw_tp/io_uring_complete: the \
             kernel's BTF lacks io_kiocb.opcode)",
        ]
        .map(String::from)
        .to_vec();
        let r = closed_door_checks(&log, &["io_uring opens", "kernel-module", "io_uring changes by name"]);
        let ok: Vec<bool> = r.iter().map(|r| r.ok).collect();
        assert_eq!(ok, [true, false, false]);
        assert!(r[1].line.ends_with("it says the door is open"), "{}", r[1].line);
        assert!(r[2].line.ends_with("it says so 0 times"), "{}", r[2].line);
        // Which kernels have closed doors, and that each closed door is one the matrix knows.
        assert!(super::super::expect::closed_doors("6.1.0-57-cloud-amd64").is_empty());
        let old = super::super::expect::closed_doors("5.10.0-46-cloud-amd64");
        assert_eq!(old.len(), 4);
        assert!(old.iter().all(|d| super::super::expect::DOORS.contains(d)));
        assert!(super::super::expect::NEEDS.iter().all(|(_, d)| super::super::expect::DOORS.contains(d)));
    }

    #[test]
    fn keeps_the_container_s_own_events() {
        let frames = vec![
            b"1:Wazuh-Docker:{\"integration\":\"docker\",\"docker\":{\"Action\":\"start\"}}".to_vec(),
            b"1:Wazuh-Docker:{\"integration\":\"docker\",\"container\":{\"id\":\"x\"},\"n\":1}".to_vec(),
            b"1:Wazuh-Docker:{\"integration\":\"docker\",\"container\":{\"id\":\"y\"},\"n\":2}".to_vec(),
        ];
        let events = container_events(&frames, "x");
        assert_eq!(events, vec![json!({"integration": "docker", "container": {"id": "x"}, "n": 1})]);
        assert!(frame_check(&frames).ok);
        assert!(!frame_check(&[b"1:Wazuh-Docker:{}".to_vec()]).ok);
    }
}
