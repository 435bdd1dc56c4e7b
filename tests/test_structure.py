"""The package's structure as docs/development.md draws it: every module in the module map with
its layer, no import circle, no import from a lower layer up to a higher one, and a docstring
whose first line says each module's job.

The import graph is read from the source with ``ast``: imports at the top and inside
functions, relative and absolute, ``lazy.load("doodle_engine.x")`` and the submodules named
in ``lazy.attach(..., submod_attrs=...)``.  The map (the one layer table) is the table under
"## Module map" in docs/development.md: layers from the top down, in the order they first
appear there."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "doodle_engine"
MAP_DOC = ROOT / "docs" / "development.md"
ROW = re.compile(r"^\|\s*([a-z][a-z -]*?)\s*\|\s*`([a-z_.]+)`\s*\|\s*(.+?)\s*\|\s*$")


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def module_map():
    """{module: layer} and the layers from the top, from the table under "## Module map"."""
    text = MAP_DOC.read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    layers, where, jobs = [], {}, {}
    for line in section.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        layer, module, job = m.groups()
        if layer not in layers:
            layers.append(layer)
        assert module not in where, f"{module} is in the map twice"
        where[module], jobs[module] = layer, job
    return where, layers, jobs


def _absolute(module, level, name):
    """The absolute module of ``from <level dots><name> import ...`` inside ``module``."""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _targets(module, node):
    """The package modules one import node (or lazy-loading call) brings in."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if isinstance(node, ast.ImportFrom):
        base = _absolute(module, node.level, node.module) if node.level else node.module or ""
        return {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "load" and node.args and isinstance(node.args[0], ast.Constant):
            return {str(node.args[0].value)}
        if node.func.attr == "attach":
            found = set()
            for kw in node.keywords:
                if kw.arg in ("submodules", "submod_attrs"):
                    keys = kw.value.keys if isinstance(kw.value, ast.Dict) else kw.value.elts
                    found |= {f"{module}.{k.value}" for k in keys if isinstance(k, ast.Constant)}
            return found
    return set()


def import_graph():
    """{module: set of package modules it imports, anywhere in its source}."""
    graph = {}
    for module, path in MODULES.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            found |= _targets(module, node)
        graph[module] = {t for t in found if t.split(".")[0] == "doodle_engine" and t != module}
    return graph


def test_every_import_names_a_module_of_the_package():
    for module, targets in import_graph().items():
        assert targets <= set(MODULES), (module, targets - set(MODULES))


def test_the_module_map_lists_every_module_once_and_nothing_else():
    where, layers, jobs = module_map()
    assert len(layers) >= 5, layers
    assert set(where) == set(MODULES), (f"not in the map: {sorted(set(MODULES) - set(where))}; "
                                        f"in the map, not in the package: "
                                        f"{sorted(set(where) - set(MODULES))}")
    assert all(len(job) > 10 for job in jobs.values())


def test_no_import_circle():
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")
    assert set(order) == set(MODULES)


def test_no_import_from_a_lower_layer_up_to_a_higher_one():
    where, layers, _ = module_map()
    rank = {layer: i for i, layer in enumerate(layers)}  # 0: the top
    upward = [f"{m} ({where[m]}) imports {t} ({where[t]})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if rank[where[t]] < rank[where[m]]]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_its_job_in_its_first_docstring_line(module):
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc and len(doc.splitlines()[0].split()) >= 4, f"{module}: no docstring saying its job"
