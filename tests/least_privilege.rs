//! Least privilege (`drop_privileges`, `crate::privilege`): the running agent holds only the
//! documented capabilities, with no_new_privs, and its events still flow.
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// A capability set line of /proc/<pid>/status ("CapEff:\t000001...").
fn cap_set(status: &str, name: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn the_running_agent_holds_only_the_documented_capabilities_and_still_sees_everything() {
    e2e();
    let _lock = docker_lock();
    let agent = start_agent("leastpriv", json!({}));
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.daemon.pid())).unwrap();
    // CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_BPF (39).
    let expected: u64 = (1 << 1) | (1 << 2) | (1 << 19) | (1 << 39);
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(cap_set(&status, set), expected, "{set} {:#x}\n{status}", cap_set(&status, set));
    }
    assert_eq!(cap_set(&status, "CapInh:"), 0);
    assert_eq!(cap_set(&status, "CapAmb:"), 0);
    let nnp = status.lines().find(|l| l.starts_with("NoNewPrivs:")).unwrap();
    assert_eq!(nnp.split_whitespace().nth(1), Some("1"), "{nnp}");
    assert!(agent.daemon.log_text().contains("dropped every capability"), "{}", agent.daemon.log_text());

    // Docker events, process events, and a sensitive file resolved inside the container's
    // filesystem (/proc/<pid>/root) after the drop.
    let name = unique("lp");
    let _c = Containers(vec![name.clone()]);
    let marker = unique("after");
    run_detached(
        &name,
        &[],
        &format!(
            "echo 'root:*:19000::::::' > /etc/shadow; sleep 2; cat /etc/shadow >/dev/null; /bin/echo {marker}; sleep 600"
        ),
    );
    let events = wait_events(&agent, "an exec and a file read after the drop", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &marker).is_empty()
            && e.iter().any(|x| x["event"]["action"] == "file-read" && x["container"]["name"] == name.as_str())
    });
    assert_eq!(execs_with_arg(&events, &marker)[0]["container"]["name"], name.as_str());
    let frames = agent.queue.frames();
    assert!(
        docker_events(&frames)
            .iter()
            .any(|e| e["Action"] == "start" && e["Actor"]["Attributes"]["name"] == name.as_str()),
        "Docker events flow"
    );
}

#[test]
fn configured_with_a_user_it_runs_as_that_user_and_still_sees_everything() {
    e2e();
    let _lock = docker_lock();
    let agent = start_agent_with("asuser", json!({"user": "nobody", "groups": ["nogroup"]}), json!({}));
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.daemon.pid())).unwrap();
    let ids = |key: &str| -> Vec<String> {
        status.lines().find(|l| l.starts_with(key)).unwrap().split_whitespace().skip(1).map(str::to_owned).collect()
    };
    assert_eq!(ids("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(ids("Gid:"), ["65534"; 4], "{status}");
    assert_eq!(ids("Groups:"), ["65534"], "{status}");
    assert_eq!(cap_set(&status, "CapEff:"), (1 << 1) | (1 << 2) | (1 << 19) | (1 << 39), "{status}");
    let name = unique("asuser");
    let _c = Containers(vec![name.clone()]);
    let marker = unique("u");
    run_detached(&name, &[], &format!("/bin/echo {marker}; sleep 600"));
    let events = wait_events(&agent, "an exec as another user", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &marker).is_empty()
    });
    assert_eq!(execs_with_arg(&events, &marker)[0]["container"]["name"], name.as_str());
}
