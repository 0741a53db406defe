"""Theorem checks: LISTA-CP coupling (Chen et al. 2018, Thm 1) and ALISTA Thm 1 (Liu et al. 2019) on trained nets."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import unfoldtheory as ut
import unfoldtheory.convergence as cv
from unfoldtheory import coherence as coh

M, N = 32, 64


@pytest.fixture(scope="module")
def A():
    return ut.problems.SparseRecovery.gaussian(M, N, seed=0).A


@pytest.fixture(scope="module")
def minimax(A):
    return coh.generalized_coherence(A)


class _FixedSupport:
    """Training data with exactly s nonzeros (the theorem's regime), in the training API's format."""

    def __init__(self, A, s):
        self.A, self.s = A, s

    def sample(self, batch, seed=None):
        x, y = cv.fixed_support_instances(self.A, self.s, batch, seed=seed)
        return types.SimpleNamespace(x=x, y=y)


@pytest.fixture(scope="module")
def trained_alista(A, minimax, single_torch_thread):
    """ALISTA with the minimax weight of Definition 1, steps and thresholds trained on s = 2 data."""
    W, _ = minimax
    net = ut.models.ALISTA(A, 8, W=W, gamma0=1.0, theta0=0.05, device="cpu", dtype=torch.float64)
    ut.training.train(net, _FixedSupport(A, 2), epochs=1, steps_per_epoch=200, batch_size=64, lr=1e-2, seed=0,
                      progress=False, val_size=100)
    return net


@pytest.fixture(scope="module")
def test_set(A):
    return cv.fixed_support_instances(A, 2, 300, seed=123)


# ------------------------------------------------------------------------------------ LISTA-CP coupling
@pytest.mark.parametrize("make", [lambda A: ut.models.LISTACP(A, 5), lambda A: ut.models.ALISTA(A, 5),
                                  lambda A: ut.models.TiLISTA(A, 5), lambda A: ut.models.ISTA(A, 5, lam=0.1)])
def test_coupled_models_report_zero_residual(A, make):
    r = cv.lista_cp_coupling(make(A), A)
    assert r.by_construction and r.trend == "coupled by construction" and r.verdict == "vacuous"
    assert np.all(r.residual_spectral[1:] == 0) and np.isnan(r.residual_spectral[0])
    assert r.to_dict()["trend"] == "coupled by construction"


def test_ista_initialised_lista_is_coupled(A):
    net = ut.models.LISTA(A, 6, lam=0.1, dtype=torch.float64, device="cpu")
    r = cv.lista_cp_coupling(net, A)
    assert not r.by_construction
    assert np.nanmax(r.relative_spectral) <= 1e-12
    assert r.trend == "coupled" and r.verdict == "holds"
    np.testing.assert_allclose(r.theta_max, 0.1 / np.linalg.norm(A, 2) ** 2, rtol=1e-12)


def test_perturbed_lista_reports_the_perturbation_norm(A):
    rng = np.random.default_rng(0)
    L = np.linalg.norm(A, 2) ** 2
    K = 5
    P = [rng.standard_normal((N, N)) * 10.0 ** (-k) for k in range(K)]
    W1 = [A.T / L] * K
    W2 = [np.eye(N) - A.T @ A / L + P[k] for k in range(K)]
    th = [0.1 * 2.0 ** (-k) for k in range(K)]
    net = ut.models.LISTA.from_weights(W1, W2, th, dtype=torch.float64, device="cpu")
    r = cv.lista_cp_coupling(net, A)
    for k in range(1, K):
        assert r.residual_spectral[k] == pytest.approx(np.linalg.norm(P[k], 2), rel=1e-9)
        assert r.residual_frobenius[k] == pytest.approx(np.linalg.norm(P[k]), rel=1e-9)
    assert r.trend == "decreasing" and r.coupling_trend == pytest.approx(-1.0, abs=0.05)
    # the same network with growing perturbations is flagged
    W2_up = [np.eye(N) - A.T @ A / L + P[K - 1 - k] for k in range(K)]
    up = cv.lista_cp_coupling(ut.models.LISTA.from_weights(W1, W2_up, th, dtype=torch.float64, device="cpu"), A)
    assert up.trend == "not decreasing" and up.verdict == "violated" and "coupling residual does not decrease" in up.notes


def test_coupling_on_a_trained_lista(single_torch_thread):
    gen = ut.problems.SparseRecovery.gaussian(M, N, p=0.1, seed=0)
    net = ut.models.LISTA(gen.A, 8, lam=0.1, device="cpu")
    ut.training.train(net, gen, epochs=2, steps_per_epoch=150, batch_size=64, lr=1e-3, seed=0, progress=False,
                      val_size=100)
    r = cv.lista_cp_coupling(net, gen.A)
    w = net.weights()
    # training moved the weights away from the coupled ISTA initialisation, and the residual is what it is
    for k in range(1, 8):
        R = w["W2"][k] - (np.eye(N) - w["W1"][k] @ gen.A)
        assert r.residual_spectral[k] == pytest.approx(np.linalg.norm(R, 2), rel=1e-9)
    assert np.all(r.relative_spectral[1:] > 1e-3)
    np.testing.assert_allclose(r.theta_max, [t.max() for t in w["theta"]])
    assert r.trend in ("decreasing", "not decreasing")
    assert r.theta_max[-1] < r.theta_max[0]          # thresholds decrease with depth (Thm 1's theta_k -> 0)
    assert "CouplingResult(LISTA" in repr(r) and "layer" in r.table()


# ---------------------------------------------------------------------------------------- ALISTA Thm 1
def test_alista_theorem_holds_in_its_regime_on_every_instance(A, minimax, trained_alista, test_set):
    x, y = test_set
    net = trained_alista
    _, mu_t = minimax
    before = net.theta.detach().clone()
    th = cv.alista_oracle_thresholds(net, A, x, y)
    assert torch.equal(net.theta.detach(), before)               # assign=False leaves the model unchanged
    cv.alista_oracle_thresholds(net, A, x, y, assign=True)
    try:
        np.testing.assert_allclose(net.theta.detach().numpy(), th)
        res = cv.alista_theorem_check(net, A, x, y, mu_tilde=mu_t, require_minimax_weight=True)
        assert res.status == "holds", res.summary()
        assert all(v["holds"] for v in res.assumptions.values() if v["required"])
        assert res.s == 2 and res.mu == pytest.approx(mu_t, rel=1e-6) and (2 * res.s - 1) * res.mu < 1
        assert np.all(res.gamma < res.gamma_max)
        # per instance and per layer, independently of the check: no false positive, error below the bound
        with torch.no_grad():
            xs = [o.numpy() for o in net(y, return_all=True)]
        for k, xk in enumerate(xs):
            assert np.all(np.linalg.norm(xk - x, axis=1) <= res.bound_per_layer[k])
            assert not np.any((xk != 0) & (x == 0))
        # the bound is the theorem's formula
        B = np.abs(x).max()
        c = (2 * mu_t * 2 - mu_t) * res.gamma + np.abs(1 - res.gamma)
        np.testing.assert_allclose(res.bound_per_layer, 2 * B * np.cumprod(c), rtol=1e-6)
        assert res.theta_oracle[0] == pytest.approx(res.gamma[0] * res.mu * np.abs(x).sum(axis=1).max())
        assert res.extended_status == "holds"
        assert res.to_dict()["status"] == "holds" and res.verdict == "holds"
        b = res.bound  # the one spelling: a Bound (a formula in floating point: an uncertified upper bound)
        assert b.side == "upper" and not b.certified and b.value == res.bound_per_layer[-1]
    finally:
        with torch.no_grad():
            net.theta.copy_(before)


def test_alista_theorem_not_applicable_outside_the_regime(A, minimax, trained_alista, test_set):
    x, y = test_set
    net = trained_alista
    # trained thresholds are not the theorem's (eq. 10): never "holds"
    res = cv.alista_theorem_check(net, A, x, y)
    assert res.status == "not applicable" and "thresholds" in res.failed_assumptions
    # larger support: (2s - 1) mu >= 1
    x4, y4 = cv.fixed_support_instances(A, 4, 100, seed=5)
    before = net.theta.detach().clone()
    try:
        cv.alista_oracle_thresholds(net, A, x4, y4, assign=True)
        res4 = cv.alista_theorem_check(net, A, x4, y4)
        assert res4.status == "not applicable" and "coherence_regime" in res4.failed_assumptions
        # noisy data
        cv.alista_oracle_thresholds(net, A, x, y, assign=True)
        noisy = y + 1e-3 * np.random.default_rng(0).standard_normal(y.shape)
        resn = cv.alista_theorem_check(net, A, x, noisy)
        assert resn.status == "not applicable" and "noiseless" in resn.failed_assumptions
    finally:
        with torch.no_grad():
            net.theta.copy_(before)
    # ALISTA's analytic (Frobenius) weight has mu_W = 0.57 here: the regime fails already for s = 2
    ana = ut.models.ALISTA(A, 8, device="cpu", dtype=torch.float64)
    cv.alista_oracle_thresholds(ana, A, x, y, assign=True)
    resa = cv.alista_theorem_check(ana, A, x, y)
    assert resa.status == "not applicable" and "coherence_regime" in resa.failed_assumptions
    assert resa.mu == pytest.approx(coh.offdiag_max(coh.analytic_weight(A), A), rel=1e-9)
    # an untied LISTA whose layer 3 is not coupled (W2_3 != I - W1_3 A): not applicable
    lista = ut.models.LISTA(A, 4, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        lista.W1[2] *= 1.5
    resl = cv.alista_theorem_check(lista, A, x, y)
    assert resl.status == "not applicable" and "coupled_weights" in resl.failed_assumptions
    assert "weight_structure" not in resl.failed_assumptions        # W1_k = gamma_k A^T / L still
    # LISTA-CP with a per-layer weight that is not gamma_k W
    cp_net = ut.models.LISTACP(A, 4, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        cp_net.Wk[2] += 0.01 * torch.randn(cp_net.Wk[2].shape, dtype=torch.float64,
                                           generator=torch.Generator().manual_seed(0))
    resc = cv.alista_theorem_check(cp_net, A, x, y)
    assert resc.status == "not applicable" and "weight_structure" in resc.failed_assumptions


def test_minimax_weight_requirement(A, trained_alista, test_set, minimax):
    x, y = test_set
    ana = ut.models.ALISTA(A, 3, gamma0=0.5, device="cpu", dtype=torch.float64)
    res = cv.alista_theorem_check(ana, A, x, y, mu_tilde=minimax[1], require_minimax_weight=True)
    assert res.assumptions["minimax_weight"]["holds"] is False
    assert "minimax_weight" in res.failed_assumptions


def test_bad_inputs_name_the_argument(A, trained_alista, test_set):
    x, y = test_set
    net = trained_alista
    with pytest.raises(ut.InvalidInputError, match="model"):
        cv.alista_theorem_check(object(), A, x, y)
    with pytest.raises(ut.InvalidInputError, match="model"):
        cv.lista_cp_coupling("LISTA", A)
    with pytest.raises(ut.InvalidInputError, match="A must have the shape"):
        cv.lista_cp_coupling(net, A[:, :10])
    with pytest.raises(ut.InvalidInputError, match="x_true and y"):
        cv.alista_theorem_check(net, A, x[:5], y[:6])
    with pytest.raises(ut.InvalidInputError, match="x_true"):
        cv.alista_theorem_check(net, A, x[:, :5], y)
    bad = y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ut.InvalidInputError, match="y contains"):
        cv.alista_theorem_check(net, A, x, bad)
    with pytest.raises(ut.InvalidInputError, match="s must be"):
        cv.alista_theorem_check(net, A, x, y, s=0)
    with pytest.raises(ut.InvalidInputError, match="rtol"):
        cv.alista_theorem_check(net, A, x, y, rtol=-1.0)
    with pytest.raises(ut.InvalidInputError, match="s must be"):
        cv.fixed_support_instances(A, N + 1, 3)
    with pytest.raises(ut.InvalidInputError, match="theta"):
        cv.alista_oracle_thresholds(ut.models.ISTA(A, 3, lam=0.1), A, x, y)


# ------------------------------------------------------------------------------------ empirical profile
def test_convergence_profile_ista_and_lista(A, single_torch_thread):
    gen = ut.problems.SparseRecovery(A, p=0.05)
    prob = gen.lasso(0.05)
    data = gen.sample(20, seed=3)
    ista = ut.models.ISTA(A, 6, lam=0.05, device="cpu", dtype=torch.float64)
    prof = cv.convergence_profile(ista, prob, data.y, data.x)
    assert prof.reference_certified
    assert prof.rates["contraction"]["certified"] and prof.rates["contraction"]["holds"]
    assert prof.rates["pep"]["certified"] and prof.rates["pep"]["holds"]
    assert np.all(np.diff(prof.dist_ref_max) <= 1e-9)         # ISTA's distance to the optimum never increases
    lista = ut.models.LISTA(A, 6, lam=0.3, device="cpu", dtype=torch.float64)   # lam differs: no fixed point
    prof2 = cv.convergence_profile(lista, prob, data.y)
    assert not prof2.rates["contraction"]["certified"] and "pep" not in prof2.rates
    assert prof2.to_dict()["model"] == "LISTA"
