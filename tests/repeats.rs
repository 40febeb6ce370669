//! Repeat folding (`repeat_window`, `crate::repeats`) against the real dockerd and eBPF.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn repeated<'a>(events: &'a [Value], arg: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["event"]["action"] == "events-repeated"
                && e["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| x == arg))
        })
        .collect()
}

#[test]
fn an_exec_repeated_a_thousand_times_arrives_once_with_its_count() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with("rep", json!({"repeat_window": 60}), json!({}));
    let name = unique("rep");
    let _c = Containers(vec![name.clone()]);
    let (marker, between, done) = (unique("same"), unique("between"), unique("done"));
    run_detached(
        &name,
        &[],
        &format!(
            "for i in $(seq 1000); do /bin/sh -c : {marker}; if [ $i = 500 ]; then /bin/echo {between}; fi; done; \
             echo {marker} | /bin/xargs /bin/sh -c :; /bin/echo {done}; sleep 600"
        ),
    );
    let events =
        wait_events(&agent, "the loop's end", Duration::from_secs(60), |e| !execs_with_arg(e, &done).is_empty());
    // The first, and a different exec in between, were sent as they happened; the repeats wait
    // for their window to close.
    // The same command line run by another program (xargs, not the shell) is not a repeat:
    // sent at once too. (`/bin/xargs`: the shell runs a bare `xargs` in a fork of its own,
    // still a shell; `sh -c :`, not `true`: busybox's xargs runs a `true` in-process.)
    let sent = execs_with_arg(&events, &marker);
    let from = |applet: &str| sent.iter().filter(|e| e["process"]["parent"]["applet"] == applet).count();
    assert_eq!((from("sh"), from("xargs"), sent.len()), (1, 1, 2), "the first of the thousand, then xargs': {sent:?}");
    assert_eq!(execs_with_arg(&events, &between).len(), 1, "the exec in between is sent at once");
    assert!(repeated(&events, &marker).is_empty(), "the window is still open");
    let first =
        sent.iter().find(|e| e["process"]["parent"]["applet"] == "sh").map(|e| (*e).clone()).unwrap_or_default();
    // Stopping closes every window: its count goes out before the agent exits.
    assert_eq!(agent.daemon.stop(), 0);
    let events = agent_events(&agent.queue.frames());
    let summaries = repeated(&events, &marker);
    assert_eq!(summaries.len(), 1, "one summary");
    let s = summaries[0];
    assert_eq!(s["docker_listener"]["repeat"]["count"], 999, "{s}");
    assert_eq!(s["docker_listener"]["repeat"]["action"], "exec");
    assert_eq!(s["container"]["name"], name.as_str());
    assert_eq!(s["process"]["executable"], first["process"]["executable"]);
    assert_eq!(s["process"]["args"], first["process"]["args"]);
    for k in ["applet", "user", "group"] {
        assert!(!first["process"][k].is_null(), "busybox's sh runs as an applet, with a user and group: {first}");
        assert_eq!(s["process"][k], first["process"][k], "{k}: what the repeat key held is shown: {s}");
    }
    assert_eq!(s["process"]["parent"]["applet"], "sh", "the program the repeats came from: {s}");
    let rules = support::rules::load_rules();
    assert_eq!(support::rules::evaluate(&rules, s), Some(100_061), "the summary's rule");
    assert_eq!(agent.daemon.final_stat("repeats_folded"), 999);
}

/// A program rewritten in place on a volume keeps its inode, and a volume has no overlay layer
/// to mark it as drifted: only its ctime, which the kernel moves on every write and no program
/// can set back, tells the new program from the old. Its first exec is sent, not counted as a
/// repeat of the old program's.
#[test]
fn a_program_rewritten_in_place_is_not_a_repeat_of_the_old_one() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with("rewrite", json!({"repeat_window": 60}), json!({}));
    let name = unique("rewrite");
    let _c = Containers(vec![name.clone()]);
    let volume = TempDir::new("rewrite-volume");
    let (marker, done) = (unique("tool"), unique("done"));
    // `cat >` truncates and writes the file it opens: the same inode. The second after it
    // leaves the kernel's coarse clock (a tick, a few milliseconds) behind.
    run_detached(
        &name,
        &["-v", &format!("{}:/data", volume.0.display())],
        &format!(
            "cp /bin/busybox /data/sh; for i in 1 2 3; do /data/sh -c : {marker}; done; sleep 1; \
             cat /bin/busybox > /data/sh; for i in 1 2 3; do /data/sh -c : {marker}; done; /bin/echo {done}; sleep 600"
        ),
    );
    let events =
        wait_events(&agent, "the loops' end", Duration::from_secs(60), |e| !execs_with_arg(e, &done).is_empty());
    let sent = execs_with_arg(&events, &marker);
    assert_eq!(sent.len(), 2, "the first exec of the program and of the program rewritten: {sent:?}");
    let file = |e: &Value| e["docker_listener"]["exec"]["file"].clone();
    let (old, new) = (file(sent[0]), file(sent[1]));
    assert_eq!(sent[1]["process"]["executable"], "/data/sh");
    assert_eq!(old["inode"], new["inode"], "rewritten in place: the same inode: {old} {new}");
    assert!(old["ctime"].is_string() && new["ctime"].is_string(), "{old} {new}");
    assert!(old["ctime"].as_str() < new["ctime"].as_str(), "{old} {new}");
    assert!(new.get("drift").is_none() && new.get("fileless").is_none(), "a volume's file is routine: {new}");
    // Each program's two repeats are counted in a window of its own.
    assert_eq!(agent.daemon.stop(), 0);
    let events = agent_events(&agent.queue.frames());
    let counts: Vec<_> =
        repeated(&events, &marker).iter().map(|s| s["docker_listener"]["repeat"]["count"].clone()).collect();
    assert_eq!(counts, [json!(2), json!(2)], "{counts:?}");
}
