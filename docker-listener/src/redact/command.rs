//! Which words of a command line name a command, for the secrets that only a tool's own options
//! hold (MySQL's `-pX`, curl's `-u USER:X`, sshpass's `-p X`, OpenSSL's `-k X`): read after the
//! tool named as a command (`mysql -pX`, `sudo mysql -pX`, `sh -c "timeout 5 mysql -pX"`), not
//! after an argument that only has a tool's name. Otherwise `curl -o /tmp/openssl -k
//! https://evil/x` would hide the URL it fetches: a place to hide for whoever picks the names.
//!
//! Where a command is named ([`Commands`]): the first word of a command that is not an assignment
//! (`A=1 mysql`); after a launcher (`sudo`, `env`, `timeout`, find's `-exec`, ...), any word up to
//! the first tool, since a launcher's options and their values are not told apart from its
//! command here (`sudo -u bob mysql`, `timeout -s 9 5 mysql`). So a launcher's own event may
//! still take an argument named like a tool for the command (`sudo wget -O /tmp/openssl -k X`),
//! but the command it runs has its own event, where the tool is what it is.
use crate::procs::basename;

/// A command whose options hold secrets that other commands' options of the same spelling do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tool {
    /// MySQL's and MariaDB's clients: `-pX`.
    Mysql,
    /// `-u USER:X`, `--user USER:X`, `-U`, `--proxy-user`.
    Curl,
    /// `-p X`, `-pX`.
    Sshpass,
    /// `-k X`, `-passin pass:X`.
    Openssl,
}

pub(super) const MYSQL_CLIENTS: &[&str] = &[
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

/// The tool a command's name (its path's last part) is, in any ASCII case.
pub(super) fn tool(name: &str) -> Option<Tool> {
    if MYSQL_CLIENTS.iter().any(|c| c.eq_ignore_ascii_case(name)) {
        Some(Tool::Mysql)
    } else if name.eq_ignore_ascii_case("curl") {
        Some(Tool::Curl)
    } else if name.eq_ignore_ascii_case("sshpass") {
        Some(Tool::Sshpass)
    } else if name.eq_ignore_ascii_case("openssl") {
        Some(Tool::Openssl)
    } else {
        None
    }
}

/// The tool a word of a text names: its path's last part, or a variable named like a tool
/// (`$MYSQL -pX`, `"${MYSQL}" -pX`: what it holds is not known here, its name says what it is
/// meant to be).
fn word_tool(word: &str) -> Option<Tool> {
    match word.strip_prefix('$') {
        Some(var) => tool(var.trim_start_matches('{').trim_end_matches('}')),
        None => tool(basename(word)),
    }
}

/// Commands that run a command named in their arguments, the shell's words a command follows,
/// and the start of Docker's `exec_create`/`exec_start` `Action` (`exec_create: mysql -pX`).
const LAUNCHERS: &[&str] = &[
    "sudo",
    "doas",
    "su-exec",
    "gosu",
    "runuser",
    "setpriv",
    "chpst",
    "s6-setuidgid",
    "env",
    "nice",
    "ionice",
    "nohup",
    "setsid",
    "stdbuf",
    "timeout",
    "time",
    "taskset",
    "chrt",
    "prlimit",
    "numactl",
    "flock",
    "watch",
    "chroot",
    "unshare",
    "nsenter",
    "xargs",
    "parallel",
    "strace",
    "ltrace",
    "busybox",
    "tini",
    "dumb-init",
    "catatonit",
    "ssh",
    "docker",
    "podman",
    "nerdctl",
    "kubectl",
    "crictl",
    "ctr",
    "exec",
    "command",
    "builtin",
    "then",
    "do",
    "else",
    "if",
    "elif",
    "while",
    "until",
    "!",
    "{",
    "exec_create:",
    "exec_start:",
];

/// find's options whose next argument is a command.
const FIND_EXEC: &[&str] = &["-exec", "-execdir", "-ok", "-okdir"];

/// `NAME=value`, a shell variable's assignment.
fn assignment(w: &str) -> bool {
    let Some((name, _)) = w.split_once('=') else { return false };
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Reads the words of one command, in order, telling which are where a command is named.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Commands {
    /// The command was named: the words now are its arguments.
    named: bool,
    /// A launcher was read: each word may be the command, until a tool.
    launched: bool,
    /// The command named is find.
    find: bool,
}

impl Commands {
    /// Whether `w` is where a command is named, reading it.
    pub(super) fn word(&mut self, w: &str) -> bool {
        if self.named {
            if self.find && FIND_EXEC.contains(&w) {
                *self = Commands::default();
            }
            return false;
        }
        let name = basename(w);
        if assignment(w) {
        } else if LAUNCHERS.contains(&name) {
            self.launched = true;
        } else if name == "find" {
            *self = Commands { named: true, launched: false, find: true };
        } else if tool(name).is_some() || !self.launched {
            *self = Commands { named: true, launched: false, find: false };
        }
        true
    }
}

/// How a quoted script's text ends (`sh -c "..."`, `sh -c '...'`, and `\"...\"` in a script
/// in double quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Single,
    Double,
    /// `\"`.
    Escaped,
}

impl Close {
    fn len(self) -> usize {
        if self == Close::Escaped { 2 } else { 1 }
    }
}

/// How deep scripts in quotes are followed (`sh -c "sudo sh -c 'mysql -pX'"` is two).
const DEPTH: usize = 4;

/// Reads a text as a shell command line, once from its start, to tell whether the word at a
/// position asked is where a command is named ([`Commands`]); the positions asked never go
/// back. Words end at spaces; `;`, `&`, `|`, `(`, `` ` `` and a line's end start a command. A
/// quoted text with a space in it that starts a word is a script (`su -c "mysql -pX"`): its
/// words are a command line of their own, and the outer one goes on after it; other quotes and
/// backslash escapes are part of their word (`'/tmp/openssl'`).
#[derive(Debug, Default)]
pub(super) struct Reader {
    i: usize,
    commands: Commands,
    /// The scripts in quotes the reader is in: how each ends, and the command line around it.
    scripts: Vec<(Close, Commands)>,
    /// The last word read: where it starts and ends, whether a command was named there, and
    /// the tool its path's last part is.
    last: Option<(usize, usize, bool, Option<Tool>)>,
    /// A redirection was read (`<`, `>`): the next word is its file, not a command's word.
    redirect: bool,
}

impl Reader {
    /// Whether a word of `t` that has bytes in `from..to` names `tool` as a command (the regex
    /// found `tool`'s name at `from` and its option at `to`: a word between may name it too,
    /// `echo mysql $(mysql -pX)`). Reads on to `to`.
    pub(super) fn names(&mut self, t: &[u8], from: usize, to: usize, tool: Tool) -> bool {
        loop {
            if let Some((start, end, named, found)) = self.last
                && end > from
                && start < to
                && named
                && found == Some(tool)
            {
                return true;
            }
            if self.i >= to || self.i >= t.len() {
                return false;
            }
            self.next_word(t);
        }
    }

    /// Reads on to the end of the next word (`last`), or of what is between words.
    fn next_word(&mut self, t: &[u8]) {
        let n = t.len();
        let c = t[self.i];
        let close = self.scripts.last().map(|s| s.0);
        // The end of the script in quotes the reader is in.
        if let Some(k) = close
            && self.closes(t, k)
        {
            self.i += k.len();
            if let Some((_, outer)) = self.scripts.pop() {
                self.commands = outer;
            }
            return;
        }
        if c.is_ascii_whitespace() || matches!(c, b';' | b'&' | b'|' | b'(' | b')' | b'`' | b'<' | b'>') {
            let duplicated = c == b'&' && self.i > 0 && matches!(t[self.i - 1], b'<' | b'>');
            if (c == b'\n' || matches!(c, b';' | b'&' | b'|' | b'(' | b'`')) && !duplicated {
                self.commands = Commands::default();
            }
            // `> file`, `2>&1`: the file (or descriptor) is the next word.
            self.redirect =
                matches!(c, b'<' | b'>') || duplicated || (self.redirect && c != b'\n' && c.is_ascii_whitespace());
            self.i += 1;
            return;
        }
        // A script in quotes opening here.
        if self.scripts.len() < DEPTH
            && let Some((k, open)) = self.opens(t, close)
            && let Some(end) = self.find_close(t, self.i + open, k)
            && t[self.i + open..end].iter().any(u8::is_ascii_whitespace)
        {
            let outer = self.commands;
            let mut outer_after = outer;
            // The script is a word of the command line around it (`sh -c "..."`).
            outer_after.word("");
            self.scripts.push((k, outer_after));
            self.commands = Commands::default();
            self.i += open;
            return;
        }
        let from = self.i;
        let mut i = self.i;
        let mut word = Vec::new();
        while i < n {
            let c = t[i];
            if c.is_ascii_whitespace() || matches!(c, b';' | b'&' | b'|' | b'(' | b')' | b'`' | b'<' | b'>') {
                break;
            }
            if let Some(k) = close
                && closes_at(t, i, k)
            {
                break;
            }
            match c {
                b'\\' if close == Some(Close::Double) && t.get(i + 1) == Some(&b'"') => {
                    // `\"...\"` in a script in double quotes: a quoted part of the word.
                    let to = memchr::memmem::find(&t[(i + 2).min(n)..], b"\\\"").map_or(n, |k| i + 2 + k);
                    word.extend_from_slice(&t[(i + 2).min(to)..to]);
                    i = to + 2;
                }
                b'\\' => {
                    if let Some(&e) = t.get(i + 1) {
                        word.push(e);
                    }
                    i += 2;
                }
                b'\'' | b'"' if close.is_none() || (close == Some(Close::Escaped)) => {
                    // A quoted part of the word, to its close.
                    let to = memchr::memchr(c, &t[i + 1..]).map_or(n, |k| i + 1 + k);
                    word.extend_from_slice(&t[i + 1..to]);
                    i = to + 1;
                }
                b'\'' | b'"' => i += 1,
                _ => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        let i = i.min(n).max(from + 1);
        let word = String::from_utf8_lossy(&word);
        let named = !std::mem::take(&mut self.redirect) && self.commands.word(&word);
        (self.i, self.last) = (i, Some((from, i, named, word_tool(&word))));
    }

    /// Whether the script in quotes that ends with `k` closes at the reader's position.
    fn closes(&self, t: &[u8], k: Close) -> bool {
        closes_at(t, self.i, k)
    }

    /// The script quote opening at the reader's position, and its length: `'`, `"`, `$'` out of
    /// quotes; in a script in double quotes, `'` and `\"`; in one in single quotes, `"`.
    fn opens(&self, t: &[u8], close: Option<Close>) -> Option<(Close, usize)> {
        let c = t[self.i];
        match (close, c) {
            (None, b'\'') => Some((Close::Single, 1)),
            (None, b'"') => Some((Close::Double, 1)),
            (None, b'$') if t.get(self.i + 1) == Some(&b'\'') => Some((Close::Single, 2)),
            (Some(Close::Double), b'\\') if t.get(self.i + 1) == Some(&b'"') => Some((Close::Escaped, 2)),
            (Some(Close::Double | Close::Escaped), b'\'') => Some((Close::Single, 1)),
            (Some(Close::Single), b'"') => Some((Close::Double, 1)),
            _ => None,
        }
    }

    /// Where the script in quotes whose text starts at `from` closes.
    fn find_close(&self, t: &[u8], from: usize, k: Close) -> Option<usize> {
        match k {
            Close::Single => memchr::memchr(b'\'', &t[from..]).map(|j| from + j),
            Close::Escaped => memchr::memmem::find(&t[from..], b"\\\"").map(|j| from + j),
            Close::Double => {
                let mut i = from;
                while i < t.len() {
                    match t[i] {
                        b'\\' => i += 2,
                        b'"' => return Some(i),
                        _ => i += 1,
                    }
                }
                None
            }
        }
    }
}

/// Whether a script in quotes that ends with `k` closes at `i`.
fn closes_at(t: &[u8], i: usize, k: Close) -> bool {
    match k {
        Close::Single => t[i] == b'\'',
        Close::Double => t[i] == b'"',
        Close::Escaped => t[i] == b'\\' && t.get(i + 1) == Some(&b'"'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of an argv where a command is named.
    fn named(argv: &[&str]) -> Vec<String> {
        let mut c = Commands::default();
        argv.iter().filter(|w| c.word(w)).map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn a_command_is_named_first_after_assignments_and_anywhere_after_a_launcher_up_to_a_tool() {
        assert_eq!(named(&["curl", "-o", "/tmp/openssl", "-k", "https://x"]), ["curl"]);
        assert_eq!(named(&["A=1", "mysql", "-px"]), ["A=1", "mysql"]);
        assert_eq!(named(&["sudo", "-u", "bob", "mysql", "-px", "openssl"]), ["sudo", "-u", "bob", "mysql"]);
        assert_eq!(named(&["timeout", "5", "curl", "-o", "/tmp/mysql"]), ["timeout", "5", "curl"]);
        assert_eq!(named(&["find", ".", "-exec", "mysql", "-px", ";"]), ["find", "mysql"]);
        assert_eq!(named(&["grep", "-exec", "mysql"]), ["grep"]);
        assert_eq!(
            named(&["/usr/bin/env", "X=1", "/usr/bin/sshpass", "-p"]),
            ["/usr/bin/env", "X=1", "/usr/bin/sshpass"]
        );
    }

    /// Whether a word from the text's first `name` to its `-p` names it as a command.
    fn command(text: &str, name: &str) -> bool {
        let at = text.to_ascii_lowercase().find(name).unwrap();
        let to = text.rfind("-p").unwrap_or(text.len());
        Reader::default().names(text.as_bytes(), at, to, tool(name).unwrap())
    }

    #[test]
    fn in_a_text_a_command_is_named_at_a_command_line_start_and_in_a_script_in_quotes() {
        for text in [
            "mysql -px",
            "/usr/bin/mysql -px",
            "cd /x && mysql -px",
            "true;mysql -px",
            "A=1 B='a b' mysql -px",
            "sudo -u bob mysql -px",
            "exec_create: env mysql -px",
            r#"su -c "mysql -px" root"#,
            "sh -c 'timeout 5 mysql -px'",
            r#"bash -c "sudo sh -c \"mysql -px\"""#,
            r#"sh -c "echo 'a b' | mysql -px""#,
            "if true; then mysql -px; fi",
            "x=$(mysql -px)",
            "'/usr/bin/mysql' -px",
            "echo mysql $(mysql -px)",
            "$MYSQL -px",
            r#"cd /; "${MYSQL}" -px"#,
            "</dev/null mysql -px",
            "< /dev/null mysql -px",
            "cat > /tmp/x; mysql -px",
            "true 2>&1 >/dev/null; mysql -px",
            r#"bash -c "echo \"a b\" && mysql -px""#,
        ] {
            assert!(command(text, "mysql"), "{text:?}");
        }
        for text in [
            "curl -o /tmp/mysql -px",
            "curl -o '/tmp/mysql' -px",
            r#"sh -c "curl -o /tmp/mysql -px""#,
            "echo mysql",
            "my-mysql -px",
            "mysql-x -px",
            "curl -o 'a b' /tmp/mysql -px",
            "sh -c 'curl x' mysql -px",
            "curl -o /tmp/x 2>&1 /tmp/mysql -px",
            r#"bash -c "curl \"-o\" /tmp/mysql -px""#,
        ] {
            assert!(!command(text, "mysql"), "{text:?}");
        }
    }

    #[test]
    fn the_positions_asked_go_forward_and_each_word_is_read_once() {
        let t = "curl -o /tmp/openssl -k x; openssl enc -k y";
        let mut r = Reader::default();
        let first = t.find("openssl").unwrap();
        let second = t.rfind("openssl").unwrap();
        assert!(!r.names(t.as_bytes(), first, first + 11, Tool::Openssl));
        assert!(r.names(t.as_bytes(), second, second + 11, Tool::Openssl));
        // A long text of words named like tools is read in linear time.
        let long = "x /mysql ".repeat(1 << 16);
        let mut r = Reader::default();
        let start = std::time::Instant::now();
        for (at, _) in long.match_indices("mysql") {
            assert!(!r.names(long.as_bytes(), at, at + 6, Tool::Mysql));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
