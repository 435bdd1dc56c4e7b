import inspect
import json
import pydoc
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import COAST_DIR, needs_coast

import doodle_engine as de
import doodle_engine.remapping as module
from doodle_engine import NO_CLASS, DoodleError, load, save
from doodle_engine.batch import run_batch
from doodle_engine.cli import main
from doodle_engine.errors import RemapWarning
from doodle_engine.kernels.lut import apply_lut_checked, apply_lut_checked_numpy
from doodle_engine.remapping import load_mapping, remap, remap_record


def _expected(classes, data, i):
    """Superclass index of class i, computed independently of the engine."""
    name = classes[i]
    supers = data["super_classes"]
    if isinstance(supers, dict):
        target = data["aliases"].get(name, data["aliases"].get(str(i + 1)))
        return int(supers[target]) - 1
    return supers.index(data["aliases"][name])


@needs_coast
@pytest.mark.parametrize("path", sorted(COAST_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_coast_train_remap_file(path):
    data = json.loads(path.read_text())
    classes = list(data["classes"])
    label = np.tile(np.arange(len(classes), dtype=np.uint8), (7, 3))
    out = remap(label, path, classes=classes)
    expected = np.array([_expected(classes, data, i) for i in range(len(classes))])
    np.testing.assert_array_equal(out, expected[label])
    supers = data["super_classes"]
    assert load_mapping(path).new_classes() == (list(supers) if isinstance(supers, list) else
                                                sorted(supers, key=lambda k: int(supers[k])))


def test_name_mapping_merges_and_identity_roundtrips():
    classes = ["ocean", "river", "sand"]
    label = np.array([[0, 1, 2], [2, 1, NO_CLASS]], np.uint8)
    out = remap(label, {"ocean": "water", "river": "water", "sand": "sand"}, classes=classes)
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, NO_CLASS]])
    same = remap(label, {c: c for c in classes}, classes=classes)
    np.testing.assert_array_equal(same, label)
    np.testing.assert_array_equal(remap(label, {0: 0, 1: 1, 2: 2}), label)


def test_integer_mapping_on_wide_labels_and_stacks():
    label = np.array([[[0, 3], [2, 1]], [[1, 1], [0, 0]]], np.int32)
    out = remap(label, {0: 1, 1: 0, 2: 0, 3: 2})
    np.testing.assert_array_equal(out, [[[1, 2], [0, 0]], [[0, 0], [1, 1]]])


def test_doodles_keep_zero():
    d = np.array([[0, 1, 2, 3]], np.uint8)
    out = remap(d, {"a": "x", "b": "x", "c": "y"}, classes=["a", "b", "c"], doodles=True)
    np.testing.assert_array_equal(out, [[0, 1, 1, 2]])


def test_unmapped_class_is_an_error_unless_a_default():
    with pytest.raises(DoodleError, match="no rule"):
        remap(np.array([[0, 1]], np.uint8), {"a": "x"}, classes=["a", "b"])
    # a class with no rule that no pixel holds is no error (checked in the remap's own pass)
    np.testing.assert_array_equal(
        remap(np.zeros((2, 2), np.uint8), {"a": "x"}, classes=["a", "b"]), np.zeros((2, 2)))
    out = remap(np.array([[0, 1]], np.uint8), {"a": "x"}, classes=["a", "b"], default="x")
    np.testing.assert_array_equal(out, [[0, 0]])


def test_bad_mapping_files(tmp_path):
    p = tmp_path / "m.json"
    p.write_text("{not json")
    with pytest.raises(DoodleError, match="not valid JSON"):
        load_mapping(p)
    p.write_text(json.dumps({"aliases": {"a": "x"}, "super_classes": {"x": "two"}}))
    with pytest.raises(DoodleError, match="1..N"):
        load_mapping(p)
    with pytest.raises(DoodleError, match="cannot read"):
        load_mapping(tmp_path / "missing.json")


def test_remap_record_keeps_everything_consistent(synthetic, tmp_path):
    rec = load(synthetic("mlp-2021-10"))
    out = remap_record(rec, {"water": "water", "surf": "water", "sand": "land"})
    assert out.classes == ["water", "land"]
    np.testing.assert_array_equal(out.label, np.array([0, 0, 1])[rec.label])
    assert set(np.unique(out.doodles)) <= {0, 1, 2}
    assert (out.doodles[rec.doodles == 0] == 0).all()
    assert out.color_label.shape == rec.image.shape
    np.testing.assert_array_equal(out.color_label[out.label == 1][0], [0xDC, 0x39, 0x12])
    back = load(save(out, tmp_path / "remapped.npz"))
    assert back.classes == ["water", "land"] and back.label_k == 2


def test_top_level_remap_is_the_function_and_help_shows_its_docstring():

    labels = np.array([[0, 1], [2, NO_CLASS]], np.uint8)
    rule = {"water": "water", "surf": "water", "sand": "land"}
    classes = ["water", "surf", "sand"]
    expected = np.array([[0, 0], [1, NO_CLASS]], np.uint8)
    np.testing.assert_array_equal(de.remap(labels, rule, classes=classes), expected)
    assert de.remap is module.remap and inspect.isfunction(de.remap)
    assert list(inspect.signature(de.remap).parameters)[:2] == ["labels", "mapping"]
    text = pydoc.render_doc(de.remap, renderer=pydoc.plaintext)
    assert "Merge, split or rename the classes" in text and "class Mapping" not in text


def test_a_mapping_files_own_classes_are_used_when_none_are_given(tmp_path):
    path = tmp_path / "coast.json"
    path.write_text(json.dumps({"aliases": {"water": "water", "surf": "water", "sand": "land"},
                                "classes": ["water", "surf", "sand"],
                                "super_classes": ["water", "land"]}))
    labels = np.array([[0, 1, 2]], np.uint8)
    np.testing.assert_array_equal(remap(labels, path), [[0, 0, 1]])
    with pytest.raises(DoodleError, match="class names"):
        remap(labels, {"water": "water"})  # a plain dict has no class list


@needs_coast
def test_coast_train_s2_file_without_classes_given():
    path = COAST_DIR / "remap_coast_train_classes_s2.json"
    data = json.loads(path.read_text())
    labels = np.arange(len(data["classes"]), dtype=np.uint8)[None]
    np.testing.assert_array_equal(remap(labels, path), remap(labels, path, classes=data["classes"]))


def test_an_unmapped_class_error_names_the_npz_and_the_class(synthetic, tmp_path):
    rec = load(synthetic("mlp-2022-05"))
    with pytest.raises(DoodleError) as exc:
        remap_record(rec, {"water": "water", "surf": "water"})
    msg = str(exc.value)
    assert msg.startswith(f"{rec.path}: class 'sand' (label value 2) has no rule in the mapping")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"water": "water", "surf": "water"}))
    args = ["remap", str(rec.path), "--mapping", str(mapping), "-o", str(tmp_path / "o"),
            "--quiet", "--workers", "1"]
    assert main(args) == 1
    # a refused file gets no output, so a second run refuses it again (not "up to date")
    assert not list((tmp_path / "o").glob("*.npz"))
    assert main(args) == 1


def test_a_class_with_no_rule_that_no_pixel_holds_is_no_error(synthetic, tmp_path):
    rec = load(synthetic("mlp-2022-05"))
    rec.label[rec.label == 2] = 0  # no 'sand' pixel left in the stored label ...
    rec.doodles[rec.doodles == 3] = 0  # ... nor among the doodles
    src = tmp_path / "nosand.npz"
    save(rec, src)
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"water": "water", "surf": "water"}))
    table = tmp_path / "t.csv"
    assert main(["remap", str(src), "--mapping", str(mapping), "-o", str(tmp_path / "o"),
                 "--quiet", "--workers", "1", "--table", str(table)]) == 0
    out = load(tmp_path / "o" / "nosand.npz")
    assert out.classes == ["water"] and set(np.unique(out.label)) == {0}
    row = pd.read_csv(table).iloc[0]
    assert json.loads(row["moves"]) == [["water", "water", int((rec.label == 0).sum())],
                                        ["surf", "water", int((rec.label == 1).sum())]]


def test_values_that_are_no_class_are_errors():
    with pytest.raises(DoodleError, match="label value 3 is not a class"):
        remap(np.array([[0, 3]], np.uint8), {"a": "x", "b": "x"}, classes=["a", "b"])
    with pytest.raises(DoodleError, match="outside 0..255"):
        remap(np.array([[0, 300]], np.int32), {0: 0, 1: 0})
    with pytest.raises(DoodleError, match="outside 0..255"):
        remap(np.array([[-1, 0]], np.int16), {0: 0, 1: 0})


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_checked_lut_kernel_matches_its_numpy_twin(dtype):
    rng = np.random.default_rng(1)
    table = rng.integers(0, 255, 256).astype(np.uint8)
    hi = 256 if dtype == np.uint8 else 300
    lo = -5 if np.dtype(dtype).kind == "i" else 0
    for flagged in ([], [7], [3, 200]):
        flags = np.zeros(256, np.uint8)
        flags[flagged] = 1
        for low, high in ((0, 7), (0, 256), (lo, hi)):
            labels = rng.integers(low, min(high, np.iinfo(dtype).max), (300, 257)).astype(dtype)
            got = apply_lut_checked(labels, table, flags)
            want = apply_lut_checked_numpy(labels, table, flags)
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1] == want[1]


def test_a_doodler_schema_mapping_applied_by_number_is_said(synthetic, tmp_path, capsys):
    """Doodler's example mapping is keyed "1".."N": on a file whose classes have names it
    goes by position, and the run warns which name took which number."""
    path = synthetic("mlp-2022-05")  # classes water, surf, sand
    mapping = tmp_path / "m.json"
    mapping.write_text('{"super_classes": {"water": "1", "land": "2"}, "classes": ["1", "2", "3"],'
                       ' "aliases": {"1": "water", "2": "land", "3": "land"}}')
    code = main(["remap", str(path), "--mapping", str(mapping), "-o", str(tmp_path / "o"),
                 "--quiet", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0 and "applied by position: 'water' as 1, 'surf' as 2, 'sand' as 3" in err
    named = tmp_path / "named.json"
    named.write_text('{"water": "water", "surf": "land", "sand": "land"}')
    assert main(["remap", str(path), "--mapping", str(named), "-o", str(tmp_path / "p"),
                 "--quiet", "--workers", "1"]) == 0
    assert "by position" not in capsys.readouterr().err
    # the API says it too, once a file (not again for its earlier trials)
    rec = load(path)
    with pytest.warns(RemapWarning, match="applied by position") as caught:
        remap_record(rec, mapping)
    assert len(caught) == 1 and str(path) in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        remap_record(rec, named)


def test_the_effective_mapping_says_which_files_it_does_not_count(synthetic, tmp_path, capsys):
    first = synthetic("mlp-2022-05", name="a.npz")
    second = synthetic("mlp-2022-05", name="b.npz", seed=1)
    mapping = tmp_path / "m.json"
    mapping.write_text('{"water": "water", "surf": "land", "sand": "land"}')
    args = ["--mapping", str(mapping), "-o", str(tmp_path / "o"), "--quiet", "--workers", "1"]
    assert main(["remap", str(first), *args]) == 0
    capsys.readouterr()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"garbage")
    assert main(["remap", str(first), str(second), str(broken), *args]) == 1
    out = capsys.readouterr().out
    assert ("effective mapping (stored labels' pixels; the 1 file(s) skipped as up to date and "
            "the 1 file(s) that failed are not counted):") in out and "in 2 file(s)" not in out


def test_a_default_outside_the_mapping_is_refused_before_any_work(synthetic, tmp_path, capsys):
    path = synthetic("mlp-2022-05")
    mapping = tmp_path / "m.json"
    mapping.write_text('{"water": "water", "surf": "land"}')
    code = main(["remap", str(path), "--mapping", str(mapping), "--default", "lnd", "-o",
                 str(tmp_path / "o"), "--quiet", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines()[0] == (
        f"error: {mapping}: default 'lnd' is not among its target classes ['water', 'land']")
    assert not (tmp_path / "o").exists()


def test_the_api_refuses_what_the_command_refuses(synthetic, tmp_path):
    """A default outside a name mapping made a record whose labels held values beyond its
    classes; an empty mapping with a default, a list or None crashed deep inside."""
    rec = load(synthetic("mlp-2022-05"))  # classes water, surf, sand
    names = {"water": "water", "surf": "water", "sand": "land"}
    for default in (5, 2, "lnd", 1.5):
        with pytest.raises(DoodleError, match="default"):
            remap_record(rec, names, default=default)
    new = remap_record(rec, {"water": "water", "surf": "land"}, default="land")
    assert new.classes == ["water", "land"] and int(new.label.max()) == 1
    for bad, match in (({}, "empty"), (None, "got NoneType"), (["water", "land"], "got list")):
        with pytest.raises(DoodleError, match=match):
            remap_record(rec, bad, default="x")
    with pytest.raises(DoodleError, match="class index 0..254"):
        remap_record(rec, {0: 0, 1: 0, 2: 1}, default="x")


def test_an_integer_mapping_file_and_a_bad_mapping_refused_once(synthetic, tmp_path):
    path = synthetic("mlp-2022-05")
    ints = tmp_path / "ints.json"
    ints.write_text('{"0": 0, "1": 0, "2": 1}')
    m = load_mapping(ints)
    assert m.index_map == {0: 0, 1: 0, 2: 1}
    assert np.array_equal(remap_record(load(path), ints).label,
                          np.where(load(path).label == 2, 1, 0))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DoodleError, match="not valid JSON"):
        run_batch("remap", [path, path.parent], outdir=tmp_path / "o", mapping=bad,
                     workers=1, progress=False)
    with pytest.raises(DoodleError, match="not among its target classes"):
        run_batch("remap", [path], outdir=tmp_path / "o", mapping={"water": "w"},
                     default="x", workers=1, progress=False)
    with pytest.raises(DoodleError, match="got NoneType"):
        run_batch("remap", [path], outdir=tmp_path / "o", workers=1, progress=False)
    assert not (tmp_path / "o").exists()
    assert main(["remap", str(path), "--mapping", str(ints), "--default", "1", "-o",
                 str(tmp_path / "c"), "--quiet", "--workers", "1"]) == 0


def test_an_integer_mapping_beyond_the_class_indices_is_refused_as_such():
    """{..., 7: 300} said 'Doodler's palettes hold at most 24 classes, got 301'."""
    for bad in ({0: 0, 7: 300}, {0: 0, -1: 1}, {300: 0}):
        with pytest.raises(DoodleError, match=r"integer mapping's classes are indices 0..254"):
            load_mapping(bad)


def test_what_a_tool_calling_remap_meets(tmp_path):
    """A json.load-ed integer mapping was refused where its file was taken; a 0-d input came
    back 1-d; a doodle value was named one too low; the mapping file's class list was called
    the labels'; 'lnd' beside 'land' warned twice."""
    assert np.array_equal(remap(np.array([0, 1, 2], np.uint8), {"0": 0, "1": 1, "2": 0}),
                          [0, 1, 0])
    assert remap(np.uint8(2), {0: 0, 1: 0, 2: 1}).shape == ()
    listed = {"aliases": {"water": "water", "land": "land"}, "super_classes": ["water", "land"],
              "classes": ["water", "land"]}
    with pytest.raises(DoodleError, match=r"doodle value 7 is not a class \(read through the "
                                          r"mapping's own list of 2 classes"):
        remap(np.array([0, 7], np.uint8), listed, doodles=True)
    with pytest.raises(DoodleError, match=r"^class 'sand' \(label value 2\) has no rule in the "
                                          r"mapping dict"):
        remap(np.array([0, 2], np.uint8), {"water": "water"}, classes=["water", "x", "sand"],
              default=None)
    assert len(module.near_names({"water": "water", "sand": "lnd", "veg": "land", "dev": "land"},
                                 ["water", "sand", "veg", "dev"])) == 1
    # both new: neither is called the typo
    assert module.near_names({"aliases": {"sand": "land", "veg": "lnd"},
                              "super_classes": ["land", "lnd"]}) == [
        "target classes 'land' and 'lnd' are one edit apart: a typo? (as written they make "
        "two classes)"]


def test_a_key_given_twice_is_refused():
    with pytest.raises(DoodleError, match="gives one class two rules"):
        load_mapping({0: 1, "0": 2})
