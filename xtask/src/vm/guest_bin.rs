//! The `vm-guest` binary: the kernel matrix's checker (`guest`) on its own.
//!
//! The same code is `cargo xtask vm-guest`; this binary exists because the checker must be
//! static (it runs in an initramfs with nothing else but busybox), so it is built for
//! x86_64-unknown-linux-musl, and the whole xtask does not build for musl (the benchmarks' sink
//! passes a `c_int` where musl's `recvmmsg` takes a `c_uint`). It holds only the checker, the fake
//! Docker API, the expected events and the checks.
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
