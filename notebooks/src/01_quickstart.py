"""Cells of the quickstart notebook (built by notebooks/_build_notebooks.py)."""

CELLS = [
    ("md", """# unfoldtheory quickstart

A sparse-recovery problem, its certified LASSO optima, unrolled ISTA and LISTA, and the analysis form that
every certificate of the library reads.

Problem: $\\min_x \\tfrac12\\|Ax-y\\|^2 + \\lambda\\|x\\|_1$ with the LISTA-CP/ALISTA data model
($A_{ij}\\sim\\mathcal N(0,1/m)$, unit-norm columns, Bernoulli($p$) support, $\\mathcal N(0,1)$ values)."""),
    ("code", """import numpy as np
import torch
import matplotlib.pyplot as plt
import unfoldtheory as ut

gen = ut.problems.SparseRecovery.gaussian(m=32, n=64, p=0.1, snr_db=40, seed=0)
prob = gen.lasso(lam=0.02)
test = gen.sample(200, seed=1)
gen, prob"""),
    ("md", """## Certified reference optima

`ut.reference.solve` returns the optimum of every instance with a certificate computed by the library
itself: the duality gap $F(x) - D(u) \\ge F(x) - F^\\star$ (rounded outward) and the distance of $0$ to the
subdifferential."""),
    ("code", """sol = ut.reference.solve(prob, test.y)
print(sol)
print("worst relative gap:", sol.relative_gap.max(), " worst relative residual:", sol.residual.max())"""),
    ("md", """## Unrolled ISTA: per-layer distance to the optimum

ISTA with step $1/L$ is a descent method; its per-layer error against the certified optimum decays slowly.
LISTA at initialisation *is* ISTA (same weights), which the last line checks."""),
    ("code", """K = 30
ista = ut.models.ISTA(prob.A, lam=prob.lam, num_layers=K, device="cpu", dtype=torch.float64)
lista = ut.models.LISTA(prob.A, num_layers=K, lam=prob.lam, device="cpu", dtype=torch.float64)
with torch.no_grad():
    xs = ista(test.y, return_all=True)
    xs_lista = lista(test.y, return_all=True)
err = [np.linalg.norm(x.numpy() - sol.x, axis=1).mean() for x in xs]
obj = [np.mean(prob.objective(x.numpy(), test.y) - sol.objective) for x in xs]
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
ax[0].semilogy(range(1, K + 1), err, "o-")
ax[0].set(xlabel="layer k", ylabel="mean ||x_k - x*||")
ax[1].semilogy(range(1, K + 1), obj, "s-")
ax[1].set(xlabel="layer k", ylabel="mean F(x_k) - F*")
fig.tight_layout()
plt.show()
print("LISTA at init equals ISTA:", all(torch.allclose(a, b) for a, b in zip(xs, xs_lista)))"""),
    ("md", """## The analysis form

$z = A w + B y + b$, $w = \\sigma(z)$, $x = C w$ with $A$ strictly block-lower-triangular and every
coordinate tagged with a slope interval. It is kept block-sparse and reproduces the torch forward. The
spectral norm of its Jacobian at sampled points is a **lower** bound on the Lipschitz constant (never an
upper bound)."""),
    ("code", """form = lista.form()
print(form)
with torch.no_grad():
    print("max |form - torch|:", np.abs(form.evaluate(test.y) - lista(test.y).numpy()).max())
jac_norms = [np.linalg.norm(J, 2) for J in form.jacobian(test.y[:50])]
print(f"sampled Jacobian norms (lower bounds on Lip): max {max(jac_norms):.3f}, median {np.median(jac_norms):.3f}")"""),
]

