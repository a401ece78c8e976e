"""The public Python API: one function per question (``core``) and ``run_study``, the one entry point every
front end (CLI, HTTP service, sweeps, notebooks) shares: a question as JSON data in, a ``Study`` out.

``fleetwise.api.core`` holds the typed functions (resolve ids, search, explain, compare, match); the study
runners (``fleetwise.api.studies``) build on them; this module re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetwise.api.core import *  # noqa: F403 - the facade re-exports every public name of core
from fleetwise.api.studies.serve import compare_mixed_serving as compare_mixed_serving
from fleetwise.api.studies.serve import compare_serving_systems as compare_serving_systems
from fleetwise.api.studies.serve import explain_serving as explain_serving
from fleetwise.api.studies.serve import match_serving_fleets as match_serving_fleets
from fleetwise.api.studies.serve import serving_plan as serving_plan
from fleetwise.api.studies.serve import simulate_serving as simulate_serving
from fleetwise.api.studies.train import PowerStudy as PowerStudy
from fleetwise.api.studies.train import power_training as power_training
from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.progress import ProgressFn
from fleetwise.study import Study


def run_study(kind: str, inputs: Mapping[str, Any], *, catalog: Catalog | None = None,
              progress: ProgressFn | None = None) -> Study:
    """Answer one question given as JSON data and return it as a ``Study`` (inputs resolved, results attached).

    Args:
        kind: a ``STUDY_KINDS`` name (``plan_train``, ``explain_train``, …).
        inputs: the question's inputs as JSON data (ids, counts, settings; ``plan`` for explain kinds).
        catalog: the catalog to resolve ids in (default: bundled plus ``$FLEETWISE_CATALOG``).
        progress: optional ``(done, total)`` callback for long searches.

    Returns:
        The study; ``Study.from_json(study.to_json()) == study``.
    """
    from fleetwise.api.studies import run

    return run(kind, inputs, catalog=catalog or load_catalog(), progress=progress)
