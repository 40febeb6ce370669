//! The `vm-guest` binary: the kernel matrix's checker (`guest`) on its own.
//!
//! The same code is `cargo xtask vm-guest`; this binary holds only the checker, the fake Docker
//! API, the expected events and the checks, so what goes into every VM's initramfs stays small
//! (the whole xtask, with the benchmarks, is several times larger), and it builds for any target
//! the agent builds for (a static musl build of both, for packaging, needs nothing more).
mod check;
mod expect;
mod fake_docker;
mod guest;

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

fn main() -> anyhow::Result<()> {
    guest::main(Cli::parse().args)
}
