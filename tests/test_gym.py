"""export --gym: a Segmentation Gym set, classes matched by name, written whole or not at all."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import COAST_DIR, SETTINGS, needs_coast, needs_real, real_files, scene, write_npz
from PIL import Image

from doodle_engine import DoodleError, load
from doodle_engine.cli import main
from doodle_engine.gym import ORDER_UNION, check_target_size, export_gym_set
from doodle_engine.npz import read_classes
from doodle_engine.remapping import load_mapping, remap_record

MIXED = {"a_first": ["water", "land"], "b_second": ["water", "surf", "sand", "land"],
         "c_third": ["water", "surf", "land"]}


def make(folder, name, classes, h=24, w=32, seed=0, label=None):
    """A small Doodler npz whose label uses every one of ``classes``."""
    folder.mkdir(parents=True, exist_ok=True)
    image, _ = scene(h, w, seed)
    if label is None:
        label = (np.arange(h * w).reshape(h, w) * len(classes) // (h * w)).astype(np.uint8)
    doodles = np.zeros((h, w), np.uint8)
    doodles[::4, ::4] = label[::4, ::4] + 1
    return write_npz(folder / f"{name}.npz", image, doodles, label, None, classes=classes)


def mixed_files(tmp_path):
    return [make(tmp_path / "in", n, c, seed=i) for i, (n, c) in enumerate(MIXED.items())]


def read_png(path):
    with Image.open(path) as img:
        return img.mode, np.asarray(img)


def gym_pairs(outdir):
    """Segmentation Gym's make_dataset discovery, pairing and label reading, replicated: the
    image and label files of each folder in sorted order (Gym natsorts; with identical names
    in both folders every sort pairs the same), zipped in that order; every label read as a
    2-D integer raster one-hot encoded over NCLASSES (``arange(NCLASSES) == label``), which
    gives a pixel no class unless its value lies in 0..NCLASSES-1."""
    cfg = json.loads((outdir / "gym_config.json").read_text())
    n = cfg["NCLASSES"]
    images = sorted(p for p in (outdir / "images").iterdir() if p.suffix in (".jpg", ".png", ".tif"))
    labels = sorted(p for p in (outdir / "labels").iterdir() if p.suffix in (".jpg", ".png", ".tif"))
    assert [p.name for p in images] == [p.name for p in labels]
    pairs = []
    for img, lab in zip(images, labels):
        mode, label = read_png(lab)
        assert mode == "L" and label.ndim == 2 and label.dtype == np.uint8
        onehot = np.arange(n) == label[..., None]
        assert (onehot.sum(-1) == 1).all(), f"{lab.name}: a value outside 0..{n - 1}"
        _, image = read_png(img)
        assert image.shape == label.shape + (3,)
        pairs.append((img.name, image, label))
    return cfg, pairs


def test_mixed_class_lists_go_onto_their_union_by_name(tmp_path):
    files = mixed_files(tmp_path)
    res = export_gym_set(files, tmp_path / "gym", progress=False)
    cfg, pairs = gym_pairs(tmp_path / "gym")
    assert cfg["CLASSES"] == ["water", "land", "surf", "sand"] and cfg["NCLASSES"] == 4
    assert cfg["CLASS_ORDER"] == ORDER_UNION and cfg["N_DATA_BANDS"] == 3
    assert len(res.plan.class_lists) == 3 and res.failed == 0
    for f, (name, image, label) in zip(files, pairs):
        rec = load(f)
        assert name == f.stem + ".png"
        # every pixel keeps its class name; land is one value in every file
        assert (np.array(cfg["CLASSES"])[label] == np.array(rec.classes)[rec.label]).all()
        assert (label == 1).sum() == (rec.label == rec.classes.index("land")).sum()
        np.testing.assert_array_equal(image, rec.image)


def test_the_union_s_order_does_not_follow_the_order_inputs_are_named_in(tmp_path):
    files = mixed_files(tmp_path)
    split = [tmp_path / "in" / "x", tmp_path / "in" / "y"]  # two folders, named y then x
    for folder, f in zip(split, files[:2]):
        folder.mkdir()
        f.rename(folder / f.name)
    one = export_gym_set([split[1], split[0]], tmp_path / "one", progress=False)
    two = export_gym_set([split[0], split[1]], tmp_path / "two", progress=False)
    assert one.plan.classes == two.plan.classes == ["water", "land", "surf", "sand"]


def test_config_holds_the_keys_gym_reads(tmp_path):
    export_gym_set(mixed_files(tmp_path), tmp_path / "gym", progress=False)
    cfg = json.loads((tmp_path / "gym" / "gym_config.json").read_text())
    make_dataset_keys = {"NCLASSES", "N_DATA_BANDS", "TARGET_SIZE", "SET_GPU", "USEMASK",
                         "VALIDATION_SPLIT", "ROOT_STRING", "FILTER_VALUE", "BATCH_SIZE", "AUG_ROT",
                         "AUG_ZOOM", "AUG_WIDTHSHIFT", "AUG_HEIGHTSHIFT", "AUG_HFLIP", "AUG_VFLIP",
                         "AUG_LOOPS", "AUG_COPIES"}
    assert make_dataset_keys <= set(cfg)
    assert all(k.isidentifier() for k in cfg)  # Gym assigns every key as a variable
    assert "REMAP_CLASSES" not in cfg  # Gym would remap the labels again
    # the images' 24 x 32, each side to a multiple of 16 (Gym's U-Net halves it four times)
    assert cfg["TARGET_SIZE"] == [32, 32] and cfg["ROOT_STRING"] == "gym"
    # Gym's augmentation batches are (training images) // AUG_LOOPS: never zero
    n_train = 3 - int(3 * cfg["VALIDATION_SPLIT"])
    assert 1 <= cfg["AUG_LOOPS"] <= n_train


def test_coast_train_mapping_gives_the_remapped_labels(tmp_path):
    files = mixed_files(tmp_path)
    mapping = tmp_path / "remap.json"
    mapping.write_text(json.dumps({
        "aliases": {"water": "water", "surf": "whitewater", "sand": "sediment", "land": "terrain"},
        "classes": ["water", "surf", "sand", "land"],
        "super_classes": ["water", "whitewater", "sediment", "terrain", "other"]}))
    export_gym_set(files, tmp_path / "gym", mapping=load_mapping(mapping), progress=False)
    cfg, pairs = gym_pairs(tmp_path / "gym")
    assert cfg["CLASSES"] == ["water", "whitewater", "sediment", "terrain", "other"]
    for f, (_, _, label) in zip(files, pairs):
        remapped = remap_record(load(f), mapping)
        np.testing.assert_array_equal(label, remapped.label)
        assert remapped.classes == cfg["CLASSES"]


def test_doodler_schema_mapping(tmp_path):
    files = mixed_files(tmp_path)
    mapping = {"super_classes": {"water": "1", "land": "2"}, "classes": ["1", "2", "3", "4"],
               "aliases": {"water": "water", "surf": "water", "sand": "land", "land": "land"}}
    export_gym_set(files, tmp_path / "gym", mapping=load_mapping(mapping), progress=False)
    cfg, pairs = gym_pairs(tmp_path / "gym")
    assert cfg["CLASSES"] == ["water", "land"] and cfg["NCLASSES"] == 2
    for f, (_, _, label) in zip(files, pairs):
        rec = load(f)
        want = np.isin(np.array(rec.classes)[rec.label], ["sand", "land"]).astype(np.uint8)
        np.testing.assert_array_equal(label, want)


def test_a_doodler_schema_mapping_by_number_says_why_gym_refuses_it(tmp_path, capsys):
    """remap applies Doodler's example mapping by class position; a Gym export matches by
    name only, and its refusal now says so and how to go on."""
    path = make(tmp_path, "a", ["water", "surf", "sand"])
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"super_classes": {"water": "1", "land": "2"},
                                   "classes": ["1", "2", "3"],
                                   "aliases": {"1": "water", "2": "land", "3": "land"}}))
    args = ["export", "--gym", str(path), "--mapping", str(mapping), "--quiet"]
    assert main([*args, "-o", str(tmp_path / "g1")]) == 2
    err = capsys.readouterr().err
    assert "matches classes by name only" in err and "--classes 1,2,..." in err
    assert main([*args, "-o", str(tmp_path / "g2"), "--classes", "1,2,3"]) == 0
    named = tmp_path / "named.json"  # Doodler's schema keyed by name: no word about numbers
    named.write_text(json.dumps({"super_classes": {"water": "1", "land": "2"},
                                 "aliases": {"water": "water", "sand": "land"}}))
    assert main(["export", "--gym", str(path), "--mapping", str(named), "--quiet", "-o",
                 str(tmp_path / "g3")]) == 2
    err = capsys.readouterr().err
    assert "has no rule for 1 class(es) of the inputs: 'surf'" in err
    assert "by class number" not in err
    cfg, pairs = gym_pairs(tmp_path / "g2")
    assert cfg["CLASSES"] == ["water", "land"]
    truth = load(path).label
    np.testing.assert_array_equal(pairs[0][2], (truth > 0).astype(np.uint8))


def test_a_class_without_rule_is_refused_before_anything_is_written(tmp_path, capsys):
    files = mixed_files(tmp_path)
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"aliases": {"water": "water", "land": "land"},
                                   "super_classes": ["water", "land"]}))
    code = main(["export", "--gym", *map(str, files), "-o", str(tmp_path / "gym"),
                 "--mapping", str(mapping), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (f"{mapping}: has no rule for 2 class(es) of the inputs: 'surf' (e.g. b_second.npz); "
            "'sand' (e.g. b_second.npz) (add them, or pass --default CLASS)") in err[0]
    assert not (tmp_path / "gym").exists()
    # --default names the class those go to, and the run says which classes it took
    code = main(["export", "--gym", *map(str, files), "-o", str(tmp_path / "gym"),
                 "--mapping", str(mapping), "--default", "land", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "  classes by the mapping (class -> set class, files listing it):" in out
    assert any(ln.split() == ["surf", "->", "land", "2", "file(s)", "(no", "rule:", "--default)"]
               for ln in out.splitlines()), out
    cfg, _ = gym_pairs(tmp_path / "gym")
    assert cfg["CLASSES"] == ["water", "land"]


def test_a_pixel_without_class_is_refused_and_nothing_is_written(tmp_path, capsys):
    mixed_files(tmp_path)
    image, _ = scene(24, 32, 5)
    onehot = np.zeros((24, 32, 2), np.uint8)
    onehot[:, :16, 0] = 1
    onehot[:, 16:31, 1] = 1  # the last column has no bit set: no class
    doodles = np.zeros((24, 32), np.uint8)
    doodles[0, 0], doodles[0, 20] = 1, 2
    bad = tmp_path / "in" / "d_noclass.npz"
    np.savez_compressed(bad, image=image, doodles=doodles, label=onehot,
                        classes=np.array(["water", "land"]))
    out = tmp_path / "gym"
    out.mkdir()
    code = main(["export", "--gym", str(tmp_path / "in"), "-o", str(out), "--quiet",
                 "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "d_noclass.npz: 24 px would fall outside 0..3 (24 px have no class" in err
    assert "nothing written" in err
    assert list(out.iterdir()) == []  # not even the other files' pictures, nor a staging folder


def test_gym_npz_layout(tmp_path):
    files = mixed_files(tmp_path)
    res = export_gym_set(files, tmp_path / "out", npz=True, progress=False)
    cfg, pairs = gym_pairs(tmp_path / "out")
    npzs = sorted((tmp_path / "out" / "npzs").iterdir())
    assert [p.name for p in npzs] == [f"out_{f.stem}.npz" for f in files]
    for p, (name, image, label) in zip(npzs, pairs):
        with np.load(p) as z:
            assert z["arr_0"].dtype == np.uint8 and z["arr_1"].dtype == np.uint8
            np.testing.assert_array_equal(z["arr_0"], image)
            assert z["arr_1"].shape == label.shape + (cfg["NCLASSES"],)
            assert (z["arr_1"].sum(-1) == 1).all()
            np.testing.assert_array_equal(z["arr_1"].argmax(-1), label)
            assert int(z["num_bands"]) == 3 and z["files"].tolist() == [name]
    assert res.npz


def test_files_of_an_earlier_set_are_refused(tmp_path):
    files = mixed_files(tmp_path)
    export_gym_set(files, tmp_path / "gym", progress=False)
    export_gym_set(files, tmp_path / "gym", progress=False)  # the same set again: fine
    with pytest.raises(DoodleError, match="holds 1 file\\(s\\) this set does not write"):
        export_gym_set(files[:2], tmp_path / "gym", progress=False)
    assert len(list((tmp_path / "gym" / "labels").iterdir())) == 3


def test_one_class_repeated_names_and_no_names_are_refused(tmp_path):
    one = [make(tmp_path / "one", n, ["water"], seed=i) for i, n in enumerate("ab")]
    with pytest.raises(DoodleError, match="Segmentation Gym needs NCLASSES >= 2"):
        export_gym_set(one, tmp_path / "o1", progress=False)
    twice = make(tmp_path / "twice", "t", ["water", "sand", "water"])
    with pytest.raises(DoodleError, match="names class 'water' more than once"):
        export_gym_set([twice], tmp_path / "o2", progress=False)
    nameless = make(tmp_path / "nameless", "n", None, label=np.zeros((24, 32), np.uint8))
    with pytest.raises(DoodleError, match="has no class names"):
        export_gym_set([nameless], tmp_path / "o3", progress=False)
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))
    # --classes names them, as for every command
    res = export_gym_set([nameless], tmp_path / "o4", classes=["water", "land"], progress=False)
    assert res.config["CLASSES"] == ["water", "land"]


def test_read_classes_reads_only_the_names(tmp_path):
    f = make(tmp_path / "x", "f", ["water", "surf"])
    assert read_classes(f) == ["water", "surf"]
    assert read_classes(f, classes=["a", "b"]) == ["a", "b"]
    nameless = make(tmp_path / "y", "n", None, label=np.zeros((24, 32), np.uint8))
    assert read_classes(nameless) is None
    (tmp_path / "y" / "classes.txt").write_text("sea\nshore\n")
    assert read_classes(nameless) == load(nameless).classes == ["sea", "shore"]


def test_workers_map_onto_the_same_classes(tmp_path):
    files = mixed_files(tmp_path)
    export_gym_set(files, tmp_path / "one", workers=1, progress=False)
    export_gym_set(files, tmp_path / "two", workers=2, progress=False)
    for f in files:
        a = read_png(tmp_path / "one" / "labels" / f"{f.stem}.png")[1]
        b = read_png(tmp_path / "two" / "labels" / f"{f.stem}.png")[1]
        np.testing.assert_array_equal(a, b)


def test_release_zip_members_as_loose_files(tmp_path):
    files = mixed_files(tmp_path)
    z = tmp_path / "Mixed_4_001.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"Mixed_4_001/npz/{f.name}")
    before = z.read_bytes()
    export_gym_set([z], tmp_path / "from_zip", progress=False)
    export_gym_set(files, tmp_path / "loose", progress=False)
    assert z.read_bytes() == before
    for name in ("images", "labels"):
        for f in files:
            a = read_png(tmp_path / "from_zip" / name / f"{f.stem}.png")[1]
            np.testing.assert_array_equal(a, read_png(tmp_path / "loose" / name / f"{f.stem}.png")[1])


def test_cli_says_what_it_wrote(tmp_path, capsys):
    files = mixed_files(tmp_path)
    code = main(["export", "--gym", *map(str, files), "-o", str(tmp_path / "gym"), "--quiet",
                 "--target-size", "16", "16"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Gym set: 3 image/label pair(s)" in out and "NCLASSES 4: 0 water, 1 land, 2 surf, 3 sand" in out
    assert "class lists found: ['water', 'land'] (1 file(s))" in out
    assert json.loads((tmp_path / "gym" / "gym_config.json").read_text())["TARGET_SIZE"] == [16, 16]
    assert main(["export", str(files[0]), "-o", str(tmp_path / "x"), "--mapping", "m.json"]) == 2


def test_cli_notes_no_era_for_stored_labels(tmp_path, capsys):
    """An undated file's era is assumed where a label is rebuilt; the Gym set copies the
    stored labels, so its run says nothing of eras."""
    image, truth = scene(24, 32, 0)
    doodles = np.zeros_like(truth)
    doodles[::4, ::4] = truth[::4, ::4] + 1
    f = write_npz(tmp_path / "undated.npz", image, doodles, truth, SETTINGS["mlp-2021-10"])
    assert main(["export", "--gym", str(f), "-o", str(tmp_path / "gym"), "--quiet"]) == 0
    assert "note: era" not in capsys.readouterr().out
    assert main(["validate", str(f), "--quiet", "--workers", "1"]) == 0  # where one is used
    assert "note: era" in capsys.readouterr().out


@needs_real
def test_real_2022_files_matched_by_name(tmp_path):
    files = [f for f in real_files() if "2022" in f.name]
    res = export_gym_set(files, tmp_path / "gym", progress=False)
    cfg, pairs = gym_pairs(tmp_path / "gym")
    assert cfg["CLASSES"] == ["water", "land", "surf", "sand"] and res.failed == 0
    for f, (_, _, label) in zip(files, pairs):
        rec = load(f)
        assert (np.array(cfg["CLASSES"])[label] == np.array(rec.classes)[rec.label]).all()


@needs_real
@needs_coast
def test_real_files_with_a_coast_train_mapping_match_remap(tmp_path):
    files = [f for f in real_files() if "2021" in f.name]  # the Landsat 8 files of 2021
    mapping = COAST_DIR / "remap_coast_train_classes_l8.json"
    export_gym_set(files, tmp_path / "gym", mapping=load_mapping(mapping), npz=True,
                   progress=False)
    cfg, pairs = gym_pairs(tmp_path / "gym")
    assert cfg["NCLASSES"] == 7 and len(pairs) == 2
    for f, (_, _, label) in zip(files, pairs):
        remapped = remap_record(load(f), mapping)
        np.testing.assert_array_equal(label, remapped.label)
        assert remapped.classes == cfg["CLASSES"]


def test_target_size_is_one_gym_can_build_a_model_for(tmp_path, capsys):
    """TARGET_SIZE [306, 172] (the commonest size) stopped Gym's U-Net from being built, and
    --target-size 0 256 or -5 256 was written as it was."""
    files = mixed_files(tmp_path)
    for bad in ((304.5, 176), "ab", (16, 16, 16)):
        with pytest.raises(DoodleError, match="multiple of 16"):
            check_target_size(bad)
    for size in (["0", "256"], ["-5", "256"], ["100000", "100000"], ["306", "172"]):
        code = main(["export", "--gym", *map(str, files), "-o", str(tmp_path / "g"),
                     "--target-size", *size, "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "each a multiple of 16 from 16 to 16384" in err, (size, err)
        assert not (tmp_path / "g").exists()
    assert main(["export", "--gym", *map(str, files), "-o", str(tmp_path / "g"),
                 "--target-size", "304", "176", "--quiet"]) == 0
    assert json.loads((tmp_path / "g" / "gym_config.json").read_text())["TARGET_SIZE"] == [304, 176]


def test_gym_s_resized_copies_of_an_earlier_set_are_refused(tmp_path, capsys):
    """Gym's make_dataset skips resizing when resized_images/ exists, so a set exported over
    an earlier one would train on the earlier labels."""
    files = mixed_files(tmp_path)
    out = tmp_path / "g"
    assert main(["export", "--gym", *map(str, files), "-o", str(out), "--quiet"]) == 0
    (out / "resized_labels").mkdir()
    capsys.readouterr()
    assert main(["export", "--gym", *map(str, files), "-o", str(out), "--quiet"]) == 2
    assert "is Gym's resized copy of an earlier set" in capsys.readouterr().err


def test_a_set_path_gym_would_misread_is_said(tmp_path, capsys):
    """Gym replaces every 'label' in the labels folder's path: '/x/ct_labels_v1/labels' makes
    it look for '/x/ct_resized_labels_v1/resized_labels'."""
    files = mixed_files(tmp_path)
    for name, said in (("ct_labels_v1", "'label'"), ("drone_images", "'images'"),
                       ("clear_set", None)):
        assert main(["export", "--gym", *map(str, files), "-o", str(tmp_path / name),
                     "--quiet"]) == 0
        out = capsys.readouterr().out
        assert ("Gym's make_dataset names its resized folders" in out) == bool(said), out
        assert said is None or f"holds {said}:" in out


def test_a_gym_table_does_not_record_the_staging_folder(tmp_path):
    files = mixed_files(tmp_path)
    export_gym_set(files, tmp_path / "g", table=tmp_path / "t.csv", progress=False)
    options = set(pd.read_csv(tmp_path / "t.csv")["options"])
    assert len(options) == 1 and ".gym-staging" not in options.pop()
