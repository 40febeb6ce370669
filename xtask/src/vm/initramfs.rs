//! The initramfs every kernel of the matrix boots: busybox, the agent, the checker, `/init`.
//!
//! Written here in the kernel's initramfs format, the "newc" cpio archive
//! (Documentation/driver-api/early-userspace/buffer-format.rst): for each file a 110-byte ASCII
//! header, the name, the data, each padded to 4 bytes; then a `TRAILER!!!` entry. Uncompressed:
//! every kernel reads that, and qemu loads it into guest memory faster than the guest, under
//! emulation, would decompress it. The archive is written from memory, so it needs neither root
//! (for `/dev/console`) nor Debian's `cpio`.
//!
//! The binaries are stripped on the way in (`strip`, from binutils, when present): the release
//! profile keeps line tables, which would make the agent seven times larger.
use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::util;

/// PID 1 in the VM: mounts what the agent and the checker need (cgroup v2 where Docker has it,
/// tracefs for the tracepoints), brings up `lo`, runs the checker, powers off. `poweroff -f`
/// does not return; if it ever did, init would exit and the kernel panic, and `panic=-1` with
/// qemu's `-no-reboot` ends the VM either way.
const INIT: &str = "#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
ip link set lo up
echo \"init: kernel $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s\"
/bin/vm-guest --agent /bin/docker-listener --busybox /bin/busybox --tmp /tmp
echo \"init: vm-guest exited with $?\"
poweroff -f
";

/// Builds `<out_dir>/initramfs.cpio` from busybox, the agent and the checker.
pub fn build(out_dir: &Path, agent: &Path, guest: &Path) -> Result<PathBuf> {
    let busybox = busybox()?;
    let applets = util::output(Command::new(busybox).arg("--list"))?;
    let path = out_dir.join("initramfs.cpio");
    let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut cpio = Cpio::new(io::BufWriter::new(file));
    for dir in ["bin", "dev", "proc", "sys", "tmp", "run", "root", "etc"] {
        cpio.dir(dir)?;
    }
    // The kernel opens /dev/console for init's stdin/stdout/stderr before init runs.
    cpio.char_device("dev/console", 0o600, 5, 1)?;
    cpio.file("init", 0o755, INIT.as_bytes())?;
    cpio.file("bin/busybox", 0o755, &read(busybox)?)?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
        cpio.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    cpio.file("bin/docker-listener", 0o755, &stripped(agent, out_dir)?)?;
    cpio.file("bin/vm-guest", 0o755, &stripped(guest, out_dir)?)?;
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    cpio.file("etc/group", 0o644, b"root:x:0:\n")?;
    cpio.finish()?.flush()?;
    Ok(path)
}

/// The host's busybox (Debian's busybox-static: static, so it runs in the VMs as it is).
pub fn busybox() -> Result<&'static Path> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context("busybox is not installed (apt-get install busybox-static; cargo xtask setup does it)")
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The binary without its debug information, or as it is when `strip` is not there.
fn stripped(bin: &Path, scratch: &Path) -> Result<Vec<u8>> {
    let name = bin.file_name().context("a binary path without a file name")?;
    let out = scratch.join(name).with_extension("stripped");
    if util::succeeds(Command::new("strip").arg("-o").arg(&out).arg(bin)) {
        let data = read(&out)?;
        let _ = std::fs::remove_file(&out);
        Ok(data)
    } else {
        println!(
            "kernel-matrix: `strip` failed or is missing (binutils): {} goes in with its debug info",
            bin.display()
        );
        read(bin)
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A newc cpio writer. Every entry gets its own inode number and one link, so the kernel never
/// takes two files for hard links of each other; owners are root, times the epoch.
pub struct Cpio<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Cpio<W> {
        Cpio { out, next_ino: 1, written: 0 }
    }

    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), &[])
    }

    /// Writes the trailer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: too large for cpio"));
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big())?;
        let ino = self.next_ino;
        self.next_ino += 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check: all but the magic are 8 hex digits.
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..n as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_newc() -> io::Result<()> {
        let mut c = Cpio::new(Vec::new());
        c.dir("bin")?;
        c.file("bin/x", 0o755, b"hello")?;
        c.symlink("bin/sh", "x")?;
        let out = c.finish()?;
        // Every entry starts on a 4-byte boundary with the magic.
        let text = String::from_utf8_lossy(&out);
        let starts: Vec<usize> = text.match_indices("070701").map(|(i, _)| i).collect();
        assert_eq!(starts.len(), 4);
        assert!(starts.iter().all(|s| s % 4 == 0), "{starts:?}");
        // The file's header: ino 2, regular 0755, one link, 5 bytes, name "bin/x\0" (6).
        let h = &text[starts[1]..starts[1] + 110];
        assert_eq!(&h[6..14], "00000002");
        assert_eq!(&h[14..22], "000081ed");
        assert_eq!(&h[38..46], "00000001");
        assert_eq!(&h[54..62], "00000005");
        assert_eq!(&h[94..102], "00000006");
        // Name at 110, padded: 110 + 6 = 116 is aligned; the data follows at once.
        assert_eq!(&out[starts[1] + 110..starts[1] + 116], b"bin/x\0");
        assert_eq!(&out[starts[1] + 116..starts[1] + 121], b"hello");
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"), "{:?}", &text[text.len() - 16..]);
        assert_eq!(out.len() % 4, 0);
        Ok(())
    }
}
