"""Writes synthetic Doodler files of given sizes (a stand-in release for the scale check)."""

from pathlib import Path

import numpy as np

from doodle_engine.example import doodles_for, scene

DEFAULT_SETTINGS = (3, 2, 2, 1, 1, 0.9, 2)  # pen, CRF ds, classifier ds, theta, mu, gt_prob, n_sigmas


def write_release(folder, sizes, settings=None, dated=True):
    """One file per (height, width); ``settings``: one 7-value settings row per file (default:
    the same row for all).  ``dated``: in a results folder of 2022-05-04, so the MLP rows are
    of the 2022 era (one CRF run); else undated, as the Coast Train files are, so the engine
    assumes the late-2021 era for them (five rolled CRF runs)."""
    folder = Path(folder) / ("results2022-05-04-00-00" if dated else "release")
    folder.mkdir(parents=True)
    total = 0.0
    for i, (h, w) in enumerate(sizes):
        h, w = max(h, 24), max(w, 24)
        image, truth = scene(h, w, seed=i)
        row = settings[i] if settings is not None else DEFAULT_SETTINGS
        np.savez_compressed(folder / f"f{i:03d}.npz", image=image, doodles=doodles_for(truth),
                            settings=np.array(row, dtype=float),
                            classes=np.array(["water", "surf", "sand"]))
        total += h * w / 1e6
    return folder, total
