"""The documentation's links: every relative link in README.md and docs/ names a file that
exists, and docs/README.md lists every page of docs/."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = [t for t in LINK.findall(page.read_text())
              if not re.match(r"^[a-z]+:", t) and not (page.parent / t).exists()]
    assert not broken, broken


def test_the_docs_index_lists_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    listed = set(LINK.findall(index))
    assert pages - {"README.md"} <= listed, sorted(pages - {"README.md"} - listed)
