"""Session replay: the images of one Doodler results folder in time order, with the forest
learning across them as the app of that era did (the recipe's ``session`` knob).

Read from dash_doodler's ``image_segmentation.py`` at each commit:

``none``
    every image gets a fresh forest (October 2020 up to 1ced1fe).
``first-forest`` (1ced1fe)
    the forest of the session's first image is saved and reloaded with ``warm_start`` and the
    same number of trees, so scikit-learn adds no tree: later images reuse the first forest.
``add-trees`` (a2996dd .. 1b53380)
    the saved forest gets ``n`` more trees and is refitted (no ``warm_start``: every tree
    is refitted) on the current image's rows only: image i has (i + 1) n trees.
``accumulate-rows`` (b02840d .. df7fccf)
    the rows of every earlier image (as saved: after the cap) are put before the current
    image's and the forest, grown by ``n_estimators`` per image, is refitted on all of them:
    image i has (i + 2) n trees.

An image doodled with one class never reached the forest (Doodler's one-class shortcut): it
adds no rows and no trees.  Doodler kept the forest and its rows in files of its working
folder named after the classes, not per results folder, so rows from an earlier session
may have been in them: the first image of a folder cannot be proven exact, and a file
rebuilt alone (an ``.npz`` of those years) has its history missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import classifier
from .eras import recipe as era_recipe
from .errors import DoodleError, renamed
from .features import era_features, sigma_schedule
from .inputs import load
from .png import is_png_session, load_session
from .reconstruct import reconstruct, share_features
from .record import DEFAULT_MAX_PIXELS
from .standardize import standardize
from .validate import validate

HISTORY_MISSING = "history missing: cannot be exact"


def history_note(era):
    """What rebuilding one file alone misses under ``era`` ('' when nothing)."""
    knob = era_recipe(era).session
    if knob == "none":
        return ""
    what = {"first-forest": "the session's first forest",
            "add-trees": "the trees grown on earlier images",
            "accumulate-rows": "the rows and trees of earlier images"}[knob]
    return f"{HISTORY_MISSING} (Doodler's forest kept {what}; --session replays a folder)"


@dataclass
class ReplayStep:
    path: str
    era: str
    knob: str
    earlier: int  # earlier images whose forest / rows this one used
    trees: int | None  # forest size used
    rows: int | None  # training rows used
    result: object  # Reconstruction with the session's history
    alone: object | None  # Reconstruction as the first image of a session (None if not asked)
    notes: list = field(default_factory=list)


def _features(record, settings, recipe, mode, shared):
    img = standardize(record.image, recipe.standardize)
    n_classes = len(np.unique(record.doodles)) - 1
    sigmas = sigma_schedule(settings, n_classes, recipe)
    feats = era_features(img, sigmas, recipe, mode)
    share_features(shared, recipe, sigmas, mode, img, feats)
    return feats


def replay(records, seed=0, mode="exact", crf_backend=None, threads=1, compare=True, workers=None):
    """Replay ``records`` (one results folder, in time order; each with its settings) as one
    Doodler session.  Returns a :class:`ReplayStep` per record; with ``compare`` each step
    also holds the rebuild of the image alone (a fresh forest), to tell how much the
    session's history changes it.  ``threads``: the forest fit's threads (``workers``, its old
    name, goes in version 0.2.0)."""
    threads = renamed("replay", "workers", "threads", workers, threads)
    steps = []
    state = {"rows": None, "forest": None, "fitted": 0, "width": None}
    for i, rec in enumerate(records):
        s = rec.settings
        r = era_recipe(s.era, rec.path)
        knob = r.session if r.classifier == "rf" else "none"
        notes = []
        alone = (reconstruct(rec, seed=seed, mode=mode, crf_backend=crf_backend,
                             threads=threads) if compare else None)
        one_class = len(np.unique(rec.doodles)[1:]) < 2
        if knob == "none" or one_class:
            res = alone if alone is not None else reconstruct(
                rec, seed=seed, mode=mode, crf_backend=crf_backend, threads=threads)
            if one_class:
                notes.append("one class doodled: no forest, adds nothing to the session")
            steps.append(ReplayStep(rec.path, s.era, knob, 0, None, None, res, alone, notes))
            continue
        shared = {}
        feats = _features(rec, s, r, mode, shared)
        if state["width"] is not None and state["width"] != feats.shape[1]:
            notes.append(f"{feats.shape[1]} features where the session's forest has "
                         f"{state['width']}: a fresh forest (Doodler would have failed here)")
            state = {"rows": None, "forest": None, "fitted": 0, "width": None}
        n = state["fitted"]
        base = classifier.n_trees(r, s)
        extra, trees = None, None
        reuse = knob == "first-forest" and state["forest"] is not None
        if reuse:
            _, _, seen = classifier.training_rows(feats, rec.doodles, s, recipe=r)
            if not np.array_equal(seen, state["forest"][1]):
                # 1ced1fe refitted with warm_start and no new tree: the forest kept its trees
                # but took this image's classes, so its predictions broke (today's
                # scikit-learn raises); a fresh forest here, said in the notes
                notes.append(f"doodled classes {seen.tolist()} differ from the session's first "
                             f"forest's {np.asarray(state['forest'][1]).tolist()}: Doodler's "
                             "reused forest could not predict them; a fresh forest instead")
                reuse = False
        if reuse:
            fitted = state["forest"]
        else:
            if knob == "accumulate-rows":
                extra, trees = state["rows"], base + n * int(s.n_estimators)
            elif knob == "add-trees":
                trees = base * (n + 1)
            fitted = classifier.fit(feats, rec.doodles, s, seed=seed, threads=threads,
                                    path=rec.path, mode=mode, recipe=r, extra_rows=extra,
                                    trees=trees)
        x, y, _ = classifier.training_rows(feats, rec.doodles, s, recipe=r, extra_rows=extra)
        res = reconstruct(rec, seed=seed, mode=mode, crf_backend=crf_backend, threads=threads,
                          shared=shared, fitted=fitted)
        if knob == "accumulate-rows":
            state["rows"] = (x, y)
        if state["forest"] is None or knob != "first-forest":
            state["forest"] = fitted
        state["width"] = feats.shape[1]
        used = {"first-forest": classifier.n_trees(r, s), "add-trees": trees,
                "accumulate-rows": trees}[knob]
        if i == 0 or n == 0:
            notes.append("first forest of the folder (an earlier session's forest file, if "
                         "Doodler had one, is not known)")
        steps.append(ReplayStep(rec.path, s.era, knob, n, used, len(y), res, alone, notes))
        state["fitted"] = n + 1
    return steps


def load_folder(folder, classes=None, era=None, settings=None, images=None,
                max_pixels=DEFAULT_MAX_PIXELS):
    """(records in time order, how the order was told) of one results folder: a PNG-era
    folder (time stamps in the names, else names) or a folder of ``.npz`` files (by name)."""

    folder = Path(folder)
    if not folder.is_dir():
        raise DoodleError(folder, "--session takes results folders")
    if is_png_session(folder):
        records = load_session(folder, classes=classes, era=era, settings=settings,
                               images=images, max_pixels=max_pixels)
        stamped = all(r.path and any(ch.isdigit() for ch in Path(r.path).stem.split("_annotations")[-1])
                      for r in records)
        return records, ("in the time order of the file names' stamps" if stamped
                         else "no time stamps: in name order (Doodler's order is not known)")
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DoodleError(folder, "holds no .npz files and no Doodler doodle PNGs")
    if settings is not None:
        raise DoodleError(folder, "--settings applies to PNG sessions only")
    return [load(f, classes=classes, era=era, trials=False, max_pixels=max_pixels)
            for f in files], "in name order"


def replay_table(steps, records):
    """The table of a replay: per file the accuracy with the session's history and alone, and
    the change (a pandas DataFrame, one row per file)."""
    import pandas as pd  # noqa: PLC0415  0.25 s to import; a plain validate (jobs) needs none

    rows = []
    for step, rec in zip(steps, records):
        row = {"file": step.path, "era": step.era, "session": step.knob,
               "earlier_images": step.earlier, "trees": step.trees, "rows": step.rows}
        if rec.label is not None:
            n = max(rec.n_classes, int(step.result.label.max()))
            m = validate(rec.label, step.result.label0, n)
            row.update({"accuracy": m.accuracy, "differ": m.n_differ})
            if step.alone is not None:
                a = validate(rec.label, step.alone.label0, max(n, int(step.alone.label.max())))
                row.update({"accuracy_alone": a.accuracy, "differ_alone": a.n_differ,
                            "session_points": 100 * (m.accuracy - a.accuracy),
                            "session_changed_px": int((step.result.label0 != step.alone.label0).sum())})
        row["notes"] = "; ".join(dict.fromkeys(step.notes + step.result.notes))  # each once
        rows.append(row)
    return pd.DataFrame(rows)
