//! The shipped Wazuh rules (rules/docker_listener_rules.xml), evaluated the way wazuh-analysisd
//! walks its rule tree (from Wazuh's 87900, first matching child, deeper while a child matches),
//! with the same patterns.
use regex::Regex;
use serde_json::{Map, Value};

pub struct Rule {
    id: u32,
    /// `<if_sid>`: one rule id or several, comma-separated (a child of each).
    parents: Vec<u32>,
    fields: Vec<(String, Regex)>,
    /// `<list field=".." lookup="match_key">etc/lists/NAME</list>`: the field's value is a key
    /// of the CDB list, read from its source shipped as rules/lists/NAME.
    lists: Vec<(String, std::collections::HashSet<String>)>,
}

/// A CDB list's keys, from its source ("key:value" lines; a quoted key may hold ':').
fn cdb_keys(name: &str) -> std::collections::HashSet<String> {
    let path = format!("{}/../rules/lists/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.strip_prefix('"') {
            Some(rest) => rest.split_once('"').expect("a closing quote").0.to_owned(),
            None => l.split_once(':').map_or(l, |(k, _)| k).to_owned(),
        })
        .collect()
}

pub fn load_rules() -> Vec<Rule> {
    let xml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/docker_listener_rules.xml")).unwrap();
    // Well-formed for XML tools too (Wazuh's own parser is lenient): no `--` inside a comment.
    for c in Regex::new(r"(?s)<!--(.*?)-->").unwrap().captures_iter(&xml) {
        assert!(!c[1].contains("--"), "'--' inside an XML comment of the rules: {}", &c[1]);
    }
    let rule_re = Regex::new(r#"(?s)<rule id="(\d+)" level="(\d+)">(.*?)</rule>"#).unwrap();
    let sid_re = Regex::new(r"<if_sid>(\d+(?:, *\d+)*)</if_sid>").unwrap();
    let field_re = Regex::new(r#"<field name="([^"]+)"(?: type="(pcre2|osregex)")?>([^<]*)</field>"#).unwrap();
    let list_re = Regex::new(r#"<list field="([^"]+)" lookup="match_key">etc/lists/([^<]+)</list>"#).unwrap();
    let rules: Vec<Rule> = rule_re
        .captures_iter(&xml)
        .map(|c| {
            let body = &c[3];
            Rule {
                id: c[1].parse().unwrap(),
                parents: sid_re.captures(body).expect("every rule has an if_sid")[1]
                    .split(',')
                    .map(|id| id.trim().parse().unwrap())
                    .collect(),
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
                lists: list_re.captures_iter(body).map(|l| (l[1].to_owned(), cdb_keys(&l[2]))).collect(),
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
        let lists = rules.iter().find(|r| r.id.to_string() == id).map_or(0, |r| r.lists.len());
        assert_eq!(body.matches("<list").count(), lists, "rule {id}: a <list> the loader did not parse");
        for tag in ["<match", "<regex", "<if_group", "<if_matched", "<same_", "<different_", "negate="] {
            assert!(!body.contains(tag), "rule {id} uses {tag}, which this evaluator does not model");
        }
    }
    assert!(rules.len() >= 10);
    assert!(rules.iter().all(|r| (100_000..100_100).contains(&r.id)));
    rules
}

/// Wazuh's JSON decoder: nested keys joined with '.', scalars as text (arrays are not matched).
pub fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
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
pub fn evaluate(rules: &[Rule], event: &Value) -> Option<u32> {
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
    while let Some(child) = rules.iter().find(|r| {
        r.parents.contains(&current)
            && r.fields.iter().all(|(name, re)| text(name).is_some_and(|t| re.is_match(&t)))
            && r.lists.iter().all(|(name, keys)| text(name).is_some_and(|t| keys.contains(&t)))
    }) {
        current = child.id;
    }
    Some(current)
}
