r"""Contraction of unrolled layers: per-layer constants, averagedness and fixed points.

For a layer :math:`T_k(x) = \sigma(W_k x + B_k y + b_k)` of a chain form (one block per layer, each reading the
previous one) and a 1-Lipschitz activation (slopes in [0, 1] or [1, 1]),

.. math:: \|T_k(x) - T_k(x')\| \le \|W_k\|_2 \|x - x'\| \quad\text{for every fixed } y,

with equality attainable when every coordinate is in its linear regime (docs/theory/contraction.md §3), and on
inputs supported in a set S the constant :math:`\|W_k[:, S]\|_2` (restricted-support constant).  The
composition gives the end-to-end contraction factor :math:`\prod_{k \ge 2}\|W_k\|_2` of the map
:math:`x_1 \mapsto x_K` at fixed ``y``.

ISTA with step :math:`\gamma \in (0, 2/L)` is :math:`\alpha`-averaged with :math:`\alpha = 2/(4 - \gamma L)`:
:math:`\|Tx - Ty\|^2 \le \|x - y\|^2 - \tfrac{1-\alpha}{\alpha}\|(I-T)x - (I-T)y\|^2` (composition of the
:math:`\gamma L/2`-averaged gradient step and the firmly nonexpansive prox; Combettes & Yamada, J. Math.
Anal. Appl. 2015, Prop. 2.4; docs/theory/contraction.md §1).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._validation import as_float_array, check_int, check_scalar, to_numpy
from .bounds import Bound
from .errors import InvalidInputError, NotRepresentableError
from .form import Form, _dense, require_form

_EPS = np.finfo(float).eps


def spectral_norm_upper(M: Any) -> float:
    """:math:`\\|M\\|_2` from an SVD in float64, rounded outward by a relative ``n * eps`` margin so the value
    is an upper bound on the exact norm (LAPACK's singular values have relative error ~ n eps)."""
    M = _dense(M)
    if M.size == 0:
        return 0.0
    s = float(np.linalg.norm(M, 2))
    return s * (1 + 8 * max(M.shape) * _EPS) + np.finfo(float).tiny


def _chain(form: Form) -> list:
    """The state edges W_k (k >= 2) of a chain form, refusing other structures."""
    blocks = form.blocks
    if len(blocks) != form.num_layers or any(sorted(b.inputs) != ([] if k == 0 else [k - 1])
                                             for k, b in enumerate(blocks)):
        raise NotRepresentableError(
            f"{form.name}: per-layer contraction needs a chain form (one block per layer, each reading only the "
            "previous one), as for ISTA, LISTA, LISTA-CP, ALISTA, TiLISTA and learned-step ISTA; this form has "
            f"{len(blocks)} blocks for {form.num_layers} layers. Use a Lipschitz bound of the whole network.")
    for blk in blocks:
        alpha, beta = blk.activation.slope_bounds()
        if alpha.min() < 0 or beta.max() > 1:
            raise NotRepresentableError(f"{blk.name}: activation slopes outside [0, 1]; the layer bound needs a "
                                        "1-Lipschitz activation.")
    return [None] + [blocks[k].inputs[k - 1] for k in range(1, len(blocks))]


def layer_lipschitz(model: Any) -> list[Bound]:
    r"""Upper bounds :math:`\|W_k\|_2` on the Lipschitz constant of each layer :math:`x_{k-1} \mapsto x_k` at fixed
    ``y`` (layers 2..K; layer 1 reads only ``y``).  Exact spectral norms, rounded outward; tight when the
    layer's coordinates are all in their linear regime."""
    W = _chain(require_form(model))
    out = []
    for k, Wk in enumerate(W[1:], start=2):
        t0 = time.perf_counter()
        out.append(Bound(spectral_norm_upper(Wk), "upper", True, "spectral_norm",
                         quantity=f"Lipschitz constant of layer {k} in the state (x_{k - 1} -> x_{k}, fixed y)",
                         seconds=time.perf_counter() - t0))
    return out


def support_indices(support: Any, n: int) -> np.ndarray:
    """The sorted, distinct indices of ``support``: a boolean mask of length ``n`` or integer indices in
    ``[0, n)``.  Floats (even integral ones such as 1.0), NaN, out-of-range or non-1-D input are refused
    rather than truncated."""
    S = to_numpy(support)
    if S.dtype == bool:
        if S.shape != (n,):
            raise InvalidInputError(f"support as a boolean mask must have shape ({n},); got {S.shape}.")
        return np.flatnonzero(S)
    if S.ndim > 1 or not (S.size == 0 or np.issubdtype(S.dtype, np.integer)):
        raise InvalidInputError(f"support must be a boolean mask of length {n} or a 1-D array of integer indices "
                                f"in [0, {n}); got {S.dtype} values {np.ravel(S)[:5].tolist()}"
                                f"{'...' if S.size > 5 else ''}. Use np.flatnonzero(mask) or integer indices.")
    idx = np.unique(S.astype(np.int64).ravel())
    if idx.size and (idx[0] < 0 or idx[-1] >= n):
        raise InvalidInputError(f"support indices must lie in [0, {n}); got {idx[0]}..{idx[-1]}.")
    return idx


def restricted_lipschitz(model: Any, support: Any, layer: int | None = None) -> list[Bound]:
    r"""Upper bounds :math:`\|W_k[:, S]\|_2` on the Lipschitz constant of layer k over states supported in ``S``
    (the restricted-support constant; the LISTA-CP/ALISTA analyses work on the support of :math:`x^\star`).

    ``support`` is a boolean mask or an index array over the n state coordinates; ``layer`` (2..K) selects one
    layer, default all."""
    W = _chain(require_form(model))
    n = form_n = W[1].shape[1] if len(W) > 1 else None
    if n is None:
        raise InvalidInputError("the network has a single layer: there is no state-to-state map to bound.")
    idx = support_indices(support, form_n)
    layers = range(2, len(W) + 1) if layer is None else [check_int(layer, "layer")]
    out = []
    for k in layers:
        if not 2 <= k <= len(W):
            raise InvalidInputError(f"layer must be in 2..{len(W)}; got {k}.")
        out.append(Bound(spectral_norm_upper(_dense(W[k - 1])[:, idx]), "upper", True, "restricted_spectral_norm",
                         quantity=f"Lipschitz constant of layer {k} on states supported in S (|S| = {idx.size})"))
    return out


def contraction_certificate(model: Any) -> Bound:
    r"""End-to-end contraction factor of the state map :math:`x_1 \mapsto x_K` at fixed ``y``:
    :math:`\prod_{k=2}^K \|W_k\|_2` (an upper bound; the map is a contraction when it is < 1).  The per-layer
    bounds are in ``checks``.  Each factor is rounded outward and the product is rounded up again."""
    t0 = time.perf_counter()
    layers = layer_lipschitz(model)
    factors = [b.value for b in layers]
    value = float(np.prod(factors)) * (1 + 2 * len(factors) * _EPS) if factors else 1.0
    return Bound(value, "upper", True, "product_of_layer_norms",
                 quantity="Lipschitz constant of x_1 -> x_K at fixed y (contraction if < 1)",
                 checks={"layer_norms": factors, "contraction": value < 1}, seconds=time.perf_counter() - t0)


def averagedness_constant(step: float, L: float) -> float:
    r""":math:`\alpha = 2/(4 - \gamma L)`: ISTA with step :math:`\gamma \in (0, 2/L)` is :math:`\alpha`-averaged."""
    L = check_scalar(L, "L", low=0.0, low_inclusive=False)
    step = check_scalar(step, "step", low=0.0, low_inclusive=False)
    if step * L >= 2:
        raise InvalidInputError(f"step * L must be < 2 for ISTA to be averaged; got {step * L:g}.")
    return 2.0 / (4.0 - step * L)


def averagedness_violation(T, x: Any, z: Any, alpha: float) -> float:
    r""":math:`\|Tx - Tz\|^2 - \|x - z\|^2 + \tfrac{1-\alpha}{\alpha}\|(x - Tx) - (z - Tz)\|^2`; it is <= 0
    (up to rounding) for every pair when ``T`` is :math:`\alpha`-averaged."""
    x, z = as_float_array(x, "x"), as_float_array(z, "z")
    alpha = check_scalar(alpha, "alpha", low=0.0, high=1.0, low_inclusive=False)
    Tx, Tz = T(x), T(z)
    return float(np.sum((Tx - Tz) ** 2) - np.sum((x - z) ** 2)
                 + (1 - alpha) / alpha * np.sum(((x - Tx) - (z - Tz)) ** 2))


def ista_operator(problem: Any, y: Any, step: float | None = None):
    r"""The ISTA map :math:`T(x) = \eta_{\gamma\lambda}(x - \gamma A^T(Ax - y))` of a LASSO (step default 1/L)."""
    step = 1.0 / problem.L if step is None else check_scalar(step, "step", low=0.0, low_inclusive=False)
    y = as_float_array(y, "y", ndim=1)
    return lambda x: problem.prox(x - step * problem.gradient(x, y), step)


def fixed_point_residual(problem: Any, x: Any, y: Any, step: float | None = None) -> float:
    r""":math:`\|x - T(x)\|` for the ISTA map T; zero exactly at the LASSO minimisers (any step in (0, 2/L))."""
    x = as_float_array(x, "x", ndim=1)
    return float(np.linalg.norm(x - ista_operator(problem, y, step)(x)))
