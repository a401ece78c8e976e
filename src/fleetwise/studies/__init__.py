"""Study runners: one function per study kind, all reached through ``fleetwise.api.run_study``.

Entry points: ``run(kind, inputs, catalog, progress)``, ``RUNNERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.errors import SpecError
from fleetwise.search.evaluate import ProgressFn
from fleetwise.studies import serve, train
from fleetwise.studies.inputs import echo
from fleetwise.study import STUDY_KINDS, Study

Runner = Callable[[Mapping[str, Any], Catalog, ProgressFn | None], Study]

RUNNERS: dict[str, Runner] = {
    "plan_train": train.plan_train, "explain_train": train.explain_train, "compare_train": train.compare_train,
    "match_train": train.match_train, "plan_train_mixed": train.plan_train_mixed, "power_train": train.power_train,
    "plan_serve": serve.plan_serve, "explain_serve": serve.explain_serve, "compare_serve": serve.compare_serve,
    "match_serve": serve.match_serve, "simulate": serve.simulate_study, "validate": serve.validate_study,
}


def run(kind: str, inputs: Mapping[str, Any], *, catalog: Catalog, progress: ProgressFn | None = None) -> Study:
    """Run one study; every input given is echoed in the study's inputs (resolved), never dropped."""
    runner = RUNNERS.get(kind)
    if runner is None:
        if kind in STUDY_KINDS:
            raise SpecError(f"study kind {kind!r} is not available through run_study yet "
                            f"(available: {', '.join(RUNNERS)})")
        raise SpecError(f"study kind must be one of {', '.join(STUDY_KINDS)} (got {echo(kind)})")
    if not isinstance(inputs, Mapping):
        raise SpecError(f"{kind}: inputs must be an object (got {type(inputs).__name__})")
    study = runner(inputs, catalog, progress)
    lost = [k for k, v in inputs.items() if v is not None and k not in study.inputs]
    if lost:  # a runner bug, not a user error: an input was accepted but not echoed
        raise AssertionError(f"{kind}: inputs {lost} were accepted but not echoed")
    return study
