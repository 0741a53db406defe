"""Claims on Lipschitz constants and adversarial sensitivity (issue 4), one per model of the zoo."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NotRepresentableError
from . import _plot
from ._context import paradigm_of
from ._core import Claim, Evidence

#: Models of the zoo (with the classical ISTA baseline) whose Lipschitz constant the suite certifies.
LIPSCHITZ_MODELS = ("ISTA", "LearnedStepISTA", "ALISTA", "UnfoldedFISTA", "UnfoldedADMM", "HyperLISTA", "LISTA",
                    "LISTACP", "TiLISTA", "LISTACPSS", "CorrectedISTA", "LearnedProxISTA", "LISTACP-adversarial")
ROBUSTNESS_MODELS = ("ISTA", "ALISTA", "LISTA", "LISTACP", "LISTACP-adversarial", "CorrectedISTA")
FORM_ASSUMPTION = "has an analysis form (continuous layers with slope-restricted elementwise activations)"


def get_model(ctx, name: str):
    return ctx.classical("ISTA") if name == "ISTA" else ctx.model(name)


def lipschitz_bounds(ctx, name: str) -> dict:
    """Naive, LipSDP-Layer and LipSDP-Neuron upper bounds, the certified lower bound (Jacobian search and a PGD
    attack) and the bounds against depth, computed once per run and model.  Raises NotRepresentableError for a
    model without a form."""

    def make():
        from .. import lipschitz as lip
        from ..robustness import attack

        net = get_model(ctx, name)
        form = net.form()
        p = ctx.profile
        Y = ctx.test.y[:200]
        K = form.num_layers
        depths = sorted({1, K, *np.linspace(1, K, max(2, p.depth_points)).round().astype(int).tolist()})
        # work budgets (evaluations, steps); time_cap is only a safety cap (docs/design.md §5)
        rows = lip.bounds_vs_depth(form, depths=depths[:-1],
                                   upper_kwargs={"time_limit": p.time_cap, "max_evaluations": p.depth_sdp_evaluations,
                                                 "polish_steps": p.polish_steps},
                                   lower_kwargs={"data": Y[:50], "time_limit": p.time_cap, "num_random": 64,
                                                 "ascent_steps": max(1, p.lower_steps // 2), "ascent_starts": 4,
                                                 "seed": p.seed})
        last = {"depth": K, **{m: lip.upper_bound(form, m, time_limit=p.time_cap, max_evaluations=p.sdp_evaluations,
                                               polish_steps=p.polish_steps)
                               for m in ("naive", "layerwise", "lipsdp")}}
        rows.append(last)
        low = lip.lower_bound(form, data=Y, time_limit=p.time_cap, ascent_steps=p.lower_steps, seed=p.seed)
        att = attack(form, Y[:64], p.attack_eps, steps=p.attack_steps)
        best = low if low.value >= att.value else att
        rows[-1]["lower"] = best
        return {"net": net, "form": form, "rows": rows, "lower": low, "attack": att, "best_lower": best,
                **{m: rows[-1][m] for m in ("naive", "layerwise", "lipsdp")}}

    return ctx.memo(f"lipschitz:{name}", make)


def _lipschitz_claim(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """Certified LipSDP-Neuron upper bound of y -> x_K against the largest certified lower bound found
        (Jacobian spectral norms at data and random points, gradient ascent, PGD attack); LipSDP <= naive and
        every upper bound >= the lower bound."""
        try:
            b = lipschitz_bounds(ctx, name)
        except NotRepresentableError as exc:
            return Evidence(assumptions={FORM_ASSUMPTION: False}, reason=str(exc))
        low = b["best_lower"]
        ups = {m: b[m] for m in ("naive", "layerwise", "lipsdp")}
        plt = _plot.pyplot()
        figure = None
        if plt is not None:
            from ..lipschitz import plot_bounds_vs_depth

            ax = plot_bounds_vs_depth(b["rows"], title=f"{name}: Lipschitz sandwich against depth")
            figure = _plot.save(ctx, ax.figure, f"lipschitz_{name}.png")
        details = {m: u.value for m, u in ups.items()}
        details.update({"lower_jacobian_search": b["lower"].value, "lower_attack": b["attack"].value,
                        "lower_source": "attack" if low is b["attack"] else "jacobian search",
                        "lipsdp_over_lower": ups["lipsdp"].value / low.value if low.value > 0 else math.inf,
                        "naive_over_lower": ups["naive"].value / low.value if low.value > 0 else math.inf,
                        "lipsdp_seconds": ups["lipsdp"].seconds,
                        "per_depth": [{"depth": r["depth"], **{k: r[k].value for k in ups}, "lower": r["lower"].value}
                                      for r in b["rows"]]})
        return Evidence(bound=ups["lipsdp"], empirical=low.value,
                        empirical_label="largest certified lower bound (Jacobian search, ascent, PGD attack)",
                        checks={"every upper bound certified": all(u.certified for u in ups.values()),
                                "lipsdp <= layerwise <= naive":
                                    ups["lipsdp"].value <= ups["layerwise"].value <= ups["naive"].value,
                                "every certificate converged within its work budget":
                                    all(u.converged for u in ups.values()),
                                "lower <= every upper bound": all(low.value <= u.value for u in ups.values())},
                        details=details, figure=figure)

    return Claim(id=f"lipschitz.{name}", title=f"LipSDP certifies the Lipschitz constant of {name}",
                 reference="Fazlyab et al., LipSDP (NeurIPS 2019), adapted to input injection (docs/theory/lipschitz.md §3)",
                 topic="lipschitz", relation="<=", check=check, paradigms=(paradigm_of(name),),
                 models=() if name == "ISTA" else (name,))


def _robustness_claim(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """Certified output deviation L * eps (LipSDP) against the largest deviation a PGD attack (l2 ball of
        radius eps around test inputs) achieves; the attack's curve over several radii is drawn against the
        certified line."""
        from ..robustness import attack, certified_sensitivity

        try:
            b = lipschitz_bounds(ctx, name)
        except NotRepresentableError as exc:
            return Evidence(assumptions={FORM_ASSUMPTION: False}, reason=str(exc))
        p = ctx.profile
        eps = p.attack_eps
        cert = certified_sensitivity(b["form"], eps, upper=b["lipsdp"])
        curve = []
        for e in (eps / 8, eps / 4, eps / 2, eps, 2 * eps, 4 * eps):
            att = b["attack"] if e == eps else attack(b["form"], ctx.test.y[:32], e, steps=p.attack_steps)
            curve.append({"eps": e, "attack_deviation": float(att.checks["max_deviation"]),
                          "certified_deviation": b["lipsdp"].value * e})
        dev = float(b["attack"].checks["max_deviation"])
        plt = _plot.pyplot()
        figure = None
        if plt is not None:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            es = [c["eps"] for c in curve]
            ax.loglog(es, [c["certified_deviation"] for c in curve], "k-", label="certified L eps (LipSDP)")
            ax.loglog(es, [c["attack_deviation"] for c in curve], "o--", label="PGD attack (achieved)")
            ax.set(xlabel="l2 attack radius eps", ylabel="max ||x_K(y+d) - x_K(y)||", title=f"{name}: robustness")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
            figure = _plot.save(ctx, fig, f"robustness_{name}.png")
        return Evidence(bound=cert, empirical=dev, empirical_label=f"largest attacked deviation at eps={eps:g}",
                        checks={"attack <= certified at every radius":
                                all(c["attack_deviation"] <= c["certified_deviation"] * (1 + 1e-12) for c in curve)},
                        details={"eps": eps, "lipschitz_upper": b["lipsdp"].value, "curve": curve}, figure=figure)

    return Claim(id=f"robustness.{name}", title=f"certified sensitivity of {name} bounds every attack",
                 reference="Sofer et al., adversarial robustness of iterative optimizers (arXiv 2504.19000); library",
                 topic="robustness", relation="<=", check=check, paradigms=(paradigm_of(name),),
                 models=() if name == "ISTA" else (name,))


def rpca_lipschitz_upper(num_layers: int) -> tuple[float, float]:
    r"""Lipschitz bounds of :math:`M \mapsto L_K` and :math:`M \mapsto S_K` (Frobenius norms) for unfolded RPCA.

    With :math:`L_k = \mathrm{SVT}_{\tau_k}(M - S_{k-1})`, :math:`S_k = \eta_{\lambda_k}(M - L_k)`, :math:`S_0
    = 0`, and both SVT and the soft threshold nonexpansive (proximal maps),
    :math:`l_k \le 1 + s_{k-1}` and :math:`s_k \le 1 + l_k`, so :math:`l_K \le 2K - 1`, :math:`s_K \le 2K`,
    whatever the learned thresholds.  A crude but sound bound (it ignores every threshold).
    """
    return 2.0 * num_layers - 1.0, 2.0 * num_layers


class _RPCAOutput(torch.nn.Module):
    """Flattened M -> flattened (L_K, S_K) of an unfolded RPCA network (for the attack)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.m = net.shape[0] * net.shape[1]

    def forward(self, y):
        L, S = self.net(y.reshape(-1, *self.net.shape))
        return torch.cat([L.reshape(y.shape[0], -1), S.reshape(y.shape[0], -1)], dim=1)


def _rpca_claim() -> Claim:
    def check(ctx) -> Evidence:
        """Layer-wise composition bound sqrt((2K-1)^2 + (2K)^2) of M -> (L_K, S_K) (SVT and soft threshold
        are nonexpansive) against a PGD attack on trained unfolded RPCA; the network has no analysis form
        (SVT is not elementwise), so LipSDP does not apply and this sound composition bound is what remains."""
        from ..robustness import attack

        net = ctx.model("UnfoldedRPCA")
        lK, sK = rpca_lipschitz_upper(net.num_layers)
        bound = math.sqrt(lK ** 2 + sK ** 2)
        M = ctx.rpca_gen.sample(16, seed=ctx.profile.seed + 7).y.reshape(16, -1)
        att = attack(_RPCAOutput(net), M, ctx.profile.attack_eps, steps=ctx.profile.attack_steps)
        from ..bounds import Bound

        b = Bound(bound, "upper", True, "layerwise_nonexpansive_composition",
                  quantity="Lipschitz constant of M -> (L_K, S_K) (Frobenius)", checks={"l_K": lK, "s_K": sK})
        return Evidence(bound=b, empirical=att.value, empirical_label="attacked Lipschitz ratio (certified lower)",
                        details={"num_layers": net.num_layers, "attack_ratio": att.value})

    return Claim(id="robustness.UnfoldedRPCA", title="composition bound of unfolded RPCA bounds every attack",
                 reference="Solomon et al., CORONA (IEEE TMI 2020); prox maps are nonexpansive",
                 topic="robustness", relation="<=", check=check, paradigms=("1",), models=("UnfoldedRPCA",))


def claims() -> list[Claim]:
    out = [_lipschitz_claim(name) for name in LIPSCHITZ_MODELS]
    out += [_robustness_claim(name) for name in ROBUSTNESS_MODELS]
    out.append(_rpca_claim())
    return out

