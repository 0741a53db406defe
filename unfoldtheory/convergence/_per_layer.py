r"""The certified worst case after every layer of a network's schedule (``docs/theory/pep.md §8``).

Layer ``k`` of a network that runs a first-order method is the method after ``k`` steps, so the worst case
after layer ``k`` is the PEP of the first ``k`` entries of its schedule (steps, momentum, penalties; the
initial condition does not change).  :func:`worst_case_per_layer` returns one certified upper
:class:`~unfoldtheory.bounds.Bound` per layer, to compare with the observed per-layer gap of the network.
"""

from __future__ import annotations

import logging
from typing import Any

from .._progress import progress
from ..bounds import Bound
from ..errors import SolverError
from ._schedules import Schedule, schedule_of

logger = logging.getLogger("unfoldtheory.convergence")

__all__ = ["worst_case_per_layer"]


def worst_case_per_layer(model: Any, *, A: Any = None, lam: float | None = None, metric: str = "objective",
                         tie_rtol: float = 1e-6, structure_rtol: float = 1e-5, show_progress: bool | None = None,
                         **kwargs: Any) -> list[Bound]:
    r"""Certified PEP worst case of the first ``k`` layers of a network's schedule, for ``k = 1..K``.

    Problem
        As :func:`~unfoldtheory.convergence.worst_case` with a model: the method, schedule, ``L`` and ``mu``
        are read from ``model`` (a zoo model, a plain torch module with ``A=``, a Form, or a
        :class:`~unfoldtheory.convergence.Schedule`); entry ``k - 1`` is the worst case of
        ``metric`` after ``k`` steps, per unit of the initial distance (``docs/theory/pep.md §6``).
    Guarantee
        Each entry is a certified upper bound when its ``certified`` is True (float64 dual certificate).
        A layer whose solve fails is a ``Bound`` with ``value = inf``, ``certified=False``,
        ``status="error"`` and the solver's message as ``reason`` (never a silent number).

    Parameters
    ----------
    model : model, Form or Schedule
    A, lam, tie_rtol, structure_rtol
        As in :func:`~unfoldtheory.convergence.schedule_of` (ignored for a Schedule).
    metric : {"objective", "distance"}
    show_progress : bool, optional
        A progress bar (log lines when output is not a terminal); default: when ``K >= 8``.
    **kwargs
        Passed to :func:`~unfoldtheory.convergence.worst_case` (``strategy``, ``tol``, ``solver``, ...).

    Returns
    -------
    list of Bound
        ``K`` bounds; ``witness["schedule"]`` of each holds the prefix.
    """
    import dataclasses

    import numpy as np

    from ._pep import worst_case

    sch = model if isinstance(model, Schedule) else schedule_of(model, lam=lam, tie_rtol=tie_rtol, A=A,
                                                                 structure_rtol=structure_rtol)
    K = len(sch.steps)
    out: list[Bound] = []
    show = K >= 8 if show_progress is None else bool(show_progress)
    with progress(K, desc=f"PEP per layer of {sch.model}", enabled=show) as bar:
        for k in range(1, K + 1):
            mom = None if sch.momentum is None else sch.momentum[:k]
            try:
                b = worst_case(np.asarray(sch.steps[:k]), L=sch.L, mu=sch.mu, method=sch.method, metric=metric,
                               momentum=mom, **kwargs)
            except SolverError as exc:
                logger.warning("PEP of the first %d layers of %s failed: %s", k, sch.model, exc)
                b = Bound(value=float("inf"), side="upper", certified=False, method="pep",
                          quantity=f"worst case after {k} layers", status="error", reason=str(exc))
            witness = dict(b.witness or {})
            witness["schedule"] = {**sch.to_dict(), "steps": sch.steps[:k].tolist(),
                                   "momentum": None if mom is None else mom.tolist(), "layers": k}
            out.append(dataclasses.replace(b, witness=witness))
            bar.update(1)
    return out
