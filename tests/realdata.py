"""Where the tests find the real Doodler files: a local copy, or the published ones.

``tests/data/doodler_files.txt`` names each file the exact-rebuild tests use, its SHA-256 and
its public URL at the commit that added it (Doodleverse/dash_doodler's ``results/`` and
2320sharon/NPZ_JSON_Converter's ``example_files/``).  The data folder is
``$DOODLE_ENGINE_DATA`` (default: ``../shared/data`` beside the checkout), holding
``doodler/`` (and ``coasttrain/``).  When ``doodler/`` there holds files, it is used as it is
and ``test_realdata.py`` checks their hashes against the registry.  Otherwise the files are
fetched once with pooch into its cache (``python tests/realdata.py`` does it ahead of a run),
hash-checked; with no network the tests that need them skip, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pooch

ROOT = Path(__file__).resolve().parents[1]
ENV = "DOODLE_ENGINE_DATA"
DATA = Path(os.environ.get(ENV) or ROOT.parent / "shared" / "data")
REGISTRY = Path(__file__).resolve().parent / "data" / "doodler_files.txt"
#: where pooch keeps the fetched files (names as in the registry, so the results-folder date
#: each name carries still tells the era)
CACHE = pooch.os_cache("doodle-engine") / "doodler"


def registry():
    """The pooch registry: local names, their hashes and URLs."""
    fetcher = pooch.create(path=CACHE, base_url="", registry=None)
    fetcher.load_registry(REGISTRY)
    return fetcher


def local_folder():
    """``$DOODLE_ENGINE_DATA/doodler`` when it holds npz files, else None."""
    folder = DATA / "doodler"
    return folder if folder.is_dir() and any(folder.glob("*.npz")) else None


def fetch_all(timeout=20):
    """Every registry file in pooch's cache (downloaded and hash-checked where missing)."""
    fetcher = registry()
    download = pooch.HTTPDownloader(timeout=timeout, progressbar=False)
    for name in fetcher.registry:
        fetcher.fetch(name, downloader=download)
    return CACHE


def locate():
    """(folder of the real files, None) or (None, why there is none)."""
    local = local_folder()
    if local is not None:
        return local, None
    try:
        return fetch_all(), None
    except Exception as exc:  # no network, a proxy refusing, a changed file (hash): say which
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return None, (f"real Doodler files: none in {DATA / 'doodler'} (set {ENV}) and the "
                      f"download failed: {first}")


if __name__ == "__main__":
    print(fetch_all())
