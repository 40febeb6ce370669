//! Process and socket events from real eBPF programs, in real containers, attributed by the
//! real daemon; read from a real datagram socket bound where the Wazuh queue would be.
mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::*;

/// Context switches of the agent's (single) runtime thread so far.
fn context_switches(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn after_a_burst_the_agent_goes_back_to_sleep_and_the_kernel_still_wakes_it() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("idle", json!({}));
    let name = unique("idle");
    let _c = Containers(vec![name.clone()]);
    let marker = unique("late");
    // A burst (the monitor polls the ring buffer meanwhile), a quiet spell, then one exec.
    run_detached(
        &name,
        &[],
        &format!("for i in $(seq 100); do /bin/true burst; done; sleep 6; /bin/echo {marker}; sleep 30"),
    );
    wait_events(&agent, "the burst", Duration::from_secs(20), |e| execs_with_arg(e, "burst").len() == 100);
    // Quiet: no more polling every 3 ms (that would be ~330 wake-ups a second), only the
    // once-a-second housekeeping.
    std::thread::sleep(Duration::from_secs(1));
    let before = context_switches(agent.daemon.pid());
    std::thread::sleep(Duration::from_secs(1));
    let switches = context_switches(agent.daemon.pid()) - before;
    assert!(switches < 50, "{switches} context switches in a quiet second: the monitor is still polling");
    // The next exec is delivered when the kernel wakes the monitor, not up to a second later by
    // the housekeeping drain.
    let events =
        wait_events(&agent, "the late exec", Duration::from_secs(20), |e| !execs_with_arg(e, &marker).is_empty());
    let seen = now_ns();
    let late = execs_with_arg(&events, &marker)[0];
    let at = docker_listener::registry::rfc3339_ns(late["@timestamp"].as_str().unwrap()).unwrap();
    assert!(seen - at < 400_000_000, "the exec waited {} ms to be delivered", (seen - at) / 1_000_000);
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn a_cgroup_below_a_running_container_s_own_is_traced_from_the_start() {
    // systemd, or Docker, inside a container puts its processes in cgroups below the
    // container's: the start-up inventory must find those too.
    e2e();
    let _docker = docker_lock();
    let name = unique("nested");
    let _c = Containers(vec![name.clone()]);
    let marker = unique("inner");
    run_detached(&name, &[], &format!("while :; do sleep 0.5; /bin/true {marker}; done"));
    let pid = inspect(&name, "{{.State.Pid}}");
    let rel = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = rel.lines().find_map(|l| l.strip_prefix("0::")).unwrap().trim_start_matches('/').to_owned();
    let inner = docker_listener::registry::cgroup2_mount().unwrap().join(rel).join("inner");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(inner.join("cgroup.procs"), &pid).unwrap();
    let mut agent = start_agent("nested", json!({}));
    let events = wait_events(&agent, "an exec in the inner cgroup", Duration::from_secs(20), |e| {
        !execs_with_arg(e, &marker).is_empty()
    });
    let exec = execs_with_arg(&events, &marker)[0];
    assert_eq!(exec["container"]["name"], name.as_str());
    assert_eq!(
        exec["process"]["entry_leader"]["pid"].to_string(),
        pid,
        "the init, in the inner cgroup, learned from /proc at start-up: {exec}"
    );
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn exec_in_a_container_names_the_container_the_program_its_args_and_its_parent_chain() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("exec", json!({}));
    let name = unique("exec");
    let _c = Containers(vec![name.clone()]);
    let marker = format!("marker-{name}");
    let id = run_detached(
        &name,
        &["--label", "team=blue"],
        &format!("sleep 0.5; /bin/echo {marker} one two; /bin/nope-{name}; sleep 30"),
    )
    .trim()
    .to_owned();
    let init_pid: u64 = inspect(&name, "{{.State.Pid}}").parse().unwrap();
    let events = wait_events(&agent, "the echo and the failed exec", Duration::from_secs(20), |e| {
        !execs_with_arg(e, &marker).is_empty() && !execs_with_arg(e, &format!("/bin/nope-{name}")).is_empty()
    });

    let echo = execs_with_arg(&events, &marker)[0];
    assert_eq!(echo["integration"], "docker");
    assert!(echo.get("docker").is_none(), "never under the docker key");
    assert_eq!(echo["event"]["outcome"], "success");
    assert_eq!(echo["container"]["id"], id.as_str());
    assert_eq!(echo["container"]["name"], name.as_str());
    assert_eq!(echo["container"]["image"]["name"], image().as_str());
    assert_eq!(echo["container"]["labels"]["team"], "blue");
    // The file the kernel ran (busybox, through the /bin/echo symlink), and the program it runs as.
    assert_eq!(echo["process"]["executable"], "/bin/busybox");
    assert_eq!(echo["process"]["name"], "busybox");
    assert_eq!(echo["process"]["applet"], "echo");
    assert_eq!(echo["docker_listener"]["exec"]["filename"], "/bin/echo");
    assert_eq!(echo["process"]["args"], json!(["/bin/echo", marker, "one", "two"]));
    assert_eq!(echo["process"]["args_count"], 4);
    // Parent chain: echo <- the container's init (sh), which is the entry leader.
    assert_eq!(echo["process"]["parent"]["pid"], init_pid);
    assert_eq!(echo["process"]["parent"]["executable"], "/bin/busybox");
    assert_eq!(echo["process"]["parent"]["applet"], "sh");
    assert_eq!(echo["process"]["entry_leader"]["pid"], init_pid);
    let chain = echo["docker_listener"]["ancestors"].as_array().unwrap();
    assert_eq!(chain.last().unwrap()["pid"], init_pid, "the chain ends at the init: {chain:?}");
    assert_eq!(echo["process"]["parent"]["entity_id"], chain[0]["entity_id"]);
    assert!(echo["process"]["entity_id"].as_str().is_some_and(|s| s.len() == 16));
    // The init's own exec: attributed too (it raced Docker's start event), its parent outside.
    let init = events
        .iter()
        .find(|e| e["event"]["action"] == "exec" && e["process"]["pid"] == init_pid)
        .expect("the init's exec");
    assert_eq!(init["container"]["name"], name.as_str());
    assert_eq!(init["process"]["entry_leader"]["pid"], init_pid);
    assert!(init["docker_listener"]["container_started_time_nano"].is_i64());

    let failed = execs_with_arg(&events, &format!("/bin/nope-{name}"))[0];
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["error"]["code"], "ENOENT");
    assert_eq!(failed["process"]["executable"], format!("/bin/nope-{name}"));
    assert_eq!(failed["container"]["id"], id.as_str());
    // `docker-listener stats` on the running agent counts what it just did, from both sources.
    let out = Command::new(daemon_bin())
        .args(["stats", "--state-dir", agent._dir.path("state").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let value = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    };
    assert!(value("docker_listener_events_out_total{source=\"ebpf\",type=\"exec\"}") >= 3, "{text}");
    assert!(value("docker_listener_events_in_total{source=\"docker\",type=\"container\"}") >= 2, "{text}");
    assert!(value("docker_listener_events_in_total{source=\"ebpf\",type=\"record\"}") >= 3, "{text}");
    assert_eq!(value("docker_listener_docker_connected"), 1, "{text}");
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn connect_bind_listen_accept_on_the_container_loopback_with_addresses_and_results() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("sock", json!({}));
    let name = unique("sock");
    let _c = Containers(vec![name.clone()]);
    run_detached(
        &name,
        &[],
        &format!(
            "nc -l -p 8080 > /dev/null & {}; echo hello | nc 127.0.0.1 8080; nc 127.0.0.1 9; sleep 30",
            until_listening(8080)
        ),
    );
    let pid_of = |e: &Value| e["process"]["pid"].as_u64();
    let events = wait_events(&agent, "connect, refused connect, bind, listen, accept", Duration::from_secs(20), |e| {
        let mine: Vec<&Value> = e.iter().filter(|x| x["container"]["name"] == name.as_str()).collect();
        ["bind", "listen", "accept"].iter().all(|a| mine.iter().any(|x| x["event"]["action"] == *a))
            && mine.iter().filter(|x| x["event"]["action"] == "connect").count() >= 2
    });
    let mine: Vec<&Value> = events.iter().filter(|x| x["container"]["name"] == name.as_str()).collect();
    let find = |action: &str, outcome: &str| {
        *mine
            .iter()
            .find(|x| x["event"]["action"] == action && x["event"]["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {action} {outcome}: {mine:#?}"))
    };
    let bind = find("bind", "success");
    assert_eq!(bind["server"]["port"], 8080);
    assert_eq!(bind["network"]["transport"], "tcp");
    let listen = find("listen", "success");
    assert_eq!(listen["server"]["port"], 8080);
    assert_eq!(pid_of(bind), pid_of(listen));
    let connect = mine
        .iter()
        .find(|x| x["event"]["action"] == "connect" && x["destination"]["port"] == 8080)
        .expect("the connect to 8080");
    assert_eq!(connect["event"]["outcome"], "success");
    assert_eq!(connect["destination"]["ip"], "127.0.0.1");
    assert_eq!(connect["source"]["ip"], "127.0.0.1");
    assert_eq!(connect["network"], json!({"transport": "tcp", "type": "ipv4"}));
    let accept = find("accept", "success");
    assert_eq!(pid_of(accept), pid_of(listen), "accepted by the listener");
    assert_eq!(accept["source"]["ip"], "127.0.0.1");
    assert_eq!(accept["source"]["port"], connect["source"]["port"], "the accepted peer is the connecting socket");
    assert_eq!(accept["destination"]["port"], 8080);
    let refused = mine
        .iter()
        .find(|x| x["event"]["action"] == "connect" && x["destination"]["port"] == 9)
        .expect("the refused connect");
    assert_eq!(refused["event"]["outcome"], "failure");
    assert_eq!(refused["error"]["code"], "ECONNREFUSED");
    assert_eq!(refused["docker_listener"]["syscall"]["ret"], -111);
    // The socket events name the process that made them, as its exec did.
    let nc_exec = mine
        .iter()
        .find(|x| x["event"]["action"] == "exec" && x["process"]["pid"] == connect["process"]["pid"])
        .expect("the connecting nc's exec");
    assert_eq!(nc_exec["process"]["entity_id"], connect["process"]["entity_id"]);
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn unix_socket_bind_and_connect_carry_the_path() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("unix", json!({}));
    let name = unique("unix");
    let _c = Containers(vec![name.clone()]);
    // busybox syslogd binds /dev/log (AF_UNIX, datagram); logger connects to it.
    run_detached(
        &name,
        &[],
        &format!("syslogd -n -O /tmp/messages & {}; logger -t dltest hello; sleep 30", shell_wait("[ -S /dev/log ]")),
    );
    let events = wait_events(&agent, "unix bind and connect", Duration::from_secs(20), |e| {
        let mine = || e.iter().filter(|x| x["container"]["name"] == name.as_str());
        mine().any(|x| x["event"]["action"] == "bind" && x["network"]["type"] == "unix")
            && mine().any(|x| x["event"]["action"] == "connect" && x["network"]["type"] == "unix")
    });
    let mine: Vec<&Value> = events.iter().filter(|x| x["container"]["name"] == name.as_str()).collect();
    let bind =
        mine.iter().find(|x| x["event"]["action"] == "bind" && x["network"]["type"] == "unix").expect("syslogd's bind");
    assert_eq!(bind["server"]["address"], "/dev/log");
    assert_eq!(bind["network"]["transport"], "dgram");
    assert_eq!(bind["event"]["outcome"], "success");
    assert_eq!(bind["process"]["applet"], "syslogd");
    let connect = mine
        .iter()
        .find(|x| x["event"]["action"] == "connect" && x["network"]["type"] == "unix")
        .expect("logger's connect");
    assert_eq!(connect["destination"]["address"], "/dev/log");
    assert_eq!(connect["network"]["transport"], "dgram");
    assert_eq!(connect["event"]["outcome"], "success");
    assert_eq!(connect["process"]["applet"], "logger");
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn host_processes_produce_nothing_while_host_tracing_is_off() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("host", json!({}));
    let marker = unique("hostmark");
    let out = Command::new("busybox")
        .args([
            "sh",
            "-c",
            &format!(
                "busybox nc -l -p 18080 >/dev/null & {}; echo x | busybox nc 127.0.0.1 18080; busybox nc 127.0.0.1 9; /bin/echo {marker}",
                shell_wait("busybox netstat -ltn | grep -q ':18080 '")
            ),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&marker));
    // Something from a container afterwards proves the agent was tracing all along.
    let name = unique("after");
    let _c = Containers(vec![name.clone()]);
    docker(&["run", "--rm", "--network", "none", "--name", &name, &image(), "/bin/echo", &format!("c-{marker}")]);
    let events = wait_events(&agent, "the container's exec", Duration::from_secs(20), |e| {
        !execs_with_arg(e, &format!("c-{marker}")).is_empty()
    });
    assert!(execs_with_arg(&events, &marker).is_empty(), "a host exec was reported");
    for e in &events {
        assert!(e.get("container").is_some() || e["event"]["kind"] == "metric", "an event without a container: {e}");
        for side in ["source", "destination", "server"] {
            assert_ne!(e[side]["port"], 18080, "a host socket was reported: {e}");
        }
    }
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn containers_started_before_and_after_the_agent_are_both_attributed() {
    e2e();
    let _docker = docker_lock();
    let before = unique("before");
    let after = unique("after");
    let _c = Containers(vec![before.clone(), after.clone()]);
    let looping = |tag: &str| format!("while :; do /bin/echo tick-{tag}; sleep 0.2; done");
    docker(&["run", "-d", "--network", "none", "--name", &before, &image(), "sh", "-c", &looping(&before)]);
    let before_init: u64 = inspect(&before, "{{.State.Pid}}").parse().unwrap();
    let mut agent = start_agent("beforeafter", json!({}));
    docker(&["run", "-d", "--network", "none", "--name", &after, &image(), "sh", "-c", &looping(&after)]);
    let after_init: u64 = inspect(&after, "{{.State.Pid}}").parse().unwrap();
    let tick_before = format!("tick-{before}");
    let tick_after = format!("tick-{after}");
    let events = wait_events(&agent, "ticks from both containers", Duration::from_secs(20), |e| {
        !execs_with_arg(e, &tick_before).is_empty() && !execs_with_arg(e, &tick_after).is_empty()
    });
    // The container that predates the agent has its process tree from /proc, the later one's
    // from the kernel's records: the same executable either way.
    for (tick, name, init, init_exe) in
        [(&tick_before, &before, before_init, "/bin/busybox"), (&tick_after, &after, after_init, "/bin/busybox")]
    {
        for e in execs_with_arg(&events, tick) {
            assert_eq!(e["container"]["name"], name.as_str(), "{e}");
            assert_eq!(e["process"]["parent"]["pid"], init, "{e}");
            assert_eq!(e["process"]["entry_leader"]["pid"], init, "{e}");
            assert_eq!(e["process"]["parent"]["applet"], "sh", "{e}");
            assert_eq!(e["process"]["parent"]["executable"], init_exe, "{e}");
        }
    }
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn two_hundred_containers_every_exec_attributed_to_its_own_container() {
    e2e();
    let _docker = docker_lock();
    const N: usize = 200;
    let mut agent = start_agent("density", json!({}));
    let names: Vec<String> = (0..N).map(|i| unique(&format!("d{i}"))).collect();
    let _c = Containers(names.clone());
    let started = Instant::now();
    std::thread::scope(|s| {
        for chunk in names.chunks(N / 8) {
            s.spawn(move || {
                for name in chunk {
                    run_detached(name, &[], &format!("sleep 1; /bin/echo mark-{name}; sleep 600"));
                }
            });
        }
    });
    eprintln!("started {N} containers in {:?}", started.elapsed());
    let events = wait_events(&agent, "one exec per container", Duration::from_secs(90), |e| {
        names.iter().all(|n| !execs_with_arg(e, &format!("mark-{n}")).is_empty())
    });
    for name in &names {
        let marks = execs_with_arg(&events, &format!("mark-{name}"));
        assert_eq!(marks.len(), 1, "{name}");
        assert_eq!(marks[0]["container"]["name"], name.as_str(), "{}", marks[0]);
        assert!(marks[0]["docker_listener"].get("container_unresolved").is_none());
    }
    if let Some(rss) = std::fs::read_to_string(format!("/proc/{}/status", agent.daemon.pid()))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
    {
        eprintln!("agent with {N} containers: {rss}");
    }
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn a_ring_buffer_overflow_is_counted_exactly_and_the_agent_keeps_running() {
    e2e();
    let _docker = docker_lock();
    // One page of ring buffer holds a single exec record: an exec storm must overflow it.
    let mut agent = start_agent("overflow", json!({"ring_buffer_bytes": 4096}));
    let name = unique("storm");
    let _c = Containers(vec![name.clone()]);
    const STORM: usize = 2000;
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &name,
        &image(),
        "sh",
        "-c",
        &format!("i=0; while [ $i -lt {STORM} ]; do /bin/true storm; i=$((i+1)); done"),
    ]);
    // Still running, still delivering.
    let after = unique("alive");
    let _c2 = Containers(vec![after.clone()]);
    docker(&["run", "--rm", "--network", "none", "--name", &after, &image(), "/bin/echo", &after]);
    wait_events(&agent, "an exec after the storm", Duration::from_secs(20), |e| !execs_with_arg(e, &after).is_empty());
    let events = wait_events(&agent, "a loss report", Duration::from_secs(10), |e| {
        e.iter().any(|x| x["event"]["action"] == "events-lost")
    });
    assert_eq!(agent.daemon.stop(), 0);
    let events = {
        std::thread::sleep(Duration::from_millis(300));
        let mut all = agent_events(&agent.queue.frames());
        if all.len() < events.len() {
            all = events;
        }
        all
    };
    let stat = |key: &str| agent.daemon.final_stat(key);
    let lost = stat("ebpf_lost");
    let gaps = stat("ebpf_seq_gaps");
    let delivered = execs_with_arg(&events, "storm").len() as u64;
    eprintln!("storm of {STORM} execs: {delivered} delivered, {lost} records lost, {gaps} sequence gaps");
    assert!(lost > 0, "the tiny ring buffer must overflow");
    assert_eq!(lost, gaps, "the loss counters and the sequence numbers agree");
    assert!(delivered < STORM as u64);
    assert!(delivered + lost >= STORM as u64, "every storm exec is delivered or counted lost");
    let reports: Vec<&Value> = events.iter().filter(|x| x["event"]["action"] == "events-lost").collect();
    let last = reports.last().unwrap();
    assert_eq!(last["event"]["kind"], "metric");
    assert_eq!(last["docker_listener"]["loss"]["events_total"], lost, "the last report carries the final total");
    let sum: u64 = reports.iter().map(|r| r["docker_listener"]["loss"]["events"].as_u64().unwrap()).sum();
    assert_eq!(sum, lost, "reports add up to the total");
    assert_eq!(last["docker_listener"]["loss"]["by_reason"]["ringbuf_full"], lost);
}
