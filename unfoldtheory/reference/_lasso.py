r"""LASSO reference paths: the cvxpy reference and the fast batched path.

Both return float64 points that are then certified by the library's duality gap (``Lasso.duality_gap``).

cvxpy path
    One ``cp.Problem`` per (problem, solver), with ``y`` a ``cp.Parameter`` (DPP: canonicalised once, later
    solves only substitute ``y``), cached on the problem object.  Every solver answer is polished
    (:mod:`._polish`) and accepted only when its relative gap is within ``tol``; otherwise the next solver
    is tried.

fast path
    1. FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2009) with the gradient-based adaptive restart of
       O'Donoghue & Candès (Found. Comput. Math. 2015), batched over instances, step :math:`1/L`, in
       float32 on the Gram form :math:`g = Gx - b` (:math:`G = A^TA`, :math:`b = A^Ty`).  It only has to
       identify the support and signs, so single precision is enough.  Each instance is scaled by
       :math:`\|b\|_\infty` (the LASSO is positively homogeneous in :math:`(y, \lambda)`) so float32
       never over- or underflows.
    2. float64 active-set polish (batched reduced solves, then feature-sign search where needed).
    3. The library's duality gap per instance.  Instances above ``tol`` get more FISTA iterations (warm
       started at their best point) and another polish, for the rounds in :data:`_ROUND_MAX_ITERS`; what still
       fails goes to the cvxpy path.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import SolverAttempt, SolverError
from ..problems import Lasso
from . import _polish
from ._common import problem_cache, run_solver

logger = logging.getLogger(__name__)

#: Most FISTA iterations of each round of the fast path; round r runs only on the instances not yet
#: certified, warm started at their best point.  A row stops early once its signs are stable (see fista32)
#: and it has done at least the round's entry of _ROUND_MIN_ITERS.
_ROUND_MAX_ITERS: tuple[int, ...] = (300, 1000, 4000)
_ROUND_MIN_ITERS: tuple[int, ...] = (0, 100, 400)
#: Feature-sign steps per instance in the polish of the fast path (0 disables the polish).
_POLISH_STEPS: int = _polish.MAX_STEPS
#: Before the last round, feature-sign search runs only where the reduced solve violates at most this many
#: optimality conditions (otherwise the next round's FISTA iterations are cheaper).
_MAX_VIOLATIONS: int = 8
#: Rows per chunk of the fast path (memory of the batched iterations: a few float32 arrays (chunk, n)).
_CHUNK = 4096
#: A polished point certified within ``_KEEP_MARGIN * tol`` is kept even if its gap is marginally larger.
_KEEP_MARGIN = 1e-2
#: Extra options per cvxpy solver: the first-order solvers get tighter tolerances than their defaults (1e-4 to
#: 1e-5) so that their support is close enough for the polish.
_SOLVER_OPTIONS: dict[str, dict] = {"OSQP": {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 50_000},
                                    "SCS": {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 50_000}}


def _fingerprint(prob: Lasso) -> tuple:
    return (prob.A, prob.lam)


def lasso_data(prob: Lasso) -> dict:
    """Cached Gram matrix (float64 and float32), float32 ``A``, Lipschitz constant and rank bound of
    ``prob``."""
    data = problem_cache(prob, _fingerprint)
    if "G" not in data:
        A = prob.A
        G = A.T @ A
        data["G"] = 0.5 * (G + G.T)
        data["G32"] = data["G"].astype(np.float32)
        data["A32"] = A.astype(np.float32)
        # ||A||_2^2 from the smaller Gram matrix (much cheaper than the SVD behind prob.L), with a margin
        data["L"] = float(np.linalg.eigvalsh(A @ A.T if prob.m < prob.n else data["G"])[-1]) * (1 + 1e-8)
        data["rank_bound"] = min(prob.m, prob.n)
    return data


def polish_and_gap(prob: Lasso, data: dict, Y: np.ndarray, X: np.ndarray, tol: float,
                   max_steps: int = _polish.MAX_STEPS, max_violations: int | None = None,
                   max_support: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Polish each row of ``X`` and choose, per row, between the polished and the unpolished point by the
    library's relative duality gap.  Returns the chosen points and their relative gaps.

    The polished point is kept when its gap is not larger, and also when it is certified with a 100x margin
    (``<= tol / 100``): then both gaps are at the rounding level of the certificate (its outward-rounding
    term differs between two points by noise), and the polished point is the one that satisfies the
    optimality conditions exactly.  A polished point whose gap is larger than that is never kept.
    """
    B = Y @ prob.A
    rg = prob.duality_gap(X, Y, relative=True)
    if max_steps <= 0:
        return X, rg
    Xp = _polish.polish(data["G"], B, prob.lam, data["L"], X, data["rank_bound"], max_steps,
                         max_violations, max_support)
    finite = np.isfinite(Xp).all(axis=1)
    Xp[~finite] = X[~finite]
    rgp = prob.duality_gap(Xp, Y, relative=True)
    better = (rgp <= rg) | (rgp <= _KEEP_MARGIN * tol)
    return np.where(better[:, None], Xp, X), np.where(better, rgp, rg)


# ---------------------------------------------------------------------------------------------- cvxpy
def _cvxpy_problem(prob: Lasso, data: dict, solver: str):
    key = ("cvxpy", solver)
    if key not in data:
        import cvxpy as cp

        x = cp.Variable(prob.n, name="x")
        y = cp.Parameter(prob.m, name="y")
        objective = 0.5 * cp.sum_squares(prob.A @ x - y) + prob.lam * cp.norm1(x)
        problem = cp.Problem(cp.Minimize(objective))
        data[key] = (problem, x, y)
    return data[key]


def solve_cvxpy_instance(prob: Lasso, data: dict, y: np.ndarray, tol: float, solvers: list[str]
                         ) -> tuple[np.ndarray, float, str, tuple[SolverAttempt, ...]]:
    """Solve one instance with the solvers in order; see :func:`unfoldtheory.reference.solve`.

    Returns ``(x, relative_gap, "cvxpy:<SOLVER>", rejected attempts)``; the best finite answer when none
    reaches ``tol``.

    Raises
    ------
    SolverError
        No solver returned a finite ``x``.
    """

    attempts: list[SolverAttempt] = []
    best: tuple[float, np.ndarray, str] | None = None
    for name in solvers:
        problem, x, param = _cvxpy_problem(prob, data, name)
        param.value = y
        x.value = None  # never read a stale value from an earlier solve
        status, failed = run_solver(problem, name, _SOLVER_OPTIONS.get(name))
        if failed is not None:
            attempts.append(failed)
            continue
        value = x.value
        if value is None or not np.all(np.isfinite(value)):
            attempts.append(SolverAttempt(name, status, "no finite solution"))
            continue
        xs, rg = polish_and_gap(prob, data, y[None, :], np.asarray(value, dtype=float).reshape(1, prob.n),
                                tol)
        rg = float(rg[0])
        if best is None or rg < best[0]:
            best = (rg, xs[0], name)
        if rg <= tol:
            return xs[0], rg, f"cvxpy:{name}", tuple(attempts)
        attempts.append(SolverAttempt(name, status, f"relative duality gap {rg:.2e} > tol {tol:g}"))
        logger.info("cvxpy solver %s: status %s, relative duality gap %.2e > tol %g", name, status, rg, tol)
    if best is None:
        raise SolverError("No solver returned a finite solution for this LASSO instance.", attempts)
    return best[1], best[0], f"cvxpy:{best[2]}", tuple(attempts)


def solve_cvxpy(prob: Lasso, Y: np.ndarray, tol: float, solvers: list[str]):
    """The cvxpy reference on every row of ``Y``; returns ``(X, solver names, attempts)``."""
    data = lasso_data(prob)
    X = np.empty((len(Y), prob.n))
    names = np.empty(len(Y), dtype=object)
    attempts = []
    for i, y in enumerate(Y):
        try:
            X[i], _, names[i], tried = solve_cvxpy_instance(prob, data, y, tol, solvers)
        except SolverError as exc:
            if len(Y) > 1:
                raise SolverError(f"No solver returned a finite solution for instance {i} of {len(Y)}.",
                                  exc.attempts) from None
            raise
        attempts.append(tried)
    return X, names.astype(str), tuple(attempts)


# ---------------------------------------------------------------------------------------------- fast
def _gap32(A32: np.ndarray, Y: np.ndarray, lam: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Relative duality gap of the rows of ``X`` in float32 (a stopping test only, not a certificate)."""
    r = Y - X @ A32.T
    c = np.abs(r @ A32).max(axis=1)
    s = np.minimum(1, lam / np.maximum(c, np.finfo(np.float32).tiny))
    nr2 = np.einsum("bi,bi->b", r, r)
    primal = 0.5 * nr2 + lam * np.abs(X).sum(axis=1)
    dual = s * np.einsum("bi,bi->b", r, Y) - 0.5 * s * s * nr2
    return (primal - dual) / np.maximum(primal, np.finfo(np.float32).tiny)


def fista32(G32: np.ndarray, A32: np.ndarray, Y32: np.ndarray, lam: np.ndarray, L: float, X0: np.ndarray,
            max_iter: int, min_iter: int = 0, check_every: int = 10, patience: int = 2,
            gap_tol: float = 1e-4) -> np.ndarray:
    r"""Batched FISTA with gradient restart, in float32, on :math:`\tfrac12\|Ax - y\|^2 + \lambda\|x\|_1`.

    Parameters
    ----------
    G32, A32 : ndarray
        :math:`A^TA` (n, n) and :math:`A` (m, n) in float32.
    Y32, lam : ndarray
        Observations (batch, m) and weights (batch,) per row (rows are scaled instances).
    L : float
        Lipschitz constant :math:`\|A\|_2^2`; the step is :math:`1/L`.

    The gradient :math:`Gz - A^Ty` uses the Gram matrix (one (batch, n) x (n, n) product per iteration).
    The momentum of a row is reset when :math:`(z - x_{k+1})^T(x_{k+1} - x_k) > 0` (O'Donoghue & Candès
    2015, gradient scheme).  A row leaves the batch (the rest is compacted, so its cost stops) after
    ``min_iter`` iterations once its sign pattern has not changed over ``patience`` checks ``check_every``
    iterations apart and its float32 relative duality gap is at most ``gap_tol``: the iterations only have to
    find the support and signs for the polish.
    """
    out = np.array(X0, dtype=np.float32)
    active = np.arange(len(out))
    Y = np.array(Y32, dtype=np.float32)
    lam = np.array(lam, dtype=np.float32)
    X, Z = out.copy(), out.copy()
    # gradient step z - (Gz - b)/L = z (I - G/L) + b/L: one product and one addition per iteration
    M = np.eye(G32.shape[0], dtype=np.float32) - G32 / np.float32(L)
    Bs = (Y @ A32) / np.float32(L)
    th = (lam / np.float32(L))[:, None]
    t = np.ones(len(X), dtype=np.float32)
    signs = np.sign(X).astype(np.int8)
    calm = np.zeros(len(X), dtype=np.int64)
    Xn, V, D = np.empty_like(X), np.empty_like(X), np.empty_like(X)
    for it in range(1, max_iter + 1):
        np.matmul(Z, M, out=V)
        V += Bs                          # V = Z - (G Z - b) / L
        np.maximum(V, -th, out=Xn)
        np.minimum(Xn, th, out=Xn)
        np.subtract(V, Xn, out=Xn)       # Xn = V - clip(V, -th, th) = soft_threshold(V, lam / L)
        np.subtract(Xn, X, out=D)
        np.subtract(Z, Xn, out=V)
        restart = np.einsum("bi,bi->b", V, D) > 0
        t_new = np.float32(0.5) * (1 + np.sqrt(1 + 4 * t * t))
        beta = (t - 1) / t_new
        beta[restart] = 0
        t_new[restart] = 1
        np.multiply(D, beta[:, None], out=Z)
        Z += Xn
        X, Xn = Xn, X
        t = t_new
        if it % check_every == 0:
            new_signs = np.sign(X).astype(np.int8)
            calm = np.where((new_signs == signs).all(axis=1), calm + 1, 0)
            signs = new_signs
            if it < min_iter:
                continue
            done = calm >= patience
            if done.any():
                rows = np.flatnonzero(done)
                done[rows] = _gap32(A32, Y[rows], lam[rows], X[rows]) <= gap_tol
            if done.any():
                out[active[done]] = X[done]
                keep = ~done
                active, X, Z, Bs, Y = active[keep], X[keep], Z[keep], Bs[keep], Y[keep]
                lam, th, t, signs, calm = lam[keep], th[keep], t[keep], signs[keep], calm[keep]
                if active.size == 0:
                    break
                Xn, V, D = np.empty_like(X), np.empty_like(X), np.empty_like(X)
    out[active] = X
    return out


def solve_fast(prob: Lasso, Y: np.ndarray, tol: float, solvers: list[str] | None):
    """The fast path on every row of ``Y``; returns ``(X, solver names, attempts)``.

    ``solvers`` (validated names, or None for the default order) is used for the cvxpy fallback.  Rows are
    processed in chunks of :data:`_CHUNK` to bound the memory of the batched iterations."""
    parts = [_solve_fast_chunk(prob, Y[i:i + _CHUNK], tol, solvers) for i in range(0, len(Y), _CHUNK)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            tuple(a for p in parts for a in p[2]))


def _solve_fast_chunk(prob: Lasso, Y: np.ndarray, tol: float, solvers: list[str] | None):
    data = lasso_data(prob)
    batch, n = len(Y), prob.n
    # the LASSO is homogeneous: x*(y, lam) = c x*(y / c, lam / c); scale each row so float32 stays in range
    scale = np.abs(Y @ prob.A).max(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    Y32 = (Y / scale[:, None]).astype(np.float32)
    lam32 = (prob.lam / scale).astype(np.float32)
    X = np.zeros((batch, n))
    rg = np.full(batch, np.inf)
    pending = np.arange(batch)
    rounds = list(zip(_ROUND_MAX_ITERS, list(_ROUND_MIN_ITERS) + [0] * len(_ROUND_MAX_ITERS)))
    for r, (iters, min_iters) in enumerate(rounds):
        if pending.size == 0:
            break
        X0 = (X[pending] / scale[pending, None]).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            Xf = fista32(data["G32"], data["A32"], Y32[pending], lam32[pending], data["L"], X0, iters,
                         min_iter=min(min_iters, iters))
        Xf = Xf.astype(np.float64) * scale[pending, None]
        Xf[~np.isfinite(Xf).all(axis=1)] = 0.0
        last = r == len(rounds) - 1
        Xc, rgc = polish_and_gap(prob, data, Y[pending], Xf, tol, _POLISH_STEPS,
                                  None if last else _MAX_VIOLATIONS, data["rank_bound"])
        better = rgc < rg[pending]
        X[pending[better]] = Xc[better]
        rg[pending[better]] = rgc[better]
        logger.debug("fast path round %d (at most %d FISTA iterations): %d of %d instances certified", r,
                     iters, int((rg[pending] <= tol).sum()), pending.size)
        pending = pending[rg[pending] > tol]
    names = np.full(batch, "fast", dtype=object)
    attempts: list[tuple[SolverAttempt, ...]] = [()] * batch
    if pending.size:
        from ._common import LASSO_SOLVERS, resolve_solvers

        order = solvers if solvers is not None else resolve_solvers(None, LASSO_SOLVERS)
        logger.info("fast path: %d of %d instance(s) not certified after %d round(s) (worst relative gap "
                    "%.2e); falling back to cvxpy (%s)", pending.size, batch, len(rounds),
                    rg[pending].max(), ", ".join(order))
        for i in pending:
            fast_try = SolverAttempt("fast", "inaccurate", f"relative duality gap {rg[i]:.2e} > tol {tol:g}")
            try:
                x, rgi, name, tried = solve_cvxpy_instance(prob, data, Y[i], tol, order)
            except SolverError as exc:
                logger.info("cvxpy fallback failed on instance %d (%s); keeping the fast-path point", i, exc)
                attempts[i] = (fast_try,) + exc.attempts
                continue
            attempts[i] = (fast_try,) + tried
            if rgi <= rg[i]:
                X[i], rg[i], names[i] = x, rgi, name
    return X, names.astype(str), tuple(attempts)
