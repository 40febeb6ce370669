//! Bad input of every kind from the Docker side, served by a deliberately broken fake Docker
//! API: each bad piece is skipped with a logged, counted error, and no other event is lost.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    fake_docker::{FakeDocker, Script, Step, event},
    *,
};

fn line(s: &str) -> Vec<u8> {
    format!("{s}\n").into_bytes()
}

#[test]
fn malformed_huge_and_cut_events_are_skipped_and_the_stream_goes_on() {
    let dir = TempDir::new("badinput");
    let base = now_ns();
    let e1 = event("container", "create", "c1", "one", base + 1);
    let e2 = event("container", "start", "c1", "one", base + 2);
    let mut big: Value = serde_json::from_str(&event("container", "create", "c2", "big", base + 3)).unwrap();
    big["Actor"]["Attributes"]["huge"] = Value::String("h".repeat(1 << 20));
    let big = big.to_string();
    let e3 = event("network", "connect", "n1", "none", base + 4);
    let e4 = event("container", "die", "c1", "one", base + 5);
    let e5 = event("volume", "create", "v1", "vol", base + 6);
    let (e2a, e2b) = e2.split_at(e2.len() / 2);
    let (e4a, _) = e4.split_at(e4.len() / 2);

    let first = Script::json(vec![
        Step::Chunk([line(&e1), line("{broken json"), e2a.as_bytes().to_vec()].concat()),
        Step::Chunk(line(e2b)),
        Step::Chunk(line(&big)),
        Step::Chunk(line("not json at all")),
        Step::Chunk(line("[1,2,3]")),
        // Longer than any event (16 MiB limit): skipped whole.
        Step::Chunk(vec![b'x'; 17 << 20]),
        Step::Chunk(line("")),
        Step::Chunk(line(&e3)),
        // Half of e4's chunk, then the connection drops.
        Step::Raw(format!("{:x}\r\n{e4a}", e4.len() + 1).into_bytes()),
        Step::Sleep(Duration::from_millis(100)),
        Step::Cut,
    ]);
    // The reconnection replays from e3 (inclusive, like dockerd), with a wrong content type.
    let second = Script {
        content_type: "text/plain".into(),
        steps: vec![Step::Chunk([line(&e3), line(&e4), line(&e5)].concat()), Step::Hold],
    };
    let fake = FakeDocker::start(&dir.path("docker.sock"), "1.52", vec![first, second]);
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon = start_against_fake(&dir, &fake, &queue, json!({"wait_time": 0.2}));

    queue.wait_until(Duration::from_secs(20), "e5", |f| docker_events(f).iter().any(|e| time_nano(e) == base + 6));
    std::thread::sleep(Duration::from_millis(200));
    let frames = queue.frames();
    let events = docker_events(&frames);
    let times: Vec<i64> = events.iter().map(time_nano).collect();
    assert_eq!(times, (1..=6).map(|i| base + i).collect::<Vec<_>>(), "each event once, in order");
    for (raw, got) in [(&e1, &events[0]), (&e2, &events[1]), (&e3, &events[3]), (&e4, &events[4]), (&e5, &events[5])] {
        assert_eq!(canonical(got), canonical(&serde_json::from_str(raw).unwrap()));
    }
    // Unchanged events are Docker's bytes exactly.
    assert_eq!(frames[0], format!("{DOCKER_PREFIX}{e1}}}").into_bytes());

    // The 1 MiB event: shrunk to fit, still valid JSON, marked.
    let big_frame = frames.iter().find(|f| frame_json(f)["docker"]["Actor"]["ID"] == "c2").unwrap();
    assert!(big_frame.len() <= 65535, "{} bytes", big_frame.len());
    let v = frame_json(big_frame);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["docker"]["Action"], "create");
    assert_eq!(v["docker"]["Actor"]["Attributes"]["name"], "big");
    assert!(v["docker"]["Actor"]["Attributes"]["huge"].as_str().unwrap().ends_with('…'));

    // Resumed from the last event read, inclusive; the replayed e3 was dropped as a duplicate.
    let reqs = fake.event_requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[1].contains(&format!("since={}", docker_time(base + 4))), "{reqs:?}");

    assert_eq!(daemon.stop(), 0);
    let log = daemon.log_text();
    assert_eq!(daemon.count_log("skipped malformed data from the Docker API"), 3, "{log}");
    assert_eq!(daemon.count_log("longer than the limit on one event"), 1, "{log}");
    assert_eq!(daemon.count_log("ended in the middle of an event"), 1, "{log}");
    assert_eq!(daemon.count_log("is not application/json"), 1, "{log}");
    for (counter, want) in [
        ("docker_malformed", 3),
        ("docker_oversized_raw", 1),
        ("docker_partial_at_eof", 1),
        ("docker_events_duplicate", 1),
        ("events_truncated", 1),
        ("docker_events_in", 7),
    ] {
        assert_eq!(daemon.final_stat(counter), want, "{counter} in the final stats: {log}");
    }
}

/// Writes a resume cursor into the daemon's state directory, as a previous run would have:
/// the last delivered event's time and the hashes of the events delivered at that time.
fn write_cursor(dir: &TempDir, time_nano: i64, delivered_at_time: &[u64]) {
    std::fs::create_dir_all(dir.path("state")).unwrap();
    let cursor = json!({"version": 1, "time_nano": time_nano, "delivered_at_time": delivered_at_time});
    std::fs::write(dir.path("state/cursor.json"), cursor.to_string()).unwrap();
}

#[test]
fn a_cursor_ahead_of_the_clock_does_not_swallow_live_events() {
    // The last run delivered an event stamped an hour ahead (the clock has since been set back):
    // Docker replays that event (`since` is inclusive), which is a duplicate; the live events
    // now have older times, and none of them is.
    let dir = TempDir::new("futurecursor");
    let ahead = now_ns() + 3_600_000_000_000;
    let delivered = event("container", "die", "c0", "zero", ahead);
    write_cursor(&dir, ahead, &[docker_listener::encode::event_hash(delivered.as_bytes())]);
    // A minute ahead of now: live whenever the daemon gets to subscribe.
    let live: Vec<String> =
        (1..=3).map(|i| event("container", "start", "c1", "one", now_ns() + 60_000_000_000 + i)).collect();
    let script = Script::json(
        [Step::Chunk(line(&delivered)), Step::Sleep(Duration::from_millis(300))]
            .into_iter()
            .chain(live.iter().map(|e| Step::Chunk(line(e))))
            .chain([Step::Hold])
            .collect(),
    );
    let fake = FakeDocker::start(&dir.path("docker.sock"), "1.52", vec![script]);
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon = start_against_fake(&dir, &fake, &queue, json!({}));
    queue.wait_until(Duration::from_secs(20), "the 3 live events", |f| docker_events(f).len() == 3);
    assert_eq!(daemon.stop(), 0);
    let times: Vec<i64> = docker_events(&queue.frames()).iter().map(time_nano).collect();
    assert!(!times.contains(&ahead), "the replayed, already delivered event was sent again");
    assert_eq!(daemon.final_stat("docker_events_duplicate"), 1, "{}", daemon.log_text());
    assert_eq!(daemon.count_log("newer than this host's clock"), 1, "{}", daemon.log_text());
}

/// The agent resuming from a cursor at `base` naming `hashes`, against a fake dockerd that
/// replays `n` events after it: the stopped agent, the fake, and `base`.
fn replay_after_the_cursor(tag: &str, hashes: &[u64], n: i64) -> (Daemon, FakeDocker, i64) {
    let dir = TempDir::new(tag);
    let base = now_ns() - 60_000_000_000;
    write_cursor(&dir, base, hashes);
    let replayed: Vec<u8> =
        (1..=n).flat_map(|i| line(&event("container", "exec_start: true", "c1", "one", base + 1_000 * i))).collect();
    let fake = FakeDocker::start(
        &dir.path("docker.sock"),
        "1.52",
        vec![Script::json(vec![Step::Chunk(replayed), Step::Hold])],
    );
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon = start_against_fake(&dir, &fake, &queue, json!({}));
    queue.wait_until(Duration::from_secs(20), "the replayed events", |f| docker_events(f).len() == n as usize);
    assert_eq!(daemon.stop(), 0);
    (daemon, fake, base)
}

/// A cursor that names its event (its hash), and dockerd's replay begins after it: dockerd no
/// longer holds it (evicted, or restarted), so what it logged between may be lost, however few
/// events it replays.
#[test]
fn a_replay_that_starts_after_the_cursor_s_own_event_is_reported_as_a_possible_gap() {
    let (daemon, _fake, _) = replay_after_the_cursor("afternamed", &[7], 3);
    assert_eq!(daemon.final_stat("docker_upstream_gaps"), 1, "{}", daemon.log_text());
    assert_eq!(daemon.count_log("dockerd no longer holds the last Docker event"), 1, "{}", daemon.log_text());
}

#[test]
fn a_replay_that_no_longer_reaches_the_cursor_is_reported_as_an_upstream_gap() {
    // dockerd keeps its last 256 events: a full replay that starts after our cursor means the
    // events in between were evicted before we could read them.
    let (daemon, fake, base) = replay_after_the_cursor("upstreamgap", &[], 256);
    assert_eq!(daemon.final_stat("docker_upstream_gaps"), 1, "{}", daemon.log_text());
    assert_eq!(daemon.count_log("no longer reaches back to the last event we delivered"), 1);
    assert!(fake.event_requests()[0].contains(&format!("since={}", docker_time(base))), "{:?}", fake.event_requests());
}

#[test]
fn oversized_events_fit_max_event_size_and_legacy_fields_restore_status() {
    let dir = TempDir::new("legacy");
    let base = now_ns();
    let small = event("container", "exec_start: sh -c id", "c1", "web", base + 1);
    let mut large: Value = serde_json::from_str(&event("container", "create", "c1", "web", base + 2)).unwrap();
    large["Actor"]["Attributes"]["com.example.blob"] = Value::String("b".repeat(5000));
    let image = event("image", "tag", "sha256:abc", "img:1", base + 3);
    let network = event("network", "create", "n1", "net", base + 4);
    // Two more oversized events: counted, but no new warning (the first and every 1000th).
    let mut more = large.clone();
    more["time"] = json!(base / 1_000_000_000);
    let more: Vec<Vec<u8>> = (5..=6)
        .map(|i| {
            more["timeNano"] = json!(base + i);
            line(&more.to_string())
        })
        .collect();
    let script = Script::json(vec![
        Step::Chunk([line(&small), line(&large.to_string()), line(&image), line(&network), more.concat()].concat()),
        Step::Hold,
    ]);
    let fake = FakeDocker::start(&dir.path("docker.sock"), "1.52", vec![script]);
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon = start_against_fake(&dir, &fake, &queue, json!({"legacy_fields": true, "max_event_size": 2048}));
    queue.wait_until(Duration::from_secs(20), "6 frames", |f| f.len() >= 6);
    assert_eq!(daemon.stop(), 0);
    assert_eq!(daemon.final_stat("events_truncated"), 3);
    let frames = queue.frames();
    for f in &frames {
        assert!(f.len() <= 2048, "a frame exceeds max_event_size: {}", f.len());
    }
    let v: Vec<Value> = frames.iter().map(|f| frame_json(f)).collect();
    // Container events get status/id/from, as Docker sent them before API 1.52, first in order.
    assert_eq!(v[0]["docker"]["status"], "exec_start: sh -c id");
    assert_eq!(v[0]["docker"]["id"], "c1");
    assert_eq!(v[0]["docker"]["from"], "busybox:latest");
    let keys: Vec<&String> = v[0]["docker"].as_object().unwrap().keys().collect();
    assert_eq!(keys[..4], ["status", "id", "from", "Type"]);
    assert!(v[0].get("truncated").is_none());
    // The 5 KB event: within 2048 bytes, marked, legacy fields kept.
    assert_eq!(v[1]["truncated"], true);
    assert_eq!(v[1]["docker"]["status"], "create");
    assert_eq!(v[1]["docker"]["Actor"]["Attributes"]["name"], "web");
    // Image events get status and id; other types nothing (moby's events.Log).
    assert_eq!(v[2]["docker"]["status"], "tag");
    assert!(v[2]["docker"].get("from").is_none());
    assert!(v[3]["docker"].get("status").is_none());
    assert_eq!(daemon.count_log("larger than max_event_size"), 1, "warned once, not per event");
}

#[test]
fn docker_unreachable_at_start_is_retried_and_logged_once() {
    let dir = TempDir::new("unreachable");
    let sock = dir.path("docker.sock");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let config = write_config(&dir, json!({"wait_time": 0.1, "max_wait_time": 0.2}));
    let daemon = Daemon::start(&[
        "--config",
        config.to_str().unwrap(),
        "--docker-host",
        &format!("unix://{}", sock.display()),
        "--queue",
        queue.path.to_str().unwrap(),
        "--state-dir",
        dir.path("state").to_str().unwrap(),
        "--no-ebpf",
    ]);
    daemon.wait_for_log("Docker is unreachable", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(daemon.count_log("Docker still unreachable") >= 3, "it keeps retrying");
    assert_eq!(daemon.count_log("Docker is unreachable"), 1, "one line per state change, not per retry");
    assert!(daemon.log_text().contains("does not exist: is dockerd running?"), "the message names the cause and fix");

    let ev = event("container", "start", "c9", "late", now_ns());
    let _fake = FakeDocker::start(&sock, "1.41", vec![Script::json(vec![Step::Chunk(line(&ev)), Step::Hold])]);
    queue.wait_until(Duration::from_secs(10), "the event", |f| f.len() == 1);
    assert_eq!(queue.frames()[0], format!("{DOCKER_PREFIX}{ev}}}").into_bytes());
    daemon.wait_for_log("connected to Docker", Duration::from_secs(5));
}

/// dockerd stores an event for replay, then publishes it (after letting go of its lock): one
/// that lands while we subscribe arrives both ways. `order` is the events as Docker sends them
/// (indices of `n` events e0, e1, ...); each is forwarded once, the copies counted as
/// duplicates.
fn sent_twice_at_a_subscription_forwarded_once(tag: &str, n: usize, order: &[usize], duplicates: u64) {
    let dir = TempDir::new(tag);
    let base = now_ns();
    let actions = ["create", "start", "die"];
    let events: Vec<_> = (0..n).map(|i| event("container", actions[i % 3], "c1", "one", base + 1 + i as i64)).collect();
    let chunk = order.iter().map(|&i| line(&events[i])).collect::<Vec<_>>().concat();
    let script = Script::json(vec![Step::Chunk(chunk), Step::Hold]);
    let fake = FakeDocker::start(&dir.path("docker.sock"), "1.52", vec![script]);
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon = start_against_fake(&dir, &fake, &queue, json!({}));
    let last = base + n as i64;
    queue.wait_until(Duration::from_secs(20), "the last event", |f| {
        docker_events(f).iter().any(|e| time_nano(e) == last)
    });
    assert_eq!(daemon.stop(), 0);
    let times: Vec<i64> = docker_events(&queue.frames()).iter().map(time_nano).collect();
    assert_eq!(times, (1..=n as i64).map(|i| base + i).collect::<Vec<_>>());
    assert_eq!(daemon.final_stat("docker_events_duplicate"), duplicates);
}

#[test]
fn an_event_docker_sends_twice_at_a_subscription_is_forwarded_once() {
    // Back to back.
    sent_twice_at_a_subscription_forwarded_once("twice", 3, &[0, 1, 1, 2], 1);
}

#[test]
fn events_docker_sends_twice_at_a_subscription_are_forwarded_once_when_their_copies_interleave() {
    // Two stored before the subscription took its copy, published after it: both replayed,
    // then both live; the live e1 is older than the last event handled.
    sent_twice_at_a_subscription_forwarded_once("twice-two", 3, &[0, 1, 0, 1, 2], 2);
}

#[test]
fn a_burst_docker_sends_twice_at_a_subscription_is_forwarded_once() {
    // A `compose up` in the race: 100 events replayed, then their 100 live copies (each live
    // copy 100 events after its replayed one; dockerd replays up to 256).
    let order: Vec<usize> = (0..100).chain(0..100).collect();
    sent_twice_at_a_subscription_forwarded_once("twice-burst", 100, &order, 100);
}
