"""Lipschitz bounds against depth for trained models, and certified sensitivity versus attacks.

    python verification/lipschitz_report.py            # m=20, n=40, K=8 on CPU: a few minutes

Trains LISTA, LISTA-CP, ALISTA and an adversarially trained LISTA-CP (l2 ball, eps=1) on one sparse-recovery
problem; classical ISTA is the untrained baseline.  For each model it computes the naive, LipSDP-Layer and
LipSDP-Neuron upper bounds and the witnessed lower bound of y -> x_k for every depth k and draws them
(``verification/out/lipschitz_<model>.png``), then compares the certified sensitivity with a PGD attack on the
test data (``verification/out/robustness.md``).  Every row must satisfy attack <= certified.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import unfoldtheory as ut
from unfoldtheory import lipschitz as lip
from unfoldtheory.robustness import compare_sensitivity

OUT = Path(__file__).resolve().parent / "out"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=20)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eps", type=float, default=1.0, help="l2 attack radius (also used in adversarial training)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = ut.problems.SparseRecovery.gaussian(args.m, args.n, p=0.1, seed=args.seed)
    test = gen.sample(200, seed=args.seed + 1)
    K, kw = args.layers, dict(epochs=5, steps_per_epoch=max(1, args.steps // 5), batch_size=64, seed=args.seed)
    models = {"ISTA": ut.models.ISTA(gen.A, 0.05, K, device="cpu", dtype=torch.float64)}
    for name, net, lr, extra in [
        ("LISTA", ut.models.LISTA(gen.A, K, lam=0.05, device="cpu"), 1e-3, {}),
        ("LISTA-CP", ut.models.LISTACP(gen.A, K, lam=0.05, device="cpu"), 3e-3, {}),
        ("ALISTA", ut.models.ALISTA(gen.A, K, device="cpu"), 1e-2, {}),
        ("LISTA-CP (adversarial)", ut.models.LISTACP(gen.A, K, lam=0.05, device="cpu"), 3e-3,
         {"scheme": "adversarial", "attack_eps": args.eps}),
    ]:
        history = ut.training.train(net, gen, lr=lr, **kw, **extra)
        print(f"trained {name}: {history}", flush=True)
        models[name] = net.double()
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, net in models.items():
        rows = lip.bounds_vs_depth(net, lower_kwargs={"data": test.y, "time_limit": 20})
        last = rows[-1]
        summary[name] = {key: last[key].value for key in ("naive", "layerwise", "lipsdp", "lower")}
        summary[name]["nmse_db"] = float(ut.metrics.per_layer_nmse_db(net, test.y, test.x)[-1])
        ax = lip.plot_bounds_vs_depth(rows, title=f"{name} (m={args.m}, n={args.n})")
        ax.figure.tight_layout()
        ax.figure.savefig(OUT / f"lipschitz_{name.replace(' ', '_').replace('(', '').replace(')', '')}.png", dpi=110)
        plt.close(ax.figure)
        s = summary[name]
        print(f"{name:>24}: NMSE {s['nmse_db']:6.2f} dB | lower {s['lower']:.3f} <= LipSDP {s['lipsdp']:.3f} <= "
              f"layerwise {s['layerwise']:.3f} <= naive {s['naive']:.3f} | LipSDP/lower "
              f"{s['lipsdp'] / s['lower']:.2f}, naive/lower {s['naive'] / s['lower']:.1f}", flush=True)
    rows = compare_sensitivity(models, test.y[:32], args.eps, attack_steps=30)
    md = [f"**Certified sensitivity vs PGD attack, l2 radius {args.eps}, m={args.m}, n={args.n}, K={K}**", "",
          "| model | NMSE [dB] | lower bound | LipSDP (certified) | naive | achieved attack ratio | "
          "certified / achieved | holds |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = summary[r["name"]]
        holds = r["attack"].value <= r["lipschitz_upper"].value
        md.append(f"| {r['name']} | {s['nmse_db']:.2f} | {s['lower']:.3f} | {r['lipschitz_upper'].value:.3f} | "
                  f"{s['naive']:.3f} | {r['attack'].value:.3f} | {r['ratio_gap']:.2f} | {'yes' if holds else 'NO'} |")
        summary[r["name"]]["attack_ratio"] = r["attack"].value
        summary[r["name"]]["attack_holds"] = bool(holds)
    print("\n".join(md))
    (OUT / "robustness.md").write_text("\n".join(md) + "\n")
    (OUT / "lipschitz_report.json").write_text(json.dumps({"config": vars(args), "models": summary}, indent=2))
    if not all(s["attack_holds"] for s in summary.values()):
        raise SystemExit("an attack exceeded a certified bound: soundness violation")
    return summary


if __name__ == "__main__":
    main()
