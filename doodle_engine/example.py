"""A generated Doodler session file, so the engine can be tried with no data at hand.

The scene is a coastal strip (water, surf, sand) with texture noise; the doodles are short
strokes inside each region; the stored label is the engine's rebuild with the settings
layout of Doodler's 2021-10 app (the era assumed when a path carries no results date)."""

from __future__ import annotations

import numpy as np

from .errors import DoodleError
from .npz import save
from .reconstruct import reconstruct
from .record import DoodleRecord, with_label
from .settings import decode_settings


def scene(h=48, w=64, seed=0):
    """(image uint8 HxWx3, truth 0-based HxW) of a 3-class coastal scene."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    shore = 0.45 * w + 4 * np.sin(yy / 6.0)
    truth = np.where(xx < shore - 5, 0, np.where(xx < shore + 5, 1, 2))
    colours = np.array([[30, 70, 140], [230, 235, 240], [200, 175, 120]], float)
    img = colours[truth] + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), truth


def doodles_for(truth, classes=(0, 1, 2)):
    """Strokes inside each class region at three heights (value = class + 1)."""
    d = np.zeros(truth.shape, np.uint8)
    h, _ = truth.shape
    for c in classes:
        for row in (h // 6, h // 2, 5 * h // 6):
            xs = np.flatnonzero(truth[row] == c)
            if xs.size > 2:
                xs = xs[1:-1]
                d[row, xs] = c + 1
                below = min(row + 1, h - 1)
                d[below, xs[truth[below, xs] == c]] = c + 1
    return d


#: the sizes an example may have: room for the doodle strokes of three classes, and an image
#: that a laptop rebuilds in under a minute (real files may be larger)
MIN_SIDE = 8
MAX_PIXELS = 16_000_000


def check_size(path, h, w):
    """DoodleError unless ``h`` x ``w`` is a whole-number size of the example's range."""
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (h, w)):
        raise DoodleError(path, f"size must be whole numbers, got {h!r} x {w!r}")
    if min(h, w) < MIN_SIDE:
        raise DoodleError(path, f"size {h} x {w}: each side must be at least {MIN_SIDE} px")
    if h * w > MAX_PIXELS:
        raise DoodleError(path, f"size {h} x {w} is {h * w:,} px; an example holds at most "
                                f"{MAX_PIXELS:,} px")


def make_example(path, h=240, w=320, seed=0, overwrite=False):
    """Write a generated Doodler file to try the engine on.

    Parameters
    ----------
    path : str or path
        The ``.npz`` to write.
    h, w : int
        Image size.
    seed : int
        Seeds the generated scene.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        ``path``: an undated file with 7 settings values (era ``mlp-2021-10``, assumed),
        classes water, surf and sand, and the label the engine rebuilds from its doodles.

    Examples
    --------
    >>> from doodle_engine.example import make_example
    >>> make_example("example.npz", 48, 64, overwrite=True).name
    'example.npz'
    """

    check_size(path, h, w)
    image, truth = scene(h, w, seed)
    doodles = doodles_for(truth)
    settings = decode_settings([3, 2, 2, 1, 1, 0.9, 2])  # no results date: mlp-2021-10
    rec = DoodleRecord(path=None, image=image, doodles=doodles, orig_image=image,
                       classes=["water", "surf", "sand"], classes_source="file",
                       settings=settings)
    res = reconstruct(rec)
    return save(with_label(rec, res.label0), path, overwrite=overwrite)
