//! `cargo xtask setup`: everything building and running need, installed once and reused.
use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, cache_dir, is_root, output, succeeds};

/// bpf-linker release known to build with rustc 1.95's LLVM (feature llvm-<major>).
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages: the Docker engine for tests and `xtask run`, busybox and a static bash for
/// the test image (busybox also for the kernel matrix's initramfs), qemu for the kernel matrix
/// (`xtask kernel-matrix`). On these machines, Debian 12's qemu-system-x86 (7.2) replaces the
/// image's qemu-utils (10.0, from backports, which `Breaks` qemu-system-common < 8): nothing here
/// uses qemu-utils. gcc-multilib builds the tests' i386 programs (the 32-bit system call ABI).
/// docker-compose (Debian's, 1.29) runs the packaged image with its compose file in the tests.
/// musl-tools (`musl-gcc`) builds the static binary's allocator, mimalloc, from C.
const PACKAGES: &[&str] = &[
    "docker.io",
    "busybox-static",
    "bash-static",
    "qemu-system-x86",
    "gcc-multilib",
    "docker-compose",
    "bpftrace",
    "musl-tools",
];

/// Runs every step and prints what it did. Idempotent.
pub fn run() -> Result<()> {
    let mut report: Vec<String> = Vec::new();
    packages(&mut report)?;
    rust_src(&mut report)?;
    bpf_linker(&mut report)?;
    tracefs(&mut report);
    for line in &report {
        println!("xtask setup: {line}");
    }
    Ok(())
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

fn packages(report: &mut Vec<String>) -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| match *p {
            "docker.io" => !have("dockerd"),
            "busybox-static" => !Path::new("/bin/busybox").exists() && !have("busybox"),
            "bash-static" => !Path::new("/bin/bash-static").exists() && !have("bash-static"),
            // The tests' i386 programs (gcc -m32 -static): the 32-bit libc and its headers.
            "gcc-multilib" => !Path::new("/usr/lib32/libc.a").exists(),
            "qemu-system-x86" => !have("qemu-system-x86_64"),
            "docker-compose" => !have("docker-compose"),
            // The peer the exec storm is measured beside (`cargo xtask bench`).
            "bpftrace" => !have("bpftrace"),
            // The C compiler for the static build (`cargo xtask package`).
            "musl-tools" => !have("musl-gcc"),
            _ => false,
        })
        .collect();
    if missing.is_empty() {
        report.push(
            "Debian packages present (dockerd, busybox, bash-static, qemu-system-x86_64, gcc-multilib, docker-compose, bpftrace, \
             musl-gcc)"
                .into(),
        );
        return Ok(());
    }
    if !is_root() || !have("apt-get") {
        bail!(
            "missing {}: install them (as root: apt-get install -y {}) and run this again",
            missing.join(", "),
            missing.join(" ")
        );
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        util::run(&mut c)
    };
    apt(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args).context("installing Debian packages failed; check the apt sources and network")?;
    report.push(format!("installed Debian packages: {}", missing.join(" ")));
    Ok(())
}

fn sysroot() -> Result<String> {
    Ok(output(Command::new("rustc").args(["--print", "sysroot"]))?.trim().to_owned())
}

fn rust_src(report: &mut Vec<String>) -> Result<()> {
    let src = Path::new(&sysroot()?).join("lib/rustlib/src/rust/library/core");
    if src.is_dir() {
        report.push("rust-src present".into());
        return Ok(());
    }
    util::run(Command::new("rustup").args(["component", "add", "rust-src"]))
        .context("the eBPF crate builds `core` from source and needs rust-src (rustup component add rust-src)")?;
    report.push("added the rust-src component".into());
    Ok(())
}

/// The LLVM major version rustc was built with, from `rustc -vV` ("LLVM version: 22.1.2").
fn llvm_major() -> Result<(String, String)> {
    let vv = output(Command::new("rustc").arg("-vV"))?;
    let llvm = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc -vV` does not print an LLVM version")?;
    let major = llvm.split('.').next().unwrap_or(llvm).to_owned();
    let release = vv.lines().find_map(|l| l.strip_prefix("release: ")).unwrap_or("?").to_owned();
    Ok((major, release))
}

/// Builds bpf-linker against the libLLVM shipped inside the Rust toolchain (no LLVM dev
/// package is needed), into `<cache>/bpf-linker`. Rebuilt only when rustc changes.
fn bpf_linker(report: &mut Vec<String>) -> Result<()> {
    let cache = cache_dir()?;
    let root = cache.join("bpf-linker");
    let bin = root.join("bin/bpf-linker");
    let (major, release) = llvm_major()?;
    let stamp_path = root.join("built-for");
    let stamp = format!("rustc {release} llvm {major} bpf-linker {BPF_LINKER_VERSION}\n");
    if bin.is_file()
        && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str())
        && succeeds(Command::new(&bin).arg("--version"))
    {
        report.push(format!("bpf-linker {BPF_LINKER_VERSION} (LLVM {major}) cached at {}", bin.display()));
        return Ok(());
    }
    let sysroot = sysroot()?;
    let lib_dir = Path::new(&sysroot).join("lib");
    let libllvm = std::fs::read_dir(&lib_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so")))
        .with_context(|| format!("no libLLVM shared library in {}: is this a rustup toolchain?", lib_dir.display()))?;
    let prefix = cache.join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib_dir.join(&libllvm), &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
    }
    println!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against rustc's LLVM {major} (about a minute, once)"
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(
        Command::new(cargo)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked", "--force"])
            .args(["--no-default-features", "--features", &format!("llvm-{major}")])
            .arg("--root")
            .arg(&root)
            .env("LLVM_PREFIX", &prefix),
    )
    .context("building bpf-linker failed (see above)")?;
    std::fs::write(&stamp_path, stamp)?;
    report.push(format!("built bpf-linker {BPF_LINKER_VERSION} (LLVM {major}) into {}", bin.display()));
    Ok(())
}

fn tracefs(report: &mut Vec<String>) {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        report.push("tracefs mounted".into());
        return;
    }
    if !is_root() {
        report.push("tracefs is not mounted and we are not root: eBPF tracepoints will be unavailable".into());
        return;
    }
    if succeeds(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])) {
        report.push("mounted tracefs at /sys/kernel/tracing".into());
    } else {
        report.push("could not mount tracefs at /sys/kernel/tracing: eBPF tracepoints will be unavailable".into());
    }
}
