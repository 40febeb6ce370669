//! The static build's allocator settings. Its allocator is mimalloc, not musl's (Cargo.toml says
//! why), declared by each static binary (`#[global_allocator]` in `main.rs`, and in the
//! `exec_floor` example, so that the floor under the exec target pays what the agent pays); the
//! dynamic build keeps glibc's, and [`configure`] does nothing there.

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (mimalloc.h; libmimalloc-sys 0.1.49
/// names no constant for it).
#[cfg(target_env = "musl")]
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Called first in `main`.
///
/// - Memory freed goes back to the kernel at once instead of a second later: the start-up's
///   large transient allocations (the eBPF object, BTF) then no longer add up to a peak RSS of
///   54 MiB (28 MiB with it; BENCHMARKS.md, round 40). As a default only: an administrator's
///   `MIMALLOC_PURGE_DELAY` wins. Only with mimalloc 3, whose option list the index is from.
///   (Tried in round 41 and not kept: the delay 0 during the start-up only, mimalloc's 1 s
///   after it. The same peak, an exec storm's CPU per exec lower inside the noise, and 4 MiB
///   more RSS when idle: mimalloc purges lazily, when it next allocates or frees pages.)
/// - No transparent huge pages for the process (`PR_SET_THP_DISABLE`): the `no_thp` build only
///   stops mimalloc asking for them, which is all a host whose THP mode is `madvise` needs; where
///   it is `always`, the kernel would still back mimalloc's aligned arenas with 2 MiB pages
///   (with them, the realistic load's RSS was 23.9 MiB against 8.2).
///
/// # Safety
///
/// No other thread of the process may exist yet: mimalloc's option calls are not synchronised.
pub unsafe fn configure() {
    #[cfg(target_env = "musl")]
    {
        // SAFETY: integers in and out; no thread but this one exists yet (the caller's promise).
        unsafe {
            if libmimalloc_sys::mi_version() / 10_000 == 3 {
                libmimalloc_sys::mi_option_set_default(PURGE_DELAY, 0);
            }
        }
        // SAFETY: prctl with integer arguments only. Failure (a kernel without it) only leaves
        // THP as the host has it.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Gives the memory the process has freed back to the kernel now: after a backlog drained
/// (`sink::Spool`), rare. mimalloc gives back pages freed only when a thread next allocates or
/// frees pages, and an agent that just drained a flood may do little of either for a while;
/// glibc's malloc keeps the free memory below its heap's top.
pub fn release() {
    #[cfg(target_env = "musl")]
    // SAFETY: no arguments but a flag; collects the calling thread's heap and the shared arenas.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };
    #[cfg(target_env = "gnu")]
    // SAFETY: no pointers; glibc's own lock makes it safe beside other threads' allocations.
    unsafe {
        libc::malloc_trim(0)
    };
}
