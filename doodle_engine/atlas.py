"""The release atlas: per-record counts, figures and maps of Coast Train records from their
metadata CSVs and npz files (what the four CoastTrainMetaPlots notebooks draw), headless.

:func:`build_atlas` joins the metadata (:mod:`doodle_engine.metadata`) with the rows the
``stats`` job gives for npz files (class-pixel counts of the stored labels) on the file stem;
:func:`write_atlas` writes the tables, figures, ``locations.html`` and ``index.html``.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import xstatic.pkg.leaflet as xleaflet

from . import atlasfigures as figures
from . import coastline
from .errors import DoodleError
from .files import atomic_write, short_name
from .metadata import FINDING_COLUMNS, combine, labeler_of
from .remapping import load_mapping

#: what each check of the metadata says, for the index page
CHECKS = {
    "present-classes": "classes_present_integer (read through classes_array) and "
                       "classes_present_array name different classes",
    "present-index": "classes_present_integer holds an index outside classes_array",
    "num-classes": "num_classes is not the number of names in classes_array",
    "classes-integer": "classes_integer is not 1..num_classes-1 as in the other records",
    "class-spelling": "a class name is spelled differently from the other rows of the record",
    "crs-epsg": "the UTM zone in CRS is not the zone the epsg code names",
    "date": "the date in the file name is not year/month/day",
    "value-range": "a value outside its range",
    "unreadable": "a value that is not a number (or a list of integers) where one belongs",
    "file-names": "image or label file name does not match the npz file name",
    "no-labeler": "the file name has no _ID<n> labeler suffix",
    "no-file-name": "a row without a file name",
    "duplicate-stem": "the same file listed twice in one record",
    "stem-in-two-records": "the same file name listed in two records",
    "npz-size": "ImageHeightPx x ImageWidthPx is not the npz image's size",
    "npz-classes": "classes_array is not the npz file's class list",
    "npz-present": "the classes present in the stored label are not the metadata's",
}


@dataclass
class Atlas:
    """The atlas's tables: ``images`` (one row per image), ``records``, ``class_images``,
    ``class_pixels`` (None without npz files), ``labelers``, ``findings`` (metadata
    disagreements, :data:`doodle_engine.metadata.FINDING_COLUMNS`) and ``unjoined`` (npz files
    without a metadata row, metadata rows without an npz file)."""

    images: pd.DataFrame
    records: pd.DataFrame
    class_images: pd.DataFrame
    class_pixels: pd.DataFrame | None
    labelers: pd.DataFrame
    findings: pd.DataFrame
    unjoined: pd.DataFrame
    sources: list = field(default_factory=list)
    npz_errors: list = field(default_factory=list)
    superclass_images: pd.DataFrame | None = None
    superclass_notes: list = field(default_factory=list)
    mapping_source: str | None = None


def _npz_images(rows):
    """Per npz file (rows of the ``stats`` job): record, stem, size, class list, classes
    present in the stored label and pixels per class."""
    ok = rows[rows["error"].fillna("") == ""] if "error" in rows else rows
    px = [c for c in ok.columns if c.startswith("px_") and c != "px_none"]
    out = []
    for r in ok.to_dict("records"):
        name = str(r.get("file_name") or Path(str(r["file"])).name)
        classes = [c for c in str(r.get("classes") or "").split("|") if c]
        pixels = {c[3:]: int(r[c]) for c in px if pd.notna(r.get(c)) and r[c] > 0}
        record = str(r.get("record") or "") or Path(str(r["file"])).resolve().parent.name
        out.append({"record_npz": record, "stem": name[:-4] if name.lower().endswith(
            ".npz") else name, "npz": str(r["file"]), "npz_height": r.get("height"),
            "npz_width": r.get("width"), "npz_classes": classes,
            "npz_present": [c for c in classes if c in pixels] or sorted(pixels),
            "npz_pixels": pixels})
    return pd.DataFrame(out, columns=["record_npz", "stem", "npz", "npz_height", "npz_width",
                                      "npz_classes", "npz_present", "npz_pixels"])


def build_atlas(metadata=None, npz_rows=None, mapping=None, default=None):
    """Join metadata and npz rows into an :class:`Atlas`.

    Parameters
    ----------
    metadata : Metadata, optional
        From :func:`doodle_engine.metadata.read_metadata_inputs` (or ``read_metadata``).
    npz_rows : pandas.DataFrame, optional
        The rows of the ``stats`` job over npz files (``run_batch("stats", ...)``): class
        pixels of each stored label.  Rows with an error are listed in ``npz_errors``.
    mapping : dict, Mapping or path, optional
        A class mapping by name (a Coast Train remap file: ``aliases`` to ``super_classes``):
        the atlas then counts the images containing each superclass
        (``superclass_images``), as the class-distribution notebook does.
    default : str, optional
        With ``mapping``: the superclass of classes it has no rule for; without it they are
        counted as ``(no rule)`` and named in ``superclass_notes``.
    """
    meta = metadata if metadata is not None else combine([])
    npz = _npz_images(npz_rows) if npz_rows is not None and len(npz_rows) else _npz_images(
        pd.DataFrame(columns=["file", "error"]))
    errors = []
    if npz_rows is not None and "error" in npz_rows:
        errors = [e for e in npz_rows["error"].fillna("") if e]
    images, unjoined, npz_findings = _join(meta.table, npz)
    findings = pd.concat([f for f in (meta.findings, npz_findings) if len(f)],
                         ignore_index=True) if len(meta.findings) or len(npz_findings) else \
        pd.DataFrame(columns=list(FINDING_COLUMNS))
    have_npz = bool(len(npz))
    found = Atlas(images, _records(images, findings, meta), _class_images(images, have_npz),
                  _class_pixels(images) if have_npz else None, _labelers(images), findings,
                  unjoined, list(meta.sources), errors)
    if mapping is not None:
        m = superclass_mapping(mapping, default)
        _check_names(m, found.class_images["class"])
        found.superclass_images, found.superclass_notes = _superclass_images(
            images, m, default, have_npz)
        found.mapping_source = m.source
    return found


def _join(table, npz):
    """images (metadata rows, joined to their npz on the stem, and npz files without a
    metadata row), the unjoined list, and the npz-vs-metadata findings."""
    table = table.copy()
    table["in_metadata"] = True
    if not len(npz):
        for c in npz.columns:
            if c not in ("stem",):
                table[c] = None
        table["has_npz"] = False
        return table, pd.DataFrame(columns=["kind", "record", "stem", "where"]), _no_findings()
    merged = npz.merge(table[["stem", "record"]].reset_index(), on="stem", how="left")
    merged["same"] = merged["record"] == merged["record_npz"]
    merged = merged.sort_values(["npz", "same"], ascending=[True, False]).drop_duplicates("npz")
    joined = merged[merged["index"].notna()]
    joined = joined.drop_duplicates("index")  # two npz files for one row: the first joins
    per_row = joined.set_index("index")
    images = table.join(per_row.drop(columns=["stem", "record", "same"]), how="left")
    images["has_npz"] = images["npz"].notna()
    loose = npz[~npz["npz"].isin(joined["npz"])].copy()
    loose["record"] = loose["record_npz"]
    loose["labeler"] = loose["stem"].map(labeler_of)
    loose["in_metadata"] = False
    loose["has_npz"] = True
    loose["classes"] = loose["npz_classes"]
    loose["present"] = loose["npz_present"]
    images = pd.concat([images, loose], ignore_index=True, sort=False)
    records_with_npz = set(images.loc[images["has_npz"], "record"])
    unjoined = [{"kind": "npz file without a metadata row", "record": r["record"],
                 "stem": r["stem"], "where": r["npz"]} for r in loose.to_dict("records")]
    missing = images[images["in_metadata"] & ~images["has_npz"]
                     & images["record"].isin(records_with_npz)]
    unjoined += [{"kind": "metadata row without an npz file", "record": r["record"],
                  "stem": r["stem"], "where": f"{r['source']} line {int(r['line'])}"}
                 for r in missing.to_dict("records")]
    return (images, pd.DataFrame(unjoined, columns=["kind", "record", "stem", "where"]),
            _npz_findings(images[images["in_metadata"] & images["has_npz"]]))


def _no_findings():
    return pd.DataFrame(columns=list(FINDING_COLUMNS))


def _npz_findings(joined):
    """The metadata row against its npz file: image size, class list, classes present."""
    rows = []

    def add(r, check, col_a, says_a, says_b, used):
        rows.append({"record": r["record"], "source": r["source"], "line": int(r["line"]),
                     "stem": r["stem"], "check": check, "column_a": col_a, "says_a": says_a,
                     "column_b": f"npz {short_name(r['npz'])}", "says_b": says_b, "used": used})

    for r in joined.to_dict("records"):
        h, w = r.get("height_px"), r.get("width_px")
        if pd.notna(h) and pd.notna(w) and (int(h), int(w)) != (int(r["npz_height"]), int(r["npz_width"])):
            add(r, "npz-size", "ImageHeightPx x ImageWidthPx", f"{int(h)} x {int(w)}",
                f"{int(r['npz_height'])} x {int(r['npz_width'])}", "npz")
        if r["classes"] and r["npz_classes"] and list(r["classes"]) != list(r["npz_classes"]):
            add(r, "npz-classes", "classes_array", "; ".join(r["classes"]),
                "; ".join(r["npz_classes"]), "npz")
        if r["npz_classes"] and set(r["present"]) != set(r["npz_present"]):
            add(r, "npz-present", "classes_present_integer", "; ".join(r["present"]),
                "; ".join(r["npz_present"]), "npz (class_images.csv images_npz)")
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def _class_order(group, column="classes"):
    """A record's classes in the order its rows list them (first seen first)."""
    seen = {}
    for names in group[column]:
        for n in names if isinstance(names, (list, tuple)) else []:
            seen.setdefault(n, None)
    return list(seen)


def _records(images, findings, meta):
    rows = []
    for record, g in images.groupby("record", sort=True):
        dates = sorted(d for d in g.get("date", pd.Series(dtype=str)).fillna("") if d)
        lists = g["classes"].map(lambda c: tuple(c) if isinstance(c, (list, tuple)) else ())
        lab = g["labeler"].fillna("").replace("", "(none)").value_counts().sort_index()
        px_size = sorted({float(v) for v in g.get("pixel_size_m", pd.Series(dtype=float)).dropna()})
        mpx = (g["height_px"] * g["width_px"]).sum() / 1e6 if "height_px" in g else np.nan
        sources = sorted({Path(str(s)).name for s in g.get("source", pd.Series(dtype=str)).dropna()})
        rows.append({
            "record": record, "sources": "; ".join(sources), "images": len(g),
            "metadata_rows": int(g["in_metadata"].sum()), "npz_files": int(g["has_npz"].sum()),
            "joined": int((g["in_metadata"] & g["has_npz"]).sum()),
            "labelers": int((lab.index != "(none)").sum()),
            "labeler_images": ", ".join(f"{k} {v}" for k, v in lab.items()),
            "classes": len(_class_order(g)), "class_names": "; ".join(_class_order(g)),
            "class_lists": lists[lists.map(len) > 0].nunique(),
            "date_first": dates[0] if dates else "", "date_last": dates[-1] if dates else "",
            "pixel_size_m": "; ".join(f"{v:g}" for v in px_size),
            "megapixels": round(float(mpx), 3) if pd.notna(mpx) and mpx else np.nan,
            "doodled_percent": _doodled_percent(g),
            "disagreements": int((findings["record"] == record).sum()) if len(findings) else 0})
    return pd.DataFrame(rows)


def _doodled_percent(g):
    """The share of a record's pixels a person doodled, as the user-distribution notebook
    computes it: sum(height x width x doodle_spatial_density) / sum(height x width), in %."""
    if "doodle_spatial_density" not in g or "height_px" not in g:
        return np.nan
    px = g["height_px"] * g["width_px"]
    density = pd.to_numeric(g["doodle_spatial_density"], errors="coerce")
    known = px.notna() & density.notna()
    total = px[known].sum()
    return round(float(100 * (px[known] * density[known]).sum() / total), 2) if total else np.nan


def _class_images(images, have_npz):
    """Per record and class: images in which the class is present, by the metadata
    (``present``) and, with npz files, by the stored labels (``images_npz``).  The classes
    are the metadata's, then those only the npz files name or hold."""
    rows = []
    for record, g in images.groupby("record", sort=True):
        meta = g[g["in_metadata"]]
        npz = g[g["has_npz"]]
        order = _class_order(g)
        if len(npz):
            order += [n for n in dict.fromkeys(_class_order(npz, "npz_classes")
                                               + _class_order(npz, "npz_present"))
                      if n not in order]
        rows += [{"record": record, "class": name, **_counts(meta, npz, {name}, have_npz)}
                 for name in order]
    cols = ["record", "class", "images"] + (["images_npz"] if have_npz else [])
    return pd.DataFrame(rows, columns=cols)


def _class_pixels(images):
    """Per record and class: pixels in the stored labels, their share of the record's
    labelled pixels, and the images holding the class."""
    rows = []
    for record, g in images[images["has_npz"]].groupby("record", sort=True):
        totals = {}
        for px in g["npz_pixels"]:
            for name, n in px.items():
                totals[name] = totals.get(name, 0) + n
        all_px = sum(totals.values())
        order = _class_order(g, "npz_classes") + sorted(set(totals) - set(_class_order(g, "npz_classes")))
        for name in order:
            rows.append({"record": record, "class": name, "pixels": totals.get(name, 0),
                         "fraction": totals.get(name, 0) / all_px if all_px else np.nan,
                         "images": int(g["npz_pixels"].map(lambda p, n=name: p.get(n, 0) > 0).sum())})
    return pd.DataFrame(rows, columns=["record", "class", "pixels", "fraction", "images"])


#: the superclass of a class its mapping has no rule for (and no default)
NO_RULE = "(no rule)"


def superclass_mapping(mapping, default=None):
    """The mapping read and checked for the atlas, before anything is read or written: by
    class name (not an integer mapping), every rule's target one of its superclasses,
    ``default`` one of them."""
    m = load_mapping(mapping)
    if m.targets is None:
        raise DoodleError(m.source, "the atlas groups classes by name: it needs a mapping of "
                                    "class names (a Coast Train remap file, or names -> "
                                    "names), not an integer mapping")
    m.check_targets()
    m.check_default(default)
    return m


def _check_names(m, class_names):
    """A mapping with a rule for none of the records' classes is not meant for them."""
    names = list(dict.fromkeys(class_names))
    if names and not any(m.target_name(n) is not None for n in names):
        keys = list(m.aliases)[:6]
        why = (" (this Doodler-schema mapping keys its rules by class number; the atlas "
               "matches classes by name: write the rules by name)" if m.keyed_by_number else "")
        raise DoodleError(m.source, f"no class of these records has a rule in it (its rules "
                                    f"are for {keys}{' ...' if len(m.aliases) > 6 else ''}; "
                                    f"the records' classes include {names[:6]}){why}")


def _superclass_images(images, m, default, have_npz):
    """Per record and superclass: the images containing it (by the metadata and, with npz
    files, by the stored labels) and the record's classes that go to it; and the note on the
    classes without a rule."""
    rows, loose = [], {}
    order = list(m.targets)
    for record, g in images.groupby("record", sort=True):
        meta, npz = g[g["in_metadata"]], g[g["has_npz"]]
        names = _class_order(g) + (_class_order(npz, "npz_present") if len(npz) else [])
        into = {n: m.target_name(n, default) or NO_RULE for n in dict.fromkeys(names)}
        for n in (n for n, t in into.items() if t == NO_RULE):
            loose.setdefault(n, []).append(record)
        for target in order + ([NO_RULE] if NO_RULE in into.values() else []):
            members = [n for n, t in into.items() if t == target]
            rows.append({"record": record, "superclass": target,
                         **_counts(meta, npz, set(members), have_npz),
                         "classes": "; ".join(members)})
    cols = ["record", "superclass", "images"] + (["images_npz"] if have_npz else []) + ["classes"]
    return pd.DataFrame(rows, columns=cols), _no_rule_notes(loose, m.source)


def _no_rule_notes(loose, source, shown=12):
    """One note for the classes without a rule (class -> its records), the first ``shown``
    named with their records."""
    if not loose:
        return []
    named = "; ".join(f"{n!r} ({', '.join(r)})" for n, r in list(loose.items())[:shown])
    more = f"; and {len(loose) - shown} more (superclass_images.csv)" if len(loose) > shown else ""
    return [f"{NO_RULE}: {len(loose)} class{'es' if len(loose) != 1 else ''} without a rule in "
            f"{source}, counted as {NO_RULE}: {named}{more}; --default names a superclass for "
            "them"]


def _counts(meta, npz, members, have_npz):
    """The images holding any class of ``members``: by the metadata's rows (``images``) and,
    with npz files, by the stored labels (``images_npz``); NaN where a record has none."""
    out = {"images": _holding(meta["present"], members) if len(meta) else np.nan}
    if have_npz:
        out["images_npz"] = _holding(npz["npz_present"], members) if len(npz) else np.nan
    return out


def _holding(present, members):
    """How many images (their lists of classes present) hold a class of ``members``."""
    return int(present.map(lambda p: not members.isdisjoint(p)
                           if isinstance(p, (list, tuple)) else False).sum())


def _labelers(images):
    """Per record and labeler: images, and the megapixels of those images (the
    user-distribution notebook's 'millions of pixels labeled')."""
    g = images.assign(labeler=images["labeler"].fillna("").replace("", "(none)"),
                      megapixels=(images["height_px"] * images["width_px"] / 1e6
                                  if "height_px" in images else np.nan))
    out = g.groupby(["record", "labeler"]).agg(
        images=("stem", "size"),
        megapixels=("megapixels", lambda s: s.sum(min_count=1))).reset_index()  # unknown: NaN
    out["megapixels"] = out["megapixels"].round(3)
    return out.sort_values(["record", "labeler"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- writing

#: counts that a record without metadata (or npz files) leaves blank: whole numbers in the CSVs
_COUNTS = ("images", "images_npz", "pixels", "metadata_rows", "npz_files", "joined")


def _csv(frame, path):
    view = frame.copy()
    for c in (c for c in _COUNTS if c in view and view[c].dtype.kind == "f"):
        view[c] = view[c].round().astype("Int64")  # 4, not 4.0, beside a blank
    for c in view.columns:
        if view[c].map(lambda v: isinstance(v, (list, tuple))).any():
            view[c] = view[c].map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        if view[c].map(lambda v: isinstance(v, dict)).any():
            view[c] = view[c].map(lambda v: json.dumps(v) if isinstance(v, dict) else v)
    return atomic_write(path, lambda fh: fh.write(view.to_csv(index=False).encode("utf-8")))


def image_table(atlas):
    """The per-image table as written to ``images.csv`` (lists as ``a; b`` text)."""
    cols = [c for c in ("record", "stem", "labeler", "date", "lon", "lat", "height_px",
                        "width_px", "pixel_size_m", "classes", "present", "in_metadata",
                        "has_npz", "npz", "npz_present", "source", "line") if c in atlas.images]
    out = atlas.images[cols].copy()
    for c in ("height_px", "width_px", "line"):  # whole numbers, some missing: not 306.0
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").round().astype("Int64")
    return out


def write_atlas(atlas, outdir):
    """Write the atlas into ``outdir`` (created): the CSV tables, ``class_distribution.png``,
    ``labelers.png``, ``superclass_images.csv`` and ``superclass_distribution.png`` (with a
    mapping), ``records.png`` (when records have image sizes and doodle densities),
    ``geography.png``, ``heatmap.png``, ``coordinates.png`` and ``locations.html`` (when the
    metadata gives coordinates) and ``index.html``, each through a temporary file and a
    rename.  Returns the paths written; ``write_atlas.last_notes`` says what was left out and
    why."""
    if not len(atlas.images):
        raise DoodleError(", ".join(map(str, atlas.sources)) or None,
                          "no image to draw: the metadata CSVs have no rows and no npz file "
                          "was read; nothing written")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    written = [_csv(atlas.records, out / "records.csv"),
               _csv(atlas.class_images, out / "class_images.csv")]
    if atlas.class_pixels is not None:
        written.append(_csv(atlas.class_pixels, out / "class_pixels.csv"))
    else:
        notes.append("class_pixels.csv not written: it counts the pixels of the stored "
                     "labels, so it needs npz files or release zips among the inputs")
    written += [_csv(atlas.labelers, out / "labelers.csv"),
                _csv(atlas.findings, out / "disagreements.csv"),
                _csv(atlas.unjoined, out / "unjoined.csv"),
                _csv(image_table(atlas), out / "images.csv"),
                figures.class_figure(atlas.class_images, atlas.records,
                                     out / "class_distribution.png"),
                figures.labeler_figure(atlas.labelers, out / "labelers.png")]
    if atlas.superclass_images is not None:
        written += [_csv(atlas.superclass_images, out / "superclass_images.csv"),
                    figures.superclass_figure(atlas.superclass_images, atlas.records,
                                              out / "superclass_distribution.png",
                                              Path(atlas.mapping_source).name)]
    if len(figures.drawable_records(atlas.records)):
        written.append(figures.records_figure(atlas.records, out / "records.png"))
    else:
        notes.append("records.png: no record has both image sizes (ImageHeightPx, "
                     "ImageWidthPx) and doodle_spatial_density (from the metadata CSVs)")
    located = _located(atlas.images)
    colours = figures.colour_of(atlas.records["record"])
    if len(located):
        written += [figures.geography_figure(located, out / "geography.png", colours),
                    figures.heatmap_figure(located, out / "heatmap.png"),
                    figures.coordinates_figure(located, out / "coordinates.png", colours),
                    _locations_html(located, out / "locations.html", colours)]
        if len(located) < len(atlas.images):
            notes.append(_unplaced_note(atlas.images, located))
    else:
        notes.append("geography.png, heatmap.png, coordinates.png, locations.html: no image "
                     "has coordinates (LonMin/LonMax/LatMin/LatMax come from the metadata CSVs)")
    written.append(_index_html(atlas, out / "index.html", [Path(p).name for p in written], notes))
    write_atlas.last_notes = notes
    return written


write_atlas.last_notes = []


def _unplaced_note(images, located):
    """Which images the maps and histograms leave out: those without coordinates."""
    left = images.drop(index=located.index)["record"].value_counts().sort_index()
    return (f"geography.png, heatmap.png, coordinates.png, locations.html: {int(left.sum())} "
            f"of {len(images)} images have no coordinates in the metadata and are not drawn "
            f"({', '.join(f'{r} {n}' for r, n in left.items())})")


def _located(images):
    if "lon" not in images:
        return images.iloc[:0]
    ok = images["lon"].between(-180, 180) & images["lat"].between(-90, 90)
    return images[ok]



def _leaflet_assets():
    """Leaflet's script and style sheet (from the xstatic-leaflet package), the style sheet's
    images inlined as data URIs so the page loads nothing from outside."""
    base = Path(xleaflet.BASE_DIR)
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    css = (base / "leaflet.css").read_text(encoding="utf-8")

    def inline(m):
        img = base / m.group(1)
        data = base64.b64encode(img.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"
    css = re.sub(r"url\((images/[\w\-]+\.png)\)", inline, css)
    return js.replace("</script", "<\\/script"), css


def _popup_fields(g):
    def text(v):
        return "; ".join(v) if isinstance(v, (list, tuple)) else ("" if pd.isna(v) else str(v))
    props = []
    for r in g.to_dict("records"):
        props.append({"image": r["stem"], "record": r["record"],
                      "classes present": text(r.get("present")), "labeler": r.get("labeler") or "",
                      "date": r.get("date") or "",
                      "size (px)": (f"{int(r['height_px'])} x {int(r['width_px'])}"
                                    if pd.notna(r.get("height_px")) and pd.notna(r.get("width_px"))
                                    else "")})
    return props


def _outline_style(feature):
    """Leaflet style of a GSHHS polygon: land in the land colour, a lake in the sea's."""
    land = coastline.is_land(feature["properties"]["level"])
    return {"fillColor": figures.LAND if land else figures.WATER, "color": "#8c8c8c",
            "weight": 0.6, "fillOpacity": 1}


def _locations_html(located, path, colours):
    """One marker per image (record, classes present, labeler, date) over the GSHHS land
    outline, a layer per record in its ``colours``; OpenStreetMap tiles can be switched on
    (they load then, from the network). Leaflet itself is inlined: the page opens offline."""
    records = sorted(located["record"].unique())
    west, south, east, north = figures.box(located["lon"], located["lat"], 1.0, 4.0)
    m = folium.Map(tiles=None, prefer_canvas=True, control_scale=True)
    m.default_js, m.default_css = [], []
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap tiles (online)", show=False,
                     overlay=False).add_to(m)
    folium.GeoJson(coastline.geojson(west - 10, south - 10, east + 10, north + 10, "l"),
                   name="land and lakes (GSHHS, offline)", control=False,
                   style_function=_outline_style).add_to(m)
    fields = ["image", "record", "classes present", "labeler", "date", "size (px)"]
    for r in records:
        g = located[located["record"] == r]
        fc = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": p,
             "geometry": {"type": "Point", "coordinates": [round(float(x), 6), round(float(y), 6)]}}
            for p, x, y in zip(_popup_fields(g), g["lon"], g["lat"])]}
        swatch = f'<span style="color:{colours[r]}">&#9679;</span>'  # the record's colour
        folium.GeoJson(fc, name=f"{swatch} {html.escape(str(r))} ({len(g)})",
                       marker=folium.CircleMarker(radius=5, color="#222222", weight=0.6,
                                                  fill=True, fill_color=colours[r], fill_opacity=0.9),
                       popup=folium.GeoJsonPopup(fields=fields),
                       tooltip=folium.GeoJsonTooltip(fields=["image", "record"])).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds([[located["lat"].min(), located["lon"].min()],
                  [located["lat"].max(), located["lon"].max()]])
    page = m.get_root().render()
    js, css = _leaflet_assets()
    head = (f"<title>Coast Train atlas: {len(located)} image locations</title>\n"
            f"<style>{css}\n.leaflet-container {{ background: {figures.WATER}; }}</style>\n"
            f"<script>{js}</script>\n")
    page = page.replace("<head>", "<head>\n" + head, 1)
    return atomic_write(path, lambda fh: fh.write(page.encode("utf-8")))


def _html_table(frame, max_rows=None):
    view = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in view.columns)
    body = []
    for r in view.itertuples(index=False):
        cells = []
        for v in r:
            text = "" if (v is None or (isinstance(v, float) and np.isnan(v))) else (
                f"{v:,}" if isinstance(v, (int, np.integer)) else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f"<p class='more'>{len(frame) - len(view):,} more rows in the CSV.</p>"
            if len(view) < len(frame) else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _findings_summary(findings):
    """One row per record and check: how many rows, which CSV lines, one example."""
    rows = []
    for (record, check), g in findings.groupby(["record", "check"], sort=True):
        first = g.iloc[0]
        lines = _ranges(sorted(g["line"].astype(int)))
        rows.append({"record": record, "check": check, "rows": len(g),
                     "what": CHECKS.get(check, check), "CSV lines": lines,
                     "example": f"line {int(first['line'])} ({first['stem']}): "
                                f"{first['column_a']} says {first['says_a']!s}; "
                                f"{first['column_b']} says {first['says_b']!s}",
                     "atlas uses": first["used"]})
    return pd.DataFrame(rows, columns=["record", "check", "rows", "what", "CSV lines", "example",
                                       "atlas uses"])


def _ranges(lines, limit=12):
    parts, start, prev = [], None, None
    for x in lines:
        if start is None:
            start = prev = x
        elif x == prev + 1:
            prev = x
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = x
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts[:limit]) + (f", ... ({len(parts) - limit} more)" if len(parts) > limit else "")


_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;
color:#222;max-width:1400px}h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;
padding:3px 7px;text-align:left;vertical-align:top}th{background:#f2f2f2}
.counts span{display:inline-block;margin-right:28px;font-size:1.15em}.counts b{font-size:1.4em}
img{max-width:100%;border:1px solid #ddd;margin:6px 0}.more,.note{color:#555;font-size:13px}
ul.files li{font-size:14px}.wide{overflow-x:auto}"""


def _index_html(atlas, path, files, notes):
    rec = atlas.records
    n_img = int(rec["images"].sum()) if len(rec) else 0
    labelers = atlas.labelers["labeler"].nunique() if len(atlas.labelers) else 0
    npz = int(rec["npz_files"].sum()) if len(rec) else 0
    joined = int(rec["joined"].sum()) if len(rec) else 0
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>Coast Train atlas: {n_img} images in {len(rec)} records</title>"
             f"<style>{_STYLE}</style></head><body>"),
             "<h1>Coast Train atlas</h1>",
             ("<p class='counts'>"
             f"<span><b>{n_img:,}</b> images</span><span><b>{len(rec)}</b> records</span>"
             f"<span><b>{labelers}</b> labelers</span>"
             f"<span><b>{len(atlas.sources)}</b> metadata CSV(s)</span>"
             f"<span><b>{npz:,}</b> npz files ({joined:,} joined)</span>"
             f"<span><b>{len(atlas.findings):,}</b> metadata disagreements</span></p>"),
             "<h2>Files</h2><ul class='files'>"]
    for name in files:
        parts.append(f"<li><a href='{html.escape(name)}'>{html.escape(name)}</a></li>")
    parts.append("</ul>")
    for n in notes:
        parts.append(f"<p class='note'>Note: {html.escape(n)}</p>")
    parts += ["<h2>Records</h2>", "<p class='note'>Every column, with each record's class names "
              "and CSV files, is in <a href='records.csv'>records.csv</a>.</p>",
              "<div class='wide'>", _html_table(rec.drop(columns=["class_names", "sources"],
                                                         errors="ignore")), "</div>"]
    for name, title in (("class_distribution.png", "Class distribution"),
                        ("superclass_distribution.png", "Superclass distribution"),
                        ("labelers.png", "Labelers"), ("records.png", "Records"),
                        ("geography.png", "Geography"), ("heatmap.png", "Heat map"),
                        ("coordinates.png", "Latitude and longitude")):
        if name in files:
            parts.append(f"<h2>{title}</h2><img src='{name}' alt='{title}'>")
        if name == "superclass_distribution.png" and name in files:
            parts.append(f"<p class='note'>Superclasses of {html.escape(atlas.mapping_source)}"
                         "; each record's classes and where they go are in <a href="
                         "'superclass_images.csv'>superclass_images.csv</a>.</p>")
            parts += [f"<p class='note'>{html.escape(n)}</p>" for n in atlas.superclass_notes]
    if "locations.html" in files:
        parts.append("<p><a href='locations.html'>Interactive map of every image "
                     "(locations.html)</a></p>")
    parts += ["<h2>Images per labeler</h2>", _html_table(atlas.labelers)]
    parts.append("<h2>Metadata disagreements</h2>")
    if len(atlas.findings):
        parts.append("<p>Where two columns of a row (or a row and its npz file) say different "
                     "things; every row is in <a href='disagreements.csv'>disagreements.csv</a>."
                     "</p>")
        parts.append(_html_table(_findings_summary(atlas.findings)))
    else:
        parts.append("<p>None found.</p>")
    parts.append("<h2>Files that did not join</h2>")
    if len(atlas.unjoined):
        counts = atlas.unjoined.groupby(["record", "kind"]).size().rename("files").reset_index()
        parts += [_html_table(counts), ("<p>First names (all in <a href='unjoined.csv'>"
                  "unjoined.csv</a>):</p>"), _html_table(atlas.unjoined, 40)]
    elif npz:
        parts.append("<p>Every npz file joined a metadata row.</p>")
    else:
        parts.append("<p>No npz file was given: only the metadata was read.</p>")
    if atlas.npz_errors:
        parts.append("<h2>npz files that could not be read</h2><ul>")
        parts += [f"<li>{html.escape(e)}</li>" for e in atlas.npz_errors[:100]]
        parts.append("</ul>")
    parts.append("</body></html>")
    page = "\n".join(parts)
    return atomic_write(path, lambda fh: fh.write(page.encode("utf-8")))
