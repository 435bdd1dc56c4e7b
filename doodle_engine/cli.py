"""doodle-engine: the command line over the doodle_engine Python API.

Every command reports bad input as one line ``FILE: problem`` and exits 2; batch commands
report failed files, go on, and exit 1 when any failed."""

from __future__ import annotations

import argparse
import json
import sys

from doodle_engine import DoodleError, ERAS, load
from doodle_engine.batch import find_npz, parse_workers, run_batch
from doodle_engine.features import feature_recipe
from doodle_engine.io import DEFAULT_MAX_PIXELS


def _classes(arg):
    if arg is None:
        return None
    from pathlib import Path
    p = Path(arg)
    if p.is_file():
        return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    return [c.strip() for c in arg.split(",") if c.strip()]


def _workers(arg):
    try:
        return parse_workers(arg)
    except DoodleError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def cmd_info(args):
    import numpy as np
    out = []
    from doodle_engine.era_match import match_era, needs_match
    from doodle_engine.eras import recipe as era_recipe
    for path in find_npz(args.files):
        rec = load(path, classes=_classes(args.classes),
                   era=None if args.era == "auto" else args.era,
                   allow_pickle=args.allow_pickle, max_pixels=args.max_pixels)
        match = None
        if rec.settings is not None and rec.label is not None and (
                args.era == "auto" or (args.era is None and needs_match(rec.settings))):
            match = match_era(rec)
            rec.settings = match.result.settings
        present = sorted(int(v) for v in np.unique(rec.label)) if rec.label is not None else []
        info = {"file": path, "height": rec.shape[0], "width": rec.shape[1],
                "bands": 1 if rec.image.ndim == 2 else rec.image.shape[2],
                "orig_bands": None if rec.orig_image is None else (
                    1 if rec.orig_image.ndim == 2 else rec.orig_image.shape[2]),
                "classes": rec.classes, "classes_source": rec.classes_source,
                "classes_present": [c for c in present if c != 255],
                "unlabelled_pixels": int((rec.label == 255).sum()) if rec.label is not None else None,
                "doodled_classes": rec.doodled_classes(),
                "doodle_coverage": float((rec.doodles > 0).mean()),
                "label_layout": rec.label_layout, "label_k": rec.label_k,
                "era": rec.settings.era if rec.settings else None,
                "era_source": rec.settings.era_source if rec.settings else None,
                "era_match": ({**match.row(), "candidates": [vars(c) for c in match.candidates]}
                              if match else None),
                "recipe": _recipe_json(era_recipe(rec.settings.era)) if rec.settings else None,
                "features": feature_recipe(rec.settings.era) if rec.settings else None,
                "settings": rec.settings.as_dict() if rec.settings else None,
                "trials": [t.trial_prefix for t in rec.trials]}
        out.append(info)
        if not args.json:
            s = rec.settings
            print(f"{path}")
            print(f"  size      {info['height']} x {info['width']}, {info['bands']} band(s)"
                  + (f", orig_image {info['orig_bands']} band(s)" if info["orig_bands"] else ""))
            print(f"  classes   {rec.classes} ({rec.classes_source})")
            print(f"  present   {info['classes_present']}  doodled {info['doodled_classes']}  "
                  f"coverage {info['doodle_coverage']:.2%}")
            print(f"  label     {rec.label_layout}" + (f", K={rec.label_k}" if rec.label_k is not None else ""))
            if s:
                print(f"  era       {s.era} ({s.era_source}): {ERAS[s.era]}")
                if match and match.runner_up:
                    ru = match.row()
                    print(f"  runner-up {ru['runner_up']}: {ru['runner_up_differ']:+d} px "
                          f"({ru['runner_up_points']:.3f} accuracy points worse)")
                r = era_recipe(s.era)
                print(f"  recipe    commits {', '.join(r.commits)}; {r.start} .. {r.end}; "
                      f"{r.one_line()}")
                print("            " + ", ".join(f"{k}={v}" for k, v in r.knobs().items()))
                print(f"  features  {info['features']}")
                print("  settings  " + ", ".join(f"{k}={v}" for k, v in s.as_dict().items()
                                                if k not in ("era", "era_source")))
            print(f"  trials    {info['trials'] or 'none'}")
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def _recipe_json(r):
    out = {"name": r.name, "commits": list(r.commits), "start": r.start, "end": r.end,
           "description": r.description, "layouts": list(r.layouts),
           "defaults": r.default_settings}
    out.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in r.knobs().items()})
    return out


def cmd_eras(args):
    """List the eras, or (with folders / files) tell which era made each file, counted."""
    from doodle_engine.eras import RECIPES
    if not args.inputs:
        if args.json:
            print(json.dumps([_recipe_json(r) for r in RECIPES.values()], indent=1))
            return 0
        print(f"{'era':15} {'commits':26} {'from':16} {'to':16} {'layout':8} {'classifier':10} behaviour")
        for r in RECIPES.values():
            clf = r.classifier if r.classifier == "mlp" else f"rf {r.trees}"
            print(f"{r.name:15} {','.join(r.commits)[:26]:26} {r.start:16} {r.end:16} "
                  f"{'/'.join(r.layouts):8} {clf[:10]:10} {r.description}")
        return 0
    frame, failed = _batch(args, "eras", seed=args.seed, mode=args.mode)
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    if len(ok):
        cols = [c for c in ("file", "era", "era_source", "differ", "runner_up",
                            "runner_up_differ") if c in ok]
        view = ok[cols].copy()
        view["file"] = view["file"].map(lambda f: str(f)[-60:])
        for c in ("differ", "runner_up_differ"):
            if c in view:
                view[c] = view[c].map(lambda v: "" if v != v or v is None else f"{int(v):,}")
        view = view.fillna("")
        print(view.to_string(index=False))
        print()
        counts = ok.groupby(["era", "era_source"]).size().rename("files").reset_index()
        print(counts.to_string(index=False))
    print(f"files: {len(frame)}  failed: {failed}")
    return 1 if failed else 0


def _summary(frame, failed):
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    if "accuracy" in ok and len(ok):
        worst = ok.loc[ok["accuracy"].idxmin()]
        print(f"files: {len(frame)}  failed: {failed}  median accuracy: {ok['accuracy'].median():.4%}  "
              f"worst: {worst['file']} {worst.get('trial', '')} ({worst['accuracy']:.4%})")
    else:
        print(f"files: {len(frame)}  failed: {failed}")


def _batch(args, job, **kwargs):
    frame = run_batch(job, args.inputs, workers=args.workers, scheduler=args.scheduler,
                      table=getattr(args, "table", None), resume=args.resume,
                      progress=not args.quiet, classes=_classes(args.classes),
                      force=args.force, **kwargs)
    failed = 0
    if "error" in frame:
        for msg in frame.loc[frame["error"] != "", "error"]:
            print(f"error: {msg}", file=sys.stderr)
        failed = int((frame["error"] != "").sum())
    return frame, failed


def cmd_validate(args):
    from doodle_engine.report import print_table, write_plots, write_report
    frame, failed = _batch(args, "validate", era=args.era, trials=args.trials, seed=args.seed,
                           mode=args.mode, crf_backend=args.crf_backend, seeds=args.seeds)
    print_table(frame)
    _summary(frame, failed)
    if args.report:
        write_report(frame, args.report)
    if args.plots:
        write_plots(frame, args.plots)
    if args.min_accuracy is not None and "accuracy" in frame:
        if (frame["accuracy"].fillna(0) < args.min_accuracy).any():
            return 1
    return 1 if failed else 0


def cmd_reconstruct(args):
    frame, failed = _batch(args, "reconstruct", outdir=args.output, era=args.era, seed=args.seed,
                           mode=args.mode, crf_backend=args.crf_backend)
    _summary(frame, failed)
    return 1 if failed else 0


def cmd_remap(args):
    from doodle_engine.remap import load_mapping
    mapping = load_mapping(args.mapping)  # a bad mapping file fails before any work
    frame, failed = _batch(args, "remap", outdir=args.output, mapping=mapping, default=args.default)
    _summary(frame, failed)
    return 1 if failed else 0


def cmd_export(args):
    frame, failed = _batch(args, "export", outdir=args.output,
                           label_ext=".png" if args.png_labels else ".jpg")
    _summary(frame, failed)
    return 1 if failed else 0


def cmd_stats(args):
    from doodle_engine.report import class_stats
    frame, failed = _batch(args, "stats")
    table = class_stats(frame, args.metadata)
    if args.report:
        from doodle_engine.report import write_report
        write_report(table, args.report)
    print(table.to_string(max_rows=60))
    return 1 if failed else 0


def cmd_example(args):
    from doodle_engine.example import make_example
    path = make_example(args.output, *args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="doodle-engine", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, batch=True):
        sp.add_argument("--classes", help="class names (comma list or a classes.txt) for files without them")
        sp.add_argument("--allow-pickle", action="store_true",
                        help="read object arrays (pickled data): only for files you trust")
        sp.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
        if batch:
            sp.add_argument("inputs", nargs="+", help=".npz files or folders")
            sp.add_argument("--workers", type=_workers, default="auto",
                            help="local worker processes, or 'auto' (default): one per core, "
                                 "no more than the files or the free memory allow")
            sp.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
            sp.add_argument("--resume", action="store_true", help="skip files already in --table")
            sp.add_argument("--quiet", action="store_true", help="no progress bar")
            sp.add_argument("--force", action="store_true",
                            help="redo files whose outputs are newer than the input")

    sp = sub.add_parser("info", help="describe Doodler files")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--era", choices=list(ERAS) + ["auto"],
                    help="override the detected era; 'auto': tell it from the stored label")
    common(sp, batch=False)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("eras", help="list Doodler's eras, or tell which era made each file")
    sp.add_argument("inputs", nargs="*", help=".npz files or folders (none: list the eras)")
    sp.add_argument("--json", action="store_true", help="the list as JSON (every recipe value)")
    sp.add_argument("--seed", type=int, default=0, help="forest seed of the candidates")
    sp.add_argument("--mode", choices=["exact", "fast", "reference"], default="exact")
    sp.add_argument("--classes")
    sp.add_argument("--workers", type=_workers, default="auto")
    sp.add_argument("--scheduler")
    sp.add_argument("--resume", action="store_true")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--force", action="store_true")
    sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
    sp.set_defaults(func=cmd_eras)

    for name, func, helptext in [("validate", cmd_validate, "rebuild labels and compare with the stored ones"),
                                 ("reconstruct", cmd_reconstruct, "rebuild labels into new npz files")]:
        sp = sub.add_parser(name, help=helptext)
        common(sp)
        sp.add_argument("--era", choices=list(ERAS) + ["auto"],
                        help="override the detected era; 'auto': rebuild under every era the "
                             "settings layout allows and keep the best match of the stored "
                             "label (the default when the path has no results date)")
        sp.add_argument("--seed", type=int, default=0, help="random-forest seed")
        sp.add_argument("--mode", choices=["exact", "fast", "reference"], default="exact",
                        help="exact: Doodler's labels (default); fast: compiled float32 trainer "
                             "on fewer rows; reference: scikit-learn's own trainer")
        sp.add_argument("--crf-backend", choices=["pydensecrf", "numba"], default=None,
                        help="CRF implementation (default: pydensecrf in exact/reference mode "
                             "when installed, the compiled numba lattice otherwise)")
        sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
        if name == "validate":
            sp.add_argument("--trials", action="store_true", help="also rebuild earlier trials")
            sp.add_argument("--seeds", type=int, default=1,
                            help="rebuild forest-era files with this many seeds (--seed, "
                                 "--seed + 1, ...) and report min / median / max accuracy")
            sp.add_argument("--report", help="write the table (.csv or .parquet)")
            sp.add_argument("--plots", help="write figures to this folder")
            sp.add_argument("--min-accuracy", type=float, help="exit 1 if any file is below")
        else:
            sp.add_argument("-o", "--output", required=True)
        sp.set_defaults(func=func)

    sp = sub.add_parser("remap", help="merge/rename classes into new npz files")
    common(sp)
    sp.add_argument("--mapping", required=True, help="mapping JSON (Coast Train or Doodler schema)")
    sp.add_argument("--default", help="target for classes with no rule")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--table")
    sp.set_defaults(func=cmd_remap)

    sp = sub.add_parser("export", help="write images, labels, colour labels, overlays, doodles")
    common(sp)
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--png-labels", action="store_true", help="lossless PNG labels instead of JPEG")
    sp.add_argument("--table")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("stats", help="class-pixel distributions per file and record")
    common(sp)
    sp.add_argument("--metadata", action="append", help="Coast Train metadata CSV(s) to join")
    sp.add_argument("--report")
    sp.add_argument("--table")
    sp.set_defaults(func=cmd_stats)

    sp = sub.add_parser("example", help="write a generated Doodler file to try the engine on")
    sp.add_argument("output", help="path of the .npz to write")
    sp.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--overwrite", action="store_true")
    sp.set_defaults(func=cmd_example)

    sp = sub.add_parser("bench", help="time each stage, compiled vs straightforward path")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--repeat", type=int, default=1)
    sp.set_defaults(func=lambda a: __import__("doodle_engine.bench", fromlist=["main"]).main(a))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DoodleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
