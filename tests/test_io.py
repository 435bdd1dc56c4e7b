import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from doodle_engine import NO_CLASS, DoodleError, load, save
from doodle_engine.record import onehot_from_label
from conftest import SETTINGS, doodles_for, needs_real, real_files, scene, write_npz

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("era", list(SETTINGS))
def test_reads_every_era(synthetic, era):
    rec = load(synthetic(era))
    assert rec.settings.era == era
    assert rec.image.shape == (48, 64, 3) and rec.doodles.shape == (48, 64)
    assert rec.label_layout == "onehot" and rec.label_k == 3
    assert set(np.unique(rec.label)) == {0, 1, 2}
    assert rec.classes == ["water", "surf", "sand"]


def test_raster_label_and_small_k(tmp_path):
    image, truth = scene()
    d = doodles_for(truth)
    rec = load(write_npz(tmp_path / "r.npz", image, d, truth, SETTINGS["mlp-2021-10"], onehot=False))
    assert rec.label_layout == "raster" and rec.label_k is None
    np.testing.assert_array_equal(rec.label, truth)
    # K smaller than the number of classes: only classes 0..1 in the label
    small = np.minimum(truth, 1)
    rec = load(write_npz(tmp_path / "k.npz", image, d, small, SETTINGS["mlp-2021-10"]))
    assert rec.label_k == 2 and rec.n_classes == 3


def test_onehot_pixel_without_class_is_no_class(tmp_path):
    image, truth = scene()
    lab = (np.arange(3) == truth[..., None]).astype(np.uint8)
    lab[0, 0] = 0
    np.savez(tmp_path / "n.npz", image=image, doodles=doodles_for(truth), label=lab)
    rec = load(tmp_path / "n.npz")
    assert rec.label[0, 0] == NO_CLASS and rec.settings is None and rec.classes is None


def test_trials_are_grouped_by_prefix(tmp_path):
    image, truth = scene()
    d = doodles_for(truth)
    extra = {"0image": image, "0doodles": d, "0settings": np.array([3, 2, 1, 1, 1, 0.9, 3.0]),
             "00image": image, "00doodles": d, "00label": (np.arange(3) == truth[..., None]).astype(np.uint8)}
    rec = load(write_npz(tmp_path / "t.npz", image, d, truth, SETTINGS["mlp-2021-10"], extra=extra))
    assert [t.trial_prefix for t in rec.trials] == ["0", "00"]
    assert rec.trials[0].settings.n_sigmas == 3
    assert rec.trials[1].label_k == 3


def test_missing_classes_come_from_classes_txt_or_the_user(tmp_path):
    image, truth = scene()
    p = write_npz(tmp_path / "c.npz", image, doodles_for(truth), truth, classes=None)
    assert load(p).classes is None
    assert load(p, classes=["a", "b", "c"]).classes_source == "user"
    (tmp_path / "classes.txt").write_text("water\nsurf\nsand\n")
    rec = load(p)
    assert rec.classes == ["water", "surf", "sand"] and rec.classes_source == "classes.txt"


def test_save_roundtrip_is_atomic_and_never_overwrites_input(synthetic, tmp_path):
    src = synthetic("mlp-2021-10")
    rec = load(src)
    with pytest.raises(DoodleError, match="input file"):
        save(rec, src, overwrite=True)
    out = save(rec, tmp_path / "out" / "copy.npz")
    back = load(out)
    np.testing.assert_array_equal(back.label, rec.label)
    np.testing.assert_array_equal(back.doodles, rec.doodles)
    assert back.settings == rec.settings or back.settings.as_dict() | {"era_source": 0} == \
        rec.settings.as_dict() | {"era_source": 0}
    with pytest.raises(DoodleError, match="exists"):
        save(rec, out)
    assert not list((tmp_path / "out").glob("*.part"))


def test_onehot_from_label_roundtrip():
    lab = np.array([[0, 2], [1, NO_CLASS]], np.uint8)
    oh = onehot_from_label(lab)
    assert oh.shape == (2, 2, 3) and oh[1, 1].sum() == 0 and oh[0, 1, 2] == 1


def _bad_files(tmp_path):
    image, truth = scene()
    d = doodles_for(truth)
    s = SETTINGS["mlp-2021-10"]
    good = write_npz(tmp_path / "good.npz", image, d, truth, s)
    raw = good.read_bytes()
    cases = {}
    (tmp_path / "notzip.npz").write_bytes(b"this is not a zip file at all")
    cases["notzip.npz"] = "not a readable"
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    cases["trunc.npz"] = "not a readable|truncated|corrupt"
    np.savez(tmp_path / "noimage.npz", doodles=d)
    cases["noimage.npz"] = "missing the 'image'"
    np.savez(tmp_path / "nodoodles.npz", image=image)
    cases["nodoodles.npz"] = "missing the 'doodles'"
    np.savez(tmp_path / "shape.npz", image=image, doodles=d[:-1])
    cases["shape.npz"] = "shape mismatch"
    write_npz(tmp_path / "labelshape.npz", image, d, truth[:-1], s)
    cases["labelshape.npz"] = "shape mismatch"
    write_npz(tmp_path / "doodleval.npz", image, (d * 3).astype(np.uint8), truth, s)
    cases["doodleval.npz"] = "beyond the 3 classes"
    write_npz(tmp_path / "labelval.npz", image, d, (truth * 3), s, onehot=False)
    cases["labelval.npz"] = "outside its"
    bad_oh = (np.arange(3) == truth[..., None]).astype(np.uint8) * 2
    np.savez(tmp_path / "onehotval.npz", image=image, doodles=d, label=bad_oh)
    cases["onehotval.npz"] = "outside 0/1"
    write_npz(tmp_path / "float.npz", image.astype(np.float32), d, truth, s)
    cases["float.npz"] = "must be uint8"
    write_npz(tmp_path / "settings.npz", image, d, truth, [1, 2, 3, 4])
    cases["settings.npz"] = "4 values"
    np.savez(tmp_path / "pickle.npz", image=image, doodles=d,
             classes=np.array(["a", None], dtype=object))
    cases["pickle.npz"] = "pickled data"
    return cases


def test_bad_inputs_raise_one_clear_error(tmp_path):
    for name, words in _bad_files(tmp_path).items():
        with pytest.raises(DoodleError, match=words) as info:
            load(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)


def test_bad_inputs_exit_2_with_one_line_and_no_traceback(tmp_path):
    for name in _bad_files(tmp_path):
        r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "info", str(tmp_path / name)],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and "Traceback" not in r.stderr


def test_pickle_opt_in_reads_object_arrays(tmp_path):
    image, truth = scene()
    np.savez(tmp_path / "obj.npz", image=image, doodles=doodles_for(truth),
             classes=np.array(["a", "b", "c"], dtype=object))
    with pytest.raises(DoodleError):
        load(tmp_path / "obj.npz")
    from doodle_engine.npz import read_arrays
    assert list(read_arrays(tmp_path / "obj.npz", allow_pickle=True)["classes"]) == ["a", "b", "c"]


def test_pixel_limit_is_checked_before_reading(tmp_path):
    image, truth = scene()
    p = write_npz(tmp_path / "big.npz", image, doodles_for(truth), truth)
    with pytest.raises(DoodleError, match="above the limit"):
        load(p, max_pixels=100)


def test_zip_with_huge_declared_shape_is_refused(tmp_path):
    header = {"descr": "|u1", "fortran_order": False, "shape": (100000, 100000, 3)}
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w") as z:
        with z.open("image.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
    with pytest.raises(DoodleError, match="above the limit"):
        load(p)


@needs_real
@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name[:50])
def test_real_files_read_and_hold_doodler_facts(path):
    rec = load(path)
    for r in [rec] + rec.trials:
        assert r.label_layout == "onehot"
        doodled = r.doodled_classes()
        # K is the largest class in the result, which is at least the largest doodled class
        # except for the one-class shortcut, where every pixel is that class
        assert r.label_k >= 1 and r.label_k <= len(r.classes)
        assert r.label_k == max(doodled) + 1 or len(doodled) == 1
        on = r.doodles > 0
        agree = (r.label[on] == r.doodles[on] - 1).mean()
        assert agree > 0.9
