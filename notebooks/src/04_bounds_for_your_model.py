"""Cells of the notebook "every bound for your own model" (built by notebooks/_build_notebooks.py)."""

CELLS = [
    ("md", """# Every bound for your own model

You wrote an unfolded network in plain PyTorch, in your own style, and trained it with your own loop. This
notebook asks what can be *guaranteed* about **that** module, as written: no subclassing, no hand-written
analysis form. Every number below is a `Bound` with a **side** (`upper`, `lower`, `estimate`, `measured`),
whether it is **certified**, and the **method** that produced it.

The model: a 6-layer LISTA with `nn.Linear` layers in `ModuleList`s and a soft threshold written by hand
(`sign(z) * relu(|z| - t)`), learned thresholds in a parameter vector. How the library reads it:
`docs/your_model.md`."""),
    ("code", """import numpy as np
import torch
import torch.nn as nn
import matplotlib.pyplot as plt
import unfoldtheory as ut

torch.manual_seed(0)
torch.set_num_threads(1)           # small networks: one CPU thread is fastest (docs/threads.md)


class MyLISTA(nn.Module):
    \"\"\"x_k = soft(W1_k y + W2_k x_{k-1}, t_k), x_0 = 0.\"\"\"

    def __init__(self, A, num_layers):
        super().__init__()
        m, n = A.shape
        L = float(np.linalg.norm(A, 2) ** 2)
        self.n = n
        self.W1 = nn.ModuleList(nn.Linear(m, n, bias=False) for _ in range(num_layers))
        self.W2 = nn.ModuleList(nn.Linear(n, n, bias=False) for _ in range(num_layers))
        with torch.no_grad():                      # start from ISTA with step 1/L
            for w1, w2 in zip(self.W1, self.W2):
                w1.weight.copy_(torch.tensor(A.T / L))
                w2.weight.copy_(torch.tensor(np.eye(n) - A.T @ A / L))
        self.t = nn.Parameter(torch.full((num_layers,), 0.05 / L))

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for w1, w2, t in zip(self.W1, self.W2, self.t):
            z = w1(y) + w2(x)
            x = torch.sign(z) * torch.relu(z.abs() - t)
        return x


gen = ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0)
net = MyLISTA(gen.A, num_layers=6)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
for step in range(300):                            # your own training loop
    batch = gen.sample(64, seed=step)
    y, x = torch.tensor(batch.y, dtype=torch.float32), torch.tensor(batch.x, dtype=torch.float32)
    loss = ((net(y) - x) ** 2).sum() / (x ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        net.t.clamp_(min=0)
test = gen.sample(300, seed=10_001)
print("NMSE per layer [dB]:", np.round(ut.metrics.per_layer_nmse_db(net, test.y, test.x), 2))"""),
    ("md", """## The analysis form, captured from your code

`ut.form.extract` runs your `forward` once in float64 and writes it as
$z = A w + B y + b,\\ w = \\sigma(z),\\ x = C w$, with the hand-written soft threshold recognised as one
`SoftThreshold` per layer. The form is trusted only because it reproduces `net(y)` (checked inside
`extract`, and again here). Every certificate calls it by itself; you rarely need to."""),
    ("code", """form = ut.form.extract(net, input_dim=20)
print(form)
with torch.no_grad():
    out = net(torch.tensor(test.y, dtype=torch.float32)).numpy()
print(f"max |form - forward| on the test set: {np.abs(form.evaluate(test.y) - out).max():.2e} "
      "(the model runs in float32, the form in float64)")"""),
    ("md", """## Lipschitz constant of $y \\mapsto x_K$: a certified sandwich

Upper bounds: the naive product, LipSDP-Layer and LipSDP-Neuron (structured for input injection, re-verified
in float64; `lipsdp` returns the best certificate it computed, so `lipsdp <= layerwise <= naive`). Lower
bound: the largest secant ratio found by a Jacobian search and gradient ascent, with its witness input."""),
    ("code", """uppers = {m: ut.lipschitz.upper_bound(net, method=m) for m in ("naive", "layerwise", "lipsdp")}
lower = ut.lipschitz.lower_bound(net, data=test.y, ascent_steps=40, smooth_steps=40)
for m, b in uppers.items():
    print(f"{m:>10}: {b.value:8.4f}  side={b.side}, certified={b.certified}")
print(f"{'lower':>10}: {lower.value:8.4f}  side={lower.side}, witness source: {lower.witness['source']}")
print("LipSDP / lower =", round(uppers["lipsdp"].value / lower.value, 3))
quick = {"data": test.y[:50], "num_random": 32, "ascent_steps": 20, "ascent_starts": 2, "smooth_steps": 10}
rows = ut.lipschitz.bounds_vs_depth(net, depths=[1, 2, 4, 6], lower_kwargs=quick)
ut.lipschitz.plot_bounds_vs_depth(rows, title="MyLISTA: Lipschitz sandwich against depth")
plt.show()"""),
    ("md", """## Robustness: certified sensitivity against an attack

$\\|x_K(y+d) - x_K(y)\\| \\le L\\,\\|d\\|$ with the certified $L$; a PGD attack on test inputs finds how much of it
is attained."""),
    ("code", """eps = 0.3
cert = ut.robustness.certified_sensitivity(net, eps, upper=uppers["lipsdp"])
att = ut.robustness.attack(net, test.y[:64], eps, steps=40)
print(f"certified deviation <= {cert.value:.4f}; attack achieved {att.checks['max_deviation']:.4f}")
assert att.checks["max_deviation"] <= cert.value"""),
    ("md", """## Local constants around your data

The global constant covers every input; near the inputs you actually see the network can be far less
sensitive. `local_sandwich` brackets the Lipschitz constant on the union of the balls of radius $r$ around
test inputs (their $r$-neighbourhood): a certified upper end (bound propagation over each ball, then LipSDP;
pairs straddling two balls through the centres) and an attained lower end (a secant inside a ball or between
two inputs). As $r$ grows the upper end rises to the global certificate."""),
    ("code", """ny = float(np.median(np.linalg.norm(test.y, axis=1)))
radii = [0.003 * ny, 0.03 * ny, 0.3 * ny, 3.0 * ny]
local = [ut.lipschitz.local_sandwich(net, test.y[:4], r, samples=8, ascent_steps=20, max_evaluations=100)
         for r in radii]
for r, b in zip(radii, local):
    print(f"r = {r:.3g}: constant on the r-neighbourhood in [{b.interval[0]:.4f}, {b.interval[1]:.4f}]")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(radii, [b.interval[1] for b in local], "s-", label="certified upper (local)")
ax.plot(radii, [b.interval[0] for b in local], "v-", label="attained lower (local)")
ax.axhline(uppers["lipsdp"].value, ls="--", color="k", label="global LipSDP")
ax.set_xscale("log")
ax.set_xlabel("ball radius r")
ax.set_ylabel("Lipschitz constant")
ax.legend(fontsize=7)
plt.show()"""),
    ("md", """## Contraction of the layers, and the LISTA-CP coupling

Per-layer Lipschitz constants of the state map $x_{k-1} \\mapsto x_k$ and their product (a contraction
certificate when below 1), read from the extracted form. The LISTA-CP coupling residual
$\\|W_2^k - (I - W_1^k A)\\|$ shows how far your training moved the weights from the coupled structure the
LISTA-CP theorem assumes."""),
    ("code", """layers = ut.contraction.layer_lipschitz(net)
print("per-layer ||W2_k||:", np.round([b.value for b in layers], 4))
print(ut.contraction.contraction_certificate(net))
print(ut.convergence.lista_cp_coupling(net, gen.A).table())"""),
    ("md", """## What the model guarantees on unseen instances

A sample-convergence bound on the risk $P(\\mathrm{NMSE}_k > \\varepsilon)$ of every layer from held-out data
(confidence $1-\\delta$, all layers jointly, kl inverse rounded to the safe side); the per-layer outputs of
your module come from its extracted form."""),
    ("code", """res = ut.generalization.sample_convergence_bound(net, gen.sample(2000, seed=7), eps=-10.0, delta=0.05)
print(res)
fig, ax = plt.subplots(figsize=(5, 3.2))
k = np.arange(1, len(res.empirical_risk) + 1)
ax.plot(k, res.empirical_risk, "o-", label="empirical risk (held-out)")
ax.plot(k, res.risk_upper, "s--", label="certified upper bound (95%)")
ax.set(xlabel="layer k", ylabel="P(NMSE_k > -10 dB)", title="Sample-convergence bound per layer")
ax.legend()
ax.grid(alpha=0.3)
plt.show()"""),
    ("md", """## Property-testing the architecture

`check_architecture` draws LASSO problems with hypothesis, builds your module for each and checks what the
theory relies on: the extracted form matches the code, the certified bounds are sound on it, batching,
dtypes, seeds and gradients behave. Parameters that cannot influence the output (here `W2_1`, which
multiplies $x_0 = 0$) are reported as such, not as failures."""),
    ("code", """report = ut.testing.check_architecture(lambda problem: MyLISTA(problem.A, num_layers=3).double(),
                                       max_examples=5)
print(report)"""),
    ("md", """## From the command line

Save the weights and point `unfoldtheory bounds` at a factory in your own file (or at a `torch.export`
archive, `model.pt2`):

```bash
python -c "import torch; ..."          # torch.save(net.state_dict(), "my_lista_weights.pt")
unfoldtheory bounds my_module.py:make_model --weights my_lista_weights.pt --input-dim 20
```"""),
]
