//! Exec events (`event.action: exec`): a program started, or failed to start, in a container.
//!
//! `process.executable` is the file the kernel executed (from the new image's `mm->exe_file`),
//! `process.name` its file name; what the caller typed is kept apart
//! (`docker_listener.exec.filename`, `.comm`), so `exec -a`, relative paths, symlinks,
//! `/proc/self/exe` and `/dev/fd/N` cannot make the event name another program.
use docker_listener_common::{
    self as common, RecordKind,
    family::{cred::Creds, exec::ExecRecord},
    flags,
};
use serde::{Serialize, ser::SerializeMap};

use super::{Family, Reported};
use crate::{
    ebpf::record::{Args, ExeFile, Meta, Record, RecordError, cstr, decode_args, file_of, meta, pod_ref},
    ecs::{
        Decimal, ErrorOut, IdOut, JoinedArgs, Kind, Lineup, ProcRef, SyscallOut, ThreadOut, parts::FileOut,
        parts::write_args_flags,
    },
};

pub const FAMILY: Family =
    Family { name: "exec", kind: RecordKind::Exec, enabled: |c| c.exec, reported: Reported::Own(decode) };

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub meta: Meta,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// 0, or the negative errno of a failed execve.
    pub ret: i32,
    pub start_ns: u64,
    pub parent_start_ns: u64,
    /// The image generation after this exec (failed: the caller's), and the parent's when it
    /// forked this process (see `ExecRecord`).
    pub exec_id: u64,
    pub parent_exec_id: u64,
    pub comm: String,
    /// The path given to execve, as the caller spelled it.
    pub filename: String,
    /// The file that runs now; `None` for a failed exec, or when the kernel could not say.
    pub exe: Option<ExeFile>,
    pub args: Args,
    /// Made through the 32-bit (ia32) system call ABI.
    pub compat: bool,
    /// The credentials the new image runs with (a successful exec, when the kernel said).
    pub creds: Option<common::family::cred::Creds>,
}

/// Decodes an exec record; argv keeps at most `max_args` arguments.
fn decode(bytes: &[u8], max_args: usize) -> Result<Record, RecordError> {
    let r = pod_ref::<ExecRecord>(bytes)?;
    let args_len = (r.args_len as usize).min(common::ARGS_CAP);
    let head_len = (r.args_head_len as usize).min(args_len);
    let mut args = decode_args(
        &r.args[..head_len],
        &r.args[head_len..args_len],
        u64::from(r.args_total),
        r.flags & flags::ARGS_TRUNCATED != 0,
        max_args,
    );
    args.unavailable = r.flags & flags::ARGS_UNAVAILABLE != 0;
    Ok(Record::Exec(Exec {
        meta: meta(&r.header),
        ppid: r.ppid,
        uid: r.uid,
        gid: r.gid,
        ret: r.ret,
        start_ns: r.start_ns,
        parent_start_ns: r.parent_start_ns,
        exec_id: r.exec_id,
        parent_exec_id: r.parent_exec_id,
        comm: cstr(&r.comm, common::COMM_LEN),
        filename: filename(&r),
        exe: exe_file(&r),
        args,
        compat: r.flags & flags::COMPAT != 0,
        creds: (r.ret == 0 && r.flags & flags::CREDS != 0).then_some(r.creds),
    }))
}

/// The path given to execve, marked where the record cut it (a path longer than the record's
/// room: the kernel ran the whole of it, this is its start).
fn filename(r: &ExecRecord) -> String {
    let mut name = cstr(&r.filename, r.filename_len as usize);
    if r.flags & flags::FILENAME_TRUNCATED != 0 {
        name.push_str(crate::ebpf::record::CUT);
    }
    name
}

fn exe_file(r: &ExecRecord) -> Option<ExeFile> {
    if r.ret != 0 {
        return None;
    }
    let exe = file_of(&r.exe, &r.exe_path)?;
    let ctime_ns = match r.exe_ctime_nsec {
        n if n & common::CTIME_UNKNOWN != 0 => 0,
        n => ExeFile::ctime_of(r.exe_ctime_sec as i64, n),
    };
    Some(ExeFile { ctime_ns, ..exe })
}

/// How long after its last change a file's exec is still fresh, never folded
/// (`ExecBody::routine`): beyond the coarsest file times Linux filesystems keep (ext4's small
/// inodes, a second; FAT's two).
pub const FRESH_NS: i64 = 3_000_000_000;

/// Whether a file whose ctime is `ctime_ns` (0: not known) was written less than `FRESH_NS`
/// before `exec_ns` (wall clock).
pub fn fresh(ctime_ns: u64, exec_ns: i64) -> bool {
    ctime_ns != 0 && exec_ns.saturating_sub(ctime_ns as i64) < FRESH_NS
}

#[derive(Debug, Clone)]
pub struct ExecBody {
    pub lineup: Lineup,
    pub uid: u32,
    pub gid: u32,
    /// 0, or the negative errno of a failed exec.
    pub ret: i32,
    pub args: Args,
    /// The path given to execve, as the caller spelled it.
    pub filename: String,
    /// The kernel's `comm` of the new image (or of the caller, for a failed exec).
    pub comm: String,
    /// The file that runs; `None` for a failed exec or when the kernel could not say.
    pub exe: Option<ExeFile>,
    /// Through the 32-bit system call ABI.
    pub compat: bool,
    /// The kernel's parent at the exec, when it is not `lineup.parent` (the process that
    /// started this one exited and it was reparented, or it was made with `CLONE_PARENT`).
    pub reparented_to: Option<ProcRef>,
    /// The credentials the new image runs with (`None`: a failed exec, or not known).
    pub creds: Option<Creds>,
}

/// `docker_listener.exec.privileged`: the exec gave the process privileges its user does not
/// have by itself: a setuid file (the effective user is not the real one), a setgid file, or
/// capabilities held by a user other than root (file capabilities).
#[derive(Serialize)]
struct PrivilegedOut {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    setuid: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    setgid: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    capabilities: bool,
    credentials: crate::family::cred::CredsOut,
}

impl PrivilegedOut {
    fn of(c: &Creds) -> Option<PrivilegedOut> {
        let (setuid, setgid) = (c.euid != c.uid, c.egid != c.gid);
        let capabilities = c.uid != 0 && c.euid != 0 && c.cap_effective != 0;
        (setuid || setgid || capabilities).then(|| PrivilegedOut {
            setuid,
            setgid,
            capabilities,
            credentials: crate::family::cred::CredsOut::of(c),
        })
    }
}

#[derive(Serialize)]
struct ProcessOut<'a> {
    pid: u32,
    thread: ThreadOut,
    entity_id: crate::procs::EntityId,
    executable: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    applet: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    applet_hidden: bool,
    args: &'a [String],
    args_count: usize,
    command_line: JoinedArgs<'a>,
    user: IdOut,
    group: IdOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a ProcRef>,
    entry_leader: &'a ProcRef,
}

/// `docker_listener.exec`.
#[derive(Serialize)]
struct ExecOut<'a> {
    filename: &'a str,
    comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileOut>,
}

impl ExecBody {
    pub fn kind(&self) -> Kind {
        Kind {
            kind: "event",
            category: "process",
            types: &["start"],
            action: "exec",
            dataset: "docker_listener.process",
        }
    }

    pub fn outcome(&self) -> &'static str {
        if self.ret >= 0 { "success" } else { "failure" }
    }

    /// For an exec that nothing marks (it succeeded, through the native ABI, of a file that is
    /// in the image, not fileless, gaining no privilege): what makes it new in its container,
    /// its program (file and, for a multi-call binary, applet). Only such execs may be folded
    /// into a healthcheck summary (`crate::health`); the first of each command (this key and
    /// the arguments, user and group: `ecs::Event::command_detail`) is still sent.
    /// The file is its path, its identity (inode, device) and its ctime: a program replaced at
    /// the same path on a volume (no overlay upper layer, so not marked as drifted) is a new
    /// program, and so is one rewritten in place (the same inode; the kernel sets the ctime on
    /// every write, and no caller can set it back).
    ///
    /// A file written less than `FRESH_NS` before the exec is never routine: the kernel's ctime
    /// moves with its clock tick (milliseconds; a second or two on filesystems with coarse
    /// times), so a program written, run and rewritten within one tick keeps its ctime; such
    /// an exec opens no window, and the first routine exec of the file is the version that
    /// stayed.
    pub fn routine(&self, exec_ns: i64) -> Option<String> {
        let x = self.exe.as_ref()?;
        let plain = !fresh(x.ctime_ns, exec_ns)
            && self.ret == 0
            && !self.compat
            && !x.upper
            && !x.drift()
            && x.fileless().is_none()
            && !x.outside_root
            && self.creds.as_ref().is_none_or(|c| PrivilegedOut::of(c).is_none());
        let p = &self.lineup.process;
        // "exec PATH APPLET DEV:INO:CTIME", built without the formatting machinery (every
        // plain exec makes one).
        plain.then(|| {
            let applet = p.applet.as_deref().unwrap_or("");
            let (mut dev, mut ino, mut ctime) = (itoa::Buffer::new(), itoa::Buffer::new(), itoa::Buffer::new());
            let (dev, ino, ctime) = (dev.format(x.dev), ino.format(x.ino), ctime.format(x.ctime_ns));
            let mut key = String::with_capacity(9 + x.path.len() + applet.len() + dev.len() + ino.len() + ctime.len());
            for part in ["exec ", &x.path, " ", applet, " ", dev, ":", ino, ":", ctime] {
                key.push_str(part);
            }
            key
        })
    }

    /// `process` (and the error of a failed exec, which the caller writes after it).
    pub(crate) fn write_top<M: SerializeMap>(
        &self,
        thread: ThreadOut,
        m: &mut M,
    ) -> Result<Option<ErrorOut>, M::Error> {
        let p = &self.lineup.process;
        m.serialize_entry(
            "process",
            &ProcessOut {
                pid: p.pid,
                thread,
                entity_id: p.entity_id,
                executable: p.executable.as_deref().unwrap_or(""),
                name: p.name.as_deref().unwrap_or(""),
                applet: p.applet.as_deref(),
                applet_hidden: p.applet_hidden,
                args: &self.args.args,
                args_count: self.args.args.len(),
                command_line: JoinedArgs(&self.args.args),
                user: IdOut { id: Decimal(self.uid) },
                group: IdOut { id: Decimal(self.gid) },
                parent: self.lineup.parent.as_ref(),
                entry_leader: &self.lineup.entry_leader,
            },
        )?;
        Ok((self.ret < 0).then(|| ErrorOut::of_call("execve", i64::from(self.ret))))
    }

    pub(crate) fn write_listener<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("ancestors", &self.lineup.ancestors)?;
        m.serialize_entry("syscall", &SyscallOut::new("execve", i64::from(self.ret), self.compat))?;
        if let Some(k) = &self.reparented_to {
            m.serialize_entry("reparented_to", k)?;
        }
        if let Some(p) = self.creds.as_ref().and_then(PrivilegedOut::of) {
            m.serialize_entry("privileged", &p)?;
        }
        m.serialize_entry(
            "exec",
            &ExecOut { filename: &self.filename, comm: &self.comm, file: self.exe.as_ref().map(FileOut::of) },
        )?;
        write_args_flags(&self.args, m)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{
        ebpf::record::{
            parse,
            tests::{bytes_of, header},
        },
        ecs::tests::{json, meta as a_meta},
    };
    use crate::{
        ecs::{Body, Clock, Event},
        procs::{Image, ProcessTable},
    };

    fn body(table: &mut ProcessTable, ret: i32) -> ExecBody {
        t_exec(table, 20, "/bin/sh", &[]);
        table.on_fork((20, 0), 1, 30, 3_000_000_000, 82);
        let args = vec!["echo".to_owned(), "hi".to_owned()];
        let image = Arc::new(Image::new("/bin/busybox", &args));
        let lineage = table.on_exec(30, 3_000_000_000, 2, 20, 2_000_000_000, 1, image.clone(), 82);
        ExecBody {
            lineup: Lineup::of(&lineage, &[82]),
            uid: 0,
            gid: 0,
            ret,
            args: Args { args, ..Args::default() },
            filename: "/bin/echo".into(),
            comm: "echo".into(),
            exe: Some(ExeFile {
                path: "/bin/busybox".into(),
                ino: 7,
                dev: (8 << 20) | 1,
                magic: 0x794c_7630,
                ..ExeFile::default()
            }),
            compat: false,
            reparented_to: None,
            creds: None,
        }
    }

    fn t_exec(t: &mut ProcessTable, pid: u32, path: &str, args: &[String]) {
        t.on_exec(pid, 2_000_000_000, 1, 10, 0, 0, Arc::new(Image::new(path, args)), 82);
    }

    /// A program is new in its container by its file, not its path alone: one replaced at the
    /// same path (on a volume), or rewritten in place (its ctime), is not folded into a
    /// healthcheck summary as a program seen before.
    #[test]
    fn a_program_is_its_path_applet_and_file() {
        let mut t = ProcessTable::new("b".into(), 100);
        let b = body(&mut t, 0);
        let now = 5_000_000_000_000;
        let first = b.routine(now).expect("a plain exec");
        assert!(first.starts_with("exec /bin/busybox echo "), "{first}");
        let mut replaced = body(&mut t, 0);
        replaced.exe.as_mut().expect("the fixture's file").ino += 1;
        assert_ne!(replaced.routine(now), Some(first.clone()), "another file at the same path");
        let mut rewritten = body(&mut t, 0);
        rewritten.exe.as_mut().expect("the fixture's file").ctime_ns += 4_000_000;
        assert_ne!(rewritten.routine(now), Some(first.clone()), "the same file, rewritten in place");
        assert_eq!(body(&mut t, 0).routine(now), Some(first), "the same file again");
    }

    /// A file changed less than `FRESH_NS` before it ran is never routine (a rewrite within
    /// the kernel's clock tick keeps the ctime); a file whose ctime is not known still is.
    #[test]
    fn a_program_written_just_before_it_runs_is_never_routine() {
        let mut t = ProcessTable::new("b".into(), 100);
        let mut b = body(&mut t, 0);
        let ctime = 5_000_000_000_000;
        b.exe.as_mut().expect("the fixture's file").ctime_ns = ctime as u64;
        assert_eq!(b.routine(ctime + 10_000_000), None, "10 ms after it was written");
        assert_eq!(b.routine(ctime + FRESH_NS - 1), None);
        assert!(b.routine(ctime + FRESH_NS).is_some());
        b.exe.as_mut().expect("the fixture's file").ctime_ns = 0;
        assert!(b.routine(ctime).is_some(), "no ctime: as before");
    }

    /// The ctime an exec record carries, or none when the kernel did not say where it is.
    #[test]
    fn the_executed_file_s_ctime_is_decoded_and_shown() {
        let mut r: ExecRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Exec);
        let path = b"busybox\0bin\0";
        r.exe_path[..path.len()].copy_from_slice(path);
        r.exe.path_len = path.len() as u32;
        r.exe.nlink = 1;
        (r.exe_ctime_sec, r.exe_ctime_nsec) = (1_796_677_729, 773_293_818);
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        let exe = e.exe.expect("a successful exec's file");
        assert_eq!(exe.ctime_ns, 1_796_677_729_773_293_818);
        let shown = serde_json::to_value(FileOut::of(&exe)).unwrap();
        assert_eq!(shown["ctime"], "2026-12-07T21:08:49.773293818Z");
        r.exe_ctime_nsec |= common::CTIME_UNKNOWN;
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        let exe = e.exe.expect("a successful exec's file");
        assert_eq!(exe.ctime_ns, 0);
        assert!(serde_json::to_value(FileOut::of(&exe)).unwrap().get("ctime").is_none());
    }

    #[test]
    fn exec_events_name_the_real_file_the_parent_and_the_failures() {
        let mut t = ProcessTable::new("b".into(), 100);
        let b = body(&mut t, 0);
        let v = json(&Event::new(a_meta(), Clock::fixed(0), Body::Exec(b)), None, "");
        assert_eq!(v["process"]["executable"], "/bin/busybox");
        assert_eq!(v["process"]["name"], "busybox");
        assert_eq!(v["process"]["applet"], "echo");
        assert!(v["process"]["parent"].get("applet").is_none(), "/bin/sh is no multi-call binary");
        assert_eq!(v["docker_listener"]["exec"]["filename"], "/bin/echo");
        assert_eq!(v["docker_listener"]["exec"]["file"], json!({"inode": 7, "device": "8:1", "filesystem": "overlay"}));
        assert_eq!(v["process"]["command_line"], "echo hi");
        assert_eq!(v["process"]["user"]["id"], "0");
        assert_eq!(v["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(v["process"]["parent"]["pid"], 20);
        assert_eq!(v["process"]["parent"]["executable"], "/bin/sh");
        assert_eq!(v["process"]["parent"]["entity_id"], t.entity_id(20, 2_000_000_000).to_string());
        assert_eq!(v["process"]["entry_leader"]["pid"], 20);
        assert_eq!(v["event"]["outcome"], "success");
        assert!(v["docker_listener"].get("args_truncated").is_none());
        let mut failed = body(&mut t, -2);
        failed.exe = None;
        let v = json(&Event::new(a_meta(), Clock::fixed(0), Body::Exec(failed)), None, "");
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["error"]["code"], "ENOENT");
        assert!(v["docker_listener"]["exec"].get("file").is_none());
    }

    #[test]
    fn exec_records_decode_args_and_paths() {
        let mut r: ExecRecord = unsafe { std::mem::zeroed() };
        r.header = header(RecordKind::Exec);
        r.ppid = 50;
        let args = b"sh\0-c\0echo hi\0";
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = args.len() as u32;
        r.filename[..7].copy_from_slice(b"/bin/sh");
        r.filename_len = 7;
        r.comm[..2].copy_from_slice(b"sh");
        r.args_head_len = args.len() as u32;
        let path = b"busybox\0bin\0";
        r.exe_path[..path.len()].copy_from_slice(path);
        r.exe.path_len = path.len() as u32;
        r.exe.nlink = 1;
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(e.args.args, ["sh", "-c", "echo hi"]);
        assert_eq!(e.filename, "/bin/sh");
        assert_eq!(e.exe.as_ref().unwrap().path, "/bin/busybox");
        assert!(!e.exe.as_ref().unwrap().unlinked);
        assert_eq!(e.comm, "sh");
        assert_eq!(e.meta.cgroup_id, 82);
        assert!(!e.args.truncated);
        // A path longer than the record's room: its start, marked cut.
        r.flags = flags::FILENAME_TRUNCATED;
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert_eq!(e.filename, "/bin/sh…");
        r.flags = 0;
        let Record::Exec(e) = parse(&bytes_of(&r), 2).unwrap() else { panic!() };
        assert_eq!(e.args.args, ["sh", "echo hi"], "the first half and the last half");
        assert!(e.args.truncated);
        // A memfd: one detached component, unlinked.
        r.exe_path[..14].copy_from_slice(b"memfd:payload\0");
        r.exe.path_len = 14;
        r.exe.flags = common::exe_flags::DETACHED;
        r.exe.nlink = 0;
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        let exe = e.exe.unwrap();
        assert_eq!(exe.path, "memfd:payload");
        assert!(exe.is_memfd() && exe.unlinked);
        r.exe.flags = common::exe_flags::UNAVAILABLE;
        let Record::Exec(e) = parse(&bytes_of(&r), 64).unwrap() else { panic!() };
        assert!(e.exe.is_none());
    }
}
