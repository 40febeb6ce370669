//! The doors past the syscall tracepoints (issue 10): the 32-bit (ia32) system call ABI, direct
//! and through socketcall(2), and io_uring. A static i386 program and an io_uring program run in
//! a real container against the real daemon and kernel; each operation is reported with its
//! container, like the native ones, and fires the same rules.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{rules::*, *};

fn mine<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["container"]["name"] == name).collect()
}

fn on_port<'a>(events: &[&'a Value], action: &str, port: u16) -> &'a Value {
    let side = match action {
        "bind" | "listen" => "server",
        _ => "destination",
    };
    events
        .iter()
        .copied()
        .find(|e| e["event"]["action"] == action && e[side]["port"] == port)
        .unwrap_or_else(|| panic!("no {action} on port {port}: {events:#?}"))
}

#[test]
fn thirty_two_bit_system_calls_are_reported_like_native_ones() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("compat", json!({}));
    let name = unique("compat");
    let _c = Containers(vec![name.clone()]);
    let missing = format!("/nope32-{name}");
    // Also a 32-bit program exec'ing a 64-bit one (busybox) and back: the pairing entries of
    // execs that change ABI must not stay behind (counted at shutdown).
    run_detached(
        &name,
        &["-v", &programs_volume()],
        &format!(
            "/t/compat_net_32 socketcall 7301; /t/compat_net_32 direct 7302; /t/compat_net_32 exec {missing}; \
             for i in 1 2 3 4 5; do /t/compat_net_32 exec /bin/busybox; done; sleep 30"
        ),
    );
    let events = wait_events(&agent, "the 32-bit calls", Duration::from_secs(30), |e| {
        let m = mine(e, &name);
        m.iter().filter(|x| x["event"]["action"] == "accept").count() >= 2
            && m.iter().any(|x| x["event"]["action"] == "exec" && x["event"]["outcome"] == "failure")
            && m.iter()
                .filter(|x| x["process"]["executable"] == "/bin/busybox" && x["process"]["args"][1] == "compat")
                .count()
                >= 5
    });
    let m = mine(&events, &name);
    for (port, how) in [(7301u16, "socketcall"), (7302, "direct")] {
        for action in ["bind", "listen", "connect", "accept"] {
            let e = on_port(&m, action, port);
            assert_eq!(e["event"]["outcome"], "success", "{how} {action}: {e}");
            assert_eq!(e["docker_listener"]["syscall"]["abi"], "ia32", "{how} {action}: {e}");
            assert_eq!(e["process"]["executable"], "/t/compat_net_32");
            assert_eq!(e["network"]["transport"], "tcp");
        }
        let connect = on_port(&m, "connect", port);
        assert_eq!(connect["destination"]["ip"], "127.0.0.1");
        let connects: Vec<_> =
            m.iter().filter(|e| e["event"]["action"] == "connect" && e["destination"]["port"] == port).collect();
        assert_eq!(
            connects.len(),
            1,
            "{how}: one connect, by its system call, not again by its TCP state: {connects:#?}"
        );
        let accept = on_port(&m, "accept", port);
        assert_eq!(accept["source"]["port"], connect["source"]["port"], "{how}: the accepted peer is the connector");
        assert_eq!(evaluate(&rules, on_port(&m, "listen", port)), Some(100_007), "the listen rule, as for native");
        assert_eq!(evaluate(&rules, on_port(&m, "bind", port)), Some(100_008));
    }
    let failed = m
        .iter()
        .find(|e| e["event"]["action"] == "exec" && e["event"]["outcome"] == "failure")
        .expect("the failed 32-bit exec");
    assert_eq!(failed["process"]["executable"], missing.as_str(), "{failed}");
    assert_eq!(failed["process"]["args"], json!([missing, "compat"]), "argv read as 32-bit pointers");
    assert_eq!(failed["error"]["code"], "ENOENT");
    assert_eq!(failed["docker_listener"]["syscall"]["abi"], "ia32");
    assert_eq!(evaluate(&rules, failed), Some(100_005));
    // The 64-bit shell's exec of the 32-bit program was a native call.
    let launched = m
        .iter()
        .find(|e| e["event"]["action"] == "exec" && e["process"]["args"][1] == "socketcall")
        .expect("the exec of the 32-bit program");
    assert!(launched["docker_listener"]["syscall"].get("abi").is_none(), "{launched}");
    // The 32-bit execve of the 64-bit busybox: its exec event says the call was 32-bit.
    let to64 = m
        .iter()
        .find(|e| {
            e["event"]["action"] == "exec"
                && e["process"]["executable"] == "/bin/busybox"
                && e["process"]["args"][1] == "compat"
        })
        .expect("busybox exec'd by the 32-bit program");
    assert_eq!(to64["docker_listener"]["syscall"]["abi"], "ia32", "{to64}");
    assert_eq!(agent.daemon.stop(), 0);
    assert_eq!(agent.daemon.final_stat("ebpf_pending_exec"), 0, "execs across ABIs left pairing entries behind");
    assert_eq!(agent.daemon.final_stat("ebpf_pending_sock"), 0);
}

#[test]
fn an_io_uring_connect_and_the_ring_s_setup_are_reported() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("uring", json!({}));
    let name = unique("uring");
    let _c = Containers(vec![name.clone()]);
    // Then a connect(2), which must be reported once, by its system call, not again by its
    // TCP state change.
    run_detached(
        &name,
        &["-v", &programs_volume()],
        &format!(
            "/t/uring_connect 7401; nc -l -p 7402 >/dev/null & {}; echo x | nc 127.0.0.1 7402; sleep 30",
            until_listening(7402)
        ),
    );
    let events = wait_events(&agent, "the ring and its connect", Duration::from_secs(30), |e| {
        let m = mine(e, &name);
        m.iter().any(|x| x["event"]["action"] == "io_uring_setup")
            && m.iter().any(|x| x["event"]["action"] == "connect" && x["destination"]["port"] == 7401)
            && m.iter().any(|x| x["event"]["action"] == "accept" && x["destination"]["port"] == 7402)
            && m.iter().any(|x| x["event"]["action"] == "connect" && x["destination"]["port"] == 7402)
    });
    let m = mine(&events, &name);
    let setup = m.iter().find(|e| e["event"]["action"] == "io_uring_setup").unwrap();
    assert_eq!(setup["process"]["executable"], "/t/uring_connect", "{setup}");
    assert!(setup["docker_listener"]["io_uring"]["sq_entries"].as_u64().is_some_and(|n| n >= 4));
    assert_eq!(evaluate(&rules, setup), Some(100_015));
    let connect = on_port(&m, "connect", 7401);
    assert_eq!(connect["docker_listener"]["seen_by"], "tcp_state", "{connect}");
    assert_eq!(connect["event"]["outcome"], "unknown");
    assert_eq!(connect["destination"]["ip"], "127.0.0.1");
    assert_eq!(connect["network"], json!({"transport": "tcp", "type": "ipv4"}));
    assert_eq!(connect["process"]["pid"], setup["process"]["pid"]);
    // Seen at SYN_SENT: the source address is known, its port not yet.
    assert_eq!(connect["source"], json!({"ip": "127.0.0.1"}), "{connect}");
    let accept = on_port(&m, "accept", 7401);
    assert_eq!(accept["source"]["ip"], "127.0.0.1");
    let to_7402: Vec<&&Value> =
        m.iter().filter(|e| e["event"]["action"] == "connect" && e["destination"]["port"] == 7402).collect();
    assert_eq!(to_7402.len(), 1, "one connect(2), one event: {to_7402:#?}");
    assert_eq!(to_7402[0]["docker_listener"]["syscall"]["name"], "connect");
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn the_start_up_log_says_which_doors_are_open() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("doors", json!({"compat": false}));
    for door in ["native system calls", "executed files", "TCP connects without connect(2)", "io_uring setups"] {
        assert!(agent.daemon.count_log(&format!("seen: {door}: active")) == 1, "{door}:\n{}", agent.daemon.log_text());
    }
    assert_eq!(agent.daemon.count_log("not seen: 32-bit system calls: off in the configuration"), 1);
    assert_eq!(agent.daemon.count_log("not seen on any kernel: io_uring operations"), 1);
    // With it off, a 32-bit program's calls go unseen: the log said so.
    let name = unique("compatoff");
    let _c = Containers(vec![name.clone()]);
    run_detached(
        &name,
        &["-v", &programs_volume()],
        "/t/compat_net_32 direct 7501; /bin/echo done-compatoff; sleep 30",
    );
    let events = wait_events(&agent, "the echo after", Duration::from_secs(20), |e| {
        !execs_with_arg(e, "done-compatoff").is_empty()
    });
    assert!(mine(&events, &name).iter().all(|e| e["server"]["port"] != 7501), "a 32-bit bind with compat off");
    assert_eq!(agent.daemon.stop(), 0);
}

/// The fault injections below are read by the test build of the daemon only (debug_assertions
/// on): a release build would ignore them, and these tests would fail without saying why.
fn needs_the_test_build() {
    if !cfg!(debug_assertions) {
        panic!(
            "this test injects its fault through the test build of the daemon (debug_assertions on), which a \
             release build ignores: run it with `cargo xtask test`"
        );
    }
}

/// A kernel that has `bpf_loop` but whose verifier refuses the path walk as its callback (none
/// of those tested does) gets the unrolled walk, and the same events. The refusal is real, the
/// cause injected: the test build's `DL_TEST_REFUSE_BPF_LOOP` makes the loop object's `bpf_loop`
/// calls call a helper no kernel has, and this kernel's verifier refuses the programs that walk.
#[test]
fn a_kernel_refusing_the_bpf_loop_walk_gets_the_unrolled_one() {
    e2e();
    needs_the_test_build();
    let _docker = docker_lock();
    let mut agent = start_agent_with_env("refusedloop", json!({}), json!({}), &[("DL_TEST_REFUSE_BPF_LOOP", "1")]);
    let log = agent.daemon.log_text();
    let fell_back: Vec<&str> =
        log.lines().filter(|l| l.contains("this kernel refused the path walk as a bpf_loop callback")).collect();
    assert_eq!(fell_back.len(), 1, "{log}");
    // The first walking program loaded is the exec program's: its refusal is what was seen.
    assert!(fell_back[0].contains("sched_process_exec"), "{log}");
    assert_eq!(agent.daemon.count_log("fared no better"), 0, "{log}");
    for door in ["executed files", "file-access", "opens by handle", "io_uring opens"] {
        assert_eq!(agent.daemon.count_log(&format!("seen: {door}: active")), 1, "{door}:\n{log}");
    }
    let name = unique("refusedloop");
    let _c = Containers(vec![name.clone()]);
    run_detached(
        &name,
        &[],
        "echo 'root:*:19000::::::' > /etc/shadow; \
         for i in 1 2 3 4 5 6 7 8 9 10; do cat /etc/shadow >/dev/null; sleep 0.3; done; \
         /bin/echo done-refusedloop; sleep 30",
    );
    let events = wait_events(&agent, "the echo after the reads", Duration::from_secs(30), |e| {
        !execs_with_arg(e, "done-refusedloop").is_empty()
    });
    // The executable as the kernel ran it (the walk of its path), not the name execve was given.
    let echo = execs_with_arg(&events, "done-refusedloop")[0];
    assert_eq!(echo["process"]["executable"], "/bin/busybox", "{echo}");
    // The file program walked the path of what was opened.
    let reads: Vec<&Value> = mine(&events, &name)
        .into_iter()
        .filter(|e| e["event"]["action"] != "exec" && e["file"]["path"] == "/etc/shadow")
        .collect();
    assert!(!reads.is_empty(), "no read of /etc/shadow among {:#?}", mine(&events, &name));
    assert_eq!(agent.daemon.stop(), 0);
}

/// On such a kernel, `ebpf.path_walk: "unrolled"` loads the unrolled walk first: one load, no
/// refusal, nothing recorded by a load that is then replaced. The same injected refusal as
/// above would make the agent fall back (and log it) if the setting were not heeded.
#[test]
fn the_unrolled_walk_chosen_in_the_configuration_loads_once() {
    e2e();
    needs_the_test_build();
    let _docker = docker_lock();
    let mut agent = start_agent_with_env(
        "unrolledset",
        json!({}),
        json!({"path_walk": "unrolled"}),
        &[("DL_TEST_REFUSE_BPF_LOOP", "1")],
    );
    let log = agent.daemon.log_text();
    assert_eq!(agent.daemon.count_log("ebpf.path_walk is \"unrolled\": the path walks are unrolled"), 1, "{log}");
    assert_eq!(agent.daemon.count_log("refused the path walk"), 0, "{log}");
    assert_eq!(agent.daemon.count_log("replaced at start were not read"), 0, "{log}");
    assert_eq!(agent.daemon.count_log("seen: executed files: active"), 1, "{log}");
    let name = unique("unrolledset");
    let _c = Containers(vec![name.clone()]);
    run_detached(&name, &[], "/bin/echo done-unrolledset; sleep 30");
    let events =
        wait_events(&agent, "the echo", Duration::from_secs(30), |e| !execs_with_arg(e, "done-unrolledset").is_empty());
    let echo = execs_with_arg(&events, "done-unrolledset")[0];
    assert_eq!(echo["process"]["executable"], "/bin/busybox", "{echo}");
    assert_eq!(agent.daemon.stop(), 0);
}

/// What the refused first load recorded before it was replaced is never read: it is reported as
/// lost (`loss.by_reason.unread_at_fallback`), not dropped without a word. The test build holds
/// the refused load a second (`DL_TEST_REFUSE_BPF_LOOP=hold`) while host processes come and go
/// (`trace_host`): its exit program, attached before the exec program was refused, records them.
#[test]
fn the_records_of_a_replaced_first_load_are_reported_lost() {
    e2e();
    needs_the_test_build();
    let _docker = docker_lock();
    /// The busy loop, stopped however the test ends.
    struct Busy(std::process::Child);
    impl Drop for Busy {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let busy = Busy(
        std::process::Command::new("sh")
            .args(["-c", "while :; do /bin/true; done"])
            .spawn()
            .expect("sh for a busy host"),
    );
    let mut agent = start_agent_with_env(
        "unreadfallback",
        json!({}),
        json!({"trace_host": true}),
        &[("DL_TEST_REFUSE_BPF_LOOP", "hold")],
    );
    drop(busy);
    let log = agent.daemon.log_text();
    assert_eq!(agent.daemon.count_log("this kernel refused the path walk as a bpf_loop callback"), 1, "{log}");
    assert_eq!(agent.daemon.count_log("replaced at start were not read: reported as lost"), 1, "{log}");
    let lost = |e: &Value| e["event"]["action"] == "events-lost" && e["docker_listener"]["loss"]["reason"] == "ebpf";
    let events = wait_events(&agent, "the loss report", Duration::from_secs(30), |e| e.iter().any(&lost));
    let report = &events.iter().find(|x| lost(x)).expect("a loss report")["docker_listener"]["loss"];
    let unread = report["by_reason"]["unread_at_fallback"].as_u64().unwrap_or(0);
    // A second of `/bin/true` in a loop: hundreds of exits.
    assert!(unread > 10, "{report}");
    assert!(report["events_total"].as_u64().unwrap_or(0) >= unread, "{report}");
    let logged = log.lines().find(|l| l.contains("replaced at start were not read")).unwrap_or("");
    assert!(logged.contains(&format!("records={unread}")), "the log and the report disagree: {logged} / {report}");
    assert_eq!(agent.daemon.stop(), 0);
}
