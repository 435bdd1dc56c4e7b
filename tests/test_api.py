"""The Python API: NumPy-style docstrings whose examples run, one name per idea."""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import doodle_engine as de
from doodle_engine import version
from doodle_engine.colorize import color_doodles, colorize, overlay
from doodle_engine.errors import REMOVED_IN
from doodle_engine.validate import validate

PUBLIC = ["doodle_engine.inputs.load", "doodle_engine.npz.save", "doodle_engine.reconstruct.reconstruct",
          "doodle_engine.remapping.remap", "doodle_engine.remapping.remap_record",
          "doodle_engine.remapping.load_mapping", "doodle_engine.validate.validate",
          "doodle_engine.batch.run_batch", "doodle_engine.colorize.colorize",
          "doodle_engine.colorize.overlay", "doodle_engine.colorize.color_doodles",
          "doodle_engine.export.export_record", "doodle_engine.example.make_example",
          "doodle_engine.plots.write_plots"]


def _obj(name):
    module, attr = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_functions_have_numpy_style_docstrings(name):
    doc = _obj(name).__doc__ or ""
    for section in ("Parameters\n    ----------", "Returns\n    -------"):
        assert section in doc, f"{name} lacks {section.split()[0]}"
    if name != "doodle_engine.plots.write_plots":
        assert "Examples\n    --------" in doc, f"{name} lacks Examples"


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "doodle_engine.plots.write_plots"])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    obj = _obj(name)
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(obj, name, globs={})
    assert tests and tests[0].examples
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} example(s) of {name} failed"


def test_reconstruct_takes_threads_and_the_old_names_say_when_they_go(synthetic):
    """``workers`` means processes everywhere: reconstruct's forest threads are ``threads``;
    ``workers`` and ``n_jobs`` still work, with a warning naming the version they go in."""
    rec = de.load(synthetic("rf-2021-06"))
    new = de.reconstruct(rec, threads=1, seed=3)
    for old_name in ("workers", "n_jobs"):
        with pytest.warns(DeprecationWarning,
                          match=rf"reconstruct\({old_name}=\.\.\.\) is deprecated and will be "
                                rf"removed in version {REMOVED_IN}: use threads="):
            old = de.reconstruct(rec, seed=3, **{old_name: 1})
        np.testing.assert_array_equal(new.label, old.label)


def test_import_and_cli_start_load_no_heavy_library():
    """``import doodle_engine`` and the command line's start do not import scikit-learn,
    scikit-image, SciPy, pandas or Numba (each is imported where first used), and
    ``doodle_engine.remap`` is still callable; exact mode's MLP fit needs no scikit-learn."""
    code = (
        "import sys, numpy as np\n"
        "import doodle_engine as de\n"
        "import doodle_engine.cli\n"
        "heavy = ('sklearn', 'skimage', 'scipy', 'pandas', 'numba')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(de.remap(np.array([[0, 1]], np.uint8), {0: 1, 1: 0}).tolist())\n"
        "from doodle_engine.kernels.mlp import fit_mlp\n"
        "rng = np.random.default_rng(0)\n"
        "fit_mlp(rng.normal(size=(300, 4)), rng.integers(1, 3, 300).astype(np.uint8), max_iter=3)\n"
        "print('sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["[]", "[[1, 0]]", "False"], out.stdout


def test_the_version_is_written_once():
    """pyproject.toml reads the version from ``doodle_engine/version.py`` (dynamic), the package
    exports that one."""
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert importlib.metadata.version("doodle-engine") == de.__version__ == version.__version__


def test_the_public_calls_say_what_a_wrong_argument_should_be(synthetic, tmp_path):
    """A newcomer's mistakes gave numpy's or pathlib's tracebacks, or silently wrong
    results: each is now a DoodleError saying what the argument must be."""
    path = synthetic("mlp-2022-05", h=24, w=32)
    rec = de.load(path)
    names = "water,surf,sand"
    assert de.load(path, classes=names).classes == ["water", "surf", "sand"]
    txt = tmp_path / "classes.txt"
    txt.write_text("water\nsurf\n\nsand\n")
    assert de.load(path, classes=txt).classes == ["water", "surf", "sand"]
    assert np.array_equal(de.remap(rec.label, {"water": "w", "surf": "w", "sand": "s"},
                                   classes=names), np.where(rec.label == 2, 1, 0))
    onehot = np.eye(3, dtype=np.uint8)[rec.label]
    assert np.array_equal(colorize(rec.label == 1, ["a", "b"]),
                          colorize((rec.label == 1).astype(np.uint8), ["a", "b"]))  # bool: 0/1
    cases = [
        (lambda: de.load(5), "load takes the path of a file, got int"),
        (lambda: de.load(path, classes=3), "classes= is a list of names"),
        (lambda: de.load(path, classes=str(tmp_path / "nope" / "classes.txt")), "no such file"),
        (lambda: color_doodles(rec.doodles + 5, rec.classes),
         r"doodles value \d is not one of the 3 classes \(1..3"),
        (lambda: de.load(path, max_pixels="big"), "max_pixels must be a whole number"),
        (lambda: de.save("notarecord", tmp_path / "x.npz"), "save takes a DoodleRecord"),
        (lambda: de.reconstruct(path), "takes a record"),
        (lambda: colorize(onehot, rec.classes), r"2-D raster .* got shape \(24, 32, 3\)"),
        (lambda: colorize(rec.label.astype(float), rec.classes), "got float64 values"),
        (lambda: colorize(np.array([[0, 300]]), rec.classes), "label value 300 is not one"),
        (lambda: colorize(np.array([[0, -1]]), rec.classes), "label value -1 is not one"),
        (lambda: colorize(rec.label, rec.classes, colors=["#zzzzzz"] * 3), "not a #RRGGBB"),
        (lambda: overlay(rec.image, rec.label[:10], 0.5, rec.classes), "of the label's size"),
        (lambda: overlay("img.png", rec.label, 0.5, rec.classes), "image must be"),
        (lambda: color_doodles(rec.image, rec.doodles, rec.classes), "doodles must be a 2-D"),
        (lambda: validate(rec.label, rec.label, n_classes=2), "value 2 is not one of the"),
        (lambda: validate(rec.label * 1.0, rec.label), "integer class indices"),
    ]
    for call, message in cases:
        with pytest.raises(de.DoodleError, match=message):
            call()
    assert not (tmp_path / "x.npz").exists()
