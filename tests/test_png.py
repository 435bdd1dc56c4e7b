"""PNG-era Doodler sessions (October 2020 RGBA and November 2020+ RGB doodle PNGs)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from doodle_engine import png as ps
from doodle_engine.palette import G10, hex_to_rgb
from doodle_engine.errors import DoodleError
from doodle_engine.record import DoodleRecord, NO_CLASS

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


@pytest.fixture
def oct_session(tmp_path):
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


def test_october_2020_rgba_session(oct_session):
    app, image, mask, label = oct_session
    entries = ps.read_png_session(app / "results")
    assert len(entries) == 1
    e = entries[0]
    assert e["convention"] == ps.RGBA_2020
    assert np.array_equal(e["image"], image)
    assert np.array_equal(e["doodles"], mask)
    assert np.array_equal(e["label"], label - 1)
    assert e["label_layout"] == "raster"
    assert e["classes"] == ["deep", "white", "shallow", "dry"]
    assert e["classes_source"] == "classes.txt"
    assert e["date"] is None and e["time"] is None and e["order_known"] is False
    assert e["files"]["image"].endswith("assets/cropped3_6.png")
    assert np.array_equal(e["color_label"], PAL[label - 1])
    rec = ps.to_record(e)
    assert isinstance(rec, DoodleRecord)
    assert rec.doodled_classes() == [0, 1, 2] and rec.n_classes == 4 and rec.settings is None


def test_undoodled_colour_is_g10_5_in_october_2020():
    _, mask, _ = _scene(0)
    ann = _oct2020(mask)
    assert tuple(ann[0, 0]) == (0, 153, 198, 128)  # the wrapped "class 255"
    doodles, notes = ps.decode_annotations(ann, 4)
    assert np.array_equal(doodles, mask) and notes == []


def test_six_classes_october_2020_says_class_5_is_ambiguous():
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 1
    doodles, notes = ps.decode_annotations(_oct2020(mask), 6)
    assert doodles[0, 0] == 1 and doodles.sum() == 1
    assert any("class 5" in n and "undoodled" in n for n in notes)


@pytest.fixture
def march_session(tmp_path):
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


def test_march_2021_rgb_session_in_time_order(march_session):
    folder, truth = march_session
    entries = ps.read_png_session(folder)
    assert [ps.parse_name(e["files"]["annotations"])["stem"] for e in entries] == ["img_a", "img_b"]
    assert [e["time"] for e in entries] == ["21:33", "21:38"]
    assert all(e["date"] == "2021-03-24" and e["session_date"] == "2021-03-24" for e in entries)
    assert all(e["order_known"] and e["user_id"] == "db" for e in entries)
    for e in entries:
        image, doodles, label = truth[ps.parse_name(e["files"]["annotations"])["stem"]]
        assert e["convention"] == ps.RGB_2020
        assert np.array_equal(e["doodles"], doodles)
        assert np.array_equal(e["label"], label - 1)
        assert any("black" in n for n in e["notes"])
        assert e["files"]["label_greyscale"].endswith("_db.png")
    assert [e["order"] for e in entries] == [0, 1]


def test_triple_and_classes_argument(march_session):
    folder, truth = march_session
    image, doodles, label = truth["img_a"]
    app = folder.parent.parent
    e = ps.read_png_triple(app / "assets" / "img_a.png",
                           folder / "img_a_annotations2021-03-24-21-33_db.png",
                           folder / "img_a_label_greyscale2021-03-24-21-33_db.png",
                           classes=["w", "l", "s"])
    assert e["classes"] == ["w", "l", "s"] and e["classes_source"] == "user"
    assert e["date"] == "2021-03-24" and e["time"] == "21:33"
    assert np.array_equal(e["doodles"], doodles) and np.array_equal(e["label"], label - 1)


def test_unknown_colour_is_one_clear_error(oct_session):
    app, image, mask, label = oct_session
    ann = _oct2020(mask)
    ann[0, 0:3, :3] = (1, 2, 3)
    path = _save(ann, app / "results" / "cropped3_6_annotations.png")
    with pytest.raises(DoodleError) as err:
        ps.read_png_session(app / "results")
    msg = str(err.value)
    assert str(path) in msg and "(1, 2, 3) x 3 px" in msg and "rgba-2020-10" in msg
    assert "\n" not in msg


def test_class_beyond_classes_file_is_an_error(oct_session):
    app, image, mask, label = oct_session
    (app / "classes.txt").write_text("deep\nwhite\n")  # 2 classes; doodles use 3
    with pytest.raises(DoodleError, match=r"\(255, 153, 0\) x"):
        ps.read_png_session(app / "results")


def test_label_png_of_another_size(oct_session):
    app, image, mask, label = oct_session
    path = _save(np.ones((H + 1, W), np.uint8), app / "results" / "cropped3_6_label_greyscale.png")
    with pytest.raises(DoodleError, match="label PNG is 16x13") as err:
        ps.read_png_session(app / "results")
    assert str(path) in str(err.value)


def test_label_value_beyond_classes(oct_session):
    app, image, mask, label = oct_session
    bad = label.copy()
    bad[0, 0] = 7
    _save(bad, app / "results" / "cropped3_6_label_greyscale.png")
    with pytest.raises(DoodleError, match="label value 7 is beyond the 4 classes"):
        ps.read_png_session(app / "results")


def test_label_zero_is_no_class(oct_session):
    app, image, mask, label = oct_session
    z = label.copy()
    z[0, 0] = 0
    _save(z, app / "results" / "cropped3_6_label_greyscale.png")
    e = ps.read_png_session(app / "results")[0]
    assert e["label"][0, 0] == NO_CLASS and e["label"][0, 1] == 0


def test_annotation_of_another_size(oct_session):
    app, image, mask, label = oct_session
    _save(_oct2020(np.zeros((H, W + 2), np.uint8)), app / "results" / "cropped3_6_annotations.png")
    with pytest.raises(DoodleError, match="annotation PNG is 18x12"):
        ps.read_png_session(app / "results")


def test_empty_folder_and_folder_without_doodle_pngs(tmp_path):
    with pytest.raises(DoodleError, match="holds no Doodler doodle PNGs"):
        ps.read_png_session(tmp_path)
    _save(np.zeros((4, 4, 3), np.uint8), tmp_path / "photo.png")
    with pytest.raises(DoodleError, match="holds no Doodler doodle PNGs"):
        ps.read_png_session(tmp_path)
    with pytest.raises(DoodleError, match="no such folder"):
        ps.read_png_session(tmp_path / "nope")


def test_missing_image_error_or_skip(oct_session):
    app, image, mask, label = oct_session
    _save(_oct2020(mask), app / "results" / "ghost_annotations.png")
    with pytest.raises(DoodleError, match="no image ghost.jpg"):
        ps.read_png_session(app / "results")
    entries = ps.read_png_session(app / "results", missing="skip")
    assert [ps.parse_name(e["path"])["stem"] for e in entries] == ["cropped3_6"]


def test_images_folder_argument(oct_session, tmp_path):
    app, image, mask, label = oct_session
    other = tmp_path / "elsewhere"
    other.mkdir()
    (app / "assets" / "cropped3_6.png").rename(other / "cropped3_6.png")
    e = ps.read_png_session(app / "results", images=other)[0]
    assert np.array_equal(e["image"], image)


def test_parse_names_of_every_period():
    assert ps.parse_name("cropped3_6_label_greyscale.png") == {
        "stem": "cropped3_6", "kind": "label_greyscale", "ts": None, "id": None}
    assert ps.parse_name("D800_20160308_222129lr02_annotations2021-03-24-21-33_db.png") == {
        "stem": "D800_20160308_222129lr02", "kind": "annotations", "ts": "2021-03-24-21-33",
        "id": "db"}
    assert ps.parse_name("x_annotations2021-01-27-13-36-04.png")["ts"] == "2021-01-27-13-36-04"
    assert ps.parse_name("x.jpg") is None
    assert ps.session_date("results30-10-2020-20-16-11") == ("2020-10-30", "20:16:11")
    assert ps.session_date("results2021-03-24-21-31") == ("2021-03-24", "21:31")
    assert ps.session_date("results") == (None, None)


# ----------------------------------------------------------------------------- Doodler's history
MIRROR = "/work/.mirror/Doodleverse+dash_doodler/repo"


def _cases_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "doodler_cases.py"
    spec = importlib.util.spec_from_file_location("doodler_cases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not __import__("os").path.isdir(MIRROR), reason="no dash_doodler mirror")
def test_history_sessions_build_and_read(tmp_path):
    dc = _cases_module()
    sessions = {s["name"]: s for s in dc.list_sessions(MIRROR)}
    assert "2020-10-17_ba61375_results" in sessions
    march = sessions["2021-03-24_647a0de_results2021-03-24-21-31"]
    assert len(march["cases"]) == 6 and not march["left_out"]
    left = {c["stem"]: c["why"] for c in sessions["2020-10-18_7245668_results"]["left_out"]}
    assert any("sizes differ" in w for w in left["cropped2_24"])
    (folder,) = dc.build(tmp_path, [march["name"]], MIRROR)
    entries = ps.read_png_session(folder)
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
    assert all(e["convention"] == ps.RGB_2020 and e["classes"] == ["water", "land"] for e in entries)
    with pytest.raises(dc.MirrorError, match="never written inside the repository"):
        dc.build(dc.Path(__file__).resolve().parents[1] / "cases", None, MIRROR)


def test_light24_session_of_twelve_classes():
    from doodle_engine.palette import LIGHT24

    pal = np.array([hex_to_rgb(c) for c in LIGHT24], np.uint8)
    mask = np.zeros((6, 6), np.uint8)
    mask[0, :] = 12
    mask[1, :] = 1
    ann = pal[(mask.astype(np.int64) - 1) % 24]  # undoodled = Light24[-1]
    doodles, notes = ps.decode_annotations(ann, 12, convention=ps.RGB_2020)
    assert np.array_equal(doodles, mask) and notes == []


def test_rgb_unknown_black_without_zero_band0(march_session):
    folder, truth = march_session
    image, doodles, label = truth["img_a"]
    ann = _rgb2021(doodles, image)
    ann[5, 5] = 0  # black where the image's band 0 is not 0: no class
    with pytest.raises(DoodleError, match=r"\(0, 0, 0\) x 1 px"):
        ps.decode_annotations(ann, 3, image=image, path="x.png")


def test_date_argument_for_an_undated_folder(oct_session):
    app, image, mask, label = oct_session
    e = ps.read_png_session(app / "results", date="2020-10-17")[0]
    assert e["date"] == "2020-10-17" and e["session_date"] == "2020-10-17" and e["time"] is None
