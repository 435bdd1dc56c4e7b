"""Remap throughput: compiled lookup table against numpy.take, in GB/s of label pixels.

The bare table kernel (``apply_lut``: no check of the values) lives here, not in the
package: the engine's remap uses ``kernels.lut.apply_lut_checked``, which checks every value
in the same pass; this one measures what that check costs against the bare lookup."""

import numpy as np
import pytest
from numba import njit, prange

import doodle_engine as de

N = 64_000_000  # 64 MB of uint8 labels
_BLOCK = 1 << 16


@njit(cache=True, parallel=True)
def _apply(flat, table, out):
    n = flat.size
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in prange(n_blocks):
        start = b * _BLOCK
        stop = min(start + _BLOCK, n)
        for i in range(start, stop):
            out[i] = table[flat[i]]


def apply_lut(labels, table, out=None):
    """``table[labels]`` for integer labels of any shape (values must index ``table``)."""
    labels = np.ascontiguousarray(labels)
    if out is None:
        out = np.empty(labels.shape, table.dtype)
    _apply(labels.reshape(-1), table, out.reshape(-1))
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_lut_matches_numpy_take(dtype):
    rng = np.random.default_rng(0)
    table = rng.integers(0, 255, 300).astype(np.uint8)
    labels = rng.integers(0, 256 if dtype == np.uint8 else 300, (3, 70, 90)).astype(dtype)
    np.testing.assert_array_equal(apply_lut(labels, table), np.take(table, labels))
    np.testing.assert_array_equal(apply_lut(labels[:0], table), np.take(table, labels[:0]))


@pytest.fixture(scope="module")
def labels():
    return np.random.default_rng(0).integers(0, 11, N).astype(np.uint8).reshape(8000, 8000)


@pytest.mark.parametrize("variant", ["reference", "compiled"])
def test_remap_throughput(benchmark, labels, variant, capsys):
    table = np.arange(256, dtype=np.uint8)[::-1].copy()
    out = np.empty_like(labels)
    fn = (lambda: np.take(table, labels, out=out)) if variant == "reference" else \
        (lambda: apply_lut(labels, table, out=out))
    fn()
    benchmark.group = "remap 64 Mpx uint8"
    benchmark.extra_info["variant"] = variant
    benchmark.pedantic(fn, rounds=5, iterations=1)
    with capsys.disabled():
        print(f"\n[remap] {variant}: {N / benchmark.stats.stats.median / 1e9:.2f} GB/s")


PUBLIC_N = 200_000_000  # 200 M uint8 label pixels through the public call


@pytest.fixture(scope="module")
def big_labels():
    rng = np.random.default_rng(1)
    return rng.integers(0, 11, PUBLIC_N).astype(np.uint8).reshape(10_000, 20_000)


def test_public_remap_throughput(benchmark, big_labels, capsys):
    """``doodle_engine.remap(labels, mapping, classes=...)`` as a user calls it: the mapping
    is built, every value is checked for a rule and the output allocated, all counted."""
    classes = [f"c{i}" for i in range(11)]
    mapping = {c: ("water" if i < 4 else "land") for i, c in enumerate(classes)}
    fn = lambda: de.remap(big_labels, mapping, classes=classes)  # noqa: E731
    out = fn()
    assert out.shape == big_labels.shape and out.max() == 1
    benchmark.group = "remap 200 Mpx uint8, public call"
    benchmark.pedantic(fn, rounds=5, iterations=1)
    with capsys.disabled():
        print(f"\n[remap] public doodle_engine.remap: "
              f"{PUBLIC_N / benchmark.stats.stats.median / 1e9:.2f} GB/s (median), "
              f"{PUBLIC_N / benchmark.stats.stats.min / 1e9:.2f} GB/s (best)")
