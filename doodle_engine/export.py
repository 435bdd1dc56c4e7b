"""Export images, labels, colour labels, overlays and doodle pictures from Doodler files,
with the names Doodler's ``utils/gen_images_and_labels.py`` used."""

from __future__ import annotations

import io as _io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .colorize import color_doodles, colorize, overlay
from .errors import DoodleError
from .files import atomic_write
from .record import NO_CLASS, DoodleRecord, zero_based

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(path):
    """A file-name stem derived from ``path`` that cannot leave the output folder."""
    stem = Path(str(path)).name
    if stem.lower().endswith(".npz"):
        stem = stem[:-4]
    stem = _SAFE.sub("_", stem).strip("._") or "unnamed"
    return stem[:200]


def write_image(path, array, quality=100):
    """Write an image atomically, in the format its suffix names.

    Parameters
    ----------
    path : path
        ``.png`` (lossless) or ``.jpg`` / ``.jpeg`` (``quality``, no chroma subsampling);
        another suffix is a DoodleError.
    array : numpy.ndarray
        H x W (grey) or H x W x 3 uint8.
    quality : int
        JPEG quality.

    Returns
    -------
    pathlib.Path
        ``path``, written completely or not at all.

    Examples
    --------
    >>> import numpy as np
    >>> from doodle_engine.export import write_image
    >>> write_image("grey.png", np.zeros((2, 3), np.uint8)).name
    'grey.png'
    """
    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    if fmt is None:
        raise DoodleError(path, "images are written as .png, .jpg or .jpeg only")
    img = Image.fromarray(np.ascontiguousarray(array))

    def write(fh):
        buf = _io.BytesIO()
        if fmt == "JPEG":
            img.save(buf, format=fmt, quality=quality, subsampling=0)
        else:
            img.save(buf, format=fmt)
        fh.write(buf.getvalue())

    return atomic_write(path, write)


#: the label formats export writes: JPEG (Doodler's; changes values along class edges), PNG
LABEL_SUFFIXES = (".jpg", ".jpeg", ".png")


def label_suffix(label_ext):
    """``label_ext`` as a label file's suffix (``"png"`` and ``".PNG"`` give ``".png"``); a
    DoodleError for a format export does not write."""
    ext = str(label_ext).lower()
    ext = ext if ext.startswith(".") else "." + ext
    if ext not in LABEL_SUFFIXES:
        raise DoodleError(None, f"label_ext {label_ext!r}: labels are written as "
                                f"{', '.join(LABEL_SUFFIXES)} only")
    return ext


def is_jpeg(label_ext):
    """Whether labels written with ``label_ext`` are JPEG (lossy)."""
    return label_suffix(label_ext) in (".jpg", ".jpeg")


def export_targets(stem, outdir, label_ext=".jpg"):
    """The files :func:`export_record` always writes for a record whose outputs are named
    ``stem`` (:func:`safe_stem` of its file, unless the caller names them otherwise)."""
    outdir, label_ext = Path(outdir), label_suffix(label_ext)
    return [outdir / "images" / f"{stem}.jpg", outdir / "labels" / f"{stem}_label{label_ext}",
            outdir / "colorlabels" / f"{stem}_label.png", outdir / "overlays" / f"{stem}_overlay.png",
            outdir / "doodles" / f"{stem}_doodles.png", outdir / "doodles" / f"{stem}_color_doodles.png"]


def export_record(record: DoodleRecord, outdir, label_ext=".jpg", alpha=0.5, stem=None):
    """Write images/, labels/, colorlabels/, overlays/ and doodles/ for one record, named
    as Doodler's ``gen_images_and_labels.py`` named them.

    Parameters
    ----------
    record : DoodleRecord
    outdir : path
    label_ext : {".jpg", ".png"}
        (or ``"jpg"``, ``".jpeg"``, ``"png"``; anything else is a DoodleError)
        Labels are greyscale 0-based class indices (no class = 0, as Doodler wrote them).
        ``.jpg`` is Doodler's format and changes class values along class edges (99-1,462
        px per file on Doodler's own files); ``.png`` keeps them exact.
    alpha : float
        Weight of the colour in the overlays.
    stem : str, optional
        The outputs' name stem (default: the record's file name without ``.npz``).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Examples
    --------
    >>> import doodle_engine as de
    >>> from doodle_engine.example import make_example
    >>> from doodle_engine.export import export_record
    >>> rec = de.load(make_example("example.npz", 48, 64, overwrite=True))
    >>> [p.parent.name for p in export_record(rec, "exported", label_ext=".png")][:3]
    ['images', 'labels', 'colorlabels']
    """
    label_ext = label_suffix(label_ext)
    if record.label is None:
        raise DoodleError(record.path, "has no label to export")
    image = record.orig_image if record.orig_image is not None else record.image
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    rgb = image[..., :3] if image.ndim == 3 else image
    classes = record.classes
    grey = np.where(record.label == NO_CLASS, 0, record.label).astype(np.uint8)
    pictures = [rgb, grey, colorize(record.label, classes),
                overlay(rgb, record.label, alpha, classes),
                overlay(rgb, zero_based(record.doodles), alpha, classes),
                color_doodles(record.doodles, classes, image=record.image)]
    stem = stem or safe_stem(record.path or "record")
    targets = export_targets(stem, outdir, label_ext)
    written = [write_image(t, p) for t, p in zip(targets, pictures)]
    if image.ndim == 3 and image.shape[2] == 4:
        written.insert(1, write_image(Path(outdir) / "images" / f"{stem}_band4.jpg", image[..., 3]))
    return written


# ----------------------------------------------------------------------------- Segmentation Gym
#: the folders of a Gym set: images and labels paired by sorted order, Gym's own npz layout
GYM_FOLDERS = ("images", "labels", "npzs")


def gym_target(name, mapping=None, default=None):
    """The common class a class named ``name`` goes to: itself without a mapping, else the
    mapping's rule for that name (matched by name only), else ``default`` (None: no rule)."""
    if mapping is None:
        return name
    if mapping.aliases is None:
        raise DoodleError(mapping.source, "a Gym export matches classes by name: an integer "
                                          "mapping (0-based index -> index) cannot be used")
    return mapping.aliases.get(name, default)


def by_number_hint(mapping):
    """Why a Doodler-schema mapping keyed by class number finds no rule in a Gym export, and
    how to go on ("" for any other mapping)."""
    if not mapping.keyed_by_number:
        return ""
    return (" (a Gym export matches classes by name only; this Doodler-schema mapping keys its "
            "rules by class number: give the files' classes by number with --classes 1,2,..., "
            "or write the rules by name)")


def gym_class_table(names, common, mapping=None, default=None, where=None):
    """The 256-entry lookup table taking a label whose classes are ``names`` onto ``common``
    by class name: value ``i`` -> ``common.index(target of names[i])``; every other value
    (no class, a value beyond the names) -> ``NO_CLASS``, which a Gym label cannot hold."""
    table = np.full(256, NO_CLASS, np.uint8)
    for value, name in enumerate(names):
        target = gym_target(name, mapping, default)
        if target is None:
            raise DoodleError(where, f"class {name!r} has no rule in the mapping {mapping.source} "
                                     f"(add it, or pass --default CLASS){by_number_hint(mapping)}")
        if target not in common:
            raise DoodleError(where, f"class {name!r} goes to {target!r}, which is not among the "
                                     f"set's classes {list(common)}")
        table[value] = common.index(target)
    return table


def gym_image(record):
    """The image a Gym set holds for ``record`` (``orig_image`` when stored), as Gym's
    ``make_dataset`` reads it: three bands (a greyscale image repeated, a fourth band left
    out); and the number of bands left out."""
    image = record.orig_image if record.orig_image is not None else record.image
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return np.dstack([image] * 3), 0
    return np.ascontiguousarray(image[..., :3]), image.shape[2] - min(image.shape[2], 3)


def gym_targets(stem, outdir, npz_prefix=None):
    """The files :func:`export_gym` writes for a record whose outputs are named ``stem``:
    ``images/STEM.png`` and ``labels/STEM.png`` (the same stem, so the sorted orders pair),
    and with ``npz_prefix`` ``npzs/PREFIX_STEM.npz``."""
    outdir = Path(outdir)
    targets = [outdir / "images" / f"{stem}.png", outdir / "labels" / f"{stem}.png"]
    if npz_prefix is not None:
        targets.append(outdir / "npzs" / f"{npz_prefix}_{stem}.npz")
    return targets


def export_gym(record: DoodleRecord, outdir, common, mapping=None, default=None, npz_prefix=None,
               stem=None):
    """Write one record into a Segmentation Gym set whose classes are ``common``.

    The label goes onto ``common`` by class name (through ``mapping`` when given: a
    :class:`doodle_engine.remapping.Mapping` with name aliases) and is written as a lossless
    greyscale PNG of values 0..len(common)-1; the image as a lossless PNG of three bands;
    with ``npz_prefix``, also Gym's own npz (``arr_0`` image, ``arr_1`` one-hot label,
    ``num_bands``, ``files``).  ``stem`` names the outputs (default: the record's file name
    without ``.npz``).

    Returns
    -------
    (list of pathlib.Path, dict)
        The files written, and facts for the table row (``gym_values`` present,
        ``bands_left_out``).

    Raises
    ------
    DoodleError
        No label, no class names, a class with no rule, or a pixel that would fall outside
        0..len(common)-1 (a pixel with no class): then nothing is written for the record.
    """
    where = record.path
    if record.label is None:
        raise DoodleError(where, "has no label to export")
    names = record.classes if record.classes is not None else getattr(mapping, "classes", None)
    if names is None:
        raise DoodleError(where, "has no class names (pass --classes): a Gym set matches classes "
                                 "by name")
    label = gym_class_table(names, common, mapping, default, where)[record.label]
    outside = int((label == NO_CLASS).sum())
    if outside:
        none = int((record.label == NO_CLASS).sum())
        raise DoodleError(where, f"{outside} px would fall outside 0..{len(common) - 1} "
                                 f"({none} px have no class: a one-hot label with no bit set); "
                                 "a Gym label needs a class on every pixel")
    image, left_out = gym_image(record)
    targets = gym_targets(stem or safe_stem(where or "record"), outdir, npz_prefix)
    written = [write_image(targets[0], image), write_image(targets[1], label)]
    if npz_prefix is not None:
        onehot = (np.arange(len(common), dtype=np.uint8) == label[..., None]).astype(np.uint8)
        arrays = {"arr_0": image, "arr_1": onehot, "num_bands": np.int64(image.shape[-1]),
                  "files": np.array([targets[0].name])}
        written.append(atomic_write(targets[2], lambda fh: np.savez_compressed(fh, **arrays)))
    values = "|".join(str(v) for v in np.unique(label))
    return written, {"gym_values": values, "bands_left_out": left_out}
