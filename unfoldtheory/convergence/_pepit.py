"""The same worst-case problem written with PEPit (optional dependency), for cross-checks and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from ..bounds import Bound
from ..errors import InvalidInputError


def pepit_worst_case(steps: Sequence[float], mu: float = 0.0, method: str = "gd", metric: str = "objective",
                     solver: str = "CLARABEL", momentum: Sequence[float] | None = None) -> Bound:
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
    methods = ("gd", "prox_grad", "momentum_gd", "momentum_prox_grad", "admm")
    if method not in methods or metric not in ("objective", "distance"):
        raise InvalidInputError(f"method must be one of {methods} and metric 'objective' or 'distance'; got "
                                f"{method!r}, {metric!r}.")
    if method.startswith("momentum"):
        if momentum is None or len(momentum) != len(steps):
            raise InvalidInputError("momentum methods need momentum=[beta_1, ..., beta_N], N = len(steps).")
    else:
        momentum = [0.0] * len(steps)
    prox = method.endswith("prox_grad")
    quantity = (("F(x_N) - F*" if metric == "objective" else "||x_N - x*||^2") + " worst case, "
                + ("||z_0 - x*||^2 + gamma_1^2 ||g'(x*)||^2" if method == "admm" else "||x_0 - x*||^2") + " <= 1, L = 1")
    checks = {"steps": [float(v) for v in steps], "mu": float(mu), "method": method, "metric": metric}
    if method == "admm":
        value, status = _pepit_admm(steps, mu, metric, solver)
        return _reference(value, status, solver, quantity, checks)
    checks["momentum"] = [float(b) for b in momentum]
    pb = PEP()
    f = (pb.declare_function(SmoothStronglyConvexFunction, mu=mu, L=1.0) if mu > 0
         else pb.declare_function(SmoothConvexFunction, L=1.0))
    h = pb.declare_function(ConvexFunction) if prox else None
    F = f if h is None else f + h
    xs = F.stationary_point()
    fs = F(xs)
    x0 = pb.set_initial_point()
    pb.set_initial_condition((x0 - xs) ** 2 <= 1)
    x, x_prev = x0, x0
    for s, b in zip(steps, momentum):   # v_k = x_{k-1} + b_k (x_{k-1} - x_{k-2}), x_{-1} = x_0
        v = x + b * (x - x_prev) if b != 0 else x
        x_prev = x
        x = v - s * f.gradient(v) if h is None else proximal_step(v - s * f.gradient(v), h, s)[0]
    pb.set_performance_metric(F(x) - fs if metric == "objective" else (x - xs) ** 2)
    value = float(pb.solve(verbose=0, solver=solver))
    return _reference(value, _status(pb), solver, quantity, checks)


def _status(pb) -> str:
    return str(getattr(pb, "solver_status", None) or getattr(pb, "solver_name", None) or "solved")


def _reference(value: float, status: str, solver: str, quantity: str, checks: dict) -> Bound:
    """PEPit's optimum as an uncertified estimate (a reference to compare against, not a certificate)."""
    return Bound(value=value, side="estimate", certified=False, method="pepit", quantity=quantity,
                 solver=f"PEPit/{solver}", status=status,
                 reason="PEPit's solver optimum, not re-verified (a reference, not a certificate)", checks=checks)


def _pepit_admm(steps: Sequence[float], mu: float, metric: str, solver: str) -> tuple[float, str]:
    """UnfoldedADMM's recursion in PEPit (``x_k = prox_{gamma_k f}(z_{k-1} - u_{k-1})``,
    ``z_k = prox_{gamma_k g}(x_k + u_{k-1})``, ``u_k = u_{k-1} + x_k - z_k``, ``u_0 = 0``), initial condition
    ``||z_0 - x*||^2 + gamma_1^2 ||g'(x*)||^2 <= 1``, metric ``F(z_N) - F*`` or ``||z_N - x*||^2``."""
    from PEPit import PEP
    from PEPit.functions import ConvexFunction, SmoothConvexFunction, SmoothStronglyConvexFunction
    from PEPit.primitive_steps import proximal_step

    pb = PEP()
    f = (pb.declare_function(SmoothStronglyConvexFunction, mu=mu, L=1.0) if mu > 0
         else pb.declare_function(SmoothConvexFunction, L=1.0))
    g = pb.declare_function(ConvexFunction)
    F = f + g
    xs = F.stationary_point()
    Fs = F(xs)
    bs = -f.gradient(xs)            # f is differentiable: its stored gradient at x* (g.gradient adds one)
    z0 = pb.set_initial_point()
    pb.set_initial_condition((z0 - xs) ** 2 + steps[0] ** 2 * bs ** 2 <= 1)
    z, u = z0, None
    for s in steps:
        x, _, _ = proximal_step(z if u is None else z - u, f, s)
        zeta = x if u is None else x + u
        z, _, _ = proximal_step(zeta, g, s)
        u = zeta - z
    pb.set_performance_metric(f(z) + g(z) - Fs if metric == "objective" else (z - xs) ** 2)
    return float(pb.solve(verbose=0, solver=solver)), _status(pb)
