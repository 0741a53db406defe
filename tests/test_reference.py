"""Reference optima: certificates, KKT conditions, agreement of the two LASSO paths, failure paths, RPCA."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
from unfoldtheory.errors import SolverAttempt
from unfoldtheory.reference import InaccurateSolutionWarning, _lasso

# (m, n): underdetermined, square-ish, overdetermined (40 x 30) and a larger one
SHAPES = [(5, 10), (20, 50), (40, 30), (60, 120)]
LAMS = [0.03, 0.3]
BATCH = 4


def _instances(m: int, n: int, lam: float):
    gen = ut.problems.SparseRecovery.gaussian(m=m, n=n, p=0.2, snr_db=30, seed=m * 1000 + n)
    return gen.lasso(lam), gen.sample(BATCH, seed=7).y


@pytest.fixture(scope="module")
def solved():
    """Both methods on every (shape, lam), computed once for the module."""
    out = {}
    for m, n in SHAPES:
        for lam in LAMS:
            prob, y = _instances(m, n, lam)
            out[m, n, lam] = (prob, y, {meth: ut.reference.solve(prob, y, method=meth)
                                         for meth in ("fast", "cvxpy")})
    return out


def _check_kkt(prob, y, x, rtol=1e-6):
    """The optimality conditions of the LASSO, directly: g = A^T(Ax - y)."""
    g = prob.gradient(x, y)
    scale = max(prob.lam, np.abs(y @ prob.A).max())
    on = x != 0
    assert np.all(np.abs(g[~on]) <= prob.lam * (1 + rtol)), "a zero coordinate violates |g_j| <= lam"
    assert np.all(np.abs(g[on] + prob.lam * np.sign(x[on])) <= rtol * scale), "g_i != -lam sign(x_i)"


# ------------------------------------------------------------------------------------------------ LASSO
@pytest.mark.parametrize("method", ["fast", "cvxpy"])
@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
def test_lasso_certified_and_kkt(solved, shape, lam, method):
    prob, y, sols = solved[(*shape, lam)]
    sol = sols[method]
    assert sol.x.shape == (BATCH, prob.n) and sol.method == method
    assert np.all(sol.status == "optimal") and np.all(sol.certified)
    assert np.all(sol.relative_gap <= 1e-8)
    assert np.all(sol.residual <= 1e-6)
    # the reported numbers are the library's own certificate, recomputed here
    np.testing.assert_array_equal(sol.gap, prob.duality_gap(sol.x, y))
    np.testing.assert_array_equal(sol.relative_gap, prob.duality_gap(sol.x, y, relative=True))
    np.testing.assert_array_equal(sol.objective, prob.objective(sol.x, y))
    for xi, yi in zip(sol.x, y):
        _check_kkt(prob, yi, xi)
    expected = "fast" if method == "fast" else "cvxpy:CLARABEL"
    assert np.all(sol.solver == expected)


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
def test_fast_agrees_with_cvxpy(solved, shape, lam):
    _, _, sols = solved[(*shape, lam)]
    xf, xc = sols["fast"].x, sols["cvxpy"].x
    diff = np.linalg.norm(xf - xc, axis=1) / np.maximum(np.linalg.norm(xc, axis=1), 1e-300)
    assert np.all(diff <= 1e-6)
    # the polish recovers the exact zero pattern of the optimum in both paths
    np.testing.assert_array_equal(xf != 0, xc != 0)


@pytest.mark.parametrize("method", ["fast", "cvxpy"])
def test_single_instance_gives_scalars(method):
    prob, y = _instances(20, 50, 0.1)
    sol = ut.reference.solve(prob, y[0], method=method)
    assert sol.x.shape == (50,) and sol.single and sol.batch_size == 1
    for name in ("objective", "gap", "relative_gap", "residual"):
        assert isinstance(getattr(sol, name), float), name
    assert sol.status == "optimal" and isinstance(sol.solver, str) and sol.certified is True
    assert sol.relative_gap <= 1e-8 and sol.residual <= 1e-6
    _check_kkt(prob, y[0], sol.x)
    batch = ut.reference.solve(prob, y[:1], method=method)
    np.testing.assert_allclose(batch.x[0], sol.x, rtol=0, atol=1e-12)


def test_torch_input_and_repr():
    torch = pytest.importorskip("torch")
    prob, y = _instances(20, 50, 0.1)
    sol = ut.reference.solve(prob, torch.tensor(y))
    text = repr(sol)
    for part in ("batch=4", "method='fast'", "worst relative_gap=", "worst residual=", "fast: 4",
                 "certified=4/4"):
        assert part in text


def test_fast_path_in_chunks_matches(monkeypatch, solved):
    prob, y, sols = solved[(20, 50, 0.03)]
    monkeypatch.setattr(_lasso, "_CHUNK", 3)
    sol = ut.reference.solve(prob, y)
    assert np.all(sol.certified) and len(sol.attempts) == BATCH
    np.testing.assert_allclose(sol.x, sols["fast"].x, rtol=0, atol=1e-12)


def test_trivial_instances():
    """y = 0 and lam >= ||A^T y||_inf: the optimum is x = 0, certified exactly."""
    prob, y = _instances(20, 50, 0.1)
    big = ut.problems.Lasso(prob.A, lam=2 * np.abs(y @ prob.A).max())
    for method in ("fast", "cvxpy"):
        sol = ut.reference.solve(big, y, method=method)
        assert np.all(sol.x == 0) and np.all(sol.certified)
        zero = ut.reference.solve(prob, np.zeros(20), method=method)
        assert np.all(zero.x == 0) and zero.gap == 0 and zero.status == "optimal"


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-6, 1.0), lam=st.sampled_from([0.01, 0.1, 0.5]))
def test_gap_bounds_suboptimality(seed, scale, lam):
    """For any x: F(x) - F(x_opt) <= duality_gap(x), since F(x_opt) >= F* and the gap bounds F(x) - F*."""
    rng = np.random.default_rng(seed)
    gen = ut.problems.SparseRecovery.gaussian(m=15, n=30, p=0.2, snr_db=20, seed=rng)
    prob, y = gen.lasso(lam), gen.sample(1, seed=rng).y[0]
    sol = ut.reference.solve(prob, y)
    x = sol.x + scale * rng.standard_normal(30) * (rng.random(30) < 0.5)
    excess = prob.objective(x, y) - sol.objective
    assert excess <= prob.duality_gap(x, y) + 1e-14 * abs(sol.objective)
    assert sol.gap >= 0 and excess >= -sol.gap - 1e-14 * abs(sol.objective)


def test_compiled_problem_is_cached_and_a_is_protected():
    prob, y = _instances(20, 50, 0.1)
    ut.reference.solve(prob, y[0], method="cvxpy")
    data = _lasso.lasso_data(prob)
    compiled = data[("cvxpy", "CLARABEL")]
    ut.reference.solve(prob, y[1], method="cvxpy")
    assert _lasso.lasso_data(prob)[("cvxpy", "CLARABEL")] is compiled
    # the problem holds a read-only copy of A, so no cache (compiled problem, Gram matrix, L, |A|) can go stale
    with pytest.raises(ValueError, match="read-only"):
        prob.A *= 1.5
    A = np.array(prob.A)
    copy = ut.problems.Lasso(A, prob.lam)
    A *= 1.5
    assert np.array_equal(copy.A, prob.A)


# ------------------------------------------------------------------------------------------- failures
def _tiny():
    return _instances(5, 10, 0.1)


@pytest.mark.parametrize("mode", ["raise", "infeasible"])
def test_every_solver_failing_raises_solver_error(monkeypatch, mode):
    import cvxpy as cp

    def broken(self, *args, **kwargs):
        if mode == "raise":
            raise cp.error.SolverError("numerical trouble")
        self._status = cp.INFEASIBLE
        return np.inf

    monkeypatch.setattr(cp.Problem, "solve", broken)
    prob, y = _tiny()
    solvers = ["CLARABEL", "OSQP", "SCS"]
    with pytest.raises(ut.SolverError) as info:
        ut.reference.solve(prob, y, method="cvxpy", solver=solvers)
    status = "error" if mode == "raise" else "infeasible"
    assert [a.solver for a in info.value.attempts] == solvers
    assert all(isinstance(a, SolverAttempt) and a.status == status for a in info.value.attempts)
    for name in solvers:
        assert f"{name}: {status}" in str(info.value)
    assert "instance 0 of 4" in str(info.value)


def test_falls_through_to_the_next_solver(monkeypatch):
    import cvxpy as cp

    original = cp.Problem.solve

    def flaky(self, *args, solver=None, **kwargs):
        if solver == "CLARABEL":
            raise cp.error.SolverError("simulated failure")
        return original(self, *args, solver=solver, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", flaky)
    prob, y = _tiny()
    sol = ut.reference.solve(prob, y[0], method="cvxpy")
    assert sol.solver == "cvxpy:OSQP" and sol.certified
    assert sol.attempts == (SolverAttempt("CLARABEL", "error", "simulated failure"),)


def test_uncertifiable_tolerance_returns_inaccurate_with_warning():
    prob, y = _tiny()
    with pytest.warns(InaccurateSolutionWarning, match=r"1 of 1 instance\(s\) not certified: worst relative"):
        sol = ut.reference.solve(prob, y[0], method="cvxpy", solver=["CLARABEL", "SCS"], tol=1e-300)
    assert sol.status == "inaccurate" and not sol.certified and np.all(np.isfinite(sol.x))
    assert [a.solver for a in sol.attempts] == ["CLARABEL", "SCS"]
    assert sol.relative_gap <= 1e-8  # still the best point found, with its honest gap


def test_crippled_fast_path_falls_back_to_cvxpy(monkeypatch):
    monkeypatch.setattr(_lasso, "_ROUND_MAX_ITERS", (1,))
    monkeypatch.setattr(_lasso, "_POLISH_STEPS", 0)
    prob, y = _instances(20, 50, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateSolutionWarning)
        sol = ut.reference.solve(prob, y, method="fast")
    assert sol.method == "fast" and np.all(sol.certified) and np.all(sol.relative_gap <= 1e-8)
    assert np.all(sol.solver == "cvxpy:CLARABEL")
    assert all(att[0].solver == "fast" and att[0].status == "inaccurate" for att in sol.attempts)
    for xi, yi in zip(sol.x, y):
        _check_kkt(prob, yi, xi)


@pytest.mark.parametrize("solver, match", [
    ("NOPE", r"solver 'NOPE' is not a cvxpy solver; installed cvxpy solvers: \[.*CLARABEL"),
    ("uninstalled", r"is not installed; installed cvxpy solvers: \[.*CLARABEL"),
    ([], r"solver is an empty list"),
    (3, r"solver must be None, a solver name or a list"),
])
@pytest.mark.parametrize("method", ["fast", "cvxpy"])
def test_bad_solver(solver, match, method):
    import cvxpy as cp

    if solver == "uninstalled":  # a solver cvxpy knows that this machine lacks (there is always one)
        solver = next(s for s in cp.settings.SOLVERS if s not in cp.installed_solvers())
    prob, y = _tiny()
    with pytest.raises(ut.InvalidInputError, match=match):
        ut.reference.solve(prob, y, method=method, solver=solver)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "newton"}, r"method must be one of \['auto', 'fast', 'cvxpy'\]"),
    ({"tol": 0.0}, r"tol must be > 0"),
    ({"tol": -1e-3}, r"tol must be > 0"),
    ({"tol": float("nan")}, r"tol must be finite"),
])
def test_bad_options(kwargs, match):
    prob, y = _tiny()
    with pytest.raises(ut.InvalidInputError, match=match):
        ut.reference.solve(prob, y, **kwargs)


def test_bad_problem():
    with pytest.raises(ut.InvalidInputError, match="problem must be"):
        ut.reference.solve(np.eye(3), np.ones(3))


@pytest.mark.parametrize("y, match", [
    (np.zeros((0, 5)), r"y is an empty batch"),
    (np.array([1.0, np.nan, 0, 0, 0]), r"y contains 1 NaN/Inf"),
    (np.ones(4), r"y has 4 entries per instance"),
    (np.ones((2, 3, 5)), r"y must have shape"),
])
@pytest.mark.parametrize("method", ["fast", "cvxpy"])
def test_bad_y(y, match, method):
    prob, _ = _tiny()
    with pytest.raises(ut.InvalidInputError, match=match):
        ut.reference.solve(prob, y, method=method)


def test_fast_path_does_not_import_cvxpy():
    code = ("import sys, json, numpy as np, unfoldtheory as ut; "
            "gen = ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0); "
            "sol = ut.reference.solve(gen.lasso(0.1), gen.sample(3, seed=1).y); "
            "print(json.dumps([bool(sol.certified.all()), 'cvxpy' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False]


# ------------------------------------------------------------------------------------------------- RPCA
@pytest.fixture(scope="module")
def rpca_solved():
    data = ut.problems.low_rank_plus_sparse(12, 10, rank=1, p=0.05, batch=2, seed=0)
    rpca = ut.problems.RPCA((12, 10))
    return rpca, data, ut.reference.solve(rpca, data.M)


def test_rpca_certified_and_recovers(rpca_solved):
    rpca, data, sol = rpca_solved
    assert isinstance(sol, ut.reference.RPCASolution) and sol.method == "cvxpy"
    assert sol.tol == 1e-6 and np.all(sol.certified) and np.all(sol.relative_gap <= 1e-6)
    assert np.all(sol.status == "optimal") and sol.residual is None
    assert sol.L.shape == (2, 12, 10) and sol.x is sol.L
    np.testing.assert_allclose(sol.L + sol.S, data.M, rtol=0, atol=1e-12)
    # the gap is the library's certificate, recomputable from the returned fields
    np.testing.assert_array_equal(sol.gap, rpca.duality_gap(sol.L, data.M, sol.Y))
    np.testing.assert_allclose(sol.objective, rpca.objective(sol.L, sol.S), rtol=1e-12)
    err = np.linalg.norm(sol.L - data.L, axis=(1, 2)) / np.linalg.norm(data.L, axis=(1, 2))
    assert np.all(err <= 1e-3)
    assert "RPCASolution(batch=2" in repr(sol) and "residual" not in repr(sol)


def test_rpca_single_and_errors(rpca_solved):
    rpca, data, batch = rpca_solved
    sol = ut.reference.solve(rpca, data.M[0], solver="SCS")
    assert sol.L.shape == (12, 10) and isinstance(sol.gap, float) and sol.certified
    assert sol.solver == "cvxpy:SCS"
    np.testing.assert_allclose(sol.L, batch.L[0], atol=1e-4)
    with pytest.raises(ut.InvalidInputError, match="method='fast' is only available for Lasso"):
        ut.reference.solve(rpca, data.M, method="fast")
    with pytest.raises(ut.InvalidInputError, match=r"y \(the observed matrix M\) must have shape \(12, 10\)"):
        ut.reference.solve(rpca, np.ones((10, 12)))
    with pytest.raises(ut.InvalidInputError, match="y is an empty batch"):
        ut.reference.solve(rpca, np.ones((0, 12, 10)))
    with pytest.raises(ut.SolverError, match="OSQP: error"):
        ut.reference.solve(rpca, data.M[0], solver="OSQP")  # no semidefinite cone
