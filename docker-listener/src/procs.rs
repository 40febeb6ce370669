//! The process table of traced containers: what each process is, who its parent is, and a
//! stable identity for it.
//!
//! In: fork/exec/exit records, and at start the processes already running in containers (read
//! from /proc). Out: parent chains and `process.entity_id` values for the correlator.
//!
//! `entity_id` names one process instance: a hash of the boot id, the pid and the process start
//! time in clock ticks since boot, which the kernel records give (`start_boottime`) and
//! /proc/<pid>/stat gives (`starttime`), so a process learned from /proc after a restart of the
//! agent keeps the id it had.
use std::{collections::HashMap, fmt, path::Path, sync::Arc};

/// How far up a parent chain is followed.
pub const MAX_DEPTH: usize = 32;

/// A process instance's identity, shown as 16 hex digits (`process.entity_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(pub u64);

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for EntityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A process of a traced container. Strings are shared (`Arc<str>`): every event of the
/// process, and of its children, refers to them without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub tgid: u32,
    pub ppid: u32,
    pub start_ticks: u64,
    pub entity_id: EntityId,
    pub executable: Arc<str>,
    pub name: Arc<str>,
    pub cgroup_id: u64,
}

#[derive(Debug)]
pub struct ProcessTable {
    procs: HashMap<u32, Proc>,
    boot_id: String,
    ns_per_tick: u64,
}

impl ProcessTable {
    pub fn new(boot_id: String, clock_ticks_per_sec: u64) -> ProcessTable {
        ProcessTable { procs: HashMap::new(), boot_id, ns_per_tick: 1_000_000_000 / clock_ticks_per_sec.max(1) }
    }

    /// For this host: /proc/sys/kernel/random/boot_id and sysconf(_SC_CLK_TCK).
    pub fn for_this_host() -> ProcessTable {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned();
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ProcessTable::new(boot_id, if tck > 0 { tck as u64 } else { 100 })
    }

    pub fn ticks(&self, start_ns: u64) -> u64 {
        start_ns / self.ns_per_tick
    }

    /// The entity id of the process `tgid` started at `start_ticks`.
    pub fn entity_id_ticks(&self, tgid: u32, start_ticks: u64) -> EntityId {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        feed(self.boot_id.as_bytes());
        feed(&tgid.to_le_bytes());
        feed(&start_ticks.to_le_bytes());
        EntityId(h)
    }

    pub fn entity_id(&self, tgid: u32, start_ns: u64) -> EntityId {
        self.entity_id_ticks(tgid, self.ticks(start_ns))
    }

    pub fn get(&self, tgid: u32) -> Option<&Proc> {
        self.procs.get(&tgid)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// A new process: a copy of its parent's image until it execs.
    pub fn on_fork(&mut self, parent: u32, child: u32, child_start_ns: u64, cgroup_id: u64) {
        let (executable, name) = self
            .procs
            .get(&parent)
            .map(|p| (p.executable.clone(), p.name.clone()))
            .unwrap_or_else(|| (Arc::from(""), Arc::from("")));
        let start_ticks = self.ticks(child_start_ns);
        let entity_id = self.entity_id_ticks(child, start_ticks);
        self.procs
            .insert(child, Proc { tgid: child, ppid: parent, start_ticks, entity_id, executable, name, cgroup_id });
    }

    /// A process's new image. Returns its entry.
    pub fn on_exec(
        &mut self,
        tgid: u32,
        ppid: u32,
        start_ns: u64,
        executable: &str,
        args: &[String],
        cgroup_id: u64,
    ) -> &Proc {
        let start_ticks = self.ticks(start_ns);
        let entity_id = self.entity_id_ticks(tgid, start_ticks);
        let name: Arc<str> = Arc::from(process_name(executable, args));
        let executable: Arc<str> = Arc::from(executable);
        let p = self.procs.entry(tgid).or_insert_with(|| Proc {
            tgid,
            ppid,
            start_ticks,
            entity_id,
            executable: executable.clone(),
            name: name.clone(),
            cgroup_id,
        });
        if ppid != 0 {
            p.ppid = ppid;
        }
        p.start_ticks = start_ticks;
        p.entity_id = entity_id;
        p.executable = executable;
        p.name = name;
        p.cgroup_id = cgroup_id;
        p
    }

    pub fn on_exit(&mut self, tgid: u32) -> Option<Proc> {
        self.procs.remove(&tgid)
    }

    pub fn insert(&mut self, p: Proc) {
        self.procs.insert(p.tgid, p);
    }

    /// Forgets every process of a cgroup (its container is gone).
    pub fn remove_cgroup(&mut self, cgroup_id: u64) {
        self.procs.retain(|_, p| p.cgroup_id != cgroup_id);
    }

    /// The ancestors of a process with parent `ppid`, nearest first, within the container's
    /// `cgroups` (its own and those below it): up to the container's init (whose parent lives
    /// outside the container).
    pub fn ancestors(&self, ppid: u32, cgroups: &[u64]) -> Vec<&Proc> {
        let mut out = Vec::new();
        let mut next = ppid;
        while out.len() < MAX_DEPTH {
            match self.procs.get(&next) {
                Some(p) if cgroups.contains(&p.cgroup_id) && !out.iter().any(|q: &&Proc| q.tgid == p.tgid) => {
                    out.push(p);
                    next = p.ppid;
                }
                _ => break,
            }
        }
        out
    }

    /// Learns the processes already running in a container cgroup, from /proc.
    pub fn scan_cgroup(&mut self, dir: &Path, cgroup_id: u64) -> usize {
        let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) else { return 0 };
        let mut n = 0;
        for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if let Some(p) = self.read_proc(pid, cgroup_id) {
                self.procs.insert(pid, p);
                n += 1;
            }
        }
        n
    }

    /// A process as /proc describes it.
    pub fn read_proc(&self, pid: u32, cgroup_id: u64) -> Option<Proc> {
        let (ppid, start_ticks) = proc_stat(pid)?;
        let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // comm is what the process was started as (argv[0]'s file name), like the `name` of an
        // exec event; the executable is the resolved file.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
        let name = if comm.is_empty() { basename(&executable).to_owned() } else { comm };
        Some(Proc {
            tgid: pid,
            ppid,
            start_ticks,
            entity_id: self.entity_id_ticks(pid, start_ticks),
            executable: executable.into(),
            name: name.into(),
            cgroup_id,
        })
    }

    /// Drops entries whose process is gone (an exit record lost to a full ring buffer).
    pub fn sweep(&mut self) -> usize {
        let before = self.procs.len();
        self.procs.retain(|pid, p| proc_stat(*pid).is_some_and(|(_, start)| start == p.start_ticks));
        before - self.procs.len()
    }
}

/// (ppid, starttime in clock ticks) from /proc/<pid>/stat.
pub fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields resume after the
    // last ')'. state is field 3, ppid 4, starttime 22.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// The name a program was started as: argv[0]'s file name (what `ps` shows; for multi-call
/// binaries such as busybox, the applet), else the executable's file name.
pub fn process_name<'a>(executable: &'a str, args: &'a [String]) -> &'a str {
    match args.first().map(|a| basename(a)) {
        Some(a0) if !a0.is_empty() && !a0.starts_with('-') => a0,
        _ => basename(executable),
    }
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_stop_at_the_container_boundary() {
        let mut t = ProcessTable::new("boot".into(), 100);
        // shim (host cgroup 1) -> init sh (82) -> sh child (82) -> echo (82)
        t.insert(Proc {
            tgid: 10,
            ppid: 1,
            start_ticks: 1,
            entity_id: EntityId(1),
            executable: "/usr/bin/containerd-shim".into(),
            name: "shim".into(),
            cgroup_id: 1,
        });
        t.on_exec(20, 10, 2_000_000_000, "/bin/sh", &[], 82);
        t.on_fork(20, 30, 3_000_000_000, 82);
        assert_eq!(&*t.get(30).unwrap().executable, "/bin/sh", "a fork shares its parent's image");
        t.on_exec(30, 20, 3_000_000_000, "/bin/echo", &[], 82);
        let chain: Vec<u32> = t.ancestors(t.get(30).unwrap().ppid, &[82]).iter().map(|p| p.tgid).collect();
        assert_eq!(chain, vec![20], "the parent, up to the container's init; not the shim");
        // A service in a cgroup below the container's (83, systemd in the container): its chain
        // goes on to the init in 82, given both as the container's cgroups.
        t.on_fork(20, 40, 4_000_000_000, 83);
        t.on_exec(40, 20, 4_000_000_000, "/usr/sbin/cron", &[], 83);
        assert!(t.ancestors(40, &[83]).iter().all(|p| p.tgid == 40), "83 alone stops at the boundary");
        let chain: Vec<u32> = t.ancestors(40, &[82, 83]).iter().map(|p| p.tgid).collect();
        assert_eq!(chain, vec![40, 20]);
        assert_eq!(&*t.get(30).unwrap().name, "echo");
        t.on_exit(30);
        assert!(t.get(30).is_none());
    }

    #[test]
    fn entity_ids_agree_between_kernel_and_proc() {
        let t = ProcessTable::new("b".into(), 100);
        // start_boottime 12.345678 s = 1234 ticks of 10 ms.
        assert_eq!(t.entity_id(7, 12_345_678_000), t.entity_id_ticks(7, 1234));
        assert_ne!(t.entity_id(7, 12_345_678_000), t.entity_id(8, 12_345_678_000));
    }

    #[test]
    fn reads_this_process_from_proc() {
        let t = ProcessTable::for_this_host();
        let me = std::process::id();
        let p = t.read_proc(me, 0).unwrap();
        assert_eq!(p.ppid, std::os::unix::process::parent_id());
        assert!(!p.executable.is_empty());
        assert!(t.get(me).is_none());
    }
}
