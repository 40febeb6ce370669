//! Secrets redacted from command lines (`redact`), on by default: in our events' `process.args`
//! (and so `process.command_line`), the start-up inventory's, and the `Action` (and legacy
//! `status`) of Docker's `exec_create`/`exec_start` events. A Docker event is copied only when a
//! pattern matches; every other one stays byte for byte as Docker sent it.
//!
//! Built-in patterns (docs/EVENTS.md, "Secrets"), each replacing only the secret with
//! [`MARK`]:
//! - `-pSECRET` for MySQL-style clients (`mysql`, `mysqldump`, `mysqladmin`, `mariadb`, ...);
//! - `--password=X`, `--password X` and the same for `--passwd`, `--pass`, `--token`,
//!   `--secret`, `--api-key`, `--apikey`, `--access-token`, `--auth-token`, `--client-secret`;
//! - assignments to names containing `PASSWORD`/`PASSWD`, or `SECRET`/`TOKEN` after `_` or as the
//!   name's first word (`DB_PASSWORD=x`, `AWS_SECRET_ACCESS_KEY=x`, `GITHUB_TOKEN=x`,
//!   `SECRET_KEY=x`; not `TOKENIZER=x`);
//! - `Authorization: Bearer X` (and `Basic`, `Token`);
//! - `scheme://user:SECRET@host`.
//!
//! User patterns (`redact.patterns`) are regular expressions whose first capture group is the
//! secret.
use std::{borrow::Cow, sync::OnceLock};

use regex::{Regex, RegexSet};

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";

const MYSQL_CLIENTS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlshow",
    "mysqlcheck",
    "mysqlpump",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
];

/// Options whose value is a secret, as `--NAME=X` or `--NAME X`.
const SECRET_OPTIONS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "token",
    "secret",
    "api-key",
    "apikey",
    "access-token",
    "auth-token",
    "client-secret",
];

/// The built-in text patterns; the first capture group is the secret.
fn builtin() -> Vec<String> {
    let value = r#"('[^']*'|"[^"]*"|[^\s'";&|]+)"#;
    vec![
        format!(r"\b(?i:{})\b[^;&|\n]*?\s-p{value}", MYSQL_CLIENTS.join("|")),
        format!(r"(?i)--(?:{})[= ]{value}", SECRET_OPTIONS.join("|")),
        format!(
            r"(?i)\b(?:[A-Z0-9_]*PASS(?:WORD|WD)[A-Z0-9_]*|[A-Z0-9_]*_(?:SECRET|TOKEN)[A-Z0-9_]*|(?:SECRET|TOKEN)(?:_[A-Z0-9_]*)?)={value}"
        ),
        r#"(?i)\bauthorization:\s*(?:bearer|basic|token)\s+([^\s'";]+)"#.to_owned(),
        r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:([^@\s/]+)@".to_owned(),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("not a regular expression: {0}")]
    Syntax(String),
    #[error("has no capture group: put the secret in one, e.g. `--db-key=(\\S+)`")]
    NoGroup,
}

#[derive(Debug)]
pub struct Redactor {
    set: RegexSet,
    patterns: Vec<Regex>,
    /// Whether there are user patterns, which `may_hold_builtin` knows nothing of.
    user: bool,
}

/// Whether `text` may hold a secret of the built-in patterns, from what each needs: `-p`
/// (MySQL clients), `--` (secret options), `=` (assignments), `://` with `@` (a URL's
/// password) or `authorization:` in any case (a header; any non-ASCII text is left to the
/// patterns, whose case folding is Unicode's). Most arguments have none of them (`/bin/true`,
/// a path, a word, `-c`, `name-1`), and skipping the patterns for them saves a
/// regular-expression scan per argument of every exec.
fn may_hold_builtin(text: &str) -> bool {
    let b = text.as_bytes();
    if memchr::memchr3(b'-', b'=', b':', b).is_none() {
        return false;
    }
    let has = |needle: &[u8]| memchr::memmem::find(b, needle).is_some();
    has(b"-p")
        || has(b"--")
        || memchr::memchr(b'=', b).is_some()
        || (has(b"://") && memchr::memchr(b'@', b).is_some())
        || (memchr::memchr(b':', b).is_some()
            && (!text.is_ascii() || b.windows(14).any(|w| w.eq_ignore_ascii_case(b"authorization:"))))
}

impl Redactor {
    /// The built-in patterns and `user` ones.
    pub fn new(user: &[String]) -> Result<Redactor, (usize, PatternError)> {
        for (i, p) in user.iter().enumerate() {
            check(p).map_err(|e| (i, e))?;
        }
        let all: Vec<String> = builtin().into_iter().chain(user.iter().cloned()).collect();
        // The built-in ones are tested; a user one was checked above.
        let patterns = all
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (0, PatternError::Syntax(e.to_string())))?;
        let set = RegexSet::new(&all).map_err(|e| (0, PatternError::Syntax(e.to_string())))?;
        Ok(Redactor { set, patterns, user: !user.is_empty() })
    }

    /// `text` with every secret the patterns find replaced; borrowed when there is none.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.user && !may_hold_builtin(text) {
            return Cow::Borrowed(text);
        }
        let hits = self.set.matches(text);
        if !hits.matched_any() {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        for i in hits.iter() {
            out = replace_group(&self.patterns[i], &out);
        }
        Cow::Owned(out)
    }

    /// Redacts an argv in place; whether anything was replaced. Besides the text patterns
    /// (within each argument), an argument that follows a secret option (`--password X`) and a
    /// MySQL client's `-pX` are secrets.
    pub fn args(&self, args: &mut [String]) -> bool {
        let mut changed = false;
        let mysql = args.first().is_some_and(|a| MYSQL_CLIENTS.contains(&crate::procs::basename(a)));
        let mut next_is_secret = false;
        for a in args.iter_mut() {
            if next_is_secret && a.as_str() != MARK {
                *a = MARK.to_owned();
                changed = true;
                next_is_secret = false;
                continue;
            }
            next_is_secret =
                a.strip_prefix("--").is_some_and(|o| SECRET_OPTIONS.iter().any(|s| o.eq_ignore_ascii_case(s)));
            if mysql && a.len() > 2 && a.starts_with("-p") && &a[2..] != MARK {
                *a = format!("-p{MARK}");
                changed = true;
                continue;
            }
            if let Cow::Owned(r) = self.text(a)
                && r != *a
            {
                *a = r;
                changed = true;
            }
        }
        changed
    }
}

/// A user pattern: compiles, and has a group for the secret.
pub fn check(pattern: &str) -> Result<(), PatternError> {
    let re = Regex::new(pattern).map_err(|e| PatternError::Syntax(e.to_string()))?;
    if re.captures_len() < 2 {
        return Err(PatternError::NoGroup);
    }
    Ok(())
}

/// Every match of `re` with its first group replaced by [`MARK`].
fn replace_group(re: &Regex, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(g) = caps.get(1) else { continue };
        if g.as_str() == MARK {
            continue;
        }
        out.push_str(&text[last..g.start()]);
        out.push_str(MARK);
        last = g.end();
    }
    out.push_str(&text[last..]);
    out
}

static CURRENT: OnceLock<Option<Redactor>> = OnceLock::new();

/// Sets the redactor of this process (`None`: redaction off). Before the first event; later
/// calls are ignored.
pub fn install(r: Option<Redactor>) {
    let _ = CURRENT.set(r);
}

/// This process's redactor: the built-in patterns unless `install` said otherwise.
pub fn current() -> Option<&'static Redactor> {
    CURRENT.get_or_init(|| Redactor::new(&[]).ok()).as_ref()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy as _;

    use super::*;

    fn argv(a: &[&str]) -> (Vec<String>, bool) {
        let r = Redactor::new(&[]).unwrap();
        let mut v: Vec<String> = a.iter().map(|s| (*s).to_owned()).collect();
        let changed = r.args(&mut v);
        (v, changed)
    }

    #[test]
    fn the_documented_secrets_are_replaced_and_nothing_else() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["mysql", "-uroot", "-phunter2", "shop"], &["mysql", "-uroot", "-p[REDACTED]", "shop"]),
            (&["/usr/bin/mysqldump", "-psecret"], &["/usr/bin/mysqldump", "-p[REDACTED]"]),
            (&["psql", "--password=hunter2"], &["psql", "--password=[REDACTED]"]),
            (&["app", "--password", "hunter2", "--port", "5"], &["app", "--password", "[REDACTED]", "--port", "5"]),
            (&["gh", "--token", "ghp_x"], &["gh", "--token", "[REDACTED]"]),
            (&["env", "DB_PASSWORD=hunter2", "run"], &["env", "DB_PASSWORD=[REDACTED]", "run"]),
            (
                &["env", "AWS_SECRET_ACCESS_KEY=abc", "GITHUB_TOKEN=t"],
                &["env", "AWS_SECRET_ACCESS_KEY=[REDACTED]", "GITHUB_TOKEN=[REDACTED]"],
            ),
            (
                &["curl", "-H", "Authorization: Bearer eyJhbGci", "https://api"],
                &["curl", "-H", "Authorization: Bearer [REDACTED]", "https://api"],
            ),
            (
                &["git", "clone", "https://bob:s3cret@git.example.com/r"],
                &["git", "clone", "https://bob:[REDACTED]@git.example.com/r"],
            ),
            (
                &["sh", "-c", "mysql -u root -phunter2 -e 'select 1' && DB_PASSWORD='a b' run --token=xyz"],
                &[
                    "sh",
                    "-c",
                    "mysql -u root -p[REDACTED] -e 'select 1' && DB_PASSWORD=[REDACTED] run --token=[REDACTED]",
                ],
            ),
            (
                &["sh", "-c", "curl -H 'Authorization: Bearer abc.def' http://x"],
                &["sh", "-c", "curl -H 'Authorization: Bearer [REDACTED]' http://x"],
            ),
        ];
        for (input, want) in cases {
            let (got, changed) = argv(input);
            assert_eq!(got, *want, "{input:?}");
            assert!(changed, "{input:?}");
        }
        for plain in [
            &["ls", "-p", "/tmp"][..],
            &["grep", "-p", "x"],
            &["nc", "-p", "8080"],
            &["ssh", "-p", "22", "host"],
            &["curl", "https://example.com/path"],
            &["echo", "tokenizer=fast"],
            &["sh", "-c", "cat /etc/passwd"],
        ] {
            let (got, changed) = argv(plain);
            assert!(!changed, "{plain:?} -> {got:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, max_global_rejects: 1 << 16, ..Default::default() })]
        /// `may_hold_builtin` is sound: a text it passes over matches no built-in pattern,
        /// however it mixes the patterns' words and characters, quotes, spaces and `@`.
        #[test]
        fn text_the_shortcut_skips_matches_no_built_in_pattern(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "mysql", "MySQL", "password", "PASSWORD", "DB_PASSWORD", "secret", "_TOKEN", "token",
                        "authorization", "Authorization:", "AUTHORIZATION:", "authorization :", "Bearer", "basic",
                        "https", "https:/", "://", "https://user:", "pw@", "user", "@", "//", " ", "\t", "\n", "'", "\"", "-", "-P", "- p",
                        "--", "-p", ":", "=", "p", "P", "x", "hunter2", "mysql -p", "--password ", "--token", "authorization: bearer ",
                        "Authorization: Basic ",
                    ]).prop_map(str::to_owned),
                    "[^=]{0,8}",
                ],
                0..12,
            )
        ) {
            let text: String = words.concat();
            proptest::prop_assume!(!may_hold_builtin(&text));
            static SET: std::sync::LazyLock<RegexSet> = std::sync::LazyLock::new(|| RegexSet::new(builtin()).unwrap());
            proptest::prop_assert!(!SET.is_match(&text), "{text:?}");
        }
    }

    #[test]
    fn the_shortcut_skips_common_arguments_and_keeps_every_documented_secret() {
        for plain in ["/bin/true", "-c", "-l", "name-1", "mark-4021-3", "/usr/lib/x86_64-linux-gnu", "10:30", "a:b:c"] {
            assert!(!may_hold_builtin(plain), "{plain:?}");
        }
        for secret in [
            "mysql -phunter2",
            "--password=x",
            "DB_PASSWORD=y",
            "Authorization: Bearer abc",
            "AUTHORIZATION: basic abc",
            "https://u:p@host",
            "authorizaTİon: x",
        ] {
            assert!(may_hold_builtin(secret), "{secret:?}");
        }
    }

    #[test]
    fn the_shortcut_needs_no_user_pattern() {
        // A user pattern may need none of the built-in patterns' characters.
        let r = Redactor::new(&["key (\\w+)".into()]).unwrap();
        assert_eq!(r.text("key abc"), "key [REDACTED]");
        assert_eq!(Redactor::new(&[]).unwrap().text("key abc"), Cow::Borrowed("key abc"));
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let (once, _) = argv(&["mysql", "-phunter2", "--password", "x", "DB_PASSWORD=y"]);
        let r = Redactor::new(&[]).unwrap();
        let mut twice = once.clone();
        assert!(!r.args(&mut twice), "{twice:?}");
        assert_eq!(once, twice);
    }

    #[test]
    fn user_patterns_need_a_group_and_add_to_the_built_in_ones() {
        assert!(matches!(Redactor::new(&["--db-key=\\S+".into()]), Err((0, PatternError::NoGroup))));
        assert!(matches!(Redactor::new(&["(".into()]), Err((0, PatternError::Syntax(_)))));
        let r = Redactor::new(&["--db-key=(\\S+)".into()]).unwrap();
        assert_eq!(r.text("run --db-key=abc --password=x"), "run --db-key=[REDACTED] --password=[REDACTED]");
        assert_eq!(r.text("nothing here"), Cow::Borrowed("nothing here"));
    }
}
