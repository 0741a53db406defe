"""The PEP engine: reference values, structure, certification checks, bad input, PEPit cross-check."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
import unfoldtheory.convergence as conv
from unfoldtheory.convergence import _pep

REL = 1e-5          # agreement with PEPit: its Clarabel solve is accurate to about this


def wc(steps, **kw):
    return conv.worst_case(steps, **kw).value


# ---------------------------------------------------------------------------- reference values (7.2)
GD_UNIT = [0.1666667, 0.1, 0.0714286, 0.0555556, 0.0454545, 0.0384615, 0.0333333, 0.0294118, 0.0263158,
           0.0238095]


@pytest.mark.parametrize("N", range(1, 11))
def test_gd_unit_step_reference_values(N):
    assert wc([1.0] * N) == pytest.approx(GD_UNIT[N - 1], rel=REL)   # table rounded to 7 decimals


@pytest.mark.parametrize("h,N,value", [(1.5, 1, 0.125), (1.5, 2, 0.0714286), (1.5, 3, 0.05),
                                       (1.5, 5, 0.03125), (1.5, 8, 0.02), (0.5, 1, 0.25), (0.5, 2, 0.1666667),
                                       (0.5, 3, 0.125),
                                       (0.5, 5, 0.0833333), (0.5, 8, 0.0555556), (1.2, 6, 0.0324675)])
def test_gd_constant_step_reference_values(h, N, value):
    assert wc([h] * N) == pytest.approx(value, rel=REL)


@pytest.mark.parametrize("N,value", [(1, 0.25), (2, 0.125), (5, 0.05), (10, 0.025)])
def test_prox_grad_reference_values(N, value):
    assert wc([1.0] * N, method="prox_grad") == pytest.approx(value, rel=REL)


@pytest.mark.parametrize("N,value", [(2, 0.6561), (10, 0.1215767)])
def test_prox_grad_distance_reference_values(N, value):
    assert wc([1.0] * N, mu=0.1, method="prox_grad", metric="distance") == pytest.approx(value, rel=REL)


def test_pepit_docstring_regressions():
    """PEPit examples: GD L=3, gamma=1/3, n=4 (0.166667); silver steps, L=10, n=7 (0.184215)."""
    assert wc([1.0] * 4, L=3.0) == pytest.approx(0.166667, rel=1e-5)
    silver = [1 + (1 + math.sqrt(2)) ** (((i & -i).bit_length() - 1) - 1) for i in range(1, 8)]
    assert wc(silver, L=10.0) == pytest.approx(0.184215, rel=1e-5)


# ------------------------------------------------------------------------------------- the result
def test_result_is_a_certified_upper_bound_with_evidence():
    b = conv.worst_case([1.0, 1.5, 0.8], method="prox_grad")
    assert isinstance(b, ut.bounds.Bound)
    assert (b.side, b.method, b.certified, b.reason) == ("upper", "pep", True, "")
    assert b.solver == "CLARABEL"
    c = b.checks
    assert c["exact"] and c["lower_bound_ok"] and c["quadratic_lower_bound"] <= b.value
    assert c["relative_gap"] == pytest.approx(0.0, abs=1e-6)
    assert all(v > 0 for v in b.witness["multipliers"].values())
    assert np.linalg.eigvalsh(b.witness["gram"])[0] >= -1e-8
    assert b.to_dict()["value"] == b.value


def test_l_scaling_is_metamorphic():
    steps = [0.7, 1.3, 1.9]
    assert wc(steps, L=4.0) == pytest.approx(4.0 * wc(steps), rel=1e-6)        # f values scale with L
    assert wc(steps, L=4.0, metric="distance") == pytest.approx(wc(steps, metric="distance"), rel=1e-6)


def test_more_steps_of_gradient_descent_never_hurt():
    values = [wc([1.0] * N) for N in (3, 4, 5)]
    assert values[0] > values[1] > values[2]


@settings(deadline=None, max_examples=6)
@given(steps=st.lists(st.floats(0.2, 3.0), min_size=2, max_size=6), method=st.sampled_from(_pep.METHODS),
       metric=st.sampled_from(_pep.METRICS))
def test_constraint_generation_equals_the_full_pep(steps, method, metric):
    full = conv.worst_case(steps, method=method, metric=metric, strategy="full")
    gen = conv.worst_case(steps, method=method, metric=metric, strategy="generate")
    assert full.certified and gen.certified and gen.checks["exact"]
    assert gen.value == pytest.approx(full.value, rel=REL)


def test_large_learned_steps_give_a_large_correct_worst_case():
    """gamma L >= 2 is allowed; the 1-D quadratic (L/2) x^2 alone gives prod (1 - s_k)^2."""
    steps = [1.4, 2.6, 3.1, 4.7, 1.9]
    quad = float(np.prod((1 - np.array(steps)) ** 2))
    for method in _pep.METHODS:
        b = conv.worst_case(steps, method=method, metric="distance")
        assert b.certified and math.isfinite(b.value)
        assert b.value >= quad * (1 - 1e-12)
        assert b.checks["quadratic_lower_bound"] >= quad * (1 - 1e-9)


def test_mu_equal_L_is_the_quadratic_closed_form():
    steps = [0.5, 2.5, 1.0]
    p2 = float(np.prod((1 - np.array(steps)) ** 2))
    assert wc(steps, L=2.0, mu=2.0, metric="distance") == pytest.approx(p2, rel=1e-12)
    assert wc(steps, L=2.0, mu=2.0) == pytest.approx(p2, rel=1e-12)                     # (L/2) p2
    assert wc(steps, L=2.0, mu=1.99, metric="distance", nested=False) >= p2 * (1 - 1e-9)


# ------------------------------------------------------------------------------------ lower bound
def test_quadratic_lower_bound_is_attained_and_below_the_worst_case():
    steps = [1.0, 3.0, 0.5]
    lb = conv.quadratic_lower_bound(steps, mu=0.1, metric="distance")
    assert lb.side == "lower" and lb.certified
    c = lb.witness["curvature"]
    assert lb.value <= float(np.prod((1 - np.array(steps) * c) ** 2))          # attained by (c/2) x^2
    s = np.array(steps)
    assert lb.value >= max(np.prod((1 - 0.1 * s) ** 2), np.prod((1 - s) ** 2)) * (1 - 1e-12)   # c = mu, L
    assert lb.value <= wc(steps, mu=0.1, metric="distance")


# ------------------------------------------------------------------------------- nested classes
def test_nested_classes_are_monotone():
    steps = [1.2, 1.7, 0.9, 1.5]
    inner = conv.worst_case(steps, mu=0.2, method="prox_grad")
    outer = conv.worst_case(steps, mu=0.0, method="prox_grad")
    assert inner.checks["nested_consistent"]
    assert inner.checks["nested_outer_value"] == pytest.approx(outer.value, rel=REL)
    res = conv.check_nested_classes(inner, outer)
    assert res["consistent"] and res["excess"] < 0
    # a smaller L with the same absolute steps is also a smaller class
    inner_L = conv.worst_case(np.array(steps) / 2.0, L=0.5, method="prox_grad")
    assert conv.check_nested_classes(inner_L, outer)["consistent"]


def test_nested_check_flags_contradictory_results_and_rejects_unrelated_ones():
    steps = [1.0, 1.0]
    inner = conv.worst_case(steps, mu=0.1, nested=False)
    outer = conv.worst_case(steps, mu=0.0)
    broken = dataclasses.replace(inner, value=2 * outer.value)        # PEPit's 8550 > 4923 situation
    res = conv.check_nested_classes(broken, outer)
    assert not res["consistent"] and res["best_inner"] == outer.value
    with pytest.raises(ut.InvalidInputError, match="contained"):
        conv.check_nested_classes(outer, inner)
    with pytest.raises(ut.InvalidInputError, match="same absolute steps"):
        conv.check_nested_classes(conv.worst_case([1.0, 1.5], mu=0.1, nested=False), outer)
    with pytest.raises(ut.InvalidInputError, match="worst_case"):
        conv.check_nested_classes(ut.bounds.Bound(1.0, "upper", True, "x"), outer)


# --------------------------------------------------------------------------- corrupted solves
def test_corrupted_multipliers_never_give_an_unsound_value(monkeypatch):
    """Multipliers scaled down (a solver stopping early): the float64 verification repairs outward."""
    exact = 1.0 / (4 * 4 + 2)                     # Drori & Teboulle (2014): L / (4N + 2)
    real = _pep._solve_chain

    def corrupt(*args, **kw):
        res = real(*args, **kw)
        return dataclasses.replace(res, lam=0.5 * res.lam, tau=0.3 * res.tau)

    monkeypatch.setattr(_pep, "_solve_chain", corrupt)
    b = conv.worst_case([1.0] * 4)
    assert b.value >= exact * (1 - 1e-9)


def test_an_unsound_certificate_is_detected(monkeypatch):
    """A verification returning a value below the truth (the contradictory-solver case) is caught by the
    attained lower bounds, and the result is not certified."""
    real = _pep._certify

    def unsound(*args, **kw):
        c = real(*args, **kw)
        return dataclasses.replace(c, value=0.2 * c.value, tau=0.2 * c.value)

    monkeypatch.setattr(_pep, "_certify", unsound)
    b = conv.worst_case([1.0] * 3)
    assert not b.certified
    assert "exceeds the certified upper bound" in b.reason
    b = conv.worst_case([3.0, 3.0], metric="distance")            # quadratic lower bound 16
    assert not b.certified and "quadratic lower bound" in b.reason


def test_solver_failure_raises_with_the_attempts(monkeypatch):
    def fail(prob, order, attempts, what):
        attempts.append(ut.errors.SolverAttempt("CLARABEL", "infeasible"))
        raise ut.SolverError("the PEP could not be solved.", attempts)

    monkeypatch.setattr(_pep, "_run", fail)
    monkeypatch.setattr(_pep, "_chain_clarabel", lambda data, nF: None)     # the direct call fails too
    with pytest.raises(ut.SolverError, match="CLARABEL: infeasible"):
        conv.worst_case([1.0, 1.0])


def test_direct_clarabel_and_cvxpy_give_the_same_certificate(monkeypatch):
    direct = conv.worst_case([1.0, 0.5, 1.7], method="prox_grad")
    monkeypatch.setattr(_pep, "_DIRECT_CLARABEL", False)
    via_cvxpy = conv.worst_case([1.0, 0.5, 1.7], method="prox_grad")
    assert direct.certified and via_cvxpy.certified
    assert direct.value == pytest.approx(via_cvxpy.value, rel=1e-7)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,match", [
    ({"L": 0.0}, "L must be > 0"), ({"L": -1.0}, "L must be > 0"), ({"L": math.inf}, "L must be finite"),
    ({"mu": -0.1}, "mu must be >= 0"), ({"mu": 2.0}, "mu must satisfy"), ({"method": "fista"}, "method"),
    ({"metric": "gap"}, "metric"), ({"strategy": "magic"}, "strategy"), ({"solver": "NOPE"}, "solver"),
    ({"mu": 1.0, "method": "prox_grad"}, "mu == L"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ut.InvalidInputError, match=match):
        conv.worst_case([1.0, 1.0], **kwargs)


@pytest.mark.parametrize("steps,match", [([], "steps is empty"), ([1.0, math.nan], "steps contains"),
                                         ([1.0, math.inf], "steps contains"), ([1.0, 0.0], "positive"),
                                         ([-1.0], "positive"), (1.0, "sequence"), ([[1.0]], "1-D"),
                                         (["a"], "steps")])
def test_bad_steps(steps, match):
    with pytest.raises(ut.InvalidInputError, match=match):
        conv.worst_case(steps)


# ------------------------------------------------------------------------------- PEPit cross-check
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_pepit_on_random_learned_schedules(seed):
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.3, 2.5, size=int(rng.integers(2, 7)))
    method, metric = _pep.METHODS[seed % 2], _pep.METRICS[(seed // 2) % 2]
    mu = 0.1 if seed >= 3 else 0.0
    pytest.importorskip("PEPit")
    ref = conv.pepit_worst_case(steps, mu, method, metric)
    assert ref.side == "estimate" and not ref.certified  # PEPit's optimum is a reference, not a certificate
    ours = conv.worst_case(steps, mu=mu, method=method, metric=metric)
    assert ours.certified and ours.checks["exact"]
    assert ours.value == pytest.approx(ref.value, rel=REL)


# ------------------------------------------------------------------------------------------ scale
@pytest.mark.slow
def test_fifty_steps_of_proximal_gradient():
    b = conv.worst_case([1.0] * 50, method="prox_grad")
    assert b.certified and b.checks["exact"]
    assert b.value == pytest.approx(1 / 200, rel=1e-6)
    assert b.value >= 1 / 200 * (1 - 1e-12)


# ------------------------------------------------------------------------------ exactness (issue 15)
ISSUE15_STEPS = [0.26568750427002313, 2.245594203041013, 0.9151436369908236, 1.1385250624811936,
                 2.1478802190397235, 2.2924813871752536, 2.450957851124404, 0.22311378489530093,
                 2.0925613412789055]


def test_exact_is_checked_against_every_interpolation_inequality():
    """The case of the outside check: the default strategy called 0.03801389 exact (largest violation
    8.5e-6) while the full PEP (and PEPit) give 0.03801332.  exact=True must mean the value is the worst case
    to ``tol``, so it must agree with the full PEP to that tolerance."""
    full = conv.worst_case(ISSUE15_STEPS, L=0.25, mu=0.0, strategy="full")
    gen = conv.worst_case(ISSUE15_STEPS, L=0.25, mu=0.0)
    assert full.certified and gen.certified
    assert full.value == pytest.approx(0.03801332, rel=2e-6)
    for b in (full, gen):
        c = b.checks
        if c["exact"]:
            assert b.value <= full.value * (1 + 1e-5) and b.value >= full.value * (1 - 1e-5)
            assert c["max_violation"] <= c["violation_tol"] or c["attained_relative_gap"] <= 1e-5
    assert gen.checks["exact"]                  # generation continues past the 8.5e-6 violation
    # one round (local inequalities only) is a relaxation that is not tight here: never called exact
    one = conv.worst_case(ISSUE15_STEPS, L=0.25, mu=0.0, max_rounds=1)
    assert one.certified and one.value >= full.value * (1 - 1e-9)
    assert not one.checks["exact"] and "max_rounds=1" in one.checks["exact_reason"]


def test_attained_value_is_a_point_of_the_class():
    """The repaired worst case is a lower bound: below the certificate, above the 1-D quadratic."""
    for method in _pep.METHODS:
        b = conv.worst_case([1.0, 2.5, 0.6, 1.9], mu=0.05, method=method, nested=False)
        c = b.checks
        assert c["attained_value"] <= b.value
        assert c["attained_value"] >= c["quadratic_lower_bound"] * (1 - 1e-9)
        assert c["attained_relative_gap"] <= 1e-3


# ------------------------------------------------------------------------------ momentum schedules
def fista_momentum(N):
    """FISTA's (Beck & Teboulle 2009) momentum in our indexing: beta_{k+1} = (t_k - 1) / t_{k+1}, t_1 = 1."""
    t = [1.0]
    for _ in range(N):
        t.append((1 + math.sqrt(4 * t[-1] ** 2 + 1)) / 2)
    return [0.0] + [(t[k - 1] - 1) / t[k] for k in range(1, N)]


def test_fista_schedule_reproduces_the_known_worst_case():
    """PEPit's accelerated proximal gradient example (L=1, mu=0, n=4): 0.0516733; Beck-Teboulle's bound
    L / (2 t_n^2) above it; one step is one proximal-gradient step (L/4)."""
    b = conv.worst_case([1.0] * 4, method="momentum_prox_grad", momentum=fista_momentum(4))
    assert b.certified and b.checks["exact"]
    assert b.value == pytest.approx(0.0516733, rel=2e-6)
    one = conv.worst_case([1.0], method="momentum_prox_grad", momentum=fista_momentum(1))
    assert one.value == pytest.approx(0.25, rel=REL)
    b10 = conv.worst_case([1.0] * 10, L=2.0, method="momentum_prox_grad", momentum=fista_momentum(10))
    t = [1.0]
    for _ in range(10):
        t.append((1 + math.sqrt(4 * t[-1] ** 2 + 1)) / 2)
    assert b10.certified and b10.value <= 2.0 / (2 * t[9] ** 2)            # Beck & Teboulle Thm 4.4
    assert b10.value < conv.worst_case([1.0] * 10, L=2.0, method="prox_grad").value   # acceleration helps


def test_zero_momentum_is_the_plain_method():
    steps = [0.8, 1.6, 1.1]
    for plain in _pep.METHODS:
        for metric in _pep.METRICS:
            a = wc(steps, method=plain, metric=metric, mu=0.1)
            b = wc(steps, method="momentum_" + plain, metric=metric, mu=0.1, momentum=[0.0] * 3)
            assert b == pytest.approx(a, rel=REL)


@pytest.mark.parametrize("seed", range(4))
def test_momentum_agrees_with_pepit_and_is_above_the_quadratic_worst_case(seed):
    """Random schedules (gamma_k L in (0, 2), beta_k in [0, 1.2], mu in {0, 0.1}); PEPit runs the same
    recursion written with its own primitives."""
    rng = np.random.default_rng(1000 + seed)
    N = int(rng.integers(2, 6))
    steps, betas = rng.uniform(0.05, 1.95, N), rng.uniform(0.0, 1.2, N)
    method = _pep.MOMENTUM_METHODS[seed % 2]
    metric = _pep.METRICS[(seed // 2) % 2]
    mu = 0.1 if seed in (1, 2) else 0.0
    ours = conv.worst_case(steps, mu=mu, method=method, metric=metric, momentum=betas)
    assert ours.certified and ours.checks["exact"]
    # an explicit member of the class: f = (c/2) x^2, h = 0, x_0 = 1, run through the recursion
    c = ours.checks["quadratic_curvature"]
    xN = float(_pep._momentum_quadratic_xN(steps, betas, np.array([c]))[0])
    explicit = xN ** 2 * (c / 2 if metric == "objective" else 1.0)
    assert ours.value >= explicit * (1 - 1e-9)
    pytest.importorskip("PEPit")
    ref = conv.pepit_worst_case(steps, mu, method, metric, momentum=betas).value
    assert ours.value == pytest.approx(ref, rel=REL)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_momentum_agrees_with_pepit_at_eight_steps(seed):
    rng = np.random.default_rng(2000 + seed)
    steps, betas = rng.uniform(0.05, 1.95, 8), rng.uniform(0.0, 1.2, 8)
    method, metric = _pep.MOMENTUM_METHODS[seed % 2], _pep.METRICS[seed // 2]
    pytest.importorskip("PEPit")
    ref = conv.pepit_worst_case(steps, 0.1, method, metric, momentum=betas).value
    ours = conv.worst_case(steps, mu=0.1, method=method, metric=metric, momentum=betas)
    assert ours.certified and ours.value == pytest.approx(ref, rel=REL)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "momentum_gd"}, "needs momentum"),
    ({"method": "momentum_gd", "momentum": [0.5]}, "one coefficient per step"),
    ({"method": "momentum_gd", "momentum": 0.5}, "sequence"),
    ({"method": "momentum_gd", "momentum": [0.5, math.nan]}, "momentum"),
    ({"method": "gd", "momentum": [0.5, 0.5]}, "only used by"),
    ({"method": "momentum_gd", "momentum": [0.5, 0.5], "mu": 1.0}, "mu == L"),
])
def test_bad_momentum(kwargs, match):
    with pytest.raises(ut.InvalidInputError, match=match):
        conv.worst_case([1.0, 1.0], **kwargs)


# ------------------------------------------------------------------------------ ADMM / Douglas-Rachford
def test_admm_one_step_is_above_the_explicit_quadratic_example():
    b = conv.worst_case([1.0], method="admm", metric="distance", mu=0.1)
    assert b.certified and b.checks["exact"]
    # f = (mu/2) x^2, g = 0: z_1 = z_0 / (1 + gamma mu)
    assert b.value >= (1 / 1.1) ** 2 * (1 - 1e-12)
    assert b.checks["quadratic_lower_bound"] <= b.value


@pytest.mark.parametrize("seed", range(4))
def test_admm_agrees_with_pepit_on_random_penalties(seed):
    """Per-step penalties rho_k = L / steps[k], UnfoldedADMM's recursion written in PEPit (u_0 = 0)."""
    rng = np.random.default_rng(300 + 2 * seed)
    N = int(rng.integers(1, 5))
    steps = rng.uniform(0.2, 3.0, N)
    metric = _pep.METRICS[seed % 2]
    mu = 0.1 if seed >= 2 else 0.0
    ours = conv.worst_case(steps, mu=mu, method="admm", metric=metric)
    assert ours.certified and ours.checks["exact"]
    a, bq = ours.checks["quadratic_curvature"], ours.checks["quadratic_curvature_g"]
    zN = float(_pep._admm_quadratic_zN(steps, np.array(a), np.array(bq)))
    explicit = zN ** 2 * ((a + bq) / 2 if metric == "objective" else 1.0)       # an explicit member
    assert ours.value >= explicit * (1 - 1e-9)
    pytest.importorskip("PEPit")
    ref = conv.pepit_worst_case(steps, mu, "admm", metric).value
    assert ours.value == pytest.approx(ref, rel=REL)


def test_admm_l_scaling_and_constant_penalty_monotone():
    steps = [0.7, 1.4, 2.0]
    a = wc(steps, method="admm")
    assert wc(steps, L=3.0, method="admm") == pytest.approx(3.0 * a, rel=1e-6)
    vals = [wc([1.0] * N, method="admm") for N in (1, 2, 4)]
    assert vals[0] > vals[1] > vals[2]


# ------------------------------------------------------------------------- momentum at longer horizons
def test_fista_at_twenty_five_steps_is_certified_on_the_chain():
    """N = 25 (the dense momentum PEP failed past N ~ 15): the chain relaxation (docs/theory/pep.md §4) is
    certified, above the explicit quadratic worst case and below Beck & Teboulle's bound."""
    N = 25
    b = conv.worst_case([1.0] * N, method="momentum_prox_grad", momentum=fista_momentum(N))
    assert b.certified and b.checks["form"] == "chain"
    low = conv.quadratic_lower_bound([1.0] * N, method="momentum_prox_grad", momentum=fista_momentum(N))
    assert b.value >= low.value
    t = [1.0]
    for _ in range(N):
        t.append((1 + math.sqrt(4 * t[-1] ** 2 + 1)) / 2)
    assert b.value <= 1.0 / (2 * t[N - 1] ** 2)                       # Beck & Teboulle Thm 4.4
    assert b.checks["exact"] and b.checks["max_violation"] <= b.checks["violation_tol"]


def test_momentum_chain_agrees_with_the_dense_pep_and_pepit():
    """At N = 10 the chain (default) and the plain dense PEP (strategy="full") agree; at N = 6 PEPit too."""
    for N in (10, 6):
        kw = {"method": "momentum_gd", "momentum": fista_momentum(N)}
        chain = conv.worst_case([1.0] * N, **kw)
        assert chain.certified and chain.checks["form"] == "chain"
        if N == 10:
            full = conv.worst_case([1.0] * N, strategy="full", **kw)
            assert full.certified and chain.value == pytest.approx(full.value, rel=REL)
        else:
            pytest.importorskip("PEPit")
            ref = conv.pepit_worst_case([1.0] * N, 0.0, "momentum_gd", "objective", momentum=kw["momentum"])
            assert chain.value == pytest.approx(ref.value, rel=REL)


def test_momentum_certificate_needs_no_a_priori_bound_on_the_values():
    """The momentum PEP's scaling is not an a-priori bound: the certificate raises the multipliers of the
    pairs with the optimum until E lam >= c holds exactly (values are >= 0 on the class)."""
    N = 20
    rng = np.random.default_rng(7)
    steps, betas = rng.uniform(0.7, 1.3, N), np.asarray(fista_momentum(N)) * rng.uniform(0.8, 1.1, N)
    model = _pep._build_momentum_model(steps, betas, 0.0, True, "objective")
    assert model.values_nonneg and np.all(model.apriori >= 0)
    pairs = model.local_pairs()
    res = _pep._solve_chain(model, pairs, ["CLARABEL"], [])
    dd = _pep._dual_data(model, pairs)
    lam = dd.dominate(dd.repair_flow(np.maximum(res.lam, 0.0))[0])
    assert np.all(dd.E @ lam - dd.c >= 0)
    cert = _pep._certify(dd, res.lam, res.tau, _pep._units(model, res.G))
    assert math.isfinite(cert.value) and cert.value == pytest.approx(res.value, rel=1e-6)
    b = conv.worst_case(steps, method="momentum_prox_grad", momentum=betas)
    assert b.certified and b.value >= conv.quadratic_lower_bound(
        steps, method="momentum_prox_grad", momentum=betas).value


@pytest.mark.slow
def test_fista_at_one_hundred_steps():
    N = 100
    b = conv.worst_case([1.0] * N, method="momentum_prox_grad", momentum=fista_momentum(N))
    assert b.certified and b.checks["form"] == "chain"
    low = conv.quadratic_lower_bound([1.0] * N, method="momentum_prox_grad", momentum=fista_momentum(N))
    t = [1.0]
    for _ in range(N):
        t.append((1 + math.sqrt(4 * t[-1] ** 2 + 1)) / 2)
    assert low.value <= b.value <= 1.0 / (2 * t[N - 1] ** 2)
