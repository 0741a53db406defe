"""Generalization report: bounds versus measured gaps against the number of training samples.

Trains ALISTA on fixed training sets of several sizes (CPU, a few minutes with the defaults), measures the
train/test gap of the clipped loss and of the 0-1 risk P(NMSE_K > eps), evaluates the uniform (covering)
bound and the PAC-Bayes bound for each size, and a non-vacuous PAC-Bayes guarantee (certified versus measured
fraction solved) for a model trained on the data stream.  Writes verification/out/generalization.png and
verification/out/generalization.json.

    python verification/generalization_report.py                 # defaults (a few minutes)
    python verification/generalization_report.py --sizes 50 100 200 400 800 1600 3200 --K 12 --n 128
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

import unfoldtheory as ut

G = ut.generalization


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=32, help="measurements")
    ap.add_argument("--n", type=int, default=64, help="signal dimension")
    ap.add_argument("--K", type=int, default=10, help="layers")
    ap.add_argument("--eps", type=float, default=-10.0, help="tolerance (NMSE dB at the last layer)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200, 400, 800])
    ap.add_argument("--bound-N", type=int, default=4000, help="bound instances for the PAC-Bayes guarantee")
    ap.add_argument("--test-size", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    gen = ut.problems.SparseRecovery.gaussian(m=args.m, n=args.n, p=0.1, snr_db=30, seed=args.seed)
    sample = gen.sample(2000, seed=args.seed + 1)
    y_norm = float(np.quantile(np.linalg.norm(sample.y, axis=1), 0.99))
    loss_scale = float(np.sqrt(np.mean(np.sum(sample.x ** 2, axis=1))))

    def factory():
        return ut.models.ALISTA(gen.A, num_layers=args.K, gamma0=1.0, theta0=0.1, dtype=torch.float64, device="cpu")

    # 1. gaps and bounds against the training-set size
    points = G.generalization_gap(factory, gen, args.sizes, args.eps, y_norm=y_norm, loss_scale=loss_scale,
                                  test_size=args.test_size, pac_bayes=True, seed=args.seed)
    # 2. the headline PAC-Bayes guarantee: model trained on the stream, posterior trained on fresh bound data
    net = factory()
    ut.training.train(net, gen, epochs=4, steps_per_epoch=100, batch_size=128, lr=1e-2, progress=False,
                      seed=args.seed)
    bound_data = gen.sample(args.bound_N, seed=args.seed + 12345)
    test = gen.sample(args.test_size, seed=args.seed + 999)
    sc = G.sample_convergence_bound(net, test, args.eps)
    pb = G.train_pac_bayes(copy.deepcopy(net), bound_data, args.eps, test_data=test, seed=args.seed)
    ub = G.uniform_bound(net, 100 * 512, y_norm=y_norm, loss_scale=loss_scale,
                         empirical_risk=float(G.clipped_loss(net, test, y_norm=y_norm, loss_scale=loss_scale).mean()))
    depth = []
    for K in (2, 4, 8, 16, 32):
        model = ut.models.ALISTA(gen.A, num_layers=K, gamma0=1.0, theta0=0.1, dtype=torch.float64, device="cpu")
        r = G.uniform_bound(model, 10 ** 6, y_norm=y_norm, loss_scale=loss_scale)
        depth.append({"K": K, "d": r.d, "L_P": r.lipschitz_parameters, "gap_bound": r.gap_bound, "value": r.value,
                      "closed_form_gap": r.closed_form_value - r.empirical_risk, "vacuous": r.vacuous})

    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    G.plot_generalization(points, ax=ax, title=f"ALISTA K={args.K}, m={args.m}, n={args.n}, eps={args.eps:g} dB")
    fig.tight_layout()
    fig.savefig(args.out / "generalization.png", dpi=130)
    report = {"config": vars(args) | {"out": str(args.out), "y_norm": y_norm, "loss_scale": loss_scale},
              "gaps": [p.to_dict() for p in points], "pac_bayes": pb.result.to_dict(),
              "pac_bayes_history": pb.history, "sample_convergence": sc.to_dict(), "uniform": ub.to_dict(),
              "uniform_vs_depth": depth, "seconds": time.perf_counter() - start}
    (args.out / "generalization.json").write_text(json.dumps(report, indent=2, default=float))
    logging.info("%r", pb.result)
    logging.info("%r", ub)
    logging.info("wrote %s (%.0f s)", args.out / "generalization.png", report["seconds"])
    return report


if __name__ == "__main__":
    main()
