"""ut.form.extract on plain PyTorch unrolled networks written in different styles (docs/your_model.md).

Each model is written as a user would write it (no ``form()``, no ``return_all``); the extracted form must
reproduce its forward in float64, and its bounds must equal those of the equivalent zoo model or
hand-written form.  Unrepresentable models are refused with the operation and the source line.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unfoldtheory as ut
from unfoldtheory.form import Form, SoftThreshold
from unfoldtheory.lipschitz._naive import naive_terms
from unfoldtheory.lipschitz._net import eliminate_fixed, from_form
from unfoldtheory.models.base import chain_form

M, N, K = 6, 10, 3
RNG = np.random.default_rng(7)
A_NP = RNG.normal(size=(M, N)) / np.sqrt(M)
L_A = float(np.linalg.norm(A_NP, 2) ** 2)


def t64(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- eight styles


class PlainLISTA(nn.Module):
    """nn.Linear layers in ModuleLists, soft threshold written as sign(z) * relu(|z| - t)."""

    def __init__(self, m=M, n=N, k=K):
        super().__init__()
        torch.manual_seed(1)
        self.W1 = nn.ModuleList([nn.Linear(m, n, bias=False) for _ in range(k)])
        self.W2 = nn.ModuleList([nn.Linear(n, n, bias=False) for _ in range(k)])
        self.theta = nn.Parameter(torch.tensor([0.05, 0.1, 0.02]))

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.W2[0].in_features, dtype=y.dtype)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            x = torch.sign(z) * torch.relu(z.abs() - self.theta[k])
        return x


class PlainALISTA(nn.Module):
    """A shared buffer W, per-layer scalars in a ParameterList, threshold as z - clamp(z, -t, t)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("A", t64(A_NP))
        self.register_buffer("W", t64(A_NP + 0.05 * RNG.normal(size=(M, N))))
        self.gamma = nn.ParameterList([nn.Parameter(torch.tensor(0.8 / L_A + 0.01 * k)) for k in range(K)])
        self.theta = nn.ParameterList([nn.Parameter(torch.tensor(0.03 * (k + 1))) for k in range(K)])

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.A.shape[1], dtype=y.dtype)
        for g, t in zip(self.gamma, self.theta):
            z = x - g * (x @ self.A.T - y) @ self.W
            x = z - torch.clamp(z, -t, t)
        return x

    def reference_form(self):
        A, W = A_NP, self.W.numpy()
        g = [p.item() for p in self.gamma]
        th = [np.full(N, p.item()) for p in self.theta]
        return chain_form(M, [gk * W.T for gk in g], [np.eye(N) - gk * W.T @ A for gk in g], th, "ref")


class PlainStepISTA(nn.Module):
    """Learned steps, per-coordinate thresholds, F.linear, threshold as relu(z - t) - relu(-z - t)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("A", t64(A_NP))
        self.step = nn.Parameter(t64([1.0 / L_A, 1.2 / L_A, 0.9 / L_A]))
        self.theta = nn.Parameter(t64(0.02 + 0.05 * RNG.random((K, N))))

    def forward(self, y):
        x = y.new_zeros(y.shape[0], self.A.shape[1])
        for k in range(K):
            grad = F.linear(F.linear(x, self.A) - y, self.A.T)
            z = x - self.step[k] * grad
            x = F.relu(z - self.theta[k]) - F.relu(-z - self.theta[k])
        return x

    def reference_form(self):
        s = self.step.detach().numpy()
        th = self.theta.detach().numpy()
        return chain_form(M, [sk * A_NP.T for sk in s], [np.eye(N) - sk * A_NP.T @ A_NP for sk in s], list(th),
                          "ref")


class PlainFISTA(nn.Module):
    """Momentum with two state variables, threshold as torch.where(|z| > t, z - t * sign(z), 0)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("A", t64(A_NP))
        self.gamma = nn.Parameter(t64([1.0 / L_A, 0.9 / L_A, 1.1 / L_A]))
        self.theta = nn.Parameter(t64([0.02, 0.03, 0.01]))
        self.beta = nn.Parameter(t64([0.0, 0.3, 0.5]))

    def forward(self, y):
        x_prev = x = torch.zeros(y.shape[0], N, dtype=y.dtype)
        for k in range(K):
            v = x + self.beta[k] * (x - x_prev)
            z = v - self.gamma[k] * ((v @ self.A.T - y) @ self.A)
            x_prev, x = x, torch.where(z.abs() > self.theta[k], z - self.theta[k] * torch.sign(z), 0.0)
        return x

    def zoo(self):
        net = ut.models.UnfoldedFISTA(A_NP, K, device="cpu", dtype=torch.float64)
        with torch.no_grad():
            net.gamma.copy_(self.gamma)
            net.theta.copy_(self.theta)
            net.beta.copy_(self.beta)
        return net


class PlainADMM(nn.Module):
    """Unfolded ADMM with an explicit inverse, F.softshrink, linear states z and u."""

    def __init__(self):
        super().__init__()
        self.register_buffer("A", t64(A_NP))
        self.log_rho = nn.Parameter(t64(np.log([1.0, 0.7, 1.5])))
        self.theta = nn.Parameter(t64([0.1, 0.05, 0.08]))

    def forward(self, y):
        AtA = self.A.T @ self.A
        Aty = y @ self.A
        z = u = torch.zeros(y.shape[0], N, dtype=y.dtype)
        for k in range(K):
            rho = self.log_rho[k].exp()
            Minv = torch.linalg.inv(AtA + rho * torch.eye(N, dtype=y.dtype))
            x = (Aty + rho * (z - u)) @ Minv
            z_new = F.softshrink(x + u, float(self.theta[k]))
            u = u + x - z_new
            z = z_new
        return z

    def zoo(self):
        net = ut.models.UnfoldedADMM(A_NP, K, device="cpu", dtype=torch.float64)
        with torch.no_grad():
            net.log_rho.copy_(self.log_rho)
            net.theta.copy_(self.theta)
        return net


class PlainCorrectedISTA(nn.Module):
    """ISTA plus a small MLP correction (nn.Sequential with bias), threshold as sign * clamp(|z| - t, min=0)."""

    def __init__(self, hidden=4):
        super().__init__()
        torch.manual_seed(2)
        self.register_buffer("A", t64(A_NP))
        self.mlp_x = nn.ModuleList([nn.Linear(N, hidden) for _ in range(K)])
        self.mlp_y = nn.ModuleList([nn.Linear(M, hidden, bias=False) for _ in range(K)])
        self.out = nn.ModuleList([nn.Linear(hidden, N, bias=False) for _ in range(K)])
        self.lam = 0.1

    def forward(self, y):
        g = 1.0 / float(torch.linalg.matrix_norm(self.A, 2) ** 2)
        x = torch.zeros(y.shape[0], N, dtype=y.dtype)
        for k in range(K):
            h = torch.relu(self.mlp_x[k](x) + self.mlp_y[k](y))
            z = x + g * ((y - x @ self.A.T) @ self.A) + self.out[k](h)
            x = torch.sign(z) * torch.clamp(torch.abs(z) - g * self.lam, min=0)
        return x

    def zoo(self):
        net = ut.models.CorrectedISTA(A_NP, K, lam=self.lam, hidden=self.out[0].in_features, device="cpu",
                                      dtype=torch.float64)
        with torch.no_grad():
            for k in range(K):
                net.U[k].copy_(self.out[k].weight)
                net.V[k].copy_(self.mlp_x[k].weight)
                net.R[k].copy_(self.mlp_y[k].weight)
                net.c[k].copy_(self.mlp_x[k].bias)
        return net


class PlainLearnedProx(nn.Module):
    """A learned prox in a learned transform: x = D(soft(E r)), E and D as nn.Linear, threshold F.softshrink
    with a tensor-valued lambda written by hand as sign(z) * relu(|z| - t)."""

    def __init__(self, width=12):
        super().__init__()
        torch.manual_seed(3)
        self.register_buffer("A", t64(A_NP))
        self.E = nn.ModuleList([nn.Linear(N, width, bias=False) for _ in range(K)])
        self.D = nn.ModuleList([nn.Linear(width, N, bias=False) for _ in range(K)])
        self.gamma = nn.Parameter(t64([1.0 / L_A] * K))
        self.theta = nn.Parameter(t64([0.05, 0.02, 0.04]))

    def forward(self, y):
        x = torch.zeros(y.shape[0], N, dtype=y.dtype)
        for k in range(K):
            r = x + self.gamma[k] * ((y - x @ self.A.T) @ self.A)
            c = self.E[k](r)
            x = self.D[k](torch.sign(c) * torch.relu(c.abs() - self.theta[k]))
        return x

    def zoo(self):
        net = ut.models.LearnedProxISTA(A_NP, K, width=self.E[0].out_features, device="cpu", dtype=torch.float64)
        with torch.no_grad():
            net.gamma.copy_(self.gamma)
            net.theta.copy_(self.theta)
            for k in range(K):
                net.E[k].copy_(self.E[k].weight)
                net.D[k].copy_(self.D[k].weight)
        return net


class PlainConvISTA(nn.Module):
    """ISTA whose operator is a 1-D convolution (deconvolution): A x = conv1d(x, h), A^T r = conv_transpose1d."""

    def __init__(self, n=24, taps=5):
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.register_buffer("h", torch.randn(1, 1, taps, generator=g, dtype=torch.float64) / taps)
        self.n, self.m = n, n - taps + 1
        self.step = 0.5
        self.theta = nn.Parameter(t64([0.01, 0.02]))

    def A(self, x):
        return F.conv1d(x.unsqueeze(1), self.h).squeeze(1)

    def At(self, r):
        return F.conv_transpose1d(r.unsqueeze(1), self.h).squeeze(1)

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype)
        for t in self.theta:
            x = F.softshrink(x - self.step * self.At(self.A(x) - y), float(t))
        return x

    def reference_form(self):
        eye = torch.eye(self.n, dtype=torch.float64)
        Amat = self.A(eye).T.numpy()   # (m, n)
        s = self.step
        th = [np.full(self.n, t.item()) for t in self.theta]
        return chain_form(self.m, [s * Amat.T] * 2, [np.eye(self.n) - s * Amat.T @ Amat] * 2, th, "ref")


def _zoo_lista(net: PlainLISTA):
    return ut.models.LISTA.from_weights([lin.weight.detach().numpy() for lin in net.W1],
                                        [lin.weight.detach().numpy() for lin in net.W2],
                                        [float(t) for t in net.theta.detach()], device="cpu", dtype=torch.float64)


CASES = {
    "lista": (PlainLISTA, _zoo_lista, M),
    "alista": (PlainALISTA, lambda net: net.reference_form(), M),
    "step_ista": (PlainStepISTA, lambda net: net.reference_form(), M),
    "fista": (PlainFISTA, lambda net: net.zoo(), M),
    "admm": (PlainADMM, lambda net: net.zoo(), M),
    "corrected": (PlainCorrectedISTA, lambda net: net.zoo(), M),
    "learned_prox": (PlainLearnedProx, lambda net: net.zoo(), M),
    "conv": (PlainConvISTA, lambda net: net.reference_form(), 20),
}


def _reference_naive(ref) -> float:
    """Naive bound of the reference with its linear (identity) states substituted, as extraction folds them."""
    form = ut.form.require_form(ref)
    return naive_terms(eliminate_fixed(from_form(form)))["value"]


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    cls, ref, m = CASES[request.param]
    net = cls().double()
    return request.param, net, ut.form.extract(net, m), ref(net), m


def test_extracted_form_reproduces_forward_to_1e_10(case):
    _, net, form, _, m = case
    Y = np.random.default_rng(11).normal(size=(16, m)) * np.array([[0.1], [1.0], [10.0], [0.5]] * 4)
    with torch.no_grad():
        ref = net(torch.tensor(Y)).numpy()
    got = form.evaluate(Y)
    assert np.abs(got - ref).max() <= 1e-10 * np.abs(ref).max()
    assert form.num_layers == (2 if case[0] == "conv" else K)
    assert "soft_threshold" in form.kinds()


def test_soft_thresholds_are_recognised_as_one_block_with_learned_theta(case):
    _, _, form, ref, _ = case
    ref_form = ut.form.require_form(ref)
    got = sorted(np.round(b.activation.theta, 12).tolist() for b in form.blocks
                 if isinstance(b.activation, SoftThreshold))
    want = sorted(np.round(b.activation.theta, 12).tolist() for b in ref_form.blocks
                  if isinstance(b.activation, SoftThreshold))
    assert got == want


def test_naive_bound_equals_reference(case):
    _, net, _, ref, _ = case
    got = ut.lipschitz.upper_bound(net, method="naive")
    assert got.certified and got.side == "upper"
    want = _reference_naive(ref)
    assert got.value == pytest.approx(want, rel=1e-9)


def test_lipsdp_bound_matches_reference_and_lower_bound_is_below(case):
    _, net, _, ref, m = case
    up = ut.lipschitz.upper_bound(net, method="lipsdp", time_limit=30)
    want = ut.lipschitz.upper_bound(ref, method="lipsdp", time_limit=30)
    assert up.certified
    assert up.value == pytest.approx(want.value, rel=1e-2)
    low = ut.lipschitz.lower_bound(net, input_dim=m, num_random=32, ascent_steps=10, ascent_starts=2,
                                   power_iters=10, smooth_steps=0)
    assert low.value <= up.value * (1 + 1e-9)
    assert low.value > 0


def test_zoo_models_themselves_extract_to_their_own_form():
    net = ut.models.LISTA(A_NP, 3, device="cpu", dtype=torch.float64)
    net.check_inputs = True      # the validation inside forward (isfinite) is not input-dependent
    form = ut.form.extract(net, M)
    ref = net.form()
    assert ut.lipschitz.upper_bound(form, method="naive").value == pytest.approx(
        ut.lipschitz.upper_bound(ref, method="naive").value, rel=1e-12)
    Y = np.random.default_rng(0).normal(size=(5, M))
    np.testing.assert_allclose(form.evaluate(Y, return_all=True), ref.evaluate(Y, return_all=True), atol=1e-12)


# ---------------------------------------------------------------------------------------------- other kinds


class BoxPGD(nn.Module):
    """Projected gradient onto a box (hardtanh / clamp), a ReLU and a leaky-ReLU head."""

    def __init__(self):
        super().__init__()
        self.register_buffer("A", t64(A_NP))
        self.lo = nn.Parameter(t64(-0.5 * np.ones(N)))

    def forward(self, y):
        x = F.hardtanh((y @ self.A) / L_A, -0.3, 0.4)
        x = torch.clamp(x - (x @ self.A.T - y) @ self.A / L_A, min=self.lo, max=torch.full_like(self.lo, 0.6))
        x = F.relu(x @ self.A.T @ self.A + 0.1)
        return F.leaky_relu(x - 0.2, 0.25)


def test_clip_relu_and_leaky_relu_are_recognised():
    net = BoxPGD()
    form = ut.form.extract(net, M)
    assert set(form.kinds()) == {"clip", "relu", "leaky_relu"}
    leaky = [b.activation for b in form.blocks if b.activation.kind == "leaky_relu"]
    assert leaky[0].negative_slope == pytest.approx(0.25, abs=1e-12)
    Y = np.random.default_rng(3).normal(size=(8, M)) * 3
    np.testing.assert_allclose(form.evaluate(Y), net(torch.tensor(Y)).detach().numpy(), atol=1e-12)


def test_layers_override_and_check():
    net = PlainLISTA().double()
    form = ut.form.extract(net, M, layers=[0, 2])
    assert form.num_layers == 2
    with pytest.raises(ut.InvalidInputError, match="found 3 layer"):
        ut.form.extract(net, M, layers=5)


def test_example_input_is_checked_and_validated():
    net = PlainLISTA().double()
    form = ut.form.extract(net, M, example=np.ones(M))
    assert isinstance(form, Form)
    with pytest.raises(ut.InvalidInputError, match="example must have shape"):
        ut.form.extract(net, M, example=np.ones(M + 1))


def test_input_dim_is_inferred_or_asked_for():
    net = PlainLISTA().double()
    assert ut.form.infer_input_dim(net) == M   # W1's in_features (W2's is tried and fails)

    class NoHint(nn.Module):
        def forward(self, y):
            return torch.relu(y)

    with pytest.raises(ut.InvalidInputError, match=r"ut.form.extract\(model, input_dim=m\)"):
        ut.lipschitz.upper_bound(NoHint(), method="naive")
    with pytest.raises(ut.InvalidInputError, match="input_dim"):
        ut.form.extract(net, M + 1)


def test_require_form_caches_until_the_weights_change():
    net = PlainLISTA().double()
    f1 = ut.form.require_form(net)
    assert ut.form.require_form(net) is f1
    with torch.no_grad():
        net.theta[0] = 0.3
    f2 = ut.form.require_form(net)
    assert f2 is not f1 and f2.blocks[0].activation.theta[0] == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------------- refusals


class TopK(PlainLISTA):
    def forward(self, y):
        x = torch.zeros(y.shape[0], N)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            idx = torch.topk(z.abs(), 3, dim=1).indices   # support selection
            x = torch.zeros_like(z).scatter(1, idx, z.gather(1, idx))
        return x


class AdaptiveThreshold(PlainLISTA):
    def forward(self, y):
        x = torch.zeros(y.shape[0], N)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            t = 0.1 * z.abs().mean(dim=1, keepdim=True)   # threshold computed from the input
            x = torch.sign(z) * torch.relu(z.abs() - t)
        return x


class HardThreshold(PlainLISTA):
    def forward(self, y):
        x = torch.zeros(y.shape[0], N)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            x = z * (z.abs() > self.theta[k])   # hard threshold
        return x


class SVT(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, y):
        X = self.lin(y).reshape(y.shape[0], 4, 4)
        U, S, Vh = torch.linalg.svd(X)   # singular value thresholding
        return (U * F.relu(S - 0.1).unsqueeze(1) @ Vh).reshape(y.shape[0], 16)


class Branching(PlainLISTA):
    def forward(self, y):
        x = torch.zeros(y.shape[0], N)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            if (z > 0).any():   # data-dependent control flow
                z = z * 0.5
            x = F.softshrink(z, 0.1)
        return x


@pytest.mark.parametrize("cls,m,op,line", [
    (TopK, M, "topk", "idx = torch.topk(z.abs(), 3, dim=1).indices"),
    (AdaptiveThreshold, M, "mul", "x = torch.sign(z) * torch.relu(z.abs() - t)"),
    (HardThreshold, M, "mul", "x = z * (z.abs() > self.theta[k])"),
    (SVT, 16, "svd", "U, S, Vh = torch.linalg.svd(X)"),
    (Branching, M, "any", "if (z > 0).any():"),
])
def test_unrepresentable_models_are_refused_with_op_and_source_line(cls, m, op, line):
    net = cls().double()
    with pytest.raises(ut.NotRepresentableError) as info:
        ut.form.extract(net, m)
    msg = str(info.value)
    assert f"aten.{op}" in msg or f"aten._linalg_{op}" in msg
    assert "test_extract.py" in msg and line in msg
    # the certificate refuses too, or answers an explicit infinite bound when asked to
    with pytest.raises(ut.NotRepresentableError):
        ut.lipschitz.upper_bound(net, method="naive")
    inf = ut.lipschitz.upper_bound(net, method="naive", on_unrepresentable="inf")
    assert inf.value == float("inf") and not inf.certified


# ---------------------------------------------------------------------------------------------- one protocol


def _lasso_data(n_inst=12, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_inst, N)) * (rng.random((n_inst, N)) < 0.3)
    return X @ A_NP.T, X


def test_adapt_gives_plain_modules_the_zoo_protocol():
    net = PlainLISTA().double()
    zoo = _zoo_lista(net)
    ad = ut.models.adapt(net)
    assert ut.models.adapt(zoo) is zoo and ut.models.adapt(ad) is ad
    assert (ad.m, ad.n, ad.num_layers) == (M, N, K)
    Y, _ = _lasso_data()
    outs = ad(Y[0], return_all=True)                  # numpy, 1-D
    ref = zoo(torch.tensor(Y[0]), return_all=True)
    assert len(outs) == K and outs[0].shape == (N,)
    for a, b in zip(outs, ref):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ad(Y).detach().numpy(), zoo(torch.tensor(Y)).detach().numpy(), atol=1e-12)
    with pytest.raises(ut.InvalidInputError, match="y must have shape"):
        ad(np.ones(M + 1))


def test_metrics_generalization_and_theorem_checks_accept_a_plain_module():
    net = PlainLISTA().double()
    zoo = _zoo_lista(net)
    Y, X = _lasso_data()
    np.testing.assert_allclose(ut.metrics.per_layer_nmse_db(net, Y, X), ut.metrics.per_layer_nmse_db(zoo, Y, X),
                               rtol=1e-10)
    r_plain = ut.generalization.sample_convergence_bound(net, (Y, X), eps=-5.0)
    r_zoo = ut.generalization.sample_convergence_bound(zoo, (Y, X), eps=-5.0)
    np.testing.assert_array_equal(r_plain.risk_upper, r_zoo.risk_upper)
    c_plain, c_zoo = ut.convergence.lista_cp_coupling(net, A_NP), ut.convergence.lista_cp_coupling(zoo, A_NP)
    np.testing.assert_allclose(c_plain.relative_spectral, c_zoo.relative_spectral, rtol=1e-10)
    assert c_plain.verdict == c_zoo.verdict
    prof = ut.convergence.convergence_profile(net, ut.problems.Lasso(A_NP, 0.1), Y, X)
    assert len(prof.layers) == K
    low = ut.lipschitz.lower_bound(net, num_random=16, ascent_steps=5, ascent_starts=2, power_iters=5,
                                   smooth_steps=0)   # input_dim inferred
    assert 0 < low.value <= ut.lipschitz.upper_bound(net, method="naive").value


# ---------------------------------------------------------------------------------------------- docs


def test_docs_your_model_example_runs_and_readme_block_compiles(tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "your_model.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc.split("## 8.", 1)[1], re.S).group(1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Form('extracted MyLISTA'") and "6 layer outputs" in lines[0]
    upper, lower = float(lines[1]), float(lines[2])
    assert 0 < lower <= upper
    assert lines[-2] == "holds"      # the coupling W2 = I - W1 A holds at the ISTA initialisation
    L = float(np.linalg.norm(ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0).A, 2) ** 2)
    assert float(lines[-1]) == pytest.approx(L / 24, rel=1e-5)    # PEP of 6 ISTA steps read from the form
    readme = (root / "README.md").read_text().split("## Your own model", 1)[1]
    compile(re.search(r"```python\n(.*?)```", readme, re.S).group(1), "README.md: Your own model", "exec")


# ---------------------------------------------------------------------------------------------- property suite


class SuiteLISTA(nn.Module):
    """A plain 3-layer LISTA at ISTA initialisation, as a check_architecture factory builds it."""

    def __init__(self, A, num_layers=3, declare=False):
        super().__init__()
        m, n = A.shape
        s = 1.0 / np.linalg.norm(A, 2) ** 2
        self.W1 = nn.ModuleList([nn.Linear(m, n, bias=False) for _ in range(num_layers)])
        self.W2 = nn.ModuleList([nn.Linear(n, n, bias=False) for _ in range(num_layers)])
        with torch.no_grad():
            for w1, w2 in zip(self.W1, self.W2):
                w1.weight.copy_(torch.tensor(s * A.T))
                w2.weight.copy_(torch.tensor(np.eye(n) - s * A.T @ A))
        self.theta = nn.Parameter(torch.full((num_layers,), 0.1 * s))
        self._A, self._declare = A, declare
        if declare:
            self.classical_problem = lambda: ut.problems.Lasso(self._A, 0.1)

    def with_layers(self, num_layers):
        return SuiteLISTA(self._A, num_layers, self._declare)

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.W2[0].in_features, dtype=y.dtype)
        for w1, w2, t in zip(self.W1, self.W2, self.theta):
            z = w1(y) + w2(x)
            x = torch.sign(z) * torch.relu(z.abs() - t)
        return x


@pytest.mark.parametrize("declare", [False, True])
def test_check_architecture_on_a_plain_lista(declare):
    report = ut.testing.check_architecture(lambda problem: SuiteLISTA(problem.A, declare=declare),
                                           max_examples=3)
    res = report.results
    assert report.passed, report
    na = {name: r.reason for name, r in res.items() if r.status == "not applicable"}
    assert set(na) <= {"device_consistent", "fixed_point", "deep_convergence"}
    assert ("fixed_point" in na) == (not declare)
    for name in ("form_faithful", "form_slopes", "lipschitz_sound", "contraction_sound", "interface"):
        assert res[name].status == "holds"
    assert "W2.0.weight" in res["gradients"].reason and "cannot influence the output" in res["gradients"].reason


# ---------------------------------------------------------------------------------------------- command line

PLAIN_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.W1 = nn.ModuleList([nn.Linear(4, 6, bias=False) for _ in range(2)])
        self.W2 = nn.ModuleList([nn.Linear(6, 6, bias=False) for _ in range(2)])
        self.theta = nn.Parameter(torch.tensor([0.05, 0.1]))

    def forward(self, y):
        x = torch.zeros(y.shape[0], 6, dtype=y.dtype)
        for w1, w2, t in zip(self.W1, self.W2, self.theta):
            z = w1(y) + w2(x)
            x = z - torch.clamp(z, -t, t)
        return x


def make():
    return Net()
'''


def _cli_rows(capsys, argv):
    import json

    from unfoldtheory import cli

    capsys.readouterr()
    assert cli.main(argv) == 0
    return {r["quantity"]: r["bound"] for r in json.loads(capsys.readouterr().out)["bounds"]}


def test_cli_bounds_on_module_factory_with_weights_and_on_a_pt2_archive(tmp_path, capsys):
    import importlib.util

    (tmp_path / "mymodel.py").write_text(PLAIN_MODULE)
    spec = importlib.util.spec_from_file_location("mymodel", tmp_path / "mymodel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(5)
    net = mod.make()                       # trained weights differ from a fresh make()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    ref = net.double()
    want = {m: ut.lipschitz.upper_bound(ref, method=m, time_limit=2).value for m in ("naive", "lipsdp")}

    rows = _cli_rows(capsys, ["bounds", f"{tmp_path / 'mymodel.py'}:make", "--weights", str(tmp_path / "sd.pt"),
                              "--json", "--time-limit", "2"])
    assert rows["Lipschitz constant of y -> x_K (naive)"]["value"] == pytest.approx(want["naive"], rel=1e-12)
    assert rows["Lipschitz constant of y -> x_K (lipsdp)"]["value"] == pytest.approx(want["lipsdp"], rel=1e-2)
    assert rows["Lipschitz constant of y -> x_K (lipsdp)"]["certified"]
    assert "contraction factor of x_1 -> x_K (fixed y)" in rows

    ep = torch.export.export(ref, (torch.randn(3, 4, dtype=torch.float64),))   # static batch of 3
    torch.export.save(ep, tmp_path / "net.pt2")
    rows2 = _cli_rows(capsys, ["bounds", str(tmp_path / "net.pt2"), "--json", "--time-limit", "2"])
    assert rows2["Lipschitz constant of y -> x_K (naive)"]["value"] == pytest.approx(want["naive"], rel=1e-12)

    from unfoldtheory import cli

    assert cli.main(["bounds", f"{tmp_path / 'mymodel.py'}:nothing"]) == 2
    assert "no callable 'nothing'" in capsys.readouterr().err


class WithLogging(PlainLISTA):
    """Computes a nonlinear statistic that does not reach the output (it must not become a block)."""

    def forward(self, y):
        x = torch.zeros(y.shape[0], N, dtype=y.dtype)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            self.last_active = torch.relu(z).sum(dim=1)     # logged, never used
            x = F.softshrink(z, 0.05)
        return x


def test_blocks_that_do_not_reach_the_output_are_dropped():
    form = ut.form.extract(WithLogging().double(), M)
    assert form.kinds() == ["soft_threshold"] * K and form.num_layers == K


# ---------------------------------------------------------------------------------------------- more styles

_G = torch.Generator().manual_seed(9)
_W1 = torch.randn(N, M, generator=_G, dtype=torch.float64)
_W2 = 0.3 * torch.randn(N, N, generator=_G, dtype=torch.float64)


class ColumnConvention(nn.Module):
    """States as columns (n, batch), W @ x, a 1-D input branch."""

    def forward(self, y):
        if y.dim() == 1:
            y = y[None]
        x = torch.zeros(N, y.shape[0], dtype=y.dtype)
        for _ in range(3):
            z = _W1 @ y.T + _W2 @ x
            x = torch.sign(z) * torch.relu(z.abs() - 0.1)
        return x.T


class EinsumStack(nn.Module):
    """einsum products, torch.stack and a reduction over the stacked axis, leaky ReLU head."""

    def forward(self, y):
        x = F.softshrink(torch.einsum("ij,bj->bi", _W1, y), 0.1)
        z = torch.stack([x, 2 * x], dim=1).sum(dim=1) + torch.einsum("ij,bj->bi", _W2, x)
        return F.leaky_relu(z, 0.1)


class InPlaceOps(nn.Module):
    """In-place clamp_ and mul_, concatenated outputs."""

    def forward(self, y):
        z = y @ _W1.T
        x = z.clone()
        x.clamp_(min=-0.2, max=0.3)
        r = z - x
        r.mul_(2.0)
        return torch.cat([r, x], dim=1)


class Conv2dNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.c = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, y):
        return torch.relu(self.c(y.reshape(y.shape[0], 1, 4, 4))).flatten(1)


@pytest.mark.parametrize("cls,m,kinds,layers", [
    (ColumnConvention, M, ["soft_threshold"] * 3, 3),
    (EinsumStack, M, ["soft_threshold", "leaky_relu"], 1),
    (InPlaceOps, M, ["soft_threshold", "clip"], 1),
    (Conv2dNet, 16, ["relu"], 1),
])
def test_other_styles_extract_exactly(cls, m, kinds, layers):
    net = cls().double()
    form = ut.form.extract(net, m)
    assert form.kinds() == kinds and form.num_layers == layers
    Y = np.random.default_rng(2).normal(size=(6, m)) * 2
    with torch.no_grad():
        ref = net(torch.tensor(Y)).numpy()
    assert np.abs(form.evaluate(Y) - ref).max() <= 1e-12 * max(np.abs(ref).max(), 1.0)


def test_piecewise_linear_recognition_unit():
    from unfoldtheory.form import _pl

    t = np.array([0.1, 0.0, 2.0, 0.5])
    z0 = np.zeros((1, 4))

    def kinks(*gs):
        return np.concatenate([z0] + [_pl.roots(g, z0) for g in gs])

    soft = _pl.classify(lambda P: np.sign(P) * np.maximum(np.abs(P) - t, 0), kinks(lambda P: np.abs(P) - t))
    # t = 0 is the identity (affine here; blocks_from keeps it in the soft threshold block with theta = 0)
    assert list(soft.kind) == ["soft", "affine", "soft", "soft"] and not soft.bad
    assert np.allclose(soft.theta[[0, 2, 3]], t[[0, 2, 3]], atol=1e-15)
    # |z| is continuous but not monotone: exact decomposition into ReLUs plus an affine part
    ab = _pl.classify(lambda P: np.abs(P - t), kinks(lambda P: P - t))
    assert list(ab.kind) == ["general"] * 4
    Z = np.linspace(-3, 3, 61)[:, None] * np.ones((1, 4))
    np.testing.assert_allclose(_pl.evaluate(ab, Z), np.abs(Z - t), atol=1e-14)
    # a hard threshold jumps: refused for every coordinate with t > 0
    hard = _pl.classify(lambda P: np.where(np.abs(P) > t, P, 0.0), kinks(lambda P: np.abs(P) - t))
    assert sorted(i for i, _ in hard.bad) == [0, 2, 3] and "discontinuous" in hard.bad[0][1]
    # a quadratic is not piecewise linear
    sq = _pl.classify(lambda P: P * np.maximum(P, 0), kinks(lambda P: P))
    assert len(sq.bad) == 4 and "not piecewise linear" in sq.bad[0][1]
