"""Torch threads on small unrolled networks: one thread against torch's default, on a quiet and a loaded machine.

    python verification/benchmarks/bench_threads.py [--steps 200] [--load 2] [--skip-loaded]

Each case runs in a fresh subprocess (so the thread setting is the process's first), timing
(a) training the README's LISTA (m=64, n=128, 16 layers, batch 128) for ``--steps`` Adam steps with
``unfoldtheory.training.train`` and (b) ``unfoldtheory bounds`` on the saved model (naive, layerwise, LipSDP,
lower bound, contraction).  "loaded" starts ``--load`` busy-looping processes (pure Python, one core each)
for the duration of the case, as on a shared machine.  Prints the seconds of each case and the ratio
default / one thread, measured in this one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

TRAIN = r"""
import sys, time, torch
threads = int(sys.argv[1]); steps = int(sys.argv[2]); path = sys.argv[3]
if threads > 0:
    torch.set_num_threads(threads)
import unfoldtheory as ut
gen = ut.problems.SparseRecovery.gaussian(m=64, n=128, p=0.1, snr_db=40, seed=0)
net = ut.models.LISTA(gen.A, num_layers=16, lam=0.02, device="cpu")
t0 = time.perf_counter()
ut.training.train(net, gen, epochs=1, steps_per_epoch=steps, lr=1e-3, seed=0, progress=False)
print(time.perf_counter() - t0)
ut.models.save(net, path)
"""


def _busy(stop):
    x = 0
    while not stop.is_set():
        x += 1


def _run(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return time.perf_counter() - t0, out.stdout


def case(threads: int, steps: int, folder: str) -> tuple[float, float]:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(k, None)
    path = os.path.join(folder, f"lista_{threads}.pt")
    _, out = _run([sys.executable, "-c", TRAIN, str(threads), str(steps), path], env)
    train_s = float(out.strip().splitlines()[-1])
    bounds_s, _ = _run([sys.executable, "-m", "unfoldtheory", "bounds", path, "--threads", str(threads)], env)
    return train_s, bounds_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--load", type=int, default=2)
    ap.add_argument("--skip-loaded", action="store_true")
    args = ap.parse_args()
    import torch

    print(f"cores: {os.cpu_count()}, torch default threads: {torch.get_num_threads()}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for loaded in ([False] if args.skip_loaded else [False, True]):
            stop = mp.Event()
            procs = [mp.Process(target=_busy, args=(stop,)) for _ in range(args.load if loaded else 0)]
            for p in procs:
                p.start()
            try:
                res = {t: case(t, args.steps, folder) for t in (1, 0)}
            finally:
                stop.set()
                for p in procs:
                    p.join()
            label = f"loaded (+{args.load} busy)" if loaded else "as is"
            for t, (tr, bd) in res.items():
                rows.append((label, "1" if t == 1 else "default", tr, bd))
            print(f"{label:<18} train {args.steps} steps: 1 thread {res[1][0]:7.1f} s, default {res[0][0]:7.1f} s "
                  f"(ratio {res[0][0] / res[1][0]:.2f});  bounds: 1 thread {res[1][1]:6.1f} s, default "
                  f"{res[0][1]:6.1f} s (ratio {res[0][1] / res[1][1]:.2f})", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
