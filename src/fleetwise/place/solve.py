"""Solve the serving-placement MILP with HiGHS (scipy.optimize.milp, imported when called).

Variables: integer replicas x[s,p] of each plan kind per site; continuous routed rate y[d,s,p] (requests/s) on
SLO-feasible routes only; owned and rented chips o[s,k], r[s,k]; unmet demand u[d] (penalised, then reported).
Entry points: ``solve(problem, objective)`` → ``Placement``; ``solve_heuristic(problem, rule)`` (nearest
region, cheapest region meeting the SLO); ``pareto_front(problem)`` (cost vs carbon, epsilon-constraint).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fleetwise.errors import FleetwiseError, InfeasibleError, SpecError
from fleetwise.place.problem import HOUR_S, FloatArray, PlacementProblem
from fleetwise.place.routing import prefix_rows, split_routes, tpot_uniform
from fleetwise.place.spec import OBJECTIVES

UNMET_PENALTY = 1e3  # per (request/s) in units of the objective's largest per-rps coefficient
HEURISTICS = ("nearest", "cheapest")


class SolverError(FleetwiseError):
    """The MILP solver is missing or failed."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A solved placement: replicas, routing, totals per hour, SLO slack, and the solver's gap."""

    problem: PlacementProblem
    objective: str
    objective_value: float
    replicas: FloatArray  # (S, P)
    routed_rps: FloatArray  # (D, S, P)
    unmet_rps: FloatArray  # (D,)
    rented_chips: FloatArray  # (S, K)
    gap: float
    solve_s: float
    method: str = "milp"

    @property
    def routing(self) -> FloatArray:
        """(D, S) requests/s from each demand class to each site."""
        return np.asarray(self.routed_rps.sum(axis=2))

    def site_power_w(self) -> FloatArray:
        return np.asarray((self.replicas * self.problem.power_w()).sum(axis=1))

    def chips_used(self) -> FloatArray:
        """(S, K) chips used by the replicas."""
        p = self.problem
        out = np.zeros_like(p.on_hand)
        for k in range(len(p.chip_ids)):
            out[:, k] = (self.replicas[:, p.plan_chip == k] * p.plan_chips[p.plan_chip == k]).sum(axis=1)
        return out

    def totals(self) -> dict[str, float]:
        """Cost (USD/h), energy (kWh/h), carbon (kg/h), served share and SLO share of the whole placement."""
        p = self.problem
        kw = self.site_power_w() / 1e3
        used = self.chips_used()
        owned = np.minimum(used, p.on_hand)
        rented = used - owned
        chip_usd = float((owned * p.own_usd_per_chip_hour).sum() + (rented * p.rent_usd_per_chip_hour).sum())
        energy_usd = float((kw * p.usd_per_kwh).sum())
        egress = float((self.routing * (p.bytes_per_request[:, None] * HOUR_S / 1e9)
                        * p.egress_usd_per_gb[None, :]).sum())
        carbon = float((kw * p.gco2_per_kwh).sum() / 1e3)
        lat = p.latency_s()
        ok = lat <= p.ttft_slo_s[:, None, None]
        met = float((self.routed_rps * ok).sum())
        offered = float(p.rate_rps.sum())
        cost = chip_usd + energy_usd + egress
        return {"cost_usd_per_h": cost, "chip_usd_per_h": chip_usd, "energy_usd_per_h": energy_usd,
                "egress_usd_per_h": egress, "energy_kwh_per_h": float(kw.sum()), "carbon_kg_per_h": carbon,
                "weighted_usd_per_h": cost + carbon / 1e3 * p.carbon_usd_per_t,
                "offered_rps": offered, "routed_rps": float(self.routed_rps.sum()),
                "served_share": float(self.routed_rps.sum()) / offered, "slo_met_share": met / offered,
                "chips": float(used.sum()), "usd_per_mtoken": cost / max(float(self.routed_rps.sum()) * HOUR_S, 1e-9)
                * 1e6 / _output_tokens(p)}

    def slo_slack_ms(self) -> dict[str, float]:
        """Per demand class: the SLO minus the worst TTFT over the routes it uses (ms; nan if nothing routed)."""
        p = self.problem
        lat = p.latency_s()
        out = {}
        for d, did in enumerate(p.demand_ids):
            used = self.routed_rps[d] > 1e-9
            out[did] = float((p.ttft_slo_s[d] - lat[d][used].max()) * 1e3) if used.any() else float("nan")
        return out

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able data: totals, per-site table, routing matrix, SLO slack."""
        p = self.problem
        used, power = self.chips_used(), self.site_power_w()
        sites = []
        for s, sid in enumerate(p.site_ids):
            reps = {p.plan_labels[j]: int(round(self.replicas[s, j])) for j in range(len(p.plan_labels))
                    if self.replicas[s, j] > 0.5}
            sites.append({"site": sid, "edge": bool(p.site_is_edge[s]), "replicas": reps,
                          "chips_used": {k: float(used[s, i]) for i, k in enumerate(p.chip_ids) if used[s, i] > 0},
                          "chips_on_hand": {k: float(p.on_hand[s, i]) for i, k in enumerate(p.chip_ids)
                                            if p.on_hand[s, i] > 0},
                          "power_kw": float(power[s]) / 1e3,
                          "power_limit_kw": None if not np.isfinite(p.power_limit_w[s]) else
                          float(p.power_limit_w[s]) / 1e3,
                          "served_rps": float(self.routing[:, s].sum())})
        routing = {did: {sid: float(self.routing[d, s]) for s, sid in enumerate(p.site_ids)
                         if self.routing[d, s] > 1e-9} for d, did in enumerate(p.demand_ids)}
        return {"method": self.method, "objective": self.objective, "objective_value": self.objective_value,
                "gap": self.gap, "solve_s": self.solve_s, "totals": self.totals(), "sites": sites,
                "routing_rps": routing, "slo_slack_ms": self.slo_slack_ms(),
                "unmet_rps": {did: float(v) for did, v in zip(p.demand_ids, self.unmet_rps, strict=True) if v > 1e-6}}


def _output_tokens(p: PlacementProblem) -> float:
    return float(p.bytes_per_request[0]) / 4.0 if len(p.bytes_per_request) else 1.0


def _coefficients(p: PlacementProblem, objective: str) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-hour objective weight of one replica (S, P), one owned chip (S, K), one rented chip, one rps (D, S)."""
    kw = p.power_w() / 1e3  # (S, P)
    egress = p.bytes_per_request[:, None] * HOUR_S / 1e9 * p.egress_usd_per_gb[None, :]  # (D, S)
    zero_k = np.zeros_like(p.on_hand)
    if objective == "energy":
        return kw, zero_k, zero_k, np.zeros_like(egress)
    carbon_kg = kw * p.gco2_per_kwh[:, None] / 1e3
    if objective == "carbon":
        return carbon_kg, zero_k, zero_k, np.zeros_like(egress)
    cost = kw * p.usd_per_kwh[:, None]
    if objective == "weighted":
        cost = cost + carbon_kg / 1e3 * p.carbon_usd_per_t
    if objective not in ("cost", "weighted"):
        raise SpecError(f"objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    return cost, p.own_usd_per_chip_hour, p.rent_usd_per_chip_hour, egress


def _milp() -> Any:
    try:
        from scipy.optimize import milp
    except ImportError:  # pragma: no cover - depends on the environment
        raise SolverError("placement needs the HiGHS solver from scipy: pip install 'fleetwise[place]'") from None
    return milp


def solve(p: PlacementProblem, objective: str = "cost", *, gap: float = 1e-4, time_limit_s: float = 60.0,
          allow_unmet: bool = False, carbon_cap_kg_per_h: float | None = None, relax: bool = False,
          nested: bool | None = None) -> Placement:
    """The placement minimising ``objective`` (cost, energy, carbon, weighted) per hour.

    Args:
        p: the problem (``build_problem``).
        objective: cost (USD/h), energy (kWh/h), carbon (kg CO2/h) or weighted (cost + carbon price).
        gap: relative MIP gap at which HiGHS stops.
        time_limit_s: solver time limit.
        allow_unmet: return a placement that leaves demand unmet instead of raising ``InfeasibleError``.
        carbon_cap_kg_per_h: optional upper bound on carbon (for the Pareto front).
        relax: drop integrality (the LP relaxation: a lower bound, used as the benchmark's baseline).
        nested: route per (demand, site) with prefix capacity rows (exact when every demand class of a model
            has the same TPOT-feasible plans; the default then) instead of per (demand, site, plan).

    Nested form: at a site, the plans a route may use are those whose queueing + TTFT fits the route's budget
    (SLO − access − RTT), a prefix of the plans sorted by that latency. For such nested sets Hall's condition
    on prefixes is sufficient, so "demand routed with prefix <= j fits the capacity of plans 1..j" for every j
    replaces the per-plan routing variables (D·S instead of D·S·P); the per-plan split is recovered greedily.
    """
    from scipy.optimize import Bounds, LinearConstraint
    from scipy.sparse import coo_matrix

    milp = _milp()
    t0 = time.perf_counter()
    n_d, n_s, n_p, n_k = len(p.demand_ids), len(p.site_ids), len(p.plan_labels), len(p.chip_ids)
    c_rep, c_own, c_rent, c_egress = _coefficients(p, objective)
    hosts = p.site_has_chip()
    feasible = p.feasible_triples()
    use_nested = tpot_uniform(p) if nested is None else nested
    xs, xp = np.nonzero(hosts)
    if use_nested:
        yd, ys = np.nonzero(feasible.any(axis=2))
        yp = np.zeros(0, dtype=np.int64)
    else:
        yd, ys, yp = np.nonzero(feasible)
    ks, kk = np.nonzero((p.on_hand + p.rent_max) > 0)
    nx, ny, nk = len(xs), len(yd), len(ks)
    off_y, off_o, off_r, off_u = nx, nx + ny, nx + ny + nk, nx + ny + 2 * nk
    n_var = off_u + n_d
    per_rps = (c_rep + (np.maximum(c_own, c_rent)[:, p.plan_chip] * p.plan_chips[None, :])) / p.plan_goodput_rps
    scale = max(float(np.abs(per_rps).max()), 1e-9)
    c = np.concatenate([c_rep[xs, xp], c_egress[yd, ys], c_own[ks, kk], c_rent[ks, kk],
                        np.full(n_d, UNMET_PENALTY * scale)])
    lb = np.zeros(n_var)
    # demand must be met (unmet bounded at 0); only a placement allowed to fall short gets the penalised slack
    ub = np.concatenate([np.full(nx, np.inf), np.full(ny, np.inf), p.on_hand[ks, kk], p.rent_max[ks, kk],
                         p.rate_rps if allow_unmet else np.zeros(n_d)])
    integrality = np.concatenate([np.full(nx, 0.0 if relax else 1.0), np.zeros(n_var - nx)])
    rows: list[FloatArray] = []
    cols: list[FloatArray] = []
    vals: list[FloatArray] = []
    row_lb: list[FloatArray] = []
    row_ub: list[FloatArray] = []
    n_row = 0

    def add(r: FloatArray, col: FloatArray, v: FloatArray, lo: FloatArray, hi: FloatArray, count: int) -> None:
        nonlocal n_row
        rows.append(r + n_row)
        cols.append(col)
        vals.append(v)
        row_lb.append(lo)
        row_ub.append(hi)
        n_row += count

    # demand: sum of routed rate + unmet = offered rate
    add(np.concatenate([yd, np.arange(n_d)]).astype(float), np.concatenate([off_y + np.arange(ny), off_u +
        np.arange(n_d)]).astype(float), np.ones(ny + n_d), p.rate_rps, p.rate_rps, n_d)
    x_index = -np.ones((n_s, n_p), dtype=np.int64)
    x_index[xs, xp] = np.arange(nx)
    if use_nested:
        r_, c_, v_, count = prefix_rows(p, feasible, hosts, yd, ys, x_index, off_y)
        add(r_, c_, v_, np.full(count, -np.inf), np.zeros(count), count)
    else:
        # capacity: routed rate on (s, p) <= utilisation * goodput * replicas
        add(x_index[ys, yp].astype(float), (off_y + np.arange(ny)).astype(float), np.ones(ny),
            np.full(nx, -np.inf), np.zeros(nx), 0)
        add(np.arange(nx).astype(float), np.arange(nx).astype(float), -p.utilisation * p.plan_goodput_rps[xp],
            np.zeros(0), np.zeros(0), nx)
    # chips: replicas' chips <= owned + rented, per (s, k)
    k_index = -np.ones((n_s, n_k), dtype=np.int64)
    k_index[ks, kk] = np.arange(nk)
    kr = k_index[xs, p.plan_chip[xp]]
    add(np.concatenate([kr, np.arange(nk), np.arange(nk)]).astype(float),
        np.concatenate([np.arange(nx), off_o + np.arange(nk), off_r + np.arange(nk)]).astype(float),
        np.concatenate([p.plan_chips[xp], -np.ones(nk), -np.ones(nk)]), np.full(nk, -np.inf), np.zeros(nk), nk)
    # site power
    limited = np.nonzero(np.isfinite(p.power_limit_w))[0]
    if len(limited):
        s_index = -np.ones(n_s, dtype=np.int64)
        s_index[limited] = np.arange(len(limited))
        m = s_index[xs] >= 0
        add(s_index[xs][m].astype(float), np.arange(nx)[m].astype(float), p.power_w()[xs, xp][m],
            np.full(len(limited), -np.inf), p.power_limit_w[limited], len(limited))
    if carbon_cap_kg_per_h is not None:
        carbon = (p.power_w() / 1e3 * p.gco2_per_kwh[:, None] / 1e3)[xs, xp]
        add(np.zeros(nx), np.arange(nx).astype(float), carbon, np.array([-np.inf]), np.array([carbon_cap_kg_per_h]),
            1)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_row, n_var)).tocsr()
    cons = LinearConstraint(a, np.concatenate(row_lb), np.concatenate(row_ub))
    with _quiet_stdout():  # HiGHS prints debug lines to the C stdout, which would corrupt --json output
        res = milp(c, integrality=integrality, bounds=Bounds(lb, ub), constraints=cons,
                   options={"mip_rel_gap": gap, "time_limit": time_limit_s, "disp": False})
    if res.x is None and not allow_unmet and res.status == 2:  # infeasible: solve again with slack to explain
        pl = solve(p, objective, gap=max(gap, 1e-3), time_limit_s=time_limit_s, allow_unmet=True,
                   carbon_cap_kg_per_h=carbon_cap_kg_per_h, relax=relax, nested=nested)
        raise InfeasibleError(diagnose(pl) if pl.unmet_rps.sum() > 1e-9 else
                              "infeasible placement: the carbon cap cannot be met")
    if res.x is None:
        raise SolverError(f"HiGHS found no solution ({res.message})")
    x = np.zeros((n_s, n_p))
    x[xs, xp] = res.x[:nx] if relax else np.round(res.x[:nx])
    if use_nested:
        y = split_routes(p, feasible, x, yd, ys, res.x[off_y:off_o])
    else:
        y = np.zeros((n_d, n_s, n_p))
        y[yd, ys, yp] = res.x[off_y:off_o]
    rented = np.zeros_like(p.on_hand)
    rented[ks, kk] = res.x[off_r:off_u]
    unmet = res.x[off_u:]
    gap_out = float(getattr(res, "mip_gap", 0.0) or 0.0)
    out = Placement(p, objective, float(res.fun - unmet.sum() * UNMET_PENALTY * scale), x, y, unmet, rented,
                    gap_out, time.perf_counter() - t0)
    if unmet.sum() > 1e-6 * max(float(p.rate_rps.sum()), 1.0) and not allow_unmet:
        raise InfeasibleError(diagnose(out))
    return out


def _listed(items: list[str], limit: int = 4) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null for the duration (C-level prints of the solver)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def diagnose(pl: Placement, limit: int = 4) -> str:
    """Which demand cannot be met, and which constraint binds: the SLO, chips on hand, or site power."""
    p = pl.problem
    feasible = p.feasible_triples()
    lat = p.latency_s()
    used, power = pl.chips_used(), pl.site_power_w()
    short = np.nonzero(pl.unmet_rps > 1e-6)[0]
    parts = []
    for d in short[:limit]:
        did = p.demand_ids[d]
        head = f"{did}: {pl.unmet_rps[d]:.3g} of {p.rate_rps[d]:.3g} req/s cannot be met"
        reach = np.nonzero(feasible[d].any(axis=1))[0]
        if not len(reach):
            same = np.array([m == p.demand_model[d] for m in p.plan_model])
            hosts = p.site_has_chip() & same[None, :]
            best = float(np.where(hosts, lat[d], np.inf).min()) * 1e3
            shown = f"best TTFT {best:.0f} ms" if np.isfinite(best) else f"no site hosts {p.demand_model[d]}"
            parts.append(f"{head}: the TTFT/TPOT SLO binds (no site and plan meets it: {shown} vs SLO "
                         f"{p.ttft_slo_s[d] * 1e3:.0f} ms)")
            continue
        chips_bind, power_bind = [], []
        for s in reach:
            for k in sorted({int(p.plan_chip[j]) for j in np.nonzero(feasible[d, s])[0]}):
                cap = p.on_hand[s, k] + p.rent_max[s, k]
                if used[s, k] > cap - p.plan_chips[p.plan_chip == k].max() + 1e-9:
                    chips_bind.append(f"{p.site_ids[s]} {used[s, k]:.0f}/{cap:.0f} {p.chip_ids[k]}")
            if np.isfinite(p.power_limit_w[s]) and power[s] > p.power_limit_w[s] - p.power_w()[s].max():
                power_bind.append(f"{p.site_ids[s]} {power[s] / 1e3:.0f}/{p.power_limit_w[s] / 1e3:.0f} kW")
        binds = []
        if chips_bind:
            binds.append(f"chips on hand at {len(chips_bind)} site(s): {_listed(chips_bind, limit)}")
        if power_bind:
            binds.append(f"site power at {len(power_bind)} site(s): {_listed(power_bind, limit)}")
        sites = _listed([p.site_ids[s] for s in reach], limit)
        parts.append(f"{head}: {len(reach)} site(s) meet its SLO ({sites}); binding: "
                     f"{'; '.join(binds) or 'the capacity of those sites'}")
    more = f" | (+{len(short) - limit} more demand classes short)" if len(short) > limit else ""
    return "infeasible placement: " + " | ".join(parts) + more


def _rank_sites(p: PlacementProblem, rule: str) -> np.ndarray:
    """(D, S) site order per demand class: by RTT (nearest) or by cost per request/s meeting the SLO (cheapest)."""
    hosts_model = np.array([[(p.site_has_chip()[s] & np.array([m == dm for m in p.plan_model])).any()
                             for s in range(len(p.site_ids))] for dm in p.demand_model])
    if rule == "nearest":
        key = np.where(hosts_model, p.rtt_s, np.inf)
    elif rule == "cheapest":
        c_rep, c_own, _, _ = _coefficients(p, "cost")
        chip_cost = c_own[:, p.plan_chip] * p.plan_chips[None, :]
        per_rps = (c_rep + chip_cost) / (p.utilisation * p.plan_goodput_rps[None, :])  # (S, P)
        ok = replace(p, allowed=None).feasible_triples()
        key = np.where(ok, per_rps[None, :, :], np.inf).min(axis=2)
    else:
        raise SpecError(f"heuristic must be one of {', '.join(HEURISTICS)} (got {rule!r})")
    return np.argsort(key, axis=1, kind="stable")


def solve_heuristic(p: PlacementProblem, rule: str, objective: str = "cost") -> Placement:
    """A usual placement rule: each region sends its traffic to its first site by ``rule``, spilling to the next.

    ``nearest``: the lowest-RTT site that hosts the model. ``cheapest``: the site with the lowest cost per
    request/s among those meeting the region's SLO. Replicas at the chosen sites are then sized optimally.
    """
    order = _rank_sites(p, rule)
    depth = np.ones(len(p.demand_ids), dtype=np.int64)
    t0 = time.perf_counter()
    while True:
        allowed = np.zeros((len(p.demand_ids), len(p.site_ids)), dtype=bool)
        for d in range(len(p.demand_ids)):
            allowed[d, order[d, :depth[d]]] = True
        pl = solve(replace(p, allowed=allowed), objective, allow_unmet=True)
        short = pl.unmet_rps > 1e-6
        if not short.any() or (depth[short] >= len(p.site_ids)).all():
            return replace(pl, problem=p, method=f"heuristic:{rule}", solve_s=time.perf_counter() - t0)
        depth[short] = np.minimum(depth[short] + 1, len(p.site_ids))


def pareto_front(p: PlacementProblem, points: int = 6) -> list[dict[str, float]]:
    """Cost vs carbon: the cheapest placement under a sweep of carbon caps between the two single optima."""
    cheap = solve(p, "cost")
    green = solve(p, "carbon")
    hi, lo = cheap.totals()["carbon_kg_per_h"], green.totals()["carbon_kg_per_h"]
    out: list[dict[str, float]] = []
    for cap in np.linspace(hi, lo, points):
        try:
            pl = solve(p, "cost", carbon_cap_kg_per_h=float(cap) * (1 + 1e-9) + 1e-9)
        except InfeasibleError:
            continue
        t = pl.totals()
        if out and abs(out[-1]["cost_usd_per_h"] - t["cost_usd_per_h"]) <= 1e-4 * max(t["cost_usd_per_h"], 1.0):
            out.pop()  # the same cost as the previous point: keep only the lower-carbon one (the other is dominated)
        out.append({"carbon_cap_kg_per_h": float(cap), "cost_usd_per_h": t["cost_usd_per_h"],
                    "carbon_kg_per_h": t["carbon_kg_per_h"], "energy_kwh_per_h": t["energy_kwh_per_h"]})
    return out
