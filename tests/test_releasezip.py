"""Coast Train release zips as input: members read in place, same results as loose files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SETTINGS, doodles_for, needs_real, real_files, scene, write_npz

from doodle_engine import DoodleError, cli, load, save
from doodle_engine.batch import run_batch
from doodle_engine.files import split_member
from doodle_engine.inputs import find_inputs
from doodle_engine.releasezip import list_members, record_name, unsafe_member

RECORD = "Landsat8_3_001"


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _loose_files(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image, truth = scene(40, 56, seed=i)
        paths.append(write_npz(folder / f"duck_2021-10-16_L8_ID{i + 1}.npz", image,
                               doodles_for(truth), truth, SETTINGS["mlp-2021-10"]))
    return paths


def _release_zip(path, files, csv_rows=None, extra=None):
    """A zip laid out as a release record: one metadata CSV and an npz folder."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        rows = csv_rows or [{"annotation_image_filename": Path(f).name} for f in files]
        zf.writestr(f"{Path(path).stem}/metadata.csv", pd.DataFrame(rows).to_csv(index=False))
        for f in files:
            zf.write(f, f"{Path(path).stem}/npz/{Path(f).name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return Path(path)


def _run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _by_stem(frame):
    frame = frame.assign(stem=frame["file"].map(lambda f: Path(split_member(f)[1] or f).name))
    return frame.set_index("stem").sort_index()


def test_members_are_listed_named_and_loaded_in_place(tmp_path):
    files = _loose_files(tmp_path / "loose")
    z = _release_zip(tmp_path / f"{RECORD}.zip", files)
    npz, csv = list_members(z)
    assert [Path(m).name for m in npz] == sorted(f.name for f in files)
    assert csv == [f"{RECORD}/metadata.csv"]
    inputs = find_inputs([z])
    assert inputs[0] == f"{z}::{RECORD}/npz/{files[0].name}"
    rec, loose = load(inputs[0]), load(files[0])
    assert rec.path == inputs[0] and np.array_equal(rec.image, loose.image)
    assert np.array_equal(rec.label, loose.label) and rec.settings.era == loose.settings.era
    assert record_name(z) == RECORD
    # a folder holding the zip finds its members too, after the loose npz files
    assert find_inputs([tmp_path]) == [str(f) for f in sorted(files)] + inputs


def test_the_whole_zip_given_to_load_says_how_to_name_a_member(tmp_path):
    z = _release_zip(tmp_path / f"{RECORD}.zip", _loose_files(tmp_path / "loose", 1))
    with pytest.raises(DoodleError, match=r"release zip holding 1 \.npz file.*::"):
        load(z)


def test_a_zip_validates_as_its_loose_files_in_one_run_and_is_untouched(tmp_path):
    files = _loose_files(tmp_path / "loose")
    z = _release_zip(tmp_path / f"{RECORD}.zip", files)
    before = _sha(z)
    frame = run_batch("validate", [tmp_path / "loose", z], mode="fast", progress=False)
    assert _sha(z) == before
    assert (frame["error"] == "").all() and len(frame) == 6
    members = frame[frame["file"].str.contains("::")]
    loose = frame[~frame["file"].str.contains("::")]
    cols = ["accuracy", "differ", "era", "mean_iou"]
    pd.testing.assert_frame_equal(_by_stem(members)[cols], _by_stem(loose)[cols])
    assert set(members["record"]) == {RECORD}


def test_resume_table_and_two_workers_on_members(tmp_path):
    files = _loose_files(tmp_path / "loose")
    z = _release_zip(tmp_path / f"{RECORD}.zip", files)
    table = tmp_path / "t.csv"
    first = find_inputs([z])[:1]
    run_batch("validate", first, table=table, mode="fast", progress=False)
    frame = run_batch("validate", [z], table=table, resume=True, workers=2, mode="fast",
                      progress=False)
    assert list(frame["file"]) == find_inputs([z]) and (frame["error"] == "").all()
    assert len(pd.read_csv(table)) == 3


def test_dask_local_cluster_reads_members(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    z = _release_zip(tmp_path / f"{RECORD}.zip", _loose_files(tmp_path / "loose", 2))
    local = run_batch("validate", [z], mode="fast", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = run_batch("validate", [z], client=client, mode="fast", progress=False)
    cols = ["file", "accuracy", "differ", "error"]
    pd.testing.assert_frame_equal(local[cols], remote[cols])


def _bomb_member(name, declared):
    """A deflated member whose local and central headers declare ``declared`` bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, b"\0" * 1000)
    raw = bytearray(buf.getvalue())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(sig)
        raw[at + off:at + off + 4] = struct.pack("<I", declared)
    return bytes(raw)


def test_hostile_members_are_one_line_each_and_the_run_goes_on(tmp_path):
    files = _loose_files(tmp_path / "loose", 2)
    z = tmp_path / f"{RECORD}.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in files:
            zf.write(f, f"npz/{f.name}")
        zf.writestr("../evil.npz", b"not read")
        zf.writestr("npz/pickled.npz", _pickled_npz())
    assert unsafe_member("../evil.npz") and unsafe_member("/abs.npz") and not unsafe_member("a/b.npz")
    before = _sha(z)
    code, out, err = _run_cli("validate", z, "--quiet", "--mode", "fast", "--workers", "1")
    assert code == 1 and _sha(z) == before
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in err
    assert any("../evil.npz" in e and "'..'" in e for e in errors)
    assert any("pickled.npz" in e and "allow-pickle" in e for e in errors)
    frame = run_batch("validate", [z], mode="fast", progress=False)
    good = frame[frame["error"] == ""]
    assert sorted(Path(f).name for f in good["file"]) == sorted(f.name for f in files)


def _pickled_npz():
    buf = io.BytesIO()
    np.savez(buf, image=np.zeros((4, 4, 3), np.uint8), doodles=np.zeros((4, 4), np.uint8),
             classes=np.array(["a", None], dtype=object))
    return buf.getvalue()


def test_a_declared_bomb_is_refused_before_decompressing(tmp_path):
    z = tmp_path / "bomb_1_001.zip"
    z.write_bytes(_bomb_member("npz/bomb.npz", 4_000_000_000))
    [member] = find_inputs([z])
    with pytest.raises(DoodleError, match="declares 4000000000 bytes, above the limit"):
        load(member)


def test_a_truncated_zip_is_one_error_row_beside_good_inputs(tmp_path):
    files = _loose_files(tmp_path / "loose", 2)
    z = _release_zip(tmp_path / f"{RECORD}.zip", files)
    cut = tmp_path / "cut" / "Cut_3_001.zip"
    cut.parent.mkdir()
    cut.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    frame = run_batch("validate", [files[0], cut], mode="fast", progress=False)
    assert list(frame["file"]) == [str(files[0]), str(cut)]
    assert frame["error"].iloc[0] == "" and "not a readable zip" in frame["error"].iloc[1]
    # export --gym refuses it up front, in the same words
    code, _, err = _run_cli("export", "--gym", files[0], cut, "-o", tmp_path / "gym", "--quiet")
    assert code == 2 and err.strip() == f"error: {cut}: {frame['error'].iloc[1].split(': ', 1)[1]}"
    assert not (tmp_path / "gym").exists()


def test_info_and_export_take_a_zip(tmp_path):
    z = _release_zip(tmp_path / f"{RECORD}.zip", _loose_files(tmp_path / "loose", 2))
    code, out, err = _run_cli("info", z)
    assert code == 0 and out.count("::") >= 2, err
    code, out, err = _run_cli("export", z, "-o", tmp_path / "out", "--png-labels", "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == \
        [f"duck_2021-10-16_L8_ID{i}_label.png" for i in (1, 2)]


def test_outputs_of_members_are_skipped_when_newer_and_rewritten_when_forced(tmp_path):
    z = _release_zip(tmp_path / f"{RECORD}.zip", _loose_files(tmp_path / "loose", 2))
    before = _sha(z)
    mapping = tmp_path / "m.json"
    mapping.write_text('{"water": "water", "surf": "water", "sand": "land"}')
    for args in (("reconstruct", z, "-o", tmp_path / "rc", "--mode", "fastest"),
                 ("remap", z, "--mapping", mapping, "-o", tmp_path / "rm")):
        for again, extra in ((False, ()), (True, ()), (True, ("--force",))):
            code, out, err = _run_cli(*args, *extra, "--quiet", "--workers", "1")
            assert code == 0, err
            skipped = "skipped: 2 (up to date" in out
            assert skipped == (again and not extra), (args[0], extra, out)
    member = load(find_inputs([z])[0])
    for _ in range(2):  # the API, over its own earlier output
        save(member, tmp_path / "copy.npz", overwrite=True)
    with pytest.raises(DoodleError, match="refusing to overwrite the input file"):
        save(member, z, overwrite=True)
    assert _sha(z) == before


def test_a_member_s_short_name_from_a_table_can_be_typed_back(tmp_path):
    """Tables show a member as ZIP::name.npz: that name loads the one member of that name;
    a name two members share is refused, naming a full one."""
    files = _loose_files(tmp_path / "loose", 1)
    z = _release_zip(tmp_path / f"{RECORD}.zip", files)
    short = f"{z}::{files[0].name}"
    assert np.array_equal(load(short).label, load(files[0]).label)
    code, out, err = _run_cli("info", short)
    assert code == 0 and out.startswith(short), err
    twice = tmp_path / "Twice_1_001.zip"
    with zipfile.ZipFile(twice, "w") as zf:
        for folder in ("a", "b"):
            zf.write(files[0], f"{folder}/{files[0].name}")
    with pytest.raises(DoodleError, match=f"2 members of the zip have this name; give the full "
                                          f"one, e.g. {twice}::a/{files[0].name}"):
        load(f"{twice}::{files[0].name}")


def test_jobs_that_rebuild_nothing_leave_an_undated_era_untold(tmp_path):
    """A member has no results-folder date, so its layout allows several eras: stats (and
    remap, export) write no assumed era; validate tells it from the stored label."""
    z = _release_zip(tmp_path / f"{RECORD}.zip", _loose_files(tmp_path / "loose", 1))
    stats = run_batch("stats", [z], progress=False)
    assert stats.loc[0, "era"] == "" and stats.loc[0, "era_source"].startswith("not told")
    checked = run_batch("validate", [z], progress=False, mode="fastest")
    assert checked.loc[0, "era"] and checked.loc[0, "era_source"] == "best match"
    code, out, err = _run_cli("stats", z, "--report", tmp_path / "s.csv", "--quiet")
    assert code == 0 and "assumed" not in out + err, out + err
    report = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert report.loc[0, "era"] == "" and report.loc[0, "era_source"].startswith("not told")


def test_same_named_members_of_two_records_share_a_folder_with_prefix_record(tmp_path):
    """Coast Train's A_naip and C_s2 both hold two files of one name: one Gym set takes both
    when outputs are named RECORD__NAME; without the option the run is refused up front."""
    files = _loose_files(tmp_path / "loose", 1)
    zips = [_release_zip(tmp_path / f"{r}.zip", files) for r in ("A_naip_4_001", "C_s2_4_001")]
    code, _, err = _run_cli("export", "--gym", *zips, "-o", tmp_path / "gym", "--quiet")
    assert code == 2 and "writes the same output name" in err and "--prefix-record" in err, err
    assert not (tmp_path / "gym").exists()
    stems = [f"{r}__duck_2021-10-16_L8_ID1" for r in ("A_naip_4_001", "C_s2_4_001")]
    code, out, err = _run_cli("export", "--gym-npz", "--prefix-record", *zips, "-o",
                              tmp_path / "gym", "--quiet")
    assert code == 0 and "2 image/label pair(s)" in out, err
    for folder in ("images", "labels"):
        assert sorted(p.stem for p in (tmp_path / "gym" / folder).iterdir()) == stems
    assert sorted(p.stem for p in (tmp_path / "gym" / "npzs").iterdir()) == \
        [f"gym_{s}" for s in stems]
    code, _, err = _run_cli("export", "--prefix-record", *zips, "-o", tmp_path / "ex",
                            "--png-labels", "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "ex" / "labels").iterdir()) == \
        [f"{s}_label.png" for s in stems]
    for again in (False, True):
        code, out, err = _run_cli("reconstruct", "--prefix-record", *zips, "-o", tmp_path / "rc",
                                  "--mode", "fastest", "--quiet", "--workers", "1")
        assert code == 0 and ("skipped: 2 (up to date" in out) == again, err
    assert sorted(p.name for p in (tmp_path / "rc").glob("*.npz")) == [f"{s}.npz" for s in stems]


@needs_real
def test_real_files_zipped_validate_as_loose(tmp_path):
    small = [f for f in real_files() if "2022-05-04-14-3" in f.name][:3]
    loose = tmp_path / "loose"
    loose.mkdir()
    for f in small:
        shutil.copy(f, loose / f.name)
    z = _release_zip(tmp_path / "S2_4_001.zip", sorted(loose.iterdir()))
    before = _sha(z)
    frame = run_batch("validate", [loose, z], progress=False)
    assert _sha(z) == before and (frame["error"] == "").all()
    members = frame[frame["file"].str.contains("::")]
    cols = ["accuracy", "differ", "era", "era_source"]
    pd.testing.assert_frame_equal(_by_stem(members)[cols],
                                  _by_stem(frame[~frame["file"].str.contains("::")])[cols])
    assert (members["differ"] == 0).all()
