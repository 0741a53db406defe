"""Shared fixtures: the CPU/GPU device fixture and the hypothesis profiles."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, derandomize=True, database=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# `unfoldtheory verify` uses the local cores by default; tests that want worker processes ask for them
# (tests/test_scaleout.py), the others stay in the test process (no pool start-up per CLI call).
os.environ.setdefault("UNFOLDTHEORY_WORKERS", "1")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every test that takes ``device`` runs on the CPU and, where a GPU exists, on CUDA."""
    return torch.device(request.param)


@pytest.fixture(scope="module")
def single_torch_thread():
    """One torch thread for the module: on the 2 shared CI cores oversubscribed threads make tiny ops 100x
    slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_problem():
    """A small noisy sparse-recovery problem (m=15, n=30) with its LASSO (lam=0.1) and 6 instances."""
    import unfoldtheory as ut

    gen = ut.problems.SparseRecovery.gaussian(m=15, n=30, p=0.15, snr_db=30, seed=3)
    sample = gen.sample(6, seed=4)
    return gen, gen.lasso(0.1), sample


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
