"""The floor under a ``doodle-engine`` process: what starting Python, importing the libraries
its compiled kernels need and the first call of one cached kernel cost, before any work.

Each step is a fresh process, timed from spawn to exit (wall) with its CPU seconds (user +
system, all threads), the median of ``--repeats``; the last line is a whole ``validate FILE``
process for comparison.  The steps add up: each imports what the one before did.

    python benchmarks/process_floor.py FILE.npz --repeats 5 --mode fast

Run it with nothing else on the machine (the 1-minute load average is printed before and
after) and after one ``doodle-engine validate FILE --mode MODE``, so the kernels are cached.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

IMPORTS = "import numpy, numba, scipy.linalg.cython_blas, scipy.ndimage"
#: (step, Python code): each step does what the one before did, and one thing more
STEPS = [
    ("start Python", "pass"),
    ("import NumPy", "import numpy"),
    ("import Numba", "import numpy, numba"),
    ("import SciPy's BLAS and ndimage (Numba's np.dot; the CRF, the location feature)", IMPORTS),
    ("first call of one cached kernel (Numba's registries, one cache load)",
     f"{IMPORTS}\nfrom doodle_engine.kernels import crf\n"
     "crf.exp_and_normalize(numpy.zeros((4, 3), numpy.float32))"),
]


def timed(cmd, repeats):
    """Median wall and CPU seconds of ``repeats`` fresh processes running ``cmd``."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="a Doodler .npz file for the whole validate process")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mode", default="fast")
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| step | wall s | CPU s |\n|---|---|---|")
    for name, code in STEPS:
        wall, cpu = timed([sys.executable, "-c", code], args.repeats)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    cmd = [sys.executable, "-c", "from doodle_engine.launch import run; run()", "validate",
           args.file, "--mode", args.mode, "--quiet", "--workers", "1"]
    wall, cpu = timed(cmd, args.repeats)
    print(f"| whole `validate FILE --mode {args.mode}` process | {wall:.3f} | {cpu:.3f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
