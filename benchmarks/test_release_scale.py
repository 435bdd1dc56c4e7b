"""benchmarks/release_scale.py on a ~1-Mpx synthetic release: both runs (local workers and a
local Dask cluster) give the same per-file results, the zips are laid out as release records
and are untouched, nothing is unpacked beside them, and the CSV holds what was measured.
The resizing rule is checked on arrays built here (always runs)."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import release_scale as rs  # benchmarks/ (pytest puts a test file's folder on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def test_resizing_keeps_classes_and_other_keys():
    rng = np.random.default_rng(0)
    h, w = 30, 40
    label = np.zeros((h, w, 3), np.uint8)
    label[np.arange(h)[:, None], np.arange(w)[None, :], rng.integers(0, 3, (h, w))] = 1
    arrays = {"image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
              "orig_image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
              "doodles": rng.choice(np.array([0, 1, 2, 3], np.uint8), (h, w)),
              "color_doodles": rng.choice(np.array([0, 128, 255], np.uint8), (h, w, 3)),
              "label": label, "settings": np.arange(7.0),
              "classes": np.array(["water", "sand", "veg"])}
    out = rs.resized(arrays, 75, 52)
    assert out["image"].shape == (75, 52, 3) and out["image"].dtype == np.uint8
    assert out["label"].shape == (75, 52, 3) and (out["label"].sum(axis=2) == 1).all()
    assert set(np.unique(out["doodles"])) <= {0, 1, 2, 3}
    assert set(np.unique(out["color_doodles"])) <= {0, 128, 255}
    assert out["settings"] is arrays["settings"] and out["classes"] is arrays["classes"]
    # bilinear: a flat image stays flat, a ramp stays within its range
    flat = dict(arrays, image=np.full((h, w, 3), 77, np.uint8))
    assert (rs.resized(flat, 11, 13)["image"] == 77).all()


def test_rows_are_drawn_up_to_the_target_without_larger_images():
    meta = pd.DataFrame({"ImageHeightPx": [1000, 100, 200, 300, 400],
                         "ImageWidthPx": [1000, 100, 200, 300, 400]})
    rows = rs.pick_rows(meta, 0.2, seed=1)
    mpx = rows.ImageHeightPx * rows.ImageWidthPx / 1e6
    assert mpx.sum() >= 0.2 and (mpx <= 0.2).all()


needs_data = pytest.mark.skipif(not (rs.REAL.is_dir() and rs.COAST.is_dir()),
                                reason="real Doodler files or Coast Train metadata not present")


@needs_data
def test_one_megapixel_release_both_runs(tmp_path):
    pytest.importorskip("dask.distributed")
    keep, out, tables = tmp_path / "release", tmp_path / "docs", tmp_path / "tables"
    rows = rs.main(["--mpx", "1", "--mode", "fast", "--workers", "2", "--dask", "2",
                    "--out", str(out), "--keep", str(keep), "--tables", str(tables)])
    assert [r["run"] for r in rows] == ["pool", "dask"]
    with open(out / "release-scale.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [r["run"] for r in written] == ["pool", "dask"]
    for r in written:
        assert r["errors"] == "0" and float(r["mpx"]) >= 1 and float(r["mpx_per_s"]) > 0
        assert float(r["peak_worker_mb"]) > 50 and len(r["peak_each_mb"].split(";")) == 2
        assert r["zips_unchanged"] == "True" and r["load_before"].count("/") == 2
        assert float(r["projected_min"]) == pytest.approx(
            float(r["release_mpx"]) / float(r["mpx_per_s"]) / 60, rel=0.01)
    # the release: only zips, each one CSV + its npz folder, the CSV naming every member
    zips = sorted(keep.iterdir())
    assert zips and all(z.suffix == ".zip" for z in zips)
    for z in zips:
        source, classes, version = z.stem.rsplit("_", 2)
        assert source in rs.SOURCES.values() and classes.isdigit() and version == rs.VERSION
        with zipfile.ZipFile(z) as zf:
            names = zf.namelist()
            csvs = [n for n in names if n.endswith(".csv")]
            npz = sorted(n for n in names if n.endswith(".npz"))
            assert len(csvs) == 1 and all(n.startswith(f"{z.stem}/npz/") for n in npz)
            meta = pd.read_csv(zf.open(csvs[0]))
        assert sorted(f"{z.stem}/{n}" for n in meta.annotation_image_filename) == npz
    # both runs gave the same result for every member
    pool = pd.read_csv(tables / "pool_fast_1mpx.csv").set_index("file")
    dask = pd.read_csv(tables / "dask_fast_1mpx.csv").set_index("file")
    assert sorted(pool.index) == sorted(dask.index)
    assert (pool.loc[dask.index, "differ"] == dask["differ"]).all()
    assert all("::" in f for f in pool.index)
