"""Where a run's inputs come from: find them in files and folders, and open each with its
reader (:func:`load`: a Doodler ``.npz``, a PNG-era doodle PNG)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DoodleError
from .npz import load_npz
from .png import doodle_pngs, is_png_session, load_png
from .record import DEFAULT_MAX_PIXELS, DoodleRecord


def load(path, classes=None, era=None, date=None, allow_pickle=False,
         max_pixels=DEFAULT_MAX_PIXELS, trials=True, settings=None, images=None) -> DoodleRecord:
    """Read a Doodler .npz of any era, or a doodle PNG of the years before npz.

    Parameters
    ----------
    path : str or path
        The ``.npz`` file.  Nothing in it is unpickled unless ``allow_pickle``.
    classes : list of str, optional
        Class names when the file has none (else a ``classes.txt`` beside the file is used).
    era : str, optional
        Overrides the era detected from the settings layout and the results date
        (:data:`doodle_engine.ERAS`).
    date : str, optional
        ``YYYY-MM-DD``: tells apart the eras that share a settings layout when the path
        carries no results date.
    allow_pickle : bool
        Read object arrays (pickled data): only for files you trust.
    max_pixels : int
        Refuse images above this many pixels (checked from the array headers).
    trials : bool
        Also read the earlier attempts stored in the file (``rec.trials``).
    settings : dict or str, optional
        PNG sessions only (they stored no settings): sliders replacing the era's defaults,
        e.g. ``{"crf_theta": 60}`` or ``"crf_theta=60,crf_mu=80"``.
    images : path, optional
        PNG sessions only: the folder holding the images (default: beside the doodle PNG,
        then Doodler's ``assets/``).  A results folder is read by :func:`load_session`.

    Returns
    -------
    DoodleRecord
        ``label`` is a 0-based uint8 raster (``NO_CLASS`` = 255 for no class) whatever the
        file's layout; ``settings.era`` and ``settings.era_source`` say which era was used
        and where it came from.

    Raises
    ------
    DoodleError
        One line naming the file and the problem.

    Examples
    --------
    >>> import doodle_engine as de
    >>> from doodle_engine.example import make_example
    >>> path = make_example("example.npz", 48, 64, overwrite=True)
    >>> rec = de.load(path)
    >>> rec.shape, rec.classes, rec.settings.era
    ((48, 64), ['water', 'surf', 'sand'], 'mlp-2021-10')
    """
    if str(path).lower().endswith(".png"):
        return load_png(path, classes=classes, era=era, date=date, settings=settings,
                        images=images)
    if is_png_session(path):
        raise DoodleError(path, "is a PNG-era results folder: read it with "
                                "doodle_engine.load_session (or give one of its doodle PNGs)")
    if settings is not None:
        raise DoodleError(path, "settings= applies to PNG sessions only (a .npz stores its own)")
    return load_npz(path, classes=classes, era=era, date=date, allow_pickle=allow_pickle,
                    max_pixels=max_pixels, trials=trials)


def find_inputs(inputs):
    """Files and folders (searched recursively) -> sorted list of .npz paths.

    A folder that holds no ``.npz`` file, or no inputs at all, is a DoodleError (a mistyped
    folder should not look like a successful run over nothing).  A folder named ``*.npz``
    given by name is listed as itself (so it is refused as "a folder")."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and p.suffix.lower() != ".npz":
            found = sorted(q for q in p.rglob("*.npz") if q.is_file())
            if not found:
                found = _png_sessions(p)  # a PNG-era results folder (or folders of them)
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise DoodleError("run_batch", "no input files given")
    return list(dict.fromkeys(str(f) for f in files))


def _png_sessions(folder):
    """The doodle PNGs of the PNG-era results folders at or under ``folder``, each folder's in
    time order; a DoodleError when there are none."""
    folders = [folder] + sorted(q for q in folder.rglob("*") if q.is_dir())
    found = [Path(f) for d in folders if is_png_session(d) for f in doodle_pngs(d)]
    if not found:
        raise DoodleError(folder, "folder holds no .npz files and no Doodler doodle PNGs "
                                  "(*_annotations*.png)")
    return found


def largest_first(files):
    """Files by size on disk, largest first: with several workers the long jobs start early
    and the short ones fill the gaps at the end (files that cannot be read come last)."""
    def size(f):
        try:
            return os.path.getsize(f)
        except OSError:
            return -1
    return sorted(files, key=size, reverse=True)


def source_mtime(path):
    """When the file holding an input was last changed (NaN when it cannot be read)."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("nan")
