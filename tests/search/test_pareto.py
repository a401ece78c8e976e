"""The Pareto front is the set of non-dominated points (of equal points, the first), sorted by the first objective."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetwise.search.pareto import pareto_front


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=40))
def test_front_is_exactly_the_non_dominated_points(points: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in points], dtype=float)
    b = np.array([p[1] for p in points], dtype=float)
    want = []
    for i in range(len(a)):
        dominated = any((a[j] <= a[i] and b[j] <= b[i]) and (a[j] < a[i] or b[j] < b[i] or j < i)
                        for j in range(len(a)) if j != i)
        if not dominated:
            want.append(i)
    got = pareto_front(a, b)
    assert sorted(got.tolist()) == want
    assert list(a[got]) == sorted(a[got])
