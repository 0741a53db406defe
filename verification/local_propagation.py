"""Linear (CROWN) against optimised-slope (alpha-CROWN) bound propagation for the local Lipschitz sandwich.

    python verification/local_propagation.py                      # CorrectedISTA, ALISTA, LISTACP
    python verification/local_propagation.py --only ALISTA --relative 0.003

For each trained 16-layer model (m = 32, n = 64, 4000 steps, the ``bench_lipsdp`` configuration, trained by
``lipschitz_report.py`` if missing) and the l2 balls of radius ``relative`` x the median test-input norm around
the first ``points`` test inputs, prints the neurons each propagation leaves undecided per ball and the interval
of :func:`unfoldtheory.lipschitz.local_sandwich` (``max_evaluations=250``) with each propagation, with its
seconds (``docs/theory/exact_lipschitz.md §7``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lipschitz_report as report  # noqa: E402

from unfoldtheory import lipschitz as lip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["CorrectedISTA", "ALISTA", "LISTACP"])
    ap.add_argument("--relative", type=float, default=0.01)
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = report.problem(32, 64).sample(256, seed=1).y
    radius = args.relative * float(np.median(np.linalg.norm(data, axis=1)))
    print("| model | propagation | undecided neurons per ball | interval | upper / lower | seconds |")
    print("|---|---|---|---|---|---|")
    for name in args.only:
        net, _ = report.trained_model(name, 32, 64, 16, 4000)
        form = lip.require_form(net)
        for prop in ("linear", "alpha"):
            t = time.perf_counter()
            b = lip.local_sandwich(form, data[:args.points], radius, max_evaluations=250, propagation=prop,
                                   show_progress=False)
            und = [x["uncertain_neurons"] for x in b.checks["balls"]]
            lo, hi = b.interval
            print(f"| {name} | {prop} | {und} | [{lo:.3f}, {hi:.3f}] | {b.checks['ratio']:.2f} | "
                  f"{time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
