"""Convergence report: observed per-layer errors of trained models against their certified rates.

    python verification/convergence_report.py                 # CPU default, about a minute
    python verification/convergence_report.py --steps 2000    # longer training

Data: Gaussian dictionary (m=32, n=64, unit columns), noiseless instances with exactly s = 2 nonzeros uniform
on [-1, 1] (the regime of ALISTA Thm 1).  Models (K = 10): ISTA (lam = 0.05, step 1/L; not trained), LISTA,
LISTA-CP, learned-step ISTA and ALISTA with the minimax weight of Definition 1 (stage 2 trained, then the
thresholds set to the theorem's values, eq. 10).  Per model it writes ``verification/out/convergence_<model>.png``
(observed distance to the certified LASSO optimum and to the ground truth, objective gap, and the certified
rates that apply: ALISTA Thm 1, contraction product, PEP worst case) and everything in
``verification/out/convergence_report.json`` (with the LISTA-CP coupling table of the trained LISTA and the
ALISTA Thm 1 check).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import unfoldtheory as ut  # noqa: E402
import unfoldtheory.convergence as cv  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


class FixedSupport:
    def __init__(self, A, s):
        self.A, self.s = A, s

    def sample(self, batch, seed=None):
        x, y = cv.fixed_support_instances(self.A, self.s, batch, seed=seed)
        return types.SimpleNamespace(x=x, y=y)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--s", type=int, default=2)
    p.add_argument("--steps", type=int, default=600, help="Adam steps per trained model")
    p.add_argument("--test", type=int, default=300)
    p.add_argument("--lam", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    OUT.mkdir(exist_ok=True)
    t0 = time.perf_counter()

    A = ut.problems.SparseRecovery.gaussian(args.m, args.n, seed=args.seed).A
    prob = ut.problems.Lasso(A, args.lam)
    data = FixedSupport(A, args.s)
    x_test, y_test = cv.fixed_support_instances(A, args.s, args.test, seed=args.seed + 999)
    reference = ut.reference.solve(prob, y_test)
    W_minimax, mu_tilde = cv.generalized_coherence(A)
    K, kw = args.layers, {"device": "cpu", "dtype": torch.float64}
    models = {
        "ISTA": (ut.models.ISTA(A, K, lam=args.lam, **kw), None),
        "LISTA": (ut.models.LISTA(A, K, lam=args.lam, **kw), 1e-3),
        "LISTACP": (ut.models.LISTACP(A, K, lam=args.lam, **kw), 1e-3),
        "LearnedStepISTA": (ut.models.LearnedStepISTA(A, K, lam=args.lam, **kw), 1e-2),
        "ALISTA": (ut.models.ALISTA(A, K, W=W_minimax, gamma0=1.0, theta0=0.05, **kw), 1e-2),
    }
    report: dict = {"config": vars(args) | {"mu_tilde": mu_tilde, "mutual_coherence": ut.coherence.mutual_coherence(A),
                                            "mu_analytic_weight": ut.coherence.offdiag_max(
                                                ut.coherence.analytic_weight(A), A)},
                    "models": {}}
    for name, (net, lr) in models.items():
        t = time.perf_counter()
        entry: dict = {}
        if lr is not None:
            epochs = 2
            hist = ut.training.train(net, data, epochs=epochs, steps_per_epoch=max(1, args.steps // epochs),
                                     batch_size=64, lr=lr, seed=args.seed, progress=False, val_size=200)
            entry["training"] = {"steps": args.steps, "lr": lr, "batch_size": 64,
                                 "final_val_nmse_db": hist.final_val_nmse_db}
        if name == "ALISTA":
            trained = cv.alista_theorem_check(net, A, x_test, y_test, mu_tilde=mu_tilde)
            entry["alista_trained_thresholds"] = trained.to_dict()
            cv.alista_oracle_thresholds(net, A, x_test, y_test, assign=True)
        prof = cv.convergence_profile(net, prob, y_test, x_test, reference=reference)
        entry["profile"] = prof.to_dict()
        if name == "LISTA":
            coupling = cv.lista_cp_coupling(net, A)
            entry["coupling"] = coupling.to_dict()
            print(coupling)
            print(coupling.table())
        if prof.alista is not None and name == "ALISTA":
            print(prof.alista.summary())
            print(prof.alista.table())
        fig = prof.plot()
        fig.savefig(OUT / f"convergence_{name}.png", dpi=110)
        plt.close(fig)
        entry["seconds"] = time.perf_counter() - t
        report["models"][name] = entry
        print(f"{name}: {prof!r} ({entry['seconds']:.1f} s)")
    report["seconds"] = time.perf_counter() - t0
    (OUT / "convergence_report.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {OUT / 'convergence_report.json'} and {len(models)} figures in {report['seconds']:.1f} s")
    return report


if __name__ == "__main__":
    main()
