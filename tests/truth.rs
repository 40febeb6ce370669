//! Events an attacker inside a container cannot bend (issue 9): the file the kernel executed, not
//! what the caller typed; the parent as it was; every Docker container, wherever its cgroup is;
//! every frame intact whatever the labels; raw sockets, hidden argv tails, and what ran before
//! the agent. Real dockerd, real eBPF, real containers, datagrams from a real socket.
mod support;

use std::{process::Command, time::Duration};

use serde_json::{Value, json};
use support::{rules::*, *};

fn exec_with<'a>(events: &'a [Value], arg: &str) -> &'a Value {
    execs_with_arg(events, arg).first().copied().unwrap_or_else(|| panic!("no exec with argument {arg}"))
}

fn mine<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["container"]["name"] == name).collect()
}

#[test]
fn exec_events_name_the_file_the_kernel_ran_whatever_the_caller_typed() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("realexe", json!({}));
    let name = unique("realexe");
    let _c = Containers(vec![name.clone()]);
    let m = |tag: &str| format!("{tag}-{name}");
    let script = [
        // A shell that says it is nginx.
        format!("(exec -a nginx /bin/bash -c 'true {}')", m("disguised")),
        // A busybox applet started by busybox's shell, which re-executes /proc/self/exe (the
        // applets it runs without exec are no exec at all).
        format!("cat /{} 2>/dev/null", m("applet")),
        // A copy of a shell in /tmp, run by a relative path.
        format!("cp /bin/bash /tmp/x && cd /tmp && ./x -c 'true {}'; cd /", m("relative")),
        // A symlink to a shell.
        format!("ln -s /bin/bash /tmp/lnk && /tmp/lnk -c 'true {}'", m("symlink")),
        // A re-exec of itself.
        format!("/bin/bash -c 'exec /proc/self/exe -c \"true {}\"'", m("selfexe")),
        // Fileless: a shell copied into a memfd and run from it.
        format!("/t/memfd_exec payload /bin/bash bash -c 'true {}'", m("memfd")),
        // The plain cases the rules are written for.
        format!("/bin/bash -c 'true {}'", m("plainbash")),
        format!("cp /bin/busybox /tmp/tool && /tmp/tool echo {}", m("plaintmp")),
        // Fileless: a program on a memory filesystem (Docker's /dev is a tmpfs that allows exec).
        format!("cp /bin/busybox /dev/busybox && /dev/busybox echo {}", m("devtmpfs")),
        // Drift under an image path: the image's own bash, written to (copied up to the
        // writable layer), then run by its usual name; last, as every later bash would drift.
        format!("printf '' >> /bin/bash && /bin/bash -c 'true {}'", m("modified")),
        "sleep 30".to_owned(),
    ]
    .join("; ");
    run_detached(&name, &["-v", &programs_volume()], &script);
    let events = wait_events(&agent, "the memfd exec", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("true {}", m("memfd"))).is_empty()
            && !execs_with_arg(e, &format!("true {}", m("modified"))).is_empty()
    });

    let disguised = execs_with_arg(&events, &format!("true {}", m("disguised")))
        .into_iter()
        .find(|e| e["process"]["args"][0] == "nginx")
        .expect("the disguised shell's exec");
    assert_eq!(disguised["process"]["executable"], "/bin/bash", "{disguised}");
    assert_eq!(disguised["process"]["name"], "bash");
    assert!(disguised["process"].get("applet").is_none(), "argv[0] of bash names nothing");
    assert_eq!(disguised["docker_listener"]["exec"]["filename"], "/bin/bash");
    assert_eq!(evaluate(&rules, disguised), Some(100_002), "the shell rule, as for plain bash");

    let applet = exec_with(&events, &format!("/{}", m("applet")));
    assert_eq!(applet["process"]["executable"], "/bin/busybox", "{applet}");
    assert_eq!(applet["process"]["applet"], "cat");
    assert_eq!(applet["docker_listener"]["exec"]["filename"], "/proc/self/exe");

    let relative = exec_with(&events, &format!("true {}", m("relative")));
    assert_eq!(relative["process"]["executable"], "/tmp/x", "{relative}");
    assert_eq!(relative["process"]["name"], "x");
    assert_eq!(relative["docker_listener"]["exec"]["filename"], "./x");
    let plain_tmp = exec_with(&events, &m("plaintmp"));
    assert_eq!(plain_tmp["process"]["executable"], "/tmp/tool");
    // Both were copied into the container after it started: drift, whatever the path.
    for e in [relative, plain_tmp] {
        let file = &e["docker_listener"]["exec"]["file"];
        assert_eq!(file["drift"], true, "{e}");
        assert!(file.get("fileless").is_none(), "{e}");
        assert_eq!(evaluate(&rules, e), Some(100_043), "the drift rule: {e}");
    }

    let symlink = exec_with(&events, &format!("true {}", m("symlink")));
    assert_eq!(symlink["process"]["executable"], "/bin/bash", "{symlink}");
    assert_eq!(symlink["docker_listener"]["exec"]["filename"], "/tmp/lnk");
    assert_eq!(evaluate(&rules, symlink), Some(100_002));

    let selfexe = execs_with_arg(&events, &format!("true {}", m("selfexe")))
        .into_iter()
        .find(|e| e["docker_listener"]["exec"]["filename"] == "/proc/self/exe")
        .expect("the re-exec through /proc/self/exe");
    assert_eq!(selfexe["process"]["executable"], "/bin/bash", "{selfexe}");
    assert_eq!(evaluate(&rules, selfexe), Some(100_002));

    let memfd = execs_with_arg(&events, &format!("true {}", m("memfd")))
        .into_iter()
        .find(|e| e["process"]["args"][0] == "bash")
        .expect("the exec from the memfd");
    assert_eq!(memfd["process"]["executable"], "memfd:payload", "{memfd}");
    let file = &memfd["docker_listener"]["exec"]["file"];
    assert_eq!(file["memfd"], true, "{memfd}");
    assert_eq!(file["unlinked"], true);
    assert_eq!(file["filesystem"], "tmpfs");
    assert_eq!(file["fileless"], true);
    assert_eq!(file["fileless_reason"], "memfd");
    assert!(file.get("drift").is_none(), "a memfd is on no overlay: {memfd}");
    assert!(memfd["docker_listener"]["exec"]["filename"].as_str().unwrap().starts_with("/dev/fd/"), "{memfd}");
    assert_eq!(evaluate(&rules, memfd), Some(100_042), "the fileless rule");

    let dev = exec_with(&events, &m("devtmpfs"));
    assert_eq!(dev["process"]["executable"], "/dev/busybox", "{dev}");
    let file = &dev["docker_listener"]["exec"]["file"];
    assert_eq!(
        (&file["fileless"], &file["fileless_reason"], &file["filesystem"]),
        (&json!(true), &json!("tmpfs"), &json!("tmpfs")),
        "{dev}"
    );
    assert_eq!(evaluate(&rules, dev), Some(100_042));

    let modified = execs_with_arg(&events, &format!("true {}", m("modified")))
        .into_iter()
        .find(|e| e["process"]["executable"] == "/bin/bash")
        .expect("the modified bash's exec");
    assert_eq!(modified["docker_listener"]["exec"]["file"]["drift"], true, "{modified}");
    assert_eq!(evaluate(&rules, modified), Some(100_043), "drift before the shell rule");

    // The program that made the memfd runs from a bind mount: not drift (a volume is not the
    // container's writable layer), not fileless.
    let launcher = events
        .iter()
        .find(|e| e["event"]["action"] == "exec" && e["process"]["executable"] == "/t/memfd_exec")
        .expect("the exec of /t/memfd_exec");
    let file = &launcher["docker_listener"]["exec"]["file"];
    assert!(file.get("drift").is_none() && file.get("fileless").is_none(), "{launcher}");

    let plain = exec_with(&events, &format!("true {}", m("plainbash")));
    assert_eq!(plain["process"]["executable"], "/bin/bash");
    assert_eq!(evaluate(&rules, plain), Some(100_002));
    // Every exec of the image's own files is on the container's root filesystem.
    assert_eq!(plain["docker_listener"]["exec"]["file"]["filesystem"], "overlay", "{plain}");
    // ... and as the image has it: neither drift nor fileless.
    let file = &plain["docker_listener"]["exec"]["file"];
    assert!(file.get("drift").is_none() && file.get("fileless").is_none(), "{plain}");
    for e in mine(&events, &name) {
        // The image's programs started by the script (sh, cp, sleep) carry no mark either.
        if e["event"]["action"] == "exec"
            && ["/bin/busybox", "/bin/sh"].contains(&e["process"]["executable"].as_str().unwrap_or(""))
        {
            let file = &e["docker_listener"]["exec"]["file"];
            assert!(file.get("drift").is_none() && file.get("fileless").is_none(), "{e}");
        }
    }
    assert!(plain["docker_listener"]["exec"]["file"]["inode"].as_u64().is_some_and(|i| i > 0));
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn a_child_names_its_parent_as_it_was_when_it_was_started() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("parentwas", json!({}));
    let name = unique("parentwas");
    let _c = Containers(vec![name.clone()]);
    let marker = format!("child-{name}");
    // bash starts a child, then execs its last command (busybox sleep) before the child execs.
    // All of it happens as the container starts, while its details are still being fetched:
    // the events are held, then written.
    run_detached(&name, &[], &format!("exec /bin/bash -c '(sleep 0.5; exec /bin/echo {marker}) & exec /bin/sleep 30'"));
    let events =
        wait_events(&agent, "the child's exec", Duration::from_secs(20), |e| !execs_with_arg(e, &marker).is_empty());
    let child = exec_with(&events, &marker);
    let init: u64 = inspect(&name, "{{.State.Pid}}").parse().unwrap();
    let parent = &child["process"]["parent"];
    assert_eq!(parent["pid"], init, "{child}");
    assert_eq!(parent["executable"], "/bin/bash", "the shell that started it, not the sleep it became: {child}");
    // The shell's own exec events say the same process became busybox sleep.
    let became = mine(&events, &name)
        .into_iter()
        .find(|e| e["event"]["action"] == "exec" && e["process"]["pid"] == init && e["process"]["applet"] == "sleep")
        .expect("the shell's exec of sleep");
    assert_eq!(became["process"]["entity_id"], parent["entity_id"], "one process, two images");
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn an_exec_by_a_second_thread_after_the_main_one_ended_names_the_parent_as_it_was() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("threadexec", json!({}));
    let name = unique("threadexec");
    let _c = Containers(vec![name.clone()]);
    let marker = format!("thread-{name}");
    // /t/thread_exec forks and exits; its child's main thread ends, and a second thread execs
    // echo. The shell, the container's init, inherits the child: it is not its parent.
    run_detached(&name, &["-v", &programs_volume()], &format!("/t/thread_exec /bin/echo {marker}; sleep 30"));
    let events = wait_events(&agent, "the thread's exec", Duration::from_secs(20), |e| {
        execs_with_arg(e, &marker).iter().any(|x| x["process"]["executable"] != "/t/thread_exec")
    });
    let execs = execs_with_arg(&events, &marker);
    let starter = execs.iter().find(|e| e["process"]["executable"] == "/t/thread_exec").expect("thread_exec's exec");
    let echo = execs.iter().find(|e| e["process"]["executable"] != "/t/thread_exec").expect("the echo");
    let parent = &echo["process"]["parent"];
    assert_eq!(parent["pid"], starter["process"]["pid"], "the process that forked it, not init: {echo}");
    assert_eq!(parent["executable"], "/t/thread_exec", "{echo}");
    assert_eq!(parent["entity_id"], starter["process"]["entity_id"], "{echo}");
    assert_ne!(echo["process"]["pid"], starter["process"]["pid"]);
    assert_eq!(agent.daemon.stop(), 0);
}

/// A 64-hex id no container has.
fn fake_id() -> String {
    let seed = format!("{:x}{:x}", std::process::id(), now_ns());
    let mut id: String = seed.chars().cycle().take(64).collect();
    id.replace_range(0..4, "beef");
    id
}

fn stats_value(agent: &Agent, key: &str) -> u64 {
    let out = Command::new(daemon_bin())
        .args(["stats", "--state-dir", agent._dir.path("state").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn a_container_anywhere_in_the_cgroup_tree_is_traced_and_a_lookalike_is_not() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("cgparent", json!({}));
    // A container started after the agent under a parent no prefix names: traced from its first
    // process (the init's exec is the first thing it does).
    let name = unique("cgparent");
    let parent = format!("/dltest-parent-{}", std::process::id());
    let mount = docker_listener::registry::cgroup2_mount().unwrap();
    // Docker leaves the parent behind: removed after the container (dropped in reverse order).
    let _parent = ParentCgroups(parent.clone());
    let _c = Containers(vec![name.clone()]);
    let marker = format!("first-{name}");
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--cgroup-parent",
        &parent,
        "--name",
        &name,
        &image(),
        "/bin/echo",
        &marker,
    ])
    .trim()
    .to_owned();
    let events =
        wait_events(&agent, "the init's exec", Duration::from_secs(20), |e| !execs_with_arg(e, &marker).is_empty());
    let init = exec_with(&events, &marker);
    assert_eq!(init["container"]["id"], id.as_str(), "{init}");
    assert_eq!(init["container"]["name"], name.as_str());
    assert!(init["docker_listener"].get("container_unresolved").is_none());

    // A cgroup shaped like a container's that Docker does not know: untracked once Docker says
    // so, and nothing that runs in it is reported.
    let fake = fake_id();
    let dir = mount.join(format!("dltest-fake-{}", std::process::id())).join(&fake);
    std::fs::create_dir_all(&dir).unwrap();
    let cleanup = scopeguard(dir.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stats_value(&agent, "docker_listener_ebpf_cgroups_rejected_total") < 1 {
        assert!(std::time::Instant::now() < deadline, "the lookalike cgroup was never rejected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let marker = format!("fake-{name}");
    let mut child = Command::new("busybox")
        .args(["sh", "-c", &format!("echo $$ > {}/cgroup.procs; /bin/busybox echo {marker}; sleep 0.2", dir.display())])
        .spawn()
        .unwrap();
    child.wait().unwrap();
    // A real container afterwards proves the agent is still delivering.
    let after = unique("after");
    let _c2 = Containers(vec![after.clone()]);
    docker(&["run", "--rm", "--network", "none", "--name", &after, &image(), "/bin/echo", &after]);
    let events =
        wait_events(&agent, "an exec after", Duration::from_secs(20), |e| !execs_with_arg(e, &after).is_empty());
    assert!(execs_with_arg(&events, &marker).is_empty(), "an exec in the lookalike cgroup was reported");
    assert!(events.iter().all(|e| e["container"]["id"] != fake.as_str()), "an event names the lookalike");
    drop(cleanup);

    // A container given the host's cgroup tree moves itself into a cgroup of its own making,
    // named like nothing: it stays in sight, and its container's.
    let escaper = unique("escape");
    let _c3 = Containers(vec![escaper.clone()]);
    let own = format!("dltest-escape-{}", std::process::id());
    let _cleanup = scopeguard(mount.join(&own).join("unused"));
    let marker = format!("escaped-{escaper}");
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/cg", mount.display()),
        "--name",
        &escaper,
        &image(),
        "sh",
        "-c",
        &format!("mkdir -p /cg/{own} && echo $$ > /cg/{own}/cgroup.procs && /bin/echo {marker}"),
    ]);
    let events =
        wait_events(&agent, "the escaped exec", Duration::from_secs(20), |e| !execs_with_arg(e, &marker).is_empty());
    let escaped = exec_with(&events, &marker);
    assert_eq!(escaped["container"]["name"], escaper.as_str(), "{escaped}");
    assert!(escaped["docker_listener"].get("container_unresolved").is_none());
    assert_eq!(agent.daemon.stop(), 0);
}

/// Removes the `--cgroup-parent` cgroups Docker made, in every hierarchy, when dropped.
struct ParentCgroups(String);

impl Drop for ParentCgroups {
    fn drop(&mut self) {
        if let Ok(dirs) = std::fs::read_dir("/sys/fs/cgroup") {
            for d in dirs.flatten() {
                let _ = std::fs::remove_dir(d.path().join(self.0.trim_start_matches('/')));
            }
        }
    }
}

/// Removes a test cgroup (and its parent) when dropped.
struct CgroupDir(std::path::PathBuf);

fn scopeguard(dir: std::path::PathBuf) -> CgroupDir {
    CgroupDir(dir)
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
        if let Some(p) = self.0.parent() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

#[test]
fn thousands_of_labels_or_a_huge_one_cannot_erase_a_container_s_events() {
    e2e();
    let _docker = docker_lock();
    let max = 16_384;
    let mut agent = start_agent_with("labels", json!({"max_event_size": max}), json!({}));
    let many = unique("many");
    let huge = unique("huge");
    let _c = Containers(vec![many.clone(), huge.clone()]);
    let script = |n: &str| format!("/bin/echo exec-{n}; nc 127.0.0.1 9; sleep 30");
    let mut args: Vec<String> = Vec::new();
    for i in 0..5000 {
        args.push("--label".into());
        args.push(format!("dltest.label.{i:04}=value-{i}"));
    }
    args.extend(["--label".into(), "com.docker.compose.project=shop".into()]);
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    run_detached(&many, &extra, &script(&many));
    let big = format!("dltest.big={}", "x".repeat(60_000));
    run_detached(&huge, &["--label", &big, "--label", "team=blue"], &script(&huge));
    let events = wait_events(&agent, "execs and connects of both", Duration::from_secs(30), |e| {
        [&many, &huge].iter().all(|n| {
            let m = mine(e, n);
            m.iter().any(|x| x["event"]["action"] == "connect") && !execs_with_arg(e, &format!("exec-{n}")).is_empty()
        })
    });
    for frame in agent.queue.frames() {
        assert!(frame.len() <= max, "a frame of {} bytes", frame.len());
        let v = frame_json(&frame);
        assert!(v.as_object().is_some_and(|o| o.len() > 1), "an empty event: {}", shown(&frame));
    }
    for n in [&many, &huge] {
        let exec = exec_with(&events, &format!("exec-{n}"));
        assert_eq!(exec["container"]["name"], n.as_str(), "{exec}");
        assert!(exec.get("truncated").is_none(), "the labels were cut, not the event: {exec}");
        assert_eq!(exec["docker_listener"]["labels_truncated"], true);
        assert_eq!(exec["process"]["executable"], "/bin/busybox");
        let connect = mine(&events, n).into_iter().find(|x| x["event"]["action"] == "connect").unwrap();
        assert_eq!(connect["destination"]["port"], 9);
        assert!(connect["container"]["labels"].as_object().is_some_and(|l| !l.is_empty()));
    }
    let exec = exec_with(&events, &format!("exec-{many}"));
    // Ours and the image's.
    let total: u64 = inspect(&many, "{{len .Config.Labels}}").parse().unwrap();
    assert!(total > 5000);
    assert_eq!(exec["docker_listener"]["labels_total"], total);
    assert_eq!(exec["container"]["labels"]["com.docker.compose.project"], "shop", "the labels analysts join on first");
    let exec = exec_with(&events, &format!("exec-{huge}"));
    assert_eq!(exec["container"]["labels"]["team"], "blue", "only the huge value is cut");
    assert!(exec["container"]["labels"]["dltest.big"].as_str().is_some_and(|v| v.ends_with('…') && v.len() < 5000));
    assert_eq!(agent.daemon.stop(), 0);
    assert_eq!(agent.daemon.final_stat("events_lost_oversized"), 0);
}

#[test]
fn raw_sockets_hidden_argv_tails_and_what_ran_before_the_agent_are_reported() {
    e2e();
    let _docker = docker_lock();
    // Before the agent: a listener and a sleeping loop.
    let early = unique("early");
    let _c = Containers(vec![early.clone()]);
    run_detached(&early, &[], "nc -l -p 7070 >/dev/null & exec sleep 600");
    let init: u64 = inspect(&early, "{{.State.Pid}}").parse().unwrap();
    // Wait for the listener inside the container before the agent starts.
    let until = format!("{} && echo up", until_listening(7070));
    docker(&["exec", &early, "sh", "-c", &until]);
    let rules = load_rules();
    let mut agent = start_agent("blindspots", json!({}));
    let events = wait_events(&agent, "the inventory", Duration::from_secs(20), |e| {
        mine(e, &early).iter().any(|x| x["event"]["action"] == "socket-listening")
    });
    let running: Vec<&Value> =
        mine(&events, &early).into_iter().filter(|e| e["event"]["action"] == "process-running").collect();
    let sleeper = running.iter().find(|e| e["process"]["pid"] == init).expect("the init, running sleep");
    assert_eq!(sleeper["event"]["kind"], "state");
    assert_eq!(sleeper["process"]["executable"], "/bin/busybox", "{sleeper}");
    assert_eq!(sleeper["process"]["applet"], "sleep");
    assert_eq!(sleeper["process"]["args"], json!(["sleep", "600"]));
    assert_eq!(sleeper["docker_listener"]["exec"]["file"]["filesystem"], "overlay");
    let nc = running.iter().find(|e| e["process"]["applet"] == "nc").expect("the listener's process");
    assert_eq!(nc["process"]["parent"]["pid"], init, "{nc}");
    let listening = mine(&events, &early).into_iter().find(|e| e["event"]["action"] == "socket-listening").unwrap();
    assert_eq!(listening["server"]["port"], 7070, "{listening}");
    assert_eq!(listening["network"]["transport"], "tcp");
    assert_eq!(listening["process"]["pid"], nc["process"]["pid"]);
    assert_eq!(evaluate(&rules, listening), Some(100_014));

    // After: raw and packet sockets, and a command hidden behind 4 KB of padding.
    let name = unique("blind");
    let _c2 = Containers(vec![name.clone()]);
    let padded = format!("{}/bin/echo tail-{name}", " ".repeat(4000));
    run_detached(&name, &["-v", &programs_volume()], &format!("/t/raw_sockets; sh -c '{padded}'; sleep 30"));
    let tail = format!("/bin/echo tail-{name}");
    let last_arg =
        |x: &Value| x["process"]["args"].as_array().and_then(|a| a.last()).and_then(|l| l.as_str()).map(str::to_owned);
    let events = wait_events(&agent, "the sockets and the padded exec", Duration::from_secs(20), |e| {
        mine(e, &name).iter().filter(|x| x["event"]["action"] == "socket").count() >= 3
            && mine(e, &name)
                .iter()
                .any(|x| x["event"]["action"] == "exec" && last_arg(x).is_some_and(|l| l.ends_with(&tail)))
    });
    let sockets: Vec<&Value> = mine(&events, &name).into_iter().filter(|e| e["event"]["action"] == "socket").collect();
    let raw = sockets.iter().find(|e| e["network"]["type"] == "ipv4").expect("the raw socket");
    assert_eq!(raw["docker_listener"]["socket"]["type"], "SOCK_RAW", "{raw}");
    assert_eq!(raw["network"]["transport"], "icmp");
    assert_eq!(raw["event"]["outcome"], "success");
    assert_eq!(raw["process"]["executable"], "/t/raw_sockets");
    assert_eq!(evaluate(&rules, raw), Some(100_013));
    let packet = sockets.iter().find(|e| e["network"]["type"] == "packet").expect("the packet socket");
    assert_eq!(evaluate(&rules, packet), Some(100_013));
    let old = sockets
        .iter()
        .find(|e| e["docker_listener"]["socket"]["type"] == "SOCK_PACKET")
        .expect("the old-style packet socket (AF_INET, SOCK_PACKET)");
    assert_eq!(old["network"]["type"], "packet", "{old}");
    assert_eq!(evaluate(&rules, old), Some(100_013));
    // The inner sh, whose one argument is the padding and then the command.
    let tail = format!("/bin/echo tail-{name}");
    let last_arg =
        |x: &Value| x["process"]["args"].as_array().and_then(|a| a.last()).and_then(|l| l.as_str()).map(str::to_owned);
    let padded_exec = mine(&events, &name)
        .into_iter()
        .find(|x| x["event"]["action"] == "exec" && last_arg(x).is_some_and(|l| l.ends_with(&tail)))
        .unwrap_or_else(|| panic!("no exec whose last argument ends with the command: {:#?}", mine(&events, &name)));
    assert_eq!(padded_exec["docker_listener"]["args_truncated"], true, "{padded_exec}");
    assert!(last_arg(padded_exec).is_some_and(|l| l.starts_with('…')), "the tail of a cut argument is marked");
    assert!(padded_exec["docker_listener"]["args_omitted_bytes"].as_u64().is_some_and(|n| n > 2000));
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn double_forks_chroot_long_argv0_and_deep_paths_cannot_bend_an_exec_event() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("evasions", json!({}));
    let name = unique("evasions");
    let _c = Containers(vec![name.clone()]);
    let m = |tag: &str| format!("{tag}-{name}");
    let long = format!("{}/d", "x".repeat(200)).repeat(6);
    let script = [
        // A double fork: the echo's parent (a bash subshell) exits before it execs, and the
        // kernel reparents it to the container's init.
        format!("/bin/bash -c '( (sleep 0.5; exec /bin/echo {}) & ); sleep 1'", m("dfork")),
        // A chroot into a copy of the container: the process's root says /bin/sh.
        format!(
            "mkdir -p /tmp/j/bin && cp /bin/busybox /tmp/j/bin/sh && chroot /tmp/j /bin/sh -c 'true {}'",
            m("chroot")
        ),
        // busybox run as sh through an argv[0] longer than the argv budget.
        format!(
            "/bin/bash -c 'exec -a \"$(printf \"/%.0s\" $(seq 1500))sh\" /bin/busybox -c \"true {}\"'",
            m("hidden")
        ),
        // Deeper than the kernel's walk, and longer than the record.
        format!("d=/tmp/$(printf 'd/%.0s' $(seq 70)); mkdir -p $d && cp /bin/busybox $d/x && $d/x echo {}", m("deep")),
        format!("mkdir -p /tmp/{long} && cp /bin/busybox /tmp/{long}/x && /tmp/{long}/x echo {}", m("long")),
        "sleep 30".to_owned(),
    ]
    .join("; ");
    run_detached(&name, &[], &script);
    let events = wait_events(&agent, "the long path's exec", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &m("long")).is_empty()
    });

    let echo = exec_with(&events, &m("dfork"));
    let init: u64 = inspect(&name, "{{.State.Pid}}").parse().unwrap();
    assert_ne!(echo["process"]["parent"]["pid"], init, "the subshell that started it, not the init: {echo}");
    assert_eq!(echo["process"]["parent"]["executable"], "/bin/bash", "{echo}");
    assert_eq!(echo["docker_listener"]["reparented_to"]["pid"], init, "and where the kernel put it: {echo}");

    let chrooted = exec_with(&events, &format!("true {}", m("chroot")));
    assert_eq!(
        chrooted["process"]["executable"], "/tmp/j/bin/sh",
        "the container's path, not the chroot's: {chrooted}"
    );
    assert_eq!(chrooted["docker_listener"]["exec"]["file"]["chroot"], true);
    assert_eq!(evaluate(&rules, chrooted), Some(100_016));

    let hidden = exec_with(&events, &format!("true {}", m("hidden")));
    assert_eq!(hidden["process"]["executable"], "/bin/busybox");
    assert_eq!(hidden["process"]["applet_hidden"], true, "{hidden}");
    assert_eq!(evaluate(&rules, hidden), Some(100_017));

    let deep = exec_with(&events, &m("deep"));
    let exe = deep["process"]["executable"].as_str().unwrap();
    assert!(exe.starts_with("…/") && exe.ends_with("/d/x"), "{exe}");
    assert_eq!(deep["docker_listener"]["exec"]["file"]["path_truncated"], true);
    assert_eq!(evaluate(&rules, deep), Some(100_018));

    let long_exec = exec_with(&events, &m("long"));
    let exe = long_exec["process"]["executable"].as_str().unwrap();
    assert!(exe.starts_with("/tmp/…/") && exe.ends_with("/d/x"), "the top-most and the last components: {exe}");
    assert_eq!(evaluate(&rules, long_exec), Some(100_018));
    assert_eq!(agent.daemon.stop(), 0);
}
