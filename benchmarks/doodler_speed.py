"""Speed against Doodler itself, as users see it: Doodler's own segmentation code and the
engine's modes on the same real MLP-era files, each timed three ways in one run (the warm call,
the cold call, the whole process), and the engine's modes a fourth (a command served by a warm
``doodle-engine serve``), fresh processes, runners' order rotated.

For every real Doodler file of an MLP era (and, with ``--trials``, every earlier trial stored
in it) each runner rebuilds the label:

* ``doodler``: dash_doodler's ``image_segmentation.py`` of the file's era commit (779690c for
  late-2021 files, 7054a6e for May 2022 files), taken from the local mirror into
  ``/tmp/doodler_code/<commit>/`` (never into this repository) and imported alone; its
  ``segmentation`` is called as the app called it (the file's sliders; multichannel,
  intensity, edges and texture on; sigma 1..16).  No thread limit is set: scikit-learn's BLAS
  and joblib run as they did under Doodler.  The function keeps nothing between calls (a new
  pipeline with ``random_state=1`` each call, features memory-mapped to an anonymous temporary
  file, no globals, no files written), so calling it again repeats the same work.
* ``exact``, ``fast``, ``fastest`` (and any other mode named with ``--modes``, e.g.
  ``reference``): ``doodle_engine.reconstruct(record, mode=...)`` with no thread limit set by
  this script.

Each runner, for each result, runs two fresh processes:

1. the *timing process* reads the file, makes the call once (the **cold call**: the first
   call in a fresh process, with whatever the code loads on first use) and then ``--warm N``
   times more on the same inputs (the **warm call**: their median); it checks every call's
   label against the stored one;
2. the *whole process* reads the file, makes exactly one call and exits, nothing else in it;
   the parent times it from spawn to exit (**whole process**) and reads its peak resident
   memory from the operating system (``wait4``), so nothing is added to the process measured.

3. for an engine mode on a file's own result (not an earlier trial: no command rebuilds one
   trial alone), the *served command*: ``doodle-engine validate FILE --quiet --workers 1
   --mode MODE`` as a client process of a ``doodle-engine serve`` this script starts once
   (after priming, in a private runtime folder; ``--no-served`` leaves it out), timed from
   spawn to exit; the server's log must show that it ran the command.  It does a little more
   than the whole process (the comparison and the table); it is set against Doodler's whole
   process and against Doodler's warm call (Doodler's app was itself a running server).

Rounds repeat the whole set with the runners' order rotated, so slow drifts of the machine hit
every runner alike.  The summary gives Doodler's time over each mode's for the three measures,
per result (medians over rounds) and over the results (median, min-max).  CSV columns
(:data:`FIELDS`):

``date`` (of the run), ``round``, ``file``, ``trial`` (prefix; empty: the file's own result),
``era``, ``runner``; ``cold_s``, ``warm_s`` (median of ``warm_n`` warm calls; empty when
``--warm 0``), ``process_s`` (whole process, spawn to exit), ``served_s`` (the served command,
spawn to exit; empty for Doodler, trials and other checkouts), seconds; ``epochs`` (the MLP's
epochs in the cold call), ``fit_s`` (its fit's seconds in the timing process's last call: a
warm one when ``--warm`` >= 1); ``peak_mb`` (the whole process's peak resident memory);
``diff_px`` (pixels of the cold call's label that differ from the stored label), ``warm_diff_px``
(pixels where any warm call's label differs from the cold call's: 0 unless a call leaves state
that changes the next), ``pixels``; ``load1`` (1-minute load average after the run).

    python benchmarks/doodler_speed.py --trials --rounds 2 --warm 2 --csv docs/measurements/doodler-speed.csv
    python benchmarks/doodler_speed.py --summary docs/measurements/doodler-speed.csv
    python benchmarks/doodler_speed.py --only 14-36__2017 L8 --rounds 1 --csv /tmp/speed.csv  # a subset

Summaries read CSVs of the earlier layout too (``call_s``: the cold call, no warm call).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import shutil
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
FIELDS = ["date", "round", "file", "trial", "era", "runner", "cold_s", "warm_s", "warm_n",
          "process_s", "served_s", "epochs", "fit_s", "peak_mb", "diff_px", "warm_diff_px",
          "pixels", "load1"]
#: the measures, in the order the summary shows them: (name, heading, the engine's column,
#: Doodler's column it is set against).  A served command is set against Doodler's whole
#: process and against its warm call (Doodler's app was itself a running server).
MEASURES = (("warm_s", "warm call", "warm_s", "warm_s"),
            ("cold_s", "cold call", "cold_s", "cold_s"),
            ("process_s", "whole process", "process_s", "process_s"),
            ("served_s", "served command / Doodler's whole process", "served_s", "process_s"),
            ("served_warm", "served command / Doodler's warm call", "served_s", "warm_s"))
#: the client of a warm server (``doodle-engine`` as installed)
LAUNCH = "from doodle_engine.launch import run; run()"
DEFAULT_MODES = ["exact", "fast", "fastest"]

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


def _doodler_call(rec, work):
    """Doodler's segmentation of the record's era commit, imported (not timed) and returned as
    a call: ``call()`` -> (seconds of ``segmentation`` alone, 0-based label, 255 unlabelled)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from doodler_yardstick import _shims, checkout  # noqa: PLC0415  (after sys.path)

    code = checkout(ERA_COMMIT[rec.settings.era])
    _shims()
    sys.path.insert(0, str(code))
    import image_segmentation as mod  # noqa: PLC0415  (the Doodler commit's own module, after sys.path)

    s = rec.settings
    (work / "results").mkdir(parents=True, exist_ok=True)

    def call():
        image, doodles = rec.image.copy(), rec.doodles.copy()  # fresh inputs every call
        t0 = time.perf_counter()
        seg = mod.segmentation(image, str(work / "image.jpg"), str(work / "results"),
                               "show-segmentation.value", s.crf_theta, s.crf_mu,
                               s.classifier_downsample, s.crf_downsample, s.gt_prob,
                               doodles, s.n_sigmas, True, True, True, True,
                               s.sigma_min, s.sigma_max)
        secs = time.perf_counter() - t0
        seg = np.asarray(seg).astype(np.int64)
        return secs, np.where(seg == 0, 255, seg - 1)

    return call


def _engine_call(rec, runner):
    """The engine's reconstruction in mode ``runner`` (``MODE@before``: that checkout's), as a
    call: ``call()`` -> (seconds of ``reconstruct``, 0-based label)."""
    import doodle_engine as de  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

    def call():
        t0 = time.perf_counter()
        res = de.reconstruct(rec, mode=runner.split("@")[0])
        return time.perf_counter() - t0, res.label0

    return call


def _call(rec, runner, work):
    return _doodler_call(rec, work) if runner == "doodler" else _engine_call(rec, runner)


def run_one(path, trial, runner, warm):
    """The timing process: the cold call, then ``warm`` more; returns the row's measured values."""
    rec = _record(path, trial)
    epochs = []
    _count_epochs(epochs, sklearn=runner in ("doodler", "reference"))
    with tempfile.TemporaryDirectory(prefix="doodler-speed-") as tmp:
        call = _call(rec, runner, Path(tmp))
        cold, label = call()
        cold_fits = list(epochs)
        warm_s, warm_diff = [], 0
        for _ in range(warm):
            secs, again = call()
            warm_s.append(secs)
            warm_diff = max(warm_diff, int((again != label).sum()))
    ep = cold_fits[-1][0] if cold_fits else ""
    return {"era": rec.settings.era, "cold_s": cold,
            "warm_s": statistics.median(warm_s) if warm_s else "", "warm_n": warm,
            "epochs": ep, "fit_s": epochs[-1][1] if epochs else "",
            "diff_px": int((label != rec.label).sum()), "warm_diff_px": warm_diff if warm else "",
            "pixels": int(rec.label.size)}


def run_whole(path, trial, runner):
    """The whole process: read the file, one call, nothing else."""
    rec = _record(path, trial)
    with tempfile.TemporaryDirectory(prefix="doodler-speed-") as tmp:
        _call(rec, runner, Path(tmp))()


def jobs(folder, trials, only=None):
    """(path, trial prefix or "") for every MLP-era result Doodler's code here can rebuild;
    ``only``: those whose file name (and trial prefix, after a space) contains one of these."""
    sys.path.insert(0, str(ROOT))
    import doodle_engine as de  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

    out = []
    for path in sorted(Path(folder).glob("*.npz")):
        rec = de.load(path, trials=trials)
        for r in [rec] + (rec.trials if trials else []):
            name = path.name + (f" {r.trial_prefix}" if r.trial_prefix else "")
            if only and not any(o in name for o in only):
                continue
            if r.settings is not None and r.settings.era in ERA_COMMIT:
                out.append((str(path), r.trial_prefix or ""))
    return out


def _env(runner, before):
    env = dict(os.environ)
    env.pop(BEFORE_ENV, None)
    if runner.endswith("@before"):
        env[BEFORE_ENV] = str(before)
    return env, (str(before) if runner.endswith("@before") else None)


def _spawn(path, trial, runner, warm, before=None):
    """The timing process; returns its row values."""
    env, cwd = _env(runner, before)
    cmd = [sys.executable, __file__, "--one", path, trial or "-", runner, str(warm)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{Path(path).name} {trial} {runner}: {tail[0]}")
    return json.loads(line[0][7:])


def _spawn_whole(path, trial, runner, before=None):
    """The whole process, spawn to exit; (seconds, its peak resident MB from ``wait4``)."""
    env, cwd = _env(runner, before)
    cmd = [sys.executable, __file__, "--whole", path, trial or "-", runner]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"{Path(path).name} {trial} {runner} (whole process): {tail[0]}")
    return wall, usage.ru_maxrss / 1024


class Served:
    """A ``doodle-engine serve`` of the engine measured here, in a private runtime folder; its
    ``run`` times one ``doodle-engine validate FILE`` client process from spawn to exit and
    checks, from the server's log, that the server ran it (not the client on its own)."""

    def __init__(self, root=ROOT):
        sys.path.insert(0, str(root))
        from doodle_engine.rendezvous import NO_SERVER_ENV  # noqa: PLC0415  (after sys.path: the engine checkout this run measures)

        self.tmp = tempfile.mkdtemp(prefix="ds-")  # a socket's path holds at most 107 bytes
        self.env = {k: v for k, v in os.environ.items() if k not in (BEFORE_ENV, NO_SERVER_ENV)}
        self.env["XDG_RUNTIME_DIR"] = self.tmp
        self.env["PYTHONPATH"] = str(root) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.log = Path(self.tmp) / "serve.log"
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "serve", "--idle", "0"],
                                         env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        end = time.monotonic() + 600
        while "warm in" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the server did not start: {self.log.read_text()}")
            time.sleep(0.2)
        print(self.log.read_text().strip(), flush=True)

    def run(self, path, mode, cpu=False):
        """Seconds from spawn to exit (with ``cpu``: and the client process's CPU seconds)."""
        before = self.log.read_text().count(": exit 0")
        cmd = [sys.executable, "-c", LAUNCH, "validate", path, "--quiet", "--workers", "1",
               "--mode", mode]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0 or self.log.read_text().count(": exit 0") <= before:
            raise RuntimeError(f"{Path(path).name} {mode}: not served ({self.log.read_text()[-300:]})")
        return (wall, usage.ru_utime + usage.ru_stime) if cpu else wall

    def stop(self):
        subprocess.run([sys.executable, "-c", LAUNCH, "serve", "--stop"], env=self.env,
                       capture_output=True)
        self.proc.wait(timeout=120)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _append(csv_path, row):
    new = not Path(csv_path).exists()
    with open(csv_path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def _rounded(row):
    for key in ("cold_s", "warm_s", "process_s", "served_s", "peak_mb", "fit_s"):
        if row[key] != "":
            row[key] = round(row[key], 3)
    return row


def _prime(todo, runners, before):
    """One unmeasured whole process per engine runner on the first result of each era, so the
    compiled kernels are in the cache before any measured run (none pays for compiling)."""
    firsts = {}
    for path, trial in todo:
        firsts.setdefault(_record(path, trial).settings.era, (path, trial))
    for path, trial in firsts.values():
        for runner in runners:
            if runner != "doodler":
                wall, _ = _spawn_whole(path, trial, runner, before)
                print(f"primed {runner} on {_name({'file': Path(path).name, 'trial': trial})}: "
                      f"{wall:.1f} s", flush=True)


def _servable(runner, trial, server):
    """A served command exists for an engine mode of this checkout on a file's own result
    (``validate FILE`` rebuilds that one; there is no command for one earlier trial alone)."""
    return server is not None and not trial and runner not in ("doodler", "reference") \
        and "@" not in runner


def measure(folder, runners, rounds, trials, warm=2, csv_path=None, before=None, only=None,
            prime=True, served=True):
    todo = jobs(folder, trials, only)
    if not todo:
        raise SystemExit(f"no MLP-era result in {folder}" + (f" matching {only}" if only else ""))
    if prime:
        _prime(todo, runners, before)
    server = Served() if served else None
    rows = []
    today = datetime.date.today().isoformat()
    try:
        for rnd in range(rounds):
            for j, (path, trial) in enumerate(todo):
                k = (rnd + j) % len(runners)
                for runner in runners[k:] + runners[:k]:
                    res = _spawn(path, trial, runner, warm, before)
                    wall, peak = _spawn_whole(path, trial, runner, before)
                    one = server.run(path, runner) if _servable(runner, trial, server) else ""
                    row = _rounded({"date": today, "round": rnd, "file": Path(path).name,
                                    "trial": trial, "runner": runner, **res, "process_s": wall,
                                    "served_s": one, "peak_mb": peak,
                                    "load1": round(os.getloadavg()[0], 2)})
                    rows.append(row)
                    print(",".join(str(row[f]) for f in FIELDS), flush=True)
                    if csv_path:
                        _append(csv_path, row)
    finally:
        if server is not None:
            server.stop()
    return rows


def read_rows(csv_path):
    """The CSV's rows; one of the earlier layout (``call_s``, no warm call) reads as cold calls."""
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if "cold_s" not in r:
            r["cold_s"] = r.get("call_s", "")
        r.setdefault("warm_s", "")
        r.setdefault("served_s", "")
        r.setdefault("warm_diff_px", "")
    return rows


def _median(rows, key, res, runner):
    vals = [float(r[key]) for r in rows
            if (r["file"], r["trial"]) == res and r["runner"] == runner and r.get(key, "") != ""]
    return statistics.median(vals) if vals else None


def _results(rows):
    return list(dict.fromkeys((r["file"], r["trial"]) for r in rows))


def _runners(rows):
    return list(dict.fromkeys(r["runner"] for r in rows))


def speedups(rows, num="doodler", cross=True):
    """``{(runner, measure): {result: ratio}}``: the median seconds of ``num`` over the median
    seconds of each other runner, per result, for each measure (results where either is
    missing are left out).  ``cross``: ``num``'s column is the one a measure sets the engine
    against (:data:`MEASURES`); otherwise the same column (a runner against another)."""
    out = {}
    for runner in _runners(rows):
        if runner == num:
            continue
        for name, _, key, theirs in MEASURES:
            got = {}
            for res in _results(rows):
                a = _median(rows, theirs if cross else key, res, num)
                b = _median(rows, key, res, runner)
                if a and b:
                    got[res] = a / b
            out[(runner, name)] = got
    return out


def spread(ratios):
    """(median, min, max) of a result -> ratio map; None when empty."""
    vals = list(ratios.values())
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def _fmt(sp):
    return "—" if sp is None else f"×{sp[0]:.2f} (×{sp[1]:.2f}–{sp[2]:.2f})"


def readme_sentence(rows):
    """The README's speed sentence: the whole-process medians of exact, fast and fastest, and
    the served commands' when the CSV has them."""
    ups = speedups(rows)
    med = {m: spread(ups.get((m, "process_s"), {})) for m in DEFAULT_MODES}
    if any(v is None for v in med.values()):
        return None
    text = (f"a whole process (start, read the file, one reconstruction, exit) is "
            f"×{med['exact'][0]:.2f} faster than Doodler's in exact mode, ×{med['fast'][0]:.2f} in "
            f"fast mode and ×{med['fastest'][0]:.2f} in fastest mode")
    srv = {m: spread(ups.get((m, "served_s"), {})) for m in DEFAULT_MODES}
    if any(v is None for v in srv.values()):
        return text
    n = len(ups[("exact", "served_s")])
    return (text + f"; a `doodle-engine validate FILE` served by a warm `doodle-engine serve` "
            f"is ×{srv['exact'][0]:.2f}, ×{srv['fast'][0]:.2f} and ×{srv['fastest'][0]:.2f} "
            f"faster than Doodler's whole process (the {n} files' own results)")


def _headline(rows, ups, modes):
    lines = ["| Doodler's time / the engine's | " + " | ".join(m[1] for m in MEASURES) + " |",
             "|---|" + "---|" * len(MEASURES)]
    for m in modes:
        lines.append(f"| {m} | " + " | ".join(_fmt(spread(ups[(m, k[0])])) for k in MEASURES) + " |")
    return lines


#: the columns of the per-result seconds: warm call, cold call, whole process, served command
SECONDS = ("warm_s", "cold_s", "process_s", "served_s")


def _secs(rows, res, runner):
    vals = [_median(rows, k, res, runner) for k in SECONDS]
    return " / ".join("—" if v is None else f"{v:.2f}" for v in vals)


def _per_result(rows, ups, runners, modes, pairs):
    head = ["result", *(f"{r} s" for r in runners), *(f"doodler / {m}" for m in modes),
            *(f"{b} / {a}" for b, a in pairs),
            "epochs (" + " / ".join(runners) + ")",
            "fit ms per epoch (" + " / ".join(runners) + ")",
            "px differ (" + " / ".join(runners) + ")"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in _results(rows):
        cells = [res[0].replace("dash_doodler__results", "")[:40] + (f" {res[1]}" if res[1] else "")]
        cells += [_secs(rows, res, r) for r in runners]
        cells += [" / ".join("—" if res not in ups[(m, k[0])] else f"×{ups[(m, k[0])][res]:.2f}"
                             for k in MEASURES) for m in modes]
        for b, a in pairs:
            sb = speedups([r for r in rows if r["runner"] in (a, b)], num=b, cross=False)
            cells.append(" / ".join("—" if res not in sb[(a, k)] else f"×{sb[(a, k)][res]:.2f}"
                                    for k in SECONDS))
        ep = {r: _median(rows, "epochs", res, r) for r in runners}
        fit = {r: _median(rows, "fit_s", res, r) for r in runners}
        dif = {r: _median(rows, "diff_px", res, r) for r in runners}
        cells.append(" / ".join("" if ep[r] is None else f"{ep[r]:.0f}" for r in runners))
        cells.append(" / ".join("" if not ep[r] or fit[r] is None else f"{1e3 * fit[r] / ep[r]:.0f}"
                                for r in runners))
        cells.append(" / ".join("" if dif[r] is None else f"{dif[r]:,.0f}" for r in runners))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _name(row):
    return row["file"] + (f" {row['trial']}" if row["trial"] else "")


def _footer(rows, ups, modes, pairs):
    lines = ["", "Seconds: warm call / cold call / whole process / served command (medians over "
             "rounds); ratios in the order of the first table's columns: Doodler's median "
             "seconds over the mode's (a served command over Doodler's whole process, then "
             "over Doodler's warm call); between two engines, the same column of each."]
    for b, a in pairs:
        sb = speedups([r for r in rows if r["runner"] in (a, b)], num=b, cross=False)
        lines.append(f"- {b} / {a}: " + "; ".join(f"{m[1]} {_fmt(spread(sb[(a, m[0])]))}"
                                                   for m in MEASURES[:3]))
    warm = [r for r in rows if r["warm_diff_px"] not in ("", "0")]
    n_warm = {r["warm_n"] for r in rows if r.get("warm_n")}
    if n_warm:
        lines.append(f"- warm call: median of {'/'.join(sorted(n_warm))} calls after the cold one; "
                     + ("every warm call gave the cold call's label" if not warm else
                        "warm calls changed the label in: " + ", ".join(
                            f"{_name(r)} {r['runner']} ({r['warm_diff_px']} px)"
                            for r in warm)))
    else:
        lines.append("- no warm calls in this CSV (earlier layout: cold call and whole process only)")
    loads = [float(r["load1"]) for r in rows]
    dates = sorted({r["date"] for r in rows if r.get("date")})
    n = len(_results(rows))
    lines.append(f"- {len(rows)} runs ({n} result{'s' * (n != 1)}), 1-minute load average "
                 f"{min(loads):.2f}–{max(loads):.2f}" + (f", {', '.join(dates)}" if dates else ""))
    sentence = readme_sentence(rows)
    if sentence:
        lines.append(f"- README: {sentence} (median over the results)")
    return lines


def summary(csv_path):
    """Markdown: Doodler's time over each mode's for the warm call, the cold call and the whole
    process (median and range over the results), then per result the seconds and ratios."""
    rows = read_rows(csv_path)
    runners = _runners(rows)
    pairs = [(m, m.split("@")[0]) for m in runners if m.endswith("@before")
             and m.split("@")[0] in runners]
    modes = [r for r in runners if r != "doodler"] if "doodler" in runners else []
    ups = speedups(rows) if modes else {}
    lines = _headline(rows, ups, modes) + [""] if modes else []
    lines += _per_result(rows, ups, runners, modes, pairs)
    lines += _footer(rows, ups, modes, pairs)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", default=str(REAL), help="real Doodler npz files")
    ap.add_argument("--modes", nargs="+", default=DEFAULT_MODES,
                    help="engine modes to run (default: %(default)s; add reference if wanted)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warm", type=int, default=2, metavar="N",
                    help="warm calls after the cold one in the timing process (their median)")
    ap.add_argument("--trials", action="store_true", help="also the earlier trials in a file")
    ap.add_argument("--only", nargs="+", metavar="TEXT",
                    help="only results whose file name (+ ' ' + trial prefix) contains one of these")
    ap.add_argument("--before", metavar="DIR",
                    help="another checkout of the engine: its modes run too, as MODE@before")
    ap.add_argument("--no-doodler", action="store_true", help="leave Doodler's own code out")
    ap.add_argument("--no-prime", action="store_true",
                    help="skip the unmeasured first run per engine mode and era that fills the kernel cache")
    ap.add_argument("--no-served", action="store_true",
                    help="no served commands (no 'doodle-engine serve' started for the run)")
    ap.add_argument("--csv", help="append rows to this CSV")
    ap.add_argument("--summary", metavar="CSV", help="print the Markdown tables of a results CSV")
    ap.add_argument("--one", nargs=4, metavar=("NPZ", "TRIAL", "RUNNER", "WARM"), help=argparse.SUPPRESS)
    ap.add_argument("--whole", nargs=3, metavar=("NPZ", "TRIAL", "RUNNER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        path, trial, runner, warm = args.one
        print("RESULT " + json.dumps(run_one(path, "" if trial == "-" else trial, runner, int(warm))))
        return 0
    if args.whole:
        path, trial, runner = args.whole
        run_whole(path, "" if trial == "-" else trial, runner)
        return 0
    if args.summary:
        print(summary(args.summary))
        return 0
    runners = ([] if args.no_doodler else ["doodler"]) + list(args.modes)
    if args.before:
        runners += [f"{m}@before" for m in args.modes if m != "reference"]
    measure(args.folder, runners, args.rounds, args.trials, args.warm, args.csv,
            before=Path(args.before).resolve() if args.before else None, only=args.only,
            prime=not args.no_prime, served=not args.no_served)
    if args.csv:
        print(summary(args.csv))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
