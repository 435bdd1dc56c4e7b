"""Fixtures: small synthetic Doodler files of every era, and the real files when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_DIR = SHARED / "data" / "doodler"
COAST_DIR = SHARED / "data" / "coasttrain"

SETTINGS = {
    "rf-2021-05": [3, 2, 1, 1, 1, 3, 0.9, 1, 16],
    "rf-2021-06": [3, 2, 1, 1, 1, 3, 0.9],
    "mlp-2021-06": [3, 2, 1, 1, 1, 0.9],
    "mlp-2021-10": [3, 2, 1, 1, 1, 0.9, 2],
    "engine-2022-06": [3, 2, 1, 1, 1, 1.0, 2],
}


def scene(h=48, w=64, seed=0):
    """A real-looking 3-class coastal scene: water (blue), surf (white), sand (tan),
    with texture noise; returns (image uint8 HxWx3, truth 0-based HxW)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    shore = 0.45 * w + 4 * np.sin(yy / 6.0)
    truth = np.where(xx < shore - 5, 0, np.where(xx < shore + 5, 1, 2))
    colours = np.array([[30, 70, 140], [230, 235, 240], [200, 175, 120]], float)
    img = colours[truth] + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), truth


def doodles_for(truth, classes=(0, 1, 2)):
    """Strokes inside each class region at three heights, as a labeller draws them
    (value = class + 1)."""
    d = np.zeros(truth.shape, np.uint8)
    h, w = truth.shape
    for c in classes:
        for row in (h // 6, h // 2, 5 * h // 6):
            xs = np.flatnonzero(truth[row] == c)
            if xs.size > 2:
                xs = xs[1:-1]
                d[row, xs] = c + 1
                d[min(row + 1, h - 1), xs[truth[min(row + 1, h - 1), xs] == c]] = c + 1
    return d


def write_npz(path, image, doodles, label=None, settings=None, classes=("water", "surf", "sand"),
              onehot=True, extra=None):
    arrays = {"image": image, "doodles": doodles}
    if label is not None:
        if onehot:
            k = int(label.max()) + 1
            arrays["label"] = (np.arange(k) == label[..., None]).astype(np.uint8)
        else:
            arrays["label"] = label.astype(np.uint8)
    if settings is not None:
        arrays["settings"] = np.array(settings, float)
    if classes is not None:
        arrays["classes"] = np.array(classes)
    arrays.update(extra or {})
    np.savez_compressed(path, **arrays)
    return Path(path)


@pytest.fixture
def synthetic(tmp_path):
    """Factory: synthetic(era, **kw) -> path of a Doodler npz with a stored label."""

    def make(era="mlp-2021-10", name=None, h=48, w=64, seed=0, **kw):
        image, truth = scene(h, w, seed)
        doodles = doodles_for(truth)
        folder = tmp_path / ("results2022-05-04-14-00" if era == "mlp-2022-05" else "results")
        folder.mkdir(exist_ok=True)
        settings = SETTINGS.get(era, SETTINGS["mlp-2021-10"])
        return write_npz(folder / (name or f"{era}.npz"), image, doodles, truth, settings, **kw)

    return make


def real_files():
    return sorted(REAL_DIR.glob("*.npz")) if REAL_DIR.is_dir() else []


needs_real = pytest.mark.skipif(not real_files(), reason="../shared/data/doodler not present")
needs_coast = pytest.mark.skipif(not COAST_DIR.is_dir(), reason="../shared/data/coasttrain not present")
