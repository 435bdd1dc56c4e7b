"""The release atlas's figures: class and labeler bars, records, coordinates and maps (PNG).

Each function draws one figure from the atlas's tables (:mod:`doodle_engine.atlas`) on a
pyplot-free matplotlib ``Figure`` and writes it through a temporary file and a rename.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import coastline
from .files import atomic_write

#: width / height of a record's map panel in geography.png (its grid cell less the labels)
_PANEL_ASPECT = 1.2
#: record panels per row of geography.png, and the overview map's width over its height
_MAP_COLUMNS = 4
_OVERVIEW_ASPECT = 2.2
#: map colours: land, and the sea and lakes
LAND, WATER = "#ece6d6", "#dbe9f4"
#: colours of the records on the maps (matplotlib's tab10, then tab20's light shades)
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
            "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]


def save(fig, path):
    """A pyplot-free Figure as a PNG, atomically: a notebook's backend and figures stay as
    they were."""
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))


def colour_of(records):
    return {r: COLOURS[i % len(COLOURS)] for i, r in enumerate(sorted(records))}


def count(n, noun):
    """``n`` and the noun, plural unless ``n`` is 1."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def grid(n, cols):
    rows = max(1, -(-n // cols))
    return rows, min(cols, max(n, 1))


def class_figure(ci, records_table, path):
    """One panel per record: images in which each class is present, by the metadata's
    classes_present_integer and, beside it, by the stored labels of the record's npz files
    (``ci``: the atlas's ``class_images``; ``records_table``: its ``records``)."""
    records = list(dict.fromkeys(ci["record"]))
    rows, cols = grid(len(records), 3)
    both = "images_npz" in ci and (ci["images"].notna() & ci["images_npz"].notna()).any()
    fig = Figure(figsize=(5.2 * cols, (0.45 if both else 0.3) * max(
        [len(ci[ci["record"] == r]) for r in records] or [4]) * rows + 1.6 * rows + 0.8),
        layout="constrained")  # room for the suptitle, whatever the number of panels
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(records):]:
        ax.axis("off")
    colours = colour_of(records)
    per_record = records_table.set_index("record")
    for ax, record in zip(axes.flat, records):
        facts = per_record.loc[record]
        source = _class_panel(ax, ci[ci["record"] == record], colours[record],
                              int(facts["metadata_rows"]), int(facts["npz_files"]))
        ax.set_title(f"{record}: {count(int(facts['images']), 'image')} ({source})",
                     fontsize=10)
    total = int(records_table["images"].sum())
    counts = f"{count(total, 'image')}, {count(len(records), 'record')}"
    # one panel is too narrow for the title on one line
    sep = "\n" if cols == 1 else " "
    fig.suptitle(f"Images containing each class, per record{sep}({counts})", fontsize=12)
    return save(fig, path)


def _class_panel(ax, g, colour, rows, npz_files):
    """One record's bars: images containing each class by the metadata and, where the record
    has npz files, by the stored labels beside them; returns what the bars count."""
    bars = []
    if g["images"].notna().any():
        bars.append(("metadata", g["images"], count(rows, "row")))
    if "images_npz" in g and g["images_npz"].notna().any():
        bars.append(("stored labels", g["images_npz"], count(npz_files, "npz file")))
    height = 0.8 / len(bars)
    top = 0.0
    for i, (name, values, n) in enumerate(bars):
        ys = np.arange(len(g)) + (i - (len(bars) - 1) / 2) * height
        ax.barh(ys, values.fillna(0), height=height, color=colour, alpha=1.0 if i == 0 else 0.45,
                hatch=None if i == 0 else "///", label=f"{name} ({n})")
        for y, v in zip(ys, values.fillna(0)):
            ax.text(v, y, f" {int(v)}", va="center", fontsize=7 if len(bars) == 1 else 6)
        top = max(top, float(values.max() or 0))
    ax.set_yticks(range(len(g)), g["class"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images containing the class", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(top, 1) * 1.18)
    if len(bars) > 1:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  frameon=False)
    return " and ".join(name for name, _, _ in bars)


def labeler_figure(lab, path):
    """Images per labeler (``lab``: the atlas's ``labelers``): stacked per record, and over
    all records."""
    table = lab.pivot_table(index="record", columns="labeler", values="images",
                            aggfunc="sum", fill_value=0)
    ids = sorted(table.columns, key=lambda s: (not s.startswith("ID"), len(s), s))
    table = table[ids]
    fig = Figure(figsize=(13, 0.45 * len(table) + 2.2))
    a1, a2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    left = np.zeros(len(table))
    cmap = matplotlib.colormaps["tab10"]
    for i, lid in enumerate(ids):
        a1.barh(range(len(table)), table[lid], left=left, color=cmap(i % 10), label=lid)
        left += table[lid].to_numpy()
    for y, v in enumerate(left):
        a1.text(v, y, f" {int(v)}", va="center", fontsize=8)
    a1.set_yticks(range(len(table)), table.index, fontsize=9)
    a1.invert_yaxis()
    a1.set_xlabel("images")
    a1.xaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_xlim(0, left.max() * 1.12 if len(left) else 1)
    a1.legend(title="labeler", fontsize=8, loc="lower right")
    a1.set_title("Images per record, by labeler")
    totals = table.sum()
    a2.bar(range(len(ids)), totals, color=[cmap(i % 10) for i in range(len(ids))])
    a2.set_xticks(range(len(ids)), ids)
    for x, v in enumerate(totals):
        a2.text(x, v, f"{int(v)}", ha="center", va="bottom", fontsize=8)
    a2.set_ylabel("images")
    a2.yaxis.set_major_locator(MaxNLocator(integer=True))
    a2.set_ylim(0, max(float(totals.max()), 1) * 1.12)  # room for the counts above the bars
    a2.set_title(f"All records: {int(totals.sum())} images, {len(ids)} labeler(s)")
    fig.tight_layout()
    return save(fig, path)


def draw_land(ax, west, south, east, north, resolution=None):
    """The GSHHS land (and lakes) in the box as two collections: intermediate resolution
    for boxes under 5 degrees, low resolution above."""
    if resolution is None:
        resolution = "i" if max(east - west, north - south) < 5 else "l"
    polys = coastline.polygons(west, south, east, north, resolution)
    for level in sorted({level for level, _ in polys}):  # each over the level it lies in
        verts = [pts for lv, pts in polys if lv == level]
        ax.add_collection(PolyCollection(verts, edgecolors="#8c8c8c", linewidths=0.5,
                                         facecolors=LAND if coastline.is_land(level) else WATER,
                                         zorder=1 + level / 10))
    ax.set_facecolor(WATER)
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    mid = np.radians((south + north) / 2)
    ax.set_aspect(1 / max(np.cos(mid), 0.2))
    return resolution


#: a map's margin around its points, as a share of their span (at least ``pad_deg``): a
#: marker at the edge of a wide record's panel was cut in half
MARGIN = 0.04


def box(lon, lat, pad_deg, min_span):
    w, e, s, n = lon.min(), lon.max(), lat.min(), lat.max()
    cx, cy = (w + e) / 2, (s + n) / 2
    half_x = max((e - w) / 2 + max(pad_deg, MARGIN * (e - w)), min_span / 2)
    half_y = max((n - s) / 2 + max(pad_deg, MARGIN * (n - s)), min_span / 2)
    return cx - half_x, cy - half_y, cx + half_x, cy + half_y


def fitted(box, aspect):
    """``box`` (west, south, east, north) widened in one direction so that, drawn with
    :func:`draw_land`'s aspect, it is ``aspect`` times as wide as tall: a panel fills its
    cell instead of a wide record drawn as a strip."""
    west, south, east, north = box
    stretch = 1 / max(np.cos(np.radians((south + north) / 2)), 0.2)
    width, height = east - west, (north - south) * stretch
    if width > aspect * height:
        half = width / aspect / stretch / 2
        mid = (south + north) / 2
        south, north = max(mid - half, -90.0), min(mid + half, 90.0)
    else:
        half = aspect * height / 2
        mid = (west + east) / 2
        west, east = mid - half, mid + half
    return west, south, east, north


def geography_figure(located, path):
    """Image centres over the land outline: all records, then one panel per record."""
    records = sorted(located["record"].unique())
    colours = colour_of(records)
    rows, _ = grid(len(records), _MAP_COLUMNS)
    fig = Figure(figsize=(16, 7.5 + 3.6 * rows))
    # half-cells, so that a row of fewer panels sits in the middle
    gs = fig.add_gridspec(1 + rows, 2 * _MAP_COLUMNS, height_ratios=[2.2] + [1] * rows)
    ax = fig.add_subplot(gs[0, :])
    resolution = draw_land(ax, *fitted(box(located["lon"], located["lat"], 2.0, 8.0),
                                         _OVERVIEW_ASPECT))
    for r in records:
        g = located[located["record"] == r]
        ax.scatter(g["lon"], g["lat"], s=14, color=colours[r], edgecolor="black", linewidth=0.3,
                   label=f"{r} ({len(g)})", zorder=3)
    ax.legend(fontsize=8, loc="best", title="record (images)")
    names = {"i": "intermediate", "l": "low"}
    ax.set_title(f"Image centres: {count(len(located), 'image')} in "
                 f"{count(len(records), 'record')} "
                 f"(land: GSHHS, {names[resolution]} resolution; panels below: intermediate "
                 "under 5 degrees)")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    for r, (row, start) in zip(records, panel_slots(len(records), _MAP_COLUMNS)):
        g = located[located["record"] == r]
        sub = fig.add_subplot(gs[1 + row, start:start + 2])
        draw_land(sub, *fitted(box(g["lon"], g["lat"], 0.1, 0.6), _PANEL_ASPECT))
        sub.scatter(g["lon"], g["lat"], s=10, color=colours[r], edgecolor="black",
                    linewidth=0.3, zorder=3)
        sub.set_title(f"{r}: {len(g)} images", fontsize=9)
        sub.tick_params(labelsize=7)
    fig.tight_layout()
    return save(fig, path)


def panel_slots(n, columns):
    """(row, first half-cell) of ``n`` panels two half-cells wide, ``columns`` to a row: a
    row of fewer panels is centred (no empty cell between panels)."""
    slots = []
    for i in range(n):
        row, col = divmod(i, columns)
        in_row = min(columns, n - row * columns)
        slots.append((row, 2 * col + columns - in_row))
    return slots
