"""Lipschitz bounds against depth for every trained zoo model with an analysis form, and certified sensitivity
versus attacks.

    python verification/lipschitz_report.py                        # m=16, n=32, K=16, 2000 steps: a few minutes
    python verification/lipschitz_report.py --depth-step 1 --lower-time 30 --lower-steps 300   # finer, slower
    python verification/lipschitz_report.py --m 32 --n 64 --steps 4000      # the bench_lipsdp configuration
    python verification/lipschitz_report.py --only LISTA ALISTA --retrain

Every 16-layer model of the zoo that has an analysis form (ISTA, LearnedStepISTA, ALISTA, LISTA, LISTACP,
TiLISTA, UnfoldedFISTA, CorrectedISTA, LearnedProxISTA, UnfoldedADMM) is trained once with
:func:`unfoldtheory.training.train` (end to end, NMSE, Adam) on one noiseless sparse-recovery problem and saved
with :func:`unfoldtheory.models.save` to ``verification/out/trained/<model>_m<m>_n<n>_K<K>_s<steps>.pt``; later
runs (and ``verification/benchmarks/bench_lipsdp.py``) load the saved weights.  ISTA is the classical,
untrained baseline (saved too, so every row reads the same way).

For each model the report computes the naive, LipSDP-Layer and LipSDP-Neuron upper bounds and the witnessed
lower bound of ``y -> x_k`` for every depth k and draws them (``verification/out/lipschitz_<model>.png``);
then it compares the certified sensitivity with a PGD attack on test data and writes the table to
``verification/out/robustness_table.md`` (every row must satisfy attack <= certified, else the script exits
with an error).  ``lipschitz_report.json`` holds the numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

import unfoldtheory as ut

OUT = Path(__file__).resolve().parent / "out"
TRAINED = OUT / "trained"
log = logging.getLogger("lipschitz_report")

#: name -> (constructor (A, K) -> model, Adam learning rate); the zoo models that have an analysis form
ZOO: dict[str, tuple[Callable[[Any, int], Any], float]] = {
    "ISTA": (lambda A, K: ut.models.ISTA(A, K, lam=0.1), 0.0),
    "LearnedStepISTA": (lambda A, K: ut.models.LearnedStepISTA(A, K), 1e-2),
    "ALISTA": (lambda A, K: ut.models.ALISTA(A, K), 1e-2),
    "LISTA": (lambda A, K: ut.models.LISTA(A, K), 1e-3),
    "LISTACP": (lambda A, K: ut.models.LISTACP(A, K), 1e-3),
    "TiLISTA": (lambda A, K: ut.models.TiLISTA(A, K), 3e-3),
    "UnfoldedFISTA": (lambda A, K: ut.models.UnfoldedFISTA(A, K), 1e-2),
    "CorrectedISTA": (lambda A, K: ut.models.CorrectedISTA(A, K, hidden=32), 1e-3),
    "LearnedProxISTA": (lambda A, K: ut.models.LearnedProxISTA(A, K), 1e-3),
    "UnfoldedADMM": (lambda A, K: ut.models.UnfoldedADMM(A, K), 1e-2),
}


def problem(m: int, n: int, p: float = 0.1, seed: int = 0):
    """The noiseless sparse-recovery problem every model is trained on (zoo_table conventions)."""
    return ut.problems.SparseRecovery.gaussian(m, n, p=p, seed=seed)


def model_path(name: str, m: int, n: int, K: int, steps: int, seed: int = 0) -> Path:
    return TRAINED / f"{name}_m{m}_n{n}_K{K}_s{steps}_seed{seed}.pt"


def trained_model(name: str, m: int, n: int, K: int = 16, steps: int = 2000, *, seed: int = 0,
                  batch_size: int = 128, retrain: bool = False, train_if_missing: bool = True):
    """Load the saved trained ``name`` model for this configuration, or train (and save) it.

    Training: :func:`unfoldtheory.training.train`, end to end on the final-layer NMSE, ``steps`` Adam steps
    of ``batch_size`` (10 epochs), one torch thread.  Returns ``(model in float64 on CPU, info dict)`` or
    ``(None, reason)`` when the file is missing and ``train_if_missing`` is false.
    """
    make, lr = ZOO[name]
    path = model_path(name, m, n, K, steps, seed)
    if path.exists() and not retrain:
        net = ut.models.load(path, device="cpu")
        info = dict(getattr(net, "metadata", {}) or {})
        info["loaded_from"] = str(path.relative_to(OUT.parent.parent))
        return net.double(), info
    if not train_if_missing:
        return None, f"{path} is missing"
    gen = problem(m, n, seed=seed)
    torch.manual_seed(seed)
    net = make(gen.A, K).to(device="cpu", dtype=torch.float32)
    t0 = time.perf_counter()
    info: dict = {"model": name, "m": m, "n": n, "K": K, "steps": steps, "batch_size": batch_size,
                  "lr": lr, "seed": seed, "problem": "SparseRecovery.gaussian(p=0.1), noiseless"}
    if lr > 0:
        epochs = 10
        hist = ut.training.train(net, gen, epochs=epochs, steps_per_epoch=max(1, steps // epochs),
                                 batch_size=batch_size, lr=lr, seed=seed, progress=False, device="cpu")
        info.update(val_nmse_db=hist.final_val_nmse_db, train_seconds=time.perf_counter() - t0,
                    val_nmse_db_per_epoch=[float(v) for v in hist.column("val_nmse_db")])
    else:
        info.update(val_nmse_db=None, train_seconds=0.0, note="classical, untrained")
    TRAINED.mkdir(parents=True, exist_ok=True)
    ut.models.save(net, path, metadata=info)
    log.info("trained %s (%s): %s", name, path.name, info.get("val_nmse_db"))
    info["trained_now"] = True
    return net.double(), info


def _nmse_db(net, test) -> float:
    return float(ut.metrics.per_layer_nmse_db(net, test.y, test.x)[-1])


def main(argv=None) -> dict:
    from unfoldtheory import lipschitz as lip
    from unfoldtheory.robustness import compare_sensitivity

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--steps", type=int, default=2000, help="Adam steps per model (training, once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eps", type=float, default=0.5, help="l2 attack radius")
    p.add_argument("--only", nargs="*", default=None, help="restrict to these zoo models")
    p.add_argument("--retrain", action="store_true", help="train again even if saved weights exist")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per LipSDP optimisation")
    p.add_argument("--lower-time", type=float, default=8.0, help="seconds per lower-bound search")
    p.add_argument("--lower-steps", type=int, default=80, help="secant and smoothed ascent steps per search")
    p.add_argument("--depth-step", type=int, default=4, help="evaluate depths 1, every depth-step-th, and K")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("unfoldtheory").setLevel(logging.WARNING)  # per-epoch training logs
    torch.set_num_threads(args.threads)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = args.layers
    names = [nm for nm in ZOO if args.only is None or nm in args.only]
    gen = problem(args.m, args.n, seed=args.seed)
    test = gen.sample(200, seed=args.seed + 1)
    OUT.mkdir(parents=True, exist_ok=True)
    models, summary = {}, {}
    depths = sorted(set(range(args.depth_step, K + 1, args.depth_step)) | {1, K})
    for name in names:
        net, info = trained_model(name, args.m, args.n, K, args.steps, seed=args.seed, retrain=args.retrain)
        models[name] = net
        t0 = time.perf_counter()
        rows = lip.bounds_vs_depth(net, depths=depths, upper_kwargs={"time_limit": args.time_limit},
                                   lower_kwargs={"data": test.y, "time_limit": args.lower_time,
                                                 "ascent_steps": args.lower_steps, "num_random": 128})
        last = rows[-1]
        s = {key: last[key].value for key in ("naive", "layerwise", "lipsdp", "lower")}
        s.update(nmse_db=_nmse_db(net, test), certified=bool(last["lipsdp"].certified),
                 lower_source=last["lower"].checks.get("best_source"), seconds=time.perf_counter() - t0,
                 train=info, per_depth=[{"depth": r["depth"], **{key: r[key].value for key in
                                                                ("naive", "layerwise", "lipsdp", "lower")}}
                                        for r in rows])
        summary[name] = s
        ax = lip.plot_bounds_vs_depth(rows, title=f"{name}, trained (m={args.m}, n={args.n}, K={K})")
        ax.figure.tight_layout()
        ax.figure.savefig(OUT / f"lipschitz_{name}.png", dpi=110)
        plt.close(ax.figure)
        log.info("%16s: NMSE %6.2f dB | lower %.4g <= LipSDP %.4g <= layerwise %.4g <= naive %.4g | "
                 "LipSDP/lower %.2f, naive/lower %.1f (%.0f s)", name, s["nmse_db"], s["lower"], s["lipsdp"],
                 s["layerwise"], s["naive"], s["lipsdp"] / s["lower"], s["naive"] / s["lower"], s["seconds"])
    rows = compare_sensitivity(models, test.y[:32], args.eps, attack_steps=30, restarts=2,
                               upper_kwargs={"time_limit": args.time_limit})
    md = [f"**Certified sensitivity vs PGD attack (l2 radius {args.eps:g}, 32 test inputs, 2 restarts), "
          f"trained {K}-layer zoo models, m={args.m}, n={args.n}, {args.steps} Adam steps**", "",
          "| model | NMSE [dB] | best lower bound | LipSDP (certified) | naive | achieved attack ratio | "
          "max attack deviation | certified deviation L*eps | certified / achieved | holds |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = summary[r["name"]]
        holds = (r["attack"].value <= r["lipschitz_upper"].value
                 and r["max_attack_deviation"] <= r["certified_deviation"])
        md.append(f"| {r['name']} | {s['nmse_db']:.2f} | {s['lower']:.4g} | {r['lipschitz_upper'].value:.4g} | "
                  f"{s['naive']:.4g} | {r['attack'].value:.4g} | {r['max_attack_deviation']:.4g} | "
                  f"{r['certified_deviation']:.4g} | {r['ratio_gap']:.2f} | {'yes' if holds else 'NO'} |")
        s.update(attack_ratio=r["attack"].value, attack_holds=bool(holds),
                 certified_deviation=r["certified_deviation"], max_attack_deviation=r["max_attack_deviation"])
    text = "\n".join(md) + "\n"
    print(text)
    (OUT / "robustness_table.md").write_text(text)
    (OUT / "lipschitz_report.json").write_text(json.dumps({"config": vars(args), "models": summary}, indent=2,
                                                          default=_jsonable))
    if not all(s["attack_holds"] for s in summary.values()):
        raise SystemExit("an attack exceeded a certified bound: soundness violation")
    return summary


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


if __name__ == "__main__":
    main()
