"""Scale check: a synthetic release with the Coast Train size distribution (image sizes from
the metadata CSVs when present), rebuilt with 1 and 2 local workers; prints Mpx/s and the
projected time for the whole 1.19-gigapixel release."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from doodle_engine.batch import run_batch
from conftest import ROOT

COAST = ROOT.parent / "shared" / "data" / "coasttrain"
RELEASE_MPX = 1192.6
N_FILES = 8


def _sizes(n, seed=0):
    rng = np.random.default_rng(seed)
    csvs = sorted(COAST.glob("metadata_*.csv")) if COAST.is_dir() else []
    if csvs:
        meta = pd.concat([pd.read_csv(p)[["ImageHeightPx", "ImageWidthPx"]] for p in csvs])
        rows = meta.sample(n, random_state=seed).to_numpy()
        return [(int(h), int(w)) for h, w in rows]
    # fallback: a log-normal with the release's median (0.36 Mpx) and spread
    mpx = np.exp(rng.normal(np.log(0.36), 1.1, n)).clip(0.002, 5)
    return [(int(np.sqrt(m * 1e6)),) * 2 for m in mpx]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from tests_helpers import write_release
    return write_release(tmp_path_factory.mktemp("release"), _sizes(N_FILES))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests_helpers import write_release
    folder, _ = write_release(tmp_path_factory.mktemp("tiny"), [(24, 24)])
    return folder


def _start_up(tiny, workers, mode):
    """Seconds a run pays once, whatever its size: worker processes starting, importing and
    loading the compiled kernels (measured on one 24x24 file, whose own work is ~10 ms)."""
    t0 = time.perf_counter()
    run_batch("reconstruct", [tiny], outdir=tiny / f"start{workers}{mode}", workers=workers,
              progress=False, mode=mode, force=True)
    return time.perf_counter() - t0


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_scale(benchmark, release, tiny, workers, mode, capsys):
    folder, mpx = release
    run_batch("reconstruct", [folder], outdir=folder / "warm", progress=False, mode=mode)
    start_up = _start_up(tiny, workers, mode)
    benchmark.group = f"scale {mode} ({mpx:.2f} Mpx in {N_FILES} files)"
    benchmark.extra_info["variant"] = f"{workers} worker(s)"
    t0 = time.perf_counter()
    frame = benchmark.pedantic(run_batch, args=("reconstruct", [folder]),
                               kwargs=dict(outdir=folder / f"out{workers}{mode}", workers=workers,
                                           progress=False, mode=mode), rounds=1, iterations=1)
    elapsed = time.perf_counter() - t0
    assert (frame["error"] == "").all(), frame["error"].tolist()
    rate = mpx / elapsed
    steady = mpx / max(elapsed - start_up, 1e-9)
    with capsys.disabled():
        print(f"\n[scale] mode={mode} workers={workers}: {rate:.3f} Mpx/s with start-up "
              f"({RELEASE_MPX / rate / 60:.0f} min for {RELEASE_MPX:.0f} Mpx); start-up "
              f"{start_up:.1f} s once + {steady:.3f} Mpx/s after it -> projected "
              f"{(start_up + RELEASE_MPX / steady) / 60:.0f} min")
