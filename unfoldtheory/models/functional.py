"""Torch counterparts of :mod:`unfoldtheory.operators`, used inside models."""

from __future__ import annotations

import torch


def soft_threshold(z: torch.Tensor, theta: torch.Tensor | float) -> torch.Tensor:
    r"""Soft threshold :math:`\mathrm{sign}(z)\max(|z| - \theta, 0)`, differentiable in ``z`` and ``theta``."""
    return torch.sign(z) * torch.relu(z.abs() - theta)
