"""Files shared by concurrent writers: atomic writes and an advisory lock file (see docs/scaleout.md §5).

Several processes (local workers, Dask workers on other machines, SLURM jobs) may write the same model or record
cache at once.  Every write goes to a temporary file unique to the writer (host, pid, random suffix) in the same
folder and is moved into place with :func:`os.replace`, which is atomic on POSIX file systems (NFS included for a
rename within one folder): a reader sees the old file, the new file, or none, never a half-written one.  The lock
only avoids doing the same expensive work twice (two workers training the same model); correctness never depends
on it, so a lock that cannot be taken within its waiting cap is ignored with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("unfoldtheory.suite")


def temporary_sibling(path: Path) -> Path:
    """A name in ``path``'s folder unique to this writer (never the same for two processes or two calls)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary sibling file, then :func:`os.replace`)."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_copy(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy ``src`` to ``dest`` atomically (with its metadata, as :func:`shutil.copy2`)."""
    import shutil

    dest = Path(dest)
    tmp = temporary_sibling(dest)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _holder_alive(lock: Path) -> bool:
    """False when the lock was left by a dead process on this host (a stale lock), True otherwise."""
    try:
        info = json.loads(lock.read_text())
    except (OSError, ValueError):
        return True  # being written right now, or unreadable: assume alive
    if info.get("host") != socket.gethostname():
        return True  # cannot tell for another machine; the waiting cap applies
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, wait: float = 3600.0, poll: float = 0.2) -> Iterator[bool]:
    """Hold the advisory lock ``<path>.lock`` while the block runs; yields whether the lock was taken.

    The lock file is created with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+).  A lock left
    by a dead process of this host is broken at once; otherwise the caller waits, at most ``wait`` seconds (a
    safety cap, not a budget: only duplicated work follows from ignoring the lock), and then runs unlocked.
    """
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    taken = False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _holder_alive(lock):
                log.warning("breaking the stale lock %s", lock)
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            if time.monotonic() > deadline:
                log.warning("lock %s still held after %.0f s; going on without it", lock, wait)
                break
            time.sleep(poll)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, fh)
        taken = True
        break
    try:
        yield taken
    finally:
        if taken:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
