"""Scale check: a synthetic release with the Coast Train size distribution (image sizes and
CRF / classifier settings from the metadata CSVs when present), rebuilt with 1 and 2 local
workers; prints Mpx/s and the projected time for the whole 1.19-gigapixel release.

The files are 2022-era (one CRF run each); files of the 2021 eras run the CRF 5 (MLP) or 10
(random forest) times, which the projection does not include."""

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


def _files(n, seed=0):
    """(sizes, settings) of ``n`` files: rows drawn from the Coast Train metadata when present
    (image size and the CRF / classifier downsample factors, CRF theta and mu each file was
    labelled with), else a log-normal size with the release's median and the default settings."""
    rng = np.random.default_rng(seed)
    csvs = sorted(COAST.glob("metadata_*.csv")) if COAST.is_dir() else []
    if csvs:
        cols = ["ImageHeightPx", "ImageWidthPx", "CRF_downsample_factor",
                "Classifier_downsample_factor", "CRF_theta", "CRF_mu"]
        meta = pd.concat([pd.read_csv(p)[cols] for p in csvs]).dropna()
        rows = meta.sample(n, random_state=seed).to_numpy()
        sizes = [(int(r[0]), int(r[1])) for r in rows]
        settings = [(3, int(r[2]), int(r[3]), float(r[4]), float(r[5]), 0.9, 2) for r in rows]
        return sizes, settings
    # fallback: a log-normal with the release's median (0.36 Mpx) and spread
    mpx = np.exp(rng.normal(np.log(0.36), 1.1, n)).clip(0.002, 5)
    return [(int(np.sqrt(m * 1e6)),) * 2 for m in mpx], None


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from tests_helpers import write_release
    sizes, settings = _files(N_FILES)
    return write_release(tmp_path_factory.mktemp("release"), sizes, settings)


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
