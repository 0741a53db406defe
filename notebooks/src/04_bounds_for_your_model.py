"""Cells of the notebook "compute all bounds for your own model" (built by notebooks/_build_notebooks.py)."""

CELLS = [
    ("md", """# Every bound for your own model

You trained an unfolded network and want to know what can be *guaranteed* about it: how Lipschitz (robust) it
is, whether its layers contract, how its learned step schedule behaves in the worst case, and what it
guarantees on unseen instances. Every number below is a `Bound` with a **side** (`upper`, `lower`,
`estimate`), whether it is **certified**, and the **method** that produced it.

Here "your model" is a LISTA and a learned-step ISTA trained for a few seconds; replace them with
`ut.models.load("your_model.pt")`."""),
    ("code", """import numpy as np
import torch
import matplotlib.pyplot as plt
import unfoldtheory as ut

torch.manual_seed(0)
gen = ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0)
prob = gen.lasso(lam=0.05)
test = gen.sample(300, seed=1)
net = ut.models.LISTA(gen.A, num_layers=6, lam=0.05, device="cpu")
ut.training.train(net, gen, epochs=4, steps_per_epoch=60, batch_size=64, lr=3e-3, progress=False)
ut.models.save(net, "my_lista.pt")
net = ut.models.load("my_lista.pt", device="cpu", dtype=torch.float64)
print(net, "\\nNMSE per layer [dB]:", np.round(ut.metrics.per_layer_nmse_db(net, test.y, test.x), 2))"""),
    ("md", """## Lipschitz constant of $y \\mapsto x_K$: a certified sandwich

Upper bounds: the naive product, LipSDP-Layer and LipSDP-Neuron (structured for input injection, re-verified
in float64). Lower bound: the largest secant ratio found by a Jacobian search, gradient ascent and an attack,
with the witness input. The truth lies in between."""),
    ("code", """uppers = {m: ut.lipschitz.upper_bound(net, method=m, time_limit=5) for m in ("naive", "layerwise", "lipsdp")}
lower = ut.lipschitz.lower_bound(net, data=test.y, time_limit=3, ascent_steps=40, smooth_steps=40)
for m, b in uppers.items():
    print(f"{m:>10}: {b.value:8.4f}  side={b.side}, certified={b.certified}")
print(f"{'lower':>10}: {lower.value:8.4f}  side={lower.side}, witness source: {lower.witness['source']}")
print("LipSDP / lower =", round(uppers["lipsdp"].value / lower.value, 3))
quick = {"data": test.y[:50], "time_limit": 0.5, "num_random": 32, "ascent_steps": 20, "ascent_starts": 2,
         "smooth_steps": 10}
rows = ut.lipschitz.bounds_vs_depth(net, depths=[1, 2, 4, 6], upper_kwargs={"time_limit": 1}, lower_kwargs=quick)
ut.lipschitz.plot_bounds_vs_depth(rows, title="LISTA: Lipschitz sandwich against depth")
plt.show()"""),
    ("md", """## Robustness: certified sensitivity against an attack

$\\|x_K(y+d) - x_K(y)\\| \\le L\\,\\|d\\|$ with the certified $L$; a PGD attack on test inputs finds how much of it
is attained."""),
    ("code", """eps = 0.3
cert = ut.robustness.certified_sensitivity(net, eps, upper=uppers["lipsdp"])
att = ut.robustness.attack(net, test.y[:64], eps, steps=40)
print(f"certified deviation <= {cert.value:.4f}; attack achieved {att.checks['max_deviation']:.4f}")
assert att.checks["max_deviation"] <= cert.value"""),
    ("md", """## Contraction of the layers

Per-layer Lipschitz constants of the state map $x_{k-1} \\mapsto x_k$ (exact spectral norms) and their product,
a certificate that $x_1 \\mapsto x_K$ is a contraction when it is below 1. The LISTA-CP coupling residual shows
how far training moved the weights from $W_2 = I - W_1 A$."""),
    ("code", """layers = ut.contraction.layer_lipschitz(net)
print("per-layer ||W2_k||:", np.round([b.value for b in layers], 4))
print(ut.contraction.contraction_certificate(net))
print(ut.convergence.lista_cp_coupling(net, gen.A).table())"""),
    ("md", """## Worst-case convergence of a learned step schedule (PEP)

For a learned-step ISTA run as proximal gradient on the LASSO, performance estimation gives the exact worst
case of $F(x_K) - F^\\star$ over all $L$-smooth convex problems with $\\|x_0 - x^\\star\\| \\le 1$, for the learned
steps, certified by the dual multipliers."""),
    ("code", """ls = ut.models.LearnedStepISTA(gen.A, num_layers=6, lam=0.05, device="cpu")
ut.training.train(ls, gen, epochs=3, steps_per_epoch=100, batch_size=64, lr=1e-2, progress=False)
steps = ls.gamma.detach().numpy() * ls.L
pep = ut.convergence.worst_case(list(steps), L=ls.L, method="prox_grad")
print("learned steps x L:", np.round(steps, 3))
print(pep)
print("same depth with constant 1/L steps:", ut.symbolic.prox_grad_unit_step_rate(len(steps), ls.L))"""),
    ("md", """## What the model guarantees on unseen instances

A sample-convergence bound on the risk $P(\\mathrm{NMSE}_k > \\varepsilon)$ of every layer from held-out data
(confidence $1-\\delta$, all layers jointly, kl inverse rounded to the safe side)."""),
    ("code", """res = ut.generalization.sample_convergence_bound(net, gen.sample(2000, seed=7), eps=-10.0, delta=0.05)
print(res)
fig, ax = plt.subplots(figsize=(5, 3.2))
k = np.arange(1, net.num_layers + 1)
ax.plot(k, res.empirical_risk, "o-", label="empirical risk (held-out)")
ax.plot(k, res.risk_upper, "s--", label="certified upper bound (95%)")
ax.set(xlabel="layer k", ylabel="P(NMSE_k > -10 dB)", title="Sample-convergence bound per layer")
ax.legend()
ax.grid(alpha=0.3)
plt.show()"""),
    ("md", """The same table for any saved model from the command line: `unfoldtheory bounds my_lista.pt` (add
`--json` for a machine-readable version)."""),
]
