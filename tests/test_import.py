"""Importing the package is light: no cvxpy, sympy or hypothesis at import time."""

import json
import subprocess
import sys


def test_import_does_not_load_heavy_optional_modules():
    code = ("import sys, json, unfoldtheory as ut; "
            "print(json.dumps({m: m in sys.modules for m in ['cvxpy', 'sympy', 'hypothesis', 'matplotlib']}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"cvxpy": False, "sympy": False, "hypothesis": False, "matplotlib": False}


def test_public_names_exist():
    import unfoldtheory as ut

    assert callable(ut.reference.solve)
    assert issubclass(ut.InvalidInputError, ValueError)
    assert issubclass(ut.NotRepresentableError, TypeError)
    assert issubclass(ut.SolverError, RuntimeError)
    for name in ["Lasso", "RPCA", "SparseRecovery", "low_rank_plus_sparse"]:
        assert hasattr(ut.problems, name)
    for name in ["ISTA", "LISTA"]:
        assert hasattr(ut.models, name)
