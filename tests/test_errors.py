"""Every bad input named in the foundation issue gives a ValueError subclass that names the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unfoldtheory as ut
from unfoldtheory.form import SoftThreshold

A_OK = np.random.default_rng(0).normal(size=(4, 6))
A_NAN = A_OK.copy()
A_NAN[1, 2] = np.nan
A_INF = A_OK.copy()
A_INF[0, 0] = np.inf
Y_OK = np.ones(4)
Y_NAN = np.array([1.0, np.nan, 0.0, 0.0])


def _raises(match):
    return pytest.raises(ut.InvalidInputError, match=match)


@pytest.mark.parametrize("A", [A_NAN, A_INF], ids=["nan", "inf"])
@pytest.mark.parametrize("build", [
    lambda A: ut.problems.Lasso(A, 0.1),
    lambda A: ut.problems.SparseRecovery(A),
    lambda A: ut.models.ISTA(A, 0.1, 3, device="cpu"),
    lambda A: ut.models.LISTA(A, 3, device="cpu"),
], ids=["Lasso", "SparseRecovery", "ISTA", "LISTA"])
def test_non_finite_A(build, A):
    with _raises(r"A contains 1 NaN/Inf entry"):
        build(A)


def test_error_types_are_value_errors():
    with pytest.raises(ValueError):
        ut.problems.Lasso(A_NAN, 0.1)


@pytest.mark.parametrize("call", [
    lambda y: ut.problems.Lasso(A_OK, 0.1).objective(np.zeros(6), y),
    lambda y: ut.problems.Lasso(A_OK, 0.1).duality_gap(np.zeros(6), y),
    lambda y: ut.reference.solve(ut.problems.Lasso(A_OK, 0.1), y),
    lambda y: ut.models.ISTA(A_OK, 0.1, 2, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu")(torch.tensor(y)),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu").form().evaluate(y),
], ids=["objective", "gap", "solve", "ISTA", "LISTA", "form"])
def test_non_finite_y(call):
    with _raises(r"y contains .*NaN/Inf"):
        call(Y_NAN)


@pytest.mark.parametrize("call", [
    lambda y: ut.problems.Lasso(A_OK, 0.1).objective(np.zeros(6), y),
    lambda y: ut.reference.solve(ut.problems.Lasso(A_OK, 0.1), y),
    lambda y: ut.models.ISTA(A_OK, 0.1, 2, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu").form().evaluate(y),
], ids=["objective", "solve", "ISTA", "LISTA", "form"])
@pytest.mark.parametrize("y", [np.ones(5), np.ones((2, 3)), np.ones((2, 2, 4))], ids=["5", "2x3", "3d"])
def test_mismatched_y_shape(call, y):
    with _raises(r"y .*(shape|entries per instance)"):
        call(y)


@pytest.mark.parametrize("call", [
    lambda y: ut.reference.solve(ut.problems.Lasso(A_OK, 0.1), y),
    lambda y: ut.models.ISTA(A_OK, 0.1, 2, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu")(torch.zeros(0, 4)),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu").form().evaluate(y),
], ids=["solve", "ISTA", "LISTA", "form"])
def test_empty_batch(call):
    with _raises(r"y is an empty batch"):
        call(np.zeros((0, 4)))


def test_mismatched_x_shape():
    with _raises(r"x has 5 entries per instance but A has 6 columns"):
        ut.problems.Lasso(A_OK, 0.1).objective(np.zeros(5), Y_OK)
    with _raises(r"x and y hold different numbers of instances"):
        ut.problems.Lasso(A_OK, 0.1).objective(np.zeros((3, 6)), np.ones((2, 4)))


@pytest.mark.parametrize("build", [
    lambda lam: ut.problems.Lasso(A_OK, lam),
    lambda lam: ut.models.ISTA(A_OK, lam, 3, device="cpu"),
    lambda lam: ut.models.LISTA(A_OK, 3, lam=lam, device="cpu"),
    lambda lam: ut.problems.RPCA((3, 3), lam=lam),
], ids=["Lasso", "ISTA", "LISTA", "RPCA"])
def test_negative_lam(build):
    with _raises(r"lam must be >=? 0"):
        build(-0.1)


@pytest.mark.parametrize("K", [0, -3])
def test_num_layers_below_one(K):
    with _raises("num_layers must be an integer >= 1"):
        ut.models.ISTA(A_OK, 0.1, K, device="cpu")
    with _raises("num_layers must be an integer >= 1"):
        ut.models.LISTA(A_OK, K, device="cpu")


def test_num_layers_not_an_integer():
    with _raises("num_layers must be an integer"):
        ut.models.LISTA(A_OK, 2.5, device="cpu")


def test_from_weights_with_no_layers():
    with _raises("num_layers must be >= 1"):
        ut.models.LISTA.from_weights([], [], [])


def test_negative_thresholds():
    W1, W2 = [np.ones((6, 4))] * 2, [np.eye(6)] * 2
    with _raises(r"theta\[1\] must be >= 0"):
        ut.models.LISTA.from_weights(W1, W2, [0.1, -0.1])
    with _raises(r"theta\[0\] must be >= 0"):
        ut.models.LISTA.from_weights(W1, W2, [-np.ones(6), 0.0])
    with _raises("theta must be >= 0"):
        SoftThreshold(-1.0, size=3)


def test_from_weights_shape_and_length_errors():
    with _raises("one entry per layer; got lengths W1: 2, W2: 1, theta: 2"):
        ut.models.LISTA.from_weights([np.ones((6, 4))] * 2, [np.eye(6)], [0.1, 0.1])
    with _raises(r"W2\[1\] must have shape \(6, 6\)"):
        ut.models.LISTA.from_weights([np.ones((6, 4))] * 2, [np.eye(6), np.eye(5)], [0.1, 0.1])
    with _raises(r"W1\[1\] must have shape \(6, 4\)"):
        ut.models.LISTA.from_weights([np.ones((6, 4)), np.ones((6, 3))], [np.eye(6)] * 2, [0.1, 0.1])
    with _raises(r"W1\[0\] contains"):
        ut.models.LISTA.from_weights([np.full((6, 4), np.nan)], [np.eye(6)], [0.1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(m=0, n=3), "m must be an integer >= 1"),
    (dict(m=3, n=3, p=1.5), "p must be <= 1"),
    (dict(m=3, n=3, snr_db=float("nan")), "snr_db must be finite"),
])
def test_generator_arguments(kwargs, match):
    with _raises(match):
        ut.problems.SparseRecovery.gaussian(**kwargs)


def test_generator_batch_and_rpca_arguments():
    with _raises("batch must be an integer >= 1"):
        ut.problems.SparseRecovery.gaussian(3, 4).sample(0)
    with _raises("rank must be <= min"):
        ut.problems.low_rank_plus_sparse(3, 4, rank=5, p=0.1)
    with _raises(r"M must have shape \(3, 4\)"):
        ut.problems.RPCA((3, 4)).duality_gap(np.zeros((3, 4)), np.zeros((4, 3)), np.zeros((3, 4)))


def test_bad_device_and_dtype():
    with _raises("dtype must be torch.float32 or torch.float64"):
        ut.models.LISTA(A_OK, 2, dtype=torch.int64)
    with _raises("device must be a torch device"):
        ut.models.LISTA(A_OK, 2, device="quantum")
