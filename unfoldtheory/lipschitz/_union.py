r"""The Lipschitz constant on a union of balls: the pairs that straddle two balls.

For balls :math:`\mathcal B_i = \{\|y - y_i\| \le r\}` with certified local constants :math:`U_i \ge
L(\mathcal B_i)`, the constant of :math:`y \mapsto x` on :math:`D = \bigcup_i \mathcal B_i` is

.. math:: L(D) = \max\Big(\max_i L(\mathcal B_i),\ \max_{i < j} \sup_{y \in \mathcal B_i, y' \in \mathcal B_j}
          \frac{\|x(y) - x(y')\|}{\|y - y'\|}\Big).

For :math:`y \in \mathcal B_i`, :math:`y' \in \mathcal B_j` with :math:`d_{ij} = \|y_i - y_j\| > 2\rho`
(:math:`\rho` the l2 radius of a ball: :math:`r`, or :math:`r\sqrt m` for an l-infinity ball), the triangle
inequality through the centres gives

.. math:: \frac{\|x(y) - x(y')\|}{\|y - y'\|} \le \frac{\|x(y_i) - x(y_j)\| + (U_i + U_j)\rho}
          {d_{ij} - 2\rho},

and the centres' secant :math:`\|x(y_i) - x(y_j)\| / d_{ij}` is attained.  Two balls closer than
:math:`4\rho` are instead covered by one ball around their midpoint (radius :math:`r + \|y_i - y_j\|/2`,
convex, so its certificate holds for every pair in it).  Outputs come from :class:`._torch.ErrorModel`
(float64, extended precision when the rounding bound is not negligible) with their rigorous rounding bound,
so both ends are sound.  Theory: ``docs/theory/robustness.md §3``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ._torch import ErrorModel, _norm

_U = np.finfo(np.float64).eps / 2


def _outputs(em: ErrorModel, C: np.ndarray) -> tuple[list, np.ndarray, ErrorModel]:
    """Every centre's output with its rounding bound; redone in extended precision when some bound exceeds
    1e-6 of the smallest output difference (the same rule as a certified secant)."""
    outs = [em.evaluate(c) for c in C]
    if len(C) > 1:
        X = np.stack([x.astype(np.float64) for x, _ in outs])
        gaps = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)[np.triu_indices(len(C), 1)]
        smallest = float(np.min(gaps)) if gaps.size else 0.0
        if max(e for _, e in outs) > 1e-6 * smallest and em.dtype != np.longdouble \
                and np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
            em = em.extended()
            outs = [em.evaluate(c) for c in C]
    return [x for x, _ in outs], np.array([e for _, e in outs]), em


def cross_ball_terms(em: ErrorModel, C: np.ndarray, radius: float, norm: str, uppers: np.ndarray,
                     enclosing: Callable[[np.ndarray, float], float]) -> dict:
    r"""Certified upper and attained lower bounds over every pair of points in two different balls.

    ``uppers[i]`` is a certified bound on the local constant of ball ``i``; ``enclosing(centre, radius)``
    returns a certified upper bound on the constant of one ball of the same norm (used for balls closer than
    four radii).  Returns ``{"upper", "lower", "upper_pair", "lower_pair", "merged", "precision"}``.
    """
    p, m = C.shape
    rho = radius * (math.sqrt(m) * (1 + 4 * _U) if norm == "linf" else 1.0) * (1 + 4 * _U)
    xs, errs, used = _outputs(em, C)
    u = used.u
    best_up, best_lo, up_pair, lo_pair, merged = 0.0, 0.0, None, None, 0
    for i in range(p):
        for j in range(i + 1, p):
            dy = C[j] - C[i]
            d = float(np.linalg.norm(dy))
            d_lo = d * (1 - 4 * _U * (m + 2))
            diff = xs[j] - xs[i]
            nd = float(np.sqrt(np.sum(np.square(diff, dtype=diff.dtype), dtype=diff.dtype)))
            if d_lo > 0:
                low = max(nd * (1 - 4 * u * (len(diff) + 2)) * (1 - 1e-15) - (errs[i] + errs[j]), 0.0)
                low = low / (d * (1 + 4 * _U * (m + 2)))
                if low > best_lo:
                    best_lo, lo_pair = low, (i, j)
            if d_lo > 4 * rho:
                num = (_norm(diff) * (1 + 2 * u) + errs[i] + errs[j] + (uppers[i] + uppers[j]) * rho) \
                    * (1 + 8 * _U)
                up = num / (d_lo - 2 * rho * (1 + 2 * _U)) * (1 + 4 * _U)
            else:
                merged += 1
                half = float(np.max(np.abs(dy)) if norm == "linf" else d) / 2
                mid = (C[i] + C[j]) / 2
                # margins cover the rounding of the distance ((m + 2) u relative) and of the midpoint
                rad = (radius + half) * (1 + 4 * _U * (m + 4)) + 4 * _U * float(np.linalg.norm(mid))
                up = enclosing(mid, rad)
            if up > best_up:
                best_up, up_pair = up, (i, j)
    return {"upper": best_up, "lower": best_lo, "upper_pair": up_pair, "lower_pair": lo_pair,
            "merged": merged, "precision": "extended" if used.dtype == np.longdouble else "float64"}
