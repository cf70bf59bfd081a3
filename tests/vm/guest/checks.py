#!/usr/bin/env python3
"""The VM test's guest half: runs under the guest's systemd (sightline-vmtest.service) against the installed
Sightline, with vivid as the camera, and writes one PASS/FAIL line per check to /results/results.txt.
Time limits scale with the inference time measured in the guest (seconds per frame under TCG).

Also `checks.py relay SOCKET`: connect to the socket and copy its lines to stdout (run as other users)."""
import datetime
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

RESULTS = "/results"
SOCKET = "/run/sightline/sightline.sock"
CONFIG = "/etc/sightline/sightline.yaml"
DROPIN = "/etc/systemd/system/sightline.service.d/vmtest.conf"
HERE = os.path.dirname(os.path.abspath(__file__))
VIEWER = "viewer"        # in the socket's group (video)
OUTSIDER = "outsider"    # in no group of the socket's


def relay(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except OSError as e:
        print(json.dumps({"type": "connect_error", "error": e.strerror}), flush=True)
        return 1
    for line in s.makefile("r", encoding="utf-8"):
        sys.stdout.write(line)
        sys.stdout.flush()
    return 0


if len(sys.argv) == 3 and sys.argv[1] == "relay":
    sys.exit(relay(sys.argv[2]))

results = open(f"{RESULTS}/results.txt", "a", buffering=1)
guest_log = open(f"{RESULTS}/guest.log", "a", buffering=1)
started = time.monotonic()
failures = 0


def say(message):
    line = f"[{time.monotonic() - started:7.1f}s] {message}"
    print(line, flush=True)
    guest_log.write(line + "\n")


subscribers = []


def check(name, ok, detail=""):
    global failures
    line = f"{'PASS' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else "")
    results.write(line + "\n")
    say(line)
    if not ok:
        failures += 1
        diagnose()
    return ok


def require(name, ok, detail=""):
    """A check the later ones build on: without it they would only time out one by one."""
    if not check(name, ok, detail):
        raise RuntimeError(f"cannot go on without: {name}")


def diagnose():
    """What the daemon and the open subscriptions said lately, for the log."""
    tail = subprocess.run("journalctl -u sightline.service -n 30 --no-pager -o short-monotonic", shell=True,
                          capture_output=True, text=True).stdout
    guest_log.write("--- sightline journal, last 30 lines:\n" + tail)
    for subscriber in subscribers:
        if subscriber.process.poll() is None:
            for r in subscriber.snapshot()[-8:]:
                guest_log.write(f"--- record: {json.dumps({k: v for k, v in r.items() if k != 'detections'})}\n")


def sh(command, timeout=300):
    try:
        r = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"$ {command}: timed out after {timeout}s")
        return subprocess.CompletedProcess(command, 124, "", "timeout")
    say(f"$ {command} -> {r.returncode}" + (f": {(r.stdout + r.stderr).strip()[:400]}" if r.returncode else ""))
    return r


def show(prop, unit="sightline.service"):
    return subprocess.run(["systemctl", "show", "-P", prop, unit], capture_output=True, text=True).stdout.strip()


def wait_until(predicate, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


class Subscriber:
    """A subscriber (as `user`, or root) whose records are collected, each with its arrival time."""

    def __init__(self, user=None):
        command = [sys.executable, os.path.abspath(__file__), "relay", SOCKET]
        if user:
            command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] + command
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.records = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        subscribers.append(self)

    def _read(self):
        for line in self.process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"type": "unparsable", "line": line}
            record["_at"] = time.monotonic()
            with self.lock:
                self.records.append(record)

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def wait_for(self, predicate, timeout, since=0.0):
        """The first record arriving at or after `since` for which predicate holds, or None."""
        def find():
            return next((r for r in self.snapshot() if r["_at"] >= since and predicate(r)), None)
        return wait_until(find, timeout)

    def close(self):
        self.process.kill()
        self.process.wait()


def is_type(kind, source="camera0"):
    return lambda r: r.get("type") == kind and (kind in ("hello", "connect_error") or r.get("source") == source)


def detections(r):
    return r.get("type") == "detections" and r.get("source") == "camera0"


def write_config(fps_limit, heartbeat=10, input_device="/dev/video0", http=None):
    with open(CONFIG, "w") as f:
        f.write(f"""# Written by the VM test.
threshold: 0.5
workers: 2
socket:
  path: {SOCKET}
  mode: "0660"
  group: video
heartbeat_seconds: {heartbeat}
sources:
  - name: camera0
    input: {input_device}
    policy: latest
    fps_limit: {fps_limit}
""" + (f"http: {http}\n" if http else ""))


def http_get(path, timeout):
    """(status, body) of a GET on sightline-http.socket's address; status 0 if nothing answered."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:8970{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def write_dropin(watchdog, stop_timeout):
    os.makedirs(os.path.dirname(DROPIN), exist_ok=True)
    with open(DROPIN, "w") as f:
        f.write(f"# The VM test: one inference under TCG takes seconds, so the limits scale with it.\n"
                f"[Service]\nWatchdogSec={watchdog}\nTimeoutStopSec={stop_timeout}\n")
    sh("systemctl daemon-reload")


def journal(unit="sightline.service", since=None):
    command = ["journalctl", "-u", unit, "-o", "json", "--no-pager"]
    if since:
        command += ["--since", since]
    out = subprocess.run(command, capture_output=True, text=True).stdout
    entries = []
    for line in out.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            pass
    return entries


def main_pid():
    return int(show("MainPID") or 0)


def video_node(name):
    """/dev/videoN of the vivid node whose sysfs name ends in `name` (vid-cap, vid-out)."""
    for node in sorted(os.listdir("/sys/class/video4linux")):
        try:
            with open(f"/sys/class/video4linux/{node}/name") as f:
                if f.read().strip().endswith(name):
                    return f"/dev/{node}"
        except OSError:
            pass
    return None


def rate_from(records):
    """Frames per second of the driver, from the records' frame index and driver timestamps."""
    timed = [r for r in records if detections(r) and r.get("pts") is not None]
    if len(timed) < 2 or timed[-1]["pts"] <= timed[0]["pts"]:
        return None
    return (timed[-1]["frame"] - timed[0]["frame"]) / (timed[-1]["pts"] - timed[0]["pts"])


def status_fps(text):
    """camera0's records per second in a STATUS= text, or -1 if it shows none."""
    found = re.search(r"camera0 ([\d.]+) fps", text)
    return float(found.group(1)) if found else -1


def stamp(record):
    """A record's `time` (RFC 3339, UTC) in seconds."""
    return datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def negotiated(device):
    fmt = sh(f"v4l2-ctl -d {device} --get-fmt-video").stdout
    parm = sh(f"v4l2-ctl -d {device} --get-parm").stdout
    size = re.search(r"Width/Height\s*:\s*(\d+)/(\d+)", fmt)
    pixel = re.search(r"Pixel Format\s*:\s*'(\w+)'", fmt)
    fps = re.search(r"Frames per second:\s*([\d.]+)", parm)
    return ((int(size.group(1)), int(size.group(2))) if size else None, pixel.group(1) if pixel else None,
            float(fps.group(1)) if fps else None)


def iou(a, b):
    ix = max(0.0, min(a["xmax"], b["xmax"]) - max(a["xmin"], b["xmin"]))
    iy = max(0.0, min(a["ymax"], b["ymax"]) - max(a["ymin"], b["ymin"]))
    inter = ix * iy
    union = ((a["xmax"] - a["xmin"]) * (a["ymax"] - a["ymin"]) + (b["xmax"] - b["xmin"]) * (b["ymax"] - b["ymin"])
             - inter)
    return inter / union if union > 0 else 0.0


def timed(label, function):
    t = time.monotonic()
    value = function()
    say(f"{label} took {time.monotonic() - t:.1f}s")
    return value


def run():
    say("guest: " + sh("uname -r").stdout.strip() + ", " + sh("nproc").stdout.strip() + " CPUs")
    sh(f"useradd --no-create-home --groups video {VIEWER}")
    sh(f"useradd --no-create-home {OUTSIDER}")

    # --- The installed files ---------------------------------------------------------------------------------------
    user = sh("getent passwd sightline").stdout.strip()
    check("make install created the system user sightline (sysusers.d)", user.startswith("sightline:"), user)
    r = sh(f"cd /tmp && sightline check --config {CONFIG}")
    check("installed binary run by name (cd /tmp; sightline check) finds its installed model",
          r.returncode == 0, (r.stdout + r.stderr).strip())

    # --- Start without the camera ----------------------------------------------------------------------------------
    write_config(fps_limit=1)
    write_dropin(watchdog=600, stop_timeout=300)   # until the inference time is measured
    t = time.monotonic()
    r = sh("systemctl start sightline.service", timeout=900)
    load_seconds = time.monotonic() - t
    require("READY: systemctl start returns with the service active (Type=notify, READY=1)",
          r.returncode == 0 and show("ActiveState") == "active" and show("SubState") == "running",
          f"start took {load_seconds:.1f}s")
    root = Subscriber()
    hello = root.wait_for(is_type("hello"), 30)
    down = root.wait_for(is_type("source_down"), 30)
    # STATUS= is refreshed every 2 s, so it may trail the source_down record by that much.
    status = wait_until(lambda: (lambda text: text if "camera0 down" in text else "")(show("StatusText")), 10) or show("StatusText")
    check("start without the camera: running, source_down, STATUS says down",
          show("ActiveState") == "active" and down is not None and "camera0 down" in status,
          f"reason {down and down.get('reason')!r}; STATUS={status!r}")

    # --- Camera plugged in: records from the real driver ------------------------------------------------------------
    plugged = time.monotonic()
    sh("modprobe vivid n_devs=1 node_types=0x101")
    capture = wait_until(lambda: video_node("vid-cap"), 30)
    say(f"vivid capture node {capture}, output node {video_node('vid-out')}; "
        + sh(f"stat -c '%A %G' {capture}").stdout.strip() + "; "
        + sh("grep video4linux /proc/devices").stdout.strip())
    up = root.wait_for(is_type("source_up"), 90, since=plugged)
    first = root.wait_for(detections, 300, since=plugged)
    require("camera plugged in later: source_up, then records", up is not None and first is not None,
          f"source_up after {up and up['_at'] - plugged:.1f}s" if up else "no source_up")
    # Enough records to measure the inference time the guest's limits scale with.
    wait_until(lambda: len([r for r in root.snapshot() if detections(r)]) >= 4, 240)
    records = [r for r in root.snapshot() if detections(r)]
    infer = max([r["infer_ms"] for r in records] or [20000]) / 1000
    say(f"inference: {[round(r['infer_ms'] / 1000, 1) for r in records]} s, model load and start {load_seconds:.1f}s")
    size, pixel, fps = negotiated(capture or "/dev/video0")
    rate = rate_from(records)
    check("records from the real driver: size and frame rate as negotiated",
          bool(records) and all((r["width"], r["height"]) == size for r in records) and fps is not None
          and rate is not None and 0.5 * fps <= rate <= 1.1 * fps,
          f"driver {size} {pixel} at {fps} fps; records {sorted({(r['width'], r['height']) for r in records})}, "
          f"frames arriving at {rate and round(rate, 2)} fps by driver timestamps")

    # --- Who runs it --------------------------------------------------------------------------------------------------
    pid = main_pid()
    proc_status = open(f"/proc/{pid}/status").read() if pid else ""
    uid = re.search(r"^Uid:\s+(\d+)", proc_status, re.M)
    groups = re.search(r"^Groups:\s*(.*)$", proc_status, re.M)
    video_gid = sh("getent group video").stdout.split(":")[2] if sh("getent group video").stdout else "?"
    sightline_uid = user.split(":")[2] if user else "?"
    fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")] if pid else []
    check("service user: sightline, in group video, holding the camera open",
          uid is not None and uid.group(1) == sightline_uid and groups is not None
          and video_gid in groups.group(1).split() and (capture or "/dev/video0") in fds,
          f"uid {uid and uid.group(1)} (sightline {sightline_uid}), groups {groups and groups.group(1)}, "
          f"{capture} {'open' if (capture or '/dev/video0') in fds else 'not open'}; "
          + sh(f"stat -c '%A %G' {capture or '/dev/video0'}").stdout.strip())
    run_dir = sh("stat -c '%F %U %a' /run/sightline").stdout.strip()
    sock = sh(f"stat -c '%F %G %a' {SOCKET}").stdout.strip()
    say(f"/run/sightline: {run_dir}; socket: {sock}")

    viewer = Subscriber(VIEWER)
    outsider = Subscriber(OUTSIDER)
    viewer_hello = viewer.wait_for(is_type("hello"), 30)
    viewer_record = viewer.wait_for(detections, 120)
    refused = outsider.wait_for(is_type("connect_error"), 30)
    check("non-root subscriber (group video) through the service's own socket",
          viewer_hello is not None and viewer_record is not None and refused is not None,
          f"viewer: hello {'yes' if viewer_hello else 'no'}, records {'yes' if viewer_record else 'no'}; "
          f"outsider: {refused and refused['error']}")
    viewer.close()
    outsider.close()

    entries = journal()
    priorities = {}
    for e in entries:
        message = e.get("MESSAGE", "")
        if isinstance(message, str):
            for key in ("source down", "source up", "listening"):
                if message.startswith(key):
                    priorities.setdefault(key, set()).add(e.get("PRIORITY"))
    check("journald priorities: source down at warning (4), source up and listening at info (6)",
          priorities.get("source down") == {"4"} and priorities.get("source up") == {"6"}
          and priorities.get("listening") == {"6"}, str({k: sorted(v) for k, v in priorities.items()}))
    nagging = [e.get("MESSAGE") for e in entries if "thread priority" in str(e.get("MESSAGE", ""))]
    check("no 'Failed to set thread priority' from libdispatch", not nagging, f"{len(nagging)} message(s)")

    r = sh("systemd-analyze security --no-pager sightline.service")
    exposure = re.search(r"Overall exposure level for sightline.service:\s*([\d.]+)", r.stdout)
    check("systemd-analyze security exposure at most 2.0", exposure is not None and float(exposure.group(1)) <= 2.0,
          f"exposure {exposure and exposure.group(1)}")

    # --- Limits scaled to this machine's inference time ----------------------------------------------------------------
    watchdog = max(30, math.ceil(3 * infer) + 10)
    stop_timeout = max(30, math.ceil(3 * infer) + 10)
    write_dropin(watchdog, stop_timeout)
    say(f"WatchdogSec={watchdog} TimeoutStopSec={stop_timeout} (inference up to {infer:.1f}s)")
    root.close()
    restart_at = time.monotonic()
    r = sh("systemctl restart sightline.service", timeout=900)
    root = Subscriber()
    first = root.wait_for(detections, 300, since=restart_at)
    pid = main_pid()
    restarts = show("NRestarts")
    # Longer than WatchdogSec: a service that stopped pinging would be restarted within the window.
    window = max(120, watchdog + 15)
    pings = set()
    samples = []   # (when, STATUS=) through the window
    observed = time.monotonic()
    while time.monotonic() - observed < window:
        pings.add(show("WatchdogTimestampMonotonic"))
        status = show("StatusText")
        samples.append((time.monotonic(), status))
        time.sleep(5)
    check(f"watchdog over {window} s (at least 2 minutes and WatchdogSec={watchdog}): pings, no restart",
          first is not None and main_pid() == pid and show("NRestarts") == restarts and len(pings) >= 2,
          f"{len(pings) - 1} new watchdog timestamp(s), NRestarts {show('NRestarts')}")
    # The rate covers the last 30 s. Under TCG one inference can take longer than that, so a window with no record
    # in it honestly reads 0.0; one with a record never may. A STATUS= sampled 10 to 25 s after a record arrived was
    # computed after it was counted (STATUS= is refreshed every 2 s; 10 s leaves a slow guest room) and within 30 s.
    seen = root.snapshot()
    arrivals = [r["_at"] for r in seen if detections(r)]
    due = [(when, text) for when, text in samples if any(when - 25 <= at <= when - 10 for at in arrivals)]
    check("STATUS: records per second over an honest window (above 0 whenever a record arrived within it)",
          bool(due) and all(status_fps(text) > 0 for _, text in due),
          f"{len(due)} of {len(samples)} samples 10-25 s after a record: {sorted({text for _, text in due})}")
    # Heartbeats go out only after heartbeat_seconds without a record; one made 1 to 25 s after the last record
    # (by the daemon's own clock) has that record in its window.
    last_record, beats = None, []
    for r in seen:
        if detections(r):
            last_record = r
        elif r.get("type") == "heartbeat" and r.get("state") == "up" and last_record is not None:
            if 1 <= stamp(r) - stamp(last_record) <= 25:
                beats.append(r)
    if beats:
        check("heartbeat fps honest too (above 0 with a record in its window)", all(b.get("fps", 0) > 0 for b in beats),
              str([b.get("fps") for b in beats]))

    # --- A real watchdog restart ---------------------------------------------------------------------------------------
    root.close()
    stopped_pid = main_pid()
    before = int(show("NRestarts") or 0)
    stopped_at = time.monotonic()
    os.kill(stopped_pid, 19)  # SIGSTOP: the pipeline wedges, the pings stop
    restarted = wait_until(lambda: int(show("NRestarts") or 0) > before and show("ActiveState") == "active"
                           and main_pid() not in (0, stopped_pid), watchdog + 600, step=2)
    timeouts = [e for e in journal() if "Watchdog timeout" in str(e.get("MESSAGE", ""))]
    check("real watchdog restart after SIGSTOP", bool(restarted) and bool(timeouts),
          f"restarted after {time.monotonic() - stopped_at:.0f}s; journal: {timeouts[-1]['MESSAGE'] if timeouts else 'no timeout'}")

    # --- A known image through vivid's output loop ---------------------------------------------------------------------
    sh("systemctl stop sightline.service", timeout=stop_timeout + 30)
    output = video_node("vid-out") or "/dev/video1"
    capture = video_node("vid-cap") or "/dev/video0"
    sh(f"v4l2-ctl -d {capture} --set-input 3")        # HDMI in
    sh(f"v4l2-ctl -d {output} --set-output 1")        # HDMI out
    timings = sh(f"v4l2-ctl -d {capture} --list-dv-timings").stdout
    index = re.search(r"Index: (\d+)\n\s*Active width: 640\n\s*Active height: 480", timings)
    index = index.group(1) if index else "0"
    sh(f"v4l2-ctl -d {capture} --set-dv-bt-timings index={index}")
    sh(f"v4l2-ctl -d {output} --set-dv-bt-timings index={index}")
    # Looped frames carry the output's colorimetry: say what the host's ffmpeg made (BT.601, limited range).
    sh(f"v4l2-ctl -d {output} --set-fmt-video-out width=640,height=480,pixelformat=YUYV,"
       "colorspace=smpte170m,xfer=709,ycbcr=601,quantization=lim-range")
    sh(f"v4l2-ctl -d {capture} -c loop_video=1")
    sh(f"v4l2-ctl -d {capture} -c osd_text_mode=2")   # vivid writes its status text over the frames otherwise
    looper = subprocess.Popen(["v4l2-ctl", "-d", output, "--stream-out-mmap=3", f"--stream-from={HERE}/frame.yuyv",
                               "--stream-loop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    write_config(fps_limit=2, input_device=capture)
    loop_at = time.monotonic()
    sh("systemctl start sightline.service", timeout=900)
    root = Subscriber()
    looped = root.wait_for(lambda r: detections(r) and r["seq"] >= 1, 300, since=loop_at)
    expected = [d for d in json.load(open(f"{HERE}/expected.json"))["detections"] if d["score"] >= 0.5]
    got = [d for d in (looped or {}).get("detections", []) if d["score"] >= 0.5]
    matched = len(got) == len(expected) and all(
        any(g["label"] == e["label"] and iou(g["box"], e["box"]) >= 0.8 and abs(g["score"] - e["score"]) <= 0.1
            for g in got) for e in expected)
    size, pixel, fps = negotiated(capture)
    say("looped capture format: " + " ".join(sh(f"v4l2-ctl -d {capture} --get-fmt-video").stdout.split()))
    check("known image through vivid's output loop gives the expected detections",
          looped is not None and bool(expected) and matched,
          f"expected {[(e['label'], round(e['score'], 2)) for e in expected]}, "
          f"got {[(g['label'], round(g['score'], 2)) for g in got]}; driver {size} {pixel} at {fps} fps")

    # --- Reload without a source change --------------------------------------------------------------------------------
    wait_until(lambda: len([r for r in root.snapshot() if detections(r)]) >= 3, 120)
    pid = main_pid()
    write_config(fps_limit=2, heartbeat=11, input_device=capture)
    reload_at = time.monotonic()
    sh("systemctl reload sightline.service")
    time.sleep(max(20, 3 * infer))
    after = [r for r in root.snapshot() if r["_at"] >= reload_at]
    seqs = [r["seq"] for r in root.snapshot() if detections(r)]
    check("reload without a source change: same process, no source_down/up, records go on",
          main_pid() == pid and show("ActiveState") == "active"
          and not [r for r in after if r.get("type") in ("source_down", "source_up")]
          and any(detections(r) for r in after) and seqs == list(range(seqs[0], seqs[0] + len(seqs))),
          f"{len([r for r in after if detections(r)])} records after the reload, seq {seqs[0]}..{seqs[-1]}")

    # --- Reload with a source change: ordering -------------------------------------------------------------------------
    wait_until(lambda: any(detections(r) for r in root.snapshot() if r["_at"] >= reload_at), 120)
    write_config(fps_limit=1, heartbeat=11, input_device=capture)
    reload_at = time.monotonic()
    sh("systemctl reload sightline.service")
    up = root.wait_for(is_type("source_up"), 120 + 3 * infer, since=reload_at)
    root.wait_for(detections, 120 + 3 * infer, since=(up or {"_at": reload_at})["_at"])
    after = [r for r in root.snapshot() if r["_at"] >= reload_at and r.get("source") == "camera0"
             and r.get("type") in ("detections", "source_down", "source_up")]
    kinds = [r["type"] for r in after]
    old_records = kinds.index("source_down") if "source_down" in kinds else None
    ordered = (old_records is not None and "source_up" in kinds and kinds.count("source_down") == 1
               and kinds.index("source_up") == old_records + 1
               and all(k == "detections" for k in kinds[:old_records])
               and (len(after) == old_records + 2 or after[old_records + 2].get("seq") == 0))
    check("reload with a source change: old records, then source_down, then source_up, then seq from 0",
          ordered and main_pid() == pid,
          f"{old_records} in-flight record(s) of the old source after the reload; "
          + " ".join(f"{r['type']}{'#' + str(r['seq']) if 'seq' in r else ''}" for r in after[:8])
          + (f"; reason {after[old_records].get('reason')!r}" if old_records is not None else ""))

    # --- Unplug and replug ---------------------------------------------------------------------------------------------
    looper.kill()
    looper.wait()
    unplug_at = time.monotonic()
    sh("echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind")
    down = root.wait_for(is_type("source_down"), 60 + 3 * infer, since=unplug_at)
    replug_at = time.monotonic()
    sh("echo vivid.0 > /sys/bus/platform/drivers/vivid/bind")
    up = root.wait_for(is_type("source_up"), 120, since=replug_at)
    record = root.wait_for(detections, 300, since=(up or {"_at": replug_at})["_at"])
    check("unplug (unbind) gives source_down, replug (bind) source_up and records again",
          down is not None and up is not None and record is not None and show("ActiveState") == "active",
          f"reason {down and down.get('reason')!r}; up after {up and round(up['_at'] - replug_at, 1)}s")

    # --- Stop within the limit -----------------------------------------------------------------------------------------
    root.close()
    t = time.monotonic()
    sh("systemctl stop sightline.service", timeout=stop_timeout + 60)
    took = time.monotonic() - t
    check(f"stop within the limit (TimeoutStopSec={stop_timeout})",
          took < stop_timeout and show("Result") == "success" and show("ExecMainStatus") == "0",
          f"stopped in {took:.1f}s, Result={show('Result')}, status {show('ExecMainStatus')}; "
          f"socket {'left behind' if os.path.exists(SOCKET) else 'removed'}")

    # --- Socket activation, non-root, twice ----------------------------------------------------------------------------
    sh("systemctl start sightline.socket")
    sock = sh(f"stat -c '%U %G %a' {SOCKET}").stdout.strip()
    idle = show("ActiveState")
    outsider = Subscriber(OUTSIDER)
    refused = outsider.wait_for(is_type("connect_error"), 30)
    outsider.close()
    outcomes = []
    for attempt in (1, 2):
        viewer = Subscriber(VIEWER)
        hello = viewer.wait_for(lambda r: r.get("type") in ("hello", "connect_error"), 600)
        # hello comes as soon as the socket is served, READY=1 (active) just after.
        outcomes.append((hello or {}).get("type") == "hello" and wait_until(lambda: show("ActiveState") == "active", 60))
        say(f"activation {attempt}: {hello and hello.get('type')} {hello and hello.get('error', '')}")
        viewer.close()
        sh("systemctl stop sightline.service", timeout=stop_timeout + 60)
        outcomes[-1] = outcomes[-1] and show("ActiveState", "sightline.socket") == "active" and os.path.exists(SOCKET)
    check("socket activation: the first client starts the service, and again after it stopped",
          all(outcomes) and idle == "inactive", f"service {idle} before; outcomes {outcomes}; socket {sock}")
    check("non-root subscriber (group video) through sightline.socket; outsiders refused",
          outcomes[0] and refused is not None, f"outsider: {refused and refused['error']}")
    sh("systemctl stop sightline.socket")

    # --- HTTP socket activation: sightline-http.socket ------------------------------------------------------------------
    # Stale only after several inference times, so /healthz is about the pipeline, not about TCG's speed.
    write_config(fps_limit=1, heartbeat=11, input_device=capture, http=f"{{stale_seconds: {math.ceil(3 * infer) + 10}}}")
    sh("systemctl enable --now sightline-http.socket")
    idle = show("ActiveState")
    listening = show("ActiveState", "sightline-http.socket")
    status, body = http_get("/api/sources", 600)  # the first request starts the service
    try:
        names = [s.get("name") for s in json.loads(body)]
    except (ValueError, AttributeError):
        names = body[:200]
    health = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(http_get("/healthz", 30)), 300 + 6 * infer)
    passed = any("HTTP listening on the socket passed by systemd" in str(e.get("MESSAGE", "")) for e in journal())
    check("HTTP socket activation: the first request starts the service; /api/sources and /healthz answer 200 "
          "through sightline-http.socket",
          idle == "inactive" and listening == "active" and status == 200 and names == ["camera0"]
          and health is not None and passed,
          f"service {idle} before, socket {listening}; /api/sources {status} {names}; "
          f"/healthz {health and health[0]}; passed socket logged: {passed}")
    sh("systemctl stop sightline.service", timeout=stop_timeout + 60)
    sh("systemctl disable --now sightline-http.socket")


try:
    run()
except Exception as error:  # a broken step is a failure, not a hang
    import traceback
    check("guest checks ran to the end", False, f"{type(error).__name__}: {error}")
    guest_log.write(traceback.format_exc())
subprocess.run(f"journalctl --no-pager -o short-monotonic > {RESULTS}/journal.txt", shell=True)
results.write(f"DONE {failures} failure(s) in {time.monotonic() - started:.0f}s\n")
results.close()
