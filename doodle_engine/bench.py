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
    """Time each mode on one record: its first run, then warm runs.

    Parameters
    ----------
    record : DoodleRecord
    repeat : int
        Warm runs per mode after the first run (where Numba compiles the mode's kernels, or
        loads them from its cache); the best is kept.
    modes : sequence of (name, mode, crf_backend)
    step : callable, optional
        Called with the mode's name after each mode (progress).

    Returns
    -------
    dict
        ``{name: (best warm seconds, timings of that run, label, first-run seconds)}``.
    """
    out = {}
    for name, mode, backend in modes:
        t0 = time.perf_counter()
        reconstruct(record, mode=mode, crf_backend=backend)  # first run
        first = time.perf_counter() - t0
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = reconstruct(record, mode=mode, crf_backend=backend)
            total = time.perf_counter() - t0
            if best is None or total < best[0]:
                best = (total, res.timings, res.label, first)
        out[name] = best
        if step is not None:
            step(name)
    return out


#: the table's columns: (header, right-aligned)
COLUMNS = (("file", False), ("era (source)", False), ("mode", False), ("first run s", True),
           ("warm s", True), ("warm Mpx/s", True), ("speed-up", True),
           ("agreement", True), ("warm stage seconds", False))


def result_rows(path, record, results):
    """One table row (cells as text) per mode of ``results`` (from :func:`time_modes`):
    first-run and warm seconds, warm speed and speed-up against reference, and the
    agreement of the label with reference's."""
    s = record.settings
    era = f"{s.era} ({s.era_source})" if s is not None else "-"
    mpx = record.shape[0] * record.shape[1] / 1e6
    ref_total, _, ref_label, _ = results["reference"]
    rows = []
    for mode, (total, timings, label, first) in results.items():
        stages = " ".join(f"{k}={v:.2f}" for k, v in timings.items())
        rows.append((Path(path).name, era, mode, f"{first:.2f}", f"{total:.2f}",
                     f"{mpx / total:.3f}", f"x{ref_total / total:.2f}",
                     f"{(label == ref_label).mean():.4%}", stages))
    return rows


def format_table(rows, columns=COLUMNS):
    """The rows under their header, each column as wide as its widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _) in enumerate(columns)]

    def line(cells):
        return "  ".join(c.rjust(w) if right else c.ljust(w)
                         for c, w, (_, right) in zip(cells, widths, columns)).rstrip()

    return [line([h for h, _ in columns])] + [line(r) for r in rows]


def main(args):
    files = find_inputs(args.files)
    rows = []
    bar = None if getattr(args, "quiet", False) else tqdm(total=len(files) * len(MODES),
                                                          unit="run", dynamic_ncols=True)
    t0 = time.perf_counter()
    first_runs = 0.0
    assumed = 0  # files whose era the engine assumed (no date, and no --era)
    try:
        for path in files:
            rec = load(path, era=getattr(args, "era", None))
            assumed += rec.settings is not None and "assum" in rec.settings.era_source
            if bar is not None:
                bar.set_description(Path(path).name)
            results = time_modes(rec, args.repeat,
                                 step=None if bar is None else lambda _name: bar.update(1))
            rows += result_rows(path, rec, results)
            first_runs += sum(r[3] for r in results.values())
    finally:
        if bar is not None:
            bar.close()
    for line in format_table(rows):
        print(line)
    if assumed:
        print(f"note: era assumed for {assumed} file(s) (no date in the path; bench times "
              "the recipe of that era and does not tell it from the label as validate does); "
              "--era sets it")
    print(f"files: {len(files)}  wall {time.perf_counter() - t0:.1f} s, of which first runs "
          f"{first_runs:.1f} s (Numba compiles each mode's kernels on first use in a process, "
          f"or loads them from its cache)  peak memory (process): {peak_rss_mb():.0f} MB")
    return 0
