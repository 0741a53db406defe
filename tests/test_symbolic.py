"""Closed-form rates (sympy and float) against each other and against the PEP engine (PEPit style)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import unfoldtheory as ut
import unfoldtheory.convergence as conv
from unfoldtheory import symbolic as sym

sp = pytest.importorskip("sympy")
REL = 1e-5
NS = range(1, 11)


def ev(expr, **values) -> float:
    s = sym.symbols()
    return float(expr.subs({s[k]: v for k, v in values.items()}).evalf(30))


# ------------------------------------------------------------------------ theory versus PEP (tight)
@pytest.mark.parametrize("N", NS)
def test_gd_unit_step(N):
    wc = conv.worst_case([1.0] * N, L=2.0).value
    assert wc == pytest.approx(sym.gd_unit_step_rate(N, L=2.0), rel=REL)


@pytest.mark.parametrize("h", [0.5, 1.2, 1.5, 1.9])
@pytest.mark.parametrize("N", NS)
def test_gd_constant_step(N, h):
    wc = conv.worst_case([h] * N).value
    assert wc == pytest.approx(sym.gd_rate(N, h), rel=REL)


@pytest.mark.parametrize("N", NS)
def test_prox_grad_unit_step(N):
    wc = conv.worst_case([1.0] * N, L=3.0, method="prox_grad").value
    assert wc == pytest.approx(sym.prox_grad_unit_step_rate(N, L=3.0), rel=REL)


@pytest.mark.parametrize("method", ["gd", "prox_grad"])
@pytest.mark.parametrize("h,mu", [(0.5, 0.1), (1.0, 0.1), (1.5, 0.3), (2.5, 0.1), (1.0, 0.0)])
@pytest.mark.parametrize("N", [1, 2, 3, 5, 8, 10])
def test_distance_contraction(N, h, mu, method):
    wc = conv.worst_case([h] * N, mu=mu, method=method, metric="distance", nested=False).value
    assert wc == pytest.approx(sym.distance_rate(N, h, mu=mu), rel=REL)


# --------------------------------------------------------------------- theory versus PEP (upper)
@pytest.mark.parametrize("method", ["gd", "prox_grad"])
@pytest.mark.parametrize("N", NS)
def test_classical_rate_is_an_upper_bound(N, method):
    wc = conv.worst_case([1.0] * N, method=method).value
    assert wc <= sym.classical_sublinear_rate(N)
    assert wc <= 0.5 * sym.classical_sublinear_rate(N) * (1 + REL)        # the exact rate is half of it


@pytest.mark.parametrize("N", [2, 5, 10])
def test_strongly_convex_objective_bound(N):
    """f(x_N) - f* <= (L/2) ||x_N - x*||^2 <= (L/2) (1 - mu/L)^(2N): an upper bound, not tight."""
    wc = conv.worst_case([1.0] * N, mu=0.2, nested=False).value
    assert wc <= 0.5 * sym.distance_rate(N, 1.0, mu=0.2)


# ------------------------------------------------------------------------------------- Chebyshev
@pytest.mark.parametrize("K,mu,value", [(5, 0.1, 0.0755633), (10, 0.1, 0.00286308), (8, 0.1, 0.0106087)])
def test_chebyshev_reference_values(K, mu, value):
    assert sym.chebyshev_rate(K, mu=mu) == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize("K", [3, 5, 8])
def test_chebyshev_steps_on_quadratics_and_on_the_full_class(K):
    steps = sym.chebyshev_steps(K, mu=0.1)
    rate2 = sym.chebyshev_rate(K, mu=0.1) ** 2
    quad = conv.quadratic_lower_bound(steps, mu=0.1, metric="distance").value     # max over 1-D quadratics
    assert quad == pytest.approx(rate2, rel=1e-6)
    wc = conv.worst_case(steps, mu=0.1, metric="distance", nested=False)
    assert wc.certified and wc.value >= rate2                 # quadratics are a subclass
    assert wc.value > 10 * rate2                              # ... and far from the worst case
    constant = ((10 - 1) / (10 + 1)) ** K                                           # step 2/(L+mu)
    assert sym.chebyshev_rate(K, mu=0.1) < constant


def test_chebyshev_polynomial_equioscillates():
    K = 6
    g = sym.chebyshev_steps(K, mu=0.1)
    lam = np.linspace(0.1, 1.0, 20001)
    p = np.abs(np.prod(1 - np.outer(lam, g), axis=1))
    assert p.max() == pytest.approx(sym.chebyshev_rate(K, mu=0.1), rel=1e-6)
    assert p[0] == pytest.approx(p.max(), rel=1e-9) and p[-1] == pytest.approx(p.max(), rel=1e-9)


# ------------------------------------------------------------------------------ sympy versus float
@pytest.mark.parametrize("N,h,L,mu", [(1, 0.3, 1.0, 0.0), (4, 1.0, 2.0, 0.5), (7, 1.7, 0.5, 0.1),
                                      (10, 1.95, 3.0, 1.0)])
def test_expressions_match_the_float_evaluators(N, h, L, mu):
    assert ev(sym.gd_unit_step_rate_expr(), N=N, L=L) == pytest.approx(sym.gd_unit_step_rate(N, L), rel=1e-14)
    assert ev(sym.gd_rate_expr(), N=N, h=h, L=L) == pytest.approx(sym.gd_rate(N, h, L), rel=1e-14)
    assert ev(sym.prox_grad_unit_step_rate_expr(), N=N, L=L) == pytest.approx(
        sym.prox_grad_unit_step_rate(N, L), rel=1e-14)
    assert ev(sym.classical_sublinear_rate_expr(), N=N, L=L) == pytest.approx(
        sym.classical_sublinear_rate(N, L), rel=1e-14)
    assert ev(sym.distance_rate_expr(), N=N, h=h, L=L, mu=mu) == pytest.approx(
        sym.distance_rate(N, h, L, mu), rel=1e-13)
    if mu > 0:
        assert ev(sym.chebyshev_rate_expr(), K=N, L=L, mu=mu) == pytest.approx(
            sym.chebyshev_rate(N, L, mu), rel=1e-12)
        steps = [ev(sym.chebyshev_steps_expr(), k=k, K=N, L=L, mu=mu) * L for k in range(N)]
        np.testing.assert_allclose(steps, sym.chebyshev_steps(N, L, mu), rtol=1e-13)


def test_symbolic_identities():
    s = sym.symbols()
    N, L, h, mu = s["N"], s["L"], s["h"], s["mu"]
    # the constant-step rate at h = 1 is the unit-step rate
    assert sp.simplify(sym.gd_rate_expr().subs(h, 1) - sym.gd_unit_step_rate_expr()) == 0
    # N * rate -> L / 4 for both unit-step rates; the classical bound is exactly twice the prox rate
    assert sp.limit(N * sym.gd_unit_step_rate_expr(), N, sp.oo) == L / 4
    assert sp.limit(N * sym.prox_grad_unit_step_rate_expr(), N, sp.oo) == L / 4
    assert sp.simplify(sym.classical_sublinear_rate_expr() / sym.prox_grad_unit_step_rate_expr()) == 2
    # the best constant step 2/(L+mu) contracts by ((L-mu)/(L+mu))^2 per step (kappa form)
    best = sym.distance_rate_expr().subs({h: 2 * L / (L + mu), N: 1})
    for a, b in [(1, sp.Rational(1, 10)), (3, 2), (5, sp.Rational(1, 2))]:
        assert sp.simplify(best.subs({L: a, mu: b}) - sp.Rational(a - b, 1) ** 2 / (a + b) ** 2) == 0


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,match", [
    (lambda: sym.gd_rate(3, 2.5), "h must be < 2"), (lambda: sym.gd_rate(3, 0.0), "h must be > 0"),
    (lambda: sym.gd_rate(0, 1.0), "N must be an integer >= 1"),
    (lambda: sym.gd_rate(2.5, 1.0), "N must be an integer"),
    (lambda: sym.prox_grad_unit_step_rate(3, L=-1.0), "L must be > 0"),
    (lambda: sym.distance_rate(3, 1.0, mu=2.0), "mu must satisfy"),
    (lambda: sym.chebyshev_steps(4, mu=0.0), "mu must be > 0"), (lambda: sym.chebyshev_rate(0), "K must be"),
])
def test_bad_input(call, match):
    with pytest.raises(ut.InvalidInputError, match=match):
        call()


def test_sympy_is_imported_lazily():
    code = ("import sys, json, unfoldtheory.symbolic as s, unfoldtheory.convergence as c; "
            "s.gd_rate(3, 1.0); s.chebyshev_steps(4); "
            "print(json.dumps({m: m in sys.modules for m in ['sympy', 'cvxpy']}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"sympy": False, "cvxpy": False}
