"""The same worst-case problem written with PEPit (optional dependency), for cross-checks and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from ..bounds import Bound
from ..errors import InvalidInputError


def pepit_worst_case(steps: Sequence[float], mu: float = 0.0, method: str = "gd", metric: str = "objective",
                     solver: str = "CLARABEL") -> Bound:
    r"""Worst case of :func:`worst_case`'s problem (``L = 1``, steps in units of 1/L,
    :math:`\|x_0 - x_\star\|^2 \le 1`) as PEPit builds and solves it: the plain dense PEP, an independent
    implementation to compare against (Goujaud, Moucer, Glineur, Hendrickx, Taylor, Dieuleveut, "PEPit",
    Math. Program. Comput. 2024).

    Returns
    -------
    Bound
        PEPit's value as ``side="estimate"``, ``certified=False``: the solver's optimum is not re-verified
        here (a reference to compare against, not a certificate; :func:`worst_case` gives the certified
        value).  ``status`` is the solver's status.

    Raises
    ------
    InvalidInputError
        If PEPit is not installed (``pip install pepit``) or ``method``/``metric`` is unknown.
    """
    try:
        from PEPit import PEP
        from PEPit.functions import ConvexFunction, SmoothConvexFunction, SmoothStronglyConvexFunction
        from PEPit.primitive_steps import proximal_step
    except ImportError:
        raise InvalidInputError("pepit_worst_case needs PEPit (pip install pepit, or the 'pep' extra).") from None
    if method not in ("gd", "prox_grad") or metric not in ("objective", "distance"):
        raise InvalidInputError(f"method must be 'gd' or 'prox_grad' and metric 'objective' or 'distance'; got "
                                f"{method!r}, {metric!r}.")
    pb = PEP()
    f = (pb.declare_function(SmoothStronglyConvexFunction, mu=mu, L=1.0) if mu > 0
         else pb.declare_function(SmoothConvexFunction, L=1.0))
    h = pb.declare_function(ConvexFunction) if method == "prox_grad" else None
    F = f if h is None else f + h
    xs = F.stationary_point()
    fs = F(xs)
    x0 = pb.set_initial_point()
    pb.set_initial_condition((x0 - xs) ** 2 <= 1)
    x = x0
    for s in steps:
        x = x - s * f.gradient(x) if h is None else proximal_step(x - s * f.gradient(x), h, s)[0]
    pb.set_performance_metric(F(x) - fs if metric == "objective" else (x - xs) ** 2)
    value = float(pb.solve(verbose=0, solver=solver))
    status = getattr(pb, "solver_name", None)
    quantity = ("F(x_N) - F*" if metric == "objective" else "||x_N - x*||^2") + " worst case, ||x_0 - x*||^2 <= 1, L = 1"
    return Bound(value=value, side="estimate", certified=False, method="pepit", quantity=quantity,
                 solver=f"PEPit/{solver}", status=str(getattr(pb, "solver_status", status) or "solved"),
                 reason="PEPit's solver optimum, not re-verified (a reference, not a certificate)",
                 checks={"steps": [float(v) for v in steps], "mu": float(mu), "method": method, "metric": metric})
