"""What the command line says: exit codes with one line saying why, summaries, era columns."""

from __future__ import annotations

import pytest

from doodle_engine import __version__
from doodle_engine.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"doodle-engine {__version__}"


@pytest.mark.parametrize("command", [["validate"], ["stats"], ["info"], ["bench"],
                                     ["reconstruct", "-o", "OUT"], ["export", "-o", "OUT"]])
def test_a_folder_without_npz_files_exits_2_with_one_line(capsys, tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a Doodler file")
    for folder in (empty, tmp_path / "other"):
        args = [a.replace("OUT", str(tmp_path / "o")) for a in command] + [str(folder)]
        code, out, err = run(capsys, *args, *(["--quiet"] if command[0] not in ("info", "bench") else []))
        assert code == 2
        assert err.strip() == f"error: {folder}: folder holds no .npz files"
        assert "(no files)" not in out


def test_bench_takes_a_folder_and_shows_progress(capsys, synthetic):
    path = synthetic("mlp-2022-05", h=24, w=32)
    code, out, err = run(capsys, "bench", path.parent)
    assert code == 0
    rows = [ln for ln in out.splitlines() if " Mpx/s x" in ln]
    assert len(rows) == 4 and all(ln.startswith(path.name) for ln in rows)
    assert all("mlp-2022-05 (layout+date)" in ln for ln in rows)
    assert "4/4" in err  # the progress bar counted every mode of the file
