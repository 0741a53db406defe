"""The analysis form: it reproduces the torch forward, keeps its structure, and refuses what it cannot hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import unfoldtheory as ut
from unfoldtheory.form import Activation, Block, Form, Identity, ReLU, SoftThreshold, require_form

finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def lista_weights(draw, max_dim=7, max_layers=6):
    """Random LISTA weights: K layers, any m, n, per-layer scalar or per-coordinate thresholds."""
    m = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_dim))
    K = draw(st.integers(1, max_layers))
    entries = st.floats(-1.5, 1.5, **finite)
    W1 = [draw(hnp.arrays(np.float64, (n, m), elements=entries)) for _ in range(K)]
    W2 = [draw(hnp.arrays(np.float64, (n, n), elements=entries)) for _ in range(K)]
    per_coordinate = draw(st.booleans())
    th = st.floats(0, 1, **finite)
    theta = [draw(hnp.arrays(np.float64, (n,), elements=th)) if per_coordinate else draw(th) for _ in range(K)]
    batch = draw(st.integers(1, 4))
    y = draw(hnp.arrays(np.float64, (batch, m), elements=st.floats(-3, 3, **finite)))
    return W1, W2, theta, y


def _close(a, b, rel=1e-10):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


@given(lista_weights())
def test_form_reproduces_lista_forward(case):
    W1, W2, theta, y = case
    net = ut.models.LISTA.from_weights(W1, W2, theta, dtype=torch.float64, device="cpu")
    form = net.form()
    with torch.no_grad():
        _close(form.evaluate(y), net(y).numpy())
        for a, b in zip(form.evaluate(y, return_all=True), net(y, return_all=True)):
            _close(a, b.numpy())


@given(lista_weights(max_layers=3))
def test_form_reproduces_float32_forward_to_float32_accuracy(case):
    W1, W2, theta, y = case
    net = ut.models.LISTA.from_weights(W1, W2, theta, device="cpu")  # float32 by default
    assert net.dtype == torch.float32
    with torch.no_grad():
        _close(net.form().evaluate(y), net(y).numpy().astype(float), rel=1e-4)


@given(m=st.integers(1, 6), n=st.integers(1, 8), K=st.integers(1, 8), lam=st.floats(0, 2),
       step_factor=st.floats(0.05, 1.9), seed=st.integers(0, 2**16))
def test_form_reproduces_ista_forward(m, n, K, lam, step_factor, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n))
    L = np.linalg.norm(A, 2) ** 2
    net = ut.models.ISTA(A, K, lam=lam, step=step_factor / L, dtype=torch.float64, device="cpu")
    y = rng.normal(size=(3, m)) * 3
    _close(net.form().evaluate(y), net(y).numpy())
    _close(net.form().evaluate(y[0]), net(y[0]).numpy())


@given(m=st.integers(1, 6), n=st.integers(1, 7), K=st.integers(1, 4), per_coordinate=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_form_jacobian_matches_autograd(m, n, K, per_coordinate, seed):
    """Generic weights and inputs (drawn from a seed, so no pre-activation sits on a kink): the form's Jacobian
    is autograd's, in every example."""
    rng = np.random.default_rng(seed)
    W1 = [rng.normal(size=(n, m)) for _ in range(K)]
    W2 = [rng.normal(size=(n, n)) / np.sqrt(n) for _ in range(K)]
    theta = [rng.uniform(0.05, 0.5, n) if per_coordinate else float(rng.uniform(0.05, 0.5)) for _ in range(K)]
    y0 = rng.normal(size=m) * 2
    net = ut.models.LISTA.from_weights(W1, W2, theta, dtype=torch.float64, device="cpu")
    form = net.form()
    zs, _, _ = form.evaluate_blocks(y0)
    gap = min(float(np.min(np.abs(np.abs(z) - blk.activation.theta))) for z, blk in zip(zs, form.blocks))
    assert gap > 1e-9  # generic: away from every kink (probability one; fails loudly if not)
    J_torch = torch.autograd.functional.jacobian(lambda v: net(v), torch.tensor(y0)).numpy()
    _close(form.jacobian(y0), J_torch)


def test_form_jacobian_at_a_constructed_kink_is_a_one_sided_limit():
    """At |z| = theta exactly the form takes the inactive side's derivative (an element of the Clarke
    Jacobian): it equals the Jacobian just inside the dead zone, and differs from the one just outside."""
    W1, W2 = [np.array([[1.0, 0.0], [0.0, 2.0]])], [np.zeros((2, 2))]
    theta = [0.5]
    y0 = np.array([0.5, 1.0])  # z = (0.5, 2.0): coordinate 0 sits exactly on its kink
    form = ut.models.LISTA.from_weights(W1, W2, theta, dtype=torch.float64, device="cpu").form()
    d = np.array([1.0, 0.0])
    inside, outside = form.jacobian(y0 - 1e-3 * d), form.jacobian(y0 + 1e-3 * d)
    assert not np.allclose(inside, outside)
    np.testing.assert_array_equal(form.jacobian(y0), inside)


def test_structure_is_kept_sparse_and_described():
    net = ut.models.LISTA(np.random.default_rng(0).normal(size=(5, 9)), num_layers=4, device="cpu")
    form = net.form()
    assert form.num_blocks == 4 and form.sizes == [9] * 4 and form.num_layers == 4
    assert [sorted(b.inputs) for b in form.blocks] == [[], [0], [1], [2]]  # one edge per layer, no dense A
    assert form.kinds() == ["soft_threshold"] * 4
    alpha, beta = form.slopes()
    assert alpha.shape == (36,) and (alpha == 0).all() and (beta == 1).all()
    assert "4 blocks" in repr(form) and "soft_threshold" in repr(form)
    dense = form.dense()
    assert dense["A"].shape == (36, 36) and np.allclose(np.triu(dense["A"]), 0)  # strictly lower-triangular


def test_thresholds_cancel_in_structure_but_not_in_values():
    """The form stores thresholds in the activation only: equal weights give equal edges."""
    A = np.random.default_rng(1).normal(size=(4, 6))
    f1 = ut.models.LISTA(A, 3, lam=0.1, device="cpu").form()
    f2 = ut.models.LISTA(A, 3, lam=0.5, device="cpu").form()
    np.testing.assert_allclose(f1.dense()["A"], f2.dense()["A"])
    assert not np.allclose(f1.blocks[0].activation.theta, f2.blocks[0].activation.theta)


def test_tied_network_equals_its_untied_copy():
    A = np.random.default_rng(2).normal(size=(4, 6))
    tied = ut.models.LISTA(A, 5, tied=True, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        tied.W1.add_(0.01)  # move away from the ISTA initialisation
    w = tied.weights()
    untied = ut.models.LISTA.from_weights(w["W1"], w["W2"], w["theta"], dtype=torch.float64, device="cpu")
    y = np.random.default_rng(3).normal(size=(7, 4))
    with torch.no_grad():
        np.testing.assert_allclose(tied(y).numpy(), untied(y).numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(tied.form().evaluate(y), untied.form().evaluate(y), rtol=1e-13, atol=1e-13)


def test_mixed_activations_and_identity_states():
    """A hand-written two-block form (a linear state feeding a ReLU block) evaluates as written."""
    B0 = np.array([[1.0, 0.0], [0.0, 2.0]])
    A10 = np.array([[1.0, -1.0]])
    form = Form(2, [Block(Identity(2), B=B0), Block(ReLU(1), inputs={0: A10}, b=np.array([0.5]))],
                output={1: np.eye(1)})
    y = np.array([[1.0, 1.0], [3.0, 0.0]])
    np.testing.assert_allclose(form.evaluate(y), [[0.0], [3.5]])


# ---------------------------------------------------------------------------------------------- refusals
def test_edge_to_a_later_block_is_refused():
    with pytest.raises(ut.InvalidInputError, match="strictly block-lower-triangular"):
        Form(1, [Block(ReLU(1), inputs={0: np.eye(1)}, B=np.eye(1))], output={0: np.eye(1)})


def test_unsupported_activation_is_refused_with_the_supported_kinds():
    class SortLayer(Activation):
        kind = "sort"

    with pytest.raises(ut.NotRepresentableError, match="SortLayer.*SoftThreshold"):
        Form(1, [Block(SortLayer(1), B=np.eye(1))], output={0: np.eye(1)})


def test_model_without_form_is_refused_clearly():
    with pytest.raises(ut.NotRepresentableError, match="no analysis form"):
        require_form(object())


def test_plain_module_without_form_gets_an_extracted_form():
    lin = torch.nn.Linear(2, 3).double()
    form = require_form(lin)   # input_dim inferred from in_features
    y = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_allclose(form.evaluate(y), lin(torch.tensor(y)).detach().numpy(), rtol=1e-12, atol=1e-14)


def test_negative_threshold_after_training_refuses_the_form():
    net = ut.models.LISTA(np.eye(3), 2, device="cpu")
    with torch.no_grad():
        net.theta[1] = -0.2
    with pytest.raises(ut.InvalidInputError, match="layer 2 has a negative threshold"):
        net.form()
    with pytest.raises(ut.InvalidInputError, match="theta"):
        SoftThreshold(np.array([0.1, -1.0]))


def test_edge_with_wrong_shape_is_refused():
    with pytest.raises(ut.InvalidInputError, match=r"B must have shape \(2, 3\)"):
        Form(3, [Block(ReLU(2), B=np.ones((2, 2)))], output={0: np.eye(2)})


def test_dense_refuses_large_forms():
    form = ut.models.ISTA(np.ones((2, 50)), 100, lam=0.1, device="cpu").form()
    with pytest.raises(ut.InvalidInputError, match="max_neurons"):
        form.dense()
