"""validate --html (one self-contained page from one run), the reasons beside results below
100 %, the runner-up's extra pixels, and the stats table's column types (issues 22 and 25)."""

from __future__ import annotations

import base64
import io
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from browser import (
    SKIP_REASON,
    console_errors,
    files_requested,
    find_chromium,
    screenshot,
)
from conftest import REAL_DIR, SETTINGS, doodles_for, needs_real, scene, write_npz
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from doodle_engine import DoodleError, htmlreport, jobs, load, reconstruct
from doodle_engine.cli import main
from doodle_engine.htmlreport import page
from doodle_engine.outputs import HTML_GENERATOR as GENERATOR
from doodle_engine.plots import PLOT_SOFTWARE
from doodle_engine.reasons import NO_KNOWN_CAUSE, add_reasons, causes, reason

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- fixtures
def _changed(label, n, seed=0):
    """``label`` with ``n`` pixels set to another class."""
    out = label.copy()
    rng = np.random.default_rng(seed)
    idx = rng.choice(out.size, n, replace=False)
    flat = out.reshape(-1)
    flat[idx] = (flat[idx] + 1) % 3
    return out


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """Three dated files: ``forest.npz`` (a forest era, 40 px changed in its stored label:
    below 100 %, its history missing), ``mlp.npz`` (an MLP era, 25 px changed: below 100 %
    with no known cause) and ``one.npz`` (one class doodled: exact)."""
    root = tmp_path_factory.mktemp("html")
    image, truth = scene(48, 64, seed=5)
    doodles = doodles_for(truth)
    forest_dir = root / "results2021-06-20-14-00"
    mlp_dir = root / "results2022-05-10-14-00"
    for d in (forest_dir, mlp_dir):
        d.mkdir()
    tmp = write_npz(forest_dir / "forest.npz", image, doodles, truth, SETTINGS["rf-2021-06"])
    label = reconstruct(load(tmp), seed=0).label0
    write_npz(tmp, image, doodles, _changed(label, 40), SETTINGS["rf-2021-06"])
    tmp = write_npz(mlp_dir / "mlp.npz", image, doodles, truth, SETTINGS["mlp-2021-10"])
    label = reconstruct(load(tmp)).label0
    write_npz(tmp, image, doodles, _changed(label, 25, seed=1), SETTINGS["mlp-2021-10"])
    one = np.where(doodles == 1, 1, 0).astype(np.uint8)
    write_npz(mlp_dir / "one.npz", image, one, np.zeros_like(truth), SETTINGS["mlp-2021-10"])
    return root


@pytest.fixture(scope="module")
def html_run(run_folder, tmp_path_factory):
    """One ``validate --html --plots --report`` run over ``run_folder``: (out folder, stdout)."""
    out = tmp_path_factory.mktemp("html_out")
    code = main(["validate", str(run_folder), "--html", str(out / "report.html"), "--plots",
                 str(out / "plots"), "--report", str(out / "table.csv"), "--workers", "1",
                 "--quiet"])
    assert code == 0
    return out


def _images(text):
    return [base64.b64decode(m) for m in DATA_URI.findall(text)]


# ----------------------------------------------------------------------------- reasons
def test_each_known_cause_gives_its_short_word_and_a_sentence():
    base = {"accuracy": 0.97, "era": "rf-2021-06", "era_source": "layout+date", "mode": "exact",
            "history": "history missing: cannot be exact (...)", "notes": "", "error": ""}
    assert reason(base) == "history missing, forest unseeded"
    assert reason({**base, "era": "mlp-2021-10", "history": ""}) == NO_KNOWN_CAUSE
    assert reason({**base, "era": "mlp-2021-10", "history": "", "mode": "fast"}) == "mode fast"
    assumed = {**base, "era": "mlp-2021-10", "history": "",
               "era_source": "layout (no date: assumed)"}
    assert reason(assumed) == "era assumed"
    assert "--era sets it" in dict(causes(assumed))["era assumed"]
    one = {**base, "accuracy": 1.0, "notes": "one class doodled: every pixel gets it, no "
                                             "classifier, no CRF"}
    assert reason(one) == "one class doodled"  # what was done, also at 100 %
    assert reason({**base, "accuracy": 1.0}) == ""  # causes of a shortfall only below 100 %
    assert reason({**base, "error": "x.npz: broken"}) == ""
    big = {**base, "era": "mlp-2021-10", "history": "", "height": 768, "width": 768,
           "classifier_downsample": 3, "doodle_fraction": 377_813 / 768**2}
    assert reason(big) == "float order"  # 125,938 rows, above the MLP's 100,000 cap
    assert "cap of 100,000 rows drawn from more" in dict(causes(big))["float order"]
    assert reason({**big, "doodle_fraction": 299_997 / 768**2}) == NO_KNOWN_CAUSE  # 99,999
    nan = {**base, "history": float("nan"), "notes": float("nan"), "era": "mlp-2021-10"}
    assert reason(nan) == NO_KNOWN_CAUSE  # missing cells of a resumed table
    # the legend gives each cause once, so its sentence holds for every row that has it
    rows = [big, {**big, "doodle_fraction": 400_000 / 768**2}, assumed,
            {**assumed, "era": "mlp-2021-06"}]
    assert len({dict(causes(r)).get(c) for r in rows for c in ("float order",)} - {None}) == 1
    assert dict(causes(rows[2]))["era assumed"] == dict(causes(rows[3]))["era assumed"]


def test_an_era_set_by_hand_is_the_reason_of_a_result_below_100():
    row = {"accuracy": 0.96, "era": "mlp-2021-10", "era_source": "user", "mode": "exact"}
    assert reason(row) == "era set"
    assert "set by --era" in dict(causes(row))["era set"]


def test_reasons_are_recomputed_for_resumed_rows_and_stand_after_the_accuracy():
    frame = pd.DataFrame([{"file": "a.npz", "era": "rf-2021-06", "accuracy": 0.9,
                           "accuracy_max": 0.95, "mode": "exact", "history": "", "notes": "",
                           "kappa": 0.5, "error": ""}])
    out = add_reasons(frame)
    assert list(out.columns) == ["file", "era", "accuracy", "accuracy_max", "reason", "mode",
                                 "history", "notes", "kappa", "error"]
    assert out.loc[0, "reason"] == "forest unseeded"


# ----------------------------------------------------------------------------- terminal
def test_the_terminal_table_shows_the_reason_beside_the_number(run_folder, capsys):
    code, out, _ = run(capsys, "validate", run_folder, "--workers", "1", "--quiet")
    assert code == 0
    lines = out.splitlines()
    header = lines[0]
    assert header.index("accuracy") < header.index("reason") < header.index("mean_iou")
    rows = {ln.split()[0]: ln for ln in lines[1:4]}
    assert "history missing, forest unseeded" in rows["forest.npz"]
    assert NO_KNOWN_CAUSE in rows["mlp.npz"]
    assert "one class doodled" in rows["one.npz"] and "1.00000" in rows["one.npz"]
    assert any(ln.startswith("why: history missing: cannot be exact") for ln in lines)
    assert any(ln.startswith("why: forest unseeded: Doodler's random forest") for ln in lines)


def test_the_runner_up_column_says_it_counts_extra_pixels(tmp_path, capsys):
    image, truth = scene(40, 56, seed=2)
    path = write_npz(tmp_path / "undated.npz", image, doodles_for(truth), truth,
                     SETTINGS["mlp-2021-10"])
    code, out, _ = run(capsys, "validate", path, "--era", "auto", "--workers", "1", "--quiet",
                       "--report", tmp_path / "t.csv")
    assert code == 0
    assert "runner_up_extra_px" in out.splitlines()[0] and "runner_up_differ" not in out
    table = pd.read_csv(tmp_path / "t.csv")
    assert "runner_up_extra_px" in table and "runner_up_differ" not in table
    row = table.iloc[0]
    cands = dict(c.split(":") for c in row["candidates"].split(";"))
    assert row["runner_up_extra_px"] == int(cands[row["runner_up"]]) - row["differ"]


def test_report_csv_keeps_each_column_group_together(html_run):
    table = pd.read_csv(html_run / "table.csv", keep_default_na=False)
    cols = list(table.columns)
    for prefix in ("iou_", "t_"):
        at = [i for i, c in enumerate(cols) if c.startswith(prefix)]
        assert at == list(range(at[0], at[0] + len(at))), (prefix, cols)
    assert max(i for i, c in enumerate(cols) if c.startswith("iou_")) < min(
        i for i, c in enumerate(cols) if c.startswith("t_"))
    assert cols[-1] == "error"
    assert set(table["reason"]) == {"history missing, forest unseeded", NO_KNOWN_CAUSE,
                                    "one class doodled"}


# ----------------------------------------------------------------------------- the page
def test_the_page_holds_summary_table_reasons_figures_and_maps(html_run):
    text = (html_run / "report.html").read_text(encoding="utf-8")
    assert f'content="{GENERATOR}"' in text
    assert "<h2>Summary</h2>" in text and "files: 3  failed: 0" in text
    for word in ("forest.npz", "mlp.npz", "one.npz", "history missing, forest unseeded",
                 NO_KNOWN_CAUSE, "one class doodled", "What the reasons mean",
                 "<dt>history missing</dt><dd>cannot be exact",
                 "<dt>one class doodled</dt><dd>every pixel gets it"):
        assert word in text, word
    assert "history missing history missing" not in re.sub("<[^>]+>", " ", text)
    assert text.count('<tr id="r') == 3 and text.count('class="below"') == 2
    # self-contained: no script, no style sheet or image from elsewhere, every image embedded
    assert "<script" not in text and "<link" not in text
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    images = _images(text)
    assert len(images) == 4  # histogram, IoU per class, two disagreement maps
    for data in images:
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "PNG" and img.size[0] > 100


def test_the_page_embeds_the_very_figures_the_run_drew(html_run):
    """--plots and --html together: the page's images are the files in the plots folder,
    byte for byte (drawn once, from the labels the run kept)."""
    images = _images((html_run / "report.html").read_text(encoding="utf-8"))
    drawn = sorted((html_run / "plots").iterdir())
    assert [p.name for p in drawn] == ["accuracy_hist.png", "class_iou.png",
                                       "disagreement_forest.png", "disagreement_mlp.png"]
    assert sorted(images) == sorted(p.read_bytes() for p in drawn)


def test_html_alone_rebuilds_once_and_leaves_only_the_page(run_folder, tmp_path, capsys,
                                                           monkeypatch):
    calls = []
    real = jobs.reconstruct
    monkeypatch.setattr(jobs, "reconstruct",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "validate", run_folder, "--html", out / "r.html",
                          "--workers", "1", "--quiet")
    assert code == 0 and len(calls) == 3  # one rebuild per result; the maps rebuilt nothing
    assert [p.name for p in out.iterdir()] == ["r.html"]
    assert "html: " in stdout and "4 figure(s) embedded" in stdout and "plots:" not in stdout
    text = (out / "r.html").read_text(encoding="utf-8")
    assert len(_images(text)) == 4
    assert 'href="#disagreement_forest"' in text  # the table row links to its map


def test_plots_alone_write_no_page(run_folder, tmp_path, capsys):
    code, out, _ = run(capsys, "validate", run_folder, "--plots", tmp_path / "p", "--workers",
                       "1", "--quiet")
    assert code == 0 and "html:" not in out and not list(tmp_path.glob("*.html"))
    assert len(list((tmp_path / "p").glob("*.png"))) == 4


def test_plots_of_an_earlier_run_are_removed_and_a_resumed_page_says_so(run_folder, tmp_path,
                                                                        capsys):
    """A second run into the same --plots folder leaves no map of the first (it would show a
    label this run did not measure); a page over rows --resume kept does not claim they come
    from this run."""
    plots, table = tmp_path / "p", tmp_path / "t.csv"
    plots.mkdir()
    drawn = PngInfo()
    drawn.add_text("Software", PLOT_SOFTWARE)
    Image.new("RGB", (4, 4)).save(plots / "disagreement_gone.png", pnginfo=drawn)
    Image.new("RGB", (4, 4)).save(plots / "disagreement_mine.png")  # the user's own figure
    (plots / "notes.txt").write_text("mine")
    code, out, _ = run(capsys, "validate", run_folder, "--plots", plots, "--table", table,
                       "--workers", "1", "--quiet")
    assert code == 0 and "removed 1 figure(s) an earlier run drew" in out
    assert not (plots / "disagreement_gone.png").exists()
    assert (plots / "notes.txt").exists() and (plots / "disagreement_mine.png").exists()
    maps = sorted(p.name for p in plots.glob("disagreement_*.png"))
    code, out, _ = run(capsys, "validate", run_folder, "--plots", plots, "--table", table,
                       "--resume", "--workers", "1", "--quiet")
    # the rows --resume kept keep the maps of the run that measured them
    assert code == 0 and "removed" not in out
    assert sorted(p.name for p in plots.glob("disagreement_*.png")) == maps
    code, out, err = run(capsys, "validate", run_folder, "--html", tmp_path / "r.html",
                         "--table", table, "--resume", "--workers", "1", "--quiet")
    assert code == 0 and "3 of 3 file(s) done" in err
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "comes from this one run" not in text
    assert "All 3 results were measured by an earlier run with the same options" in text


@pytest.mark.parametrize("case", ["foreign", "folder", "suffix", "input", "report", "session"])
def test_a_bad_html_target_is_one_line_before_any_work(run_folder, tmp_path, capsys, case):
    target = tmp_path / "r.html"
    extra = []
    if case == "foreign":
        target.write_text("<html>my own notes</html>")
    elif case == "folder":
        target.mkdir()
    elif case == "suffix":
        target = tmp_path / "r.csv"
    elif case == "input":
        target = next(run_folder.rglob("one.npz"))
    elif case == "report":
        extra = ["--report", target]
    elif case == "session":
        extra = ["--session"]
    code, out, err = run(capsys, "validate", run_folder, "--html", target, "--workers", "1",
                         "--quiet", *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {target}: ")
    if case == "foreign":
        assert target.read_text() == "<html>my own notes</html>"


def test_a_page_is_written_whole_or_not_at_all(html_run, tmp_path, monkeypatch):
    target = tmp_path / "r.html"
    target.write_bytes((html_run / "report.html").read_bytes())
    before = target.read_bytes()

    real = htmlreport.atomic_write

    def failing(path, write_fn):
        def half(fh):  # the disk fills up half-way
            fh.write(b"<!DOCTYPE html><html>half a page")
            raise OSError(28, "No space left on device")
        return real(path, half)

    monkeypatch.setattr(htmlreport, "atomic_write", failing)
    with pytest.raises(DoodleError, match="r.html: could not be written"):  # names the page
        htmlreport.write_html(pd.DataFrame({"file": ["a.npz"], "accuracy": [1.0]}), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left


def test_rerunning_replaces_the_page_it_wrote(run_folder, html_run, tmp_path, capsys):
    target = tmp_path / "again.html"
    target.write_bytes((html_run / "report.html").read_bytes())
    code, _, err = run(capsys, "validate", next(run_folder.rglob("one.npz")), "--html", target,
                       "--workers", "1", "--quiet")
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "1 result(s) from 1 file(s)" in text and "forest.npz" not in text


def test_a_failed_file_is_a_row_with_its_error(tmp_path):
    frame = pd.DataFrame([{"file": "/x/bad.npz", "error": "/x/bad.npz: not a zip <b>"},
                          {"file": "/x/a.npz", "accuracy": 1.0, "differ": 0, "reason": "",
                           "error": ""}])
    text = page(frame, summary=["files: 2  failed: 1"])
    assert 'class="failed"' in text and "not a zip &lt;b&gt;" in text  # escaped
    assert "What the reasons mean" not in text
    # the heading counts the failed file as the summary does, and names it near the top
    assert "<h1>doodle-engine validate: 1 result(s) from 1 file(s); 1 file(s) failed</h1>" in text
    failed = text.index("<h2>Failed: 1 file(s)</h2>")
    assert failed < text.index("<h2>Results</h2>")
    assert '<li><a href="#r0">bad.npz</a>: /x/bad.npz: not a zip &lt;b&gt;</li>' in text[failed:]
    assert "Failed:" not in page(frame.iloc[1:])


def test_release_zip_members_are_named_with_their_zip(run_folder, tmp_path, capsys):
    release = tmp_path / "Test_3_001.zip"
    with zipfile.ZipFile(release, "w") as z:
        for name in ("forest.npz", "mlp.npz"):
            z.write(next(run_folder.rglob(name)), f"npz/{name}")
    before = release.read_bytes()
    code, _, err = run(capsys, "validate", release, "--html", tmp_path / "r.html", "--workers",
                       "1", "--quiet")
    assert code == 0, err
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert ">Test_3_001.zip::forest.npz<" in text and "Test_3_001.zip::mlp.npz: 25 px" in text
    assert len(_images(text)) == 4 and release.read_bytes() == before


# ----------------------------------------------------------------------------- a real browser
@pytest.mark.skipif(find_chromium() is None, reason=SKIP_REASON)
def test_chromium_opens_the_page_with_no_console_error_and_shows_it_all(html_run, tmp_path):
    page_path = html_run / "report.html"
    assert console_errors(page_path) == []
    assert files_requested(page_path) == []  # nothing beside the page itself
    shot = screenshot(page_path, tmp_path / "report.png", width=1400, height=2600)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)

    def shown(rgb, at_least):
        return int((np.abs(pixels.astype(int) - rgb).sum(axis=1) <= 6).sum()) >= at_least

    assert shown((0xFF, 0xF4, 0xE0), 5000)  # table rows below 100 % (shaded)
    assert shown((0x33, 0x66, 0xCC), 500)  # accuracy histogram bars
    assert shown((0xDC, 0x39, 0x12), 500)  # IoU bars
    assert shown((255, 0, 255), 200)  # a disagreement map's differing pixels


# ----------------------------------------------------------------------------- the real files
@needs_real
def test_real_files_show_their_reasons_on_the_page(tmp_path, capsys):
    ebg = REAL_DIR / "npz_json_converter__P26056694-0_EBG.npz"
    sf = REAL_DIR / "npz_json_converter__P26058673-3_SF.npz"
    if not (ebg.exists() and sf.exists()):
        pytest.skip("the EBG and SF files are not among the real files")
    code, out, _ = run(capsys, "validate", ebg, sf, "--html", tmp_path / "r.html", "--quiet")
    assert code == 0
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("npz_json")}
    assert "0.96918" in rows[ebg.name] and "history missing" in rows[ebg.name]
    assert "one class doodled" in rows[sf.name]
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<dt>history missing</dt><dd>cannot be exact" in text
    assert "<dt>one class doodled</dt><dd>every pixel gets it" in text
    assert "96.9179%" in text and "23,116" in text and len(_images(text)) == 3  # EBG's map, histogram, IoU
    if find_chromium() is not None:
        assert console_errors(tmp_path / "r.html") == []


# ----------------------------------------------------------------------------- stats
def test_stats_columns_have_one_type_each_and_no_unexplained_none_row(tmp_path, capsys):
    image, truth = scene(30, 40, seed=1)
    doodles = doodles_for(truth)
    folder = tmp_path / "results2022-05-10-14-00"
    folder.mkdir()
    write_npz(folder / "three.npz", image, doodles, truth, SETTINGS["mlp-2021-10"])
    four = truth.copy()
    four[:5, :5] = 3
    write_npz(folder / "four.npz", image, doodles, four, SETTINGS["mlp-2021-10"],
              classes=("water", "surf", "sand", "dev"))
    code, out, _ = run(capsys, "stats", folder, "--report", tmp_path / "s.csv", "--workers",
                       "1", "--quiet")
    assert code == 0
    assert [ln.split()[0] for ln in out.splitlines()[1:5]] == ["water", "surf", "sand", "dev"]
    assert "none" not in out and "unlabelled" not in out
    table = pd.read_csv(tmp_path / "s.csv")
    px = [c for c in table.columns if c.startswith("px_")]
    assert px == ["px_water", "px_surf", "px_sand", "px_dev"]
    assert all(table[c].dtype == np.int64 for c in px + ["unlabelled_px"])  # no NaN, no float
    assert table.set_index("file_name").loc["three.npz", "px_dev"] == 0
    cols = list(table.columns)
    frac = [i for i, c in enumerate(cols) if c.startswith("frac_")]
    assert frac == list(range(frac[0], frac[0] + 4))
    where = [cols.index(c) for c in px]
    assert where == list(range(where[0], where[0] + 4))


def test_stats_names_pixels_without_a_class_only_when_there_are_some(tmp_path, capsys):
    image, truth = scene(30, 40, seed=1)
    onehot = (np.arange(3) == truth[..., None]).astype(np.uint8)
    onehot[:2, :3] = 0  # 6 px with no class
    path = write_npz(tmp_path / "x.npz", image, doodles_for(truth), None,
                     SETTINGS["mlp-2021-10"], extra={"label": onehot})
    code, out, _ = run(capsys, "stats", path, "--workers", "1", "--quiet")
    assert code == 0
    assert "unlabelled: 6 px without a class in 1 file(s)" in out
    assert [ln.split()[0] for ln in out.splitlines()[1:4]] == ["water", "surf", "sand"]
