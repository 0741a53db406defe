"""Linear (CROWN / Fast-Lin-style) bound propagation and the domain certificate built on it."""

from __future__ import annotations

import numpy as np
import pytest
from test_exact import brute_force, tiny_chain, tiny_momentum

from unfoldtheory import lipschitz as lip
from unfoldtheory.errors import InvalidInputError
from unfoldtheory.form import Clip, LeakyReLU, ReLU, SoftThreshold
from unfoldtheory.lipschitz._linear import _offset, _points, alpha_bounds, linear_bounds, relaxation
from unfoldtheory.lipschitz._local import interval_bounds, refined_slopes


def _box_points(lo, hi, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    m = lo.size
    Y = lo + (hi - lo) * rng.random((n, m))
    V = lo + (hi - lo) * rng.integers(0, 2, (256, m))      # vertices: where linear bounds are attained
    return np.vstack([Y, V])


def _chain_in_box(act, seed, K):
    """A tiny chain, the box it is bounded on (centre, half-widths) and its pre-activations at sampled box
    points and vertices."""
    form = tiny_chain(seed, m=3, n=4, K=K, act=act)
    lo, hi = np.array([-0.5, -0.2, 0.1]), np.array([0.3, 0.6, 0.9])
    zs, _, _ = form.evaluate_blocks(_box_points(lo, hi, seed=seed))
    return form, (lo + hi) / 2, (hi - lo) / 2, zs


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
    form, c, r, zs = _chain_in_box(act, seed, 5)
    lin = linear_bounds(form, c, r, "linf")
    ibp = interval_bounds(form, c, r, "linf")
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


# ---------------------------------------------------------------------------------------------- alpha-CROWN

ACTS = [SoftThreshold(np.array([0.0, 0.3, 1.0])), ReLU(3), LeakyReLU(3, 0.1),
        Clip(np.array([-1.0, 0.0, -0.2]), np.array([1.0, 0.5, -0.1]), 3)]


@pytest.mark.parametrize("act", ACTS)
def test_lines_of_any_slope_in_the_range_enclose_the_activation(act):
    """The offsets of alpha-CROWN's per-row slopes (shape (rows, n)): min / max of sigma(p) - s p over the end
    points and kinks give enclosing lines for every slope, not only the CROWN candidates."""
    rng = np.random.default_rng(1)
    a, b = act.slope_bounds()
    for _ in range(30):
        lo, hi = np.sort(rng.normal(scale=2.0, size=(2, 3)), axis=0)
        pts, vals = _points(act, lo, hi)
        s = a + (b - a) * rng.random((5, 3))
        blo, bhi = _offset(pts, vals, s, False), _offset(pts, vals, s, True)
        z = lo + (hi - lo) * np.linspace(0, 1, 301)[:, None]
        w = act(z)
        for r in range(5):
            assert np.all(s[r] * z + blo[r] <= w) and np.all(w <= s[r] * z + bhi[r])


def _widths(bounds):
    return sum(float(np.sum(u - l)) for l, u in bounds)


# measured total widths alpha / CROWN on these chains (20 Adam steps): soft 0.81, 0.69, relu 0.73, leaky 0.89,
# clip 0.91, deep soft chain (K=8) see the assertion
@pytest.mark.parametrize("act,seed,K", [("soft", 0, 5), ("soft", 1, 5), ("relu", 2, 5), ("leaky", 3, 5),
                                        ("clip", 4, 5), ("soft", 5, 8)])
def test_alpha_bounds_contain_every_sampled_preactivation_and_lie_inside_crown(act, seed, K):
    form, c, r, zs = _chain_in_box(act, seed, K)
    lin = linear_bounds(form, c, r, "linf")
    alp = alpha_bounds(form, c, r, "linf")
    for z, (la, ua), (ll, ul) in zip(zs, alp, lin):
        assert np.all(z >= la) and np.all(z <= ua)
        assert np.all(la >= ll) and np.all(ua <= ul)          # intersected with CROWN: never wider
    # strictly narrower: the optimised slopes beat CROWN's adaptive ones past the first blocks
    assert _widths(alp) < 0.95 * _widths(lin)
    # no steps: CROWN re-run on the same earlier intervals, nothing gained beyond rounding (a subset of rows may
    # round differently in another BLAS)
    same = alpha_bounds(form, c, r, "linf", steps=0)
    assert all(np.allclose(a, b, rtol=1e-12, atol=1e-12) for x, y in zip(same, lin) for a, b in zip(x, y))


def test_alpha_bounds_on_an_l2_ball_and_a_multi_input_form():
    form = tiny_momentum(5)
    c = np.array([0.2, -0.1])
    lin, alp = linear_bounds(form, c, 0.5, "l2"), alpha_bounds(form, c, 0.5, "l2")
    rng = np.random.default_rng(1)
    d = rng.standard_normal((20000, 2))
    d = d / np.linalg.norm(d, axis=1, keepdims=True) * np.sqrt(rng.random((20000, 1))) * 0.5
    d[:2000] /= np.linalg.norm(d[:2000], axis=1, keepdims=True) / 0.5   # the sphere, where bounds are attained
    zs, _, _ = form.evaluate_blocks(c + d)
    for z, (la, ua), (ll, ul) in zip(zs, alp, lin):
        assert np.all(z >= la) and np.all(z <= ua)
        assert np.all(la >= ll) and np.all(ua <= ul)


def test_alpha_on_a_deep_chain_in_an_l2_ball_decides_more_neurons():
    """A 10-block soft-threshold chain in an l2 ball of radius 0.02: the alpha intervals hold on sampled
    points and decide more neurons than CROWN's (measured: 41 of 60 against 25; total width x 0.61)."""
    form = tiny_chain(7, m=3, n=6, K=10)
    c = np.array([0.1, -0.2, 0.3])
    lin, alp = linear_bounds(form, c, 0.02, "l2"), alpha_bounds(form, c, 0.02, "l2")
    rng = np.random.default_rng(2)
    d = rng.standard_normal((20000, 3))
    d = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.random((20000, 1)) ** (1 / 3) * 0.02
    zs, _, _ = form.evaluate_blocks(c + d)
    for z, (la, ua) in zip(zs, alp):
        assert np.all(z >= la) and np.all(z <= ua)
    fixed = [sum(int(np.sum(a == b)) for a, b in zip(*refined_slopes(form, x))) for x in (lin, alp)]
    assert fixed[1] >= fixed[0] + 8
    assert _widths(alp) < 0.8 * _widths(lin)


def test_domain_bound_with_alpha_propagation_is_sound_and_not_above_linear():
    form = tiny_chain(2, m=2, n=3, K=4)
    box = (np.array([-0.3, 0.1]), np.array([0.1, 0.4]))
    ref, _ = brute_force(form, "l2", box=box)
    dom_alpha = lip.domain_upper_bound(form, box, propagation="alpha")
    dom_lin = lip.domain_upper_bound(form, box)
    assert dom_alpha.checks["propagation"] == "alpha" and dom_alpha.certified
    assert dom_alpha.checks["fixed_neurons"] >= dom_lin.checks["fixed_neurons"]
    assert ref <= dom_alpha.value * (1 + 1e-9) and dom_alpha.value <= dom_lin.value * (1 + 1e-6)
    # the floor of slope-interval certificates on the same alpha slopes lies below the alpha domain LipSDP
    floor = lip.relaxation_floor(form, domain=box, propagation="alpha")
    assert floor.checks["propagation"] == "alpha" and floor.value <= dom_alpha.value * (1 + 1e-6)


# measured (brute force, alpha, linear): seed 2, r 0.05: 14.267, 14.267, 16.525 (12 of 15 neurons fixed against
# 11); seed 4, r 0.1: 8.265, 8.561, 10.445 (10 against 8)
@pytest.mark.parametrize("seed,radius", [(2, 0.05), (4, 0.1)])
def test_local_bound_with_alpha_propagation_lies_between_brute_force_and_linear(seed, radius):
    form = tiny_chain(seed, m=2, n=3, K=5)
    c = np.array([-0.1, 0.25])
    ref, _ = brute_force(form, "l2", box=(c - radius, c + radius))
    alp = lip.local_upper_bound(form, c, radius, norm="linf", propagation="alpha")
    lin = lip.local_upper_bound(form, c, radius, norm="linf")
    assert alp.certified and alp.checks["propagation"] == "alpha" and alp.method == "local_lipsdp"
    assert alp.checks["fixed_neurons"] > lin.checks["fixed_neurons"]
    assert ref <= alp.value * (1 + 1e-9)
    assert alp.value <= 0.9 * lin.value


def test_bad_propagation_is_refused_by_name():
    form = tiny_chain(2, m=2, n=3, K=3)
    for call in (lambda: lip.local_upper_bound(form, np.zeros(2), 0.1, propagation="crown"),
                 lambda: lip.domain_upper_bound(form, (np.zeros(2), np.ones(2)), propagation="auto"),
                 lambda: lip.relaxation_floor(form, domain=(np.zeros(2), np.ones(2)), propagation="Alpha")):
        with pytest.raises(InvalidInputError, match="propagation must be 'alpha', 'linear' or 'interval'"):
            call()
    with pytest.raises(InvalidInputError, match="propagation must be 'auto', 'alpha', 'linear' or 'interval'"):
        lip.local_sandwich(form, np.zeros((2, 2)), 0.1, propagation="beta")
    # local_sandwich's default picks alpha on a small form and records it
    b = lip.local_sandwich(form, np.zeros((2, 2)) + 0.1, 0.05, samples=2, ascent_steps=2)
    assert b.checks["propagation"] == "alpha" and "alpha-CROWN" in b.solver
