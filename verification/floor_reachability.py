"""Can an input reach the relaxation floor's activation pattern?  A study on the trained 16-layer zoo models.

    python verification/floor_reachability.py                        # ALISTA and UnfoldedFISTA
    python verification/floor_reachability.py --models ALISTA --steps 3000

For each model (m = 32, n = 64, 16 layers, 4000 Adam steps, the ``bench_lipsdp`` configuration; trained by
``lipschitz_report.py`` if missing): the relaxation floor (``lipschitz.relaxation_floor``, ``--restarts``
trajectories of ``--moves`` flips) gives a vertex slope pattern ``D*`` whose Jacobian norm lower-bounds every
slope-interval certificate.  Starting from the first 16 test inputs and the same inputs scaled by 10, Adam on
``y`` (``--steps`` steps, step 0.01) minimises the total violation of ``D*``: for a soft threshold with target
slope 0, ``max(|z| - theta, 0)``; target slope 1, ``max(theta - |z|, 0)``; for a ReLU, the violated sign.  The
script prints the floor, the smallest violation reached (0 would mean the pattern is reachable, in threshold
units otherwise), the largest Jacobian norm at the optimised points, and ``lipschitz.region_search`` (the
non-greedy walk) from the four best of them against the model's best certified witness
(docs/theory/relaxation_floor.md §6).  A local optimiser: a positive violation is evidence that the floor's
pattern is unreachable, not a proof.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lipschitz_report as report  # noqa: E402

from unfoldtheory import lipschitz as lip  # noqa: E402
from unfoldtheory.form import ReLU, SoftThreshold  # noqa: E402
from unfoldtheory.lipschitz._torch import TorchForm  # noqa: E402


def violation(tf: TorchForm, acts: list, targets: list, Y: torch.Tensor) -> torch.Tensor:
    """Total violation of the target slopes per row of ``Y`` (threshold units)."""
    total = torch.zeros(Y.shape[0], dtype=Y.dtype)
    for z, act, tgt in zip(tf.forward(Y, return_pre=True), acts, targets):
        on = torch.as_tensor(tgt > 0.5)
        if isinstance(act, SoftThreshold):
            th = torch.as_tensor(np.broadcast_to(act.theta, (z.shape[1],)).copy())
            total = total + torch.where(on, torch.relu(th - z.abs()), torch.relu(z.abs() - th)).sum(1)
        elif isinstance(act, ReLU):
            total = total + torch.where(on, torch.relu(-z), torch.relu(z)).sum(1)
    return total


def study(name: str, restarts: int, moves: int, steps: int, seed: int) -> None:
    net, _ = report.trained_model(name, 32, 64, 16, 4000)
    form = lip.require_form(net)
    data = report.problem(32, 64).sample(256, seed=1).y
    t0 = time.perf_counter()
    floor = lip.relaxation_floor(form, restarts=restarts, moves=moves, seed=seed)
    slopes = floor.witness["slopes"]
    targets = [np.asarray(s) for s in slopes] if isinstance(slopes, list) else np.split(
        np.asarray(slopes), np.cumsum(form.sizes)[:-1])
    tf, acts = TorchForm(form), [blk.activation for blk in form.blocks]
    torch.manual_seed(seed)
    Y = torch.tensor(np.vstack([data[:16], 10 * data[:16]]), requires_grad=True)
    opt = torch.optim.Adam([Y], lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        violation(tf, acts, targets, Y).sum().backward()
        opt.step()
    Yn = Y.detach().numpy()
    v = violation(tf, acts, targets, torch.as_tensor(Yn)).numpy()
    jac = np.array([np.linalg.norm(form.jacobian(y), 2) for y in Yn])
    best = np.argsort(jac)[::-1][:4]
    walk = lip.region_search(form, Yn[best], rounds=0, flips=60, restarts=2, patience=10, time_limit=600,
                             seed=seed)
    print(f"| {name} | {floor.value:.4g} | {v.min():.3g} | {jac.max():.4g} | {walk.value:.4g} | "
          f"{time.perf_counter() - t0:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ALISTA", "UnfoldedFISTA"])
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--moves", type=int, default=300)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| model | floor F | least violation of its pattern | largest Jacobian norm there | region walk from "
          "there | seconds |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        study(name, args.restarts, args.moves, args.steps, args.seed)


if __name__ == "__main__":
    main()
