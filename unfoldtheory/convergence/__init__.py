"""Convergence certificates: worst-case performance of step-size schedules (PEP) and ALISTA coherences.

worst_case                 exact worst case of N steps of gradient descent / proximal gradient over smooth
                           (strongly) convex functions, for any step schedule (PEP, cvxpy), as a certified
                           upper :class:`~unfoldtheory.bounds.Bound`
quadratic_lower_bound      the worst case over 1-D quadratics of the class (attained, a lower bound)
check_nested_classes       class-inclusion monotonicity check for two results
generalized_coherence      ALISTA Definition 1: minimax weight and generalized mutual coherence
analytic_weight            ALISTA stage 1: the closed-form (Frobenius) weight
mutual_coherence           the classical mutual coherence

cvxpy is imported only when a solve runs.
"""

from ..coherence import analytic_weight, generalized_coherence, mutual_coherence
from ._pep import check_nested_classes, quadratic_lower_bound, worst_case

__all__ = ["worst_case", "quadratic_lower_bound", "check_nested_classes", "generalized_coherence",
           "analytic_weight", "mutual_coherence"]
