"""Linear (CROWN / Fast-Lin-style) bound propagation and the domain certificate built on it."""

from __future__ import annotations

import numpy as np
import pytest
from test_exact import brute_force, tiny_chain, tiny_momentum

from unfoldtheory import lipschitz as lip
from unfoldtheory.errors import InvalidInputError
from unfoldtheory.form import Clip, LeakyReLU, ReLU, SoftThreshold
from unfoldtheory.lipschitz._linear import linear_bounds, relaxation
from unfoldtheory.lipschitz._local import interval_bounds, refined_slopes


def _box_points(lo, hi, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    m = lo.size
    Y = lo + (hi - lo) * rng.random((n, m))
    V = lo + (hi - lo) * rng.integers(0, 2, (256, m))      # vertices: where linear bounds are attained
    return np.vstack([Y, V])


@pytest.mark.parametrize("act", [SoftThreshold(np.array([0.0, 0.3, 1.0])), ReLU(3), LeakyReLU(3, 0.1),
                                 Clip(np.array([-1.0, 0.0, -0.2]), np.array([1.0, 0.5, -0.1]), 3)])
def test_relaxation_encloses_the_activation(act):
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = np.sort(rng.normal(scale=2.0, size=(2, 3)), axis=0)
        slo, blo, shi, bhi = relaxation(act, a, b)
        z = a + (b - a) * np.linspace(0, 1, 401)[:, None]
        w = act(z)
        assert np.all(slo * z + blo <= w) and np.all(w <= shi * z + bhi)
        # each line encloses no more area than the chord-parallel line (one of its candidates)
        vals = act(np.stack([a, b]))
        chord = np.where(b > a, (vals[1] - vals[0]) / np.where(b > a, b - a, 1.0), 0.0)
        mid = (a + b) / 2
        off_par = w - chord * z
        tol = 2 * (b - a) / 400 + 1e-9    # the grid can miss a kink by half a step (slopes in [0, 1])
        assert np.all(shi * mid + bhi <= chord * mid + off_par.max(axis=0) + tol)
        assert np.all(slo * mid + blo >= chord * mid + off_par.min(axis=0) - tol)
    # inside one piece the enclosure is the piece itself (zero width)
    lo, hi = np.full(3, 5.0), np.full(3, 6.0)
    slo, blo, shi, bhi = relaxation(ReLU(3), lo, hi)
    assert np.allclose(slo, 1.0) and np.allclose(shi, 1.0) and np.all(bhi - blo < 1e-12)
    # a ReLU crossing its kink: the upper line is the chord, the lower one a slope-0 or 1 tangent (CROWN)
    slo, blo, shi, bhi = relaxation(ReLU(2), np.array([-1.0, -3.0]), np.array([3.0, 1.0]))
    assert np.allclose(shi, [0.75, 0.25]) and np.allclose(slo, [1.0, 0.0]) and np.allclose(blo, 0.0, atol=1e-12)


@pytest.mark.parametrize("act,seed", [("soft", 0), ("soft", 1), ("relu", 2), ("leaky", 3), ("clip", 4)])
def test_linear_bounds_contain_every_sampled_preactivation_and_beat_intervals(act, seed):
    form = tiny_chain(seed, m=3, n=4, K=5, act=act)
    lo, hi = np.array([-0.5, -0.2, 0.1]), np.array([0.3, 0.6, 0.9])
    c, r = (lo + hi) / 2, (hi - lo) / 2
    lin = linear_bounds(form, c, r, "linf")
    ibp = interval_bounds(form, c, r, "linf")
    zs, _, _ = form.evaluate_blocks(_box_points(lo, hi, seed=seed))
    for z, (lb, ub), (li, ui) in zip(zs, lin, ibp):
        assert np.all(z >= lb) and np.all(z <= ub)
        tol = 1e-12 * (1 + np.abs(li) + np.abs(ui))   # the internal intervals are widened by a few ulps
        assert np.all(lb >= li - tol) and np.all(ub <= ui + tol)
    # strictly tighter somewhere past the first block (the first is affine in y: both exact up to rounding)
    assert sum(float(np.sum(u - l)) for l, u in lin) < 0.9 * sum(float(np.sum(u - l)) for l, u in ibp)


def test_linear_bounds_on_an_l2_ball_and_a_multi_input_form():
    form = tiny_momentum(5)
    c = np.array([0.2, -0.1])
    lin = linear_bounds(form, c, 0.5, "l2")
    rng = np.random.default_rng(1)
    d = rng.standard_normal((20000, 2))
    d = d / np.linalg.norm(d, axis=1, keepdims=True) * np.sqrt(rng.random((20000, 1))) * 0.5
    zs, _, _ = form.evaluate_blocks(c + d)
    for z, (lb, ub) in zip(zs, lin):
        assert np.all(z >= lb) and np.all(z <= ub)


@pytest.mark.parametrize("seed", [2])
def test_domain_lipsdp_with_linear_propagation_is_sound_and_fixes_more(seed):
    form = tiny_chain(seed, m=2, n=3, K=4)
    box = (np.array([-0.3, 0.1]), np.array([0.1, 0.4]))
    lin = lip.domain_upper_bound(form, box)
    itv = lip.domain_upper_bound(form, box, propagation="interval")
    assert lin.checks["propagation"] == "linear" and itv.checks["propagation"] == "interval"
    assert lin.certified and lin.method == "domain_lipsdp" and "box" in lin.quantity
    assert lin.checks["fixed_neurons"] >= itv.checks["fixed_neurons"]
    ref, _ = brute_force(form, "l2", box=box)
    assert ref <= lin.value * (1 + 1e-9)
    assert lin.value <= itv.value * (1 + 1e-6)
    with pytest.raises(InvalidInputError, match="propagation"):
        lip.domain_upper_bound(form, box, propagation="crown")


def test_linear_propagation_fixes_deep_neurons_where_intervals_do_not():
    """A deep chain on a small box: interval propagation widens by the product of |A| norms per layer and
    loses every neuron at depth; the linear bounds keep the true (narrow) range and fix them."""
    form = tiny_chain(3, m=3, n=6, K=12)
    c = np.array([0.1, -0.2, 0.3])
    lin = refined_slopes(form, linear_bounds(form, c, 0.02, "linf"))
    ibp = refined_slopes(form, interval_bounds(form, c, 0.02, "linf"))
    fixed = [int(np.sum(a == b)) for a, b in zip(*lin)]
    fixed_ibp = [int(np.sum(a == b)) for a, b in zip(*ibp)]
    assert sum(fixed[6:]) > sum(fixed_ibp[6:])
