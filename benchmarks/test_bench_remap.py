"""Remap throughput: compiled lookup table against numpy.take, in GB/s of label pixels."""

import numpy as np
import pytest

from doodle_engine.kernels.lut import apply_lut

N = 64_000_000  # 64 MB of uint8 labels


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
    import doodle_engine as de
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
