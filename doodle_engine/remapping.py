"""Merge, split and rename classes with one lookup table applied in a single pass.

``doodle_engine.remap`` is this module's :func:`remap`; :func:`remap_record` remaps a whole
record (label, doodles, classes and colours) and :func:`load_mapping` reads a mapping file.

Mappings come as a dict of names (old -> new), a dict of integers (0-based old -> new),
or a JSON mapping file in one of the two schemas Doodler users have:

* Coast Train: ``aliases`` (class name -> superclass name), ``classes`` (list),
  ``super_classes`` (list; a superclass's position is its new index);
* Doodler's example: ``super_classes`` (name -> 1-based integer, as string or int),
  ``classes`` (strings, usually "1", "2", ...), ``aliases`` (class -> superclass name).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .classnames import class_list
from .colorize import color_doodles, colorize
from .errors import DoodleError, RemapWarning
from .kernels import lut as klut
from .record import NO_CLASS, DoodleRecord


@dataclass(frozen=True)
class Mapping:
    """A class mapping: ``aliases`` (source name -> target name) and the target classes in
    order; or ``index_map`` (0-based source -> target index) for integer mappings."""

    aliases: dict | None
    targets: list | None
    index_map: dict | None = None
    source: str = "dict"
    classes: list | None = None  # the source classes a mapping file lists (Coast Train)

    def lookup(self, classes=None, default=None, where=None):
        """``(table, flags, classes)``: the 256-entry uint8 lookup table for 0-based labels,
        the values that have no rule (``flags``, 1 = must not occur), and the class names
        used (``classes``, else the mapping file's own list, else None).

        ``NO_CLASS`` stays ``NO_CLASS``.  A class with no rule maps to ``default`` (a target
        name or index) when given, else is flagged; with class names, values beyond the
        classes are flagged too."""
        self.check_default(default, where)
        classes = classes if classes is not None else self.classes
        table = np.full(256, NO_CLASS, np.int64)
        flags = np.zeros(256, np.uint8)
        if self.index_map is not None:
            for old in range(NO_CLASS):
                if old in self.index_map:
                    table[old] = self.index_map[old]
                elif default is not None:
                    table[old] = self._index(default)
                else:
                    flags[old] = 1
            if classes is not None:
                flags[len(classes):NO_CLASS] = 1
        else:
            if classes is None:
                raise DoodleError(where or self.source,
                                  "a name mapping needs the labels' class names (classes=)")
            if len(classes) > NO_CLASS:
                raise DoodleError(where or self.source, f"{len(classes)} classes: at most 255")
            for old, name in enumerate(classes):
                target = self._target_for(name, old)
                if target is None and default is not None:
                    target = default
                if target is None:
                    flags[old] = 1
                else:
                    table[old] = self._index(target)
            flags[len(classes):NO_CLASS] = 1
        if (table[:NO_CLASS][flags[:NO_CLASS] == 0] >= NO_CLASS).any() or (table < 0).any():
            raise DoodleError(self.source, "mapping targets must be class indices 0..254")
        return table.astype(np.uint8), flags, classes

    def check_default(self, default, where=None):
        """A DoodleError when ``default`` cannot be the target of classes with no rule: a name
        mapping's is one of its target names (or an index into them), an integer mapping's
        a class index 0..254."""
        if default is None:
            return
        _names_only([default], self.source, "the default target")
        if self.targets is not None:
            ok = (default in self.targets if isinstance(default, str)
                  else 0 <= default < len(self.targets))
            if not ok:
                raise DoodleError(where or self.source, f"default {default!r} is not among its "
                                                        f"target classes {list(self.targets)}")
        elif isinstance(default, str) or not 0 <= default < NO_CLASS:
            raise DoodleError(where or self.source, f"default {default!r}: an integer mapping's "
                                                    "default is a class index 0..254")

    def unmapped(self, value, classes=None, what="label value", own=True):
        """The message for a label value with no rule (``what``: how the value was given, a
        doodle counting from 1; ``own``: the classes are the labels' own, not the mapping
        file's list)."""
        shown = value + 1 if what == "doodle value" else value
        if classes is not None and value >= len(classes):
            whose = (f"the labels have {len(classes)} classes" if own else
                     f"read through the mapping's own list of {len(classes)} classes; "
                     "classes= gives the labels' own")
            return f"{what} {shown} is not a class ({whose}: {list(classes)})"
        name = repr(classes[value]) if classes is not None else str(value)
        return (f"class {name} ({what} {shown}) has no rule in the mapping "
                f"{self.source} (pass default= / --default)")

    def target_name(self, name, default=None):
        """The target class a class *name* goes to, by name alone (a Doodler-schema rule
        keyed by a class's number has no name to match): its rule, else ``default``, else
        None; a target given by index is named.  A name mapping's only (``targets``), its
        rules checked by :meth:`check_targets`."""
        target = self.aliases.get(name, default)
        return self.targets[self._index(target)] if target is not None else None

    def check_targets(self):
        """A DoodleError for the first rule whose target is not one of the mapping's target
        classes (a name not among them, an index beyond them)."""
        for name, target in self.aliases.items():
            ok = (0 <= target < len(self.targets) if isinstance(target, (int, np.integer))
                  else target in self.targets)
            if not ok:
                raise DoodleError(self.source, f"class {name!r} goes to {target!r}, which is not "
                                               f"among its target classes {list(self.targets)}")

    @property
    def keyed_by_number(self):
        """A Doodler-schema mapping whose rules name classes by number ("1", "2", ...)."""
        return self.source_schema == "doodler" and any(k.isdigit() for k in self.aliases)

    def _target_for(self, name, old):
        if name in self.aliases:
            return self.aliases[name]
        if str(old + 1) in self.aliases and self.source_schema == "doodler":
            return self.aliases[str(old + 1)]
        return None

    @property
    def source_schema(self):
        return "doodler" if self.source.endswith("(doodler schema)") else "other"

    def _index(self, target):
        if isinstance(target, (int, np.integer)):
            return int(target)
        if target in self.targets:
            return self.targets.index(target)
        raise DoodleError(self.source, f"target class {target!r} is not among {self.targets}")

    def new_classes(self, classes=None):
        if self.targets is not None:
            return list(self.targets)
        if classes is None:
            return None
        n = max(self.index_map.values(), default=-1) + 1
        return [str(i) for i in range(n)]


def mapping_from_dict(data, source="dict"):
    """Build a :class:`Mapping` from a mapping-file dict or a plain dict."""
    if not isinstance(data, dict):
        raise DoodleError(source, "a mapping must be a JSON object / dict")
    if not data:
        raise DoodleError(source, "the mapping is empty: it has no rules")
    if "aliases" in data:
        aliases = data["aliases"]
        supers = data.get("super_classes")
        if not isinstance(aliases, dict):
            raise DoodleError(source, "'aliases' must map class names to superclass names")
        _names_only(aliases.values(), source, "'aliases' targets")
        if isinstance(supers, list):
            _names_only(supers, source, "'super_classes'")
        listed = data.get("classes")
        listed = [str(c) for c in listed] if isinstance(listed, list) else None
        if isinstance(supers, list):
            return Mapping(dict(aliases), [str(s) for s in supers], source=source,
                           classes=listed)
        if isinstance(supers, dict):
            try:
                order = sorted(supers, key=lambda k: int(supers[k]))
                if [int(supers[k]) for k in order] != list(range(1, len(order) + 1)):
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise DoodleError(source, "'super_classes' must number the superclasses 1..N") from None
            return Mapping(dict(aliases), order, source=f"{source} (doodler schema)",
                           classes=listed)
        targets = list(dict.fromkeys(aliases.values()))
        return Mapping(dict(aliases), targets, source=source, classes=listed)
    if all(_is_index(k, as_text=True) for k in data) and all(
            _is_index(v) for v in data.values()):
        index_map = {int(k): int(v) for k, v in data.items()}
        if len(index_map) < len(data):
            raise DoodleError(source, "an integer mapping gives one class two rules (a key "
                                      "written both as a number and as text, 0 and \"0\")")
        if not all(0 <= i < NO_CLASS for pair in index_map.items() for i in pair):
            raise DoodleError(source, f"an integer mapping's classes are indices 0..{NO_CLASS - 1}")
        return Mapping(None, None, index_map, source=source)
    if all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return Mapping(dict(data), list(dict.fromkeys(data.values())), source=source)
    raise DoodleError(source, "mapping must be names -> names, integers -> integers (in a JSON "
                              "file: {\"0\": 0, \"1\": 0}), or a mapping file with 'aliases'")


def _is_index(value, as_text=False):
    """An integer (not a bool); with ``as_text``, also digits as text: JSON keys are text, so
    ``{"0": 0, "1": 0}`` (a file, or ``json.load`` of one) is an integer mapping."""
    if as_text and isinstance(value, str):
        return value.isascii() and value.isdigit()
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def load_mapping(path_or_mapping):
    """Read a class mapping.

    Parameters
    ----------
    path_or_mapping : Mapping, dict or path
        A :class:`Mapping`, a dict (names -> names, or 0-based integers -> integers) or the
        path of a JSON mapping file (Coast Train's or Doodler's schema).

    Returns
    -------
    Mapping

    Examples
    --------
    >>> from doodle_engine.remapping import load_mapping
    >>> load_mapping({"surf": "water", "water": "water"}).targets
    ['water']
    """
    if isinstance(path_or_mapping, Mapping):
        return path_or_mapping
    if isinstance(path_or_mapping, dict):
        return mapping_from_dict(path_or_mapping)
    if not isinstance(path_or_mapping, (str, os.PathLike)):
        raise DoodleError(None, "a mapping is a dict, a Mapping or the path of a JSON mapping "
                                f"file, got {type(path_or_mapping).__name__}")
    path = Path(path_or_mapping)
    if not path.is_file():  # a FIFO would block, a device is never read
        raise DoodleError(path, "cannot read mapping file: " + (
            "not a regular file" if path.exists() else "no such file"))
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise DoodleError(path, f"mapping file is larger than {MAX_MAPPING_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DoodleError(path, f"cannot read mapping file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DoodleError(path, f"mapping file is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise DoodleError(path, "mapping file is nested too deeply to be a mapping") from None
    except json.JSONDecodeError as exc:
        raise DoodleError(path, f"mapping file is not valid JSON: {exc}") from None
    return mapping_from_dict(data, source=str(path))


#: a mapping file larger than this is not a mapping
MAX_MAPPING_BYTES = 16 * 2**20


def _names_only(values, source, what):
    """Refuse a name that is not text or an integer (a NaN, a list, a nested object), before
    anything is written with it."""
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (str, int, np.integer)):
            raise DoodleError(source, f"{what} must be class names (text) or integers, got "
                                      f"{str(v)[:40]!r} ({type(v).__name__})")


def _integer_labels(labels):
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise DoodleError(None, f"labels must be integers, got {labels.dtype}")
    return labels


def remap(labels, mapping, classes=None, default=None, doodles=False, path=None, warn=True):
    """Merge, split or rename the classes of a label raster in one pass.

    Parameters
    ----------
    labels : array of int
        0-based class indices (``NO_CLASS`` = 255 for no class), one image or a stack, any
        integer dtype; or Doodler doodles with ``doodles=True`` (0 = not doodled, v = class
        v-1).
    mapping : dict, Mapping or path
        Names -> names, 0-based integers -> integers, or a mapping JSON file (Coast Train's
        or Doodler's schema, see the module's notes).
    classes : list of str or str, optional
        The labels' class names, needed by name mappings.  When omitted, the ``classes``
        list of a mapping file is used (Coast Train's files carry one).
    default : str or int, optional
        Target for classes with no rule; without it such a class present in ``labels`` is an
        error naming it.
    doodles : bool
        Remap doodles: 0 stays 0, v -> new(v-1)+1.
    path : str, optional
        The file the labels came from, named in error messages.
    warn : bool
        Warn (``RemapWarning``) when a Doodler-schema mapping is applied to ``classes`` by
        position, as :func:`remap_record` does.

    Returns
    -------
    numpy.ndarray of uint8
        The remapped labels, same shape (``NO_CLASS`` stays ``NO_CLASS``).

    Raises
    ------
    DoodleError
        A class present in ``labels`` with no rule (and no ``default``), a value that is not
        a class, or a bad mapping.

    Notes
    -----
    The compiled lookup runs on Numba's threads (GNU OpenMP's on most Linux installs): after
    a call, start worker processes with ``spawn`` or ``forkserver``, not ``fork`` (a forked
    child cannot use them).

    Examples
    --------
    >>> import numpy as np
    >>> import doodle_engine as de
    >>> labels = np.array([[0, 1], [2, 255]], np.uint8)
    >>> de.remap(labels, {"water": "water", "surf": "water", "sand": "land"},
    ...          classes=["water", "surf", "sand"])
    array([[  0,   0],
           [  1, 255]], dtype=uint8)
    """
    m = load_mapping(mapping)
    labels = _integer_labels(labels)
    given = class_list(classes)
    table, flags, classes = m.lookup(given, default, where=path)
    for text in by_number(m, given) if warn else []:
        warnings.warn(f"{path or 'labels'}: {text}", RemapWarning, stacklevel=2)
    if doodles:
        dtable = np.zeros(256, np.uint8)
        dflags = np.zeros(256, np.uint8)
        dtable[1:] = np.where(table[:255] == NO_CLASS, 0, table[:255].astype(np.int64) + 1)
        dflags[1:] = flags[:255]
        out, found = klut.apply_lut_checked(labels, dtable, dflags)
    else:
        out, found = klut.apply_lut_checked(labels, table, flags)
    if found:  # the rare path: find which value, to name it
        values = np.unique(labels)
        if doodles:
            values = values[values > 0] - 1
        bad = [int(v) for v in values if not 0 <= v < NO_CLASS or flags[int(v)]]
        bad = [v for v in bad if v != NO_CLASS] or bad
        v = bad[0]
        if not 0 <= v <= NO_CLASS:
            raise DoodleError(path, f"label value {v} is outside 0..255")
        raise DoodleError(path, m.unmapped(v, classes, "doodle value" if doodles else "label value",
                                           own=given is not None))
    return out.reshape(labels.shape)  # a 0-d input stays 0-d


def remap_record(record: DoodleRecord, mapping, default=None, warn=True) -> DoodleRecord:
    """A new record with label, doodles, classes and colour images remapped consistently.

    Parameters
    ----------
    record : DoodleRecord
    mapping : dict, Mapping or path
        As for :func:`remap`.  A file without class names uses the mapping file's ``classes``.
    default : str or int, optional
        Target for classes with no rule.
    warn : bool
        Give the warnings below (a caller that reports them itself turns them off).

    Returns
    -------
    DoodleRecord
        With the new classes; earlier trials remapped too.  The input is not changed.

    Warns
    -----
    RemapWarning
        A Doodler-schema mapping applied by position (it names none of the classes), or a
        target name one edit from another class (:func:`near_names`).

    Examples
    --------
    >>> import doodle_engine as de
    >>> from doodle_engine.remapping import remap_record
    >>> rec = de.load("example.npz")                                     # doctest: +SKIP
    >>> new = remap_record(rec, {"water": "water", "surf": "water", "sand": "land"})  # doctest: +SKIP
    """
    m = load_mapping(mapping)
    out = _remapped(record, m, default)
    for text in (by_number(m, record.classes) + near_names(m, record.classes, default)
                 if warn else []):
        warnings.warn(f"{record.path or 'record'}: {text}", RemapWarning, stacklevel=2)
    return out


def _remapped(record, m, default):
    """:func:`remap_record` of a read mapping, without its warnings (given once for a file,
    not again for each earlier trial)."""
    classes = record.classes if record.classes is not None else m.classes
    if classes is None and m.index_map is None:
        raise DoodleError(record.path, "the file has no class names: pass classes (or --classes)")
    where = record.path if record.path is not None else None
    new_classes = m.new_classes(classes)
    label = None
    if record.label is not None:
        label = remap(record.label, m, classes=classes, default=default, path=where, warn=False)
    doodles = remap(record.doodles, m, classes=classes, default=default, doodles=True, path=where,
                    warn=False)
    k = None
    if label is not None and record.label_layout == "onehot":
        valid = label != NO_CLASS
        k = int(label[valid].max()) + 1 if valid.any() else 0
    return replace(record, label=label, label_k=k, doodles=doodles, classes=new_classes,
                   classes_source="file" if new_classes else record.classes_source,
                   color_label=None if label is None else colorize(label, new_classes),
                   color_doodles=color_doodles(doodles, new_classes, image=record.image),
                   trials=[_remapped(t, m, default) for t in record.trials],
                   remapped=remap_note(record, classes, new_classes))


def remap_note(record, classes, new_classes):
    """One line saying what a remapped record is (kept in its npz as ``remapped``): its
    label is the remapped stored label, not one Doodler made from these doodles."""
    source = Path(record.path).name if record.path else "a record"
    before = f" (classes {', '.join(classes)} -> {', '.join(new_classes)})" if (
        classes and new_classes) else ""
    earlier = f", after: {record.remapped}" if record.remapped else ""
    return f"remapped by doodle-engine from {source}{before}{earlier}"


#: names shorter than this are not compared (any two letters are one edit apart)
NEAR_NAME_LENGTH = 3


def one_edit_apart(a, b):
    """True when ``b`` is ``a`` with one letter added, removed or changed (``lnd``/``land``)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    return a[i + (len(a) == len(b)):] == b[i + 1:]


def by_number(mapping, classes):
    """Warnings for the classes a Doodler-schema mapping reaches by number, not by name (its
    aliases are keyed "1", "2", ...: class *i* of the labels takes the rule of ``str(i + 1)``)."""
    m = load_mapping(mapping)
    if m.aliases is None or not classes:
        return []
    taken = [f"{name!r} as {i + 1}" for i, name in enumerate(classes)
             if name not in m.aliases and str(i + 1) in m.aliases and m.source_schema == "doodler"]
    if not taken:
        return []
    return [f"{m.source} names none of these classes, so its rules keyed by number were "
            f"applied by position: {', '.join(taken)} (check that the numbers mean these classes)"]


def _two_words(a, b):
    """Names that differ in their first letter alone, other than by case (``land`` and
    ``sand``): two words, not a slip (``Water`` beside ``water`` is one)."""
    return a[1:] == b[1:] and a[:1].lower() != b[:1].lower()


def near_names(mapping, classes=None, default=None):
    """Warnings for target names that look like typos: a *new* target (no source class of
    that name) one edit away from another target, or from a class that does not become it
    (``{"sand": "lnd"}`` beside ``land``; Doodler's example merging ``sand`` into ``land``
    is no typo).  Names shorter than :data:`NEAR_NAME_LENGTH` are not compared, nor names
    that differ in their first letter alone (``land`` beside ``sand``: two words;
    ``Water`` beside ``water`` is still said).

    Parameters
    ----------
    mapping : dict, Mapping or path
    classes : list of str, optional
        The labels' class names (besides those the mapping itself names).
    default : str, optional
        The target of classes with no rule (a target too).

    Returns
    -------
    list of str
    """
    m = load_mapping(mapping)
    if m.targets is None:
        return []
    targets = list(dict.fromkeys([*m.targets, *([default] if isinstance(default, str) else [])]))
    into = {name: m.aliases.get(name) for name in set(m.aliases) | set(m.classes or [])}
    into.update({name: m._target_for(name, i) for i, name in enumerate(classes or [])})
    out, said = [], set()
    for target in targets:
        if target in into:
            continue
        for other in sorted(set(targets) | {n for n, t in into.items() if t != target}):
            if frozenset((target, other)) in said:
                continue  # 'lnd' beside 'land' is one warning, not one each way
            if (min(len(target), len(other)) >= NEAR_NAME_LENGTH and one_edit_apart(target, other)
                    and not _two_words(target, other)):
                said.add(frozenset((target, other)))
                both_new = other in targets and other not in into
                out.append(f"target classes {target!r} and {other!r} are one edit apart: a typo? "
                           "(as written they make two classes)" if both_new else
                           f"target class {target!r} is one edit from {other!r}: a typo? "
                           f"(as written it makes a new class {target!r})")
    return out


def moves(record, mapping, default=None):
    """What the remap of ``record``'s stored label does, class by class.

    Returns
    -------
    list of (source class, target class, pixels)
        For every class present in the stored label (empty without one), its pixels and
        the class they become.

    Examples
    --------
    >>> import numpy as np
    >>> from doodle_engine.record import DoodleRecord
    >>> from doodle_engine.remapping import moves
    >>> rec = DoodleRecord(None, np.zeros((1, 3, 3), np.uint8), np.zeros((1, 3), np.uint8),
    ...                    label=np.array([[0, 1, 1]], np.uint8), classes=["water", "surf"])
    >>> moves(rec, {"water": "water", "surf": "water"})
    [('water', 'water', 1), ('surf', 'water', 2)]
    """
    m = load_mapping(mapping)
    if record.label is None:
        return []
    classes = record.classes if record.classes is not None else m.classes
    names = classes or [str(i) for i in range(NO_CLASS)]
    table, flags, _ = m.lookup(classes, default, where=record.path)
    new = m.new_classes(classes) or [str(i) for i in range(NO_CLASS)]
    counts = np.bincount(record.label.ravel(), minlength=256)
    present = [i for i in range(NO_CLASS) if counts[i]]
    for i in present:  # as remap(): only a class the label holds needs a rule
        if flags[i]:
            raise DoodleError(record.path, m.unmapped(i, classes))
    return [(names[i], new[table[i]], int(counts[i])) for i in present]
