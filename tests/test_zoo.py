"""The model zoo: forms reproduce forwards, refusals are clear, initialisations are the classical methods,
save/load round-trips, every paradigm is represented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import unfoldtheory as ut
from unfoldtheory.models import (ALISTA, ISTA, LISTA, LISTACP, LISTACPSS, CorrectedISTA, HyperLISTA, LearnedProxISTA,
                                 LearnedStepISTA, TiLISTA, UnfoldedADMM, UnfoldedFISTA, UnfoldedRPCA)

F64 = dict(device="cpu", dtype=torch.float64)
WITH_FORM = [LISTA, LISTACP, TiLISTA, LearnedStepISTA, ALISTA, UnfoldedFISTA, CorrectedISTA, LearnedProxISTA,
             UnfoldedADMM]


def build(cls, A, K, **kw):
    if cls is ISTA:
        return ISTA(A, K, lam=0.1, **F64, **kw)
    return cls(A, K, **F64, **kw)


def perturb(net, seed, scale):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
            if name in net.nonnegative:
                p.abs_()


@pytest.mark.parametrize("cls", WITH_FORM, ids=lambda c: c.__name__)
@given(m=st.integers(2, 6), n=st.integers(3, 8), K=st.integers(1, 5), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.0, 0.01, 0.3]))
def test_form_reproduces_forward(cls, m, n, K, seed, scale):
    rng = np.random.default_rng(seed)
    if cls is ALISTA:
        n = max(n, m + 1)  # the analytic weight needs a wide dictionary (full row rank)
    A = ut.problems.gaussian_dictionary(m, n, seed=rng)
    net = build(cls, A, K)
    perturb(net, seed, scale)
    y = rng.normal(size=(3, m)) * 2
    form = net.form()
    with torch.no_grad():
        outs = net(y, return_all=True)
    scale_out = max(1.0, max(float(o.abs().max()) for o in outs))
    np.testing.assert_allclose(form.evaluate(y), outs[-1].numpy(), rtol=0, atol=1e-10 * scale_out)
    for a, b in zip(form.evaluate(y, return_all=True), outs):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-10 * scale_out)


@pytest.mark.parametrize("net, match", [
    (lambda A: LISTACPSS(A, 3, **F64), "support selection, which is discontinuous"),
    (lambda A: ALISTA(A, 3, support_selection=(1.2, 13), **F64), "support selection"),
    (lambda A: HyperLISTA(A, 3, **F64), "computes its thresholds and momentum from the instance"),
    (lambda A: UnfoldedRPCA((4, 3), 2, **F64), "singular value thresholding, which is not an elementwise map"),
], ids=["LISTACPSS", "ALISTA+ss", "HyperLISTA", "UnfoldedRPCA"])
def test_models_without_a_form_refuse_clearly(net, match):
    A = ut.problems.gaussian_dictionary(6, 10, seed=0)
    with pytest.raises(ut.NotRepresentableError, match=match):
        net(A).form()
    with pytest.raises(ut.NotRepresentableError, match=match):
        ut.form.require_form(net(A))


@pytest.mark.parametrize("cls", [LISTA, LISTACP, TiLISTA, LearnedStepISTA, CorrectedISTA, LearnedProxISTA],
                         ids=lambda c: c.__name__)
def test_initialisation_is_ista(cls):
    gen = ut.problems.SparseRecovery.gaussian(12, 24, 0.2, seed=1)
    y = gen.sample(5, seed=2).y
    ista = ISTA(gen.A, 6, lam=0.1, **F64)
    net = cls(gen.A, 6, lam=0.1, **F64)
    with torch.no_grad():
        for a, b in zip(ista(y, return_all=True), net(y, return_all=True)):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-11, atol=1e-12)


def test_unfolded_fista_at_initialisation_is_fista():
    gen = ut.problems.SparseRecovery.gaussian(10, 20, 0.2, seed=3)
    y = gen.sample(1, seed=4).y[0]
    A, lam, K = gen.A, 0.05, 8
    L = np.linalg.norm(A, 2) ** 2
    x = v = np.zeros(20)
    t, expected = 1.0, []
    for _ in range(K):  # Beck & Teboulle (2009), FISTA with constant step 1/L, as written there
        x_new = ut.operators.soft_threshold(v - A.T @ (A @ v - y) / L, lam / L)
        t_next = (1 + np.sqrt(1 + 4 * t ** 2)) / 2
        v = x_new + (t - 1) / t_next * (x_new - x)
        x, t = x_new, t_next
        expected.append(x)
    with torch.no_grad():
        got = UnfoldedFISTA(A, K, lam=lam, **F64)(y, return_all=True)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e, atol=1e-12)


def test_unfolded_admm_at_initialisation_is_admm_and_converges():
    gen = ut.problems.SparseRecovery.gaussian(10, 20, 0.2, seed=5)
    y = gen.sample(1, seed=6).y[0]
    A, lam, rho = gen.A, 0.05, 2.0
    z = u = np.zeros(20)
    inv = np.linalg.inv(A.T @ A + rho * np.eye(20))
    for _ in range(300):
        x = inv @ (A.T @ y + rho * (z - u))
        z = ut.operators.soft_threshold(x + u, lam / rho)
        u = u + x - z
    with torch.no_grad():
        out = UnfoldedADMM(A, 300, lam=lam, rho0=rho, **F64)(y).numpy()
    np.testing.assert_allclose(out, z, atol=1e-10)
    prob = ut.problems.Lasso(A, lam)
    assert prob.optimality_residual(out, y, relative=True) < 1e-4


def test_unfolded_rpca_matches_numpy_and_returns_pairs():
    data = ut.problems.low_rank_plus_sparse(8, 6, rank=1, p=0.1, batch=2, seed=0)
    net = UnfoldedRPCA((8, 6), 4, tau0=0.3, lam0=0.1, **F64)
    S = np.zeros((8, 6))
    M = data.M[0]
    for _ in range(4):
        L = ut.operators.singular_value_threshold(M - S, 0.3)
        S = ut.operators.soft_threshold(M - L, 0.1)
    with torch.no_grad():
        L_net, S_net = net(M)
        pairs = net(data.M, return_all=True)
    np.testing.assert_allclose(L_net.numpy(), L, atol=1e-10)
    np.testing.assert_allclose(S_net.numpy(), S, atol=1e-10)
    assert len(pairs) == 4 and pairs[-1][0].shape == (2, 8, 6)
    with pytest.raises(ut.InvalidInputError, match=r"M must have shape \(8, 6\)"):
        net(np.zeros((6, 8)))


def test_support_selection_schedule_and_arguments():
    from unfoldtheory.models.coupled import support_selection_schedule

    assert support_selection_schedule(16, 1.2, 13.0)[:3] == pytest.approx([1.2, 2.4, 3.6])
    assert support_selection_schedule(16, 1.2, 13.0)[-1] == 13.0
    A = ut.problems.gaussian_dictionary(6, 10, seed=0)
    for bad in [(0.0, 13), (1.2, 120), (-1, 5)]:
        with pytest.raises(ut.InvalidInputError, match="support_selection"):
            LISTACP(A, 3, support_selection=bad)
    assert LISTACPSS(A, 3).support_selection == (1.2, 13.0)


def test_support_selection_bypasses_the_largest_entries():
    from unfoldtheory.models.coupled import shrink_support_selection

    z = torch.tensor([[3.0, -2.0, 0.5, 0.05, -1.0, 0.2, 0.1, 0.0, 0.3, -0.4]])
    out = shrink_support_selection(z, torch.tensor(0.25), percent=20.0)  # top 2 of 10 bypass
    expected = torch.tensor([[3.0, -2.0, 0.25, 0.0, -0.75, 0.0, 0.0, 0.0, 0.05, -0.15]])
    torch.testing.assert_close(out, expected)


def test_every_paradigm_is_represented():
    assert {cls.paradigm for cls in ut.models.MODELS} >= {1, 2, 3, 4}


def _all_models(A):
    return [build(cls, A, 3) for cls in ut.models.MODELS if cls is not UnfoldedRPCA] + \
        [UnfoldedRPCA((4, 3), 3, **F64)]


def test_save_load_round_trip_every_model(tmp_path):
    A = ut.problems.gaussian_dictionary(6, 10, seed=0)
    y = np.random.default_rng(0).normal(size=(4, 6))
    M = np.random.default_rng(1).normal(size=(4, 3))
    for i, net in enumerate(_all_models(A)):
        perturb(net, i, 0.05)
        path = tmp_path / f"{type(net).__name__}.pt"
        ut.models.save(net, path, metadata={"note": "trained", "nmse": [-1.5, -2.0]})
        back = ut.models.load(path, device="cpu")
        assert type(back) is type(net) and back.dtype == torch.float64
        assert back.metadata == {"note": "trained", "nmse": [-1.5, -2.0]}
        inp = M if isinstance(net, UnfoldedRPCA) else y
        with torch.no_grad():
            a, b = net(inp), back(inp)
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_from_weights_lista_round_trips_through_save(tmp_path):
    rng = np.random.default_rng(0)
    net = LISTA.from_weights([rng.normal(size=(5, 3))] * 2, [rng.normal(size=(5, 5))] * 2, [0.1, 0.2], **F64)
    ut.models.save(net, tmp_path / "lista.pt")
    back = ut.models.load(tmp_path / "lista.pt")
    with torch.no_grad():
        torch.testing.assert_close(back(np.ones(3)).cpu(), net(np.ones(3)))


def test_load_refuses_a_corrupt_or_foreign_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ut.InvalidInputError, match="not a readable unfoldtheory model"):
        ut.models.load(bad)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ut.InvalidInputError, match="not an unfoldtheory model file"):
        ut.models.load(tmp_path / "foreign.pt")


def test_state_dict_round_trip_between_instances():
    A = ut.problems.gaussian_dictionary(6, 10, seed=0)
    a, b = LISTACP(A, 4, **F64), LISTACP(A, 4, **F64)
    perturb(a, 0, 0.1)
    b.load_state_dict(a.state_dict())
    y = np.ones((2, 6))
    with torch.no_grad():
        torch.testing.assert_close(a(y), b(y))


@pytest.mark.parametrize("build_bad, match", [
    (lambda A: LISTACP(A, 0), "num_layers must be an integer >= 1"),
    (lambda A: ALISTA(A, 3, W=np.ones((3, 3))), r"W must have the shape of A"),
    (lambda A: ALISTA(A, 3, W=np.full(A.shape, np.inf)), "W contains"),
    (lambda A: UnfoldedADMM(A, 3, rho0=0.0), "rho0 must be > 0"),
    (lambda A: CorrectedISTA(A, 3, hidden=0), "hidden must be an integer >= 1"),
    (lambda A: TiLISTA(A, 3, lam=-1), "lam must be >= 0"),
], ids=["layers", "W-shape", "W-inf", "rho", "hidden", "lam"])
def test_zoo_bad_arguments(build_bad, match):
    with pytest.raises(ut.InvalidInputError, match=match):
        build_bad(ut.problems.gaussian_dictionary(6, 10, seed=0))


def test_models_run_on_device(device):
    A = ut.problems.gaussian_dictionary(6, 10, seed=0)
    y = torch.ones(2, 6, device=device)
    for net in _all_models(A)[:-1]:
        net = net.to(device)
        assert net(y).device.type == device.type


@pytest.mark.parametrize("cls", [c for c in ut.models.MODELS if c not in (ISTA, UnfoldedRPCA)],
                         ids=lambda c: c.__name__)
def test_every_learned_model_trains(cls):
    """A short end-to-end run lowers the validation NMSE of every learned model (UnfoldedRPCA: see
    tests/test_training.py; ISTA has nothing to learn)."""
    gen = ut.problems.SparseRecovery.gaussian(15, 30, 0.1, seed=0)
    net = cls(gen.A, 3, device="cpu")
    val = gen.sample(200, seed=0 + 1_000_003)  # the validation set train() draws for seed=0
    before = ut.metrics.per_layer_nmse_db(net, val.y, val.x)[-1]
    lr = 1e-2 if cls.per_layer and set(cls.per_layer) <= {"gamma", "theta", "beta", "log_rho"} else 3e-3
    history = ut.training.train(net, gen, epochs=2, steps_per_epoch=40, batch_size=32, val_size=200, lr=lr,
                                progress=False)
    assert history.final_val_nmse_db < before - 0.3, (before, history.final_val_nmse_db)


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (2, 5, 5)])
def test_svt_backward_matches_finite_differences(shape):
    from unfoldtheory.models.rpca import singular_value_threshold

    torch.manual_seed(0)
    X = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(singular_value_threshold, (X, tau))


def test_svt_backward_is_finite_and_exact_on_a_rank_one_matrix():
    from unfoldtheory.models.rpca import singular_value_threshold

    X = torch.zeros(3, 5, dtype=torch.float64)
    X[0, 0] = 2.0
    X.requires_grad_(True)
    (g,) = torch.autograd.grad(singular_value_threshold(X, torch.tensor(0.5, dtype=torch.float64)).sum(), X)
    # F = (sigma - tau) u v^T near X: d/dX_00 = 1, along the row/column of the singular pair f/sigma = 0.75, else 0
    expected = torch.zeros(3, 5, dtype=torch.float64)
    expected[0, 0] = 1.0
    expected[0, 1:] = 0.75
    expected[1:, 0] = 0.75
    assert torch.allclose(g, expected, atol=1e-12)
