r"""The naive layer-by-layer Lipschitz bound of an analysis form, and the LipSDP multipliers it implies.

For a chain (LISTA/ISTA) with :math:`x_k = \sigma(W_k x_{k-1} + B_k y)` and 1-Lipschitz :math:`\sigma`:

.. math:: a_0 = 0, \qquad a_k = \|W_k\|_2\, a_{k-1} + \|B_k\|_2, \qquad \mathrm{Lip}(y \mapsto x_K) \le a_K.

On a general form (block :math:`k` reads blocks :math:`j<k`, per-neuron slope magnitude :math:`\ell_i =
\max(|\alpha_i|, |\beta_i|)`, :math:`L_k = \mathrm{diag}(\ell_k)`):

.. math:: a_k = \sum_{j} \|L_k A_{kj}\|_2\, a_j + \|L_k B_k\|_2, \qquad \mathrm{Lip} \le \sum_j \|C_j\|_2\,
          a_j + \|D\|_2,

because :math:`\|\Delta w_k\| \le \|L_k \Delta z_k\|` for an elementwise slope-restricted activation.
"""

from __future__ import annotations

import numpy as np

from ._net import Net, spectral_norm_upper, slope_magnitude

_U = np.finfo(np.float64).eps / 2


def _up(x: float) -> float:
    """Round a float sum/product result outward (enough for the few operations done on norms here)."""
    return float(np.nextafter(x * (1 + 4 * _U), np.inf))


def naive_terms(net: Net) -> dict:
    """Per-block norms and the recursion values ``a_k``; all norms are upper bounds (outward rounded)."""
    nb = net.num_blocks
    ell = [slope_magnitude(a, b) for a, b in zip(net.alpha, net.beta)]
    nA = [{} for _ in range(nb)]
    nB = [0.0] * nb
    a = [0.0] * nb
    for k in range(nb):
        acc = 0.0
        for j, M in net.inputs[k].items():
            nA[k][j] = spectral_norm_upper(ell[k][:, None] * M)
            acc = _up(acc + _up(nA[k][j] * a[j]))
        if net.B[k] is not None:
            nB[k] = spectral_norm_upper(ell[k][:, None] * net.B[k])
            acc = _up(acc + nB[k])
        a[k] = acc
    nC = {j: spectral_norm_upper(C) for j, C in net.output.items()}
    nD = 0.0 if net.direct is None else spectral_norm_upper(net.direct)
    total = nD
    for j, c in nC.items():
        total = _up(total + _up(c * a[j]))
    return {"a": a, "nA": nA, "nB": nB, "nC": nC, "nD": nD, "ell": ell, "value": total}


def naive_multipliers(net: Net, terms: dict | None = None, floor: float = 1e-9) -> tuple[np.ndarray, float]:
    r"""LipSDP-Neuron multipliers :math:`t` that certify (essentially) the naive bound.

    Each neuron with slope in :math:`[\alpha,\beta]` (:math:`\alpha<\beta`) satisfies :math:`\ell^2\Delta z^2
    - \Delta w^2 - \tau^\star q \ge 0` for :math:`\tau^\star = 2(\ell^2-\alpha\beta)/(\beta-\alpha)^2` (the
    2x2 form is a perfect square), where :math:`q = (\Delta w - \alpha\Delta z)(\beta\Delta z - \Delta w) \ge
    0` is the slope constraint.  Chaining these with the Cauchy-Schwarz splits that produce :math:`a_k` and
    weighting block :math:`k` by :math:`\mu_k` (computed backwards from the readout) gives :math:`t_i =
    \mu_k\tau_i^\star` and :math:`\rho = (\text{naive})^2` feasible in the LMI.  Every block gets a small
    extra weight ``floor`` (relative) so that :math:`X(t) \succ 0` strictly.  Requires every neuron to have
    :math:`\alpha < \beta` (call :func:`~._net.eliminate_fixed` first).

    Returns ``(t, rho)`` with ``rho`` the value the construction certifies in exact arithmetic.
    """
    terms = naive_terms(net) if terms is None else terms
    nb = net.num_blocks
    a = np.asarray(terms["a"], dtype=float)
    amax = float(a.max()) if a.size and a.max() > 0 else 1.0
    a = np.maximum(a, 1e-12 * amax)
    L_out = terms["value"] if terms["value"] > 0 else 1.0
    eta = np.zeros(nb)
    for j, c in terms["nC"].items():
        eta[j] += L_out * c / a[j]
    eta += floor * (eta.max() if eta.max() > 0 else 1.0)
    # gamma[k][j] = a_k ||L_k A_kj|| / a_j ;  delta_k = a_k ||L_k B_k||
    mu = eta.copy()
    readers = net.readers()
    for k in range(nb - 1, -1, -1):
        for l in readers[k]:
            mu[k] += mu[l] * a[l] * terms["nA"][l][k] / a[k]
    rho = L_out * terms["nD"] + float(sum(mu[k] * a[k] * terms["nB"][k] for k in range(nb)))
    t = []
    for k in range(nb):
        al, be = net.alpha[k], net.beta[k]
        ell = terms["ell"][k]
        tau = 2 * (ell ** 2 - al * be) / (be - al) ** 2
        t.append(mu[k] * tau)
    return np.concatenate(t), rho
