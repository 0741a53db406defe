r"""Training unfolded networks: losses and schemes, on CPU or GPU, seeded, with a history.

Losses (``loss=``)
    ``"nmse"``        :math:`\sum\|x_K - x^\star\|^2 / \sum\|x^\star\|^2` over the batch (final layer);
    ``"mse"``         :math:`\tfrac1B\sum\|x_K - x^\star\|^2`;
    ``"per_layer"``   deep supervision :math:`\sum_k w_k\,\mathrm{NMSE}(x_k, x^\star)` (uniform weights by default);
    ``"unsupervised"`` the problem's objective at the output, :math:`\tfrac1B\sum F(x_K)` (no ground truth used;
    needs ``problem=Lasso``; Ablin et al. 2019, Nagahisa et al. 2025).

Schemes (``scheme=``)
    ``"end_to_end"``  all parameters, one loss;
    ``"layerwise"``   greedy stages t = 1..K: train layer t on the loss at :math:`x_t` (earlier layers frozen),
    then fine-tune layers 1..t at ``lr * finetune_ratio`` (LISTA-CP / ALISTA code, Chen et al. 2018);
    ``"descent"``     descent-constrained training (Hadou, NaderiAlizadeh, Ribeiro, IEEE TSP 2024): constraints
    :math:`\mathbb{E}[F(x_l)] - (1-\epsilon)\mathbb{E}[F(x_{l-1})] \le 0` per layer, solved primal-dual (dual ascent
    on the multipliers :math:`\mu_l \ge 0`);
    ``"adversarial"`` :math:`\min_\theta \mathbb{E}\max_{\|\delta\|\le\epsilon} \ell(F_\theta(y+\delta), x^\star)` with a
    PGD/BIM inner attack in the l2 or l-infinity ball (Madry et al. 2018; Sofer et al. 2025 for unfolded
    optimizers).

Data are drawn on the fly from a generator (``data.sample(batch, seed=rng)`` returning ``.y`` and ``.x``, such
as :class:`unfoldtheory.problems.SparseRecovery`); the validation set is drawn once from a fixed seed.  If the
loss becomes NaN/Inf the last good state is restored and :class:`TrainingDivergedError` is raised with the
history so far.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ._device import resolve_device, torch_threads
from ._progress import progress as make_progress
from ._validation import check_int, check_scalar
from .errors import InvalidInputError, UnfoldTheoryError
from .models.base import UnfoldedNetwork

log = logging.getLogger(__name__)

LOSSES = ("nmse", "mse", "per_layer", "unsupervised")
SCHEMES = ("end_to_end", "layerwise", "descent", "adversarial")


class TrainingDivergedError(UnfoldTheoryError, RuntimeError):
    """The loss became NaN/Inf; the model holds the last good state and ``history`` the records so far."""

    def __init__(self, message: str, history: "TrainingHistory"):
        super().__init__(message)
        self.history = history


@dataclass
class TrainingHistory:
    """Per-epoch records: ``stage``, ``epoch``, ``loss`` (mean training loss), ``val_nmse_db`` (last layer,
    against the ground truth), ``seconds``, and scheme-specific entries (``max_violation`` and ``multipliers``
    for descent training, ``attacked_loss`` for adversarial training)."""

    records: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def final_val_nmse_db(self) -> float:
        return self.records[-1]["val_nmse_db"] if self.records else float("nan")

    def column(self, key: str) -> np.ndarray:
        return np.array([r.get(key, np.nan) for r in self.records], dtype=float)

    def __repr__(self) -> str:
        if not self.records:
            return "TrainingHistory(empty)"
        return (f"TrainingHistory({len(self.records)} epochs, scheme={self.config.get('scheme')}, "
                f"loss={self.config.get('loss')}, final val NMSE {self.final_val_nmse_db:.2f} dB, "
                f"{sum(r['seconds'] for r in self.records):.1f} s)")

    def to_dict(self) -> dict:
        return {"config": dict(self.config), "records": [dict(r) for r in self.records]}

    def plot(self, ax=None):
        """Validation NMSE (dB) per epoch (matplotlib)."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3.5))[1]
        ax.plot(self.column("val_nmse_db"), "o-")
        ax.set(xlabel="epoch", ylabel="validation NMSE [dB]", title=self.config.get("model", ""))
        ax.grid(alpha=0.3)
        return ax


# ------------------------------------------------------------------------------------------------ losses
def _sq(a: torch.Tensor) -> torch.Tensor:
    return (a * a).reshape(a.shape[0], -1).sum(dim=1)


def _pairs(out, target):
    if isinstance(out, tuple):
        return list(zip(out, target))
    return [(out, target)]


def _nmse(out, target) -> torch.Tensor:
    return sum(_sq(o - t).sum() / _sq(t).sum().clamp_min(1e-30) for o, t in _pairs(out, target))


def _mse(out, target) -> torch.Tensor:
    return sum(_sq(o - t).mean() for o, t in _pairs(out, target))


class _Objective:
    """The LASSO objective in torch, for unsupervised and descent training."""

    def __init__(self, problem: Any, model: UnfoldedNetwork):
        from .problems import Lasso

        if not isinstance(problem, Lasso):
            raise InvalidInputError("problem must be a unfoldtheory.problems.Lasso for the unsupervised loss and "
                                    f"descent training; got {type(problem).__name__}.")
        if getattr(model, "m", None) is not None and problem.A.shape != (model.m, model.n):
            raise InvalidInputError(f"problem.A has shape {problem.A.shape} but the model maps R^{model.m} -> "
                                    f"R^{model.n}.")
        self.A = torch.tensor(np.array(problem.A), dtype=model.dtype, device=model.device)
        self.lam = problem.lam

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-instance objective values, shape (batch,)."""
        return 0.5 * _sq(x @ self.A.T - y) + self.lam * x.abs().sum(dim=1)


def _to_tensor(value, model):
    if isinstance(value, tuple):
        return tuple(_to_tensor(v, model) for v in value)
    return torch.as_tensor(np.asarray(value), dtype=model.dtype, device=model.device)


# ------------------------------------------------------------------------------------------------ attack
def pgd_attack(model: torch.nn.Module, y: torch.Tensor, loss_fn, eps: float, norm: str = "l2", steps: int = 5,
               step_size: float | None = None) -> torch.Tensor:
    r"""Projected gradient ascent on the input (PGD; BIM for ``norm="linf"``): returns :math:`\delta` with
    :math:`\|\delta\| \le \epsilon` per instance that approximately maximises ``loss_fn(model(y + delta))``.

    Starts from zero, takes ``steps`` normalised-gradient (l2) or sign-gradient (l-infinity) steps of size
    ``step_size`` (default :math:`2.5\epsilon/\text{steps}`) and projects back onto the ball, with the step
    and projection helpers shared with :func:`unfoldtheory.robustness.attack`
    (:func:`~unfoldtheory.robustness.ascent_step`, :func:`~unfoldtheory.robustness.project_ball`).  The
    model's parameters are not updated and their gradients are left untouched.
    """
    from .robustness import ascent_step, project_ball

    if norm not in ("l2", "linf"):
        raise InvalidInputError(f"norm must be 'l2' or 'linf'; got {norm!r}.")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    delta = torch.zeros_like(y)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = loss_fn(model(y + delta))
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            # the same step and projection as unfoldtheory.robustness.attack (tiny = 1e-12 as before)
            delta = project_ball(ascent_step(delta, grad, step_size, norm, tiny=1e-12), eps, norm, tiny=1e-12)
    return delta.detach()


# ------------------------------------------------------------------------------------------------ training
def _nonnegative(model) -> list[torch.nn.Parameter]:
    out = []
    for name in getattr(model, "nonnegative", ("theta",)):
        try:
            out.append(model.get_parameter(name))
        except AttributeError:
            continue
    return out


class _FinalOutput(torch.nn.Module):
    """A plain module (``forward(y) -> x``) seen by the training loop as one layer: its final output.

    Training needs only that output for the end-to-end and adversarial schemes with the nmse, mse and
    unsupervised losses; the module's own ``nonnegative`` declaration (parameter names) is honoured."""

    num_layers = 1
    per_layer: tuple = ()

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.check_inputs = False
        self.nonnegative = tuple(f"module.{n}" for n in getattr(module, "nonnegative", ()))
        self.m, self.n = getattr(module, "m", None), getattr(module, "n", None)

    def _anchor(self) -> torch.Tensor:
        t = next((p for p in self.module.parameters() if p.is_floating_point()), None)
        if t is None:
            raise InvalidInputError(f"{type(self.module).__name__} has no floating-point parameters to train.")
        return t

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor().dtype

    @property
    def device(self) -> torch.device:
        return self._anchor().device

    def forward(self, y: torch.Tensor, return_all: bool = False):
        out = self.module(y)
        return [out] if return_all else out


def _layer_mask_hooks(model: UnfoldedNetwork, trainable: Sequence[int]) -> list:
    """Zero the gradient of per-layer parameter slices outside ``trainable`` (shared parameters train)."""
    handles = []
    idx = torch.tensor(sorted(trainable), device=model.device)
    for name in model.per_layer:
        p = getattr(model, name)
        if p.shape[0] != model.num_layers:
            continue
        mask = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        mask[idx] = 1.0
        mask = mask.reshape((-1,) + (1,) * (p.ndim - 1))
        handles.append(p.register_hook(lambda g, mask=mask: g * mask))
    return handles


def train(model: torch.nn.Module, data: Any, *, loss: str = "nmse", scheme: str = "end_to_end",
          problem: Any = None, epochs: int = 10, steps_per_epoch: int = 100, batch_size: int = 128,
          lr: float = 1e-3, val_size: int = 500, seed: int = 0, device: Any = None, progress: bool = True,
          layer_weights: Sequence[float] | None = None, finetune_ratio: float = 0.2,
          descent_epsilon: float = 0.05, dual_lr: float = 1.0, attack_eps: float = 0.1, attack_norm: str = "l2",
          attack_steps: int = 5, num_threads: int | None = None) -> TrainingHistory:
    """Train ``model`` in place and return its :class:`TrainingHistory`.

    Parameters
    ----------
    model : torch.nn.Module
        A zoo model (any loss and scheme) or a plain module mapping y (batch, m) to x_K (batch, n): the latter
        is trained through its final output (losses ``nmse``, ``mse``, ``unsupervised``; schemes
        ``end_to_end``, ``adversarial``), with the thresholds it names in a ``nonnegative`` attribute kept >= 0.
    data : generator with ``sample(batch, seed=rng) -> (.y, .x)`` (e.g. ``SparseRecovery``)
    loss : {"nmse", "mse", "per_layer", "unsupervised"}
    scheme : {"end_to_end", "layerwise", "descent", "adversarial"}
    problem : Lasso, optional
        Needed by the unsupervised loss and by descent training.
    epochs, steps_per_epoch, batch_size, lr
        ``epochs`` x ``steps_per_epoch`` Adam steps (for ``layerwise``: per stage, half training the new layer
        and half fine-tuning).
    val_size : int
        Size of the fixed validation set (drawn with seed ``seed + 1_000_003``).
    seed : int
        Seeds torch and the data stream; CPU training is deterministic.
    device : torch device, optional
        Moves the model there; defaults to the model's device.
    layer_weights : K floats, optional
        Deep-supervision weights of ``loss="per_layer"`` (uniform by default).
    finetune_ratio : float
        Learning-rate ratio of the fine-tuning half of each layer-wise stage.
    descent_epsilon, dual_lr
        Required relative decrease per layer and dual step of descent training.
    attack_eps, attack_norm, attack_steps
        Ball radius (per instance), ``"l2"`` or ``"linf"``, and PGD steps of adversarial training.
    num_threads : int, optional
        Torch threads while training (restored afterwards); ``None`` keeps torch's setting.  For networks of
        the sizes in the README (n of a few hundred) on CPU, ``num_threads=1`` is as fast as torch's default on
        a quiet machine and up to tens of times faster on a loaded one (``verification/benchmarks/
        bench_threads.py``); the library does not change the global setting on its own.
    """
    if num_threads is not None:  # pin torch's threads for this call only, restored afterwards
        args = {k: v for k, v in locals().items() if k != "num_threads"}
        with torch_threads(num_threads):
            return train(**args)
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module mapping y (batch, m) to x (batch, n); got "
                                f"{type(model).__name__}.")
    if not isinstance(model, (UnfoldedNetwork, _FinalOutput)):
        # a plain module exposes its final output only: train that (per-layer schemes need the layers)
        if loss == "per_layer" or scheme in ("layerwise", "descent"):
            raise InvalidInputError(
                f"{type(model).__name__} is a plain module whose forward returns only x_K; loss='per_layer' and "
                "scheme='layerwise'/'descent' need every layer's output x_1..x_K. Use loss='nmse', 'mse' or "
                "'unsupervised' with scheme='end_to_end' or 'adversarial', or subclass "
                "ut.models.UnfoldedNetwork (forward(y, return_all=True) for free).")
        if device is not None:
            model.to(resolve_device(device))
            device = None
        args = {k: v for k, v in locals().items() if k not in ("model", "num_threads")}
        history = train(_FinalOutput(model), **{k: v for k, v in args.items() if k != "args"})
        history.config["model"] = type(model).__name__
        return history
    if loss not in LOSSES:
        raise InvalidInputError(f"loss must be one of {LOSSES}; got {loss!r}.")
    if scheme not in SCHEMES:
        raise InvalidInputError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")
    if not callable(getattr(data, "sample", None)):
        raise InvalidInputError("data must have a sample(batch, seed=...) method returning .y and .x "
                                f"(e.g. unfoldtheory.problems.SparseRecovery); got {type(data).__name__}.")
    epochs, steps = check_int(epochs, "epochs", minimum=1), check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
    batch_size, val_size = check_int(batch_size, "batch_size", minimum=1), check_int(val_size, "val_size", minimum=1)
    lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
    K = model.num_layers
    if layer_weights is not None:
        layer_weights = [check_scalar(w, "layer_weights", low=0.0) for w in layer_weights]
        if len(layer_weights) != K:
            raise InvalidInputError(f"layer_weights needs {K} entries (one per layer); got {len(layer_weights)}.")
    objective = _Objective(problem, model) if loss == "unsupervised" or scheme == "descent" else None
    if device is not None:
        model.to(resolve_device(device))

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    val = data.sample(val_size, seed=seed + 1_000_003)
    y_val, x_val = _to_tensor(val.y, model), _to_tensor(val.x, model)
    history = TrainingHistory(config={"model": type(model).__name__, "loss": loss, "scheme": scheme,
                                      "epochs": epochs, "steps_per_epoch": steps, "batch_size": batch_size,
                                      "lr": lr, "seed": seed, "device": str(model.device)})
    weights = layer_weights or [1.0 / K] * K

    def batch_loss(outs, y, x, upto: int):
        """The training loss from the layer outputs ``outs`` (of the first ``upto`` layers)."""
        if loss == "per_layer":
            return sum(w * _nmse(o, x) for w, o in zip(weights, outs[:upto]))
        if loss == "unsupervised":
            return objective(outs[upto - 1], y).mean()
        return _nmse(outs[upto - 1], x) if loss == "nmse" else _mse(outs[upto - 1], x)

    def val_nmse_db(upto: int = K) -> float:
        with torch.no_grad():
            out = model(y_val, return_all=True)[upto - 1]
            return float(10 * torch.log10(_nmse(out, x_val)))

    check_inputs, model.check_inputs = model.check_inputs, False
    good = copy.deepcopy(model.state_dict())
    multipliers = torch.zeros(K, dtype=model.dtype, device=model.device)
    stages = list(range(1, K + 1)) if scheme == "layerwise" else [K]
    total = len(stages) * epochs * steps  # layerwise: each stage's two phases share its epochs
    bar = make_progress(total, f"{type(model).__name__} [{scheme}]", enabled=progress)
    try:
        for stage in stages:
            if scheme == "layerwise":  # train the new layer, then fine-tune layers 1..stage
                phases = [(stage, [stage - 1], lr, epochs - epochs // 2),
                          (stage, list(range(stage)), lr * finetune_ratio, epochs // 2)]
            else:
                phases = [(K, list(range(K)), lr, epochs)]
            for upto, trainable, phase_lr, phase_epochs in phases:
                hooks = _layer_mask_hooks(model, trainable) if scheme == "layerwise" else []
                opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=phase_lr)
                try:
                    for _ in range(phase_epochs):
                        good = _run_epoch(model, data, rng, opt, batch_loss, objective, multipliers, history, bar,
                                          stage, upto, steps, batch_size, scheme, descent_epsilon, dual_lr,
                                          attack_eps, attack_norm, attack_steps, good)
                        history.records[-1]["val_nmse_db"] = val_nmse_db(upto)
                        rec = history.records[-1]
                        bar.set_postfix(loss=f"{rec['loss']:.3g}", val_db=f"{rec['val_nmse_db']:.2f}")
                        log.info("stage %d epoch %d: loss %.4g, val NMSE %.2f dB", stage, rec["epoch"],
                                 rec["loss"], rec["val_nmse_db"])
                finally:
                    for h in hooks:
                        h.remove()
    finally:
        bar.close()
        model.check_inputs = check_inputs
    return history


def _run_epoch(model, data, rng, opt, batch_loss, objective, multipliers, history, bar, stage, upto, steps,
               batch_size, scheme, descent_epsilon, dual_lr, attack_eps, attack_norm, attack_steps, good):
    """One epoch of ``steps`` Adam steps; appends its record to ``history`` and returns the new good state."""
    t0, losses, extra = time.perf_counter(), [], {}
    K = model.num_layers
    for _ in range(steps):
        s = data.sample(batch_size, seed=rng)
        y, x = _to_tensor(s.y, model), _to_tensor(s.x, model)
        if scheme == "adversarial":
            y = y + pgd_attack(model, y, lambda out, x=x: _nmse(out, x), attack_eps, attack_norm, attack_steps)
        outs = model(y, return_all=True)
        value = batch_loss(outs, y, x, upto)
        if scheme == "descent":
            f = [objective(torch.zeros_like(outs[0]), y).mean()] + [objective(o, y).mean() for o in outs]
            cons = torch.stack([f[k + 1] - (1 - descent_epsilon) * f[k] for k in range(K)])
            value = value + (multipliers * cons).sum()
        if not torch.isfinite(value):
            model.load_state_dict(good)
            raise TrainingDivergedError(
                f"the training loss became {value.item()} at stage {stage}, epoch {len(history.records) + 1}; "
                "the model was restored to its last good state (end of the previous epoch). Lower the learning "
                "rate or check the data.", history)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        with torch.no_grad():
            for p in _nonnegative(model):
                p.clamp_(min=0)
            if scheme == "descent":  # dual ascent on the multipliers, after the primal step
                multipliers.add_(dual_lr * cons.detach()).clamp_(min=0)
                extra = {"max_violation": cons.max().item(), "multipliers": multipliers.cpu().tolist()}
        losses.append(value.item())
        bar.update(1)
    history.records.append({"stage": stage, "epoch": len(history.records) + 1, "loss": float(np.mean(losses)),
                            "val_nmse_db": float("nan"), "seconds": time.perf_counter() - t0, **extra})
    return copy.deepcopy(model.state_dict())



