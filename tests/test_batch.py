import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import doodles_for, scene, write_npz

from doodle_engine import DoodleError, batch, load
from doodle_engine.batch import run_batch, start_order
from doodle_engine.cli import build_parser
from doodle_engine.cli import main as cli_main
from doodle_engine.cost import PIXEL_WEIGHT, ROW_WEIGHT, RUN_PIXEL_WEIGHT, predicted_cost
from doodle_engine.inputs import largest_first
from doodle_engine.jobs import SKIPPED
from doodle_engine.pool import WORKER_MEMORY, auto_workers, resolve_workers
from doodle_engine.table import in_input_order

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "session" / "results2022-05-04-10-00"
    d.mkdir(parents=True)
    for i in range(4):
        image, truth = scene(40, 56, seed=i)
        write_npz(d / f"img{i}.npz", image, doodles_for(truth), truth, [3, 2, 2, 1, 1, 0.9, 2])
    (d / "broken.npz").write_bytes(b"garbage")
    return d


def _clean(frame):
    cols = [c for c in frame.columns if not c.startswith("t_") and c not in ("seconds", "mtime")]
    return frame[cols].sort_values(["file", "trial"]).reset_index(drop=True)


def test_validate_batch_records_failures_and_goes_on(folder, tmp_path):
    frame = run_batch("validate", [folder], workers=1, table=tmp_path / "t.csv", progress=False)
    assert len(frame) == 5
    bad = frame[frame["error"] != ""]
    assert len(bad) == 1 and "broken.npz" in bad.iloc[0]["error"]
    ok = frame[frame["error"] == ""]
    assert (ok["accuracy"] > 0.85).all() and set(ok["era"]) == {"mlp-2022-05"}
    assert len(pd.read_csv(tmp_path / "t.csv")) == 5


def test_two_processes_give_the_same_table(folder):
    one = run_batch("validate", [folder], workers=1, progress=False)
    two = run_batch("validate", [folder], workers=2, progress=False)
    pd.testing.assert_frame_equal(_clean(one), _clean(two))


def test_resume_skips_done_files(folder, tmp_path, capsys):
    table = tmp_path / "t.csv"
    run_batch("validate", [folder / "img0.npz", folder / "img1.npz"], table=table, progress=False)
    frame = run_batch("validate", [folder], table=table, resume=True, progress=False)
    assert len(frame) == 5 and frame["file"].nunique() == 5
    assert (f"note: --resume: 2 of 5 file(s) done in {table} (unchanged, without error, same "
            "options) are kept; 3 to run") in capsys.readouterr().err
    again = run_batch("validate", [folder], table=table, resume=True, progress=False)
    # only the broken file is tried again, and the run says so
    assert len(again) == 5 and (again["error"] != "").sum() == 1
    assert "4 of 5 file(s) done" in capsys.readouterr().err


def test_resume_runs_again_what_was_done_with_other_options(folder, tmp_path, capsys):
    """Rows of a fast run are not kept by an exact run's --resume (a page or report would
    have called them exact): they run again, and the note says with what they were made."""
    table = tmp_path / "t.csv"
    files = [folder / "img0.npz", folder / "img1.npz"]
    run_batch("validate", files, table=table, mode="fast", progress=False)
    capsys.readouterr()
    exact = run_batch("validate", files, table=table, resume=True, mode="exact", progress=False)
    err = capsys.readouterr().err
    assert "0 of 2 file(s) done" in err and ("2 of them done there with other options, run "
                                              "again: validate mode=fast") in err
    assert set(exact["mode"]) == {"exact"} and set(exact["options"]) == {"validate"}
    # a fast run over the whole folder (five files, one broken), then an exact one over two
    # of them: the two other good files' fast rows are not kept, and the note says so
    run_batch("validate", [folder], table=tmp_path / "all.csv", mode="fast", progress=False)
    capsys.readouterr()
    run_batch("validate", files, table=tmp_path / "all.csv", resume=True, progress=False)
    assert ("the rows of 2 other file(s), made with other options, are not kept: the table "
            "holds this run's options only") in capsys.readouterr().err
    again = run_batch("validate", files, table=table, resume=True, mode="exact", progress=False)
    assert "2 of 2 file(s) done" in capsys.readouterr().err
    # the command line writes the same options for the same settings (its defaults given)
    code = subprocess.run([sys.executable, str(ROOT / "cli.py"), "validate", *map(str, files),
                           "--table", str(table), "--resume", "--quiet", "--workers", "1"],
                          capture_output=True, text=True, cwd=ROOT)
    assert code.returncode == 0 and "2 of 2 file(s) done" in code.stderr, code.stderr
    cols = ["file", "mode", "options", "differ", "accuracy"]
    pd.testing.assert_frame_equal(_clean(again)[cols], _clean(exact)[cols])


def test_dask_local_cluster_matches_local_processes(folder):
    distributed = pytest.importorskip("dask.distributed")
    local = run_batch("validate", [folder], workers=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = run_batch("validate", [folder], client=client, progress=False)
    pd.testing.assert_frame_equal(_clean(local), _clean(remote))


def test_reconstruct_writes_complete_outputs_and_never_touches_inputs(folder, tmp_path):
    before = {p: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "out"
    frame = run_batch("reconstruct", [folder], outdir=out, progress=False)
    assert (frame["error"] != "").sum() == 1
    for p, data in before.items():
        assert p.read_bytes() == data
    rec = load(out / "img0.npz")
    assert rec.label is not None and (out / "img0_label.png").exists()
    assert not list(out.glob("*.part"))


def test_killed_batch_leaves_only_complete_outputs_and_resumes(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(8):
        image, truth = scene(64, 80, seed=i)
        write_npz(src / f"f{i}.npz", image, doodles_for(truth), truth, [3, 1, 1, 1, 1, 0.9, 3])
    out, table = tmp_path / "out", tmp_path / "t.csv"
    cmd = [sys.executable, str(ROOT / "cli.py"), "reconstruct", str(src), "-o", str(out),
           "--table", str(table), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and len(list(out.glob("*.npz"))) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for p in out.glob("*.npz"):
        load(p)  # every file there is complete
    r = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.npz")) == [f"f{i}.npz" for i in range(8)]
    assert len(pd.read_csv(table)) == 8


def test_rerun_skips_up_to_date_outputs_and_redoes_changed_inputs(folder, tmp_path):
    out = tmp_path / "out"
    first = run_batch("reconstruct", [folder / "img0.npz", folder / "img1.npz"], outdir=out,
                      progress=False)
    assert "skipped" not in first or first["skipped"].isna().all()
    again = run_batch("reconstruct", [folder / "img0.npz", folder / "img1.npz"], outdir=out,
                      progress=False)
    assert (again["skipped"] == SKIPPED).all()
    later = (out / "img0.npz").stat().st_mtime + 5
    os.utime(folder / "img0.npz", (later, later))
    third = run_batch("reconstruct", [folder / "img0.npz", folder / "img1.npz"], outdir=out,
                      progress=False).set_index("file")
    assert third.loc[str(folder / "img0.npz"), "skipped"] != SKIPPED
    assert third.loc[str(folder / "img1.npz"), "skipped"] == SKIPPED
    forced = run_batch("export", [folder / "img1.npz"], outdir=tmp_path / "ex", progress=False)
    again = run_batch("export", [folder / "img1.npz"], outdir=tmp_path / "ex", progress=False)
    assert (again["skipped"] == SKIPPED).all() and len(forced) == 1


def test_stream_keeps_rows_with_different_columns_and_survives_a_cut_line(folder, tmp_path):
    table = tmp_path / "rows.csv"
    stream = tmp_path / "rows.csv.stream.jsonl"
    good = str(folder / "img0.npz")
    mtime = os.stat(good).st_mtime
    stream.write_text(
        '{"file": "%s", "trial": "", "accuracy": 0.9, "iou_water": 1.0, "error": "", "mtime": %r, '
        '"options": "validate"}\n'
        '{"file": "%s", "error": "broken", "mtime": 1.0}\n{"file": "cut'
        % (good, mtime, folder / "broken.npz"))
    frame = run_batch("validate", [folder], table=table, resume=True, progress=False)
    assert sorted(frame["file"]) == sorted(str(p) for p in folder.glob("*.npz"))
    kept = frame.set_index("file").loc[good]
    assert kept["accuracy"] == 0.9  # taken from the stream, not recomputed
    assert not stream.exists() and len(pd.read_csv(table)) == 5


def test_workers_start_with_the_largest_files(tmp_path):
    sizes = {"a.npz": 10, "b.npz": 300, "c.npz": 40}
    for name, n in sizes.items():
        (tmp_path / name).write_bytes(b"x" * n)
    files = [str(tmp_path / n) for n in sizes] + [str(tmp_path / "missing.npz")]
    assert [Path(f).name for f in largest_first(files)] == ["b.npz", "c.npz", "a.npz",
                                                            "missing.npz"]


def test_rebuilding_jobs_start_with_the_costliest_files_not_the_largest(tmp_path):
    """Predicted cost (CRF pixels x runs / crf_downsample**2 + pixels + fit rows), read from
    headers, settings and doodles: a small file with a full-resolution CRF and many training
    rows goes before a file three times its size on disk with a CRF decimated x10."""


    folder = tmp_path / "results2021-10-11-12-10"  # late 2021: five rolled CRF runs
    folder.mkdir()
    image, truth = scene(240, 320, 1)
    noisy = np.random.default_rng(0).integers(0, 256, image.shape, dtype=np.uint8)
    big = write_npz(folder / "big.npz", noisy, doodles_for(truth), truth,
                    [3, 10, 10, 1, 1, 0.9, 2])
    small_img, small_truth = scene(120, 160, 2)
    d = doodles_for(small_truth)
    small = write_npz(folder / "small.npz", small_img, d, small_truth, [3, 1, 1, 1, 1, 0.9, 2])
    bare = write_npz(folder / "bare.npz", small_img[:60], d[:60])  # no settings: its pixels
    files = [str(big), str(small), str(bare), str(tmp_path / "missing.npz")]
    assert os.path.getsize(big) > 3 * os.path.getsize(small)
    px = 120 * 160
    full = PIXEL_WEIGHT + 5 * RUN_PIXEL_WEIGHT  # per pixel at full resolution
    assert predicted_cost(small) == pytest.approx(
        px * 5 + full * px + ROW_WEIGHT["mlp"] * np.count_nonzero(d))
    rows = math.ceil(np.count_nonzero(doodles_for(truth)) / 10)
    assert predicted_cost(big) == pytest.approx(240 * 320 * (5 / 100 + full)
                                                + ROW_WEIGHT["mlp"] * rows)
    assert predicted_cost(bare) == 60 * 160
    one = write_npz(folder / "one.npz", small_img, (d > 0).astype(np.uint8), small_truth,
                    [3, 1, 1, 1, 1, 0.9, 2])
    assert predicted_cost(one) == px  # one class doodled: no fit, no CRF
    names = [Path(f).name for f in start_order("validate", files, {"mode": "exact"})]
    assert names == ["small.npz", "big.npz", "bare.npz", "missing.npz"]
    assert [Path(f).name for f in start_order("remap", files, {})] == \
        [Path(f).name for f in largest_first(files)]
    # the mode's knobs enter the cost: fast makes 3 of the 5 rolled CRF runs (its 40,000-row
    # cap does not bite here), fastest one
    full3 = PIXEL_WEIGHT + 3 * RUN_PIXEL_WEIGHT
    assert predicted_cost(small, "fast") == pytest.approx(
        px * 3 + full3 * px + ROW_WEIGHT["mlp"] * np.count_nonzero(d))
    assert predicted_cost(small, "fastest") < predicted_cost(small, "fast")


def test_outputs_inside_the_input_folder_are_not_inputs_and_name_clashes_are_refused(folder,
                                                                                    tmp_path):
    out = folder / "rebuilt"  # outputs written inside the folder being read
    first = run_batch("reconstruct", [folder], outdir=out, progress=False, mode="fast")
    again = run_batch("reconstruct", [folder], outdir=out, progress=False, mode="fast",
                      force=True)
    assert list(first["file"]) == list(again["file"])  # its own outputs were not taken as inputs
    assert not any("rebuilt" in f for f in again["file"])
    # another output folder: the earlier outputs are now inputs named like the originals
    with pytest.raises(DoodleError, match="same output name") as err:
        run_batch("reconstruct", [folder], outdir=tmp_path / "elsewhere", progress=False)
    assert "img0" in str(err.value)
    assert not (tmp_path / "elsewhere").exists()  # refused before anything was written


def test_auto_workers_are_bounded_by_cores_files_and_free_memory():
    gib = 2**30
    assert auto_workers(10, cores=8, free=64 * gib) == 8
    assert auto_workers(3, cores=8, free=64 * gib) == 3          # no idle workers
    assert auto_workers(10, cores=8, free=3 * WORKER_MEMORY) == 3  # memory caps it
    assert auto_workers(10, cores=8, free=gib) == 1                # never below one
    assert auto_workers(0, cores=8, free=64 * gib) == 1
    assert 1 <= resolve_workers("auto", 5) <= 5
    assert resolve_workers(3, 5) == 3
    for bad in (0, -2, "many"):
        with pytest.raises(DoodleError):
            resolve_workers(bad, 5)


def test_cli_workers_option_takes_auto_or_a_positive_number(capsys):
    p = build_parser()
    assert p.parse_args(["validate", "x.npz"]).workers == "auto"
    assert p.parse_args(["validate", "x.npz", "--workers", "2"]).workers == 2
    for bad in ("0", "two"):
        with pytest.raises(SystemExit):
            p.parse_args(["validate", "x.npz", "--workers", bad])
    assert "--workers" in capsys.readouterr().err


def test_a_class_of_a_later_file_joins_its_family_of_columns():
    """A class only the second file has: its iou_/px_ column follows the others of its kind,
    not the first row's bookkeeping columns (seconds, mtime, error last)."""
    rows = [{"file": "a", "iou_water": 1.0, "px_water": 5, "seconds": 0.1, "mtime": 1.0,
             "error": ""},
            {"file": "b", "iou_water": 0.9, "iou_rock": 0.5, "px_water": 4, "px_rock": 1,
             "seconds": 0.2, "mtime": 2.0, "error": "x"}]
    _, columns = in_input_order(rows, ["a", "b"])
    assert columns == ["file", "iou_water", "iou_rock", "px_water", "px_rock", "seconds",
                       "mtime", "error"]


def test_a_program_read_from_standard_input_runs_in_one_process(tmp_path):
    """Spawned workers import the caller's main file again: from `python - < script.py`
    they all died at their start, so such a program runs its files here, with a note."""
    script = (f"from doodle_engine.batch import run_batch\n"
              f"from doodle_engine.example import make_example\n"
              f"p = [make_example(r'{tmp_path}/e%d.npz' % i, 32, 40) for i in range(2)]\n"
              f"t = run_batch('validate', p, workers=2, progress=False, mode='fastest')\n"
              f"print((t['error'] == '').all(), t['accuracy'].notna().all())\n")
    r = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["True", "True"], r.stderr
    assert "workers: 1 instead of 2: this program was read from <stdin>" in r.stderr


def test_a_script_without_a_main_guard_is_told_what_to_change(tmp_path):
    """Each spawned worker imports the script again; a script that calls run_batch(workers=2)
    at import had every worker die with multiprocessing's long RuntimeError.  Each worker
    now says in one line what to change."""
    script = tmp_path / "unguarded.py"
    script.write_text("from doodle_engine.batch import run_batch\n"
                      "from doodle_engine.example import make_example\n"
                      "p = [make_example(f'e{i}.npz', 32, 40, overwrite=True) for i in range(2)]\n"
                      "t = run_batch('validate', p, workers=2, progress=False, mode='fastest')\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert "RuntimeError" not in r.stderr, r.stderr
    assert (f"error: {script}: calls run_batch with 2 workers at import: put the script's work "
            "under `if __name__ == \"__main__\":`") in r.stderr


def test_an_unknown_option_is_refused_before_any_work(folder):
    with pytest.raises(DoodleError, match=r"unknown option 'mdoe' \(did you mean 'mode'\?\)"):
        run_batch("validate", [folder], mdoe="fast", progress=False)
    with pytest.raises(DoodleError, match="unknown option 'output'; it takes .*outdir"):
        run_batch("reconstruct", [folder], output="rc", progress=False)


def test_an_interrupt_is_not_taken_for_a_crash_by_resume(folder, tmp_path, monkeypatch, capsys):
    """After Ctrl-C, --resume said the earlier run's process 'died while on this file (a
    crash or a kill)' and ran it in a separate process: the stream now says it was stopped."""
    files = [str(folder / "img0.npz"), str(folder / "img1.npz")]
    table = tmp_path / "t.csv"
    real = batch.run_one

    def stop_on_the_second(job, path, kwargs):
        if path == files[1]:
            raise KeyboardInterrupt
        return real(job, path, kwargs)

    monkeypatch.setattr(batch, "run_one", stop_on_the_second)
    args = ["validate", *files, "--table", str(table), "--workers", "1", "--quiet"]
    assert cli_main(args) == 130
    assert "interrupted: 1 finished row(s) kept in" in capsys.readouterr().err
    monkeypatch.setattr(batch, "run_one", real)
    assert cli_main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 file(s) done" in err and "died" not in err
    # a SIGTERM ends a run as Ctrl-C does: not taken for a crash either
    table.unlink()
    terminated = type("Terminated", (BaseException,), {})

    def end_on_the_second(job, path, kwargs):
        if path == files[1]:
            raise terminated
        return real(job, path, kwargs)

    monkeypatch.setattr(batch, "run_one", end_on_the_second)
    with pytest.raises(terminated):
        run_batch("validate", files, table=table, workers=1, progress=False)
    monkeypatch.setattr(batch, "run_one", real)
    run_batch("validate", files, table=table, resume=True, workers=1, progress=False)
    assert "died" not in capsys.readouterr().err
