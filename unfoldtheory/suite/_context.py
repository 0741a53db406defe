"""Profiles, the shared problem and data of a run, and the trained-model cache (keyed by configuration hash)."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .._device import resolve_device
from ..errors import InvalidInputError

log = logging.getLogger("unfoldtheory.suite")

#: Bump to invalidate every cached model (e.g. when a model's parametrisation changes).
CACHE_VERSION = 1


@dataclass(frozen=True)
class Profile:
    """Sizes and budgets of a verification run.

    ``quick`` is the README's main command (CPU, a few minutes on 2 cores); ``full`` is the paper size of
    LISTA-CP/ALISTA (m = 250, n = 500, 16 layers; meant for a GPU); ``smoke`` is for the test-suite.

    Budgets count work, so a run gives the same numbers whatever the machine's load: ``sdp_evaluations``
    (objective evaluations of the LipSDP optimiser at full depth; ``None``: the library's default
    ``max(1000, 5 N)``), ``depth_sdp_evaluations`` (at the smaller depths of the depth sweep), ``lower_steps``
    (ascent steps of the Lipschitz lower bound), ``polish_steps`` (Newton steps of the LipSDP polish),
    ``attack_steps``; for the Lipschitz sandwich (docs/design.md §8) ``domain_sdp_evaluations`` (LipSDP on the
    data box; ``None``: ``sdp_evaluations``), ``region_rounds``, ``region_max_uncertain`` and
    ``region_node_limit`` (neighbourhood MILPs of the region search, undecided neurons and branch-and-bound
    nodes per MILP), ``region_flips`` (moves of the walk over adjacent regions, one LP each), ``exact_max_neurons`` (the exact constant is computed only for nets with at most this
    many neurons; above, the report says "not computed (too large)"), ``exact_node_limit`` and
    ``exact_l2_rounds`` (nodes per MILP and alternating rounds of the exact l2 bracket); for the local constants
    around the data (docs/theory/robustness.md §3) ``local_points`` test inputs as ball centres, ``local_radius``
    (l2 radius as a fraction of the median test-input norm), ``local_sdp_evaluations`` (LipSDP per ball) and
    ``local_ascent_steps`` (projected ascent of the lower end per ball).  ``time_cap`` (seconds) is only a safety
    cap per certificate: a computation it stops is recorded ``converged=False`` and the report says so.
    """

    name: str
    m: int
    n: int
    layers: int
    p: float = 0.1
    lam: float = 0.05
    train_steps: int = 1500
    batch_size: int = 128
    test_size: int = 500
    seed: int = 0
    rpca_shape: tuple[int, int] = (20, 20)
    rpca_rank: int = 2
    rpca_p: float = 0.05
    rpca_layers: int = 8
    rpca_steps: int = 300
    attack_steps: int = 40
    attack_eps: float = 0.5
    sdp_evaluations: int | None = None
    depth_sdp_evaluations: int = 600
    lower_steps: int = 100
    polish_steps: int = 200
    time_cap: float = 300.0
    depth_points: int = 4
    domain_sdp_evaluations: int | None = None
    region_rounds: int = 4
    region_max_uncertain: int = 12
    region_node_limit: int = 200
    region_flips: int = 50
    exact_max_neurons: int = 24
    exact_node_limit: int = 200
    exact_l2_rounds: int = 2
    local_points: int = 8
    local_radius: float = 0.01
    local_sdp_evaluations: int = 250
    local_ascent_steps: int = 100
    alista_sparsity: int = 2
    generalization_sizes: tuple[int, ...] = (50, 200, 800)
    generalization_steps: int = 400
    pac_bayes_samples: int = 2000

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", m=12, n=24, layers=4, train_steps=60, batch_size=64, test_size=100, rpca_shape=(8, 8),
                     rpca_rank=1, rpca_layers=3, rpca_steps=20, attack_steps=10, sdp_evaluations=200,
                     depth_sdp_evaluations=100, lower_steps=20, polish_steps=5, time_cap=60.0, depth_points=2,
                     domain_sdp_evaluations=100, region_rounds=1, region_max_uncertain=10, region_node_limit=50,
                     region_flips=5, exact_node_limit=50, local_points=2, local_sdp_evaluations=50,
                     local_ascent_steps=5,
                     alista_sparsity=1, generalization_sizes=(20, 80), generalization_steps=40, pac_bayes_samples=300),
    "quick": Profile("quick", m=32, n=64, layers=8, train_steps=600, depth_sdp_evaluations=400, lower_steps=60,
                     polish_steps=25, region_rounds=1, region_max_uncertain=8, region_node_limit=50,
                     region_flips=10, local_points=4, local_sdp_evaluations=100, local_ascent_steps=30),
    "full": Profile("full", m=250, n=500, layers=16, lam=0.05, train_steps=20000, batch_size=256, test_size=2000,
                    rpca_shape=(64, 64), rpca_rank=4, rpca_layers=10, rpca_steps=3000, attack_steps=100,
                    lower_steps=200, time_cap=1800.0, depth_points=5, exact_max_neurons=120,
                    alista_sparsity=3,
                    generalization_sizes=(100, 400, 1600, 6400), generalization_steps=3000,
                    pac_bayes_samples=10000),
}


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise InvalidInputError(f"profile must be one of {sorted(PROFILES)}; got {profile!r}.")
    return PROFILES[profile]


# --------------------------------------------------------------------------------------------- the zoo

#: name -> (class name, constructor keyword arguments, learning rate, extra training keywords)
SPARSE_ZOO: dict[str, tuple[str, dict, float, dict]] = {
    "LearnedStepISTA": ("LearnedStepISTA", {"lam": "lam"}, 1e-2, {}),
    "ALISTA": ("ALISTA", {}, 1e-2, {}),
    "ALISTA-minimax": ("ALISTA", {"W": "minimax"}, 1e-2, {}),
    "HyperLISTA": ("HyperLISTA", {}, 1e-2, {}),
    "UnfoldedFISTA": ("UnfoldedFISTA", {"lam": "lam"}, 1e-2, {}),
    "UnfoldedADMM": ("UnfoldedADMM", {"lam": "lam"}, 1e-2, {}),
    "LISTA": ("LISTA", {"lam": "lam"}, 1e-3, {}),
    "LISTACP": ("LISTACP", {"lam": "lam"}, 3e-3, {}),
    "LISTACPSS": ("LISTACPSS", {"lam": "lam"}, 3e-3, {}),
    "TiLISTA": ("TiLISTA", {"lam": "lam"}, 3e-3, {}),
    "CorrectedISTA": ("CorrectedISTA", {"lam": "lam", "hidden": 32}, 3e-3, {}),
    "LearnedProxISTA": ("LearnedProxISTA", {"lam": "lam"}, 1e-3, {}),
    "LISTACP-adversarial": ("LISTACP", {"lam": "lam"}, 3e-3, {"scheme": "adversarial"}),
}
#: Paradigm of every model the suite uses ("classical" for the untrained baselines).
PARADIGM = {"ISTA": "classical", "FISTA": "classical", "RPCA-classical": "classical", "UnfoldedRPCA": "1",
            "LISTACP-adversarial": "2", "ALISTA-minimax": "1"}


def paradigm_of(name: str) -> str:
    if name in PARADIGM:
        return PARADIGM[name]
    from .. import models

    return str(getattr(models, SPARSE_ZOO[name][0]).paradigm)


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-able configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def default_cache_dir() -> Path:
    env = os.environ.get("UNFOLDTHEORY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "unfoldtheory" / "models"


@dataclass
class Context:
    """Everything the claims of one run share: the profile, the problem, the test data, the certified
    reference optima and the trained models (trained once, cached on disk by configuration hash).

    Models are returned as float64 CPU copies for the analyses; training runs on ``device`` (CUDA when
    available).
    """

    profile: Profile
    cache_dir: Path
    device: str = "cpu"
    progress: bool = True
    out: Path | None = None
    _models: dict = field(default_factory=dict, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)
    #: plotted series of every figure saved in this run, by its path relative to the report (see ``_plot.save``)
    figure_data: dict = field(default_factory=dict, repr=False)
    model_log: dict = field(default_factory=dict)

    @classmethod
    def create(cls, profile: str | Profile, cache_dir: str | os.PathLike | None = None, device: str | None = None,
               progress: bool = True, out: str | os.PathLike | None = None) -> Context:
        prof = get_profile(profile)
        dev = str(resolve_device(device))
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return cls(prof, cache, dev, progress, Path(out) if out is not None else None)

    # ------------------------------------------------------------------ problem and data
    def memo(self, key: str, make):
        """Compute ``make()`` once per run."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def problem_config(self) -> dict:
        p = self.profile
        return {"kind": "sparse_recovery", "m": p.m, "n": p.n, "p": p.p, "snr_db": None, "seed": p.seed}

    @property
    def gen(self):
        from ..problems import SparseRecovery

        c = self.problem_config
        return self.memo("gen", lambda: SparseRecovery.gaussian(c["m"], c["n"], p=c["p"], snr_db=c["snr_db"],
                                                                seed=c["seed"]))

    @property
    def lasso(self):
        return self.memo("lasso", lambda: self.gen.lasso(self.profile.lam))

    @property
    def test(self):
        return self.memo("test", lambda: self.gen.sample(self.profile.test_size, seed=self.profile.seed + 1))

    @property
    def reference(self):
        """Certified LASSO optima of the test set."""
        from ..reference import solve

        return self.memo("reference", lambda: solve(self.lasso, self.test.y))

    @property
    def rpca_gen(self):
        from ..problems import RPCAGenerator

        p = self.profile
        return self.memo("rpca_gen", lambda: RPCAGenerator(p.rpca_shape[0], p.rpca_shape[1], p.rpca_rank, p.rpca_p))

    # ------------------------------------------------------------------ models
    def classical(self, name: str = "ISTA", num_layers: int | None = None):
        """ISTA (step 1/L) or FISTA at the profile's depth and LASSO weight, float64 on CPU."""
        from .. import models

        K = num_layers or self.profile.layers
        if name == "ISTA":
            return models.ISTA(self.gen.A, K, lam=self.profile.lam, device="cpu", dtype=torch.float64)
        if name == "FISTA":
            return models.UnfoldedFISTA(self.gen.A, K, lam=self.profile.lam, device="cpu", dtype=torch.float64)
        raise InvalidInputError(f"unknown classical model {name!r}; use 'ISTA' or 'FISTA'.")

    def model_config(self, name: str) -> dict:
        p = self.profile
        if name == "UnfoldedRPCA":
            return {"name": name, "class": "UnfoldedRPCA", "kwargs": {"shape": list(p.rpca_shape)},
                    "layers": p.rpca_layers,
                    "problem": {"kind": "rpca", "shape": list(p.rpca_shape), "rank": p.rpca_rank, "p": p.rpca_p},
                    "train": {"steps": p.rpca_steps, "batch_size": 16, "lr": 1e-2, "seed": p.seed},
                    "cache_version": CACHE_VERSION}
        if name not in SPARSE_ZOO:
            raise InvalidInputError(f"unknown model {name!r}; the suite knows {sorted(SPARSE_ZOO)} and UnfoldedRPCA.")
        cls, kwargs, lr, extra = SPARSE_ZOO[name]
        kwargs = {k: (p.lam if v == "lam" else v) for k, v in kwargs.items()}
        train = {"steps": p.train_steps, "batch_size": p.batch_size, "lr": lr, "seed": p.seed, **extra}
        if extra.get("scheme") == "adversarial":
            train["attack_eps"] = p.attack_eps
        return {"name": name, "class": cls, "kwargs": kwargs, "layers": p.layers, "problem": self.problem_config,
                "train": train, "cache_version": CACHE_VERSION}

    def model(self, name: str):
        """The trained model ``name`` as a float64 CPU copy (trained at most once per configuration)."""
        if name not in self._models:
            self._models[name] = self._load_or_train(name)
        return copy.deepcopy(self._models[name]).to("cpu").double().eval()

    def _load_or_train(self, name: str):
        from .. import models

        config = self.model_config(name)
        key = config_hash(config)
        path = self.cache_dir / f"{name}-{key}.pt"
        net = self._load_cached(name, key, path)
        if net is not None:
            return net
        from ._files import file_lock, temporary_sibling

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(path):  # concurrent runs on a shared cache train each model once (docs/scaleout.md §5)
            net = self._load_cached(name, key, path)
            if net is not None:
                return net
            net, meta = self._train(config)
            tmp = temporary_sibling(path)
            models.save(net, tmp, metadata={**meta, "config": json.dumps(config, default=str)})
            os.replace(tmp, path)
        self.model_log[name] = {"hash": key, "cached": False, "path": str(path), **meta}
        return net

    def _load_cached(self, name: str, key: str, path: Path):
        from .. import models

        if not path.exists():
            return None
        try:
            net = models.load(path, device="cpu")
        except (InvalidInputError, RuntimeError) as exc:
            log.warning("cached %s at %s is unreadable (%s); retraining", name, path, exc)
            return None
        self.model_log[name] = {"hash": key, "cached": True, "path": str(path),
                                **{k: v for k, v in net.metadata.items() if k != "config"}}
        log.info("loaded %s from the cache (%s)", name, path)
        return net

    def _train(self, config: dict):
        from .. import models
        from ..training import train

        t0 = time.perf_counter()
        cls = getattr(models, config["class"])
        tr = dict(config["train"])
        steps, epochs = tr.pop("steps"), 10
        if config["name"] == "UnfoldedRPCA":
            net = cls(tuple(config["kwargs"]["shape"]), config["layers"], device=self.device)
            data = self.rpca_gen
        else:
            net = cls(self.gen.A, config["layers"], **self.resolve_kwargs(config["kwargs"]), device=self.device)
            data = self.gen
        history = train(net, data, epochs=epochs, steps_per_epoch=max(1, steps // epochs), progress=self.progress,
                        val_size=200, **tr)
        seconds = time.perf_counter() - t0
        meta = {"train_seconds": seconds, "final_val_nmse_db": history.records[-1]["val_nmse_db"],
                "device": self.device, "steps": steps}
        log.info("trained %s in %.1f s: val NMSE %.2f dB", config["name"], seconds, meta["final_val_nmse_db"])
        return net.to("cpu"), meta

    def resolve_kwargs(self, kwargs: dict) -> dict:
        """Constructor arguments with symbolic values computed: ``W="minimax"`` is ALISTA's minimax weight of
        Definition 1 (:func:`unfoldtheory.coherence.generalized_coherence`)."""
        out = dict(kwargs)
        if out.get("W") == "minimax":
            from ..coherence import generalized_coherence

            out["W"] = self.memo("minimax_weight", lambda: generalized_coherence(self.gen.A))[0]
        return out

    def with_profile(self, **changes) -> Context:
        """A context with some profile fields changed (same cache)."""
        return Context(replace(self.profile, **changes), self.cache_dir, self.device, self.progress, self.out)


def numpy_rng(ctx: Context, salt: int) -> np.random.Generator:
    return np.random.default_rng([ctx.profile.seed, salt])
