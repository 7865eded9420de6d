#!/usr/bin/env python3
"""What Python's multiprocessing.Pool and ProcessPoolExecutor do with the
faults of bench/faults.c: a map of 10 items on 2 processes where item 3
misbehaves. Each scenario runs in its own interpreter, killed after GUARD
seconds (then it "hangs"); the processes it leaves behind are counted a
second after it ends. Prints a markdown table.

    python3 bench/faults.py
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

GUARD = 10.0
FAULTS = ["segv", "abort", "_exit", "sigkill", "hang", "error", "leak"]
NAMES = {
    "segv": "segmentation fault",
    "abort": "abort()",
    "_exit": "_exit(3)",
    "sigkill": "SIGKILL (as from outside, or the OOM killer)",
    "hang": "hangs for ever",
    "error": "raises an exception",
    "leak": "leaks 50 MB per item (max tasks per child = 2)",
}


def item(args):
    i, fault = args
    if i == 3 or (fault == "leak" and i % 2 == 0):
        if fault == "segv":
            import ctypes
            ctypes.string_at(16)
        elif fault == "abort":
            os.abort()
        elif fault == "_exit":
            os._exit(3)
        elif fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault == "hang":
            time.sleep(1e9)
        elif fault == "error":
            raise ValueError("item 3")
        elif fault == "leak":
            item.leak = getattr(item, "leak", []) + [bytearray(50 << 20)]
    return i * i


def scenario(kind, fault, timeout, path):
    """Runs in its own interpreter, as a user would write it (a with block);
    writes what it saw to path as it goes, so that a hang keeps what came
    before it."""
    out = {}

    def note(**kw):
        out.update(kw)
        with open(path, "w") as f:
            json.dump(out, f)

    t0 = time.monotonic()
    args = [(i, fault) for i in range(10)]
    maxt = 2 if fault == "leak" else None
    clean = [(i, "") for i in range(10)]
    want = [i * i for i in range(10)]
    if kind == "Pool":
        from multiprocessing import Pool
        with Pool(2, maxtasksperchild=maxt) as p:
            try:
                if timeout:
                    res = p.map_async(item, args, chunksize=1).get(timeout)
                else:
                    res = p.map(item, args, chunksize=1)
                note(map="returns %d results" % len(res))
            except Exception as e:
                note(map="raises %s, no results" % type(e).__name__)
            note(took=time.monotonic() - t0)
            try:
                ok = p.map_async(item, clean).get(5) == want
                note(again="yes" if ok else "no")
            except Exception as e:
                note(again="no (%s)" % type(e).__name__)
    else:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(2, max_tasks_per_child=maxt) as ex:
            got = []
            try:
                for r in ex.map(item, args, timeout=timeout or None):
                    got.append(r)
                note(map="returns %d results" % len(got))
            except Exception as e:
                note(map="raises %s after %d results" % (type(e).__name__, len(got)))
            note(took=time.monotonic() - t0)
            try:
                ok = list(ex.map(item, clean, timeout=5)) == want
                note(again="yes" if ok else "no")
            except Exception as e:
                note(again="no (%s)" % type(e).__name__)
    note(closes="yes")
    os._exit(0)


def caller_death(kind):
    """The caller is SIGKILLed while items hang."""
    args = [(i, "hang") for i in range(4)]
    if kind == "Pool":
        from multiprocessing import Pool
        p = Pool(2)
        p.map_async(item, args, chunksize=1)
    else:
        from concurrent.futures import ProcessPoolExecutor
        ex = ProcessPoolExecutor(2)
        for a in args:
            ex.submit(item, a)
    time.sleep(0.5)
    print(json.dumps({"ready": True}), flush=True)
    time.sleep(1e9)


def marked(marker):
    """Live processes whose command line carries marker."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker.encode() in f.read():
                    with open("/proc/%s/stat" % pid) as s:
                        n += s.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            pass
    return n


def run(kind, fault, timeout=0):
    marker = "mark-" + uuid.uuid4().hex
    path = "/tmp/%s.json" % marker
    cmd = [sys.executable, __file__, "--scenario", kind, fault, str(timeout), path]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(GUARD)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    out = {}
    try:
        with open(path) as f:
            out = json.load(f)
        os.unlink(path)
    except (OSError, ValueError):
        pass
    out.setdefault("map", "hangs (killed after %.0f s)" % GUARD)
    out.setdefault("closes", "hangs" if out.get("took") is not None else "-")
    time.sleep(1.0)
    left = marked(marker)
    os.system("pkill -9 -f %s" % marker)  # clean up after Python
    return out, left


def run_death(kind):
    marker = "mark-" + uuid.uuid4().hex
    cmd = [sys.executable, __file__, "--death", kind, marker]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    before = marked(marker)
    p.kill()
    p.wait()
    time.sleep(1.0)
    left = marked(marker)
    os.system("pkill -9 -f %s" % marker)
    return before, left


def main():
    print("Python %s" % sys.version.split()[0])
    for kind in ["Pool", "ProcessPoolExecutor"]:
        print("\n%s(2).map, item 3 of 10 misbehaves:\n" % kind)
        print("| fault | map | map took | pool maps again | with-block ends "
              "| processes left 1 s after |")
        print("|---|---|---|---|---|---|")
        rows = [(f, 0) for f in FAULTS] + [("hang", 1.0)]
        for fault, timeout in rows:
            out, left = run(kind, fault, timeout)
            took = out.get("took")
            name = NAMES[fault] + (" (map with a 1 s timeout)" if timeout else "")
            print("| %s | %s | %s | %s | %s | %d |" % (
                name, out["map"],
                "%.1f ms" % (took * 1e3) if took is not None else "-",
                out.get("again", "-"), out["closes"], left))
        before, left = run_death(kind)
        print("| the caller is SIGKILLed while items hang | | | | | %d of %d |"
              % (left, before))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--scenario":
        scenario(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--death":
        caller_death(sys.argv[2])
    else:
        main()
