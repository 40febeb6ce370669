//! The process table of traced containers: what each process runs, who started it, and a stable
//! identity for it.
//!
//! In: fork/exec/exit records, and at start the processes already running in containers (read
//! from /proc). Out: each process's [`Lineage`] (itself and its ancestors as they were) and
//! `process.entity_id` values for the correlator.
//!
//! Truth at record time: a process's parent is the process that forked it, described by the
//! image it ran *when it forked*, not by what it became later (a shell that starts a child and
//! then `exec`s its last command must not turn into that command in the child's event). Each
//! process holds an immutable [`Lineage`] node (shared, `Arc`) whose parent link was taken at
//! the fork; an exec gives the process a new node with the same parent link. Ancestors stay
//! described as they were even after they exec or exit, for as long as a descendant refers to
//! them (chains are cut at [`MAX_DEPTH`]).
//!
//! When no fork record introduced a process (it was forked before the agent traced it, or the
//! record was lost), the kernel's exec record still says which of the parent's images forked it
//! (`parent_exec_id`): each process keeps its last few images by exec generation for that.
//!
//! `entity_id` names one process instance: a hash of the boot id, the pid and the process start
//! time in clock ticks since boot, which the kernel records give (`start_boottime`) and
//! /proc/<pid>/stat gives (`starttime`), so a process learned from /proc after a restart of the
//! agent keeps the id it had.
use docker_listener_common::family::cred::Creds;
use std::{fmt, path::Path, sync::Arc};

/// How far up a parent chain is kept.
pub const MAX_DEPTH: usize = 32;
/// Images kept per process for children whose fork was not seen.
const HISTORY: usize = 4;

/// Multi-call binaries (one executable, the program chosen by the name it is started as): for
/// these, `argv[0]`'s file name says which program runs (docs/EVENTS.md, "Multi-call binaries").
pub const MULTI_CALL: &[&str] = &["busybox", "toybox"];

/// A process as a record names it: its pid and its start time in ns (0 when not known).
pub type Instance = (u32, u64);

/// A process instance's identity, shown as 16 hex digits (`process.entity_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(pub u64);

impl EntityId {
    /// The 16 hex digits, written without `fmt` (an exec event carries three or more).
    fn hex(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[(self.0 >> (60 - 4 * i) & 0xf) as usize];
        }
        out
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or_default())
    }
}

impl serde::Serialize for EntityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.hex()).unwrap_or_default())
    }
}

/// What a process ran: one executed file. Shared by every event and lineage that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The file the kernel executed (its path as the process's root sees it, `memfd:NAME`...).
    pub executable: Arc<str>,
    /// The executable's file name.
    pub name: Arc<str>,
    /// For a multi-call binary, the program it was asked to be (`argv[0]`'s file name).
    pub applet: Option<Arc<str>>,
    /// A multi-call binary whose program cannot be told: the argument naming it was cut (an
    /// argv[0] longer than the argv budget hides it).
    pub applet_hidden: bool,
    /// Which version of the file ran, when known (`Version`).
    pub version: Option<Version>,
}

/// Which version of its file an image ran: the file's identity and its ctime (0: not known) at
/// the exec (for a process found in /proc, when it was found), and whether the file had been
/// written just before (`family::exec::fresh`). A program rewritten in place keeps its inode
/// and path; its ctime, which the kernel moves on every write and no caller can set back, tells
/// it from the old program in the keys that fold events (`SocketBody::routine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub ino: u64,
    /// The kernel's dev_t.
    pub dev: u32,
    pub ctime_ns: u64,
    pub fresh: bool,
}

impl Image {
    /// The image of `executable` started with `args`. A memfd's name is all of it: its name is
    /// the caller's to choose, `/` included (`memfd:x/sshd` is not `sshd`).
    pub fn new(executable: &str, args: &[String]) -> Image {
        let name = if executable.starts_with("memfd:") { executable } else { basename(executable) };
        let (applet, applet_hidden) = match applet(name, args) {
            Applet::Named(a) => (Some(Arc::from(a)), false),
            Applet::Hidden => (None, true),
            Applet::NotMultiCall => (None, false),
        };
        Image { executable: Arc::from(executable), name: Arc::from(name), applet, applet_hidden, version: None }
    }

    /// The same image, with the version of its file that ran.
    pub fn with_version(self, version: Option<Version>) -> Image {
        Image { version, ..self }
    }

    /// An image whose file is not known.
    pub fn unknown() -> Image {
        Image { executable: Arc::from(""), name: Arc::from(""), applet: None, applet_hidden: false, version: None }
    }

    /// Whether the executed file is known (an unknown one may still have a name: the comm).
    pub fn is_known(&self) -> bool {
        !self.executable.is_empty()
    }
}

/// What `argv` says a binary runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applet<'a> {
    /// Not a multi-call binary: its `argv[0]` is whatever the caller chose and says nothing
    /// about what runs.
    NotMultiCall,
    Named(&'a str),
    /// A multi-call binary, and the argument that names its program was cut or is missing.
    Hidden,
}

/// The program a multi-call binary named `name` runs when started with `args`: `argv[0]`'s file
/// name, or, when that is the binary's own name (`busybox sh`), the next argument's, as many
/// times as the binary's name is given (`busybox busybox sh` runs a shell: BusyBox's
/// `busybox_main` runs its `argv[1]` as it would an `argv[0]`). BusyBox takes any argument that
/// starts with "busybox" for its own (`is_prefixed_with` in its appletlib.c): `exec -a
/// busybox.x busybox nc` runs `nc`.
pub fn applet<'a>(name: &str, args: &'a [String]) -> Applet<'a> {
    let multi = |n: &str| MULTI_CALL.contains(&n) || n.starts_with("busybox");
    if !MULTI_CALL.contains(&name) {
        return Applet::NotMultiCall;
    }
    let cut = |a: &str| a.ends_with(crate::ebpf::record::CUT) || a.starts_with(crate::ebpf::record::CUT);
    let mut chosen = match args.first() {
        Some(first) => first,
        None => return Applet::Hidden,
    };
    let mut next = 1;
    while multi(basename(chosen).trim_start_matches('-')) && !cut(chosen) {
        match args.get(next) {
            Some(a) => (chosen, next) = (a, next + 1),
            None => return Applet::Hidden,
        }
    }
    let program = basename(chosen).trim_start_matches('-');
    if cut(chosen) || program.is_empty() { Applet::Hidden } else { Applet::Named(program) }
}

/// One process as it was at one moment, and the chain of its ancestors as they were when each
/// forked the next.
#[derive(Debug)]
pub struct Lineage {
    pub pid: u32,
    pub entity_id: EntityId,
    pub image: Arc<Image>,
    pub cgroup_id: u64,
    pub parent: Option<Arc<Lineage>>,
    depth: usize,
}

impl Lineage {
    pub fn new(
        pid: u32,
        entity_id: EntityId,
        image: Arc<Image>,
        cgroup_id: u64,
        parent: Option<Arc<Lineage>>,
    ) -> Lineage {
        let (parent, depth) = match parent {
            Some(p) if p.depth + 1 >= MAX_DEPTH => {
                let cut = p.truncated(MAX_DEPTH - 1);
                let d = cut.depth + 1;
                (Some(cut), d)
            }
            Some(p) => {
                let d = p.depth + 1;
                (Some(p), d)
            }
            None => (None, 0),
        };
        Lineage { pid, entity_id, image, cgroup_id, parent, depth }
    }

    /// The same process with another image (it exec'd): same ancestors.
    pub fn with_image(&self, image: Arc<Image>) -> Lineage {
        Lineage {
            pid: self.pid,
            entity_id: self.entity_id,
            image,
            cgroup_id: self.cgroup_id,
            parent: self.parent.clone(),
            depth: self.depth,
        }
    }

    /// A copy of this chain keeping at most `keep` nodes (this one and `keep - 1` ancestors), so
    /// that a long fork chain cannot keep every generation alive.
    fn truncated(self: &Arc<Lineage>, keep: usize) -> Arc<Lineage> {
        if self.depth < keep {
            return self.clone();
        }
        let parent = match (&self.parent, keep) {
            (Some(p), k) if k > 1 => Some(p.truncated(k - 1)),
            _ => None,
        };
        let depth = parent.as_ref().map_or(0, |p| p.depth + 1);
        Arc::new(Lineage {
            pid: self.pid,
            entity_id: self.entity_id,
            image: self.image.clone(),
            cgroup_id: self.cgroup_id,
            parent,
            depth,
        })
    }

    /// The pid at the top of this chain inside the container (`cgroups`): the ancestor
    /// `ecs::Lineup` calls the entry leader (the container's init, or the first process of a
    /// `docker exec` session), without building the chain.
    pub fn entry_leader(&self, cgroups: &[u64]) -> u32 {
        self.ancestors_within(cgroups).filter(|a| a.image.is_known()).last().map_or(self.pid, |a| a.pid)
    }

    /// The ancestors, nearest first, as long as they are in one of `cgroups` (a container's
    /// own cgroup and those below it).
    pub fn ancestors_within<'a>(&'a self, cgroups: &'a [u64]) -> impl Iterator<Item = &'a Lineage> + 'a {
        let mut next = self.parent.as_deref();
        std::iter::from_fn(move || {
            let p = next.filter(|p| cgroups.contains(&p.cgroup_id))?;
            next = p.parent.as_deref();
            Some(p)
        })
    }
}

/// A live process of a traced container.
#[derive(Debug, Clone)]
pub struct Proc {
    pub tgid: u32,
    pub start_ticks: u64,
    pub entity_id: EntityId,
    pub cgroup_id: u64,
    /// Itself now, and its ancestors as they were.
    pub lineage: Arc<Lineage>,
    /// Its images by the exec generation from which each ran (oldest first; 0: since before the
    /// agent knew it).
    images: Vec<(u64, Arc<Image>)>,
}

impl Proc {
    pub fn image(&self) -> &Arc<Image> {
        &self.lineage.image
    }

    /// The same process, its image unknown: what /proc shows is not the image a record was
    /// made by (the process executed another file since). Its next exec record names it.
    pub fn image_unknown(self) -> Proc {
        let image = Arc::new(Image::unknown());
        Proc { lineage: Arc::new(self.lineage.with_image(image.clone())), images: vec![(0, image)], ..self }
    }

    pub fn ppid(&self) -> u32 {
        self.lineage.parent.as_ref().map_or(0, |p| p.pid)
    }

    /// The image the process ran at exec generation `exec_id`, if the table knows it: not when
    /// `exec_id` is newer than the newest image's (an exec the table did not see came between:
    /// its record held back by a budget, or lost), unless that image is /proc's (generation 0:
    /// whatever the process runs now).
    pub fn image_at(&self, exec_id: u64) -> Option<&Arc<Image>> {
        match self.images.last() {
            Some((newest, _)) if *newest != 0 && *newest < exec_id => None,
            _ => self.images.iter().rev().find(|(id, _)| *id <= exec_id).map(|(_, i)| i),
        }
    }

    fn push_image(&mut self, exec_id: u64, image: Arc<Image>) {
        if self.images.len() == HISTORY {
            self.images.remove(0);
        }
        self.images.push((exec_id, image));
    }
}

#[derive(Debug)]
pub struct ProcessTable {
    /// By pid (kernel-assigned keys: `foldhash`, see Cargo.toml).
    procs: foldhash::HashMap<u32, Proc>,
    /// Each process's credentials as the agent last saw them (its exec, its privilege
    /// changes): what a privilege-change event had before.
    creds: foldhash::HashMap<u32, Creds>,
    boot_id: String,
    ns_per_tick: u64,
    /// The processes a sweep still has to check (pid, start time in ticks), checked a slice at
    /// a time ([`ProcessTable::sweep_step`]).
    to_check: Vec<(u32, u64)>,
}

impl ProcessTable {
    pub fn new(boot_id: String, clock_ticks_per_sec: u64) -> ProcessTable {
        ProcessTable {
            procs: foldhash::HashMap::default(),
            creds: foldhash::HashMap::default(),
            boot_id,
            ns_per_tick: 1_000_000_000 / clock_ticks_per_sec.max(1),
            to_check: Vec::new(),
        }
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

    /// The process `tgid` if it is the instance started at `start_ns` (not an older process whose
    /// pid was reused after its exit record was lost).
    pub fn instance(&self, tgid: u32, start_ns: u64) -> Option<&Proc> {
        let ticks = self.ticks(start_ns);
        self.procs.get(&tgid).filter(|p| start_ns == 0 || p.start_ticks == ticks)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// A new process (from a fork record): it runs the image its parent ran at `parent_exec_id`,
    /// and its ancestors are its parent's lineage of that moment.
    /// A fork by `parent` started at `parent_start_ns` (0: whichever it is): a table entry for
    /// its pid with another start time is an older process whose exit record was lost, not the
    /// parent (the child then starts with no lineage rather than a wrong one).
    pub fn on_fork(&mut self, parent: Instance, parent_exec_id: u64, child: u32, child_start_ns: u64, cgroup_id: u64) {
        let (image, parent_lineage) = match self.instance(parent.0, parent.1) {
            Some(p) => {
                // An image not known at that generation is not guessed (`image_at`).
                let image = p.image_at(parent_exec_id).cloned().unwrap_or_else(|| Arc::new(Image::unknown()));
                // The parent's lineage, with the image it had when it forked.
                let lineage = if Arc::ptr_eq(&image, p.image()) {
                    p.lineage.clone()
                } else {
                    Arc::new(p.lineage.with_image(image.clone()))
                };
                (image, Some(lineage))
            }
            None => (Arc::new(Image::unknown()), None),
        };
        let start_ticks = self.ticks(child_start_ns);
        let entity_id = self.entity_id_ticks(child, start_ticks);
        let lineage = Arc::new(Lineage::new(child, entity_id, image.clone(), cgroup_id, parent_lineage));
        self.procs.insert(
            child,
            Proc { tgid: child, start_ticks, entity_id, cgroup_id, lineage, images: vec![(parent_exec_id, image)] },
        );
    }

    /// A process's new image (a successful exec), whose parent the kernel says is `ppid`
    /// (started at `parent_start_ns`). Its parent is the process that forked it, described as it
    /// was then, whenever the table saw that fork and knows the forker's image: not the process
    /// the kernel reparented it to since (a double fork or `CLONE_PARENT` cannot hide who
    /// started it). Otherwise (no fork seen, or a forker whose image is unknown: the runtime's
    /// own processes setting a container up) the kernel's parent, with the image it ran at
    /// `parent_exec_id`. Returns the process's lineage now.
    #[allow(clippy::too_many_arguments)] // the exec record's fields
    pub fn on_exec(
        &mut self,
        tgid: u32,
        start_ns: u64,
        exec_id: u64,
        ppid: u32,
        parent_start_ns: u64,
        parent_exec_id: u64,
        image: Arc<Image>,
        cgroup_id: u64,
    ) -> Arc<Lineage> {
        let start_ticks = self.ticks(start_ns);
        if let Some(p) = self
            .procs
            .get_mut(&tgid)
            .filter(|p| p.start_ticks == start_ticks && p.lineage.parent.as_ref().is_some_and(|f| f.image.is_known()))
        {
            p.lineage = Arc::new(p.lineage.with_image(image.clone()));
            p.cgroup_id = cgroup_id;
            p.push_image(exec_id, image);
            return p.lineage.clone();
        }
        let parent = self.parent_lineage(ppid, parent_start_ns, Some(parent_exec_id));
        let entity_id = self.entity_id_ticks(tgid, start_ticks);
        let lineage = Arc::new(Lineage::new(tgid, entity_id, image.clone(), cgroup_id, parent));
        let mut images = match self.procs.remove(&tgid).filter(|p| p.start_ticks == start_ticks) {
            Some(old) => old.images,
            None => Vec::new(),
        };
        if images.len() == HISTORY {
            images.remove(0);
        }
        images.push((exec_id, image));
        self.procs.insert(tgid, Proc { tgid, start_ticks, entity_id, cgroup_id, lineage: lineage.clone(), images });
        lineage
    }

    /// The lineage of the parent `ppid` (the instance started at `parent_start_ns`): as it was at
    /// its exec generation `exec_id` when given, else as it is now.
    pub fn parent_lineage(&self, ppid: u32, parent_start_ns: u64, exec_id: Option<u64>) -> Option<Arc<Lineage>> {
        if ppid == 0 {
            return None;
        }
        if let Some(p) = self.instance(ppid, parent_start_ns) {
            return Some(match exec_id.map(|id| p.image_at(id)) {
                None => p.lineage.clone(),
                Some(Some(i)) if Arc::ptr_eq(i, p.image()) => p.lineage.clone(),
                Some(Some(i)) => Arc::new(p.lineage.with_image(i.clone())),
                // It exec'd since, and the image that forked the child is no longer known:
                // name the process, not a program it did not run then.
                Some(None) => Arc::new(p.lineage.with_image(Arc::new(Image::unknown()))),
            });
        }
        // Outside the container (the runtime's shim, runc) or not traced: as /proc has it, if
        // the pid still names that process; gone already (the `runc exec` of a `docker exec`
        // that ran a short command), by its pid and instance only (the kernel gave both), its
        // image unknown, rather than no parent at all.
        let start = Some(parent_start_ns).filter(|&s| s != 0);
        match self.read_proc(ppid, 0, start) {
            Some(p) => Some(p.lineage),
            None => start.map(|s| self.placeholder(ppid, s, 0).lineage),
        }
    }

    /// The processes of the given cgroups (a container's).
    pub fn pids_in(&self, cgroups: &[u64]) -> Vec<u32> {
        self.procs.values().filter(|p| cgroups.contains(&p.cgroup_id)).map(|p| p.tgid).collect()
    }

    /// The processes outside `cgroups`.
    pub fn pids_not_in(&self, cgroups: &[u64]) -> Vec<u32> {
        self.procs.values().filter(|p| !cgroups.contains(&p.cgroup_id)).map(|p| p.tgid).collect()
    }

    /// The process `tgid` started at `start_ns` ended (0: whichever it is). An exit record of an
    /// older instance (its pid since reused by a process the table learned first) leaves the
    /// new one alone.
    pub fn on_exit(&mut self, tgid: u32, start_ns: u64) -> Option<Proc> {
        self.instance(tgid, start_ns)?;
        self.creds.remove(&tgid);
        self.procs.remove(&tgid)
    }

    /// The process's credentials as last seen.
    pub fn creds(&self, tgid: u32) -> Option<Creds> {
        self.creds.get(&tgid).copied()
    }

    /// Its credentials now (an exec, a privilege change). Kept for known processes only.
    pub fn set_creds(&mut self, tgid: u32, creds: Creds) {
        if self.procs.contains_key(&tgid) {
            self.creds.insert(tgid, creds);
        }
    }

    pub fn insert(&mut self, p: Proc) {
        self.procs.insert(p.tgid, p);
    }

    /// Forgets every process of a cgroup (its container is gone).
    pub fn remove_cgroup(&mut self, cgroup_id: u64) {
        self.procs.retain(|_, p| p.cgroup_id != cgroup_id);
        self.creds.retain(|pid, _| self.procs.contains_key(pid));
    }

    /// Learns the processes already running in a container cgroup, from /proc, parents first
    /// (a process's lineage links to its parent's); returns the pids it had not known.
    pub fn scan_cgroup(&mut self, dir: &Path, cgroup_id: u64) -> Vec<u32> {
        let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) else { return Vec::new() };
        let mut pids: Vec<(u64, u32)> = text
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .filter(|pid| !self.procs.contains_key(pid))
            .filter_map(|pid| proc_stat(pid).map(|s| (s.start_ticks, pid)))
            .collect();
        // A parent starts before its children.
        pids.sort_unstable();
        let mut learned = Vec::new();
        for (_, pid) in pids {
            if let Some(p) = self.read_proc(pid, cgroup_id, None) {
                self.procs.insert(pid, p);
                learned.push(pid);
            }
        }
        learned
    }

    /// A process as /proc describes it, linked to its parent in the table. With `start_ns`, only
    /// if the pid still names the process started then (not a later one that reused the pid).
    pub fn read_proc(&self, pid: u32, cgroup_id: u64, start_ns: Option<u64>) -> Option<Proc> {
        let stat = proc_stat(pid)?;
        if let Some(ns) = start_ns
            && stat.start_ticks != self.ticks(ns)
        {
            return None;
        }
        let image = Arc::new(proc_image(pid));
        let entity_id = self.entity_id_ticks(pid, stat.start_ticks);
        let parent = self.procs.get(&stat.ppid).map(|p| p.lineage.clone());
        let lineage = Arc::new(Lineage::new(pid, entity_id, image.clone(), cgroup_id, parent));
        Some(Proc { tgid: pid, start_ticks: stat.start_ticks, entity_id, cgroup_id, lineage, images: vec![(0, image)] })
    }

    /// A process known only by its pid and start time (/proc no longer has it).
    pub fn placeholder(&self, pid: u32, start_ns: u64, cgroup_id: u64) -> Proc {
        let start_ticks = self.ticks(start_ns);
        let entity_id = self.entity_id_ticks(pid, start_ticks);
        let image = Arc::new(Image::unknown());
        Proc {
            tgid: pid,
            start_ticks,
            entity_id,
            cgroup_id,
            lineage: Arc::new(Lineage::new(pid, entity_id, image.clone(), cgroup_id, None)),
            images: vec![(0, image)],
        }
    }

    /// Drops entries whose process is gone (an exit record lost to a full ring buffer), all at
    /// once: one /proc read per entry (tests; the monitor sweeps a slice at a time).
    #[cfg(test)]
    pub fn sweep(&mut self) -> usize {
        self.start_sweep();
        let mut gone = 0;
        while !self.to_check.is_empty() {
            gone += self.sweep_step(usize::MAX).0;
        }
        gone
    }

    /// Whether a sweep has entries left to check.
    pub fn sweeping(&self) -> bool {
        !self.to_check.is_empty()
    }

    /// Starts a sweep: every entry of now is to be checked. Returns how many.
    pub fn start_sweep(&mut self) -> usize {
        self.to_check = self.procs.values().map(|p| (p.tgid, p.start_ticks)).collect();
        self.to_check.len()
    }

    /// Checks up to `max` of the entries the sweep has left against /proc, drops those whose
    /// process is gone (one /proc read each: a table of 20,000 processes checked at once would
    /// hold the pipeline for a few hundred milliseconds). Returns (dropped, still to check).
    pub fn sweep_step(&mut self, max: usize) -> (usize, usize) {
        let mut gone = 0;
        for _ in 0..max {
            let Some((pid, ticks)) = self.to_check.pop() else { break };
            // The entry checked is the one listed (its pid may have been reused since).
            if self.procs.get(&pid).is_some_and(|p| p.start_ticks == ticks)
                && proc_stat(pid).is_none_or(|s| s.start_ticks != ticks)
            {
                self.procs.remove(&pid);
                self.creds.remove(&pid);
                gone += 1;
            }
        }
        if self.to_check.is_empty() {
            self.to_check = Vec::new();
        }
        (gone, self.to_check.len())
    }
}

/// What /proc/<pid>/stat says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    pub start_ticks: u64,
}

/// (ppid, starttime in clock ticks) from /proc/<pid>/stat.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields resume after the
    // last ')'. state is field 3, ppid 4, starttime 22.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat { ppid: fields.get(1)?.parse().ok()?, start_ticks: fields.get(19)?.parse().ok()? })
}

/// A running process's image as /proc names it: `/proc/<pid>/exe` (the file, not what argv[0]
/// says; in a container, the path the container sees), normalised like the kernel records'
/// ([`exe_link`]), and its argv for the applet of a multi-call binary. A file /proc cannot name
/// (the root of a mount that is not ours, as runc's own binary is while it sets a container up:
/// the link reads "/") is unknown, named by the kernel's comm.
pub fn proc_image(pid: u32) -> Image {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.to_string_lossy().into_owned());
    match link {
        Ok(link) if link != "/" => Image::new(&exe_link(&link).0, &proc_args(pid)).with_version(proc_version(pid)),
        _ => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            Image { name: Arc::from(comm.trim_end()), ..Image::unknown() }
        }
    }
}

/// The version of the file process `pid` runs (`/proc/<pid>/exe`) as it is now: its last
/// change before now, not necessarily before its exec. Fresh when it changed less than
/// `FRESH_NS` before now (then it did before the exec too).
fn proc_version(pid: u32) -> Option<Version> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    let ctime_ns = crate::ebpf::record::ExeFile::ctime_of(m.ctime(), m.ctime_nsec() as u32);
    let fresh = crate::family::exec::fresh(ctime_ns, crate::ecs::now_wall_ns());
    Some(Version { ino: m.ino(), dev: crate::sensitive::kernel_dev(m.dev()), ctime_ns, fresh })
}

/// The file process `pid` runs now (`/proc/<pid>/exe`), as the kernel's records name a
/// caller's: (inode, the kernel's dev_t); None when /proc no longer has the process.
pub fn exe_identity(pid: u32) -> Option<(u64, u32)> {
    crate::sensitive::file_id(format!("/proc/{pid}/exe"))
}

/// `/proc/<pid>/exe`'s link text as an executable path and whether the file was deleted: the
/// kernel appends " (deleted)" to an unlinked file's path, and names a memfd "/memfd:NAME".
pub fn exe_link(link: &str) -> (String, bool) {
    let (path, deleted) = match link.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (link, false),
    };
    match path.strip_prefix("/memfd:") {
        Some(name) => (format!("memfd:{name}"), true),
        None => (path.to_owned(), deleted),
    }
}

/// argv from /proc/<pid>/cmdline (empty for a kernel thread or a process that is gone).
pub fn proc_args(pid: u32) -> Vec<String> {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return Vec::new() };
    let mut args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    if raw.last() == Some(&0) || raw.is_empty() {
        args.pop();
    }
    args
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn an_entity_id_is_its_16_hex_digits(v in proptest::num::u64::ANY) {
            let want = format!("{v:016x}");
            proptest::prop_assert_eq!(EntityId(v).to_string(), want.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&EntityId(v)).unwrap(), format!("\"{want}\""));
        }
    }

    /// A process read from /proc has the version of its file as the kernel's records name it
    /// (inode, the kernel's dev_t) and its ctime now.
    #[test]
    fn a_process_read_from_proc_has_its_file_s_version() {
        use std::os::unix::fs::MetadataExt;
        let me = std::process::id();
        let v = proc_image(me).version.expect("our own executable");
        assert_eq!(Some((v.ino, v.dev)), exe_identity(me));
        let m = std::fs::metadata("/proc/self/exe").expect("our own executable");
        assert_eq!(v.ctime_ns, crate::ebpf::record::ExeFile::ctime_of(m.ctime(), m.ctime_nsec() as u32));
        assert!(v.ctime_ns > 0);
    }

    fn image(path: &str) -> Arc<Image> {
        Arc::new(Image::new(path, &[]))
    }

    fn table() -> ProcessTable {
        ProcessTable::new("boot".into(), 100)
    }

    #[test]
    fn a_sweep_drops_the_gone_a_slice_at_a_time() {
        let mut t = ProcessTable::for_this_host();
        let me = std::process::id();
        let ticks = proc_stat(me).expect("our own /proc/PID/stat").start_ticks;
        let per_tick = t.ns_per_tick;
        let start_ns = |ticks: u64| ticks * per_tick;
        let alive = t.placeholder(me, start_ns(ticks), 1);
        // The same pid started at another time (its pid reused), and pids no process has.
        let reused = t.placeholder(me, start_ns(ticks + 7), 1);
        t.insert(alive);
        let gone: Vec<Proc> = (0..5).map(|i| t.placeholder(4_000_000 + i, start_ns(1), 1)).collect();
        for p in gone {
            t.insert(p);
        }
        assert_eq!(t.start_sweep(), 6);
        assert!(t.sweeping());
        let (g1, left) = t.sweep_step(2);
        assert_eq!(left, 4);
        let mut dropped = g1;
        while t.sweeping() {
            dropped += t.sweep_step(2).0;
        }
        assert_eq!((dropped, t.len()), (5, 1), "only the live process stays");
        assert!(t.get(me).is_some());
        // A listed entry replaced meanwhile by another instance is not the one checked.
        t.insert(reused);
        t.start_sweep();
        let late = t.placeholder(4_000_100, start_ns(1), 1);
        t.insert(late);
        assert_eq!(t.sweep(), 2, "the reused pid's entry (another start time) and the new gone one");
    }

    #[test]
    fn chains_stop_at_the_container_boundary() {
        let mut t = table();
        // shim (host cgroup 1) -> init sh (82) -> sh child (82) -> echo (82)
        let shim = t.placeholder(10, 1_000_000_000, 1);
        t.insert(shim);
        t.on_exec(20, 2_000_000_000, 1, 10, 1_000_000_000, 0, image("/bin/sh"), 82);
        t.on_fork((20, 0), 1, 30, 3_000_000_000, 82);
        assert_eq!(&*t.get(30).unwrap().image().executable, "/bin/sh", "a fork runs its parent's image");
        let echo = t.on_exec(30, 3_000_000_000, 2, 20, 2_000_000_000, 1, image("/bin/echo"), 82);
        let chain: Vec<u32> = echo.ancestors_within(&[82]).map(|p| p.pid).collect();
        assert_eq!(chain, vec![20], "the parent, up to the container's init; not the shim");
        assert_eq!(
            echo.parent.as_ref().unwrap().parent.as_ref().unwrap().pid,
            10,
            "the shim is still the init's parent"
        );
        // A service in a cgroup below the container's (83, systemd in the container): its chain
        // goes on to the init in 82, given both as the container's cgroups.
        t.on_fork((20, 0), 1, 40, 4_000_000_000, 83);
        let cron = t.on_exec(40, 4_000_000_000, 2, 20, 2_000_000_000, 1, image("/usr/sbin/cron"), 83);
        assert_eq!(cron.ancestors_within(&[83]).count(), 0, "83 alone stops at the boundary");
        let chain: Vec<u32> = cron.ancestors_within(&[82, 83]).map(|p| p.pid).collect();
        assert_eq!(chain, vec![20]);
        assert_eq!(&*t.get(30).unwrap().image().name, "echo");
        t.on_exit(30, 0);
        assert!(t.get(30).is_none());
    }

    #[test]
    fn a_fork_by_a_pid_the_table_knows_as_an_older_process_does_not_inherit_its_lineage() {
        let mut t = table();
        // pid 20 was /bin/sh (started at 2 s); its exit record was lost, and the pid now names a
        // process started at 5 s that forks before the table learns it.
        t.on_exec(20, 2_000_000_000, 1, 0, 0, 0, image("/bin/sh"), 82);
        t.on_fork((20, 5_000_000_000), 1, 30, 6_000_000_000, 82);
        let child = t.get(30).unwrap();
        assert!(child.lineage.parent.is_none(), "no parent rather than the wrong one");
        assert!(!child.image().is_known());
        // The same fork by the process it knows does inherit.
        t.on_fork((20, 2_000_000_000), 1, 31, 6_000_000_000, 82);
        assert_eq!(t.get(31).unwrap().lineage.parent.as_ref().map(|p| p.pid), Some(20));
    }

    #[test]
    fn an_exit_record_of_an_older_instance_leaves_the_process_that_reused_its_pid() {
        let mut t = table();
        t.on_exec(20, 2_000_000_000, 1, 0, 0, 0, image("/bin/sh"), 82);
        // pid 20's earlier process (started at 1 s) exited; its record comes late.
        assert!(t.on_exit(20, 1_000_000_000).is_none());
        assert_eq!(&*t.get(20).unwrap().image().executable, "/bin/sh");
        assert!(t.on_exit(20, 2_000_000_000).is_some());
        assert!(t.get(20).is_none());
    }

    #[test]
    fn a_parent_is_described_as_it_was_when_it_forked() {
        let mut t = table();
        t.on_exec(20, 2_000_000_000, 1, 0, 0, 0, image("/bin/sh"), 82);
        // sh forks a child, then execs its last command (cat) before the child's exec arrives.
        t.on_fork((20, 0), 1, 30, 3_000_000_000, 82);
        t.on_exec(20, 2_000_000_000, 2, 0, 0, 0, image("/bin/cat"), 82);
        let child = t.on_exec(30, 3_000_000_000, 2, 20, 2_000_000_000, 1, image("/bin/ls"), 82);
        let parent = child.parent.as_ref().unwrap();
        assert_eq!(parent.pid, 20);
        assert_eq!(&*parent.image.executable, "/bin/sh", "not the cat it became");
        assert_eq!(&*t.get(20).unwrap().image().executable, "/bin/cat");
        // The parent exits: the child's description of it does not change.
        t.on_exit(20, 0);
        assert_eq!(&*child.parent.as_ref().unwrap().image.executable, "/bin/sh");
        // Without a fork record (forked before the agent saw it), the kernel's parent_exec_id
        // picks the parent's image from its history.
        let mut t = table();
        t.on_exec(20, 2_000_000_000, 5, 0, 0, 0, image("/bin/sh"), 82);
        t.on_exec(20, 2_000_000_000, 6, 0, 0, 0, image("/bin/cat"), 82);
        let child = t.on_exec(31, 3_100_000_000, 6, 20, 2_000_000_000, 5, image("/bin/ls"), 82);
        assert_eq!(&*child.parent.as_ref().unwrap().image.executable, "/bin/sh");
        // An image older than the history: the parent is named, its program is not guessed.
        let child = t.on_exec(32, 3_200_000_000, 4, 20, 2_000_000_000, 3, image("/bin/ls"), 82);
        let parent = child.parent.as_ref().unwrap();
        assert_eq!(parent.pid, 20);
        assert!(!parent.image.is_known());
        // A parent pid that now names another process (start time differs): not attributed.
        let child = t.on_exec(33, 3_300_000_000, 4, 20, 1_000_000_000, 5, image("/bin/ls"), 82);
        assert!(child.parent.as_ref().is_none_or(|p| p.entity_id != t.get(20).unwrap().entity_id));
    }

    /// A parent outside the table that /proc no longer has (the `runc exec` of a `docker exec`
    /// that ran a short command, gone before its child's exec record is read): named by the
    /// pid and instance the kernel gave, its program unknown, rather than no parent.
    #[test]
    fn a_parent_gone_from_proc_is_still_named_by_its_instance() {
        let mut t = table();
        let child = t.on_exec(50, 5_000_000_000, 2, 424_242, 1_500_000_000, 1, image("/bin/true"), 82);
        let parent = child.parent.as_ref().expect("a parent");
        assert_eq!(parent.pid, 424_242);
        assert!(!parent.image.is_known());
        assert_eq!(parent.entity_id, t.placeholder(424_242, 1_500_000_000, 0).entity_id);
        assert_eq!(child.entry_leader(&[82]), 50, "not in the container: the chain stops there");
        // With no start time, the instance is not known: no parent rather than a guess.
        let orphan = t.on_exec(51, 5_100_000_000, 2, 424_242, 0, 1, image("/bin/true"), 82);
        assert!(orphan.parent.is_none());
    }

    /// An exec the table did not see (its record held back by the container's budget): the
    /// process's later records and its children do not name the program it ran before.
    #[test]
    fn after_an_exec_not_seen_the_image_is_unknown_not_the_previous_one() {
        let mut t = table();
        t.on_exec(20, 2_000_000_000, 1, 0, 0, 0, image("/bin/sh"), 82);
        let p = t.get(20).unwrap();
        assert_eq!(&*p.image_at(1).unwrap().executable, "/bin/sh");
        assert!(p.image_at(2).is_none(), "generation 2's exec was not seen");
        t.on_fork((20, 0), 2, 30, 3_000_000_000, 82);
        let child = t.get(30).unwrap();
        assert!(!child.image().is_known(), "the forker's image at generation 2 is not /bin/sh");
        assert_eq!(child.lineage.parent.as_ref().unwrap().pid, 20);
        // A process known from /proc (generation 0) runs what /proc showed, whatever the record's.
        let t = table();
        let p = t.read_proc(std::process::id(), 0, None).expect("this process");
        assert!(p.image_at(7).is_some_and(|i| i.is_known()));
    }

    #[test]
    fn a_double_fork_or_clone_parent_cannot_hide_who_started_a_process() {
        let mut t = table();
        t.on_exec(20, 2_000_000_000, 1, 1, 0, 0, image("/bin/sh"), 82);
        // sh forks 30, which forks 40 and exits: 40 is reparented to the init (1).
        t.on_fork((20, 0), 1, 30, 3_000_000_000, 82);
        t.on_fork((30, 0), 1, 40, 4_000_000_000, 82);
        t.on_exit(30, 0);
        let miner = t.on_exec(40, 4_000_000_000, 2, 1, 1_000_000_000, 7, image("/tmp/miner"), 82);
        let parent = miner.parent.as_ref().unwrap();
        assert_eq!(parent.pid, 30, "the process that forked it, though the kernel says 1 now");
        assert_eq!(&*parent.image.executable, "/bin/sh");
        assert_eq!(parent.parent.as_ref().unwrap().pid, 20);
    }

    #[test]
    fn long_fork_chains_are_cut() {
        let mut t = table();
        t.on_exec(2, 1_000_000_000, 1, 0, 0, 0, image("/bin/sh"), 82);
        let mut parent = 2;
        for pid in 3..200u32 {
            t.on_fork((parent, 0), 1, pid, u64::from(pid) * 1_000_000_000, 82);
            t.on_exit(parent, 0);
            parent = pid;
        }
        let last = t.get(parent).unwrap();
        let depth = last.lineage.ancestors_within(&[82]).count();
        assert_eq!(depth, MAX_DEPTH - 1, "the chain keeps the nearest ancestors only");
        assert_eq!(last.lineage.parent.as_ref().unwrap().pid, parent - 1);
    }

    #[test]
    fn applets_only_for_multi_call_binaries() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(applet("busybox", &args(&["sh", "-c", "x"])), Applet::Named("sh"));
        assert_eq!(applet("busybox", &args(&["/bin/ls", "/"])), Applet::Named("ls"));
        assert_eq!(applet("busybox", &args(&["busybox", "nc", "-l"])), Applet::Named("nc"));
        // BusyBox runs argv[1] for any argv[0] that starts with its name.
        assert_eq!(applet("busybox", &args(&["busybox.x", "nc", "-e", "sh"])), Applet::Named("nc"));
        assert_eq!(applet("busybox", &args(&["/tmp/busyboxy", "nc"])), Applet::Named("nc"));
        assert_eq!(applet("busybox", &args(&["busybox.x"])), Applet::Hidden);
        // As many times as it is named: `busybox busybox sh` runs a shell.
        assert_eq!(applet("busybox", &args(&["busybox", "busybox", "sh"])), Applet::Named("sh"));
        assert_eq!(applet("busybox", &args(&["busybox", "/bin/busybox", "busybox.x", "nc"])), Applet::Named("nc"));
        assert_eq!(applet("busybox", &args(&["busybox", "busybox"])), Applet::Hidden);
        assert_eq!(applet("busybox", &args(&["-sh"])), Applet::Named("sh"), "a login shell");
        assert_eq!(applet("bash", &args(&["nginx"])), Applet::NotMultiCall, "argv[0] of other programs means nothing");
        assert_eq!(applet("toybox", &args(&["toybox"])), Applet::Hidden);
        // A long argv[0] cut by the budget: its end (the program's name) is not in the event.
        assert_eq!(applet("busybox", &args(&["//////…", "…-c", "x"])), Applet::Hidden);
        assert_eq!(applet("busybox", &args(&[])), Applet::Hidden);
        assert!(Image::new("/bin/busybox", &args(&["//////…", "…x"])).applet_hidden);
        assert_eq!(&*Image::new("/bin/busybox", &args(&["nginx"])).name, "busybox");
        // A memfd's name is the caller's, `/` included: not a program's name, nor a multi-call's.
        let m = Image::new("memfd:x/busybox", &args(&["ls"]));
        assert_eq!((&*m.name, m.applet.as_deref()), ("memfd:x/busybox", None));
    }

    #[test]
    fn exe_links_are_normalised() {
        assert_eq!(exe_link("/bin/busybox"), ("/bin/busybox".into(), false));
        assert_eq!(exe_link("/tmp/x (deleted)"), ("/tmp/x".into(), true));
        assert_eq!(exe_link("/memfd:payload (deleted)"), ("memfd:payload".into(), true));
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
        let p = t.read_proc(me, 0, None).unwrap();
        assert_eq!(p.ppid(), 0, "its parent is not in the table");
        assert!(p.image().is_known());
        assert!(t.get(me).is_none());
        // The right start time is accepted, another is refused (a reused pid).
        let start_ns = p.start_ticks * 10_000_000;
        assert!(t.read_proc(me, 0, Some(start_ns)).is_some());
        assert!(t.read_proc(me, 0, Some(start_ns + 1_000_000_000)).is_none());
    }
}
