"""PNG-era sessions (October 2020 - May 2021) as :class:`DoodleRecord` inputs.

``load()`` and every command take, besides ``.npz`` files, a Doodler doodle PNG
(``<stem>_annotations[<time>][_<id>].png``: its greyscale label PNG and its image are found
beside it, the image also in Doodler's ``assets/`` folder or in ``images=``) and results
folders holding such PNGs.  The era comes from the session's date (the results folder's name,
the PNG's time stamp, or ``date=``), the settings from that era's slider defaults
(:func:`doodle_engine.settings.settings_for_era`) with the user's values replacing any of
them, the classes from the session's ``classes.txt`` or ``classes=``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .eras import era_for_date, recipe as era_recipe
from .errors import DoodleError
from .pngsession import (_find_image, _image_folders, list_png_session, parse_name,
                         read_png_session, read_png_triple, to_record)
from .settings import settings_for_era


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
    """``--settings``: a JSON file or object, or ``key=value[,key=value]`` -> dict of sliders."""
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        return dict(text)
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
    return data


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


def load_png(path, classes=None, era=None, date=None, settings=None, images=None):
    """One doodle PNG -> DoodleRecord (its label PNG and image found beside it)."""
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
                            date=date)
    return _record(entry, era, date, settings)


def load_triple(image, annotations, label=None, classes=None, era=None, date=None, settings=None):
    """An image + doodle PNG (+ greyscale label PNG) named one by one -> DoodleRecord."""
    entry = read_png_triple(image, annotations, label, classes=classes, date=date)
    return _record(entry, era, date, settings)


def load_session(folder, classes=None, era=None, date=None, settings=None, images=None):
    """Every doodled image of a pre-npz results folder -> DoodleRecords in time order."""
    entries = read_png_session(folder, classes=classes, images=images, date=date)
    return [_record(e, era, date, settings) for e in entries]


def doodle_pngs(folder):
    """The doodle PNGs of a results folder, in time order (a DoodleError when none)."""
    groups = list_png_session(folder)
    if not groups:
        raise DoodleError(folder, "holds no .npz files and no Doodler doodle PNGs "
                                  "(*_annotations*.png)")
    return [str(g["annotations"]) for g in groups]
