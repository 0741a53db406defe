r"""Step, momentum and penalty schedules read from a trained zoo model, for :func:`worst_case`.

A model is an instance of a first-order method on the LASSO :math:`F = f + g`,
:math:`f(x) = \tfrac12\|Ax - y\|^2` (L-smooth with :math:`L = \|A\|_2^2`, :math:`\mu`-strongly convex with
:math:`\mu = \lambda_{\min}(A^TA)`), :math:`g = \lambda\|\cdot\|_1`, exactly when its thresholds are tied to
its steps: :math:`\theta_k = \gamma_k\lambda` for proximal gradient (with or without momentum) and
:math:`\theta_k = \lambda/\rho_k` for ADMM.  Untied thresholds apply a different :math:`\ell_1` weight
:math:`\theta_k/\gamma_k` in every layer, so the network is not the method on one problem and the PEP
certificate does not apply (``docs/theory/pep.md §6``).

A plain torch module (or a zoo model of another class) is read from its analysis form
(:func:`schedule_of_form`): every layer's affine map must be the (momentum) proximal gradient step of the
least-squares term of the given ``A``, checked coefficient by coefficient (``docs/theory/pep.md §8``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError, NotRepresentableError

__all__ = ["Schedule", "is_model", "schedule_of", "schedule_of_form", "initial_distance2"]

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
    """Whether ``obj`` is a torch module or an analysis form (a network to read a schedule from)."""
    from ..form import Form

    if isinstance(obj, Form):
        return True
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
        idx = np.unravel_index(int(np.argmax(np.abs(theta - tied))), theta.shape)
        k, where = idx[0], "" if theta.ndim == 1 else f"[{idx[1]}]"
        raise NotRepresentableError(
            f"{name}: the thresholds are not tied to the schedule ({rule}): theta_{k + 1}{where} = "
            f"{theta[idx]:.6g} "
            f"but the tied value is {tied[idx]:.6g} (largest relative deviation {dev:.3g} > "
            f"tie_rtol={rtol:g}). "
            f"Each layer then applies a different l1 weight, so the network is not the method on one LASSO "
            f"and the PEP worst case does not apply to it (pass lam=... if the network was trained for "
            f"another weight).")
    return dev


def schedule_of(model: Any, lam: float | None = None, tie_rtol: float = 1e-6, A: Any = None,
                structure_rtol: float = 1e-5) -> Schedule:
    r"""The method, step / momentum / penalty schedule and class constants that a zoo model runs.

    Supported: :class:`~unfoldtheory.models.ISTA`, ``LearnedStepISTA`` (proximal gradient,
    ``steps = gamma_k L``), ``UnfoldedFISTA`` (proximal gradient with momentum ``beta_k``), ``UnfoldedADMM``
    (``steps = L / rho_k``).  ``lam`` defaults to the model's constructor value.  Any other model (a plain
    torch module, or a zoo model of another class) is read from its analysis form by
    :func:`schedule_of_form` with ``A`` (default ``model.A``).

    Raises
    ------
    NotRepresentableError
        The model's layers are not proximal gradient or momentum steps on ``A`` (the reason names the layer
        and the deviation), or its thresholds are not tied to its schedule.
    InvalidInputError
        ``lam``, ``tie_rtol`` or ``A`` is invalid, or ``A`` is needed and missing.
    """
    from .. import models
    from .._validation import check_scalar

    tie_rtol = check_scalar(tie_rtol, "tie_rtol", low=0.0)
    if lam is not None:
        lam = check_scalar(lam, "lam", low=0.0)
    name = type(model).__name__
    cfg = model.config() if callable(getattr(model, "config", None)) else {}
    if not isinstance(model, (models.ISTA, models.LearnedStepISTA, models.UnfoldedFISTA, models.UnfoldedADMM)):
        if A is None:
            A = getattr(model, "A", None)
        if A is None:
            raise InvalidInputError(
                f"{name}: pass A=... (the measurement matrix of the LASSO the network solves); the schedule is "
                f"read from the network's analysis form by matching its layers with proximal gradient steps on "
                f"1/2 ||A x - y||^2.")
        return schedule_of_form(model, A, lam=lam, tie_rtol=tie_rtol, structure_rtol=structure_rtol, name=name)
    own = _np(model.A)
    if A is not None:
        from .._validation import check_matrix

        A = check_matrix(A, "A")
        if A.shape != own.shape or not np.allclose(A, own, rtol=1e-6, atol=1e-9 * float(np.max(np.abs(own)))):
            raise InvalidInputError(f"A: {name} solves the LASSO with its own matrix model.A, which differs from "
                                    f"the A passed; omit A=.")
    if lam is None:
        lam = getattr(model, "lam", cfg.get("lam"))
        if lam is None:
            raise InvalidInputError(f"{name}: pass lam=... (the l1 weight of the LASSO the network solves).")
    lam = check_scalar(lam, "lam", low=0.0)
    L, mu = _class_constants(own)
    init_pg = "||x_0 - x*||^2 <= 1 (x_0 = 0: per unit of ||x*||^2)"
    if isinstance(model, models.ISTA):
        steps = np.full(model.num_layers, float(model.step))
        dev = _tie(np.full(model.num_layers, float(model.threshold)), steps * lam, tie_rtol, name,
                   "theta = step * lam")
        return Schedule(name, "prox_grad", steps * L, L, mu, lam, tie_deviation=dev, initial_condition=init_pg)
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
    return schedule_of_form(model, A, lam=lam, tie_rtol=tie_rtol, name=name)


def initial_distance2(schedule: Schedule, A: np.ndarray, x_star: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The squared initial distance of the certificate for the zoo's zero initialisation, per instance:
    ``||x*||^2`` (proximal gradient, momentum) or ``||x*||^2 + ||b*||^2 / rho_1^2`` (ADMM)."""
    r2 = np.sum(x_star ** 2, axis=-1)
    if schedule.method == "admm":
        bstar = -(x_star @ A.T - y) @ A
        r2 = r2 + np.sum(bstar ** 2, axis=-1) * (schedule.steps[0] / schedule.L) ** 2
    return r2


# ------------------------------------------------------------------------------- reading an analysis form


def _resolve_linear_blocks(form: Any) -> tuple[list[int], list[tuple[dict, Any, Any]], dict]:
    """Express every nonlinear block's pre-activation in terms of the *nonlinear* blocks only.

    Identity blocks (the linear states a zoo form keeps, e.g. a copy of ``x_{k-2}``) are substituted into the
    blocks that read them.  Returns the indices of the nonlinear blocks, their pre-activations as
    ``({position: matrix}, B, b)`` (position = index into the first list) and the output readout as
    ``{position: matrix}`` plus its ``B`` and ``b`` parts in the same tuple form.
    """
    from ..form import Identity

    def dense(M: Any) -> np.ndarray:
        return np.asarray(M.toarray() if hasattr(M, "toarray") else M, dtype=np.float64)

    # expr[k] = ({position: M}, B, b): the block's *output* as an affine map of nonlinear outputs and y
    expr: list[tuple[dict, Any, Any]] = []
    nonlinear: list[int] = []
    pre_of: list[tuple[dict, Any, Any]] = []

    def combine(terms: dict[int, Any], B: Any, b: Any) -> tuple[dict, Any, Any]:
        edges: dict[int, np.ndarray] = {}
        BB = None if B is None else dense(B)
        bb = None if b is None else np.asarray(b, dtype=np.float64).copy()
        for j, M in terms.items():
            Mj = dense(M)
            e_edges, e_B, e_b = expr[j]
            for pos, E in e_edges.items():
                edges[pos] = edges.get(pos, 0.0) + Mj @ E
            if e_B is not None:
                BB = Mj @ e_B if BB is None else BB + Mj @ e_B
            if e_b is not None:
                bb = Mj @ e_b if bb is None else bb + Mj @ e_b
        return edges, BB, bb

    for blk in form.blocks:
        pre = combine(blk.inputs, blk.B, blk.b)
        if isinstance(blk.activation, Identity):
            expr.append(pre)
        else:
            nonlinear.append(len(expr))
            pre_of.append(pre)
            expr.append(({len(nonlinear) - 1: np.eye(blk.size)}, None, None))
    out = combine(form.output, None, None)
    return nonlinear, pre_of, out


def _relative(residual: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(residual) / max(float(np.linalg.norm(reference)), 1e-300))


def schedule_of_form(model: Any, A: Any, lam: float | None = None, tie_rtol: float = 1e-6,
                     structure_rtol: float = 1e-5, name: str | None = None) -> Schedule:
    r"""The proximal gradient (with or without momentum) schedule that a network's analysis form runs.

    The form (``model.form()``, or :func:`unfoldtheory.form.extract` for a plain torch module; a
    :class:`~unfoldtheory.form.Form` is used as is) must consist of ``K`` elementwise blocks of size ``n``
    (soft thresholds or ReLUs; identity blocks are linear states and are substituted), whose pre-activations
    match, with :math:`M_k = I - \gamma_k A^T A`,

    .. math::

        z_k = (1 + \beta_k) M_k x_{k-1} - \beta_k M_k x_{k-2} + \gamma_k A^T y + b_k,
        \qquad x_0 = x_{-1} = 0,

    i.e. :math:`x_k = \operatorname{prox}_{\gamma_k h}(v_k - \gamma_k \nabla f(v_k))` with
    :math:`v_k = x_{k-1} + \beta_k (x_{k-1} - x_{k-2})` and :math:`f = \tfrac12\|Ax - y\|^2`.  Each
    coefficient is fitted (:math:`\gamma_k` from the input injection, :math:`1 + \beta_k` and
    :math:`-\beta_k` from the two state edges) and the remainder must be below ``structure_rtol`` relative to
    the matrix it belongs to; the output must be :math:`x_K`.  The nonlinearity is the prox of one ``h`` for
    every layer exactly when it is tied to the steps: soft thresholds :math:`\theta_k = \gamma_k \lambda`
    (``h = lam ||.||_1``) and biases :math:`b_k = -\gamma_k c` (``h`` gains the linear term :math:`c^T x`;
    with ReLU blocks ``h = c^T x + indicator(x >= 0)``).  ``lam`` is fitted when not given.  All
    :math:`\beta_k = 0` gives ``method="prox_grad"``, otherwise ``"momentum_prox_grad"``
    (``docs/theory/pep.md §8``).

    Parameters
    ----------
    model : torch module, zoo model or Form
    A : array_like (m, n)
        The measurement matrix of the LASSO the network is meant to solve.
    lam : float, optional
        The ``l1`` weight; fitted from the thresholds by least squares when omitted.
    tie_rtol, structure_rtol : float
        Largest relative deviation of the thresholds / biases from their tied values, and of the layers'
        matrices from the method's.
    name : str, optional
        The model's name in messages.

    Raises
    ------
    NotRepresentableError
        A layer is not such a step (the message names the layer, the part and the deviation), or the
        thresholds are not tied.
    """
    from .._validation import check_matrix, check_scalar
    from ..form import ReLU, SoftThreshold, require_form

    A = check_matrix(A, "A")
    m, n = A.shape
    tie_rtol = check_scalar(tie_rtol, "tie_rtol", low=0.0)
    structure_rtol = check_scalar(structure_rtol, "structure_rtol", low=0.0)
    if lam is not None:
        lam = check_scalar(lam, "lam", low=0.0)
    name = name or type(model).__name__
    try:
        form = require_form(model, input_dim=m)
    except InvalidInputError as exc:
        raise InvalidInputError(f"A: {name} does not run on inputs of dimension m = {m} (the rows of A); pass "
                                f"the measurement matrix of the problem the network solves ({exc})") from None
    if form.input_dim != m:
        raise InvalidInputError(f"A has {m} rows but {name} takes inputs of dimension {form.input_dim}; pass the "
                                f"measurement matrix of the problem the network solves.")

    def refuse(what: str) -> NotRepresentableError:
        return NotRepresentableError(
            f"{name}: {what}. The network is then not proximal gradient (with or without momentum) on "
            f"1/2 ||A x - y||^2 + h, so the PEP worst case does not apply to it; pass the schedule itself, "
            f"worst_case(steps, L, mu, method=...), if you know which method it runs.")

    nonlinear, pre, out = _resolve_linear_blocks(form)
    blocks = [form.blocks[i] for i in nonlinear]
    for k, blk in enumerate(blocks):
        if not isinstance(blk.activation, (SoftThreshold, ReLU)) or blk.size != n:
            raise refuse(f"layer {k + 1} ({blk.name or 'block'}) applies {blk.activation!r}; a proximal step "
                         f"needs a soft threshold or a ReLU on all n = {n} coordinates")
    K = len(blocks)
    out_edges, out_B, out_b = out
    if (set(out_edges) != {K - 1} or out_B is not None and np.any(out_B != 0)
            or out_b is not None and np.any(out_b != 0)
            or _relative(out_edges[K - 1] - np.eye(n), np.eye(n)) > structure_rtol):
        raise refuse("its output is not the last layer's iterate x_K")
    G = A.T @ A
    eye = np.eye(n)
    gammas, betas, struct_dev = np.zeros(K), np.zeros(K), 0.0
    for k, (edges, B, _) in enumerate(pre):
        if B is None:
            raise refuse(f"layer {k + 1} does not read y (no gradient step)")
        g = float(np.sum(B * A.T) / np.sum(A * A))
        dev = _relative(B - g * A.T, B)
        if not (g > 0 and dev <= structure_rtol):
            raise refuse(f"layer {k + 1}: the input injection is not gamma * A^T with gamma > 0 (best fit gamma "
                         f"= {g:.6g}, relative deviation {dev:.3g} > structure_rtol={structure_rtol:g})")
        struct_dev = max(struct_dev, dev)
        gammas[k] = g
        M = eye - g * G
        extra = set(edges) - {k - 1, k - 2}
        if extra:
            raise refuse(f"layer {k + 1} reads layer {min(extra) + 1}, more than two layers back")
        if k == 0:
            continue
        E1 = edges.get(k - 1, np.zeros((n, n)))
        a = float(np.sum(E1 * M) / np.sum(M * M))
        dev = _relative(E1 - a * M, E1)
        beta = a - 1.0
        E2 = edges.get(k - 2, np.zeros((n, n)))
        dev2 = _relative(E2 + beta * M, M) / max(1.0, abs(beta)) if k >= 2 else 0.0
        if not max(dev, dev2) <= structure_rtol:
            raise refuse(f"layer {k + 1}: its state edges are not (1 + beta) M and -beta M with M = I - gamma A^T A "
                         f"(gamma = {g:.6g}, fitted beta = {beta:.6g}; relative deviations {dev:.3g} and "
                         f"{dev2:.3g} > structure_rtol={structure_rtol:g})")
        struct_dev = max(struct_dev, dev, dev2)
        betas[k] = beta
    # the prox of one h for every layer: thresholds and biases tied to the steps
    soft = [isinstance(b.activation, SoftThreshold) for b in blocks]
    if any(soft) and not all(soft):
        raise refuse("some layers soft-threshold and others apply a ReLU (a different h per layer)")
    bias = np.stack([np.zeros(n) if b is None else b for (_, _, b) in pre])
    c = (bias * -gammas[:, None]).sum(0) / float(np.sum(gammas ** 2))
    bias_scale = max(float(np.max(np.abs(gammas[:, None] * c))), 1e-300)
    tie_dev = 0.0
    if all(soft):
        theta = np.stack([np.broadcast_to(b.activation.theta, (n,)) for b in blocks])
        lam_fit = float(np.sum(theta * gammas[:, None]) / (n * np.sum(gammas ** 2))) if lam is None else lam
        tie_dev = _tie(theta, gammas[:, None] * lam_fit * np.ones(n), tie_rtol, name,
                       "theta_k = gamma_k * lam for every coordinate")
        h = f"lam ||x||_1 with lam = {lam_fit:.6g}"
        bias_scale = max(bias_scale, float(np.max(np.abs(theta))))
    else:
        lam_fit = float(np.mean(c)) if lam is None else lam
        h = "c^T x + indicator(x >= 0)"
    if np.any(bias != 0):
        dev = float(np.max(np.abs(bias + gammas[:, None] * c)) / bias_scale)
        if not dev <= tie_rtol:
            raise refuse(f"the biases are not -gamma_k c for one vector c (largest relative deviation {dev:.3g} > "
                         f"tie_rtol={tie_rtol:g}), so the layers apply the prox of different functions")
        tie_dev = max(tie_dev, dev)
        if all(soft):
            h += " + c^T x"
    L, mu = _class_constants(A)
    betas[np.abs(betas) <= structure_rtol] = 0.0      # fitted rounding noise, within the structure tolerance
    method = "momentum_prox_grad" if np.any(betas != 0) else "prox_grad"
    return Schedule(name, method, gammas * L, L, mu, lam_fit,
                    momentum=betas if method == "momentum_prox_grad" else None, tie_deviation=tie_dev,
                    initial_condition="||x_0 - x*||^2 <= 1 (x_0 = 0: per unit of ||x*||^2)",
                    extra={"read_from": "analysis form", "structure_deviation": struct_dev, "h": h})
