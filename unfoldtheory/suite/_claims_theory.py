"""Claims on the LISTA-CP/ALISTA theorems and on generalization bounds (issues 5 and 6)."""

from __future__ import annotations

import copy

import numpy as np

from ..bounds import Bound
from . import _plot
from ._context import numpy_rng, paradigm_of
from ._core import Claim, Evidence

#: Tolerance of the generalization claims: an instance is solved when its last-layer NMSE is below this (dB).
EPS_DB = -10.0
DELTA = 0.01


def _fresh(ctx, size: int, salt: int):
    return ctx.gen.sample(size, seed=int(numpy_rng(ctx, salt).integers(2 ** 31)))


# ---------------------------------------------------------------------------------------- generalization


def _sample_convergence(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """Test-set (sample-convergence) bound on the risk P(NMSE_k > eps) of every layer k, from N held-out
        instances with confidence 1 - delta (all layers jointly, kl inverse rounded to the safe side), against
        the risk measured on ten times as many fresh instances."""
        from ..generalization import layer_metrics, sample_convergence_bound

        net = ctx.model(name)
        N = ctx.profile.test_size
        res = sample_convergence_bound(net, _fresh(ctx, N, 21), EPS_DB, metric="nmse_db", delta=DELTA)
        measured = (layer_metrics(net, _fresh(ctx, 10 * N, 22), metric="nmse_db") > EPS_DB).mean(axis=0)
        return Evidence(bound=res.bound, empirical=float(measured[-1]),
                        empirical_label=f"risk P(NMSE_K > {EPS_DB:g} dB) on {10 * N} fresh instances",
                        checks={"measured risk <= bound at every layer": bool(np.all(measured <= res.risk_upper))},
                        value_range=(0.0, 1.0),
                        details={"N": N, "delta": DELTA, "eps_db": EPS_DB,
                                 "empirical_risk": res.empirical_risk.tolist(), "risk_upper": res.risk_upper.tolist(),
                                 "measured_risk": measured.tolist()})

    return Claim(id=f"generalization.sample_convergence_{name}",
                 title=f"sample-convergence bound on the per-layer risk of {name} holds on fresh data",
                 reference="Sambharya & Stellato (arXiv 2404.13831), sample convergence bound (kl inverse)",
                 topic="generalization", relation="<=", check=check, paradigms=(paradigm_of(name),), models=(name,))


def _pac_bayes(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """PAC-Bayes guarantee on the fraction of instances solved (NMSE_K <= eps) by the Gibbs predictor of a
        Gaussian posterior around the trained weights, the posterior trained by minimising the bound on N fresh
        instances (prior = the trained weights, prior variance on a grid with the union bound), against the
        fraction the posterior's samples solve on fresh test data."""
        from ..generalization import train_pac_bayes

        net = ctx.model(name)
        p = ctx.profile
        tr = train_pac_bayes(copy.deepcopy(net), _fresh(ctx, p.pac_bayes_samples, 23), EPS_DB,
                             test_data=_fresh(ctx, p.pac_bayes_samples, 24), seed=p.seed,
                             steps=max(50, p.generalization_steps // 2))
        r = tr.result
        conf = 1 - r.delta - r.delta_sample
        frac = Bound(value=r.certified_fraction_solved, side="lower", certified=True, method="pac_bayes_kl",
                     quantity="fraction of fresh instances solved by the Gibbs predictor of the posterior",
                     solver="kl inverse (bit bisection, safe side)", confidence=conf,
                     status=f"1 - the PAC-Bayes risk bound; holds with probability >= {conf:g}",
                     vacuous=r.certified_fraction_solved <= 0.0,
                     vacuous_reason="the certified fraction is <= 0: every fraction is >= 0" if
                     r.certified_fraction_solved <= 0.0 else "")
        return Evidence(bound=frac, empirical=float(r.test_fraction_solved),
                        empirical_label="fraction solved by posterior samples on fresh instances",
                        value_range=(0.0, 1.0),
                        details={"certified_fraction_solved": r.certified_fraction_solved,
                                 "measured_fraction_solved": r.test_fraction_solved,
                                 "measured_fraction_solved_mean_network": r.test_fraction_solved_mean,
                                 "points_apart": 100 * (r.test_fraction_solved - r.certified_fraction_solved),
                                 "kl": r.kl, "penalty": r.penalty, "N": r.N, "H": r.H, "parameters": r.d,
                                 "confidence": 1 - r.delta - r.delta_sample, "eps_db": EPS_DB})

    return Claim(id=f"generalization.pac_bayes_{name}",
                 title=f"PAC-Bayes certified fraction solved by {name} is below the measured one",
                 reference="Sambharya & Stellato (arXiv 2404.13831), PAC-Bayes for learned optimizers; McAllester/"
                           "Maurer bound", topic="generalization", relation=">=", check=check,
                 paradigms=(paradigm_of(name),), models=(name,))


def _uniform(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """Covering-number (Dudley) uniform bound on the expected clipped reconstruction loss of the unfolded
        class around the trained model (parameter-Lipschitz constant from the Lipschitz module), evaluated with
        a fresh sample of the size of the training stream, against the loss measured on fresh data.  Usually
        vacuous at these sample sizes (said in the details): it explains the scaling in depth and parameters."""
        from ..generalization import clipped_loss, uniform_bound

        net = ctx.model(name)
        p = ctx.profile
        ref = _fresh(ctx, 2000, 25)
        y_norm = float(np.quantile(np.linalg.norm(ref.y, axis=1), 0.99))
        scale = float(np.sqrt(np.mean(np.sum(ref.x ** 2, axis=1))))
        m = p.train_steps * p.batch_size
        S = _fresh(ctx, min(m, 20000), 26)
        emp = float(clipped_loss(net, S, y_norm=y_norm, loss_scale=scale).mean())
        ub = uniform_bound(net, m, y_norm=y_norm, loss_scale=scale, empirical_risk=emp, delta=DELTA)
        measured = float(clipped_loss(net, _fresh(ctx, 5000, 27), y_norm=y_norm, loss_scale=scale).mean())
        return Evidence(bound=ub.bound, empirical=measured, empirical_label="clipped loss on 5000 fresh instances",
                        value_range=(0.0, 1.0),
                        details={"samples": m, "empirical_risk": emp, "gap_bound": ub.gap_bound, "vacuous": ub.vacuous,
                                 "free_parameters": ub.d, "parameter_lipschitz": ub.lipschitz_parameters,
                                 "expression": str(ub.expression)[:300]})

    return Claim(id=f"generalization.uniform_{name}",
                 title=f"uniform (covering-number) bound on the loss of {name} holds",
                 reference="Dudley entropy integral; scaling as in Schnoor, Behboodi & Rauhut (IMAIAI 2023), "
                           "Behboodi, Rauhut & Schnoor (2022)", topic="generalization", relation="<=", check=check,
                 paradigms=(paradigm_of(name),), models=(name,))


def _gap_vs_samples() -> Claim:
    def check(ctx) -> Evidence:
        """Measured generalization gap (fresh test loss minus training loss) of ALISTA trained on m samples,
        for several m, against the uniform bound's gap term; the figure adds the PAC-Bayes risk bound and the
        measured risks against m."""
        from ..generalization import generalization_gap, plot_generalization
        from ..models import ALISTA

        p = ctx.profile
        ref = _fresh(ctx, 2000, 28)
        y_norm = float(np.quantile(np.linalg.norm(ref.y, axis=1), 0.99))
        scale = float(np.sqrt(np.mean(np.sum(ref.x ** 2, axis=1))))

        def factory():
            import torch

            return ALISTA(ctx.gen.A, p.layers, device="cpu", dtype=torch.float64)

        steps = max(10, p.generalization_steps // 4)
        points = generalization_gap(factory, ctx.gen, p.generalization_sizes, EPS_DB, y_norm=y_norm,
                                    loss_scale=scale, test_size=2000, pac_bayes=True, seed=p.seed, delta=DELTA,
                                    train_kwargs={"epochs": 4, "steps_per_epoch": steps},
                                    pac_bayes_kwargs={"steps": max(20, p.generalization_steps // 4)})
        plt = _plot.pyplot()
        figure = None
        if plt is not None:
            ax = plot_generalization(points, title=f"ALISTA K={p.layers}: bounds vs measured gaps")
            figure = _plot.save(ctx, ax.figure, "generalization_gap.png")
        last = points[-1]
        gap = Bound(value=last.uniform_gap_bound, side="upper", certified=True, method="covering_dudley_gap",
                    quantity=f"generalization gap of the clipped loss (in [-1, 1]) at m = {last.samples}",
                    solver="closed form + left Riemann sum (upper)", confidence=1 - DELTA)
        return Evidence(bound=gap, empirical=last.loss_gap,
                        empirical_label=f"measured loss gap at m = {last.samples}",
                        value_range=(-1.0, 1.0),
                        checks={"measured gap <= uniform gap bound at every m":
                                all(q.loss_gap <= q.uniform_gap_bound for q in points)},
                        details={"points": [q.to_dict() for q in points]}, figure=figure)

    return Claim(id="generalization.gap_vs_samples", title="measured generalization gaps stay below the uniform "
                 "bound as the number of samples grows", reference="Dudley entropy integral; Sambharya & Stellato",
                 topic="generalization", relation="<=", check=check, paradigms=("1",))


# ------------------------------------------------------------------------------------------- theorems


def _lista_cp_coupling() -> Claim:
    def check(ctx) -> Evidence:
        """LISTA-CP's necessary condition (Chen et al. 2018, Thm 1) for a LISTA that converges: W2_k -> I - W1_k A
        and theta_k -> 0 as k grows.  Measured on the trained (untied, uncoupled) LISTA of the zoo, which starts
        coupled (ISTA) and is free to leave the coupling.  Where it converges on data (the theorem's premise), the
        relative coupling residual of the last layer is at most that of layer 2, and so is the largest threshold
        (the paper's Fig. 1 observation)."""
        from ..convergence import lista_cp_coupling
        from ..metrics import per_layer_nmse_db

        net = ctx.model("LISTA")
        res = lista_cp_coupling(net, ctx.gen.A)
        rel = res.relative_spectral
        nmse = per_layer_nmse_db(net, ctx.test.y, ctx.test.x)
        tail = nmse[len(nmse) // 2:]
        converging = bool(np.all(np.diff(tail) < 0) and tail[-1] < -10.0)
        return Evidence(bound=float(rel[1]), empirical=float(rel[-1]),
                        empirical_label="relative coupling residual at the last layer",
                        bound_method="relative coupling residual at layer 2",
                        bound_side="measured",
                        assumptions={"weights are not coupled by construction": not res.by_construction,
                                     "the network converges on data (the theorem's premise): per-layer NMSE "
                                     "decreasing over the second half of the layers, below -10 dB": converging},
                        checks={"largest threshold of the last layer <= that of layer 2":
                                bool(res.theta_max[-1] <= res.theta_max[1])},
                        details={"trend": res.trend, "verdict_of_the_trend": res.verdict, "relative_spectral": rel.tolist(),
                                 "residual_frobenius": res.residual_frobenius.tolist(),
                                 "theta_max": res.theta_max.tolist(), "coupling_trend": res.coupling_trend,
                                 "theta_trend": res.theta_trend, "notes": res.notes,
                                 "nmse_db_per_layer": nmse.tolist()})

    return Claim(id="convergence.lista_cp_coupling", title="trained LISTA moves toward the LISTA-CP coupling",
                 reference="Chen, Liu, Wang, Yin, LISTA-CP (NeurIPS 2018), Thm 1 and Fig. 1", topic="convergence",
                 relation="<=", check=check, paradigms=("2",), models=("LISTA",))


def _alista(name: str) -> Claim:
    oracle = name == "ALISTA-minimax"

    def check(ctx) -> Evidence:
        """ALISTA Theorem 1: with W in the minimax set (mu = generalized coherence), s-sparse noiseless data with
        (2s - 1) mu < 1, steps in (0, 2/(2 mu s - mu + 1)) and thresholds theta_k = gamma_k mu sup||x_k - x*||_1,
        there are no false positives and ||x_k - x*||_2 <= s B prod_{t<=k} ((2 mu s - mu) gamma_t + |1 - gamma_t|)
        on every instance.  Every assumption is checked on the model and data; if one fails the claim is not
        applicable.  The figure draws the observed per-layer error against the certified rates."""
        from ..convergence import (
            alista_oracle_thresholds,
            alista_theorem_check,
            convergence_profile,
            fixed_support_instances,
        )

        net = ctx.model(name)
        A, s = ctx.gen.A, ctx.profile.alista_sparsity
        x, y = fixed_support_instances(A, s, 300, seed=ctx.profile.seed + 31)
        if oracle:  # the theorem's thresholds (eq. 10), computed through the model on these instances
            alista_oracle_thresholds(net, A, x, y, assign=True)
        res = alista_theorem_check(net, A, x, y, s=s)
        figure = None
        plt = _plot.pyplot()
        if plt is not None:
            prof = convergence_profile(net, ctx.lasso, y, x, alista_s=s)
            fig = prof.plot()
            for ax in fig.axes:  # the report's model name (ALISTA-minimax and ALISTA share a class name)
                ax.set_title(ax.get_title().replace(f"{prof.model}:", f"{name}:", 1))
            figure = _plot.save(ctx, fig, f"convergence_{name}.png")
        assumptions = {f"{k}: {v['detail']}" if v.get("detail") else k: bool(v["holds"])
                       for k, v in res.assumptions.items() if v["required"] and v["holds"] is not None}
        conclusions = {k: bool(v["holds"]) for k, v in res.conclusions.items() if v["holds"] is not None}
        return Evidence(bound=float(res.bound_per_layer[-1]), empirical=float(res.observed[-1]),
                        empirical_label=f"largest ||x_K - x*||_2 over {res.num_instances} {s}-sparse instances",
                        bound_method="ALISTA Thm 1: s B prod c_t",
                        bound_side="upper",
                        assumptions=assumptions,
                        checks={**conclusions, "error below the bound at every layer":
                                bool(np.all(res.observed <= res.bound_per_layer * (1 + 1e-9)))},
                        details={"status_of_the_check": res.status, "mu": res.mu, "mu_tilde": res.mu_tilde, "s": s,
                                 "B": res.B, "gamma": res.gamma.tolist(), "gamma_max": res.gamma_max,
                                 "bound": res.bound_per_layer.tolist(), "observed": res.observed.tolist(),
                                 "false_positives": res.false_positives.tolist(),
                                 "extended_status": res.extended_status},
                        figure=figure)

    what = ("with the minimax weight and the theorem's thresholds" if oracle
            else "as trained (analytic weight, learned thresholds)")
    return Claim(id=f"convergence.alista_theorem_{'oracle' if oracle else 'trained'}",
                 title=f"ALISTA Theorem 1 error bound, {what}",
                 reference="Liu, Chen, Wang, Yin, ALISTA (ICLR 2019), Thm 1, eqs. (10)-(11)", topic="convergence",
                 relation="<=", check=check, paradigms=("1",), models=(name,))


def claims() -> list[Claim]:
    return [_lista_cp_coupling(), _alista("ALISTA-minimax"), _alista("ALISTA"), _sample_convergence("LISTACP"), _sample_convergence("ALISTA"), _pac_bayes("ALISTA"), _uniform("LISTA"),
            _gap_vs_samples()]
