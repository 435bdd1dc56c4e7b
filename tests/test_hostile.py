"""Hostile cases (issue 17): a generator of small hostile files, command lines and faults,
and a runner that holds the engine to its promises: every case works or fails with one
``FILE: problem`` line (exit 2 from the command line, an error row in a batch), no input
changes, no output replaces what it should not, nothing crashes, hangs or is left running.

Example counts are fixed (no randomness); the totals of cases, command runs and faults are
printed by the last test."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SETTINGS, doodles_for, scene, write_npz

from doodle_engine import DoodleError, batch, cli, load, reconstruct
from doodle_engine.crf import Params, crf_from_doodles, crf_from_labels, crf_from_onehot
from doodle_engine.files import from_printable
from doodle_engine.outputs import PLOT_FILES
from doodle_engine.plots import _map_name
from doodle_engine.png import parse_settings
from doodle_engine.pool import WORKER_MEMORY, resolve_workers
from doodle_engine.remapping import remap_record
from doodle_engine.settings import BOUNDS, decode_settings, settings_for_era
from doodle_engine.table import read_table, write_csv

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")


# ----------------------------------------------------------------------------- building blocks
def npy(arr):
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def raw_npy(header, data=b"", version=1, pad_to=None):
    """A .npy member with any header text (hostile ones included)."""
    text = header.encode("latin1" if version < 3 else "utf-8") if isinstance(header, str) else header
    if pad_to:
        text = text + b" " * (pad_to - len(text) - 1) + b"\n"
    size = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + data


def base_members(h=24, w=32, settings=SETTINGS["mlp-2021-10"], prefix=""):
    image, truth = scene(h, w, 0)
    return {prefix + "image.npy": npy(image), prefix + "doodles.npy": npy(doodles_for(truth)),
            prefix + "label.npy": npy((np.arange(3) == truth[..., None]).astype(np.uint8)),
            prefix + "settings.npy": npy(np.array(settings, float)),
            prefix + "classes.npy": npy(np.array(["water", "surf", "sand"]))}


def write_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            if isinstance(data, tuple):  # (bytes, compression) for one member
                zf.writestr(name, data[0], compress_type=data[1])
            else:
                zf.writestr(name, data)
    return path


def corrupt_member(path, name):
    """Flip bytes in the middle of one member's compressed data."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    mid = start + info.compress_size // 2
    for i in range(mid, min(mid + 16, start + info.compress_size)):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    return path


def one_line(text):
    text = text.strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def run_cli(*args):
    """The command line in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def cli_proc(*args, **kw):
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def children(pid):
    """Pids of every live descendant of ``pid`` (from /proc)."""
    kids = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    kids.setdefault(ppid, []).append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def scenes(folder, n, h, w, prefix="f"):
    """``n`` generated late-2021 files ``{prefix}{i}.npz`` of h x w in a new ``folder``."""
    folder.mkdir()
    files = []
    for i in range(n):
        image, truth = scene(h, w, seed=i)
        files.append(write_npz(folder / f"{prefix}{i}.npz", image, doodles_for(truth), truth,
                               [3, 1, 1, 1, 1, 0.9, 2]))
    return files


@pytest.fixture
def good(tmp_path):
    return scenes(tmp_path / "good", 3, 32, 40, prefix="g")


# ----------------------------------------------------------------------------- the generator
def _bad_settings():
    """Every position of every layout set to each hostile value (the file must be refused,
    or decode to values inside BOUNDS and rebuild)."""
    values = [1e-300, -1.0, 0.0, 0.4, 7.0, 1000.0, 1e6, 1e9, 2.0 ** 70]
    for era, base in SETTINGS.items():
        for pos, v in itertools.product(range(len(base)), values):
            s = list(base)
            s[pos] = v
            yield f"settings {era}[{pos}]={v:g}", s


def hostile_cases():
    """(name, members or a builder, expectation, load options).  expectation: "refused"
    (one DoodleError line, optionally matching a pattern) or "loads"."""
    huge = 2 ** 32
    cases = [
        ("header declares 4 GiB", {**base_members(), "doodles.npy": raw_npy(
            f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({huge},), }}")},
         ("refused", "too large")),
        ("header declares 65536x65536", {**base_members(), "label.npy": raw_npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (65536, 65536, 3), }")},
         ("refused", "above the limit")),
        ("shape beyond int64 (1-D)", {**base_members(), "image.npy": raw_npy(
            f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({2 ** 70},), }}")},
         ("refused", "too large")),
        ("shape beyond int64 (2-D)", {**base_members(), "image.npy": raw_npy(
            f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({2 ** 70}, {2 ** 70}), }}")},
         ("refused", "above the limit")),
        ("11 kB header", {**base_members(), "image.npy": raw_npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", pad_to=11000)},
         ("refused", "11000-byte header")),
        ("11 kB header, version 2", {**base_members(), "image.npy": raw_npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", version=2,
            pad_to=11000)}, ("refused", "11000-byte header")),
        ("deeply nested header", {**base_members(), "image.npy": raw_npy(
            "(" * 1500 + ")" * 1500)}, ("refused", "corrupt header")),
        ("negative shape", {**base_members(), "image.npy": raw_npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 4), }")},
         ("refused", "corrupt header")),
        ("header not a dict", {**base_members(), "image.npy": raw_npy("[1, 2, 3]")},
         ("refused", "corrupt header")),
        ("header calls code", {**base_members(), "image.npy": raw_npy(
            "__import__('os').system('true')")}, ("refused", "corrupt header")),
        ("non-UTF-8 v3 header", {**base_members(), "image.npy": raw_npy(
            b"{'descr': '|u1', \xff\xfe}", version=3)}, ("refused", "corrupt header")),
        ("bad magic", {**base_members(), "image.npy": b"\x93NUMPX\x01\x00" + b"x" * 40},
         ("refused", "bad magic")),
        ("unknown npy version", {**base_members(), "image.npy": b"\x93NUMPY\x09\x00" + b"x" * 40},
         ("refused", "version")),
        ("void dtype", {**base_members(), "image.npy": npy(np.zeros(4, "V8"))},
         ("refused", "unsupported type")),
        ("structured dtype", {**base_members(), "settings.npy": npy(
            np.zeros(7, [("a", "<f8")]))}, ("refused", "unsupported type")),
        ("datetime dtype", {**base_members(), "settings.npy": npy(
            np.zeros(7, "<M8[s]"))}, ("refused", "unsupported type")),
        ("object dtype without opt-in", {**base_members(), "classes.npy": raw_npy(
            "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", b"junk")},
         ("refused", "allow_pickle")),
        ("complex settings", {**base_members(), "settings.npy": npy(
            np.array([3, 2, 1, 1, 1, 0.9, 2], complex))}, ("refused", "real numbers")),
        ("text settings", {**base_members(), "settings.npy": npy(
            np.array(["3", "2", "1", "1", "1", "0.9", "2"]))}, ("refused", "real numbers")),
        ("300 classes", {**base_members(), "classes.npy": npy(
            np.array([f"c{i}" for i in range(300)]))}, ("refused", "at most 254")),
        ("orig_image of another shape", {**base_members(), "orig_image.npy": npy(
            np.zeros((10, 10, 3), np.uint8))}, ("refused", "orig_image")),
        ("truncated data", {**base_members(), "image.npy": npy(
            np.zeros((24, 32, 3), np.uint8))[:-100]}, ("refused", "truncated")),
        ("data beyond the declared shape (50 MB of zeros)", {**base_members(), "image.npy":
            npy(scene(24, 32, 0)[0]) + bytes(50 * 2**20)}, ("loads", None)),
        ("extra corrupt member never read", {**base_members(), "junk.npy": b"\x00" * 64},
         ("loads", None)),
        ("extra 200 MB member never decompressed", {**base_members(), "big.npy": npy(
            np.zeros(200 * 2**20, np.uint8))}, ("loads", None)),
        ("path-traversal member names", {**base_members(),
                                         "../../image.npy": npy(np.zeros((2, 2, 3), np.uint8)),
                                         "/abs/doodles.npy": b"x"}, ("loads", None)),
        ("stored label member LZMA", {name: (data, zipfile.ZIP_LZMA) for name, data in
                                      base_members().items()}, ("loads", None)),
        ("trial copies beyond the total", lambda: {**base_members(), **{
            k: v for p in ("0", "00", "000", "0000") for k, v in base_members(prefix=p).items()}},
         ("refused", "together declare"), {"max_pixels": 24 * 32}),
        ("settings n_sigmas 1000", {**base_members(settings=[3, 2, 1, 1, 1, 0.9, 1000])},
         ("refused", "n_sigmas")),
        ("settings sigma_max 1e6", {**base_members(settings=[3, 2, 1, 1, 1, 3, 0.9, 1, 1e6])},
         ("refused", "sigma_max")),
        ("settings n_estimators 1e6", {**base_members(settings=[3, 2, 1, 1, 1, 1e6, 0.9])},
         ("refused", "n_estimators")),
        ("settings crf_downsample 1e9", {**base_members(settings=[3, 1e9, 1, 1, 1, 0.9, 2])},
         ("refused", "crf_downsample")),
        ("settings crf_theta 1e-300", {**base_members(settings=[3, 2, 1, 1e-300, 1, 0.9, 2])},
         ("refused", "crf_theta")),
    ]
    for name, data, expect, *opts in cases:
        yield name, data, expect, (opts[0] if opts else {})
    for name, settings in _bad_settings():
        yield name, base_members(settings=settings), ("settings", None), {}


def build(tmp_path, i, data):
    members = data() if callable(data) else data
    return write_zip(tmp_path / f"case{i:03d}.npz", members)


def _corrupt_cases(tmp_path):
    """Members whose compressed data is damaged: deflate, LZMA, bzip2 (and a CRC error)."""
    out = []
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2):
        p = write_zip(tmp_path / f"corrupt{method}.npz", base_members(h=64, w=80), method)
        out.append((f"corrupt member (method {method})", corrupt_member(p, "image.npy")))
    return out


# ----------------------------------------------------------------------------- the runner
def test_every_hostile_file_is_refused_in_one_line_or_loads(tmp_path):
    """Each generated case through load(): a fast one-line refusal, or a record; decoded
    settings stay within BOUNDS and rebuild (pydensecrf) without crashing."""
    tried = 0
    cases = [(n, build(tmp_path, i, d), e, o)
             for i, (n, d, e, o) in enumerate(hostile_cases())]
    cases += [(n, p, ("refused", "cannot be read|truncated"), {}) for n, p in _corrupt_cases(tmp_path)]
    rebuilt = 0
    for name, path, (kind, pattern), opts in cases:
        t0 = time.perf_counter()
        try:
            rec = load(path, **opts)
        except DoodleError as exc:
            rec = None
            msg = one_line(str(exc))
            assert msg.startswith(str(path)), (name, msg)
            assert kind in ("refused", "settings"), (name, msg)
            if pattern:
                assert re.search(pattern, msg), (name, msg)
        else:
            assert kind in ("loads", "settings"), (name, "was not refused")
        assert time.perf_counter() - t0 < 5, (name, "took too long")
        if kind == "settings" and rec is not None:
            s = rec.settings
            for field, (lo, hi) in BOUNDS.items():
                v = getattr(s, field)
                assert v is None or lo <= v <= hi, (name, field, v)
            if rebuilt < 12:  # a sample of the accepted ones rebuilt with the C++ CRF
                res = reconstruct(rec)
                assert res.label.shape == rec.shape
                rebuilt += 1
        tried += 1
    assert tried > 250 and rebuilt >= 12


def test_crf_parameters_are_checked_before_any_cxx_call():
    """pydensecrf segfaults on crf_theta 1e-300: the check stops it (a crash would take this
    test process with it)."""
    image = np.random.default_rng(0).random((20, 24, 3))
    label = np.ones((20, 24), np.uint8)
    label[:, 12:] = 2
    onehot = np.stack([label == 1, label == 2], -1).astype(np.float32)
    bad = [(1e-300, 1, 1), (1e-10, 1, 1), (float("nan"), 1, 1), (1, float("inf"), 1),
           (1, -1, 1), (1, 1e30, 1), (1, 1, 0), (1, 1, 1e9), (1, 1, 1.5)]
    for theta, mu, ds in bad:
        for call in (lambda t=theta, m=mu, d=ds: crf_from_labels(label, image, t, m, d, 0.9),
                     lambda t=theta, m=mu, d=ds: crf_from_onehot(onehot, image, Params(t, m, d, 0.9)),
                     lambda t=theta, m=mu, d=ds: crf_from_doodles(label, image, 2,
                                                                  Params(t, m, d, 0.51))):
            with pytest.raises(DoodleError, match="crf_|must be"):
                call()
    with pytest.raises(DoodleError, match="gt_prob"):
        crf_from_labels(label, image, 1, 1, 1, 0.0)
    out, _ = crf_from_labels(label, image, 0.5, 0, 1, 0.9)  # the bounds themselves work
    assert out.shape == label.shape
    for name in ("crf_theta", "crf_mu", "crf_downsample"):  # decode and the CRF agree
        lo, hi = BOUNDS[name]
        with pytest.raises(DoodleError, match=name):
            decode_settings([3, 2 if name != "crf_downsample" else hi + 1, 1,
                             hi * 2 if name == "crf_theta" else 1,
                             hi * 2 if name == "crf_mu" else 1, 0.9, 2])


def test_one_worker_batch_with_a_crashing_crf_setting_finishes(tmp_path, good):
    """With --workers 1 files run in this process: crf_theta 1e-300 (a pydensecrf segfault)
    must be an error row, and the good files and the table must still come out."""
    bad = write_zip(tmp_path / "theta.npz", base_members(settings=[3, 2, 1, 1e-300, 1, 0.9, 2]))
    table = tmp_path / "t.csv"
    code, _, err = run_cli("validate", bad, *good, "--table", table, "--workers", "1", "--quiet",
                           "--crf-backend", "pydensecrf")
    first, why = err.strip().splitlines()
    assert code == 1 and first.startswith(f"error: {bad}: settings: crf_theta")
    assert why == "exit 1: 1 file(s) failed (listed above)"
    frame = pd.read_csv(table, keep_default_na=False).set_index("file")
    assert (frame.loc[[str(g) for g in good], "error"] == "").all() and len(frame) == 4


def test_a_batch_over_every_hostile_file_gives_a_row_each_and_changes_nothing(tmp_path, good):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, (name, data, _expect, _opts) in enumerate(hostile_cases()):
        if not name.startswith("settings ") or i % 12 == 0:
            build(folder, i, data)
    _corrupt_cases(folder)  # writes the damaged files into the folder
    for g in good:
        (folder / g.name).write_bytes(g.read_bytes())
    before = {p: p.read_bytes() for p in folder.iterdir()}
    table = tmp_path / "t.csv"
    code, out, err = run_cli("validate", folder, "--table", table, "--workers", "2", "--quiet",
                             "--mode", "fast")
    assert code == 1
    lines = err.strip().splitlines()
    # one line per failed file, then one line saying why the exit code is 1
    assert lines[-1].startswith("exit 1: ") and "failed" in lines[-1], err[-2000:]
    assert all(line.startswith("error: ") for line in lines[:-1]), err[-2000:]
    frame = pd.read_csv(table, keep_default_na=False)
    assert sorted(frame["file"]) == sorted(str(p) for p in before)
    assert (frame.set_index("file").loc[[str(folder / g.name) for g in good], "error"] == "").all()
    assert {p: p.read_bytes() for p in folder.iterdir() if p.suffix == ".npz"} == before


# ----------------------------------------------------------------------------- outputs
def test_no_output_replaces_an_input_or_a_foreign_file(tmp_path, good):
    a, b = good[0], good[1]
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    foreign = tmp_path / "mine.csv"  # a CSV, not a table the engine wrote
    foreign.write_text("a,b\n1,2\n")
    meta = tmp_path / "meta.csv"
    meta.write_text("annotation_image_filename,file\nx.npz,1\n")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"water": "w", "surf": "w", "sand": "s"}))
    protected = {p: p.read_bytes() for p in [a, b, notes, foreign, meta, mapping]}
    runs = [
        (["validate", "--table", a, b], "zip / Doodler"),          # a table name forgotten
        (["validate", b, "--report", a], "ending in .csv or .parquet"),
        (["validate", b, "--plots", a], "not a folder"),
        (["validate", b, "--table", notes], "not a table"),
        (["validate", b, "--report", notes], "ending in .csv or .parquet"),
        (["validate", b, "--report", foreign], "not a table"),
        (["validate", b, "--table", tmp_path / "t.csv", "--report", tmp_path / "t.csv"], "both"),
        (["validate", b, "--table", tmp_path], "is a folder"),
        (["stats", b, "--report", meta, "--metadata", meta], "input of this run"),
        (["remap", b, "--mapping", mapping, "-o", b.parent], "holds the input|input folder"),
        (["remap", b, "--mapping", mapping, "-o", tmp_path / "o", "--table", mapping],
         "input of this run"),
        (["reconstruct", b.parent, "-o", b.parent], "holds the input|input folder"),
        (["reconstruct", b, "-o", a], "not a folder"),
        (["export", b.parent, "-o", b.parent / ".." / b.parent.name], "holds the input|input folder"),
        (["export", b, "-o", tmp_path / "ex", "--table", a], "zip / Doodler"),
    ]
    for args, pattern in runs:
        t0 = time.perf_counter()
        code, out, err = run_cli(*args, "--quiet", "--workers", "1")
        assert code == 2, (args, err)
        msg = one_line(err)
        assert msg.startswith("error: ") and __import__("re").search(pattern, msg), (args, msg)
        assert time.perf_counter() - t0 < 5, args  # refused before any work
    assert {p: p.read_bytes() for p in protected} == protected
    assert not (tmp_path / "o").exists() and not (tmp_path / "ex").exists()
    # the command's own table is replaced; a later --resume on it works
    code, _, err = run_cli("validate", a, "--table", tmp_path / "own.csv", "--quiet", "--workers", "1")
    assert code == 0, err
    code, _, err = run_cli("validate", a, b, "--table", tmp_path / "own.csv", "--resume", "--quiet",
                           "--workers", "1")
    assert code == 0, err and len(pd.read_csv(tmp_path / "own.csv")) == 2


def test_hostile_mapping_files_write_nothing(tmp_path, good):
    out = tmp_path / "out"
    cases = {
        "nested.json": "[" * 100000 + "]" * 100000,
        "latin1.json": b'{"water": "\xe9au"}',
        "list_alias.json": json.dumps({"aliases": {"water": ["a", "b"], "surf": "x", "sand": "x"}}),
        "nan_alias.json": '{"aliases": {"water": NaN, "surf": NaN, "sand": NaN}}',
        "nan_supers.json": '{"aliases": {"water": "w"}, "super_classes": [NaN]}',
        "inf_number.json": '{"aliases": {"water": "w"}, "super_classes": {"w": Infinity}}',
        "nested_alias.json": json.dumps({"aliases": {"water": {"a": 1}}}),
        "not_object.json": "[1, 2]",
    }
    for name, text in cases.items():
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        code, _, err = run_cli("remap", good[0], "--mapping", p, "-o", out, "--quiet",
                               "--workers", "1")
        assert code in (1, 2), (name, err)
        assert all(line.startswith("error: ") and "Traceback" not in line
                   for line in err.strip().splitlines()), (name, err)
        assert not out.exists() or not list(out.iterdir()), (name, list(out.iterdir()))
    with pytest.raises(DoodleError, match="default target"):
        remap_record(load(good[0]), {"water": "w"}, default=float("nan"))


def test_stats_keeps_the_counts_of_repeated_class_names(tmp_path):
    image, truth = scene(20, 30, 0)
    p = write_npz(tmp_path / "dup.npz", image, doodles_for(truth), truth, [3, 1, 1, 1, 1, 0.9, 2],
                  classes=("water", "sand", "water"))
    frame = batch.run_batch("stats", [p], progress=False)
    row = frame.iloc[0]
    counts = np.bincount(truth.ravel(), minlength=3)
    assert row["px_water"] == counts[0] and row["px_water#2"] == counts[2]
    assert row["px_sand"] == counts[1] and "water#2" in row["notes"]


def test_reading_options_reach_every_batch_job(tmp_path, good):
    """--max-pixels and --allow-pickle reach load() in every batch command."""
    for job, extra in [("validate", []), ("reconstruct", ["-o", tmp_path / "r"]),
                       ("export", ["-o", tmp_path / "e"]), ("stats", []),
                       ("remap", ["-o", tmp_path / "m", "--mapping", tmp_path / "map.json"])]:
        (tmp_path / "map.json").write_text('{"water": "w", "surf": "w", "sand": "s"}')
        code, _, err = run_cli(job, good[0], "--max-pixels", "100", *extra, "--quiet",
                               "--workers", "1")
        assert code == 1 and "above the limit of 100" in err, (job, err)
    obj = tmp_path / "obj.npz"
    image, truth = scene(20, 30, 0)
    write_npz(obj, image, doodles_for(truth), truth, [3, 1, 1, 1, 1, 0.9, 2],
              classes=None, extra={"classes": np.array(["water", "surf", "sand"], object)})
    code, _, err = run_cli("stats", obj, "--quiet", "--workers", "1")
    assert code == 1 and "allow-pickle" in err
    code, out, err = run_cli("stats", obj, "--allow-pickle", "--quiet", "--workers", "1")
    assert code == 0, err


# ----------------------------------------------------------------------------- special files
@pytest.mark.skipif(not LINUX, reason="FIFOs and /dev/zero")
def test_fifo_device_and_folder_named_npz_are_never_opened(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    dev = tmp_path / "zero.npz"
    dev.symlink_to("/dev/zero")
    folder = tmp_path / "x.npz"
    folder.mkdir()
    old = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("hung")))
    signal.alarm(10)
    try:
        for p, pattern in [(fifo, "not a regular file"), (dev, "not a regular file"),
                           (folder, "is a folder")]:
            with pytest.raises(DoodleError, match=pattern):
                load(p)
            code, _, err = run_cli("info", p)
            assert code == 2 and pattern in one_line(err)
        code, _, err = run_cli("validate", fifo, dev, "--quiet", "--workers", "1")
        assert code == 1 and err.count("not a regular file") == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------- faults
@pytest.mark.skipif(not LINUX, reason="/proc")
def test_batch_survives_workers_that_die(tmp_path, good):
    """SIGSEGV and SIGKILL sent to the two workers while they hold a file: those files get
    an error row naming the signal, a fresh worker takes the rest, the table is written."""
    big = tmp_path / "big"
    big.mkdir()
    victims = []
    for i in range(2):
        image, truth = scene(120, 160, seed=i)
        victims.append(write_npz(big / f"big{i}.npz", image, doodles_for(truth), truth,
                                 [3, 1, 1, 1, 1, 0.9, 2]))
    me = os.getpid()
    sent = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline:
            kids = [k for k in children(me) if "spawn_main" in _cmdline(k)
                    and "resource_tracker" not in _cmdline(k)]
            if len(kids) >= 2:
                time.sleep(0.5)
                for pid, sig in zip(sorted(kids)[:2], (signal.SIGSEGV, signal.SIGKILL)):
                    os.kill(pid, sig)
                    sent.append(sig)
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    table = tmp_path / "t.csv"
    frame = batch.run_batch("validate", [*victims, *good], workers=2, table=table,
                            progress=False, mode="fast")
    t.join()
    assert len(sent) == 2
    rows = frame.set_index("file")
    errors = [rows.loc[str(v), "error"] for v in victims]
    assert sorted("SIGSEGV" in e for e in errors) == [False, True], errors
    assert sorted("SIGKILL" in e for e in errors) == [False, True], errors
    assert all("worker process died" in e for e in errors)
    assert (rows.loc[[str(g) for g in good], "error"] == "").all()
    assert len(pd.read_csv(table)) == 5


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not LINUX, reason="/proc and prctl")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    src = tmp_path / "in"
    scenes(src, 4, 120, 160)
    proc = cli_proc("validate", src, "--workers", "2", "--quiet", "--table", tmp_path / "t.csv")
    deadline = time.time() + 60
    kids = []
    while time.time() < deadline:
        kids = [k for k in children(proc.pid) if "spawn_main" in _cmdline(k)]
        if len(kids) >= 2:
            break
        time.sleep(0.05)
    assert len(kids) >= 2, "workers did not start"
    every = children(proc.pid)
    proc.kill()
    proc.communicate()
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(k) for k in every):
        time.sleep(0.1)
    assert not [k for k in every if alive(k)], [_cmdline(k) for k in every if alive(k)]


def test_concurrent_runs_on_one_table_lose_nothing(tmp_path, good):
    """A second run on a table that a running one holds is refused in one line before any
    work; the first run's table has every one of its rows; the lock goes with the run."""
    slow = []
    for i in range(2):  # a few seconds of work, so the first run still holds the table
        image, truth = scene(200, 260, seed=i)
        slow.append(write_npz(tmp_path / f"slow{i}.npz", image, doodles_for(truth), truth,
                              [3, 1, 1, 1, 1, 0.9, 2]))
    table = tmp_path / "t.csv"
    first = cli_proc("validate", *slow, *good, "--table", table, "--workers", "1", "--quiet")
    lock = Path(str(table) + ".lock")
    deadline = time.time() + 60
    while time.time() < deadline and not lock.exists() and first.poll() is None:
        time.sleep(0.02)
    second = cli_proc("validate", good[0], "--table", table, "--workers", "1", "--quiet")
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2 and "being written by another run" in one_line(err2)
    assert sorted(pd.read_csv(table)["file"]) == sorted(str(g) for g in slow + good)
    assert not lock.exists()
    code, _, err = run_cli("validate", good[0], "--table", table, "--resume", "--quiet",
                           "--workers", "1")  # once it is free, the table is anyone's
    assert code == 0 and len(pd.read_csv(table)) == 5, err


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE")
def test_a_full_disk_keeps_the_rows_and_says_where(tmp_path, good):
    """RLIMIT_FSIZE makes every write past 1,500 bytes fail as on a full disk: the table
    fails, its rows come back (here on standard output, as the temporary folder is full
    too), in one error line."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))

    # the rows that could not be written go to the temporary folder: this test's own
    rescue = tmp_path / "rescue"
    rescue.mkdir()
    proc = cli_proc("validate", *good, "--table", tmp_path / "t.csv", "--workers", "1", "--quiet",
                    preexec_fn=limit, env={**os.environ, "TMPDIR": str(rescue)})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    msg = one_line(err.strip().splitlines()[-1])
    assert "could not be written" in msg and "3 rows" in msg
    if "standard output" in msg:
        assert all(str(g) in out for g in good)
    code, _, err = run_cli("validate", good[0], "--table", "/proc/doodle-engine/t.csv",
                           "--quiet", "--workers", "1")
    assert code == 2 and "t.csv" in one_line(err)


def test_bad_or_unreachable_scheduler_fails_fast_in_one_line(good, monkeypatch):
    cluster = pytest.importorskip("doodle_engine.cluster")
    monkeypatch.setattr(cluster, "DASK_CONNECT_TIMEOUT", 2)
    for address in ("nonsense::addr", "tcp://127.0.0.1:1"):
        t0 = time.perf_counter()
        code, _, err = run_cli("validate", good[0], "--scheduler", address, "--quiet")
        assert code == 2 and "Dask scheduler" in one_line(err), err
        assert time.perf_counter() - t0 < 20


# ----------------------------------------------------------------------------- round 3 (issue 23)
BAD_NAME = os.fsdecode(b"bad\xffbyte.npz")  # not UTF-8: the name keeps its byte


def _bad_name_folder(tmp_path, good):
    d = tmp_path / "names"
    d.mkdir()
    (d / "good.npz").write_bytes(good[0].read_bytes())
    (d / BAD_NAME).write_bytes(good[1].read_bytes())
    (d / "new\nline.npz").write_bytes(b"")  # fails: its error line must stay one line
    return d


@pytest.mark.skipif(not LINUX, reason="file names as bytes")
def test_a_name_that_is_not_utf8_is_carried_through_and_shown_escaped(tmp_path, good):
    """A: every batch command writes its table and resumes; the name is shown escaped and
    turns back into the file.  H6: a newline in a name is escaped in its error line."""
    d = _bad_name_folder(tmp_path, good)
    shown = str(d / "bad\\xffbyte.npz")
    for job, extra in [("validate", ["--mode", "fast"]),
                       ("reconstruct", ["-o", tmp_path / "r", "--mode", "fast"]),
                       ("export", ["-o", tmp_path / "e"]), ("stats", [])]:
        table = tmp_path / f"{job}.csv"
        code, _, err = run_cli(job, d, "--table", table, *extra, "--quiet", "--workers", "1")
        lines = err.strip().splitlines()
        assert code == 1 and "Traceback" not in err, (job, err)
        assert lines[0] == f"error: {d}/new\\nline.npz: not a readable .npz (zip) file: File is not " \
                           "a zip file" and lines[1].startswith("exit 1"), (job, err)
        frame = pd.read_csv(table, keep_default_na=False).set_index("file")
        assert frame.loc[shown, "error"] == "" and len(frame) == 3, (job, frame.index)
        assert os.path.samefile(from_printable(shown), d / BAD_NAME)
        (d / "new\nline.npz").write_bytes(good[2].read_bytes())  # mended: --resume runs it
        code, _, err = run_cli(job, d, "--table", table, *extra, "--quiet", "--workers", "1",
                                 "--resume")
        assert code == 0, (job, err)
        frame = pd.read_csv(table, keep_default_na=False)
        assert len(frame) == 3 and (frame["error"] == "").all(), job
        (d / "new\nline.npz").write_bytes(b"")
    # the figures read the files back by the names the table shows
    code, out, err = run_cli("validate", d, "--plots", tmp_path / "plots", "--quiet",
                             "--workers", "1", "--mode", "fast")
    assert code == 1 and "Traceback" not in err, err
    assert len(list((tmp_path / "plots").glob("disagreement_*.png"))) == 2, out
    # a real process, whose standard streams are strict UTF-8 files
    proc = cli_proc("validate", d / BAD_NAME, "--table", tmp_path / "p.csv", "--workers", "1",
                    "--quiet", "--mode", "fast")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "bad\\xffbyte.npz" in out and not err.strip(), err
    code, out, _ = run_cli("info", d / BAD_NAME)
    assert code == 0 and out.startswith(shown)


def test_resume_after_a_mended_file_reads_the_table_with_its_types(tmp_path, good):
    """B: a failed (0-byte) file mended, then --resume: the kept rows come back as the
    numbers and texts they were written as; whole numbers stay whole in the CSV."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.npz").write_bytes(good[0].read_bytes())
    (d / "b.npz").write_bytes(b"")
    for job, extra in [("validate", ["--mode", "fast"]), ("eras", ["--mode", "fast"]),
                       ("stats", [])]:
        table = tmp_path / f"{job}.csv"
        (d / "b.npz").write_bytes(b"")
        code, _, err = run_cli(job, d, "--table", table, *extra, "--quiet", "--workers", "1")
        assert code == 1, err
        assert ",32,40," in table.read_text()  # height, width: no "32.0" beside an error row
        (d / "b.npz").write_bytes(good[1].read_bytes())
        code, _, err = run_cli(job, d, "--table", table, *extra, "--quiet", "--workers", "1",
                               "--resume")
        assert code == 0 and "Traceback" not in err, (job, err)
        rows = read_table(table)
        assert [type(r["height"]) for r in rows] == [int, int], job
        assert all(r["error"] == "" for r in rows), job
    # texts that look like numbers stay texts; numbers keep their kind
    frame = pd.DataFrame([{"file": "1", "trial": "00", "record": "2025", "height": 7,
                           "accuracy": 1.0, "error": ""},
                          {"file": "2", "trial": "0", "record": "2025", "error": "x: bad"}])
    write_csv(frame, tmp_path / "x.csv", ints=["height"])
    back = read_table(tmp_path / "x.csv")
    assert back[0] == {"file": "1", "trial": "00", "record": "2025", "height": 7,
                       "accuracy": 1.0, "error": ""}
    assert back[1] == {"file": "2", "trial": "0", "record": "2025", "error": "x: bad"}


def _stream_rows(stream):
    try:
        return sum('"file"' in line for line in stream.read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.skipif(not LINUX, reason="signals")
def test_a_crash_of_the_main_process_loses_no_finished_row(tmp_path):
    """G: with --workers 1 the files run in the main process.  A segfault there after the
    first file: --resume takes over the dead run's lock (a note), runs the file it died on
    in a separate process, and completes the table."""
    src = tmp_path / "in"
    scenes(src, 4, 160, 200)
    table = tmp_path / "t.csv"
    stream = Path(str(table) + ".stream.jsonl")
    proc = cli_proc("validate", src, "--table", table, "--workers", "1", "--quiet")
    deadline = time.time() + 120
    while time.time() < deadline and _stream_rows(stream) < 1 and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGSEGV)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGSEGV
    finished = _stream_rows(stream)
    assert finished >= 1 and not table.exists() and Path(str(table) + ".lock").exists()
    code, _, err = run_cli("validate", src, "--table", table, "--workers", "1", "--quiet",
                           "--resume")
    assert code == 0, err
    assert f"took over the lock left by process {proc.pid}" in err
    if finished < 4:
        assert "runs in a separate process this time" in err
    frame = pd.read_csv(table, keep_default_na=False)
    assert sorted(frame["file"]) == sorted(str(p) for p in src.iterdir())
    assert (frame["error"] == "").all() and frame["accuracy"].notna().all()
    assert not stream.exists() and not Path(str(table) + ".lock").exists()


def _png_declaring(path, w, h):
    """A PNG whose header declares w x h pixels (no image data follows)."""

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_png_inputs_get_the_pixel_budget_before_decoding(march_session):
    """C: --max-pixels reaches PNG sessions; a header beyond the budget, or beyond PIL's
    bomb limit, is one line, checked before anything is decoded."""
    folder, _ = march_session
    ann = folder / "img_a_annotations2021-03-24-21-33_db.png"
    code, _, err = run_cli("info", ann, "--max-pixels", "100")
    assert code == 2 and "above the limit of 100" in one_line(err)
    code, _, err = run_cli("validate", ann, "--max-pixels", "100", "--quiet", "--workers", "1")
    assert code == 1 and "above the limit of 100" in err
    image = folder.parent.parent / "assets" / "img_a.png"
    original = image.read_bytes()
    for (w, h), pattern, opts in [((9300, 9300), "9300x9300 = 86490000 pixels, above the limit",
                                   {}),
                                  ((20000, 20000), "more pixels than PIL decodes",
                                   {"max_pixels": 10**9})]:
        _png_declaring(image, w, h)
        t0 = time.perf_counter()
        with pytest.raises(DoodleError, match=pattern) as info:
            load(ann, **opts)
        assert time.perf_counter() - t0 < 2
        one_line(str(info.value))
        code, _, err = run_cli("info", ann, *(["--max-pixels", "1000000000"] if opts else []))
        assert code == 2 and __import__("re").search(pattern, one_line(err)), err
    image.write_bytes(original)


def test_png_session_settings_are_bounded_as_npz_settings(march_session):
    """D: the npz path's ranges apply to every source of PNG-session settings."""
    folder, _ = march_session
    ann = folder / "img_a_annotations2021-03-24-21-33_db.png"
    bad = {"n_estimators=1e9": "n_estimators", "sigma_min=1e-300,sigma_max=1e300": "sigma_m",
           "n_sigmas=1000": "n_sigmas", "pen_width=-5": "pen_width",
           "crf_downsample=2.5": "crf_downsample", "sigma_min=8,sigma_max=2": "sigma_min"}
    for text, name in bad.items():
        t0 = time.perf_counter()
        code, _, err = run_cli("validate", ann, "--settings", text, "--quiet", "--workers", "1")
        assert code == 2 and name in one_line(err) and err.startswith("error: --settings"), err
        assert time.perf_counter() - t0 < 5
        as_json = json.dumps({k: float(v) for k, v in (p.split("=") for p in text.split(","))})
        for source in (text, as_json):
            with pytest.raises(DoodleError, match=name):
                parse_settings(source)
        with pytest.raises(DoodleError, match=name):
            load(ann, settings=json.loads(as_json))
        with pytest.raises(DoodleError, match=name):
            settings_for_era("rf-2021-03b", **json.loads(as_json))
    rec = load(ann, settings="n_estimators=100,sigma_min=0.01,sigma_max=64,n_sigmas=16")
    assert rec.settings.n_estimators == 100 and rec.settings.n_sigmas == 16


def test_explicit_workers_are_capped_in_one_line(tmp_path, good, capsys):
    """E: --workers N is capped at the files and at what free memory holds."""
    assert resolve_workers(10000, 3) == 3
    assert "--workers 10000 capped at 3: 3 file(s)" in capsys.readouterr().err
    assert resolve_workers(10000, 200, free=4 * WORKER_MEMORY) == 4
    assert "free memory holds 4 worker(s)" in capsys.readouterr().err
    assert resolve_workers(2, 200, free=4 * WORKER_MEMORY) == 2
    assert resolve_workers("auto", 200, free=WORKER_MEMORY) == 1
    code, _, err = run_cli("stats", *good[:2], "--workers", "10000", "--quiet")
    assert code == 0 and one_line(err).startswith("note: --workers 10000 capped at 2"), err


@pytest.mark.skipif(not LINUX, reason="symbolic links and FIFOs")
def test_outputs_through_links_clashes_and_sizes_are_refused_in_one_line(tmp_path, good):
    """H1: -o a link to the input folder; H2: the table where a plot goes; H3: example sizes."""
    link = tmp_path / "link"
    link.symlink_to(good[0].parent)
    for args in (["reconstruct", good[0].parent, "-o", link],
                 ["export", good[0].parent, "-o", link],
                 ["reconstruct", *good, "-o", link]):
        code, _, err = run_cli(*args, "--quiet", "--workers", "1")
        assert code == 2 and __import__("re").search("input folder|holds the input",
                                                     one_line(err)), (args, err)
    plots = tmp_path / "p"
    for name in ("accuracy_hist.png", "class_iou.png", "disagreement_g0.png"):
        code, _, err = run_cli("validate", good[0], "--plots", plots, "--table", plots / name,
                               "--quiet", "--workers", "1")
        assert code == 2 and "figure --plots draws" in one_line(err), err
    assert not plots.exists()
    assert PLOT_FILES.fullmatch(_map_name({"file": "x/a b.npz", "trial": "0"}, Path("k.npz"), []))
    # the same member in two release zips: the second map is named with its record
    first = _map_name({"file": "r/A_1_001.zip::A/npz/s.npz"}, Path("k1.npz"), [])
    second = _map_name({"file": "r/B_1_001.zip::B/npz/s.npz"}, Path("k2.npz"), [first])
    third = _map_name({"file": "q/B_1_001.zip::B/npz/s.npz"}, Path("k3.npz"), [first, second])
    assert (first, second, third) == ("disagreement_s.png", "disagreement_B_1_001__s.png",
                                      "disagreement_k3.png")
    for size in (("0", "0"), ("-5", "10"), ("100000", "100000")):
        code, _, err = run_cli("example", tmp_path / "x.npz", "--size", *size)
        assert code == 2 and "size" in one_line(err) and not (tmp_path / "x.npz").exists()


def _unwritable_folder(tmp_path):
    """A folder this process cannot write into, or None (root writes through modes)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for cand in (ro, Path("/sys/fs"), Path("/proc/self")):
        try:
            fd, probe = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(probe)
    return None


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE")
def test_full_disk_and_read_only_outputs_are_named_before_or_after_the_work(tmp_path, good):
    """H4: a report on a full disk names its file; H5: a read-only -o is found before any
    work; H7: a full-disk --table leaves no empty stream."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    rescue = tmp_path / "rescue"
    rescue.mkdir()
    env = {**os.environ, "TMPDIR": str(rescue)}
    proc = cli_proc("stats", *good, "--report", tmp_path / "r.csv", "--workers", "1", "--quiet",
                    preexec_fn=limit, env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert one_line(err.strip().splitlines()[-1]).startswith(f"error: {tmp_path / 'r.csv'}: could not")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.csv")]
    proc = cli_proc("validate", *good, "--table", tmp_path / "t.csv", "--workers", "1",
                    "--quiet", "--mode", "fast", preexec_fn=limit, env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "could not be written" in err
    assert not Path(str(tmp_path / "t.csv") + ".stream.jsonl").exists()
    assert not list(tmp_path.glob(".t.csv*"))
    ro = _unwritable_folder(tmp_path)
    if ro is not None:
        for job, extra in (("reconstruct", []), ("export", []),
                           ("remap", ["--mapping", good[0].parent / "m.json"])):
            (good[0].parent / "m.json").write_text('{"water": "w", "surf": "w", "sand": "s"}')
            t0 = time.perf_counter()
            code, _, err = run_cli(job, *good, "-o", ro / "out", *extra, "--quiet",
                                   "--workers", "1")
            assert code == 2 and "cannot be written" in one_line(err), (job, err)
            assert time.perf_counter() - t0 < 5, job


@pytest.mark.skipif(not LINUX, reason="signals and FIFOs")
def test_a_terminated_run_leaves_no_temporary_folder(tmp_path):
    """H7: SIGTERM (timeout, kill) ends a run as Ctrl-C does: the labels' temporary folder
    and the lock are removed; without --plots no such folder is made at all."""
    src = tmp_path / "in"
    scenes(src, 3, 160, 200)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    table = tmp_path / "t.csv"
    for plots in ([], ["--plots", tmp_path / "plots"]):
        Path(str(table) + ".stream.jsonl").unlink(missing_ok=True)  # the first run's rows
        proc = cli_proc("validate", src, "--table", table, "--workers", "1", "--quiet", *plots,
                        env={**os.environ, "TMPDIR": str(tmp)})
        deadline = time.time() + 120
        while (time.time() < deadline and _stream_rows(Path(str(table) + ".stream.jsonl")) < 1
               and proc.poll() is None):
            time.sleep(0.02)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        stream = Path(str(table) + ".stream.jsonl")
        kept = _stream_rows(stream)
        assert proc.returncode == 143 and kept >= 1, err
        assert err.strip().splitlines()[-1] == (
            f"terminated: {kept} finished row(s) kept in {stream}; the same command with "
            "--resume goes on from there")
        assert not list(tmp.iterdir()) and not Path(str(table) + ".lock").exists()


@pytest.mark.skipif(not LINUX, reason="symbolic links and FIFOs")
def test_links_loops_and_fifos_in_an_input_folder_are_counted(tmp_path, good):
    """H8: entries named .npz that are no regular file are named and counted, not skipped
    without a word (and a FIFO is never opened)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "g.npz").write_bytes(good[0].read_bytes())
    (d / "dangling.npz").symlink_to(tmp_path / "gone.npz")
    (d / "loop.npz").symlink_to(d / "loop.npz")
    os.mkfifo(d / "fifo.npz")
    code, out, err = run_cli("stats", d, "--quiet", "--workers", "1")
    assert code == 0, err
    summary = [ln for ln in out.splitlines() if ln.startswith("files: 1")]
    assert summary and ("not read: 3 (no regular file: 1 dangling link, 1 FIFO, "
                        "1 symlink loop)") in summary[0], out
    assert sorted(ln.split(": ", 2)[1] for ln in err.splitlines()) == sorted(
        str(d / n) for n in ("dangling.npz", "fifo.npz", "loop.npz"))
