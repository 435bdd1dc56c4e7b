"""Fixtures: small synthetic Doodler files of every era, and the real files when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import realdata
from png_sessions import build_march_session, build_oct_session

from doodle_engine.eras import RECIPES
from doodle_engine.example import doodles_for, scene  # noqa: F401  (shared with tests)
from doodle_engine.rendezvous import NO_SERVER_ENV

# commands the tests start run in their own processes, never in a developer's warm server
# (tests/test_server.py starts its own, with this variable taken out)
os.environ[NO_SERVER_ENV] = "1"

#: the real Doodler files (a local copy, or the published ones fetched: see realdata.py)
REAL_DIR, NO_REAL = realdata.locate()
COAST_DIR = realdata.DATA / "coasttrain"

SETTINGS = {
    "rf-2021-05": [3, 2, 1, 1, 1, 3, 0.9, 1, 16],
    "rf-2021-06": [3, 2, 1, 1, 1, 3, 0.9],
    "mlp-2021-06": [3, 2, 1, 1, 1, 0.9],
    "mlp-2021-10": [3, 2, 1, 1, 1, 0.9, 2],
    "engine-2022-06": [3, 2, 1, 1, 1, 1.0, 2],
}


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
        # dated as Doodler named its results folders: the date picks the era among those
        # sharing a settings layout (an undated file would be matched against its label)
        start = RECIPES[era].start[:10] if era in RECIPES else "2021-10-16"
        folder = tmp_path / f"results{start}-14-00"
        folder.mkdir(exist_ok=True)
        settings = SETTINGS.get(era, SETTINGS["mlp-2021-10"])
        return write_npz(folder / (name or f"{era}.npz"), image, doodles, truth, settings, **kw)

    return make


def real_files():
    return sorted(REAL_DIR.glob("*.npz")) if REAL_DIR is not None else []


needs_real = pytest.mark.skipif(not real_files(), reason=NO_REAL or "no real Doodler files")
needs_coast = pytest.mark.skipif(not COAST_DIR.is_dir(),
                                 reason=f"{COAST_DIR} not present (set {realdata.ENV})")


@pytest.fixture
def oct_session(tmp_path):
    """An October 2020 PNG session (``png_sessions.build_oct_session``)."""
    return build_oct_session(tmp_path)


@pytest.fixture
def march_session(tmp_path):
    """A March 2021 PNG session (``png_sessions.build_march_session``)."""
    return build_march_session(tmp_path)
