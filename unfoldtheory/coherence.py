r"""Mutual coherence, generalized mutual coherence and the analytic weight of ALISTA.

For a dictionary :math:`A \in \mathbb{R}^{m \times n}` (``m`` measurements, ``n`` atoms; the theory assumes
unit-norm columns :math:`\|a_i\|_2 = 1`):

:func:`mutual_coherence`
    :math:`\mu(A) = \max_{i \ne j} |a_i^T a_j| / (\|a_i\| \|a_j\|)`.
:func:`analytic_weight`
    ALISTA stage 1 (Liu, Chen, Wang, Yin, ICLR 2019, eq. 17): the Frobenius surrogate
    :math:`\min_W \|W^T A\|_F^2` s.t. :math:`\operatorname{diag}(W^T A) = 1`, in closed form per column,
    :math:`w_i = G^{-1} a_i / (a_i^T G^{-1} a_i)` with :math:`G = A A^T`.
:func:`generalized_coherence`
    ALISTA Definition 1 (eqs. 8-9): :math:`W \in \arg\min \max_{i \ne j} |w_i^T a_j|` over
    :math:`\operatorname{diag}(W^T A) = 1`, and :math:`\tilde\mu(A) = \max_{i \ne j} |w_i^T a_j|`.  The
    problem separates into one linear program per column, solved by a verified long-step simplex on its
    basis-pursuit dual (docs/theory/lista_alista.md §4), or one HiGHS / cvxpy LP per column.
:func:`generalized_coherence_certificate`
    The same, with per-column upper values and float64-verified dual lower bounds.

Known relations (tested): :math:`\tilde\mu(A) \le \mu(A)` (``W = A`` with unit columns is feasible) and
:math:`\tilde\mu(A) \le \max_{i\ne j}|\tilde w_i^T a_j|` for the analytic weight :math:`\tilde W`; the
analytic weight decreases the *Frobenius* norm of the off-diagonal of :math:`W^T A` but **not** necessarily
its maximum (docs/theory/lista_alista.md §2).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_matrix
from .errors import InvalidInputError, SolverAttempt, SolverError

logger = logging.getLogger("unfoldtheory.coherence")

__all__ = ["analytic_weight", "mutual_coherence", "generalized_coherence", "generalized_coherence_certificate",
           "CoherenceCertificate", "offdiag_max", "offdiag_frobenius"]

#: Tolerance on ``| ||a_i|| - 1 |`` below which columns count as unit-norm.
UNIT_NORM_TOL = 1e-6
#: Default cvxpy solvers (in order) for the per-column linear programs.
LP_SOLVERS = ("HIGHS", "CLARABEL", "SCS")
#: Batched ADMM iterations that guess the simplex's start bases, and the ADMM penalty per row of ``A``
#: (docs/theory/lista_alista.md §4; they change the work, never the result).
ADMM_ITERATIONS = 100
ADMM_RHO_PER_ROW = 0.125


# ------------------------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _silenced_stdout():
    """Redirect the process's file descriptor 1 to /dev/null (C-level output included) for the block; a no-op
    where stdout has no file descriptor (e.g. some notebook kernels)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _check_dictionary(A: Any, name: str = "A") -> np.ndarray:
    A = check_matrix(A, name)
    if A.shape[1] < 2:
        raise InvalidInputError(f"{name} must have at least 2 columns (atoms) for a coherence to be defined; "
                                f"got shape {A.shape}.")
    norms = np.linalg.norm(A, axis=0)
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise InvalidInputError(f"{name} has {zero.size} zero column(s) (first: column {int(zero[0])}); the "
                                f"constraint w_i^T a_i = 1 cannot hold for a zero atom. Remove zero columns.")
    return A


def _warn_if_not_unit_norm(A: np.ndarray, name: str, func: str) -> None:
    norms = np.linalg.norm(A, axis=0)
    dev = float(np.max(np.abs(norms - 1.0)))
    if dev > UNIT_NORM_TOL:
        warnings.warn(
            f"{func}: the columns of {name} are not unit-norm (max | ||a_i|| - 1 | = {dev:.3g}); the "
            f"ALISTA/LISTA-CP theory assumes unit-norm atoms. Normalize with "
            f"{name} / np.linalg.norm({name}, axis=0).",
            UserWarning, stacklevel=3)


def offdiag_max(W: Any, A: Any) -> float:
    r""":math:`\max_{i \ne j} |w_i^T a_j|`, computed in float64 (the coherence achieved by ``W``)."""
    M = np.asarray(W, dtype=np.float64).T @ np.asarray(A, dtype=np.float64)
    np.fill_diagonal(M, 0.0)
    return float(np.max(np.abs(M)))


def offdiag_frobenius(W: Any, A: Any) -> float:
    r""":math:`\|\operatorname{offdiag}(W^T A)\|_F`, computed in float64."""
    M = np.asarray(W, dtype=np.float64).T @ np.asarray(A, dtype=np.float64)
    np.fill_diagonal(M, 0.0)
    return float(np.linalg.norm(M))


# ------------------------------------------------------------------------------------------ coherences
def mutual_coherence(A: Any) -> float:
    r"""Mutual coherence :math:`\mu(A) = \max_{i \ne j} |a_i^T a_j| / (\|a_i\|_2 \|a_j\|_2)`.

    Parameters
    ----------
    A : array_like, shape (m, n)
        Dictionary with ``n >= 2`` nonzero columns (normalised internally, so unit norms are not required).

    Returns
    -------
    float
        The mutual coherence, in ``[0, 1]``.

    Raises
    ------
    InvalidInputError
        ``A`` is not a finite 2-D array, has fewer than 2 columns, or has a zero column.
    """
    A = _check_dictionary(A)
    An = A / np.linalg.norm(A, axis=0)
    return min(1.0, offdiag_max(An, An))


def analytic_weight(A: Any) -> np.ndarray:
    r"""Analytic weight of ALISTA stage 1, in closed form.

    Problem
        :math:`\min_{W \in \mathbb{R}^{m\times n}} \|W^T A\|_F^2` subject to :math:`w_i^T a_i = 1` for every
        column ``i`` (Liu, Chen, Wang, Yin, "ALISTA", ICLR 2019, eq. 17).
    Solution
        The problem separates per column into :math:`\min_w w^T G w` s.t. :math:`a_i^T w = 1` with
        :math:`G = A A^T`, whose unique solution (``A`` of full row rank) is
        :math:`w_i = G^{-1} a_i / (a_i^T G^{-1} a_i)`.  It is computed from the thin SVD
        :math:`A = U S V^T`: :math:`G^{-1} A = U S^{-1} V^T` and
        :math:`a_i^T G^{-1} a_i = \|V_{i,:}\|^2`, which avoids squaring the condition number.
    Guarantee
        Exact minimiser (up to floating point).  :math:`\operatorname{diag}(W^T A) = 1` and
        :math:`\|\operatorname{offdiag}(W^T A)\|_F \le \|\operatorname{offdiag}(A^T A)\|_F` when the columns
        have unit norm (``W = A`` is then feasible).  It does **not** guarantee a smaller *maximum*
        off-diagonal entry than ``A^T A``; use :func:`generalized_coherence` for the minimax weight of
        Definition 1.

    Parameters
    ----------
    A : array_like, shape (m, n)
        Dictionary of full row rank ``m`` (so ``m <= n``), no zero column.  Unit-norm columns are what the
        theory assumes but are not required here.

    Returns
    -------
    W : ndarray, shape (m, n), float64

    Raises
    ------
    InvalidInputError
        ``A`` is not finite / 2-D, has a zero column, or is not of full row rank (``G = A A^T`` singular).
    """
    A = _check_dictionary(A)
    m, n = A.shape
    if m > n:
        raise InvalidInputError(f"A must have full row rank, so at most as many rows as columns; got shape "
                                f"{A.shape} (m={m} > n={n}), for which G = A A^T is singular. Use a wide "
                                f"dictionary (m <= n).")
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    tol = max(m, n) * np.finfo(np.float64).eps * s[0] * 10.0
    if s[-1] <= tol:
        rank = int(np.sum(s > tol))
        raise InvalidInputError(
            f"A must have full row rank for the analytic weight (G = A A^T invertible); its numerical rank "
            f"is {rank} < m = {m} (smallest singular value {s[-1]:.3g})."
            f" Remove linearly dependent rows of A.")
    X = (U / s) @ Vt                       # G^{-1} A
    lev = np.einsum("ij,ij->j", Vt, Vt)    # a_i^T G^{-1} a_i
    W = X / lev
    return W


@dataclass
class CoherenceCertificate:
    r"""Result of :func:`generalized_coherence_certificate`: a minimax weight with per-column brackets.

    Attributes
    ----------
    W : ndarray, shape (m, n)
        Feasible weight: :math:`w_i^T a_i = 1` in float64 for every column.
    mu : float
        :math:`\max_{i \ne j} |w_i^T a_j|` recomputed from ``W`` (an upper bound on :math:`\tilde\mu(A)`,
        equal to it up to the LP tolerance).
    column_upper : ndarray, shape (n,)
        :math:`\max_{j \ne i} |w_i^T a_j|` per column, from ``W``: an upper bound on the column optimum
        :math:`\tilde\mu_i`.
    column_lower : ndarray, shape (n,)
        Float64-verified dual lower bound on :math:`\tilde\mu_i` (docs/theory/lista_alista.md §4); ``nan``
        for columns solved by the LP fallback, whose value is the solver's (``column_method`` says which).
    column_method : list of str
        ``"simplex"`` or the LP solver that produced the column.
    iterations : int
        Simplex pivots over all columns solved by the simplex.
    seconds : float
        Wall-clock time of the whole computation.
    """

    W: np.ndarray
    mu: float
    column_upper: np.ndarray
    column_lower: np.ndarray
    column_method: list[str]
    iterations: int
    seconds: float

    @property
    def lower(self) -> float:
        r"""A lower bound on :math:`\tilde\mu(A)`: the largest verified column lower bound (``nan`` if none)."""
        vals = self.column_lower[np.isfinite(self.column_lower)]
        return float(np.max(vals)) if vals.size else float("nan")


def generalized_coherence(A: Any, solver: str | list[str] | None = None, *, method: str = "simplex",
                          verbose: bool = False) -> tuple[np.ndarray, float]:
    r"""Generalized mutual coherence of ALISTA (Definition 1) and a minimising weight.

    Problem
        :math:`\min_{W} \max_{i \ne j} |w_i^T a_j|` subject to :math:`w_i^T a_i = 1` for all ``i``
        (Liu, Chen, Wang, Yin, "ALISTA: Analytic weights are as good as learned weights in LISTA", ICLR 2019,
        Definition 1, eqs. 8-9).  :math:`\tilde\mu(A)` is the optimal value.
    Algorithm
        The problem separates into ``n`` linear programs, one per column:
        :math:`\tilde\mu_i = \min_{w, t} t` s.t. :math:`|w^T a_j| \le t` (``j != i``),
        :math:`w^T a_i = 1`, and :math:`\tilde\mu = \max_i \tilde\mu_i` (any column may use its own
        optimum since the objective is a maximum over columns).  Each LP is solved through its dual, the
        basis-pursuit problem :math:`\min \|u\|_1` s.t. :math:`A_{-i} u = a_i`
        (so :math:`\tilde\mu_i = 1/\|u^\star\|_1`), whose optimal basis gives :math:`w_i`.

        ``method="simplex"`` (default): a dense long-step primal simplex on the basis-pursuit LP, started
        from a support guessed by 100 batched ADMM steps on all columns at once and finished by a float64
        verification of the final basis (docs/theory/lista_alista.md §4); it runs with one BLAS thread
        (threadpoolctl, restored afterwards).  Columns it does not certify (and every column when
        ``m >= n`` or ``A`` is not of full row rank) go to the LP path.

        ``method="lp"``: one LP per column, with the default ``solver=None`` one HiGHS model (``highspy``,
        no cvxpy) built once and re-solved per column by the warm-started dual simplex; with an explicit
        ``solver`` (or for columns where HiGHS fails) one parametrised cvxpy problem compiled once, and the
        primal LP as the last fallback.
    Guarantee
        Every returned column is rescaled so that :math:`w_i^T a_i = 1` in float64, and ``mu_tilde`` is
        recomputed from the returned ``W`` as :math:`\max_{i\ne j}|w_i^T a_j|` (never the solver's objective):
        it is the coherence *achieved* by a feasible ``W``, hence an upper bound on the exact optimum.  A
        column from the simplex also carries a float64-verified dual lower bound within ``1e-10`` relative
        of its value; a warning is issued when ``mu_tilde`` exceeds the largest column value reported by
        the solvers (or verified lower bound) by more than 1e-6 relative.
        :func:`generalized_coherence_certificate` returns the per-column brackets.

    Parameters
    ----------
    A : array_like, shape (m, n)
        Dictionary, ``n >= 2`` nonzero columns.  The theory assumes unit-norm columns; a ``UserWarning`` is
        issued otherwise (the value is then scale dependent: scaling column ``j`` by ``c`` scales the entries
        ``|w_i^T a_j|``, ``i != j``, by ``c``).
    solver : str or list of str, optional
        cvxpy solver name(s) to try in order on the LP path.  Default ``None``: HiGHS called directly
        through ``highspy``, then (for failed columns) cvxpy with ``("HIGHS", "CLARABEL", "SCS")``
        (installed ones).
    method : {"simplex", "lp"}
        ``"simplex"`` (default) or ``"lp"`` (one LP per column, the reference), see Algorithm.
    verbose : bool
        Log progress at INFO level.

    Returns
    -------
    W : ndarray, shape (m, n)
        A minimiser of Definition 1 (not unique in general).
    mu_tilde : float
        :math:`\max_{i \ne j} |w_i^T a_j|` for the returned ``W``.

    Raises
    ------
    InvalidInputError
        Bad ``A`` (non-finite, fewer than 2 columns, zero column), bad ``solver`` or ``method``.
    SolverError
        Every solver failed on some column.

    Notes
    -----
    Cost at (m, n) = (250, 500), unit-norm Gaussian ``A``, measured on a shared 2-core machine:
    ``method="simplex"`` about 5 s of CPU (about 18 pivots per column), ``method="lp"`` about 7 minutes of
    CPU (``verification/benchmarks/bench_coherence.py``; docs/theory/lista_alista.md §4).
    """
    cert = _generalized_coherence(A, solver, method, verbose, stacklevel=3)
    return cert.W, cert.mu


def generalized_coherence_certificate(A: Any, solver: str | list[str] | None = None, *,
                                      method: str = "simplex", verbose: bool = False) -> CoherenceCertificate:
    r""":func:`generalized_coherence` with its per-column brackets (a :class:`CoherenceCertificate`).

    Same problem, algorithm, parameters and errors as :func:`generalized_coherence`.  Every column ``i``
    has ``column_upper[i]`` (attained by the returned feasible ``W``) and, where the simplex solved it,
    ``column_lower[i]``, a float64-verified dual bound (docs/theory/lista_alista.md §4), so
    :math:`\max_i` ``column_lower`` :math:`\le \tilde\mu(A) \le` ``mu``.
    """
    return _generalized_coherence(A, solver, method, verbose, stacklevel=3)


def _generalized_coherence(A: Any, solver: Any, method: Any, verbose: bool, stacklevel: int
                           ) -> CoherenceCertificate:
    A = _check_dictionary(A)
    _warn_if_not_unit_norm(A, "A", "generalized_coherence")
    if method not in ("simplex", "lp"):
        raise InvalidInputError(f"method must be 'simplex' (default) or 'lp' (one LP per column); "
                                f"got {method!r}.")
    from .reference._common import resolve_solvers  # light module; imports cvxpy lazily

    # An explicit solver is validated up front; the default order only when the cvxpy path is needed (cvxpy
    # takes seconds to import and the simplex and HiGHS paths do not use it).
    order = resolve_solvers(solver, LP_SOLVERS) if solver is not None else None
    m, n = A.shape
    t0 = time.perf_counter()
    W = np.empty((m, n))
    solver_values = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    col_method = [""] * n
    used: set[str] = set()
    todo = list(range(n))
    iterations = 0
    if method == "simplex":
        todo, iterations = _simplex_columns(A, W, lower, col_method, verbose)
        solver_values[:] = lower
        if len(todo) < n:
            used.add("simplex")
        if todo:
            logger.info("generalized_coherence: %d of %d columns left to the LP path", len(todo), n)
    if todo and solver is None:
        todo = _highs_direct(A, W, solver_values, used, verbose, todo, col_method)
    if todo:
        import cvxpy as cp

        if order is None:
            order = resolve_solvers(None, LP_SOLVERS)
        # Basis pursuit, parametrised by the right-hand side and by a mask that forces u_i = 0.
        u = cp.Variable(n)
        rhs = cp.Parameter(m)
        mask = cp.Parameter(n, nonneg=True)
        eq = A @ u == rhs
        bp = cp.Problem(cp.Minimize(cp.norm1(u)), [eq, cp.multiply(mask, u) == 0])
        for count, i in enumerate(todo):
            a_i = A[:, i]
            rhs.value = a_i
            mk = np.zeros(n)
            mk[i] = 1.0
            mask.value = mk
            with warnings.catch_warnings():     # cvxpy's bound propagation warns on degenerate data
                warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"cvxpy\.")
                w, val, name = _solve_column(bp, eq, A, i, order, cp)
            used.add(name)
            col_method[i] = name
            W[:, i] = w / float(a_i @ w)       # exact feasibility of the diagonal constraint in float64
            solver_values[i] = val
            if verbose and (count + 1) % max(1, len(todo) // 10) == 0:
                logger.info("generalized_coherence: %d/%d columns (%.1f s)", count + 1, len(todo),
                            time.perf_counter() - t0)
    M = W.T @ A
    np.fill_diagonal(M, 0.0)
    column_upper = np.max(np.abs(M), axis=1)
    mu_tilde = float(np.max(column_upper))          # = offdiag_max(W, A)
    mu_solver = float(np.max(solver_values))
    if mu_tilde > mu_solver * (1 + 1e-6) + 1e-12:
        warnings.warn(f"generalized_coherence: the coherence achieved by the returned W ({mu_tilde:.9g}) "
                      f"exceeds the LP optimum reported by {sorted(used)} ({mu_solver:.9g}); the solve was "
                      f"inaccurate. Try solver='CLARABEL'.", UserWarning, stacklevel=stacklevel)
    seconds = time.perf_counter() - t0
    logger.debug("generalized_coherence: m=%d n=%d mu_tilde=%.6g in %.2f s (%s)", m, n, mu_tilde, seconds,
                 sorted(used))
    return CoherenceCertificate(W, mu_tilde, column_upper, lower, col_method, iterations, seconds)


def _simplex_columns(A: np.ndarray, W: np.ndarray, lower: np.ndarray, col_method: list[str],
                     verbose: bool) -> tuple[list[int], int]:
    r"""Solve every column LP by :func:`unfoldtheory._bp_simplex.bp_simplex` (docs/theory/lista_alista.md §4).

    The start basis of column ``i`` is the support guessed by ``ADMM_ITERATIONS`` batched ADMM steps
    (:func:`unfoldtheory._bp_simplex.admm_start_bases`); where that start fails (singular), the ``m`` atoms
    :math:`a_j` (``j != i``) with the largest :math:`|\tilde w_i^T a_j|` for the analytic weight
    :math:`\tilde w_i` (:func:`analytic_weight`).  Fills ``W[:, i]`` and ``lower[i]`` for the certified
    columns; returns the others and the pivot count.
    """
    from threadpoolctl import threadpool_limits

    m, n = A.shape
    if m >= n:      # A_{-i} has fewer than m columns: no basis; the LP path handles it
        return list(range(n)), 0
    try:
        Wa = analytic_weight(A)
    except InvalidInputError:      # not of full row rank: no nonsingular basis exists
        return list(range(n)), 0
    # The pivots are matrix-vector products and rank-one updates of size m, the ADMM products of size
    # (m, n, n): a BLAS pool of several threads only adds synchronisation on a shared machine (measured at
    # (250, 500) on a loaded 2-core machine: 408 s with 2 BLAS threads against 17 s with one), so this runs
    # with one BLAS thread and restores the caller's pools afterwards.
    with threadpool_limits(limits=1, user_api="blas"):
        return _simplex_loop(A, Wa, W, lower, col_method, verbose)


def _simplex_loop(A: np.ndarray, Wa: np.ndarray, W: np.ndarray, lower: np.ndarray, col_method: list[str],
                  verbose: bool) -> tuple[list[int], int]:
    """The body of :func:`_simplex_columns` (start bases, then one verified simplex per column)."""
    from ._bp_simplex import admm_start_bases, bp_simplex

    m, n = A.shape
    t0 = time.perf_counter()
    starts = admm_start_bases(A, ADMM_ITERATIONS, ADMM_RHO_PER_ROW * m)
    scores = np.abs(Wa.T @ A)      # row i: |w~_i^T a_j|
    At = np.ascontiguousarray(A.T)
    max_iter = 20 * m + 200
    failed: list[int] = []
    iterations = 0
    for i in range(n):
        res = bp_simplex(A, At, i, starts[i], max_iter) if starts is not None else None
        if res is None:
            row = scores[i]
            row[i] = -np.inf
            res = bp_simplex(A, At, i, np.argpartition(-row, m - 1)[:m], max_iter)
        if res is None:
            failed.append(i)
            continue
        W[:, i] = res.w
        lower[i] = res.lower
        col_method[i] = "simplex"
        iterations += res.iterations
        if verbose and (i + 1) % max(1, n // 10) == 0:
            logger.info("generalized_coherence: simplex %d/%d columns (%.1f s, %d pivots)", i + 1, n,
                        time.perf_counter() - t0, iterations)
    return failed, iterations


def _highs_direct(A: np.ndarray, W: np.ndarray, values: np.ndarray, used: set, verbose: bool,
                  columns: list[int], col_method: list[str]) -> list[int]:
    r"""Solve the per-column basis-pursuit LPs with one HiGHS model built once (no cvxpy).

    The model :math:`\min 1^T(u^+ + u^-)` s.t. :math:`A(u^+ - u^-) = a_i`, :math:`u^\pm \ge 0` is passed to
    HiGHS once; column ``i`` only changes the right-hand side and fixes :math:`u^\pm_i = 0`, and the dual
    simplex restarts from the previous column's optimal basis.  The equality multipliers are :math:`w_i` (up
    to scale), the optimal value is :math:`1/\tilde\mu_i`.  For each ``i`` in ``columns``, fills ``W[:, i]``
    (rescaled so that :math:`w_i^T a_i = 1`), ``values[i]`` and ``col_method[i]``; returns the columns that
    failed (left to the cvxpy path).  Returns every column when ``highspy`` is not installed.
    """
    m, n = A.shape
    try:
        import highspy
        import scipy.sparse as sp
    except ImportError:      # pragma: no cover - highspy ships with cvxpy's HiGHS interface
        return list(columns)
    t0 = time.perf_counter()
    with _silenced_stdout():  # HiGHS prints a banner from C when the first model is created
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 2 * n, m
    lp.col_cost_ = np.ones(2 * n)
    lp.col_lower_ = np.zeros(2 * n)
    lp.col_upper_ = np.full(2 * n, inf)
    lp.row_lower_ = np.zeros(m)
    lp.row_upper_ = np.zeros(m)
    M = sp.csc_matrix(np.hstack([A, -A]))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = M.indptr.astype(np.int32)
    lp.a_matrix_.index_ = M.indices.astype(np.int32)
    lp.a_matrix_.value_ = M.data
    if h.passModel(lp) != highspy.HighsStatus.kOk:
        return list(columns)
    rows = np.arange(m, dtype=np.int32)
    failed = []
    for i in columns:
        pair = np.array([i, n + i], dtype=np.int32)
        a_i = np.ascontiguousarray(A[:, i])
        h.changeColsBounds(2, pair, np.zeros(2), np.zeros(2))
        h.changeRowsBounds(m, rows, a_i, a_i)
        ok = h.run() == highspy.HighsStatus.kOk and h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        if ok:     # read the solution before the bounds change (which invalidates it)
            w = np.asarray(h.getSolution().row_dual, dtype=np.float64)
            obj = float(h.getInfo().objective_function_value)
        h.changeColsBounds(2, pair, np.zeros(2), np.full(2, inf))
        if ok:
            d = float(a_i @ w)
            if w.shape == (m,) and np.isfinite(w).all() and abs(d) > 1e-12 * max(np.linalg.norm(w), 1e-300) \
                    and obj > 0:
                W[:, i] = w / d
                values[i] = 1.0 / obj
                col_method[i] = "HIGHS (highspy)"
                continue
        h.clearSolver()       # do not restart the next column from a bad state
        failed.append(i)
    used.add("HIGHS (highspy, warm-started)")
    if verbose:
        logger.info("generalized_coherence: HiGHS direct %d columns in %.2f s (%d left to cvxpy)", len(columns),
                    time.perf_counter() - t0, len(failed))
    return failed


def _solve_column(bp, eq, A: np.ndarray, i: int, order: list[str], cp) -> tuple[np.ndarray, float, str]:
    """Solve the LP of column ``i``: basis pursuit (dual) first, the primal LP as a fallback.

    Returns ``(w, value, solver)``, ``w`` not yet rescaled.
    """
    attempts: list[SolverAttempt] = []
    a_i = A[:, i]
    for name in order:
        try:
            bp.solve(solver=name)
        except cp.error.SolverError as exc:
            attempts.append(SolverAttempt(name, "error", str(exc)[:80]))
            continue
        if bp.status == cp.OPTIMAL and eq.dual_value is not None:
            v = np.asarray(eq.dual_value, dtype=np.float64).ravel()
            s = float(a_i @ v)
            if np.isfinite(v).all() and abs(s) > 0:
                return v, 1.0 / float(bp.value), name
            attempts.append(SolverAttempt(name, bp.status, "degenerate multipliers"))
            continue
        if bp.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            break      # a_i is not in the span of the other columns: the primal LP has value 0
        attempts.append(SolverAttempt(name, str(bp.status)))
    # Primal LP: min t s.t. |A_{-i}^T w| <= t, a_i^T w = 1.
    B = np.delete(A, i, axis=1)
    w = cp.Variable(A.shape[0])
    t = cp.Variable()
    lp = cp.Problem(cp.Minimize(t), [cp.abs(B.T @ w) <= t, a_i @ w == 1])
    for name in order:
        try:
            lp.solve(solver=name)
        except cp.error.SolverError as exc:
            attempts.append(SolverAttempt(name + " (primal LP)", "error", str(exc)[:80]))
            continue
        if lp.status == cp.OPTIMAL and w.value is not None:
            return np.asarray(w.value, dtype=np.float64), float(t.value), name
        attempts.append(SolverAttempt(name + " (primal LP)", str(lp.status)))
    raise SolverError(f"generalized_coherence: the linear program of column {i} could not be solved.",
                      attempts)
