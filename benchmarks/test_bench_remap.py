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
