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
/// repeat of the old program's. And a program run just after it was written (within
/// `FRESH_NS`, 3 s: a rewrite within the kernel's clock tick keeps the ctime) is never folded.
#[test]
fn a_program_rewritten_in_place_is_not_a_repeat_of_the_old_one() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with("rewrite", json!({"repeat_window": 60}), json!({}));
    let name = unique("rewrite");
    let _c = Containers(vec![name.clone()]);
    // On the disk the build is on: /tmp may be a tmpfs, whose programs are fileless (never
    // folded).
    let volume = TempDir(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("rewrite-volume")));
    std::fs::create_dir_all(&volume.0).expect("a directory beside the build");
    let (marker, done) = (unique("tool"), unique("done"));
    // `cat >` truncates and writes the file it opens: the same inode. Each version is run three
    // times at once (fresh: every exec sent), then three times 3.5 s later (one sent, two
    // folded).
    let runs = format!("for i in 1 2 3; do /data/sh -c : {marker}; done");
    run_detached(
        &name,
        &["-v", &format!("{}:/data", volume.0.display())],
        &format!(
            "cp /bin/busybox /data/sh; {runs}; sleep 3.5; {runs}; cat /bin/busybox > /data/sh; {runs}; sleep 3.5; \
             {runs}; /bin/echo {done}; sleep 600"
        ),
    );
    let events =
        wait_events(&agent, "the runs' end", Duration::from_secs(60), |e| !execs_with_arg(e, &done).is_empty());
    let sent = execs_with_arg(&events, &marker);
    let file = |e: &Value| e["docker_listener"]["exec"]["file"].clone();
    assert!(sent.iter().all(|e| e["process"]["executable"] == "/data/sh"), "{sent:?}");
    let inodes: std::collections::BTreeSet<String> = sent.iter().map(|e| file(e)["inode"].to_string()).collect();
    assert_eq!(inodes.len(), 1, "rewritten in place: the same inode: {inodes:?}");
    assert!(sent.iter().all(|e| file(e).get("drift").is_none() && file(e).get("fileless").is_none()), "{sent:?}");
    let ctimes: Vec<String> = sent.iter().map(|e| file(e)["ctime"].as_str().unwrap_or_default().to_owned()).collect();
    let (old, new) = (&ctimes[0], ctimes.last().expect("an exec"));
    assert!(!old.is_empty() && old < new, "two versions, the second changed later: {ctimes:?}");
    let of = |c: &String| ctimes.iter().filter(|x| *x == c).count();
    assert_eq!((of(old), of(new), ctimes.len()), (4, 4, 8), "each version: three fresh execs, then one: {ctimes:?}");
    // Each version's two repeats are counted in a window of its own.
    assert_eq!(agent.daemon.stop(), 0);
    let events = agent_events(&agent.queue.frames());
    let counts: Vec<_> =
        repeated(&events, &marker).iter().map(|s| s["docker_listener"]["repeat"]["count"].clone()).collect();
    assert_eq!(counts, [json!(2), json!(2)], "{counts:?}");
}

/// The same for a program's socket calls: a connect by a program rewritten in place (its
/// ctime at its exec, which the process table keeps) is not a repeat of the old program's, and
/// a program run just after it was written makes no connect that folds.
#[test]
fn a_rewritten_program_s_connects_are_not_repeats_of_the_old_one_s() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with("rewrite-net", json!({"repeat_window": 60}), json!({}));
    let name = unique("rewrite-net");
    let _c = Containers(vec![name.clone()]);
    let volume = TempDir(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("rewrite-net-volume")));
    std::fs::create_dir_all(&volume.0).expect("a directory beside the build");
    let done = unique("done");
    // `net_send flow P 0`: a UDP connect to 127.0.0.1:P+2 (and a sendmsg to P+1). Three runs
    // 3.5 s after the copy (one connect sent, two folded); the program rewritten in place (`cat
    // >`: the same inode), run twice at once (fresh: both sent), then three times 3.5 s later
    // (one sent, two folded).
    let port = 47_000;
    let run = |n: usize| vec![format!("/data/ns flow {port} 0"); n].join("; ");
    run_detached(
        &name,
        &["-v", &format!("{}:/data", volume.0.display()), "-v", &programs_volume()],
        &format!(
            "cp /t/net_send /data/ns; sleep 3.5; {}; cat /t/net_send > /data/ns; {}; sleep 3.5; {}; /bin/echo {done}; \
             sleep 600",
            run(3),
            run(2),
            run(3)
        ),
    );
    let connects = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .filter(|e| {
                e["event"]["action"] == "connect"
                    && e["container"]["name"] == name.as_str()
                    && e["destination"]["port"] == port + 2
            })
            .cloned()
            .collect()
    };
    let events =
        wait_events(&agent, "the runs' end", Duration::from_secs(60), |e| !execs_with_arg(e, &done).is_empty());
    let sent = connects(&events);
    assert!(sent.iter().all(|e| e["process"]["executable"] == "/data/ns"), "{sent:?}");
    assert_eq!(sent.len(), 4, "the old program's first, the new one's two fresh ones and its first: {sent:?}");
    assert_eq!(agent.daemon.stop(), 0);
    let events = agent_events(&agent.queue.frames());
    let counts: Vec<_> = events
        .iter()
        .filter(|e| {
            e["event"]["action"] == "events-repeated"
                && e["docker_listener"]["repeat"]["action"] == "connect"
                && e["container"]["name"] == name.as_str()
        })
        .map(|s| s["docker_listener"]["repeat"]["count"].clone())
        .collect();
    assert_eq!(counts, [json!(2), json!(2)], "each version's two repeats, in a window of its own: {counts:?}");
}
