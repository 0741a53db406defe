r"""Lipschitz constant of a LISTA-type chain with respect to its parameters, on a bounded set.

Network :math:`x_k = \eta_{\theta_k}(W_2^{(k)} x_{k-1} + W_1^{(k)} y)`, :math:`x_0 = 0`, soft threshold
:math:`\eta`.  Parameter set :math:`\mathcal{P}`: :math:`\|W_2^{(k)}\|_2 \le \omega_k`, :math:`\|W_1^{(k)}\|_2
\le \beta_k`, :math:`\theta_k \ge 0`; inputs :math:`\|y\|_2 \le R`.

Two facts: :math:`|\eta_\theta(u) - \eta_{\theta'}(u')| \le |u - u'| + |\theta - \theta'|` (the soft threshold
is :math:`u - \Pi_{[-\theta,\theta]}(u)`) and :math:`|\eta_\theta(u)| \le |u|` for :math:`\theta \ge 0`. Hence
:math:`\|x_k\| \le X_k` with :math:`X_0 = 0`, :math:`X_k = \omega_k X_{k-1} + \beta_k R`, and for two
parameter sets in :math:`\mathcal{P}`

.. math:: \|x_K - x_K'\| \le \sum_{k=1}^K \Pi_k \big( X_{k-1}\|\Delta W_2^{(k)}\|_2 + R\|\Delta W_1^{(k)}\|_2
          + \|\Delta\theta_k\|_2 \big), \qquad \Pi_k = \prod_{j=k+1}^K \omega_j .

With :math:`\|\cdot\|_2 \le \|\cdot\|_F` and Cauchy-Schwarz, the Lipschitz constant with respect to the
Euclidean norm of the stacked parameter vector is at most

.. math:: L_{\mathcal{P}} = \Big(\sum_k \Pi_k^2 \big(X_{k-1}^2 + R^2 + c_\theta\big)\Big)^{1/2},

with :math:`c_\theta = 1` for per-coordinate thresholds and :math:`c_\theta = n` for one scalar threshold per
layer (then :math:`\|\Delta\theta_k \mathbf{1}\|_2 = \sqrt n|\Delta\theta_k|`).  For tied weights (one shared
set) the per-layer sums are taken before squaring.  This is an upper bound (not tight in general); it is the
quantity used by covering-number generalisation bounds for unfolded networks (Behboodi, Rauhut, Schnoor 2022;
Schnoor, Behboodi, Rauhut 2023).
"""

from __future__ import annotations

import math

import numpy as np

from ._net import spectral_norm_upper

_U = np.finfo(np.float64).eps / 2


def _per_layer(value, K: int, name: str) -> np.ndarray:
    from ..errors import InvalidInputError

    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(K, float(arr))
    if arr.shape != (K,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidInputError(
            f"{name} must be a non-negative finite scalar or have {K} entries; got {value!r}.")
    return arr


def parameter_constants(W1_norm: np.ndarray, W2_norm: np.ndarray, y_norm: float, n: int,
                        scalar_theta: bool, tied: bool) -> dict:
    """The closed form above; returns the total and per-group constants (outward rounded)."""
    K = len(W1_norm)
    X = np.zeros(K + 1)
    for k in range(1, K + 1):
        X[k] = W2_norm[k - 1] * X[k - 1] + W1_norm[k - 1] * y_norm
    Pi = np.ones(K)
    for k in range(K - 2, -1, -1):
        Pi[k] = Pi[k + 1] * W2_norm[k + 1]
    c_theta = float(n) if scalar_theta else 1.0
    if tied:
        g2 = float(np.sum(Pi * X[:-1]))
        g1 = float(y_norm * np.sum(Pi))
        gt = float(math.sqrt(c_theta) * np.sum(Pi))
        total = math.sqrt(g2 ** 2 + g1 ** 2 + gt ** 2)
    else:
        g2 = math.sqrt(float(np.sum(Pi ** 2 * X[:-1] ** 2)))
        g1 = math.sqrt(float(np.sum(Pi ** 2))) * y_norm
        gt = math.sqrt(c_theta * float(np.sum(Pi ** 2)))
        total = math.sqrt(g2 ** 2 + g1 ** 2 + gt ** 2)
    up = 1 + 8 * (K + 4) * _U
    return {"total": total * up, "W2": g2 * up, "W1": g1 * up, "theta": gt * up, "iterate_norms": X[1:] * up}


def weights_of(model) -> tuple[list, list, list, bool]:
    """(W1, W2, theta, tied) from a LISTA/ISTA-like model or a dict of weights."""
    from ..errors import NotRepresentableError

    tied = bool(getattr(model, "tied", False))
    if isinstance(model, dict):
        w = model
    elif hasattr(model, "weights") and callable(model.weights):
        w = model.weights()
    elif hasattr(model, "form") and callable(model.form):
        form = model.form()
        W1, W2, th = [], [], []
        for k, blk in enumerate(form.blocks):
            if set(blk.inputs) - {k - 1} or blk.B is None or blk.activation.kind != "soft_threshold":
                raise NotRepresentableError(
                    "parameter_upper_bound needs a LISTA-type chain "
                    "x_k = soft(W2_k x_{k-1} + W1_k y, theta_k); "
                    f"block {k} of this form is not of that shape.")
            W1.append(blk.B.toarray() if hasattr(blk.B, "toarray") else np.asarray(blk.B))
            M = blk.inputs.get(k - 1)
            n = blk.size
            dense = None if M is None else (M.toarray() if hasattr(M, "toarray") else np.asarray(M))
            W2.append(np.zeros((n, n)) if dense is None else dense)
            th.append(blk.activation.theta)
        w = {"W1": W1, "W2": W2, "theta": th}
        tied = False
    else:
        raise NotRepresentableError(
            f"{type(model).__name__} is not a LISTA-type model (needs .weights() or .form()).")
    return list(w["W1"]), list(w["W2"]), list(w["theta"]), tied


def model_norms(W1: list, W2: list) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([spectral_norm_upper(w) for w in W1]),
            np.array([0.0] + [spectral_norm_upper(w) for w in W2[1:]]))
