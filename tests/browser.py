"""Headless Chromium for the tests of HTML pages: find it, screenshot a page, read its console.

Generic on purpose (the validate report and the atlas pages share it).  Chromium comes from the
machine's packages (Debian: ``apt-get install -y chromium``); ``CHROMIUM=/path`` picks another.
Each call runs a fresh browser with its own profile folder, so calls may run side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

#: why browser tests skip where no browser is found
SKIP_REASON = ("no Chromium found (apt-get install -y chromium, or set CHROMIUM=/path): "
               "the page cannot be opened in a real browser here")

_CONSOLE = re.compile(r":CONSOLE(?::\d+)?\] (.*)$")
_FILE_LOAD = re.compile(r"FileURLLoader::Start: (\S+)")


def find_chromium():
    """The path of a Chromium (or Chrome) executable, or None."""
    given = os.environ.get("CHROMIUM")
    if given:
        return given if shutil.which(given) else None
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(html_path, *flags, timeout=120):
    """Open ``html_path`` from disk in a fresh headless browser; (stdout, stderr)."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError(SKIP_REASON)
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", "--no-first-run", f"--user-data-dir={profile}",
                            *flags, url], capture_output=True, text=True, timeout=timeout,
                           check=False)
    if r.returncode != 0:
        raise RuntimeError(f"chromium exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout, r.stderr


def screenshot(html_path, png_path, width=1400, height=3000):
    """A PNG of the page as a ``width`` x ``height`` window shows it; returns its path."""
    png_path = Path(png_path)
    _run(html_path, f"--screenshot={png_path}", f"--window-size={width},{height}")
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png_path}")
    return png_path


def console_errors(html_path):
    """Every message the page wrote to the browser console while loading (uncaught errors,
    console calls: Chromium's log does not tell their levels apart, and a page without
    script should write none)."""
    _, err = _run(html_path, "--enable-logging=stderr", "--v=0", "--dump-dom")
    return [m.group(1) for m in map(_CONSOLE.search, err.splitlines()) if m]


def files_requested(html_path):
    """The file URLs the page asked for while loading, other than itself (a self-contained
    page asks for none)."""
    _, err = _run(html_path, "--enable-logging=stderr", "--v=1", "--dump-dom")
    own = Path(html_path).resolve().as_uri()
    found = [m.group(1) for m in map(_FILE_LOAD.search, err.splitlines()) if m]
    return [u for u in dict.fromkeys(found) if u != own]
