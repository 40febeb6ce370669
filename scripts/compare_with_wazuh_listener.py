#!/usr/bin/env python3
"""Wazuh's Python docker-listener and docker-listener, side by side on the same Docker events.

A manual check (CI cannot fetch Wazuh's code, and none of it is in this repository). As root,
with dockerd running and the test image made (`cargo xtask test` does both), and a release build:

    python3 -m venv /tmp/pyvenv && /tmp/pyvenv/bin/pip install docker
    # DockerListener.py from wazuh/wazuh, wodles/docker-listener/ (the version that reads
    # /etc/ossec-init.conf and sends to <dir>/queue/ossec/queue)
    python3 scripts/compare_with_wazuh_listener.py /path/to/DockerListener.py [rounds]

Both listeners run at once, each with its own datagram socket standing in for Wazuh's queue;
the script makes container (create/start/exec/pause/unpause/rename/stop/rm, a failing run),
network (--internal), volume and image (tag/untag) events, with labels holding non-ASCII,
quotes, escapes and a 3,000-byte value, then compares the `docker` object of every datagram,
event for event, as parsed JSON values. Exit 0 only if both got the same events with identical
values. It writes /etc/ossec-init.conf for the run (the Python listener reads its directory
from there) and restores what was there before.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = os.path.join(ROOT, "target", "release", "docker-listener")
IMAGE = "docker-listener-test/busybox:latest"
PYTHON = os.environ.get("DL_COMPARE_PYTHON", "/tmp/pyvenv/bin/python")
WZ, DL = "/tmp/dl-compare-wazuh", "/tmp/dl-compare-ours"
HEADER = b"1:Wazuh-Docker:"
INIT_CONF = "/etc/ossec-init.conf"


def sink(path, out):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)

    def run():
        while True:
            out.append(s.recv(1 << 20))

    threading.Thread(target=run, daemon=True).start()


def sh(*args, check=True):
    subprocess.run(args, check=check, stdout=subprocess.DEVNULL)


def make_events(rounds):
    for i in range(rounds):
        n = f"dl-compare-{i}"
        sh("docker", "create", "--name", n, "--network", "none",
           "--label", 'note=héllo "quoted" <&> \\ tab\t日本', "--label", "big=" + "x" * 3000, IMAGE, "sleep", "30")
        sh("docker", "start", n)
        sh("docker", "exec", n, "true")
        sh("docker", "exec", n, "sh", "-c", "echo a && echo b")
        sh("docker", "pause", n)
        sh("docker", "unpause", n)
        sh("docker", "rename", n, n + "-renamed")
        sh("docker", "stop", "-t", "0", n + "-renamed")
        sh("docker", "rm", n + "-renamed")
        sh("docker", "run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 3", check=False)
        sh("docker", "network", "create", "--internal", "--label", "k=v", f"dl-compare-net-{i}")
        sh("docker", "network", "rm", f"dl-compare-net-{i}")
        sh("docker", "volume", "create", "--label", "k=v", f"dl-compare-vol-{i}")
        sh("docker", "volume", "rm", f"dl-compare-vol-{i}")
        sh("docker", "tag", IMAGE, f"dl-compare/tag:{i}")
        sh("docker", "rmi", f"dl-compare/tag:{i}")


def docker_events(frames):
    events, other = [], 0
    for f in frames:
        if not f.startswith(HEADER):
            raise SystemExit(f"a datagram without the Wazuh header: {f[:60]!r}")
        m = json.loads(f[len(HEADER):])
        if m.get("integration") != "docker":
            raise SystemExit(f"a datagram without integration=docker: {f[:80]!r}")
        d = m.get("docker")
        if isinstance(d, dict) and "Wodle event" not in d:
            events.append(d)
        else:
            other += 1
    return events, other


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    listener, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if not os.path.exists(DAEMON):
        raise SystemExit(f"{DAEMON} is missing: run `cargo xtask build` first")
    os.makedirs(f"{WZ}/queue/ossec", exist_ok=True)
    os.makedirs(DL, exist_ok=True)
    previous = open(INIT_CONF).read() if os.path.exists(INIT_CONF) else None
    py, ours = [], []
    sink(f"{WZ}/queue/ossec/queue", py)
    sink(f"{DL}/queue", ours)
    with open(INIT_CONF, "w") as f:
        f.write(f'DIRECTORY="{WZ}"\n')
    try:
        p_py = subprocess.Popen([PYTHON, listener], stdout=subprocess.DEVNULL)
        p_dl = subprocess.Popen([DAEMON, "--no-ebpf", "--queue", f"{DL}/queue", "--state-dir", f"{DL}/state"],
                                stderr=open(f"{DL}/log", "w"))
        time.sleep(4)
        make_events(rounds)
        time.sleep(3)
        p_py.kill()
        p_dl.terminate()
        p_dl.wait()
        time.sleep(0.5)
    finally:
        if previous is None:
            os.unlink(INIT_CONF)
        else:
            with open(INIT_CONF, "w") as f:
                f.write(previous)
    a, a_other = docker_events(py)
    b, b_other = docker_events(ours)
    print(f"Wazuh's listener: {len(a)} Docker events (+{a_other} lifecycle messages); "
          f"docker-listener: {len(b)} Docker events (+{b_other} others)")
    kinds = sorted({(e.get("Type"), e.get("Action")) for e in b})
    print(f"{len(kinds)} kinds of event: {', '.join(f'{t}/{a}' for t, a in kinds)}")
    same = sum(1 for x, y in zip(a, b) if x == y)
    print(f"identical JSON values, event for event: {same} of {max(len(a), len(b))}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            print(f"first difference, event {i}:\n  Wazuh's: {json.dumps(x)[:400]}\n  ours:    {json.dumps(y)[:400]}")
            break
    ok = len(a) == len(b) == same and same > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
