//! docker-listener's kernel side. Each program is small and boring: filter (container cgroups
//! only, a map lookup), read what the tracepoint and the task give, reserve in the ring buffer,
//! submit. Every path that fails to deliver bumps a per-CPU loss counter instead of vanishing.
#![no_std]
#![no_main]

mod bpf;
mod budget;
mod cgroup;
mod compat;
mod cred;
mod exec;
mod file;
mod iouring;
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
