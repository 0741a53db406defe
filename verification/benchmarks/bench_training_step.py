"""Overhead of our models in a training step (forward + backward) against the same recursion in plain torch.

    python verification/benchmarks/bench_training_step.py [--m 250 --n 500 --layers 16 --batch 256 --repeat 30]

Measures, in the same process and interleaved (so machine load affects both alike), the median time of one
training step (forward, NMSE loss, backward, Adam step) of ``ut.models.LISTA`` and ``ut.models.LearnedStepISTA``
and of a hand-written plain-torch module computing the same recursion; prints the ratio ours / plain
(goal: <= 1.1).  The outputs are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import unfoldtheory as ut


class PlainLISTA(nn.Module):
    def __init__(self, W1, W2, theta):
        super().__init__()
        self.W1, self.W2, self.theta = (nn.Parameter(t.clone()) for t in (W1, W2, theta))

    def forward(self, y):
        x = torch.sign(z := y @ self.W1[0].T) * torch.relu(z.abs() - self.theta[0])
        for k in range(1, self.W1.shape[0]):
            z = y @ self.W1[k].T + x @ self.W2[k].T
            x = torch.sign(z) * torch.relu(z.abs() - self.theta[k])
        return x


class PlainStepISTA(nn.Module):
    def __init__(self, A, gamma, theta):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.gamma, self.theta = nn.Parameter(gamma.clone()), nn.Parameter(theta.clone())

    def forward(self, y):
        A = self.A
        x = torch.zeros(y.shape[0], A.shape[1], dtype=y.dtype, device=y.device)
        for k in range(self.gamma.shape[0]):
            z = x + (y - x @ A.T) @ (self.gamma[k] * A) if k else y @ (self.gamma[k] * A)
            x = torch.sign(z) * torch.relu(z.abs() - self.theta[k])
        return x


def step_timer(model, y, x):
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)

    def step():
        t0 = time.perf_counter()
        loss = ((model(y) - x) ** 2).sum() / (x ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if y.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=250)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    gen = ut.problems.SparseRecovery.gaussian(args.m, args.n, p=0.1, seed=0)
    s = gen.sample(args.batch, seed=1)
    y = torch.tensor(s.y, dtype=torch.float32, device=args.device)
    x = torch.tensor(s.x, dtype=torch.float32, device=args.device)
    print(f"training step, m={args.m} n={args.n} K={args.layers} batch={args.batch} on {args.device}; "
          f"load average {os.getloadavg()[0]:.2f} (timings interleaved, medians of {args.repeat})")
    ours_lista = ut.models.LISTA(gen.A, args.layers, device=args.device)
    ours_lista.check_inputs = False
    plain_lista = PlainLISTA(ours_lista.W1.data, ours_lista.W2.data, ours_lista.theta.data).to(args.device)
    ours_step = ut.models.LearnedStepISTA(gen.A, args.layers, device=args.device)
    ours_step.check_inputs = False
    plain_step = PlainStepISTA(ours_step.A, ours_step.gamma.data, ours_step.theta.data).to(args.device)
    for name, ours, plain in [("LISTA", ours_lista, plain_lista), ("LearnedStepISTA", ours_step, plain_step)]:
        with torch.no_grad():
            diff = float((ours(y) - plain(y)).abs().max())
        assert diff < 1e-4, f"{name}: outputs differ by {diff}"
        t_ours, t_plain = step_timer(ours, y, x), step_timer(plain, y, x)
        for _ in range(3):
            t_ours(), t_plain()
        a, b = [], []
        for _ in range(args.repeat):
            a.append(t_ours())
            b.append(t_plain())
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name:>16}: ours {1e3 * ma:8.2f} ms   plain torch {1e3 * mb:8.2f} ms   ratio {ma / mb:.3f} "
              f"(goal <= 1.1)")


if __name__ == "__main__":
    main()
