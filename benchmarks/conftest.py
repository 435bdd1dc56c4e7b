"""Benchmarks: each case is timed for the straightforward path ("reference") and the
compiled ones in the same run; the ratios are printed at the end.

Run: python -m pytest benchmarks -q   (add --benchmark-disable to only check they run)"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
REAL = ROOT.parent / "shared" / "data" / "doodler"


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = defaultdict(dict)
    agreements = defaultdict(dict)
    for bench in session.benchmarks:
        if not bench.stats:
            continue
        case = bench.group or bench.name
        variant = bench.extra_info.get("variant", bench.name)
        groups[case][variant] = bench.stats.median
        if "label_agreement" in bench.extra_info:
            agreements[case][variant] = bench.extra_info["label_agreement"]
    tr = terminalreporter
    tr.write_sep("=", "speed-up against the straightforward path (median times)")
    for case, times in sorted(groups.items()):
        ref = times.get("reference")
        parts = []
        for variant, t in sorted(times.items()):
            ratio = f" x{ref / t:.2f}" if ref and variant != "reference" else ""
            agree = agreements[case].get(variant)
            agree = f" (labels {agree:.4%} equal)" if agree is not None and variant != "reference" else ""
            parts.append(f"{variant} {t:.4f}s{ratio}{agree}")
        tr.write_line(f"{case}: " + ", ".join(parts))
    _release_projection(tr, session.benchmarks)


def _release_projection(tr, benchmarks):
    """The scale check's projection for the whole release, one line per release, mode and
    worker count (from the runs above: start-up once, then the measured rate)."""
    rows = [b.extra_info["release"] for b in benchmarks
            if b.stats and "release" in b.extra_info]
    if not rows:
        return
    tr.write_sep("=", "release projection (Coast Train: 1,852 files, 1.19 Gpx)")
    for r in sorted(rows, key=lambda r: (r["era"], r["workers"], r["projected_min"])):
        tr.write_line(f"{r['era']} sample ({r['mpx']:.2f} Mpx: {r['eras']}), {r['mode']}, "
                      f"{r['workers']} worker(s): {r['mpx_per_s']:.3f} Mpx/s, start-up "
                      f"{r['start_up_s']:.2f} s -> {r['projected_min']:.0f} min projected")
