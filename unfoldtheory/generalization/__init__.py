"""Generalization bounds for unfolded networks (kl inverse, sample-convergence, PAC-Bayes, uniform bounds).

Under construction (issue 6).
"""

__all__: list[str] = []
