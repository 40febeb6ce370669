//! `docker-listener doctor`: every check the daemon depends on, one line each, with the fix.
use std::{
    fmt,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::Path,
};

use crate::{
    config::{Config, Output},
    docker::DockerClient,
    ebpf::EbpfProbes,
    state::{InstanceLock, StateDir, StateError},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, with reduced function.
    Warn,
    /// The daemon cannot do its job.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:<16} {}", self.status, self.name, self.detail)
    }
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check { name, status, detail: detail.into() }
}

/// Runs every check.
pub async fn run(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(privileges());
    out.extend(docker(cfg).await);
    out.push(queue(cfg));
    out.push(state_dir(cfg));
    out.push(wodle(cfg));
    if cfg.ebpf.enabled {
        out.extend(ebpf(cfg));
    } else {
        out.push(check("ebpf", Status::Ok, "disabled (--no-ebpf / ebpf.enabled = false): Docker events only"));
    }
    out
}

fn privileges() -> Check {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        check("privileges", Status::Ok, "running as root")
    } else {
        check(
            "privileges",
            Status::Warn,
            format!(
                "running as uid {euid}: eBPF needs root (or CAP_BPF+CAP_PERFMON, and CAP_SYS_RESOURCE before Linux 5.11); the Docker socket \
                 and the Wazuh queue need root or membership of their groups. Run with sudo"
            ),
        )
    }
}

async fn docker(cfg: &Config) -> Vec<Check> {
    let socket = match cfg.docker_socket() {
        Ok(s) => s,
        Err(e) => return vec![check("docker socket", Status::Fail, e.to_string())],
    };
    let mut out = Vec::new();
    match std::fs::metadata(&socket) {
        Ok(m) if m.file_type().is_socket() => out.push(check(
            "docker socket",
            Status::Ok,
            format!("{} (mode {:o})", socket.display(), m.permissions().mode() & 0o7777),
        )),
        Ok(_) => {
            out.push(check(
                "docker socket",
                Status::Fail,
                format!("{} exists but is not a socket: fix --docker-host", socket.display()),
            ));
            return out;
        }
        Err(_) => {
            out.push(check(
                "docker socket",
                Status::Fail,
                format!(
                    "{} does not exist: start dockerd (systemctl start docker) or set --docker-host",
                    socket.display()
                ),
            ));
            return out;
        }
    }
    match DockerClient::connect(&socket).await {
        Ok(c) => {
            let ping = c.api().ping().await.map(|_| "OK".to_string()).unwrap_or_else(|e| e.to_string());
            out.push(check(
                "docker api",
                Status::Ok,
                format!("/_ping {ping}; Docker {} (API {} negotiated)", c.server_version(), c.api_version()),
            ));
            if cfg.ebpf.enabled {
                let driver = c.api().info().await.ok().and_then(|i| i.driver);
                out.push(storage_driver(driver.as_deref()));
            }
        }
        Err(e) => out.push(check("docker api", Status::Fail, e.to_string())),
    }
    out
}

/// Whether a container's root is an overlay mount, where an executable written after its
/// start is told from the image's (drift, rule 100043).
fn storage_driver(driver: Option<&str>) -> Check {
    match driver {
        Some(d @ ("overlay2" | "overlay" | "overlayfs")) => {
            check("storage driver", Status::Ok, format!("{d}: programs written into a container are told (drift)"))
        }
        Some(d) => check(
            "storage driver",
            Status::Warn,
            format!(
                "{d}: a container's root is no overlay mount here, so no exec carries `drift` (a program written \
                 into a container after its start, rule 100043). Use overlay2 (\"storage-driver\": \"overlay2\" in \
                 /etc/docker/daemon.json; existing containers and images stay on the old driver)"
            ),
        ),
        None => check("storage driver", Status::Warn, "Docker did not say (GET /info failed): drift may not be told"),
    }
}

fn queue(cfg: &Config) -> Check {
    let output = cfg.output.clone().unwrap_or(Output::Queue);
    if output != Output::Queue {
        return check("wazuh queue", Status::Ok, format!("not used: output is {output}"));
    }
    let path = cfg.queue_path();
    match std::fs::metadata(&path) {
        Err(_) => {
            return check(
                "wazuh queue",
                Status::Fail,
                format!(
                    "{} does not exist: install and start Wazuh (manager or agent), set --queue to \
                     its queue socket, or try without Wazuh using --output stdout",
                    path.display()
                ),
            );
        }
        Ok(m) if !m.file_type().is_socket() => {
            return check("wazuh queue", Status::Fail, format!("{} is not a socket: fix --queue", path.display()));
        }
        Ok(_) => {}
    }
    let probe = std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(&path));
    match probe {
        Ok(()) => check("wazuh queue", Status::Ok, format!("{} is bound and accepts datagrams", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => check(
            "wazuh queue",
            Status::Fail,
            format!(
                "{}: nothing is bound to it (Wazuh stopped?): start Wazuh (systemctl start wazuh-manager / wazuh-agent)",
                path.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => check(
            "wazuh queue",
            Status::Fail,
            format!("{}: permission denied: run as root or in the wazuh group", path.display()),
        ),
        Err(e) => check("wazuh queue", Status::Fail, format!("{}: {e}", path.display())),
    }
}

/// Whether Wazuh's docker-listener wodle at `wazuh_home` is this binary (`crate::wodle`).
fn wodle(cfg: &Config) -> Check {
    let path = cfg.wazuh_home.join(crate::wodle::RELATIVE);
    match crate::wodle::installed_here(&cfg.wazuh_home) {
        Ok(true) => check(
            "wodle",
            Status::Ok,
            format!(
                "{} is this docker-listener: wazuh-modulesd runs it with {}'s queue, etc/docker-listener.json, \
                 var/docker-listener and logs/docker-listener.log",
                path.display(),
                cfg.wazuh_home.display()
            ),
        ),
        Ok(false) => check(
            "wodle",
            Status::Warn,
            format!(
                "{} is not this docker-listener (Wazuh's Python listener, or another build): `docker-listener \
                 install --wodle --wazuh-home {}` replaces it",
                path.display(),
                cfg.wazuh_home.display()
            ),
        ),
        Err(_) => check(
            "wodle",
            Status::Ok,
            format!("not installed as Wazuh's wodle ({} absent): running as a service", path.display()),
        ),
    }
}

fn state_dir(cfg: &Config) -> Check {
    let state = StateDir::new(&cfg.state_dir);
    match InstanceLock::acquire(&state.lock_path()) {
        Ok(_lock) => {
            let cursor = match state.load_cursor() {
                Ok(Some(c)) => format!("resume cursor at timeNano {}", c.time_nano),
                Ok(None) => "no resume cursor yet (first start)".to_string(),
                Err(e) => e.to_string(),
            };
            check("state dir", Status::Ok, format!("{} writable; {cursor}", cfg.state_dir.display()))
        }
        Err(StateError::Locked { pid, .. }) => check(
            "state dir",
            Status::Ok,
            format!("{}: in use by a running docker-listener (pid {pid})", cfg.state_dir.display()),
        ),
        Err(e) => check("state dir", Status::Fail, e.to_string()),
    }
}

fn ebpf(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    out.push(check(
        "kernel BTF",
        if btf { Status::Ok } else { Status::Warn },
        if btf {
            "/sys/kernel/btf/vmlinux present".to_string()
        } else {
            "/sys/kernel/btf/vmlinux missing: a kernel built with CONFIG_DEBUG_INFO_BTF is recommended".to_string()
        },
    ));
    let tracefs =
        ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"].into_iter().find(|p| Path::new(p).exists());
    out.push(match tracefs {
        Some(p) => check("tracefs", Status::Ok, format!("{p} mounted")),
        None => check(
            "tracefs",
            Status::Warn,
            "not mounted: run `mount -t tracefs tracefs /sys/kernel/tracing` (eBPF events need it)",
        ),
    });
    let loaded = EbpfProbes::load(&cfg.ebpf);
    if let Ok(p) = &loaded {
        for door in &p.doors {
            out.push(check(
                door.name,
                match door.state {
                    crate::ebpf::attach::DoorState::Active => Status::Ok,
                    _ => Status::Warn,
                },
                door.to_string(),
            ));
        }
        out.push(check("blind spots", Status::Ok, crate::ebpf::attach::ALWAYS_BLIND));
    }
    out.push(match loaded {
        Ok(p) => match &p.degraded {
            None => check(
                "ebpf programs",
                Status::Ok,
                format!(
                    "{} programs loaded and attached (then detached): process and socket events available",
                    p.attached.len()
                ),
            ),
            Some(why) => check(
                "ebpf programs",
                Status::Warn,
                format!("loaded, degraded ({why}): no parent pids, argv or socket details"),
            ),
        },
        Err(e) if cfg.ebpf.required => check(
            "ebpf programs",
            Status::Fail,
            format!(
                "{e}; ebpf.required is set, so the daemon will refuse to start (fix the cause, or unset ebpf.required)"
            ),
        ),
        Err(e) => check("ebpf programs", Status::Warn, format!("{e}; the daemon will run with Docker events only")),
    });
    out.push(match crate::registry::cgroup2_mount() {
        Some(m) => check(
            "cgroup v2",
            Status::Ok,
            format!("mounted at {}: containers are matched by their cgroup there", m.display()),
        ),
        None => check("cgroup v2", Status::Warn, "no cgroup2 mount: containers already running cannot be attributed"),
    });
    let runtime = crate::family::RuntimeBinaries::find();
    out.push(if runtime.is_empty() {
        check(
            "container runtime",
            Status::Warn,
            format!(
                "no runc, crun, ... found in {}: the runtime's own mounts and namespace changes at every container \
                 start will be reported as the container's",
                crate::family::RuntimeBinaries::DIRS.join(", ")
            ),
        )
    } else {
        check(
            "container runtime",
            Status::Ok,
            format!(
                "{} runtime binaries found: their own calls while they set containers up are not reported",
                runtime.len()
            ),
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drift needs an overlay root: another driver is a warning that says how to get one.
    #[test]
    fn a_storage_driver_without_overlay_mounts_is_a_warning_with_the_fix() {
        for d in ["overlay2", "overlayfs"] {
            assert_eq!(storage_driver(Some(d)).status, Status::Ok, "{d}");
        }
        for d in [Some("btrfs"), Some("fuse-overlayfs"), Some("vfs"), None] {
            let c = storage_driver(d);
            assert_eq!(c.status, Status::Warn, "{d:?}");
        }
        assert!(storage_driver(Some("zfs")).detail.contains("\"storage-driver\": \"overlay2\""));
    }
}
