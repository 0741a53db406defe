"""worst_case(model): schedules read from zoo models, tie checks, and the certificate against the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unfoldtheory as ut
import unfoldtheory.convergence as conv
from unfoldtheory import models
from unfoldtheory.convergence._schedules import initial_distance2, schedule_of

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def A():
    rng = np.random.default_rng(0)
    return rng.standard_normal((15, 30)) / np.sqrt(15)


def _net(cls, A, K=5, **kw):
    return cls(A, K, lam=0.1, dtype=torch.float64, **kw)


def test_ista_and_learned_step_read_the_step_schedule(A):
    L = float(np.linalg.norm(A, 2) ** 2)
    ista = models.ISTA(A, 4, lam=0.1, dtype=torch.float64)
    b = conv.worst_case(ista)
    assert b.certified and b.witness["schedule"]["method"] == "prox_grad"
    assert b.value == pytest.approx(L / 16, rel=1e-5)                           # L / (4N)
    net = _net(models.LearnedStepISTA, A, K=3)
    with torch.no_grad():
        net.gamma.mul_(torch.tensor([0.5, 1.5, 1.2], dtype=torch.float64))
        net.theta.copy_(net.gamma * 0.1)                                       # still tied
    b = conv.worst_case(net)
    L = b.witness["schedule"]["L"]
    ref = conv.worst_case(net.gamma.detach().numpy() * L, L=L, method="prox_grad")
    assert b.value == pytest.approx(ref.value, rel=1e-9)


def test_fista_model_is_fista(A):
    from unfoldtheory.models.momentum import fista_momentum

    net = _net(models.UnfoldedFISTA, A, K=4)
    b = conv.worst_case(net)
    sch = b.witness["schedule"]
    assert sch["method"] == "momentum_prox_grad" and np.allclose(sch["momentum"], fista_momentum(4))
    assert b.certified and b.value == pytest.approx(0.0516733 * sch["L"], rel=2e-6)   # PEPit's FISTA, n = 4


def test_untied_thresholds_are_not_applicable_with_the_reason(A):
    net = _net(models.UnfoldedFISTA, A)
    with torch.no_grad():
        net.theta[2] *= 1.5
    with pytest.raises(ut.errors.NotRepresentableError, match=r"theta_3 .* not the method on one LASSO"):
        conv.worst_case(net)
    adm = _net(models.UnfoldedADMM, A)
    with torch.no_grad():
        adm.theta[0] *= 0.5
    with pytest.raises(ut.errors.NotRepresentableError, match="lam / rho_k"):
        conv.worst_case(adm)
    lista = models.LISTA(A, 3, lam=0.1, dtype=torch.float64)      # at its initialisation LISTA is ISTA
    assert schedule_of(lista).method == "prox_grad"
    with torch.no_grad():
        lista.W2[1].add_(0.01)
    with pytest.raises(ut.errors.NotRepresentableError, match=r"layer 2: its state edges .* not proximal gradient"):
        conv.worst_case(lista)


def test_model_class_overrides(A):
    net = _net(models.UnfoldedFISTA, A, K=3)
    sch = schedule_of(net)
    with pytest.raises(ut.InvalidInputError, match="below the model's smoothness"):
        conv.worst_case(net, L=0.5 * sch.L)
    with pytest.raises(ut.InvalidInputError, match="momentum is read from the model"):
        conv.worst_case(net, momentum=[0.0] * 3)
    with pytest.raises(ut.InvalidInputError, match="runs method"):
        conv.worst_case(net, method="prox_grad")
    bigger = conv.worst_case(net, L=2 * sch.L)                  # a larger class: a larger worst case
    assert bigger.value >= conv.worst_case(net).value * (1 - 1e-6)


@pytest.mark.parametrize("cls", [models.UnfoldedFISTA, models.UnfoldedADMM])
def test_certificate_bounds_the_network_on_lasso_instances(A, cls):
    """Run the network (tied thresholds, perturbed schedule) on LASSO instances: the observed
    (F(x_K) - F*) / (initial distance)^2 never exceeds the certified worst case."""
    net = _net(cls, A, K=4)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        if cls is models.UnfoldedFISTA:
            net.gamma.mul_(torch.tensor(rng.uniform(0.6, 1.8, 4)))
            net.beta.copy_(torch.tensor(rng.uniform(0.0, 1.0, 4)))
            net.theta.copy_(net.gamma * 0.1)
        else:
            net.log_rho.add_(torch.tensor(rng.uniform(-1.0, 1.0, 4)))
            net.theta.copy_(0.1 / net.log_rho.exp())
    b = conv.worst_case(net)
    assert b.certified
    sch = schedule_of(net)
    prob = ut.problems.Lasso(A, lam=0.1)
    scales = np.array([0.1, 1.0, 10.0, 100.0])[rng.integers(0, 4, 40), None]
    Y = rng.standard_normal((40, A.shape[0])) * scales
    sol = ut.reference.solve(prob, Y)
    xK = net(torch.tensor(Y)).detach().numpy()
    gap = prob.objective(xK, Y) - (sol.objective - sol.gap)
    ratio = gap / initial_distance2(sch, A, sol.x, Y)
    assert np.max(ratio) <= b.value
    assert np.max(ratio) > 0


@pytest.mark.parametrize("cls", [models.UnfoldedFISTA, models.UnfoldedADMM])
def test_the_pep_recursion_is_the_networks_recursion(cls):
    """With A = sqrt(a) I and lam = 0 the network runs the PEP's recursion on f = (a/2)||x - x*||^2, g = 0:
    the error x_K - x* must be the PEP's 1-D quadratic example times x_0 - x* = -x*."""
    from unfoldtheory.convergence import _pep

    a, n = 0.7, 3
    net = cls(np.sqrt(a) * np.eye(n), 4, lam=0.0, dtype=torch.float64)
    rng = np.random.default_rng(2)
    with torch.no_grad():
        if cls is models.UnfoldedFISTA:
            net.gamma.copy_(torch.tensor(rng.uniform(0.5, 2.5, 4)))
            net.beta.copy_(torch.tensor(rng.uniform(0.0, 1.2, 4)))
        else:
            net.log_rho.copy_(torch.tensor(rng.uniform(-1.0, 1.0, 4)))
    sch = schedule_of(net)
    y = rng.standard_normal(n)
    x_star = y / np.sqrt(a)
    xK = net(torch.tensor(y)).detach().numpy()
    c = a / sch.L                                              # curvature in units of L
    if cls is models.UnfoldedFISTA:
        factor = float(_pep._momentum_quadratic_xN(sch.steps, sch.momentum, np.array([c]))[0])
    else:
        factor = float(_pep._admm_quadratic_zN(sch.steps, np.array(c), np.array(0.0)))
    np.testing.assert_allclose(xK - x_star, factor * (0 - x_star), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["UnfoldedFISTA", "UnfoldedADMM"])
def test_suite_claim_on_a_trained_model(A, name):
    """The suite claim: tied thresholds -> holds (certified worst case >= observed); untied -> not
    applicable with the reason."""
    from types import SimpleNamespace

    from unfoldtheory.suite import judge
    from unfoldtheory.suite._claims_convergence import claims

    claim = next(c for c in claims() if c.id == f"pep.trained_{name}")
    prob = ut.problems.Lasso(A, lam=0.1)
    Y = np.random.default_rng(3).standard_normal((20, A.shape[0]))
    net = _net(getattr(models, name), A, K=4)
    ctx = SimpleNamespace(lasso=prob, test=SimpleNamespace(y=Y), reference=ut.reference.solve(prob, Y),
                          model=lambda _: net, out=None)
    ev = claim.check(ctx)
    status, ok, _, _ = judge(claim, ev)
    assert status == "holds" and ok and ev.bound.certified and ev.empirical <= ev.bound.value
    assert len(ev.details["pep_per_layer"]) == len(ev.details["observed_per_layer"]) == 4
    assert ev.checks["observed <= certified worst case at every layer"]
    with torch.no_grad():
        net.theta[1] *= 3.0
    ev = claim.check(ctx)
    status, _, _, failed = judge(claim, ev)
    assert status == "not applicable" and failed == ["thresholds tied to the schedule"]
    assert "theta_2" in ev.reason
