"""Issue 24: writer locks. A killed holder's lock is taken over (and said so, naming its pid and
host); a live holder is named, and waited for or refused."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from probekit import locks
from probekit.locks import LOCK_PREFIX, LockHeldError, folder_lock, lock_holder
from probekit.probes.grid import run_grid
from probekit.probes.results import ResultsTable

from tests.probes.test_grid import FakeStore, _meta

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

# Takes the results table's lock (ResultsTable.lock is this folder_lock), then dies holding
# it (kill -9: no cleanup runs).
_KILLED = """
import os, signal
from probekit.locks import folder_lock
with folder_lock({res!r}, what="results table"):
    os.kill(os.getpid(), signal.SIGKILL)
"""
# Holds the lock of a folder until the file `release` appears.
_HOLDER = """
import time
from pathlib import Path
from probekit.locks import folder_lock
with folder_lock({folder!r}, what="store"):
    Path({ready!r}).touch()
    while not Path({release!r}).exists():
        time.sleep(0.01)
"""


def test_a_killed_writers_lock_is_taken_over_by_the_next_run(tmp_path, caplog):
    res = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-c", _KILLED.format(res=str(res))], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    rec = lock_holder(res)  # the dead holder's record is still there
    assert rec["host"] == socket.gethostname() and isinstance(rec["pid"], int)
    with pytest.raises(ProcessLookupError):
        os.kill(rec["pid"], 0)
    caplog.set_level(logging.WARNING, logger="probekit.locks")
    df = run_grid(FakeStore(_meta()), "phone", res, seeds=(0,), train_sets=("all",),
                  progress=False)
    assert len(ResultsTable(res).load()) == len(df) > 0
    took = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert took and f"pid {rec['pid']} on {rec['host']}" in took[0]
    assert "no longer running" in took[0]
    assert not list(res.glob(f"{LOCK_PREFIX}*"))  # released cleanly: no lock file left


def _start_holder(tmp_path, folder):
    ready, release = tmp_path / "ready", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER.format(
        folder=str(folder), ready=str(ready), release=str(release)), "holder-tag"],
        env=ENV, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < 120
        time.sleep(0.01)
    return proc, release


def test_a_live_holder_is_named_refused_or_waited_for(tmp_path, caplog, monkeypatch):
    folder = tmp_path / "store"
    proc, release = _start_holder(tmp_path, folder)
    try:
        with pytest.raises(LockHeldError) as exc:
            with folder_lock(folder, what="store", wait=False):
                pass
        msg = str(exc.value)
        assert f"pid {proc.pid} on {socket.gethostname()}" in msg and "holder-tag" in msg
        assert "\n" not in msg
        with pytest.raises(LockHeldError, match="gave up after"):
            with folder_lock(folder, timeout=0.2):
                pass
        # waiting: says whom it waits for, and gets the lock when the holder lets go
        monkeypatch.setattr(locks, "ANNOUNCE_AFTER", 0.05)
        caplog.set_level(logging.WARNING, logger="probekit.locks")
        threading.Timer(0.5, release.touch).start()
        with folder_lock(folder, what="store", timeout=60) as path:
            assert lock_holder(folder)["pid"] == os.getpid() and path.exists()
        waiting = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
        assert waiting and f"pid {proc.pid}" in waiting[0]
        assert not any("took over" in r.getMessage() for r in caplog.records)  # a clean release
    finally:
        release.touch()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_the_same_thread_reenters_another_thread_waits(tmp_path):
    got = []
    with folder_lock(tmp_path, wait=False):
        with folder_lock(tmp_path, wait=False):  # e.g. an append inside a locked retire
            pass
        t = threading.Thread(target=lambda: got.append(_try(tmp_path)))
        t.start()
        t.join()
        assert got == ["held"]
    assert _try(tmp_path) == "free"


def _try(folder):
    try:
        with folder_lock(folder, wait=False):
            return "free"
    except LockHeldError:
        return "held"


def _extract(out):
    from probekit.store import extract
    extract(None, None, out, rank=0, world_size=1)  # refused before the encoder is touched


def _study(out):
    from probekit.study.run import run_study
    run_study(None, out)


def _train(out):
    from types import SimpleNamespace

    from training.finetune import finetune
    finetune(None, config=SimpleNamespace(out_dir=str(out)))


@pytest.mark.parametrize("writer,name,what", [(_extract, "extract-0-of-1", "store"),
                                              (_study, "", "study"),
                                              (_train, "", "training run")])
def test_a_second_store_study_or_training_writer_is_refused_naming_the_first(
        tmp_path, writer, name, what):
    folder = tmp_path / "out"
    ready, release = tmp_path / "ready", tmp_path / "release"
    code = _HOLDER.replace('what="store"', f"name={name!r}, what={what!r}")
    proc = subprocess.Popen([sys.executable, "-c", code.format(
        folder=str(folder), ready=str(ready), release=str(release)), "holder-tag"], env=ENV)
    try:
        t0 = time.monotonic()
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.01)
        with pytest.raises(LockHeldError, match=f"{what} .* is being written by pid {proc.pid}"):
            writer(folder)
    finally:
        release.touch()
        proc.wait(timeout=60)
