//! The per-container budget (`ebpf.budget_per_second`, `budget.rs` in the kernel): a storm in
//! one container cannot cost another its records, what is held back is reported by container,
//! and the budget never hides a failed call or the first exec of a file.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{rules::evaluate, *};

fn held_back<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"]["action"] == "events-held-back" && e["container"]["name"] == name).collect()
}

/// Whether container `name`'s script is through: its drifted program `done` (never held back)
/// ran, and its storm was reported as held back.
fn through(events: &[Value], name: &str, done: &str) -> bool {
    events.iter().any(|x| x["container"]["name"] == name && x["process"]["executable"] == done)
        && !held_back(events, name).is_empty()
}

#[test]
fn two_storming_containers_cannot_cost_a_quiet_one_its_execs() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with(
        "fair",
        json!({}),
        json!({"ring_buffer_bytes": 65536, "budget_per_second": 50, "budget_burst": 100}),
    );
    let stormers = [unique("storm"), unique("storm")];
    let quiet = unique("quiet");
    let _c = Containers(vec![stormers[0].clone(), stormers[1].clone(), quiet.clone()]);
    let marker = unique("m");
    for s in &stormers {
        // A storm of execs; two seconds in, a failed exec and three execs of a new file (the
        // first exec of a file, and a drifted program: never held back).
        run_detached(
            s,
            &[],
            &format!(
                "(while :; do /bin/true; done) & sleep 2; /nonexistent-{marker} 2>/dev/null; \
                 cp /bin/busybox /tmp/new-{marker}; for i in 1 2 3; do /tmp/new-{marker} true; done; sleep 600"
            ),
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    run_detached(&quiet, &[], &format!("for i in $(seq 1 30); do /bin/echo {marker}-$i; sleep 0.2; done; sleep 600"));
    let quiet_execs =
        |events: &[Value]| (1..=30).filter(|i| !execs_with_arg(events, &format!("{marker}-{i}")).is_empty()).count();
    let new_file = format!("/tmp/new-{marker}");
    let events =
        // (Returns as soon as all are in: 10-15 s here. The time allowed is for a slower
        // machine, where the two storms take both CPUs from the quiet container's loop.)
        wait_events(&agent, "the quiet container's 30 execs and both storms' reports", Duration::from_secs(90), |e| {
            quiet_execs(e) == 30
                && stormers.iter().all(|s| !held_back(e, s).is_empty())
                && e.iter().filter(|x| x["process"]["executable"] == new_file.as_str()).count() >= 6
        });
    assert_eq!(quiet_execs(&events), 30, "every exec of the quiet container arrives");
    assert!(held_back(&events, &quiet).is_empty(), "the quiet container stayed within its budget");
    let mut reported = 0;
    for s in &stormers {
        let reports = held_back(&events, s);
        let held: u64 = reports.iter().map(|r| r["docker_listener"]["held_back"]["records"].as_u64().unwrap()).sum();
        assert!(held > 0, "{s}: its excess is reported with its name");
        let rules = support::rules::load_rules();
        assert_eq!(support::rules::evaluate(&rules, reports[0]), Some(100_060), "the report's rule");
        reported += held;
        assert_eq!(reports[0]["docker_listener"]["held_back"]["budget"]["per_second"], 50);
        let by_class = &reports[0]["docker_listener"]["held_back"]["by_class"];
        assert_eq!(by_class, &json!({"process": reports[0]["docker_listener"]["held_back"]["records"]}), "exec storms");
        let id = inspect(s, "{{.Id}}");
        assert_eq!(reports[0]["container"]["id"], id.as_str());
        let mine: Vec<&Value> = events.iter().filter(|e| e["container"]["name"] == s.as_str()).collect();
        let mine: Vec<Value> = mine.into_iter().cloned().collect();
        // Over its budget, a failed call and the first exec of a file still arrive.
        let failed = mine.iter().any(|e| {
            e["event"]["action"] == "exec"
                && e["event"]["outcome"] == "failure"
                && e["docker_listener"]["exec"]["filename"] == format!("/nonexistent-{marker}").as_str()
        });
        assert!(failed, "{s}: the failed exec is never held back");
        let drifted: Vec<&Value> = mine
            .iter()
            .filter(|e| e["event"]["action"] == "exec" && e["process"]["executable"] == new_file.as_str())
            .collect();
        assert_eq!(drifted.len(), 3, "{s}: a drifted program's execs are never held back");
        assert!(drifted.iter().all(|e| e["docker_listener"]["exec"]["file"]["drift"] == true));
    }
    // Counted apart from losses, and every record held back is in a report.
    assert_eq!(agent.daemon.stop(), 0);
    let total = agent.daemon.final_stat("ebpf_held_back");
    assert!(total >= reported, "{total} held back in all, {reported} reported by the time the test looked");
}

/// Over its budget, a container's first connect to each Unix listener still arrives: a storm of
/// execs cannot hide a connect to the Docker socket behind it, by a system call (rule 100033)
/// or through io_uring (100071). Before, both were held back with the storm and only counted.
/// (Two containers: a second connect to the same listener in one storm is held back.)
#[test]
fn a_storm_cannot_hide_a_connect_to_the_docker_socket() {
    e2e();
    let _lock = docker_lock();
    let rules = support::rules::load_rules();
    let mut agent = start_agent_with("storm-sock", json!({}), json!({"budget_per_second": 50, "budget_burst": 100}));
    let (native, ring) = (unique("stormsock"), unique("stormring"));
    let _c = Containers(vec![native.clone(), ring.clone()]);
    let marker = unique("m");
    let done = format!("/tmp/done-{marker}");
    // Two seconds into the storm (thousands of records a second against 50), the connect; then
    // a drifted program (never held back) says the script is through.
    for (name, connect) in [(&native, "/t/unix_connect"), (&ring, "/t/uring_connect")] {
        run_detached(
            name,
            &["-v", &programs_volume(), "-v", "/var/run/docker.sock:/var/run/docker.sock"],
            &format!(
                "(while :; do /bin/true; done) & sleep 2; {connect} /var/run/docker.sock; \
                 cp /bin/busybox {done}; {done} true; sleep 600"
            ),
        );
    }
    let events =
        wait_events(&agent, "both drifted programs' execs and reports of both storms", Duration::from_secs(40), |e| {
            through(e, &native, &done) && through(e, &ring, &done)
        });
    for name in [&native, &ring] {
        let by_storm: u64 = held_back(&events, name)
            .iter()
            .map(|r| r["docker_listener"]["held_back"]["by_class"]["process"].as_u64().unwrap_or(0))
            .sum();
        assert!(by_storm > 0, "the premise: {name}'s storm went over its budget");
    }
    let connects = |name: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["container"]["name"] == name && e["event"]["action"] == "connect").collect()
    };
    let (by_call, by_ring) = (connects(&native), connects(&ring));
    let call = by_call
        .iter()
        .find(|e| e["destination"]["address"] == "/var/run/docker.sock")
        .unwrap_or_else(|| panic!("the connect(2) to the Docker socket, over the budget: {by_call:#?}"));
    assert_eq!(call["process"]["executable"], "/t/unix_connect", "{call}");
    assert_eq!(evaluate(&rules, call), Some(100_033), "{call}");
    let uring = by_ring
        .iter()
        .find(|e| e["docker_listener"]["seen_by"] == "io_uring")
        .unwrap_or_else(|| panic!("the io_uring connect to the Docker socket, over the budget: {by_ring:#?}"));
    assert_eq!(uring["process"]["executable"], "/t/uring_connect", "{uring}");
    assert_eq!(evaluate(&rules, uring), Some(100_071), "{uring}");
    assert_eq!(agent.daemon.stop(), 0);
}

/// Connects to new listeners of a container's own cannot spend the budget a connect to the
/// Docker socket is sent on over the budget: listeners outside the container (made to listen
/// by a process of another cgroup) have a firsts' budget of their own. One container spends its
/// own by connecting once to each of 300 listeners it binds (each a first), then connects to
/// the Docker socket (rule 100033); another does the same by 32-bit connects (each one a first:
/// read at the exit only); a third from a pid namespace nested in the container's (its
/// listeners' process, one level up, is in its cgroup: the container's own). Before, each
/// Docker-socket connect was held back and only counted.
#[test]
fn connects_to_the_containers_own_listeners_cannot_spend_the_docker_sockets_budget() {
    e2e();
    let _lock = docker_lock();
    let rules = support::rules::load_rules();
    let mut agent = start_agent_with("drain-sock", json!({}), json!({"budget_per_second": 50, "budget_burst": 100}));
    let drains = [
        (unique("drain"), "/t/unix_connect", "--drain"),
        (unique("drain32"), "/t/unix_connect_32", "--drain"),
        (unique("drainns"), "/t/unix_connect", "--drain-nested"),
    ];
    let _c = Containers(drains.iter().map(|(name, ..)| name.clone()).collect());
    let marker = unique("m");
    let done = format!("/tmp/done-{marker}");
    let volume = programs_volume();
    for (name, program, how) in &drains {
        let mut args = vec!["-v", &volume, "-v", "/var/run/docker.sock:/var/run/docker.sock"];
        if *how == "--drain-nested" {
            args.extend(["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"]);
        }
        run_detached(
            name,
            &args,
            &format!(
                "sleep 1; {program} {how} 300 /var/run/docker.sock > /tmp/out; \
                 cp /bin/busybox {done}; {done} true; sleep 600"
            ),
        );
    }
    let events =
        wait_events(&agent, "the drifted programs' execs and reports of the drains", Duration::from_secs(40), |e| {
            drains.iter().all(|(name, ..)| through(e, name, &done))
        });
    for (name, program, how) in &drains {
        let out = docker(&["exec", name, "cat", "/tmp/out"]);
        assert!(out.contains("drained=300") && out.contains("connect=0 (ok)"), "the premise: {out}");
        assert_eq!(out.contains("nested pid=1"), *how == "--drain-nested", "the premise: {out}");
        let connects: Vec<&Value> = events
            .iter()
            .filter(|e| e["container"]["name"] == name.as_str() && e["event"]["action"] == "connect")
            .collect();
        let to_own = connects
            .iter()
            .filter(|e| e["destination"]["address"].as_str().is_some_and(|a| a.starts_with("/tmp/drain-")))
            .count();
        assert!(to_own < 300, "the premise: {name}'s connects to its own listeners spent its budget ({to_own} sent)");
        let call =
            connects.iter().find(|e| e["destination"]["address"] == "/var/run/docker.sock").unwrap_or_else(|| {
                panic!("{name}'s connect to the Docker socket, after {to_own} of 300 own: {connects:#?}")
            });
        assert_eq!(call["process"]["executable"], *program, "{call}");
        assert_eq!(evaluate(&rules, call), Some(100_033), "{call}");
    }
    assert_eq!(agent.daemon.stop(), 0);
}

/// The exit-reported families have budgets of their own: a container flooding refused
/// `unshare(CLONE_NEWNS)` and reads of /etc/shadow (as one would to bury a call among
/// thousands) fills neither the ring nor the analyst's queue. Its excess is held back and
/// reported by container, every call accounted for; a call of another kind in the flood
/// (`unshare(CLONE_NEWUSER)`, a read of /etc/gshadow) still arrives; a quiet container loses
/// nothing, and no record is lost, with a ring buffer of 2 MiB (the flood is 200 MB of records;
/// a budget's burst of each kind, about 1 MB).
#[test]
fn a_flood_of_one_kind_of_call_is_held_back_and_buries_no_other_call() {
    e2e();
    let _lock = docker_lock();
    let rules = support::rules::load_rules();
    let mut agent = start_agent_with(
        "call-flood",
        json!({}),
        json!({"ring_buffer_bytes": 2 << 20, "budget_per_second": 200, "budget_burst": 400}),
    );
    let (stormer, quiet) = (unique("flood"), unique("quiet"));
    let _c = Containers(vec![stormer.clone(), quiet.clone()]);
    let marker = unique("m");
    const N: u64 = 100_000;
    // The container's own shadow files (the image has none), read until the test has seen one
    // matched (the container's set resolved), then the flood.
    run_detached(
        &stormer,
        &["-v", &programs_volume()],
        &format!(
            "echo 'root:*:19000::::::' > /etc/shadow; echo 'root:*::' > /etc/gshadow; \
             until [ -e /tmp/go ]; do cat /etc/shadow >/dev/null; sleep 0.2; done; \
             /t/call_flood {N} > /tmp/out; /bin/echo flooded-{marker}; sleep 600"
        ),
    );
    wait_events(&agent, "a read of /etc/shadow in the stormer's start loop", Duration::from_secs(30), |e| {
        e.iter().any(|x| x["container"]["name"] == stormer.as_str() && x["file"]["path"] == "/etc/shadow")
    });
    // (An exec is three records, fork, exec and exit: 15 a second, well within the budget.)
    run_detached(&quiet, &[], &format!("for i in $(seq 1 20); do /bin/echo {marker}-$i; sleep 0.2; done; sleep 600"));
    docker(&["exec", &stormer, "touch", "/tmp/go"]);

    // The flooder's calls (its exec aside).
    let flooder = |e: &Value| {
        e["container"]["name"] == stormer.as_str()
            && e["process"]["executable"] == "/t/call_flood"
            && e["event"]["action"] != "exec"
    };
    let quiet_execs =
        |events: &[Value]| (1..=20).filter(|i| !execs_with_arg(events, &format!("{marker}-{i}")).is_empty()).count();
    let held = |events: &[Value]| -> u64 {
        held_back(events, &stormer).iter().map(|r| r["docker_listener"]["held_back"]["records"].as_u64().unwrap()).sum()
    };
    // Every call of the flood is either an event or held back (and reported, once a second).
    let accounted = |events: &[Value]| held(events) + events.iter().filter(|e| flooder(e)).count() as u64;
    let events = wait_events(
        &agent,
        "the flood accounted for and the quiet container's 20 execs",
        Duration::from_secs(60),
        |e| {
            !execs_with_arg(e, &format!("flooded-{marker}")).is_empty()
                && quiet_execs(e) == 20
                && accounted(e) >= 2 * N + 2
        },
    );
    let out = docker(&["exec", &stormer, "cat", "/tmp/out"]);
    assert!(out.contains(&format!("refused={N} opened={N} user=-1 errno=1 gshadow=1")), "the premise: {out}");
    let mine: Vec<&Value> = events.iter().filter(|e| flooder(e)).collect();
    let of = |action: &str, what: &dyn Fn(&Value) -> bool| {
        mine.iter().copied().filter(|e| e["event"]["action"] == action && what(e)).collect::<Vec<_>>()
    };
    let mnt = of("unshare", &|e| e["docker_listener"]["namespace"]["types"] == json!(["mnt"]));
    let shadow = of("file-read", &|e| e["file"]["path"] == "/etc/shadow");
    // The flood's calls sent: at most the burst (runc's own calls in the container's cgroup,
    // about 170 mounts and privilege changes at its start and 100 for a `docker exec`, take
    // none of it), what the rate refilled while it ran (a second or two), and the first over
    // the budget; the rest held back.
    for (what, sent) in [("unshare(CLONE_NEWNS)", &mnt), ("reads of /etc/shadow", &shadow)] {
        assert!((1..=1000).contains(&sent.len()), "{what}: {} sent of {N}", sent.len());
    }
    assert!(mnt.iter().all(|e| e["event"]["outcome"] == "failure" && e["error"]["code"] == "EPERM"));
    assert_eq!(evaluate(&rules, mnt[0]), Some(100_027));
    // The calls of another kind arrive, with their rules.
    let user = of("unshare", &|e| e["docker_listener"]["namespace"]["types"] == json!(["user"]));
    assert_eq!(user.len(), 1, "unshare(CLONE_NEWUSER) after the flood: {user:#?}");
    assert_eq!(evaluate(&rules, user[0]), Some(100_027));
    let gshadow = of("file-read", &|e| e["file"]["path"] == "/etc/gshadow");
    assert_eq!(gshadow.len(), 1, "the read of /etc/gshadow after the flood");
    assert!(evaluate(&rules, gshadow[0]).is_some(), "{}", gshadow[0]);
    // Accounted for exactly: sent + held back = the calls made (nothing else of the stormer's
    // was over its budget).
    assert_eq!(mine.len() as u64, (mnt.len() + shadow.len() + 2) as u64, "{mine:#?}");
    let reports: Vec<&Value> =
        held_back(&events, &stormer).iter().map(|r| &r["docker_listener"]["held_back"]).collect();
    assert_eq!(accounted(&events), 2 * N + 2, "{reports:#?}");
    // And by class: what each family held back is its calls less its events.
    let by_class = |class: &str| -> u64 { reports.iter().map(|r| r["by_class"][class].as_u64().unwrap_or(0)).sum() };
    assert_eq!(by_class("namespace-change"), N + 1 - (mnt.len() + user.len()) as u64, "{reports:#?}");
    assert_eq!(by_class("file-open"), N + 1 - (shadow.len() + gshadow.len()) as u64, "{reports:#?}");
    let report = held_back(&events, &stormer)[0];
    assert_eq!(evaluate(&rules, report), Some(100_060));
    // The quiet container lost nothing, nor did anyone: no record lost in the kernel.
    assert_eq!(quiet_execs(&events), 20);
    assert!(held_back(&events, &quiet).is_empty());
    assert_eq!(agent.daemon.stop(), 0);
    assert_eq!(agent.daemon.final_stat("ebpf_lost"), 0, "no record lost in the kernel");
}

/// A container's ordinary io_uring opens (a file server's) spend nothing of its changes'
/// budget: each io_uring open is sent by its name unless its file is matched at its completion,
/// and takes a token of a budget of its own (`io_uring-open`). When they shared the changes'
/// budget, a burst of them left renames into /etc/cron.d right after it held back (measured: 2
/// of 3 sent). Here all three arrive, and what is held back is io_uring opens only.
#[test]
fn ordinary_io_uring_opens_hold_back_no_change_of_a_sensitive_file() {
    e2e();
    let _lock = docker_lock();
    let rules = support::rules::load_rules();
    let mut agent = start_agent_with("uring-flood", json!({}), json!({"budget_per_second": 200, "budget_burst": 400}));
    let name = unique("uflood");
    let _c = Containers(vec![name.clone()]);
    const N: u64 = 20_000;
    let marker = unique("m");
    run_detached(
        &name,
        &["-v", &programs_volume(), "--security-opt", "seccomp=unconfined"],
        &format!(
            "mkdir -p /etc/cron.d; echo '* * * * * root true' > /etc/cron.d/a; \
             until [ -e /tmp/go ]; do sleep 0.2; done; \
             /t/uring_flood {N} /etc/hostname 3 /etc/cron.d/a /etc/cron.d/b > /tmp/out; /bin/echo {marker}; sleep 600"
        ),
    );
    // The container known (its start seen) before the flood.
    wait_events(&agent, "the container's start", Duration::from_secs(30), |e| {
        e.iter().any(|x| x["container"]["name"] == name.as_str())
    });
    docker(&["exec", &name, "touch", "/tmp/go"]);
    let renames = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .filter(|e| {
                e["container"]["name"] == name.as_str()
                    && e["event"]["action"] == "file-rename"
                    && e["process"]["executable"] == "/t/uring_flood"
            })
            .cloned()
            .collect()
    };
    let events = wait_events(&agent, "the flood's end and its three renames", Duration::from_secs(60), |e| {
        !execs_with_arg(e, &marker).is_empty() && renames(e).len() >= 3
    });
    let out = docker(&["exec", &name, "cat", "/tmp/out"]);
    assert!(out.contains(&format!("opened={N} renamed=3")), "the premise: {out}");
    let sent = renames(&events);
    assert_eq!(sent.len(), 3, "every rename in /etc/cron.d after the io_uring opens arrives: {sent:#?}");
    for e in &sent {
        assert_eq!(e["docker_listener"]["file_access"]["sensitive"], "/etc/cron*", "{e}");
        assert_eq!(evaluate(&rules, e), Some(100_048), "{e}");
    }
    // The opens over their budget were held back, counted as io_uring opens; no change was.
    assert_eq!(agent.daemon.stop(), 0);
    let events = agent_events(&agent.queue.frames());
    let by_class = |class: &str| -> u64 {
        held_back(&events, &name)
            .iter()
            .map(|r| r["docker_listener"]["held_back"]["by_class"][class].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(by_class("io_uring-open") > 0, "the flood went over its budget: {:#?}", held_back(&events, &name));
    assert_eq!(by_class("file-change"), 0, "{:#?}", held_back(&events, &name));
}

/// The container runtime's own calls are not the container's: runc entering a container for a
/// `docker exec` (a healthcheck is one) makes about 100 privilege and namespace changes in the
/// container's cgroup, which the agent never reports. The kernel knows them by the file runc
/// runs and neither sends them nor counts them against the container's budgets, so a container
/// that is exec'd into more often than its budget would hold keeps all of its own calls, and
/// nothing of it is held back.
#[test]
fn the_runtime_s_calls_for_docker_execs_cost_the_container_nothing_of_its_budget() {
    e2e();
    let _lock = docker_lock();
    let mut agent =
        start_agent_with("runtime-exempt", json!({}), json!({"budget_per_second": 50, "budget_burst": 100}));
    let name = unique("runc-exempt");
    let _c = Containers(vec![name.clone()]);
    // Its own shadow files (the image has none), read until the test has seen one matched (the
    // container's set resolved).
    run_detached(
        &name,
        &["-v", &programs_volume()],
        "echo 'root:*:19000::::::' > /etc/shadow; echo 'root:*::' > /etc/gshadow; \
         until [ -e /tmp/go ]; do cat /etc/shadow >/dev/null; sleep 0.2; done; sleep 600",
    );
    wait_events(&agent, "a read of /etc/shadow in the container's start loop", Duration::from_secs(30), |e| {
        e.iter().any(|x| x["container"]["name"] == name.as_str() && x["file"]["path"] == "/etc/shadow")
    });
    // Ten `docker exec`s (about 1,000 calls of runc's: ten times the burst), then, at once, the
    // container's own calls of the classes runc's fill: reads of a sensitive file, refused
    // unshare(CLONE_NEWNS), privilege changes (setfsuid, setgroups, three prctls: runc makes
    // setgroups and prctls of its own at every exec).
    docker(&["exec", &name, "touch", "/tmp/go"]);
    for _ in 0..9 {
        docker(&["exec", &name, "true"]);
    }
    const ROUNDS: usize = 5;
    let out = docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        &format!(
            "for i in $(seq {ROUNDS}); do cat /etc/gshadow >/dev/null; unshare -m true 2>/dev/null; /t/priv_calls; \
             done; echo calls-done"
        ),
    ]);
    assert!(out.contains("calls-done"), "{out}");
    let mine = |e: &Value| e["container"]["name"] == name.as_str();
    let count = |events: &[Value], what: &dyn Fn(&Value) -> bool| events.iter().filter(|e| mine(e) && what(e)).count();
    let gshadow = |e: &Value| e["event"]["action"] == "file-read" && e["file"]["path"] == "/etc/gshadow";
    let unshare = |e: &Value| {
        e["event"]["action"] == "unshare"
            && e["event"]["outcome"] == "failure"
            && e["docker_listener"]["namespace"]["types"] == json!(["mnt"])
    };
    let privilege = |e: &Value| {
        e["process"]["executable"] == "/t/priv_calls"
            && ["setfsuid", "setgroups", "prctl"].contains(&e["event"]["action"].as_str().unwrap_or(""))
    };
    let all_sent = |e: &[Value]| {
        count(e, &gshadow) >= ROUNDS && count(e, &unshare) >= ROUNDS && count(e, &privilege) >= 5 * ROUNDS
    };
    // (Waited for with a deadline: what was held back never comes; the counts say what did.)
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_events(&agent, "the container's own calls", Duration::from_secs(15), all_sent)
    }));
    // The daemon reports what was held back at its stop too.
    assert_eq!(agent.daemon.stop(), 0);
    let events = agent_events(&agent.queue.frames());
    let reports = held_back(&events, &name);
    let by_class = |class: &str| -> u64 {
        reports.iter().map(|r| r["docker_listener"]["held_back"]["by_class"][class].as_u64().unwrap_or(0)).sum()
    };
    let runtime = agent.daemon.final_stat("ebpf_runtime_setup");
    eprintln!(
        "runtime calls not reported: {runtime}; sent: {} reads of /etc/gshadow, {} refused unshares, {} privilege \
         changes; held back: {:?}",
        count(&events, &gshadow),
        count(&events, &unshare),
        count(&events, &privilege),
        docker_listener_common::budget::NAMES.map(|c| (c, by_class(c)))
    );
    assert_eq!(count(&events, &gshadow), ROUNDS, "every read of /etc/gshadow arrives");
    assert_eq!(count(&events, &unshare), ROUNDS, "every refused unshare arrives");
    assert_eq!(count(&events, &privilege), 5 * ROUNDS, "every privilege change arrives");
    for class in ["file-open", "file-change", "privilege-change", "namespace-change"] {
        assert_eq!(by_class(class), 0, "{class}: nothing of the container's held back: {reports:#?}");
    }
    assert!(runtime >= 500, "runc's calls for ten `docker exec`s are counted, not sent: {runtime}");
}
