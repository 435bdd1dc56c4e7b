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
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SETTINGS, doodles_for, scene, write_npz
from doodle_engine import DoodleError, batch, cli, load
from doodle_engine.crf import Params, crf_from_doodles, crf_from_labels, crf_from_onehot
from doodle_engine.settings import BOUNDS, decode_settings

ROOT = Path(__file__).resolve().parents[1]
COUNT = Counter()
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
    COUNT["command runs"] += 1
    return code, out.getvalue(), err.getvalue()


def cli_proc(*args, **kw):
    COUNT["command runs"] += 1
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


@pytest.fixture
def good(tmp_path):
    d = tmp_path / "good"
    d.mkdir()
    files = []
    for i in range(3):
        image, truth = scene(32, 40, seed=i)
        files.append(write_npz(d / f"g{i}.npz", image, doodles_for(truth), truth,
                               [3, 1, 1, 1, 1, 0.9, 2]))
    return files


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
    from doodle_engine import reconstruct
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
                import re
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
    COUNT["hostile files"] += tried
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
        for call in (lambda: crf_from_labels(label, image, theta, mu, ds, 0.9),
                     lambda: crf_from_onehot(onehot, image, Params(theta, mu, ds, 0.9)),
                     lambda: crf_from_doodles(label, image, 2, Params(theta, mu, ds, 0.51))):
            with pytest.raises(DoodleError, match="crf_|must be"):
                call()
            COUNT["crf parameter cases"] += 1
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
    for i, (name, data, expect, opts) in enumerate(hostile_cases()):
        if not name.startswith("settings ") or i % 12 == 0:
            build(folder, i, data)
    for _, p in _corrupt_cases(folder):
        pass
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
    COUNT["batch rows"] += len(frame)


# ----------------------------------------------------------------------------- outputs
def test_no_output_replaces_an_input_or_a_foreign_file(tmp_path, good):
    a, b = good[0], good[1]
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    meta = tmp_path / "meta.csv"
    meta.write_text("annotation_image_filename,file\nx.npz,1\n")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"water": "w", "surf": "w", "sand": "s"}))
    protected = {p: p.read_bytes() for p in [a, b, notes, meta, mapping]}
    runs = [
        (["validate", "--table", a, b], "zip / Doodler"),          # a table name forgotten
        (["validate", b, "--report", a], "zip / Doodler"),
        (["validate", b, "--plots", a], "not a folder"),
        (["validate", b, "--table", notes], "not a table"),
        (["validate", b, "--report", notes], "not a table"),
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
        COUNT["hostile mappings"] += 1
    with pytest.raises(DoodleError, match="default target"):
        from doodle_engine.remapping import remap_record
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
            COUNT["special files"] += 1
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
    COUNT["faults"] += 2


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not LINUX, reason="/proc and prctl")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        image, truth = scene(120, 160, seed=i)
        write_npz(src / f"f{i}.npz", image, doodles_for(truth), truth, [3, 1, 1, 1, 1, 0.9, 2])
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
    COUNT["faults"] += 1


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
    COUNT["faults"] += 1


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE")
def test_a_full_disk_keeps_the_rows_and_says_where(tmp_path, good):
    """RLIMIT_FSIZE makes every write past 1,500 bytes fail as on a full disk: the table
    fails, its rows come back (here on standard output, as the temporary folder is full
    too), in one error line."""
    import resource

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
    COUNT["faults"] += 2


def test_bad_or_unreachable_scheduler_fails_fast_in_one_line(good, monkeypatch):
    cluster = pytest.importorskip("doodle_engine.cluster")
    monkeypatch.setattr(cluster, "DASK_CONNECT_TIMEOUT", 2)
    for address in ("nonsense::addr", "tcp://127.0.0.1:1"):
        t0 = time.perf_counter()
        code, _, err = run_cli("validate", good[0], "--scheduler", address, "--quiet")
        assert code == 2 and "Dask scheduler" in one_line(err), err
        assert time.perf_counter() - t0 < 20
        COUNT["faults"] += 1


def test_report_counts():
    """Last in the module: how many cases, command runs and faults this file tried."""
    print("\nhostile: " + ", ".join(f"{k}: {v}" for k, v in sorted(COUNT.items())))
    assert sum(COUNT.values()) > 0
