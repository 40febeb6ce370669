//! The container registry: which container a cgroup id belongs to.
//!
//! In: Docker's container list and inspect answers, Docker's container events (start, die,
//! destroy, rename), and the kernel's cgroup records. Out: `cgroup id -> Container` lookups for
//! the correlator, and the set of cgroup ids the kernel filter should trace.
//!
//! The join key is the cgroup id, which is the inode of the container's cgroup v2 directory.
//! The directory is found, not assumed: under the cgroup v2 mount (read from mountinfo), at the
//! configured prefixes (`/docker/<id>` for Docker's cgroupfs driver,
//! `/system.slice/docker-<id>.scope` for systemd), else from the container's init process
//! (`/proc/<pid>/cgroup`).
use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    config::EbpfConfig,
    labels::{LabelBudget, ShownLabels},
};

/// How long a stopped container stays known, for events that arrive after its `die`/`destroy`.
pub const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    pub image: String,
    pub image_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The init process (host pid), when known.
    pub pid: Option<u32>,
    /// The namespaces Docker made it share (its inspection's `HostConfig`); `None` until
    /// inspected.
    pub namespaces: Option<Box<NamespaceModes>>,
    /// Its root filesystem as the host sees it (the inspection's `GraphDriver.Data.MergedDir`,
    /// overlay2's); `None` until inspected, or for a storage driver that names none.
    pub root_dir: Option<Box<std::path::Path>>,
    /// `timeNano` of Docker's `start` event for this run (or `State.StartedAt`), so process
    /// events can be joined with the container's lifecycle events.
    pub started_time_nano: Option<i64>,
    /// The labels our events show (within the label budget); set by the registry.
    pub shown_labels: ShownLabels,
    /// The `container` object of our events, once serialised (`crate::ecs`); emptied by the
    /// registry whenever what it shows changes.
    pub object: ObjectCache,
}

/// The `container` object of a container's events (its id, name, image and shown labels),
/// serialised at its first event and then copied as is into the others: the same few hundred
/// bytes, a quarter of an exec event, were escaped and written again for every event. A cache
/// of the other fields, so two containers are equal whatever their caches hold. Whoever
/// changes one of those fields empties it (`ContainerRegistry::upsert`, `rename`).
#[derive(Debug, Clone, Default)]
pub struct ObjectCache(std::sync::OnceLock<Box<serde_json::value::RawValue>>);

impl ObjectCache {
    pub fn get(&self) -> Option<&serde_json::value::RawValue> {
        self.0.get().map(|b| &**b)
    }

    /// Keeps `json` (the first one given is kept); returns the one kept.
    pub fn fill(&self, json: Box<serde_json::value::RawValue>) -> &serde_json::value::RawValue {
        self.0.get_or_init(|| json)
    }
}

impl PartialEq for ObjectCache {
    fn eq(&self, _: &ObjectCache) -> bool {
        true
    }
}

impl Eq for ObjectCache {}

impl Container {
    /// Built from `GET /containers/{id}/json`.
    pub fn from_inspect(r: &bollard::models::ContainerInspectResponse) -> Option<Container> {
        let id = r.id.clone()?;
        let config = r.config.as_ref();
        let state = r.state.as_ref();
        Some(Container {
            name: r.name.as_deref().unwrap_or("").trim_start_matches('/').to_owned(),
            image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
            image_id: r.image.clone(),
            labels: config.and_then(|c| c.labels.clone()).map(|l| l.into_iter().collect()).unwrap_or_default(),
            pid: state.and_then(|s| s.pid).filter(|p| *p > 0).map(|p| p as u32),
            namespaces: r
                .host_config
                .as_ref()
                .map(|h| Box::new(NamespaceModes::of(h, config.and_then(|c| c.network_disabled).unwrap_or(false)))),
            root_dir: r
                .graph_driver
                .as_ref()
                .and_then(|g| g.data.get("MergedDir"))
                .filter(|d| d.starts_with('/'))
                .map(|d| std::path::Path::new(d).into()),
            started_time_nano: state.and_then(|s| s.started_at.as_deref()).and_then(rfc3339_ns),
            id,
            shown_labels: ShownLabels::default(),
            object: ObjectCache::default(),
        })
    }

    /// Built from a list entry (`GET /containers/json`): everything but the init pid.
    pub fn from_summary(s: &bollard::models::ContainerSummary) -> Option<Container> {
        Some(Container {
            id: s.id.clone()?,
            name: s
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            image: s.image.clone().unwrap_or_default(),
            image_id: s.image_id.clone(),
            labels: s.labels.clone().map(|l| l.into_iter().collect()).unwrap_or_default(),
            pid: None,
            namespaces: None,
            root_dir: None,
            started_time_nano: None,
            shown_labels: ShownLabels::default(),
            object: ObjectCache::default(),
        })
    }

    /// Built from a container `start` event: Docker puts the labels, `image` and `name` in
    /// `Actor.Attributes`.
    pub fn from_start_event(id: &str, time_nano: i64, attributes: &BTreeMap<String, String>) -> Container {
        let mut labels = attributes.clone();
        let name = labels.remove("name").unwrap_or_default();
        let image = labels.remove("image").unwrap_or_default();
        Container {
            id: id.to_owned(),
            name,
            image,
            image_id: None,
            labels,
            pid: None,
            namespaces: None,
            root_dir: None,
            started_time_nano: Some(time_nano),
            shown_labels: ShownLabels::default(),
            object: ObjectCache::default(),
        }
    }

    /// Whether the ignore lists exclude this container from tracing.
    pub fn is_ignored(&self, cfg: &EbpfConfig) -> bool {
        let by_name =
            cfg.ignore_containers.iter().any(|c| *c == self.name || (c.len() >= 12 && self.id.starts_with(c.as_str())));
        let repo =
            self.image.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(self.image.as_str(), |(r, _)| r);
        let by_image = cfg.ignore_images.iter().any(|i| *i == self.image || *i == repo);
        let by_label = cfg.ignore_labels.iter().any(|l| match l.split_once('=') {
            Some((k, v)) => self.labels.get(k).is_some_and(|have| have == v),
            None => self.labels.contains_key(l),
        });
        by_name || by_image || by_label
    }
}

/// A namespace of a container as Docker made it (`HostConfig`'s `PidMode`, `NetworkMode`,
/// `IpcMode`, `UTSMode`, `CgroupnsMode`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    /// Its own (`private`, `shareable`, `none`, a network's name, or empty).
    #[default]
    Own,
    /// The host's (`host`).
    Host,
    /// Another container's (`container:<id>`).
    Container(String),
}

impl NamespaceMode {
    fn parse(mode: Option<&str>) -> NamespaceMode {
        match mode {
            Some("host") => NamespaceMode::Host,
            Some(m) => match m.strip_prefix("container:") {
                Some(other) if !other.is_empty() => NamespaceMode::Container(other.to_owned()),
                _ => NamespaceMode::Own,
            },
            None => NamespaceMode::Own,
        }
    }
}

/// Which namespaces a container shares, as Docker was told to make it: a record of the
/// container's creation, which nothing inside the container can change (its processes' own
/// namespaces a process with CAP_SYS_ADMIN can change, by a setns). Its mount namespace is
/// always its own; its user and time namespaces are not here (a setns by a pidfd is judged on
/// `JOINED`'s namespaces, which do not include them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceModes {
    pub pid: NamespaceMode,
    pub net: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub cgroup: NamespaceMode,
}

impl NamespaceModes {
    /// From the inspection's `HostConfig`, and `Config.NetworkDisabled` (`network_disabled`:
    /// Docker then makes the container a network namespace of its own whatever its mode).
    pub fn of(h: &bollard::models::HostConfig, network_disabled: bool) -> NamespaceModes {
        NamespaceModes {
            pid: NamespaceMode::parse(h.pid_mode.as_deref()),
            net: match network_disabled {
                true => NamespaceMode::Own,
                false => NamespaceMode::parse(h.network_mode.as_deref()),
            },
            ipc: NamespaceMode::parse(h.ipc_mode.as_deref()),
            uts: NamespaceMode::parse(h.uts_mode.as_deref()),
            // (An empty mode is the host's: Docker 20.10 and later write the mode they chose at
            // the creation, `host` on a cgroup v1 host; before, every container was in the
            // host's. Taken for its own: a setns into it is then named a host namespace, never
            // missed.)
            cgroup: match h.cgroupns_mode {
                Some(bollard::models::HostConfigCgroupnsModeEnum::HOST) => NamespaceMode::Host,
                _ => NamespaceMode::Own,
            },
        }
    }

    /// The mode of the namespace `/proc/PID/ns/` names `name`; a mount namespace, or one of a
    /// type Docker does not share, is the container's own.
    pub fn get(&self, name: &str) -> &NamespaceMode {
        const OWN: NamespaceMode = NamespaceMode::Own;
        match name {
            "pid" => &self.pid,
            "net" => &self.net,
            "ipc" => &self.ipc,
            "uts" => &self.uts,
            "cgroup" => &self.cgroup,
            _ => &OWN,
        }
    }
}

#[derive(Debug)]
struct Entry {
    container: Option<Container>,
    /// Its cgroups: the container's own, and any a process inside created below it (systemd
    /// or Docker in the container); a restart's new cgroup joins the old one, and all are
    /// forgotten together GRACE after `destroy`.
    cgroup_ids: Vec<u64>,
    /// Set by `die`; the entry is dropped GRACE after `destroy`.
    removed_at: Option<Instant>,
    /// When Docker last told us about this container (event, inspect or inventory).
    updated_at: Instant,
}

impl Entry {
    fn new() -> Entry {
        Entry { container: None, cgroup_ids: Vec::new(), removed_at: None, updated_at: Instant::now() }
    }
}

/// What the registry knows about a cgroup id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A container with its name, image and labels.
    Known(&'a Container),
    /// A container cgroup whose container is being inspected (its id is known).
    Pending(&'a str),
    /// Not a container cgroup we know of.
    Unknown,
}

#[derive(Debug)]
pub struct ContainerRegistry {
    /// Keyed by what Docker and the kernel assign: `foldhash` (see Cargo.toml).
    by_id: foldhash::HashMap<String, Entry>,
    by_cgroup: foldhash::HashMap<u64, String>,
    budget: LabelBudget,
    /// Containers forgotten so far (`removals`).
    removals: u64,
}

impl Default for ContainerRegistry {
    fn default() -> Self {
        let cfg = EbpfConfig::default();
        ContainerRegistry::new(LabelBudget { max_count: cfg.labels_max, max_bytes: cfg.labels_max_bytes })
    }
}

impl ContainerRegistry {
    pub fn new(budget: LabelBudget) -> ContainerRegistry {
        ContainerRegistry {
            by_id: foldhash::HashMap::default(),
            by_cgroup: foldhash::HashMap::default(),
            budget,
            removals: 0,
        }
    }

    pub fn lookup(&self, cgroup_id: u64) -> Lookup<'_> {
        match self.by_cgroup.get(&cgroup_id) {
            Some(id) => match self.by_id.get(id).and_then(|e| e.container.as_ref()) {
                Some(c) => Lookup::Known(c),
                None => Lookup::Pending(id),
            },
            None => Lookup::Unknown,
        }
    }

    /// The id of the container a cgroup is bound to (its details may not be known yet).
    pub fn container_id_of(&self, cgroup_id: u64) -> Option<&str> {
        self.by_cgroup.get(&cgroup_id).map(String::as_str)
    }

    pub fn get(&self, id: &str) -> Option<&Container> {
        self.by_id.get(id).and_then(|e| e.container.as_ref())
    }

    /// The container's cgroups (see `Entry::cgroup_ids`).
    pub fn cgroups_of(&self, id: &str) -> &[u64] {
        self.by_id.get(id).map_or(&[], |e| &e.cgroup_ids)
    }

    /// Every cgroup of the container `cgroup_id` belongs to; empty when it names no container.
    pub fn container_cgroups(&self, cgroup_id: u64) -> &[u64] {
        self.by_cgroup.get(&cgroup_id).map_or(&[], |id| self.cgroups_of(id))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether container `id` was made to share the host's namespace `/proc/PID/ns/` names
    /// `name`, by Docker's inspection, following `container:<id>` modes to the container whose
    /// namespace it joined. Not when unknown (not inspected yet, or joining a container no longer
    /// known): a setns into that namespace is then named a host namespace, never missed.
    ///
    /// A joined container is found by its full id only, as Docker writes it when the container
    /// to join exists at the creation. A name (kept when it did not: Docker looks it up again
    /// at each start) is not looked up here: another container may have that name by now.
    pub fn shares_host_namespace(&self, id: &str, name: &str) -> bool {
        let mut id = id;
        // (Chains of joins end at one of Docker's own containers; the bound ends a loop.)
        for _ in 0..8 {
            let Some(modes) = self.get(id).and_then(|c| c.namespaces.as_ref()) else {
                return false;
            };
            match modes.get(name) {
                NamespaceMode::Host => return true,
                NamespaceMode::Own => return false,
                NamespaceMode::Container(other) => id = other,
            }
        }
        false
    }

    /// The containers whose details are known (not those only named by a cgroup so far).
    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.by_id.values().filter_map(|e| e.container.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// How many containers were forgotten since the start (`forget`, `expire`): what was
    /// known stays known until this changes.
    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// Records that `cgroup_id` belongs to container `id` (details may come later).
    pub fn bind_cgroup(&mut self, id: &str, cgroup_id: u64) {
        if self.by_cgroup.get(&cgroup_id).is_some_and(|owner| owner != id) {
            self.unbind_cgroup(cgroup_id);
        }
        let e = self.by_id.entry(id.to_owned()).or_insert_with(Entry::new);
        if !e.cgroup_ids.contains(&cgroup_id) {
            e.cgroup_ids.push(cgroup_id);
        }
        e.removed_at = None;
        e.updated_at = Instant::now();
        self.by_cgroup.insert(cgroup_id, id.to_owned());
    }

    /// Forgets a container and its cgroups (Docker says it has no such container); returns them.
    pub fn forget(&mut self, id: &str) -> Vec<u64> {
        let Some(e) = self.by_id.remove(id) else { return Vec::new() };
        self.removals += 1;
        for cg in &e.cgroup_ids {
            self.by_cgroup.remove(cg);
        }
        e.cgroup_ids
    }

    /// Forgets which container a cgroup belongs to.
    pub fn unbind_cgroup(&mut self, cgroup_id: u64) {
        if let Some(id) = self.by_cgroup.remove(&cgroup_id)
            && let Some(e) = self.by_id.get_mut(&id)
        {
            e.cgroup_ids.retain(|c| *c != cgroup_id);
        }
    }

    /// Adds or refreshes a container's details; keeps known fields the update lacks. The
    /// start time, once known, is kept: Docker's start event sets it (`restarted` first clears
    /// it) and inspect's `State.StartedAt` only fills it when no start event was seen.
    pub fn upsert(&mut self, c: Container) {
        let e = self.by_id.entry(c.id.clone()).or_insert_with(Entry::new);
        e.removed_at = None;
        e.updated_at = Instant::now();
        let mut merged = match e.container.take() {
            Some(old) => Container {
                image_id: c.image_id.or(old.image_id),
                pid: c.pid.or(old.pid),
                namespaces: c.namespaces.or(old.namespaces),
                root_dir: c.root_dir.or(old.root_dir),
                started_time_nano: old.started_time_nano.or(c.started_time_nano),
                name: if c.name.is_empty() { old.name } else { c.name },
                image: if c.image.is_empty() { old.image } else { c.image },
                labels: if c.labels.is_empty() { old.labels } else { c.labels },
                id: c.id,
                shown_labels: old.shown_labels,
                object: ObjectCache::default(),
            },
            None => c,
        };
        merged.shown_labels = self.budget.apply(&merged.labels);
        merged.object = ObjectCache::default();
        e.container = Some(merged);
    }

    /// A new run of the container begins (Docker's `start`): forget the previous start time.
    pub fn restarted(&mut self, id: &str) {
        if let Some(c) = self.by_id.get_mut(id).and_then(|e| e.container.as_mut()) {
            c.started_time_nano = None;
        }
    }

    pub fn rename(&mut self, id: &str, name: &str) {
        if let Some(c) = self.by_id.get_mut(id).and_then(|e| e.container.as_mut()) {
            c.name = name.trim_start_matches('/').to_owned();
            c.object = ObjectCache::default();
        }
    }

    /// `destroy` (or gone from Docker's list): forgotten after GRACE.
    pub fn mark_removed(&mut self, id: &str, now: Instant) {
        if let Some(e) = self.by_id.get_mut(id) {
            e.removed_at.get_or_insert(now);
        }
    }

    /// After a listing of the running containers asked for at `asked_at`: the containers it
    /// does not name went away while we were not watching (Docker unreachable), unless Docker
    /// told us about them after the listing was asked for (a container started meanwhile).
    pub fn mark_unlisted_removed(
        &mut self,
        listed: &std::collections::HashSet<String>,
        asked_at: Instant,
        now: Instant,
    ) {
        for (id, e) in &mut self.by_id {
            if !listed.contains(id) && e.updated_at < asked_at {
                e.removed_at.get_or_insert(now);
            }
        }
    }

    /// Drops the entries removed more than GRACE ago; returns their cgroup ids.
    pub fn expire(&mut self, now: Instant) -> Vec<u64> {
        let gone: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.removed_at.is_some_and(|t| now.duration_since(t) >= GRACE))
            .map(|(id, _)| id.clone())
            .collect();
        let mut cgroups = Vec::new();
        for id in gone {
            if let Some(e) = self.by_id.remove(&id) {
                self.removals += 1;
                for cg in e.cgroup_ids {
                    self.by_cgroup.remove(&cg);
                    cgroups.push(cg);
                }
            }
        }
        cgroups
    }
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified` on a
/// hybrid one), from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

/// The 64-hex container id in a cgroup path's last component ("/docker/<id>",
/// "/system.slice/docker-<id>.scope").
pub fn container_id_in_path(path: &str) -> Option<&str> {
    container_id_in_name(path.trim_end_matches('/').rsplit('/').next()?)
}

/// The container a cgroup path belongs to: the id in its outermost component that holds one,
/// so that a cgroup a container created below its own ("/docker/<id>/init.scope", or a nested
/// Docker's "/docker/<id>/docker/<inner>") is that container's, the one this host's Docker knows.
pub fn container_of_path(path: &str) -> Option<&str> {
    path.split('/').find_map(container_id_in_name)
}

/// The 64-hex container id in one path component.
fn container_id_in_name(last: &str) -> Option<&str> {
    let bytes = last.as_bytes();
    (0..bytes.len().saturating_sub(63)).find_map(|i| {
        let run = &bytes[i..i + 64];
        let boundary = |j: usize| bytes.get(j).is_none_or(|b| !b.is_ascii_hexdigit());
        (run.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && (i == 0 || boundary(i - 1))
            && boundary(i + 64))
        .then(|| &last[i..i + 64])
    })
}

/// The cgroup directory of container `id` under `mount`, trying each prefix as Docker's drivers
/// name it: `<prefix><id>` and `<prefix><id>.scope`.
pub fn find_cgroup_dir(mount: &Path, prefixes: &[String], id: &str) -> Option<PathBuf> {
    prefixes.iter().find_map(|p| {
        let rel = p.trim_start_matches('/');
        [format!("{rel}{id}"), format!("{rel}{id}.scope")].into_iter().map(|r| mount.join(r)).find(|d| d.is_dir())
    })
}

/// The cgroup v2 directory of a process, from `/proc/<pid>/cgroup` ("0::/path").
pub fn cgroup_dir_of_pid(mount: &Path, pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(rel.trim_start_matches('/')))
}

/// The container of the cgroup process `pid` is in, if that cgroup is `cgroup_id` (the pid was
/// not reused meanwhile) and its path names a container.
pub fn container_of_pid_cgroup(mount: &Path, pid: u32, want: u64) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = mount.join(rel.trim_start_matches('/'));
    (cgroup_id(&dir).ok()? == want).then(|| container_of_path(rel).map(str::to_owned))?
}

/// The processes in a cgroup (`cgroup.procs`).
pub fn cgroup_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// How far below a container's own cgroup its cgroups are looked for (start-up inventory, and
/// a cgroup whose creation record was lost): levels, and cgroups per container.
pub const BELOW_DEPTH: usize = 4;
pub const BELOW_MAX: usize = 256;

/// The cgroups below `dir` (not `dir` itself), breadth first, at most `depth` levels down and
/// `max` of them: (id, directory).
pub fn cgroups_below(dir: &Path, depth: usize, max: usize) -> Vec<(u64, PathBuf)> {
    let mut found = Vec::new();
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for d in &level {
            let Ok(entries) = std::fs::read_dir(d) else { continue };
            for e in entries.flatten() {
                if found.len() >= max {
                    return found;
                }
                // The entry's type comes with the directory listing: only directories are
                // stat'ed (a container's cgroup holds ~50 files and usually no directory).
                if e.file_type().is_ok_and(|t| t.is_dir())
                    && let Ok(m) = e.metadata()
                {
                    found.push((m.ino(), e.path()));
                    next.push(e.path());
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    found
}

/// A cgroup's id: the inode number of its directory.
pub fn cgroup_id(dir: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(dir)?.ino())
}

/// Searches the prefixes' directories for the container cgroup with this id (used when a record
/// names a cgroup we never heard of, e.g. its creation record was lost).
pub fn find_cgroup_by_id(mount: &Path, prefixes: &[String], cgroup_id: u64) -> Option<(String, PathBuf)> {
    for p in prefixes {
        let rel = p.trim_start_matches('/');
        // "/docker/" lists /docker; "/system.slice/docker-" lists /system.slice.
        let (dir, name_prefix) = match rel.rsplit_once('/') {
            Some((d, n)) => (mount.join(d), n),
            None => (mount.to_path_buf(), rel),
        };
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(name_prefix) {
                continue;
            }
            let Some(id) = container_id_in_path(&name) else { continue };
            if e.metadata().is_ok_and(|m| m.is_dir() && m.ino() == cgroup_id) {
                return Some((id.to_owned(), e.path()));
            }
            // A cgroup the container made below its own (systemd or Docker inside it), found
            // within the same limits as at start-up.
            if let Some((_, sub)) =
                cgroups_below(&e.path(), BELOW_DEPTH, BELOW_MAX).into_iter().find(|(cg, _)| *cg == cgroup_id)
            {
                return Some((id.to_owned(), sub));
            }
        }
    }
    None
}

/// Nanoseconds since the epoch of an RFC 3339 time as Docker writes it
/// ("2026-11-27T15:14:35.123456789Z", or with an offset, "...789+01:00", as healthcheck results
/// carry dockerd's local time). Docker's zero time ("0001-01-01T00:00:00Z") gives None.
pub fn rfc3339_ns(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (time, offset_s) = match time.strip_suffix('Z') {
        Some(t) => (t, 0),
        None => {
            let at = time.rfind(['+', '-'])?;
            let (t, off) = time.split_at(at);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..].split_once(':')?;
            let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            (t, sign * (oh * 3600 + om * 60))
        }
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if y < 1970
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, mo) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let nanos = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse::<i64>().ok()? };
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss - offset_s) * 1_000_000_000) + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "570fefe78429d3600b750fb59149623a7a7d6c644403383ad4a30df5b8e18384";

    #[test]
    fn rfc3339_with_an_offset_is_the_same_instant() {
        let z = rfc3339_ns("2026-11-27T15:14:35.123456789Z").unwrap();
        assert_eq!(rfc3339_ns("2026-11-27T16:14:35.123456789+01:00"), Some(z));
        assert_eq!(rfc3339_ns("2026-11-27T10:44:35.123456789-04:30"), Some(z));
        assert_eq!(rfc3339_ns("2026-11-27T15:14:35.123456789+25:00"), None);
        assert_eq!(rfc3339_ns("2026-11-27T15:14:35.123456789"), None);
    }

    #[test]
    fn container_ids_are_found_in_both_driver_layouts() {
        assert_eq!(container_id_in_path(&format!("/docker/{ID}")), Some(ID));
        assert_eq!(container_id_in_path(&format!("/system.slice/docker-{ID}.scope")), Some(ID));
        assert_eq!(container_id_in_path(&format!("/custom/parent/{ID}/")), Some(ID));
        assert_eq!(container_id_in_path("/docker/not-an-id"), None);
        assert_eq!(container_id_in_path(&format!("/docker/{ID}0")), None, "65 hex digits is not an id");
        assert_eq!(container_id_in_path(&format!("/docker/{ID}/init.scope")), None);
        assert_eq!(container_of_path(&format!("/docker/{ID}/init.scope")), Some(ID));
        assert_eq!(container_of_path(&format!("/system.slice/docker-{ID}.scope/a/b")), Some(ID));
        assert_eq!(container_of_path("/system.slice/cron.service"), None);
        let inner = "b".repeat(64);
        assert_eq!(
            container_of_path(&format!("/docker/{ID}/docker/{inner}")),
            Some(ID),
            "Docker in Docker: the outer one"
        );
    }

    #[test]
    fn rfc3339_matches_docker_times() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        // A real Docker event: "time":1795792475,"timeNano":1795792475014659607.
        assert_eq!(rfc3339_ns("2026-11-27T15:14:35.014659607Z"), Some(1_795_792_475_014_659_607));
        assert_eq!(rfc3339_ns("2026-11-27T15:14:35.5Z"), Some(1_795_792_475_500_000_000));
        assert_eq!(rfc3339_ns("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_ns("garbage"), None);
    }

    #[test]
    fn what_a_container_shares_with_the_host_is_dockers_record_through_joined_containers() {
        let inspect = |id: &str, name: &str, host: serde_json::Value| {
            let r: bollard::models::ContainerInspectResponse =
                serde_json::from_value(serde_json::json!({"Id": id, "Name": format!("/{name}"), "HostConfig": host}))
                    .unwrap();
            Container::from_inspect(&r).unwrap()
        };
        let [a, b, c, d, e, f] = ["a", "b", "c", "d", "e", "f"].map(|x| x.repeat(64));
        let mut r = ContainerRegistry::default();
        r.upsert(inspect(
            &a,
            "web",
            serde_json::json!({"NetworkMode": "host", "UTSMode": "host", "PidMode": "", "IpcMode": "private",
                "CgroupnsMode": "host"}),
        ));
        r.upsert(inspect(
            &b,
            "side",
            serde_json::json!({"NetworkMode": format!("container:{a}"), "PidMode": format!("container:{a}"),
                "IpcMode": format!("container:{a}"), "UTSMode": "container:web", "CgroupnsMode": "private"}),
        ));
        r.upsert(inspect(&c, "orphan", serde_json::json!({"NetworkMode": "container:gone", "PidMode": "host"})));
        r.upsert(Container::from_start_event(&d, 1, &BTreeMap::new()));
        r.upsert(inspect(&e, "e", serde_json::json!({"NetworkMode": format!("container:{f}")})));
        r.upsert(inspect(&f, "f", serde_json::json!({"NetworkMode": format!("container:{e}")})));
        let shares = |id: &str, ns| r.shares_host_namespace(id, ns);
        assert!(shares(&a, "net") && shares(&a, "uts") && shares(&a, "cgroup"));
        assert!(!shares(&a, "pid") && !shares(&a, "ipc"), "empty and private are its own");
        assert!(!shares(&a, "mnt") && !shares(&a, "user") && !shares(&a, "time"), "never made shared by Docker");
        // Joined containers, by their full id only.
        assert!(
            shares(&b, "net") && !shares(&b, "pid") && !shares(&b, "ipc"),
            "a's net is the host's, its pid and ipc not"
        );
        assert!(!shares(&b, "uts") && !shares(&b, "cgroup"));
        // Unknown: not shared (an entry is named a host namespace: never missed).
        assert!(!shares(&c, "net"), "joins a container not known");
        assert!(shares(&c, "pid"));
        assert!(!shares(&d, "net"), "not inspected yet");
        assert!(!shares(&"9".repeat(64), "net"), "no such container");
        assert!(!shares(&e, "net"), "a loop ends");
        // A container without a network: a namespace of its own, whatever its mode says.
        let r2: bollard::models::ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": &f, "Config": {"NetworkDisabled": true}, "HostConfig": {"NetworkMode": "host", "UTSMode": "host"}
        }))
        .unwrap();
        let modes = Container::from_inspect(&r2).unwrap().namespaces.unwrap();
        assert_eq!((&modes.net, &modes.uts), (&NamespaceMode::Own, &NamespaceMode::Host));
        assert_eq!(NamespaceMode::parse(Some("container:")), NamespaceMode::Own);
        // An update without HostConfig (an event) keeps what the inspection said.
        r.upsert(Container::from_start_event(&a, 2, &BTreeMap::new()));
        assert!(r.shares_host_namespace(&a, "net"));
    }

    /// The root filesystem Docker made (overlay2's `MergedDir`), kept through updates that do
    /// not say it; none for a driver that names none, or a path that is not absolute.
    #[test]
    fn the_root_filesystem_is_the_inspection_s_merged_dir() {
        let inspect = |driver: serde_json::Value| {
            let r: bollard::models::ContainerInspectResponse =
                serde_json::from_value(serde_json::json!({"Id": ID, "GraphDriver": driver})).unwrap();
            Container::from_inspect(&r).unwrap().root_dir
        };
        let merged = "/var/lib/docker/overlay2/0123/merged";
        let overlay2 = serde_json::json!({"Name": "overlay2", "Data": {"MergedDir": merged, "UpperDir": "/u"}});
        assert_eq!(inspect(overlay2.clone()).as_deref(), Some(std::path::Path::new(merged)));
        assert_eq!(inspect(serde_json::json!({"Name": "btrfs", "Data": null})), None);
        assert_eq!(inspect(serde_json::json!({"Name": "x", "Data": {"MergedDir": "merged"}})), None);
        let mut r = ContainerRegistry::default();
        let r1: bollard::models::ContainerInspectResponse =
            serde_json::from_value(serde_json::json!({"Id": ID, "GraphDriver": overlay2})).unwrap();
        r.upsert(Container::from_inspect(&r1).unwrap());
        r.upsert(Container::from_start_event(ID, 2, &BTreeMap::new()));
        assert_eq!(r.get(ID).unwrap().root_dir.as_deref(), Some(std::path::Path::new(merged)));
    }

    #[test]
    fn registry_joins_cgroups_details_and_expiry() {
        let mut r = ContainerRegistry::default();
        r.bind_cgroup(ID, 82);
        assert_eq!(r.lookup(82), Lookup::Pending(ID));
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_owned(), "web".to_owned());
        attrs.insert("image".to_owned(), "busybox".to_owned());
        attrs.insert("com.docker.compose.service".to_owned(), "web".to_owned());
        r.upsert(Container::from_start_event(ID, 5, &attrs));
        let Lookup::Known(c) = r.lookup(82) else { panic!() };
        assert_eq!((c.name.as_str(), c.image.as_str(), c.started_time_nano), ("web", "busybox", Some(5)));
        assert_eq!(c.labels.get("com.docker.compose.service").map(String::as_str), Some("web"));
        r.rename(ID, "/web2");
        assert_eq!(r.get(ID).unwrap().name, "web2");
        // Inspect's StartedAt does not replace the start event's time; a new start does.
        r.upsert(Container { started_time_nano: Some(4), pid: Some(9), ..r.get(ID).unwrap().clone() });
        assert_eq!(r.get(ID).unwrap().started_time_nano, Some(5));
        assert_eq!(r.get(ID).unwrap().pid, Some(9));
        r.restarted(ID);
        r.upsert(Container::from_start_event(ID, 6, &attrs));
        assert_eq!(r.get(ID).unwrap().started_time_nano, Some(6));
        let t = Instant::now();
        r.mark_removed(ID, t);
        assert!(r.expire(t + Duration::from_secs(1)).is_empty(), "kept during the grace period");
        assert_eq!(r.expire(t + GRACE), vec![82]);
        assert_eq!(r.lookup(82), Lookup::Unknown);
    }

    #[test]
    fn an_inventory_does_not_remove_a_container_that_started_after_it_was_asked_for() {
        let mut r = ContainerRegistry::default();
        let old = "a".repeat(64);
        let new = "b".repeat(64);
        r.bind_cgroup(&old, 1);
        std::thread::sleep(Duration::from_millis(2));
        let asked_at = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // Its start event and inspect answer arrive before the listing's answer, which omits it.
        r.bind_cgroup(&new, 2);
        let listed = std::collections::HashSet::new();
        let now = Instant::now();
        r.mark_unlisted_removed(&listed, asked_at, now);
        assert_eq!(r.expire(now + GRACE), vec![1], "only the container known before the listing is gone");
        assert_eq!(r.lookup(2), Lookup::Pending(&new));
    }

    #[test]
    fn ignore_lists_match_name_id_image_and_labels() {
        let c = Container {
            id: ID.into(),
            name: "db".into(),
            image: "registry:5000/team/postgres:16".into(),
            image_id: None,
            labels: [("tier".to_owned(), "data".to_owned())].into(),
            pid: None,
            namespaces: None,
            root_dir: None,
            started_time_nano: None,
            shown_labels: Default::default(),
            object: Default::default(),
        };
        let cfg = |f: fn(&mut EbpfConfig)| {
            let mut c = EbpfConfig::default();
            f(&mut c);
            c
        };
        assert!(!c.is_ignored(&EbpfConfig::default()));
        assert!(c.is_ignored(&cfg(|c| c.ignore_containers = vec!["db".into()])));
        assert!(c.is_ignored(&cfg(|c| c.ignore_containers = vec![ID[..12].into()])));
        assert!(!c.is_ignored(&cfg(|c| c.ignore_containers = vec![ID[..4].into()])));
        assert!(c.is_ignored(&cfg(|c| c.ignore_images = vec!["registry:5000/team/postgres".into()])));
        assert!(c.is_ignored(&cfg(|c| c.ignore_images = vec!["registry:5000/team/postgres:16".into()])));
        assert!(c.is_ignored(&cfg(|c| c.ignore_labels = vec!["tier".into()])));
        assert!(c.is_ignored(&cfg(|c| c.ignore_labels = vec!["tier=data".into()])));
        assert!(!c.is_ignored(&cfg(|c| c.ignore_labels = vec!["tier=web".into()])));
    }

    #[test]
    fn cgroups_below_are_found_breadth_first_within_the_limits() {
        let root = std::env::temp_dir().join(format!("dl-below-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["a/x/deep", "b", "c"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("cgroup.procs"), "").unwrap();
        let names = |v: Vec<(u64, PathBuf)>| -> Vec<String> {
            let mut n: Vec<String> =
                v.into_iter().map(|(_, p)| p.strip_prefix(&root).unwrap().display().to_string()).collect();
            n.sort();
            n
        };
        assert_eq!(names(cgroups_below(&root, 4, 100)), ["a", "a/x", "a/x/deep", "b", "c"]);
        assert_eq!(names(cgroups_below(&root, 1, 100)), ["a", "b", "c"], "one level");
        assert_eq!(cgroups_below(&root, 4, 2).len(), 2, "capped");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn this_host_has_a_cgroup2_mount() {
        let m = cgroup2_mount().expect("cgroup v2 mounted");
        assert!(cgroup_id(&m).unwrap() > 0);
    }
}
