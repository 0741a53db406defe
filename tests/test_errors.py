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
    lambda A: ut.models.ISTA(A, 3, lam=0.1, device="cpu"),
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
    lambda y: ut.models.ISTA(A_OK, 2, lam=0.1, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu")(torch.tensor(y)),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu").form().evaluate(y),
], ids=["objective", "gap", "solve", "ISTA", "LISTA", "form"])
def test_non_finite_y(call):
    with _raises(r"y contains .*NaN/Inf"):
        call(Y_NAN)


@pytest.mark.parametrize("call", [
    lambda y: ut.problems.Lasso(A_OK, 0.1).objective(np.zeros(6), y),
    lambda y: ut.reference.solve(ut.problems.Lasso(A_OK, 0.1), y),
    lambda y: ut.models.ISTA(A_OK, 2, lam=0.1, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu")(y),
    lambda y: ut.models.LISTA(A_OK, 2, device="cpu").form().evaluate(y),
], ids=["objective", "solve", "ISTA", "LISTA", "form"])
@pytest.mark.parametrize("y", [np.ones(5), np.ones((2, 3)), np.ones((2, 2, 4))], ids=["5", "2x3", "3d"])
def test_mismatched_y_shape(call, y):
    with _raises(r"y .*(shape|entries per instance)"):
        call(y)


@pytest.mark.parametrize("call", [
    lambda y: ut.reference.solve(ut.problems.Lasso(A_OK, 0.1), y),
    lambda y: ut.models.ISTA(A_OK, 2, lam=0.1, device="cpu")(y),
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
    lambda lam: ut.models.ISTA(A_OK, 3, lam=lam, device="cpu"),
    lambda lam: ut.models.LISTA(A_OK, 3, lam=lam, device="cpu"),
    lambda lam: ut.problems.RPCA((3, 3), lam=lam),
], ids=["Lasso", "ISTA", "LISTA", "RPCA"])
def test_negative_lam(build):
    with _raises(r"lam must be >=? 0"):
        build(-0.1)


@pytest.mark.parametrize("K", [0, -3])
def test_num_layers_below_one(K):
    with _raises("num_layers must be an integer >= 1"):
        ut.models.ISTA(A_OK, K, lam=0.1, device="cpu")
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


# ---------------------------------------------------------------------------------------------- outside fuzz run
# Each bad input an outside fuzz run found gives a clear error naming the argument (or documented behaviour).

NET = ut.models.LISTA(A_OK, 2, device="cpu", dtype=torch.float64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("call", [
    lambda: ut.models.LISTA(A_OK, 2, device="cuda:7"),
    lambda: ut.models.ISTA(A_OK, 2, lam=0.1, device="cuda"),
    lambda: ut.lipschitz.lower_bound(NET, device="cuda:7", num_random=4, ascent_steps=0, smooth_steps=0),
])
def test_cuda_device_without_cuda(call):
    with _raises("device='cuda.*CUDA is not available.*device='cpu'"):
        call()


@pytest.mark.parametrize("kwargs, name", [
    ({"num_random": -1}, "num_random"), ({"power_iters": -3}, "power_iters"), ({"ascent_steps": -1}, "ascent_steps"),
    ({"time_limit": -1}, "time_limit"), ({"seed": -1}, "seed"), ({"scales": [float("nan")]}, "scales"),
    ({"scales": [0.0]}, "scales"), ({"scales": 1.0}, "scales"), ({"smooth_steps": -2}, "smooth_steps"),
])
def test_lower_bound_budgets(kwargs, name):
    with _raises(name):
        ut.lipschitz.lower_bound(NET, **kwargs)


def test_lower_bound_of_a_plain_callable_asks_for_input_dim():
    with _raises("input_dim"):
        ut.lipschitz.lower_bound(lambda t: t)
    b = ut.lipschitz.lower_bound(lambda t: 3.0 * t, input_dim=2, num_random=8, ascent_steps=2, smooth_steps=0)
    assert b.side == "lower" and b.value == pytest.approx(3.0, rel=1e-9)


def test_upper_bound_dtype():
    with _raises("dtype must be one of"):
        ut.lipschitz.upper_bound(NET, dtype="float16")


@pytest.mark.parametrize("support", [np.array([0.5, 1.7]), [0.5, 1.7], [np.nan], [1.0], np.zeros((2, 2), int)])
def test_restricted_lipschitz_refuses_non_integer_supports(support):
    with _raises("support"):
        ut.contraction.restricted_lipschitz(NET, support)


def test_restricted_lipschitz_integer_and_mask_supports_agree():
    mask = np.zeros(6, bool)
    mask[[1, 4]] = True
    a = ut.contraction.restricted_lipschitz(NET, [4, 1, 1])
    b = ut.contraction.restricted_lipschitz(NET, mask)
    assert [x.value for x in a] == [x.value for x in b]


def test_worst_case_huge_step():
    with _raises(r"steps\[0\].*units of 1/L"):
        ut.convergence.worst_case(steps=[1e300])


def test_missing_model_file_is_a_clear_error_and_still_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*unfoldtheory.models.save"):
        ut.models.load(tmp_path / "missing.pt")
    with _raises("does not exist"):
        ut.models.load(tmp_path / "missing.pt")
    with _raises("is a directory"):
        ut.models.load(tmp_path)


@pytest.mark.parametrize("q, c", [(1e-300, 5e-324), (3e-306, 8e-317), (0.5, 5e-324), (1e-310, 1e-305),
                                  (5e-324, 1e-10), (0.3, 1e-250)])
def test_kl_inverses_stay_on_the_safe_side_down_to_subnormals(q, c):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 900  # 1 - q must be exact for q ~ 1e-310

    def kl(q, p):
        q, p = mp.mpf(q), mp.mpf(p)
        first = q * mp.log(q / p) if q > 0 else 0
        return first + ((1 - q) * mp.log((1 - q) / (1 - p)) if p < 1 else mp.inf)

    up, lo = ut.generalization.kl_inverse(q, c), ut.generalization.kl_inverse_lower(q, c)
    assert lo <= q <= up
    assert up == 1.0 or kl(q, up) >= mp.mpf(c)   # at or beyond the supremum: sound
    assert lo == 0.0 or kl(q, lo) >= mp.mpf(c)   # at or below the infimum: sound
    slack = 2 * np.sqrt(2 * c) + 4 * np.spacing(q) + 1e-300
    assert up - q <= slack and q - lo <= slack  # and not loose


@pytest.mark.parametrize("q, c, match", [("0.1", 0.1, "q must be"), (0.1, "0.1", "c must be"),
                                         ([0.1, 0.2], [0.1, 0.2, 0.3], "broadcast")])
def test_kl_inverse_refuses_strings_and_unbroadcastable_shapes(q, c, match):
    for f in (ut.generalization.kl_inverse, ut.generalization.kl_inverse_lower):
        with _raises(match):
            f(q, c)


def test_float64_input_to_a_float32_model_is_rounded_as_documented():
    net = ut.models.LISTA(A_OK, 2, device="cpu")
    y = np.random.default_rng(1).normal(size=(3, 4))
    out = net(y)
    assert out.dtype == torch.float32
    assert torch.equal(out, net(y.astype(np.float32)))
    assert "rounded to float32" in ut.models.UnfoldedNetwork.__doc__


def test_ista_argument_order_and_lam():
    a = ut.models.ISTA(A_OK, 3, lam=0.2, device="cpu")
    with pytest.warns(DeprecationWarning, match="ISTA\\(A, num_layers, lam=lam\\)"):
        b = ut.models.ISTA(A_OK, 0.2, 3, device="cpu")
    assert (a.num_layers, a.lam) == (b.num_layers, b.lam) == (3, 0.2)
    with _raises("lam is required"):
        ut.models.ISTA(A_OK, 3)
    with _raises("HyperLISTA takes no lam.*c_theta0"):
        ut.models.HyperLISTA(A_OK, 3, lam=0.1)


def test_save_accepts_read_only_arrays(tmp_path):
    import warnings

    A = A_OK.copy()
    A.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ut.models.save(ut.models.LISTA(A, 2, device="cpu"), tmp_path / "m.pt")
    assert ut.models.load(tmp_path / "m.pt").num_layers == 2
