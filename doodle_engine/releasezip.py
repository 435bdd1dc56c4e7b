"""Coast Train release zips read in place: their npz members and metadata CSVs, never unpacked.

A release record ships as ``{source}_{classes}_{version}.zip`` holding one metadata CSV and a
folder of Doodler ``.npz`` files.  Each npz member is an input named ``ZIP::member`` (for
example ``Landsat8_12_001.zip::npz/x.npz``).  A member gets the bounds of a loose file (its
declared size within the pixel budget, checked before anything is decompressed; then the npz
reader's header checks and no unpickling) and a member name that could leave a folder
(``..``, an absolute path, a drive) is refused.  The zip is opened read-only.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path, PurePosixPath

from .errors import DoodleError, described
from .files import MEMBER_SEP, open_regular, read_exact, split_member
from .npz import READ_ERRORS, TOTAL_BYTES_PER_PIXEL, load_npz
from .record import DEFAULT_MAX_PIXELS

#: the most bytes one metadata CSV member may hold
MAX_CSV_BYTES = 64 * 2**20
#: the most members a release zip may list (the largest Coast Train record holds ~600)
MAX_MEMBERS = 200_000


def is_zip_name(path):
    """Whether ``path`` names a zip file by its suffix (``.zip``, any case)."""
    return str(path).lower().endswith(".zip")


def member_name(zip_path, member):
    """The input name of one member: ``ZIP::member``."""
    return f"{zip_path}{MEMBER_SEP}{member}"


def unsafe_member(member):
    """Why a member name is refused (a path that could leave its folder), or None."""
    if "\\" in member or "\0" in member:
        return "holds a backslash or NUL byte"
    pure = PurePosixPath(member)
    if pure.is_absolute() or (len(member) > 1 and member[1] == ":"):
        return "is an absolute path"
    if ".." in pure.parts:
        return "climbs out of its folder ('..')"
    return None


def _zipfile(fh, zip_path):
    try:
        zf = zipfile.ZipFile(fh)
        infos = zf.infolist()
    except READ_ERRORS as exc:
        raise DoodleError(zip_path, f"is not a readable zip file "
                                    f"({described(exc, 100)})") from None
    if len(infos) > MAX_MEMBERS:
        raise DoodleError(zip_path, f"lists {len(infos)} members, more than {MAX_MEMBERS}")
    return zf


def list_members(zip_path):
    """The npz and CSV members of a release zip: ``(npz names, csv names)``, each sorted.

    Raises DoodleError when the zip cannot be read (a truncated or corrupt file)."""
    with open_regular(zip_path) as fh, _zipfile(fh, zip_path) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    npz = sorted(n for n in names if n.lower().endswith(".npz"))
    csv = sorted(n for n in names if n.lower().endswith(".csv"))
    return npz, csv


def _member_bytes(zip_path, member, limit, what):
    """The bytes of one member, refused before decompressing when its declared size is above
    ``limit``, and never more than declared (a lying header gives a truncated member)."""
    where = member_name(zip_path, member)
    reason = unsafe_member(member)
    if reason:
        raise DoodleError(where, f"member name {reason}; not read")
    with open_regular(zip_path) as fh, _zipfile(fh, zip_path) as zf:
        info = _find_member(zf, zip_path, member)
        if info.file_size > limit:
            raise DoodleError(where, f"{what} declares {info.file_size} bytes, above the limit of "
                                     f"{limit} (set by max_pixels / --max-pixels)")
        try:
            with zf.open(info) as src:
                buf, got = read_exact(src, info.file_size)
        except READ_ERRORS as exc:
            raise DoodleError(where, f"cannot be read from the zip "
                                     f"({described(exc, 100)})") from None
    if got < info.file_size:
        raise DoodleError(where, f"is truncated ({got} of {info.file_size} bytes)")
    return bytes(buf)


def _find_member(zf, zip_path, member):
    """The zip entry ``member`` names: its full name, or a bare file name that one member of
    the zip has (tables show members as ``ZIP::name.npz``, so that name can be typed back)."""
    where = member_name(zip_path, member)
    try:
        return zf.getinfo(member)
    except KeyError:
        pass
    same = [i for i in zf.infolist() if "/" not in member
            and PurePosixPath(i.filename).name == member] if member else []
    if len(same) == 1:
        return same[0]
    if same:
        raise DoodleError(where, f"{len(same)} members of the zip have this name; give the full "
                                 f"one, e.g. {member_name(zip_path, same[0].filename)}")
    raise DoodleError(where, "no such member in the zip")


def open_member(path, max_pixels=DEFAULT_MAX_PIXELS):
    """An npz member ``ZIP::member`` as an in-memory binary file (bounded as a loose file's
    arrays are: at most ``TOTAL_BYTES_PER_PIXEL * max_pixels`` bytes)."""
    zip_path, member = split_member(path)
    data = _member_bytes(zip_path, member, TOTAL_BYTES_PER_PIXEL * max_pixels, "the npz member")
    return io.BytesIO(data)


def load_member(path, max_pixels=DEFAULT_MAX_PIXELS, **options):
    """A Doodler npz inside a release zip -> DoodleRecord (options as :func:`load_npz`)."""
    return load_npz(open_member(path, max_pixels), max_pixels=max_pixels, name=str(path),
                    **options)


def read_csv_member(zip_path, member):
    """The bytes of a metadata CSV member (at most :data:`MAX_CSV_BYTES`)."""
    return _member_bytes(zip_path, member, MAX_CSV_BYTES, "the CSV member")


def member_size(path):
    """The declared (uncompressed) size of a member, or -1 when it cannot be read."""
    zip_path, member = split_member(path)
    try:
        with open_regular(zip_path) as fh, zipfile.ZipFile(fh) as zf:
            return zf.getinfo(member).file_size
    except (DoodleError, KeyError) + READ_ERRORS:
        return -1


def record_name(zip_path):
    """The release's name of a record: the zip's file name without ``.zip``
    (``Landsat8_12_001``)."""
    name = PurePosixPath(str(zip_path).replace("\\", "/")).name
    return name[:-4] if name.lower().endswith(".zip") else name


def record_of(path):
    """The Coast Train record an input belongs to: the release zip's name for a member
    (``Landsat8_12_001``), the record folder for a path like ``.../datasetC_S2/npz/x.npz``,
    else the parent folder's name (a relative path is taken from the working folder)."""
    zip_path, member = split_member(path)
    if member is not None:
        return record_name(zip_path)
    parent = Path(os.path.abspath(path)).parent
    return parent.parent.name if parent.name == "npz" else parent.name
