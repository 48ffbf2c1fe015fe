"""Writer locks: one writer at a time per folder probekit writes (results table, store, study,
training run).

:func:`folder_lock` holds an exclusive ``flock`` on ``FOLDER/.probekit-lock[-NAME]`` and
writes a *holder record* into it (pid, host, command, start time), so that a second writer
can say who holds the folder. The lock file exists only while a writer holds it: the holder
deletes it before it lets go.

- **A killed holder** (kill -9, out of memory, a node reboot) cannot leave a stale lock: the
  kernel drops an ``flock`` when its process dies, so the next writer gets the lock at once,
  finds the dead holder's record still in the file (a clean release deletes it) and logs
  that it took the lock over from that pid and host. No pid guessing is involved, so a
  recycled pid or a holder on another host of a shared filesystem cannot fool it.
- **A live holder**: ``wait=True`` waits (polling; a message naming the holder after
  :data:`ANNOUNCE_AFTER` seconds; :class:`LockHeldError` after ``timeout``), ``wait=False``
  refuses at once with :class:`LockHeldError` naming the holder.
- **Re-entry** by the same thread (e.g. a results append inside a grid that already holds
  the table) is counted, not deadlocked; another thread or process waits.

Why not the ``filelock`` package (installed with torch): its ``flock`` lock truncates the
lock file *before* locking, so it cannot carry a holder record, and pid-based staleness is
only in its soft locks of recent releases (4.x), which torch does not require.
``docs/scaling.md`` says which commands wait and which refuse.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from probekit.errors import ProbekitError

__all__ = ["LOCK_PREFIX", "LockError", "LockHeldError", "folder_lock", "lock_holder",
           "is_lock_file"]

log = logging.getLogger(__name__)

#: Name (prefix) of the lock file inside a locked folder: ``.probekit-lock`` or
#: ``.probekit-lock-<name>``. It exists only while a writer holds the folder (or after a
#: holder was killed, until the next writer takes over).
LOCK_PREFIX = ".probekit-lock"
#: Seconds a waiting writer waits before it says who it is waiting for.
ANNOUNCE_AFTER = 2.0
_POLL = (0.02, 0.5)  # first and longest sleep between attempts

_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


class LockError(ProbekitError, RuntimeError):
    """A folder cannot be locked for writing."""


class LockHeldError(LockError):
    """Another live process is writing the folder."""


def _lock_path(folder: Path, name: str) -> Path:
    return folder / (f"{LOCK_PREFIX}-{name}" if name else LOCK_PREFIX)


def _read_record(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.strip():
        return None
    try:
        d = json.loads(text)
    except json.JSONDecodeError:
        return {"unreadable": text[:80]}
    return d if isinstance(d, dict) else {"unreadable": text[:80]}


def lock_holder(folder: str | os.PathLike, name: str = "") -> dict | None:
    """The holder record of ``folder``'s lock (pid, host, command, started), or ``None``."""
    return _read_record(_lock_path(Path(folder), name))


def is_lock_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a writer lock: a folder holding only these counts as empty."""
    return Path(path).name.startswith(LOCK_PREFIX)


def _describe(rec: dict | None) -> str:
    if not rec:
        return "another process (no holder record yet)"
    if "unreadable" in rec:
        return f"another process (unreadable holder record {rec['unreadable']!r})"
    return (f"pid {rec.get('pid')} on {rec.get('host')} (`{rec.get('command')}`, since "
            f"{rec.get('started')})")


def _alive_here(rec: dict) -> bool | None:
    """Whether the recorded holder runs on this host (None: another host, cannot tell)."""
    if rec.get("host") != socket.gethostname() or not isinstance(rec.get("pid"), int):
        return None
    try:
        os.kill(rec["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command() -> str:
    """This process's command line, short: ``probekit probe --store ...``."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    prog = Path(sys.argv[0])
    name = prog.parent.name if prog.name == "__main__.py" else prog.name  # python -m probekit
    return " ".join([name] + sys.argv[1:])[:300]


def _try_lock(path: Path) -> int | None:
    """An fd holding the lock on the file now at ``path``, or None if another process holds it."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the folder's creator, which left it empty, removed it
        path.parent.mkdir(parents=True, exist_ok=True)
        return _try_lock(path)
    except OSError as exc:
        raise LockError(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
            return None
        raise LockError(f"cannot lock {path.parent} for writing: the filesystem refuses file "
                        f"locks ({exc.strerror}); use a local or lock-capable folder") from None
    try:  # the holder we waited for may have deleted the file we locked: lock the new one
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return _try_lock(path)
    return fd


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, name: str = "", what: str = "folder",
                wait: bool = True, timeout: float | None = None) -> Iterator[Path]:
    """Hold the writer lock of ``folder`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    folder : path
    name : str
        Distinguishes independent locks of one folder (e.g. one per extraction rank).
    what : str
        What the folder is, for messages (``"results table"``, ``"store"``...).
    wait : bool
        Wait for a live holder (True) or refuse at once (False).
    timeout : float, optional
        With ``wait``, give up after this many seconds (default: wait as long as it takes).

    Raises
    ------
    LockHeldError
        Naming the holder (pid, host, command, since when), when refused or timed out.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LockError(f"{folder} is a file; a {what} is a folder")
    created = [d for d in [folder, *folder.parents] if not d.exists()]  # removed if left empty
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LockError(f"cannot create {what} {folder}: {exc.strerror}") from None
    path = _lock_path(folder, name)
    try:
        import fcntl  # noqa: F401
    except ImportError:  # not POSIX (Windows): no lock; a cell written twice is still refused
        log.warning("no writer lock for %s %s: file locks need a POSIX system", what, folder)
        yield path
        return
    key = (str(path.resolve()), threading.get_ident())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    t0, pause, announced = time.monotonic(), _POLL[0], False
    while (fd := _try_lock(path)) is None:
        rec = _read_record(path)
        waited = time.monotonic() - t0
        if not wait or (timeout is not None and waited >= timeout):
            raise LockHeldError(
                f"{what} {folder} is being written by {_describe(rec)}"
                + (f"; gave up after {waited:.1f} s" if wait else "")
                + ". Wait for it to finish (a killed writer's lock is taken over "
                  "automatically) or use another folder")
        if not announced and waited >= ANNOUNCE_AFTER:
            log.warning("waiting for %s %s: it is being written by %s", what, folder,
                        _describe(rec))
            announced = True
        time.sleep(pause)
        pause = min(pause * 2, _POLL[1])
    try:
        old = _read_record(path)
        if old is not None:
            alive = _alive_here(old) if "unreadable" not in old else None
            log.warning("%s %s: took over the writer lock of %s, %s", what, folder,
                        _describe(old),
                        "which is no longer running" if alive is False else
                        "which let go without releasing it (killed, or on another host)")
        rec = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(rec) + "\n").encode(), 0)
        with _held_guard:
            _held[key] = 1
        try:
            yield path
        finally:
            with _held_guard:
                _held.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                # before unlocking: a waiter that locked this inode retries; and never a lock
                # file another writer made after ours was deleted under us
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)
            for d in created:  # a writer that wrote nothing (e.g. refused its input) leaves
                try:           # no folder behind
                    d.rmdir()
                except OSError:
                    break
    finally:
        os.close(fd)  # drops the flock
