//! Container cgroups, traced from their creation: when the cgroup v2 directory of a container
//! appears, its id goes into CONTAINERS before runc starts the container's first process, so
//! nothing it runs is missed; a record tells the daemon which container it is (the daemon asks
//! Docker, and untracks a cgroup Docker does not know). Removal is reported and unmaps the id.
//!
//! A container's cgroup is recognised by its shape, wherever it is: a last component of 64
//! lowercase hex digits (Docker's cgroupfs driver, `--cgroup-parent` included) or
//! `docker-<64 hex>.scope` (the systemd driver). The configured prefixes add paths of other
//! shapes, and any cgroup a traced container's process creates is traced (the record's header
//! names the creator's cgroup, so the daemon gives it the creator's container).
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_cgroup_id, generated::bpf_probe_read_kernel_str},
    macros::tracepoint,
    programs::TracePointContext,
};
use docker_listener_common::{
    CGROUP_PATH_CAP, CgroupRecord, PREFIX_CAP, PREFIXES, RecordKind, cgroup_op, container_state, family::switch, loss,
};

use crate::maps::{CGROUP_PATH, CONTAINER_BITS, CONTAINERS, PENDING_BITS, bump_loss, config, reserve, set_bit, submit};

/// cgroup_mkdir / cgroup_rmdir: int root at 8, int level at 12, u64 id at 16, __data_loc path
/// at 24. Only the v2 (default) hierarchy, whose id is 0, names what bpf_get_current_cgroup_id
/// returns.
#[inline(always)]
fn fields(ctx: &TracePointContext) -> Option<(u64, *const u8)> {
    let root: i32 = unsafe { ctx.read_at(8) }.ok()?;
    if root != 0 {
        return None;
    }
    let id: u64 = unsafe { ctx.read_at(16) }.ok()?;
    let loc: u32 = unsafe { ctx.read_at(24) }.ok()?;
    Some((id, (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize)))
}

#[inline(always)]
fn matches_prefix(path: &[u8; CGROUP_PATH_CAP]) -> bool {
    let count = config!(prefix_count) as usize;
    for i in 0..PREFIXES {
        if i >= count {
            break;
        }
        let len = config!(prefix_len[i]) as usize;
        if len == 0 || len > PREFIX_CAP {
            continue;
        }
        let mut same = true;
        for j in 0..PREFIX_CAP {
            if j >= len {
                break;
            }
            if path[j] != config!(prefixes[i][j]) {
                same = false;
                break;
            }
        }
        if same {
            return true;
        }
    }
    false
}

const SCOPE_PREFIX: &[u8; 7] = b"docker-";
const SCOPE_SUFFIX: &[u8; 6] = b".scope";
const ID_LEN: usize = 64;
const MASK: usize = CGROUP_PATH_CAP - 1;

/// `path[i]`, masked into the buffer where the verifier sees it. black_box: without it the
/// compiler folds `(len - 65) & MASK` into `path + len - 65` once it knows `len > 64`, a
/// pointer below the map value for a verifier that does not carry that bound.
#[inline(always)]
fn at(path: &[u8; CGROUP_PATH_CAP], i: usize) -> u8 {
    path[core::hint::black_box(i) & MASK]
}

#[inline(always)]
fn is_lower_hex(path: &[u8; CGROUP_PATH_CAP], start: usize) -> bool {
    for j in 0..ID_LEN {
        let c = at(path, start + j);
        if !(c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            return false;
        }
    }
    true
}

/// Whether the last component of the path (`len` bytes) is `<64 hex>` or `docker-<64 hex>.scope`.
/// Both have a fixed length, so the '/' before them is at a known distance from the end: no
/// scan for the last '/' (a loop the verifier would have to follow for every position).
#[inline(always)]
fn looks_like_container(path: &[u8; CGROUP_PATH_CAP], len: usize) -> bool {
    if len > CGROUP_PATH_CAP - 1 {
        return false;
    }
    if len > ID_LEN && at(path, len - ID_LEN - 1) == b'/' && is_lower_hex(path, len - ID_LEN) {
        return true;
    }
    let scope = SCOPE_PREFIX.len() + ID_LEN + SCOPE_SUFFIX.len();
    if len <= scope || at(path, len - scope - 1) != b'/' {
        return false;
    }
    let start = len - scope;
    for (j, &c) in SCOPE_PREFIX.iter().enumerate() {
        if at(path, start + j) != c {
            return false;
        }
    }
    for (j, &c) in SCOPE_SUFFIX.iter().enumerate() {
        if at(path, len - SCOPE_SUFFIX.len() + j) != c {
            return false;
        }
    }
    is_lower_hex(path, start + SCOPE_PREFIX.len())
}

#[inline(always)]
fn emit(op: u32, id: u64, path: &[u8; CGROUP_PATH_CAP], len: u32) {
    let Some((mut entry, header)) = reserve::<CgroupRecord>(RecordKind::Cgroup) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).header = header;
        (*r).op = op;
        (*r).path_len = len;
        (*r).id = id;
        (*r).path = *path;
    }
    submit(entry);
}

#[tracepoint]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    let Some((id, src)) = fields(&ctx) else { return 0 };
    let Some(path) = CGROUP_PATH.get_ptr_mut(0) else { return 0 };
    // SAFETY: this CPU's own slot, used by nothing else while this program runs.
    let path = unsafe { &mut *path };
    let n = unsafe { bpf_probe_read_kernel_str(path.as_mut_ptr().cast(), CGROUP_PATH_CAP as u32, src.cast()) };
    if n <= 0 {
        return 0;
    }
    let len = (n - 1) as usize;
    // A cgroup made by a process of a traced container is traced too, wherever it is: moving
    // into a cgroup of its own making (a privileged container can write the host's cgroup tree)
    // must not take a process out of sight.
    let by_container = unsafe { CONTAINERS.get(&bpf_get_current_cgroup_id()) }.is_some();
    if !by_container && !looks_like_container(path, len) && !matches_prefix(path) {
        return 0;
    }
    // Its container's sensitive files are not resolved yet: its opens are sent until they are.
    let pending = config!(families) & switch::FILE != 0;
    let state = if pending { container_state::TRACED | container_state::SET_PENDING } else { container_state::TRACED };
    if CONTAINERS.insert(&id, &state, 0).is_err() {
        bump_loss(loss::CGROUP_MAP_FULL);
    }
    set_bit(&CONTAINER_BITS, id);
    if pending {
        set_bit(&PENDING_BITS, id);
    }
    emit(cgroup_op::MKDIR, id, path, (n - 1) as u32);
    0
}

#[tracepoint]
pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    let Some((id, src)) = fields(&ctx) else { return 0 };
    if unsafe { CONTAINERS.get(&id) }.is_none() {
        return 0;
    }
    let _ = CONTAINERS.remove(&id);
    let mut path = [0u8; CGROUP_PATH_CAP];
    let n = unsafe { bpf_probe_read_kernel_str(path.as_mut_ptr().cast(), CGROUP_PATH_CAP as u32, src.cast()) };
    emit(cgroup_op::RMDIR, id, &path, if n > 0 { (n - 1) as u32 } else { 0 });
    0
}
