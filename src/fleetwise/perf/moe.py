"""Routing arithmetic of mixture-of-experts layers shared by the training and serving models.

Entry point: ``token_copies(top_k, nodes)``: how many copies of a token an expert-parallel dispatch sends.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def token_copies(top_k: int, nodes: FloatArray) -> FloatArray:
    """Copies of each token an EP dispatch moves, for experts spread over ``nodes`` scale-up domains.

    Inside one domain a token goes to each of its ``top_k`` experts. Across domains it crosses the network
    once per distinct domain its experts sit on and fans out over scale-up there (DeepEP's normal kernels;
    DeepSeek-V3, arXiv:2412.19437 Sec. 2.1.2): with uniform routing that is n·(1 - (1 - 1/n)^k) domains.
    """
    n = np.maximum(np.asarray(nodes, dtype=np.float64), 1.0)
    distinct = n * (1.0 - np.power(1.0 - 1.0 / n, top_k))
    return np.asarray(np.where(n > 1.0, np.minimum(distinct, float(top_k)), float(top_k)), dtype=np.float64)
