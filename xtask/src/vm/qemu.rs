//! Booting a kernel of the matrix under qemu, its serial console streamed.
//!
//! Software emulation (TCG, `-cpu max`): no KVM, which is not usable on these machines (nested
//! KVM hung when tried). `-nic none`: the VM has no network but its own loopback.
//! `panic=-1` with `-no-reboot`: a kernel panic ends qemu at once instead of rebooting.
use std::{path::Path, process::Command, time::Duration};

use anyhow::Result;

use super::console::{self, Captured};

/// Memory of each VM (its CPUs: the kernel's entry of the matrix).
const MEMORY: &str = "1G";
/// Boot, agent start-up under emulation, the workload and the checks take well under a minute
/// on the machines CI runs on; this is for a hang.
pub const TIMEOUT: Duration = Duration::from_secs(300);
/// What the guest kernel prints when it will not get to a verdict: a CPU stuck in the kernel,
/// an Oops (under TCG with two vCPUs, both have been a stale `int3` after the kernel patched a
/// tracepoint's static key: docs/KERNELS.md). qemu is then stopped `console::FATAL_GRACE` later
/// instead of at `TIMEOUT`.
pub const FATAL: &[&str] = &["watchdog: BUG: soft lockup", "Oops: ", "Kernel panic"];

pub fn boot(label: &str, cpus: u8, vmlinuz: &Path, initramfs: &Path, log: &Path) -> Result<Captured> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", MEMORY, "-smp", &cpus.to_string()])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet"]);
    console::stream(&mut cmd, label, TIMEOUT, FATAL, log)
}
