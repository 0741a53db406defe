"""Inverse problems: objectives, proximal maps, certificates of optimality and data generators."""

from .lasso import Lasso
from .rpca import RPCA, LowRankPlusSparse, RPCAGenerator, low_rank_plus_sparse
from .sparse import SparseRecovery, SparseSample, gaussian_dictionary

__all__ = ["Lasso", "RPCA", "LowRankPlusSparse", "RPCAGenerator", "low_rank_plus_sparse", "SparseRecovery", "SparseSample",
           "gaussian_dictionary"]
