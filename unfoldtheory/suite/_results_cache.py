"""Cache of claim records (and the comparative study) between runs.

A record is reused only when everything that determines it is unchanged: the claim id, the profile (every size,
budget and seed), the training device, the source code of the whole package (a hash of every ``.py`` file of
``unfoldtheory``, so any change to a model, a bound or a claim recomputes everything) and the versions of the
numerical dependencies (torch, numpy, scipy, cvxpy and the solvers clarabel, scs, highspy; see
:func:`dependency_versions`), so an upgrade of any of them recomputes every record.  Records with status
"error" and runs with failure injection are never cached.  Figures are cached beside the records and copied into
the new output folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

from ._context import config_hash
from ._files import atomic_copy, atomic_write_text

log = logging.getLogger("unfoldtheory.suite")

#: Bump to invalidate every cached record (e.g. when the record layout changes).
RECORD_VERSION = 2


#: Distributions whose versions can change a record (``None`` in the key when one is not installed).
DEPENDENCIES = ("torch", "numpy", "scipy", "cvxpy", "clarabel", "scs", "highspy", "PEPit", "sympy")


@functools.lru_cache(maxsize=1)
def dependency_versions() -> dict:
    """Versions of ``unfoldtheory`` and of its numerical dependencies (:data:`DEPENDENCIES`), read from the
    installed distributions' metadata (no import); ``None`` for one that is not installed."""
    from importlib import metadata

    from .. import __version__

    out: dict = {"unfoldtheory": __version__}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """Hash of the package's Python sources (relative paths and contents)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class ResultCache:
    """Records keyed by (item, profile, device, source hash, dependency versions) under ``root``; ``root=None``
    disables caching."""

    def __init__(self, root: Path | None, ctx):
        self.root = root
        self.ctx = ctx

    def _key(self, item: str) -> str:
        return config_hash({"item": item, "profile": self.ctx.profile.to_dict(), "device": self.ctx.device,
                            "source": source_hash(), "dependencies": dependency_versions(),
                            "version": RECORD_VERSION})

    def _paths(self, item: str) -> tuple[Path, Path]:
        key = self._key(item)
        return self.root / f"{item}-{key}.json", self.root / f"{item}-{key}-figures"

    def get(self, item: str) -> dict | None:
        """The cached record of ``item`` with its figures copied to the output folder, or None."""
        if self.root is None:
            return None
        rec_path, fig_dir = self._paths(item)
        if not rec_path.exists():
            return None
        try:
            record = json.loads(rec_path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("cached record %s is unreadable (%s); recomputing", rec_path, exc)
            return None
        if self.ctx.out is not None and fig_dir.is_dir():
            dest = self.ctx.out / "figures"
            dest.mkdir(parents=True, exist_ok=True)
            for f in fig_dir.iterdir():
                atomic_copy(f, dest / f.name)
        log.info("reused the cached record of %s", item)
        return record

    def put(self, item: str, record: dict, figures: list[str | None]) -> None:
        """Store ``record`` (a JSON-able dict) and the listed figures (paths relative to the output folder)."""
        if self.root is None:
            return
        rec_path, fig_dir = self._paths(item)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if self.ctx.out is not None:
                for rel in figures:
                    if rel and (self.ctx.out / rel).is_file():
                        fig_dir.mkdir(exist_ok=True)
                        atomic_copy(self.ctx.out / rel, fig_dir / Path(rel).name)
            atomic_write_text(rec_path, json.dumps(record, allow_nan=False))  # safe for concurrent writers
        except OSError as exc:  # a cache that cannot be written only costs time
            log.warning("could not cache the record of %s (%s)", item, exc)
