"""Run the claims, write ``results.json``, ``report.md`` and the figures."""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import logging
import os
import platform
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._device import torch_threads
from .._json import jsonable
from .._progress import progress as make_progress
from ..bounds import Bound
from ..errors import InvalidInputError
from ..verdicts import Verdict
from ._context import Context, Profile
from ._core import LOOSE_FACTOR, STATUSES, Claim, as_record_bound, judge, vacuity, wrong_bound
from ._schema import SCHEMA_ID

log = logging.getLogger("unfoldtheory.suite")



def catalogue() -> list[Claim]:
    """Every claim of the suite, in report order."""
    from . import _claims_bounds, _claims_convergence, _claims_theory

    claims = _claims_bounds.claims() + _claims_convergence.claims() + _claims_theory.claims()
    ids = [c.id for c in claims]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RuntimeError(f"duplicate claim ids: {sorted(dup)}")
    return claims


def select(claims: Sequence[Claim], only: Iterable[str] | None) -> list[Claim]:
    """Claims whose id matches one of the glob patterns in ``only`` (all when ``only`` is empty)."""
    patterns = list(only or [])
    if not patterns:
        return list(claims)
    chosen = [c for c in claims if any(fnmatch.fnmatch(c.id, p) for p in patterns)]
    if not chosen:
        raise InvalidInputError(f"no claim matches {patterns}; claim ids: {[c.id for c in claims]}.")
    return chosen


def run_claim(claim: Claim, ctx: Context, inject: bool = False) -> dict:
    """Check one claim; never raises (an exception becomes a record with status "error")."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"id": claim.id, "title": claim.title, "reference": claim.reference,
                           "topic": claim.topic, "paradigms": list(claim.paradigms), "models": list(claim.models),
                           "relation": claim.relation, "description": claim.description, "device": ctx.device,
                           "bound": None, "empirical": None, "empirical_label": "", "status": "error",
                           "holds": None, "tightness": None, "assumptions": {}, "failed_assumptions": [],
                           "checks": {}, "details": {}, "figure": None, "reason": "", "error": None,
                           "injected_failure": inject, "finding": claim.finding, "vacuous_reason": "",
                           "loose": False, "converged": True, "figure_data": None}
    try:
        ev = claim.check(ctx)
        status, holds, tight, failed = judge(claim, ev, inject=inject)
        bound = as_record_bound(ev)
        if inject and bound is not None and ev.empirical is not None:
            bound = Bound(wrong_bound(claim, float(bound), float(ev.empirical)), "estimate", False,
                          "injected-wrong-bound", reason="failure injection (testing aid)")
        reason = ev.reason or ("assumptions fail: " + "; ".join(failed) if failed else "")
        vac = vacuity(claim, ev) if status == Verdict.VACUOUS else ""
        rec.update(bound=jsonable(bound), empirical=jsonable(ev.empirical),
                   empirical_label=ev.empirical_label, status=str(status), holds=holds, tightness=jsonable(tight),
                   assumptions=jsonable(dict(ev.assumptions)), failed_assumptions=failed,
                   checks=jsonable(dict(ev.checks)), details=jsonable(dict(ev.details)), figure=ev.figure,
                   reason=reason, vacuous_reason=vac, figure_data=ctx.figure_data.pop(ev.figure, None),
                   # only a bound (upper or lower) can be loose; a threshold or tolerance is not graded
                   loose=bool(status == Verdict.HOLDS and claim.relation != "approx" and tight is not None
                              and tight > LOOSE_FACTOR and isinstance(bound, Bound)
                              and bound.side in ("upper", "lower")),
                   converged=bool(bound.converged) if isinstance(bound, Bound) else True)
    except Exception as exc:  # noqa: BLE001 - a failing claim is reported and the run goes on
        log.error("claim %s raised %s: %s", claim.id, type(exc).__name__, exc)
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}",
                   traceback="".join(traceback.format_exception(exc))[-4000:])
    rec["seconds"] = time.perf_counter() - t0
    return rec


@dataclass
class Results:
    """The outcome of :func:`run`: the records, the summary, and where the report was written."""

    data: dict
    out: Path | None = None
    paths: dict = field(default_factory=dict)

    @property
    def records(self) -> list[dict]:
        return self.data["claims"]

    @property
    def summary(self) -> dict:
        return self.data["summary"]

    @property
    def ok(self) -> bool:
        """No error, and no violated claim other than findings (properties of the trained models)."""
        return self.summary["error"] == 0 and not any(
            r["status"] == Verdict.VIOLATED and not r.get("finding") for r in self.records)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def __repr__(self) -> str:
        s = self.summary
        return (f"Results(profile={self.data['profile']['name']!r}, {s['total']} claims: {s['holds']} hold, "
                f"{s['vacuous']} vacuous, {s['not applicable']} not applicable, {s['violated']} violated, "
                f"{s['error']} errors; "
                f"out={str(self.out) if self.out else None!r})")


def _environment(ctx: Context) -> dict:
    import torch

    from ._results_cache import dependency_versions

    return {**dependency_versions(), "python": platform.python_version(), "platform": platform.platform(),
            "device": ctx.device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def run(profile: str | Profile = "quick", out: str | os.PathLike | None = None, *, only: Iterable[str] | None = None,
        claims: Sequence[Claim] | None = None, cache_dir: str | os.PathLike | None = None, device: str | None = None,
        inject_failure: Iterable[str] = (), comparative: bool = True, progress: bool = True,
        threads: int | None = 1, reuse: bool = True, executor: Any = None) -> Results:
    """Run the verification suite.

    Parameters
    ----------
    profile : {"quick", "full", "smoke"} or Profile
        Sizes and budgets (``quick``: CPU, a few minutes; ``full``: the ALISTA paper size, for a GPU).
    out : path, optional
        Output folder for ``report.md``, ``results.json`` and ``figures/``; nothing is written without it.
    only : glob patterns, optional
        Run only the claims whose id matches (e.g. ``["lipschitz.*", "pep.*"]``).
    claims : list of Claim, optional
        A custom catalogue (default: :func:`catalogue`).
    cache_dir : path, optional
        Where trained models are cached by configuration hash (default ``$UNFOLDTHEORY_CACHE`` or
        ``~/.cache/unfoldtheory/models``).
    device : str, optional
        Training device (default CUDA when available); analyses run in float64 on CPU.
    inject_failure : claim ids
        Testing aid: replace these claims' bounds by wrong ones (below the empirical value for ``<=``, above it
        for ``>=``), which must show up as violations in the report and the exit status.  Never for results.
    comparative : bool
        Also run the comparative study of the four paradigms.
    reuse : bool
        Reuse claim records cached by an earlier run with the same profile, device and package source (see
        :mod:`unfoldtheory.suite._results_cache`; built-in catalogue only); ``False`` recomputes every claim.
        Trained models are always reused.
    threads : int or None
        torch threads during the run (default 1: the suite's networks are small, and one thread is the
        fastest and immune to oversubscription on a shared machine; measured 10-50x faster training steps on
        2 loaded cores).  ``None`` keeps torch's setting.  Every task of an executor runs with this many torch
        and BLAS threads.
    executor : None, "local", int, Dask scheduler address or object with ``submit``
        Where the independent work (each model's training, each claim, the comparative study) runs: ``None``
        or ``1``: serially in this process; ``n > 1``: n local worker processes; ``"local"``: one per core;
        ``"tcp://host:8786"``: a Dask cluster; or any executor with ``submit(fn, *args)`` returning futures
        (``distributed.Client.get_executor()``, ``submitit.AutoExecutor`` for SLURM, ...).  Claim values do not
        depend on it (up to searches stopped by a time limit); the cache and output folders must be visible to
        every worker.  See docs/scaleout.md.

    Returns
    -------
    Results
        ``.records``, ``.summary``, ``.exit_code`` (1 if any claim is violated or raised).
    """

    with torch_threads(None if threads is None else int(threads)):
        return _run(profile, out, only, claims, cache_dir, device, inject_failure, comparative, progress, reuse,
                    executor, threads)


def _run(profile, out, only, claims, cache_dir, device, inject_failure, comparative, progress, reuse,
         executor=None, threads=1) -> Results:
    from ._executor import Dispatcher

    pool = Dispatcher(executor, threads)  # checks the argument before any work
    ctx = Context.create(profile, cache_dir=cache_dir, device=device, progress=progress, out=out)
    chosen = select(catalogue() if claims is None else claims, only)
    inject = set(inject_failure)
    unknown = inject - {c.id for c in chosen}
    if unknown:
        raise InvalidInputError(f"inject_failure names claims that are not run: {sorted(unknown)}.")
    if ctx.out is not None:
        ctx.out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    from ._results_cache import ResultCache

    # records of the built-in catalogue only: a custom claim's code is not covered by the source hash
    cache = ResultCache(ctx.cache_dir / "records" if reuse and claims is None else None, ctx)
    if not pool.serial:  # the same work as below, as tasks of an executor (docs/scaleout.md §2)
        from ._executor import run_parallel, train_parallel

        with pool:
            train_parallel(pool, ctx, _model_names(chosen))
            records, study = run_parallel(pool, ctx, chosen, inject, cache, comparative, claims is None, progress)
        return _finish(ctx, records, study, started, t0)
    _train_all(ctx, chosen, progress)
    from ._executor import execute_claim

    records = []
    bar = make_progress(len(chosen), "claims", enabled=progress)
    for claim in chosen:
        bar.set_postfix(claim=claim.id)
        injected = claim.id in inject
        rec = None if injected else cache.get(claim.id)
        if rec is None:
            rec = execute_claim(claim, ctx, inject=injected)
            if not injected and rec["status"] != "error":
                cache.put(claim.id, {**rec, "cached": True}, [rec["figure"]])
        records.append(rec)
        log.info("claim %s: %s (%.1f s%s)", claim.id, rec["status"], rec["seconds"],
                 ", cached" if rec.get("cached") else "")
        bar.update(1)
    bar.close()
    study = None
    if comparative:
        study = cache.get("comparative")
        if study is None:
            try:
                study = jsonable(_comparative_study(ctx))
                if not study.get("errors"):
                    cache.put("comparative", study, list(study.get("figures", {}).values()))
            except Exception as exc:
                log.exception("the comparative study failed")
                study = {"error": f"{type(exc).__name__}: {exc}", "errors": 1, "sparse": [], "rpca": [],
                         "figures": {}}
    return _finish(ctx, records, study, started, t0)


def _finish(ctx: Context, records: list[dict], study: dict | None, started: str, t0: float) -> Results:
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    counts["loose"] = sum(bool(r.get("loose")) for r in records)
    counts["not converged"] = sum(not r.get("converged", True) for r in records)
    counts["violated findings"] = sum(r["status"] == Verdict.VIOLATED and bool(r.get("finding")) for r in records)
    data = {"schema": SCHEMA_ID, "profile": ctx.profile.to_dict(), "started": started,
            "seconds": time.perf_counter() - t0, "environment": _environment(ctx),
            "summary": {"total": len(records), **counts},
            "models": jsonable(ctx.model_log), "claims": records,
            "comparative": jsonable(study) if study is not None else None}
    data["seconds"] = time.perf_counter() - t0
    results = Results(data, ctx.out)
    if ctx.out is not None:
        from ._report import write_report

        (ctx.out / "results.json").write_text(json.dumps(data, indent=1, allow_nan=False))
        results.paths = {"results": ctx.out / "results.json", "report": write_report(data, ctx.out)}
    return results


def _comparative_study(ctx):
    from ._comparative import comparative_study

    return comparative_study(ctx)


def _train_all(ctx: Context, claims: Sequence[Claim], progress: bool) -> None:
    """Train (or load) every model the chosen claims need, before the claims run, so their times are the
    analyses' own.  A model that fails to train is left to fail its claims."""
    names = _model_names(claims)
    bar = make_progress(len(names), "zoo models (trained or loaded)", enabled=progress)
    for name in names:
        bar.set_postfix(model=name)
        try:
            ctx.model(name)
        except Exception as exc:  # noqa: BLE001 - reported by the claims that need it
            log.error("training %s failed: %s", name, exc)
        bar.update(1)
    bar.close()


def _model_names(claims: Sequence[Claim]) -> list[str]:
    names: list[str] = []
    for c in claims:
        names += [m for m in c.models if m not in names]
    return names
