"""The PNG-era bar: the engine against Doodler's own code, case by case.

For each case built by ``benchmarks/doodler_cases.py --build DIR`` (real PNG-era sessions from
dash_doodler's history) the engine rebuilds the label with the recipe of the case's commit and
the app's default sliders of that era, with seeds 0, 1, 2 (the forest was unseeded), and counts
the pixels equal to the stored greyscale label.  Doodler's own figures (its code of that commit,
re-run today, 3 seeds) come from the per-seed CSV that ``benchmarks/doodler_yardstick.py``
writes.  A case is left out when Doodler's own code does not reproduce its stored label
(median below ``--reproduced``, 99 % by default: a slider moved, or a label of another commit).

    python benchmarks/fidelity_png_era.py --cases /tmp/doodler_cases \\
        --doodler docs/doodler-yardstick.csv [--engine-csv out.csv] [--markdown table.md]

Only cases whose session was re-run with Doodler's code *of the session's commit* count.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from doodle_engine import reconstruct  # noqa: E402
from doodle_engine.eras import RECIPES  # noqa: E402
from doodle_engine.png import read_png_session, to_record  # noqa: E402
from doodle_engine.settings import settings_for_era  # noqa: E402
from doodle_engine.validate import validate  # noqa: E402

SEEDS = (0, 1, 2)
FIELDS = ("session", "case", "commit", "era", "seed", "accuracy", "diff_px", "seconds", "stages")
REPRODUCED = 0.99
TARGET_POINTS = 0.5


def era_of_commit(commit):
    """The recipe whose commits include ``commit`` (a short hash)."""
    for r in RECIPES.values():
        if any(c.startswith(commit) or commit.startswith(c) for c in r.commits):
            return r.name
    raise KeyError(f"no era follows commit {commit}")


def sessions(cases_dir):
    """(session name, commit, results folder) of every built session."""
    out = []
    for meta in sorted(Path(cases_dir).glob("*/*/cases.json")):
        info = json.loads(meta.read_text())
        out.append((info["name"], info["commit"], meta.parent))
    return out


def engine_runs(cases_dir, seeds=SEEDS, only=None, cases=None):
    """Yield dict rows (session, case, commit, era, seed, accuracy, diff_px, seconds)."""
    for name, commit, folder in sessions(cases_dir):
        if only and name not in only:
            continue
        era = era_of_commit(commit)
        for entry in read_png_session(folder, missing="skip"):
            if entry["label"] is None:
                continue
            if cases and Path(entry["files"]["image"]).stem not in cases:
                continue
            rec = to_record(entry)
            settings = settings_for_era(era, path=entry["path"])
            for seed in seeds:
                t = time.perf_counter()
                res = reconstruct(rec, settings=settings, seed=seed)
                m = validate(rec.label, res.label0, rec.n_classes)
                yield dict(session=name, case=Path(entry["files"]["image"]).stem, commit=commit,
                           era=era, seed=seed, accuracy=f"{m.accuracy:.6f}", diff_px=m.n_differ,
                           seconds=f"{time.perf_counter() - t:.1f}",
                           stages=" ".join(f"{k}:{v:.0f}" for k, v in res.timings.items()))


def _medians(rows, key_fields, value="accuracy"):
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in key_fields), []).append(float(r[value]))
    return {k: (statistics.median(v), len(v)) for k, v in groups.items()}


def doodler_rows(csv_path):
    """Per-seed rows of Doodler's own code of the session's commit, no session history."""
    with open(csv_path, newline="") as fh:
        return [r for r in csv.DictReader(fh)
                if r["history"] == "none" and r["session"].split("_")[1] == r["code_commit"]]


def doodler_medians(csv_path):
    """{(session, case): (median accuracy, seeds)} of :func:`doodler_rows`."""
    return _medians(doodler_rows(csv_path), ("session", "case"))


def per_seed(engine_rows, doodler_rows_):
    """{(session, case): "seed 0: engine % (px) / Doodler % (px); ..."} for the seeds run."""
    d = {(r["session"], r["case"], str(r["seed"])): r for r in doodler_rows_}
    out = {}
    for r in sorted(engine_rows, key=lambda r: int(r["seed"])):
        key = (r["session"], r["case"])
        o = d.get(key + (str(r["seed"]),))
        text = f"seed {r['seed']}: {float(r['accuracy']) * 100:.4f} ({int(r['diff_px']):,} px)"
        if o is not None:
            same = " same count" if int(o["diff_px"]) == int(r["diff_px"]) else ""
            text += f" / {float(o['accuracy']) * 100:.4f} ({int(o['diff_px']):,} px){same}"
        out[key] = out.get(key, []) + [text]
    return {k: "; ".join(v) for k, v in out.items()}


def table(engine_rows, doodler, reproduced=REPRODUCED):
    """Per-case rows: case, commit, era, Doodler median, engine median, difference (points),
    left out (why), within the target."""
    eng = _medians(engine_rows, ("session", "case"))
    meta = {(r["session"], r["case"]): (r["commit"], r["era"]) for r in engine_rows}
    out = []
    for key in sorted(eng):
        commit, era = meta[key]
        e_med, e_n = eng[key]
        d_med, d_n = doodler.get(key, (None, 0))
        left_out = None
        if d_med is None:
            left_out = "Doodler's code not re-run on this case"
        elif d_med < reproduced:
            left_out = f"Doodler's own code does not reproduce the stored label ({d_med * 100:.2f} %)"
        diff = None if d_med is None else (e_med - d_med) * 100
        out.append(dict(session=key[0], case=key[1], commit=commit, era=era,
                        doodler=d_med, doodler_seeds=d_n, engine=e_med, engine_seeds=e_n,
                        diff=diff, left_out=left_out,
                        within=None if diff is None else abs(diff) <= TARGET_POINTS))
    return out


def markdown(rows, seeds=None):
    seeds = seeds or {}
    lines = ["| case | commit | era | Doodler median (%) (seeds) | engine median (%) (seeds) | difference (points) "
             "| left out? | per seed: engine / Doodler |", "|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        d = "—" if r["doodler"] is None else f"{r['doodler'] * 100:.2f} ({r['doodler_seeds']})"
        diff = "—" if r["diff"] is None else f"{r['diff']:+.2f}"
        lo = r["left_out"] or ("no (within 0.5)" if r["within"] else "no (**outside 0.5**)")
        lines.append(f"| {r['case']} | {r['commit']} | {r['era']} | {d} | "
                     f"{r['engine'] * 100:.2f} ({r['engine_seeds']}) | {diff} | {lo} | "
                     f"{seeds.get((r['session'], r['case']), '')} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="/tmp/doodler_cases")
    ap.add_argument("--doodler", required=True, help="per-seed CSV of doodler_yardstick.py")
    ap.add_argument("--engine-csv", help="write (or, with --reuse, read) the engine's per-seed rows")
    ap.add_argument("--reuse", action="store_true", help="read --engine-csv instead of running")
    ap.add_argument("--session", action="append", help="only these sessions")
    ap.add_argument("--case", action="append", help="only these cases (image stems)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--append", action="store_true", help="add to --engine-csv")
    ap.add_argument("--markdown", help="write the table here")
    args = ap.parse_args(argv)
    if args.reuse:
        rows = []
        for part in args.engine_csv.split(","):
            with open(part, newline="") as fh:
                rows.extend(csv.DictReader(fh))
    else:
        rows = []
        writer = None
        fh = open(args.engine_csv, "a" if args.append else "w", newline="") if args.engine_csv else None
        if args.append and Path(args.engine_csv).stat().st_size:
            writer = csv.DictWriter(fh, fieldnames=list(FIELDS))
            with open(args.engine_csv, newline="") as old:
                rows = list(csv.DictReader(old))
        for row in engine_runs(args.cases, seeds=args.seeds, only=args.session, cases=args.case):
            rows.append(row)
            print(",".join(str(v) for v in row.values()), flush=True)
            if fh:
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                fh.flush()
        if fh:
            fh.close()
    text = markdown(table(rows, doodler_medians(args.doodler)),
                    per_seed(rows, doodler_rows(args.doodler)))
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
