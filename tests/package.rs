//! What administrators install (`cargo xtask package`, run by `cargo xtask test` before the
//! tests): the .deb installs, verifies and removes cleanly; the static binary runs in the
//! `FROM scratch` image; the compose and DaemonSet files carry what the agent needs.
mod support;

use std::{path::PathBuf, process::Command};

use support::*;

fn package_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/package"))
}

fn sh(cmd: &mut Command) -> (bool, String) {
    let out = run_to_exit(cmd);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_deb_installs_its_files_verifies_and_is_removed_cleanly() {
    e2e();
    let version = env!("CARGO_PKG_VERSION");
    let deb = package_dir().join(format!("docker-listener_{version}-1_amd64.deb"));
    assert!(deb.exists(), "{} missing: `cargo xtask package` (run by `cargo xtask test`) makes it", deb.display());
    let (_, status) = sh(Command::new("dpkg-query").args(["-W", "-f=${Status}", "docker-listener"]));
    assert!(!status.contains("installed"), "docker-listener is already installed here: the test would remove it");

    let (ok, out) = sh(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ok, "dpkg -i: {out}");
    let bin = std::path::Path::new("/usr/bin/docker-listener");
    let unit = ["/lib/systemd/system/docker-listener.service", "/usr/lib/systemd/system/docker-listener.service"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("the systemd unit is installed");
    for f in [
        "/etc/docker-listener/config.json",
        "/usr/share/docker-listener/rules/docker_listener_rules.xml",
        "/usr/share/docker-listener/rules/lists/docker-listener-dns",
        "/usr/share/doc/docker-listener/README.md",
        "/usr/share/doc/docker-listener/EVENTS.md",
        "/usr/share/docker-listener/compose.yaml",
        "/usr/share/docker-listener/daemonset.yaml",
    ] {
        assert!(std::path::Path::new(f).exists(), "{f} not installed");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata("/etc/docker-listener/config.json").unwrap().permissions().mode() & 0o777, 0o600);
    let (_, elf) = sh(Command::new("readelf").arg("-l").arg(bin));
    assert!(!elf.contains("INTERP"), "the installed binary is static");
    let (ok, out) = sh(Command::new(bin).args(["check-config", "--config", "/etc/docker-listener/config.json"]));
    assert!(ok, "the default config: {out}");
    let (ok, out) = sh(Command::new("systemd-analyze").args(["verify", unit]));
    assert!(ok && !out.contains("docker-listener.service:"), "systemd-analyze verify: {out}");

    // Enabled on its first install, also where systemd does not run (an image being built);
    // disabled by the administrator, it stays so through an upgrade (here: the same package
    // again); a purge forgets it.
    let wants = std::path::Path::new("/etc/systemd/system/multi-user.target.wants/docker-listener.service");
    assert!(wants.is_symlink(), "enabled on its first install: {} missing", wants.display());
    std::fs::remove_file(wants).unwrap();
    let (ok, out) = sh(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ok, "dpkg -i again: {out}");
    assert!(!wants.is_symlink(), "an upgrade enabled the service the administrator had disabled");

    let (ok, out) = sh(Command::new("dpkg").args(["-r", "docker-listener"]));
    assert!(ok, "dpkg -r: {out}");
    assert!(!bin.exists() && !std::path::Path::new(unit).exists(), "removed");
    let (ok, out) = sh(Command::new("dpkg").args(["-P", "docker-listener"]));
    assert!(ok, "dpkg -P: {out}");
    assert!(!std::path::Path::new("/etc/docker-listener/config.json").exists(), "purged");
    let state = std::path::Path::new("/var/lib/systemd/deb-systemd-helper-enabled/docker-listener.service.dsh-also");
    assert!(!state.exists() && !wants.is_symlink(), "a purge forgets whether it was enabled");
}

#[test]
fn the_image_runs_the_static_binary_and_the_manifests_carry_what_it_needs() {
    e2e();
    let version = env!("CARGO_PKG_VERSION");
    let (ok, out) = sh(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        &format!("docker-listener:{version}"),
        "--version",
    ]));
    assert!(ok && out.contains(version), "the image: {out}");
    let compose = std::fs::read_to_string(package_dir().join("compose.yaml")).unwrap();
    let daemonset = std::fs::read_to_string(package_dir().join("daemonset.yaml")).unwrap();
    assert!(daemonset.contains("\"BPF\"") && daemonset.contains("\"PERFMON\""), "the DaemonSet's eBPF capabilities");
    assert!(compose.contains("SYS_ADMIN"), "compose: SYS_ADMIN stands for BPF and PERFMON on Docker before 23");
    for needed in [
        "SYS_PTRACE",
        "DAC_READ_SEARCH",
        "/var/run/docker.sock",
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/sys/fs/cgroup",
        "/var/ossec/queue/sockets",
        "/run/docker-listener",
    ] {
        assert!(compose.contains(needed), "compose.yaml lacks {needed}");
        assert!(daemonset.contains(needed), "daemonset.yaml lacks {needed}");
    }
    for field in [
        "kind: DaemonSet",
        "hostPID: true",
        "matchLabels",
        "readOnlyRootFilesystem: true",
        "drop: [\"ALL\"]",
        "limits:",
    ] {
        assert!(daemonset.contains(field), "daemonset.yaml lacks {field}");
    }
    for field in ["pid: host", "network_mode: none", "read_only: true", "cap_drop: [ALL]"] {
        assert!(compose.contains(field), "compose.yaml lacks {field}");
    }
}

#[test]
fn the_image_run_with_its_compose_file_sends_docker_and_process_events() {
    e2e();
    let _lock = docker_lock();
    let dir = TempDir::new("compose");
    let sockets = dir.path("queue/sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    let queue = QueueReceiver::bind(&sockets.join("queue"));
    let project = unique("compose").replace('-', "");
    let compose = package_dir().join("compose.yaml");
    let up = |args: &[&str]| {
        sh(Command::new("docker-compose")
            .env("WAZUH_QUEUE_DIR", &sockets)
            .args(["-f", compose.to_str().unwrap(), "-p", &project])
            .args(args))
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> (bool, String));
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "--volumes", "--timeout", "5"]);
        }
    }
    let (ok, out) = up(&["up", "--detach"]);
    let _down = Down(&up);
    assert!(ok, "docker-compose up: {out}");
    queue.wait_until(std::time::Duration::from_secs(30), "the agent's first frames", |f| !f.is_empty());
    // Give the agent its inventory, then a container to see.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let name = unique("seen");
    let _c = Containers(vec![name.clone()]);
    let marker = unique("c");
    run_detached(&name, &[], &format!("/bin/echo {marker}; sleep 600"));
    queue.wait_until(
        std::time::Duration::from_secs(30),
        "Docker and process events from the containerised agent",
        |f| {
            !execs_with_arg(&agent_events(f), &marker).is_empty()
                && docker_events(f)
                    .iter()
                    .any(|e| e["Action"] == "start" && e["Actor"]["Attributes"]["name"] == name.as_str())
        },
    );
    let events = agent_events(&queue.frames());
    let exec = execs_with_arg(&events, &marker)[0];
    assert_eq!(exec["container"]["name"], name.as_str(), "joined with its container: {exec}");
}
