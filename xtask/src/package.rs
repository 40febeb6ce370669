//! `cargo xtask package`: what a Wazuh administrator installs, built here from this tree.
//!
//! - `target/package/docker-listener-<version>-x86_64-linux-musl`: the static binary (eBPF
//!   object embedded), for any x86-64 Linux;
//! - `target/package/docker-listener_<version>-1_amd64.deb` (cargo-deb): that binary, the
//!   hardened systemd unit (enabled and started where systemd runs), the default config, the
//!   Wazuh rules and the docs;
//! - the image `docker-listener:<version>` (and `:latest`), `FROM scratch` with the static
//!   binary (nothing to pull), with `packaging/compose.yaml` and `packaging/daemonset.yaml`.
use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{docker, util, workspace_root};

pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// Where [`build_static`] builds the static binary, from the workspace root.
pub const STATIC_BINARY: &str = "target/x86_64-unknown-linux-musl/release/docker-listener";

/// The static binary as built (not stripped): what the package ships, and what `cargo xtask
/// bench` measures. Its allocator, mimalloc, is C built with musl-gcc.
pub fn build_static() -> Result<PathBuf> {
    if !crate::setup::have("musl-gcc") {
        bail!(
            "musl-gcc is not installed: the static binary's allocator (mimalloc) is built with it. Install it \
             with `apt-get install musl-tools` (as root), or run `cargo xtask setup`, which does"
        );
    }
    util::run(Command::new("rustup").args(["target", "add", TARGET]))?;
    util::cargo(&["build", "--release", "--package", "docker-listener", "--target", TARGET])?;
    let built = workspace_root()?.join(STATIC_BINARY);
    let interp = util::output(Command::new("readelf").args(["-l"]).arg(&built))?;
    if interp.contains("INTERP") {
        bail!("{} is not static (it asks for a program interpreter)", built.display());
    }
    Ok(built)
}

/// Builds all of it; returns the static binary as built (not stripped), which `cargo xtask test`
/// also runs in its benchmarks' quick run and its kernel matrix.
pub fn run() -> Result<PathBuf> {
    let root = workspace_root()?;
    let version = env!("CARGO_PKG_VERSION");
    let out = root.join("target/package");
    std::fs::create_dir_all(&out)?;

    let built = build_static()?;
    let static_bin = out.join(format!("docker-listener-{version}-x86_64-linux-musl"));
    std::fs::copy(&built, &static_bin)?;
    // Without its debug information: a tenth of the size.
    util::run(Command::new("strip").arg(&static_bin))?;
    println!("xtask package: {}", static_bin.display());

    // The .deb, from that binary.
    if Command::new("cargo").args(["deb", "--version"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("xtask package: installing cargo-deb (once)");
        util::cargo(&["install", "cargo-deb", "--locked"])?;
    }
    util::cargo(&[
        "deb",
        "--package",
        "docker-listener",
        "--no-build",
        "--target",
        TARGET,
        "--output",
        out.to_str().context("a non-UTF-8 path")?,
    ])?;
    println!("xtask package: {}", out.join(format!("docker-listener_{version}-1_amd64.deb")).display());

    // The image: the static binary alone.
    docker::ensure_daemon()?;
    let ctx = out.join("image");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(&static_bin, ctx.join("docker-listener"))?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY docker-listener /usr/bin/docker-listener\nENTRYPOINT [\"/usr/bin/docker-listener\"]\nCMD [\"run\"]\n",
    )?;
    util::run(
        Command::new("docker")
            .args(["build", "--quiet", "--network", "none", "-t"])
            .arg(format!("docker-listener:{version}"))
            .args(["-t", "docker-listener:latest"])
            .arg(&ctx),
    )?;
    for f in ["compose.yaml", "daemonset.yaml"] {
        std::fs::copy(root.join("packaging").join(f), out.join(f))?;
    }
    println!(
        "xtask package: image docker-listener:{version}, {}, {}",
        out.join("compose.yaml").display(),
        out.join("daemonset.yaml").display()
    );
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_binary_is_where_cargo_builds_it_for_the_target() {
        assert_eq!(STATIC_BINARY, format!("target/{TARGET}/release/docker-listener"));
    }
}
