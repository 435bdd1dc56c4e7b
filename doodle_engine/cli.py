"""doodle-engine: the command line over the doodle_engine Python API.

Every command reports bad input as one line ``FILE: problem`` and exits 2; batch commands
report failed files, go on, and exit 1 when any failed."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import difflib
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import lazy_loader as lazy
import numpy as np

from doodle_engine import __version__
from doodle_engine.classnames import class_list
from doodle_engine.compiling import NOTICE_ENV
from doodle_engine.eras import RECIPES, SLIDERS
from doodle_engine.eras import recipe as era_recipe
from doodle_engine.errors import DoodleError
from doodle_engine.files import printable, result_name, short_names, split_member
from doodle_engine.modes import MODES
from doodle_engine.record import DEFAULT_MAX_PIXELS
from doodle_engine.settings import ERAS

# the engine's heavier modules load when a command first uses them (start-up stays short)
atlas = lazy.load("doodle_engine.atlas", suppress_warning=True)
batch = lazy.load("doodle_engine.batch", suppress_warning=True)
era_match = lazy.load("doodle_engine.era_match", suppress_warning=True)
htmlreport = lazy.load("doodle_engine.htmlreport", suppress_warning=True)
example = lazy.load("doodle_engine.example", suppress_warning=True)
features = lazy.load("doodle_engine.features", suppress_warning=True)
gym = lazy.load("doodle_engine.gym", suppress_warning=True)
inputs = lazy.load("doodle_engine.inputs", suppress_warning=True)
metadata = lazy.load("doodle_engine.metadata", suppress_warning=True)
outputs = lazy.load("doodle_engine.outputs", suppress_warning=True)
png = lazy.load("doodle_engine.png", suppress_warning=True)
plots = lazy.load("doodle_engine.plots", suppress_warning=True)
pool = lazy.load("doodle_engine.pool", suppress_warning=True)
remapping = lazy.load("doodle_engine.remapping", suppress_warning=True)
reasons = lazy.load("doodle_engine.reasons", suppress_warning=True)
report = lazy.load("doodle_engine.report", suppress_warning=True)
server = lazy.load("doodle_engine.server", suppress_warning=True)
session = lazy.load("doodle_engine.session", suppress_warning=True)
table = lazy.load("doodle_engine.table", suppress_warning=True)
terminal = lazy.load("doodle_engine.terminal", suppress_warning=True)


def _png_options(args, path=None):
    """--settings / --images for PNG-era inputs (doodle PNGs, results folders)."""
    opts = {}
    if getattr(args, "settings", None) and (path is None or png.is_doodle_png(path)):
        opts["settings"] = png.parse_settings(args.settings)
    if getattr(args, "images", None) and (path is None or png.is_doodle_png(path)):
        opts["images"] = args.images
    return opts


def _workers(arg):
    try:
        return pool.parse_workers(arg)
    except DoodleError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


#: what a file without a ``settings`` array means for its rebuild
NO_SETTINGS = ("the file holds no 'settings' array, so Doodler's sliders for it (and its era) "
               "are unknown and its label cannot be rebuilt")


def cmd_info(args):
    out = []
    for path in inputs.find_inputs(args.files):
        rec = inputs.load(path, classes=class_list(args.classes),
                   era=None if args.era == "auto" else args.era,
                   allow_pickle=args.allow_pickle, max_pixels=args.max_pixels,
                   **_png_options(args, path))
        match = None
        if rec.settings is not None and rec.label is not None and (
                args.era == "auto" or (args.era is None and era_match.needs_match(rec.settings))):
            match = era_match.match_era(rec)
            rec.settings = match.result.settings
        present = sorted(int(v) for v in np.unique(rec.label)) if rec.label is not None else []
        info = {"file": printable(path), "height": rec.shape[0], "width": rec.shape[1],
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
                "features": features.feature_recipe(rec.settings.era) if rec.settings else None,
                "settings": rec.settings.as_dict() if rec.settings else None,
                "trials": [t.trial_prefix for t in rec.trials], "remapped": rec.remapped}
        out.append(info)
        if not args.json:
            s = rec.settings
            print(printable(path))
            print(f"  size      {info['height']} x {info['width']}, {info['bands']} band(s)"
                  + (f", orig_image {info['orig_bands']} band(s)" if info["orig_bands"] else ""))
            print(f"  classes   {rec.classes} ({rec.classes_source})")
            print(f"  present   {info['classes_present']}  doodled {info['doodled_classes']}  "
                  f"coverage {info['doodle_coverage']:.2%}")
            print(f"  label     {rec.label_layout}"
                  + (f", K={rec.label_k}" if rec.label_k is not None else ""))
            if s:
                print(f"  era       {s.era} ({s.era_source}): {ERAS[s.era]}")
                if match and match.runner_up:
                    ru = match.row()
                    print(f"  runner-up {ru['runner_up']}: {ru['runner_up_extra_px']:,} px more wrong "
                          f"({ru['runner_up_points']:.3f} accuracy points worse)")
                r = era_recipe(s.era)
                print(f"  recipe    commits {', '.join(r.commits)}; {r.start} .. {r.end}; "
                      f"{r.one_line()}")
                print("            every recipe value: info --json (or eras --json)")
                print(f"  features  {info['features']}")
                print("  settings  " + ", ".join(f"{k}={v}" for k, v in s.as_dict().items()
                                                if k not in ("era", "era_source")))
            else:
                print(f"  settings  none: {NO_SETTINGS}")
            print(f"  trials    {info['trials'] or 'none'}" + (
                " (earlier attempts kept in the file under these key prefixes, newest first; "
                "validate --trials rebuilds them)" if info["trials"] else ""))
            if rec.remapped:
                print(f"  remapped  {rec.remapped}: not the file Doodler made")
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def _min_accuracy(text):
    """--min-accuracy: a percent (``99.9`` or ``99.9%``) or a fraction (``0.999``); values
    up to 1 are fractions, so ``1`` means 100 %."""
    s = str(text).strip()
    try:
        value = float(s[:-1] if s.endswith("%") else s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or percent: {text!r}") from None
    if s.endswith("%") or value > 1:
        value /= 100
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"accuracy must lie in 0..100 %, not {text!r}")
    return value


def _name(row):
    """A result's name for messages: the file's name (never a cut path) and its trial."""
    trial = row.get("trial", "")
    return result_name(row["file"], trial if isinstance(trial, str) else "")


#: the most file names a note lists; the rest are counted (the table names them all)
NOTE_NAMES = 5


def _some_names(names, column=None):
    """``names`` (distinct, in order) joined for a note line: at most :data:`NOTE_NAMES`,
    then how many more (and which table column marks them all)."""
    names = list(dict.fromkeys(names))
    shown = ", ".join(names[:NOTE_NAMES])
    more = len(names) - NOTE_NAMES
    where = f" (the table's {column} column marks them)" if column else ""
    return shown + (f" and {more} more{where}" if more > 0 else "")


def _ok(frame):
    return frame[frame["error"] == ""] if "error" in frame else frame


def _records(frame):
    """A run's frame as a :class:`batch.Run` of row dicts (a cell without a value left
    out), for the summary lines the command line builds from rows."""
    rows = [{k: v for k, v in r.items() if not table.missing(v)}
            for r in frame.to_dict("records")]
    return batch.Run(rows, list(frame.columns), frame.attrs.get("not_read") or [])


def _ok_rows(run):
    """The rows of a run's results without error."""
    return [r for r in run.rows if not table.cell_text(r.get("error"))]


def _counts(run, failed):
    """'files: N' and, when earlier trials were rebuilt too, how many results of each; and
    how many entries of the input folders were no regular file (not read)."""
    files = len({r["file"] for r in run.rows}) if "file" in run.columns else len(run.rows)
    text = f"files: {files}"
    ok = _ok_rows(run)
    if "trial" in run.columns:
        trials = sum(table.cell_text(r.get("trial")) != "" for r in ok)
        if trials:
            finals = len(ok) - trials
            text += (f" ({len(ok)} results: {finals} final label{'s' * (finals != 1)} + {trials} "
                     f"earlier trial{'s' * (trials != 1)})")
    text += f"  failed: {failed}"
    not_read = run.not_read
    if not_read:
        kinds = Counter(why for _, why in not_read)
        text += (f"  not read: {len(not_read)} (no regular file: "
                 + ", ".join(f"{kinds[why]} {why}" for why in sorted(kinds, key=str.lower))
                 + ")")
    return text


def _recipe_json(r):
    out = {"name": r.name, "commits": list(r.commits), "start": r.start, "end": r.end,
           "description": r.description, "layouts": list(r.layouts),
           "defaults": r.default_settings}
    out.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in r.knobs().items()})
    return out


def cmd_eras(args):
    """List the eras, or (with folders / files) tell which era made each file, counted."""

    if not args.inputs:
        if args.json:
            print(json.dumps([_recipe_json(r) for r in RECIPES.values()], indent=1))
            return 0
        _print_eras()
        return 0
    frame, failed = _batch(args, "eras", seed=args.seed, mode=args.mode)
    ok = _ok(frame)
    if len(ok):
        cols = [c for c in ("file", "era", "era_source", "differ", "runner_up",
                            "runner_up_extra_px") if c in ok]
        view = ok[cols].copy()
        view["file"] = short_names(view["file"])
        for c in ("differ", "runner_up_extra_px"):
            if c in view:
                view[c] = view[c].map(lambda v: "" if v != v or v is None else f"{int(v):,}")
        view = view.fillna("").astype(str)
        # text left-aligned under its header, as validate's table has it
        left = {c: (lambda w: lambda v: f"{v:<{w}}")(max(len(c), *view[c].map(len)))
                for c in cols}
        print(view.to_string(index=False, justify="left", formatters=left))
        print()
        counts = ok.groupby(["era", "era_source"]).size().rename("files").reset_index()
        print(counts.to_string(index=False))
    print(_counts(_records(frame), failed))
    return _why(1 if failed else 0, f"{failed} file(s) failed (listed above)")


def _print_eras():
    """The eras, one line each, every column as wide as its longest value (nothing cut)."""
    rows = [("era", "commits", "from", "to", "layout", "classifier", "behaviour")]
    for r in RECIPES.values():
        clf = r.classifier if r.classifier == "mlp" else f"rf {r.trees}"
        end = "(open)" if r.end.startswith("9999") else r.end  # the last era has not ended
        rows.append((r.name, ",".join(r.commits), r.start, end, "/".join(r.layouts), clf,
                     r.description))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(" ".join(f"{v:{w}}" for v, w in zip(row, widths)) + " " + row[-1])


def _summary(run, failed, rebuilt=True):
    """Print the summary line under a table (of a :class:`batch.Run`); and, where labels
    were ``rebuilt`` (so an era was used), the era notes and why a remapped file differs;
    returns the lines printed.  remap and export copy the stored label: no era is used, none
    is noted."""
    ok = _ok_rows(run)
    line = _counts(run, failed)
    skipped = sum(table.cell_text(r.get("skipped")) != "" for r in run.rows)
    if skipped:
        line += (f"  skipped: {skipped} (up to date: their outputs are newer than the input and "
                 "made with these options; --force redoes them)")
    measured = [r for r in ok if not table.missing(r.get("accuracy"))]
    if "accuracy" in run.columns and measured:
        worst = min(measured, key=lambda r: r["accuracy"])
        median = statistics.median(r["accuracy"] for r in measured)
        line += f"  median accuracy: {median:.4%}  " + (
            f"worst: {_name(worst)} ({worst['accuracy']:.4%})" if worst["accuracy"] < 1
            else "worst: none below 100 %")  # no file is the worst of equals
    print(line)
    if not rebuilt:
        return [line]
    return [line] + _assumed_eras(ok) + _remapped_notes(ok)


def _remapped_notes(ok):
    """One line for the remapped files among ``ok`` (rows): a single file with what it was
    remapped from, several by name (the ``why: remapped`` line says what it means for their
    rebuilds); returns the lines printed."""
    picked = [r for r in ok if table.cell_text(r.get("remapped"))]
    if not picked:
        return []
    if len(picked) == 1:
        line = f"note: {_name(picked[0])}: {picked[0]['remapped']}"
    else:
        names = _some_names((_name(r) for r in picked), "remapped")
        line = (f"note: {len(picked)} results are of files remapped by doodle-engine (the "
                f"remapped column of --table / --report says from what): {names}")
    print(line)
    return [line]


def _assumed_eras(ok):
    """One line when an era was assumed, and one when it was told from the stored label (best
    match), rather than read from the file's date or layout (``ok``: rows); returns the
    lines printed."""
    lines = []
    for kind, what in (("assum", "assumed"), ("best match", "told from the stored label")):
        picked = [r for r in ok if kind in table.cell_text(r.get("era_source"))]
        if picked:
            eras = ", ".join(sorted({str(r.get("era")) for r in picked}))
            names = _some_names((_name({"file": r["file"]}) for r in picked), "era_source")
            sources = "; ".join(dict.fromkeys(str(r["era_source"]) for r in picked))
            lines.append(f"note: era {eras} {what} for {len({r['file'] for r in picked})} "
                         f"file(s) ({sources}); --era sets it: {names}")
            print(lines[-1])
    return lines


def _why(code, reason):
    """Exit with ``code``, saying why on one line (stderr)."""
    if code:
        print(f"exit {code}: {reason}", file=sys.stderr)
    return code


def _batch(args, job, **kwargs):
    """(the run's table as a pandas DataFrame, how many files failed): :func:`_run`."""
    run, failed = _run(args, job, **kwargs)
    return run.frame(), failed


def _run(args, job, **kwargs):
    """(the :class:`batch.Run` of ``job`` over the command's inputs, how many files failed);
    says which entries were not read and the errors."""
    run = batch.run_rows(job, args.inputs, workers=args.workers, scheduler=args.scheduler,
                      table=getattr(args, "table", None), resume=args.resume,
                      progress=not args.quiet, classes=class_list(args.classes),
                      force=getattr(args, "force", False), allow_pickle=getattr(args, "allow_pickle", False),
                      max_pixels=getattr(args, "max_pixels", DEFAULT_MAX_PIXELS),
                      **_png_options(args),
                      also_writes={"report": getattr(args, "report", None),
                                   "plots": getattr(args, "plots", None),
                                   "html": getattr(args, "html", None)},
                      also_reads=[getattr(args, "mapping", None), args.classes,
                                  *(getattr(args, "metadata", None) or [])], **kwargs)
    for path, why in run.not_read[:10]:
        _say(f"note: {path}: not read ({why})")
    errors = [r["error"] for r in run.rows if table.cell_text(r.get("error"))]
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)
    return run, len(errors)


#: the whole-number columns of the session table
SESSION_WHOLE = ("earlier_images", "trees", "rows", "differ", "differ_alone", "session_changed_px")


def _session_view(frame, names):
    """The session table as text: whole numbers as such, other numbers to 4 decimals, nothing
    where a file has no value (pandas would write ``<NA>`` beside ``NaN``)."""
    whole = SESSION_WHOLE
    view = frame.drop(columns=["notes"]).astype(object)
    for c in view.columns:
        if c == "file":
            view[c] = frame[c].map(names)
        elif c in whole or frame[c].dtype.kind == "f":
            form = "{:.0f}" if c in whole else "{:.4f}"
            view[c] = frame[c].map(lambda v, form=form: "" if table.missing(v)
                                   else form.format(float(v)))
        else:
            view[c] = frame[c].map(table.cell_text)
    return view


def cmd_session(args):
    """validate --session: each input folder replayed as one Doodler session."""
    if args.report:
        outputs.check_report_name(args.report)
    all_steps, all_records = [], []
    for folder in args.inputs:
        records, order_note = session.load_folder(folder, classes=class_list(args.classes),
                                          era=None if args.era in (None, "auto") else args.era,
                                          max_pixels=args.max_pixels, **_png_options(args))
        print(f"session {folder}: {len(records)} file(s), {order_note}")
        steps = session.replay(records, seed=args.seed, mode=args.mode, crf_backend=args.crf_backend)
        all_steps += steps
        all_records += records
    frame = session.replay_table(all_steps, all_records)
    names = dict(zip(frame["file"], short_names(list(frame["file"]))))
    print(_session_view(frame, names).to_string(index=False))
    for _, row in frame.iterrows():
        if row["notes"]:
            print(f"note: {names[row['file']]}: {row['notes']}")
    if "session_points" in frame:
        print(f"{len(frame)} file(s); the session's history changed "
              f"{int((frame['session_changed_px'].fillna(0) > 0).sum())} of them "
              f"(accuracy change {frame['session_points'].min():+.3f} .. "
              f"{frame['session_points'].max():+.3f} points)")
    if args.report:
        report.write_report(frame, args.report, [c for c in SESSION_WHOLE if c in frame])
    return 0


def cmd_validate(args):
    if args.session:
        if args.html:
            raise DoodleError(args.html, "--html reports a validate run, not --session")
        return cmd_session(args)

    # with --plots or --html the rebuilt labels that differ are kept (in this run's own
    # temporary folder, made only then) so the maps show the very reconstruction the table
    # measured
    figures = args.plots or args.html
    with (tempfile.TemporaryDirectory(prefix="doodle-engine-labels-") if figures
          else contextlib.nullcontext()) as kept:
        run, failed = _run(args, "validate", era=args.era, trials=args.trials,
                           seed=args.seed, mode=args.mode, crf_backend=args.crf_backend,
                           seeds=args.seeds, labels_dir=kept)
        rows, columns = reasons.reasons_of(run.rows, run.columns)
        run = batch.Run(rows, table.grouped(columns), run.not_read, run.kept)
        terminal.print_table(run.rows)
        summary = _summary(run, failed)
        terminal.print_reasons(run.rows)  # the page has its own section for them
        if args.report or figures:  # pandas only for them
            frame = run.frame()
            if args.report:
                report.write_report(frame, args.report, table.int_columns(run.rows))
            if figures:
                _figures(args, frame, kept, summary, run.kept)
    below = []
    if args.min_accuracy is not None:
        for row in _ok_rows(run):
            if table.missing(row.get("accuracy")) or row["accuracy"] >= args.min_accuracy:
                continue
            below.append(row)
            print(f"below --min-accuracy {args.min_accuracy:.4%}: {_name(row)} "
                  f"{row['accuracy']:.4%} ({(args.min_accuracy - row['accuracy']) * 100:.4f} "
                  f"points below, {int(row['differ']):,} px differ)", file=sys.stderr)
    causes = []
    if below:
        causes.append(f"{len(below)} result(s) below --min-accuracy {args.min_accuracy:.4%}")
    if failed:
        causes.append(f"{failed} file(s) failed (listed above)")
    return _why(1 if causes else 0, "; ".join(causes))


def _figures(args, frame, kept, summary, resumed=0):
    """--plots and --html of a validate run: the figures drawn once, from the labels the run
    kept, into the --plots folder (or a temporary one) and embedded in the page."""
    write_plots = plots.write_plots
    with tempfile.TemporaryDirectory(prefix="doodle-engine-plots-") as scratch:
        written = write_plots(frame, args.plots or scratch, labels_dir=kept,
                              max_maps=args.max_maps, progress=not args.quiet,
                              classes=class_list(args.classes), allow_pickle=args.allow_pickle)
        for note in write_plots.last_note:
            print(f"{'plots' if args.plots else 'html'}: {note}")
        if args.plots and write_plots.last_removed:
            print(f"plots: removed {write_plots.last_removed} figure(s) an earlier run drew in "
                  f"{args.plots} (the folder holds this run's figures, and the maps of rows "
                  "--resume kept)")
        if args.plots:
            print(f"plots: {len(written)} figure(s) in {args.plots}")
        if args.html:
            command = "doodle-engine " + " ".join(shlex.quote(printable(a)) for a in args.argv)
            htmlreport.write_html(frame, args.html, written, summary=summary, notes=write_plots.last_note,
                       maps=write_plots.last_maps, command=command, resumed=resumed)
            print(f"html: {args.html} (one self-contained page, {len(written)} figure(s) "
                  "embedded)")


def cmd_reconstruct(args):
    run, failed = _run(args, "reconstruct", outdir=args.output, era=args.era, seed=args.seed,
                       mode=args.mode, crf_backend=args.crf_backend,
                       prefix_record=args.prefix_record)
    terminal.print_table(run.rows)
    _summary(run, failed)
    return _why(1 if failed else 0, f"{failed} file(s) failed (listed above)")


def cmd_remap(args):
    mapping = remapping.load_mapping(args.mapping)  # a bad mapping file fails before any work
    default = args.default
    if default is not None and mapping.index_map is not None and default.isascii() \
            and default.isdigit():
        default = int(default)  # an integer mapping's default is a class index
    mapping.check_default(default, args.mapping)
    frame, failed = _batch(args, "remap", outdir=args.output, mapping=mapping, default=default,
                           prefix_record=args.prefix_record)
    _print_moves(_ok(frame), remapping.near_names(mapping, default=default), failed)
    _summary(_records(frame), failed, rebuilt=False)
    return _why(1 if failed else 0, f"{failed} file(s) failed (listed above)")


def _print_moves(ok, warned, failed=0):
    """The effective mapping of a remap run, summed over its files: each source class, the
    class it became, its pixels in the stored labels and in how many files (saying which
    files it leaves out: skipped, and the ``failed``); then the near-name warnings of the
    mapping (``warned``) and of the files' classes."""
    if "moves" not in ok or not len(ok):
        return
    total = {}
    for text in ok["moves"].dropna():
        for source, target, px in json.loads(text):
            px0, files = total.get((source, target), (0, 0))
            total[(source, target)] = (px0 + px, files + 1)
    if total:
        width = max(len(s) for s, _ in total)
        twidth = max(len(t) for _, t in total)
        pwidth = max(len(f"{px:,}") for px, _ in total.values())
        skipped = int((ok["skipped"].fillna("") != "").sum()) if "skipped" in ok else 0
        left_out = [f"the {skipped} file(s) skipped as up to date"] if skipped else []
        if failed:
            left_out.append(f"the {failed} file(s) that failed")
        print("effective mapping (stored labels' pixels"
              + (f"; {' and '.join(left_out)} are not counted" if left_out else "") + "):")
        for (source, target), (px, files) in total.items():
            what = "kept" if source == target else "renamed" if sum(
                t == target for _, t in total) == 1 else "merged"
            print(f"  {source:{width}} -> {target:{twidth}}  {px:>{pwidth},} px in {files} "
                  f"file(s), {what}")
    files = "; ".join(ok["warnings"].fillna("")) if "warnings" in ok else ""
    for text in dict.fromkeys([*warned, *files.split("; ")]):
        if text:
            print(f"warning: {text}", file=sys.stderr)


def cmd_export(args):
    if args.gym or args.gym_npz:
        return _export_gym(args)
    if args.mapping or args.default or args.target_size:
        raise DoodleError(None, "--mapping, --default and --target-size apply to --gym (to remap "
                                "Doodler's layout, run remap first)")
    frame, failed = _batch(args, "export", outdir=args.output,
                           label_ext=".png" if args.png_labels else ".jpg",
                           prefix_record=args.prefix_record)
    _summary(_records(frame), failed, rebuilt=False)
    replaced = int((frame["replaced"].fillna("") != "").sum()) if "replaced" in frame else 0
    if replaced:
        print(f"note: removed {replaced} label(s) an earlier export wrote in the other format "
              f"(labels/ holds one label per image: {'PNG' if args.png_labels else 'JPEG'})")
    if "jpeg_changed_px" in frame:
        changed = frame["jpeg_changed_px"].fillna(0)
        if changed.sum():
            beyond = int(frame["jpeg_beyond_classes_px"].fillna(0).sum())
            print(f"note: JPEG labels (as Doodler wrote them) changed {int(changed.sum()):,} px "
                  f"in {int((changed > 0).sum())} of {int(frame['jpeg_changed_px'].notna().sum())} "
                  f"file(s) ({int(changed.max()):,} px at most in one; {beyond:,} px hold a value "
                  "that is no class); --png-labels writes exact labels")
    return _why(1 if failed else 0, f"{failed} file(s) failed (listed above)")


def _export_gym(args):
    """export --gym: a Segmentation Gym set, written whole or not at all."""
    if args.resume:
        raise DoodleError(None, "--resume does not apply to --gym: a Gym set is written whole")
    if args.default and not args.mapping:
        raise DoodleError(None, "--default applies with --mapping (the class for names it has "
                                "no rule for)")
    mapping = remapping.load_mapping(args.mapping) if args.mapping else None
    res = gym.export_gym_set(args.inputs, args.output, mapping=mapping, default=args.default,
                         npz=args.gym_npz, target_size=args.target_size,
                         classes=class_list(args.classes), table=args.table,
                         allow_pickle=args.allow_pickle, max_pixels=args.max_pixels,
                         also_reads=[args.mapping, args.classes], workers=args.workers,
                         prefix_record=args.prefix_record,
                         scheduler=args.scheduler, progress=not args.quiet, **_png_options(args))
    if "error" in res.frame:
        for msg in res.frame.loc[res.frame["error"] != "", "error"]:
            print(f"error: {msg}", file=sys.stderr)
    _summary(_records(res.frame), res.failed, rebuilt=False)  # stored labels: no era used
    if res.config is None:
        return _why(1, f"{res.failed} file(s) failed (listed above): nothing written (a Gym set "
                       "is written whole)")
    for line in _gym_lines(res) + _gym_moves(res.plan, mapping, args.default):
        print(line)
    path_note = gym.path_note(args.output)
    if path_note:
        print(path_note)
    return 0


def _gym_moves(plan, mapping, default):
    """With a mapping, each input class and the set class it went to (as remap shows its
    effective mapping): a class taken by --default is said, not silent."""
    if mapping is None:
        return []
    moves = gym.class_moves(plan, mapping, default)
    w = max((len(name) for name, *_ in moves), default=0)
    t = max((len(str(target)) for _, target, *_ in moves), default=0)
    return ["  classes by the mapping (class -> set class, files listing it):"] + [
        f"    {name:<{w}} -> {target:<{t}}  {n} file(s)"
        + ("  (no rule: --default)" if by_default else "")
        for name, target, n, by_default in moves]


def _gym_lines(res):
    """What a Gym export wrote: pairs, classes with their label values, class lists found."""
    out, cfg = res.outdir, res.config
    folders = "images/, labels/" + (", npzs/" if res.npz else "")
    lines = [f"Gym set: {len(res.frame)} image/label pair(s) in {out}/ ({folders}); "
             f"NCLASSES {cfg['NCLASSES']}: " +
             ", ".join(f"{i} {c}" for i, c in enumerate(cfg["CLASSES"])),
             f"  class order: {cfg['CLASS_ORDER']}"]
    if len(res.plan.class_lists) > 1:
        lines.append("  class lists found: " + "; ".join(
            f"{list(names)} ({n} file(s))" for names, n in res.plan.class_lists.items()))
    lines.append(f"  wrote {out / gym.CONFIG_NAME} (TARGET_SIZE {cfg['TARGET_SIZE']}; Gym's example "
                 "values for the model and training: edit them before training)")
    return lines


def cmd_stats(args):
    meta = report.stats_metadata(args.metadata)  # a bad CSV fails before any work
    frame, failed = _batch(args, "stats")
    frame = report.stats_table(frame)
    table = report.class_stats(frame, meta)
    if args.report:
        report.write_report(table, args.report)
    summary = report.stats_summary(frame)
    if len(summary):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    else:
        print(_nothing_counted(frame, failed))
    if report.unlabelled_line(frame):
        print(report.unlabelled_line(frame))
    print(_counts(_records(frame), failed) + (f"  full table (per file): {args.report}" if args.report
                                    else "  (--report FILE.csv writes the table per file)"))
    if args.metadata:
        joined = int(table["metadata_csv"].notna().sum()) if "metadata_csv" in table else 0
        files = int(table["file_name"].notna().sum()) if "file_name" in table else 0
        if joined == 0:
            print(f"warning: no file joined the metadata ({files} file(s) matched by npz file "
                  "stem against annotation_image_filename in "
                  f"{', '.join(args.metadata)}): the metadata columns are empty",
                  file=sys.stderr)
        else:
            print(f"metadata: {joined} of {files} file(s) joined")
        _not_in_zip(meta, frame)
    else:
        zips = [z for z in args.inputs if z.lower().endswith(".zip") and os.path.isfile(z)
                and metadata.metadata_sources([z])]
        if zips:
            print(f"note: {_some_names([Path(z).name for z in zips])} hold(s) a metadata CSV: "
                  "--metadata with the same zip(s) joins its columns to each file's row")
    return _why(1 if failed else 0, f"{failed} file(s) failed (listed above)")


def _not_in_zip(meta, frame):
    """A note naming the metadata rows of a release zip's CSV whose npz that zip does not
    hold (the zip was read: its members are the run's files)."""
    if meta is None or "source" not in meta or "file" not in frame:
        return
    held = {}  # each zip read (by its real path): the npz file names the run found in it
    for f in frame["file"].map(str):
        zip_path, member = split_member(f)
        if member is not None:
            held.setdefault(os.path.realpath(zip_path), set()).add(member.rsplit("/", 1)[-1])
    missing = []
    for source, stem in zip(meta["source"].map(str), meta["stem"]):
        zip_path, member = split_member(source)
        names = held.get(os.path.realpath(zip_path)) if member is not None else None
        if names is not None and stem and f"{stem}.npz" not in names:
            missing.append(f"{Path(zip_path).name}::{stem}.npz")
    if missing:
        print(f"note: {len(missing)} metadata row(s) name an npz file their zip does not "
              f"hold: {_some_names(missing)}")


def _nothing_counted(frame, failed):
    """Why ``stats`` has no class to show (instead of an empty table)."""
    read = len(frame) - failed
    if not read:
        return f"no class pixels counted: none of the {failed} file(s) could be read (errors above)"
    return (f"no class pixels counted: none of the {read} file(s) read holds a stored label"
            + (f" ({failed} could not be read: errors above)" if failed else ""))


def _atlas_inputs(items):
    """(metadata inputs, npz inputs) of ``atlas``: CSV files, folders and zips give their
    CSVs; .npz files, zip members, zips and folders holding .npz files or zips give npz
    inputs; any other file is read as a CSV (a FIFO or device is refused there)."""
    npz = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            if any(q.suffix.lower() in (".npz", ".zip") for q in p.rglob("*")):
                npz.append(item)
        elif p.suffix.lower() in (".zip", ".npz") or "::" in str(item):
            npz.append(item)
    meta_items = [i for i in items if not str(i).lower().endswith(".npz") and "::" not in str(i)]
    return meta_items, npz


def cmd_atlas(args):
    """The release atlas: records, classes, labelers, maps (issue 25's four notebooks)."""
    t0 = time.perf_counter()
    meta_items, npz_inputs = _atlas_inputs(args.inputs)
    csvs = metadata.metadata_sources(meta_items)
    files = inputs.find_inputs(npz_inputs) if npz_inputs else []
    outputs.check_outputs(args.inputs, files, outdir=args.output,
                          also_reads=[c for c in csvs if "::" not in c]
                          + ([args.mapping] if args.mapping else []))
    if args.default is not None and args.mapping is None:
        raise DoodleError(None, "--default names the superclass of classes a --mapping has "
                                "no rule for: give --mapping too")
    mapping = atlas.superclass_mapping(args.mapping, args.default) if args.mapping else None
    if not csvs and not files:
        raise DoodleError(" ".join(args.inputs), "no metadata CSV and no .npz file found")
    meta = metadata.read_metadata_inputs(meta_items) if csvs else None
    rows, failed = None, 0
    if files:
        rows = batch.run_batch("stats", npz_inputs, workers=args.workers,
                               scheduler=args.scheduler, progress=not args.quiet,
                               classes=class_list(args.classes), allow_pickle=args.allow_pickle,
                               max_pixels=args.max_pixels)
        if "error" in rows:
            for msg in rows.loc[rows["error"] != "", "error"]:
                print(f"error: {msg}", file=sys.stderr)
            failed = int((rows["error"] != "").sum())
    if meta is None and failed == len(rows):
        return _why(1, f"no image to draw: every one of the {failed} npz file(s) failed "
                       "(listed above) and no metadata CSV was given; nothing written")
    found = atlas.build_atlas(meta, rows, mapping=mapping, default=args.default)
    written = atlas.write_atlas(found, args.output)
    rec = found.records
    print(rec[["record", "images", "npz_files", "labelers", "labeler_images", "classes",
               "date_first", "date_last", "disagreements"]].to_string(index=False))
    checks = found.findings.groupby("check").size() if len(found.findings) else {}
    print(f"images: {int(rec['images'].sum())} in {len(rec)} record(s) from "
          f"{len(found.sources)} metadata CSV(s) and {len(files)} npz file(s)"
          + (f" ({int(rec['joined'].sum())} joined)" if files else ""))
    if len(checks):
        print("metadata disagreements: " + ", ".join(f"{k} {v}" for k, v in checks.items())
              + " (disagreements.csv, index.html)")
    if len(found.unjoined):
        kinds = found.unjoined.groupby("kind").size()
        # "338 metadata rows without an npz file": the noun before "without" made plural
        print("did not join: " + ", ".join(
            f"{v} {k}" if v == 1 else f"{v} {k.replace(' without', 's without', 1)}"
            for k, v in kinds.items()) + " (unjoined.csv)")
    if meta is not None and meta.skipped:
        print(f"note: {len(meta.skipped)} CSV(s) in the input folders are not metadata CSVs, "
              f"left out: {', '.join(meta.skipped[:5])}" + (" ..." if len(meta.skipped) > 5 else ""))
    for note in found.superclass_notes + atlas.write_atlas.last_notes:
        print(f"note: {note}")
    print(f"wrote {len(written)} file(s) to {args.output} in {time.perf_counter() - t0:.1f} s; "
          f"open {os.path.join(args.output, 'index.html')}")
    return _why(1 if failed else 0, f"{failed} npz file(s) failed (listed above)")


def cmd_example(args):
    path = example.make_example(args.output, *args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_serve(args):
    if args.all and not args.stop:
        return _why(2, "--all goes with --stop (serve --stop --all)")
    if args.stop:
        _stop_servers(args.all)
        return 0
    server.serve(run, idle_minutes=args.idle)
    return 0


def _stop_servers(every):
    """``serve --stop``: this installation's server, and with ``every`` the user's others;
    without it, says how many others run."""
    pid = server.stop()
    print("no server runs for this installation and environment" if pid is None
          else f"the server (pid {pid}) ends once its running commands have ended")
    others = server.others()
    if not every:
        if others:
            print(f"{len(others)} other server(s) of yours run (another copy of the engine, or "
                  "other start-up variables): 'doodle-engine serve --stop --all' ends them")
        return
    for path in others:
        pid = server.stop(path)
        if pid is not None:
            print(f"another server (pid {pid}) ends once its running commands have ended")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where the options are listed, not the
    usage text (whose era choices alone run to 26 names)."""

    def _check_value(self, action, value):
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        if action.dest == "era":  # 26 names: listed by their own command
            problem = f"{value!r} is not an era ('doodle-engine eras' lists them)"
        else:
            problem = f"{value!r} is not one of {', '.join(names)}"
        close = difflib.get_close_matches(str(value), names, n=1)
        if close:
            problem += f"; did you mean {close[0]!r}?"
        raise argparse.ArgumentError(action, problem)

    def error(self, message):
        message = message.removeprefix("argument ")
        self.exit(2, f"error: {message}\n({self.prog} --help lists the options)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an option the command does not know is said by the command's
        own parser (its --help), with the nearest option it has."""
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            parser = self._command_parser(ns)
            options = [o for a in parser._actions for o in a.option_strings]
            close = difflib.get_close_matches(extra[0].split("=", 1)[0], options, n=1)
            parser.error(f"unrecognized arguments: {' '.join(extra)}"
                         + (f"; did you mean {close[0]!r}?" if close else ""))
        return ns

    def _command_parser(self, ns):
        """The subcommand's parser of a parsed command line (else this parser)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices.get(getattr(ns, action.dest, None), self)
        return self


#: --max-pixels's help (every command that reads files has it)
MAX_PIXELS_HELP = (f"refuse a file whose arrays declare more pixels than this, before reading "
                   f"them (default {DEFAULT_MAX_PIXELS:,})")
#: --workers's help
WORKERS_HELP = ("local worker processes, or 'auto' (default): one per core, no more than the "
                "files or the free memory allow")


def _command(sub, name, helptext, **kw):
    """A subcommand whose --help starts with its one-line help (unless it has its own
    description)."""
    kw.setdefault("description", helptext[0].upper() + helptext[1:] + ".")
    return sub.add_parser(name, help=helptext, **kw)


def _reading_options(sp):
    """--allow-pickle and --max-pixels: how far a command trusts the files it reads."""
    sp.add_argument("--allow-pickle", action="store_true",
                    help="read object arrays (pickled data): only for files you trust")
    sp.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help=MAX_PIXELS_HELP)


def _output_options(sp):
    """-o/--output, how outputs are named in it, and --force."""
    sp.add_argument("-o", "--output", required=True, help="output folder (made if missing)")
    sp.add_argument("--force", action="store_true",
                    help="redo files whose outputs are newer than the input and made with "
                         "these options (they are skipped otherwise)")
    sp.add_argument("--prefix-record", action="store_true",
                    help="name each file's outputs RECORD__NAME (RECORD: its release zip's name, "
                         "or the record folder of a loose file), so same-named files of two "
                         "records go into one folder")


def build_parser():
    p = _Parser(prog="doodle-engine", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"doodle-engine {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def png_options(sp):
        sp.add_argument("--settings", metavar="K=V,...|JSON",
                        help="PNG-era sessions (no stored settings): sliders replacing the era's "
                             "defaults, as key=value pairs (crf_theta=60,crf_mu=80), a JSON "
                             "object or a JSON file; keys: " + ", ".join(SLIDERS))
        sp.add_argument("--images", metavar="FOLDER",
                        help="PNG-era sessions: the folder holding the images (default: beside "
                             "the doodle PNGs, then Doodler's assets/)")

    def common(sp, batch=True):
        png_options(sp)
        sp.add_argument("--classes", help="class names (comma list or a classes.txt) for files without them")
        _reading_options(sp)
        if batch:
            sp.add_argument("inputs", nargs="+",
                            help=".npz files, folders, release zips or zip members (ZIP::name.npz)")
            sp.add_argument("--workers", type=_workers, default="auto", help=WORKERS_HELP)
            sp.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
            sp.add_argument("--resume", action="store_true", help="skip files already in --table")
            sp.add_argument("--quiet", action="store_true", help="no progress bar")

    sp = _command(sub, "info", "describe Doodler files")
    sp.add_argument("files", nargs="+", help=".npz files, zip members (ZIP::member) or doodle PNGs")
    sp.add_argument("--json", action="store_true", help="print JSON (with every recipe value)")
    sp.add_argument("--era", choices=list(ERAS) + ["auto"], metavar="ERA",
                    help="override the detected era; 'auto': tell it from the stored label")
    common(sp, batch=False)
    sp.set_defaults(func=cmd_info)

    sp = _command(sub, "eras", "list Doodler's eras, or tell which era made each file")
    sp.add_argument("inputs", nargs="*", help=".npz files, folders or release zips (none: list the "
                                                "eras)")
    sp.add_argument("--json", action="store_true", help="the list as JSON (every recipe value)")
    sp.add_argument("--seed", type=int, default=0, help="forest seed of the candidates")
    sp.add_argument("--mode", choices=list(MODES), default="exact",
                    help="the mode the candidates are rebuilt in (default exact)")
    sp.add_argument("--classes", help="class names (comma list or a classes.txt) for files "
                                      "without them")
    png_options(sp)
    sp.add_argument("--workers", type=_workers, default="auto", help=WORKERS_HELP)
    sp.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    sp.add_argument("--resume", action="store_true", help="skip files already in --table")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
    _reading_options(sp)
    sp.set_defaults(func=cmd_eras)

    for name, func, helptext in [
            ("validate", cmd_validate, "rebuild labels and compare with the stored ones"),
            ("reconstruct", cmd_reconstruct, "rebuild labels into new npz files")]:
        sp = _command(sub, name, helptext)
        common(sp)
        sp.add_argument("--era", choices=list(ERAS) + ["auto"], metavar="ERA",
                        help="override the detected era (doodle-engine eras lists them); 'auto': "
                             "rebuild under every era the settings layout allows and keep the "
                             "best match of the stored label (the default when the path has no "
                             "results date)")
        sp.add_argument("--seed", type=int, default=0, help="random-forest seed")
        sp.add_argument("--mode", choices=list(MODES), default="exact",
                        help="exact: Doodler's labels (default); fast, fastest: measured "
                             "points of the speed/agreement curve (float32 trainer on fewer "
                             "rows, shorter CRF; docs/measurements/frontier.md); reference: scikit-learn's "
                             "own trainer")
        sp.add_argument("--crf-backend", choices=["pydensecrf", "numba"], default=None,
                        help="CRF implementation (default: the compiled numba lattice, same labels "
                             "as pydensecrf; pydensecrf in reference mode when installed)")
        sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
        if name == "validate":
            sp.add_argument("--trials", action="store_true", help="also rebuild earlier trials")
            sp.add_argument("--session", action="store_true",
                            help="each input is one results folder replayed as a Doodler session:"
                                 " its files in time order, the forest learning across them as "
                                 "the era did; reports each file with and without that history")
            sp.add_argument("--seeds", type=int, default=1,
                            help="rebuild forest-era files with this many seeds (--seed, "
                                 "--seed + 1, ...) and report min / median / max accuracy")
            sp.add_argument("--report", help="write the table (.csv or .parquet)")
            sp.add_argument("--plots", help="write figures to this folder: accuracy histogram, "
                                             "IoU per class, a disagreement map per result "
                                             "that differs (from the same run as the table)")
            sp.add_argument("--html", metavar="REPORT.html",
                            help="write one self-contained page (summary, table with the "
                                 "reason of every result below 100 %%, figures, disagreement "
                                 "maps, all from this run) to send or open offline")
            sp.add_argument("--max-maps", type=int, default=20,
                            help="at most this many disagreement maps, worst first (default 20)")
            sp.add_argument("--min-accuracy", type=_min_accuracy, metavar="ACC",
                            help="exit 1 if any result is below ACC, given as a percent "
                                 "(99.9 or 99.9%%) or a fraction (0.999; values up to 1 are "
                                 "fractions); the results below are listed")
        else:
            _output_options(sp)
        sp.set_defaults(func=func)

    sp = _command(sub, "remap", "merge/rename classes into new npz files")
    common(sp)
    sp.add_argument("--mapping", required=True, help="mapping JSON (Coast Train or Doodler schema)")
    sp.add_argument("--default", help="target for classes with no rule")
    _output_options(sp)
    sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
    sp.set_defaults(func=cmd_remap)

    sp = sub.add_parser(
        "export", help="write images, labels, colour labels, overlays, doodles",
        description="Write images/, labels/ (greyscale class indices), colorlabels/, overlays/ "
                    "and doodles/ as Doodler's gen_images_and_labels.py named them. Labels are "
                    "JPEG by default, as Doodler wrote them, and JPEG changes class values along "
                    "class edges (99-1,462 px per file on Doodler's own files, some to values "
                    "that are no class): use --png-labels for exact labels, e.g. for training.")
    common(sp)
    _output_options(sp)
    sp.add_argument("--png-labels", action="store_true",
                    help="write labels as lossless PNG: exact class values (recommended; the "
                         "default JPEG, Doodler's format, changes values along class edges)")
    sp.add_argument("--gym", action="store_true",
                    help="write a Segmentation Gym set instead: images/ and labels/ (lossless "
                         "PNGs, same stems), gym_config.json; classes matched by name onto one "
                         "class set (the union of the inputs' class names, or --mapping's)")
    sp.add_argument("--gym-npz", action="store_true",
                    help="--gym, and each pair in Gym's npz keys in npzs/ (arr_0 image, arr_1 "
                         "one-hot), at the image's own size")
    sp.add_argument("--mapping", help="--gym: mapping JSON (Coast Train or Doodler schema) bringing "
                                      "every input onto its classes, by class name")
    sp.add_argument("--default", help="--gym with --mapping: target for classes with no rule")
    sp.add_argument("--target-size", type=int, nargs=2, metavar=("H", "W"),
                    help="--gym: Gym's TARGET_SIZE, multiples of 16 (default: the commonest image "
                         "size, rounded to them)")
    sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
    sp.set_defaults(func=cmd_export)

    sp = _command(sub, "stats", "class-pixel distributions per file and record")
    common(sp)
    sp.add_argument("--metadata", nargs="+", action="extend", metavar="CSV",
                    help="Coast Train metadata to join on the npz file name: CSV files, folders "
                         "of them, release zips (their CSV, read in place); several after one "
                         "flag (put it after the inputs)")
    sp.add_argument("--report", help="write the table per file (.csv or .parquet), joined to "
                                      "--metadata")
    sp.add_argument("--table", help="stream rows to this CSV (needed for --resume)")
    sp.set_defaults(func=cmd_stats)

    sp = sub.add_parser(
        "atlas", help="the release atlas: records, classes, labelers, maps (HTML + PNG + CSV)",
        description="Counts, figures and maps of Coast Train records, as the CoastTrainMetaPlots "
                    "notebooks draw them: records.csv, class_images.csv, class_pixels.csv (with "
                    "npz files), labelers.csv, disagreements.csv, unjoined.csv, images.csv, "
                    "class_distribution.png, labelers.png, records.png, geography.png, "
                    "heatmap.png, coordinates.png, locations.html and index.html; with "
                    "--mapping, superclass_images.csv and superclass_distribution.png. "
                    "Nothing is downloaded.")
    sp.add_argument("inputs", nargs="+",
                    help="metadata CSVs, release zips, folders of CSVs, npz files or zips")
    sp.add_argument("-o", "--output", required=True, help="folder for the atlas (created)")
    sp.add_argument("--classes", help="class names for npz files without them")
    sp.add_argument("--mapping", help="a mapping JSON by class name (a Coast Train remap file): "
                                      "also count and draw the images containing each "
                                      "superclass")
    sp.add_argument("--default", help="with --mapping: the superclass of classes it has no "
                                      "rule for (else counted as '(no rule)')")
    _reading_options(sp)
    sp.add_argument("--workers", type=_workers, default="auto", help=WORKERS_HELP)
    sp.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_atlas)

    sp = _command(sub, "example", "write a generated Doodler file to try the engine on")
    sp.add_argument("output", help="path of the .npz to write")
    sp.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                    help="image height and width (default 240 320)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the generated scene")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing file")
    sp.set_defaults(func=cmd_example)

    sp = _command(sub, "serve", "keep a warm engine that runs later commands: no start-up cost")
    sp.add_argument("--idle", type=float, default=60, metavar="MIN",
                    help="end after MIN minutes without a command (0: never; default 60)")
    sp.add_argument("--stop", action="store_true", help="end the running server")
    sp.add_argument("--all", action="store_true",
                    help="with --stop: also end your servers of other copies of the engine")
    sp.set_defaults(func=cmd_serve)

    sp = _command(sub, "bench", "time each stage, compiled vs straightforward path")
    sp.add_argument("files", nargs="+", help=".npz files, folders or release zips")
    sp.add_argument("--repeat", type=int, default=1,
                    help="warm runs per mode after the first, timed (default 1)")
    sp.add_argument("--era", choices=sorted(ERAS), metavar="ERA",
                    help="the era whose recipe to time (default: the file's, assumed where "
                         "the path has no date; doodle-engine eras lists them)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=lambda a: __import__("doodle_engine.bench", fromlist=["main"]).main(a))
    return p


class Terminated(BaseException):
    """SIGTERM (``timeout``, ``kill``): raised in the main thread so that a run ends as
    Ctrl-C ends it: workers stopped, temporary folders and the table's lock removed."""


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _ends_cleanly_on_sigterm():
    try:
        old = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _say(text):
    """An error line: names that are not UTF-8, and newlines, escaped (always one line)."""
    print(printable(text, backslash=False), file=sys.stderr)


def _stopped(word, args):
    """The line of a run stopped by a signal, with the rows it kept for ``--resume``."""
    if getattr(args, "table", None):
        n, stream = table.Table(args.table).left_for_resume()
        if n:
            return (f"{word}: {n} finished row(s) kept in {stream}; the same command with "
                    "--resume goes on from there")
        if not os.path.exists(args.table):
            return f"{word}: no row had finished, so {args.table} keeps none"
    return word


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # shown in reports
    with contextlib.suppress(AttributeError, ValueError):  # a name's odd bytes never crash a print
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        with _ends_cleanly_on_sigterm():
            return args.func(args)
    except DoodleError as exc:
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _say(_stopped("interrupted", args))
        return 130
    except Terminated:
        _say(_stopped("terminated", args))
        return 143
    except BrokenPipeError:  # the reader of the output has gone (``| head``): a normal end
        return _closed_pipe()
    except OSError as exc:  # an output that cannot be written (a full or read-only disk)
        where = exc.filename or "an output"
        _say(f"error: {where}: cannot write: {exc.strerror or exc}")
        return 2


#: the exit status of a command whose output pipe closed (128 + SIGPIPE), as a shell reports it
CLOSED_PIPE = 141


def _closed_pipe():
    """The reader of stdout has gone: say nothing (that is how ``| head`` ends a command),
    send what is still buffered nowhere, and end with :data:`CLOSED_PIPE`."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass
    return CLOSED_PIPE


def run(argv=None):
    """The installed ``doodle-engine`` command: :func:`main`, then a quick exit.

    Once Numba has run, Python's own shutdown spends 0.23-0.3 s tearing down its modules and
    LLVM (measured on a 2-core machine: a serial cached kernel alone costs that), more than
    the reconstruction of a small file.  Nothing of ours needs that teardown: outputs are
    written and renamed, workers are reaped and a Dask client is closed before ``main``
    returns.  So the atexit handlers run, the streams are flushed, and the process ends."""
    notice = tempfile.mkdtemp(prefix="doodle-engine-")  # one compile notice per command
    atexit.register(shutil.rmtree, notice, ignore_errors=True)
    os.environ[NOTICE_ENV] = os.path.join(notice, "compile-notice")
    code = main(argv)
    code = 0 if code is None else code
    if "doodle_engine.compiling" in sys.modules:  # kernels were loaded: end their notice
        sys.modules["doodle_engine.compiling"].finish()
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # what was buffered could not reach a reader that has gone
        os._exit(_closed_pipe())
    except Exception:  # a closed pipe, or no such hook: leave it to Python's own exit
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    run()
