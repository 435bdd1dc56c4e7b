"""File-system ground rules: open regular files only, read no more than asked, write atomically,
and show any file name as one line of text.

Every reader opens its input with :func:`open_regular` (a FIFO or a device is never opened)
and every writer goes through :func:`atomic_write` (a temporary file beside the target, then a
rename, with the permissions a plain ``open(path, "w")`` would give), so a run never leaves a
partial output.  A file name is bytes on POSIX: :func:`printable` shows one that is not valid
UTF-8, or that holds a newline or another control character, escaped (``bad\\xffbyte.npz``),
and :func:`from_printable` gives the name back.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import DoodleError

#: how an input inside a zip is named: ``ZIP::member`` (a Coast Train release record's npz)
MEMBER_SEP = "::"


def split_member(path):
    """``(zip file, member)`` for an input named ``ZIP::member``, else ``(path, None)``.

    Only a name whose part before the first ``::`` ends in ``.zip`` names a member, so an
    ordinary file whose name holds ``::`` stays a file."""
    text = str(path)
    head, sep, member = text.partition(MEMBER_SEP)
    if sep and head.lower().endswith(".zip"):
        return head, member
    return text, None


def short_name(path):
    """An input's name for a terminal table: its file name (``ZIP.zip::NAME.npz`` for a
    release-zip member)."""
    zip_path, member = split_member(path)
    if member is None:
        return Path(str(path)).name
    return f"{Path(zip_path).name}{MEMBER_SEP}{member.rsplit('/', 1)[-1]}"


def result_name(path, trial="", short=True):
    """One result's name in messages, figures and summaries: the input (its
    :func:`short_name`, or the path in full) and its earlier trial, if it is one
    (``x.npz [trial 00]``)."""
    name = short_name(path) if short else str(path)
    return f"{name} [trial {trial}]" if trial else name


def short_names(paths):
    """:func:`short_name` of each input, but inputs of the same file name in different folders
    (or zips) keep as many folders above it as tell them apart (``a/x.npz``, ``b/x.npz``)."""
    paths = [str(p) for p in paths]
    names = [short_name(p) for p in paths]
    groups = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    for rows in groups.values():
        if len({paths[i] for i in rows}) < 2:
            continue
        parts = {i: paths[i].replace(os.sep, "/").split("/") for i in rows}
        for depth in range(2, max(len(p) for p in parts.values()) + 1):
            tails = {i: "/".join(parts[i][-depth:]) for i in rows}
            if len(set(tails.values())) == len({paths[i] for i in rows}):
                break
        for i in rows:
            names[i] = tails[i]
    return names


def on_disk(path):
    """The file on disk that holds an input: the zip of a member, else the path itself."""
    return split_member(path)[0]


#: names with these are escaped by :func:`printable` (backslash itself: POSIX paths only)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_RE = re.compile(r"\\(\\|n|r|t|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")
_POSIX = os.sep == "/"


def _escape(ch, backslash):
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if ch == "\\":
        return "\\\\" if backslash else ch
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if ch == " " or ch.isprintable():
        return ch
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(name, backslash=True):
    """``name`` (a path, text or bytes) as one line of text that any stream can write: bytes
    that are not UTF-8 as ``\\xff``, newlines, tabs and other control characters escaped, and
    (``backslash``, on POSIX) a backslash doubled so that :func:`from_printable` gives the
    name back.  A plain name is returned as it is.  ``backslash=False`` for messages."""
    text = os.fsdecode(name) if isinstance(name, bytes) else str(name)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(ch, backslash and _POSIX) for ch in text)


def from_printable(text):
    """The file name :func:`printable` showed as ``text`` (the name itself on other systems
    than POSIX, where nothing is escaped)."""
    text = str(text)
    if not _POSIX or "\\" not in text:
        return text

    def back(m):
        code = m.group(1)
        if code == "\\":
            return code
        if code in "nrt":
            return {"n": "\n", "r": "\r", "t": "\t"}[code]
        value = int(code[1:], 16)
        return chr(0xDC00 + value) if code[0] == "x" and value >= 0x80 else chr(value)

    return _ESCAPE_RE.sub(back, text)


def read_exact(fh, n):
    """Up to ``n`` bytes (never more: a member cannot decompress beyond what was asked)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        chunk = fh.read(min(n - got, 1 << 24))
        if not chunk:
            break
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    return buf, got


def open_regular(path):
    """Open ``path`` for reading only if it is a regular file: a FIFO would block, a device
    could have side effects, so neither is ever opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DoodleError(path, "no such file or folder") from None
    except OSError as exc:
        raise DoodleError(path, f"cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DoodleError(path, "is a folder, not an .npz file")
    if not stat.S_ISREG(st.st_mode):
        raise DoodleError(path, "is not a regular file (a FIFO, device or socket); not opened")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise DoodleError(path, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the two looks
        os.close(fd)
        raise DoodleError(path, "is not a regular file; not opened")
    return os.fdopen(fd, "rb")


def _umask():
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_permissions(fd):
    """Give the open file ``fd`` the permissions a plain ``open(path, "w")`` would (0666 less
    the umask) instead of the 0600 of a file made by ``tempfile.mkstemp``."""
    os.fchmod(fd, 0o666 & ~_umask())


def atomic_write(path, write_fn, overwrite=True):
    """Run ``write_fn(fileobj)`` into a temporary file beside ``path``, then rename it.

    The file gets the permissions a plain ``open(path, "w")`` would give (0666 less the
    umask), not the 0600 of the temporary file it was written to.  A write that fails (a full
    or read-only disk) is one DoodleError naming ``path``, and leaves nothing behind."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DoodleError(path, "exists already (pass overwrite=True / --overwrite)")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part", dir=path.parent)
        normal_permissions(fd)
        with os.fdopen(fd, "wb") as fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise DoodleError(path, f"could not be written ({exc.strerror or exc})") from None
        raise
    return path
