import numpy as np
from PIL import Image

from doodle_engine import NO_CLASS, load
from doodle_engine.colorize import color_doodles, colorize, overlay
from doodle_engine.palette import doodler_palette, G10, hex_to_rgb, UNDOODLED
from doodle_engine.export import export_record, safe_stem
from conftest import needs_real, real_files


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


def test_output_names_cannot_escape():
    assert "/" not in safe_stem("../../etc/passwd.npz") and safe_stem("../../x.npz") == "x"
    assert safe_stem("..npz") == "unnamed"


@needs_real
def test_color_doodles_match_the_files():
    for path in real_files():
        rec = load(path)
        if rec.color_doodles is None:
            continue
        ours = color_doodles(rec.doodles, rec.classes, image=rec.image)
        np.testing.assert_array_equal(ours, rec.color_doodles)
