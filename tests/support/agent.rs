//! The real daemon with eBPF against the real dockerd: start it, run containers, wait for its
//! events (shared by the process-event tests).
use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use super::*;

/// Our own events (never under the `docker` key) among the frames.
pub fn agent_events(frames: &[Vec<u8>]) -> Vec<Value> {
    frames.iter().filter(|f| !f.starts_with(DOCKER_PREFIX.as_bytes())).map(|f| frame_json(f)).collect()
}

pub fn execs_with_arg<'a>(events: &'a [Value], arg: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["event"]["action"] == "exec"
                && e["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| x == arg))
        })
        .collect()
}

pub struct Agent {
    pub _dir: TempDir,
    pub queue: QueueReceiver,
    pub daemon: Daemon,
}

pub fn start_agent(name: &str, ebpf: Value) -> Agent {
    start_agent_with(name, json!({}), ebpf)
}

/// The agent with `config` (members under "docker-listener") and `ebpf` as its "ebpf" member.
/// Repeat folding and the per-container budget are off unless the test sets them: most tests
/// count identical events one by one (tests/repeats.rs and tests/fairness.rs test those two).
pub fn start_agent_with(name: &str, config: Value, ebpf: Value) -> Agent {
    start_agent_with_env(name, config, ebpf, &[])
}

/// `start_agent_with`, the daemon's environment given `env` too (the test build's fault
/// injections).
pub fn start_agent_with_env(name: &str, config: Value, ebpf: Value, env: &[(&str, &str)]) -> Agent {
    let dir = TempDir::new(name);
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut members = config;
    if members.get("repeat_window").is_none() {
        members["repeat_window"] = 0.into();
    }
    let mut ebpf = ebpf;
    if ebpf.get("budget_per_second").is_none() {
        ebpf["budget_per_second"] = 0.into();
    }
    members["ebpf"] = ebpf;
    let config = write_config(&dir, members);
    let args = agent_args(&config, &queue, &dir);
    let daemon = Daemon::start_with(Command::new(daemon_bin()).args(&args).envs(env.iter().copied()));
    daemon.wait_for_log("container inventory loaded", Duration::from_secs(30));
    Agent { _dir: dir, queue, daemon }
}

/// `--config CONFIG --queue QUEUE --state-dir DIR/state`.
pub fn agent_args(config: &Path, queue: &QueueReceiver, dir: &TempDir) -> Vec<String> {
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    vec!["--config".into(), s(config), "--queue".into(), s(&queue.path), "--state-dir".into(), s(&dir.path("state"))]
}

pub fn inspect(name: &str, field: &str) -> String {
    docker(&["inspect", "--format", field, name]).trim().to_owned()
}

pub fn wait_events(agent: &Agent, what: &str, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    agent.queue.wait_until(timeout, what, |f| done(&agent_events(f)));
    agent_events(&agent.queue.frames())
}

/// Removes containers when the test ends, whatever happens: two at a time. (dockerd 20.10's
/// libnetwork can deadlock when many containers exit at once, as `docker rm -f` of dozens of
/// containers makes them do; seen here with a few hundred.)
pub struct Containers(pub Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        std::thread::scope(|s| {
            for half in self.0.chunks(self.0.len().div_ceil(2).max(1)) {
                s.spawn(move || {
                    for name in half {
                        let _ = Command::new("docker").args(["rm", "-f", name]).output();
                    }
                });
            }
        });
    }
}

/// `docker run -d --network none --name <name> <extra...> <test image> sh -c <script>`; the id.
pub fn run_detached(name: &str, extra: &[&str], script: &str) -> String {
    let mut args = vec!["run", "-d", "--network", "none", "--name", name];
    args.extend_from_slice(extra);
    let image = image();
    args.extend([image.as_str(), "sh", "-c", script]);
    docker(&args)
}
