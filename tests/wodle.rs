//! Drop-in for Wazuh's wodle (`crate::wodle`): installed with `install --wodle` into a Wazuh
//! home and started as wazuh-modulesd starts it, from the home, with no arguments.
mod support;

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    process::{Command, Stdio},
    time::Duration,
};

use support::*;

#[test]
fn installed_as_the_wodle_it_runs_from_the_wazuh_home_with_no_arguments_and_prints_nothing() {
    e2e();
    let _lock = docker_lock();
    let dir = TempDir::new("wodle");
    let home = dir.path("ossec");
    std::fs::create_dir_all(home.join("queue/sockets")).unwrap();
    let queue = QueueReceiver::bind(&home.join("queue/sockets/queue"));
    // Wazuh's own script where the wodle is.
    std::fs::create_dir_all(home.join("wodles/docker")).unwrap();
    std::fs::write(home.join("wodles/docker/DockerListener"), "#!/bin/sh\nexec python3 DockerListener.py\n").unwrap();

    let out =
        run_to_exit(Command::new(daemon_bin()).args(["install", "--wodle", "--wazuh-home", home.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("<wodle name=\"docker-listener\">") && text.contains("<run_on_start>yes</run_on_start>"),
        "{text}"
    );
    let installed = home.join("wodles/docker/DockerListener");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(daemon_bin()).unwrap());
    assert_eq!(std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777, 0o750);
    assert!(std::fs::read_to_string(home.join("wodles/docker/DockerListener.wazuh")).unwrap().contains("python3"));

    // As wm_docker runs it: from the home, the relative path, no arguments.
    let child = Command::new(&installed)
        .arg0("wodles/docker/DockerListener")
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = home.join("logs/docker-listener.log");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("container inventory loaded") {
        assert!(started.elapsed() < Duration::from_secs(30), "never started: {:?}", std::fs::read_to_string(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    let name = unique("wodle");
    let _c = Containers(vec![name.clone()]);
    let marker = unique("w");
    run_detached(&name, &[], &format!("/bin/echo {marker}; sleep 600"));
    queue.wait_until(Duration::from_secs(30), "Docker and process events", |f| {
        !execs_with_arg(&agent_events(f), &marker).is_empty()
            && docker_events(f)
                .iter()
                .any(|e| e["Action"] == "start" && e["Actor"]["Attributes"]["name"] == name.as_str())
    });
    // SIGTERM, as modulesd stops it.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "printed: {:?} {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its state and log in the home.
    let state = home.join("var/docker-listener");
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(state.join("cursor.json").exists());
    assert!(std::fs::read_to_string(&log).unwrap().contains("docker-listener stopped"));

    // `doctor` recognises it; a broken config is one line on stderr and exit 2.
    let out =
        run_to_exit(Command::new(daemon_bin()).args(["doctor", "--no-ebpf", "--wazuh-home", home.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("OK") && l.contains("wodle") && l.contains("is this docker-listener")),
        "{text}"
    );
    std::fs::create_dir_all(home.join("etc")).unwrap();
    std::fs::write(home.join("etc/docker-listener.json"), r#"{"docker-listener": {"wait_time": -1}}"#).unwrap();
    let out = run_to_exit(Command::new(&installed).arg0("wodles/docker/DockerListener").current_dir(&home));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("wait_time") && err.contains("docker-listener.json"), "{err}");
    assert!(out.stdout.is_empty());
}
