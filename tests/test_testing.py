"""unfoldtheory.testing: strategies, the property suite on the zoo, and mutation tests (deliberately broken zoo
variants must each be caught by the property that names their bug, with a shrunk, replayable counterexample)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import unfoldtheory as ut
from unfoldtheory.form import SoftThreshold
from unfoldtheory.models import (ALISTA, ISTA, LISTA, LISTACP, LISTACPSS, CorrectedISTA, HyperLISTA, LearnedProxISTA,
                                 LearnedStepISTA, TiLISTA, UnfoldedADMM, UnfoldedFISTA, UnfoldedRPCA)
from unfoldtheory.models.base import chain_form
from unfoldtheory.models.functional import soft_threshold
from unfoldtheory.testing import strategies as uts

pytestmark = pytest.mark.usefixtures("single_torch_thread")

F64 = dict(dtype=torch.float64, device="cpu")
K = 3

# ---------------------------------------------------------------------------------------------- the zoo


def zoo_factory(cls):
    if cls is ISTA:
        return lambda p: ISTA(p.A, K, lam=p.lam, **F64)
    if cls is UnfoldedRPCA:
        return lambda p: UnfoldedRPCA(p.shape, K, **F64)
    if cls is CorrectedISTA:
        return lambda p, seed: CorrectedISTA(p.A, K, lam=p.lam, hidden=6, seed=seed, **F64)
    if cls in (ALISTA, HyperLISTA):
        return lambda p: cls(p.A, K, **F64)
    return lambda p: cls(p.A, K, lam=p.lam, **F64)


NO_FORM = {LISTACPSS, HyperLISTA, UnfoldedRPCA}
FORM_PROPERTIES = {"form_faithful", "form_slopes", "lipschitz_sound", "contraction_sound"}
ZOO_SETTINGS = dict(max_examples=4, expensive_examples=1, sdp_time_limit=2.0)


@pytest.mark.parametrize("cls", ut.models.MODELS, ids=lambda c: c.__name__)
def test_suite_passes_on_every_zoo_model(cls):
    kw = dict(ZOO_SETTINGS)
    if cls is UnfoldedRPCA:
        kw["problems"] = uts.rpca_instances()
    report = ut.testing.check_architecture(zoo_factory(cls), **kw)
    assert report.passed, repr(report)
    statuses = {r.name: r.status for r in report}
    assert statuses["interface"] == "holds"
    if cls in NO_FORM:
        for name in FORM_PROPERTIES:
            assert statuses[name] == "not applicable", name
            assert report[name].reason
    else:
        assert statuses["form_faithful"] == "holds" and statuses["lipschitz_sound"] == "holds"
    if cls in (ISTA, LISTA, LISTACP, TiLISTA, LearnedStepISTA, UnfoldedFISTA, CorrectedISTA, LearnedProxISTA,
               UnfoldedADMM):
        assert statuses["fixed_point"] == "holds" and statuses["deep_convergence"] == "holds"
    if cls is ISTA:
        assert statuses["declared:nonexpansive_layers"] == "holds"
        assert statuses["declared:monotone_objective"] == "holds"
        assert statuses["gradients"] == "not applicable"
    if not torch.cuda.is_available():
        assert statuses["device_consistent"] == "not applicable"


def test_unfolded_rpca_gradient_is_finite_on_rank_deficient_input():
    # the suite's shrunk counterexample of a bug it found (fixed): rank 1 plus one sparse entry (a zero singular
    # value); the matrix entering layer 2 depends on the parameters, and torch's generic SVD backward divided by
    # it (NaN); the library's SVT has its own backward
    M = torch.tensor([[0.04901883069540579, 0.04692344606675103, -0.09641575644477594, -0.06841478896566629,
                       1.0080001844358009, -0.03458941541009088],
                      [0.03585253037795242, 0.03431995932338869, -0.07051879426355982, -0.05003879661949267,
                       0.00585136061886221, -0.02529880964423182],
                      [-0.20055783854622775, -0.1919846880633588, 0.3944797425813773, 0.27991533059633616,
                       -0.03273231277966339, 0.1415206828235416]], dtype=torch.float64)
    net = UnfoldedRPCA((3, 6), 2, **F64)
    L, S = net(M)
    (L.sum() + S.sum()).backward()
    assert torch.isfinite(net.tau.grad).all() and torch.isfinite(net.lam.grad).all()


class _GenericSVDRPCA(UnfoldedRPCA):
    """Mutation: unfolded RPCA with torch's generic SVD backward (NaN at repeated or zero singular values)."""

    def _iterate(self, M):
        def svt(X, tau):
            U, s, Vh = torch.linalg.svd(X, full_matrices=False)
            return (U * torch.relu(s - tau).unsqueeze(-2)) @ Vh

        S = torch.zeros_like(M)
        for k in range(self.num_layers):
            L = svt(M - S, self.tau[k])
            S = torch.sign(M - L) * torch.relu((M - L).abs() - self.lam[k])
            yield L, S


@pytest.mark.parametrize("seed", range(20))
def test_suite_finds_the_generic_svd_gradient_bug(seed):
    """On every seed: the generic SVD backward fails `gradients` (at constructed exactly degenerate inputs, not
    by the luck of the draw), the library's SVT passes."""
    report = ut.testing.check_architecture(lambda p: _GenericSVDRPCA(p.shape, K, **F64), problems=uts.rpca_instances(),
                                           properties=["gradients"], max_examples=3, seed=seed)
    assert report.failures == ["gradients"]
    assert "non-finite gradient" in report["gradients"].reason
    ok = ut.testing.check_architecture(lambda p: UnfoldedRPCA(p.shape, K, **F64), problems=uts.rpca_instances(),
                                       properties=["gradients"], max_examples=3, seed=seed)
    assert ok.failures == []


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 32 - 1))
def test_degenerate_matrices_are_exactly_degenerate(n1, n2, seed):
    M = uts.degenerate_matrices(n1, n2, 2, seed)
    for Mi in M:
        s = np.linalg.svd(Mi, compute_uv=False)
        assert s[0] > 0
        if min(n1, n2) >= 2:  # an exact zero or an exact tie, on any BLAS
            assert s[-1] == 0.0 or len(set(s.tolist())) < len(s)
    assert {np.abs(v) for v in np.unique(M)} <= {0.0, 0.5, 1.0, 2.0, 4.0}


# ---------------------------------------------------------------------------------------------- mutations


class NoInjectionLISTA(LISTA):
    """Bug: the form drops the input injection W1 y after the first layer."""

    def form(self):
        form = super().form()
        for blk in form.blocks[1:]:
            blk.B = None
        return form


class ThresholdTimesL(ISTA):
    """Bug: the threshold is lam * L instead of lam / L (= step * lam)."""

    @property
    def threshold(self):
        return self.lam * self.L


class SteepSoftThreshold(SoftThreshold):
    """Slope 1.5 on the active part, but still declares the soft threshold's slopes [0, 1]."""

    def __call__(self, z):
        return 1.5 * super().__call__(z)

    def derivative(self, z):
        return 1.5 * super().derivative(z)


class SteepLISTA(LISTA):
    """Bug: the activation 1.5 * soft threshold exceeds its declared slope interval [0, 1]."""

    def _iterate(self, y):
        for x in self._steep(y):
            yield x

    def _steep(self, y):
        x = None
        for k in range(self.num_layers):
            z = y @ self.W1[k].T if x is None else y @ self.W1[k].T + x @ self.W2[k].T
            x = 1.5 * soft_threshold(z, self.theta[k])
            yield x

    def form(self):
        form = super().form()
        for blk in form.blocks:
            blk.activation = SteepSoftThreshold(blk.activation.theta, size=blk.size)
        return form


class SupportSelectionDeclaredContinuous(LISTACPSS):
    """Bug: a discontinuous layer (support selection) declared continuous by returning the plain chain form."""

    def form(self):
        w = self.weights()
        return chain_form(self.m, w["W1"], w["W2"], w["theta"], name="LISTACPSS declared continuous")


class DetachedThreshold(LearnedStepISTA):
    """Bug: the thresholds are detached, so they receive no gradient."""

    def threshold(self, k):
        return self.theta[k].detach()


class BatchCoupledLISTA(LISTA):
    """Bug: the threshold is scaled by a statistic of the whole batch, so instances interact."""

    def _iterate(self, y):
        scale = y.abs().mean()
        x = None
        for k in range(self.num_layers):
            z = y @ self.W1[k].T if x is None else y @ self.W1[k].T + x @ self.W2[k].T
            x = soft_threshold(z, self.theta[k] * scale)
            yield x


class OverstepISTA(ISTA):
    """Bug in a declaration: step 2.5/L (gamma L > 2) but the layers are declared nonexpansive."""

    declared_properties = ("nonexpansive_layers",)


def _overstep(p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OverstepISTA(p.A, K, lam=p.lam, step=2.5 / p.L, **F64)


def _unseeded(p):
    net = LISTA(p.A, K, lam=p.lam, **F64)
    with torch.no_grad():
        net.W1.add_(1e-3 * torch.randn(net.W1.shape, dtype=torch.float64))  # global RNG, no seed
    return net


MUTATIONS = [
    # (id, factory, properties run, the property that must fail)
    ("form-without-input-injection", lambda p: NoInjectionLISTA(p.A, K, lam=p.lam, **F64),
     ["interface", "form_faithful", "batch_consistent"], "form_faithful"),
    ("threshold-times-L", lambda p: ThresholdTimesL(p.A, K, lam=p.lam, **F64),
     ["interface", "form_faithful", "fixed_point"], "fixed_point"),
    ("slope-outside-declared-interval", lambda p: SteepLISTA(p.A, K, lam=p.lam, **F64),
     ["form_faithful", "form_slopes"], "form_slopes"),
    ("discontinuous-declared-continuous", lambda p: SupportSelectionDeclaredContinuous(p.A, K, lam=p.lam, **F64),
     ["interface", "form_faithful"], "form_faithful"),
    ("parameter-without-gradient", lambda p: DetachedThreshold(p.A, K, lam=p.lam, **F64),
     ["interface", "gradients"], "gradients"),
    ("batch-coupled", lambda p: BatchCoupledLISTA(p.A, K, lam=p.lam, **F64),
     ["interface", "batch_consistent"], "batch_consistent"),
    ("unseeded-factory", _unseeded, ["interface", "deterministic"], "deterministic"),
    ("declared-nonexpansive-with-gamma-L-2.5", _overstep, ["interface", "declared"], "declared:nonexpansive_layers"),
]


@pytest.mark.parametrize("factory, props, culprit", [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught_by_the_right_property(factory, props, culprit):
    report = ut.testing.check_architecture(factory, properties=props, max_examples=15, expensive_examples=5)
    assert not report.passed
    assert report.failures == [culprit], repr(report)
    res = report[culprit]
    cex = res.counterexample
    assert cex is not None and res.reason
    inst = cex["instance"]
    # shrunk: hypothesis minimises the sizes towards their lower bounds (m >= 3, batch >= 1)
    assert inst.y.shape[0] <= 2 and inst.problem.A.shape[0] <= 4, res.describe_counterexample()
    with pytest.raises(AssertionError):
        res.replay()
    assert culprit in repr(report) and "replay" in repr(report)


def test_discontinuity_also_breaks_the_lipschitz_certificate():
    report = ut.testing.check_architecture(lambda p: SupportSelectionDeclaredContinuous(p.A, K, lam=p.lam, **F64),
                                           properties=["lipschitz_sound"], max_examples=5, expensive_examples=3,
                                           lipschitz_methods=("naive",))
    assert report.failures == ["lipschitz_sound"]
    assert "below the lower bound" in report["lipschitz_sound"].reason


def test_full_suite_on_a_mutant_names_only_its_bug():
    report = ut.testing.check_architecture(lambda p: DetachedThreshold(p.A, K, lam=p.lam, **F64), max_examples=5,
                                           expensive_examples=1, sdp_time_limit=2.0)
    assert report.failures == ["gradients"]
    assert "'theta' receives no gradient" in report["gradients"].reason
    with pytest.raises(ut.testing.ArchitectureCheckError, match="gradients"):
        report.raise_if_failed()


# ---------------------------------------------------------------------------------------------- declarations


def test_user_declarations_and_withdrawal():
    prob = ut.problems.Lasso(uts.conditioned_matrix(4, 6, 0, 2.0, 1.5), 0.1)
    net = LISTA(prob.A, K, lam=0.1, **F64)
    decl = ut.testing.declarations(net)
    assert decl.source == "zoo" and decl.algorithm == "ISTA" and decl.classical_problem.lam == 0.1
    net.classical_problem = None
    decl = ut.testing.declarations(net)
    assert decl.classical_problem is None and "None" in decl.reason

    class Custom(LISTA):
        declared_properties = {"small_output": lambda model, inst: None}

    assert "small_output" in ut.testing.declarations(Custom(prob.A, K, **F64)).properties

    class Bad(LISTA):
        declared_properties = ("no_such_builtin",)

    with pytest.raises(ut.InvalidInputError, match="not a built-in property"):
        ut.testing.declarations(Bad(prob.A, K, **F64))


def test_custom_declared_property_failure_is_reported():
    class Claims(LISTA):
        def _check(model, inst):
            with torch.no_grad():
                out = model(torch.as_tensor(inst.y))
            assert float(out.abs().max()) < 1e-3, "output is not tiny"

        declared_properties = {"tiny_output": _check}

    report = ut.testing.check_architecture(lambda p: Claims(p.A, K, lam=p.lam, **F64), properties=["declared"],
                                           max_examples=5)
    assert report.failures == ["declared:tiny_output"]
    assert "output is not tiny" in report["declared:tiny_output"].reason


def test_fixed_point_layer_map_of_a_chain_form_is_the_layer():
    prob = ut.problems.Lasso(uts.conditioned_matrix(4, 7, 1, 3.0, 2.0), 0.05)
    y = np.random.default_rng(0).normal(size=(2, 4))
    net = ISTA(prob.A, 3, lam=prob.lam, **F64)
    with torch.no_grad():
        xs = [x.numpy() for x in net(y, return_all=True)]
    np.testing.assert_allclose(ut.testing.form_layer_map(net.form(), 2, xs[0], y), xs[1], atol=1e-12)
    with pytest.raises(ut.InvalidInputError, match="k must be a layer"):
        ut.testing.form_layer_map(net.form(), 4, xs[0], y)


# ---------------------------------------------------------------------------------------------- reports, settings


def test_runs_are_reproducible_under_a_seed():
    factory = MUTATIONS[0][1]
    a = ut.testing.check_architecture(factory, properties=["form_faithful"], max_examples=8, seed=3)
    b = ut.testing.check_architecture(factory, properties=["form_faithful"], max_examples=8, seed=3)
    assert a["form_faithful"].describe_counterexample() == b["form_faithful"].describe_counterexample()
    np.testing.assert_array_equal(a["form_faithful"].counterexample["instance"].y,
                                  b["form_faithful"].counterexample["instance"].y)


def test_report_api_and_validation():
    report = ut.testing.check_architecture(zoo_factory(LISTA), properties=["interface", "device_consistent"],
                                           max_examples=2)
    assert report.passed and set(report.results) == {"interface", "device_consistent"}
    assert report.raise_if_failed() is report
    assert "interface" in report.table() and "PASSED" in repr(report)
    with pytest.raises(ut.InvalidInputError, match="no property"):
        report["nope"]
    with pytest.raises(ut.InvalidInputError, match="no counterexample"):
        report["interface"].replay()
    with pytest.raises(ut.InvalidInputError, match="model_factory"):
        ut.testing.check_architecture(42)
    with pytest.raises(ut.InvalidInputError, match="max_examples"):
        ut.testing.check_architecture(zoo_factory(LISTA), max_examples=0)
    with pytest.raises(ut.InvalidInputError, match="unknown property"):
        ut.testing.check_architecture(zoo_factory(LISTA), properties=["form_faithfull"])
    with pytest.raises(ut.InvalidInputError, match="settings"):
        ut.testing.check_architecture(zoo_factory(LISTA), settings={"max_examples": 3})


def test_factory_returning_a_non_module_fails_interface():
    report = ut.testing.check_architecture(lambda p: "not a model", properties=["interface"], max_examples=2)
    assert report.failures == ["interface"] and "not a torch.nn.Module" in report["interface"].reason


def test_assert_architecture_fixture_style():
    report = ut.testing.assert_architecture(zoo_factory(ISTA), properties=["fixed_point", "declared"],
                                            max_examples=3, expensive_examples=2)
    assert report["fixed_point"].passed


# ---------------------------------------------------------------------------------------------- strategies


@settings(max_examples=20, deadline=None)
@given(A=uts.measurement_matrices(m=(2, 5), n=(3, 9), condition=(1.0, 50.0), norm=(0.5, 3.0)))
def test_measurement_matrices_shapes_and_conditioning(A):
    m, n = A.shape
    assert 2 <= m <= 5 and m < n <= 9
    s = np.linalg.svd(A, compute_uv=False)
    assert 0.5 - 1e-9 <= s[0] <= 3.0 + 1e-9
    assert s[0] / s[-1] <= 50.0 * (1 + 1e-6)


@settings(max_examples=20, deadline=None)
@given(inst=uts.problem_instances(m=4, n=(6, 8), batch=(2, 3), support=(1, 2)))
def test_problem_instances_are_consistent(inst):
    A = inst.problem.A
    assert A.shape[0] == 4 and inst.y.shape == (inst.batch, 4) and 2 <= inst.batch <= 3
    assert ((inst.x != 0).sum(axis=1) <= 2).all()
    np.testing.assert_allclose(inst.y, inst.x @ A.T, atol=20 * inst.noise + 1e-12)


@settings(max_examples=15, deadline=None)
@given(t=uts.tensors((3, 4), dtype=torch.float64), u=uts.tensors(st.just((2,)), dtype=torch.float32))
def test_tensors_have_pinned_layout(t, u):
    assert t.dtype == torch.float64 and t.device.type == "cpu" and t.is_contiguous() and t.shape == (3, 4)
    assert u.dtype == torch.float32 and u.shape == (2,)


@settings(max_examples=30, deadline=None)
@given(steps=uts.step_schedules((2, 5), L=4.0), th=uts.thresholds(3, size=5, max_value=0.5),
       y=uts.observations(6, extreme=True))
def test_schedules_thresholds_observations(steps, th, y):
    assert 2 <= steps.shape[0] <= 5 and np.all(steps * 4.0 >= 0.05 - 1e-12) and np.all(steps * 4.0 <= 2.5 + 1e-12)
    assert th.shape == (3, 5) and th.min() >= 0 and th.max() <= 0.5
    assert y.shape[1] == 6 and np.isfinite(y).all()


def test_step_schedules_reach_divergent_steps():
    from hypothesis import find

    steps = find(uts.step_schedules(3, L=2.0), lambda s: np.any(s * 2.0 > 2.0))
    assert np.any(steps * 2.0 > 2.0)


@settings(max_examples=10, deadline=None)
@given(w=uts.lista_weights(3, 5, 2), net=uts.models(UnfoldedFISTA, num_layers=2))
def test_weights_and_model_strategies(w, net):
    assert len(w["W1"]) == len(w["W2"]) == len(w["theta"]) == 2 and min(w["theta"]) >= 0
    lista = LISTA.from_weights(**w, **F64)
    assert lista.form().num_layers == 2
    assert isinstance(net, UnfoldedFISTA) and net.num_layers == 2 and (net.theta >= 0).all()


def test_strategy_validation():
    with pytest.raises(ut.InvalidInputError, match="m must be"):
        uts.measurement_matrices(m=(5, 2))
    with pytest.raises(ut.InvalidInputError, match="L must be"):
        uts.step_schedules(3, L=0.0)
    with pytest.raises(ut.InvalidInputError, match="weights must be"):
        uts.models(LISTA, weights="trained")
    with pytest.raises(ut.InvalidInputError, match="kind must be"):
        uts.perturb_parameters(LISTA(np.eye(2), 1), 0.1, 0, kind="bad")
