"""atlas: tables, figures and pages from small CSVs and npz files built here, the real CSVs
where present, stats --metadata, and the pages opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import SETTINGS, doodles_for, scene, write_npz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from test_metadata import REAL, raw_counts, row, write_rows

from doodle_engine import atlas, coastline
from doodle_engine import metadata as md
from doodle_engine.atlas import _outline_style
from doodle_engine.atlasfigures import (
    _label_points,
    box,
    drawable_records,
    fitted,
    histogram_bins,
    panel_slots,
    records_title,
)
from doodle_engine.batch import run_batch
from doodle_engine.cli import main

EXPECTED = {"records.csv", "class_images.csv", "class_pixels.csv", "labelers.csv",
            "disagreements.csv", "unjoined.csv", "images.csv", "class_distribution.png",
            "labelers.png", "geography.png", "heatmap.png", "coordinates.png", "locations.html",
            "index.html"}


def record_d(tmp_path, names, presents):
    """Folder ``in`` with record D's CSV: rows a_ID1, b_ID2, c_ID1 over the class ``names``,
    each holding the classes of its ``presents`` entry (indices, as the CSV writes them)."""
    d = tmp_path / "in"
    d.mkdir()
    classes = ", ".join(f"'{n}'" for n in names)
    write_rows(d / "metadata_D_s2_4classes_meta_served.csv", [
        row(stem, classes=classes, present_int=p,
            present_arr=", ".join(f"'{names[int(i)]}'" for i in p.split(", ")))
        for stem, p in zip(["a_ID1", "b_ID2", "c_ID1"], presents)])
    return d


def release(tmp_path):
    """Two records: a CSV each; npz files for two of record D's three rows and one stray npz."""
    d = record_d(tmp_path, ["water", "surf", "sand"], ["0, 1, 2", "0, 1", "0"])
    write_rows(d / "metadata_F_elwha_l8_served.csv", [
        row("f_ID2", lon=(-123.6, -123.5)), row("g_ID2", lon=(-123.5, -123.4))])
    npz = d / "npz"
    npz.mkdir()
    labels = {}
    for i, stem in enumerate(["a_ID1", "b_ID2", "stray_ID4"]):
        image, truth = scene(40, 50, i)
        if stem == "b_ID2":
            truth = np.minimum(truth, 1)
        write_npz(npz / f"{stem}.npz", image, doodles_for(truth), truth,
                  SETTINGS["mlp-2021-10"])
        labels[stem] = truth
    return d, labels


def test_atlas_from_csvs_and_npz(tmp_path, capsys):
    d, labels = release(tmp_path)
    out = tmp_path / "atlas"
    code = main(["atlas", str(d), "-o", str(out), "--workers", "1", "--quiet"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert {p.name for p in out.iterdir()} == EXPECTED
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    rec = pd.read_csv(out / "records.csv").set_index("record")
    assert rec.loc["D_s2_4classes", "images"] == 3 and rec.loc["D_s2_4classes", "joined"] == 2
    assert rec.loc["F_elwha_l8", "images"] == 2 and rec.loc["F_elwha_l8", "npz_files"] == 0
    assert rec.loc["in", "images"] == 1  # the stray file: its record folder (in/npz/x.npz)
    ci = pd.read_csv(out / "class_images.csv")
    assert ".0," not in (out / "class_images.csv").read_text()  # counts whole beside blanks
    dci = ci[ci["record"] == "D_s2_4classes"].set_index("class")
    assert dci["images"].to_dict() == {"water": 3, "surf": 2, "sand": 1}
    assert dci["images_npz"].to_dict() == {
        "water": 2, "surf": 2, "sand": int((labels["a_ID1"] == 2).any())}
    px = pd.read_csv(out / "class_pixels.csv")
    dpx = px[px["record"] == "D_s2_4classes"].set_index("class")["pixels"]
    both = np.concatenate([labels["a_ID1"].ravel(), labels["b_ID2"].ravel()])
    assert dpx.to_dict() == {n: int((both == i).sum()) for i, n in enumerate(["water", "surf", "sand"])}
    lab = pd.read_csv(out / "labelers.csv")
    assert lab[lab["record"] == "D_s2_4classes"].set_index("labeler")["images"].to_dict() == {
        "ID1": 2, "ID2": 1}
    un = pd.read_csv(out / "unjoined.csv")
    assert Counter(un["kind"]) == {"npz file without a metadata row": 1,
                                   "metadata row without an npz file": 1}
    assert set(un["stem"]) == {"stray_ID4", "c_ID1"}
    dis = pd.read_csv(out / "disagreements.csv")
    assert (dis["check"] == "npz-size").sum() == 0  # the rows' 40 x 50 is the npz's size
    page = (out / "index.html").read_text()
    for name in EXPECTED - {"index.html"}:
        assert f"href='{name}'" in page
    assert "stray_ID4" in page and "c_ID1" in page
    assert "images: 6 in 3 record(s)" in text and "(2 joined)" in text
    # the rows carry no doodle_spatial_density: records.png is left out, and says why
    assert "note: records.png: no record has both image sizes" in text


def superclass_release(tmp_path):
    """Record D: sand and gravel both go to sediment; F: 'ice' has no rule in the mapping."""
    d = record_d(tmp_path, ["water", "sand", "gravel"], ["0, 1, 2", "1, 2", "0"])
    write_rows(d / "metadata_F_elwha_l8_served.csv", [
        row("f_ID2", classes="'water', 'ice'", n=2, present_int="0, 1",
            present_arr="'water', 'ice'")])
    mapping = tmp_path / "remap.json"
    mapping.write_text(json.dumps({
        "aliases": {"water": "water", "sand": "sediment", "gravel": "sediment"},
        "classes": ["water", "sand", "gravel"], "super_classes": ["water", "sediment", "other"]}))
    return d, mapping


def test_superclasses_count_each_image_once(tmp_path, capsys):
    """An image holding sand and gravel counts once for sediment (the notebook counted each
    class); a class without a rule is counted as '(no rule)' and named."""
    d, mapping = superclass_release(tmp_path)
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--mapping", str(mapping), "--quiet"]) == 0
    text = capsys.readouterr().out
    sc = pd.read_csv(out / "superclass_images.csv", keep_default_na=False)
    got = {(r["record"], r["superclass"]): (r["images"], r["classes"]) for _, r in sc.iterrows()}
    assert got == {("D_s2_4classes", "water"): (2, "water"),
                   ("D_s2_4classes", "sediment"): (2, "sand; gravel"),
                   ("D_s2_4classes", "other"): (0, ""),
                   ("F_elwha_l8", "water"): (1, "water"),
                   ("F_elwha_l8", "sediment"): (0, ""),
                   ("F_elwha_l8", "other"): (0, ""),
                   ("F_elwha_l8", "(no rule)"): (1, "ice")}
    assert "note: (no rule): 1 class without a rule in" in text
    assert "'ice' (F_elwha_l8); --default" in text
    page = (out / "index.html").read_text()
    assert "superclass_distribution.png" in page and "&#x27;ice&#x27; (F_elwha_l8)" in page
    img = np.asarray(Image.open(out / "superclass_distribution.png").convert("RGB"))
    assert img.std() > 10
    # --default takes the classes without a rule
    out2 = tmp_path / "atlas2"
    assert main(["atlas", str(d), "-o", str(out2), "--mapping", str(mapping), "--default",
                 "other", "--quiet"]) == 0
    sc2 = pd.read_csv(out2 / "superclass_images.csv", keep_default_na=False)
    f_other = sc2[(sc2["record"] == "F_elwha_l8") & (sc2["superclass"] == "other")].iloc[0]
    assert (f_other["images"], f_other["classes"]) == (1, "ice")
    assert "(no rule)" not in set(sc2["superclass"])


def test_superclasses_with_stored_labels(tmp_path):
    """With npz files the stored labels are counted beside the metadata."""
    d, labels = release(tmp_path)
    mapping = {"water": "wet", "surf": "wet", "sand": "dry"}
    rows = atlas.build_atlas(md.read_metadata_inputs([str(d)]), run_batch(
        "stats", [str(d / "npz")], workers=1, progress=False), mapping=mapping)
    sc = rows.superclass_images.set_index(["record", "superclass"])
    stored = [labels["a_ID1"], labels["b_ID2"]]
    assert sc.loc[("D_s2_4classes", "wet"), "images_npz"] == sum(
        int(((t == 0) | (t == 1)).any()) for t in stored)
    assert sc.loc[("D_s2_4classes", "dry"), "images_npz"] == sum(int((t == 2).any()) for t in stored)
    assert sc.loc[("D_s2_4classes", "wet"), "images"] == 3
    assert rows.superclass_notes == []


@pytest.mark.parametrize("mapping, message", [
    ({"0": 1, "1": 0}, "needs a mapping of class names"),
    ({"rock": "land"}, "no class of these records has a rule in it"),
])
def test_a_mapping_the_atlas_cannot_use_is_refused(tmp_path, capsys, mapping, message):
    d, _ = superclass_release(tmp_path)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(mapping))
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--mapping", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not out.exists()


def test_default_without_mapping_is_refused(tmp_path, capsys):
    d, _ = superclass_release(tmp_path)
    assert main(["atlas", str(d), "-o", str(tmp_path / "a"), "--default", "other"]) == 2
    assert "give --mapping too" in capsys.readouterr().err


def test_records_figure_heat_map_and_coordinates(tmp_path, capsys):
    """records.png places every record with a size and a doodled share, names in the axes,
    none over another; the heat map and histograms are drawn in the records' colours."""
    d = tmp_path / "in"
    d.mkdir()
    for i, name in enumerate(["A_naip", "B_quads_gulf", "C_s2"]):
        rows = [dict(row(f"{name[0]}{k}_ID1", lon=(-120 + 10 * i, -120 + 10 * i + 0.1)),
                     doodle_spatial_density=0.05 + 0.001 * i) for k in range(3 + i)]
        write_rows(d / f"metadata_{name}_meta_served.csv", rows)
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--quiet"]) == 0
    assert {"records.png", "heatmap.png", "coordinates.png"} <= {p.name for p in out.iterdir()}
    rec = pd.read_csv(out / "records.csv")
    assert list(rec["doodled_percent"]) == [5.0, 5.1, 5.2]
    coords = np.asarray(Image.open(out / "coordinates.png").convert("RGB")).astype(int)
    for colour in ("#1f77b4", "#ff7f0e", "#2ca02c"):  # each record's bars
        rgb = [int(colour[k:k + 2], 16) for k in (1, 3, 5)]
        assert (np.abs(coords - rgb).sum(axis=2) < 20).sum() > 100
    heat = np.asarray(Image.open(out / "heatmap.png").convert("RGB")).astype(int)
    assert (heat[..., 0] - heat[..., 2] > 80).sum() > 200  # red hexagons over the map


def test_record_names_do_not_overlap(tmp_path):
    """Three records with the same share and nearly the same size: their names are placed
    apart, inside the axes."""
    table = pd.DataFrame({"record": ["A_one", "B_two", "C_three"], "images": [5, 6, 7],
                          "megapixels": [10.0, 10.5, 11.0], "doodled_percent": [7.0, 7.1, 7.0]})
    fig = Figure(figsize=(9, 7))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_xlim(5, 100)
    ax.set_ylim(0, 10)
    _label_points(fig, ax, [(r.megapixels, r.doodled_percent, r.record)
                            for r in table.itertuples()])
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    frame = ax.get_window_extent(renderer)
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for b in boxes)
    assert len(drawable_records(table.assign(megapixels=[10.0, np.nan, 0.0]))) == 1


def test_atlas_leaves_the_callers_matplotlib_as_it_was(tmp_path):
    """A notebook's backend and open figures are not touched by drawing the atlas."""
    d, _ = release(tmp_path)
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        mine = plt.figure()
        assert main(["atlas", str(d), "-o", str(tmp_path / "atlas"), "--workers", "1",
                     "--quiet"]) == 0
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [mine.number]
        plt.close(mine)
    finally:
        matplotlib.use(before)


def test_npz_size_and_presence_disagreements(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write_rows(d / "m.csv", [row("a_ID1", present_int="0, 1, 2",
                                 present_arr="'water', 'surf', 'sand'")])
    image, truth = scene(30, 20, 0)
    truth[:] = 0
    write_npz(d / "a_ID1.npz", image, doodles_for(scene(30, 20, 0)[1]), truth,
              SETTINGS["mlp-2021-10"])
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    dis = pd.read_csv(out / "disagreements.csv").set_index("check")
    assert dis.loc["npz-size", "says_a"] == "40 x 50" and dis.loc["npz-size", "says_b"] == "30 x 20"
    assert dis.loc["npz-present", "says_b"] == "water"


def test_a_class_only_the_npz_names_is_counted_and_drawn(tmp_path):
    """The metadata lists water, surf, sand; the npz names a fourth class its label holds:
    class_images.csv counts it (0 by the metadata, 1 by the stored label) and the class
    figure draws both sources side by side."""
    d = tmp_path / "in"
    d.mkdir()
    write_rows(d / "m.csv", [row("a_ID1", present_int="0, 1", present_arr="'water', 'surf'")])
    image, truth = scene(40, 50, 0)
    truth[:5] = 3
    write_npz(d / "a_ID1.npz", image, doodles_for(truth), truth, SETTINGS["mlp-2021-10"],
              classes=("water", "surf", "sand", "rock"))
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    ci = pd.read_csv(out / "class_images.csv").set_index("class")
    assert list(ci.index) == ["water", "surf", "sand", "rock"]
    assert ci.loc["rock", "images"] == 0 and ci.loc["rock", "images_npz"] == 1
    px = pd.read_csv(out / "class_pixels.csv").set_index("class")["pixels"]
    assert px["rock"] == int((truth == 3).sum())
    with Image.open(out / "class_distribution.png") as im:
        assert im.size[1] > 200


def test_unjoined_counts_read_as_english_and_no_labeler_is_no_labeler(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    write_rows(d / "metadata_D_s2_4classes_meta_served.csv",
               [row("a_ID1"), row("b_ID2"), row("c_ID1")])
    image, truth = scene(40, 50, 0)
    write_npz(d / "a_ID1.npz", image, doodles_for(truth), truth, SETTINGS["mlp-2021-10"])
    loose = tmp_path / "zipless"
    loose.mkdir()
    write_npz(loose / "noname.npz", image, doodles_for(truth), truth, SETTINGS["mlp-2021-10"])
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), str(loose), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "2 metadata rows without an npz file, 1 npz file without a metadata row" in text
    rec = pd.read_csv(out / "records.csv").set_index("record")
    assert rec.loc["zipless", "labelers"] == 0  # "(none)" is no labeler
    assert rec.loc["zipless", "labeler_images"] == "(none) 1"


def test_atlas_metadata_only_and_bad_inputs(tmp_path, capsys):
    csv = write_rows(tmp_path / "metadata_G_madeira_meta_served.csv", [row("m_ID3")])
    out = tmp_path / "atlas"
    assert main(["atlas", str(csv), "-o", str(out)]) == 0
    assert "class_pixels.csv" not in {p.name for p in out.iterdir()}
    assert "class_pixels.csv not written: it counts the pixels of the stored labels" in (
        out / "index.html").read_text()
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    capsys.readouterr()
    assert main(["atlas", str(fifo), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a regular file" in err[0]
    assert not (tmp_path / "o2").exists()
    assert main(["atlas", "/dev/zero", "-o", str(tmp_path / "o3")]) == 2
    assert not (tmp_path / "o3").exists()
    assert main(["atlas", str(tmp_path), "-o", str(tmp_path)]) == 2  # the input folder


@pytest.mark.skipif(len(REAL) != 10, reason="the ten Coast Train metadata CSVs are not in "
                                            "../shared/data/coasttrain")
def test_atlas_on_the_ten_release_csvs(tmp_path, capsys):
    out = tmp_path / "atlas"
    assert main(["atlas", *map(str, REAL), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "images: 1852 in 10 record(s) from 10 metadata CSV(s)" in text
    assert "present-classes 22" in text and "class-spelling" in text
    rows, labelers = raw_counts(REAL)
    rec = pd.read_csv(out / "records.csv").set_index("record")
    assert rec["images"].to_dict() == rows
    lab = pd.read_csv(out / "labelers.csv")
    got = {r: dict(zip(g["labeler"], g["images"])) for r, g in lab.groupby("record")}
    assert got == {r: dict(c) for r, c in labelers.items()}
    page = (out / "index.html").read_text()
    assert "1,852</b> images" in page and "<b>10</b> records" in page
    assert "classes_present_array" in page and "B_quads_gulf" in page


def test_stats_metadata_several_csvs_and_a_folder(tmp_path, capsys):
    d, _ = release(tmp_path)
    csvs = sorted(d.glob("*.csv"))
    report = tmp_path / "r.csv"
    assert main(["stats", str(d / "npz"), "--workers", "1", "--quiet", "--report", str(report),
                 "--metadata", *map(str, csvs)]) == 0
    assert "metadata: 2 of 3 file(s) joined" in capsys.readouterr().out
    table = pd.read_csv(report)
    assert set(table.loc[table["metadata_csv"].notna(), "file_name"]) == {"a_ID1.npz", "b_ID2.npz"}
    report.unlink()
    assert main(["stats", str(d / "npz"), "--workers", "1", "--quiet", "--report", str(report),
                 "--metadata", str(d)]) == 0
    assert "metadata: 2 of 3 file(s) joined" in capsys.readouterr().out
    assert main(["stats", str(d / "npz"), "--quiet", "--metadata", "/dev/zero"]) == 2


def _browser():
    found = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                  if shutil.which(b)), None)
    if found is None:
        helper = Path(__file__).resolve().parents[1] / ".ci" / "install-browser"
        reason = subprocess.run(["bash", str(helper)], check=False, capture_output=True, text=True,
                                timeout=600).stdout.strip()
        found = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)),
                     None)
        if found is None:
            pytest.skip(f"no headless browser: {reason or 'chromium not installable'}")
    return found


def _open(browser, page, shot, tmp_path):
    """Open a page from disk; its console lines (errors included) and the DOM."""
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
              "--v=0", "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}",
              "--window-size=1400,1000"]
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], check=False, capture_output=True,
                         text=True, timeout=120)
    subprocess.run(common + [f"--screenshot={shot}", page.as_uri()], check=False, capture_output=True,
                   text=True, timeout=120)
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln]
    return dom.stdout, console


def test_pages_in_a_browser(tmp_path):
    browser = _browser()
    d, _ = release(tmp_path)
    real = [str(p) for p in REAL]
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), *real, "-o", str(out), "--workers", "1", "--quiet"]) == 0
    shots = Path(os.environ.get("ATLAS_SHOTS", tmp_path))
    dom, console = _open(browser, out / "index.html", shots / "index.png", tmp_path)
    assert console == [], console
    assert "Coast Train atlas" in dom and "<table>" in dom
    dom, console = _open(browser, out / "locations.html", shots / "locations.png", tmp_path)
    assert console == [], console
    assert "leaflet-container" in dom and "<canvas" in dom  # Leaflet ran and drew the markers
    assert "D_s2_4classes (" in dom and "F_elwha_l8 (" in dom  # a layer per record
    for name in ("index.png", "locations.png"):
        img = np.asarray(Image.open(shots / name).convert("RGB"))
        assert img.shape[:2] == (1000, 1400) and img.std() > 10
    # the markers: record colours on the map (the first record's is #1f77b4)
    img = np.asarray(Image.open(shots / "locations.png").convert("RGB")).astype(int)
    blue = (np.abs(img - [0x1f, 0x77, 0xb4]).sum(axis=2) < 30).sum()
    assert blue > 20


@pytest.mark.parametrize("extent", [(-125.0, 27.0, -70.0, 47.0),  # a national record: a wide strip
                                 (-75.8, 35.2, -75.6, 36.2),  # a stretch of coast: tall
                                 (-88.4, 30.0, -87.8, 30.6)])
def test_a_record_panel_fills_its_cell_and_keeps_its_images(extent):
    west, south, east, north = fitted(extent, 1.2)
    assert west <= extent[0] and south <= extent[1] and east >= extent[2] and north >= extent[3]
    stretch = 1 / np.cos(np.radians((south + north) / 2))
    assert (east - west) / ((north - south) * stretch) == pytest.approx(1.2, rel=1e-9)
    # only one direction grows
    assert (west, east) == extent[::2] or (south, north) == extent[1::2]


def test_map_panels_of_a_short_row_are_centred():
    """geography.png: two records sit side by side in the middle (the middle cell was
    empty); ten fill two rows of four and centre the last two."""
    assert panel_slots(2, 4) == [(0, 2), (0, 4)]
    assert panel_slots(1, 4) == [(0, 3)]
    slots = panel_slots(10, 4)
    assert slots[:4] == [(0, 0), (0, 2), (0, 4), (0, 6)] and slots[8:] == [(2, 2), (2, 4)]


def test_one_record_s_class_figure_keeps_its_title_inside(tmp_path):
    csv = write_rows(tmp_path / "metadata_G_madeira_meta_served.csv", [row("m_ID3")])
    out = tmp_path / "atlas"
    assert main(["atlas", str(csv), "-o", str(out), "--quiet"]) == 0
    with Image.open(out / "class_distribution.png") as img:
        pixels = np.asarray(img.convert("L"))
    sizes = [ln.split(",") for ln in (out / "images.csv").read_text().splitlines()]
    at = sizes[0].index("height_px")
    assert all(r[at].isdigit() for r in sizes[1:])  # whole numbers, not 306.0
    band = pixels[:60]  # the title's two lines
    assert (band < 128).any()  # the title is drawn ...
    assert (band[:, :8] > 250).all() and (band[:, -8:] > 250).all()  # ... and not cut at a side


def test_atlas_of_unreadable_npz_files_only_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "Trunc_4_001.zip"
    bad.write_bytes(b"PK\x03\x04 not the rest of a zip")
    out = tmp_path / "atlas"
    assert main(["atlas", str(bad), "-o", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {bad}: ") and len(err) == 2
    assert err[1] == ("exit 1: no image to draw: every one of the 1 npz file(s) failed (listed "
                      "above) and no metadata CSV was given; nothing written")
    assert not out.exists()


def test_the_map_outline_draws_lakes_over_land_and_islands_over_lakes():
    """locations.html drew land only: the Great Lakes were land.  The outline now holds every
    level in order, and lakes take the sea's colour."""
    fc = coastline.geojson(-93, 41, -76, 49)  # the Great Lakes
    levels = [f["properties"]["level"] for f in fc["features"]]
    assert levels == sorted(levels) and {1, 2, 3} <= set(levels)
    superior = max((f for f in fc["features"] if f["properties"]["level"] == 2),
                   key=lambda f: len(f["geometry"]["coordinates"][0]))
    lons, lats = np.array(superior["geometry"]["coordinates"][0]).T
    assert lons.min() < -91 and lats.max() > 48.5  # Lake Superior's western tip and north shore
    assert _outline_style(superior)["fillColor"] == _outline_style({"properties": {"level": 4}})[
        "fillColor"] != _outline_style({"properties": {"level": 3}})["fillColor"]


def test_a_wide_record_s_panel_keeps_a_margin_around_its_points():
    """A record spanning 40 degrees got 0.1 degree of margin: its edge markers were cut."""
    lon, lat = pd.Series([-119.5, -80.6]), pd.Series([34.0, 35.0])
    west, south, east, north = fitted(box(lon, lat, 0.1, 0.6), 1.2)
    assert lon.min() - west > 0.039 * 38.9 and east - lon.max() > 0.039 * 38.9
    assert lat.min() - south > 0.1 and north - lat.max() > 0.1


def test_stats_on_a_zip_hints_at_its_csv_and_names_rows_the_zip_lacks(tmp_path, capsys):
    """stats over a release zip did not say the zip holds metadata, and with --metadata a CSV
    row whose npz the zip lacks went unsaid (only atlas's unjoined.csv had it)."""
    d, _ = release(tmp_path)
    zpath = tmp_path / "D_s2_4classes_1_001.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(d / "metadata_D_s2_4classes_meta_served.csv", "D/metadata_D.csv")
        for stem in ("a_ID1", "b_ID2"):  # c_ID1's npz is missing
            zf.write(d / "npz" / f"{stem}.npz", f"D/npz/{stem}.npz")
    assert main(["stats", str(zpath), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (f"note: {zpath.name} hold(s) a metadata CSV: --metadata with the same zip(s) joins "
            "its columns to each file's row") in out
    assert main(["stats", str(zpath), "--metadata", str(zpath), "--workers", "1",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "metadata: 2 of 2 file(s) joined" in out and "hold(s) a metadata CSV" not in out
    assert ("note: 1 metadata row(s) name an npz file their zip does not hold: "
            f"{zpath.name}::c_ID1.npz") in out


def test_records_and_labelers_carry_the_notebook_s_pixel_figures(tmp_path):
    """The user-distribution notebook's percentage of pixels doodled per record and
    millions of pixels per labeler (on the ten real CSVs: A_naip 16.76 %, F_elwha_l8
    68.11 %; ID1 276.178 Mpx, ID3 614.168 Mpx)."""
    rows = [row("a_ID1"), row("b_ID1"), row("c_ID2")]
    for r, density in zip(rows, (0.1, 0.3, 0.5)):
        r["doodle_spatial_density"] = density
    rows[2]["ImageHeightPx"] = 120  # three times the others' pixels: the share is weighted
    csv = write_rows(tmp_path / "metadata_X_one_served.csv", rows)
    out = tmp_path / "atlas"
    assert main(["atlas", str(csv), "-o", str(out), "--quiet"]) == 0
    records = pd.read_csv(out / "records.csv")
    assert records.loc[0, "doodled_percent"] == 38.0  # (0.1 + 0.3 + 3 x 0.5) / 5; unweighted 30
    labelers = pd.read_csv(out / "labelers.csv").set_index("labeler")
    assert labelers.loc["ID1", "megapixels"] == 0.004 and labelers.loc["ID2", "megapixels"] == 0.006
    # the map's layer list shows each record's colour beside its name
    page = (out / "locations.html").read_text()
    assert r'style=\"color:#1f77b4\"\u003e\u0026#9679;\u003c/span\u003e X_one (3)' in page


def test_a_small_record_is_drawn_over_a_large_one(tmp_path):
    """On the overview map the largest record is drawn first: a record of one image at the
    place of another's ten stays visible (A_small blue, B_big orange, by name)."""
    d = tmp_path / "in"
    d.mkdir()
    write_rows(d / "metadata_A_small_meta_served.csv", [row("s_ID1")])
    write_rows(d / "metadata_B_big_meta_served.csv", [row(f"b{k}_ID1") for k in range(10)])
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--quiet"]) == 0
    img = np.asarray(Image.open(out / "geography.png").convert("RGB")).astype(int)
    overview = img[: int(img.shape[0] * 7.5 / 11.1)]  # the map above the record panels
    blue, orange = ((np.abs(overview - rgb).sum(axis=2) < 40).sum()
                    for rgb in ([0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e]))
    assert blue > orange + 5  # both in the legend; only A_small's marker on the map


def test_a_record_keeps_its_colour_and_unplaced_images_are_said(tmp_path, capsys):
    """A record without coordinates is in the class figure but not on the maps: the mapped
    record keeps the colour it has in the class figure (orange, the second by name), and the
    note says which images the maps leave out."""
    d = tmp_path / "in"
    d.mkdir()
    write_rows(d / "metadata_A_nowhere_meta_served.csv",
               [row(f"a{k}_ID1", lon=("", "")) for k in range(3)])
    write_rows(d / "metadata_B_mapped_meta_served.csv", [row("b_ID1")])
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert ("note: geography.png, heatmap.png, coordinates.png, locations.html: 3 of 4 images "
            "have no coordinates in the metadata and are not drawn (A_nowhere 3)") in text
    assert "Note: geography.png" in (out / "index.html").read_text()
    for name in ("geography.png", "coordinates.png"):
        img = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        blue, orange = ((np.abs(img - rgb).sum(axis=2) < 40).sum()
                        for rgb in ([0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e]))
        assert orange > 20 and blue == 0, (name, blue, orange)
    assert 'color:#ff7f0e\\"\\u003e\\u0026#9679;\\u003c/span\\u003e B_mapped' in (
        out / "locations.html").read_text()  # the layer list's swatch, as folium escapes it


@pytest.mark.parametrize("rules, message", [
    ({"water": "water", "sand": "beach"}, "'sand' goes to 'beach', which is not among"),
    ({"water": 99, "sand": 1}, "'water' goes to 99, which is not among"),
])
def test_a_rule_to_no_superclass_is_refused(tmp_path, capsys, rules, message):
    """A rule whose target is not one of the superclasses was counted nowhere (or called
    'without a rule'): refused, as remap refuses it."""
    d, _ = superclass_release(tmp_path)
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"aliases": rules, "super_classes": ["water", "sediment"]}))
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--mapping", str(path), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_rules_by_index_name_their_superclass(tmp_path):
    """Coast Train aliases may give a superclass by its index in super_classes."""
    d, _ = superclass_release(tmp_path)
    mapping = {"aliases": {"water": 0, "sand": 1, "gravel": "sediment", "ice": 0},
               "super_classes": ["water", "sediment"]}
    found = atlas.build_atlas(md.read_metadata_inputs([str(d)]), mapping=mapping)
    sc = found.superclass_images.set_index(["record", "superclass"])
    assert sc.loc[("D_s2_4classes", "sediment"), "classes"] == "sand; gravel"
    assert sc.loc[("F_elwha_l8", "water"), "classes"] == "water; ice"
    assert found.superclass_notes == []


def test_a_doodler_mapping_by_number_is_refused_with_the_way_on(tmp_path, capsys):
    d, _ = superclass_release(tmp_path)
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"super_classes": {"water": "1", "land": "2"},
                                "classes": ["1", "2", "3"],
                                "aliases": {"1": "water", "2": "land", "3": "land"}}))
    assert main(["atlas", str(d), "-o", str(tmp_path / "a"), "--mapping", str(path)]) == 2
    err = capsys.readouterr().err
    assert "keys its rules by class number" in err and "write the rules by name" in err


def test_the_mapping_is_checked_before_any_npz_file_is_read(tmp_path, capsys):
    """A refused mapping stops the run before the npz files are read (a broken one would
    print its error first)."""
    d, _ = release(tmp_path)
    (d / "npz" / "broken_ID1.npz").write_bytes(b"not a zip")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"0": 1}))
    assert main(["atlas", str(d), "-o", str(tmp_path / "a"), "--mapping", str(path),
                 "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs a mapping of class names" in err and "broken_ID1" not in err


def test_a_csv_without_rows_is_one_line_and_nothing_written(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    header = list(row("x_ID1"))
    (d / "metadata_Z_empty_served.csv").write_text(",".join(header) + "\n")
    out = tmp_path / "atlas"
    assert main(["atlas", str(d), "-o", str(out), "--quiet"]) == 2
    assert "no image to draw: the metadata CSVs have no rows" in capsys.readouterr().err
    assert not out.exists()


def test_many_classes_without_a_rule_make_one_note():
    loose = {f"c{i}": ["A"] for i in range(15)}
    (note,) = atlas._no_rule_notes(loose, "m.json")
    assert note.startswith("(no rule): 15 classes without a rule in m.json")
    assert "'c11' (A); and 3 more (superclass_images.csv)" in note


def test_histogram_bins_and_the_records_title():
    edges, words = histogram_bins(pd.Series([35.0, 35.0]))
    assert list(edges) == [34.5, 35.5] and words == "every image at 35"
    edges, words = histogram_bins(pd.Series([30.0, 40.0]))
    assert len(edges) == 21 and words == "20 bins of 0.5 degrees"
    table = pd.DataFrame({"record": ["A", "B"], "images": [1, 2], "megapixels": [1.0, np.nan],
                          "doodled_percent": [5.0, 6.0]})
    assert records_title(table, drawable_records(table)) == (
        "Records: size against doodled share (1 record)\n"
        "not drawn (no image size or doodle_spatial_density): B")
