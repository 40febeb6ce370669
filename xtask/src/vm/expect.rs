//! What the checker makes happen in the container, and what the agent must report about it:
//! the workload script and the expected events, field by field. Everything a schema change
//! touches is in this file.
//!
//! The workload is busybox's shell, started by the checker as the container's first process
//! (in its cgroup, in a network namespace of its own with only `lo`, like
//! `docker run --network none`); it runs busybox applets, which the shell starts by re-executing
//! busybox (`execve("/proc/self/exe", ["nc", ...])`), so `process.args` is the same in every VM
//! and on the host. The marker is this run's own string, so that a stale or foreign event never
//! matches.
//!
//! An exec event names the file the kernel executed (`process.executable`, its path with every
//! symlink resolved, as the process's root sees it), whatever path was given to execve
//! (`docker_listener.exec.filename`); busybox's applet is argv[0]'s file name. The expected
//! files are looked at here, before the checks ([`ExecFile::of`]): in the VMs `/bin/busybox` is
//! busybox and `/bin/echo` a link to it; on the host busybox is wherever its path leads
//! (`/usr/bin/busybox` on a merged-/usr Debian) and `/bin/echo` may be another program.
//!
//! Then the doors past the native system call tracepoints, as `tests/doors.rs` checks them in
//! Docker: the static i386 program [`COMPAT_PROGRAM`] makes its socket calls through the 32-bit
//! (ia32) ABI, once through socketcall(2) (as i386 glibc does) and once directly, and a failed
//! 32-bit execve; [`URING_PROGRAM`] sets up an io_uring and connects through it, which no
//! connect(2) carries, so the agent sees it only by the socket's TCP state change. The agent
//! must also say, in its start-up log, that these doors are open ([`DOORS`]).
use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::Path,
};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::fake_docker::Container;

/// The TCP port the workload's listener binds (in its own network namespace, so any port is free).
pub const LISTEN_PORT: u16 = 8080;
/// A port nothing listens on there: the connect to it is refused.
pub const CLOSED_PORT: u16 = 9;
/// What the workload runs by its path to print the marker: busybox's applet link in the VMs.
pub const MARKER_PROGRAM: &str = "/bin/echo";
/// The path busybox's shell gives execve to start an applet (itself, again).
const SELF_EXE: &str = "/proc/self/exe";
/// Multi-call binaries: their exec events name the applet (argv[0]'s file name).
const MULTI_CALL: &[&str] = &["busybox", "toybox"];

/// The i386 program (tests/programs/compat_net_32.c, `gcc -m32 -static`): bind, listen, connect
/// and accept on 127.0.0.1:PORT through the 32-bit ABI, or a 32-bit execve that fails.
pub const COMPAT_PROGRAM: &str = "compat_net_32";
/// The io_uring program (tests/programs/uring_connect.c, static): listens on 127.0.0.1:PORT,
/// connects to it through a ring (`IORING_OP_CONNECT`), accepts.
pub const URING_PROGRAM: &str = "uring_connect";
/// The 32-bit program's port when its calls go through socketcall(2).
pub const SOCKETCALL_PORT: u16 = 7301;
/// Its port when it makes the direct ia32 socket system calls (359-364).
pub const DIRECT_PORT: u16 = 7302;
/// The io_uring opens program (tests/programs/uring_open.c, static): opens PATH through a ring
/// into a descriptor (`IORING_OP_OPENAT`, `IORING_OP_OPENAT2`), then into the ring's file
/// table, slot 0 and a slot the kernel picks (1). The workload opens `/proc/self/mem` (a
/// sensitive pseudo-file, matched without a file set to resolve).
pub const URING_OPEN_PROGRAM: &str = "uring_open";
/// The io_uring changes program (tests/programs/uring_change.c, static): renames, links or
/// unlinks a name through a ring. The workload moves a file into `/etc/cron.d/` (a sensitive
/// directory) and deletes it there.
pub const URING_CHANGE_PROGRAM: &str = "uring_change";
/// The in-root opens program (tests/programs/open_in_root.c, static): opens NAME with DIR as
/// its root (openat2's `RESOLVE_IN_ROOT`) by the system call, then through a ring with no
/// completion to see (reported by its name), then with one. The workload opens `/shadow` from
/// `/etc` (the host's own /etc/shadow, read-only, on the host; the initramfs's in a VM).
pub const OPEN_IN_ROOT_PROGRAM: &str = "open_in_root";
/// The io_uring program's port.
pub const URING_PORT: u16 = 7401;
/// The thread program (tests/programs/thread_exec.c, static): forks and returns; in the child
/// the main thread ends (`pthread_exit`) and a second thread, 300 ms later, executes PROGRAM.
/// Before Linux 6.16 the exit tracepoint does not say whether an exit ends the process (no
/// `group_dead`), so the agent reads `task->signal->live` there: these kernels (5.10, 6.1,
/// 6.12) are where that read is checked, with the exec's parent.
pub const THREAD_EXEC_PROGRAM: &str = "thread_exec";
/// The fileless program (tests/programs/memfd_exec.c, static): copies busybox into a memfd
/// named `payload` and executes it from there (`fexecve`): no file of it on any filesystem.
/// What says so (the executed file's mapping, its link count, its filesystem) is read from
/// kernel structures whose layout moves between the kernels of the matrix.
pub const MEMFD_PROGRAM: &str = "memfd_exec";
/// The ptrace program (tests/programs/ptrace_poke.c, static), as `ptrace_poke PID`, in a pid
/// namespace of its own with its target: attaches to a `sleep` (pid 2 there), writes into it
/// (`PTRACE_POKEDATA`), detaches, writes into it again (`process_vm_writev`) and ends at once.
/// Who the write went into is read by the agent in the kernel at the call's exit (the caller's
/// tracees, the tracee's pid in the caller's pid namespace; a write's target is never searched
/// in /proc), and where the caller's pids are (its pid namespace's level and inode), by which
/// the agent finds `process_vm_writev`'s target in /proc once the caller is gone: kernel
/// structures whose offsets are checked here on each kernel. Without them the write's target
/// would be named by its pid only.
pub const PTRACE_PROGRAM: &str = "ptrace_poke";
/// The Unix connect program (tests/programs/unix_connect.c, static), as `unix_connect PATH`
/// (and `--own PATH`, see [`OWN_SOCKET`]):
/// the workload connects to the fake Docker API's socket through a symlink (the checker's). The
/// listener it reached, by the name it was bound with (`docker_listener.socket.peer_address`),
/// is read in the kernel from the connected socket's peer (`unix_sock.peer`, `.addr`; the
/// layout of `unix_address` moved between these kernels).
pub const UNIX_CONNECT_PROGRAM: &str = "unix_connect";
/// The pidfd program (tests/programs/pidfd_setns.c, static), as `pidfd_setns` (no arguments:
/// its parent's parent, the shell's parent, the checker): enters the checker's network
/// namespace (the host's; the workload has one of its own) through a pidfd,
/// which names no namespace; where the call took its caller is read in the kernel at its exit
/// (`nsproxy`'s namespaces). (Not pid 1's: on these CI machines pid 1 refuses ptrace access,
/// which a setns by its pidfd needs.)
pub const PIDFD_SETNS_PROGRAM: &str = "pidfd_setns";

/// The doors the agent's start-up log must say are open (`seen: <door>: active`), by the names
/// docker-listener/src/ebpf/attach.rs gives them: those the programs above go through, the
/// executed files' walk, which every exec event's `process.executable` comes from, and the
/// exit-reported families the workload's unshare, mount, chroot, rmmod and its read of its own
/// memory go through, and the programs the exit program tail-calls and io_uring's opens (each
/// verified by every kernel: a program is refused as a whole).
pub const DOORS: &[&str] = &[
    "32-bit system calls",
    "TCP connects without connect(2)",
    "io_uring setups",
    "io_uring opens",
    "io_uring opens into fixed files",
    "io_uring changes by name",
    "io_uring completion overflows",
    "executed files",
    "kernel-module",
    "namespace-change",
    "file-access",
    "opens by handle",
    "network",
];

/// The doors a kernel of the matrix does not have, by its release: the start-up log must say
/// each is unavailable (`not seen: <door>: unavailable`), and the events that go through it
/// ([`NEEDS`]) are not expected there. Linux 5.10: its io_uring requests (`io_kiocb`) have no
/// `cqe` (its result) in its BTF, so the agent cannot read them at their completion.
pub fn closed_doors(release: &str) -> &'static [&'static str] {
    if release.starts_with("5.10.") {
        &[
            "io_uring opens",
            "io_uring opens into fixed files",
            "io_uring changes by name",
            "io_uring completion overflows",
        ]
    } else {
        &[]
    }
}

/// The expected events that only a door's program reports: (event, door).
pub const NEEDS: &[(&str, &str)] = &[
    ("io_uring open into a fixed file", "io_uring opens into fixed files"),
    ("io_uring open into a fixed file the kernel picked", "io_uring opens into fixed files"),
    ("io_uring rename into a sensitive directory", "io_uring changes by name"),
    ("io_uring unlink in a sensitive directory", "io_uring changes by name"),
    ("io_uring in-root open by its name", "io_uring opens"),
    ("io_uring Unix connect", "io_uring opens"),
];

/// The shell script the container's first process runs (`sh -c <script>`). It runs the C
/// programs through the variables of [`program_env`], which hold their resolved paths: the
/// path given to execve is the executable's, and the script's length (the shell's argv, which
/// the agent keeps up to `ebpf.argv_max_bytes`) does not depend on where the checkout is.
pub fn script(marker: &str) -> String {
    format!(
        "ip link set lo up
{MARKER_PROGRAM} {marker} one two
$T {MARKER_PROGRAM} thread-{marker}
$M payload $B echo memfd-{marker}
unshare -pf sh -c 'sleep 29&sleep .3;$P $!;sleep 1'
/bin/nope-{marker}
nc -l -p {LISTEN_PORT} >/dev/null &
for i in $(seq 200); do netstat -ltn | grep -q ':{LISTEN_PORT} ' && break; sleep 0.05; done
echo hi | nc 127.0.0.1 {LISTEN_PORT}
nc 127.0.0.1 {CLOSED_PORT}
wait
$C socketcall {SOCKETCALL_PORT}
$C direct {DIRECT_PORT}
$C exec {}
$U {URING_PORT}
$O /proc/self/mem
mkdir -p /etc/cron.d; echo job > /etc/{marker}
$X rename /etc/{marker} /etc/cron.d/{marker}
$X unlink /etc/cron.d/{marker}
$R /etc /shadow
$N $D
$N --own {OWN_SOCKET}
$U $D
$S
unshare -m sh -c 'm={mnt};mkdir -p $m;mount -t tmpfs none $m;umount $m'
chroot / true
rmmod {MODULE}
dd if=/proc/self/mem of=/dev/null bs=1 count=1
sh -c 'exec 99</dev/null;cat /etc//shadow;dd if=/proc/self//mem bs=1 count=1' >/dev/null
",
        missing_32(marker),
        mnt = mount_point(marker),
    )
}

/// The environment that names [`script`]'s programs: `C` the 32-bit one, `U` the io_uring
/// connect, `O` the io_uring opens, `X` the io_uring changes, `R` the in-root opens, `T` the
/// thread that executes after its process's main thread ended, `M` the fileless one, `P` the
/// ptrace one, `N` the Unix connect, `S` the pidfd one (in that order in `programs`), `B`
/// busybox, which `M` copies, and `D` a symlink to the fake Docker API's socket, which `N`
/// connects to.
pub fn program_env(
    programs: [&ExecFile; 10],
    busybox: &ExecFile,
    docker_symlink: &str,
) -> [(&'static str, String); 12] {
    let [compat, uring, uring_open, uring_change, open_in_root, thread_exec, memfd, ptrace, unix_connect, pidfd_setns] =
        programs;
    [
        ("C", compat.path.clone()),
        ("U", uring.path.clone()),
        ("O", uring_open.path.clone()),
        ("X", uring_change.path.clone()),
        ("R", open_in_root.path.clone()),
        ("T", thread_exec.path.clone()),
        ("M", memfd.path.clone()),
        ("P", ptrace.path.clone()),
        ("N", unix_connect.path.clone()),
        ("S", pidfd_setns.path.clone()),
        ("B", busybox.path.clone()),
        ("D", docker_symlink.to_owned()),
    ]
}

/// Bytes of the shell's argv for `script` (`sh`, `-c`, the script, each NUL-terminated), as
/// the agent counts them against `ebpf.argv_max_bytes`.
pub fn shell_argv_bytes(script: &str) -> usize {
    3 + 3 + script.len() + 1
}

/// The abstract Unix name the checker's child binds before it executes the workload's shell.
pub const CHECKER_SOCKET: &str = "dl-kmx-checker";

/// The agent's default `ebpf.argv_max_bytes`, which the kernel matrix runs with: the shell's
/// argv (`sh`, `-c`, the script, each NUL-terminated) must fit, or its exec event is cut
/// (`args_truncated`) and the check of its arguments fails.
pub const AGENT_ARGV_MAX: usize = 1024;

/// Where the workload binds a Unix listener of its own and connects to it
/// ([`UNIX_CONNECT_PROGRAM`] `--own`), as a runtime run inside a container (docker-in-docker's)
/// does: the bind's socket file, read in the kernel, names the container the connect reached.
const OWN_SOCKET: &str = "/tmp/kmx-own.sock";

/// Where the workload mounts a tmpfs, in a mount namespace of its own (`unshare -m`).
fn mount_point(marker: &str) -> String {
    format!("/tmp/kmx-{marker}")
}

/// The module the workload asks to unload: none is loaded by that name (ENOENT, or ENOSYS on a
/// kernel built without modules).
const MODULE: &str = "kmx_nope";

/// What the 32-bit program fails to execute.
fn missing_32(marker: &str) -> String {
    format!("/nope32-{marker}")
}

/// A file the workload executes, as the kernel (and so the agent) will describe it.
#[derive(Debug, Clone)]
pub struct ExecFile {
    /// The path given to execve.
    pub given: String,
    /// The file it leads to, every symlink resolved: `process.executable`.
    pub path: String,
    /// Its file name: `process.name`.
    pub name: String,
    pub inode: u64,
    /// `major:minor` of its filesystem.
    pub device: String,
    /// Its filesystem's name by its magic number (`statfs`), as the agent names it; `None` for a
    /// filesystem this checker does not know (then any name passes).
    pub filesystem: Option<&'static str>,
    /// The end of its ctime as the agent writes it (RFC 3339, UTC): the time of day and the
    /// nanoseconds, "T21:08:49.773293818Z", which a wrong offset would not give.
    pub ctime_tail: String,
}

impl ExecFile {
    pub fn of(given: &Path) -> Result<ExecFile> {
        let real = std::fs::canonicalize(given).with_context(|| format!("cannot resolve {}", given.display()))?;
        let meta = std::fs::metadata(&real).with_context(|| format!("cannot stat {}", real.display()))?;
        let c = CString::new(real.as_os_str().as_bytes()).context("a path with a NUL byte")?;
        // SAFETY: an all-zero statfs is valid, and statfs(2) writes it from a NUL-terminated path.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        let magic = if unsafe { libc::statfs(c.as_ptr(), &mut fs) } == 0 { Some(fs.f_type as u32) } else { None };
        Ok(ExecFile {
            given: given.display().to_string(),
            name: real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            path: real.display().to_string(),
            inode: meta.ino(),
            device: format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev())),
            filesystem: magic.and_then(filesystem),
            ctime_tail: {
                let day = meta.ctime().rem_euclid(86_400);
                format!("T{:02}:{:02}:{:02}.{:09}Z", day / 3600, day / 60 % 60, day % 60, meta.ctime_nsec())
            },
        })
    }

    fn multi_call(&self) -> bool {
        MULTI_CALL.contains(&self.name.as_str())
    }
}

/// The filesystems the workload's files may be on (in an initramfs: tmpfs or ramfs), by magic
/// number, named as the agent names them.
fn filesystem(magic: u32) -> Option<&'static str> {
    Some(match magic {
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0xef53 => "ext4",
        0x794c_7630 => "overlay",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x7371_7368 => "squashfs",
        _ => return None,
    })
}

/// What is known when the events are checked.
pub struct Facts<'a> {
    pub container: &'a Container,
    pub marker: &'a str,
    pub script: &'a str,
    /// The checker itself: the parent of the container's first process.
    pub checker_pid: u32,
    /// The container's first process, the shell.
    pub sh_pid: u32,
    /// busybox, as the workload starts it (the shell, and every applet the shell re-executes).
    pub busybox: &'a ExecFile,
    /// [`MARKER_PROGRAM`].
    pub marker_program: &'a ExecFile,
    /// [`COMPAT_PROGRAM`], as the workload runs it.
    pub compat: &'a ExecFile,
    /// [`URING_PROGRAM`], as the workload runs it.
    pub uring: &'a ExecFile,
    /// [`URING_OPEN_PROGRAM`], as the workload runs it.
    pub uring_open: &'a ExecFile,
    /// [`URING_CHANGE_PROGRAM`], as the workload runs it.
    pub uring_change: &'a ExecFile,
    /// [`OPEN_IN_ROOT_PROGRAM`], as the workload runs it.
    pub open_in_root: &'a ExecFile,
    /// [`THREAD_EXEC_PROGRAM`], as the workload runs it.
    pub thread_exec: &'a ExecFile,
    /// [`MEMFD_PROGRAM`], as the workload runs it.
    pub memfd: &'a ExecFile,
    /// [`PTRACE_PROGRAM`], as the workload runs it.
    pub ptrace: &'a ExecFile,
    /// [`UNIX_CONNECT_PROGRAM`], as the workload runs it.
    pub unix_connect: &'a ExecFile,
    /// [`PIDFD_SETNS_PROGRAM`], as the workload runs it.
    pub pidfd_setns: &'a ExecFile,
    /// The fake Docker API's socket, as it was bound, and the symlink to it the workload
    /// connects through.
    pub docker_socket: &'a str,
    pub docker_symlink: &'a str,
}

/// What a field must hold.
#[derive(Debug, Clone)]
pub enum Want {
    Is(Value),
    /// The value of a field of another expected event (by its name): e.g. a socket event's
    /// `process.pid` is the pid of the exec that started the program.
    SameAs(&'static str, &'static str),
    /// A number at least this.
    AtLeast(u64),
    /// Any non-empty string.
    NonEmptyString,
    /// A string ending so.
    EndsWith(String),
    /// Not in the event.
    Absent,
    /// Absent, or any value but this one.
    Not(Value),
    /// The field has this value, and no other event of the container is selected by the same
    /// fields (the event is reported once, not also by a second program).
    Once(Value),
}

/// One event the agent must have sent for the container.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: &'static str,
    /// The event is the first of the container's whose fields have these values.
    pub select: Vec<(&'static str, Value)>,
    /// Then each of these is one check.
    pub fields: Vec<(&'static str, Want)>,
}

/// The expected events, in the order the workload makes them.
pub fn expected(f: &Facts) -> Vec<Expected> {
    use Want::{Absent, Is, NonEmptyString, Not, Once, SameAs};
    let c = f.container;
    let exec = |args: Value| vec![("event.action", json!("exec")), ("process.args", args)];
    let in_the_container = || vec![("container.id", Is(json!(c.id))), ("container.name", Is(json!(c.name)))];
    // What an exec of `file` by the path `given`, with `applet` as argv[0]'s file name, reports
    // of the process and of the file.
    let ran = |file: &ExecFile, given: &str, applet: &str| {
        let mut v = vec![
            ("process.executable", Is(json!(file.path))),
            ("process.name", Is(json!(file.name))),
            ("process.applet", if file.multi_call() { Is(json!(applet)) } else { Absent }),
            ("docker_listener.exec.filename", Is(json!(given))),
            ("docker_listener.exec.comm", Is(json!(comm(given)))),
            ("docker_listener.exec.file.inode", Is(json!(file.inode))),
            ("docker_listener.exec.file.device", Is(json!(file.device))),
            ("docker_listener.exec.file.filesystem", file.filesystem.map_or(Want::NonEmptyString, |n| Is(json!(n)))),
            ("docker_listener.exec.file.ctime", Want::EndsWith(file.ctime_tail.clone())),
        ];
        // Flags appear only when true, and none is here: a file on disk, under the root.
        for flag in [
            "docker_listener.exec.file.unlinked",
            "docker_listener.exec.file.memfd",
            "docker_listener.exec.file.outside_root",
            "docker_listener.exec.file.path_truncated",
        ] {
            v.push((flag, Absent));
        }
        v
    };
    let sh_applet = || if f.busybox.multi_call() { Is(json!("sh")) } else { Absent };
    // The shell, as its children's events name it (parent, entry leader, ancestor).
    macro_rules! the_shell {
        ($role:literal) => {
            vec![
                (concat!($role, ".pid"), Is(json!(f.sh_pid))),
                (concat!($role, ".executable"), Is(json!(f.busybox.path))),
                (concat!($role, ".name"), Is(json!(f.busybox.name))),
                (concat!($role, ".applet"), sh_applet()),
            ]
        };
    }
    let from_the_shell = |file: &ExecFile, given: &str, applet: &str| {
        let mut v = in_the_container();
        v.push(("event.outcome", Is(json!("success"))));
        v.extend(ran(file, given, applet));
        v.extend(the_shell!("process.parent"));
        v
    };
    // An applet the shell starts by re-executing busybox.
    let applet = |name: &str| from_the_shell(f.busybox, SELF_EXE, name);
    let with = |mut base: Vec<(&'static str, Want)>, more: Vec<(&'static str, Want)>| {
        base.extend(more);
        base
    };
    let nc = |pid_of: &'static str| {
        vec![
            ("process.pid", SameAs(pid_of, "process.pid")),
            ("process.executable", Is(json!(f.busybox.path))),
            ("process.applet", if f.busybox.multi_call() { Is(json!("nc")) } else { Absent }),
        ]
    };
    let mut all = vec![
        Expected {
            name: "exec of the container's shell",
            select: exec(json!(["sh", "-c", f.script])),
            fields: with(
                in_the_container(),
                [
                    vec![
                        ("event.outcome", Is(json!("success"))),
                        ("container.image.name", Is(json!(c.image))),
                        ("container.image.id", Is(json!(c.image_id))),
                        ("container.labels", Is(json!(c.labels))),
                        ("container.runtime", Is(json!("docker"))),
                        ("docker_listener.container_started_time_nano", Is(json!(c.started_ns))),
                        ("process.pid", Is(json!(f.sh_pid))),
                        ("process.parent.pid", Is(json!(f.checker_pid))),
                        ("process.user.id", Is(json!("0"))),
                        // The container's first process leads itself; its parent is outside.
                        ("process.entry_leader.pid", Is(json!(f.sh_pid))),
                        ("process.entry_leader.applet", sh_applet()),
                        ("docker_listener.ancestors", Is(json!([]))),
                    ],
                    ran(f.busybox, &f.busybox.given, "sh"),
                ]
                .concat(),
            ),
        },
        Expected {
            name: "exec of the marker",
            select: exec(json!([MARKER_PROGRAM, f.marker, "one", "two"])),
            fields: with(
                from_the_shell(f.marker_program, MARKER_PROGRAM, "echo"),
                [
                    vec![("process.args_count", Is(json!(4)))],
                    the_shell!("process.entry_leader"),
                    the_shell!("docker_listener.ancestors.0"),
                    vec![("docker_listener.ancestors.1", Absent)],
                ]
                .concat(),
            ),
        },
        Expected {
            name: "exec of the thread program",
            select: exec(json!([f.thread_exec.path, MARKER_PROGRAM, format!("thread-{}", f.marker)])),
            fields: from_the_shell(f.thread_exec, &f.thread_exec.path, THREAD_EXEC_PROGRAM),
        },
        // Its child's main thread ended before the second thread executed: the process lived
        // on, and its exec names it as the parent (the agent that took the leader's exit for
        // the process's named the init it was handed to), below the container's shell.
        Expected {
            name: "exec by a second thread after the main one ended",
            select: exec(json!([MARKER_PROGRAM, format!("thread-{}", f.marker)])),
            fields: with(
                in_the_container(),
                [
                    vec![("event.outcome", Is(json!("success")))],
                    ran(f.marker_program, MARKER_PROGRAM, "echo"),
                    vec![
                        ("process.parent.executable", Is(json!(f.thread_exec.path))),
                        ("process.parent.name", Is(json!(f.thread_exec.name))),
                    ],
                    the_shell!("process.entry_leader"),
                ]
                .concat(),
            ),
        },
        Expected {
            name: "exec of the fileless program",
            select: exec(json!([f.memfd.path, "payload", f.busybox.path, "echo", format!("memfd-{}", f.marker)])),
            fields: from_the_shell(f.memfd, &f.memfd.path, MEMFD_PROGRAM),
        },
        // busybox run from a memfd: fileless, whatever the kernel.
        Expected {
            name: "exec from a memfd",
            select: exec(json!(["echo", format!("memfd-{}", f.marker)])),
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.executable", Is(json!("memfd:payload"))),
                    // memfd_exec became busybox: the process is the one the shell started.
                    ("process.pid", SameAs("exec of the fileless program", "process.pid")),
                    ("process.parent.pid", Is(json!(f.sh_pid))),
                    ("docker_listener.exec.filename", NonEmptyString),
                    ("docker_listener.exec.file.memfd", Is(json!(true))),
                    ("docker_listener.exec.file.unlinked", Is(json!(true))),
                    ("docker_listener.exec.file.fileless", Is(json!(true))),
                    ("docker_listener.exec.file.fileless_reason", Is(json!("memfd"))),
                    ("docker_listener.exec.file.filesystem", Is(json!("tmpfs"))),
                    ("docker_listener.exec.file.drift", Absent),
                ],
            ),
        },
        Expected {
            name: "exec of the tracee",
            select: exec(json!(["sleep", "29"])),
            fields: with(in_the_container(), vec![("event.outcome", Is(json!("success")))]),
        },
        Expected {
            name: "exec of the ptrace program",
            select: vec![("event.action", json!("exec")), ("process.executable", json!(f.ptrace.path))],
            // (Below unshare, not the shell: its own pid namespace.)
            fields: with(
                in_the_container(),
                [
                    vec![("event.outcome", Is(json!("success"))), ("process.args.1", Is(json!("2")))],
                    ran(f.ptrace, &f.ptrace.path, PTRACE_PROGRAM),
                ]
                .concat(),
            ),
        },
        // The attach and the write into the tracee name their target as the kernel has it:
        // the caller's tracee, the sleep (the caller is gone before the agent reads /proc).
        Expected {
            name: "ptrace attach",
            select: vec![("event.action", json!("ptrace")), ("docker_listener.ptrace.request", json!("PTRACE_ATTACH"))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.pid", SameAs("exec of the ptrace program", "process.pid")),
                    ("docker_listener.ptrace.target.host_pid", SameAs("exec of the tracee", "process.pid")),
                    ("docker_listener.ptrace.target.entity_id", SameAs("exec of the tracee", "process.entity_id")),
                ],
            ),
        },
        Expected {
            name: "ptrace write",
            select: vec![
                ("event.action", json!("ptrace")),
                ("docker_listener.ptrace.request", json!("PTRACE_POKEDATA")),
            ],
            fields: with(
                in_the_container(),
                vec![
                    ("error.code", Is(json!("EIO"))),
                    ("process.pid", SameAs("exec of the ptrace program", "process.pid")),
                    ("docker_listener.ptrace.target.host_pid", SameAs("exec of the tracee", "process.pid")),
                    ("docker_listener.ptrace.target.entity_id", SameAs("exec of the tracee", "process.entity_id")),
                ],
            ),
        },
        // After the detach: the target found in /proc at the caller's level of pid namespaces,
        // which the kernel gave (the caller is gone).
        Expected {
            name: "process_vm_writev",
            select: vec![("event.action", json!("process-vm-write"))],
            fields: with(
                in_the_container(),
                vec![
                    ("error.code", Is(json!("EFAULT"))),
                    ("process.pid", SameAs("exec of the ptrace program", "process.pid")),
                    ("docker_listener.ptrace.target.pid", Is(json!(2))),
                    ("docker_listener.ptrace.target.host_pid", SameAs("exec of the tracee", "process.pid")),
                    ("docker_listener.ptrace.target.same_container", Is(json!(true))),
                ],
            ),
        },
        Expected {
            name: "failed exec",
            select: exec(json!([format!("/bin/nope-{}", f.marker)])),
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("failure"))),
                    ("error.code", Is(json!("ENOENT"))),
                    ("docker_listener.syscall.ret", Is(json!(-2))),
                    ("process.parent.pid", Is(json!(f.sh_pid))),
                    ("docker_listener.exec.filename", Is(json!(format!("/bin/nope-{}", f.marker)))),
                    // Nothing was executed.
                    ("docker_listener.exec.file", Absent),
                ],
            ),
        },
        Expected {
            name: "exec of the listener",
            select: exec(json!(["nc", "-l", "-p", LISTEN_PORT.to_string()])),
            fields: applet("nc"),
        },
        Expected {
            name: "bind",
            select: vec![("event.action", json!("bind")), ("server.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                [
                    vec![
                        ("event.outcome", Is(json!("success"))),
                        ("network.transport", Is(json!("tcp"))),
                        ("process.entity_id", SameAs("exec of the listener", "process.entity_id")),
                    ],
                    nc("exec of the listener"),
                ]
                .concat(),
            ),
        },
        Expected {
            name: "listen",
            select: vec![("event.action", json!("listen")), ("server.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.pid", SameAs("exec of the listener", "process.pid")),
                ],
            ),
        },
        Expected {
            name: "exec of the client",
            select: exec(json!(["nc", "127.0.0.1", LISTEN_PORT.to_string()])),
            fields: applet("nc"),
        },
        Expected {
            name: "connect",
            select: vec![("event.action", json!("connect")), ("destination.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                [
                    vec![
                        ("event.outcome", Is(json!("success"))),
                        ("destination.ip", Is(json!("127.0.0.1"))),
                        ("source.ip", Is(json!("127.0.0.1"))),
                        ("network.transport", Is(json!("tcp"))),
                        ("network.type", Is(json!("ipv4"))),
                    ],
                    nc("exec of the client"),
                ]
                .concat(),
            ),
        },
        Expected {
            name: "accept",
            select: vec![("event.action", json!("accept")), ("destination.port", json!(LISTEN_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("source.ip", Is(json!("127.0.0.1"))),
                    ("source.port", SameAs("connect", "source.port")),
                    ("process.pid", SameAs("exec of the listener", "process.pid")),
                ],
            ),
        },
        Expected {
            name: "exec of the refused client",
            select: exec(json!(["nc", "127.0.0.1", CLOSED_PORT.to_string()])),
            fields: applet("nc"),
        },
        Expected {
            name: "refused connect",
            select: vec![("event.action", json!("connect")), ("destination.port", json!(CLOSED_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("failure"))),
                    ("error.code", Is(json!("ECONNREFUSED"))),
                    ("destination.ip", Is(json!("127.0.0.1"))),
                    ("network.transport", Is(json!("tcp"))),
                    ("process.pid", SameAs("exec of the refused client", "process.pid")),
                ],
            ),
        },
    ];
    // The 32-bit program, started by the 64-bit shell: a native exec (no `syscall.abi`) of an
    // i386 file; then its socket calls, each through the ia32 ABI.
    // `name` is the expected event's; it is selected by its action and its port as `port_field`.
    let ia32 = |run: &CompatRun, name: &'static str, action: &str, more: Vec<(&'static str, Want)>| {
        let port_field = if matches!(action, "bind" | "listen") { "server.port" } else { "destination.port" };
        let mut fields = in_the_container();
        fields.extend([
            ("event.outcome", Is(json!("success"))),
            ("docker_listener.syscall.abi", Is(json!("ia32"))),
            ("process.executable", Is(json!(f.compat.path))),
            ("process.pid", SameAs(run.exec, "process.pid")),
            ("network.transport", Is(json!("tcp"))),
        ]);
        fields.extend(more);
        Expected { name, select: vec![("event.action", json!(action)), (port_field, json!(run.port))], fields }
    };
    for run in &COMPAT_RUNS {
        all.push(Expected {
            name: run.exec,
            select: exec(json!([f.compat.path, run.how, run.port.to_string()])),
            fields: with(
                from_the_shell(f.compat, &f.compat.path, COMPAT_PROGRAM),
                vec![("docker_listener.syscall.abi", Absent)],
            ),
        });
        all.extend([
            ia32(run, run.bind, "bind", vec![]),
            ia32(run, run.listen, "listen", vec![]),
            // Once: the TCP-state program sees it too, and must leave it to the system call's.
            ia32(run, run.connect, "connect", vec![("destination.ip", Once(json!("127.0.0.1")))]),
            ia32(run, run.accept, "accept", vec![("source.port", SameAs(run.connect, "source.port"))]),
        ]);
    }
    let missing = missing_32(f.marker);
    all.push(Expected {
        name: "failed 32-bit exec",
        select: vec![("event.action", json!("exec")), ("docker_listener.exec.filename", json!(missing))],
        fields: with(
            in_the_container(),
            vec![
                ("event.outcome", Is(json!("failure"))),
                ("error.code", Is(json!("ENOENT"))),
                ("docker_listener.syscall.ret", Is(json!(-2))),
                ("docker_listener.syscall.abi", Is(json!("ia32"))),
                // argv read as 32-bit pointers.
                ("process.args", Is(json!([missing, "compat"]))),
                ("process.parent.pid", Is(json!(f.sh_pid))),
                ("docker_listener.exec.file", Absent),
            ],
        ),
    });
    // The io_uring program: its ring's setup, and a connect no connect(2) made, seen when the
    // socket went to SYN_SENT (its source port is not chosen yet, and its end is not seen).
    let by_the_uring_program = || ("process.pid", SameAs("exec of the io_uring program", "process.pid"));
    // The families reported at the system call's exit: a namespace, a mount, a chroot, a
    // module unload, each with its outcome (no seccomp here: they succeed, but the unload).
    let by_busybox = || ("process.executable", Is(json!(f.busybox.path)));
    let call =
        |name: &'static str, action: &str, extra: Vec<(&'static str, Value)>, fields: Vec<(&'static str, Want)>| {
            let mut select = vec![("event.action", json!(action))];
            select.extend(extra);
            Expected { name, select, fields: with(in_the_container(), fields) }
        };
    let mnt = mount_point(f.marker);
    all.extend([
        // The checker's own unshare of a network namespace, made in the cgroup by its child
        // before that child executes the shell: the agent does not know the child (it came from
        // outside the container) and reads it from /proc, where the shell may already run; the
        // call is not the shell's.
        call(
            "the checker's unshare before its exec of the shell",
            "unshare",
            vec![("docker_listener.namespace.types", json!(["net"])), ("process.pid", json!(f.sh_pid))],
            vec![("event.outcome", Is(json!("success"))), ("process.executable", Not(json!(f.busybox.path)))],
        ),
        // And its bind, before the unshare (the first record of the child the agent meets, so
        // the socket's record is the one read from /proc): not the shell's either.
        Expected {
            name: "the checker's bind before its exec of the shell",
            select: vec![("event.action", json!("bind")), ("server.address", json!(format!("@{CHECKER_SOCKET}")))],
            fields: vec![
                ("event.outcome", Is(json!("success"))),
                ("process.pid", Is(json!(f.sh_pid))),
                ("process.executable", Not(json!(f.busybox.path))),
            ],
        },
        // The workload's.
        call(
            "unshare",
            "unshare",
            vec![("docker_listener.namespace.types", json!(["mnt"]))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("docker_listener.syscall.name", Is(json!("unshare"))),
                ("docker_listener.namespace.flags", Is(json!("0x20000"))),
                by_busybox(),
            ],
        ),
        call(
            "tmpfs mount",
            "mount",
            vec![("docker_listener.mount.target", json!(mnt))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("docker_listener.mount.source", Is(json!("none"))),
                ("docker_listener.mount.fstype", Is(json!("tmpfs"))),
                by_busybox(),
            ],
        ),
        call(
            "umount",
            "umount",
            vec![("docker_listener.mount.target", json!(mnt))],
            vec![("event.outcome", Is(json!("success"))), ("docker_listener.syscall.name", Is(json!("umount2")))],
        ),
        call(
            "chroot",
            "chroot",
            vec![],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("docker_listener.chroot.path", Is(json!("/"))),
                by_busybox(),
            ],
        ),
        // file-access: a pseudo-file (no set to resolve), named by the kernel's dentry and
        // walked up to the container's root.
        call(
            "read of its own memory",
            "file-read",
            vec![
                ("docker_listener.file_access.match", json!("pseudo-file")),
                // (io_uring's opens of it, below, have no requested path.)
                ("docker_listener.file_access.requested", json!("/proc/self/mem")),
            ],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.name", Is(json!("mem"))),
                ("file.directory", Want::NonEmptyString),
                ("docker_listener.file_access.sensitive", Is(json!("/proc/*/mem"))),
                ("docker_listener.syscall.name", Want::NonEmptyString),
                by_busybox(),
            ],
        ),
        // The same opens by a process whose descriptor table grew past its embedded 64 (a
        // descriptor 99 open): the file reached another way (a typed cast where the kernel has
        // bpf_rdonly_cast, helper reads where not).
        call(
            "read of a sensitive file through a grown descriptor table",
            "file-read",
            vec![("docker_listener.file_access.requested", json!("/etc//shadow"))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.path", Is(json!("/etc/shadow"))),
                ("docker_listener.file_access.sensitive", Is(json!("/etc/shadow"))),
                ("docker_listener.file_access.match", Is(json!("file"))),
                by_busybox(),
            ],
        ),
        call(
            "read of its own memory through a grown descriptor table",
            "file-read",
            vec![("docker_listener.file_access.requested", json!("/proc/self//mem"))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.name", Is(json!("mem"))),
                ("docker_listener.file_access.match", Is(json!("pseudo-file"))),
                by_busybox(),
            ],
        ),
        // io_uring's opens into the ring's file table (fixed files): a slot named, and one the
        // kernel picked; the file found in the ring's table as this kernel lays it out.
        call(
            "io_uring open into a fixed file",
            "file-read",
            vec![("docker_listener.file_access.fixed_file", json!(0))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.name", Is(json!("mem"))),
                ("docker_listener.file_access.sensitive", Is(json!("/proc/*/mem"))),
                ("docker_listener.file_access.fd", Absent),
                ("docker_listener.syscall.name", Is(json!("IORING_OP_OPENAT"))),
                ("process.executable", Is(json!(f.uring_open.path))),
            ],
        ),
        call(
            "io_uring open into a fixed file the kernel picked",
            "file-read",
            vec![("docker_listener.file_access.fixed_file", json!(1))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.name", Is(json!("mem"))),
                ("docker_listener.file_access.sensitive", Is(json!("/proc/*/mem"))),
                ("docker_listener.syscall.name", Is(json!("IORING_OP_OPENAT2"))),
                ("process.executable", Is(json!(f.uring_open.path))),
            ],
        ),
        // io_uring's changes by name: the names read at submission, the result at completion.
        call(
            "io_uring rename into a sensitive directory",
            "file-rename",
            vec![("docker_listener.syscall.name", json!("IORING_OP_RENAMEAT"))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.path", Is(json!(format!("/etc/cron.d/{}", f.marker)))),
                ("docker_listener.file_access.sensitive", Is(json!("/etc/cron*"))),
                ("docker_listener.syscall.ret", Is(json!(0))),
                ("process.executable", Is(json!(f.uring_change.path))),
            ],
        ),
        call(
            "io_uring unlink in a sensitive directory",
            "file-delete",
            vec![("docker_listener.syscall.name", json!("IORING_OP_UNLINKAT"))],
            vec![
                ("event.outcome", Is(json!("success"))),
                ("file.path", Is(json!(format!("/etc/cron.d/{}", f.marker)))),
                ("docker_listener.file_access.sensitive", Is(json!("/etc/cron*"))),
                ("process.executable", Is(json!(f.uring_change.path))),
            ],
        ),
        // openat2's RESOLVE_IN_ROOT through a ring, with no completion to see: sent by its
        // name at submission with the directory walked there, and resolved below it: "/shadow"
        // from /etc is /etc/shadow (not /shadow at the root).
        call(
            "io_uring in-root open by its name",
            "file-read",
            vec![("docker_listener.file_access.requested", json!("/shadow")), ("event.outcome", json!("unknown"))],
            vec![
                ("file.path", Is(json!("/etc/shadow"))),
                ("docker_listener.file_access.sensitive", Is(json!("/etc/shadow"))),
                ("docker_listener.file_access.resolve", Is(json!(["in_root"]))),
                ("docker_listener.file_access.match", Want::NonEmptyString),
                ("docker_listener.syscall.name", Is(json!("IORING_OP_OPENAT2"))),
                ("process.executable", Is(json!(f.open_in_root.path))),
            ],
        ),
        call(
            "module unload",
            "module-unload",
            vec![],
            vec![
                ("event.outcome", Is(json!("failure"))),
                ("error.code", Want::NonEmptyString),
                ("docker_listener.kernel_module.name", Is(json!(MODULE))),
                ("docker_listener.syscall.name", Is(json!("delete_module"))),
                by_busybox(),
            ],
        ),
    ]);
    all.extend([
        Expected {
            name: "exec of the io_uring program",
            select: exec(json!([f.uring.path, URING_PORT.to_string()])),
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.executable", Is(json!(f.uring.path))),
                    ("process.parent.pid", Is(json!(f.sh_pid))),
                ],
            ),
        },
        Expected {
            name: "io_uring setup",
            select: vec![("event.action", json!("io_uring_setup"))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("docker_listener.io_uring.sq_entries", Want::AtLeast(4)),
                    by_the_uring_program(),
                    ("process.executable", Is(json!(f.uring.path))),
                    ("docker_listener.syscall.name", Is(json!("io_uring_setup"))),
                    ("docker_listener.syscall.abi", Absent),
                ],
            ),
        },
        Expected {
            name: "io_uring connect",
            select: vec![("event.action", json!("connect")), ("destination.port", json!(URING_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("docker_listener.seen_by", Is(json!("tcp_state"))),
                    ("event.outcome", Is(json!("unknown"))),
                    ("docker_listener.syscall", Absent),
                    ("destination", Is(json!({"ip": "127.0.0.1", "port": URING_PORT}))),
                    ("source", Is(json!({"ip": "127.0.0.1"}))),
                    ("network", Is(json!({"transport": "tcp", "type": "ipv4"}))),
                    by_the_uring_program(),
                ],
            ),
        },
        // The fake Docker API's socket, by a symlink: the connect names the listener it reached
        // by that listener's own name.
        Expected {
            name: "Unix connect through a symlink",
            select: vec![("event.action", json!("connect")), ("destination.address", json!(f.docker_symlink))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.executable", Is(json!(f.unix_connect.path))),
                    ("docker_listener.socket.peer_address", Is(json!(f.docker_socket))),
                    // The host's listener (the checker's), no container's.
                    ("docker_listener.socket.peer_container", Absent),
                ],
            ),
        },
        // A listener of its own: its bind was seen (its socket file), so the connect to it says
        // whose listener it reached (`unix_sock.path` of the bound socket and of the peer).
        Expected {
            name: "Unix connect to a listener of its own",
            select: vec![("event.action", json!("connect")), ("destination.address", json!(OWN_SOCKET))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.executable", Is(json!(f.unix_connect.path))),
                    ("docker_listener.socket.peer_container", Is(json!(c.name))),
                    ("docker_listener.socket.peer_same_container", Is(json!(true))),
                ],
            ),
        },
        // The same through a ring: no system call, no TCP state; seen at its completion (the
        // program the io_uring opens door attaches).
        Expected {
            name: "io_uring Unix connect",
            select: vec![("event.action", json!("connect")), ("docker_listener.seen_by", json!("io_uring"))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("process.executable", Is(json!(f.uring.path))),
                    ("destination", Absent),
                    ("docker_listener.socket.peer_address", Is(json!(f.docker_socket))),
                    ("docker_listener.socket.peer_container", Absent),
                ],
            ),
        },
        // Into the checker's network namespace (the host's) by a pidfd: the descriptor names no
        // namespace; the caller's namespaces after the call say where it went.
        Expected {
            name: "setns by a pidfd",
            select: vec![("event.action", json!("setns")), ("process.executable", json!(f.pidfd_setns.path))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("docker_listener.namespace.types", Is(json!(["net"]))),
                    ("docker_listener.namespace.inode", Absent),
                    ("docker_listener.namespace.host", Is(json!("net"))),
                ],
            ),
        },
        Expected {
            name: "accept of the io_uring connect",
            select: vec![("event.action", json!("accept")), ("destination.port", json!(URING_PORT))],
            fields: with(
                in_the_container(),
                vec![
                    ("event.outcome", Is(json!("success"))),
                    ("source.ip", Is(json!("127.0.0.1"))),
                    by_the_uring_program(),
                ],
            ),
        },
    ]);
    all
}

/// One of the 32-bit program's two socket runs (how it makes its calls, its port) and the names
/// of its expected events.
struct CompatRun {
    how: &'static str,
    port: u16,
    exec: &'static str,
    bind: &'static str,
    listen: &'static str,
    connect: &'static str,
    accept: &'static str,
}

const COMPAT_RUNS: [CompatRun; 2] = [
    CompatRun {
        how: "socketcall",
        port: SOCKETCALL_PORT,
        exec: "exec of the 32-bit program (socketcall)",
        bind: "32-bit bind (socketcall)",
        listen: "32-bit listen (socketcall)",
        connect: "32-bit connect (socketcall)",
        accept: "32-bit accept (socketcall)",
    },
    CompatRun {
        how: "direct",
        port: DIRECT_PORT,
        exec: "exec of the 32-bit program (direct)",
        bind: "32-bit bind (direct)",
        listen: "32-bit listen (direct)",
        connect: "32-bit connect (direct)",
        accept: "32-bit accept (direct)",
    },
];

/// The kernel's comm after an exec: the file name of the path given to execve, cut to 15 bytes.
fn comm(given: &str) -> String {
    let name = given.rsplit('/').next().unwrap_or(given);
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script's argv fits in what the agent keeps by default, with room for a line or two
    /// more: the CI's checkout path once made it too long (the shell's exec event came cut; the
    /// programs' paths are in variables since, so only the script's own lines count).
    #[test]
    fn the_workload_fits_in_the_agents_argv() {
        let marker = format!("kmx-{}", "0123456789ab");
        let argv = shell_argv_bytes(&script(&marker));
        assert!(argv + 64 <= AGENT_ARGV_MAX, "the shell's argv is {argv} bytes, over {AGENT_ARGV_MAX} - 64");
    }
}
