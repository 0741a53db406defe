"""worst_case on your own torch module: the schedule read from its analysis form (docs/theory/pep.md §8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unfoldtheory as ut
import unfoldtheory.convergence as conv
from unfoldtheory import models
from unfoldtheory.models.momentum import fista_momentum

torch.set_num_threads(1)
LAM = 0.1


class PlainFISTA(nn.Module):
    """A user's unfolded FISTA: learned steps and momentum, threshold gamma_k * lam, written as plain torch."""

    def __init__(self, A, K=5, lam=LAM):
        super().__init__()
        A = torch.as_tensor(A, dtype=torch.float64)
        self.register_buffer("D", A)
        L = float(torch.linalg.matrix_norm(A, 2) ** 2)
        self.step = nn.Parameter(torch.full((K,), 1.0 / L, dtype=torch.float64))
        self.beta = nn.Parameter(torch.tensor(fista_momentum(K), dtype=torch.float64))
        self.lam = lam

    def forward(self, y):
        D = self.D
        x = x_prev = torch.zeros(y.shape[0], D.shape[1], dtype=y.dtype)
        for g, b in zip(self.step, self.beta):
            v = x + b * (x - x_prev)
            z = v - g * (v @ D.T - y) @ D
            x_prev, x = x, torch.sign(z) * torch.relu(z.abs() - g * self.lam)
        return x


class PlainStepISTA(nn.Module):
    """Learned-step ISTA with nn.Linear layers (W1 = gamma A^T, W2 = I - gamma A^T A) and an optional ReLU prox."""

    def __init__(self, A, gammas, lam=LAM, nonnegative=False):
        super().__init__()
        m, n = A.shape
        self.W1 = nn.ModuleList([nn.Linear(m, n, bias=False, dtype=torch.float64) for _ in gammas])
        self.W2 = nn.ModuleList([nn.Linear(n, n, bias=False, dtype=torch.float64) for _ in gammas])
        with torch.no_grad():
            for w1, w2, g in zip(self.W1, self.W2, gammas):
                w1.weight.copy_(torch.tensor(g * A.T))
                w2.weight.copy_(torch.tensor(np.eye(n) - g * A.T @ A))
        self.theta = nn.Parameter(torch.tensor(np.asarray(gammas) * lam, dtype=torch.float64))
        self.nonnegative = nonnegative

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.W2[0].in_features, dtype=y.dtype)
        for w1, w2, t in zip(self.W1, self.W2, self.theta):
            z = w1(y) + w2(x)
            x = torch.relu(z - t) if self.nonnegative else z - torch.clamp(z, -t, t)
        return x


@pytest.fixture(scope="module")
def A():
    return np.random.default_rng(0).standard_normal((8, 16)) / np.sqrt(8)


def test_plain_fista_reads_the_schedule_the_zoo_model_runs(A):
    rng = np.random.default_rng(1)
    net, zoo = PlainFISTA(A), models.UnfoldedFISTA(A, 5, lam=LAM, dtype=torch.float64)
    with torch.no_grad():
        net.step.mul_(torch.tensor(rng.uniform(0.5, 1.8, 5)))
        net.beta.copy_(torch.tensor(rng.uniform(0.0, 1.1, 5)))
        zoo.gamma.copy_(net.step)
        zoo.beta.copy_(net.beta)
        zoo.theta.copy_(net.step * LAM)
    sch, ref = conv.schedule_of(net, A=A), conv.schedule_of(zoo)
    assert sch.method == ref.method == "momentum_prox_grad" and sch.extra["read_from"] == "analysis form"
    np.testing.assert_allclose(sch.steps, ref.steps, rtol=1e-12)
    np.testing.assert_allclose(sch.momentum[1:], ref.momentum[1:], rtol=1e-10, atol=1e-12)   # beta_1 is moot
    assert sch.lam == pytest.approx(LAM, rel=1e-12)
    b, b_ref = conv.worst_case(net, A=A), conv.worst_case(zoo)
    assert b.certified and b.value == pytest.approx(b_ref.value, rel=1e-8)
    # the zoo model's own form (identity copy blocks for x_{k-2}) reads the same schedule
    np.testing.assert_allclose(conv.schedule_of_form(zoo, A).momentum[1:], ref.momentum[1:], rtol=1e-10)


def test_plain_step_ista_and_its_per_layer_certificate_meet_the_network(A):
    """Per-layer certified worst case >= the observed (F(x_k) - F*) / ||x*||^2 of the plain network's layers."""
    rng = np.random.default_rng(2)
    L = float(np.linalg.norm(A, 2) ** 2)
    gammas = rng.uniform(0.4, 1.9, 4) / L
    bounds = conv.worst_case_per_layer(PlainStepISTA(A, gammas), A=A)
    assert len(bounds) == 4 and all(b.certified for b in bounds)
    prob = ut.problems.Lasso(A, lam=LAM)
    Y = rng.standard_normal((30, A.shape[0])) * np.array([0.1, 1.0, 10.0])[rng.integers(0, 3, 30), None]
    sol = ut.reference.solve(prob, Y)
    r2 = np.sum(sol.x ** 2, axis=1)
    for k, b in enumerate(bounds, 1):
        prefix = PlainStepISTA(A, gammas[:k])
        xk = prefix(torch.tensor(Y)).detach().numpy()
        ratio = (prob.objective(xk, Y) - (sol.objective - sol.gap)) / r2
        assert 0 < np.max(ratio) <= b.value
        assert b.witness["schedule"]["layers"] == k
    ista = conv.worst_case_per_layer(models.ISTA(A, 3, lam=LAM, dtype=torch.float64))
    np.testing.assert_allclose([b.value for b in ista], [L / (4 * k) for k in (1, 2, 3)], rtol=1e-5)


def test_nonnegative_prox_and_the_refusals_name_the_layer(A):
    L = float(np.linalg.norm(A, 2) ** 2)
    gammas = np.array([1.0, 1.5, 0.8]) / L
    sch = conv.schedule_of(PlainStepISTA(A, gammas, nonnegative=True), A=A)
    assert sch.method == "prox_grad" and "indicator" in sch.extra["h"]
    np.testing.assert_allclose(sch.steps, gammas * sch.L, rtol=1e-12)
    net = PlainStepISTA(A, gammas)
    with torch.no_grad():
        net.theta[1] *= 1.3
    with pytest.raises(ut.errors.NotRepresentableError, match=r"theta_2\[0\] .* not the method on one LASSO"):
        conv.worst_case(net, A=A)
    net = PlainStepISTA(A, gammas)
    with torch.no_grad():
        net.W1[2].weight.add_(1e-3)
    with pytest.raises(ut.errors.NotRepresentableError, match=r"layer 3: the input injection is not gamma \* A\^T"):
        conv.worst_case(net, A=A)
    with pytest.raises(ut.InvalidInputError, match="pass A="):
        conv.worst_case(PlainStepISTA(A, gammas))
    with pytest.raises(ut.InvalidInputError, match="A: PlainStepISTA does not run on inputs of dimension m = 5"):
        conv.schedule_of(PlainStepISTA(A, gammas), A=A[:5])
    with pytest.raises(ut.InvalidInputError, match="A is only used"):
        conv.worst_case([1.0, 1.0], A=A)


def test_convergence_profile_of_a_plain_module_carries_the_pep_rate(A):
    rng = np.random.default_rng(3)
    L = float(np.linalg.norm(A, 2) ** 2)
    net = PlainStepISTA(A, rng.uniform(0.5, 1.5, 4) / L)
    prob = ut.problems.Lasso(A, lam=LAM)
    prof = conv.convergence_profile(net, prob, rng.standard_normal((20, A.shape[0])))
    pep = prof.rates["pep"]
    assert pep["certified"] and pep["holds"] and len(pep["values"]) == 4
