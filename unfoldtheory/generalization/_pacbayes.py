r"""PAC-Bayes guarantees for learned unfolded networks, and training that minimises them.

Setting (Sambharya & Stellato, "Data-driven performance guarantees for classical and learned optimizers",
arXiv 2404.13831; docs/theory/generalization.md §2).  The d randomised parameters :math:`\theta` of a model (by default
all its trainable parameters) follow the posterior :math:`Q = \mathcal N(\mu, \mathrm{diag}(\sigma))`
(:math:`\sigma` holds variances); the prior is :math:`P_j = \mathcal N(\mu_0, \lambda_j I)` with
:math:`\lambda_j = c\,e^{-j/b}`, :math:`j = 1, 2, \dots`, and :math:`\mu_0` chosen **before** the bound sample
is drawn (e.g. the initialisation, or weights trained on other data).  The risk of the Gibbs predictor is
:math:`r(Q) = \mathbb E_{\theta\sim Q} P_s(\phi_k(\theta; s) > \varepsilon)` and its empirical counterpart on
the N bound instances is :math:`\hat r_S(Q)`.

Bound.  With

.. math:: \mathrm{KL}(Q\|P_j) = \tfrac12\Big[\frac{\|\mu-\mu_0\|^2}{\lambda_j} - d + \frac{\sum_i\sigma_i}
          {\lambda_j} + d\log\lambda_j - \sum_i\log\sigma_i\Big],\qquad
          \mathrm{pen}_j = \frac{\mathrm{KL}(Q\|P_j) + \log\frac{\pi^2 N}{6\delta} + 2\log j}{N}

(``2 log j = 2 log(b log(c/lambda_j))`` as in docs/theory/generalization.md §2), for N >= 8, with probability :math:`\ge 1-\delta`
over the bound sample, simultaneously for every posterior Q and every grid index j,

.. math:: \mathrm{kl}(\hat r_S(Q)\,\|\,r(Q)) \le \mathrm{pen}_j .

Proof sketch: Maurer's PAC-Bayes-kl bound (A. Maurer, "A note on the PAC Bayesian theorem", 2004, Thm 5;
Seeger 2002) with confidence :math:`\delta_j = 6\delta/(\pi^2 j^2)` (these sum to :math:`\delta`) has penalty
:math:`(\mathrm{KL} + \log(2\sqrt N/\delta_j))/N`, which is at most :math:`\mathrm{pen}_j` because
:math:`2\sqrt N \le N` for :math:`N \ge 4`.  The empirical Gibbs risk is estimated with an independent
posterior draw :math:`\theta_{h,i}` for every bound instance i and pass h = 1..H; given S the M = NH failure
indicators are independent, in {0, 1}, and their means average to :math:`\hat r_S(Q)`, so by Hoeffding's
inequality in kl form (W. Hoeffding, JASA 1963, Thm 1, which allows different means), with probability
:math:`\ge 1-\delta_2`, :math:`\hat r_S(Q) \le \bar R = \mathrm{kl}^{-1}(\hat r_M | \log(2/\delta_2)/M)`
(the :math:`\log(2/\delta_2)` of docs/theory/generalization.md §2; one draw per instance makes M = NH instead of the H whole-
sample draws of the reference code, a much smaller sampling penalty).  The two-step bound is

.. math:: r(Q) \le R^\star = \mathrm{kl}^{-1}(\bar R \,|\, \min_j \mathrm{pen}_j)
          \quad\text{with probability} \ge 1 - \delta - \delta_2,

and the certified fraction solved is :math:`1 - R^\star` (for a fresh instance and a fresh draw from Q).

Training (:func:`train_pac_bayes`) minimises a differentiable surrogate of the bound over
:math:`(\mu, \log\sigma, \log\lambda)` by the reparametrisation trick: the indicator is replaced by
:math:`\mathrm{sigmoid}((\phi_k - \varepsilon)/\tau)` and :math:`\mathrm{kl}^{-1}(r|\mathrm{pen})` by its
relaxation :math:`(\sqrt{r + \mathrm{pen}/2} + \sqrt{\mathrm{pen}/2})^2` (from
:math:`\mathrm{kl}(q\|p) \ge (p-q)^2/(2p)` for :math:`p \ge q`; Thiemann et al. 2017, Rivasplata et al.
2019).  The reported bound is then evaluated exactly, as above.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .._validation import check_int, check_scalar, to_numpy
from ..bounds import Bound
from ..errors import InvalidInputError
from ._kl import kl_inverse
from ._metrics import METRICS, _data, layer_metrics_from_outputs
from ._sample import check_delta

log = logging.getLogger(__name__)

#: metrics with a differentiable torch surrogate (used by :func:`train_pac_bayes`)
TRAINABLE_METRICS = ("nmse_db", "nmse")


# --------------------------------------------------------------------------------------------- prior grid
@dataclass(frozen=True)
class PriorGrid:
    r"""The prior-variance grid :math:`\lambda_j = c\,e^{-j/b}`, :math:`j = 1, 2, \dots` (docs/theory/generalization.md §2).

    ``c`` is the largest variance (:math:`\lambda_0`, not itself on the grid) and ``b`` the number of grid
    points per factor e; a finer grid (larger b) costs :math:`2\log j` in the penalty.
    """

    c: float = 1.0
    b: float = 10.0

    def __post_init__(self):
        check_scalar(self.c, "grid c", low=0.0, low_inclusive=False)
        check_scalar(self.b, "grid b", low=0.0, low_inclusive=False)

    def variance(self, j: Any) -> np.ndarray | float:
        """:math:`\\lambda_j = c e^{-j/b}`."""
        return self.c * np.exp(-np.asarray(j, dtype=float) / self.b)

    def index(self, lam: float) -> float:
        """The (real) index :math:`j = b\\log(c/\\lambda)` of a variance."""
        return self.b * math.log(self.c / lam)


def _check_variances(var: Any, name: str) -> np.ndarray:
    arr = np.asarray(to_numpy(var), dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN/Inf; pass finite positive variances.")
    if (arr <= 0).any():
        raise InvalidInputError(f"{name} must be > 0 (a Gaussian variance); got min {arr.min()!r}. Pass positive "
                                "variances, e.g. exp(log_sigma).")
    return arr


def gaussian_kl(mean: Any, var: Any, prior_mean: Any, prior_var: float) -> float:
    r""":math:`\mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma)\,\|\,\mathcal N(\mu_0, \lambda I))`.

    .. math:: \tfrac12\Big[\frac{\|\mu-\mu_0\|^2}{\lambda} - d + \frac{\sum_i\sigma_i}{\lambda}
              + d\log\lambda - \sum_i\log\sigma_i\Big]

    (docs/theory/generalization.md §2), computed as :math:`\tfrac12[\|\mu-\mu_0\|^2/\lambda + \sum_i (\rho_i - 1 -
    \log\rho_i)]` with :math:`\rho_i = \sigma_i/\lambda`, a sum of non-negative terms; zero iff
    :math:`\mu = \mu_0` and :math:`\sigma_i = \lambda`.

    Raises
    ------
    InvalidInputError
        A variance <= 0, shapes that differ, NaN/Inf.
    """
    mu = np.asarray(to_numpy(mean), dtype=np.float64).ravel()
    mu0 = np.asarray(to_numpy(prior_mean), dtype=np.float64).ravel()
    if mu.shape != mu0.shape:
        raise InvalidInputError(f"mean and prior_mean must have the same number of entries; got {mu.size} and "
                                f"{mu0.size}.")
    if not (np.isfinite(mu).all() and np.isfinite(mu0).all()):
        raise InvalidInputError("mean / prior_mean contain NaN/Inf; pass finite parameters.")
    s = _check_variances(var, "var (posterior variance)")
    if s.size not in (1, mu.size):
        raise InvalidInputError(f"var must have 1 or {mu.size} entries; got {s.size}.")
    s = np.broadcast_to(s, mu.shape)
    lam = float(_check_variances(prior_var, "prior_var")[0])
    rho = s / lam
    return 0.5 * (float(np.sum((mu - mu0) ** 2)) / lam + float(np.sum(rho - 1.0 - np.log(rho))))


def pac_bayes_penalty(kl: float, N: int, delta: float, j: float) -> float:
    r""":math:`(\mathrm{KL} + \log(\pi^2 N/(6\delta)) + 2\log j)/N`, the union-bound penalty of docs/theory/generalization.md §2.

    ``j >= 1`` is the grid index of the prior variance (``j = b log(c/lambda)``).  Valid for ``N >= 8``
    (module docstring).
    """
    kl = check_scalar(kl, "kl", low=0.0)
    N = check_int(N, "N", minimum=8)
    delta = check_delta(delta)
    j = check_scalar(j, "j (grid index)", low=1.0)
    return (kl + math.log(math.pi ** 2 * N / (6.0 * delta)) + 2.0 * math.log(j)) / N


# --------------------------------------------------------------------------------------------- posterior
@dataclass
class GaussianPosterior:
    r"""A diagonal Gaussian :math:`\mathcal N(\mu, \mathrm{diag}\,\sigma)` over named model parameters.

    Attributes
    ----------
    names : tuple of str
        Parameter names of the model (``model.named_parameters()``) that are randomised.
    shapes : tuple of tuples
    mean, var : ndarray (d,)
        Flattened mean and **variances** (> 0), float64, in the order of ``names``.
    """

    names: tuple
    shapes: tuple
    mean: np.ndarray
    var: np.ndarray

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float64).ravel()
        if not np.isfinite(self.mean).all():
            raise InvalidInputError("posterior mean contains NaN/Inf; pass finite parameters.")
        self.var = np.broadcast_to(_check_variances(self.var, "posterior variance"), self.mean.shape).copy()
        if sum(int(np.prod(s)) for s in self.shapes) != self.mean.size:
            raise InvalidInputError("posterior shapes do not match the number of mean entries.")

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    @classmethod
    def around(cls, model: Any, var: Any, names: Sequence[str] | None = None) -> "GaussianPosterior":
        """The posterior centred at the model's current parameters, with variance(s) ``var`` (> 0)."""
        names, shapes, mean = flat_parameters(model, names)
        return cls(tuple(names), tuple(shapes), mean, var)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.mean + np.sqrt(self.var) * rng.standard_normal(self.dim)

    def __repr__(self) -> str:
        return (f"GaussianPosterior(d={self.dim}, params={list(self.names)}, "
                f"std in [{np.sqrt(self.var.min()):.3g}, {np.sqrt(self.var.max()):.3g}])")


def flat_parameters(model: Any, names: Sequence[str] | None = None) -> tuple[list[str], list[tuple], np.ndarray]:
    """(names, shapes, flattened float64 values) of the model's trainable parameters (or of ``names``)."""
    params = dict(model.named_parameters())
    if names is None:
        names = [n for n, p in params.items() if p.requires_grad]
    names = list(names)
    missing = [n for n in names if n not in params]
    if missing:
        raise InvalidInputError(f"parameters {missing} are not parameters of {type(model).__name__}; choose among "
                                f"{list(params)}.")
    if not names:
        raise InvalidInputError(f"{type(model).__name__} has no trainable parameter: PAC-Bayes over learned "
                                "weights does not apply; use sample_convergence_bound for a fixed optimizer.")
    shapes = [tuple(params[n].shape) for n in names]
    flat = np.concatenate([params[n].detach().cpu().double().numpy().ravel() for n in names])
    return names, shapes, flat


def _unflatten(vec, names, shapes, like):
    import torch

    out, i = {}, 0
    for n, s in zip(names, shapes):
        size = int(np.prod(s)) if s else 1
        chunk = vec[i:i + size]
        if not isinstance(chunk, torch.Tensor):
            chunk = torch.as_tensor(chunk, dtype=like.dtype, device=like.device)
        out[n] = chunk.reshape(s)
        i += size
    return out


def _forward_layer(model, params: dict, Y, layer: int):
    from torch.func import functional_call

    outs = functional_call(model, params, (Y,), {"return_all": True})
    return outs[layer]


def _layer_metric_values(model, Y, y_np, x, out, metric, problem, reference):
    vals = layer_metrics_from_outputs([out.detach().cpu().double().numpy()], y_np, metric=metric, x=x,
                                      problem=problem, reference=reference)[:, 0]
    return np.where(np.isfinite(vals), vals, np.finfo(np.float64).max)  # a diverged draw fails


def _prepare_data(model, data, metric, problem, reference):
    import torch

    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {METRICS}; got {metric!r}.")
    y, x = _data(data)
    y_np = np.asarray(to_numpy(y), dtype=np.float64)
    if y_np.ndim != 2 or y_np.shape[0] == 0:
        raise InvalidInputError(f"data must hold a batch of observations (N, m) with N >= 1; got shape "
                                f"{y_np.shape}.")
    Y = torch.as_tensor(y_np, dtype=model.dtype, device=model.device)
    if metric in ("distance", "objective_gap") and reference is None:
        from ..reference import solve

        reference = solve(problem, y_np)
    return Y, y_np, x, reference


def gibbs_failures(model: Any, posterior: GaussianPosterior, data: Any, eps: float, *, num_samples: int = 1,
                   metric: str = "nmse_db", layer: int = -1, problem: Any = None, reference: Any = None,
                   seed: int = 0, chunk_size: int = 1024) -> np.ndarray:
    r"""Failure indicators :math:`1[\phi_k(\theta_{h,i}; s_i) > \varepsilon]`, shape (H, N), with an
    **independent** posterior draw :math:`\theta_{h,i} \sim Q` for every instance i and pass h.

    Given the instances, the H N indicators are independent with mean (over all of them) the empirical
    Gibbs risk :math:`\hat r_S(Q)`, which is what the sampling step of the bound needs.  The per-instance
    parameters are batched with ``torch.func.vmap`` over ``functional_call``.
    """
    import torch
    from torch.func import functional_call, vmap

    H = check_int(num_samples, "num_samples", minimum=1)
    Y, y_np, x, reference = _prepare_data(model, data, metric, problem, reference)
    N = Y.shape[0]
    rng = np.random.default_rng(seed)
    like = next(model.parameters())
    std = np.sqrt(posterior.var)

    def one(params, yi):
        return functional_call(model, params, (yi.unsqueeze(0),), {"return_all": True})[layer][0]

    batched = vmap(one, in_dims=(0, 0), chunk_size=chunk_size)
    fails = np.empty((H, N), dtype=bool)
    check, model.check_inputs = getattr(model, "check_inputs", True), False
    try:
        with torch.no_grad():
            for h in range(H):
                theta = posterior.mean[None, :] + std[None, :] * rng.standard_normal((N, posterior.dim))
                theta_t = torch.as_tensor(theta, dtype=like.dtype, device=like.device)
                params, i = {}, 0
                for n, shp in zip(posterior.names, posterior.shapes):
                    size = int(np.prod(shp)) if shp else 1
                    params[n] = theta_t[:, i:i + size].reshape((N,) + tuple(shp))
                    i += size
                out = batched(params, Y)
                fails[h] = _layer_metric_values(model, Y, y_np, x, out, metric, problem, reference) > eps
    finally:
        model.check_inputs = check
    return fails


def mean_network_failures(model: Any, posterior: GaussianPosterior, data: Any, eps: float, *,
                          metric: str = "nmse_db", layer: int = -1, problem: Any = None,
                          reference: Any = None) -> np.ndarray:
    """Failure indicators (N,) of the deterministic network at the posterior mean."""
    import torch

    Y, y_np, x, reference = _prepare_data(model, data, metric, problem, reference)
    like = next(model.parameters())
    params = _unflatten(posterior.mean, posterior.names, posterior.shapes, like)
    check, model.check_inputs = getattr(model, "check_inputs", True), False
    try:
        with torch.no_grad():
            out = _forward_layer(model, params, Y, layer)
    finally:
        model.check_inputs = check
    return _layer_metric_values(model, Y, y_np, x, out, metric, problem, reference) > eps


# --------------------------------------------------------------------------------------------- the bound
@dataclass(frozen=True)
class PACBayesResult:
    r"""A PAC-Bayes guarantee on the Gibbs risk :math:`r(Q) = P(\phi_k > \varepsilon)` of one layer.

    Attributes
    ----------
    risk_upper : float
        :math:`R^\star`, holds with probability :math:`\ge 1 - \delta - \delta_2`.
    certified_fraction_solved : float
        :math:`1 - R^\star`.
    empirical_gibbs_risk : float
        :math:`\hat r_M`, the fraction of the M = NH (instance, posterior draw) pairs that fail.
    sample_bound : float
        :math:`\bar R = \mathrm{kl}^{-1}(\hat r_M | \log(2/\delta_2)/M)`.
    kl, penalty, prior_var, grid_index : float
        KL(Q || P_j), the penalty and the chosen grid point :math:`\lambda_j`, j.
    N, H, d : int
        Bound instances, posterior samples, randomised parameters.
    test_fraction_solved, test_fraction_solved_mean : float or None
        Measured on fresh test data: the Gibbs predictor (posterior samples) and the posterior mean network.
    """

    metric: str
    eps: float
    layer: int
    delta: float
    delta_sample: float
    N: int
    H: int
    d: int
    empirical_gibbs_risk: float
    sample_bound: float
    kl: float
    penalty: float
    prior_var: float
    grid_index: int
    risk_upper: float
    posterior: GaussianPosterior = field(repr=False, compare=False)
    test_fraction_solved: float | None = None
    test_fraction_solved_mean: float | None = None
    test_size: int | None = None
    seconds: float = 0.0

    @property
    def certified_fraction_solved(self) -> float:
        return 1.0 - self.risk_upper

    @property
    def pinsker_fraction_solved(self) -> float:
        """The looser Pinsker relaxation :math:`1 - \\bar R - \\sqrt{\\mathrm{pen}/2}` (plots of the paper)."""
        return 1.0 - self.sample_bound - math.sqrt(self.penalty / 2.0)

    @property
    def vacuous(self) -> bool:
        return self.risk_upper >= 1.0

    @property
    def bound(self) -> Bound:
        """The risk bound as a :class:`~unfoldtheory.bounds.Bound` (``vacuous`` when >= 1)."""
        return self.as_bound()

    def as_bound(self) -> Bound:
        """Deprecated alias of :attr:`bound` (kept for existing callers)."""
        conf = 1.0 - self.delta - self.delta_sample
        return Bound(value=self.risk_upper, side="upper", certified=True, method="pac_bayes_kl",
                     confidence=conf, vacuous=bool(self.vacuous),
                     vacuous_reason="the risk bound is >= 1, the largest possible risk" if self.vacuous else "",
                     quantity=f"Gibbs risk P({self.metric}_{self.layer} > {self.eps:g}) of the posterior",
                     solver="kl inverse (bit bisection, safe side)",
                     status=f"holds with probability >= {conf:g} over the {self.N} bound instances and the "
                            f"{self.H} posterior samples",
                     checks={"confidence": conf, "delta": self.delta, "delta_sample": self.delta_sample,
                             "N": self.N, "H": self.H, "d": self.d, "kl": self.kl, "penalty": self.penalty,
                             "prior_var": self.prior_var, "grid_index": self.grid_index,
                             "empirical_gibbs_risk": self.empirical_gibbs_risk, "sample_bound": self.sample_bound,
                             "statistical": True},
                     seconds=self.seconds)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("metric", "eps", "layer", "delta", "delta_sample", "N", "H", "d",
                                           "empirical_gibbs_risk", "sample_bound", "kl", "penalty", "prior_var",
                                           "grid_index", "risk_upper", "test_fraction_solved",
                                           "test_fraction_solved_mean", "test_size", "seconds")}
        d["certified_fraction_solved"] = self.certified_fraction_solved
        d["pinsker_fraction_solved"] = self.pinsker_fraction_solved
        d["vacuous"] = self.vacuous
        d["posterior_std_range"] = [float(np.sqrt(self.posterior.var.min())),
                                    float(np.sqrt(self.posterior.var.max()))]
        return d

    def __repr__(self) -> str:
        conf = 1.0 - self.delta - self.delta_sample
        test = ""
        if self.test_fraction_solved is not None:
            test = (f", measured solved {self.test_fraction_solved:.4f} (Gibbs) / "
                    f"{self.test_fraction_solved_mean:.4f} (mean net) on {self.test_size} fresh")
        return (f"PACBayesResult(P({self.metric}_{self.layer} > {self.eps:g}) <= {self.risk_upper:.4f}, "
                f"certified solved >= {self.certified_fraction_solved:.4f} at confidence {conf:g}{test}; "
                f"empirical Gibbs risk {self.empirical_gibbs_risk:.4f} (N={self.N}, H={self.H}), "
                f"KL {self.kl:.3g} (d={self.d}), penalty {self.penalty:.3g}, lambda={self.prior_var:.3g})")


def _best_grid(posterior: GaussianPosterior, prior_mean: np.ndarray, grid: PriorGrid, N: int, delta: float,
               sample_bound: float) -> tuple[int, float, float, float]:
    """The grid index minimising the final bound (every j is covered by the union bound)."""
    d = posterior.dim
    lam_opt = (float(np.sum((posterior.mean - prior_mean) ** 2)) + float(np.sum(posterior.var))) / d
    j0 = max(1.0, grid.index(lam_opt)) if lam_opt > 0 else 1.0
    cands = sorted({max(1, int(math.floor(j0)) + k) for k in range(-3, 5)})
    rows = []
    for j in cands:
        lam = float(grid.variance(j))
        kl = gaussian_kl(posterior.mean, posterior.var, prior_mean, lam)
        rows.append((j, lam, kl, pac_bayes_penalty(kl, N, delta, j)))
    vals = np.asarray(kl_inverse(np.full(len(rows), sample_bound), np.array([r[3] for r in rows])))
    return rows[int(np.argmin(vals))]


def _prior_vector(prior_mean: Any, posterior: GaussianPosterior) -> np.ndarray:
    if hasattr(prior_mean, "named_parameters"):
        params = dict(prior_mean.named_parameters())
        try:
            vec = np.concatenate([params[n].detach().cpu().double().numpy().ravel() for n in posterior.names])
        except KeyError:
            raise InvalidInputError("prior_mean (a model) lacks some posterior parameters "
                                    f"{list(posterior.names)}.") from None
    else:
        vec = np.asarray(to_numpy(prior_mean), dtype=np.float64).ravel()
    if vec.shape != posterior.mean.shape:
        raise InvalidInputError(f"prior_mean must have {posterior.dim} entries (the randomised parameters); got "
                                f"{vec.size}.")
    if not np.isfinite(vec).all():
        raise InvalidInputError("prior_mean contains NaN/Inf.")
    return vec


def pac_bayes_bound(model: Any, posterior: GaussianPosterior, prior_mean: Any, data: Any, eps: float, *,
                    metric: str = "nmse_db", layer: int = -1, delta: float = 0.025, delta_sample: float = 0.025,
                    num_samples: int = 4, grid: PriorGrid | None = None, problem: Any = None,
                    reference: Any = None, test_data: Any = None, seed: int = 0) -> PACBayesResult:
    r"""The two-step PAC-Bayes bound on the Gibbs risk of ``posterior`` at one layer (module docstring).

    Parameters
    ----------
    model : UnfoldedNetwork
        The architecture; the posterior's parameters replace the model's (``torch.func.functional_call``).
    posterior : GaussianPosterior
        May depend on ``data`` (the bound holds for all posteriors at once).
    prior_mean : model, or array (d,)
        :math:`\mu_0`; must **not** depend on ``data`` (e.g. the initialisation, or weights trained on other
        instances).
    data : SparseSample or ``(y, x)``
        The N >= 8 i.i.d. bound instances.
    eps : float
        Tolerance of the metric at ``layer``.
    metric, layer : str, int
        :math:`\phi_k`, see :mod:`._metrics`; ``layer`` indexes ``[x_1, ..., x_K]`` (``-1``: the output).
    delta, delta_sample : float in (0, 1)
        Confidence budgets of the PAC-Bayes step and of the posterior-sampling step (total
        :math:`1 - \delta - \delta_2`).
    num_samples : int
        H: posterior draws per bound instance (independent draws for every instance and pass, N H in all).
    grid : PriorGrid
        :math:`\lambda_j = c e^{-j/b}` (default c = 1, b = 10); the best j is chosen (union bound).
    test_data : optional
        Fresh instances on which the measured fraction solved is reported next to the certified one.

    Returns
    -------
    PACBayesResult
    """
    start = time.perf_counter()
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {METRICS}; got {metric!r}.")
    if not isinstance(posterior, GaussianPosterior):
        raise InvalidInputError(f"posterior must be a GaussianPosterior; got {type(posterior).__name__}.")
    eps = check_scalar(eps, "eps")
    delta, delta_sample = check_delta(delta), check_delta(delta_sample, "delta_sample")
    if delta + delta_sample >= 1:
        raise InvalidInputError(f"delta + delta_sample must be < 1; got {delta + delta_sample}.")
    H = check_int(num_samples, "num_samples", minimum=1)
    grid = PriorGrid() if grid is None else grid
    K = int(getattr(model, "num_layers", 0)) or None
    if K is not None and not -K <= layer < K:
        raise InvalidInputError(f"layer must index one of the {K} layers (-{K}..{K - 1}); got {layer}.")
    y, _ = _data(data)
    N = int(np.asarray(to_numpy(y)).shape[0])
    if N < 8:
        raise InvalidInputError(f"the PAC-Bayes bound needs N >= 8 bound instances (Maurer's theorem); got N = {N}.")
    mu0 = _prior_vector(prior_mean, posterior)
    fails = gibbs_failures(model, posterior, data, eps, num_samples=H, metric=metric, layer=layer,
                           problem=problem, reference=reference, seed=seed)
    r_hat = float(np.mean(fails))
    r_bar = float(kl_inverse(r_hat, math.log(2.0 / delta_sample) / fails.size))
    j, lam, kl, pen = _best_grid(posterior, mu0, grid, N, delta, r_bar)
    r_star = float(kl_inverse(r_bar, pen))
    test_g = test_m = test_n = None
    if test_data is not None:
        test_g = 1.0 - float(np.mean(gibbs_failures(model, posterior, test_data, eps, num_samples=1, metric=metric,
                                                    layer=layer, problem=problem, seed=seed + 1)))
        test_m = 1.0 - float(np.mean(mean_network_failures(model, posterior, test_data, eps, metric=metric,
                                                           layer=layer, problem=problem)))
        test_n = int(np.asarray(to_numpy(_data(test_data)[0])).shape[0])
    k = (layer % K) + 1 if K else layer
    return PACBayesResult(metric=metric, eps=eps, layer=k, delta=delta, delta_sample=delta_sample, N=N, H=H,
                          d=posterior.dim, empirical_gibbs_risk=r_hat, sample_bound=r_bar, kl=kl, penalty=pen,
                          prior_var=lam, grid_index=j, risk_upper=r_star, posterior=posterior,
                          test_fraction_solved=test_g, test_fraction_solved_mean=test_m, test_size=test_n,
                          seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------------------------- training
@dataclass
class PACBayesTraining:
    """What :func:`train_pac_bayes` returns: the exact bound and the surrogate history."""

    result: PACBayesResult
    history: list = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        return (f"PACBayesTraining({len(self.history)} steps, final surrogate {last.get('objective', float('nan')):.4g}, "
                f"{self.seconds:.1f} s)\n  {self.result!r}")

    def to_dict(self) -> dict:
        return {"result": self.result.to_dict(), "history": self.history, "seconds": self.seconds}


def _torch_metric(out, x, metric: str):
    import torch

    num = ((out - x) ** 2).sum(-1)
    den = (x ** 2).sum(-1)
    nmse = torch.where(den > 0, num / den.clamp_min(1e-300), torch.where(num > 0, num * 1e30, torch.zeros_like(num)))
    if metric == "nmse":
        return nmse
    return 10.0 * torch.log10(nmse.clamp_min(10.0 ** (-30)))


def train_pac_bayes(model: Any, data: Any, eps: float, *, prior_mean: Any = None, metric: str = "nmse_db",
                    layer: int = -1, init_std: float = 1e-2, learn_mean: bool = True, steps: int = 300,
                    lr: float = 1e-2, batch_size: int = 256, temperature: float = 1.0, delta: float = 0.025,
                    delta_sample: float = 0.025, num_samples: int = 4, grid: PriorGrid | None = None,
                    names: Sequence[str] | None = None, test_data: Any = None, seed: int = 0) -> PACBayesTraining:
    r"""Train the posterior (mean and log-variances) by minimising a PAC-Bayes surrogate, then certify it.

    Minimises, by Adam over :math:`(\mu, \log\sigma, \log\lambda)` with one reparametrised posterior draw per
    step, :math:`(\sqrt{\tilde r + \mathrm{pen}/2} + \sqrt{\mathrm{pen}/2})^2`, with :math:`\tilde r` the batch
    mean of :math:`\mathrm{sigmoid}((\phi_k - \varepsilon)/\tau)` and :math:`\mathrm{pen}` the penalty at the
    continuous :math:`\lambda` (:math:`j = \max(1, b\log(c/\lambda))`).  The model's parameters are left at
    the posterior mean; the exact bound of :func:`pac_bayes_bound` is evaluated on ``data``.

    Parameters
    ----------
    model : UnfoldedNetwork
        Its current parameters are the prior mean unless ``prior_mean`` is given: they must not depend on the
        bound instances (train them on other data first, e.g. with :func:`unfoldtheory.training.train`).
    data : SparseSample or ``(y, x)``
        The N bound instances (used for training the posterior *and* for the bound, as PAC-Bayes allows).
    eps : float
        Tolerance (dB for ``nmse_db``).
    metric : {"nmse_db", "nmse"}
        Metrics with a differentiable surrogate.
    init_std : float
        Initial posterior (and prior) standard deviation.
    learn_mean : bool
        Also move the mean (the KL charges :math:`\|\mu - \mu_0\|^2/\lambda`).
    steps, lr, batch_size, temperature
        Adam steps, learning rate, minibatch size and the sigmoid temperature :math:`\tau`.
    delta, delta_sample, num_samples, grid, test_data, seed
        As in :func:`pac_bayes_bound`.
    names : list of str, optional
        Parameters to randomise (default: all trainable ones).

    Returns
    -------
    PACBayesTraining
        ``.result`` (a :class:`PACBayesResult`, with the measured fraction solved on ``test_data`` when given)
        and the surrogate history.
    """
    import torch

    start = time.perf_counter()
    if metric not in TRAINABLE_METRICS:
        raise InvalidInputError(f"train_pac_bayes needs a metric with a differentiable surrogate, one of "
                                f"{TRAINABLE_METRICS}; got {metric!r}. Certify other metrics with pac_bayes_bound.")
    eps = check_scalar(eps, "eps")
    init_std = check_scalar(init_std, "init_std", low=0.0, low_inclusive=False)
    temperature = check_scalar(temperature, "temperature", low=0.0, low_inclusive=False)
    lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
    steps, batch_size = check_int(steps, "steps", minimum=0), check_int(batch_size, "batch_size", minimum=1)
    delta = check_delta(delta)
    grid = PriorGrid() if grid is None else grid
    y, x = _data(data)
    if x is None:
        raise InvalidInputError("data must carry the true signals x (a SparseSample or a pair (y, x)).")
    y_np, x_np = np.asarray(to_numpy(y), dtype=np.float64), np.asarray(to_numpy(x), dtype=np.float64)
    N = y_np.shape[0]
    if N < 8:
        raise InvalidInputError(f"the PAC-Bayes bound needs N >= 8 bound instances; got N = {N}.")
    names_, shapes, mu_init = flat_parameters(model, names)
    post0 = GaussianPosterior(tuple(names_), tuple(shapes), mu_init, init_std ** 2)
    mu0 = mu_init.copy() if prior_mean is None else _prior_vector(prior_mean, post0)
    d = mu_init.size

    like = next(model.parameters())
    dt, dev = like.dtype, like.device
    Y, X = torch.as_tensor(y_np, dtype=dt, device=dev), torch.as_tensor(x_np, dtype=dt, device=dev)
    mu = torch.tensor(mu_init, dtype=dt, device=dev, requires_grad=learn_mean)
    mu0_t = torch.as_tensor(mu0, dtype=dt, device=dev)
    log_var = torch.full((d,), 2 * math.log(init_std), dtype=dt, device=dev, requires_grad=True)
    log_lam = torch.tensor(2 * math.log(init_std), dtype=dt, device=dev, requires_grad=True)
    opt = torch.optim.Adam(([mu] if learn_mean else []) + [log_var, log_lam], lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    const = math.log(math.pi ** 2 * N / (6.0 * delta))
    history = []
    check, model.check_inputs = getattr(model, "check_inputs", True), False
    try:
        for step in range(steps):
            idx = torch.randint(0, N, (min(batch_size, N),), generator=gen).to(dev)
            xi = torch.randn(d, generator=gen, dtype=dt).to(dev)
            theta = mu + torch.exp(0.5 * log_var) * xi
            out = _forward_layer(model, _unflatten(theta, names_, shapes, like), Y[idx], layer)
            phi = _torch_metric(out, X[idx], metric)
            r_tilde = torch.sigmoid((phi - eps) / temperature).mean()
            lam = torch.exp(log_lam)
            rho = torch.exp(log_var) / lam
            kl = 0.5 * (((mu - mu0_t) ** 2).sum() / lam + (rho - 1.0 - torch.log(rho)).sum())
            j = torch.clamp(grid.b * (math.log(grid.c) - log_lam), min=1.0)
            pen = (kl + const + 2.0 * torch.log(j)) / N
            objective = (torch.sqrt(r_tilde + pen / 2) + torch.sqrt(pen / 2)) ** 2
            if not torch.isfinite(objective):
                raise InvalidInputError(f"the PAC-Bayes surrogate became {objective.item()} at step {step}; lower "
                                        "lr or init_std.")
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            if step % 25 == 0 or step == steps - 1:
                rec = {"step": step, "objective": objective.item(), "surrogate_risk": r_tilde.item(),
                       "kl": kl.item(), "penalty": pen.item(), "prior_var": lam.item()}
                history.append(rec)
                log.debug("pac-bayes step %d: objective %.4g, risk %.4g, kl %.4g", step, rec["objective"],
                          rec["surrogate_risk"], rec["kl"])
    finally:
        model.check_inputs = check
    mean = mu.detach().cpu().double().numpy()
    var = np.exp(log_var.detach().cpu().double().numpy())
    with torch.no_grad():
        params = dict(model.named_parameters())
        for n, v in _unflatten(torch.as_tensor(mean, dtype=dt, device=dev), names_, shapes, like).items():
            params[n].copy_(v)
    posterior = GaussianPosterior(tuple(names_), tuple(shapes), mean, var)
    result = pac_bayes_bound(model, posterior, mu0, (y_np, x_np), eps, metric=metric, layer=layer, delta=delta,
                             delta_sample=delta_sample, num_samples=num_samples, grid=grid, test_data=test_data,
                             seed=seed + 17)
    return PACBayesTraining(result=result, history=history, seconds=time.perf_counter() - start)
