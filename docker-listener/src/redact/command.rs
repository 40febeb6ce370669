//! Which words of a command line name a command, for the secrets that only a tool's own options
//! hold (MySQL's `-pX`, curl's `-u USER:X`, sshpass's `-p X`, OpenSSL's `-k X`): read after the
//! tool named as a command (`mysql -pX`, `sudo mysql -pX`, `sh -c "timeout 5 mysql -pX"`), not
//! after an argument that only has a tool's name. Otherwise `curl -o /tmp/openssl -k
//! https://evil/x` would hide the URL it fetches: a place to hide for whoever picks the names.
//!
//! Where a command is named ([`Commands`]): the first word of a command that is not an assignment
//! or a shell word (`A=1 mysql`, `if mysql`); after a launcher (`sudo`, `env`, `timeout`,
//! `docker exec`, find's `-exec`, ... [`LAUNCHERS`]), the first word after its options, their
//! values and its positionals (`sudo -u bob mysql`, `timeout -s 9 5 mysql`); after a shell or a
//! shell script, any word up to a tool (`docker-entrypoint.sh mysqld mysql -pX`). A launcher
//! option this table does not know to take a value has its value taken for the command (a
//! secret left in that launcher's own event; the command it runs has its own, where the tool is
//! what it is), and a script's own event may take an argument named like a tool for the command.
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

/// A command that runs a command named in its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Launcher {
    name: &'static str,
    /// Its arguments before the command that are not options (`timeout 5`, `chroot /root`, `ssh
    /// host`, `docker exec c`).
    positionals: u8,
    /// Its options whose value is the next argument (`sudo -u bob`); others are flags.
    valued: &'static [&'static str],
    /// Any of its arguments may be the command, up to a tool: shells and shell scripts
    /// (`docker-entrypoint.sh mysql -pX`, `sh -c 'exec "$@"' sh mysql -pX`).
    generous: bool,
}

const fn strict(name: &'static str, positionals: u8, valued: &'static [&'static str]) -> Launcher {
    Launcher { name, positionals, valued, generous: false }
}

const fn generous(name: &'static str, valued: &'static [&'static str]) -> Launcher {
    Launcher { name, positionals: 0, valued, generous: true }
}

/// `docker exec`'s and `docker run`'s options that take a value (and the client's own).
const DOCKER_VALUED: &[&str] = &[
    "-e",
    "--env",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--env-file",
    "--detach-keys",
    "-H",
    "--host",
    "--context",
    "--name",
    "-v",
    "--volume",
    "--mount",
    "--network",
    "--net",
    "-p",
    "--publish",
    "--link",
    "--entrypoint",
    "-h",
    "--hostname",
    "-l",
    "--label",
    "-m",
    "--memory",
    "--cpus",
    "--restart",
    "--add-host",
    "--cap-add",
    "--cap-drop",
    "--device",
    "--dns",
    "--ulimit",
    "--pid",
    "--ipc",
    "--platform",
    "--security-opt",
    "--tmpfs",
    "--pod",
    "--log-driver",
    "--log-opt",
    "--pull",
    "--runtime",
    "--shm-size",
    "--stop-signal",
    "--volumes-from",
    "-c",
    "--cpu-shares",
    "--group-add",
    "--init-path",
    "--label-file",
    "--mac-address",
    "--ip",
    "--userns",
    "--uts",
];

const SHELL_VALUED: &[&str] = &["-o", "+o", "-O", "+O", "--rcfile", "--init-file"];

/// The launchers: commands that run the command named in their arguments, the shell's words a
/// command follows, and the start of Docker's `exec_create`/`exec_start` `Action`
/// (`exec_create: mysql -pX`). After a strict one, its options (and the values of those that
/// take one) and its positionals, the next word is the command: `exec_create: wget -O
/// /tmp/openssl -k URL` names wget, and `/tmp/openssl` is its argument.
const LAUNCHERS: &[Launcher] = &[
    strict(
        "sudo",
        0,
        &[
            "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U", "--user", "--group", "--chdir", "--host",
            "--prompt",
        ],
    ),
    strict("doas", 0, &["-u", "-C"]),
    strict("su-exec", 1, &[]),
    strict("gosu", 1, &[]),
    strict("s6-setuidgid", 1, &[]),
    strict("runuser", 0, &["-u", "-g", "-G", "--user", "--group"]),
    strict("setpriv", 0, &["--reuid", "--regid", "--groups", "--inh-caps", "--ambient-caps", "--bounding-set"]),
    strict("chpst", 0, &["-u", "-U", "-e", "-/", "-n", "-l", "-L", "-m", "-d", "-o", "-p", "-f", "-c"]),
    strict("env", 0, &["-u", "-C", "--unset", "--chdir"]),
    strict("nice", 0, &["-n", "--adjustment"]),
    strict("ionice", 0, &["-c", "-n", "--class", "--classdata"]),
    strict("nohup", 0, &[]),
    strict("setsid", 0, &[]),
    strict("stdbuf", 0, &["-i", "-o", "-e"]),
    strict("timeout", 1, &["-s", "-k", "--signal", "--kill-after"]),
    strict("time", 0, &["-f", "-o", "--format", "--output"]),
    strict("taskset", 1, &[]),
    strict("chrt", 1, &[]),
    strict("prlimit", 0, &["-p", "--pid"]),
    strict("numactl", 0, &["-C", "-N", "-m", "-i", "-p", "--physcpubind", "--cpunodebind", "--membind"]),
    strict("flock", 1, &["-w", "-E", "--timeout", "--conflict-exit-code"]),
    strict("watch", 0, &["-n", "-d", "--interval"]),
    strict("chroot", 1, &["--userspec", "--groups"]),
    strict("unshare", 0, &[]),
    strict("nsenter", 0, &["-t", "-S", "-G", "--target", "--setuid", "--setgid"]),
    strict("xargs", 0, &["-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--max-args"]),
    strict("parallel", 0, &["-j", "-S", "--jobs"]),
    strict("strace", 0, &["-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X"]),
    strict("ltrace", 0, &["-o", "-e", "-p", "-s", "-u", "-E", "-a", "-n"]),
    strict("busybox", 0, &[]),
    strict("tini", 0, &["-e", "-p"]),
    strict("dumb-init", 0, &["-r", "--rewrite"]),
    strict("catatonit", 0, &[]),
    strict("rlwrap", 0, &["-a", "-f", "-H", "-l", "-p", "-S"]),
    strict("dockerize", 0, &["-wait", "-timeout", "-template", "-stdout", "-stderr"]),
    strict("wait-for-it", 1, &["-h", "-p", "-t", "--host", "--port", "--timeout"]),
    strict("wait-for-it.sh", 1, &["-h", "-p", "-t", "--host", "--port", "--timeout"]),
    strict("wait-for", 1, &["-t", "--timeout"]),
    strict("function", 1, &[]),
    // `su [options] [USER] [-c COMMAND]`: its `-c` is a script, like a shell's.
    strict("su", 1, &["-s", "-g", "-G", "--shell", "--group", "--supp-group", "-w", "--whitelist-environment"]),
    strict(
        "ssh",
        1,
        &[
            "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O", "-o", "-p", "-Q", "-R", "-S",
            "-W", "-w",
        ],
    ),
    // `docker exec [options] CONTAINER COMMAND` (and `run IMAGE`, `compose exec SERVICE`...):
    // the subcommand and what it runs in.
    strict("docker", 2, DOCKER_VALUED),
    strict("podman", 2, DOCKER_VALUED),
    strict("nerdctl", 2, DOCKER_VALUED),
    strict(
        "docker-compose",
        2,
        &["-e", "-u", "--user", "-w", "--workdir", "-f", "--file", "-p", "--project-name", "--index"],
    ),
    strict("podman-compose", 2, &["-e", "-u", "--user", "-w", "--workdir", "-f", "--file", "-p", "--project-name"]),
    strict("kubectl", 2, &["-c", "--container", "-n", "--namespace", "--context", "--kubeconfig"]),
    strict("oc", 2, &["-c", "--container", "-n", "--namespace", "--context", "--kubeconfig"]),
    strict("crictl", 2, &[]),
    strict("ctr", 3, &[]),
    // `ip netns exec NAME COMMAND`, `bundle exec COMMAND`.
    strict("ip", 3, &["-n", "-netns"]),
    strict("bundle", 1, &[]),
    strict("exec", 0, &["-a"]),
    strict("command", 0, &[]),
    strict("builtin", 0, &[]),
    strict("coproc", 0, &[]),
    strict("exec_create:", 0, &[]),
    strict("exec_start:", 0, &[]),
    generous("sh", SHELL_VALUED),
    generous("bash", SHELL_VALUED),
    generous("dash", SHELL_VALUED),
    generous("ash", SHELL_VALUED),
    generous("zsh", SHELL_VALUED),
    generous("ksh", SHELL_VALUED),
    generous("mksh", SHELL_VALUED),
    // sshpass runs its command too; it is also a tool (its own `-p`: [`Commands::sshpass_options`]).
    strict("sshpass", 0, &["-p", "-f", "-d", "-P"]),
];

/// The launcher a command's name is: one of [`LAUNCHERS`], or a shell script, which entrypoints
/// are (`docker-entrypoint.sh mysql ...`: generous).
fn launcher(name: &str) -> Option<Launcher> {
    LAUNCHERS.iter().find(|l| l.name == name).copied().or_else(|| name.ends_with(".sh").then_some(generous("", &[])))
}

const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// find's options whose next argument is a command.
const FIND_EXEC: &[&str] = &["-exec", "-execdir", "-ok", "-okdir"];

/// `NAME=value`, a shell variable's assignment.
fn assignment(w: &str) -> bool {
    let Some((name, _)) = w.split_once('=') else { return false };
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Where a launcher's arguments are.
#[derive(Debug, Clone, Copy)]
struct Launch {
    of: Launcher,
    /// Positionals still to come before the command.
    positionals: u8,
    /// The next word is an option's value.
    value_next: bool,
    /// `--` was read: the next word is the command.
    dashdash: bool,
    /// A word that is not an option was read (sshpass's options are over).
    args: bool,
    /// A shell's `-c` was read in an argv: what follows its script are its parameters.
    script: bool,
}

impl Launch {
    fn of(of: Launcher) -> Launch {
        Launch { of, positionals: of.positionals, value_next: false, dashdash: false, args: false, script: false }
    }
}

/// Reads the words of one command, in order, telling which are where a command is named.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Commands {
    /// The command was named: the words now are its arguments.
    named: bool,
    /// A launcher was read: where its command is.
    launch: Option<Launch>,
    /// The command named is find, or one its `-exec` runs (`;` or `+` ends that: find again).
    find: bool,
    in_find_exec: bool,
    /// The words are an argv's (a shell's `-c` is followed by one argument, its script), not a
    /// text's (in Docker's `Action`, the words after `-c` are the script's).
    argv: bool,
    /// A shell's `-c` was just read in a text ([`Commands::take_script`]).
    script: bool,
}

impl Commands {
    /// For an argv's words.
    pub(super) fn argv() -> Commands {
        Commands { argv: true, ..Commands::default() }
    }

    fn fresh(&self) -> Commands {
        Commands { argv: self.argv, ..Commands::default() }
    }

    /// Whether sshpass was read and its options are being read (its `-p` is a password; after
    /// its command's name, a `-p` is that command's: `sshpass -e scp -p FILE`).
    pub(super) fn sshpass_options(&self) -> bool {
        !self.named && self.launch.is_some_and(|l| l.of.name == "sshpass" && !l.args)
    }

    /// Whether `w` is where a command is named, reading it.
    pub(super) fn word(&mut self, w: &str) -> bool {
        if self.in_find_exec && self.named && matches!(w, ";" | "+" | "\\;") {
            *self = Commands { named: true, find: true, ..self.fresh() };
            return false;
        }
        if self.named {
            if self.find && FIND_EXEC.contains(&w) {
                *self = Commands { in_find_exec: true, ..self.fresh() };
            }
            return false;
        }
        let in_find_exec = self.in_find_exec;
        let name = basename(w);
        let Some(l) = self.launch.as_mut() else {
            // The first word of the command (assignments and the shell's words before it
            // skipped: `if mysql ...`, `! wget ...`, `{ mysql ...; }`).
            if assignment(w) || KEYWORDS.contains(&w) {
            } else if let Some(of) = launcher(name) {
                self.launch = Some(Launch::of(of));
            } else if name == "find" {
                *self = Commands { named: true, find: true, ..self.fresh() };
            } else {
                *self = Commands { named: true, in_find_exec, ..self.fresh() };
            }
            return true;
        };
        if l.value_next {
            // An option's value (`sudo -u mysql`): not a command, whatever its name.
            l.value_next = false;
            if l.script {
                // An argv's shell script (`sh -c SCRIPT`): its parameters may name commands.
                l.of.generous = true;
            }
            return false;
        }
        if !l.dashdash && (w.len() > 1 || (w == "-" && l.of.name == "su")) && w.starts_with('-') {
            if w == "--" {
                (l.dashdash, l.positionals) = (true, 0);
            } else if (SHELLS.contains(&l.of.name) && w.ends_with('c') && !w.starts_with("--"))
                || (l.of.name == "su" && matches!(w, "-c" | "--command"))
            {
                // `sh -c`, `bash -lc`, `su -c`: the script.
                if self.argv {
                    (l.value_next, l.script) = (true, true);
                } else {
                    // In a text (Docker's `Action` joins argv with spaces), the words after it
                    // are the script's: a command line.
                    *self = Commands { in_find_exec, script: true, ..self.fresh() };
                }
            } else {
                l.value_next = !w.contains('=') && takes_value(w, l.of.valued);
            }
            return false;
        }
        l.args = true;
        // `env A=1`, `sudo A=1`; `{`, `!` after `exec_create:`.
        if assignment(w) || KEYWORDS.contains(&w) {
            return true;
        }
        // Positionals first: `docker exec mysql mysql -pX` (a container named mysql), `su
        // mysql -c ...` (a user).
        if l.positionals > 0 && !l.dashdash {
            l.positionals -= 1;
            if matches!(l.of.name, "docker" | "podman" | "nerdctl") && matches!(w, "compose" | "container") {
                // `docker compose exec SERVICE`, `docker container exec CONTAINER`.
                l.positionals += 1;
            }
            return false;
        }
        if tool(name).is_some() && name != "sshpass" {
            *self = Commands { named: true, in_find_exec, ..self.fresh() };
            return true;
        }
        if let Some(of) = launcher(name) {
            self.launch = Some(Launch::of(of));
            return true;
        }
        if l.of.generous {
            return true;
        }
        *self = Commands { named: true, in_find_exec, ..self.fresh() };
        true
    }

    /// Whether a shell's `-c` was read in a text since the last call: what follows is a command
    /// line (in Docker's `Action`, where the words before it are an argv's).
    pub(super) fn take_script(&mut self) -> bool {
        std::mem::take(&mut self.script)
    }
}

/// Shell words a command follows, as an assignment does.
const KEYWORDS: &[&str] = &["if", "then", "do", "else", "elif", "while", "until", "!", "{", "eval"];

/// Whether the option `w` of a launcher whose value-taking options are `valued` takes the next
/// argument: one of them, or flags run together whose last one is (`sudo -Eu bob`), not one
/// with its value attached (`sudo -ubob`).
fn takes_value(w: &str, valued: &[&str]) -> bool {
    if valued.contains(&w) {
        return true;
    }
    let b = w.as_bytes();
    if w.starts_with("--") || b.len() < 3 {
        return false;
    }
    let short = |c: u8| valued.iter().any(|v| v.len() == 2 && v.as_bytes()[1] == c);
    !short(b[1]) && short(b[b.len() - 1])
}

/// How a script the reader is in ends: quotes (`sh -c "..."`, `sh -c '...'`, and `\"...\"` in
/// a script in double quotes), or a `)` (`(cd /x; mysql -pX)`, `$(openssl rand)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Single,
    Double,
    /// `\"`.
    Escaped,
    Paren,
    Tick,
}

impl Close {
    fn len(self) -> usize {
        if self == Close::Escaped { 2 } else { 1 }
    }
}

/// How deep scripts are followed (`sh -c "sudo sh -c 'mysql -pX'"` is two).
const DEPTH: usize = 8;

/// Ends an unquoted word.
fn ends_word(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b';' | b'&' | b'|' | b'(' | b')' | b'`' | b'<' | b'>')
}

/// Reads a text as a shell command line, once from its start, to tell whether a word between two
/// positions asked names a tool as the command that is still being read at the second
/// ([`Commands`]); the positions asked never go back. Words end at spaces; `;`, `&`, `|`,
/// `` ` ``, a line's end and a `)` of `case` start a command; `#` at a word's start is a comment
/// to the line's end, and a backslash before a line's end joins the lines. A quoted text with a
/// space in it that starts a word is a script (`su -c "mysql -pX"`), and so is what is in
/// `(...)`: its words are a command line of their own, and the outer one goes on after it as the
/// same command (`curl -H "X: $(openssl rand)" -k URL`: openssl is named in another command than
/// the one whose `-k` it is). Other quotes and backslash escapes are part of their word
/// (`'/tmp/openssl'`); a closing backtick or `)` returns to the command around. Heredocs' bodies
/// are read as commands, and their quotes as quotes (a `'` in one shifts what is quoted after
/// it). A Docker exec's `Action` is an argv joined with spaces: quotes and operators are its
/// arguments' characters there, up to a shell's `-c`.
#[derive(Debug, Default)]
pub(super) struct Reader {
    i: usize,
    commands: Commands,
    /// Which command is being read (a new number at each command's start).
    cmd: u32,
    ids: u32,
    /// The scripts the reader is in: how each ends, and the command around it.
    scripts: Vec<(Close, Commands, u32)>,
    /// The last word read: where it starts and ends, whether a command was named there, the
    /// tool its path's last part is, and its command.
    last: Option<(usize, usize, bool, Option<Tool>, u32)>,
    /// A redirection was read (`<`, `>`): the next word is its file, not a command's word.
    redirect: bool,
    /// The text is a Docker exec's `Action` (`exec_create: ...`): Docker joined its argv with
    /// spaces, so quotes and shell operators in it are an argument's characters, up to a shell's
    /// `-c` (after it, the words are a command line).
    action: bool,
    /// The commands in which the tool asked for was named, between the positions asked.
    hits: std::collections::HashSet<u32>,
}

impl Reader {
    /// Whether a word of `t` that has bytes in `from..to` names `tool` as the command that is
    /// being read at `to` (the regex found `tool`'s name at `from` and its option's value at
    /// `to`: a word between may name it too, `echo mysql $(mysql -pX)`), and for sshpass, while
    /// its options are read. Reads on to `to`.
    pub(super) fn names(&mut self, t: &[u8], from: usize, to: usize, tool: Tool) -> bool {
        self.hits.clear();
        loop {
            if let Some((start, end, true, Some(found), cmd)) = self.last
                && end > from
                && start < to
                && found == tool
                && !self.hits.contains(&cmd)
            {
                self.hits.insert(cmd);
            }
            if self.i >= to || self.i >= t.len() {
                break;
            }
            self.next_word(t);
        }
        self.hits.contains(&self.cmd) && (tool != Tool::Sshpass || self.commands.sshpass_options())
    }

    /// The command being read (after [`Reader::names`] said true: the one the tool named).
    pub(super) fn command(&self) -> u32 {
        self.cmd
    }

    /// Whether the reader, read on to `to`, is still in command `cmd`, where `tool` was named
    /// ([`Reader::names`]), and for sshpass, still in its options: an option at `to` is the
    /// tool's (`mysql -pA -pB`, `curl -U p:x -u u:y`).
    pub(super) fn still_in(&mut self, t: &[u8], to: usize, cmd: u32, tool: Tool) -> bool {
        while self.i < to && self.i < t.len() {
            self.next_word(t);
        }
        self.cmd == cmd && (tool != Tool::Sshpass || self.commands.sshpass_options())
    }

    /// A reader of `t`, which may be a Docker exec's `Action`.
    pub(super) fn of(t: &[u8]) -> Reader {
        Reader { action: super::is_action(t), ..Reader::default() }
    }

    /// The next word of a Docker exec's `Action`: up to a space, whatever it holds.
    /// The text is read as a command line after it (`action` false) when it is a shell's `-c`.
    fn action_word(&mut self, t: &[u8]) {
        let from = self.i;
        if t[from].is_ascii_whitespace() {
            self.i += 1;
            return;
        }
        let to = t[from..].iter().position(u8::is_ascii_whitespace).map_or(t.len(), |k| from + k);
        let word = String::from_utf8_lossy(&t[from..to]);
        let named = self.commands.word(&word);
        (self.i, self.last) = (to, Some((from, to, named, word_tool(&word), self.cmd)));
        if self.commands.take_script() {
            // `sh -c mysql -pX`: a command line from here.
            self.action = false;
        }
    }

    /// A script opens at the reader's position with `len` bytes, ending with `close`: its words
    /// are a command line of their own; the command around it goes on after it, with the script
    /// as one of its words when `word` (`sh -c "..."`, `$(...)`), else as the end of the word
    /// already read (`CMD="..."`).
    fn enter(&mut self, close: Close, len: usize, word: bool) {
        let mut outer = self.commands;
        if word {
            outer.word("");
        }
        self.scripts.push((close, outer, self.cmd));
        self.restart();
        self.i += len;
    }

    /// A new command starts.
    fn restart(&mut self) {
        self.commands = Commands::default();
        self.ids += 1;
        self.cmd = self.ids;
    }

    /// Reads on to the end of the next word (`last`), or of what is between words.
    fn next_word(&mut self, t: &[u8]) {
        let n = t.len();
        let c = t[self.i];
        let close = self.scripts.last().map(|s| s.0);
        // The end of the script the reader is in, or of quotes around it that a `(` in them
        // left open (`echo "not up :( yet"`).
        let closing = self
            .scripts
            .iter()
            .rposition(|s| closes_at(t, self.i, s.0))
            .filter(|&at| self.scripts[at + 1..].iter().all(|s| s.0 == Close::Paren));
        if let Some(at) = closing {
            self.i += self.scripts[at].0.len();
            let (_, outer, cmd) = self.scripts[at];
            self.scripts.truncate(at);
            (self.commands, self.cmd) = (outer, cmd);
            return;
        }
        if self.action {
            return self.action_word(t);
        }
        if c == b'\\' && t.get(self.i + 1) == Some(&b'\n') {
            self.i += 2;
            return;
        }
        if c == b'#' {
            // A comment, to the line's end (or the script's).
            while self.i < n && t[self.i] != b'\n' && !close.is_some_and(|k| closes_at(t, self.i, k)) {
                self.i += 1;
            }
            return;
        }
        if c == b'`' && self.scripts.len() < DEPTH {
            return self.enter(Close::Tick, 1, true);
        }
        if c == b'(' && t.get(self.i + 1) == Some(&b')') {
            // `name() { ...; }`: a function's body is a command line.
            self.restart();
            self.i += 2;
            return;
        }
        let quoted = self.scripts.iter().any(|s| s.0 != Close::Paren && s.0 != Close::Tick);
        let word_start = self.i == 0 || ends_word(t[self.i - 1]) || matches!(t[self.i - 1], b'$' | b'\'' | b'"');
        if c == b'(' && self.scripts.len() < DEPTH && (!quoted || word_start) {
            return self.enter(Close::Paren, 1, true);
        }
        if ends_word(c) {
            let duplicated = c == b'&' && self.i > 0 && matches!(t[self.i - 1], b'<' | b'>');
            // A `)` with no `(` read: a `case` pattern's end. A `(` not opened above: beyond
            // `DEPTH`, a command's start still; in quotes within a word (`:(`), only the word's
            // end.
            let starts =
                matches!(c, b'\n' | b';' | b'&' | b'|' | b')' | b'`') || (c == b'(' && (!quoted || word_start));
            if starts && !duplicated {
                self.restart();
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
            // The script is a word of the command line around it (`sh -c "..."`), or the end of
            // one already read (`CMD="mysqldump -pX"`, `alias m='mysql -pX'`).
            return self.enter(k, open, self.i == 0 || ends_word(t[self.i - 1]));
        }
        let from = self.i;
        let mut i = self.i;
        let mut word = Vec::new();
        while i < n {
            let c = t[i];
            if ends_word(c) {
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
                b'\\' if close != Some(Close::Single) => {
                    if let Some(&e) = t.get(i + 1) {
                        word.push(e);
                    }
                    i += 2;
                }
                b'\'' | b'"' if matches!(close, None | Some(Close::Escaped | Close::Paren | Close::Tick)) => {
                    // A quoted part of the word, to its close; one with a space in it is a script
                    // (`alias m='mysql -pX'`, `CMD="mysqldump -pX"`): the word ends before it.
                    let to = memchr::memchr(c, &t[i + 1..]).map_or(n, |k| i + 1 + k);
                    if self.scripts.len() < DEPTH && t[i + 1..to].iter().any(u8::is_ascii_whitespace) {
                        break;
                    }
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
        // A descriptor's number before a redirection (`2>/dev/null`) is not a word.
        let descriptor =
            !word.is_empty() && word.iter().all(u8::is_ascii_digit) && matches!(t.get(i), Some(b'<' | b'>'));
        let word = String::from_utf8_lossy(&word);
        let named = !descriptor && !std::mem::take(&mut self.redirect) && self.commands.word(&word);
        self.commands.take_script();
        (self.i, self.last) = (i, Some((from, i, named, word_tool(&word), self.cmd)));
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
            (Some(Close::Paren | Close::Tick), b'\'') => Some((Close::Single, 1)),
            (Some(Close::Paren | Close::Tick), b'"') => Some((Close::Double, 1)),
            _ => None,
        }
    }

    /// Where the script in quotes whose text starts at `from` closes.
    fn find_close(&self, t: &[u8], from: usize, k: Close) -> Option<usize> {
        match k {
            Close::Single => memchr::memchr(b'\'', &t[from..]).map(|j| from + j),
            Close::Escaped => memchr::memmem::find(&t[from..], b"\\\"").map(|j| from + j),
            Close::Paren | Close::Tick => None,
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

/// Where a Docker exec's `Action` (`exec_create: ...`) stops being an argv's words joined with
/// spaces: after a shell's `-c` (what follows is a command line), or at its end. `None` when `t`
/// is no `Action`.
pub(super) fn action_words(t: &[u8]) -> Option<usize> {
    let mut r = Reader::of(t);
    if !r.action {
        return None;
    }
    while r.action && r.i < t.len() {
        r.action_word(t);
    }
    Some(r.i)
}

/// Whether a script that ends with `k` closes at `i`.
fn closes_at(t: &[u8], i: usize, k: Close) -> bool {
    match k {
        Close::Single => t[i] == b'\'',
        Close::Double => t[i] == b'"',
        Close::Escaped => t[i] == b'\\' && t.get(i + 1) == Some(&b'"'),
        Close::Paren => t[i] == b')',
        Close::Tick => t[i] == b'`',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of an argv where a command is named.
    fn named(argv: &[&str]) -> Vec<String> {
        let mut c = Commands::argv();
        argv.iter().filter(|w| c.word(w)).map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn a_command_is_named_first_after_assignments_after_a_launcher_s_options_and_positionals() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["curl", "-o", "/tmp/openssl", "-k", "https://x"], &["curl"]),
            (&["A=1", "mysql", "-px"], &["A=1", "mysql"]),
            (&["sudo", "-u", "mysql", "mysql", "-px", "openssl"], &["sudo", "mysql"]),
            (&["sudo", "-E", "wget", "-O", "/tmp/openssl", "-k", "x"], &["sudo", "wget"]),
            (&["timeout", "-s", "9", "5", "curl", "-o", "/tmp/mysql"], &["timeout", "curl"]),
            (
                &["/usr/bin/env", "-i", "X=1", "/usr/bin/sshpass", "-p", "x", "ssh", "h", "curl", "-u"],
                &["/usr/bin/env", "X=1", "/usr/bin/sshpass", "ssh", "curl"],
            ),
            (&["kubectl", "exec", "-it", "pod", "--", "mysql", "-px"], &["kubectl", "mysql"]),
            (&["ip", "netns", "exec", "ns", "curl", "-u", "a:b"], &["ip", "curl"]),
            (&["exec_create:", "wget", "-qO", "/tmp/openssl", "-k", "x"], &["exec_create:", "wget"]),
            // Scripts and shells: any argument up to a tool may be the command.
            (&["docker-entrypoint.sh", "mysqld", "mysql", "-px"], &["docker-entrypoint.sh", "mysqld", "mysql"]),
            (&["sh", "-c", "exec \"$@\"", "sh", "mysql", "-px"], &["sh", "sh", "mysql"]),
            (&["find", ".", "-exec", "true", ";", "-exec", "mysql", "-px", ";"], &["find", "true", "mysql"]),
            (&["grep", "-exec", "mysql"], &["grep"]),
            (&["time", "-p", "mysql", "-px"], &["time", "mysql"]),
            (&["su", "-", "bob", "-c", "x"], &["su"]),
        ];
        for (argv, want) in cases {
            assert_eq!(named(argv), *want, "{argv:?}");
        }
        // sshpass's own options, then its command's.
        let mut c = Commands::argv();
        let read = ["sshpass", "-e", "scp"].map(|w| (c.word(w), c.sshpass_options()));
        assert_eq!(read, [(true, true), (false, true), (true, false)]);
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
            "bash -c \"# db isn't up yet\nuntil mysqladmin ping -uroot -px; do sleep 1; done\"",
            "cd /app && \\\n  mysqldump -uroot -px shop",
            "case $1 in backup) mysqldump -uroot -px shop ;; esac",
            "2>/dev/null mysql -uroot -px",
            "docker-compose exec db mysql -uroot -px",
            "wait-for-it.sh db:3306 -- mysql -px",
            "eval mysql -px",
            "(cd /x; mysql -px)",
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
            "curl -H \"X-Id: $(mysql -V)\" -px",
            "curl -A $(mysql -V) -px",
            "curl -A `mysql -V` -px",
            "curl -d 'mysql x' -px",
            "exec_create: wget -qO /tmp/mysql -px",
            "nohup wget -O /tmp/mysql -px",
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
