"""End-to-end demo (the main job until the verification suite lands).

Generates a sparse-recovery problem (LISTA-CP/ALISTA conventions), computes certified LASSO optima for a test
set, runs unrolled ISTA and a briefly trained LISTA, and prints the per-layer error of each against the
reference optimum and the ground truth.  Writes ``verification/out/demo.json`` and, when matplotlib is
installed, ``verification/out/demo_layers.png``.

    python verification/demo.py            # CPU default: about a minute
    python verification/demo.py --help
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import unfoldtheory as ut

OUT = Path(__file__).resolve().parent / "out"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=64)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--p", type=float, default=0.1, help="Bernoulli support probability")
    p.add_argument("--snr-db", type=float, default=40.0)
    p.add_argument("--lam", type=float, default=0.02, help="LASSO weight of the reference and of ISTA")
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--test-size", type=int, default=500)
    p.add_argument("--steps", type=int, default=1000, help="LISTA training steps")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--no-figure", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    gen = ut.problems.SparseRecovery.gaussian(args.m, args.n, p=args.p, snr_db=args.snr_db, seed=args.seed)
    prob = gen.lasso(args.lam)
    test = gen.sample(args.test_size, seed=args.seed + 1)
    print(f"problem   {gen}\n          {prob}")

    t0 = time.perf_counter()
    sol = ut.reference.solve(prob, test.y)
    t_ref = time.perf_counter() - t0
    print(f"reference {args.test_size} certified LASSO optima in {t_ref:.2f} s: "
          f"max relative gap {np.max(sol.relative_gap):.1e}, max relative residual {np.max(sol.residual):.1e}, "
          f"all optimal: {bool(np.all(sol.status == 'optimal'))}")

    ista = ut.models.ISTA(prob.A, args.layers, lam=prob.lam, device=device, dtype=torch.float64)
    t0 = time.perf_counter()
    lista = ut.models.LISTA(gen.A, args.layers, lam=args.lam, device=device)
    history = ut.training.train(lista, gen, epochs=10, steps_per_epoch=max(1, args.steps // 10),
                                batch_size=args.batch, lr=args.lr, seed=args.seed)
    t_train = time.perf_counter() - t0
    print(f"training  LISTA ({args.layers} layers, {args.steps} steps of {args.batch}) in {t_train:.1f} s "
          f"on {device}: {history}")

    with torch.no_grad():
        xs_ista = [x.cpu().numpy() for x in ista(test.y, return_all=True)]
        xs_lista = [x.double().cpu().numpy() for x in lista(test.y, return_all=True)]
    rows = []
    for k in range(args.layers):
        rows.append({
            "layer": k + 1,
            "ista_nmse_db_truth": ut.metrics.nmse_db(xs_ista[k], test.x),
            "ista_nmse_db_lasso": ut.metrics.nmse_db(xs_ista[k], sol.x),
            "lista_nmse_db_truth": ut.metrics.nmse_db(xs_lista[k], test.x),
        })
    print("\nper-layer NMSE [dB] on the test set (truth = x*, lasso = certified LASSO optimum)")
    print(f"{'layer':>5} {'ISTA vs truth':>14} {'ISTA vs lasso':>14} {'LISTA vs truth':>15}")
    for r in rows:
        print(f"{r['layer']:>5} {r['ista_nmse_db_truth']:>14.2f} {r['ista_nmse_db_lasso']:>14.2f} "
              f"{r['lista_nmse_db_truth']:>15.2f}")
    print(f"\nLASSO optimum itself vs truth: {ut.metrics.nmse_db(sol.x, test.x):.2f} dB")

    OUT.mkdir(parents=True, exist_ok=True)
    result = {"config": vars(args), "reference_seconds": t_ref, "training_seconds": t_train,
              "lasso_optimum_nmse_db_truth": ut.metrics.nmse_db(sol.x, test.x),
              "max_relative_gap": float(np.max(sol.relative_gap)), "layers": rows}
    (OUT / "demo.json").write_text(json.dumps(result, indent=2))
    if not args.no_figure:
        _figure(rows, ut.metrics.nmse_db(sol.x, test.x))
    print(f"wrote {OUT / 'demo.json'}")
    return result


def _figure(rows, lasso_db):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no figure (pip install matplotlib)")
        return
    k = [r["layer"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(k, [r["ista_nmse_db_truth"] for r in rows], "o-", label="ISTA vs truth")
    ax.plot(k, [r["ista_nmse_db_lasso"] for r in rows], "s--", label="ISTA vs LASSO optimum")
    ax.plot(k, [r["lista_nmse_db_truth"] for r in rows], "^-", label="LISTA (trained) vs truth")
    ax.axhline(lasso_db, color="gray", lw=1, ls=":", label="LASSO optimum vs truth")
    ax.set(xlabel="layer k", ylabel="NMSE [dB]", title="Per-layer error on the test set")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "demo_layers.png", dpi=120)
    plt.close(fig)
    print(f"wrote {OUT / 'demo_layers.png'}")


if __name__ == "__main__":
    main()
