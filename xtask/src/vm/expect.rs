//! What the checker makes happen in the container, and what the agent must report about it:
//! the workload script and the expected events, field by field. Everything a schema change
//! touches is in this file.
//!
//! The workload is busybox's shell, started by the checker as the container's first process
//! (in its cgroup, in a network namespace of its own with only `lo`, like
//! `docker run --network none`); it runs busybox applets, which the shell starts by re-executing
//! busybox (`execve("/proc/self/exe", ["nc", ...])`), so `process.args` is the same in every VM
//! and on the host. The marker is this run's own string, so that a stale or foreign event never
//! matches.
use serde_json::{Value, json};

use super::fake_docker::Container;

/// The TCP port the workload's listener binds (in its own network namespace, so any port is free).
pub const LISTEN_PORT: u16 = 8080;
/// A port nothing listens on there: the connect to it is refused.
pub const CLOSED_PORT: u16 = 9;

/// The shell script the container's first process runs (`sh -c <script>`).
pub fn script(marker: &str) -> String {
    format!(
        "ip link set lo up
/bin/echo {marker} one two
/bin/nope-{marker}
nc -l -p {LISTEN_PORT} >/dev/null &
for i in $(seq 200); do netstat -ltn | grep -q ':{LISTEN_PORT} ' && break; sleep 0.05; done
echo hi | nc 127.0.0.1 {LISTEN_PORT}
nc 127.0.0.1 {CLOSED_PORT}
wait
"
    )
}

/// What is known when the events are checked.
pub struct Facts<'a> {
    pub container: &'a Container,
    pub marker: &'a str,
    pub script: &'a str,
    /// The checker itself: the parent of the container's first process.
    pub checker_pid: u32,
    /// The container's first process, the shell.
    pub sh_pid: u32,
}

/// What a field must hold.
#[derive(Debug, Clone)]
pub enum Want {
    Is(Value),
    /// The value of a field of another expected event (by its name): e.g. a socket event's
    /// `process.pid` is the pid of the exec that started the program.
    SameAs(&'static str, &'static str),
    /// Any non-empty string.
    NonEmptyString,
}

/// One event the agent must have sent for the container.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: &'static str,
    /// The event is the first of the container's whose fields have these values.
    pub select: Vec<(&'static str, Value)>,
    /// Then each of these is one check.
    pub fields: Vec<(&'static str, Want)>,
}

/// The expected events, in the order the workload makes them.
pub fn expected(f: &Facts) -> Vec<Expected> {
    use Want::{Is, NonEmptyString, SameAs};
    let c = f.container;
    let exec = |args: Value| vec![("event.action", json!("exec")), ("process.args", args)];
    let in_the_container = || vec![("container.id", Is(json!(c.id))), ("container.name", Is(json!(c.name)))];
    let from_the_shell = |name: &'static str| {
        let mut v = in_the_container();
        v.extend([
            ("event.outcome", Is(json!("success"))),
            ("process.name", Is(json!(name))),
            ("process.parent.pid", Is(json!(f.sh_pid))),
        ]);
        v
    };
    let with = |mut base: Vec<(&'static str, Want)>, more: Vec<(&'static str, Want)>| {
        base.extend(more);
        base
    };
    vec![
        Expected {
            name: "exec of the container's shell",
            select: exec(json!(["sh", "-c", f.script])),
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("container.image.name", Is(json!(c.image))),
                    ("container.image.id", Is(json!(c.image_id))),
                    ("container.labels", Is(json!(c.labels))),
                    ("container.runtime", Is(json!("docker"))),
                    ("docker_listener.container_started_time_nano", Is(json!(c.started_ns))),
                    ("process.pid", Is(json!(f.sh_pid))),
                    ("process.parent.pid", Is(json!(f.checker_pid))),
                    ("process.name", Is(json!("sh"))),
                    ("process.user.id", Is(json!("0"))),
                    // TODO: `process.executable` is becoming the real executable's path (here
                    // /bin/busybox, not the path given to execve); check its value once that lands.
                    ("process.executable", NonEmptyString),
                ],
            ),
        },
        Expected {
            name: "exec of the marker",
            select: exec(json!(["/bin/echo", f.marker, "one", "two"])),
            fields: with(
                from_the_shell("echo"),
                vec![
                    ("process.args_count", Is(json!(4))),
                    ("process.entry_leader.pid", Is(json!(f.sh_pid))),
                    ("process.parent.name", Is(json!("sh"))),
                    // TODO: check the value once `process.executable` is the real executable.
                    ("process.executable", NonEmptyString),
                ],
            ),
        },
        Expected {
            name: "failed exec",
            select: exec(json!([format!("/bin/nope-{}", f.marker)])),
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("failure"))),
                    ("error.code", Is(json!("ENOENT"))),
                    ("docker_listener.syscall.ret", Is(json!(-2))),
                    ("process.parent.pid", Is(json!(f.sh_pid))),
                ],
            ),
        },
        Expected {
            name: "exec of the listener",
            select: exec(json!(["nc", "-l", "-p", LISTEN_PORT.to_string()])),
            fields: from_the_shell("nc"),
        },
        Expected {
            name: "bind",
            select: vec![("event.action", json!("bind")), ("server.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("network.transport", Is(json!("tcp"))),
                    ("process.pid", SameAs("exec of the listener", "process.pid")),
                    ("process.entity_id", SameAs("exec of the listener", "process.entity_id")),
                ],
            ),
        },
        Expected {
            name: "listen",
            select: vec![("event.action", json!("listen")), ("server.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.pid", SameAs("exec of the listener", "process.pid")),
                ],
            ),
        },
        Expected {
            name: "exec of the client",
            select: exec(json!(["nc", "127.0.0.1", LISTEN_PORT.to_string()])),
            fields: from_the_shell("nc"),
        },
        Expected {
            name: "connect",
            select: vec![("event.action", json!("connect")), ("destination.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("destination.ip", Is(json!("127.0.0.1"))),
                    ("source.ip", Is(json!("127.0.0.1"))),
                    ("network.transport", Is(json!("tcp"))),
                    ("network.type", Is(json!("ipv4"))),
                    ("process.pid", SameAs("exec of the client", "process.pid")),
                ],
            ),
        },
        Expected {
            name: "accept",
            select: vec![("event.action", json!("accept")), ("destination.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("source.ip", Is(json!("127.0.0.1"))),
                    ("source.port", SameAs("connect", "source.port")),
                    ("process.pid", SameAs("exec of the listener", "process.pid")),
                ],
            ),
        },
        Expected {
            name: "exec of the refused client",
            select: exec(json!(["nc", "127.0.0.1", CLOSED_PORT.to_string()])),
            fields: from_the_shell("nc"),
        },
        Expected {
            name: "refused connect",
            select: vec![("event.action", json!("connect")), ("destination.port", json!(CLOSED_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("failure"))),
                    ("error.code", Is(json!("ECONNREFUSED"))),
                    ("destination.ip", Is(json!("127.0.0.1"))),
                    ("network.transport", Is(json!("tcp"))),
                    ("process.pid", SameAs("exec of the refused client", "process.pid")),
                ],
            ),
        },
    ]
}
