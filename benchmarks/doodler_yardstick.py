"""Doodler's own segmentation code, re-run today on the PNG-era cases of its history.

For each case built by ``benchmarks/doodler_cases.py`` this script takes dash_doodler's
``image_segmentation.py`` of a chosen commit from the local mirror (written to
``/tmp/doodler_code/<commit>/``, never into this repository), imports that module alone (the
GUI modules are not imported; the two tiny shims below replace what the segmentation module
needs from today's libraries or from plotly), calls its ``segmentation`` function with the
doodles decoded from the case's doodle PNG and the app's default slider values of that commit,
and compares the result with the stored greyscale label PNG.  One subprocess per run.

    python benchmarks/doodler_yardstick.py --cases /tmp/doodler_cases [--commit ba61375]
        [--session NAME] [--seeds 0 1 2] [--csv docs/doodler-yardstick.csv]

Doodler never seeded its forest; ``--seeds`` seeds NumPy's global generator, from which an
unseeded scikit-learn forest draws its trees' seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = "/work/.mirror/Doodleverse+dash_doodler/repo"
CODE_DIR = Path(tempfile.gettempdir()) / "doodler_code"

# The app's default slider values per commit (read from app.py / doodler.py / my_defaults.py
# of that commit; see docs/eras-history.md).  "call" names the segmentation signature.
DEFAULTS = {
    # rf-2020-10b: median checkbox on (disk 20), intensity + texture, sigma [2, 16]
    "ba61375": dict(call="2020-10-17", median=["Apply Median Filter"], edges=False,
                    sigma=(2, 16)),
    # rf-2020-10c/d: median slider 20, theta 40, mu 100, sigma [1, 16]
    "7245668": dict(call="2020-10-18", median=20, theta=40, mu=100, edges=False, sigma=(1, 16)),
    "725a7fa": dict(call="2020-10-18", median=20, theta=40, mu=100, edges=False, sigma=(1, 16)),
    # rf-2020-10e
    "247a878": dict(call="2020-10-18", median=20, theta=40, mu=100, edges=False, sigma=(1, 16)),
    # rf-2020-10f: theta 60, mu 80, median 10 (not applied to the saved label)
    "101f9a3": dict(call="2020-10-18", median=10, theta=60, mu=80, edges=False, sigma=(1, 16)),
    # rf-2021-03c: my_defaults.py of 647a0de
    "647a0de": dict(call="2021-03", theta=40, mu=100, median=3, rf_ds=10, crf_ds=3, gt=0.9,
                    sigma=(1, 16), n_estimators=3),
}


def _git(mirror, *args):
    proc = subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip())
    return proc.stdout


def checkout(commit, mirror=DEFAULT_MIRROR):
    """The commit's .py files under CODE_DIR/<commit>/ (blobs missing from the mirror skipped);
    returns the folder holding image_segmentation.py."""
    dest = CODE_DIR / commit
    marker = dest / ".complete"
    if not marker.exists():
        for line in _git(mirror, "ls-tree", "-r", "--name-only", commit).decode().splitlines():
            if not line.endswith(".py") or line.startswith("website/"):
                continue
            try:
                data = _git(mirror, "show", f"{commit}:{line}")
            except RuntimeError:
                continue
            out = dest / line
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("ok")
    for cand in (dest / "src", dest / "app_files" / "src", dest):
        if (cand / "image_segmentation.py").is_file():
            return cand
    raise RuntimeError(f"{commit}: no image_segmentation.py")


def _shims():
    """What the 2020-21 segmentation module needs that today's stack lacks: NumPy's removed
    aliases (np.int, np.float, np.product) and plotly's colour lists (used only to colour the
    saved label PNG)."""
    import numpy as np

    for name, value in (("int", int), ("float", float), ("bool", bool)):
        if name not in np.__dict__:
            setattr(np, name, value)
    if not hasattr(np, "product"):
        np.product = np.prod
    if "plotly" not in sys.modules:
        from doodle_engine.palette import G10, LIGHT24

        plotly = types.ModuleType("plotly")
        express = types.ModuleType("plotly.express")
        express.colors = types.SimpleNamespace(
            qualitative=types.SimpleNamespace(G10=list(G10), Light24=list(LIGHT24)))
        plotly.express = express
        sys.modules["plotly"] = plotly
        sys.modules["plotly.express"] = express


def _call(mod, d, img, mask, work):
    """Run the commit's segmentation with the app's defaults; returns the 1-based label."""
    assets = work / "assets"
    (work / "results").mkdir(parents=True, exist_ok=True)
    assets.mkdir(parents=True, exist_ok=True)
    img_path = str(assets / "case.jpg")
    lo, hi = d["sigma"]
    if d["call"] == "2020-10-17":
        seg, _clf = mod.segmentation(img, img_path, d["median"], mask, multichannel=True,
                                     intensity=True, edges=d["edges"], texture=True,
                                     sigma_min=lo, sigma_max=hi)
        return seg
    if d["call"] == "2020-10-18":
        seg, _clf = mod.segmentation(img, img_path, d["median"], d["theta"], d["mu"], mask,
                                     multichannel=True, intensity=True, edges=d["edges"],
                                     texture=True, sigma_min=lo, sigma_max=hi)
        return seg
    if d["call"] == "2021-03":
        return mod.segmentation(img, img_path, str(work / "results"), str(work / "rf.pkl.z"),
                                str(work / "data.pkl.z"), "show-segmentation.value",
                                d["theta"], d["mu"], d["median"], d["rf_ds"], d["crf_ds"],
                                d["gt"], mask, True, True, True, True, lo, hi, d["n_estimators"])
    raise ValueError(d["call"])


def run_one(session_dir, stem, commit, seed, mirror=DEFAULT_MIRROR, history=None):
    """One run in this process: (accuracy, differing pixels, seconds).  ``history``: stems of
    earlier images of the session whose rows the 2021 forest accumulates first (in order)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from doodle_engine import png as ps

    code = checkout(commit, mirror)
    _shims()
    sys.path.insert(0, str(code))
    import image_segmentation as mod  # noqa: E402  (the commit's module)

    entries = {ps.parse_name(e["path"])["stem"]: e for e in ps.read_png_session(session_dir)}
    d = DEFAULTS[commit]
    with tempfile.TemporaryDirectory(prefix="yardstick-") as tmp:
        work = Path(tmp)
        for h in history or []:
            if len(np.unique(entries[h]["doodles"][entries[h]["doodles"] > 0])) < 2:
                continue  # one class doodled: Doodler skipped the forest (no rows, no trees)
            np.random.seed(seed)
            _call(mod, d, entries[h]["image"], entries[h]["doodles"].copy(), work)
        e = entries[stem]
        np.random.seed(seed)
        t0 = time.perf_counter()
        seg = np.asarray(_call(mod, d, e["image"], e["doodles"].copy(), work))
        secs = time.perf_counter() - t0
    stored = e["label"].astype(np.int64) + 1  # back to Doodler's 1-based values
    stored[e["label"] == 255] = 0
    diff = int((seg.astype(np.int64) != stored).sum())
    return 1.0 - diff / stored.size, diff, secs


def summary(csv_path):
    """Markdown table: one row per (session, case, code commit, history), median over seeds."""
    groups = {}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["session"], row["case"], row["code_commit"], row["history"])
            groups.setdefault(key, []).append(row)
    lines = ["| session | case | code | history | seeds | accuracy per seed (%) | median (%) "
             "| median px differing |", "|---|---|---|---|---|---|---|---|"]
    for (sess, case, commit, hist), rows in groups.items():
        rows.sort(key=lambda r: int(r["seed"]))
        accs = sorted(float(r["accuracy"]) for r in rows)
        diffs = sorted(int(r["diff_px"]) for r in rows)
        per_seed = ", ".join(f"{float(r['accuracy']) * 100:.2f}" for r in rows)
        seeds = ",".join(r["seed"] for r in rows)
        lines.append(f"| {sess} | {case} | {commit} | {hist} | {seeds} | {per_seed} | "
                     f"{accs[len(accs) // 2] * 100:.2f} | {diffs[len(diffs) // 2]:,} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help="folder written by doodler_cases.py --build")
    ap.add_argument("--session", action="append", help="only this session (repeatable)")
    ap.add_argument("--case", action="append", help="only this image stem (repeatable)")
    ap.add_argument("--commit", help="Doodler code of this commit (default: the session's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--session-history", action="store_true",
                    help="2021 forest: first segment the session's earlier images (time order)")
    ap.add_argument("--csv", help="append rows to this CSV")
    ap.add_argument("--mirror", default=DEFAULT_MIRROR)
    ap.add_argument("--summary", metavar="CSV", help="print a Markdown table of a results CSV")
    ap.add_argument("--one", nargs=4, metavar=("SESSION_DIR", "STEM", "COMMIT", "SEED"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--history", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        sdir, stem, commit, seed = args.one
        acc, diff, secs = run_one(sdir, stem, commit, int(seed), args.mirror, args.history)
        print("RESULT " + json.dumps({"accuracy": acc, "diff_px": diff, "seconds": secs}))
        return 0
    if args.summary:
        print(summary(args.summary))
        return 0
    if not args.cases:
        ap.error("--cases DIR is required")
    sys.path.insert(0, str(ROOT))
    from doodle_engine import png as ps

    rows = []
    for sdir in sorted(Path(args.cases).glob("*/results*")):
        meta = json.loads((sdir / "cases.json").read_text())
        if args.session and meta["name"] not in args.session:
            continue
        commit = args.commit or meta["commit"]
        if commit not in DEFAULTS:
            print(f"skip {meta['name']}: no defaults recorded for {commit}", file=sys.stderr)
            continue
        order = [ps.parse_name(e["path"])["stem"] for e in ps.read_png_session(sdir)]
        for i, stem in enumerate(order):
            if args.case and stem not in args.case:
                continue
            accs = []
            for seed in args.seeds:
                cmd = [sys.executable, __file__, "--mirror", args.mirror,
                       "--one", str(sdir), stem, commit, str(seed)]
                if args.session_history:
                    cmd += ["--history", *order[:i]]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not line:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
                    print(f"{meta['name']} {stem} {commit} seed {seed}: FAILED {tail[0]}",
                          file=sys.stderr)
                    continue
                res = json.loads(line[0][7:])
                accs.append(res["accuracy"])
                row = {"session": meta["name"], "case": stem, "code_commit": commit,
                       "history": "session" if args.session_history else "none", "seed": seed,
                       "accuracy": f"{res['accuracy']:.6f}", "diff_px": res["diff_px"],
                       "seconds": f"{res['seconds']:.1f}"}
                rows.append(row)
                print(",".join(str(v) for v in row.values()), flush=True)
                if args.csv:
                    new = not Path(args.csv).exists()
                    with open(args.csv, "a", newline="") as fh:
                        w = csv.DictWriter(fh, fieldnames=list(row))
                        if new:
                            w.writeheader()
                        w.writerow(row)
            if accs:
                accs.sort()
                print(f"# {meta['name']} {stem} {commit}: median {accs[len(accs) // 2] * 100:.2f} % "
                      f"over {len(accs)} seeds", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
