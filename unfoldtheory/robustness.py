r"""Adversarial sensitivity of unfolded and classical optimizers: certificates and attacks.

For a network :math:`y \mapsto x_K(y)` the *adversarial sensitivity* on a ball of radius :math:`\varepsilon`
is :math:`\sup_{\|d\| \le \varepsilon} \|x_K(y+d) - x_K(y)\|_2`.

* :func:`certified_sensitivity` bounds it from above: :math:`\|x_K(y+d) - x_K(y)\| \le L\|d\|_2` with
  :math:`L` any certified upper bound on the Lipschitz constant (global, or local on the ball), and
  :math:`\|d\|_2 \le \sqrt m\,\|d\|_\infty` for :math:`\ell_\infty` balls.
* :func:`attack` bounds it from below: projected gradient ascent (PGD, Madry et al. 2018) or the basic
  iterative method (BIM / iterative FGSM, Kurakin et al. 2017, as in Sofer et al.'s released code) on the
  perturbation :math:`d` of :math:`y`, in an :math:`\ell_2` or :math:`\ell_\infty` ball, maximising
  :math:`\|x_K(y+d) - x_K(y)\|`.  The achieved ratio :math:`\|x_K(y+d) - x_K(y)\|/\|d\|_2` is re-evaluated in
  float64 and is a certified *lower* bound on the Lipschitz constant, so it can never exceed a certified upper
  bound: a test checks exactly that.
* :func:`ista_sensitivity` is the classical closed form for K-step ISTA/PGD (docs/theory/robustness.md §2,
  consistent with Sofer, Shaked, Chaux, Shlezinger, arXiv 2504.19000):

  .. math:: \Lambda_K = \sum_{k=1}^K \mu_k \|H\|_2 \prod_{j=k+1}^K \|I - \mu_j H^TH\|_2,

  valid because the prox is nonexpansive; it equals the naive bound of the unrolled network, and the
  structured certificates of :mod:`unfoldtheory.lipschitz` are never larger.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ._validation import as_float_array, check_int, check_matrix, check_observations, check_scalar
from .bounds import Bound
from .errors import InvalidInputError

__all__ = ["AttackResult", "attack", "certified_sensitivity", "ista_sensitivity", "compare_sensitivity",
           "project_ball", "ascent_step"]

QUANTITY = "Lipschitz constant of y -> x (l2 -> l2)"
_U = np.finfo(np.float64).eps / 2


@dataclass(frozen=True)
class AttackResult:
    """The witness of an attack: per instance the input, the perturbation and what it achieved.

    Attributes
    ----------
    y, delta : ndarray (batch, m)
        Clean inputs and the perturbations found (``||delta||_norm <= eps``).
    deviation : ndarray (batch,)
        :math:`\\|x_K(y+\\delta) - x_K(y)\\|_2`, a certified lower bound (float64, rounding subtracted).
    ratio : ndarray (batch,)
        ``deviation / ||delta||_2``, each a certified lower bound on the Lipschitz constant.
    eps : float
    norm : {"l2", "linf"}
    """

    y: np.ndarray
    delta: np.ndarray
    deviation: np.ndarray
    ratio: np.ndarray
    eps: float
    norm: str


def _check_norm(norm: str) -> str:
    if norm not in ("l2", "linf"):
        raise InvalidInputError(f"norm must be 'l2' or 'linf'; got {norm!r}.")
    return norm


def project_ball(d: torch.Tensor, eps: float, norm: str, tiny: float = 1e-300) -> torch.Tensor:
    r"""Euclidean projection of every row (last dimension) of ``d`` onto the ball :math:`\{\|d\|_p \le
    \varepsilon\}`, ``norm`` = "l2" (radial scaling) or "linf" (entrywise clipping); out of place.

    The one projection used by the attacks here and by adversarial training
    (:func:`unfoldtheory.training.pgd_attack`).  ``tiny`` guards the division for zero rows.
    """
    norm = _check_norm(norm)
    if norm == "linf":
        return d.clamp(-eps, eps)
    nrm = d.norm(dim=-1, keepdim=True)
    return d * torch.clamp(eps / nrm.clamp_min(tiny), max=1.0)


def ascent_step(d: torch.Tensor, grad: torch.Tensor, step_size: float, norm: str,
                tiny: float = 1e-300) -> torch.Tensor:
    """One steepest-ascent step for the ``norm`` ball: normalised gradient (l2) or sign of the gradient
    (linf, the FGSM/BIM step), per row (last dimension); out of place, no projection."""
    if norm == "linf":
        return d + step_size * grad.sign()
    return d + step_size * grad / grad.norm(dim=-1, keepdim=True).clamp_min(tiny)


_project = project_ball


def attack(model_or_form: Any, y: Any, eps: float, *, norm: str = "l2", method: str = "pgd", steps: int = 50,
           step_size: float | None = None, restarts: int = 1, seed: int = 0, device: Any = None,
           input_dim: int | None = None) -> Bound:
    r"""Attack the input of an unrolled network; returns the achieved Lipschitz ratio as a lower Bound.

    Maximises :math:`\|x_K(y + d) - x_K(y)\|_2` over :math:`\|d\|_{p} \le \varepsilon` (``norm`` = "l2" or
    "linf") for every row of ``y``, by ``method``:

    * ``"pgd"``: random start in the ball, ``steps`` steps of normalised-gradient (l2) or sign-gradient (linf)
      ascent of size ``step_size`` (default :math:`2.5\varepsilon/\text{steps}`), projection onto the ball;
      ``restarts`` random restarts, the best kept.
    * ``"bim"``: the basic iterative method (iterative FGSM): the same steps from a tiny random start (the
      objective has zero gradient at :math:`d = 0`) instead of a random point of the ball, clipped to it.

    The model is run in float64 (a copy).  The best perturbation of each instance is re-evaluated in float64
    (with a rigorous rounding bound when the model has a form), so the returned ``value`` (the largest ratio
    :math:`\|x_K(y+d)-x_K(y)\|/\|d\|_2` over the batch) is a certified lower bound on the Lipschitz constant;
    ``witness`` is an :class:`AttackResult` with every instance's perturbation and deviation.
    """
    from .lipschitz._torch import ErrorModel, certified_secant, make_evaluator

    norm = _check_norm(norm)
    if method not in ("pgd", "bim"):
        raise InvalidInputError(f"method must be 'pgd' or 'bim'; got {method!r}.")
    eps = check_scalar(eps, "eps", low=0.0, low_inclusive=False)
    steps = check_int(steps, "steps", minimum=1)
    restarts = check_int(restarts, "restarts", minimum=1)
    start = time.perf_counter()
    f, m, form = make_evaluator(model_or_form, input_dim=input_dim, device=device)
    Yn, _ = check_observations(y, m, "y")
    dev = torch.device("cpu") if device is None else torch.device(device)
    Y = torch.tensor(Yn, dtype=torch.float64, device=dev)
    alpha = check_scalar(step_size, "step_size", low=0.0, low_inclusive=False) if step_size is not None \
        else 2.5 * eps / steps
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        x0 = f(Y)
    best_dev = torch.full((Y.shape[0],), -1.0, dtype=torch.float64, device=dev)
    best_d = torch.zeros_like(Y)
    for _ in range(restarts):
        noise = torch.randn(Y.shape, generator=gen, dtype=torch.float64).to(dev)
        if method == "bim":
            d = 1e-3 * eps * noise.sign()
        elif norm == "linf":
            d = eps * (2 * torch.rand(Y.shape, generator=gen, dtype=torch.float64).to(dev) - 1)
        else:
            radii = torch.rand((Y.shape[0], 1), generator=gen, dtype=torch.float64).to(dev) ** (1.0 / m)
            d = eps * radii * noise / noise.norm(dim=1, keepdim=True).clamp_min(1e-300)
        d = _project(d, eps, norm)
        for _ in range(steps + 1):
            d = d.detach().requires_grad_(True)
            with torch.enable_grad():
                dev_now = (f(Y + d) - x0).norm(dim=1)
                (g,) = torch.autograd.grad((dev_now ** 2).sum(), d)
            with torch.no_grad():
                better = dev_now > best_dev
                best_dev = torch.where(better, dev_now, best_dev)
                best_d = torch.where(better[:, None], d, best_d)
                g = torch.nan_to_num(g, 0.0)
                d = project_ball(ascent_step(d, g, alpha, norm), eps, norm)
    D = best_d.detach().cpu().numpy()
    deviation = np.zeros(Y.shape[0])
    ratio = np.zeros(Y.shape[0])
    rigorous = True
    em = None if form is None else ErrorModel(form)
    for i in range(Y.shape[0]):
        r_i, info = certified_secant(em, f, Yn[i], D[i])
        rigorous = rigorous and info.get("rigorous", False)
        dn = float(np.linalg.norm((Yn[i] + D[i]) - Yn[i]))
        ratio[i] = r_i
        deviation[i] = r_i * dn
    res = AttackResult(y=Yn.copy(), delta=D, deviation=deviation, ratio=ratio, eps=eps, norm=norm)
    return Bound(value=float(ratio.max()), side="lower", certified=bool(ratio.max() > 0),
                 method=f"attack_{method}", quantity=QUANTITY,
                 solver=f"torch {method.upper()} ({norm}, {steps} steps, {restarts} restart(s))",
                 status="ok", checks={"eps": eps, "norm": norm, "max_deviation": float(deviation.max()),
                                      "mean_deviation": float(deviation.mean()),
                                      "rigorous_rounding": rigorous},
                 reason="" if ratio.max() > 0 else "the attack found no change of the output",
                 witness=res, seconds=time.perf_counter() - start)


def certified_sensitivity(model_or_form: Any, eps: float | None = None, *, norm: str = "l2", y: Any = None,
                          upper: Bound | None = None, method: str = "lipsdp", **kwargs: Any) -> Bound:
    r"""Certified bound :math:`\|x_K(y+d) - x_K(y)\|_2 \le L\|d\|_2 \le L\,\varepsilon_2` on the output
    deviation.

    Parameters
    ----------
    eps : float, optional
        Radius of the perturbation ball in ``norm``; :math:`\varepsilon_2 = \varepsilon` for l2 and
        :math:`\sqrt m\,\varepsilon` for linf.  Without ``eps`` the value is the sensitivity constant
        :math:`L`.
    y : array (m,), optional
        With ``y`` (and ``eps``) the Lipschitz constant is the *local* one on the ball around ``y``
        (:func:`unfoldtheory.lipschitz.local_upper_bound`), never larger than the global one.
    upper : Bound, optional
        A precomputed upper Bound on the (global) Lipschitz constant to use instead of computing one.
    method : str
        Upper-bound method when ``upper`` is not given; ``kwargs`` go to it.
    """
    from . import lipschitz

    norm = _check_norm(norm)
    if upper is not None:
        if not isinstance(upper, Bound) or upper.side != "upper":
            raise InvalidInputError("upper must be a Bound with side='upper'.")
        L = upper
    elif y is not None and eps is not None:
        L = lipschitz.local_upper_bound(model_or_form, y, eps, norm=norm, method=method, **kwargs)
    else:
        L = lipschitz.upper_bound(model_or_form, method=method, **kwargs)
    if eps is None:
        return Bound(value=L.value, side="upper", certified=L.certified, method=f"sensitivity_{L.method}",
                     quantity="adversarial sensitivity sup ||x(y+d) - x(y)||_2 / ||d||_2",
                     solver=L.solver, status=L.status, checks={"lipschitz": L.value}, reason=L.reason,
                     witness=L.witness, seconds=L.seconds)
    eps = check_scalar(eps, "eps", low=0.0)
    m = _input_dim(model_or_form)
    eps2 = eps if norm == "l2" else eps * math.sqrt(m) * (1 + 2 * _U)
    value = float(np.nextafter(L.value * eps2 * (1 + 2 * _U), np.inf)) if math.isfinite(L.value) else math.inf
    where = " around y" if y is not None else " (any y)"
    return Bound(value=value, side="upper", certified=L.certified, method=f"sensitivity_{L.method}",
                 quantity=f"max ||x(y+d) - x(y)||_2 over ||d||_{norm[1:]} <= {eps:g}{where}",
                 solver=L.solver, status=L.status, checks={"lipschitz": L.value, "eps": eps, "eps_l2": eps2,
                                                           "local": y is not None and upper is None},
                 reason=L.reason, witness=L.witness, seconds=L.seconds)


def _input_dim(model_or_form: Any) -> int:
    from .form import Form

    if isinstance(model_or_form, Form):
        return model_or_form.input_dim
    m = getattr(model_or_form, "m", None)
    if m is None:
        from .form import require_form

        return require_form(model_or_form).input_dim
    return int(m)


def ista_sensitivity(A_or_model: Any, steps: Any = None, num_layers: int | None = None) -> Bound:
    r"""The classical sensitivity constant :math:`\Lambda_K` of K-step ISTA/PGD (closed form, upper bound).

    .. math:: \|s_K(x+\delta) - s_K(x)\| \le \Lambda_K\|\delta\|, \qquad \Lambda_K = \sum_{k=1}^{K} \mu_k
              \|H\|_2 \prod_{j=k+1}^{K} \|I - \mu_j H^T H\|_2,

    for :math:`s_{k} = \mathrm{prox}_{\mu_k g}(s_{k-1} - \mu_k H^T(H s_{k-1} - x))`, :math:`s_0 = 0`, any prox
    of a convex :math:`g` (nonexpansive).  :math:`\|I - \mu H^TH\|_2 = \max(|1-\mu\sigma_{\min}^2|, |1 - \mu
    \sigma_{\max}^2|)` with :math:`\sigma_{\min} = 0` when :math:`H` has a null space; for a constant step
    :math:`\mu \le 2/\|H\|^2` and wide :math:`H` this is :math:`K\mu\|H\|`, growing with :math:`K`. Reference:
    docs/theory/robustness.md §2 (derived; consistent with Sofer, Shaked, Chaux, Shlezinger, arXiv 2504.19000).

    Parameters
    ----------
    A_or_model : array (m, n) or an :class:`~unfoldtheory.models.ISTA` model (then ``steps`` and
        ``num_layers`` default to the model's).
    steps : float or sequence of K floats
    num_layers : int, needed when ``steps`` is a scalar and no model is given.
    """
    start = time.perf_counter()
    if hasattr(A_or_model, "A") and hasattr(A_or_model, "step") and hasattr(A_or_model, "num_layers"):
        H = A_or_model.A.detach().cpu().double().numpy() if hasattr(A_or_model.A, "detach") else A_or_model.A
        steps = A_or_model.step if steps is None else steps
        num_layers = A_or_model.num_layers if num_layers is None else num_layers
    else:
        H = A_or_model
    H = check_matrix(H, "A")
    if steps is None:
        raise InvalidInputError("steps is required (a scalar step with num_layers, or one step per layer).")
    mu = as_float_array(steps, "steps", ndim=(0, 1))
    if mu.ndim == 0:
        if num_layers is None:
            raise InvalidInputError("num_layers is required when steps is a scalar.")
        mu = np.full(check_int(num_layers, "num_layers", minimum=1), float(mu))
    elif num_layers is not None and len(mu) != num_layers:
        raise InvalidInputError(f"steps has {len(mu)} entries but num_layers={num_layers}.")
    if np.any(mu <= 0):
        raise InvalidInputError("every step must be > 0.")
    s = np.linalg.svd(H, compute_uv=False)
    m, n = H.shape
    e = 16 * max(m, n) * _U * float(s[0]) ** 2
    lam_max = float(s[0]) ** 2 + e
    lam_min = 0.0 if n > m else max(float(s[-1]) ** 2 - e, 0.0)
    Hn = float(s[0]) * (1 + 16 * max(m, n) * _U)
    fac = np.array([max(abs(1 - u * lam_min), abs(1 - u * lam_max)) for u in mu])
    K = len(mu)
    total = 0.0
    for k in range(K):
        total += mu[k] * Hn * float(np.prod(fac[k + 1:]))
    total = float(np.nextafter(total * (1 + 4 * (K + 2) * _U), np.inf))
    return Bound(value=total, side="upper", certified=True, method="closed_form_LambdaK",
                 quantity="Lipschitz constant of y -> x_K for K-step ISTA/PGD (Lambda_K)",
                 solver="closed form (outward rounded)", status="ok",
                 checks={"layer_factors": [float(v) for v in fac], "H_norm": Hn, "num_layers": K},
                 seconds=time.perf_counter() - start)


def compare_sensitivity(models: Mapping[str, Any], y: Any, eps: float, *, norm: str = "l2",
                        method: str = "lipsdp", attack_method: str = "pgd", attack_steps: int = 50,
                        restarts: int = 1, upper_kwargs: Mapping[str, Any] | None = None,
                        seed: int = 0) -> list[dict]:
    """Certified sensitivity versus achieved attack deviation for several models (one row per model).

    Each row: ``name``, ``lipschitz_upper`` (Bound), ``attack`` (Bound), ``certified_deviation`` (``L *
    eps_2``), ``max_attack_deviation``, ``ratio_gap`` (upper / achieved ratio) and, for ISTA models,
    ``Lambda_K``.  Soundness requires ``attack.value <= lipschitz_upper.value`` on every row.
    """
    from . import lipschitz

    rows = []
    for name, model in models.items():
        up = lipschitz.upper_bound(model, method=method, **dict(upper_kwargs or {}))
        att = attack(model, y, eps, norm=norm, method=attack_method, steps=attack_steps, restarts=restarts,
                     seed=seed)
        cert = certified_sensitivity(model, eps, norm=norm, upper=up)
        row = {"name": name, "lipschitz_upper": up, "attack": att, "certified_deviation": cert.value,
               "max_attack_deviation": att.checks["max_deviation"],
               "ratio_gap": up.value / att.value if att.value > 0 else math.inf}
        if type(model).__name__ == "ISTA":
            row["Lambda_K"] = ista_sensitivity(model).value
        rows.append(row)
    return rows
