"""unfoldtheory.generalization: kl inverses, sample-convergence, PAC-Bayes and uniform bounds (issue 6)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import unfoldtheory as ut

G = ut.generalization
pytestmark = pytest.mark.usefixtures("single_torch_thread")

probs = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.5, 1e-12, 1 - 1e-12]),
                  st.floats(1e-300, 1e-3))
budgets = st.one_of(st.floats(0.0, 20.0), st.floats(1e-300, 1e-6), st.sampled_from([0.0, 1e-12, 0.01, 1.0]))


# ------------------------------------------------------------------------------------------------ kl inverse
def _mp_inverse(q: float, c: float, upper: bool):
    """50-digit reference by bisection in mpmath."""
    import mpmath

    if c == 0:
        return q
    q, c = mpmath.mpf(q), mpmath.mpf(c)

    def kl(p):
        if p <= 0 or p >= 1:
            return mpmath.inf if p != q else mpmath.mpf(0)
        t1 = 0 if q == 0 else q * mpmath.log(q / p)
        t2 = 0 if q == 1 else (1 - q) * (mpmath.log1p(-q) - mpmath.log1p(-p))
        return t1 + t2

    lo, hi = (q, mpmath.mpf(1)) if upper else (mpmath.mpf(0), q)
    for _ in range(125):
        mid = (lo + hi) / 2
        feasible = kl(mid) <= c
        if upper:
            lo, hi = (mid, hi) if feasible else (lo, mid)
        else:
            lo, hi = (lo, mid) if feasible else (mid, hi)
    return lo if upper else hi


@settings(max_examples=30)
@given(q=probs, c=budgets)
def test_kl_inverse_matches_50_digit_reference_on_the_safe_side(q, c):
    import mpmath

    mpmath.mp.dps = 50
    up, lo = G.kl_inverse(q, c), G.kl_inverse_lower(q, c)
    ref_up, ref_lo = _mp_inverse(q, c, True), _mp_inverse(q, c, False)
    assert up >= ref_up and abs(up - float(ref_up)) <= 1e-10
    assert lo <= ref_lo and abs(lo - float(ref_lo)) <= 1e-10
    assert 0.0 <= lo <= q <= up <= 1.0


@settings(max_examples=60)
@given(q=probs, c=budgets)
def test_kl_inverse_identities_and_pinsker(q, c):
    assert G.kl_inverse(q, 0.0) == q and G.kl_inverse_lower(q, 0.0) == q
    exact = -math.expm1(-c)
    v = G.kl_inverse(0.0, c)
    assert v >= exact and v - exact <= 4 * np.spacing(max(exact, 1e-300)) + 1e-300
    assert G.kl_inverse(q, c) <= min(1.0, q + math.sqrt(c / 2)) + 1e-12
    assert G.kl_inverse_lower(q, c) >= max(0.0, q - math.sqrt(c / 2)) - 1e-12
    assert G.kl_inverse(1.0, c) == 1.0


@settings(max_examples=30)
@given(q1=probs, q2=probs, c1=budgets, c2=budgets)
def test_kl_inverse_monotone(q1, q2, c1, c2):
    (q1, q2), (c1, c2) = sorted([q1, q2]), sorted([c1, c2])
    tol = 1e-10  # both values are within 1e-10 above the exact ones
    assert G.kl_inverse(q1, c1) <= G.kl_inverse(q2, c1) + tol
    assert G.kl_inverse(q1, c1) <= G.kl_inverse(q1, c2) + tol
    assert G.kl_inverse_lower(q1, c1) <= G.kl_inverse_lower(q2, c1) + tol
    assert G.kl_inverse_lower(q1, c2) <= G.kl_inverse_lower(q1, c1) + tol


def test_kl_inverse_vectorised_and_known_value():
    q = np.array([[0.0, 0.1], [0.5, 1.0]])
    out = G.kl_inverse(q, 0.01)
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx(0.0099501663, abs=1e-10)  # docs/theory/generalization.md §2
    assert np.all(out >= q)
    for (i, j), v in np.ndenumerate(out):
        assert v == G.kl_inverse(float(q[i, j]), 0.01)
    inner = out < 1  # there the supremum is attained with kl(q || p) = c; the safe side has kl >= c
    assert np.all(G.kl_divergence(q, out)[inner] >= 0.01)


@pytest.mark.parametrize("q, c, word", [(-0.1, 0.1, "q"), (1.5, 0.1, "q"), (float("nan"), 0.1, "q"),
                                        (0.2, -1.0, "c"), (0.2, float("nan"), "c")])
def test_kl_inverse_bad_input(q, c, word):
    for f in (G.kl_inverse, G.kl_inverse_lower):
        with pytest.raises(ut.InvalidInputError, match=rf"\b{word}\b"):
            f(q, c)


# ------------------------------------------------------------------------------------------- sample bounds
def _binomial_ok(failures: int, trials: int, rate: float) -> bool:
    """Failures are compatible with a failure probability of at most ``rate`` (one-sided, level 1e-3)."""
    return stats.binom.sf(failures - 1, trials, rate) > 1e-3


def test_risk_bound_failure_rate_on_bernoulli_data():
    rng = np.random.default_rng(0)
    R, N, delta = 4000, 60, 0.2
    for r in (0.05, 0.3):
        failed = rng.random((N, R)) < r  # R independent data sets, one per column
        res = G.risk_bound(failed.astype(float), 0.5, delta=delta, simultaneous=False)
        up_fail = int(np.sum(res.risk_upper < r))
        both_fail = int(np.sum((res.risk_upper < r) | (res.risk_lower > r)))
        assert _binomial_ok(both_fail, R, delta), (r, both_fail)
        # the empirical risk itself is not a bound: the test has the power to reject it
        assert not _binomial_ok(int(np.sum(res.empirical_risk < r)), R, delta)
        assert up_fail <= both_fail


def test_sample_convergence_bound_soundness_for_a_fixed_model():
    gen = ut.problems.SparseRecovery.gaussian(m=10, n=20, p=0.15, snr_db=30, seed=5)
    net = ut.models.ISTA(gen.A, lam=0.05, num_layers=6, dtype=torch.float64, device="cpu")
    truth = G.layer_metrics(net, gen.sample(50_000, seed=1))
    eps = float(np.quantile(truth[:, -1], 0.4))  # fixed before the repetitions' data are drawn
    true_risk = np.mean(truth > eps, axis=0)
    assert 0.5 < true_risk[-1] < 0.7 and np.all(true_risk < 1)  # a non-trivial setting
    reps, N, delta = 250, 80, 0.2
    vals = G.layer_metrics(net, gen.sample(reps * N, seed=2)).reshape(reps, N, -1)
    K = vals.shape[-1]
    joint = G.risk_bound(vals[0], eps, delta=delta, simultaneous=True)
    # all repetitions at once: columns are (repetition, layer) pairs, each at delta/K as the joint bound uses
    flat = G.risk_bound(vals.transpose(1, 0, 2).reshape(N, reps * K), eps, delta=delta / K, simultaneous=False)
    np.testing.assert_array_equal(flat.risk_upper[:K], joint.risk_upper)
    up, lo = flat.risk_upper.reshape(reps, K), flat.risk_lower.reshape(reps, K)
    failures = int(np.sum(np.any((up < true_risk) | (lo > true_risk), axis=1)))
    assert _binomial_ok(failures, reps, delta), failures


def test_sample_convergence_result_and_metrics(small_problem):
    gen, prob, _ = small_problem
    net = ut.models.ISTA(gen.A, lam=prob.lam, num_layers=40, dtype=torch.float64, device="cpu")
    data = gen.sample(300, seed=9)
    for metric, eps in [("nmse_db", -10.0), ("distance", 0.05), ("objective_gap", 1e-3),
                        ("fixed_point_residual", 1e-2), ("nmse", 0.1)]:
        res = G.sample_convergence_bound(net, data, eps, metric=metric, problem=prob, delta=0.1)
        assert res.N == 300 and res.num_layers == 40
        assert np.all(res.risk_lower <= res.empirical_risk) and np.all(res.empirical_risk <= res.risk_upper)
        if metric != "nmse_db":  # ISTA converges to the LASSO optimum: the last layer is better than the first
            assert res.empirical_risk[-1] <= res.empirical_risk[0]
    b = res.bound
    assert b.side == "upper" and b.certified and b.checks["confidence"] == pytest.approx(0.9)
    assert b.confidence == pytest.approx(0.9) and res.layer_bound(-1) == b and res.bounds[-1] == b
    assert "probability" in b.status and "layer  40" in repr(res)
    d = res.to_dict()
    assert len(d["risk_upper"]) == 40 and d["delta_per_layer"] == pytest.approx(0.1 / 40)


def test_sample_bound_bad_input():
    with pytest.raises(ut.InvalidInputError, match="N = 0"):
        G.risk_bound(np.zeros((0, 3)), 0.0)
    with pytest.raises(ut.InvalidInputError, match="NaN/Inf"):
        G.risk_bound(np.array([0.0, np.nan]), 0.0)
    for bad in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ut.InvalidInputError, match="delta"):
            G.risk_bound(np.zeros(5), 0.0, delta=bad)
    with pytest.raises(ut.InvalidInputError, match="problem"):
        G.layer_metrics(ut.models.ISTA(np.eye(3), 2, lam=0.1), np.ones((4, 3)), metric="distance")


# ------------------------------------------------------------------------------------------------ PAC-Bayes
def test_gaussian_kl_and_penalty_formulas():
    rng = np.random.default_rng(1)
    mu, mu0, s, lam = rng.normal(size=7), rng.normal(size=7), rng.random(7) + 0.1, 0.3
    d = 7
    theory = 0.5 * (np.sum((mu - mu0) ** 2) / lam - d + np.sum(s) / lam + d * np.log(lam) - np.sum(np.log(s)))
    assert G.gaussian_kl(mu, s, mu0, lam) == pytest.approx(theory, rel=1e-12)
    assert G.gaussian_kl(mu0, np.full(7, lam), mu0, lam) == 0.0
    assert G.gaussian_kl(mu, s, mu0, lam) > 0
    grid = G.PriorGrid(c=2.0, b=5.0)
    j = 7
    lam_j = grid.variance(j)
    assert grid.index(lam_j) == pytest.approx(j)
    pen = G.pac_bayes_penalty(1.5, 1000, 0.05, grid.index(lam_j))
    assert pen == pytest.approx((1.5 + np.log(np.pi ** 2 * 1000 / (6 * 0.05)) + 2 * np.log(5.0 * np.log(2.0 / lam_j)))
                                / 1000)


def test_pac_bayes_bad_input():
    with pytest.raises(ut.InvalidInputError, match="variance"):
        G.gaussian_kl(np.zeros(3), np.array([1.0, 0.0, 1.0]), np.zeros(3), 1.0)
    with pytest.raises(ut.InvalidInputError, match="prior_var"):
        G.gaussian_kl(np.zeros(3), 1.0, np.zeros(3), -1.0)
    net = ut.models.ALISTA(ut.problems.sparse.gaussian_dictionary(3, 4, 0), num_layers=2, dtype=torch.float64,
                           device="cpu")
    with pytest.raises(ut.InvalidInputError, match="variance"):
        G.GaussianPosterior.around(net, -1e-3)
    with pytest.raises(ut.InvalidInputError, match="N"):
        G.pac_bayes_penalty(1.0, 4, 0.1, 1.0)
    post = G.GaussianPosterior.around(net, 1e-4)
    data = (np.ones((20, 3)), np.ones((20, 4)))
    with pytest.raises(ut.InvalidInputError, match="delta"):
        G.pac_bayes_bound(net, post, net, data, -10.0, delta=0.0)
    with pytest.raises(ut.InvalidInputError, match="N >= 8"):
        G.pac_bayes_bound(net, post, net, (np.ones((5, 3)), np.ones((5, 4))), -10.0)
    with pytest.raises(ut.InvalidInputError, match="no trainable parameter"):
        G.GaussianPosterior.around(ut.models.ISTA(np.eye(3), 2, lam=0.1), 1e-3)


def test_pac_bayes_soundness_over_repetitions():
    """Data-dependent posterior (the best of two variances per data set); true Gibbs risks from 40k draws."""
    gen = ut.problems.SparseRecovery.gaussian(m=8, n=16, p=0.15, snr_db=30, seed=11)
    init = ut.models.ALISTA(gen.A, num_layers=3, gamma0=1.0, theta0=0.05, dtype=torch.float64, device="cpu")
    net = copy.deepcopy(init)
    with torch.no_grad():  # a fixed "trained" mean (chosen without the bound data)
        net.gamma.copy_(torch.tensor([0.9, 1.0, 1.1], dtype=torch.float64))
        net.theta.copy_(torch.tensor([0.15, 0.08, 0.03], dtype=torch.float64))
    eps = -8.0
    posts = [G.GaussianPosterior.around(net, v) for v in (1e-3, 3e-2)]
    big = gen.sample(40_000, seed=3)
    true = [float(np.mean(G._pacbayes.gibbs_failures(net, p, big, eps, num_samples=1, seed=4))) for p in posts]
    assert all(0.05 < t < 0.95 for t in true)
    reps, N, delta = 40, 64, 0.1
    pool = gen.sample(reps * N, seed=5)
    failures = 0
    for r in range(reps):
        data = (pool.y[r * N:(r + 1) * N], pool.x[r * N:(r + 1) * N])
        results = [G.pac_bayes_bound(net, p, init, data, eps, delta=delta, delta_sample=delta, num_samples=2,
                                     seed=r) for p in posts]
        best = int(np.argmin([res.risk_upper for res in results]))
        failures += results[best].risk_upper < true[best]
    assert _binomial_ok(failures, reps, 2 * delta), failures


def test_pac_bayes_guarantee_is_non_vacuous_for_trained_alista():
    gen = ut.problems.SparseRecovery.gaussian(m=32, n=64, p=0.1, snr_db=30, seed=0)
    net = ut.models.ALISTA(gen.A, num_layers=10, gamma0=1.0, theta0=0.1, dtype=torch.float64, device="cpu")
    ut.training.train(net, gen, epochs=3, steps_per_epoch=100, batch_size=128, lr=1e-2, progress=False, seed=0,
                      val_size=256)
    eps = -10.0
    bound_data, test = gen.sample(4000, seed=12345), gen.sample(4000, seed=999)
    out = G.train_pac_bayes(net, bound_data, eps, steps=200, test_data=test, seed=0)
    res = out.result
    assert res.d == 20 and not res.vacuous
    assert res.empirical_gibbs_risk <= res.sample_bound <= res.risk_upper
    assert res.test_fraction_solved > 0.85  # the trained model solves most instances at -10 dB
    # certified <= measured (up to the test set's sampling error), and within 10 points of it
    assert res.certified_fraction_solved <= res.test_fraction_solved + 0.02
    assert res.test_fraction_solved - res.certified_fraction_solved <= 0.10, res
    b = res.bound
    assert b.side == "upper" and b.certified and b.checks["confidence"] == pytest.approx(0.95)
    assert out.history[-1]["objective"] <= out.history[0]["objective"] + 1e-3


# ------------------------------------------------------------------------------------------------- uniform
@pytest.fixture(scope="module")
def dictionary():
    return ut.problems.SparseRecovery.gaussian(m=12, n=24, p=0.1, snr_db=30, seed=2)


@pytest.mark.parametrize("kind", ["ALISTA", "LISTACP", "LISTA", "ISTA", "LearnedStepISTA"])
def test_uniform_bound_sympy_matches_numeric(dictionary, kind):
    A = dictionary.A
    kw = {"dtype": torch.float64, "device": "cpu"}
    model = {"ALISTA": lambda: ut.models.ALISTA(A, num_layers=5, **kw),
             "LISTACP": lambda: ut.models.LISTACP(A, num_layers=5, **kw),
             "LISTA": lambda: ut.models.LISTA(A, num_layers=5, **kw),
             "ISTA": lambda: ut.models.ISTA(A, 5, lam=0.1, **kw),
             "LearnedStepISTA": lambda: ut.models.LearnedStepISTA(A, num_layers=5, **kw)}[kind]()
    res = G.uniform_bound(model, 500, y_norm=4.0, loss_scale=2.0, empirical_risk=0.1)
    assert res.at() == pytest.approx(res.closed_form_value, rel=1e-9)
    assert res.value <= res.closed_form_value * (1 + 1e-12)
    assert res.value >= res.empirical_risk + res.confidence_term
    assert res.vacuous == (res.value >= 1.0)
    if res.vacuous:
        assert "loss" in res.reason and "VACUOUS" in repr(res)
    assert res.bound.side == "upper" and res.bound.confidence is not None


def test_uniform_bound_depth_scaling(dictionary):
    A = dictionary.A
    fixed = {"radius": 8.0, "W1_norm": 4.0, "W2_norm": 1.5, "y_norm": 4.0, "loss_scale": 2.0}
    depths, gaps = [2, 4, 8, 16], []
    ref = None
    for K in depths:
        model = ut.models.ALISTA(A, num_layers=K, gamma0=0.9, theta0=0.05, dtype=torch.float64, device="cpu")
        res = G.uniform_bound(model, 10 ** 6, **fixed)
        ref = ref or res
        # the explicit K dependence of the sympy form reproduces the numeric value of the deeper model
        assert ref.at(K=K) == pytest.approx(res.closed_form_value, rel=1e-9)
        assert res.d == 2 * K
        gaps.append(res.gap_bound)
    gaps = np.array(gaps)
    assert np.all(np.diff(gaps) > 0)  # deeper: larger class, larger bound
    # sqrt(d log(L_P)) growth: doubling K at most about doubles the complexity (omega > 1 makes log L_P ~ K)
    assert np.all(gaps[1:] / gaps[:-1] < 2.2)
    # more samples: a smaller bound; the ISTA class (d = 0) is non-vacuous
    m1 = ut.models.ALISTA(A, num_layers=4, gamma0=0.9, dtype=torch.float64, device="cpu")
    assert G.uniform_bound(m1, 10 ** 3, **fixed).gap_bound > G.uniform_bound(m1, 10 ** 5, **fixed).gap_bound
    ista = G.uniform_bound(ut.models.ISTA(A, 4, lam=0.1, dtype=torch.float64, device="cpu"), 10 ** 4, y_norm=4.0)
    assert not ista.vacuous and ista.rademacher == 0.0


def test_uniform_bound_refusals(dictionary):
    A = dictionary.A
    with pytest.raises(ut.NotRepresentableError, match="Lipschitz"):
        G.uniform_bound(ut.models.TiLISTA(A, num_layers=3), 100, y_norm=1.0)
    m = ut.models.ALISTA(A, num_layers=3, dtype=torch.float64, device="cpu")
    with pytest.raises(ut.InvalidInputError, match="radius"):
        G.uniform_bound(m, 100, y_norm=1.0, radius=1e-6)
    with pytest.raises(ut.InvalidInputError, match="delta"):
        G.uniform_bound(m, 100, y_norm=1.0, delta=1.5)


# ----------------------------------------------------------------------------------------- empirical + plot
def test_generalization_gap_and_plot(dictionary, tmp_path):
    A = dictionary.A

    def factory():
        return ut.models.ALISTA(A, num_layers=3, dtype=torch.float64, device="cpu")

    pts = G.generalization_gap(factory, dictionary, [16, 64], -5.0, y_norm=5.0, loss_scale=1.5, test_size=500,
                               train_kwargs={"epochs": 1, "steps_per_epoch": 20}, pac_bayes=True,
                               pac_bayes_kwargs={"steps": 20, "num_samples": 2})
    assert [p.samples for p in pts] == [16, 64]
    for p in pts:
        assert 0 <= p.train_loss <= 1 and 0 <= p.test_loss <= 1
        assert p.uniform_gap_bound > 0 and p.pac_bayes_risk_upper >= p.pac_bayes_gibbs_train_risk
        assert p.to_dict()["loss_gap"] == pytest.approx(p.test_loss - p.train_loss)
    import matplotlib

    matplotlib.use("Agg")
    ax = G.plot_generalization(pts)
    ax.figure.savefig(tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
