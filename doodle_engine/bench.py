"""``doodle-engine bench``: time each stage of the reconstruction for the straightforward
path (scikit-learn's trainer and predict: ``mode="reference"``) against the compiled one
(``mode="exact"``, same labels) and ``mode="fast"``, on the user's own files."""

from __future__ import annotations

import resource
import time

from .io import load
from .reconstruct import reconstruct

#: (row name, mode, CRF backend); None = the mode's default backend
MODES = (("reference", "reference", None), ("exact", "exact", None),
         ("exact/numba-crf", "exact", "numba"), ("fast", "fast", None))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_modes(record, repeat=1, modes=MODES):
    """{mode: (best total seconds, timings of that run, label)}; the first call of each
    mode is a warm-up (Numba compiles or loads its cache there)."""
    out = {}
    for name, mode, backend in modes:
        reconstruct(record, mode=mode, crf_backend=backend)  # warm-up
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = reconstruct(record, mode=mode, crf_backend=backend)
            total = time.perf_counter() - t0
            if best is None or total < best[0]:
                best = (total, res.timings, res.label)
        out[name] = best
    return out


def main(args):
    rows = []
    for path in args.files:
        rec = load(path)
        mpx = rec.shape[0] * rec.shape[1] / 1e6
        results = time_modes(rec, args.repeat)
        ref_total = results["reference"][0]
        ref_label = results["reference"][2]
        for mode, (total, timings, label) in results.items():
            stages = " ".join(f"{k}={v:.2f}" for k, v in timings.items())
            agree = (label == ref_label).mean()
            rows.append(f"{path}  {mode:15s} {total:7.2f}s {mpx / total:6.3f} Mpx/s "
                        f"x{ref_total / total:5.2f}  agree {agree:.4%}  [{stages}]")
    print("file  mode  total  Mpx/s  speed-up vs reference  label agreement  [stage seconds]")
    for r in rows:
        print(r)
    print(f"peak memory (process): {peak_rss_mb():.0f} MB")
    return 0
