//! `cargo xtask kernel-matrix`: the agent's eBPF checks on other kernels, under qemu, and on
//! this machine's kernel.
//!
//! The eBPF programs meet the kernel only at load time: its verifier, its tracepoints, the BTF
//! the agent reads struct offsets from. A kernel other than this machine's can reject a program,
//! lack a tracepoint or lay a struct out differently, and only running there shows it. So each
//! kernel of [`kernel::KERNELS`] is booted under qemu from an initramfs holding busybox, the
//! agent and the checker (`vm-guest`, see [`guest`]); the checker runs the agent against a
//! synthetic container and checks its events field by field. Then the very same checker runs
//! here, directly, so the checks are known to pass on both.
//!
//! The agent and the checker are this machine's release builds (`target/release`), the ones
//! `cargo xtask build` and the benchmarks use, or the agent `--agent` names: `cargo xtask test`
//! runs the matrix after the benchmarks' quick run with the package's static agent and the
//! release checker that run built, so nothing of Rust is compiled for it (only the workload's
//! two small C programs, under a second). The initramfs
//! carries the shared libraries and the dynamic loader they need, copied from this machine.
//! The kernel packages are downloaded once per version. Results and timings: docs/KERNELS.md.
//!
//! The pieces: `kernel` (the table; fetching a kernel), `programs` (the workload's static C
//! programs: 32-bit system calls, io_uring), `initramfs` (the archive, its shared libraries and
//! `/init`), `qemu` (the boot), `console` (a child's output streamed, with a
//! deadline), and, compiled into the checker too: `guest` (the checker), `fake_docker`, `expect`
//! (the workload and the expected events), `check` (events against expectations).
mod check;
mod console;
mod expect;
mod fake_docker;
pub mod guest;
mod initramfs;
mod kernel;
mod programs;
mod qemu;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util;

/// The checker runs on the host at most this long.
const HOST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug, Default)]
pub struct MatrixArgs {
    /// Only this kernel of the matrix (e.g. debian12-6.1); the host still runs unless --no-host.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Do not run the checks on this machine's kernel.
    #[arg(long)]
    pub no_host: bool,
    /// Check this docker-listener binary instead of target/release/docker-listener (another
    /// build, static or dynamic: its shared libraries go into the VMs with it).
    #[arg(long)]
    pub agent: Option<PathBuf>,
}

/// One row of the summary.
struct Outcome {
    what: String,
    verdict: Result<String>,
    timings: String,
}

pub fn run(args: &MatrixArgs) -> Result<()> {
    util::require_root("run the kernel matrix (its run on this kernel loads eBPF programs)")?;
    let kernels = kernel::select(args.kernel.as_deref())?;
    let work = PathBuf::from("target/kernel-matrix");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let t = Instant::now();
    let (agent, guest) = build(args.agent.as_deref())?;
    let build_time = t.elapsed();
    let t = Instant::now();
    let programs = programs::build(&work)?;
    let programs_time = t.elapsed();
    let t = Instant::now();
    let initramfs = initramfs::build(&work, &agent, &guest, &programs)?;
    let initramfs_time = t.elapsed();
    let libraries: Vec<String> = initramfs.libraries.iter().map(|l| l.display().to_string()).collect();
    println!(
        "kernel-matrix: release binaries ready in {:.1} s (agent {}, checker {}); test programs built in {:.1} s \
         ({}); initramfs {} ({}) in {:.1} s, with {}",
        build_time.as_secs_f64(),
        agent.display(),
        guest.display(),
        programs_time.as_secs_f64(),
        programs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        initramfs.path.display(),
        kernel::mib(&initramfs.path),
        initramfs_time.as_secs_f64(),
        if libraries.is_empty() { "no shared library (static binaries)".to_owned() } else { libraries.join(", ") }
    );

    let mut outcomes = Vec::new();
    for k in kernels {
        outcomes.push(run_kernel(k, &initramfs.path, &work));
    }
    if !args.no_host {
        outcomes.push(run_host(&agent, &guest, &work));
    }

    println!("\nkernel-matrix: results");
    println!(
        "  release binaries (docker-listener, vm-guest): {:.1} s; test programs: {:.1} s; initramfs: {:.1} s",
        build_time.as_secs_f64(),
        programs_time.as_secs_f64(),
        initramfs_time.as_secs_f64()
    );
    for o in &outcomes {
        let verdict = match &o.verdict {
            Ok(v) => v.clone(),
            Err(_) => "FAIL".into(),
        };
        println!("  {}: {verdict}; {}", o.what, o.timings);
    }
    let failures: Vec<String> =
        outcomes.iter().filter_map(|o| o.verdict.as_ref().err().map(|e| format!("{}: {e:#}", o.what))).collect();
    if !failures.is_empty() {
        bail!("the kernel matrix failed:\n{}", failures.join("\n\n"));
    }
    Ok(())
}

/// The agent (unless given) and the checker: this machine's release builds, made by the same
/// cargo commands as `cargo xtask build` and the benchmarks' (`--package docker-listener`, then
/// `--package xtask`), so that cargo finds them up to date when those ran first. Two commands,
/// not one: one command for both packages would build their shared dependencies with the union
/// of their features, that is a second time.
fn build(agent: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    let agent = match agent {
        Some(a) => {
            if !a.is_file() {
                bail!("--agent {}: no such file", a.display());
            }
            a.to_owned()
        }
        None => {
            util::cargo(&["build", "--release", "--package", "docker-listener"])
                .context("building the agent (target/release/docker-listener) failed (see above)")?;
            PathBuf::from("target/release/docker-listener")
        }
    };
    util::cargo(&["build", "--release", "--package", "xtask", "--bin", "vm-guest"])
        .context("building the checker (target/release/vm-guest) failed (see above)")?;
    Ok((agent, PathBuf::from("target/release/vm-guest")))
}

fn run_kernel(k: &kernel::Kernel, initramfs: &Path, work: &Path) -> Outcome {
    let mut timings = String::new();
    let verdict = (|| {
        let fetched = kernel::fetch(k)?;
        timings = format!(
            "kernel {} in {:.1} s ({})",
            if fetched.downloaded { "downloaded and unpacked" } else { "cached" },
            fetched.took.as_secs_f64(),
            fetched.package
        );
        println!("\nkernel-matrix: {} ({}, {}): booting under qemu (TCG)", k.name, fetched.package, fetched.release);
        let log = work.join(format!("{}.log", k.name));
        let out = qemu::boot(k.name, k.cpus, &fetched.vmlinuz, initramfs, &log)?;
        let boot = out.find("init: kernel").map(|l| l.at);
        let pass = out.find(guest::PASS);
        timings.push_str(&format!(
            "; boot to /init {}, checks {}, qemu in all {:.1} s",
            boot.map_or("?".into(), |b| format!("{:.1} s", b.as_secs_f64())),
            match (boot, pass) {
                (Some(b), Some(p)) => format!("{:.1} s", p.at.saturating_sub(b).as_secs_f64()),
                _ => "?".into(),
            },
            out.elapsed.as_secs_f64()
        ));
        match pass {
            Some(line) => Ok(verdict(&line.text)),
            None => {
                let fatal = out.fatal.map(|i| out.lines[i].text.as_str());
                let why = match (out.find_last(guest::FAIL), out.status, fatal) {
                    (Some(fail), _, _) => fail.text.clone(),
                    (None, status, Some(fatal)) => format!(
                        "the guest kernel printed \"{fatal}\" and no verdict followed ({}; soft lockups and \
                         Oopses under qemu's TCG with two vCPUs have been a stale int3 left by the kernel's \
                         patching of a tracepoint as the agent attached or detached: docs/KERNELS.md says which \
                         kernels run on one vCPU for it)",
                        match status {
                            Some(s) => format!("the VM ended: {s}"),
                            None => format!("qemu was stopped {:?} after that line", console::FATAL_GRACE),
                        }
                    ),
                    (None, None, None) => format!("no verdict within {:?}: qemu was killed", qemu::TIMEOUT),
                    (None, Some(s), None) => format!("the VM ended ({s}) without a verdict"),
                };
                bail!(
                    "the checker did not pass on {} ({}): {why}\nthe failed checks and the last lines of the \
                     serial console (all of it: {}):\n{}\nRun `cargo xtask kernel-matrix --kernel {} --no-host` \
                     to see this kernel alone.",
                    k.name,
                    fetched.release,
                    log.display(),
                    out.excerpt(guest::FAIL, 80),
                    k.name
                )
            }
        }
    })();
    Outcome { what: format!("{} under qemu", k.name), verdict, timings }
}

fn run_host(agent: &Path, guest: &Path, work: &Path) -> Outcome {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let what = format!("this machine's kernel ({release})");
    println!("\nkernel-matrix: {what}: the same checker, directly");
    let log = work.join("host.log");
    let mut timings = String::new();
    let verdict = (|| {
        // The programs by their absolute path: the checker compares it with the executable the
        // kernel names, and the workload runs in another directory.
        let programs = std::fs::canonicalize(work).with_context(|| format!("cannot resolve {}", work.display()))?;
        let mut cmd = Command::new(guest);
        cmd.arg("--agent").arg(agent).arg("--busybox").arg(initramfs::busybox()?).arg("--programs").arg(programs);
        let out = console::stream(&mut cmd, "host", HOST_TIMEOUT, &[], &log)?;
        timings = format!("checks {:.1} s", out.elapsed.as_secs_f64());
        match out.find(guest::PASS) {
            Some(line) => Ok(verdict(&line.text)),
            None => bail!(
                "the checker did not pass on this machine's kernel ({release}): {}\nthe failed checks and the \
                 last lines of its output (all of it: {}):\n{}",
                out.find_last(guest::FAIL).map_or("no verdict", |l| l.text.as_str()),
                log.display(),
                out.excerpt(guest::FAIL, 80)
            ),
        }
    })();
    Outcome { what, verdict, timings }
}

/// "PASS 76 checks" from the checker's verdict line (which may follow kernel output on the same
/// console line).
fn verdict(line: &str) -> String {
    let at = line.find(guest::PASS).unwrap_or(0);
    line[at..].trim_start_matches("vm-guest: ").to_owned()
}
