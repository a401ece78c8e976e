"""Nested routing form of the placement MILP: one route variable per (demand, site), prefix capacity rows.

At a site, a route may use the plans whose queueing + TTFT fits its budget (SLO − access − RTT): a prefix of
the plans sorted by that latency. For nested sets Hall's condition on prefixes is sufficient, so one row per
prefix replaces the per-plan routing variables. Entry points: ``tpot_uniform`` (when the form is exact),
``prefix_rows`` (the rows), ``split_routes`` (per-plan routing recovered greedily, tightest routes first).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fleetwise.place.problem import FloatArray, PlacementProblem


def tpot_uniform(p: PlacementProblem) -> bool:
    """Every demand class of a model accepts the same plans on TPOT (so feasible plan sets are nested)."""
    ok = p.plan_tpot_s[None, :] <= p.tpot_slo_s[:, None]  # (D, P)
    first: dict[str, npt.NDArray[np.bool_]] = {}
    for d, m in enumerate(p.demand_model):
        if m in first and not np.array_equal(first[m], ok[d]):
            return False
        first.setdefault(m, ok[d])
    return True


def latency_order(p: PlacementProblem, plans: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return plans[np.argsort((p.queue_s + p.plan_ttft_s)[plans], kind="stable")]


def prefix_rows(p: PlacementProblem, feasible: npt.NDArray[np.bool_], hosts: npt.NDArray[np.bool_],
                 yd: npt.NDArray[np.int64], ys: npt.NDArray[np.int64], x_index: npt.NDArray[np.int64],
                 off_y: int) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """Rows "routes whose plan prefix is within 1..j <= utilisation x capacity of plans 1..j" per site, model, j."""
    rows: list[float] = []
    cols: list[float] = []
    vals: list[float] = []
    n = 0
    k = feasible.sum(axis=2)  # (D, S) length of each route's prefix
    route_index = {(int(d), int(s)): i for i, (d, s) in enumerate(zip(yd, ys, strict=True))}
    for s in range(len(p.site_ids)):
        for model in sorted(set(p.plan_model)):
            plans = latency_order(p, np.nonzero(hosts[s] & (np.array(p.plan_model) == model))[0])
            ds = [d for d in range(len(p.demand_ids)) if p.demand_model[d] == model and (d, s) in route_index]
            if not len(plans) or not ds:
                continue
            for j in range(1, len(plans) + 1):
                members = [d for d in ds if k[d, s] <= j]
                if not members:
                    continue
                rows += [n] * (len(members) + j)
                cols += [off_y + route_index[(d, s)] for d in members] + [x_index[s, q] for q in plans[:j]]
                vals += [1.0] * len(members) + [-p.utilisation * p.plan_goodput_rps[q] for q in plans[:j]]
                n += 1
    return np.array(rows, dtype=float), np.array(cols, dtype=float), np.array(vals, dtype=float), n


def split_routes(p: PlacementProblem, feasible: npt.NDArray[np.bool_], x: FloatArray, yd: npt.NDArray[np.int64],
                  ys: npt.NDArray[np.int64], rate: FloatArray) -> FloatArray:
    """Per-plan routing from per-site routing: tightest routes first, each filling plans within its prefix."""
    y = np.zeros((len(p.demand_ids), len(p.site_ids), len(p.plan_labels)))
    cap = p.utilisation * p.plan_goodput_rps[None, :] * x  # (S, P)
    k = feasible.sum(axis=2)
    for i in np.lexsort((yd, k[yd, ys])):
        d, s, left = int(yd[i]), int(ys[i]), float(rate[i])
        for q in latency_order(p, np.nonzero(feasible[d, s])[0])[::-1]:
            take = min(left, float(cap[s, q]))
            if take > 0:
                y[d, s, q] += take
                cap[s, q] -= take
                left -= take
        if left > 1e-9 * max(float(rate[i]), 1.0):  # solver tolerance: put the rest on the fastest plan
            y[d, s, latency_order(p, np.nonzero(feasible[d, s])[0])[0]] += left
    return y
