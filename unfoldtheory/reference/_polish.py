r"""Active-set polish of approximate LASSO solutions (feature-sign search), in float64.

Why polish
----------
Interior-point and first-order solvers return points whose objective is within ~1e-9 of the optimum but whose
zero pattern is wrong: coordinates that are exactly 0 at the optimum come back as 1e-10 (interior point) or
are missed/added near the threshold (first-order in float32).  The objective barely notices, the
subdifferential does: the optimality residual of such a point is ~0.1 relative.  The polish recovers the exact
optimum from its support and signs.

The optimality conditions of :math:`F(x) = \tfrac12\|Ax-y\|^2 + \lambda\|x\|_1`, with
:math:`g = A^T(Ax - y) = Gx - b` (:math:`G = A^TA`, :math:`b = A^Ty`), are

.. math:: g_i = -\lambda\,\mathrm{sign}(x_i) \ (x_i \ne 0), \qquad |g_j| \le \lambda \ (x_j = 0).

Given the support :math:`S` and the signs :math:`\theta_S` the first set is the linear system
:math:`G_{SS} x_S = b_S - \lambda\theta_S`, solved exactly (Cholesky).  When the guessed support or signs are
wrong, the feature-sign search of Lee, Battle, Raina & Ng ("Efficient sparse coding algorithms", NIPS 2007,
Algorithm 1) repairs them: it activates the most violating zero coordinate (sign :math:`-\mathrm{sign}(g_j)`),
solves the reduced system and line-searches over the zero crossings of the segment from the current point,
dropping coordinates that reach zero.  Each step strictly decreases :math:`F`, so it terminates at the exact
optimum (up to rounding) in finitely many steps.

Whatever the polish returns is checked by the caller against the library's duality gap; a polished point is
only kept when its gap is not larger than the unpolished one.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..operators import soft_threshold

#: A zero coordinate violates the conditions when ``|g_j| > lam * (1 + OFF_SLACK)``.  Smaller violations
#: change the relative duality gap by at most about ``OFF_SLACK`` and are below what rounding can resolve.
OFF_SLACK = 1e-10
#: Default bound on the feature-sign steps per instance.
MAX_STEPS = 200
#: Padded Gram blocks of the batched reduced solve are built in chunks of at most this many float64 entries.
_CHUNK_ENTRIES = 1 << 22


def ista_step(G: np.ndarray, B: np.ndarray, lam: float, L: float, X: np.ndarray) -> np.ndarray:
    r"""One proximal-gradient step :math:`\eta_{\lambda/L}(x - (Gx - b)/L)` per row, in float64.

    Used to read the support and signs off an approximate solution: it zeroes the coordinates with
    :math:`|g_j| < \lambda` that an interior-point solver leaves at 1e-10."""
    return soft_threshold(X - (X @ G - B) / L, lam / L)


def kkt_ok(G: np.ndarray, B: np.ndarray, lam: float, X: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Rows of ``X`` whose nonzero pattern and signs equal ``signs`` and with ``|g_j| <= lam`` off the support
    (the on-support equations hold by construction of a reduced solve)."""
    on = signs != 0
    same = (np.sign(X) == signs).all(axis=1)
    g = X @ G - B
    off = np.where(on, 0.0, np.abs(g)).max(axis=1, initial=0.0) <= lam * (1 + OFF_SLACK)
    return same & off


def reduced_solve(G: np.ndarray, B: np.ndarray, lam: float, Z: np.ndarray, rank_bound: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    r"""For every row ``z`` of ``Z``: solve :math:`G_{SS} x_S = b_S - \lambda\,\mathrm{sign}(z_S)` on
    :math:`S = \mathrm{supp}(z)`, batched.

    Rows are sorted by support size and processed in chunks; each chunk pads its Gram blocks to the
    largest support with the identity and makes one batched Cholesky solve.  Rows with a support larger than
    ``rank_bound`` (where :math:`G_{SS}` is singular) are skipped.

    Returns
    -------
    X : ndarray (batch, n)
        The reduced solutions (rows not solved are copies of ``Z``).
    ok : ndarray of bool (batch,)
        Rows where ``X`` satisfies all the optimality conditions (signs kept, no violation off the support).
    """
    mask = Z != 0
    k = mask.sum(axis=1)
    X = Z.copy()
    solved = np.zeros(len(Z), dtype=bool)
    rows = np.flatnonzero(k <= rank_bound)
    rows = rows[np.argsort(k[rows], kind="stable")]
    start = 0
    while start < len(rows):
        # grow the chunk while its padded size stays within budget (rows are sorted by support size)
        stop = start + 1
        while stop < len(rows) and (stop - start + 1) * max(int(k[rows[stop]]), 1) ** 2 <= _CHUNK_ENTRIES:
            stop += 1
        R = rows[start:stop]
        kmax = max(int(k[R].max()), 1)
        idx = np.argsort(~mask[R], axis=1, kind="stable")[:, :kmax]
        valid = np.arange(kmax)[None, :] < k[R][:, None]
        Gs = G[idx[:, :, None], idx[:, None, :]]
        Gs *= valid[:, :, None] & valid[:, None, :]
        diag = np.arange(kmax)
        Gs[:, diag, diag] += ~valid
        theta = np.sign(np.take_along_axis(Z[R], idx, axis=1)) * valid
        rhs = (np.take_along_axis(B[R], idx, axis=1) - lam * theta) * valid
        xs = _batched_spd_solve(Gs, rhs)
        good = np.isfinite(xs).all(axis=1)
        Xr = np.zeros((len(R), Z.shape[1]))
        np.put_along_axis(Xr, idx, np.where(valid, xs, 0.0), axis=1)
        X[R[good]] = Xr[good]
        solved[R[good]] = True
        start = stop
    ok = solved & kkt_ok(G, B, lam, X, np.sign(Z))
    return X, ok


def _batched_spd_solve(Gs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the SPD systems ``Gs[i] x = rhs[i]`` by Cholesky; rows whose matrix is not numerically
    positive definite come back as NaN.

    torch (MKL) is used for the batch: it splits the batch over its threads, whereas numpy's batched solve
    makes one multithreaded LAPACK call per small matrix, which is slow on a busy machine."""
    import torch

    G_t = torch.from_numpy(Gs)
    factor, info = torch.linalg.cholesky_ex(G_t)
    z = torch.linalg.solve_triangular(factor, torch.from_numpy(rhs)[..., None], upper=False)
    xs = torch.linalg.solve_triangular(factor.mT, z, upper=True)[..., 0].numpy()
    xs[info.numpy() != 0] = np.nan
    return xs


def _objective(Gaa: np.ndarray, ba: np.ndarray, lam: float, P: np.ndarray) -> np.ndarray:
    """:math:`\\tfrac12 x^TGx - b^Tx + \\lambda\\|x\\|_1` (F up to a constant) for each row of ``P``."""
    return 0.5 * np.einsum("ci,ci->c", P @ Gaa, P) - P @ ba + lam * np.abs(P).sum(axis=1)


def feature_sign(G: np.ndarray, b: np.ndarray, lam: float, x: np.ndarray, max_steps: int = MAX_STEPS
                 ) -> np.ndarray:
    r"""Feature-sign search (Lee et al., NIPS 2007) from ``x`` for one instance; returns the polished point.

    Parameters
    ----------
    G, b : ndarray
        :math:`A^TA` (n, n) and :math:`A^Ty` (n,), float64.
    x : ndarray (n,)
        Start.  Its nonzeros and their signs are the initial active set.
    max_steps : int
        Bound on the number of reduced solves.

    Notes
    -----
    When :math:`G_{SS}` is singular (more active coordinates than the rank of :math:`A`), the reduced
    objective is linear along a null vector :math:`v` of :math:`A_S`: the step moves along the null vector
    that decreases :math:`\lambda\theta^Tx` up to the first zero crossing, removing one coordinate.
    """
    x = np.array(x, dtype=float)
    g = G @ x - b
    on_ok = False  # True when the nonzeros satisfy g_S = -lam sign(x_S) (after a full reduced step)
    for _ in range(max_steps):
        active = np.flatnonzero(x)
        theta = np.sign(x[active])
        if on_ok:
            viol = np.where(x == 0, np.abs(g), 0.0)
            j = int(np.argmax(viol))
            if viol[j] <= lam * (1 + OFF_SLACK):
                break
            pos = np.searchsorted(active, j)
            active = np.insert(active, pos, j)
            theta = np.insert(theta, pos, -np.sign(g[j]))
        if active.size == 0:
            break
        Gaa = G[np.ix_(active, active)]
        ba = b[active]
        xa = x[active]
        new, full = _reduced_step(Gaa, ba, lam, xa, theta)
        if new is None:
            break
        # line search over the zero crossings of the segment xa -> new, and its end point
        d = new - xa
        ci = np.flatnonzero((xa != 0) & (np.sign(new) != np.sign(xa)))
        ts = xa[ci] / (xa[ci] - new[ci])
        keep = (ts > 0) & (ts < 1)
        ci, ts = ci[keep], ts[keep]
        cand_t = np.concatenate([ts, [1.0]]) if full else ts
        if cand_t.size == 0:
            break
        P = xa[None, :] + cand_t[:, None] * d[None, :]
        P[np.arange(ci.size), ci] = 0.0  # a crossing point sets its coordinate exactly to zero
        best = int(np.argmin(_objective(Gaa, ba, lam, P)))
        x[active] = P[best]
        # the conditions on the support hold after a full step that kept every sign (a full step that
        # flipped a sign is a valid descent point, but its signs need another reduced solve)
        on_ok = full and best == len(cand_t) - 1 and bool(np.all(np.sign(P[best]) == theta))
        g = G[:, active] @ x[active] - b
    return x


def _reduced_step(Gaa: np.ndarray, ba: np.ndarray, lam: float, xa: np.ndarray, theta: np.ndarray
                  ) -> tuple[np.ndarray | None, bool]:
    """The minimiser of the reduced quadratic with signs ``theta`` (``full=True``), or, when it does not
    exist (singular ``Gaa`` and an objective unbounded along a null vector), a point past the first zero
    crossing of that descent ray, for the line search (``full=False``).  None when no coordinate shrinks."""
    rhs = ba - lam * theta
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(Gaa, check_finite=False), rhs,
                                      check_finite=False), True
    except (np.linalg.LinAlgError, ValueError):
        pass
    w, V = np.linalg.eigh(Gaa)
    null = w <= max(w[-1], 0.0) * Gaa.shape[0] * 1e-13
    Vn = V[:, null]
    lin = Vn.T @ theta
    if not null.any() or np.abs(lin).max() <= 1e-12 * np.linalg.norm(theta):
        # bounded quadratic: a minimiser exists; take the least-squares one
        return np.linalg.lstsq(Gaa, rhs, rcond=None)[0], True
    v = Vn @ lin
    v = -v / np.linalg.norm(v)  # lam theta^T v < 0: the objective decreases linearly along v
    shrink = (xa * v) < 0  # coordinates moving towards zero
    if not shrink.any():
        return None, False
    t = np.min(-xa[shrink] / v[shrink])
    return xa + 1.5 * t * v, False  # the segment crosses zero at t; the line search stops there


def polish(G: np.ndarray, B: np.ndarray, lam: float, L: float, X: np.ndarray, rank_bound: int,
           max_steps: int = MAX_STEPS, max_violations: int | None = None, max_support: int | None = None
           ) -> np.ndarray:
    """Polish each row of ``X``: ISTA step (support and signs), batched reduced solve, and feature-sign
    search for the rows where that is not optimal.  The caller compares duality gaps before accepting.

    ``max_violations`` and ``max_support`` restrict the feature-sign search to plausible starts (the fast
    path sets them; the polish of a solver's answer does not): at most ``max_support`` nonzeros, and at most
    ``max_violations`` violated conditions after the reduced solve (sign flips plus violations off the
    support).  From a poor start the search needs about one step per wrong coordinate, and each step with
    more active coordinates than rank(A) needs an eigendecomposition; more first-order iterations, or a
    solver, are cheaper.  Rows that are not polished are returned unchanged.
    """
    if max_steps <= 0:
        return X.copy()
    Z = ista_step(G, B, lam, L, X)
    Xp, ok = reduced_solve(G, B, lam, Z, rank_bound)
    S = np.sign(Z)
    run = ~ok
    if max_support is not None:
        run &= (S != 0).sum(axis=1) <= max_support
    if max_violations is not None:
        flips = ((np.sign(Xp) != S) & (S != 0)).sum(axis=1)
        off = ((np.abs(Xp @ G - B) > lam * (1 + OFF_SLACK)) & (S == 0)).sum(axis=1)
        run &= flips + off <= max_violations
    for i in np.flatnonzero(~ok):
        Xp[i] = feature_sign(G, B[i], lam, Z[i], max_steps) if run[i] else X[i]
    return Xp
