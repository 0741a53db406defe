r"""Dense long-step primal simplex for the per-column basis-pursuit LPs of ALISTA's generalized coherence.

Column ``i`` of Definition 1 (Liu, Chen, Wang, Yin, ICLR 2019, eqs. 8-9) is the LP
:math:`\tilde\mu_i = \min\{t : |a_j^T w| \le t\ (j \ne i),\ a_i^T w = 1\}`, whose LP dual is basis pursuit,

.. math:: 1/\tilde\mu_i = \min \|u\|_1 \quad\text{s.t.}\quad A_{-i} u = a_i .

:func:`bp_simplex` solves the basis-pursuit LP by the primal simplex method on the sign-split form, with
dense numpy linear algebra (an explicit basis inverse with rank-one updates, recomputed when the basic
solution drifts) and a *long step*: the entering variable keeps increasing through the breakpoints where
basic variables change sign while the (piecewise-linear, convex) objective still decreases.  Any nonsingular basis is a feasible start
(signs are chosen from the basic solution), so the start can be any guess of the optimal support.
:func:`certify_column` re-verifies a final basis from a fresh LU factorization in float64.
:func:`admm_start_bases` guesses the optimal supports of all columns at once by a few batched ADMM iterations
(matrix-matrix products only); the guess only decides where the simplex starts.  The method and its
guarantees: docs/theory/lista_alista.md §4.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["ColumnResult", "admm_start_bases", "bp_simplex", "certify_column"]

#: Pricing tolerance: the basis is optimal when every reduced cost ``1 - |a_j^T w|`` is >= -PRICE_TOL.
PRICE_TOL = 1e-12
#: Relative gap allowed between the verified upper and lower value of one column.
CERT_RTOL = 1e-10
#: Largest condition-number estimate of a basis accepted as a start or as a final basis.
MAX_COND = 1e12


@dataclass
class ColumnResult:
    """Verified solution of one column LP.

    ``w`` is rescaled so that ``a_i^T w = 1``; ``upper = max_{j != i} |a_j^T w|`` (the coherence the column
    achieves, in float64); ``lower`` is the dual bound :math:`1 / (\\|u\\|_1 + \\|z\\|_1)` of
    docs/theory/lista_alista.md §4; ``iterations`` counts simplex pivots.
    """

    w: np.ndarray
    upper: float
    lower: float
    iterations: int


def certify_column(A: np.ndarray, At: np.ndarray, i: int, S: np.ndarray) -> ColumnResult | None:
    r"""Verify the basis ``S`` (``m`` column indices of ``A``, none equal to ``i``) in float64.

    From a fresh LU factorization of :math:`A_S`: the basic solution :math:`u_S = A_S^{-1} a_i`, signs
    :math:`s = \operatorname{sign}(u_S)`, the dual point :math:`w = A_S^{-T} s` (so :math:`a_i^T w =
    \|u_S\|_1`) and the residual correction :math:`z = A_S^{-1}(a_i - A_S u_S)`.  Upper value:
    :math:`\max_{j \ne i}|a_j^T w| / a_i^T w` (attained by the feasible :math:`w / a_i^T w`).  Lower value:
    :math:`1/(\|u_S\|_1 + \|z\|_1)`.  Returns ``None`` when the basis is singular or the two values differ by
    more than ``CERT_RTOL`` relative (the basis is then not optimal, or too ill-conditioned to tell).
    """
    import scipy.linalg as sla

    B = A[:, S]
    a = A[:, i]
    with warnings.catch_warnings(), np.errstate(all="ignore"):   # a singular basis is rejected below
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        try:
            lu = sla.lu_factor(B, check_finite=False)
        except (ValueError, np.linalg.LinAlgError):
            return None
        u = sla.lu_solve(lu, a, check_finite=False)
        s = np.where(u >= 0.0, 1.0, -1.0)
        w = sla.lu_solve(lu, s, trans=1, check_finite=False)
        z = sla.lu_solve(lu, a - B @ u, check_finite=False)
    if not (np.isfinite(u).all() and np.isfinite(w).all() and np.isfinite(z).all()):
        return None
    scale = float(a @ w)
    if not scale > 0.0:
        return None
    g = At @ w
    g[i] = 0.0
    upper = float(np.max(np.abs(g))) / scale
    lower = 1.0 / (float(np.sum(np.abs(u))) + float(np.sum(np.abs(z))))
    if not upper <= lower * (1.0 + CERT_RTOL) + 1e-300:
        return None
    return ColumnResult(w / scale, upper, lower, 0)


def bp_simplex(A: np.ndarray, At: np.ndarray, i: int, S0: np.ndarray, max_iter: int,
               check_every: int = 50, drift_tol: float = 1e-9) -> ColumnResult | None:
    r"""Solve :math:`\min \|u\|_1` s.t. :math:`A_{-i} u = a_i` from the start basis ``S0``; verify the end.

    Parameters
    ----------
    A, At : ndarray
        The dictionary (m, n) and its C-contiguous transpose (n, m), float64.
    i : int
        The column whose LP is solved (excluded from the basis).
    S0 : ndarray of int, shape (m,)
        Start basis (distinct indices, none equal to ``i``); it must be nonsingular.
    max_iter : int
        Pivot budget; ``None`` is returned when it is spent.
    check_every, drift_tol : int, float
        Every ``check_every`` pivots the basic solution is checked against the basis,
        :math:`\|A_S u_S - a_i\|_\infty`, and the inverse is recomputed when the drift of the rank-one
        updates exceeds ``drift_tol``.

    Returns
    -------
    ColumnResult or None
        ``None`` when the start basis is singular, the budget is spent, or the final basis does not pass
        :func:`certify_column` after two refactorizations (the caller then solves the column another way).
    """
    from scipy.linalg import blas

    m, n = A.shape
    a = A[:, i]
    S = np.array(S0, dtype=np.intp)
    in_basis = np.zeros(n, dtype=bool)
    in_basis[S] = True
    ones = np.ones(m)
    normA = float(np.max(np.sum(np.abs(A[:, S]), axis=0)))

    def factor() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        try:
            Binv = np.linalg.inv(A[:, S])
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(Binv).all() or float(np.max(np.sum(np.abs(Binv), axis=0))) * normA > MAX_COND:
            return None
        x = Binv @ a
        s = np.where(x >= 0.0, 1.0, -1.0)
        return np.ascontiguousarray(Binv * s[:, None]), np.abs(x), s

    f = factor()
    if f is None:
        return None
    Binv, x, s = f
    it = since = restarts = 0
    refactor, fresh = False, True
    while it <= max_iter:
        if since >= check_every and not refactor:
            since = 0
            refactor = float(np.max(np.abs(A[:, S] @ (s * x) - a))) > drift_tol
        if refactor:
            refactor = False
            f = factor()
            if f is None:
                return None
            Binv, x, s = f
            since, fresh = 0, True
        w = ones @ Binv                     # B^{-T} 1, the dual point
        g = At @ w
        g[i] = 0.0
        g[in_basis] = 0.0                   # reduced cost of a basic column is 0, of its mirror 2
        j = int(np.abs(g).argmax())
        gj = float(g[j])
        if abs(gj) <= 1.0 + PRICE_TOL:      # optimal for this factorization: verify from scratch
            res = certify_column(A, At, i, S)
            if res is not None:
                res.iterations = it
                return res
            restarts += 1
            if restarts > 2 or fresh:
                return None
            refactor = True                  # refactorize and continue
            continue
        sig = 1.0 if gj > 0.0 else -1.0
        d = Binv @ At[j]
        if sig < 0.0:
            d = -d
        pos = (d > 1e-12).nonzero()[0]
        if pos.size == 0:                   # impossible in exact arithmetic (slope 1 + sum|d| > 0)
            return None
        ratios = x[pos] / d[pos]
        order = ratios.argsort(kind="stable")
        # Slope of ||u||_1 along the edge: 1 - |g_j| at the start, + 2 d_k past each breakpoint.
        slope = (1.0 - abs(gj)) + np.cumsum(2.0 * d[pos[order]])
        q = int((slope >= 0.0).argmax())
        k = int(pos[order[q]])
        theta = float(ratios[order[q]])
        flip = pos[order[:q]]
        x -= theta * d
        if flip.size:
            x[flip] = -x[flip]
            s[flip] = -s[flip]
            Binv[flip] = -Binv[flip]
            d[flip] = -d[flip]
        x[k] = theta
        piv = Binv[k] / d[k]
        d[k] -= 1.0
        # Binv <- Binv - (d - e_k) piv^T, in place on the Fortran view of the C-ordered array.
        blas.dger(-1.0, piv, d, a=Binv.T, overwrite_a=True)
        in_basis[S[k]] = False
        S[k] = j
        s[k] = sig
        in_basis[j] = True
        it += 1
        since += 1
        fresh = False
    return None


def admm_start_bases(A: np.ndarray, iterations: int, rho: float, block: int = 0) -> np.ndarray | None:
    r"""Start bases for every column from ``iterations`` ADMM steps on all basis-pursuit LPs at once.

    ADMM (Douglas-Rachford on :math:`u = v`) for :math:`\min \|v\|_1` s.t. :math:`A u = a_i`,
    :math:`u_i = 0`, penalty ``rho``:
    :math:`u \leftarrow \Pi_i(v - \lambda)`, :math:`v \leftarrow \operatorname{soft}(u + \lambda, 1/\rho)`,
    :math:`\lambda \leftarrow \lambda + u - v`.  The projection onto the affine set of column ``i`` is
    :math:`\Pi_i(x) = y - A_{-i}^T (A_{-i} A_{-i}^T)^{-1} (A y - a_i)` with :math:`y = x`, :math:`y_i = 0`,
    and :math:`(A_{-i} A_{-i}^T)^{-1} = G^{-1} + G^{-1} a_i a_i^T G^{-1} / (1 - a_i^T G^{-1} a_i)`
    (Sherman-Morrison, :math:`G = A A^T`), so a block of columns costs three matrix-matrix products per
    iteration.  Columns are processed in blocks of ``block`` (default: as many as fit in about 32 MB per
    array).  Returns an ``(n, m)`` integer array: row ``i`` holds the ``m`` atoms with the largest
    :math:`|u_j|` (``j != i``); ``None`` when ``A A^T`` is singular or the iterates are not finite.  Only the
    simplex's start depends on it.
    """
    with np.errstate(all="ignore"):      # an ill-conditioned A gives non-finite iterates: no guess then
        return _admm_start_bases(A, iterations, rho, block)


def _admm_start_bases(A: np.ndarray, iterations: int, rho: float, block: int) -> np.ndarray | None:
    m, n = A.shape
    try:
        Gi = np.linalg.inv(A @ A.T)
    except np.linalg.LinAlgError:
        return None
    GiA = Gi @ A
    lev = np.einsum("ij,ij->j", A, GiA)
    with np.errstate(divide="ignore"):
        sm = np.where(lev < 1.0 - 1e-9, 1.0 / (1.0 - lev), 0.0)   # a_i outside range(A_{-i}): no correction
    if not (np.isfinite(GiA).all() and np.isfinite(sm).all()):
        return None
    block = block or max(1, min(n, 4_000_000 // n))
    out = np.empty((n, m), dtype=np.intp)
    thr = 1.0 / rho
    for start in range(0, n, block):
        cols = np.arange(start, min(n, start + block))
        diag = (cols, np.arange(cols.size))       # the entries u_i of each column's own atom
        blk = (A[:, cols], GiA[:, cols], sm[cols], diag)
        V = _project(np.zeros((n, cols.size)), A, Gi, blk)
        L = np.zeros_like(V)
        U = V
        for _ in range(iterations):
            U = _project(V - L, A, Gi, blk)
            T = U + L
            L = np.clip(T, -thr, thr)        # the new multiplier: T - soft(T, thr)
            V = T - L                        # soft(T, thr)
        score = np.abs(U)
        if not np.isfinite(score).all():
            return None
        score[diag] = -np.inf
        out[cols] = np.argpartition(-score, m - 1, axis=0)[:m].T
    return out


def _project(X: np.ndarray, A: np.ndarray, Gi: np.ndarray, blk: tuple) -> np.ndarray:
    r"""In place: each column ``x_i`` of ``X`` onto :math:`\{u : A u = a_i, u_i = 0\}` (see admm_start_bases)."""
    Ab, GiAb, smb, diag = blk
    X[diag] = 0.0
    Z = Gi @ (A @ X - Ab)
    Z += GiAb * (np.einsum("ij,ij->j", Ab, Z) * smb)
    X -= A.T @ Z
    X[diag] = 0.0
    return X
