"""Placement studies: ``place_serve`` (the serving MILP across cloud regions and edge sites, next to the usual
heuristics) and ``place_train`` (which sites train; synchronous DP vs DiLoCo across sites).

A scenario is a bundled name or a YAML file; the study echoes its name and a hash of its resolved content, so
the same question asked of an edited file gets another id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from fleetwise.api.studies.inputs import Inputs
from fleetwise.catalog.loader import Catalog
from fleetwise.progress import ProgressFn
from fleetwise.study import Study, canonical_json

PLACE_INPUTS: dict[str, tuple[str, ...]] = {
    "place_serve": ("scenario", "objective", "pareto", "heuristics"),
    "place_train": ("scenario",),
}


def _scenario_echo(scenario: str) -> tuple[Any, dict[str, Any]]:
    from fleetwise.place.spec import load_scenario

    sc = load_scenario(scenario)
    digest = hashlib.sha256(canonical_json(sc.model_dump(mode="json")).encode()).hexdigest()[:16]
    return sc, {"scenario": scenario, "scenario_name": sc.name, "scenario_sha256": digest}


def place_serve(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.place.placement import place_serving
    from fleetwise.place.spec import OBJECTIVES

    r = Inputs("place_serve", inputs, PLACE_INPUTS["place_serve"])
    sc, echo = _scenario_echo(r.req_text("scenario"))
    objective = r.text("objective", None, choices=list(OBJECTIVES))
    pareto = r.whole("pareto", 6, minimum=0)
    heuristics = r.switch("heuristics", True)
    res = place_serving(sc, objective, heuristics=heuristics, pareto_points=pareto or 0, catalog=catalog)
    resolved = {**echo, "objective": res.best.objective, "pareto": pareto, "heuristics": heuristics,
                "defaults": r.defaults()}
    return Study("place_serve", resolved, res.to_dict())


def place_train(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.place.placement import place_training_job

    r = Inputs("place_train", inputs, PLACE_INPUTS["place_train"])
    sc, echo = _scenario_echo(r.req_text("scenario"))
    res = place_training_job(sc, catalog=catalog)
    return Study("place_train", {**echo, "defaults": r.defaults()}, res.to_dict())
