//! Healthchecks (`healthchecks`, `crate::health`): against the real dockerd and eBPF, one
//! container with a 1 s healthcheck watched by two agents at once, one with the default
//! (`summarize`) and one with `forward`.
mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::*;

fn of_container<'a>(events: &'a [Value], id: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["Actor"]["ID"] == id || e["container"]["id"] == id).collect()
}

fn actions(docker_events: &[&Value], action: &str) -> usize {
    docker_events.iter().filter(|e| e["Action"] == action).count()
}

fn failed_dies(docker_events: &[&Value]) -> usize {
    docker_events.iter().filter(|e| e["Action"] == "exec_die" && e["Actor"]["Attributes"]["exitCode"] != "0").count()
}

/// The exec events of the check's shell, by user ("0" for the checks, the test's user for the
/// `docker exec`).
fn check_execs(events: &[&Value], check: &str, uid: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["event"]["action"] == "exec"
                && e["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| x == check))
                && e["process"]["user"]["id"].to_string().trim_matches('"') == uid
        })
        .count()
}

#[test]
fn passing_checks_are_summarised_failures_and_a_docker_exec_of_the_same_command_are_sent() {
    e2e();
    let _lock = docker_lock();
    let summarize = start_agent_with("hc-sum", json!({"healthcheck_period": 10}), json!({}));
    let forward = start_agent_with("hc-fwd", json!({"healthchecks": "forward"}), json!({}));
    let name = unique("hc");
    let _c = Containers(vec![name.clone()]);
    let check = "test ! -e /tmp/fail";
    let t0 = Instant::now();
    let id =
        run_detached(&name, &["--health-cmd", check, "--health-interval", "1s", "--health-retries", "1"], "sleep 600")
            .trim()
            .to_owned();
    let command = format!("exec_create: /bin/sh -c {check}");
    let until = |secs: u64| {
        if let Some(left) = Duration::from_secs(secs).checked_sub(t0.elapsed()) {
            std::thread::sleep(left);
        }
    };
    // Passing checks; then a `docker exec` of the check's exact command line, as another user.
    until(10);
    let before = now_ns();
    docker(&["exec", "-u", "4321", &name, "/bin/sh", "-c", check]);
    let after = now_ns();
    // Failing checks for a few seconds, then passing again.
    until(15);
    docker(&["exec", &name, "touch", "/tmp/fail"]);
    std::thread::sleep(Duration::from_millis(2500));
    docker(&["exec", &name, "rm", "/tmp/fail"]);
    until(30);
    docker(&["rm", "-f", &name]);
    for agent in [&summarize, &forward] {
        agent.queue.wait_until(Duration::from_secs(20), "the container's destroy event", |f| {
            docker_events(f).iter().any(|e| e["Actor"]["ID"] == id.as_str() && e["Action"] == "destroy")
        });
    }
    let (s_frames, f_frames) = (summarize.queue.frames(), forward.queue.frames());
    let (s_docker, f_docker) = (docker_events(&s_frames), docker_events(&f_frames));
    let (s_docker, f_docker) = (of_container(&s_docker, &id), of_container(&f_docker, &id));
    let (s_ours, f_ours) = (agent_events(&s_frames), agent_events(&f_frames));
    let (s_ours, f_ours) = (of_container(&s_ours, &id), of_container(&f_ours, &id));

    // `forward`: every check, as Wazuh's listener sends them.
    // dockerd waits its interval after each check ends: 30 s of a 1 s check is 30 checks at
    // best, fewer when a check takes long on a loaded machine.
    let all_checks = actions(&f_docker, &command);
    assert!(all_checks >= 15, "forward: {all_checks} checks' exec_create in 30 s of a 1 s healthcheck");
    let failures = failed_dies(&f_docker);
    assert!(failures >= 1, "the checks failed while /tmp/fail existed");
    assert!(check_execs(&f_ours, check, "0") >= 15, "forward: the checks' processes");

    // `summarize`: the failures and every health_status change, as they happen...
    assert_eq!(failed_dies(&s_docker), failures, "every failing check is forwarded");
    let status = |d: &[&Value]| {
        d.iter().filter(|e| e["Action"].as_str().is_some_and(|a| a.starts_with("health_status"))).count()
    };
    assert!(status(&f_docker) >= 2, "healthy, unhealthy, healthy");
    assert_eq!(status(&s_docker), status(&f_docker), "every health_status event is forwarded");
    // ...the `docker exec` of the same command (Docker's event and its process)...
    assert!(
        s_docker.iter().any(|e| e["Action"] == command.as_str() && (before..=after).contains(&time_nano(e))),
        "the docker exec of the check's command line is sent"
    );
    assert_eq!(check_execs(&s_ours, check, "4321"), 1, "the docker exec's process is sent");
    // No Docker event is delivered twice.
    let mut delivered: Vec<String> = s_docker.iter().map(|e| e.to_string()).collect();
    delivered.sort();
    let all = delivered.len();
    delivered.dedup();
    assert_eq!(delivered.len(), all, "summarize: a Docker event delivered twice");
    // ...and the passing checks only as summaries. Sent one by one besides the failures: the
    // checks before the container's first health_status (when the agent asks dockerd about its
    // healthcheck), and the sessions the agent counted as not placed: created while it waited
    // for dockerd's answer (before_known: one more per second of lag on a loaded machine), not
    // recorded by dockerd in time (unrecognised: the docker exec is one) or still undecided
    // when the container was removed (a check that ended just before `docker rm -f`).
    let mut summarize = summarize;
    summarize.daemon.stop();
    let stat = |key: &str| summarize.daemon.final_stat(key);
    let (unrecognised, undecided) = (stat("health_sessions_unrecognised"), stat("health_sessions_undecided"));
    let before_known = stat("health_sessions_before_known");
    let first_status = s_docker
        .iter()
        .filter(|e| e["Action"].as_str().is_some_and(|a| a.starts_with("health_status")))
        .map(|e| time_nano(e))
        .min()
        .expect("a health_status event");
    let exec_id = |e: &Value| e["Actor"]["Attributes"]["execID"].as_str().unwrap_or_default().to_owned();
    let exits: HashMap<String, String> = s_docker
        .iter()
        .filter(|e| e["Action"] == "exec_die")
        .map(|e| (exec_id(e), e["Actor"]["Attributes"]["exitCode"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let sent: Vec<&&Value> = s_docker.iter().filter(|e| e["Action"] == command.as_str()).collect();
    let forwarded = sent.len();
    let failing = |e: &Value| exits.get(&exec_id(e)).is_some_and(|c| c != "0");
    let before_status = sent.iter().filter(|e| !failing(e) && time_nano(e) < first_status).count();
    let unplaced: Vec<String> = sent
        .iter()
        .filter(|e| !failing(e) && time_nano(e) >= first_status)
        .map(|e| {
            let id = exec_id(e);
            let exit = exits.get(&id).map_or("no exec_die sent".to_owned(), |c| format!("exit {c}"));
            format!("{:+.3} s, exec {}, {exit}", (time_nano(e) - first_status) as f64 / 1e9, &id[..id.len().min(12)])
        })
        .collect();
    assert!(
        unplaced.len() as u64 <= unrecognised + undecided + before_known,
        "summarize: {} passing sessions of the check's command sent one by one after the container's first \
         health_status (the docker exec is one), but the agent counted only {before_known} created while it \
         waited for dockerd's answer about the container, {unrecognised} it could not place (not recorded by \
         dockerd) and {undecided} undecided when the container was removed: a check it placed \
         was sent anyway, or it miscounts. Sent (time from the first health_status, exec, exit): {unplaced:?}. \
         Also sent: {before_status} checks before the first health_status, {failures} failing; {} checks folded; forward \
         saw {all_checks} checks",
        unplaced.len(),
        stat("health_checks_folded"),
    );
    let summaries: Vec<&&Value> = s_ours.iter().filter(|e| e["event"]["action"] == "healthcheck-summary").collect();
    assert!(!summaries.is_empty(), "summaries arrive");
    let passed: u64 =
        summaries.iter().map(|s| s["docker_listener"]["healthcheck"]["passed"].as_u64().unwrap_or(0)).sum();
    assert!(
        passed + forwarded as u64 >= all_checks as u64,
        "each check is either summarised ({passed}) or sent ({forwarded}); forward saw {all_checks}"
    );
    let rules = support::rules::load_rules();
    for s in &summaries {
        assert_eq!(support::rules::evaluate(&rules, s), Some(100_059), "the summary's rule: {s}");
        assert_eq!(s["container"]["name"], name.as_str());
        assert_eq!(s["docker_listener"]["healthcheck"]["command"], format!("/bin/sh -c {check}"));
    }
    let (s_all, f_all) = (s_docker.len() + s_ours.len(), f_docker.len() + f_ours.len());
    let shells = check_execs(&s_ours, check, "0");
    eprintln!(
        "forward: {all_checks} checks, {failures} failing, {} check processes, {f_all} frames; summarize: {forwarded} \
         checks sent ({before_status} before the first health_status, {} after it; agent: {before_known} \
         before its healthcheck was known, {unrecognised} unrecognised, {undecided} undecided), {passed} summarised in {} summaries, {shells} check processes, \
         {s_all} frames",
        check_execs(&f_ours, check, "0"),
        unplaced.len(),
        summaries.len()
    );
    // Each session sent one by one sends its shell (the docker exec's is not root's), and the
    // first check the agent placed its own, as the first of its command in the container. Two
    // more may be: a check's exec that reaches the stage before its exec_create (the Docker
    // stream a tick behind the ring buffer, on a loaded machine) is sent as a process of no
    // session.
    assert!(
        shells <= forwarded + 2,
        "summarize: {shells} check processes sent, {forwarded} sessions of the check's command sent one by one (one \
         of them the docker exec, the first placed check's shell sent as the first of its command; 2 more allowed \
         for execs ahead of their exec_create): placed checks' processes were sent"
    );
    assert!(s_all * 2 < f_all, "summarize: {s_all} frames about the container, forward: {f_all}");
}

/// A check's script changed inside the container (by whoever got in) runs the same programs
/// with other arguments: those are sent at once, not counted into the summary with the rest.
#[test]
fn a_check_that_starts_running_another_command_line_is_not_folded() {
    e2e();
    let _lock = docker_lock();
    let agent = start_agent_with("hc-args", json!({"healthcheck_period": 60}), json!({}));
    let name = unique("hc-args");
    let _c = Containers(vec![name.clone()]);
    let (ok, changed) = (format!("ok-{name}"), format!("changed-{name}"));
    let id = run_detached(
        &name,
        &["--health-cmd", "sh /hc.sh", "--health-interval", "1s", "--health-retries", "1"],
        &format!("echo '/bin/echo {ok}' > /hc.sh; sleep 600"),
    )
    .trim()
    .to_owned();
    // The agent learns the healthcheck from its first health_status; passing checks for a while
    // after it, folded.
    agent.queue.wait_until(Duration::from_secs(30), "the container's health_status", |f| {
        docker_events(f).iter().any(|e| {
            e["Actor"]["ID"] == id.as_str() && e["Action"].as_str().is_some_and(|a| a.starts_with("health_status"))
        })
    });
    std::thread::sleep(Duration::from_secs(6));
    docker(&["exec", &name, "sh", "-c", &format!("echo '/bin/echo {changed}' > /hc.sh")]);
    wait_events(&agent, "the changed check's exec", Duration::from_secs(20), |e| {
        !execs_with_arg(e, &changed).is_empty()
    });
    // A few more checks of the changed script: folded in turn.
    std::thread::sleep(Duration::from_millis(3500));
    docker(&["rm", "-f", &name]);
    let summaries = |e: &[Value]| -> Vec<u64> {
        e.iter()
            .filter(|x| x["event"]["action"] == "healthcheck-summary" && x["container"]["id"] == id.as_str())
            .map(|s| s["docker_listener"]["healthcheck"]["passed"].as_u64().unwrap_or(0))
            .collect()
    };
    let events = wait_events(&agent, "the container's summary", Duration::from_secs(20), |e| !summaries(e).is_empty());
    let passed: u64 = summaries(&events).iter().sum();
    let (oks, changes) = (execs_with_arg(&events, &ok), execs_with_arg(&events, &changed));
    eprintln!(
        "{passed} checks summarised; execs sent: {} of the first command line, {} of the changed one",
        oks.len(),
        changes.len()
    );
    assert!(passed >= 3, "the checks were folded ({passed} summarised)");
    assert!(oks.len() <= 4, "the first command line is folded after its first ({} sent)", oks.len());
    assert!(changes.len() <= 2, "the changed command line is folded after its first ({} sent)", changes.len());
    assert_eq!(changes[0]["process"]["parent"]["applet"], "sh", "run by the check's shell: {}", changes[0]);
    assert_eq!(changes[0]["process"]["user"]["id"], "0", "{}", changes[0]);
}
