"""The verification suite: claims of the theory of deep unfolding checked against trained networks.

A :class:`Claim` names a result (paper, theorem, or the library's own certificate), the models and data it
needs, how to compute the bound, how to measure its empirical counterpart and the relation that must hold
(``<=``, ``>=`` or ``approx``).  :func:`run` trains the models once (cached on disk by configuration hash),
checks every claim and writes ``report.md``, ``results.json`` (schema :func:`results_schema`) and figures.
A claim whose assumptions fail on the model is "not applicable", never "holds"; a violated claim or one that
raises makes the exit status non-zero, and the run goes on.

    unfoldtheory verify --profile quick --out verification/out/quick     # the README's main command
    python -c "import unfoldtheory as ut; print(ut.suite.run('quick', 'out'))"

Writing a claim (PEPit-style: one function, one docstring)::

    from unfoldtheory.suite import Claim, Evidence

    def check(ctx):
        "ISTA's contraction certificate bounds the observed ratio."
        ...
        return Evidence(bound=bound, empirical=measured, assumptions={"step < 2/L": True})

    claim = Claim(id="contraction.mine", title="...", reference="...", topic="contraction", relation="<=",
                  check=check)
    ut.suite.run("quick", "out", claims=[claim])
"""

from ._context import PROFILES, Context, Profile, config_hash, default_cache_dir, get_profile
from ._core import RELATIONS, STATUSES, Claim, Evidence, judge
from ._runner import SCHEMA_ID, Results, catalogue, run, select
from ._schema import results_schema, validate_results
from ._sweep import SweepResult, sweep

__all__ = ["PROFILES", "RELATIONS", "SCHEMA_ID", "STATUSES", "Claim", "Context", "Evidence", "Profile", "Results",
           "SweepResult", "catalogue", "config_hash", "default_cache_dir", "get_profile", "judge", "results_schema", "run", "select",
           "sweep", "validate_results"]
