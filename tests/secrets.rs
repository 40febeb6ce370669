//! Secrets in command lines (`redact`, on by default) against the real dockerd and eBPF: the
//! documented secret-bearing commands, run in a container and through `docker exec`.
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

#[test]
fn no_secret_of_a_command_line_reaches_wazuh_and_the_rest_of_each_event_is_intact() {
    e2e();
    let _lock = docker_lock();
    let mut agent = start_agent_with("secrets", json!({}), json!({}));
    let name = unique("secrets");
    let _c = Containers(vec![name.clone()]);
    let m = unique("s");
    let secrets: Vec<String> =
        ["mysqlpw", "optpw", "tok", "envpw", "bearer", "urlpw", "execpw"].iter().map(|s| format!("{s}-{m}")).collect();
    let script = format!(
        "/bin/echo start-{m}; /usr/bin/mysql -uroot -p{} shop; /bin/echo --password={}; /bin/echo --token {}; \
         /bin/echo DB_PASSWORD={}; /bin/echo 'Authorization: Bearer {}'; \
         /bin/echo https://bob:{}@example.invalid/x; /bin/echo -o /tmp/openssl -k https://decoy-{m}.invalid/x; \
         /bin/echo --port=5432 plain-{m}; sleep 600",
        secrets[0], secrets[1], secrets[2], secrets[3], secrets[4], secrets[5]
    );
    run_detached(&name, &[], &script);
    let plain = format!("plain-{m}");
    wait_events(&agent, "the container's commands", Duration::from_secs(30), |e| !execs_with_arg(e, &plain).is_empty());
    let exec_cmd = format!("mysql -uroot -p{} shop; /bin/echo exec-{m}", secrets[6]);
    let _ = docker_at(None, &["exec", &name, "sh", "-c", &exec_cmd]);
    let exec_mark = format!("exec-{m}");
    wait_events(&agent, "the docker exec", Duration::from_secs(30), |e| !execs_with_arg(e, &exec_mark).is_empty());
    assert_eq!(agent.daemon.stop(), 0);
    let frames = agent.queue.frames();
    let id = inspect(&name, "{{.Id}}");
    let about: Vec<String> =
        frames.iter().map(|f| String::from_utf8_lossy(f).into_owned()).filter(|f| f.contains(&id)).collect();
    assert!(about.len() > 10, "the container's events arrived: {}", about.len());
    for s in &secrets {
        let leaks: Vec<&String> = about.iter().filter(|f| f.contains(s.as_str())).collect();
        assert!(leaks.is_empty(), "{s} reached the output: {leaks:#?}");
    }
    let events = agent_events(&frames);
    let args_of = |marker: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["event"]["action"] == "exec" && e["container"]["id"] == id.as_str())
            .filter(|e| {
                e["process"]["args"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str().is_some_and(|x| x.contains(marker))))
            })
            .cloned()
            .collect()
    };
    // Each secret replaced where it was, the rest of the argv as it was, and marked.
    let expect: &[(&str, &[&str])] = &[
        ("--password=", &["/bin/echo", "--password=[REDACTED]"]),
        ("--token", &["/bin/echo", "--token", "[REDACTED]"]),
        ("DB_PASSWORD=", &["/bin/echo", "DB_PASSWORD=[REDACTED]"]),
        ("Authorization", &["/bin/echo", "Authorization: Bearer [REDACTED]"]),
        ("https://bob:", &["/bin/echo", "https://bob:[REDACTED]@example.invalid/x"]),
        ("-uroot", &["/usr/bin/mysql", "-uroot", "-p[REDACTED]", "shop"]),
    ];
    for (marker, argv) in expect {
        let found = args_of(marker);
        let e = found.iter().find(|e| e["process"]["args"] == json!(argv)).unwrap_or_else(|| {
            panic!(
                "no exec with args {argv:?}; with {marker}: {:#?}",
                found.iter().map(|e| &e["process"]["args"]).collect::<Vec<_>>()
            )
        });
        assert_eq!(e["docker_listener"]["args_redacted"], true, "{e}");
        assert_eq!(e["process"]["command_line"], argv.join(" "));
    }
    let plain_execs = args_of(&plain);
    let plain_exec = plain_execs.iter().find(|e| e["process"]["args"][0] == "/bin/echo").expect("the plain echo");
    assert_eq!(plain_exec["process"]["args"], json!(["/bin/echo", "--port=5432", plain]));
    assert!(plain_exec["docker_listener"]["args_redacted"].is_null(), "nothing to redact, no mark");
    // The container's own command line (its init) and the docker exec's, in our events and in
    // Docker's: redacted, not dropped.
    let init = args_of(&format!("start-{m}"));
    assert!(init.iter().any(|e| e["process"]["args"][0] == "sh"), "the init's exec event is sent");
    // An argument named like a tool (`/tmp/openssl`) hides nothing after it: not in the
    // command's own event, not in the script that ran it.
    let decoy = format!("https://decoy-{m}.invalid/x");
    let decoys = args_of(&decoy);
    assert!(
        decoys.iter().any(|e| e["process"]["args"] == json!(["/bin/echo", "-o", "/tmp/openssl", "-k", decoy])
            && e["docker_listener"]["args_redacted"].is_null()),
        "the decoy's exec event with its URL: {decoys:#?}"
    );
    assert!(decoys.iter().any(|e| e["process"]["args"][0] == "sh"), "the script with the decoy's URL: {decoys:#?}");
    let docker = docker_events(&frames);
    let exec_create = docker
        .iter()
        .find(|e| {
            e["Actor"]["ID"] == id.as_str() && e["Action"].as_str().is_some_and(|a| a.starts_with("exec_create: "))
        })
        .expect("the docker exec's exec_create");
    assert_eq!(exec_create["Action"], format!("exec_create: sh -c mysql -uroot -p[REDACTED] shop; /bin/echo exec-{m}"));
    assert!(exec_create["Actor"]["Attributes"]["execID"].is_string(), "the rest of Docker's event is intact");
    assert_eq!(exec_create["Actor"]["Attributes"]["name"], name.as_str());
}
