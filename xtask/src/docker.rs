//! A Docker engine for `xtask run` and `xtask test`, and the local busybox image the tests use
//! (no registry is reachable here: the image is made with `docker import`).
use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, cache_dir};

pub const SOCKET: &str = "/var/run/docker.sock";
/// The test image: busybox with its applets linked under /bin, and a static bash as /bin/bash
/// (a shell that is not a multi-call binary: `exec -a` and renamed copies must still name it).
pub const IMAGE: &str = "docker-listener-test/busybox:latest";
/// Bumped when the image's contents change; an image with another version is made again.
const IMAGE_VERSION: &str = "2";

/// True when something answers `GET /_ping` with OK on the socket.
pub fn pings(socket: &str) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with("OK")
}

/// Starts dockerd (detached, logging under the cache dir) unless one already answers.
pub fn ensure_daemon() -> Result<()> {
    if pings(SOCKET) {
        println!("xtask: Docker answers on {SOCKET}");
        return Ok(());
    }
    let log_path = cache_dir()?.join("dockerd.log");
    std::fs::create_dir_all(log_path.parent().unwrap_or(Path::new("/tmp")))?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    println!("xtask: no Docker daemon answers on {SOCKET}: starting dockerd (log: {})", log_path.display());
    Command::new("setsid")
        .arg("dockerd")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start dockerd (is docker.io installed? cargo xtask setup installs it)")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if pings(SOCKET) {
            println!("xtask: dockerd is up");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("dockerd did not answer on {SOCKET} within 90 s: see {}", log_path.display())
}

/// Makes the busybox test image with `docker import` unless it exists in this version.
pub fn ensure_image() -> Result<()> {
    let version = Command::new("docker")
        .args(["image", "inspect", "--format", "{{index .Config.Labels \"dl.test.image.version\"}}", IMAGE])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if version == IMAGE_VERSION {
        return Ok(());
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox is not installed (apt-get install busybox-static)")?;
    let rootfs = cache_dir()?.join("busybox-rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox"))?;
    let bash = ["/bin/bash-static", "/usr/bin/bash-static"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("bash-static is not installed (apt-get install bash-static; cargo xtask setup does it)")?;
    std::fs::copy(bash, rootfs.join("bin/bash"))?;
    let applets = util::output(Command::new(busybox).arg("--list"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox" && *a != "bash") {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    let tar_out = tar.stdout.context("tar has no stdout")?;
    util::run(
        Command::new("docker")
            .args(["import", "--change", &format!("LABEL dl.test.image.version={IMAGE_VERSION}"), "-", IMAGE])
            .stdin(tar_out)
            .stdout(Stdio::null()),
    )?;
    println!("xtask: made the test image {IMAGE} from {busybox}");
    Ok(())
}
