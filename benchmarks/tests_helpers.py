"""Writes synthetic Doodler files of given sizes (a stand-in release for the scale check)."""

from pathlib import Path

import numpy as np

from doodle_engine.example import doodles_for, scene


def write_release(folder, sizes):
    folder = Path(folder) / "results2022-05-04-00-00"
    folder.mkdir(parents=True)
    total = 0.0
    for i, (h, w) in enumerate(sizes):
        h, w = max(h, 24), max(w, 24)
        image, truth = scene(h, w, seed=i)
        np.savez_compressed(folder / f"f{i:03d}.npz", image=image, doodles=doodles_for(truth),
                            settings=np.array([3, 2, 2, 1, 1, 0.9, 2.0]),
                            classes=np.array(["water", "surf", "sand"]))
        total += h * w / 1e6
    return folder, total
