"""A small L-BFGS with a backtracking line search that tolerates infeasible points (``f = inf``).

Used to minimise the smoothed LipSDP objective over the log-multipliers; infeasible trial points (where the
block Cholesky of :math:`X(t)` fails) are simply rejected by the line search.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable

import numpy as np


def lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray | None]], x0: np.ndarray, *,
          f0: float | None = None, g0: np.ndarray | None = None, max_iter: int = 100,
          deadline: float | None = None, memory: int = 12, rel_tol: float = 1e-10, patience: int = 4,
          max_step: float = 2.0, first_step: float = 0.25) -> tuple[np.ndarray, float, np.ndarray, dict]:
    """Minimise ``fun`` from ``x0``; ``fun(x) -> (f, grad)``, with ``f = inf`` meaning infeasible.

    Stops after ``max_iter`` iterations, at ``deadline`` (``time.perf_counter()`` value), when the relative
    decrease stays below ``rel_tol`` for ``patience`` iterations, or when the line search cannot progress.
    Every trial step is capped at ``max_step`` in the infinity norm (the variables are log-multipliers).
    """
    x = np.asarray(x0, dtype=float).copy()
    if f0 is None or g0 is None:
        f, g = fun(x)
    else:
        f, g = f0, g0
    if not math.isfinite(f):
        raise ValueError("L-BFGS needs a feasible starting point.")
    S: deque = deque(maxlen=memory)
    Y: deque = deque(maxlen=memory)
    info = {"iterations": 0, "evaluations": 1, "stop": "max_iter"}
    stall = 0
    for it in range(max_iter):
        if deadline is not None and time.perf_counter() > deadline:
            info["stop"] = "time"
            break
        # two-loop recursion
        q = -g.copy()
        alphas = []
        for s, y in zip(reversed(S), reversed(Y)):
            a = s @ q / (y @ s)
            alphas.append(a)
            q -= a * y
        if S:
            s, y = S[-1], Y[-1]
            q *= (s @ y) / (y @ y)
        for (s, y), a in zip(zip(S, Y), reversed(alphas)):
            b = y @ q / (y @ s)
            q += (a - b) * s
        d = q
        gd = float(g @ d)
        if not gd < 0:
            S.clear()
            Y.clear()
            d = -g
            gd = float(g @ d)
            if gd == 0:
                info["stop"] = "zero_gradient"
                break
        dn = float(np.max(np.abs(d)))
        step = 1.0 if S else min(1.0, first_step / max(dn, 1e-300))
        if step * dn > max_step:
            step = max_step / dn
        accepted = False
        while step * dn > 1e-14:
            xn = x + step * d
            fn, gn = fun(xn)
            info["evaluations"] += 1
            if math.isfinite(fn) and fn <= f + 1e-4 * step * gd:
                accepted = True
                break
            step *= 0.25 if math.isfinite(fn) else 0.1
            if deadline is not None and time.perf_counter() > deadline:
                break
        if not accepted:
            info["stop"] = "line_search"
            break
        s, y = xn - x, gn - g
        sy = float(s @ y)
        if sy > 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y)):
            S.append(s)
            Y.append(y)
        decrease = f - fn
        x, f, g = xn, fn, gn
        info["iterations"] = it + 1
        if decrease <= rel_tol * max(abs(f), 1e-300):
            stall += 1
            if stall >= patience:
                info["stop"] = "converged"
                break
        else:
            stall = 0
    return x, f, g, info
