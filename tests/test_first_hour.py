"""What a new user meets in the first hour (issue 22): one-line option errors, a closed pipe,
era notes only where an era was used, a stats run with nothing to count, the remap's effective
mapping, the notice while kernels compile, bench's first-run cost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import COAST_DIR

import doodle_engine as de
from doodle_engine.cli import CLOSED_PIPE, main
from doodle_engine.compiling import NOTICE
from doodle_engine.example import make_example
from doodle_engine.inputs import load
from doodle_engine.remapping import near_names, one_edit_apart

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, line", [
    (["validate", "F.npz", "--mode", "fsat"],
     "error: --mode: 'fsat' is not one of exact, fast, fastest, reference; did you mean 'fast'?"),
    (["reconstruct", "F.npz", "-o", "out", "--era", "mlp-2022-5"],
     ("error: --era: 'mlp-2022-5' is not an era ('doodle-engine eras' lists them); "
      "did you mean 'mlp-2022-05'?")),
    (["export", "F.npz", "-o", "out", "--workers", "0"],
     "error: --workers: workers must be at least 1, not 0"),
    (["valdate", "F.npz"],
     ("error: command: 'valdate' is not one of info, eras, validate, reconstruct, remap, "
      "export, stats, atlas, example, serve, bench; did you mean 'validate'?")),
])
def test_a_bad_option_is_one_line_and_a_hint_not_the_usage(capsys, args, line):
    code, out, err = run(capsys, *args)
    command = "doodle-engine" + ("" if args[0] == "valdate" else f" {args[0]}")
    assert code == 2 and out == ""
    assert err.splitlines() == [line, f"({command} --help lists the options)"]


def _closed_pipe_run(*args):
    """The command with its stdout a pipe whose reader has gone (as after ``| head -1``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300,
                              check=False)
    finally:
        os.close(write_end)


def test_a_closed_pipe_is_a_normal_end(synthetic):
    path = synthetic("mlp-2022-05", h=24, w=32)
    small = _closed_pipe_run("info", path)  # fits the buffer: fails on the last flush
    big = _closed_pipe_run("info", "--json", *[path] * 40)  # fails in the middle of a print
    for r in (small, big):
        assert (r.returncode, r.stderr) == (CLOSED_PIPE, "")


def test_stats_with_nothing_to_count_says_why(capsys, tmp_path):
    fake = tmp_path / "fake.npz"
    fake.write_text("not a Doodler file")
    code, out, err = run(capsys, "stats", fake, "--quiet")
    assert code == 1 and "Empty DataFrame" not in out
    assert out.splitlines()[0] == ("no class pixels counted: none of the 1 file(s) could be "
                                   "read (errors above)")
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, image=np.zeros((8, 8, 3), np.uint8), doodles=np.zeros((8, 8), np.uint8))
    code, out, err = run(capsys, "stats", unlabelled, "--quiet")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == ("no class pixels counted: none of the 1 file(s) read holds a "
                                   "stored label")


def test_era_notes_only_where_an_era_was_used(capsys, tmp_path):
    path = make_example(tmp_path / "undated.npz", 24, 32)  # no results date in its path
    mapping = tmp_path / "map.json"
    mapping.write_text('{"water": "water", "surf": "water", "sand": "land"}')
    for args in (["export", path, "-o", tmp_path / "exported", "--png-labels"],
                 ["remap", path, "--mapping", mapping, "-o", tmp_path / "remapped"]):
        code, out, err = run(capsys, *args, "--quiet", "--workers", "1")
        assert code == 0, err
        assert "era" not in out + err, (args[0], out, err)
    code, out, err = run(capsys, "validate", path, "--quiet", "--workers", "1")
    assert code == 0 and "note: era mlp-2021-10 told from the stored label" in out


def test_bench_shows_the_first_run_and_warm_runs_under_a_header_lined_up(capsys, synthetic):
    path = synthetic("mlp-2022-05", h=24, w=32)
    code, out, err = run(capsys, "bench", path, "--quiet")
    assert code == 0, err
    lines = out.splitlines()
    header, rows = lines[0], lines[1:6]
    for title in ("era (source)", "mode", "warm stage seconds"):
        start = header.index(title)  # texts are left-aligned under their title
        for row in rows:
            assert row[start - 2:start] == "  " and row[start] != " ", (title, row)
    for title in ("first run s", "warm s", "warm Mpx/s", "speed-up", "agreement"):
        end = header.index(title) + len(title)  # numbers are right-aligned under their title
        for row in rows:
            assert row[end - 1] != " " and row[end] == " ", (title, row)
    first = [float(row[:header.index("first run s") + 11].split()[-1]) for row in rows]
    wall = float(lines[6].split("wall ")[1].split(" s")[0])
    said = float(lines[6].split("first runs ")[1].split(" s")[0])
    assert said == pytest.approx(sum(first), abs=0.06) and said <= wall


def _cold_cache_run(cache, *args):
    """The installed command's entry point, with Numba's cache in ``cache``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env.pop("DOODLE_ENGINE_COMPILE_NOTICE", None)
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_compiling_kernels_is_announced_once_per_command(tmp_path):
    files = [make_example(tmp_path / f"example{k}.npz", 24, 32) for k in (1, 2)]
    mapping = tmp_path / "map.json"
    mapping.write_text('{"water": "water", "surf": "water", "sand": "land"}')
    cache = tmp_path / "numba-cache"  # empty: the remap's kernel compiles
    for workers, out in (("2", "two"), ("1", "one")):
        shutil.rmtree(cache, ignore_errors=True)
        r = _cold_cache_run(cache, "remap", *files, "--mapping", mapping, "-o", tmp_path / out,
                            "--workers", workers, "--quiet")
        assert r.returncode == 0, r.stderr
        assert r.stderr.count(NOTICE) == 1, (workers, r.stderr)  # two workers, one notice
        # the process that announced (a worker, or the command's own) says how long it took
        assert r.stderr.count("compiled 1 kernel(s) in ") == 1, (workers, r.stderr)
    r = _cold_cache_run(cache, "remap", *files, "--mapping", mapping, "-o", tmp_path / "again",
                        "--workers", "1", "--quiet")
    assert r.returncode == 0 and r.stderr == ""  # cached: nothing to say


def test_remap_shows_the_effective_mapping_and_warns_of_a_near_name(capsys, tmp_path):

    path = make_example(tmp_path / "example.npz", 24, 32)
    rec = load(path)
    px = {name: int((rec.label == i).sum()) for i, name in enumerate(rec.classes)}
    w = max(len(f"{v:,}") for v in px.values())
    typo = tmp_path / "typo.json"
    typo.write_text('{"water": "water", "surf": "water", "sand": "lnd", "land": "land"}')
    code, out, err = run(capsys, "remap", path, "--mapping", typo, "-o", tmp_path / "a",
                         "--quiet", "--workers", "1")
    assert code == 0
    assert err.splitlines() == [("warning: target class 'lnd' is one edit from 'land': a typo? "
                                 "(as written it makes a new class 'lnd')")]
    lines = out.splitlines()
    assert lines[:4] == [
        "effective mapping (stored labels' pixels):",
        f"  water -> water  {px['water']:>{w},} px in 1 file(s), kept",
        f"  surf  -> water  {px['surf']:>{w},} px in 1 file(s), merged",
        f"  sand  -> lnd    {px['sand']:>{w},} px in 1 file(s), renamed"]
    # Doodler's own example mapping, by class number: surf (class 2) goes into land
    doodler = tmp_path / "doodler.json"
    doodler.write_text(json.dumps({"super_classes": {"water": "1", "land": "2"},
                                   "classes": ["1", "2", "3"],
                                   "aliases": {"1": "water", "2": "land", "3": "land"}}))
    code, out, err = run(capsys, "remap", path, "--mapping", doodler, "-o", tmp_path / "b",
                         "--quiet", "--workers", "1")
    assert code == 0 and err.splitlines() == [
        f"warning: {doodler} (doodler schema) names none of these classes, so its rules keyed "
        "by number were applied by position: 'water' as 1, 'surf' as 2, 'sand' as 3 (check "
        "that the numbers mean these classes)"]
    assert f"  surf  -> land   {px['surf']:>{w},} px in 1 file(s), merged" in out.splitlines()


@pytest.mark.parametrize("a, b, near", [("lnd", "land", True), ("land", "lands", True),
                                         ("sand", "land", True), ("ab", "ba", False),
                                         ("land", "land", False), ("water", "land", False)])
def test_one_edit_apart(a, b, near):
    assert one_edit_apart(a, b) is near and one_edit_apart(b, a) is near


def test_no_near_name_warning_on_the_real_mapping_files():

    files = sorted(COAST_DIR.glob("*.json"))
    if not files:
        pytest.skip(f"no mapping files in {COAST_DIR}")
    assert {f.name: near_names(f) for f in files} == {f.name: [] for f in files}


def test_a_remapped_file_says_so_when_validated(capsys, tmp_path):

    path = make_example(tmp_path / "example.npz", 48, 64)
    mapping = tmp_path / "map.json"
    mapping.write_text('{"water": "water", "surf": "water", "sand": "land"}')
    code, out, err = run(capsys, "remap", path, "--mapping", mapping, "-o", tmp_path / "out",
                         "--quiet", "--workers", "1")
    assert code == 0, err
    remapped = tmp_path / "out" / "example.npz"
    note = ("remapped by doodle-engine from example.npz (classes water, surf, sand -> water, "
            "land)")
    with np.load(remapped) as arrays:  # plain text: no pickle needed to read the file
        assert str(arrays["remapped"]) == note
    assert de.load(remapped).remapped == note and de.load(path).remapped is None
    code, out, err = run(capsys, "validate", remapped, path, "--quiet", "--workers", "1")
    assert code == 0, err
    notes = [ln for ln in out.splitlines() if ln.startswith("note: example.npz:")]
    assert notes == [f"note: example.npz: {note}"]
    assert ("why: remapped: not the file Doodler made: its label is the remapped stored label, "
            "which the classifier trained on its remapped doodles need not give"
            in out.splitlines())
    # several remapped files: one note naming them, one why line
    other = tmp_path / "out2" / "example.npz"
    other.parent.mkdir()
    other.write_bytes(remapped.read_bytes())
    code, out, err = run(capsys, "validate", remapped, other, "--quiet", "--workers", "1")
    lines = out.splitlines()
    assert [ln for ln in lines if ln.startswith("note:") and "remapped" in ln] == [
        "note: 2 results are of files remapped by doodle-engine (the remapped column of "
        "--table / --report says from what): example.npz"]
    assert sum(ln.startswith("why: remapped:") for ln in lines) == 1
    code, out, err = run(capsys, "info", remapped)
    assert f"  remapped  {note}: not the file Doodler made" in out.splitlines()


def test_no_near_name_warning_for_two_words_a_letter_apart():
    """``dev -> land`` beside ``sand`` warned 'a typo?': land and sand are two words."""
    mapping = {"water": "water", "surf": "water", "sand": "sand", "dev": "land"}
    assert near_names(mapping, ["water", "surf", "sand", "dev"]) == []
    assert near_names({"sand": "lnd", "land": "land"}, ["sand", "land"]) != []
    assert near_names({"surf": "Water", "water": "water"}, ["surf", "water"]) != []  # a capital
