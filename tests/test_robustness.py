"""Robustness: attacks never beat a certified sensitivity, the classical Lambda_K closed form, and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
from _helpers import random_lista
from unfoldtheory import lipschitz as lip
from unfoldtheory import robustness as rob


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def adversarially_trained_lista(m, n, K, seed, steps=40, eps=0.2):
    """A LISTA trained for a few Adam steps on PGD-perturbed inputs (own loop, small)."""
    gen = ut.problems.SparseRecovery.gaussian(m=m, n=n, p=0.2, snr_db=30, seed=seed)
    data = gen.sample(128, seed=seed + 1)
    torch.manual_seed(seed)
    net = ut.models.LISTA(gen.A, K, lam=0.05, dtype=torch.float64, device="cpu")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    Y, X = torch.tensor(data.y), torch.tensor(data.x)
    for _ in range(steps):
        d = (eps * torch.randn_like(Y) / math.sqrt(m)).requires_grad_(True)
        for _ in range(3):  # a short inner PGD (l2) on the training loss
            loss = ((net(Y + d) - X) ** 2).sum()
            (g,) = torch.autograd.grad(loss, d)
            with torch.no_grad():
                d = d + 0.5 * eps * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
                d = d * torch.clamp(eps / d.norm(dim=1, keepdim=True).clamp_min(1e-12), max=1.0)
            d.requires_grad_(True)
        opt.zero_grad()
        ((net(Y + d.detach()) - X) ** 2).sum(dim=1).mean().backward()
        opt.step()
        with torch.no_grad():
            net.theta.clamp_(min=0.0)
    return net, data.y


@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 2**16), K=st.integers(1, 6), eps=st.sampled_from([0.01, 0.3, 3.0]),
       norm=st.sampled_from(["l2", "linf"]), method=st.sampled_from(["pgd", "bim"]))
def test_attack_never_exceeds_the_certified_sensitivity(seed, K, eps, norm, method):
    net = random_lista(3, 5, K, seed)
    y = np.random.default_rng(seed).normal(size=(5, 3)) * 2
    att = rob.attack(net, y, eps, norm=norm, method=method, steps=20, seed=seed)
    up = lip.upper_bound(net)
    cert = rob.certified_sensitivity(net, eps, norm=norm, upper=up)
    local = rob.certified_sensitivity(net, eps, norm=norm, y=y[0])
    res = att.witness
    assert att.side == "lower" and att.value <= up.value * (1 + 1e-9)
    assert np.all(res.deviation <= cert.value * (1 + 1e-9))
    assert res.deviation[0] <= local.value * (1 + 1e-9)
    assert local.value <= cert.value * (1 + 1e-6)
    # the perturbations respect the ball and the deviations are what the network does
    size = np.abs(res.delta).max(axis=1) if norm == "linf" else np.linalg.norm(res.delta, axis=1)
    assert np.all(size <= eps * (1 + 1e-12))
    form = net.form()
    for i in range(len(y)):
        true = np.linalg.norm(form.evaluate(y[i] + res.delta[i]) - form.evaluate(y[i]))
        assert res.deviation[i] <= true * (1 + 1e-12) + 1e-15
        assert res.deviation[i] >= true * (1 - 1e-9) - 1e-12


def test_comparison_of_classical_learned_and_adversarially_trained_models():
    m, n, K = 5, 10, 5
    A = ut.problems.SparseRecovery.gaussian(m=m, n=n, seed=1).A
    ista = ut.models.ISTA(A, K, lam=0.05, dtype=torch.float64, device="cpu")
    lista = random_lista(m, n, K, seed=2, scale=0.8)
    adv, data = adversarially_trained_lista(m, n, K, seed=1)
    rows = rob.compare_sensitivity({"ISTA": ista, "LISTA": lista, "LISTA-adv": adv}, data[:8], 0.2,
                                   attack_steps=20)
    for row in rows:
        assert row["attack"].value <= row["lipschitz_upper"].value * (1 + 1e-9), row["name"]
        assert row["max_attack_deviation"] <= row["certified_deviation"] * (1 + 1e-9)
        assert row["lipschitz_upper"].certified and row["ratio_gap"] >= 1 - 1e-9
    ista_row = rows[0]
    assert ista_row["lipschitz_upper"].value <= ista_row["Lambda_K"] * (1 + 1e-7)


def test_lambda_k_closed_form_with_learned_steps():
    rng = np.random.default_rng(0)
    H = rng.normal(size=(6, 4))  # tall: H^T H is invertible, so factors can be < 1
    steps = [0.05, 0.1, 0.2]
    lam = rob.ista_sensitivity(H, steps)
    s = np.linalg.svd(H, compute_uv=False)
    fac = [max(abs(1 - u * s[-1] ** 2), abs(1 - u * s[0] ** 2)) for u in steps]
    manual = sum(steps[k] * s[0] * np.prod(fac[k + 1:]) for k in range(3))
    assert abs(lam.value - manual) <= 1e-12 * manual
    assert lam.value >= manual and lam.certified and lam.side == "upper"
    # and it bounds every unrolled PGD with those steps (here a prox = soft threshold): sampled secants
    W1 = [u * H.T for u in steps]
    W2 = [np.eye(4) - u * H.T @ H for u in steps]
    pgd = ut.models.LISTA.from_weights(W1, W2, [0.01] * 3, dtype=torch.float64, device="cpu")
    att = rob.attack(pgd, rng.normal(size=(4, 6)), 0.5, steps=20)
    assert att.value <= lam.value and lip.upper_bound(pgd).value <= lam.value * (1 + 1e-7)


def test_lambda_k_grows_linearly_for_the_classical_constant_step():
    A = np.random.default_rng(3).normal(size=(4, 8))
    L = np.linalg.norm(A, 2) ** 2
    vals = [rob.ista_sensitivity(A, 1 / L, num_layers=K).value for K in (1, 2, 4, 8)]
    np.testing.assert_allclose(vals, [K / math.sqrt(L) for K in (1, 2, 4, 8)], rtol=1e-12)


def test_certified_sensitivity_without_eps_is_the_lipschitz_bound():
    net = random_lista(3, 4, 3, seed=0)
    up = lip.upper_bound(net, "naive")
    s = rob.certified_sensitivity(net, upper=up)
    assert s.value == up.value and s.certified
    s2 = rob.certified_sensitivity(net, 0.5, norm="linf", upper=up)
    assert abs(s2.value - up.value * 0.5 * math.sqrt(3)) <= 1e-12 * s2.value


def test_robustness_error_paths():
    net = random_lista(3, 4, 2, seed=0)
    y = np.zeros((2, 3))
    with pytest.raises(ut.InvalidInputError, match="norm"):
        rob.attack(net, y, 0.1, norm="l1")
    with pytest.raises(ut.InvalidInputError, match="method"):
        rob.attack(net, y, 0.1, method="fgsm")
    with pytest.raises(ut.InvalidInputError, match="eps"):
        rob.attack(net, y, 0.0)
    with pytest.raises(ut.InvalidInputError):
        rob.attack(net, np.zeros((2, 4)), 0.1)
    with pytest.raises(ut.InvalidInputError, match="NaN"):
        rob.attack(net, np.full((2, 3), np.nan), 0.1)
    with pytest.raises(ut.InvalidInputError, match="upper"):
        rob.certified_sensitivity(net, 0.1, upper=lip.lower_bound(net, num_random=10, ascent_steps=0))
    with pytest.raises(ut.InvalidInputError, match="num_layers"):
        rob.ista_sensitivity(np.eye(3), 0.5)
    with pytest.raises(ut.InvalidInputError, match="step"):
        rob.ista_sensitivity(np.eye(3), [0.5, -1.0])
    with pytest.raises(ut.NotRepresentableError):   # no form(), and sorting has no extractable form
        rob.certified_sensitivity(_Sorting(), 0.1)


class _Sorting(torch.nn.Module):
    m = 3

    def forward(self, y):
        return torch.sort(y, dim=1).values
