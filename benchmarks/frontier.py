"""The speed / agreement curve of the knobs that trade Doodler's labels for time (issue 18.3).

On every real MLP-era file and earlier trial (``../shared/data/doodler`` beside the checkout;
files whose classifier is a forest, or with one class doodled - no classifier, no CRF - are
listed and left out), each point of a grid of :class:`doodle_engine.modes.ModeProfile` knobs
rebuilds the label and is compared with the stored one (pixel agreement), and timed:

    python benchmarks/frontier.py --out docs/measurements/          # ~10 min on 2 idle cores
    python benchmarks/frontier.py --out docs/measurements/ --threads 1   # steadier on a shared machine

writes ``docs/measurements/frontier.csv`` (one row per point and file, with the 1-minute load average at
that moment), ``docs/measurements/frontier.md`` (per point: median and worst agreement, median and total
seconds, ratio to exact timed in the same run; the points chosen by the rule below) and
``docs/measurements/frontier.png`` (when matplotlib is installed), each written atomically.

Timing: the feature matrix depends only on the dtype, the fit (and predict) only on the dtype
and the row cap, so they are computed once per file and shared with every point that agrees
on them (``reconstruct(shared=...)``); a point's seconds are its own stages (standardize,
clean-up, CRF) plus the shared stages' seconds measured when they were computed.  The
agreement figures do not depend on the machine's load; the seconds do.

The rule (issue 18): ``fast`` = the point with the least total seconds whose median agreement
is >= 99.9 % and worst >= 99.5 %; ``fastest`` = the point with the least total seconds whose
worst agreement is >= 99 %.  The seconds the rule compares are re-timed (issue 24): after the
sweep, the candidates (exact, the modes' profiles, the points meeting a rule within x1.5 of its
best) are timed again as whole reconstructions, ``--rounds`` times in rotated order, and
written to ``frontier-retime.csv``; ``--from-csv frontier.csv --retime`` re-times an earlier
sweep's candidates.  Issue 24 added the trainer's walk (minibatch and step, early-stopping
tolerance and patience, epoch cap) and the prediction stride as dimensions; frontier.md says
what each bought.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doodle_engine import load, reconstruct  # noqa: E402
from doodle_engine.eras import recipe as era_recipe  # noqa: E402
from doodle_engine.example import make_example  # noqa: E402
from doodle_engine.files import atomic_write  # noqa: E402
from doodle_engine.modes import EXACT, PROFILES, ModeProfile  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "doodler"
SHARED_STAGES = ("features", "fit", "predict")

#: (dtype, training-row cap) of the fits ...
FITS = [("float64", 100_000), ("float32", 100_000), ("float32", 40_000), ("float32", 30_000),
        ("float32", 20_000), ("float32", 10_000)]
#: ... crossed with (mean-field iterations, stop when labels are stable, rolled runs used):
#: the first grid (issue 18), with Doodler's trainer and every pixel predicted
CRFS = [(10, False, None), (10, True, None), (7, True, None), (5, False, None),
        (5, True, None), (3, False, None), (10, False, 1), (10, True, 1), (10, True, 2),
        (10, True, 3), (5, True, 1), (2, False, 1)]
#: the trainer's walk (issue 24): minibatch rows with the step size scaled with them
#: (linearly), the early-stopping tolerance and patience, a cap on epochs
TRAINERS = {
    "sk": {},
    "b400": {"batch": 400, "learning_rate": 2e-3},
    "b1000": {"batch": 1000, "learning_rate": 5e-3},
    "b4000": {"batch": 4000, "learning_rate": 2e-2},
    "tol1e-3": {"stop_tol": 1e-3},
    "pat5": {"stop_patience": 5},
    "ep40": {"max_epochs": 40},
}
#: prediction strides: every pixel, every 2nd, the CRF's own grid, every 4th
STRIDES = (1, 2, "crf", 4)
#: the new dimensions are crossed with these row caps and CRF settings (the first grid's
#: points near the modes it chose), not with the whole first grid
NEW_ROWS = (100_000, 40_000, 30_000, 20_000)
NEW_CRFS = [(10, True, None), (10, True, 3), (10, True, 1)]
#: the issue's thresholds
FAST_MEDIAN, FAST_WORST, FASTEST_WORST = 0.999, 0.995, 0.99
#: points within this fraction of a chosen point's total seconds are listed beside it
NOISE = 0.05
#: after the sweep, the points meeting a rule within this factor of its best total are
#: re-timed (at most RETIME_MAX per rule): the sweep times each stage once, on a shared
#: machine, so its ranking of close points is noise
RETIME_WITHIN, RETIME_MAX = 1.5, 8


#: the ModeProfile fields a trainer preset sets
TRAINER_KNOBS = ("batch", "learning_rate", "max_epochs", "stop_tol", "stop_patience")


def trainer_name(p):
    """The :data:`TRAINERS` name of a profile's trainer knobs ("custom" when none fits)."""
    base = ModeProfile("x")
    for name, knobs in TRAINERS.items():
        if all(getattr(p, k) == getattr(base.with_(**knobs), k) for k in TRAINER_KNOBS):
            return name
    return "custom"


def point_name(p):
    """A point's name from its knobs, e.g. ``f32 rows=40k sk it=10+stop rolls=3 k=1``."""
    return (f"{'f64' if p.dtype == 'float64' else 'f32'} rows={p.max_rows // 1000}k "
            f"{trainer_name(p)} it={p.mf_iterations}{'+stop' if p.stop_when_stable else ''} "
            f"rolls={'all' if p.rolled_runs is None else p.rolled_runs} k={p.predict_stride}")


def _point(dtype, rows, crf, trainer="sk", stride=1):
    iters, stop, rolled = crf
    p = ModeProfile("x", dtype=dtype, max_rows=rows, mf_iterations=iters, stop_when_stable=stop,
                    rolled_runs=rolled, predict_stride=stride, **TRAINERS[trainer])
    return p.with_(name=point_name(p))


def grid():
    """Every point: a ModeProfile named after its knobs (exact first): the first grid, then
    the trainers and strides crossed with :data:`NEW_ROWS` and :data:`NEW_CRFS`."""
    points = [_point(dtype, rows, crf) for dtype, rows in FITS for crf in CRFS]
    for rows in NEW_ROWS:
        for trainer in TRAINERS:
            for stride in STRIDES:
                for crf in NEW_CRFS:
                    p = _point("float32", rows, crf, trainer, stride)
                    if not any(same_knobs(p, q) for q in points):
                        points.append(p)
    return points


def same_knobs(a, b):
    """Whether two profiles set every knob alike (their names aside)."""
    return a.with_(name=b.name) == b


def cases(data):
    """(included [(file, trial, record)], excluded [(file, why)])."""
    included, excluded = [], []
    for path in sorted(Path(data).glob("*.npz")):
        rec = load(path)
        for r in [rec] + list(rec.trials):
            trial = r.trial_prefix or ""
            name = path.name + (f" trial {trial}" if trial else "")
            if r.settings is None or era_recipe(r.settings.era).classifier != "mlp":
                excluded.append((name, f"era {r.settings.era if r.settings else '?'}: "
                                       "random forest, not an MLP era"))
            elif len(np.unique(r.doodles)[1:]) < 2:
                excluded.append((name, f"era {r.settings.era}: one class doodled, no "
                                       "classifier and no CRF (every mode gives the same label)"))
            else:
                included.append((path.name, trial, r))
    return included, excluded


def warm_up():
    """Load or compile every kernel the points use (float64 and float32, stop on and off,
    the rolled flow and the one-run flow) on a small generated file, untimed."""
    with tempfile.TemporaryDirectory() as tmp:
        for era in ("mlp-2021-10", "mlp-2022-05"):
            rec = load(make_example(Path(tmp) / "warm.npz", 60, 80, overwrite=True), era=era)
            for p in (EXACT, PROFILES["fast"], EXACT.with_(name="w", dtype="float32",
                                                            stop_when_stable=True)):
                reconstruct(rec, mode=p)


def sweep(included, points, progress=print):
    """Rows: one per (point, case)."""
    threads = numba.get_num_threads()
    rows = []
    for i, (fname, trial, rec) in enumerate(included):
        shared, stage_seconds = {}, {}
        for point in points:
            t0 = time.perf_counter()
            res = reconstruct(rec, mode=point, shared=shared)
            wall = time.perf_counter() - t0
            t = res.timings
            keys = {"features": point.feature_key, "fit": point.fit_key,
                    "predict": (point.fit_key, point.predict_stride)}
            for stage in SHARED_STAGES:
                if stage in t:
                    stage_seconds[(stage, keys[stage])] = t[stage]
            shared_s = sum(stage_seconds.get((s, keys[s]), 0.0) for s in SHARED_STAGES)
            own = sum(v for k, v in t.items() if k not in SHARED_STAGES)
            agree = float((res.label0 == rec.label).mean())
            rows.append({
                "point": point.name, "dtype": point.dtype, "max_rows": point.max_rows,
                "mf_iterations": point.mf_iterations,
                "stop_when_stable": int(point.stop_when_stable),
                "rolled_runs": "all" if point.rolled_runs is None else point.rolled_runs,
                **{k: "" if getattr(point, k) is None else getattr(point, k)
                   for k in TRAINER_KNOBS},
                "trainer": trainer_name(point), "predict_stride": point.predict_stride,
                "case": fname + (f":trial{trial}" if trial else ""),
                "file": fname, "trial": trial, "era": res.era,
                "pixels": int(rec.label.size), "agreement": agree,
                "differ": int((res.label0 != rec.label).sum()),
                "seconds": shared_s + own, "own_seconds": own, "shared_seconds": shared_s,
                "wall_seconds_this_call": wall,
                "crf_seconds": t.get("crf", 0.0),
                "load1": round(os.getloadavg()[0], 2), "numba_threads": threads,
                "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS", ""),
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
        progress(f"[{i + 1}/{len(included)}] {fname} {trial or ''}: "
                 f"{len(points)} points, load {os.getloadavg()[0]:.1f}")
    return rows


def summarise(rows, points):
    """Per point: n, median / worst agreement, median / total seconds, ratio to exact."""
    exact = next(p for p in points if same_knobs(p, EXACT))
    by_point = {p.name: [r for r in rows if r["point"] == p.name] for p in points}
    exact_total = sum(r["seconds"] for r in by_point[exact.name])
    exact_per_case = {(r["file"], r["trial"]): r["seconds"] for r in by_point[exact.name]}
    out = []
    for p in points:
        rs = by_point[p.name]
        acc = np.array([r["agreement"] for r in rs])
        secs = np.array([r["seconds"] for r in rs])
        per_case = [exact_per_case[(r["file"], r["trial"])] / r["seconds"] for r in rs
                    if r["seconds"] > 0]
        out.append({"point": p, "n": len(rs), "median": float(np.median(acc)),
                    "worst": float(acc.min()), "worst_case": rs[int(acc.argmin())],
                    "median_s": float(np.median(secs)), "total_s": float(secs.sum()),
                    "speedup": exact_total / secs.sum() if secs.sum() > 0 else float("nan"),
                    "median_speedup": float(np.median(per_case)) if per_case else float("nan"),
                    "load": (min(r["load1"] for r in rs), max(r["load1"] for r in rs))})
    return out, exact


RULES = {"fast": lambda x: x["median"] >= FAST_MEDIAN and x["worst"] >= FAST_WORST,
         "fastest": lambda x: x["worst"] >= FASTEST_WORST}


def candidates(summary, exact):
    """The points worth re-timing: exact, the modes' profiles, and for each rule the points
    meeting it whose sweep total is within :data:`RETIME_WITHIN` of the best (at most
    :data:`RETIME_MAX`, fastest first)."""
    out = [x for x in summary if x["point"] is exact]
    out += [x for x in summary if any(same_knobs(PROFILES[n], x["point"]) for n in RULES)]
    for ok in RULES.values():
        meet = sorted((x for x in summary if ok(x)), key=lambda x: x["total_s"])
        out += [x for x in meet if x["total_s"] <= RETIME_WITHIN * meet[0]["total_s"]][:RETIME_MAX]
    return list({x["point"].name: x["point"] for x in out}.values())


def retime(included, points, rounds, progress=print):
    """Rows: whole reconstructions of every case by every point (nothing shared, so each pays
    its own features, fit and predict), ``rounds`` times, the points' order rotated per case
    and round so that a busy moment of the machine does not fall on one point."""
    rows = []
    for rnd in range(rounds):
        for i, (fname, trial, rec) in enumerate(included):
            k = (rnd + i) % len(points)
            for p in points[k:] + points[:k]:
                t0 = time.perf_counter()
                reconstruct(rec, mode=p)
                rows.append({"point": p.name, "case": fname + (f":trial{trial}" if trial else ""),
                             "round": rnd, "seconds": time.perf_counter() - t0,
                             "load1": round(os.getloadavg()[0], 2),
                             "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        progress(f"re-timed round {rnd + 1}/{rounds}: {len(points)} points, load "
                 f"{os.getloadavg()[0]:.1f}")
    return rows


def apply_retime(summary, exact, retimed):
    """Each re-timed point's ``retimed_s``: the sum over cases of its median seconds over
    the rounds; ``retimed_speedup``: exact's re-timed total over it."""
    per = {}
    for r in retimed:
        per.setdefault((r["point"], r["case"]), []).append(float(r["seconds"]))
    totals = {}
    for (point, _), secs in per.items():
        totals[point] = totals.get(point, 0.0) + float(np.median(secs))
    ref = totals.get(exact.name)
    for x in summary:
        t = totals.get(x["point"].name)
        x["retimed_s"] = t
        x["retimed_speedup"] = ref / t if t and ref else None


def choose(summary):
    """(fast, fastest): the least seconds among the points meeting each rule: re-timed
    seconds where points were re-timed, the sweep's otherwise."""
    timed = [x for x in summary if x.get("retimed_s")]
    pool, key = (timed, "retimed_s") if timed else (summary, "total_s")

    def pick(ok):
        meet = [x for x in pool if ok(x)]
        return min(meet, key=lambda x: x[key]) if meet else None

    return pick(RULES["fast"]), pick(RULES["fastest"])


def _knobs(p):
    epochs = "the era's epochs" if p.max_epochs is None else f"at most {p.max_epochs} epochs"
    return (f"{p.dtype}, rows {p.max_rows:,}, minibatch {p.batch} at step {p.learning_rate:g}, "
            f"{epochs}, early stop tol {p.stop_tol:g} patience {p.stop_patience}, "
            f"{p.mf_iterations} iterations{' + stop' if p.stop_when_stable else ''}, rolled runs "
            f"{'all' if p.rolled_runs is None else p.rolled_runs}, prediction stride "
            f"{p.predict_stride}")


def _crf_label(crf):
    iters, stop, rolled = crf
    return f"it={iters}{'+stop' if stop else ''} rolls={'all' if rolled is None else rolled}"


def _trainer_text(knobs):
    if not knobs:
        return "scikit-learn's: minibatch 200, step 0.001, tol 1e-4, patience 10"
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in knobs.items())


#: the dimensions of the grid and how to read a point's value of each
DIMENSIONS = {
    "trainer": trainer_name,
    "prediction stride": lambda p: str(p.predict_stride),
    "row cap": lambda p: f"{p.max_rows // 1000}k",
    "dtype": lambda p: p.dtype,
    "CRF": lambda p: _crf_label((p.mf_iterations, p.stop_when_stable, p.rolled_runs)),
}


def dimensions(summary):
    """Lines of a table: for each value of each dimension, the fastest point with that value
    that meets each rule (total seconds, ratio to exact): what the dimension buys."""
    rules = (("fast", lambda x: x["median"] >= FAST_MEDIAN and x["worst"] >= FAST_WORST),
             ("fastest", lambda x: x["worst"] >= FASTEST_WORST))
    lines = ["", "## What each dimension bought", "",
             "For each value of a dimension: the fastest point of the grid with that value that "
             "meets each rule (its total seconds and ratio to exact in this run), and the best "
             "agreement any point with that value reached. A value whose best point is the "
             "chosen one is what the choice is made of; one that meets no rule cost too much "
             "agreement.", "",
             "| dimension | value | points | fastest meeting `fast` | fastest meeting `fastest` "
             "| best worst agreement |", "|---|---|---|---|---|---|"]
    for dim, value_of in DIMENSIONS.items():
        values = list(dict.fromkeys(value_of(x["point"]) for x in summary))
        for v in values:
            group = [x for x in summary if value_of(x["point"]) == v]
            cells = []
            for _, ok in rules:
                meet = [x for x in group if ok(x)]
                best = min(meet, key=lambda x: x["total_s"]) if meet else None
                cells.append(f"{best['total_s']:.2f} s ×{best['speedup']:.2f} "
                             f"({best['point'].name})" if best else "none")
            top = max(x["worst"] for x in group)
            lines.append(f"| {dim} | {v} | {len(group)} | " + " | ".join(cells)
                         + f" | {top:.4%} |")
    return lines


def per_file(summary, exact, chosen, rows):
    """Lines of a table: per reconstruction, exact and the chosen points (seconds, differing
    pixels, agreement, exact's seconds over the point's), from the same run."""
    cols = [("exact", exact)] + [(n, s["point"]) for n, s in zip(("fast", "fastest"), chosen)
                                 if s is not None]
    by = {(r["point"], r["case"] if "case" in r else r["file"] + r["trial"]): r for r in rows}
    cases = list(dict.fromkeys(r["case"] if "case" in r else r["file"] + r["trial"]
                               for r in rows))
    head = "| file | " + " | ".join(
        f"{n} s (px differ, agreement)" + ("" if n == "exact" else f" | exact / {n}")
        for n, _ in cols) + " |"
    lines = ["", "## Per file: exact and the chosen points (same run)", "", head,
             "|" + "---|" * (1 + sum(1 if n == "exact" else 2 for n, _ in cols))]
    for case in cases:
        e = by[(exact.name, case)]
        cells = []
        for n, p in cols:
            r = by[(p.name, case)]
            cells.append(f"{r['seconds']:.2f} ({r['differ']:,}, {r['agreement']:.4%})")
            if n != "exact":
                cells.append(f"×{e['seconds'] / r['seconds']:.2f}" if r["seconds"] > 0 else "-")
        short = case.replace("dash_doodler__results", "").replace(".npz", "")
        lines.append(f"| {short} | " + " | ".join(cells) + " |")
    return lines


def markdown(summary, exact, chosen, included, excluded, started, finished, threads, rows,
             retimed=(), rounds=0):
    fast, fastest = chosen
    loads = [s["load"] for s in summary]
    lo, hi = min(ld[0] for ld in loads), max(ld[1] for ld in loads)
    lines = [
        "[← README](../../README.md)", "",
        "# The speed / agreement curve of fast mode", "",
        "Written by `python benchmarks/frontier.py --out docs/measurements/` "
        "(do not edit by hand: re-run it). "
        f"Run {started} – {finished} UTC, {len(included)} reconstructions, "
        f"{len(summary)} points, 1-minute load average {lo:.1f}–{hi:.1f} during the run "
        f"(per row in `frontier.csv`), {threads}. Agreement: pixels equal to the label stored in the file. "
        "The agreement figures do not depend on the load; the seconds do: on a shared machine "
        "they are noisy, and the ranking of points close in time can change from run to run.",
        "",
        "Seconds per point and file: its own stages (standardize, clean-up, CRF) plus the "
        "features, fit and predict it shares with other points of the same dtype and row cap, "
        "measured once per file when computed (kernels loaded beforehand, untimed). Ratio: "
        "exact's total seconds over the point's (same run); median ratio: over the files.",
        "",
        "Included (MLP eras): " + ", ".join(
            f"`{f}`" + (f" trial `{t}`" if t else "") for f, t, _ in included) + ".", "",
        "Left out: " + "; ".join(f"`{f}` ({why})" for f, why in excluded) + ".", "",
        "Knobs: dtype (features and MLP trainer), the cap on MLP training rows (evenly spaced, "
        "as Doodler's 100,000), mean-field iterations per CRF run, the early stop (after the "
        "first iteration, from the second on, that changes no pixel's label), and how many of "
        "the late-2021 era's five rolled CRF runs are made (1: only k = 0; the 2022 files make "
        "one run whatever this knob says). The CRF is float32 in every mode (pydensecrf's own "
        "precision, kept by the compiled lattice), so its precision is not a knob. Issue 24 "
        "added the trainer's walk and the prediction stride, crossed with the row caps "
        f"{', '.join(f'{r // 1000}k' for r in NEW_ROWS)} and the CRF settings "
        f"{', '.join(_crf_label(c) for c in NEW_CRFS)}: trainers "
        + "; ".join(f"`{n}` ({_trainer_text(k)})" for n, k in TRAINERS.items())
        + "; strides " + ", ".join(f"`k={k}`" for k in STRIDES) + " (the MLP predicts every "
        "k-th pixel of every k-th row, and the last row and column, and the class "
        "probabilities are interpolated bilinearly in between; `crf`: k is the CRF's own "
        "decimation).", "",
        "## The rule and the points it chose", "",
        f"- `fast`: least total seconds with median >= {FAST_MEDIAN:.1%} and worst >= "
        f"{FAST_WORST:.1%}: " + (_choice(fast) if fast else "no point meets it") + ".",
        f"- `fastest`: least total seconds with worst >= {FASTEST_WORST:.0%}: "
        + (_choice(fastest) if fastest else "no point meets it") + ".",
        f"- `exact` in this run: {_choice(next(s for s in summary if s['point'] is exact))}.",
        "",
    ]
    key = "retimed_s" if any(x.get("retimed_s") for x in summary) else "total_s"
    for name, s in (("fast", fast), ("fastest", fastest)):
        if s is None:
            continue
        near = [x for x in summary if RULES[name](x) and x is not s and x.get(key)
                and x[key] <= (1 + NOISE) * s[key]]
        lines.append(f"Within {NOISE:.0%} of `{name}`'s {key.replace('_s', '').replace('total', 'sweep')} "
                     "total seconds (as good as tied on a shared machine), also meeting its "
                     "thresholds: " + ("; ".join(f"{x['point'].name} (worst {x['worst']:.4%}, "
                                                 f"{x[key]:.2f} s)" for x in near) or "none") + ".")
    lines.append("")
    for name, s in (("fast", fast), ("fastest", fastest)):
        prof = PROFILES[name]
        if s is None:
            continue
        if same_knobs(prof, s["point"]):
            lines.append(f"`doodle_engine/modes.py` holds this point as `{name}`.")
        else:
            held = next((x for x in summary if same_knobs(prof, x["point"])), None)
            lines.append(f"`doodle_engine/modes.py` holds `{name}` = {_knobs(prof)}"
                         + (f" ({_choice(held)} in this run)" if held else
                            " (not a point of this run's grid)")
                         + "; this run's rule chose another point.")
    lines += retime_lines(summary, rounds, retimed)
    lines += dimensions(summary)
    lines += per_file(summary, exact, chosen, rows)
    lines += ["", "## Every point (fastest first)", "",
              "| point | median agreement | worst agreement (file) | median s | total s | "
              "ratio to exact | median ratio | meets |", "|---|---|---|---|---|---|---|---|"]
    for s in sorted(summary, key=lambda s: s["total_s"]):
        meets = []
        if s["median"] >= FAST_MEDIAN and s["worst"] >= FAST_WORST:
            meets.append("fast")
        if s["worst"] >= FASTEST_WORST:
            meets.append("fastest")
        w = s["worst_case"]
        mark = " **←fast**" if s is fast else (" **←fastest**" if s is fastest else "")
        lines.append(
            f"| {s['point'].name}{mark} | {s['median']:.4%} | {s['worst']:.4%} "
            f"({w['file'][:40]}{' ' + w['trial'] if w['trial'] else ''}) | {s['median_s']:.2f} "
            f"| {s['total_s']:.2f} | ×{s['speedup']:.2f} | ×{s['median_speedup']:.2f} "
            f"| {', '.join(meets) or '-'} |")
    return "\n".join(lines) + "\n"


def threads_note(n=None, blas=None):
    """How many threads Numba and BLAS ran on (this process, or an earlier run's CSV)."""
    if n is None:
        n = numba.get_num_threads()
        blas = os.environ.get("OPENBLAS_NUM_THREADS")
    if n == 1:
        numba_part = "Numba on 1 thread"
    else:
        numba_part = (f"Numba started with {n} threads (each reconstruction uses the free "
                      "cores among them, `doodle_engine.cores`)")
    return numba_part + (f", BLAS on {blas} (`--threads {blas}`)" if blas
                         else ", BLAS threads as installed")


def _choice(s):
    again = (f"; re-timed {s['retimed_s']:.2f} s, ×{s['retimed_speedup']:.2f} exact's re-timed"
             if s.get("retimed_s") else "")
    return (f"**{s['point'].name}** ({_knobs(s['point'])}): median {s['median']:.4%}, worst "
            f"{s['worst']:.4%}, sweep total {s['total_s']:.1f} s (median {s['median_s']:.2f} s "
            f"per file), ×{s['speedup']:.2f} exact's total{again}")


def retime_lines(summary, rounds, retimed):
    """The re-timed candidates as a table (fastest first)."""
    timed = sorted((x for x in summary if x.get("retimed_s")), key=lambda x: x["retimed_s"])
    if not timed:
        return []
    loads = [float(r["load1"]) for r in retimed]
    stamps = sorted(r["utc"] for r in retimed)
    when = " – ".join(t[:16].replace("T", " ") for t in (stamps[0], stamps[-1]))
    lines = ["", "## The candidates, re-timed", "",
             f"The sweep times each shared stage once, so on a shared machine its totals of close "
             f"points are mostly noise. The candidates (exact, the modes' profiles, and for each "
             f"rule the points meeting it within ×{RETIME_WITHIN} of its best sweep total, at "
             f"most {RETIME_MAX}) were re-timed as whole reconstructions (nothing shared) in "
             f"{rounds} rounds, their order rotated per file and round, {when} UTC; total = "
             f"sum over the files of the median over the rounds (1-minute load {min(loads):.1f}–"
             f"{max(loads):.1f}; rows in `frontier-retime.csv`). The rule chooses on these totals.",
             "", "| point | re-timed total s | ratio to exact | sweep total s | median agreement "
             "| worst agreement | meets |", "|---|---|---|---|---|---|---|"]
    for x in timed:
        meets = ", ".join(n for n, ok in RULES.items() if ok(x)) or "-"
        lines.append(f"| {x['point'].name} | {x['retimed_s']:.2f} | ×{x['retimed_speedup']:.2f} "
                     f"| {x['total_s']:.2f} | {x['median']:.4%} | {x['worst']:.4%} | {meets} |")
    return lines


def read_csv(path):
    """(rows, points) of an earlier run's ``frontier.csv``."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    points = {}
    for r in rows:
        for k in ("max_rows", "mf_iterations", "stop_when_stable", "pixels", "differ"):
            r[k] = int(r[k])
        for k in ("agreement", "seconds", "own_seconds", "shared_seconds", "crf_seconds",
                  "load1", "wall_seconds_this_call"):
            r[k] = float(r[k])
        r["trial"] = r["trial"] or ""
        if r["point"] not in points:
            stride = r.get("predict_stride", "1")
            points[r["point"]] = ModeProfile(
                r["point"], dtype=r["dtype"], max_rows=r["max_rows"],
                mf_iterations=r["mf_iterations"], stop_when_stable=bool(r["stop_when_stable"]),
                rolled_runs=None if r["rolled_runs"] == "all" else int(r["rolled_runs"]),
                batch=int(r.get("batch", 200)), learning_rate=float(r.get("learning_rate", 1e-3)),
                max_epochs=int(r["max_epochs"]) if r.get("max_epochs") else None,
                stop_tol=float(r.get("stop_tol", 1e-4)),
                stop_patience=int(r.get("stop_patience", 10)),
                predict_stride=stride if stride == "crf" else int(stride))
    return rows, list(points.values())


def read_retime(path):
    """The re-timing rows of an earlier run (``frontier-retime.csv``)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["seconds"], r["load1"], r["round"] = float(r["seconds"]), float(r["load1"]), int(r["round"])
    return rows


def write_csv(path, rows):
    """Seconds to the microsecond, agreement to 1e-8 (a pixel of a 1 Mpx image is 1e-6)."""
    rows = [{k: (round(v, 8 if k == "agreement" else 6) if isinstance(v, float) else v)
             for k, v in r.items()} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode()))


def plot(path, summary, chosen):
    """Agreement against seconds: every point at the sweep's one timing; under it, when the
    candidates were re-timed, those at their re-timed totals (the totals the rule chose on)."""
    timed = [s for s in summary if s.get("retimed_s")]
    rows = [("total_s", summary, "total seconds over the files, the sweep's one timing "
                                 "(shared machine)")]
    if timed:
        rows.append(("retimed_s", timed, "total seconds over the files, re-timed candidates "
                                         "(median of the rounds)"))
    fig = Figure(figsize=(11, 4.2 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (seconds, points, label), pair in zip(rows, axes):
        for ax, key in zip(pair, ("median", "worst")):
            _panel(ax, seconds, points, key, chosen, label)
    fig.suptitle("fast-mode knobs: time against agreement with the stored labels "
                 "(grey float64, blue float32)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return True


def _panel(ax, seconds, points, key, chosen, label):
    for s in points:
        colour = "tab:blue" if s["point"].dtype == "float32" else "tab:grey"
        ax.scatter(s[seconds], 100 * s[key], c=colour, s=14)
    for s, name, c in ((chosen[0], "fast", "tab:green"), (chosen[1], "fastest", "tab:red")):
        if s is not None and s.get(seconds):
            ax.scatter(s[seconds], 100 * s[key], c=c, s=60, marker="*", label=name)
    ex = next((s for s in points if same_knobs(s["point"], EXACT)), None)
    if ex is not None:
        ax.scatter(ex[seconds], 100 * ex[key], c="black", s=40, marker="s", label="exact")
    for level in ((FAST_MEDIAN,) if key == "median" else (FAST_WORST, FASTEST_WORST)):
        ax.axhline(100 * level, color="k", lw=0.5, ls=":")
    ax.set_xlabel(label, fontsize=8)
    ax.set_ylabel(f"{key} agreement (%)")
    floor = max(97.5, ax.get_ylim()[0])
    ax.set_ylim(floor, 100.02)
    hidden = sum(100 * s[key] < floor for s in points)
    if hidden:
        ax.text(0.02, 0.02, f"{hidden} point(s) below {floor:.1f} % not shown",
                transform=ax.transAxes, fontsize=8)
    ax.legend(loc="lower right", fontsize=8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "measurements"),
                    help="folder for frontier.csv/.md/.png")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of real Doodler files")
    ap.add_argument("--quick", action="store_true",
                    help="a few points only (exact, today's fast, the modes' profiles)")
    ap.add_argument("--threads", type=int, default=None,
                    help="run Numba and BLAS on this many threads (the process is restarted "
                         "with NUMBA_NUM_THREADS / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of re-timing the candidates after the sweep (default 3)")
    ap.add_argument("--retime", action="store_true",
                    help="with --from-csv: re-time that sweep's candidates now")
    ap.add_argument("--from-csv", help="no sweep: write frontier.md / .png from this earlier "
                                       "frontier.csv (e.g. after changing modes.py)")
    args = ap.parse_args(argv)
    if args.threads is not None and os.environ.get("NUMBA_NUM_THREADS") != str(args.threads):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads),
                   OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
        os.execve(sys.executable, [sys.executable, __file__] + sys.argv[1:], env)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    included, excluded = cases(args.data)
    if not included:
        print(f"{args.data}: no MLP-era Doodler file", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.from_csv:
        rows, points = read_csv(args.from_csv)
        stamps = sorted(r["utc"] for r in rows)
        started, finished = (t[:16].replace("T", " ") for t in (stamps[0], stamps[-1]))
        threads = threads_note(int(rows[0]["numba_threads"]), rows[0]["blas_threads_env"])
    else:
        points = grid()
        for name in ("fast", "fastest"):  # the modes' own profiles are always points
            if not any(same_knobs(PROFILES[name], p) for p in points):
                points.append(PROFILES[name].with_(name=f"{name} (modes.py)"))
        if args.quick:
            points = [p for p in points if same_knobs(p, EXACT)
                      or any(same_knobs(PROFILES[n], p) for n in ("fast", "fastest"))]
        warm_up()
        rows = sweep(included, points, progress=lambda m: print(m, flush=True))
        threads = threads_note()
        finished = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    summary, exact = summarise(rows, points)
    if args.from_csv and not args.retime:
        again = Path(args.from_csv).with_name("frontier-retime.csv")
        retimed = read_retime(again) if again.exists() else []
    else:
        if args.from_csv:
            warm_up()
        picked = candidates(summary, exact)
        retimed = retime(included, picked, args.rounds, progress=lambda m: print(m, flush=True))
    rounds = len({r["round"] for r in retimed})
    apply_retime(summary, exact, retimed)
    chosen = choose(summary)
    if not args.from_csv or Path(args.from_csv).resolve() != (out / "frontier.csv").resolve():
        write_csv(out / "frontier.csv", rows)
    if retimed and (not args.from_csv or args.retime
                    or Path(args.from_csv).parent.resolve() != out.resolve()):
        write_csv(out / "frontier-retime.csv", retimed)
    md = markdown(summary, exact, chosen, included, excluded, started, finished, threads, rows,
                  retimed, rounds)
    drew = plot(out / "frontier.png", summary, chosen)
    if drew:
        md += ("\n![time against agreement](frontier.png)\n\nTop: every point at the sweep's "
               "one timing; bottom (when re-timed): the candidates at their re-timed totals, "
               "on which the rule chose.\n")
    atomic_write(out / "frontier.md", lambda fh: fh.write(md.encode()))
    for name, s in zip(("fast", "fastest"), chosen):
        print(f"{name}: " + (_choice(s) if s else "no point meets the rule"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
