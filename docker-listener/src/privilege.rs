//! Least privilege: once the eBPF programs are attached and the outputs open, the daemon keeps
//! only the capabilities its running work needs, drops every other one from its effective,
//! permitted, inheritable, ambient and bounding sets, and sets `no_new_privs`.
//!
//! Kept (README, "Least privilege"), each for a reason:
//! - `CAP_BPF` (`CAP_SYS_ADMIN` on kernels before 5.8): every `bpf()` call on the maps — the
//!   containers traced, the sensitive files, the wake-up mode, the loss counters — needs it
//!   while `kernel.unprivileged_bpf_disabled` is set, as it is on every distribution;
//! - `CAP_SYS_PTRACE`: `/proc/<pid>/{exe,root,cmdline,mountinfo,net}` of container processes
//!   (lineage of processes that started before the agent, the start-up inventory, the
//!   sensitive files and drift resolved inside each container's filesystem);
//! - `CAP_DAC_READ_SEARCH`: directories and files inside containers' filesystems that belong to
//!   other users (the sensitive files' inodes);
//! - `CAP_DAC_OVERRIDE`: sending to Wazuh's queue socket, which belongs to `wazuh:wazuh` (0660),
//!   and, run as another user, reaching the Docker socket (`root:docker`, 0660) again after a
//!   reconnect; not with a line output run as root (root owns what it needs then).
//!
//! Without eBPF only `CAP_DAC_OVERRIDE` is kept, and with a line output nothing.
use caps::{CapSet, Capability, CapsHashSet};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot change the capability sets ({step}): {source}")]
    Caps { step: &'static str, source: caps::errors::CapsError },
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("cannot run as user {user} ({step}): {source}. {hint}")]
    Switch { user: String, step: &'static str, source: std::io::Error, hint: &'static str },
}

/// A user and groups to run as (`user`, `groups`), from the local `/etc/passwd` and
/// `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Resolves `user` (name or number) and `groups` (names or numbers); the message of an error
/// says which one is unknown.
pub fn resolve(user: &str, groups: &[String]) -> Result<RunAs, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let (uid, gid) = passwd_ids(&passwd, user)
        .ok_or_else(|| format!("unknown user {user:?} (not in /etc/passwd): create it, or name an existing one"))?;
    let mut ids = Vec::new();
    for g in groups {
        let id = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_id(g).ok_or_else(|| format!("unknown group {g:?} (not in /etc/group)"))?,
        };
        ids.push(id);
    }
    Ok(RunAs { name: user.to_owned(), uid, gid, groups: ids })
}

/// The uid and gid of `user` (a name, or a number) in a passwd file's text. Lines without
/// numbers (NIS's `+@group::::::`) name nobody.
fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    let number = user.parse::<u32>().ok();
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (uid, gid) = (f.get(2)?.parse::<u32>().ok()?, f.get(3)?.parse::<u32>().ok()?);
        (f[0] == user || number == Some(uid)).then_some((uid, gid))
    })
}

/// The gid of local group `name` (`/etc/group`).
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

/// Becomes `to` (groups, gid, uid) keeping the permitted capabilities across the change
/// (`PR_SET_KEEPCAPS`), then raises them again as effective for `drop_to_needed`.
pub fn switch_user(to: &RunAs) -> Result<(), PrivilegeError> {
    let fail = |step| {
        let user = to.name.clone();
        move |source| PrivilegeError::Switch { user, step, source, hint: switch_hint() }
    };
    let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    // SAFETY: plain system calls; setgroups reads `len` gids from a live Vec.
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)).map_err(fail("keep capabilities"))?;
        check(libc::setgroups(to.groups.len(), to.groups.as_ptr())).map_err(fail("setgroups"))?;
        check(libc::setresgid(to.gid, to.gid, to.gid)).map_err(fail("setresgid"))?;
        check(libc::setresuid(to.uid, to.uid, to.uid)).map_err(fail("setresuid"))?;
    }
    let permitted = caps::read(None, CapSet::Permitted)
        .map_err(|e| PrivilegeError::Caps { step: "read after the user switch", source: e })?;
    caps::set(None, CapSet::Effective, &permitted)
        .map_err(|e| PrivilegeError::Caps { step: "effective after the user switch", source: e })?;
    Ok(())
}

/// What to do when a switch of user fails: root whose bounding set lacks `CAP_SETUID` or
/// `CAP_SETGID` cannot switch either.
pub fn switch_hint() -> &'static str {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        "It runs as root, but without CAP_SETUID and CAP_SETGID (a systemd unit's \
         CapabilityBoundingSet=, a container's cap_drop): give it both, or remove \"user\" and \
         \"groups\" from the configuration"
    } else {
        "Start docker-listener as root to let it switch"
    }
}

/// The capabilities kept, with why (for the log): `dac_override`, the output is Wazuh's queue
/// socket (wazuh:wazuh, 0660) or the agent runs as another user (who may not own the Docker
/// socket).
pub fn needed(ebpf: bool, dac_override: bool) -> Vec<(Capability, &'static str)> {
    let mut kept = Vec::new();
    if dac_override {
        kept.push((
            Capability::CAP_DAC_OVERRIDE,
            "send to the Wazuh queue socket (wazuh:wazuh, 0660); as another user, the Docker socket",
        ));
    }
    if ebpf {
        let bpf = if has_cap_bpf() { Capability::CAP_BPF } else { Capability::CAP_SYS_ADMIN };
        kept.push((bpf, "update and read the eBPF maps (containers traced, sensitive files, wake-up, losses)"));
        kept.push((
            Capability::CAP_SYS_PTRACE,
            "read /proc/<pid>/{exe,root,cmdline,mountinfo,net} of container processes",
        ));
        kept.push((Capability::CAP_DAC_READ_SEARCH, "read other users' files and directories inside containers"));
    }
    kept
}

/// Whether the kernel knows `CAP_BPF` (5.8+).
fn has_cap_bpf() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .is_some_and(|last| last >= Capability::CAP_BPF.index())
}

/// Keeps only `needed(ebpf, dac_override)` (those of them this process holds) and sets
/// `no_new_privs`. Returns the capabilities kept.
pub fn drop_to_needed(ebpf: bool, dac_override: bool) -> Result<Vec<Capability>, PrivilegeError> {
    let err = |step| move |source| PrivilegeError::Caps { step, source };
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("read"))?;
    // Given CAP_SYS_ADMIN and not CAP_BPF (a container runtime that does not know CAP_BPF), the
    // maps need CAP_SYS_ADMIN.
    let keep: CapsHashSet = needed(ebpf, dac_override)
        .into_iter()
        .map(|(c, _)| if c == Capability::CAP_BPF && !permitted.contains(&c) { Capability::CAP_SYS_ADMIN } else { c })
        .filter(|c| permitted.contains(c))
        .collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes below (a process
    // without it, not root, has nothing to drop there that it could use).
    let setpcap = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false);
    for cap in caps::all().into_iter().filter(|_| setpcap) {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(err("bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("ambient set"))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(err("inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("permitted set"))?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    let mut kept: Vec<Capability> = keep.into_iter().collect();
    kept.sort_by_key(|c| c.index());
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passwd_line_without_numbers_names_nobody() {
        let passwd = "+@netadmins::::::\nroot:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
        assert_eq!(passwd_ids(passwd, "nobody"), Some((65534, 65534)));
        assert_eq!(passwd_ids(passwd, "65534"), Some((65534, 65534)));
        assert_eq!(passwd_ids(passwd, "0"), Some((0, 0)));
        assert_eq!(passwd_ids(passwd, "+@netadmins"), None);
        assert_eq!(passwd_ids(passwd, "bob"), None);
    }

    #[test]
    fn without_ebpf_only_the_queue_s_capability_is_needed() {
        let caps = |ebpf, queue| needed(ebpf, queue).into_iter().map(|(c, _)| c).collect::<Vec<_>>();
        assert_eq!(caps(false, true), [Capability::CAP_DAC_OVERRIDE]);
        assert_eq!(caps(false, false), [], "a line output needs no capability");
        let with = caps(true, true);
        assert_eq!(with.len(), 4);
        assert!(with.contains(&Capability::CAP_SYS_PTRACE));
        assert!(!caps(true, false).contains(&Capability::CAP_DAC_OVERRIDE), "nor the queue's with eBPF");
    }
}
