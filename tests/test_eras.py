"""Era recipes: consistency, every stage option against a straightforward computation, and
synthetic files of every era; the era told from the file; the forest seed spread."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydensecrf.utils as dutils
import pytest
from conftest import needs_real, real_files, write_npz
from scipy import ndimage
from skimage import img_as_float32
from skimage.filters.rank import median
from skimage.morphology import disk
from skimage.transform import resize

from doodle_engine import ERAS, DoodleError, crf, load, reconstruct
from doodle_engine.classifier import make_classifier, n_trees, training_rows
from doodle_engine.cleanup import median_disk
from doodle_engine.cli import main
from doodle_engine.era_match import BEST_MATCH, BEST_MATCH_EXACT, BEST_MATCH_TIE, match_era
from doodle_engine.eras import CONSTRAINTS, RECIPES, Recipe, era_for_date, recipe, recipes_for_layout
from doodle_engine.example import doodles_for, scene
from doodle_engine.features import era_features, feature_matrix
from doodle_engine.jobs import validate_file
from doodle_engine.reconstruct import roll_offsets
from doodle_engine.settings import decode_settings, settings_for_era
from doodle_engine.standardize import colour_indices, crf_image, standardize

OLD_NAMES = ["rf-2021-05", "rf-2021-06", "mlp-2021-06", "mlp-2021-10", "mlp-2022-05",
             "engine-2022-06"]
LAYOUT_VALUES = {"9": [3, 2, 1, 1, 1, 3, 0.9, 1, 16], "7rf": [3, 2, 1, 1, 1, 3, 0.9],
                 "6": [3, 2, 1, 1, 1, 0.9], "7mlp": [3, 2, 1, 1, 1, 0.9, 2],
                 "7engine": [3, 2, 1, 1, 1, 1.0, 2]}


def _has_pydensecrf():
    return crf.pydensecrf_available()


# ----------------------------------------------------------------------------- consistency
def test_recipes_are_consistent():
    assert list(ERAS) == list(RECIPES)
    assert set(OLD_NAMES) <= set(RECIPES)
    assert RECIPES["rf-2020-10a"].commits[0] == "d2fee31"
    for r in RECIPES.values():
        assert r.commits and r.description and r.start < r.end, r.name
        assert set(r.layouts) <= {"none", "9", "7rf", "6", "7mlp", "7engine"}, r.name
        assert r.holds(r.start) and not r.holds(r.end) and r.holds(r.start[:10])
        assert r.classifier in ("rf", "mlp") and r.crf_flow in ("rolled", "kludge", "engine")
        if r.classifier == "rf":
            s = (settings_for_era(r.name) if r.layouts == ("none",)
                 else decode_settings(LAYOUT_VALUES[r.layouts[0]], era=r.name))
            assert n_trees(r, s) >= 1
        if r.layouts == ("none",):
            assert r.label_encoding == "png" and settings_for_era(r.name).layout == 0
    for layout in ("none", "9", "7rf", "6", "7mlp", "7engine"):
        rs = recipes_for_layout(layout)
        assert rs, layout
        for a, b in zip(rs, rs[1:]):  # ordered, not overlapping (to the minute)
            assert a.start < b.start and a.end <= b.start, (a.name, b.name)



def test_every_recipe_value_is_the_snapshot_taken_before_eras_were_derived():
    """tests/data/recipes.json: every field of every era, as ``repr`` (so 3 and 3.0, a tuple
    and a list differ), written from the recipes before they were derived one from another
    with ``dataclasses.replace`` (issue 26).  Any change to a recipe value shows here."""
    snapshot = json.loads((Path(__file__).parent / "data" / "recipes.json").read_text())
    now = {name: {f.name: repr(getattr(r, f.name)) for f in dataclasses.fields(r)}
           for name, r in RECIPES.items()}
    assert list(now) == list(snapshot)  # the same eras, oldest first
    for name, values in snapshot.items():
        assert now[name] == values, name


def test_every_recipe_field_has_a_constraint_and_a_bad_value_is_refused():
    assert set(CONSTRAINTS) == {f.name for f in dataclasses.fields(Recipe)}
    r = RECIPES["mlp-2021-10"]
    bad = {"crf_flow": "rolld", "location": "blur", "standardize": "std", "session": "all",
           "label_shift": "sometimes", "upsample": "cubic", "trees": "ten", "edges": 1,
           "mlp_hidden": (100,), "row_cap": (100_000,), "gt_prob": 1.5, "rolls": 0,
           "min_samples_split": 1, "crf_decimate": 2.5, "sigma_range": (4.0, 1.0),
           "schan_bands": 7, "gauss_sxy": 0.0, "median_radius": -1, "layouts": ("8",),
           "defaults": (("pen", 3.0),), "commits": (), "start": "2021-13", "class_weight": "auto"}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=f"recipe 'mlp-2021-10': {name}="):
            dataclasses.replace(r, **{name: value})
    with pytest.raises(ValueError, match="exactly two hidden layers"):
        dataclasses.replace(r, mlp_hidden=(100, 60, 30))
    with pytest.raises(ValueError, match="is after end"):
        dataclasses.replace(r, start="2030-01-01 00:00")
    assert dataclasses.replace(r, crf_flow="kludge", rolls=1).crf_flow == "kludge"


def test_a_date_picks_the_recipe_whose_range_holds_it():
    for r in RECIPES.values():
        for layout in r.layouts:
            if layout == "7engine":
                continue
            assert era_for_date(layout, r.start)[0] == r.name, (r.name, layout)
    assert era_for_date("7mlp", "2022-05-04") == ("mlp-2022-05", "layout+date")
    assert era_for_date("7mlp", "2022-05-03")[0] == "mlp-2021-10"
    assert era_for_date("7rf", None) == ("rf-2021-06", "layout (no date: assumed)")
    assert era_for_date("7rf", "2021-05-20")[0] == "rf-2021-05c"
    assert era_for_date("none", "2020-10-19")[0] == "rf-2020-10d"
    assert era_for_date("none", "2021-03-24 21:31")[0] == "rf-2021-03b"
    assert era_for_date("none", "2021-03-24 21:50")[0] == "rf-2021-03c"
    assert decode_settings(LAYOUT_VALUES["7rf"], path="x/results2021-05-20-10-00/a.npz").era \
        == "rf-2021-05c"


def test_what_candidates_share():
    a, b = RECIPES["rf-2021-05c"], RECIPES["rf-2021-06"]
    assert a.fit_key() == b.fit_key() and a.final_rescale != b.final_rescale
    assert RECIPES["mlp-2021-10"].feature_key() != RECIPES["mlp-2022-05"].feature_key()
    assert RECIPES["mlp-2021-06a"].feature_key() == RECIPES["mlp-2021-06"].feature_key()
    assert RECIPES["mlp-2021-06a"].fit_key() != RECIPES["mlp-2021-06"].fit_key()


def test_settings_from_an_eras_defaults():
    s = settings_for_era("rf-2020-10f")
    assert (s.crf_theta, s.crf_mu, s.crf_downsample, s.classifier_downsample) == (60, 80, 2, 10)
    assert settings_for_era("rf-2021-03c", crf_mu=7).crf_mu == 7
    with pytest.raises(Exception, match="unknown setting"):
        settings_for_era("rf-2021-03c", crf_nu=7)
    with pytest.raises(Exception, match="unknown era"):
        settings_for_era("rf-1999")


# ----------------------------------------------------------------------------- stage options
def test_no_standardization_is_img_as_float32():
    img = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(standardize(img, "none"), img_as_float32(img))


def test_sqrt_standardization_in_float16():
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    out = standardize(img, "sqrt")
    n = 9 * 11 * 3
    expect = np.empty(img.shape, np.float16)
    m = np.float16(img.mean())
    for idx in np.ndindex(img.shape):
        v = np.float16(img[idx])
        s = max(np.float16(np.sqrt(v)), np.float16(1 / np.sqrt(n)))
        expect[idx] = np.float16(np.float16(v - m) / s)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, expect)


def test_colour_index_bands_as_doodler_wrote_them():
    img = np.random.default_rng(2).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    out = colour_indices(img)
    r, g, b = (img[..., i].astype(int) for i in range(3))
    raw = [1 + (g - r) % 256 + (g + r - b) % 256, 1 + (2 * g - r - b) % 256 + (g + r + b) % 256,
           1 + (g - r) % 256 + (g + r) % 256]
    np.testing.assert_array_equal(out[..., :3], img)
    for k, band in enumerate(raw):
        lg = np.log(band.astype(float))
        expect = (255 * (lg - lg.min()) / (lg.max() - lg.min())).astype(np.int64)
        np.testing.assert_array_equal(out[..., 3 + k], expect)


def test_crf_image_with_location_channels():
    img = np.random.default_rng(3).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    std = standardize(img)
    assert crf_image(img, std, RECIPES["rf-2021-06"]) is std
    gxgy = crf_image(img, std, RECIPES["rf-2021-03b"])
    rows, cols = np.indices((4, 5))
    np.testing.assert_array_equal(gxgy[..., :3], img)
    np.testing.assert_array_equal(gxgy[..., 3], cols)
    np.testing.assert_array_equal(gxgy[..., 4], rows)
    rad = crf_image(img, std, RECIPES["rf-2021-03c"])
    np.testing.assert_allclose(rad[..., 3], np.hypot(rows, cols))
    six = crf_image(img, std, RECIPES["rf-2020-10c"])
    assert six.shape == (4, 5, 6)
    sq = crf_image(img, standardize(img, "sqrt"), RECIPES["rf-2021-05a"])  # + radius (fb5461e)
    np.testing.assert_array_equal(sq[..., :3], standardize(img, "sqrt"))
    np.testing.assert_allclose(sq[..., 3], np.hypot(rows, cols))


@pytest.mark.skipif(not _has_pydensecrf(), reason="pydensecrf not installed")
def test_bilateral_scale_divides_the_first_bands_only_as_pydensecrf():
    img = np.random.default_rng(4).integers(0, 256, (6, 7, 5)).astype(np.int64)
    ref = dutils.create_pairwise_bilateral(sdims=(40, 40), schan=(1.5, 1.5, 1.5), img=img, chdim=2)
    np.testing.assert_array_equal(crf.bilateral_features(img, 40, 1.5, 3).T, ref)
    ref6 = dutils.create_pairwise_bilateral(sdims=(60, 60), schan=(2,) * 5, img=img, chdim=2)
    np.testing.assert_array_equal(crf.bilateral_features(img, 60, 2.0).T, ref6)


@pytest.mark.skipif(not _has_pydensecrf(), reason="pydensecrf not installed")
def test_october_2020_crf_constants_agree_between_backends():
    rng = np.random.default_rng(5)
    img = colour_indices(rng.integers(0, 256, (18, 22, 3), dtype=np.uint8))
    lab = rng.integers(1, 4, (18, 22))
    u = crf.unary_from_labels(lab, 3, 0.66)
    args = (u, img, 3, 60.0, 260.0, 2.0)
    ref = crf.mean_field_q(*args, backend="pydensecrf", sxy=13.0, gauss_compat=130.0)
    ours = crf.mean_field_q(*args, backend="numba", sxy=13.0, gauss_compat=130.0)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_bilinear_upsample_is_scikit_images_resize():
    small = np.random.default_rng(6).integers(0, 3, (5, 7)).astype(np.uint8)
    np.testing.assert_array_equal(crf.resize_bilinear(small, (23, 31)),
                                  resize(small, (23, 31), order=1, anti_aliasing=True))


def _params(**kw):
    base = dict(theta=10.0, mu=5.0, downsample=1, gt_prob=0.9)
    base.update(kw)
    return crf.Params(**base)


def test_full_resolution_crf_rescales_the_argmax_integers():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (12, 14, 3)).astype(np.uint8)
    lab = np.ones((12, 14), np.uint8)
    lab[:, 7:] = 3
    lab[4:8, 3:10] = 2
    p = _params(upsample="none", argmax_plus_one=False, label_shift="none")
    out, n = crf.crf_from_labels(lab, img, p, backend="numba")
    q = crf.mean_field_q(crf.unary_from_labels(lab, 3, 0.9), img, 3, 10.0, 5.0,
                         crf.colour_scale(img.shape), "numba")
    a = np.argmax(q, 0).reshape(12, 14).astype(float)
    expect = (2 * (a - a.min()) / (a.max() - a.min()) + 1).astype(np.uint8)
    assert n == 3
    np.testing.assert_array_equal(out, expect)


def test_label_shift_kinds_count_labels_as_doodler():
    img = np.random.default_rng(8).random((10, 10, 3))
    lab = np.full((10, 10), 2, np.uint8)
    lab[5:] = 3
    assert crf.crf_from_labels(lab, img, _params(label_shift="none"), backend="numba")[1] == 2
    assert crf.crf_from_labels(lab, img, _params(label_shift="always"), backend="numba")[1] == 2
    zero = lab.copy()
    zero[0, 0] = 0
    assert crf.crf_from_labels(zero, img, _params(), backend="numba")[1] == 3  # max - min
    assert crf.crf_from_labels(zero, img, _params(label_shift="always"), backend="numba")[1] == 4


def test_final_rescale_to_one_or_to_the_label_minimum():
    """Class 1 absent: 7aad21f..58febfb rescaled the CRF label to [1, max], df7fccf to
    [min, max]."""
    rng = np.random.default_rng(9)
    img = rng.random((16, 16, 3))
    lab = np.full((16, 16), 2, np.uint8)
    lab[:, 8:] = 3
    one, _ = crf.crf_from_labels(lab, img, _params(final_rescale="one"), backend="numba")
    mn, _ = crf.crf_from_labels(lab, img, _params(final_rescale="orig_mn"), backend="numba")
    assert set(np.unique(mn)) == {2, 3} and set(np.unique(one)) == {1, 3}
    np.testing.assert_array_equal(one == 3, mn == 3)


def test_roll_offsets_per_era():
    h = 229
    np.testing.assert_array_equal(roll_offsets(RECIPES["rf-2021-06"], h), np.linspace(0, h / 5, 10))
    np.testing.assert_array_equal(roll_offsets(RECIPES["rf-2021-05"], h), np.linspace(0, h, 10))
    np.testing.assert_array_equal(roll_offsets(RECIPES["rf-2021-03a"], h),
                                  np.linspace(0, int(h / 5), 5))
    np.testing.assert_array_equal(roll_offsets(RECIPES["rf-2020-10c"], h), [0.0])
    assert RECIPES["rf-2021-03a"].roll_signs == "+-" and RECIPES["rf-2021-05a"].roll_signs == "+"


def test_median_disk_is_the_median_of_the_disk():
    lab = np.random.default_rng(10).integers(1, 4, (30, 30)).astype(np.uint8)
    for r in (3, 5):
        ours = median_disk(lab, r)
        np.testing.assert_array_equal(ours, median(lab, disk(r)))
        plain = ndimage.median_filter(lab, footprint=disk(r))
        np.testing.assert_array_equal(ours[r:-r, r:-r], plain[r:-r, r:-r])


def test_feature_kinds_and_raw_grids():
    x = np.random.default_rng(11).random((12, 15, 3))
    sig = [1.0, 2.0]
    full = feature_matrix(x, sig, "raw", True).reshape(-1, 3, 2, 5)
    it = era_features(x, sig, RECIPES["rf-2020-10c"], "reference").reshape(-1, 3, 2, 3)
    np.testing.assert_array_equal(it, full[..., [1, 3, 4]])  # intensity + texture, no location
    only = era_features(x, sig, RECIPES["rf-2021-02a"], "exact").reshape(-1, 3, 2, 1)
    np.testing.assert_array_equal(only[..., 0], full[..., 1])
    gxgy = era_features(x, sig, RECIPES["rf-2021-03b"], "exact").reshape(-1, 3, 2, 6)
    rows, cols = np.indices((12, 15))
    for c in range(3):
        for s in range(2):
            np.testing.assert_array_equal(gxgy[:, c, s, 0], cols.ravel())
            np.testing.assert_array_equal(gxgy[:, c, s, 1], rows.ravel())
    np.testing.assert_array_equal(gxgy[..., 2:], full[..., 1:])


def test_forest_parameters_and_row_caps_per_era():
    s = settings_for_era("rf-2021-02c")
    f = make_classifier(s)
    assert (f.n_estimators, f.class_weight, f.min_samples_split) == (10, "balanced_subsample", 3)
    f = make_classifier(settings_for_era("rf-2020-10b"))
    assert (f.n_estimators, f.class_weight, f.min_samples_split) == (100, None, 2)
    assert make_classifier(settings_for_era("rf-2020-11c")).n_estimators == 10
    assert make_classifier(settings_for_era("rf-2021-02a")).n_estimators == 5
    d = np.zeros((20, 20), np.uint8)
    d[2:18, 2:18] = 1
    d[5:9, 5:9] = 2
    feats = np.arange(400.0)[:, None]
    capped = dataclasses.replace(RECIPES["rf-2021-06"], row_cap=(50, 80))
    s = decode_settings([3, 2, 1, 1, 1, 3, 0.9])
    x, y, _ = training_rows(feats, d, s, recipe=capped)
    idx = np.flatnonzero(d.ravel())
    np.testing.assert_array_equal(x[:, 0], idx[np.round(np.linspace(0, idx.size - 1, 80)).astype(int)])
    x, _, _ = training_rows(feats, d, settings_for_era("rf-2020-10a"), recipe="rf-2020-10a")
    np.testing.assert_array_equal(x[:, 0], idx[::10])  # no cap, every 10th doodled pixel


# ----------------------------------------------------------------------------- every era runs
def _scene():
    image, truth = scene(48, 64, 0)
    return image, truth, doodles_for(truth)


@pytest.mark.parametrize("era", [n for n, r in RECIPES.items() if r.layouts == ("none",)])
def test_every_png_era_rebuilds_a_synthetic_scene(era):
    image, truth, d = _scene()
    res = reconstruct(image, d, settings_for_era(era), seed=0, crf_backend="numba")
    assert res.era == era and res.label.shape == truth.shape
    assert set(np.unique(res.label)) <= {1, 2, 3}
    assert (res.label0 == truth).mean() > 0.75


@pytest.mark.parametrize("era", [n for n, r in RECIPES.items() if r.layouts != ("none",)])
def test_every_npz_era_is_detected_from_its_date_and_rebuilds(tmp_path, era):
    r = recipe(era)
    image, truth, d = _scene()
    folder = tmp_path / ("results" + r.start[:10] + "-00-00")
    folder.mkdir()
    layout = "7engine" if era == "engine-2022-06" else r.layouts[0]
    p = write_npz(folder / "f.npz", image, d, truth, LAYOUT_VALUES[layout])
    rec = load(p)
    if layout not in ("7mlp",) or era != "mlp-2021-10":
        assert rec.settings.era == era
    res = reconstruct(rec, era=era, seed=0, crf_backend="numba")
    assert (res.label0 == truth).mean() > 0.85


# ----------------------------------------------------------------------------- told from the file
def test_sparse_doodled_classes_rule_out_the_engine_era_not_the_match(tmp_path):
    """A file remapped onto sparse classes (doodles 1 and 3 only): the June 2022 engine's CRF
    fall-back cannot take doodle value 3 with 2 classes doodled (its code raised
    IndexError); era matching passes over that era, and asking for it says why."""
    image, truth, d = _scene()
    d = np.where(d == 2, 0, d).astype(np.uint8)
    made = reconstruct(image, d, LAYOUT_VALUES["7mlp"], era="mlp-2022-05", crf_backend="numba")
    p = write_npz(tmp_path / "sparse.npz", image, d, made.label0, LAYOUT_VALUES["7mlp"])
    m = match_era(load(p), crf_backend="numba")
    assert m.era == "mlp-2022-05" and m.candidates[0].differ == 0
    assert "engine-2022-06" not in {c.era for c in m.candidates}
    with pytest.raises(DoodleError, match="doodle value 3 is above the 2 classes doodled"):
        reconstruct(load(p), era="engine-2022-06", crf_backend="numba")


def test_an_undated_file_gets_the_era_its_label_matches(tmp_path):
    image, truth, d = _scene()
    made = reconstruct(image, d, LAYOUT_VALUES["7mlp"], era="mlp-2022-05", crf_backend="numba")
    p = write_npz(tmp_path / "renamed.npz", image, d, made.label0, LAYOUT_VALUES["7mlp"])
    rec = load(p)
    assert rec.settings.era == "mlp-2021-10"  # assumed from the layout
    m = match_era(rec, crf_backend="numba")
    assert m.era == "mlp-2022-05" and m.candidates[0].differ == 0
    assert m.result.settings.era_source == BEST_MATCH
    assert {c.era for c in m.candidates} == {"mlp-2021-10", "mlp-2022-05", "engine-2022-06"}
    row = validate_file(p, crf_backend="numba")[0]
    assert (row["era"], row["era_source"], row["differ"]) == ("mlp-2022-05", BEST_MATCH, 0)
    assert row["runner_up"] in ("mlp-2021-10", "engine-2022-06") and row["runner_up_extra_px"] >= 0
    row = validate_file(p, era="mlp-2021-10", crf_backend="numba")[0]
    assert row["era_source"] == "user" and "runner_up" not in row


def test_an_exact_match_of_the_assumed_era_skips_the_other_candidates(tmp_path):
    image, truth, d = _scene()
    made = reconstruct(image, d, LAYOUT_VALUES["7mlp"], era="mlp-2021-10", crf_backend="numba")
    p = write_npz(tmp_path / "renamed.npz", image, d, made.label0, LAYOUT_VALUES["7mlp"])
    full = match_era(load(p), crf_backend="numba")
    assert full.era == "mlp-2021-10" and len(full.candidates) == 3
    short = match_era(load(p), crf_backend="numba", stop_at_exact=True)
    assert [vars(c) for c in short.candidates] == [vars(full.candidates[0])]
    assert short.result.settings.era_source == BEST_MATCH_EXACT
    assert (short.result.label == full.result.label).all()
    row = validate_file(p, crf_backend="numba")[0]
    assert (row["era"], row["era_source"], row["differ"]) == ("mlp-2021-10", BEST_MATCH_EXACT, 0)
    assert row["runner_up"] == "" and row["candidates"] == "mlp-2021-10:0"
    # an assumed era that does not match exactly: every candidate is still rebuilt
    other = reconstruct(image, d, LAYOUT_VALUES["7mlp"], era="mlp-2022-05", crf_backend="numba")
    if (other.label0 != made.label0).any():
        q = write_npz(tmp_path / "other.npz", image, d, other.label0, LAYOUT_VALUES["7mlp"])
        assert len(match_era(load(q), crf_backend="numba", stop_at_exact=True).candidates) == 3


def test_forest_candidates_share_features_and_fits(tmp_path):
    image, truth, d = _scene()
    p = write_npz(tmp_path / "forest.npz", image, d, truth, LAYOUT_VALUES["7rf"])
    m = match_era(load(p), crf_backend="numba")
    assert {c.era for c in m.candidates} == {"rf-2021-05c", "rf-2021-06"}
    again = match_era(load(p), crf_backend="numba")
    assert [vars(c) for c in again.candidates] == [vars(c) for c in m.candidates]
    if m.candidates[0].differ == m.candidates[1].differ:  # a tie keeps the assumed era
        assert (m.era, m.result.settings.era_source) == ("rf-2021-06", BEST_MATCH_TIE)
    shared = {}
    first = reconstruct(load(p), era="rf-2021-06", shared=shared, crf_backend="numba")
    second = reconstruct(load(p), era="rf-2021-05c", shared=shared, crf_backend="numba")
    assert "fit" in first.timings and "features" in first.timings
    assert "fit" not in second.timings and "features" not in second.timings  # shared
    third = reconstruct(load(p), era="rf-2021-06", seed=1, shared=shared, crf_backend="numba")
    assert "fit" in third.timings and "features" not in third.timings  # a new seed refits


def test_seed_spread_of_a_forest_file(tmp_path):
    image, truth, d = _scene()
    folder = tmp_path / "results2021-06-15-10-00"
    folder.mkdir()
    p = write_npz(folder / "forest.npz", image, d, truth, LAYOUT_VALUES["7rf"])
    row = validate_file(p, seeds=3, crf_backend="numba")[0]
    assert row["seeds"] == 3
    assert row["accuracy_min"] <= row["accuracy_median"] <= row["accuracy_max"]
    assert row["accuracy_min"] <= row["accuracy"] <= row["accuracy_max"]
    mlp = write_npz(folder / "mlp.npz", image, d, truth, LAYOUT_VALUES["6"])
    assert "seeds" not in validate_file(mlp, seeds=3, crf_backend="numba")[0]


def test_cli_lists_the_eras_and_counts_a_folder(tmp_path, capsys):
    assert main(["eras"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in RECIPES)
    for r in RECIPES.values():  # nothing cut: every commit list, layout and classifier whole
        line = next(ln for ln in out.splitlines() if ln.startswith(r.name + " "))
        assert ",".join(r.commits) in line and "/".join(r.layouts) in line and \
            r.description in line
        assert (r.classifier if r.classifier == "mlp" else f"rf {r.trees}") in line
    assert main(["eras", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["commits"][0] == "d2fee31" and "median_radius" in listed[0]
    image, truth, d = _scene()
    folder = tmp_path / "results2022-05-04-10-00"
    folder.mkdir()
    write_npz(folder / "a.npz", image, d, truth, LAYOUT_VALUES["7mlp"])
    write_npz(folder / "b.npz", image, d, truth, LAYOUT_VALUES["6"])
    assert main(["eras", str(folder), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mlp-2022-05" in out and "mlp-2021-06" in out and "files: 2" in out


@needs_real
def test_renamed_2022_files_are_rebuilt_exactly_without_an_era(tmp_path):
    """Two 2022-05-04 files without their results-folder date: the best match is the 2022 app
    and its label has 0 differing pixels (as mlp-2021-10, the layout's assumption, they differ)."""
    picks = [p for p in real_files() if "results2022-05-04" in p.name and "S2_rgb" in p.name][:2]
    assert len(picks) == 2
    for i, p in enumerate(picks):
        renamed = shutil.copy(p, tmp_path / f"renamed_{i}.npz")
        row = validate_file(renamed)[0]
        assert (row["era"], row["era_source"], row["differ"]) == ("mlp-2022-05", BEST_MATCH, 0)
        assert row["runner_up_extra_px"] > 0


def test_info_json_shows_the_recipe_and_the_best_match(tmp_path, capsys):
    image, truth, d = _scene()
    p = write_npz(tmp_path / "forest.npz", image, d, truth, LAYOUT_VALUES["7rf"])
    assert main(["info", str(p), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)[0]
    assert info["era"] in ("rf-2021-05c", "rf-2021-06")
    assert info["era_source"].startswith(BEST_MATCH)
    assert info["recipe"]["name"] == info["era"] and info["recipe"]["commits"]
    cands = info["era_match"]["candidates"]
    assert {c["era"] for c in cands} == {"rf-2021-05c", "rf-2021-06"}
    assert info["era_match"]["runner_up_extra_px"] == cands[1]["differ"] - cands[0]["differ"]
    assert main(["info", str(p), "--json", "--era", "rf-2021-05c"]) == 0
    info = json.loads(capsys.readouterr().out)[0]
    assert (info["era"], info["era_source"], info["era_match"]) == ("rf-2021-05c", "user", None)
