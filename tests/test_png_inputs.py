"""PNG-era sessions as input to load() and every command, and the session replay."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from png_sessions import _oct2020, _save

import doodle_engine as de
from doodle_engine import classifier, session
from doodle_engine.cli import _session_view, main
from doodle_engine.errors import DoodleError
from doodle_engine.example import make_example
from doodle_engine.files import short_names
from doodle_engine.png import parse_settings


def _ann(folder, stem="img_a", ts="2021-03-24-21-33"):
    return folder / f"{stem}_annotations{ts}_db.png"


def test_load_doodle_png_takes_era_from_the_date(march_session):
    folder, truth = march_session
    rec = de.load(_ann(folder))
    image, doodles, label = truth["img_a"]
    assert np.array_equal(rec.image, image) and np.array_equal(rec.doodles, doodles)
    assert np.array_equal(rec.label, label - 1)
    assert rec.classes == ["water", "land", "sand"] and rec.classes_source == "classes.txt"
    # 21:33 on 2021-03-24 falls before 647a0de (21:44): the era of 0916994
    assert rec.settings.era == "rf-2021-03b" and rec.settings.layout == 0
    assert rec.settings.era_source.startswith("date of the session")
    assert rec.settings.crf_downsample == 3 and rec.settings.n_estimators == 3  # its defaults
    res = de.reconstruct(rec)
    assert res.label0.shape == rec.shape and res.era == "rf-2021-03b"


def test_user_settings_and_era(march_session):
    folder, _ = march_session
    rec = de.load(_ann(folder), settings="crf_theta=60,crf_mu=80")
    assert (rec.settings.crf_theta, rec.settings.crf_mu) == (60.0, 80.0)
    assert "user (crf_theta, crf_mu)" in rec.settings.era_source
    rec = de.load(_ann(folder), era="rf-2021-02c", settings={"n_estimators": 7})
    assert rec.settings.era == "rf-2021-02c" and rec.settings.n_estimators == 7
    assert parse_settings('{"gt_prob": 0.8}') == {"gt_prob": 0.8}
    with pytest.raises(DoodleError, match="not key=value"):
        parse_settings("crf_theta")
    with pytest.raises(DoodleError, match="unknown setting"):
        de.load(_ann(folder), settings="theta=3")


def test_triple_and_session_folder(march_session):
    folder, truth = march_session
    app = folder.parent.parent
    rec = de.load_triple(app / "assets" / "img_b.png", _ann(folder, "img_b", "2021-03-24-21-38"),
                         folder / "img_b_label_greyscale2021-03-24-21-39_db.png")
    assert np.array_equal(rec.doodles, truth["img_b"][1]) and rec.settings.era == "rf-2021-03b"  # 21:38
    recs = de.load_session(folder)
    assert [r.path.rsplit("/", 1)[-1][:5] for r in recs] == ["img_a", "img_b"]
    with pytest.raises(DoodleError, match="load_session"):
        de.load(folder)
    with pytest.raises(DoodleError, match="not a Doodler doodle PNG"):
        de.load(folder / "img_a_label_greyscale2021-03-24-21-33_db.png")


def test_every_command_takes_a_results_folder(march_session, tmp_path, capsys):
    folder, _ = march_session
    assert main(["info", "--json", str(_ann(folder))]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info[0]["era"] == "rf-2021-03b" and info[0]["settings"]["layout"] == 0
    report = tmp_path / "v.csv"
    assert main(["validate", str(folder), "--workers", "1", "--quiet", "--report", str(report)]) == 0
    frame = pd.read_csv(report)
    assert len(frame) == 2 and set(frame["era"]) == {"rf-2021-03b"}
    assert frame["history"].str.startswith(session.HISTORY_MISSING).all()
    out = tmp_path / "rebuilt"
    assert main(["reconstruct", str(folder), "-o", str(out), "--workers", "1", "--quiet",
                 "--settings", "crf_theta=60"]) == 0
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".npz")
    assert len(written) == 2  # with the era's label PNGs beside them
    back = de.load(out / written[0])
    assert back.label is not None and back.shape == (12, 16)
    assert main(["stats", str(folder), "--workers", "1", "--quiet"]) == 0
    exp = tmp_path / "exp"
    assert main(["export", str(folder), "-o", str(exp), "--workers", "1", "--quiet",
                 "--png-labels"]) == 0
    assert len(list((exp / "labels").iterdir())) == 2
    assert main(["eras", str(folder), "--workers", "1", "--quiet"]) == 0
    assert "rf-2021-03b" in capsys.readouterr().out


def _one_error_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_bad_png_inputs_one_line_nothing_written(oct_session, tmp_path, capsys):
    app, image, mask, label = oct_session
    results = app / "results"
    out = tmp_path / "out"
    # a label PNG of another size
    _save(np.ones((5, 5), np.uint8), results / "cropped3_6_label_greyscale.png")
    assert main(["reconstruct", str(results), "-o", str(out), "--workers", "1", "--quiet"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "label PNG is 5x5" in line
    assert not out.exists() or not any(out.iterdir())
    # unknown colours
    _save(label, results / "cropped3_6_label_greyscale.png")
    ann = _oct2020(mask)
    ann[0, 0:3, :3] = (1, 2, 3)
    _save(ann, results / "cropped3_6_annotations.png")
    assert main(["validate", str(results), "--workers", "1", "--quiet"]) == 1
    assert "fit none of the" in _one_error_line(capsys.readouterr().err)
    # a folder with no images
    (app / "assets" / "cropped3_6.png").unlink()
    _save(_oct2020(mask), results / "cropped3_6_annotations.png")
    assert main(["info", str(results / "cropped3_6_annotations.png")]) == 2
    assert "no image cropped3_6" in _one_error_line(capsys.readouterr().err)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(empty), "--quiet"]) == 2
    assert "no Doodler doodle PNGs" in _one_error_line(capsys.readouterr().err)


def test_settings_for_a_npz_is_refused(tmp_path):
    path = make_example(tmp_path / "x.npz", 24, 32)
    with pytest.raises(DoodleError, match="PNG sessions only"):
        de.load(path, settings={"crf_theta": 3})


# ----------------------------------------------------------------------------- replay
def _session_records(folder, era):
    return de.load_session(folder, era=era)


def test_accumulate_rows_pools_rows_and_grows_the_forest(march_session):
    folder, _ = march_session
    recs = _session_records(folder, "rf-2021-03c")
    steps = session.replay(recs, seed=0, mode="reference")
    n = recs[0].settings.n_estimators
    assert [s.knob for s in steps] == ["accumulate-rows"] * 2
    assert [s.earlier for s in steps] == [0, 1]
    assert [s.trees for s in steps] == [2 * n, 3 * n]
    feats = []
    for r in recs:
        f = {}
        feats.append(session._features(r, r.settings, classifier.era_recipe(r.settings.era),
                                       "reference", f))
    own = [len(classifier.training_rows(f, r.doodles, r.settings)[1]) for f, r in zip(feats, recs)]
    assert steps[0].rows == own[0] and steps[1].rows == own[0] + own[1]
    # the second image's forest is the one fitted on both images' rows
    x0, y0, _ = classifier.training_rows(feats[0], recs[0].doodles, recs[0].settings)
    clf, _ = classifier.fit(feats[1], recs[1].doodles, recs[1].settings, seed=0,
                            mode="reference", extra_rows=(x0, y0), trees=3 * n)
    want = classifier.predict_undoodled(clf, feats[1], recs[1].doodles)
    got = steps[1].result.classifier_label
    assert np.array_equal(got, want)
    rows = session.replay_table(steps, recs).to_dict("records")
    assert rows[0]["session_changed_px"] == 0  # the first image has no history in the folder
    assert {"accuracy", "accuracy_alone", "session_points"} <= set(rows[1])


def test_first_forest_and_add_trees(march_session):
    folder, _ = march_session
    steps = session.replay(_session_records(folder, "rf-2020-11b"), mode="reference",
                           compare=False)
    assert [s.knob for s in steps] == ["first-forest"] * 2 and [s.trees for s in steps] == [10, 10]
    assert all("features" not in s.result.timings for s in steps)  # the session's are reused
    steps = session.replay(_session_records(folder, "rf-2020-11c"), mode="reference",
                           compare=False)
    assert [s.trees for s in steps] == [10, 20] and [s.rows is not None for s in steps] == [True] * 2
    steps = session.replay(_session_records(folder, "rf-2020-10f"), mode="reference",
                           compare=False)
    assert [s.knob for s in steps] == ["none", "none"]
    assert session.history_note("rf-2020-10f") == ""
    assert session.history_note("rf-2021-06").startswith(session.HISTORY_MISSING)
    assert session.history_note("mlp-2021-10") == ""


def test_first_forest_reuses_the_first_images_forest(march_session):
    folder, _ = march_session
    recs = _session_records(folder, "rf-2020-11b")
    steps = session.replay(recs, mode="reference", compare=True)
    # the second image, predicted by the first image's forest, differs from its own forest's
    first = session.replay(recs[:1], mode="reference", compare=False)
    assert steps[0].result.label.shape == first[0].result.label.shape
    assert np.array_equal(steps[0].result.label, first[0].result.label)


def test_validate_session_cli(march_session, capsys, tmp_path):
    folder, _ = march_session
    assert main(["validate", "--session", str(folder), "--report", str(tmp_path / "x.npz")]) == 2
    assert "--report takes a file name ending in .csv" in capsys.readouterr().err
    assert main(["validate", "--session", str(folder), "--mode", "reference"]) == 0
    out = capsys.readouterr().out
    assert "session " in out and "2 file(s)" in out and "time order" in out
    assert "accuracy_alone" in out and "session_points" in out
    # whole numbers stay whole (trees 6.0000 and rows 9723.0000 were shown), notes once each
    table = out.split("\n", 1)[1]
    header = table.splitlines()[0].split()
    for line in table.splitlines()[1:3]:
        cells = dict(zip(header, line.split()))
        assert "." not in cells["trees"] and "." not in cells["rows"], line
    notes = [ln for ln in out.splitlines() if ln.startswith("note:")]
    assert all(len(set(n.split(": ", 2)[-1].split("; "))) == len(n.split(": ", 2)[-1].split("; "))
               for n in notes)


def test_first_forest_with_other_classes_says_so(march_session):
    folder, _ = march_session
    recs = _session_records(folder, "rf-2020-11b")
    recs[1].doodles[recs[1].doodles == 3] = 0  # the second image doodles two classes only
    steps = session.replay(recs, mode="reference", compare=False)
    assert any("differ from the session's first forest" in n for n in steps[1].notes)


def test_session_table_blank_where_a_file_has_no_value():
    """A file without a stored label, or the MLP's rows without trees: blank cells, not
    ``<NA>`` beside ``NaN``; whole numbers stay whole and names are the shortest that tell
    files apart."""
    frame = pd.DataFrame([
        {"file": "/s/a/x.png", "era": "mlp-2021-10", "trees": None, "rows": 120,
         "accuracy": 0.98765, "differ": 12, "notes": ""},
        {"file": "/s/b/x.png", "era": "mlp-2021-10", "trees": None, "rows": 240,
         "accuracy": float("nan"), "differ": float("nan"), "notes": "no label"}])
    names = dict(zip(frame["file"], short_names(list(frame["file"]))))
    text = _session_view(frame, names).to_string(index=False)
    assert "<NA>" not in text and "NaN" not in text and "None" not in text
    lines = text.splitlines()
    assert lines[1].split() == ["a/x.png", "mlp-2021-10", "120", "0.9877", "12"]
    assert lines[2].split() == ["b/x.png", "mlp-2021-10", "240"]
