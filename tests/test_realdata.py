"""The real-file registry: every file the exact-rebuild tests use is named with its public URL
and SHA-256; a local copy is checked against it; without one and without network the tests
that need the files skip, saying why."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import realdata

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"^https://raw\.githubusercontent\.com/(Doodleverse/dash_doodler|"
                 r"2320sharon/NPZ_JSON_Converter)/[0-9a-f]{40}/\S+\.npz$")


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_the_registry_names_each_file_its_hash_and_its_url_at_a_commit():
    reg = realdata.registry()
    assert len(reg.registry) == 9
    for name, known in reg.registry.items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", known), name
        assert URL.match(reg.urls[name]), (name, reg.urls[name])
        # the local name keeps the results folder, whose date tells the era
        assert reg.urls[name].endswith(name.split("__")[-1])


@pytest.mark.skipif(realdata.local_folder() is None,
                    reason=f"no local copy in {realdata.DATA / 'doodler'} (set {realdata.ENV})")
def test_the_local_copy_is_the_published_files():
    reg = realdata.registry()
    folder = realdata.local_folder()
    missing = [n for n in reg.registry if not (folder / n).is_file()]
    assert not missing, f"{folder} lacks {missing}"
    for name, known in reg.registry.items():
        assert "sha256:" + _sha256(folder / name) == known, f"{folder / name} differs"


def _without_network(tmp_path, **env):
    """A child environment with no local copy, an empty pooch cache and every HTTP(S) request
    sent to a closed local port: the download fails at once, as with no network."""
    child = dict(os.environ, DOODLE_ENGINE_DATA=str(tmp_path / "nothing"),
                 XDG_CACHE_HOME=str(tmp_path / "cache"), HTTPS_PROXY="http://127.0.0.1:9",
                 HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="")
    child.update(env)
    return child


def test_without_a_copy_or_network_the_real_file_tests_skip_saying_why(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_export.py", "-k", "color_doodles_match_the_files"],
                         cwd=ROOT, env=_without_network(tmp_path), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "SKIPPED" in out.stdout and "set DOODLE_ENGINE_DATA" in out.stdout, out.stdout[-3000:]
    assert "download failed" in out.stdout


def test_the_environment_variable_points_at_a_local_copy(tmp_path):
    if realdata.local_folder() is None:
        pytest.skip(f"no local copy in {realdata.DATA / 'doodler'} to link to")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "doodler").symlink_to(realdata.local_folder())
    code = "import realdata; print(realdata.locate())"
    env = _without_network(tmp_path, DOODLE_ENGINE_DATA=str(tmp_path / "copy"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "copy" / "doodler") in out.stdout and "None)" in out.stdout
