//! What was already running in the containers when the agent started (or when it found a
//! container it had not traced), read from /proc: each process, with the same fields an exec
//! event has, and each listening socket. Without this, a process or a listener that predates the
//! agent would never appear in Wazuh (ecs::inventory writes the events).
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::unix::fs::MetadataExt,
};

use crate::{
    ebpf::record::{self, Args, Endpoint, ExeFile},
    ecs::{Inventory, Lineup, inventory::Running},
    procs::{self, ProcessTable},
};

/// A listening TCP socket or a bound, unconnected UDP socket of a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub pid: u32,
    pub inode: u64,
    /// "tcp", "udp", or "unix" (a listening Unix socket bound to a name in the filesystem).
    pub transport: &'static str,
    pub endpoint: Endpoint,
    /// A Unix listener's socket file (inode, the kernel's dev_t), as the process's root has it.
    pub file: Option<(u64, u32)>,
}

/// The `process-running` event body of a process the table learned from /proc.
pub fn running(procs: &ProcessTable, pid: u32, cgroups: &[u64], args_max: usize, max_args: usize) -> Option<Inventory> {
    let p = procs.get(pid)?;
    let (uid, gid) = ids(pid).unwrap_or((u32::MAX, u32::MAX));
    Some(Inventory::Running(Box::new(Running {
        lineup: Lineup::of(&p.lineage, cgroups),
        uid,
        gid,
        args: cmdline(pid, args_max, max_args),
        exe: exe_file(pid),
    })))
}

/// Real uid and gid from /proc/<pid>/status.
fn ids(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u32> {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// argv from /proc/<pid>/cmdline, cut like the kernel's exec records (its head and tail when it
/// is longer than `args_max` bytes).
fn cmdline(pid: u32, args_max: usize, max_args: usize) -> Args {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Args { unavailable: true, ..Args::default() };
    };
    if raw.len() <= args_max {
        return record::decode_args(&raw, &[], raw.len() as u64, false, max_args);
    }
    let head = args_max / 2;
    let tail = args_max - head;
    record::decode_args(&raw[..head], &raw[raw.len() - tail..], raw.len() as u64, true, max_args)
}

/// The executed file of a running process, as `/proc/<pid>/exe` shows it (the file itself is
/// stat'ed through that link, whatever mount namespace it is in).
pub fn exe_file(pid: u32) -> Option<ExeFile> {
    let link_path = format!("/proc/{pid}/exe");
    let link = std::fs::read_link(&link_path).ok()?;
    let (path, unlinked) = procs::exe_link(&link.to_string_lossy());
    let meta = std::fs::metadata(&link_path).ok()?;
    let dev = meta.dev();
    // The kernel's dev_t: major << 20 | minor (userspace encodes it differently).
    let kdev = ((libc::major(dev) as u32) << 20) | (libc::minor(dev) as u32 & 0xf_ffff);
    let magic = fs_magic(&link_path).unwrap_or(0);
    // Drift, as the exec event's kernel check would have found it: the same file (its inode) in
    // the upper layer of the overlay the process's root is.
    let upper = magic == docker_listener_common::magic::OVERLAYFS
        && !unlinked
        && root_upperdir(pid).is_some_and(|upper| same_file_in(&upper, &path, meta.ino()));
    Some(ExeFile {
        detached: path.starts_with("memfd:"),
        path,
        ino: meta.ino(),
        dev: kdev,
        magic,
        // Now, not at its exec: the file's last change before now.
        ctime_ns: ExeFile::ctime_of(meta.ctime(), meta.ctime_nsec() as u32),
        unlinked,
        outside_root: false,
        path_truncated: false,
        // /proc/<pid>/root reads "/" unless the process is chrooted inside its namespace.
        chroot: std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r != std::path::Path::new("/")),
        upper,
    })
}

/// The `upperdir` of the overlay mounted at the root of `pid`'s mount namespace, from its
/// mountinfo ("... / / ... - overlay overlay rw,lowerdir=...,upperdir=/var/lib/docker/...,...").
fn root_upperdir(pid: u32) -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    upperdir_of_root(&info)
}

fn upperdir_of_root(mountinfo: &str) -> Option<std::path::PathBuf> {
    // The last mount on "/" is the one the processes see.
    let line = mountinfo.lines().rfind(|l| l.split(' ').nth(4) == Some("/"))?;
    let (_, after) = line.split_once(" - ")?;
    let mut fields = after.split(' ');
    if fields.next()? != "overlay" {
        return None;
    }
    let options = fields.nth(1)?;
    options.split(',').find_map(|o| o.strip_prefix("upperdir=")).map(std::path::PathBuf::from)
}

/// Whether `path` (as the container sees it) in `upper` is the file with inode `ino` (overlay
/// on one filesystem reports the layer's inode).
fn same_file_in(upper: &std::path::Path, path: &str, ino: u64) -> bool {
    let rel = path.trim_start_matches('/');
    !rel.is_empty()
        && !rel.split('/').any(|c| c == "..")
        && std::fs::symlink_metadata(upper.join(rel)).is_ok_and(|m| m.is_file() && m.ino() == ino)
}

/// The filesystem's magic number (`statfs`'s `f_type`) at `path`.
pub(crate) fn fs_magic(path: &str) -> Option<u32> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: a valid C string and a zeroed statfs for the kernel to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as u32)
}

/// The listening sockets of `pids` (the processes of one container): the socket inodes their
/// descriptors hold, looked up in their network namespaces' TCP and UDP tables. Reads /proc:
/// run it off the runtime's thread.
pub fn listeners(pids: &[u32]) -> Vec<Listener> {
    let mut owner: HashMap<u64, u32> = HashMap::new();
    let mut netns: HashMap<u64, u32> = HashMap::new();
    for &pid in pids {
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            netns.entry(m.ino()).or_insert(pid);
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && let Some(inode) = socket_inode(&target.to_string_lossy())
            {
                owner.entry(inode).or_insert(pid);
            }
        }
    }
    let mut found = Vec::new();
    if owner.is_empty() {
        // No socket at all: the namespace's tables (each read walks the kernel's whole socket
        // hash, milliseconds) cannot hold one of theirs.
        return found;
    }
    let mut seen = HashSet::new();
    for pid in netns.into_values() {
        for (file, transport, v6) in
            [("tcp", "tcp", false), ("tcp6", "tcp", true), ("udp", "udp", false), ("udp6", "udp", true)]
        {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else { continue };
            for (endpoint, inode) in text.lines().skip(1).filter_map(|l| parse_listening(l, transport == "tcp", v6)) {
                if let Some(&owner_pid) = owner.get(&inode)
                    && seen.insert(inode)
                {
                    found.push(Listener { pid: owner_pid, inode, transport, endpoint, file: None });
                }
            }
        }
        // Unix listeners bound to a name: their socket file, through the owner's root (a
        // runtime of a container's own started before the agent: see `UnixListeners`), by
        // no symlink and across no mount (`own_socket_file`).
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) else { continue };
        for (inode, name) in text.lines().skip(1).filter_map(parse_unix_listening) {
            let Some(&owner_pid) = owner.get(&inode) else { continue };
            let root = std::path::PathBuf::from(format!("/proc/{owner_pid}/root"));
            let file = crate::sensitive::own_socket_file(&root, &name);
            if file.is_some() && seen.insert(inode) {
                found.push(Listener { pid: owner_pid, inode, transport: "unix", endpoint: Endpoint::Unix(name), file });
            }
        }
    }
    found.sort_by_key(|l| (l.pid, l.inode));
    found
}

/// A line of /proc/net/unix if it is a listening socket (`__SO_ACCEPTCON` in its flags) bound
/// to an absolute name: (inode, name).
fn parse_unix_listening(line: &str) -> Option<(u64, String)> {
    // "Num RefCount Protocol Flags Type St Inode Path", the path last (it may hold spaces).
    let mut rest = line.trim_start();
    let mut f = Vec::with_capacity(7);
    for _ in 0..7 {
        let end = rest.find(' ').unwrap_or(rest.len());
        f.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    let flags = u32::from_str_radix(f[3], 16).ok()?;
    (flags & 0x0001_0000 != 0 && rest.starts_with('/')).then(|| Some((f[6].parse().ok()?, rest.to_owned())))?
}

/// "socket:[12345]" -> 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// A line of /proc/net/{tcp,udp}[6] if it is a listening TCP socket (state 0A) or an unconnected
/// UDP socket bound to a port (state 07, no remote address): (local address, inode).
fn parse_listening(line: &str, tcp: bool, v6: bool) -> Option<(Endpoint, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state, inode) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(9)?);
    let listening = if tcp { *state == "0A" } else { *state == "07" && remote.bytes().all(|b| b == b'0' || b == b':') };
    if !listening {
        return None;
    }
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if port == 0 {
        return None;
    }
    Some((Endpoint::Ip(hex_addr(addr, v6)?, port), inode.parse().ok()?))
}

/// The kernel prints addresses as 32-bit words in host order (little-endian here), in hex.
fn hex_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let words: Vec<u32> =
        (0..hex.len() / 8).map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16)).collect::<Result<_, _>>().ok()?;
    if v6 {
        let mut bytes = [0u8; 16];
        for (i, w) in words.iter().take(4).enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let ip = Ipv6Addr::from(bytes);
        Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4))
    } else {
        Some(IpAddr::V4(Ipv4Addr::from(words.first()?.to_le_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines_are_parsed() {
        let tcp = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_listening(tcp, true, false), Some((Endpoint::Ip("127.0.0.1".parse().unwrap(), 8080), 4242)));
        let established = tcp.replace(" 0A ", " 01 ");
        assert_eq!(parse_listening(&established, true, false), None);
        let udp = "  12: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0";
        assert_eq!(parse_listening(udp, false, false), Some((Endpoint::Ip("0.0.0.0".parse().unwrap(), 53), 777)));
        let tcp6 = "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_listening(tcp6, true, true), Some((Endpoint::Ip("::1".parse().unwrap(), 80), 99)));
        let unix = "0000000000000000: 00000002 00000000 00010000 0001 01 31337 /var/run/docker.sock";
        assert_eq!(parse_unix_listening(unix), Some((31337, "/var/run/docker.sock".into())));
        let spaced = "0000000000000000: 00000002 00000000 00010000 0001 01 31338 /tmp/a b.sock";
        assert_eq!(parse_unix_listening(spaced), Some((31338, "/tmp/a b.sock".into())));
        let connected = "0000000000000000: 00000003 00000000 00000000 0001 03 31339 /var/run/docker.sock";
        assert_eq!(parse_unix_listening(connected), None, "not a listener");
        let abstract_ = "0000000000000000: 00000002 00000000 00010000 0001 01 31340 @dl-x";
        assert_eq!(parse_unix_listening(abstract_), None, "no file");
        assert_eq!(parse_unix_listening("0000000000000000: 00000002 00000000 00010000 0001 01 31341"), None);
        assert_eq!(socket_inode("socket:[123]"), Some(123));
        assert_eq!(socket_inode("pipe:[123]"), None);
    }

    #[test]
    fn this_process_s_listener_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = listeners(&[std::process::id()]);
        assert!(
            found
                .iter()
                .any(|x| x.transport == "tcp" && x.endpoint == Endpoint::Ip("127.0.0.1".parse().unwrap(), port)),
            "{found:?}"
        );
        let exe = exe_file(std::process::id()).unwrap();
        assert!(exe.path.starts_with('/') && exe.ino > 0 && !exe.unlinked);
        assert!(!exe.upper, "the test binary is on no container's writable layer");
    }

    #[test]
    fn the_upper_layer_of_the_root_overlay_is_read_from_mountinfo() {
        let info = "22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw\n\
                    600 550 0:52 / / rw,relatime master:1 - overlay overlay \
                    rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,\
                    upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work\n\
                    601 600 0:53 / /proc rw - proc proc rw\n";
        assert_eq!(upperdir_of_root(info), Some(std::path::PathBuf::from("/var/lib/docker/overlay2/abc/diff")));
        assert_eq!(upperdir_of_root("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"), None, "not an overlay");
        // A file there is the process's only if it is the same inode, by a path without `..`.
        let dir = std::env::temp_dir().join(format!("dl-upper-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("tmp/x"), b"x").unwrap();
        let ino = std::fs::metadata(dir.join("tmp/x")).unwrap().ino();
        assert!(same_file_in(&dir, "/tmp/x", ino));
        assert!(!same_file_in(&dir, "/tmp/x", ino + 1));
        assert!(!same_file_in(&dir, "/tmp/../tmp/x", ino));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
