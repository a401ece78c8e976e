"""Results of a simulation: per-request latencies, per-replica utilisation, and their summaries.

Entry point: ``ServingResult`` (built by ``simulate.serving``), with ``summary()`` giving the
percentiles the CLI prints and ``goodput`` (requests per second meeting both SLOs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """One engine's activity: busy seconds, steps run, mean and peak running batch, preemptions."""

    role: str  # "mixed" | "prefill" | "decode"
    busy_s: float
    steps: int
    mean_batch: float
    max_batch: int
    preemptions: int


@dataclass(frozen=True, slots=True)
class ServingResult:
    """Per-request timestamps (seconds from the first arrival) and per-replica stats."""

    arrival_s: FloatArray
    first_token_s: FloatArray
    done_s: FloatArray
    output_tokens: FloatArray
    replicas: tuple[ReplicaStats, ...]
    until_s: float
    offered_load: float | None = None  # trace demand over the plan's full-batch capacity (>1: overloaded)

    @property
    def ttft_s(self) -> FloatArray:
        return np.asarray(self.first_token_s - self.arrival_s)

    @property
    def tpot_s(self) -> FloatArray:
        """Mean time per output token after the first (0 for one-token outputs; NaN for unfinished requests)."""
        with np.errstate(invalid="ignore"):  # unfinished requests (stopped by until_s): inf - inf
            return np.asarray((self.done_s - self.first_token_s) / np.maximum(self.output_tokens - 1.0, 1.0))

    @property
    def e2e_s(self) -> FloatArray:
        return np.asarray(self.done_s - self.arrival_s)

    @property
    def completed(self) -> npt.NDArray[np.bool_]:
        return np.asarray(np.isfinite(self.done_s))

    @property
    def makespan_s(self) -> float:
        done = self.done_s[self.completed]
        return float(done.max()) if done.size else 0.0

    def goodput(self, ttft_s: float, tpot_s: float) -> float:
        """Requests per second that finished meeting both latency targets, over the trace's arrival span.

        The span is that of the offered load (last arrival), not of the drain after it, so goodput only moves
        with how many requests meet their targets; an offline trace (all arrivals at 0) uses the makespan.
        """
        ok = self.completed & (self.ttft_s <= ttft_s) & (self.tpot_s <= tpot_s)
        last_arrival = float(self.arrival_s.max()) if self.arrival_s.size else 0.0
        span = max(last_arrival if last_arrival > 0 else self.makespan_s, 1e-9)
        return float(ok.sum()) / span

    def summary(self) -> dict[str, Any]:
        c = self.completed
        out: dict[str, Any] = {"requests": int(self.arrival_s.size), "completed": int(c.sum()),
                               "makespan_s": round(self.makespan_s, 6)}
        for name, v in (("ttft_ms", self.ttft_s), ("tpot_ms", self.tpot_s), ("e2e_ms", self.e2e_s)):
            vals = v[c] * 1e3
            out[name] = {f"p{p:g}": round(float(np.percentile(vals, p)), 4) if vals.size else None
                         for p in PERCENTILES}
            out[name]["mean"] = round(float(vals.mean()), 4) if vals.size else None
        out["offered_load"] = None if self.offered_load is None else round(self.offered_load, 4)
        out["output_tokens_per_s"] = round(float(self.output_tokens[c].sum()) / max(self.makespan_s, 1e-9), 3)
        out["replicas"] = [{"role": r.role, "utilisation": round(r.busy_s / max(self.makespan_s, 1e-9), 4),
                            "steps": r.steps, "mean_batch": round(r.mean_batch, 3), "max_batch": r.max_batch,
                            "preemptions": r.preemptions} for r in self.replicas]
        return out
