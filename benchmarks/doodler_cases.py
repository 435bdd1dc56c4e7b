"""Cases from Doodler's own history: the PNG-era sessions in dash_doodler's ``results/``.

Doodler's repository holds, at a few commits, the files its app wrote during real sessions
before results were saved as ``.npz`` (October 2020, March 2021): per image a doodle PNG
(``*_annotations*.png``), a greyscale label PNG and a colour label PNG, with the image in
``assets/`` (or ``to_label/``) and the class names in ``classes.txt``.  This script lists them
from a local bare mirror of ``Doodleverse/dash_doodler`` and writes chosen sessions into a folder
the caller names (never into this repository); nothing from the mirror is committed.

    python benchmarks/doodler_cases.py --list [--mirror PATH]
    python benchmarks/doodler_cases.py --build DIR [--session NAME ...] [--mirror PATH]

Each built session is ``DIR/<session>/<results folder>/`` holding the images, the PNGs,
``classes.txt`` and ``cases.json`` (commit, date, source paths, what was left out and why);
``doodle_engine.png.read_png_session`` reads that folder as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

DEFAULT_MIRROR = "/work/.mirror/Doodleverse+dash_doodler/repo"
IMAGE_DIRS = ("assets", "to_label", "labeled")
IMAGE_EXTS = (".jpg", ".jpeg", ".JPG", ".png")
_NAME_RE = re.compile(r"^(?P<stem>.+?)_(?P<kind>annotations|label_greyscale|label)"
                      r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}(?:-\d{2})?)?(?:_(?P<id>.+))?\.png$")


class MirrorError(RuntimeError):
    pass


def _git(mirror, *args, binary=False):
    proc = subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True)
    if proc.returncode != 0:
        raise MirrorError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout if binary else proc.stdout.decode()


def _check_mirror(mirror):
    mirror = Path(mirror)
    if not mirror.is_dir():
        raise MirrorError(f"{mirror}: no such folder (fetch Doodleverse/dash_doodler first)")
    _git(mirror, "rev-parse", "HEAD")
    return mirror


def _tree(mirror, commit):
    """{path: (blob, size)} of a commit."""
    out = {}
    for line in _git(mirror, "ls-tree", "-r", "-l", commit).splitlines():
        meta, path = line.split("\t", 1)
        _mode, kind, blob, size = meta.split()
        if kind == "blob":
            out[path] = (blob, int(size) if size.isdigit() else 0)
    return out


def _has_blob(mirror, blob):
    return subprocess.run(["git", "--git-dir", str(mirror), "cat-file", "-e", blob],
                          capture_output=True).returncode == 0


def _size(mirror, commit, path):
    """(width, height) of an image in the mirror (reads the header only)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(_git(mirror, "show", f"{commit}:{path}", binary=True))) as im:
        return im.size


def _commits_touching_results(mirror):
    """(commit, iso date, [(status, path)]) for every commit adding/modifying result PNGs."""
    log = _git(mirror, "log", "--reverse", "--no-renames", "--format=C %h %ad", "--date=iso-strict",
               "--name-status", "--diff-filter=AM", "--", "results")
    out, cur = [], None
    for line in log.splitlines():
        if line.startswith("C "):
            _c, h, d = line.split(" ", 2)
            cur = (h, d, [])
            out.append(cur)
        elif line.strip() and cur is not None:
            status, path = line.split("\t", 1)
            cur[2].append((status, path))
    return [c for c in out if c[2]]


def _all_image_paths(mirror):
    """stem -> [(commit, path)] of images in assets/, to_label/, labeled/ anywhere in history."""
    log = _git(mirror, "log", "--all", "--no-renames", "--format=C %h", "--name-only",
               "--diff-filter=A", "--", *IMAGE_DIRS)
    found, commit = {}, None
    for line in log.splitlines():
        if line.startswith("C "):
            commit = line.split()[1]
        elif line.strip() and line.endswith(IMAGE_EXTS):
            stem = Path(line).stem
            found.setdefault(stem, []).append((commit, line))
    return found


def list_sessions(mirror=DEFAULT_MIRROR):
    """The PNG-era sessions: a list of dicts(name, commit, date, folder, cases, left_out)."""
    mirror = _check_mirror(mirror)
    images_anywhere = None
    sessions = []
    for commit, date, changes in _commits_touching_results(mirror):
        pngs = [p for s, p in changes if p.endswith(".png")]
        if not any(_NAME_RE.match(Path(p).name) for p in pngs):
            continue
        if any(p.endswith(".npz") for s, p in changes):
            continue  # npz era: not a PNG session
        tree = _tree(mirror, commit)
        by_folder = {}
        for p in pngs:
            m = _NAME_RE.match(Path(p).name)
            if m is None:
                continue
            by_folder.setdefault(str(Path(p).parent), set()).add((m["stem"], m["id"]))
        for folder, stems in sorted(by_folder.items()):
            # every doodle PNG of that folder at that commit whose files changed in this commit
            files = {k: v for k, v in tree.items() if str(Path(k).parent) == folder}
            groups = {}
            for path in files:
                m = _NAME_RE.match(Path(path).name)
                if m and (m["stem"], m["id"]) in stems:
                    groups.setdefault((m["stem"], m["id"]), {}).setdefault(m["kind"], []).append(
                        (m["ts"] or "", path))
            cases, left = [], []
            classes_path = "classes.txt" if "classes.txt" in tree else None
            for (stem, uid), kinds in sorted(groups.items()):
                why = []
                ann = sorted(kinds.get("annotations", []))
                grey = sorted(kinds.get("label_greyscale", []))
                colour = sorted(kinds.get("label", []))
                if not ann:
                    why.append("no doodle PNG")
                if not grey:
                    why.append("no greyscale label PNG")
                img = None
                for d in IMAGE_DIRS:
                    for ext in IMAGE_EXTS:
                        cand = f"{d}/{stem}{ext}"
                        if cand in tree:
                            img = (commit, cand)
                            break
                    if img:
                        break
                if img is None:
                    if images_anywhere is None:
                        images_anywhere = _all_image_paths(mirror)
                    if images_anywhere.get(stem):
                        img = images_anywhere[stem][-1]
                if img is None:
                    why.append("image not in the history")
                blobs = [files[p][0] for _t, p in (ann[-1:] + grey[-1:])]
                if img is not None:
                    blobs.append(_tree(mirror, img[0])[img[1]][0] if img[0] != commit
                                 else tree[img[1]][0])
                if not all(_has_blob(mirror, b) for b in blobs):
                    why.append("a file's content is missing from the mirror")
                elif img is not None and ann and grey:
                    sizes = {k: _size(mirror, c, p) for k, c, p in (
                        ("image", img[0], img[1]), ("doodle PNG", commit, ann[-1][1]),
                        ("label PNG", commit, grey[-1][1]))}
                    if len(set(sizes.values())) > 1:
                        why.append("sizes differ (WxH): " + ", ".join(
                            f"{k} {w}x{h}" for k, (w, h) in sizes.items()))
                entry = {"stem": stem, "id": uid,
                         "annotations": ann[-1][1] if ann else None,
                         "label_greyscale": grey[-1][1] if grey else None,
                         "label": colour[-1][1] if colour else None,
                         "image": None if img is None else {"commit": img[0], "path": img[1]}}
                (left if why else cases).append(dict(entry, why=why) if why else entry)
            short_date = date[:10]
            leaf = Path(folder).name
            sessions.append({
                "name": f"{short_date}_{commit}_{leaf}",
                "commit": commit, "date": date, "folder": folder,
                "results_folder": leaf if leaf.startswith("results") else "results",
                "classes": classes_path, "cases": cases, "left_out": left,
            })
    return sessions


def _classes_needed(folder, cases):
    """How many classes the session's PNGs use: the largest greyscale label value and the
    largest G10 colour index among the doodles (the undoodled colour excluded)."""
    import numpy as np
    from PIL import Image

    g10 = [(51, 102, 204), (220, 57, 18), (255, 153, 0), (16, 150, 24), (153, 0, 153),
           (0, 153, 198), (221, 68, 119), (102, 170, 0), (184, 46, 46), (49, 99, 149)]
    need = 1
    for case in cases:
        grey = np.asarray(Image.open(folder / Path(case["label_greyscale"]).name))
        need = max(need, int(grey.max()))
        ann = np.asarray(Image.open(folder / Path(case["annotations"]).name))
        undoodled = 5 if ann.shape[-1] == 4 else 9
        rgb = ann[..., :3].astype(np.uint32)
        colours = set(np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).tolist())
        for k, col in enumerate(g10):
            if (col[0] << 16 | col[1] << 8 | col[2]) in colours and k != undoodled:
                need = max(need, k + 1)
    return need


def _write_classes(mirror, s, folder):
    """classes.txt of the session's commit when it has enough names for the PNGs; else the
    shortest classes file of that commit that has enough (recorded as a guess)."""
    need = _classes_needed(folder, s["cases"])
    tree = _tree(mirror, s["commit"])
    cands = [p for p in tree if re.search(r"(^|/)classes\.txt(\.\d+)?$", p)]
    texts = {p: _git(mirror, "show", f"{s['commit']}:{p}") for p in cands}
    sizes = {p: len([ln for ln in t.splitlines() if ln.strip()]) for p, t in texts.items()}
    s["classes_needed"] = need
    if "classes.txt" in sizes and sizes["classes.txt"] >= need:
        chosen, s["classes_note"] = "classes.txt", "the session commit's classes.txt"
    else:
        fits = sorted((n, p) for p, n in sizes.items() if n >= need)
        if not fits:
            s["classes_note"] = f"no classes file of {s['commit']} has {need} classes"
            return
        chosen = fits[0][1]
        s["classes_note"] = (f"guess: classes.txt of {s['commit']} has {sizes.get('classes.txt')} "
                             f"names but the PNGs use {need} classes; {chosen} used")
    s["classes"] = chosen
    (folder / "classes.txt").write_text(texts[chosen])


def build(out_dir, sessions=None, mirror=DEFAULT_MIRROR):
    """Write the chosen sessions (names; default all) under ``out_dir``; returns their folders."""
    mirror = _check_mirror(mirror)
    out_dir = Path(out_dir).resolve()
    repo_root = Path(__file__).resolve().parents[1]
    if out_dir == repo_root or repo_root in out_dir.parents:
        raise MirrorError(f"{out_dir}: cases are never written inside the repository")
    chosen = list_sessions(mirror)
    if sessions:
        unknown = set(sessions) - {s["name"] for s in chosen}
        if unknown:
            raise MirrorError(f"unknown session(s): {', '.join(sorted(unknown))}")
        chosen = [s for s in chosen if s["name"] in sessions]
    written = []
    for s in chosen:
        folder = out_dir / s["name"] / s["results_folder"]
        folder.mkdir(parents=True, exist_ok=True)
        for case in s["cases"]:
            for key in ("annotations", "label_greyscale", "label"):
                if case[key]:
                    (folder / Path(case[key]).name).write_bytes(
                        _git(mirror, "show", f"{s['commit']}:{case[key]}", binary=True))
            img = case["image"]
            (folder / Path(img["path"]).name).write_bytes(
                _git(mirror, "show", f"{img['commit']}:{img['path']}", binary=True))
        _write_classes(mirror, s, folder)
        (folder / "cases.json").write_text(json.dumps(s, indent=1))
        written.append(folder)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", default=os.environ.get("DASH_DOODLER_MIRROR", DEFAULT_MIRROR),
                    help="bare git mirror of Doodleverse/dash_doodler")
    ap.add_argument("--list", action="store_true", help="list the PNG-era sessions and cases")
    ap.add_argument("--build", metavar="DIR", help="write the sessions into DIR (outside the repo)")
    ap.add_argument("--session", action="append", help="only this session (repeatable)")
    args = ap.parse_args(argv)
    if not args.list and not args.build:
        ap.error("give --list or --build DIR")
    try:
        if args.list:
            for s in list_sessions(args.mirror):
                print(f"{s['name']}  ({s['folder']}, classes: {s['classes']})")
                for c in s["cases"]:
                    print(f"    case  {c['stem']:<32} image {c['image']['commit']}:{c['image']['path']}")
                for c in s["left_out"]:
                    print(f"    left  {c['stem']:<32} {'; '.join(c['why'])}")
        if args.build:
            for folder in build(args.build, args.session, args.mirror):
                print(folder)
    except MirrorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
