"""ISTA and LISTA: convergence, initialisation, recursion, devices, dtypes and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unfoldtheory as ut


def test_ista_converges_to_the_reference_optimum(small_problem):
    gen, prob, sample = small_problem
    sol = ut.reference.solve(prob, sample.y, method="cvxpy")
    net = ut.models.ISTA(prob.A, lam=prob.lam, num_layers=3000, dtype=torch.float64, device="cpu")
    x = net(sample.y).numpy()
    err = np.linalg.norm(x - sol.x, axis=1) / np.linalg.norm(sol.x, axis=1)
    assert err.max() < 1e-6


def test_ista_is_a_descent_method(small_problem):
    _, prob, sample = small_problem
    net = ut.models.ISTA(prob.A, lam=prob.lam, num_layers=50, dtype=torch.float64, device="cpu")
    values = np.array([prob.objective(x.numpy(), sample.y) for x in net(sample.y, return_all=True)])
    assert np.all(np.diff(values, axis=0) <= 1e-12)


def test_lista_at_initialisation_equals_ista(small_problem, device):
    _, prob, sample = small_problem
    ista = ut.models.ISTA(prob.A, 12, lam=prob.lam, device=device, dtype=torch.float64)
    lista = ut.models.LISTA(prob.A, 12, lam=prob.lam, device=device, dtype=torch.float64)
    y = torch.tensor(sample.y, device=device)
    with torch.no_grad():
        for a, b in zip(ista(y, return_all=True), lista(y, return_all=True)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert lista.theta.shape == (12, 1) and float(lista.theta[0].detach()) == pytest.approx(ista.threshold)


def _numpy_lista(W1, W2, theta, y):
    x = np.zeros(W1[0].shape[0])
    outs = []
    for k in range(len(W1)):
        z = W1[k] @ y + (W2[k] @ x if k else 0)
        x = np.sign(z) * np.maximum(np.abs(z) - theta[k], 0)
        outs.append(x)
    return outs


def test_from_weights_reproduces_the_numpy_recursion(rng):
    m, n, K = 6, 10, 5
    W1 = [rng.normal(size=(n, m)) for _ in range(K)]
    W2 = [rng.normal(size=(n, n)) * 0.3 for _ in range(K)]
    theta = [abs(rng.normal()) * 0.2 if k % 2 else np.abs(rng.normal(size=n)) * 0.2 for k in range(K)]
    net = ut.models.LISTA.from_weights(W1, W2, theta, dtype=torch.float64, device="cpu")
    assert net.num_layers == K and net.theta.shape == (K, n)
    for y in rng.normal(size=(4, m)):
        expected = _numpy_lista(W1, W2, theta, y)
        with torch.no_grad():
            got = net(y, return_all=True)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-13, atol=1e-13)
    # the weights round-trip
    w = net.weights()
    for k in range(K):
        np.testing.assert_array_equal(w["W1"][k], W1[k])
        np.testing.assert_array_equal(w["W2"][k], W2[k])
        np.testing.assert_allclose(w["theta"][k], np.broadcast_to(theta[k], (n,)))


def test_single_instance_and_batch_agree(small_problem):
    _, prob, sample = small_problem
    net = ut.models.LISTA(prob.A, 4, device="cpu", dtype=torch.float64)
    with torch.no_grad():
        batch = net(sample.y)
        assert batch.shape == (6, 30) and net(sample.y[2]).shape == (30,)
        torch.testing.assert_close(net(sample.y[2]), batch[2])
        all_layers = net(sample.y, return_all=True)
    assert len(all_layers) == 4
    torch.testing.assert_close(all_layers[-1], batch)


def test_defaults_float32_and_float64_available(small_problem):
    _, prob, sample = small_problem
    assert ut.models.LISTA(prob.A, 2, device="cpu").dtype == torch.float32
    assert ut.models.LISTA(prob.A, 2, device="cpu")(sample.y).dtype == torch.float32
    assert ut.models.ISTA(prob.A, 2, lam=0.1, device="cpu", dtype=torch.float64)(sample.y).dtype == torch.float64


def test_models_run_on_the_fixture_device(small_problem, device):
    _, prob, sample = small_problem
    net = ut.models.LISTA(prob.A, 3, device=device)
    assert net.device.type == device.type
    out = net(torch.tensor(sample.y, dtype=torch.float32, device=device))
    assert out.device.type == device.type
    moved = ut.models.LISTA(prob.A, 3, device="cpu").to(device)
    assert moved.device.type == device.type and moved(sample.y).device.type == device.type


def test_gradients_reach_every_trainable_weight_but_w2_of_layer_one(small_problem):
    _, prob, sample = small_problem
    net = ut.models.LISTA(prob.A, 3, device="cpu")
    loss = ((net(sample.y) - torch.tensor(sample.x, dtype=torch.float32)) ** 2).sum()
    loss.backward()
    assert net.W1.grad.abs().sum() > 0 and net.theta.grad.abs().sum() > 0
    assert net.W2.grad[1:].abs().sum() > 0
    assert net.W2.grad[0].abs().sum() == 0  # W2_1 multiplies x_0 = 0
    assert not any(p.requires_grad for p in ut.models.ISTA(prob.A, 3, lam=0.1, device="cpu").parameters())


def test_reprs_are_informative(small_problem):
    _, prob, _ = small_problem
    assert "num_layers=7" in repr(ut.models.LISTA(prob.A, 7, device="cpu"))
    assert "step=" in repr(ut.models.ISTA(prob.A, 2, lam=0.1, device="cpu"))


def test_large_ista_step_warns(small_problem):
    _, prob, _ = small_problem
    with pytest.warns(UserWarning, match="need not converge"):
        ut.models.ISTA(prob.A, 2, lam=0.1, step=2.5 / prob.L, device="cpu")
