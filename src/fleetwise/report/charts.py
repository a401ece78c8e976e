"""Vega-Lite chart specs for a study: one source for the web page and the HTML report.

``study_charts(study)`` returns the plans (rows and Pareto points, each with a ``key``), the chart specs and a
breakdown template the page fills with the plan a user clicks. Entry points: ``study_charts``,
``breakdown_parts``, ``comparison_spec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetwise.report.tables import flatten, plan_label
from fleetwise.study import Study

VEGA_LITE = "https://vega.github.io/schema/vega-lite/v5.json"  # the schema's name only; nothing is fetched
WIDTH = 520


def breakdown_parts(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The step (or request) time of one plan by part, communication kinds labelled with their network tier."""
    tiers = row.get("comm_tiers") or {}
    parts = []
    for name, seconds in (row.get("breakdown_s") or {}).items():
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            continue
        part = name[:-2] if name.endswith("_s") else name
        kind = part[:-5] if part.endswith("_comm") else None
        if kind is not None:
            tier = tiers.get(kind) if isinstance(tiers, Mapping) else None
            part = f"{kind} comm ({tier})" if isinstance(tier, str) else f"{kind} comm"
        parts.append({"part": part, "seconds": float(seconds)})
    return parts


def _plan_point(key: int, row: Mapping[str, Any], rank: int | None, fronts: list[str]) -> dict[str, Any]:
    energy = row.get("energy") if isinstance(row.get("energy"), Mapping) else {}
    plan = row.get("plan")
    label = plan_label(plan) if isinstance(plan, Mapping) else f"row {key + 1}"
    point: dict[str, Any] = {"key": key, "label": label, "rank": rank, "fronts": fronts,
                             "step_time_s": row.get("step_time_s"), "memory_gb": row.get("memory_per_device_gb"),
                             "mfu": row.get("mfu"), "step_energy_kj": None, "step_cost_usd": None,
                             "step_co2_kg": None, "parts": breakdown_parts(row)}
    if isinstance(energy, Mapping):
        if isinstance(energy.get("step_energy_j"), (int, float)):
            point["step_energy_kj"] = energy["step_energy_j"] / 1e3
        point["step_cost_usd"] = energy.get("step_cost_usd")
        point["step_co2_kg"] = energy.get("step_co2_kg")
    return point


def study_plans(study: Study) -> list[dict[str, Any]]:
    """Every plan the study shows once: its ranked rows, then Pareto points not among them."""
    seen: dict[str, int] = {}
    plans: list[dict[str, Any]] = []
    lists = [("rows", study.rows)] + [(n, list(study.results.get(n) or [])) for n in ("pareto", "pareto_time_energy")]
    for name, rows in lists:
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                continue
            ident = repr(sorted(flatten(row.get("plan") or {"row": i}).items())) if "plan" in row else f"{name}{i}"
            if ident not in seen:
                seen[ident] = len(plans)
                plans.append(_plan_point(len(plans), row, i + 1 if name == "rows" else None, []))
            if name != "rows":
                plans[seen[ident]]["fronts"].append(name)
    return plans


def _scatter(plans: list[dict[str, Any]], x: tuple[str, str], y: tuple[str, str], front: str | None,
             title: str) -> dict[str, Any]:
    pts = [dict(p, on_front=(front is None or front in p["fronts"])) for p in plans
           if isinstance(p.get(x[0]), (int, float)) and isinstance(p.get(y[0]), (int, float))]
    pts = [{k: v for k, v in p.items() if k != "parts"} for p in pts]
    enc_x = {"field": x[0], "type": "quantitative", "title": x[1], "scale": {"zero": False}}
    enc_y = {"field": y[0], "type": "quantitative", "title": y[1], "scale": {"zero": False}}
    tooltip = [{"field": "label", "title": "plan"}, {"field": x[0], "title": x[1], "format": ".4~g"},
               {"field": y[0], "title": y[1], "format": ".4~g"}]
    encoding: dict[str, Any] = {"x": enc_x, "y": enc_y, "tooltip": tooltip}
    point = {"mark": {"type": "point", "filled": True, "size": 90, "cursor": "pointer"}, "encoding": encoding}
    layers: list[dict[str, Any]] = [point]
    if front is not None:
        encoding["color"] = {"field": "on_front", "type": "nominal", "title": "Pareto front",
                             "scale": {"domain": [True, False], "range": ["#d62728", "#9aa"]}}
        layers.insert(0, {"transform": [{"filter": "datum.on_front"}],
                          "mark": {"type": "line", "interpolate": "step-after", "color": "#9ab"},
                          "encoding": {"x": enc_x, "y": enc_y, "order": {"field": x[0]}}})
    return {"$schema": VEGA_LITE, "title": title, "width": WIDTH, "height": 280, "data": {"values": pts},
            "layer": layers}


def breakdown_spec(plans: Sequence[Mapping[str, Any]], title: str) -> dict[str, Any]:
    """Stacked bars: each plan's time by part (compute, comm by tier, bubble, optimizer, …)."""
    values = [{"label": f"{p.get('rank') or '-'}. {p['label']}", "key": p["key"], **part}
              for p in plans for part in p["parts"]]
    return {
        "$schema": VEGA_LITE, "title": title, "width": WIDTH, "data": {"values": values},
        "mark": {"type": "bar", "cursor": "pointer"},
        "encoding": {
            "y": {"field": "label", "type": "nominal", "title": None, "sort": None},
            "x": {"field": "seconds", "type": "quantitative", "title": "seconds per step", "stack": "zero"},
            "color": {"field": "part", "type": "nominal", "title": "part"},
            "tooltip": [{"field": "label", "title": "plan"}, {"field": "part"},
                        {"field": "seconds", "format": ".4~g"}],
        },
    }


def _intervals(study: Study) -> list[dict[str, Any]]:
    """Rows that carry intervals (``intervals: {metric: [lo, hi]}`` or ``metric_lo``/``metric_hi``) as bands."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i, row in enumerate(study.rows):
        flat = flatten(row)
        found: dict[str, tuple[Any, Any]] = {}
        for k, v in (row.get("intervals") or {}).items() if isinstance(row.get("intervals"), Mapping) else []:
            if isinstance(v, Sequence) and len(v) == 2:
                found[k] = (v[0], v[1])
            elif isinstance(v, Mapping):
                found[k] = (v.get("lo"), v.get("hi"))
        for k in flat:
            if k.endswith("_lo") and k[:-3] + "_hi" in flat:
                found[k[:-3]] = (flat[k], flat[k[:-3] + "_hi"])
        for metric, (lo, hi) in found.items():
            mid = flat.get(metric)
            if all(isinstance(v, (int, float)) for v in (lo, hi)):
                out.setdefault(metric, []).append({"rank": i + 1, "lo": lo, "hi": hi,
                                                   "value": mid if isinstance(mid, (int, float)) else None})
    charts = []
    for metric, values in out.items():
        enc_x = {"field": "rank", "type": "quantitative", "title": "plan rank", "axis": {"tickMinStep": 1}}
        charts.append({"name": f"interval_{metric}", "title": f"{metric} with its interval",
                       "spec": {"$schema": VEGA_LITE, "title": f"{metric}: prediction and interval",
                                "width": WIDTH, "height": 220, "data": {"values": values},
                                "layer": [{"mark": {"type": "area", "opacity": 0.25, "color": "#1f77b4"},
                                           "encoding": {"x": enc_x, "y": {"field": "lo", "type": "quantitative",
                                                                          "title": metric}, "y2": {"field": "hi"}}},
                                          {"mark": {"type": "line", "point": True},
                                           "encoding": {"x": enc_x, "y": {"field": "value",
                                                                          "type": "quantitative"}}}]}})
    return charts


def study_charts(study: Study) -> dict[str, Any]:
    """``{"plans": [...], "charts": [{"name", "title", "spec", "clickable"}], "breakdown": template}``."""
    plans = study_plans(study)
    ranked = [p for p in plans if p["rank"] is not None]
    charts: list[dict[str, Any]] = []
    if any(p["parts"] for p in ranked):
        charts.append({"name": "breakdown", "title": "Where the time goes", "clickable": True,
                       "spec": breakdown_spec(ranked, "Time per step by part (ranked plans)")})
    if study.results.get("pareto"):
        charts.append({"name": "pareto_memory", "title": "Pareto front: step time vs memory", "clickable": True,
                       "spec": _scatter(plans, ("step_time_s", "step time (s)"),
                                        ("memory_gb", "memory per device (GB)"), "pareto",
                                        "Step time vs memory per device")})
    if study.results.get("pareto_time_energy"):
        charts.append({"name": "pareto_energy", "title": "Pareto front: step time vs energy", "clickable": True,
                       "spec": _scatter(plans, ("step_time_s", "step time (s)"),
                                        ("step_energy_kj", "energy per step (kJ)"), "pareto_time_energy",
                                        "Step time vs energy per step")})
    if any(isinstance(p["step_cost_usd"], (int, float)) and isinstance(p["step_co2_kg"], (int, float)) for p in plans):
        charts.append({"name": "cost_carbon", "title": "Cost vs carbon", "clickable": True,
                       "spec": _scatter(plans, ("step_cost_usd", "cost per step (USD)"),
                                        ("step_co2_kg", "CO2 per step (kg)"), None, "Cost vs carbon per step")})
    charts.extend(dict(c, clickable=False) for c in _intervals(study))
    return {"plans": plans, "charts": charts, "breakdown": breakdown_spec([], "Breakdown of the chosen plan")}


def comparison_spec(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Side-by-side bars of the best plan of each study: step time, MFU and energy per token."""
    values = [{"study": f"{it['id'][:8]} {it['title'][:40]}", "metric": m, "value": it["best"][m]}
              for it in items for m in ("step_time_s", "mfu", "energy_j_per_token")
              if isinstance(it.get("best", {}).get(m), (int, float))]
    return {"$schema": VEGA_LITE, "title": "Best plan of each study", "data": {"values": values},
            "facet": {"column": {"field": "metric", "type": "nominal", "title": None}},
            "resolve": {"scale": {"x": "independent"}},
            "spec": {"width": 200, "mark": "bar",
                     "encoding": {"y": {"field": "study", "type": "nominal", "title": None},
                                  "x": {"field": "value", "type": "quantitative", "title": None},
                                  "color": {"field": "study", "type": "nominal", "legend": None},
                                  "tooltip": [{"field": "study"}, {"field": "metric"},
                                              {"field": "value", "format": ".4~g"}]}}}


def best_summary(study: Study) -> dict[str, Any]:
    """The first row's headline numbers (for comparisons)."""
    rows = study.rows
    if not rows:
        return {}
    r = rows[0]
    energy = r.get("energy") if isinstance(r.get("energy"), Mapping) else {}
    plan = r.get("plan")
    return {"plan": plan_label(plan) if isinstance(plan, Mapping) else None, "step_time_s": r.get("step_time_s"),
            "mfu": r.get("mfu"), "memory_per_device_gb": r.get("memory_per_device_gb"),
            "tokens_per_s_per_chip": r.get("tokens_per_s_per_chip"), "chips": r.get("chips"),
            "energy_j_per_token": energy.get("energy_j_per_token") if isinstance(energy, Mapping) else None,
            "step_cost_usd": energy.get("step_cost_usd") if isinstance(energy, Mapping) else None}
