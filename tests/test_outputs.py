"""What the engine writes: permissions, the files each command leaves, and what they hold."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest
from conftest import doodles_for, needs_real, real_files, scene, write_npz
from matplotlib.figure import Figure
from PIL import Image

import doodle_engine.jobs as jobs
from doodle_engine import load, reconstruct, save
from doodle_engine.batch import run_batch
from doodle_engine.cli import build_parser, main
from doodle_engine.colorize import colorize
from doodle_engine.export import write_image
from doodle_engine.jobs import export_file
from doodle_engine.npz import read_made_with
from doodle_engine.outputs import kept_label_path
from doodle_engine.plots import _accuracy_bars, _marked, write_plots
from doodle_engine.report import summarize, write_report


@pytest.fixture
def umask():
    """Run a test under a given umask, restoring the old one afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_every_output_gets_the_permissions_of_a_normal_write(synthetic, tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    rec = load(synthetic())
    out = tmp_path / "out"
    frame = pd.DataFrame({"file": [str(rec.path)], "accuracy": [1.0], "differ": [0],
                          "iou_water": [1.0], "error": [""]})
    written = [save(rec, out / "x.npz"),
               write_image(out / "x.png", np.zeros((4, 4), np.uint8)),
               write_image(out / "x.jpg", np.zeros((4, 4, 3), np.uint8)),
               write_report(frame, out / "rows.csv"), out / "rows_summary.csv",
               write_report(frame, out / "rows.parquet"), out / "rows_summary.csv"]
    written += write_plots(frame, out / "plots")
    plain = out / "plain.txt"
    plain.write_text("x")  # what a normal write gives, for comparison
    assert _mode(plain) == expected
    for path in written:
        assert _mode(path) == expected, (path, oct(_mode(path)))


@pytest.fixture
def two_files(tmp_path):
    """A folder of two files: ``same.npz`` stores the label that era mlp-2022-05 rebuilds
    (not the era its layout gives: a default rebuild differs), ``other.npz`` a label that
    differs from any rebuild."""

    folder = tmp_path / "results"
    folder.mkdir()
    image, truth = scene(40, 56, seed=3)
    doodles = doodles_for(truth)
    settings = [3, 2, 1, 1, 1, 0.9, 2]
    write_npz(folder / "other.npz", image, doodles, truth, settings)
    res = reconstruct(load(folder / "other.npz"), era="mlp-2022-05")
    default = reconstruct(load(folder / "other.npz"))
    assert (default.label0 != res.label0).any()  # the options change the result
    write_npz(folder / "same.npz", image, doodles, res.label0, settings)
    return folder


def _spy_reconstruct(monkeypatch):
    calls = []
    real = jobs.reconstruct

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "reconstruct", counting)
    return calls


def test_plots_show_the_reconstruction_the_table_measured(two_files, tmp_path, monkeypatch):
    calls = _spy_reconstruct(monkeypatch)
    kept = tmp_path / "kept"
    frame = run_batch("validate", [two_files], workers=1, progress=False, era="mlp-2022-05",
                      labels_dir=kept)
    assert len(calls) == 2 and all(c["mode"] == "exact" for c in calls)
    rows = frame.set_index(frame["file"].map(lambda f: os.path.basename(f)))
    assert rows.loc["same.npz", "differ"] == 0 and rows.loc["other.npz", "differ"] > 0
    assert "_rebuilt" not in frame
    same, other = (kept_label_path(kept, two_files / n) for n in ("same.npz", "other.npz"))
    assert not same.exists()  # equal results need no map
    with np.load(other) as z:
        rebuilt = z["label"]
    stored = load(two_files / "other.npz").label
    assert int((stored != rebuilt).sum()) == rows.loc["other.npz", "differ"]

    written = write_plots(frame, tmp_path / "plots", labels_dir=kept)
    assert len(calls) == 2  # the plots rebuilt nothing
    names = sorted(p.name for p in written)
    assert names == ["accuracy_hist.png", "class_iou.png", "disagreement_other.png"]


def test_kept_labels_come_back_from_worker_processes_and_dask(two_files, tmp_path):
    path = two_files / "other.npz"
    runs = {}
    for name, kw in [("local", {"workers": 1}), ("processes", {"workers": 2})]:
        run_batch("validate", [two_files], progress=False, labels_dir=tmp_path / name, **kw)
        runs[name] = np.load(kept_label_path(tmp_path / name, path))["label"]
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        run_batch("validate", [two_files], client=client, progress=False,
                  labels_dir=tmp_path / "dask")
    runs["dask"] = np.load(kept_label_path(tmp_path / "dask", path))["label"]
    assert all(np.array_equal(runs["local"], v) for v in runs.values())


def test_validate_plots_command_draws_only_the_files_that_differ(two_files, tmp_path, capsys):
    code = main(["validate", str(two_files), "--era", "mlp-2022-05", "--plots",
                 str(tmp_path / "plots"), "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy_hist.png", "class_iou.png", "disagreement_other.png"]
    assert "1/1" in err  # the plot phase's progress bar
    assert "plots: 3 figure(s)" in out


@pytest.mark.parametrize("size", [30, 400, 4000])
def test_one_differing_pixel_stays_visible_at_any_image_size(size):
    diff = np.zeros((size, size), bool)
    diff[size // 2, size // 3] = True
    marked, grown = _marked(diff, np.zeros((size, size, 3), np.uint8), panel_px=400)
    # on a 400-pixel-wide panel the mark spans at least two screen pixels
    assert grown[size // 2].sum() / size * 400 >= 2
    assert (marked[grown] == [255, 0, 255]).all()


def test_reconstruct_writes_a_colour_label_and_says_what_it_skipped(synthetic, tmp_path, capsys):

    path = synthetic("mlp-2022-05")
    out = tmp_path / "out"
    assert main(["reconstruct", str(path), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    first = capsys.readouterr().out
    assert "skipped" not in first.splitlines()[-1]
    rebuilt = load(out / "mlp-2022-05.npz").label
    grey = np.array(Image.open(out / "mlp-2022-05_label.png"))
    colour = np.array(Image.open(out / "mlp-2022-05_label_color.png"))
    assert np.array_equal(grey, rebuilt)
    assert np.array_equal(colour, colorize(rebuilt, ["water", "surf", "sand"]))
    assert main(["reconstruct", str(path), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    again = capsys.readouterr().out
    summary = next(ln for ln in again.splitlines() if ln.startswith("files:"))
    assert ("skipped: 1 (up to date: their outputs are newer than the input and made with these "
            "options; --force redoes them)") in summary
    (out / "mlp-2022-05_label_color.png").unlink()  # a missing output is redone
    assert main(["reconstruct", str(path), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    assert "skipped" not in capsys.readouterr().out.splitlines()[-1]
    assert (out / "mlp-2022-05_label_color.png").exists()


def test_an_output_made_with_other_options_is_redone(synthetic, tmp_path, capsys):
    """The outputs' times alone said 'up to date' after a change of mode or mapping, and the
    old labels stayed: the npz keeps the options it was made with, and other options redo it."""
    path = synthetic("mlp-2022-05")
    out, remapped = tmp_path / "out", tmp_path / "remapped"
    wl, sl = tmp_path / "wl.json", tmp_path / "sl.json"
    wl.write_text('{"water": "water", "surf": "water", "sand": "land"}')
    sl.write_text('{"water": "sea", "surf": "sea", "sand": "sand"}')
    copied = tmp_path / "elsewhere" / "sl.json"
    copied.parent.mkdir()
    copied.write_text(sl.read_text())
    runs = [(["reconstruct", "-o", out, "--mode", "fastest"], False),
            (["reconstruct", "-o", out, "--mode", "fastest"], True),
            (["reconstruct", "-o", out], False), (["reconstruct", "-o", out], True),
            (["remap", "--mapping", wl, "-o", remapped], False),
            (["remap", "--mapping", wl, "-o", remapped], True),
            (["remap", "--mapping", sl, "-o", remapped], False),
            (["remap", "--mapping", copied, "-o", remapped], True)]  # the same rules
    for args, skipped in runs:
        assert main([*map(str, args), str(path), "--quiet", "--workers", "1"]) == 0
        summary = capsys.readouterr().out.splitlines()[-1]
        assert ("skipped: 1" in summary) == skipped, (args, summary)
    assert load(remapped / "mlp-2022-05.npz").classes == ["sea", "sand"]
    made = read_made_with(out / "mlp-2022-05.npz")
    assert made == "reconstruct seed=unused"  # exact is the default, not written; an MLP
    # era uses no seed


def test_export_counts_what_jpeg_labels_changed_and_png_keeps_them(synthetic, tmp_path, capsys):
    path = synthetic("mlp-2022-05", h=64, w=80)
    assert main(["export", str(path), "-o", str(tmp_path / "jpg"), "--quiet",
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    label = load(path).label
    back = np.array(Image.open(tmp_path / "jpg" / "labels" / "mlp-2022-05_label.jpg"))
    changed = int((back != label).sum())
    assert changed > 0  # JPEG blurs class edges
    note = next(ln for ln in out.splitlines() if ln.startswith("note: JPEG labels"))
    assert f"changed {changed:,} px in 1 of 1 file(s)" in note and "--png-labels" in note
    assert main(["export", str(path), "-o", str(tmp_path / "png"), "--png-labels", "--quiet",
                 "--workers", "1"]) == 0
    assert "JPEG" not in capsys.readouterr().out
    exact = np.array(Image.open(tmp_path / "png" / "labels" / "mlp-2022-05_label.png"))
    assert np.array_equal(exact, label)
    helptext = " ".join(next(a for a in build_parser()._subparsers._group_actions[0].choices
                             .items() if a[0] == "export")[1].format_help().split())
    assert "JPEG changes class values" in helptext and "--png-labels" in helptext


@needs_real
def test_jpeg_labels_of_the_real_files_change_by_the_documented_amounts(tmp_path):
    """README and --help quote 99-1,462 px per file (0 on a one-class file)."""

    changed = []
    for f in real_files():
        row = export_file(f, tmp_path / "ex")[0]
        changed.append(row["jpeg_changed_px"])
    nonzero = [c for c in changed if c]
    assert min(nonzero) == 99 and max(nonzero) == 1462


def test_the_accuracy_histogram_draws_every_result_and_100_apart():
    """A 99.99 % result shared the top bin with the results at 100 %; and a bin edge below
    the best result below 100 % would drop it.  Every result is counted once, the exact
    ones in a bar of their own."""
    for percent in ([96.9, 99.2, 99.4, 99.99, 99.992, 99.995, 99.998, 100, 100], [100, 100],
                    [99.5], [99.9915, 100, 100, 100]):
        ax = Figure().subplots()
        _accuracy_bars(ax, np.array(percent, float))
        heights = {}
        for container, label in zip(ax.containers, [t.get_text() for t in ax.get_legend().texts]):
            heights[label.split(" (")[0]] = sum(p.get_height() for p in container.patches)
        assert heights.get("100 % exactly", 0) == percent.count(100)
        assert heights.get("below 100 %", 0) == len(percent) - percent.count(100)
    # one result below 100 % was a histogram bar one unit wide, filling the axis
    ax = Figure().subplots()
    _accuracy_bars(ax, np.array([99.9915, 100, 100, 100]))
    widths = [p.get_width() for c in ax.containers for p in c.patches]
    assert len(widths) == 2 and max(widths) <= (100 - 99.9915) / 20


def test_a_seed_redoes_forest_outputs_only(synthetic, tmp_path, capsys):
    """The seed moves a random forest only; an MLP-era output is kept for any ``--seed``
    (it says so: ``seed=unused``), a forest-era one is redone."""
    for era, redone in (("mlp-2022-05", False), ("rf-2021-06", True)):
        path, out = synthetic(era, h=48, w=64), tmp_path / era
        for args, skipped in (([], False), (["--seed", "3"], not redone),
                              (["--seed", "3"], True)):
            assert main(["reconstruct", str(path), "-o", str(out), "--quiet", "--workers", "1",
                         *args]) == 0
            summary = capsys.readouterr().out.splitlines()[-1]
            assert ("skipped: 1" in summary) == skipped, (era, args, summary)
        made = read_made_with(out / f"{era}.npz")
        assert made == ("reconstruct seed=3" if redone else "reconstruct seed=unused")


def test_a_failed_redo_says_the_earlier_output_is_left(synthetic, tmp_path, capsys):
    """A file that fails after an earlier run wrote its outputs leaves them (made from the
    old input or with other options); its error says so."""
    path, out = synthetic("mlp-2022-05", h=48, w=64), tmp_path / "out"
    assert main(["reconstruct", str(path), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    capsys.readouterr()
    path.write_bytes(b"not an npz any more")
    assert main(["reconstruct", str(path), "-o", str(out), "--quiet", "--workers", "1",
                 "--mode", "fast"]) == 1
    text = capsys.readouterr()
    line = next(ln for ln in (text.out + text.err).splitlines() if "is not" in ln)
    assert f"an earlier run's output is left as it was: {out / 'mlp-2022-05.npz'} and 2 more" in line
    assert read_made_with(out / "mlp-2022-05.npz") == "reconstruct seed=unused"


def test_the_record_summary_counts_files_and_names_the_worst_trial():
    """With --trials the summary said 'files 10' for 5 files, summed the trials' Mpx too, and
    named a worst file whose final label is at 100 %."""
    rows = [{"file": "a.npz", "trial": "", "record": "r", "mpx": 0.5, "accuracy": 1.0,
             "seconds": 1.0, "error": ""},
            {"file": "a.npz", "trial": "000", "record": "r", "mpx": 0.5, "accuracy": 0.99,
             "seconds": 0.5, "error": ""},
            {"file": "b.npz", "trial": "", "record": "r", "mpx": 0.25, "accuracy": 0.995,
             "seconds": 2.0, "error": ""}]
    table = summarize(pd.DataFrame(rows))
    everything = table[table["record"] == "ALL"].iloc[0]
    assert (everything["files"], everything["results"], everything["mpx"]) == (2, 3, 0.75)
    assert everything["worst_file"] == "a.npz [trial 000]" and everything["slowest_file"] == "b.npz"
    plain = summarize(pd.DataFrame([r for r in rows if not r["trial"]]))
    assert "results" not in plain and plain.iloc[0]["files"] == 2
    exact = summarize(pd.DataFrame([{**r, "accuracy": 1.0} for r in rows]))
    assert set(exact["worst_file"]) == {"none below 100 %"}  # as the summary line says


def test_a_report_writes_whole_numbers_as_the_table_does(synthetic, tmp_path):
    """With a failed row beside, --report wrote n_sigmas 2.0 and height 48.0 (--table 2, 48)."""
    good = synthetic("mlp-2022-05")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    assert main(["validate", str(good), str(bad), "--report", str(tmp_path / "r.csv"), "--table",
                 str(tmp_path / "t.csv"), "--quiet", "--workers", "1"]) == 1
    for name in ("r.csv", "t.csv"):
        lines = (tmp_path / name).read_text().splitlines()[1:]
        first = next(r for r in lines if "mlp-2022-05" in r)
        assert ",48,64," in first and ",48.0," not in first and ",2.0," not in first, (name, first)
