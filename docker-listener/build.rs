//! Builds the eBPF object (`docker-listener-ebpf`, target bpfel-unknown-none) and leaves it in
//! OUT_DIR, where `src/ebpf` embeds it. A plain `cargo build` therefore always carries an object
//! that matches the sources.
//!
//! It needs `bpf-linker` and the `rust-src` component, both installed by `cargo xtask setup`.
//! The eBPF crate is built on the stable toolchain with RUSTC_BOOTSTRAP=1 and `-Z build-std=core`
//! (see ../shared/TOOLCHAIN.md); nothing here needs a nightly toolchain.
use std::{env, path::PathBuf};

use anyhow::{Context as _, bail};

/// Where `cargo xtask setup` installs bpf-linker (`<cache>/bpf-linker/bin`).
fn bpf_linker_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = env::var_os("DOCKER_LISTENER_CACHE") {
        dirs.push(PathBuf::from(dir).join("bpf-linker/bin"));
    }
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/docker-listener/bpf-linker/bin"));
    }
    dirs
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=DOCKER_LISTENER_CACHE");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);

    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // For `cargo check`/`clippy` without the BPF toolchain: embed an empty object, which the
        // daemon recognises and reports ("built without its eBPF object") before falling back to
        // Docker events only.
        std::fs::write(out_dir.join("docker-listener-ebpf"), [])?;
        return Ok(());
    }

    // Put the cached bpf-linker first on PATH for the nested cargo that links the eBPF object.
    let mut path: Vec<PathBuf> = bpf_linker_dirs().into_iter().filter(|d| d.is_dir()).collect();
    path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    if !path.iter().any(|d| d.join("bpf-linker").is_file()) {
        bail!(
            "bpf-linker was not found (looked in $DOCKER_LISTENER_CACHE/bpf-linker/bin, \
             ~/.cache/docker-listener/bpf-linker/bin and PATH). Run `cargo xtask setup` once, \
             or build with AYA_BUILD_SKIP=1 to get a Docker-events-only binary."
        );
    }
    let joined = env::join_paths(path).context("PATH contains an invalid entry")?;
    // SAFETY: build scripts are single-threaded; these variables are read by the nested cargo
    // that aya-build spawns.
    unsafe {
        env::set_var("PATH", joined);
        // Lets the stable toolchain build `core` for the BPF target (-Z build-std=core).
        env::set_var("RUSTC_BOOTSTRAP", "1");
    }

    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?)
        .join("../docker-listener-ebpf");
    let root = root.canonicalize().with_context(|| format!("{}", root.display()))?;
    let root_dir = root.to_str().context("non-UTF-8 path to docker-listener-ebpf")?;
    // The toolchain cargo runs us with (e.g. "stable-x86_64-unknown-linux-gnu"), never nightly.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_owned());
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "docker-listener-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}
