#!/usr/bin/env python3
"""Cost of one metrics scrape, two builds side by side (BENCHMARKS.md, "Metrics endpoint").

usage (as root, dockerd running): scripts/metrics_scrape_bench.py OLD_BINARY NEW_BINARY

Each build runs the daemon (Docker events only, output to a file, metrics on a loopback port)
and answers 2,000 sequential scrapes over a fresh TCP connection each; the agent's CPU time per
scrape (/proc/PID/stat) and the client's median latency are printed, over 5 alternating rounds.
"""
import os, socket, subprocess, sys, time, json, tempfile, statistics
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def run(binary, port, n=2000):
    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "c.json")
    json.dump({"docker-listener": {"metrics": f"127.0.0.1:{port}"}}, open(cfg, "w"))
    p = subprocess.Popen([binary, "--config", cfg, "--no-ebpf", "--output", f"file:{d}/out", "--state-dir", f"{d}/state"], stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    c0 = cpu(p.pid); t0 = time.perf_counter(); lat = []
    for _ in range(n):
        a = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while True:
            b = s.recv(65536)
            if not b: break
            buf += b
        s.close()
        assert b"frames_out_total" in buf, buf[:200]
        lat.append(time.perf_counter() - a)
    c1 = cpu(p.pid)
    p.terminate(); p.wait()
    return (c1 - c0) / n * 1e6, statistics.median(lat) * 1e6
res = {"old": [], "new": []}
for r in range(5):
    for name, b in (("old", sys.argv[1]), ("new", sys.argv[2])):
        res[name].append(run(b, 19700 + r * 2 + (name == "new")))
for name in res:
    cpus = sorted(x[0] for x in res[name]); lats = sorted(x[1] for x in res[name])
    print(f"{name}: agent CPU per scrape median {statistics.median(cpus):.0f} us (min {cpus[0]:.0f} max {cpus[-1]:.0f}); latency median {statistics.median(lats):.0f} us (min {lats[0]:.0f} max {lats[-1]:.0f})")
