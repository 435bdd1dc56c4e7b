"""Fuzzing the reader, the settings decoder, the reconstruction and the CLI with hostile
input: each case either works or fails with one DoodleError line naming the file.

Example counts are fixed so the suite runs in bounded time; the number of cases tried per
test is printed at the end of the run."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doodle_engine import DoodleError, cli, decode_settings, load, reconstruct
from doodle_engine.example import doodles_for, scene

TRIED = Counter()
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _expect_clean(fn, *args, **kwargs):
    """fn(...) must return or raise DoodleError with a one-line message."""
    try:
        return fn(*args, **kwargs)
    except DoodleError as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        return None


def _write(tmp_path, name, arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@FUZZ
@given(data=st.binary(min_size=0, max_size=400))
def test_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("b") / "x.npz"
    p.write_bytes(data)
    TRIED["random bytes"] += 1
    with pytest.raises(DoodleError):
        load(p)


def test_truncated_at_every_length(tmp_path):
    image, truth = scene(8, 9)
    good = _write(tmp_path, "good.npz", {"image": image, "doodles": doodles_for(truth),
                                         "settings": np.array([3, 2, 1, 1, 1, 0.9, 2.0])})
    raw = good.read_bytes()
    p = tmp_path / "t.npz"
    for n in range(len(raw)):
        p.write_bytes(raw[:n])
        TRIED["truncated zip"] += 1
        _expect_clean(load, p)


KEYS = ["image", "doodles", "label", "settings", "classes", "orig_image", "0image", "0doodles",
        "color_doodles", "junk", "Image", "doodle"]
DTYPES = [np.uint8, np.int16, np.float32, np.float64, np.bool_, np.int64]


@st.composite
def hostile_arrays(draw):
    h = draw(st.integers(0, 7))
    w = draw(st.integers(0, 7))
    arrays = {}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=7, unique=True)):
        kind = draw(st.sampled_from(["2d", "3d", "1d", "scalar", "onehot", "str"]))
        dtype = draw(st.sampled_from(DTYPES))
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
        if kind == "2d":
            a = rng.integers(0, 6, (h, w)).astype(dtype)
        elif kind == "3d":
            a = rng.integers(0, 256, (h, w, draw(st.integers(0, 5)))).astype(dtype)
        elif kind == "onehot":
            a = (rng.integers(0, 3, (h, w))[..., None] == np.arange(3)).astype(dtype)
        elif kind == "1d":
            a = rng.normal(0, 5, draw(st.integers(0, 12))).astype(dtype)
        elif kind == "str":
            a = np.array(["water", "sand", "x"][: draw(st.integers(0, 3))])
        else:
            a = np.array(draw(st.floats(allow_nan=True, allow_infinity=True)))
        if draw(st.booleans()) and a.dtype.kind in "fi" and a.size:
            a = a.astype(np.float64)
            a.flat[0] = draw(st.sampled_from([np.nan, np.inf, -1.0, 1e300]))
        arrays[key] = a
    return arrays


@FUZZ
@given(arrays=hostile_arrays())
def test_valid_zips_with_hostile_content(tmp_path_factory, arrays):
    p = _write(tmp_path_factory.mktemp("z"), "h.npz", arrays) if arrays else None
    if p is None:
        return
    TRIED["hostile zip"] += 1
    rec = _expect_clean(load, p)
    if rec is not None and rec.settings is not None and rec.image.size:
        TRIED["hostile zip reconstructed"] += 1
        _expect_clean(reconstruct, rec)


@FUZZ
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                                 st.sampled_from([0.0, -1.0, 1.0, 2.0, 3.0, 0.9, 0.5, 1e9])),
                       min_size=0, max_size=12))
def test_hostile_settings(values):
    TRIED["settings"] += 1
    s = _expect_clean(decode_settings, values, path="s.npz")
    if s is None:
        return
    assert s.crf_downsample >= 1 and s.classifier_downsample >= 1 and 0 < s.gt_prob <= 1
    if s.crf_downsample > 64 or s.classifier_downsample > 64 or (s.n_sigmas or 0) > 8 \
            or (s.n_estimators or 0) > 50:
        return  # valid but slow; the small-image test below covers huge factors
    TRIED["settings reconstructed"] += 1
    image, truth = scene(16, 20, seed=1)
    _expect_clean(reconstruct, image, doodles_for(truth), s, path="s.npz")


LAYOUTS = [[3, 2, 1, 1, 1, 3, 0.9, 1, 16], [3, 2, 1, 1, 1, 3, 0.9], [3, 2, 1, 1, 1, 0.9],
           [3, 2, 1, 1, 1, 0.9, 2], [3, 2, 1, 1, 1, 1.0, 2]]
HOSTILE = [0.0, -1.0, -0.5, 1e-9, 0.999, 1.0, 2.0, 5.0, 100.0, 1e6, np.nan, np.inf]


@FUZZ
@given(base=st.sampled_from(LAYOUTS),
       edits=st.lists(st.tuples(st.integers(0, 8), st.sampled_from(HOSTILE)), max_size=3))
def test_perturbed_layouts(base, edits):
    values = list(base)
    for pos, val in edits:
        if pos < len(values):
            values[pos] = val
    TRIED["perturbed settings"] += 1
    s = _expect_clean(decode_settings, values, path="p.npz")
    if s is None or s.crf_downsample > 1e4 or s.classifier_downsample > 1e4 \
            or (s.n_sigmas or 0) > 6 or (s.n_estimators or 0) > 20:
        return
    TRIED["perturbed settings reconstructed"] += 1
    image, truth = scene(16, 20, seed=1)
    res = _expect_clean(reconstruct, image, doodles_for(truth), s, path="p.npz")
    assert res is None or res.label.shape == (16, 20)


@pytest.mark.parametrize("factor", [1, 7, 1000, 10 ** 9])
def test_huge_downsample_factors(factor):
    image, truth = scene(16, 20)
    res = _expect_clean(reconstruct, image, doodles_for(truth), [3, factor, 1, 1, 1, 0.9, 2])
    assert res is None or res.label.shape == (16, 20)
    res = _expect_clean(reconstruct, image, doodles_for(truth), [3, 2, factor, 1, 1, 0.9, 2])
    assert res is None or res.label.shape == (16, 20)


@pytest.mark.parametrize("bands", [1, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (2, 2), (3, 40)])
def test_tiny_and_odd_band_images(tmp_path, bands, shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape + (bands,)).astype(np.uint8)
    d = np.zeros(shape, np.uint8)
    d.flat[0] = 1
    d.flat[-1] = 2
    p = _write(tmp_path, "tiny.npz", {"image": image, "doodles": d,
                                      "settings": np.array([3, 1, 1, 1, 1, 0.9, 2.0])})
    TRIED["tiny images"] += 1
    rec = _expect_clean(load, p)
    if rec is not None:
        res = _expect_clean(reconstruct, rec)
        assert res is None or res.label.shape == shape


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_float_images(tmp_path, value):
    image, truth = scene(8, 9)
    bad = image.astype(np.float32)
    bad[0, 0] = value
    with pytest.raises(DoodleError, match="uint8"):
        load(_write(tmp_path, "f.npz", {"image": bad, "doodles": doodles_for(truth)}))
    with pytest.raises(DoodleError, match="NaN or infinite"):
        reconstruct(bad, doodles_for(truth), [3, 2, 1, 1, 1, 0.9, 2])


@FUZZ
@given(arrays=hostile_arrays(), command=st.sampled_from(["info", "validate"]))
def test_cli_exits_0_1_or_2_with_one_line(tmp_path_factory, arrays, command):
    if not arrays:
        return
    folder = tmp_path_factory.mktemp("c")
    p = _write(folder, "c.npz", arrays)
    err, out = io.StringIO(), io.StringIO()
    args = [command, str(p)] + (["--quiet"] if command == "validate" else [])
    with redirect_stderr(err), redirect_stdout(out):
        code = cli.main(args)
    TRIED[f"cli {command}"] += 1
    assert code in (0, 1, 2)
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert len(err.getvalue().strip().splitlines()) == 1


def test_zero_size_zip_members(tmp_path):
    p = tmp_path / "empty.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("image.npy", b"")
        z.writestr("doodles.npy", b"")
    TRIED["empty members"] += 1
    with pytest.raises(DoodleError):
        load(p)


def test_report_counts():
    """Last in the module: prints how many cases each fuzz test tried."""
    print("\nfuzz cases tried: " + ", ".join(f"{k}: {v}" for k, v in sorted(TRIED.items())))
    assert sum(TRIED.values()) > 0
