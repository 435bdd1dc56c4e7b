"""Labels and doodles in Doodler's class colours, and overlays on the image."""

from __future__ import annotations

import numpy as np

from .classnames import class_list
from .errors import DoodleError
from .palette import G10, LIGHT24, doodler_palette, palette_from
from .record import NO_CLASS, zero_based


def colorize(label, classes=None, colors=None, none_color=(0, 0, 0)):
    """A label raster in colour.

    Parameters
    ----------
    label : array of int
        0-based class indices (``NO_CLASS`` = 255 for no class).
    classes : list of str, optional
        Class names: their number chooses Doodler's palette (G10 up to 10, Light24 up to 24).
    colors : list, optional
        Your own colours ('#RRGGBB' or RGB triples), one per class.
    none_color : tuple
        Colour of pixels with no class.

    Returns
    -------
    numpy.ndarray
        H x W x 3 uint8.

    Examples
    --------
    >>> import numpy as np
    >>> from doodle_engine.colorize import colorize
    >>> colorize(np.array([[0, 1]]), ["water", "sand"])[0].tolist()
    [[51, 102, 204], [220, 57, 18]]
    """
    label = _raster(label, "label")
    classes = class_list(classes)
    n = len(classes) if classes is not None else int(label[label != NO_CLASS].max(initial=0)) + 1
    pal = palette_from(colors, n)
    _check_values(label, n)
    table = np.zeros((256, 3), np.uint8)
    table[:] = none_color
    table[:len(pal)] = pal
    return table[label.astype(np.uint8)]


def _raster(values, what):
    """``values`` as a 2-D integer array; a DoodleError saying what it must be otherwise (a
    one-hot stack, a float array, a path)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)  # two classes, 0 and 1
    if arr.dtype.kind not in "ui" or arr.ndim != 2:
        got = f"shape {arr.shape}" if arr.dtype.kind in "ui" else f"{arr.dtype} values"
        raise DoodleError(None, f"{what} must be a 2-D raster (H x W) of integer class values, "
                                f"got {got} (a file's own: doodle_engine.load(path).{what})")
    return arr


def _check_values(label, n):
    """Every value of a 0-based label is a class below ``n`` or NO_CLASS."""
    bad = (label != NO_CLASS) & ((label < 0) | (label >= n))
    if bad.any():
        raise DoodleError(None, f"label value {int(label[bad][0])} is not one of the {n} "
                                f"classes (0..{n - 1}, or {NO_CLASS} for none)")


def _image(image, shape):
    """``image`` as an array of ``shape`` (H x W) or H x W x bands."""
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[:2] != tuple(shape) or img.dtype.kind not in "uif":
        raise DoodleError(None, f"image must be an H x W (x bands) array of the label's size "
                                f"{tuple(shape)}, got {img.dtype} of shape {img.shape}")
    return img


def color_doodles(doodles, classes=None, colors=None, image=None):
    """Doodles in colour, exactly as Doodler stored ``color_doodles``.

    Parameters
    ----------
    doodles : array of int
        0 = not doodled, v = class v-1.
    classes : list of str, optional
    colors : list, optional
        Your own colours, one per class.
    image : array, optional
        Pixels whose band 0 is 0 are black, as Doodler drew them.

    Returns
    -------
    numpy.ndarray
        H x W x 3 uint8; undoodled pixels take the palette's last colour (Doodler looked up
        class -1).

    Examples
    --------
    >>> import numpy as np
    >>> from doodle_engine.colorize import color_doodles
    >>> color_doodles(np.array([[0, 1]]), ["water", "sand"])[0].tolist()
    [[49, 99, 149], [51, 102, 204]]
    """
    doodles = _raster(doodles, "doodles")
    classes = class_list(classes)
    n = len(classes) if classes is not None else int(np.max(doodles, initial=1))
    if colors is not None:
        last = palette_from(colors, n)[-1]
    else:  # the whole palette Doodler chose for n classes (colorize below rejects n > 24)
        last = doodler_palette(len(G10) if n <= len(G10) else len(LIGHT24))[-1]
    bad = (doodles < 0) | (doodles > n)
    if bad.any():
        raise DoodleError(None, f"doodles value {int(doodles[bad][0])} is not one of the {n} "
                                f"classes (1..{n}, or 0 for none)")
    out = colorize(zero_based(doodles), classes, colors,
                   none_color=tuple(int(v) for v in last))
    if image is not None:
        image = _image(image, doodles.shape)
        band0 = image if image.ndim == 2 else image[..., 0]
        out[band0 == 0] = 0
    return out


def overlay(image, label, alpha=0.5, classes=None, colors=None, skip_none=True):
    """Blend the colour label over the image: ``(1 - alpha) * image + alpha * colour``.

    Parameters
    ----------
    image : array
        H x W or H x W x bands (the first three bands are used).
    label : array of int
        0-based class indices (``NO_CLASS`` = 255 for no class).
    alpha : float
        Weight of the colour, 0..1.
    classes, colors
        As for :func:`colorize`.
    skip_none : bool
        Leave pixels with no class as the image.

    Returns
    -------
    numpy.ndarray
        H x W x 3 uint8.

    Examples
    --------
    >>> import numpy as np
    >>> from doodle_engine.colorize import overlay
    >>> overlay(np.zeros((1, 2, 3), np.uint8), np.array([[0, 255]]), 0.5, ["water"])[0].tolist()
    [[26, 51, 102], [0, 0, 0]]
    """
    if not 0 <= alpha <= 1:
        raise DoodleError(None, f"alpha must be in [0, 1], got {alpha}")
    label = _raster(label, "label")
    img = _image(image, label.shape)
    if img.ndim == 2:
        img = np.dstack([img] * 3)
    img = img[..., :3].astype(np.float32)
    col = colorize(label, classes, colors).astype(np.float32)
    out = (1 - alpha) * img + alpha * col
    if skip_none:
        none = np.asarray(label) == NO_CLASS
        out[none] = img[none]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
