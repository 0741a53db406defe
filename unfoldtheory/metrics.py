"""Measurements of what a network really does: per-layer NMSE, objective gaps, support recovery."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import as_float_array
from .errors import InvalidInputError


def nmse_db(x_hat: Any, x: Any) -> float:
    r"""Normalised MSE in dB over a batch, :math:`10\log_{10}(\sum\|\hat x - x\|^2 / \sum\|x\|^2)`.

    The metric of the LISTA-CP and ALISTA papers (there written with expectations).  ``-inf`` when the
    estimate is exact; raises when the reference is identically zero (the ratio is undefined).
    """
    x_hat, x = as_float_array(x_hat, "x_hat"), as_float_array(x, "x")
    if x_hat.shape != x.shape:
        raise InvalidInputError(f"x_hat and x must have the same shape; got {x_hat.shape} and {x.shape}.")
    den = float(np.sum(x ** 2))
    if den == 0:
        raise InvalidInputError("x is identically zero, so the NMSE is undefined; use the MSE instead.")
    num = float(np.sum((x_hat - x) ** 2))
    return -np.inf if num == 0 else 10.0 * np.log10(num / den)


def layer_outputs(model: Any, y: Any) -> list[np.ndarray]:
    """``[x_1, ..., x_K]`` of a model (torch module or analysis form) on ``y``, as float64 numpy arrays."""
    import torch

    if hasattr(model, "evaluate") and not isinstance(model, torch.nn.Module):
        return list(model.evaluate(y, return_all=True))
    if isinstance(model, torch.nn.Module):
        from .models.adapt import adapt   # a plain module: per-layer outputs from its extracted form

        model = adapt(model)
    with torch.no_grad():
        outs = model(y, return_all=True)
    return [o.detach().cpu().double().numpy() for o in outs]


def per_layer_nmse_db(model: Any, y: Any, x_ref: Any) -> np.ndarray:
    """NMSE (dB) of every layer's output against ``x_ref`` (ground truth or reference optimum), shape (K,)."""
    return np.array([nmse_db(x, x_ref) for x in layer_outputs(model, y)])


def per_layer_objective_gap(model: Any, problem: Any, y: Any, optimal_objective: Any) -> np.ndarray:
    r"""Mean objective gap :math:`F(x_k) - F^\star` per layer, shape (K,); ``optimal_objective`` from
    :func:`unfoldtheory.reference.solve` (``sol.objective``)."""
    f_star = as_float_array(optimal_objective, "optimal_objective")
    return np.array([float(np.mean(problem.objective(x, y) - f_star)) for x in layer_outputs(model, y)])


def support_recovery(x_hat: Any, x: Any, tol: float = 0.0) -> dict[str, float]:
    """Support recovery of ``x_hat`` against ``x``: precision, recall, F1 and the fraction of instances with
    no false positive (entries with ``|x_hat| > tol`` outside the true support)."""
    x_hat, x = as_float_array(x_hat, "x_hat", ndim=(1, 2)), as_float_array(x, "x", ndim=(1, 2))
    est, true = np.abs(x_hat) > tol, x != 0
    tp = float(np.sum(est & true))
    precision = tp / max(float(np.sum(est)), 1.0)
    recall = tp / max(float(np.sum(true)), 1.0)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    no_fp = np.mean(~np.any(est & ~true, axis=-1)) if est.ndim == 2 else float(not np.any(est & ~true))
    return {"precision": precision, "recall": recall, "f1": f1, "no_false_positive": float(no_fp)}
