//! Ring-buffer records, decoded from the kernel's `#[repr(C)]` layouts into owned values: the
//! dispatch to each family's decoder (`crate::family`), the records every family stands on (the
//! process tree's forks and exits, container cgroups), and what several families' records hold
//! (a file the kernel walked, argv, an address).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use docker_listener_common as common;
use docker_listener_common::{CgroupRecord, ExitRecord, ForkRecord, RecordHeader, RecordKind, SockAddr, exe_flags};

pub use crate::family::{exec::Exec, io_uring::IoUring, socket::Socket};

/// What every record says about where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub cpu: u32,
    pub seq: u64,
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
}

/// The file an exec ran, as the kernel named it (see `ExeFile` in docker-listener-common).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExeFile {
    /// The path as the process's root sees it ("/bin/busybox"); for a file of an internal
    /// filesystem, its name alone ("memfd:payload"); cut at the root end ("…/lib/x") when too deep.
    pub path: String,
    pub ino: u64,
    /// The kernel's dev_t (major << 20 | minor).
    pub dev: u32,
    /// The filesystem's magic number.
    pub magic: u32,
    /// When the file's content or attributes last changed (the inode's ctime, nanoseconds since
    /// the epoch), which no caller can set: with the inode, which file version ran
    /// (`family::exec::ExecBody::routine`). Exec records carry it (and the processes found
    /// running at start, by a stat then); 0 when not known.
    pub ctime_ns: u64,
    /// No name links to it any more (deleted after it started, or a memfd).
    pub unlinked: bool,
    /// On an internal filesystem, reachable by no path (memfd, anonymous shared memory).
    pub detached: bool,
    /// Not in the process's mount namespace (the path is from the top of its own mount tree).
    pub outside_root: bool,
    /// Components of the path are missing (deeper or longer than the record holds; `…` marks
    /// where).
    pub path_truncated: bool,
    /// The process runs chrooted: the path is its mount namespace's, not its chroot's.
    pub chroot: bool,
    /// On an overlay filesystem, with a copy in its upper (writable) layer: for a container's
    /// root, a file created or modified after the container started (`exe_flags::UPPER`).
    pub upper: bool,
}

/// The files a container runtime writes for each container and bind-mounts into it, writable
/// there: Docker's (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`) and Kubernetes'
/// (`/dev/termination-log`). Neither the image's nor an operator's volume.
const RUNTIME_FILES: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log"];

impl ExeFile {
    /// `ctime_ns` from the seconds and nanoseconds of an inode's ctime.
    pub fn ctime_of(sec: i64, nsec: u32) -> u64 {
        (sec as u64).wrapping_mul(1_000_000_000).wrapping_add(u64::from(nsec))
    }

    /// A memfd (`memfd_create`) or another file of the kernel's internal shared-memory mount.
    pub fn is_memfd(&self) -> bool {
        self.detached && self.path.starts_with("memfd:")
    }

    /// Why the file is fileless, if it is: it runs from memory, not from a file that outlives
    /// the process or the container's memory. A memfd; a file of a memory filesystem (tmpfs,
    /// which holds /dev/shm and /dev in containers, ramfs, hugetlbfs); a file no name links to
    /// any more (deleted before or just after it ran).
    pub fn fileless(&self) -> Option<&'static str> {
        if self.is_memfd() {
            return Some("memfd");
        }
        match self.magic {
            common::magic::TMPFS => Some("tmpfs"),
            common::magic::RAMFS => Some("ramfs"),
            common::magic::HUGETLBFS => Some("hugetlbfs"),
            _ if self.unlinked => Some("unlinked"),
            _ => None,
        }
    }

    /// The file drifted from its image: it is on the container's writable layer (created,
    /// copied in, or modified after the container started), or it is one of the files the
    /// runtime writes for the container and mounts into it writable (`RUNTIME_FILES`: a
    /// program written into `/etc/hostname` is the container's, not its image's). Volumes and
    /// other bind mounts are not overlay mounts: a file there never drifts.
    pub fn drift(&self) -> bool {
        if self.magic == common::magic::OVERLAYFS {
            self.upper
        } else {
            !self.outside_root && !self.chroot && RUNTIME_FILES.contains(&self.path.as_str())
        }
    }

    /// "major:minor".
    pub fn device(&self) -> Device {
        Device(self.dev)
    }
}

/// A kernel `dev_t` (major << 20 | minor), shown and serialised as "major:minor" without
/// allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device(pub u32);

impl Device {
    /// "major:minor", written into `buf` (the longest, "4095:1048575", takes 12 bytes).
    pub fn text(self, buf: &mut [u8; 12]) -> &str {
        let (mut major, mut minor) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (major, minor) = (major.format(self.0 >> 20).as_bytes(), minor.format(self.0 & 0xf_ffff).as_bytes());
        let n = major.len() + 1 + minor.len();
        buf[..major.len()].copy_from_slice(major);
        buf[major.len()] = b':';
        buf[major.len() + 1..n].copy_from_slice(minor);
        // Digits and a colon: ASCII.
        std::str::from_utf8(&buf[..n]).unwrap_or_default()
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text(&mut [0; 12]))
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text(&mut [0; 12]))
    }
}

/// argv as the record carries it: all of it, or its head and tail when it was longer than the
/// limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub args: Vec<String>,
    /// Arguments or bytes were left out.
    pub truncated: bool,
    /// Bytes of argv not in `args` (0 when unknown).
    pub omitted_bytes: u64,
    pub unavailable: bool,
    /// A secret was replaced (`crate::redact`).
    pub redacted: bool,
    /// argv as read (its bytes and length, before arguments were dropped for `max_args` or
    /// secrets replaced), hashed with a key secret to this process: argvs that differ only in
    /// what is not shown still differ where events are folded (`ecs::Event::command_detail`).
    /// 0: none (an argv not from `decode_args`).
    pub digest: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    pub meta: Meta,
    pub child_tgid: u32,
    pub child_start_ns: u64,
    pub parent_start_ns: u64,
    /// Which of the parent's images forked it.
    pub parent_exec_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub meta: Meta,
    pub exit_code: i32,
    pub start_ns: u64,
}

/// An endpoint: an IP address and port, or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Ip(IpAddr, u16),
    Unix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub meta: Meta,
    pub created: bool,
    pub id: u64,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The families with records of their own (`crate::family`).
    Exec(Exec),
    Socket(Socket),
    IoUring(IoUring),
    /// A call of a family reported at the system call's exit (`crate::family`).
    Call(crate::family::Call),
    /// The process tree and the container cgroups, which every family stands on.
    Fork(Fork),
    Exit(Exit),
    Cgroup(Cgroup),
}

impl Record {
    pub fn meta(&self) -> &Meta {
        match self {
            Record::Exec(r) => &r.meta,
            Record::Fork(r) => &r.meta,
            Record::Exit(r) => &r.meta,
            Record::Socket(r) => &r.meta,
            Record::IoUring(r) => &r.meta,
            Record::Cgroup(r) => &r.meta,
            Record::Call(r) => &r.meta,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {len} bytes is shorter than its kind needs ({need})")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

pub(crate) fn pod<T: Copy>(bytes: &[u8]) -> Result<T, RecordError> {
    if bytes.len() < size_of::<T>() {
        return Err(RecordError::Short { len: bytes.len(), need: size_of::<T>() });
    }
    // SAFETY: the length was checked, T is a plain-old-data record (every bit pattern valid),
    // and read_unaligned copes with the ring buffer's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A record read where it lies (`pod_ref`): a reference into the ring buffer, or a copy of a
/// record that was not aligned. Either way two words, so that returning it moves no record.
pub(crate) enum PodRef<'a, T> {
    Borrowed(&'a T),
    Copied(Box<T>),
}

impl<T> std::ops::Deref for PodRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            PodRef::Borrowed(r) => r,
            PodRef::Copied(b) => b,
        }
    }
}

/// A record read where it lies: borrowed when `bytes` is aligned for `T` (a ring buffer's
/// records are 8-byte aligned), copied out otherwise. An exec record is 3.7 KiB, which `pod`
/// would copy on every exec (musl's `memcpy` copies it 8 bytes at a time).
pub(crate) fn pod_ref<T: Copy>(bytes: &[u8]) -> Result<PodRef<'_, T>, RecordError> {
    if bytes.len() < size_of::<T>() {
        return Err(RecordError::Short { len: bytes.len(), need: size_of::<T>() });
    }
    if bytes.as_ptr().align_offset(align_of::<T>()) != 0 {
        return pod(bytes).map(|r| PodRef::Copied(Box::new(r)));
    }
    // SAFETY: the length and the alignment were checked, T is a plain-old-data record (every
    // bit pattern valid), and the reference lives no longer than `bytes`.
    Ok(PodRef::Borrowed(unsafe { &*bytes.as_ptr().cast::<T>() }))
}

/// The bytes of a NUL-terminated (or full) C string buffer, at most `len` long.
pub(crate) fn cstr(buf: &[u8], len: usize) -> String {
    let buf = &buf[..len.min(buf.len())];
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub(crate) fn meta(h: &RecordHeader) -> Meta {
    Meta { cpu: h.cpu, seq: h.seq, ktime_ns: h.ktime_ns, cgroup_id: h.cgroup_id, pid: h.pid, tgid: h.tgid }
}

/// Marks where an argument was cut.
pub const CUT: &str = "…";

/// Splits NUL-separated arguments (a trailing NUL leaves no empty last piece).
fn split_nul(buf: &[u8]) -> Vec<String> {
    let mut args: Vec<String> = buf.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    if buf.last() == Some(&0) || buf.is_empty() {
        args.pop();
    }
    args
}

/// argv from the record: `head` bytes from its start, then `tail` bytes from its end when it
/// was cut. The argument cut at the end of the head ends with `…`, the one the tail starts in
/// begins with `…`. At most `max_args` are kept: the first half and the last half.
///
/// Secrets (`crate::redact`) are replaced in every argument read, before any is left out for
/// `max_args`: a secret option and its value are still side by side then (`--password X`, with
/// `--password` dropped and `X` kept). Where the head and the tail meet is told to the redactor
/// (`redact::Gap`), which decides whether the tail's first argument goes on from a secret cut
/// at the head's end.
pub fn decode_args(head: &[u8], tail: &[u8], total: u64, cut: bool, max_args: usize) -> Args {
    let digest = argv_digest(head, tail, total, cut);
    let mut args = split_nul(head);
    let head_cut = cut && head.last().is_some_and(|&b| b != 0) && !args.is_empty();
    if head_cut && let Some(last) = args.last_mut() {
        last.push_str(CUT);
    }
    let mut tail_start = None;
    if cut {
        let mut rest = split_nul(tail);
        if let Some(first) = rest.first_mut() {
            first.insert_str(0, CUT);
            tail_start = Some(args.len());
        }
        args.append(&mut rest);
    }
    let omitted_bytes = total.saturating_sub((head.len() + tail.len()) as u64);
    let redacted = match crate::redact::current() {
        Some(r) => {
            let gap = tail_start.filter(|_| head_cut).and_then(|t| {
                Some(crate::redact::Gap {
                    head_last: t.checked_sub(1)?,
                    tail_first: t,
                    left_out: omitted_bytes > 0,
                    cut: CUT,
                })
            });
            r.args_across(&mut args, gap)
        }
        None => false,
    };
    let mut truncated = cut;
    if args.len() > max_args {
        let keep_tail = max_args / 2;
        let cut_from = max_args - keep_tail;
        args.drain(cut_from..args.len() - keep_tail);
        truncated = true;
    }
    Args { args, truncated, omitted_bytes: if cut { omitted_bytes } else { 0 }, unavailable: false, redacted, digest }
}

/// `Args::digest` of the argv the record carries (`decode_args`' arguments).
pub fn argv_digest(head: &[u8], tail: &[u8], total: u64, cut: bool) -> u64 {
    use std::hash::BuildHasher as _;
    static KEY: std::sync::LazyLock<std::hash::RandomState> = std::sync::LazyLock::new(std::hash::RandomState::new);
    KEY.hash_one((head, tail, total, cut))
}

/// The executed file's path from its components, leaf first and NUL-terminated; an empty
/// component marks where the middle of a too-long path was left out. Written in one pass into
/// one string (an exec's path is rebuilt on every exec).
fn exe_path(buf: &[u8], flags: u32) -> String {
    let detached = flags & exe_flags::DETACHED != 0;
    let mut path = String::with_capacity(buf.len() + CUT.len() + 1);
    if !detached {
        path.push_str(if flags & exe_flags::TRUNCATED != 0 { CUT } else { "" });
        path.push('/');
    }
    let start = path.len();
    // A trailing NUL ends the last component rather than starting an empty one.
    if !buf.is_empty() {
        let body = buf.strip_suffix(b"\0").unwrap_or(buf);
        for (i, part) in body.rsplit(|&b| b == 0).enumerate() {
            if i > 0 {
                path.push('/');
            }
            match part {
                [] => path.push_str(CUT),
                _ => path.push_str(&String::from_utf8_lossy(part)),
            }
        }
    }
    // A walk that ended at a filesystem's root (a file opened by handle beyond its mount):
    // that root's name is "/", the path is from it.
    if detached && path[start..].starts_with("//") {
        path.remove(start);
    }
    path
}

/// A file as the kernel described it (`ExeFile` and its walked path), `None` when it could not.
pub(crate) fn file_of(file: &common::ExeFile, path: &[u8]) -> Option<ExeFile> {
    let f = file.flags;
    if f & exe_flags::UNAVAILABLE != 0 {
        return None;
    }
    let len = (file.path_len as usize).min(common::EXE_PATH_CAP).min(path.len());
    Some(ExeFile {
        path: exe_path(&path[..len], f),
        ino: file.ino,
        dev: file.dev,
        magic: file.magic,
        ctime_ns: 0,
        unlinked: file.nlink == 0,
        detached: f & exe_flags::DETACHED != 0,
        outside_root: f & exe_flags::OUTSIDE_ROOT != 0,
        path_truncated: f & (exe_flags::TRUNCATED | exe_flags::GAP) != 0,
        chroot: f & exe_flags::CHROOT != 0,
        upper: f & exe_flags::UPPER != 0,
    })
}

pub(crate) fn endpoint(a: &SockAddr) -> Option<Endpoint> {
    match a.family {
        2 => {
            let ip = Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3]);
            Some(Endpoint::Ip(IpAddr::V4(ip), a.port))
        }
        10 => {
            let ip = Ipv6Addr::from(a.addr);
            // A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d: report them as IPv4.
            Some(Endpoint::Ip(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4), a.port))
        }
        _ => None,
    }
}

/// The header every ring-buffer record starts with.
pub fn header(bytes: &[u8]) -> Result<RecordHeader, RecordError> {
    pod(bytes)
}

/// Decodes one ring-buffer record.
pub fn parse(bytes: &[u8], max_args: usize) -> Result<Record, RecordError> {
    let header = header(bytes)?;
    let kind = RecordKind::try_from(header.kind).map_err(RecordError::UnknownKind)?;
    if let Some(family) = crate::family::of_kind(kind) {
        return crate::family::decode_record(family, bytes, max_args);
    }
    Ok(match kind {
        RecordKind::Fork => {
            let r: ForkRecord = pod(bytes)?;
            Record::Fork(Fork {
                meta: meta(&r.header),
                child_tgid: r.child_tgid,
                child_start_ns: r.child_start_ns,
                parent_start_ns: r.parent_start_ns,
                parent_exec_id: r.parent_exec_id,
            })
        }
        RecordKind::Exit => {
            let r: ExitRecord = pod(bytes)?;
            Record::Exit(Exit { meta: meta(&r.header), exit_code: r.exit_code, start_ns: r.start_ns })
        }
        RecordKind::Cgroup => {
            let r: CgroupRecord = pod(bytes)?;
            Record::Cgroup(Cgroup {
                meta: meta(&r.header),
                created: r.op == common::cgroup_op::MKDIR,
                id: r.id,
                path: cstr(&r.path, r.path_len as usize),
            })
        }
        // The families' records are decoded above (`family::FAMILIES`): a kind of theirs here
        // is one no family registered.
        _ => return Err(RecordError::UnknownKind(header.kind)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain-old-data value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    pub(crate) fn header(kind: RecordKind) -> RecordHeader {
        RecordHeader { kind: kind as u32, cpu: 1, seq: 7, ktime_ns: 9, cgroup_id: 82, pid: 100, tgid: 100 }
    }

    proptest::proptest! {
        /// A device is shown as it was formatted before `Device` (`"{major}:{minor}"`), as text
        /// and as JSON, for every dev_t.
        #[test]
        fn a_device_reads_major_colon_minor(dev in proptest::num::u32::ANY) {
            let expected = format!("{}:{}", dev >> 20, dev & 0xf_ffff);
            proptest::prop_assert_eq!(Device(dev).to_string(), expected.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&Device(dev)).unwrap(), format!("\"{expected}\""));
        }
    }

    #[test]
    fn cut_argv_keeps_its_head_and_its_tail() {
        // argv = ["sh", "-c", "<padding> evil"], cut to 8 head bytes and 6 tail bytes.
        let a = decode_args(b"sh\0-c\0  ", b" evil\0", 4000, true, 64);
        assert_eq!(a.args, ["sh", "-c", "  …", "… evil"]);
        assert!(a.truncated);
        assert_eq!(a.omitted_bytes, 4000 - 14);
        // A head that ends exactly after an argument: nothing to mark there.
        let a = decode_args(b"sh\0", b"x\0", 10, true, 64);
        assert_eq!(a.args, ["sh", "…x"]);
        let a = decode_args(b"a\0b\0c\0d\0e\0", b"", 10, false, 64);
        assert_eq!(a.args.len(), 5);
        assert!(!a.truncated && a.omitted_bytes == 0);
        let a = decode_args(b"a\0b\0c\0d\0e\0", b"", 10, false, 3);
        assert_eq!(a.args, ["a", "b", "e"]);
        assert!(a.truncated);
        // What was left out still tells two argvs apart (`Args::digest`), and only that.
        let b = decode_args(b"a\0b\0X\0d\0e\0", b"", 10, false, 3);
        assert_eq!((&a.args, a.truncated), (&b.args, b.truncated));
        assert_ne!(a.digest, b.digest, "another argument left out");
        assert_eq!(a.digest, decode_args(b"a\0b\0c\0d\0e\0", b"", 10, false, 3).digest);
    }

    /// argv's bytes, NUL-terminated.
    fn nul(args: &[&str]) -> Vec<u8> {
        args.iter().flat_map(|a| a.bytes().chain([0])).collect()
    }

    #[test]
    fn secrets_are_replaced_before_arguments_are_left_out() {
        // 70 arguments, 64 kept: `--password` is among those left out, its value is kept.
        let mut argv: Vec<String> = (0..70).map(|i| format!("a{i}")).collect();
        argv[37] = "--password".into();
        argv[38] = "hunter2".into();
        argv[0] = "mysql".into();
        argv[60] = "-ps3cret".into();
        let raw = nul(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        let a = decode_args(&raw, b"", raw.len() as u64, false, 64);
        assert_eq!(a.args.len(), 64);
        assert!(a.truncated && a.redacted);
        let shown = a.args.concat();
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{:?}", a.args);
        assert_eq!(a.args[32], "[REDACTED]", "argument 38, the first of the last half");
        assert_eq!(a.args[54], "-p[REDACTED]");
        assert_eq!(a.args[33], "a39", "what follows stays");
    }

    #[test]
    fn a_cut_argument_shows_no_secret_whose_option_was_cut_off() {
        // Each row: head, tail (bytes left out between them), the argv shown, the secret.
        type Case<'a> = (&'a [u8], &'a [u8], &'a [&'a str], &'a str);
        let cases: &[Case] = &[
            // The option ends the head: its value (or its end) starts the tail.
            (
                b"app\0--password\0",
                b"nter2\0--host\0db\0",
                &["app", "--password", "[REDACTED]", "--host", "db"],
                "nter2",
            ),
            // The option's name was cut: the tail starts with a word that may be its value.
            (b"app\0--pass", b"ter2\0run\0", &["app", "--pass…", "…[REDACTED]", "run"], "ter2"),
            (b"curl\0-u", b"ob:hunter2\0https://x\0", &["curl", "-u…", "…[REDACTED]", "https://x"], "hunter2"),
            // The head ends in a secret that may go on in the tail, spaces and all.
            (b"app\0--password=a b", b" c d\0run\0", &["app", "--password=[REDACTED]", "…[REDACTED]", "run"], "c d"),
            (b"sh\0-c\0DB_PASSWORD='a b", b"c d' run\0", &["sh", "-c", "DB_PASSWORD=[REDACTED]", "…[REDACTED]"], "c d"),
        ];
        for (head, tail, want, secret) in cases {
            let a = decode_args(head, tail, 4000, true, 64);
            assert_eq!(a.args, *want, "{:?}", String::from_utf8_lossy(head));
            assert!(a.redacted && a.truncated);
            assert!(!a.args.concat().contains(secret), "{:?}", a.args);
        }
        // The head and the tail side by side (nothing left out): the tail goes on the head's
        // last argument, a secret only when that one ends in a secret.
        let a = decode_args(b"app\0--password=hun", b"ter2\0x\0", 19, true, 64);
        assert_eq!(a.args, ["app", "--password=[REDACTED]", "…[REDACTED]", "x"]);
        let a = decode_args(b"app\0-v\0--na", b"me\0x\0", 16, true, 64);
        assert_eq!(a.args, ["app", "-v", "--na…", "…me", "x"]);
        assert!(!a.redacted);
        // The option among the bytes left out: nothing read says `…er2` is its value, it stays
        // (a limit: `redact::may_be_value` would say it may be, and so would it of any word).
        let a = decode_args(b"app\0-v\0", b"er2\0run\0", 4000, true, 64);
        assert_eq!(a.args, ["app", "-v", "…er2", "run"]);
        // A script's tail after padding stays: it is what the tail is kept for. So does it after
        // a secret that ends before the cut.
        let a = decode_args(b"sh\0-c\0TOKEN=x; echo lo", b"ng; curl x|sh\0", 4000, true, 64);
        assert_eq!(a.args, ["sh", "-c", "TOKEN=[REDACTED]; echo lo…", "…ng; curl x|sh"]);
        let a = decode_args(b"sh\0-c\0  ", b"; curl x|sh\0", 4000, true, 64);
        assert_eq!(a.args, ["sh", "-c", "  …", "…; curl x|sh"]);
        assert!(!a.redacted);
    }

    #[test]
    fn a_program_in_a_file_the_runtime_mounts_writable_is_drift() {
        let file = |path: &str, magic: u32, upper: bool| ExeFile {
            path: path.into(),
            ino: 1,
            dev: 1,
            magic,
            ctime_ns: 0,
            unlinked: false,
            detached: false,
            outside_root: false,
            path_truncated: false,
            chroot: false,
            upper,
        };
        const EXT4: u32 = 0xef53;
        assert!(file("/etc/hostname", EXT4, false).drift(), "Docker's bind mount, on the host's disk");
        assert!(file("/etc/resolv.conf", 0x5846_5342, false).drift(), "on xfs");
        assert!(!file("/data/tool", EXT4, false).drift(), "a volume: the operator's");
        assert!(file("/tmp/x", common::magic::OVERLAYFS, true).drift());
        assert!(!file("/etc/hostname", common::magic::OVERLAYFS, false).drift(), "the image's, untouched");
        assert!(!file("/bin/sh", common::magic::OVERLAYFS, false).drift());
    }

    /// `exe_path` as it was written before its one-pass form: the reference it is checked against.
    fn exe_path_reference(buf: &[u8], flags: u32) -> String {
        let mut parts = split_nul(buf);
        parts.reverse();
        for p in &mut parts {
            if p.is_empty() {
                *p = CUT.to_owned();
            }
        }
        let joined = parts.join("/");
        if flags & exe_flags::DETACHED != 0 {
            // A walk that ended at a filesystem's root (a file opened by handle beyond its mount):
            // that root's name is "/", the path is from it.
            match joined.strip_prefix('/') {
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => joined,
            }
        } else if flags & exe_flags::TRUNCATED != 0 {
            format!("{CUT}/{joined}")
        } else {
            format!("/{joined}")
        }
    }

    proptest::proptest! {
        #[test]
        fn exe_paths_are_those_of_the_reference(
            buf in proptest::collection::vec(proptest::sample::select(vec![0u8, b'/', b'a', 0xff]), 0..12),
            flags in 0u32..32,
        ) {
            proptest::prop_assert_eq!(exe_path(&buf, flags), exe_path_reference(&buf, flags));
        }
    }

    /// Read in place when aligned (as the ring buffer's records are), copied out when not.
    #[test]
    fn a_record_is_read_where_it_lies_or_copied_when_not_aligned() {
        let mut h = header(RecordKind::Exec);
        h.seq = 42;
        let bytes = bytes_of(&h);
        let n = bytes.len();
        let mut words = vec![0u64; n / 8 + 1];
        // SAFETY: any bytes are valid u64s; the slice covers `words` exactly.
        let buf = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) };
        buf[..n].copy_from_slice(&bytes);
        let r = pod_ref::<RecordHeader>(&buf[..n]).unwrap();
        assert!(matches!(r, PodRef::Borrowed(_)) && r.seq == 42);
        buf[1..=n].copy_from_slice(&bytes);
        let r = pod_ref::<RecordHeader>(&buf[1..=n]).unwrap();
        assert!(matches!(r, PodRef::Copied(_)) && r.seq == 42 && r.kind == RecordKind::Exec as u32);
        assert!(matches!(pod_ref::<RecordHeader>(&buf[1..n]), Err(RecordError::Short { .. })));
    }

    #[test]
    fn exe_paths_are_rebuilt_root_first() {
        assert_eq!(exe_path(b"x\0tmp\0", 0), "/tmp/x");
        assert_eq!(exe_path(b"x\0lib\0", exe_flags::TRUNCATED), "…/lib/x");
        assert_eq!(exe_path(b"", 0), "/");
        assert_eq!(exe_path(b"memfd:a b\0", exe_flags::DETACHED), "memfd:a b");
        assert_eq!(exe_path(b"shadow\0etc\0/\0", exe_flags::DETACHED), "/etc/shadow");
        // Too long: the leaf end, the gap, the top-most component.
        assert_eq!(exe_path(b"x\0a\0\0tmp\0", exe_flags::GAP), "/tmp/…/a/x");
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(parse(&[0; 8], 64), Err(RecordError::Short { .. })));
        let mut h = header(RecordKind::Exec);
        h.kind = 999;
        assert_eq!(parse(&bytes_of(&h), 64), Err(RecordError::UnknownKind(999)));
        let h = header(RecordKind::Exec);
        assert!(matches!(parse(&bytes_of(&h), 64), Err(RecordError::Short { .. })));
    }
}
