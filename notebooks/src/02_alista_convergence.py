"""Cells of the notebook "verify the convergence guarantees of a trained ALISTA" (notebooks/_build_notebooks.py)."""

CELLS = [
    ("md", """# Verify the convergence guarantees of a trained ALISTA

ALISTA (Liu, Chen, Wang, Yin, ICLR 2019) runs $x_{k+1} = \\eta_{\\theta_k}(x_k - \\gamma_k W^T(Ax_k - y))$,
$x_0 = 0$, with a precomputed weight $W$ and trained steps $\\gamma_k$ and thresholds $\\theta_k$.
**Theorem 1**: if $W$ solves Definition 1 (generalized coherence $\\tilde\\mu$), the data are noiseless with
$\\|x^\\star\\|_0 \\le s$, $\\|x^\\star\\|_\\infty \\le B$, $(2s-1)\\tilde\\mu < 1$,
$\\gamma_k \\in (0, 2/(2\\tilde\\mu s - \\tilde\\mu + 1))$ and $\\theta_k = \\gamma_k\\tilde\\mu\\sup\\|x_k - x^\\star\\|_1$, then
there are no false positives and
$\\|x_k - x^\\star\\|_2 \\le sB\\prod_{t<k}\\big((2\\tilde\\mu s - \\tilde\\mu)\\gamma_t + |1-\\gamma_t|\\big)$.

We check each assumption on a trained network and the conclusion on every test instance."""),
    ("code", """import types
import numpy as np
import torch
import matplotlib.pyplot as plt
import unfoldtheory as ut
import unfoldtheory.convergence as cv

torch.set_num_threads(1)
A = ut.problems.SparseRecovery.gaussian(32, 64, seed=0).A
W_minimax, mu_tilde = cv.generalized_coherence(A)          # Definition 1 (certified per-column simplex)
mu_analytic = ut.coherence.offdiag_max(ut.coherence.analytic_weight(A), A)
print(f"mutual coherence {ut.coherence.mutual_coherence(A):.3f}, generalized coherence {mu_tilde:.3f}, "
      f"coherence of the analytic (Frobenius) weight {mu_analytic:.3f}")
print("largest s in the regime (2s-1) mu < 1:", int(np.ceil((1 + 1 / mu_tilde) / 2) - 1))"""),
    ("md", """## Train stage 2 on data inside the regime

The theorem needs small supports, so the data have exactly $s = 2$ nonzeros (uniform on $[-1, 1]$), noiseless."""),
    ("code", """class FixedSupport:
    def sample(self, batch, seed=None):
        x, y = cv.fixed_support_instances(A, 2, batch, seed=seed)
        return types.SimpleNamespace(x=x, y=y)

net = ut.models.ALISTA(A, 10, W=W_minimax, gamma0=1.0, theta0=0.05, device="cpu", dtype=torch.float64)
hist = ut.training.train(net, FixedSupport(), epochs=2, steps_per_epoch=150, batch_size=64, lr=1e-2,
                         progress=False, val_size=200)
x_test, y_test = cv.fixed_support_instances(A, 2, 300, seed=123)
print(hist)"""),
    ("md", """## Check the theorem

With the *trained* thresholds the theorem's eq. (10) does not hold, so the result is "not applicable"
(never "holds"). Setting the thresholds to the theorem's values puts the network inside the regime."""),
    ("code", """res_trained = cv.alista_theorem_check(net, A, x_test, y_test, mu_tilde=mu_tilde)
print(res_trained, end="\\n\\n")
cv.alista_oracle_thresholds(net, A, x_test, y_test, assign=True)
res = cv.alista_theorem_check(net, A, x_test, y_test, mu_tilde=mu_tilde, require_minimax_weight=True)
print(res.summary())
print(res.table())"""),
    ("md", """## Observed errors against the certified rates

`convergence_profile` adds the distance to the certified LASSO optimum (`ut.reference.solve`) and every rate
that applies (dashed: certified; dotted: not a certified bound for this model)."""),
    ("code", """prob = ut.problems.Lasso(A, 0.05)
prof = cv.convergence_profile(net, prob, y_test, x_test)
print(prof)
fig = prof.plot()
plt.show()"""),
    ("md", """## Outside the regime

ALISTA's analytic (Frobenius) weight has a larger maximal coherence, so $(2s-1)\\mu < 1$ already fails for
$s = 2$: the check says "not applicable", and names the failed assumptions."""),
    ("code", """ana = ut.models.ALISTA(A, 10, device="cpu", dtype=torch.float64)
cv.alista_oracle_thresholds(ana, A, x_test, y_test, assign=True)
print(cv.alista_theorem_check(ana, A, x_test, y_test))"""),
]
