"""Contraction: per-layer constants bound sampled ratios, ISTA is averaged, optima are fixed points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import unfoldtheory as ut
from unfoldtheory import contraction as C

F64 = dict(device="cpu", dtype=torch.float64)


def _layer_map(form, k, y):
    """x_{k-1} -> x_k of a chain form at fixed y (k is 1-based, >= 2)."""
    blk = form.blocks[k - 1]
    W = C._dense(blk.inputs[k - 2])
    B = C._dense(blk.B)
    return lambda x: blk.activation(W @ x + B @ y)


@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 2.0))
def test_layer_bounds_dominate_sampled_ratios_and_are_attained_in_the_linear_regime(seed, scale):
    rng = np.random.default_rng(seed)
    A = ut.problems.gaussian_dictionary(6, 9, seed=rng)
    net = ut.models.LISTACP(A, 4, **F64)
    with torch.no_grad():
        net.Wk.add_(scale * torch.tensor(rng.normal(size=net.Wk.shape)))
    form = net.form()
    bounds = C.layer_lipschitz(net)
    y = rng.normal(size=6)
    for k, b in zip(range(2, 5), bounds):
        T = _layer_map(form, k, y)
        for _ in range(20):
            x, z = rng.normal(size=9) * 3, rng.normal(size=9) * 3
            assert np.linalg.norm(T(x) - T(z)) <= b.value * np.linalg.norm(x - z) * (1 + 1e-12)
        # with zero thresholds and identity-like activation regime the bound is attained (top singular vector)
        W = C._dense(form.blocks[k - 1].inputs[k - 2])
        v = np.linalg.svd(W)[2][0]
        By = C._dense(form.blocks[k - 1].B) @ y
        big = 10 * np.sign(W @ v + 1e-300)  # pre-activation 10 * sign: the linear regime of every coordinate
        x0 = np.linalg.lstsq(W, big - By, rcond=None)[0]
        assert np.all(np.abs(W @ x0 + By) > 1.5)  # constructed, not hoped for (W is square and generic)
        ratio = np.linalg.norm(T(x0 + 1e-3 * v) - T(x0)) / 1e-3
        assert ratio == pytest.approx(b.value, rel=1e-6)


def test_ista_layers_are_nonexpansive_but_not_contractive_when_m_lt_n():
    A = ut.problems.gaussian_dictionary(10, 20, seed=0)
    net = ut.models.ISTA(A, 5, lam=0.1, **F64)
    bounds = C.layer_lipschitz(net)
    assert all(b.value == pytest.approx(1.0, abs=1e-9) for b in bounds)  # I - A^T A / L has a null space of A
    cert = C.contraction_certificate(net)
    assert cert.side == "upper" and cert.certified and not cert.checks["contraction"]
    # on a small support the restricted constant is < 1 (A_S has full column rank)
    restricted = C.restricted_lipschitz(net, np.arange(3))
    assert all(b.value < 1 for b in restricted)


def test_contraction_certificate_is_the_product_and_bounds_the_state_map():
    rng = np.random.default_rng(1)
    W1 = [rng.normal(size=(5, 3)) for _ in range(4)]
    W2 = [0.4 * rng.normal(size=(5, 5)) / np.sqrt(5) for _ in range(4)]
    net = ut.models.LISTA.from_weights(W1, W2, [0.05] * 4, **F64)
    cert = C.contraction_certificate(net)
    assert cert.value == pytest.approx(np.prod([np.linalg.norm(w, 2) for w in W2[1:]]), rel=1e-9)
    assert cert.value >= np.prod([np.linalg.norm(w, 2) for w in W2[1:]])
    assert cert.checks["contraction"]


@given(seed=st.integers(0, 2**16), factor=st.floats(0.1, 1.95))
def test_ista_is_averaged_with_the_stated_constant(seed, factor):
    rng = np.random.default_rng(seed)
    gen = ut.problems.SparseRecovery.gaussian(8, 12, 0.3, seed=rng)
    prob = gen.lasso(0.1)
    y = gen.sample(1, seed=rng).y[0]
    step = factor / prob.L
    T = C.ista_operator(prob, y, step)
    alpha = C.averagedness_constant(step, prob.L)
    for _ in range(10):
        x, z = rng.normal(size=12), rng.normal(size=12)
        assert C.averagedness_violation(T, x, z, alpha) <= 1e-10 * (1 + np.sum((x - z) ** 2))


def test_averagedness_constant_is_not_far_from_tight():
    """With lam = 0 (prox = identity) on a 1-D quadratic the gradient step is exactly (gamma L / 2)-averaged and
    no smaller constant holds; the stated 2 / (4 - gamma L) lies between gamma L / 2 and 1."""
    prob = ut.problems.Lasso(np.array([[1.0]]), 0.0)
    step = 1.5
    T = C.ista_operator(prob, np.zeros(1), step)
    x, z = np.array([1.0]), np.array([0.0])
    assert C.averagedness_violation(T, x, z, step / 2) == pytest.approx(0.0, abs=1e-12)
    assert C.averagedness_violation(T, x, z, 0.95 * step / 2) > 0
    assert step / 2 <= C.averagedness_constant(step, prob.L) < 1


def test_reference_optimum_is_a_fixed_point_of_the_ista_layer():
    gen = ut.problems.SparseRecovery.gaussian(15, 30, 0.1, snr_db=30, seed=2)
    prob = gen.lasso(0.05)
    y = gen.sample(3, seed=3).y
    sol = ut.reference.solve(prob, y)
    for xi, yi in zip(sol.x, y):
        assert C.fixed_point_residual(prob, xi, yi) <= 1e-8 * max(1.0, np.linalg.norm(xi))
        assert C.fixed_point_residual(prob, xi + 0.01, yi) > 1e-4


def test_refusals_and_bad_input():
    A = ut.problems.gaussian_dictionary(5, 8, seed=0)
    with pytest.raises(ut.NotRepresentableError, match="chain form"):
        C.layer_lipschitz(ut.models.UnfoldedFISTA(A, 3, **F64))
    with pytest.raises(ut.NotRepresentableError, match="support selection"):
        C.contraction_certificate(ut.models.LISTACPSS(A, 3, **F64))
    with pytest.raises(ut.InvalidInputError, match="step \\* L must be < 2"):
        C.averagedness_constant(2.0, 1.0)
    with pytest.raises(ut.InvalidInputError, match="layer must be in 2..3"):
        C.restricted_lipschitz(ut.models.ISTA(A, 3, lam=0.1, **F64), [0, 1], layer=1)
