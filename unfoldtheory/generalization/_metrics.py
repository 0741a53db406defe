r"""Per-instance, per-layer performance metrics :math:`\phi_k(s)` of an unfolded network on instances
:math:`s = (y, x)`, the quantities whose tail probability :math:`P(\phi_k > \varepsilon)` the bounds control.

========================  ===============================================================  =================
metric                    :math:`\phi_k` for instance :math:`(y, x^{\mathrm{true}})`        needs
========================  ===============================================================  =================
``"nmse_db"``             :math:`10\log_{10}(\|x_k - x^{\mathrm{true}}\|^2/\|x^{\mathrm{true}}\|^2)`   ``x``
``"nmse"``                :math:`\|x_k - x^{\mathrm{true}}\|^2/\|x^{\mathrm{true}}\|^2` (linear)       ``x``
``"distance"``            :math:`\|x_k - x^\star(y)\|_2`, :math:`x^\star` the LASSO optimum       ``problem``
``"objective_gap"``       :math:`F(x_k) - F^\star(y)` (LASSO objective)                         ``problem``
``"fixed_point_residual"`` :math:`\|x_k - \eta_{\lambda/L}(x_k - A^T(Ax_k - y)/L)\|_2` (ISTA map)  ``problem``
========================  ===============================================================  =================

Conventions that keep every value finite: an instance with :math:`x^{\mathrm{true}} = 0` has NMSE 0 when the
estimate is exactly 0 and the largest float otherwise; ``nmse_db`` is floored at -300 dB.  The LASSO optima
come from :func:`unfoldtheory.reference.solve` (certified by a duality gap) unless a ``reference`` solution
is passed.  These are the metrics of Sambharya & Stellato (arXiv 2404.13831: fixed-point residual,
suboptimality, distance to the optimum) plus the NMSE of the LISTA papers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array, to_numpy
from ..errors import InvalidInputError

METRICS = ("nmse_db", "nmse", "distance", "objective_gap", "fixed_point_residual")
NMSE_DB_FLOOR = -300.0


def _data(data: Any) -> tuple[Any, np.ndarray | None]:
    """(y, x) from a sample object with ``.y``/``.x``, a pair, or bare observations."""
    if hasattr(data, "y"):
        return data.y, (None if getattr(data, "x", None) is None else to_numpy(data.x))
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], None if data[1] is None else to_numpy(data[1])
    return data, None


def nmse_per_instance(X: np.ndarray, x_true: np.ndarray) -> np.ndarray:
    """Linear NMSE of each row of ``X`` (..., N, n) against ``x_true`` (N, n), with the 0/0 convention."""
    num = np.sum((X - x_true) ** 2, axis=-1)
    den = np.sum(x_true ** 2, axis=-1)
    big = np.finfo(np.float64).max
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        val = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num == 0, 0.0, big))
    return np.minimum(val, big)


def to_db(nmse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(nmse), NMSE_DB_FLOOR)


def layer_metrics_from_outputs(outs: list[np.ndarray], y: np.ndarray, *, metric: str,
                               x: np.ndarray | None = None, problem: Any = None,
                               reference: Any = None) -> np.ndarray:
    """Metrics (N, K) from the layer outputs ``outs`` (K arrays (N, n)); see :func:`layer_metrics`."""
    X = np.stack(outs, axis=0)  # (K, N, n)
    if metric in ("nmse", "nmse_db"):
        if x is None:
            raise InvalidInputError(f"metric={metric!r} compares with the true signal: pass data with .x "
                                    "(e.g. a SparseSample) or a pair (y, x).")
        x = as_float_array(x, "x", ndim=2)
        if x.shape != X.shape[1:]:
            raise InvalidInputError(f"x must have shape {X.shape[1:]} (instances, n); got {x.shape}.")
        val = nmse_per_instance(X, x)
        val = to_db(val) if metric == "nmse_db" else val
        return val.T
    if problem is None or not hasattr(problem, "objective"):
        raise InvalidInputError(f"metric={metric!r} needs the LASSO problem: pass problem="
                                "ut.problems.Lasso(A, lam) (e.g. gen.lasso(lam)).")
    if metric == "fixed_point_residual":
        step = 1.0 / problem.L
        res = []
        for Xk in X:
            Z = problem.prox(Xk - step * problem.gradient(Xk, y), step)
            res.append(np.linalg.norm(Xk - Z, axis=1))
        return np.stack(res, axis=1)
    if reference is None:
        from ..reference import solve

        reference = solve(problem, y)
    if metric == "distance":
        xs = np.atleast_2d(as_float_array(reference.x, "reference.x"))
        return np.linalg.norm(X - xs[None], axis=-1).T
    f_star = np.atleast_1d(as_float_array(reference.objective, "reference.objective"))
    return np.stack([np.atleast_1d(problem.objective(Xk, y)) - f_star for Xk in X], axis=1)


def layer_metrics(model: Any, data: Any, *, metric: str = "nmse_db", problem: Any = None,
                  reference: Any = None) -> np.ndarray:
    r"""Per-instance, per-layer metric :math:`\phi_k(s_i)` of a model, shape (N, K).

    Parameters
    ----------
    model : torch model (``forward(y, return_all=True)``) or analysis form (``evaluate``)
    data : SparseSample, pair ``(y, x)`` or observations ``y`` (N, m)
        The instances; ``x`` (the true signals) is needed by the NMSE metrics.
    metric : {"nmse_db", "nmse", "distance", "objective_gap", "fixed_point_residual"}
        See the module docstring.
    problem : Lasso, optional
        Needed by ``distance``, ``objective_gap`` and ``fixed_point_residual``.
    reference : Solution, optional
        Precomputed :func:`unfoldtheory.reference.solve` result for ``y`` (computed when needed and omitted).

    Returns
    -------
    ndarray (N, K), float64, finite.
    """
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {METRICS}; got {metric!r}.")
    y, x = _data(data)
    y = as_float_array(y, "y", ndim=2)
    if y.shape[0] == 0:
        raise InvalidInputError("data holds no instance (N = 0); pass at least one held-out instance.")
    from ..metrics import layer_outputs

    outs = layer_outputs(model, y)
    return layer_metrics_from_outputs(outs, y, metric=metric, x=x, problem=problem, reference=reference)
