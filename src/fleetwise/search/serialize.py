"""Training search results as JSON data (stable key order, plain rounded floats): the rows of a study."""

from __future__ import annotations

from typing import Any

from fleetwise.search.evaluate import PlanResult, TrainingSearch

GB = 1e9


def plan_dict(r: PlanResult) -> dict[str, Any]:
    return {
        "plan": r.plan.model_dump(),
        "chips": r.chips,
        "step_time_s": round(r.step_time_s, 6),
        "tokens_per_s_per_chip": round(r.tokens_per_s_per_chip, 3),
        "mfu": round(r.mfu, 5),
        "model_tflops_per_chip": round(r.model_tflops_per_chip, 3),
        "memory_per_device_gb": round(r.memory_total_bytes / GB, 3),
        "memory_capacity_gb": round(r.memory_capacity_bytes / GB, 3),
        "days": None if r.days is None else round(r.days, 4),
        "breakdown_s": {k: round(v, 6) for k, v in r.breakdown_s.items()},
        "memory_gb": {k: round(v / GB, 4) for k, v in r.memory_bytes.items()},
        "memory_stage": memory_stage(r),
        "comm_tiers": r.comm_tiers,
        "constants": r.constants,
        "energy": None if r.energy is None else _energy_dict(r.energy),
        "intervals": {k: v.to_json() for k, v in r.intervals().items()},  # central 80 % (perf/data/intervals.yaml)
    }


def memory_stage(r: PlanResult) -> str:
    """The pipeline stage whose memory ``memory_gb`` shows (perf.memory prices the first and the last and keeps
    the larger): "only" with pp = 1, "last" when it holds the logits, else "first"."""
    if r.plan.pp == 1:
        return "only"
    return "last" if r.memory_bytes.get("logits", 0.0) > 0 else "first"


def ties(plans: list[PlanResult]) -> list[bool]:
    """Whether each ranked plan's lead over the next is inside the model's 80 % error on such leads (the plan
    sweeps' fit in perf/data/intervals.yaml ``lead``; the step-time intervals where there is none): a tie."""
    from fleetwise.perf.intervals import ties_with_next

    return ties_with_next([r.step_time_s for r in plans], [r.intervals()["step_time_s"] for r in plans], by_lead=True)


def _energy_dict(e: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(e)
    d["phases"] = {k: {"chips": v[0], "power_w": v[1], "seconds": v[2]} for k, v in e.phases.items()}
    return d


def search_dict(s: TrainingSearch) -> dict[str, Any]:
    return {
        "candidates_evaluated": s.candidates_evaluated,
        "feasible": s.feasible,
        "search_seconds": round(s.search_seconds, 4),
        "rejected_by": s.rejected_by,
        "best": [{**plan_dict(r), "ties_with_next": t} for r, t in zip(s.best, ties(s.best), strict=True)],
        "pareto": [plan_dict(r) for r in s.pareto],
        "pareto_time_energy": [plan_dict(r) for r in s.pareto_time_energy],
        "objective": s.objective,
        "assumptions": list(s.assumptions),
    }


def rounded(v: Any) -> Any:
    """Floats to 6 significant digits, through dicts and lists."""
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [rounded(x) for x in v]
    return v


def serving_row(c: Any, sim: Any = None, chip: str | None = None) -> dict[str, Any]:
    """One ranked serving plan (a ``ServingCandidate``) and its simulator replay (a ``Confirmation``) if run."""
    row: dict[str, Any] = {"plan": c.plan.model_dump(), "label": c.plan.label(), "chips": c.plan.chips,
                           "goodput_rps": round(c.goodput_rps, 4),
                           "tokens_per_s_per_chip": round(c.tokens_per_s_per_chip, 2),
                           "ttft_ms": round(c.ttft_s * 1e3, 3), "tpot_ms": round(c.tpot_s * 1e3, 3),
                           "memory_per_device_gb": round(c.memory_per_device_bytes / 1e9, 3),
                           "chips_per_goodput": round(c.chips_per_goodput, 4)}
    if c.energy is not None:
        row["energy"] = rounded(c.energy)
    if chip is not None:
        from fleetwise.perf.intervals import intervals_of

        row["intervals"] = {k: v.to_json() for k, v in intervals_of("inference", chip, {
            "ttft_ms": row["ttft_ms"], "tpot_ms": row["tpot_ms"], "goodput_rps": row["goodput_rps"],
            "tokens_per_s_per_chip": row["tokens_per_s_per_chip"]}).items()}
    if sim is not None:
        row["simulated"] = {"ttft_ms": round(sim.ttft_s * 1e3, 3), "tpot_ms": round(sim.tpot_s * 1e3, 3),
                            "requests": sim.requests, "meets_slo": sim.meets_slo}
    return row
