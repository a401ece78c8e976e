"""Pareto fronts over two minimised objectives."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def pareto_front(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Indices of points not dominated when minimising both ``a`` and ``b`` (sorted by ``a``)."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((b, a))
    running = np.minimum.accumulate(b[order])
    prev = np.concatenate(([np.inf], running[:-1]))
    keep = b[order] < prev
    return np.asarray(order[keep], dtype=np.int64)
