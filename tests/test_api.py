"""The Python API: NumPy-style docstrings whose examples run, one name per idea."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

import doodle_engine as de

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


def test_reconstruct_takes_workers_and_n_jobs_is_a_deprecated_alias(synthetic):
    rec = de.load(synthetic("rf-2021-06"))
    new = de.reconstruct(rec, workers=1, seed=3)
    with pytest.warns(DeprecationWarning, match="workers"):
        old = de.reconstruct(rec, n_jobs=1, seed=3)
    np.testing.assert_array_equal(new.label, old.label)


def test_import_and_cli_start_load_no_heavy_library():
    """``import doodle_engine`` and the command line's start do not import scikit-learn,
    scikit-image, SciPy, pandas or Numba (each is imported where first used), and
    ``doodle_engine.remap`` is still callable; exact mode's MLP fit needs no scikit-learn."""
    import subprocess
    import sys
    from pathlib import Path
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
