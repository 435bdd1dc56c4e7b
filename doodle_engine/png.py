"""PNG-era Doodler sessions (October 2020 - May 2021): doodle PNGs read into DoodleRecords.

Until 2021-05-09 Doodler saved, per segmented image, three PNGs in its results folder:

* ``<stem>_annotations[<time>][_<id>].png`` - the doodles drawn in the class colours;
* ``<stem>_label[<time>][_<id>].png`` - the result in the class colours;
* ``<stem>_label_greyscale[<time>][_<id>].png`` - the result as 8-bit greyscale, value v = class v-1.

The image itself stayed in Doodler's ``assets`` folder.  Two colour conventions for the doodle
PNG exist (see docs/guide/eras-history.md):

``rgba-2020-10`` (2020-10-17 ... 2020-10-30)
    RGBA, alpha 128 everywhere; pixel colour = G10[(mask - 1) mod 256 mod 10] with the uint8
    mask 0 = undoodled, so undoodled pixels wrapped to G10[5] = (0, 153, 198) and class k
    (0-based) is G10[k].  With six or more classes class 5 cannot be told from "undoodled".
``rgb-2020-11`` (2020-11-04 on)
    RGB; class k is palette[k], undoodled pixels palette[-1] (G10's (49, 99, 149) for at most
    10 classes, Light24's last colour above), and black where the image's first band is 0
    (a doodle there is lost).

``read_png_triple`` and ``read_png_session`` return plain dicts holding every field
:class:`doodle_engine.record.DoodleRecord` takes (``to_record`` builds one) plus the session's
metadata (file names, date and time, colour convention, notes).

``load()`` and every command take, besides ``.npz`` files, a Doodler doodle PNG
(``<stem>_annotations[<time>][_<id>].png``: its greyscale label PNG and its image are found
beside it, the image also in Doodler's ``assets/`` folder or in ``images=``) and results
folders holding such PNGs.  The era comes from the session's date (the results folder's name,
the PNG's time stamp, or ``date=``), the settings from that era's slider defaults
(:func:`doodle_engine.settings.settings_for_era`) with the user's values replacing any of
them, the classes from the session's ``classes.txt`` or ``classes=``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .classnames import class_list, read_classes_file
from .eras import era_for_date
from .eras import recipe as era_recipe
from .errors import DoodleError
from .palette import G10, LIGHT24, hex_to_rgb
from .record import DEFAULT_MAX_PIXELS, DoodleRecord, zero_based
from .settings import check_sliders, settings_for_era

RGBA_2020 = "rgba-2020-10"
RGB_2020 = "rgb-2020-11"
CONVENTIONS = (RGBA_2020, RGB_2020)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
KINDS = ("annotations", "label_greyscale", "label")

# <stem>_<kind>[<YYYY-mm-dd-HH-MM[-SS]>][_<id>].png ; label_greyscale is tried before label
_NAME_RE = re.compile(
    r"^(?P<stem>.+?)_(?P<kind>annotations|label_greyscale|label)"
    r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}(?:-\d{2})?)?(?:_(?P<id>.+))?\.png$")
# results folders: results2021-03-24-21-31 (Feb 2021 on) or results30-10-2020-20-16-11 (Oct 2020)
_FOLDER_YMD = re.compile(r"results(\d{4})-(\d{2})-(\d{2})(?:-(\d{2})-(\d{2})(?:-(\d{2}))?)?")
_FOLDER_DMY = re.compile(r"results(\d{2})-(\d{2})-(\d{4})-(\d{2})-(\d{2})-(\d{2})")

#: DoodleRecord fields a PNG session entry fills (the rest keep their defaults)
RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(DoodleRecord)
                      if f.name not in ("trials", "trial_prefix", "remapped"))


# ----------------------------------------------------------------------------- small readers
def _open_png(path, what, max_pixels=DEFAULT_MAX_PIXELS):
    """An image file decoded, after its declared size (read from its header, nothing decoded)
    has been checked against ``max_pixels`` and PIL's decompression-bomb limit."""
    path = Path(path)
    if not path.is_file():
        raise DoodleError(path, f"no such {what} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise DoodleError(path, f"{what} declares {w}x{h} = {w * h} pixels, above "
                                            f"the limit of {max_pixels} (max_pixels / "
                                            "--max-pixels)")
                im.load()
                return im.copy()
    except Image.DecompressionBombError as exc:
        raise DoodleError(path, f"{what} declares more pixels than PIL decodes ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DoodleError(path, f"not a readable image ({exc})") from None


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """The image as Doodler read it: ``np.array(PIL.Image.open(path))`` as uint8 (no EXIF
    rotation); palette/CMYK images are converted to RGB."""
    im = _open_png(path, "image", max_pixels)
    if im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")
    arr = np.asarray(im)
    if arr.dtype != np.uint8:
        raise DoodleError(path, f"image must be 8-bit, got {arr.dtype}")
    if min(arr.shape[:2]) < 1:
        raise DoodleError(path, f"image is empty (shape {arr.shape})")
    return arr


def detect_convention(annotations, path=None):
    """``rgba-2020-10`` for an RGBA doodle PNG, ``rgb-2020-11`` for an RGB one."""
    annotations = np.asarray(annotations)
    if annotations.ndim == 3 and annotations.shape[2] == 4:
        return RGBA_2020
    if annotations.ndim == 3 and annotations.shape[2] == 3:
        return RGB_2020
    raise DoodleError(path, f"annotation PNG must be RGB or RGBA, got shape {annotations.shape}")


def _palette(n_classes, convention):
    """(class colours (n, 3), undoodled colour) for a convention."""
    if convention == RGBA_2020:
        if n_classes > len(G10):
            raise DoodleError(None, f"October 2020 Doodler drew at most {len(G10)} classes, "
                                    f"got {n_classes}")
        pal = np.array([hex_to_rgb(c) for c in G10], np.uint8)
        return pal[:n_classes], pal[5]
    names = G10 if n_classes <= len(G10) else LIGHT24
    if n_classes > len(LIGHT24):
        raise DoodleError(None, f"Doodler's palettes hold at most {len(LIGHT24)} classes, "
                                f"got {n_classes}")
    pal = np.array([hex_to_rgb(c) for c in names], np.uint8)
    return pal[:n_classes], pal[-1]


def _pack(rgb):
    rgb = np.asarray(rgb, np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def decode_annotations(annotations, n_classes, image=None, convention=None, path=None):
    """Doodle PNG pixels -> (doodles, notes): doodles uint8 HxW, 0 = none, v = class v-1.

    ``n_classes`` is the session's class count (``None``: at most 10, G10 colours).  Pixels of a
    colour that is no class colour, not the undoodled colour (and not black over an image whose
    first band is 0, ``rgb-2020-11``) raise one DoodleError naming the colour and its count.
    """
    annotations = np.asarray(annotations)
    convention = convention or detect_convention(annotations, path)
    if convention not in CONVENTIONS:
        raise DoodleError(path, f"unknown annotation convention {convention!r}; "
                                f"one of {', '.join(CONVENTIONS)}")
    if annotations.ndim != 3 or annotations.shape[2] not in (3, 4):
        raise DoodleError(path, f"annotation PNG must be RGB or RGBA, got shape {annotations.shape}")
    notes = []
    n = len(G10) if n_classes is None else int(n_classes)
    if n < 1:
        raise DoodleError(path, "a session needs at least one class")
    try:
        pal, undoodled = _palette(n, convention)
    except DoodleError as exc:
        raise DoodleError(path, exc.problem) from None
    rgb = annotations[..., :3]
    if convention == RGBA_2020 and annotations.shape[2] == 4:
        alphas = np.unique(annotations[..., 3])
        if not np.array_equal(alphas, [128]):
            notes.append(f"alpha is not 128 everywhere ({alphas[:5].tolist()}...)")
    packed = _pack(rgb)
    doodles = np.zeros(packed.shape, np.uint8)
    known = packed == _pack(undoodled)
    und_class = [k for k in range(n) if _pack(pal[k]) == _pack(undoodled)]
    if und_class:  # class colour == undoodled colour: read as undoodled, say so
        notes.append(f"class {und_class[0]} has the undoodled colour {tuple(int(v) for v in undoodled)}"
                     f" in this convention; its doodles read as undoodled")
    for k in range(n):
        if k in und_class:
            continue
        hit = packed == _pack(pal[k])
        doodles[hit] = k + 1
        known |= hit
    if convention == RGB_2020:
        black = packed == 0
        if image is not None:
            band0 = image if image.ndim == 2 else image[..., 0]
            if band0.shape == black.shape:
                hidden = black & (band0 == 0)
                if hidden.any():
                    notes.append(f"{int(hidden.sum())} pixels are black where the image's first band "
                                 f"is 0 (Doodler blanked them; any doodle there is lost)")
                known |= hidden
        elif black.any():
            notes.append(f"{int(black.sum())} black pixels read as undoodled (no image to check)")
            known |= black
    if not known.all():
        bad, counts = np.unique(packed[~known], return_counts=True)
        order = np.argsort(-counts)
        shown = ", ".join(f"({int(bad[i]) >> 16}, {(int(bad[i]) >> 8) & 255}, {int(bad[i]) & 255}) "
                          f"x {int(counts[i])} px" for i in order[:3])
        more = f" and {len(bad) - 3} more colours" if len(bad) > 3 else ""
        raise DoodleError(path, f"{int((~known).sum())} pixels have colours that fit none of the "
                                f"{n} class colours of the {convention} convention: {shown}{more}")
    return doodles, notes


def read_label_png(path, n_classes=None, shape=None, max_pixels=DEFAULT_MAX_PIXELS):
    """Greyscale label PNG (value v = class v-1, 0 = none) -> 0-based raster (NO_CLASS = none)."""
    im = _open_png(path, "label", max_pixels)
    arr = np.asarray(im)
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and (np.array_equal(arr[..., 0], arr[..., 1])
                                  and np.array_equal(arr[..., 0], arr[..., 2])):
            arr = arr[..., 0]
        else:
            raise DoodleError(path, f"label PNG must be greyscale, got mode {im.mode}")
    if arr.dtype.kind not in "ui":
        raise DoodleError(path, f"label PNG must hold integers, got {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise DoodleError(path, f"label PNG is {arr.shape[1]}x{arr.shape[0]} (WxH) but the image is "
                                f"{shape[1]}x{shape[0]}")
    hi = int(arr.max(initial=0))
    limit = 254 if n_classes is None else int(n_classes)
    if hi > limit:
        raise DoodleError(path, f"label value {hi} is beyond the {limit} classes "
                                f"({int((arr > limit).sum())} pixels)")
    return zero_based(arr)


def find_classes_file(folder):
    """``classes.txt`` in the folder or up to two levels above (Doodler's working folder)."""
    folder = Path(folder)
    for cand in (folder, folder.parent, folder.parent.parent):
        if (cand / "classes.txt").is_file():
            return cand / "classes.txt"
    return None


def session_date(folder):
    """(date 'YYYY-MM-DD', time 'HH:MM[:SS]' or None) from a results folder name, else (None, None)."""
    name = Path(folder).name
    m = _FOLDER_DMY.search(name)
    if m:
        d, mo, y, hh, mm, ss = m.groups()
        return f"{y}-{mo}-{d}", f"{hh}:{mm}:{ss}"
    m = _FOLDER_YMD.search(name)
    if m:
        y, mo, d, hh, mm, ss = m.groups()
        return f"{y}-{mo}-{d}", (None if hh is None else f"{hh}:{mm}" + (f":{ss}" if ss else ""))
    return None, None


def _stamp(ts):
    """'2021-03-24-21-33' -> ('2021-03-24', '21:33')."""
    if not ts:
        return None, None
    parts = ts.split("-")
    return "-".join(parts[:3]), ":".join(parts[3:])


def parse_name(name):
    """A Doodler result PNG name -> dict(stem, kind, ts, id), or None."""
    m = _NAME_RE.match(Path(name).name)
    return None if m is None else m.groupdict()


# ----------------------------------------------------------------------------- one triple
def _resolve_classes(classes, folder):
    if classes is not None:
        return class_list(classes), "user"
    found = find_classes_file(folder) if folder is not None else None
    if found is not None:
        return read_classes_file(found), "classes.txt"
    return None, None


def _entry(image_path, annotations_path, label_path, color_label_path, classes, source,
           convention, session=None, date=None, time=None, user_id=None,
           max_pixels=DEFAULT_MAX_PIXELS):
    image = read_image(image_path, max_pixels)
    shape = image.shape[:2]
    ann_im = _open_png(annotations_path, "annotation", max_pixels)
    if ann_im.mode not in ("RGB", "RGBA"):
        ann_im = ann_im.convert("RGBA" if "A" in ann_im.mode else "RGB")
    ann = np.asarray(ann_im)
    if ann.shape[:2] != shape:
        raise DoodleError(annotations_path, f"annotation PNG is {ann.shape[1]}x{ann.shape[0]} (WxH) "
                                            f"but the image is {shape[1]}x{shape[0]}")
    n = len(classes) if classes is not None else None
    doodles, notes = decode_annotations(ann, n, image=image, convention=convention,
                                        path=annotations_path)
    if not doodles.any():
        notes.append("no doodled pixels")
    label = None
    if label_path is not None:
        label = read_label_png(label_path, n, shape, max_pixels)
    color_label = None
    if color_label_path is not None and Path(color_label_path).is_file():
        cl = np.asarray(_open_png(color_label_path, "colour label", max_pixels).convert("RGB"))
        if cl.shape[:2] == shape:
            color_label = cl
        else:
            notes.append(f"colour label {Path(color_label_path).name} has another size; ignored")
    return {
        # the DoodleRecord fields
        "path": str(annotations_path),
        "image": image,
        "doodles": doodles,
        "label": label,
        "label_layout": None if label is None else "raster",
        "label_k": None,
        "orig_image": None,
        "color_doodles": ann[..., :3].copy(),
        "color_label": color_label,
        "classes": None if classes is None else list(classes),
        "classes_source": source,
        "settings": None,
        "raw_settings": None,
        # the session's metadata
        "convention": convention or detect_convention(ann, annotations_path),
        "session": None if session is None else str(session),
        "date": date,
        "time": time,
        "user_id": user_id,
        "files": {"image": str(image_path), "annotations": str(annotations_path),
                  "label_greyscale": None if label_path is None else str(label_path),
                  "label": None if color_label_path is None else str(color_label_path)},
        "notes": notes,
    }


def read_png_triple(image, annotations, label=None, classes=None, convention=None,
                    color_label=None, date=None, max_pixels=DEFAULT_MAX_PIXELS):
    """One image + its doodle PNG (+ greyscale label PNG) -> an entry dict (see module doc).

    ``classes``: a list of names or a classes-file path; default ``classes.txt`` beside the
    annotation PNG or up to two folders above; none found -> names unknown, G10 colours.
    ``convention``: ``rgba-2020-10`` or ``rgb-2020-11``; default from the PNG (RGBA or RGB).
    """
    annotations = Path(annotations)
    names, source = _resolve_classes(classes, annotations.parent)
    parsed = parse_name(annotations.name) or {}
    fdate, ftime = _stamp(parsed.get("ts"))
    sdate, stime = session_date(annotations.parent)
    return _entry(Path(image), annotations, None if label is None else Path(label),
                  color_label, names, source, convention, session=annotations.parent,
                  date=date or fdate or sdate, time=ftime or stime, user_id=parsed.get("id"),
                  max_pixels=max_pixels)


# ----------------------------------------------------------------------------- a session folder
def _find_image(stem, folders):
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        for ext in IMAGE_EXTS:
            for cand in (Path(folder) / (stem + ext), Path(folder) / (stem + ext.upper())):
                if cand.is_file():
                    return cand
    return None


def _image_folders(folder, images):
    if images is not None:
        return [Path(images)]
    folder = Path(folder)
    # the folder itself, then Doodler's assets/ beside results/ (results/ or results/resultsX/)
    return [folder, folder / "images", folder.parent / "assets", folder.parent.parent / "assets",
            folder.parent / "to_label", folder.parent.parent / "to_label"]


def _key_time(ts):
    return ts or ""


def list_png_session(folder):
    """The session's result PNGs grouped per doodle PNG, in time order:
    a list of dicts(stem, ts, id, annotations, label_greyscale, label)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DoodleError(folder, "no such folder")
    groups = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        parsed = parse_name(p.name)
        if parsed is None:
            continue
        groups.setdefault((parsed["stem"], parsed["id"]), {k: [] for k in KINDS})
        groups[(parsed["stem"], parsed["id"])][parsed["kind"]].append((parsed["ts"] or "", p))
    out = []
    for (stem, uid), kinds in groups.items():
        anns = sorted(kinds["annotations"], key=lambda t: t[0])
        for i, (ts, ann) in enumerate(anns):
            nxt = anns[i + 1][0] if i + 1 < len(anns) else None

            def pick(kind, ts=ts, nxt=nxt, kinds=kinds):
                # the first label written at or after this doodle PNG and before the next one
                cands = sorted(kinds[kind], key=lambda t: t[0])
                ok = [p for t, p in cands if t >= ts and (nxt is None or t < nxt or not t)]
                return ok[0] if ok else None

            out.append({"stem": stem, "ts": ts or None, "id": uid, "annotations": ann,
                        "label_greyscale": pick("label_greyscale"), "label": pick("label")})
    out.sort(key=lambda e: (_key_time(e["ts"]), e["stem"]))
    return out


def read_png_session(path, classes=None, images=None, convention=None, missing="error",
                     date=None, max_pixels=DEFAULT_MAX_PIXELS):
    """Every doodled image of a pre-npz Doodler results folder, as entry dicts in time order.

    ``images``: folder holding the images (default: the results folder, then Doodler's
    ``assets`` beside ``results``); ``missing``: ``"error"`` (default) or ``"skip"`` for a doodle
    PNG whose image cannot be found.  Without time stamps in the names (October 2020) the
    order is by name and each entry's ``time`` is None.  ``date`` ('YYYY-MM-DD') stands in
    for the session date when neither the folder nor the file names carry one.
    """
    folder = Path(path)
    if not folder.exists():
        raise DoodleError(folder, "no such folder")
    if not folder.is_dir():
        raise DoodleError(folder, "is a file; give a results folder, or use read_png_triple")
    groups = list_png_session(folder)
    if not groups:
        raise DoodleError(folder, "holds no Doodler doodle PNGs (*_annotations*.png): not a "
                                  "pre-npz results folder")
    names, source = _resolve_classes(classes, folder)
    sdate, stime = session_date(folder)
    sdate = sdate or date
    folders = _image_folders(folder, images)
    entries = []
    for g in groups:
        img = _find_image(g["stem"], folders)
        if img is None:
            if missing == "skip":
                continue
            raise DoodleError(g["annotations"], f"no image {g['stem']}.jpg (or .png/.tif) in "
                                                f"{', '.join(str(f) for f in folders if f is not None)}")
        fdate, ftime = _stamp(g["ts"])
        entry = _entry(img, g["annotations"], g["label_greyscale"], g["label"], names, source,
                       convention, session=folder, date=fdate or sdate, time=ftime or None,
                       user_id=g["id"], max_pixels=max_pixels)
        if g["label_greyscale"] is None:
            entry["notes"].append("no greyscale label PNG for this doodle PNG")
        entries.append(entry)
    if not entries:
        raise DoodleError(folder, "none of its doodle PNGs has its image (missing='skip')")
    for i, e in enumerate(entries):
        e["order"] = i
        e["session_date"] = sdate
        e["order_known"] = all(x["time"] is not None for x in entries)
    return entries


def to_record(entry) -> DoodleRecord:
    """An entry dict -> :class:`DoodleRecord` (settings stay None: they come from the era)."""
    return DoodleRecord(**{k: entry[k] for k in RECORD_FIELDS})


# ----------------------------------------------------------------------------- as records
def is_doodle_png(path):
    """Whether ``path`` names a Doodler doodle PNG (``*_annotations*.png``)."""
    p = Path(path)
    parsed = parse_name(p.name) if p.suffix.lower() == ".png" else None
    return parsed is not None and parsed["kind"] == "annotations"


def is_png_session(folder):
    """Whether ``folder`` holds Doodler doodle PNGs (a pre-npz results folder)."""
    p = Path(folder)
    return p.is_dir() and any(is_doodle_png(q) for q in p.iterdir() if q.is_file())


def parse_settings(text, path=None):
    """``--settings``: a JSON file or object, or ``key=value[,key=value]`` -> dict of sliders,
    each checked (:func:`doodle_engine.settings.check_sliders`: known, within the ranges an
    npz's settings must fall in)."""
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        return check_sliders(path or "settings", dict(text))
    s = str(text).strip()
    if Path(s).is_file():
        try:
            data = json.loads(Path(s).read_text())
        except (OSError, ValueError) as exc:
            raise DoodleError(s, f"settings file is not JSON ({exc})") from None
    elif s.startswith("{"):
        try:
            data = json.loads(s)
        except ValueError as exc:
            raise DoodleError(path or "--settings", f"not valid JSON ({exc})") from None
    else:
        data = {}
        for part in s.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise DoodleError(path or "--settings", f"{part.strip()!r} is not key=value")
            try:
                data[key.strip()] = float(value)
            except ValueError:
                raise DoodleError(path or "--settings",
                                  f"{key.strip()}={value.strip()!r} is not a number") from None
    if not isinstance(data, dict):
        raise DoodleError(path or "--settings", "settings must be an object of slider: value")
    return check_sliders(path or "--settings", data)


def entry_settings(entry, era=None, date=None, settings=None):
    """The Settings of a PNG-session entry: ``era`` (a name) or the era of its date, with the
    era's slider defaults and ``settings`` (a dict) replacing any of them."""
    where = entry["path"]
    sliders = parse_settings(settings, where) or {}
    if era is not None and era != "auto":
        name, source = era_recipe(era, where).name, "user"
    else:
        day = date or entry.get("date")
        if entry.get("time") and day and len(day) == 10:
            day = f"{day} {entry['time'][:5]}"
        name, source = era_for_date("none", day)
        source = "date of the session" if source == "layout+date" else source
    src = f"{source}; sliders: era defaults" + (f" + user ({', '.join(sliders)})" if sliders else "")
    return settings_for_era(name, path=where, source=src, **sliders)


def _record(entry, era, date, settings):
    rec = to_record(entry)
    rec.settings = entry_settings(entry, era, date, settings)
    return rec


def load_png(path, classes=None, era=None, date=None, settings=None, images=None,
             max_pixels=DEFAULT_MAX_PIXELS):
    """One doodle PNG -> DoodleRecord (its label PNG and image found beside it); each image
    is refused above ``max_pixels`` from its declared size, before it is decoded."""
    ann = Path(path)
    if not ann.is_file():
        raise DoodleError(ann, "no such file")
    parsed = parse_name(ann.name)
    if parsed is None or parsed["kind"] != "annotations":
        raise DoodleError(ann, "not a Doodler doodle PNG (<stem>_annotations[...].png); give "
                               "the doodle PNG, not the label PNG")
    group = next((g for g in list_png_session(ann.parent) if Path(g["annotations"]) == ann), None)
    folders = _image_folders(ann.parent, images)
    image = _find_image(parsed["stem"], folders)
    if image is None:
        raise DoodleError(ann, f"no image {parsed['stem']}.jpg (or .png/.tif) in "
                               f"{', '.join(str(f) for f in folders)}; --images FOLDER tells "
                               f"where it is")
    entry = read_png_triple(image, ann, None if group is None else group["label_greyscale"],
                            classes=classes, color_label=None if group is None else group["label"],
                            date=date, max_pixels=max_pixels)
    return _record(entry, era, date, settings)


def load_triple(image, annotations, label=None, classes=None, era=None, date=None, settings=None,
                max_pixels=DEFAULT_MAX_PIXELS):
    """An image + doodle PNG (+ greyscale label PNG) named one by one -> DoodleRecord."""
    entry = read_png_triple(image, annotations, label, classes=classes, date=date,
                            max_pixels=max_pixels)
    return _record(entry, era, date, settings)


def load_session(folder, classes=None, era=None, date=None, settings=None, images=None,
                 max_pixels=DEFAULT_MAX_PIXELS):
    """Every doodled image of a pre-npz results folder -> DoodleRecords in time order."""
    entries = read_png_session(folder, classes=classes, images=images, date=date,
                               max_pixels=max_pixels)
    return [_record(e, era, date, settings) for e in entries]


def doodle_pngs(folder):
    """The doodle PNGs of a results folder, in time order (a DoodleError when none)."""
    groups = list_png_session(folder)
    if not groups:
        raise DoodleError(folder, "holds no .npz files and no Doodler doodle PNGs "
                                  "(*_annotations*.png)")
    return [str(g["annotations"]) for g in groups]
