//! `privilege-change`: setuid, setgid, setreuid, setregid, setresuid, setresgid, setfsuid,
//! setfsgid, setgroups (and the ia32 16-bit forms), capset and the prctl options that change
//! capabilities by a traced process, reported at their exit by the raw exit program
//! (`syscall_exit.rs`) with what the caller asked for and the credentials it has after the call,
//! read from the kernel (`task->real_cred`). What it had before is what the agent last saw of
//! the process (its exec, its previous changes).
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use docker_listener_common::{
    RecordKind,
    family::cred::{CredRecord, Creds, op},
};

use crate::{
    budget::{admit_call, class, failed},
    kernel::{current_task, read},
    maps::{config, reserve, submit},
    syscall_exit::call_head,
};

/// A requested id: `-1` ("unchanged") as `u32::MAX`, also in the 16-bit calls' form.
#[inline(always)]
fn id(v: u64, id16: bool) -> u32 {
    if id16 && v & 0xffff == 0xffff { u32::MAX } else { v as u32 }
}

#[inline(always)]
pub fn on_exit(route: u32, a: &[u64; 6], ret: i64, flags: u32) {
    let id16 = route & op::ID16 != 0;
    let op = route & !op::ID16;
    // The kind: the call, its outcome, and for the id calls whether the first id asked is root.
    let to_root = matches!(
        op,
        op::SETUID
            | op::SETGID
            | op::SETREUID
            | op::SETREGID
            | op::SETRESUID
            | op::SETRESGID
            | op::SETFSUID
            | op::SETFSGID
    ) && id(a[0], id16) == 0;
    if !admit_call(class::PRIVILEGE, u64::from(op) << 2 | failed(ret) << 1 | to_root as u64) {
        return;
    }
    let Some((mut entry, header)) = reserve::<CredRecord>(RecordKind::Privilege) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op, ret, flags);
        (*r).requested = match op {
            op::SETUID | op::SETGID => [id(a[0], id16), u32::MAX, u32::MAX],
            op::SETREUID | op::SETREGID => [id(a[0], id16), id(a[1], id16), u32::MAX],
            op::SETRESUID | op::SETRESGID => [id(a[0], id16), id(a[1], id16), id(a[2], id16)],
            op::SETFSUID | op::SETFSGID => [id(a[0], id16), u32::MAX, u32::MAX],
            op::SETGROUPS => {
                // setgroups(size, list): the count and the first group (gid_t, or u16).
                let mut first = [0u8; 4];
                if a[0] > 0 {
                    bpf_probe_read_user(first.as_mut_ptr().cast(), if id16 { 2 } else { 4 }, a[1] as *const _);
                }
                [a[0] as u32, u32::from_le_bytes(first), u32::MAX]
            }
            op::PRCTL => [a[0] as u32, a[1] as u32, a[2] as u32],
            _ => {
                // capset(header, data): data[0] is {effective, permitted, inheritable}; the
                // header's pid (0: the caller) after its version.
                let mut data = [0u32; 2];
                bpf_probe_read_user(data.as_mut_ptr().cast(), 8, a[1] as *const _);
                let mut header = [0u32; 2];
                bpf_probe_read_user(header.as_mut_ptr().cast(), 8, a[0] as *const _);
                [data[0], data[1], header[1]]
            }
        };
        (*r).creds_unavailable = 0;
        match creds_of(current_task()) {
            Some(c) => (*r).creds = c,
            None => {
                (*r).creds = Creds::default();
                (*r).creds_unavailable = 1;
            }
        }
    }
    submit(entry);
}

/// A task's credentials (`real_cred`), if the offsets are known: three reads, the pointer, the
/// eight ids (`uid, gid, suid, sgid, euid, egid, fsuid, fsgid`, contiguous in `struct cred`
/// on every kernel; the daemon checks it) and the permitted and effective sets (contiguous
/// too). Every exec pays for them.
#[inline(always)]
pub unsafe fn creds_of(task: *const u8) -> Option<Creds> {
    if config!(offsets.cred_valid) == 0 {
        return None;
    }
    unsafe {
        let cred: *const u8 = read(task, config!(offsets.task_real_cred)).ok()?;
        let ids: [u32; 8] = read(cred, config!(offsets.cred_uid)).ok()?;
        let caps: [u64; 2] = read(cred, config!(offsets.cred_cap_permitted)).unwrap_or([0; 2]);
        Some(Creds {
            uid: ids[0],
            gid: ids[1],
            suid: ids[2],
            sgid: ids[3],
            euid: ids[4],
            egid: ids[5],
            fsuid: ids[6],
            fsgid: ids[7],
            cap_permitted: caps[0],
            cap_effective: caps[1],
        })
    }
}
