#!/usr/bin/env python3
"""Regenerates the examples in docs/EVENTS.md from a real run of the daemon.

Run as root from the workspace root after `cargo xtask build` (dockerd running, the test image
made, e.g. by `cargo xtask test`):

    python3 scripts/event_examples.py

It starts one container before the agent (for the start-up inventory), starts
target/release/docker-listener with `--output file:`, runs the documented command, and replaces
the JSON block after each `<!-- example: NAME -->` marker in docs/EVENTS.md with the event the
marker names (pretty-printed). The commands it runs are the ones docs/EVENTS.md shows.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

IMAGE = "docker-listener-test/busybox:latest"
DOC = "docs/EVENTS.md"
HEADER = "1:Wazuh-Docker:"

BEFORE = ["docker", "run", "-d", "--network", "none", "--name", "db-1", "--label", "com.docker.compose.project=shop",
          "--label", "com.docker.compose.service=db", IMAGE, "sh", "-c", "nc -l -p 5432 >/dev/null & exec sleep 600"]
SCRIPT = ("cp /bin/busybox /tmp/apk; /tmp/apk echo add curl;\n    /bin/nope; nc -l -p 8080 & sleep 0.3; "
          "echo hi | nc 127.0.0.1 8080; nc 127.0.0.1 9;\n    nc 169.254.169.254 80; true")
# The exit-reported families: a default container's attempts (refused by seccomp), and one
# with CAP_SYS_ADMIN that enters the host's UTS namespace. The test programs (tests/programs)
# are built into a temporary directory mounted at /t.
TOOLS_SCRIPT = ("echo x > /tmp/m.ko; insmod /tmp/m.ko; /t/bpf_load; sleep 5 & /t/ptrace_poke $!;\n    "
                "unshare -m true; mount -t tmpfs none /mnt;\n    "
                "cp /t/setuid_root /tmp/sr; chmod 4755 /tmp/sr; su -s /tmp/sr nobody;\n    "
                "/t/memfd_exec payload /bin/busybox busybox echo fileless;\n    "
                "/t/net_send respond & sleep 0.3; nslookup pool.minexmr.com 127.0.0.1; /t/net_send flow 7001 1; true")
CAPABLE_SCRIPT = "nsenter -t 1 -u true"
# file-access: the container writes its /etc/shadow at start, waits for the agent to resolve its
# sensitive files, reads it through a relative path, plants an SSH key, and tries to read it as
# nobody (refused).
FILES_SCRIPT = ("echo 'root:*:19000::::::' > /etc/shadow; sleep 1;\n    "
                "cd /etc && cat ../etc//shadow; mkdir -p /root/.ssh && echo 'ssh-ed25519 AAAA' > /root/.ssh/authorized_keys;\n    "
                "chmod 644 shadow; chmod 600 shadow; su -s /bin/sh nobody -c 'cat /etc/shadow' 2>/dev/null; sleep 1")
# open_by_handle_at ("shocker"): a container given CAP_DAC_READ_SEARCH opens the host's
# /etc/shadow by the handle the host's name_to_handle_at gives, through its /etc/hostname (a file
# the host bind-mounts into every container). The program prints nothing of the file here.
HANDLE_SCRIPT = "/t/by_handle open /etc/hostname {handle} >/dev/null"
STORM_SCRIPT = "for i in $(seq 8000); do /bin/true; done"
# A container with a healthcheck every second: its passing checks are summarised when it stops.
HEALTHY = ["docker", "run", "-d", "--network", "none", "--name", "api-1", "--health-cmd", "test -e /tmp/ready",
           "--health-interval", "1s", IMAGE, "sh", "-c", "touch /tmp/ready; exec sleep 600"]
AFTER = ["docker", "run", "--rm", "--network", "none", "--name", "web-1", "--label", "com.docker.compose.project=shop",
         "--label", "com.docker.compose.service=web", IMAGE, "sh", "-c", SCRIPT]


def tools(programs, handle):
    return [
        ["docker", "run", "--rm", "--network", "none", "--name", "tools-1", "-v", f"{programs}:/t:ro", IMAGE, "sh",
         "-c", TOOLS_SCRIPT],
        ["docker", "run", "--rm", "--network", "none", "--name", "tools-2", "--cap-add", "SYS_ADMIN",
         "--security-opt", "seccomp=unconfined", "--uts=host", IMAGE, "sh", "-c", CAPABLE_SCRIPT],
        ["docker", "run", "--rm", "--network", "none", "--name", "files-1", IMAGE, "sh", "-c", FILES_SCRIPT],
        ["docker", "run", "--rm", "--network", "none", "--name", "files-2", "--cap-add", "DAC_READ_SEARCH", "-v",
         f"{programs}:/t:ro", IMAGE, "sh", "-c", HANDLE_SCRIPT.format(handle=handle)],
        # A storm of one identical exec: held back over the container's budget, and folded as
        # repeats (events-held-back, events-repeated).
        ["docker", "run", "--rm", "--network", "none", "--name", "ci-1", IMAGE, "sh", "-c", STORM_SCRIPT],
    ]


def build_programs(out):
    for name in ["bpf_load", "ptrace_poke", "setuid_root", "memfd_exec", "net_send", "by_handle"]:
        subprocess.run(["gcc", "-O2", "-static", "-o", os.path.join(out, name), f"tests/programs/{name}.c"],
                       check=True)


def events(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(HEADER):
                out.append(json.loads(line[len(HEADER):]))
    return out


def pick(evs):
    """The example each marker names."""
    mine = lambda name: [e for e in evs if e.get("container", {}).get("name") == name]
    web, db, t1, t2, f1 = mine("web-1"), mine("db-1"), mine("tools-1"), mine("tools-2"), mine("files-1")
    f2 = mine("files-2")
    api, ci = mine("api-1"), mine("ci-1")
    act = lambda es, a: [e for e in es if e.get("event", {}).get("action") == a]
    args_of = lambda e: e.get("process", {}).get("args", [])
    first = lambda es, what: es[0] if es else sys.exit(f"no example for {what}")
    return {
        "docker-start": first([e for e in evs if e.get("docker", {}).get("Action") == "start"
                               and e["docker"].get("Actor", {}).get("Attributes", {}).get("name") == "web-1"],
                              "docker-start"),
        "exec-init": first([e for e in act(web, "exec") if args_of(e)[:1] == ["sh"]], "exec-init"),
        "exec-child": first([e for e in act(web, "exec") if args_of(e)[:1] == ["/tmp/apk"]], "exec-child"),
        "exec-failed": first([e for e in act(web, "exec") if e["event"]["outcome"] == "failure"], "exec-failed"),
        "bind": first(act(web, "bind"), "bind"),
        "listen": first(act(web, "listen"), "listen"),
        "connect": first([e for e in act(web, "connect") if e.get("destination", {}).get("port") == 8080], "connect"),
        "accept": first(act(web, "accept"), "accept"),
        "connect-refused": first([e for e in act(web, "connect") if e.get("destination", {}).get("port") == 9],
                                 "connect-refused"),
        "connect-metadata": first([e for e in act(web, "connect")
                                   if e.get("destination", {}).get("ip") == "169.254.169.254"], "connect-metadata"),
        "process-running": first([e for e in act(db, "process-running") if args_of(e)[:1] == ["sleep"]],
                                 "process-running"),
        "socket-listening": first(act(db, "socket-listening"), "socket-listening"),
        "module-load": first([e for e in act(t1, "module-load")
                              if e["docker_listener"]["syscall"]["name"] == "finit_module"], "module-load"),
        "bpf-program-load": first(act(t1, "bpf-program-load"), "bpf-program-load"),
        "ptrace": first([e for e in act(t1, "ptrace")
                         if e["docker_listener"]["ptrace"].get("request") == "PTRACE_ATTACH"], "ptrace"),
        "unshare": first(act(t1, "unshare"), "unshare"),
        "mount": first(act(t1, "mount"), "mount"),
        "setns": first(act(t2, "setns"), "setns"),
        "dns-query": first([e for e in act(t1, "dns-query") if e["dns"]["question"].get("type") == "A"], "dns-query"),
        "network-flow": first([e for e in act(t1, "network-flow")
                               if e.get("destination", {}).get("port") == 7001], "network-flow"),
        "exec-fileless": first([e for e in act(t1, "exec") if e.get("process", {}).get("executable") == "memfd:payload"],
                               "exec-fileless"),
        "exec-setuid": first([e for e in act(t1, "exec") if e.get("process", {}).get("executable") == "/tmp/sr"],
                             "exec-setuid"),
        "setuid": first([e for e in act(t1, "setuid") if e["docker_listener"]["privilege"].get("raised")], "setuid"),
        "file-read": first([e for e in act(f1, "file-read") if e.get("file", {}).get("path") == "/etc/shadow"
                            and e["event"]["outcome"] == "success"],
                           "file-read"),
        "file-read-refused": first([e for e in act(f1, "file-read") if e["event"]["outcome"] == "failure"],
                                   "file-read-refused"),
        "file-create": first(act(f1, "file-create"), "file-create"),
        "file-chmod": first(act(f1, "file-chmod"), "file-chmod"),
        "file-open-by-handle": first(act(f2, "file-open-by-handle"), "file-open-by-handle"),
        "healthcheck-summary": first(act(api, "healthcheck-summary"), "healthcheck-summary"),
        "events-held-back": first(act(ci, "events-held-back"), "events-held-back"),
        "events-repeated": first([e for e in act(ci, "events-repeated") if args_of(e)[:1] == ["/bin/true"]],
                                 "events-repeated"),
    }


def rewrite(doc, examples):
    def repl(m):
        name = m.group(1)
        if name not in examples:
            sys.exit(f"{DOC}: unknown example {name}")
        body = json.dumps(examples[name], indent=2, ensure_ascii=False)
        if name == "docker-start":
            body = HEADER + json.dumps(examples[name], separators=(",", ":"), ensure_ascii=False)
            return f"<!-- example: {name} -->\n```\n{body}\n```"
        return f"<!-- example: {name} -->\n```json\n{body}\n```"
    new, n = re.subn(r"<!-- example: ([a-z-]+) -->\n```[a-z]*\n(?:[^`][^\n]*\n|\n)*```", repl, doc)
    if n == 0:
        sys.exit(f"{DOC}: no example markers")
    return new


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (the daemon loads eBPF programs)")
    subprocess.run(["docker", "rm", "-f", "db-1", "web-1", "tools-1", "tools-2", "files-1", "files-2", "ci-1",
                    "api-1"],
                   capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        programs = os.path.join(tmp, "t")
        os.mkdir(programs)
        build_programs(programs)
        handle = subprocess.run([os.path.join(programs, "by_handle"), "name", "/etc/shadow"], check=True,
                                capture_output=True, text=True).stdout.strip()
        out = os.path.join(tmp, "out.ndjson")
        subprocess.run(BEFORE, check=True, capture_output=True)
        agent = None
        try:
            # The listener must be up before the agent looks.
            subprocess.run(["docker", "exec", "db-1", "sh", "-c",
                            "for i in $(seq 100); do netstat -ltn | grep -q ':5432 ' && exit 0; sleep 0.05; done; exit 1"],
                           check=True)
            log = open(os.path.join(tmp, "log"), "w")
            agent = subprocess.Popen(["target/release/docker-listener", "--output", f"file:{out}", "--state-dir",
                                      os.path.join(tmp, "state")], stderr=log)
            deadline = time.time() + 30
            while "container inventory loaded" not in open(os.path.join(tmp, "log")).read():
                if time.time() > deadline or agent.poll() is not None:
                    sys.exit("the agent did not start: " + open(os.path.join(tmp, "log")).read())
                time.sleep(0.1)
            subprocess.run(HEALTHY, check=True, capture_output=True)
            subprocess.run(AFTER, check=True, capture_output=True)
            for cmd in tools(programs, handle):
                subprocess.run(cmd, check=True, capture_output=True)
            time.sleep(2)
            subprocess.run(["docker", "rm", "-f", "api-1"], check=True, capture_output=True)
            time.sleep(1)
            agent.terminate()
            agent.wait(timeout=15)
        finally:
            if agent is not None and agent.poll() is None:
                agent.kill()
            subprocess.run(["docker", "rm", "-f", "db-1"], capture_output=True)
        examples = pick(events(out))
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(rewrite(doc, examples))
    print(f"{DOC}: {len(examples)} examples regenerated")


if __name__ == "__main__":
    main()
