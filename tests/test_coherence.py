"""Coherence, generalized coherence (ALISTA Def. 1) and the analytic weight (ALISTA stage 1)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
import unfoldtheory.convergence  # noqa: F401  (ut.convergence)
from unfoldtheory import coherence as coh


def unit_columns(m: int, n: int, seed: int) -> np.ndarray:
    A = np.random.default_rng(seed).standard_normal((m, n))
    return A / np.linalg.norm(A, axis=0)


def frobenius_reference(A: np.ndarray) -> np.ndarray:
    """The stage-1 QP solved by cvxpy: min ||W^T A||_F^2 s.t. diag(W^T A) = 1."""
    cp = pytest.importorskip("cvxpy")
    m, n = A.shape
    W = cp.Variable((m, n))
    prob = cp.Problem(cp.Minimize(cp.sum_squares(A.T @ W)), [cp.sum(cp.multiply(W, A), axis=0) == 1])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-13, tol_gap_rel=1e-13, tol_feas=1e-13, tol_ktratio=1e-10)
    assert prob.status == "optimal"
    return W.value


def minimax_reference(A: np.ndarray) -> float:
    """Definition 1 as one joint LP in cvxpy (independent of the per-column scheme)."""
    cp = pytest.importorskip("cvxpy")
    m, n = A.shape
    W = cp.Variable((m, n))
    t = cp.Variable()
    M = W.T @ A
    off = np.ones((n, n)) - np.eye(n)
    prob = cp.Problem(cp.Minimize(t), [cp.abs(cp.multiply(off, M)) <= t, cp.diag(M) == 1])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return float(prob.value)


# ------------------------------------------------------------------------------------------ analytic
@pytest.mark.parametrize("m,n,seed", [(5, 10, 0), (10, 20, 1), (12, 13, 2), (8, 8, 3)])
def test_analytic_weight_equals_cvxpy_frobenius_solution(m, n, seed):
    A = unit_columns(m, n, seed)
    W = ut.convergence.analytic_weight(A)
    Wref = frobenius_reference(A)
    assert np.linalg.norm(W - Wref) <= 1e-8 * np.linalg.norm(Wref)


def test_analytic_weight_matches_per_column_formula():
    A = unit_columns(6, 15, 7)
    Ginv = np.linalg.inv(A @ A.T)
    for i in range(A.shape[1]):
        w = Ginv @ A[:, i] / (A[:, i] @ Ginv @ A[:, i])
        np.testing.assert_allclose(coh.analytic_weight(A)[:, i], w, rtol=1e-10, atol=1e-12)


@settings(deadline=None, max_examples=30)
@given(m=st.integers(2, 12), extra=st.integers(0, 12), seed=st.integers(0, 2**31 - 1))
def test_analytic_weight_properties(m, extra, seed):
    A = unit_columns(m, m + extra + 1, seed)
    W = coh.analytic_weight(A)
    np.testing.assert_allclose(np.diag(W.T @ A), 1.0, atol=1e-10)
    # W = A is feasible (unit columns), so the Frobenius off-diagonal can only decrease.
    assert coh.offdiag_frobenius(W, A) <= coh.offdiag_frobenius(A, A) * (1 + 1e-10) + 1e-12
    # Optimality: any feasible perturbation (keeping diag(W^T A) = 1) does not decrease ||W^T A||_F.
    rng = np.random.default_rng(seed)
    D = rng.standard_normal(W.shape)
    D -= A * np.sum(D * A, axis=0)      # now a_i^T d_i = 0 (unit columns)
    assert np.linalg.norm((W + 1e-3 * D).T @ A) >= np.linalg.norm(W.T @ A) - 1e-12


def test_analytic_weight_max_coherence_may_increase():
    """docs/theory/lista_alista.md §2: the Frobenius surrogate does not guarantee a smaller *maximum* coherence.

    The search finds a counterexample; the point is that no test may assert the max decrease."""
    found = False
    for seed in range(40):
        A = unit_columns(8, 16, seed)
        if coh.offdiag_max(coh.analytic_weight(A), A) > coh.mutual_coherence(A):
            found = True
            break
    assert found


# ---------------------------------------------------------------------------------- generalized
@pytest.mark.parametrize("m,n,seed", [(4, 8, 0), (6, 12, 1), (8, 16, 2), (10, 15, 3)])
def test_generalized_coherence_is_the_minimax_optimum(m, n, seed):
    A = unit_columns(m, n, seed)
    W, mu_t = ut.convergence.generalized_coherence(A)
    assert mu_t == pytest.approx(minimax_reference(A), rel=1e-6)
    assert mu_t == coh.offdiag_max(W, A)                      # recomputed from W, not the solver's value
    np.testing.assert_allclose(np.diag(W.T @ A), 1.0, atol=1e-12)


@settings(deadline=None, max_examples=10)
@given(m=st.integers(3, 9), extra=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_generalized_coherence_below_mutual_and_analytic(m, extra, seed):
    A = unit_columns(m, m + extra, seed)
    W, mu_t = coh.generalized_coherence(A)
    assert mu_t <= coh.mutual_coherence(A) + 1e-8                  # W = A is feasible
    assert mu_t <= coh.offdiag_max(coh.analytic_weight(A), A) + 1e-8  # the analytic weight is feasible
    assert mu_t >= 0


def test_generalized_coherence_invariances():
    """Rotating the measurements (A -> QA) or flipping column signs leaves mu_tilde unchanged."""
    A = unit_columns(6, 14, 11)
    _, mu = coh.generalized_coherence(A)
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    _, mu_rot = coh.generalized_coherence(Q @ A)
    signs = np.where(np.arange(14) % 3 == 0, -1.0, 1.0)
    _, mu_sign = coh.generalized_coherence(A * signs)
    perm = np.random.default_rng(1).permutation(14)
    W_perm, mu_perm = coh.generalized_coherence(A[:, perm])
    assert mu_rot == pytest.approx(mu, rel=1e-6)
    assert mu_sign == pytest.approx(mu, rel=1e-6)
    assert mu_perm == pytest.approx(mu, rel=1e-6)


def test_orthonormal_dictionary_has_zero_coherence():
    Q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((5, 5)))
    W, mu = coh.generalized_coherence(Q)
    assert mu <= 1e-9
    np.testing.assert_allclose(coh.analytic_weight(Q), Q, atol=1e-12)
    assert coh.mutual_coherence(Q) <= 1e-12


def test_mutual_coherence_known_value():
    A = np.array([[1.0, 0.0, np.sqrt(0.5)], [0.0, 1.0, np.sqrt(0.5)]])
    assert coh.mutual_coherence(A) == pytest.approx(np.sqrt(0.5), rel=1e-14)
    assert coh.mutual_coherence(3 * A) == pytest.approx(np.sqrt(0.5), rel=1e-14)   # scale free


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("fn", [coh.analytic_weight, coh.mutual_coherence, coh.generalized_coherence])
def test_bad_dictionaries_are_rejected(fn):
    with pytest.raises(ut.InvalidInputError, match="A"):
        fn(np.ones(3))
    with pytest.raises(ut.InvalidInputError, match="NaN"):
        fn(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ut.InvalidInputError, match="at least 2 columns"):
        fn(np.ones((2, 1)))
    with pytest.raises(ut.InvalidInputError, match="zero column"):
        fn(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))


def test_analytic_weight_needs_full_row_rank():
    A = unit_columns(3, 6, 0)
    A[2] = A[0] + A[1]
    with pytest.raises(ut.InvalidInputError, match="full row rank"):
        coh.analytic_weight(A)
    with pytest.raises(ut.InvalidInputError, match="full row rank"):
        coh.analytic_weight(unit_columns(6, 3, 0))


def test_non_unit_columns_warn_in_generalized_coherence():
    A = unit_columns(4, 8, 5) * 2.0
    with pytest.warns(UserWarning, match="unit-norm"):
        coh.generalized_coherence(A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coh.generalized_coherence(A / 2.0)


def test_bad_solver_is_rejected():
    with pytest.raises(ut.InvalidInputError, match="solver"):
        coh.generalized_coherence(unit_columns(3, 6, 0), solver="NOT_A_SOLVER")


# ------------------------------------------------------- long-step simplex (docs/theory/lista_alista.md §4)
@pytest.mark.parametrize("m,n,seed", [(6, 12, 0), (12, 30, 1), (25, 50, 2), (40, 80, 3)])
def test_simplex_agrees_with_one_lp_per_column(m, n, seed):
    """Per-column optimal values (W itself need not be unique) and mu agree with the per-column HiGHS LP to
    1e-9; every column is certified by the simplex, with a dual lower bound that no feasible column beats."""
    A = unit_columns(m, n, seed)
    new = coh.generalized_coherence_certificate(A)
    ref = coh.generalized_coherence_certificate(A, method="lp")
    assert new.column_method == ["simplex"] * n and new.iterations > 0
    assert abs(new.mu - ref.mu) <= 1e-9
    np.testing.assert_allclose(new.column_upper, ref.column_upper, rtol=0, atol=1e-9)
    # Bracket: lower <= optimum <= upper, within 1e-10 relative; the LP's feasible W cannot go below it.
    assert np.all(new.column_lower <= new.column_upper)
    assert np.all(new.column_upper <= new.column_lower * (1 + 1e-10))
    assert np.all(ref.column_upper >= new.column_lower * (1 - 1e-12))
    assert new.lower <= new.mu <= new.lower * (1 + 1e-10)
    np.testing.assert_allclose(np.diag(new.W.T @ A), 1.0, rtol=0, atol=1e-13)
    assert new.mu == coh.offdiag_max(new.W, A)
    assert np.isnan(ref.column_lower).all() and np.isnan(ref.lower)


def test_simplex_column_values_match_cvxpy_per_column_lp():
    """An independent solver: the primal LP of each column (min t, |w^T a_j| <= t, w^T a_i = 1) in cvxpy."""
    cp = pytest.importorskip("cvxpy")
    A = unit_columns(7, 15, 4)
    cert = coh.generalized_coherence_certificate(A)
    for i in range(A.shape[1]):
        w, t = cp.Variable(7), cp.Variable()
        B = np.delete(A, i, axis=1)
        prob = cp.Problem(cp.Minimize(t), [cp.abs(B.T @ w) <= t, A[:, i] @ w == 1])
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        assert prob.status == "optimal"
        assert cert.column_upper[i] == pytest.approx(prob.value, rel=1e-7)
        assert cert.column_lower[i] <= prob.value * (1 + 1e-7)


def test_simplex_dual_bound_is_below_every_feasible_weight():
    """The certified lower bound of each column is below the value of any feasible weight (random ones, the
    analytic weight, W = A), and the simplex's own value is at or below all of them."""
    A = unit_columns(10, 24, 5)
    cert = coh.generalized_coherence_certificate(A)
    rng = np.random.default_rng(0)
    cands = [coh.analytic_weight(A), A] + [rng.standard_normal(A.shape) for _ in range(20)]
    for Wc in cands:
        Wc = Wc / np.sum(Wc * A, axis=0)             # w_i^T a_i = 1
        M = Wc.T @ A
        np.fill_diagonal(M, 0.0)
        vals = np.max(np.abs(M), axis=1)
        assert np.all(vals >= cert.column_lower * (1 - 1e-12))
        assert np.all(vals >= cert.column_upper * (1 - 1e-10))


def test_columns_the_simplex_does_not_certify_go_to_the_lp(monkeypatch):
    """A column where the simplex gives up is solved by the LP path and says so (no lower bound)."""
    from unfoldtheory import _bp_simplex

    A = unit_columns(8, 16, 6)
    real = _bp_simplex.bp_simplex
    monkeypatch.setattr(_bp_simplex, "bp_simplex",
                        lambda A_, At, i, S0, max_iter: None if i in (3, 11) else real(A_, At, i, S0, max_iter))
    cert = coh.generalized_coherence_certificate(A)
    ref = coh.generalized_coherence_certificate(A, method="lp")
    assert [k for k, s in enumerate(cert.column_method) if s != "simplex"] == [3, 11]
    assert cert.column_method[3].startswith("HIGHS")
    assert np.isnan(cert.column_lower[[3, 11]]).all() and np.isfinite(np.delete(cert.column_lower, [3, 11])).all()
    np.testing.assert_allclose(cert.column_upper, ref.column_upper, rtol=0, atol=1e-9)


def test_simplex_on_degenerate_dictionaries():
    """Repeated atoms (column value exactly 1, a degenerate LP) and a rank-deficient A (no nonsingular basis:
    every column goes to the LP path) give the per-column LP's values."""
    A = unit_columns(5, 12, 7)
    A[:, 4] = A[:, 9]
    cert = coh.generalized_coherence_certificate(A)
    ref = coh.generalized_coherence_certificate(A, method="lp")
    assert cert.mu == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(cert.column_upper, ref.column_upper, rtol=0, atol=1e-9)
    B = unit_columns(5, 12, 8)
    B[4] = B[0] - B[1]
    B /= np.linalg.norm(B, axis=0)
    cert = coh.generalized_coherence_certificate(B)
    ref = coh.generalized_coherence_certificate(B, method="lp")
    assert all(s != "simplex" for s in cert.column_method)
    np.testing.assert_allclose(cert.column_upper, ref.column_upper, rtol=0, atol=1e-9)


def test_bad_method_is_rejected():
    with pytest.raises(ut.InvalidInputError, match="method"):
        coh.generalized_coherence(unit_columns(3, 6, 0), method="fast")


def test_simplex_refactorization_path_gives_the_same_column():
    """Forcing a recomputed inverse at every pivot (drift tolerance 0) changes nothing but the work."""
    from unfoldtheory._bp_simplex import bp_simplex

    A = unit_columns(15, 32, 9)
    At = np.ascontiguousarray(A.T)
    scores = np.abs(coh.analytic_weight(A).T @ A)
    for i in (0, 7, 31):
        row = scores[i].copy()
        row[i] = -np.inf
        S0 = np.argpartition(-row, 14)[:15]
        fast = bp_simplex(A, At, i, S0, 1000)
        slow = bp_simplex(A, At, i, S0, 1000, check_every=1, drift_tol=0.0)
        assert fast is not None and slow is not None and fast.iterations > 0
        assert slow.upper == pytest.approx(fast.upper, rel=1e-12)
        assert slow.lower <= fast.upper * (1 + 1e-12) and fast.lower <= slow.upper * (1 + 1e-12)


@pytest.mark.parametrize("eps", [1e-6, 1e-12])
def test_simplex_on_ill_conditioned_dictionaries(eps):
    """Two nearly equal rows (A A^T of condition about 1/eps^2): no warning escapes (RuntimeWarnings from the
    library are errors in this suite), columns the simplex cannot certify go to the LP, values agree."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 14))
    A[5] = A[4] + eps * rng.standard_normal(14)
    A /= np.linalg.norm(A, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cert = coh.generalized_coherence_certificate(A)
    ref = coh.generalized_coherence_certificate(A, method="lp")
    np.testing.assert_allclose(cert.column_upper, ref.column_upper, rtol=0, atol=1e-9)
    done = np.array([s == "simplex" for s in cert.column_method])
    # 1e-10 at the verification; the values recomputed from W (entries up to about 1e6 here) add rounding.
    assert np.all(cert.column_upper[done] <= cert.column_lower[done] * (1 + 1e-9))
