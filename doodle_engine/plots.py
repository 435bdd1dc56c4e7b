"""Figures of a validate run (accuracy histogram, IoU per class, disagreement maps), drawn
from the very rows and rebuilt labels the run's table measured."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.artist import setp
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from .colorize import colorize
from .export import safe_stem
from .files import atomic_write, from_printable, result_name
from .inputs import load
from .outputs import PLOT_FILES, kept_label_path, output_stem
from .palette import palette_from
from .reasons import reason
from .record import NO_CLASS


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
        The files written; figures of these names that an earlier run left in ``folder``
        are removed.  ``write_plots.last_note`` says which maps were left out and why;
        ``write_plots.last_maps`` lists (map, file, trial): which result each map shows.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    written, notes, maps, resumed = [], [], [], set()
    if "accuracy" in ok and len(ok):
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        _accuracy_bars(ax, ok["accuracy"].to_numpy(float) * 100)
        ax.set_xlabel("pixel accuracy vs stored label (%)")
        ax.set_ylabel("results (files and trials)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_count_title("Pixel accuracy", ok) + _below_line(ok), fontsize=10)
        fig.tight_layout()
        written.append(_save(fig, folder / "accuracy_hist.png"))
        iou_cols = [c for c in ok.columns if c.startswith("iou_")]
        if iou_cols:
            fig = Figure(figsize=(max(6, len(iou_cols) * 0.6), 4))
            ax = fig.subplots()
            means, counts = ok[iou_cols].mean(), ok[iou_cols].notna().sum()
            ax.bar([c[4:] for c in iou_cols], means.values, color="#DC3912")
            for x, (m, n) in enumerate(zip(means.values, counts.values)):
                ax.text(x, m, f"n={n}", ha="center", va="bottom", fontsize=7)
            ax.set_ylabel("mean IoU over the results with the class (n)", fontsize=9)
            ax.set_ylim(0, 1.08)
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
                        maps.append((written[-1], row["file"], row.get("trial", "") or ""))
                    else:
                        resumed.add(_map_name(row, kept, ()))  # an earlier run's map stays
                        notes.append(f"{result_name(row['file'], row.get('trial'))}: no rebuilt "
                                     "label kept "
                                     "(a row resumed from an earlier run); run without --resume "
                                     "to map it")
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
        else:
            notes.append("no result differs from its stored label: no disagreement map")
    write_plots.last_removed = _remove_earlier_figures(folder, written, resumed)
    write_plots.last_note = notes
    write_plots.last_maps = maps
    return written


write_plots.last_note = []
write_plots.last_maps = []  # (map path, file, trial) of each disagreement map written
write_plots.last_removed = 0  # figures of an earlier run removed from the folder

#: the PNG text chunk ``Software`` of every figure written here: only figures carrying it
#: are ever removed from a --plots folder
PLOT_SOFTWARE = "doodle-engine validate --plots"


def _remove_earlier_figures(folder, written, resumed=()):
    """Remove the figures an earlier run of this function drew in ``folder`` (named as it
    names them and marked :data:`PLOT_SOFTWARE`) that this run did not write, except the
    maps of rows --resume kept (``resumed``: they show what those rows measured): a map of
    an earlier run beside this run's would show a label this run did not measure.  Any
    other file is left alone.  Returns how many were removed."""
    keep = {Path(p).name for p in written} | set(resumed)
    removed = 0
    for p in sorted(folder.iterdir()):
        if p.name not in keep and PLOT_FILES.fullmatch(p.name) and _drawn_here(p):
            p.unlink()
            removed += 1
    return removed


def _drawn_here(path):
    """True for a regular PNG file marked :data:`PLOT_SOFTWARE`."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        with Image.open(path) as im:
            return im.format == "PNG" and im.text.get("Software") == PLOT_SOFTWARE
    except (OSError, ValueError, SyntaxError):
        return False


def _count_title(what, ok):
    trials = int((ok["trial"].fillna("") != "").sum()) if "trial" in ok else 0
    files = ok["file"].nunique() if "file" in ok else len(ok)
    return f"{what}: {files} file(s)" + (f" and {trials} earlier trial(s)" if trials else "")


def _accuracy_bars(ax, percent):
    """The accuracy histogram: results below 100 % in 20 bins, and the results at exactly
    100 % as a bar of their own (a 99.99 % result shared the top bin with them)."""
    below, exact = percent[percent < 100], int((percent >= 100).sum())
    lo = float(below.min()) if len(below) else 99.0
    width = max((100 - lo) / 20, 1e-4)
    label = f"below 100 % ({len(below)})"
    if len(below) and float(below.max()) > lo:
        # the last bin holds its right edge: every result is drawn
        ax.hist(below, bins=np.linspace(lo, float(below.max()), 21), color="#3366CC",
                label=label)
    elif len(below):  # one value: a bar as narrow as a bin (a histogram spans one unit)
        ax.bar(lo, len(below), width=width * 0.8, color="#3366CC", label=label)
    if exact:
        ax.bar(100, exact, width=width * 0.8, color="#109618", label=f"100 % exactly ({exact})")
    ax.set_xlim(lo - width, 100 + width)
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.legend(fontsize=8, loc="upper center")  # the bars stand at the two ends


def _below_line(ok):
    """A title's second line: how many results are below 100 % and their causes, counted."""
    if "accuracy" not in ok:
        return ""
    below = ok[ok["accuracy"] < 1]
    if not len(below):
        return "\nevery result at 100 %"
    words = below["reason"] if "reason" in below else below.apply(reason, axis=1)
    counts = {}
    for text in words.fillna(""):
        for word in filter(None, str(text).split(", ")):
            counts[word] = counts.get(word, 0) + 1
    causes = ", ".join(f"{w} {n}" for w, n in counts.items())
    line = f"{len(below)} below 100 %" + (f" ({causes})" if causes else "")
    return "\n" + "\n".join(textwrap.wrap(line, 70))  # a long list of causes stays on the page


def _map_name(row, kept, written):
    """disagreement_<file stem>[_<trial>].png; when a file of the same name (in another zip
    or folder) already has a map, its record's name goes first (``RECORD__stem``, as
    ``--prefix-record`` names outputs), and the run's digest of the path if that clashes too."""
    trial = f"_trial{row['trial']}" if row.get("trial", "") else ""
    taken = {Path(w).name for w in written}
    for name in (f"disagreement_{safe_stem(row['file'])}{trial}",
                 f"disagreement_{output_stem(row['file'], True)}{trial}"):
        if name + ".png" not in taken:
            return name + ".png"
    return f"disagreement_{kept.stem}.png"


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
    whose = "remapped by doodle-engine" if rec.remapped else "Doodler"
    panels = [(image, "image"), (colorize(stored, names), f"stored label ({whose})"),
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
    why = row.get("reason") if isinstance(row.get("reason"), str) else reason(row)
    fig.suptitle(result_name(path, trial)
                 + f" - {era} ({era_source}), mode {row.get('mode', '?')}: "
                 f"{int(diff.sum()):,} of {diff.size:,} px differ ({acc:.4%} agree)"
                 + (f"\nwhy: {why}" if why else ""))
    fig.tight_layout(rect=(0, 0.08, 1, 0.90 if why else 0.95))
    return _save(fig, Path(folder) / (name or f"disagreement_{safe_stem(path)}{trial}.png"))


def _save(fig, path):
    """A figure as a PNG, atomically (a pyplot-free Figure: no global backend is touched)."""
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100,
                                                     metadata={"Software": PLOT_SOFTWARE}))
