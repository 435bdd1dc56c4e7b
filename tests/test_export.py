import numpy as np
import pytest
from conftest import needs_real, real_files
from PIL import Image

from doodle_engine import NO_CLASS, DoodleError, load
from doodle_engine.batch import run_batch
from doodle_engine.cli import main
from doodle_engine.colorize import color_doodles, colorize, overlay
from doodle_engine.export import export_record, safe_stem
from doodle_engine.palette import G10, doodler_palette, hex_to_rgb
from doodle_engine.remapping import remap_record

#: colour of undoodled pixels in Doodler's ``color_doodles`` with <= 10 classes: Doodler
#: looked up class -1, i.e. the palette's last colour (G10's #316395)
UNDOODLED = (49, 99, 149)


def test_palettes_follow_doodler():
    assert doodler_palette(4).tolist()[0] == [0x33, 0x66, 0xCC]
    assert doodler_palette(11).tolist()[0] == [0xFD, 0x32, 0x16]
    lab = np.array([[0, 1], [2, NO_CLASS]], np.uint8)
    rgb = colorize(lab, ["a", "b", "c"])
    assert rgb[0, 1].tolist() == list(hex_to_rgb(G10[1])) and rgb[1, 1].tolist() == [0, 0, 0]
    custom = colorize(lab, ["a", "b", "c"], colors=["#000001", "#000002", (0, 0, 3)])
    assert custom[1, 0].tolist() == [0, 0, 3]


def test_overlay_blends_and_skips_unlabelled():
    img = np.full((2, 2, 3), 100, np.uint8)
    lab = np.array([[0, 0], [0, NO_CLASS]], np.uint8)
    out = overlay(img, lab, 0.5, ["a"])
    assert out[0, 0].tolist() == [round(50 + 0x33 / 2), round(50 + 0x66 / 2), round(50 + 0xCC / 2)]
    assert out[1, 1].tolist() == [100, 100, 100]


def test_export_writes_doodler_named_pictures(synthetic, tmp_path):
    rec = load(synthetic("mlp-2021-10", name="my scene.npz"))
    written = export_record(rec, tmp_path / "out", label_ext=".png")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)
    assert "images/my_scene.jpg" in names and "labels/my_scene_label.png" in names
    assert "overlays/my_scene_overlay.png" in names and "doodles/my_scene_doodles.png" in names
    lab = np.array(Image.open(tmp_path / "out/labels/my_scene_label.png"))
    np.testing.assert_array_equal(lab, rec.label)
    col = np.array(Image.open(tmp_path / "out/colorlabels/my_scene_label.png"))
    assert col.shape == rec.image.shape
    np.testing.assert_array_equal(col, colorize(rec.label, rec.classes))
    cd = np.array(Image.open(tmp_path / "out/doodles/my_scene_color_doodles.png"))
    assert cd[rec.doodles == 0][0].tolist() == list(UNDOODLED)
    # where the image's band 0 is 0 Doodler drew the doodles black, as the file stores them
    ys, xs = np.nonzero(rec.doodles)
    rec.image[ys[:5], xs[:5], 0] = 0
    export_record(rec, tmp_path / "dark", label_ext=".png")
    cd = np.array(Image.open(tmp_path / "dark/doodles/my_scene_color_doodles.png"))
    np.testing.assert_array_equal(cd, color_doodles(rec.doodles, rec.classes, image=rec.image))
    assert cd[ys[:5], xs[:5]].tolist() == [[0, 0, 0]] * 5


def test_output_names_cannot_escape():
    assert "/" not in safe_stem("../../etc/passwd.npz") and safe_stem("../../x.npz") == "x"
    assert safe_stem("..npz") == "unnamed"


@needs_real
def test_color_doodles_match_the_files(tmp_path):
    for path in real_files():
        rec = load(path)
        if rec.color_doodles is None:
            continue
        ours = color_doodles(rec.doodles, rec.classes, image=rec.image)
        np.testing.assert_array_equal(ours, rec.color_doodles)
        # export and a remap that keeps every class give the file's own array too
        same = remap_record(rec, {c: c for c in rec.classes})
        np.testing.assert_array_equal(same.color_doodles, rec.color_doodles)
        written = export_record(rec, tmp_path, label_ext=".png", stem="x")
        png = next(p for p in written if p.name == "x_color_doodles.png")
        np.testing.assert_array_equal(np.array(Image.open(png)), rec.color_doodles)


def test_a_second_export_in_the_other_label_format_leaves_one_label(synthetic, tmp_path, capsys):
    """labels/ held X_label.jpg and X_label.png after an export with --png-labels over a JPEG
    one: a training set would take both.  The earlier format's label is removed, with a note."""
    path = synthetic("mlp-2022-05")
    out = tmp_path / "e"
    labels = out / "labels"
    for extra, kept in (([], ".jpg"), (["--png-labels"], ".png"), ([], ".jpg")):
        assert main(["export", str(path), "-o", str(out), "--quiet", "--workers", "1",
                     *extra]) == 0
        assert [p.suffix for p in labels.iterdir()] == [kept]
    assert "removed 1 label(s) an earlier export wrote in the other format" in \
        capsys.readouterr().out


def test_a_label_format_is_png_or_jpeg_with_or_without_its_dot(synthetic, tmp_path):
    """label_ext="png" wrote a JPEG named X_labelpng; ".tif" wrote a TIFF."""
    path = synthetic("mlp-2022-05")
    run_batch("export", [path], outdir=tmp_path / "o", label_ext="png", workers=1,
              progress=False)
    label = tmp_path / "o" / "labels" / "mlp-2022-05_label.png"
    assert Image.open(label).format == "PNG"
    np.testing.assert_array_equal(np.array(Image.open(label)), load(path).label)
    for bad in (".tif", "gif"):
        with pytest.raises(DoodleError, match="labels are written as .jpg, .jpeg, .png only"):
            run_batch("export", [path], outdir=tmp_path / "t", label_ext=bad, workers=1,
                      progress=False)
        with pytest.raises(DoodleError, match="only"):
            export_record(load(path), tmp_path / "t", label_ext=bad)
    assert not (tmp_path / "t").exists()
