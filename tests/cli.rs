//! The command line as an operator meets it: config validation, exit codes, the instance lock,
//! missing privileges, and `doctor`.
mod support;

use std::{
    os::unix::fs::PermissionsExt,
    process::{Command, Output},
    time::Duration,
};

use serde_json::{Value, json};
use support::{
    fake_docker::{FakeDocker, Script, Step},
    *,
};

/// Runs the binary to its exit (`support::run_to_exit`).
fn run(args: &[&str]) -> Output {
    run_to_exit(Command::new(daemon_bin()).args(args))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn every_invalid_key_is_named_with_what_is_accepted_and_exit_2() {
    let dir = TempDir::new("badcfg");
    let cases: &[(Value, &str, &str)] = &[
        (json!({"enabled": "yes"}), "docker-listener.enabled", "boolean"),
        (json!({"wait_time": -1}), "docker-listener.wait_time", "0.1"),
        (json!({"wait_time": "5s"}), "docker-listener.wait_time", "f64"),
        (json!({"max_wait_time": 0.01}), "docker-listener.max_wait_time", "wait_time"),
        (json!({"max_event_size": 100000}), "docker-listener.max_event_size", "65535"),
        (json!({"debug": "true"}), "docker-listener.debug", "boolean"),
        (json!({"wazuh_home": "var/ossec"}), "docker-listener.wazuh_home", "absolute"),
        (json!({"queue": 5}), "docker-listener.queue", "string"),
        (json!({"output": "syslog"}), "docker-listener.output", "file:/path"),
        (json!({"output": "file:/var/log/"}), "docker-listener.output", "e.g. file:/var/log/docker-listener.ndjson"),
        (json!({"docker_host": "tcp://127.0.0.1:2375"}), "docker-listener.docker_host", "unix:///"),
        (json!({"state_dir": ""}), "docker-listener.state_dir", "absolute"),
        (json!({"legacy_fields": 1}), "docker-listener.legacy_fields", "boolean"),
        (json!({"buffer_bytes": 10}), "docker-listener.buffer_bytes", "64 KiB"),
        (json!({"ignore_actions": ["exec_", ""]}), "docker-listener.ignore_actions[1]", "empty"),
        (json!({"ebpf": {"enabled": "no"}}), "docker-listener.ebpf.enabled", "boolean"),
        (json!({"ebpf": {"required": null}}), "docker-listener.ebpf.required", "boolean"),
        (json!({"log_format": "xml"}), "docker-listener.log_format", "json"),
        (json!({"wait_tiem": 5}), "wait_tiem", "wait_time"),
    ];
    for (members, key, accepted) in cases {
        let path = write_config(&dir, members.clone());
        for cmd in [&["check-config", "--config"][..], &["--config"][..]] {
            let mut args = cmd.to_vec();
            args.push(path.to_str().unwrap());
            let out = run(&args);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(2), "{members} via {cmd:?}: {t}");
            assert!(
                t.contains(key) && t.contains(accepted),
                "{members}: message should name {key} and {accepted}: {t}"
            );
        }
    }
    let broken = dir.path("broken.json");
    std::fs::write(&broken, "{\"docker-listener\": {\"enabled\": true,}}").unwrap();
    let out = run(&["check-config", "--config", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("line 1"), "{}", text(&out));
    let out = run(&["check-config", "--config", "/nonexistent/dl.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("/nonexistent/dl.json"), "{}", text(&out));
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = TempDir::new("effective");
    let path = write_config(
        &dir,
        json!({"enabled": true, "wait_time": 5, "max_event_size": 65535, "debug": false, "legacy_fields": true}),
    );
    let out = run(&[
        "check-config",
        "--config",
        path.to_str().unwrap(),
        "--state-dir",
        "/tmp/dl-state",
        "--docker-host",
        "unix:///run/d.sock",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["docker-listener"];
    assert_eq!(c["queue"], "/var/ossec/queue/sockets/queue");
    assert_eq!(c["state_dir"], "/tmp/dl-state");
    assert_eq!(c["docker_host"], "unix:///run/d.sock");
    assert_eq!(c["legacy_fields"], true);
    assert_eq!(c["output"], "queue");
    assert_eq!(c["ebpf"]["enabled"], true);
    // What it prints is itself a valid config.
    let again = dir.path("again.json");
    std::fs::write(&again, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(run(&["check-config", "--config", again.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn disabled_in_config_exits_0_with_a_log_line() {
    let dir = TempDir::new("disabled");
    let path = write_config(&dir, json!({"enabled": false}));
    let out = run(&["--config", path.to_str().unwrap(), "--state-dir", dir.path("state").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("disabled in the configuration"), "{}", text(&out));
}

#[test]
fn a_second_instance_is_refused_with_the_holder_s_pid_exit_4() {
    let dir = TempDir::new("lock");
    let fake = FakeDocker::start(&dir.path("docker.sock"), "1.41", vec![Script::json(vec![Step::Hold])]);
    let queue = dir.path("queue");
    let state = dir.path("state");
    let first = Daemon::start(&[
        "--docker-host",
        &fake.host(),
        "--queue",
        queue.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--no-ebpf",
    ]);
    first.wait_for_log("connected to Docker", Duration::from_secs(10));
    let pid = std::fs::read_to_string(state.join("docker-listener.lock")).unwrap().trim().to_owned();
    // Same state directory.
    let out = run(&[
        "--docker-host",
        &fake.host(),
        "--queue",
        dir.path("other").to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--no-ebpf",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains(&format!("pid {pid}")), "{}", text(&out));
    // Same queue, another state directory: refused by the per-queue lock under
    // /run/docker-listener (root's; as another user the second daemon would run, and `run`
    // fails the test after 30 s).
    let out = run(&[
        "--docker-host",
        &fake.host(),
        "--queue",
        queue.to_str().unwrap(),
        "--state-dir",
        dir.path("state2").to_str().unwrap(),
        "--no-ebpf",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains(&format!("pid {pid}")), "{}", text(&out));
}

/// Runs the daemon as `nobody` (needs root to drop to it).
fn run_as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(daemon_bin())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn missing_privileges_are_named_with_the_fix_exit_3() {
    e2e();
    let dir = TempDir::new("perm");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A state directory nobody cannot write.
    let locked = dir.path("root-only");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out =
        run_as_nobody(&["--state-dir", locked.join("state").to_str().unwrap(), "--no-ebpf", "--output", "stdout"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("permission denied") && text(&out).contains("--state-dir"), "{}", text(&out));

    // A Docker socket nobody may not open.
    let fake = FakeDocker::start(&dir.path("docker.sock"), "1.41", vec![]);
    std::fs::set_permissions(&fake.path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = run_as_nobody(&[
        "--docker-host",
        &fake.host(),
        "--state-dir",
        state.to_str().unwrap(),
        "--no-ebpf",
        "--output",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("permission denied on the Docker socket"), "{}", text(&out));
    assert!(text(&out).contains("run docker-listener as root"), "{}", text(&out));

    // Root whose bounding set lacks CAP_SETUID and CAP_SETGID (a unit's CapabilityBoundingSet=,
    // a container's cap_drop) cannot become the configured user: the message says what it
    // lacks, not to start it as root.
    let cfg = dir.path("as-nobody.json");
    std::fs::write(&cfg, json!({"docker-listener": {"user": "nobody", "groups": ["nogroup"]}}).to_string()).unwrap();
    let out = run_to_exit(
        Command::new("setpriv").args(["--bounding-set", "-setuid,-setgid", "--"]).arg(daemon_bin()).args([
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            dir.path("state-as-nobody").to_str().unwrap(),
            "--docker-host",
            "unix:///nonexistent/docker.sock",
            "--no-ebpf",
            "--output",
            "stdout",
        ]),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("without CAP_SETUID and CAP_SETGID"), "{}", text(&out));
    assert!(!text(&out).contains("Start docker-listener as root"), "{}", text(&out));
}

#[test]
fn state_and_output_paths_another_user_could_redirect_are_refused_exit_3() {
    e2e();
    let dir = TempDir::new("unsafe");
    let refused = |args: &[&str], what: &str| {
        let mut all = vec!["--no-ebpf", "--docker-host", "unix:///nonexistent/docker.sock"];
        all.extend_from_slice(args);
        let out = run(&all);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(3), "{what}: {t}");
        t
    };
    let real = dir.path("real");
    std::fs::create_dir(&real).unwrap();
    // A symlinked state directory.
    let link = dir.path("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let t = refused(&["--state-dir", link.to_str().unwrap(), "--output", "stdout"], "symlinked state dir");
    assert!(t.contains("symbolic link") && t.contains("--state-dir"), "{t}");
    // A state directory others may write to.
    let open = dir.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let t = refused(&["--state-dir", open.to_str().unwrap(), "--output", "stdout"], "world-writable state dir");
    assert!(t.contains("others may write") && t.contains("chmod go-w"), "{t}");
    // A symlinked cursor.
    std::os::unix::fs::symlink("/etc/hostname", real.join("cursor.json")).unwrap();
    let t = refused(&["--state-dir", real.to_str().unwrap(), "--output", "stdout"], "symlinked cursor");
    assert!(t.contains("cursor.json") && t.contains("symbolic link"), "{t}");
    std::fs::remove_file(real.join("cursor.json")).unwrap();
    // A symlinked output file.
    let target = dir.path("elsewhere");
    std::fs::write(&target, "").unwrap();
    let out_link = dir.path("out-link");
    std::os::unix::fs::symlink(&target, &out_link).unwrap();
    let output = format!("file:{}", out_link.display());
    let fresh = dir.path("fresh/state");
    let t = refused(&["--state-dir", fresh.to_str().unwrap(), "--output", &output], "symlinked output");
    assert!(t.contains("symbolic link"), "{t}");
    // An output file in a sticky directory everyone may write to, belonging to another user.
    let shared = dir.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let theirs = shared.join("out.ndjson");
    std::fs::write(&theirs, "").unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let output = format!("file:{}", theirs.display());
    let t = refused(&["--state-dir", real.to_str().unwrap(), "--output", &output], "someone else's output file");
    assert!(t.contains("uid 65534"), "{t}");
    // What docker-listener creates itself is owner-only.
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777, 0o700);
    assert_eq!(std::fs::metadata(fresh.join("docker-listener.lock")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_systemd_unit_verifies_and_keeps_its_hardening() {
    e2e();
    // systemd is not PID 1 on these machines: the unit is verified and scored, not started.
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/docker-listener.service")).unwrap();
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "SystemCallArchitectures=native",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lost {line}");
    }
    // The per-queue lock's directory outlives a stop (a second instance refused stops the unit);
    // the bounding set lets it become the configured `user`.
    assert!(unit.lines().any(|l| l == "RuntimeDirectoryPreserve=yes"), "{unit}");
    let bounding = unit.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=")).unwrap();
    for cap in ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"] {
        assert!(bounding.split_whitespace().any(|c| c == cap), "{cap} not in {bounding}");
    }
    let dir = TempDir::new("unit");
    let copy = dir.path("docker-listener.service");
    // `verify` checks that ExecStart's program exists: this build's.
    std::fs::write(&copy, unit.replace("ExecStart=/usr/bin/docker-listener", &format!("ExecStart={}", daemon_bin())))
        .unwrap();
    let out = run_to_exit(Command::new("systemd-analyze").args(["verify", copy.to_str().unwrap()]));
    assert!(out.status.success() && out.stderr.is_empty(), "{}", text(&out));
    let out = run_to_exit(Command::new("systemd-analyze").args(["security", "--offline=true", copy.to_str().unwrap()]));
    let t = text(&out);
    let score: f64 = t
        .lines()
        .find_map(|l| l.split("docker-listener.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {t}"));
    assert!(score <= 3.5, "exposure level {score} (README says 3.1): {t}");
}

#[test]
fn doctor_reports_each_check_and_fails_on_a_missing_queue() {
    e2e();
    let dir = TempDir::new("doctor");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let out =
        run(&["doctor", "--queue", queue.path.to_str().unwrap(), "--state-dir", dir.path("state").to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for check in [
        "privileges",
        "docker socket",
        "docker api",
        // This machine's dockerd stores containers on overlay2: drift is told.
        "storage driver",
        "wazuh queue",
        "state dir",
        "kernel BTF",
        "tracefs",
        "ebpf programs",
        "kernel-module",
        "namespace-change",
        "privilege-change",
        "file-access",
        "container runtime",
    ] {
        let line = t.lines().find(|l| l.contains(check)).unwrap_or_else(|| panic!("no {check} line: {t}"));
        assert!(line.starts_with("OK"), "{line}");
    }
    assert!(t.contains("/_ping OK"), "{t}");

    let out = run(&[
        "doctor",
        "--queue",
        dir.path("missing").to_str().unwrap(),
        "--state-dir",
        dir.path("state").to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let line = t.lines().find(|l| l.contains("wazuh queue")).unwrap();
    assert!(line.starts_with("FAIL") && line.contains("does not exist") && line.contains("--output stdout"), "{line}");

    drop(queue); // stops reading, but the file stays: bound by nobody now
    let unbound = dir.path("unbound");
    drop(std::os::unix::net::UnixDatagram::bind(&unbound).unwrap());
    let out = run(&[
        "doctor",
        "--queue",
        unbound.to_str().unwrap(),
        "--no-ebpf",
        "--state-dir",
        dir.path("state").to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.lines().any(|l| l.starts_with("FAIL") && l.contains("nothing is bound")), "{t}");
}

#[test]
fn stats_and_the_metrics_endpoint_show_the_running_agent_s_counters() {
    let dir = TempDir::new("stats");
    let now = now_ns();
    let events = [
        support::fake_docker::event("container", "start", "c1", "web", now + 1),
        support::fake_docker::event("network", "connect", "n1", "none", now + 2),
    ];
    let fake = FakeDocker::start(
        &dir.path("docker.sock"),
        "1.41",
        vec![Script::json(vec![Step::Chunk(format!("{}\n{}\n", events[0], events[1]).into_bytes()), Step::Hold])],
    );
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut daemon = start_against_fake(&dir, &fake, &queue, json!({"metrics": format!("127.0.0.1:{port}")}));
    let state = dir.path("state");
    queue.wait_until(Duration::from_secs(10), "2 frames", |f| f.len() == 2);
    let out = run(&["stats", "--state-dir", state.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for line in [
        "docker_listener_events_in_total{source=\"docker\",type=\"container\"} 1",
        "docker_listener_events_in_total{source=\"docker\",type=\"network\"} 1",
        "docker_listener_events_out_total{source=\"docker\",type=\"all\"} 2",
        "docker_listener_frames_out_total 2",
        "docker_listener_docker_connected 1",
        "docker_listener_dropped_total{reason=\"output_buffer_full\"} 0",
        "docker_listener_buffer_capacity_bytes 16777216",
    ] {
        assert!(t.lines().any(|l| l == line), "missing {line:?} in:\n{t}");
    }
    // The same text over loopback TCP, as Prometheus would scrape it.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("docker_listener_frames_out_total 2"), "{reply}");
    assert!(reply.contains("docker_listener_resident_memory_bytes "), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{reply}");
    // Only reads are served.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    // Eight silent connections take every slot: a ninth is closed at once, and the eight are
    // closed once their request head is 2 s late; then scrapes are answered again.
    let silent: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut ninth = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    ninth.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = ninth.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    match ninth.read_to_end(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a ninth connection is held or answered: {other:?} {buf:?}"),
    }
    let started = std::time::Instant::now();
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "silent connections held for {waited:?}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("docker_listener_frames_out_total 2"), "{reply}");
    assert_eq!(daemon.stop(), 0);
    assert!(!state.join("stats.sock").exists(), "the socket is removed on shutdown");
    let out = run(&["stats", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no running docker-listener"), "{}", text(&out));
}
