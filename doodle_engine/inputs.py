"""Where a run's inputs come from: find them in files, folders and release zips, and open each
with its reader (:func:`load`: a Doodler ``.npz``, an npz inside a Coast Train release zip, a
PNG-era doodle PNG)."""

from __future__ import annotations

import errno
import numbers
import os
import stat
from pathlib import Path

from .classnames import class_list
from .errors import DoodleError
from .files import on_disk, open_regular, split_member
from .npz import load_npz
from .png import doodle_pngs, is_png_session, load_png
from .record import DEFAULT_MAX_PIXELS, DoodleRecord
from .releasezip import is_zip_name, list_members, load_member, member_name, member_size, open_member


def load(path, classes=None, era=None, date=None, allow_pickle=False,
         max_pixels=DEFAULT_MAX_PIXELS, trials=True, settings=None, images=None) -> DoodleRecord:
    """Read a Doodler .npz of any era, or a doodle PNG of the years before npz.

    Parameters
    ----------
    path : str or path
        The ``.npz`` file, or ``ZIP::member`` for an npz inside a Coast Train release zip
        (read in place).  Nothing in it is unpickled unless ``allow_pickle``.
    classes : list of str, str or path, optional
        Class names when the file has none (else a ``classes.txt`` beside the file is used):
        a list, ``"water,surf,sand"``, or the path of a classes.txt.
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
    if not isinstance(path, (str, os.PathLike)):
        raise DoodleError(None, f"load takes the path of a file, got {type(path).__name__}")
    classes = class_list(classes)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) \
            or max_pixels < 1:
        raise DoodleError(path, f"max_pixels must be a whole number of pixels, got {max_pixels!r}")
    if str(path).lower().endswith(".png"):
        return load_png(path, classes=classes, era=era, date=date, settings=settings,
                        images=images, max_pixels=max_pixels)
    if is_png_session(path):
        raise DoodleError(path, "is a PNG-era results folder: read it with "
                                "doodle_engine.load_session (or give one of its doodle PNGs)")
    if settings is not None:
        raise DoodleError(path, "settings= applies to PNG sessions only (a .npz stores its own)")
    if split_member(path)[1] is not None:
        return load_member(path, classes=classes, era=era, date=date, allow_pickle=allow_pickle,
                           max_pixels=max_pixels, trials=trials)
    if is_zip_name(path):
        refuse_whole_zip(path)
    return load_npz(path, classes=classes, era=era, date=date, allow_pickle=allow_pickle,
                    max_pixels=max_pixels, trials=trials)


def refuse_whole_zip(path):
    """A release zip given where one file is read: say how to name a member (or why the zip
    cannot be read)."""
    npz, _ = list_members(path)
    if not npz:
        raise DoodleError(path, "is a zip holding no .npz file")
    raise DoodleError(path, f"is a release zip holding {len(npz)} .npz file(s): give one as "
                            f"{member_name(path, npz[0])}, or run a command over the zip")


def find_inputs(inputs, not_read=None):
    """Files, folders (searched recursively) and release zips -> the list of inputs: sorted
    ``.npz`` paths, then the ``ZIP::member`` names of each zip's npz members.

    A folder that holds no ``.npz`` file, release zip or PNG session, an input that is not
    there (or a ``ZIP::member`` of a missing zip), or no inputs at all, is a DoodleError (a
    mistyped name should not look like a successful run over nothing).  A
    folder named ``*.npz`` given by name is listed as itself (so it is refused as "a
    folder"); a zip that cannot be listed is listed as itself, so its run gives it one error
    row and goes on.  Names (str, path or bytes) are kept as text that opens the same file
    (``os.fsdecode``: a name that is not UTF-8 keeps its bytes).  Entries named ``*.npz`` or
    ``*.zip`` inside a folder that are not regular files (a dangling link, a symlink loop, a
    FIFO, a device) are not inputs: each is added to ``not_read`` as ``(path, why)``."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        p = Path(os.fsdecode(item))
        if p.is_dir() and p.suffix.lower() != ".npz":
            npz, zips = _folder_inputs(p, not_read)
            found = npz + [m for z in zips for m in _zip_inputs(z)]
            if not found:
                found = _png_sessions(p)  # a PNG-era results folder (or folders of them)
            files.extend(found)
        elif is_zip_name(p) and p.is_file():
            files.extend(_zip_inputs(p))
        else:
            _check_exists(p)
            files.append(p)
    if not files:
        raise DoodleError("run_batch", "no input files given")
    return list(dict.fromkeys(str(f) for f in files))


def _check_exists(path):
    """A DoodleError, before any work, for an input that is not there (a mistyped name would
    otherwise run, write its reports and fail at the end); for ``ZIP::member``, the zip."""
    on_disk_name = split_member(str(path))[0]
    if not os.path.lexists(on_disk_name):
        raise DoodleError(on_disk_name, "no such file or folder")


def _folder_inputs(folder, not_read):
    """(sorted npz files, sorted zip files) under ``folder``; entries of those names that are
    not regular files go to ``not_read``."""
    npz, zips = [], []
    for q in folder.rglob("*"):
        is_npz = q.name.endswith(".npz")
        if not (is_npz or is_zip_name(q)):
            continue
        why = _not_regular(q)
        if why is None:
            (npz if is_npz else zips).append(q)
        elif why and not_read is not None:
            not_read.append((str(q), why))
    return sorted(npz), sorted(zips)


def _not_regular(path):
    """None for a regular file (through links), "" for a folder, else what the entry is."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if os.path.islink(path):
            return "dangling link"
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return ""
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def _zip_inputs(zip_path):
    """The npz members of a release zip as inputs (the zip itself when it cannot be listed or
    holds none: its run gives it the error row)."""
    try:
        npz, _ = list_members(zip_path)
    except DoodleError:
        return [zip_path]
    return [member_name(zip_path, m) for m in npz] or [zip_path]


def open_npz(path, max_pixels=DEFAULT_MAX_PIXELS):
    """An npz input (a file, or a release-zip member) as an open binary file, for readers
    that look at its headers only (:mod:`doodle_engine.cost`)."""
    if split_member(path)[1] is not None:
        return open_member(path, max_pixels)
    return open_regular(path)


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
        if split_member(f)[1] is not None:
            return member_size(f)
        try:
            return os.path.getsize(f)
        except OSError:
            return -1
    return sorted(files, key=size, reverse=True)


def source_mtime(path):
    """When the file holding an input (a release zip for its members) was last changed (NaN
    when it cannot be read)."""
    try:
        return os.stat(on_disk(path)).st_mtime
    except OSError:
        return float("nan")
