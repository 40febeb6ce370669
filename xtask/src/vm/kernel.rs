//! The kernels of the matrix, and fetching one: Debian's package, never installed.
//!
//! Each entry names a Debian metapackage (`linux-image-cloud-amd64`), which depends on the
//! current concrete kernel package (`linux-image-6.1.0-57-cloud-amd64`): following it picks up
//! Debian's kernel updates by themselves. The package is fetched with `apt-get download` (from
//! the machine's apt sources, or an entry's own suite of Debian's archive, `Archive`: Debian's
//! archive is the one place this machine can download from)
//! and unpacked with `dpkg-deb -x` into the cache directory; only its `vmlinuz` (and `config`,
//! to read when something is missing) is kept, under `<cache>/kernels/<package>_<version>/`, so
//! a later run with the same version downloads nothing.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, cache_dir, is_root};

/// A kernel to check.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// Its name in the output, log file names and `--kernel`.
    pub name: &'static str,
    /// The Debian metapackage that depends on the current package of this kernel.
    pub metapackage: &'static str,
    /// What the kernel release must start with: a guard against a machine whose apt sources
    /// make the metapackage name another kernel than the one this entry is about.
    pub release_prefix: &'static str,
    /// The VM's CPUs: two where qemu's TCG allows, so that the per-CPU ring-buffer and sequence
    /// paths run as on a real host (5.10 and 6.12: one, see `KERNELS`).
    pub cpus: u8,
    /// Where the metapackage is when the machine's own apt sources do not carry it (another
    /// Debian release): resolved and downloaded with apt's own lists for that suite alone,
    /// kept in the cache. `None`: the machine's apt sources.
    pub archive: Option<Archive>,
}

/// A Debian suite outside the machine's apt sources: `deb <url> <suite> main`, signed by a key
/// of `debian-archive-keyring` (which holds the keys of Debian's older releases too).
#[derive(Debug, Clone, Copy)]
pub struct Archive {
    pub url: &'static str,
    pub suite: &'static str,
}

/// The matrix. Adding a kernel is one more line; it must be in the machine's apt sources, or in
/// a Debian suite its `archive` names.
/// 6.1: Debian 12's own (and the oldest LTS here: `io_uring_submit_sqe`, no `bpf_rdonly_cast`);
/// 6.12: the LTS of Debian 13 and RHEL 10, which bookworm also carries (`io_uring_submit_req`,
/// the fixed files' table as it was before 6.13, `bpf_rdonly_cast` on a kernel other than this
/// machine's). 6.12 runs on one vCPU: with two, 3 of 13 runs under qemu's TCG ended in a kernel
/// Oops (a stale `int3` executed after the kernel patched a tracepoint's static key as the agent
/// attached or detached), 0 of 20 with one (docs/KERNELS.md).
/// 5.10: Debian 11's (and Amazon Linux 2's kernel series), from bullseye-security, the oldest
/// here: no `bpf_get_current_task_btf` (5.11) or `bpf_task_pt_regs` (5.15), an io_uring whose
/// requests the BTF does not describe as the agent reads them (`closed`). One vCPU since
/// 2026-12-04: with two, a CI run locked up both vCPUs as the agent's programs were detached
/// (the same stale `int3`, which 5.10 retries for ever instead of oopsing; docs/KERNELS.md).
/// 6.1 on one vCPU too since 2026-12-07, when CI's run of 88fda5f locked up its two the same way:
/// every kernel under qemu now runs on one vCPU, and the per-CPU paths with two CPUs or more are
/// left to the host, where they run on real CPUs.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "debian11-5.10",
        metapackage: "linux-image-cloud-amd64",
        release_prefix: "5.10.",
        cpus: 1,
        archive: Some(Archive { url: "http://deb.debian.org/debian-security", suite: "bullseye-security" }),
    },
    Kernel {
        name: "debian12-6.1",
        metapackage: "linux-image-cloud-amd64",
        release_prefix: "6.1.",
        cpus: 1,
        archive: None,
    },
    Kernel {
        name: "debian12-6.12",
        metapackage: "linux-image-6.12-cloud-amd64",
        release_prefix: "6.12.",
        cpus: 1,
        archive: None,
    },
];

/// A kernel ready to boot.
pub struct Fetched {
    pub vmlinuz: PathBuf,
    /// e.g. "linux-image-6.1.0-57-cloud-amd64 6.1.192-3".
    pub package: String,
    /// `uname -r` of it, e.g. "6.1.0-57-cloud-amd64".
    pub release: String,
    /// How long resolving, downloading and unpacking took; `downloaded` false when cached.
    pub took: Duration,
    pub downloaded: bool,
}

pub fn fetch(k: &Kernel) -> Result<Fetched> {
    let started = Instant::now();
    let apt = Apt::for_kernel(k)?;
    let package = resolve(&apt, k.metapackage)?;
    let version = candidate(&apt, &package)?;
    let dir = cache_dir()?.join("kernels").join(format!("{package}_{}", version.replace(':', "%3a")));
    let vmlinuz = dir.join("vmlinuz");
    let release_file = dir.join("release");
    if let (true, Ok(release)) = (vmlinuz.is_file(), std::fs::read_to_string(&release_file)) {
        let release = release.trim().to_owned();
        check_release(k, &package, &release)?;
        return Ok(Fetched {
            vmlinuz,
            package: format!("{package} {version}"),
            release,
            took: started.elapsed(),
            downloaded: false,
        });
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut download = apt.command("apt-get");
    if is_root() {
        // apt drops to its `_apt` user to download, which cannot write into root's cache
        // directory: it then warns and downloads as root anyway. Say so up front.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    util::run(download.args(["download", "-q", &package]).current_dir(&partial))
        .with_context(|| format!("apt-get download {package} failed: is Debian's archive reachable?"))?;
    let deb = std::fs::read_dir(&partial)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb in {}", partial.display()))?;
    let tree = partial.join("tree");
    util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))
        .with_context(|| format!("cannot unpack {}", deb.display()))?;
    let boot = tree.join("boot");
    let image = std::fs::read_dir(&boot)
        .with_context(|| format!("{} has no /boot", deb.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .with_context(|| format!("no /boot/vmlinuz-* in {}", deb.display()))?;
    let release = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("vmlinuz-<release>")?
        .to_owned();
    check_release(k, &package, &release)?;
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&image, &vmlinuz).with_context(|| format!("cannot copy {}", image.display()))?;
    let config = boot.join(format!("config-{release}"));
    if config.is_file() {
        std::fs::copy(&config, dir.join("config"))?;
    }
    if let Some(name) = deb.file_name() {
        std::fs::rename(&deb, dir.join(name))?;
    }
    std::fs::write(&release_file, format!("{release}\n"))?;
    std::fs::remove_dir_all(&partial)?;
    Ok(Fetched { vmlinuz, package: format!("{package} {version}"), release, took: started.elapsed(), downloaded: true })
}

fn check_release(k: &Kernel, package: &str, release: &str) -> Result<()> {
    if !release.starts_with(k.release_prefix) {
        bail!(
            "{} now resolves to {package}, kernel {release}, not a {}* kernel as the entry {} says: this \
             machine's apt sources are not the ones the entry was written for; fix the entry in \
             xtask/src/vm/kernel.rs (or add one for this kernel)",
            k.metapackage,
            k.release_prefix,
            k.name
        );
    }
    Ok(())
}

/// apt as a kernel's entry needs it: the machine's sources, or one suite's own lists.
struct Apt {
    /// `-o` options pointing apt at the suite's own sources and lists; empty for the machine's.
    options: Vec<String>,
}

impl Apt {
    fn for_kernel(k: &Kernel) -> Result<Apt> {
        let Some(archive) = k.archive else { return Ok(Apt { options: Vec::new() }) };
        let dir = cache_dir()?.join("apt").join(archive.suite);
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let sources = dir.join("sources.list");
        std::fs::write(
            &sources,
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {} main\n",
                archive.url, archive.suite
            ),
        )?;
        // No installed packages: the machine's (a 6.1 `linux-image-cloud-amd64`, say) would
        // be newer than the suite's and stay apt's candidate.
        let status = dir.join("status");
        std::fs::write(&status, "")?;
        let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
        let apt = Apt {
            options: vec![
                opt("Dir::Etc::SourceList", &sources),
                opt("Dir::Etc::SourceParts", &dir.join("sources.list.d")),
                opt("Dir::State::Lists", &dir.join("lists")),
                opt("Dir::Cache", &dir.join("cache")),
                opt("Dir::State::status", &status),
            ],
        };
        // Its lists, fresh each run (half a second): a new kernel of the suite is picked up as
        // the machine's own are by `apt-get update`. Offline, the lists of the last run serve.
        let mut update = apt.command("apt-get");
        if is_root() {
            update.args(["-o", "APT::Sandbox::User=root"]);
        }
        if let Err(e) = util::run(update.args(["update", "-q"]).stdout(std::process::Stdio::null())) {
            println!(
                "kernel-matrix: cannot update the lists of {} ({e:#}); using those of an earlier run",
                archive.suite
            );
        }
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for o in &self.options {
            cmd.args(["-o", o]);
        }
        cmd
    }
}

/// The concrete kernel package a metapackage depends on (its candidate version's dependency).
fn resolve(apt: &Apt, metapackage: &str) -> Result<String> {
    let depends = |meta: &str| util::output(apt.command("apt-cache").args(["depends", meta])).ok();
    let out = match depends(metapackage).and_then(|o| kernel_dependency(&o)) {
        Some(p) => return Ok(p),
        None if is_root() => {
            // A fresh machine may have no package lists yet.
            println!("kernel-matrix: apt-cache does not know {metapackage}: running apt-get update");
            let mut update = apt.command("apt-get");
            if !apt.options.is_empty() {
                // (The suite's lists are in root's cache, which apt's `_apt` user cannot write.)
                update.args(["-o", "APT::Sandbox::User=root"]);
            }
            util::run(update.args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
            depends(metapackage)
        }
        None => None,
    };
    out.as_deref().and_then(kernel_dependency).with_context(|| {
        format!(
            "cannot resolve {metapackage} to a kernel package with `apt-cache depends {metapackage}`{}: is \
             Debian's archive in the apt sources (run apt-get update as root), and reachable?",
            if apt.options.is_empty() {
                ""
            } else {
                " (with the entry's own suite: its lists are under the cache's apt/)"
            }
        )
    })
}

/// `linux-image-...` from `apt-cache depends` output ("  Depends: linux-image-6.1.0-57-cloud-amd64").
fn kernel_dependency(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && !p.starts_with('<'))
        .map(str::to_owned)
}

/// The version `apt-get download` will fetch.
fn candidate(apt: &Apt, package: &str) -> Result<String> {
    let out = util::output(apt.command("apt-cache").args(["policy", package]))?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .map(str::trim)
        .filter(|v| *v != "(none)")
        .map(str::to_owned)
        .with_context(|| format!("apt-cache policy {package} shows no candidate version:\n{out}"))
}

/// The kernels to run: all of them, or the one named.
pub fn select(only: Option<&str>) -> Result<Vec<&'static Kernel>> {
    match only {
        None => Ok(KERNELS.iter().collect()),
        Some(name) => match KERNELS.iter().find(|k| k.name == name) {
            Some(k) => Ok(vec![k]),
            None => {
                let names: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
                bail!("no kernel named {name} in the matrix; it has: {}", names.join(", "))
            }
        },
    }
}

/// A readable size.
pub fn mib(path: &Path) -> String {
    std::fs::metadata(path).map(|m| format!("{:.1} MiB", m.len() as f64 / (1 << 20) as f64)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_metapackage() {
        let out = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(kernel_dependency(out).as_deref(), Some("linux-image-6.1.0-57-cloud-amd64"));
        let alt = "m\n |Depends: <linux-image-virtual>\n  Depends: linux-image-6.12.1-cloud-amd64\n";
        assert_eq!(kernel_dependency(alt).as_deref(), Some("linux-image-6.12.1-cloud-amd64"));
        assert_eq!(kernel_dependency("m\n  Depends: firmware-x\n"), None);
    }

    #[test]
    fn names_are_unique() {
        for (i, k) in KERNELS.iter().enumerate() {
            assert!(KERNELS[..i].iter().all(|o| o.name != k.name), "{} twice", k.name);
        }
    }
}
