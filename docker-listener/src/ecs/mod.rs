//! Our own events as ECS-style JSON (the schema in docs/EVENTS.md), in the same Wazuh frame as
//! Docker events (`integration: docker`) but never under the `docker` key.
//!
//! An [`Event`] is captured when its record arrives (what it says of the process and its
//! ancestors is what was true then) and serialised, with its container, when the container is
//! known. Serialisation writes straight into the frame's buffer from borrowed fields: no JSON
//! tree is built.
//!
//! Layout: this module writes what every event has (`integration`, `@timestamp`, `event`,
//! `error`, `container`, the common part of `docker_listener`); each family of events writes its
//! own members in its own module (`crate::family`'s, and [`inventory`] for the start-up
//! inventory), through [`Body`]; [`parts`] holds what several of them write.
pub mod inventory;
pub mod parts;

use std::{borrow::Cow, fmt, sync::Arc};

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Value, json};

use crate::{
    ebpf::record::Meta,
    labels::ShownLabels,
    procs::{EntityId, Lineage},
    registry::Container,
};

pub use self::inventory::Inventory;
pub use crate::family::{exec::ExecBody, io_uring::IoUringBody, socket::SocketBody};

/// `event.module` of every event this agent makes itself.
pub const MODULE: &str = "docker-listener";

/// Wall-clock time of a kernel boot-time stamp.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    boot_wall_ns: i64,
}

impl Clock {
    /// From the current CLOCK_REALTIME and CLOCK_BOOTTIME.
    pub fn now() -> Clock {
        let read = |id| {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: a valid pointer to a timespec.
            unsafe { libc::clock_gettime(id, &mut ts) };
            ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        };
        Clock { boot_wall_ns: read(libc::CLOCK_REALTIME) - read(libc::CLOCK_BOOTTIME) }
    }

    pub fn fixed(boot_wall_ns: i64) -> Clock {
        Clock { boot_wall_ns }
    }

    pub fn wall_ns(&self, ktime_ns: u64) -> i64 {
        self.boot_wall_ns + ktime_ns as i64
    }

    /// The boot-clock time of now (for events the agent makes from /proc, not from a record).
    pub fn boot_now() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid pointer to a timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        (ts.tv_sec * 1_000_000_000 + ts.tv_nsec) as u64
    }
}

/// "2026-11-27T15:14:35.014659607Z".
pub fn rfc3339(ns: i64) -> String {
    Rfc3339(ns).to_string()
}

/// A time (ns since the epoch) shown as RFC 3339 UTC with nanoseconds, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339(pub i64);

impl Rfc3339 {
    /// The civil time: year, month, day, second of the day, nanoseconds.
    fn civil(self) -> (i64, i64, i64, i64, i64) {
        let ns = self.0;
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Civil date from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d, sod, nanos)
    }

    /// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" into `buf`, written digit by digit (the `fmt` machinery
    /// cost every event more than the rest of its timestamp); false for a year that is not
    /// four digits (none that an i64 of nanoseconds reaches), left to `Display`.
    fn write_to(self, buf: &mut [u8; 30]) -> bool {
        let (y, m, d, sod, nanos) = self.civil();
        if !(0..=9999).contains(&y) {
            return false;
        }
        *buf = *b"0000-00-00T00:00:00.000000000Z";
        digits(&mut buf[0..4], y);
        digits(&mut buf[5..7], m);
        digits(&mut buf[8..10], d);
        digits(&mut buf[11..13], sod / 3600);
        digits(&mut buf[14..16], sod % 3600 / 60);
        digits(&mut buf[17..19], sod % 60);
        digits(&mut buf[20..29], nanos);
        true
    }
}

/// `v` (at least 0, and short enough) in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut v: i64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        match self.write_to(&mut buf).then(|| std::str::from_utf8(&buf).ok()).flatten() {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d, sod, nanos) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, sod % 3600 / 60, sod % 60)
    }
}

/// Names of the errno values the reported calls commonly return (others: `E<number>`).
pub fn errno_name(errno: i64) -> Cow<'static, str> {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        31 => "EMLINK",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        88 => "ENOTSOCK",
        93 => "EPROTONOSUPPORT",
        94 => "ESOCKTNOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        106 => "EISCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return Cow::Owned(format!("E{errno}")),
    };
    Cow::Borrowed(name)
}

/// A process as events refer to it (`process.parent`, `entry_leader`, ancestors): as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcRef {
    pub pid: u32,
    pub entity_id: EntityId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// For a multi-call binary (busybox...), the program it runs as (`argv[0]`'s file name).
    /// Not an ECS field: ECS has no place for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applet: Option<Arc<str>>,
    /// A multi-call binary whose program the event cannot name (the argument naming it was cut).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub applet_hidden: bool,
}

impl ProcRef {
    pub fn of(l: &Lineage) -> ProcRef {
        ProcRef {
            pid: l.pid,
            entity_id: l.entity_id,
            executable: l.image.is_known().then(|| l.image.executable.clone()),
            name: (!l.image.name.is_empty()).then(|| l.image.name.clone()),
            applet: l.image.applet.clone(),
            applet_hidden: l.image.applet_hidden,
        }
    }
}

/// The process an event is about, its parent and its ancestors inside its container, as they
/// were when the record was made.
#[derive(Debug, Clone)]
pub struct Lineup {
    pub process: ProcRef,
    pub parent: Option<ProcRef>,
    /// Nearest first, up to the container's init.
    pub ancestors: Vec<ProcRef>,
    /// The container's init: the top of the chain inside the container, or the process itself
    /// when its parent is outside (it is the init, or a `docker exec`).
    pub entry_leader: ProcRef,
}

impl Lineup {
    /// `lineage`'s, within the container's `cgroups` (its own and those below it).
    pub fn of(lineage: &Lineage, cgroups: &[u64]) -> Lineup {
        let process = ProcRef::of(lineage);
        let mut ancestors: Vec<ProcRef> = lineage.ancestors_within(cgroups).map(ProcRef::of).collect();
        // At the top of a chain, processes that never ran a known program in the container are
        // the runtime's (runc's stages setting it up): the container's init is below them.
        while ancestors.last().is_some_and(|a| a.executable.is_none()) {
            ancestors.pop();
        }
        let parent = lineage.parent.as_deref().map(ProcRef::of);
        let entry_leader = ancestors.last().cloned().unwrap_or_else(|| process.clone());
        Lineup { process, parent, ancestors, entry_leader }
    }
}

/// What each family of events is, and writes. The stages around it (correlation, the
/// container, the frame) are shared.
#[derive(Debug, Clone)]
// Exec events are the most common ones: boxing them would cost each an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Body {
    Exec(ExecBody),
    Socket(SocketBody),
    IoUring(IoUringBody),
    Inventory(Inventory),
    /// The families reported at a system call's exit (`crate::family`).
    Call(crate::family::CallBody),
}

/// `event.*` of a family.
pub struct Kind {
    pub kind: &'static str,
    pub category: &'static str,
    pub types: &'static [&'static str],
    pub action: &'static str,
    pub dataset: &'static str,
}

impl Body {
    fn kind(&self) -> Kind {
        match self {
            Body::Exec(b) => b.kind(),
            Body::Socket(b) => b.kind(),
            Body::IoUring(b) => b.kind(),
            Body::Inventory(b) => b.kind(),
            Body::Call(b) => b.kind(),
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            Body::Exec(b) => b.outcome(),
            Body::Socket(b) => b.outcome(),
            Body::IoUring(b) => b.outcome(),
            Body::Inventory(_) => "success",
            Body::Call(b) => b.outcome(),
        }
    }
}

/// One of our events, waiting for its container.
#[derive(Debug, Clone)]
pub struct Event {
    pub meta: Meta,
    /// Wall-clock time of the kernel's record.
    pub time: Rfc3339,
    pub body: Body,
    /// The process's entry leader (the top of its chain inside the container: the container's
    /// init, or the first process of a `docker exec` session), for the events that do not carry
    /// their lineup; 0 when not known.
    pub leader: u32,
}

impl Event {
    pub fn new(meta: Meta, clock: Clock, body: Body) -> Event {
        Event { meta, time: Rfc3339(clock.wall_ns(meta.ktime_ns)), body, leader: 0 }
    }

    /// For an event a healthcheck summary may fold (`crate::health`): the process's entry
    /// leader (which exec session it belongs to, 0 if not known) and what makes the event new
    /// in its container.
    pub fn routine(&self) -> Option<(u32, String)> {
        match &self.body {
            Body::Exec(b) => Some((b.lineup.entry_leader.pid, b.routine(self.time.0)?)),
            Body::Socket(b) => Some((self.leader, b.routine()?)),
            _ => None,
        }
    }

    /// What makes a routine event the same command as another (`crate::health` sends the
    /// first of each), besides its container and `routine()`'s key: an exec's arguments as read
    /// (`Args::digest`, which covers what is shown and what is not: a redacted secret,
    /// arguments left out, how many bytes the kernel did not copy; the arguments as shown when
    /// there is no digest), user and group.
    pub fn command_detail(&self, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        if let Body::Exec(b) = &self.body {
            let a = &b.args;
            match a.digest {
                0 => (&a.args, a.truncated, a.omitted_bytes).hash(h),
                digest => digest.hash(h),
            }
            (a.unavailable, b.uid, b.gid).hash(h);
        }
    }

    /// What a repeat (`crate::repeats`) shares beyond the command (`command_detail`): the
    /// program that ran an exec. The same command line from another program (a web server's
    /// `sh -c id` beside a cron job's) is not a repeat.
    pub fn repeat_detail(&self, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        if let Body::Exec(b) = &self.body {
            b.lineup.parent.as_ref().map(|p| (p.executable.as_deref(), p.applet.as_deref())).hash(h);
        }
    }

    /// `event.action`.
    pub fn action(&self) -> &'static str {
        self.body.kind().action
    }

    /// The event with its container: `container` when known, else only `container_id` (from
    /// the cgroup path; empty for a host process).
    pub fn with_container<'a>(&'a self, container: Option<&'a Container>, container_id: &'a str) -> WithContainer<'a> {
        WithContainer { event: self, container, container_id, unknown: false }
    }

    /// The event of a traced cgroup no container could be found for (a cgroup under a
    /// container prefix that is no container, e.g. a build step's): marked, so that it is not
    /// taken for a host process's.
    pub fn without_known_container(&self) -> WithContainer<'_> {
        WithContainer { event: self, container: None, container_id: "", unknown: true }
    }
}

/// An [`Event`] ready to serialise.
pub struct WithContainer<'a> {
    event: &'a Event,
    container: Option<&'a Container>,
    container_id: &'a str,
    unknown: bool,
}

#[derive(Serialize)]
struct EventMetaOut<'a> {
    kind: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    types: &'a [&'static str],
    action: &'static str,
    outcome: &'static str,
    module: &'static str,
    dataset: &'static str,
    /// The kernel's record number; none for what the agent read from /proc.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

/// `process` of an event about a process the family does not describe further (socket,
/// io_uring, the exit-reported calls): the process as it was, its thread, and its parent when
/// the family gives it.
#[derive(Serialize)]
pub(crate) struct ProcessRefOut<'a> {
    #[serde(flatten)]
    pub process: &'a ProcRef,
    pub thread: ThreadOut,
    /// The caller's ids where its record has them (the exit-reported families).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<IdOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<IdOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<&'a ProcRef>,
}

#[derive(Serialize)]
pub struct ThreadOut {
    pub id: u32,
}

/// A uid or gid, as a string (ECS `user.id`).
#[derive(Serialize)]
pub(crate) struct IdOut {
    pub id: Decimal,
}

/// A number shown as the string of its decimal digits (`user.id`, `file.inode`), written
/// without `fmt`.
pub(crate) struct Decimal<T = u32>(pub T);

impl<T: itoa::Integer + Copy> Serialize for Decimal<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

/// Any `Display` value serialised as a string, without allocating.
pub(crate) struct Shown<T>(pub T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// argv joined with spaces, written without building the string.
pub(crate) struct JoinedArgs<'a>(pub &'a [String]);

impl fmt::Display for JoinedArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(a)?;
        }
        Ok(())
    }
}

impl Serialize for JoinedArgs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
pub(crate) struct ErrorOut {
    pub code: Cow<'static, str>,
    pub message: String,
}

impl ErrorOut {
    /// `"<call> failed: <ERRNO>"` for a negative return value.
    pub fn of_call(call: &str, ret: i64) -> ErrorOut {
        let code = errno_name(-ret);
        ErrorOut { message: format!("{call} failed: {code}"), code }
    }
}

#[derive(Serialize)]
pub(crate) struct SyscallOut {
    pub name: &'static str,
    /// `None`: not known (a request that was sent before it ran and whose end nothing shows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// "ia32" for a call through the 32-bit ABI; absent for the native one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi: Option<&'static str>,
}

impl SyscallOut {
    pub fn new(name: &'static str, ret: i64, compat: bool) -> SyscallOut {
        SyscallOut { name, ret: Some(ret), abi: compat.then_some("ia32") }
    }
}

#[derive(Serialize)]
struct ContainerOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a ShownLabels>,
    runtime: &'static str,
}

impl<'a> ContainerOut<'a> {
    fn of(c: &'a Container) -> ContainerOut<'a> {
        ContainerOut {
            id: &c.id,
            name: Some(&c.name),
            image: Some(ImageOut { name: &c.image, id: c.image_id.as_deref() }),
            labels: Some(&c.shown_labels),
            runtime: "docker",
        }
    }
}

/// A known container's `container` object, serialised at its first event and kept with it
/// (`registry::ObjectCache`); `None` if it could not be (then it is written field by field).
fn container_object(c: &Container) -> Option<&serde_json::value::RawValue> {
    if let Some(raw) = c.object.get() {
        return Some(raw);
    }
    let raw = serde_json::value::to_raw_value(&ContainerOut::of(c)).ok()?;
    Some(c.object.fill(raw))
}

#[derive(Serialize)]
struct ImageOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

/// `docker_listener`: the record's CPU, the family's members, then what the container adds.
struct ListenerOut<'a> {
    ev: &'a Event,
    container: Option<&'a Container>,
    unresolved: bool,
    unknown: bool,
}

impl Serialize for ListenerOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("cpu", &self.ev.meta.cpu)?;
        match &self.ev.body {
            Body::Exec(b) => b.write_listener(&mut m)?,
            Body::Socket(b) => b.write_listener(&mut m)?,
            Body::IoUring(b) => b.write_listener(&mut m)?,
            Body::Inventory(b) => b.write_listener(&mut m)?,
            Body::Call(b) => b.write_listener(&mut m)?,
        }
        if let Some(c) = self.container {
            if let Some(t) = c.started_time_nano {
                m.serialize_entry("container_started_time_nano", &t)?;
            }
            if c.shown_labels.cut {
                m.serialize_entry("labels_truncated", &true)?;
                m.serialize_entry("labels_total", &c.labels.len())?;
            }
        }
        if self.unresolved {
            m.serialize_entry("container_unresolved", &true)?;
        }
        if self.unknown {
            m.serialize_entry("container_unknown", &true)?;
        }
        m.end()
    }
}

impl Serialize for WithContainer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.event;
        let kind = ev.body.kind();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("integration", "docker")?;
        m.serialize_entry("@timestamp", &ev.time)?;
        m.serialize_entry(
            "event",
            &EventMetaOut {
                kind: kind.kind,
                category: [kind.category],
                types: kind.types,
                action: kind.action,
                outcome: ev.body.outcome(),
                module: MODULE,
                dataset: kind.dataset,
                sequence: (kind.kind == "event").then_some(ev.meta.seq),
            },
        )?;
        let thread = ThreadOut { id: ev.meta.pid };
        let error = match &ev.body {
            Body::Exec(b) => b.write_top(thread, &mut m)?,
            Body::Socket(b) => b.write_top(thread, &mut m)?,
            Body::IoUring(b) => b.write_top(thread, &mut m)?,
            Body::Inventory(b) => b.write_top(thread, &mut m)?,
            Body::Call(b) => b.write_top(thread, &mut m)?,
        };
        if let Some(e) = &error {
            m.serialize_entry("error", e)?;
        }
        match self.container {
            Some(c) => match container_object(c) {
                Some(raw) => m.serialize_entry("container", raw)?,
                None => m.serialize_entry("container", &ContainerOut::of(c))?,
            },
            None if !self.container_id.is_empty() => m.serialize_entry(
                "container",
                &ContainerOut { id: self.container_id, name: None, image: None, labels: None, runtime: "docker" },
            )?,
            None => {}
        }
        let unresolved = self.container.is_none() && !self.container_id.is_empty();
        m.serialize_entry(
            "docker_listener",
            &ListenerOut { ev, container: self.container, unresolved, unknown: self.unknown },
        )?;
        m.end()
    }
}

/// What an event of ours must keep when it is too large for `max_event_size` and is shrunk:
/// what says what happened, to which process, in which container (`shrink`).
pub const SKELETON: &[&[&str]] = &[
    &["integration"],
    &["@timestamp"],
    &["event"],
    &["error", "code"],
    &["process", "pid"],
    &["process", "entity_id"],
    &["process", "executable"],
    &["process", "name"],
    &["process", "parent", "pid"],
    &["process", "parent", "executable"],
    &["container", "id"],
    &["container", "name"],
    &["container", "image", "name"],
    &["source"],
    &["destination"],
    &["server"],
    &["network"],
    &["docker_listener", "syscall"],
    &["docker_listener", "exec", "filename"],
    &["process", "applet"],
    &["docker_listener", "loss"],
    &["docker_listener", "kernel_module"],
    &["docker_listener", "bpf"],
    &["docker_listener", "ptrace", "request"],
    &["docker_listener", "ptrace", "target", "pid"],
    &["docker_listener", "ptrace", "target", "host_pid"],
    &["docker_listener", "namespace"],
    &["docker_listener", "mount", "source"],
    &["docker_listener", "mount", "target"],
    &["docker_listener", "mount", "fstype"],
    &["docker_listener", "chroot"],
    &["docker_listener", "privilege", "raised"],
    &["docker_listener", "privilege", "after"],
    &["docker_listener", "privileged"],
    &["dns", "question"],
    &["docker_listener", "dns", "domain"],
    &["docker_listener", "dns", "suspicious"],
];

/// What of `SKELETON` is cut only when the skeleton cannot fit otherwise: what the agent or the
/// kernel wrote (what happened, when, the pids, the container's id), never a string a process
/// or a container's creator chose (a name, a path, labels, argv), so those cannot push it out.
pub const WHOLE: &[&[&str]] = &[
    &["integration"],
    &["@timestamp"],
    &["event"],
    &["error", "code"],
    &["process", "pid"],
    &["process", "entity_id"],
    &["process", "parent", "pid"],
    &["container", "id"],
    &["docker_listener", "syscall"],
];

/// The agent's own health, for Wazuh (not only the log): a part that does not work, why, what
/// goes unseen meanwhile, and the fix. `status`: `unavailable` (eBPF could not be loaded: Docker
/// events only), `degraded` (loaded without the kernel's BTF), `blind` (one way activity reaches
/// the agent is closed on this kernel), `stopped` (the eBPF monitor failed at run time).
pub fn agent_health_event(component: &str, status: &str, reason: &str, effect: &str) -> Value {
    json!({
        "integration": "docker",
        "@timestamp": rfc3339(now_wall_ns()),
        "event": {"kind": "state", "module": MODULE, "action": "agent-health", "dataset": "docker_listener.agent",
            "outcome": "failure"},
        "docker_listener": {"agent": {
            "component": component,
            "status": status,
            "reason": reason,
            "effect": effect,
            "version": env!("CARGO_PKG_VERSION"),
        }},
    })
}

/// Nanoseconds since the epoch, now (0 if the clock is before it).
pub fn now_wall_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// What one container's budget held back: since the last report (`delta`, and by the budget's
/// class), and since the agent started (`total`).
#[derive(Debug, Default)]
pub struct HeldBackReport {
    pub delta: u64,
    pub total: u64,
    pub by_class: std::collections::BTreeMap<&'static str, u64>,
}

/// A container's records held back by its budget in the kernel (`ebpf.budget_per_second`):
/// not lost to a full buffer, left out on purpose so that its storm cannot cost the others
/// theirs, and counted apart from losses.
pub fn held_back_event(
    container: Option<&Container>,
    cgroup_id: u64,
    r: &HeldBackReport,
    cfg: &crate::config::EbpfConfig,
) -> Value {
    let mut v = json!({
        "integration": "docker",
        "event": {"kind": "metric", "module": MODULE, "action": "events-held-back", "dataset": "docker_listener.loss"},
        "docker_listener": {"held_back": {
            "records": r.delta,
            "records_total": r.total,
            "by_class": r.by_class,
            "cgroup_id": cgroup_id,
            "budget": {"per_second": cfg.budget_per_second, "burst": cfg.budget_burst},
        }},
    });
    if let Some(c) = container {
        v["container"] = json!({"id": c.id, "name": c.name, "image": {"name": c.image}});
    }
    v
}

/// Loss report for the eBPF side.
pub fn ebpf_loss_event(
    delta: u64,
    total: u64,
    by_reason: serde_json::Map<String, Value>,
    generated: u64,
    received: u64,
) -> Value {
    json!({
        "integration": "docker",
        "event": {"kind": "metric", "module": MODULE, "action": "events-lost", "dataset": "docker_listener.loss"},
        "docker_listener": {"loss": {
            "reason": "ebpf",
            "events": delta,
            "events_total": total,
            "by_reason": by_reason,
            "sequence": {"generated": generated, "received": received, "gaps": generated.saturating_sub(received)},
        }},
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn meta() -> Meta {
        Meta { cpu: 0, seq: 3, ktime_ns: 1_000, cgroup_id: 82, pid: 30, tgid: 30 }
    }

    pub fn json(e: &Event, c: Option<&Container>, id: &str) -> Value {
        serde_json::to_value(e.with_container(c, id)).unwrap()
    }

    proptest::proptest! {
        /// The digit-by-digit timestamp and user id are what `fmt` writes, for every time an
        /// i64 of nanoseconds holds (the years 1677 to 2262) and every id.
        #[test]
        fn timestamps_and_ids_are_written_as_fmt_writes_them(ns in proptest::num::i64::ANY, id in proptest::num::u32::ANY) {
            proptest::prop_assert_eq!(serde_json::to_string(&Rfc3339(ns)).unwrap(), format!("\"{}\"", Rfc3339(ns)));
            proptest::prop_assert_eq!(serde_json::to_string(&Decimal(id)).unwrap(), format!("\"{id}\""));
        }
    }

    #[test]
    fn timestamps_at_the_edges_of_the_fast_path() {
        for ns in [0, 1, 999_999_999, 1_795_792_475_014_659_607, -1, i64::MIN, i64::MAX] {
            assert_eq!(serde_json::to_string(&Rfc3339(ns)).unwrap(), format!("\"{}\"", Rfc3339(ns)), "{ns}");
        }
        for id in [0, 9, 10, 99, 100, 65_534, u32::MAX] {
            assert_eq!(serde_json::to_string(&Decimal(id)).unwrap(), format!("\"{id}\""));
        }
    }

    #[test]
    fn rfc3339_round_trips_with_the_parser() {
        for ns in [0, 1_795_792_475_014_659_607, 951_782_400_000_000_001] {
            assert_eq!(crate::registry::rfc3339_ns(&rfc3339(ns)), Some(ns), "{}", rfc3339(ns));
        }
        assert_eq!(rfc3339(1_795_792_475_014_659_607), "2026-11-27T15:14:35.014659607Z");
    }
}
