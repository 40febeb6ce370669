//! Docker events → Wazuh, end to end: a real dockerd, the real daemon, a real datagram socket
//! bound where the Wazuh queue would be. Every event Docker logs for the window must arrive, once,
//! in order, in Wazuh's exact framing, with Docker's own JSON.
mod support;

use std::{process::Command, time::Duration};

use support::*;

#[test]
fn lifecycle_of_containers_networks_volumes_and_images_arrives_exactly() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("lifecycle");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon = Daemon::start(&[
        "--queue",
        queue.path.to_str().unwrap(),
        "--state-dir",
        dir.path("state").to_str().unwrap(),
        "--no-ebpf",
    ]);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));

    let name = unique("life");
    let t0 = now_ns();
    let image = image();
    docker(&["create", "--name", &name, "--network", "none", "--label", "dltest=lifecycle", &image, "sleep", "30"]);
    docker(&["start", &name]);
    docker(&["exec", &name, "true"]);
    docker(&["stop", "-t", "1", &name]);
    docker(&["rm", &name]);
    docker(&["network", "create", "--internal", &name]);
    docker(&["network", "rm", &name]);
    docker(&["volume", "create", &name]);
    docker(&["volume", "rm", &name]);
    let tag = format!("dltest/{name}:tagged");
    docker(&["tag", &image, &tag]);
    docker(&["rmi", &tag]);
    std::thread::sleep(Duration::from_millis(200));
    let t1 = now_ns();

    let expected = docker_log_window(None, t0, t1);
    let actions: Vec<String> =
        expected.iter().map(|e| format!("{} {}", e["Type"].as_str().unwrap(), e["Action"].as_str().unwrap())).collect();
    for want in [
        "container create",
        "container start",
        "container exec_create: true ",
        "container exec_start: true ",
        "container exec_die",
        "container kill",
        "container die",
        "container stop",
        "container destroy",
        "network create",
        "network destroy",
        "volume create",
        "volume destroy",
        "image tag",
        "image untag",
    ] {
        assert!(actions.iter().any(|a| a == want), "Docker's log lacks {want:?}: {actions:#?}");
    }
    let last = time_nano(expected.last().unwrap());
    queue.wait_until(Duration::from_secs(20), "the window's events", |frames| {
        docker_events(frames).iter().any(|e| time_nano(e) >= last)
    });
    assert_eq!(daemon.stop(), 0, "clean shutdown exits 0");

    let frames = queue.frames();
    for f in &frames {
        assert!(docker_event_bytes(f).is_some(), "not Wazuh's Docker framing: {}", shown(f));
        assert!(f.len() <= 65535);
        assert!(!f.contains(&b'\n') && !f.contains(&0), "a frame has a newline or NUL");
    }
    let ours: Vec<_> = docker_events(&frames).into_iter().filter(|e| (t0..=t1).contains(&time_nano(e))).collect();
    assert_same_events(&ours, &expected);
    // Docker's legacy fields (API < 1.52) are forwarded as Docker sent them.
    let create = ours.iter().find(|e| e["Action"] == "create" && e["Type"] == "container").unwrap();
    assert_eq!(create["status"], "create");
    assert_eq!(create["from"], image.as_str());
    assert_eq!(create["Actor"]["Attributes"]["dltest"], "lifecycle");
}

#[test]
fn stdout_and_file_outputs_write_the_same_frames_one_per_line() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("stdout");
    // One daemon writes to its standard output (redirected to a file here), one to a file.
    let stdout_path = dir.path("stdout.log");
    let file_path = dir.path("frames.log");
    let mut to_stdout = Daemon::start_with_stdout(
        Command::new(daemon_bin()).args([
            "--output",
            "stdout",
            "--state-dir",
            dir.path("s1").to_str().unwrap(),
            "--no-ebpf",
        ]),
        std::fs::File::create(&stdout_path).unwrap().into(),
    );
    let mut to_file = Daemon::start(&[
        "--output",
        &format!("file:{}", file_path.display()),
        "--state-dir",
        dir.path("s2").to_str().unwrap(),
        "--no-ebpf",
    ]);
    to_stdout.wait_for_log("connected to Docker", Duration::from_secs(20));
    to_file.wait_for_log("connected to Docker", Duration::from_secs(20));
    let name = unique("file");
    let t0 = now_ns();
    docker(&["volume", "create", &name]);
    docker(&["volume", "rm", &name]);
    let t1 = now_ns();
    let expected = docker_log_window(None, t0, t1);
    assert!(expected.len() >= 2, "Docker logged the volume's create and destroy: {expected:?}");
    let read = |path: &std::path::Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Whole lines only: the daemon may be writing the last one right now.
        let text = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let frames: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
        assert!(frames.iter().all(|f| f.starts_with(HEADER.as_bytes())), "every line is one frame: {text}");
        docker_events(&frames).into_iter().filter(|e| (t0..=t1).contains(&time_nano(e))).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (read(&stdout_path).len() < expected.len() || read(&file_path).len() < expected.len())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(to_stdout.stop(), 0);
    assert_eq!(to_file.stop(), 0);
    assert_same_events(&read(&stdout_path), &expected);
    assert_same_events(&read(&file_path), &expected);
}
