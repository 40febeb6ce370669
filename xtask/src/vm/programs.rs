//! The workload's C programs, the doors past the native system call tracepoints
//! (`tests/programs`, the same sources as the cargo tests' `tests/doors.rs` and
//! `tests/file_access.rs`): `compat_net_32`, an i386 program whose socket calls and failed exec
//! go through the 32-bit (ia32) system call ABI, `uring_connect`, whose TCP connect goes through
//! io_uring, `uring_open`, whose opens do, into descriptors and into the ring's file table,
//! `uring_change`, whose renames and unlinks do, and `open_in_root`, whose opens resolve below
//! a directory (openat2's `RESOLVE_IN_ROOT`), and `thread_exec`, whose second thread executes a
//! program after the main thread ended (the exit of a thread-group leader that is not its
//! process's, on kernels whose exit tracepoint does not say so), `memfd_exec`, which runs
//! busybox from a memfd (fileless), and `ptrace_poke`, which attaches to a process and kills it.
//!
//! They are built static, so they run in the VMs without a loader or libraries of their own
//! (there is no 32-bit loader there, nor on many hosts), and built on every run, like the
//! initramfs: gcc takes under a second for each, and a stale copy could hide a change to them.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::expect::{
    COMPAT_PROGRAM, MEMFD_PROGRAM, OPEN_IN_ROOT_PROGRAM, PIDFD_SETNS_PROGRAM, PTRACE_PROGRAM, THREAD_EXEC_PROGRAM,
    UNIX_CONNECT_PROGRAM, URING_CHANGE_PROGRAM, URING_OPEN_PROGRAM, URING_PROGRAM,
};

/// Where the sources are, from the workspace's root (where cargo xtask runs).
const SOURCES: &str = "tests/programs";

/// What gcc is asked for, per program, and what a failure says is missing: `-m32` needs
/// Debian's gcc-multilib (the i386 C library and start files); the io_uring program the static C
/// library and the kernel's headers, which gcc-multilib brings too (through libc6-dev), as
/// `cargo xtask setup` installs it.
const BUILDS: &[(&str, &[&str], &str)] = &[
    (COMPAT_PROGRAM, &["-m32", "-O2", "-static"], "the i386 C library of Debian's gcc-multilib"),
    (URING_PROGRAM, &["-O2", "-static"], "the static C library and linux/io_uring.h (libc6-dev, linux-libc-dev)"),
    (URING_OPEN_PROGRAM, &["-O2", "-static"], "the static C library and linux/io_uring.h (libc6-dev, linux-libc-dev)"),
    (
        URING_CHANGE_PROGRAM,
        &["-O2", "-static"],
        "the static C library and linux/io_uring.h (libc6-dev, linux-libc-dev)",
    ),
    (
        OPEN_IN_ROOT_PROGRAM,
        &["-O2", "-static"],
        "the static C library and linux/io_uring.h (libc6-dev, linux-libc-dev)",
    ),
    (THREAD_EXEC_PROGRAM, &["-O2", "-static", "-pthread"], "the static C library (libc6-dev)"),
    (MEMFD_PROGRAM, &["-O2", "-static"], "the static C library (libc6-dev)"),
    (PTRACE_PROGRAM, &["-O2", "-static"], "the static C library (libc6-dev)"),
    (UNIX_CONNECT_PROGRAM, &["-O2", "-static"], "the static C library (libc6-dev)"),
    (PIDFD_SETNS_PROGRAM, &["-O2", "-static"], "the static C library (libc6-dev)"),
];

/// Builds the programs into `out_dir` (as `<out_dir>/<name>`); returns their paths.
pub fn build(out_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut built = Vec::new();
    for &(name, flags, needs) in BUILDS {
        let src = Path::new(SOURCES).join(format!("{name}.c"));
        if !src.is_file() {
            bail!("{} is missing: run cargo xtask from the workspace's root", src.display());
        }
        let out = out_dir.join(name);
        let result = Command::new("gcc")
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .output()
            .context("cannot run gcc, which builds the workload's C programs: apt-get install gcc gcc-multilib")?;
        if !result.status.success() {
            bail!(
                "`gcc {} -o {} {}` failed ({}): {}\n{name} needs {needs}: apt-get install gcc-multilib (cargo xtask \
                 setup installs it)",
                flags.join(" "),
                out.display(),
                src.display(),
                result.status,
                String::from_utf8_lossy(&result.stderr).trim()
            );
        }
        built.push(out);
    }
    Ok(built)
}
