"""A run on a Dask cluster: an address that does not answer as a scheduler fails in one line,
the engine is checked on the scheduler and every worker before any task, an early stop
cancels the tasks not started, Dask's own log lines stay quiet during a run, and the notes
on --workers and --resume without a table."""

from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import SETTINGS, doodles_for, scene, write_npz

from doodle_engine import DoodleError
from doodle_engine.cli import main

distributed = pytest.importorskip("dask.distributed")
cluster = pytest.importorskip("doodle_engine.cluster")


@pytest.fixture()
def files(tmp_path):
    paths = []
    for i in range(3):
        image, truth = scene(40, 50, i)
        path = tmp_path / f"f{i}.npz"
        write_npz(path, image, doodles_for(truth), truth, SETTINGS["mlp-2021-10"])
        paths.append(path)
    return paths


@pytest.fixture()
def local_cluster():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c, distributed.Client(c) as client:
        yield client


def _silent_server():
    """A TCP server that accepts and says nothing, as an HTTP port (a dashboard) does."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
    threading.Thread(target=serve, daemon=True).start()
    return server


def test_a_port_that_does_not_speak_dask_fails_in_one_line(files, capsys, monkeypatch):
    """Dask's client waited without end on the scheduler's dashboard port."""
    monkeypatch.setattr(cluster, "_FIRST_WORD", 1)
    server = _silent_server()
    try:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        t0 = time.perf_counter()
        assert main(["validate", str(files[0]), "--scheduler", address, "--quiet"]) == 2
        assert time.perf_counter() - t0 < 15
    finally:
        server.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "answers, but not as a Dask scheduler" in err[0]


def test_an_empty_address_is_said_as_such(files, capsys):
    assert main(["validate", str(files[0]), "--scheduler", "", "--quiet"]) == 2
    assert "--scheduler is empty" in capsys.readouterr().err


def test_the_engine_is_checked_on_every_worker(local_cluster, monkeypatch):
    """The workers (processes of their own) report the engine they import; a client that
    expects another version is told which worker differs, before any task is sent."""
    cluster.check_engine(local_cluster)  # the same installation: passes
    real = importlib.metadata.version
    installed = re.escape(real("doodle_engine"))
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "9.9" if name == "doodle_engine" else real(name))
    with pytest.raises(DoodleError, match=rf"worker .* runs doodle_engine {installed} \(source "
                                          r"\w+\); this engine is 9\.9 \(source \w+\)"):
        cluster.check_engine(local_cluster)


def test_the_engine_identity_tells_edited_code_apart(tmp_path):
    """Version 0.1.0 at every commit: the digest of the source files tells an edited copy
    of the engine apart (each process computes it from its own files)."""
    package = Path(cluster.__file__).resolve().parent
    copy = tmp_path / "doodle_engine"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    here = cluster.source_digest(package)
    assert cluster.source_digest(copy) == here  # the same files: the same engine
    assert cluster.engine_identity().endswith(f"(source {here})")
    with open(copy / "crf.py", "a", encoding="utf-8") as fh:
        fh.write("\n# an edit\n")
    assert cluster.source_digest(copy) != here


def test_a_cluster_without_workers_is_noted(capsys):
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        cluster.check_engine(client)
    assert "has no worker yet" in capsys.readouterr().err


def test_an_early_stop_cancels_the_tasks_not_started(files, local_cluster):
    """Closing the rows' generator (an interrupt, the caller's error) leaves no task for the
    cluster to go on with: the scheduler holds none of the run's keys."""
    rows = cluster._results(local_cluster, "stats", files * 4, {})
    next(rows)
    rows.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        left = local_cluster.run_on_scheduler(
            lambda dask_scheduler: sum(k.startswith("run_one") for k in map(str, dask_scheduler.tasks)))
        if left == 0:
            break
        time.sleep(0.2)
    assert left == 0


def test_dask_log_lines_are_quiet_during_a_run(caplog):
    """A lost scheduler logged two tracebacks before the rows that say so."""
    log = logging.getLogger("distributed.client")
    with cluster._quiet_dask():
        log.error("during the run")
    log.error("after the run")
    said = [r.getMessage() for r in caplog.records]
    assert "during the run" not in said and "after the run" in said


def test_workers_beside_a_scheduler_and_resume_without_a_table_are_noted(files, local_cluster,
                                                                            capsys, tmp_path):
    address = local_cluster.scheduler.address
    assert main(["validate", str(files[0]), "--scheduler", address, "--workers", "4",
                 "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "workers=4 (--workers) sets local processes" in err
    assert "--resume without --table (table=): nothing to resume from" in err
    table = tmp_path / "new.csv"
    assert main(["validate", str(files[0]), "--workers", "1", "--quiet", "--resume",
                 "--table", str(table)]) == 0
    assert f"--resume: {table} does not exist yet: a new table" in capsys.readouterr().err
