"""Sweeps: the claims of the suite over a grid of profile fields, resumable, as one table and figures.

    ut.suite.sweep({"layers": [2, 4, 8], "seed": [0, 1, 2]}, profile="smoke", only=["lipschitz.ISTA"], out="sw")
    unfoldtheory sweep --profile smoke --grid layers=2,4,8 seed=0,1,2 --only lipschitz.ISTA --out sw

Every grid point is the base profile with some fields replaced; every (point, group of claims) is one task of the
executor (see :mod:`unfoldtheory.suite._executor`), after one training task per (point, model).  A finished task
leaves one record file per claim in ``out/tasks/<point>/``; a later call with the same ``out`` skips those
(records with status "error" are recomputed), so an interrupted sweep resumes where it stopped.  The table
``sweep.csv`` has one row per (point, claim); ``figures/`` has, per claim and swept variable, the bound and its
empirical counterpart against the variable, the mean over seeds with the min-max spread.  See docs/scaleout.md §4.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._context import Profile, get_profile

log = logging.getLogger("unfoldtheory.suite")

#: Columns of ``sweep.csv`` after the swept variables.
COLUMNS = ("claim", "topic", "relation", "status", "bound", "bound_side", "bound_certified", "bound_method",
           "empirical", "empirical_label", "tightness", "seconds", "error")


@dataclass
class SweepResult:
    """The outcome of :func:`sweep`.

    Attributes
    ----------
    rows : list of dict
        One per (grid point, claim) finished so far: the swept values and the columns of :data:`COLUMNS`.
    computed, reused : int
        Claim tasks run by this call, and finished ones found from an earlier call and not redone.
    remaining : int
        Claim tasks left for a later call (``max_tasks``); 0 when the sweep is complete.
    table : Path or None
        ``sweep.csv``.
    figures : list of Path
    """

    rows: list[dict]
    computed: int
    reused: int
    remaining: int
    table: Path | None = None
    figures: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    def __repr__(self) -> str:
        return (f"SweepResult({len(self.rows)} rows, computed={self.computed}, reused={self.reused}, "
                f"remaining={self.remaining}, table={str(self.table) if self.table else None!r})")


def _coerce(name: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in value) if default else tuple(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"grid field {name!r}: cannot use {value!r} (the profile's value is "
                                f"{default!r}).") from None
    return value


def grid_points(grid: Mapping[str, Iterable], base: Profile) -> list[dict]:
    """The points of ``grid`` (field -> values, product in the order given), values coerced to the field types."""
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidInputError("grid must be a non-empty mapping of profile fields to lists of values, e.g. "
                                "{'layers': [2, 4, 8], 'seed': [0, 1, 2]}.")
    fields = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    axes = {}
    for name, values in grid.items():
        if name not in fields:
            raise InvalidInputError(f"grid field {name!r} is not a profile field; sweepable fields: {sorted(fields)}.")
        values = [values] if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) else list(values)
        if not values:
            raise InvalidInputError(f"grid field {name!r} has no values.")
        default = getattr(base, name)
        axes[name] = [_coerce(name, v, default) for v in values]
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def point_name(point: Mapping[str, Any]) -> str:
    """Folder name of a grid point, e.g. ``layers=4,seed=1``."""
    def fmt(v):
        return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)

    return ",".join(f"{k}={fmt(v)}" for k, v in point.items())


def sweep(grid: Mapping[str, Iterable], profile: str | Profile = "smoke", *, out: str | os.PathLike,
          only: Iterable[str] | None = None, claims: Sequence | None = None, executor: Any = None,
          cache_dir: str | os.PathLike | None = None, device: str | None = None, threads: int | None = 1,
          max_tasks: int | None = None, figures: bool = True, progress: bool = True) -> SweepResult:
    """Run claims over a grid of profile fields; resumable; writes ``sweep.csv`` and figures.

    Parameters
    ----------
    grid : mapping field -> values
        Profile fields to sweep (``layers``, ``m``, ``n``, ``seed``, ``train_steps``, ``lam``, ...); the product
        of the values is swept.  The field ``seed`` is the spread of the figures, every other field an x axis.
    profile : {"smoke", "quick", "full"} or Profile
        The base profile whose other fields stay fixed.
    out : path
        Output folder: ``tasks/`` (one record file per finished claim task), ``sweep.csv``, ``figures/``.
        Calling again with the same folder resumes: finished claims are not recomputed.
    only, claims
        Claim selection (glob patterns of ids) and catalogue, as in :func:`unfoldtheory.suite.run`.
    executor
        As in :func:`unfoldtheory.suite.run`: ``None`` (serial), a worker count, ``"local"``, a Dask scheduler
        address, or an object with ``submit``.
    cache_dir, device, threads
        As in :func:`unfoldtheory.suite.run` (the model cache is shared by every point and worker).
    max_tasks : int, optional
        Run at most this many claim tasks in this call and leave the rest for a later call (to split a sweep
        across jobs, or to stop early); the table and figures show what is finished.
    figures : bool
        Draw the figures (matplotlib).

    Returns
    -------
    SweepResult
    """
    from ._context import Context
    from ._executor import (
        Dispatcher,
        RunSpec,
        Task,
        claim_groups,
        claims_task,
        error_record,
        portable,
        train_task,
    )
    from ._results_cache import source_hash
    from ._runner import _model_names, catalogue, select

    if max_tasks is not None and (isinstance(max_tasks, bool) or int(max_tasks) < 0):
        raise InvalidInputError(f"max_tasks must be a non-negative integer or None; got {max_tasks!r}.")
    base = get_profile(profile)
    points = grid_points(grid, base)
    chosen = select(catalogue() if claims is None else claims, only)
    builtin = claims is None
    sent = {c.id: c.id if builtin else portable(c) for c in chosen}
    if any(v is None for v in sent.values()):
        raise InvalidInputError(f"claims {[k for k, v in sent.items() if v is None]} cannot be pickled for the "
                                "sweep's tasks; define their check functions at module level or install "
                                "cloudpickle.")
    pool = Dispatcher(executor, threads)
    out = Path(out)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    ref = Context.create(base, cache_dir=cache_dir, device=device, progress=False)
    stamp = {"source": source_hash()}

    pending: list[tuple[dict, Profile, list]] = []
    reused = 0
    for point in points:
        prof = dataclasses.replace(base, **point)
        folder = out / "tasks" / point_name(point)
        for group in claim_groups(chosen):
            if all(_finished(folder / f"{c.id}.json", prof, stamp) for c in group):
                reused += 1
            else:
                pending.append((point, prof, group))
    todo = pending if max_tasks is None else pending[:int(max_tasks)]
    computed = len(todo)
    log.info("sweep: %d point(s), %d claim task(s) to run, %d finished earlier, %d left for later", len(points),
             computed, reused, len(pending) - computed)
    if todo:
        with pool:
            specs: dict[str, RunSpec] = {}
            train: dict[tuple[str, str], Task] = {}  # one training task per (point, model)
            for point, prof, group in todo:
                key = point_name(point)
                spec = specs.setdefault(key, RunSpec(prof, str(ref.cache_dir), ref.device,
                                                     str(out / "tasks" / key), threads))
                for name in _model_names(group):
                    train.setdefault((key, name), Task(f"{key}:train:{name}", train_task, (spec, name)))
            for t, ok, value in pool.map(train.values()):
                if not ok:
                    log.error("sweep: training %s failed: %s", t.key, value)
            tasks = [Task(f"{point_name(point)}:{','.join(c.id for c in group)}", claims_task,
                          (specs[point_name(point)], [sent[c.id] for c in group], (),
                           specs[point_name(point)].out, {"point": point, "profile": prof.to_dict(), **stamp}))
                     for point, prof, group in todo]
            by_key = {t.key: (point, prof, group) for t, (point, prof, group) in zip(tasks, todo)}
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tasks), desc="sweep", unit="task", disable=not progress)
            for t, ok, value in pool.map(tasks):
                bar.update(1)
                if ok:
                    continue
                point, prof, group = by_key[t.key]
                log.error("sweep: task %s failed: %s", t.key, value)
                ctx = Context.create(prof, cache_dir=ref.cache_dir, device=ref.device, progress=False)
                _write_records(out / "tasks" / point_name(point),
                               [error_record(c, ctx, value) for c in group], point, prof, stamp)
            bar.close()
    rows = collect(out, points, chosen, base, stamp)
    table = write_table(out / "sweep.csv", rows, list(points[0]))
    figs = plot_sweep(rows, list(points[0]), out / "figures") if figures else []
    return SweepResult(rows, computed, reused, len(pending) - computed, table, figs)


def _write_records(folder: Path, records: list[dict], point: dict, prof: Profile, stamp: dict) -> None:
    from .._json import jsonable
    from ._files import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    for rec in records:
        atomic_write_text(folder / f"{rec['id']}.json",
                          json.dumps(jsonable({**rec, "point": point, "profile": prof.to_dict(), **stamp}),
                                     allow_nan=False))


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished(path: Path, prof: Profile, stamp: dict) -> bool:
    """A record file counts as finished when it is readable, is not an error, and was computed for this very
    profile (so reusing an output folder with another base profile recomputes)."""
    rec = _read(path)
    return (rec is not None and rec.get("status") != "error"
            and rec.get("profile") == json.loads(json.dumps(prof.to_dict())))


def collect(out: Path, points: Sequence[dict], claims: Sequence, base: Profile, stamp: dict) -> list[dict]:
    """Rows of the table from the record files of ``out/tasks`` (missing ones are skipped)."""
    rows = []
    for point in points:
        folder = out / "tasks" / point_name(point)
        for c in claims:
            rec = _read(folder / f"{c.id}.json")
            if rec is None:
                continue
            b = rec.get("bound") or {}
            rows.append({**point, "claim": rec["id"], "topic": rec.get("topic", ""), "relation": rec["relation"],
                         "status": rec["status"], "bound": b.get("value"), "bound_side": b.get("side"),
                         "bound_certified": b.get("certified"), "bound_method": b.get("method"),
                         "empirical": rec.get("empirical"), "empirical_label": rec.get("empirical_label", ""),
                         "tightness": rec.get("tightness"), "seconds": rec.get("seconds"),
                         "error": rec.get("error") or ""})
    return rows


def write_table(path: Path, rows: list[dict], variables: list[str]) -> Path:
    """``sweep.csv``: the swept variables, then :data:`COLUMNS` (tuples written as ``a x b``)."""
    import io

    from ._files import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*variables, *COLUMNS], extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("x".join(map(str, v)) if isinstance(v, (tuple, list)) else ("" if v is None else v))
                    for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())
    return path


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def plot_sweep(rows: list[dict], variables: list[str], folder: Path) -> list[Path]:
    """Per claim and swept variable (other than ``seed``): bound and empirical value against the variable, the
    mean over seeds (and over nothing else: one line per value of the other variables) with the min-max band."""
    from . import _plot

    plt = _plot.pyplot()
    xs = [v for v in variables if v != "seed"]
    if plt is None or not xs:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for claim in dict.fromkeys(r["claim"] for r in rows):
        mine = [r for r in rows if r["claim"] == claim and r["status"] in ("holds", "violated")]
        for x in xs:
            if not mine or not all(_number(r[x]) is not None for r in mine):
                continue
            others = [v for v in xs if v != x]
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            series = {}
            for r in mine:
                series.setdefault(tuple(r[o] for o in others), []).append(r)
            drawn = False
            for j, (label, rs) in enumerate(series.items()):
                tag = ", ".join(f"{o}={v}" for o, v in zip(others, label))
                for col, name, style in (("bound", "bound", "-"), ("empirical", "empirical", "--")):
                    pts: dict[float, list[float]] = {}
                    for r in rs:
                        y = _number(r[col])
                        if y is not None:
                            pts.setdefault(float(r[x]), []).append(y)
                    if not pts:
                        continue
                    X = sorted(pts)
                    mean = [sum(pts[k]) / len(pts[k]) for k in X]
                    color = f"C{(2 * j + (col == 'empirical')) % 10}"
                    lab = f"{name} ({rs[0]['bound_side'] or 'value'})" if col == "bound" else (
                        rs[0]["empirical_label"] or name)
                    ax.plot(X, mean, style, marker="o", color=color, label=lab + (f" [{tag}]" if tag else ""))
                    if any(len(v) > 1 for v in pts.values()):
                        ax.fill_between(X, [min(pts[k]) for k in X], [max(pts[k]) for k in X], color=color,
                                        alpha=0.2, linewidth=0)
                    drawn = True
            if not drawn:
                plt.close(fig)
                continue
            n_seeds = len({r.get("seed") for r in mine}) if "seed" in variables else 1
            ax.set_xlabel(x)
            ax.set_title(f"{claim} against {x}" + (f" (mean, min-max over {n_seeds} seeds)" if n_seeds > 1 else ""),
                         fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = folder / f"sweep_{claim}_{x}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written
