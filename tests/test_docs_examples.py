"""The documentation's code runs: every docstring example of the package (doctest) and the README's short
example, so neither can rot."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import unfoldtheory

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    names = ["unfoldtheory"]
    for info in pkgutil.walk_packages(unfoldtheory.__path__, "unfoldtheory."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_docstring_examples_run():
    attempted, failures = 0, []
    for name in _modules():
        module = importlib.import_module(name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
        attempted += result.attempted
        if result.failed:
            failures.append(f"{name}: {result.failed} of {result.attempted} failed")
    assert not failures, "; ".join(failures)
    assert attempted >= 5  # the package's examples were found and run


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}' in README.md"
    return match.group(1)


def test_readme_short_example_runs(tmp_path):
    code = readme_block("A short example")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "lista.pt").exists()  # the example ends by saving the trained model
    assert "Form(" in out.stdout


def test_readme_your_own_model_runs(tmp_path):
    code = readme_block("Your own model")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 layer outputs" in out.stdout and " 0 violated" in out.stdout and ": PASSED" in out.stdout
    assert (tmp_path / "my_lista_weights.pt").exists()


@pytest.mark.parametrize("heading", ["Property-testing a new architecture"])
def test_readme_blocks_compile(heading):
    compile(readme_block(heading), f"README.md: {heading}", "exec")
