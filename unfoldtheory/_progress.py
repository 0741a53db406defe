"""Progress of long work: a tqdm bar on a terminal or in a notebook, a log line every few seconds elsewhere.

Training, ``unfoldtheory bounds`` and the suite's zoo training report their progress through
:func:`progress`.  When stderr is not a terminal (CI logs, ``nohup``, a pipe) a bar would either vanish
(tqdm switches itself off) or fill the log with carriage returns, so a plain line such as
``LISTA [end_to_end]: 300/1000 (30%), 12.1 s, loss=0.0412`` is written every ``interval`` seconds (and at the
end) through the ``unfoldtheory.progress`` logger; if logging is not configured at all it goes to stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("unfoldtheory.progress")


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # a notebook: tqdm.auto draws a widget
        return True
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class _LogProgress:
    """A tqdm-like counter that logs a line every ``interval`` seconds."""

    def __init__(self, total: int | None, desc: str, interval: float):
        self.total, self.desc, self.interval = total, desc, float(interval)
        self.n, self.postfix = 0, ""
        self.t0 = self.last = time.monotonic()

    def _emit(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.t0
        if self.total:
            done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)"
        else:
            done = f"{self.n}"
        msg = f"{self.desc}: {done}, {elapsed:.1f} s" + (f", {self.postfix}" if self.postfix else "")
        msg += " (done)" if final else ""
        if log.isEnabledFor(logging.INFO) and (log.hasHandlers()):
            log.info(msg)
        elif not logging.getLogger().handlers:  # logging not configured: the line still reaches the user
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._emit()

    def set_postfix(self, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if self.n and time.monotonic() - self.t0 >= self.interval:
            self._emit(final=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _NoProgress(_LogProgress):
    def _emit(self, final: bool = False) -> None:
        pass


def progress(total: int | None, desc: str, enabled: bool = True, interval: float = 5.0):
    """A progress counter with ``update(n)``, ``set_postfix(**kw)``, ``set_description(s)``, ``close()``.

    ``enabled=False`` gives a silent one; on a terminal or in a notebook a tqdm bar; otherwise
    (stderr not a terminal) a log line every ``interval`` seconds, so long work never looks stuck.
    """
    if not enabled:
        return _NoProgress(total, desc, interval)
    if _interactive():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, mininterval=0.5)
    return _LogProgress(total, desc, interval)
