"""The relaxation floor (``lipschitz.relaxation_floor``): the ascent over vertex slope patterns against an
independent brute-force enumeration on tiny nets, below every certified slope-interval bound, above a region
witness it starts from, and its input checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from _helpers import random_lista
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
from unfoldtheory import lipschitz as lip
from unfoldtheory.errors import InvalidInputError
from unfoldtheory.form import Block, Clip, Form, Identity, LeakyReLU, SoftThreshold

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _jacobian(form, slopes):
    """J(D) of the linear network w = D z, written out here from the dense form (independent of the library's
    block recursion): x = C (I - D A)^{-1} D B y, with A strictly lower block-triangular."""
    d = form.dense()
    A, B, C = d["A"], d["B"], d["C"]
    D = np.diag(slopes)
    N = A.shape[0]
    return C @ np.linalg.solve(np.eye(N) - D @ A, D @ B)


def brute_force(form, alpha=None, beta=None):
    """max over all vertex patterns D_i in {alpha_i, beta_i} of ||J(D)||_2 (every pattern enumerated)."""
    a0, b0 = form.slopes()
    a = a0 if alpha is None else np.concatenate(alpha)
    b = b0 if beta is None else np.concatenate(beta)
    free = np.flatnonzero(a < b)
    best = 0.0
    for bits in itertools.product((0, 1), repeat=free.size):
        s = a.copy()
        s[free] = np.where(np.array(bits, dtype=bool), b[free], a[free])
        best = max(best, float(np.linalg.norm(_jacobian(form, s), 2)))
    return best


def _mixed_form(seed: int) -> Form:
    """A 4-block form with a skip edge, soft threshold, leaky ReLU (slopes [0.1, 1]), clip and identity
    neurons (N = 12, 10 of them free)."""
    rng = np.random.default_rng(seed)
    m = 3
    blocks = [
        Block(SoftThreshold(0.1, 3), B=rng.normal(size=(3, m))),
        Block(LeakyReLU(3, negative_slope=0.1), inputs={0: rng.normal(size=(3, 3))}, B=rng.normal(size=(3, m))),
        Block(Identity(2), inputs={1: rng.normal(size=(2, 3))}),
        Block(Clip(-1.0, 1.0, 4), inputs={0: rng.normal(size=(4, 3)), 2: rng.normal(size=(4, 2))},
              B=rng.normal(size=(4, m))),
    ]
    return Form(m, blocks, {3: rng.normal(size=(2, 4)), 1: rng.normal(size=(2, 3))})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_floor_equals_brute_force_on_tiny_lista(seed):
    net = random_lista(3, 4, 3, seed, scale=1.5)  # 12 soft-threshold neurons: 4096 vertex patterns
    form = net.form()
    f = lip.relaxation_floor(net, seed=seed)
    bf = brute_force(form)
    assert f.side == "lower" and f.certified and f.converged
    assert f.value <= bf * (1 + 1e-12)          # sound: a lower bound on the floor
    assert f.value >= bf * (1 - 1e-9)           # and the ascent found the maximum
    assert "not on the Lipschitz constant" in f.quantity
    assert f.checks["moves"] >= 1
    # the witness pattern is a vertex pattern whose Jacobian norm is the value
    s = f.witness["slopes"]
    a, b = form.slopes()
    assert np.all((s == a) | (s == b))
    assert abs(np.linalg.norm(_jacobian(form, s), 2) - f.checks["value_float"]) <= 1e-9 * bf


@pytest.mark.parametrize("seed", [0, 1])
def test_floor_equals_brute_force_on_a_mixed_form(seed):
    form = _mixed_form(seed)
    f = lip.relaxation_floor(form, seed=seed)
    bf = brute_force(form)
    assert f.value <= bf * (1 + 1e-12)
    assert f.value >= bf * (1 - 1e-9)
    up = lip.upper_bound(form, "lipsdp", time_limit=30)
    assert f.value <= up.value * (1 + 1e-9)


def test_domain_floor_equals_brute_force_on_the_narrowed_slopes():
    net = random_lista(3, 5, 3, 7, scale=1.5, theta=0.6)
    form = net.form()
    box = {"center": np.array([0.9, -0.6, 0.3]), "radius": 0.2}
    f = lip.relaxation_floor(net, domain=box)
    from unfoldtheory.lipschitz import domain_preactivations
    from unfoldtheory.lipschitz._local import refined_slopes

    alpha, beta = refined_slopes(form, domain_preactivations(form, box)[0])
    assert sum(int(np.sum(a == b)) for a, b in zip(alpha, beta)) > 0  # the box pins some neurons
    bf = brute_force(form, alpha, beta)
    assert f.value <= bf * (1 + 1e-12) and f.value >= bf * (1 - 1e-9)
    assert "domain" in f.quantity and f.checks["domain"]
    dom = lip.domain_upper_bound(net, box, time_limit=30)
    glob = lip.relaxation_floor(net)
    assert f.value <= dom.value * (1 + 1e-9)
    assert f.value <= glob.value * (1 + 1e-9)  # narrower intervals: a smaller set of vertex patterns


@settings(max_examples=12, deadline=None, derandomize=True)
@given(m=st.integers(2, 4), n=st.integers(2, 6), K=st.integers(1, 4), seed=st.integers(0, 10 ** 6),
       scale=st.floats(0.3, 2.5))
def test_floor_is_below_every_certified_slope_interval_bound(m, n, K, seed, scale):
    net = random_lista(m, n, K, seed, scale=scale)
    f = lip.relaxation_floor(net, restarts=3, moves=200, seed=seed % 7)
    assert f.certified and f.value >= 0
    for method in ("lipsdp", "layerwise", "naive"):
        up = lip.upper_bound(net, method, time_limit=30)
        assert up.certified
        assert f.value <= up.value * (1 + 1e-9), method


def _zoo():
    return [cls for cls in ut.models.MODELS if cls is not ut.models.UnfoldedRPCA]


@pytest.mark.parametrize("cls", _zoo(), ids=lambda c: c.__name__)
def test_floor_is_below_lipsdp_on_the_zoo(cls):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 8)) / 2
    model = cls(A, 3, lam=0.1, dtype=torch.float64, device="cpu") if cls is ut.models.ISTA \
        else cls(A, 3, dtype=torch.float64, device="cpu")
    try:
        model.form()
    except ut.NotRepresentableError:
        with pytest.raises(ut.NotRepresentableError):
            lip.relaxation_floor(model)
        return
    f = lip.relaxation_floor(model, restarts=3, moves=200)
    up = lip.upper_bound(model, "lipsdp", time_limit=30)
    assert f.certified and up.certified
    assert f.value <= up.value * (1 + 1e-9)
    assert f.value > 0


def test_floor_starts_from_a_region_witness():
    net = random_lista(4, 8, 4, 3, scale=1.3)
    data = np.random.default_rng(0).normal(size=(16, 4))
    rs = lip.region_search(net, data, rounds=0, flips=10)
    assert rs.certified and rs.witness.get("pattern") is not None
    # moves=0, one trajectory: the floor is the start pattern's own Jacobian norm
    f0 = lip.relaxation_floor(net, start=rs, restarts=1, moves=0)
    assert f0.value >= rs.value * (1 - 1e-9)
    assert f0.value <= np.linalg.norm(rs.witness["jacobian"], 2) * (1 + 1e-9)
    f = lip.relaxation_floor(net, start=[rs], restarts=3)
    assert f.value >= f0.value * (1 - 1e-12)
    assert f.checks["trajectories"][0]["start"] == "start 0"
    # a slope vector works as a start too
    f1 = lip.relaxation_floor(net, start=f.witness["slopes"], restarts=1, moves=0)
    assert abs(f1.value - f.value) <= 1e-9 * f.value


def test_floor_is_reproducible_and_counts_moves():
    net = random_lista(4, 8, 4, 5, scale=1.3)
    a = lip.relaxation_floor(net, seed=3, restarts=4, moves=50)
    b = lip.relaxation_floor(net, seed=3, restarts=4, moves=50)
    assert a.value == b.value and a.checks["moves"] == b.checks["moves"]
    assert a.checks["moves"] == sum(t["moves"] for t in a.checks["trajectories"])
    short = lip.relaxation_floor(net, restarts=1, moves=1)
    assert short.checks["moves"] <= 1 and not short.converged
    capped = lip.relaxation_floor(net, time_limit=0.0)  # the safety cap: still a certified value, not converged
    assert capped.certified and not capped.converged and "time_limit" in capped.status


def test_certified_value_is_below_the_float_norm():
    from unfoldtheory.lipschitz._floor import certified_norm, jacobians
    from unfoldtheory.lipschitz._net import from_form

    net = from_form(random_lista(5, 10, 6, 2, scale=2.0).form())
    rng = np.random.default_rng(1)
    for _ in range(5):
        D = [np.where(rng.random(s) < 0.5, 1.0, 0.0) for s in net.sizes]
        J = jacobians(net, D)[2]
        v = np.linalg.svd(J)[2][0]
        low, fl = certified_norm(net, D, v)
        exact = float(np.linalg.norm(J, 2))
        assert low <= exact and low >= exact * (1 - 1e-10)
        assert abs(fl - exact) <= 1e-10 * exact


def test_bad_inputs_are_refused():
    net = random_lista(3, 4, 2, 0)
    N = 8
    with pytest.raises(InvalidInputError, match="restarts"):
        lip.relaxation_floor(net, restarts=0)
    with pytest.raises(InvalidInputError, match="moves"):
        lip.relaxation_floor(net, moves=-1)
    with pytest.raises(InvalidInputError, match="candidates"):
        lip.relaxation_floor(net, candidates=0)
    with pytest.raises(InvalidInputError, match="exhaustive"):
        lip.relaxation_floor(net, exhaustive="yes")
    with pytest.raises(InvalidInputError, match="shape"):
        lip.relaxation_floor(net, start=np.ones(N + 1))
    with pytest.raises(InvalidInputError, match="outside its slope interval"):
        lip.relaxation_floor(net, start=np.full(N, 2.0))
    with pytest.raises(InvalidInputError, match="NaN"):
        lip.relaxation_floor(net, start=np.full(N, np.nan))
    with pytest.raises(InvalidInputError, match="pattern"):
        lip.relaxation_floor(net, start=lip.upper_bound(net, "naive"))
    with pytest.raises(InvalidInputError, match="domain"):
        lip.relaxation_floor(net, domain="box")
    with pytest.raises(InvalidInputError, match="propagation"):
        lip.relaxation_floor(net, domain=(-np.ones(3), np.ones(3)), propagation="magic")
    with pytest.raises(ut.NotRepresentableError):
        lip.relaxation_floor(object())


def test_interior_start_slopes_end_at_a_vertex_not_below_the_start():
    net = random_lista(3, 4, 3, 1, scale=1.5)
    form = net.form()
    half = np.full(12, 0.5)
    f = lip.relaxation_floor(net, start=half, restarts=1, moves=0)  # no move: only the final snap to vertices
    a, b = form.slopes()
    s = f.witness["slopes"]
    assert np.all((s == a) | (s == b))
    assert f.value >= np.linalg.norm(_jacobian(form, half), 2) * (1 - 1e-9)  # convexity in each slope


def test_a_zero_network_gives_a_vacuous_floor():
    form = Form(2, [Block(SoftThreshold(0.1, 2), B=np.zeros((2, 2)))], {0: np.ones((1, 2))})
    f = lip.relaxation_floor(form)
    assert f.value == 0.0 and f.vacuous and f.vacuous_reason
