"""Which measured plan sweeps a monotone cost model can rank: a data check, not a model fit.

A step-time model in which a micro-batch never gets faster when it carries more work (same model, chips,
tp, pp, cp, ep and recompute; twice the micro-batch) cannot pick a measured-fastest plan whose measured
time per micro-batch is *lower* than that of the same layout at half the micro-batch. This script finds
such points in a sweeps file and reports the sweeps' picks (``fleetwise validate``) with and without them.

Time per micro-batch = measured step time / (micro-batches + pp - 1) (1F1B: the pipeline's fill and drain
add pp - 1 stage times); of several runs of one layout (other dp, global batch), the lowest.

Run: .venv/bin/python scripts/sweep_monotonicity.py [cases.yaml]   (default: the bundled vtrain-sweeps.yaml)
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from fleetwise.validate.cases import Case, load_cases
from fleetwise.validate.runner import validate_files
from fleetwise.validate.specs import bundled_case_files


def _layout(c: Case) -> tuple[Any, ...]:
    t = c.training
    assert t is not None
    overrides = tuple(sorted((c.model_overrides or {}).items()))
    return (c.model, overrides, c.hardware, t.seq_len, t.tp, t.pp, t.cp, t.ep, t.recompute)


def _per_micro_batch(c: Case) -> float | None:
    t = c.training
    if t is None or None in (t.global_batch, t.dp, t.micro_batch, t.pp) or "step_time_s" not in c.measured:
        return None
    n_micro = t.global_batch / (t.dp * t.micro_batch)
    return c.measured["step_time_s"] / (n_micro + t.pp - 1)


def main(path: Path) -> None:
    cases, _ = load_cases(path)
    by_id = {c.id: c for c in cases}
    fastest: dict[tuple[Any, ...], float] = defaultdict(lambda: float("inf"))
    for c in cases:
        t = _per_micro_batch(c)
        if t is not None and c.training is not None:
            key = (*_layout(c), c.training.micro_batch)
            fastest[key] = min(fastest[key], t)
    report = validate_files([path]).to_json()
    groups: dict[bool, list[bool]] = {True: [], False: []}
    print(f"{'sweep':44s} {'measured best':28s} {'ms / micro-batch':>16s} {'at half mb':>10s}  regret")
    for s in report["sweeps"]:
        best = by_id[s["measured_best"]]
        t = best.training
        assert t is not None and t.micro_batch is not None
        here = fastest[(*_layout(best), t.micro_batch)]
        half = fastest.get((*_layout(best), t.micro_batch // 2)) if t.micro_batch > 1 else None
        faster_with_more = half is not None and here < half
        groups[faster_with_more].append(s["regret"] <= 0.05)
        label = f"tp{t.tp} pp{t.pp} dp{t.dp} mb{t.micro_batch}"
        half_s = f"{1e3 * half:10.1f}" if half is not None else f"{'-':>10s}"
        flag = "  faster with twice the micro-batch" if faster_with_more else ""
        print(f"{s['id']:44s} {label:28s} {1e3 * here:16.1f} {half_s}  {s['regret']:6.3f}{flag}")
    for faster, picks in groups.items():
        if picks:
            what = "is faster per micro-batch than at half the micro-batch" if faster else "is monotone"
            print(f"measured best {what}: {len(picks)} sweeps, pick within 5 %: {sum(picks)} "
                  f"({sum(picks) / len(picks):.2f})")


if __name__ == "__main__":
    default = next(p for p in bundled_case_files() if p.name == "vtrain-sweeps.yaml")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
