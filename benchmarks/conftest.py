"""Benchmarks: each case is timed for the straightforward path ("reference") and the
compiled ones in the same run; the ratios are printed at the end.

Run: python -m pytest benchmarks -q   (add --benchmark-disable to only check they run)"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import realdata  # noqa: E402  (from tests/, put on the path just above)

REAL = realdata.DATA / "doodler"  # $DOODLE_ENGINE_DATA/doodler (default ../shared/data/doodler)


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = defaultdict(dict)
    agreements = defaultdict(dict)
    rates = defaultdict(dict)  # GFLOP/s where a benchmark counted its FLOPs
    peaks = defaultdict(list)  # (dtype) -> BLAS matmul peaks, GFLOP/s
    for bench in session.benchmarks:
        if not bench.stats:
            continue
        case = bench.group or bench.name
        variant = bench.extra_info.get("variant", bench.name)
        groups[case][variant] = bench.stats.median
        if "label_agreement" in bench.extra_info:
            agreements[case][variant] = bench.extra_info["label_agreement"]
        if "gflop_s" in bench.extra_info:
            rates[case][variant] = (bench.extra_info["gflop_s"], bench.extra_info.get("dtype"),
                                    bench.extra_info.get("epochs"))
        if "peak_gflop_s" in bench.extra_info:
            peaks[bench.extra_info["dtype"]].append(bench.extra_info["peak_gflop_s"])
    tr = terminalreporter
    tr.write_sep("=", "speed-up against the straightforward path (median times)")
    for case, times in sorted(groups.items()):
        ref = times.get("reference")
        parts = []
        for variant, t in sorted(times.items()):
            ratio = f" x{ref / t:.2f}" if ref and variant != "reference" else ""
            agree = agreements[case].get(variant)
            agree = f" (labels {agree:.4%} equal)" if agree is not None and variant != "reference" else ""
            rate = rates[case].get(variant)
            rate = f" {rate[0]:.1f} GFLOP/s" if rate else ""
            parts.append(f"{variant} {t:.4f}s{ratio}{agree}{rate}")
        tr.write_line(f"{case}: " + ", ".join(parts))
    _write_peak_fractions(tr, rates, peaks)
    _release_projection(tr, session.benchmarks)


def _write_peak_fractions(tr, rates, peaks):
    """GFLOP/s of the counted benchmarks as a share of the same run's BLAS matmul peak of
    their type (1 thread, every thread)."""
    if not peaks:
        return
    tr.write_sep("-", "share of the matmul peak measured in this run (1 thread / all threads)")
    for case, by_variant in sorted(rates.items()):
        for variant, (rate, dtype, epochs) in sorted(by_variant.items()):
            if dtype in peaks and not case.startswith("gemm"):
                one, every = min(peaks[dtype]), max(peaks[dtype])
                epochs = f", {epochs} epochs" if epochs else ""
                tr.write_line(f"{case} {variant}: {rate:.1f} GFLOP/s = {rate / one:.0%} of "
                              f"{one:.1f} / {rate / every:.0%} of {every:.1f} ({dtype}{epochs})")


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
