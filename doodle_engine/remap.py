"""Merge, split and rename classes with one lookup table applied in a single pass.

Mappings come as a dict of names (old -> new), a dict of integers (0-based old -> new),
or a JSON mapping file in one of the two schemas Doodler users have:

* Coast Train: ``aliases`` (class name -> superclass name), ``classes`` (list),
  ``super_classes`` (list; a superclass's position is its new index);
* Doodler's example: ``super_classes`` (name -> 1-based integer, as string or int),
  ``classes`` (strings, usually "1", "2", ...), ``aliases`` (class -> superclass name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import DoodleError
from .io import NO_CLASS, DoodleRecord


@dataclass(frozen=True)
class Mapping:
    """A class mapping: ``aliases`` (source name -> target name) and the target classes in
    order; or ``index_map`` (0-based source -> target index) for integer mappings."""

    aliases: dict | None
    targets: list | None
    index_map: dict | None = None
    source: str = "dict"

    def table(self, classes=None, n=None, default=None):
        """Lookup table (uint8, 256 entries) for 0-based labels of ``classes``.

        Unmapped classes raise DoodleError unless ``default`` (a target name or index)."""
        if default is not None:
            _names_only([default], self.source, "the default target")
        table = np.arange(256, dtype=np.int64)
        table[:] = NO_CLASS
        if self.index_map is not None:
            n = n if n is not None else (len(classes) if classes is not None else 255)
            for old in range(n):
                if old in self.index_map:
                    table[old] = self.index_map[old]
                elif default is not None:
                    table[old] = int(default)
                else:
                    raise DoodleError(self.source, f"class {old} has no rule and no default was given")
        else:
            if classes is None:
                raise DoodleError(self.source, "a name mapping needs the labels' class names")
            for old, name in enumerate(classes):
                target = self._target_for(name, old)
                if target is None:
                    if default is None:
                        raise DoodleError(self.source, f"class {name!r} has no rule in the mapping "
                                                       "(pass a default)")
                    target = default
                table[old] = self._index(target)
        if (table[table != NO_CLASS] >= NO_CLASS).any() or (table < 0).any():
            raise DoodleError(self.source, "mapping targets must be class indices 0..254")
        return table.astype(np.uint8)

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
    if "aliases" in data:
        aliases = data["aliases"]
        supers = data.get("super_classes")
        if not isinstance(aliases, dict):
            raise DoodleError(source, "'aliases' must map class names to superclass names")
        _names_only(aliases.values(), source, "'aliases' targets")
        if isinstance(supers, list):
            _names_only(supers, source, "'super_classes'")
        if isinstance(supers, list):
            return Mapping(dict(aliases), [str(s) for s in supers], source=source)
        if isinstance(supers, dict):
            try:
                order = sorted(supers, key=lambda k: int(supers[k]))
                if [int(supers[k]) for k in order] != list(range(1, len(order) + 1)):
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise DoodleError(source, "'super_classes' must number the superclasses 1..N") from None
            return Mapping(dict(aliases), order, source=f"{source} (doodler schema)")
        targets = list(dict.fromkeys(aliases.values()))
        return Mapping(dict(aliases), targets, source=source)
    if all(isinstance(k, (int, np.integer)) for k in data) and all(
            isinstance(v, (int, np.integer)) for v in data.values()):
        return Mapping(None, None, {int(k): int(v) for k, v in data.items()}, source=source)
    if all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return Mapping(dict(data), list(dict.fromkeys(data.values())), source=source)
    raise DoodleError(source, "mapping must be names -> names, integers -> integers, or a mapping "
                              "file with 'aliases'")


def load_mapping(path_or_mapping):
    """A Mapping from a Mapping, a dict, or the path of a JSON mapping file."""
    if isinstance(path_or_mapping, Mapping):
        return path_or_mapping
    if isinstance(path_or_mapping, dict):
        return mapping_from_dict(path_or_mapping)
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


def apply_table(labels, table, out=None):
    """``table[labels]`` in one pass; works on any integer dtype and any shape (one image or
    a stack).  Values beyond the table raise DoodleError."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise DoodleError(None, f"labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(table)):
        raise DoodleError(None, f"label values {labels.min()}..{labels.max()} exceed the table")
    from .kernels.lut import apply_lut
    return apply_lut(labels, np.ascontiguousarray(table), out=out)


def remap(labels, mapping, classes=None, default=None, doodles=False):
    """Remap a 0-based label raster (or stack), or doodles (``doodles=True``: 0 stays 0 and
    v -> new(v-1)+1).  ``mapping``: dict, :class:`Mapping` or mapping-file path."""
    m = load_mapping(mapping)
    labels = np.asarray(labels)
    if classes is not None:
        n = len(classes)
    else:
        valid = labels[labels > 0] - 1 if doodles else labels[labels != NO_CLASS]
        n = int(valid.max()) + 1 if valid.size else 0
    table = m.table(classes, n=n, default=default)
    if doodles:
        dtable = np.zeros(256, np.uint8)
        dtable[1:] = (table[:255].astype(np.int64) + 1).clip(0, 255).astype(np.uint8)
        dtable[1:][table[:255] == NO_CLASS] = 0
        return apply_table(labels, dtable)
    return apply_table(labels, table)


def remap_record(record: DoodleRecord, mapping, default=None) -> DoodleRecord:
    """A new record with label, doodles, classes and colour images remapped consistently."""
    from .colorize import color_doodles, colorize

    m = load_mapping(mapping)
    if record.classes is None and m.index_map is None:
        raise DoodleError(record.path, "the file has no class names: pass classes (or --classes)")
    classes = record.classes
    table = m.table(classes, n=record.n_classes, default=default)
    new_classes = m.new_classes(classes)
    label = apply_table(record.label, table) if record.label is not None else None
    doodles = remap(record.doodles, m, classes=classes, default=default, doodles=True)
    k = None
    if label is not None and record.label_layout == "onehot":
        valid = label != NO_CLASS
        k = int(label[valid].max()) + 1 if valid.any() else 0
    return replace(record, label=label, label_k=k, doodles=doodles, classes=new_classes,
                   classes_source="file" if new_classes else record.classes_source,
                   color_label=None if label is None else colorize(label, new_classes),
                   color_doodles=color_doodles(doodles, new_classes),
                   trials=[remap_record(t, m, default) for t in record.trials])
