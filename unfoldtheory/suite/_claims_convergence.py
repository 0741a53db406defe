"""Claims on contraction, fixed points and worst-case convergence (PEP) (issue 5)."""

from __future__ import annotations

import numpy as np

from . import _plot
from ._context import numpy_rng, paradigm_of
from ._core import Claim, Evidence

CONTRACTION_MODELS = ("ISTA", "ALISTA", "LearnedStepISTA", "LISTA", "TiLISTA")


# ------------------------------------------------------------------------------------------ contraction


def _ista_averaged() -> Claim:
    def check(ctx) -> Evidence:
        """ISTA's map T(x) = prox(x - gamma grad f(x)) with gamma = 1.5/L is alpha-averaged, alpha = 2/(4 - gamma L):
        ||Tx - Tz||^2 <= ||x - z||^2 - (1 - alpha)/alpha ||(I - T)x - (I - T)z||^2 on random pairs at several
        scales (the largest normalised violation must be <= 0 up to rounding)."""
        from ..contraction import averagedness_constant, averagedness_violation, ista_operator

        prob = ctx.lasso
        gamma = 1.5 / prob.L
        alpha = averagedness_constant(gamma, prob.L)
        rng = numpy_rng(ctx, 11)
        worst = -np.inf
        for i in range(200):
            y = ctx.test.y[i % len(ctx.test.y)]
            T = ista_operator(prob, y, gamma)
            scale = 10.0 ** rng.uniform(-3, 2)
            x, z = scale * rng.standard_normal(prob.n), scale * rng.standard_normal(prob.n)
            if i % 2:  # pairs near the optimum, where the threshold switches
                z = ctx.reference.x[i % len(ctx.test.y)] + 1e-3 * scale * rng.standard_normal(prob.n)
            worst = max(worst, averagedness_violation(T, x, z, alpha) / float(np.sum((x - z) ** 2)))
        return Evidence(bound=0.0, empirical=worst, empirical_label="largest violation / ||x - z||^2 over 200 pairs",
                        bound_method="averagedness inequality (violation <= 0)",
                        details={"gamma_L": 1.5, "alpha": alpha})

    return Claim(id="contraction.ista_averaged", title="ISTA with step gamma < 2/L is 2/(4 - gamma L)-averaged",
                 reference="Combettes & Yamada (2015), Prop. 2.4; Bauschke & Combettes, Convex Analysis, Prop. 4.44",
                 topic="contraction", relation="<=", atol=1e-9, check=check, paradigms=("classical",))


def _fixed_point() -> Claim:
    def check(ctx) -> Evidence:
        """The certified LASSO optimum x* of every test instance is a fixed point of the ISTA layer: the largest
        ||x* - T(x*)|| / max(1, ||x*||) is at most 1e-7 (reference optima certified by their duality gap)."""
        from ..contraction import fixed_point_residual

        sol = ctx.reference
        res = [fixed_point_residual(ctx.lasso, x, y) / max(1.0, float(np.linalg.norm(x)))
               for x, y in zip(sol.x, ctx.test.y)]
        return Evidence(bound=1e-7, empirical=float(max(res)), empirical_label="largest relative fixed-point residual",
                        bound_method="tolerance (exact value 0)",
                        assumptions={"every reference optimum certified": bool(np.all(sol.status == "optimal"))},
                        details={"instances": len(res), "max_relative_gap": float(np.max(sol.relative_gap))})

    return Claim(id="contraction.fixed_point", title="the certified LASSO optimum is a fixed point of the ISTA layer",
                 reference="Combettes & Wajs (2005), Prop. 3.1 (minimisers = fixed points of forward-backward)",
                 topic="contraction", relation="<=", check=check, paradigms=("classical",))


def _chain_weights(ctx, name: str) -> tuple[list, list, list]:
    if name == "ISTA":
        prob = ctx.lasso
        K = ctx.profile.layers
        A = prob.A
        W1 = A.T / prob.L
        W2 = np.eye(prob.n) - A.T @ A / prob.L
        th = np.full(prob.n, prob.lam / prob.L)
        return [W1] * K, [W2] * K, [th] * K
    w = ctx.model(name).weights()
    return w["W1"], w["W2"], w["theta"]


def _state_map(W1, W2, th, y, x1):
    x = x1
    for k in range(1, len(W1)):
        z = x @ W2[k].T + y @ W1[k].T
        x = np.sign(z) * np.maximum(np.abs(z) - th[k], 0.0)
    return x


def _contraction_evidence(ctx, name: str) -> tuple:
    """The per-layer contraction certificate of ``name`` and the largest observed ratio of its state map."""
    from ..contraction import contraction_certificate

    net = ctx.classical("ISTA") if name == "ISTA" else ctx.model(name)
    cert = contraction_certificate(net)
    W1, W2, th = _chain_weights(ctx, name)
    rng = numpy_rng(ctx, 13)
    Y = ctx.test.y[:100]
    x1 = Y @ W1[0].T
    x1 = np.sign(x1) * np.maximum(np.abs(x1) - th[0], 0.0)
    worst = 0.0
    for scale in (1e-4, 1e-2, 1.0, 1e2):
        d = scale * rng.standard_normal(x1.shape)
        a, b = _state_map(W1, W2, th, Y, x1), _state_map(W1, W2, th, Y, x1 + d)
        worst = max(worst, float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(d, axis=1))))
    return cert, worst


def _contraction_claim(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """Soundness of the certificate: the certified product of per-layer state Lipschitz constants
        prod_{k>=2} ||W2_k|| of x_1 -> x_K (fixed y) bounds the largest ratio ||x_K - x_K'|| / ||x_1 - x_1'||
        observed over perturbed first-layer states on test data.  Whether the network is a contraction is the
        separate claim ``contraction.<model>_is_contraction``."""
        cert, worst = _contraction_evidence(ctx, name)
        return Evidence(bound=cert, empirical=worst, empirical_label="largest observed ratio of the state map",
                        details={"layer_norms": list(cert.checks["layer_norms"]),
                                 "certified_contraction": bool(cert.value < 1)})

    return Claim(id=f"contraction.{name}",
                 title=f"the certified contraction factor of {name} bounds the observed one",
                 reference="Chen et al., LISTA-CP (NeurIPS 2018), Sec. 3; library (product of layer norms)",
                 topic="contraction", relation="<=", check=check, paradigms=(paradigm_of(name),),
                 models=() if name == "ISTA" else (name,))


def _is_contraction_claim(name: str) -> Claim:
    def check(ctx) -> Evidence:
        """The theorem's conclusion, not the certificate's soundness: the state map x_1 -> x_K of the network is
        a contraction.  Holds when the certified factor prod_{k>=2} ||W2_k|| is < 1 (a proof); violated when it
        is not (an observed ratio >= 1 even disproves it; a certified factor >= 1 only fails to prove it)."""
        cert, worst = _contraction_evidence(ctx, name)
        return Evidence(bound=1.0, empirical=worst, empirical_label="largest observed ratio of the state map",
                        bound_method="contraction threshold 1",
                        checks={f"certified contraction factor {cert.value:.4g} < 1": bool(cert.value < 1)},
                        details={"certified_factor": cert.value, "observed_ratio": worst,
                                 "disproved_by_observation": bool(worst >= 1)})

    return Claim(id=f"contraction.{name}_is_contraction",
                 title=f"the {name} state map is a contraction (certified factor < 1)",
                 reference="Chen et al., LISTA-CP (NeurIPS 2018), Sec. 3; Banach fixed-point theorem",
                 topic="contraction", relation="<=", check=check, paradigms=(paradigm_of(name),),
                 models=() if name == "ISTA" else (name,), finding=True)


# ------------------------------------------------------------------------------------------------- PEP


def _closed_form(method: str) -> Claim:
    from .. import symbolic

    rate = symbolic.gd_unit_step_rate if method == "gd" else symbolic.prox_grad_unit_step_rate
    formula = "L/(4N+2)" if method == "gd" else "L/(4N)"

    def check(ctx) -> Evidence:
        """The PEP engine's worst case of N steps with gamma = 1/L equals the tight closed form (N = the
        profile's depth, L = 1) to 1e-5 relative."""
        from ..convergence import worst_case

        N = ctx.profile.layers
        b = worst_case([1.0] * N, L=1.0, mu=0.0, method=method, metric="objective")
        return Evidence(bound=b, empirical=rate(N), empirical_label=f"closed form {formula}",
                        checks={"certified": b.certified}, details={"N": N, "pep": b.value, "closed_form": rate(N)})

    ref = ("Drori & Teboulle (2014), Thm 3.1" if method == "gd"
           else "Taylor, Hendrickx & Glineur (JOTA 2018), Thm 3.1 (proximal gradient, gamma = 1/L)")
    return Claim(id=f"pep.{method}_closed_form", title=f"PEP worst case of {method} with step 1/L equals {formula}",
                 reference=ref, topic="pep", relation="approx", rtol=1e-5, check=check, paradigms=("classical",))


def _observed_prox_grad(ctx, steps_over_L: np.ndarray) -> np.ndarray:
    """max over test instances of (F(x_k) - F*) / ||x_0 - x*||^2, k = 1..N, for proximal gradient from x_0 = 0.

    F* is the certified lower estimate objective - gap, so the observed value is never underestimated."""
    prob, sol, Y = ctx.lasso, ctx.reference, ctx.test.y
    f_low = sol.objective - sol.gap
    r2 = np.sum(sol.x ** 2, axis=1)
    keep = r2 > 1e-12
    x = np.zeros_like(sol.x)
    out = []
    for s in steps_over_L:
        g = s / prob.L
        x = prob.prox(x - g * prob.gradient(x, Y), g)
        out.append(float(np.max((prob.objective(x, Y) - f_low)[keep] / r2[keep])))
    return np.array(out)


def _ista_observed() -> Claim:
    def check(ctx) -> Evidence:
        """ISTA (step 1/L) on the LASSO test set: the observed worst (F(x_K) - F*) / ||x_0 - x*||^2 is below the
        PEP worst case L/(4K) of proximal gradient; the figure draws both against the number of steps."""
        from ..convergence import worst_case

        K, L = ctx.profile.layers, ctx.lasso.L
        observed = _observed_prox_grad(ctx, np.ones(K))
        pep = [worst_case([1.0] * k, L=L, method="prox_grad") for k in range(1, K + 1)]
        plt = _plot.pyplot()
        figure = None
        if plt is not None:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ks = np.arange(1, K + 1)
            ax.semilogy(ks, [b.value for b in pep], "o-", label="PEP worst case (certified)")
            ax.semilogy(ks, L / (4 * ks), "k:", label="closed form L/(4k)")
            ax.semilogy(ks, observed, "s--", label="observed worst test instance")
            ax.set(xlabel="steps k", ylabel="(F(x_k) - F*) / ||x_0 - x*||^2", title="ISTA: certified vs observed")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
            figure = _plot.save(ctx, fig, "pep_ista.png")
        return Evidence(bound=pep[-1], empirical=float(observed[-1]), empirical_label="worst test instance",
                        checks={"observed <= PEP at every depth": all(o <= b.value for o, b in zip(observed, pep)),
                                "every PEP value certified": all(b.certified for b in pep)},
                        details={"L": L, "pep": [b.value for b in pep], "observed": observed.tolist()},
                        figure=figure)

    return Claim(id="pep.ista_observed", title="observed ISTA convergence on data stays below the PEP worst case",
                 reference="Taylor, Hendrickx & Glineur (JOTA 2018); Drori & Teboulle (2014)", topic="pep",
                 relation="<=", check=check, paradigms=("classical",))


def _per_layer_figure(ctx, bounds: list, observed: np.ndarray, fname: str, title: str):
    """Certified worst case after every layer against the observed worst test instance (log scale)."""
    plt = _plot.pyplot()
    if plt is None:
        return None
    ks = np.arange(1, len(bounds) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(ks, [b.value for b in bounds], "o-", label="PEP worst case of the schedule (certified)")
    ax.semilogy(ks, np.maximum(observed, 1e-300), "s--", label="observed worst test instance")
    ax.set(xlabel="layer k", ylabel="gap / (initial distance)^2", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _plot.save(ctx, fig, fname)


def _per_layer_evidence(bounds: list, observed: np.ndarray) -> tuple[dict, dict]:
    """The checks and details every per-layer PEP claim reports."""
    checks = {"every layer's PEP value certified": all(b.certified for b in bounds),
              "observed <= certified worst case at every layer":
                  bool(all(o <= b.value for o, b in zip(observed, bounds)))}
    details = {"pep_per_layer": [b.value for b in bounds], "observed_per_layer": observed.tolist(),
               "exact_per_layer": [bool(b.checks.get("exact", False)) for b in bounds]}
    return checks, details


def _learned_schedule() -> Claim:
    def check(ctx) -> Evidence:
        """The step schedule learned by LearnedStepISTA, run as proximal gradient on the LASSO (threshold
        lam * gamma_k): the PEP worst case of that schedule bounds the observed worst test instance, whatever
        gamma_k L (values above 2 are allowed), after every layer (the figure draws both against k)."""
        from ..convergence import Schedule, worst_case_per_layer

        net = ctx.model("LearnedStepISTA")
        L = ctx.lasso.L
        steps = net.gamma.detach().double().numpy() * L
        sch = Schedule("LearnedStepISTA steps, tied thresholds", "prox_grad", steps, L, 0.0, ctx.lasso.lam)
        bounds = worst_case_per_layer(sch)
        observed = _observed_prox_grad(ctx, steps)
        checks, details = _per_layer_evidence(bounds, observed)
        figure = _per_layer_figure(ctx, bounds, observed, "pep_learned_schedule.png",
                                   "learned step schedule: certified vs observed")
        return Evidence(bound=bounds[-1], empirical=float(observed[-1]), empirical_label="worst test instance",
                        assumptions={"every learned step positive": bool(np.all(steps > 0))},
                        checks={"certified": bounds[-1].certified, **checks},
                        details={"steps_times_L": steps.tolist(), "max_step_L": float(steps.max()), **details},
                        figure=figure)

    return Claim(id="pep.learned_schedule", title="PEP certifies the learned step schedule of LearnedStepISTA",
                 reference="Taylor, Hendrickx & Glineur (Math. Program. 2017), PEP; Ablin et al. (NeurIPS 2019)",
                 topic="pep", relation="<=", check=check, paradigms=("1",), models=("LearnedStepISTA",))


def _trained_schedule(name: str) -> Claim:
    method = {"UnfoldedFISTA": "proximal gradient with momentum",
              "UnfoldedADMM": "ADMM with per-step penalties"}[name]

    def check(ctx) -> Evidence:
        """The trained network's own schedule (steps and momentum, or penalties) read from the model: when
        its thresholds are tied to the schedule (theta_k = gamma_k lam, or lam / rho_k) the network is the
        method on the LASSO, and the certified PEP worst case of its first k layers bounds the observed worst
        test instance of (F(x_k) - F*) / (initial distance)^2 at every layer k (||x*||^2 from x_0 = 0; for ADMM
        ||x*||^2 + ||b*||^2 / rho_1^2 with b* = -A^T(A x* - y)).  Untied thresholds: not applicable, with the
        reason."""
        from ..convergence import initial_distance2, schedule_of, worst_case_per_layer
        from ..errors import NotRepresentableError
        from ..metrics import layer_outputs

        net = ctx.model(name)
        prob, sol, Y = ctx.lasso, ctx.reference, ctx.test.y
        try:
            sch = schedule_of(net, lam=prob.lam)
        except NotRepresentableError as exc:
            return Evidence(bound=None, empirical=None, reason=str(exc),
                            assumptions={"thresholds tied to the schedule": False})
        bounds = worst_case_per_layer(sch)
        r2 = initial_distance2(sch, np.asarray(prob.A, dtype=np.float64), sol.x, Y)
        keep = r2 > 1e-12
        f_low = sol.objective - sol.gap
        observed = np.array([float(np.max((prob.objective(x, Y) - f_low)[keep] / r2[keep]))
                             for x in layer_outputs(net, Y)])
        checks, details = _per_layer_evidence(bounds, observed)
        figure = _per_layer_figure(ctx, bounds, observed, f"pep_trained_{name}.png",
                                   f"trained {name}: certified vs observed")
        return Evidence(bound=bounds[-1], empirical=float(observed[-1]), empirical_label="worst test instance",
                        assumptions={"thresholds tied to the schedule": True},
                        checks={"certified": bounds[-1].certified, **checks},
                        details={"schedule": sch.to_dict(), "exact": bool(bounds[-1].checks.get("exact", False)),
                                 **details},
                        figure=figure)

    return Claim(id=f"pep.trained_{name}", title=f"PEP certifies the trained {name} ({method})",
                 reference=("Beck & Teboulle (2009); Taylor, Hendrickx & Glineur (Math. Program. 2017), PEP"
                            if name == "UnfoldedFISTA" else
                            "Boyd et al. (2011), ADMM; Ryu, Taylor, Bergeling & Giselsson "
                            "(SIAM J. Optim. 2020)"),
                 topic="pep", relation="<=", check=check, paradigms=("1",), models=(name,))


def claims() -> list[Claim]:
    out = [_ista_averaged(), _fixed_point()]
    for name in CONTRACTION_MODELS:
        out += [_contraction_claim(name), _is_contraction_claim(name)]
    out += [_closed_form("gd"), _closed_form("prox_grad"), _ista_observed(), _learned_schedule()]
    out += [_trained_schedule("UnfoldedFISTA"), _trained_schedule("UnfoldedADMM")]
    return out


__all__ = ["claims"]
