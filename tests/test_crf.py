"""The compiled permutohedral CRF (``crf_backend="numba"``) against pydensecrf, its twin."""

import numpy as np
import pytest
from conftest import needs_real, real_files
from skimage.transform import resize

from doodle_engine import DoodleError, crf, load, reconstruct
from doodle_engine.example import scene
from doodle_engine.kernels import crf as kcrf
from doodle_engine.reconstruct import _choose_crf_backend
from doodle_engine.standardize import standardize

pydensecrf = pytest.importorskip("pydensecrf.densecrf")
dutils = pytest.importorskip("pydensecrf.utils")


def _inputs(h=60, w=84, seed=0, downsample=2):
    image, truth = scene(h, w, seed)
    img = standardize(image)[::downsample, ::downsample]
    lab = (truth + 1)[::downsample, ::downsample]
    return image, img, lab


def test_unaries_and_bilateral_features_equal_pydensecrf_utils():
    image, img, lab = _inputs()
    n = int(lab.max())
    lab0 = lab.copy()
    lab0[::7, ::5] = 0  # "unsure" pixels
    np.testing.assert_array_equal(crf.unary_from_labels(lab0, n, 0.9),
                                  dutils.unary_from_labels(lab0, n, gt_prob=0.9))
    probs = np.random.default_rng(1).random((n,) + lab.shape)
    np.testing.assert_array_equal(crf.unary_from_softmax(probs), dutils.unary_from_softmax(probs))
    s = crf.colour_scale(image.shape)
    ref = dutils.create_pairwise_bilateral(sdims=(1.0, 1.0), schan=(s, s, s), img=img, chdim=2)
    np.testing.assert_array_equal(crf.bilateral_features(img, 1.0, s).T, ref)


@pytest.mark.parametrize("shape,downsample,n_classes", [((60, 84), 2, 3), ((45, 70), 1, 2),
                                                         ((64, 48), 1, 4), ((33, 31), 3, 3)])
def test_mean_field_matches_pydensecrf(shape, downsample, n_classes):
    image, img, lab = _inputs(*shape, downsample=downsample)
    if n_classes == 2:
        lab = np.minimum(lab, 2)
    elif n_classes == 4:
        lab[: lab.shape[0] // 3, : lab.shape[1] // 3] = 4
    n = int(lab.max())
    u = crf.unary_from_labels(lab, n, 0.9)
    s = crf.colour_scale(image.shape)
    ref = crf.mean_field_q(u, img, n, 1.0, 1.0, s, backend="pydensecrf")
    ours = crf.mean_field_q(u, img, n, 1.0, 1.0, s, backend="numba")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    np.testing.assert_array_equal(ours.argmax(0), ref.argmax(0))


def test_gaussian_term_is_built_once_per_size_and_reused_unchanged():
    image, img, lab = _inputs(50, 66, downsample=2)
    u = crf.unary_from_labels(lab, int(lab.max()), 0.9)
    s = crf.colour_scale(image.shape)
    crf._gaussian_kernel.cache_clear()
    first = crf.mean_field_q(u, img, int(lab.max()), 1.0, 1.0, s, backend="numba")
    again = crf.mean_field_q(u, img, int(lab.max()), 1.0, 1.0, s, backend="numba")
    assert crf._gaussian_kernel.cache_info().hits == 1
    np.testing.assert_array_equal(first, again)
    crf._gaussian_kernel.cache_clear()  # built afresh: the same numbers
    np.testing.assert_array_equal(
        crf.mean_field_q(u, img, int(lab.max()), 1.0, 1.0, s, backend="numba"), first)


def test_vertices_are_numbered_in_order_of_first_use_by_any_number_of_threads():
    image, img, _ = _inputs(70, 90, downsample=1)
    feats = crf.bilateral_features(img, 1.0, crf.colour_scale(image.shape))
    point_keys, _ = kcrf._enclosing_simplices(np.ascontiguousarray(feats, np.float32))
    one = kcrf._number_vertices(point_keys, parts=1)
    offsets, keys = one[0].ravel(), one[2]
    _, first = np.unique(offsets, return_index=True)
    assert (np.diff(first) > 0).all()  # vertex v is first used before vertex v + 1
    np.testing.assert_array_equal(keys, point_keys.reshape(-1, keys.shape[1])[first])
    for parts in (2, 4):
        many = kcrf._number_vertices(point_keys, parts=parts)
        np.testing.assert_array_equal(many[0], one[0])
        np.testing.assert_array_equal(many[2], one[2])
        np.testing.assert_array_equal(kcrf._blur_neighbours(*many[1:]),
                                      kcrf._blur_neighbours(*one[1:]))


def test_sorted_and_hashed_lattices_are_the_same_arrays():
    """Radix-sorted packed keys and merges give the hash tables' offsets (first-use numbers)
    and neighbours exactly; keys too wide for 64 bits fall back to the hash tables."""
    image, img, _ = _inputs(70, 90, downsample=1)
    cases = [crf.bilateral_features(img, 1.0, crf.colour_scale(image.shape)),
             crf.bilateral_features(img, 7.0, 0.05), crf.gaussian_features(70, 90)]
    for feats in cases:
        by_sort = kcrf.build_lattice(feats, method="sort")
        by_hash = kcrf.build_lattice(feats, method="hash")
        for a, b in zip(by_sort, by_hash):
            np.testing.assert_array_equal(a, b)
        assert (by_sort[2] >= 0).any()
    wide = np.random.default_rng(0).random((500, 5), dtype=np.float32) * 3000
    point_keys, _ = kcrf._enclosing_simplices(wide)
    assert kcrf._packing(point_keys) is None
    with pytest.raises(ValueError, match="64 bits"):
        kcrf.build_lattice(wide, method="sort")
    for a, b in zip(kcrf.build_lattice(wide), kcrf.build_lattice(wide, method="hash")):
        np.testing.assert_array_equal(a, b)


def test_radix_argsort_is_a_stable_sort():
    for bits in (30, 40):  # an odd and an even number of passes
        keys = np.random.default_rng(bits).integers(0, 2**bits, 20_000).astype(np.uint64)
        keys[::3] = keys[5]  # many equal keys: their positions must stay in order
        sorted_keys, where = kcrf._radix_argsort(keys.copy(), bits, 8)
        order = np.argsort(keys, kind="stable")
        np.testing.assert_array_equal(where, order)
        np.testing.assert_array_equal(sorted_keys, keys[order])


def test_lattice_filter_of_a_constant_is_smooth_and_positive():
    """Filtering ones gives the normaliser densecrf uses: positive, equal for every pixel of
    a regular grid away from its edges."""
    feats = crf.gaussian_features(40, 40)
    offsets, bary, nb = kcrf.build_lattice(feats)
    assert np.allclose(bary.sum(1), 1.0, atol=1e-5)
    out = kcrf.lattice_filter(offsets, bary, nb, np.ones((feats.shape[0], 1), np.float32))
    assert (out > 0).all()
    inner = out.reshape(40, 40)[10:30, 10:30]
    assert inner.std() / inner.mean() < 0.05


def test_numba_backend_gives_the_pydensecrf_labels_in_every_era(synthetic):
    for era in ("mlp-2021-10", "mlp-2022-05", "engine-2022-06", "rf-2021-06"):
        path = synthetic(era, h=40, w=56)
        rec = load(path)
        a = reconstruct(rec, crf_backend="pydensecrf")
        b = reconstruct(rec, crf_backend="numba")
        np.testing.assert_array_equal(a.label, b.label)


def test_unknown_or_missing_backend_is_a_clear_error(synthetic):
    rec = load(synthetic("mlp-2022-05"))
    with pytest.raises(DoodleError, match="crf_backend"):
        reconstruct(rec, crf_backend="cuda")


@pytest.mark.skipif(not real_files(), reason="../shared/data/doodler not present")
def test_numba_backend_agrees_with_pydensecrf_on_real_crf_inputs():
    for path in real_files():
        rec = load(path)
        if rec.settings.era.startswith("rf") or len(np.unique(rec.label)) < 2:
            continue
        img = standardize(rec.image)[::2, ::2]
        lab = (rec.label.astype(int) + 1)[::2, ::2]
        n = int(lab.max())
        u = crf.unary_from_labels(lab, n, 0.9)
        s = crf.colour_scale(rec.image.shape)
        ref = crf.mean_field_q(u, img, n, 1.0, 1.0, s, backend="pydensecrf")
        ours = crf.mean_field_q(u, img, n, 1.0, 1.0, s, backend="numba")
        assert (ours.argmax(0) == ref.argmax(0)).mean() >= 0.9999, path.name


@needs_real
def test_both_backends_give_the_same_labels_on_every_real_file_and_trial():
    """Exact mode's default CRF (the compiled lattice) against pydensecrf, the library Doodler
    called, on every real file and earlier trial: identical final labels.  The features and
    the fit are shared between the two runs (``shared``), so only the CRF and what follows it
    run twice."""
    checked = 0
    for path in real_files():
        rec = load(path)
        for i, r in enumerate([rec] + list(rec.trials)):
            shared = {}
            a = reconstruct(r, crf_backend="pydensecrf", shared=shared)
            b = reconstruct(r, crf_backend="numba", shared=shared)
            assert a.notes == b.notes, (path.name, i)
            np.testing.assert_array_equal(a.label, b.label, err_msg=f"{path.name} trial {i}")
            checked += 1
    assert checked >= 14


def test_exact_mode_defaults_to_the_compiled_crf_and_reference_to_pydensecrf(synthetic):
    assert _choose_crf_backend(None, "exact", None) == "numba"
    assert _choose_crf_backend(None, "fast", None) == "numba"
    assert _choose_crf_backend(None, "reference", None) == "pydensecrf"
    rec = load(synthetic("mlp-2021-10", h=40, w=56))
    np.testing.assert_array_equal(reconstruct(rec).label,
                                  reconstruct(rec, crf_backend="numba").label)


def test_without_pydensecrf_the_compiled_backend_is_used(synthetic, monkeypatch):
    """Where the C++ extension cannot be built the default falls back to the lattice; asking
    for pydensecrf there is a clear error."""
    rec = load(synthetic("mlp-2022-05", h=40, w=56))
    expected = reconstruct(rec, crf_backend="numba").label
    monkeypatch.setattr(crf, "pydensecrf_available", lambda: False)
    np.testing.assert_array_equal(reconstruct(rec).label, expected)
    np.testing.assert_array_equal(reconstruct(rec, mode="reference").label,
                                  reconstruct(rec, mode="reference", crf_backend="numba").label)
    with pytest.raises(DoodleError, match="not installed"):
        reconstruct(rec, crf_backend="pydensecrf")


def _noisy_case(seed=0, gt_prob=0.75, mu=3.0):
    """A 30x42 CRF problem whose labels settle after a few mean-field iterations."""
    image, img, lab = _inputs(60, 84, seed=seed)
    lab = lab.copy()
    rng = np.random.default_rng(0)
    flip = rng.random(lab.shape) < 0.1
    lab[flip] = rng.integers(1, lab.max() + 1, flip.sum())
    n = int(lab.max())
    u = crf.unary_from_labels(lab, n, gt_prob)
    s = crf.colour_scale(image.shape)
    h, w = img.shape[:2]
    kernels = [crf._gaussian_kernel(h, w, 3.0, 3.0),
               kcrf.Kernel(crf.bilateral_features(img, 1.0, s), mu)]
    return u, img, n, s, mu, kernels


@pytest.mark.parametrize("case,iterations,expect", [
    ((0, 0.75, 3.0), 10, 5), ((0, 0.7, 3.0), 10, 7), ((0, 0.75, 1.0), 10, 2),
    ((0, 0.65, 3.0), 10, 10), ((0, 0.7, 3.0), 4, 4)])
def test_early_stop_mean_field_against_its_numpy_twin_and_pydensecrf(case, iterations, expect):
    """The early stop (after the first iteration, from the second on, that changes no label)
    stops at the same iteration in the compiled kernel, its NumPy twin and pydensecrf stepped
    one iteration at a time; Q equals a plain run of that many iterations."""
    u, img, n, s, mu, kernels = _noisy_case(*case)
    q, done = kcrf.mean_field(u.T, kernels, iterations, True, return_iterations=True)
    assert done == expect
    twin, twin_done = kcrf.mean_field_numpy(u.T, kernels, iterations, True)
    assert twin_done == done
    np.testing.assert_allclose(q, twin, atol=1e-6)
    np.testing.assert_array_equal(q.argmax(1), twin.argmax(1))
    np.testing.assert_array_equal(q, kcrf.mean_field(u.T, kernels, done))
    ref = crf.mean_field_q(u, img, n, 1.0, mu, s, backend="pydensecrf",
                           iterations=iterations, stop_when_stable=True)
    np.testing.assert_allclose(q.T, ref, atol=2e-6)
    np.testing.assert_array_equal(q.argmax(1), ref.argmax(0))
    if done < iterations:  # the stop: iteration `done` left the labels of `done - 1`
        before = kcrf.mean_field(u.T, kernels, done - 1)
        np.testing.assert_array_equal(before.argmax(1), q.argmax(1))


def test_mean_field_without_the_stop_is_unchanged_and_its_twin_agrees():
    u, img, n, s, mu, kernels = _noisy_case(0, 0.7, 3.0)
    for iterations in (1, 3, 10):
        q = kcrf.mean_field(u.T, kernels, iterations)
        twin, done = kcrf.mean_field_numpy(u.T, kernels, iterations)
        assert done == iterations
        np.testing.assert_allclose(q, twin, atol=1e-6)
        ref = crf.mean_field_q(u, img, n, 1.0, mu, s, backend="pydensecrf", iterations=iterations)
        np.testing.assert_allclose(q.T, ref, atol=2e-6)


def test_relabel_counts_changed_labels_as_argmax_does():
    q = np.random.default_rng(3).random((5000, 4)).astype(np.float32)
    q[::7, 2] = q[::7, 1]  # ties: the first maximum, as np.argmax
    labels = np.full(5000, -1, np.int64)
    assert kcrf.relabel(q, labels) == 5000
    np.testing.assert_array_equal(labels, q.argmax(1))
    q[:10] = q[:10, ::-1]
    moved = int((q.argmax(1) != labels).sum())
    assert kcrf.relabel(q, labels) == moved
    np.testing.assert_array_equal(labels, q.argmax(1))


@pytest.mark.parametrize("seed", range(4))
def test_resize_nearest_is_scikit_image_order0_resize(seed):
    """The CRF label goes back to full size through SciPy's zoom as scikit-image's order-0
    resize calls it (no skimage.transform import at start-up): the same array and dtype."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        h, w = rng.integers(2, 80, 2)
        shape = tuple(int(v) for v in rng.integers(2, 240, 2))
        small = rng.integers(1, 9, (h, w)).astype(np.uint8)
        want = resize(small, shape, order=0, anti_aliasing=False)
        got = crf.resize_nearest(small, shape)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    small = rng.integers(1, 5, (153, 86)).astype(np.uint8)  # a decimated 306x172 file
    np.testing.assert_array_equal(crf.resize_nearest(small, (306, 172)),
                                  resize(small, (306, 172), order=0, anti_aliasing=False))


def test_kernel_arrays_are_read_only():
    """A built kernel's arrays are frozen: one compiled specialisation of the mean-field
    kernels serves the cached Gaussian term and the bilateral one alike."""
    feats = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    k = kcrf.Kernel(feats, 1.0)
    for a in (k.offsets, k.bary, k.neighbours, k.norm):
        assert not a.flags.writeable
