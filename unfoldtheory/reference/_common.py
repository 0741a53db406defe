"""Shared pieces: per-problem caches and the validation of ``solver``."""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Callable

import numpy as np

from ..errors import InvalidInputError, SolverAttempt, SolverError

#: Default solver order for LASSO (a QP: all three apply) and RPCA (an SDP: OSQP does not apply).
LASSO_SOLVERS = ("CLARABEL", "OSQP", "SCS")
RPCA_SOLVERS = ("CLARABEL", "SCS")

_CACHES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def problem_cache(problem: Any, fingerprint: Callable[[Any], tuple]) -> dict:
    """A dict of derived data (Gram matrix, compiled cvxpy problems, ...) attached to ``problem``.

    The dict lives as long as the problem object.  ``fingerprint(problem)`` returns a tuple of the data the
    cached values depend on (arrays compared by value); if it changed since the dict was built (``A`` edited
    in place, ``lam`` reassigned), the cache is dropped and rebuilt.
    """
    key = fingerprint(problem)
    entry = _CACHES.get(problem)
    if entry is not None and _same(entry["_fingerprint"], key):
        return entry
    entry = {"_fingerprint": tuple(np.array(k, copy=True) if isinstance(k, np.ndarray) else k for k in key)}
    _CACHES[problem] = entry
    return entry


def _same(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if not (isinstance(u, np.ndarray) and isinstance(v, np.ndarray) and u.shape == v.shape
                    and np.array_equal(u, v)):
                return False
        elif u != v:
            return False
    return True


def resolve_solvers(solver: Any, default: tuple[str, ...]) -> list[str]:
    """Validate ``solver`` (None, a name or a list of names) against the installed cvxpy solvers.

    Returns the upper-case names in the order to try.  ``None`` gives the installed members of ``default``.

    Raises
    ------
    InvalidInputError
        ``solver`` is not a str or a list of str, is empty, or names a solver that cvxpy does not know or
        that is not installed (the message lists the installed ones).
    SolverError
        ``solver`` is None and none of the default solvers is installed.
    """
    import cvxpy as cp

    installed = [s.upper() for s in cp.installed_solvers()]
    if solver is None:
        order = [s for s in default if s in installed]
        if not order:
            raise SolverError(f"None of the default solvers {list(default)} is installed; installed cvxpy "
                              f"solvers: {installed}. Install one (e.g. `pip install clarabel`).")
        return order
    names = [solver] if isinstance(solver, str) else solver
    if not isinstance(names, (list, tuple)) or not all(isinstance(s, str) for s in names):
        raise InvalidInputError(f"solver must be None, a solver name or a list of solver names (str); "
                                f"got {solver!r}. Installed cvxpy solvers: {installed}.")
    if len(names) == 0:
        raise InvalidInputError(f"solver is an empty list; pass at least one of the installed cvxpy "
                                f"solvers: {installed} (or None for the default order {list(default)}).")
    order = []
    for name in names:
        up = name.upper()
        if up not in installed:
            known = up in {s.upper() for s in cp.settings.SOLVERS}
            why = "is not installed" if known else "is not a cvxpy solver"
            raise InvalidInputError(f"solver {name!r} {why}; installed cvxpy solvers: {installed}.")
        if up not in order:
            order.append(up)
    return order


def short_message(exc: BaseException, limit: int = 200) -> str:
    """The exception's message on one line, cut to ``limit`` characters (for :class:`SolverAttempt`)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_solver(problem: Any, name: str, options: dict | None = None) -> tuple[str, SolverAttempt | None]:
    """Solve a compiled cvxpy ``problem`` with solver ``name``.

    Returns ``(status, None)``, or ``("error", attempt)`` when the solver raised.  cvxpy's own "solution may be
    inaccurate" warnings are silenced: the library's certificate decides whether an answer is accepted.
    """
    import cvxpy as cp

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"cvxpy(\.|$)")
            problem.solve(solver=name, **(options or {}))
    except cp.error.SolverError as exc:
        return "error", SolverAttempt(name, "error", short_message(exc))
    return str(problem.status), None
