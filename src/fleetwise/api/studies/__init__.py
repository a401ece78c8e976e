"""Study runners: one function per study kind, all reached through ``fleetwise.api.run_study``.

Entry points: ``run(kind, inputs, catalog, progress)``, ``RUNNERS``, ``INPUTS`` (the inputs each kind takes:
any other is rejected with a message, never dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetwise.api.studies import place, serve, train
from fleetwise.api.studies.inputs import echo
from fleetwise.catalog.loader import Catalog
from fleetwise.errors import SpecError
from fleetwise.progress import ProgressFn
from fleetwise.study import STUDY_KINDS, Study

Runner = Callable[[Mapping[str, Any], Catalog, ProgressFn | None], Study]

RUNNERS: dict[str, Runner] = {
    "plan_train": train.plan_train, "explain_train": train.explain_train, "compare_train": train.compare_train,
    "match_train": train.match_train, "plan_train_mixed": train.plan_train_mixed, "power_train": train.power_train,
    "plan_serve": serve.plan_serve, "explain_serve": serve.explain_serve, "compare_serve": serve.compare_serve,
    "match_serve": serve.match_serve, "simulate": serve.simulate_study, "validate": serve.validate_study,
    "place_serve": place.place_serve, "place_train": place.place_train,
}

INPUTS: dict[str, tuple[str, ...]] = {**train.TRAIN_INPUTS, **serve.SERVE_INPUTS, **place.PLACE_INPUTS}


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
    return Study(study.kind, {**study.inputs, "catalog": catalog_echo(catalog)}, study.results, study.version)


def catalog_echo(catalog: Catalog) -> dict[str, Any]:
    """Which catalog answered: the user folders layered over the bundled one (the bundled catalog is the
    fleetwise version's) and a hash of every user entry and user data file, so a different catalog makes a
    different question (study id)."""
    import hashlib
    from pathlib import Path

    from fleetwise.catalog.loader import BUNDLED_DIR, data_layers
    from fleetwise.study import canonical_json

    bundled = BUNDLED_DIR.resolve()
    user = sorted(k for k, v in catalog.origin.items() if not Path(v).resolve().is_relative_to(bundled))
    folders = data_layers()
    if not user and not folders:
        return {"user_folders": []}
    h = hashlib.sha256()
    for key in user:
        kind, _, id_ = key.partition("/")
        h.update(key.encode() + canonical_json(catalog.kind(kind)[id_].model_dump(mode="json")).encode())
    for folder in folders:
        for f in sorted(folder.glob("*.yaml")):
            h.update(f.name.encode() + f.read_bytes())
    return {"user_folders": [str(f) for f in folders], "user_entries": len(user), "user_sha256": h.hexdigest()[:16]}
