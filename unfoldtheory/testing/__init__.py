r"""Property-testing toolkit for new unfolded architectures, built on hypothesis (imported lazily).

One call checks what the theory relies on::

    import unfoldtheory as ut

    def factory(problem, seed):                      # problem: ut.problems.Lasso
        return MyUnrolledNet(problem.A, num_layers=4, lam=problem.lam, dtype=torch.float64, device="cpu")

    report = ut.testing.check_architecture(factory)  # ~10-30 s on one CPU core
    report.passed                                    # False if any property failed
    report["form_faithful"].counterexample           # the shrunk falsifying example
    report["form_faithful"].replay()                 # re-raise the failure without hypothesis
    report.raise_if_failed()                         # inside a pytest test (or ut.testing.assert_architecture)

Declaring a new architecture
----------------------------
The minimal interface is that of :class:`unfoldtheory.models.UnfoldedNetwork` (subclass it to get input
validation, devices and ``return_all`` for free, implementing ``_iterate``):

``forward(y, return_all=False)``
    ``y``: a (batch, m) tensor (the suite always passes tensors of the model's dtype and device); returns
    ``x_K`` (batch, n), or a tuple of tensors (e.g. RPCA's ``(L, S)``); with ``return_all=True`` the list
    ``[x_1, ..., x_K]``.  ``num_layers`` (optional attribute) is compared with the length of that list.
``form()`` (optional)
    The analysis form (:class:`unfoldtheory.form.Form`); raise :class:`~unfoldtheory.errors.NotRepresentableError`
    (with the reason) when the layers are not elementwise or not continuous.  Form-based properties are then
    *not applicable* rather than failed.
``nonnegative`` (optional)
    Names of parameters that must stay >= 0 (thresholds) when the suite perturbs the weights; entirely
    nonnegative parameters are kept nonnegative anyway.
Declarations (optional; see :mod:`unfoldtheory.testing.declarations`)
    ``classical_problem()`` (the LASSO solved by the classical algorithm the network equals at initialisation),
    ``fixed_point_layer(k, x, y)``, ``with_layers(num_layers)``, ``convergence_rate(num_layers, x_star)``,
    ``declared_properties`` (e.g.
    ``("nonexpansive_layers", "monotone_objective")`` or ``{name: check(model, instance)}``) and
    ``no_gradient``.  Zoo models get theirs from :func:`declarations`.

Properties
----------
==================  ============================================================================================
``interface``       the factory returns a torch module; ``forward(y)`` equals the last of ``return_all``
``form_faithful``   ``form().evaluate(y)`` equals ``forward(y)`` (float64, every layer, near-trained weights)
``form_slopes``     each activation of the form stays in its declared slope interval (difference quotients,
                    also across its kinks: catches steep or discontinuous activations declared as [0, 1])
``lipschitz_sound`` certified upper bounds (naive, layerwise, lipsdp) >= lower bounds attained on the torch
                    model (PGD attack, sampled secants, bisection along segments, which blows up at a jump)
``contraction_sound`` certified per-layer / end-to-end contraction >= observed contraction (chain forms)
``fixed_point``     the certified LASSO optimum (:func:`unfoldtheory.reference.solve`) is a fixed point of every
                    layer that reads the state (declared classical algorithm at initialisation)
``deep_convergence`` the declared algorithm unrolled to ``num_deep_layers`` converges to the optimum: within its
                    proven rate when declared (ISTA: :math:`\|x^\star\|^2/(2\gamma K)`, FISTA:
                    :math:`2L\|x^\star\|^2/(K+1)^2`, Beck & Teboulle 2009), else the objective gap is ~0 or
                    still shrinks by 10% from K/10 to K layers
``batch_consistent`` outputs independent of batching and batch order; unbatched input = batch of one
``dtype_consistent`` float32 and float64 copies agree (relative ``float32_rtol``) and keep their dtype
``device_consistent`` CPU and CUDA copies agree (not applicable without a GPU)
``deterministic``   the same problem and seed give the same weights and outputs
``gradients``       every trainable parameter receives a finite, nonzero gradient (``no_gradient`` excepted)
``finite_outputs``  finite outputs for zero, tiny (1e-30) and huge (1e8; 1e15 in float64) inputs
``declared:<name>`` the model's own declared properties
==================  ============================================================================================

Going deeper
------------
``max_examples`` (cheap properties, default 25) and ``expensive_examples`` (certificates and reference optima,
default ``max(2, max_examples // 5)``) set the search effort; ``max_examples=None`` takes the active hypothesis
profile's value (``settings.load_profile("thorough")``, or pass ``settings=settings.get_profile(...)``).
``seed`` fixes the examples (reproducible runs); ``problems`` changes the distribution of problem instances
(e.g. ``strategies.problem_instances(m=(20, 40), n=(40, 80), condition=(1, 100))``).

Strategies
----------
:mod:`unfoldtheory.testing.strategies`: problem instances, measurement matrices of given conditioning, sparse
signals, noise levels, batches of inputs (including extreme ones), torch tensors with pinned dtype/device/layout,
step-size schedules (including :math:`\gamma L > 2`), thresholds, LISTA weights and zoo models with random or
near-trained weights.

A pytest fixture is available from :mod:`unfoldtheory.testing.pytest_plugin`.
"""

from . import strategies
from .declarations import BUILTIN_DECLARED, Declarations, declarations, form_layer_map
from .strategies import ProblemInstance, perturb_parameters
from .suite import (FAILED, NOT_APPLICABLE, PASSED, PROPERTIES, ArchitectureCheckError, ArchitectureReport,
                    PropertyResult, assert_architecture, check_architecture)

__all__ = ["check_architecture", "assert_architecture", "ArchitectureReport", "PropertyResult",
           "ArchitectureCheckError", "PROPERTIES", "PASSED", "FAILED", "NOT_APPLICABLE", "strategies",
           "ProblemInstance", "perturb_parameters", "Declarations", "declarations", "form_layer_map",
           "BUILTIN_DECLARED"]
