"""``doodle-engine bench``: time each stage of the reconstruction for the straightforward
path (scikit-learn's trainer and predict: ``mode="reference"``) against the compiled one
(``mode="exact"``, same labels), ``mode="fast"`` and ``mode="fastest"``, on the user's own
files."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from tqdm import tqdm

from .inputs import find_inputs, load
from .reconstruct import reconstruct

#: (row name, mode, CRF backend); None = the mode's default backend
MODES = (("reference", "reference", None), ("exact", "exact", None),
         ("exact/pydensecrf", "exact", "pydensecrf"), ("fast", "fast", None),
         ("fastest", "fastest", None))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_modes(record, repeat=1, modes=MODES, step=None):
    """Time each mode on one record.

    Parameters
    ----------
    record : DoodleRecord
    repeat : int
        Timed runs per mode after one warm-up run (Numba compiles or loads its cache there);
        the best is kept.
    modes : sequence of (name, mode, crf_backend)
    step : callable, optional
        Called with the mode's name after each mode (progress).

    Returns
    -------
    dict
        ``{name: (best total seconds, timings of that run, label)}``.
    """
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
        if step is not None:
            step(name)
    return out


def main(args):


    files = find_inputs(args.files)
    rows = []
    bar = None if getattr(args, "quiet", False) else tqdm(total=len(files) * len(MODES),
                                                          unit="run", dynamic_ncols=True)
    try:
        for path in files:
            rec = load(path)
            s = rec.settings
            era = f"{s.era} ({s.era_source})" if s is not None else "-"
            mpx = rec.shape[0] * rec.shape[1] / 1e6
            if bar is not None:
                bar.set_description(Path(path).name)
            results = time_modes(rec, args.repeat,
                                 step=None if bar is None else lambda _name: bar.update(1))
            ref_total = results["reference"][0]
            ref_label = results["reference"][2]
            for mode, (total, timings, label) in results.items():
                stages = " ".join(f"{k}={v:.2f}" for k, v in timings.items())
                agree = (label == ref_label).mean()
                rows.append(f"{Path(path).name}  {era}  {mode:15s} {total:7.2f}s "
                            f"{mpx / total:6.3f} Mpx/s x{ref_total / total:5.2f}  "
                            f"agree {agree:.4%}  [{stages}]")
    finally:
        if bar is not None:
            bar.close()
    print("file  era (source)  mode  total  Mpx/s  speed-up vs reference  "
          "label agreement with reference  [stage seconds]")
    for r in rows:
        print(r)
    print(f"files: {len(files)}  peak memory (process): {peak_rss_mb():.0f} MB")
    return 0
