"""A pytest fixture for property-testing architectures.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["unfoldtheory.testing.pytest_plugin"]``, then::

    def test_my_architecture(architecture_check):
        architecture_check(my_factory, max_examples=25)   # fails the test with the table and counterexamples

The fixture is :func:`unfoldtheory.testing.assert_architecture` run with one torch thread (small unrolled
networks run much faster without thread oversubscription).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def architecture_check():
    """:func:`unfoldtheory.testing.assert_architecture`, with torch limited to one thread while the test runs."""
    from .._device import torch_threads
    from .suite import assert_architecture

    with torch_threads(1):
        yield assert_architecture
