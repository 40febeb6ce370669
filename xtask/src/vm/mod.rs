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
//! The agent and the checker are static (x86_64-unknown-linux-musl): the initramfs has no C
//! library. They are built once per run; the kernel packages are downloaded once per version.
//! Results and timings: docs/KERNELS.md.
//!
//! The pieces: `kernel` (the table; fetching a kernel), `initramfs` (the archive and `/init`),
//! `qemu` (the boot), `console` (a child's output streamed, with a deadline), and, compiled into
//! the checker too: `guest` (the checker), `fake_docker`, `expect` (the workload and the expected
//! events), `check` (events against expectations).
mod check;
mod console;
mod expect;
mod fake_docker;
pub mod guest;
mod initramfs;
mod kernel;
mod qemu;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util;

/// The target of the binaries that run in the VMs.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";
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
    /// Check this static docker-listener instead of building one (e.g. another build).
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
    let initramfs = initramfs::build(&work, &agent, &guest)?;
    let initramfs_time = t.elapsed();
    println!(
        "kernel-matrix: built in {:.1} s; initramfs {} ({}) in {:.1} s",
        build_time.as_secs_f64(),
        initramfs.display(),
        kernel::mib(&initramfs),
        initramfs_time.as_secs_f64()
    );

    let mut outcomes = Vec::new();
    for k in kernels {
        outcomes.push(run_kernel(k, &initramfs, &work));
    }
    if !args.no_host {
        outcomes.push(run_host(&agent, &guest, &work));
    }

    println!("\nkernel-matrix: results");
    println!(
        "  static builds (docker-listener, vm-guest): {:.1} s; initramfs: {:.1} s",
        build_time.as_secs_f64(),
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

/// Builds the agent (unless given) and the checker for the static target, in one cargo run.
fn build(agent: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    let mut cmd = vec!["build", "--release", "--target", STATIC_TARGET, "--package", "xtask", "--bin", "vm-guest"];
    if agent.is_none() {
        cmd.extend(["--package", "docker-listener", "--bin", "docker-listener"]);
    }
    util::cargo(&cmd).with_context(|| {
        format!(
            "building the static binaries for the VMs ({STATIC_TARGET}) failed (see above). A libc \
             function whose flags are c_int on glibc and c_uint on musl (sendmmsg, recvmmsg) needs \
             `flags as _`; a missing target: rustup target add {STATIC_TARGET}"
        )
    })?;
    let dir = PathBuf::from("target").join(STATIC_TARGET).join("release");
    let agent = match agent {
        Some(a) => {
            if !a.is_file() {
                bail!("--agent {}: no such file", a.display());
            }
            a.to_owned()
        }
        None => dir.join("docker-listener"),
    };
    Ok((agent, dir.join("vm-guest")))
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
        let out = qemu::boot(k.name, &fetched.vmlinuz, initramfs, &log)?;
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
                let why = match (out.find_last(guest::FAIL), out.status) {
                    (Some(fail), _) => fail.text.clone(),
                    (None, None) => format!("no verdict within {:?}: qemu was killed", qemu::TIMEOUT),
                    (None, Some(s)) => format!("the VM ended ({s}) without a verdict"),
                };
                bail!(
                    "the checker did not pass on {} ({}): {why}\nthe failed checks and the last lines of the \
                     serial console (all of it: {}):\n{}\nRun `cargo xtask kernel-matrix --kernel {} --no-host` \
                     to see this kernel alone.",
                    k.name,
                    fetched.release,
                    log.display(),
                    out.excerpt(guest::FAIL, 40),
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
        let mut cmd = Command::new(guest);
        cmd.arg("--agent").arg(agent).arg("--busybox").arg(initramfs::busybox()?);
        let out = console::stream(&mut cmd, "host", HOST_TIMEOUT, &log)?;
        timings = format!("checks {:.1} s", out.elapsed.as_secs_f64());
        match out.find(guest::PASS) {
            Some(line) => Ok(verdict(&line.text)),
            None => bail!(
                "the checker did not pass on this machine's kernel ({release}): {}\nthe failed checks and the \
                 last lines of its output (all of it: {}):\n{}",
                out.find_last(guest::FAIL).map_or("no verdict", |l| l.text.as_str()),
                log.display(),
                out.excerpt(guest::FAIL, 40)
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
