//! The initramfs every kernel of the matrix boots: busybox, the agent, the checker, the shared
//! libraries and the dynamic loader they need, the workload's static C programs (in
//! `/programs`), and `/init`.
//!
//! Written here in the kernel's initramfs format, the "newc" cpio archive
//! (Documentation/driver-api/early-userspace/buffer-format.rst): for each file a 110-byte ASCII
//! header, the name, the data, each padded to 4 bytes; then a `TRAILER!!!` entry. Uncompressed:
//! every kernel reads that, and qemu loads it into guest memory faster than the guest, under
//! emulation, would decompress it. The archive is written from memory, so it needs neither root
//! (for `/dev/console`) nor Debian's `cpio`.
//!
//! The agent and the checker are this machine's own release builds, linked against its C
//! library: each binary's loader (its ELF `PT_INTERP`) and libraries (as `ldd` finds them) go in
//! at the same paths as here, their contents read through any symlink, so the VM runs them as
//! this machine does. A static binary (busybox-static, or a static `--agent`) brings none.
//!
//! The binaries are stripped on the way in (`strip`, from binutils, when present): the release
//! profile keeps line tables, which would make the agent several times larger.
use std::{
    collections::BTreeSet,
    io::{self, Write},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util;

/// PID 1 in the VM: mounts what the agent and the checker need (cgroup v2 where Docker has it,
/// tracefs for the tracepoints), brings up `lo`, runs the checker, powers off. `poweroff -f`
/// does not return; if it ever did, init would exit and the kernel panic, and `panic=-1` with
/// qemu's `-no-reboot` ends the VM either way. `{library_path}` is replaced by the directories
/// of the shared libraries, so the loader finds them without /etc/ld.so.cache, wherever this
/// machine keeps them.
const INIT: &str = "#!/bin/sh
export PATH=/bin
export LD_LIBRARY_PATH={library_path}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
ip link set lo up
echo \"init: kernel $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s\"
/bin/vm-guest --agent /bin/docker-listener --busybox /bin/busybox --programs /programs --tmp /tmp
echo \"init: vm-guest exited with $?\"
poweroff -f
";

/// What went into the archive.
pub struct Initramfs {
    pub path: PathBuf,
    /// The dynamic loaders and shared libraries copied from this machine (none if every binary
    /// is static).
    pub libraries: Vec<PathBuf>,
}

/// Builds `<out_dir>/initramfs.cpio` from busybox, the agent and the checker, with the loader
/// and shared libraries each of them needs, and the workload's `programs` (static, so they need
/// none: the 32-bit one could not use this machine's 64-bit loader anyway) in `/programs`.
pub fn build(out_dir: &Path, agent: &Path, guest: &Path, programs: &[PathBuf]) -> Result<Initramfs> {
    let busybox = busybox()?;
    let applets = util::output(Command::new(busybox).arg("--list"))?;
    let mut libraries = BTreeSet::new();
    for bin in [busybox, agent, guest] {
        libraries.extend(shared_libraries(bin)?);
    }
    let library_dirs: BTreeSet<&Path> = libraries.iter().filter_map(|l| l.parent()).collect();
    let library_path: Vec<String> = library_dirs.iter().map(|d| d.display().to_string()).collect();

    let path = out_dir.join("initramfs.cpio");
    let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut cpio = Cpio::new(io::BufWriter::new(file));
    for dir in ["bin", "dev", "proc", "sys", "tmp", "run", "root", "etc", "programs"] {
        cpio.dir(dir)?;
    }
    // The kernel opens /dev/console for init's stdin/stdout/stderr before init runs.
    cpio.char_device("dev/console", 0o600, 5, 1)?;
    cpio.file("init", 0o755, INIT.replace("{library_path}", &library_path.join(":")).as_bytes())?;
    cpio.file("bin/busybox", 0o755, &read(busybox)?)?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
        cpio.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    cpio.file("bin/docker-listener", 0o755, &stripped(agent, out_dir)?)?;
    cpio.file("bin/vm-guest", 0o755, &stripped(guest, out_dir)?)?;
    for program in programs {
        let name = program.file_name().and_then(|n| n.to_str()).context("a program path without a UTF-8 file name")?;
        cpio.file(&format!("programs/{name}"), 0o755, &read(program)?)?;
    }
    for lib in &libraries {
        let name =
            lib.to_str().and_then(|l| l.strip_prefix('/')).context("a library path that is not absolute UTF-8")?;
        // Where the path has a symlink here (/lib64 -> usr/lib64, ld-linux -> ld-linux.so.2 ...),
        // the VM gets a plain directory and file: the loader and the kernel open it by this path.
        cpio.parents(name)?;
        cpio.file(name, 0o755, &read(lib)?)?;
    }
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    cpio.file("etc/group", 0o644, b"root:x:0:\n")?;
    // A sensitive file for the in-root open to find (root's password locked).
    cpio.file("etc/shadow", 0o600, b"root:*:19000:0:99999:7:::\n")?;
    cpio.finish()?.flush()?;
    Ok(Initramfs { path, libraries: libraries.into_iter().collect() })
}

/// The host's busybox (Debian's busybox-static: static, so it runs in the VMs as it is; a
/// dynamic one would bring its libraries like the other binaries).
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

/// The dynamic loader and the shared libraries `bin` needs, at the paths this machine's loader
/// finds them: the ELF's `PT_INTERP`, then what `ldd` lists. None for a static binary.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let Some(loader) = interpreter(&read(bin)?).with_context(|| format!("{}: not an x86_64 ELF", bin.display()))?
    else {
        return Ok(Vec::new());
    };
    let listed = util::output(Command::new("ldd").arg(bin)).with_context(|| {
        format!(
            "cannot list the shared libraries of {} (ldd, from libc-bin), which is linked dynamically",
            bin.display()
        )
    })?;
    let libraries = parse_ldd(&loader, &listed).with_context(|| format!("`ldd {}`", bin.display()))?;
    for lib in &libraries {
        if !lib.is_file() {
            bail!("{} needs {}, which is not a file here", bin.display(), lib.display());
        }
    }
    Ok(libraries)
}

/// The program interpreter (dynamic loader) a 64-bit little-endian ELF file names in its
/// `PT_INTERP` program header; `None` for a static executable.
fn interpreter(elf: &[u8]) -> Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    let bytes = |at: usize, n: usize| elf.get(at..at.saturating_add(n)).context("truncated ELF headers");
    let u16_at = |at: usize| -> Result<usize> { Ok(u16::from_le_bytes(bytes(at, 2)?.try_into()?).into()) };
    let u32_at = |at: usize| -> Result<u32> { Ok(u32::from_le_bytes(bytes(at, 4)?.try_into()?)) };
    let u64_at = |at: usize| -> Result<usize> { Ok(usize::try_from(u64::from_le_bytes(bytes(at, 8)?.try_into()?))?) };
    // e_ident: the magic, ELFCLASS64, ELFDATA2LSB.
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        bail!("not a 64-bit little-endian ELF file");
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum {
        // Elf64_Phdr: p_type at 0, p_offset at 8, p_filesz at 32.
        let ph = phoff.saturating_add(i * phentsize);
        if u32_at(ph)? == PT_INTERP {
            let path = bytes(u64_at(ph.saturating_add(8))?, u64_at(ph.saturating_add(32))?)?;
            let path = path.split(|b| *b == 0).next().unwrap_or_default();
            return Ok(Some(String::from_utf8(path.to_vec()).context("a PT_INTERP path that is not UTF-8")?));
        }
    }
    Ok(None)
}

/// The absolute paths in `ldd`'s output (`libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
/// (0x...)`, the loader as `/lib64/ld-linux-x86-64.so.2 (0x...)`), after `loader`; the vDSO,
/// which the kernel provides, has none. A library `ldd` does not find is an error.
fn parse_ldd(loader: &str, listed: &str) -> Result<Vec<PathBuf>> {
    let mut paths = vec![PathBuf::from(loader)];
    let mut missing = Vec::new();
    for line in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, found) = line.split_once(" => ").unwrap_or((line, line));
        if found.starts_with("not found") {
            missing.push(name);
            continue;
        }
        let path = PathBuf::from(found.split(" (0x").next().unwrap_or(found).trim());
        if path.is_absolute() && !paths.contains(&path) {
            paths.push(path);
        }
    }
    if !missing.is_empty() {
        bail!("shared libraries not found here: {}", missing.join(", "));
    }
    Ok(paths)
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
    /// The directories written, so that each is written once.
    dirs: BTreeSet<String>,
}

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Cpio<W> {
        Cpio { out, next_ino: 1, written: 0, dirs: BTreeSet::new() }
    }

    /// A directory (once: a second call with the same name writes nothing).
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        if !self.dirs.insert(name.to_owned()) {
            return Ok(());
        }
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[])
    }

    /// Every directory above `name` not written yet, outermost first: the kernel skips a file
    /// whose directory does not exist when it unpacks the archive.
    pub fn parents(&mut self, name: &str) -> io::Result<()> {
        let mut at = 0;
        while let Some(slash) = name[at..].find('/') {
            at += slash;
            self.dir(&name[..at])?;
            at += 1;
        }
        Ok(())
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

    #[test]
    fn writes_each_parent_directory_once() -> io::Result<()> {
        let mut c = Cpio::new(Vec::new());
        c.dir("lib")?;
        c.parents("lib/x86_64-linux-gnu/libc.so.6")?;
        c.parents("lib/x86_64-linux-gnu/libm.so.6")?;
        c.parents("lib64/ld-linux-x86-64.so.2")?;
        let out = c.finish()?;
        let text = String::from_utf8_lossy(&out);
        for name in ["lib\0", "lib/x86_64-linux-gnu\0", "lib64\0"] {
            assert_eq!(text.matches(name).count(), 1, "{name:?} in {text:?}");
        }
        assert_eq!(text.matches("070701").count(), 4, "three directories and the trailer");
        Ok(())
    }

    #[test]
    fn finds_the_loader_and_the_libraries() -> anyhow::Result<()> {
        // A 64-bit ELF header with one program header, PT_INTERP, pointing at the path.
        let mut elf = vec![0u8; 0x40 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let interp = b"/lib64/ld-linux-x86-64.so.2\0";
        let at = elf.len();
        elf.extend_from_slice(interp);
        elf[0x40..0x44].copy_from_slice(&3u32.to_le_bytes());
        elf[0x48..0x50].copy_from_slice(&(at as u64).to_le_bytes());
        elf[0x60..0x68].copy_from_slice(&(interp.len() as u64).to_le_bytes());
        assert_eq!(interpreter(&elf)?.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(interpreter(&elf)?, None, "no PT_INTERP: static");
        assert!(interpreter(b"#!/bin/sh\n").is_err());

        let ldd = "\tlinux-vdso.so.1 (0x00007ffc0b5e2000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0e1c6d0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c4ef000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c7b1000)
";
        let paths = parse_ldd("/lib64/ld-linux-x86-64.so.2", ldd)?;
        let paths: Vec<&str> = paths.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(
            paths,
            ["/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6"]
        );
        let err = parse_ldd("/lib64/ld-linux-x86-64.so.2", "\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(format!("{err}").contains("libfoo.so.1"), "{err}");
        Ok(())
    }
}
