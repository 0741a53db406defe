"""Exact Lipschitz constants by MILP (``lipschitz.exact``) against an independent brute-force enumeration of the
activation regions of tiny nets, against dense sampling, and between the certified lower and upper bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import random_lista
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from unfoldtheory import lipschitz as lip
from unfoldtheory.errors import InvalidInputError
from unfoldtheory.form import Block, Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FAST_LOWER = {"num_random": 60, "power_iters": 25, "ascent_steps": 40, "ascent_starts": 8, "smooth_steps": 10}


# ---------------------------------------------------------------------------------------------- brute force
def _pieces(form):
    """(slope, offset, lower kink, upper kink) per piece and neuron, written out here independently."""
    out = []
    for blk in form.blocks:
        a = blk.activation
        for i in range(blk.size):
            if isinstance(a, SoftThreshold):
                th = a.theta[i]
                out.append([(1, th, -np.inf, -th), (0, 0, -th, th), (1, -th, th, np.inf)])
            elif isinstance(a, ReLU):
                out.append([(0, 0, -np.inf, 0), (1, 0, 0, np.inf)])
            elif isinstance(a, LeakyReLU):
                out.append([(a.negative_slope, 0, -np.inf, 0), (1, 0, 0, np.inf)])
            elif isinstance(a, Clip):
                lo, hi = a.lower[i], a.upper[i]
                out.append([(0, lo, -np.inf, lo), (1, 0, lo, hi), (0, hi, hi, np.inf)])
            else:
                out.append([(1, 0, -np.inf, np.inf)])
    return out


def brute_force(form, norm, box=None):
    """Max Jacobian norm over the activation regions with nonempty interior, by depth-first enumeration of
    patterns neuron by neuron; a partial pattern is kept when an LP finds a point strictly inside it (margin
    > 1e-9).  Global domain: homogenised (y, t), t > 0.  Returns (value, number of regions)."""
    d = form.dense()
    A, B, b, C = d["A"], d["B"], d["b"], d["C"]
    N, m = B.shape
    P = _pieces(form)
    best = [0.0, 0]

    def strictly_feasible(rows):
        # variables (y, t, s): maximise s subject to rows . (y, t) >= s * |row|
        G, h = [], []
        for r in rows:
            nr = np.linalg.norm(r)
            if nr > 0:
                G.append(np.concatenate([-r, [nr]]))
                h.append(0.0)
        if box is None:
            G.append(np.concatenate([np.zeros(m), [-1.0, 1.0]]))
            h.append(0.0)
            bounds = [(-1, 1)] * m + [(0, 1), (None, 1)]
        else:
            lo, hi = box
            for j in range(m):
                e = np.zeros(m + 2)
                e[j], e[m + 1] = -1.0, 1.0
                G.append(e)
                h.append(-lo[j])
                e = np.zeros(m + 2)
                e[j], e[m + 1] = 1.0, 1.0
                G.append(e)
                h.append(hi[j])
            bounds = [(None, None)] * m + [(1, 1), (None, 1)]
        c = np.zeros(m + 2)
        c[-1] = -1
        res = linprog(c, A_ub=np.array(G), b_ub=np.array(h), bounds=bounds, method="highs")
        return res.status == 0 and res.x[-1] > 1e-9

    def rec(i, Z, W, rows):
        if i == N:
            J = C @ W[:, :m]
            val = np.abs(J).sum(axis=1).max() if norm == "linf" else np.linalg.norm(J, 2)
            best[0] = max(best[0], val)
            best[1] += 1
            return
        z = np.concatenate([A[i, :i] @ W[:i, :m] + B[i], [A[i, :i] @ W[:i, m] + b[i]]])
        for s, c, glo, ghi in P[i]:
            new = list(rows)
            if np.isfinite(glo):
                new.append(z - np.eye(m + 1)[m] * glo)
            if np.isfinite(ghi):
                new.append(np.eye(m + 1)[m] * ghi - z)
            if not strictly_feasible(new):
                continue
            Z[i] = z
            W[i] = s * z
            W[i, m] += c
            rec(i + 1, Z, W, new)

    rec(0, np.zeros((N, m + 1)), np.zeros((N, m + 1)), [])
    return best[0], best[1]


def sampled_max(form, norm, box=None, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    m = form.input_dim
    if box is None:
        Y = rng.standard_normal((n, m)) * rng.choice([0.1, 1.0, 10.0, 1000.0], size=(n, 1))
    else:
        Y = rng.uniform(box[0], box[1], size=(n, m))
    J = form.jacobian(Y)
    return float((np.abs(J).sum(axis=2).max(axis=1) if norm == "linf" else np.linalg.norm(J, 2, axis=(1, 2))).max())


# ---------------------------------------------------------------------------------------------- tiny nets
def tiny_chain(seed, m=3, n=2, K=3, act="soft", out=2):
    """A LISTA-like chain (input injected into every layer) with the given activation."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(K):
        a = {"soft": lambda: SoftThreshold(0.6 * rng.random(n)),
             "relu": lambda: ReLU(n),
             "leaky": lambda: LeakyReLU(n, 0.2),
             "clip": lambda: Clip(-0.5 - rng.random(n), 0.5 + rng.random(n), n)}[act]()
        inputs = {} if k == 0 else {k - 1: rng.standard_normal((n, n))}
        blocks.append(Block(a, inputs, rng.standard_normal((n, m)), 0.5 * rng.standard_normal(n), layer=k + 1))
    return Form(m, blocks, {K - 1: rng.standard_normal((out, n))})


def tiny_momentum(seed, m=2, n=2):
    """Two soft-threshold layers and a linear (identity) momentum state: a block reads two earlier blocks."""
    rng = np.random.default_rng(seed)
    th = SoftThreshold(0.4 * rng.random(n))
    b0 = Block(th, {}, rng.standard_normal((n, m)), 0.3 * rng.standard_normal(n), layer=1)
    b1 = Block(Identity(n), {0: 1.3 * np.eye(n)}, None, None, layer=1)
    b2 = Block(SoftThreshold(0.4 * rng.random(n)), {0: rng.standard_normal((n, n)), 1: -0.3 * np.eye(n)},
               rng.standard_normal((n, m)), None, layer=2)
    return Form(m, [b0, b1, b2], {2: np.eye(n), 1: 0.1 * rng.standard_normal((n, n))})


CASES = [("soft", s) for s in range(4)] + [("relu", 10), ("leaky", 11), ("clip", 12), ("clip", 13)]


@pytest.mark.parametrize("act,seed", CASES)
def test_linf_equals_brute_force_global(act, seed):
    m = 2 if seed % 2 else 3
    K = 2 + seed % 2
    form = tiny_chain(seed, m=m, K=K, act=act)
    b = lip.exact(form, "linf")
    ref, regions = brute_force(form, "linf")
    assert regions >= 1
    lo, hi = b.interval
    assert b.converged and b.checks["lower_end_certified"] and b.side == "upper" and b.value == hi
    assert not b.certified and "not re-verified" in b.reason  # the MILP dual bound is the solver's word
    assert hi == pytest.approx(ref, rel=1e-5)
    assert lo <= ref * (1 + 1e-9) and ref <= hi * (1 + 1e-9)
    assert sampled_max(form, "linf") <= hi * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linf_equals_brute_force_on_a_box(seed):
    form = tiny_chain(seed, m=2, K=3, act="soft")
    box = (np.array([-0.3, 0.1]), np.array([0.4, 0.5]))
    b = lip.exact(form, "linf", domain=box)
    ref, _ = brute_force(form, "linf", box=box)
    assert b.converged and b.value == pytest.approx(ref, rel=1e-5)
    assert "box" in b.quantity
    y = b.witness["y"]
    assert np.all(y > box[0]) and np.all(y < box[1])
    # the box constant is at most the global one
    assert b.interval[0] <= lip.exact(form, "linf").value * (1 + 1e-9)
    # an l-infinity ball is the same box
    c, r = (box[0] + box[1]) / 2, 0.05
    ball = lip.exact(form, "linf", domain={"center": c, "radius": r})
    boxed = lip.exact(form, "linf", domain=(c - r, c + r))
    assert ball.value == pytest.approx(boxed.value, rel=1e-9)


def test_momentum_form_with_identity_state():
    form = tiny_momentum(3)
    b = lip.exact(form, "linf")
    ref, _ = brute_force(form, "linf")
    assert b.converged and b.value == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_l2_bracket_contains_the_brute_force_value(seed):
    form = tiny_chain(seed, m=3, K=2 + seed % 2, act="soft" if seed < 3 else "relu")
    b = lip.exact(form, "l2")
    ref, _ = brute_force(form, "l2")
    lo, hi = b.interval
    assert lo <= ref * (1 + 1e-9) <= hi * (1 + 2e-9)
    assert b.value == hi and b.checks["lower_end_certified"]
    assert b.certified == (b.checks["lipsdp_upper"] is not None and hi == b.checks["lipsdp_upper"])
    # the lower end is attained by the witness region: its Jacobian, recomputed, has that norm
    J = form.jacobian(b.witness["y"])
    assert np.linalg.norm(J, 2) >= lo
    assert np.linalg.norm(J, 2) == pytest.approx(lo, rel=1e-9)
    # alternating fixed-direction MILPs reach the true value on these tiny nets
    assert lo == pytest.approx(ref, rel=1e-6)


def test_witness_region_is_affine_around_the_witness():
    form = tiny_chain(5, m=3, K=3)
    b = lip.exact(form, "linf")
    y, J = b.witness["y"], b.witness["jacobian"]
    assert np.abs(J).sum(axis=1).max() >= b.interval[0]
    rng = np.random.default_rng(0)
    h = 1e-6 * b.witness["interior_margin"]
    for _ in range(5):
        d = rng.standard_normal(3) * h
        np.testing.assert_allclose(form.evaluate(y + d) - form.evaluate(y), J @ d, rtol=1e-5, atol=1e-14)


def test_degenerate_network_gives_an_honest_bracket():
    """relu(y) - relu(y) is identically 0; the closed-region relaxation admits the pattern (on, off) at y = 0,
    so the upper end may stay above 0, but the attained lower end is 0 and the bracket is not 'converged'
    unless the ends meet."""
    blk = Block(ReLU(2), {}, np.array([[1.0], [1.0]]), None, layer=1)
    form = Form(1, [blk], {0: np.array([[1.0, -1.0]])})
    b = lip.exact(form, "linf")
    lo, hi = b.interval
    assert lo == 0.0 and hi >= 0.0
    assert b.converged == (hi <= 1e-6)


def test_linear_on_the_box_is_exact():
    form = tiny_chain(7, m=2, K=2, act="relu")
    # a tiny box around a point where no neuron sits at a kink: the network is affine there
    y0 = np.array([0.3, -0.2])
    b = lip.exact(form, "linf", domain={"center": y0, "radius": 1e-6})
    assert b.checks["uncertain_neurons"] == 0
    J = form.jacobian(y0)
    assert b.interval[0] == pytest.approx(np.abs(J).sum(axis=1).max(), rel=1e-9)
    assert b.value == pytest.approx(np.abs(J).sum(axis=1).max(), rel=1e-5) and b.converged


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(2, 3), m=st.integers(2, 3))
def test_exact_lies_between_lower_and_every_certified_upper_bound(seed, K, m):
    model = random_lista(m, 2, K, seed, scale=1.5, theta=0.3)
    b = lip.exact(model, "l2")
    lo, hi = b.interval
    low = lip.lower_bound(model, seed=seed, **FAST_LOWER)
    assert low.value <= hi * (1 + 1e-9)
    for method in ("naive", "layerwise", "lipsdp"):
        up = lip.upper_bound(model, method, time_limit=10.0)
        if up.certified:
            assert lo <= up.value * (1 + 1e-9), method
    # linf: exact and brute force agree on the same net
    ref, _ = brute_force(model.form(), "linf")
    assert lip.exact(model, "linf").value == pytest.approx(ref, rel=1e-5)


def test_bad_input_is_refused_clearly():
    form = tiny_chain(0)
    with pytest.raises(InvalidInputError, match="norm"):
        lip.exact(form, "l1")
    with pytest.raises(InvalidInputError, match="max_neurons"):
        lip.exact(form, max_neurons=3)
    with pytest.raises(InvalidInputError, match="lower < upper"):
        lip.exact(form, domain=(np.zeros(3), np.zeros(3)))
    with pytest.raises(InvalidInputError, match="l2 ball"):
        lip.exact(form, domain={"center": np.zeros(3), "radius": 1.0, "norm": "l2"})
    with pytest.raises(InvalidInputError, match="domain"):
        lip.exact(form, domain=5.0)
    with pytest.raises(InvalidInputError, match="node_limit"):
        lip.exact(form, node_limit=0)


def test_node_budget_gives_a_bracket_not_a_wrong_value():
    form = tiny_chain(2, m=3, K=3)
    full = lip.exact(form, "linf")
    cut = lip.exact(form, "linf", node_limit=1)
    lo, hi = cut.interval
    assert lo <= full.value * (1 + 1e-9) and full.interval[0] <= hi * (1 + 1e-9)
    assert math.isfinite(hi)
    assert all(r["nodes"] <= 1 or r["status"] != 0 for r in cut.checks["milps"]) or cut.converged


def test_brute_force_enumerates_all_regions_of_a_single_threshold():
    """Self-check of the reference: one soft threshold on R has 3 regions."""
    form = Form(1, [Block(SoftThreshold(np.array([0.5])), {}, np.array([[2.0]]), None, layer=1)],
                {0: np.array([[1.0]])})
    val, regions = brute_force(form, "linf")
    assert regions == 3 and val == 2.0


# ---------------------------------------------------------------------------------------------- domain LipSDP
@pytest.mark.parametrize("seed", [2, 4])
def test_domain_lipsdp_lies_between_the_exact_box_constant_and_the_global_bound(seed):
    form = tiny_chain(seed, m=2, K=3)
    box = (np.array([-0.3, 0.1]), np.array([0.4, 0.5]))
    dom = lip.domain_upper_bound(form, box)
    assert dom.certified and dom.method == "domain_lipsdp" and "box" in dom.quantity
    ex = lip.exact(form, "l2", domain=box, l2_lipsdp=False)
    ref, _ = brute_force(form, "l2", box=box)
    assert ex.interval[0] <= ref * (1 + 1e-9) <= dom.value * (1 + 1e-9)
    glob = lip.upper_bound(form, "lipsdp")
    assert dom.value <= glob.value * (1 + 1e-6)
    # an l2 ball inside the box: its constant is at most the box's
    c = (box[0] + box[1]) / 2
    ball = lip.domain_upper_bound(form, {"center": c, "radius": 0.1, "norm": "l2"})
    assert "l2 ball" in ball.quantity and ball.certified
    assert sampled_max(form, "l2", box=(c - 0.07, c + 0.07)) <= ball.value * (1 + 1e-9)
    with pytest.raises(InvalidInputError, match="method"):
        lip.domain_upper_bound(form, box, method="dense")


def test_domain_where_every_neuron_is_fixed_is_exact():
    form = tiny_chain(7, m=2, K=2, act="relu")
    y0 = np.array([0.3, -0.2])
    dom = lip.domain_upper_bound(form, {"center": y0, "radius": 1e-7})
    assert dom.checks["uncertain_neurons"] == 0
    assert dom.value == pytest.approx(np.linalg.norm(form.jacobian(y0), 2), rel=1e-9)


# ---------------------------------------------------------------------------------------------- region search
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_region_search_climbs_and_stays_below_the_exact_value(norm):
    form = tiny_chain(1, m=3, K=3)
    ref, _ = brute_force(form, norm)
    y0 = np.array([0.05, -0.1, 0.2])
    J0 = form.jacobian(y0)
    v0 = np.linalg.norm(J0, 2) if norm == "l2" else np.abs(J0).sum(axis=1).max()
    rs = lip.region_search(form, y0, norm, rounds=8)
    assert rs.side == "lower" and rs.certified
    assert v0 * (1 - 1e-9) <= rs.value <= ref * (1 + 1e-9)
    J = form.jacobian(rs.witness["y"])
    got = np.linalg.norm(J, 2) if norm == "l2" else np.abs(J).sum(axis=1).max()
    assert got == pytest.approx(rs.value, rel=1e-9)
    with pytest.raises(InvalidInputError, match="start"):
        lip.region_search(form, np.zeros(2))


def test_l2_on_a_box_uses_the_domain_certificate():
    form = tiny_chain(2, m=2, K=3)
    box = (np.array([-0.3, 0.1]), np.array([0.4, 0.5]))
    b = lip.exact(form, "l2", domain=box)
    ref, _ = brute_force(form, "l2", box=box)
    dom = lip.domain_upper_bound(form, box)
    lo, hi = b.interval
    assert lo <= ref * (1 + 1e-9) <= hi * (1 + 1e-9)
    assert hi <= dom.value * (1 + 1e-9)


def test_exact_is_unchanged_after_another_highs_user_in_the_process():
    """Regression: generalized_coherence runs HiGHS first (its global scheduler starts with the default thread
    count); exact then asked for one thread, HiGHS refused to run, and the failed solve's dual bound (about
    1e-6) came back as a certified upper bound.  Now exact leaves the threads alone and never reads a bound
    from a failed solve.  In a fresh process, so that coherence is the first HiGHS user."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json, sys, numpy as np\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_exact import tiny_chain\n"
        "import unfoldtheory.lipschitz as lip\n"
        "from unfoldtheory.convergence import generalized_coherence\n"
        "A = np.random.default_rng(0).standard_normal((4, 8))\n"
        "generalized_coherence(A / np.linalg.norm(A, axis=0), method='lp')\n"
        "b = lip.exact(tiny_chain(0, m=3, K=2), 'linf')\n"
        "print(json.dumps([b.value, b.converged, b.checks['lower_end_certified']]))\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    value, converged, certified = json.loads(out.stdout.strip().splitlines()[-1])
    ref, _ = brute_force(tiny_chain(0, m=3, K=2), "linf")
    assert converged and certified and value == pytest.approx(ref, rel=1e-5)


# ---------------------------------------------------------------------------------------------- local sandwich
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_local_sandwich_brackets_the_brute_force_ball_constants(seed):
    # l-inf balls are boxes: each ball's exact l2 constant by region enumeration lies between its two ends
    form = tiny_chain(seed, m=2, K=3, act="soft")
    C = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(3, 2))
    r = 0.15
    b = lip.local_sandwich(form, C, r, norm="linf", samples=32)
    refs = [brute_force(form, "l2", box=(c - r, c + r))[0] for c in C]
    assert b.certified and b.converged and b.side == "upper"
    for ball, ref in zip(b.checks["balls"], refs):
        assert ball["lower"] <= ref * (1 + 1e-9) <= ball["upper"] * (1 + 2e-9)
    lo, hi = b.interval
    assert b.checks["within"][1] == max(x["upper"] for x in b.checks["balls"])
    assert hi == b.value == max(b.checks["within"][1], b.checks["across"]["upper"])
    assert lo <= max(refs) * (1 + 1e-9) <= hi * (1 + 2e-9)
    assert lo >= 0.5 * max(refs)  # the sampled lower end is attained in a ball, not a token value
    y, d = b.witness["y"], b.witness["d"]
    if "between_centres" not in b.witness:
        i = int(np.argmax([x["lower"] for x in b.checks["balls"]]))
        assert np.max(np.abs(y - C[i])) <= r and np.max(np.abs(y + d - C[i])) <= r
    # every sampled pair of the union (also pairs straddling two boxes) is below the upper end
    rng = np.random.default_rng(seed + 10)
    P = C[rng.integers(0, 3, 4000)] + rng.uniform(-r, r, (4000, 2))
    Q = C[rng.integers(0, 3, 4000)] + rng.uniform(-r, r, (4000, 2))
    X, Z = form.evaluate(P), form.evaluate(Q)
    ratios = np.linalg.norm(X - Z, axis=1) / np.maximum(np.linalg.norm(P - Q, axis=1), 1e-12)
    assert ratios.max() <= hi * (1 + 1e-9)


def _clip_by_soft_threshold():
    """x = y - soft(y, 1) = clip(y, -1, 1) on R: flat outside [-1, 1], slope 1 inside."""
    soft = Block(SoftThreshold(np.array([1.0])), {}, np.eye(1), None, layer=1)
    ident = Block(Identity(1), {}, np.eye(1), None, layer=1)
    return Form(1, [soft, ident], {0: -np.eye(1), 1: np.eye(1)})


def test_local_sandwich_counts_pairs_straddling_two_balls():
    # balls [-2.5, -1.5] and [1.5, 2.5]: the map is constant on each (local constants 0), but the union's
    # constant is the secant 2 / 3 between -1.5 and 1.5; the centres' secant 2 / 4 is attained
    form = _clip_by_soft_threshold()
    b = lip.local_sandwich(form, np.array([[-2.0], [2.0]]), 0.5, samples=4, ascent_steps=5)
    assert b.checks["within"][1] == pytest.approx(0.0, abs=1e-12)
    assert b.certified and b.value >= 2 / 3 and b.value == pytest.approx(2 / 3, rel=1e-12)
    assert b.interval[0] <= 0.5 and b.interval[0] == pytest.approx(0.5, rel=1e-12)
    assert b.witness["between_centres"] == (0, 1) and b.checks["across"]["merged"] == 0
    # balls closer than four radii are covered by one ball around their midpoint: [-1, 1] has slope 1
    near = lip.local_sandwich(form, np.array([[-0.5], [0.5]]), 0.4, samples=4, ascent_steps=5)
    assert near.checks["across"]["merged"] == 1
    assert near.value == pytest.approx(1.0, rel=1e-9) and near.value >= 1.0


def test_local_sandwich_meets_the_jacobian_on_tiny_balls_and_stays_below_global():
    net = random_lista(4, 6, 3, seed=21)
    form = net.form()
    Y = np.random.default_rng(1).normal(size=(3, 4)) * 3
    b = lip.local_sandwich(net, Y, 1e-7)
    J = max(np.linalg.norm(form.jacobian(y), 2) for y in Y)
    assert b.interval[0] == pytest.approx(J, rel=1e-5) and b.value == pytest.approx(J, rel=1e-6)
    assert b.interval[0] <= J * (1 + 1e-9) <= b.value * (1 + 1e-9)
    wide = lip.local_sandwich(net, Y, 50.0, samples=8)
    glob = lip.upper_bound(net)
    assert b.value <= wide.value <= glob.value * (1 + 1e-6)
    assert wide.checks["balls"][0]["uncertain_neurons"] > 0


def test_local_sandwich_bad_input():
    form = tiny_chain(0, m=2, K=2)
    with pytest.raises(InvalidInputError, match="radius"):
        lip.local_sandwich(form, np.zeros(2), -1.0)
    with pytest.raises(InvalidInputError, match="norm"):
        lip.local_sandwich(form, np.zeros(2), 1.0, norm="l1")
    with pytest.raises(InvalidInputError, match="Y"):
        lip.local_sandwich(form, np.zeros((2, 3)), 1.0)
    with pytest.raises(InvalidInputError, match="samples"):
        lip.local_sandwich(form, np.zeros(2), 1.0, samples=-1)
