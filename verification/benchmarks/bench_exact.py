"""Where is the Lipschitz gap? The exact constant (MILP over activation regions) of small trained zoo models
against the certified LipSDP upper bound and the best witnessed lower bound.

    python verification/benchmarks/bench_exact.py [--models LISTA ALISTA ...] [--depths 2 4 6] [--m 5] [--n 10]
           [--steps 300] [--time-limit 30] [--node-limit 20000] [--threads 1]
           [--max-neurons 120] [--json rows.json] [--region-flips F] [--region-restarts R]
           [--region-patience P] [--region-jumps J] [--region-samples S] [--region-data] [--skip-exact]

For every zoo model with an analysis form and every depth K, the model is built on a Gaussian sparse-recovery
problem (m x n), trained briefly with ``unfoldtheory.training.train`` (``--steps`` Adam steps), and in the same
process:

* ``lipsdp``: the certified l2 LipSDP-Neuron upper bound (``upper_bound(method="lipsdp")``);
* ``lower``: the best witnessed lower bound (``lower_bound`` with the training data), and ``region``: the
  MILP region search (``region_search``) warm-started from its witness; ``best lower`` is the larger;
* ``exact``: ``lipschitz.exact(norm="l2", l2_lipsdp=False)``: a certified bracket [lo, hi] of the exact l2
  constant from the MILP alone (lo attained by a region Jacobian, improved by exact fixed-direction MILPs
  seeded with the lower bound's witness and the data; hi from the l-inf / l1 maxima), within a
  ``--time-limit`` safety cap and ``--node-limit`` nodes per MILP;
* the exact value E then lies in [max(lo, lower), min(hi, lipsdp)], so
  ``LipSDP / E`` lies in [lipsdp / min(hi, lipsdp), lipsdp / max(lo, lower)] and ``E / lower`` in
  [max(lo, lower) / lower, min(hi, lipsdp) / lower] (with lower = best lower).  A ratio interval [1, 1]
  means that side is tight; ``SDP/low`` is the certified / witnessed ratio.

The table is printed at the end (one row per model and depth).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402 - after pinning the BLAS threads

import torch  # noqa: E402

import unfoldtheory as ut  # noqa: E402
from unfoldtheory import lipschitz as lip  # noqa: E402

ZOO = {
    "ISTA": (lambda A, K: ut.models.ISTA(A, lam=0.1, num_layers=K), 0.0),
    "LearnedStepISTA": (lambda A, K: ut.models.LearnedStepISTA(A, K), 1e-2),
    "ALISTA": (lambda A, K: ut.models.ALISTA(A, K), 1e-2),
    "LISTA": (lambda A, K: ut.models.LISTA(A, K), 1e-3),
    "LISTACP": (lambda A, K: ut.models.LISTACP(A, K), 1e-3),
    "TiLISTA": (lambda A, K: ut.models.TiLISTA(A, K), 3e-3),
    "UnfoldedFISTA": (lambda A, K: ut.models.UnfoldedFISTA(A, K), 1e-2),
    "CorrectedISTA": (lambda A, K: ut.models.CorrectedISTA(A, K, hidden=6), 1e-3),
    "LearnedProxISTA": (lambda A, K: ut.models.LearnedProxISTA(A, K), 1e-3),
    "UnfoldedADMM": (lambda A, K: ut.models.UnfoldedADMM(A, K), 1e-2),
}


def trained(name: str, m: int, n: int, K: int, steps: int, seed: int = 0):
    gen = ut.problems.SparseRecovery.gaussian(m, n, p=0.2, seed=seed)
    make, lr = ZOO[name]
    torch.manual_seed(seed)
    net = make(gen.A, K).to(dtype=torch.float32)
    if lr > 0:
        epochs = 5
        ut.training.train(net, gen, epochs=epochs, steps_per_epoch=max(1, steps // epochs), batch_size=128,
                          lr=lr, seed=seed, progress=False, device="cpu")
    return net.double(), gen.sample(256, seed=seed + 1).y


def row(name: str, K: int, args) -> dict:
    net, data = trained(name, args.m, args.n, K, args.steps)
    t0 = time.perf_counter()
    up = lip.upper_bound(net, "lipsdp", time_limit=30.0)
    t_up = time.perf_counter() - t0
    t0 = time.perf_counter()
    low = lip.lower_bound(net, data=data, num_random=256, ascent_steps=60, ascent_starts=8, smooth_steps=30)
    t_low = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = [low.witness["y"]] if low.witness and "y" in low.witness else data[:8]
    rs = lip.region_search(net, [low, data] if args.region_data else first, rounds=args.rounds,
                           time_limit=args.time_limit, flips=args.region_flips, restarts=args.region_restarts,
                           patience=args.region_patience, jumps=args.region_jumps, samples=args.region_samples)
    t_rs = time.perf_counter() - t0
    t0 = time.perf_counter()
    starts = [low.witness["y"]] if low.witness and "y" in low.witness else []
    if args.skip_exact:
        ex = None
        lo_e, hi_e = 0.0, float("inf")
    else:
        ex = lip.exact(net, "l2", time_limit=args.time_limit, node_limit=args.node_limit, l2_lipsdp=False,
                       starts=starts + list(data[:64]), max_neurons=args.max_neurons)
        lo_e, hi_e = ex.interval if ex.interval is not None else (0.0, ex.value)
    t_ex = time.perf_counter() - t0
    linf = {}
    if args.linf:
        # l-inf: exact() solves it as a MILP per output row (no bilinear bracket); its lower side here is the
        # l-inf region search from the data and the l2 witness, independent of the exact solve
        t0 = time.perf_counter()
        rs_inf = lip.region_search(net, starts + list(data[:8]), norm="linf", rounds=args.rounds,
                                   time_limit=args.time_limit)
        ex_inf = lip.exact(net, "linf", time_limit=args.time_limit, node_limit=args.node_limit,
                           starts=starts + list(data[:64]), max_neurons=args.max_neurons)
        li_lo, li_hi = ex_inf.interval if ex_inf.interval is not None else (0.0, ex_inf.value)
        linf = {"linf_lo": li_lo, "linf_hi": li_hi, "linf_region": rs_inf.value,
                "linf_converged": ex_inf.converged, "t_linf": time.perf_counter() - t0}
    U = min(hi_e, up.value) if up.certified else hi_e
    best_low = max(low.value, rs.value)
    L = max(lo_e, best_low)
    return {"name": name, "K": K, "neurons": net.form().num_neurons, "lipsdp": up.value, "cert": up.certified,
            "lower": low.value, "exact_lo": lo_e, "exact_hi": hi_e, "E_lo": L, "E_hi": U,
            "region": rs.value, "best_lower": best_low,
            "sdp_over_E": (up.value / U, up.value / L), "E_over_lower": (L / best_low, U / best_low),
            "sdp_over_lower": up.value / best_low, "t_rs": t_rs,
            "converged": None if ex is None else ex.converged, "nodes": None if ex is None else ex.checks.get("nodes"),
            "t_up": t_up, "t_low": t_low, "t_exact": t_ex,
            "linf_upper": None if ex is None else ex.checks.get("linf_upper"), **linf}


def fmt_iv(iv) -> str:
    a, b = iv
    return f"{a:.3f}" if abs(b - a) <= 5e-4 * max(abs(b), 1e-12) else f"[{a:.3f}, {b:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(ZOO))
    ap.add_argument("--depths", nargs="+", type=int, default=[2, 4, 6])
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--node-limit", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=12, help="region_search rounds")
    ap.add_argument("--max-neurons", type=int, default=120,
                    help="exact(): largest number of piecewise-linear neurons accepted (deeper nets need more)")
    ap.add_argument("--linf", action="store_true",
                    help="also the exact l-inf constant against the l-inf region search (a second table)")
    ap.add_argument("--region-flips", type=int, default=50, help="region_search walk moves per trajectory")
    ap.add_argument("--region-restarts", type=int, default=1, help="region_search trajectories")
    ap.add_argument("--region-patience", type=int, default=0,
                    help="region_search patience (> 0: non-greedy walk, docs/theory/exact_lipschitz.md §11)")
    ap.add_argument("--region-jumps", type=int, default=0, help="region_search line jumps per trajectory (§12)")
    ap.add_argument("--region-samples", type=int, default=0, help="region_search sampled extra starts (§12)")
    ap.add_argument("--region-data", action="store_true",
                    help="region_search starts from the lower bound's witness and the data (default: the witness)")
    ap.add_argument("--skip-exact", action="store_true",
                    help="skip exact() (the bracket is then [best lower, LipSDP]; for the lower side alone)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        if name not in ZOO:
            sys.exit(f"unknown model {name!r}; choose from {sorted(ZOO)}")
        for K in args.depths:
            r = row(name, K, args)
            rows.append(r)
            print(f"  done {name} K={K}: lipsdp {r['lipsdp']:.4f}, lower {r['lower']:.4f}, region search "
                  f"{r['region']:.4f} ({r['t_rs']:.1f}s), exact bracket "
                  f"[{r['exact_lo']:.4f}, {r['exact_hi']:.4f}] (converged {r['converged']}, {r['nodes']} nodes, "
                  f"{r['t_exact']:.1f}s); load {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)
    print()
    print(f"Exact l2 Lipschitz constant E of trained zoo models (m={args.m}, n={args.n}, {args.steps} Adam steps; "
          f"exact: time cap {args.time_limit:g}s, {args.node_limit} nodes per MILP)")
    hdr = (f"{'model':<16}{'K':>3}{'N':>5}{'LipSDP':>10}{'lower':>9}{'region':>9}{'E in':>20}{'LipSDP/E':>17}"
           f"{'E/best lower':>17}{'SDP/low':>9}{'MILP bracket':>20}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ebr = fmt_iv((r["E_lo"], r["E_hi"]))
        mb = f"[{r['exact_lo']:.3f}, {r['exact_hi']:.3f}]"
        print(f"{r['name']:<16}{r['K']:>3}{r['neurons']:>5}{r['lipsdp']:>10.4f}{r['lower']:>9.4f}{r['region']:>9.4f}"
              f"{ebr:>20}{fmt_iv(r['sdp_over_E']):>17}{fmt_iv(r['E_over_lower']):>17}{r['sdp_over_lower']:>9.3f}"
              f"{mb:>20}")
    if args.linf:
        print()
        print("l-inf -> l-inf: exact MILP bracket against the l-inf region search (best lower)")
        hdr2 = f"{'model':<16}{'K':>3}{'region (lower)':>16}{'exact bracket':>22}{'exact/lower':>20}{'converged':>11}"
        print(hdr2)
        print("-" * len(hdr2))
        for r in rows:
            lo, hi, rg = r["linf_lo"], r["linf_hi"], r["linf_region"]
            L = max(lo, rg)
            print(f"{r['name']:<16}{r['K']:>3}{rg:>16.4f}{f'[{lo:.4f}, {hi:.4f}]':>22}"
                  f"{fmt_iv((L / rg, hi / rg)) if rg > 0 else 'n/a':>20}{str(r['linf_converged']):>11}")
    loose_up = [f"{r['name']}/K{r['K']}" for r in rows if r["sdp_over_E"][0] > 1.01]
    loose_lo = [f"{r['name']}/K{r['K']}" for r in rows if r["E_over_lower"][0] > 1.01]
    print()
    print(f"upper side (LipSDP) provably loose by > 1%: {', '.join(loose_up) or 'none'}")
    print(f"lower side (witness search) provably loose by > 1%: {', '.join(loose_lo) or 'none'}")


if __name__ == "__main__":
    main()
