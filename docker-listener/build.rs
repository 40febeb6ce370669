//! Builds the eBPF objects (`docker-listener-ebpf`, target bpfel-unknown-none; once more with
//! its `bpf-loop` feature) into OUT_DIR, where `src/ebpf` embeds them, so a plain `cargo build`
//! always carries objects matching the sources.
//!
//! Needs `bpf-linker` and the `rust-src` component, both installed by `cargo xtask setup`. The
//! eBPF crate is built on the stable toolchain with RUSTC_BOOTSTRAP=1 and `-Z build-std=core`
//! (../shared/TOOLCHAIN.md); no nightly toolchain is involved.
//!
//! This does what `aya_build::build_ebpf` does, minus one thing: aya-build forwards every line
//! of the nested cargo's progress as a `cargo:warning`, which cargo then replays on every build
//! of the workspace. Here the nested output is shown only when the eBPF build fails.
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const EBPF_CRATE: &str = "docker-listener-ebpf";
/// The object built with the eBPF crate's `bpf-loop` feature.
const LOOP_OBJECT: &str = "docker-listener-ebpf-loop";

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

fn fail(msg: &str) -> ! {
    for line in msg.lines() {
        println!("cargo::error={line}");
    }
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-env-changed=DOCKER_LISTENER_CACHE");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR not set")));

    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // For `cargo check`/`clippy` without the BPF toolchain: an empty object, which the daemon
        // recognises and reports ("built without its eBPF object") before falling back to Docker
        // events only.
        for name in [EBPF_CRATE, LOOP_OBJECT] {
            let object = out_dir.join(name);
            if let Err(e) = std::fs::write(&object, []) {
                fail(&format!("cannot write {}: {e}", object.display()));
            }
        }
        return;
    }

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let ebpf_dir = manifest.join("..").join(EBPF_CRATE);
    let common_dir = manifest.join("../docker-listener-common");
    for dir in [&ebpf_dir, &common_dir] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }

    let mut path: Vec<PathBuf> = bpf_linker_dirs().into_iter().filter(|d| d.is_dir()).collect();
    path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    if !path.iter().any(|d| d.join("bpf-linker").is_file()) {
        fail(
            "bpf-linker was not found (looked in $DOCKER_LISTENER_CACHE/bpf-linker/bin, \
             ~/.cache/docker-listener/bpf-linker/bin and PATH).\n\
             Run `cargo xtask setup` once (it builds bpf-linker against rustc's own LLVM), or set \
             AYA_BUILD_SKIP=1 to build a Docker-events-only binary.",
        );
    }
    let path = env::join_paths(path).unwrap_or_else(|e| fail(&format!("bad PATH entry: {e}")));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb-unknown-none",
        _ => "bpfel-unknown-none",
    };
    // The nested build's target dir: one for every build of this crate (test, release, the
    // static release, ...), since the objects depend on neither the host's profile nor its
    // target, so that a second build finds them made (each takes most of a minute on two CPUs).
    // Inside the workspace's target dir, found as the outermost ancestor of OUT_DIR holding
    // cargo's CACHEDIR.TAG (cargo writes one in `target/` and one in `target/<triple>/`), but
    // apart from its profile directories (cargo would deadlock on its own lock); OUT_DIR's own if
    // there is none.
    let target_dir = out_dir
        .ancestors()
        .filter(|dir| dir.join("CACHEDIR.TAG").is_file())
        .last()
        .map_or_else(|| out_dir.join("ebpf-target"), |target| target.join("ebpf"));
    // Both objects are built at the same path, one after the other, and copied from there: two
    // builds of this crate at once (a release build beside an editor's check) take turns for the
    // whole loop, so that neither copies the object the other has just built in its place.
    if let Err(e) = std::fs::create_dir_all(&target_dir) {
        fail(&format!("cannot create {}: {e}", target_dir.display()));
    }
    let lock_path = target_dir.join("build.lock");
    let lock = std::fs::File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .unwrap_or_else(|e| fail(&format!("cannot lock {}: {e}", lock_path.display())));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustflags =
        [format!("--cfg=bpf_target_arch=\"{arch}\""), "-Cdebuginfo=2".into(), "-Clink-arg=--btf".into()].join("\x1f");
    // Two objects from the same sources: the path walk unrolled (every kernel), and as a
    // `bpf_loop` callback (5.17+, far less for the verifier to walk; docker-listener-ebpf's
    // path.rs). The second build reuses the first's `core` and dependencies.
    for (features, name) in [(None, EBPF_CRATE), (Some("bpf-loop"), LOOP_OBJECT)] {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&ebpf_dir)
            .args(["build", "--package", EBPF_CRATE, "--bin", EBPF_CRATE, "--release"])
            .args(["--target", target, "-Z", "build-std=core"])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("PATH", &path)
            // Lets the stable toolchain build `core` for the BPF target.
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_ENCODED_RUSTFLAGS", &rustflags)
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTFLAGS");
        if let Some(features) = features {
            cmd.args(["--features", features]);
        }
        let output = match cmd.output() {
            Ok(o) => o,
            Err(e) => fail(&format!("cannot run cargo to build the eBPF object: {e}")),
        };
        if !output.status.success() {
            fail(&format!(
                "building the eBPF object ({EBPF_CRATE}{}) failed:\n{}\nIf rust-src or bpf-linker is \
                 missing, run `cargo xtask setup`.",
                features.map_or(String::new(), |f| format!(", feature {f}")),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let built: &Path = &target_dir.join(target).join("release").join(EBPF_CRATE);
        let copy = out_dir.join(name);
        if let Err(e) = std::fs::copy(built, &copy) {
            fail(&format!("cannot copy {} to {}: {e}", built.display(), copy.display()));
        }
    }
    drop(lock);
}
