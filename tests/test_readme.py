"""The README's code runs exactly as written: its Python block as a script beside the file
the Quick start writes, and the Quick start's doodle-engine commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

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


#: logs, in every process of the run (spawned workers too), each file renamed into place
#: (how every output is written) with the pid that did it
_WRITES_LOGGER = """
import os, sys
def _log(event, args):
    if event == "os.rename":
        with open(os.environ["README_WRITES_LOG"], "a") as fh:
            fh.write(f"{os.getpid()} {os.path.basename(os.fsdecode(args[1]))}\\n")
sys.addaudithook(_log)
"""


def test_the_python_example_runs_as_written(tmp_path):
    """Saved as a script and run, with two workers: each print appears once and each output
    is written once, by the script's own process (workers import the script again)."""
    from doodle_engine.example import make_example
    make_example(tmp_path / "example.npz")  # what the Quick start wrote
    python = blocks("python")
    assert len(python) == 1
    assert "workers=2" in python[0]
    script = tmp_path / "readme_example.py"
    script.write_text(python[0], encoding="utf-8")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_WRITES_LOGGER, encoding="utf-8")
    env = _env()
    env["PYTHONPATH"] = str(hook) + os.pathsep + env["PYTHONPATH"]
    env["README_WRITES_LOG"] = str(tmp_path / "writes.log")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.count("px differ, accuracy") == 1 and out.count("{'standardize'") == 1, out
    row = next(ln for ln in out.splitlines() if "remapped.npz" in ln)
    assert "remapped" in row.split("remapped.npz", 1)[1]  # the row's reason says why
    writes = [ln.split() for ln in (tmp_path / "writes.log").read_text().splitlines()]
    names = [name for _, name in writes]
    for name in ("remapped.npz", "example_color.png", "example_overlay.png"):
        assert names.count(name) == 1, (name, writes)
        assert (tmp_path / name).exists(), name
    assert {pid for pid, name in writes if name != "rows.csv"} == {
        pid for pid, name in writes if name == "remapped.npz"}  # one process wrote them
    assert (tmp_path / "rows.csv").exists()


def test_the_readme_links_to_docs_pages_that_exist():
    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    assert links
    for link in links:
        assert (ROOT / link.split("#")[0]).is_file(), link
