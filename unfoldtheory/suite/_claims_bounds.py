"""Claims on Lipschitz constants and adversarial sensitivity (issue 4), one per model of the zoo."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..bounds import Bound
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


def lipschitz_sandwich(ctx, name: str) -> dict:
    """Every entry of the model's Lipschitz sandwich (``docs/design.md §8``), computed once per run and model:
    the bounds of :func:`lipschitz_bounds`, LipSDP on the (slightly widened) box of the test inputs, a lower
    bound by Jacobian search at the test inputs (inside that box), the region search warm-started from the
    Jacobian-search witness, the exact constant where the net has at most ``exact_max_neurons`` neurons, and
    :func:`~unfoldtheory.lipschitz.local_sandwich` on l2 balls around the first ``local_points`` test inputs.
    All under the profile's work budgets; ``time_cap`` is only a safety cap.  Returns ``{"sandwich": {name:
    entry}, "domain": {"lower", "upper", "margin", "label"}, "local": {"radius", "relative", "centres",
    "label"}}``."""

    def make():
        from .. import lipschitz as lip
        from ..errors import InvalidInputError
        from ._lipschitz_gap import data_box, entry, in_box, not_computed

        b = lipschitz_bounds(ctx, name)
        form, p = b["form"], ctx.profile
        Y = np.asarray(ctx.test.y, dtype=float)
        lo, hi, margin = data_box(Y)
        sw = {m: entry(b[m]) for m in ("naive", "layerwise", "lipsdp")}
        sw["lower_jacobian_search"] = entry(b["lower"])
        sw["lower_attack"] = entry(b["attack"])
        # interval propagation over the box (the cheap naive call) says which neurons the box fixes; when it
        # fixes none beyond those pinned everywhere (identity neurons), every slope keeps its global interval
        # (the zoo's activations have two slope values, so a neuron not fixed keeps [min, max]), the domain SDP
        # is the global one and the global certificate is the domain certificate (no second solve)
        pre = lip.domain_upper_bound(form, (lo, hi), method="naive")
        pinned = int(b["lipsdp"].checks.get("pinned_neurons_eliminated", -1))
        if pre.checks.get("fixed_neurons") == pinned:
            dom = dataclasses.replace(
                b["lipsdp"], method="domain_lipsdp", quantity=pre.quantity,
                status=("the box fixes no neuron beyond those pinned everywhere: the domain SDP is the global one, "
                        "whose certificate holds on the box"),
                checks={"fixed_neurons": pinned, "uncertain_neurons": pre.checks.get("uncertain_neurons"),
                        "reused_global_certificate": True}, seconds=pre.seconds)
        else:
            dom = lip.domain_upper_bound(form, (lo, hi), time_limit=p.time_cap, polish_steps=p.polish_steps,
                                         max_evaluations=p.domain_sdp_evaluations or p.sdp_evaluations)
        sw["domain_lipsdp"] = entry(dom, "domain", fixed_neurons=dom.checks.get("fixed_neurons"),
                                    uncertain_neurons=dom.checks.get("uncertain_neurons"),
                                    reused_global_certificate=bool(dom.checks.get("reused_global_certificate")))
        # lower bound on the domain constant: secants at test inputs (no random scales, no ascent), kept only
        # when both points of the witness pair lie in the box
        dlow = lip.lower_bound(form, data=Y[:200], scales=(), num_random=0, ascent_steps=0, smooth_steps=0,
                               seed=p.seed)
        wit = dlow.witness or {}
        inside = bool(wit) and in_box([wit["y"], np.asarray(wit["y"]) + np.asarray(wit["d"])], lo, hi)
        if dlow.certified and inside:
            sw["domain_lower"] = entry(dlow, "domain", in_domain=True)
        else:
            sw["domain_lower"] = not_computed("lower", "sampled_secant", "no certified witness pair inside the data "
                                              "box", "domain")
        try:
            rs = lip.region_search(form, b["lower"], rounds=p.region_rounds, max_uncertain=p.region_max_uncertain,
                                   node_limit=p.region_node_limit, flips=p.region_flips, time_limit=p.time_cap,
                                   seed=p.seed)
            sw["lower_region_search"] = entry(rs, in_domain=in_box(rs.witness["y"], lo, hi),
                                              start_value=float(rs.checks.get("start_value", math.nan)))
        except InvalidInputError as exc:  # no start point strictly inside a region: nothing to search from
            sw["lower_region_search"] = not_computed("lower", "region_search", str(exc))
        neurons = int(form.num_neurons)
        if neurons > p.exact_max_neurons:
            sw["exact"] = not_computed("upper", "exact", f"not computed (too large): {neurons} neurons > the "
                                       f"profile's exact_max_neurons = {p.exact_max_neurons}", neurons=neurons,
                                       limit=p.exact_max_neurons)
        else:
            ex = lip.exact(form, "l2", max_neurons=p.exact_max_neurons, node_limit=p.exact_node_limit,
                           time_limit=p.time_cap, l2_rounds=p.exact_l2_rounds, seed=p.seed, starts=b["lower"])
            sw["exact"] = entry(ex, lower_end_certified=bool(ex.checks.get("lower_end_certified")),
                                in_domain=False)
        for key in ("lower_jacobian_search", "lower_attack"):
            sw[key]["in_domain"] = False  # their witnesses are not restricted to the data box
        # local constants on l2 balls around the first test inputs (docs/theory/robustness.md §3)
        radius = p.local_radius * float(np.median(np.linalg.norm(Y, axis=1)))
        centres = Y[:p.local_points]
        loc = lip.local_sandwich(form, centres, radius, ascent_steps=p.local_ascent_steps,
                                 max_evaluations=p.local_sdp_evaluations, time_limit=p.time_cap, seed=p.seed,
                                 show_progress=False)
        sw["local_lipsdp"] = entry(loc, "local", radius=radius, centres=len(centres),
                                   uncertain_neurons=max(x["uncertain_neurons"] for x in loc.checks["balls"]))
        # the lower end: a certified secant inside a ball or between two centres, or 0 (always attained) when
        # the map is constant there
        lwit = loc.witness or {}
        pair = [lwit["y"], np.asarray(lwit["y"]) + np.asarray(lwit["d"])] if lwit else None
        llow = Bound(value=loc.interval[0], side="lower", certified=True, method="local_secant",
                     quantity=loc.quantity, solver="float64 secant with a rounding bound",
                     status="ok" if lwit else "no output change in the balls: 0", seconds=0.0)
        sw["local_lower"] = entry(llow, "local", in_domain=pair is not None and in_box(pair, lo, hi))
        return {"sandwich": sw,
                "domain": {"lower": lo, "upper": hi, "margin": margin,
                           "label": f"box of the {len(Y)} test inputs, widened by {margin:.3g} on every side"},
                "local": {"radius": radius, "relative": p.local_radius, "centres": len(centres),
                          "label": (f"union of the l2 balls of radius {radius:.3g} ({p.local_radius:g} x the median "
                                    f"test-input norm) around the first {len(centres)} test inputs")}}

    return ctx.memo(f"lipschitz_sandwich:{name}", make)


def _lipschitz_claim(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """Certified upper bounds of the Lipschitz constant of y -> x_K (naive, LipSDP-Layer, LipSDP-Neuron,
        LipSDP on the data box of the test set, a domain constant) against the largest certified lower bound
        (Jacobian search, ascent, PGD attack, region search over activation regions, the exact solver's witness
        where the net is small enough), and both ends of the constant on the union of small balls around test inputs;
        the gap certified upper / best lower is graded (tight <= 1.5, moderate <= 3, loose above) for the
        global, the domain and the local constant; every lower bound must lie below every certified upper bound
        of its scope, the exact bracket between them."""
        from ._lipschitz_gap import grades, sandwich_figure, soundness_checks

        try:
            b = lipschitz_bounds(ctx, name)
            s = lipschitz_sandwich(ctx, name)
        except NotRepresentableError as exc:
            return Evidence(assumptions={FORM_ASSUMPTION: False}, reason=str(exc))
        # graded and checked here, from the entries, so that an inconsistent sandwich always shows
        sw = s["sandwich"]
        graded = grades(sw)
        ups = {m: b[m] for m in ("naive", "layerwise", "lipsdp")}
        low_value = graded["global"]["lower"]
        plt = _plot.pyplot()
        figure = None
        if plt is not None:
            from ..lipschitz import plot_bounds_vs_depth

            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
            plot_bounds_vs_depth(b["rows"], ax=ax1, title=f"{name}: Lipschitz sandwich against depth")
            sandwich_figure(plt, sw, graded, f"{name}: sandwich at depth {b['form'].num_layers}", ax=ax2)
            figure = _plot.save(ctx, fig, f"lipschitz_{name}.png")
        details = {m: u.value for m, u in ups.items()}
        details.update({"domain_lipsdp": sw["domain_lipsdp"]["value"],
                        "exact": (sw["exact"]["interval"] if sw["exact"]["computed"] else sw["exact"]["reason"]),
                        "lower_jacobian_search": b["lower"].value, "lower_attack": b["attack"].value,
                        "lower_region_search": sw["lower_region_search"]["value"],
                        "lower_source": graded["global"]["lower_source"],
                        "global_gap": f"{graded['global']['ratio']:.3g} ({graded['global']['grade']})",
                        "domain_gap": f"{graded['domain']['ratio']:.3g} ({graded['domain']['grade']})",
                        "local_gap": f"{graded['local']['ratio']:.3g} ({graded['local']['grade']})",
                        "local": s["local"]["label"],
                        "lipsdp_over_lower": ups["lipsdp"].value / low_value if low_value > 0 else math.inf,
                        "naive_over_lower": ups["naive"].value / low_value if low_value > 0 else math.inf,
                        "lipsdp_seconds": ups["lipsdp"].seconds,
                        "domain": s["domain"]["label"],
                        "sandwich": sw, "grades": graded,
                        "per_depth": [{"depth": r["depth"], **{k: r[k].value for k in ups}, "lower": r["lower"].value}
                                      for r in b["rows"]]})
        certificates = [*ups.values()]
        return Evidence(bound=ups["lipsdp"], empirical=low_value,
                        empirical_label=("largest certified lower bound (" + graded["global"]["lower_source"] + ")"
                                         if graded["global"]["lower_source"] else "largest certified lower bound"),
                        checks={"every upper bound certified": (all(u.certified for u in ups.values())
                                                                and sw["domain_lipsdp"]["certified"]
                                                                and sw["local_lipsdp"]["certified"]),
                                "lipsdp <= layerwise <= naive":
                                    ups["lipsdp"].value <= ups["layerwise"].value <= ups["naive"].value,
                                "every certificate converged within its work budget":
                                    all(u.converged for u in certificates) and sw["domain_lipsdp"]["converged"]
                                    and sw["local_lipsdp"]["converged"],
                                **soundness_checks(sw)},
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

