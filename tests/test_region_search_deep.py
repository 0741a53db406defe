"""Region search at depth: kink starts, restarts, and the secant certification of a region."""

from __future__ import annotations

import numpy as np
import pytest
from test_exact import brute_force, tiny_chain

from unfoldtheory import lipschitz as lip
from unfoldtheory.errors import InvalidInputError
from unfoldtheory.lipschitz import _exact as E


def test_secant_witness_is_a_lower_bound_attaining_the_region_norm():
    form = tiny_chain(1, m=3, K=3)
    ref, _ = brute_force(form, "l2")
    glob = E.make_problem(form, None, form.num_neurons + 1)
    rng = np.random.default_rng(0)
    seen = 0
    for y in rng.standard_normal((15, 3)):
        cand = E._pattern_at(form, glob.pieces, y)[2]
        pat = [c[0] for c in cand]
        if np.linalg.norm(form.jacobian(y), 2) == 0:       # a flat region: nothing to certify
            continue
        yi, s = E.interior_point(glob, pat)
        wt = E._secant_witness(form, glob, pat, yi, s, y)
        assert wt is not None and wt["certified_by"] == "secant"
        assert wt["value"] <= ref * (1 + 1e-9)
        # a secant inside the region realises the region's spectral norm (up to rounding)
        assert wt["value"] == pytest.approx(np.linalg.norm(form.jacobian(y), 2), rel=1e-6)
        f = form.evaluate
        ratio = np.linalg.norm(f(wt["y"] + wt["d"]) - f(wt["y"])) / np.linalg.norm(wt["d"])
        assert wt["value"] <= ratio * (1 + 1e-12)
        seen += 1
    assert seen >= 5


def test_a_start_on_a_kink_is_certified_through_its_adjacent_regions():
    form = tiny_chain(4, m=2, K=3)
    ref, _ = brute_force(form, "l2")
    glob = E.make_problem(form, None, form.num_neurons + 1)
    # y on the upper kink of neuron 0 of the first block: B_0 y + b_0 = theta_0
    blk = form.blocks[0]
    B0, b0, th = np.asarray(blk.B)[0], float(blk.b[0]), float(blk.activation.theta[0])
    y = np.array([0.3, 0.0])
    y[1] = (th - b0 - B0[0] * y[0]) / B0[1]
    cand = E._pattern_at(form, glob.pieces, y)[2]
    assert len(cand[0]) > 1
    wt = E._certified_start(form, glob, y, "l2", 0)
    assert wt is not None and 0 < wt["value"] <= ref * (1 + 1e-9)
    # the best of the (up to two) regions meeting at the kink
    near = [np.linalg.norm(form.jacobian(y + t * np.array([B0[0], B0[1]])), 2) for t in (-1e-6, 1e-6)]
    assert wt["value"] >= max(near) * (1 - 1e-9)


@pytest.mark.parametrize("seed", [3])
def test_region_search_with_restarts_and_pooled_starts_stays_below_the_exact_value(seed):
    form = tiny_chain(seed, m=3, K=3)
    ref, _ = brute_force(form, "l2")
    rng = np.random.default_rng(seed)
    data = 0.3 * rng.standard_normal((20, 3))
    lo = lip.lower_bound(form, data=data, num_random=16, ascent_steps=10, ascent_starts=4, smooth_steps=0)
    rs = lip.region_search(form, [lo, data], rounds=3, restarts=2)
    assert rs.certified and rs.side == "lower" and rs.checks["restarts"] >= 1
    assert rs.checks["start_value"] * (1 - 1e-9) <= rs.value <= ref * (1 + 1e-9)
    assert {st["start"] for st in rs.checks["rounds"]} <= set(range(rs.checks["restarts"]))
    with pytest.raises(InvalidInputError, match="restarts"):
        lip.region_search(form, data, restarts=0)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_flip_walk_climbs_over_adjacent_regions_and_stays_below_the_exact_value(norm):
    from unfoldtheory.lipschitz._flip import flip_walk, neighbours

    form = tiny_chain(0, m=3, K=3)
    ref, _ = brute_force(form, norm)
    glob = E.make_problem(form, None, form.num_neurons + 1)
    y = np.array([0.05, -0.1, 0.2])
    start = E._certified_start(form, glob, y, norm, 0)
    # every neighbour differs from the start pattern in exactly one neuron, by one piece
    for p in neighbours(glob, start["pattern"], start["y"], 8):
        diff = [i for i, (a, b) in enumerate(zip(p, start["pattern"])) if a != b]
        assert len(diff) == 1 and abs(p[diff[0]] - start["pattern"][diff[0]]) == 1
    log_: list = []
    got = flip_walk(form, glob, start, norm, 20, log_=log_)
    assert start["value"] <= got["value"] <= ref * (1 + 1e-9)
    # on this net the walk climbs from the start region (2.87 l2, 4.15 linf) to the exact constant
    assert got["value"] >= 0.999 * ref and start["value"] < 0.7 * ref
    values = [e["value"] for e in log_]
    assert values == sorted(values)
    rs = lip.region_search(form, y, norm, rounds=0, flips=20)
    assert rs.value == pytest.approx(got["value"], rel=1e-9)
    with pytest.raises(InvalidInputError, match="rounds"):
        lip.region_search(form, y, rounds=0, flips=0)
