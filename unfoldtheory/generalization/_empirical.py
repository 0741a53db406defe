r"""The empirical counterpart of the bounds: measured generalization gaps against the training-set size, and
the figure of bounds versus measured gaps.

:func:`generalization_gap` trains a fresh model on a *fixed* training set of each size m (sampling minibatches
with replacement from it, :class:`FiniteSample`), then measures, on the training set and on fresh test
instances, the clipped loss of :func:`uniform_bound` and the 0-1 risk :math:`1[\phi_K > \varepsilon]`; the
gap is test minus train.  Optionally it evaluates the uniform bound and a PAC-Bayes bound for each m.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .._validation import check_int, check_scalar
from ..errors import InvalidInputError

log = logging.getLogger(__name__)


class FiniteSample:
    """A fixed training set that behaves like a data generator: ``sample(batch, seed)`` draws rows of it with
    replacement, so :func:`unfoldtheory.training.train` trains on these m instances only."""

    def __init__(self, y: np.ndarray, x: np.ndarray):
        self.y, self.x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
        if self.y.shape[0] != self.x.shape[0] or self.y.shape[0] == 0:
            raise InvalidInputError("y and x must hold the same positive number of instances.")

    def __len__(self) -> int:
        return self.y.shape[0]

    def sample(self, batch: int, seed: Any = None):
        from ..problems.sparse import SparseSample

        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        idx = rng.integers(0, len(self), size=batch)
        return SparseSample(y=self.y[idx], x=self.x[idx], noise=np.zeros_like(self.y[idx]))


@dataclass
class GapPoint:
    """Measurements for one training-set size."""

    samples: int
    train_loss: float
    test_loss: float
    train_risk: float
    test_risk: float
    uniform_gap_bound: float | None = None
    uniform_vacuous: bool | None = None
    pac_bayes_risk_upper: float | None = None
    pac_bayes_gibbs_train_risk: float | None = None

    @property
    def loss_gap(self) -> float:
        return self.test_loss - self.train_loss

    @property
    def risk_gap(self) -> float:
        return self.test_risk - self.train_risk

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.update(loss_gap=self.loss_gap, risk_gap=self.risk_gap)
        return d


def generalization_gap(factory: Callable[[], Any], generator: Any, sizes: Sequence[int], eps: float, *,
                       y_norm: float, loss_scale: float = 1.0, test_size: int = 4000, train_kwargs: dict | None = None,
                       uniform: bool = True, pac_bayes: bool = False, pac_bayes_kwargs: dict | None = None,
                       delta: float = 0.05, seed: int = 0) -> list[GapPoint]:
    r"""Measured train-versus-test gap for each training-set size (and the bounds, optionally).

    Parameters
    ----------
    factory : callable
        Returns a fresh (untrained) model; the same initialisation for every size (it is the PAC-Bayes prior
        mean, so it must not depend on the data).
    generator : data generator (``sample(batch, seed)``), e.g. ``SparseRecovery``
    sizes : ints
        Training-set sizes m.
    eps : float
        Tolerance of the 0-1 risk (NMSE in dB at the last layer).
    y_norm, loss_scale : float
        The clipped loss of :func:`uniform_bound`.
    test_size : int
        Fresh test instances (one set, shared by all sizes).
    train_kwargs : dict
        Passed to :func:`unfoldtheory.training.train` (default: 3 epochs of 100 steps, lr 1e-2).
    uniform, pac_bayes : bool
        Also evaluate :func:`uniform_bound` (on the clipped loss) and :func:`train_pac_bayes` (on the 0-1 risk,
        prior at the factory's initialisation, bound instances = the training set; needs m >= 8).

    Returns
    -------
    list of GapPoint
    """
    from ..training import train
    from ._metrics import layer_metrics
    from ._pacbayes import train_pac_bayes
    from ._uniform import clipped_loss, uniform_bound

    eps = check_scalar(eps, "eps")
    test_size = check_int(test_size, "test_size", minimum=1)
    sizes = [check_int(s, "sizes", minimum=1) for s in sizes]
    kw = {"epochs": 3, "steps_per_epoch": 100, "batch_size": 64, "lr": 1e-2, "progress": False, "val_size": 64}
    kw.update(train_kwargs or {})
    test = generator.sample(test_size, seed=seed + 7919)
    points = []
    for i, m in enumerate(sizes):
        tr = generator.sample(m, seed=seed + 104729 * (i + 1))
        model = factory()
        init = copy.deepcopy(model)
        train(model, FiniteSample(tr.y, tr.x), seed=seed + i, **kw)
        lt = clipped_loss(model, tr, y_norm=y_norm, loss_scale=loss_scale)
        ls = clipped_loss(model, test, y_norm=y_norm, loss_scale=loss_scale)
        rt = layer_metrics(model, tr, metric="nmse_db")[:, -1] > eps
        rs = layer_metrics(model, test, metric="nmse_db")[:, -1] > eps
        p = GapPoint(samples=m, train_loss=float(lt.mean()), test_loss=float(ls.mean()), train_risk=float(rt.mean()),
                     test_risk=float(rs.mean()))
        if uniform:
            ub = uniform_bound(model, m, y_norm=y_norm, loss_scale=loss_scale, empirical_risk=p.train_loss,
                               delta=delta)
            p.uniform_gap_bound, p.uniform_vacuous = ub.gap_bound, ub.vacuous
        if pac_bayes and m >= 8:
            pk = {"steps": 200, "num_samples": 8}
            pk.update(pac_bayes_kwargs or {})
            res = train_pac_bayes(model, tr, eps, prior_mean=init, delta=delta / 2, delta_sample=delta / 2,
                                  seed=seed + i, **pk).result
            p.pac_bayes_risk_upper = res.risk_upper
            p.pac_bayes_gibbs_train_risk = res.empirical_gibbs_risk
        log.info("m=%d: loss gap %.4g, risk gap %.4g", m, p.loss_gap, p.risk_gap)
        points.append(p)
    return points


def plot_generalization(points: Sequence[GapPoint], ax: Any = None, title: str | None = None):
    """Bounds versus measured gaps against the number of training samples (matplotlib, imported here).

    Plots the measured gaps (clipped loss and 0-1 risk), the uniform bound's gap term
    :math:`2\\mathfrak R_m + \\sqrt{\\log(1/\\delta)/2m}` and the PAC-Bayes gap :math:`R^\\star - \\hat r`, on
    log axes (absolute values of the measured gaps, which can be negative).  Returns the axes.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.4))
    if not points:
        raise InvalidInputError("points is empty: run generalization_gap first.")
    m = np.array([p.samples for p in points], dtype=float)
    tiny = 1e-4
    # a log axis cannot show a negative gap (test loss below the training loss): such points are not drawn
    # as positive; they are marked at the bottom of the axis with their own legend entry
    for key, style, label in (("loss_gap", "o-", "measured gap, clipped loss"),
                              ("risk_gap", "s-", "measured gap, 0-1 risk")):
        gaps = np.array([getattr(p, key) for p in points], dtype=float)
        pos = gaps > 0
        line, = ax.plot(m, np.where(pos, np.maximum(gaps, tiny), np.nan), style, label=label)
        if not np.all(pos):
            ax.plot(m[~pos], np.full(int(np.sum(~pos)), tiny), linestyle="none", marker=style[0], mfc="none",
                    color=line.get_color(), label=f"{label} <= 0 (test below train; drawn at the axis floor)")
    ub = [p.uniform_gap_bound for p in points]
    if all(v is not None for v in ub):
        ax.plot(m, ub, "^--", label="uniform (covering) bound on the gap")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="loss range (vacuous above)")
    pb = [(p.pac_bayes_risk_upper, p.pac_bayes_gibbs_train_risk) for p in points]
    if all(a is not None for a, _ in pb):
        ax.plot(m, [a - b for a, b in pb], "v--", label="PAC-Bayes bound - train Gibbs risk")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of training samples m")
    ax.set_ylabel("generalization gap (test - train)")
    ax.set_title(title or "bounds versus measured generalization gaps")
    ax.legend(fontsize=7)
    return ax
