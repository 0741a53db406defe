r"""Step, momentum and penalty schedules read from a trained zoo model, for :func:`worst_case`.

A model is an instance of a first-order method on the LASSO :math:`F = f + g`,
:math:`f(x) = \tfrac12\|Ax - y\|^2` (L-smooth with :math:`L = \|A\|_2^2`, :math:`\mu`-strongly convex with
:math:`\mu = \lambda_{\min}(A^TA)`), :math:`g = \lambda\|\cdot\|_1`, exactly when its thresholds are tied to
its steps: :math:`\theta_k = \gamma_k\lambda` for proximal gradient (with or without momentum) and
:math:`\theta_k = \lambda/\rho_k` for ADMM.  Untied thresholds apply a different :math:`\ell_1` weight
:math:`\theta_k/\gamma_k` in every layer, so the network is not the method on one problem and the PEP
certificate does not apply (``docs/theory/pep.md §6``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError, NotRepresentableError

__all__ = ["Schedule", "is_model", "schedule_of"]

_EPS = np.finfo(np.float64).eps


@dataclass
class Schedule:
    """What :func:`worst_case` needs from a model (steps in units of 1/L)."""

    model: str
    method: str                 # "prox_grad", "momentum_prox_grad" or "admm"
    steps: np.ndarray           # gamma_k L (prox-grad) or L / rho_k (ADMM)
    L: float                    # ||A||_2^2, rounded up
    mu: float                   # lambda_min(A^T A), rounded down (0 when m < n)
    lam: float
    momentum: np.ndarray | None = None
    tie_deviation: float = 0.0  # max_k |theta_k - tied_k| / max(tied_k)
    initial_condition: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "method": self.method, "steps": self.steps.tolist(), "L": self.L,
                "mu": self.mu, "lam": self.lam,
                "momentum": None if self.momentum is None else self.momentum.tolist(),
                "tie_deviation": self.tie_deviation, "initial_condition": self.initial_condition,
                **self.extra}


def is_model(obj: Any) -> bool:
    """Whether ``obj`` is a torch module (a network to read a schedule from)."""
    try:
        from torch import nn
    except ImportError:          # pragma: no cover - torch is a dependency
        return False
    return isinstance(obj, nn.Module)


def _np(t: Any) -> np.ndarray:
    return np.asarray(t.detach().cpu().double().numpy() if hasattr(t, "detach") else t, dtype=np.float64)


def _class_constants(A: np.ndarray) -> tuple[float, float]:
    """``L = ||A||^2`` rounded up and ``mu = lambda_min(A^T A)`` rounded down (0 when ``m < n``)."""
    s = np.linalg.svd(A, compute_uv=False)
    n = A.shape[1]
    err = 16 * max(A.shape) * _EPS * float(s[0]) ** 2
    L = float(s[0]) ** 2 + err
    mu = float(s[-1]) ** 2 - err if A.shape[0] >= n else 0.0
    return L, max(mu, 0.0)


def _tie(theta: np.ndarray, tied: np.ndarray, rtol: float, name: str, rule: str) -> float:
    dev = float(np.max(np.abs(theta - tied)) / max(float(np.max(np.abs(tied))), 1e-300))
    if not dev <= rtol:
        k = int(np.argmax(np.abs(theta - tied)))
        raise NotRepresentableError(
            f"{name}: the thresholds are not tied to the schedule ({rule}): theta_{k + 1} = {theta[k]:.6g} "
            f"but the tied value is {tied[k]:.6g} (largest relative deviation {dev:.3g} > "
            f"tie_rtol={rtol:g}). "
            f"Each layer then applies a different l1 weight, so the network is not the method on one LASSO "
            f"and the PEP worst case does not apply to it (pass lam=... if the network was trained for "
            f"another weight).")
    return dev


def schedule_of(model: Any, lam: float | None = None, tie_rtol: float = 1e-6) -> Schedule:
    r"""The method, step / momentum / penalty schedule and class constants that a zoo model runs.

    Supported: :class:`~unfoldtheory.models.ISTA`, ``LearnedStepISTA`` (proximal gradient,
    ``steps = gamma_k L``), ``UnfoldedFISTA`` (proximal gradient with momentum ``beta_k``), ``UnfoldedADMM``
    (``steps = L / rho_k``).  ``lam`` defaults to the model's constructor value.

    Raises
    ------
    NotRepresentableError
        The model is of another kind (its layers are not one of these methods), or its thresholds are not
        tied to its schedule (the reason names the layer and the deviation).
    InvalidInputError
        ``lam`` or ``tie_rtol`` is invalid.
    """
    from .. import models
    from .._validation import check_scalar

    tie_rtol = check_scalar(tie_rtol, "tie_rtol", low=0.0)
    name = type(model).__name__
    cfg = model.config() if callable(getattr(model, "config", None)) else {}
    if lam is None:
        lam = getattr(model, "lam", cfg.get("lam"))
        if lam is None:
            raise InvalidInputError(f"{name}: pass lam=... (the l1 weight of the LASSO the network solves).")
    lam = check_scalar(lam, "lam", low=0.0)
    A = getattr(model, "A", None)
    if A is None:
        raise NotRepresentableError(f"{name} has no measurement matrix A: its schedule cannot be read.")
    L, mu = _class_constants(_np(A))
    init_pg = "||x_0 - x*||^2 <= 1 (x_0 = 0: per unit of ||x*||^2)"
    if isinstance(model, models.ISTA):
        steps = np.full(model.num_layers, float(model.step))
        return Schedule(name, "prox_grad", steps * L, L, mu, lam, initial_condition=init_pg)
    if isinstance(model, models.LearnedStepISTA):
        g, th = _np(model.gamma), _np(model.theta)
        dev = _tie(th, g * lam, tie_rtol, name, "theta_k = gamma_k * lam")
        return Schedule(name, "prox_grad", g * L, L, mu, lam, tie_deviation=dev, initial_condition=init_pg)
    if isinstance(model, models.UnfoldedFISTA):
        g, th, b = _np(model.gamma), _np(model.theta), _np(model.beta)
        dev = _tie(th, g * lam, tie_rtol, name, "theta_k = gamma_k * lam")
        return Schedule(name, "momentum_prox_grad", g * L, L, mu, lam, momentum=b, tie_deviation=dev,
                        initial_condition=init_pg)
    if isinstance(model, models.UnfoldedADMM):
        rho = np.exp(_np(model.log_rho))
        th = _np(model.theta)
        dev = _tie(th, lam / rho, tie_rtol, name, "theta_k = lam / rho_k")
        return Schedule(name, "admm", L / rho, L, mu, lam, tie_deviation=dev,
                        initial_condition=("||z_0 - x*||^2 + ||u_0 - u*||^2 <= 1 with z_0 = u_0 = 0 and "
                                           "u* = b*/rho_1, b* = -A^T(A x* - y): per unit of "
                                           "||x*||^2 + ||b*||^2/rho_1^2"),
                        extra={"rho": rho.tolist()})
    raise NotRepresentableError(
        f"{name}: no step schedule to read (supported: ISTA, LearnedStepISTA, UnfoldedFISTA, UnfoldedADMM). "
        f"Its layers are not proximal gradient, momentum or ADMM steps with scalar parameters; pass the "
        f"schedule itself: worst_case(steps, L, mu, method=...).")


def initial_distance2(schedule: Schedule, A: np.ndarray, x_star: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The squared initial distance of the certificate for the zoo's zero initialisation, per instance:
    ``||x*||^2`` (proximal gradient, momentum) or ``||x*||^2 + ||b*||^2 / rho_1^2`` (ADMM)."""
    r2 = np.sum(x_star ** 2, axis=-1)
    if schedule.method == "admm":
        bstar = -(x_star @ A.T - y) @ A
        r2 = r2 + np.sum(bstar ** 2, axis=-1) * (schedule.steps[0] / schedule.L) ** 2
    return r2
