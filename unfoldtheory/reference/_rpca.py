r"""Robust PCA reference: principal component pursuit through cvxpy, certified by the library's duality gap.

Formulation (one ``cp.Problem`` per (problem, solver), ``M`` a ``cp.Parameter``, compiled once)::

    minimise  ||L||_* + lam * sum|S|   subject to   L + S == M

The nuclear norm becomes a semidefinite cone, so only conic solvers with PSD support apply (Clarabel, SCS).
The multiplier :math:`\nu` of ``L + S == M`` is a dual candidate: stationarity gives
:math:`-\nu \in \partial\|L\|_* \cap \lambda\,\partial\|S\|_1`, i.e. :math:`Y = -\nu` satisfies
:math:`\|Y\|_2 \le 1`, :math:`\|Y\|_\infty \le \lambda` up to the solver's accuracy.  The certificate is
``rpca.duality_gap(L, M, Y)`` with the returned ``S = M - L`` (feasible by construction); both signs of
:math:`\nu` are tried and the smaller gap is kept, so a solver's sign convention cannot matter.

Interior-point methods solve the semidefinite formulation to about 1e-8 relative, less reliably than the
LASSO QP, so the default tolerance of RPCA is 1e-6 relative gap (see :data:`RPCA_TOL`).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import SolverAttempt, SolverError
from ..problems import RPCA
from ._common import problem_cache, run_solver

logger = logging.getLogger(__name__)

#: Default relative-gap tolerance for RPCA.
RPCA_TOL = 1e-6
#: Extra options per solver: SCS is a first-order method; its default accuracy (1e-4) is too loose here.
_SOLVER_OPTIONS: dict[str, dict] = {"SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}}


def _fingerprint(rpca: RPCA) -> tuple:
    return (tuple(rpca.shape), rpca.lam)


def _cvxpy_problem(rpca: RPCA, solver: str):
    data = problem_cache(rpca, _fingerprint)
    key = ("cvxpy", solver)
    if key not in data:
        import cvxpy as cp

        L = cp.Variable(rpca.shape, name="L")
        S = cp.Variable(rpca.shape, name="S")
        M = cp.Parameter(rpca.shape, name="M")
        constraint = L + S == M
        problem = cp.Problem(cp.Minimize(cp.normNuc(L) + rpca.lam * cp.sum(cp.abs(S))), [constraint])
        data[key] = (problem, L, M, constraint)
    return data[key]


def solve_rpca_instance(rpca: RPCA, M: np.ndarray, tol: float, solvers: list[str]):
    """Solve one instance; returns ``(L, Y, relative_gap, "cvxpy:<SOLVER>", rejected attempts)``.

    Raises
    ------
    SolverError
        No solver returned a finite ``L`` with a finite dual candidate.
    """

    attempts: list[SolverAttempt] = []
    best = None
    for name in solvers:
        problem, L, param, constraint = _cvxpy_problem(rpca, name)
        param.value = M
        L.value = None
        status, failed = run_solver(problem, name, _SOLVER_OPTIONS.get(name))
        if failed is not None:
            attempts.append(failed)
            continue
        Lv, nu = L.value, constraint.dual_value
        if Lv is None or nu is None or not (np.all(np.isfinite(Lv)) and np.all(np.isfinite(nu))):
            attempts.append(SolverAttempt(name, status, "no finite solution"))
            continue
        Lv = np.asarray(Lv, dtype=float)
        nu = np.asarray(nu, dtype=float)
        objective = max(float(rpca.objective(Lv, M - Lv)), np.finfo(float).tiny)
        gaps = [float(rpca.duality_gap(Lv, M, Y)) for Y in (-nu, nu)]
        Y = -nu if gaps[0] <= gaps[1] else nu
        rg = min(gaps) / objective
        if best is None or rg < best[2]:
            best = (Lv, Y, rg, name)
        if rg <= tol:
            return Lv, Y, rg, f"cvxpy:{name}", tuple(attempts)
        attempts.append(SolverAttempt(name, status, f"relative duality gap {rg:.2e} > tol {tol:g}"))
        logger.info("cvxpy solver %s on RPCA: status %s, relative duality gap %.2e > tol %g", name, status,
                    rg, tol)
    if best is None:
        raise SolverError("No solver returned a finite solution for this RPCA instance.", attempts)
    return best[0], best[1], best[2], f"cvxpy:{best[3]}", tuple(attempts)


def solve_rpca(rpca: RPCA, Ms: np.ndarray, tol: float, solvers: list[str]):
    """Every matrix of ``Ms`` (batch, n1, n2); returns ``(L, Y, solver names, attempts)``."""
    Ls = np.empty_like(Ms)
    Ys = np.empty_like(Ms)
    names = np.empty(len(Ms), dtype=object)
    attempts = []
    for i, M in enumerate(Ms):
        try:
            Ls[i], Ys[i], _, names[i], tried = solve_rpca_instance(rpca, M, tol, solvers)
        except SolverError as exc:
            if len(Ms) > 1:
                raise SolverError(f"No solver returned a finite solution for instance {i} of {len(Ms)}.",
                                  exc.attempts) from None
            raise
        attempts.append(tried)
    return Ls, Ys, names.astype(str), tuple(attempts)
