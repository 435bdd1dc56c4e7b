"""Doodler ``.npz`` files of every era: bounded reading into a DoodleRecord, and writing.

Nothing is unpickled unless the caller passes ``allow_pickle=True``; array headers are
checked (dtype, shape, declared size) before any data is read, so a hostile or truncated file
gives one :class:`DoodleError` line instead of a traceback or a huge allocation.
"""

from __future__ import annotations

import ast
import lzma
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .classnames import read_classes_file
from .errors import DoodleError, described
from .files import atomic_write, open_regular, read_exact, split_member
from .record import (
    DEFAULT_MAX_PIXELS,
    MAX_CLASSES,
    NO_CLASS,
    DoodleRecord,
    onehot_from_label,
)
from .settings import decode_settings, encode_settings

_ARRAY_KEYS = ("image", "orig_image", "label", "color_doodles", "color_label", "doodles",
               "settings", "classes", "remapped")


# ----------------------------------------------------------------------------- reading
#: longest ``.npy`` header read (numpy writes about 128 bytes; its own limit is 10,000)
MAX_HEADER_BYTES = 4096
#: one array may hold at most this many bytes per allowed pixel (``max_pixels``) ...
MEMBER_BYTES_PER_PIXEL = 16
#: ... and all the arrays read from one file together at most this many
TOTAL_BYTES_PER_PIXEL = 32
_DTYPE_KINDS = "biufcUSO"
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
               NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError, MemoryError,
               OverflowError)


def engine_key(name):
    """The array key of a zip member the engine reads (``image``, ``0label``, ...), or None
    for any other member (extra arrays, folders, path tricks): those are never decompressed."""
    if not name.endswith(".npy"):
        return None
    key = name[:-4]
    return key if key.lstrip("0") in _ARRAY_KEYS else None


def parse_header(fh, key, path):
    """(shape, fortran_order, dtype) from an ``.npy`` header, its length bounded before it is
    read and its text parsed as a literal (never evaluated)."""
    magic = fh.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise DoodleError(path, f"array {key!r} is not a .npy array (bad magic)")
    major = magic[6]
    if major not in (1, 2, 3):
        raise DoodleError(path, f"array {key!r} has an unknown .npy format version {major}")
    size_bytes = fh.read(2 if major == 1 else 4)
    if len(size_bytes) < (2 if major == 1 else 4):
        raise DoodleError(path, f"array {key!r} has a truncated header")
    size = int.from_bytes(size_bytes, "little")
    if size > MAX_HEADER_BYTES:
        raise DoodleError(path, f"array {key!r} has a {size}-byte header (at most "
                                f"{MAX_HEADER_BYTES} are read)")
    text = fh.read(size)
    if len(text) < size:
        raise DoodleError(path, f"array {key!r} has a truncated header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
            raise ValueError("not a header dict")
        shape, fortran = header["shape"], header["fortran_order"]
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"bad shape {str(shape)[:40]}")
        if len(shape) > 32 or not isinstance(fortran, bool):
            raise ValueError("bad shape or fortran_order")
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (ValueError, SyntaxError, TypeError, KeyError, RecursionError, MemoryError,
            UnicodeDecodeError, OverflowError) as exc:
        raise DoodleError(path, f"array {key!r} has a corrupt header "
                                f"({described(exc, 80)})") from None
    return shape, fortran, dtype


def read_member(zf, name, path, allow_pickle, max_pixels, budget):
    """One array, read no further than its header declares; ``budget`` (a one-item list)
    holds the bytes the file may still use."""
    key = name[:-4]
    with zf.open(name) as fh:
        shape, fortran, dtype = parse_header(fh, key, path)
        if dtype.kind not in _DTYPE_KINDS:
            raise DoodleError(path, f"array {key!r} has an unsupported type {dtype}")
        if dtype.hasobject and not allow_pickle:
            raise DoodleError(path, f"array {key!r} holds Python objects (pickled data); it is not "
                                    "read unless you opt in with allow_pickle=True / --allow-pickle")
        if len(shape) >= 2 and shape[0] * shape[1] > max_pixels:
            raise DoodleError(path, f"array {key!r} declares {shape[0]}x{shape[1]} pixels, above the "
                                    f"limit of {max_pixels} (max_pixels / --max-pixels)")
        count = math.prod(shape)
        nbytes = count * max(dtype.itemsize, 1)
        if nbytes > MEMBER_BYTES_PER_PIXEL * max_pixels:
            raise DoodleError(path, f"array {key!r} declares {count} values of {dtype}, too large "
                                    f"to read (max_pixels / --max-pixels)")
        if nbytes > budget[0]:
            raise DoodleError(path, f"its arrays together declare more than "
                                    f"{TOTAL_BYTES_PER_PIXEL * max_pixels} bytes (limit set by "
                                    "max_pixels / --max-pixels)")
        budget[0] -= nbytes
        if dtype.hasobject:  # opted in: numpy's own reader (pickle)
            with zf.open(name) as again:
                return np.lib.format.read_array(again, allow_pickle=True)
        nbytes = count * dtype.itemsize
        buf, got = read_exact(fh, nbytes)
    if got < nbytes:
        raise DoodleError(path, f"array {key!r} is truncated ({got} of {nbytes} bytes)")
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def read_arrays(source, allow_pickle=False, max_pixels=DEFAULT_MAX_PIXELS, trials=True,
                name=None):
    """The arrays of an npz file that the engine uses (see :func:`engine_key`; earlier trials
    only with ``trials``) as a dict, with header checks and bounded reads; raises DoodleError.

    ``source`` is a path (opened only if it is a regular file) or an open, seekable binary
    file (a release-zip member read into memory); ``name`` is what messages call it."""
    if isinstance(source, (str, os.PathLike)):
        name = Path(source) if name is None else name
        with open_regular(source) as fh:
            return _read_npz(fh, name, allow_pickle, max_pixels, trials)
    return _read_npz(source, name, allow_pickle, max_pixels, trials)


def _read_npz(fh, path, allow_pickle, max_pixels, trials):
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            MemoryError) as exc:
        raise DoodleError(path, f"not a readable .npz (zip) file: {exc}") from None
    arrays = {}
    budget = [TOTAL_BYTES_PER_PIXEL * max_pixels]
    with zf:
        for member in dict.fromkeys(zf.namelist()):
            key = engine_key(member)
            if key is None or (not trials and key.startswith("0")):
                continue
            try:
                arrays[key] = read_member(zf, member, path, allow_pickle, max_pixels, budget)
            except DoodleError:
                raise
            except READ_ERRORS as exc:
                raise DoodleError(path, f"array {key!r} cannot be read "
                                        f"({described(exc, 100)})") from None
    if not arrays:
        raise DoodleError(path, "holds none of the arrays of a Doodler .npz file")
    return arrays


def read_classes(source, classes=None, allow_pickle=False, max_pixels=DEFAULT_MAX_PIXELS,
                 name=None):
    """The class names :func:`load_npz` would give the file, reading only its ``classes``
    array: ``classes`` when given, else the file's own, else a ``classes.txt`` beside it,
    else None.  ``source`` and ``name`` as for :func:`read_arrays`."""
    if classes is not None:
        return list(classes)
    path = source if name is None else name
    if isinstance(source, (str, os.PathLike)):
        with open_regular(source) as fh:
            stored = _read_classes_member(fh, path, allow_pickle, max_pixels)
    else:
        stored = _read_classes_member(source, path, allow_pickle, max_pixels)
    return stored if stored is not None else _classes_txt(path)


def _read_classes_member(fh, path, allow_pickle, max_pixels):
    try:
        with zipfile.ZipFile(fh) as zf:
            if "classes.npy" not in zf.namelist():
                return None
            budget = [TOTAL_BYTES_PER_PIXEL * max_pixels]
            arr = read_member(zf, "classes.npy", path, allow_pickle, max_pixels, budget)
    except DoodleError:
        raise
    except READ_ERRORS as exc:
        raise DoodleError(path, f"not a readable .npz (zip) file: {exc}") from None
    return _decode_classes(arr, path)


def _classes_txt(path):
    if path is None:
        return None
    cand = Path(path).with_name("classes.txt")
    return read_classes_file(cand, required=False) if cand.is_file() else None


def _decode_classes(arr, path):
    if arr is None:
        return None
    arr = np.asarray(arr)
    if arr.dtype.kind == "O" and arr.ndim == 1 and all(isinstance(c, str) for c in arr.tolist()):
        arr = arr.astype(str)  # names pickled as Python strings (read only with allow_pickle)
    if arr.dtype.kind not in "US" or arr.ndim != 1:
        raise DoodleError(path, f"'classes' must be a 1-D array of names, got {arr.dtype} {arr.shape}")
    if arr.size > MAX_CLASSES:
        raise DoodleError(path, f"'classes' names {arr.size} classes; at most {MAX_CLASSES} are supported")
    return [c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in arr.tolist()]


def _check_image(img, key, path):
    if img.dtype != np.uint8:
        raise DoodleError(path, f"{key!r} must be uint8, got {img.dtype}")
    if img.ndim == 2:
        if min(img.shape) < 1:
            raise DoodleError(path, f"{key!r} is empty (shape {img.shape})")
        return img
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise DoodleError(path, f"{key!r} must be HxW or HxWx3 (or 4 bands), got shape {img.shape}")
    if min(img.shape[:2]) < 1:
        raise DoodleError(path, f"{key!r} is empty (shape {img.shape})")
    return img


def label_from_stored(label, path, n_classes=None):
    """Stored label (one-hot HxWxK or 2-D raster) -> (0-based raster uint8, layout, K)."""
    label = np.asarray(label)
    if label.dtype.kind not in "uib":
        raise DoodleError(path, f"'label' must hold integers, got {label.dtype}")
    if label.ndim == 3:
        k = label.shape[2]
        if k == 0:
            return np.full(label.shape[:2], NO_CLASS, np.uint8), "onehot", 0
        if label.min() < 0 or label.max() > 1:
            raise DoodleError(path, f"one-hot 'label' holds values outside 0/1 "
                                    f"({int(label.min())}..{int(label.max())})")
        if k >= NO_CLASS:
            raise DoodleError(path, f"'label' has {k} planes; at most {NO_CLASS - 1} classes are supported")
        raster = np.argmax(label, axis=2).astype(np.uint8)
        raster[~label.any(axis=2)] = NO_CLASS
        return raster, "onehot", k
    if label.ndim == 2:
        lo, hi = (int(label.min()), int(label.max())) if label.size else (0, 0)
        limit = n_classes if n_classes is not None else NO_CLASS
        if lo < 0 or hi >= limit:
            raise DoodleError(path, f"2-D 'label' values {lo}..{hi} fall outside its "
                                    f"{limit} classes")
        return label.astype(np.uint8), "raster", None
    raise DoodleError(path, f"'label' must be HxWxK (one-hot) or HxW, got shape {label.shape}")


def _record_from_arrays(arrays, prefix, path, classes, era, date):
    get = lambda k: arrays.get(prefix + k)  # noqa: E731
    where = f"{path}" + (f" [trial {prefix!r}]" if prefix else "")
    if get("image") is None:
        raise DoodleError(where, "missing the 'image' array")
    if get("doodles") is None:
        raise DoodleError(where, "missing the 'doodles' array")
    image = _check_image(get("image"), "image", where)
    doodles = get("doodles")
    if doodles.ndim == 3 and doodles.shape[2] == 1:
        doodles = doodles[:, :, 0]
    if doodles.dtype.kind not in "ui" or doodles.ndim != 2:
        raise DoodleError(where, f"'doodles' must be a 2-D integer array, got {doodles.dtype} "
                                 f"{doodles.shape}")
    if doodles.shape != image.shape[:2]:
        raise DoodleError(where, f"shape mismatch: image is {image.shape[:2]}, doodles {doodles.shape}")
    if doodles.size and (doodles.min() < 0 or doodles.max() > 254):
        raise DoodleError(where, f"'doodles' values {int(doodles.min())}..{int(doodles.max())} out of range")
    doodles = doodles.astype(np.uint8, copy=False)

    file_classes = _decode_classes(get("classes"), where)
    source = "file" if file_classes is not None else None
    if classes is not None:
        file_classes, source = list(classes), "user"
    elif file_classes is None:
        file_classes = _classes_txt(path)
        source = "classes.txt" if file_classes is not None else None
    if file_classes is not None and len(file_classes) > MAX_CLASSES:
        raise DoodleError(where, f"{len(file_classes)} class names given; at most {MAX_CLASSES} "
                                 "are supported")
    if file_classes is not None and doodles.max(initial=0) > len(file_classes):
        raise DoodleError(where, f"doodle value {int(doodles.max())} is beyond the "
                                 f"{len(file_classes)} classes {file_classes}")

    label = layout = k = None
    if get("label") is not None:
        stored = get("label")
        if stored.shape[:2] != image.shape[:2]:
            raise DoodleError(where, f"shape mismatch: image is {image.shape[:2]}, label {stored.shape[:2]}")
        label, layout, k = label_from_stored(stored, where, len(file_classes) if file_classes else None)
        if file_classes is not None and k is not None and k > len(file_classes):
            raise DoodleError(where, f"one-hot 'label' has {k} planes but only {len(file_classes)} classes")

    raw = get("settings")
    settings = None
    if raw is not None:
        if np.asarray(raw).dtype.kind not in "uif":
            raise DoodleError(where, f"'settings' must hold real numbers, got {np.asarray(raw).dtype}")
        settings = decode_settings(raw, era=era, path=where, date=date)
    orig = get("orig_image")
    if orig is not None:
        orig = _check_image(orig, "orig_image", where)
        if orig.shape[:2] != image.shape[:2]:
            raise DoodleError(where, f"shape mismatch: image is {image.shape[:2]}, orig_image "
                                     f"{orig.shape[:2]}")
    return DoodleRecord(path=str(path) if path else None, image=image, doodles=doodles, label=label,
                        label_layout=layout, label_k=k, orig_image=orig,
                        color_doodles=get("color_doodles"), color_label=get("color_label"),
                        classes=file_classes, classes_source=source, settings=settings,
                        raw_settings=None if raw is None else np.asarray(raw, np.float64),
                        trial_prefix=prefix, remapped=_remapped(get("remapped")))


def _remapped(arr):
    """The ``remapped`` note doodle-engine's remap writes (one line of text), or None."""
    if arr is None or arr.dtype.kind not in "US" or arr.size != 1:
        return None
    return str(arr.reshape(-1)[0])[:500]


def trial_prefixes(keys):
    """The '0'-prefixes of earlier attempts present among ``keys``, newest ('0') first."""
    prefixes = set()
    for key in keys:
        stripped = key.lstrip("0")
        if stripped != key and stripped in _ARRAY_KEYS:
            prefixes.add(key[: len(key) - len(stripped)])
    return sorted(prefixes, key=len)


def load_npz(source, classes=None, era=None, date=None, allow_pickle=False,
             max_pixels=DEFAULT_MAX_PIXELS, trials=True, name=None) -> DoodleRecord:
    """A Doodler .npz (a path, or an open binary file named ``name``) -> DoodleRecord with its
    earlier trials; the parameters are those of :func:`doodle_engine.load`."""
    path = source if name is None else name
    arrays = read_arrays(source, allow_pickle=allow_pickle, max_pixels=max_pixels,
                         trials=trials, name=name)
    record = _record_from_arrays(arrays, "", path, classes, era, date)
    if trials:
        for prefix in trial_prefixes(arrays):
            if prefix + "image" in arrays and prefix + "doodles" in arrays:
                record.trials.append(_record_from_arrays(arrays, prefix, path, classes, era, date))
    return record


# ----------------------------------------------------------------------------- writing
def record_arrays(record: DoodleRecord):
    """The arrays Doodler would have written for ``record`` (newest result, unprefixed)."""
    out = {"image": record.image, "doodles": record.doodles}
    if record.orig_image is not None:
        out["orig_image"] = record.orig_image
    if record.label is not None:
        if record.label_layout == "raster":
            out["label"] = record.label.astype(np.uint8)
        else:
            out["label"] = onehot_from_label(record.label, record.label_k)
    if record.color_doodles is not None:
        out["color_doodles"] = record.color_doodles
    if record.color_label is not None:
        out["color_label"] = record.color_label
    if record.settings is not None:
        out["settings"] = encode_settings(record.settings)
    elif record.raw_settings is not None:
        out["settings"] = record.raw_settings
    if record.classes is not None and record.classes_source == "file":
        out["classes"] = np.array(record.classes)
    if record.remapped is not None:
        out["remapped"] = np.array(record.remapped)
    return out


#: the npz key naming the command and options an engine output was made with (an engine-only
#: array, ignored by Doodler and by :func:`load_npz`)
MADE_WITH = "doodle_engine_made_with"


def read_made_with(path):
    """The ``made_with`` text an engine output at ``path`` was saved with, or None (no such
    array, or not a readable npz).  Reads that one small array only."""
    try:
        with open_regular(path) as fh, zipfile.ZipFile(fh) as zf:
            if MADE_WITH + ".npy" not in zf.namelist():
                return None
            arr = read_member(zf, MADE_WITH + ".npy", path, False, 4096, [65536])
    except (DoodleError, *READ_ERRORS):
        return None
    return str(arr[()]) if arr.dtype.kind == "U" and arr.ndim == 0 else None


def save(record: DoodleRecord, path, overwrite=False, keep_trials=True, made_with=None):
    """Write ``record`` as a Doodler-compatible compressed npz, atomically.

    Parameters
    ----------
    record : DoodleRecord
    path : str or path
        The file to write (through a temporary file and a rename, with the permissions a
        normal write gives).
    overwrite : bool
        Replace an existing file.  The file the record was read from is never replaced.
    keep_trials : bool
        Write the earlier trials back under their ``0`` prefixes.
    made_with : str, optional
        The command and options that made this output, kept as the array
        :data:`MADE_WITH` (a batch run redoes an output made with other options).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import doodle_engine as de
    >>> from doodle_engine.example import make_example
    >>> rec = de.load(make_example("example.npz", 48, 64, overwrite=True))
    >>> de.save(rec, "copy.npz", overwrite=True).name
    'copy.npz'
    """
    if not isinstance(record, DoodleRecord):
        raise DoodleError(path, f"save takes a DoodleRecord (doodle_engine.load), got "
                                f"{type(record).__name__}")
    path = Path(path)
    # the file the record was read from: for a ``ZIP::member``, the zip
    source = split_member(record.path)[0] if record.path is not None else None
    if (source is not None and path.exists() and os.path.exists(source)
            and os.path.samefile(path, source)):
        raise DoodleError(path, "refusing to overwrite the input file it was read from")
    arrays = {}
    if keep_trials:
        for trial in record.trials:
            for key, val in record_arrays(trial).items():
                arrays[trial.trial_prefix + key] = val
    arrays.update(record_arrays(record))
    if made_with is not None:
        arrays[MADE_WITH] = np.array(str(made_with))
    return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), overwrite=overwrite)
