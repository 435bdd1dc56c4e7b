"""Release scale, measured: ``validate`` over a synthetic Coast Train release read in place from
its zips, with local worker processes and with a local Dask cluster.

The release is built in a temporary folder (never in this repository) from the real Doodler
files (``../shared/data/doodler/*.npz``), each resized to the image size of one row of the
release's metadata CSVs (``../shared/data/coasttrain/metadata_*.csv``: ``ImageHeightPx`` x
``ImageWidthPx``), rows drawn at random (seeded) until ``--mpx`` megapixels are reached.  Each
record (A..J) becomes one zip named ``{source}_{classes}_{version}.zip`` holding its metadata
rows as one CSV and its files as ``{zipstem}/npz/NAME.npz``.  Resizing: the images
(``image``, ``orig_image``) bilinear (``skimage.transform.resize``, ``preserve_range``, back to
uint8); doodles, colour doodles and the stored label nearest (order 0), so classes stay
classes; every other key (settings, classes) as it was.  A resized file is no longer what
Doodler made, so its accuracy is context, not a fidelity figure; the figure is throughput.

Then ``validate`` runs over the zips (members read in place; nothing is unpacked) twice:

* ``pool``: local worker processes (``--workers``, a number or ``auto``), as
  ``doodle-engine validate --workers N`` runs them;
* ``dask``: a ``dask.distributed.LocalCluster`` of ``--dask`` single-threaded worker
  processes, reached through its scheduler address as ``--scheduler`` reaches it.

Each run reports its wall time, Mpx/s, the projection to the whole release, the peak memory of
each worker (pool: resident set sampled every 0.25 s and the kernel's peak over waited-for
children, ``getrusage``; Dask: each worker's own ``getrusage`` peak), the load average before
and after (what ``uptime`` shows), sampled during the run, and the machine's CPU time spent by
this run's processes and by everything else.  The zips' SHA-256 before and after are compared.

    python benchmarks/release_scale.py --mpx 100 --out docs/measurements/ --mode exact --workers 2 --dask 2
    python benchmarks/release_scale.py --mpx 100 --out docs/measurements/ --mode fast --append
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import io
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from skimage.transform import resize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doodle_engine.batch import run_batch  # noqa: E402
from doodle_engine.pool import resolve_workers, single_threaded_children  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "doodler"
COAST = ROOT.parent / "shared" / "data" / "coasttrain"
#: the data source of each record, from its metadata CSV's name (``metadata_A_naip_...``)
SOURCES = {"A": "NAIP", "B": "Quads", "C": "Sentinel2", "D": "Sentinel2", "E": "Landsat8",
           "F": "Landsat8", "G": "Madeira", "H": "Dauphin", "I": "Sandwich", "J": "NAIP"}
VERSION = "001"
SAMPLE_S = 0.25
FIELDS = ["run", "mode", "workers", "records", "files", "mpx", "errors", "wall_s", "mpx_per_s",
          "release_mpx", "projected_min", "peak_worker_mb", "peak_each_mb", "peak_how",
          "rusage_children_mb", "start_s", "file_s_sum", "load_before", "load_after",
          "load1_mean", "load1_max", "cpu_machine_pct", "cpu_run_pct", "cpu_others_pct",
          "accuracy_mean", "accuracy_min", "eras", "zips_unchanged", "cores", "mem_gb",
          "started"]


# ---------------------------------------------------------------- the synthetic release

def metadata_rows():
    """Every metadata row: record letter, CSV, npz stem, height, width (one frame)."""
    frames = []
    for p in sorted(COAST.glob("metadata_*.csv")):
        m = pd.read_csv(p)
        m["rs_record"] = p.name.split("_")[1]
        m["rs_csv"] = p.name
        m["rs_classes"] = int(m.num_classes.mode().iloc[0])  # the record's usual class count
        m["rs_stem"] = m["annotation_image_filename"].map(lambda s: Path(str(s)).stem)
        frames.append(m)
    if not frames:
        raise SystemExit(f"no metadata_*.csv in {COAST}")
    return pd.concat(frames, ignore_index=True)


def release_mpx(meta):
    return float((meta.ImageHeightPx * meta.ImageWidthPx).sum() / 1e6)


def pick_rows(meta, target_mpx, seed=0):
    """Rows in a seeded random order until ``target_mpx`` is reached; a row larger than the
    target itself is passed over (so a 1-Mpx test run does not draw a 5-Mpx image)."""
    order = np.random.default_rng(seed).permutation(len(meta))
    picked, total = [], 0.0
    for i in order:
        mpx = meta.ImageHeightPx.iloc[i] * meta.ImageWidthPx.iloc[i] / 1e6
        if total >= target_mpx:
            break
        if mpx > target_mpx:
            continue
        picked.append(i)
        total += mpx
    return meta.iloc[sorted(picked)]


def record_zip_name(letter, rows):
    """``{source}_{classes}_{version}``: the classes most of the record's rows list (records
    A, C and I use two class lists)."""
    return f"{SOURCES.get(letter, letter)}_{int(rows.rs_classes.iloc[0])}_{VERSION}"


def _spatial_keys(arrays):
    shape = arrays["image"].shape[:2]
    return {k for k, a in arrays.items() if a.ndim >= 2 and a.shape[:2] == shape}


def resized(arrays, height, width):
    """A Doodler file's arrays at ``height`` x ``width``: images bilinear, doodles and labels
    nearest, other keys unchanged."""
    out = {}
    spatial = _spatial_keys(arrays)
    for k, a in arrays.items():
        if k not in spatial:
            out[k] = a
            continue
        shape = (height, width) + a.shape[2:]
        if k.endswith("image"):
            r = resize(a, shape, order=1, preserve_range=True)
            out[k] = np.clip(np.rint(r), 0, 255).astype(np.uint8)
        else:
            r = resize(a, shape, order=0, preserve_range=True, anti_aliasing=False)
            out[k] = r.astype(a.dtype)
    return out


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def member_stem(row, source, names):
    """``doodler``: the Coast Train name and the source file's (which carries Doodler's
    results date, so the era is not guessed); ``release``: the Coast Train name alone."""
    if names == "release":
        return row.rs_stem
    return f"{row.rs_stem}__{source.stem}"


def build_release(folder, rows, names="doodler"):
    """One zip per record in ``folder``; rows cycle over the real files. -> list of zips."""
    sources = sorted(REAL.glob("*.npz"))
    if not sources:
        raise SystemExit(f"no Doodler .npz files in {REAL}")
    cache = {}
    zips = []
    k = 0
    for letter, rec in rows.groupby("rs_record", sort=True):
        stem = record_zip_name(letter, rec)
        path = Path(folder) / f"{stem}.zip"
        meta_rows = rec.drop(columns=["rs_record", "rs_csv", "rs_stem", "rs_classes"]).copy()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            names_in = []
            for row in rec.itertuples():
                src = sources[k % len(sources)]
                k += 1
                if src not in cache:
                    with np.load(src, allow_pickle=False) as z:
                        cache[src] = {key: z[key] for key in z.files}
                arrays = resized(cache[src], int(row.ImageHeightPx), int(row.ImageWidthPx))
                name = f"npz/{member_stem(row, src, names)}.npz"
                zf.writestr(f"{stem}/{name}", _npz_bytes(arrays))
                names_in.append(name)
            meta_rows["annotation_image_filename"] = names_in
            zf.writestr(f"{stem}/{rec.rs_csv.iloc[0]}", meta_rows.to_csv(index=False))
        zips.append(path)
    return zips


def _sha(paths):
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


# ---------------------------------------------------------------- measuring a run

class Sampler:
    """Samples, every SAMPLE_S, the resident set of each process below this one, its CPU
    time, and the 1-minute load average."""

    def __init__(self):
        self.me = psutil.Process()
        self.peak = {}
        self.cpu = {}
        self.loads = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.cpu0 = psutil.cpu_times()
        self.my_cpu0 = sum(self.me.cpu_times()[:2])
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.wall = time.perf_counter() - self.t0
        cpu1 = psutil.cpu_times()
        busy = [sum(t) - t.idle - getattr(t, "iowait", 0) for t in (self.cpu0, cpu1)]
        self.machine_cpu = busy[1] - busy[0]
        self.my_cpu = sum(self.me.cpu_times()[:2]) - self.my_cpu0 + sum(self.cpu.values())

    def _loop(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_S)

    def _sample(self):
        self.loads.append(os.getloadavg()[0])
        for p in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                rss = p.memory_info().rss
                self.peak[p.pid] = max(self.peak.get(p.pid, 0), rss)
                self.cpu[p.pid] = sum(p.cpu_times()[:2])

    def top_peaks(self, n):
        """The ``n`` largest per-process peaks (the workers; helpers such as the resource
        tracker or Dask's nannies stay small)."""
        return sorted(self.peak.values(), reverse=True)[:n]


def _loadavg():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _worker_peak():
    """Run on a Dask worker: its own peak resident set (bytes)."""
    import resource as res  # noqa: PLC0415  runs on the Dask worker
    return res.getrusage(res.RUSAGE_SELF).ru_maxrss * 1024


def run_pool(zips, mode, workers, n_files, progress=False):
    n = resolve_workers(workers, n_files)
    with Sampler() as s:
        frame = run_batch("validate", [str(z) for z in zips], workers=n, mode=mode,
                          progress=progress)
    rus = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    peaks = s.top_peaks(n)
    return frame, s, {"run": "pool", "workers": n, "peak_each_mb": peaks, "start_s": 0.0,
                      "peak_how": f"RSS sampled every {SAMPLE_S} s",
                      "rusage_children_mb": rus / 2**20}


def run_dask(zips, mode, n, n_files, progress=False):
    from dask.distributed import Client, LocalCluster  # noqa: PLC0415  optional, slow to import

    t0 = time.perf_counter()
    # one compute thread per worker process, as the local pool gives its workers
    with single_threaded_children(), LocalCluster(n_workers=n, threads_per_worker=1,
                                                  processes=True, dashboard_address=":0") as cluster:
        start = time.perf_counter() - t0
        with Sampler() as s:
            frame = run_batch("validate", [str(z) for z in zips], mode=mode, progress=progress,
                              scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            peaks = sorted(client.run(_worker_peak).values(), reverse=True)
    return frame, s, {"run": "dask", "workers": n, "peak_each_mb": peaks, "start_s": start,
                      "peak_how": "each worker's getrusage peak (RSS sampled every "
                                  f"{SAMPLE_S} s: {_mb(max(s.top_peaks(n), default=0)):.0f} MB)",
                      "rusage_children_mb": float("nan")}


def _round0(x):
    return "" if np.isnan(x) else round(x)


def _mb(b):
    return b / 2**20


def measure(kind, zips, mode, n, n_files, release, progress=False):
    before = _loadavg()
    started = datetime.datetime.now().isoformat(timespec="seconds")
    frame, s, info = (run_pool if kind == "pool" else run_dask)(zips, mode, n, n_files,
                                                                  progress)
    after = _loadavg()
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    mpx = float(ok["mpx"].sum()) if "mpx" in ok else 0.0
    rate = mpx / s.wall if s.wall > 0 else float("nan")
    cores = psutil.cpu_count() or 1
    capacity = s.wall * cores
    eras = ok["era"].value_counts() if "era" in ok else pd.Series(dtype=int)
    return {
        "run": info["run"], "mode": mode, "workers": info["workers"], "records": len(zips),
        "files": len(frame), "mpx": round(mpx, 3), "errors": int(len(frame) - len(ok)),
        "wall_s": round(s.wall, 1), "mpx_per_s": round(rate, 4),
        "release_mpx": round(release, 1),
        "projected_min": round(release / rate / 60, 1) if rate > 0 else float("nan"),
        "peak_worker_mb": round(_mb(max(info["peak_each_mb"], default=0))),
        "peak_each_mb": ";".join(f"{_mb(p):.0f}" for p in info["peak_each_mb"]),
        "peak_how": info["peak_how"],
        "rusage_children_mb": _round0(info["rusage_children_mb"]),
        "start_s": round(info["start_s"], 1),
        "file_s_sum": round(float(ok["seconds"].sum()), 1) if "seconds" in ok else float("nan"),
        "load_before": before, "load_after": after,
        "load1_mean": round(float(np.mean(s.loads)), 2) if s.loads else float("nan"),
        "load1_max": round(float(np.max(s.loads)), 2) if s.loads else float("nan"),
        "cpu_machine_pct": round(100 * s.machine_cpu / capacity, 1),
        "cpu_run_pct": round(100 * s.my_cpu / capacity, 1),
        "cpu_others_pct": round(100 * max(s.machine_cpu - s.my_cpu, 0) / capacity, 1),
        "accuracy_mean": round(float(ok["accuracy"].mean()), 4) if len(ok) else float("nan"),
        "accuracy_min": round(float(ok["accuracy"].min()), 4) if len(ok) else float("nan"),
        "eras": ";".join(f"{k} x{v}" for k, v in eras.items()),
        "cores": cores, "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "started": started}, frame


def warm_up(folder, mode):
    """Compile (or load from Numba's cache) the kernels once, in this process, on one small
    resized file, so neither run pays compilation the other does not."""
    meta = metadata_rows()
    row = meta.iloc[[int((meta.ImageHeightPx * meta.ImageWidthPx).idxmin())]]
    z = build_release(folder, row)
    t0 = time.perf_counter()
    run_batch("validate", [str(p) for p in z], workers=1, mode=mode, progress=False)
    for p in z:
        p.unlink()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- the table

def print_table(rows):
    cols = ["run", "mode", "workers", "files", "mpx", "wall_s", "mpx_per_s", "projected_min",
            "peak_worker_mb", "load_before", "load_after", "cpu_others_pct", "accuracy_mean"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


def write_csv(path, rows, append):
    old = []
    if append and path.exists():
        with open(path, newline="") as fh:
            old = list(csv.DictReader(fh))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        for r in old + rows:
            w.writerow({k: r.get(k, "") for k in FIELDS})
    os.replace(tmp, path)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mpx", type=float, default=100.0, help="megapixels of the synthetic release")
    ap.add_argument("--out", type=Path, default=ROOT / "docs",
                    help="folder for release-scale.csv (default docs/measurements/)")
    ap.add_argument("--mode", default="exact", help="validate's --mode (default exact)")
    ap.add_argument("--workers", default="2", help="local workers: a number or auto; 0 skips")
    ap.add_argument("--dask", type=int, default=2, help="Dask LocalCluster workers; 0 skips")
    ap.add_argument("--names", choices=["doodler", "release"], default="doodler",
                    help="member names: the Coast Train name + the source file's (dated: the "
                         "era is read from it), or the Coast Train name alone (undated: "
                         "validate matches the era)")
    ap.add_argument("--seed", type=int, default=0, help="which metadata rows are drawn")
    ap.add_argument("--append", action="store_true", help="add rows to an existing CSV")
    ap.add_argument("--keep", type=Path, help="build the release in this folder and keep it")
    ap.add_argument("--tables", type=Path, help="write each run's per-file table in this folder")
    ap.add_argument("--progress", action="store_true", help="show each run's progress bar")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if not REAL.is_dir() or not COAST.is_dir():
        raise SystemExit(f"needs the real files in {REAL} and the metadata in {COAST}")
    meta = metadata_rows()
    release = release_mpx(meta)
    rows = pick_rows(meta, args.mpx, args.seed)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="release_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        zips = build_release(folder, rows, args.names)
        print(f"built {len(zips)} zips, {len(rows)} files, "
              f"{(rows.ImageHeightPx * rows.ImageWidthPx).sum() / 1e6:.1f} Mpx in {folder} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="release_warm_") as warm:
            print(f"warm-up (kernels compiled or loaded): {warm_up(Path(warm), args.mode):.1f} s",
                  flush=True)
        sha = _sha(zips)
        out = []
        runs = [("pool", args.workers)] if str(args.workers) != "0" else []
        runs += [("dask", args.dask)] if args.dask else []
        for kind, n in runs:
            row, frame = measure(kind, zips, args.mode, n, len(rows), release, args.progress)
            if args.tables:
                args.tables.mkdir(parents=True, exist_ok=True)
                frame.to_csv(args.tables / f"{kind}_{args.mode}_{args.mpx:g}mpx.csv", index=False)
            out.append(row)
            print(f"{kind}: {row['mpx']} Mpx in {row['wall_s']} s = {row['mpx_per_s']} Mpx/s, "
                  f"peak {row['peak_each_mb']} MB, load {row['load_before']} -> "
                  f"{row['load_after']}", flush=True)
        unchanged = _sha(zips) == sha and sorted(folder.iterdir()) == sorted(zips)
        for r in out:
            r["zips_unchanged"] = unchanged
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(args.out / "release-scale.csv", out, args.append)
        print_table(out)
        return out
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
