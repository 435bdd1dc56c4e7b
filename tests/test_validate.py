import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, jaccard_score

from doodle_engine import NO_CLASS
from doodle_engine.validate import validate


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (50, 60)).astype(np.uint8)
    b = a.copy()
    flip = rng.random(a.shape) < 0.2
    b[flip] = rng.integers(0, 4, flip.sum())
    m = validate(a, b, 4)
    assert np.isclose(m.accuracy, accuracy_score(a.ravel(), b.ravel()))
    assert np.isclose(m.kappa, cohen_kappa_score(a.ravel(), b.ravel()))
    ious = jaccard_score(a.ravel(), b.ravel(), average=None)
    for c in range(4):
        assert np.isclose(m.iou[c], ious[c])
    assert np.isclose(m.mean_iou, ious.mean())
    assert m.confusion.sum() == a.size and m.n_differ == int((a != b).sum())


def test_identical_labels_and_no_class_pixels():
    a = np.array([[0, 1], [2, NO_CLASS]], np.uint8)
    m = validate(a, a)
    assert m.accuracy == 1 and m.kappa == 1 and m.mean_iou == 1
    b = a.copy()
    b[1, 1] = 2
    m = validate(a, b, 3)
    assert m.n_differ == 1 and m.confusion[3, 2] == 1


def test_classes_absent_from_both_do_not_count_in_mean_iou():
    a = np.zeros((4, 4), np.uint8)
    a[:2] = 2
    m = validate(a, a, 5)
    assert set(m.iou) == {0, 2} and m.mean_iou == 1
