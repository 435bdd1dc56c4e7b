"""Speed against Doodler itself: Doodler's own segmentation code and the engine's modes, timed
on the same real MLP-era files, one fresh process per run, runners alternating.

For every real Doodler file of an MLP era (and, with ``--trials``, every earlier trial stored
in it) each runner rebuilds the label in its own subprocess:

* ``doodler``: dash_doodler's ``image_segmentation.py`` of the file's era commit (779690c for
  late-2021 files, 7054a6e for May 2022 files), taken from the local mirror into
  ``/tmp/doodler_code/<commit>/`` (never into this repository) and imported alone; its
  ``segmentation`` is called as the app called it (the file's sliders; multichannel,
  intensity, edges and texture on; sigma 1..16).  No thread limit is set: scikit-learn's BLAS
  and joblib run as they did under Doodler.
* ``exact``, ``fast``, ``reference`` (and any other mode named with ``--modes``):
  ``doodle_engine.reconstruct(record, mode=...)`` with no thread limit set by this script.

Each run reports the seconds of the segmentation call alone, the whole process's wall time
(interpreter start, imports, reading the file, compiled-kernel loading), the MLP's epochs, the
peak resident memory and the pixels that differ from the stored label.  Rounds repeat the
whole set with the runners' order rotated, so slow drifts of the machine hit every runner
alike; the summary gives per-file medians and the speed-up of each mode over Doodler.

    python benchmarks/doodler_speed.py --csv docs/measurements/doodler-speed.csv [--rounds 3] [--trials]
    python benchmarks/doodler_speed.py --summary docs/measurements/doodler-speed.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "doodler"
#: Doodler's code for each MLP era with a dash_doodler commit
ERA_COMMIT = {"mlp-2021-10": "779690c", "mlp-2022-05": "7054a6e"}
FIELDS = ["round", "file", "trial", "era", "runner", "call_s", "process_s", "epochs", "fit_s",
          "peak_mb", "diff_px", "pixels", "load1"]


#: ``--before DIR``: another checkout of the engine (e.g. an older commit) whose modes run as
#: runners named ``MODE@before``, so before / after ratios come from one run
BEFORE_ENV = "DOODLE_SPEED_ENGINE_ROOT"


def _engine_root():
    return Path(os.environ.get(BEFORE_ENV) or ROOT)


def _record(path, trial):
    sys.path.insert(0, str(_engine_root()))
    import doodle_engine as de  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

    rec = de.load(path, trials=bool(trial))
    if trial:
        rec = next(t for t in rec.trials if t.trial_prefix == trial)
    return rec


def _count_epochs(epochs, sklearn):
    """Record the epochs and seconds of every MLP fitted in this process (scikit-learn's, when ``sklearn``,
    and the engine's), without changing what the fit does.  scikit-learn is imported only for
    the runners that use it, so the engine's compiled modes keep their own start-up."""
    from doodle_engine.kernels import mlp  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

    fit_mlp = mlp.fit_mlp

    def counted_mlp(*a, **k):
        t0 = time.perf_counter()
        model = fit_mlp(*a, **k)
        epochs.append((model.n_iter_, time.perf_counter() - t0))
        return model

    mlp.fit_mlp = counted_mlp
    if not sklearn:
        return
    from sklearn.neural_network import MLPClassifier  # noqa: PLC0415  (only the runners that use it pay its start-up)

    fit = MLPClassifier.fit

    def counted(self, *a, **k):
        t0 = time.perf_counter()
        out = fit(self, *a, **k)
        epochs.append((self.n_iter_, time.perf_counter() - t0))
        return out

    MLPClassifier.fit = counted


def _doodler(rec, work):
    """Doodler's segmentation of the record's era commit; returns its 1-based label."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from doodler_yardstick import _shims, checkout  # noqa: PLC0415  (after sys.path)

    code = checkout(ERA_COMMIT[rec.settings.era])
    _shims()
    sys.path.insert(0, str(code))
    import image_segmentation as mod  # noqa: PLC0415  (the Doodler commit's own module, after sys.path)

    s = rec.settings
    (work / "results").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seg = mod.segmentation(rec.image, str(work / "image.jpg"), str(work / "results"),
                           "show-segmentation.value", s.crf_theta, s.crf_mu,
                           s.classifier_downsample, s.crf_downsample, s.gt_prob,
                           rec.doodles.copy(), s.n_sigmas, True, True, True, True,
                           s.sigma_min, s.sigma_max)
    return time.perf_counter() - t0, seg


def run_one(path, trial, runner):
    """One run in this process; returns the row's measured values."""
    rec = _record(path, trial)
    epochs = []
    _count_epochs(epochs, sklearn=runner in ("doodler", "reference"))
    if runner == "doodler":
        with tempfile.TemporaryDirectory(prefix="doodler-speed-") as tmp:
            secs, seg = _doodler(rec, Path(tmp))
        seg = np.asarray(seg).astype(np.int64)
        rebuilt = np.where(seg == 0, 255, seg - 1)
    else:
        import doodle_engine as de  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

        t0 = time.perf_counter()
        res = de.reconstruct(rec, mode=runner.split("@")[0])
        secs = time.perf_counter() - t0
        rebuilt = res.label0
    diff = int((rebuilt != rec.label).sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ep, fit_s = epochs[-1] if epochs else ("", "")
    return {"era": rec.settings.era, "call_s": secs, "epochs": ep, "fit_s": fit_s,
            "peak_mb": peak, "diff_px": diff, "pixels": int(rec.label.size)}


def jobs(folder, trials):
    """(path, trial prefix or "") for every MLP-era result Doodler's code here can rebuild."""
    sys.path.insert(0, str(ROOT))
    import doodle_engine as de  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

    out = []
    for path in sorted(Path(folder).glob("*.npz")):
        rec = de.load(path, trials=trials)
        for r in [rec] + (rec.trials if trials else []):
            if r.settings is not None and r.settings.era in ERA_COMMIT:
                out.append((str(path), r.trial_prefix or ""))
    return out


def _spawn(path, trial, runner, before=None):
    cmd = [sys.executable, __file__, "--one", path, trial or "-", runner]
    env = dict(os.environ)
    env.pop(BEFORE_ENV, None)
    if runner.endswith("@before"):
        env[BEFORE_ENV] = str(before)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=str(before) if runner.endswith("@before") else None)
    wall = time.perf_counter() - t0
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{Path(path).name} {trial} {runner}: {tail[0]}")
    return dict(json.loads(line[0][7:]), process_s=wall)


def _append(csv_path, row):
    new = not Path(csv_path).exists()
    with open(csv_path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def measure(folder, runners, rounds, trials, csv_path=None, before=None):
    todo = jobs(folder, trials)
    rows = []
    for rnd in range(rounds):
        for j, (path, trial) in enumerate(todo):
            k = (rnd + j) % len(runners)
            for runner in runners[k:] + runners[:k]:
                res = _spawn(path, trial, runner, before)
                row = {"round": rnd, "file": Path(path).name, "trial": trial, "runner": runner,
                       "load1": round(os.getloadavg()[0], 2), **res}
                for key in ("call_s", "process_s", "peak_mb", "fit_s"):
                    if row[key] != "":
                        row[key] = round(row[key], 3)
                rows.append(row)
                print(",".join(str(row[f]) for f in FIELDS), flush=True)
                if csv_path:
                    _append(csv_path, row)
    return rows


def summary(csv_path):
    """Markdown: per result the median call and process seconds of each runner, and the
    speed-up of each engine mode over Doodler (median call time / median call time)."""
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    runners = list(dict.fromkeys(r["runner"] for r in rows))
    modes = [r for r in runners if r != "doodler"]
    results = list(dict.fromkeys((r["file"], r["trial"]) for r in rows))

    def med(key, res, runner):
        vals = [float(r[key]) for r in rows
                if (r["file"], r["trial"]) == res and r["runner"] == runner and r[key] != ""]
        return statistics.median(vals) if vals else None

    pairs = [(m, m.split("@")[0]) for m in modes if m.endswith("@before")
             and m.split("@")[0] in runners]
    if "doodler" not in runners:
        modes = []
    head = ["result", *(f"{r} s" for r in runners), *(f"doodler / {m}" for m in modes),
            *(f"{b} / {a}" for b, a in pairs),
            "epochs (" + " / ".join(runners) + ")",
            "fit ms per epoch (" + " / ".join(runners) + ")",
            "px differ (" + " / ".join(runners) + ")"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios = {m: [] for m in modes}
    before_after = {p: [] for p in pairs}
    before_after_proc = {p: [] for p in pairs}
    proc_ratios = {m: [] for m in modes}
    for res in results:
        call = {r: med("call_s", res, r) for r in runners}
        proc = {r: med("process_s", res, r) for r in runners}
        cells = [res[0].replace("dash_doodler__results", "")[:40] + (f" {res[1]}" if res[1] else "")]
        cells += [f"{call[r]:.2f} ({proc[r]:.1f})" if call[r] is not None else "" for r in runners]
        for m in modes:
            if call["doodler"] and call[m]:
                ratios[m].append(call["doodler"] / call[m])
                proc_ratios[m].append(proc["doodler"] / proc[m])
                cells.append(f"×{call['doodler'] / call[m]:.2f}")
            else:
                cells.append("")
        for b, a in pairs:
            if call[b] and call[a]:
                before_after[(b, a)].append(call[b] / call[a])
                before_after_proc[(b, a)].append(proc[b] / proc[a])
                cells.append(f"×{call[b] / call[a]:.2f}")
            else:
                cells.append("")
        ep = {r: med("epochs", res, r) for r in runners}
        fit = {r: med("fit_s", res, r) for r in runners}
        cells.append(" / ".join("" if ep[r] is None else f"{ep[r]:.0f}" for r in runners))
        cells.append(" / ".join("" if not ep[r] or fit[r] is None else f"{1e3 * fit[r] / ep[r]:.0f}"
                                for r in runners))
        cells.append(" / ".join("" if med("diff_px", res, r) is None
                                else f"{med('diff_px', res, r):,.0f}" for r in runners))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Seconds: median of the segmentation call (whole process in brackets).")
    for m in modes:
        if ratios[m]:
            lines.append(f"- {m}: call ×{statistics.median(ratios[m]):.2f} median "
                         f"(×{min(ratios[m]):.2f}–{max(ratios[m]):.2f}); whole process "
                         f"×{statistics.median(proc_ratios[m]):.2f} median "
                         f"(×{min(proc_ratios[m]):.2f}–{max(proc_ratios[m]):.2f})")
    for (b, a), vals in before_after.items():
        if vals:
            pv = before_after_proc[(b, a)]
            lines.append(f"- {b} / {a}: call ×{statistics.median(vals):.2f} median "
                         f"(×{min(vals):.2f}–{max(vals):.2f}); whole process "
                         f"×{statistics.median(pv):.2f} median (×{min(pv):.2f}–{max(pv):.2f})")
    loads = [float(r["load1"]) for r in rows]
    lines.append(f"- {len(rows)} runs, 1-minute load average {min(loads):.2f}–{max(loads):.2f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", default=str(REAL), help="real Doodler npz files")
    ap.add_argument("--modes", nargs="+", default=["exact", "fast", "fastest", "reference"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", action="store_true", help="also the earlier trials in a file")
    ap.add_argument("--only", help="only files whose name contains this")
    ap.add_argument("--before", metavar="DIR",
                    help="another checkout of the engine: its modes run too, as MODE@before")
    ap.add_argument("--no-doodler", action="store_true", help="leave Doodler's own code out")
    ap.add_argument("--csv", help="append rows to this CSV")
    ap.add_argument("--summary", metavar="CSV", help="print a Markdown table of a results CSV")
    ap.add_argument("--one", nargs=3, metavar=("NPZ", "TRIAL", "RUNNER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        path, trial, runner = args.one
        print("RESULT " + json.dumps(run_one(path, "" if trial == "-" else trial, runner)))
        return 0
    if args.summary:
        print(summary(args.summary))
        return 0
    folder = args.folder
    if args.only:
        tmp = Path(tempfile.mkdtemp(prefix="doodler-speed-only-"))
        for p in Path(folder).glob(f"*{args.only}*.npz"):
            (tmp / p.name).symlink_to(p.resolve())
        folder = tmp
    runners = ([] if args.no_doodler else ["doodler"]) + list(args.modes)
    if args.before:
        runners += [f"{m}@before" for m in args.modes if m != "reference"]
    measure(folder, runners, args.rounds, args.trials, args.csv,
            before=Path(args.before).resolve() if args.before else None)
    if args.csv:
        print(summary(args.csv))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
