//! The per-container budget: a token bucket per cgroup and class of records
//! (`budget_rate` records per second, `budget_burst` at once), so that a storm in one container
//! cannot fill the shared ring buffer and cost the others their records. What is over the budget
//! is not reserved (it takes no sequence number: it is no kernel loss) and is counted per cgroup
//! in `HELD`, which the daemon reports by container.
//!
//! Classes: the high-volume records (exec, fork, exit, socket, network) share one bucket; each
//! exit-reported family has its own (`class`), so that a storm of one kind (an `rm -rf` is a
//! storm of unlinks) holds back nothing of another (a ptrace, a module load).
//!
//! Never held: the first exec of each file in a container (`EXE_SEEN`, checked only once the
//! budget is spent), an exec the event marks (fileless, drifted, gaining privileges), failed
//! exec and socket calls (the callers ask only for successes), and, of the exit-reported
//! families, the first call of each kind once the budget is spent (`CALL_SEEN`: the kind is the
//! family's `what`, e.g. the call and its outcome, and for an open the file's inode), within a
//! second budget of the same size, since some kinds can be made without bound (a file created in
//! a sensitive directory is a new inode).
//!
//! Never held either, within a firsts' budget: a container's first successful Unix connect
//! to each listener (the listener's `unix_sock.addr`, shared by it and every connection it
//! accepts), and a connect whose listener cannot be named (a native one whose descriptor held
//! another socket at its exit than at its entry, a 32-bit one) (`admit_connect`): a storm of
//! execs cannot hide a connect to the Docker socket. Listeners outside the container (made to
//! listen by a process of another cgroup) have a firsts' budget of their own, which the
//! container's own listeners cannot spend, and so have the connects whose socket the kernel
//! could not read (`Side`).
//!
//! Never counted against a budget: the container runtime's calls of the exit-reported families
//! (runc setting the container up, entering it for a `docker exec`), which are not sent at all
//! (`runtime.rs`).
use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
    macros::map,
    maps::{LruHashMap, PerCpuArray, PerCpuHashMap},
};

use docker_listener_common::magic;

use crate::{kernel::read0, maps::config};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Bucket {
    /// Thousandths of a record.
    milli: u64,
    /// The same, for records sent over the budget as the first of their kind.
    firsts_milli: u64,
    last_ns: u64,
}

/// A kind of record a container already sent over its budget (`EXE_SEEN`, `CALL_SEEN`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Seen {
    cgroup: u64,
    /// `EXE_SEEN`: the executed file's `struct inode` (unique while the file is in use);
    /// `CALL_SEEN`: the class in the top byte, the family's kind below.
    what: u64,
}

/// Each traced cgroup's buckets (one per class it sent records of); the least recently used
/// make room.
#[map]
pub static BUDGET: LruHashMap<u64, Bucket> = LruHashMap::with_max_entries(16384, 0);

/// Records held back, per cgroup and class (the class in the key's top byte, 0 for the
/// process records), per CPU (no atomic add needed; never reset: the daemon reports the
/// increase of the sum).
#[map]
pub static HELD: PerCpuHashMap<u64, u64> = PerCpuHashMap::with_max_entries(16384, 0);

/// Records held back in all, per CPU: the daemon walks `HELD` only when this moved (a walk
/// reads every one of its 16,384 buckets, however few entries it holds: each second, on an
/// idle host, that was a quarter of the agent's tick).
#[map]
pub static HELD_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Files already executed in a container while its budget was spent.
#[map]
pub static EXE_SEEN: LruHashMap<Seen, u8> = LruHashMap::with_max_entries(16384, 0);

/// Kinds of calls of the exit-reported families already sent while their budget was spent.
#[map]
pub static CALL_SEEN: LruHashMap<Seen, u8> = LruHashMap::with_max_entries(8192, 0);

/// The buckets of the exit-reported families (`PROCESS`: the high-volume records' shared one).
pub use docker_listener_common::budget as class;
use docker_listener_common::budget::SHIFT;

/// A call's outcome as a kind: 0 for a success, 1 for a failure (any error).
#[inline(always)]
pub fn failed(ret: i64) -> u64 {
    (ret < 0) as u64
}

/// `admit` for a record of an exit-reported family (`class`), of the kind `what` (below 2^56):
/// over the class's budget, the first record of each kind still goes. A call of the container
/// runtime's is not admitted, whatever the budget, and takes nothing of it (`runtime.rs`).
#[inline(always)]
pub fn admit_call(class: u64, what: u64) -> bool {
    // The container runtime's calls (runc setting the container up, entering it for a `docker
    // exec`): neither sent nor counted against the budget (`runtime.rs`).
    if crate::runtime::own_call() {
        return false;
    }
    let rate = config!(budget_rate) as u64;
    if rate == 0 {
        return true;
    }
    // Changes by name are every unlink, rename, chmod... of a container, matched in the
    // daemon: eight times the budget, so that a package install or an `rm -rf` fits in it; and
    // so are its opens through io_uring (each one's name, unless its file is matched).
    let scale =
        if class == class::FILE_CHANGE || class == class::URING_OPEN || class == class::FIRST_MOMENTS { 8 } else { 1 };
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    // A first of its kind goes on a second budget of the same size (in the same bucket): kinds
    // a caller can make without bound (files created in a sensitive directory) cannot flood
    // past the first.
    if take(cgroup ^ (class << SHIFT), rate * scale, scale, false, || first_of_kind(cgroup, class, what)) {
        return true;
    }
    // The key opaque to the verifier: on 6.1 the exit program verifies 879,517 instructions so,
    // 902,458 without (measured; the classes' constants kept states apart).
    hold(opaque(cgroup ^ (class << SHIFT)));
    false
}

/// Whether `what` (below 2^56) is the first record of its kind `class` the container `cgroup`
/// sends over its budget (`CALL_SEEN`); marks it sent.
#[inline(always)]
fn first_of_kind(cgroup: u64, class: u64, what: u64) -> bool {
    let key = Seen { cgroup, what: (class << SHIFT) | (what & ((1 << SHIFT) - 1)) };
    if unsafe { CALL_SEEN.get(&key) }.is_some() {
        return false;
    }
    let _ = CALL_SEEN.insert(&key, &1, 0);
    true
}

/// Which firsts' budget a successful Unix connect over the budget is sent on.
#[derive(Clone, Copy)]
pub enum Side {
    /// A listener of the container's own (`socket::listener_side`: made to listen by a process
    /// of the caller's cgroup, or by one that is gone).
    Own,
    /// A listener outside the container (made to listen by a process of another cgroup: the
    /// Docker socket's dockerd), or not known to be inside it.
    Outside,
    /// A connect whose socket the kernel could not read as the call's own: a native one whose
    /// descriptor held another socket at its exit than at its entry, a 32-bit one whose socket
    /// at its exit is no connected Unix socket (another thread may have swapped its
    /// descriptor), any Unix connect on a kernel whose layout is unknown.
    Unknown,
}

/// A successful Unix connect's listener, as `admit_connect` takes it over the budget.
pub enum Listener {
    /// None to name: not a Unix connect, or one with no peer (a datagram socket's
    /// `connect(AF_UNSPEC)` disconnects it: one call, not to be a first each time). Held back
    /// (a 32-bit connect is never this: its socket may have been swapped, `Side::Unknown`).
    None,
    /// The listener's `unix_sock.addr` (shared by it and every connection it accepts).
    Named { addr: u64, side: Side },
    /// A listener not to be named (a 32-bit connect's socket is read at its exit only, where
    /// another thread may have swapped it): a first each time.
    Unnamed(Side),
}

/// Tags, in a bucket key's top byte, of a container's firsts' budgets for listeners outside it
/// and for connects whose socket is unknown (`Side`; not classes: nothing is counted under them
/// in `HELD`). The container's own listeners take the process bucket's firsts.
const OUTSIDE: u64 = 0xff;
const UNKNOWN: u64 = 0xfe;

/// `admit` for a successful Unix connect: over the budget, the container's first connect to
/// each listener still goes, on a firsts' budget (as `admit_call`'s firsts), so that a storm
/// cannot hide a connect to the Docker socket behind it. `listener()` is read only then. Each
/// `Side` has a firsts' budget of its own: connects to new listeners of the container's own
/// (each one a first), however many, cannot spend the one a connect to the Docker socket is
/// sent on, nor can connects the kernel could not read (each one a first too); what spends the
/// outside one is sent, and names the listener outside it went to.
#[inline(always)]
pub fn admit_connect(listener: impl FnOnce() -> Listener) -> bool {
    let rate = config!(budget_rate) as u64;
    if rate == 0 {
        return true;
    }
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if take(cgroup, rate, 1, false, || false) {
        return true;
    }
    let bucket = |side: Side| match side {
        Side::Own => cgroup,
        Side::Outside => cgroup ^ (OUTSIDE << SHIFT),
        Side::Unknown => cgroup ^ (UNKNOWN << SHIFT),
    };
    let sent = match listener() {
        Listener::None => false,
        Listener::Named { addr, side } => {
            take(bucket(side), rate, 1, true, || first_of_kind(cgroup, class::PROCESS, addr))
        }
        Listener::Unnamed(side) => take(bucket(side), rate, 1, true, || true),
    };
    if sent {
        return true;
    }
    hold(cgroup);
    false
}

/// Whether the current cgroup may send one more record now; counts it as held back if not.
#[inline(always)]
pub fn admit() -> bool {
    admit_unless(|_| false)
}

/// `admit` for an exec: over the budget, the exec still goes when it is one an analyst must
/// see (`always_sent`).
#[inline(always)]
pub fn admit_exec(task: *const u8) -> bool {
    admit_unless(|cgroup| unsafe { always_sent(task, cgroup) })
}

/// Takes a token of the current cgroup's budget; without one, the record still goes if
/// `always(cgroup)` says so, else it is counted as held back.
#[inline(always)]
fn admit_unless(always: impl FnOnce(u64) -> bool) -> bool {
    let rate = config!(budget_rate) as u64;
    if rate == 0 {
        return true;
    }
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if take(cgroup, rate, 1, false, || false) || always(cgroup) {
        return true;
    }
    hold(cgroup);
    false
}

/// An exec never held back: of a file the event marks (fileless, drifted), of a file (or a
/// version of it: its ctime) not yet executed in this container while its budget was spent
/// (`EXE_SEEN`), or that changes
/// privileges (a setuid or setgid file, file capabilities).
#[inline(always)]
unsafe fn always_sent(task: *const u8, cgroup: u64) -> bool {
    unsafe {
        if config!(offsets.exe_valid) != 0 {
            let mm: *const u8 = read0(task, config!(offsets.task_mm));
            let file: *const u8 = read0(mm, config!(offsets.mm_exe_file));
            let inode: *const u8 = read0(file, config!(offsets.file_f_inode));
            if !inode.is_null() && marked(inode) {
                return true;
            }
            // The file and its version: a binary rewritten in place keeps its inode, not its
            // ctime (the unknown mark, when set, is the same for every version).
            let (ctime_nsec, ctime_sec) = crate::path::inode_ctime(inode);
            let key = Seen { cgroup, what: inode as u64 ^ ctime_sec.rotate_left(30) ^ u64::from(ctime_nsec) };
            if !inode.is_null() && EXE_SEEN.get(&key).is_none() {
                let _ = EXE_SEEN.insert(&key, &1, 0);
                return true;
            }
        }
        crate::cred::creds_of(task)
            .is_some_and(|c| c.euid != c.uid || c.egid != c.gid || (c.uid != 0 && c.euid != 0 && c.cap_effective != 0))
    }
}

/// Whether the executed file is one the exec event marks (never held back): fileless (a memory
/// filesystem: memfd, tmpfs, ramfs, hugetlbfs; or linked nowhere) or drifted (an overlay file
/// with a copy in the container's writable layer), as `path::exe_of` decides it.
#[inline(always)]
unsafe fn marked(inode: *const u8) -> bool {
    unsafe {
        let nlink: u32 = read0(inode, config!(offsets.inode_i_nlink));
        let sb: *const u8 = read0(inode, config!(offsets.inode_i_sb));
        let m: u32 = read0(sb, config!(offsets.sb_s_magic));
        if nlink == 0 || m == magic::TMPFS || m == magic::RAMFS || m == magic::HUGETLBFS {
            return true;
        }
        if m == magic::OVERLAYFS && config!(offsets.ovl_valid) != 0 {
            let ovl = inode.wrapping_sub(config!(offsets.ovl_inode_vfs_inode) as usize);
            let upper: *const u8 = read0(ovl, config!(offsets.ovl_inode_upperdentry));
            return !upper.is_null();
        }
        false
    }
}

/// Takes a token of `bucket` (the cgroup's id, its class in the top byte: container cgroup
/// ids, kernfs inode numbers, are far below 2^56); without one (or with `firsts_only`), a
/// token of its firsts' budget if `first()` says the record is one.
#[inline(always)]
fn take(bucket: u64, rate: u64, scale: u64, firsts_only: bool, first: impl FnOnce() -> bool) -> bool {
    let burst = (config!(budget_burst) as u64).max(1) * 1000 * scale;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    match BUDGET.get_ptr_mut(&bucket) {
        None if firsts_only => {
            // A new bucket is full; the record is sent if it is a first.
            let sent = first();
            let full = Bucket { milli: burst, firsts_milli: burst - if sent { 1000 } else { 0 }, last_ns: now };
            let _ = BUDGET.insert(&bucket, &full, 0);
            sent
        }
        None => {
            let full = Bucket { milli: burst - 1000, firsts_milli: burst, last_ns: now };
            let _ = BUDGET.insert(&bucket, &full, 0);
            true
        }
        Some(b) => unsafe {
            // Refill: rate records per second, in thousandths; at most 60 s counted (no
            // overflow), then capped at the burst.
            let elapsed = now.saturating_sub((*b).last_ns).min(60_000_000_000);
            let refill = elapsed * rate / 1_000_000;
            let milli = ((*b).milli + refill).min(burst);
            let firsts = ((*b).firsts_milli + refill).min(burst);
            // Time worth less than a thousandth of a record is kept for the next call: calls
            // closer together than that (20 µs at 50 a second) would otherwise never refill,
            // and calls spaced just over it would refill at half the rate.
            if refill > 0 {
                (*b).last_ns = now - (elapsed * rate % 1_000_000) / rate;
            }
            (*b).firsts_milli = firsts;
            if !firsts_only && milli >= 1000 {
                (*b).milli = milli - 1000;
                return true;
            }
            (*b).milli = milli;
            if firsts >= 1000 && first() {
                (*b).firsts_milli = firsts - 1000;
                return true;
            }
            false
        },
    }
}

/// A value the verifier cannot see through (`path::opaque`).
#[inline(always)]
fn opaque(v: u64) -> u64 {
    crate::path::opaque(v as usize) as u64
}

/// Counts a record held back: `key` is the cgroup's id, the class in its top byte.
#[inline(always)]
fn hold(key: u64) {
    match HELD.get_ptr_mut(&key) {
        Some(n) => unsafe { *n += 1 },
        None => {
            if HELD.insert(&key, &1, 0).is_err() {
                // Every entry in use (16,384 cgroups and classes over their budget): the record
                // is held back, and no container's count says so. Counted as lost.
                crate::maps::bump_loss(docker_listener_common::loss::HELD_MAP_FULL);
            }
        }
    }
    if let Some(n) = HELD_COUNT.get_ptr_mut(0) {
        // SAFETY: this CPU's own slot.
        unsafe { *n += 1 };
    }
}
