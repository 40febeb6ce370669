//! Drop-in for Wazuh's docker-listener wodle.
//!
//! wazuh-modulesd (`src/wazuh_modules/wm_docker.c`) runs `wodles/docker/DockerListener` from the
//! Wazuh home with no arguments, re-launches it on its `<interval>` up to `<attempts>` times,
//! treats exit code 127 as "cannot launch", and logs every line the program prints on stdout or
//! stderr as an error in ossec.log. Installed there (`docker-listener install --wodle`) and
//! started that way, this binary takes everything from that Wazuh home:
//!
//! | what | where |
//! |---|---|
//! | the queue | `<home>/queue/sockets/queue` |
//! | an optional config file | `<home>/etc/docker-listener.json` |
//! | the state directory (cursor, lock, stats socket) | `<home>/var/docker-listener` |
//! | its log | `<home>/logs/docker-listener.log` |
//!
//! and prints only errors, one line each (warnings, such as eBPF being unavailable, reach Wazuh
//! as `agent-health` events and go to the log file). It exits only for the documented reasons
//! (README, "Exit codes").
use std::{
    io,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use crate::config::{Config, ConfigError, DEFAULT_STATE_DIR};

/// The program name wm_docker runs.
pub const PROGRAM: &str = "DockerListener";
/// Relative to the Wazuh home.
pub const RELATIVE: &str = "wodles/docker/DockerListener";

/// A Wazuh home this binary runs in as the wodle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub home: PathBuf,
}

impl Layout {
    /// The wodle mode: started as `.../wodles/docker/DockerListener` with no arguments.
    pub fn detect() -> Option<Layout> {
        let mut args = std::env::args_os();
        let argv0 = PathBuf::from(args.next()?);
        if args.next().is_some() {
            return None;
        }
        Layout::of(&argv0)
    }

    /// The Wazuh home of a program path ending in `wodles/docker/DockerListener` (relative paths
    /// from the working directory, as wm_docker runs it from the home).
    pub fn of(argv0: &Path) -> Option<Layout> {
        if argv0.file_name()? != PROGRAM {
            return None;
        }
        let abs = std::path::absolute(argv0).ok()?;
        let docker = abs.parent()?;
        let wodles = docker.parent()?;
        if docker.file_name()? != "docker" || wodles.file_name()? != "wodles" {
            return None;
        }
        Some(Layout { home: wodles.parent()?.to_owned() })
    }

    pub fn config_file(&self) -> PathBuf {
        self.home.join("etc/docker-listener.json")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.home.join("var/docker-listener")
    }

    pub fn log_file(&self) -> PathBuf {
        self.home.join("logs/docker-listener.log")
    }

    /// The configuration: the home's config file when there is one, with the home's queue and
    /// state directory unless the file names others.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let file = self.config_file();
        let mut cfg = if file.exists() { Config::load(&file)? } else { Config::default() };
        if cfg.wazuh_home == Config::default().wazuh_home {
            cfg.wazuh_home = self.home.clone();
        }
        if cfg.state_dir == Path::new(DEFAULT_STATE_DIR) {
            cfg.state_dir = self.state_dir();
        }
        cfg.validate(&file.display().to_string())?;
        Ok(cfg)
    }

    /// The log file, opened for appending (0640, never through a symbolic link).
    pub fn open_log(&self) -> io::Result<std::fs::File> {
        let path = self.log_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }
}

/// Puts this binary in place as `<home>/wodles/docker/DockerListener` (Wazuh's own script, if
/// there, is kept beside it as `DockerListener.wazuh`), owned by root and the `wazuh` group
/// when it exists, mode 0750. Returns the `ossec.conf` block to add.
pub fn install(home: &Path) -> io::Result<String> {
    let dir = home.join("wodles/docker");
    std::fs::create_dir_all(&dir)?;
    let target = dir.join(PROGRAM);
    let me = std::fs::read("/proc/self/exe")?;
    match std::fs::read(&target) {
        Ok(existing) if existing == me => {}
        Ok(_) => {
            let kept = dir.join(format!("{PROGRAM}.wazuh"));
            if !kept.exists() {
                std::fs::rename(&target, &kept)?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Written beside it and renamed over it: a running copy keeps its file.
    let tmp = dir.join(format!(".{PROGRAM}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &me)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o750))?;
    if let Some(gid) = crate::privilege::group_id("wazuh") {
        std::os::unix::fs::chown(&tmp, Some(0), Some(gid))?;
    }
    std::fs::rename(&tmp, &target)?;
    Ok(format!(
        "installed {}\n\nAdd to {}/etc/ossec.conf (replacing the <wodle name=\"docker-listener\"> block if there \
         is one), then restart Wazuh:\n\n<wodle name=\"docker-listener\">\n  <interval>10m</interval>\n  \
         <attempts>5</attempts>\n  <run_on_start>yes</run_on_start>\n  <disabled>no</disabled>\n</wodle>\n\n\
         Optional settings go in {} (the format of --config); the log is {}.",
        target.display(),
        home.display(),
        home.join("etc/docker-listener.json").display(),
        home.join("logs/docker-listener.log").display(),
    ))
}

/// Whether the wodle at `home` is this very binary (`doctor`).
pub fn installed_here(home: &Path) -> Result<bool, io::Error> {
    let target = home.join(RELATIVE);
    let theirs = std::fs::metadata(&target)?;
    let mine = std::fs::metadata("/proc/self/exe")?;
    if theirs.len() != mine.len() {
        return Ok(false);
    }
    Ok(std::fs::read(&target)? == std::fs::read("/proc/self/exe")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_is_found_from_the_path_wazuh_runs() {
        assert_eq!(
            Layout::of(Path::new("/var/ossec/wodles/docker/DockerListener")),
            Some(Layout { home: "/var/ossec".into() })
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(Layout::of(Path::new("wodles/docker/DockerListener")), Some(Layout { home: cwd }));
        assert_eq!(Layout::of(Path::new("/usr/bin/docker-listener")), None);
        assert_eq!(Layout::of(Path::new("/opt/DockerListener")), None);
        let l = Layout { home: "/var/ossec".into() };
        let cfg = l.config().unwrap();
        assert_eq!(cfg.queue_path(), Path::new("/var/ossec/queue/sockets/queue"));
        assert_eq!(cfg.state_dir, Path::new("/var/ossec/var/docker-listener"));
    }
}
