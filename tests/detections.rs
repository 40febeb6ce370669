//! The families reported at a system call's exit (issue 11): kernel modules, BPF, ptrace,
//! namespaces and mounts, privilege changes, against the real dockerd and kernel. A container does each thing; the
//! daemon reports it with its container, its process and parent, and its outcome (Docker's
//! seccomp profile refuses most of them: the attempt is the event); the shipped rule for it
//! fires. The same calls made by a host process, and a container doing ordinary work, make none
//! of these events, and the runtime's own mounts at every container start are not sent.
mod support;

use std::{process::Command, time::Duration};

use serde_json::{Value, json};
use support::{agent::*, rules::*, *};

/// `event.action` of every exit-reported family's events.
const FAMILY_ACTIONS: &[&str] = &[
    "module-load",
    "module-unload",
    "bpf-program-load",
    "bpf-program-attach",
    "ptrace",
    "process-vm-write",
    "unshare",
    "setns",
    "clone",
    "mount",
    "umount",
    "pivot_root",
    "chroot",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "capset",
    "prctl",
];

fn mine<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["container"]["name"] == name).collect()
}

fn find<'a>(events: &[&'a Value], what: &str, f: impl Fn(&Value) -> bool) -> &'a Value {
    events.iter().copied().find(|e| f(e)).unwrap_or_else(|| panic!("no {what} among {events:#?}"))
}

fn action<'a>(events: &[&'a Value], action: &str, syscall: &str) -> &'a Value {
    find(events, &format!("{action} ({syscall})"), |e| {
        e["event"]["action"] == action && e["docker_listener"]["syscall"]["name"] == syscall
    })
}

/// What every event of these families carries: the container, the process that made the call
/// (the kernel's pid, the file it runs), its parent, and the outcome with the error.
fn check_common(e: &Value, name: &str, executable: &str, outcome: &str, errno: Option<&str>) {
    assert_eq!(e["container"]["name"], name, "{e}");
    assert_eq!(e["container"]["image"]["name"], image().as_str(), "{e}");
    assert_eq!(e["process"]["executable"], executable, "{e}");
    assert!(e["process"]["pid"].as_u64().is_some_and(|p| p > 1), "{e}");
    assert!(e["process"]["parent"]["pid"].as_u64().is_some(), "the parent: {e}");
    assert_eq!(e["event"]["outcome"], outcome, "{e}");
    assert_eq!(e["event"]["module"], "docker-listener");
    match errno {
        Some(code) => assert_eq!(e["error"]["code"], code, "{e}"),
        None => assert!(e.get("error").is_none(), "{e}"),
    }
    assert!(e["docker_listener"]["syscall"].get("abi").is_none(), "a native call: {e}");
}

/// A container with two pid namespaces made inside it (`unshare -p`), each with a pid 2: a
/// sibling's `sleep 63`, and in the caller's, `sleep 61` and the ptrace caller, run as `caller`
/// says (`$!` is the sleep). The attach must name the caller's namespace's pid 2, not the
/// sibling's; so must the `process_vm_writev` that follows, when `vm` (the caller detached
/// first: the kernel has no tracee to name, and the target is found in /proc).
fn attach_beside_a_sibling_namespace(tag: &str, caller: &str, vm: bool) {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent(tag, json!({}));
    let name = unique(tag);
    let _c = Containers(vec![name.clone()]);
    let done = format!("done-{name}");
    let caps = ["--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE", "--security-opt", "seccomp=unconfined"];
    let programs = programs_volume();
    run_detached(
        &name,
        &[&caps[..], &["-v", &programs]].concat(),
        &format!(
            "sleep 1; unshare -p -f sh -c 'sleep 63 & sleep 64' & sleep 1; \
             unshare -p -f sh -c 'sleep 61 & {caller}'; /bin/sh -c \"true {done}\"; sleep 60"
        ),
    );
    let events = wait_events(&agent, "the last shell", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("true {done}")).is_empty()
    });
    let m = mine(&events, &name);
    let exec_of = |args: Value| move |e: &Value| e["event"]["action"] == "exec" && e["process"]["args"] == args;
    let sibling = find(&m, "the sibling namespace's sleep", exec_of(json!(["sleep", "63"])));
    let inner = find(&m, "the caller's namespace's sleep", exec_of(json!(["sleep", "61"])));
    let attach = find(&m, "PTRACE_ATTACH", |e| e["docker_listener"]["ptrace"]["request"] == "PTRACE_ATTACH");
    assert_eq!(attach["event"]["outcome"], "success", "{attach}");
    let target = &attach["docker_listener"]["ptrace"]["target"];
    assert_eq!(target["pid"], 2, "{attach}");
    assert_eq!(target["host_pid"], inner["process"]["pid"], "{attach}\nthe sibling's: {sibling}");
    assert_eq!(target["entity_id"], inner["process"]["entity_id"], "{attach}");
    if vm {
        let vm = find(&m, "process_vm_writev", |e| e["event"]["action"] == "process-vm-write");
        let target = &vm["docker_listener"]["ptrace"]["target"];
        assert_eq!(target["pid"], 2, "{vm}");
        assert_eq!(target["host_pid"], inner["process"]["pid"], "{vm}\nthe sibling's: {sibling}");
        assert_eq!(target["same_container"], true, "{vm}");
    }
    assert_eq!(agent.daemon.stop(), 0);
}

/// The caller and the target stay while the agent reads /proc: the pid the caller named is its
/// own namespace's, found there and not in the sibling.
#[test]
fn a_ptrace_target_in_a_pid_namespace_made_inside_the_container_is_found_at_the_caller_s_level() {
    attach_beside_a_sibling_namespace("nested-pidns", "/t/ptrace_poke $! 5 & sleep 1", true);
}

/// The caller ends right after its `process_vm_writev` (before the agent reads /proc): where
/// its pids are is the kernel's word at the call, so its target is still found in its own
/// namespace, not guessed among the processes with an innermost pid 2 (the sibling's sleep).
#[test]
fn a_write_s_target_is_found_in_the_caller_s_namespace_after_the_caller_is_gone() {
    attach_beside_a_sibling_namespace("vm-gone", "/t/ptrace_poke $!; sleep 1", true);
}

/// The kernel names who an attach took hold of, at the call's exit: the caller kills the target
/// and ends at once, both gone before the agent reads /proc (where the sibling's pid 2, alive,
/// would be a decoy), and the target is still the one attached to. (The attach waits for the
/// sleep to have executed: a child attached before its exec would be killed before it is one.)
#[test]
fn an_attach_names_its_target_as_the_kernel_saw_it_when_target_and_caller_are_gone() {
    attach_beside_a_sibling_namespace("attach-gone", "sleep 0.3; /t/ptrace_poke $! kill; true", false);
}

/// A thread's id names its process to process_vm_writev (and ptrace) as the process's own pid
/// does: an injector naming a worker thread of its target has the target found among the
/// threads of the container's processes, not left unnamed.
#[test]
fn a_write_by_a_thread_s_id_names_the_thread_s_process() {
    e2e();
    let _docker = docker_lock();
    let mut agent = start_agent("vm-thread", json!({}));
    let name = unique("vm-thread");
    let _c = Containers(vec![name.clone()]);
    let done = format!("done-{name}");
    run_detached(
        &name,
        &["-v", &programs_volume()],
        &format!("/t/ptrace_poke thread; /bin/sh -c \"true {done}\"; sleep 60"),
    );
    let events = wait_events(&agent, "the last shell", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("true {done}")).is_empty()
    });
    let m = mine(&events, &name);
    let vm = action(&m, "process-vm-write", "process_vm_writev");
    // Docker's default seccomp profile refuses process_vm_writev without CAP_SYS_PTRACE.
    check_common(vm, &name, "/t/ptrace_poke", "failure", Some("EPERM"));
    let logs = docker(&["logs", &name]);
    let word = |key: &str| -> u64 {
        let w = logs.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {logs}"));
        w.parse().unwrap()
    };
    let (child, thread) = (word("child="), word("thread="));
    assert_ne!(child, thread, "{logs}");
    let target = &vm["docker_listener"]["ptrace"]["target"];
    assert_eq!(target["pid"], thread, "{vm}");
    let host_pid = target["host_pid"].as_u64().unwrap_or_else(|| panic!("the thread's process found: {vm}"));
    assert_ne!(vm["process"]["pid"], host_pid, "the target is the child, not the caller: {vm}");
    assert_eq!(target["executable"], "/t/ptrace_poke", "{vm}");
    assert_eq!(target["same_container"], true, "{vm}");
    assert_eq!(agent.daemon.stop(), 0);
}

/// A container sharing another's pid namespace (`--pid=container:A`) takes hold of A's first
/// process and writes into it: the target is named as A's (outside the caller's container,
/// found among the other containers' processes for `process_vm_writev`), and the rules for a
/// reach across the container's boundary fire.
#[test]
fn a_ptrace_into_another_container_names_it_and_fires_the_boundary_rules() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("cross-ptrace", json!({}));
    let (victim, injector) = (unique("victim"), unique("injector"));
    let _c = Containers(vec![injector.clone(), victim.clone()]);
    let done = format!("done-{injector}");
    run_detached(&victim, &[], "sleep 120");
    run_detached(
        &injector,
        &["--pid", &format!("container:{victim}"), "--cap-add", "SYS_PTRACE", "-v", &programs_volume()],
        &format!("sleep 1; /t/ptrace_poke 1; /bin/sh -c \"true {done}\"; sleep 60"),
    );
    let events = wait_events(&agent, "the last shell", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("true {done}")).is_empty()
    });
    let first = find(&mine(&events, &victim), "the victim's first process", |e| {
        e["event"]["action"] == "exec" && e["process"]["args"] == json!(["sleep", "120"])
    });
    let m = mine(&events, &injector);
    let attach = find(&m, "PTRACE_ATTACH", |e| e["docker_listener"]["ptrace"]["request"] == "PTRACE_ATTACH");
    check_common(attach, &injector, "/t/ptrace_poke", "success", None);
    let target = &attach["docker_listener"]["ptrace"]["target"];
    assert_eq!(target["pid"], 1, "{attach}");
    assert_eq!(target["host_pid"], first["process"]["pid"], "{attach}");
    assert_eq!(target["same_container"], false, "{attach}");
    assert_eq!(evaluate(&rules, attach), Some(100_069));
    let vm = action(&m, "process-vm-write", "process_vm_writev");
    let target = &vm["docker_listener"]["ptrace"]["target"];
    assert_eq!(target["host_pid"], first["process"]["pid"], "{vm}");
    assert_eq!(target["same_container"], false, "{vm}");
    assert_eq!(evaluate(&rules, vm), Some(100_070));
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn a_default_container_s_attempts_are_reported_and_fire_their_rules() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("families", json!({}));
    let name = unique("families");
    let _c = Containers(vec![name.clone()]);
    let done = format!("done-{name}");
    run_detached(
        &name,
        &[
            "-v",
            &programs_volume(),
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            "/var/run/docker.sock:/run/api",
        ],
        &format!(
            "echo x > /tmp/m.ko; insmod /tmp/m.ko; rmmod evil_mod; /t/bpf_load; sleep 61 & /t/ptrace_poke $!; \
             unshare -m true; mkdir -p /tmp/x; mount -t tmpfs none /tmp/x; chroot / true; /t/new_mount /tmp/x; /t/priv_calls; \
             /t/compat_calls_32 /tmp/x evil32; \
             /t/unix_connect /var/run/docker.sock; ln -s /var/run/docker.sock /tmp/api; /t/unix_connect /tmp/api; \
             /t/unix_connect /proc/self/root/run/api; /t/uring_connect /run/api; mkdir -p /tmp/dind/32; \
             /t/unix_connect --own /tmp/dind/docker.sock /tmp/dind/go & until [ -S /tmp/dind/docker.sock ]; do sleep 0.1; done; \
             /t/uring_connect /tmp/dind/docker.sock; touch /tmp/dind/go; wait $!; /t/unix_connect_32 --own /tmp/dind/32/docker.sock; cp /t/spawn /tmp/nginx; /tmp/nginx /bin/sh -c 'true {done}'; \
             sleep 60"
        ),
    );
    let events = wait_events(&agent, "the last shell", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &format!("true {done}")).is_empty()
            && mine(e, &name).iter().any(|x| x["event"]["action"] == "chroot")
    });
    let m = mine(&events, &name);
    let native: Vec<&Value> =
        m.iter().copied().filter(|e| e["docker_listener"]["syscall"].get("abi").is_none()).collect();

    // kernel-module: busybox insmod tries finit_module, then init_module; both refused.
    let finit = action(&m, "module-load", "finit_module");
    check_common(finit, &name, "/bin/busybox", "failure", Some("EPERM"));
    assert_eq!(finit["docker_listener"]["kernel_module"]["file_name"], "m.ko", "the kernel's name of the file");
    assert_eq!(evaluate(&rules, finit), Some(100_020));
    let init = action(&m, "module-load", "init_module");
    assert_eq!(init["docker_listener"]["kernel_module"]["image_bytes"], 2, "{init}");
    assert_eq!(evaluate(&rules, init), Some(100_020));
    let unload = action(&native, "module-unload", "delete_module");
    check_common(unload, &name, "/bin/busybox", "failure", Some("EPERM"));
    assert_eq!(unload["docker_listener"]["kernel_module"]["name"], "evil_mod");
    assert_eq!(evaluate(&rules, unload), Some(100_021));

    // bpf: the program's type and name, from the attributes the caller passed.
    let bpf = action(&m, "bpf-program-load", "bpf");
    check_common(bpf, &name, "/t/bpf_load", "failure", Some("EPERM"));
    let b = &bpf["docker_listener"]["bpf"];
    assert_eq!((b["command"].as_str(), b["program_type"].as_str()), (Some("BPF_PROG_LOAD"), Some("socket_filter")));
    assert_eq!((b["program_name"].as_str(), b["instructions"].as_u64()), (Some("dl_probe"), Some(2)));
    assert_eq!(evaluate(&rules, bpf), Some(100_022));

    // ptrace: a sibling (the shell's sleep), named by its pid in the container and found on
    // the host.
    let sleep =
        find(&m, "the sleep", |e| e["event"]["action"] == "exec" && e["process"]["args"] == json!(["sleep", "61"]));
    let attach = find(&m, "PTRACE_ATTACH", |e| e["docker_listener"]["ptrace"]["request"] == "PTRACE_ATTACH");
    check_common(attach, &name, "/t/ptrace_poke", "success", None);
    let target = &attach["docker_listener"]["ptrace"]["target"];
    assert_eq!(target["host_pid"], sleep["process"]["pid"], "{attach}");
    assert_eq!(target["entity_id"], sleep["process"]["entity_id"], "{attach}");
    assert_eq!(target["executable"], "/bin/busybox");
    assert_eq!(target["same_container"], true);
    assert!(target["pid"].as_u64().is_some_and(|p| p != sleep["process"]["pid"].as_u64().unwrap()), "{target}");
    assert_eq!(evaluate(&rules, attach), Some(100_023));
    let poke = find(&m, "PTRACE_POKEDATA", |e| e["docker_listener"]["ptrace"]["request"] == "PTRACE_POKEDATA");
    check_common(poke, &name, "/t/ptrace_poke", "failure", Some("EIO"));
    assert_eq!(poke["docker_listener"]["ptrace"]["address"], "0x8");
    // The write's target is the caller's tracee: named by the kernel, as the attach's.
    assert_eq!(poke["docker_listener"]["ptrace"]["target"]["host_pid"], sleep["process"]["pid"], "{poke}");
    assert_eq!(poke["docker_listener"]["ptrace"]["target"]["entity_id"], sleep["process"]["entity_id"], "{poke}");
    let vm = action(&m, "process-vm-write", "process_vm_writev");
    assert_eq!(vm["docker_listener"]["ptrace"]["target"]["host_pid"], sleep["process"]["pid"]);
    assert_eq!(evaluate(&rules, vm), Some(100_024));

    // namespaces and mounts: refused by seccomp (unshare, mount), allowed (chroot).
    let unshare = action(&native, "unshare", "unshare");
    check_common(unshare, &name, "/bin/busybox", "failure", Some("EPERM"));
    assert_eq!(unshare["docker_listener"]["namespace"]["types"], json!(["mnt"]));
    assert_eq!(evaluate(&rules, unshare), Some(100_027));
    let mount = action(&native, "mount", "mount");
    check_common(mount, &name, "/bin/busybox", "failure", Some("EPERM"));
    let mo = &mount["docker_listener"]["mount"];
    assert_eq!(
        (mo["source"].as_str(), mo["target"].as_str(), mo["fstype"].as_str()),
        (Some("none"), Some("/tmp/x"), Some("tmpfs"))
    );
    assert_eq!(evaluate(&rules, mount), Some(100_030));
    // The mount API that needs no mount(2), step by step: each step is a `mount` event the
    // mount rules see (a cgroup filesystem, a device as the source).
    let fsopen = action(&native, "mount", "fsopen");
    check_common(fsopen, &name, "/t/new_mount", "failure", Some("EPERM"));
    assert_eq!(fsopen["docker_listener"]["mount"], json!({"fstype": "cgroup"}), "{fsopen}");
    assert_eq!(evaluate(&rules, fsopen), Some(100_029));
    let fsconfig = |cmd: &str| {
        find(&native, &format!("fsconfig {cmd}"), |e| {
            e["docker_listener"]["syscall"]["name"] == "fsconfig" && e["docker_listener"]["mount"]["command"] == cmd
        })
    };
    let source = fsconfig("FSCONFIG_SET_STRING");
    assert_eq!(
        source["docker_listener"]["mount"],
        json!({"source": "/dev/sda1", "command": "FSCONFIG_SET_STRING", "key": "source", "fd": -1}),
        "{source}"
    );
    assert_eq!(evaluate(&rules, source), Some(100_028), "a device as the source");
    assert_eq!(evaluate(&rules, fsconfig("FSCONFIG_CMD_CREATE")), Some(100_030));
    for (syscall, want) in [
        ("fsmount", json!({"flags": ["MOUNT_ATTR_NOEXEC"], "fd": -1})),
        ("move_mount", json!({"target": "/tmp/x", "flags": ["0x4"], "fd": -1})),
        ("open_tree", json!({"source": "/", "flags": ["OPEN_TREE_CLONE", "AT_RECURSIVE"], "fd": -100})),
        ("fspick", json!({"target": "/", "fd": -100})),
        ("mount_setattr", json!({"target": "/", "flags_cleared": ["MOUNT_ATTR_RDONLY"], "fd": -100})),
    ] {
        let e = action(&native, "mount", syscall);
        check_common(e, &name, "/t/new_mount", "failure", Some("EPERM"));
        assert_eq!(e["docker_listener"]["mount"], want, "{e}");
        assert_eq!(evaluate(&rules, e), Some(100_030), "{e}");
    }
    // Privilege changes beyond the set*id calls: the filesystem uid, the groups, the bounding
    // set dropped, an ambient capability refused; a thread name is none.
    let fsuid = action(&native, "setfsuid", "setfsuid");
    check_common(fsuid, &name, "/t/priv_calls", "success", None);
    assert_eq!(fsuid["docker_listener"]["privilege"]["requested"], json!({"filesystem": 0}), "{fsuid}");
    assert_eq!(fsuid["docker_listener"]["privilege"]["after"]["fsuid"], 0);
    assert_eq!(evaluate(&rules, fsuid), Some(100_041));
    let groups = action(&native, "setgroups", "setgroups");
    check_common(groups, &name, "/t/priv_calls", "success", None);
    assert_eq!(groups["docker_listener"]["privilege"]["requested"], json!({"groups_count": 2, "first_group": 0}));
    let drop = find(&native, "PR_CAPBSET_DROP", |e| {
        e["docker_listener"]["privilege"]["requested"]["option"] == "PR_CAPBSET_DROP"
    });
    check_common(drop, &name, "/t/priv_calls", "success", None);
    assert_eq!(drop["event"]["action"], "prctl");
    assert_eq!(drop["docker_listener"]["privilege"]["requested"]["capability"], 18);
    let ambient = find(&native, "PR_CAP_AMBIENT", |e| {
        e["docker_listener"]["privilege"]["requested"]["option"] == "PR_CAP_AMBIENT"
    });
    check_common(ambient, &name, "/t/priv_calls", "failure", Some("EPERM"));
    assert_eq!(ambient["docker_listener"]["privilege"]["requested"]["operation"], "PR_CAP_AMBIENT_RAISE");
    assert_eq!(evaluate(&rules, ambient), Some(100_040), "a refused privilege change");
    // A try at making the process's executable file another (a runtime binary's, a harmless
    // one): refused without CAP_SYS_RESOURCE, reported all the same, with its own rule.
    let exe_file =
        find(&native, "PR_SET_MM", |e| e["docker_listener"]["privilege"]["requested"]["option"] == "PR_SET_MM");
    check_common(exe_file, &name, "/t/priv_calls", "failure", Some("EPERM"));
    assert_eq!(exe_file["docker_listener"]["privilege"]["requested"]["operation"], "PR_SET_MM_EXE_FILE");
    assert!(
        exe_file["docker_listener"]["privilege"]["requested"]["fd"].as_i64().is_some_and(|fd| fd > 2),
        "{exe_file}"
    );
    assert_eq!(evaluate(&rules, exe_file), Some(100_078), "masquerading, tried or done");
    let prctls = native.iter().filter(|e| e["event"]["action"] == "prctl").count();
    assert_eq!(prctls, 3, "PR_SET_NAME is no privilege change");
    let chroot = action(&native, "chroot", "chroot");
    check_common(chroot, &name, "/bin/busybox", "success", None);
    assert_eq!(chroot["docker_listener"]["chroot"]["path"], "/");
    assert_eq!(evaluate(&rules, chroot), Some(100_032));

    // The same through the 32-bit ABI: the same events, marked, the same rules.
    let compat: Vec<&Value> = m.iter().copied().filter(|e| e["docker_listener"]["syscall"]["abi"] == "ia32").collect();
    let of32 = |a: &str| find(&compat, &format!("32-bit {a}"), |e| e["event"]["action"] == a);
    for (a, outcome, rule) in [
        ("unshare", "failure", 100_027),
        ("mount", "failure", 100_030),
        ("chroot", "success", 100_032),
        ("module-unload", "failure", 100_021),
    ] {
        let e = of32(a);
        assert_eq!(e["process"]["executable"], "/t/compat_calls_32", "{e}");
        assert_eq!(e["event"]["outcome"], outcome, "{e}");
        assert_eq!(evaluate(&rules, e), Some(rule), "{e}");
    }
    assert_eq!(of32("mount")["docker_listener"]["mount"]["target"], "/tmp/x", "32-bit pointers read");
    assert_eq!(of32("module-unload")["docker_listener"]["kernel_module"]["name"], "evil32");
    // The 16-bit setresuid asking to change nothing (its -1 is 0xffff), and setgid32 to the
    // group it has: changes that raise nothing.
    let setresuid = of32("setresuid");
    assert_eq!(setresuid["event"]["outcome"], "success", "{setresuid}");
    assert_eq!(setresuid["docker_listener"]["privilege"]["requested"], json!({}), "all unchanged: {setresuid}");
    assert_eq!(setresuid["docker_listener"]["privilege"]["after"]["uid"], 0);
    assert_eq!(evaluate(&rules, setresuid), Some(100_041));
    let setgid = of32("setgid");
    assert_eq!(setgid["docker_listener"]["privilege"]["requested"], json!({"effective": 0}));
    assert!(setgid["docker_listener"]["privilege"].get("raised").is_none(), "{setgid}");

    // The Docker socket, bind-mounted in: the existing connect event, its own rule.
    let docker_sock = find(&m, "the Docker socket connect", |e| {
        e["event"]["action"] == "connect" && e["destination"]["address"] == "/var/run/docker.sock"
    });
    assert_eq!(evaluate(&rules, docker_sock), Some(100_033));
    assert!(docker_sock["docker_listener"]["socket"].get("peer_container").is_none(), "the host's: {docker_sock}");
    // A runtime socket of the container's own (docker-in-docker's): its bind was seen, and a
    // connect to it says whose it is, by the listener's file; the rule is lowered.
    let own = find(&m, "the connect to its own socket", |e| {
        e["event"]["action"] == "connect" && e["destination"]["address"] == "/tmp/dind/docker.sock"
    });
    assert_eq!(own["docker_listener"]["socket"]["peer_container"], name.as_str(), "{own}");
    assert_eq!(own["docker_listener"]["socket"]["peer_same_container"], true, "{own}");
    assert_eq!(evaluate(&rules, own), Some(100_073), "{own}");
    // The same by 32-bit calls: seen at their exit only, the socket file of neither the bind nor
    // the connect is read (the descriptor may hold another socket by then), so the listener is
    // not known to be the container's own: the host's rule stands (fails safe).
    let own32 = find(&m, "the 32-bit connect to its own socket", |e| {
        e["event"]["action"] == "connect" && e["destination"]["address"] == "/tmp/dind/32/docker.sock"
    });
    assert_eq!(own32["docker_listener"]["syscall"]["abi"], "ia32", "{own32}");
    assert!(own32["docker_listener"]["socket"].get("peer_container").is_none(), "{own32}");
    assert_eq!(evaluate(&rules, own32), Some(100_033), "{own32}");
    // The same socket by a symlink, and mounted at another name: the listener reached says it.
    for named in ["/tmp/api", "/proc/self/root/run/api"] {
        let by_name = find(&m, named, |e| e["event"]["action"] == "connect" && e["destination"]["address"] == named);
        let peer = by_name["docker_listener"]["socket"]["peer_address"].as_str().unwrap_or_default();
        assert!(peer.ends_with("/docker.sock"), "the Docker daemon's own name for its socket: {by_name}");
        assert!(by_name["docker_listener"]["socket"].get("peer_same_container").is_none(), "{by_name}");
        assert_eq!(evaluate(&rules, by_name), Some(100_071), "{by_name}");
    }
    // Through io_uring (no connect(2), no TCP state change): seen at its completion.
    let by_ring = find(&m, "the io_uring Unix connect", |e| {
        e["event"]["action"] == "connect"
            && e["docker_listener"]["seen_by"] == "io_uring"
            && e["docker_listener"]["socket"].get("peer_container").is_none()
    });
    assert_eq!(by_ring["process"]["executable"], "/t/uring_connect", "{by_ring}");
    assert_eq!(by_ring["event"]["outcome"], "success", "{by_ring}");
    assert!(by_ring.get("destination").is_none(), "the name the request gave is not read: {by_ring}");
    let peer = by_ring["docker_listener"]["socket"]["peer_address"].as_str().unwrap_or_default();
    assert!(peer.ends_with("/docker.sock"), "{by_ring}");
    assert_eq!(evaluate(&rules, by_ring), Some(100_071), "{by_ring}");
    // And to its own listener: whose it is, by the listener's file; the rule is lowered, and its
    // description names the listener (the ring's connect has no destination.address).
    let own_ring = find(&m, "the io_uring connect to its own socket", |e| {
        e["event"]["action"] == "connect"
            && e["docker_listener"]["seen_by"] == "io_uring"
            && e["docker_listener"]["socket"]["peer_address"] == "/tmp/dind/docker.sock"
    });
    assert_eq!(own_ring["docker_listener"]["socket"]["peer_same_container"], true, "{own_ring}");
    assert_eq!(evaluate(&rules, own_ring), Some(100_074), "{own_ring}");
    // A shell started by a web server.
    let sh = find(&m, "the server's shell", |e| {
        e["event"]["action"] == "exec" && e["process"]["args"] == json!(["/bin/sh", "-c", format!("true {done}")])
    });
    assert_eq!(sh["process"]["parent"]["name"], "nginx", "{sh}");
    assert_eq!(evaluate(&rules, sh), Some(100_039));

    // Nothing else of these families: the runtime's mounts at the container's start are not
    // sent, and busybox's own forks make no namespace.
    let family_events: Vec<&&Value> =
        m.iter().filter(|e| FAMILY_ACTIONS.contains(&e["event"]["action"].as_str().unwrap_or(""))).collect();
    // (The 32-bit calls of these families; the 32-bit Unix connect's socket calls are others.)
    let compat_family = compat.iter().filter(|e| family_events.contains(e)).count();
    assert_eq!(family_events.len(), 10 + 8 + 5 + compat_family, "{family_events:#?}");
    assert_eq!(compat_family, 6, "{compat:#?}");
    assert_eq!(agent.daemon.stop(), 0);
    let runtime = agent.daemon.final_stat("ebpf_runtime_setup");
    assert!(runtime > 10, "runc's mounts were recognised by its file: {runtime}");
}

#[test]
fn with_the_capabilities_the_calls_succeed_and_a_host_namespace_is_named() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("capable", json!({}));
    let name = unique("capable");
    let _c = Containers(vec![name.clone()]);
    // --privileged is refused on these machines (runc cannot apply every capability here);
    // CAP_SYS_ADMIN without the seccomp profile is what these calls need. `--uts=host` makes
    // the container's UTS namespace the host's: entering it by a descriptor is a setns into a
    // host namespace. Entering it by a pidfd of the container's pid 1 (which names no
    // namespace) is none: the container shares it with the host (a pidfd into a host namespace
    // the container does not share: the next test). What the container shares is Docker's
    // inspection's: until the agent has it (the container's first milliseconds), a setns by a
    // pidfd into a host namespace is named one (what it shares is not known yet), so the
    // pidfd's waits until the agent has inspected the container (its events then carry the
    // image's id).
    run_detached(
        &name,
        &["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--uts=host", "-v", &programs_volume()],
        "unshare -m true; mkdir -p /tmp/x; mount -t tmpfs none /tmp/x; umount /tmp/x; nsenter -t 1 -u true; \
         until [ -e /tmp/go ]; do sleep 0.1; done; /t/pidfd_setns 1 4000000; echo ok; sleep 60",
    );
    wait_events(&agent, "busybox's setns", Duration::from_secs(30), |e| {
        mine(e, &name).iter().any(|x| x["event"]["action"] == "setns")
    });
    docker(&["exec", &name, "/bin/echo", "inspected"]);
    wait_events(&agent, "an event with the container's image id", Duration::from_secs(30), |e| {
        mine(e, &name).iter().any(|x| x["container"]["image"]["id"].is_string())
    });
    docker(&["exec", &name, "touch", "/tmp/go"]);
    let events = wait_events(&agent, "the setns", Duration::from_secs(30), |e| {
        mine(e, &name).iter().filter(|x| x["event"]["action"] == "setns").count() == 2
    });
    let m = mine(&events, &name);
    let unshare = action(&m, "unshare", "unshare");
    check_common(unshare, &name, "/bin/busybox", "success", None);
    assert_eq!(evaluate(&rules, unshare), Some(100_027));
    // (busybox's unshare -m makes its new mount tree private first: a mount of "/", no type.)
    let mount = find(&m, "the tmpfs mount", |e| {
        e["event"]["action"] == "mount" && e["docker_listener"]["mount"]["target"] == "/tmp/x"
    });
    check_common(mount, &name, "/bin/busybox", "success", None);
    assert_eq!(mount["docker_listener"]["mount"]["fstype"], "tmpfs");
    assert_eq!(evaluate(&rules, mount), Some(100_030));
    let umount = action(&m, "umount", "umount2");
    check_common(umount, &name, "/bin/busybox", "success", None);
    assert_eq!(umount["docker_listener"]["mount"]["target"], "/tmp/x");
    assert_eq!(evaluate(&rules, umount), Some(100_031));
    let setns = find(&m, "busybox's setns", |e| {
        e["event"]["action"] == "setns" && e["process"]["executable"] == "/bin/busybox"
    });
    check_common(setns, &name, "/bin/busybox", "success", None);
    let ns = &setns["docker_listener"]["namespace"];
    assert_eq!(ns["types"], json!(["uts"]), "{setns}");
    assert_eq!(ns["host"], "uts", "the host's UTS namespace, by its inode: {setns}");
    assert!(ns["inode"].as_u64().is_some_and(|i| i > 0));
    assert_eq!(evaluate(&rules, setns), Some(100_025));
    let shared = find(&m, "the setns by a pidfd", |e| {
        e["event"]["action"] == "setns" && e["process"]["executable"] == "/t/pidfd_setns"
    });
    check_common(shared, &name, "/t/pidfd_setns", "success", None);
    let ns = &shared["docker_listener"]["namespace"];
    assert_eq!(ns["types"], json!(["uts"]), "{shared}");
    assert!(ns.get("inode").is_none(), "a pidfd names no namespace: {shared}");
    assert!(ns.get("host").is_none(), "shared with the host: {shared}");
    assert_eq!(evaluate(&rules, shared), Some(100_026));
    // None of them is the runtime's: runc's own calls (it has SYS_ADMIN too) are not sent.
    assert!(m.iter().all(|e| !e["process"]["executable"].as_str().is_some_and(|x| x.ends_with("runc"))), "{m:#?}");
    assert_eq!(agent.daemon.stop(), 0);
}

/// A setns by a pidfd names no namespace: whether it took the caller into a host namespace is
/// decided by where it is after the call, against what its container was made to share with the
/// host. That is Docker's record of the container (`--uts=host`...), not its processes'
/// namespaces, which the container can change: its first process entering the host's UTS
/// namespace would otherwise make it look shared, and hide that entry and every later one.
#[test]
fn entering_a_host_namespace_by_a_pidfd_cannot_make_it_look_shared() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("pidfd-host", json!({}));
    let name = unique("pidfd-host");
    let _c = Containers(vec![name.clone()]);
    // `--pid=host` shows the container a process in the host's namespaces: this test's (a
    // setns by its pidfd needs SYS_PTRACE: the kernel asks whether the caller may read it). The
    // container's first process (the shell) enters the host's UTS namespace by a pidfd and
    // becomes a shell again, which does it once more from a child.
    let host = std::process::id();
    run_detached(
        &name,
        &[
            "--pid=host",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-add",
            "SYS_PTRACE",
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            &programs_volume(),
        ],
        &format!(
            "until [ -e /tmp/go ]; do sleep 0.1; done; \
             exec /t/pidfd_setns {host} 4000000 /bin/sh -c '/t/pidfd_setns {host} 4000000; echo ok; sleep 60'"
        ),
    );
    docker(&["exec", &name, "/bin/echo", "inspected"]);
    wait_events(&agent, "an event with the container's image id", Duration::from_secs(30), |e| {
        mine(e, &name).iter().any(|x| x["container"]["image"]["id"].is_string())
    });
    docker(&["exec", &name, "touch", "/tmp/go"]);
    let events = wait_events(&agent, "the two setns", Duration::from_secs(30), |e| {
        mine(e, &name).iter().filter(|x| x["event"]["action"] == "setns").count() >= 2
    });
    let m = mine(&events, &name);
    let entries: Vec<_> = m.iter().filter(|e| e["event"]["action"] == "setns").collect();
    let by_pidfd = entries.iter().filter(|e| e["process"]["executable"] == "/t/pidfd_setns").count();
    assert_eq!(by_pidfd, 2, "{entries:#?}");
    for setns in entries {
        check_common(setns, &name, "/t/pidfd_setns", "success", None);
        let ns = &setns["docker_listener"]["namespace"];
        assert_eq!(ns["types"], json!(["uts"]), "{setns}");
        assert_eq!(ns["host"], "uts", "the container was not made to share the host's UTS namespace: {setns}");
        assert_eq!(evaluate(&rules, setns), Some(100_025));
    }
    assert_eq!(agent.daemon.stop(), 0);
}

#[test]
fn host_processes_and_ordinary_containers_make_none_of_these_events() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("families-quiet", json!({}));
    // The same calls from a host process (host tracing is off by default).
    let dir = TempDir::new("host-calls");
    let module = dir.path("m.ko");
    std::fs::write(&module, "x").unwrap();
    let mut sleep = Command::new("sleep").arg("60").spawn().unwrap();
    let t = programs();
    let host_calls: Vec<(String, Vec<String>)> = vec![
        ("busybox".into(), vec!["insmod".into(), module.display().to_string()]),
        ("busybox".into(), vec!["unshare".into(), "-m".into(), "true".into()]),
        ("busybox".into(), vec!["chroot".into(), "/".into(), "true".into()]),
        (t.join("bpf_load").display().to_string(), vec![]),
        (t.join("ptrace_poke").display().to_string(), vec![sleep.id().to_string()]),
    ];
    for (program, args) in &host_calls {
        let child = Command::new(program).args(args).output();
        assert!(child.is_ok(), "{program} {args:?}: {child:?}");
    }
    let _ = sleep.kill();
    let _ = sleep.wait();
    // A container doing ordinary work.
    let name = unique("ordinary");
    let _c = Containers(vec![name.clone()]);
    let done = format!("ordinary-{name}");
    run_detached(
        &name,
        &[],
        &format!(
            "ls / >/dev/null; cat /etc/passwd | grep root >/dev/null; date; mkdir -p /tmp/a; cp /bin/busybox /tmp/a/; (sleep 1 & wait); /bin/echo {done}; sleep 60"
        ),
    );
    wait_events(&agent, "the ordinary container's last exec", Duration::from_secs(30), |e| {
        !execs_with_arg(e, &done).is_empty()
    });
    // A `docker exec` into it: runc enters the container's namespaces (setns) and sets the
    // session's ids, in the container's cgroup: the runtime's, not sent.
    let exec_done = format!("exec-{name}");
    docker(&["exec", &name, "/bin/echo", &exec_done]);
    let events =
        wait_events(&agent, "the docker exec", Duration::from_secs(30), |e| !execs_with_arg(e, &exec_done).is_empty());
    // (Other containers on this machine, such as a benchmark's, are not this test's business.)
    let families: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("container").is_none() || e["container"]["name"] == name.as_str())
        .filter(|e| FAMILY_ACTIONS.contains(&e["event"]["action"].as_str().unwrap_or("")))
        .collect();
    assert!(families.is_empty(), "no host process and no ordinary container makes these events: {families:#?}");
    for e in mine(&events, &name) {
        let rule = evaluate(&rules, e);
        assert!(
            !matches!(rule, Some(100_020..=100_039 | 100_069..=100_071)),
            "rule {rule:?} on ordinary activity: {e}"
        );
    }
    assert_eq!(agent.daemon.stop(), 0);
    assert!(agent.daemon.final_stat("ebpf_runtime_setup") > 0, "the container's start made runtime calls");
}

#[test]
fn a_setuid_program_and_the_ids_it_raises_are_reported() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("privilege", json!({}));
    let name = unique("privilege");
    let _c = Containers(vec![name.clone()]);
    let done = format!("privilege-{name}");
    // A root-owned setuid copy run as user nobody (su lowers its ids to nobody's first, then runs
    // it as nobody's shell), which makes its real ids root; then the same program without the
    // setuid bit, refused.
    run_detached(
        &name,
        &["-v", &programs_volume()],
        &format!(
            "cp /t/setuid_root /tmp/sr; chmod 4755 /tmp/sr; su -s /tmp/sr nobody; \
             su -s /t/setuid_root nobody; /bin/echo {done}; sleep 60"
        ),
    );
    let events =
        wait_events(&agent, "the last exec", Duration::from_secs(30), |e| !execs_with_arg(e, &done).is_empty());
    let m = mine(&events, &name);
    // The exec of the setuid file: the kernel's credentials after it.
    let exec =
        find(&m, "the setuid exec", |e| e["event"]["action"] == "exec" && e["process"]["executable"] == "/tmp/sr");
    let p = &exec["docker_listener"]["privileged"];
    assert_eq!(p["setuid"], true, "{exec}");
    assert!(p.get("setgid").is_none(), "{exec}");
    assert_eq!((p["credentials"]["uid"].as_u64(), p["credentials"]["euid"].as_u64()), (Some(65534), Some(0)));
    assert_eq!(evaluate(&rules, exec), Some(100_034));
    // Its setgid(0) and setuid(0): ids raised, old and new.
    // (The same process was su before: its own changes come first.)
    let by_sr: Vec<&Value> = m
        .iter()
        .copied()
        .filter(|e| e["process"]["pid"] == exec["process"]["pid"] && e["process"]["executable"] == "/tmp/sr")
        .collect();
    let setgid = action(&by_sr, "setgid", "setgid");
    check_common(setgid, &name, "/tmp/sr", "success", None);
    let g = &setgid["docker_listener"]["privilege"];
    assert_eq!(g["requested"], json!({"effective": 0}));
    assert_eq!((g["before"]["gid"].as_u64(), g["after"]["gid"].as_u64()), (Some(65534), Some(0)), "{setgid}");
    assert_eq!(g["raised"], true);
    assert_eq!(evaluate(&rules, setgid), Some(100_037));
    let setuid = action(&by_sr, "setuid", "setuid");
    let u = &setuid["docker_listener"]["privilege"];
    assert_eq!((u["before"]["uid"].as_u64(), u["before"]["euid"].as_u64()), (Some(65534), Some(0)), "{setuid}");
    assert_eq!((u["after"]["uid"].as_u64(), u["after"]["euid"].as_u64()), (Some(0), Some(0)));
    assert_eq!(evaluate(&rules, setuid), Some(100_037));
    // su lowering its ids: a change, informational.
    let lowered = find(&m, "su's setuid", |e| {
        e["event"]["action"] == "setuid" && e["docker_listener"]["privilege"]["after"]["uid"] == 65534
    });
    assert!(lowered["docker_listener"]["privilege"].get("raised").is_none(), "{lowered}");
    assert_eq!(evaluate(&rules, lowered), Some(100_041));
    // The same program without the setuid bit: refused.
    let refused = find(&m, "the refused setuid", |e| {
        e["event"]["action"] == "setuid" && e["process"]["executable"] == "/t/setuid_root"
    });
    check_common(refused, &name, "/t/setuid_root", "failure", Some("EPERM"));
    assert_eq!(evaluate(&rules, refused), Some(100_040));
    let plain = find(&m, "the plain exec", |e| {
        e["event"]["action"] == "exec" && e["process"]["executable"] == "/t/setuid_root"
    });
    assert!(plain["docker_listener"].get("privileged").is_none(), "{plain}");
    assert_eq!(agent.daemon.stop(), 0);
}

/// A DNS query's event for `name` among `events`.
fn dns_query<'a>(events: &[&'a Value], name: &str, qtype: &str) -> &'a Value {
    find(events, &format!("dns-query {name} {qtype}"), |e| {
        e["event"]["action"] == "dns-query"
            && e["dns"]["question"]["name"] == name
            && e["dns"]["question"]["type"] == qtype
    })
}

#[test]
fn dns_queries_and_udp_flows_are_reported_however_they_are_sent_and_host_ones_are_not() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("network", json!({}));
    let name = unique("network");
    let _c = Containers(vec![name.clone()]);
    let tag = |t: &str| format!("{t}-{}.example.com", name.replace('_', "-"));
    // A responder on the container's loopback, busybox's nslookup (connect + write), the test
    // program's sendto, sendmmsg (A and AAAA, as glibc) and TCP writev (length first), its
    // 32-bit build (socketcall or the direct ia32 calls), a tunnel-like name, and UDP flows.
    let tunnel = "aGVsbG8gd29ybGQgdGhpcyBpcyBleGZpbHRyYXRlZCBkYXRh.t.example.com";
    let script = format!(
        "/t/net_send respond & sleep 0.3; nslookup {} 127.0.0.1 >/dev/null 2>&1; \
         /t/net_send dns-sendto {}; /t/net_send dns-sendmmsg {}; /t/net_send dns-tcp {}; \
         /t/net_send_32 dns-sendmmsg {}; /t/net_send_32 dns-tcp {}; /t/net_send dns-sendto {tunnel}; \
         /t/net_send dns-sendto pool.minexmr.com; /t/net_send dns-sendto x.evil-c2.example; \
         /t/net_send dns-sendto Pool.MineXMR.com; /t/net_send dns-sendto X.Evil-C2.Example; \
         /t/net_send flow 7001 5; /t/net_send_32 flow 7101 5; echo done-{name}; sleep 30",
        tag("nslookup"),
        tag("sendto"),
        tag("mmsg"),
        tag("tcp"),
        tag("mmsg32"),
        tag("tcp32"),
    );
    run_detached(&name, &["-v", &programs_volume()], &script);
    // The same sends by a host process: nothing.
    let host = Command::new(programs().join("net_send")).args(["flow", "7201", "3"]).status().unwrap();
    assert!(host.success());
    let _ = Command::new(programs().join("net_send")).args(["dns-sendto", &tag("host")]).status();
    wait_events(&agent, "the last flow", Duration::from_secs(30), |e| {
        e.iter().any(|x| x["event"]["action"] == "network-flow" && x["destination"]["port"] == 7102)
    });
    // (The host's sends, made before, have had a second to come through, were they reported.)
    std::thread::sleep(Duration::from_secs(1));
    let events = agent_events(&agent.queue.frames());
    let all: Vec<&Value> = events.iter().collect();
    let ours = mine(&events, &name);

    // busybox's nslookup: connect, then write.
    let q = dns_query(&ours, &tag("nslookup"), "A");
    check_common(q, &name, "/bin/busybox", "success", None);
    assert_eq!(q["destination"], json!({"ip": "127.0.0.1", "port": 53}), "{q}");
    assert_eq!(q["network"]["transport"], "udp");
    assert_eq!(q["network"]["protocol"], "dns");
    assert_eq!(q["dns"]["type"], "query");
    assert_eq!(q["dns"]["question"]["class"], "IN");
    assert_eq!(q["docker_listener"]["syscall"]["name"], "write");
    assert_eq!(q["docker_listener"]["dns"]["connected"], true);
    assert_eq!(q["docker_listener"]["dns"]["domain"], "example.com");
    assert!(q["docker_listener"]["dns"].get("suspicious").is_none(), "{q}");
    assert_eq!(evaluate(&rules, q), Some(100_054), "{q}");

    let q = dns_query(&ours, &tag("sendto"), "A");
    check_common(q, &name, "/t/net_send", "success", None);
    assert_eq!(q["docker_listener"]["syscall"]["name"], "sendto");
    assert_eq!(q["docker_listener"]["dns"]["connected"], false);
    // sendmmsg: both messages, each its own event.
    for (n, abi) in [(tag("mmsg"), None), (tag("mmsg32"), Some("ia32"))] {
        for t in ["A", "AAAA"] {
            let q = dns_query(&ours, &n, t);
            assert_eq!(q["docker_listener"]["syscall"]["name"], "sendmmsg", "{q}");
            assert_eq!(q["docker_listener"]["syscall"].get("abi").and_then(Value::as_str), abi, "{q}");
        }
    }
    // TCP: the length prefix sent as a buffer of its own is not the message.
    for (n, exe) in [(tag("tcp"), "/t/net_send"), (tag("tcp32"), "/t/net_send_32")] {
        let q = dns_query(&ours, &n, "A");
        assert_eq!(q["network"]["transport"], "tcp", "{q}");
        assert_eq!(q["process"]["executable"], exe);
        assert_eq!(q["docker_listener"]["syscall"]["name"], "writev", "{q}");
    }
    // The heuristic, and the shipped deny list (by name, and by domain).
    let q = dns_query(&ours, tunnel, "A");
    assert_eq!(q["docker_listener"]["dns"]["suspicious"], true, "{q}");
    assert_eq!(q["docker_listener"]["dns"]["suspicion"], json!(["long-label", "high-entropy"]));
    assert_eq!(evaluate(&rules, q), Some(100_057), "{q}");
    assert_eq!(evaluate(&rules, dns_query(&ours, "pool.minexmr.com", "A")), Some(100_055));
    assert_eq!(evaluate(&rules, dns_query(&ours, "x.evil-c2.example", "A")), Some(100_056));
    // DNS names in any case: the lists' lowercase keys still match; the name as sent is kept.
    let mixed = dns_query(&ours, "Pool.MineXMR.com", "A");
    assert_eq!(mixed["docker_listener"]["dns"]["name"], "pool.minexmr.com", "{mixed}");
    assert_eq!(evaluate(&rules, mixed), Some(100_055));
    assert_eq!(evaluate(&rules, dns_query(&ours, "X.Evil-C2.Example", "A")), Some(100_056));

    // UDP flows: the first unconnected send to each destination, by either ABI; the repeats
    // and the connected socket's send make none.
    for (base, exe) in [(7001u16, "/t/net_send"), (7101, "/t/net_send_32")] {
        // (The responder's answers, to each client's port, are flows too.)
        let flows: Vec<&&Value> = ours
            .iter()
            .filter(|e| {
                e["event"]["action"] == "network-flow"
                    && e["process"]["executable"] == exe
                    && e["destination"]["port"].as_u64().is_some_and(|p| (base..base + 3).contains(&(p as u16)))
            })
            .collect();
        let ports: Vec<u64> = flows.iter().filter_map(|e| e["destination"]["port"].as_u64()).collect();
        assert_eq!(ports, vec![u64::from(base), u64::from(base) + 1], "{flows:#?}");
        let f = flows[0];
        if base == 7001 {
            check_common(f, &name, exe, "success", None);
        } else {
            assert_eq!(f["docker_listener"]["syscall"]["abi"], "ia32", "{f}");
        }
        assert_eq!(f["source"].get("ip"), None, "an unbound socket's address is no source address: {f}");
        assert_eq!(f["destination"]["ip"], "127.0.0.1");
        assert_eq!(f["network"]["transport"], "udp");
        assert_eq!(f["network"]["bytes"], 4);
        assert_eq!(f["docker_listener"]["flow"]["first_send"], true);
        assert_eq!(f["docker_listener"]["syscall"]["name"], "sendto", "{f}");
        assert_eq!(flows[1]["docker_listener"]["syscall"]["name"], "sendmsg");
        assert_eq!(evaluate(&rules, f), Some(100_058), "{f}");
    }
    // Nothing of the host's.
    for e in &all {
        if matches!(e["event"]["action"].as_str(), Some("dns-query" | "network-flow")) {
            assert_eq!(e["container"]["name"], name.as_str(), "a host process's send was reported: {e}");
        }
    }
    assert_eq!(agent.daemon.stop(), 0);
}

/// A runtime of a container's own already running when the agent starts (docker-in-docker's
/// `dockerd` across an agent restart): its bind was never seen, so its listener is found in
/// /proc at the start (its socket file, through the container's root), and a connect to it is
/// said to be the container's own, as when the bind was seen. The host's Docker socket, mounted
/// in, stays the host's.
#[test]
fn a_listener_bound_before_the_agent_started_is_known_by_its_file() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let name = unique("own-listener");
    let _c = Containers(vec![name.clone()]);
    run_detached(
        &name,
        &["-v", &programs_volume(), "-v", "/var/run/docker.sock:/var/run/docker.sock"],
        "mkdir -p /tmp/dind; /t/unix_connect --own /tmp/dind/docker.sock /tmp/go; /t/unix_connect /var/run/docker.sock; \
         sleep 60",
    );
    let bound = (0..100).any(|_| {
        let ok = Command::new("docker").args(["exec", &name, "test", "-S", "/tmp/dind/docker.sock"]).status();
        ok.is_ok_and(|s| s.success()) || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(bound, "the container's listener was never bound");
    let mut agent = start_agent("own-listener", json!({}));
    agent.daemon.wait_for_log("Unix listeners of running containers known", Duration::from_secs(30));
    docker(&["exec", &name, "touch", "/tmp/go"]);
    let connects =
        |e: &[Value]| -> usize { mine(e, &name).iter().filter(|x| x["event"]["action"] == "connect").count() };
    let events = wait_events(&agent, "the two connects", Duration::from_secs(30), |e| connects(e) == 2);
    let m = mine(&events, &name);
    let own = find(&m, "the connect to its own listener", |e| {
        e["event"]["action"] == "connect" && e["destination"]["address"] == "/tmp/dind/docker.sock"
    });
    assert_eq!(own["docker_listener"]["socket"]["peer_container"], name.as_str(), "{own}");
    assert_eq!(own["docker_listener"]["socket"]["peer_same_container"], true, "{own}");
    assert_eq!(evaluate(&rules, own), Some(100_073), "{own}");
    let host = find(&m, "the connect to the host's socket", |e| {
        e["event"]["action"] == "connect" && e["destination"]["address"] == "/var/run/docker.sock"
    });
    assert!(host["docker_listener"]["socket"].get("peer_container").is_none(), "{host}");
    assert_eq!(evaluate(&rules, host), Some(100_033), "{host}");
    assert_eq!(agent.daemon.stop(), 0);
}

/// A connect raced by another thread of its caller, held waiting on a full backlog meanwhile
/// (tests/programs/connect_race.c): its address's family rewritten in memory to netlink's
/// (sockets the agent does not report) before the call's exit read it is still a Unix connect,
/// named by the listener it reached, and said to be rewritten; another socket put under its
/// descriptor during the call is said (`swapped`, nothing read from the other socket) and fires
/// rule 100075; a TCP connect whose destination was rewritten in memory names the kernel's
/// destination, says it was rewritten and fires rule 100076 (100077 were it the cloud metadata
/// service's address, which no test may connect to).
#[test]
fn a_connect_raced_by_another_thread_is_still_seen_and_a_swap_or_rewrite_is_said() {
    e2e();
    let _docker = docker_lock();
    let rules = load_rules();
    let mut agent = start_agent("connect-race", json!({}));
    let name = unique("race");
    let _c = Containers(vec![name.clone()]);
    let done = format!("done-{name}");
    run_detached(
        &name,
        &["-v", &programs_volume()],
        &format!(
            "/t/connect_race family /tmp/family.sock > /tmp/family.out; \
             /t/connect_race swap /tmp/swap.sock > /tmp/swap.out; /t/connect_race inet 4567 > /tmp/inet.out; \
             /bin/echo {done}; sleep 60"
        ),
    );
    let events =
        wait_events(&agent, "the three races", Duration::from_secs(30), |e| !execs_with_arg(e, &done).is_empty());
    for race in ["family", "swap", "inet"] {
        let out = docker(&["exec", &name, "cat", &format!("/tmp/{race}.out")]);
        assert!(out.contains("connect=0 raced=1"), "the premise, {race}: {out}");
    }
    let m = mine(&events, &name);
    let racer: Vec<&Value> = m
        .iter()
        .copied()
        .filter(|e| e["event"]["action"] == "connect" && e["process"]["executable"] == "/t/connect_race")
        .collect();
    // (Each run's first connect fills the backlog, by the listener's own name.)
    let family = find(&racer, "the connect whose address became netlink's", |e| {
        e["docker_listener"]["socket"]["peer_address"] == "/tmp/family.sock"
    });
    assert_eq!(family["network"]["type"], "unix", "the kernel's family: {family}");
    assert_eq!(family["event"]["outcome"], "success", "{family}");
    assert!(family["docker_listener"]["socket"].get("swapped").is_none(), "{family}");
    assert_eq!(family["docker_listener"]["socket"]["address_rewritten"], true, "{family}");
    let swapped =
        find(&racer, "the connect whose socket was swapped", |e| e["docker_listener"]["socket"]["swapped"] == true);
    assert_eq!(swapped["destination"]["address"], "/tmp/swap.sock", "{swapped}");
    assert!(
        swapped["docker_listener"]["socket"].get("peer_address").is_none(),
        "not read from another socket: {swapped}"
    );
    assert_eq!(evaluate(&rules, swapped), Some(100_075), "{swapped}");
    let rewritten = find(&racer, "the TCP connect whose destination was rewritten", |e| {
        e["docker_listener"]["socket"]["address_rewritten"] == true && e["network"]["type"] == "ipv4"
    });
    assert_eq!(rewritten["network"]["transport"], "tcp", "{rewritten}");
    assert_eq!(rewritten["destination"]["ip"], "127.0.0.1", "the kernel's destination: {rewritten}");
    assert_eq!(rewritten["destination"]["port"], 4567, "{rewritten}");
    assert_eq!(rewritten["event"]["outcome"], "success", "{rewritten}");
    assert_eq!(evaluate(&rules, rewritten), Some(100_076), "{rewritten}");
    let mut to_metadata = (*rewritten).clone();
    to_metadata["destination"]["ip"] = json!("169.254.169.254");
    assert_eq!(evaluate(&rules, &to_metadata), Some(100_077), "the same to the metadata service's address");
    assert!(
        racer.iter().all(|e| e["destination"]["ip"] != "10.9.8.7"),
        "no event names the address written over the real one: {racer:#?}"
    );
    let plain = racer
        .iter()
        .filter(|e| {
            let s = &e["docker_listener"]["socket"];
            s.get("swapped").is_none() && s.get("address_rewritten").is_none()
        })
        .count();
    assert_eq!(plain, 4, "the backlogs' connects (two for the TCP listener): {racer:#?}");
    assert_eq!(agent.daemon.stop(), 0);
}
