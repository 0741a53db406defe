"""The stronger witness search (docs/theory/exact_lipschitz.md §11): non-greedy walk, line jumps, sampled starts.

Every value is a certified attained region, so it must lie below every certified upper bound (brute force on
tiny nets, LipSDP on the small trained nets) and, on the constructed hard cases, reach what the greedy walk
misses: the brute-force constant, or the exact solver's certified lower end of §10.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_exact import brute_force, tiny_chain

import unfoldtheory as ut
from unfoldtheory import lipschitz as lip
from unfoldtheory.errors import InvalidInputError
from unfoldtheory.lipschitz import _exact as E
from unfoldtheory.lipschitz._flip import line_points


def test_line_points_lie_on_the_ray_and_on_lines_through_the_witness():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(4)
    J = rng.standard_normal((3, 4))
    P = line_points(y, J, seed=1, directions=5, steps=6)
    assert P.shape == (2 * 6 + 6 + 2 * 5 * 6, 4)
    ray = P[:18]
    # the first 18 points are t * y
    t = ray @ y / (y @ y)
    assert np.allclose(ray, t[:, None] * y[None, :]) and t.min() == pytest.approx(0.1) and t.max() == pytest.approx(10.0)
    # the others are y +- s d with unit d, the first direction the top right singular vector of J
    v = np.linalg.svd(J)[2][0]
    d = P[18:24] - y
    cos = np.abs(d @ v) / np.linalg.norm(d, axis=1)
    assert np.allclose(cos, 1.0)


def test_tabu_walk_and_line_jumps_reach_the_brute_force_constant_where_the_greedy_walk_stops():
    form = tiny_chain(0, m=3, K=3)
    ref, _ = brute_force(form, "l2")
    y = 0.1 * np.random.default_rng(0).standard_normal(3)
    greedy = lip.region_search(form, y, rounds=0, flips=30)
    # the constructed hard case: the greedy walk ends at a local maximum below the constant
    assert greedy.value < 0.97 * ref
    for kw in ({"jumps": 5}, {"patience": 10}, {"patience": 10, "jumps": 5, "samples": 64}):
        rs = lip.region_search(form, y, rounds=0, flips=30, **kw)
        assert rs.certified and rs.side == "lower"
        assert greedy.value * (1 - 1e-9) <= rs.value <= ref * (1 + 1e-9), kw
        assert rs.value >= 0.999 * ref, kw
        # the witness region is attained: its Jacobian at the witness point has that norm
        assert np.linalg.norm(form.jacobian(rs.witness["y"]), 2) >= rs.value * (1 - 1e-9)
    with pytest.raises(InvalidInputError, match="patience"):
        lip.region_search(form, y, rounds=0, flips=5, patience=-1)
    with pytest.raises(InvalidInputError, match="jumps"):
        lip.region_search(form, y, rounds=0, flips=5, jumps=1.5)


def test_sampled_starts_are_ranked_with_the_given_ones():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((5, 3))
    S = E.sample_starts(Y, 40, seed=3)
    assert S.shape == (40, 3) and np.all(np.isfinite(S))
    assert np.array_equal(S, E.sample_starts(Y, 40, seed=3))          # seeded
    # the first half are scaled copies of given points (factor in [1e-2, 1e2])
    for s in S[:20]:
        ratios = [np.linalg.norm(s) / np.linalg.norm(y) for y in Y
                  if abs(abs(s @ y) - np.linalg.norm(s) * np.linalg.norm(y)) <= 1e-9 * np.linalg.norm(s) * np.linalg.norm(y)]
        assert ratios and 1e-2 <= min(ratios) <= 1e2


# the exact solver's certified lower ends on these small trained nets (docs/theory/exact_lipschitz.md §10,
# verification/benchmarks/bench_exact.py, m = 3, n = 5, 300 Adam steps, seed 0), where the greedy search
# stopped at 4.773 (UnfoldedFISTA, K = 6) and 3.575 (CorrectedISTA, K = 6)
EXACT_LOWER_END = {("UnfoldedFISTA", 6): 6.049, ("CorrectedISTA", 6): 4.081}


def _trained(name: str, K: int):
    gen = ut.problems.SparseRecovery.gaussian(3, 5, p=0.2, seed=0)
    torch.manual_seed(0)
    if name == "UnfoldedFISTA":
        net, lr = ut.models.UnfoldedFISTA(gen.A, K), 1e-2
    else:
        net, lr = ut.models.CorrectedISTA(gen.A, K, hidden=6), 1e-3
    net = net.to(dtype=torch.float32)
    ut.training.train(net, gen, epochs=5, steps_per_epoch=60, batch_size=128, lr=lr, seed=0, progress=False,
                      device="cpu")
    return net.double(), gen.sample(256, seed=1).y


@pytest.mark.parametrize("name,K", sorted(EXACT_LOWER_END))
def test_search_reaches_the_exact_lower_end_on_small_trained_nets(name, K):
    torch.set_num_threads(1)
    net, data = _trained(name, K)
    low = lip.lower_bound(net, data=data, num_random=256, ascent_steps=60, ascent_starts=8, smooth_steps=30)
    rs = lip.region_search(net, [low, data], rounds=0, flips=100, restarts=4, patience=10, jumps=10, seed=0)
    up = lip.upper_bound(net, "lipsdp", time_limit=30.0)
    assert up.certified and rs.certified
    assert rs.value >= EXACT_LOWER_END[(name, K)] * (1 - 1e-3)
    assert rs.value <= up.value
    f = net.form()
    assert np.linalg.norm(f.jacobian(rs.witness["y"]), 2) >= rs.value * (1 - 1e-9)
