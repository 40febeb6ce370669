//! docker-listener's build-and-run workflow.
//!
//! `cargo xtask setup|build|run|test|bench`. Each command does the set-up it needs, so a fresh
//! machine goes from clone to running agent (or to a full test run) with one command.
mod bench;
mod docker;
mod package;
mod setup;
mod util;
mod vm;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test docker-listener")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and running need (idempotent): Debian packages (docker.io,
    /// busybox-static), rust-src, bpf-linker built against rustc's own LLVM (cached), tracefs.
    Setup,
    /// Build the eBPF object and the daemon (release): target/release/docker-listener.
    Build,
    /// Set up, build, and run the agent as root against the local Docker daemon. With no Wazuh
    /// queue socket on this machine, frames go to stdout. Extra arguments go to the daemon.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, start a Docker daemon if none answers, build the test image, and run every test
    /// (unit, property, and the root/eBPF/Docker end-to-end tests). Extra arguments go to
    /// `cargo test`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the package's static daemon and run the performance scenarios against fakes of dockerd and
    /// the Wazuh queue; results are printed and written to BENCHMARKS.md (as root: it raises
    /// net.unix.max_dgram_qlen for the run and restores it).
    Bench {
        /// Run each scenario once on a small input: checks they work, in under a minute; no
        /// timing targets, BENCHMARKS.md untouched.
        #[arg(long)]
        quick: bool,
    },
    /// Build what administrators install (target/package/): the static binary (musl), the .deb
    /// (cargo-deb: binary, hardened systemd unit, config, rules, docs) and the container image
    /// `docker-listener:<version>` with compose and Kubernetes DaemonSet files.
    Package,
    /// Internal: the load generator of the eBPF benchmarks (joins a container, runs a storm).
    #[command(hide = true)]
    BenchWorker(bench::ebpf_worker::WorkerArgs),
    /// Boot each kernel of the matrix (xtask/src/vm/kernel.rs) under qemu and check the agent's
    /// eBPF events there, then the same checks on this machine's kernel (as root; docs/KERNELS.md).
    KernelMatrix(vm::MatrixArgs),
    /// Internal: the kernel matrix's checker (runs the agent against a synthetic container and
    /// checks its events); the VMs run the same code as the static `vm-guest` binary.
    #[command(hide = true)]
    VmGuest(vm::guest::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Cmd::Setup => setup::run().map(|_| ()),
        Cmd::Build => {
            setup::run()?;
            build()
        }
        Cmd::Run { args } => run(args),
        Cmd::Package => package::run().map(drop),
        Cmd::Test { args } => test(args),
        Cmd::Bench { quick } => bench::run(quick),
        Cmd::BenchWorker(args) => bench::worker(args),
        Cmd::KernelMatrix(args) => {
            setup::run()?;
            vm::run(&args)
        }
        Cmd::VmGuest(args) => vm::guest::main(args),
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).context("xtask has no parent directory")
}

fn build() -> Result<()> {
    util::cargo(&["build", "--release", "--package", "docker-listener"])?;
    println!("xtask: built target/release/docker-listener (eBPF object embedded)");
    Ok(())
}

fn run(args: Vec<String>) -> Result<()> {
    util::require_root("run the agent (it loads eBPF programs and reads the Docker socket)")?;
    setup::run()?;
    docker::ensure_daemon()?;
    docker::ensure_image()?;
    build()?;
    let mut args = args;
    let names_output =
        args.iter().any(|a| a.starts_with("--queue") || a.starts_with("--output") || a.starts_with("--config"));
    let default_queue = std::path::Path::new("/var/ossec/queue/sockets/queue");
    if !names_output && !default_queue.exists() {
        println!(
            "xtask: no Wazuh queue socket at {} on this machine: writing frames to stdout \
             (pass --queue PATH or --output file:PATH to change that)",
            default_queue.display()
        );
        args.push("--output".into());
        args.push("stdout".into());
    }
    if !args.iter().any(|a| a.starts_with("--state-dir")) {
        // Keep a developer's runs apart from an installed agent's state.
        args.push("--state-dir".into());
        args.push(util::cache_dir()?.join("run-state").display().to_string());
    }
    println!(
        "xtask: starting docker-listener. In another terminal, try:\n  docker run --rm --network none {} sh -c 'echo hello; ls /'\nCtrl-C stops it.",
        docker::IMAGE
    );
    let status = std::process::Command::new("target/release/docker-listener").args(&args).status()?;
    if !status.success() {
        bail!("docker-listener exited with {status}");
    }
    Ok(())
}

fn test(args: Vec<String>) -> Result<()> {
    util::require_root("run the end-to-end tests (they load eBPF programs and drive dockerd)")?;
    // What the suite runs is what its arguments say, never what the environment does: the
    // benchmark settings (one scenario, another daemon, fewer rounds...) are for `bench`.
    for var in bench::SETTINGS {
        if let Some(v) = std::env::var_os(var) {
            println!("xtask test: ignoring {var}={} (a setting of `cargo xtask bench`)", v.to_string_lossy());
            // SAFETY: single-threaded here: nothing else reads the environment meanwhile.
            unsafe { std::env::remove_var(var) };
        }
    }
    setup::run()?;
    docker::ensure_daemon()?;
    docker::ensure_image()?;
    // What administrators install, which tests/package.rs installs and checks (the whole
    // suite, or a run that names it).
    let whole = args.is_empty();
    let package = if whole || args.iter().any(|a| a.contains("package")) { Some(package::run()?) } else { None };
    let mut cmd = vec!["test", "--workspace", "--exclude", "docker-listener-ebpf"];
    cmd.extend(args.iter().map(String::as_str));
    // No backtraces: a failing test's output then ends with its panic's message and place,
    // which is what an excerpt of a CI log keeps (a backtrace of the test harness's frames
    // pushed them out of it). For one test's: `DL_TEST_BACKTRACE=1 cargo xtask test --test
    // <file> <name>` (the daemons the tests start inherit it too).
    let backtrace = if std::env::var_os("DL_TEST_BACKTRACE").is_some_and(|v| v == "1") { "1" } else { "0" };
    util::cargo_env(&cmd, &[("DL_TEST_IMAGE", docker::IMAGE), ("DL_E2E", "1"), ("RUST_BACKTRACE", backtrace)])?;
    // The whole suite (no filter given) also checks that every benchmark scenario runs; a
    // filtered run (`cargo xtask test -- <name>`, `--test <file>`) is for one thing only.
    if let (true, Some(agent)) = (whole, package) {
        // The criterion and allocation benches compile (they are run by hand: BENCHMARKS.md).
        // With the test profile: the suite's own build, so only the bench targets themselves
        // compile, not every dependency once more (the bench profile's build took 6-7 minutes
        // of CI on two CPUs); `cargo bench` by hand builds them optimised.
        println!("xtask test: the criterion and allocation benches build");
        util::cargo_env(
            &["bench", "--workspace", "--exclude", "docker-listener-ebpf", "--no-run", "--profile", "test"],
            &[],
        )?;
        // Every scenario, once, with what is built already: the package's static release
        // binary (what administrators install) and the floor `cargo test` built with the
        // examples. Timings are not checked, so the release build of `cargo xtask bench` (whole-
        // program LTO once more) would buy nothing.
        println!("xtask test: benchmark scenarios, quick mode (they must run; timings are not checked)");
        let floor = workspace_root()?.join("target/debug/examples/exec_floor");
        bench::run_quick_with(bench::Built { daemon: &agent, floor: &floor })?;
        // The same static agent under every kernel: the binary that is shipped, checked where it
        // will run. The checker is the release xtask the benchmarks built.
        println!("xtask test: the kernel matrix (the eBPF checks under qemu on other kernels, and on this one)");
        vm::run(&vm::MatrixArgs { agent: Some(agent), ..vm::MatrixArgs::default() })?;
    }
    Ok(())
}
