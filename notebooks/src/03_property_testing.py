"""Cells of the property-testing notebook (built by notebooks/_build_notebooks.py)."""

CELLS = [
    ("md", """# Property-testing a new unfolded architecture

You invented an unrolled network. Before training it and quoting certificates for it, check with one call that
it satisfies what the theory relies on: its analysis form matches its code, the certified bounds are sound for
it, the LASSO optimum is a fixed point where it claims to be ISTA, batches and dtypes behave, every parameter
learns. `ut.testing.check_architecture` runs each of these properties with
[hypothesis](https://hypothesis.readthedocs.io) and reports a *shrunk*, replayable counterexample for each
failure.

The architecture here: ISTA with a learned step per layer,
$x_k = \\eta_{\\gamma_k\\lambda}\\big(x_{k-1} - \\gamma_k A^T(Ax_{k-1} - y)\\big)$, $x_0 = 0$, written from scratch
as a subclass of `UnfoldedNetwork`. The first version has two bugs that are invisible at initialisation."""),
    ("code", """import numpy as np
import torch
import matplotlib.pyplot as plt
import unfoldtheory as ut
from unfoldtheory.form import Block, Form, SoftThreshold
from unfoldtheory.models.functional import soft_threshold

torch.set_num_threads(1)


class StepISTA(ut.models.UnfoldedNetwork):
    \"\"\"ISTA with learned per-layer steps gamma_k (threshold gamma_k * lam).\"\"\"

    paradigm = 1
    nonnegative = ("gamma",)

    def __init__(self, A, num_layers, lam, buggy=False):
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device="cpu", dtype=torch.float64)
        self.lam, self.buggy = float(lam), buggy
        L = np.linalg.norm(A, 2) ** 2
        self.gamma = torch.nn.Parameter(self._tensor(np.full(num_layers, 1.0 / L)))

    def _iterate(self, y):
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for k in range(self.num_layers):
            g = self.gamma[k]
            # BUG 1 (buggy=True): threshold lam / gamma instead of lam * gamma
            th = self.lam / g if self.buggy else self.lam * g
            x = soft_threshold(x - g * ((x @ self.A.T - y) @ self.A), th)
            yield x

    def form(self):
        A, g = self._np(self.A), self._np(self.gamma)
        blocks = []
        for k in range(self.num_layers):
            # BUG 2 (buggy=True): the form uses the first layer's step everywhere
            gk = g[0] if self.buggy else g[k]
            th = self.lam / gk if self.buggy else self.lam * gk
            inputs = {} if k == 0 else {k - 1: np.eye(self.n) - gk * A.T @ A}
            blocks.append(Block(SoftThreshold(th, size=self.n), inputs=inputs, B=gk * A.T, layer=k + 1))
        eye = np.eye(self.n)
        return Form(self.m, blocks, output={self.num_layers - 1: eye},
                    layer_outputs=[{k: eye} for k in range(self.num_layers)], name="StepISTA")

    # declarations: at initialisation this is ISTA for the LASSO (A, lam), and it can be unrolled deeper
    def classical_problem(self):
        return ut.problems.Lasso(self._np(self.A), self.lam)

    def with_layers(self, num_layers):
        return StepISTA(self._np(self.A), num_layers, self.lam, buggy=self.buggy)


def buggy(problem, seed):
    return StepISTA(problem.A, 4, problem.lam, buggy=True)


def fixed(problem, seed):
    return StepISTA(problem.A, 4, problem.lam)"""),
    ("md", """## The buggy version

At initialisation all steps are equal, so bug 2 does not show there: the suite checks the form with
near-trained weights (small random perturbations of the parameters) too. Bug 1 changes the fixed points: the
LASSO optimum, certified by `ut.reference.solve`, is no longer a fixed point of the layers that the model
declares to be ISTA."""),
    ("code", """report_buggy = ut.testing.check_architecture(buggy, max_examples=10, seed=0)
report_buggy"""),
    ("md", """Every failure comes with hypothesis's shrunk counterexample (the smallest problem, batch and seed it found)
and replays without hypothesis:"""),
    ("code", """res = report_buggy["form_faithful"]
print(res.describe_counterexample())
try:
    res.replay()
except AssertionError as exc:
    print("replayed:", exc)"""),
    ("md", """## The fixed version

The same call passes; properties that need a GPU say so instead of failing."""),
    ("code", """report_fixed = ut.testing.check_architecture(fixed, max_examples=10, seed=0)
print(report_fixed.summary())
report_fixed.raise_if_failed()  # what a pytest test does (or ut.testing.assert_architecture(fixed))
print(report_fixed.table())"""),
    ("md", """## What the counterexample looks like

Left: on the shrunk counterexample of `form_faithful`, the form of the buggy model and its torch forward
disagree (with near-trained weights). Right: time spent per property in the two runs; the certificate checks
(LipSDP solves, attacks) and the reference optima dominate."""),
    ("code", """cex = res.counterexample
inst = cex["instance"]
net = ut.testing.strategies.perturb_parameters  # the suite's perturbation, applied as in the check
model = buggy(inst.problem, inst.seed)
net(model, cex["perturbation"], inst.seed + 1)
y = inst.y * cex["input_scale"]
with torch.no_grad():
    x_torch = model(y)[0].numpy()
x_form = model.form().evaluate(y)[0]

fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
idx = np.arange(x_torch.size)
ax[0].bar(idx - 0.2, x_torch, width=0.4, label="forward(y)")
ax[0].bar(idx + 0.2, x_form, width=0.4, label="form().evaluate(y)")
ax[0].set(xlabel="coordinate", ylabel="x_K", title="buggy model: form vs forward")
ax[0].legend()
names = list(report_fixed.results)
colors = {"holds": "tab:green", "violated": "tab:red", "not applicable": "tab:gray"}
for off, rep in ((-0.2, report_buggy), (0.2, report_fixed)):
    ax[1].barh(np.arange(len(names)) + off, [rep[n].seconds for n in names], height=0.4,
               color=[colors[rep[n].status] for n in names])
ax[1].set_yticks(np.arange(len(names)), names)
ax[1].set(xlabel="seconds (upper bar: fixed, lower: buggy)", title="green holds, red violated, gray n/a")
fig.tight_layout()
plt.show()"""),
    ("md", """## Going deeper

* `max_examples=200` (and `expensive_examples=...`) searches harder; `max_examples=None` uses the active
  hypothesis profile, e.g. `hypothesis.settings.load_profile("thorough")`.
* `problems=ut.testing.strategies.problem_instances(m=(20, 40), n=(40, 80), condition=(1, 100))` draws larger,
  worse-conditioned problems; `strategies.rpca_instances()` for RPCA networks.
* `properties=[...]` / `skip=[...]` select properties; `seed=` fixes the examples.
* Declarations a model can add: `classical_problem()`, `fixed_point_layer(k, x, y)`, `with_layers(K)`,
  `declared_properties` (e.g. `("nonexpansive_layers", "monotone_objective")` or your own checks) and
  `no_gradient`; see `help(ut.testing)`."""),
]
