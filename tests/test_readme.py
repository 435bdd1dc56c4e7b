"""The README's code runs exactly as written: its Python block as a script beside the file
the Quick start writes, and the Quick start's doodle-engine commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from doodle_engine.example import make_example

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _quick_start_commands():
    """The doodle-engine commands of the Quick start's first block (the venv and pip steps are
    the set-up this test already runs in)."""
    commands = []
    for line in blocks("bash")[0].splitlines():
        for part in line.split("&&"):
            words = shlex.split(part.strip())
            if words and words[0] == "doodle-engine":
                commands.append(words[1:])
    return commands


def test_the_quick_start_commands_run(tmp_path):
    commands = _quick_start_commands()
    assert [c[0] for c in commands] == ["example", "validate"]
    for args in commands:
        r = subprocess.run([sys.executable, "-m", "doodle_engine.cli", *args], cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert (tmp_path / "example.npz").exists()


def test_the_python_example_runs_as_written(tmp_path):
    make_example(tmp_path / "example.npz")  # what the Quick start wrote
    python = blocks("python")
    assert len(python) == 1
    script = tmp_path / "readme_example.py"
    script.write_text(python[0], encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "px differ, accuracy" in r.stdout and "remapped.npz" in r.stdout
    for name in ("remapped.npz", "example_color.png", "example_overlay.png", "rows.csv"):
        assert (tmp_path / name).exists(), name


def test_the_readme_links_to_docs_pages_that_exist():
    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
