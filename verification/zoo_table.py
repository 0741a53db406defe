"""Train every model of the zoo on one sparse-recovery configuration and print the last-layer NMSE table.

    python verification/zoo_table.py                      # reduced CPU configuration (m=50, n=100, K=10)
    python verification/zoo_table.py --m 250 --n 500 --layers 16 --steps 20000 --device cuda   # paper scale

Noiseless data with the LISTA-CP/ALISTA conventions (Bernoulli(p) support, N(0, 1) values).  Every learned
model is trained end to end on the final-layer NMSE with Adam; ISTA and FISTA (lam = 0.1, step 1/L) are the
classical baselines at the same depth.  Writes ``verification/out/zoo_table.json`` and ``zoo_table.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import unfoldtheory as ut

OUT = Path(__file__).resolve().parent / "out"

LEARNED = {
    # name: (constructor, learning rate)
    "LearnedStepISTA": (lambda A, K: ut.models.LearnedStepISTA(A, K), 1e-2),
    "ALISTA": (lambda A, K: ut.models.ALISTA(A, K), 1e-2),
    "HyperLISTA": (lambda A, K: ut.models.HyperLISTA(A, K), 1e-2),
    "UnfoldedFISTA": (lambda A, K: ut.models.UnfoldedFISTA(A, K), 1e-2),
    "UnfoldedADMM": (lambda A, K: ut.models.UnfoldedADMM(A, K), 1e-2),
    "LISTA": (lambda A, K: ut.models.LISTA(A, K), 1e-3),
    "LISTA (tied)": (lambda A, K: ut.models.LISTA(A, K, tied=True), 1e-3),
    "LISTACP": (lambda A, K: ut.models.LISTACP(A, K), 1e-3),
    "LISTACPSS": (lambda A, K: ut.models.LISTACPSS(A, K), 1e-3),
    "TiLISTA": (lambda A, K: ut.models.TiLISTA(A, K), 3e-3),
    "CorrectedISTA": (lambda A, K: ut.models.CorrectedISTA(A, K, hidden=64), 1e-3),
    "LearnedProxISTA": (lambda A, K: ut.models.LearnedProxISTA(A, K), 1e-3),
}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=50)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--p", type=float, default=0.1)
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--steps", type=int, default=3000, help="Adam steps per model")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--only", nargs="*", help="train only these models")
    args = p.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = ut.problems.SparseRecovery.gaussian(args.m, args.n, p=args.p, seed=args.seed)
    test = gen.sample(args.test_size, seed=args.seed + 1)
    rows = []
    for name, net in [("ISTA (classical)", ut.models.ISTA(gen.A, args.layers, lam=0.1, device=device)),
                      ("FISTA (classical)", ut.models.UnfoldedFISTA(gen.A, args.layers, lam=0.1, device=device))]:
        rows.append({"model": name, "paradigm": "classical", "nmse_db": float(
            ut.metrics.per_layer_nmse_db(net, test.y, test.x)[-1]), "seconds": 0.0})
    epochs = 10
    for name, (make, lr) in LEARNED.items():
        if args.only and name not in args.only:
            continue
        net = make(gen.A, args.layers).to(device)
        t0 = time.perf_counter()
        ut.training.train(net, gen, epochs=epochs, steps_per_epoch=max(1, args.steps // epochs),
                          batch_size=args.batch, lr=lr, seed=args.seed, progress=True)
        rows.append({"model": name, "paradigm": type(net).paradigm,
                     "nmse_db": float(ut.metrics.per_layer_nmse_db(net, test.y, test.x)[-1]),
                     "seconds": time.perf_counter() - t0})
        print(f"{name:>18}: {rows[-1]['nmse_db']:7.2f} dB  ({rows[-1]['seconds']:.0f} s)", flush=True)
    title = (f"NMSE (dB) at layer {args.layers}, m={args.m}, n={args.n}, p={args.p}, noiseless, "
             f"{args.steps} Adam steps of {args.batch}, {device}")
    md = [f"**{title}**", "", "| model | paradigm | NMSE [dB] | train time [s] |", "|---|---|---|---|"]
    md += [f"| {r['model']} | {r['paradigm']} | {r['nmse_db']:.2f} | {r['seconds']:.0f} |" for r in rows]
    print("\n".join(md))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "zoo_table.json").write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2))
    (OUT / "zoo_table.md").write_text("\n".join(md) + "\n")
    return rows


if __name__ == "__main__":
    main()
