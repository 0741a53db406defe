"""Extraction time of the analysis form of a plain-PyTorch LISTA (goal: < 2 s at K = 16, m = 250, n = 500).

    python verification/benchmarks/bench_extract.py [--layers 16 --m 250 --n 500 --repeat 3]

The model is written as a user would (``nn.Linear`` layers in ``nn.ModuleList``s, soft threshold as
``sign(z) * relu(|z| - t)``, no ``form()``).  Printed, all measured in this process: the first extraction
(it also pays one-time imports of torch's dispatch machinery), the median of ``--repeat`` further ones, and as
baselines one plain float64 forward pass of a batch of 7 (what the trace runs) and the zoo's hand-written
``LISTA.form()`` of the same weights; ratios are against both.  The extracted form is checked to give the same
naive Lipschitz bound as the zoo form.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


class PlainLISTA(nn.Module):
    def __init__(self, m: int, n: int, layers: int):
        super().__init__()
        self.W1 = nn.ModuleList([nn.Linear(m, n, bias=False) for _ in range(layers)])
        self.W2 = nn.ModuleList([nn.Linear(n, n, bias=False) for _ in range(layers)])
        self.theta = nn.Parameter(torch.full((layers,), 0.05))

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.W2[0].in_features, dtype=y.dtype)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            x = torch.sign(z) * torch.relu(z.abs() - self.theta[k])
        return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--m", type=int, default=250)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import unfoldtheory as ut
    from unfoldtheory.lipschitz._naive import naive_terms
    from unfoldtheory.lipschitz._net import from_form

    net = PlainLISTA(args.m, args.n, args.layers).double()
    Y = torch.randn(7, args.m, dtype=torch.float64)

    t0 = time.perf_counter()
    form = ut.form.extract(net, args.m)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        form = ut.form.extract(net, args.m)
        warm.append(time.perf_counter() - t0)
    t_extract = statistics.median(warm)

    fwd = []
    for _ in range(5):
        t0 = time.perf_counter()
        with torch.no_grad():
            net(Y)
        fwd.append(time.perf_counter() - t0)
    t_fwd = statistics.median(fwd)

    zoo = ut.models.LISTA.from_weights([lin.weight.detach().numpy() for lin in net.W1],
                                       [lin.weight.detach().numpy() for lin in net.W2],
                                       [float(t) for t in net.theta.detach()], device="cpu", dtype=torch.float64)
    hand = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        zoo_form = zoo.form()
        hand.append(time.perf_counter() - t0)
    t_hand = statistics.median(hand)
    same = naive_terms(from_form(form))["value"] / naive_terms(from_form(zoo_form))["value"]

    print(f"plain LISTA K={args.layers}, m={args.m}, n={args.n}, torch threads={args.threads}")
    print(f"extract, first call (one-time imports included): {first:.3f} s")
    print(f"extract, median of {args.repeat}                        : {t_extract:.3f} s  (goal < 2 s)")
    print(f"baseline: one plain forward (batch 7)          : {t_fwd * 1e3:.2f} ms  ratio {t_extract / t_fwd:.0f}x")
    print(f"baseline: zoo hand-written LISTA.form()        : {t_hand:.3f} s  ratio {t_extract / t_hand:.1f}x")
    print(f"naive bound extracted / zoo                    : {same:.15f}")


if __name__ == "__main__":
    main()
