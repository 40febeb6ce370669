//! The shipped Wazuh rules (rules/docker_listener_rules.xml) against real events: a container
//! does each thing a rule is about; the daemon reports it; the rules are evaluated the way
//! wazuh-analysisd walks its rule tree (from Wazuh's 87900, first matching child, deeper while a
//! child matches), with the same patterns.
mod support;

use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value, json};
use support::*;

struct Rule {
    id: u32,
    parent: u32,
    fields: Vec<(String, Regex)>,
}

fn load_rules() -> Vec<Rule> {
    let xml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/docker_listener_rules.xml")).unwrap();
    let rule_re = Regex::new(r#"(?s)<rule id="(\d+)" level="(\d+)">(.*?)</rule>"#).unwrap();
    let sid_re = Regex::new(r"<if_sid>(\d+)</if_sid>").unwrap();
    let field_re = Regex::new(r#"<field name="([^"]+)"(?: type="(pcre2|osregex)")?>([^<]*)</field>"#).unwrap();
    let rules: Vec<Rule> = rule_re
        .captures_iter(&xml)
        .map(|c| {
            let body = &c[3];
            Rule {
                id: c[1].parse().unwrap(),
                parent: sid_re.captures(body).expect("every rule has an if_sid")[1].parse().unwrap(),
                fields: field_re
                    .captures_iter(body)
                    .map(|f| {
                        let pattern = &f[3];
                        if f.get(2).is_none() {
                            // OS_regex: only plain anchored words are used without type="pcre2".
                            assert!(
                                pattern.chars().all(|ch| ch.is_ascii_alphanumeric() || "^$-_".contains(ch)),
                                "{pattern}"
                            );
                        }
                        (f[1].to_owned(), Regex::new(pattern).unwrap())
                    })
                    .collect(),
            }
        })
        .collect();
    // Every rule, every condition understood: a rule or a condition this loader skipped would
    // make the test pass for the wrong reason.
    assert_eq!(xml.matches("<rule ").count(), rules.len(), "a <rule> the loader did not parse");
    for c in rule_re.captures_iter(&xml) {
        let (id, body) = (&c[1], &c[3]);
        let parsed = rules.iter().find(|r| r.id.to_string() == id).map_or(0, |r| r.fields.len());
        assert_eq!(body.matches("<field").count(), parsed, "rule {id}: a <field> the loader did not parse");
        for tag in ["<match", "<regex", "<if_group", "<if_matched", "<same_", "<different_", "negate="] {
            assert!(!body.contains(tag), "rule {id} uses {tag}, which this evaluator does not model");
        }
    }
    assert!(rules.len() >= 10);
    assert!(rules.iter().all(|r| (100_000..100_100).contains(&r.id)));
    rules
}

/// Wazuh's JSON decoder: nested keys joined with '.', scalars as text (arrays are not matched).
fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| flatten(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out)),
        Value::Array(_) => {}
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// The rule wazuh-analysisd would end on, starting from Wazuh's 87900 (integration == docker).
fn evaluate(rules: &[Rule], event: &Value) -> Option<u32> {
    if event["integration"] != "docker" {
        return None;
    }
    let mut flat = Map::new();
    flatten("", event, &mut flat);
    let text = |k: &str| {
        flat.get(k).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut current = 87_900;
    while let Some(child) = rules
        .iter()
        .find(|r| r.parent == current && r.fields.iter().all(|(name, re)| text(name).is_some_and(|t| re.is_match(&t))))
    {
        current = child.id;
    }
    Some(current)
}

#[test]
fn each_rule_fires_on_what_it_is_about_and_nothing_else() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let dir = TempDir::new("rules");
    let queue = QueueReceiver::bind(&dir.path("queue"));
    let mut daemon =
        Daemon::start(&["--queue", queue.path.to_str().unwrap(), "--state-dir", dir.path("state").to_str().unwrap()]);
    daemon.wait_for_log("container inventory loaded", Duration::from_secs(30));
    let name = unique("rules");
    let script = format!(
        "cp /bin/busybox /tmp/apk; cp /bin/busybox /tmp/tool; /tmp/apk echo add-{name}; /tmp/tool echo tmp-{name}; \
         /bin/echo benign-{name}; /bin/nope-{name}; nc -l -p 8080 >/dev/null & {}; \
         echo hi | nc 127.0.0.1 8080; nc 169.254.169.254 80; true",
        until_listening(8080)
    );
    docker(&["run", "--rm", "--network", "none", "--name", &name, &image(), "sh", "-c", &script]);
    queue.wait_until(Duration::from_secs(20), "the metadata connect", |f| {
        f.iter().any(|x| frame_json(x)["destination"]["ip"] == "169.254.169.254")
    });
    assert_eq!(daemon.stop(), 0);
    let events: Vec<Value> =
        queue.frames().iter().map(|f| frame_json(f)).filter(|e| e["container"]["name"] == name.as_str()).collect();
    let with_arg = |arg: &str| {
        events
            .iter()
            .find(|e| e["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| x == arg)))
            .unwrap_or_else(|| panic!("no exec with {arg}"))
    };
    let first = |action: &str, f: &dyn Fn(&Value) -> bool| {
        events.iter().find(|e| e["event"]["action"] == action && f(e)).unwrap_or_else(|| panic!("no {action}"))
    };
    let cases: Vec<(&str, &Value, u32)> = vec![
        ("shell", first("exec", &|e| e["process"]["name"] == "sh" && e["process"]["args"][1] == "-c"), 100_002),
        ("package manager", with_arg(&format!("add-{name}")), 100_003),
        ("run from /tmp", with_arg(&format!("tmp-{name}")), 100_004),
        ("benign exec", with_arg(&format!("benign-{name}")), 100_001),
        ("failed exec", with_arg(&format!("/bin/nope-{name}")), 100_005),
        ("metadata connect", first("connect", &|e| e["destination"]["ip"] == "169.254.169.254"), 100_006),
        ("listen", first("listen", &|_| true), 100_007),
        ("bind a port", first("bind", &|e| e["server"]["port"] == 8080), 100_008),
        ("loopback connect", first("connect", &|e| e["destination"]["port"] == 8080), 100_000),
    ];
    for (what, event, want) in &cases {
        assert_eq!(evaluate(&rules, event), Some(*want), "{what}: {event}");
    }
    // Everything else the container did (cp, netstat, grep, sleep, the other nc...) raises no
    // more than the informational rules.
    for e in events.iter().filter(|e| !cases.iter().any(|(_, c, _)| std::ptr::eq(*c, *e))) {
        let got = evaluate(&rules, e);
        assert!(matches!(got, Some(100_000 | 100_001)), "rule {got:?} fired on an ordinary event: {e}");
    }
    // Loss reports, built by the code that sends them.
    let loss = docker_listener::ecs::ebpf_loss_event(3, 3, Map::new(), 10, 7);
    assert_eq!(evaluate(&rules, &loss), Some(100_009));
    let sink_loss = frame_json(
        &docker_listener::sink::loss_frame(
            &docker_listener::encode::Encoder::new(65535, false, Default::default()),
            "output_buffer_full",
            1,
            1,
        )
        .to_vec(),
    );
    assert_eq!(evaluate(&rules, &sink_loss), Some(100_009));
    // Docker's own events stay with Wazuh's rules.
    let docker_event =
        json!({"integration": "docker", "docker": {"status": "start", "Type": "container", "Action": "start"}});
    assert_eq!(evaluate(&rules, &docker_event), Some(87_900));
}
