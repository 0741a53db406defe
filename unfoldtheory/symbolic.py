r"""Closed-form worst-case rates of gradient methods, as sympy expressions and as floats.

Each rate comes as a pair: ``<name>(...)`` returns a float (plain Python, no sympy needed) and
``<name>_expr()`` returns the sympy expression in the symbols of :func:`symbols` (sympy is imported only
there).  The numbers are checked against the PEP engine :func:`unfoldtheory.convergence.worst_case` in
``tests/test_symbolic.py``: equality where the rate is tight, ``<=`` where it is only an upper bound.

Conventions: ``f`` is L-smooth and mu-strongly convex, ``||x_0 - x*|| <= 1`` (rates are per unit initial
squared distance), and step sizes are in units of ``1/L``: ``h = gamma * L``.

========================================  ===========================================  ========  =========
rate                                      formula                                      tight     reference
========================================  ===========================================  ========  =========
:func:`gd_unit_step_rate`                 ``L / (4N + 2)``, GD, gamma = 1/L            yes       [DT14]
:func:`gd_rate`                           ``(L/2) max(1/(2Nh + 1), (1 - h)^(2N))``,     yes       [Kim24]
                                          GD, constant step h in (0, 2)
:func:`prox_grad_unit_step_rate`          ``L / (4N)``, proximal gradient, gamma = 1/L  yes       [THG18]
:func:`classical_sublinear_rate`          ``L / (2N)`` (Beck-Teboulle), gamma = 1/L     no        [BT09]
:func:`distance_rate`                     ``max((1 - h mu/L)^2, (1 - h)^2)^N``,         yes       [THG18]
                                          ``||x_N - x*||^2`` of GD / proximal gradient
:func:`chebyshev_rate`                    ``2 rho^K / (1 + rho^(2K))``, quadratics      yes (q.)  [TW20]
:func:`chebyshev_steps`                   ``gamma_k = 2 / (L + mu + (L - mu) cos((2k+1) pi / (2K)))``
========================================  ===========================================  ========  =========

References: [DT14] Drori & Teboulle, Math. Program. 145 (2014), Thm. 3.1 (and Taylor, Hendrickx &
Glineur, Math. Program. 161 (2017)); [Kim24] J. Kim, "Exact worst-case convergence rate of gradient descent"
(arXiv 2412.04427, 2024), conjectured by Drori & Teboulle; [THG18] Taylor, Hendrickx & Glineur, "Exact
worst-case convergence rates of the proximal gradient method for composite convex minimization", JOTA 178
(2018); [BT09] Beck & Teboulle, SIAM J. Imaging Sci. 2 (2009), Thm. 3.1; [TW20] Takabe & Wadayama,
"Theoretical interpretation of learned step size in deep-unfolded gradient descent" (arXiv 2001.05142).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_int, check_scalar
from .errors import InvalidInputError

__all__ = ["symbols", "gd_unit_step_rate", "gd_unit_step_rate_expr", "gd_rate", "gd_rate_expr",
           "prox_grad_unit_step_rate", "prox_grad_unit_step_rate_expr", "classical_sublinear_rate",
           "classical_sublinear_rate_expr", "distance_rate", "distance_rate_expr", "chebyshev_steps",
           "chebyshev_steps_expr", "chebyshev_rate", "chebyshev_rate_expr"]


def symbols() -> dict[str, Any]:
    """The sympy symbols used by every ``*_expr`` function: ``N, K, k`` (positive integers), ``L, mu, h``
    (positive reals; ``h`` is the step in units of 1/L)."""
    import sympy as sp

    N, K = sp.symbols("N K", integer=True, positive=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    L, mu, h = sp.symbols("L mu h", positive=True)
    return {"N": N, "K": K, "k": k, "L": L, "mu": mu, "h": h}


def _N(N: Any, name: str = "N") -> int:
    return check_int(N, name, minimum=1)


def _L(L: Any) -> float:
    return check_scalar(L, "L", low=0.0, low_inclusive=False)


def _mu(mu: Any, L: float, *, positive: bool = False) -> float:
    mu = check_scalar(mu, "mu", low=0.0, low_inclusive=not positive)
    if mu > L:
        raise InvalidInputError(f"mu must satisfy mu <= L; got mu={mu} > L={L}.")
    return mu


# --------------------------------------------------------------------------------------- gradient descent
def gd_unit_step_rate(N: int, L: float = 1.0) -> float:
    r"""Tight worst case of ``f(x_N) - f*`` after N steps of gradient descent with :math:`\gamma = 1/L`.

    Problem: ``f`` L-smooth convex, :math:`\|x_0 - x_\star\| \le 1`.  Value :math:`L / (4N + 2)`, attained
    by a Huber function (Drori & Teboulle 2014, Thm. 3.1).  Tight.
    """
    return _L(L) / (4 * _N(N) + 2)


def gd_unit_step_rate_expr():
    """sympy: ``L / (4 N + 2)``."""
    s = symbols()
    return s["L"] / (4 * s["N"] + 2)


def gd_rate(N: int, h: float, L: float = 1.0) -> float:
    r"""Tight worst case of ``f(x_N) - f*`` for gradient descent with constant step :math:`\gamma = h / L`.

    :math:`\frac{L}{2} \max\left(\frac{1}{2Nh + 1}, (1 - h)^{2N}\right)` for :math:`h \in (0, 2)`: the
    first term is attained by a Huber function, the second by the quadratic :math:`(L/2) x^2`.
    Conjectured by Drori & Teboulle (2014), proved by J. Kim (2024).  Tight.

    Raises
    ------
    InvalidInputError
        ``h`` outside ``(0, 2)`` (the formula does not apply there), ``N < 1`` or ``L <= 0``.
    """
    N, L = _N(N), _L(L)
    h = check_scalar(h, "h", low=0.0, high=2.0, low_inclusive=False, high_inclusive=False)
    return 0.5 * L * max(1.0 / (2 * N * h + 1), (1.0 - h) ** (2 * N))


def gd_rate_expr():
    """sympy: ``L/2 * Max(1/(2 N h + 1), (1 - h)^(2 N))``."""
    import sympy as sp

    s = symbols()
    N, h, L = s["N"], s["h"], s["L"]
    return L / 2 * sp.Max(1 / (2 * N * h + 1), (1 - h) ** (2 * N))


# ----------------------------------------------------------------------------------- proximal gradient
def prox_grad_unit_step_rate(N: int, L: float = 1.0) -> float:
    r"""Tight worst case of ``F(x_N) - F*`` after N steps of proximal gradient (ISTA) with
    :math:`\gamma = 1/L`: :math:`L / (4N)` (Taylor, Hendrickx & Glineur, JOTA 2018).  ``f`` L-smooth convex,
    ``h`` closed convex, :math:`\|x_0 - x_\star\| \le 1`.  Tight."""
    return _L(L) / (4 * _N(N))


def prox_grad_unit_step_rate_expr():
    """sympy: ``L / (4 N)``."""
    s = symbols()
    return s["L"] / (4 * s["N"])


def classical_sublinear_rate(N: int, L: float = 1.0) -> float:
    r"""The classical bound :math:`L / (2N)` on ``F(x_N) - F*`` for proximal gradient / gradient descent with
    :math:`\gamma = 1/L` (Beck & Teboulle 2009, Thm. 3.1).  An upper bound, **not** tight (twice the
    exact rate :func:`prox_grad_unit_step_rate`)."""
    return _L(L) / (2 * _N(N))


def classical_sublinear_rate_expr():
    """sympy: ``L / (2 N)``."""
    s = symbols()
    return s["L"] / (2 * s["N"])


def distance_rate(N: int, h: float, L: float = 1.0, mu: float = 0.0) -> float:
    r"""Tight worst case of :math:`\|x_N - x_\star\|^2` for gradient descent or proximal gradient with
    constant step :math:`\gamma = h/L`: :math:`\max((1 - h\mu/L)^2, (1 - h)^2)^N`.

    Each step is :math:`\max(|1 - \gamma\mu|, |1 - \gamma L|)`-Lipschitz (Taylor, Hendrickx & Glineur,
    JOTA 2018, Thm. 3.1; the prox is nonexpansive), and the quadratics :math:`(\mu/2)x^2`, :math:`(L/2)x^2`
    with ``h = 0`` attain it.  Tight for every ``h > 0``.
    """
    N, L = _N(N), _L(L)
    mu = _mu(mu, L)
    h = check_scalar(h, "h", low=0.0, low_inclusive=False)
    return max((1.0 - h * mu / L) ** 2, (1.0 - h) ** 2) ** N


def distance_rate_expr():
    """sympy: ``Max((1 - h mu / L)^2, (1 - h)^2)^N``."""
    import sympy as sp

    s = symbols()
    N, h, L, mu = s["N"], s["h"], s["L"], s["mu"]
    return sp.Max((1 - h * mu / L) ** 2, (1 - h) ** 2) ** N


# ------------------------------------------------------------------------------------------ Chebyshev
def chebyshev_steps(K: int, L: float = 1.0, mu: float = 0.1) -> np.ndarray:
    r"""Chebyshev step sizes for K steps on quadratics with Hessian spectrum in :math:`[\mu, L]`, in units
    of 1/L (``steps[k] = gamma_k * L``, ready for :func:`unfoldtheory.convergence.worst_case`).

    :math:`\gamma_k = 2 / ((L + \mu) + (L - \mu)\cos((2k+1)\pi / (2K)))`, ``k = 0..K-1``: the reciprocals
    of the roots of the Chebyshev polynomial mapped to :math:`[\mu, L]` (Takabe & Wadayama 2020).  The
    largest steps are far beyond 2/L; the schedule is optimal on quadratics only.
    """
    K, L = _N(K, "K"), _L(L)
    mu = _mu(mu, L, positive=True)
    k = np.arange(K)
    gam = 2.0 / ((L + mu) + (L - mu) * np.cos((2 * k + 1) * np.pi / (2 * K)))
    return gam * L


def chebyshev_steps_expr():
    """sympy: ``gamma_k = 2 / ((L + mu) + (L - mu) cos((2k+1) pi / (2K)))`` (absolute step, not times L)."""
    import sympy as sp

    s = symbols()
    k, K, L, mu = s["k"], s["K"], s["L"], s["mu"]
    return 2 / ((L + mu) + (L - mu) * sp.cos((2 * k + 1) * sp.pi / (2 * K)))


def chebyshev_rate(K: int, L: float = 1.0, mu: float = 0.1) -> float:
    r""":math:`\max_{\lambda \in [\mu, L]} |\prod_k (1 - \gamma_k \lambda)|` for the Chebyshev steps:
    :math:`2\rho^K / (1 + \rho^{2K})` with :math:`\rho = (\sqrt\kappa - 1)/(\sqrt\kappa + 1)`,
    :math:`\kappa = L/\mu`.  It is the contraction factor of :math:`\|x_K - x_\star\|` on quadratics (tight
    there: the minimax polynomial); over all of :math:`F_{\mu,L}` the worst case is much larger.
    """
    K, L = _N(K, "K"), _L(L)
    mu = _mu(mu, L, positive=True)
    kappa = L / mu
    rho = (math.sqrt(kappa) - 1.0) / (math.sqrt(kappa) + 1.0)
    return 2.0 * rho ** K / (1.0 + rho ** (2 * K))


def chebyshev_rate_expr():
    """sympy: ``2 rho^K / (1 + rho^(2K))``, ``rho = (sqrt(L/mu) - 1) / (sqrt(L/mu) + 1)``."""
    import sympy as sp

    s = symbols()
    K, L, mu = s["K"], s["L"], s["mu"]
    rho = (sp.sqrt(L / mu) - 1) / (sp.sqrt(L / mu) + 1)
    return 2 * rho ** K / (1 + rho ** (2 * K))
