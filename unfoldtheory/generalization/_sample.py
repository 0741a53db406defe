r"""Sample-convergence (test-set) bounds for a fixed optimizer, classical or trained.

For a fixed model (chosen before the test instances are drawn) and N i.i.d. held-out instances, the number
of instances with :math:`\phi_k > \varepsilon` is Binomial(N, r_k) with the risk
:math:`r_k = P(\phi_k > \varepsilon)`.  The Chernoff bound in kl form,
:math:`P(\mathrm{kl}(\hat r_k\|r_k) \ge c,\ \hat r_k \lessgtr r_k) \le e^{-Nc}` for each side, gives with
probability at least :math:`1 - \delta'`

.. math:: \mathrm{kl}^{-1}_{\mathrm{lo}}\big(\hat r_k \,\big|\, \tfrac{\log(2/\delta')}{N}\big) \le r_k \le
          \mathrm{kl}^{-1}\big(\hat r_k \,\big|\, \tfrac{\log(2/\delta')}{N}\big)

(Langford 2005, JMLR 6, Thm 3.3 for one side; the :math:`\log(2/\delta)` penalty is the one of Sambharya &
Stellato, arXiv 2404.13831, docs/theory/generalization.md §1, and covers both sides at once).  With ``simultaneous=True``
(default) :math:`\delta' = \delta/K`: by a union bound over the K layers, all K intervals hold together with
probability :math:`\ge 1 - \delta`; with ``simultaneous=False``, :math:`\delta' = \delta` and each layer's
interval holds with probability :math:`\ge 1 - \delta` on its own.  The fraction solved,
:math:`1 - r_k`, is therefore at least ``1 - risk_upper[k]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_scalar, to_numpy
from ..bounds import Bound
from ..errors import InvalidInputError
from ._kl import kl_inverse, kl_inverse_lower
from ._metrics import METRICS, layer_metrics


def check_delta(delta: Any, name: str = "delta") -> float:
    try:
        return check_scalar(delta, name, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    except InvalidInputError as err:
        raise InvalidInputError(f"{err} {name} is a failure probability: pass a value in (0, 1), e.g. 0.05.") \
            from None


def check_metric_values(metrics: Any, name: str = "metrics") -> np.ndarray:
    """A finite (N, K) float64 array (a 1-D array is one layer); N >= 1."""
    try:
        arr = np.asarray(to_numpy(metrics), dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a numeric array of shape (N,) or (N, K); got "
                                f"{type(metrics).__name__}.") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must have shape (N,) or (N, K) (instances x layers); got {arr.shape}.")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} holds N = 0 instances; a test-set bound needs N >= 1 held-out "
                                "instances.")
    if arr.shape[1] == 0:
        raise InvalidInputError(f"{name} holds no layer (shape {arr.shape}).")
    if not np.isfinite(arr).all():
        bad = int(np.sum(~np.isfinite(arr)))
        raise InvalidInputError(f"{name} contains {bad} NaN/Inf value(s); map failed (diverged) instances to a "
                                "large finite value so that they count as unsolved.")
    return arr


@dataclass(frozen=True)
class SampleConvergenceResult:
    r"""Test-set bound on the per-layer risk :math:`r_k = P(\phi_k > \varepsilon)`.

    Attributes
    ----------
    metric : str
    eps : float
        Tolerance: an instance is *solved* at layer k when :math:`\phi_k \le \varepsilon`.
    delta : float
        Total failure probability.
    N : int
        Number of held-out instances.
    simultaneous : bool
        Whether the K intervals hold jointly (union bound, ``delta_per_layer = delta/K``).
    delta_per_layer : float
    penalty : float
        :math:`\log(2/\delta')/N`.
    empirical_risk, risk_upper, risk_lower : ndarray (K,)
        :math:`\hat r_k` and the certified interval for :math:`r_k`.
    """

    metric: str
    eps: float
    delta: float
    N: int
    simultaneous: bool
    delta_per_layer: float
    penalty: float
    empirical_risk: np.ndarray
    risk_upper: np.ndarray
    risk_lower: np.ndarray
    seconds: float = field(default=0.0, compare=False)

    @property
    def num_layers(self) -> int:
        return len(self.empirical_risk)

    @property
    def fraction_solved(self) -> np.ndarray:
        """Measured fraction of instances solved at each layer, :math:`1 - \\hat r_k`."""
        return 1.0 - self.empirical_risk

    @property
    def certified_fraction_solved(self) -> np.ndarray:
        """Certified lower bound on the probability of solving a fresh instance, :math:`1 - r_k^{up}`."""
        return 1.0 - self.risk_upper

    @property
    def bound(self) -> Bound:
        """The upper bound on the last layer's risk as a :class:`Bound` (the package's one spelling, as for the
        PAC-Bayes and uniform results); :meth:`layer_bound` gives any layer, :attr:`bounds` all of them."""
        return self.layer_bound(-1)

    def layer_bound(self, layer: int = -1) -> Bound:
        """The upper bound on :math:`r_k` of one layer (``-1``: the last) as a :class:`Bound`."""
        k = range(self.num_layers)[layer]
        conf = 1.0 - self.delta
        joint = f"jointly for all {self.num_layers} layers" if self.simultaneous else "for this layer"
        vac = bool(self.risk_upper[k] >= 1.0)
        return Bound(value=float(self.risk_upper[k]), side="upper", certified=True,
                     method="sample_convergence", confidence=conf, vacuous=vac,
                     vacuous_reason="the risk bound is >= 1, the largest possible risk" if vac else "",
                     quantity=f"P({self.metric}_{k + 1} > {self.eps:g}) over the data distribution",
                     solver="kl inverse (bit bisection, safe side)",
                     status=f"holds with probability >= {conf:g} over the {self.N} held-out instances ({joint})",
                     checks={"confidence": conf, "delta": self.delta, "delta_per_layer": self.delta_per_layer,
                             "N": self.N, "empirical_risk": float(self.empirical_risk[k]),
                             "risk_lower": float(self.risk_lower[k]), "penalty": self.penalty,
                             "statistical": True},
                     seconds=self.seconds)

    @property
    def bounds(self) -> list[Bound]:
        return [self.layer_bound(k) for k in range(self.num_layers)]

    def to_dict(self) -> dict:
        return {"metric": self.metric, "eps": self.eps, "delta": self.delta, "N": self.N,
                "simultaneous": self.simultaneous, "delta_per_layer": self.delta_per_layer,
                "penalty": self.penalty, "empirical_risk": self.empirical_risk.tolist(),
                "risk_upper": self.risk_upper.tolist(), "risk_lower": self.risk_lower.tolist(),
                "fraction_solved": self.fraction_solved.tolist(),
                "certified_fraction_solved": self.certified_fraction_solved.tolist(), "seconds": self.seconds}

    def __repr__(self) -> str:
        joint = "jointly over layers" if self.simultaneous else "per layer"
        head = (f"SampleConvergenceResult(P({self.metric}_k > {self.eps:g}), N={self.N}, "
                f"confidence {1 - self.delta:g} {joint})")
        rows = [f"  layer {k + 1:>3}: empirical risk {self.empirical_risk[k]:.4f}, "
                f"risk <= {self.risk_upper[k]:.4f} (>= {self.risk_lower[k]:.4f}), "
                f"certified solved >= {self.certified_fraction_solved[k]:.4f}"
                for k in range(self.num_layers)]
        if len(rows) > 8:
            rows = rows[:3] + ["  ..."] + rows[-3:]
        return "\n".join([head] + rows)


def risk_bound(metrics: Any, eps: float, *, delta: float = 0.05, simultaneous: bool = True,
               metric: str = "metric") -> SampleConvergenceResult:
    r"""Sample-convergence bound from precomputed metric values (module docstring).

    Parameters
    ----------
    metrics : array_like (N,) or (N, K)
        :math:`\phi_k(s_i)` on N i.i.d. instances **not used to choose the model**; finite.
    eps : float
        Tolerance; the risk is :math:`P(\phi_k > \varepsilon)`.
    delta : float in (0, 1)
    simultaneous : bool
        Union bound over the K columns (``delta/K`` each) so that all intervals hold together.
    metric : str
        A label for the reports.

    Returns
    -------
    SampleConvergenceResult

    Raises
    ------
    InvalidInputError
        N = 0, NaN/Inf metrics, ``delta`` outside (0, 1), non-finite ``eps``.
    """
    import time

    start = time.perf_counter()
    vals = check_metric_values(metrics)
    eps = check_scalar(eps, "eps")
    delta = check_delta(delta)
    N, K = vals.shape
    d_layer = delta / K if simultaneous else delta
    pen = math.log(2.0 / d_layer) / N
    emp = np.mean(vals > eps, axis=0)
    up = np.asarray(kl_inverse(emp, pen), dtype=float)
    lo = np.asarray(kl_inverse_lower(emp, pen), dtype=float)
    return SampleConvergenceResult(metric=str(metric), eps=eps, delta=delta, N=int(N), simultaneous=bool(simultaneous),
                                   delta_per_layer=d_layer, penalty=pen, empirical_risk=emp, risk_upper=up,
                                   risk_lower=lo, seconds=time.perf_counter() - start)


def sample_convergence_bound(model: Any, data: Any, eps: float, *, metric: str = "nmse_db", delta: float = 0.05,
                             problem: Any = None, reference: Any = None,
                             simultaneous: bool = True) -> SampleConvergenceResult:
    r"""Certified risk :math:`P(\phi_k > \varepsilon)` of a fixed model at every layer, from held-out data.

    Sambharya & Stellato (arXiv 2404.13831), "sample convergence bound" for classical optimizers; it holds
    for any model fixed before ``data`` is drawn (a trained network evaluated on fresh instances too):

    .. math:: r_k \le \mathrm{kl}^{-1}\big(\hat r_k \,\big|\, \log(2K/\delta)/N\big)\quad\text{for all }k,
              \text{ with probability} \ge 1-\delta

    (``simultaneous=True``; :math:`\log(2/\delta)/N` per layer otherwise).  See :func:`risk_bound`.

    Parameters
    ----------
    model : torch model or analysis form
    data : SparseSample, ``(y, x)`` or ``y``
        N fresh i.i.d. instances.
    eps : float
        Tolerance in the metric's unit (dB for ``nmse_db``).
    metric : {"nmse_db", "nmse", "distance", "objective_gap", "fixed_point_residual"}
    delta : float in (0, 1)
    problem, reference
        LASSO problem and (optional) its precomputed reference solution, for the metrics that need them.
    simultaneous : bool

    Returns
    -------
    SampleConvergenceResult
        ``.bound`` (the last layer) and ``.layer_bound(k)`` give a :class:`~unfoldtheory.bounds.Bound`
        (``side="upper"``, ``certified=True``: a statistical certificate with its ``confidence``).

    Examples
    --------
    >>> import torch, unfoldtheory as ut
    >>> gen = ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0)
    >>> net = ut.models.ISTA(gen.A, lam=0.05, num_layers=30, dtype=torch.float64, device="cpu")
    >>> res = ut.generalization.sample_convergence_bound(net, gen.sample(2000, seed=1), eps=-10.0)
    >>> bool(res.risk_upper[-1] >= res.empirical_risk[-1])
    True
    """
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {METRICS}; got {metric!r}.")
    eps = check_scalar(eps, "eps")
    delta = check_delta(delta)
    vals = layer_metrics(model, data, metric=metric, problem=problem, reference=reference)
    return risk_bound(vals, eps, delta=delta, simultaneous=simultaneous, metric=metric)
