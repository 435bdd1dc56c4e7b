"""`doodle-engine serve`: commands run in forks of a warm server give what they give in a
process of their own (output, exit status, labels), and every way a server cannot be used
falls back to running the command here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REAL_DIR, needs_real

from doodle_engine import rendezvous
from doodle_engine.example import make_example

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-c", "from doodle_engine.launch import run; run()"]


def _env(runtime, **extra):
    env = {k: v for k, v in os.environ.items() if k != rendezvous.NO_SERVER_ENV}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env.update(extra)
    return env


def command(runtime, *args, served=True, **kw):
    env = _env(runtime) if served else dict(_env(runtime), **{rendezvous.NO_SERVER_ENV: "1"})
    return subprocess.run([*LAUNCH, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300, **kw)


class Served:
    """A running server with its own runtime folder; ``log()`` is what it wrote."""

    def __init__(self, runtime, log, proc):
        self.runtime, self.log_path, self.proc = runtime, log, proc

    def log(self):
        return self.log_path.read_text()

    def commands(self):
        return [line for line in self.log().splitlines() if ": pid " in line]

    def wait_for(self, text, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the server ended: {self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the server's log: {self.log()}")


def start(tmp, *args, runtime=None, **env):
    runtime = runtime or Path(tempfile.mkdtemp(prefix="de-"))  # a socket's path: 107 bytes
    log = tmp / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([*LAUNCH, "serve", *args], env=_env(runtime, **env), stdout=fh,
                                stderr=subprocess.STDOUT)
    served = Served(runtime, log, proc)
    served.wait_for("warm in", timeout=240)
    return served


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    served = start(tmp)
    yield served
    out = command(served.runtime, "serve", "--stop")
    assert "ends once its running commands have ended" in out.stdout
    assert served.proc.wait(timeout=30) == 0
    assert "stopped" in served.log()
    assert not list(Path(served.runtime).glob("*/*.sock"))  # its socket went with it
    shutil.rmtree(served.runtime)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("ex") / "ex.npz", 96, 128)


def test_a_served_command_gives_what_a_command_of_its_own_gives(server, example, tmp_path):
    n = len(server.commands())
    served = command(server.runtime, "validate", example, "--workers", "1", "--quiet",
                     "--table", tmp_path / "served.csv")
    here = command(server.runtime, "validate", example, "--workers", "1", "--quiet",
                   "--table", tmp_path / "here.csv", served=False)
    assert served.returncode == here.returncode == 0
    assert len(server.commands()) == n + 1  # the first one was served, the second not
    assert "validate" in server.commands()[-1] and server.commands()[-1].endswith("exit 0")
    a, b = pd.read_csv(tmp_path / "served.csv"), pd.read_csv(tmp_path / "here.csv")
    timings = [c for c in a.columns if c == "seconds" or c.startswith("t_")]
    a, b = a.drop(columns=timings), b.drop(columns=timings)
    pd.testing.assert_frame_equal(a, b)
    assert served.stdout.splitlines()[-1] == here.stdout.splitlines()[-1]  # the summary line


def test_a_served_command_runs_in_its_own_folder_and_umask(server, example, tmp_path):
    (tmp_path / "in").mkdir()
    os.link(example, tmp_path / "in" / "ex.npz")
    out = command(server.runtime, "export", "in", "-o", "out", cwd=tmp_path,
                  preexec_fn=lambda: os.umask(0o077))
    assert out.returncode == 0, out.stderr
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and all(p.stat().st_mode & 0o077 == 0 for p in written)
    assert "export in -o out" in server.commands()[-1]


def test_a_bad_input_gets_the_same_line_and_status(server, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    served = command(server.runtime, "info", bad)
    here = command(server.runtime, "info", bad, served=False)
    assert served.returncode == here.returncode == 2
    assert served.stderr == here.stderr and str(bad) in served.stderr
    assert "Traceback" not in served.stderr
    assert server.commands()[-1].endswith("exit 2")


def _children(server):
    """How many forks of the server run a command now."""
    out = subprocess.run(["ps", "-o", "ppid=", "-A"], capture_output=True, text=True)
    return sum(line.strip() == str(server.proc.pid) for line in out.stdout.splitlines())


def _start_long(server, tmp_path, **kw):
    """A served command that takes a while (reference mode on 720 x 960), once it runs."""
    big = make_example(tmp_path / "big.npz", 720, 960)
    proc = subprocess.Popen([*LAUNCH, "validate", str(big), "--workers", "1", "--quiet",
                             "--mode", "reference"], env=_env(server.runtime), **kw)
    end = time.monotonic() + 60
    while not _children(server) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)  # into the reconstruction
    assert proc.poll() is None
    return proc


def _heed_ctrl_c():
    """A client that heeds Ctrl-C even when the suite runs with it ignored (``pytest &``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("args", [["--version"], ["validate", "--help"], ["validate", "--bogus"]])
def test_the_parser_s_own_exits_come_through(server, args):
    n = len(server.commands())
    served = command(server.runtime, *args)
    here = command(server.runtime, *args, served=False)
    assert (served.returncode, served.stdout, served.stderr) == \
        (here.returncode, here.stdout, here.stderr)
    assert served.stdout or served.stderr
    assert len(server.commands()) == n + 1


def test_ctrl_c_reaches_the_served_command(server, tmp_path):
    n = len(server.commands())
    proc = _start_long(server, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, preexec_fn=_heed_ctrl_c)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert len(server.commands()) == n + 1 and server.commands()[-1].endswith("exit 130")


def test_a_signal_the_client_ignores_the_command_ignores(server, tmp_path):
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731  (a script's `cmd &`)
    proc = _start_long(server, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, preexec_fn=ignore)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert server.commands()[-1].endswith("exit 0")


def test_a_killed_client_takes_its_served_command_with_it(server, tmp_path):
    n = len(server.commands())
    proc = _start_long(server, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.kill()
    proc.wait()
    end = time.monotonic() + 30
    while len(server.commands()) == n and time.monotonic() < end:
        time.sleep(0.1)
    assert server.commands()[-1].endswith(("exit 143", "killed by SIGTERM"))
    assert _children(server) == 0


def test_no_server_for_another_environment_or_when_turned_off(server, example):
    n = len(server.commands())
    env = _env(server.runtime, NUMBA_NUM_THREADS="1")  # read at start-up: another server's
    out = subprocess.run([*LAUNCH, "info", str(example)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    out = command(server.runtime, "info", example, served=False)
    assert out.returncode == 0
    assert len(server.commands()) == n


def test_a_second_server_is_refused(server):
    out = command(server.runtime, "serve")
    assert out.returncode == 2
    assert "already runs" in out.stderr and "--stop" in out.stderr


@needs_real
def test_served_labels_are_the_labels_of_a_command_of_its_own(server, tmp_path):
    """Numba's workqueue threads in the server, GNU OpenMP's here: the same labels."""
    names = ["2014-02-23-18-40-38_L8", "14-36__2018-01-20", "P26058673-3_SF"]
    files = [p for p in sorted(Path(REAL_DIR).glob("*.npz")) if any(n in p.name for n in names)]
    assert len(files) == len(names)
    tables = {}
    n = len(server.commands())
    for served in (True, False):
        table = tmp_path / f"{served}.csv"
        out = command(server.runtime, "validate", *files, "--workers", "1", "--quiet",
                      "--trials", "--table", table, served=served)
        assert out.returncode == 0, out.stderr
        tables[served] = pd.read_csv(table)
    assert len(server.commands()) == n + 1  # the first run only
    cols = ["file", "trial", "era", "differ", "accuracy"]
    pd.testing.assert_frame_equal(tables[True][cols], tables[False][cols])


def test_stop_names_the_other_servers_and_stop_all_ends_them(tmp_path):
    """Servers of other start-up variables (as of another copy of the engine) in one folder."""
    runtime = Path(tempfile.mkdtemp(prefix="de-"))
    servers = []

    def stop(*args):
        return subprocess.run([*LAUNCH, "serve", *args], capture_output=True, text=True,
                              env=_env(runtime, NUMBA_NUM_THREADS="3"), timeout=120)

    try:
        for n in (1, 2):
            (tmp_path / str(n)).mkdir()
            servers.append(start(tmp_path / str(n), runtime=runtime, NUMBA_NUM_THREADS=str(n)))
        assert stop("--all").returncode == 2
        out = stop("--stop")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "no server runs for this installation and environment",
            "2 other server(s) of yours run (another copy of the engine, or other start-up "
            "variables): 'doodle-engine serve --stop --all' ends them"]
        assert all(s.proc.poll() is None for s in servers)
        out = stop("--stop", "--all")
        assert out.returncode == 0, out.stderr
        assert sorted(out.stdout.splitlines()[1:]) == sorted(
            f"another server (pid {s.proc.pid}) ends once its running commands have ended"
            for s in servers)
        assert [s.proc.wait(timeout=30) for s in servers] == [0, 0]
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
        shutil.rmtree(runtime)


def test_an_unsafe_folder_is_never_used(tmp_path, example):
    runtime = tmp_path / "run"
    (runtime / f"doodle-engine-{os.getuid()}").mkdir(parents=True, mode=0o755)
    os.chmod(runtime / f"doodle-engine-{os.getuid()}", 0o755)
    out = command(runtime, "serve")
    assert out.returncode == 2 and "not a private folder" in out.stderr
    out = command(runtime, "info", example)  # no server: runs here
    assert out.returncode == 0


def test_a_stale_socket_is_passed_over(tmp_path, example):
    runtime = Path(tempfile.mkdtemp(prefix="de-"))  # a socket's path holds at most 107 bytes
    folder = runtime / f"doodle-engine-{os.getuid()}"
    folder.mkdir(parents=True, mode=0o700)
    env = _env(runtime)
    code = "from doodle_engine import rendezvous; print(rendezvous.key())"
    key = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(folder / f"{key}.sock"))
    dead.close()  # the file stays, nobody listens
    out = command(runtime, "info", example, "--json")
    shutil.rmtree(runtime)
    assert out.returncode == 0 and json.loads(out.stdout)


def test_an_idle_server_ends_by_itself(tmp_path):
    served = start(tmp_path, "--idle", "0.02")
    assert served.proc.wait(timeout=60) == 0
    shutil.rmtree(served.runtime)
    assert "without a command" in served.log() and "served 0 commands" in served.log()


def test_messages_carry_descriptors_and_refuse_what_is_malformed(tmp_path):
    a, b = socket.socketpair()
    with a, b, open(tmp_path / "f", "w") as fh:
        rendezvous.send(a, {"argv": ["x"]}, [fh.fileno()])
        message, fds = rendezvous.receive(b, maxfds=3)
        assert message == {"argv": ["x"]} and len(fds) == 1
        os.write(fds[0], b"through the passed descriptor")
        os.close(fds[0])
        a.sendall(rendezvous._HEADER.pack(5) + b"[1,2]")
        with pytest.raises(rendezvous.RendezvousError, match="not an object"):
            rendezvous.receive(b)
        a.sendall(rendezvous._HEADER.pack(rendezvous.MAX_MESSAGE + 1))
        with pytest.raises(rendezvous.RendezvousError, match="at most"):
            rendezvous.receive(b)
    assert (tmp_path / "f").read_text() == "through the passed descriptor"


def test_the_key_follows_start_up_variables_only():
    base = {"PATH": "/bin", "HOME": "/home/x"}
    assert rendezvous.key(base) == rendezvous.key(dict(base, HOME="/elsewhere"))
    assert rendezvous.key(base) != rendezvous.key(dict(base, NUMBA_NUM_THREADS="1"))
    assert rendezvous.key(base) != rendezvous.key(dict(base, OMP_NUM_THREADS="1"))
