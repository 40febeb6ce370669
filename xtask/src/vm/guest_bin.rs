//! The `vm-guest` binary: the kernel matrix's checker (`guest`) on its own.
//!
//! The same code is `cargo xtask vm-guest`; this binary holds only the checker, the fake Docker
//! API, the expected events and the checks, so what goes into every VM's initramfs stays small
//! (1.2 MiB stripped; the whole xtask, with the benchmarks, is 2.0 MiB), and it builds for any
//! target the agent builds for.
mod check;
mod expect;
mod fake_docker;
mod guest;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "vm-guest",
    about = "The kernel matrix's checker: runs the agent against a synthetic container and checks its events"
)]
struct Cli {
    #[command(flatten)]
    args: guest::Args,
}

/// Exits 1 on failure without printing the error again: the checker has printed its verdict and
/// the reason, and these must stay the last lines of a VM's console (a backtrace, with
/// RUST_BACKTRACE set, would push them out of what the host shows of it).
fn main() -> ExitCode {
    match guest::main(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
