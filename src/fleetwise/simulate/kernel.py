"""A small event kernel: a heap of ``(time_s, priority, seq, event)`` with deterministic tie-breaks.

Entry point: ``EventQueue``. ``seq`` comes from the queue's own ``itertools.count()``, so two events at
the same time and priority pop in the order they were pushed. Nothing here reads the clock.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

E = TypeVar("E")


class EventQueue(Generic[E]):
    """Time-ordered events; ties broken by priority, then by insertion order."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, E]] = []
        self._seq = itertools.count()

    def push(self, time_s: float, priority: int, event: E) -> None:
        heapq.heappush(self._heap, (time_s, priority, next(self._seq), event))

    def pop(self) -> tuple[float, E]:
        t, _, _, e = heapq.heappop(self._heap)
        return t, e

    def peek_time(self) -> float:
        return self._heap[0][0] if self._heap else float("inf")

    def __len__(self) -> int:
        return len(self._heap)
