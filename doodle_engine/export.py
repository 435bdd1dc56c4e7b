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
    """Write an image atomically (format from the suffix: .png lossless, .jpg quality 100)."""
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    img = Image.fromarray(np.ascontiguousarray(array))

    def write(fh):
        buf = _io.BytesIO()
        if fmt == "JPEG":
            img.save(buf, format=fmt, quality=quality, subsampling=0)
        else:
            img.save(buf, format=fmt)
        fh.write(buf.getvalue())

    return atomic_write(path, write)


def export_targets(path, outdir, label_ext=".jpg"):
    """The files :func:`export_record` always writes for the npz at ``path``."""
    outdir, stem = Path(outdir), safe_stem(path)
    return [outdir / "images" / f"{stem}.jpg", outdir / "labels" / f"{stem}_label{label_ext}",
            outdir / "colorlabels" / f"{stem}_label.png", outdir / "overlays" / f"{stem}_overlay.png",
            outdir / "doodles" / f"{stem}_doodles.png", outdir / "doodles" / f"{stem}_color_doodles.png"]


def export_record(record: DoodleRecord, outdir, label_ext=".jpg", alpha=0.5):
    """Write images/, labels/, colorlabels/, overlays/ and doodles/ for one record, named
    as Doodler's ``gen_images_and_labels.py`` named them.

    Parameters
    ----------
    record : DoodleRecord
    outdir : path
    label_ext : {".jpg", ".png"}
        Labels are greyscale 0-based class indices (no class = 0, as Doodler wrote them).
        ``.jpg`` is Doodler's format and changes class values along class edges (99-1,462
        px per file on Doodler's own files); ``.png`` keeps them exact.
    alpha : float
        Weight of the colour in the overlays.

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
                color_doodles(record.doodles, classes)]
    targets = export_targets(record.path or "record", outdir, label_ext)
    written = [write_image(t, p) for t, p in zip(targets, pictures)]
    if image.ndim == 3 and image.shape[2] == 4:
        stem = safe_stem(record.path or "record")
        written.insert(1, write_image(Path(outdir) / "images" / f"{stem}_band4.jpg", image[..., 3]))
    return written
