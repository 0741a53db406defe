"""LISTA: learned ISTA with per-layer weights (Gregor & LeCun, ICML 2010)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._validation import as_float_array, check_int, check_matrix, check_scalar
from ..errors import InvalidInputError
from .base import UnfoldedNetwork, chain_form
from .functional import soft_threshold


class LISTA(UnfoldedNetwork):
    r"""Learned ISTA (paradigm 2, learned objective parameters).

    .. math::

        x_k = \eta_{\theta_k}\big(W_2^{(k)} x_{k-1} + W_1^{(k)} y\big), \qquad k = 1, \dots, K, \quad x_0 = 0,

    with every :math:`W_1^{(k)} \in \mathbb{R}^{n\times m}`, :math:`W_2^{(k)} \in \mathbb{R}^{n\times n}` and
    threshold :math:`\theta_k \ge 0` learned (untied; ``tied=True`` shares one set across layers).
    :math:`W_2^{(1)}` multiplies :math:`x_0 = 0`: it has no effect and receives no gradient; it is kept so
    that the weights round-trip through :meth:`from_weights`.

    At initialisation the network is ISTA with step :math:`\gamma` (default :math:`1/\|A\|_2^2`):
    :math:`W_1 = \gamma A^T`, :math:`W_2 = I - \gamma A^T A`, :math:`\theta = \gamma\lambda`.

    References
    ----------
    K. Gregor, Y. LeCun, "Learning fast approximations of sparse coding", ICML 2010.
    X. Chen, J. Liu, Z. Wang, W. Yin, "Theoretical linear convergence of unfolded ISTA and its practical
    weights and thresholds", NeurIPS 2018 (Thm 1: the coupling :math:`W_2 - (I - W_1 A) \to 0` is necessary).

    Parameters
    ----------
    A : array_like (m, n)
    num_layers : int, >= 1
    lam : float
        LASSO weight of the ISTA initialisation (threshold :math:`\gamma\lambda`); default 0.1.
    step : float, optional
        ISTA step of the initialisation; default :math:`1/L`.
    tied : bool
        Share one (W1, W2, theta) across all layers.
    """

    paradigm = 2
    per_layer = ("W1", "W2", "theta")

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, step: float | None = None,
                 tied: bool = False, device: Any = None, dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        num_layers = check_int(num_layers, "num_layers", minimum=1)
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        self._record_config(A=A, num_layers=num_layers, lam=lam, step=step, tied=bool(tied))
        L = float(np.linalg.norm(A, 2) ** 2)
        step = 1.0 / L if step is None else check_scalar(step, "step", low=0.0, low_inclusive=False)
        copies = 1 if tied else num_layers
        W1 = np.broadcast_to(step * A.T, (copies, self.n, self.m))
        W2 = np.broadcast_to(np.eye(self.n) - step * (A.T @ A), (copies, self.n, self.n))
        self._init_parameters(W1, W2, np.full((copies, 1), step * lam), tied)

    def _init_parameters(self, W1: np.ndarray, W2: np.ndarray, theta: np.ndarray, tied: bool) -> None:
        kw = {"dtype": self.dtype, "device": self.device}
        self.tied = bool(tied)
        self.W1 = nn.Parameter(torch.tensor(np.ascontiguousarray(W1), **kw))
        self.W2 = nn.Parameter(torch.tensor(np.ascontiguousarray(W2), **kw))
        self.theta = nn.Parameter(torch.tensor(np.ascontiguousarray(theta), **kw))

    @classmethod
    def from_weights(cls, W1: Sequence[Any], W2: Sequence[Any], theta: Sequence[Any], A: Any = None,
                     device: Any = None, dtype: torch.dtype | None = None) -> "LISTA":
        """Build an (untied) LISTA from given per-layer weights.

        Parameters
        ----------
        W1 : K arrays of shape (n, m)
        W2 : K arrays of shape (n, n); ``W2[0]`` multiplies ``x_0 = 0`` and has no effect
        theta : K thresholds, each a scalar or an array of shape (n,), all >= 0
        A : array_like (m, n), optional
            The dictionary, stored for analyses that need it.
        """
        K = _check_lengths(W1=W1, W2=W2, theta=theta)
        w1 = [as_float_array(w, f"W1[{k}]", ndim=2) for k, w in enumerate(W1)]
        n, m = w1[0].shape
        for k, w in enumerate(w1):
            if w.shape != (n, m):
                raise InvalidInputError(f"W1[{k}] must have shape ({n}, {m}) like W1[0]; got {w.shape}.")
        w2 = [as_float_array(w, f"W2[{k}]", ndim=2) for k, w in enumerate(W2)]
        for k, w in enumerate(w2):
            if w.shape != (n, n):
                raise InvalidInputError(f"W2[{k}] must have shape ({n}, {n}); got {w.shape}.")
        th = [as_float_array(t, f"theta[{k}]", ndim=(0, 1)) for k, t in enumerate(theta)]
        for k, t in enumerate(th):
            if t.ndim == 1 and t.shape != (n,):
                raise InvalidInputError(f"theta[{k}] must be a scalar or have shape ({n},); got {t.shape}.")
            if (t < 0).any():
                raise InvalidInputError(f"theta[{k}] must be >= 0 (thresholds of a soft threshold); "
                                        f"got min {t.min():g}.")
        width = 1 if all(t.ndim == 0 for t in th) else n
        theta_arr = np.stack([np.broadcast_to(t, (width,)) for t in th])
        net = cls.__new__(cls)
        UnfoldedNetwork.__init__(net, m, n, K, A=A, device=device, dtype=dtype)
        net._init_parameters(np.stack(w1), np.stack(w2), theta_arr, tied=False)
        net._record_config(A=None if A is None else np.asarray(A, dtype=float), num_layers=K, m=m, n=n,
                           theta_width=width, from_weights=True)
        return net

    @classmethod
    def _from_config(cls, config: dict, device: Any = None, dtype: torch.dtype | None = None) -> "LISTA":
        if not config.get("from_weights"):
            return cls(**config, device=device, dtype=dtype)
        K, m, n, width = config["num_layers"], config["m"], config["n"], config["theta_width"]
        return cls.from_weights([np.zeros((n, m))] * K, [np.zeros((n, n))] * K,
                                [np.zeros(width) if width > 1 else 0.0] * K, A=config.get("A"),
                                device=device, dtype=dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tied={self.tied}"

    def _layer(self, k: int) -> int:
        return 0 if self.tied else k

    def _iterate(self, y):
        x = None
        for k in range(self.num_layers):
            i = self._layer(k)
            z = y @ self.W1[i].T
            if x is not None:
                z = z + x @ self.W2[i].T
            x = soft_threshold(z, self.theta[i])
            yield x

    def weights(self) -> dict[str, list[np.ndarray]]:
        """Per-layer weights as float64 numpy arrays: ``{"W1": [...], "W2": [...], "theta": [...]}`` (K each)."""
        idx = [self._layer(k) for k in range(self.num_layers)]
        W1, W2, th = self._np(self.W1), self._np(self.W2), self._np(self.theta)
        return {"W1": [W1[i] for i in idx], "W2": [W2[i] for i in idx],
                "theta": [np.broadcast_to(th[i], (self.n,)).copy() for i in idx]}

    def form(self):
        w = self.weights()
        self._check_thresholds(w["theta"])
        return chain_form(self.m, w["W1"], w["W2"], w["theta"], name=f"LISTA(K={self.num_layers})")


def _check_lengths(**lists: Sequence[Any]) -> int:
    lengths = {}
    for name, seq in lists.items():
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise InvalidInputError(f"{name} must be a list with one entry per layer; got {type(seq).__name__}.")
        lengths[name] = len(seq)
    K = next(iter(lengths.values()))
    if K < 1:
        raise InvalidInputError("num_layers must be >= 1: pass at least one entry per weight list.")
    if len(set(lengths.values())) != 1:
        desc = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise InvalidInputError(f"every weight list needs one entry per layer; got lengths {desc}.")
    return K
