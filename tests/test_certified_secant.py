"""The rigorous float64 secant (``lipschitz._torch.certified_secant``) and its extended-precision retry for nets
whose naive bound is far above their true constant (docs/theory/lipschitz.md §5)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from _helpers import random_lista

from unfoldtheory.form import Block, Form, Identity, SoftThreshold
from unfoldtheory.lipschitz._torch import ErrorModel, _secant_with, certified_secant

EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps


def cancelling_form(m: int = 3, big: float = 1e7) -> Form:
    """x = soft(y + big y - big y): a net whose naive bound is ~2 big while its constant is 1."""
    b0 = Block(Identity(m), {}, big * np.eye(m), None, layer=1)
    b1 = Block(Identity(m), {}, -big * np.eye(m), None, layer=1)
    b2 = Block(SoftThreshold(np.full(m, 0.1)), {0: np.eye(m), 1: np.eye(m)}, np.eye(m), None, layer=2)
    return Form(m, [b0, b1, b2], {2: np.eye(m)})


def dense(M) -> np.ndarray:
    return M.toarray() if hasattr(M, "toarray") else np.asarray(M, dtype=float)


def exact_eval(form: Form, y) -> list:
    """The form evaluated in exact rational arithmetic (weights and input taken as the float64 numbers)."""
    ws = []
    for blk in form.blocks:
        z = [Fraction(0)] * blk.size
        for j, M in blk.inputs.items():
            M = dense(M)
            z = [z[i] + sum(Fraction(float(M[i, c])) * ws[j][c] for c in range(M.shape[1])) for i in range(blk.size)]
        if blk.B is not None:
            B = dense(blk.B)
            z = [z[i] + sum(Fraction(float(B[i, c])) * Fraction(float(y[c])) for c in range(len(y)))
                 for i in range(blk.size)]
        if blk.b is not None:
            z = [z[i] + Fraction(float(blk.b[i])) for i in range(blk.size)]
        if isinstance(blk.activation, SoftThreshold):
            th = np.broadcast_to(np.asarray(blk.activation.theta, dtype=float), (blk.size,))
            z = [(zi - Fraction(float(t))) if zi > t else (zi + Fraction(float(t))) if zi < -t else Fraction(0)
                 for zi, t in zip(z, th)]
        ws.append(z)
    out = [Fraction(0)] * form.output_dim
    for j, C in form.output.items():
        C = dense(C)
        out = [out[i] + sum(Fraction(float(C[i, c])) * ws[j][c] for c in range(C.shape[1])) for i in range(len(out))]
    return out


def exact_ratio(form: Form, y, d) -> float:
    y2 = np.asarray(y, float) + np.asarray(d, float)
    dd = [Fraction(float(a)) - Fraction(float(b)) for a, b in zip(y2, y)]
    diff = [a - b for a, b in zip(exact_eval(form, y2), exact_eval(form, y))]
    return float(sum(v * v for v in diff) / sum(v * v for v in dd)) ** 0.5


def test_extended_precision_rescues_a_secant_that_float64_rounding_bounds_swamp():
    form = cancelling_form()
    y, d = np.array([0.7, -0.4, 0.3]), 1e-7 * np.array([0.6, 0.0, -0.8])
    ref = exact_ratio(form, y, d)
    assert ref == pytest.approx(1.0, rel=1e-6)
    r64, info64 = _secant_with(ErrorModel(form), y, y + d, float(np.linalg.norm((y + d) - y)) * (1 + 1e-12))
    assert r64 < 0.5 and info64["precision"] == "float64"   # the float64 bound (~1e-9 |y| big) eats the change
    r, info = certified_secant(form, None, y, d)
    assert r <= ref * (1 + 1e-12)
    if EXTENDED:
        assert info["precision"] == "extended" and r >= 0.999 * ref
    else:
        assert r == r64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certified_secant_is_below_the_exact_ratio_and_close_to_it(seed):
    form = random_lista(3, 4, 3, seed=seed, scale=1.5).form()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        y = 2 * rng.standard_normal(3)
        d = 10.0 ** rng.integers(-6, 0) * rng.standard_normal(3)
        ref = exact_ratio(form, y, d)
        r, info = certified_secant(form, None, y, d)
        assert info["rigorous"] and r <= ref * (1 + 1e-12)
        assert r >= ref * (1 - 1e-6) - 1e-9
        y2 = y + d  # the secant used is (y, y2): its step is the float difference, not d
        r_ext, _ = _secant_with(ErrorModel(form, extended=True), y, y2, float(np.linalg.norm(y2 - y)) * (1 + 1e-12))
        assert r_ext <= ref * (1 + 1e-12)
