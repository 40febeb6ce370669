//! The settings that change what reaches Wazuh, each end to end against the real dockerd, the
//! real daemon with its real eBPF programs, and a real datagram socket bound where the Wazuh
//! queue would be: `ignore_actions`, `ebpf.trace_host`, every per-probe switch,
//! `ebpf.argv_max_bytes` / `argv_max_args`, `ebpf.required` (both ways), JSON logs, the `unix:`
//! metrics endpoint, and `ebpf.ignore_containers` / `ignore_images` / `ignore_labels`. Each
//! "does not arrive" is checked against something that does arrive in the same run.
mod support;

use std::{
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{agent::*, *};

fn mine<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["container"]["name"] == name).collect()
}

fn action(e: &Value) -> &str {
    e["event"]["action"].as_str().unwrap_or("")
}

fn actions(events: &[&Value]) -> Vec<String> {
    events.iter().map(|e| action(e).to_owned()).collect()
}

/// The Docker events (forwarded) of the container named `name`.
fn docker_events_of(frames: &[Vec<u8>], name: &str) -> Vec<Value> {
    docker_events(frames)
        .into_iter()
        .filter(|e| e["Type"] == "container" && e["Actor"]["Attributes"]["name"] == name)
        .collect()
}

/// The daemon with `config` (members under "docker-listener"), more arguments after it, and
/// its queue; started through `wrapper` (a command and its arguments, then the daemon) if given.
fn start_daemon(dir: &TempDir, config: Value, extra: &[&str], wrapper: &[&str]) -> (QueueReceiver, Daemon) {
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let config = write_config(dir, config);
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(daemon_bin());
            c
        }
        None => Command::new(daemon_bin()),
    };
    cmd.args(agent_args(&config, &queue, dir)).args(extra);
    let daemon = Daemon::start_with(&mut cmd);
    (queue, daemon)
}

/// Waits until `t` (an instant) is at least `d` in the past: an event the correlator held
/// (waiting for its container) is sent or dropped after `HOLD` (5 s), so an absence is only
/// an absence once that much time has passed.
fn wait_past(t: Instant, d: Duration) {
    let elapsed = t.elapsed();
    if elapsed < d {
        std::thread::sleep(d - elapsed);
    }
}

const HOLD: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------------
// ignore_actions

#[test]
fn ignore_actions_drops_docker_events_whose_action_starts_with_a_prefix_and_only_those() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("ignact");
    // "exec_": exec_create/exec_start/exec_die; "des": destroy (a prefix, not a whole action).
    let (queue, mut daemon) = start_daemon(&dir, json!({"ignore_actions": ["exec_", "des"]}), &["--no-ebpf"], &[]);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    let name = unique("ignact");
    let marker = unique("ignact-marker");
    let _c = Containers(vec![name.clone()]);
    let t0 = now_ns();
    let id = docker(&["create", "--name", &name, "--network", "none", &image(), "sleep", "30"]).trim().to_owned();
    docker(&["start", &name]);
    docker(&["exec", &name, "true"]);
    docker(&["stop", "-t", "1", &name]);
    docker(&["rm", &name]);
    // A later event that is not ignored: once it arrived, the container's would have.
    docker(&["volume", "create", &marker]);
    docker(&["volume", "rm", &marker]);
    let t1 = now_ns();
    queue.wait_until(Duration::from_secs(20), "the marker volume's create", |f| {
        docker_events(f).iter().any(|e| e["Type"] == "volume" && e["Action"] == "create" && e["Actor"]["ID"] == marker)
    });
    std::thread::sleep(Duration::from_millis(300));

    let logged: Vec<Value> =
        docker_log_window(None, t0, t1).into_iter().filter(|e| e["Actor"]["ID"] == id.as_str()).collect();
    let logged_actions: Vec<&str> = logged.iter().map(|e| e["Action"].as_str().unwrap()).collect();
    for want in
        ["create", "start", "exec_create: true ", "exec_start: true ", "exec_die", "kill", "die", "stop", "destroy"]
    {
        assert!(logged_actions.contains(&want), "Docker's log lacks {want:?}: {logged_actions:?}");
    }
    let expected: Vec<Value> = logged
        .iter()
        .filter(|e| {
            let a = e["Action"].as_str().unwrap();
            !a.starts_with("exec_") && !a.starts_with("des")
        })
        .cloned()
        .collect();
    let forwarded: Vec<Value> =
        docker_events(&queue.frames()).into_iter().filter(|e| e["Actor"]["ID"] == id.as_str()).collect();
    // create, start, kill, die, stop arrive, as Docker logged them, in order; the five
    // exec_* and destroy events do not.
    assert_same_events(&forwarded, &expected);
    let kept: Vec<&str> = forwarded.iter().map(|e| e["Action"].as_str().unwrap()).collect();
    for want in ["create", "start", "kill", "die", "stop"] {
        assert!(kept.contains(&want), "{want} was not forwarded: {kept:?}");
    }
    assert!(!kept.iter().any(|a| a.starts_with("exec_") || *a == "destroy"), "{kept:?}");
    assert_eq!(daemon.stop(), 0);
    assert!(daemon.final_stat("docker_events_filtered") >= 4, "{}", daemon.log_text());
}

// ---------------------------------------------------------------------------------------------
// ebpf.trace_host

#[test]
fn trace_host_reports_host_processes_and_is_off_by_default() {
    e2e();
    let _docker = docker_lock();
    let on = start_agent("host-on", json!({"trace_host": true}));
    let off = start_agent("host-off", json!({}));
    let host_marker = unique("host-marker");
    let host_arg = format!("true {host_marker}");
    let ran = Instant::now();
    let status = Command::new("/bin/sh").args(["-c", &host_arg]).status().unwrap();
    assert!(status.success());
    // A container's exec after the host's: both daemons see it.
    let name = unique("host-ctr");
    let _c = Containers(vec![name.clone()]);
    let ctr_marker = format!("ctr-{name}");
    run_detached(&name, &[], &format!("/bin/echo {ctr_marker}; sleep 30"));
    for agent in [&on, &off] {
        wait_events(agent, "the container's echo", Duration::from_secs(30), |e| {
            !execs_with_arg(e, &ctr_marker).is_empty()
        });
    }
    let events =
        wait_events(&on, "the host's sh", Duration::from_secs(20), |e| !execs_with_arg(e, &host_arg).is_empty());
    let host = execs_with_arg(&events, &host_arg)[0];
    assert_eq!(host["process"]["args"], json!(["/bin/sh", "-c", host_arg]), "{host}");
    assert_eq!(host["event"]["outcome"], "success");
    assert!(host.get("container").is_none(), "a host process has no container object: {host}");
    assert!(host["docker_listener"].get("container_unknown").is_none(), "{host}");
    // Host tracing does not take containers' processes for host ones.
    let ctr = execs_with_arg(&events, &ctr_marker)[0];
    assert_eq!(ctr["container"]["name"], name.as_str(), "{ctr}");

    wait_past(ran, HOLD);
    let off_events = agent_events(&off.queue.frames());
    assert!(execs_with_arg(&off_events, &ctr_marker)[0]["container"]["name"] == name.as_str());
    assert!(execs_with_arg(&off_events, &host_arg).is_empty(), "trace_host off (the default) reported a host process");
    let hostless = |e: &&Value| {
        action(e) == "exec" && e.get("container").is_none() && e["docker_listener"]["container_unknown"] != true
    };
    assert!(
        !off_events.iter().any(|e| hostless(&e)),
        "trace_host off: an exec without a container: {:#?}",
        off_events.iter().find(|e| hostless(e))
    );
    for mut agent in [on, off] {
        assert_eq!(agent.daemon.stop(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// The per-probe switches

/// Each switch under `ebpf` and the events it controls.
/// An event of a family.
type Is = fn(&Value) -> bool;

const FAMILIES: &[(&str, Is)] = &[
    ("exec", |e| action(e) == "exec"),
    ("connect", |e| action(e) == "connect"),
    ("bind", |e| action(e) == "bind"),
    ("listen", |e| action(e) == "listen"),
    ("accept", |e| action(e) == "accept"),
    ("raw_sockets", |e| action(e) == "socket"),
    ("compat", |e| e["docker_listener"]["syscall"]["abi"] == "ia32"),
    ("io_uring", |e| action(e) == "io_uring_setup" || e["docker_listener"]["seen_by"] == "tcp_state"),
    ("kernel_module", |e| action(e).starts_with("module-")),
    ("bpf", |e| action(e).starts_with("bpf-")),
    ("ptrace", |e| matches!(action(e), "ptrace" | "process-vm-write")),
    ("namespace", |e| {
        matches!(action(e), "unshare" | "setns" | "clone" | "mount" | "umount" | "pivot_root" | "chroot")
    }),
    ("privilege", |e| {
        matches!(
            action(e),
            "setuid"
                | "setgid"
                | "setreuid"
                | "setregid"
                | "setresuid"
                | "setresgid"
                | "setfsuid"
                | "setfsgid"
                | "setgroups"
                | "capset"
                | "prctl"
        )
    }),
    ("file_access", |e| action(e).starts_with("file-")),
    ("dns", |e| action(e) == "dns-query"),
    ("udp_flows", |e| action(e) == "network-flow"),
];

/// Two halves of the switches: one daemon runs with the first half off, another with the
/// second half off, on the same container; what one does not report the other does.
const OFF_IN_A: &[&str] = &["exec", "bind", "accept", "compat", "kernel_module", "ptrace", "privilege", "dns"];

#[test]
fn each_probe_switch_turns_its_family_off_and_only_it() {
    e2e();
    let _docker = docker_lock();
    let off_a: serde_json::Map<String, Value> = OFF_IN_A.iter().map(|s| ((*s).to_owned(), json!(false))).collect();
    let off_b: serde_json::Map<String, Value> = FAMILIES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| !OFF_IN_A.contains(s))
        .map(|s| (s.to_owned(), json!(false)))
        .collect();
    assert_eq!(off_a.len() + off_b.len(), 16, "every switch is off in exactly one daemon");
    let a = start_agent("switches-a", Value::Object(off_a));
    let b = start_agent("switches-b", Value::Object(off_b));
    let name = unique("switches");
    let _c = Containers(vec![name.clone()]);
    let done = format!("done-{name}");
    // A sensitive file read in a loop until the file-access daemon has the container's set,
    // then one action of every family, then a refused connect (the marker of the daemon with
    // exec off) and an echo (the other's).
    run_detached(
        &name,
        &["-v", &programs_volume()],
        &format!(
            "echo 'root:*:19000::::::' > /etc/shadow; \
             until [ -e /tmp/go ]; do cat /etc/shadow >/dev/null; sleep 0.2; done; \
             nc -l -p 7601 >/dev/null & {}; echo x | nc 127.0.0.1 7601; \
             /t/raw_sockets; /t/compat_net_32 direct 7602; /t/uring_connect 7603; \
             echo x > /tmp/m.ko; insmod /tmp/m.ko; /t/bpf_load; sleep 61 & /t/ptrace_poke $!; \
             unshare -m true; /t/priv_calls; /t/net_send dns-sendto q-{name}.example; \
             /t/net_send flow 7604 2; \
             nc 127.0.0.1 7609; /bin/echo {done}; sleep 60",
            until_listening(7601)
        ),
    );
    // file_access is on in A.
    wait_events(&a, "a read of /etc/shadow", Duration::from_secs(30), |e| {
        mine(e, &name).iter().any(|x| action(x) == "file-read")
    });
    docker(&["exec", &name, "touch", "/tmp/go"]);
    let refused_7609 = |x: &&Value| action(x) == "connect" && x["destination"]["port"] == 7609;
    wait_events(&a, "the connect to 7609 (the last thing A sees)", Duration::from_secs(60), |e| {
        mine(e, &name).iter().any(refused_7609)
    });
    wait_events(&b, "the last echo", Duration::from_secs(60), |e| !execs_with_arg(e, &done).is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let (a_events, b_events) = (agent_events(&a.queue.frames()), agent_events(&b.queue.frames()));
    let (a_mine, b_mine) = (mine(&a_events, &name), mine(&b_events, &name));
    let mut failures = Vec::new();
    for (switch, is) in FAMILIES {
        let (off, on) =
            if OFF_IN_A.contains(switch) { (("A", &a_mine), ("B", &b_mine)) } else { (("B", &b_mine), ("A", &a_mine)) };
        let seen_on = on.1.iter().filter(|e| is(e)).count();
        let seen_off: Vec<&&Value> = off.1.iter().filter(|e| is(e)).collect();
        if seen_on == 0 {
            failures.push(format!("{switch}: on in daemon {}, no event (actions seen: {:?})", on.0, actions(on.1)));
        }
        if !seen_off.is_empty() {
            failures.push(format!(
                "{switch}: off in daemon {}, yet {} event(s), first: {}",
                off.0,
                seen_off.len(),
                seen_off[0]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Each daemon kept reporting the families it had on, from the same container.
    assert!(a_mine.iter().any(refused_7609) && execs_with_arg(&b_events, &done).len() == 1);
    for mut agent in [a, b] {
        assert_eq!(agent.daemon.stop(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// argv_max_bytes, argv_max_args

#[test]
fn argv_is_cut_to_argv_max_bytes_head_and_tail_and_to_argv_max_args() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("argv", json!({"argv_max_bytes": 64, "argv_max_args": 4}));
    let name = unique("argv");
    let _c = Containers(vec![name.clone()]);
    // Short enough for 64 bytes (at most 51), but eight arguments.
    let many = unique("many");
    // 300 bytes in one argument, then a marker that the tail keeps whole.
    let long = unique("long");
    assert!(long.len() <= 29);
    let pad = "x".repeat(300);
    run_detached(&name, &[], &format!("/bin/echo a1 a2 a3 a4 a5 a6 {many}; /bin/echo {pad} {long}; sleep 30"));
    let events = wait_events(&agent, "both echoes", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &many).is_empty() && !execs_with_arg(e, &long).is_empty()
    });

    // More than argv_max_args: the first half and the last half.
    let e = execs_with_arg(&events, &many)[0];
    assert_eq!(e["process"]["args"], json!(["/bin/echo", "a1", "a6", many]), "{e}");
    assert_eq!(e["process"]["args_count"], 4, "{e}");
    assert_eq!(e["docker_listener"]["args_truncated"], true, "{e}");
    assert!(e["docker_listener"].get("args_omitted_bytes").is_none(), "no byte was cut: {e}");

    // Longer than argv_max_bytes: 32 bytes of head, 32 of tail, the cut marked with "…".
    // argv in memory: "/bin/echo\0" (10) + pad "\0" (301) + long "\0".
    let total = 10 + 301 + long.len() + 1;
    let e = execs_with_arg(&events, &long)[0];
    let head = format!("{}…", "x".repeat(32 - 10));
    let tail = format!("…{}", "x".repeat(32 - (long.len() + 1) - 1));
    assert_eq!(e["process"]["args"], json!(["/bin/echo", head, tail, long]), "{e}");
    assert_eq!(e["docker_listener"]["args_truncated"], true, "{e}");
    assert_eq!(e["docker_listener"]["args_omitted_bytes"], total - 64, "{e}");
    assert_eq!(e["container"]["name"], name.as_str());
    assert_eq!(agent.daemon.stop(), 0);
}

// ---------------------------------------------------------------------------------------------
// ebpf.required

/// Runs the daemon as root without the capabilities loading BPF needs (CAP_BPF, CAP_PERFMON,
/// CAP_SYS_ADMIN), which the kernel then refuses (EPERM); everything else root may still do.
const WITHOUT_BPF_CAPS: &[&str] =
    &["setpriv", "--inh-caps=-bpf,-perfmon,-sys_admin", "--bounding-set=-bpf,-perfmon,-sys_admin", "--"];

#[test]
fn ebpf_required_exits_3_naming_the_cause_and_otherwise_falls_back_to_docker_events() {
    e2e();
    let _docker = docker_lock();
    // required: the daemon refuses to start, exit 3, one line that says why and what to do.
    let dir = TempDir::new("required");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let config = write_config(&dir, json!({"ebpf": {"required": true}}));
    let out = run_to_exit(
        Command::new(WITHOUT_BPF_CAPS[0])
            .args(&WITHOUT_BPF_CAPS[1..])
            .arg(daemon_bin())
            .args(agent_args(&config, &queue, &dir)),
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let line = text.lines().find(|l| l.contains("ERROR")).unwrap_or_else(|| panic!("no error line: {text}"));
    for part in
        ["not permitted to load eBPF programs", "run docker-listener as root", "CAP_BPF", "ebpf.required is set"]
    {
        assert!(line.contains(part), "the error should say {part:?}: {line}");
    }
    assert!(queue.frames().is_empty(), "it sent nothing");
    drop(queue);

    // Not required (the default): a warning, then Docker events only, still forwarded.
    let dir = TempDir::new("fallback");
    let (queue, mut daemon) = start_daemon(&dir, json!({}), &[], WITHOUT_BPF_CAPS);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(30));
    let warning = daemon.log_text().lines().find(|l| l.contains("eBPF is unavailable")).map(str::to_owned);
    let warning = warning.unwrap_or_else(|| panic!("no warning: {}", daemon.log_text()));
    assert!(warning.contains("WARN"), "{warning}");
    for part in ["Docker events only", "not permitted to load eBPF programs", "--no-ebpf"] {
        assert!(warning.contains(part), "the warning should say {part:?}: {warning}");
    }
    let name = unique("fallback");
    let _c = Containers(vec![name.clone()]);
    run_detached(&name, &[], &format!("/bin/echo fallback-{name}"));
    queue.wait_until(Duration::from_secs(20), "the container's die", |f| {
        docker_events_of(f, &name).iter().any(|e| e["Action"] == "die")
    });
    let frames = queue.frames();
    let forwarded: Vec<String> =
        docker_events_of(&frames, &name).iter().map(|e| e["Action"].as_str().unwrap().to_owned()).collect();
    for want in ["create", "start", "die"] {
        assert!(forwarded.iter().any(|a| a == want), "no Docker {want} event: {forwarded:?}");
    }
    let ours = agent_events(&frames);
    // The fallback reaches Wazuh as one health event, with its rule.
    let health: Vec<&Value> = ours.iter().filter(|e| e["event"]["action"] == "agent-health").collect();
    assert_eq!(health.len(), 1, "{health:#?}");
    let h = &health[0]["docker_listener"]["agent"];
    assert_eq!((h["component"].as_str(), h["status"].as_str()), (Some("ebpf"), Some("unavailable")));
    assert!(h["reason"].as_str().is_some_and(|r| r.contains("not permitted to load eBPF programs")), "{h}");
    let rules = support::rules::load_rules();
    assert_eq!(support::rules::evaluate(&rules, health[0]), Some(100_063));
    assert!(ours.iter().all(|e| e["event"]["action"] == "agent-health"), "no eBPF, no process events: {ours:#?}");
    assert_eq!(daemon.stop(), 0);
}

// ---------------------------------------------------------------------------------------------
// JSON logs

/// Every line is a JSON object with a timestamp, a level and a message; returns them.
fn json_lines(log: &str) -> Vec<Value> {
    assert!(!log.is_empty(), "no log at all");
    log.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            assert!(
                matches!(v["level"].as_str(), Some("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR")),
                "no level: {l}"
            );
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {l}");
            assert!(v["timestamp"].as_str().is_some(), "no timestamp: {l}");
            v
        })
        .collect()
}

fn logged<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["message"].as_str().is_some_and(|m| m.starts_with(message)))
        .unwrap_or_else(|| panic!("no {message:?} line among {lines:#?}"))
}

#[test]
fn log_format_json_makes_every_log_line_a_json_object() {
    e2e();
    let _docker = docker_lock();
    // From the config file, with eBPF: start-up, the probes, a container, shutdown.
    let mut agent = start_agent_with("jsonlog", json!({"log_format": "json"}), json!({}));
    let name = unique("jsonlog");
    let _c = Containers(vec![name.clone()]);
    run_detached(&name, &[], &format!("/bin/echo json-{name}; sleep 30"));
    wait_events(&agent, "the echo", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("json-{name}")).is_empty()
    });
    assert_eq!(agent.daemon.stop(), 0);
    let lines = json_lines(&agent.daemon.log_text());
    let start = logged(&lines, "docker-listener starting");
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"), "fields are members: {start}");
    assert!(start["output"].as_str().is_some_and(|o| o.contains("queue")), "{start}");
    logged(&lines, "container inventory loaded");
    assert!(logged(&lines, "docker-listener stopped")["stats"].as_str().is_some_and(|s| s.contains("frames_out=")));

    // From the command line, over a config that says text.
    let dir = TempDir::new("jsonflag");
    let (_queue, mut daemon) =
        start_daemon(&dir, json!({"log_format": "text"}), &["--no-ebpf", "--log-format", "json"], &[]);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    assert_eq!(daemon.stop(), 0);
    let lines = json_lines(&daemon.log_text());
    logged(&lines, "docker-listener starting");
    logged(&lines, "eBPF disabled");
    logged(&lines, "docker-listener stopped");

    // And the error a refused start ends with.
    let dir = TempDir::new("jsonerr");
    let config = write_config(&dir, json!({"ebpf": {"required": true}}));
    let out = run_to_exit(Command::new(WITHOUT_BPF_CAPS[0]).args(&WITHOUT_BPF_CAPS[1..]).arg(daemon_bin()).args([
        "--config",
        config.to_str().unwrap(),
        "--output",
        "stdout",
        "--state-dir",
        dir.path("state").to_str().unwrap(),
        "--log-format",
        "json",
    ]));
    assert_eq!(out.status.code(), Some(3));
    let lines = json_lines(&String::from_utf8_lossy(&out.stderr));
    let error = logged(&lines, "not permitted to load eBPF programs");
    assert_eq!(error["level"], "ERROR", "{error}");
}

// ---------------------------------------------------------------------------------------------
// The unix: metrics endpoint

fn get_metrics(path: &std::path::Path) -> String {
    let mut s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not HTTP: {reply}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // Header names are case-insensitive (hyper writes them in lower case).
    let head_lc = head.to_ascii_lowercase();
    assert!(head_lc.contains("content-type: text/plain"), "{head}");
    assert!(head_lc.contains(&format!("content-length: {}\r\n", body.len())), "{head} / {} bytes", body.len());
    body.to_owned()
}

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn the_unix_metrics_endpoint_serves_the_counters_over_http() {
    e2e();
    let _docker = docker_lock();
    let sock_dir = TempDir::new("metrics-sock");
    let path = sock_dir.path("metrics.sock");
    let mut agent = start_agent_with("metrics", json!({"metrics": format!("unix:{}", path.display())}), json!({}));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only socket");
    let before = get_metrics(&path);
    let frames_before = sample(&before, "docker_listener_frames_out_total");
    let execs_before = sample(&before, "docker_listener_events_out_total{source=\"ebpf\",type=\"exec\"}");
    let name = unique("metrics");
    let _c = Containers(vec![name.clone()]);
    run_detached(&name, &[], &format!("/bin/echo m1-{name}; /bin/echo m2-{name}; sleep 30"));
    let events = wait_events(&agent, "both echoes", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("m2-{name}")).is_empty()
    });
    let frames = agent.queue.frames();
    let my_frames = docker_events_of(&frames, &name).len() + mine(&events, &name).len();
    let my_execs = mine(&events, &name).iter().filter(|e| action(e) == "exec").count();
    assert!(my_execs >= 3, "the init and two echoes");
    let after = get_metrics(&path);
    let frames_after = sample(&after, "docker_listener_frames_out_total");
    assert!(
        frames_after - frames_before >= my_frames as u64,
        "frames_out_total moved {frames_before} -> {frames_after}; this container alone had {my_frames} frames"
    );
    let execs_after = sample(&after, "docker_listener_events_out_total{source=\"ebpf\",type=\"exec\"}");
    assert!(execs_after - execs_before >= my_execs as u64, "{execs_before} -> {execs_after}, {my_execs} execs");
    assert!(sample(&after, "docker_listener_events_in_total{source=\"docker\",type=\"container\"}") >= 2);
    assert_eq!(sample(&after, "docker_listener_docker_connected"), 1);
    assert_eq!(agent.daemon.stop(), 0);
    assert!(!path.exists(), "the socket is removed on shutdown");
}

// ---------------------------------------------------------------------------------------------
// ignore_containers, ignore_images, ignore_labels

/// Removes an image tag when dropped.
struct Tag(String);

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

#[test]
fn ignored_containers_are_not_traced_but_their_docker_events_are_forwarded() {
    e2e();
    let _docker = docker_lock();
    let repo = unique("ignimg");
    let tag = Tag(format!("{repo}:v1"));
    docker(&["tag", &image(), &tag.0]);
    let by_name = unique("ign-name");
    let by_id = unique("ign-id");
    let by_image = unique("ign-image");
    let by_key = unique("ign-key");
    let by_value = unique("ign-value");
    let traced = unique("ign-traced");
    let ignored = [&by_name, &by_id, &by_image, &by_key, &by_value];
    let _c = Containers(ignored.iter().map(|s| s.to_string()).chain([traced.clone()]).collect());
    let script = |n: &str| format!("/bin/echo mark-{n}; nc 127.0.0.1 9; true");
    let image = image();
    // Created before the agent starts, to know its id.
    let id = docker(&["create", "--name", &by_id, "--network", "none", &image, "sh", "-c", &script(&by_id)])
        .trim()
        .to_owned();
    let mut agent = start_agent(
        "ignore",
        json!({
            "ignore_containers": [by_name, &id[..12]],
            "ignore_images": [repo],
            "ignore_labels": ["dltest.ignore", "dltest.tier=secret"],
        }),
    );
    run_detached(&by_name, &[], &script(&by_name));
    docker(&["start", &by_id]);
    docker(&["run", "-d", "--network", "none", "--name", &by_image, &tag.0, "sh", "-c", &script(&by_image)]);
    run_detached(&by_key, &["--label", "dltest.ignore=1"], &script(&by_key));
    run_detached(&by_value, &["--label", "dltest.tier=secret"], &script(&by_value));
    agent.queue.wait_until(Duration::from_secs(30), "the ignored containers' die events", |f| {
        ignored.iter().all(|n| docker_events_of(f, n).iter().any(|e| e["Action"] == "die"))
    });
    let died = Instant::now();
    // Not ignored: a label key that is, with another value.
    run_detached(&traced, &["--label", "dltest.tier=public"], &format!("{}; sleep 30", script(&traced)));
    wait_events(&agent, "the traced container's exec and connect", Duration::from_secs(30), |e| {
        let m = mine(e, &traced);
        !execs_with_arg(e, &format!("mark-{traced}")).is_empty() && m.iter().any(|x| action(x) == "connect")
    });
    wait_past(died, HOLD);
    let frames = agent.queue.frames();
    let events = agent_events(&frames);
    let t = mine(&events, &traced);
    assert_eq!(execs_with_arg(&events, &format!("mark-{traced}"))[0]["container"]["name"], traced.as_str());
    assert_eq!(t[0]["container"]["labels"]["dltest.tier"], "public");
    for n in ignored {
        assert!(mine(&events, n).is_empty(), "{n} is ignored, yet: {:#?}", mine(&events, n));
        assert!(execs_with_arg(&events, &format!("mark-{n}")).is_empty(), "{n}'s exec, without its container");
        // The ignore lists are about tracing: Docker's own events of the container are still
        // forwarded (what Wazuh's listener would send).
        let actions: Vec<String> =
            docker_events_of(&frames, n).iter().map(|e| e["Action"].as_str().unwrap().to_owned()).collect();
        for want in ["start", "die"] {
            assert!(actions.iter().any(|a| a == want), "{n}: no Docker {want} event: {actions:?}");
        }
    }
    assert_eq!(agent.daemon.stop(), 0);
}
