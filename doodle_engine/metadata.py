"""Coast Train metadata CSVs read into one table keyed by the file stem, with the places where
their columns disagree reported rather than settled silently.

The release's ten CSVs are not uniform: their columns come in different orders; image, label
and npz paths are written ``labels/x.jpg``, ``/images/x.jpg`` or bare ``x.jpg`` (and record E
names its images ``x_image.jpg``); one record's ``classes_present_array`` lists every class in
every row while ``classes_present_integer`` lists fewer; class names carry spelling variants
within one record (``vegtated_ground`` / ``vegetated_ground``).  :func:`read_metadata` reads
one CSV (a path, bytes or a binary file object, so a CSV inside a release zip is read in
place) into a :class:`Metadata`: ``table`` has one row per image, keyed by ``stem`` (the npz
file's name without ``.npz``), with the normalised columns below beside the CSV's own; and
``findings`` has one row per disagreement found: which check, which CSV line, what column X
says and what column Y says, and which one the table uses.

Normalised columns: ``stem``, ``record`` (as the release names it: the zip's name, or for a
bare CSV its name without ``metadata_`` and ``_meta_served``: ``A_naip``), ``source`` (the CSV
as named in messages), ``line`` (the CSV line, the header being line 1), ``labeler`` (the
``ID<n>`` suffix of the file name, as the CoastTrainMetaPlots notebooks read it), ``classes``
(the row's class list, spelling variants within a record brought to the spelling most rows
use), ``present`` (the classes present: ``classes_present_integer`` read through the row's
class list), ``date`` (``YYYY-MM-DD`` from year/month/day), ``lon``/``lat`` (the image centre)
and ``height_px``/``width_px``/``pixel_size_m``.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .errors import DoodleError
from .files import open_regular, split_member
from .releasezip import (
    MAX_CSV_BYTES,
    is_zip_name,
    list_members,
    member_name,
    read_csv_member,
    record_name,
)

#: the path columns a row's stem can come from, the npz path first
PATH_COLUMNS = ("annotation_image_filename", "image_filename", "label_image_filename")
#: suffixes taken off a path to give its stem
_SUFFIXES = (".npz", ".jpg", ".jpeg", ".png", ".tif", ".tiff")
#: columns of :attr:`Metadata.findings`
FINDING_COLUMNS = ("record", "source", "line", "stem", "check", "column_a", "says_a", "column_b",
                   "says_b", "used")
_LABELLER = re.compile(r"_(ID\d+)$")
_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(\d\d)-?(\d\d)(?!\d)")
_UTM = re.compile(r"UTM zone (\d+)([NS])", re.IGNORECASE)


@dataclass
class Metadata:
    """Metadata rows of one or more CSVs: ``table`` (one row per image), ``findings`` (one
    row per disagreement: :data:`FINDING_COLUMNS`), the CSVs read (``sources``) and those
    found in a folder but not metadata (``skipped``)."""

    table: pd.DataFrame
    findings: pd.DataFrame
    sources: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


def record_from_name(name):
    """The record a CSV belongs to, as the release names it: the zip's name for a CSV inside
    a release zip (``Landsat8_12_001``), else the CSV's file name without ``metadata_``,
    ``_meta``/``_metadata``, ``_all`` and ``_served`` (``metadata_E_L8_meta_all_served.csv`` ->
    ``E_L8``)."""
    zip_path, member = split_member(name)
    if member is not None:
        return record_name(zip_path)
    stem = PurePosixPath(str(name).replace("\\", "/")).name
    stem = stem[:-4] if stem.lower().endswith(".csv") else stem
    stem = re.sub(r"^metadata_", "", stem)
    stem = re.sub(r"(_meta(data)?)?(_all)?(_served)?$", "", stem)
    return stem or "metadata"


def stem_of(text):
    """The file stem of a path as the CSVs write it (``labels/x.jpg``, ``/images/x.jpg``,
    ``x.jpg``, ``npz/x.npz``): its last part without the image/npz suffix ('' for none)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    name = PurePosixPath(str(text).strip().replace("\\", "/")).name
    low = name.lower()
    for suffix in _SUFFIXES:
        if low.endswith(suffix):
            return name[:-len(suffix)]
    return name


def labeler_of(stem):
    """The anonymised labeler of a file: the ``ID<n>`` after its last underscore, as the
    CoastTrainMetaPlots notebooks read it ('' when the name has none)."""
    m = _LABELLER.search(str(stem))
    return m.group(1) if m else ""


def parse_names(text):
    """A class list as the CSVs write it (``'water', 'surf', 'sand'``) -> list of names."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    text = str(text)
    quoted = re.findall(r"'([^']*)'|\"([^\"]*)\"", text)
    if quoted:
        return [(a or b).strip() for a, b in quoted]
    return [t.strip() for t in text.strip("[]").split(",") if t.strip()]


def parse_ints(text):
    """An integer list as the CSVs write it (``0, 1, 2``) -> list of ints (None when a value is
    not an integer)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    out = []
    for t in str(text).strip("[]").split(","):
        t = t.strip()
        if not t:
            continue
        try:
            value = float(t)
        except ValueError:
            return None
        if value != int(value):
            return None
        out.append(int(value))
    return out


def _read_bytes(source, name):
    """The CSV's bytes from a path (a regular file, at most MAX_CSV_BYTES), bytes, or a binary
    file object (read no further than MAX_CSV_BYTES + 1)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        with open_regular(source) as fh:
            data = fh.read(MAX_CSV_BYTES + 1)
    elif hasattr(source, "read"):
        data = source.read(MAX_CSV_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise DoodleError(name, "is not a binary file object (open it with 'rb')")
    else:
        raise DoodleError(name, f"cannot read metadata from a {type(source).__name__}")
    if len(data) > MAX_CSV_BYTES:
        raise DoodleError(name, f"is larger than {MAX_CSV_BYTES // 2**20} MiB: not a metadata "
                                "CSV; not read")
    return data


def _frame(data, name):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DoodleError(name, f"is not UTF-8 text (byte {exc.start}): not a metadata CSV") from None
    if "\0" in text:
        raise DoodleError(name, "holds NUL bytes: not a metadata CSV")
    if not text.strip():
        raise DoodleError(name, "is empty: not a metadata CSV")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DoodleError(name, f"cannot be read as CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if not any(c in frame.columns for c in PATH_COLUMNS):
        shown = ", ".join(list(frame.columns)[:6]) + (", ..." if frame.shape[1] > 6 else "")
        raise DoodleError(name, "is not a Coast Train metadata CSV: it has none of the columns "
                                f"{', '.join(PATH_COLUMNS)} (its columns: {shown})")
    return frame


def read_metadata(source, name=None, record=None):
    """Read one Coast Train metadata CSV.

    Parameters
    ----------
    source : path, bytes or binary file object
        The CSV: a regular file (a FIFO or device is refused, never opened), or its bytes (a
        CSV member of a release zip read in place), at most 64 MiB.
    name : str, optional
        How messages and the ``source`` column name it (default: the path;
        ``ZIP::member`` for a zip's CSV, which also names the record after the zip).
    record : str, optional
        The record's name (default: :func:`record_from_name` of ``name``).

    Returns
    -------
    Metadata
        ``table``: one row per image with the normalised columns (module docstring) beside
        the CSV's own; ``findings``: every disagreement between columns, one row per CSV
        line and check.

    Raises
    ------
    DoodleError
        One line naming the CSV and the problem (not a regular file, too large, not text,
        not CSV, no path column).
    """
    if name is None:
        name = str(source) if isinstance(source, (str, os.PathLike)) else "<metadata CSV>"
    record = record or record_from_name(name)
    raw = _frame(_read_bytes(source, name), name)
    findings = []
    table = _normalise(raw, name, record, findings)
    _spelling(table, findings)
    _present(table, findings)
    return Metadata(table, _findings(findings), [name])


def _finding(findings, row, check, column_a, says_a, column_b, says_b, used):
    findings.append({"record": row["record"], "source": row["source"], "line": int(row["line"]),
                     "stem": row["stem"], "check": check, "column_a": column_a,
                     "says_a": str(says_a), "column_b": column_b, "says_b": str(says_b),
                     "used": used})


def _findings(rows):
    frame = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    return frame.astype({"line": "int64"})


def _number(frame, column):
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column].replace({"": None, "na": None, "n/a": None}),
                         errors="coerce")


def _normalise(raw, name, record, findings):
    """The normalised columns beside the CSV's own, and the per-row checks."""
    t = pd.DataFrame(index=raw.index)
    t["record"] = record
    t["source"] = name
    t["line"] = raw.index + 2
    key = next(c for c in PATH_COLUMNS if c in raw)
    stems = raw[key].map(stem_of)
    if key == "image_filename":
        stems = stems.str.replace(r"_image$", "", regex=True)
    elif key == "label_image_filename":
        stems = stems.str.replace(r"_label$", "", regex=True)
    t["stem"] = stems
    t["labeler"] = t["stem"].map(labeler_of)
    t["classes"] = raw["classes_array"].map(parse_names) if "classes_array" in raw else [[]] * len(raw)
    year, month, day = (_number(raw, c) for c in ("year", "month", "day"))
    t["date"] = [_iso(y, m, d) for y, m, d in zip(year, month, day)]
    lon = (_number(raw, "LonMin") + _number(raw, "LonMax")) / 2
    lat = (_number(raw, "LatMin") + _number(raw, "LatMax")) / 2
    t["lon"], t["lat"] = lon, lat
    t["height_px"] = _number(raw, "ImageHeightPx")
    t["width_px"] = _number(raw, "ImageWidthPx")
    t["pixel_size_m"] = _number(raw, "px_size_m")
    table = pd.concat([t, raw.drop(columns=[c for c in t.columns if c in raw])], axis=1)
    for row in table.to_dict("records"):
        _row_checks(row, findings)
    return table.reset_index(drop=True)


def _iso(y, m, d):
    try:
        return pd.Timestamp(int(y), int(m), int(d)).strftime("%Y-%m-%d")
    except (ValueError, TypeError, OverflowError):
        return ""


def _row_checks(row, findings):
    """Checks within one row: names, labeler, class counts, CRS and dates, value ranges."""
    stem = row["stem"]
    if not stem:
        _finding(findings, row, "no-file-name", "annotation_image_filename", "(empty)", "", "",
                 "row left out")
    if stem and not row["labeler"]:
        _finding(findings, row, "no-labeler", "annotation_image_filename", stem,
                 "", "no _ID<n> suffix", "labeler ''")
    for column, suffixes in (("image_filename", ("", "_image")),
                             ("label_image_filename", ("_label",))):
        other = stem_of(row.get(column, ""))
        if column in row and other and stem and other not in {stem + s for s in suffixes}:
            _finding(findings, row, "file-names", "annotation_image_filename", stem, column,
                     other, "annotation_image_filename (the npz)")
    names = row["classes"]
    n = _int_or_none(row.get("num_classes"))
    if n is not None and names and n != len(names):
        _finding(findings, row, "num-classes", "num_classes", n, "classes_array",
                 f"{len(names)} names", "classes_array")
    ints = parse_ints(row.get("classes_integer")) if "classes_integer" in row else None
    if ints is not None and names and "classes_integer" in row and ints != list(range(1, len(names))):
        _finding(findings, row, "classes-integer", "classes_integer", row["classes_integer"],
                 "classes_array", f"{len(names)} names (1..{len(names) - 1} in the other rows)",
                 "classes_array")
    _readable_check(row, findings)
    _crs_check(row, findings)
    _date_check(row, findings)
    p = _float(row.get("prob_of_unary_potential"))
    if p is not None and not 0 < p <= 1:
        _finding(findings, row, "value-range", "prob_of_unary_potential", row["prob_of_unary_potential"],
                 "", "a probability lies in (0, 1]", "not used")


#: columns that hold a number, and columns that hold a list of integers
NUMBER_COLUMNS = ("year", "month", "day", "LatMin", "LatMax", "LonMin", "LonMax",
                  "ImageHeightPx", "ImageWidthPx", "px_size_m", "num_classes", "epsg",
                  "prob_of_unary_potential")
INTEGER_LIST_COLUMNS = ("classes_integer", "classes_present_integer")
#: cells that say "no value" (not a finding)
_EMPTY = ("", "na", "n/a", "nan", "none")


def _readable_check(row, findings):
    """A value that cannot be read where a number or a list of integers belongs (``four``,
    ``north``, ``0, 9, x``: not used, so left out of the normalised columns), a
    year/month/day that is no date (``date`` empty) and a centre off the globe (kept in
    ``lon``/``lat``, left off the maps): each said rather than dropped silently."""
    for column in NUMBER_COLUMNS + INTEGER_LIST_COLUMNS:
        value = row.get(column)
        if value is None or (isinstance(value, float) and np.isnan(value)) \
                or str(value).strip().lower() in _EMPTY:
            continue
        numbers = column in NUMBER_COLUMNS
        if (_float(value) is None) if numbers else (parse_ints(value) is None):
            _finding(findings, row, "unreadable", column, value, "",
                     "not a number" if numbers else "not a list of integers", "not used")
    y, m, d = (_float(row.get(c)) for c in ("year", "month", "day"))
    if None not in (y, m, d) and not row["date"]:
        _finding(findings, row, "value-range", "year/month/day", f"{y:g}/{m:g}/{d:g}", "",
                 "not a date", "no date")
    for axis, limit in (("lat", 90), ("lon", 180)):
        v = row.get(axis)
        if v is not None and np.isfinite(v) and not -limit <= v <= limit:
            _finding(findings, row, "value-range", f"{axis.capitalize()}Min/Max", f"{v:g}",
                     "", f"a {'latitude' if axis == 'lat' else 'longitude'} lies in "
                         f"-{limit}..{limit}", "not mapped")


def _float(value):
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(f) else f


def _int_or_none(value):
    f = _float(value)
    return int(f) if f is not None and np.isfinite(f) and f == int(f) else None


def _utm_zone(lon):
    return int((lon + 180) // 6) + 1 if -180 <= lon <= 180 else None


def _crs_check(row, findings):
    """The UTM zone in ``CRS`` against the one ``epsg`` encodes (EPSG 269zz NAD83, 326zz
    WGS 84 north, 327zz south), with the zone the image centre's longitude lies in as witness."""
    epsg = _int_or_none(row.get("epsg"))
    m = _UTM.search(str(row.get("CRS", "")))
    if epsg is None or not m or not (26901 <= epsg <= 26923 or 32601 <= epsg <= 32760):
        return
    crs_zone, epsg_zone = int(m.group(1)), epsg % 100
    if crs_zone != epsg_zone:
        lon_zone = _utm_zone(row["lon"]) if not np.isnan(row["lon"]) else None
        used = ("epsg (the image's longitude lies in its zone)" if lon_zone == epsg_zone
                else "CRS (the image's longitude lies in its zone)" if lon_zone == crs_zone
                else f"neither (the longitude lies in zone {lon_zone})")
        _finding(findings, row, "crs-epsg", "CRS", row["CRS"].strip('"'), "epsg",
                 f"{epsg} (UTM zone {epsg_zone})", used)


def _date_check(row, findings):
    """A full date in the file name (``20151017`` or ``2015-10-17``) against year/month/day."""
    if not row["date"]:
        return
    dates = []
    for y, m, d in _DATE.findall(row["stem"]):
        try:
            dates.append(pd.Timestamp(int(y), int(m), int(d)).strftime("%Y-%m-%d"))
        except ValueError:
            continue
    if dates and row["date"] not in dates:
        _finding(findings, row, "date", "file name", ", ".join(dict.fromkeys(dates)),
                 "year/month/day", row["date"], "year/month/day")


def _edit_distance(a, b):
    """Levenshtein distance of two short strings."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def same_class(a, b):
    """Whether two class names are spellings of one name: equal but for case, ``_``, ``-`` and
    spaces, or at most two letters apart in names of six letters or more."""
    def bare(s):
        return re.sub(r"[\s_\-]", "", s.lower())
    if bare(a) == bare(b):
        return True
    return min(len(a), len(b)) >= 6 and _edit_distance(bare(a), bare(b)) <= 2


def _spelling(table, findings):
    """Within a record, class lists of one length whose names differ only in spelling at the
    same place are one list: the spelling most rows use is kept, the other rows reported."""
    for _, group in table.groupby("record", sort=False):
        lists = group["classes"].map(tuple)
        counts = lists.value_counts()
        for variant in counts.index:
            for main in counts.index:
                if main == variant or len(main) != len(variant) or counts[main] < counts[variant]:
                    continue
                if counts[main] == counts[variant] and main > variant:
                    continue
                pairs = [(v, m) for v, m in zip(variant, main) if v != m]
                if pairs and all(same_class(v, m) for v, m in pairs):
                    idx = lists.index[lists == variant]
                    for i in idx:
                        table.at[i, "classes"] = list(main)
                        for v, m in pairs:
                            _finding(findings, table.loc[i], "class-spelling", "classes_array",
                                     v, "classes_array of other rows",
                                     f"{m} ({counts[main]} rows)", m)
                    break


def _present(table, findings):
    """``present``: the classes ``classes_present_integer`` names through the row's class
    list; where ``classes_present_array`` names others, or an index lies outside the list,
    the row is reported (and the array used when the integers cannot be read)."""
    present = []
    for row in table.to_dict("records"):
        names = row["classes"]
        ints = parse_ints(row.get("classes_present_integer")) if "classes_present_integer" in row else None
        arr = parse_names(row.get("classes_present_array")) if "classes_present_array" in row else None
        fixed = [_canonical(a, names) for a in arr] if arr is not None else None
        by_int = None
        if ints is not None and "classes_present_integer" in row:
            bad = [k for k in ints if not 0 <= k < len(names)]
            if bad:
                _finding(findings, row, "present-index", "classes_present_integer",
                         row["classes_present_integer"], "classes_array", f"{len(names)} names",
                         "classes_present_array")
            else:
                by_int = [names[k] for k in ints]
        if by_int is not None and fixed is not None and by_int != fixed:
            _finding(findings, row, "present-classes", "classes_present_integer",
                     "; ".join(by_int), "classes_present_array", "; ".join(arr),
                     "classes_present_integer")
        present.append(by_int if by_int is not None else (fixed or []))
    table["present"] = present


def _canonical(name, names):
    """A class name as the row's (spelling-merged) list writes it."""
    if name in names:
        return name
    return next((n for n in names if same_class(n, name)), name)


def combine(parts):
    """Several :class:`Metadata` as one.  A stem listed twice in one record is reported
    (``duplicate-stem``) and its first row kept; a stem listed in two records is reported
    (``stem-in-two-records``) and both rows kept (each record ships its own file)."""
    parts = list(parts)
    if not parts:
        return Metadata(pd.DataFrame(columns=["stem", "record", "source", "line"]),
                        _findings([]), [])
    table = pd.concat([p.table for p in parts], ignore_index=True, sort=False)
    rows = []
    named = table[table["stem"].ne("")]
    for _stem, group in named[named["stem"].duplicated(keep=False)].groupby("stem", sort=False):
        first = group.iloc[0]
        for _, other in group.iloc[1:].iterrows():
            same = other["record"] == first["record"]
            _finding(rows, other, "duplicate-stem" if same else "stem-in-two-records",
                     "this row", f"{other['source']} line {other['line']}",
                     "an earlier row", f"{first['source']} line {first['line']}",
                     "the earlier row" if same else "both rows (one per record)")
    findings = [p.findings for p in parts] + [_findings(rows)]
    findings = [f for f in findings if len(f)]
    keep = table["stem"].ne("") & ~table.duplicated(["record", "stem"], keep="first")
    return Metadata(table[keep].reset_index(drop=True),
                    pd.concat(findings, ignore_index=True) if findings else _findings([]),
                    [s for p in parts for s in p.sources])


def metadata_sources(inputs):
    """The metadata CSVs among ``inputs``: CSV files; every ``*.csv`` in a folder (recursively,
    sorted); the CSV members of a release zip (``ZIP::member``, read in place)."""
    return [source for source, _ in _sources(inputs)]


def _sources(inputs):
    """``(source, found)``: ``found`` when the CSV was found in a folder or zip rather than
    named by the caller."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file() and q.suffix.lower() == ".csv":
                    out.append((str(q), True))
                elif q.is_file() and is_zip_name(q):
                    out.extend((m, True) for m in _zip_csvs(q))
        elif is_zip_name(p):
            out.extend((m, True) for m in _zip_csvs(p))
        else:
            out.append((str(p), False))
    return out


def _zip_csvs(zip_path):
    try:
        return [member_name(zip_path, m) for m in list_members(zip_path)[1]]
    except DoodleError:
        return []


def read_metadata_inputs(inputs):
    """:func:`read_metadata` of every CSV :func:`metadata_sources` finds, as one
    :class:`Metadata` (:func:`combine`).  A CSV named by the caller must be a metadata CSV;
    one found in a folder or zip that is not (another table) is listed in ``skipped``."""
    parts, skipped = [], []
    for source, found in _sources(inputs):
        zip_path, member = split_member(source)
        try:
            if member is not None:
                parts.append(read_metadata(read_csv_member(zip_path, member), name=source))
            else:
                parts.append(read_metadata(source))
        except DoodleError as exc:
            if not (found and "is not a Coast Train metadata CSV" in exc.problem):
                raise
            skipped.append(source)
    meta = combine(parts)
    meta.skipped = skipped
    return meta
