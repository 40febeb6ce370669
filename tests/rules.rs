//! The shipped Wazuh rules (rules/docker_listener_rules.xml) against real events: a container
//! does each thing a rule is about; the daemon reports it; the rules are evaluated the way
//! wazuh-analysisd walks its rule tree (from Wazuh's 87900, first matching child, deeper while a
//! child matches), with the same patterns.
mod support;

use std::time::Duration;

use serde_json::{Map, Value, json};
use support::{rules::*, *};

#[test]
fn each_rule_fires_on_what_it_is_about_and_nothing_else() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let dir = TempDir::new("rules");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon =
        Daemon::start(&["--queue", queue.path.to_str().unwrap(), "--state-dir", dir.path("state").to_str().unwrap()]);
    daemon.wait_for_log("container inventory loaded", Duration::from_secs(30));
    let name = unique("rules");
    let script = format!(
        "cp /bin/busybox /var/tmp/apk; cp /bin/busybox /var/tmp/tool; /var/tmp/apk echo add-{name}; \
         /var/tmp/tool echo tmp-{name}; cp /bin/busybox /tmp/dropped; /tmp/dropped echo drift-{name}; \
         cp /bin/busybox /dev/shm/shm; /dev/shm/shm echo shm-{name}; \
         cat /bin/busybox > /etc/hostname; chmod +x /etc/hostname; /etc/hostname etc-{name} 2>/dev/null; \
         /bin/echo benign-{name}; /bin/echo again-{name}; /bin/echo again-{name}; /bin/nope-{name}; nc -l -p 8080 >/dev/null & {}; \
         echo hi | nc 127.0.0.1 8080; nc 169.254.169.254 80; /bin/bash -c 'true bash-{name}'; \
         /t/memfd_exec payload /bin/busybox echo memfd-{name}; /t/memfd_exec - /bin/busybox echo fd-{name}; \
         /t/raw_sockets; busybox dpkg --version dpkg-{name} >/dev/null 2>&1; true",
        until_listening(8080)
    );
    // A volume at /var/tmp: what runs from it is not drift (not the container's writable
    // layer), and the path rules still see it.
    let var_tmp = dir.path("var-tmp");
    std::fs::create_dir_all(&var_tmp).unwrap();
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &programs_volume(),
        "-v",
        &format!("{}:/var/tmp", var_tmp.display()),
        // Docker's own /dev/shm is noexec; one that allows exec, as an operator may give.
        "--tmpfs",
        "/dev/shm:exec",
        "--name",
        &name,
        &image(),
        "sh",
        "-c",
        &script,
    ]);
    queue.wait_until(Duration::from_secs(20), "the last exec", |f| {
        f.iter().any(|x| {
            frame_json(x)["process"]["args"].as_array().is_some_and(|a| a.iter().any(|v| *v == format!("dpkg-{name}")))
        })
    });
    assert_eq!(daemon.stop(), 0);
    let events: Vec<Value> =
        queue.frames().iter().map(|f| frame_json(f)).filter(|e| e["container"]["name"] == name.as_str()).collect();
    let with_arg = |arg: &str| {
        events
            .iter()
            .find(|e| e["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| x == arg)))
            .unwrap_or_else(|| panic!("no exec with {arg}"))
    };
    let first = |action: &str, f: &dyn Fn(&Value) -> bool| {
        events.iter().find(|e| e["event"]["action"] == action && f(e)).unwrap_or_else(|| panic!("no {action}"))
    };
    let cases: Vec<(&str, &Value, u32)> = vec![
        (
            "busybox shell",
            first("exec", &|e| e["process"]["applet"] == "sh" && e["process"]["args"][1] == "-c"),
            100_010,
        ),
        ("bash", first("exec", &|e| e["process"]["executable"] == "/bin/bash"), 100_002),
        ("package manager", with_arg(&format!("add-{name}")), 100_003),
        ("busybox package manager", with_arg(&format!("dpkg-{name}")), 100_011),
        ("run from a volume at /var/tmp", with_arg(&format!("tmp-{name}")), 100_004),
        ("a binary dropped into the container (drift)", with_arg(&format!("drift-{name}")), 100_043),
        ("run from /dev/shm (fileless)", with_arg(&format!("shm-{name}")), 100_042),
        // Docker's bind mount of the container's own file, writable, on the host's disk.
        ("a binary written into /etc/hostname (drift)", with_arg(&format!("etc-{name}")), 100_043),
        ("run from a memfd (fileless)", first("exec", &|e| e["process"]["executable"] == "memfd:payload"), 100_042),
        (
            "run through a descriptor",
            first("exec", &|e| {
                e["docker_listener"]["exec"]["filename"].as_str().is_some_and(|f| f.starts_with("/dev/fd/"))
                    && e["process"]["executable"] == "/bin/busybox"
            }),
            100_012,
        ),
        ("raw socket", first("socket", &|e| e["network"]["type"] == "ipv4"), 100_013),
        ("packet socket", first("socket", &|e| e["network"]["type"] == "packet"), 100_013),
        ("benign exec", with_arg(&format!("benign-{name}")), 100_001),
        (
            "a repeated exec, folded",
            first("events-repeated", &|e| {
                e["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| *x == format!("again-{name}")))
            }),
            100_061,
        ),
        ("failed exec", with_arg(&format!("/bin/nope-{name}")), 100_005),
        ("metadata connect", first("connect", &|e| e["destination"]["ip"] == "169.254.169.254"), 100_006),
        ("listen", first("listen", &|_| true), 100_007),
        ("bind a port", first("bind", &|e| e["server"]["port"] == 8080), 100_008),
        ("loopback connect", first("connect", &|e| e["destination"]["port"] == 8080), 100_000),
    ];
    for (what, event, want) in &cases {
        assert_eq!(evaluate(&rules, event), Some(*want), "{what}: {event}");
    }
    // Every raw or packet socket fires the raw socket rule (the program makes three: a raw IPv4
    // one, an AF_PACKET one and an obsolete AF_INET/SOCK_PACKET one).
    let sockets: Vec<&Value> = events.iter().filter(|e| e["event"]["action"] == "socket").collect();
    assert_eq!(sockets.len(), 3, "{sockets:#?}");
    for e in &sockets {
        assert_eq!(evaluate(&rules, e), Some(100_013), "{e}");
    }
    // Everything else the container did (cp, netstat, grep, sleep, the other nc...) raises no
    // more than the informational rules; its repeats (the wait for the listener runs netstat and
    // grep as many times as it takes) only the repeat rule.
    for e in events
        .iter()
        .filter(|e| e["event"]["action"] != "socket" && !cases.iter().any(|(_, c, _)| std::ptr::eq(*c, *e)))
    {
        let got = evaluate(&rules, e);
        let ordinary: &[u32] = if e["event"]["action"] == "events-repeated" { &[100_061] } else { &[100_000, 100_001] };
        assert!(got.is_some_and(|r| ordinary.contains(&r)), "rule {got:?} fired on an ordinary event: {e}");
    }
    // Loss reports, built by the code that sends them.
    let loss = docker_listener::ecs::ebpf_loss_event(3, 3, Map::new(), 10, 7);
    assert_eq!(evaluate(&rules, &loss), Some(100_009));
    let sink_loss = frame_json(
        &docker_listener::sink::loss_frame(
            &docker_listener::encode::Encoder::new(65535, false, Default::default()),
            "output_buffer_full",
            1,
            1,
        )
        .to_vec(),
    );
    assert_eq!(evaluate(&rules, &sink_loss), Some(100_009));
    // Docker's own events stay with Wazuh's rules.
    let docker_event =
        json!({"integration": "docker", "docker": {"status": "start", "Type": "container", "Action": "start"}});
    assert_eq!(evaluate(&rules, &docker_event), Some(87_900));
}

/// A device named as a mount's source however the path is spelled (`//dev/sda1`, `/./dev/sda1`,
/// `dev/sda1` from `/`, through `/proc/self/root`) is a device: rule 100028, not the plain mount's.
#[test]
fn a_mount_s_device_source_is_seen_however_it_is_spelled() {
    let rules = load_rules();
    let mount = |source: &str| {
        serde_json::json!({
            "integration": "docker",
            "event": {"module": "docker-listener", "action": "mount", "outcome": "failure"},
            "docker_listener": {"mount": {"source": source, "target": "/mnt", "fstype": "ext4"}},
        })
    };
    for source in [
        "/dev/sda1",
        "//dev/sda1",
        "/./dev/sda1",
        "dev/sda1",
        "./dev/sda1",
        "/proc/self/root/dev/sda1",
        "/proc/1/root//dev/vda",
    ] {
        assert_eq!(evaluate(&rules, &mount(source)), Some(100_028), "{source}");
    }
    for source in ["none", "overlay", "/data/dev/x", "/srv/devices"] {
        assert_eq!(evaluate(&rules, &mount(source)), Some(100_030), "{source}");
    }
}
