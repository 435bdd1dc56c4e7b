"""The fixed cost of a ``doodle-engine validate FILE`` process: what it spends besides the
reconstruction itself (interpreter, imports, Numba, loading the cached kernels, exit).

For each file and each source tree, in rotation: ``--repeats`` fresh ``doodle-engine validate
FILE --quiet`` processes (wall and CPU seconds), and one process that calls ``validate_file``
once cold and ``--repeats`` times warm.  Fixed cost = median process - median warm call.
With ``--served``, also ``--repeats`` ``doodle-engine validate FILE --quiet`` client processes
of a ``doodle-engine serve`` of the tree (started for the run, in a private runtime folder;
each checked to have been served): fixed cost served = their median - the median warm call.

    python benchmarks/fixed_cost.py ex.npz REAL.npz --tree before=/tmp/old --tree after=.

A tree is a folder holding the ``doodle_engine`` package (put first on ``PYTHONPATH``); each
tree keeps its own Numba cache, so run once before measuring (``--warmup``).  The 1-minute
load average is printed before and after: the wall figures depend on it, CPU much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from doodler_speed import Served  # benchmarks/: the script's folder is on sys.path

PROCESS = "from doodle_engine.cli import run; run()"
WARM = """
import json, sys, time
t = time.perf_counter()
from doodle_engine.jobs import validate_file
imports = time.perf_counter() - t
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter(); validate_file(path, mode=mode); first = time.perf_counter() - t
warm, warm_cpu = [], []
for _ in range(n):
    t, c = time.perf_counter(), time.process_time()
    validate_file(path, mode=mode)
    warm.append(time.perf_counter() - t)
    warm_cpu.append(time.process_time() - c)
print(json.dumps({"imports": imports, "first": first, "warm": warm, "warm_cpu": warm_cpu}))
"""


def _env(tree):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(tree) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def one_process(tree, path, mode):
    """(wall s, CPU s) of one fresh validate process."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", PROCESS, "validate", path, "--quiet",
                          "--mode", mode], env=_env(tree), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: validate {path} failed")
    return wall, usage.ru_utime + usage.ru_stime


def warm_calls(tree, path, mode, n):
    out = subprocess.run([sys.executable, "-c", WARM, path, mode, str(n)], env=_env(tree),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load():
    return os.getloadavg()[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--tree", action="append", required=True, help="NAME=FOLDER")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mode", default="exact")
    ap.add_argument("--warmup", action="store_true", help="one untimed process per tree first")
    ap.add_argument("--served", action="store_true",
                    help="also time commands served by a warm 'doodle-engine serve' of each tree")
    args = ap.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree)
    if args.warmup:
        for tree in trees.values():
            for f in args.files:
                one_process(tree, f, args.mode)
    loads = [load()]
    runs = {(n, f): [] for n in trees for f in args.files}
    warm = {}
    for n, tree in trees.items():
        for f in args.files:
            warm[n, f] = warm_calls(tree, f, args.mode, args.repeats)
    for _ in range(args.repeats):
        for f in args.files:
            for n, tree in trees.items():
                runs[n, f].append(one_process(tree, f, args.mode))
        loads.append(load())
    print(f"1-minute load {min(loads):.2f}-{max(loads):.2f}; {args.repeats} repeats, "
          f"mode {args.mode}; medians (wall; CPU = user + sys of the process)")
    print("| file | tree | process wall s | warm call wall s | fixed wall s | process CPU s | "
          "warm call CPU s | fixed CPU s | imports wall s | first - warm call wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in args.files:
        for n in trees:
            wall = statistics.median(r[0] for r in runs[n, f])
            cpu = statistics.median(r[1] for r in runs[n, f])
            w = warm[n, f]
            wm = statistics.median(w["warm"])
            wc = statistics.median(w["warm_cpu"])
            print(f"| {os.path.basename(f)[:48]} | {n} | {wall:.2f} | {wm:.2f} | {wall - wm:.2f} | "
                  f"{cpu:.2f} | {wc:.2f} | {cpu - wc:.2f} | {w['imports']:.2f} | "
                  f"{w['first'] - wm:.2f} |")
    if args.served:
        served_table(trees, args.files, args.mode, args.repeats, warm)


def served_table(trees, files, mode, repeats, warm):
    """Served commands against the same warm calls: the fixed cost a warm server leaves."""
    runs = {}
    loads = [load()]
    for n, tree in trees.items():
        server = Served(os.path.abspath(tree))
        try:
            for _ in range(repeats):
                for f in files:
                    runs.setdefault((n, f), []).append(server.run(f, mode, cpu=True))
        finally:
            server.stop()
        loads.append(load())
    print(f"\nserved by 'doodle-engine serve' (1-minute load {min(loads):.2f}-{max(loads):.2f}; "
          f"the work's CPU is spent in the server's fork, so only the client's CPU is shown)")
    print("| file | tree | served command wall s | warm call wall s | fixed wall s | client CPU s |")
    print("|---|---|---|---|---|---|")
    for f in files:
        for n in trees:
            wall = statistics.median(r[0] for r in runs[n, f])
            cpu = statistics.median(r[1] for r in runs[n, f])
            wm = statistics.median(warm[n, f]["warm"])
            print(f"| {os.path.basename(f)[:48]} | {n} | {wall:.2f} | {wm:.2f} | {wall - wm:.2f} | "
                  f"{cpu:.3f} |")


if __name__ == "__main__":
    main()
