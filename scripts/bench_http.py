#!/usr/bin/env python3
"""What the HTTP server costs the pipeline (docs/HTTP.md, docs/BENCHMARKS.md).

Runs the release daemon (`sightline run`) on a lossless file source, detecting as fast as it can, in three modes:
  off     no `http:` section
  idle    HTTP on, nobody watching
  viewer  HTTP on, one client reading /sources/walk/stream.mjpeg all along
(HTTP on means every http: default, event snapshots included: the tracker's events get theirs in both modes)
and reports each mode's throughput (detections records per second between the first and the last record, read by a
socket subscriber) as a ratio to `off`, median over interleaved rounds (off, idle, viewer, off, ...). It also reports
the CPU time the daemon used by half a second after the source's end (its threads' /proc/PID/task/*/schedstat):
unlike throughput, that depends little on what else the machine is doing.
Run it on a quiet machine:  python3 scripts/bench_http.py [--rounds 5] [--input .cache/media/vtest.avi]
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request
from http.client import HTTPException

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--input", default=os.path.join(root, ".cache/media/vtest.avi"))
parser.add_argument("--binary", default=os.path.join(root, ".build/release/sightline"))
parser.add_argument("--workers", type=int, default=0)
parser.add_argument("--snapshots", type=int, default=None, help="http.snapshots for idle and viewer (default: the daemon's, 50)")
args = parser.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(mode, work):
    sock = os.path.join(work, "s.sock")
    port = free_port()
    snapshots = "" if args.snapshots is None else f", snapshots: {args.snapshots}"
    http = f'http: {{ listen: "127.0.0.1:{port}"{snapshots} }}\n' if mode != "off" else ""
    config = os.path.join(work, "sightline.yaml")
    with open(config, "w") as f:
        f.write(f'workers: {args.workers}\nheartbeat_seconds: 0\nsocket: {{ path: {sock}, mode: "0600" }}\n{http}'
                f'sources:\n  - {{ name: walk, input: "{args.input}" }}\n')
    daemon = subprocess.Popen([args.binary, "run", "--config", config], stderr=subprocess.DEVNULL)
    try:
        client = socket.socket(socket.AF_UNIX)
        for _ in range(400):
            try:
                client.connect(sock)
                break
            except OSError:
                time.sleep(0.025)
        stop = threading.Event()
        if mode == "viewer":
            def watch():
                while not stop.is_set():
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sources/walk/stream.mjpeg", timeout=5) as r:
                            while not stop.is_set() and r.read(65536):
                                pass
                    except (OSError, HTTPException):  # the daemon stopping mid-picture ends the stream
                        time.sleep(0.05)
            threading.Thread(target=watch, daemon=True).start()
        first = last = None
        count = 0
        for line in client.makefile():
            record = json.loads(line)
            if record["type"] == "detections":
                now = time.monotonic()
                first = first or now
                last = now
                count += 1
            elif record["type"] == "source_down":
                break
        stop.set()
        time.sleep(0.5)  # the last events' snapshots are encoded after the source's end
        cpu = 0.0
        for task in os.listdir(f"/proc/{daemon.pid}/task"):
            try:
                with open(f"/proc/{daemon.pid}/task/{task}/schedstat") as f:
                    cpu += int(f.read().split()[0]) / 1e9
            except OSError:  # a thread that just ended
                pass
        return (count - 1) / (last - first), cpu
    finally:
        daemon.terminate()
        daemon.wait()


results = {"off": [], "idle": [], "viewer": []}
cpu = {"off": [], "idle": [], "viewer": []}
with tempfile.TemporaryDirectory() as work:
    for round in range(args.rounds):
        for mode in results:
            rate, seconds = run(mode, work)
            results[mode].append(rate)
            cpu[mode].append(seconds)
            print(f"round {round + 1} {mode}: {rate:.1f} frames/s, CPU {seconds:.2f} s", file=sys.stderr)
off = statistics.median(results["off"])
for mode, values in results.items():
    ratios = [v / o for v, o in zip(values, results["off"])]
    print(f"{mode:7s} median {statistics.median(values):7.1f} frames/s   ratio to off: median {statistics.median(ratios):.3f}"
          f" (min {min(ratios):.3f}, max {max(ratios):.3f})   CPU median {statistics.median(cpu[mode]):.2f} s,"
          f" more than off by {statistics.median([c - o for c, o in zip(cpu[mode], cpu['off'])]):+.3f} s (median)")
