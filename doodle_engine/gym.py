"""Export a Segmentation Gym set over many inputs: decide the set's classes from every input's
class names before any worker runs, run the ``gym`` job into a staging folder, and move the set
into place with its ``gym_config.json`` only when every file succeeded (else nothing is written).

Classes are matched by name, never by position: without a mapping the set's classes are the
union of the inputs' class names, in the order first seen (inputs in the run's sorted order,
each file's names in its own order); with a mapping they are the mapping's target classes in
its order (Coast Train's ``super_classes`` list, Doodler's 1..N numbering)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .batch import run_batch
from .errors import DoodleError
from .export import (
    GYM_FOLDERS,
    by_number_hint,
    gym_class_table,
    gym_target,
    gym_targets,
    safe_stem,
)
from .files import atomic_write, on_disk, short_name, split_member
from .inputs import find_inputs, load, refuse_whole_zip
from .npz import read_classes
from .outputs import check_outputs, output_stem, outputs_apart
from .record import DEFAULT_MAX_PIXELS, MAX_CLASSES
from .releasezip import is_zip_name, open_member

#: how the set's class order was decided (``CLASS_ORDER`` in gym_config.json)
ORDER_UNION = ("union of the inputs' class names, in the order first seen (inputs in sorted "
               "order, each file's names in its own order)")
ORDER_MAPPING = "the mapping's target classes, in its order ({source})"
#: the config file written beside images/ and labels/
CONFIG_NAME = "gym_config.json"
#: Segmentation Gym's example config (utils/vanilla_unet_config): the model, training and
#: augmentation keys its scripts read, as a start to edit; the set's own facts replace
#: NCLASSES, N_DATA_BANDS, TARGET_SIZE, ROOT_STRING and AUG_LOOPS
GYM_EXAMPLE = {
    "MODEL": "unet", "KERNEL": 3, "STRIDE": 2, "BATCH_SIZE": 5, "FILTERS": 8,
    "DROPOUT": 0.0, "DROPOUT_CHANGE_PER_LAYER": 0.0, "DROPOUT_TYPE": "standard",
    "USE_DROPOUT_ON_UPSAMPLING": False, "DO_TRAIN": True, "LOSS": "cat", "PATIENCE": 10,
    "MAX_EPOCHS": 100, "VALIDATION_SPLIT": 0.5, "RAMPUP_EPOCHS": 20, "SUSTAIN_EPOCHS": 0.0,
    "EXP_DECAY": 0.9, "START_LR": 1e-7, "MIN_LR": 1e-7, "MAX_LR": 1e-4, "FILTER_VALUE": 0,
    "DOPLOT": True, "USEMASK": False, "AUG_ROT": 0, "AUG_ZOOM": 0.05, "AUG_WIDTHSHIFT": 0.05,
    "AUG_HEIGHTSHIFT": 0.05, "AUG_HFLIP": False, "AUG_VFLIP": False, "AUG_COPIES": 3,
    "SET_GPU": "0", "SET_PCI_BUS_ID": True, "WRITE_MODELMETADATA": True, "DO_CRF": False,
    "LOSS_WEIGHTS": False, "MODE": "all", "TESTTIMEAUG": True, "OTSU_THRESHOLD": True,
}


@dataclass
class GymPlan:
    """The set's classes (label value = position), how their order was decided, and the
    class lists found among the inputs (names -> number of files)."""

    classes: list
    order: str
    class_lists: dict = field(default_factory=dict)


def class_moves(plan, mapping, default=None):
    """Where a mapping sends each class of the inputs: ``[(class, set class, files listing
    it, by default)]`` in order of first appearance (``by default``: the mapping has no rule
    for it, ``default`` took it)."""
    files = Counter()
    for names, n in plan.class_lists.items():
        for name in dict.fromkeys(names):
            files[name] += n
    return [(name, gym_target(name, mapping, default), n, name not in mapping.aliases)
            for name, n in files.items()]


@dataclass
class GymResult:
    """A Gym export: the per-file table, the plan, and the config written (None when any
    file failed and nothing was written)."""

    frame: pd.DataFrame
    plan: GymPlan
    config: dict | None
    outdir: Path
    npz: bool = False

    @property
    def failed(self):
        return int((self.frame["error"] != "").sum()) if "error" in self.frame else 0


def input_classes(path, classes=None, allow_pickle=False, max_pixels=DEFAULT_MAX_PIXELS,
                  **png):
    """The class names :func:`doodle_engine.load` would give ``path``, reading only the
    ``classes`` array of an npz (a release-zip member too); a PNG-era doodle PNG is loaded."""
    if str(path).lower().endswith(".png"):
        return load(path, classes=classes, trials=False, **png).classes
    if split_member(path)[1] is not None:
        return read_classes(open_member(path, max_pixels), classes, allow_pickle, max_pixels,
                            name=str(path))
    if is_zip_name(path):  # a zip that could not be listed: say so as every command does
        refuse_whole_zip(path)
    return read_classes(path, classes, allow_pickle, max_pixels)


def plan_classes(files, names_of, mapping=None, default=None):
    """Decide the set's classes from each file's class names (``names_of(file)``), and check
    that every name of every file has its place: a DoodleError naming the file otherwise."""
    lists = {}
    for f in files:
        names = names_of(f)
        if names is None and mapping is not None:
            names = mapping.classes
        if names is None:
            raise DoodleError(f, "has no class names (pass --classes): a Gym set matches classes "
                                 "by name")
        if mapping is None:
            _refuse_repeated(f, names)
        lists.setdefault(tuple(names), []).append(f)
    if mapping is None:
        common = list(dict.fromkeys(n for names in lists for n in names))
        order = ORDER_UNION
    else:
        common, order = list(mapping.targets), ORDER_MAPPING.format(source=mapping.source)
        if default is not None and default not in common:
            raise DoodleError(mapping.source, f"--default {default!r} is not among its classes "
                                              f"{common}")
    _check_rules(lists, common, mapping, default)
    _check_count(common)
    return GymPlan(common, order, {names: len(fs) for names, fs in lists.items()})


def _check_rules(lists, common, mapping, default):
    """Every class of every file has its place in ``common``: one DoodleError naming every
    class a mapping has no rule for (with a file listing each), not one class a run."""
    if mapping is not None and default is None:
        missing = {}
        for names, files in lists.items():
            for name in names:
                if gym_target(name, mapping) is None:
                    missing.setdefault(name, files[0])
        if missing:
            listed = "; ".join(f"{name!r} (e.g. {short_name(f)})" for name, f in missing.items())
            raise DoodleError(mapping.source, f"has no rule for {len(missing)} class(es) of the "
                                              f"inputs: {listed} (add them, or pass --default "
                                              f"CLASS){by_number_hint(mapping)}")
    for names, where in lists.items():
        gym_class_table(names, common, mapping, default, where=where[0])


def _refuse_repeated(path, names):
    repeated = [n for n, k in Counter(names).items() if k > 1]
    if repeated:
        raise DoodleError(path, f"names class {repeated[0]!r} more than once {list(names)}: "
                                "matching by name cannot tell them apart (give a --mapping)")


#: Gym's U-Net halves an image four times and doubles it back: each side of TARGET_SIZE must
#: divide by 16, or the model cannot be built (a Concatenate shape error)
SIZE_STEP = 16
#: the largest TARGET_SIZE side taken
MAX_SIZE = 16384


def check_target_size(target_size):
    """A DoodleError for a ``TARGET_SIZE`` Gym cannot use: two whole numbers, each a multiple
    of :data:`SIZE_STEP` from 16 to :data:`MAX_SIZE`; None (the default) passes."""
    if target_size is None:
        return None
    try:
        size = [int(v) for v in target_size]
        whole = all(float(v) == int(v) for v in target_size)
    except (TypeError, ValueError, OverflowError):
        size, whole = [], False
    if not whole or len(size) != 2 or any(v < SIZE_STEP or v > MAX_SIZE or v % SIZE_STEP
                                          for v in size):
        raise DoodleError(None, f"--target-size {' '.join(map(str, size))}: Gym's TARGET_SIZE "
                                f"is two sides, each a multiple of {SIZE_STEP} from {SIZE_STEP} "
                                f"to {MAX_SIZE} (its U-Net halves the image four times)")
    return size


def _check_count(common):
    if len(common) < 2:
        raise DoodleError(None, f"the set has {len(common)} class {common}: Segmentation Gym "
                                "needs NCLASSES >= 2 (a binary set is water/not-water)")
    if len(common) > MAX_CLASSES:
        raise DoodleError(None, f"the set has {len(common)} classes; at most {MAX_CLASSES} fit a "
                                "greyscale label")


def gym_config(plan, sizes, n_files, root_string, target_size=None):
    """The ``gym_config.json`` of a set: Gym's example keys, then the set's own facts
    (``NCLASSES``, ``N_DATA_BANDS``, ``TARGET_SIZE``, ``ROOT_STRING``, ``AUG_LOOPS``,
    ``CLASSES`` and ``CLASS_ORDER``).

    ``TARGET_SIZE`` ([rows, columns]; Gym resizes every image to it) is ``target_size`` when
    given, else the commonest image size (ties: the first in input order) rounded to the
    nearest multiple of :data:`SIZE_STEP`.  ``AUG_LOOPS`` is at most the number of training
    images (Gym's batches are that number over it)."""
    config = dict(GYM_EXAMPLE)
    if target_size is None:
        common = Counter(tuple(s) for s in sizes).most_common(1)[0][0]
        target_size = [min(MAX_SIZE, max(SIZE_STEP, SIZE_STEP * round(int(v) / SIZE_STEP)))
                       for v in common]
    n_train = n_files - int(n_files * config["VALIDATION_SPLIT"])
    config.update({
        "TARGET_SIZE": [int(v) for v in target_size], "NCLASSES": len(plan.classes),
        "N_DATA_BANDS": 3, "ROOT_STRING": root_string, "AUG_LOOPS": max(1, min(10, n_train)),
        "CLASSES": list(plan.classes), "CLASS_ORDER": plan.order,
    })
    return config


def root_string(outdir):
    """Gym's ``ROOT_STRING`` (the prefix of its npz files) for a set written to ``outdir``."""
    return safe_stem(Path(outdir).resolve().name) or "gym"


def export_gym_set(inputs, outdir, mapping=None, default=None, npz=False, target_size=None,
                   classes=None, table=None, allow_pickle=False, max_pixels=DEFAULT_MAX_PIXELS,
                   also_reads=(), prefix_record=False, **batch) -> GymResult:
    """Write a Segmentation Gym set from Doodler files: ``images/`` and ``labels/`` (lossless
    PNGs with the same stem, so their sorted orders pair one to one), ``npzs/`` with ``npz``
    (Gym's own layout), and ``gym_config.json``.

    Parameters
    ----------
    inputs : list of paths
        Files, folders and release zips, as for :func:`doodle_engine.batch.run_batch`.
    outdir : path
    mapping : doodle_engine.remapping.Mapping, optional
        Brings the inputs onto its target classes, matching each class by name.
    default : str, optional
        The target class of names the mapping has no rule for.
    npz : bool
        Also write Gym's npz layout (``arr_0`` image, ``arr_1`` one-hot label).
    target_size : (int, int), optional
        Gym's ``TARGET_SIZE`` (default: the commonest image size).
    prefix_record : bool
        Name each file's outputs ``RECORD__NAME`` (the release zip's name for a member), so
        same-named files of two records both go in (Coast Train's A_naip and C_s2 share two).
    **batch
        ``workers``, ``scheduler``, ``client``, ``progress``, PNG options.

    Returns
    -------
    GymResult
        ``config`` is None when a file failed: then nothing was written.

    Raises
    ------
    DoodleError
        Before any work: a file without class names, a class the mapping has no rule for,
        fewer than two classes, an output folder holding files this set does not write.
    """
    outdir = Path(outdir)
    target_size = check_target_size(target_size)
    every = _earlier_npzs_apart(find_inputs(inputs), inputs, outdir)
    check_outputs(inputs, every, table=table, outdir=outdir, also_reads=also_reads,
                  prefix_record=prefix_record)
    every = outputs_apart(every, outdir, prefix_record)
    png = {k: batch[k] for k in ("settings", "images") if batch.get(k) is not None}
    # the union's order follows the sorted inputs, not the order they were named in: a
    # train and a test set exported apart get the same class numbers
    plan = plan_classes(sorted(every, key=str),
                        lambda f: input_classes(f, classes, allow_pickle, max_pixels, **png),
                        mapping, default)
    prefix = root_string(outdir) if npz else None
    _refuse_stale(outdir, every, prefix, prefix_record)
    made = not outdir.exists()
    outdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gym-staging-", dir=outdir))
    result = None
    try:
        frame = run_batch("gym", every, table=table, outdir=str(staging), gym_classes=plan.classes,
                          mapping=mapping, default=default, npz_prefix=prefix, classes=classes,
                          allow_pickle=allow_pickle, max_pixels=max_pixels,
                          prefix_record=prefix_record, **batch)
        result = GymResult(frame, plan, None, outdir, npz)
        if not frame.empty and not result.failed:
            result.config = _commit(staging, outdir, plan, frame, prefix, target_size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made and result_is_empty(outdir):
            outdir.rmdir()
    return result


def result_is_empty(outdir):
    """True when ``outdir`` holds nothing (a refused run leaves no folder it made)."""
    try:
        return not any(outdir.iterdir())
    except OSError:
        return False


def _earlier_npzs_apart(files, inputs, outdir):
    """The inputs less the Gym npz files of an earlier export into ``outdir`` (when it lies in
    an input folder); a file named as an input stays, to be refused as one."""
    npzs = Path(os.path.abspath(outdir / "npzs"))
    named = {os.path.abspath(i) for i in inputs}
    return [f for f in files
            if npzs not in Path(os.path.abspath(on_disk(f))).parents or os.path.abspath(f) in named]


#: the folders Gym's make_dataset writes beside images/ and labels/ and then reuses
GYM_CACHES = ("resized_images", "resized_labels")


def _refuse_stale(outdir, files, prefix, prefix_record=False):
    """Gym takes every file in images/ and labels/: refuse a folder holding files this set
    does not write (an earlier set's), before anything is written."""
    wanted = {p.relative_to(outdir).as_posix() for f in files
              for p in gym_targets(output_stem(f, prefix_record), outdir, prefix)}
    for folder in GYM_CACHES:
        if (outdir / folder).exists():
            raise DoodleError(outdir / folder, "is Gym's resized copy of an earlier set (its "
                                               "make_dataset made it, and would use it instead of "
                                               "this set's images and labels): remove it first")
    for folder in GYM_FOLDERS:
        d = outdir / folder
        if not d.is_dir():
            continue
        stale = sorted(p.name for p in d.iterdir()
                       if not p.name.startswith(".") and f"{folder}/{p.name}" not in wanted)
        if stale:
            raise DoodleError(d, f"holds {len(stale)} file(s) this set does not write (e.g. "
                                 f"{stale[0]}): Gym takes every file in the folder; export to "
                                 "an empty folder")


def path_note(outdir):
    """A note when Gym's make_dataset would lose its way in ``outdir``'s path: it names its
    resized folders by replacing *every* ``label`` in the labels folder's path with
    ``resized_label`` (and every ``images`` in the images folder's), so the word anywhere
    above them gives folders that do not exist ("" when the path is clear)."""
    above = os.path.abspath(outdir)
    words = [w for w in ("label", "images") if w in above]
    if not words:
        return ""
    return (f"note: the set's path {above} holds {' and '.join(repr(w) for w in words)}: "
            "Gym's make_dataset names its resized folders by replacing that word everywhere in "
            "the path, and would write where no folder is; export to a path without it")


def _commit(staging, outdir, plan, frame, prefix, target_size):
    """Move the staged set into ``outdir`` and write its config last."""
    for folder in GYM_FOLDERS:
        src = staging / folder
        if src.is_dir():
            (outdir / folder).mkdir(exist_ok=True)
            for p in sorted(src.iterdir()):
                os.replace(p, outdir / folder / p.name)
    sizes = list(zip(frame["height"], frame["width"]))
    config = gym_config(plan, sizes, len(frame), prefix or root_string(outdir), target_size)
    atomic_write(outdir / CONFIG_NAME,
                 lambda fh: fh.write((json.dumps(config, indent=2) + "\n").encode("utf-8")))
    return config
