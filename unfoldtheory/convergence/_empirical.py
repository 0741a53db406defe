r"""Empirical counterpart of the convergence certificates: observed per-layer errors against certified rates.

:func:`convergence_profile` runs a (trained) LISTA-family network on a test set and measures, per layer k,

* :math:`\max_b\|x_k - \hat x_b\|_2` and the mean, against the certified LASSO optimum :math:`\hat x` of
  :func:`unfoldtheory.reference.solve`;
* :math:`\max_b F(x_k) - F^\star` (LASSO objective gap);
* :math:`\max_b\|x_k - x^\star_b\|_2` against the ground truth, when given;

and every certified rate that applies to the model:

``contraction``
    :math:`\max_b\|x_1 - \hat x_b\|\prod_{j=2}^k\|W_2^{(j)}\|_2` (per-layer constants of
    :func:`unfoldtheory.contraction.layer_lipschitz`).  A certified bound on :math:`\|x_k - \hat x\|` only when
    :math:`\hat x` is a fixed point of every layer (classical ISTA with the problem's ``lam``; docs/theory/contraction.md §2,
    §3), which is checked; otherwise reported as not certified (it then only bounds the sensitivity of the
    state map).
``alista``
    ALISTA Thm 1 (:func:`~unfoldtheory.convergence.alista_theorem_check`), against the ground truth, when
    ``x_true`` is given and the theorem applies.  ``alista_extended``: the bound from the same proof for
    thresholds that are merely large enough.
``pep``
    Worst-case objective gap of k proximal-gradient steps from :math:`x_0 = 0`,
    :math:`F(x_k) - F^\star \le \tau_k(L)\,\|x_0 - \hat x\|^2` (PEP, :func:`~unfoldtheory.convergence.worst_case`;
    the tight :math:`L/(4k)` for step :math:`1/L`), for ISTA and for learned-step ISTA whose thresholds are
    :math:`\lambda\gamma_k` (the network is then proximal gradient on the LASSO).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._json import jsonable
from .._validation import as_float_array, check_observations
from ..errors import InvalidInputError, UnfoldTheoryError
from ..verdicts import Verdict
from ._theorems import _check_model, _layer_weights, alista_theorem_check

logger = logging.getLogger("unfoldtheory.convergence")

__all__ = ["ConvergenceProfile", "convergence_profile"]


@dataclass
class ConvergenceProfile:
    """Observed per-layer errors of a model on a test set, with the certified rates that apply.

    Attributes
    ----------
    model : str
    layers : ndarray (K,)
        1..K.
    dist_ref_max, dist_ref_mean : ndarray (K,)
        :math:`\\|x_k - \\hat x\\|_2` against the certified LASSO optimum (max and mean over the test set).
    gap_max : ndarray (K,)
        :math:`\\max_b F(x_k) - F^\\star`.
    dist_true_max : ndarray (K,) or None
        :math:`\\max_b\\|x_k - x^\\star\\|_2` against the ground truth.
    rates : dict
        ``name -> {"values": (K,), "metric": "distance" | "objective_gap", "against": "reference" |
        "ground_truth", "certified": bool, "holds": bool, "note": str}``; ``holds`` says whether the observed
        curve stays below the rate at every layer.
    reference_certified : bool
        Every reference optimum passed its duality-gap certificate.
    alista : AlistaCheck or None
    """

    model: str
    layers: np.ndarray
    dist_ref_max: np.ndarray
    dist_ref_mean: np.ndarray
    gap_max: np.ndarray
    dist_true_max: np.ndarray | None
    rates: dict
    reference_certified: bool
    alista: Any = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        rates = ", ".join(f"{k}({'certified' if v['certified'] else 'not certified'}, "
                          f"{'holds' if v['holds'] else 'EXCEEDED'})" for k, v in self.rates.items())
        return (f"ConvergenceProfile({self.model}, K={self.layers.size}, max ||x_K - x_ref|| = "
                f"{self.dist_ref_max[-1]:.3g}, max gap = {self.gap_max[-1]:.3g}, rates: {rates or 'none'})")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("model", "layers", "dist_ref_max", "dist_ref_mean", "gap_max",
                                           "dist_true_max", "rates", "reference_certified", "notes", "seconds")}
        d["alista"] = None if self.alista is None else self.alista.to_dict()
        return jsonable(d)

    def plot(self, axes: Any = None):
        """Two panels: distances (to the reference optimum and the ground truth) and objective gaps, observed
        (solid) against the certified rates (dashed; dotted when not certified).  Returns the figure."""
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        else:
            fig = axes[0].figure
        k = self.layers
        ax = axes[0]
        ax.semilogy(k, self.dist_ref_max, "o-", label=r"observed max $\|x_k - \hat x\|$ (LASSO opt.)")
        ax.semilogy(k, self.dist_ref_mean, ".-", alpha=0.6, label=r"observed mean $\|x_k - \hat x\|$")
        if self.dist_true_max is not None:
            ax.semilogy(k, self.dist_true_max, "s-", label=r"observed max $\|x_k - x^\star\|$ (ground truth)")
        ax2 = axes[1]
        ax2.semilogy(k, np.maximum(self.gap_max, 1e-300), "o-", label=r"observed max $F(x_k) - F^\star$")
        names = {"contraction": "contraction certificate", "alista": "ALISTA Thm 1 bound",
                 "alista_extended": "ALISTA Thm 1 bound (thresholds >= the theorem's)", "pep": "PEP worst case"}
        for key, r in self.rates.items():
            name = names.get(key, key)  # the report's names in the legend, not the internal keys
            target = ax if r["metric"] == "distance" else ax2
            style = "--" if r["certified"] else ":"
            tag = (" vs ground truth" if r["against"] == "ground_truth" else " vs LASSO opt.") \
                + ("" if r["certified"] else " (not certified)")
            target.semilogy(k, np.maximum(r["values"], 1e-300), style, lw=2, label=f"{name}{tag}")
        ax.set(xlabel="layer k", ylabel="distance", title=f"{self.model}: distance per layer")
        ax2.set(xlabel="layer k", ylabel="objective gap", title=f"{self.model}: objective gap per layer")
        for a in (ax, ax2):
            a.grid(alpha=0.3, which="both")
            a.legend(fontsize=7)
        fig.tight_layout()
        return fig


def _soft(z: np.ndarray, th: np.ndarray) -> np.ndarray:
    return np.sign(z) * np.maximum(np.abs(z) - th, 0.0)


def convergence_profile(model: Any, problem: Any, y: Any, x_true: Any = None, *, reference: Any = None,
                        alista_s: int | None = None, pep: bool = True, fixed_point_rtol: float = 1e-6
                        ) -> ConvergenceProfile:
    r"""Observed per-layer errors of ``model`` on ``y`` against the reference optimum, with the certified rates.

    Parameters
    ----------
    model : LISTA-family model (ISTA, LISTA, LISTACP, ALISTA, TiLISTA, LearnedStepISTA)
    problem : unfoldtheory.problems.Lasso
        The LASSO whose optimum is the reference (:func:`unfoldtheory.reference.solve`).
    y : array_like (batch, m)
    x_true : array_like (batch, n), optional
        Ground truth; enables the ALISTA Thm 1 check (noiseless data only).
    reference : Solution or array (batch, n), optional
        Precomputed reference optima (skips the solve).
    alista_s : int, optional
        Sparsity level passed to :func:`alista_theorem_check`.
    pep : bool
        Compute the PEP worst case where it applies.
    fixed_point_rtol : float
        Relative tolerance of the check that the reference optimum is a fixed point of every layer.

    Returns
    -------
    ConvergenceProfile
    """
    import torch

    from ..contraction import spectral_norm_upper
    from ..metrics import layer_outputs
    from ..problems import Lasso

    t0 = time.perf_counter()
    if isinstance(model, torch.nn.Module):
        from ..models.adapt import adapt

        model = adapt(model, input_dim=getattr(problem, "A", np.zeros((0, 0))).shape[0] or None)
    _check_model(model)
    if not isinstance(problem, Lasso):
        raise InvalidInputError(f"problem must be an unfoldtheory.problems.Lasso; got {type(problem).__name__}.")
    if problem.A.shape != (model.m, model.n):
        raise InvalidInputError(f"problem.A has shape {problem.A.shape} but the model maps R^{model.m} -> "
                                f"R^{model.n}.")
    Y, _ = check_observations(y, problem.m, "y")
    notes: list[str] = []
    if reference is None:
        from ..reference import solve

        sol = solve(problem, Y)
        X_ref, ref_cert = np.atleast_2d(sol.x), bool(np.all(sol.certified))
    elif hasattr(reference, "x"):
        X_ref, ref_cert = np.atleast_2d(reference.x), bool(np.all(reference.certified))
    else:
        X_ref, ref_cert = np.atleast_2d(as_float_array(reference, "reference", ndim=(1, 2))), False
        notes.append("reference optima given as an array: their certificate was not checked")
    if X_ref.shape != (Y.shape[0], problem.n):
        raise InvalidInputError(f"reference must have shape ({Y.shape[0]}, {problem.n}); got {X_ref.shape}.")
    xs = layer_outputs(model, Y)
    K = len(xs)
    layers = np.arange(1, K + 1)
    d_ref = np.array([np.linalg.norm(x - X_ref, axis=1) for x in xs])
    f_star = problem.objective(X_ref, Y)
    gap = np.array([float(np.max(problem.objective(x, Y) - f_star)) for x in xs])
    d_true = None
    X_true = None
    if x_true is not None:
        X_true = np.atleast_2d(as_float_array(x_true, "x_true", ndim=(1, 2)))
        if X_true.shape != X_ref.shape:
            raise InvalidInputError(f"x_true must have shape {X_ref.shape}; got {X_true.shape}.")
        d_true = np.array([float(np.max(np.linalg.norm(x - X_true, axis=1))) for x in xs])
    rates: dict = {}
    slack = 1e-9 if getattr(model, "dtype", torch.float32) == torch.float64 else 1e-5

    # ---------------------------------------------------------------- contraction product
    w = _layer_weights(model)
    norms = [spectral_norm_upper(W2) for W2 in w["W2"][1:]]
    env = float(np.max(d_ref[0])) * np.concatenate([[1.0], np.cumprod(norms)])
    fp = max(float(np.max(np.linalg.norm(
        _soft(X_ref @ w["W2"][k].T + Y @ w["W1"][k].T, w["theta"][k]) - X_ref, axis=1)
        / np.maximum(np.linalg.norm(X_ref, axis=1), 1e-300))) for k in range(1, K)) if K > 1 else 0.0
    fixed = fp <= fixed_point_rtol
    rates["contraction"] = {
        "values": env, "metric": "distance", "against": "reference", "certified": bool(fixed),
        "holds": bool(np.all(d_ref.max(axis=1) <= env * (1 + slack) + slack)),
        "note": (f"max ||x_1 - x_ref|| * prod_(j<=k) ||W2_j||_2; the reference is a fixed point of every layer "
                 f"(relative residual {fp:.2g}), so this bounds ||x_k - x_ref||") if fixed else
                (f"max ||x_1 - x_ref|| * prod ||W2_j||_2: NOT an error bound, the reference optimum is not a fixed "
                 f"point of the layers (relative residual {fp:.2g}); it bounds the sensitivity of x_1 -> x_k")}

    # ---------------------------------------------------------------- ALISTA Thm 1
    check = None
    if X_true is not None:
        try:
            check = alista_theorem_check(model, problem.A, X_true, Y, s=alista_s)
        except (InvalidInputError, UnfoldTheoryError) as exc:
            notes.append(f"ALISTA check not run: {exc}")
        if check is not None:
            if check.status != Verdict.NOT_APPLICABLE:
                rates["alista"] = {"values": check.bound_per_layer, "metric": "distance", "against": "ground_truth",
                                   "certified": check.status == Verdict.HOLDS, "holds": check.conclusions["error_bound"]
                                   ["holds"], "note": "ALISTA Thm 1, s B prod c_t"}
            else:
                notes.append("ALISTA Thm 1 not applicable: " + ", ".join(check.failed_assumptions))
            if check.extended_status != Verdict.NOT_APPLICABLE:
                rates["alista_extended"] = {
                    "values": check.extended_bound, "metric": "distance", "against": "ground_truth",
                    "certified": check.extended_status == Verdict.HOLDS,
                    "holds": bool(np.all(check.observed <= check.extended_bound * (1 + slack) + slack)),
                    "note": "proof of ALISTA Thm 1 with thresholds >= the theorem's"}

    # ---------------------------------------------------------------- PEP (the schedule the network runs)
    sch = _schedule_on(model, problem) if pep else None
    if sch is not None:
        from ._per_layer import worst_case_per_layer

        L = sch.L
        R2 = float(np.max(np.sum(X_ref ** 2, axis=1)))
        if sch.method == "prox_grad" and np.allclose(sch.steps, 1.0, rtol=1e-12, atol=0):
            vals = L / (4 * layers)        # tight closed form (Taylor, Hendrickx & Glineur, JOTA 2018, Thm 3.1)
            certified, how = True, "closed form L/(4k) (step 1/L)"
        else:
            bounds = worst_case_per_layer(sch, metric="objective")
            vals = np.array([b.value for b in bounds])
            certified = all(b.certified for b in bounds)
            how = f"PEP worst case of the schedule read from the model ({sch.method})"
            notes += [f"PEP after layer {k}: {b.reason}" for k, b in enumerate(bounds, 1) if not b.certified]
        rates["pep"] = {"values": vals * R2, "metric": "objective_gap", "against": "reference",
                        "certified": bool(certified),
                        "holds": bool(np.all(gap <= vals * R2 * (1 + slack) + slack * (1 + np.abs(f_star).max()))),
                        "note": f"{how} times max ||x_0 - x_ref||^2"}
    return ConvergenceProfile(type(model).__name__, layers, d_ref.max(axis=1), d_ref.mean(axis=1), gap, d_true,
                              rates, ref_cert, check, notes, time.perf_counter() - t0)


def _schedule_on(model: Any, problem: Any) -> Any:
    """The (momentum) proximal gradient schedule the network runs on ``problem`` (its ``A`` and ``lam``), or
    None with the reason logged when it runs none (``docs/theory/pep.md §6, §8``)."""
    from ..errors import NotRepresentableError
    from ._schedules import schedule_of

    try:
        sch = schedule_of(model, lam=problem.lam, A=problem.A)
    except (NotRepresentableError, InvalidInputError) as exc:
        logger.info("no PEP rate for %s: %s", type(model).__name__, exc)
        return None
    return sch if sch.method in ("prox_grad", "momentum_prox_grad") else None
