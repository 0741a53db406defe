r"""Uniform (Rademacher / covering-number) generalization bound for the class of a LISTA-type model.

What is proved here (a generic, provable bound; the papers' own constants are not used)
--------------------------------------------------------------------------------------
Class.  The model's free parameters :math:`\vartheta \in \mathbb R^d` range over
:math:`\Theta = \{\|\vartheta - \vartheta_0\|_2 \le R\}` intersected with :math:`\{\|W_1^{(k)}\|_2 \le \beta,
\|W_2^{(k)}\|_2 \le \omega, \theta_k \ge 0\}` (the LISTA-form weights of every layer).  Loss, bounded in
[0, 1]:

.. math:: \ell(\vartheta; y, x) = \begin{cases} \min(\|x_K(\vartheta; y) - x\|_2 / B,\ 1) & \|y\|_2 \le R_y \\
          1 & \text{otherwise.}\end{cases}

Step 1 (Lipschitz in the parameters).  For :math:`\|y\| \le R_y`, :math:`\|x_K(\vartheta) - x_K(\vartheta')\|
\le L_P J \|\vartheta - \vartheta'\|` with :math:`L_P` from :func:`unfoldtheory.lipschitz.parameter_upper_bound`
(Lipschitz in the stacked LISTA weights :math:`(W_1, W_2, \theta)`, valid on the norm set above) and
:math:`J` the norm of the linear map from the model's parameters to those weights (1 for LISTA;
:math:`\max(\sqrt{\|\tilde W\|_F^2 + \|\tilde W^TA\|_F^2}, \sqrt n)` for ALISTA and learned-step ISTA;
:math:`\max(\sqrt{1 + \|A\|_2^2}, \sqrt n)` for LISTA-CP).  So :math:`\ell` is :math:`L = L_PJ/B`-Lipschitz in
:math:`\vartheta`, uniformly over the data.

Step 2 (covering).  A maximal :math:`r`-packing of any subset of a Euclidean ball of radius R in
:math:`\mathbb R^d` is an :math:`r`-cover with at most :math:`(1 + 2R/r)^d` points (volume argument; Vershynin,
*High-Dimensional Probability*, 2018, Cor. 4.2.13).  Hence the sup-norm (so every :math:`L_2(P_m)`) covering
number of the loss class satisfies :math:`\log N(\varepsilon) \le d\log(1 + a/\varepsilon)`, :math:`a = 2RL`.

Step 3 (Dudley).  For a class with values in [0, 1] that contains 0, the empirical Rademacher complexity
(no absolute value) satisfies (Bartlett, Foster, Telgarsky, NeurIPS 2017, Lemma A.5, rescaled to the
normalised norm)

.. math:: \hat{\mathfrak R}_m \le \inf_{\alpha > 0}\Big(4\alpha + \frac{12}{\sqrt m}\int_\alpha^1
          \sqrt{\log N(\varepsilon)}\,d\varepsilon\Big).

Adding the zero function to the class (which can only increase the complexity) turns :math:`N` into
:math:`N + 1 \le 2N`, so :math:`\sqrt{d\log(1 + a/\varepsilon) + \log 2}` is integrated.  The integral is
evaluated as a left Riemann sum of the decreasing integrand on a geometric grid (an upper bound), minimised
over the grid's :math:`\alpha`, and capped by the trivial :math:`\mathfrak R_m \le 1/2` of a [0, 1]-valued
class (0 for a class with one function, d = 0).  The *closed form* (one scale :math:`\alpha = 1/\sqrt m`, integrand bounded by
its value at :math:`\alpha`) is

.. math:: \mathfrak R_m \le \frac{4}{\sqrt m} + 12\Big(1 - \frac1{\sqrt m}\Big)
          \sqrt{\frac{d\log(1 + a\sqrt m) + \log 2}{m}} .

Step 4 (generalization; Mohri, Rostamizadeh, Talwalkar, *Foundations of ML*, 2nd ed. 2018, Thm 3.3).  With
probability :math:`\ge 1-\delta'`, for every :math:`\vartheta\in\Theta`,
:math:`\mathbb E\ell \le \hat{\mathbb E}_m\ell + 2\mathfrak R_m + \sqrt{\log(1/\delta')/(2m)}`.

Step 5 (data-dependent class).  When R, :math:`\beta`, :math:`\omega` are read off the trained model they are
rounded up to the grids :math:`R = 2^{i}`, :math:`\beta = 2^{j/4}`, :math:`\omega = 2^{l/4}`
(:math:`i, j, l \in \mathbb Z`) and :math:`\delta' = \delta\,w_iw_jw_l` with :math:`w_i = 1/((\pi^2/3 - 1)
(|i|+1)^2)` (summing to 1 over :math:`\mathbb Z`): a union bound over all classes of the grids.

Scaling and the papers.  The bound grows like :math:`\sqrt{d\log(R L_P\sqrt m)/m}`; with :math:`d \propto K`
and :math:`\log L_P = O(\log K)` for :math:`\omega \le 1` (:math:`O(K)` otherwise) this is the "essentially
linear in the number of free parameters and in depth" sample complexity of Schnoor, Behboodi & Rauhut
(IMAIAI 2023) and the logarithmic depth dependence of the Lipschitz term in Behboodi, Rauhut & Schnoor (2022).
Their exact constants could **not** be confirmed (docs/theory/generalization.md §3); none are used.  Expect the
value to be vacuous (>= 1) at practical sample sizes; the result says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_int, check_scalar
from ..bounds import Bound
from ..errors import InvalidInputError, NotRepresentableError
from ._sample import check_delta

_GRID_NORM = math.pi ** 2 / 3 - 1


def _weight(i: int) -> float:
    return 1.0 / (_GRID_NORM * (abs(i) + 1) ** 2)


def _round_up(value: float, base: float, per: int) -> tuple[float, int]:
    """Smallest grid value ``base**(i/per) >= value`` and its index i (value > 0)."""
    i = math.ceil(per * math.log(value, base) - 1e-12)
    while base ** (i / per) < value:
        i += 1
    return base ** (i / per), i


def _model_structure(model: Any) -> dict:
    """Free-parameter count, the Jacobian factor J and the threshold kind for the supported models."""
    from ..models import ALISTA, ISTA, LISTA, LISTACP, LearnedStepISTA

    n = int(model.n)
    if isinstance(model, ISTA):
        return {"kind": "ISTA", "d": 0, "J": 0.0, "d_expr": "0", "J_expr": "0", "params": []}
    if isinstance(model, (ALISTA, LearnedStepISTA)):
        if getattr(model, "support_selection", None) is not None:
            raise NotRepresentableError("support selection is discontinuous, so the loss is not Lipschitz in the "
                                        "parameters: no covering bound; use support_selection=None.")
        A = model._np(model.A)
        W = model._np(model.W) if isinstance(model, ALISTA) else A
        g = math.sqrt(np.linalg.norm(W) ** 2 + np.linalg.norm(W.T @ A) ** 2)
        return {"kind": type(model).__name__, "d": 2 * model.num_layers, "J": max(g, math.sqrt(n)), "g": g,
                "d_expr": "2*K", "J_expr": "Max(g, sqrt(n))", "params": ["gamma", "theta"]}
    if isinstance(model, LISTACP):
        if getattr(model, "support_selection", None) is not None:
            raise NotRepresentableError("support selection is discontinuous, so the loss is not Lipschitz in the "
                                        "parameters: no covering bound; use support_selection=None.")
        A = model._np(model.A)
        g = math.sqrt(1.0 + np.linalg.norm(A, 2) ** 2)
        return {"kind": "LISTACP", "d": model.num_layers * (model.m * n + 1), "J": max(g, math.sqrt(n)), "g": g,
                "d_expr": "K*(m*n + 1)", "J_expr": "Max(g, sqrt(n))", "params": ["Wk", "theta"]}
    if isinstance(model, LISTA):
        t = int(model.theta.shape[-1])
        copies = 1 if model.tied else model.num_layers
        d = copies * (n * model.m + n * n + t)
        return {"kind": "LISTA", "d": d, "J": 1.0, "g": 1.0, "t": t,
                "d_expr": ("1" if model.tied else "K") + f"*(n*m + n**2 + {'n' if t > 1 else '1'})",
                "J_expr": "1", "params": ["W1", "W2", "theta"]}
    raise NotRepresentableError(
        f"no uniform bound for {type(model).__name__}: it needs a Lipschitz constant with respect to the "
        "parameters, available here for LISTA, LISTACP, ALISTA, LearnedStepISTA and ISTA (LISTA-type chains "
        "with a linear parametrisation); tied-step models with a shared learned matrix (TiLISTA), corrections, "
        "learned proxes and support selection are not covered.")


def _param_vector(model: Any, names: list) -> np.ndarray:
    if not names:
        return np.zeros(0)
    return np.concatenate([getattr(model, n).detach().cpu().double().numpy().ravel() for n in names])


@dataclass(frozen=True)
class UniformBoundResult:
    r"""Covering-number bound on the expected clipped loss :math:`\mathbb E\ell` of every model in the class.

    Attributes
    ----------
    value : float
        :math:`\hat{\mathbb E}\ell + 2\mathfrak R_m + \sqrt{\log(1/\delta')/(2m)}`, the smaller of the Dudley
        integral and the closed form.
    closed_form_value : float
        The closed form, equal to ``float(expression.subs(values))``.
    rademacher, rademacher_closed_form, confidence_term : float
    vacuous : bool
        ``value >= 1`` (the loss range): the bound says nothing.
    expression : sympy expression
        The closed form in the symbols ``K, n, m, N, d, ...`` (``symbols``); ``values`` substitutes them.
    """

    value: float
    closed_form_value: float
    empirical_risk: float
    rademacher: float
    rademacher_closed_form: float
    confidence_term: float
    delta: float
    delta_class: float
    samples: int
    d: int
    num_layers: int
    width: int
    radius: float
    W1_norm: float
    W2_norm: float
    lipschitz_parameters: float
    jacobian_factor: float
    y_norm: float
    loss_scale: float
    vacuous: bool
    reason: str
    model_kind: str
    values: dict = field(repr=False, compare=False)
    d_expr: str = field(default="", repr=False)
    J_expr: str = field(default="", repr=False)
    seconds: float = 0.0

    @property
    def gap_bound(self) -> float:
        """The bound minus the empirical risk: :math:`2\\mathfrak R_m + \\sqrt{\\log(1/\\delta')/(2m)}`."""
        return self.value - self.empirical_risk

    @property
    def expression(self):
        return uniform_bound_expression(self.d_expr, self.J_expr)

    def at(self, **subs: float) -> float:
        """Evaluate the closed form with some symbols replaced (e.g. ``K=16`` or ``N=10**6``)."""
        import sympy as sp

        expr = self.expression
        vals = dict(self.values)
        vals.update(subs)
        return float(expr.subs({sp.Symbol(k, positive=True): v for k, v in vals.items()}).doit().evalf(30))

    @property
    def bound(self) -> Bound:
        """The bound as a :class:`~unfoldtheory.bounds.Bound` (``vacuous`` when >= the loss range 1)."""
        return self.as_bound()

    def as_bound(self) -> Bound:
        """Deprecated alias of :attr:`bound` (kept for existing callers)."""
        return Bound(value=self.value, side="upper", certified=True, method="covering_dudley",
                     confidence=1 - self.delta, vacuous=bool(self.vacuous),
                     vacuous_reason=(self.reason or "the bound is >= 1, the range of the clipped loss")
                     if self.vacuous else "",
                     quantity=f"expected clipped loss E min(||x_K - x||/{self.loss_scale:g}, 1) (1 if ||y|| > "
                              f"{self.y_norm:g}) of every model in the class",
                     solver="closed form + left Riemann sum (upper)",
                     status=f"holds with probability >= {1 - self.delta:g} over the {self.samples} training samples"
                            + (" (vacuous: >= the loss range 1)" if self.vacuous else ""),
                     checks={"confidence": 1 - self.delta, "rademacher": self.rademacher,
                             "confidence_term": self.confidence_term, "d": self.d, "L_P": self.lipschitz_parameters,
                             "J": self.jacobian_factor, "radius": self.radius, "vacuous": self.vacuous,
                             "statistical": True})

    def to_dict(self) -> dict:
        keys = ("value", "closed_form_value", "empirical_risk", "rademacher", "rademacher_closed_form",
                "confidence_term", "delta", "delta_class", "samples", "d", "num_layers", "width", "radius",
                "W1_norm", "W2_norm", "lipschitz_parameters", "jacobian_factor", "y_norm", "loss_scale",
                "vacuous", "reason", "model_kind", "seconds")
        return {k: getattr(self, k) for k in keys} | {"gap_bound": self.gap_bound}

    def __repr__(self) -> str:
        flag = f" VACUOUS ({self.reason})" if self.vacuous else ""
        return (f"UniformBoundResult({self.model_kind}, K={self.num_layers}, n={self.width}, d={self.d}, "
                f"m={self.samples}: E loss <= {self.value:.4g} = {self.empirical_risk:.4g} + 2*{self.rademacher:.4g} "
                f"+ {self.confidence_term:.4g}; L_P={self.lipschitz_parameters:.3g}, J={self.jacobian_factor:.3g}, "
                f"R={self.radius:.3g}{flag})")


def uniform_bound_expression(d_expr: str = "d", J_expr: str = "J"):
    r"""The closed form of the bound as a sympy expression (sympy imported here).

    Symbols: ``K`` depth, ``n`` width, ``m`` measurements, ``N`` training samples, ``omega``/``beta`` the
    weight-norm bounds, ``Ry`` the input radius, ``c_theta`` (1, or n for one threshold per layer in the
    LISTA form), ``g`` the weight part of J, ``R`` the parameter radius, ``B`` the loss scale, ``delta_c`` the
    confidence of this class, ``r_hat`` the empirical risk.
    """
    import sympy as sp

    K, n, m, N, omega, beta, Ry, c_theta, g, R, B, delta_c, r_hat = sp.symbols(
        "K n m N omega beta Ry c_theta g R B delta_c r_hat", positive=True)
    k, i = sp.symbols("k i", integer=True, positive=True)
    loc = {"K": K, "n": n, "m": m, "g": g, "Max": sp.Max, "sqrt": sp.sqrt}
    d = sp.sympify(d_expr, locals=loc)
    J = sp.sympify(J_expr, locals=loc)
    X = beta * Ry * sp.Sum(omega ** (i - 1), (i, 1, k - 1))  # X_{k-1}
    L_P = sp.sqrt(sp.Sum(omega ** (2 * (K - k)) * (X ** 2 + Ry ** 2 + c_theta), (k, 1, K)))
    a = 2 * R * L_P * J / B
    rad = 4 / sp.sqrt(N) + 12 * (1 - 1 / sp.sqrt(N)) * sp.sqrt((d * sp.log(1 + a * sp.sqrt(N)) + sp.log(2)) / N)
    return r_hat + 2 * rad + sp.sqrt(sp.log(1 / delta_c) / (2 * N))


def _dudley(d: int, a: float, m: int, points: int = 4000) -> float:
    """min over alpha of 4 alpha + 12/sqrt(m) * (left Riemann sum of the decreasing integrand on [alpha, 1])."""
    if d == 0 or a == 0:
        # a single function (plus zero): sqrt(log 2) integrand
        eps = np.geomspace(1e-9, 1.0, points)
    else:
        eps = np.geomspace(min(1e-9, 1e-3 / max(a, 1.0)), 1.0, points)
    f = np.sqrt(d * np.log1p(a / eps[:-1]) + math.log(2.0))
    pieces = f * np.diff(eps)
    tails = np.concatenate([np.cumsum(pieces[::-1])[::-1], [0.0]])
    vals = 4 * eps + 12.0 / math.sqrt(m) * tails
    return float(vals.min()) * (1 + 1e-12)


def _class_norm(given: Any, own: float, name: str, label: str) -> tuple[float, float]:
    """The class's norm radius and its union-bound weight: the model's own norm rounded up to the grid (weight
    of its grid index) unless ``given`` fixes it beforehand (weight 1; it must contain the model)."""
    if given is None:
        value, j = _round_up(max(own, 1e-12), 2.0, 4)
        return value, _weight(j)
    value = check_scalar(given, name, low=0.0)
    if value < own * (1 - 1e-12):
        raise InvalidInputError(f"{name}={value} is below the model's largest ||{label}||_2 = {own:.6g}: the class "
                                "must contain the model.")
    return value, 1.0


def uniform_bound(model: Any, samples: int, *, y_norm: float, loss_scale: float = 1.0, empirical_risk: float = 0.0,
                  delta: float = 0.05, center: Any = None, radius: float | None = None, W1_norm: float | None = None,
                  W2_norm: float | None = None) -> UniformBoundResult:
    r"""Covering-number (Dudley) bound on the expected clipped reconstruction loss (module docstring).

    Parameters
    ----------
    model : LISTA, LISTACP, ALISTA, LearnedStepISTA or ISTA
        The trained model; its parameters give the class (rounded up to grids, with the union-bound cost)
        unless ``radius``/``W1_norm``/``W2_norm`` fix it beforehand.
    samples : int
        m, the number of training samples.
    y_norm : float
        :math:`R_y`: instances with :math:`\|y\| > R_y` count as loss 1.
    loss_scale : float
        B: the loss is :math:`\min(\|x_K - x\|/B, 1)`.
    empirical_risk : float in [0, 1]
        The mean clipped loss of the model on its training samples.
    delta : float in (0, 1)
    center : array (d,), optional
        :math:`\vartheta_0` (data-independent), default the origin.
    radius, W1_norm, W2_norm : float, optional
        A class fixed before seeing the data (no union-bound cost); they must contain the model.

    Returns
    -------
    UniformBoundResult
        With ``vacuous=True`` and the reason when the bound is >= 1.

    Raises
    ------
    NotRepresentableError
        Models without a Lipschitz constant in their parameters (the message says why).
    InvalidInputError
        Bad numbers, or a given class that does not contain the model.
    """
    start = time.perf_counter()
    m = check_int(samples, "samples", minimum=1)
    y_norm = check_scalar(y_norm, "y_norm", low=0.0, low_inclusive=False)
    B = check_scalar(loss_scale, "loss_scale", low=0.0, low_inclusive=False)
    r_hat = check_scalar(empirical_risk, "empirical_risk", low=0.0, high=1.0)
    delta = check_delta(delta)
    st = _model_structure(model)
    d, J = st["d"], st["J"]
    n, K = int(model.n), int(model.num_layers)
    from ..lipschitz import parameter_upper_bound
    from ..lipschitz._parameter import model_norms, weights_of

    W1, W2, _, _ = weights_of(model)
    b_own, w_own = model_norms(W1, W2)
    w_own = w_own[1:] if K > 1 else np.zeros(1)
    beta, wb = _class_norm(W1_norm, float(b_own.max()), "W1_norm", "W1_k")
    omega, ww = _class_norm(W2_norm, float(w_own.max()), "W2_norm", "W2_k")
    weight = wb * ww
    theta_vec = _param_vector(model, st["params"])
    c0 = np.zeros_like(theta_vec) if center is None else np.asarray(center, dtype=float).ravel()
    if c0.shape != theta_vec.shape or not np.isfinite(c0).all():
        raise InvalidInputError(f"center must be a finite vector with {theta_vec.size} entries (the free parameters).")
    dist = float(np.linalg.norm(theta_vec - c0))
    if radius is None:
        R, jr = _round_up(max(dist, 1e-12), 2.0, 1)
        weight *= _weight(jr)
    else:
        R = check_scalar(radius, "radius", low=0.0)
        if R < dist * (1 - 1e-12):
            raise InvalidInputError(f"radius={R} is smaller than the model's distance to the center ({dist:.6g}).")
    delta_c = delta * weight
    pb = parameter_upper_bound(model, y_norm, W1_norm=beta, W2_norm=omega)
    L_P = pb.value
    scalar_theta = bool(pb.checks.get("scalar_theta", False))
    c_theta = float(n) if scalar_theta else 1.0
    a = 2.0 * R * L_P * J / B
    conf = math.sqrt(math.log(1.0 / delta_c) / (2.0 * m))
    sm = math.sqrt(m)
    rad_cf = 4.0 / sm + 12.0 * (1.0 - 1.0 / sm) * math.sqrt((d * math.log1p(a * sm) + math.log(2.0)) / m)
    # d = 0: a single function, whose Rademacher complexity is 0; any [0, 1] class has R_m <= 1/2
    rad = 0.0 if d == 0 else min(rad_cf, _dudley(d, a, m), 0.5)
    closed = r_hat + 2.0 * rad_cf + conf
    value = r_hat + 2.0 * rad + conf
    vacuous = value >= 1.0
    reason = (f"the bound {value:.3g} is >= 1, the range of the clipped loss: with d = {d} free parameters and "
              f"m = {m} samples the complexity term 2 R_m = {2 * rad:.3g} alone is too large" if vacuous else "")
    values = {"K": K, "n": n, "m": int(model.m), "N": m, "omega": omega, "beta": beta, "Ry": y_norm,
              "c_theta": c_theta, "g": st.get("g", 1.0), "R": R, "B": B, "delta_c": delta_c, "r_hat": r_hat}
    return UniformBoundResult(value=value, closed_form_value=closed, empirical_risk=r_hat, rademacher=rad,
                              rademacher_closed_form=rad_cf, confidence_term=conf, delta=delta, delta_class=delta_c,
                              samples=m, d=d, num_layers=K, width=n, radius=R, W1_norm=beta, W2_norm=omega,
                              lipschitz_parameters=L_P, jacobian_factor=J, y_norm=y_norm, loss_scale=B,
                              vacuous=vacuous, reason=reason, model_kind=st["kind"], values=values,
                              d_expr=st["d_expr"], J_expr=st["J_expr"], seconds=time.perf_counter() - start)


def clipped_loss(model: Any, data: Any, *, y_norm: float, loss_scale: float = 1.0) -> np.ndarray:
    """The loss of :func:`uniform_bound` per instance, shape (N,)."""
    from ..metrics import layer_outputs
    from ._metrics import _data

    y, x = _data(data)
    y = np.asarray(y, dtype=float)
    if x is None:
        raise InvalidInputError("data must carry the true signals x (a SparseSample or a pair (y, x)).")
    out = layer_outputs(model, y)[-1]
    err = np.minimum(np.linalg.norm(out - x, axis=1) / loss_scale, 1.0)
    return np.where(np.linalg.norm(y, axis=1) > y_norm, 1.0, err)
