"""One input -> its table rows: the per-file jobs (validate, reconstruct, remap, export, stats,
eras) a run maps over its inputs, and :func:`run_one`, which turns any failure into an error
row so the run goes on."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

from .colorize import colorize
from .era_match import candidate_eras, match_era, needs_match
from .eras import recipe as era_recipe
from .errors import DoodleError
from .export import export_gym, export_record, export_targets, is_jpeg, write_image
from .inputs import load, source_mtime
from .modes import PROFILES, ModeProfile, profile
from .npz import read_made_with, save
from .outputs import output_stem
from .reasons import reason
from .reconstruct import reconstruct
from .record import DEFAULT_MAX_PIXELS, NO_CLASS, with_label
from .releasezip import record_of
from .remapping import Mapping, by_number, moves, near_names, remap_record
from .session import history_note
from .validate import validate


def _read_options(extra):
    """The reading options a batch passes on (``--max-pixels``, ``--allow-pickle``)."""
    opts = {"allow_pickle": bool(extra.get("allow_pickle", False)),
            "max_pixels": extra.get("max_pixels", DEFAULT_MAX_PIXELS)}
    # PNG sessions: sliders replacing the era's defaults, the images' folder
    opts.update({k: extra[k] for k in ("settings", "images") if extra.get(k) is not None})
    return opts


#: the era of a row whose job rebuilds nothing, where the file's layout allows several eras
#: and no date chose one (``validate`` and ``eras`` tell it from the stored label)
ERA_NOT_TOLD = "not told: no date, several eras possible (validate or eras tells it)"


def _stored_row(path, rec):
    """:func:`_base_row` for a job that rebuilds nothing (stats, remap, export, gym): an era
    the engine would only assume is left empty, its ``era_source`` saying why."""
    row = _base_row(path, rec)
    if needs_match(rec.settings):
        row.update({"era": "", "era_source": ERA_NOT_TOLD})
    return row


def _base_row(path, rec):
    h, w = rec.shape
    s = rec.settings
    row = {"file": str(path), "trial": rec.trial_prefix, "record": record_of(path),
           "height": h, "width": w, "mpx": h * w / 1e6,
           "classes": "|".join(rec.classes) if rec.classes else "",
           "n_classes": rec.n_classes, "doodled_classes": len(rec.doodled_classes()),
           "doodle_fraction": float((rec.doodles > 0).mean())}
    if s is not None:
        row.update({"era": s.era, "era_source": s.era_source, "layout": s.layout,
                    "crf_downsample": s.crf_downsample,
                    "classifier_downsample": s.classifier_downsample, "crf_theta": s.crf_theta,
                    "crf_mu": s.crf_mu, "gt_prob": s.gt_prob, "n_sigmas": s.n_sigmas,
                    "n_estimators": s.n_estimators})
    return row


def _rebuild(r, era=None, seed=0, mode="exact", crf_backend=None):
    """(Reconstruction, extra row columns).  The era is told from the stored label (best
    match among the eras the settings layout allows) when ``era`` is "auto", or when it is
    None and the path gave no date to choose among several."""
    if r.label is not None and r.settings is not None and (
            era == "auto" or (era is None and needs_match(r.settings))):
        m = match_era(r, seed=seed, mode=mode, crf_backend=crf_backend, stop_at_exact=True)
        return m.result, m.row()
    return reconstruct(r, seed=seed, mode=mode, crf_backend=crf_backend), {}


def _load_era(era):
    """The era to pass to ``load``: "auto" decides later, from the label."""
    return None if era == "auto" else era


def seed_spread(r, era, seeds, first_seed=0, mode="exact", crf_backend=None, first=None):
    """Accuracies of ``r`` rebuilt with ``seeds`` forest seeds (first_seed, first_seed + 1, ...)
    under ``era``; ``first`` is the Reconstruction already made with ``first_seed``.
    Features are computed once; each seed fits its own forest."""
    shared = {}
    accs = []
    for k in range(seeds):
        s = first_seed + k
        res = first if (k == 0 and first is not None) else reconstruct(
            r, era=era, seed=s, mode=mode, crf_backend=crf_backend, shared=shared)
        accs.append(float((res.label0 == r.label).mean()))
    return accs


def validate_file(path, era=None, classes=None, trials=False, seed=0, mode="exact",
                  crf_backend=None, seeds=1, keep_label=False, **_):
    """Rebuild every result in the file (the newest, and earlier trials if asked) and compare.

    ``seeds`` > 1: forest-era results are rebuilt with that many seeds and the spread of
    their accuracy is reported (Doodler's forest was unseeded).  With ``keep_label`` the
    rebuilt label of every result that differs from the stored one rides along in the row
    under ``_rebuilt`` (the batch runner stores it for the plots and takes it out of the
    table), so figures show the very reconstruction the table measured."""
    rec = load(path, classes=classes, era=_load_era(era), **_read_options(_))
    rows = []
    for r in [rec] + (rec.trials if trials else []):
        if r.label is None:
            raise DoodleError(path, "has no stored label to validate against")
        t0 = time.perf_counter()
        res, extra = _rebuild(r, era, seed, mode, crf_backend)
        n = max(r.n_classes, int(res.label.max()))
        m = validate(r.label, res.label0, n)
        row = _base_row(path, r)
        row.update({"era": res.era, "era_source": res.settings.era_source,
                    "mode": profile(mode).name, "crf_backend": crf_backend or "default"})
        row.update(extra)
        row.update(m.as_row(r.classes))
        if seeds > 1 and era_recipe(res.era).classifier == "rf":
            accs = seed_spread(r, res.era, seeds, seed, mode, crf_backend, first=res)
            row.update({"seeds": seeds, "accuracy_min": min(accs),
                        "accuracy_median": float(np.median(accs)), "accuracy_max": max(accs)})
        row.update({f"t_{k}": v for k, v in res.timings.items()})
        row["seconds"] = time.perf_counter() - t0
        row["history"] = history_note(res.era)  # a forest that learned across a session
        row["remapped"] = r.remapped or ""  # from what, as the file records it
        row["notes"] = "; ".join([*res.notes, *([REMAPPED_REASON] if r.remapped else [])])
        row["reason"] = reason(row)  # the causes of a result below 100 %, in short
        if keep_label and m.n_differ:
            row["_rebuilt"] = res.label0
        rows.append(row)
    return rows


#: why a remapped file's rebuild need not match its stored label (a note of its row; the
#: row's ``remapped`` says from what)
REMAPPED_REASON = ("remapped: not the file Doodler made: its label is the remapped stored "
                   "label, which the classifier trained on its remapped doodles need not give")


def era_file(path, classes=None, seed=0, mode="exact", crf_backend=None, **_):
    """Which Doodler era made the file: from its settings layout and results date, else the
    era whose rebuild matches its stored label best."""
    rec = load(path, classes=classes, trials=False, **_read_options(_))
    row = _base_row(path, rec)
    if rec.settings is None:
        raise DoodleError(path, "has no settings: its era cannot be told")
    if needs_match(rec.settings) and rec.label is not None:
        m = match_era(rec, seed=seed, mode=mode, crf_backend=crf_backend)
        row.update({"era": m.era, "era_source": m.result.settings.era_source,
                    "accuracy": m.candidates[0].accuracy, "differ": m.candidates[0].differ})
        row.update(m.row())
    return [row]


def output_path(outdir, stem, suffix=".npz"):
    return Path(outdir) / (stem + suffix)


def up_to_date(path, *outputs, made_with=None):
    """True when every output exists and is not older than the input file (the release zip
    holding a zip member); with ``made_with``, the first output (an npz) must also have been
    made with exactly those options (another mode, era, seed or mapping redoes it)."""
    src = source_mtime(path)
    if math.isnan(src):  # the input cannot be read: never up to date
        return False
    try:
        fresh = all(os.stat(o).st_mtime >= src for o in outputs)
    except OSError:
        return False
    return fresh and (made_with is None or read_made_with(outputs[0]) == made_with)


def options_text(job, **options):
    """The command and the options that shape its results, as an output npz and a table row
    keep them: ``job``, then each option given that is not None and not the job's default
    as ``name=value``; a mode by its name (a customised profile in full), a path as text, a
    mapping by its file name and a digest of its rules."""
    parts = [job]
    defaults = _defaults(job)
    for name, value in sorted(options.items()):
        if value is None or (name in defaults and _same(name, value, defaults[name])):
            continue  # a default is not written: the API and the command line agree
        if isinstance(value, Mapping):
            # the rules alone: the same mapping copied to another folder is the same mapping
            rules = (value.aliases, value.targets, value.index_map, value.classes,
                     value.source_schema)
            digest = hashlib.sha1(repr(rules).encode("utf-8")).hexdigest()[:12]
            value = f"{Path(value.source.removesuffix(' (doodler schema)')).name} (rules {digest})"
        elif isinstance(value, ModeProfile) and PROFILES.get(value.name) == value:
            value = value.name
        elif isinstance(value, os.PathLike):
            value = os.fspath(value)
        parts.append(f"{name}={value}" if isinstance(value, str) else f"{name}={value!r}")
    return " ".join(parts)


def _defaults(job):
    """The default value of each keyword of the job's function (none for an unknown job)."""
    fn = JOBS.get(job)
    if fn is None:
        return {}
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _same(name, value, default):
    """Whether an option's value is its default (a mode by its profile)."""
    if name == "mode":
        return profile(value) == profile(default)
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


#: why a file was skipped (its row's ``skipped`` column)
SKIPPED = "up to date"  # outputs newer than the input; --force redoes them


def _skipped(path, outputs):
    return [{"file": str(path), "output": ";".join(str(o) for o in outputs),
             "skipped": SKIPPED}]


#: an output's ``seed`` when its era's classifier does not use one (the MLP eras are
#: deterministic): such an output stays up to date whatever ``--seed`` a later run gives
SEED_UNUSED = "unused"


def reconstruct_targets(path, outdir, prefix_record=False):
    """The files :func:`reconstruct_file` writes for the npz at ``path``: the npz, the
    greyscale label PNG (class index 0..K-1 per pixel, for programs) and the colour label
    PNG (Doodler's class colours, to look at)."""
    stem = output_stem(path, prefix_record)
    return [output_path(outdir, stem), output_path(outdir, stem, "_label.png"),
            output_path(outdir, stem, "_label_color.png")]


def reconstruct_file(path, outdir, era=None, classes=None, seed=0, mode="exact", force=False,
                     crf_backend=None, prefix_record=False, **_):
    """Write <outdir>/<stem>.npz (Doodler layout, rebuilt label), <stem>_label.png
    (greyscale class indices) and <stem>_label_color.png (class colours); skipped when all
    exist and are newer than the input (unless ``force``)."""
    targets = reconstruct_targets(path, outdir, prefix_record)
    made = {s: options_text("reconstruct", era=era, seed=s, mode=mode,
                            crf_backend=crf_backend, classes=classes)
            for s in (seed, SEED_UNUSED)}
    if not force and any(up_to_date(path, *targets, made_with=m) for m in made.values()):
        return _skipped(path, targets)
    target, picture, colour = targets
    rec = load(path, classes=classes, era=_load_era(era), **_read_options(_))
    t0 = time.perf_counter()
    res, extra = _rebuild(rec, era, seed, mode, crf_backend)
    out = with_label(rec, res.label0, layout=rec.label_layout or "onehot")
    tried = candidate_eras(rec.settings) if extra else [res.era]  # a best match tried them all
    seeded = any(era_recipe(e).classifier == "rf" for e in tried)
    save(out, target, overwrite=True, made_with=made[seed if seeded else SEED_UNUSED])
    grey = np.where(res.label0 == NO_CLASS, 0, res.label0).astype(np.uint8)
    write_image(picture, grey)
    write_image(colour, colorize(res.label0, rec.classes))
    row = _base_row(path, rec)
    row.update({"era": res.era, "era_source": res.settings.era_source,
                "mode": profile(mode).name, **extra})
    row.update({f"t_{k}": v for k, v in res.timings.items()})
    row.update({"output": str(target), "seconds": time.perf_counter() - t0})
    return [row]


def remap_target(path, outdir, prefix_record=False):
    """The npz :func:`remap_file` writes for the input at ``path``."""
    return output_path(outdir, output_stem(path, prefix_record))


def remap_file(path, outdir, mapping, classes=None, default=None, force=False,
               prefix_record=False, **_):
    target = remap_target(path, outdir, prefix_record)
    made = options_text("remap", mapping=mapping, default=default, classes=classes)
    if not force and up_to_date(path, target, made_with=made):
        return _skipped(path, [target])
    rec = load(path, classes=classes, **_read_options(_))
    out = remap_record(rec, mapping, default=default, warn=False)  # the row says them
    # the effective mapping, for the summary: [[source class, target class, pixels], ...];
    # made before the write, so that a file it refuses gets no output
    effective = json.dumps(moves(rec, mapping, default))
    said = "; ".join(near_names(mapping, rec.classes, default) + by_number(mapping, rec.classes))
    save(out, target, overwrite=True, made_with=made)
    row = _stored_row(path, out)
    row["output"] = str(target)
    row["moves"], row["warnings"] = effective, said
    return [row]


def export_file(path, outdir, classes=None, label_ext=".jpg", force=False, prefix_record=False,
                **_):
    stem = output_stem(path, prefix_record)
    targets = export_targets(stem, outdir, label_ext)
    if not force and up_to_date(path, *targets):
        return _skipped(path, targets)
    rec = load(path, classes=classes, **_read_options(_))
    written = export_record(rec, outdir, label_ext=label_ext, stem=stem)
    row = _stored_row(path, rec)
    row["output"] = ";".join(str(p) for p in written)
    row["replaced"] = _other_label_removed(targets[1])
    if is_jpeg(label_ext):
        row.update(jpeg_label_damage(rec, targets[1]))
    return [row]


def _other_label_removed(label):
    """Remove the label an earlier export wrote beside ``label`` in the other format (JPEG
    beside PNG, or PNG beside JPEG): two labels of one image in labels/ would both be taken
    for training.  Returns the removed file's name, or ""."""
    for ext in (".jpg", ".png"):
        other = label.with_name(label.name[:-len(label.suffix)] + ext)
        if other != label and other.is_file():
            other.unlink()
            return other.name
    return ""


def gym_file(path, outdir, gym_classes, mapping=None, default=None, npz_prefix=None,
             classes=None, prefix_record=False, **_):
    """One file into a Segmentation Gym set whose classes are ``gym_classes`` (decided for
    the whole set before the run, so every worker maps onto the same classes)."""
    rec = load(path, classes=classes, trials=False, **_read_options(_))
    written, facts = export_gym(rec, outdir, gym_classes, mapping=mapping, default=default,
                                npz_prefix=npz_prefix, stem=output_stem(path, prefix_record))
    row = _stored_row(path, rec)
    row.update(facts)
    row["output"] = ";".join(Path(p).relative_to(outdir).as_posix() for p in written)
    return [row]


def jpeg_label_damage(record, jpeg_path):
    """How much a JPEG label written by export differs from the label it was made from:
    ``jpeg_changed_px`` (pixels whose value changed) and ``jpeg_beyond_classes_px``
    (pixels whose value is not a class index at all)."""
    grey = np.where(record.label == NO_CLASS, 0, record.label)
    with Image.open(jpeg_path) as img:
        back = np.asarray(img)
    return {"jpeg_changed_px": int((back != grey).sum()),
            "jpeg_beyond_classes_px": int((back >= max(record.n_classes, 1)).sum())}


def stats_file(path, classes=None, **_):
    """Class-pixel counts of the stored label."""
    rec = load(path, classes=classes, trials=False, **_read_options(_))
    row = _stored_row(path, rec)
    if rec.label is not None:
        counts = np.bincount(rec.label.ravel(), minlength=256)
        names, note = unique_names(rec.classes or [str(i) for i in range(rec.n_classes)])
        for i, name in enumerate(names):
            row[f"px_{name}"] = int(counts[i])
        row["unlabelled_px"] = int(counts[NO_CLASS])  # no class: not a class column
        if note:
            row["notes"] = note
    row["file_name"] = os.path.basename(str(path))
    return [row]


def unique_names(names):
    """Class names made unique for column names: a repeated name gets ``#2``, ``#3``... (in
    class order), so no class's counts overwrite another's; and a note saying so ("" when
    the names were unique already)."""
    used, out, repeated = set(), [], []
    for name in names:
        if name in used:
            k = 2
            while f"{name}#{k}" in used or f"{name}#{k}" in names:
                k += 1
            name = f"{name}#{k}"
            repeated.append(name)
        used.add(name)
        out.append(name)
    note = (f"repeated class names, counted apart as {', '.join(repeated)}" if repeated else "")
    return out, note


JOBS = {"validate": validate_file, "reconstruct": reconstruct_file, "remap": remap_file,
        "export": export_file, "gym": gym_file, "stats": stats_file, "eras": era_file}


def run_one(job_name, path, kwargs):
    """Run one job, turning any failure into an error row (the batch goes on)."""
    t0, started = time.perf_counter(), time.time()
    try:
        rows = JOBS[job_name](path, **kwargs)
        for r in rows:
            r.setdefault("error", "")
    except DoodleError as exc:
        # a stage that does not know the file (a CRF parameter check, say) gets it named here
        text = str(exc) if exc.path != "<array>" else f"{path}: {exc.problem}"
        rows = [{"file": str(path), "error": text}]
    except MemoryError:
        rows = [{"file": str(path), "error": f"{path}: out of memory"}]
    except Exception as exc:  # a bug or a library failure: record it, keep going
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        rows = [{"file": str(path), "error": f"{path}: {type(exc).__name__}: {exc} (at {where})"}]
    if rows[0]["error"]:
        rows[0]["error"] += _left_in_place(job_name, path, kwargs, started)
    for r in rows:
        r["mtime"] = source_mtime(path)
        r.setdefault("seconds", time.perf_counter() - t0)
    return rows


def _left_in_place(job_name, path, kwargs, started):
    """For a failed file, the outputs an earlier run wrote for it (older than this run's
    start: of other options, or of an older input): they stay where they are, and the error
    says so ("" when none)."""
    outdir, prefixed = kwargs.get("outdir"), kwargs.get("prefix_record", False)
    if outdir is None or job_name not in ("reconstruct", "remap", "export"):
        return ""
    stem = output_stem(path, prefixed)
    targets = {"reconstruct": lambda: reconstruct_targets(path, outdir, prefixed),
               "remap": lambda: [remap_target(path, outdir, prefixed)],
               "export": lambda: export_targets(stem, outdir, kwargs.get("label_ext", ".jpg"))}
    left = []
    for t in targets[job_name]():
        with contextlib.suppress(OSError):  # not there, or not to be looked at: nothing to say
            if os.path.isfile(t) and os.stat(t).st_mtime < started:
                left.append(str(t))
    if not left:
        return ""
    more = f" and {len(left) - 1} more" if len(left) > 1 else ""
    return f" (an earlier run's output is left as it was: {left[0]}{more})"
