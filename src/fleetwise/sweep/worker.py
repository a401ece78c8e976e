"""One sweep scenario in, one result row out: the best plan, its metrics and intervals (when the model gives them).

Runs in worker processes (process pool or Ray): the catalog, efficiency table and calibration are loaded once
per process and reused, so a scenario costs one search. Rows are plain JSON-able data with a fixed set of
columns (``COLUMNS``); a scenario without a feasible plan gives ``status = "infeasible"`` with the reason, a
bad one ``status = "error"``, never an exception that would stop the sweep.
Entry points: ``evaluate``, ``evaluate_batch``, ``COLUMNS``.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from fleetwise.errors import FleetwiseError, InfeasibleError

COLUMNS: dict[str, str] = {  # name -> arrow type
    "scenario_id": "string", "index": "int64", "kind": "string", "model": "string", "hardware": "string",
    "system": "string", "chips": "int64", "workload": "string", "objective": "string", "status": "string",
    "message": "string", "label": "string", "plan": "string", "plan_chips": "int64",
    "step_time_s": "float64", "tokens_per_s_per_chip": "float64", "tokens_per_s": "float64", "mfu": "float64",
    "memory_per_device_gb": "float64", "goodput_rps": "float64", "ttft_s": "float64", "tpot_s": "float64",
    "energy": "string", "intervals": "string", "candidates_evaluated": "int64",
}
_CACHE: dict[str, Any] = {}


def _shared() -> tuple[Any, Any, Any]:
    if not _CACHE:
        from fleetwise.catalog.loader import load_catalog
        from fleetwise.perf.calibration import load_calibration
        from fleetwise.perf.efficiency import load_efficiency

        _CACHE.update(catalog=load_catalog(), eff=load_efficiency(), cal=load_calibration())
    return _CACHE["catalog"], _CACHE["eff"], _CACHE["cal"]


def _intervals(row: dict[str, Any]) -> str | None:
    found = {k: v for k, v in row.items() if "interval" in k and v is not None}
    return json.dumps(found, sort_keys=True) if found else None


def _train(sc: dict[str, Any]) -> dict[str, Any]:
    from fleetwise.emit.training import default_global_batch
    from fleetwise.perf.setup import make_training_setup
    from fleetwise.plan import TrainingJob
    from fleetwise.search.evaluate import search_training
    from fleetwise.search.serialize import plan_dict
    from fleetwise.search.space import SearchSpace

    cat, eff, cal = _shared()
    wl = sc["workload"]
    m = cat.model(sc["model"], "model")
    accel = cat.accelerator(sc["hardware"], "hardware")
    system = cat.system(sc["system"], "system") if sc.get("system") else cat.default_system(accel.id)
    chips = int(sc["chips"])
    seq = int(wl.get("seq_len", 4096))
    if seq > m.max_seq:
        raise FleetwiseError(f"seq_len {seq} exceeds {m.id}'s max_seq {m.max_seq}")
    gbs = int(wl.get("global_batch") or default_global_batch(seq, chips))  # the library's default rule
    job = TrainingJob(seq_len=seq, global_batch=gbs, precision=wl.get("precision", "bf16"),
                      tokens=wl.get("tokens"), attention_kernel=wl.get("attention_kernel", "flash"),
                      lora_rank=wl.get("lora_rank"))
    setup = make_training_setup(m, accel, system, job, eff=eff, calibration=cal)
    res = search_training(setup, SearchSpace(chips=chips, pinned=dict(sc.get("pinned") or {})), top=int(sc["top"]),
                          objective=sc["objective"])
    if not res.best:
        worst = sorted(res.rejected_by.items(), key=lambda kv: -kv[1])[:2]
        raise InfeasibleError("no feasible plan; most rejected by " + ", ".join(f"{k} ({v})" for k, v in worst if v))
    best = plan_dict(res.best[0])
    tps = best["tokens_per_s_per_chip"]
    return {"label": res.best[0].plan.label(), "plan": json.dumps(best["plan"], sort_keys=True),
            "plan_chips": best["chips"], "step_time_s": best["step_time_s"], "tokens_per_s_per_chip": tps,
            "tokens_per_s": round(tps * best["chips"], 3), "mfu": best["mfu"],
            "memory_per_device_gb": best["memory_per_device_gb"],
            "energy": None if best["energy"] is None else json.dumps(best["energy"], sort_keys=True),
            "intervals": _intervals(best), "candidates_evaluated": res.candidates_evaluated}


def _serve(sc: dict[str, Any]) -> dict[str, Any]:
    from fleetwise.energy.serving import serving_energy_setup
    from fleetwise.perf.inference import make_serving_setup
    from fleetwise.search.serving import ServingWorkload, search_serving

    cat, eff, _ = _shared()
    wl = sc["workload"]
    m = cat.model(sc["model"], "model")
    accel = cat.accelerator(sc["hardware"], "hardware")
    system = cat.system(sc["system"], "system") if sc.get("system") else cat.default_system(accel.id)
    s = make_serving_setup(m, accel, system, eff=eff)
    w = ServingWorkload(float(wl["input_tokens"]), float(wl["output_tokens"]), wl["ttft_ms"] / 1e3,
                        wl["tpot_ms"] / 1e3, None, int(sc["chips"]), float(wl.get("percentile", 90.0)))
    res = search_serving(s, w, top=int(sc["top"]), objective=sc["objective"], energy=serving_energy_setup(s))
    if not res.best:
        worst = max(res.rejected_by, key=lambda k: res.rejected_by[k]) if res.rejected_by else "?"
        raise InfeasibleError(f"no plan meets the targets; most rejected by {worst}")
    c = res.best[0]
    tps = round(c.tokens_per_s_per_chip, 3)
    return {"label": c.plan.label(), "plan": json.dumps(c.plan.model_dump(), sort_keys=True),
            "plan_chips": c.plan.chips, "tokens_per_s_per_chip": tps, "tokens_per_s": round(tps * c.plan.chips, 3),
            "memory_per_device_gb": round(c.memory_per_device_bytes / 1e9, 3), "goodput_rps": round(c.goodput_rps, 4),
            "ttft_s": round(c.ttft_s, 6), "tpot_s": round(c.tpot_s, 6),
            "energy": None if c.energy is None else json.dumps(c.energy, sort_keys=True, default=str),
            "intervals": _intervals({f.name: getattr(c, f.name) for f in fields(c)}),
            "candidates_evaluated": res.candidates_evaluated}


def evaluate(sc: dict[str, Any], index: int, sid: str) -> dict[str, Any]:
    """The result row of scenario ``sc`` (``index`` in the grid, content hash ``sid``)."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(scenario_id=sid, index=index, kind=sc["kind"], model=sc["model"], hardware=sc["hardware"],
               system=sc.get("system"), chips=int(sc["chips"]), workload=sc["workload"]["name"],
               objective=sc["objective"])
    try:
        row.update(_train(sc) if sc["kind"] == "train" else _serve(sc))
        row["status"] = "ok"
    except InfeasibleError as exc:
        row.update(status="infeasible", message=str(exc)[:300])
    except (FleetwiseError, ValueError) as exc:  # pydantic validation errors are ValueErrors
        row.update(status="error", message=f"{type(exc).__name__}: {str(exc)[:300]}")
    return row


def evaluate_batch(batch: list[tuple[dict[str, Any], int, str]]) -> list[dict[str, Any]]:
    """Rows of a batch of (scenario, index, id): the unit of work sent to a pool worker or a Ray task."""
    return [evaluate(sc, i, sid) for sc, i, sid in batch]
