"""fleetwise: plan and predict training and serving of AI models on the chips you have, with evidence.

Names load on first use (PEP 562), so ``import fleetwise`` and ``fleetwise --help`` do not import numpy,
pydantic and every module of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwise.api import (
        compare_mixed_training,
        compare_training,
        explain_training,
        match_training,
        plan_serving,
        plan_training,
        run_study,
        training_setup,
    )
    from fleetwise.catalog import Catalog, load_catalog
    from fleetwise.errors import FleetwiseError, InfeasibleError, SpecError, UnknownIdError
    from fleetwise.plan import TrainingJob, TrainingPlan
    from fleetwise.search.evaluate import PlanResult, TrainingSearch
    from fleetwise.study import Study
    from fleetwise.validate.runner import Report, validate_files

from fleetwise.version import __version__ as __version__

_WHERE = {
    "compare_mixed_training": "fleetwise.api",
    "compare_training": "fleetwise.api",
    "explain_training": "fleetwise.api",
    "match_training": "fleetwise.api",
    "plan_serving": "fleetwise.api",
    "plan_training": "fleetwise.api",
    "training_setup": "fleetwise.api",
    "run_study": "fleetwise.api",
    "Study": "fleetwise.study",
    "Catalog": "fleetwise.catalog",
    "load_catalog": "fleetwise.catalog",
    "FleetwiseError": "fleetwise.errors",
    "InfeasibleError": "fleetwise.errors",
    "SpecError": "fleetwise.errors",
    "UnknownIdError": "fleetwise.errors",
    "TrainingJob": "fleetwise.plan",
    "TrainingPlan": "fleetwise.plan",
    "PlanResult": "fleetwise.search.evaluate",
    "TrainingSearch": "fleetwise.search.evaluate",
    "Report": "fleetwise.validate.runner",
    "validate_files": "fleetwise.validate.runner",
}

__all__ = [
    "Catalog",
    "FleetwiseError",
    "InfeasibleError",
    "PlanResult",
    "Report",
    "SpecError",
    "Study",
    "TrainingJob",
    "TrainingPlan",
    "TrainingSearch",
    "UnknownIdError",
    "compare_mixed_training",
    "compare_training",
    "explain_training",
    "load_catalog",
    "match_training",
    "plan_serving",
    "plan_training",
    "run_study",
    "training_setup",
    "validate_files",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetwise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
