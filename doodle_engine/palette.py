"""Doodler's class colours: its two plotly palettes and the colormap a user may give instead."""

from __future__ import annotations

import numpy as np

from .errors import DoodleError

#: plotly's qualitative G10, Doodler's palette for at most 10 classes
G10 = ["#3366CC", "#DC3912", "#FF9900", "#109618", "#990099", "#0099C6", "#DD4477",
       "#66AA00", "#B82E2E", "#316395"]
#: plotly's qualitative Light24, Doodler's palette for 11-24 classes
LIGHT24 = ["#FD3216", "#00FE35", "#6A76FC", "#FED4C4", "#FE00CE", "#0DF9FF", "#F6F926",
           "#FF9616", "#479B55", "#EEA6FB", "#DC587D", "#D626FF", "#6E899C", "#00B5F7",
           "#B68E00", "#C9FBE5", "#FF0092", "#22FFA7", "#E3EE9E", "#86CE00", "#BC7196",
           "#7E7DCD", "#FC6955", "#E48F72"]


def hex_to_rgb(code):
    """``"#RRGGBB"`` as an (r, g, b) tuple of ints; a DoodleError for anything else."""
    digits = code.lstrip("#")
    if len(digits) != 6 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise DoodleError(None, f"not a #RRGGBB colour: {code!r}")
    return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))


def doodler_palette(n_classes):
    """Doodler's colours for ``n_classes`` classes, as an (n, 3) uint8 array."""
    if n_classes <= len(G10):
        names = G10
    elif n_classes <= len(LIGHT24):
        names = LIGHT24
    else:
        raise DoodleError(None, f"Doodler's palettes hold at most 24 classes, got {n_classes}")
    return np.array([hex_to_rgb(c) for c in names[:max(n_classes, 1)]], np.uint8)


def palette_from(colors, n_classes):
    """``colors``: None (Doodler's), a list of '#RRGGBB' or RGB triples, or an (n, 3) array."""
    if colors is None:
        return doodler_palette(n_classes)
    try:
        rows = [hex_to_rgb(c) if isinstance(c, str) else tuple(c) for c in colors]
        pal = np.array(rows, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        pal = np.zeros(0)  # refused below
    if pal.ndim != 2 or pal.shape[1] != 3 or pal.min() < 0 or pal.max() > 255:
        raise DoodleError(None, "a colormap must be a list of #RRGGBB strings or RGB triples 0..255")
    if len(pal) < n_classes:
        raise DoodleError(None, f"the colormap has {len(pal)} colours for {n_classes} classes")
    return pal.astype(np.uint8)
