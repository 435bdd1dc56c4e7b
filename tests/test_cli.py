import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import COAST_DIR, SETTINGS, doodles_for, needs_coast, scene, write_npz

from doodle_engine.example import make_example

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_info_json(synthetic):
    p = synthetic("mlp-2022-05")
    r = cli("info", p, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)[0]
    assert info["era"] == "mlp-2022-05" and info["label_layout"] == "onehot"
    assert info["classes"] == ["water", "surf", "sand"] and info["settings"]["n_sigmas"] == 2
    assert "Sobel border kept" in info["features"]


def test_info_names_the_feature_recipe_of_the_era(synthetic):
    r = cli("info", synthetic("mlp-2021-10"))
    assert r.returncode == 0 and "Sobel border zeroed (scikit-image <= 0.16)" in r.stdout
    # the recipe in words; its internal values (a 900-character line) only in --json
    assert "every recipe value: info --json" in r.stdout and "crf_flow=" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) < 250


def test_info_text_and_era_override(synthetic):
    r = cli("info", synthetic("mlp-2021-10"), "--era", "mlp-2022-05")
    assert r.returncode == 0 and "mlp-2022-05 (user)" in r.stdout


def test_validate_report_plots_and_min_accuracy(synthetic, tmp_path):
    p = synthetic("mlp-2022-05")
    r = cli("validate", p, "--report", tmp_path / "r.csv", "--plots", tmp_path / "plots", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "median accuracy" in r.stdout
    table = pd.read_csv(tmp_path / "r.csv")
    assert {"accuracy", "mean_iou", "kappa", "era", "t_fit", "iou_water"} <= set(table.columns)
    assert (tmp_path / "r_summary.csv").exists()
    assert (tmp_path / "plots" / "accuracy_hist.png").exists()
    r = cli("validate", p, "--min-accuracy", "100%", "--quiet")
    assert r.returncode == 1


def test_validate_parquet(synthetic, tmp_path):
    r = cli("validate", synthetic("mlp-2022-05"), "--report", tmp_path / "r.parquet", "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == 1


def test_export_and_remap_commands(synthetic, tmp_path):
    p = synthetic("mlp-2021-10")
    r = cli("export", p, "-o", tmp_path / "ex", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ex" / "labels" / "mlp-2021-10_label.jpg").exists()
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"aliases": {"water": "water", "surf": "water", "sand": "land"},
                             "classes": ["water", "surf", "sand"], "super_classes": ["water", "land"]}))
    r = cli("remap", p, "--mapping", m, "-o", tmp_path / "rm", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("info", tmp_path / "rm" / "mlp-2021-10.npz", "--json")
    assert json.loads(r.stdout)[0]["classes"] == ["water", "land"]


def test_bad_mapping_exits_2(synthetic, tmp_path):
    m = tmp_path / "m.json"
    m.write_text("[1, 2]")
    r = cli("remap", synthetic("mlp-2021-10"), "--mapping", m, "-o", tmp_path / "o")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


@needs_coast
def test_stats_with_coast_train_metadata(tmp_path):
    meta = sorted(COAST_DIR.glob("metadata_C_*.csv"))[0]
    name = Path(pd.read_csv(meta)["annotation_image_filename"].iloc[0]).name
    image, truth = scene()
    write_npz(tmp_path / name, image, doodles_for(truth), truth, [3, 2, 2, 1, 1, 0.9, 2])
    r = cli("stats", tmp_path / name, "--metadata", meta, "--report", tmp_path / "s.csv", "--quiet")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path / "s.csv")
    assert table.loc[0, "px_water"] == int((truth == 0).sum())
    assert "ImageHeightPx" in table and "prob_of_unary_potential_suspect" in table


def test_bench_says_when_it_times_an_assumed_era(tmp_path):
    path = make_example(tmp_path / "undated.npz", 32, 40)
    r = cli("bench", path, "--quiet")
    assert r.returncode == 0 and "note: era assumed for 1 file(s)" in r.stdout
    r = cli("bench", path, "--quiet", "--era", "mlp-2022-05")
    assert r.returncode == 0 and "mlp-2022-05 (user)" in r.stdout and "assumed" not in r.stdout


def test_bench_command(synthetic):
    r = cli("bench", synthetic("mlp-2022-05"))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.endswith("%") or " crf=" in ln]
    assert len(lines) == 5 and "exact" in r.stdout and "peak memory" in r.stdout
    assert any(" fastest " in ln for ln in lines)
    for ln in lines:
        if " exact " in ln or " exact/pydensecrf " in ln:
            assert " 100.0000% " in ln


def test_validate_with_the_compiled_crf_backend(synthetic, tmp_path):
    p = synthetic("mlp-2022-05")
    a = cli("validate", p, "--report", tmp_path / "a.csv", "--quiet", "--crf-backend", "numba")
    b = cli("validate", p, "--report", tmp_path / "b.csv", "--quiet", "--crf-backend", "pydensecrf")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ta, tb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert ta["differ"].tolist() == tb["differ"].tolist()


def test_era_override_needing_missing_settings_is_a_clear_error(tmp_path):
    image, truth = scene(32, 40)
    p = write_npz(tmp_path / "rf.npz", image, doodles_for(truth), truth, SETTINGS["rf-2021-05"])
    r = cli("validate", p, "--era", "mlp-2021-10", "--quiet")
    assert r.returncode == 1
    assert "needs n_sigmas" in r.stderr and "Traceback" not in r.stderr
    # the other 7-value layout is said as such (its values would be read in the wrong places)
    p = write_npz(tmp_path / "rf7.npz", image, doodles_for(truth), truth, SETTINGS["rf-2021-06"])
    r = cli("validate", p, "--era", "mlp-2021-10", "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "era mlp-2021-10 wrote its settings in the 7mlp layout" in r.stderr


def test_the_installed_command_exits_quickly_with_everything_written(synthetic, tmp_path):
    """``doodle_engine.cli:run`` (the ``doodle-engine`` script) skips Python's slow teardown:
    its output still arrives whole, the report is written and the exit code is main's."""
    report, npz = tmp_path / "r.csv", synthetic("mlp-2022-05")
    code = ("import sys; from doodle_engine.cli import run; "
            "run(sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", code, "validate", str(npz), "--workers",
                           "1", "--quiet", "--report", str(report)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "files: 1  failed: 0" in proc.stdout and report.exists()
    assert len(pd.read_csv(report)) == 1
    proc = subprocess.run([sys.executable, "-c", code, "eras"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.count("\n") >= 26  # every era, flushed
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    proc = subprocess.run([sys.executable, "-c", code, "validate", str(tmp_path / "bad.npz"),
                           "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "exit 1: 1 file(s) failed" in proc.stderr
