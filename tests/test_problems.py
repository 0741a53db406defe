"""Problems: objectives, proximal maps, certificates (gap, residual) and generators."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

import unfoldtheory as ut
from unfoldtheory.operators import singular_value_threshold, soft_threshold


def _ista_numpy(A, y, lam, iters):
    """Independent plain-numpy ISTA (step 1/L) used as a referee in these tests."""
    L = np.linalg.eigvalsh(A.T @ A).max()
    x = np.zeros(A.shape[1])
    for _ in range(iters):
        v = x - A.T @ (A @ x - y) / L
        x = np.sign(v) * np.maximum(np.abs(v) - lam / L, 0)
    return x


@pytest.fixture(scope="module")
def lasso_case():
    gen = ut.problems.SparseRecovery.gaussian(m=12, n=20, p=0.2, snr_db=25, seed=7)
    y = gen.sample(1, seed=8).y[0]
    prob = gen.lasso(0.05)
    x_star = _ista_numpy(prob.A, y, prob.lam, 30000)
    return prob, y, x_star


def test_objective_matches_formula_single_and_batch(rng):
    A = rng.normal(size=(4, 6))
    prob = ut.problems.Lasso(A, 0.3)
    X, Y = rng.normal(size=(3, 6)), rng.normal(size=(3, 4))
    expected = [0.5 * np.sum((A @ x - y) ** 2) + 0.3 * np.abs(x).sum() for x, y in zip(X, Y)]
    np.testing.assert_allclose(prob.objective(X, Y), expected, rtol=1e-14)
    assert prob.objective(X[1], Y[1]) == pytest.approx(expected[1], rel=1e-14)
    assert isinstance(prob.objective(X[1], Y[1]), float)
    # one x against a batch of y broadcasts
    np.testing.assert_allclose(prob.objective(X[0], Y)[0], expected[0], rtol=1e-14)


def test_smoothness_constant_is_largest_eigenvalue(rng):
    A = rng.normal(size=(7, 5))
    assert ut.problems.Lasso(A, 1.0).L == pytest.approx(np.linalg.eigvalsh(A.T @ A).max(), rel=1e-12)


@given(v=st.floats(-10, 10), t=st.floats(0, 3))
def test_soft_threshold_is_the_prox_of_l1(v, t):
    res = minimize_scalar(lambda z: 0.5 * (z - v) ** 2 + t * abs(z), bounds=(-11, 11), method="bounded",
                          options={"xatol": 1e-10})
    assert soft_threshold(np.array([v]), t)[0] == pytest.approx(res.x, abs=1e-6)


def test_prox_method_uses_step_times_lam():
    prob = ut.problems.Lasso(np.eye(3), lam=2.0)
    np.testing.assert_allclose(prob.prox(np.array([3.0, -0.5, -4.0]), 0.5), [2.0, 0.0, -3.0])


def test_gap_and_residual_vanish_at_the_optimum(lasso_case):
    prob, y, x_star = lasso_case
    assert prob.duality_gap(x_star, y, relative=True) < 1e-10
    assert prob.optimality_residual(x_star, y, relative=True) < 1e-8
    # and are clearly positive away from it
    assert prob.duality_gap(x_star + 0.1, y) > 1e-3
    assert prob.optimality_residual(x_star + 0.1, y) > 1e-3


def test_residual_of_zero_is_at_most_one_relative(lasso_case):
    prob, y, _ = lasso_case
    assert 0 < prob.optimality_residual(np.zeros(prob.n), y, relative=True) <= 1


@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-6, 1e-3, 0.1, 1.0, 10.0]))
def test_duality_gap_bounds_the_suboptimality(lasso_case, seed, scale):
    prob, y, x_star = lasso_case
    x = x_star + scale * np.random.default_rng(seed).normal(size=prob.n)
    # F(x_star) >= F*, so F(x) - F(x_star) <= F(x) - F* <= gap(x) must hold
    assert prob.objective(x, y) - prob.objective(x_star, y) <= prob.duality_gap(x, y)


def test_dual_point_is_feasible(lasso_case, rng):
    prob, y, _ = lasso_case
    for x in [np.zeros(prob.n), rng.normal(size=prob.n), 100 * rng.normal(size=prob.n)]:
        u = prob.dual_point(x, y)
        assert np.abs(prob.A.T @ u).max() <= prob.lam


def test_lasso_with_zero_lam_is_least_squares(rng):
    A = rng.normal(size=(8, 3))
    y = rng.normal(size=8)
    prob = ut.problems.Lasso(A, 0.0)
    x_ls = np.linalg.lstsq(A, y, rcond=None)[0]
    assert prob.optimality_residual(x_ls, y, relative=True) < 1e-12


# ---------------------------------------------------------------------------------------------- generators
def test_gaussian_dictionary_has_unit_columns_and_is_seeded():
    A = ut.problems.gaussian_dictionary(30, 50, seed=1)
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(A, ut.problems.gaussian_dictionary(30, 50, seed=1))
    assert not np.array_equal(A, ut.problems.gaussian_dictionary(30, 50, seed=2))


def test_sparse_sample_statistics():
    gen = ut.problems.SparseRecovery.gaussian(m=25, n=50, p=0.1, seed=0)
    s = gen.sample(4000, seed=1)
    support = s.x != 0
    assert abs(support.mean() - 0.1) < 0.005                     # Bernoulli(p) support
    assert abs(s.x[support].std() - 1.0) < 0.02                   # N(0, 1) nonzeros
    np.testing.assert_allclose(s.y, s.x @ gen.A.T)                # noiseless when snr_db is None
    np.testing.assert_array_equal(s.y, gen.sample(4000, seed=1).y)  # seeded


@pytest.mark.parametrize("snr_db", [10.0, 20.0, 40.0])
def test_noise_level_matches_snr(snr_db):
    gen = ut.problems.SparseRecovery.gaussian(m=40, n=80, p=0.2, snr_db=snr_db, seed=0)
    s = gen.sample(3000, seed=5)
    clean = s.y - s.noise
    measured = 10 * np.log10(np.sum(clean ** 2) / np.sum(s.noise ** 2))
    assert abs(measured - snr_db) < 0.2


# ---------------------------------------------------------------------------------------------- RPCA
def test_svt_is_the_prox_of_the_nuclear_norm(rng):
    X = rng.normal(size=(5, 4))
    P = singular_value_threshold(X, 0.7)
    f = lambda Z: 0.5 * np.sum((Z - X) ** 2) + 0.7 * np.linalg.svd(Z, compute_uv=False).sum()
    for _ in range(20):  # the prox minimises the strongly convex model: any perturbation increases it
        assert f(P) <= f(P + 1e-3 * rng.normal(size=P.shape)) + 1e-12


def test_rpca_generator_and_certificates():
    data = ut.problems.low_rank_plus_sparse(12, 10, rank=2, p=0.1, batch=3, seed=0)
    assert data.M.shape == (3, 12, 10)
    np.testing.assert_allclose(data.M, data.L + data.S)
    assert all(np.linalg.matrix_rank(L) == 2 for L in data.L)
    rpca = ut.problems.RPCA((12, 10))
    assert rpca.lam == pytest.approx(1 / np.sqrt(12))
    # gap of the truth against any dual point bounds its suboptimality, and the scaled dual is feasible
    Y = rpca.dual_feasible(np.sign(data.S[0]) * 5)
    assert np.linalg.norm(Y, 2) <= 1 + 1e-12 and np.abs(Y).max() <= rpca.lam * (1 + 1e-12)
    gap = rpca.duality_gap(data.L[0], data.M[0], Y)
    assert gap >= rpca.objective(data.L[0], data.S[0]) - np.sum(Y * data.M[0]) - 1e-9
    assert np.all(np.asarray(rpca.objective(data.L, data.S)) > 0)
