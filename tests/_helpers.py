"""Helpers shared by several test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import numpy as np
import torch

import unfoldtheory as ut


def random_lista(m: int, n: int, K: int, seed: int, scale: float = 1.0, theta: float = 0.1):
    """A float64 LISTA with Gaussian weights (W1 ~ N(0, scale^2/m), W2 ~ N(0, scale^2/n)) and random
    thresholds in [0, theta)."""
    rng = np.random.default_rng(seed)
    W1 = [scale * rng.normal(size=(n, m)) / np.sqrt(m) for _ in range(K)]
    W2 = [scale * rng.normal(size=(n, n)) / np.sqrt(n) for _ in range(K)]
    th = [theta * rng.random() for _ in range(K)]
    return ut.models.LISTA.from_weights(W1, W2, th, dtype=torch.float64, device="cpu")
