"""LipSDP at scale: the structured certificate for 16-layer LISTA networks against naive, the best lower bound
and the plain dense cvxpy formulation.

    python verification/benchmarks/bench_lipsdp.py [--sizes 16x32 32x64 64x128 128x256 250x500]
           [--layers 16] [--evaluations 250] [--time-limit 600] [--threads 1] [--dense-layers 4 8] [--train-steps 150]
           [--trained LISTA ALISTA LISTACP] [--trained-size 32x64] [--trained-steps 4000] [--skip-trained]
           [--trained-region-rounds R] [--trained-region-flips F] [--trained-region-restarts S]
           [--trained-region-time T] [--trained-region-patience P] [--trained-region-jumps J]
           [--trained-region-samples S] [--trained-floor-restarts R] [--trained-floor-moves M]
           [--skip-layerwise] [--skip-scale] [--local-radii 0.001 0.01]

For every size (m, n) a 16-layer LISTA is initialised as ISTA on a Gaussian dictionary and trained briefly
(Adam on the squared error of sparse recovery, own loop); then, in the same process:

* ``naive``: a_K, exact spectral norms;
* ``lipsdp``: the structured LipSDP-Neuron certificate (block-tridiagonal Cholesky + Schur complement,
  L-BFGS on the multipliers, float64 re-verification), wall time, tracemalloc peak of the call;
* ``lower``: the best certified lower bound (Jacobians on training data and random inputs, secant ascent);
* the goals: (250, 500) certificate < 60 s, upper / lower <= 3 on the trained 16-layer network.

Trained zoo models (``--trained``, default LISTA LISTACP ALISTA CorrectedISTA LearnedProxISTA UnfoldedFISTA
UnfoldedADMM; skip with ``--skip-trained``): 16-layer models at ``--trained-size`` (default 32x64) trained
with ``unfoldtheory.training.train`` for ``--trained-steps`` Adam steps, loaded from
``verification/out/trained/`` (trained and saved there by ``verification/lipschitz_report.py``'s helper if
absent); for each: naive, LipSDP-Layer (``--skip-layerwise`` to skip), LipSDP-Neuron (run to convergence),
the best lower bound with a long search (sampling, secant ascent and the smoothed-Jacobian ascent,
``--trained-smooth-steps``), then ``lipschitz.region_search`` from that witness and the data
(``--trained-region-restarts`` trajectories of ``--trained-region-flips`` moves of the walk over adjacent
regions and ``--trained-region-rounds`` neighbourhood MILPs, capped at ``--trained-region-time`` s; the
walk is non-greedy with ``--trained-region-patience``, jumps along lines through the witness when it stops
(``--trained-region-jumps``) and ranks ``--trained-region-samples`` extra starts, docs/theory/exact_lipschitz.md
§11), and the
data-box certificate: linear bound propagation on the box of the training data decides which neurons are
fixed there; ``lipschitz.domain_upper_bound`` runs only when some are (otherwise the domain constant is
certified through the global one).  The acceptance table prints, per model: training steps, global LipSDP,
domain LipSDP (the data box), the best witnessed lower bound and how it was found, the ratio, and "<= 3".
A last table gives each model's relaxation floor (``lipschitz.relaxation_floor``, ``--trained-floor-restarts``
trajectories of at most ``--trained-floor-moves`` flips, started from the region witness): a certified lower
bound on every slope-interval certificate, LipSDP / floor and floor / best lower
(docs/theory/relaxation_floor.md §5).

Acceptance run (docs/theory/exact_lipschitz.md §9):

    python verification/benchmarks/bench_lipsdp.py --skip-scale --skip-layerwise --threads 1 \
        --trained-steps 4000 --trained-time-limit 240 --trained-region-rounds 0 --trained-region-flips 120 \
        --trained-region-restarts 2 --trained-region-time 120

Local constants around the data (``--local-radii``, with ``--skip-trained`` to run them alone):
``lipschitz.local_sandwich``: the Lipschitz constant on the union of the l2 balls of radius ``rel x median
||y||`` around the first ``--local-points`` test inputs of each trained model (the data neighbourhood), LipSDP
per ball under the ``--evaluations`` work budget; the table gives both ends, the ratio and the most undecided
neurons in a ball (docs/theory/robustness.md §3):

    python verification/benchmarks/bench_lipsdp.py --skip-scale --skip-trained --threads 1 \
        --local-radii 0.001 0.003 0.01

The dense formulation (one cvxpy LMI of order m + nK, Clarabel) is timed in the same run for the 16x32 size
at the depths in ``--dense-layers`` (at 16 layers its LMI has order 528 and needs far more memory than a
2-core CI machine has; the issue measured 85-190 s already at 8 layers), with the structured solve on the
same network and the speed ratio.  Timings are contended on a shared 2-core machine: os.getloadavg() is
printed with every row.
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv() -> str:
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# BLAS threads must be fixed before numpy is imported; oversubscribed OpenBLAS threads on a loaded 2-core
# machine make a 500x500 Cholesky 100x slower.
_T = _threads_from_argv()
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _T)

import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import unfoldtheory as ut  # noqa: E402
from unfoldtheory import lipschitz as lip  # noqa: E402


def load() -> str:
    return "load %.1f/%.1f/%.1f" % os.getloadavg()


def trained_lista(m: int, n: int, K: int, steps: int, seed: int = 0):
    gen = ut.problems.SparseRecovery.gaussian(m=m, n=n, p=0.1, snr_db=40, seed=seed)
    data = gen.sample(1024, seed=seed + 1)
    torch.manual_seed(seed)
    net = ut.models.LISTA(gen.A, K, lam=0.05, dtype=torch.float32, device="cpu")
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    Y = torch.tensor(data.y, dtype=torch.float32)
    X = torch.tensor(data.x, dtype=torch.float32)
    net.check_inputs = False
    t0 = time.perf_counter()
    first = last = None
    for _ in range(steps):
        idx = torch.randint(0, Y.shape[0], (128,))
        opt.zero_grad()
        loss = ((net(Y[idx]) - X[idx]) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            net.theta.clamp_(min=0.0)
        last = loss.item()
        first = last if first is None else first
    net.check_inputs = True
    return net, data.y, {"train_s": time.perf_counter() - t0, "loss0": first, "loss": last}


def timed(fn, *a, **k):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*a, **k)
    sec = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, sec, peak / 2 ** 20


def trained_rows(names, size: str, K: int, steps: int, time_limit: float, smooth_steps: int,
                 region_rounds: int = 20, region_restarts: int = 3, region_uncertain: int = 30,
                 layerwise: bool = True, region_time: float = 120.0, region_flips: int = 100,
                 floor_restarts: int = 12, floor_moves: int = 2000, region_kw: dict | None = None) -> list[dict]:
    """Bounds of the saved (or newly trained) zoo models; see the module docstring."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import lipschitz_report as report  # verification/lipschitz_report.py: trained-model cache
    from unfoldtheory.form import require_form
    from unfoldtheory.lipschitz._linear import linear_bounds
    from unfoldtheory.lipschitz._local import refined_slopes

    m, n = (int(v) for v in size.lower().split("x"))
    data = report.problem(m, n).sample(256, seed=1).y
    rows = []
    for name in names:
        net, info = report.trained_model(name, m, n, K, steps)
        form = require_form(net)
        naive, t_naive, _ = timed(lip.upper_bound, net, "naive")
        if layerwise:
            layer, t_layer, _ = timed(lip.upper_bound, net, "layerwise", time_limit=time_limit)
        ub, t_ub, mem = timed(lip.upper_bound, net, "lipsdp", time_limit=time_limit)
        lo, t_lo, _ = timed(lip.lower_bound, net, data=data, ascent_steps=200, ascent_starts=32,
                            smooth_steps=smooth_steps)
        # lower side: MILP search over reachable regions, several trajectories, from the best witness and the
        # data points of largest Jacobian norm
        rs, t_rs, _ = timed(lip.region_search, net, [lo, data], rounds=region_rounds, restarts=region_restarts,
                            max_uncertain=region_uncertain, time_limit=region_time, flips=region_flips,
                            **(region_kw or {}))
        # upper side on the data box: linear bound propagation decides which neurons are fixed there; the
        # domain LipSDP only differs from the global one when some are
        box = (data.min(axis=0), data.max(axis=0))
        a, b = refined_slopes(form, linear_bounds(form, (box[0] + box[1]) / 2, (box[1] - box[0]) / 2))
        # neurons pinned by the box (identity neurons of linear states are pinned everywhere: not counted)
        a0, b0 = form.slopes()
        off = np.concatenate([[0], np.cumsum(form.sizes)]).astype(int)
        fixed = int(sum(int(np.sum((x == y) & (a0[off[k]:off[k + 1]] != b0[off[k]:off[k + 1]])))
                        for k, (x, y) in enumerate(zip(a, b))))
        if fixed:
            dom, t_dom, _ = timed(lip.domain_upper_bound, net, box, time_limit=time_limit)
            dom_value, dom_cert = dom.value, dom.certified
        else:
            dom_value, dom_cert, t_dom = ub.value, ub.certified, 0.0
        # relaxation floor: a certified lower bound on every slope-interval certificate (LipSDP included),
        # started from the region witness's pattern (docs/theory/relaxation_floor.md)
        fl, t_fl, _ = timed(lip.relaxation_floor, net, restarts=floor_restarts, moves=floor_moves,
                            start=[rs] if (rs.witness or {}).get("pattern") is not None else None)
        if fixed:
            fl_dom = lip.relaxation_floor(net, domain=box, restarts=floor_restarts, moves=floor_moves).value
        else:
            fl_dom = fl.value
        ys = [rs.witness["y"]] if rs.value >= lo.value else [lo.witness["y"], lo.witness["y"] + lo.witness["d"]]
        in_box = all(bool(np.all((y >= box[0]) & (y <= box[1]))) for y in ys)
        how = (f"region_search ({rs.checks.get('restarts')} starts, walk+MILP)" if rs.value > lo.value
               else f"lower_bound: {lo.checks.get('best_source')}")
        row = {"name": name, "m": m, "n": n, "K": K, "steps": steps, "nmse": info.get("val_nmse_db"),
               "region": rs.value, "t_region": t_rs, "domain": dom_value, "domain_cert": dom_cert,
               "domain_fixed": fixed, "t_domain": t_dom, "witness_in_box": in_box, "how": how,
               "naive": naive.value, "layerwise": layer.value if layerwise else float("nan"),
               "lipsdp": ub.value, "certified": ub.certified,
               "status": ub.status, "evals": ub.checks.get("evaluations"), "lower": lo.value,
               "source": lo.checks.get("best_source"), "t_layer": t_layer if layerwise else 0.0,
               "t_lipsdp": t_ub, "mem_mb": mem,
               "t_lower": t_lo, "train_s": info.get("train_seconds"), "load": load(),
               "floor": fl.value, "floor_cert": fl.certified, "floor_converged": fl.converged,
               "floor_moves": fl.checks.get("moves"), "t_floor": t_fl, "floor_domain": fl_dom}
        rows.append(row)
        print(f"  done trained {name}: lipsdp {ub.value:.5g} ({'certified' if ub.certified else ub.reason}, "
              f"{ub.status}) in {t_ub:.1f}s, lower {lo.value:.5g} [{row['source']}] in {t_lo:.0f}s, region "
              f"{rs.value:.5g} in {t_rs:.0f}s, data-box neurons fixed {fixed}, floor {fl.value:.5g} in {t_fl:.0f}s, "
              f"{load()}", flush=True)
    return rows


def print_trained(rows: list[dict]) -> None:
    if not rows:
        return
    r0 = rows[0]
    print()
    print(f"Trained {r0['K']}-layer zoo models ({r0['m']}x{r0['n']}, ut.training.train, {r0['steps']} Adam "
          "steps of 128, noiseless sparse recovery p=0.1): certified upper bounds vs the best witnessed lower "
          "bound")
    hdr = (f"{'model':>15} {'NMSE dB':>7} {'naive':>9} {'layerwise':>9} {'LipSDP':>8} {'lower':>8} "
           f"{'up/low':>6} {'naive/low':>9} {'layer s':>7} {'lipsdp s':>8} {'evals':>5} {'lower s':>7} "
           f"{'lower source':>24}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        lo = r["lower"] if r["lower"] > 0 else float("nan")
        nm = float("nan") if r["nmse"] is None else r["nmse"]
        print(f"{r['name']:>15} {nm:>7.2f} {r['naive']:>9.4g} {r['layerwise']:>9.4g} {r['lipsdp']:>8.4g} "
              f"{r['lower']:>8.4g} {r['lipsdp'] / lo:>6.2f} {r['naive'] / lo:>9.1f} {r['t_layer']:>7.1f} "
              f"{r['t_lipsdp']:>8.1f} {str(r['evals']):>5} {r['t_lower']:>7.0f} {str(r['source']):>24}")
    print()
    print("Acceptance (docs/theory/exact_lipschitz.md §5-§9): global = certified LipSDP-Neuron on R^m; domain = "
          "LipSDP with the neurons fixed on the data box (linear bound propagation) substituted, '= global' when "
          "none is fixed; best lower = max(lower_bound, region_search), a certified attained value; ratio = "
          "global / best lower (the domain ratio is shown only when the witness lies in the box)")
    hdr = (f"{'model':>15} {'steps':>5} {'global':>9} {'domain (data box)':>22} {'best lower':>10} "
           f"{'found by':>34} {'ratio':>6} {'on box':>6} {'<= 3':>5} {'region s':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        best = max(r["lower"], r["region"])
        r["best_lower"] = best
        dom = (f"= global ({r['domain_fixed']} fixed)" if not r["domain_fixed"]
               else f"{r['domain']:.4g} ({r['domain_fixed']} fixed)")
        onbox = f"{r['domain'] / best:>6.2f}" if r["witness_in_box"] else f"{'n/a':>6}"
        ratio = r["lipsdp"] / best if best > 0 else float("inf")
        ok = r["certified"] and (ratio <= 3 or (r["witness_in_box"] and r["domain_cert"]
                                                and r["domain"] <= 3 * best))
        r["goal"] = ok
        print(f"{r['name']:>15} {r['steps']:>5} {r['lipsdp']:>9.4g} {dom:>22} {best:>10.4g} {r['how']:>34} "
              f"{ratio:>6.2f} {onbox} {'yes' if ok else 'no':>5} {r['t_region']:>8.1f}")
    ok = [r["name"] for r in rows if r["goal"]]
    print(f"goal certified upper / best lower <= 3 on trained {r0['K']}-layer zoo models: met for "
          f"{', '.join(ok) or 'none'}; not met for "
          f"{', '.join(r['name'] for r in rows if r['name'] not in ok) or 'none'}")


def local_rows(names, size: str, K: int, steps: int, radii, points: int, evaluations: int,
               time_limit: float) -> list[dict]:
    """``lipschitz.local_sandwich`` on balls of radius ``rel * median ||y||`` around the first ``points`` test
    inputs of each saved zoo model (docs/theory/robustness.md §3)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import lipschitz_report as report

    m, n = (int(v) for v in size.lower().split("x"))
    data = report.problem(m, n).sample(256, seed=1).y
    ny = float(np.median(np.linalg.norm(data, axis=1)))
    rows = []
    for name in names:
        net, _ = report.trained_model(name, m, n, K, steps)
        for rel in radii:
            b, t, _ = timed(lip.local_sandwich, net, data[:points], rel * ny, max_evaluations=evaluations,
                            time_limit=time_limit, show_progress=False)
            lo, hi = b.interval
            row = {"name": name, "rel": rel, "radius": rel * ny, "upper": hi, "lower": lo,
                   "ratio": hi / lo if lo > 0 else float("inf"), "certified": b.certified,
                   "converged": b.converged, "points": points, "seconds": t, "load": load(),
                   "uncertain": max(x["uncertain_neurons"] for x in b.checks["balls"])}
            rows.append(row)
            print(f"  done local {name} r={rel:g}|y|: [{lo:.4g}, {hi:.4g}] in {t:.0f}s, {load()}", flush=True)
    return rows


def print_local(rows: list[dict]) -> None:
    if not rows:
        return
    print()
    print(f"Local constants around the data (lipschitz.local_sandwich; l2 balls of radius r = rel x median ||y|| "
          f"around the first {rows[0]['points']} test inputs: the constant on their union; upper = the larger of "
          "the balls' certified LipSDP and the straddling pairs' bound through the centres, lower = the largest "
          "certified secant inside a ball or between two centres)")
    hdr = (f"{'model':>15} {'rel':>6} {'r':>8} {'upper':>9} {'lower':>9} {'ratio':>6} {'<= 3':>5} "
           f"{'uncertain':>9} {'cert':>5} {'conv':>5} {'time s':>7}  load")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ok = r["certified"] and r["ratio"] <= 3
        print(f"{r['name']:>15} {r['rel']:>6g} {r['radius']:>8.3g} {r['upper']:>9.4g} {r['lower']:>9.4g} "
              f"{r['ratio']:>6.2f} {'yes' if ok else 'no':>5} {r['uncertain']:>9} {str(r['certified']):>5} "
              f"{str(r['converged']):>5} {r['seconds']:>7.0f}  {r['load']}")


def print_floor(rows: list[dict]) -> None:
    """The relaxation floor F of each trained model (docs/theory/relaxation_floor.md §5): every slope-interval
    certificate (naive, LipSDP-Layer, LipSDP-Neuron, their data-box versions) is >= F, so if F > 3 x best
    lower, no such certificate can reach ratio 3 unless the exact constant exceeds F / 3."""
    if not rows:
        return
    print()
    print("Relaxation floor F = max over vertex slope patterns D of ||J(D)||_2 (certified lower bound on every "
          "slope-interval certificate, not on the Lipschitz constant; docs/theory/relaxation_floor.md)")
    hdr = (f"{'model':>15} {'LipSDP':>9} {'floor':>9} {'LipSDP/floor':>12} {'best lower':>10} "
           f"{'floor/lower':>11} {'moves':>6} {'floor s':>7}  what it proves")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        best = max(r["lower"], r["region"])
        fl = r["floor"]
        ratio = fl / best if best > 0 else float("inf")
        what = (f"no slope-interval certificate <= 3 x lower unless E > {fl / 3:.4g}" if ratio > 3
                else "a slope-interval certificate may still reach 3")
        if r.get("floor_domain", fl) < fl:
            what += f" (data-box floor {r['floor_domain']:.4g})"
        print(f"{r['name']:>15} {r['lipsdp']:>9.4g} {fl:>9.4g} {r['lipsdp'] / fl:>12.2f} {best:>10.4g} "
              f"{ratio:>11.2f} {str(r['floor_moves']):>6} {r['t_floor']:>7.1f}  {what}")


def print_scale(rows: list[dict], args) -> None:
    print()
    print(f"Structured LipSDP-Neuron, {args.layers}-layer trained LISTA (work budget {args.evaluations} objective "
          f"evaluations, safety cap {args.time_limit:g} s; certification included in the time)")
    hdr = (f"{'m x n':>9} {'N':>5} {'naive':>9} {'LipSDP':>8} {'lower':>8} {'up/low':>7} {'naive/low':>9} "
           f"{'time s':>7} {'peak MiB':>8} {'evals':>5} {'cert':>5} {'conv':>5} {'lower s':>7}  load")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        lo = r["lower"] if r["lower"] > 0 else float("nan")
        print(f"{r['m']:>4}x{r['n']:<4} {r['N']:>5} {r['naive']:>9.4g} {r['lipsdp']:>8.4g} "
              f"{r['lower']:>8.4g} "
              f"{r['lipsdp'] / lo:>7.3f} {r['naive'] / lo:>9.2f} {r['t_lipsdp']:>7.1f} "
              f"{r['mem_mb']:>8.1f} {str(r['evals']):>5} {str(r['certified']):>5} {str(r['converged']):>5} "
              f"{r['t_lower']:>7.1f}  "
              f"{r['load']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["16x32", "32x64", "64x128", "128x256", "250x500"])
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--evaluations", type=int, default=250,
                   help="work budget of the scale table's LipSDP (objective evaluations; deterministic)")
    p.add_argument("--time-limit", type=float, default=600.0,
                   help="safety cap in seconds per certificate (a capped one is reported not converged)")
    p.add_argument("--threads", default="1", help="BLAS/torch threads (set before numpy is imported)")
    p.add_argument("--dense-layers", type=int, nargs="*", default=[4, 8])
    p.add_argument("--train-steps", type=int, default=150)
    p.add_argument("--lower-random", type=int, default=256)
    p.add_argument("--trained", nargs="*", default=["LISTA", "LISTACP", "ALISTA", "CorrectedISTA", "LearnedProxISTA",
                                                    "UnfoldedFISTA", "UnfoldedADMM"],
                   help="zoo models for the trained-model ratio (verification/lipschitz_report.py names)")
    p.add_argument("--trained-size", default="32x64")
    p.add_argument("--trained-steps", type=int, default=4000)
    p.add_argument("--trained-time-limit", type=float, default=240.0,
                   help="seconds for the LipSDP optimisation of the trained models (stops at convergence)")
    p.add_argument("--trained-smooth-steps", type=int, default=600)
    p.add_argument("--trained-region-rounds", type=int, default=20,
                   help="rounds per trajectory of lipschitz.region_search")
    p.add_argument("--trained-region-restarts", type=int, default=3,
                   help="trajectories of lipschitz.region_search (distinct start regions)")
    p.add_argument("--trained-region-uncertain", type=int, default=30,
                   help="undecided neurons per region_search neighbourhood (max_uncertain)")
    p.add_argument("--trained-region-time", type=float, default=120.0,
                   help="safety cap (s) of lipschitz.region_search per model (a stopped search is still valid)")
    p.add_argument("--trained-region-flips", type=int, default=100,
                   help="moves of region_search's walk over adjacent regions per trajectory")
    p.add_argument("--local-radii", type=float, nargs="*", default=[],
                   help="trained models: local_sandwich on l2 balls of radius rel x median ||y|| around test inputs "
                        "(e.g. 0.001 0.01)")
    p.add_argument("--local-points", type=int, default=8, help="test inputs (ball centres) per model")
    p.add_argument("--trained-floor-restarts", type=int, default=12,
                   help="trajectories of lipschitz.relaxation_floor per trained model")
    p.add_argument("--trained-floor-moves", type=int, default=2000,
                   help="move budget per trajectory of lipschitz.relaxation_floor")
    p.add_argument("--trained-region-patience", type=int, default=0,
                   help="region_search patience: > 0 makes the walk non-greedy (tabu), 0 greedy")
    p.add_argument("--trained-region-jumps", type=int, default=0,
                   help="region_search line jumps per trajectory when the walk stops")
    p.add_argument("--trained-region-samples", type=int, default=0,
                   help="region_search extra start points (scaled data, random directions)")
    p.add_argument("--skip-layerwise", action="store_true", help="trained section: skip LipSDP-Layer")
    p.add_argument("--skip-trained", action="store_true", help="skip the trained-model section")
    p.add_argument("--skip-scale", action="store_true", help="skip the scale table and the dense comparison")
    args = p.parse_args()
    torch.set_num_threads(int(args.threads))
    print(f"# bench_lipsdp: {args.layers}-layer LISTA, BLAS/torch threads={args.threads}, "
          f"{os.cpu_count()} CPUs, {load()}")
    trained = []
    if not args.skip_trained and args.trained:
        trained = trained_rows(args.trained, args.trained_size, args.layers, args.trained_steps,
                               args.trained_time_limit, args.trained_smooth_steps, args.trained_region_rounds,
                               args.trained_region_restarts, args.trained_region_uncertain,
                               not args.skip_layerwise, args.trained_region_time, args.trained_region_flips,
                               args.trained_floor_restarts, args.trained_floor_moves,
                               {"patience": args.trained_region_patience, "jumps": args.trained_region_jumps,
                                "samples": args.trained_region_samples})
    if args.skip_scale:
        args.sizes, args.dense_layers = [], []
    rows = []
    for size in args.sizes:
        m, n = (int(v) for v in size.lower().split("x"))
        net, data, tr = trained_lista(m, n, args.layers, args.train_steps)
        naive, t_naive, _ = timed(lip.upper_bound, net, "naive")
        ub, t_ub, mem = timed(lip.upper_bound, net, "lipsdp", time_limit=args.time_limit,
                              max_evaluations=args.evaluations)
        lo, t_lo, _ = timed(lip.lower_bound, net, data=data[:256], num_random=args.lower_random,
                            ascent_steps=100, ascent_starts=16)
        row = {"m": m, "n": n, "K": args.layers, "N": n * args.layers, "naive": naive.value,
               "lipsdp": ub.value,
               "certified": ub.certified, "converged": ub.converged, "lower": lo.value, "t_lipsdp": t_ub, "mem_mb": mem, "t_lower": t_lo,
               "evals": ub.checks.get("evaluations"), "loss": f"{tr['loss0']:.3g}->{tr['loss']:.3g}",
               "load": load()}
        rows.append(row)
        print(f"  done {m}x{n}: lipsdp {ub.value:.5g} ({'certified' if ub.certified else ub.reason}) in "
              f"{t_ub:.1f}s, naive {naive.value:.5g}, lower {lo.value:.5g} [{lo.checks.get('best_source')}], "
              f"train {tr['train_s']:.0f}s loss {row['loss']}, {load()}", flush=True)
    if rows:
        print_scale(rows, args)
    # dense comparison
    if args.dense_layers:
        print()
        print("Dense cvxpy LMI (Clarabel) versus structured, same network (16x32 LISTA, ISTA-initialised + "
              "perturbed), same run")
        hdr2 = (f"{'K':>3} {'order':>6} {'dense':>10} {'structured':>10} {'rel.diff':>9} {'dense s':>8} "
                f"{'struct s':>8} {'speed-up':>8}  load")
        print(hdr2)
        print("-" * len(hdr2))
        rng = np.random.default_rng(0)
        m, n = 16, 32
        A = ut.problems.gaussian_dictionary(m, n, seed=0) if hasattr(ut.problems, "gaussian_dictionary") \
            else rng.normal(size=(m, n)) / np.sqrt(m)
        for K in args.dense_layers:
            torch.manual_seed(K)
            net = ut.models.LISTA(A, K, dtype=torch.float64, device="cpu")
            with torch.no_grad():
                for prm in (net.W1, net.W2):
                    prm.add_(0.02 * torch.randn_like(prm) / np.sqrt(n))
            st, t_st, _ = timed(lip.upper_bound, net, "lipsdp", time_limit=args.time_limit)
            de, t_de, _ = timed(lip.upper_bound, net, "lipsdp_dense", max_dense_order=10 ** 6)
            print(f"{K:>3} {m + n * K:>6} {de.value:>10.6f} {st.value:>10.6f} "
                  f"{abs(st.value - de.value) / de.value:>9.1e} {t_de:>8.1f} {t_st:>8.2f} "
                  f"{t_de / t_st:>8.0f}  "
                  f"{load()}", flush=True)
    print()
    big = [r for r in rows if (r["m"], r["n"]) == (250, 500)]
    if big:
        r = big[0]
        print(f"goal (250, 500) certificate < 60 s within the work budget ({args.evaluations} evaluations): "
              f"{r['t_lipsdp']:.1f} s -> "
              f"{'MET' if r['t_lipsdp'] < 60 and r['certified'] and r['converged'] else 'NOT MET'}")
    if rows:
        worst = max(rows, key=lambda r: r["lipsdp"] / max(r["lower"], 1e-300))
        print(f"briefly trained LISTA ({args.train_steps} steps), upper / lower: worst "
              f"{worst['lipsdp'] / worst['lower']:.2f} ({worst['m']}x{worst['n']}) -> "
              f"{'<= 3' if all(r['lipsdp'] <= 3 * r['lower'] for r in rows) else '> 3'}")
    print_trained(trained)
    print_floor(trained)
    if args.local_radii and args.trained:
        print_local(local_rows(args.trained, args.trained_size, args.layers, args.trained_steps, args.local_radii,
                               args.local_points, args.evaluations, args.time_limit))


if __name__ == "__main__":
    main()
