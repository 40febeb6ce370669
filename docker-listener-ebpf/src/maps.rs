//! Maps, the load-time configuration, and the helpers every program shares: the container
//! filter, sequence numbers, loss counters, record headers.
use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf, ring_buf::RingBufEntry},
};
use docker_listener_common::{ProbeConfig, RecordHeader, RecordKind, SockAddr, loss};

/// Records to userspace. The daemon sets the size at load time (`ebpf.ring_buffer_bytes`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Entry 0: 1 while the daemon polls the ring buffer on a timer (under a steady flow of
/// records), 0 while it sleeps until the kernel wakes it. Records committed while it polls ask
/// for no wake-up: the waking (an irq_work on the traced task's CPU, an IPI, a context switch
/// in the daemon) is the cost a storm would otherwise pay every time the daemon has emptied
/// the ring.
#[map]
pub static WAKEUP: Array<u32> = Array::with_max_entries(1, 0);

/// cgroup ids (v2 inode numbers) of the containers to trace, each with its
/// `container_state` bits. Written by the daemon (start-up inventory, ignore lists; the end of
/// a container's first moments) and by the cgroup_mkdir program (new containers, before their
/// first process runs).
#[map]
pub static CONTAINERS: HashMap<u64, u32> = HashMap::with_max_entries(65536, 0);

/// The sensitive files and directories of the traced containers, by inode number (the
/// `file-access` family, `file.rs`): `family::file::access` bits. Written by the daemon, which
/// resolves the configured paths inside each container's filesystem.
#[map]
pub static SENSITIVE: HashMap<u64, u32> = HashMap::with_max_entries(16384, 0);

/// The same cgroups as `CONTAINERS`, as bits (cgroup id modulo 65536): a test made with loads
/// alone, before the hash lookup (a call), for the calls every process makes (opens). A bit
/// may be set for a cgroup that is not traced (another with the same low bits, a cgroup
/// removed): the lookup then says no.
#[map]
pub static CONTAINER_BITS: Array<u64> = Array::with_max_entries(BITS_WORDS, 0);

/// The inode numbers of `SENSITIVE`, as bits (number modulo 65536), for the same reason.
#[map]
pub static SENSITIVE_BITS: Array<u64> = Array::with_max_entries(BITS_WORDS, 0);

/// The cgroups whose `CONTAINERS` value has `container_state::SET_PENDING`, as bits, for the
/// same reason: set by the cgroup_mkdir program, cleared by the daemon.
#[map]
pub static PENDING_BITS: Array<u64> = Array::with_max_entries(BITS_WORDS, 0);

pub const BITS_WORDS: u32 = docker_listener_common::BITS_WORDS;

/// Processes (tgid modulo 65536) that connected a socket to port 53: their writes may be DNS
/// queries (`net.rs`). Never cleared: a bit left by a process that is gone costs the next one
/// with those low bits a descriptor check per write, and reports nothing that is not a query.
#[map]
pub static DNS_WRITERS: Array<u64> = Array::with_max_entries(BITS_WORDS, 0);

/// A UDP socket's destinations already reported as flows (`net.rs`): least recently used
/// entries make room.
#[map]
pub static FLOWS: LruHashMap<FlowKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// The network family's program (`net.rs`), which the exit program tail-calls for sends: slot
/// 0, filled by the daemon when the family is on.
#[map]
pub static NET_PROGRAM: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The file-access family's program for open_by_handle_at (`file.rs`), which the exit program
/// tail-calls for that call's numbers: slot 0, filled by the daemon when the family is on.
#[map]
pub static HANDLE_PROGRAM: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The file-access family's program for the other opens and changes of files (`file.rs`),
/// which the exit program tail-calls for their numbers: slot 0, filled by the daemon when the
/// family is on.
#[map]
pub static FILE_PROGRAM: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The network family's work area (`net.rs`).
#[map]
pub static NET_SCRATCH: PerCpuArray<crate::net::NetScratch> = PerCpuArray::with_max_entries(1, 0);

/// A cgroup's path as `cgroup_mkdir` reads it (`cgroup.rs`): in a map value, where the shape
/// tests' computed offsets are allowed on every kernel (Linux before 5.12 refuses a read from
/// the stack at an offset it cannot bound to a constant).
#[map]
pub static CGROUP_PATH: PerCpuArray<[u8; docker_listener_common::CGROUP_PATH_CAP]> =
    PerCpuArray::with_max_entries(1, 0);

/// The key of a `FLOWS` lookup, built here rather than on the stack.
#[map]
pub static FLOW_KEY: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FlowKey {
    /// The socket's `struct file` address (a closed socket's may be reused by a new one: its first
    /// send to the same destination is then not reported again, until the entry is evicted).
    pub sock: u64,
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u16,
    pub _pad: u32,
}

/// Whether `v`'s bit is set in `bits`.
#[inline(always)]
pub fn bit_set(bits: &Array<u64>, v: u64) -> bool {
    let slot = (v as u32 >> 6) & (BITS_WORDS - 1);
    bits.get(slot).is_some_and(|w| (volatile(w) >> (v & 63)) & 1 != 0)
}

/// Sets `v`'s bit in `bits` (the cgroup_mkdir program, for a new container's cgroup). Not an
/// atomic operation: a bit another CPU set in the same word at the same instant can be lost,
/// which the daemon repairs (it sets the bits of every cgroup record it reads).
#[inline(always)]
pub fn set_bit(bits: &Array<u64>, v: u64) {
    let slot = (v as u32 >> 6) & (BITS_WORDS - 1);
    if let Some(p) = bits.get_ptr_mut(slot) {
        unsafe { *p |= 1 << (v & 63) };
    }
}

/// Per-CPU sequence number of the next record.
#[map]
pub static SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU loss counters, indexed by `docker_listener_common::loss`.
#[map]
pub static LOSS: PerCpuArray<u64> = PerCpuArray::with_max_entries(loss::COUNT, 0);

/// execve in flight: pid_tgid -> what the failed-exec record needs from the syscall's arguments.
/// A plain hash map, not an LRU one: when it is full the insert fails and is counted
/// (`loss::PENDING_MAP_FULL`), where an LRU map would silently evict the entry of a call still
/// in flight. Deleted by the exit (native or 32-bit), and by sched_process_exec for a successful
/// exec (whose exit may come as the other ABI's, or with another pid), traced or not.
#[map]
pub static PENDING_EXEC: HashMap<u64, PendingExec> = HashMap::with_max_entries(8192, 0);

/// connect/bind/listen/accept in flight: pid_tgid -> the syscall's arguments. A plain hash
/// map, as above; the syscall's exit always deletes the entry (a blocking accept holds its
/// entry while it blocks: 8192 threads blocked at once in traced containers fill it).
#[map]
pub static PENDING_SOCK: HashMap<u64, PendingSock> = HashMap::with_max_entries(8192, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingExec {
    pub filename: u64,
    pub argv: u64,
    /// `flags::COMPAT` when the call came through the 32-bit ABI (argv holds 32-bit pointers).
    pub flags: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingSock {
    pub op: u32,
    pub fd: i32,
    /// `flags::COMPAT` when the call came through the 32-bit ABI.
    pub flags: u32,
    pub _pad: u32,
    /// User pointer to the sockaddr (connect, bind, accept) or 0.
    pub addr: u64,
    /// connect/bind: the address length; accept: a user pointer to it; listen: the backlog.
    pub len: u64,
    /// A native connect's or bind's `struct socket *` at the call's entry (0 otherwise): at its
    /// exit, the descriptor must still hold it for the socket's listener or file to be read
    /// (another thread's `dup2` onto the descriptor meanwhile would put another socket's there).
    pub sock: u64,
    /// A native connect's or bind's IP address and port as the caller's memory had them at
    /// the call's entry (family 0: none read): at the exit, memory saying otherwise was
    /// rewritten during the call.
    pub asked: SockAddr,
}

// The daemon counts `PENDING_SOCK`'s entries as values of this size (`ebpf::EbpfProbes`).
const _: () = assert!(core::mem::size_of::<PendingSock>() == 64);

/// Written by the daemon into .rodata before loading (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
pub static CONFIG: ProbeConfig = ProbeConfig::zeroed();

/// Reads a field of CONFIG. Volatile: the compiler must not fold the zeroed initial value.
macro_rules! config {
    ($($field:tt)+) => {
        $crate::maps::volatile(&$crate::maps::CONFIG.$($field)+)
    };
}
pub(crate) use config;

#[inline(always)]
pub fn volatile<T: Copy>(v: &T) -> T {
    // SAFETY: a reference is valid and aligned.
    unsafe { core::ptr::read_volatile(v) }
}

/// Whether the current task is to be traced: not the daemon itself, and in a container cgroup
/// (or anywhere, with host tracing on). A host process pays for this and nothing else.
#[inline(always)]
pub fn traced() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == config!(agent_tgid) {
        return false;
    }
    if config!(trace_host) != 0 {
        return true;
    }
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    unsafe { CONTAINERS.get(&cgroup).is_some() }
}

#[inline(always)]
pub fn bump_loss(reason: u32) {
    if let Some(p) = LOSS.get_ptr_mut(reason) {
        unsafe { *p += 1 };
    }
}

/// Takes the next sequence number of this CPU.
#[inline(always)]
fn next_seq() -> u64 {
    match SEQ.get_ptr_mut(0) {
        Some(p) => unsafe {
            let v = *p;
            *p = v + 1;
            v
        },
        None => 0,
    }
}

/// Takes a sequence number and reserves a record; counts the loss when the ring buffer is
/// full (the sequence number is then a gap userspace can see).
#[inline(always)]
pub fn reserve<T: 'static>(kind: RecordKind) -> Option<(RingBufEntry<T>, RecordHeader)> {
    let seq = next_seq();
    let Some(entry) = EVENTS.reserve::<T>(0) else {
        bump_loss(loss::RINGBUF_FULL);
        return None;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let header = RecordHeader {
        kind: kind as u32,
        cpu: unsafe { bpf_get_smp_processor_id() },
        seq,
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
    };
    Some((entry, header))
}

/// Commits a record, waking the daemon only when it is not polling (see `WAKEUP`).
#[inline(always)]
pub fn submit<T: 'static>(entry: RingBufEntry<T>) {
    let polling = WAKEUP.get(0).is_some_and(|v| volatile(v) == 1);
    entry.submit(if polling { aya_ebpf::bindings::BPF_RB_NO_WAKEUP as u64 } else { 0 });
}
