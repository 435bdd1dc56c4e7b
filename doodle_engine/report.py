"""Tables, summaries and figures for folder-wide runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.artist import setp
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch
from scipy import ndimage
from tqdm import tqdm

from .colorize import colorize
from .errors import DoodleError
from .export import safe_stem
from .files import atomic_write, from_printable, short_name
from .inputs import load
from .outputs import kept_label_path
from .palette import palette_from
from .record import NO_CLASS

TABLE_COLUMNS = ("file", "trial", "era", "era_source", "mode", "height", "width", "differ",
                 "accuracy", "accuracy_min", "accuracy_median", "accuracy_max", "runner_up",
                 "runner_up_differ", "mean_iou", "kappa", "seconds", "skipped", "error")


def print_table(frame, columns=TABLE_COLUMNS):
    """Print a batch table: the file's name in full (not its path, never cut), the era used
    and where it came from (``era_source``), and the measurements."""
    cols = [c for c in columns if c in frame]
    if not len(frame):
        print("(no results)")
        return
    view = frame[cols].copy()
    if "file" in view:
        view["file"] = view["file"].map(short_name)
    for c in ("era", "era_source", "runner_up", "trial", "skipped", "mode", "error"):
        if c in view:  # a row that made no such choice shows nothing, not NaN
            view[c] = view[c].fillna("")
    if "runner_up_differ" in view:  # pixels, blank where no runner-up was rebuilt
        view["runner_up_differ"] = view["runner_up_differ"].map(
            lambda v: "" if pd.isna(v) else f"{int(v)}")
    for c in ("height", "width", "differ"):  # whole numbers, also beside failed rows
        if c in view:
            view[c] = pd.to_numeric(view[c], errors="coerce").round().astype("Int64")
    texts = [c for c in ("file", "trial", "era", "era_source", "runner_up", "mode", "skipped",
                         "error")
             if c in view]
    formatters = {}
    for c in texts:  # text columns aligned left
        width = max([len(c)] + [len(str(v)) for v in view[c]])
        formatters[c] = lambda v, width=width: f"{str(v):<{width}}"
    with pd.option_context("display.max_rows", None, "display.width", 10_000,
                           "display.max_colwidth", None):
        print(view.to_string(index=False, float_format=lambda v: f"{v:.5f}",
                             formatters=formatters, justify="left"))


def summarize(frame):
    """Per record and overall: files, Mpx, median / worst accuracy, slowest file."""
    ok = frame[frame.get("error", pd.Series([""] * len(frame))) == ""]
    groups = [("ALL", ok)] + ([(r, g) for r, g in ok.groupby("record")] if "record" in ok else [])
    rows = []
    for name, g in groups:
        row = {"record": name, "files": len(g), "mpx": g["mpx"].sum() if "mpx" in g else np.nan}
        if "accuracy" in g and len(g):
            row.update({"median_accuracy": g["accuracy"].median(),
                        "worst_accuracy": g["accuracy"].min(),
                        "worst_file": g.loc[g["accuracy"].idxmin(), "file"]})
        if "seconds" in g and len(g):
            row.update({"seconds": g["seconds"].sum(),
                        "slowest_file": g.loc[g["seconds"].idxmax(), "file"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _write_frame(frame, path):
    """One table as .csv or .parquet, atomically, with the permissions of a normal write."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401, PLC0415  optional: only a Parquet table needs it
        except ImportError:
            raise DoodleError(path, "writing Parquet needs pyarrow (pip install pyarrow)") from None
        return atomic_write(path, lambda fh: frame.to_parquet(fh, index=False))
    return atomic_write(path, lambda fh: fh.write(frame.to_csv(index=False).encode("utf-8")))


def write_report(frame, path):
    """Write a table as .csv or .parquet, atomically, and ``<stem>_summary.csv`` beside it
    (:func:`summarize`).  Returns the table's path."""
    path = Path(path)
    _write_frame(frame, path)
    _write_frame(summarize(frame), path.with_name(path.stem + "_summary.csv"))
    return path


def write_plots(frame, folder, labels_dir=None, max_maps=20, progress=False, classes=None,
                allow_pickle=False):
    """Figures of a validation table: accuracy histogram, mean IoU per class, and a
    disagreement map for each result that differs from its stored label (the worst
    ``max_maps``).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table :func:`doodle_engine.batch.run_batch` returned for ``"validate"``.
    folder : path
        Where the PNG files go (created).
    labels_dir : path, optional
        The folder given to ``run_batch(labels_dir=...)``: the rebuilt labels of the results
        that differ, from the same run as the table.  Without it no disagreement map is
        drawn (nothing is rebuilt a second time).
    max_maps : int
        At most this many disagreement maps, the lowest accuracy first.
    progress : bool
        Show a progress bar over the maps.
    classes, allow_pickle
        As given to the run, to read the stored labels and images again.

    Returns
    -------
    list of pathlib.Path
        The files written.  ``write_plots.last_note`` says which maps were left out and why.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    written, notes = [], []
    if "accuracy" in ok and len(ok):
        n = len(ok)
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        ax.hist(ok["accuracy"] * 100, bins=20, color="#3366CC")
        ax.set_xlabel("pixel accuracy vs stored label (%)")
        ax.set_ylabel("results (files and trials)")
        ax.set_title(_count_title("Pixel accuracy", ok))
        fig.tight_layout()
        written.append(_save(fig, folder / "accuracy_hist.png"))
        iou_cols = [c for c in ok.columns if c.startswith("iou_")]
        if iou_cols:
            fig = Figure(figsize=(max(6, len(iou_cols) * 0.6), 4))
            ax = fig.subplots()
            means = ok[iou_cols].mean()
            ax.bar([c[4:] for c in iou_cols], means.values, color="#DC3912")
            ax.set_ylabel("mean IoU")
            ax.set_ylim(0, 1)
            ax.set_title(_count_title("Mean IoU per class", ok))
            setp(ax.get_xticklabels(), rotation=45, ha="right")
            fig.tight_layout()
            written.append(_save(fig, folder / "class_iou.png"))
        differ = ok[ok["differ"] > 0] if "differ" in ok else ok.iloc[:0]
        if len(differ) and labels_dir is None:
            notes.append(f"{len(differ)} results differ; no disagreement map drawn "
                         "(the rebuilt labels were not kept)")
        elif len(differ):
            worst = differ.sort_values("accuracy", kind="stable").head(max_maps)
            if len(differ) > len(worst):
                notes.append(f"disagreement maps for the worst {len(worst)} of {len(differ)} "
                             "results that differ (raise --max-maps for more)")
            bar = None
            if progress:
                bar = tqdm(total=len(worst), unit="map", desc="plots", dynamic_ncols=True)
            try:
                for _, row in worst.iterrows():
                    kept = kept_label_path(labels_dir, row["file"], row.get("trial", ""))
                    if kept.exists():
                        name = _map_name(row, kept, written)
                        written.append(disagreement_map(row, kept, folder, classes=classes,
                                                         allow_pickle=allow_pickle, name=name))
                    else:
                        notes.append(f"{short_name(row['file'])} {row.get('trial', '')}: "
                                     "no rebuilt label kept (a row resumed from an earlier "
                                     "run); run without --resume to map it")
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
        else:
            notes.append("no result differs from its stored label: no disagreement map")
    write_plots.last_note = notes
    return written


write_plots.last_note = []


def _count_title(what, ok):
    trials = int((ok["trial"].fillna("") != "").sum()) if "trial" in ok else 0
    files = ok["file"].nunique() if "file" in ok else len(ok)
    return f"{what}: {files} file(s)" + (f" and {trials} earlier trial(s)" if trials else "")


def _map_name(row, kept, written):
    """disagreement_<file stem>[_<trial>].png, with the run's digest of the path added when
    two files of the same name (in different folders) both need a map."""
    trial = row.get("trial", "") or ""
    name = f"disagreement_{safe_stem(row['file'])}" + (f"_trial{trial}" if trial else "")
    if any(Path(w).name == name + ".png" for w in written):
        name = f"disagreement_{kept.stem}"
    return name + ".png"


def _marked(diff, image_rgb, panel_px=400):
    """The image dimmed, with differing pixels in magenta grown so that each shows as at least
    about two screen pixels on a panel ``panel_px`` wide, whatever the image size."""
    h, w = diff.shape
    radius = max(0, int(np.ceil(max(h, w) / panel_px)))
    grown = ndimage.binary_dilation(diff, iterations=radius) if radius and diff.any() else diff
    base = (image_rgb.astype(np.float32) * 0.35 + 60).astype(np.uint8)
    return np.where(grown[..., None], np.array([255, 0, 255], np.uint8), base), grown


def disagreement_map(row, kept_label, folder, classes=None, allow_pickle=False, name=None):
    """image | stored | rebuilt | where they differ, for one result of a validation table.

    The rebuilt label is read from ``kept_label`` (saved by the run that measured the row);
    the stored label and the image are read from the npz again.  Differing pixels are drawn
    in magenta, grown to stay visible at any image size, and circled when they are few; a legend
    names the classes and their colours."""

    path, trial = str(row["file"]), row.get("trial", "") or ""
    rec = load(from_printable(path), classes=classes, allow_pickle=allow_pickle)
    if trial:
        rec = next(t for t in rec.trials if t.trial_prefix == trial)
    with np.load(kept_label) as z:
        rebuilt = z["label"]
    stored = rec.label
    diff = stored != rebuilt
    names = rec.classes or [str(i) for i in range(max(rec.n_classes, 1))]
    present = sorted(set(np.unique(stored).tolist()) | set(np.unique(rebuilt).tolist()))
    n = max([len(names)] + [v + 1 for v in present if v != NO_CLASS])
    names = list(names) + [str(i) for i in range(len(names), n)]
    pal = palette_from(None, n)
    image = rec.image[..., :3] if rec.image.ndim == 3 else np.repeat(rec.image[..., None], 3, 2)
    image = image.astype(np.uint8) if image.dtype != np.uint8 else image
    marked, grown = _marked(diff, image)
    h, w = diff.shape
    fig = Figure(figsize=(16, 4.2 * h / w + 1.6))
    axes = fig.subplots(1, 4)
    panels = [(image, "image"), (colorize(stored, names), "stored label (Doodler)"),
              (colorize(rebuilt, names), "rebuilt label"),
              (marked, f"differ: {int(diff.sum()):,} px (magenta)")]
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    comps, k = ndimage.label(grown)
    if 0 < k <= 30:
        for sl in ndimage.find_objects(comps):
            cy, cx = (sl[0].start + sl[0].stop - 1) / 2, (sl[1].start + sl[1].stop - 1) / 2
            r = max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) / 2 + max(h, w) / 40
            axes[3].add_patch(Circle((cx, cy), r, fill=False, color="yellow", lw=1.2))
    handles = [Patch(color=pal[i] / 255, label=f"{i}: {names[i]}") for i in range(n)
               if i in present]
    if NO_CLASS in present:
        handles.append(Patch(color="black", label="no class"))
    handles.append(Patch(color="magenta", label="differs"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False)
    acc = row.get("accuracy", float("nan"))
    era = row.get("era", "")
    era_source = row.get("era_source", "")
    fig.suptitle(f"{short_name(path)}" + (f" [trial {trial}]" if trial else "")
                 + f" - {era} ({era_source}), mode {row.get('mode', '?')}: "
                 f"{int(diff.sum()):,} of {diff.size:,} px differ ({acc:.4%} agree)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return _save(fig, Path(folder) / (name or f"disagreement_{safe_stem(path)}{trial}.png"))


def _save(fig, path):
    """A figure as a PNG, atomically (a pyplot-free Figure: no global backend is touched)."""
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))


def _metadata(paths):
    frames = []
    for p in paths or []:
        try:
            m = pd.read_csv(p)
        except (OSError, pd.errors.ParserError) as exc:
            raise DoodleError(p, f"cannot read metadata CSV: {exc}") from None
        if "annotation_image_filename" not in m:
            raise DoodleError(p, "metadata CSV lacks the 'annotation_image_filename' column")
        m["file_name"] = m["annotation_image_filename"].map(lambda s: Path(str(s)).name)
        m["metadata_csv"] = Path(p).name
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else None


def stats_summary(table):
    """A short view of the ``stats`` job's rows (before any metadata join, whose columns may
    start with ``px_`` too): per class, the pixels over all files, their share, and in how
    many files the class occurs."""
    px = [c for c in table.columns if c.startswith("px_")]
    ok = table[table["error"] == ""] if "error" in table else table
    rows = []
    total = ok[px].fillna(0).to_numpy().sum() if px else 0
    for c in px:
        n = ok[c].fillna(0)
        rows.append({"class": c[3:], "pixels": int(n.sum()),
                     "fraction": n.sum() / total if total else float("nan"),
                     "files": int((n > 0).sum())})
    return pd.DataFrame(rows, columns=["class", "pixels", "fraction", "files"])


def class_stats(frame, metadata=None):
    """Per-file class-pixel counts and fractions, joined to Coast Train metadata on the npz
    file name when given (column order differs between records: columns are matched by
    name; ``prob_of_unary_potential`` is kept but flagged where it is not a probability)."""
    px = [c for c in frame.columns if c.startswith("px_")]
    out = frame.copy()
    if px:
        total = out[px].fillna(0).sum(axis=1).replace(0, np.nan)
        for c in px:
            out["frac_" + c[3:]] = out[c] / total
    meta = _metadata(metadata)
    if meta is not None and "file_name" in out:
        out = out.merge(meta, on="file_name", how="left", suffixes=("", "_meta"))
        if "prob_of_unary_potential" in out:
            p = pd.to_numeric(out["prob_of_unary_potential"], errors="coerce")
            out["prob_of_unary_potential_suspect"] = ~((p > 0) & (p <= 1))
    return out
