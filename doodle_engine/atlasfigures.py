"""The release atlas's figures: class and labeler bars, records, coordinates and maps (PNG).

Each function draws one figure from the atlas's tables (:mod:`doodle_engine.atlas`) on a
pyplot-free matplotlib ``Figure`` and writes it through a temporary file and a rename.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import LinearSegmentedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox, ScaledTranslation

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
    return _panels_figure(ci, records_table, path, "class", None)


def superclass_figure(si, records_table, path, mapping_name):
    """Images containing each superclass: all records (stacked by record), then one panel
    per record as :func:`class_figure` draws them (``si``: the atlas's
    ``superclass_images``)."""
    return _panels_figure(si, records_table, path, "superclass", mapping_name)


def _panels_figure(ci, records_table, path, column, mapping_name):
    """The panels of :func:`class_figure` (``mapping_name`` None) or
    :func:`superclass_figure` (an all-records panel first)."""
    records = list(dict.fromkeys(ci["record"]))
    n_panels = len(records) + (mapping_name is not None)
    rows, cols = grid(n_panels, 3)
    both = "images_npz" in ci and (ci["images"].notna() & ci["images_npz"].notna()).any()
    fig = Figure(figsize=(5.2 * cols, (0.45 if both else 0.3) * max(
        [len(ci[ci["record"] == r]) for r in records] or [4]) * rows + 1.6 * rows + 0.8),
        layout="constrained")  # room for the suptitle, whatever the number of panels
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n_panels:]:
        ax.axis("off")
    colours = colour_of(records_table["record"])
    if mapping_name is not None:
        _total_panel(axes.pop(0), ci, column, colours)
    per_record = records_table.set_index("record")
    for ax, record in zip(axes, records):
        facts = per_record.loc[record]
        source = _class_panel(ax, ci[ci["record"] == record], colours[record],
                              int(facts["metadata_rows"]), int(facts["npz_files"]), column)
        ax.set_title(f"{record}: {count(int(facts['images']), 'image')} ({source})",
                     fontsize=10)
    total = int(records_table["images"].sum())
    counts = f"{count(total, 'image')}, {count(len(records), 'record')}"
    if mapping_name is not None:
        counts += f"; superclasses of {mapping_name}"
    # one panel is too narrow for the title on one line
    sep = "\n" if cols == 1 or mapping_name is not None else " "
    fig.suptitle(f"Images containing each {column}, per record{sep}({counts})", fontsize=12)
    return save(fig, path)


def _total_panel(ax, ci, column, colours):
    """All records: images containing each class (superclass), stacked by record, by the
    metadata where it lists the classes present (the title says how many records that
    covers), else by the stored labels."""
    by = "images" if ci["images"].notna().any() else "images_npz"
    table = ci.dropna(subset=[by]).pivot_table(index=column, columns="record", values=by,
                                              aggfunc="sum", fill_value=0, sort=False)
    left = _stacked_bars(ax, table, [colours[r] for r in table.columns], 7, 8)
    ax.set_xlabel(f"images containing the {column}", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(float(left.max(initial=0)), 1) * 1.18)
    _legend_below(ax, ncol=4)
    source = "metadata" if by == "images" else "stored labels"
    counted = ci.loc[ci[by].notna(), "record"].nunique()
    whose = ("All records" if counted == ci["record"].nunique()
             else f"{counted} of {ci['record'].nunique()} records")
    ax.set_title(f"{whose}: {int(left.sum())} (image, {column}) pairs ({source})", fontsize=10)


def _stacked_bars(ax, table, colours, text_size, tick_size):
    """One horizontal bar per row of ``table`` stacked over its columns (each in its colour,
    labelled with its column's name for the legend), the total written at each bar's end,
    the first row on top; returns the totals."""
    left = np.zeros(len(table))
    for column, colour in zip(table.columns, colours):
        ax.barh(range(len(table)), table[column], left=left, color=colour, label=column)
        left += table[column].to_numpy()
    for y, v in enumerate(left):
        ax.text(v, y, f" {int(v)}", va="center", fontsize=text_size)
    ax.set_yticks(range(len(table)), table.index, fontsize=tick_size)
    ax.invert_yaxis()
    return left


#: how far below its axes a panel's legend starts, in inches: under the tick labels and the
#: axis label, whatever the panel's height
_LEGEND_DROP = 0.42


def _legend_below(ax, ncol):
    """The panel's legend under its x-axis label (an offset in inches, not a share of the
    axes' height, which on a short panel put it over the label)."""
    below = ax.transAxes + ScaledTranslation(0, -_LEGEND_DROP, ax.figure.dpi_scale_trans)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below,
              ncol=ncol, frameon=False)


def _class_panel(ax, g, colour, rows, npz_files, column="class"):
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
    ax.set_yticks(range(len(g)), g[column], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"images containing the {column}", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(top, 1) * 1.18)
    if len(bars) > 1:
        _legend_below(ax, ncol=2)
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
    cmap = matplotlib.colormaps["tab10"]
    left = _stacked_bars(a1, table, [cmap(i % 10) for i in range(len(ids))], 8, 9)
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
    named = [i for i in ids if i != "(none)"]
    unnamed = f"; {int(totals['(none)'])} without one" if "(none)" in ids else ""
    a2.set_title(f"All records: {int(totals.sum())} images, {len(named)} labeler(s){unnamed}")
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


def overview_box(located):
    """The map box of every image: the overview of geography.png and the heat map."""
    return fitted(box(located["lon"], located["lat"], 2.0, 8.0), _OVERVIEW_ASPECT)


def geography_figure(located, path, colours):
    """Image centres over the land outline: all records, then one panel per record
    (``colours``: :func:`colour_of` every record of the atlas, so that a record keeps its
    colour in every figure)."""
    records = sorted(located["record"].unique())
    rows, _ = grid(len(records), _MAP_COLUMNS)
    fig = Figure(figsize=(16, 7.5 + 3.6 * rows))
    # half-cells, so that a row of fewer panels sits in the middle
    gs = fig.add_gridspec(1 + rows, 2 * _MAP_COLUMNS, height_ratios=[2.2] + [1] * rows)
    ax = fig.add_subplot(gs[0, :])
    resolution = draw_land(ax, *overview_box(located))
    sizes = located["record"].value_counts()
    handles = {}
    # the largest record first, so a small one's markers lie on top, not hidden beneath
    for r in sorted(records, key=lambda r: (-sizes[r], r)):
        g = located[located["record"] == r]
        handles[r] = ax.scatter(g["lon"], g["lat"], s=14, color=colours[r], edgecolor="black",
                                linewidth=0.3, label=f"{r} ({len(g)})", zorder=3)
    ax.legend(handles=[handles[r] for r in records], fontsize=8, loc="best",
              title="record (images)")
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


#: the heat map's colours: matplotlib's OrRd without its near-white third, so that a hexagon
#: of one image stands out from the blue sea and the pale land
_HEAT = LinearSegmentedColormap.from_list(
    "heat", matplotlib.colormaps["OrRd"](np.linspace(0.35, 1.0, 64)))
#: hexagons across the heat map, as the image-locations notebook's hexbin (gridsize=50)
HEX_ACROSS = 50


def heatmap_figure(located, path):
    """Images per hexagon over the land outline, on a log colour scale (the image-locations
    notebook's hexbin heat map); hexagons without an image are not drawn."""
    fig = Figure(figsize=(16, 7.4))
    ax = fig.add_subplot()
    west, south, east, north = overview_box(located)
    resolution = draw_land(ax, west, south, east, north)
    cells = ax.hexbin(located["lon"], located["lat"], gridsize=HEX_ACROSS, mincnt=1,
                      cmap=_HEAT, extent=(west, east, south, north),
                      edgecolors="#4a4a4a", linewidths=0.3, zorder=3)
    counts = cells.get_array()
    cells.set_norm(LogNorm(vmin=1, vmax=max(10, float(max(counts, default=1)))))
    bar = fig.colorbar(cells, ax=ax, shrink=0.6, pad=0.02)
    bar.set_label("images in the hexagon (log scale)")
    km = (east - west) / HEX_ACROSS * 111.32 * np.cos(np.radians((south + north) / 2))
    names = {"i": "intermediate", "l": "low"}
    ax.set_title(f"Image centres per hexagon: {count(len(located), 'image')} in "
                 f"{count(len(counts), 'hexagon')}, at most {int(max(counts, default=0))} in "
                 f"one (hexagons {(east - west) / HEX_ACROSS:.2g} degrees, about {km:.0f} km, "
                 f"across; land: GSHHS, {names[resolution]} resolution)")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    fig.tight_layout()
    return save(fig, path)


def coordinates_figure(located, path, colours):
    """Images by latitude and by longitude of their centres, stacked by record in
    ``colours`` (the geographic notebook's two histograms, 20 bins over the range of each)."""
    records = sorted(located["record"].unique())
    fig = Figure(figsize=(13, 6))
    a_lat, a_lon = fig.subplots(1, 2)
    for ax, column, horizontal in ((a_lat, "lat", True), (a_lon, "lon", False)):
        edges, bins = histogram_bins(located[column])
        ax.hist([located.loc[located["record"] == r, column] for r in records], bins=edges,
                stacked=True, color=[colours[r] for r in records], edgecolor="white",
                linewidth=0.6, orientation="horizontal" if horizontal else "vertical",
                label=[f"{r} ({int((located['record'] == r).sum())})" for r in records])
        name = "latitude" if horizontal else "longitude"
        (ax.set_ylabel if horizontal else ax.set_xlabel)(f"{name} of the image centre")
        (ax.set_xlabel if horizontal else ax.set_ylabel)("images")
        (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{'A' if horizontal else 'B'}) by {name} ({bins})", loc="left")
    a_lon.legend(fontsize=8, title="record (images)")
    fig.suptitle(f"Images by latitude and longitude: {count(len(located), 'image')} in "
                 f"{count(len(records), 'record')}")
    fig.tight_layout()
    return save(fig, path)


def drawable_records(records_table):
    """The records :func:`records_figure` can place: a size and a doodled share."""
    if not {"megapixels", "doodled_percent"} <= set(records_table.columns):
        return records_table.iloc[:0]
    known = records_table.dropna(subset=["megapixels", "doodled_percent"])
    return known[known["megapixels"] > 0]


def histogram_bins(values):
    """The edges of 20 equal bins over the range of ``values`` (one bin a degree wide around
    a single value), and the words for them."""
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.array([low - 0.5, low + 0.5]), f"every image at {low:.4g}"
    return np.linspace(low, high, 21), f"20 bins of {(high - low) / 20:.2g} degrees"


def records_title(records_table, known):
    """records.png's title: the records drawn, and those that could not be (no size or no
    doodle density)."""
    title = f"Records: size against doodled share ({count(len(known), 'record')})"
    missing = sorted(set(records_table["record"]) - set(known["record"]))
    if missing:
        title += (f"\nnot drawn (no image size or doodle_spatial_density): "
                  f"{', '.join(map(str, missing))}")
    return title


def records_figure(records_table, path):
    """Per record: the megapixels labelled (log scale) against the share of them a person
    doodled, as the user-distribution notebook draws it; records missing either are named
    in the title."""
    known = drawable_records(records_table)
    colours = colour_of(records_table["record"])
    fig = Figure(figsize=(9, 7))
    ax = fig.add_subplot()
    for r in known.to_dict("records"):
        ax.scatter(r["megapixels"], r["doodled_percent"], s=60, color=colours[r["record"]],
                   edgecolor="black", linewidth=0.5, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("megapixels labelled (sum of height x width over the record's images)")
    ax.set_ylabel("pixels a person doodled (%)")
    ax.set_ylim(0, max(float(known["doodled_percent"].max()) * 1.15, 1))
    left, right = known["megapixels"].min(), known["megapixels"].max()
    ax.set_xlim(left / 2, right * 8)  # room for the names right of the points
    ax.grid(True, which="major", color="#dddddd", zorder=0)
    ax.set_title(records_title(records_table, known), fontsize=11)
    fig.tight_layout()
    _label_points(fig, ax, [(r["megapixels"], r["doodled_percent"],
                             f"{r['record']} ({count(int(r['images']), 'image')})")
                            for r in known.to_dict("records")])
    return save(fig, path)


#: where a point's name may go, in points from the point: right, then left, above and below
_LABEL_OFFSETS = [(7, 3, "left", "bottom"), (7, -3, "left", "top"), (-7, 3, "right", "bottom"),
                  (-7, -3, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top"),
                  (7, 12, "left", "bottom"), (7, -12, "left", "top")]


def _label_points(fig, ax, points):
    """Name each point beside it, at the first place of :data:`_LABEL_OFFSETS` where the
    name stays inside the axes and overlaps no marker and no name placed before it (else at
    the first);
    the names go in order of the points' height, so neighbours are placed against each
    other."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    frame = ax.get_window_extent(renderer)
    # every point is an obstacle too: a name must not touch another record's marker
    placed = [Bbox.from_bounds(px - 6, py - 6, 12, 12) for px, py in
              ax.transData.transform([(x, y) for x, y, _ in points])]
    for x, y, text in sorted(points, key=lambda p: -p[1]):
        for offset in _LABEL_OFFSETS:
            extent = _name_at(ax, renderer, x, y, text, offset)
            inside = frame.x0 <= extent.x0 and extent.x1 <= frame.x1 and \
                frame.y0 <= extent.y0 and extent.y1 <= frame.y1
            if inside and not any(extent.overlaps(other) for other in placed):
                break
            ax.texts[-1].remove()
        else:
            extent = _name_at(ax, renderer, x, y, text, _LABEL_OFFSETS[0])
        placed.append(extent)


def _name_at(ax, renderer, x, y, text, offset):
    """Write ``text`` at ``offset`` from the point; its extent on the canvas, padded."""
    dx, dy, ha, va = offset
    label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha,
                        va=va, fontsize=9)
    return label.get_window_extent(renderer).padded(2)
