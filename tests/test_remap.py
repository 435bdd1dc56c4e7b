import json

import numpy as np
import pytest

from doodle_engine import DoodleError, NO_CLASS, load, save
from doodle_engine.remap import load_mapping, remap, remap_record
from conftest import COAST_DIR, needs_coast


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
        remap(np.zeros((2, 2), np.uint8), {"a": "x"}, classes=["a", "b"])
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
