//! Exec events (`event.action: exec`): a program started, or failed to start, in a container.
//!
//! `process.executable` is the file the kernel executed (from the new image's `mm->exe_file`),
//! `process.name` its file name; what the caller typed is kept apart
//! (`docker_listener.exec.filename`, `.comm`), so `exec -a`, relative paths, symlinks,
//! `/proc/self/exe` and `/dev/fd/N` cannot make the event name another program.
use docker_listener_common::family::cred::Creds;
use serde::{Serialize, ser::SerializeMap};

use super::{ErrorOut, IdOut, JoinedArgs, Kind, Lineup, ProcRef, Shown, SyscallOut, ThreadOut};
use crate::ebpf::record::{Args, ExeFile};

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

/// `docker_listener.exec.file`: the executed file as the kernel has it.
#[derive(Serialize)]
pub(crate) struct FileOut {
    pub inode: u64,
    pub device: String,
    pub filesystem: std::borrow::Cow<'static, str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unlinked: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub memfd: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outside_root: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub chroot: bool,
    /// Run from memory (`ExeFile::fileless`), and why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fileless: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fileless_reason: Option<&'static str>,
    /// On the container's writable layer, not as its image has it (`ExeFile::drift`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
}

impl FileOut {
    pub fn of(f: &ExeFile) -> FileOut {
        FileOut {
            inode: f.ino,
            device: f.device(),
            filesystem: filesystem(f.magic),
            unlinked: f.unlinked,
            memfd: f.is_memfd(),
            outside_root: f.outside_root,
            path_truncated: f.path_truncated,
            chroot: f.chroot,
            fileless: f.fileless().is_some(),
            fileless_reason: f.fileless(),
            drift: f.drift(),
        }
    }
}

/// The filesystem a magic number (`statfs.f_type`, `super_block.s_magic`) names.
pub fn filesystem(fs_magic: u32) -> std::borrow::Cow<'static, str> {
    use docker_listener_common::magic;
    let name = match fs_magic {
        magic::TMPFS => "tmpfs",
        magic::OVERLAYFS => "overlay",
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        magic::HUGETLBFS => "hugetlbfs",
        magic::RAMFS => "ramfs",
        magic::PROC => "proc",
        magic::CGROUP => "cgroup",
        0x6265_6572 => "sysfs",
        0x6969 => "nfs",
        0x7371_7368 => "squashfs",
        0x6573_5546 => "fuse",
        0x2fc1_2fc1 => "zfs",
        0x1373 => "devfs",
        0x0102_1997 => "9p",
        0xf2f5_2010 => "f2fs",
        0x4d44 => "vfat",
        0 => "unknown",
        other => return std::borrow::Cow::Owned(format!("0x{other:x}")),
    };
    std::borrow::Cow::Borrowed(name)
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
    /// into a healthcheck summary (`crate::health`); the first of each program is still sent.
    pub fn routine(&self) -> Option<String> {
        let x = self.exe.as_ref()?;
        let plain = self.ret == 0
            && !self.compat
            && !x.upper
            && x.fileless().is_none()
            && !x.outside_root
            && self.creds.as_ref().is_none_or(|c| PrivilegedOut::of(c).is_none());
        let p = &self.lineup.process;
        plain.then(|| format!("exec {} {}", x.path, p.applet.as_deref().unwrap_or("")))
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
                user: IdOut { id: Shown(self.uid) },
                group: IdOut { id: Shown(self.gid) },
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

/// `docker_listener.args_truncated`, `.args_omitted_bytes`, `.args_unavailable`, when they apply.
pub(crate) fn write_args_flags<M: SerializeMap>(args: &Args, m: &mut M) -> Result<(), M::Error> {
    if args.truncated {
        m.serialize_entry("args_truncated", &true)?;
        if args.omitted_bytes > 0 {
            m.serialize_entry("args_omitted_bytes", &args.omitted_bytes)?;
        }
    }
    if args.unavailable {
        m.serialize_entry("args_unavailable", &true)?;
    }
    if args.redacted {
        m.serialize_entry("args_redacted", &true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::{super::tests::*, *};
    use crate::{
        ecs::{Body, Clock, Event},
        procs::{Image, ProcessTable},
    };

    fn body(table: &mut ProcessTable, ret: i32) -> ExecBody {
        t_exec(table, 20, "/bin/sh", &[]);
        table.on_fork(20, 1, 30, 3_000_000_000, 82);
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

    #[test]
    fn exec_events_name_the_real_file_the_parent_and_the_failures() {
        let mut t = ProcessTable::new("b".into(), 100);
        let b = body(&mut t, 0);
        let v = json(&Event::new(meta(), Clock::fixed(0), Body::Exec(b)), None, "");
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
        let v = json(&Event::new(meta(), Clock::fixed(0), Body::Exec(failed)), None, "");
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["error"]["code"], "ENOENT");
        assert!(v["docker_listener"]["exec"].get("file").is_none());
    }

    #[test]
    fn filesystems_by_magic() {
        assert_eq!(filesystem(0x0102_1994), "tmpfs");
        assert_eq!(filesystem(0x1234), "0x1234");
    }
}
