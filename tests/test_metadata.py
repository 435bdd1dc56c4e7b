"""metadata.py: the Coast Train CSVs' non-uniformities, each reproduced in a small CSV, and the
real CSVs where present (counts computed here from the raw files with the csv module)."""

from __future__ import annotations

import csv
import io
import os
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import COAST_DIR

from doodle_engine import metadata as md
from doodle_engine.errors import DoodleError

CLASSES7 = "'water', 'herbaceous vegetation', 'woody vegetation', 'non-vegetated-dry', " \
           "'non-vegetated-wet', 'surf', 'developed'"
REAL = sorted(COAST_DIR.glob("metadata_*.csv"))


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return Path(path)


def row(stem, classes="'water', 'surf', 'sand'", n=3, present_int="0, 1",
        present_arr="'water', 'surf'", image=None, label=None, npz=None, year=2018, month=1,
        day=2, crs="na", epsg=26918, lon=(-75.6, -75.5), prob=0.9, ints=None):
    return {"image_filename": image if image is not None else f"images/{stem}.jpg",
            "label_image_filename": label if label is not None else f"labels/{stem}_label.jpg",
            "annotation_image_filename": npz if npz is not None else f"npz/{stem}.npz",
            "classes_array": classes, "num_classes": n,
            "classes_integer": ints if ints is not None else ", ".join(str(i) for i in range(1, n)),
            "classes_present_integer": present_int, "classes_present_array": present_arr,
            "year": year, "month": month, "day": day, "CRS": crs, "epsg": epsg,
            "LonMin": lon[0], "LonMax": lon[1], "LatMin": 35.0, "LatMax": 35.1,
            "ImageHeightPx": 40, "ImageWidthPx": 50, "px_size_m": 10,
            "prob_of_unary_potential": prob}


def write_rows(path, rows, order=None):
    header = order or list(rows[0])
    return write_csv(path, header, [[r[c] for c in header] for r in rows])


def test_column_order_does_not_matter(tmp_path):
    rows = [row("a_ID1"), row("b_ID2")]
    one = md.read_metadata(write_rows(tmp_path / "metadata_X_one_served.csv", rows))
    order = list(reversed(list(rows[0])))
    two = md.read_metadata(write_rows(tmp_path / "metadata_X_two_served.csv", rows, order))
    cols = ["stem", "labeler", "classes", "present", "date", "lon", "lat"]
    assert one.table[cols].equals(two.table[cols])
    assert list(one.table["stem"]) == ["a_ID1", "b_ID2"]


def test_path_forms_give_one_stem(tmp_path):
    rows = [row("s_ID1", image="labels/s_ID1.jpg", label="labels/s_ID1_label.jpg"),
            row("t_ID2", image="/images/t_ID2.jpg", label="/labels/t_ID2_label.jpg",
                npz="/npz/t_ID2.npz"),
            row("u_ID3", image="u_ID3_image.jpg", label="u_ID3_label.jpg", npz="u_ID3.npz"),
            row("v.TCI_RGB_ID4", image="v.TCI_RGB_ID4.jpg", npz="v.TCI_RGB_ID4.npz")]
    m = md.read_metadata(write_rows(tmp_path / "m.csv", rows))
    assert list(m.table["stem"]) == ["s_ID1", "t_ID2", "u_ID3", "v.TCI_RGB_ID4"]
    assert (m.findings["check"] == "file-names").sum() == 0


def test_mismatched_image_name_is_reported(tmp_path):
    m = md.read_metadata(write_rows(tmp_path / "m.csv", [row("a_ID1", image="images/b_ID1.jpg")]))
    f = m.findings[m.findings["check"] == "file-names"]
    assert len(f) == 1 and f.iloc[0]["says_b"] == "b_ID1" and f.iloc[0]["line"] == 2


def test_present_array_listing_every_class_is_reported(tmp_path):
    # record B: classes_present_array lists all 7 classes, the integers fewer
    rows = [row("crms1_ID5", classes=CLASSES7, n=7, present_int="0, 1, 2, 3, 4",
                present_arr=CLASSES7),
            row("crms2_ID5", classes=CLASSES7, n=7, present_int="0, 1, 2, 3, 4, 5, 6",
                present_arr=CLASSES7)]
    m = md.read_metadata(write_rows(tmp_path / "metadata_B_quads_gulf_meta_served.csv", rows))
    assert m.table.loc[0, "present"] == ["water", "herbaceous vegetation", "woody vegetation",
                                         "non-vegetated-dry", "non-vegetated-wet"]
    assert len(m.table.loc[1, "present"]) == 7
    f = m.findings[m.findings["check"] == "present-classes"]
    assert list(f["line"]) == [2]
    assert f.iloc[0]["column_a"] == "classes_present_integer"
    assert f.iloc[0]["column_b"] == "classes_present_array"
    assert "surf" in f.iloc[0]["says_b"] and "surf" not in f.iloc[0]["says_a"]
    assert f.iloc[0]["used"] == "classes_present_integer"
    assert m.table.loc[0, "record"] == "B_quads_gulf"


def test_present_index_outside_the_class_list(tmp_path):
    m = md.read_metadata(write_rows(tmp_path / "m.csv", [row("a_ID1", present_int="0, 7")]))
    assert (m.findings["check"] == "present-index").sum() == 1
    assert m.table.loc[0, "present"] == ["water", "surf"]  # from the array


def test_spelling_variant_within_a_record_is_one_class(tmp_path):
    typo = "'water', 'surf', 'bare_ground', 'vegtated_ground', 'development', 'nodata'"
    fixed = "'water', 'surf', 'bare_ground', 'vegetated_ground', 'development', 'no_data'"
    rows = [row(f"j{i}_ID3", classes=typo, n=6, present_int="0, 3",
                present_arr="'water', 'vegtated_ground'") for i in range(3)]
    rows.append(row("j9_ID6", classes=fixed, n=6, present_int="0, 3, 5",
                    present_arr="'water', 'vegetated_ground', 'no_data'"))
    m = md.read_metadata(write_rows(tmp_path / "metadata_J_naip_6class_meta_served.csv", rows))
    assert all(c[3] == "vegtated_ground" and c[5] == "nodata" for c in m.table["classes"])
    assert m.table.loc[3, "present"] == ["water", "vegtated_ground", "nodata"]
    f = m.findings[m.findings["check"] == "class-spelling"]
    assert set(f["says_a"]) == {"vegetated_ground", "no_data"} and set(f["line"]) == {5}
    assert (m.findings["check"] == "present-classes").sum() == 0


def test_different_class_lists_are_not_merged(tmp_path):
    a = "'water', 'whitewater', 'sediment', 'other_natural_terrain', 'vegetated_surface'"
    b = "'water', 'whitewater', 'sediment', 'other_bare_natural_terrain', 'marsh_vegetation'"
    rows = [row("a_ID1", classes=a, n=5), row("b_ID1", classes=b, n=5)]
    m = md.read_metadata(write_rows(tmp_path / "m.csv", rows))
    assert m.table.loc[0, "classes"] != m.table.loc[1, "classes"]
    assert (m.findings["check"] == "class-spelling").sum() == 0


def test_labeler_is_the_id_suffix(tmp_path):
    rows = [row("x_ID1"), row("y_ID12"), row("no_suffix"), row("z_ID3_extra")]
    m = md.read_metadata(write_rows(tmp_path / "m.csv", rows))
    assert list(m.table["labeler"]) == ["ID1", "ID12", "", ""]
    assert list(m.findings.loc[m.findings["check"] == "no-labeler", "line"]) == [4, 5]


def test_class_counts_crs_date_and_ranges(tmp_path):
    rows = [row("chunk_m_1_20151017_ID3", year=2014, month=6, day=3),
            row("duck_2014-01-04-15-36-14_ID2", year=2014, month=1, day=4),
            row("c_ID1", crs='"NAD83 / UTM zone 10N"', epsg=26918, lon=(-75.4, -75.3)),
            row("d_ID1", n=4), row("e_ID1", prob=3), row("f_ID1", ints="1, 2, 5")]
    m = md.read_metadata(write_rows(tmp_path / "m.csv", rows))
    by = {c: g for c, g in m.findings.groupby("check")}
    assert list(by["date"]["line"]) == [2]
    assert by["date"].iloc[0]["says_a"] == "2015-10-17"
    assert by["date"].iloc[0]["says_b"] == "2014-06-03"
    assert list(by["crs-epsg"]["line"]) == [4]
    assert by["crs-epsg"].iloc[0]["used"].startswith("epsg")
    assert list(by["num-classes"]["line"]) == [5]
    assert list(by["value-range"]["line"]) == [6]
    assert 7 in list(by["classes-integer"]["line"])
    assert m.table.loc[0, "date"] == "2014-06-03"
    assert m.table.loc[0, "lon"] == pytest.approx(-75.55)


def test_duplicates_within_and_across_records(tmp_path):
    a = md.read_metadata(write_rows(tmp_path / "metadata_A_naip_meta_served.csv",
                                    [row("same_ID3"), row("only_a_ID3"), row("only_a_ID3")]))
    c = md.read_metadata(write_rows(tmp_path / "metadata_C_s2_meta_served.csv",
                                    [row("same_ID3")]))
    m = md.combine([a, c])
    assert len(m.table) == 3  # the repeat within A dropped, the stem in A and C kept twice
    checks = Counter(m.findings["check"])
    assert checks["duplicate-stem"] == 1 and checks["stem-in-two-records"] == 1


@pytest.mark.parametrize("name,record", [
    ("metadata_A_naip_meta_served.csv", "A_naip"),
    ("metadata_E_L8_meta_all_served.csv", "E_L8"),
    ("metadata_I_sandwich_metadata_served.csv", "I_sandwich"),
    ("metadata_F_elwha_l8_served.csv", "F_elwha_l8"),
    ("Landsat8_12_001.zip::Landsat8_12_001/metadata.csv", "Landsat8_12_001"),
    ("some/dir/NAIP_11_001.zip::x.csv", "NAIP_11_001"),
])
def test_record_names(name, record):
    assert md.record_from_name(name) == record


def test_bytes_file_object_and_zip_member_read_as_the_path(tmp_path):
    path = write_rows(tmp_path / "metadata_D_s2_4classes_meta_served.csv",
                      [row("a_ID1"), row("b_ID1")])
    data = path.read_bytes()
    by_path = md.read_metadata(path)
    by_bytes = md.read_metadata(data, name="metadata_D_s2_4classes_meta_served.csv")
    by_file = md.read_metadata(io.BytesIO(data), name=str(path))
    cols = ["stem", "record", "labeler", "classes", "present", "date"]
    assert by_path.table[cols].equals(by_bytes.table[cols])
    assert by_path.table[cols].equals(by_file.table[cols])
    z = tmp_path / "S2_4_001.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("S2_4_001/metadata.csv", data)
        zf.writestr("S2_4_001/npz/a_ID1.npz", b"")
    before = z.read_bytes()
    m = md.read_metadata_inputs([z])
    assert list(m.table["record"].unique()) == ["S2_4_001"]
    assert list(m.table["stem"]) == ["a_ID1", "b_ID1"]
    assert z.read_bytes() == before


def test_fifo_and_devices_are_one_line_never_a_hang(tmp_path):
    fifo = tmp_path / "metadata.csv"
    os.mkfifo(fifo)
    result = {}

    def read():
        try:
            md.read_metadata(fifo)
        except DoodleError as exc:
            result["error"] = str(exc)
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "reading a FIFO hung"
    assert "not a regular file" in result["error"] and "\n" not in result["error"]
    with pytest.raises(DoodleError, match="not a regular file"):
        md.read_metadata("/dev/zero")
    with pytest.raises(DoodleError, match="no such file"):
        md.read_metadata(tmp_path / "missing.csv")
    with pytest.raises(DoodleError, match="is a folder"):
        md.read_metadata(tmp_path)


def test_bad_csvs_are_one_line(tmp_path, monkeypatch):
    cases = {"empty.csv": b"", "binary.csv": b"\xff\xfe\x00junk",
             "other.csv": b"a,b\n1,2\n", "nul.csv": b"annotation_image_filename\nx\0.npz\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DoodleError) as err:
            md.read_metadata(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)
    monkeypatch.setattr(md, "MAX_CSV_BYTES", 100)
    big = write_rows(tmp_path / "big.csv", [row(f"x{i}_ID1") for i in range(5)])
    with pytest.raises(DoodleError, match="larger than"):
        md.read_metadata(big)
    with pytest.raises(DoodleError, match="larger than"):
        md.read_metadata(io.BytesIO(big.read_bytes()), name="big")


def test_folder_skips_csvs_that_are_not_metadata(tmp_path):
    write_rows(tmp_path / "metadata_D_x_served.csv", [row("a_ID1")])
    (tmp_path / "table.csv").write_text("file,accuracy\nx.npz,1\n")
    m = md.read_metadata_inputs([tmp_path])
    assert len(m.table) == 1 and [Path(s).name for s in m.skipped] == ["table.csv"]
    with pytest.raises(DoodleError, match="not a Coast Train metadata CSV"):
        md.read_metadata_inputs([tmp_path / "table.csv"])  # named: it must be metadata


def raw_counts(paths):
    """Per record: rows and labeler counts, read with the csv module and the notebooks' rule
    (``t.split('_')[-1].split('.npz')[0]`` of annotation_image_filename)."""
    rows, labelers = {}, {}
    for p in paths:
        record = md.record_from_name(p.name)
        with open(p, newline="") as fh:
            data = list(csv.DictReader(fh))
        rows[record] = len(data)
        labelers[record] = Counter(r["annotation_image_filename"].split("_")[-1].split(".npz")[0]
                                    for r in data)
    return rows, labelers


@pytest.mark.skipif(len(REAL) != 10, reason="the ten Coast Train metadata CSVs are not in "
                                            "../shared/data/coasttrain")
def test_real_csvs():
    rows, labelers = raw_counts(REAL)
    m = md.read_metadata_inputs(REAL)
    assert sum(rows.values()) == 1852 and len(rows) == 10
    assert len(m.table) == 1852 and m.table["record"].nunique() == 10
    assert m.table.groupby("record").size().to_dict() == rows
    got = {r: Counter(g["labeler"]) for r, g in m.table.groupby("record")}
    assert got == labelers
    checks = Counter(m.findings["check"])
    # record B: present array lists all 7 classes in 22 rows whose integers list fewer
    b = m.findings[(m.findings["record"] == "B_quads_gulf")
                   & (m.findings["check"] == "present-classes")]
    assert len(b) == 22
    # record J: 'vegetated_ground'/'no_data' in the rows that do not write 'vegtated_ground'
    j = m.findings[m.findings["check"] == "class-spelling"]
    assert set(j["record"]) == {"J_naip_6class"} and "vegetated_ground" in set(j["says_a"])
    assert checks["stem-in-two-records"] == 2


def test_values_that_cannot_be_read_are_findings_not_dropped(tmp_path):
    """num_classes 'four', year -5, LatMin 'north', classes_present_integer '0, 9, x' were
    left out without a word."""
    bad = row("a_ID1", n="four", year=-5, present_int="0, 9, x", ints="1, 2")
    bad["LatMin"] = "north"
    far = row("b_ID1", lon=(250.0, 251.0))
    found = md.read_metadata(write_rows(tmp_path / "metadata_X_bad_served.csv",
                                        [bad, far, row("c_ID1")])).findings
    got = {(r.stem, r.check, r.column_a, str(r.says_a)) for r in found.itertuples()}
    assert {("a_ID1", "unreadable", "num_classes", "four"),
            ("a_ID1", "unreadable", "LatMin", "north"),
            ("a_ID1", "unreadable", "classes_present_integer", "0, 9, x"),
            ("a_ID1", "value-range", "year/month/day", "-5/1/2"),
            ("b_ID1", "value-range", "LonMin/Max", "250.5")} <= got
    assert not any(r[0] == "c_ID1" for r in got)
