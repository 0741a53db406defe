"""Training: learned models beat ISTA, every scheme does what it says, failures keep the last good state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unfoldtheory as ut
from unfoldtheory.training import _layer_mask_hooks, _nmse, pgd_attack

K = 5
FAST = dict(epochs=4, steps_per_epoch=100, batch_size=64, val_size=200, progress=False)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    gen = ut.problems.SparseRecovery.gaussian(20, 40, 0.1, seed=0)
    test = gen.sample(300, seed=99)
    return gen, gen.lasso(0.05), test


@pytest.fixture(scope="module")
def ista_db(setup):
    gen, prob, test = setup
    return ut.metrics.per_layer_nmse_db(ut.models.ISTA(gen.A, K, lam=prob.lam, device="cpu"), test.y, test.x)[-1]


@pytest.mark.parametrize("cls, lr", [(ut.models.LISTACP, 3e-3), (ut.models.ALISTA, 1e-2)], ids=["LISTACP", "ALISTA"])
def test_learned_models_beat_ista_at_the_same_depth(setup, ista_db, cls, lr):
    gen, _, test = setup
    net = cls(gen.A, K, device="cpu")
    history = ut.training.train(net, gen, lr=lr, **FAST)
    db = ut.metrics.per_layer_nmse_db(net, test.y, test.x)[-1]
    assert db < ista_db - 4.0, (db, ista_db)
    assert len(history.records) == 4 and history.final_val_nmse_db < history.records[0]["val_nmse_db"] + 1e-9


def test_unsupervised_loss_drives_the_objective_to_the_optimum(setup):
    gen, prob, test = setup
    sol = ut.reference.solve(prob, test.y)
    net = ut.models.LearnedStepISTA(gen.A, K, lam=prob.lam, device="cpu")
    gap_before = ut.metrics.per_layer_objective_gap(net, prob, test.y, sol.objective)[-1]
    ut.training.train(net, gen, loss="unsupervised", problem=prob, lr=1e-2, **FAST)
    gap_after = ut.metrics.per_layer_objective_gap(net, prob, test.y, sol.objective)[-1]
    assert 0 <= gap_after < 0.5 * gap_before, (gap_before, gap_after)


def test_layerwise_training_runs_stage_by_stage_and_works(setup, ista_db):
    gen, _, test = setup
    net = ut.models.LISTACP(gen.A, K, device="cpu")
    history = ut.training.train(net, gen, scheme="layerwise", lr=3e-3, epochs=2, steps_per_epoch=60, batch_size=64,
                                val_size=200, progress=False)
    assert [r["stage"] for r in history.records] == [s for s in range(1, K + 1) for _ in range(2)]
    assert ut.metrics.per_layer_nmse_db(net, test.y, test.x)[-1] < ista_db - 3.0


def test_layer_mask_trains_only_the_chosen_slices(setup):
    gen, _, test = setup
    net = ut.models.LISTACP(gen.A, K, device="cpu")
    hooks = _layer_mask_hooks(net, [2])
    net(test.y).pow(2).sum().backward()
    for h in hooks:
        h.remove()
    assert net.Wk.grad[2].abs().sum() > 0 and net.theta.grad[2] != 0
    for k in [0, 1, 3, 4]:
        assert net.Wk.grad[k].abs().sum() == 0 and net.theta.grad[k] == 0


def test_adversarial_training_lowers_the_attacked_error(setup):
    gen, _, test = setup
    std, adv = ut.models.LISTACP(gen.A, K, device="cpu"), ut.models.LISTACP(gen.A, K, device="cpu")
    ut.training.train(std, gen, lr=3e-3, **FAST)
    ut.training.train(adv, gen, scheme="adversarial", attack_eps=1.0, lr=3e-3, **FAST)
    y, x = torch.tensor(test.y, dtype=torch.float32), torch.tensor(test.x, dtype=torch.float32)

    def attacked_db(model):
        delta = pgd_attack(model, y, lambda out: _nmse(out, x), 1.0, "l2", steps=10)
        assert float(delta.norm(dim=1).max()) <= 1.0 + 1e-5
        with torch.no_grad():
            return 10 * np.log10(_nmse(model(y + delta), x).item())

    assert attacked_db(adv) < attacked_db(std) - 1.0


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_attack_uses_the_shared_projection_and_keeps_its_behaviour(setup, norm):
    """training.pgd_attack and robustness.attack share one step/projection helper; pgd_attack still starts at
    zero, takes normalised (l2) or sign (linf) steps of 2.5 eps / steps and stays in the ball."""
    from unfoldtheory.robustness import ascent_step, project_ball

    gen, _, test = setup
    torch.manual_seed(0)
    net = ut.models.LISTACP(gen.A, K, device="cpu")
    y, x = torch.tensor(test.y[:16], dtype=torch.float32), torch.tensor(test.x[:16], dtype=torch.float32)
    loss_fn = lambda out: _nmse(out, x)  # noqa: E731
    eps, steps = 0.5, 4
    delta = pgd_attack(net, y, loss_fn, eps, norm, steps=steps)
    # the reference: the loop written out with the pre-unification arithmetic
    ref = torch.zeros_like(y)
    for _ in range(steps):
        ref.requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(net(y + ref)), ref)
        with torch.no_grad():
            if norm == "linf":
                ref = (ref + 2.5 * eps / steps * g.sign()).clamp(-eps, eps)
            else:
                ref = ref + 2.5 * eps / steps * g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                ref = ref * (eps / ref.norm(dim=-1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    torch.testing.assert_close(delta, ref.detach())
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-6) and float(size.max()) > 0.5 * eps
    assert all(p.grad is None for p in net.parameters())
    # the helpers themselves
    d = torch.tensor([[3.0, 4.0], [0.1, -0.2], [0.0, 0.0]])
    pr = project_ball(d, 1.0, norm)
    want = (torch.tensor([[0.6, 0.8], [0.1, -0.2], [0.0, 0.0]]) if norm == "l2"
            else torch.tensor([[1.0, 1.0], [0.1, -0.2], [0.0, 0.0]]))
    torch.testing.assert_close(pr, want)
    st = ascent_step(torch.zeros(1, 2), torch.tensor([[3.0, -4.0]]), 0.5, norm)
    torch.testing.assert_close(st, torch.tensor([[0.3, -0.4]]) if norm == "l2" else torch.tensor([[0.5, -0.5]]))
    with pytest.raises(ut.InvalidInputError, match="norm"):
        project_ball(d, 1.0, "l1")


def _layer_objectives(net, prob, y):
    """Mean objective per layer on y, with F(x_0 = 0) first."""
    return [0.5 * np.mean(np.sum(y ** 2, axis=1))] + [np.mean(prob.objective(x, y))
                                                    for x in ut.metrics.layer_outputs(net, y)]


def test_descent_training_repairs_layers_that_increase_the_objective(setup):
    gen, prob, test = setup
    net = ut.models.LearnedStepISTA(gen.A, K, lam=prob.lam, device="cpu")
    with torch.no_grad():
        net.gamma[1:4] *= 2.6  # overshooting steps: the objective goes up at layer 4 at initialisation
    F = _layer_objectives(net, prob, test.y)
    assert F[4] > F[3]
    ut.training.train(net, gen, scheme="descent", problem=prob, lr=3e-3, dual_lr=20.0, descent_epsilon=0.05,
                      epochs=2, steps_per_epoch=100, batch_size=64, val_size=200, progress=False)
    F = _layer_objectives(net, prob, test.y)
    assert all(F[k + 1] <= 0.95 * F[k] + 0.02 * F[0] for k in range(K)), F


def test_descent_training_reports_infeasible_demands_through_its_multipliers(setup):
    gen, prob, _ = setup
    net = ut.models.LearnedStepISTA(gen.A, K, lam=prob.lam, device="cpu")
    history = ut.training.train(net, gen, scheme="descent", problem=prob, descent_epsilon=0.5, lr=3e-3,
                                epochs=1, steps_per_epoch=100, batch_size=64, val_size=200, progress=False)
    # halving the objective at every one of 5 layers is out of reach for 2 parameters per layer
    assert all(m > 0 for m in history.records[-1]["multipliers"])
    assert history.records[-1]["max_violation"] > 0


def test_rpca_network_trains(device):
    data = ut.problems.RPCAGenerator(10, 8, rank=1, p=0.1)
    net = ut.models.UnfoldedRPCA((10, 8), 4, tau0=0.5, lam0=0.3, device=device)
    history = ut.training.train(net, data, lr=1e-2, epochs=3, steps_per_epoch=30, batch_size=16, val_size=50,
                                progress=False)
    assert history.final_val_nmse_db < history.records[0]["val_nmse_db"] - 0.5


def test_training_is_deterministic_on_cpu(setup):
    gen, _, _ = setup
    nets = [ut.models.LISTACP(gen.A, 3, device="cpu") for _ in range(2)]
    for net in nets:
        ut.training.train(net, gen, epochs=1, steps_per_epoch=20, batch_size=32, val_size=50, progress=False, seed=7)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)


class _PoisonedData:
    """Clean batches for ``clean_batches`` draws, then NaN observations."""

    def __init__(self, gen, clean_batches):
        self.gen, self.left = gen, clean_batches

    def sample(self, batch, seed=None):
        s = self.gen.sample(batch, seed=seed)
        self.left -= 1
        if self.left < 0:
            return ut.problems.SparseSample(y=np.full_like(s.y, np.nan), x=s.x, noise=s.noise)
        return s


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_state(setup):
    gen, _, _ = setup
    net = ut.models.LISTACP(gen.A, 3, device="cpu")
    data = _PoisonedData(gen, clean_batches=1 + 10 + 3)  # validation draw + one clean epoch + 3 steps

    with pytest.raises(ut.training.TrainingDivergedError, match="became nan") as err:
        ut.training.train(net, data, epochs=3, steps_per_epoch=10, batch_size=16, val_size=20, progress=False)
    assert len(err.value.history.records) == 1
    after_epoch_one = {k: v.clone() for k, v in net.state_dict().items()}
    assert all(torch.isfinite(v).all() for v in after_epoch_one.values())
    # the restored state is the one at the end of the first epoch: re-running that epoch reproduces it
    fresh = ut.models.LISTACP(gen.A, 3, device="cpu")
    ut.training.train(fresh, _PoisonedData(gen, 100), epochs=1, steps_per_epoch=10, batch_size=16, val_size=20,
                      progress=False)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, after_epoch_one[k])


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="huber"), "loss must be one of"),
    (dict(scheme="magic"), "scheme must be one of"),
    (dict(loss="unsupervised"), "problem must be a unfoldtheory.problems.Lasso"),
    (dict(scheme="descent"), "problem must be a unfoldtheory.problems.Lasso"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(lr=-1.0), "lr must be > 0"),
    (dict(loss="per_layer", layer_weights=[1.0]), "layer_weights needs 3 entries"),
    (dict(device="quantum"), "device must be a torch device"),
], ids=lambda v: str(v)[:30])
def test_training_bad_arguments(setup, kwargs, match):
    gen, _, _ = setup
    with pytest.raises(ut.InvalidInputError, match=match):
        ut.training.train(ut.models.LISTACP(gen.A, 3, device="cpu"), gen, progress=False, **kwargs)


def test_training_on_the_fixture_device_with_per_layer_loss(setup, device):
    gen, _, _ = setup
    net = ut.models.UnfoldedFISTA(gen.A, 3, device=device)
    history = ut.training.train(net, gen, loss="per_layer", epochs=1, steps_per_epoch=5, batch_size=16,
                                val_size=20, progress=False, device=device)
    assert history.config["device"].startswith(device.type) and np.isfinite(history.final_val_nmse_db)
    assert "1 epochs" in repr(history)


# ---------------------------------------------------------------------------------------------- plain modules
class _PlainLISTA(torch.nn.Module):
    """A user's LISTA: nn.Linear layers and a hand-written soft threshold; thresholds declared nonnegative."""

    nonnegative = ("theta",)

    def __init__(self, m, n, K):
        super().__init__()
        self.n = n
        self.W1 = torch.nn.ModuleList([torch.nn.Linear(m, n, bias=False) for _ in range(K)])
        self.W2 = torch.nn.ModuleList([torch.nn.Linear(n, n, bias=False) for _ in range(K)])
        self.theta = torch.nn.Parameter(torch.full((K,), 0.05))

    def forward(self, y):
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype)
        for k in range(len(self.W1)):
            z = self.W1[k](y) + self.W2[k](x)
            x = torch.sign(z) * torch.relu(z.abs() - self.theta[k])
        return x


def test_train_accepts_a_plain_module_through_its_final_output():
    gen = ut.problems.SparseRecovery.gaussian(m=8, n=16, p=0.1, snr_db=40, seed=0)
    torch.manual_seed(0)
    net = _PlainLISTA(8, 16, 3)
    test = gen.sample(64, seed=5)
    before = ut.metrics.nmse_db(net(torch.tensor(test.y, dtype=torch.float32)).detach().numpy(), test.x)
    hist = ut.training.train(net, gen, epochs=2, steps_per_epoch=60, batch_size=32, val_size=64, progress=False)
    after = ut.metrics.nmse_db(net(torch.tensor(test.y, dtype=torch.float32)).detach().numpy(), test.x)
    assert hist.config["model"] == "_PlainLISTA" and after < before - 1.0
    assert bool((net.theta >= 0).all())  # its own nonnegative declaration is honoured
    with pytest.raises(ut.InvalidInputError, match="per-layer|every layer"):
        ut.training.train(net, gen, loss="per_layer", epochs=1, steps_per_epoch=1)
    with pytest.raises(ut.InvalidInputError, match="state_dict.*unfoldtheory bounds"):
        ut.models.save(net, "unused.pt")
