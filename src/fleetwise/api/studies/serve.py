"""Serving: the library calls behind ``plan/explain/compare/match serve`` and ``simulate``, and their studies.

Public functions (re-exported by ``fleetwise.api``): ``serving_plan``, ``explain_serving``,
``simulate_serving``, ``compare_serving_systems``, ``compare_mixed_serving``, ``match_serving_fleets``.
Each returns JSON-ready data; the ``*_study`` runners wrap them with their resolved inputs.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fleetwise.api.studies.inputs import Inputs, echo
from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.catalog.types import ModelArch
from fleetwise.errors import SpecError
from fleetwise.plan import ServingPlan
from fleetwise.progress import ProgressFn
from fleetwise.study import Study

DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS = 2048.0, 512.0
DEFAULT_TTFT_MS, DEFAULT_TPOT_MS = 2000.0, 50.0  # TPOT 50 ms: CloudMatrix-Infer's target


def serving_plan(fields: Mapping[str, Any], chips: int | None = None, where: str = "plan") -> ServingPlan:
    """A ``ServingPlan`` from JSON data; ``chips`` (if given and ``replicas`` is not) sets the replicas."""
    from pydantic import ValidationError

    from fleetwise.catalog.loader import format_validation_error

    if not isinstance(fields, Mapping):
        raise SpecError(f"{where}: must be an object of serving plan fields (got {echo(fields)})")
    f = dict(fields)
    if chips is not None and "replicas" not in f:
        per = int(f.get("tp", 1)) * int(f.get("pp", 1)) * int(f.get("dp", 1))
        if chips % per:
            raise SpecError(f"--chips ({chips}) must be a multiple of tp*pp*dp ({per})")
        f["replicas"] = chips // per - int(f.get("prefill_replicas", 0))
    try:
        plan = ServingPlan(**f)
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None
    if chips is not None and plan.chips != chips:
        raise SpecError(f"--chips ({chips}) does not match the plan's {plan.chips} chips "
                        f"({plan.replicas} replicas + {plan.prefill_replicas} prefill x {plan.chips_per_replica})")
    return plan


def _setup(model: str | ModelArch, hardware: str, system: str | None, catalog: Catalog, ep: bool,
           speculative: Any = None) -> Any:
    from dataclasses import replace

    from fleetwise.api.core import resolve_model
    from fleetwise.perf.inference import make_serving_setup

    m = resolve_model(catalog, model)
    accel = catalog.accelerator(hardware, "hardware")
    sys_ = catalog.system(system, "system") if system else catalog.default_system(accel.id)
    s = make_serving_setup(m, accel, sys_, expert_parallel=ep)
    return s if speculative is None else replace(s, speculative=speculative)


def _spec_echo(spec: Any) -> dict[str, Any]:
    """The speculative-decoding inputs a study answered with (empty without speculation)."""
    if spec is None:
        return {}
    return {"spec_steps": spec.steps, "accept_length": spec.accept_length, "spec_draft_layers": spec.draft_layers}


def speculative_from(r: Inputs) -> Any:
    """``Speculative`` from the ``spec_steps`` / ``accept_length`` inputs (None without ``spec_steps``)."""
    from fleetwise.perf.inference import Speculative

    steps = r.whole("spec_steps")
    accept = r.number("accept_length")
    if steps is None:
        if accept is not None:
            raise SpecError(f"{r.kind}: accept_length (--accept-length) needs spec_steps (--spec-steps): the draft "
                            "tokens proposed per step")
        return None
    return Speculative(steps=steps, accept_length=accept if accept is not None else 1.0)


def _lengths(input_tokens: float | None, output_tokens: float | None, trace: str | None) -> tuple[float, float]:
    from fleetwise.workload.traces import load_trace

    if trace is not None:
        if input_tokens is not None or output_tokens is not None:
            raise SpecError("give --input-tokens/--output-tokens or --trace (the trace's mean lengths), not both")
        tr = load_trace(trace)
        return float(tr.input_tokens.mean()), float(max(tr.output_tokens.mean(), 1.0))
    if input_tokens is None or output_tokens is None:
        raise SpecError("give --input-tokens and --output-tokens, or --trace")
    return float(input_tokens), float(output_tokens)


def explain_serving(model: str | ModelArch, hardware: str, plan: ServingPlan, *, input_tokens: float | None = None,
                    output_tokens: float | None = None, trace: str | None = None, tpot_ms: float | None = None,
                    ttft_ms: float | None = None, system: str | None = None,
                    catalog: Catalog | None = None, speculative: Any = None) -> dict[str, Any]:
    """One serving plan's steady decode step at its batch limit: batch per rank, step breakdown, TPOT and TTFT
    (the serving search's steady-state formulas, so a ``plan serve`` row is reproduced), throughput, memory.

    With ``tpot_ms`` / ``ttft_ms`` it says whether they are met in steady state (arrivals: ``simulate``)."""
    import numpy as np

    from fleetwise.perf.batching import decode_rates, kv_transfer_s, max_batch_by_kv, prefill_rate, ttft_s
    from fleetwise.perf.inference import ASSUMPTIONS, check_serving_plan, kv_capacity
    from fleetwise.search.serving import ServingWorkload, check_workload
    from fleetwise.simulate.serving import shape_of

    catalog = catalog or load_catalog()
    s = _setup(model, hardware, system, catalog, plan.ep > 1, speculative)
    check_serving_plan(s, plan)  # heads split whole, a layer per stage, weights fit: else InfeasibleError
    i, o = _lengths(input_tokens, output_tokens, trace)
    check_workload(s, ServingWorkload(i, o, (ttft_ms or 1e9) / 1e3, (tpot_ms or 1e9) / 1e3))
    sh = shape_of(plan)
    budget = np.array([float(plan.token_budget)])
    limit = min(float(plan.max_batch), float(max_batch_by_kv(s, sh, i, o, budget)[0]))
    b = np.array([max(limit, 1.0)])
    # the serving search's formulas: a P/D plan's decode engines hold contexts of ~i + o/2 and never prefill;
    # its TTFT is one prompt's prefill plus the KV hand-off; co-located TTFT waits for chunked prefill
    if plan.prefill_replicas:
        r = decode_rates(s, sh, b, i + 0.5 * o, 1.0, with_prefill=False)
        ttft = float((prefill_rate(s, sh, i, np.full_like(b, i))[0].total_s + kv_transfer_s(s, sh, i))[0])
    else:
        r = decode_rates(s, sh, b, i, o)
        ttft = float(ttft_s(r.tpot_s, i, budget)[0])
    mem = kv_capacity(s, sh, budget)
    tpot = round(float(r.tpot_s[0]) * 1e3, 3)
    out: dict[str, Any] = {
        "plan": plan.model_dump(), "label": plan.label(), "chips": plan.chips, "batch_per_rank": limit,
        "input_tokens": i, "output_tokens": o,
        "step_ms": {k: round(float(v[0]) * 1e3, 4) for k, v in r.step.parts().items()},
        "tpot_ms": tpot, "ttft_ms": round(ttft * 1e3, 3),
        "tokens_per_s_per_chip": round(float(r.tokens_per_s_per_chip[0]), 2),
        "memory_per_device_gb": {"weights": round(float(mem.weights[0]) / 1e9, 3),
                                 "reserved": round(float(mem.reserved[0]) / 1e9, 3),
                                 "kv_capacity": round(float(mem.kv_capacity[0]) / 1e9, 3)},
        "constants": {"family": s.constants.family, "compute_scale": s.constants.compute_scale,
                      "step_overhead_s": s.constants.step_overhead_s},
        "assumptions": list(ASSUMPTIONS)}
    if tpot_ms is not None:
        out["meets_tpot"] = tpot <= tpot_ms
    if ttft_ms is not None:
        out["meets_ttft"] = out["ttft_ms"] <= ttft_ms
    return out


def simulate_serving(model: str | ModelArch, hardware: str, plan: ServingPlan, trace: str, *,
                     until_s: float = math.inf, system: str | None = None,
                     catalog: Catalog | None = None,
                     on_warning: Callable[[str], None] | None = None, speculative: Any = None) -> dict[str, Any]:
    """Replay ``trace`` through ``plan`` in the discrete-event simulator: latency percentiles, served output
    tokens/s (simulated time), and the simulator's own speed (requests per second of wall time)."""
    from fleetwise.perf.inference import check_serving_plan
    from fleetwise.simulate.serving import offered_load, overload_warning, simulate
    from fleetwise.workload.traces import load_trace

    catalog = catalog or load_catalog()
    s = _setup(model, hardware, system, catalog, plan.ep > 1, speculative)
    check_serving_plan(s, plan)  # before reading the trace: a plan that cannot run fails at once
    tr = load_trace(trace)
    load = offered_load(s, plan, tr)
    warning = overload_warning(load)
    if warning and on_warning is not None:  # said before the replay, which may take long
        on_warning(warning)
    t0 = time.perf_counter()
    r = simulate(s, plan, tr, until_s)
    wall = time.perf_counter() - t0
    out = {"plan": plan.model_dump(), "label": plan.label(), "chips": plan.chips, "trace": str(trace), **r.summary()}
    out["served_output_tokens_per_s"] = out.pop("output_tokens_per_s")
    out["offered_load"] = None if load is None else round(load, 4)
    out["warnings"] = [warning] if warning else []
    out["simulator"] = {"wall_seconds": round(wall, 3),
                        "requests_per_wall_second": round(out["requests"] / max(wall, 1e-9), 1)}
    return out


def _phase(o: Any) -> dict[str, Any]:
    return {"engine": o.label(), "engine_chips": o.engine_chips, "tp": o.tp, "ep": o.ep, "weights": o.weights,
            "kv": o.kv, "per_rank": o.per_rank, "tokens_per_s_per_chip": round(o.tokens_per_s_per_chip, 1),
            "latency_ms": round(o.latency_s * 1e3, 2), "kv_handoff_ms": round(o.handoff_s * 1e3, 2),
            "step_ms": {k: round(v * 1e3, 3) for k, v in o.parts_s.items()}}


def system_doc(r: Any, catalog: Catalog) -> dict[str, Any]:
    """One system's serving result as JSON data (every number from the search and the catalog)."""
    d, pw = r.deployment, r.power
    sys_ = catalog.system(r.system_id)
    cost = r.usd_per_million_output_tokens
    return {
        "system": r.system_id, "accelerator": r.accelerator_id, "chips": r.chips, "nodes": pw.nodes,
        "per_chip": {"prefill_tokens_per_s": round(r.prefill_best.tokens_per_s_per_chip, 1),
                     "decode_tokens_per_s": round(r.decode_best.tokens_per_s_per_chip, 1),
                     "prefill_engine": r.prefill_best.label(), "decode_engine": r.decode_best.label()},
        "per_system": {"prefill_tokens_per_s_all_chips": round(r.prefill_best.tokens_per_s_per_chip * r.chips, 0),
                       "decode_tokens_per_s_all_chips": round(r.decode_best.tokens_per_s_per_chip * r.chips, 0),
                       "balanced_requests_per_s": round(d.goodput_rps, 2),
                       "balanced_output_tokens_per_s": round(r.output_tokens_per_s, 0)},
        "deployment": {"prefill_engines": d.prefill_engines, "decode_engines": d.decode_engines,
                       "chips_used": d.chips_used, "prefill": _phase(d.prefill), "decode": _phase(d.decode)},
        "power": {"nameplate_w": round(pw.nameplate_w, 0),
                  "nameplate_basis": (f"node_power_w {sys_.node_power_w:g} W x {pw.nodes} nodes"
                                      if sys_.node_power_w is not None else "chips x TDP + host + network"),
                  "serving_it_w": round(pw.it_w, 0), "chips_w": round(pw.chips_w, 0), "host_w": round(pw.host_w, 0),
                  "network_w": round(pw.network_w, 0), "pue": pw.pue, "facility_w": round(pw.facility_w, 0),
                  "derived": list(pw.derived)},
        "output_tokens_per_joule": round(r.tokens_per_joule, 4),
        "output_tokens_per_joule_nameplate": round(r.tokens_per_joule_nameplate, 4),
        "site": r.site_id, "usd_per_kwh": r.usd_per_kwh,
        "usd_per_chip_hour": None if r.usd_per_chip_hour is None else round(r.usd_per_chip_hour, 4),
        "usd_per_million_output_tokens": None if cost is None else round(cost, 4),
        "energy_usd_per_million_output_tokens": round(r.energy_usd_per_million_output_tokens, 4),
    }


def _ratios(docs: list[dict[str, Any]]) -> dict[str, float]:
    a, b = docs[0], docs[1]
    return {"power_ratio_first_over_second": round(a["power"]["nameplate_w"] / b["power"]["nameplate_w"], 3),
            "per_chip_decode_second_over_first": round(b["per_chip"]["decode_tokens_per_s"]
                                                       / a["per_chip"]["decode_tokens_per_s"], 3),
            "per_chip_prefill_second_over_first": round(b["per_chip"]["prefill_tokens_per_s"]
                                                        / a["per_chip"]["prefill_tokens_per_s"], 3),
            "tokens_per_joule_second_over_first": round(b["output_tokens_per_joule"]
                                                        / a["output_tokens_per_joule"], 3)}


def _workload(input_tokens: float, output_tokens: float, ttft_ms: float, tpot_ms: float) -> Any:
    from fleetwise.search.serving import ServingWorkload

    return ServingWorkload(input_tokens, output_tokens, ttft_ms / 1e3, tpot_ms / 1e3)


def compare_serving_systems(model: str | ModelArch, systems: list[str], *,
                            input_tokens: float = DEFAULT_INPUT_TOKENS, output_tokens: float = DEFAULT_OUTPUT_TOKENS,
                            ttft_ms: float = DEFAULT_TTFT_MS, tpot_ms: float = DEFAULT_TPOT_MS,
                            site: str | None = None, node_chips: int | None = None,
                            prices: Mapping[str, float] | None = None,
                            catalog: Catalog | None = None) -> dict[str, Any]:
    """Serve ``model`` on one whole unit of each system with its best large-EP deployment: per-chip and
    per-system throughput, power, tokens per joule and cost, with every assumption."""
    from fleetwise.api.core import resolve_model
    from fleetwise.perf.inference import ASSUMPTIONS
    from fleetwise.search.systems import SERVING_ASSUMPTIONS, compare_systems

    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    sys_ = [catalog.system(x, "systems") for x in systems]
    w = _workload(input_tokens, output_tokens, ttft_ms, tpot_ms)
    results = compare_systems(m, sys_, w, catalog, site, node_chips, dict(prices or {}))
    docs = [system_doc(r, catalog) for r in results]
    out: dict[str, Any] = {"systems": docs, "assumptions": list(SERVING_ASSUMPTIONS) + list(ASSUMPTIONS) + [
        "system power: nameplate = catalog node_power_w x nodes of the system; modelled serving draw = chips in "
        "their phase mix + host + NICs/switch ports",
        "cost = (chip price amortised or site rent) + facility energy; null where no price is known "
        "(give --price CHIP=USD)"]}
    if len(docs) >= 2:
        out["ratios"] = _ratios(docs)
    return out


def compare_mixed_serving(model: str | ModelArch, fleet: str, *, input_tokens: float = DEFAULT_INPUT_TOKENS,
                          output_tokens: float = DEFAULT_OUTPUT_TOKENS, ttft_ms: float = DEFAULT_TTFT_MS,
                          tpot_ms: float = DEFAULT_TPOT_MS, catalog: Catalog | None = None) -> dict[str, Any]:
    """A prefill/decode split across two chip types (``"HW:N,HW:M"``) against single-type plans."""
    from fleetwise.api.core import resolve_model
    from fleetwise.search.fleet import parse_fleet
    from fleetwise.search.mixed_serving import search_mixed_serving

    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    r = search_mixed_serving(m, parse_fleet(fleet, catalog), _workload(input_tokens, output_tokens, ttft_ms, tpot_ms))
    mx = r.mixed
    mixed = None if mx is None else {
        "goodput_rps": round(mx.goodput_rps, 2), "prefill_type": mx.prefill_type, "decode_type": mx.decode_type,
        "pair": {"prefill_engines": mx.pair.prefill_engines, "prefill": _phase(mx.pair.prefill),
                 "decode_engines": mx.pair.decode_engines, "decode": _phase(mx.pair.decode),
                 "goodput_rps": round(mx.pair.goodput_rps, 2)},
        "leftover": [{"accelerator": x.accelerator_id, "chips": x.chips, "goodput_rps": round(x.goodput_rps, 2),
                      "plan": x.label} for x in mx.leftover]}

    def single(x: Any) -> dict[str, Any]:
        return {"accelerator": x.accelerator_id, "chips": x.chips, "goodput_rps": round(x.goodput_rps, 2),
                "plan": x.label}

    return {"fleet": [list(f) for f in r.fleet], "mixed": mixed,
            "same_total": [single(x) for x in r.same_total], "alone": [single(x) for x in r.alone],
            "split_fleet_rps": round(r.split_fleet_rps, 2),
            "gain_over_best_single_same_total": round(r.gain_over_best_single, 4), "assumptions": list(r.notes)}


def match_serving_fleets(model: str | ModelArch, ours: str, theirs: str, their_chips: int, *,
                         input_tokens: float = DEFAULT_INPUT_TOKENS, output_tokens: float = DEFAULT_OUTPUT_TOKENS,
                         ttft_ms: float = DEFAULT_TTFT_MS, tpot_ms: float = DEFAULT_TPOT_MS, site: str | None = None,
                         catalog: Catalog | None = None) -> dict[str, Any]:
    """How many of our chips serve the reference fleet's goodput under the same SLOs, with power and cost."""
    from fleetwise.api.core import resolve_model
    from fleetwise.search.fleet import FleetPart
    from fleetwise.search.mixed_serving import match_serving

    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    ours_a, theirs_a = catalog.accelerator(ours, "ours"), catalog.accelerator(theirs, "theirs")
    res = match_serving(m, FleetPart(ours_a, catalog.default_system(ours_a.id), 1),
                        FleetPart(theirs_a, catalog.default_system(theirs_a.id), their_chips),
                        _workload(input_tokens, output_tokens, ttft_ms, tpot_ms), site)

    def side(f: Any) -> dict[str, Any]:
        return {"accelerator": f.accelerator_id, "chips": f.chips, "goodput_rps": round(f.goodput_rps, 2),
                "plan": f.label, "nameplate_kw": round(f.nameplate_w / 1e3, 2),
                "facility_kw": round(f.facility_w / 1e3, 2),
                "usd_per_hour": None if f.usd_per_hour is None else round(f.usd_per_hour, 2)}

    return {"ours": side(res.ours), "theirs": side(res.theirs), "chips_ratio": round(res.chips_ratio, 3),
            "answer": f"exact minimum under the model: {res.ours.chips} chips found by bisection over every count "
                      "(goodput never falls as chips are added)",
            "assumptions": ["same TTFT/TPOT for both fleets; each fleet's best plan (co-located or P/D)",
                            "power at nameplate (node_power_w, else chips x TDP + host + network) x PUE: an "
                            "upper bound on the serving draw"]}


# --- study runners ----------------------------------------------------------------------------------------------

_SLO = ("input_tokens", "output_tokens", "ttft_ms", "tpot_ms")

SERVE_INPUTS: dict[str, tuple[str, ...]] = {  # the inputs each study kind takes (any other is rejected)
    "plan_serve": ("model", "hardware", "system", "ttft_ms", "tpot_ms", "input_tokens", "output_tokens", "trace",
                   "rate", "chips", "percentile", "top", "objective", "site", "power_cap_w", "confirm", "spec_steps",
                   "accept_length"),
    "explain_serve": ("model", "hardware", "system", "plan", "chips", "input_tokens", "output_tokens", "trace",
                      "tpot_ms", "ttft_ms", "spec_steps", "accept_length"),
    "simulate": ("model", "hardware", "system", "plan", "chips", "trace", "until_s", "spec_steps", "accept_length"),
    "compare_serve": ("model", "systems", "mixed", "site", "node_chips", "prices", *_SLO),
    "match_serve": ("model", "ours", "theirs", "their_chips", "site", *_SLO),
    "validate": ("files", "loso"),
}


def _slo(r: Inputs) -> dict[str, float]:
    d = {"input_tokens": DEFAULT_INPUT_TOKENS, "output_tokens": DEFAULT_OUTPUT_TOKENS, "ttft_ms": DEFAULT_TTFT_MS,
         "tpot_ms": DEFAULT_TPOT_MS}
    return {k: r.number(k, v) or v for k, v in d.items()}


def _model_echo(catalog: Catalog, model: str) -> dict[str, str]:
    from fleetwise.api.core import resolve_model

    return {"model": model, "model_id": resolve_model(catalog, model).id}


def _sys_echo(catalog: Catalog, hardware: str, system: str | None) -> str | None:
    if system is not None:
        return system
    s = catalog.default_system(catalog.accelerator(hardware, "hardware").id)
    return None if s is None else s.id


def plan_serve(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.api.core import plan_serving
    from fleetwise.search.serialize import serving_row

    r = Inputs("plan_serve", inputs, SERVE_INPUTS["plan_serve"])
    model, hw = r.req_text("model"), r.req_text("hardware")
    ttft, tpot = r.number("ttft_ms", required=True), r.number("tpot_ms", required=True)
    trace = r.text("trace")
    i, o = r.number("input_tokens"), r.number("output_tokens")
    if trace is not None and (i is not None or o is not None):
        raise SpecError("plan_serve: give --input-tokens/--output-tokens or --trace (its mean lengths), not both")
    kw = {"rate": r.number("rate"), "chips": r.whole("chips"),
          "percentile": r.number("percentile", 90.0, maximum=100.0),
          "top": r.whole("top", 10), "objective": r.text("objective", "cost", choices=("time", "energy", "cost")),
          "site": r.text("site"), "power_cap_w": r.number("power_cap_w"), "confirm": r.switch("confirm", True)}
    spec = speculative_from(r)
    plans = plan_serving(model, hw, system=r.text("system"), ttft_ms=ttft or 0.0, tpot_ms=tpot or 0.0,
                         input_tokens=i, output_tokens=o, trace=trace, catalog=catalog, speculative=spec,
                         **kw)  # type: ignore[arg-type]
    w = plans.workload
    resolved = {**_model_echo(catalog, model), "hardware": hw, "system": _sys_echo(catalog, hw, r.text("system")),
                "ttft_ms": ttft, "tpot_ms": tpot, "input_tokens": w.input_tokens, "output_tokens": w.output_tokens,
                "lengths_from": "trace mean" if trace else "given", "trace": trace, **kw, **_spec_echo(spec)}
    if trace is not None and kw["rate"] is not None:
        resolved["trace_replay"] = f"trace arrivals time-scaled to {kw['rate']:g} req/s"
    rows = [serving_row(c, sim, hw) for c, sim in zip(plans.best, plans.confirmations, strict=True)]
    from fleetwise.perf.intervals import intervals_of, ties_with_next

    per_chip = [row["goodput_rps"] / row["chips"] for row in rows]  # ranked by chips per goodput
    tie = ties_with_next(per_chip, [intervals_of("inference", hw, {"goodput_rps": v})["goodput_rps"] for v in per_chip])
    for row, t in zip(rows, tie, strict=True):
        row["ties_with_next"] = t
    return Study("plan_serve", {**resolved, "defaults": r.defaults()},
                 {"rows": rows, "candidates_evaluated": plans.search.candidates_evaluated,
                  "rejected_by": plans.search.rejected_by})


def _plan_input(r: Inputs) -> ServingPlan:
    if not r.has("plan"):
        raise SpecError(f"{r.kind}: plan is required (--tp --replicas ..., or --plan STUDY.json)")
    return serving_plan(r.data["plan"], r.whole("chips"), f"{r.kind}.plan")


def explain_serve(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    why = "explain serve reports one steady state; use simulate (arrivals, percentiles) or plan serve (a rate)"
    r = Inputs("explain_serve", inputs, SERVE_INPUTS["explain_serve"],
               {"percentile": why, "rate": why})
    model, hw = r.req_text("model"), r.req_text("hardware")
    plan = _plan_input(r)
    spec = speculative_from(r)
    out = explain_serving(model, hw, plan, input_tokens=r.number("input_tokens"),
                          output_tokens=r.number("output_tokens"), trace=r.text("trace"), tpot_ms=r.number("tpot_ms"),
                          ttft_ms=r.number("ttft_ms"), system=r.text("system"), catalog=catalog, speculative=spec)
    resolved = {**_model_echo(catalog, model), "hardware": hw, "system": _sys_echo(catalog, hw, r.text("system")),
                "plan": plan.model_dump(), "chips": plan.chips, "input_tokens": out["input_tokens"],
                "output_tokens": out["output_tokens"], "trace": r.text("trace"), "tpot_ms": r.number("tpot_ms"),
                "ttft_ms": r.number("ttft_ms"), **_spec_echo(spec)}
    return Study("explain_serve", {**resolved, "defaults": r.defaults()}, {"rows": [out]})


def simulate_study(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    r = Inputs("simulate", inputs, SERVE_INPUTS["simulate"])
    model, hw, trace = r.req_text("model"), r.req_text("hardware"), r.req_text("trace")
    plan = _plan_input(r)
    until = r.number("until_s")
    spec = speculative_from(r)
    out = simulate_serving(model, hw, plan, trace, until_s=math.inf if until is None else until,
                           system=r.text("system"), catalog=catalog, speculative=spec,
                           on_warning=lambda w: print(f"fleetwise: warning: {w}", file=sys.stderr))
    resolved = {**_model_echo(catalog, model), "hardware": hw, "system": _sys_echo(catalog, hw, r.text("system")),
                "plan": plan.model_dump(), "chips": plan.chips, "trace": trace, "until_s": until, **_spec_echo(spec)}
    return Study("simulate", {**resolved, "defaults": r.defaults()}, {"rows": [out]})


def _prices(raw: object) -> dict[str, float]:
    if isinstance(raw, list):  # ["chip=usd", ...] from the command line
        out: dict[str, float] = {}
        for item in raw:
            chip, _, usd = str(item).partition("=")
            try:
                out[chip] = float(usd)
            except ValueError:
                raise SpecError(f"--price must be CHIP=USD, e.g. huawei_ascend_910c=20000 (got {echo(item)})") from None
        raw = out
    if not isinstance(raw, Mapping):
        raise SpecError(f"compare_serve: prices must be an object chip id -> USD (got {echo(raw)})")
    for chip, usd in raw.items():
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not usd > 0 or not math.isfinite(usd):
            raise SpecError(f"--price {chip}: must be a positive number of USD (got {echo(usd)})")
    return {str(k): float(v) for k, v in raw.items()}


def compare_serve(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    r = Inputs("compare_serve", inputs, SERVE_INPUTS["compare_serve"])
    model = r.req_text("model")
    systems = r.ids("systems")
    mixed = r.text("mixed")
    if bool(systems) == (mixed is not None):
        raise SpecError("compare_serve: give exactly one of systems (--systems A,B) or mixed (--mixed HW:N,HW:M)")
    slo = _slo(r)
    resolved: dict[str, Any] = {**_model_echo(catalog, model), **slo}
    if mixed is not None:
        for k in ("site", "node_chips", "prices"):
            if r.has(k):
                raise SpecError(f"compare_serve: {k} (--{k.replace('_', '-').rstrip('s')}) applies to --systems "
                                "only; a mixed fleet is compared by goodput on its own chips")
        out = compare_mixed_serving(model, mixed, catalog=catalog, **slo)
        resolved["mixed"] = mixed
        return Study("compare_serve", {**resolved, "defaults": r.defaults()}, out)
    prices = _prices(r.data.get("prices", {}))
    node_chips, site = r.whole("node_chips"), r.text("site")
    out = compare_serving_systems(model, systems, site=site, node_chips=node_chips, prices=prices, catalog=catalog,
                                  **slo)
    docs = out.pop("systems")
    resolved.update(systems=systems, site=site, node_chips=node_chips, prices=prices)
    return Study("compare_serve", {**resolved, "defaults": r.defaults()}, {"rows": docs, **out})


def match_serve(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    r = Inputs("match_serve", inputs, SERVE_INPUTS["match_serve"])
    model, ours, theirs = r.req_text("model"), r.req_text("ours"), r.req_text("theirs")
    their_chips, site, slo = r.req_whole("their_chips"), r.text("site"), _slo(r)
    out = match_serving_fleets(model, ours, theirs, their_chips, site=site, catalog=catalog, **slo)
    resolved = {**_model_echo(catalog, model), "ours": ours, "theirs": theirs, "their_chips": their_chips,
                "site": site, **slo}
    return Study("match_serve", {**resolved, "defaults": r.defaults()}, out)


def validate_study(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.validate.runner import bundled_case_files, validate_files

    r = Inputs("validate", inputs, SERVE_INPUTS["validate"])
    files = r.ids("files")
    loso = r.switch("loso", False)
    report = validate_files([Path(f) for f in files] or bundled_case_files(), catalog, loso=loso, progress=progress)
    return Study("validate", {"files": files or ["(bundled cases)"], "loso": loso, "defaults": r.defaults()},
                 report.to_json())
