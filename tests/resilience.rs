//! Nothing lost silently: Wazuh's queue missing then back, a kill -9 of the agent, a restart of
//! dockerd mid-stream. Real dockerd, real daemon, real datagram sockets.
mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::*;

/// Creates and removes containers with a large label: two ~8 KiB events each.
fn churn_big(n: usize, label: &str) {
    let big = format!("big={}", "x".repeat(8000));
    for i in 0..n {
        let name = unique(&format!("{label}{i}"));
        docker(&["create", "--name", &name, "--network", "none", "--label", &big, &image(), "true"]);
        docker(&["rm", &name]);
    }
}

#[test]
fn queue_absent_then_bound_delivers_everything_in_order_and_counts_overflow() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("outage");
    let queue_path = dir.path("queue");
    // 64 KiB of buffer holds about seven of the 8 KiB events below.
    let config = write_config(&dir, json!({"buffer_bytes": 65536, "wait_time": 0.5}));
    let mut daemon = Daemon::start(&[
        "--config",
        config.to_str().unwrap(),
        "--queue",
        queue_path.to_str().unwrap(),
        "--state-dir",
        dir.path("state").to_str().unwrap(),
        "--no-ebpf",
    ]);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));

    // Phase 1: Wazuh is not there; a few events fit in the buffer.
    let t0 = now_ns();
    let name = unique("outage");
    docker(&["volume", "create", &name]);
    docker(&["volume", "rm", &name]);
    docker(&["network", "create", "--internal", &name]);
    docker(&["network", "rm", &name]);
    let t1 = now_ns();
    daemon.wait_for_log("does not exist", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let queue = QueueReceiver::bind(&queue_path);
    let expected = docker_log_window(None, t0, t1);
    assert_eq!(expected.len(), 4);
    queue.wait_until(Duration::from_secs(15), "the buffered events", |f| docker_events(f).len() >= expected.len());
    let first = queue.close();
    assert_same_events(&docker_events(&first), &expected);
    assert_eq!(daemon.count_log("output unavailable"), 1, "the outage is logged once, not per retry");

    // Phase 2: Wazuh goes away again and more arrives than the buffer holds.
    let t2 = now_ns();
    churn_big(10, "ovf");
    let t3 = now_ns();
    let expected = docker_log_window(None, t2, t3);
    assert_eq!(expected.len(), 20);
    std::thread::sleep(Duration::from_millis(500));
    let queue = QueueReceiver::bind(&queue_path);
    queue.wait_until(Duration::from_secs(15), "the loss report", |f| {
        f.iter().any(|x| frame_json(x)["event"]["action"] == "events-lost")
    });
    std::thread::sleep(Duration::from_millis(300));
    let frames = queue.frames();
    let delivered = docker_events(&frames);
    let loss: Vec<Value> =
        frames.iter().map(|f| frame_json(f)).filter(|v| v["event"]["action"] == "events-lost").collect();
    assert_eq!(loss.len(), 1, "one loss report: {loss:?}");
    let dropped = loss[0]["docker_listener"]["loss"]["events"].as_u64().unwrap() as usize;
    assert_eq!(loss[0]["docker_listener"]["loss"]["reason"], "output_buffer_full");
    assert!(dropped > 0, "the buffer must have overflowed");
    // Oldest dropped: what arrives is the newest events, in order, and nothing is unaccounted.
    assert_eq!(delivered.len() + dropped, expected.len(), "delivered + dropped == generated");
    assert_same_events(&delivered, &expected[dropped..]);
    assert_eq!(frame_json(&frames[0])["event"]["action"], "events-lost", "the report goes out first");
    daemon.wait_for_log("the output buffer overflowed", Duration::from_secs(5));
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn kill_9_then_restart_resumes_from_the_cursor_without_loss() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("kill9");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let state = dir.path("state");
    let args = ["--queue", queue.path.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--no-ebpf"];
    let mut daemon = Daemon::start(&args);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    let t0 = now_ns();
    let name = unique("k9");
    docker(&["volume", "create", &format!("{name}-a")]);
    docker(&["volume", "rm", &format!("{name}-a")]);
    queue.wait_until(Duration::from_secs(10), "the first events", |f| docker_events(f).len() >= 2);
    // Let the cursor reach the disk (one of its two copies, written in turn), then kill without
    // warning.
    let copies = [dir.path("state/cursor.json"), dir.path("state/cursor.b.json")];
    let last = time_nano(docker_events(&queue.frames()).last().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    let saved = |t: String| t.contains(&format!("\"time_nano\":{last},"));
    while !copies.iter().any(|p| std::fs::read_to_string(p).is_ok_and(saved)) {
        assert!(Instant::now() < deadline, "the cursor was not saved");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill9();

    // Events while the agent is dead.
    docker(&["volume", "create", &format!("{name}-b")]);
    docker(&["network", "create", "--internal", &name]);
    docker(&["network", "rm", &name]);
    docker(&["volume", "rm", &format!("{name}-b")]);

    let mut daemon = Daemon::start(&args);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    docker(&["volume", "create", &format!("{name}-c")]);
    docker(&["volume", "rm", &format!("{name}-c")]);
    let t1 = now_ns();
    let expected = docker_log_window(None, t0, t1);
    assert_eq!(expected.len(), 8);
    queue.wait_until(Duration::from_secs(15), "every event", |f| docker_events(f).len() >= expected.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_same_events(&docker_events(&queue.frames()), &expected);
    assert!(daemon.log_text().contains(&format!("resume_from_time_nano={last}")), "resumed from the saved cursor");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(daemon.final_stat("docker_upstream_gaps"), 0, "dockerd still held the cursor's event: no gap");
}

/// Shutdown with Wazuh away: the grace period runs out with events still in the buffer. Our own
/// (eBPF) events there are lost, counted and logged with their number; the Docker events did not
/// move the cursor and are replayed at the next start, from it.
#[test]
fn shutdown_with_wazuh_away_counts_the_ebpf_events_left_and_replays_the_docker_ones() {
    e2e();
    let _docker = docker_lock();
    let Agent { _dir: dir, queue, mut daemon } = start_agent("leftover", json!({}));
    let name = unique("left");
    let _c = Containers(vec![name.clone()]);
    // One event delivered first: the cursor the next start resumes from.
    docker(&["volume", "create", &name]);
    docker(&["volume", "rm", &name]);
    queue.wait_until(Duration::from_secs(10), "the volume's events", |f| docker_events(f).len() >= 2);
    let queue_path = queue.path.clone();
    queue.close();
    let t0 = now_ns();
    docker(&["run", "--rm", "--network", "none", "--name", &name, &image(), "/bin/echo", &format!("m-{name}")]);
    let t1 = now_ns();
    let expected = docker_log_window(None, t0, t1);
    assert!(expected.len() >= 4, "create, attach, start, die...: {expected:?}");
    daemon.wait_for_log("does not exist", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.stop(), 0);
    let lost = daemon.final_stat("dropped_left_at_shutdown");
    assert!(lost >= 1, "at least the echo's exec is counted lost");
    let log = daemon.log_text();
    assert!(log.contains(&format!("ebpf_events_lost={lost} docker_events_lost=0 ")), "the log gives the numbers");
    assert_eq!(daemon.final_stat("frames_out_docker"), 2, "only the volume's events were delivered");

    // Wazuh is back: the Docker events left in the buffer come again, from the saved cursor.
    let queue = QueueReceiver::bind(&queue_path);
    let mut args = agent_args(&dir.path("config.json"), &queue, &dir);
    args.push("--no-ebpf".into());
    let mut daemon = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let in_window = |f: &[Vec<u8>]| -> Vec<Value> {
        docker_events(f).into_iter().filter(|e| (t0..=t1).contains(&time_nano(e))).collect()
    };
    queue.wait_until(Duration::from_secs(20), "the Docker events replayed", |f| in_window(f).len() >= expected.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_same_events(&in_window(&queue.frames()), &expected);
    assert_eq!(daemon.stop(), 0);
}

/// A first run (no cursor saved before) with Wazuh away from its start: it delivers none of its
/// Docker events. They are not lost: the next start replays them from where the first one
/// started (before, with no cursor saved, it streamed live again and they were gone).
#[test]
fn a_first_run_that_delivers_nothing_leaves_its_docker_events_to_the_next_start() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("first-run");
    let queue_path = dir.path("queue");
    let state = dir.path("state");
    let args = ["--queue", queue_path.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--no-ebpf"];
    let mut daemon = Daemon::start(&args);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    let name = unique("first");
    let t0 = now_ns();
    docker(&["volume", "create", &name]);
    docker(&["volume", "rm", &name]);
    let t1 = now_ns();
    let expected = docker_log_window(None, t0, t1);
    assert_eq!(expected.len(), 2, "{expected:?}");
    daemon.wait_for_log("does not exist", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.stop(), 0);
    assert_eq!(daemon.final_stat("frames_out_docker"), 0, "Wazuh was away");
    assert_eq!(daemon.final_stat("dropped_left_at_shutdown"), 0, "replayable, so not lost");
    assert!(daemon.log_text().contains("docker_events_replayed=2 "), "the log says they come again");

    let queue = QueueReceiver::bind(&queue_path);
    let mut daemon = Daemon::start(&args);
    let in_window = |f: &[Vec<u8>]| -> Vec<Value> {
        docker_events(f).into_iter().filter(|e| (t0..=t1).contains(&time_nano(e))).collect()
    };
    queue.wait_until(Duration::from_secs(20), "the first run's events", |f| in_window(f).len() >= expected.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_same_events(&in_window(&queue.frames()), &expected);
    assert_eq!(daemon.stop(), 0);
}

/// A first start while dockerd is down: what dockerd logs once up, before the agent's back-off
/// lets it connect, is asked for from the agent's start (before, a first start streamed live
/// and those events were never read).
#[test]
fn a_first_start_reads_what_dockerd_logged_before_it_was_reached() {
    e2e();
    let mut dockerd = PrivateDockerd::start();
    let host = dockerd.host();
    dockerd.stop();
    let dir = TempDir::new("first-down");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    // A 15 s back-off: dockerd comes up and logs its events between two attempts.
    let mut daemon = start_against_dockerd(&dir, &queue, &host, json!({"wait_time": 15, "max_wait_time": 15}));
    daemon.wait_for_log("Docker is unreachable", Duration::from_secs(20));
    dockerd.launch();
    let name = unique("early");
    let t0 = now_ns();
    docker_at(Some(&host), &["volume", "create", &name]);
    docker_at(Some(&host), &["volume", "rm", &name]);
    let t1 = now_ns();
    assert_eq!(daemon.count_log("connected to Docker"), 0, "the events must come before the agent connects");
    let expected = docker_log_window(Some(&host), t0, t1);
    assert_eq!(expected.len(), 2, "{expected:?}");
    let in_window = |f: &[Vec<u8>]| -> Vec<Value> {
        docker_events(f).into_iter().filter(|e| (t0..=t1).contains(&time_nano(e))).collect()
    };
    queue.wait_until(Duration::from_secs(30), "the events dockerd logged before the agent connected", |f| {
        in_window(f).len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_same_events(&in_window(&queue.frames()), &expected);
    assert_eq!(daemon.stop(), 0);
}

/// Docker events handled without being sent (`ignore_actions` here; passing healthchecks folded
/// into their summary the same way) move the resume cursor too, in their turn: the next start
/// resumes after them, not from the last event sent (before, a quiet hour of healthchecks was
/// read again at a restart: their sessions forwarded one by one, and beyond dockerd's 256 events
/// a gap upstream reported that was none).
#[test]
fn events_handled_without_being_sent_move_the_resume_cursor() {
    e2e();
    let _docker = docker_lock();
    let dir = TempDir::new("skipped");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let config = write_config(&dir, json!({"ignore_actions": ["create", "destroy"]}));
    let state = dir.path("state");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--queue",
        queue.path.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--no-ebpf",
    ];
    let mut daemon = Daemon::start(&args);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    let t0 = now_ns();
    let name = unique("skipped");
    docker(&["volume", "create", &name]);
    docker(&["volume", "rm", &name]);
    let t1 = now_ns();
    let expected = docker_log_window(None, t0, t1);
    assert_eq!(expected.len(), 2, "{expected:?}");
    let last = time_nano(expected.last().unwrap());
    // Read by now (within milliseconds); the cursor is saved at the stop.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(daemon.stop(), 0);
    assert_eq!(daemon.final_stat("docker_events_filtered"), 2);
    assert_eq!(daemon.final_stat("frames_out_docker"), 0, "both filtered");
    let mut daemon = Daemon::start(&args);
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    assert!(
        daemon.log_text().contains(&format!("resume_from_time_nano={last}")),
        "resumes after the last event handled ({last}): {}",
        daemon.log_text().lines().find(|l| l.contains("docker-listener starting")).unwrap_or_default()
    );
    assert_eq!(daemon.stop(), 0);
}

/// The agent (no eBPF) against the dockerd at `host`, into `queue`, with `config`; its state in
/// `dir`.
fn start_against_dockerd(dir: &TempDir, queue: &QueueReceiver, host: &str, config: Value) -> Daemon {
    let config = write_config(dir, config);
    Daemon::start(&[
        "--config",
        config.to_str().unwrap(),
        "--docker-host",
        host,
        "--queue",
        queue.path.to_str().unwrap(),
        "--state-dir",
        dir.path("state").to_str().unwrap(),
        "--no-ebpf",
    ])
}

/// A private dockerd (own socket, data root and containerd) that the test may stop and start.
struct PrivateDockerd {
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateDockerd {
    fn start() -> PrivateDockerd {
        let mut d = PrivateDockerd { dir: TempDir::new("dockerd"), child: None };
        d.launch();
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path("docker.sock").display())
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["--host", &self.host()])
            .arg("--data-root")
            .arg(self.dir.path("root"))
            .arg("--exec-root")
            .arg(self.dir.path("exec"))
            .arg("--pidfile")
            .arg(self.dir.path("dockerd.pid"))
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Command::new("docker")
            .args(["-H", &self.host(), "version"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "private dockerd did not start: {}",
                std::fs::read_to_string(self.dir.path("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        // containerd-shim processes of this daemon exit with it; its mounts are under the dir.
        let _ = Command::new("umount").arg("-R").arg(self.dir.path("root")).output();
        let _ = Command::new("umount").arg("-R").arg(self.dir.path("exec")).output();
    }
}

/// `docker events` as a subscriber: the reference for what dockerd streamed while it was up.
fn reference_subscriber(host: &str) -> (Child, Arc<Mutex<Vec<Value>>>) {
    let mut child = Command::new("docker")
        .args(["-H", host, "events", "--format", "{{json .}}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (out, l) = (child.stdout.take().unwrap(), lines.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                l.lock().unwrap().push(v);
            }
        }
    });
    (child, lines)
}

#[test]
fn docker_restart_mid_stream_loses_and_duplicates_nothing() {
    e2e();
    // `docker save` below is an event on the shared daemon.
    let _docker = docker_lock();
    let mut dockerd = PrivateDockerd::start();
    let host = dockerd.host();
    // The test image, in the private daemon.
    let img = "dltest/restart:latest";
    let mut save = Command::new("docker").args(["save", &image()]).stdout(Stdio::piped()).spawn().unwrap();
    let saved = save.stdout.take().unwrap();
    assert!(
        Command::new("docker")
            .args(["-H", &host, "load"])
            .stdin(saved)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    assert!(save.wait().unwrap().success(), "docker save failed");
    docker_at(Some(&host), &["tag", &image(), img]);

    let dir = TempDir::new("restart");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    // A 2 s back-off: the restarted dockerd logs events before the agent is back, so they can
    // only arrive through the `since` replay.
    let mut daemon = start_against_dockerd(&dir, &queue, &host, json!({"wait_time": 2, "max_wait_time": 4}));
    daemon.wait_for_log("connected to Docker", Duration::from_secs(20));
    let (mut reference, before) = reference_subscriber(&host);
    std::thread::sleep(Duration::from_millis(300));

    // Containers churn in the background; the restart happens between two containers (a
    // container still running at shutdown would be killed by dockerd, whose final events no
    // subscriber is guaranteed to see).
    let in_flight = Arc::new(Mutex::new(()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (host, in_flight, stop) = (host.clone(), in_flight.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _g = in_flight.lock().unwrap();
                let ok = Command::new("docker")
                    .args(["-H", &host, "run", "--rm", "--network", "none", "--name", &unique("churn"), img, "true"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                drop(_g);
                n += usize::from(ok);
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let restart_at = {
        let _g = in_flight.lock().unwrap();
        dockerd.stop();
        let _ = reference.wait();
        std::thread::sleep(Duration::from_millis(500));
        let at = now_ns();
        dockerd.launch();
        at
    };
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let containers = churn.join().unwrap();
    let end = now_ns();

    let mut expected: Vec<Value> = before.lock().unwrap().clone();
    let after = docker_log_window(Some(&host), restart_at, end);
    assert!(after.len() < 256, "keep the post-restart window within dockerd's replay buffer");
    expected.extend(after);
    assert!(containers >= 4, "the churn ran ({containers} containers)");
    let last = time_nano(expected.last().unwrap());
    queue.wait_until(Duration::from_secs(30), "every event up to the end", |f| {
        docker_events(f).iter().any(|e| time_nano(e) >= last)
    });
    std::thread::sleep(Duration::from_millis(300));
    let ours: Vec<Value> = docker_events(&queue.frames()).into_iter().filter(|e| time_nano(e) <= end).collect();
    assert_same_events(&ours, &expected);
    assert!(daemon.count_log("Docker closed the event stream") >= 1);
    assert!(daemon.count_log("connected to Docker") >= 2);
    assert_eq!(daemon.stop(), 0);
}
