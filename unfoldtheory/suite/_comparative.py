"""The comparative study of the four design paradigms (accuracy, complexity, robustness, interpretability)."""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch

from ..errors import NotRepresentableError
from . import _plot
from ._context import SPARSE_ZOO, paradigm_of

log = logging.getLogger("unfoldtheory.suite")


def _trainable(net) -> int:
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


def matmul_flops(net, x) -> int:
    """Floating-point operations of the matrix products of one forward pass on ``x`` (torch's FLOP counter;
    elementwise operations such as thresholds are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    return int(counter.get_total_flops())


def seconds_per_instance(net, Y: torch.Tensor, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of a batched forward pass, divided by the batch size."""
    best = math.inf
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(Y)
            best = min(best, time.perf_counter() - t0)
    return best / Y.shape[0]


def _distance_from_init(ctx, name: str, net) -> float | None:
    """Relative distance ||theta - theta_0|| / ||theta_0|| of the learned parameters from the classical
    initialisation (every zoo model starts as ISTA or its own classical algorithm)."""
    if name not in SPARSE_ZOO and name != "UnfoldedRPCA":
        return None
    config = ctx.model_config(name)
    from .. import models

    cls = getattr(models, config["class"])
    torch.manual_seed(ctx.profile.seed)
    if name == "UnfoldedRPCA":
        init = cls(tuple(config["kwargs"]["shape"]), config["layers"], device="cpu", dtype=torch.float64)
    else:
        init = cls(ctx.gen.A, config["layers"], **ctx.resolve_kwargs(config["kwargs"]), device="cpu",
                   dtype=torch.float64)
    a = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    b = torch.cat([p.detach().reshape(-1) for p in init.parameters()])
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _sparse_row(ctx, name: str) -> dict:
    from ..contraction import contraction_certificate
    from ..metrics import per_layer_nmse_db
    from ._claims_bounds import lipschitz_bounds

    net = ctx.classical(name) if name in ("ISTA", "FISTA") else ctx.model(name)
    test = ctx.test
    nmse = per_layer_nmse_db(net, test.y, test.x)
    net32 = copy.deepcopy(net).float()
    Y = torch.tensor(test.y, dtype=torch.float32)
    row = {"model": name, "paradigm": paradigm_of(name), "trainable_parameters": _trainable(net)
           if name not in ("ISTA", "FISTA") else 0,
           "matmul_flops": matmul_flops(net32, Y[:1]), "seconds_per_instance": seconds_per_instance(net32, Y),
           "nmse_db_per_layer": nmse.tolist(), "nmse_db": float(nmse[-1]),
           "distance_from_init": 0.0 if name in ("ISTA", "FISTA") else _distance_from_init(ctx, name, net)}
    try:
        b = lipschitz_bounds(ctx, name) if name != "FISTA" else None
    except NotRepresentableError as exc:
        b, row["form"], row["form_reason"] = None, "no", str(exc).split("; ")[0]  # the reason in full, not cut
    if b is not None:
        row.update(form="yes", lipschitz_upper=b["lipsdp"].value, lipschitz_lower=b["best_lower"].value,
                   attack_ratio=b["attack"].value)
    try:
        c = contraction_certificate(net)
        row["contraction_factor"] = c.value
    except NotRepresentableError:
        row["contraction_factor"] = None
    return row


def _rpca_rows(ctx) -> list[dict]:
    from .. import models

    net = ctx.model("UnfoldedRPCA")
    p = ctx.profile
    init = models.UnfoldedRPCA(p.rpca_shape, p.rpca_layers, device="cpu", dtype=torch.float64)
    data = ctx.rpca_gen.sample(50, seed=p.seed + 5)
    M = torch.tensor(data.y, dtype=torch.float64)
    Lt, St = (np.asarray(a) for a in data.x)
    rows = []
    for name, model in (("RPCA-classical", init), ("UnfoldedRPCA", net)):
        with torch.no_grad():
            outs = model(M, return_all=True)
        per_layer = [float(10 * np.log10((np.sum((L.numpy() - Lt) ** 2) + np.sum((S.numpy() - St) ** 2))
                                         / (np.sum(Lt ** 2) + np.sum(St ** 2)))) for L, S in outs]
        m32 = copy.deepcopy(model).float()
        rows.append({"model": name, "paradigm": paradigm_of(name),
                     "trainable_parameters": 0 if name == "RPCA-classical" else _trainable(model),
                     "seconds_per_instance": seconds_per_instance(m32, M.float()),
                     "nmse_db_per_layer": per_layer, "nmse_db": per_layer[-1],
                     "distance_from_init": 0.0 if name == "RPCA-classical" else _distance_from_init(ctx, name, net),
                     "form": "no", "form_reason": "singular value thresholding is not elementwise"})
    return rows


def comparative_study(ctx) -> dict:
    """Rows for every model of the sparse-recovery zoo (and the classical baselines) and for RPCA, with the
    per-layer NMSE figures."""
    names = ["ISTA", "FISTA"] + list(SPARSE_ZOO)
    rows = []
    for name in names:
        try:
            rows.append(_sparse_row(ctx, name))
        except Exception as exc:  # noqa: BLE001 - one model's failure is reported, the study goes on
            log.exception("comparative study: %s failed", name)
            rows.append({"model": name, "paradigm": paradigm_of(name), "error": f"{type(exc).__name__}: {exc}"})
    try:
        rpca = _rpca_rows(ctx)
    except Exception as exc:  # noqa: BLE001
        log.exception("comparative study: RPCA failed")
        rpca = [{"model": "UnfoldedRPCA", "paradigm": "1", "error": f"{type(exc).__name__}: {exc}"}]
    figures = {}
    plt = _plot.pyplot()
    if plt is not None:
        for key, group, title in (("sparse", rows, "Sparse recovery: per-layer NMSE on the test set"),
                                  ("rpca", rpca, "RPCA: per-layer NMSE of (L, S)")):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            curves = [r for r in group if "nmse_db_per_layer" in r]
            for r, style in zip(curves, _plot.styles(len(curves))):  # every curve its own colour/line/marker
                ax.plot(range(1, len(r["nmse_db_per_layer"]) + 1), r["nmse_db_per_layer"], **style,
                        label=f"{r['model']} (paradigm {r['paradigm']})")
            ax.set(xlabel="layer k", ylabel="NMSE [dB]", title=title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
            figures[key] = _plot.save(ctx, fig, f"zoo_nmse_{key}.png")
    errors = [r for r in rows + rpca if "error" in r]
    figure_data = {key: ctx.figure_data.pop(path, None) for key, path in figures.items() if path}
    return {"sparse": rows, "rpca": rpca, "figures": figures, "figure_data": figure_data, "errors": len(errors)}
