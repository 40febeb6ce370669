//! The configuration file and its validation.
//!
//! In: a JSON file (the seed's `{"docker-listener": {...}}` block, extended) and the command-line
//! overrides. Out: a [`Config`] whose every value has been checked, or a [`ConfigError`] naming the
//! key, the value and what is accepted.
use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::wazuh;

/// The top-level object of the file: everything lives under `"docker-listener"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(rename = "docker-listener")]
    docker_listener: Config,
}

/// Where frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The Wazuh queue socket (AF_UNIX, SOCK_DGRAM) — the product's real output.
    Queue,
    /// One frame per line on standard output, for trying the agent without Wazuh.
    Stdout,
    /// One frame per line appended to a file.
    File(PathBuf),
}

impl std::str::FromStr for Output {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "queue" => Ok(Output::Queue),
            "stdout" => Ok(Output::Stdout),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => crate::sink::output::split_file_path(Path::new(p))
                    .map(|_| Output::File(PathBuf::from(p)))
                    .map_err(|e| e.to_string()),
                _ => Err(format!("unknown output {s:?}: accepted \"queue\", \"stdout\" or \"file:/path/to/file\"")),
            },
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Queue => f.write_str("queue"),
            Output::Stdout => f.write_str("stdout"),
            Output::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl Serialize for Output {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How the eBPF programs walk a path (an executable's, an opened file's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathWalk {
    /// As a `bpf_loop` callback where the kernel has the helper (Linux 5.17+), unrolled
    /// elsewhere, and unrolled again after a load whose walk the verifier refused.
    #[default]
    Auto,
    /// Unrolled on every kernel: for a kernel that refuses the walk as a callback, which then
    /// loads once instead of twice, and loses no records at start.
    Unrolled,
}

/// The eBPF probes: which to load and how they filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EbpfConfig {
    /// Load the eBPF programs at all (`--no-ebpf` turns this off).
    pub enabled: bool,
    /// Refuse to start if the programs cannot be loaded, instead of falling back to Docker events
    /// only with a warning.
    pub required: bool,
    /// Process executions (successful and failed).
    pub exec: bool,
    /// connect(2).
    pub connect: bool,
    /// bind(2).
    pub bind: bool,
    /// listen(2).
    pub listen: bool,
    /// accept(2) and accept4(2).
    pub accept: bool,
    /// socket(2) creating a raw (SOCK_RAW) or packet (AF_PACKET) socket.
    pub raw_sockets: bool,
    /// The 32-bit (ia32) system call ABI's execs and socket calls (x86-64): programs on every
    /// system call of the host, whose first instructions reject all but a few.
    pub compat: bool,
    /// TCP connects that make no connect(2) (io_uring), and each io_uring setup.
    pub io_uring: bool,
    /// `kernel-module` events: init_module, finit_module, delete_module.
    pub kernel_module: bool,
    /// `bpf` events: BPF program loads and attachments.
    pub bpf: bool,
    /// `ptrace` events: ptrace attaches and writes, process_vm_writev.
    pub ptrace: bool,
    /// `namespace-change` events: unshare, setns, clone with new namespaces, mount, umount,
    /// pivot_root, chroot.
    pub namespace: bool,
    /// `privilege-change` events: the setuid/setgid family and capset.
    pub privilege: bool,
    /// `file-access` events: opens of the sensitive files below.
    pub file_access: bool,
    /// `dns-query` events: messages sent to port 53 (UDP or TCP), with their question.
    pub dns: bool,
    /// `network-flow` events: the first UDP send from a socket to each destination it names
    /// (sendto, sendmsg: no connect made it visible).
    pub udp_flows: bool,
    /// The sensitive files and directories, as a container sees them: "/etc/shadow", a
    /// directory's entries ("/root/.ssh/"), "*" within a component ("/home/*/.ssh/"); prefix
    /// "write:" (or "read:") to report only opens that may change (or read) the file.
    pub sensitive_files: Vec<String>,
    /// Bytes of argv captured per exec (the rest is cut and the event marked).
    pub argv_max_bytes: u32,
    /// Arguments kept per exec.
    pub argv_max_args: u32,
    /// Also trace processes outside containers (off: host processes cost one map lookup and
    /// produce nothing).
    pub trace_host: bool,
    /// Per-container budget of exec, fork, exit, socket and network records, and of each other
    /// family's (eight times this for file changes by name), in records per second (0: no
    /// budget). What a container sends beyond it is held back in the kernel, counted, and
    /// reported as an `events-held-back` event naming the container; it never holds back a
    /// failed exec or socket call, the first exec of a file in the container, or a family's
    /// first call of its kind (docs/EVENTS.md). The container runtime's own calls in the
    /// container (runc's, at its start and at each `docker exec`) are not sent and take none
    /// of it.
    pub budget_per_second: u32,
    /// Records a container may send at once before its budget applies.
    pub budget_burst: u32,
    /// Size of the kernel ring buffer (a power of two, at least one page).
    pub ring_buffer_bytes: u32,
    /// How the programs walk a path: "auto" or "unrolled".
    pub path_walk: PathWalk,
    /// Extra cgroup v2 path prefixes of container cgroups. A container's cgroup is recognised
    /// by its shape wherever it is (a last component `<64 hex>` or `docker-<64 hex>.scope`, as
    /// Docker's cgroupfs and systemd drivers name it, `--cgroup-parent` included); a prefix adds
    /// cgroups of other shapes below it. Docker is asked about each, and what it does not know is
    /// not traced.
    pub cgroup_prefixes: Vec<String>,
    /// Labels shown in each process and socket event (`container.labels`): at most this many...
    pub labels_max: usize,
    /// ...and this many bytes of keys and values (longest values cut first). The container's
    /// full label set still applies to `ignore_labels`.
    pub labels_max_bytes: usize,
    /// Containers not traced, by name or id (prefix of at least 12 characters).
    pub ignore_containers: Vec<String>,
    /// Containers not traced, by image name (e.g. "docker.io/library/nginx:latest", or
    /// "nginx" for any tag).
    pub ignore_images: Vec<String>,
    /// Containers not traced, by label: "key" (any value) or "key=value".
    pub ignore_labels: Vec<String>,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        EbpfConfig {
            enabled: true,
            required: false,
            exec: true,
            connect: true,
            bind: true,
            listen: true,
            accept: true,
            raw_sockets: true,
            compat: true,
            io_uring: true,
            kernel_module: true,
            bpf: true,
            ptrace: true,
            namespace: true,
            privilege: true,
            file_access: true,
            dns: true,
            udp_flows: true,
            sensitive_files: crate::sensitive::DEFAULT.iter().map(|s| (*s).to_owned()).collect(),
            argv_max_bytes: 1024,
            argv_max_args: 64,
            trace_host: false,
            budget_per_second: 500,
            budget_burst: 2000,
            ring_buffer_bytes: 4 << 20,
            path_walk: PathWalk::Auto,
            cgroup_prefixes: vec!["/docker/".into(), "/system.slice/docker-".into()],
            labels_max: 64,
            labels_max_bytes: 4096,
            ignore_containers: Vec::new(),
            ignore_images: Vec::new(),
            ignore_labels: Vec::new(),
        }
    }
}

/// Secrets in command lines (`crate::redact`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Replace the built-in patterns' secrets (and `patterns`') with `[REDACTED]`.
    pub enabled: bool,
    /// More regular expressions; the first capture group of each is the secret.
    pub patterns: Vec<String>,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig { enabled: true, patterns: Vec::new() }
    }
}

/// The effective configuration. Every field has a default; the file overrides the defaults and
/// the command line overrides the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `false`: log a line and exit 0 without doing anything.
    pub enabled: bool,
    /// Seconds before the first reconnection attempt to Docker; doubles up to `max_wait_time`.
    pub wait_time: f64,
    /// Upper bound, in seconds, of the reconnection back-off.
    pub max_wait_time: f64,
    /// Largest datagram sent, header included. Larger events are shrunk and marked.
    pub max_event_size: usize,
    /// Debug logging (same as `-v`).
    pub debug: bool,
    /// Wazuh's installation directory; the queue is `<wazuh_home>/queue/sockets/queue`.
    pub wazuh_home: PathBuf,
    /// The queue socket path, when it is not under `wazuh_home`.
    pub queue: Option<PathBuf>,
    /// `queue`, `stdout` or `file:PATH`. When unset: `queue`.
    pub output: Option<Output>,
    /// Docker's API socket, `unix:///path`. When unset: `$DOCKER_HOST`, else
    /// `unix:///var/run/docker.sock`.
    pub docker_host: Option<String>,
    /// Where the resume cursor and the instance lock live.
    pub state_dir: PathBuf,
    /// Add Docker's legacy `status`/`id`/`from` fields when Docker (API >= 1.52) omits them, for
    /// Wazuh rulesets up to 4.14.3 that match `docker.status`.
    pub legacy_fields: bool,
    /// Bytes of frames held while the output is unavailable; beyond it the oldest are dropped
    /// (and counted).
    pub buffer_bytes: usize,
    /// Docker events whose `Action` starts with one of these are not forwarded (counted as
    /// filtered), e.g. `"exec_"` for healthcheck noise.
    pub ignore_actions: Vec<String>,
    /// What to do with a container's healthcheck runs (`crate::health`): `forward` every event,
    /// as Wazuh's listener does; `summarize` passing checks into one event per container per
    /// `healthcheck_period` (failures and `health_status` changes are sent at once); `drop`
    /// passing checks (counted in the statistics only).
    pub healthchecks: crate::health::Mode,
    /// Seconds covered by one healthcheck summary.
    pub healthcheck_period: f64,
    /// Seconds within which identical process and socket events of a container are sent once
    /// and then counted (`crate::repeats`); 0: every event is sent.
    pub repeat_window: f64,
    pub ebpf: EbpfConfig,
    pub redact: RedactConfig,
    /// Once started, keep only the capabilities the running agent needs and set no_new_privs
    /// (`crate::privilege`).
    pub drop_privileges: bool,
    /// Run as this local user (name or uid) once started, keeping only the capabilities the
    /// running agent needs (started as root).
    pub user: Option<String>,
    /// Supplementary groups for `user` (names or gids), e.g. the Wazuh group owning the queue and
    /// the docker group owning its socket.
    pub groups: Vec<String>,
    pub log_format: LogFormat,
    /// Also serve the metrics (Prometheus text) here: "127.0.0.1:PORT" or "unix:/path". Off by
    /// default; `docker-listener stats` works either way (through `<state_dir>/stats.sock`).
    pub metrics: Option<crate::metrics::Endpoint>,
}

pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/docker-listener";

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            wait_time: 5.0,
            max_wait_time: 60.0,
            max_event_size: wazuh::MAX_DATAGRAM,
            debug: false,
            wazuh_home: PathBuf::from(wazuh::DEFAULT_WAZUH_HOME),
            queue: None,
            output: None,
            docker_host: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            legacy_fields: false,
            buffer_bytes: 16 << 20,
            ignore_actions: Vec::new(),
            healthchecks: crate::health::Mode::Summarize,
            healthcheck_period: 60.0,
            repeat_window: 60.0,
            ebpf: EbpfConfig::default(),
            redact: RedactConfig::default(),
            drop_privileges: true,
            user: None,
            groups: Vec::new(),
            log_format: LogFormat::Text,
            metrics: None,
        }
    }
}

/// Accepted ranges, shared by validation and the error messages.
pub const MAX_EVENT_SIZE_MIN: usize = 1024;
pub const BUFFER_BYTES_MIN: usize = 64 << 10;
pub const BUFFER_BYTES_MAX: usize = 4 << 30;
pub const WAIT_TIME_MIN: f64 = 0.1;
pub const WAIT_TIME_MAX: f64 = 3600.0;
pub const LABELS_MAX: usize = 1024;
pub const BUDGET_MAX: u32 = 1_000_000;
pub const REPEAT_WINDOW_MIN: f64 = 1.0;
pub const REPEAT_WINDOW_MAX: f64 = 3600.0;
pub const HEALTHCHECK_PERIOD_MIN: f64 = 1.0;
pub const HEALTHCHECK_PERIOD_MAX: f64 = 86_400.0;
pub const LABELS_MAX_BYTES: usize = 32 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}. Check the path given to --config.")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Key { path: PathBuf, key: String, message: String },
    #[error("{origin}: key `{key}` = {value}: {accepted}")]
    Value { origin: String, key: String, value: String, accepted: String },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of a config file (`path` is only used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = describe_serde_error(&inner);
            if key == "." || key.is_empty() {
                if inner.is_syntax() || inner.is_eof() {
                    ConfigError::Syntax { path: path.to_owned(), message }
                } else {
                    ConfigError::Key { path: path.to_owned(), key: "docker-listener".into(), message }
                }
            } else {
                ConfigError::Key { path: path.to_owned(), key, message }
            }
        })?;
        let config = file.docker_listener;
        config.validate(&path.display().to_string())?;
        Ok(config)
    }

    /// Checks every value against its accepted range. `origin` names where the values came from.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let err = |key: &str, value: String, accepted: String| ConfigError::Value {
            origin: origin.to_owned(),
            key: format!("docker-listener.{key}"),
            value,
            accepted,
        };
        if !(WAIT_TIME_MIN..=WAIT_TIME_MAX).contains(&self.wait_time) {
            return Err(err(
                "wait_time",
                self.wait_time.to_string(),
                format!("accepted: seconds from {WAIT_TIME_MIN} to {WAIT_TIME_MAX}"),
            ));
        }
        if !(self.wait_time..=WAIT_TIME_MAX).contains(&self.max_wait_time) {
            return Err(err(
                "max_wait_time",
                self.max_wait_time.to_string(),
                format!("accepted: seconds from wait_time ({}) to {WAIT_TIME_MAX}", self.wait_time),
            ));
        }
        if !(MAX_EVENT_SIZE_MIN..=wazuh::MAX_DATAGRAM).contains(&self.max_event_size) {
            return Err(err(
                "max_event_size",
                self.max_event_size.to_string(),
                format!(
                    "accepted: {MAX_EVENT_SIZE_MIN} to {} bytes (Wazuh reads at most {} bytes of a \
                     datagram, OS_MAXSTR - 1; a longer one arrives cut and is not valid JSON)",
                    wazuh::MAX_DATAGRAM,
                    wazuh::MAX_DATAGRAM
                ),
            ));
        }
        if !(BUFFER_BYTES_MIN..=BUFFER_BYTES_MAX).contains(&self.buffer_bytes) {
            return Err(err(
                "buffer_bytes",
                self.buffer_bytes.to_string(),
                format!("accepted: {BUFFER_BYTES_MIN} (64 KiB) to {BUFFER_BYTES_MAX} (4 GiB)"),
            ));
        }
        if self.buffer_bytes < self.max_event_size {
            return Err(err(
                "buffer_bytes",
                self.buffer_bytes.to_string(),
                format!("must hold at least one event: >= max_event_size ({})", self.max_event_size),
            ));
        }
        if let Some(u) = &self.user {
            crate::privilege::resolve(u, &self.groups).map_err(|why| err("user", format!("{u:?}"), why))?;
        } else if !self.groups.is_empty() {
            return Err(err("groups", format!("{:?}", self.groups), "accepted only with `user`".into()));
        }
        for (i, p) in self.redact.patterns.iter().enumerate() {
            if let Err(e) = crate::redact::check(p) {
                return Err(err(&format!("redact.patterns[{i}]"), format!("{p:?}"), e.to_string()));
            }
        }
        if !(HEALTHCHECK_PERIOD_MIN..=HEALTHCHECK_PERIOD_MAX).contains(&self.healthcheck_period) {
            return Err(err(
                "healthcheck_period",
                self.healthcheck_period.to_string(),
                format!("accepted: seconds from {HEALTHCHECK_PERIOD_MIN} to {HEALTHCHECK_PERIOD_MAX}"),
            ));
        }
        if self.repeat_window != 0.0 && !(REPEAT_WINDOW_MIN..=REPEAT_WINDOW_MAX).contains(&self.repeat_window) {
            return Err(err(
                "repeat_window",
                self.repeat_window.to_string(),
                format!("accepted: 0 (off) or seconds from {REPEAT_WINDOW_MIN} to {REPEAT_WINDOW_MAX}"),
            ));
        }
        if let Some(host) = &self.docker_host {
            parse_docker_host(host).map_err(|m| err("docker_host", format!("{host:?}"), m))?;
        }
        let e = &self.ebpf;
        let argv_cap = docker_listener_common::ARGS_CAP as u32 - 1;
        if !(1..=argv_cap).contains(&e.argv_max_bytes) {
            return Err(err(
                "ebpf.argv_max_bytes",
                e.argv_max_bytes.to_string(),
                format!("accepted: 1 to {argv_cap} bytes"),
            ));
        }
        if e.budget_per_second > BUDGET_MAX {
            return Err(err(
                "ebpf.budget_per_second",
                e.budget_per_second.to_string(),
                format!("accepted: 0 (no budget) to {BUDGET_MAX} records per second"),
            ));
        }
        if e.budget_per_second > 0 && !(1..=BUDGET_MAX).contains(&e.budget_burst) {
            return Err(err(
                "ebpf.budget_burst",
                e.budget_burst.to_string(),
                format!("accepted: 1 to {BUDGET_MAX} records"),
            ));
        }
        if !(1..=1024).contains(&e.argv_max_args) {
            return Err(err("ebpf.argv_max_args", e.argv_max_args.to_string(), "accepted: 1 to 1024".into()));
        }
        if !e.ring_buffer_bytes.is_power_of_two() || !(4096..=(1 << 30)).contains(&e.ring_buffer_bytes) {
            return Err(err(
                "ebpf.ring_buffer_bytes",
                e.ring_buffer_bytes.to_string(),
                "accepted: a power of two from 4096 to 1073741824".into(),
            ));
        }
        for (i, f) in e.sensitive_files.iter().enumerate() {
            if let Err(why) = f.parse::<crate::sensitive::Pattern>() {
                return Err(err(&format!("ebpf.sensitive_files[{i}]"), format!("{f:?}"), why));
            }
        }
        if e.sensitive_files.len() > 256 {
            return Err(err(
                "ebpf.sensitive_files",
                format!("{} entries", e.sensitive_files.len()),
                "accepted: at most 256 entries".into(),
            ));
        }
        let cap = docker_listener_common::PREFIX_CAP;
        if e.cgroup_prefixes.len() > docker_listener_common::PREFIXES {
            return Err(err(
                "ebpf.cgroup_prefixes",
                format!("{} entries", e.cgroup_prefixes.len()),
                format!("accepted: 0 to {} prefixes", docker_listener_common::PREFIXES),
            ));
        }
        if e.labels_max > LABELS_MAX {
            return Err(err("ebpf.labels_max", e.labels_max.to_string(), format!("accepted: 0 to {LABELS_MAX}")));
        }
        if e.labels_max_bytes > LABELS_MAX_BYTES {
            return Err(err(
                "ebpf.labels_max_bytes",
                e.labels_max_bytes.to_string(),
                format!(
                    "accepted: 0 to {LABELS_MAX_BYTES} (an event must stay well within max_event_size, at most 65535 \
                     bytes)"
                ),
            ));
        }
        if let Some((i, p)) =
            e.cgroup_prefixes.iter().enumerate().find(|(_, p)| !p.starts_with('/') || p.len() < 2 || p.len() > cap)
        {
            return Err(err(
                &format!("ebpf.cgroup_prefixes[{i}]"),
                format!("{p:?}"),
                format!("accepted: an absolute cgroup path prefix of 2 to {cap} bytes, e.g. \"/docker/\""),
            ));
        }
        for (key, list) in [
            ("ebpf.ignore_containers", &e.ignore_containers),
            ("ebpf.ignore_images", &e.ignore_images),
            ("ebpf.ignore_labels", &e.ignore_labels),
        ] {
            if let Some(i) = list.iter().position(|v| v.is_empty()) {
                return Err(err(
                    &format!("{key}[{i}]"),
                    "\"\"".into(),
                    "an empty entry would match nothing; remove it".into(),
                ));
            }
        }
        if let Some(i) = self.ignore_actions.iter().position(|a| a.is_empty()) {
            return Err(err(
                &format!("ignore_actions[{i}]"),
                "\"\"".into(),
                "an empty prefix would drop every event; remove it".into(),
            ));
        }
        // A relative path would be the working directory's: `/` under systemd, read-only there.
        let output_file = match &self.output {
            Some(Output::File(p)) => Some(p),
            _ => None,
        };
        for (key, path) in [("wazuh_home", Some(&self.wazuh_home)), ("state_dir", Some(&self.state_dir))]
            .into_iter()
            .chain([("queue", self.queue.as_ref()), ("output", output_file)])
        {
            if let Some(p) = path
                && !p.is_absolute()
            {
                return Err(err(key, format!("{:?}", p.display().to_string()), "must be an absolute path".into()));
            }
        }
        Ok(())
    }

    /// The queue socket: `queue` if set, else `<wazuh_home>/queue/sockets/queue`.
    pub fn queue_path(&self) -> PathBuf {
        self.queue.clone().unwrap_or_else(|| self.wazuh_home.join(wazuh::QUEUE_SOCKET_REL))
    }

    /// The Docker socket path from `docker_host`, `$DOCKER_HOST` or the default.
    pub fn docker_socket(&self) -> Result<PathBuf, ConfigError> {
        let (host, origin) = match &self.docker_host {
            Some(h) => (h.clone(), "config"),
            None => match std::env::var("DOCKER_HOST") {
                Ok(h) if !h.is_empty() => (h, "environment"),
                _ => (DEFAULT_DOCKER_HOST.to_owned(), "default"),
            },
        };
        parse_docker_host(&host).map_err(|accepted| ConfigError::Value {
            origin: origin.to_owned(),
            key: if origin == "environment" { "DOCKER_HOST".into() } else { "docker-listener.docker_host".into() },
            value: format!("{host:?}"),
            accepted,
        })
    }

    /// `None` when repeat folding is off.
    pub fn repeat_window(&self) -> Option<Duration> {
        (self.repeat_window > 0.0).then(|| Duration::from_secs_f64(self.repeat_window))
    }

    pub fn healthcheck_period(&self) -> Duration {
        Duration::from_secs_f64(self.healthcheck_period)
    }

    pub fn wait_time(&self) -> Duration {
        Duration::from_secs_f64(self.wait_time)
    }

    pub fn max_wait_time(&self) -> Duration {
        Duration::from_secs_f64(self.max_wait_time)
    }
}

/// `unix:///path` -> `/path`. Only local Unix sockets are supported: the agent runs on the
/// Docker host it watches.
pub fn parse_docker_host(host: &str) -> Result<PathBuf, String> {
    match host.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        _ => Err("accepted: unix:///absolute/path/to/docker.sock (docker-listener watches the \
                  local Docker engine; tcp:// and ssh:// hosts are not supported)"
            .into()),
    }
}

/// serde_json's messages, minus the line/column noise for type errors on a named key.
fn describe_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if e.is_data() {
        // "invalid type: string \"x\", expected a boolean at line 3 column 20"
        match msg.rfind(" at line ") {
            Some(i) => format!("{} ({})", &msg[..i], &msg[i + 1..]),
            None => msg,
        }
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.json"))
    }

    #[test]
    fn the_seed_block_parses_with_defaults_for_the_rest() {
        let c =
            parse(r#"{"docker-listener": {"enabled": true, "wait_time": 5, "max_event_size": 65535, "debug": false}}"#)
                .unwrap();
        assert!(c.enabled);
        assert_eq!(c.wait_time, 5.0);
        assert_eq!(c.max_event_size, 65535);
        assert_eq!(c.queue_path(), PathBuf::from("/var/ossec/queue/sockets/queue"));
        assert!(c.ebpf.enabled);
    }

    #[test]
    fn an_empty_block_is_all_defaults() {
        let c = parse(r#"{"docker-listener": {}}"#).unwrap();
        assert_eq!(c.max_event_size, wazuh::MAX_DATAGRAM);
        assert_eq!(c.buffer_bytes, 16 << 20);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse(r#"{"docker-listener": {"wait_tim": 5}}"#).unwrap_err().to_string();
        assert!(e.contains("wait_tim"), "{e}");
        assert!(e.contains("wait_time"), "should list accepted keys: {e}");
        let e = parse(r#"{"docker-listener": {}, "other": 1}"#).unwrap_err().to_string();
        assert!(e.contains("other"), "{e}");
        let e = parse(r#"{"docker-listener": {"ebpf": {"enabeld": true}}}"#).unwrap_err().to_string();
        assert!(e.contains("ebpf") && e.contains("enabeld"), "{e}");
    }

    #[test]
    fn bad_types_name_the_key_and_what_is_expected() {
        for (text, key, expected) in [
            (r#"{"docker-listener": {"enabled": "yes"}}"#, "docker-listener.enabled", "boolean"),
            (r#"{"docker-listener": {"wait_time": "5"}}"#, "docker-listener.wait_time", "f64"),
            (r#"{"docker-listener": {"max_event_size": -1}}"#, "docker-listener.max_event_size", "usize"),
            (r#"{"docker-listener": {"debug": 1}}"#, "docker-listener.debug", "boolean"),
            (r#"{"docker-listener": {"output": "tcp"}}"#, "docker-listener.output", "stdout"),
            (r#"{"docker-listener": {"log_format": "xml"}}"#, "docker-listener.log_format", "json"),
            (r#"{"docker-listener": {"ignore_actions": "exec_"}}"#, "docker-listener.ignore_actions", "sequence"),
            (r#"{"docker-listener": {"legacy_fields": null}}"#, "docker-listener.legacy_fields", "boolean"),
            (r#"{"docker-listener": {"ebpf": {"enabled": 0}}}"#, "docker-listener.ebpf.enabled", "boolean"),
            (r#"{"docker-listener": {"ebpf": {"path_walk": "loop"}}}"#, "docker-listener.ebpf.path_walk", "unrolled"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn out_of_range_values_name_the_accepted_range() {
        for (text, key, accepted) in [
            (r#"{"docker-listener": {"wait_time": 0}}"#, "wait_time", "0.1"),
            (r#"{"docker-listener": {"wait_time": 5, "max_wait_time": 1}}"#, "max_wait_time", "wait_time"),
            (r#"{"docker-listener": {"max_event_size": 65536}}"#, "max_event_size", "65535"),
            (r#"{"docker-listener": {"max_event_size": 10}}"#, "max_event_size", "1024"),
            (r#"{"docker-listener": {"buffer_bytes": 1}}"#, "buffer_bytes", "64 KiB"),
            (r#"{"docker-listener": {"docker_host": "tcp://1.2.3.4:2375"}}"#, "docker_host", "unix:///"),
            (r#"{"docker-listener": {"ignore_actions": [""]}}"#, "ignore_actions[0]", "empty"),
            (r#"{"docker-listener": {"healthcheck_period": 0.5}}"#, "healthcheck_period", "seconds from 1"),
            (r#"{"docker-listener": {"redact": {"patterns": ["--key=\\S+"]}}}"#, "redact.patterns[0]", "capture group"),
            (r#"{"docker-listener": {"redact": {"patterns": ["(["]}}}"#, "redact.patterns[0]", "regular expression"),
            (r#"{"docker-listener": {"repeat_window": 0.2}}"#, "repeat_window", "0 (off)"),
            (
                r#"{"docker-listener": {"ebpf": {"budget_per_second": 2000000}}}"#,
                "ebpf.budget_per_second",
                "0 (no budget)",
            ),
            (r#"{"docker-listener": {"ebpf": {"budget_burst": 0}}}"#, "ebpf.budget_burst", "1 to"),
            (r#"{"docker-listener": {"state_dir": "relative"}}"#, "state_dir", "absolute"),
            (r#"{"docker-listener": {"queue": "q"}}"#, "queue", "absolute"),
            (r#"{"docker-listener": {"output": "file:events.ndjson"}}"#, "output", "absolute"),
            (r#"{"docker-listener": {"ebpf": {"argv_max_bytes": 4096}}}"#, "ebpf.argv_max_bytes", "2047"),
            (r#"{"docker-listener": {"ebpf": {"argv_max_args": 0}}}"#, "ebpf.argv_max_args", "1024"),
            (r#"{"docker-listener": {"ebpf": {"ring_buffer_bytes": 5000}}}"#, "ebpf.ring_buffer_bytes", "power of two"),
            (
                r#"{"docker-listener": {"ebpf": {"cgroup_prefixes": ["/a/", "/b/", "/c/", "/d/", "/e/"]}}}"#,
                "ebpf.cgroup_prefixes",
                "0 to 4",
            ),
            (r#"{"docker-listener": {"ebpf": {"labels_max": 5000}}}"#, "ebpf.labels_max", "0 to 1024"),
            (
                r#"{"docker-listener": {"ebpf": {"sensitive_files": ["/etc/shadow", "etc/x"]}}}"#,
                "ebpf.sensitive_files[1]",
                "absolute path",
            ),
            (r#"{"docker-listener": {"ebpf": {"sensitive_files": ["/etc/../x"]}}}"#, "ebpf.sensitive_files[0]", ".."),
            (r#"{"docker-listener": {"ebpf": {"labels_max_bytes": 100000}}}"#, "ebpf.labels_max_bytes", "32768"),
            (
                r#"{"docker-listener": {"ebpf": {"cgroup_prefixes": ["docker"]}}}"#,
                "ebpf.cgroup_prefixes[0]",
                "absolute",
            ),
            (r#"{"docker-listener": {"ebpf": {"ignore_labels": ["a", ""]}}}"#, "ebpf.ignore_labels[1]", "empty"),
            (r#"{"docker-listener": {"metrics": "0.0.0.0:9700"}}"#, "metrics", "loopback"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("docker-listener.{key}")), "{text}: {e}");
            assert!(e.contains(accepted), "{text}: {e}");
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = parse(r#"{"docker-listener": {"enabled": true,}}"#).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parse("").unwrap_err().to_string();
        assert!(e.contains("EOF"), "{e}");
        let e = parse(r#"{}"#).unwrap_err().to_string();
        assert!(e.contains("docker-listener"), "{e}");
    }

    #[test]
    fn docker_host_forms() {
        assert_eq!(parse_docker_host("unix:///run/docker.sock").unwrap(), PathBuf::from("/run/docker.sock"));
        assert!(parse_docker_host("unix://relative").is_err());
        assert!(parse_docker_host("/var/run/docker.sock").is_err());
    }

    #[test]
    fn output_forms() {
        assert_eq!("queue".parse::<Output>().unwrap(), Output::Queue);
        assert_eq!("stdout".parse::<Output>().unwrap(), Output::Stdout);
        assert_eq!("file:/tmp/x".parse::<Output>().unwrap(), Output::File("/tmp/x".into()));
        assert!("file:".parse::<Output>().is_err());
        for dir in ["file:/var/log/", "file:/var/log/.", "file:/var/log/..", "file:/"] {
            let e = dir.parse::<Output>().expect_err(dir);
            assert!(e.contains("names a directory, not a file") && e.contains("docker-listener.ndjson"), "{e}");
        }
        assert!("syslog".parse::<Output>().is_err());
    }
}
