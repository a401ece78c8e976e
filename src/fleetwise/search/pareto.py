"""Pareto fronts over two minimised objectives."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def pareto_front(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Indices of points not dominated when minimising both ``a`` and ``b`` (sorted by ``a``; of equal
    points, the first)."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    # cheap exact pre-filter: a point slower than the leanest point, or leaner-losing than the fastest
    # point, is dominated by it; only the rest need sorting
    lean = np.flatnonzero(b == b.min())
    fast = np.flatnonzero(a == a.min())
    keep = np.flatnonzero((a <= a[lean].min()) & (b <= b[fast].min()))
    sa, sb = a[keep], b[keep]
    if len(keep) > 1024:
        # correlated objectives leave most points: drop those strictly dominated by a few knee points
        # (minimisers of weighted sums of the scaled objectives). A strictly dominated point is never on the
        # front and never lowers the running minimum below that of a point before it, so the front is unchanged
        ra, rb = np.ptp(sa), np.ptp(sb)
        if ra > 0 and rb > 0:
            na, nb = (sa - sa.min()) / ra, (sb - sb.min()) / rb
            for w in (0.25, 0.5, 0.75):
                j = int(np.argmin(w * na + (1.0 - w) * nb))
                aj, bj = sa[j], sb[j]
                live = ~(((sa >= aj) & (sb > bj)) | ((sa > aj) & (sb >= bj)))
                keep, sa, sb, na, nb = keep[live], sa[live], sb[live], na[live], nb[live]
    order = np.lexsort((sb, sa))
    running = np.minimum.accumulate(sb[order])
    prev = np.concatenate(([np.inf], running[:-1]))
    return np.asarray(keep[order[sb[order] < prev]], dtype=np.int64)
