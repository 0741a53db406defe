"""Lipschitz certificates: soundness (lower <= every upper, attacks never beat an upper bound), exactness
where the theory says so, agreement with a plain dense cvxpy LipSDP, metamorphic invariances, corrupted
certificates, local and parameter constants, and the error paths."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
from _helpers import random_lista
from unfoldtheory import lipschitz as lip
from unfoldtheory import robustness as rob
from unfoldtheory.form import Block, Form, Identity, LeakyReLU, ReLU, SoftThreshold
from unfoldtheory.lipschitz import _lipsdp
from unfoldtheory.lipschitz._net import from_form

FAST_LOWER = dict(num_random=60, power_iters=25, ascent_steps=40, ascent_starts=8, smooth_steps=10)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# ---------------------------------------------------------------------------------------------- helpers
def train_lista(m, n, K, seed, steps=60):
    """A LISTA initialised as ISTA and trained for a few Adam steps on sparse recovery (own loop)."""
    gen = ut.problems.SparseRecovery.gaussian(m=m, n=n, p=0.2, snr_db=30, seed=seed)
    data = gen.sample(256, seed=seed + 1)
    torch.manual_seed(seed)
    net = ut.models.LISTA(gen.A, K, lam=0.05, dtype=torch.float64, device="cpu")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    Y, X = torch.tensor(data.y), torch.tensor(data.x)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(Y) - X) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            net.theta.clamp_(min=0.0)
    return net, data.y


def dense_lipsdp_reference(form):
    """Plain dense LipSDP-Neuron in cvxpy, written independently of the library (xi = (dy, dw)):
    rho*I_y - O^T O + sum_i t_i (dw_i - a_i dz_i)(dw_i - b_i dz_i) >= 0, dz = A dw + B dy."""
    import cvxpy as cp

    d = form.dense()
    A, B, C, a, b = d["A"], d["B"], d["C"], d["alpha"], d["beta"]
    N, m = A.shape[0], B.shape[1]
    E = np.hstack([B, A])                              # dz = E xi
    F = np.hstack([np.zeros((N, m)), np.eye(N)])        # dw = F xi
    P, R = F - a[:, None] * E, F - b[:, None] * E
    O = np.hstack([np.zeros((C.shape[0], m)), C])
    t, rho = cp.Variable(N, nonneg=True), cp.Variable()
    S = np.zeros((N + m, N + m))
    S[:m, :m] = np.eye(m)
    PTR = P.T @ cp.diag(t) @ R
    M = rho * S - O.T @ O + 0.5 * (PTR + PTR.T)
    prob = cp.Problem(cp.Minimize(rho), [0.5 * (M + M.T) >> 0])
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal", prob.status
    return math.sqrt(rho.value)


def secant(form, y, d):
    return np.linalg.norm(form.evaluate(y + d) - form.evaluate(y)) / np.linalg.norm(d)


# ---------------------------------------------------------------------------------------------- soundness
@settings(deadline=None, max_examples=40)
@given(m=st.integers(1, 6), n=st.integers(1, 10), K=st.integers(1, 8), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.5, 1.0, 2.0]))
def test_soundness_on_random_networks(m, n, K, seed, scale):
    net = random_lista(m, n, K, seed, scale)
    naive = lip.upper_bound(net, "naive")
    layer = lip.upper_bound(net, "layerwise")
    sdp = lip.upper_bound(net, "lipsdp")
    low = lip.lower_bound(net, seed=seed, **FAST_LOWER)
    y = np.random.default_rng(seed).normal(size=(4, m)) * 2
    att = rob.attack(net, y, 0.5, steps=15)
    for ub in (naive, layer, sdp):
        assert ub.side == "upper" and ub.certified, ub
        assert low.value <= ub.value * (1 + 1e-9), (low, ub)
        assert att.value <= ub.value * (1 + 1e-9), (att, ub)
    assert low.side == "lower" and low.certified
    assert sdp.value <= naive.value * (1 + 1e-7)
    assert sdp.value <= layer.value * (1 + 1e-6)
    assert layer.value <= naive.value * (1 + 1e-7)


@pytest.fixture(scope="module")
def trained_nets():
    return [train_lista(6, 12, K, seed=K) for K in (1, 3, 5, 8)]


def test_soundness_on_trained_networks(trained_nets):
    for net, data in trained_nets:
        naive = lip.upper_bound(net, "naive")
        sdp = lip.upper_bound(net, "lipsdp")
        low = lip.lower_bound(net, data=data[:64], **FAST_LOWER)
        att = rob.attack(net, data[:16], 0.3, steps=20)
        att_inf = rob.attack(net, data[:16], 0.1, norm="linf", method="bim", steps=20)
        assert sdp.certified and naive.certified and low.certified
        assert max(low.value, att.value, att_inf.value) <= sdp.value * (1 + 1e-9)
        assert sdp.value <= naive.value * (1 + 1e-7)
        if net.num_layers > 1:
            assert sdp.value < 0.9 * naive.value  # the structured SDP is much tighter than naive here


_TRAINED_WIDTHS = [(3, 6), (6, 12), (5, 16)]


@functools.lru_cache(maxsize=None)
def _trained_pool():
    """Briefly trained networks, depths 1..8 over three widths: LISTA with an own Adam loop, and ALISTA /
    LISTA-CP trained by unfoldtheory.training.train (tiny budgets: the whole pool trains in ~2 s)."""
    torch.set_num_threads(1)
    pool = []
    for K in range(1, 9):
        m, n = _TRAINED_WIDTHS[K % 3]
        net, data = train_lista(m, n, K, seed=10 + K, steps=40)
        pool.append((f"LISTA K={K} {m}x{n}", net, data))
    for cls, K, (m, n), lr in [(ut.models.ALISTA, 3, (6, 12), 1e-2), (ut.models.LISTACP, 6, (5, 16), 3e-3),
                               (ut.models.ALISTA, 8, (3, 6), 1e-2)]:
        gen = ut.problems.SparseRecovery.gaussian(m=m, n=n, p=0.2, snr_db=30, seed=K)
        net = cls(gen.A, K, dtype=torch.float64, device="cpu")
        ut.training.train(net, gen, epochs=1, steps_per_epoch=40, batch_size=32, val_size=16, lr=lr,
                          progress=False, seed=K)
        pool.append((f"{cls.__name__} K={K} {m}x{n}", net, gen.sample(64, seed=K + 1).y))
    return pool


@settings(deadline=None, max_examples=10)
@given(index=st.integers(0, 10), seed=st.integers(0, 2**16), eps=st.sampled_from([0.05, 0.5, 5.0]))
def test_soundness_on_trained_networks_property(index, seed, eps):
    """Hypothesis over trained networks (depths 1 to 8, three widths, LISTA / ALISTA / LISTA-CP): the witnessed
    lower bound and attacks (l2 and l-infinity) never exceed any certified upper bound, and the upper bounds
    are ordered."""
    name, net, data = _trained_pool()[index]
    rng = np.random.default_rng(seed)
    naive = lip.upper_bound(net, "naive")
    layer = lip.upper_bound(net, "layerwise")
    sdp = lip.upper_bound(net, "lipsdp")
    low = lip.lower_bound(net, data=data[rng.choice(len(data), 16)], seed=seed, **FAST_LOWER)
    y = data[rng.choice(len(data), 6)]
    att = rob.attack(net, y, eps, steps=15, seed=seed)
    att_inf = rob.attack(net, y, eps / 4, norm="linf", method="bim", steps=15, seed=seed)
    assert low.side == "lower" and low.certified, name
    for ub in (naive, layer, sdp):
        assert ub.side == "upper" and ub.certified, (name, ub)
        assert max(low.value, att.value, att_inf.value) <= ub.value * (1 + 1e-9), (name, low, att, ub)
    assert sdp.value <= layer.value * (1 + 1e-6) and layer.value <= naive.value * (1 + 1e-7), name


def test_lower_bound_witness_reproduces_its_value():
    net = random_lista(4, 6, 3, seed=3)
    low = lip.lower_bound(net, **FAST_LOWER)
    w = low.witness
    r = secant(net.form(), w["y"], w["d"])
    assert low.value <= r * (1 + 1e-12) and low.value >= r * (1 - 1e-9)
    assert low.checks["rigorous_rounding"] is True
    assert "max_jacobian_norm_random_1" in low.checks


def test_smoothed_jacobian_ascent_is_a_witnessed_lower_bound():
    from unfoldtheory.lipschitz._torch import TorchForm

    net, data = train_lista(4, 8, 4, seed=3, steps=30)
    kw = dict(num_random=40, power_iters=20, ascent_steps=20, ascent_starts=6, seed=1)
    base = lip.lower_bound(net, data=data[:32], smooth_steps=0, **kw)
    smooth = lip.lower_bound(net, data=data[:32], smooth_steps=30, **kw)
    assert "max_jacobian_norm_smooth_ascent" not in base.checks
    assert "max_jacobian_norm_smooth_ascent" in smooth.checks
    assert smooth.side == "lower" and smooth.certified and smooth.value >= base.value * (1 - 1e-12)
    w = smooth.witness
    r = secant(net.form(), w["y"], w["d"])
    assert smooth.value <= r * (1 + 1e-12) and smooth.value >= r * (1 - 1e-9)
    assert smooth.value <= lip.upper_bound(net, "lipsdp").value * (1 + 1e-9)
    # the smoothed network tends to the exact one as the temperature goes to 0
    tf = TorchForm(net.form())
    Y = torch.tensor(data[:5])
    exact = tf(Y)
    tiny = tf(Y, tau=[1e-12] * len(net.form().blocks))
    assert torch.allclose(exact, tiny, atol=1e-9)
    assert not torch.allclose(exact, tf(Y, tau=[1.0] * len(net.form().blocks)), atol=1e-3)


def test_lower_bound_of_a_model_without_form_and_on_data():
    # tanh: no analysis form can be extracted (not piecewise linear), so the no-form path is taken
    lin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    low = lip.lower_bound(lin, input_dim=3, data=np.random.default_rng(0).normal(size=(5, 3)), **FAST_LOWER)
    assert low.side == "lower" and low.value > 0
    assert "max_jacobian_norm_data" in low.checks and low.checks["rigorous_rounding"] is False
    assert lip.lower_bound(lin, **FAST_LOWER).value > 0   # input_dim inferred from the first Linear
    with pytest.raises(ut.InvalidInputError, match="input_dim"):
        lip.lower_bound(torch.nn.Tanh())                   # nothing to infer it from


# ---------------------------------------------------------------------------------------------- exactness
@settings(deadline=None, max_examples=8)
@given(m=st.integers(1, 6), n=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_one_layer_lipsdp_is_exact(m, n, seed):
    net = random_lista(m, n, 1, seed)
    W1 = net.weights()["W1"][0]
    exact = np.linalg.norm(W1, 2)
    for method in ("lipsdp", "layerwise", "naive"):
        b = lip.upper_bound(net, method)
        assert b.certified
        assert abs(b.value - exact) <= 1e-7 * exact, (method, b.value, exact)


@pytest.mark.parametrize("m,n,K,seed", [(3, 5, 2, 0), (4, 8, 3, 1), (5, 8, 4, 2), (3, 6, 6, 3)])
def test_lipsdp_agrees_with_dense_cvxpy(m, n, K, seed):
    net = random_lista(m, n, K, seed)
    ref = dense_lipsdp_reference(net.form())
    ours = lip.upper_bound(net, "lipsdp")
    assert ours.certified
    assert ours.value >= ref * (1 - 1e-6)             # cannot beat the SDP optimum
    assert abs(ours.value - ref) <= 1e-4 * ref, (ours.value, ref)


def test_lipsdp_agrees_with_dense_cvxpy_on_a_trained_network(trained_nets):
    net, _ = trained_nets[2]
    ref = dense_lipsdp_reference(net.form())
    ours = lip.upper_bound(net, "lipsdp")
    assert abs(ours.value - ref) <= 1e-4 * ref, (ours.value, ref)
    dense = lip.upper_bound(net, "lipsdp_dense")  # the library's own dense path, re-certified in float64
    assert dense.certified and abs(dense.value - ref) <= 1e-4 * ref


def general_form(seed, identity=False):
    """Not a chain: a skip edge, LeakyReLU slopes [0.1, 1] (alpha > 0 terms), a two-block readout and,
    with ``identity``, a linear (Identity) state that the library eliminates exactly (then the readout of
    that state becomes a direct y -> x path)."""
    rng = np.random.default_rng(seed)
    m, n = 3, 4
    mid = Identity(n) if identity else ReLU(n)
    b0 = Block(ReLU(n), B=rng.normal(size=(n, m)))
    b1 = Block(mid, inputs={0: rng.normal(size=(n, n)) / 2}, B=rng.normal(size=(n, m)) / 2)
    b2 = Block(LeakyReLU(n, 0.1), inputs={1: rng.normal(size=(n, n)) / 2, 0: rng.normal(size=(n, n)) / 2})
    b3 = Block(SoftThreshold(0.1, size=n), inputs={2: rng.normal(size=(n, n)) / 2}, B=rng.normal(size=(n, m)))
    return Form(m, [b0, b1, b2, b3], output={3: np.eye(n), 1: rng.normal(size=(n, n)) / 3})


@pytest.mark.parametrize("seed", [0, 1])
def test_general_form_matches_dense_and_is_sound(seed):
    form = general_form(seed)
    ref = dense_lipsdp_reference(form)
    ours = lip.upper_bound(form, "lipsdp")
    naive = lip.upper_bound(form, "naive")
    low = lip.lower_bound(form, **FAST_LOWER)
    assert ours.certified
    assert abs(ours.value - ref) <= 1e-4 * ref, (ours.value, ref)
    assert low.value <= ours.value <= naive.value * (1 + 1e-7)


def test_identity_states_are_eliminated_exactly():
    form = general_form(0, identity=True)
    ours = lip.upper_bound(form, "lipsdp")
    dense = lip.upper_bound(form, "lipsdp_dense")
    naive = lip.upper_bound(form, "naive")
    low = lip.lower_bound(form, **FAST_LOWER)
    assert ours.certified and ours.checks["pinned_neurons_eliminated"] == 4
    assert abs(ours.value - dense.value) <= 1e-4 * dense.value
    assert low.value <= ours.value <= naive.value * (1 + 1e-7)


def test_eliminating_pinned_neurons_keeps_the_linear_map():
    from unfoldtheory.lipschitz._net import eliminate_fixed, with_slopes

    rng = np.random.default_rng(3)
    net = from_form(general_form(2))
    alpha = [np.where(rng.random(s) < 0.5, 0.0, 0.3) for s in net.sizes]
    beta = [np.where(rng.random(s) < 0.5, a, 1.0) for a, s in zip(alpha, net.sizes)]
    pinned = with_slopes(net, alpha, beta)
    red = eliminate_fixed(pinned)
    assert red.num_neurons == net.num_neurons - sum(int(np.sum(a == b)) for a, b in zip(alpha, beta))
    for _ in range(3):  # any slopes for the free neurons: both networks give the same linear map
        slopes = [np.where(a == b, a, rng.random(a.size)) for a, b in zip(alpha, beta)]
        keep = [a != b for a, b in zip(alpha, beta)]
        red_slopes = [s[k] for s, k in zip(slopes, keep) if k.any()]
        v = rng.normal(size=(3, 2))
        np.testing.assert_allclose(red.evaluate_linear(red_slopes, v), pinned.evaluate_linear(slopes, v),
                                   rtol=1e-12, atol=1e-12)


def test_linear_network_is_exact():
    rng = np.random.default_rng(0)
    M1, M2 = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    form = Form(3, [Block(Identity(4), B=M1), Block(Identity(2), inputs={0: M2})], output={1: np.eye(2)})
    b = lip.upper_bound(form, "lipsdp")
    exact = np.linalg.norm(M2 @ M1, 2)
    assert b.checks["exact"] and abs(b.value - exact) <= 1e-12 * exact * 10


# ---------------------------------------------------------------------------------------------- metamorphic
def test_tied_and_untied_copies_give_the_same_bound():
    A = np.random.default_rng(2).normal(size=(4, 7)) / 2
    tied = ut.models.LISTA(A, 5, tied=True, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        tied.W1.add_(0.02 * torch.randn_like(tied.W1))
        tied.W2.add_(0.02 * torch.randn_like(tied.W2))
    w = tied.weights()
    untied = ut.models.LISTA.from_weights(w["W1"], w["W2"], w["theta"], dtype=torch.float64, device="cpu")
    for method in ("naive", "lipsdp"):
        a, b = lip.upper_bound(tied, method), lip.upper_bound(untied, method)
        assert abs(a.value - b.value) <= 1e-9 * b.value


def test_ista_model_equals_lista_initialised_as_ista_and_thresholds_do_not_matter():
    A = np.random.default_rng(5).normal(size=(4, 6))
    ista = ut.models.ISTA(A, 4, lam=0.3, dtype=torch.float64, device="cpu")
    lista = ut.models.LISTA(A, 4, lam=0.01, dtype=torch.float64, device="cpu")
    a, b = lip.upper_bound(ista), lip.upper_bound(lista)
    assert abs(a.value - b.value) <= 1e-6 * b.value


def test_padding_with_zero_weight_units_keeps_the_bound():
    net = random_lista(3, 5, 4, seed=7)
    w = net.weights()
    p = 3
    W1 = [np.vstack([x, np.zeros((p, 3))]) for x in w["W1"]]
    W2 = [np.block([[x, np.zeros((5, p))], [np.zeros((p, 5 + p))]]) for x in w["W2"]]
    th = [np.concatenate([t, np.full(p, 0.2)]) for t in w["theta"]]
    padded = ut.models.LISTA.from_weights(W1, W2, th, dtype=torch.float64, device="cpu")
    for method in ("naive", "layerwise", "lipsdp"):
        a, b = lip.upper_bound(net, method), lip.upper_bound(padded, method)
        assert abs(a.value - b.value) <= 1e-5 * a.value, (method, a.value, b.value)


def test_ista_naive_bound_equals_the_closed_form_and_lipsdp_is_below():
    A = np.random.default_rng(1).normal(size=(5, 9))
    for K in (1, 3, 6):
        ista = ut.models.ISTA(A, K, lam=0.1, dtype=torch.float64, device="cpu")
        lam = rob.ista_sensitivity(ista)
        naive = lip.upper_bound(ista, "naive")
        L = np.linalg.norm(A, 2)
        assert abs(lam.value - naive.value) <= 1e-9 * naive.value
        # step 1/L, wide A: Lambda_K = K mu ||A|| = K / ||A||
        assert abs(lam.value - K / L) <= 1e-9 * lam.value
        assert lip.upper_bound(ista).value <= lam.value * (1 + 1e-7)


# ---------------------------------------------------------------------------------------------- certificates
def test_certificate_is_rechecked_and_a_bogus_value_cannot_pass(monkeypatch):
    net = random_lista(3, 6, 4, seed=11)
    honest = lip.upper_bound(net, "lipsdp")
    real = _lipsdp.optimize

    def lying(lmi, t0, **kw):
        out = real(lmi, t0, **kw)
        out["lmax"] = 1e-8 * out["lmax"]  # claims a far smaller rho for the same multipliers
        return out

    monkeypatch.setattr(_lipsdp, "optimize", lying)
    b = lip.upper_bound(net, "lipsdp")
    assert b.certified and abs(b.value - honest.value) <= 1e-6 * honest.value  # rho recomputed, not trusted


def test_indefinite_multipliers_are_detected_and_repaired(monkeypatch):
    net = random_lista(3, 6, 4, seed=12)
    low = lip.lower_bound(net, **FAST_LOWER)

    def corrupt(lmi, t0, **kw):
        t = np.full(lmi.N, 0.5)  # output block X_KK = diag(t) - I is indefinite
        return {"t": t, "lmax": 1e-6, "lmax0": 1e-6, "stages": [], "evaluations": 1, "seconds": 0.0,
                "dtype": "float64", "history": []}

    monkeypatch.setattr(_lipsdp, "optimize", corrupt)
    b = lip.upper_bound(net, "lipsdp")
    assert b.certified and "repaired" in b.checks
    assert b.value >= low.value
    assert b.value <= lip.upper_bound(net, "naive").value * (1 + 1e-7)
    monkeypatch.setattr(_lipsdp, "certify", lambda *a, **k: {"certified": False, "rho": math.inf,
                                                             "reason": "forced failure"})
    b2 = lip.upper_bound(net, "lipsdp")
    # no SDP certificate survives: the best certified bound computed on the way (naive) is returned
    assert b2.certified and "forced failure" in b2.checks["float64_reverification"]
    assert b2.value == lip.upper_bound(net, "naive").value


def test_certify_never_returns_less_than_the_exact_schur_value():
    net = random_lista(3, 5, 3, seed=13)
    red = from_form(net.form())
    lmi = _lipsdp.StructuredLMI(red)
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = 2.0 + 3 * rng.random(lmi.N)
        cert = _lipsdp.certify(lmi, t)
        # dense Schur complement at the same t
        X, Q, R = lmi.assemble(t)
        off = lmi.off
        Xd = np.zeros((lmi.N, lmi.N))
        for (i, j), v in X.items():
            Xd[off[i]:off[i + 1], off[j]:off[j + 1]] = v
            Xd[off[j]:off[j + 1], off[i]:off[i + 1]] = v.T
        Qd = np.vstack([q if q is not None else np.zeros((s, lmi.m)) for q, s in zip(Q, lmi.sizes)])
        if np.linalg.eigvalsh(Xd)[0] <= 0:
            assert not cert["certified"]
            continue
        rho_exact = np.linalg.eigvalsh(Qd.T @ np.linalg.solve(Xd, Qd) - R)[-1]
        assert cert["certified"] and cert["rho"] >= rho_exact


# ---------------------------------------------------------------------------------------------- local
def test_local_bound_on_a_tiny_ball_is_the_exact_jacobian():
    net = random_lista(4, 6, 3, seed=21)
    form = net.form()
    y = np.random.default_rng(1).normal(size=4) * 3
    b = lip.local_upper_bound(net, y, 1e-9)
    assert b.checks["uncertain_neurons"] == 0 and b.checks.get("exact")
    J = np.linalg.norm(form.jacobian(y), 2)
    assert abs(b.value - J) <= 1e-9 * max(J, 1e-12) + 1e-15


@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 2**16), radius=st.sampled_from([0.01, 0.1, 0.5, 2.0]),
       norm=st.sampled_from(["l2", "linf"]))
def test_local_bound_is_sound_on_the_ball_and_below_global(seed, radius, norm):
    net = random_lista(3, 5, 3, seed=seed)
    form = net.form()
    rng = np.random.default_rng(seed)
    y = rng.normal(size=3) * 2
    loc = lip.local_upper_bound(net, y, radius, norm=norm)
    glob = lip.upper_bound(net)
    assert loc.certified and loc.value <= glob.value * (1 + 1e-6)
    for _ in range(30):
        u = rng.normal(size=(2, 3))
        if norm == "l2":
            pts = y + radius * u / np.linalg.norm(u, axis=1, keepdims=True) * rng.random((2, 1))
        else:
            pts = y + radius * rng.uniform(-1, 1, size=(2, 3))
        d = pts[1] - pts[0]
        if np.linalg.norm(d) > 0:
            assert secant(form, pts[0], d) <= loc.value * (1 + 1e-9)
    att = rob.attack(net, y, radius, norm=norm, steps=15)
    assert att.value <= loc.value * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------- parameters
@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 2**16), K=st.integers(1, 5), vector_theta=st.booleans())
def test_parameter_lipschitz_bound_holds_for_random_parameter_pairs(seed, K, vector_theta):
    rng = np.random.default_rng(seed)
    m, n = 3, 4
    R = 2.0

    def params():
        W1 = [rng.normal(size=(n, m)) for _ in range(K)]
        W2 = [rng.normal(size=(n, n)) for _ in range(K)]
        th = [rng.random(n) * 0.5 if vector_theta else float(rng.random() * 0.5) for _ in range(K)]
        return W1, W2, th

    P, P2 = params(), params()
    b1 = [max(np.linalg.norm(a, 2), np.linalg.norm(b, 2)) for a, b in zip(P[0], P2[0])]
    b2 = [max(np.linalg.norm(a, 2), np.linalg.norm(b, 2)) for a, b in zip(P[1], P2[1])]
    bound = lip.parameter_upper_bound({"W1": P[0], "W2": P[1], "theta": P[2]}, R, W1_norm=b1, W2_norm=b2)
    assert bound.certified and bound.checks["scalar_theta"] == (not vector_theta)
    f1 = ut.models.LISTA.from_weights(*P, dtype=torch.float64, device="cpu").form()
    f2 = ut.models.LISTA.from_weights(*P2, dtype=torch.float64, device="cpu").form()
    dist = math.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(P[0], P2[0]))
                     + sum(np.sum((a - b) ** 2) for a, b in zip(P[1][1:], P2[1][1:]))  # W2_1 has no effect
                     + sum(np.sum((np.asarray(a) - np.asarray(b)) ** 2) for a, b in zip(P[2], P2[2])))
    for _ in range(10):
        y = rng.normal(size=m)
        y *= R * rng.random() / np.linalg.norm(y)
        assert np.linalg.norm(f1.evaluate(y) - f2.evaluate(y)) <= bound.value * dist * (1 + 1e-9)


def test_parameter_bound_closed_form_for_one_layer_and_for_a_model():
    # K = 1: x_1 = soft(W1 y, theta); L = sqrt(R^2 + c_theta) with c_theta = n for one scalar threshold
    b = lip.parameter_upper_bound({"W1": [np.eye(3)], "W2": [np.eye(3)], "theta": [0.1]}, 2.0)
    assert abs(b.value - math.sqrt(4 + 3)) <= 1e-12 * b.value
    net = ut.models.LISTA(np.random.default_rng(0).normal(size=(3, 5)), 4, device="cpu")
    b = lip.parameter_upper_bound(net, 1.0)
    assert b.value > 0 and len(b.checks["W2_norm"]) == 4 and b.checks["scalar_theta"]
    tied = ut.models.LISTA(np.random.default_rng(0).normal(size=(3, 5)), 4, tied=True, device="cpu")
    assert lip.parameter_upper_bound(tied, 1.0).checks["tied"]


# ---------------------------------------------------------------------------------------------- errors
class NoForm(torch.nn.Module):
    """No form() and none can be extracted (sorting is support selection); a plain identity would get one."""

    m = 3

    def forward(self, y):
        return torch.sort(y, dim=1).values


class Discontinuous(torch.nn.Module):
    m = 3

    def forward(self, y):
        return torch.where(y.abs() > 0.5, y, torch.zeros_like(y))

    def form(self):
        raise ut.NotRepresentableError("support selection is not continuous")


def test_models_without_form_are_refused_or_get_an_explicit_infinite_bound():
    for model in (NoForm(), Discontinuous()):
        with pytest.raises(ut.NotRepresentableError):
            lip.upper_bound(model)
        b = lip.upper_bound(model, on_unrepresentable="inf")
        assert b.value == math.inf and not b.certified and "form" in b.reason.lower()
    assert "not continuous" in lip.upper_bound(Discontinuous(), on_unrepresentable="inf").reason


def test_nan_weights_and_bad_arguments_are_refused():
    net = random_lista(3, 4, 2, seed=0)
    with torch.no_grad():
        net.W2[1, 0, 0] = float("nan")
    with pytest.raises(ut.InvalidInputError, match="NaN"):
        lip.upper_bound(net)
    good = random_lista(3, 4, 2, seed=0)
    with pytest.raises(ut.InvalidInputError, match="method"):
        lip.upper_bound(good, "seqlip")
    with pytest.raises(ut.InvalidInputError, match="on_unrepresentable"):
        lip.upper_bound(good, on_unrepresentable="zero")
    with pytest.raises(ut.InvalidInputError, match="radius"):
        lip.local_upper_bound(good, np.zeros(3), -1.0)
    with pytest.raises(ut.InvalidInputError, match="norm"):
        lip.local_upper_bound(good, np.zeros(3), 1.0, norm="l1")
    with pytest.raises(ut.InvalidInputError):
        lip.local_upper_bound(good, np.zeros(4), 1.0)
    with pytest.raises(ut.InvalidInputError, match="NaN"):
        lip.parameter_upper_bound({"W1": [np.full((2, 2), np.nan)], "W2": [np.eye(2)], "theta": [0.1]}, 1.0)


def test_too_large_for_the_method_names_one_that_works():
    net = random_lista(20, 40, 12, seed=0)
    with pytest.raises(ut.InvalidInputError, match="too large for method 'lipsdp_dense'.*method='lipsdp'"):
        lip.upper_bound(net, "lipsdp_dense")
    with pytest.raises(ut.InvalidInputError, match="too large.*method='naive'"):
        lip.upper_bound(net, "lipsdp", max_fill_bytes=1000)


def test_dense_solver_failure_is_a_clear_error(monkeypatch):
    import cvxpy as cp

    net = random_lista(2, 3, 2, seed=0)
    monkeypatch.setattr(cp.Problem, "solve", lambda self, *a, **k: None)
    with pytest.raises(ut.SolverError, match="dense LipSDP"):
        lip.upper_bound(net, "lipsdp_dense")


def test_import_does_not_load_cvxpy():
    code = ("import sys, json, unfoldtheory.lipschitz, unfoldtheory.robustness; "
            "print(json.dumps('cvxpy' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


@pytest.mark.slow
def test_structured_lipsdp_at_a_moderate_size_is_certified_and_far_below_naive():
    net = random_lista(40, 80, 16, seed=1, scale=0.6)
    b = lip.upper_bound(net, "lipsdp", time_limit=20)
    naive = lip.upper_bound(net, "naive")
    assert b.certified and b.value < naive.value


# ---------------------------------------------------------------------------------------------- depth, zoo
def test_bounds_against_depth_are_ordered():
    net, _ = train_lista(4, 8, 4, seed=3, steps=30)
    rows = lip.bounds_vs_depth(net, lower_kwargs=FAST_LOWER)
    assert [r["depth"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r["lower"].value <= r["lipsdp"].value * (1 + 1e-9)
        assert r["lipsdp"].value <= r["layerwise"].value * (1 + 1e-6)
        assert r["layerwise"].value <= r["naive"].value * (1 + 1e-7)
    last = lip.upper_bound(net, "lipsdp")
    assert abs(rows[-1]["lipsdp"].value - last.value) <= 1e-6 * last.value
    sub = lip.truncate(net.form(), 2)
    y = np.random.default_rng(0).normal(size=(3, 4))
    with torch.no_grad():
        np.testing.assert_allclose(sub.evaluate(y), net(y, return_all=True)[1].numpy(), atol=1e-12)
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = lip.plot_bounds_vs_depth(rows, title="trained LISTA")
    assert len(ax.lines) == 4
    plt.close(ax.figure)


def _zoo():
    models = getattr(ut.models, "MODELS", (ut.models.ISTA, ut.models.LISTA))
    return [cls for cls in models]


@pytest.mark.parametrize("cls", _zoo(), ids=lambda c: c.__name__)
def test_every_zoo_model_is_certified_soundly_or_refused(cls):
    """Each model of the zoo (default construction, small size): a finite certificate is never below the
    witnessed lower bound or an attack; a model without a form is refused."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 8)) / 2
    if cls is ut.models.ISTA:
        model = cls(A, 3, lam=0.1, dtype=torch.float64, device="cpu")
    elif cls is ut.models.UnfoldedRPCA:  # acts on matrices; SVT is not elementwise
        model = cls((2, 2), 3, dtype=torch.float64, device="cpu")
    else:
        model = cls(A, 3, dtype=torch.float64, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:  # perturb weight matrices only (thresholds must stay >= 0)
                p.add_(0.01 * torch.randn_like(p))
    try:
        form = model.form()
    except ut.NotRepresentableError:
        with pytest.raises(ut.NotRepresentableError):
            lip.upper_bound(model)
        inf = lip.upper_bound(model, on_unrepresentable="inf")
        assert math.isinf(inf.value) and not inf.certified and inf.reason
        if not isinstance(model, ut.models.UnfoldedRPCA):  # matrix inputs and (L, S) outputs: not sampled
            assert lip.lower_bound(model, **FAST_LOWER).value >= 0  # lower bounds need no form
        return
    y = rng.normal(size=(4, 4)) * 2
    if hasattr(model, "m") and model.m == 4:
        with torch.no_grad():
            np.testing.assert_allclose(form.evaluate(y), model(y).numpy(), rtol=1e-9, atol=1e-9)
    ub = lip.upper_bound(model, "lipsdp", time_limit=20)
    naive = lip.upper_bound(model, "naive")
    low = lip.lower_bound(model, **FAST_LOWER)
    att = rob.attack(model, y, 0.5, steps=15)
    layer = lip.upper_bound(model, "layerwise", time_limit=20)
    assert ub.certified and layer.certified and ub.converged and layer.converged
    assert max(low.value, att.value) <= ub.value * (1 + 1e-9)
    assert ub.value <= layer.value <= naive.value  # exactly: lipsdp returns the best certificate it computed


def _busy(stop):
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2147483648


def test_all_zero_lista_keeps_the_order_and_warns_nothing():
    import warnings

    A = np.random.default_rng(0).normal(size=(5, 10))
    net = ut.models.LISTA(A, 4, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / underflow RuntimeWarning
        b = {m: lip.upper_bound(net, m) for m in ("naive", "layerwise", "lipsdp")}
    assert all(v.certified for v in b.values())
    assert b["lipsdp"].value <= b["layerwise"].value <= b["naive"].value
    assert b["naive"].value <= 1e-300  # the map is constant: every bound is (essentially) zero


def test_lipsdp_is_reproducible_under_cpu_load():
    """Budgets count work, not seconds: the same call gives the same number on a quiet and on a loaded
    machine (a competing CPU-bound process runs during the second call)."""
    import multiprocessing as mp

    net, _ = train_lista(6, 12, 16, seed=5, steps=30)
    quiet = lip.upper_bound(net, "lipsdp")
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_busy, args=(stop,), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        loaded = lip.upper_bound(net, "lipsdp")
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
    assert quiet.certified and quiet.converged and loaded.converged
    assert loaded.value == quiet.value
    assert loaded.checks["evaluations"] == quiet.checks["evaluations"]


def test_a_result_cut_short_by_the_safety_cap_says_so():
    net, _ = train_lista(6, 12, 16, seed=5, steps=30)
    cut = lip.upper_bound(net, "lipsdp", time_limit=1e-4)
    assert cut.certified and not cut.converged and cut.checks["converged"] is False
    assert cut.value <= lip.upper_bound(net, "naive").value
