"""What the command line says: exit codes with one line saying why, summaries, era columns."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from conftest import doodles_for, scene, write_npz

from doodle_engine import __version__
from doodle_engine.cli import _assumed_eras, build_parser, main
from doodle_engine.example import make_example


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"doodle-engine {__version__}"


@pytest.mark.parametrize("command", [["validate"], ["stats"], ["info"], ["bench"],
                                     ["reconstruct", "-o", "OUT"], ["export", "-o", "OUT"]])
def test_a_folder_without_npz_files_exits_2_with_one_line(capsys, tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a Doodler file")
    for folder in (empty, tmp_path / "other"):
        args = [a.replace("OUT", str(tmp_path / "o")) for a in command] + [str(folder)]
        code, out, err = run(capsys, *args, *(["--quiet"] if command[0] not in ("info", "bench") else []))
        assert code == 2
        assert err.strip() == (f"error: {folder}: folder holds no .npz files and no Doodler doodle PNGs "
                               f"(*_annotations*.png)")
        assert "(no files)" not in out


@pytest.mark.parametrize("command", [["validate", "--html", "H", "--plots", "P", "--table", "T"],
                                     ["stats", "--report", "T"], ["atlas", "-o", "P"],
                                     ["export", "--gym", "-o", "P"], ["remap", "--mapping",
                                     "M", "-o", "P"]])
def test_a_missing_input_exits_2_before_writing_anything(capsys, tmp_path, synthetic, command):
    """A mistyped path ran, wrote the reports and table of a run over nothing, and exited 1."""
    real = synthetic("mlp-2022-05")
    (tmp_path / "M").write_text('{"water": "water", "surf": "water", "sand": "land"}')
    names = {"H": "r.html", "P": "out", "T": "t.csv", "M": "M"}
    args = [str(tmp_path / names[a]) if a in names else a for a in command]
    for missing in (tmp_path / "nope_dir", tmp_path / "nope.zip",
                    f"{tmp_path / 'nope.zip'}::a.npz"):
        code, out, err = run(capsys, command[0], str(real), str(missing), *args[1:], "--quiet")
        assert code == 2 and err.strip() == (
            f"error: {str(missing).split('::')[0]}: no such file or folder"), err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["M", "results2022-05-04-14-00"]


def test_bench_takes_a_folder_and_shows_progress(capsys, synthetic):
    path = synthetic("mlp-2022-05", h=24, w=32)
    code, out, err = run(capsys, "bench", path.parent)
    assert code == 0
    rows = [ln for ln in out.splitlines() if " crf=" in ln]
    assert len(rows) == 5 and all(ln.startswith(path.name) for ln in rows)
    assert all("mlp-2022-05 (layout+date)" in ln for ln in rows)
    assert "5/5" in err  # the progress bar counted every mode of the file


LONG = "2014-02-23-18-40-38_L8_a_very_long_file_name_that_goes_on_and_on_and_on_db.npz"


@pytest.fixture
def dated_and_undated(tmp_path):
    """An undated file with an earlier trial (era assumed) and a dated one (era read from the
    date), with long names."""
    undated, dated = tmp_path / "undated", tmp_path / "session" / "results2022-05-04-14-36"
    undated.mkdir()
    dated.mkdir(parents=True)
    image, truth = scene(32, 40, seed=1)
    d = doodles_for(truth)
    settings = [3, 2, 1, 1, 1, 0.9, 2]
    onehot = (np.arange(3) == truth[..., None]).astype(np.uint8)
    write_npz(undated / ("undated_" + LONG), image, d, truth, settings,
              extra={"0image": image, "0doodles": d, "0label": onehot,
                     "0settings": np.array(settings, float)})
    write_npz(dated / LONG, image, d, truth, settings)
    return tmp_path


def test_validate_table_names_files_in_full_with_era_and_source(capsys, dated_and_undated):
    code, out, err = run(capsys, "validate", dated_and_undated, "--trials", "--quiet",
                         "--workers", "1")
    assert code == 0, err
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["file", "trial", "era", "era_source"]
    rows = [ln for ln in lines if LONG in ln and not ln.startswith(("files:", "note:"))]
    assert len(rows) == 3  # the two files' final labels and the undated file's trial
    # no date in the path: the era is told from the stored label (best match), and said so
    assert any(ln.startswith("undated_" + LONG) and "best match" in ln for ln in rows)
    assert any(ln.startswith(LONG) and "mlp-2022-05" in ln and "layout+date" in ln for ln in rows)
    summary = next(ln for ln in lines if ln.startswith("files:"))
    assert summary.startswith("files: 2 (3 results: 2 final labels + 1 earlier trial)  failed: 0")
    note = next(ln for ln in lines if ln.startswith("note:"))
    assert "told from the stored label for 1 file(s)" in note and "undated_" + LONG in note


@pytest.mark.parametrize("given", ["99.9", "99.9%", "0.999"])
def test_min_accuracy_takes_a_percent_or_a_fraction(given):
    args = build_parser().parse_args(["validate", "x.npz", "--min-accuracy", given])
    assert args.min_accuracy == pytest.approx(0.999)


@pytest.mark.parametrize("bad", ["101", "-1", "abc", "200%"])
def test_min_accuracy_refuses_what_is_not_an_accuracy(capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "x.npz", "--min-accuracy", bad])
    assert exc.value.code == 2 and "--min-accuracy" in capsys.readouterr().err


def test_min_accuracy_exit_names_the_results_below_and_by_how_much(capsys, synthetic):
    path = synthetic("mlp-2022-05")
    code, out, err = run(capsys, "validate", path, "--quiet", "--workers", "1")
    assert code == 0
    acc = float(next(ln for ln in out.splitlines() if ln.startswith("files:"))
                .split("(")[-1].rstrip("%)")) / 100
    assert acc < 1  # the stored label is the scene's truth, which no rebuild matches exactly
    code, out, err = run(capsys, "validate", path, "--quiet", "--workers", "1",
                         "--min-accuracy", "100%")
    assert code == 1
    below = [ln for ln in err.splitlines() if ln.startswith("below --min-accuracy")]
    assert len(below) == 1 and path.name in below[0]
    assert f"{(1 - acc) * 100:.4f} points below" in below[0]
    assert err.splitlines()[-1] == "exit 1: 1 result(s) below --min-accuracy 100.0000%"
    threshold = f"{acc * 100 - 0.01:.4f}"
    code, out, err = run(capsys, "validate", path, "--quiet", "--workers", "1",
                         "--min-accuracy", threshold)
    assert code == 0 and err == ""


def test_failed_files_exit_1_with_a_line_saying_why(capsys, synthetic, tmp_path):
    path = synthetic("mlp-2022-05")
    broken = path.parent / "broken.npz"
    broken.write_bytes(b"not a zip")
    code, out, err = run(capsys, "validate", path.parent, "--quiet", "--workers", "1")
    assert code == 1
    assert err.splitlines()[-1] == "exit 1: 1 file(s) failed (listed above)"
    assert f"error: {broken}:" in err


def test_stats_prints_a_short_summary_and_warns_when_no_file_joined(capsys, synthetic, tmp_path):
    path = synthetic("mlp-2022-05")
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"annotation_image_filename": ["someone_else.npz"], "ImageHeightPx": [5]}
                 ).to_csv(meta, index=False)
    code, out, err = run(capsys, "stats", path, "--metadata", meta, "--report",
                         tmp_path / "s.csv", "--quiet", "--workers", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["class", "pixels", "fraction", "files"]
    assert len(lines) == 1 + 3 + 1  # water, surf, sand, and the counts line: no unlabelled
    assert lines[-1].startswith("files: 1  failed: 0  full table (per file):")
    assert err.startswith("warning: no file joined the metadata")
    table = pd.read_csv(tmp_path / "s.csv")
    assert "ImageHeightPx" in table and table["ImageHeightPx"].isna().all()
    pd.DataFrame({"annotation_image_filename": [f"x/{path.name}"], "ImageHeightPx": [5]}
                 ).to_csv(meta, index=False)
    code, out, err = run(capsys, "stats", path, "--metadata", meta, "--quiet", "--workers", "1")
    assert code == 0 and err == "" and "metadata: 1 of 1 file(s) joined" in out


def test_stats_summary_ignores_metadata_columns_named_px(capsys, synthetic, tmp_path):
    path = synthetic("mlp-2022-05")
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"annotation_image_filename": [path.name], "px_size_m": [10]}).to_csv(meta, index=False)
    code, out, err = run(capsys, "stats", path, "--metadata", meta, "--quiet", "--workers", "1")
    assert code == 0 and "size_m" not in out


def test_the_era_note_names_every_way_an_era_was_told(capsys):

    ok = [{"file": "/d/a.npz", "era": "rf-2021-06", "era_source": "best match (tie)"},
          {"file": "/d/b.npz", "era": "mlp-2021-06",
           "era_source": "best match (exact, others not rebuilt)"}]
    _assumed_eras(ok)  # the rows of the results without error
    note = capsys.readouterr().out
    assert "for 2 file(s) (best match (tie); best match (exact, others not rebuilt))" in note


def test_the_era_note_names_a_few_files_and_counts_the_rest(capsys):
    """Over the release the note would list hundreds of files: it names five and counts
    the rest, pointing at the column that marks them all."""
    ok = [{"file": f"/d/f{i}.npz", "era": "mlp-2022-05", "era_source": "best match"}
          for i in range(8)]
    _assumed_eras(ok)
    note = capsys.readouterr().out.strip()
    assert "for 8 file(s)" in note and "f0.npz, f1.npz, f2.npz, f3.npz, f4.npz and 3 more" in note
    assert "f5.npz" not in note and "era_source column" in note


def test_every_command_and_option_says_what_it_is_for():
    """--help of each command: a description, a help text for every option, a usage line
    that fits a terminal (the era names are not listed in it), and --force only where a
    command writes outputs it could skip."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        assert sp.description, name
        silent = [a.dest for a in sp._actions if a.help is None]
        assert not silent, (name, silent)
        assert max(len(line) for line in sp.format_usage().splitlines()) <= 80, name
        skips = name in ("reconstruct", "remap", "export")  # outputs newer than the input
        assert any("--force" in a.option_strings for a in sp._actions) == skips, name


def test_a_mistyped_option_gets_the_nearest_and_the_command_s_help(capsys):
    """'--gmy' said only 'unrecognized arguments' and pointed to the top-level --help."""
    for args, wrong, near in ((["export", "--gmy", "x", "-o", "g"], "--gmy", "--gym"),
                              (["validate", "x", "--modee", "fast"], "--modee fast", "--mode"),
                              (["stats", "x", "--reprot=r.csv"], "--reprot=r.csv", "--report")):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.splitlines() == [
            f"error: unrecognized arguments: {wrong}; did you mean {near!r}?",
            f"(doodle-engine {args[0]} --help lists the options)"]


def test_the_summary_names_a_worst_file_only_below_100(capsys, synthetic, tmp_path):
    """'worst: good.npz (100.0000%)' named one file of equals as the worst."""
    exact = make_example(tmp_path / "ex.npz", 48, 64)  # rebuilds at 100 %
    code, out, _ = run(capsys, "validate", str(exact), "--quiet", "--workers", "1")
    assert code == 0 and "median accuracy: 100.0000%  worst: none below 100 %" in out
    code, out, _ = run(capsys, "validate", str(exact), str(synthetic("mlp-2022-05")), "--quiet",
                       "--workers", "1")
    assert "worst: mlp-2022-05.npz (96.8750%)" in out


def test_a_report_named_like_an_input_is_refused(capsys, synthetic, tmp_path):
    """--report x.npz wrote a CSV named x.npz beside the inputs; the next run failed on it."""
    path = synthetic("mlp-2022-05")
    for command in (["validate"], ["stats"]):
        code, _, err = run(capsys, *command, str(path), "--report", str(path.parent / "x.npz"),
                           "--quiet", "--workers", "1")
        assert code == 2 and "--report takes a file name ending in .csv or .parquet" in err
        assert not (path.parent / "x.npz").exists()


def test_a_file_without_settings_and_an_era_of_the_other_layout_are_said(capsys, tmp_path):
    """'no settings: pass settings=' pointed at an API argument the command does not have
    (and info said nothing); --era rf-2021-06 on an MLP file said 'n_estimators must be a
    whole number >= 1, got 0.9' (its gt_prob, read at the forest layout's place)."""
    image, truth = scene(40, 56, seed=1)
    bare = write_npz(tmp_path / "bare.npz", image, doodles_for(truth), truth, None)
    code, _, err = run(capsys, "validate", str(bare), "--quiet", "--workers", "1")
    assert code == 1 and "holds no 'settings' array" in err and "pass settings=" not in err
    code, out, _ = run(capsys, "info", str(bare))
    assert code == 0 and "  settings  none: the file holds no 'settings' array" in out
    mlp = write_npz(tmp_path / "mlp.npz", image, doodles_for(truth), truth,
                    [3, 2, 2, 1, 1, 0.9, 2])
    code, _, err = run(capsys, "validate", str(mlp), "--era", "rf-2021-06", "--quiet",
                       "--workers", "1")
    assert code == 1 and ("era rf-2021-06 wrote its settings in the 7rf layout; these 7 values "
                          "are the 7mlp layout") in err
