"""The property suite: :func:`check_architecture` runs every property with hypothesis and returns an
:class:`ArchitectureReport`."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import InvalidInputError
from ..verdicts import Verdict
from . import _properties as P
from .declarations import declarations

log = logging.getLogger(__name__)

__all__ = ["PropertyResult", "ArchitectureReport", "ArchitectureCheckError", "check_architecture",
           "assert_architecture", "PROPERTIES", "PASSED", "FAILED", "NOT_APPLICABLE"]

#: Verdicts of a property: the package's one vocabulary (:class:`~unfoldtheory.verdicts.Verdict`); the names
#: PASSED/FAILED are kept for existing callers and are ``Verdict.HOLDS`` / ``Verdict.VIOLATED``.
PASSED, FAILED, NOT_APPLICABLE = Verdict.HOLDS, Verdict.VIOLATED, Verdict.NOT_APPLICABLE

#: names of the standard properties, in the order they run (declared ones are added as ``declared:<name>``)
PROPERTIES = ("interface", "form_faithful", "form_slopes", "lipschitz_sound", "contraction_sound", "fixed_point",
              "deep_convergence", "batch_consistent", "dtype_consistent", "device_consistent", "deterministic",
              "gradients", "finite_outputs")


class ArchitectureCheckError(AssertionError):
    """Raised by :meth:`ArchitectureReport.raise_if_failed` / :func:`assert_architecture`; ``report`` holds the
    :class:`ArchitectureReport`."""

    def __init__(self, message: str, report: "ArchitectureReport"):
        super().__init__(message)
        self.report = report


@dataclass
class PropertyResult:
    """The outcome of one property.

    Attributes
    ----------
    name, description : str
    status : Verdict
        ``holds`` (the property held on every example), ``violated`` (a counterexample was found) or
        ``not applicable``.
    reason : str
        Why it failed (the message of the shrunk counterexample) or why it does not apply.
    counterexample : dict or None
        The shrunk falsifying example: ``{"instance": ProblemInstance, **extra drawn values}``.
    examples : int
        Number of examples the property was asked to run (hypothesis ``max_examples``).
    seconds : float
    error : BaseException or None
        The exception raised on the counterexample.
    """

    name: str
    description: str
    status: str
    reason: str = ""
    counterexample: dict | None = None
    examples: int = 0
    seconds: float = 0.0
    error: BaseException | None = field(default=None, repr=False)
    _replay: Callable | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def applicable(self) -> bool:
        return self.status != NOT_APPLICABLE

    def describe_counterexample(self) -> str:
        """The shrunk counterexample in one line (problem, shapes, seed, extra drawn values)."""
        if not self.counterexample:
            return ""
        inst = self.counterexample.get("instance")
        extra = {k: v for k, v in self.counterexample.items() if k != "instance"}
        head = inst.describe() if inst is not None else ""
        return head + "".join(f", {k}={v!r}" for k, v in extra.items())

    def replay(self) -> None:
        """Run the check again on the shrunk counterexample, without hypothesis: raises the failure again
        (``AssertionError`` with its message), or returns ``None`` if it no longer fails."""
        if self._replay is None:
            raise InvalidInputError(f"property {self.name!r} has no counterexample to replay (status "
                                    f"{self.status!r}).")
        self._replay()

    def __repr__(self) -> str:
        text = f"PropertyResult({self.name!r}: {self.status}"
        if self.reason:
            text += f"; {self.reason}"
        if self.counterexample:
            text += f"; counterexample: {self.describe_counterexample()}"
        return text + ")"


@dataclass
class ArchitectureReport:
    """What :func:`check_architecture` found: one :class:`PropertyResult` per property.

    ``report.passed`` is False when any property failed; ``report["name"]`` gives one result; ``repr`` is a
    table; :meth:`raise_if_failed` turns failures into an ``AssertionError`` for pytest.
    """

    model: str
    results: dict
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(r.failed for r in self.results.values())

    @property
    def failures(self) -> list[str]:
        """Names of the failed properties."""
        return [n for n, r in self.results.items() if r.failed]

    @property
    def not_applicable(self) -> list[str]:
        return [n for n, r in self.results.items() if not r.applicable]

    def __getitem__(self, name: str) -> PropertyResult:
        try:
            return self.results[name]
        except KeyError:
            raise InvalidInputError(f"no property {name!r} in this report; it has {list(self.results)}.") from None

    def __iter__(self):
        return iter(self.results.values())

    def table(self, width: int = 100) -> str:
        """A plain-text table: property, status, examples, seconds and the reason (truncated to ``width``)."""
        rows = [("property", "status", "examples", "seconds", "detail")]
        for r in self.results.values():
            detail = r.reason.replace("\n", " ")
            if len(detail) > width:
                detail = detail[: width - 3] + "..."
            rows.append((r.name, str(r.status), str(r.examples if r.applicable else "-"), f"{r.seconds:.2f}", detail))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
        lines.insert(1, "-" * min(len(lines[0]) + 20, 140))
        return "\n".join(lines)

    def summary(self) -> str:
        counts = {s: sum(r.status == s for r in self.results.values()) for s in (PASSED, FAILED, NOT_APPLICABLE)}
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"check_architecture({self.model}): {verdict} in {self.seconds:.1f} s - {counts[PASSED]} hold, "
                f"{counts[FAILED]} violated, {counts[NOT_APPLICABLE]} not applicable")

    def __repr__(self) -> str:
        text = self.summary() + "\n" + self.table()
        for r in self.results.values():
            if r.failed and r.counterexample:
                text += f"\n\n{r.name} counterexample: {r.describe_counterexample()}" \
                        f"\n  replay: report[{r.name!r}].replay()"
        return text

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(repr(self))

    def raise_if_failed(self) -> "ArchitectureReport":
        """Raise :class:`ArchitectureCheckError` (an ``AssertionError``) listing every failed property with its
        counterexample; return the report otherwise (so it chains)."""
        if not self.passed:
            raise ArchitectureCheckError(repr(self), self)
        return self


def _default_instances(problems):
    from .strategies import problem_instances

    return problem_instances() if problems is None else problems


def _hyp_settings(base, max_examples: int):
    from hypothesis import HealthCheck, Verbosity, settings

    parent = base if base is not None else settings()
    return settings(parent=parent, max_examples=max_examples, deadline=None, database=None,
                    derandomize=False, report_multiple_bugs=False, verbosity=Verbosity.quiet, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


def _run_property(prop: P.Property, instances, ctx: P.Context, hsettings, seed: int) -> PropertyResult:
    import hypothesis.strategies as st
    from hypothesis import given, reporting
    from hypothesis import seed as hseed
    from hypothesis.errors import HypothesisException, UnsatisfiedAssumption

    extra = prop.extra() if prop.extra else {}
    strategy = st.tuples(instances, st.fixed_dictionaries(extra))
    from hypothesis import reject

    failures: list = []
    known: set = set()
    first_failure: list = []

    def key(inst, drawn):
        A = getattr(inst.problem, "A", None)
        return (inst.describe(), repr(sorted(drawn.items())), inst.y.tobytes(),
                b"" if A is None else A.tobytes())

    def test(case):
        inst, drawn = case
        k = key(inst, drawn)
        if first_failure and k not in known and time.perf_counter() - first_failure[0] > ctx.shrink_time_limit:
            # shrink budget spent: reject new candidates; the smallest failure found so far is replayed last
            reject()
        try:
            prop.check(ctx, inst, drawn)
        except UnsatisfiedAssumption:
            raise
        except Exception as exc:
            known.add(k)
            if not first_failure:
                first_failure.append(time.perf_counter())
            failures.append((inst, dict(drawn), exc))
            raise

    wrapped = hseed(seed)(hsettings(given(strategy)(test)))
    start = time.perf_counter()
    try:
        with reporting.with_reporter(lambda msg: log.debug("%s: %s", prop.name, msg)):
            wrapped()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result
        seconds = time.perf_counter() - start
        if failures:
            inst, drawn, err = failures[-1]  # hypothesis replays the shrunk example last
            cex = {"instance": inst, **drawn}
            message = f"{type(err).__name__}: {err}" if not isinstance(err, AssertionError) else str(err)
            return PropertyResult(prop.name, prop.description, FAILED, message, cex, hsettings.max_examples, seconds,
                                  err, lambda: prop.check(ctx, inst, drawn))
        kind = "hypothesis could not run the property" if isinstance(exc, HypothesisException) else "error"
        return PropertyResult(prop.name, prop.description, FAILED, f"{kind}: {type(exc).__name__}: {exc}", None,
                              hsettings.max_examples, seconds, exc)
    note = "; ".join(sorted(ctx.notes.get(prop.name, ())))
    return PropertyResult(prop.name, prop.description, PASSED, note, None, hsettings.max_examples,
                          time.perf_counter() - start)


def _probe(instances, seed: int):
    from hypothesis import Phase, find, settings

    return find(instances, lambda _: True, settings=settings(database=None, max_examples=5, deadline=None,
                                                             phases=[Phase.generate, Phase.shrink]),
                random=random.Random(seed))


def check_architecture(model_factory: Callable, *, max_examples: int | None = 25,
                       expensive_examples: int | None = None, problems: Any = None,
                       properties: Sequence[str] | None = None, skip: Sequence[str] = (), seed: int = 0,
                       settings: Any = None, num_deep_layers: int = 300, sdp_time_limit: float = 5.0,
                       lipschitz_methods: Sequence[str] = ("naive", "layerwise", "lipsdp"),
                       float32_rtol: float = 1e-3, shrink_time_limit: float = 20.0) -> ArchitectureReport:
    r"""Property-test an unfolded architecture with hypothesis.

    Parameters
    ----------
    model_factory : callable
        ``model_factory(problem)`` or ``model_factory(problem, seed)`` returns a torch module mapping a batch of
        observations (batch, m) to estimates (batch, n) (or a tuple of tensors), with
        ``forward(y, return_all=True)`` giving the list of layer outputs.  ``problem`` is a
        :class:`~unfoldtheory.problems.Lasso` (or what ``problems`` draws, e.g. RPCA).
    max_examples : int or None
        Hypothesis examples per cheap property (default 25; ``None``: the active hypothesis profile's value).
    expensive_examples : int, optional
        Examples for the expensive properties (certificates, reference optima); default
        ``max(2, max_examples // 5)``.
    problems : strategy, optional
        Strategy of :class:`~unfoldtheory.testing.strategies.ProblemInstance`; default
        :func:`~unfoldtheory.testing.strategies.problem_instances` (small LASSOs, m in 3..8, n in m+1..16,
        batches of 1..4).  Use :func:`~unfoldtheory.testing.strategies.rpca_instances` for RPCA networks.
    properties, skip : sequence of str, optional
        Run only these properties / leave these out (names of :data:`PROPERTIES`, ``"declared"`` for every
        declared property, or ``"declared:<name>"``).
    seed : int
        Seed of hypothesis (runs are reproducible: same seed, same examples, same counterexamples).
    settings : hypothesis.settings, optional
        Parent settings (e.g. ``hypothesis.settings.get_profile("thorough")``); ``deadline``, ``database`` and
        ``max_examples`` are set by this function.
    num_deep_layers : int
        Depth of the deep unrolling in ``deep_convergence``.
    sdp_time_limit : float
        Seconds per SDP certificate in ``lipschitz_sound``.
    lipschitz_methods : sequence of str
        Upper-bound methods of :func:`unfoldtheory.lipschitz.upper_bound` checked for soundness.
    float32_rtol : float
        Tolerance of ``dtype_consistent`` relative to the output scale.
    shrink_time_limit : float
        Seconds each property may spend shrinking after its first failure; then new candidates are rejected and
        the smallest counterexample found so far is reported (it still replays).

    Returns
    -------
    ArchitectureReport
        ``passed``, ``results`` (per property: passed, failed with the shrunk counterexample and ``replay()``,
        or not applicable with the reason), a table as repr, and ``raise_if_failed()``.

    Notes
    -----
    The properties (see :data:`PROPERTIES` and the module docstring of :mod:`unfoldtheory.testing`) are each a
    hypothesis test of their own with ``deadline=None``, no example database and a fixed seed.  Models are
    checked as the factory builds them and, for the form and certificate properties, with near-trained weights
    (relative Gaussian perturbations of the parameters), since a form that only matches at the (often tied)
    initialisation proves little.  Expensive properties run fewer examples.  A typical zoo model takes
    10-30 s with the defaults on one CPU core; raise ``max_examples`` (or load a hypothesis profile and pass
    ``max_examples=None``) to search harder.
    """
    if not callable(model_factory):
        raise InvalidInputError(f"model_factory must be a callable problem -> torch model; got {model_factory!r}.")
    if max_examples is not None and (isinstance(max_examples, bool) or not isinstance(max_examples, int)
                                     or max_examples < 1):
        raise InvalidInputError(f"max_examples must be a positive int or None; got {max_examples!r}.")
    if expensive_examples is not None and (isinstance(expensive_examples, bool)
                                           or not isinstance(expensive_examples, int) or expensive_examples < 1):
        raise InvalidInputError(f"expensive_examples must be a positive int; got {expensive_examples!r}.")
    if isinstance(properties, str) or isinstance(skip, str):
        raise InvalidInputError("properties and skip must be sequences of names, e.g. ['form_faithful'].")
    for name in list(properties or ()) + list(skip):
        if name not in PROPERTIES and name != "declared" and not str(name).startswith("declared:"):
            raise InvalidInputError(f"unknown property {name!r}; choose from {list(PROPERTIES)}, 'declared' or "
                                    "'declared:<name>'.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed must be an int; got {seed!r}.")
    if isinstance(shrink_time_limit, bool) or not isinstance(shrink_time_limit, (int, float)) \
            or not shrink_time_limit >= 0:
        raise InvalidInputError(f"shrink_time_limit must be a number >= 0 (seconds); got {shrink_time_limit!r}.")
    if not isinstance(num_deep_layers, int) or num_deep_layers < 1:
        raise InvalidInputError(f"num_deep_layers must be a positive int; got {num_deep_layers!r}.")
    from hypothesis import settings as hsettings_cls

    if settings is not None and not isinstance(settings, hsettings_cls):
        raise InvalidInputError(f"settings must be a hypothesis.settings object; got {type(settings).__name__}.")
    cheap = max_examples if max_examples is not None else (settings or hsettings_cls.default).max_examples
    expensive = expensive_examples if expensive_examples is not None else max(2, cheap // 5)

    start = time.perf_counter()
    ctx = P.Context(model_factory, num_deep_layers=num_deep_layers, sdp_time_limit=sdp_time_limit,
                    lipschitz_methods=tuple(lipschitz_methods), float32_rtol=float32_rtol,
                    shrink_time_limit=shrink_time_limit)
    instances = _default_instances(problems)
    probe = _probe(instances, seed)
    props = P.standard_properties()
    model_name = getattr(model_factory, "__name__", type(model_factory).__name__)
    try:
        probe_model = ctx.build(probe.problem, probe.seed)
        model_name = f"{type(probe_model).__name__} from {model_name}"
        decl = declarations(probe_model)
        for pname, check in decl.properties.items():
            props.append(P.declared_property(pname, check))
    except Exception as exc:  # noqa: BLE001 - the interface property reports it with a counterexample
        log.warning("the factory failed on the probe instance: %s", exc)

    def selected(name: str) -> bool:
        is_decl = name.startswith("declared:")
        if properties is not None and name not in properties and not (is_decl and "declared" in properties):
            return False
        return name not in skip and not (is_decl and "declared" in skip)

    hs = {n: _hyp_settings(settings, n) for n in {cheap, expensive}}
    results: dict[str, PropertyResult] = {}
    for prop in props:
        if not selected(prop.name):
            continue
        t0 = time.perf_counter()
        if prop.applicable is not None:
            try:
                prop.applicable(ctx, probe)
            except P.NotApplicable as na:
                results[prop.name] = PropertyResult(prop.name, prop.description, NOT_APPLICABLE, str(na),
                                                    seconds=time.perf_counter() - t0)
                log.info("%s: not applicable (%s)", prop.name, na)
                continue
            except Exception as exc:  # noqa: BLE001 - run it anyway: the check reports the counterexample
                log.debug("%s: applicability test raised %r; running the property", prop.name, exc)
        res = _run_property(prop, instances, ctx, hs[expensive if prop.expensive else cheap], seed)
        results[prop.name] = res
        log.info("%s: %s in %.2f s", prop.name, res.status, res.seconds)
    return ArchitectureReport(model_name, results, time.perf_counter() - start,
                              {"max_examples": cheap, "expensive_examples": expensive, "seed": seed})


def assert_architecture(model_factory: Callable, **kwargs: Any) -> ArchitectureReport:
    """:func:`check_architecture` followed by :meth:`ArchitectureReport.raise_if_failed`: one line in a pytest
    test.  Returns the report when every property passed or does not apply."""
    return check_architecture(model_factory, **kwargs).raise_if_failed()
