//! docker-listener's kernel side. Each program is small and boring: filter (container cgroups
//! only, a map lookup), read what the tracepoint and the task give, reserve in the ring buffer,
//! submit. Every path that fails to deliver bumps a per-CPU loss counter instead of vanishing.
//!
//! One file per event family (`exec`, `socket`, `io_uring`, `kmod`, `bpf`, `ptrace`,
//! `namespace`, `cred`, `file`, `net`; their records in docker-listener-common's `family`), and
//! what they share: container cgroups (`cgroup`), the process tree (`process`), the program at
//! every system call's exit and its 32-bit ABI (`syscall_exit`, `compat`), the budget
//! (`budget`), the container runtime's own processes (`runtime`: their calls are not the
//! container's), maps, kernel reads and the path walk (`maps`, `kernel`, `path`).
#![no_std]
#![no_main]

mod bpf;
mod budget;
mod cgroup;
mod compat;
mod cred;
mod exec;
mod file;
mod io_uring;
mod kernel;
mod kmod;
mod maps;
mod namespace;
mod net;
mod path;
mod process;
mod ptrace;
mod runtime;
mod socket;
mod syscall_exit;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects code that could get here.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
