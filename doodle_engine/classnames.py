"""Class names as users and files give them: a ``classes.txt`` (one name a line, as Doodler
read it) and the ``classes=`` / ``--classes`` argument (a list, a comma-separated text or the
path of a classes.txt)."""

from __future__ import annotations

import os

import numpy as np

from .errors import DoodleError
from .files import open_regular

#: a classes.txt larger than this is not a list of class names
MAX_CLASSES_FILE_BYTES = 2**20


def read_classes_file(path, required=True):
    """Class names, one per line (blank lines dropped), as Doodler read ``classes.txt``; a
    DoodleError for a file that cannot be read, is larger than 1 MiB or (``required``) names
    no class, which gives None when not ``required``."""
    with open_regular(path) as fh:
        data = fh.read(MAX_CLASSES_FILE_BYTES + 1)
    if len(data) > MAX_CLASSES_FILE_BYTES:
        raise DoodleError(path, "is larger than 1 MiB; not a list of class names")
    names = [ln.strip() for ln in data.decode("utf-8", errors="replace").splitlines()]
    names = [n for n in names if n]
    if not names and required:
        raise DoodleError(path, "the classes file lists no classes")
    return names or None


def class_list(classes):
    """Class names as a user gives them: a list of names, one text of comma-separated names
    (``"water,surf,sand"``), or the path of a ``classes.txt`` (a text naming an existing
    file, a path object, or a text that looks like a path: a DoodleError when no such file).
    None stays None.

    Examples
    --------
    >>> from doodle_engine.classnames import class_list
    >>> class_list("water, surf,sand"), class_list(("water", "land"))
    (['water', 'surf', 'sand'], ['water', 'land'])
    """
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        if os.path.isfile(classes) or not isinstance(classes, str) or _looks_like_path(classes):
            return read_classes_file(classes)
        names = [c.strip() for c in classes.split(",") if c.strip()]
    elif isinstance(classes, (list, tuple, np.ndarray)):
        names = [str(c) for c in classes]
    else:
        raise DoodleError(None, "classes= is a list of names, a comma-separated text or the "
                                f"path of a classes.txt, got {type(classes).__name__}")
    if not names:
        raise DoodleError(None, "classes= names no class")
    return names


def _looks_like_path(text):
    """A text with no comma that holds a folder separator or ends in ``.txt``: a mistyped
    classes file, not one class name."""
    return "," not in text and ("/" in text or os.sep in text or text.lower().endswith(".txt"))
