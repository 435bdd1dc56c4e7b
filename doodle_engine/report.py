"""Tables, summaries and figures for folder-wide runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DoodleError


def print_table(frame):
    cols = [c for c in ("file", "trial", "era", "height", "width", "differ", "accuracy",
                        "accuracy_min", "accuracy_median", "accuracy_max", "runner_up",
                        "runner_up_differ", "mean_iou", "kappa", "seconds", "error")
            if c in frame]
    if not len(frame):
        print("(no files)")
        return
    view = frame[cols].copy()
    if "file" in view:
        view["file"] = view["file"].map(lambda f: Path(str(f)).name[-60:])
    with pd.option_context("display.max_rows", 500, "display.width", 200,
                           "display.max_colwidth", 70):
        print(view.to_string(index=False, float_format=lambda v: f"{v:.5f}"))


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


def write_report(frame, path):
    """Write a table as .csv or .parquet, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".part")
    try:
        if path.suffix.lower() == ".parquet":
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError:
                raise DoodleError(path, "writing Parquet needs pyarrow (pip install pyarrow)") from None
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    summary = summarize(frame)
    summary.to_csv(path.with_name(path.stem + "_summary.csv"), index=False)
    return path


def write_plots(frame, folder, worst=3):
    """accuracy histogram, per-class IoU bars, and disagreement maps of the worst files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    written = []
    if "accuracy" in ok and len(ok):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(ok["accuracy"] * 100, bins=20, color="#3366CC")
        ax.set_xlabel("pixel accuracy vs stored label (%)")
        ax.set_ylabel("files")
        fig.tight_layout()
        written.append(_save(fig, folder / "accuracy_hist.png"))
        iou_cols = [c for c in ok.columns if c.startswith("iou_")]
        if iou_cols:
            fig, ax = plt.subplots(figsize=(max(6, len(iou_cols) * 0.6), 4))
            means = ok[iou_cols].mean()
            ax.bar([c[4:] for c in iou_cols], means.values, color="#DC3912")
            ax.set_ylabel("mean IoU")
            ax.set_ylim(0, 1)
            plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
            fig.tight_layout()
            written.append(_save(fig, folder / "class_iou.png"))
        for _, row in ok.nsmallest(worst, "accuracy").iterrows():
            written.append(disagreement_map(row["file"], folder, trial=row.get("trial", "")))
    return written


def disagreement_map(path, folder, trial=""):
    """image | stored | rebuilt | where they differ, for one file."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .colorize import colorize
    from .export import safe_stem
    from .io import load
    from .reconstruct import reconstruct

    rec = load(path)
    if trial:
        rec = next(t for t in rec.trials if t.trial_prefix == trial)
    res = reconstruct(rec)
    diff = rec.label != res.label0
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.5))
    panels = [(rec.image[..., :3], "image"), (colorize(rec.label, rec.classes), "stored"),
              (colorize(res.label0, rec.classes), "rebuilt"),
              (np.where(diff[..., None], [255, 0, 0], rec.image[..., :3] // 3).astype(np.uint8),
               f"differ: {int(diff.sum())} px")]
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(Path(path).name + (f" [trial {trial}]" if trial else ""))
    fig.tight_layout()
    return _save(fig, Path(folder) / f"disagreement_{safe_stem(path)}{trial}.png")


def _save(fig, path):
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
