//! The per-container budget (`ebpf.budget_per_second`, `budget.rs` in the kernel): a storm in
//! one container cannot cost another its records, what is held back is reported by container,
//! and the budget never hides a failed call or the first exec of a file.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn held_back<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"]["action"] == "events-held-back" && e["container"]["name"] == name).collect()
}

#[test]
fn two_storming_containers_cannot_cost_a_quiet_one_its_execs() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with(
        "fair",
        json!({}),
        json!({"ring_buffer_bytes": 65536, "budget_per_second": 50, "budget_burst": 100}),
    );
    let stormers = [unique("storm"), unique("storm")];
    let quiet = unique("quiet");
    let _c = Containers(vec![stormers[0].clone(), stormers[1].clone(), quiet.clone()]);
    let marker = unique("m");
    for s in &stormers {
        // A storm of execs; two seconds in, a failed exec and three execs of a new file (the
        // first exec of a file, and a drifted program: never held back).
        run_detached(
            s,
            &[],
            &format!(
                "(while :; do /bin/true; done) & sleep 2; /nonexistent-{marker} 2>/dev/null; \
                 cp /bin/busybox /tmp/new-{marker}; for i in 1 2 3; do /tmp/new-{marker} true; done; sleep 600"
            ),
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    run_detached(&quiet, &[], &format!("for i in $(seq 1 30); do /bin/echo {marker}-$i; sleep 0.2; done; sleep 600"));
    let quiet_execs =
        |events: &[Value]| (1..=30).filter(|i| !execs_with_arg(events, &format!("{marker}-{i}")).is_empty()).count();
    let new_file = format!("/tmp/new-{marker}");
    let events =
        wait_events(&agent, "the quiet container's 30 execs and both storms' reports", Duration::from_secs(40), |e| {
            quiet_execs(e) == 30
                && stormers.iter().all(|s| !held_back(e, s).is_empty())
                && e.iter().filter(|x| x["process"]["executable"] == new_file.as_str()).count() >= 6
        });
    assert_eq!(quiet_execs(&events), 30, "every exec of the quiet container arrives");
    assert!(held_back(&events, &quiet).is_empty(), "the quiet container stayed within its budget");
    let mut reported = 0;
    for s in &stormers {
        let reports = held_back(&events, s);
        let held: u64 = reports.iter().map(|r| r["docker_listener"]["held_back"]["records"].as_u64().unwrap()).sum();
        assert!(held > 0, "{s}: its excess is reported with its name");
        let rules = support::rules::load_rules();
        assert_eq!(support::rules::evaluate(&rules, reports[0]), Some(100_060), "the report's rule");
        reported += held;
        assert_eq!(reports[0]["docker_listener"]["held_back"]["budget"]["per_second"], 50);
        let id = inspect(s, "{{.Id}}");
        assert_eq!(reports[0]["container"]["id"], id.as_str());
        let mine: Vec<&Value> = events.iter().filter(|e| e["container"]["name"] == s.as_str()).collect();
        let mine: Vec<Value> = mine.into_iter().cloned().collect();
        // Over its budget, a failed call and the first exec of a file still arrive.
        let failed = mine.iter().any(|e| {
            e["event"]["action"] == "exec"
                && e["event"]["outcome"] == "failure"
                && e["docker_listener"]["exec"]["filename"] == format!("/nonexistent-{marker}").as_str()
        });
        assert!(failed, "{s}: the failed exec is never held back");
        let drifted: Vec<&Value> = mine
            .iter()
            .filter(|e| e["event"]["action"] == "exec" && e["process"]["executable"] == new_file.as_str())
            .collect();
        assert_eq!(drifted.len(), 3, "{s}: a drifted program's execs are never held back");
        assert!(drifted.iter().all(|e| e["docker_listener"]["exec"]["file"]["drift"] == true));
    }
    // Counted apart from losses, and every record held back is in a report.
    assert_eq!(agent.daemon.stop(), 0);
    let total = agent.daemon.final_stat("ebpf_held_back");
    assert!(total >= reported, "{total} held back in all, {reported} reported by the time the test looked");
}
