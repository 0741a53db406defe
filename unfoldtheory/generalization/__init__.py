"""Generalization bounds for unfolded networks: what a model guarantees on unseen instances.

kl_inverse                  sup{p : kl(q || p) <= c}, the upper inverse of the Bernoulli KL (safe side)
kl_inverse_lower            inf{p : kl(q || p) <= c} (safe side)
kl_divergence               the Bernoulli KL kl(q || p), computed without cancellation
layer_metrics               per-instance, per-layer metrics (NMSE, distance to / objective gap at the reference
                            LASSO optimum, fixed-point residual), shape (N, K)
sample_convergence_bound    test-set bound on P(metric_k > eps) for every layer of a fixed model (Sambharya &
                            Stellato), a :class:`SampleConvergenceResult`
risk_bound                  the same bound from precomputed metric values
GaussianPosterior           diagonal Gaussian over a model's parameters
PriorGrid                   the prior-variance grid lambda_j = c exp(-j/b)
gaussian_kl                 KL(N(mu, diag sigma) || N(mu0, lambda I))
pac_bayes_penalty           (KL + log(pi^2 N/(6 delta)) + 2 log j)/N
pac_bayes_bound             the two-step PAC-Bayes bound on the Gibbs risk, a :class:`PACBayesResult`
train_pac_bayes             train the posterior by minimising a PAC-Bayes surrogate, then certify it
uniform_bound               covering-number (Dudley) bound for the class of a LISTA-type model, with its
                            sympy form in depth K, width n and free parameters d, a :class:`UniformBoundResult`
uniform_bound_expression    that closed form as a sympy expression
clipped_loss                the [0, 1] loss the uniform bound controls
generalization_gap          measured train-vs-test risk over training-set sizes (the empirical counterpart)
plot_generalization         figure of bounds against measured gaps (matplotlib, imported lazily)
FiniteSample                a fixed training set usable as a data generator by training.train

Every bound is statistical: ``certified=True`` on the :class:`~unfoldtheory.bounds.Bound` it gives means
"holds with the probability stated in ``checks['confidence']``", and the kl inverses are rounded to the safe
side.  sympy and matplotlib are imported only by the functions that need them.
"""

from ._kl import kl_divergence, kl_inverse, kl_inverse_lower
from ._metrics import METRICS, layer_metrics
from ._pacbayes import (GaussianPosterior, PACBayesResult, PACBayesTraining, PriorGrid, gaussian_kl, pac_bayes_bound,
                        pac_bayes_penalty, train_pac_bayes)
from ._sample import SampleConvergenceResult, risk_bound, sample_convergence_bound
from ._uniform import UniformBoundResult, clipped_loss, uniform_bound, uniform_bound_expression
from ._empirical import FiniteSample, GapPoint, generalization_gap, plot_generalization

__all__ = ["kl_inverse", "kl_inverse_lower", "kl_divergence", "METRICS", "layer_metrics",
           "sample_convergence_bound", "risk_bound", "SampleConvergenceResult", "GaussianPosterior", "PriorGrid",
           "gaussian_kl", "pac_bayes_penalty", "pac_bayes_bound", "train_pac_bayes", "PACBayesResult",
           "PACBayesTraining", "uniform_bound", "uniform_bound_expression", "UniformBoundResult", "clipped_loss",
           "generalization_gap", "plot_generalization", "GapPoint", "FiniteSample"]
