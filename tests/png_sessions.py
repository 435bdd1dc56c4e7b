"""PNG-era Doodler sessions written for the tests (October 2020 RGBA, March 2021 RGB doodle
PNGs); ``conftest.py`` makes the two sessions fixtures."""

from __future__ import annotations

import numpy as np
from PIL import Image

from doodle_engine.palette import G10, hex_to_rgb

PAL = np.array([hex_to_rgb(c) for c in G10], np.uint8)
H, W = 12, 16


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 255, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.uint8)  # 0 = undoodled, v = class v-1
    mask[1:3, 1:6] = 1
    mask[5:7, 2:12] = 2
    mask[9:11, 8:15] = 3
    label = np.ones((H, W), np.uint8)  # greyscale: 1-based
    label[4:8] = 2
    label[8:] = 3
    return image, mask, label


def _save(arr, path):
    Image.fromarray(arr).save(path)
    return path


def _oct2020(mask):
    """RGBA, alpha 128, colour G10[(mask - 1) mod 256 mod 10] (uint8 wrap: undoodled = G10[5])."""
    idx = ((mask.astype(np.int64) - 1) % 256) % 10
    rgba = np.concatenate([PAL[idx], np.full(mask.shape + (1,), 128, np.uint8)], axis=2)
    return rgba


def _rgb2021(mask, image):
    """RGB, class k = G10[k], undoodled G10[-1] = (49, 99, 149), black where image band 0 is 0."""
    out = PAL[(mask.astype(np.int64) - 1) % 10]
    out[image[..., 0] == 0] = 0
    return out


def build_oct_session(tmp_path):
    """Doodler's layout of October 2020: <app>/assets/<stem>.png, <app>/results/*.png,
    <app>/classes.txt."""
    app = tmp_path / "app"
    (app / "assets").mkdir(parents=True)
    (app / "results").mkdir()
    (app / "classes.txt").write_text("deep\nwhite\nshallow\ndry\n")
    image, mask, label = _scene(0)
    _save(image, app / "assets" / "cropped3_6.png")
    _save(_oct2020(mask), app / "results" / "cropped3_6_annotations.png")
    _save(label, app / "results" / "cropped3_6_label_greyscale.png")
    _save(PAL[label - 1], app / "results" / "cropped3_6_label.png")
    return app, image, mask, label


def build_march_session(tmp_path):
    """Doodler's layout of March 2021: results/results2021-03-24-21-31/<stem>_<kind><ts>_<id>.png,
    images in assets/ beside results/, classes.txt in the app folder."""
    app = tmp_path / "app"
    folder = app / "results" / "results2021-03-24-21-31"
    folder.mkdir(parents=True)
    (app / "assets").mkdir()
    (app / "classes.txt").write_text("water\nland\nsand\n")
    out = {}
    for stem, seed, t_ann, t_lab in (("img_b", 1, "2021-03-24-21-38", "2021-03-24-21-39"),
                                     ("img_a", 2, "2021-03-24-21-33", "2021-03-24-21-33")):
        image, mask, label = _scene(seed)
        image[0, :4, 0] = 0  # Doodler blacked out pixels whose band 0 is 0
        mask[0, :4] = 1      # a doodle there is lost
        _save(image, app / "assets" / f"{stem}.png")
        _save(_rgb2021(mask, image), folder / f"{stem}_annotations{t_ann}_db.png")
        _save(label, folder / f"{stem}_label_greyscale{t_lab}_db.png")
        _save(PAL[label - 1], folder / f"{stem}_label{t_lab}_db.png")
        lost = mask.copy()
        lost[0, :4] = 0
        out[stem] = (image, lost, label)
    return folder, out
