r"""Certified reference optima for LASSO and robust PCA.

:func:`solve` returns a :class:`Solution` whose ``gap`` is computed by the library itself (the problem
class's ``duality_gap``, rounded outward), never taken from a solver.  An instance is ``"optimal"`` exactly
when its relative gap is at most ``tol``; that inequality is a proof that the returned point is within
``tol * F(x)`` of the optimal value.

LASSO
-----
Primal :math:`\min_x F(x) = \tfrac12\|Ax-y\|_2^2 + \lambda\|x\|_1`, Fenchel dual
:math:`\max_u\, u^Ty - \tfrac12\|u\|_2^2` s.t. :math:`\|A^Tu\|_\infty \le \lambda`.  The gap is evaluated at
the dual point :math:`u = s(y - Ax)` scaled into the dual set, so :math:`F(x) - F^\star \le` ``gap`` for
every ``x``.  Two methods:

* ``"cvxpy"``, the reference: Clarabel, then OSQP, then SCS (those installed), each answer polished by an
  exact active-set step (below) and accepted only if its certified gap is within ``tol``.
* ``"fast"`` (the default for LASSO): batched FISTA in float32 (Beck & Teboulle, SIAM J. Imaging Sci. 2009)
  with adaptive restart (O'Donoghue & Candès, Found. Comput. Math. 2015) to find the support and signs,
  then the float64 polish, then the certificate; uncertified instances get more iterations and finally
  the cvxpy path (``sol.solver`` says ``"cvxpy:<SOLVER>"`` for them).

The polish solves the optimality conditions on the support exactly,
:math:`A_S^TA_S x_S = A_S^Ty - \lambda\,\mathrm{sign}(x_S)`, and repairs wrong supports or signs with the
feature-sign search of Lee, Battle, Raina & Ng ("Efficient sparse coding algorithms", NIPS 2007).  It is kept
only where it does not increase the gap.  Solver output has 1e-10 entries where the optimum has exact
zeros, which leaves the subdifferential residual at ~0.1 relative; after the polish it is ~1e-12.

Robust PCA
----------
:math:`\min \|L\|_* + \lambda\|S\|_1` s.t. :math:`L + S = M`, dual :math:`\max\langle Y, M\rangle` s.t.
:math:`\|Y\|_2 \le 1,\ \|Y\|_\infty \le \lambda`.  Solved through cvxpy (Clarabel, then SCS) with the
multiplier of ``L + S == M`` as dual candidate; ``S = M - L`` so the pair is feasible by construction.
The default tolerance is 1e-6 relative: semidefinite interior-point solutions are less accurate.

Examples
--------
>>> import unfoldtheory as ut
>>> gen = ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0)
>>> prob, y = gen.lasso(0.05), gen.sample(16, seed=1).y
>>> sol = ut.reference.solve(prob, y)
>>> bool(sol.certified.all()), sol.x.shape
(True, (16, 40))
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._validation import as_float_array, check_observations, check_scalar
from ..errors import InvalidInputError
from ..problems import RPCA, Lasso
from ._common import LASSO_SOLVERS, RPCA_SOLVERS, resolve_solvers
from ._rpca import RPCA_TOL
from ._solution import InaccurateSolutionWarning, RPCASolution, Solution, _squeeze, certify

__all__ = ["solve", "Solution", "RPCASolution", "InaccurateSolutionWarning", "LASSO_TOL", "RPCA_TOL",
           "METHODS"]

#: Default relative-gap tolerance for LASSO.
LASSO_TOL = 1e-8
#: Accepted values of ``method``.
METHODS = ("auto", "fast", "cvxpy")


def solve(problem: Lasso | RPCA, y: Any, *, method: str = "auto", solver: str | Sequence[str] | None = None,
          tol: float | None = None) -> Solution:
    r"""Certified reference optimum of a LASSO or robust-PCA problem, for one instance or a batch.

    Parameters
    ----------
    problem : Lasso or RPCA
        The problem (:class:`unfoldtheory.problems.Lasso` or :class:`unfoldtheory.problems.RPCA`).
    y : array_like
        LASSO: observations of shape (m,) or (batch, m).  RPCA: the observed matrix ``M`` of shape
        (n1, n2) or a stack (batch, n1, n2).  numpy arrays, torch tensors or nested lists.
    method : {"auto", "fast", "cvxpy"}
        ``"auto"`` is ``"fast"`` for LASSO and ``"cvxpy"`` for RPCA.  ``"fast"`` is LASSO only.
    solver : str or list of str, optional
        cvxpy solver(s) to try, in order (the fast path uses them for its fallback).  Default: Clarabel, OSQP,
        SCS for LASSO and Clarabel, SCS for RPCA, those installed.
    tol : float, optional
        Relative-gap tolerance of the certificate, > 0.  Default 1e-8 for LASSO (:data:`LASSO_TOL`) and 1e-6
        for RPCA (:data:`RPCA_TOL`).

    Returns
    -------
    Solution
        ``x``, ``objective``, ``gap`` (library-computed, outward-rounded absolute duality gap),
        ``relative_gap``, ``residual``, ``status`` (``"optimal"`` iff ``relative_gap <= tol``), ``solver``,
        ``method``, ``certified``.  Scalars/strings for one instance, arrays over the batch otherwise.  For
        RPCA an :class:`RPCASolution` with ``L`` (= ``x``), ``S = M - L`` and the dual candidate ``Y``.

    Raises
    ------
    InvalidInputError
        Bad ``problem``, ``y`` (shape, empty batch, NaN/Inf), ``method``, ``solver`` (unknown or not
        installed: the message lists the installed solvers) or ``tol``.
    SolverError
        For some instance no solver returned a finite point; ``attempts`` lists every solver and its status.

    Notes
    -----
    The certificate is only as good as the dual point the problem builds.  For LASSO with ``lam = 0`` the
    dual set is :math:`\{u : A^Tu = 0\}` and ``Lasso.duality_gap`` uses :math:`u = 0` unless the residual is
    exactly zero, so such instances come back ``"inaccurate"`` (relative gap >= 1) whatever the solver.
    The outward-rounding term of the gap is about :math:`(m + n)\,\epsilon\,\|y\|^2`, so instances with a
    very small optimal value relative to :math:`\|y\|^2` (tiny ``lam``) cannot be certified below that.

    Warns
    -----
    InaccurateSolutionWarning
        Some instances are not certified (``relative_gap > tol``); they are returned with status
        ``"inaccurate"`` (the best point found), and the warning gives their number and the worst gap.
    """
    if isinstance(problem, Lasso):
        Y, single = check_observations(y, problem.m, "y")
    elif isinstance(problem, RPCA):
        Y, single = _check_matrices(y, problem.shape)
    else:
        raise InvalidInputError(f"problem must be an unfoldtheory.problems.Lasso or RPCA; got "
                                f"{type(problem).__name__}.")
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidInputError(f"method must be one of {list(METHODS)}; got {method!r}.")
    is_lasso = isinstance(problem, Lasso)
    if method == "auto":
        method = "fast" if is_lasso else "cvxpy"
    if method == "fast" and not is_lasso:
        raise InvalidInputError("method='fast' is only available for Lasso; use method='cvxpy' (or 'auto') "
                                "for RPCA.")
    if tol is None:
        tol = LASSO_TOL if is_lasso else RPCA_TOL
    else:
        tol = check_scalar(tol, "tol", low=0.0, low_inclusive=False)
    default = LASSO_SOLVERS if is_lasso else RPCA_SOLVERS
    solvers = resolve_solvers(solver, default) if (solver is not None or method == "cvxpy") else None

    if is_lasso:
        from . import _lasso

        if method == "fast":
            X, names, attempts = _lasso.solve_fast(problem, Y, tol, solvers)
        else:
            X, names, attempts = _lasso.solve_cvxpy(problem, Y, tol, solvers)
        relative_gap = problem.duality_gap(X, Y, relative=True)
        status = certify(relative_gap, tol)
        return Solution(x=X[0] if single else X,
                        objective=_squeeze(problem.objective(X, Y), single),
                        gap=_squeeze(problem.duality_gap(X, Y), single),
                        relative_gap=_squeeze(relative_gap, single),
                        residual=_squeeze(problem.optimality_residual(X, Y, relative=True), single),
                        status=_squeeze(status, single), solver=_squeeze(names, single), method=method,
                        tol=tol, attempts=attempts[0] if single else attempts)

    from ._rpca import solve_rpca

    Ls, Ys, names, attempts = solve_rpca(problem, Y, tol, solvers)
    Ss = Y - Ls
    objective = np.atleast_1d(problem.objective(Ls, Ss))
    gap = np.atleast_1d(problem.duality_gap(Ls, Y, Ys))
    relative_gap = gap / np.maximum(objective, np.finfo(float).tiny)
    status = certify(relative_gap, tol)
    pick = (lambda a: a[0]) if single else (lambda a: a)
    return RPCASolution(x=pick(Ls), L=pick(Ls), S=pick(Ss), Y=pick(Ys), objective=_squeeze(objective, single),
                        gap=_squeeze(gap, single), relative_gap=_squeeze(relative_gap, single), residual=None,
                        status=_squeeze(status, single), solver=_squeeze(names, single), method=method,
                        tol=tol, attempts=attempts[0] if single else attempts)


def _check_matrices(M: Any, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """RPCA observations: one matrix ``shape`` or a non-empty stack (batch, *shape), finite."""
    arr = as_float_array(M, "y", ndim=(2, 3))
    if arr.shape[-2:] != tuple(shape):
        raise InvalidInputError(f"y (the observed matrix M) must have shape {tuple(shape)} or "
                                f"(batch, {shape[0]}, {shape[1]}); got shape {arr.shape}.")
    if arr.ndim == 3 and arr.shape[0] == 0:
        raise InvalidInputError(f"y is an empty batch (shape {arr.shape}); pass at least one matrix.")
    single = arr.ndim == 2
    return (arr[None] if single else arr), single
