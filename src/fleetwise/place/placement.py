"""One question, one result: place a scenario's serving (MILP vs the usual heuristics, Pareto front, edge tier).

Entry points: ``place_serving(scenario, objective)`` → ``ServingPlacement`` and ``place_training_job(scenario)``
→ ``TrainingPlacement``; both have ``to_dict()`` (plain JSON-able data, stable key order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.errors import SpecError
from fleetwise.place.network import rtt_fit_report
from fleetwise.place.problem import PlacementProblem, build_problem
from fleetwise.place.solve import HEURISTICS, Placement, pareto_front, solve, solve_heuristic
from fleetwise.place.spec import OBJECTIVES, Scenario, load_scenario

ASSUMPTIONS: tuple[str, ...] = (
    "RTT: Azure P50 or skyplane ping where the pair is measured, else overhead + 2 x route factor x great-circle "
    "distance / 200,000 km/s fitted on the skyplane AWS/GCP/Azure grid; same-city routes use the metro RTT",
    "TTFT at the user = access RTT + network RTT + prefill queueing (M/D/1 at the planned utilisation) + the "
    "serving plan's TTFT; TPOT is the site's (streaming adds no per-token RTT)",
    "a replica is one node-sized serving plan from the serving search; power at full planned load",
    "owned chips cost their price over 4 years at 80 % use unless the scenario gives chip_usd_per_hour",
)


@dataclass(frozen=True, slots=True)
class ServingPlacement:
    """The MILP placement with the heuristics it is compared against, the Pareto front and the edge report."""

    scenario: Scenario
    problem: PlacementProblem
    best: Placement
    heuristics: dict[str, Placement]
    pareto: list[dict[str, float]] = field(default_factory=list)
    speculative: list[dict[str, object]] = field(default_factory=list)
    pd_split: list[dict[str, object]] = field(default_factory=list)

    def comparison(self) -> dict[str, dict[str, float]]:
        """Objective and SLO share of the MILP and of each heuristic (lower objective is better)."""
        rows = {"milp": self.best}
        rows.update(self.heuristics)
        return {k: {"objective": v.objective_value, "slo_met_share": v.totals()["slo_met_share"],
                    "served_share": v.totals()["served_share"], "cost_usd_per_h": v.totals()["cost_usd_per_h"],
                    "carbon_kg_per_h": v.totals()["carbon_kg_per_h"]} for k, v in rows.items()}

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, "objective": self.best.objective, "placement": self.best.to_dict(),
                "comparison": self.comparison(),
                "heuristics": {k: v.to_dict() for k, v in self.heuristics.items()},
                "pareto_cost_carbon": self.pareto, "speculative_decoding": self.speculative,
                "prefill_decode_split": self.pd_split,
                "rtt_model": [c.to_dict() for c in rtt_fit_report()], "assumptions": list(ASSUMPTIONS)}


def _scenario(scenario: Scenario | str | Path) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def place_serving(scenario: Scenario | str | Path, objective: str | None = None, *, heuristics: bool = True,
                  pareto_points: int = 6, edge_report: bool = True, catalog: Catalog | None = None
                  ) -> ServingPlacement:
    """Place ``scenario``'s serving: the MILP optimum for ``objective`` (default: the scenario's).

    Args:
        scenario: a ``Scenario``, a YAML path or a bundled name (``china``).
        objective: cost, energy, carbon or weighted.
        heuristics: also solve "nearest region" and "cheapest region meeting the SLO".
        pareto_points: points of the cost-vs-carbon front (0 = none).
        edge_report: speculative-decoding break-even for every edge x cloud site pair (needs a cascade).
    """
    sc = _scenario(scenario)
    obj = objective or sc.objective
    if obj not in OBJECTIVES:
        raise SpecError(f"--objective must be one of {', '.join(OBJECTIVES)} (got {obj!r})")
    catalog = catalog or load_catalog()
    p = build_problem(sc, catalog, sc.name)
    best = solve(p, obj)
    heur = {f"heuristic:{h}": solve_heuristic(p, h, obj) for h in HEURISTICS} if heuristics else {}
    front = pareto_front(p, pareto_points) if pareto_points > 1 else []
    spec: list[dict[str, object]] = []
    if edge_report:
        from fleetwise.place.edge import speculative_report

        spec = speculative_report(sc, p, catalog)
    from fleetwise.place.pd_split import pd_split_report

    return ServingPlacement(sc, p, best, heur, front, spec, pd_split_report(sc, p, catalog))


@dataclass(frozen=True, slots=True)
class TrainingPlacement:
    scenario: Scenario
    result: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, **self.result}


def place_training_job(scenario: Scenario | str | Path, *, catalog: Catalog | None = None) -> TrainingPlacement:
    """Which sites train ``scenario.training``, single-site vs split (synchronous DP, DiLoCo)."""
    from fleetwise.place.training import place_training

    sc = _scenario(scenario)
    if sc.training is None:
        raise SpecError(f"scenario {sc.name}: no training section (give training: {{model, tokens}})")
    catalog = catalog or load_catalog()
    p = _training_problem(sc, catalog)
    return TrainingPlacement(sc, place_training(sc, p, catalog))


def _training_problem(sc: Scenario, catalog: Catalog) -> PlacementProblem:
    """Site arrays only (no serving plans are searched): the training path needs inventories and prices."""
    from fleetwise.place.problem import site_arrays

    return site_arrays(sc, catalog, sc.name)
