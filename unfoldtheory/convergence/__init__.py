"""Convergence certificates: worst-case performance of step-size schedules (PEP) and ALISTA coherences.

worst_case                 exact worst case of N steps of gradient descent / proximal gradient (with or
                           without momentum) or ADMM over smooth (strongly) convex functions, for any step,
                           momentum or penalty schedule, or the schedule read from a zoo model (PEP), as a
                           certified upper :class:`~unfoldtheory.bounds.Bound` (docs/theory/pep.md)
worst_case_per_layer       the certified worst case after every layer of a network's schedule
schedule_of                the method and schedule a network runs (zoo classes, or read from the analysis form
                           of your own module: schedule_of_form), as a Schedule
quadratic_lower_bound      the worst case over 1-D quadratics of the class (attained, a lower bound)
check_nested_classes       class-inclusion monotonicity check for two results
pepit_worst_case           the same problem built and solved by PEPit (optional; an independent reference)
generalized_coherence      ALISTA Definition 1: minimax weight and generalized mutual coherence
generalized_coherence_certificate  the same with the certified per-column bracket and how each column was solved
analytic_weight            ALISTA stage 1: the closed-form (Frobenius) weight
mutual_coherence           the classical mutual coherence
lista_cp_coupling          LISTA-CP Thm 1: per-layer coupling residual W2_k - (I - W1_k A) and thresholds
alista_theorem_check       ALISTA Thm 1: assumptions, no false positives and the certified error bound
alista_oracle_thresholds   the thresholds of ALISTA Thm 1 (eq. 10) over a set of instances
fixed_support_instances    noiseless instances with exactly s nonzeros (the theorem's regime)
convergence_profile        observed per-layer errors against the reference optimum and the certified rates

cvxpy is imported only when a solve runs.
"""

from ..coherence import (CoherenceCertificate, analytic_weight, generalized_coherence,
                         generalized_coherence_certificate, mutual_coherence)
from ._empirical import ConvergenceProfile, convergence_profile
from ._pep import check_nested_classes, quadratic_lower_bound, worst_case
from ._pepit import pepit_worst_case
from ._per_layer import worst_case_per_layer
from ._schedules import Schedule, initial_distance2, schedule_of, schedule_of_form
from ._theorems import (AlistaCheck, CouplingResult, alista_oracle_thresholds, alista_theorem_check,
                        fixed_support_instances, lista_cp_coupling)

__all__ = ["worst_case", "worst_case_per_layer", "schedule_of", "schedule_of_form", "Schedule", "initial_distance2",
           "quadratic_lower_bound", "check_nested_classes", "pepit_worst_case", "generalized_coherence",
           "generalized_coherence_certificate", "CoherenceCertificate", "analytic_weight", "mutual_coherence", "lista_cp_coupling", "CouplingResult", "alista_theorem_check",
           "AlistaCheck", "alista_oracle_thresholds", "fixed_support_instances", "convergence_profile",
           "ConvergenceProfile"]
